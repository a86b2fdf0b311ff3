/* The schema engine (schema/): every field type round trips, the bytes are
 * msgpack's shortest forms, and the decoder is total — truncated input,
 * wrong types, out-of-bounds values, unknown formats and trailing bytes are
 * refused with FL_EDECODE (FL_EVERSION for a format) — while the validator
 * refuses what the decoder would. The tables of store/ and agentproto/ pass
 * schema_table_check. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "agentproto/aproto_int.h"
#include "check.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/mpread.h"
#include "schema/schema.h"
#include "store/store_int.h"

struct inner {
    char name[8];
    uint64_t v;
};

struct rec {
    uint8_t small; /* 1..9 */
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int state; /* 0..3 */
    int32_t i32;
    int64_t i64;
    int32_t ofs;
    bool flag;
    int iflag;
    const char *str; /* 0..10 bytes */
    char chars[6];   /* 1..5 bytes */
    const uint8_t *bin;
    size_t bin_len; /* 0..16 */
    const uint8_t *words;
    uint32_t n_words; /* 4-byte units, 0..3 */
    uint8_t key[4];
    const char *const *strs;
    uint32_t n_strs; /* 0..3 */
    unsigned n_labels;
    char labels[2][4];
    uint32_t fixed[3];
    struct inner in;
    const struct inner *ins;
    uint32_t n_ins; /* 0..2 */
    uint64_t later; /* format 2 */
};

static int no_x(const char *s, size_t n)
{
    return memchr(s, 'x', n) == NULL;
}

static const struct schema_field inner_fields[] = {
    SCHEMA_F_CHARS(inner, name, 1),
    SCHEMA_F_UINT(inner, v, 0, 0),
};
static const struct schema inner_exact = {
    "inner", SCHEMA_TABLE(inner_fields), sizeof(struct inner), 0, 0, 1, NULL};
static const struct schema inner_open = {
    "inner", SCHEMA_TABLE(inner_fields), sizeof(struct inner), 0, 0, 0, NULL};

static const struct schema_field str_elem = SCHEMA_E_STR(1, 3, no_x);
static const struct schema_field label_elem = SCHEMA_E_CHARS(4, 0, NULL);
static const struct schema_field fixed_elem = SCHEMA_E_UINT(uint32_t, 0, 1000);
static const struct schema_field inner_elem = SCHEMA_E_TUPLE(struct inner, &inner_open);

static int rec_check(const void *obj, int sending, char *errmsg)
{
    const struct rec *r = obj;
    return r->u32 == 666 ? fl_errf(errmsg, FL_EINVAL, "rec: 666") : FL_OK;
}

/* Wire positions: 0 is the format, field i is element i + 1. */
static const struct schema_field rec_fields[] = {
    SCHEMA_F_UINT(rec, small, 1, 9),
    SCHEMA_F_UINT(rec, u16, 0, 0),
    SCHEMA_F_UINT(rec, u32, 0, 0),
    SCHEMA_F_UINT(rec, u64, 0, 0),
    SCHEMA_F_UINT(rec, state, 0, 3),
    SCHEMA_F_INT(rec, i32),
    SCHEMA_F_INT(rec, i64),
    SCHEMA_F_INT_OFS(rec, ofs),
    SCHEMA_F_BOOL(rec, flag),
    SCHEMA_F_BOOL(rec, iflag),
    SCHEMA_F_STR(rec, str, 0, 10, .valid = no_x),
    SCHEMA_F_CHARS(rec, chars, 1),
    SCHEMA_F_BIN(rec, bin, bin_len, 1, 16),
    SCHEMA_F_BIN(rec, words, n_words, 4, 3),
    SCHEMA_F_BYTES(rec, key),
    SCHEMA_F_ARRAY(rec, strs, n_strs, 3, &str_elem),
    SCHEMA_F_INLINE(rec, labels, n_labels, &label_elem),
    SCHEMA_F_FIXED(rec, fixed, &fixed_elem),
    SCHEMA_F_TUPLE(rec, in, &inner_exact),
    SCHEMA_F_ARRAY(rec, ins, n_ins, 2, &inner_elem),
    SCHEMA_F_UINT(rec, later, 0, 0, .since = 2),
};
static const struct schema rec_schema = {
    "rec", SCHEMA_TABLE(rec_fields), sizeof(struct rec), 2, 1, 1, rec_check};
#define REC_ELEMS 22 /* the format and 21 fields */

static const char *const strs[] = {"a", "bb", "ccc"};
static const struct inner ins[] = {{"one", 1}, {"two", UINT64_MAX}};
static const uint8_t bin[] = {0, 1, 2, 0xff};
static const uint8_t words[] = {1, 2, 3, 4, 5, 6, 7, 8};

static void rec_fill(struct rec *r)
{
    memset(r, 0, sizeof *r);
    r->small = 9;
    r->u16 = 65535;
    r->u32 = 70000;
    r->u64 = UINT64_MAX;
    r->state = 3;
    r->i32 = INT32_MIN;
    r->i64 = -5;
    r->ofs = -2;
    r->flag = true;
    r->iflag = 7; /* any non-zero value is true */
    r->str = "hello";
    strcpy(r->chars, "abcde");
    r->bin = bin;
    r->bin_len = sizeof bin;
    r->words = words;
    r->n_words = 2;
    memcpy(r->key, "\x01\x02\x03\x04", 4);
    r->strs = strs;
    r->n_strs = 3;
    r->n_labels = 2;
    strcpy(r->labels[0], "k=v");
    strcpy(r->labels[1], "");
    r->fixed[0] = 1;
    r->fixed[2] = 1000;
    strcpy(r->in.name, "inner");
    r->in.v = 42;
    r->ins = ins;
    r->n_ins = 2;
    r->later = 1234567890123ULL;
}

static void rec_same(const struct rec *a, const struct rec *b)
{
    CHECK_EQ_INT(a->small, b->small);
    CHECK_EQ_INT(a->u16, b->u16);
    CHECK_EQ_INT(a->u32, b->u32);
    CHECK(a->u64 == b->u64);
    CHECK_EQ_INT(a->state, b->state);
    CHECK_EQ_INT(a->i32, b->i32);
    CHECK_EQ_INT(a->i64, b->i64);
    CHECK_EQ_INT(a->ofs, b->ofs);
    CHECK_EQ_INT(a->flag, b->flag);
    CHECK_EQ_INT(!!a->iflag, b->iflag);
    CHECK_EQ_STR(a->str, b->str);
    CHECK_EQ_STR(a->chars, b->chars);
    CHECK(a->bin_len == b->bin_len && memcmp(a->bin, b->bin, a->bin_len) == 0);
    CHECK(a->n_words == b->n_words && memcmp(a->words, b->words, 4 * a->n_words) == 0);
    CHECK(memcmp(a->key, b->key, 4) == 0);
    REQUIRE(a->n_strs == b->n_strs);
    for (uint32_t i = 0; i < a->n_strs; i++) {
        CHECK_EQ_STR(a->strs[i], b->strs[i]);
    }
    REQUIRE(a->n_labels == b->n_labels);
    for (unsigned i = 0; i < a->n_labels; i++) {
        CHECK_EQ_STR(a->labels[i], b->labels[i]);
    }
    CHECK(memcmp(a->fixed, b->fixed, sizeof a->fixed) == 0);
    CHECK_EQ_STR(a->in.name, b->in.name);
    CHECK(a->in.v == b->in.v);
    REQUIRE(a->n_ins == b->n_ins);
    for (uint32_t i = 0; i < a->n_ins; i++) {
        CHECK_EQ_STR(a->ins[i].name, b->ins[i].name);
        CHECK(a->ins[i].v == b->ins[i].v);
    }
    CHECK(a->later == b->later);
}

static int decode(const struct fl_buf *b, struct rec *out, void **arena, char *err)
{
    return schema_decode_record(&rec_schema, b->data, b->len, out, arena, err);
}

TEST(round_trip_every_type)
{
    char err[FL_ERRMSG_SIZE] = "";
    struct rec r, back;
    struct fl_buf b, again;
    void *arena = NULL;
    rec_fill(&r);
    fl_buf_init(&b);
    fl_buf_init(&again);
    REQUIRE(schema_encode_record(&rec_schema, &r, &b, err) == FL_OK);
    CHECK_OK(decode(&b, &back, &arena, err));
    rec_same(&r, &back);
    /* Decoded pointers are into the arena, not into the input. */
    CHECK(!((const uint8_t *)back.str >= b.data && (const uint8_t *)back.str < b.data + b.len));
    /* Re-encoding gives the same bytes. */
    REQUIRE(schema_encode_record(&rec_schema, &back, &again, err) == FL_OK);
    CHECK(again.len == b.len && memcmp(again.data, b.data, b.len) == 0);
    fl_free(arena);
    fl_buf_close(&b);
    fl_buf_close(&again);
}

/* The exact bytes: the format, integers in their shortest form whatever
 * their C width, strings as str, bools as true/false. */
struct tiny {
    uint64_t a;
    uint8_t b;
    int32_t c;
    int d;
    char s[4];
};
static const struct schema_field tiny_fields[] = {
    SCHEMA_F_UINT(tiny, a, 0, 0), SCHEMA_F_UINT(tiny, b, 0, 0), SCHEMA_F_INT_OFS(tiny, c),
    SCHEMA_F_BOOL(tiny, d),       SCHEMA_F_CHARS(tiny, s, 0),
};
static const struct schema tiny_schema = {
    "tiny", SCHEMA_TABLE(tiny_fields), sizeof(struct tiny), 3, 3, 1, NULL};

TEST(bytes_are_shortest_forms)
{
    static const uint8_t want[] = {0x96, 0x03, 0x05, 0xcc, 0xc8, 0xce, 0x7f,
                                   0xff, 0xff, 0xff, 0xc3, 0xa2, 'h',  'i'};
    struct tiny t = {5, 200, -1, 1, "hi"}, back;
    struct fl_buf b;
    fl_buf_init(&b);
    REQUIRE(schema_encode_record(&tiny_schema, &t, &b, NULL) == FL_OK);
    CHECK(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0);
    CHECK_OK(schema_decode_record(&tiny_schema, b.data, b.len, &back, NULL, NULL));
    CHECK(back.a == 5 && back.b == 200 && back.c == -1 && back.d == 1);
    CHECK_EQ_STR(back.s, "hi");
    fl_buf_close(&b);
}

TEST(truncated_and_trailing_input)
{
    struct rec r, back;
    struct fl_buf b;
    void *arena = (void *)&arena;
    rec_fill(&r);
    fl_buf_init(&b);
    REQUIRE(schema_encode_record(&rec_schema, &r, &b, NULL) == FL_OK);
    for (size_t n = 0; n < b.len; n++) {
        int rv = schema_decode_record(&rec_schema, b.data, n, &back, &arena, NULL);
        CHECK_EQ_INT(rv, FL_EDECODE);
        CHECK(arena == NULL);
    }
    REQUIRE(fl_buf_append(&b, "", 1) == FL_OK);
    CHECK_EQ_INT(decode(&b, &back, &arena, NULL), FL_EDECODE);
    fl_buf_close(&b);
}

/* The encoding of r split into its elements (the array header dropped). */
struct elems {
    struct fl_buf b;
    size_t off[REC_ELEMS + 1];
};

static void split(const struct rec *r, struct elems *e)
{
    struct fl_mp m;
    uint32_t n;
    fl_buf_init(&e->b);
    if (schema_encode_record(&rec_schema, r, &e->b, NULL) != FL_OK) {
        abort();
    }
    fl_mp_init(&m, e->b.data, e->b.len);
    if (fl_mp_array(&m, &n) != FL_OK || n != REC_ELEMS) {
        abort();
    }
    for (uint32_t i = 0; i < n; i++) {
        e->off[i] = m.pos;
        if (fl_mp_skip(&m) != FL_OK) {
            abort();
        }
    }
    e->off[n] = m.pos;
}

/* The record with element i replaced by the msgpack bytes p[0..n); count
 * is the array header's. */
static int decode_with(const struct elems *e, uint32_t count, int i, const void *p, size_t n,
                       char *err)
{
    struct fl_buf out;
    struct rec back;
    void *arena = NULL;
    uint8_t hdr = (uint8_t)(0xdc);
    int rv;
    fl_buf_init(&out);
    /* array16 header, so any count fits */
    fl_buf_append(&out, &hdr, 1);
    hdr = (uint8_t)(count >> 8);
    fl_buf_append(&out, &hdr, 1);
    hdr = (uint8_t)count;
    fl_buf_append(&out, &hdr, 1);
    for (uint32_t k = 0; k < REC_ELEMS && k < count; k++) {
        if ((int)k == i) {
            fl_buf_append(&out, p, n);
        } else {
            fl_buf_append(&out, e->b.data + e->off[k], e->off[k + 1] - e->off[k]);
        }
    }
    for (uint32_t k = REC_ELEMS; k < count; k++) {
        fl_buf_append(&out, "\xc0", 1); /* nil: a trailing element */
    }
    rv = schema_decode_record(&rec_schema, out.data, out.len, &back, &arena, err);
    fl_free(arena);
    fl_buf_close(&out);
    return rv;
}

TEST(wrong_types_refused)
{
    struct elems e;
    struct rec r;
    rec_fill(&r);
    split(&r, &e);
    CHECK_OK(decode_with(&e, REC_ELEMS, -1, NULL, 0, NULL));
    for (int i = 1; i < REC_ELEMS; i++) {
        char err[FL_ERRMSG_SIZE] = "";
        /* nil is no field's type; a string none but STR and CHARS's; a
         * positive integer none but the integers' and BOOL's neighbours. */
        CHECK_EQ_INT(decode_with(&e, REC_ELEMS, i, "\xc0", 1, err), FL_EDECODE);
        CHECK(strstr(err, rec_fields[i - 1].name) != NULL);
        if (rec_fields[i - 1].type != SCHEMA_STR && rec_fields[i - 1].type != SCHEMA_CHARS) {
            CHECK_EQ_INT(decode_with(&e, REC_ELEMS, i, "\xa1z", 2, NULL), FL_EDECODE);
        }
        if (rec_fields[i - 1].type >= SCHEMA_BOOL) {
            CHECK_EQ_INT(decode_with(&e, REC_ELEMS, i, "\x01", 1, NULL), FL_EDECODE);
        }
    }
    fl_buf_close(&e.b);
}

/* One out-of-bounds value per bound, at element i. */
struct oob {
    int i;
    const char *bytes;
    size_t n;
};

TEST(bounds_refused)
{
    static const struct oob cases[] = {
        {1, "\x00", 1},                                 /* small < 1 */
        {1, "\x0a", 1},                                 /* small > 9 */
        {2, "\xce\x00\x01\x00\x00", 5},                 /* u16 > 65535 */
        {3, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9}, /* u32 > 2^32 - 1 */
        {5, "\x04", 1},                                 /* state > 3 */
        {6, "\xce\x80\x00\x00\x00", 5},                 /* i32 > INT32_MAX */
        {6, "\xd3\xff\xff\xff\xff\x7f\xff\xff\xff", 9}, /* i32 < INT32_MIN */
        {8, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9}, /* offset int over 32 bits */
        {8, "\xff", 1},                                 /* offset int: negative */
        {11, "\xabhello world", 12},                    /* str: 11 bytes > 10 */
        {11, "\xa2x!", 3},                              /* str: its validator */
        {11,
         "\xa3"
         "a\0b",
         4}, /* str: a NUL inside */
        {12,
         "\xa6"
         "abcdef",
         7},             /* chars[6]: 6 bytes */
        {12, "\xa0", 1}, /* chars: empty, min 1 */
        {13,
         "\xc4\x11"
         "0123456789abcdefg",
         19}, /* bin: 17 bytes > 16 */
        {14,
         "\xc4\x05"
         "01234",
         7}, /* words: not whole units */
        {14,
         "\xc4\x10"
         "0123456789abcdef",
         18}, /* words: 4 units > 3 */
        {15,
         "\xc4\x03"
         "abc",
         5}, /* key: 3 bytes, not 4 */
        {16,
         "\x94\xa1"
         "a\xa1"
         "b\xa1"
         "c\xa1"
         "d",
         9}, /* strs: 4 > 3 */
        {16,
         "\x91\xa4"
         "abcd",
         6},                         /* strs element: 4 > 3 */
        {16, "\x91\xa0", 2},         /* strs element: empty, min 1 */
        {17, "\x93\xa0\xa0\xa0", 4}, /* labels: 3 > 2 */
        {17,
         "\x91\xa4"
         "abcd",
         6},                                 /* labels element: 4 in char[4] */
        {18, "\x92\x00\x00", 3},             /* fixed: 2 elements, not 3 */
        {18, "\x93\x00\xcd\x03\xe9\x00", 6}, /* fixed element: 1001 > 1000 */
        {19,
         "\x93\xa1"
         "n\x00\x00",
         5}, /* exact tuple: 3 elements */
        {19,
         "\x91\xa1"
         "n",
         3}, /* tuple: too few */
        {20,
         "\x91\x91\xa1"
         "n",
         4},                             /* open tuple: too few */
        {20, "\xdd\xff\xff\xff\xff", 5}, /* 2^32 - 1 elements claimed */
    };
    struct elems e;
    struct rec r;
    rec_fill(&r);
    split(&r, &e);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rv = decode_with(&e, REC_ELEMS, cases[k].i, cases[k].bytes, cases[k].n, NULL);
        if (rv != FL_EDECODE) {
            fprintf(stderr, "case %zu (element %d) decoded: %s\n", k, cases[k].i, fl_errname(rv));
        }
        CHECK_EQ_INT(rv, FL_EDECODE);
    }
    /* An open tuple skips what a newer peer appended. */
    CHECK_OK(decode_with(&e, REC_ELEMS, 20, "\x91\x93\xa1n\x01\xc0", 6, NULL));
    fl_buf_close(&e.b);
}

TEST(formats_and_field_counts)
{
    struct elems e;
    struct rec r, back;
    char err[FL_ERRMSG_SIZE] = "";
    void *arena = NULL;
    rec_fill(&r);
    split(&r, &e);
    /* Format 1 has no `later`: it reads as 0. */
    CHECK_OK(decode_with(&e, REC_ELEMS - 1, 0, "\x01", 1, NULL));
    CHECK_EQ_INT(decode_with(&e, REC_ELEMS, 0, "\x01", 1, err), FL_EDECODE); /* one too many */
    CHECK_EQ_INT(decode_with(&e, REC_ELEMS - 1, 0, "\x02", 1, err), FL_EDECODE);
    CHECK_EQ_INT(decode_with(&e, REC_ELEMS + 1, -1, NULL, 0, err), FL_EDECODE); /* exact */
    CHECK_EQ_INT(decode_with(&e, REC_ELEMS, 0, "\x03", 1, err), FL_EVERSION);
    CHECK_EQ_INT(decode_with(&e, REC_ELEMS, 0, "\x00", 1, err), FL_EVERSION);
    CHECK_EQ_INT(decode_with(&e, REC_ELEMS, 0,
                             "\xa1"
                             "1",
                             2, err),
                 FL_EDECODE);
    /* The format-1 record, field by field. */
    {
        struct fl_buf out;
        fl_buf_init(&out);
        fl_buf_append(&out, "\xdc\x00\x15\x01", 4);
        fl_buf_append(&out, e.b.data + e.off[1], e.off[REC_ELEMS - 1] - e.off[1]);
        CHECK_OK(schema_decode_record(&rec_schema, out.data, out.len, &back, &arena, err));
        CHECK(back.later == 0);
        CHECK_EQ_STR(back.str, "hello");
        fl_free(arena);
        fl_buf_close(&out);
    }
    /* The rule across fields runs on decode too. */
    r.u32 = 666;
    CHECK_EQ_INT(schema_validate(&rec_schema, &r, SIZE_MAX, err), FL_EINVAL);
    CHECK(strstr(err, "666") != NULL);
    fl_buf_close(&e.b);
}

TEST(validator_refuses_what_the_decoder_would)
{
    char err[FL_ERRMSG_SIZE] = "";
    const char *bad_strs[] = {"a", NULL};
    struct rec r;
    struct fl_buf b;
    fl_buf_init(&b);
#define REFUSED(change, code)                                                                      \
    do {                                                                                           \
        rec_fill(&r);                                                                              \
        change;                                                                                    \
        CHECK_EQ_INT(schema_validate(&rec_schema, &r, 100, err), code);                            \
        CHECK_EQ_INT(schema_encode_record(&rec_schema, &r, &b, err), code);                        \
        CHECK(b.len == 0);                                                                         \
        b.len = 0;                                                                                 \
    } while (0)
    REFUSED(r.small = 0, FL_EINVAL);
    REFUSED(r.small = 10, FL_EINVAL);
    REFUSED(r.state = -1, FL_EINVAL);
    REFUSED(r.str = "0123456789a", FL_EINVAL);
    REFUSED(r.str = "x", FL_EINVAL);
    REFUSED(memcpy(r.chars, "abcdef", 6), FL_EINVAL); /* no NUL */
    REFUSED(r.chars[0] = '\0', FL_EINVAL);
    REFUSED(r.bin_len = 17, FL_EINVAL);
    REFUSED((r.bin = NULL, r.bin_len = 1), FL_EINVAL);
    REFUSED(r.n_words = 4, FL_EINVAL);
    REFUSED(r.n_strs = 4, FL_EINVAL);
    REFUSED((r.strs = bad_strs, r.n_strs = 2), FL_EINVAL);
    REFUSED((r.strs = NULL, r.n_strs = 1), FL_EINVAL);
    REFUSED(r.n_labels = 3, FL_EINVAL);
    REFUSED(memcpy(r.labels[1], "abcd", 4), FL_EINVAL);
    REFUSED(r.fixed[1] = 1001, FL_EINVAL);
    REFUSED(r.in.name[0] = '\0', FL_EINVAL);
    REFUSED(r.u32 = 666, FL_EINVAL);
#undef REFUSED
    /* The limit bounds strings whose max is 0 (FL_ETOOBIG). */
    {
        static const struct schema_field f[] = {SCHEMA_F_STR(rec, str, 0, 0)};
        static const struct schema sc = {"open", SCHEMA_TABLE(f), sizeof(struct rec), 1, 1, 1,
                                         NULL};
        rec_fill(&r);
        CHECK_EQ_INT(schema_validate(&sc, &r, 4, err), FL_ETOOBIG);
        CHECK_OK(schema_validate(&sc, &r, 5, err));
    }
    fl_buf_close(&b);
}

/* Without an arena: binaries point into the input, strings by pointer are
 * refused, heap arrays get their own block with one spare element. */
struct heaprec {
    const uint8_t *blob;
    size_t blob_len;
    uint32_t n;
    struct inner *items;
};
static const struct schema_field heap_fields[] = {
    SCHEMA_F_BIN(heaprec, blob, blob_len, 1, 0),
    SCHEMA_F_ARRAY(heaprec, items, n, 4, &inner_elem, .flags = SCHEMA_HEAP),
};
static const struct schema heap_schema = {
    "heaprec", SCHEMA_TABLE(heap_fields), sizeof(struct heaprec), 1, 1, 1, NULL};

TEST(borrowing_and_heap_arrays)
{
    struct inner two[2] = {{"a", 1}, {"b", 2}};
    struct heaprec h = {bin, sizeof bin, 2, two}, back;
    struct rec r, rb;
    struct fl_buf b;
    char err[FL_ERRMSG_SIZE] = "";
    fl_buf_init(&b);
    REQUIRE(schema_encode_record(&heap_schema, &h, &b, NULL) == FL_OK);
    CHECK_OK(schema_decode_record(&heap_schema, b.data, b.len, &back, NULL, NULL));
    CHECK(back.blob > b.data && back.blob < b.data + b.len); /* borrowed */
    CHECK(back.n == 2 && strcmp(back.items[1].name, "b") == 0 && back.items[1].v == 2);
    back.items[2] = two[0]; /* the spare element */
    fl_free(back.items);
    /* A failed decode leaves the block to the caller. */
    b.data[b.len - 1] = 0xc0; /* the last v: nil */
    CHECK_EQ_INT(schema_decode_record(&heap_schema, b.data, b.len, &back, NULL, NULL), FL_EDECODE);
    CHECK(back.items != NULL);
    fl_free(back.items);
    fl_buf_close(&b);
    /* A table with strings by pointer needs an arena. */
    fl_buf_init(&b);
    rec_fill(&r);
    REQUIRE(schema_encode_record(&rec_schema, &r, &b, NULL) == FL_OK);
    CHECK_EQ_INT(schema_decode_record(&rec_schema, b.data, b.len, &rb, NULL, err), FL_EDECODE);
    CHECK(strstr(err, "arena") != NULL);
    fl_buf_close(&b);
}

/* The measuring pass allocates nothing and sizes the one block: at most a
 * small multiple of the input (pointers for arrays of short strings). */
TEST(arena_is_bounded_by_the_input)
{
    struct rec r, back;
    struct schema_dec d;
    struct fl_buf b;
    uint64_t format;
    uint32_t n;
    rec_fill(&r);
    fl_buf_init(&b);
    REQUIRE(schema_encode_record(&rec_schema, &r, &b, NULL) == FL_OK);
    schema_dec_init(&d, b.data, b.len, SCHEMA_MEASURE, NULL);
    REQUIRE(fl_mp_array(&d.r, &n) == FL_OK && fl_mp_uint(&d.r, &format) == FL_OK);
    memset(&back, 0, sizeof back);
    CHECK_OK(schema_dec_fields(&d, &rec_schema, n - 1, (uint8_t)format, &back));
    CHECK(back.str == NULL && back.strs == NULL); /* measuring: no pointer set */
    /* "hello\0", 3 short strings and their pointers, 2 inners, alignment */
    CHECK(d.used >= 6 + 2 + 3 + 4 + 3 * sizeof(char *) + 2 * sizeof(struct inner));
    CHECK(d.used <= 16 * b.len + 64);
    fl_buf_close(&b);
}

/* Counted strings (SCHEMA_STRN): a length beside the pointer, NUL bytes
 * allowed, borrowed from the input or copied into the arena; as elements of
 * an inline array their lengths can be a parallel array. */
struct counted {
    const char *s;
    size_t n;
    uint32_t n_tags;
    const char *tags[3];
    size_t tag_lens[3];
};

static int no_q(const char *s, size_t n)
{
    return memchr(s, 'q', n) == NULL;
}

static const struct schema_field tag_elem = SCHEMA_E_STRN(
    (uint32_t)(offsetof(struct counted, tag_lens) - offsetof(struct counted, tags)), 1, 4, no_q);
static const struct schema_field counted_fields[] = {
    SCHEMA_F_STRN(counted, s, n, 0, 6),
    SCHEMA_F_INLINE(counted, tags, n_tags, &tag_elem),
};
static const struct schema counted_schema = {
    "counted", SCHEMA_TABLE(counted_fields), sizeof(struct counted), 1, 1, 1, NULL};

TEST(counted_strings)
{
    char err[FL_ERRMSG_SIZE] = "";
    struct counted in = {
        .s = "a\0b", .n = 3, .n_tags = 2, .tags = {"xy", "zzzz"}, .tag_lens = {2, 4}};
    struct counted out;
    struct fl_buf b;
    void *arena = NULL;
    fl_buf_init(&b);
    CHECK_OK(schema_table_check(&counted_schema, err));
    CHECK_OK(schema_encode_record(&counted_schema, &in, &b, err));
    /* borrowed: into the input */
    CHECK_OK(schema_decode_record(&counted_schema, b.data, b.len, &out, NULL, err));
    CHECK(out.n == 3 && memcmp(out.s, "a\0b", 3) == 0);
    CHECK((const uint8_t *)out.s > b.data && (const uint8_t *)out.s < b.data + b.len);
    CHECK(out.n_tags == 2 && out.tag_lens[1] == 4 && memcmp(out.tags[1], "zzzz", 4) == 0);
    /* copied: NUL-terminated, outside the input */
    CHECK_OK(schema_decode_record(&counted_schema, b.data, b.len, &out, &arena, err));
    CHECK(out.n == 3 && memcmp(out.s, "a\0b", 4) == 0);
    CHECK(strcmp(out.tags[0], "xy") == 0 && out.tag_lens[0] == 2);
    CHECK((const uint8_t *)out.s < b.data || (const uint8_t *)out.s >= b.data + b.len);
    fl_free(arena);
    /* bounds, both directions */
    in.n = 7;
    in.s = "1234567";
    CHECK_EQ_INT(schema_validate(&counted_schema, &in, SIZE_MAX, err), FL_EINVAL);
    in.n = 3;
    in.tags[0] = "aqa";
    in.tag_lens[0] = 3;
    CHECK_EQ_INT(schema_validate(&counted_schema, &in, SIZE_MAX, err), FL_EINVAL);
    in.tags[0] = "";
    in.tag_lens[0] = 0;
    CHECK_EQ_INT(schema_validate(&counted_schema, &in, SIZE_MAX, err), FL_EINVAL);
    in.s = NULL;
    CHECK_EQ_INT(schema_validate(&counted_schema, &in, SIZE_MAX, err), FL_EINVAL);
    {
        /* [1, "1234567", []] and [1, "ab", ["aqa"]] */
        static const uint8_t long_s[] = {0x93, 1, 0xa7, '1', '2', '3', '4', '5', '6', '7', 0x90};
        static const uint8_t bad_tag[] = {0x93, 1, 0xa2, 'a', 'b', 0x91, 0xa3, 'a', 'q', 'a'};
        CHECK_EQ_INT(schema_decode_record(&counted_schema, long_s, sizeof long_s, &out, NULL, err),
                     FL_EDECODE);
        CHECK_EQ_INT(
            schema_decode_record(&counted_schema, bad_tag, sizeof bad_tag, &out, NULL, err),
            FL_EDECODE);
    }
    fl_buf_close(&b);
    {
        /* a parallel length past the struct's end */
        static const struct schema_field far_elem = SCHEMA_E_STRN(64, 0, 4, NULL);
        static const struct schema_field f[] = {
            SCHEMA_F_INLINE(counted, tags, n_tags, &far_elem),
        };
        static const struct schema sc = {"bad", SCHEMA_TABLE(f), sizeof(struct counted), 1, 1, 1,
                                         NULL};
        CHECK_EQ_INT(schema_table_check(&sc, err), FL_EINVAL);
    }
}

TEST(tables_are_sound)
{
    char err[FL_ERRMSG_SIZE] = "";
    for (size_t i = 0; i < store__n_formats; i++) {
        int rv = schema_table_check(store__formats[i], err);
        if (rv != FL_OK) {
            fprintf(stderr, "%s\n", err);
        }
        CHECK_OK(rv);
    }
    for (int t = 1; t < APROTO__TYPE_MAX; t++) {
        int rv = schema_table_check(aproto__schema(t), err);
        if (rv != FL_OK) {
            fprintf(stderr, "%s\n", err);
        }
        CHECK_OK(rv);
    }
    CHECK_OK(schema_table_check(&rec_schema, err));
    CHECK_OK(schema_table_check(&heap_schema, err));
    /* Broken tables. */
    {
        static const struct schema_field late_first[] = {
            SCHEMA_F_UINT(tiny, a, 0, 0, .since = 3),
            SCHEMA_F_UINT(tiny, b, 0, 0),
        };
        static const struct schema sc = {
            "bad", SCHEMA_TABLE(late_first), sizeof(struct tiny), 3, 1, 1, NULL};
        CHECK_EQ_INT(schema_table_check(&sc, err), FL_EINVAL);
    }
    {
        static const struct schema_field f[] = {
            {.name = "s", .type = SCHEMA_CHARS, .size = 4, .max = 4},
        };
        static const struct schema sc = {"bad", SCHEMA_TABLE(f), sizeof(struct tiny), 1, 1, 1,
                                         NULL};
        CHECK_EQ_INT(schema_table_check(&sc, err), FL_EINVAL);
    }
    {
        static const struct schema_field f[] = {
            {.name = "b", .type = SCHEMA_UINT, .size = 1, .max = 300},
        };
        static const struct schema sc = {"bad", SCHEMA_TABLE(f), sizeof(struct tiny), 1, 1, 1,
                                         NULL};
        CHECK_EQ_INT(schema_table_check(&sc, err), FL_EINVAL);
    }
}

int main(void)
{
    RUN(round_trip_every_type);
    RUN(counted_strings);
    RUN(bytes_are_shortest_forms);
    RUN(truncated_and_trailing_input);
    RUN(wrong_types_refused);
    RUN(bounds_refused);
    RUN(formats_and_field_counts);
    RUN(validator_refuses_what_the_decoder_would);
    RUN(borrowing_and_heap_arrays);
    RUN(arena_is_bounded_by_the_input);
    RUN(tables_are_sound);
    return check_summary();
}
