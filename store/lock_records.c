/* store/ — records of the lock tables: sessions and locks (docs/LOCKS.md).
 *
 *   session: [2, id, name, ttl_ms, lock_delay_ms, created_ms, expires_ms,
 *             renewals, created_index, req_serial, req_err, req_version,
 *             req_index, req_str] (format 1 ends at created_index)
 *   lock:    [1, limit, fence, delay_until_ms, [[session, token, since]...]
 *             holders, [[session, token, since]...] waiters]
 *
 * Decoders are total and refuse more holders or waiters than the limits, so
 * a hostile record never makes the store allocate more than it bounds. */
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "store/store.h"
#include "store/store_int.h"

#define SESSION_FORMAT 2
#define LOCK_FORMAT    1
#define LOCK_FIELDS    6

/* ---- sessions ----------------------------------------------------------- */

static const uint32_t session_fields[SESSION_FORMAT] = {9, 14};

static int session_encode(struct fl_buf *b, const struct store_session *s)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, session_fields[SESSION_FORMAT - 1]) |
        msgpack_pack_uint64(&pk, SESSION_FORMAT) | store__pack_str(&pk, s->id) |
        store__pack_str(&pk, s->name) | msgpack_pack_uint64(&pk, s->ttl_ms) |
        msgpack_pack_uint64(&pk, s->lock_delay_ms) | msgpack_pack_uint64(&pk, s->created_ms) |
        msgpack_pack_uint64(&pk, s->expires_ms) | msgpack_pack_uint64(&pk, s->renewals) |
        msgpack_pack_uint64(&pk, s->created_index) | msgpack_pack_uint64(&pk, s->req_serial) |
        msgpack_pack_uint64(&pk, s->req_err) | msgpack_pack_uint64(&pk, s->req_version) |
        msgpack_pack_uint64(&pk, s->req_index) | store__pack_str(&pk, s->req_str);
    return r ? FL_ENOMEM : FL_OK;
}

int store_session_decode(const void *val, size_t vlen, struct store_session *s)
{
    struct fl_mp r;
    uint64_t format, err = 0;
    int rv;
    memset(s, 0, sizeof *s);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header_formats(&r, session_fields, SESSION_FORMAT, &format)) != FL_OK) {
        return rv;
    }
    if (store__str_field(&r, s->id, sizeof s->id) || s->id[0] == '\0' ||
        store__str_field(&r, s->name, sizeof s->name) || fl_mp_uint(&r, &s->ttl_ms) ||
        fl_mp_uint(&r, &s->lock_delay_ms) || fl_mp_uint(&r, &s->created_ms) ||
        fl_mp_uint(&r, &s->expires_ms) || fl_mp_uint(&r, &s->renewals) ||
        fl_mp_uint(&r, &s->created_index)) {
        return FL_EDECODE;
    }
    if (format >= 2 &&
        (fl_mp_uint(&r, &s->req_serial) || fl_mp_uint(&r, &err) || err > UINT32_MAX ||
         fl_mp_uint(&r, &s->req_version) || fl_mp_uint(&r, &s->req_index) ||
         store__str_field(&r, s->req_str, sizeof s->req_str))) {
        return FL_EDECODE;
    }
    s->req_err = (uint32_t)err;
    return fl_mp_end(&r) ? FL_EDECODE : FL_OK;
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
    struct fl_buf b;
    if (s->id[0] == '\0' || memchr(s->id, '\0', sizeof s->id) == NULL ||
        memchr(s->name, '\0', sizeof s->name) == NULL ||
        memchr(s->req_str, '\0', sizeof s->req_str) == NULL) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "session record: bad id or name");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_SESSIONS, s->id, strlen(s->id), &b, session_encode(&b, s));
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

static int slots_encode(msgpack_packer *pk, const struct store_lock_slot *s, uint32_t n)
{
    int r = msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        r |= msgpack_pack_array(pk, 3) | store__pack_str(pk, s[i].session) |
             msgpack_pack_uint64(pk, s[i].token) | msgpack_pack_uint64(pk, s[i].since_ms);
    }
    return r;
}

static int lock_encode(struct fl_buf *b, const struct store_lock *l)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, LOCK_FIELDS) | msgpack_pack_uint64(&pk, LOCK_FORMAT) |
        msgpack_pack_uint64(&pk, l->limit) | msgpack_pack_uint64(&pk, l->fence) |
        msgpack_pack_uint64(&pk, l->delay_until_ms) | slots_encode(&pk, l->holders, l->n_holders) |
        slots_encode(&pk, l->waiters, l->n_waiters);
    return r ? FL_ENOMEM : FL_OK;
}

/* Decode an array of slots into a fresh array with room for one more. */
static int slots_decode(struct fl_mp *r, uint32_t max, struct store_lock_slot **out, uint32_t *n)
{
    uint32_t count, fields;
    if (fl_mp_array(r, &count) != FL_OK || count > max) {
        return FL_EDECODE;
    }
    *out = fl_calloc((size_t)count + 1, sizeof **out);
    if (*out == NULL) {
        return FL_ENOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
        struct store_lock_slot *s = &(*out)[i];
        if (fl_mp_array(r, &fields) != FL_OK || fields != 3 ||
            store__str_field(r, s->session, sizeof s->session) || s->session[0] == '\0' ||
            fl_mp_uint(r, &s->token) || fl_mp_uint(r, &s->since_ms)) {
            return FL_EDECODE;
        }
    }
    *n = count;
    return FL_OK;
}

int store_lock_decode(const void *val, size_t vlen, struct store_lock *l)
{
    struct fl_mp r;
    int rv;
    memset(l, 0, sizeof *l);
    fl_mp_init(&r, val, vlen);
    rv = store__header(&r, LOCK_FORMAT, LOCK_FIELDS);
    if (rv == FL_OK &&
        (store__u32_field(&r, &l->limit) || l->limit == 0 || l->limit > STORE_LOCK_HOLDERS_MAX ||
         fl_mp_uint(&r, &l->fence) || fl_mp_uint(&r, &l->delay_until_ms))) {
        rv = FL_EDECODE;
    }
    if (rv == FL_OK) {
        rv = slots_decode(&r, l->limit, &l->holders, &l->n_holders);
    }
    if (rv == FL_OK) {
        rv = slots_decode(&r, STORE_LOCK_WAITERS_MAX, &l->waiters, &l->n_waiters);
    }
    if (rv == FL_OK && fl_mp_end(&r) != FL_OK) {
        rv = FL_EDECODE;
    }
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
    struct fl_buf b;
    if (klen == 0 || klen >= STORE_LOCK_KEY_MAX || l->limit == 0 ||
        l->limit > STORE_LOCK_HOLDERS_MAX || l->n_holders > l->limit ||
        l->n_waiters > STORE_LOCK_WAITERS_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "lock record: bad key, limit or counts");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_LOCKS, key, klen, &b, lock_encode(&b, l));
}
