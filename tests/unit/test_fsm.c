/* The state machine driven directly: exactly-once apply, CAS, batching of
 * store transactions, results to the proposer, and storage faults.
 *
 * The harness hands each entry its index and the commit index, as
 * raft/rg_apply does from the Raft library's state. */

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

struct harness {
    char dir[256];
    struct store *store;
    struct fsm fsm;
    struct log_pos raft; /* what raft would report: last_applied, commit_index */
    struct fsm_result last[16];
    unsigned n_last;
    uint64_t last_seq;
};

static void results_cb(void *data, uint64_t seq, uint64_t term, uint64_t index,
                       const struct fsm_result *res, unsigned n)
{
    struct harness *h = data;
    h->n_last = n > 16 ? 16 : n;
    memcpy(h->last, res, sizeof *res * h->n_last);
    h->last_seq = seq;
}

static void setup(struct harness *h)
{
    memset(h, 0, sizeof *h);
    REQUIRE(check_tmpdir(h->dir, sizeof h->dir) != NULL);
    CHECK_OK(store_open(h->dir, NULL, &h->store, NULL));
    CHECK_OK(fsm_init(&h->fsm, h->store, 1));
    h->fsm.results_cb = results_cb;
    h->fsm.results_data = h;
}

static void reopen(struct harness *h)
{
    fsm_close(&h->fsm);
    store_close(h->store);
    CHECK_OK(store_open(h->dir, NULL, &h->store, NULL));
    CHECK_OK(fsm_init(&h->fsm, h->store, 1));
    h->fsm.results_cb = results_cb;
    h->fsm.results_data = h;
}

static void teardown(struct harness *h)
{
    fsm_close(&h->fsm);
    store_close(h->store);
    check_rmrf(h->dir);
}

static struct fsm_cmd put_cmd(const char *k, const char *v, int has_cas, uint64_t cas)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_KV_PUT;
    c.u.kv.key = k;
    c.u.kv.klen = strlen(k);
    c.u.kv.value = (const uint8_t *)v;
    c.u.kv.vlen = strlen(v);
    c.u.kv.has_cas = has_cas;
    c.u.kv.cas = cas;
    return c;
}

/* Apply one entry at the next index, as raft does; `commit` is the commit
 * index raft would report during the apply. */
static void apply(struct harness *h, const struct fsm_cmd *cmds, unsigned n, uint64_t origin,
                  uint64_t seq, uint64_t commit)
{
    struct fsm_entry_writer w;
    struct entry_buf buf;
    fsm_writer_init(&w);
    for (unsigned i = 0; i < n; i++) {
        CHECK_OK(fsm_writer_add(&w, &cmds[i]));
    }
    CHECK_OK(fsm_writer_finish(&w, origin, seq, 2, 5000, fl_malloc, &buf.base, &buf.len));
    fsm_writer_close(&w);
    h->raft.commit_index = commit;
    fsm_apply(&h->fsm, h->raft.last_applied + 1, h->raft.commit_index, buf.base, buf.len);
    h->raft.last_applied++;
    fl_free(buf.base);
}

static int get(struct harness *h, const char *k, char *out, size_t cap, uint64_t *version)
{
    struct store_txn *t;
    struct store_kv kv;
    int rv;
    fsm_flush(&h->fsm);
    CHECK_OK(store_begin(h->store, 0, &t));
    rv = store_kv_get(t, k, strlen(k), &kv);
    if (rv == FL_OK) {
        snprintf(out, cap, "%.*s", (int)kv.vlen, (const char *)kv.value);
        *version = kv.version;
    }
    store_abort(t);
    return rv;
}

TEST(results_and_cas)
{
    struct harness h;
    struct fsm_cmd c[4];
    char v[64];
    uint64_t ver = 0;
    setup(&h);
    h.raft.last_applied = 1; /* index 1 is the bootstrap configuration */
    c[0] = put_cmd("a", "1", 0, 0);
    c[1] = put_cmd("b", "1", 1, 0); /* create only: ok */
    c[2] = put_cmd("b", "2", 1, 0); /* create only again: conflict */
    c[3] = put_cmd("a", "2", 1, 1); /* cas on a's version 1: ok */
    apply(&h, c, 4, 1, 77, 2);
    CHECK_EQ_INT(h.last_seq, 77);
    CHECK_EQ_INT(h.n_last, 4);
    CHECK_EQ_INT(h.last[0].err, FL_OK);
    CHECK_EQ_INT(h.last[0].kv_version, 1);
    CHECK_EQ_INT(h.last[1].err, FL_OK);
    CHECK_EQ_INT(h.last[1].kv_version, 2);
    CHECK_EQ_INT(h.last[2].err, FL_ECONFLICT);
    CHECK_EQ_INT(h.last[3].err, FL_OK);
    CHECK_EQ_INT(h.last[3].kv_version, 3);
    CHECK_EQ_INT(h.last[0].index, 2);
    CHECK_OK(get(&h, "a", v, sizeof v, &ver));
    CHECK_EQ_STR(v, "2");
    CHECK_EQ_INT(ver, 3);
    CHECK_OK(get(&h, "b", v, sizeof v, &ver));
    CHECK_EQ_STR(v, "1");
    /* Entries proposed elsewhere produce no results here. */
    h.n_last = 0;
    c[0] = put_cmd("c", "x", 0, 0);
    apply(&h, c, 1, 2, 78, 3);
    CHECK_EQ_INT(h.n_last, 0);
    teardown(&h);
}

TEST(replay_is_skipped_after_restart)
{
    struct harness h;
    struct fsm_cmd c[1];
    char v[64];
    uint64_t ver, idx, term;
    uint8_t d1[32], d2[32];
    setup(&h);
    h.raft.last_applied = 1;
    for (int i = 0; i < 50; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%02d", i);
        snprintf(val, sizeof val, "v%d", i);
        c[0] = put_cmd(key, val, 0, 0);
        apply(&h, c, 1, 0, 0, 51);
    }
    fsm_flush(&h.fsm);
    CHECK_OK(store_digest(h.store, d1, &idx, &term));
    CHECK_EQ_INT(idx, 51);
    CHECK_EQ_INT(h.fsm.n_applied, 50);
    /* Restart: raft replays from index 2 (no snapshot); everything up to 51
     * is already in LMDB and must be skipped, including a different value. */
    reopen(&h);
    h.raft.last_applied = 1;
    for (int i = 0; i < 50; i++) {
        c[0] = put_cmd("k00", "replayed", 0, 0);
        apply(&h, c, 1, 0, 0, 51);
    }
    CHECK_EQ_INT(h.fsm.n_applied, 0);
    CHECK_EQ_INT(h.fsm.n_skipped, 50);
    CHECK_OK(get(&h, "k00", v, sizeof v, &ver));
    CHECK_EQ_STR(v, "v0");
    CHECK_OK(store_digest(h.store, d2, &idx, &term));
    CHECK(memcmp(d1, d2, 32) == 0);
    /* The next new entry is applied, and the revision carries on. */
    c[0] = put_cmd("new", "1", 0, 0);
    apply(&h, c, 1, 1, 9, 52);
    CHECK_EQ_INT(h.fsm.n_applied, 1);
    CHECK_EQ_INT(h.last[0].kv_version, 51);
    teardown(&h);
}

TEST(one_transaction_per_run_of_commits)
{
    struct harness h;
    struct fsm_cmd c[1];
    uint64_t idx, term;
    setup(&h);
    h.raft.last_applied = 1;
    c[0] = put_cmd("x", "1", 0, 0);
    /* Ten entries committed together (commit index 11): one store commit. */
    for (int i = 0; i < 10; i++) {
        apply(&h, c, 1, 0, 0, 11);
    }
    CHECK_EQ_INT(h.fsm.n_commits, 1);
    CHECK_OK(store_applied(h.store, &idx, &term));
    CHECK_EQ_INT(idx, 11);
    CHECK_EQ_INT(term, 2);
    /* Applied but not at the commit index yet: still open until a flush. */
    apply(&h, c, 1, 0, 0, 20);
    CHECK_OK(store_applied(h.store, &idx, &term));
    CHECK_EQ_INT(idx, 11);
    fsm_flush(&h.fsm);
    CHECK_OK(store_applied(h.store, &idx, &term));
    CHECK_EQ_INT(idx, 12);
    teardown(&h);
}

static int fatal_calls;
static char fatal_msg[512];
static void fake_fatal(const char *msg)
{
    fatal_calls++;
    snprintf(fatal_msg, sizeof fatal_msg, "%s", msg);
}

TEST(failed_commit_is_fatal_and_changes_nothing)
{
    struct harness h;
    struct fsm_cmd c[1];
    uint64_t idx, term, ver;
    char v[64];
    void (*saved)(const char *) = fsm_fatal_hook;
    setup(&h);
    h.raft.last_applied = 1;
    c[0] = put_cmd("k", "before", 0, 0);
    apply(&h, c, 1, 0, 0, 2);
    fsm_fatal_hook = fake_fatal;
    fatal_calls = 0;
    store_fault_commit(h.store, 0);
    c[0] = put_cmd("k", "after", 0, 0);
    apply(&h, c, 1, 0, 0, 3);
    CHECK_EQ_INT(fatal_calls, 1);
    CHECK(strstr(fatal_msg, "committing") != NULL);
    store_fault_commit(h.store, -1);
    fsm_fatal_hook = saved;
    CHECK_OK(store_applied(h.store, &idx, &term));
    CHECK_EQ_INT(idx, 2);
    CHECK_OK(get(&h, "k", v, sizeof v, &ver));
    CHECK_EQ_STR(v, "before");
    teardown(&h);
}

TEST(map_full_is_fatal_with_a_clear_message)
{
    struct harness h;
    struct store_options so = {0};
    static char big[100 * 1024];
    uint64_t idx, term;
    void (*saved)(const char *) = fsm_fatal_hook;
    memset(&h, 0, sizeof h);
    REQUIRE(check_tmpdir(h.dir, sizeof h.dir) != NULL);
    so.map_size = 1u << 20;
    CHECK_OK(store_open(h.dir, &so, &h.store, NULL));
    CHECK_OK(fsm_init(&h.fsm, h.store, 1));
    memset(big, 'x', sizeof big - 1);
    fsm_fatal_hook = fake_fatal;
    fatal_calls = 0;
    h.raft.last_applied = 1;
    for (int i = 0; i < 40 && fatal_calls == 0; i++) {
        char key[16];
        struct fsm_cmd c[1];
        snprintf(key, sizeof key, "big%02d", i);
        c[0] = put_cmd(key, big, 0, 0);
        apply(&h, c, 1, 0, 0, h.raft.last_applied + 1);
    }
    fsm_fatal_hook = saved;
    CHECK_EQ_INT(fatal_calls, 1);
    CHECK(strstr(fatal_msg, "--store-size") != NULL);
    /* What was committed before is intact and readable. */
    CHECK_OK(store_applied(h.store, &idx, &term));
    CHECK(idx >= 2);
    teardown(&h);
}

static struct fsm_cmd agent_cmd(int type, const char *agent, const unsigned char *pk, int state)
{
    struct fsm_cmd c = {0};
    c.type = type;
    c.u.agentkey.agent = agent;
    c.u.agentkey.alen = strlen(agent);
    c.u.agentkey.pk = pk;
    c.u.agentkey.pklen = pk ? 32 : 0;
    c.u.agentkey.state = (uint8_t)state;
    return c;
}

static int agent_state(struct harness *h, const char *agent)
{
    struct store_txn *t;
    struct store_agentkey rec;
    int rv;
    fsm_flush(&h->fsm);
    CHECK_OK(store_begin(h->store, 0, &t));
    rv = store_agentkey_get(t, agent, &rec);
    store_abort(t);
    return rv == FL_OK ? rec.state : 0;
}

/* The deny-list: revoked stays revoked (a join, an approval, a forget do not
 * undo it) until unrevoked; a name with no record can be revoked too. */
TEST(revoked_agents_stay_revoked_until_unrevoked)
{
    struct harness h;
    struct fsm_cmd c[4];
    unsigned char pk[32] = {7};
    setup(&h);
    h.raft.last_applied = 1;
    c[0] = agent_cmd(FSM_CMD_AGENT_KEY_SET, "web-1", pk, STORE_AGENTKEY_APPROVED);
    c[1] = agent_cmd(FSM_CMD_AGENT_REVOKE, "web-1", NULL, 0);
    c[2] = agent_cmd(FSM_CMD_AGENT_REVOKE, "ghost", NULL, 0);
    c[3] = agent_cmd(FSM_CMD_AGENT_UNREVOKE, "nobody", NULL, 0);
    apply(&h, c, 4, 1, 1, 2);
    CHECK_EQ_INT(h.last[1].err, FL_OK);
    CHECK_EQ_INT(h.last[2].err, FL_OK);
    CHECK_EQ_INT(h.last[3].err, FL_ENOTFOUND);
    CHECK_EQ_INT(agent_state(&h, "web-1"), STORE_AGENTKEY_REVOKED);
    CHECK_EQ_INT(agent_state(&h, "ghost"), STORE_AGENTKEY_REVOKED);
    c[0] = agent_cmd(FSM_CMD_AGENT_KEY_SET, "web-1", pk, STORE_AGENTKEY_APPROVED);
    c[1] = agent_cmd(FSM_CMD_AGENT_KEY_APPROVE, "web-1", NULL, 0);
    c[2] = agent_cmd(FSM_CMD_AGENT_KEY_FORGET, "web-1", NULL, 0);
    c[3] = agent_cmd(FSM_CMD_AGENT_KEY_SET, "ghost", pk, STORE_AGENTKEY_APPROVED);
    apply(&h, c, 4, 1, 2, 3);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(h.last[i].err, FL_ECONFLICT);
    }
    CHECK_EQ_INT(agent_state(&h, "web-1"), STORE_AGENTKEY_REVOKED);
    CHECK_EQ_INT(agent_state(&h, "ghost"), STORE_AGENTKEY_REVOKED);
    c[0] = agent_cmd(FSM_CMD_AGENT_UNREVOKE, "web-1", NULL, 0);
    c[1] = agent_cmd(FSM_CMD_AGENT_UNREVOKE, "ghost", NULL, 0);
    c[2] = agent_cmd(FSM_CMD_AGENT_UNREVOKE, "web-1", NULL, 0);
    apply(&h, c, 3, 1, 3, 4);
    CHECK_EQ_INT(h.last[0].err, FL_OK);
    CHECK_EQ_INT(h.last[1].err, FL_OK);
    CHECK_EQ_INT(h.last[2].err, FL_ENOTFOUND);
    CHECK_EQ_INT(agent_state(&h, "web-1"), STORE_AGENTKEY_APPROVED); /* its key kept */
    CHECK_EQ_INT(agent_state(&h, "ghost"), 0);                       /* no key: gone */
    teardown(&h);
}

static struct fsm_cmd reg_cmd(const char *id, uint64_t raft_id, const char *api)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_NODE_REGISTER;
    c.u.node.id = id;
    c.u.node.idlen = strlen(id);
    c.u.node.raft_id = raft_id;
    c.u.node.api_addr = api;
    c.u.node.api_addr_len = strlen(api);
    c.u.node.kind = raft_id ? STORE_NODE_SERVER : STORE_NODE_AGENT;
    return c;
}

/* A Raft id belongs to one node name: a decoy row cannot claim a server's
 * id (and so its place as where the leader's API is found). */
TEST(a_raft_id_belongs_to_one_name)
{
    struct harness h;
    struct fsm_cmd c[4];
    struct store_txn *t;
    struct store_node n;
    setup(&h);
    h.raft.last_applied = 1;
    c[0] = reg_cmd("server-1", 1, "10.0.0.1:8401");
    c[1] = reg_cmd("decoy", 1, "10.6.6.6:8401");
    c[2] = reg_cmd("server-1", 1, "10.0.0.1:9401"); /* itself again: fine */
    c[3] = reg_cmd("web-1", 0, "");                 /* agents have no Raft id */
    apply(&h, c, 4, 1, 1, 2);
    CHECK_EQ_INT(h.last[0].err, FL_OK);
    CHECK_EQ_INT(h.last[1].err, FL_ECONFLICT);
    CHECK_EQ_INT(h.last[2].err, FL_OK);
    CHECK_EQ_INT(h.last[3].err, FL_OK);
    fsm_flush(&h.fsm);
    CHECK_OK(store_begin(h.store, 0, &t));
    CHECK_EQ_INT(store_node_get(t, "decoy", &n), FL_ENOTFOUND);
    CHECK_OK(store_node_get(t, "server-1", &n));
    CHECK_EQ_STR(n.api_addr, "10.0.0.1:9401");
    store_abort(t);
    teardown(&h);
}

int main(void)
{
    RUN(results_and_cas);
    RUN(replay_is_skipped_after_restart);
    RUN(one_transaction_per_run_of_commits);
    RUN(failed_commit_is_fatal_and_changes_nothing);
    RUN(map_full_is_fatal_with_a_clear_message);
    RUN(revoked_agents_stay_revoked_until_unrevoked);
    RUN(a_raft_id_belongs_to_one_name);
    return check_summary();
}
