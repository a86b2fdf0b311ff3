/* common/num — strict decimal numbers in text a client sent (path segments,
 * query parameters, headers).
 *
 * The canonical form is the only one accepted: one or more ASCII digits, no
 * sign, no blanks, no leading zero ("0" alone is zero), at most UINT64_MAX.
 * strtoull takes far more (leading blanks, "+7", "-1" as 2^64 - 1, clamping
 * past 2^64 - 1, "007"), so one number would have many spellings and an
 * overflow would quietly name another object. */
#ifndef FL_COMMON_NUM_H
#define FL_COMMON_NUM_H

#include <stdint.h>

/* 1 if s is a canonical decimal, else 0. */
int fl_num_canonical(const char *s);

/* Parse the canonical decimal s when its value is in [min, max]: FL_OK with
 * *out set; FL_EINVAL (not canonical, or out of range) with *out untouched. */
int fl_num_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
