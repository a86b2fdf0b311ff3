/* Places per peer address (common/addrcap.h). */
#include "common/addrcap.h"

#include "common/err.h"

void fl_addrcap_init(struct fl_addrcap *a, unsigned cap)
{
    strmap_init(&a->m);
    a->cap = cap;
    a->refused = 0;
}

void fl_addrcap_close(struct fl_addrcap *a)
{
    strmap_close(&a->m);
}

unsigned fl_addrcap_count(const struct fl_addrcap *a, const char *addr)
{
    return (unsigned)(uintptr_t)strmap_get(&a->m, addr);
}

int fl_addrcap_take(struct fl_addrcap *a, const char *addr)
{
    unsigned n = fl_addrcap_count(a, addr);
    if (n >= a->cap || strmap_put(&a->m, addr, (void *)(uintptr_t)(n + 1), NULL) != FL_OK) {
        a->refused++;
        return 0;
    }
    return 1;
}

void fl_addrcap_give(struct fl_addrcap *a, const char *addr)
{
    unsigned n = fl_addrcap_count(a, addr);
    if (n <= 1) {
        strmap_del(&a->m, addr);
    } else {
        strmap_put(&a->m, addr, (void *)(uintptr_t)(n - 1), NULL);
    }
}
