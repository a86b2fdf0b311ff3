/* common/utf8 — checking UTF-8 text and escaping what is not.
 *
 * Well-formed means RFC 3629 UTF-8, the same rule jansson applies to every
 * JSON string: no overlong forms (C0 AF is not '/'), no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, no stray continuation bytes.
 * Bytes a client sent (a decoded path, a query value) are neither: they go
 * into a JSON answer only after fl_utf8_valid said yes or fl_utf8_escape
 * made them so. */
#ifndef FL_COMMON_UTF8_H
#define FL_COMMON_UTF8_H

#include <stddef.h>

/* Length (1..4) of the well-formed sequence that starts s[0..n), or 0 if
 * none does (n == 0 included). */
size_t fl_utf8_seq(const unsigned char *s, size_t n);

/* 1 if s[0..n) is well-formed UTF-8 (NUL bytes count as characters). */
int fl_utf8_valid(const char *s, size_t n);

/* Copy the C string s into out (cap bytes; nothing is written when cap is
 * 0), NUL-terminated, with every byte that is not part of a well-formed
 * sequence replaced by the four characters "\xHH" (upper-case hex). The
 * copy is well-formed UTF-8 even when cut short: a sequence or an escape
 * that does not fit whole is left out, never split. Returns the length
 * written (without the NUL). */
size_t fl_utf8_escape(const char *s, char *out, size_t cap);

#endif
