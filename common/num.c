/* Strict decimal numbers (common/num.h). */
#include "common/num.h"

#include <stddef.h>

#include "common/err.h"

/* FL_OK with the value of s in *out, or FL_EINVAL if s is not canonical. */
static int parse(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (s == NULL || s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0')) {
        return FL_EINVAL;
    }
    for (i = 0; s[i] != '\0'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10) {
            return FL_EINVAL;
        }
        v = v * 10 + d;
    }
    *out = v;
    return FL_OK;
}

int fl_num_canonical(const char *s)
{
    uint64_t v;
    return parse(s, &v) == FL_OK;
}

int fl_num_parse(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (parse(s, &v) != FL_OK || v < min || v > max) {
        return FL_EINVAL;
    }
    *out = v;
    return FL_OK;
}
