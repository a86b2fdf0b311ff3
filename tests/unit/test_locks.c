/* Sessions, leases and locks applied by the FSM on a real store
 * (docs/LOCKS.md, fsm/lock.c).
 *
 * Every entry is applied to two replicas, each with its own LMDB store and
 * FSM, and their results and lock events must agree (DESIGN.md "Guarantees":
 * the state machine is deterministic). A command that must change nothing is
 * applied to the first replica only while the second applies an empty entry
 * at the same index: the two store digests must then still be equal. */

#include "check.h"
#include "job_util.h"
#include "common/alloc.h"
#include "common/err.h"
#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "store/store.h"

#define MAX_EVENTS 2048

/* The two numbers of raft's state the state machine is given with an entry. */
struct log_pos {
    uint64_t last_applied;
    uint64_t commit_index;
};
struct entry_buf {
    void *base;
    size_t len;
};

struct ev {
    int type;
    char session[STORE_SESSION_ID_MAX];
    char key[STORE_LOCK_KEY_MAX];
    uint64_t token, ttl_ms, renewals, until_ms;
};

struct replica {
    char dir[256];
    struct store *store;
    struct fsm fsm;
    struct log_pos raft; /* what raft would report: last_applied, commit_index */
    struct fsm_result last;
    unsigned n_results;
    struct ev events[MAX_EVENTS];
    unsigned n_events;
    unsigned n_effects; /* effects of every kind taken from the FSM */
};

struct h {
    struct replica r[2];
    uint64_t now; /* the leader time of the last entry */
};

static void results_cb(void *data, uint64_t seq, uint64_t term, uint64_t index,
                       const struct fsm_result *res, unsigned n)
{
    struct replica *r = data;
    (void)seq, (void)term, (void)index;
    r->n_results = n;
    if (n > 0) {
        r->last = res[0];
    }
}

/* The effects an applied entry made ready: lock ones are kept as events. */
static void take_effects(struct replica *r)
{
    const struct fsm_effect *e;
    unsigned n = fsm_effects_take(&r->fsm, &e);
    r->n_effects += n;
    for (unsigned i = 0; i < n; i++) {
        struct ev *out;
        if (e[i].type < FSM_EFF_LOCK_GRANTED || e[i].type > FSM_EFF_LEASES_EXTENDED ||
            r->n_events == MAX_EVENTS) {
            continue;
        }
        out = &r->events[r->n_events++];
        memset(out, 0, sizeof *out);
        out->type = e[i].type;
        snprintf(out->session, sizeof out->session, "%.*s", (int)sizeof out->session - 1,
                 e[i].name);
        snprintf(out->key, sizeof out->key, "%s", e[i].key);
        out->token = e[i].token;
        out->ttl_ms = e[i].ttl_ms;
        out->renewals = e[i].renewals;
        out->until_ms = e[i].until_ms;
    }
}

static void replica_open(struct replica *r)
{
    struct store_options so = {0};
    so.no_sync = 1;
    so.map_size = 64u << 20;
    CHECK_OK(store_open(r->dir, &so, &r->store, NULL));
    CHECK_OK(fsm_init(&r->fsm, r->store, 1));
    r->fsm.results_cb = results_cb;
    r->fsm.results_data = r;
}

static void replica_close(struct replica *r)
{
    fsm_close(&r->fsm);
    store_close(r->store);
    r->store = NULL;
}

static void setup(struct h *h)
{
    memset(h, 0, sizeof *h);
    for (int i = 0; i < 2; i++) {
        REQUIRE(check_tmpdir(h->r[i].dir, sizeof h->r[i].dir) != NULL);
        replica_open(&h->r[i]);
        h->r[i].raft.last_applied = 1;
    }
    h->now = 1000000;
}

/* Both replicas are at the same index with the same digest. */
static void check_same(struct h *h)
{
    uint8_t d[2][32];
    uint64_t idx[2];
    for (int i = 0; i < 2; i++) {
        fsm_flush(&h->r[i].fsm);
        CHECK_OK(store_digest(h->r[i].store, d[i], &idx[i], NULL));
    }
    CHECK_EQ_INT(idx[0], idx[1]);
    CHECK(memcmp(d[0], d[1], 32) == 0);
}

/* Every event matched on both replicas, and every grant took a larger token
 * than any grant before it. */
static void check_events(struct h *h)
{
    uint64_t last = 0;
    CHECK_EQ_INT(h->r[0].n_events, h->r[1].n_events);
    for (unsigned i = 0; i < h->r[0].n_events && i < h->r[1].n_events; i++) {
        const struct ev *a = &h->r[0].events[i], *b = &h->r[1].events[i];
        CHECK(a->type == b->type && strcmp(a->session, b->session) == 0 &&
              strcmp(a->key, b->key) == 0 && a->token == b->token && a->ttl_ms == b->ttl_ms &&
              a->renewals == b->renewals && a->until_ms == b->until_ms);
        if (a->type == FSM_EFF_LOCK_GRANTED) {
            CHECK(a->token > last);
            last = a->token;
        }
    }
}

static void teardown(struct h *h)
{
    check_same(h);
    check_events(h);
    for (int i = 0; i < 2; i++) {
        replica_close(&h->r[i]);
        check_rmrf(h->r[i].dir);
    }
}

static void entry_buf(struct replica *r, const struct fsm_cmd *c, uint64_t now,
                      struct entry_buf *buf)
{
    struct fsm_entry_writer w;
    fsm_writer_init(&w);
    if (c != NULL) {
        CHECK_OK(fsm_writer_add(&w, c));
    }
    CHECK_OK(
        fsm_writer_finish(&w, 1, r->raft.last_applied, 1, now, fl_malloc, &buf->base, &buf->len));
    fsm_writer_close(&w);
}

/* Apply one entry holding c (or nothing) to replica r. */
static void apply_one(struct replica *r, const struct fsm_cmd *c, uint64_t now)
{
    struct entry_buf buf;
    entry_buf(r, c, now, &buf);
    r->raft.commit_index = r->raft.last_applied + 1;
    memset(&r->last, 0, sizeof r->last);
    r->n_results = 0;
    fsm_apply(&r->fsm, r->raft.last_applied + 1, r->raft.commit_index, buf.base, buf.len);
    take_effects(r); /* the entry is the last committed one: flushed */
    r->raft.last_applied++;
    fl_free(buf.base);
}

/* Apply c stamped `now` on both replicas; their results must agree. */
static struct fsm_result apply_at(struct h *h, const struct fsm_cmd *c, uint64_t now)
{
    struct fsm_result *a = &h->r[0].last, *b = &h->r[1].last;
    h->now = now;
    apply_one(&h->r[0], c, now);
    apply_one(&h->r[1], c, now);
    CHECK_EQ_INT(h->r[0].n_results, 1);
    CHECK(a->err == b->err && a->token == b->token && a->expires_ms == b->expires_ms &&
          a->limit == b->limit && a->newer_serial == b->newer_serial &&
          strcmp(a->holder, b->holder) == 0 && strcmp(a->session_id, b->session_id) == 0);
    return *a;
}

static struct fsm_result apply(struct h *h, const struct fsm_cmd *c)
{
    return apply_at(h, c, h->now + 100);
}

/* c on the first replica, an empty entry on the second: the store must be
 * unchanged by c, so the digests stay equal. */
static struct fsm_result apply_noop(struct h *h, const struct fsm_cmd *c)
{
    unsigned events = h->r[0].n_events;
    h->now += 100;
    apply_one(&h->r[0], c, h->now);
    apply_one(&h->r[1], NULL, h->now);
    check_same(h);
    CHECK_EQ_INT(h->r[0].n_events, events);
    return h->r[0].last;
}

/* ---- commands ------------------------------------------------------------- */

static struct fsm_cmd lcmd(int type, const char *session, const char *key)
{
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    if (session != NULL) {
        c.u.lock.session = session;
        c.u.lock.slen = strlen(session);
    }
    if (key != NULL) {
        c.u.lock.key = key;
        c.u.lock.klen = strlen(key);
    }
    return c;
}

static struct fsm_cmd create_cmd(const char *id, uint64_t ttl, uint64_t delay)
{
    struct fsm_cmd c = lcmd(FSM_CMD_SESSION_CREATE, id, NULL);
    c.u.lock.ttl_ms = ttl;
    c.u.lock.lock_delay_ms = delay;
    c.u.lock.name = "test holder";
    c.u.lock.nlen = strlen(c.u.lock.name);
    return c;
}

static struct fsm_result create(struct h *h, const char *id, uint64_t ttl, uint64_t delay)
{
    struct fsm_cmd c = create_cmd(id, ttl, delay);
    return apply(h, &c);
}

static struct fsm_cmd acquire_cmd(const char *id, const char *key, uint32_t limit, int wait)
{
    struct fsm_cmd c = lcmd(FSM_CMD_LOCK_ACQUIRE, id, key);
    c.u.lock.limit = limit;
    c.u.lock.wait = wait;
    return c;
}

static struct fsm_result acquire(struct h *h, const char *id, const char *key, uint32_t limit,
                                 int wait)
{
    struct fsm_cmd c = acquire_cmd(id, key, limit, wait);
    return apply(h, &c);
}

static struct fsm_result on_lock(struct h *h, int type, const char *id, const char *key)
{
    struct fsm_cmd c = lcmd(type, id, key);
    return apply(h, &c);
}

static struct fsm_result release(struct h *h, const char *id, const char *key)
{
    return on_lock(h, FSM_CMD_LOCK_RELEASE, id, key);
}

static struct fsm_result unwait(struct h *h, const char *id, const char *key)
{
    return on_lock(h, FSM_CMD_LOCK_UNWAIT, id, key);
}

static struct fsm_result wake_at(struct h *h, const char *key, uint64_t now)
{
    struct fsm_cmd c = lcmd(FSM_CMD_LOCK_WAKE, NULL, key);
    return apply_at(h, &c, now);
}

static struct fsm_cmd expire_cmd(const char *id, uint64_t renewals)
{
    struct fsm_cmd c = lcmd(FSM_CMD_SESSION_EXPIRE, id, NULL);
    c.u.lock.renewals = renewals;
    return c;
}

static struct fsm_result expire_at(struct h *h, const char *id, uint64_t renewals, uint64_t now)
{
    struct fsm_cmd c = expire_cmd(id, renewals);
    return apply_at(h, &c, now);
}

static struct fsm_result on_session(struct h *h, int type, const char *id)
{
    struct fsm_cmd c = lcmd(type, id, NULL);
    return apply(h, &c);
}

static struct fsm_result extend_at(struct h *h, uint64_t now)
{
    struct fsm_cmd c = lcmd(FSM_CMD_LEASE_EXTEND, NULL, NULL);
    return apply_at(h, &c, now);
}

/* ---- reading the first replica's store ---------------------------------------- */

static int session_of(struct h *h, const char *id, struct store_session *out)
{
    struct store_txn *t;
    int rv;
    memset(out, 0, sizeof *out);
    fsm_flush(&h->r[0].fsm);
    CHECK_OK(store_begin(h->r[0].store, 0, &t));
    rv = store_session_get(t, id, out);
    store_abort(t);
    return rv;
}

/* The lock at key (free it with store_lock_free), or FL_ENOTFOUND. */
static int lock_of(struct h *h, const char *key, struct store_lock *out)
{
    struct store_txn *t;
    int rv;
    fsm_flush(&h->r[0].fsm);
    CHECK_OK(store_begin(h->r[0].store, 0, &t));
    rv = store_lock_get(t, key, strlen(key), out);
    store_abort(t);
    return rv;
}

/* 'H' held, 'W' waiting or 0, from SESSLOCKS. */
static int sesslock_of(struct h *h, const char *id, const char *key)
{
    struct store_txn *t;
    char k[STORE_SESSION_ID_MAX + STORE_LOCK_KEY_MAX];
    const void *v;
    size_t vl, n = strlen(id);
    int state = 0;
    memcpy(k, id, n + 1);
    memcpy(k + n + 1, key, strlen(key));
    fsm_flush(&h->r[0].fsm);
    CHECK_OK(store_begin(h->r[0].store, 0, &t));
    if (store_get(t, STORE_SESSLOCKS, k, n + 1 + strlen(key), &v, &vl) == FL_OK && vl == 1) {
        state = *(const char *)v;
    }
    store_abort(t);
    return state;
}

/* Holders and waiters of key as "h:s1,s2 w:s3" (sessions in order). */
static const char *shape(struct h *h, const char *key)
{
    static char out[1024];
    struct store_lock l;
    size_t o = 0;
    if (lock_of(h, key, &l) != FL_OK) {
        return "free";
    }
    o += (size_t)snprintf(out + o, sizeof out - o, "h:");
    for (uint32_t i = 0; i < l.n_holders; i++) {
        o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", i ? "," : "", l.holders[i].session);
    }
    o += (size_t)snprintf(out + o, sizeof out - o, " w:");
    for (uint32_t i = 0; i < l.n_waiters; i++) {
        o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", i ? "," : "", l.waiters[i].session);
    }
    store_lock_free(&l);
    return out;
}

static unsigned count_events(struct h *h, int type)
{
    unsigned n = 0;
    for (unsigned i = 0; i < h->r[0].n_events; i++) {
        n += h->r[0].events[i].type == type;
    }
    return n;
}

/* The last event of a type (an empty one if there is none). */
static const struct ev *last_event(struct h *h, int type)
{
    static const struct ev none;
    for (unsigned i = h->r[0].n_events; i-- > 0;) {
        if (h->r[0].events[i].type == type) {
            return &h->r[0].events[i];
        }
    }
    return &none;
}

/* ---- tests -------------------------------------------------------------------- */

TEST(session_create_renew_destroy)
{
    struct h h;
    struct store_session s;
    struct fsm_result r;
    setup(&h);
    r = create(&h, "s1", 10000, 5000);
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_STR(r.session_id, "s1");
    CHECK_EQ_INT(r.expires_ms, h.now + 10000);
    REQUIRE(session_of(&h, "s1", &s) == FL_OK);
    CHECK_EQ_STR(s.id, "s1");
    CHECK_EQ_STR(s.name, "test holder");
    CHECK_EQ_INT(s.ttl_ms, 10000);
    CHECK_EQ_INT(s.lock_delay_ms, 5000);
    CHECK_EQ_INT(s.created_ms, h.now);
    CHECK_EQ_INT(s.expires_ms, h.now + 10000);
    CHECK_EQ_INT(s.renewals, 0);
    CHECK_EQ_INT(s.created_index, h.r[0].raft.last_applied);
    CHECK_EQ_INT(last_event(&h, FSM_EFF_SESSION)->ttl_ms, 10000);

    /* The same id again: refused, the first one is untouched. */
    {
        struct fsm_cmd c = create_cmd("s1", 20000, 0);
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_EEXIST);
    }
    r = on_session(&h, FSM_CMD_SESSION_RENEW, "s1");
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(r.expires_ms, h.now + 10000);
    REQUIRE(session_of(&h, "s1", &s) == FL_OK);
    CHECK_EQ_INT(s.renewals, 1);
    CHECK_EQ_INT(s.expires_ms, h.now + 10000);
    CHECK_EQ_INT(last_event(&h, FSM_EFF_SESSION)->renewals, 1);

    r = on_session(&h, FSM_CMD_SESSION_DESTROY, "s1");
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(session_of(&h, "s1", &s), FL_ENOTFOUND);
    CHECK_EQ_STR(last_event(&h, FSM_EFF_SESSION_GONE)->session, "s1");
    {
        struct fsm_cmd c = lcmd(FSM_CMD_SESSION_DESTROY, "s1", NULL);
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
        c.type = FSM_CMD_SESSION_RENEW;
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
    }
    teardown(&h);
}

TEST(acquire_try_held_and_again)
{
    struct h h;
    struct fsm_result r;
    struct store_lock l;
    uint64_t t1, t2;
    setup(&h);
    create(&h, "s1", 10000, 0);
    create(&h, "s2", 10000, 0);
    r = acquire(&h, "s1", "ns/a", 1, 0);
    CHECK_EQ_INT(r.err, FL_OK);
    t1 = r.token;
    CHECK(t1 > 0);
    CHECK_EQ_INT(h.r[0].fsm.fence, t1);
    CHECK_EQ_STR(last_event(&h, FSM_EFF_LOCK_GRANTED)->session, "s1");
    CHECK_EQ_STR(last_event(&h, FSM_EFF_LOCK_GRANTED)->key, "ns/a");
    CHECK_EQ_INT(last_event(&h, FSM_EFF_LOCK_GRANTED)->token, t1);
    CHECK_EQ_INT(sesslock_of(&h, "s1", "ns/a"), 'H');
    REQUIRE(lock_of(&h, "ns/a", &l) == FL_OK);
    CHECK_EQ_INT(l.limit, 1);
    CHECK_EQ_INT(l.fence, t1);
    CHECK_EQ_INT(l.n_holders, 1);
    CHECK_EQ_INT(l.holders[0].token, t1);
    CHECK_EQ_INT(l.holders[0].since_ms, h.now);
    store_lock_free(&l);

    /* Held: a try fails and names the holder; nothing is written. */
    {
        struct fsm_cmd c = acquire_cmd("s2", "ns/a", 1, 0);
        r = apply_noop(&h, &c);
        CHECK_EQ_INT(r.err, FL_EBUSY);
        CHECK_EQ_STR(r.holder, "s1");
        CHECK_EQ_INT(r.token, 0);
    }
    CHECK_EQ_INT(sesslock_of(&h, "s2", "ns/a"), 0);

    /* Asking again is not a second hold: the same token, no grant. */
    {
        unsigned grants = count_events(&h, FSM_EFF_LOCK_GRANTED);
        struct fsm_cmd c = acquire_cmd("s1", "ns/a", 1, 0);
        r = apply_noop(&h, &c);
        CHECK_EQ_INT(r.err, FL_OK);
        CHECK_EQ_INT(r.token, t1);
        CHECK_EQ_INT(count_events(&h, FSM_EFF_LOCK_GRANTED), grants);
        /* Also with wait, and on the second replica too. */
        r = acquire(&h, "s1", "ns/a", 1, 1);
        CHECK_EQ_INT(r.err, FL_OK);
        CHECK_EQ_INT(r.token, t1);
        CHECK_EQ_INT(h.r[0].fsm.fence, t1);
    }
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:");

    r = acquire(&h, "s2", "ns/b", 1, 0);
    CHECK_EQ_INT(r.err, FL_OK);
    t2 = r.token;
    CHECK(t2 > t1);

    /* An unknown session: not found, nothing written. */
    {
        struct fsm_cmd c = acquire_cmd("ghost", "ns/c", 1, 1);
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
        CHECK_EQ_INT(lock_of(&h, "ns/c", &l), FL_ENOTFOUND);
        c = lcmd(FSM_CMD_LOCK_RELEASE, "ghost", "ns/a");
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
        c = expire_cmd("ghost", 0);
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
    }
    teardown(&h);
}

TEST(fifo_waiters_over_releases)
{
    struct h h;
    struct fsm_result r;
    uint64_t t1, last;
    setup(&h);
    for (int i = 1; i <= 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        create(&h, id, 10000, 0);
    }
    t1 = acquire(&h, "s1", "ns/q", 1, 1).token;
    CHECK(t1 > 0);
    /* Queued in this order: s4, s2, s5, s3. */
    CHECK_EQ_INT(acquire(&h, "s4", "ns/q", 1, 1).token, 0);
    CHECK_EQ_INT(acquire(&h, "s2", "ns/q", 1, 1).token, 0);
    CHECK_EQ_INT(acquire(&h, "s5", "ns/q", 1, 1).token, 0);
    r = acquire(&h, "s3", "ns/q", 1, 1);
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(r.token, 0);
    CHECK_EQ_STR(shape(&h, "ns/q"), "h:s1 w:s4,s2,s5,s3");
    CHECK_EQ_INT(sesslock_of(&h, "s4", "ns/q"), 'W');
    /* Waiting again keeps the place. */
    CHECK_EQ_INT(acquire(&h, "s4", "ns/q", 1, 1).token, 0);
    CHECK_EQ_STR(shape(&h, "ns/q"), "h:s1 w:s4,s2,s5,s3");

    r = release(&h, "s1", "ns/q");
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(r.token, t1);
    last = t1;
    {
        static const char *order[] = {"s4", "s2", "s5", "s3"};
        static const char *shapes[] = {"h:s4 w:s2,s5,s3", "h:s2 w:s5,s3", "h:s5 w:s3", "h:s3 w:"};
        for (int i = 0; i < 4; i++) {
            const struct ev *g = last_event(&h, FSM_EFF_LOCK_GRANTED);
            CHECK_EQ_STR(shape(&h, "ns/q"), shapes[i]);
            CHECK_EQ_STR(g->session, order[i]);
            CHECK(g->token > last);
            last = g->token;
            CHECK_EQ_INT(sesslock_of(&h, order[i], "ns/q"), 'H');
            r = release(&h, order[i], "ns/q");
            CHECK_EQ_INT(r.err, FL_OK);
            CHECK_EQ_INT(r.token, g->token);
            CHECK_EQ_INT(sesslock_of(&h, order[i], "ns/q"), 0);
        }
    }
    /* Nobody holds or waits: the record is gone. */
    CHECK_EQ_STR(shape(&h, "ns/q"), "free");
    {
        struct fsm_cmd c = lcmd(FSM_CMD_LOCK_RELEASE, "s1", "ns/q");
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
    }
    teardown(&h);
}

TEST(semaphore_limit)
{
    struct h h;
    struct fsm_result r;
    struct store_lock l;
    uint64_t last = 0;
    setup(&h);
    for (int i = 1; i <= 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        create(&h, id, 10000, 0);
    }
    for (int i = 1; i <= 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        r = acquire(&h, id, "sem/x", 3, 0);
        CHECK_EQ_INT(r.err, FL_OK);
        CHECK(r.token > last);
        last = r.token;
    }
    CHECK_EQ_STR(shape(&h, "sem/x"), "h:s1,s2,s3 w:");
    {
        struct fsm_cmd c = acquire_cmd("s4", "sem/x", 3, 0);
        r = apply_noop(&h, &c);
        CHECK_EQ_INT(r.err, FL_EBUSY);
        CHECK_EQ_STR(r.holder, "s1");
    }
    CHECK_EQ_INT(acquire(&h, "s4", "sem/x", 3, 1).token, 0);
    CHECK_EQ_STR(shape(&h, "sem/x"), "h:s1,s2,s3 w:s4");
    /* Another limit while it is in use: a conflict naming the limit. */
    {
        struct fsm_cmd c = acquire_cmd("s5", "sem/x", 2, 1);
        r = apply_noop(&h, &c);
        CHECK_EQ_INT(r.err, FL_ECONFLICT);
        CHECK_EQ_INT(r.limit, 3);
        c.u.lock.limit = 1;
        c.u.lock.wait = 0;
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ECONFLICT);
    }
    CHECK_EQ_INT(sesslock_of(&h, "s5", "sem/x"), 0);
    /* One leaves: the waiter takes its place. */
    release(&h, "s2", "sem/x");
    CHECK_EQ_STR(shape(&h, "sem/x"), "h:s1,s3,s4 w:");
    CHECK(last_event(&h, FSM_EFF_LOCK_GRANTED)->token > last);
    REQUIRE(lock_of(&h, "sem/x", &l) == FL_OK);
    CHECK_EQ_INT(l.limit, 3);
    CHECK_EQ_INT(l.fence, last_event(&h, FSM_EFF_LOCK_GRANTED)->token);
    store_lock_free(&l);
    /* Once free, the next acquire sets the limit. */
    release(&h, "s1", "sem/x");
    release(&h, "s3", "sem/x");
    release(&h, "s4", "sem/x");
    CHECK_EQ_STR(shape(&h, "sem/x"), "free");
    CHECK_EQ_INT(acquire(&h, "s5", "sem/x", 2, 0).err, FL_OK);
    CHECK_EQ_INT(acquire(&h, "s1", "sem/x", 2, 0).err, FL_OK);
    CHECK_EQ_INT(acquire(&h, "s2", "sem/x", 2, 0).err, FL_EBUSY);
    REQUIRE(lock_of(&h, "sem/x", &l) == FL_OK);
    CHECK_EQ_INT(l.limit, 2);
    store_lock_free(&l);
    teardown(&h);
}

/* Acquires, waits and releases over three locks (one a semaphore of 2) in a
 * fixed pseudo-random order: every grant takes the next value of the one
 * counter, each lock's fence is its last grant, holders never exceed the
 * limit. check_events (in teardown) checks the grant order again. */
TEST(tokens_increase_across_locks)
{
    static const char *keys[] = {"a/one", "a/two", "b/sem"};
    static const uint32_t limits[] = {1, 1, 2};
    struct h h;
    uint32_t x = 12345;
    unsigned grants = 0;
    setup(&h);
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        create(&h, id, 60000, 0);
    }
    for (int step = 0; step < 300; step++) {
        char id[STORE_SESSION_ID_MAX];
        unsigned k, before = count_events(&h, FSM_EFF_LOCK_GRANTED);
        uint64_t fence = h.r[0].fsm.fence;
        struct fsm_result r;
        struct store_lock l;
        x ^= x << 13; /* xorshift32 */
        x ^= x >> 17;
        x ^= x << 5;
        k = x % 3;
        snprintf(id, sizeof id, "s%u", (x >> 4) % 6);
        if ((x >> 10) % 5 < 3) {
            r = acquire(&h, id, keys[k], limits[k], (int)((x >> 14) % 2));
            CHECK(r.err == FL_OK || r.err == FL_EBUSY);
        } else {
            /* Mostly a holder lets go; sometimes a waiter or a stranger. */
            if ((x >> 14) % 4 != 0 && lock_of(&h, keys[k], &l) == FL_OK) {
                if (l.n_holders > 0) {
                    snprintf(id, sizeof id, "%s", l.holders[(x >> 16) % l.n_holders].session);
                }
                store_lock_free(&l);
            }
            r = release(&h, id, keys[k]);
            CHECK(r.err == FL_OK || r.err == FL_ENOTFOUND);
        }
        /* New grants took fence+1, fence+2, ... in order. */
        for (unsigned e = 0, g = 0; e < h.r[0].n_events; e++) {
            const struct ev *ev = &h.r[0].events[e];
            if (ev->type == FSM_EFF_LOCK_GRANTED && g++ >= before) {
                CHECK_EQ_INT(ev->token, ++fence);
            }
        }
        CHECK_EQ_INT(h.r[0].fsm.fence, fence);
        grants = count_events(&h, FSM_EFF_LOCK_GRANTED);
        for (unsigned j = 0; j < 3; j++) {
            if (lock_of(&h, keys[j], &l) == FL_OK) {
                CHECK(l.n_holders <= limits[j]);
                CHECK(l.n_holders > 0); /* no lock-delay here: a free lock has no waiters */
                for (uint32_t i = 0; i < l.n_holders; i++) {
                    CHECK(l.holders[i].token <= l.fence);
                }
                store_lock_free(&l);
            }
        }
    }
    fprintf(stderr, "   %u grants\n", grants);
    CHECK(grants > 50);
    teardown(&h);
}

TEST(waiter_release_and_unwait)
{
    struct h h;
    struct fsm_result r;
    uint64_t t1;
    setup(&h);
    for (int i = 1; i <= 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        create(&h, id, 10000, 0);
    }
    t1 = acquire(&h, "s1", "ns/a", 1, 0).token;
    acquire(&h, "s2", "ns/a", 1, 1);
    acquire(&h, "s3", "ns/a", 1, 1);
    acquire(&h, "s4", "ns/a", 1, 1);
    /* A waiter that releases leaves the queue. */
    r = release(&h, "s2", "ns/a");
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(r.token, 0);
    CHECK_EQ_INT(sesslock_of(&h, "s2", "ns/a"), 0);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s3,s4");
    /* A waiter whose wait ended: timeout, out of the queue. */
    r = unwait(&h, "s3", "ns/a");
    CHECK_EQ_INT(r.err, FL_ETIMEOUT);
    CHECK_EQ_INT(r.token, 0);
    CHECK_EQ_INT(sesslock_of(&h, "s3", "ns/a"), 0);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s4");
    /* A holder (granted before its wait ended): OK with its token, kept. */
    {
        struct fsm_cmd c = lcmd(FSM_CMD_LOCK_UNWAIT, "s1", "ns/a");
        r = apply_noop(&h, &c);
        CHECK_EQ_INT(r.err, FL_OK);
        CHECK_EQ_INT(r.token, t1);
        c.u.lock.session = "s2";
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
    }
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s4");
    /* The queue skips those that left. */
    release(&h, "s1", "ns/a");
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s4 w:");
    CHECK_EQ_STR(last_event(&h, FSM_EFF_LOCK_GRANTED)->session, "s4");
    teardown(&h);
}

TEST(expire_with_stale_renewal_count_is_refused)
{
    struct h h;
    struct fsm_result r;
    struct store_session s;
    uint64_t t1;
    setup(&h);
    create(&h, "s1", 10000, 5000);
    create(&h, "s2", 10000, 5000);
    t1 = acquire(&h, "s1", "ns/a", 1, 0).token;
    acquire(&h, "s2", "ns/a", 1, 1);
    /* The leader saw renewals 0 and decided to expire; s1 renewed meanwhile. */
    on_session(&h, FSM_CMD_SESSION_RENEW, "s1");
    {
        struct fsm_cmd c = expire_cmd("s1", 0);
        r = apply_noop(&h, &c);
        CHECK_EQ_INT(r.err, FL_ECONFLICT);
        c.u.lock.renewals = 2; /* a count from the future is no better */
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ECONFLICT);
    }
    REQUIRE(session_of(&h, "s1", &s) == FL_OK);
    CHECK_EQ_INT(s.renewals, 1);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s2");
    CHECK_EQ_INT(acquire(&h, "s1", "ns/a", 1, 0).token, t1);
    teardown(&h);
}

TEST(expire_releases_with_lock_delay)
{
    struct h h;
    struct fsm_result r;
    struct store_session s;
    struct store_lock l;
    uint64_t t1, tb, at;
    setup(&h);
    create(&h, "s1", 10000, 5000);
    create(&h, "s2", 10000, 0);
    create(&h, "s3", 10000, 0);
    create(&h, "s4", 10000, 0);
    t1 = acquire(&h, "s1", "ns/a", 1, 0).token;
    tb = acquire(&h, "s3", "ns/b", 1, 0).token;
    acquire(&h, "s2", "ns/a", 1, 1);
    acquire(&h, "s1", "ns/b", 1, 1); /* s1 also waits for ns/b */
    CHECK_EQ_STR(shape(&h, "ns/b"), "h:s3 w:s1");

    at = h.now + 10000;
    r = expire_at(&h, "s1", 0, at);
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(session_of(&h, "s1", &s), FL_ENOTFOUND);
    CHECK_EQ_STR(last_event(&h, FSM_EFF_SESSION_GONE)->session, "s1");
    /* Its hold is gone, its waits too; the waiter is held back. */
    CHECK_EQ_STR(shape(&h, "ns/a"), "h: w:s2");
    CHECK_EQ_STR(shape(&h, "ns/b"), "h:s3 w:");
    CHECK_EQ_INT(sesslock_of(&h, "s1", "ns/a"), 0);
    CHECK_EQ_INT(sesslock_of(&h, "s1", "ns/b"), 0);
    REQUIRE(lock_of(&h, "ns/a", &l) == FL_OK);
    CHECK_EQ_INT(l.delay_until_ms, at + 5000);
    CHECK_EQ_INT(l.fence, t1);
    store_lock_free(&l);
    CHECK_EQ_STR(last_event(&h, FSM_EFF_LOCK_DELAY)->key, "ns/a");
    CHECK_EQ_INT(last_event(&h, FSM_EFF_LOCK_DELAY)->until_ms, at + 5000);
    CHECK_EQ_INT(h.r[0].fsm.fence, tb); /* nothing granted */

    /* During the delay: a try is refused, a wake-up too early grants
     * nothing (and reports the delay again). */
    {
        struct fsm_cmd c = acquire_cmd("s4", "ns/a", 1, 0);
        h.now = at + 100;
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_EBUSY);
    }
    {
        unsigned delays = count_events(&h, FSM_EFF_LOCK_DELAY);
        wake_at(&h, "ns/a", at + 4999);
        CHECK_EQ_STR(shape(&h, "ns/a"), "h: w:s2");
        CHECK_EQ_INT(count_events(&h, FSM_EFF_LOCK_DELAY), delays + 1);
    }
    /* A waiter queued during the delay goes behind s2. */
    {
        struct fsm_cmd c = acquire_cmd("s4", "ns/a", 1, 1);
        CHECK_EQ_INT(apply_at(&h, &c, at + 4999).token, 0);
    }
    CHECK_EQ_STR(shape(&h, "ns/a"), "h: w:s2,s4");
    /* The wake-up stamped at the end of the delay grants the first waiter. */
    wake_at(&h, "ns/a", at + 5000);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s2 w:s4");
    CHECK_EQ_STR(last_event(&h, FSM_EFF_LOCK_GRANTED)->session, "s2");
    CHECK(last_event(&h, FSM_EFF_LOCK_GRANTED)->token > tb);
    CHECK_EQ_INT(sesslock_of(&h, "s2", "ns/a"), 'H');
    teardown(&h);
}

/* A waiter arriving after the delay is granted at once, ahead of no one:
 * the first waiter queued during the delay goes first. */
TEST(acquire_after_delay_grants_queue_in_order)
{
    struct h h;
    uint64_t at;
    setup(&h);
    create(&h, "s1", 10000, 2000);
    create(&h, "s2", 10000, 0);
    create(&h, "s3", 10000, 0);
    acquire(&h, "s1", "ns/a", 1, 0);
    acquire(&h, "s2", "ns/a", 1, 1);
    at = h.now + 10000;
    expire_at(&h, "s1", 0, at);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h: w:s2");
    /* No wake-up was committed; s3 asks after the delay: s2 first. */
    h.now = at + 3000;
    CHECK_EQ_INT(acquire(&h, "s3", "ns/a", 1, 1).token, 0);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s2 w:s3");
    teardown(&h);
}

TEST(destroy_releases_without_delay)
{
    struct h h;
    struct store_lock l;
    setup(&h);
    create(&h, "s1", 10000, 15000);
    create(&h, "s2", 10000, 0);
    acquire(&h, "s1", "ns/a", 1, 0);
    acquire(&h, "s2", "ns/a", 1, 1);
    CHECK_EQ_INT(on_session(&h, FSM_CMD_SESSION_DESTROY, "s1").err, FL_OK);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s2 w:");
    CHECK_EQ_STR(last_event(&h, FSM_EFF_LOCK_GRANTED)->session, "s2");
    REQUIRE(lock_of(&h, "ns/a", &l) == FL_OK);
    CHECK(l.delay_until_ms <= h.now);
    store_lock_free(&l);
    /* And a destroyed holder alone leaves nothing behind. */
    CHECK_EQ_INT(on_session(&h, FSM_CMD_SESSION_DESTROY, "s2").err, FL_OK);
    CHECK_EQ_STR(shape(&h, "ns/a"), "free");
    teardown(&h);
}

TEST(lease_extend_refuses_earlier_expiry)
{
    struct h h;
    struct store_session s1, s2;
    struct fsm_result r;
    uint64_t t1, created, at;
    setup(&h);
    create(&h, "s1", 10000, 5000);
    created = h.now;
    create(&h, "s2", 20000, 0);
    t1 = acquire(&h, "s1", "ns/a", 1, 0).token;
    acquire(&h, "s2", "ns/a", 1, 1);
    /* A leader decided to expire s1 (renewals 0) but a new leader extends
     * every lease first. */
    at = created + 9000;
    r = extend_at(&h, at);
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(count_events(&h, FSM_EFF_LEASES_EXTENDED), 1);
    REQUIRE(session_of(&h, "s1", &s1) == FL_OK);
    REQUIRE(session_of(&h, "s2", &s2) == FL_OK);
    CHECK_EQ_INT(s1.renewals, 1);
    CHECK_EQ_INT(s2.renewals, 1);
    CHECK(s1.expires_ms >= at + 10000);
    CHECK(s2.expires_ms >= at + 20000);
    {
        struct fsm_cmd c = expire_cmd("s1", 0);
        CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ECONFLICT);
    }
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s2");
    CHECK_EQ_INT(acquire(&h, "s1", "ns/a", 1, 0).token, t1);
    /* An extension stamped earlier than a renewal never moves the expiry
     * back (leaders' clocks differ). */
    on_session(&h, FSM_CMD_SESSION_RENEW, "s2");
    REQUIRE(session_of(&h, "s2", &s2) == FL_OK);
    extend_at(&h, h.now - 5000);
    REQUIRE(session_of(&h, "s2", &s1) == FL_OK);
    CHECK_EQ_INT(s1.expires_ms, s2.expires_ms);
    CHECK_EQ_INT(s1.renewals, s2.renewals + 1);
    /* The expiry with the count after both extensions is applied. */
    REQUIRE(session_of(&h, "s1", &s1) == FL_OK);
    CHECK_EQ_INT(s1.renewals, 2);
    CHECK_EQ_INT(expire_at(&h, "s1", 2, h.now + 1).err, FL_OK);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h: w:s2");
    teardown(&h);
}

TEST(invalid_commands_change_nothing)
{
    char ns200[201], key[260], why[FL_ERRMSG_SIZE];
    struct {
        const char *what;
        struct fsm_cmd c;
    } bad[24];
    unsigned n = 0;
    struct h h;
    setup(&h);
    create(&h, "s1", 10000, 0);
    create(&h, "s2", 10000, 0);
    acquire(&h, "s1", "ns/a", 1, 0);
    acquire(&h, "s2", "ns/a", 1, 1);
    memset(ns200, 'n', 200);
    ns200[200] = '\0';
    snprintf(key, sizeof key, "%s/x", ns200);

#define BAD(text, cmd) (bad[n].what = (text), bad[n].c = (cmd), n++)
    BAD("uppercase namespace", acquire_cmd("s2", "NS/a", 1, 0));
    BAD("space in namespace", acquire_cmd("s2", "n s/a", 1, 0));
    BAD("namespace starting with '.'", acquire_cmd("s2", ".ns/a", 1, 0));
    BAD("empty name", acquire_cmd("s2", "ns/", 1, 0));
    BAD("no slash", acquire_cmd("s2", "nsa", 1, 0));
    BAD("space in name", acquire_cmd("s2", "ns/a b", 1, 0));
    BAD("200-byte namespace", acquire_cmd("s2", key, 1, 0));
    BAD("limit 0", acquire_cmd("s2", "ns/a", 0, 1));
    BAD("limit 1025", acquire_cmd("s2", "ns/a", 1025, 1));
    BAD("session id with '/'", acquire_cmd("s2/x", "ns/a", 1, 1));
    BAD("release: session id with '/'", lcmd(FSM_CMD_LOCK_RELEASE, "s1/", "ns/a"));
    BAD("release: empty name", lcmd(FSM_CMD_LOCK_RELEASE, "s1", "ns/"));
    BAD("ttl 0", create_cmd("s9", 0, 0));
    BAD("ttl 25h", create_cmd("s9", 25ull * 3600 * 1000, 0));
    BAD("lock_delay 61s", create_cmd("s9", 10000, 61000));
    BAD("empty session id", create_cmd("", 10000, 0));
#undef BAD
    for (unsigned i = 0; i < n; i++) {
        struct fsm_result r;
        why[0] = '\0';
        fprintf(stderr, "   %s\n", bad[i].what);
        CHECK_EQ_INT(fsm_cmd_validate(&bad[i].c, why), FL_EINVAL);
        CHECK(why[0] != '\0');
        r = apply_noop(&h, &bad[i].c);
        CHECK_EQ_INT(r.err, FL_EINVAL);
    }
    /* The limits themselves are valid. */
    {
        struct fsm_cmd c = create_cmd("s9", 24ull * 3600 * 1000, 60000);
        char name[300];
        CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_OK);
        c = create_cmd("s9", 1000, 0);
        CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_OK);
        c = acquire_cmd("s1", "ns/a", 1024, 1);
        CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_OK);
        memset(ns200, 'n', 64);
        ns200[64] = '\0';
        snprintf(key, sizeof key, "%s/a/b/c", ns200);
        c = acquire_cmd("s1", key, 1, 1);
        CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_OK);
        /* "namespace/name" with its NUL fits STORE_LOCK_KEY_MAX. */
        memset(name, 'x', sizeof name);
        snprintf(key, sizeof key, "ns/%.*s", (int)(STORE_LOCK_KEY_MAX - 4), name);
        c = acquire_cmd("s1", key, 1, 1);
        CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_OK);
        snprintf(key, sizeof key, "ns/%.*s", (int)(STORE_LOCK_KEY_MAX - 3), name);
        c = acquire_cmd("s1", key, 1, 1);
        CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    }
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s2");
    teardown(&h);
}

TEST(restart_keeps_sessions_holders_waiters_and_fence)
{
    struct h h;
    struct store_session s;
    uint64_t fence, ta;
    setup(&h);
    create(&h, "s1", 10000, 0);
    create(&h, "s2", 20000, 7000);
    create(&h, "s3", 30000, 0);
    ta = acquire(&h, "s1", "ns/a", 1, 0).token;
    acquire(&h, "s2", "ns/a", 1, 1);
    acquire(&h, "s3", "sem/b", 2, 0);
    acquire(&h, "s2", "sem/b", 2, 0);
    on_session(&h, FSM_CMD_SESSION_RENEW, "s3");
    fence = h.r[0].fsm.fence;
    CHECK(fence >= 3);

    for (int i = 0; i < 2; i++) {
        replica_close(&h.r[i]);
        replica_open(&h.r[i]);
        CHECK_EQ_INT(h.r[i].fsm.fence, fence);
        CHECK_EQ_INT(h.r[i].fsm.applied_index, h.r[i].raft.last_applied);
    }
    check_same(&h);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s2");
    CHECK_EQ_STR(shape(&h, "sem/b"), "h:s3,s2 w:");
    REQUIRE(session_of(&h, "s2", &s) == FL_OK);
    CHECK_EQ_INT(s.ttl_ms, 20000);
    CHECK_EQ_INT(s.lock_delay_ms, 7000);
    REQUIRE(session_of(&h, "s3", &s) == FL_OK);
    CHECK_EQ_INT(s.renewals, 1);
    CHECK_EQ_INT(sesslock_of(&h, "s2", "ns/a"), 'W');
    CHECK_EQ_INT(sesslock_of(&h, "s2", "sem/b"), 'H');
    CHECK_EQ_INT(acquire(&h, "s1", "ns/a", 1, 0).token, ta);
    /* The next grant continues the counter. */
    release(&h, "s1", "ns/a");
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s2 w:");
    CHECK_EQ_INT(last_event(&h, FSM_EFF_LOCK_GRANTED)->token, fence + 1);
    teardown(&h);
}

static struct fsm_cmd with_ident(struct fsm_cmd c, const char *session, uint64_t serial)
{
    c.req.session = session;
    c.req.slen = strlen(session);
    c.req.serial = serial;
    return c;
}

static struct fsm_cmd release_cmd(const char *id, const char *key, uint64_t token)
{
    struct fsm_cmd c = lcmd(FSM_CMD_LOCK_RELEASE, id, key);
    c.u.lock.token = token;
    return c;
}

/* A release that names a token releases only the hold with that token. */
TEST(release_names_its_token)
{
    struct h h;
    struct fsm_result r;
    struct fsm_cmd c;
    uint64_t t1;
    setup(&h);
    create(&h, "s1", 10000, 0);
    create(&h, "s2", 10000, 0);
    t1 = acquire(&h, "s1", "ns/a", 1, 0).token;
    acquire(&h, "s2", "ns/a", 1, 1);
    c = release_cmd("s1", "ns/a", t1 + 5);
    r = apply_noop(&h, &c);
    CHECK_EQ_INT(r.err, FL_ECONFLICT);
    CHECK_EQ_INT(r.token, t1); /* the token it holds */
    c = release_cmd("s2", "ns/a", t1);
    r = apply_noop(&h, &c);
    CHECK_EQ_INT(r.err, FL_ECONFLICT); /* only waits */
    CHECK_EQ_INT(r.token, 0);
    c = release_cmd("s3", "ns/a", t1);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
    c = release_cmd("s1", "ns/nothing", t1);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOTFOUND);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s1 w:s2");
    c = release_cmd("s1", "ns/a", t1);
    r = apply(&h, &c);
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(r.token, t1);
    CHECK_EQ_STR(shape(&h, "ns/a"), "h:s2 w:");
    /* Only a release names a token. */
    c = acquire_cmd("s1", "ns/a", 1, 0);
    c.u.lock.token = 3;
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_EINVAL);
    teardown(&h);
}

/* docs/API.md "Request identity", on two replicas: the same serial is
 * answered from the session's memory and changes nothing; an older one is
 * refused; an unknown session is refused; the memory survives a restart. */
TEST(request_identity_at_most_once)
{
    struct h h;
    struct fsm_result r, first;
    struct fsm_cmd c;
    struct store_session s;
    uint64_t t1, t2;
    unsigned effects;
    setup(&h);
    create(&h, "A", 10000, 0);
    create(&h, "B", 10000, 0);
    create(&h, "C", 10000, 0);
    create(&h, "D", 10000, 0);

    /* A: acquire (1), the same request again, release naming t1 (2). */
    c = with_ident(acquire_cmd("A", "lc/1", 1, 0), "A", 1);
    first = apply(&h, &c);
    t1 = first.token;
    CHECK_EQ_INT(first.err, FL_OK);
    CHECK_EQ_INT(first.replayed, 0);
    effects = h.r[0].n_effects;
    r = apply_noop(&h, &c);
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_INT(r.token, t1);
    CHECK_EQ_INT(r.index, first.index); /* the first attempt's answer */
    CHECK(r.replayed && r.not_run);
    CHECK_EQ_INT(h.r[0].n_effects, effects); /* no effect of any kind */
    REQUIRE(session_of(&h, "A", &s) == FL_OK);
    CHECK_EQ_INT(s.req_serial, 1);
    CHECK_EQ_INT(s.req_version, t1);
    c = with_ident(release_cmd("A", "lc/1", t1), "A", 2);
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    c = with_ident(acquire_cmd("A", "lc/1", 1, 0), "A", 3);
    t2 = apply(&h, &c).token;
    CHECK(t2 > t1);
    c = with_ident(acquire_cmd("B", "lc/1", 1, 1), "B", 1);
    apply(&h, &c);
    CHECK_EQ_STR(shape(&h, "lc/1"), "h:A w:B");
    /* The release (2) arrives again, late: refused, A keeps t2. */
    c = with_ident(release_cmd("A", "lc/1", t1), "A", 2);
    r = apply_noop(&h, &c);
    CHECK_EQ_INT(r.err, FL_ESTALE);
    CHECK_EQ_INT(r.newer_serial, 3);
    CHECK(r.not_run && !r.replayed);
    /* Even without a token: the serial alone stops it. */
    c = with_ident(lcmd(FSM_CMD_LOCK_RELEASE, "A", "lc/1"), "A", 2);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ESTALE);
    CHECK_EQ_STR(shape(&h, "lc/1"), "h:A w:B");

    /* C's acquire is refused (held); D releases; C's acquire arrives again:
     * answered from memory, C is not granted. */
    c = with_ident(acquire_cmd("D", "lc/2", 1, 0), "D", 1);
    apply(&h, &c);
    c = with_ident(acquire_cmd("C", "lc/2", 1, 0), "C", 1);
    CHECK_EQ_INT(apply(&h, &c).err, FL_EBUSY);
    c = with_ident(lcmd(FSM_CMD_LOCK_RELEASE, "D", "lc/2"), "D", 2);
    apply(&h, &c);
    CHECK_EQ_STR(shape(&h, "lc/2"), "free");
    c = with_ident(acquire_cmd("C", "lc/2", 1, 0), "C", 1);
    r = apply_noop(&h, &c);
    CHECK_EQ_INT(r.err, FL_EBUSY);
    CHECK_EQ_STR(r.holder, "D"); /* the holder named the first time */
    CHECK_EQ_STR(shape(&h, "lc/2"), "free");
    /* A serial that was never applied but is below the last: refused too. */
    c = with_ident(lcmd(FSM_CMD_SESSION_RENEW, "C", NULL), "C", 5);
    apply(&h, &c);
    c = with_ident(acquire_cmd("C", "lc/2", 1, 0), "C", 4);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ESTALE);
    CHECK_EQ_STR(shape(&h, "lc/2"), "free");

    /* Unknown sessions refuse any command, a kv write too. */
    c = with_ident(acquire_cmd("C", "lc/3", 1, 0), "ghost", 1);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOSESSION);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_KV_PUT;
    c.u.kv.key = "k";
    c.u.kv.klen = 1;
    c.u.kv.value = (const uint8_t *)"v";
    c.u.kv.vlen = 1;
    c = with_ident(c, "ghost", 1);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOSESSION);
    /* The identity's session must be a valid id. */
    c = with_ident(c, "bad id", 1);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_EINVAL);

    /* A destroy under its own session: the session is gone, and so is
     * every later copy. */
    c = with_ident(lcmd(FSM_CMD_SESSION_DESTROY, "D", NULL), "D", 3);
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    CHECK_EQ_INT(apply_noop(&h, &c).err, FL_ENOSESSION);

    /* The memory is in the store: it survives a restart. */
    for (int i = 0; i < 2; i++) {
        replica_close(&h.r[i]);
        replica_open(&h.r[i]);
    }
    c = with_ident(acquire_cmd("A", "lc/1", 1, 0), "A", 3);
    r = apply_noop(&h, &c);
    CHECK(r.replayed);
    CHECK_EQ_INT(r.token, t2);
    CHECK_EQ_INT(h.r[0].fsm.n_req_replayed, 1); /* counted since the restart */
    teardown(&h);
}

/* Every lock command, every field set, through the entry codec. */
/* A request's result is remembered as one number (the session record's
 * req_version) and replayed into the member its command sets. */
TEST(typed_results_replay_into_their_member)
{
    struct h h;
    struct fsm_result r, first;
    struct fsm_cmd c;
    struct store_session s;
    setup(&h);
    create(&h, "A", 10000, 0);
    create(&h, "B", 10000, 0);
    create(&h, "C", 10000, 0);
    /* LOCK_ACQUIRE: the token */
    c = with_ident(acquire_cmd("A", "lt/1", 2, 0), "A", 1);
    first = apply(&h, &c);
    REQUIRE(first.err == FL_OK && first.token != 0);
    r = apply_noop(&h, &c);
    CHECK(r.replayed && r.token == first.token && r.limit == 0);
    /* LOCK_ACQUIRE refused with another limit: the limit */
    c = with_ident(acquire_cmd("B", "lt/1", 3, 0), "B", 1);
    first = apply(&h, &c); /* remembered: the session record changes */
    CHECK(first.err == FL_ECONFLICT && first.limit == 2 && first.token == 0);
    REQUIRE(session_of(&h, "B", &s) == FL_OK);
    CHECK_EQ_INT(s.req_version, 2);
    r = apply_noop(&h, &c);
    CHECK(r.replayed && r.err == FL_ECONFLICT && r.limit == 2 && r.token == 0);
    /* SESSION_RENEW: the expiry */
    c = with_ident(lcmd(FSM_CMD_SESSION_RENEW, "A", NULL), "A", 2);
    first = apply(&h, &c);
    CHECK(first.err == FL_OK && first.expires_ms == h.now + 10000);
    REQUIRE(session_of(&h, "A", &s) == FL_OK);
    CHECK_EQ_INT(s.req_version, first.expires_ms);
    r = apply_noop(&h, &c);
    CHECK(r.replayed && r.expires_ms == first.expires_ms && r.token == 0);
    /* KV_PUT: the key's version */
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_KV_PUT;
    c.u.kv.key = "k";
    c.u.kv.klen = 1;
    c = with_ident(c, "C", 1);
    first = apply(&h, &c);
    CHECK(first.err == FL_OK && first.kv_version != 0);
    r = apply_noop(&h, &c);
    CHECK(r.replayed && r.kv_version == first.kv_version && r.token == 0);
    REQUIRE(session_of(&h, "C", &s) == FL_OK);
    CHECK_EQ_INT(s.req_version, first.kv_version);
    /* TASK_SUBMIT: its units */
    {
        static const char *const hosts[] = {"h1", "h2", "h3"};
        memset(&c, 0, sizeof c);
        c.type = FSM_CMD_TASK_SUBMIT;
        c.u.task.id = "t1";
        c.u.task.idlen = 2;
        c.u.task.n_hosts = 3;
        c.u.task.host_ptrs = hosts;
        c.u.task.unit_size = 2;
        c = with_ident(c, "C", 2);
        first = apply(&h, &c);
        CHECK(first.err == FL_OK && first.units == 2);
        r = apply_noop(&h, &c);
        CHECK(r.replayed && r.units == 2 && r.kv_version == 0);
        CHECK(strcmp(r.task_id, "t1") == 0 && r.holder[0] == '\0');
        REQUIRE(session_of(&h, "C", &s) == FL_OK);
        CHECK_EQ_STR(s.req_str, "t1");
    }
    /* LOCK_RELEASE: the released hold's token */
    c = with_ident(lcmd(FSM_CMD_LOCK_RELEASE, "A", "lt/1"), "A", 3);
    first = apply(&h, &c);
    CHECK(first.err == FL_OK && first.token != 0);
    r = apply_noop(&h, &c);
    CHECK(r.replayed && r.token == first.token && r.expires_ms == 0);
    /* UNIT_ASSIGN: the assignment's token */
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_NODE_REGISTER;
    c.u.node.id = "n1";
    c.u.node.idlen = 2;
    c.u.node.kind = STORE_NODE_AGENT;
    c.u.node.cap = 4;
    REQUIRE(apply(&h, &c).err == FL_OK);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_UNIT_ASSIGN;
    c.u.unit.task = "t1";
    c.u.unit.tasklen = 2;
    c.u.unit.unit = 1;
    c.u.unit.node = "n1";
    c.u.unit.nodelen = 2;
    c = with_ident(c, "C", 3);
    first = apply(&h, &c);
    CHECK(first.err == FL_OK && first.token != 0);
    r = apply_noop(&h, &c);
    CHECK(r.replayed && r.err == FL_OK && r.token == first.token && r.units == 0);
    REQUIRE(session_of(&h, "C", &s) == FL_OK);
    CHECK_EQ_INT(s.req_version, first.token);
    /* PACKAGE_PUT: the index of the version's put */
    {
        static const uint8_t chunk_hash[32] = {1};
        struct store_package p;
        struct fl_buf rec;
        memset(&p, 0, sizeof p);
        snprintf(p.name, sizeof p.name, "web");
        snprintf(p.version, sizeof p.version, "1.0");
        p.hash[0] = 7;
        p.size = 1000;
        p.chunk_size = 64 * 1024;
        p.chunks = chunk_hash;
        p.n_chunks = 1;
        p.keep = 3;
        fl_buf_init(&rec);
        REQUIRE(store_package_encode(&p, &rec) == FL_OK);
        memset(&c, 0, sizeof c);
        c.type = FSM_CMD_PACKAGE_PUT;
        c.u.pkg.name = "web";
        c.u.pkg.nlen = 3;
        c.u.pkg.version = "1.0";
        c.u.pkg.vlen = 3;
        c.u.pkg.rec = rec.data;
        c.u.pkg.reclen = rec.len;
        c = with_ident(c, "B", 2);
        first = apply(&h, &c);
        CHECK(first.err == FL_OK && first.pkg_index != 0);
        r = apply_noop(&h, &c);
        CHECK(r.replayed && r.err == FL_OK && r.pkg_index == first.pkg_index && r.token == 0);
        REQUIRE(session_of(&h, "B", &s) == FL_OK);
        CHECK_EQ_INT(s.req_version, first.pkg_index);
        fl_buf_close(&rec);
    }
    /* JOB_FIRE: the schedule time and the run's outcome */
    {
        struct fl_buf def;
        fx_job_put(&c, &def, "tick", "h1", 1000, STORE_OVERLAP_ALLOW, STORE_MISFIRE_RUN_ONCE);
        REQUIRE(apply(&h, &c).err == FL_OK);
        memset(&c, 0, sizeof c);
        c.type = FSM_CMD_JOB_FIRE;
        c.u.job.name = "tick";
        c.u.job.nlen = 4;
        c.u.job.sched_ms = h.now + 5000; /* a schedule time after the job was made */
        c = with_ident(c, "A", 4);
        first = apply(&h, &c);
        CHECK(first.err == FL_OK && first.sched_ms == c.u.job.sched_ms && first.outcome[0] != '\0');
        r = apply_noop(&h, &c);
        CHECK(r.replayed && r.err == FL_OK && r.sched_ms == c.u.job.sched_ms && r.token == 0);
        CHECK_EQ_STR(r.outcome, first.outcome);
        REQUIRE(session_of(&h, "A", &s) == FL_OK);
        CHECK_EQ_INT(s.req_version, c.u.job.sched_ms);
        CHECK_EQ_STR(s.req_str, first.outcome);
        fl_buf_close(&def);
    }
    teardown(&h);
}

TEST(codec_round_trip)
{
    static const int types[] = {
        FSM_CMD_SESSION_CREATE, FSM_CMD_SESSION_RENEW, FSM_CMD_SESSION_DESTROY,
        FSM_CMD_SESSION_EXPIRE, FSM_CMD_LEASE_EXTEND,  FSM_CMD_LOCK_ACQUIRE,
        FSM_CMD_LOCK_RELEASE,   FSM_CMD_LOCK_UNWAIT,   FSM_CMD_LOCK_WAKE};
    const unsigned n = sizeof types / sizeof types[0];
    struct fsm_entry_writer w;
    struct fsm_entry e;
    void *base;
    size_t len;
    fsm_writer_init(&w);
    for (unsigned i = 0; i < n; i++) {
        struct fsm_cmd c = lcmd(types[i], "sess-0123456789abcdef", "deploy.prod/web/db?x=1");
        c.u.lock.name = "host-a pid 42";
        c.u.lock.nlen = strlen(c.u.lock.name);
        c.u.lock.ttl_ms = 15000 + i;
        c.u.lock.lock_delay_ms = 7000 + i;
        c.u.lock.renewals = (uint64_t)1 << 40 | i;
        c.u.lock.limit = 1 + i;
        c.u.lock.wait = (int)(i % 2);
        if (types[i] == FSM_CMD_LOCK_RELEASE) {
            c.u.lock.token = (uint64_t)1 << 50 | i;
        }
        if (i % 3 == 0) {
            c = with_ident(c, "client-7", (uint64_t)INT64_MAX - i);
        }
        CHECK_OK(fsm_writer_add(&w, &c));
    }
    CHECK_OK(fsm_writer_finish(&w, 7, 99, 3, 123456789, fl_malloc, &base, &len));
    fsm_writer_close(&w);
    CHECK_EQ_INT(len % 8, 0);
    REQUIRE(fsm_entry_open(&e, base, len) == FL_OK);
    CHECK_EQ_INT(e.origin, 7);
    CHECK_EQ_INT(e.seq, 99);
    CHECK_EQ_INT(e.term, 3);
    CHECK_EQ_INT(e.time_ms, 123456789);
    CHECK_EQ_INT(e.n_cmds, n);
    for (unsigned i = 0; i < e.n_cmds && i < n; i++) {
        struct fsm_cmd c;
        CHECK_OK(fsm_entry_cmd(&e, i, &c));
        CHECK_EQ_INT(c.type, types[i]);
        CHECK(c.u.lock.slen == 21 && memcmp(c.u.lock.session, "sess-0123456789abcdef", 21) == 0);
        CHECK(c.u.lock.klen == 22 && memcmp(c.u.lock.key, "deploy.prod/web/db?x=1", 22) == 0);
        CHECK(c.u.lock.nlen == 13 && memcmp(c.u.lock.name, "host-a pid 42", 13) == 0);
        CHECK_EQ_INT(c.u.lock.ttl_ms, 15000 + i);
        CHECK_EQ_INT(c.u.lock.lock_delay_ms, 7000 + i);
        CHECK_EQ_INT(c.u.lock.renewals, (uint64_t)1 << 40 | i);
        CHECK_EQ_INT(c.u.lock.limit, 1 + i);
        CHECK_EQ_INT(c.u.lock.wait, (int)(i % 2));
        CHECK_EQ_INT(c.u.lock.token,
                     types[i] == FSM_CMD_LOCK_RELEASE ? ((uint64_t)1 << 50 | i) : 0);
        if (i % 3 == 0) {
            CHECK(c.req.slen == 8 && memcmp(c.req.session, "client-7", 8) == 0);
            CHECK_EQ_INT(c.req.serial, (uint64_t)INT64_MAX - i);
        } else {
            CHECK_EQ_INT(c.req.serial, 0);
            CHECK_EQ_INT(c.req.slen, 0);
        }
        CHECK_EQ_STR(fsm_cmd_type_name(c.type), fsm_cmd_type_name(types[i]));
    }
    fsm_entry_close(&e);
    fl_free(base);

    /* Fields left empty (LEASE_EXTEND, LOCK_WAKE) decode as empty. */
    {
        struct fsm_cmd c = lcmd(FSM_CMD_LEASE_EXTEND, NULL, NULL), d;
        fsm_writer_init(&w);
        CHECK_OK(fsm_writer_add(&w, &c));
        CHECK_OK(fsm_writer_finish(&w, 1, 1, 1, 1, fl_malloc, &base, &len));
        fsm_writer_close(&w);
        REQUIRE(fsm_entry_open(&e, base, len) == FL_OK);
        CHECK_OK(fsm_entry_cmd(&e, 0, &d));
        CHECK_EQ_INT(d.type, FSM_CMD_LEASE_EXTEND);
        CHECK_EQ_INT(d.u.lock.slen, 0);
        CHECK_EQ_INT(d.u.lock.klen, 0);
        CHECK_EQ_INT(d.u.lock.wait, 0);
        fsm_entry_close(&e);
        fl_free(base);
    }
}

int main(void)
{
    RUN(session_create_renew_destroy);
    RUN(acquire_try_held_and_again);
    RUN(fifo_waiters_over_releases);
    RUN(semaphore_limit);
    RUN(tokens_increase_across_locks);
    RUN(waiter_release_and_unwait);
    RUN(expire_with_stale_renewal_count_is_refused);
    RUN(expire_releases_with_lock_delay);
    RUN(acquire_after_delay_grants_queue_in_order);
    RUN(destroy_releases_without_delay);
    RUN(lease_extend_refuses_earlier_expiry);
    RUN(invalid_commands_change_nothing);
    RUN(restart_keeps_sessions_holders_waiters_and_fence);
    RUN(release_names_its_token);
    RUN(request_identity_at_most_once);
    RUN(typed_results_replay_into_their_member);
    RUN(codec_round_trip);
    return check_summary();
}
