/* A string-keyed hash map (open addressing, linear probing, tombstones).
 * Keys are copied; values are the caller's pointers. Not thread-safe. */
#ifndef FL_COMMON_STRMAP_H
#define FL_COMMON_STRMAP_H

#include <stddef.h>

struct strmap_slot {
    char *key; /* NULL: empty; STRMAP__TOMB: deleted */
    void *value;
};

struct strmap {
    struct strmap_slot *slots;
    size_t cap;  /* power of two */
    size_t used; /* live + tombstones */
    size_t live;
};

void strmap_init(struct strmap *m);
/* Frees the keys (not the values). */
void strmap_close(struct strmap *m);
void *strmap_get(const struct strmap *m, const char *key);
/* Insert or replace; FL_ENOMEM on failure. *old (may be NULL) gets the value
 * that was replaced, or NULL. */
int strmap_put(struct strmap *m, const char *key, void *value, void **old);
/* Remove; returns the value, or NULL if absent. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_size(const struct strmap *m);
/* Iterate: *i starts at 0; returns 0 at the end. Deleting the current entry
 * during iteration is allowed. */
int strmap_next(const struct strmap *m, size_t *i, const char **key, void **value);

#endif
