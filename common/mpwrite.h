/* A msgpack writer straight into an fl_buf: the counterpart of mpread.h for
 * the hot encoders (store records, Raft commands, agent frames).
 *
 * Every value is written in its shortest form, byte for byte as msgpack-c's
 * packers write it (integers by value, not by C type; str8 for strings of
 * 32..255 bytes), so records written by either are the same bytes
 * (tests/unit/test_mpwrite.c compares the two). The functions are inline:
 * a field costs a capacity check and a few stores, not a callback per piece.
 *
 * Errors stick: after a failed allocation every later call does nothing and
 * fl_mpw_done returns FL_ENOMEM; the buffer then holds a partial encoding
 * (the caller cuts it back to where it started). */
#ifndef FL_COMMON_MPWRITE_H
#define FL_COMMON_MPWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

struct fl_mpw {
    struct fl_buf *b;
    int err;
};

static inline void fl_mpw_init(struct fl_mpw *w, struct fl_buf *b)
{
    w->b = b;
    w->err = FL_OK;
}

/* Room for n more bytes (and the NUL fl_buf keeps after its bytes). */
static inline uint8_t *fl_mpw__room(struct fl_mpw *w, size_t n)
{
    if (w->err != FL_OK) {
        return NULL;
    }
    if (w->b->cap - w->b->len <= n && fl_buf_reserve(w->b, n + 1) != FL_OK) {
        w->err = FL_ENOMEM;
        return NULL;
    }
    return w->b->data + w->b->len;
}

static inline void fl_mpw__be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

/* A one-byte tag followed by v in n big-endian bytes (n may be 0). */
static inline void fl_mpw__tagged(struct fl_mpw *w, uint8_t tag, uint64_t v, unsigned n)
{
    uint8_t *p = fl_mpw__room(w, 1 + n);
    if (p != NULL) {
        p[0] = tag;
        fl_mpw__be(p + 1, v, n);
        w->b->len += 1 + n;
        w->b->data[w->b->len] = '\0';
    }
}

static inline void fl_mpw_uint(struct fl_mpw *w, uint64_t v)
{
    if (v < 0x80) {
        fl_mpw__tagged(w, (uint8_t)v, 0, 0);
    } else if (v <= UINT8_MAX) {
        fl_mpw__tagged(w, 0xcc, v, 1);
    } else if (v <= UINT16_MAX) {
        fl_mpw__tagged(w, 0xcd, v, 2);
    } else if (v <= UINT32_MAX) {
        fl_mpw__tagged(w, 0xce, v, 4);
    } else {
        fl_mpw__tagged(w, 0xcf, v, 8);
    }
}

static inline void fl_mpw_int(struct fl_mpw *w, int64_t v)
{
    if (v >= 0) {
        fl_mpw_uint(w, (uint64_t)v);
    } else if (v >= -32) {
        fl_mpw__tagged(w, (uint8_t)(int8_t)v, 0, 0);
    } else if (v >= INT8_MIN) {
        fl_mpw__tagged(w, 0xd0, (uint8_t)(int8_t)v, 1);
    } else if (v >= INT16_MIN) {
        fl_mpw__tagged(w, 0xd1, (uint16_t)(int16_t)v, 2);
    } else if (v >= INT32_MIN) {
        fl_mpw__tagged(w, 0xd2, (uint32_t)(int32_t)v, 4);
    } else {
        fl_mpw__tagged(w, 0xd3, (uint64_t)v, 8);
    }
}

static inline void fl_mpw_bool(struct fl_mpw *w, int v)
{
    fl_mpw__tagged(w, v ? 0xc3 : 0xc2, 0, 0);
}

static inline void fl_mpw_array(struct fl_mpw *w, uint32_t n)
{
    if (n < 16) {
        fl_mpw__tagged(w, (uint8_t)(0x90 | n), 0, 0);
    } else if (n <= UINT16_MAX) {
        fl_mpw__tagged(w, 0xdc, n, 2);
    } else {
        fl_mpw__tagged(w, 0xdd, n, 4);
    }
}

/* n raw bytes (the body of a str or bin whose header was written). */
static inline void fl_mpw__raw(struct fl_mpw *w, const void *p, size_t n)
{
    uint8_t *d = fl_mpw__room(w, n);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
        w->b->len += n;
        w->b->data[w->b->len] = '\0';
    }
}

/* A string of n bytes (n < 2^32). */
static inline void fl_mpw_str(struct fl_mpw *w, const char *s, size_t n)
{
    if (n < 32) {
        fl_mpw__tagged(w, (uint8_t)(0xa0 | n), 0, 0);
    } else if (n <= UINT8_MAX) {
        fl_mpw__tagged(w, 0xd9, n, 1);
    } else if (n <= UINT16_MAX) {
        fl_mpw__tagged(w, 0xda, n, 2);
    } else {
        fl_mpw__tagged(w, 0xdb, n, 4);
    }
    fl_mpw__raw(w, s, n);
}

/* A binary of n bytes (n < 2^32). */
static inline void fl_mpw_bin(struct fl_mpw *w, const void *p, size_t n)
{
    if (n <= UINT8_MAX) {
        fl_mpw__tagged(w, 0xc4, n, 1);
    } else if (n <= UINT16_MAX) {
        fl_mpw__tagged(w, 0xc5, n, 2);
    } else {
        fl_mpw__tagged(w, 0xc6, n, 4);
    }
    fl_mpw__raw(w, p, n);
}

/* FL_OK, or FL_ENOMEM if any write failed. */
static inline int fl_mpw_done(const struct fl_mpw *w)
{
    return w->err;
}

#endif
