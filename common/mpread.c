#include "common/mpread.h"

#include <string.h>

#include "common/err.h"
#include "common/mpcheck.h"

void fl_mp_init(struct fl_mp *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
}

static int need(const struct fl_mp *r, uint64_t n)
{
    return r->len - r->pos >= n;
}

/* A big-endian unsigned integer of n bytes (1, 2, 4 or 8). */
static int be(struct fl_mp *r, size_t n, uint64_t *v)
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

static int tag(struct fl_mp *r, uint8_t *b)
{
    if (!need(r, 1)) {
        return FL_EDECODE;
    }
    *b = r->p[r->pos++];
    return FL_OK;
}

static const size_t width[4] = {1, 2, 4, 8};

int fl_mp_uint(struct fl_mp *r, uint64_t *v)
{
    int64_t s;
    uint8_t b;
    if (!need(r, 1)) {
        return FL_EDECODE;
    }
    b = r->p[r->pos];
    if (b >= 0xcc && b <= 0xcf) { /* uint 8/16/32/64: the full range */
        r->pos++;
        return be(r, width[b - 0xcc], v);
    }
    if (fl_mp_int(r, &s) != FL_OK || s < 0) {
        return FL_EDECODE;
    }
    *v = (uint64_t)s;
    return FL_OK;
}

int fl_mp_int(struct fl_mp *r, int64_t *v)
{
    uint64_t u;
    size_t n;
    uint8_t b;
    if (tag(r, &b) != FL_OK) {
        return FL_EDECODE;
    }
    if (b <= 0x7f) { /* positive fixint */
        *v = b;
        return FL_OK;
    }
    if (b >= 0xe0) { /* negative fixint */
        *v = (int8_t)b;
        return FL_OK;
    }
    if (b >= 0xcc && b <= 0xcf) { /* uint 8/16/32/64 */
        if (be(r, width[b - 0xcc], &u) != FL_OK || u > INT64_MAX) {
            return FL_EDECODE;
        }
        *v = (int64_t)u;
        return FL_OK;
    }
    if (b < 0xd0 || b > 0xd3) {
        return FL_EDECODE;
    }
    n = width[b - 0xd0]; /* int 8/16/32/64: sign-extend */
    if (be(r, n, &u) != FL_OK) {
        return FL_EDECODE;
    }
    if (n < 8 && (u >> (8 * n - 1)) != 0) {
        u |= ~(uint64_t)0 << (8 * n);
    }
    *v = (int64_t)u;
    return FL_OK;
}

int fl_mp_bool(struct fl_mp *r, bool *v)
{
    uint8_t b;
    if (tag(r, &b) != FL_OK || (b != 0xc2 && b != 0xc3)) {
        return FL_EDECODE;
    }
    *v = b == 0xc3;
    return FL_OK;
}

int fl_mp_array(struct fl_mp *r, uint32_t *n)
{
    uint64_t v;
    uint8_t b;
    if (tag(r, &b) != FL_OK) {
        return FL_EDECODE;
    }
    if (b >= 0x90 && b <= 0x9f) {
        v = b & 0x0f;
    } else if ((b != 0xdc && b != 0xdd) || be(r, b == 0xdc ? 2 : 4, &v) != FL_OK) {
        return FL_EDECODE;
    }
    if (!need(r, v)) { /* every element takes at least one byte */
        return FL_EDECODE;
    }
    *n = (uint32_t)v;
    return FL_OK;
}

/* The n bytes of a str or bin body. */
static int body(struct fl_mp *r, uint64_t n, const uint8_t **p, size_t *len)
{
    if (!need(r, n)) {
        return FL_EDECODE;
    }
    *p = r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return FL_OK;
}

int fl_mp_str(struct fl_mp *r, const char **s, size_t *n)
{
    const uint8_t *p;
    uint64_t len;
    uint8_t b;
    if (tag(r, &b) != FL_OK) {
        return FL_EDECODE;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        len = b & 0x1f;
    } else if (b < 0xd9 || b > 0xdb || be(r, width[b - 0xd9], &len) != FL_OK) {
        return FL_EDECODE;
    }
    if (body(r, len, &p, n) != FL_OK) {
        return FL_EDECODE;
    }
    *s = (const char *)p;
    return FL_OK;
}

int fl_mp_bin(struct fl_mp *r, const uint8_t **b, size_t *n)
{
    uint64_t len;
    uint8_t t;
    if (tag(r, &t) != FL_OK || t < 0xc4 || t > 0xc6 || be(r, width[t - 0xc4], &len) != FL_OK) {
        return FL_EDECODE;
    }
    return body(r, len, b, n);
}

int fl_mp_skip(struct fl_mp *r)
{
    size_t used;
    if (fl_mpcheck(r->p + r->pos, r->len - r->pos, 8, &used) != FL_OK) {
        return FL_EDECODE;
    }
    r->pos += used;
    return FL_OK;
}

int fl_mp_end(const struct fl_mp *r)
{
    return r->pos == r->len ? FL_OK : FL_EDECODE;
}
