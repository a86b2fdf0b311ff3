/* schema/ — private to the module: the checks the validator and the decoder
 * share, and access to C integers of any width. */
#ifndef FL_SCHEMA_SCHEMA_INT_H
#define FL_SCHEMA_SCHEMA_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "schema/schema.h"

/* The integer of `size` bytes (1, 2, 4, 8) at p, zero-extended. */
static inline uint64_t schema__get_uint(const uint8_t *p, unsigned size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (size) {
    case 1:
        memcpy(&u8, p, 1);
        return u8;
    case 2:
        memcpy(&u16, p, 2);
        return u16;
    case 4:
        memcpy(&u32, p, 4);
        return u32;
    default:
        memcpy(&u64, p, 8);
        return u64;
    }
}

static inline void schema__put_uint(uint8_t *p, unsigned size, uint64_t v)
{
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    switch (size) {
    case 1:
        memcpy(p, &u8, 1);
        break;
    case 2:
        memcpy(p, &u16, 2);
        break;
    case 4:
        memcpy(p, &u32, 4);
        break;
    default:
        memcpy(p, &v, 8);
        break;
    }
}

/* The greatest value of an unsigned integer of `size` bytes. */
static inline uint64_t schema__type_max(unsigned size)
{
    return size >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * size)) - 1;
}

/* A UINT field's greatest value: its max, or its C type's. */
static inline uint64_t schema__uint_max(const struct schema_field *f)
{
    return f->max != 0 ? f->max : schema__type_max(f->size);
}

/* An array's count, a binary's length (in units): stored or fixed. */
static inline uint64_t schema__count(const struct schema_field *f, const uint8_t *base)
{
    return f->n_size == 0 ? f->max : schema__get_uint(base + f->off_n, f->n_size);
}

/* Checks shared by the validator and the decoder. Each returns FL_OK or
 * FL_EINVAL (FL_ETOOBIG for a string over `limit` when its max is 0) with
 * errmsg "<top>.<field>[idx]: ..."; idx < 0 when not in an array. The tests
 * are inline; the messages are written out of line (schema__bad_*), only
 * for a value that fails. */
int schema__bad_str(const char *top, const struct schema_field *f, const char *s, size_t n,
                    long idx, size_t limit, char *errmsg);
int schema__bad_uint(const char *top, const struct schema_field *f, uint64_t v, long idx,
                     char *errmsg);
int schema__bad_count(const char *top, const struct schema_field *f, uint64_t n, long idx,
                      size_t limit, char *errmsg);

/* A string: length bounds, no NUL byte (but in a STRN; `nul_free` 1 when
 * the caller knows there is none), then the field's `valid`. */
static inline int schema__check_str(const char *top, const struct schema_field *f, const char *s,
                                    size_t n, long idx, size_t limit, int nul_free, char *errmsg)
{
    if (n >= f->min && (f->max != 0 ? n <= f->max : n <= limit) &&
        (nul_free || f->type == SCHEMA_STRN || memchr(s, '\0', n) == NULL) &&
        (f->valid == NULL || f->valid(s, n))) {
        return 0; /* FL_OK */
    }
    return schema__bad_str(top, f, s, n, idx, limit, errmsg);
}

static inline int schema__check_uint(const char *top, const struct schema_field *f, uint64_t v,
                                     long idx, char *errmsg)
{
    if (v >= f->min && v <= schema__uint_max(f)) {
        return 0; /* FL_OK */
    }
    return schema__bad_uint(top, f, v, idx, errmsg);
}

/* An array's count or a binary's length in units. */
static inline int schema__check_count(const char *top, const struct schema_field *f, uint64_t n,
                                      long idx, size_t limit, char *errmsg)
{
    uint64_t unit = f->type == SCHEMA_BIN && f->size > 1 ? f->size : 1;
    if (n >= f->min && (f->max != 0 ? n <= f->max : n <= limit / unit)) {
        return 0; /* FL_OK */
    }
    return schema__bad_count(top, f, n, idx, limit, errmsg);
}

#endif
