/* store/ — typed iterators: a cursor over one table, bounded by a key
 * prefix, that decodes each record into its struct.
 *
 *     struct store_iter it;
 *     struct store_task task;
 *     if (store_iter_open(t, STORE_TASKS, NULL, 0, &it) == FL_OK) {
 *         while ((rv = store_task_next(&it, &task)) == FL_OK) {
 *             ... it.key, it.klen: the record's key ...
 *         }
 *         store_iter_close(&it);
 *     }
 *
 * Records come in key order, starting at the first key that begins with
 * `prefix` (NULL or plen 0: every key of the table); the iteration ends at
 * the first key that does not begin with it. A record that does not decode
 * is skipped and counted in `skipped`. A next returns FL_OK with the next
 * record, FL_ENOTFOUND at the end, or the cursor's error (the iteration is
 * then over). Pointers in the decoded records and `key` point into the
 * transaction's memory, valid until it ends; the prefix is not copied and
 * must outlive the iteration. Close the iterator before the txn ends. */
#ifndef FL_STORE_ITER_H
#define FL_STORE_ITER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct store_iter {
    struct store_cursor *cur;
    const void *prefix;
    size_t plen;
    const void *key; /* the current record's key */
    size_t klen;
    uint64_t skipped; /* records that did not decode */
    int ended;        /* a next returned something other than FL_OK: it returns that again */
    int end_rv;
};

int store_iter_open(struct store_txn *t, enum store_table tab, const void *prefix, size_t plen,
                    struct store_iter *it);
void store_iter_close(struct store_iter *it); /* a closed or zeroed iterator is a no-op */

int store_node_next(struct store_iter *it, struct store_node *out);         /* STORE_NODES */
int store_kv_next(struct store_iter *it, struct store_kv *out);             /* STORE_KV */
int store_task_next(struct store_iter *it, struct store_task *out);         /* STORE_TASKS */
int store_result_next(struct store_iter *it, struct store_result *out);     /* STORE_RESULTS */
int store_token_next(struct store_iter *it, struct store_token *out);       /* STORE_TOKENS */
int store_agentkey_next(struct store_iter *it, struct store_agentkey *out); /* STORE_AGENTKEYS */
int store_package_next(struct store_iter *it, struct store_package *out);   /* STORE_PACKAGES */
int store_session_next(struct store_iter *it, struct store_session *out);   /* STORE_SESSIONS */
int store_job_next(struct store_iter *it, struct store_job *out);           /* STORE_JOBS */
int store_run_next(struct store_iter *it, struct store_run *out);           /* STORE_RUNS */
/* STORE_LOCKS: the caller frees each lock returned with store_lock_free. */
int store_lock_next(struct store_iter *it, struct store_lock *out);

#endif
