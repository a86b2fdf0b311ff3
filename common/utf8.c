/* UTF-8 checking and escaping (common/utf8.h). */
#include "common/utf8.h"

#include <string.h>

static int cont(unsigned char b)
{
    return (b & 0xC0) == 0x80;
}

size_t fl_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char b0;
    if (n == 0) {
        return 0;
    }
    b0 = s[0];
    if (b0 < 0x80) {
        return 1;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        return n >= 2 && cont(s[1]) ? 2 : 0;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        /* E0: no overlong (second byte A0..BF); ED: no surrogates (80..9F). */
        unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
        return n >= 3 && s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        /* F0: no overlong (90..BF); F4: nothing above U+10FFFF (80..8F). */
        unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
        return n >= 4 && s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
    }
    return 0; /* 80..C1 (continuation, overlong lead) and F5..FF */
}

int fl_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = fl_utf8_seq(p + i, n - i);
        if (k == 0) {
            return 0;
        }
        i += k;
    }
    return 1;
}

size_t fl_utf8_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, o = 0;
    if (cap == 0) {
        return 0;
    }
    while (i < n) {
        size_t k = fl_utf8_seq(p + i, n - i);
        if (k > 0) {
            if (o + k >= cap) {
                break;
            }
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        } else {
            if (o + 4 >= cap) {
                break;
            }
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 15];
            i++;
        }
    }
    out[o] = '\0';
    return o;
}
