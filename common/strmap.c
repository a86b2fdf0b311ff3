#include "common/strmap.h"

#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

static char tomb_;
#define TOMB (&tomb_)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

void strmap_init(struct strmap *m)
{
    memset(m, 0, sizeof *m);
}

void strmap_close(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != NULL && m->slots[i].key != TOMB) {
            fl_free(m->slots[i].key);
        }
    }
    fl_free(m->slots);
    strmap_init(m);
}

static struct strmap_slot *find(const struct strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    if (m->cap == 0) {
        return NULL;
    }
    for (size_t i = hash(key) & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
        struct strmap_slot *s = &m->slots[i];
        if (s->key == NULL) {
            return NULL;
        }
        if (s->key != TOMB && strcmp(s->key, key) == 0) {
            return s;
        }
    }
    return NULL;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct strmap_slot *s = find(m, key);
    return s ? s->value : NULL;
}

static int grow(struct strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct strmap_slot *old = m->slots;
    size_t oldcap = m->cap;
    if (m->live * 2 < m->cap) {
        cap = m->cap; /* mostly tombstones: rehash in place size */
    }
    m->slots = fl_calloc(cap, sizeof *m->slots);
    if (m->slots == NULL) {
        m->slots = old;
        return FL_ENOMEM;
    }
    m->cap = cap;
    m->used = m->live = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key != NULL && old[i].key != TOMB) {
            size_t mask = cap - 1, j = hash(old[i].key) & mask;
            while (m->slots[j].key != NULL) {
                j = (j + 1) & mask;
            }
            m->slots[j] = old[i];
            m->used++;
            m->live++;
        }
    }
    fl_free(old);
    return FL_OK;
}

int strmap_put(struct strmap *m, const char *key, void *value, void **old)
{
    struct strmap_slot *s = find(m, key);
    size_t mask, i;
    if (old != NULL) {
        *old = NULL;
    }
    if (s != NULL) {
        if (old != NULL) {
            *old = s->value;
        }
        s->value = value;
        return FL_OK;
    }
    if ((m->used + 1) * 4 >= m->cap * 3 && grow(m) != FL_OK) {
        return FL_ENOMEM;
    }
    mask = m->cap - 1;
    for (i = hash(key) & mask; m->slots[i].key != NULL && m->slots[i].key != TOMB;
         i = (i + 1) & mask) {
    }
    if (m->slots[i].key == NULL) {
        m->used++;
    }
    m->slots[i].key = fl_strdup(key);
    if (m->slots[i].key == NULL) {
        m->slots[i].key = TOMB;
        return FL_ENOMEM;
    }
    m->slots[i].value = value;
    m->live++;
    return FL_OK;
}

void *strmap_del(struct strmap *m, const char *key)
{
    struct strmap_slot *s = find(m, key);
    void *v;
    if (s == NULL) {
        return NULL;
    }
    v = s->value;
    fl_free(s->key);
    s->key = TOMB;
    s->value = NULL;
    m->live--;
    return v;
}

size_t strmap_size(const struct strmap *m)
{
    return m->live;
}

int strmap_next(const struct strmap *m, size_t *i, const char **key, void **value)
{
    while (*i < m->cap) {
        struct strmap_slot *s = &m->slots[(*i)++];
        if (s->key != NULL && s->key != TOMB) {
            *key = s->key;
            *value = s->value;
            return 1;
        }
    }
    return 0;
}
