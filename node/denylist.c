/* The revoked agents, copied for the handshakes (node/denylist.h). */
#include "node/denylist.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "store/iter.h"

struct denylist {
    pthread_mutex_t mu;
    char **names; /* sorted; under mu */
    unsigned n;
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        fl_free(names[i]);
    }
    fl_free(names);
}

int denylist_create(struct denylist **out)
{
    struct denylist *d = fl_calloc(1, sizeof *d);
    if (d == NULL) {
        return FL_ENOMEM;
    }
    pthread_mutex_init(&d->mu, NULL);
    *out = d;
    return FL_OK;
}

void denylist_destroy(struct denylist *d)
{
    if (d == NULL) {
        return;
    }
    free_names(d->names, d->n);
    pthread_mutex_destroy(&d->mu);
    fl_free(d);
}

int denylist_refresh(struct denylist *d, struct store *st)
{
    struct store_txn *t;
    struct store_iter it;
    struct store_agentkey rec;
    char **names = NULL;
    unsigned n = 0, cap = 0;
    int rv = store_begin(st, 0, &t);
    if (rv != FL_OK) {
        return rv;
    }
    memset(&it, 0, sizeof it);
    rv = store_iter_open(t, STORE_AGENTKEYS, NULL, 0, &it);
    while (rv == FL_OK && (rv = store_agentkey_next(&it, &rec)) == FL_OK) {
        if (rec.state != STORE_AGENTKEY_REVOKED) {
            continue;
        }
        if (n == cap) {
            unsigned ncap = cap ? cap * 2 : 16;
            char **nn = fl_realloc(names, ncap * sizeof *nn);
            if (nn == NULL) {
                rv = FL_ENOMEM;
                break;
            }
            names = nn;
            cap = ncap;
        }
        names[n] = fl_malloc(it.klen + 1);
        if (names[n] == NULL) {
            rv = FL_ENOMEM;
            break;
        }
        memcpy(names[n], it.key, it.klen);
        names[n][it.klen] = '\0';
        n++;
    }
    if (rv == FL_ENOTFOUND) {
        rv = FL_OK; /* the end of the table */
    }
    store_iter_close(&it);
    store_abort(t);
    if (rv != FL_OK) {
        free_names(names, n);
        return rv;
    }
    if (n > 1) {
        qsort(names, n, sizeof *names, cmp_name);
    }
    pthread_mutex_lock(&d->mu);
    char **old = d->names;
    unsigned old_n = d->n;
    d->names = names;
    d->n = n;
    pthread_mutex_unlock(&d->mu);
    free_names(old, old_n);
    return FL_OK;
}

int denylist_has(struct denylist *d, const char *name)
{
    int found;
    pthread_mutex_lock(&d->mu);
    found = d->n > 0 && bsearch(&name, d->names, d->n, sizeof *d->names, cmp_name) != NULL;
    pthread_mutex_unlock(&d->mu);
    return found;
}

int denylist_hook(void *ud, const struct pki_identity *peer, const char *serial)
{
    (void)serial;
    return peer->role == PKI_ROLE_AGENT && denylist_has(ud, peer->name);
}

unsigned denylist_count(struct denylist *d)
{
    unsigned n;
    pthread_mutex_lock(&d->mu);
    n = d->n;
    pthread_mutex_unlock(&d->mu);
    return n;
}
