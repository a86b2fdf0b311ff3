#include "common/mpcheck.h"

#include "common/err.h"

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Decode the header at p: the header size, the payload bytes that follow it
 * and the number of child objects. Returns 0 if the header is truncated. */
static int header(const uint8_t *p, size_t len, size_t *hdr, uint64_t *payload, uint64_t *children)
{
    uint8_t b = p[0];
    unsigned n = 0;
    *payload = 0;
    *children = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        *hdr = 1;
        return 1;
    }
    if ((b & 0xf0) == 0x80) { /* fixmap */
        *hdr = 1;
        *children = 2u * (b & 0x0f);
        return 1;
    }
    if ((b & 0xf0) == 0x90) { /* fixarray */
        *hdr = 1;
        *children = b & 0x0f;
        return 1;
    }
    if ((b & 0xe0) == 0xa0) { /* fixstr */
        *hdr = 1;
        *payload = b & 0x1f;
        return 1;
    }
    switch (b) {
    case 0xc4:
    case 0xd9:
        n = 1;
        break; /* bin8, str8 */
    case 0xc5:
    case 0xda:
        n = 2;
        break; /* bin16, str16 */
    case 0xc6:
    case 0xdb:
        n = 4;
        break; /* bin32, str32 */
    case 0xc7:
        n = 1;
        break; /* ext8 */
    case 0xc8:
        n = 2;
        break; /* ext16 */
    case 0xc9:
        n = 4;
        break; /* ext32 */
    case 0xca:
    case 0xce:
    case 0xd2:
        *hdr = 5;
        return len >= 5;
    case 0xcb:
    case 0xcf:
    case 0xd3:
        *hdr = 9;
        return len >= 9;
    case 0xcc:
    case 0xd0:
        *hdr = 2;
        return len >= 2;
    case 0xcd:
    case 0xd1:
        *hdr = 3;
        return len >= 3;
    case 0xd4:
        *hdr = 3;
        return len >= 3; /* fixext1 */
    case 0xd5:
        *hdr = 4;
        return len >= 4;
    case 0xd6:
        *hdr = 6;
        return len >= 6;
    case 0xd7:
        *hdr = 10;
        return len >= 10;
    case 0xd8:
        *hdr = 18;
        return len >= 18;
    case 0xdc:
    case 0xdd: /* array16/32 */
        n = b == 0xdc ? 2 : 4;
        if (len < 1 + n)
            return 0;
        *hdr = 1 + n;
        *children = be(p + 1, n);
        return 1;
    case 0xde:
    case 0xdf: /* map16/32 */
        n = b == 0xde ? 2 : 4;
        if (len < 1 + n)
            return 0;
        *hdr = 1 + n;
        *children = 2 * be(p + 1, n);
        return 1;
    default:
        return 0; /* 0xc1 is never used */
    }
    if (len < 1 + n)
        return 0;
    *payload = be(p + 1, n);
    *hdr = 1 + n + ((b >= 0xc7 && b <= 0xc9) ? 1 : 0); /* ext carries a type byte */
    return len >= *hdr;
}

int fl_mpcheck(const uint8_t *p, size_t len, unsigned max_depth, size_t *used)
{
    /* Iterative walk: pending[d] = objects still to read at depth d. */
    uint64_t pending[64];
    unsigned depth = 0;
    size_t off = 0;
    if (max_depth > 63) {
        max_depth = 63;
    }
    pending[0] = 1;
    for (;;) {
        size_t hdr;
        uint64_t payload, children;
        while (pending[depth] == 0) {
            if (depth == 0) {
                *used = off;
                return FL_OK;
            }
            depth--;
        }
        if (off >= len || !header(p + off, len - off, &hdr, &payload, &children)) {
            return FL_EDECODE;
        }
        pending[depth]--;
        if (payload > len - off - hdr) {
            return FL_EDECODE;
        }
        off += hdr + (size_t)payload;
        if (children > 0) {
            /* Each child needs at least one byte. */
            if (children > len - off || depth + 1 > max_depth) {
                return FL_EDECODE;
            }
            pending[++depth] = children;
        }
    }
}
