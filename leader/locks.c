/* The leader's lease clock, parked acquire calls and lock-delay wake-ups
 * (leader/locks.h, docs/LOCKS.md). */
#include "leader/locks.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/strmap.h"
#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "store/store.h"

struct lease {
    uint64_t deadline; /* now_ms + ttl at the last renewal this server applied */
    uint64_t renewals;
    int expiring; /* an expiry is in flight */
};

struct poll {
    struct lockmgr *m;
    void *req; /* the caller's handle, given back to the answers */
    char session[STORE_SESSION_ID_MAX];
    char key[STORE_LOCK_KEY_MAX];
    uint64_t deadline; /* now_ms */
    int final;
    int unwaiting; /* LOCK_UNWAIT in flight: the result answers */
};

struct lockmgr {
    const struct leader_io *io;
    const struct lockmgr_answers *ans;
    struct strmap leases;   /* session id -> struct lease */
    struct strmap polls;    /* "session key" -> struct poll */
    struct strmap delays;   /* lock key -> uint64_t* lock-delay end (leader time) */
    uint64_t extended_term; /* term whose LEASE_EXTEND has been applied */
    uint64_t extend_term;   /* term of the LEASE_EXTEND in flight, 0 if none */
    struct lockmgr_stats st;
    void (*close_cb)(void *data);
    void *close_data;
};

static int leader_term(struct lockmgr *m, uint64_t *term)
{
    return m->io->leader(m->io->impl, term);
}

static int propose(struct lockmgr *m, const struct fsm_cmd *c, leader_done_cb cb, void *data)
{
    return m->io->propose(m->io->impl, c, cb, data);
}

static void poll_key(char *out, size_t cap, const char *session, const char *key)
{
    snprintf(out, cap, "%s %s", session, key);
}

/* ---- answering parked calls ------------------------------------------------- */

static void poll_free(struct lockmgr *m, struct poll *p)
{
    char k[STORE_SESSION_ID_MAX + STORE_LOCK_KEY_MAX + 2];
    poll_key(k, sizeof k, p->session, p->key);
    if (strmap_get(&m->polls, k) == p) {
        strmap_del(&m->polls, k);
    }
    fl_free(p);
}

static void unwait_cb(void *data, int err, const struct fsm_result *res)
{
    struct poll *p = data;
    struct lockmgr *m = p->m;
    if (p->req == NULL) { /* already answered (the grant arrived first) */
        fl_free(p);
        return;
    }
    if (err != FL_OK) {
        m->ans->failed(p->req, err, "leaving the queue failed; the wait may still be queued");
    } else if (res->err == FL_OK) {
        m->ans->granted(p->req, p->session, p->key, res->token);
    } else if (res->err == FL_ETIMEOUT) {
        m->ans->timeout(p->req, p->session, p->key);
    } else {
        m->ans->not_waiting(p->req, p->session, p->key);
    }
    p->req = NULL;
    m->st.parked--;
    fl_free(p);
}

static void poll_timeout(struct lockmgr *m, struct poll *p)
{
    struct fsm_cmd c;
    char k[STORE_SESSION_ID_MAX + STORE_LOCK_KEY_MAX + 2];
    if (!p->final) {
        m->ans->waiting(p->req, p->session, p->key);
        m->st.parked--;
        poll_free(m, p);
        return;
    }
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_LOCK_UNWAIT;
    c.u.lock.session = p->session;
    c.u.lock.slen = strlen(p->session);
    c.u.lock.key = p->key;
    c.u.lock.klen = strlen(p->key);
    /* Out of the map: a grant applied now is answered by the unwait result. */
    poll_key(k, sizeof k, p->session, p->key);
    strmap_del(&m->polls, k);
    p->unwaiting = 1;
    if (propose(m, &c, unwait_cb, p) != FL_OK) {
        /* The acquire was applied: the session is queued and may yet be
         * granted, so the answer is not a definite failure. */
        m->ans->failed(p->req, FL_EUNKNOWN,
                       "leadership changed while the call waited; the session is still "
                       "queued and may be granted: call again");
        m->st.parked--;
        fl_free(p);
    }
}

void lockmgr_park(struct lockmgr *m, void *req, const char *session, const char *key,
                  uint32_t limit, uint64_t wait_ms, int final)
{
    char k[STORE_SESSION_ID_MAX + STORE_LOCK_KEY_MAX + 2];
    struct poll *p = fl_calloc(1, sizeof *p), *old = NULL;
    (void)limit;
    if (p == NULL) {
        m->ans->failed(req, FL_ENOMEM, "out of memory");
        return;
    }
    p->m = m;
    p->req = req;
    snprintf(p->session, sizeof p->session, "%s", session);
    snprintf(p->key, sizeof p->key, "%s", key);
    p->final = final;
    p->deadline = m->io->now_ms(m->io->impl) +
                  (wait_ms > LOCKMGR_POLL_MAX_MS ? LOCKMGR_POLL_MAX_MS : wait_ms);
    poll_key(k, sizeof k, session, key);
    if (strmap_put(&m->polls, k, p, (void **)&old) != FL_OK) {
        m->ans->failed(req, FL_ENOMEM, "out of memory");
        fl_free(p);
        return;
    }
    m->st.parked++;
    if (old != NULL) { /* a second call for the same wait replaces the first */
        m->ans->waiting(old->req, old->session, old->key);
        m->st.parked--;
        fl_free(old);
    }
}

/* ---- effects of applied entries --------------------------------------------- */

static void on_grant(struct lockmgr *m, const struct fsm_effect *e)
{
    char session[STORE_SESSION_ID_MAX];
    char k[STORE_SESSION_ID_MAX + STORE_LOCK_KEY_MAX + 2];
    struct poll *p;
    snprintf(session, sizeof session, "%.*s", (int)sizeof session - 1, e->name);
    poll_key(k, sizeof k, session, e->key);
    p = strmap_del(&m->polls, k);
    if (p != NULL) {
        m->ans->granted(p->req, p->session, p->key, e->token);
        m->st.parked--;
        fl_free(p);
    }
}

static void on_session(struct lockmgr *m, const struct fsm_effect *e)
{
    struct lease *l = strmap_get(&m->leases, e->name);
    if (l == NULL) {
        l = fl_calloc(1, sizeof *l);
        if (l == NULL || strmap_put(&m->leases, e->name, l, NULL) != FL_OK) {
            /* Without a deadline this server never expires the session; a
             * later leader will. */
            FL_ERROR("out of memory tracking session %s", e->name);
            fl_free(l);
            return;
        }
    }
    l->deadline = m->io->now_ms(m->io->impl) + e->ttl_ms;
    l->renewals = e->renewals;
    l->expiring = 0;
}

static void on_delay(struct lockmgr *m, const char *key, uint64_t until_ms)
{
    uint64_t *until = fl_malloc(sizeof *until), *old = NULL;
    if (until == NULL) {
        return;
    }
    *until = until_ms;
    if (strmap_put(&m->delays, key, until, (void **)&old) != FL_OK) {
        fl_free(until);
        return;
    }
    fl_free(old);
}

static void on_effect(void *data, const struct fsm_effect *e)
{
    struct lockmgr *m = data;
    switch (e->type) {
    case FSM_EFF_LOCK_GRANTED:
        on_grant(m, e);
        break;
    case FSM_EFF_SESSION:
        on_session(m, e);
        break;
    case FSM_EFF_SESSION_GONE:
        fl_free(strmap_del(&m->leases, e->name));
        break;
    case FSM_EFF_LOCK_DELAY:
        on_delay(m, e->key, e->until_ms);
        break;
    default:
        break;
    }
}

/* ---- leadership ------------------------------------------------------------ */

static void extend_cb(void *data, int err, const struct fsm_result *res)
{
    struct lockmgr *m = data;
    (void)res;
    if (err == FL_OK) {
        m->extended_term = m->extend_term;
        m->st.extended++;
        FL_INFO("leases extended for term %llu: expiry enabled",
                (unsigned long long)m->extended_term);
    }
    m->extend_term = 0;
}

/* Locks whose waiters are held back (by a lock-delay) get a wake-up. */
static void scan_delays(struct lockmgr *m)
{
    struct store_txn *t;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    if (store_begin(m->io->store(m->io->impl), 0, &t) != FL_OK) {
        return;
    }
    if (store_cursor_open(t, STORE_LOCKS, NULL, 0, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            struct store_lock l;
            if (store_lock_decode(v, vl, &l) != FL_OK) {
                continue;
            }
            if (l.n_waiters > 0 && l.n_holders < l.limit) {
                char key[STORE_LOCK_KEY_MAX];
                snprintf(key, sizeof key, "%.*s", (int)kl, (const char *)k);
                on_delay(m, key, l.delay_until_ms);
            }
            store_lock_free(&l);
        }
        store_cursor_close(c);
    }
    store_abort(t);
}

static void propose_extend(struct lockmgr *m, uint64_t term)
{
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_LEASE_EXTEND;
    m->extend_term = term;
    if (propose(m, &c, extend_cb, m) != FL_OK) {
        m->extend_term = 0;
    }
}

void lockmgr_on_leader(struct lockmgr *m)
{
    uint64_t term;
    if (!leader_term(m, &term)) {
        return;
    }
    scan_delays(m);
    if (m->extend_term == 0 && m->extended_term != term) {
        propose_extend(m, term);
    }
}

/* ---- the tick ------------------------------------------------------------------ */

static void expire_cb(void *data, int err, const struct fsm_result *res)
{
    struct lockmgr *m = data;
    if (err == FL_OK && res->err == FL_OK) {
        m->st.expired++;
    }
    /* Refused (renewed meanwhile) or not committed: the lease stays tracked
     * with its deadline moved by the renewal, or is retried. */
}

static void expire_due(struct lockmgr *m, uint64_t now)
{
    size_t i = 0;
    const char *id;
    void *v;
    while (strmap_next(&m->leases, &i, &id, &v)) {
        struct lease *l = v;
        struct fsm_cmd c;
        if (l->expiring || now < l->deadline) {
            continue;
        }
        memset(&c, 0, sizeof c);
        c.type = FSM_CMD_SESSION_EXPIRE;
        c.u.lock.session = id;
        c.u.lock.slen = strlen(id);
        c.u.lock.renewals = l->renewals;
        if (propose(m, &c, expire_cb, m) == FL_OK) {
            l->expiring = 1;
            l->deadline = now + 2000; /* try again if nothing is applied */
            FL_INFO("session %s: lease expired; proposing expiry", id);
        }
    }
}

static void ignore_cb(void *data, int err, const struct fsm_result *res)
{
    (void)data, (void)err, (void)res;
}

static void wake_due(struct lockmgr *m)
{
    uint64_t wall = m->io->wall_ms(m->io->impl);
    size_t i = 0;
    const char *key;
    void *v;
    while (strmap_next(&m->delays, &i, &key, &v)) {
        struct fsm_cmd c;
        if (*(uint64_t *)v > wall) {
            continue;
        }
        memset(&c, 0, sizeof c);
        c.type = FSM_CMD_LOCK_WAKE;
        c.u.lock.key = key;
        c.u.lock.klen = strlen(key);
        if (propose(m, &c, ignore_cb, NULL) == FL_OK) {
            fl_free(strmap_del(&m->delays, key)); /* re-reported if still held back */
        }
    }
}

static void drop_polls(struct lockmgr *m, const char *why)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(&m->polls, &i, &k, &v)) {
        struct poll *p = v;
        m->ans->failed(p->req, FL_EUNKNOWN, why);
        strmap_del(&m->polls, k);
        m->st.parked--;
        fl_free(p);
    }
}

static void time_out_polls(struct lockmgr *m, uint64_t now)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(&m->polls, &i, &k, &v)) {
        struct poll *p = v;
        if (now >= p->deadline) {
            poll_timeout(m, p);
        }
    }
}

void lockmgr_tick(void *arg)
{
    struct lockmgr *m = arg;
    uint64_t term, now = m->io->now_ms(m->io->impl);
    if (!leader_term(m, &term)) {
        m->extended_term = 0;
        drop_polls(m, "this server is no longer the leader; the session is still queued and may "
                      "be granted: call again");
        return;
    }
    if (m->extended_term != term) {
        if (m->extend_term == 0) {
            propose_extend(m, term);
        }
        return; /* no expiry before every lease got its extension */
    }
    time_out_polls(m, now);
    expire_due(m, now);
    wake_due(m);
}

/* ---- lifecycle ---------------------------------------------------------------- */

int lockmgr_create(const struct leader_io *io, const struct lockmgr_answers *ans,
                   struct lockmgr **out)
{
    struct lockmgr *m = fl_calloc(1, sizeof *m);
    if (m == NULL) {
        return FL_ENOMEM;
    }
    m->io = io;
    m->ans = ans;
    strmap_init(&m->leases);
    strmap_init(&m->polls);
    strmap_init(&m->delays);
    if (io->timer_start(io->impl, LOCKMGR_TICK_MS, lockmgr_tick, m) != FL_OK) {
        strmap_close(&m->leases);
        strmap_close(&m->polls);
        strmap_close(&m->delays);
        fl_free(m);
        return FL_EIO;
    }
    if (io->subscribe(io->impl, on_effect, m) != FL_OK) {
        io->timer_close(io->impl, NULL, NULL);
        strmap_close(&m->leases);
        strmap_close(&m->polls);
        strmap_close(&m->delays);
        fl_free(m);
        return FL_EBUSY;
    }
    *out = m;
    return FL_OK;
}

static void free_map(struct strmap *map)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(map, &i, &k, &v)) {
        fl_free(v);
    }
    strmap_close(map);
}

static void closed(void *arg)
{
    struct lockmgr *m = arg;
    free_map(&m->leases);
    free_map(&m->delays);
    strmap_close(&m->polls);
    if (m->close_cb != NULL) {
        m->close_cb(m->close_data);
    }
    fl_free(m);
}

void lockmgr_close(struct lockmgr *m, void (*cb)(void *data), void *data)
{
    m->close_cb = cb;
    m->close_data = data;
    m->io->unsubscribe(m->io->impl, on_effect, m);
    drop_polls(m, "server shutting down; the session is still queued and may be granted: call "
                  "again");
    m->io->timer_close(m->io->impl, closed, m);
}

void lockmgr_stats(struct lockmgr *m, struct lockmgr_stats *out)
{
    uint64_t term;
    *out = m->st;
    out->leases = strmap_size(&m->leases);
    out->can_expire = leader_term(m, &term) && m->extended_term == term;
}
