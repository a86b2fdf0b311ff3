/* schema/ — the encoder: a struct's fields, in table order, written straight
 * into an fl_buf by common/mpwrite.h (shortest forms, the bytes msgpack-c
 * would write), so the bytes depend on the values only, not on the C types. */
#include <string.h>

#include "common/err.h"
#include "common/mpwrite.h"
#include "schema/schema_int.h"

static int pack_fields(struct fl_mpw *w, const struct schema *sc, const uint8_t *base,
                       uint8_t format);

static int64_t get_int(const uint8_t *p, unsigned size)
{
    int32_t i32;
    int64_t i64;
    if (size == 4) {
        memcpy(&i32, p, 4);
        return i32;
    }
    memcpy(&i64, p, 8);
    return i64;
}

static int pack_field(struct fl_mpw *w, const struct schema_field *f, const uint8_t *base);

/* Unsigned integers, most fields of most tables, without the call. */
static inline int pack_one(struct fl_mpw *w, const struct schema_field *f, const uint8_t *base)
{
    if (f->type == SCHEMA_UINT) {
        fl_mpw_uint(w, schema__get_uint(base + f->off, f->size));
        return FL_OK;
    }
    return pack_field(w, f, base);
}

static int pack_array(struct fl_mpw *w, const struct schema_field *f, const uint8_t *base)
{
    const uint8_t *a = base + f->off;
    uint64_t n = schema__count(f, base);
    int rv = FL_OK;
    if (!(f->flags & SCHEMA_INLINE)) {
        const uint8_t *ptr;
        memcpy(&ptr, a, sizeof ptr); /* the field holds the pointer */
        a = ptr;
    }
    if (n > UINT32_MAX || (a == NULL && n > 0)) {
        return FL_EINVAL;
    }
    fl_mpw_array(w, (uint32_t)n);
    for (uint64_t i = 0; rv == FL_OK && i < n; i++) {
        rv = pack_one(w, f->elem, a + i * f->size);
    }
    return rv;
}

static int pack_field(struct fl_mpw *w, const struct schema_field *f, const uint8_t *base)
{
    const uint8_t *p = base + f->off;
    const char *s;
    uint64_t n;
    switch (f->type) {
    case SCHEMA_UINT:
        fl_mpw_uint(w, schema__get_uint(p, f->size));
        return FL_OK;
    case SCHEMA_INT:
        fl_mpw_int(w, get_int(p, f->size));
        return FL_OK;
    case SCHEMA_INT_OFS:
        fl_mpw_uint(w, (uint64_t)(get_int(p, 4) + 2147483648LL));
        return FL_OK;
    case SCHEMA_BOOL:
        fl_mpw_bool(w, schema__get_uint(p, f->size) != 0);
        return FL_OK;
    case SCHEMA_STR:
        memcpy(&s, p, sizeof s);
        s = s != NULL ? s : "";
        n = strlen(s);
        break;
    case SCHEMA_CHARS:
        s = (const char *)p;
        n = strnlen(s, f->size);
        break;
    case SCHEMA_STRN:
        memcpy(&s, p, sizeof s);
        n = schema__get_uint(base + f->off_n, f->n_size);
        break;
    case SCHEMA_BIN:
        memcpy(&s, p, sizeof s);
        n = schema__count(f, base) * (f->size > 1 ? f->size : 1);
        if ((s == NULL && n > 0) || n > UINT32_MAX) {
            return FL_EINVAL;
        }
        fl_mpw_bin(w, s, (size_t)n);
        return FL_OK;
    case SCHEMA_BYTES:
        fl_mpw_bin(w, p, f->size);
        return FL_OK;
    case SCHEMA_ARRAY:
        return pack_array(w, f, base);
    default: /* SCHEMA_TUPLE */
        fl_mpw_array(w, f->sub->n_fields);
        return pack_fields(w, f->sub, p, 0);
    }
    /* the strings */
    if ((s == NULL && n > 0) || n > UINT32_MAX) {
        return FL_EINVAL;
    }
    fl_mpw_str(w, s, (size_t)n);
    return FL_OK;
}

static int pack_fields(struct fl_mpw *w, const struct schema *sc, const uint8_t *base,
                       uint8_t format)
{
    int rv = FL_OK;
    for (uint32_t i = 0; rv == FL_OK && i < sc->n_fields; i++) {
        if (sc->fields[i].since <= format) {
            rv = pack_one(w, &sc->fields[i], base);
        }
    }
    return rv;
}

int schema_pack_fields(const struct schema *sc, const void *obj, uint8_t format, struct fl_buf *out)
{
    struct fl_mpw w;
    fl_mpw_init(&w, out);
    return pack_fields(&w, sc, obj, format) == FL_OK && fl_mpw_done(&w) == FL_OK ? FL_OK
                                                                                 : FL_ENOMEM;
}

int schema_encode_record(const struct schema *sc, const void *obj, struct fl_buf *out, char *errmsg)
{
    struct fl_mpw w;
    size_t start = out->len;
    uint8_t fmt;
    int rv = schema_validate(sc, obj, SIZE_MAX, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    fmt = sc->format != NULL ? sc->format(obj) : sc->version;
    fl_mpw_init(&w, out);
    fl_mpw_array(&w, 1 + schema_n_fields(sc, fmt));
    fl_mpw_uint(&w, fmt);
    if (pack_fields(&w, sc, obj, fmt) != FL_OK || fl_mpw_done(&w) != FL_OK) {
        out->len = start;
        return fl_errf(errmsg, FL_ENOMEM, "%s: out of memory encoding", sc->name);
    }
    return FL_OK;
}
