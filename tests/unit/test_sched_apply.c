/* The scheduling commands applied by the FSM on a real store: splitting,
 * caps enforced at apply, fencing tokens, results, stale results, retries,
 * node loss and cancel (docs/SCHEDULER.md). */
#include <raft.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "raft/rg_cmd.h"
#include "raft/rg_fsm.h"
#include "store/store.h"

struct h {
    char dir[256];
    struct store *store;
    struct rg_fsm fsm;
    struct raft raft;
    struct rg_result last[8];
};

static void results_cb(void *data, uint64_t seq, uint64_t term, uint64_t index,
                       const struct rg_result *res, unsigned n)
{
    struct h *h = data;
    memcpy(h->last, res, sizeof *res * (n > 8 ? 8 : n));
}

static void setup(struct h *h)
{
    memset(h, 0, sizeof *h);
    REQUIRE(check_tmpdir(h->dir, sizeof h->dir) != NULL);
    CHECK_OK(store_open(h->dir, NULL, &h->store, NULL));
    CHECK_OK(rg_fsm_init(&h->fsm, h->store, 1));
    rg_fsm_set_raft(&h->fsm, &h->raft);
    h->fsm.results_cb = results_cb;
    h->fsm.results_data = h;
    h->raft.last_applied = 1;
}

static void teardown(struct h *h)
{
    rg_fsm_close(&h->fsm);
    store_close(h->store);
    check_rmrf(h->dir);
}

/* Apply one command as its own entry; returns its result. */
static struct rg_result apply1(struct h *h, const struct rg_cmd *c)
{
    struct rg_entry_writer w;
    struct raft_buffer buf;
    void *result;
    rg_writer_init(&w);
    CHECK_OK(rg_writer_add(&w, c));
    CHECK_OK(rg_writer_finish(&w, 1, h->raft.last_applied, 1, 1000 + h->raft.last_applied,
                              fl_malloc, &buf.base, &buf.len));
    rg_writer_close(&w);
    h->raft.commit_index = h->raft.last_applied + 1;
    memset(h->last, 0, sizeof h->last);
    h->fsm.fsm.apply(&h->fsm.fsm, &buf, &result);
    h->raft.last_applied++;
    fl_free(buf.base);
    return h->last[0];
}

static void add_node(struct h *h, const char *id, uint32_t cap)
{
    struct rg_cmd c = {0};
    c.type = RG_CMD_NODE_REGISTER;
    c.u.node.id = id;
    c.u.node.idlen = strlen(id);
    c.u.node.kind = STORE_NODE_AGENT;
    c.u.node.cap = cap;
    CHECK_EQ_INT(apply1(h, &c).err, FL_OK);
}

static struct rg_result submit(struct h *h, const char *id, unsigned n_hosts, unsigned unit_size,
                               unsigned retries, const char *idem)
{
    static char names[200][16];
    static const char *ptrs[200];
    struct rg_cmd c = {0};
    for (unsigned i = 0; i < n_hosts; i++) {
        snprintf(names[i], sizeof names[i], "h%03u", i);
        ptrs[i] = names[i];
    }
    c.type = RG_CMD_TASK_SUBMIT;
    c.u.task.id = id;
    c.u.task.idlen = strlen(id);
    c.u.task.idem = idem;
    c.u.task.idemlen = strlen(idem);
    c.u.task.n_hosts = n_hosts;
    c.u.task.host_ptrs = ptrs;
    c.u.task.unit_size = unit_size;
    c.u.task.retries = retries;
    c.u.task.spec = (const uint8_t *)"spec";
    c.u.task.spec_len = 4;
    return apply1(h, &c);
}

static struct rg_result assign(struct h *h, const char *task, uint32_t unit, uint32_t attempt,
                               const char *node)
{
    struct rg_cmd c = {0};
    c.type = RG_CMD_UNIT_ASSIGN;
    c.u.unit.task = task;
    c.u.unit.tasklen = strlen(task);
    c.u.unit.unit = unit;
    c.u.unit.attempt = attempt;
    c.u.unit.node = node;
    c.u.unit.nodelen = strlen(node);
    return apply1(h, &c);
}

static struct rg_result result(struct h *h, const char *task, uint32_t unit, uint32_t attempt,
                               uint64_t token, int status)
{
    struct rg_cmd c = {0};
    c.type = RG_CMD_UNIT_RESULT;
    c.u.unit.task = task;
    c.u.unit.tasklen = strlen(task);
    c.u.unit.unit = unit;
    c.u.unit.attempt = attempt;
    c.u.unit.token = token;
    c.u.unit.status = status;
    return apply1(h, &c); /* no host results: every host gets `status`... as error */
}

static struct store_task task_of(struct h *h, const char *id)
{
    struct store_txn *t;
    struct store_task k;
    memset(&k, 0, sizeof k);
    rg_fsm_flush(&h->fsm);
    CHECK_OK(store_begin(h->store, 0, &t));
    CHECK_OK(store_task_get(t, id, &k));
    store_abort(t);
    return k;
}

static struct store_node node_of(struct h *h, const char *id)
{
    struct store_txn *t;
    struct store_node n;
    memset(&n, 0, sizeof n);
    rg_fsm_flush(&h->fsm);
    CHECK_OK(store_begin(h->store, 0, &t));
    CHECK_OK(store_node_get(t, id, &n));
    store_abort(t);
    return n;
}

static unsigned queue_len(struct h *h)
{
    struct store_txn *t;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    unsigned n = 0;
    rg_fsm_flush(&h->fsm);
    CHECK_OK(store_begin(h->store, 0, &t));
    CHECK_OK(store_cursor_open(t, STORE_QUEUE, NULL, 0, &c));
    while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        n++;
    }
    store_cursor_close(c);
    store_abort(t);
    return n;
}

TEST(submit_splits_and_is_idempotent)
{
    struct h h;
    struct rg_result r;
    setup(&h);
    r = submit(&h, "t1", 100, 30, 0, "key-1");
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_STR(r.str, "t1");
    CHECK_EQ_INT(r.version, 4);
    CHECK_EQ_INT(queue_len(&h), 4);
    /* The same idempotency key under another id returns the first task. */
    r = submit(&h, "t2", 5, 1, 0, "key-1");
    CHECK_EQ_INT(r.err, FL_EEXIST);
    CHECK_EQ_STR(r.str, "t1");
    CHECK_EQ_INT(queue_len(&h), 4);
    CHECK_EQ_INT(task_of(&h, "t1").n_units, 4);
    CHECK_EQ_INT(task_of(&h, "t1").units_queued, 4);
    teardown(&h);
}

TEST(cap_is_enforced_at_apply_and_tokens_increase)
{
    struct h h;
    struct rg_result r;
    uint64_t last = 0;
    setup(&h);
    add_node(&h, "n1", 2);
    submit(&h, "t", 5, 1, 0, "");
    for (uint32_t u = 0; u < 2; u++) {
        r = assign(&h, "t", u, 0, "n1");
        CHECK_EQ_INT(r.err, FL_OK);
        CHECK(r.version > last);
        last = r.version;
        CHECK_EQ_STR(r.node, "n1");
    }
    /* A third unit would exceed the cap: refused by every replica. */
    CHECK_EQ_INT(assign(&h, "t", 2, 0, "n1").err, FL_EBUSY);
    CHECK_EQ_INT(node_of(&h, "n1").running, 2);
    /* Assigning a unit twice (same attempt) is a conflict. */
    CHECK_EQ_INT(assign(&h, "t", 0, 0, "n1").err, FL_ECONFLICT);
    /* A result frees the slot. */
    CHECK_EQ_INT(result(&h, "t", 0, 1, 1, STORE_ST_OK).err, FL_OK);
    CHECK_EQ_INT(node_of(&h, "n1").running, 1);
    r = assign(&h, "t", 2, 0, "n1");
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK(r.version > last);
    /* Cap 0 drains; the drain flag too. */
    {
        struct rg_cmd c = {0};
        c.type = RG_CMD_NODE_CAP;
        c.u.node.id = "n1";
        c.u.node.idlen = 2;
        c.u.node.cap = 0;
        apply1(&h, &c);
        CHECK_EQ_INT(assign(&h, "t", 3, 0, "n1").err, FL_EBUSY);
        c.u.node.cap = 10;
        apply1(&h, &c);
        c.type = RG_CMD_NODE_DRAIN;
        c.u.node.drain = 1;
        apply1(&h, &c);
        CHECK_EQ_INT(assign(&h, "t", 3, 0, "n1").err, FL_EBUSY);
    }
    teardown(&h);
}

TEST(stale_results_change_nothing)
{
    struct h h;
    struct rg_result a1, a2;
    setup(&h);
    add_node(&h, "n1", 4);
    add_node(&h, "n2", 4);
    submit(&h, "t", 1, 1, 1, "");
    a1 = assign(&h, "t", 0, 0, "n1");
    /* n1 is lost: the unit goes back to the queue (one retry left). */
    {
        struct rg_cmd c = {0};
        c.type = RG_CMD_NODE_LOST;
        c.u.node.id = "n1";
        c.u.node.idlen = 2;
        CHECK_EQ_INT(apply1(&h, &c).err, FL_OK);
    }
    CHECK_EQ_INT(node_of(&h, "n1").lost, 1);
    CHECK_EQ_INT(node_of(&h, "n1").running, 0);
    CHECK_EQ_INT(queue_len(&h), 1);
    a2 = assign(&h, "t", 0, 1, "n2");
    CHECK_EQ_INT(a2.err, FL_OK);
    CHECK(a2.version > a1.version);
    /* n1's late result carries the old token: stale. */
    CHECK_EQ_INT(result(&h, "t", 0, 1, a1.version, STORE_ST_OK).err, FL_ECONFLICT);
    CHECK_EQ_INT(task_of(&h, "t").stale_results, 1);
    CHECK_EQ_INT(task_of(&h, "t").units_running, 1);
    CHECK_EQ_INT(result(&h, "t", 0, 2, a2.version, STORE_ST_OK).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_FAILED); /* no host result sent: error */
    CHECK_EQ_INT(task_of(&h, "t").units_done, 1);
    teardown(&h);
}

TEST(retries_then_failure)
{
    struct h h;
    struct rg_result a;
    setup(&h);
    add_node(&h, "n1", 4);
    submit(&h, "t", 2, 2, 1, "");
    a = assign(&h, "t", 0, 0, "n1");
    CHECK_EQ_INT(result(&h, "t", 0, 1, a.version, STORE_ST_FAILED).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").units_queued, 1); /* retried */
    a = assign(&h, "t", 0, 1, "n1");
    CHECK_EQ_INT(a.err, FL_OK);
    CHECK_EQ_INT(result(&h, "t", 0, 2, a.version, STORE_ST_FAILED).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").units_done, 1);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_FAILED);
    CHECK_EQ_INT(task_of(&h, "t").hosts_by_status[STORE_ST_ERROR], 2);
    teardown(&h);
}

TEST(cancel_and_pause)
{
    struct h h;
    struct rg_cmd c = {0};
    struct rg_result a;
    setup(&h);
    add_node(&h, "n1", 4);
    submit(&h, "t", 3, 1, 0, "");
    a = assign(&h, "t", 0, 0, "n1");
    c.type = RG_CMD_TASK_CANCEL;
    c.u.task.id = "t";
    c.u.task.idlen = 1;
    CHECK_EQ_INT(apply1(&h, &c).err, FL_OK);
    CHECK_EQ_INT(queue_len(&h), 0);
    CHECK_EQ_INT(task_of(&h, "t").hosts_by_status[STORE_ST_CANCELLED], 2);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_RUNNING);
    CHECK_EQ_INT(result(&h, "t", 0, 1, a.version, STORE_ST_CANCELLED).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_CANCELLED);
    /* Dispatch paused: no assignment is accepted. */
    submit(&h, "u", 1, 1, 0, "");
    memset(&c, 0, sizeof c);
    c.type = RG_CMD_DISPATCH;
    c.u.dispatch.paused = 1;
    apply1(&h, &c);
    CHECK_EQ_INT(assign(&h, "u", 0, 0, "n1").err, FL_EBUSY);
    c.u.dispatch.paused = 0;
    apply1(&h, &c);
    CHECK_EQ_INT(assign(&h, "u", 0, 0, "n1").err, FL_OK);
    teardown(&h);
}

int main(void)
{
    RUN(submit_splits_and_is_idempotent);
    RUN(cap_is_enforced_at_apply_and_tokens_increase);
    RUN(stale_results_change_nothing);
    RUN(retries_then_failure);
    RUN(cancel_and_pause);
    return check_summary();
}
