/* The scheduling commands applied by the FSM on a real store: splitting,
 * caps enforced at apply, fencing tokens, results, stale results, retries,
 * node loss, cancel and the rollout controls (docs/SCHEDULER.md). */
#include <msgpack.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "store/store.h"

/* The two numbers of raft's state the state machine is given with an entry. */
struct log_pos {
    uint64_t last_applied;
    uint64_t commit_index;
};
struct entry_buf {
    void *base;
    size_t len;
};

struct h {
    char dir[256];
    struct store *store;
    struct fsm fsm;
    struct log_pos raft; /* what raft would report: last_applied, commit_index */
    struct fsm_result last[8];
};

static void results_cb(void *data, uint64_t seq, uint64_t term, uint64_t index,
                       const struct fsm_result *res, unsigned n)
{
    struct h *h = data;
    memcpy(h->last, res, sizeof *res * (n > 8 ? 8 : n));
}

static void setup(struct h *h)
{
    memset(h, 0, sizeof *h);
    REQUIRE(check_tmpdir(h->dir, sizeof h->dir) != NULL);
    CHECK_OK(store_open(h->dir, NULL, &h->store, NULL));
    CHECK_OK(fsm_init(&h->fsm, h->store, 1));
    h->fsm.results_cb = results_cb;
    h->fsm.results_data = h;
    h->raft.last_applied = 1;
}

static void teardown(struct h *h)
{
    fsm_close(&h->fsm);
    store_close(h->store);
    check_rmrf(h->dir);
}

/* Apply n commands as one entry; the results go to h->last (at most 8). */
static void apply_entry(struct h *h, const struct fsm_cmd *cmds, unsigned n)
{
    struct fsm_entry_writer w;
    struct entry_buf buf;
    fsm_writer_init(&w);
    for (unsigned i = 0; i < n; i++) {
        CHECK_OK(fsm_writer_add(&w, &cmds[i]));
    }
    CHECK_OK(fsm_writer_finish(&w, 1, h->raft.last_applied, 1, 1000 + h->raft.last_applied,
                               fl_malloc, &buf.base, &buf.len));
    fsm_writer_close(&w);
    h->raft.commit_index = h->raft.last_applied + 1;
    memset(h->last, 0, sizeof h->last);
    fsm_apply(&h->fsm, h->raft.last_applied + 1, h->raft.commit_index, buf.base, buf.len);
    h->raft.last_applied++;
    fl_free(buf.base);
}

/* Apply one command as its own entry; returns its result. */
static struct fsm_result apply1(struct h *h, const struct fsm_cmd *c)
{
    apply_entry(h, c, 1);
    return h->last[0];
}

static void add_node(struct h *h, const char *id, uint32_t cap)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_NODE_REGISTER;
    c.u.node.id = id;
    c.u.node.idlen = strlen(id);
    c.u.node.kind = STORE_NODE_AGENT;
    c.u.node.cap = cap;
    CHECK_EQ_INT(apply1(h, &c).err, FL_OK);
}

static struct fsm_result submit(struct h *h, const char *id, unsigned n_hosts, unsigned unit_size,
                                unsigned retries, const char *idem)
{
    static char names[200][16];
    static const char *ptrs[200];
    struct fsm_cmd c = {0};
    for (unsigned i = 0; i < n_hosts; i++) {
        snprintf(names[i], sizeof names[i], "h%03u", i);
        ptrs[i] = names[i];
    }
    c.type = FSM_CMD_TASK_SUBMIT;
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

static struct fsm_result assign(struct h *h, const char *task, uint32_t unit, uint32_t attempt,
                                const char *node)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_UNIT_ASSIGN;
    c.u.unit.task = task;
    c.u.unit.tasklen = strlen(task);
    c.u.unit.unit = unit;
    c.u.unit.attempt = attempt;
    c.u.unit.node = node;
    c.u.unit.nodelen = strlen(node);
    return apply1(h, &c);
}

static struct fsm_result result(struct h *h, const char *task, uint32_t unit, uint32_t attempt,
                                uint64_t token, int status)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_UNIT_RESULT;
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
    fsm_flush(&h->fsm);
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
    fsm_flush(&h->fsm);
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
    fsm_flush(&h->fsm);
    CHECK_OK(store_begin(h->store, 0, &t));
    CHECK_OK(store_cursor_open(t, STORE_QUEUE, NULL, 0, &c));
    while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        n++;
    }
    store_cursor_close(c);
    store_abort(t);
    return n;
}

static struct fsm_cmd assign_cmd(const char *task, uint32_t unit, const char *node)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_UNIT_ASSIGN;
    c.u.unit.task = task;
    c.u.unit.tasklen = strlen(task);
    c.u.unit.unit = unit;
    c.u.unit.node = node;
    c.u.unit.nodelen = strlen(node);
    return c;
}

/* One entry of unit commands keeps its task and node records decoded
 * (fsm/recs.c): each command still sees the one before it, a command of
 * another kind in the middle sees them all, and the store holds them all
 * after the entry. */
TEST(a_run_of_unit_commands_in_one_entry)
{
    struct h h;
    struct fsm_cmd c[8];
    struct store_task t;
    setup(&h);
    add_node(&h, "a", 2);
    add_node(&h, "b", 1);
    submit(&h, "t", 8, 1, 0, "");
    c[0] = assign_cmd("t", 0, "a");
    c[1] = assign_cmd("t", 1, "a");
    c[2] = assign_cmd("t", 2, "b");
    c[3] = assign_cmd("t", 3, "b"); /* b is full */
    memset(&c[4], 0, sizeof c[4]);  /* a's cap raised: it reads a's running count */
    c[4].type = FSM_CMD_NODE_CAP;
    c[4].u.node.id = "a";
    c[4].u.node.idlen = 1;
    c[4].u.node.cap = 4;
    c[5] = assign_cmd("t", 3, "a");
    c[6] = assign_cmd("t", 4, "a");
    c[7] = assign_cmd("t", 5, "a"); /* a is full at 4 */
    apply_entry(&h, c, 8);
    CHECK_EQ_INT(h.last[0].err, FL_OK);
    CHECK_EQ_INT(h.last[1].err, FL_OK);
    CHECK_EQ_INT(h.last[2].err, FL_OK);
    CHECK_EQ_INT(h.last[3].err, FL_EBUSY);
    CHECK_EQ_INT(h.last[4].err, FL_OK);
    CHECK_EQ_INT(h.last[5].err, FL_OK);
    CHECK_EQ_INT(h.last[6].err, FL_OK);
    CHECK_EQ_INT(h.last[7].err, FL_EBUSY);
    CHECK(h.last[1].token == h.last[0].token + 1);
    CHECK_EQ_INT(node_of(&h, "a").running, 4);
    CHECK_EQ_INT(node_of(&h, "a").cap, 4);
    CHECK_EQ_INT(node_of(&h, "b").running, 1);
    t = task_of(&h, "t");
    CHECK_EQ_INT(t.units_running, 5);
    CHECK_EQ_INT(t.units_queued, 3);
    CHECK_EQ_INT(t.state, STORE_TASK_RUNNING);
    CHECK_EQ_INT(queue_len(&h), 3);

    /* Results for a and b, a cancel between them, more results after. */
    {
        struct fsm_cmd r[4];
        uint64_t tok0 = h.last[0].token, tok2 = h.last[2].token, tok5 = h.last[5].token;
        memset(r, 0, sizeof r);
        for (int i = 0; i < 4; i++) {
            r[i].type = FSM_CMD_UNIT_RESULT;
            r[i].u.unit.task = "t";
            r[i].u.unit.tasklen = 1;
            r[i].u.unit.attempt = 1;
            r[i].u.unit.status = STORE_ST_OK;
        }
        r[0].u.unit.unit = 0;
        r[0].u.unit.token = tok0;
        r[1].u.unit.unit = 2;
        r[1].u.unit.token = tok2;
        r[2].type = FSM_CMD_TASK_CANCEL; /* reads the task: 2 done, 3 running */
        r[2].u.task.id = "t";
        r[2].u.task.idlen = 1;
        r[3].u.unit.unit = 3;
        r[3].u.unit.token = tok5;
        r[3].u.unit.status = STORE_ST_CANCELLED;
        apply_entry(&h, r, 4);
        CHECK_EQ_INT(h.last[0].err, FL_OK);
        CHECK_EQ_INT(h.last[1].err, FL_OK);
        CHECK_EQ_INT(h.last[2].err, FL_OK);
        CHECK_EQ_INT(h.last[3].err, FL_OK);
    }
    CHECK_EQ_INT(node_of(&h, "a").running, 2);
    CHECK_EQ_INT(node_of(&h, "b").running, 0);
    t = task_of(&h, "t");
    CHECK_EQ_INT(t.units_done, 3 + 3); /* three results, three queued units cancelled */
    CHECK_EQ_INT(t.units_running, 2);
    CHECK_EQ_INT(t.units_queued, 0);
    CHECK(t.cancel_requested);
    /* A result without host results counts its host as an error. */
    CHECK_EQ_INT(t.hosts_by_status[STORE_ST_ERROR], 3);
    CHECK_EQ_INT(t.hosts_by_status[STORE_ST_CANCELLED], 3);
    CHECK_EQ_INT(t.spec_len, 4);
    CHECK_EQ_INT(queue_len(&h), 0);
    teardown(&h);
}

/* More nodes in one entry than fsm/recs.c keeps at once: the kept ones are
 * written back and read again, and no count is lost. */
TEST(a_run_over_more_nodes_than_are_kept)
{
    struct h h;
    struct fsm_cmd c[21];
    char names[20][8];
    setup(&h);
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "n%02d", i);
        add_node(&h, names[i], 1);
    }
    submit(&h, "t", 21, 1, 0, "");
    for (int i = 0; i < 20; i++) {
        c[i] = assign_cmd("t", (uint32_t)i, names[i]);
    }
    c[20] = assign_cmd("t", 20, names[0]); /* n00 is full: its count came back */
    apply_entry(&h, c, 21);
    CHECK_EQ_INT(h.last[0].err, FL_OK);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ_INT(node_of(&h, names[i]).running, 1);
    }
    CHECK_EQ_INT(task_of(&h, "t").units_running, 20);
    CHECK_EQ_INT(task_of(&h, "t").units_queued, 1);
    CHECK_EQ_INT(queue_len(&h), 1);
    teardown(&h);
}

TEST(submit_splits_and_is_idempotent)
{
    struct h h;
    struct fsm_result r;
    setup(&h);
    r = submit(&h, "t1", 100, 30, 0, "key-1");
    CHECK_EQ_INT(r.err, FL_OK);
    CHECK_EQ_STR(r.task_id, "t1");
    CHECK_EQ_INT(r.units, 4);
    CHECK_EQ_INT(queue_len(&h), 4);
    /* The same idempotency key under another id returns the first task. */
    r = submit(&h, "t2", 5, 1, 0, "key-1");
    CHECK_EQ_INT(r.err, FL_EEXIST);
    CHECK_EQ_STR(r.task_id, "t1");
    CHECK_EQ_INT(queue_len(&h), 4);
    CHECK_EQ_INT(task_of(&h, "t1").n_units, 4);
    CHECK_EQ_INT(task_of(&h, "t1").units_queued, 4);
    teardown(&h);
}

TEST(cap_is_enforced_at_apply_and_tokens_increase)
{
    struct h h;
    struct fsm_result r;
    uint64_t last = 0;
    setup(&h);
    add_node(&h, "n1", 2);
    submit(&h, "t", 5, 1, 0, "");
    for (uint32_t u = 0; u < 2; u++) {
        r = assign(&h, "t", u, 0, "n1");
        CHECK_EQ_INT(r.err, FL_OK);
        CHECK(r.token > last);
        last = r.token;
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
    CHECK(r.token > last);
    /* Cap 0 drains; the drain flag too. */
    {
        struct fsm_cmd c = {0};
        c.type = FSM_CMD_NODE_CAP;
        c.u.node.id = "n1";
        c.u.node.idlen = 2;
        c.u.node.cap = 0;
        apply1(&h, &c);
        CHECK_EQ_INT(assign(&h, "t", 3, 0, "n1").err, FL_EBUSY);
        c.u.node.cap = 10;
        apply1(&h, &c);
        c.type = FSM_CMD_NODE_DRAIN;
        c.u.node.drain = 1;
        apply1(&h, &c);
        CHECK_EQ_INT(assign(&h, "t", 3, 0, "n1").err, FL_EBUSY);
    }
    teardown(&h);
}

TEST(stale_results_change_nothing)
{
    struct h h;
    struct fsm_result a1, a2;
    setup(&h);
    add_node(&h, "n1", 4);
    add_node(&h, "n2", 4);
    submit(&h, "t", 1, 1, 1, "");
    a1 = assign(&h, "t", 0, 0, "n1");
    /* n1 is lost: the unit goes back to the queue (one retry left). */
    {
        struct fsm_cmd c = {0};
        c.type = FSM_CMD_NODE_LOST;
        c.u.node.id = "n1";
        c.u.node.idlen = 2;
        CHECK_EQ_INT(apply1(&h, &c).err, FL_OK);
    }
    CHECK_EQ_INT(node_of(&h, "n1").lost, 1);
    CHECK_EQ_INT(node_of(&h, "n1").running, 0);
    CHECK_EQ_INT(queue_len(&h), 1);
    a2 = assign(&h, "t", 0, 1, "n2");
    CHECK_EQ_INT(a2.err, FL_OK);
    CHECK(a2.token > a1.token);
    /* n1's late result carries the old token: stale. */
    CHECK_EQ_INT(result(&h, "t", 0, 1, a1.token, STORE_ST_OK).err, FL_ECONFLICT);
    CHECK_EQ_INT(task_of(&h, "t").stale_results, 1);
    CHECK_EQ_INT(task_of(&h, "t").units_running, 1);
    CHECK_EQ_INT(result(&h, "t", 0, 2, a2.token, STORE_ST_OK).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_FAILED); /* no host result sent: error */
    CHECK_EQ_INT(task_of(&h, "t").units_done, 1);
    teardown(&h);
}

TEST(retries_then_failure)
{
    struct h h;
    struct fsm_result a;
    setup(&h);
    add_node(&h, "n1", 4);
    submit(&h, "t", 2, 2, 1, "");
    a = assign(&h, "t", 0, 0, "n1");
    CHECK_EQ_INT(result(&h, "t", 0, 1, a.token, STORE_ST_FAILED).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").units_queued, 1); /* retried */
    a = assign(&h, "t", 0, 1, "n1");
    CHECK_EQ_INT(a.err, FL_OK);
    CHECK_EQ_INT(result(&h, "t", 0, 2, a.token, STORE_ST_FAILED).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").units_done, 1);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_FAILED);
    CHECK_EQ_INT(task_of(&h, "t").hosts_by_status[STORE_ST_ERROR], 2);
    teardown(&h);
}

TEST(cancel_and_pause)
{
    struct h h;
    struct fsm_cmd c = {0};
    struct fsm_result a;
    setup(&h);
    add_node(&h, "n1", 4);
    submit(&h, "t", 3, 1, 0, "");
    a = assign(&h, "t", 0, 0, "n1");
    c.type = FSM_CMD_TASK_CANCEL;
    c.u.task.id = "t";
    c.u.task.idlen = 1;
    CHECK_EQ_INT(apply1(&h, &c).err, FL_OK);
    CHECK_EQ_INT(queue_len(&h), 0);
    CHECK_EQ_INT(task_of(&h, "t").hosts_by_status[STORE_ST_CANCELLED], 2);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_RUNNING);
    CHECK_EQ_INT(result(&h, "t", 0, 1, a.token, STORE_ST_CANCELLED).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").state, STORE_TASK_CANCELLED);
    /* Dispatch paused: no assignment is accepted. */
    submit(&h, "u", 1, 1, 0, "");
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_DISPATCH;
    c.u.dispatch.paused = 1;
    apply1(&h, &c);
    CHECK_EQ_INT(assign(&h, "u", 0, 0, "n1").err, FL_EBUSY);
    c.u.dispatch.paused = 0;
    apply1(&h, &c);
    CHECK_EQ_INT(assign(&h, "u", 0, 0, "n1").err, FL_OK);
    teardown(&h);
}

/* A task with the rollout controls; hosts given by the caller. */
static struct fsm_result submit_ctl(struct h *h, const char *id, const char *const *hosts,
                                    unsigned n_hosts, unsigned retries, uint32_t max_running,
                                    uint32_t fail_stop, int placement)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_TASK_SUBMIT;
    c.u.task.id = id;
    c.u.task.idlen = strlen(id);
    c.u.task.n_hosts = n_hosts;
    c.u.task.host_ptrs = hosts;
    c.u.task.unit_size = 1;
    c.u.task.retries = retries;
    c.u.task.spec = (const uint8_t *)"spec";
    c.u.task.spec_len = 4;
    c.u.task.max_running = max_running;
    c.u.task.fail_stop = fail_stop;
    c.u.task.placement = (uint8_t)placement;
    return apply1(h, &c);
}

/* The result of a one-host unit, with that host's own outcome. */
static struct fsm_result result1(struct h *h, const char *task, uint32_t unit, uint64_t token,
                                 const char *host, int status)
{
    struct fsm_host_result hr = {host, strlen(host), status, status == STORE_ST_OK ? 0 : 1, NULL,
                                 0};
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_UNIT_RESULT;
    c.u.unit.task = task;
    c.u.unit.tasklen = strlen(task);
    c.u.unit.unit = unit;
    c.u.unit.token = token;
    c.u.unit.status = status;
    c.u.unit.exit_code = hr.rc;
    c.u.unit.n_results = 1;
    c.u.unit.result_ptrs = &hr;
    return apply1(h, &c);
}

static struct store_unit unit_of(struct h *h, const char *task, uint32_t unit)
{
    struct store_txn *t;
    struct store_unit u;
    memset(&u, 0, sizeof u);
    fsm_flush(&h->fsm);
    CHECK_OK(store_begin(h->store, 0, &t));
    CHECK_OK(store_unit_get(t, task, unit, &u));
    u.hosts = NULL; /* points into the ended transaction */
    u.hosts_len = 0;
    store_abort(t);
    return u;
}

static const char *const four[] = {"h000", "h001", "h002", "h003"};

TEST(max_running_is_enforced_at_apply)
{
    struct h h;
    struct fsm_result a0, a1;
    setup(&h);
    add_node(&h, "n1", 10);
    CHECK_EQ_INT(submit_ctl(&h, "t", four, 4, 0, 2, 0, FSM_PLACE_ANY).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "t").max_running, 2);
    a0 = assign(&h, "t", 0, 0, "n1");
    a1 = assign(&h, "t", 1, 0, "n1");
    CHECK_EQ_INT(a0.err, FL_OK);
    CHECK_EQ_INT(a1.err, FL_OK);
    /* A third running unit is refused by every replica, whatever the node's cap. */
    CHECK_EQ_INT(assign(&h, "t", 2, 0, "n1").err, FL_EBUSY);
    CHECK_EQ_INT(task_of(&h, "t").units_running, 2);
    CHECK_EQ_INT(task_of(&h, "t").units_queued, 2);
    CHECK_EQ_INT(node_of(&h, "n1").running, 2);
    /* A result frees a place. */
    CHECK_EQ_INT(result1(&h, "t", 0, a0.token, "h000", STORE_ST_OK).err, FL_OK);
    CHECK_EQ_INT(assign(&h, "t", 2, 0, "n1").err, FL_OK);
    CHECK_EQ_INT(assign(&h, "t", 3, 0, "n1").err, FL_EBUSY);
    CHECK_EQ_INT(task_of(&h, "t").units_running, 2);
    /* Another task is not limited by it. */
    submit(&h, "free", 3, 1, 0, "");
    for (uint32_t u = 0; u < 3; u++) {
        CHECK_EQ_INT(assign(&h, "free", u, 0, "n1").err, FL_OK);
    }
    teardown(&h);
}

TEST(fail_stop_cancels_the_queued_units)
{
    struct h h;
    struct fsm_result a0, a1;
    struct store_task k;
    setup(&h);
    add_node(&h, "n1", 10);
    submit_ctl(&h, "t", four, 4, 0, 2, 1, FSM_PLACE_ANY);
    a0 = assign(&h, "t", 0, 0, "n1");
    a1 = assign(&h, "t", 1, 0, "n1");
    CHECK_EQ_INT(task_of(&h, "t").stopped, 0);
    CHECK_EQ_INT(result1(&h, "t", 0, a0.token, "h000", STORE_ST_FAILED).err, FL_OK);
    k = task_of(&h, "t");
    CHECK_EQ_INT(k.stopped, 1);
    CHECK_EQ_INT(k.hosts_by_status[STORE_ST_FAILED], 1);
    CHECK_EQ_INT(k.hosts_by_status[STORE_ST_CANCELLED], 2);
    CHECK_EQ_INT(k.units_queued, 0);
    CHECK_EQ_INT(k.units_running, 1); /* runs to completion */
    CHECK_EQ_INT(k.units_done, 3);
    CHECK_EQ_INT(k.state, STORE_TASK_RUNNING);
    CHECK_EQ_INT(k.cancel_requested, 0);
    CHECK_EQ_INT(queue_len(&h), 0);
    CHECK_EQ_INT(unit_of(&h, "t", 2).state, STORE_UNIT_DONE);
    CHECK_EQ_INT(unit_of(&h, "t", 3).status, STORE_ST_CANCELLED);
    CHECK_EQ_INT(unit_of(&h, "t", 1).state, STORE_UNIT_RUNNING);
    CHECK_EQ_INT(unit_of(&h, "t", 1).cancel, 0);
    CHECK_EQ_INT(assign(&h, "t", 2, 0, "n1").err, FL_ECONFLICT);
    CHECK_EQ_INT(result1(&h, "t", 1, a1.token, "h001", STORE_ST_OK).err, FL_OK);
    k = task_of(&h, "t");
    CHECK_EQ_INT(k.units_done, 4);
    CHECK_EQ_INT(k.state, STORE_TASK_FAILED); /* stopped, not cancelled */
    CHECK_EQ_INT(k.hosts_by_status[STORE_ST_OK], 1);
    CHECK(k.finished_ms > 0);
    teardown(&h);
}

TEST(fail_stop_counts_finished_hosts_only)
{
    static const char *const three[] = {"h000", "h001", "h002"};
    struct h h;
    struct fsm_result a0, a1;
    struct store_task k;
    setup(&h);
    add_node(&h, "n1", 10);
    submit_ctl(&h, "t", three, 3, 1, 0, 1, FSM_PLACE_ANY);
    a0 = assign(&h, "t", 0, 0, "n1");
    a1 = assign(&h, "t", 1, 0, "n1");
    /* A unit that will be retried has not finished: it does not count. */
    CHECK_EQ_INT(result1(&h, "t", 0, a0.token, "h000", STORE_ST_FAILED).err, FL_OK);
    k = task_of(&h, "t");
    CHECK_EQ_INT(k.stopped, 0);
    CHECK_EQ_INT(k.units_queued, 2);
    CHECK_EQ_INT(queue_len(&h), 2);
    /* Its second failure finishes it: the task stops. */
    a0 = assign(&h, "t", 0, 1, "n1");
    CHECK_EQ_INT(a0.err, FL_OK);
    CHECK_EQ_INT(result1(&h, "t", 0, a0.token, "h000", STORE_ST_TIMEOUT).err, FL_OK);
    k = task_of(&h, "t");
    CHECK_EQ_INT(k.stopped, 1);
    CHECK_EQ_INT(k.hosts_by_status[STORE_ST_TIMEOUT], 1);
    CHECK_EQ_INT(k.hosts_by_status[STORE_ST_CANCELLED], 1);
    CHECK_EQ_INT(queue_len(&h), 0);
    /* After the stop, a running unit that fails is not retried. */
    CHECK_EQ_INT(result1(&h, "t", 1, a1.token, "h001", STORE_ST_FAILED).err, FL_OK);
    k = task_of(&h, "t");
    CHECK_EQ_INT(k.units_done, 3);
    CHECK_EQ_INT(k.state, STORE_TASK_FAILED);
    CHECK_EQ_INT(unit_of(&h, "t", 1).retries_left, 1);
    CHECK_EQ_INT(unit_of(&h, "t", 1).status, STORE_ST_FAILED);
    /* Nor is one whose node is lost: it finishes as lost. */
    add_node(&h, "n2", 10);
    submit_ctl(&h, "l", four, 4, 1, 0, 1, FSM_PLACE_ANY);
    a0 = assign(&h, "l", 0, 0, "n1");
    a1 = assign(&h, "l", 1, 0, "n2");
    CHECK_EQ_INT(result1(&h, "l", 0, a0.token, "h000", STORE_ST_UNREACHABLE).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "l").stopped, 0); /* retried */
    a0 = assign(&h, "l", 0, 1, "n1");
    CHECK_EQ_INT(result1(&h, "l", 0, a0.token, "h000", STORE_ST_UNREACHABLE).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "l").stopped, 1);
    {
        struct fsm_cmd c = {0};
        c.type = FSM_CMD_NODE_LOST;
        c.u.node.id = "n2";
        c.u.node.idlen = 2;
        CHECK_EQ_INT(apply1(&h, &c).err, FL_OK);
    }
    k = task_of(&h, "l");
    CHECK_EQ_INT(k.state, STORE_TASK_FAILED);
    CHECK_EQ_INT(k.hosts_by_status[STORE_ST_LOST], 1);
    CHECK_EQ_INT(k.hosts_by_status[STORE_ST_CANCELLED], 2);
    CHECK_EQ_INT(queue_len(&h), 0);
    /* Cancelled hosts do not count either. */
    submit_ctl(&h, "c", four, 4, 0, 0, 1, FSM_PLACE_ANY);
    a0 = assign(&h, "c", 0, 0, "n1");
    {
        struct fsm_cmd c = {0};
        c.type = FSM_CMD_TASK_CANCEL;
        c.u.task.id = "c";
        c.u.task.idlen = 1;
        CHECK_EQ_INT(apply1(&h, &c).err, FL_OK);
    }
    CHECK_EQ_INT(result1(&h, "c", 0, a0.token, "h000", STORE_ST_CANCELLED).err, FL_OK);
    k = task_of(&h, "c");
    CHECK_EQ_INT(k.stopped, 0);
    CHECK_EQ_INT(k.state, STORE_TASK_CANCELLED);
    teardown(&h);
}

TEST(pinned_unit_runs_on_its_node_only)
{
    static const char *const nodes[] = {"n1", "n2"};
    struct h h;
    setup(&h);
    add_node(&h, "n1", 4);
    add_node(&h, "n2", 4);
    CHECK_EQ_INT(submit_ctl(&h, "p", nodes, 2, 0, 0, 0, FSM_PLACE_HOST).err, FL_OK);
    CHECK_EQ_INT(task_of(&h, "p").placement, FSM_PLACE_HOST);
    CHECK_EQ_INT(assign(&h, "p", 0, 0, "n2").err, FL_EINVAL);
    CHECK_EQ_INT(unit_of(&h, "p", 0).state, STORE_UNIT_QUEUED);
    CHECK_EQ_INT(node_of(&h, "n2").running, 0);
    CHECK_EQ_INT(assign(&h, "p", 0, 0, "n1").err, FL_OK);
    CHECK_EQ_INT(assign(&h, "p", 1, 0, "n1").err, FL_EINVAL);
    CHECK_EQ_INT(assign(&h, "p", 1, 0, "n2").err, FL_OK);
    CHECK_EQ_STR(unit_of(&h, "p", 1).node, "n2");
    teardown(&h);
}

TEST(rollout_controls_validation)
{
    static const char *const nodes[] = {"n1", "n2"};
    static const char *const slash[] = {"n1", "rack/n2"};
    static char longest[STORE_NODE_ID_MAX + 1];
    static const char *const too_long[] = {longest};
    struct fsm_cmd c = {0};
    char why[FL_ERRMSG_SIZE];
    struct h h;
    memset(longest, 'x', STORE_NODE_ID_MAX);
    c.type = FSM_CMD_TASK_SUBMIT;
    c.u.task.id = "v";
    c.u.task.idlen = 1;
    c.u.task.n_hosts = 2;
    c.u.task.host_ptrs = nodes;
    c.u.task.unit_size = 1;
    c.u.task.placement = FSM_PLACE_HOST;
    c.u.task.max_running = FSM_MAX_RUNNING_MAX;
    c.u.task.fail_stop = FSM_TASK_HOSTS_MAX;
    CHECK_OK(fsm_cmd_validate(&c, why));
    c.u.task.max_running = FSM_MAX_RUNNING_MAX + 1;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    c.u.task.max_running = 1;
    c.u.task.fail_stop = FSM_TASK_HOSTS_MAX + 1;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    c.u.task.fail_stop = 1;
    c.u.task.placement = 2;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    c.u.task.placement = FSM_PLACE_HOST;
    c.u.task.unit_size = 2;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    CHECK(strstr(why, "unit_size") != NULL);
    c.u.task.unit_size = 1;
    c.u.task.host_ptrs = slash;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    CHECK(strstr(why, "node id") != NULL);
    c.u.task.n_hosts = 1;
    c.u.task.host_ptrs = too_long;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    longest[STORE_NODE_ID_MAX - 1] = '\0'; /* 63 bytes: a node id */
    CHECK_OK(fsm_cmd_validate(&c, why));
    /* The same hosts are fine for a task placed anywhere. */
    c.u.task.placement = FSM_PLACE_ANY;
    c.u.task.n_hosts = 2;
    c.u.task.host_ptrs = slash;
    c.u.task.unit_size = 5;
    CHECK_OK(fsm_cmd_validate(&c, why));
    /* Every replica refuses what the leader should have: nothing is created. */
    setup(&h);
    c.u.task.placement = FSM_PLACE_HOST;
    CHECK_EQ_INT(apply1(&h, &c).err, FL_EINVAL);
    CHECK_EQ_INT(queue_len(&h), 0);
    teardown(&h);
}

/* A task record as format 1 wrote it (21 fields, no rollout controls), or
 * with other field counts and versions. */
static void pack_task_v1(msgpack_sbuffer *sb, const struct store_task *k, uint32_t fields,
                         uint64_t format)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, fields);
    msgpack_pack_uint64(&pk, format);
    msgpack_pack_str_with_body(&pk, k->id, strlen(k->id));
    msgpack_pack_str_with_body(&pk, k->name, strlen(k->name));
    msgpack_pack_uint64(&pk, (uint64_t)k->state);
    msgpack_pack_uint64(&pk, (uint64_t)((int64_t)k->priority + 2147483648LL));
    msgpack_pack_uint64(&pk, k->seq);
    msgpack_pack_uint64(&pk, k->unit_size);
    msgpack_pack_uint64(&pk, k->n_hosts);
    msgpack_pack_uint64(&pk, k->n_units);
    msgpack_pack_uint64(&pk, k->timeout_ms);
    msgpack_pack_uint64(&pk, k->retries);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_bin_with_body(&pk, "spec", 4);
    msgpack_pack_uint64(&pk, k->created_ms);
    msgpack_pack_uint64(&pk, k->finished_ms);
    msgpack_pack_false(&pk);
    msgpack_pack_uint64(&pk, k->units_queued);
    msgpack_pack_uint64(&pk, k->units_running);
    msgpack_pack_uint64(&pk, k->units_done);
    msgpack_pack_array(&pk, STORE_ST__MAX);
    for (int i = 0; i < STORE_ST__MAX; i++) {
        msgpack_pack_uint64(&pk, k->hosts_by_status[i]);
    }
    msgpack_pack_uint64(&pk, k->stale_results);
    for (uint32_t i = 21; i < fields; i++) { /* format 2: 0, 0, 0, false */
        if (i == 24) {
            msgpack_pack_false(&pk);
        } else {
            msgpack_pack_uint64(&pk, 0);
        }
    }
}

TEST(format_1_task_record_still_reads)
{
    struct h h;
    struct store_txn *t;
    struct store_task k, back;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const void *v;
    size_t vl, off = 0;
    setup(&h);
    add_node(&h, "n1", 10);
    submit(&h, "old", 3, 1, 0, "");
    k = task_of(&h, "old");
    k.spec = NULL;
    /* Written before the rollout controls existed. */
    pack_task_v1(&sb, &k, 21, 1);
    CHECK_OK(store_task_decode(sb.data, sb.size, &back));
    CHECK_EQ_STR(back.id, "old");
    CHECK_EQ_INT(back.n_units, 3);
    CHECK_EQ_INT(back.units_queued, 3);
    CHECK_EQ_INT(back.spec_len, 4);
    CHECK_EQ_INT(back.max_running, 0);
    CHECK_EQ_INT(back.fail_stop, 0);
    CHECK_EQ_INT(back.placement, 0);
    CHECK_EQ_INT(back.stopped, 0);
    fsm_flush(&h.fsm);
    CHECK_OK(store_begin(h.store, 1, &t));
    CHECK_OK(store_put(t, STORE_TASKS, "old", 3, sb.data, sb.size));
    CHECK_OK(store_commit(t));
    msgpack_sbuffer_destroy(&sb);
    /* The state machine goes on with it (no limit), and writes format 2. */
    for (uint32_t i = 0; i < 3; i++) {
        CHECK_EQ_INT(assign(&h, "old", i, 0, "n1").err, FL_OK);
    }
    CHECK_EQ_INT(task_of(&h, "old").units_running, 3);
    CHECK_OK(store_begin(h.store, 0, &t));
    CHECK_OK(store_get(t, STORE_TASKS, "old", 3, &v, &vl));
    msgpack_unpacked_init(&u);
    REQUIRE(msgpack_unpack_next(&u, v, vl, &off) == MSGPACK_UNPACK_SUCCESS);
    CHECK_EQ_INT(u.data.via.array.size, 25);
    CHECK_EQ_INT(u.data.via.array.ptr[0].via.u64, 2);
    msgpack_unpacked_destroy(&u);
    store_abort(t);
    /* Anything else is refused: format 1 with 25 fields, format 2 with 21,
     * an unknown format. */
    pack_task_v1(&sb, &k, 25, 1);
    CHECK_EQ_INT(store_task_decode(sb.data, sb.size, &back), FL_EDECODE);
    msgpack_sbuffer_destroy(&sb);
    pack_task_v1(&sb, &k, 21, 2);
    CHECK_EQ_INT(store_task_decode(sb.data, sb.size, &back), FL_EDECODE);
    msgpack_sbuffer_destroy(&sb);
    pack_task_v1(&sb, &k, 25, 2);
    CHECK_OK(store_task_decode(sb.data, sb.size, &back));
    msgpack_sbuffer_destroy(&sb);
    pack_task_v1(&sb, &k, 25, 3);
    CHECK_EQ_INT(store_task_decode(sb.data, sb.size, &back), FL_EVERSION);
    msgpack_sbuffer_destroy(&sb);
    teardown(&h);
}

int main(void)
{
    RUN(submit_splits_and_is_idempotent);
    RUN(a_run_of_unit_commands_in_one_entry);
    RUN(a_run_over_more_nodes_than_are_kept);
    RUN(cap_is_enforced_at_apply_and_tokens_increase);
    RUN(stale_results_change_nothing);
    RUN(retries_then_failure);
    RUN(cancel_and_pause);
    RUN(max_running_is_enforced_at_apply);
    RUN(fail_stop_cancels_the_queued_units);
    RUN(fail_stop_counts_finished_hosts_only);
    RUN(pinned_unit_runs_on_its_node_only);
    RUN(rollout_controls_validation);
    RUN(format_1_task_record_still_reads);
    return check_summary();
}
