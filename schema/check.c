/* schema/ — the checks both directions share, the validator of a C struct
 * about to be encoded, and the check of a table itself. */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "schema/schema_int.h"

static const char *fname(const struct schema_field *f)
{
    return f->name != NULL ? f->name : "element";
}

static const char *idx_str(char *buf, size_t size, long idx)
{
    if (idx < 0) {
        buf[0] = '\0';
    } else {
        snprintf(buf, size, "[%ld]", idx);
    }
    return buf;
}

int schema__bad_str(const char *top, const struct schema_field *f, const char *s, size_t n,
                    long idx, size_t limit, char *errmsg)
{
    char ib[24];
    if (f->max == 0 && n > limit) {
        return fl_errf(errmsg, FL_ETOOBIG, "%s.%s%s: longer than %zu bytes", top, fname(f),
                       idx_str(ib, sizeof ib, idx), limit);
    }
    if (n < f->min || (f->max != 0 && n > f->max)) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: length %zu not in %llu..%llu", top, fname(f),
                       idx_str(ib, sizeof ib, idx), n, (unsigned long long)f->min,
                       (unsigned long long)f->max);
    }
    if (f->type != SCHEMA_STRN && memchr(s, '\0', n) != NULL) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: contains a NUL byte", top, fname(f),
                       idx_str(ib, sizeof ib, idx));
    }
    if (f->valid != NULL && !f->valid(s, n)) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: malformed", top, fname(f),
                       idx_str(ib, sizeof ib, idx));
    }
    return FL_OK;
}

int schema__bad_uint(const char *top, const struct schema_field *f, uint64_t v, long idx,
                     char *errmsg)
{
    char ib[24];
    if (v < f->min || v > schema__uint_max(f)) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: %llu not in %llu..%llu", top, fname(f),
                       idx_str(ib, sizeof ib, idx), (unsigned long long)v,
                       (unsigned long long)f->min, (unsigned long long)schema__uint_max(f));
    }
    return FL_OK;
}

int schema__bad_count(const char *top, const struct schema_field *f, uint64_t n, long idx,
                      size_t limit, char *errmsg)
{
    char ib[24];
    uint64_t unit = f->type == SCHEMA_BIN && f->size > 1 ? f->size : 1;
    if (f->max == 0 && n > limit / unit) {
        return fl_errf(errmsg, FL_ETOOBIG, "%s.%s%s: longer than %zu bytes", top, fname(f),
                       idx_str(ib, sizeof ib, idx), limit);
    }
    if (n < f->min || (f->max != 0 && n > f->max)) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: %llu %s, %llu..%llu allowed", top, fname(f),
                       idx_str(ib, sizeof ib, idx), (unsigned long long)n,
                       f->type == SCHEMA_BIN ? "bytes" : "elements", (unsigned long long)f->min,
                       (unsigned long long)f->max);
    }
    return FL_OK;
}

/* ---- validation of a struct to encode ------------------------------------ */

struct vctx {
    const char *top;
    size_t limit;
    char *errmsg;
};

static int check_fields(const struct vctx *c, const struct schema *sc, const uint8_t *base);

static int check_array(const struct vctx *c, const struct schema_field *f, const uint8_t *base,
                       long idx);

static inline int check_one(const struct vctx *c, const struct schema_field *f, const uint8_t *base,
                            long idx);

static int check_field(const struct vctx *c, const struct schema_field *f, const uint8_t *base,
                       long idx)
{
    const uint8_t *p = base + f->off;
    const char *s;
    char ib[24];
    size_t n;
    switch (f->type) {
    case SCHEMA_UINT:
        return schema__check_uint(c->top, f, schema__get_uint(p, f->size), idx, c->errmsg);
    case SCHEMA_STR:
        memcpy(&s, p, sizeof s);
        if (s == NULL && idx >= 0) {
            return fl_errf(c->errmsg, FL_EINVAL, "%s.%s%s: NULL", c->top, fname(f),
                           idx_str(ib, sizeof ib, idx));
        }
        s = s != NULL ? s : "";
        return schema__check_str(c->top, f, s, strlen(s), idx, c->limit, 1, c->errmsg);
    case SCHEMA_CHARS:
        n = strnlen((const char *)p, f->size);
        if (n == f->size) {
            return fl_errf(c->errmsg, FL_EINVAL, "%s.%s%s: not NUL-terminated", c->top, fname(f),
                           idx_str(ib, sizeof ib, idx));
        }
        return schema__check_str(c->top, f, (const char *)p, n, idx, c->limit, 1, c->errmsg);
    case SCHEMA_STRN:
        memcpy(&s, p, sizeof s);
        n = (size_t)schema__get_uint(base + f->off_n, f->n_size);
        if (s == NULL && n > 0) {
            return fl_errf(c->errmsg, FL_EINVAL, "%s.%s%s: NULL with a length", c->top, fname(f),
                           idx_str(ib, sizeof ib, idx));
        }
        return schema__check_str(c->top, f, s != NULL ? s : "", n, idx, c->limit, 0, c->errmsg);
    case SCHEMA_BIN:
        memcpy(&s, p, sizeof s);
        n = (size_t)schema__count(f, base);
        if (s == NULL && n > 0) {
            return fl_errf(c->errmsg, FL_EINVAL, "%s.%s%s: NULL with a length", c->top, fname(f),
                           idx_str(ib, sizeof ib, idx));
        }
        return schema__check_count(c->top, f, n, idx, c->limit, c->errmsg);
    case SCHEMA_ARRAY:
        return check_array(c, f, base, idx);
    case SCHEMA_TUPLE:
        return check_fields(c, f->sub, p);
    default: /* INT, INT_OFS, BOOL, BYTES: every value of the C type is valid */
        return FL_OK;
    }
}

static int check_array(const struct vctx *c, const struct schema_field *f, const uint8_t *base,
                       long idx)
{
    const uint8_t *a = base + f->off;
    uint64_t n = schema__count(f, base);
    struct schema_field el;
    char ib[24];
    int rv = schema__check_count(c->top, f, n, idx, c->limit, c->errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (!(f->flags & SCHEMA_INLINE)) {
        const uint8_t *ptr;
        memcpy(&ptr, a, sizeof ptr); /* the field holds the pointer */
        a = ptr;
        if (a == NULL && n > 0) {
            return fl_errf(c->errmsg, FL_EINVAL, "%s.%s%s: NULL array", c->top, fname(f),
                           idx_str(ib, sizeof ib, idx));
        }
    }
    if (n == 0) {
        return FL_OK;
    }
    el = *f->elem;
    el.name = f->name; /* messages name the array */
    for (uint64_t i = 0; rv == FL_OK && i < n; i++) {
        rv = check_one(c, &el, a + i * f->size, (long)i);
    }
    return rv;
}

/* The fields every value of whose C type is valid, and unsigned integers in
 * range, without the call. */
static inline int check_one(const struct vctx *c, const struct schema_field *f, const uint8_t *base,
                            long idx)
{
    switch (f->type) {
    case SCHEMA_UINT:
        return f->min == 0 && f->max == 0
                   ? FL_OK
                   : schema__check_uint(c->top, f, schema__get_uint(base + f->off, f->size), idx,
                                        c->errmsg);
    case SCHEMA_INT:
    case SCHEMA_INT_OFS:
    case SCHEMA_BOOL:
    case SCHEMA_BYTES:
        return FL_OK;
    default:
        return check_field(c, f, base, idx);
    }
}

static int check_fields(const struct vctx *c, const struct schema *sc, const uint8_t *base)
{
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        int rv = check_one(c, &sc->fields[i], base, -1);
        if (rv != FL_OK) {
            return rv;
        }
    }
    return sc->check != NULL ? sc->check(base, 1, c->errmsg) : FL_OK;
}

int schema_validate(const struct schema *sc, const void *obj, size_t limit, char *errmsg)
{
    struct vctx c = {sc->name, limit, errmsg};
    return check_fields(&c, sc, obj);
}

uint32_t schema_n_fields(const struct schema *sc, uint8_t format)
{
    uint32_t n = 0;
    /* Fields are appended in version order (schema_table_check): when the
     * last one is in the format, all are. */
    if (sc->n_fields == 0 || sc->fields[sc->n_fields - 1].since <= format) {
        return sc->n_fields;
    }
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        n += sc->fields[i].since <= format;
    }
    return n;
}

/* ---- the tables themselves ----------------------------------------------- */

/* Bytes the field takes in its struct. */
static uint64_t extent(const struct schema_field *f)
{
    if (f->type == SCHEMA_ARRAY) {
        return (f->flags & SCHEMA_INLINE) ? f->max * f->size : sizeof(void *);
    }
    return f->type == SCHEMA_STR || f->type == SCHEMA_BIN || f->type == SCHEMA_STRN ? sizeof(void *)
                                                                                    : f->size;
}

static int table_field(const struct schema *sc, const struct schema_field *f, uint32_t room,
                       char *errmsg)
{
    const char *bad = NULL;
    unsigned sz = f->size;
    int isize = sz == 1 || sz == 2 || sz == 4 || sz == 8;
    switch (f->type) {
    case SCHEMA_UINT:
        bad = !isize ? "integer size" : f->min > schema__uint_max(f) ? "min over max" : NULL;
        bad = bad == NULL && f->max > schema__type_max(sz) ? "max over its C type" : bad;
        break;
    case SCHEMA_INT:
        bad = sz != 4 && sz != 8 ? "integer size" : NULL;
        break;
    case SCHEMA_INT_OFS:
        bad = sz != 4 ? "integer size" : NULL;
        break;
    case SCHEMA_BOOL:
        bad = sz != 1 && sz != 4 ? "bool size" : NULL;
        break;
    case SCHEMA_STR:
    case SCHEMA_BYTES:
        break;
    case SCHEMA_CHARS:
        bad = sz == 0 || f->max == 0 || f->max >= sz || f->min > f->max ? "length bounds" : NULL;
        break;
    case SCHEMA_BIN:
    case SCHEMA_STRN:
        bad = f->n_size != 1 && f->n_size != 2 && f->n_size != 4 && f->n_size != 8 ? "length size"
                                                                                   : NULL;
        bad = bad == NULL && f->type == SCHEMA_STRN && f->max != 0 && f->min > f->max
                  ? "length bounds"
                  : bad;
        break;
    case SCHEMA_ARRAY:
        bad = f->elem == NULL || f->size == 0 || f->max == 0 ? "element description" : NULL;
        bad = bad == NULL && f->elem->off != 0 ? "element offset" : bad;
        bad = bad == NULL && f->elem->type == SCHEMA_ARRAY ? "array of arrays" : bad;
        bad = bad == NULL && f->n_size == 0 && f->min != f->max ? "fixed count" : bad;
        bad = bad == NULL && (f->flags & SCHEMA_HEAP) && (f->flags & SCHEMA_INLINE) ? "heap flag"
                                                                                    : bad;
        bad =
            bad == NULL && f->n_size != 0 && f->n_size != 4 && f->n_size != 8 ? "count size" : bad;
        /* The last element of an inline array has the rest of the struct
         * for a parallel length (SCHEMA_STRN); others have their slot. */
        if (bad == NULL && table_field(sc, f->elem,
                                       f->elem->type == SCHEMA_STRN && (f->flags & SCHEMA_INLINE) &&
                                               f->off + (f->max - 1) * f->size < room
                                           ? (uint32_t)(room - f->off - (f->max - 1) * f->size)
                                           : f->size,
                                       errmsg) != FL_OK) {
            return FL_EINVAL;
        }
        break;
    case SCHEMA_TUPLE:
        bad = f->sub == NULL || f->sub->size != sz || f->sub->version != 0 ? "tuple" : NULL;
        if (bad == NULL && schema_table_check(f->sub, errmsg) != FL_OK) {
            return FL_EINVAL;
        }
        break;
    default:
        bad = "type";
        break;
    }
    if (bad == NULL && (uint64_t)f->off + extent(f) > room) {
        bad = "place: outside its struct";
    }
    if (bad == NULL && f->n_size != 0 && (uint64_t)f->off_n + f->n_size > room) {
        bad = "count place: outside its struct";
    }
    if (bad != NULL) {
        return fl_errf(errmsg, FL_EINVAL, "table %s, field %s: bad %s", sc->name, fname(f), bad);
    }
    return FL_OK;
}

int schema_table_check(const struct schema *sc, char *errmsg)
{
    uint8_t since = 0;
    if (sc->n_fields == 0 || sc->size == 0 || sc->oldest > sc->version ||
        (sc->version != 0 && sc->oldest == 0)) {
        return fl_errf(errmsg, FL_EINVAL, "table %s: bad header", sc->name);
    }
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        const struct schema_field *f = &sc->fields[i];
        if (f->since < since || (f->since > sc->version)) {
            return fl_errf(errmsg, FL_EINVAL,
                           "table %s, field %s: fields are appended in version"
                           " order",
                           sc->name, fname(f));
        }
        since = f->since;
        if (table_field(sc, f, sc->size, errmsg) != FL_OK) {
            return FL_EINVAL;
        }
    }
    return FL_OK;
}
