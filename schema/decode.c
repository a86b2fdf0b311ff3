/* schema/ — the decoder: positional msgpack into a C struct, driven by the
 * same tables as the encoder.
 *
 * Bytes come from disk or from the network, so nothing in them is trusted:
 * every read goes through the total reader of common/mpread.h, every value
 * is checked against its field's bounds before it is stored, and counts are
 * checked against the table before anything is sized from them. In place
 * fields (CHARS, BYTES, inline arrays) are bounded by their C storage.
 *
 * With an arena the decoder runs twice over the same code: the measuring
 * pass checks everything and counts the bytes the pointers will need,
 * allocating nothing; the filling pass copies into one block of exactly that
 * size. What the first pass accepted, the second cannot refuse (same bytes,
 * same code); the block's bound is still checked, so a bug could only fail
 * the decode. */
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "schema/schema_int.h"

/* Where empty arrays and binaries point in the arena modes (never written). */
static union {
    max_align_t align;
    uint8_t byte;
} empty_obj;

void schema_dec_init(struct schema_dec *d, const uint8_t *p, size_t len, int mode, char *errmsg)
{
    memset(d, 0, sizeof *d);
    fl_mp_init(&d->r, p, len);
    d->mode = mode;
    d->name = "record";
    d->errmsg = errmsg;
}

static const char *fname(const struct schema_field *f)
{
    return f->name != NULL ? f->name : "element";
}

static int bad(struct schema_dec *d, const struct schema_field *f, const char *what)
{
    return fl_errf(d->errmsg, FL_EDECODE, "%s.%s: %s", d->name, fname(f), what);
}

/* n bytes of the arena, aligned. Measuring: counted, NULL returned.
 * Filling: the bytes, or NULL (and *ok cleared) past the block. */
static void *take(struct schema_dec *d, size_t n, size_t align, int *ok)
{
    void *p;
    if (n == 0) {
        return (void *)&empty_obj;
    }
    d->used = (d->used + align - 1) & ~(align - 1);
    if (d->mode == SCHEMA_MEASURE) {
        d->used += n;
        return NULL;
    }
    if (n > d->cap || d->used > d->cap - n) {
        *ok = 0;
        return NULL;
    }
    p = d->arena + d->used;
    d->used += n;
    return p;
}

static int dec_field(struct schema_dec *d, const struct schema_field *f, uint8_t *base, long idx);

static int dec_uint(struct schema_dec *d, const struct schema_field *f, uint8_t *p, long idx)
{
    uint64_t v;
    if (d->r.pos < d->r.len && d->r.p[d->r.pos] < 0x80) { /* positive fixint */
        v = d->r.p[d->r.pos++];
    } else if (fl_mp_uint(&d->r, &v) != FL_OK || v > schema__type_max(f->size)) {
        return bad(d, f, "not an unsigned integer in range");
    }
    if (schema__check_uint(d->name, f, v, idx, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    schema__put_uint(p, f->size, v);
    return FL_OK;
}

static int dec_int(struct schema_dec *d, const struct schema_field *f, uint8_t *p)
{
    int64_t v;
    int32_t i32;
    uint64_t u;
    if (f->type == SCHEMA_INT_OFS) {
        if (fl_mp_uint(&d->r, &u) != FL_OK || u > UINT32_MAX) {
            return bad(d, f, "not an offset 32-bit integer");
        }
        v = (int64_t)u - 2147483648LL;
    } else if (fl_mp_int(&d->r, &v) != FL_OK ||
               (f->size == 4 && (v < INT32_MIN || v > INT32_MAX))) {
        return bad(d, f, f->size == 4 ? "not a 32-bit integer" : "not an integer");
    }
    if (f->size == 4) {
        i32 = (int32_t)v;
        memcpy(p, &i32, 4);
    } else {
        memcpy(p, &v, 8);
    }
    return FL_OK;
}

/* STR into the arena, NUL-terminated; CHARS in place. */
static int dec_str(struct schema_dec *d, const struct schema_field *f, uint8_t *p, long idx)
{
    const char *s;
    size_t n;
    char *copy;
    int ok = 1;
    if (fl_mp_str(&d->r, &s, &n) != FL_OK) {
        return bad(d, f, "not a string");
    }
    if (schema__check_str(d->name, f, s, n, idx, SIZE_MAX, 0, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    if (f->type == SCHEMA_CHARS) { /* the check kept n <= max < size */
        memcpy(p, s, n);
        p[n] = '\0';
        return FL_OK;
    }
    if (d->mode == SCHEMA_BORROW) {
        return bad(d, f, "a string field needs an arena");
    }
    copy = take(d, n + 1, 1, &ok);
    if (!ok) {
        return bad(d, f, "arena overflow");
    }
    if (copy != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
        memcpy(p, &copy, sizeof copy);
    }
    return FL_OK;
}

/* A counted string: borrowed from the input, or copied (NUL-terminated). */
static int dec_strn(struct schema_dec *d, const struct schema_field *f, uint8_t *base, long idx)
{
    const char *s;
    char *copy;
    size_t n;
    int ok = 1;
    if (fl_mp_str(&d->r, &s, &n) != FL_OK) {
        return bad(d, f, "not a string");
    }
    if (schema__check_str(d->name, f, s, n, idx, SIZE_MAX, 0, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    if (d->mode == SCHEMA_BORROW) {
        copy = (char *)(uintptr_t)s;
    } else if ((copy = take(d, n + 1, 1, &ok)) != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    if (!ok) {
        return bad(d, f, "arena overflow");
    }
    if (d->mode != SCHEMA_MEASURE) {
        memcpy(base + f->off, &copy, sizeof copy);
    }
    schema__put_uint(base + f->off_n, f->n_size, n);
    return FL_OK;
}

static int dec_bin(struct schema_dec *d, const struct schema_field *f, uint8_t *base, long idx)
{
    uint64_t unit = f->size > 1 ? f->size : 1;
    const uint8_t *b;
    uint8_t *copy;
    size_t n;
    int ok = 1;
    if (fl_mp_bin(&d->r, &b, &n) != FL_OK) {
        return bad(d, f, "not a bin");
    }
    if (f->type == SCHEMA_BYTES) {
        if (n != f->size) {
            return bad(d, f, "not of its fixed length");
        }
        memcpy(base + f->off, b, n);
        return FL_OK;
    }
    if (n % unit != 0) {
        return bad(d, f, "not a whole number of units");
    }
    if (schema__check_count(d->name, f, n / unit, idx, SIZE_MAX, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    if (d->mode == SCHEMA_BORROW) {
        copy = (uint8_t *)(uintptr_t)b;
    } else if ((copy = take(d, n, 1, &ok)) != NULL && n > 0) {
        memcpy(copy, b, n);
    }
    if (!ok) {
        return bad(d, f, "arena overflow");
    }
    if (d->mode != SCHEMA_MEASURE) {
        memcpy(base + f->off, &copy, sizeof copy);
    }
    schema__put_uint(base + f->off_n, f->n_size, n / unit);
    return FL_OK;
}

/* Skip the elements of an array past the ones we know. */
static int skip_extra(struct schema_dec *d, uint32_t n, uint32_t known)
{
    for (uint32_t i = known; i < n; i++) {
        if (fl_mp_skip(&d->r) != FL_OK) {
            return fl_errf(d->errmsg, FL_EDECODE, "%s: malformed trailing element", d->name);
        }
    }
    return FL_OK;
}

static inline int dec_one(struct schema_dec *d, const struct schema_field *f, uint8_t *base,
                          long idx);

static int dec_array(struct schema_dec *d, const struct schema_field *f, uint8_t *base, long idx)
{
    /* Measuring, elements of a pointer array are decoded here and dropped. */
    uint64_t scratch[64];
    struct schema_field el = *f->elem;
    uint8_t *a = base + f->off;
    int inl = (f->flags & SCHEMA_INLINE) != 0, ok = 1, rv = FL_OK;
    uint32_t n;
    if (fl_mp_array(&d->r, &n) != FL_OK) {
        return bad(d, f, "not an array");
    }
    if (schema__check_count(d->name, f, n, idx, SIZE_MAX, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    if (!inl && d->mode == SCHEMA_BORROW) {
        if (!(f->flags & SCHEMA_HEAP)) {
            return bad(d, f, "an array field needs an arena");
        }
        if ((a = fl_calloc((size_t)n + 1, f->size)) == NULL) {
            return fl_errf(d->errmsg, FL_ENOMEM, "%s.%s: no memory for %u elements", d->name,
                           fname(f), n);
        }
        memcpy(base + f->off, &a, sizeof a); /* the caller's from now on */
    } else if (!inl) {
        if (f->size > sizeof scratch) {
            return bad(d, f, "elements too large for the decoder");
        }
        a = take(d, (size_t)n * f->size, 8, &ok);
        if (!ok) {
            return bad(d, f, "arena overflow");
        }
    }
    el.name = f->name; /* messages name the array */
    for (uint32_t i = 0; rv == FL_OK && i < n; i++) {
        uint8_t *slot = a != NULL ? a + (size_t)i * f->size : (uint8_t *)scratch;
        if (a == NULL) {
            memset(scratch, 0, f->size);
        }
        rv = dec_one(d, &el, slot, (long)i);
    }
    if (rv == FL_OK && !inl && a != NULL) {
        memcpy(base + f->off, &a, sizeof a);
    }
    if (rv == FL_OK && f->n_size != 0) {
        schema__put_uint(base + f->off_n, f->n_size, n);
    }
    return rv;
}

static int dec_tuple(struct schema_dec *d, const struct schema_field *f, uint8_t *p)
{
    uint32_t n;
    if (fl_mp_array(&d->r, &n) != FL_OK || n < f->sub->n_fields ||
        (f->sub->exact && n != f->sub->n_fields)) {
        return bad(
            d, f, f->sub->exact ? "not an array of its fields" : "not an array of enough elements");
    }
    return schema_dec_fields(d, f->sub, n, 0, p);
}

static int dec_field(struct schema_dec *d, const struct schema_field *f, uint8_t *base, long idx)
{
    uint8_t *p = base + f->off;
    bool b;
    switch (f->type) {
    case SCHEMA_UINT:
        return dec_uint(d, f, p, idx);
    case SCHEMA_INT:
    case SCHEMA_INT_OFS:
        return dec_int(d, f, p);
    case SCHEMA_BOOL:
        if (fl_mp_bool(&d->r, &b) != FL_OK) {
            return bad(d, f, "not a bool");
        }
        schema__put_uint(p, f->size, b);
        return FL_OK;
    case SCHEMA_STR:
    case SCHEMA_CHARS:
        return dec_str(d, f, p, idx);
    case SCHEMA_BIN:
    case SCHEMA_BYTES:
        return dec_bin(d, f, base, idx);
    case SCHEMA_STRN:
        return dec_strn(d, f, base, idx);
    case SCHEMA_ARRAY:
        return dec_array(d, f, base, idx);
    case SCHEMA_TUPLE:
        return dec_tuple(d, f, p);
    default:
        return bad(d, f, "unknown field type in the table");
    }
}

/* An unsigned integer in a positive fixint, most fields of most records,
 * without the call. */
static inline int dec_one(struct schema_dec *d, const struct schema_field *f, uint8_t *base,
                          long idx)
{
    if (f->type == SCHEMA_UINT && d->r.pos < d->r.len && d->r.p[d->r.pos] < 0x80) {
        uint64_t v = d->r.p[d->r.pos];
        if (v >= f->min && v <= schema__uint_max(f)) {
            d->r.pos++;
            schema__put_uint(base + f->off, f->size, v);
            return FL_OK;
        }
    }
    return dec_field(d, f, base, idx);
}

int schema_dec_fields(struct schema_dec *d, const struct schema *sc, uint32_t n, uint8_t format,
                      void *obj)
{
    uint32_t need = schema_n_fields(sc, format);
    int rv;
    if (n < need || (sc->exact && n != need)) {
        return fl_errf(d->errmsg, FL_EDECODE, "%s: %u fields, %s %u", sc->name, n,
                       sc->exact ? "format has" : "needs", need);
    }
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        if (sc->fields[i].since <= format && (rv = dec_one(d, &sc->fields[i], obj, -1)) != FL_OK) {
            return rv;
        }
    }
    return skip_extra(d, n, need);
}

/* One pass over [format, field...]. */
static int record_walk(struct schema_dec *d, const struct schema *sc, void *obj)
{
    uint64_t format;
    uint32_t n;
    int rv;
    memset(obj, 0, sc->size);
    if (fl_mp_array(&d->r, &n) != FL_OK || n == 0 || fl_mp_uint(&d->r, &format) != FL_OK) {
        return fl_errf(d->errmsg, FL_EDECODE, "%s: not an array led by a format", sc->name);
    }
    if (format < sc->oldest || format > sc->version) {
        return fl_errf(d->errmsg, FL_EVERSION, "%s: format %llu, this side reads %u..%u", sc->name,
                       (unsigned long long)format, sc->oldest, sc->version);
    }
    if ((rv = schema_dec_fields(d, sc, n - 1, (uint8_t)format, obj)) != FL_OK) {
        return rv;
    }
    if (fl_mp_end(&d->r) != FL_OK) {
        return fl_errf(d->errmsg, FL_EDECODE, "%s: %zu bytes after the record", sc->name,
                       d->r.len - d->r.pos);
    }
    return FL_OK;
}

static int record_check(const struct schema *sc, const void *obj, char *errmsg)
{
    return sc->check == NULL || sc->check(obj, 0, errmsg) == FL_OK ? FL_OK : FL_EDECODE;
}

int schema_decode_record(const struct schema *sc, const void *p, size_t len, void *obj,
                         void **arena, char *errmsg)
{
    struct schema_dec d;
    size_t need;
    int rv;
    if (arena == NULL) {
        schema_dec_init(&d, p, len, SCHEMA_BORROW, errmsg);
        d.name = sc->name;
        rv = record_walk(&d, sc, obj);
        return rv == FL_OK ? record_check(sc, obj, errmsg) : rv;
    }
    *arena = NULL;
    schema_dec_init(&d, p, len, SCHEMA_MEASURE, errmsg);
    d.name = sc->name;
    if ((rv = record_walk(&d, sc, obj)) != FL_OK) {
        return rv;
    }
    need = d.used;
    schema_dec_init(&d, p, len, SCHEMA_FILL, errmsg);
    d.name = sc->name;
    if (need > 0 && (d.arena = fl_malloc(need)) == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "%s: no memory for %zu bytes", sc->name, need);
    }
    d.cap = need;
    if ((rv = record_walk(&d, sc, obj)) == FL_OK) {
        rv = record_check(sc, obj, errmsg);
    }
    if (rv != FL_OK) {
        fl_free(d.arena);
        return rv;
    }
    *arena = d.arena;
    return FL_OK;
}
