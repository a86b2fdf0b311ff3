#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

void fl_buf_init(struct fl_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void fl_buf_close(struct fl_buf *b)
{
    fl_free(b->data);
    fl_buf_init(b);
}

void fl_buf_reset(struct fl_buf *b)
{
    b->len = 0;
}

int fl_buf_reserve(struct fl_buf *b, size_t extra)
{
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    uint8_t *p;
    if (want <= b->cap) {
        return FL_OK;
    }
    while (cap < want) {
        cap *= 2;
    }
    p = fl_realloc(b->data, cap);
    if (p == NULL) {
        return FL_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return FL_OK;
}

int fl_buf_append(struct fl_buf *b, const void *p, size_t n)
{
    int rv = fl_buf_reserve(b, n + 1);
    if (rv != FL_OK) {
        return rv;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0'; /* keeps text buffers printable */
    return FL_OK;
}

int fl_buf_printf(struct fl_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return FL_EINVAL;
    }
    if (fl_buf_reserve(b, (size_t)n + 1) != FL_OK) {
        return FL_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return FL_OK;
}

uint8_t *fl_buf_steal(struct fl_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    fl_buf_init(b);
    return p;
}
