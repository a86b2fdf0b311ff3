/* The effects of applied entries (fsm/fsm.h "Effects", raft/rg_apply.h):
 * which commands produce which effects, that they become ready only once
 * their entry's transaction is committed, and that rg_apply hands them to its
 * subscribers in order, at a point where the store already shows the entry.
 *
 * The harness applies entries with their index and the commit index, as
 * raft/rg_apply does from the Raft library's state. */

#include "check.h"
#include "job_util.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "raft/rg_apply.h"
#include "store/store.h"

#define MAX_SEEN 64

struct h {
    char dir[256];
    struct store *store;
    struct fsm fsm;
    struct rg_apply apply;
    uint64_t last_applied;
    struct fsm_result last;
    /* What the subscriber saw, and what the store showed when it did. */
    struct fsm_effect seen[MAX_SEEN];
    unsigned n_seen;
    unsigned n_unflushed; /* effects seen while the store did not show their entry */
    unsigned n_second;    /* effects seen by the second subscriber */
};

static void results_cb(void *data, uint64_t seq, uint64_t term, uint64_t index,
                       const struct fsm_result *res, unsigned n)
{
    struct h *h = data;
    (void)seq, (void)term, (void)index;
    if (n > 0) {
        h->last = res[0];
    }
}

/* A consumer that reads the store: its entry must be there already. */
static void subscriber(void *arg, const struct fsm_effect *e)
{
    struct h *h = arg;
    uint64_t index = 0, term = 0;
    CHECK_OK(store_applied(h->store, &index, &term));
    if (index < e->index) {
        h->n_unflushed++;
    }
    if (e->type == FSM_EFF_LOCK_GRANTED) {
        struct store_txn *t;
        struct store_lock l;
        CHECK_OK(store_begin(h->store, 0, &t));
        if (store_lock_get(t, e->key, strlen(e->key), &l) == FL_OK) {
            CHECK(l.n_holders > 0 && strcmp(l.holders[l.n_holders - 1].session, e->name) == 0);
            store_lock_free(&l);
        } else {
            h->n_unflushed++;
        }
        store_abort(t);
    }
    if (h->n_seen < MAX_SEEN) {
        h->seen[h->n_seen++] = *e;
    }
}

static void second(void *arg, const struct fsm_effect *e)
{
    struct h *h = arg;
    /* Subscribers get each effect in the order they subscribed. */
    CHECK(h->n_seen > 0 && h->seen[h->n_seen - 1].type == e->type);
    h->n_second++;
}

static void setup(struct h *h)
{
    memset(h, 0, sizeof *h);
    REQUIRE(check_tmpdir(h->dir, sizeof h->dir) != NULL);
    CHECK_OK(store_open(h->dir, NULL, &h->store, NULL));
    CHECK_OK(fsm_init(&h->fsm, h->store, 1));
    h->fsm.results_cb = results_cb;
    h->fsm.results_data = h;
    rg_apply_init(&h->apply, &h->fsm);
    CHECK_OK(rg_apply_subscribe(&h->apply, subscriber, h));
    h->last_applied = 1; /* index 1 is the bootstrap configuration */
}

static void teardown(struct h *h)
{
    CHECK_EQ_INT(h->n_unflushed, 0);
    fsm_close(&h->fsm);
    store_close(h->store);
    check_rmrf(h->dir);
}

/* Apply c as the entry at the next index with `ahead` more entries known
 * committed (0: this one is the last, its transaction is committed), then
 * deliver as rg_apply does after fsm_apply. */
static struct fsm_result apply_ahead(struct h *h, const struct fsm_cmd *c, uint64_t ahead)
{
    struct fsm_entry_writer w;
    void *base;
    size_t len;
    uint64_t index = h->last_applied + 1;
    fsm_writer_init(&w);
    CHECK_OK(fsm_writer_add(&w, c));
    CHECK_OK(fsm_writer_finish(&w, 1, index, 1, 1000000 + index * 100, fl_malloc, &base, &len));
    fsm_writer_close(&w);
    memset(&h->last, 0, sizeof h->last);
    fsm_apply(&h->fsm, index, index + ahead, base, len);
    rg_apply_deliver(&h->apply);
    h->last_applied = index;
    fl_free(base);
    return h->last;
}

static struct fsm_result apply(struct h *h, const struct fsm_cmd *c)
{
    return apply_ahead(h, c, 0);
}

/* The effects seen since `from` are exactly `types`, in order. */
static void expect(struct h *h, unsigned from, const int *types, unsigned n)
{
    CHECK_EQ_INT(h->n_seen - from, n);
    for (unsigned i = 0; i < n && from + i < h->n_seen; i++) {
        CHECK_EQ_INT(h->seen[from + i].type, types[i]);
    }
}

/* ---- commands ------------------------------------------------------------ */

static struct fsm_cmd node_cmd(const char *id)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_NODE_REGISTER;
    c.u.node.id = id;
    c.u.node.idlen = strlen(id);
    c.u.node.kind = STORE_NODE_AGENT;
    c.u.node.cap = 4;
    return c;
}

static struct fsm_cmd submit_cmd(const char *id)
{
    static const char *hosts[] = {"h0"};
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_TASK_SUBMIT;
    c.u.task.id = id;
    c.u.task.idlen = strlen(id);
    c.u.task.idem = "";
    c.u.task.n_hosts = 1;
    c.u.task.host_ptrs = hosts;
    c.u.task.unit_size = 1;
    c.u.task.spec = (const uint8_t *)"spec";
    c.u.task.spec_len = 4;
    return c;
}

static struct fsm_cmd unit_cmd(int type, const char *task, const char *node, uint64_t token)
{
    struct fsm_cmd c = {0};
    c.type = type;
    c.u.unit.task = task;
    c.u.unit.tasklen = strlen(task);
    c.u.unit.node = node;
    c.u.unit.nodelen = node != NULL ? strlen(node) : 0;
    c.u.unit.token = token;
    c.u.unit.status = STORE_ST_OK;
    return c;
}

static struct fsm_cmd lock_cmd(int type, const char *session, const char *key)
{
    struct fsm_cmd c = {0};
    c.type = type;
    c.u.lock.session = session;
    c.u.lock.slen = session != NULL ? strlen(session) : 0;
    c.u.lock.key = key;
    c.u.lock.klen = key != NULL ? strlen(key) : 0;
    c.u.lock.ttl_ms = 10000;
    c.u.lock.lock_delay_ms = 5000;
    c.u.lock.limit = 1;
    c.u.lock.wait = 1;
    return c;
}

/* ---- tests --------------------------------------------------------------- */

/* Nothing is ready while the entry's transaction is open; once it is
 * committed, every entry's effects come out in order, each once. */
TEST(effects_wait_for_the_commit)
{
    struct h h;
    struct fsm_cmd c;
    const struct fsm_effect *e;
    static const int both[] = {FSM_EFF_NODE, FSM_EFF_PLACE};
    setup(&h);
    c = node_cmd("n1");
    apply_ahead(&h, &c, 1); /* entry 2 of a run of commits ending at 3 */
    CHECK_EQ_INT(h.n_seen, 0);
    CHECK_EQ_INT(fsm_effects_take(&h.fsm, &e), 0);
    c = submit_cmd("t1");
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK); /* entry 3: committed, delivered */
    expect(&h, 0, both, 2);
    CHECK_EQ_STR(h.seen[0].name, "n1");
    CHECK_EQ_INT(h.seen[0].index, 2);
    CHECK_EQ_STR(h.seen[1].name, "t1");
    CHECK_EQ_INT(h.seen[1].index, 3);
    CHECK_EQ_INT(fsm_effects_take(&h.fsm, &e), 0);

    /* rg_apply_flush delivers what an open transaction held. */
    c = node_cmd("n2");
    apply_ahead(&h, &c, 5);
    CHECK_EQ_INT(h.n_seen, 2);
    rg_apply_flush(&h.apply);
    CHECK_EQ_INT(h.n_seen, 3);
    CHECK_EQ_STR(h.seen[2].name, "n2");

    /* So does raft's snapshot, which flushes before it dumps the store, and
     * a restore, which flushes before it loads one: nothing waits for the
     * next apply. */
    {
        struct raft_buffer *bufs = NULL, copy;
        unsigned n_bufs = 0;
        c = node_cmd("n3");
        apply_ahead(&h, &c, 5);
        CHECK_EQ_INT(h.n_seen, 3);
        REQUIRE(h.apply.rf.snapshot(&h.apply.rf, &bufs, &n_bufs) == 0);
        CHECK_EQ_INT(h.n_seen, 4);
        CHECK_EQ_STR(h.seen[3].name, "n3");
        REQUIRE(n_bufs == 1);
        copy.len = bufs[0].len;
        copy.base = raft_malloc(copy.len);
        REQUIRE(copy.base != NULL);
        memcpy(copy.base, bufs[0].base, copy.len);
        CHECK_EQ_INT(h.apply.rf.snapshot_finalize(&h.apply.rf, &bufs, &n_bufs), 0);
        c = node_cmd("n4");
        apply_ahead(&h, &c, 5);
        CHECK_EQ_INT(h.n_seen, 4);
        CHECK_EQ_INT(h.apply.rf.restore(&h.apply.rf, &copy), 0); /* older: skipped, but flushed */
        CHECK_EQ_INT(h.n_seen, 5);
        CHECK_EQ_STR(h.seen[4].name, "n4");
    }
    teardown(&h);
}

/* What the dispatcher is told: a placement, a node's running count, a
 * cancel; a refused command tells nothing. */
TEST(scheduling_effects)
{
    struct h h;
    struct fsm_cmd c;
    struct fsm_result r;
    unsigned from;
    static const int running[] = {FSM_EFF_NODE_RUNNING};
    static const int done[] = {FSM_EFF_NODE_RUNNING, FSM_EFF_PLACE};
    static const int cancelled[] = {FSM_EFF_TASK_CANCELLED};
    static const int place[] = {FSM_EFF_PLACE};
    setup(&h);
    c = node_cmd("n1");
    apply(&h, &c);
    c = submit_cmd("t1");
    apply(&h, &c);
    c = submit_cmd("t2");
    apply(&h, &c);

    from = h.n_seen;
    c = unit_cmd(FSM_CMD_UNIT_ASSIGN, "t1", "n1", 0);
    r = apply(&h, &c);
    CHECK_EQ_INT(r.err, FL_OK);
    expect(&h, from, running, 1);
    CHECK_EQ_STR(h.seen[from].name, "n1");

    from = h.n_seen;
    c = unit_cmd(FSM_CMD_UNIT_RESULT, "t1", NULL, r.token);
    c.u.unit.attempt = 1;
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    expect(&h, from, done, 2);
    CHECK_EQ_STR(h.seen[from].name, "n1");

    from = h.n_seen;
    c = unit_cmd(FSM_CMD_UNIT_ASSIGN, "nosuch", "n1", 0);
    CHECK(apply(&h, &c).err != FL_OK);
    CHECK_EQ_INT(h.n_seen, from); /* refused: nothing changed, nothing told */

    c = unit_cmd(FSM_CMD_TASK_CANCEL, "t2", NULL, 0);
    c.u.task.id = "t2";
    c.u.task.idlen = 2;
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    expect(&h, from, cancelled, 1);
    CHECK_EQ_STR(h.seen[from].name, "t2");

    from = h.n_seen;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_DISPATCH;
    c.u.dispatch.paused = 1;
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    expect(&h, from, place, 1);
    teardown(&h);
}

/* What the lock manager is told: leases, grants with their tokens, the
 * lock-delay, a session gone, the extension. */
TEST(lock_effects)
{
    struct h h;
    struct fsm_cmd c;
    struct fsm_result r;
    unsigned from;
    static const int session[] = {FSM_EFF_SESSION};
    static const int granted[] = {FSM_EFF_LOCK_GRANTED};
    static const int gone[] = {FSM_EFF_LOCK_DELAY, FSM_EFF_SESSION_GONE};
    static const int extended[] = {FSM_EFF_SESSION, FSM_EFF_LEASES_EXTENDED};
    setup(&h);
    c = lock_cmd(FSM_CMD_SESSION_CREATE, "A", NULL);
    c.u.lock.name = "holder";
    c.u.lock.nlen = 6;
    apply(&h, &c);
    expect(&h, 0, session, 1);
    CHECK_EQ_STR(h.seen[0].name, "A");
    CHECK_EQ_INT(h.seen[0].ttl_ms, 10000);
    c.u.lock.session = "B";
    apply(&h, &c);

    from = h.n_seen;
    c = lock_cmd(FSM_CMD_LOCK_ACQUIRE, "A", "ns/a");
    r = apply(&h, &c);
    CHECK_EQ_INT(r.err, FL_OK);
    expect(&h, from, granted, 1);
    CHECK_EQ_STR(h.seen[from].name, "A");
    CHECK_EQ_STR(h.seen[from].key, "ns/a");
    CHECK_EQ_INT(h.seen[from].token, r.token);

    from = h.n_seen;
    c = lock_cmd(FSM_CMD_LOCK_ACQUIRE, "B", "ns/a");
    CHECK_EQ_INT(apply(&h, &c).token, 0); /* queued */
    CHECK_EQ_INT(h.n_seen, from);

    /* A's session expires: its locks are left first (B's wait is held back
     * by the lock-delay), then the session is gone. */
    c = lock_cmd(FSM_CMD_SESSION_EXPIRE, "A", NULL);
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    expect(&h, from, gone, 2);
    CHECK_EQ_STR(h.seen[from].key, "ns/a");
    CHECK(h.seen[from].until_ms > 0);
    CHECK_EQ_STR(h.seen[from + 1].name, "A");

    from = h.n_seen;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_LEASE_EXTEND;
    apply(&h, &c);
    expect(&h, from, extended, 2);
    CHECK_EQ_STR(h.seen[from].name, "B");
    CHECK_EQ_INT(h.seen[from].renewals, 1);
    teardown(&h);
}

/* What the cron clock is told: a job changed, a job deleted. Two
 * subscribers see every effect, in the order they subscribed; one that
 * unsubscribed sees nothing more. */
TEST(job_effects_and_subscribers)
{
    struct h h;
    struct fsm_cmd c;
    struct fl_buf def;
    unsigned from;
    static const int job[] = {FSM_EFF_JOB};
    setup(&h);
    CHECK_OK(rg_apply_subscribe(&h.apply, second, &h));
    fx_job_put(&c, &def, "tick", "h0", 1000, STORE_OVERLAP_ALLOW, STORE_MISFIRE_RUN_ONCE);
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    expect(&h, 0, job, 1);
    CHECK_EQ_STR(h.seen[0].name, "tick");
    CHECK_EQ_INT(h.seen[0].deleted, 0);
    CHECK_EQ_INT(h.n_second, 1);

    rg_apply_unsubscribe(&h.apply, second, &h);
    from = h.n_seen;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_JOB_DEL;
    c.u.job.name = "tick";
    c.u.job.nlen = 4;
    CHECK_EQ_INT(apply(&h, &c).err, FL_OK);
    expect(&h, from, job, 1);
    CHECK_EQ_INT(h.seen[from].deleted, 1);
    CHECK_EQ_INT(h.n_second, 1);
    fl_buf_close(&def);
    teardown(&h);
}

int main(void)
{
    RUN(effects_wait_for_the_commit);
    RUN(scheduling_effects);
    RUN(lock_effects);
    RUN(job_effects_and_subscribers);
    return check_summary();
}
