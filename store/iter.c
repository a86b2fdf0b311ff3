/* Typed iterators over the store's tables (store/iter.h). */
#include <string.h>

#include "common/err.h"
#include "store/iter.h"

int store_iter_open(struct store_txn *t, enum store_table tab, const void *prefix, size_t plen,
                    struct store_iter *it)
{
    memset(it, 0, sizeof *it);
    if (prefix == NULL) {
        plen = 0;
    }
    it->prefix = prefix;
    it->plen = plen;
    return store_cursor_open(t, tab, plen ? prefix : NULL, plen, &it->cur);
}

void store_iter_close(struct store_iter *it)
{
    if (it->cur != NULL) {
        store_cursor_close(it->cur);
        it->cur = NULL;
    }
}

/* The next record within the prefix: FL_OK, FL_ENOTFOUND past the last, or
 * the cursor's error. */
static int step(struct store_iter *it, const void **val, size_t *vlen)
{
    int rv;
    if (it->ended || it->cur == NULL) {
        return it->ended ? it->end_rv : FL_ENOTFOUND;
    }
    rv = store_cursor_next(it->cur, &it->key, &it->klen, val, vlen);
    if (rv == FL_OK &&
        (it->klen < it->plen || (it->plen && memcmp(it->key, it->prefix, it->plen) != 0))) {
        rv = FL_ENOTFOUND;
    }
    if (rv != FL_OK) {
        it->ended = 1;
        it->end_rv = rv;
    }
    return rv;
}

/* One next per record type: step until a record decodes. */
#define STORE_ITER_NEXT(name, type, decode)                                                        \
    int name(struct store_iter *it, type *out)                                                     \
    {                                                                                              \
        const void *val;                                                                           \
        size_t vlen;                                                                               \
        int rv;                                                                                    \
        while ((rv = step(it, &val, &vlen)) == FL_OK) {                                            \
            if (decode(val, vlen, out) == FL_OK) {                                                 \
                return FL_OK;                                                                      \
            }                                                                                      \
            it->skipped++;                                                                         \
        }                                                                                          \
        return rv;                                                                                 \
    }

STORE_ITER_NEXT(store_node_next, struct store_node, store_node_decode)
STORE_ITER_NEXT(store_kv_next, struct store_kv, store_kv_decode)
STORE_ITER_NEXT(store_task_next, struct store_task, store_task_decode)
STORE_ITER_NEXT(store_result_next, struct store_result, store_result_decode)
STORE_ITER_NEXT(store_token_next, struct store_token, store_token_decode)
STORE_ITER_NEXT(store_agentkey_next, struct store_agentkey, store_agentkey_decode)
STORE_ITER_NEXT(store_package_next, struct store_package, store_package_decode)
STORE_ITER_NEXT(store_session_next, struct store_session, store_session_decode)
STORE_ITER_NEXT(store_job_next, struct store_job, store_job_decode)
STORE_ITER_NEXT(store_run_next, struct store_run, store_run_decode)
STORE_ITER_NEXT(store_lock_next, struct store_lock, store_lock_decode)
