/* Sessions, leases and locks: the commands and their apply (docs/LOCKS.md).
 *
 * DESIGN.md "Guarantees": a lock never has two holders whose fencing tokens
 * are both current; tokens strictly increase per lock. Every grant takes the
 * next value of the one fencing counter (meta "fence", shared with unit
 * assignments), so tokens increase per lock and across the cluster, and a
 * grant is decided here, from the entry and the store alone, identically on
 * every replica.
 *
 * Expiry is the leader's decision, made on its monotonic clock (leader/locks.c)
 * and committed as SESSION_EXPIRE carrying the renewal count it saw: a
 * session renewed (or extended by a new leader) since then is not expired.
 * So a wall-clock jump on any server never expires a healthy session. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "fsm/fsm_int.h"

/* ---- validation ------------------------------------------------------- */

static int ns_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
           ch == '-';
}

int fsm_lock_key_check(const char *ns, size_t nslen, const char *name, size_t namelen, char *errmsg)
{
    if (nslen == 0 || nslen > FSM_LOCK_NS_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "namespace must be 1-%d characters", FSM_LOCK_NS_MAX);
    }
    if (!((ns[0] >= 'a' && ns[0] <= 'z') || (ns[0] >= '0' && ns[0] <= '9'))) {
        return fl_errf(errmsg, FL_EINVAL,
                       "namespace must start with a lowercase letter or a digit");
    }
    for (size_t i = 0; i < nslen; i++) {
        if (!ns_char((unsigned char)ns[i])) {
            return fl_errf(errmsg, FL_EINVAL,
                           "namespace may only hold a-z, 0-9, '_', '.' and '-' (found 0x%02x at "
                           "byte %zu)",
                           (unsigned char)ns[i], i);
        }
    }
    if (namelen == 0 || nslen + 1 + namelen >= STORE_LOCK_KEY_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "lock name must be 1-%zu bytes",
                       STORE_LOCK_KEY_MAX - 2 - nslen);
    }
    for (size_t i = 0; i < namelen; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            return fl_errf(errmsg, FL_EINVAL,
                           "lock name may only hold printable ASCII without spaces (found 0x%02x "
                           "at byte %zu)",
                           ch, i);
        }
    }
    return FL_OK;
}

int fsm_lock_full_key_check(const char *key, size_t klen, char *errmsg)
{
    const char *slash = memchr(key, '/', klen);
    if (slash == NULL) {
        return fl_errf(errmsg, FL_EINVAL, "a lock is named namespace/name");
    }
    return fsm_lock_key_check(key, (size_t)(slash - key), slash + 1,
                              klen - (size_t)(slash - key) - 1, errmsg);
}

int fsm_session_id_check(const char *id, size_t n, char *errmsg)
{
    if (n == 0 || n >= STORE_SESSION_ID_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "session id must be 1-%d characters",
                       STORE_SESSION_ID_MAX - 1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-')) {
            return fl_errf(errmsg, FL_EINVAL, "session id may only hold A-Z, a-z, 0-9, '_', '-'");
        }
    }
    return FL_OK;
}

int fsm__lock_validate(const struct fsm_cmd *c, char *errmsg)
{
    int rv;
    if (c->type != FSM_CMD_LEASE_EXTEND && c->type != FSM_CMD_LOCK_WAKE) {
        rv = fsm_session_id_check(c->u.lock.session, c->u.lock.slen, errmsg);
        if (rv != FL_OK) {
            return rv;
        }
    }
    if (c->u.lock.token != 0 && c->type != FSM_CMD_LOCK_RELEASE) {
        return fl_errf(errmsg, FL_EINVAL, "only a release names a fencing token");
    }
    if (c->u.lock.olen > 0) {
        if (c->type != FSM_CMD_SESSION_CREATE) {
            return fl_errf(errmsg, FL_EINVAL, "only a session's creation names its owner");
        }
        if (c->u.lock.olen >= STORE_SESSION_OWNER_MAX) {
            return fl_errf(errmsg, FL_EINVAL, "owner must be a token accessor (at most %d bytes)",
                           STORE_SESSION_OWNER_MAX - 1);
        }
        for (size_t i = 0; i < c->u.lock.olen; i++) {
            char ch = c->u.lock.owner[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
                return fl_errf(errmsg, FL_EINVAL, "owner must be a token accessor (hex)");
            }
        }
    }
    switch (c->type) {
    case FSM_CMD_SESSION_CREATE:
        if (c->u.lock.ttl_ms < FSM_SESSION_TTL_MIN_MS ||
            c->u.lock.ttl_ms > FSM_SESSION_TTL_MAX_MS) {
            return fl_errf(errmsg, FL_EINVAL, "ttl must be between 1s and 24h");
        }
        if (c->u.lock.lock_delay_ms > FSM_LOCK_DELAY_MAX_MS) {
            return fl_errf(errmsg, FL_EINVAL, "lock_delay must be between 0 and 60s");
        }
        if (c->u.lock.nlen >= STORE_SESSION_NAME_MAX) {
            return fl_errf(errmsg, FL_EINVAL, "session name must be at most %d bytes",
                           STORE_SESSION_NAME_MAX - 1);
        }
        if (c->u.lock.nlen > 0 && memchr(c->u.lock.name, '\0', c->u.lock.nlen) != NULL) {
            return fl_errf(errmsg, FL_EINVAL, "session name holds a NUL byte");
        }
        return FL_OK;
    case FSM_CMD_LOCK_ACQUIRE:
        if (c->u.lock.limit == 0 || c->u.lock.limit > STORE_LOCK_HOLDERS_MAX) {
            return fl_errf(errmsg, FL_EINVAL, "limit must be 1-%d", STORE_LOCK_HOLDERS_MAX);
        }
        /* fall through */
    case FSM_CMD_LOCK_RELEASE:
    case FSM_CMD_LOCK_UNWAIT:
    case FSM_CMD_LOCK_WAKE:
        return fsm_lock_full_key_check(c->u.lock.key, c->u.lock.klen, errmsg);
    default:
        return FL_OK;
    }
}

/* ---- apply ------------------------------------------------------------- */

/* Record an effect for the lock manager (fsm/fsm.h "Effects"). */
static void emit(struct fsm *f, int type, const char *session, const char *key, size_t klen,
                 uint64_t token)
{
    struct fsm_effect *e = fsm__effect(f, type, session, session != NULL ? strlen(session) : 0);
    if (e != NULL) {
        fsm__copy_str(e->key, sizeof e->key, key, klen);
        e->token = token;
    }
}

static void emit_session(struct fsm *f, const struct store_session *s)
{
    struct fsm_effect *e = fsm__effect(f, FSM_EFF_SESSION, s->id, strlen(s->id));
    if (e != NULL) {
        e->ttl_ms = s->ttl_ms;
        e->renewals = s->renewals;
    }
}

/* SESSLOCKS key: session '\0' lock key. */
static size_t sesslock_key(char *out, const char *session, const char *key, size_t klen)
{
    size_t n = strlen(session);
    memcpy(out, session, n);
    out[n] = '\0';
    memcpy(out + n + 1, key, klen);
    return n + 1 + klen;
}

static int sesslock_set(struct store_txn *t, const char *session, const char *key, size_t klen,
                        const char *kind)
{
    char k[STORE_SESSION_ID_MAX + STORE_LOCK_KEY_MAX];
    size_t n = sesslock_key(k, session, key, klen);
    if (kind == NULL) {
        int rv = store_del(t, STORE_SESSLOCKS, k, n);
        return rv == FL_ENOTFOUND ? FL_OK : rv;
    }
    return store_put(t, STORE_SESSLOCKS, k, n, kind, 1);
}

static int find(const struct store_lock_slot *s, uint32_t n, const char *session)
{
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(s[i].session, session) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void remove_at(struct store_lock_slot *s, uint32_t *n, uint32_t i)
{
    memmove(&s[i], &s[i + 1], (size_t)(*n - i - 1) * sizeof *s);
    (*n)--;
}

/* Append, growing the array (decoded arrays have room for one more). */
static int push(struct store_lock_slot **s, uint32_t *n, const char *session, uint64_t token,
                uint64_t now)
{
    struct store_lock_slot *grown = fl_realloc(*s, ((size_t)*n + 2) * sizeof **s);
    if (grown == NULL) {
        return FL_ENOMEM;
    }
    *s = grown;
    memset(&grown[*n], 0, sizeof grown[*n]);
    fsm__copy_str(grown[*n].session, sizeof grown[*n].session, session, strlen(session));
    grown[*n].token = token;
    grown[*n].since_ms = now;
    (*n)++;
    return FL_OK;
}

static int grant(struct fsm *f, const char *key, size_t klen, struct store_lock *l,
                 const char *session, uint64_t now)
{
    uint64_t token = ++f->fence;
    int rv = push(&l->holders, &l->n_holders, session, token, now);
    if (rv == FL_OK) {
        rv = sesslock_set(f->txn, session, key, klen, "H");
    }
    if (rv == FL_OK) {
        l->fence = token;
        emit(f, FSM_EFF_LOCK_GRANTED, session, key, klen, token);
    }
    return rv;
}

/* FIFO: while there is room and the lock-delay is over, the first waiter
 * gets the lock. */
static int grant_waiters(struct fsm *f, const char *key, size_t klen, struct store_lock *l,
                         uint64_t now)
{
    while (l->n_waiters > 0 && l->n_holders < l->limit && now >= l->delay_until_ms) {
        char session[STORE_SESSION_ID_MAX];
        int rv;
        memcpy(session, l->waiters[0].session, sizeof session);
        remove_at(l->waiters, &l->n_waiters, 0);
        rv = grant(f, key, klen, l, session, now);
        if (rv != FL_OK) {
            return rv;
        }
    }
    if (l->n_waiters > 0 && l->n_holders < l->limit) {
        struct fsm_effect *e = fsm__effect(f, FSM_EFF_LOCK_DELAY, NULL, 0);
        if (e != NULL) {
            fsm__copy_str(e->key, sizeof e->key, key, klen);
            e->until_ms = l->delay_until_ms;
        }
    }
    return FL_OK;
}

/* Write the lock back; a lock nobody holds or waits for, past its delay, is
 * deleted (its tokens stay unique: they come from the one counter). */
static int lock_save(struct store_txn *t, const char *key, size_t klen, const struct store_lock *l,
                     uint64_t now)
{
    if (l->n_holders == 0 && l->n_waiters == 0 && l->delay_until_ms <= now) {
        int rv = store_del(t, STORE_LOCKS, key, klen);
        return rv == FL_ENOTFOUND ? FL_OK : rv;
    }
    return store_lock_put(t, key, klen, l);
}

static int session_exists(struct store_txn *t, const char *id, struct store_session *out)
{
    return store_session_get(t, id, out);
}

static int acquire(struct fsm *f, const struct fsm_cmd *c, const char *session, uint64_t now,
                   struct fsm_result *res)
{
    struct store_session sess;
    struct store_lock l;
    const char *key = c->u.lock.key;
    size_t klen = c->u.lock.klen;
    int rv, i;

    rv = session_exists(f->txn, session, &sess);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_lock_get(f->txn, key, klen, &l);
    if (rv == FL_ENOTFOUND) {
        rv = store_lock_init(&l, c->u.lock.limit);
    }
    if (rv != FL_OK) {
        return rv;
    }
    if ((i = find(l.holders, l.n_holders, session)) >= 0) {
        res->token = l.holders[i].token; /* asking again is not a second hold */
        goto out;
    }
    if (find(l.waiters, l.n_waiters, session) >= 0) {
        res->token = 0;
        goto out;
    }
    if (l.limit != c->u.lock.limit) {
        if (l.n_holders > 0 || l.n_waiters > 0) {
            res->err = FL_ECONFLICT;
            res->limit = l.limit;
            goto out;
        }
        l.limit = c->u.lock.limit;
    }
    if (l.n_holders < l.limit && l.n_waiters == 0 && now >= l.delay_until_ms) {
        rv = grant(f, key, klen, &l, session, now);
        res->token = l.fence;
    } else if (c->u.lock.wait) {
        if (l.n_waiters >= STORE_LOCK_WAITERS_MAX) {
            res->err = FL_ETOOBIG;
            goto out;
        }
        rv = push(&l.waiters, &l.n_waiters, session, 0, now);
        if (rv == FL_OK) {
            rv = sesslock_set(f->txn, session, key, klen, "W");
        }
        if (rv == FL_OK) {
            rv = grant_waiters(f, key, klen, &l, now); /* reports a lock-delay */
        }
        res->token = 0;
    } else {
        res->err = FL_EBUSY;
        if (l.n_holders > 0) {
            fsm__copy_str(res->holder, sizeof res->holder, l.holders[0].session,
                          strlen(l.holders[0].session));
        }
        goto out;
    }
    if (rv == FL_OK) {
        rv = lock_save(f->txn, key, klen, &l, now);
    }
out:
    store_lock_free(&l);
    return rv;
}

/* Remove session from the lock at key: as a holder (then with lock-delay
 * `delay_ms`) or a waiter. *was: 'H', 'W' or 0; *token: the hold's token. */
static int leave(struct fsm *f, const char *key, size_t klen, const char *session,
                 uint64_t delay_ms, int keep_holder, uint64_t now, int *was, uint64_t *token)
{
    struct store_lock l;
    int rv, i;
    *was = 0;
    *token = 0;
    rv = store_lock_get(f->txn, key, klen, &l);
    if (rv == FL_ENOTFOUND) {
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if ((i = find(l.holders, l.n_holders, session)) >= 0) {
        *was = 'H';
        *token = l.holders[i].token;
        if (keep_holder) {
            store_lock_free(&l);
            return FL_OK;
        }
        remove_at(l.holders, &l.n_holders, (uint32_t)i);
        if (delay_ms > 0 && now + delay_ms > l.delay_until_ms) {
            l.delay_until_ms = now + delay_ms;
        }
    } else if ((i = find(l.waiters, l.n_waiters, session)) >= 0) {
        *was = 'W';
        remove_at(l.waiters, &l.n_waiters, (uint32_t)i);
    } else {
        store_lock_free(&l);
        return FL_OK;
    }
    rv = sesslock_set(f->txn, session, key, klen, NULL);
    if (rv == FL_OK) {
        rv = grant_waiters(f, key, klen, &l, now);
    }
    if (rv == FL_OK) {
        rv = lock_save(f->txn, key, klen, &l, now);
    }
    store_lock_free(&l);
    return rv;
}

/* A release that names its hold's token: FL_OK if session holds key with
 * exactly that token; otherwise res says why nothing is released
 * (FL_ECONFLICT with the token it holds, 0 when it only waits; FL_ENOTFOUND
 * when it neither holds nor waits). *go is 1 when the release may proceed. */
static int check_token(struct fsm *f, const struct fsm_cmd *c, const char *session,
                       struct fsm_result *res, int *go)
{
    struct store_lock l;
    int rv = store_lock_get(f->txn, c->u.lock.key, c->u.lock.klen, &l);
    int i;
    *go = 0;
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if ((i = find(l.holders, l.n_holders, session)) >= 0) {
        if (l.holders[i].token == c->u.lock.token) {
            *go = 1;
        } else {
            res->err = FL_ECONFLICT;
            res->token = l.holders[i].token;
        }
    } else if (find(l.waiters, l.n_waiters, session) >= 0) {
        res->err = FL_ECONFLICT;
        res->token = 0;
    } else {
        res->err = FL_ENOTFOUND;
    }
    store_lock_free(&l);
    return FL_OK;
}

static int release(struct fsm *f, const struct fsm_cmd *c, const char *session, uint64_t now,
                   struct fsm_result *res)
{
    int was;
    uint64_t token;
    int unwait = c->type == FSM_CMD_LOCK_UNWAIT;
    int rv;
    if (c->u.lock.token != 0) {
        int go;
        rv = check_token(f, c, session, res, &go);
        if (rv != FL_OK || !go) {
            return rv;
        }
    }
    rv = leave(f, c->u.lock.key, c->u.lock.klen, session, 0, unwait, now, &was, &token);
    if (rv != FL_OK) {
        return rv;
    }
    if (was == 0) {
        res->err = FL_ENOTFOUND;
    } else if (unwait && was == 'W') {
        res->err = FL_ETIMEOUT;
    }
    res->token = token;
    return FL_OK;
}

static int wake(struct fsm *f, const struct fsm_cmd *c, uint64_t now)
{
    struct store_lock l;
    int rv = store_lock_get(f->txn, c->u.lock.key, c->u.lock.klen, &l);
    if (rv == FL_ENOTFOUND) {
        return FL_OK;
    }
    if (rv == FL_OK) {
        rv = grant_waiters(f, c->u.lock.key, c->u.lock.klen, &l, now);
    }
    if (rv == FL_OK) {
        rv = lock_save(f->txn, c->u.lock.key, c->u.lock.klen, &l, now);
    }
    store_lock_free(&l);
    return rv;
}

/* Leave every lock the session holds or waits for, then delete it. */
static int drop_session(struct fsm *f, const struct store_session *s, uint64_t delay_ms,
                        uint64_t now)
{
    struct store_cursor *cur;
    struct fl_buf keys;
    const void *k, *v;
    size_t kl, vl, idlen = strlen(s->id), off;
    int rv;

    fl_buf_init(&keys);
    rv = store_cursor_open(f->txn, STORE_SESSLOCKS, s->id, idlen + 1, &cur);
    if (rv != FL_OK) {
        return rv;
    }
    /* Collect first: leave() writes SESSLOCKS. */
    while (rv == FL_OK && store_cursor_next(cur, &k, &kl, &v, &vl) == FL_OK) {
        uint32_t n;
        if (kl <= idlen + 1 || memcmp(k, s->id, idlen) != 0 || ((const char *)k)[idlen] != '\0') {
            break;
        }
        n = (uint32_t)(kl - idlen - 1);
        rv = fl_buf_append(&keys, &n, sizeof n);
        if (rv == FL_OK) {
            rv = fl_buf_append(&keys, (const char *)k + idlen + 1, n);
        }
    }
    store_cursor_close(cur);
    for (off = 0; rv == FL_OK && off < keys.len;) {
        uint32_t n;
        int was;
        uint64_t token;
        memcpy(&n, keys.data + off, sizeof n);
        off += sizeof n;
        rv = leave(f, (const char *)keys.data + off, n, s->id, delay_ms, 0, now, &was, &token);
        off += n;
    }
    fl_buf_close(&keys);
    if (rv == FL_OK) {
        rv = store_del(f->txn, STORE_SESSIONS, s->id, idlen);
    }
    if (rv == FL_OK) {
        emit(f, FSM_EFF_SESSION_GONE, s->id, NULL, 0, 0);
    }
    return rv;
}

static int session_create(struct fsm *f, const struct fsm_cmd *c, const char *id, uint64_t index,
                          uint64_t now, struct fsm_result *res)
{
    struct store_session s;
    int rv = store_session_get(f->txn, id, &s);
    if (rv == FL_OK) {
        res->err = FL_EEXIST;
        return FL_OK;
    }
    if (rv != FL_ENOTFOUND) {
        return rv;
    }
    memset(&s, 0, sizeof s);
    fsm__copy_str(s.id, sizeof s.id, id, strlen(id));
    fsm__copy_str(s.name, sizeof s.name, c->u.lock.name, c->u.lock.nlen);
    fsm__copy_str(s.owner, sizeof s.owner, c->u.lock.owner, c->u.lock.olen);
    s.ttl_ms = c->u.lock.ttl_ms;
    s.lock_delay_ms = c->u.lock.lock_delay_ms;
    s.created_ms = now;
    s.expires_ms = now + s.ttl_ms;
    s.created_index = index;
    rv = store_session_put(f->txn, &s);
    if (rv == FL_OK) {
        res->expires_ms = s.expires_ms;
        fsm__copy_str(res->session_id, sizeof res->session_id, s.id, strlen(s.id));
        emit_session(f, &s);
    }
    return rv;
}

static int session_change(struct fsm *f, const struct fsm_cmd *c, const char *id, uint64_t now,
                          struct fsm_result *res)
{
    struct store_session s;
    int rv = store_session_get(f->txn, id, &s);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    switch (c->type) {
    case FSM_CMD_SESSION_RENEW:
        s.renewals++;
        s.expires_ms = now + s.ttl_ms;
        rv = store_session_put(f->txn, &s);
        if (rv == FL_OK) {
            res->expires_ms = s.expires_ms;
            emit_session(f, &s);
        }
        return rv;
    case FSM_CMD_SESSION_EXPIRE:
        if (s.renewals != c->u.lock.renewals) {
            res->err = FL_ECONFLICT; /* renewed after the leader decided */
            return FL_OK;
        }
        return drop_session(f, &s, s.lock_delay_ms, now);
    default: /* DESTROY: a deliberate release, no lock-delay */
        return drop_session(f, &s, 0, now);
    }
}

/* A new leader does not know when each session was last renewed: it gives
 * every one a full TTL from now before it expires anything (the renewal
 * count moves too, so an expiry decided by an earlier leader is refused). */
static int lease_extend(struct fsm *f, uint64_t now)
{
    struct store_cursor *cur;
    struct fl_buf ids;
    const void *k, *v;
    size_t kl, vl, off;
    int rv = store_cursor_open(f->txn, STORE_SESSIONS, NULL, 0, &cur);
    if (rv != FL_OK) {
        return rv;
    }
    fl_buf_init(&ids);
    while (rv == FL_OK && store_cursor_next(cur, &k, &kl, &v, &vl) == FL_OK) {
        rv = fl_buf_append(&ids, k, kl);
        if (rv == FL_OK) {
            rv = fl_buf_append(&ids, "", 1);
        }
    }
    store_cursor_close(cur);
    for (off = 0; rv == FL_OK && off < ids.len; off += strlen((char *)ids.data + off) + 1) {
        struct store_session s;
        rv = store_session_get(f->txn, (char *)ids.data + off, &s);
        if (rv != FL_OK) {
            break;
        }
        s.renewals++;
        if (now + s.ttl_ms > s.expires_ms) {
            s.expires_ms = now + s.ttl_ms;
        }
        rv = store_session_put(f->txn, &s);
        if (rv == FL_OK) {
            emit_session(f, &s);
        }
    }
    fl_buf_close(&ids);
    if (rv == FL_OK) {
        emit(f, FSM_EFF_LEASES_EXTENDED, NULL, NULL, 0, 0);
    }
    return rv;
}

int fsm__apply_lock(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                    struct fsm_result *res)
{
    char session[STORE_SESSION_ID_MAX];
    fsm__copy_str(session, sizeof session, c->u.lock.session, c->u.lock.slen);
    switch (c->type) {
    case FSM_CMD_SESSION_CREATE:
        return session_create(f, c, session, index, now, res);
    case FSM_CMD_SESSION_RENEW:
    case FSM_CMD_SESSION_EXPIRE:
    case FSM_CMD_SESSION_DESTROY:
        return session_change(f, c, session, now, res);
    case FSM_CMD_LEASE_EXTEND:
        return lease_extend(f, now);
    case FSM_CMD_LOCK_ACQUIRE:
        return acquire(f, c, session, now, res);
    case FSM_CMD_LOCK_RELEASE:
    case FSM_CMD_LOCK_UNWAIT:
        return release(f, c, session, now, res);
    case FSM_CMD_LOCK_WAKE:
        return wake(f, c, now);
    default:
        res->err = FL_EVERSION;
        return FL_OK;
    }
}

int fsm__lock_hold(struct fsm *f, const char *key, const char *holder, uint64_t now,
                   uint64_t *token)
{
    struct store_lock l;
    size_t klen = strlen(key);
    int rv = store_lock_get(f->txn, key, klen, &l);
    if (rv == FL_ENOTFOUND) {
        rv = store_lock_init(&l, 1);
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (l.n_holders >= l.limit || l.n_waiters > 0 || now < l.delay_until_ms) {
        store_lock_free(&l);
        return FL_EBUSY;
    }
    rv = grant(f, key, klen, &l, holder, now);
    if (rv == FL_OK) {
        *token = l.fence;
        rv = lock_save(f->txn, key, klen, &l, now);
    }
    store_lock_free(&l);
    return rv;
}

int fsm__lock_drop(struct fsm *f, const char *key, const char *holder, uint64_t now)
{
    int was;
    uint64_t token;
    return leave(f, key, strlen(key), holder, 0, 0, now, &was, &token);
}
