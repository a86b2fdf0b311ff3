/* The generic fuzz driver of a schema/ format, shared by fuzz_records.c, the
 * seed generator gen_records_corpus.c and the corpus replay in
 * tests/unit/test_fuzz_corpus.c. Any table goes through the same checks:
 *
 *   - the decoder never crashes or reads outside the input (ASan), and
 *     refuses with FL_EDECODE or FL_EVERSION only;
 *   - borrowing and arena decoding accept exactly the same inputs;
 *   - what decodes validates (the encoder side accepts what was stored), and
 *     encoding it, decoding that and encoding again is a fixed point;
 *   - heap arrays (SCHEMA_HEAP) are freed, also after a failed decode. */
#ifndef FL_FUZZ_SCHEMA_DRIVER_H
#define FL_FUZZ_SCHEMA_DRIVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "schema/schema_int.h"

#define SCHEMA_FUZZ_OBJ 16384 /* the largest struct a format may describe */

union schema_fuzz_obj {
    max_align_t align;
    uint8_t b[SCHEMA_FUZZ_OBJ];
};

static inline void schema_fuzz_fail(const struct schema *sc, const char *what, const char *detail)
{
    fprintf(stderr, "schema driver: %s: %s: %s\n", sc->name, what, detail ? detail : "");
    abort();
}

static inline void schema_fuzz_free_heap(const struct schema *sc, uint8_t *obj)
{
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        const struct schema_field *f = &sc->fields[i];
        if (f->type == SCHEMA_ARRAY && (f->flags & SCHEMA_HEAP)) {
            void *p;
            memcpy(&p, obj + f->off, sizeof p);
            fl_free(p);
            p = NULL;
            memcpy(obj + f->off, &p, sizeof p);
        }
    }
}

/* 1 if the table can be decoded without an arena (no STR, no pointer array
 * but heap ones). */
static inline int schema_fuzz_borrowable(const struct schema *sc)
{
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        const struct schema_field *f = &sc->fields[i];
        if (f->type == SCHEMA_STR || (f->type == SCHEMA_ARRAY && f->elem->type == SCHEMA_STR) ||
            (f->type == SCHEMA_ARRAY && !(f->flags & (SCHEMA_INLINE | SCHEMA_HEAP))) ||
            (f->type == SCHEMA_TUPLE && !schema_fuzz_borrowable(f->sub))) {
            return 0;
        }
    }
    return 1;
}

static inline void schema_fuzz_same_bytes(const struct schema *sc, const uint8_t *obj)
{
    static union schema_fuzz_obj again;
    struct fl_buf a, b;
    char err[FL_ERRMSG_SIZE] = "";
    void *arena = NULL;
    fl_buf_init(&a);
    fl_buf_init(&b);
    if (schema_validate(sc, obj, SIZE_MAX, err) != FL_OK) {
        schema_fuzz_fail(sc, "a decoded record does not validate", err);
    }
    if (schema_encode_record(sc, obj, &a, err) != FL_OK) {
        schema_fuzz_fail(sc, "a decoded record does not encode", err);
    }
    if (schema_decode_record(sc, a.data, a.len, again.b, &arena, err) != FL_OK) {
        schema_fuzz_fail(sc, "a re-encoded record does not decode", err);
    }
    if (schema_encode_record(sc, again.b, &b, err) != FL_OK || a.len != b.len ||
        memcmp(a.data, b.data, a.len) != 0) {
        schema_fuzz_fail(sc, "encoding is not a fixed point", err);
    }
    fl_free(arena);
    fl_buf_close(&a);
    fl_buf_close(&b);
}

/* One input against one format. Returns 1 if it decoded. */
static inline int schema_fuzz_record(const struct schema *sc, const uint8_t *data, size_t size)
{
    static union schema_fuzz_obj x, y;
    char err[FL_ERRMSG_SIZE] = "";
    void *arena = NULL;
    int rv_arena, rv_borrow = -1;
    if (sc->size > SCHEMA_FUZZ_OBJ || schema_table_check(sc, err) != FL_OK) {
        schema_fuzz_fail(sc, "bad table", err);
    }
    rv_arena = schema_decode_record(sc, data, size, x.b, &arena, err);
    if (rv_arena != FL_OK && rv_arena != FL_EDECODE && rv_arena != FL_EVERSION) {
        schema_fuzz_fail(sc, "an error other than decode or version", err);
    }
    if (rv_arena == FL_OK) {
        schema_fuzz_same_bytes(sc, x.b);
    }
    fl_free(arena);
    if (schema_fuzz_borrowable(sc)) {
        memset(y.b, 0, sc->size);
        rv_borrow = schema_decode_record(sc, data, size, y.b, NULL, err);
        if (rv_borrow != rv_arena) {
            schema_fuzz_fail(sc, "borrowing and arena decoding disagree", err);
        }
        schema_fuzz_free_heap(sc, y.b);
    }
    return rv_arena == FL_OK;
}

/* ---- samples for the seeds ------------------------------------------------- */

/* A valid value for every field: strings and arrays as long as `rich`
 * allows (1: a few bytes and one element; 0: their least), integers their
 * least. Binaries and pointer arrays take bytes from pool. */
static inline void schema_fuzz_fill_fields(const struct schema *sc, uint8_t *obj, int rich,
                                           uint8_t *pool, size_t *used);

static inline void schema_fuzz_fill(const struct schema_field *f, uint8_t *base, int rich,
                                    uint8_t *pool, size_t *used)
{
    uint8_t *p = base + f->off, *a;
    uint64_t n, len;
    switch (f->type) {
    case SCHEMA_UINT:
        schema__put_uint(p, f->size, f->min);
        break;
    case SCHEMA_CHARS:
        len = rich && f->max >= 3 ? 3 : f->min;
        memset(p, 'a', (size_t)len);
        p[len] = '\0';
        break;
    case SCHEMA_BIN:
        n = rich ? 1 : f->min;
        len = n * (f->size > 1 ? f->size : 1);
        a = pool + *used;
        memset(a, 0, (size_t)len); /* zero bytes: a unit's hosts end with a NUL */
        *used += (size_t)len;
        memcpy(p, &a, sizeof a);
        schema__put_uint(base + f->off_n, f->n_size, n);
        break;
    case SCHEMA_ARRAY:
        n = f->n_size == 0 ? f->max : rich ? 1 : f->min;
        a = p;
        if (!(f->flags & SCHEMA_INLINE)) {
            *used = (*used + 15) & ~(size_t)15;
            a = pool + *used;
            *used += (size_t)(n * f->size);
            memcpy(p, &a, sizeof a);
        }
        for (uint64_t i = 0; i < n; i++) {
            schema_fuzz_fill(f->elem, a + i * f->size, rich, pool, used);
        }
        if (f->n_size != 0) {
            schema__put_uint(base + f->off_n, f->n_size, n);
        }
        break;
    case SCHEMA_TUPLE:
        schema_fuzz_fill_fields(f->sub, p, rich, pool, used);
        break;
    default: /* INT, INT_OFS, BOOL, BYTES: zero is valid; STR: NULL is "" */
        break;
    }
}

static inline void schema_fuzz_fill_fields(const struct schema *sc, uint8_t *obj, int rich,
                                           uint8_t *pool, size_t *used)
{
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        schema_fuzz_fill(&sc->fields[i], obj, rich, pool, used);
    }
}

/* Encode a sample record of sc into out: the rich one if it validates,
 * else the least. FL_OK or the encoder's error. */
static inline int schema_fuzz_sample(const struct schema *sc, int rich, struct fl_buf *out)
{
    static union schema_fuzz_obj obj;
    static uint8_t pool[65536];
    size_t used = 0;
    memset(obj.b, 0, sc->size);
    schema_fuzz_fill_fields(sc, obj.b, rich, pool, &used);
    if (rich && schema_validate(sc, obj.b, SIZE_MAX, NULL) != FL_OK) {
        return schema_fuzz_sample(sc, 0, out);
    }
    return schema_encode_record(sc, obj.b, out, NULL);
}

#endif
