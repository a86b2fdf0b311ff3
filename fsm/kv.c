/* fsm/ — the replicated key-value store: put (optionally compare-and-set)
 * and delete (docs/API.md "Keys").
 *
 * Key versions are revisions: a cluster-wide counter of kv writes kept in
 * META ("revision", fsm.revision), so each write has its own version even
 * when many share an entry. A compare-and-set names the version it expects
 * (0: the key must not exist); a mismatch is FL_ECONFLICT with the current
 * version in the result. */
#include <string.h>

#include "common/err.h"
#include "fsm/fsm_int.h"

static int put(struct store_txn *t, const struct fsm_cmd *c, uint64_t *revision, uint64_t now,
               struct fsm_result *res)
{
    struct store_kv cur;
    int rv = store_kv_get(t, c->u.kv.key, c->u.kv.klen, &cur);
    if (rv != FL_OK && rv != FL_ENOTFOUND) {
        return rv;
    }
    if (c->u.kv.has_cas) {
        int exists = rv == FL_OK;
        if ((c->u.kv.cas == 0 && exists) ||
            (c->u.kv.cas != 0 && (!exists || cur.version != c->u.kv.cas))) {
            res->err = FL_ECONFLICT;
            res->kv_version = exists ? cur.version : 0;
            return FL_OK;
        }
    }
    rv =
        store_kv_put(t, c->u.kv.key, c->u.kv.klen, c->u.kv.value, c->u.kv.vlen, *revision + 1, now);
    if (rv != FL_OK) {
        return rv;
    }
    res->kv_version = ++*revision;
    return FL_OK;
}

static int del(struct store_txn *t, const struct fsm_cmd *c, uint64_t *revision,
               struct fsm_result *res)
{
    struct store_kv cur;
    int rv = store_kv_get(t, c->u.kv.key, c->u.kv.klen, &cur);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (c->u.kv.has_cas && cur.version != c->u.kv.cas) {
        res->err = FL_ECONFLICT;
        res->kv_version = cur.version;
        return FL_OK;
    }
    res->kv_version = cur.version;
    rv = store_kv_del(t, c->u.kv.key, c->u.kv.klen);
    if (rv == FL_OK) {
        ++*revision;
    }
    return rv;
}

int fsm__apply_kv(struct fsm *f, const struct fsm_cmd *c, uint64_t now, struct fsm_result *res)
{
    if (c->type == FSM_CMD_KV_PUT) {
        return put(f->txn, c, &f->revision, now, res);
    }
    return del(f->txn, c, &f->revision, res);
}
