/* store/ — a total, allocation-free reader for the msgpack the records use.
 *
 * Records are written with msgpack-c's packer. They are read here rather than
 * with msgpack-c's unpacker because that one allocates its object tree with
 * malloc (outside the project's allocator) and sizes container allocations
 * from the untrusted header: five bytes announcing a 2^32-element array ask
 * for ~100 GB before a single element is read. This reader only checks bounds
 * and hands out pointers into the input. */
#include "store/store_int.h"

void store__mp_init(struct store__mp *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
}

static int need(const struct store__mp *r, size_t n)
{
    return r->len - r->pos >= n;
}

/* Read a big-endian unsigned integer of `n` bytes (1, 2, 4 or 8). */
static int be(struct store__mp *r, size_t n, uint64_t *v)
{
    if (!need(r, n)) {
        return FL_EDECODE;
    }
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        *v = (*v << 8) | r->p[r->pos + i];
    }
    r->pos += n;
    return FL_OK;
}

static int tag(struct store__mp *r, uint8_t *b)
{
    if (!need(r, 1)) {
        return FL_EDECODE;
    }
    *b = r->p[r->pos++];
    return FL_OK;
}

int store__mp_uint(struct store__mp *r, uint64_t *v)
{
    static const size_t width[4] = {1, 2, 4, 8};
    uint8_t b;
    if (tag(r, &b) != FL_OK) {
        return FL_EDECODE;
    }
    if (b <= 0x7f) { /* positive fixint */
        *v = b;
        return FL_OK;
    }
    if (b >= 0xcc && b <= 0xcf) { /* uint 8/16/32/64 */
        return be(r, width[b - 0xcc], v);
    }
    if (b >= 0xd0 && b <= 0xd3) { /* int 8/16/32/64: only non-negative values */
        size_t n = width[b - 0xd0];
        if (be(r, n, v) != FL_OK || (*v >> (8 * n - 1)) != 0) {
            return FL_EDECODE;
        }
        return FL_OK;
    }
    return FL_EDECODE;
}

int store__mp_bool(struct store__mp *r, int *v)
{
    uint8_t b;
    if (tag(r, &b) != FL_OK || (b != 0xc2 && b != 0xc3)) {
        return FL_EDECODE;
    }
    *v = b == 0xc3;
    return FL_OK;
}

int store__mp_array(struct store__mp *r, uint32_t *n)
{
    uint64_t v;
    uint8_t b;
    if (tag(r, &b) != FL_OK) {
        return FL_EDECODE;
    }
    if (b >= 0x90 && b <= 0x9f) {
        *n = b & 0x0f;
        return FL_OK;
    }
    if ((b != 0xdc && b != 0xdd) || be(r, b == 0xdc ? 2 : 4, &v) != FL_OK) {
        return FL_EDECODE;
    }
    *n = (uint32_t)v;
    /* Every element takes at least one byte. */
    return need(r, *n) ? FL_OK : FL_EDECODE;
}

/* The payload of a str or bin whose length is `n`. */
static int payload(struct store__mp *r, uint64_t n, const uint8_t **p, uint32_t *len)
{
    if (!need(r, n)) {
        return FL_EDECODE;
    }
    *p = r->p + r->pos;
    *len = (uint32_t)n;
    r->pos += n;
    return FL_OK;
}

int store__mp_str(struct store__mp *r, const char **s, uint32_t *n)
{
    const uint8_t *p;
    uint64_t len;
    uint8_t b;
    if (tag(r, &b) != FL_OK) {
        return FL_EDECODE;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        len = b & 0x1f;
    } else if (b < 0xd9 || b > 0xdb || be(r, (size_t)1 << (b - 0xd9), &len) != FL_OK) {
        return FL_EDECODE;
    }
    if (payload(r, len, &p, n) != FL_OK) {
        return FL_EDECODE;
    }
    *s = (const char *)p;
    return FL_OK;
}

int store__mp_bin(struct store__mp *r, const uint8_t **b, uint32_t *n)
{
    uint64_t len;
    uint8_t t;
    if (tag(r, &t) != FL_OK || t < 0xc4 || t > 0xc6 ||
        be(r, (size_t)1 << (t - 0xc4), &len) != FL_OK) {
        return FL_EDECODE;
    }
    return payload(r, len, b, n);
}

int store__mp_end(const struct store__mp *r)
{
    return r->pos == r->len ? FL_OK : FL_EDECODE;
}
