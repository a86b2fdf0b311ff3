/* A total, allocation-free msgpack reader for bytes from outside the process
 * or from disk (agent frames, store records).
 *
 * Such bytes are not given to msgpack-c's unpacker: it allocates its object
 * tree with malloc (outside the project's allocator) and sizes containers from
 * the untrusted header, so five bytes announcing a 2^32-element array ask for
 * ~100 GB before one element is read. This reader only checks bounds and hands
 * out pointers into the input; callers copy what they keep. */
#ifndef FL_COMMON_MPREAD_H
#define FL_COMMON_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fl_mp {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

void fl_mp_init(struct fl_mp *r, const uint8_t *p, size_t len);
/* Each returns FL_OK or FL_EDECODE (wrong type, truncated, out of range). */
int fl_mp_uint(struct fl_mp *r, uint64_t *v); /* any non-negative integer */
int fl_mp_int(struct fl_mp *r, int64_t *v);   /* any integer up to INT64_MAX */
int fl_mp_bool(struct fl_mp *r, bool *v);
/* An array header; refuses counts that cannot fit in the bytes left (every
 * element takes at least one byte). */
int fl_mp_array(struct fl_mp *r, uint32_t *n);
int fl_mp_str(struct fl_mp *r, const char **s, size_t *n);
int fl_mp_bin(struct fl_mp *r, const uint8_t **b, size_t *n);
/* Skip one object of any type (nesting at most 8 deep). */
int fl_mp_skip(struct fl_mp *r);
/* FL_OK iff every byte has been read. */
int fl_mp_end(const struct fl_mp *r);

#endif
