#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>

static long fault_countdown = -1;

static int should_fail(void)
{
    if (fault_countdown < 0) {
        return 0;
    }
    if (fault_countdown == 0) {
        return 1;
    }
    fault_countdown--;
    return 0;
}

void fl_alloc_fault_set(long countdown)
{
    fault_countdown = countdown;
}

void fl_alloc_fault_clear(void)
{
    fault_countdown = -1;
}

void *fl_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size == 0 ? 1 : size);
}

void *fl_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *fl_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size == 0 ? 1 : size);
}

void fl_free(void *p)
{
    free(p);
}

char *fl_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *out = fl_malloc(len + 1);
    if (out != NULL) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

char *fl_strdup(const char *s)
{
    return fl_strndup(s, strlen(s));
}
