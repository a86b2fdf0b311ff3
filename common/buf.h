/* A growable byte buffer (caller owns the struct, the buffer owns `data`). */
#ifndef FL_COMMON_BUF_H
#define FL_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct fl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void fl_buf_init(struct fl_buf *b);
void fl_buf_close(struct fl_buf *b);
void fl_buf_reset(struct fl_buf *b);
int fl_buf_reserve(struct fl_buf *b, size_t extra);           /* FL_ENOMEM on failure */
int fl_buf_append(struct fl_buf *b, const void *p, size_t n); /* FL_ENOMEM on failure */
int fl_buf_printf(struct fl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the bytes to the caller (free with fl_free); the buffer becomes empty. */
uint8_t *fl_buf_steal(struct fl_buf *b, size_t *len);

#endif
