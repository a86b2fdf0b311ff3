/* schema/ — one engine for Flotilla's positional msgpack formats.
 *
 * A format is a table of fields (struct schema): for each field its wire
 * type, where it lives in the C struct, its bounds, and the format version
 * that appended it. The same table drives the three operations, so they
 * cannot disagree about what is sendable or storable:
 *
 *   schema_validate     every field of a C struct against its bounds
 *   schema_pack_fields  the fields in table order (common/mpwrite.h)
 *   schema_dec_fields   the total decoder (common/mpread.h underneath)
 *
 * and, for store records ([format, field...]), schema_encode_record and
 * schema_decode_record around them. The agent protocol (agentproto/) reads
 * its own header ([version, type, field...]) and uses the field calls.
 *
 * Wire: a struct is a msgpack array of its fields in table order. Integers
 * are written in their shortest form (as msgpack-c writes them), strings as str,
 * binaries as bin, arrays as array, nested structs as arrays again.
 *
 * Decoders are total: they never read outside the input, refuse every value
 * outside the table's bounds (FL_EDECODE, errmsg names the field) and never
 * allocate more than the input can justify. In borrowing mode nothing is
 * allocated at all (binaries point into the input); with an arena the
 * decoder first measures, allocating nothing, then fills one exact block. */
#ifndef FL_SCHEMA_SCHEMA_H
#define FL_SCHEMA_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/mpread.h"

enum schema_type {
    /* An unsigned integer: a C integer of `size` bytes (1, 2, 4, 8; an int
     * holding an enum is 4), value in [min, max]; max 0 = the C type's. */
    SCHEMA_UINT = 1,
    /* A signed integer (msgpack int): int32_t (size 4) or int64_t (size 8). */
    SCHEMA_INT,
    /* An int32_t carried as the unsigned integer value + 2^31 (the store's
     * records do this so that every number in them is unsigned). */
    SCHEMA_INT_OFS,
    /* bool (size 1) or int (size 4); any non-zero value encodes as true. */
    SCHEMA_BOOL,
    /* const char *: a NUL-terminated string, length in [min, max] (max 0 =
     * bounded by the input, or by the validator's limit), then `valid`. No
     * NUL byte inside. Encodes NULL as ""; decodes into the arena only. */
    SCHEMA_STR,
    /* char[size]: a string stored in place, length in [min, max] with
     * max <= size - 1, then `valid`. */
    SCHEMA_CHARS,
    /* const uint8_t * at off and its length at off_n (an integer of n_size
     * bytes) counted in units of `size` bytes (0 = 1): the wire holds
     * length * size bytes, with length in [min, max] (max 0 = unbounded). */
    SCHEMA_BIN,
    /* uint8_t[size]: a bin of exactly size bytes. */
    SCHEMA_BYTES,
    /* An array of elements described by `elem` (a field whose off is 0),
     * `size` bytes apart. In place (SCHEMA_INLINE: T field[max]) or through a
     * pointer at off (decoded into the arena). The count is at off_n (n_size
     * bytes) within [min, max]; n_size 0 = always exactly max elements. */
    SCHEMA_ARRAY,
    /* A nested struct at off, described by `sub`: an array of its fields. */
    SCHEMA_TUPLE,
    /* A counted string: const char * at off and its length in bytes at off_n
     * (an integer of n_size bytes), length in [min, max] (max 0 = bounded by
     * the input, or by the validator's limit), then `valid`. A NUL byte is a
     * byte like any other (`valid` may refuse it). Decoded without an arena
     * it points into the input (not NUL-terminated); with one it is copied
     * and NUL-terminated. Encodes NULL with length 0 as "". As the element of
     * an inline array of pointers, off_n may name a parallel array of
     * lengths of the same stride: T *s[N] followed by size_t lens[N]. */
    SCHEMA_STRN,
};

#define SCHEMA_INLINE 1u /* SCHEMA_ARRAY: the elements are in the struct */
/* SCHEMA_ARRAY through a pointer, decoded without an arena: the elements go
 * to their own fl_calloc block with room for one more (the owner appends
 * without reallocating). The caller frees it, also after a failed decode
 * (the pointer is set as soon as the block is). */
#define SCHEMA_HEAP 2u

/* A string check beyond the length bounds: 1 if s[0..n) is acceptable. s has
 * no NUL byte in [0, n) and need not be NUL-terminated. */
typedef int (*schema_valid_fn)(const char *s, size_t n);

struct schema;

struct schema_field {
    const char *name;
    uint8_t type;   /* enum schema_type */
    uint8_t n_size; /* bytes of the count or length at off_n */
    uint8_t flags;  /* SCHEMA_INLINE, SCHEMA_HEAP */
    uint8_t since;  /* the format version that appended it; 0 = present in all */
    uint32_t size;  /* see the types above */
    uint32_t off;   /* offsetof the field in its struct */
    uint32_t off_n; /* offsetof its count or length */
    uint64_t min, max;
    schema_valid_fn valid;           /* STR, CHARS; NULL = any (no NUL) */
    const struct schema_field *elem; /* ARRAY */
    const struct schema *sub;        /* TUPLE */
};

struct schema {
    const char *name;
    const struct schema_field *fields;
    uint32_t n_fields;
    uint32_t size; /* sizeof the C struct */
    /* Records: the current format version, written first, and the oldest one
     * still read (a format-v record holds the fields with since <= v; later
     * fields read as zero). 0: no version element (a nested tuple, or a
     * message whose protocol reads its own header). */
    uint8_t version, oldest;
    /* 1: an array holds exactly the fields of its format; 0: at least, and
     * trailing elements a newer peer appended are skipped. */
    uint8_t exact;
    /* Rules across fields; NULL if none. Runs on a complete struct whose
     * fields passed their own checks; `sending` is 1 in the validator (the
     * encoder side may be stricter). FL_OK, or FL_EINVAL with errmsg. */
    int (*check)(const void *obj, int sending, char *errmsg);
    /* Records: the format to write obj in (oldest..version), so that a
     * record whose newer fields are all unset keeps the bytes older code
     * wrote (a log written before the fields existed applies to the same
     * digest); NULL: always `version`. */
    uint8_t (*format)(const void *obj);
};

/* ---- validation and encoding --------------------------------------------- */

/* Check every field of obj against sc (then sc->check with sending 1).
 * `limit` bounds strings and binaries whose max is 0 (FL_ETOOBIG beyond).
 * FL_OK or FL_EINVAL (FL_ETOOBIG) with errmsg (FL_ERRMSG_SIZE or NULL). */
int schema_validate(const struct schema *sc, const void *obj, size_t limit, char *errmsg);

/* Append obj's fields present in format `format` to out, in table order,
 * without an array header and without validation. FL_OK or FL_ENOMEM (out
 * then holds a partial encoding: the caller cuts it back). */
int schema_pack_fields(const struct schema *sc, const void *obj, uint8_t format,
                       struct fl_buf *out);

/* The number of fields of format `format` (those with since <= format). */
uint32_t schema_n_fields(const struct schema *sc, uint8_t format);

/* A record: validate obj (limit SIZE_MAX) and append
 * [format, field...], format sc->format(obj) if the table has that hook,
 * else sc->version. FL_OK, FL_EINVAL (errmsg), FL_ENOMEM. On error
 * out is as it was. */
int schema_encode_record(const struct schema *sc, const void *obj, struct fl_buf *out,
                         char *errmsg);

/* ---- decoding ------------------------------------------------------------- */

enum schema_mode {
    SCHEMA_BORROW,  /* no arena: binaries point into the input; STR and
                     * pointer arrays are refused (the table needs an arena)
                     * unless SCHEMA_HEAP */
    SCHEMA_MEASURE, /* check everything, allocate nothing, count arena bytes */
    SCHEMA_FILL,    /* copy into the arena the measuring pass sized */
};

struct schema_dec {
    struct fl_mp r;
    int mode;       /* enum schema_mode */
    uint8_t *arena; /* SCHEMA_FILL */
    size_t used;    /* arena bytes used (filling) or needed (measuring) */
    size_t cap;
    const char *name; /* the top-level format, for messages */
    char *errmsg;
};

void schema_dec_init(struct schema_dec *d, const uint8_t *p, size_t len, int mode, char *errmsg);

/* Decode the n elements of an array (whose header the caller has read) as
 * the fields of format `format` of sc into obj: at least those fields
 * (exactly, if sc->exact); extra trailing elements are skipped. Scalars are
 * written in every mode, pointers in SCHEMA_BORROW and SCHEMA_FILL. Does not
 * run sc->check. FL_OK or FL_EDECODE with errmsg. */
int schema_dec_fields(struct schema_dec *d, const struct schema *sc, uint32_t n, uint8_t format,
                      void *obj);

/* A record [format, field...] from p[0..len), all of it, into obj (zeroed
 * first, sc->size bytes), then sc->check. Without an arena (arena NULL)
 * binaries point into p; with one, everything is copied into one block
 * (*arena, NULL if none was needed; the caller frees it with fl_free, also
 * when obj is no longer used). FL_OK; FL_EVERSION for a format outside
 * oldest..version; FL_EDECODE for anything else malformed; FL_ENOMEM. On
 * error obj holds garbage and *arena is NULL. */
int schema_decode_record(const struct schema *sc, const void *p, size_t len, void *obj,
                         void **arena, char *errmsg);

/* ---- tables --------------------------------------------------------------- */

/* Check a table itself: fields appended in version order, bounds that fit
 * their C storage, element and tuple descriptions present. FL_OK or
 * FL_EINVAL with errmsg. Tests and fuzz harnesses call it on every table. */
int schema_table_check(const struct schema *sc, char *errmsg);

/* Helpers for the tables. The trailing arguments are further designated
 * initializers (.since = 2, .valid = fn). */
#define SCHEMA__SIZEOF(st, fld) sizeof(((struct st *)0)->fld)
#define SCHEMA__OFF(st, fld)    (uint32_t) offsetof(struct st, fld)
/* clang-format off */
#define SCHEMA_F_UINT(st, fld, lo, hi, ...)                                                   \
    {.name = #fld, .type = SCHEMA_UINT, .size = SCHEMA__SIZEOF(st, fld),                   \
     .off = SCHEMA__OFF(st, fld), .min = (lo), .max = (hi), __VA_ARGS__}
#define SCHEMA_F_INT(st, fld, ...)                                                            \
    {.name = #fld, .type = SCHEMA_INT, .size = SCHEMA__SIZEOF(st, fld),                    \
     .off = SCHEMA__OFF(st, fld), __VA_ARGS__}
#define SCHEMA_F_INT_OFS(st, fld, ...)                                                        \
    {.name = #fld, .type = SCHEMA_INT_OFS, .size = 4, .off = SCHEMA__OFF(st, fld), __VA_ARGS__}
#define SCHEMA_F_BOOL(st, fld, ...)                                                           \
    {.name = #fld, .type = SCHEMA_BOOL, .size = SCHEMA__SIZEOF(st, fld),                   \
     .off = SCHEMA__OFF(st, fld), __VA_ARGS__}
#define SCHEMA_F_STR(st, fld, lo, hi, ...)                                                    \
    {.name = #fld, .type = SCHEMA_STR, .size = sizeof(const char *),                       \
     .off = SCHEMA__OFF(st, fld), .min = (lo), .max = (hi), __VA_ARGS__}
#define SCHEMA_F_CHARS(st, fld, lo, ...)                                                      \
    {.name = #fld, .type = SCHEMA_CHARS, .size = SCHEMA__SIZEOF(st, fld),                  \
     .off = SCHEMA__OFF(st, fld), .min = (lo), .max = SCHEMA__SIZEOF(st, fld) - 1,         \
     __VA_ARGS__}
#define SCHEMA_F_BIN(st, fld, nfld, unit, hi, ...)                                            \
    {.name = #fld, .type = SCHEMA_BIN, .n_size = SCHEMA__SIZEOF(st, nfld), .size = (unit), \
     .off = SCHEMA__OFF(st, fld), .off_n = SCHEMA__OFF(st, nfld), .max = (hi), __VA_ARGS__}
#define SCHEMA_F_STRN(st, fld, nfld, lo, hi, ...)                                             \
    {.name = #fld, .type = SCHEMA_STRN, .n_size = SCHEMA__SIZEOF(st, nfld),                \
     .size = sizeof(const char *), .off = SCHEMA__OFF(st, fld),                            \
     .off_n = SCHEMA__OFF(st, nfld), .min = (lo), .max = (hi), __VA_ARGS__}
#define SCHEMA_F_BYTES(st, fld, ...)                                                          \
    {.name = #fld, .type = SCHEMA_BYTES, .size = SCHEMA__SIZEOF(st, fld),                  \
     .off = SCHEMA__OFF(st, fld), __VA_ARGS__}
/* T *fld with its count in nfld: elements in the arena. */
#define SCHEMA_F_ARRAY(st, fld, nfld, hi, el, ...)                                            \
    {.name = #fld, .type = SCHEMA_ARRAY, .n_size = SCHEMA__SIZEOF(st, nfld),               \
     .size = sizeof(*((struct st *)0)->fld), .off = SCHEMA__OFF(st, fld),                  \
     .off_n = SCHEMA__OFF(st, nfld), .max = (hi), .elem = (el), __VA_ARGS__}
/* T fld[N] with its count in nfld: at most N. */
#define SCHEMA_F_INLINE(st, fld, nfld, el, ...)                                               \
    {.name = #fld, .type = SCHEMA_ARRAY, .flags = SCHEMA_INLINE,                           \
     .n_size = SCHEMA__SIZEOF(st, nfld), .size = SCHEMA__SIZEOF(st, fld[0]),               \
     .off = SCHEMA__OFF(st, fld), .off_n = SCHEMA__OFF(st, nfld),                          \
     .max = SCHEMA__SIZEOF(st, fld) / SCHEMA__SIZEOF(st, fld[0]), .elem = (el), __VA_ARGS__}
/* T *fld[N], NULL-terminated, with its count in nfld: at most N - 1, so a
 * NULL always follows the last element (the decoder zeroes the rest). */
#define SCHEMA_F_INLINE_NT(st, fld, nfld, el, ...)                                            \
    {.name = #fld, .type = SCHEMA_ARRAY, .flags = SCHEMA_INLINE,                           \
     .n_size = SCHEMA__SIZEOF(st, nfld), .size = SCHEMA__SIZEOF(st, fld[0]),               \
     .off = SCHEMA__OFF(st, fld), .off_n = SCHEMA__OFF(st, nfld),                          \
     .max = SCHEMA__SIZEOF(st, fld) / SCHEMA__SIZEOF(st, fld[0]) - 1, .elem = (el), __VA_ARGS__}
/* T fld[N]: always N elements. */
#define SCHEMA_F_FIXED(st, fld, el, ...)                                                      \
    {.name = #fld, .type = SCHEMA_ARRAY, .flags = SCHEMA_INLINE,                           \
     .size = SCHEMA__SIZEOF(st, fld[0]), .off = SCHEMA__OFF(st, fld),                      \
     .min = SCHEMA__SIZEOF(st, fld) / SCHEMA__SIZEOF(st, fld[0]),                           \
     .max = SCHEMA__SIZEOF(st, fld) / SCHEMA__SIZEOF(st, fld[0]), .elem = (el), __VA_ARGS__}
#define SCHEMA_F_TUPLE(st, fld, sc, ...)                                                      \
    {.name = #fld, .type = SCHEMA_TUPLE, .size = SCHEMA__SIZEOF(st, fld),                  \
     .off = SCHEMA__OFF(st, fld), .sub = (sc), __VA_ARGS__}

/* Elements of arrays (offset 0 in their slot). */
#define SCHEMA_E_UINT(T, lo, hi) {.type = SCHEMA_UINT, .size = sizeof(T), .min = (lo), .max = (hi)}
#define SCHEMA_E_STR(lo, hi, fn)    {.type = SCHEMA_STR, .size = sizeof(const char *), .min = (lo), .max = (hi), .valid = (fn)}
#define SCHEMA_E_CHARS(n, lo, fn)   {.type = SCHEMA_CHARS, .size = (n), .min = (lo), .max = (n) - 1, .valid = (fn)}
/* A counted string whose length is `gap` bytes after it (a parallel array). */
#define SCHEMA_E_STRN(gap, lo, hi, fn) {.type = SCHEMA_STRN, .n_size = sizeof(size_t), .size = sizeof(const char *), .off_n = (gap), .min = (lo), .max = (hi), .valid = (fn)}
#define SCHEMA_E_TUPLE(T, sc)    {.type = SCHEMA_TUPLE, .size = sizeof(T), .sub = (sc)}

#define SCHEMA_TABLE(tbl) (tbl), (uint32_t)(sizeof(tbl) / sizeof((tbl)[0]))
/* clang-format on */

#endif
