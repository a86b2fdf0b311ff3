/* The one allocator of the project.
 *
 * Everything Flotilla allocates goes through these functions so that tests can
 * make the N-th allocation fail (fault sweeps). They behave like the libc
 * functions they wrap; fl_free(NULL) is a no-op. */
#ifndef FL_COMMON_ALLOC_H
#define FL_COMMON_ALLOC_H

#include <stddef.h>

void *fl_malloc(size_t size);
void *fl_calloc(size_t n, size_t size);
void *fl_realloc(void *p, size_t size);
void fl_free(void *p);
char *fl_strdup(const char *s);
char *fl_strndup(const char *s, size_t n);

/* Fault injection: after `countdown` more successful allocations, every
 * allocation fails until fl_alloc_fault_clear(). countdown < 0 disables. */
void fl_alloc_fault_set(long countdown);
void fl_alloc_fault_clear(void);

#endif
