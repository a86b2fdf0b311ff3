/* store/ — records of the lock tables: sessions and locks (docs/LOCKS.md).
 *
 *   session: [3, id, name, ttl_ms, lock_delay_ms, created_ms, expires_ms,
 *             renewals, created_index, req_serial, req_err, req_version,
 *             req_index, req_str, owner] (format 1 ends at created_index,
 *             format 2 at req_str; a session without an owner is written
 *             in format 2)
 *   lock:    [1, limit, fence, delay_until_ms, [[session, token, since]...]
 *             holders, [[session, token, since]...] waiters]
 *
 * The formats are the tables of formats.c. Decoders are total and refuse more
 * holders or waiters than the limits, so a hostile record never makes the
 * store allocate more than it bounds. */
#include <string.h>

#include "common/alloc.h"
#include "store/store.h"
#include "store/store_int.h"

/* ---- sessions ----------------------------------------------------------- */

int store_session_decode(const void *val, size_t vlen, struct store_session *s)
{
    return schema_decode_record(&store__fmt_session, val, vlen, s, NULL, NULL);
}

int store_session_get(struct store_txn *t, const char *id, struct store_session *out)
{
    const void *v;
    size_t vl;
    int rv = store_get(t, STORE_SESSIONS, id, strlen(id), &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_session_decode(v, vl, out);
    if (rv != FL_OK) {
        return fl_errf(t->s->errmsg, FL_ECORRUPT, "session %s does not decode (%s)", id,
                       fl_errname(rv));
    }
    return FL_OK;
}

int store_session_put(struct store_txn *t, const struct store_session *s)
{
    return store__put_record(t, STORE_SESSIONS, s->id, strnlen(s->id, sizeof s->id),
                             &store__fmt_session, s);
}

/* ---- locks -------------------------------------------------------------- */

int store_lock_init(struct store_lock *l, uint32_t limit)
{
    memset(l, 0, sizeof *l);
    l->limit = limit;
    l->holders = fl_calloc(1, sizeof *l->holders);
    l->waiters = fl_calloc(1, sizeof *l->waiters);
    if (l->holders == NULL || l->waiters == NULL) {
        store_lock_free(l);
        return FL_ENOMEM;
    }
    return FL_OK;
}

void store_lock_free(struct store_lock *l)
{
    fl_free(l->holders);
    fl_free(l->waiters);
    l->holders = l->waiters = NULL;
    l->n_holders = l->n_waiters = 0;
}

int store_lock_decode(const void *val, size_t vlen, struct store_lock *l)
{
    int rv = schema_decode_record(&store__fmt_lock, val, vlen, l, NULL, NULL);
    if (rv != FL_OK) {
        store_lock_free(l);
    }
    return rv;
}

int store_lock_get(struct store_txn *t, const char *key, size_t klen, struct store_lock *out)
{
    const void *v;
    size_t vl;
    int rv;
    memset(out, 0, sizeof *out);
    if (klen == 0 || klen >= STORE_LOCK_KEY_MAX) {
        return FL_ENOTFOUND;
    }
    rv = store_get(t, STORE_LOCKS, key, klen, &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_lock_decode(v, vl, out);
    if (rv == FL_ENOMEM) {
        return rv;
    }
    if (rv != FL_OK) {
        return fl_errf(t->s->errmsg, FL_ECORRUPT, "lock %.*s does not decode (%s)", (int)klen, key,
                       fl_errname(rv));
    }
    return FL_OK;
}

int store_lock_put(struct store_txn *t, const char *key, size_t klen, const struct store_lock *l)
{
    if (klen == 0 || klen >= STORE_LOCK_KEY_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "lock record: bad key");
    }
    return store__put_record(t, STORE_LOCKS, key, klen, &store__fmt_lock, l);
}
