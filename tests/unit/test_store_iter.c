/* store/iter.c: the typed iterators over a real LMDB store — key order,
 * prefix bounds, undecodable records skipped and counted, the end repeated,
 * empty tables, and one record of every type read back (locks, runs and
 * results within a key prefix). */
#include "check.h"
#include "common/err.h"
#include "store/iter.h"
#include "store/store.h"

struct env {
    char tmp[256];
    char dir[300];
    struct store *s;
    struct store_txn *t; /* the write transaction the records go in */
};

static int env_init(struct env *e)
{
    struct store_options o = {.no_sync = 1};
    memset(e, 0, sizeof *e);
    if (check_tmpdir(e->tmp, sizeof e->tmp) == NULL) {
        return -1;
    }
    snprintf(e->dir, sizeof e->dir, "%s/store", e->tmp);
    if (store_open(e->dir, &o, &e->s, NULL) != FL_OK) {
        return -1;
    }
    return store_begin(e->s, 1, &e->t);
}

static void env_close(struct env *e)
{
    store_abort(e->t);
    store_close(e->s);
    check_rmrf(e->tmp);
}

static int put_node(struct store_txn *t, const char *id, uint32_t cap)
{
    struct store_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "%s", id);
    n.kind = STORE_NODE_AGENT;
    n.cap = cap;
    return store_node_put(t, &n);
}

TEST(nodes_in_key_order_skipping_undecodable)
{
    struct env e;
    struct store_iter it;
    struct store_node n;
    const char *want[] = {"a-node", "m-node", "z-node"};
    int i = 0, rv;
    REQUIRE(env_init(&e) == FL_OK);
    CHECK_OK(put_node(e.t, "z-node", 3));
    CHECK_OK(put_node(e.t, "a-node", 1));
    CHECK_OK(put_node(e.t, "m-node", 2));
    CHECK_OK(store_put(e.t, STORE_NODES, "b-garbage", 9, "\xc1\xc1", 2));
    CHECK_OK(store_iter_open(e.t, STORE_NODES, NULL, 0, &it));
    while ((rv = store_node_next(&it, &n)) == FL_OK) {
        REQUIRE(i < 3);
        CHECK_EQ_STR(n.id, want[i]);
        CHECK_EQ_INT(n.cap, (uint32_t)i + 1);
        CHECK_EQ_INT(it.klen, strlen(want[i]));
        CHECK(memcmp(it.key, want[i], it.klen) == 0);
        i++;
    }
    CHECK_EQ_INT(rv, FL_ENOTFOUND);
    CHECK_EQ_INT(i, 3);
    CHECK_EQ_INT(it.skipped, 1);
    CHECK_EQ_INT(store_node_next(&it, &n), FL_ENOTFOUND); /* the end stays the end */
    store_iter_close(&it);
    store_iter_close(&it); /* twice is fine */
    env_close(&e);
}

TEST(kv_prefix_bounds)
{
    struct env e;
    struct store_iter it;
    struct store_kv kv;
    REQUIRE(env_init(&e) == FL_OK);
    CHECK_OK(store_kv_put(e.t, "a/1", 3, "one", 3, 5, 100));
    CHECK_OK(store_kv_put(e.t, "a/2", 3, "two", 3, 6, 101));
    CHECK_OK(store_kv_put(e.t, "a", 1, "a", 1, 4, 99));
    CHECK_OK(store_kv_put(e.t, "ab", 2, "ab", 2, 7, 102));
    CHECK_OK(store_kv_put(e.t, "b/1", 3, "b", 1, 8, 103));
    CHECK_OK(store_iter_open(e.t, STORE_KV, "a/", 2, &it));
    REQUIRE(store_kv_next(&it, &kv) == FL_OK);
    CHECK(it.klen == 3 && memcmp(it.key, "a/1", 3) == 0);
    CHECK(kv.vlen == 3 && memcmp(kv.value, "one", 3) == 0 && kv.version == 5);
    REQUIRE(store_kv_next(&it, &kv) == FL_OK);
    CHECK(it.klen == 3 && memcmp(it.key, "a/2", 3) == 0 && kv.version == 6);
    CHECK_EQ_INT(store_kv_next(&it, &kv), FL_ENOTFOUND); /* "ab" is past the prefix */
    store_iter_close(&it);
    /* A prefix nothing has, one past every key, and no prefix at all. */
    CHECK_OK(store_iter_open(e.t, STORE_KV, "aa", 2, &it));
    CHECK_EQ_INT(store_kv_next(&it, &kv), FL_ENOTFOUND);
    store_iter_close(&it);
    CHECK_OK(store_iter_open(e.t, STORE_KV, "c", 1, &it));
    CHECK_EQ_INT(store_kv_next(&it, &kv), FL_ENOTFOUND);
    store_iter_close(&it);
    {
        int n = 0;
        CHECK_OK(store_iter_open(e.t, STORE_KV, NULL, 0, &it));
        while (store_kv_next(&it, &kv) == FL_OK) {
            n++;
        }
        store_iter_close(&it);
        CHECK_EQ_INT(n, 5);
    }
    env_close(&e);
}

static int put_package(struct store_txn *t, const char *name, const char *version)
{
    struct store_package p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    snprintf(p.version, sizeof p.version, "%s", version);
    p.size = 0;
    p.chunk_size = 1024;
    p.n_chunks = store_package_n_chunks(0, 1024);
    p.keep = 5;
    return store_package_put(t, &p);
}

TEST(packages_of_one_name)
{
    struct env e;
    struct store_iter it;
    struct store_package p;
    int n = 0;
    REQUIRE(env_init(&e) == FL_OK);
    CHECK_OK(put_package(e.t, "web", "1.0"));
    CHECK_OK(put_package(e.t, "web", "2.0"));
    CHECK_OK(put_package(e.t, "web2", "1.0"));
    CHECK_OK(store_iter_open(e.t, STORE_PACKAGES, "web", 4, &it)); /* "web" and its NUL */
    while (store_package_next(&it, &p) == FL_OK) {
        CHECK_EQ_STR(p.name, "web");
        CHECK_EQ_STR(p.version, n == 0 ? "1.0" : "2.0");
        n++;
    }
    store_iter_close(&it);
    CHECK_EQ_INT(n, 2);
    env_close(&e);
}

TEST(every_type_reads_back)
{
    struct env e;
    struct store_iter it;
    struct store_task task, tin;
    struct store_result r, rin;
    struct store_token tok, tokin;
    struct store_agentkey k, kin;
    uint8_t hash[STORE_TOKEN_HASH_BYTES] = {1};
    REQUIRE(env_init(&e) == FL_OK);

    /* Empty tables end at once. */
    CHECK_OK(store_iter_open(e.t, STORE_TASKS, NULL, 0, &it));
    CHECK_EQ_INT(store_task_next(&it, &task), FL_ENOTFOUND);
    store_iter_close(&it);

    memset(&tin, 0, sizeof tin);
    snprintf(tin.id, sizeof tin.id, "t0123");
    snprintf(tin.name, sizeof tin.name, "backup");
    tin.state = STORE_TASK_RUNNING;
    tin.n_hosts = 7;
    CHECK_OK(store_task_put(e.t, &tin));
    CHECK_OK(store_iter_open(e.t, STORE_TASKS, NULL, 0, &it));
    REQUIRE(store_task_next(&it, &task) == FL_OK);
    CHECK_EQ_STR(task.id, "t0123");
    CHECK_EQ_STR(task.name, "backup");
    CHECK(task.state == STORE_TASK_RUNNING && task.n_hosts == 7);
    CHECK_EQ_INT(store_task_next(&it, &task), FL_ENOTFOUND);
    store_iter_close(&it);

    memset(&rin, 0, sizeof rin);
    rin.status = STORE_ST_OK;
    rin.rc = 3;
    CHECK_OK(store_result_put(e.t, "t0123", 2, "h1", 2, &rin));
    CHECK_OK(store_result_put(e.t, "t0124", 0, "h9", 2, &rin));
    CHECK_OK(store_iter_open(e.t, STORE_RESULTS, "t0123/", 6, &it));
    REQUIRE(store_result_next(&it, &r) == FL_OK);
    CHECK(r.status == STORE_ST_OK && r.rc == 3);
    CHECK(it.klen == 6 + 4 + 1 + 2 && memcmp((const char *)it.key + 11, "h1", 2) == 0);
    CHECK_EQ_INT(store_result_next(&it, &r), FL_ENOTFOUND); /* t0124's is another task's */
    store_iter_close(&it);

    memset(&tokin, 0, sizeof tokin);
    snprintf(tokin.accessor, sizeof tokin.accessor, "0123456789abcdef");
    snprintf(tokin.name, sizeof tokin.name, "ci");
    tokin.caps = STORE_CAP_READ;
    CHECK_OK(store_token_put(e.t, hash, &tokin));
    CHECK_OK(store_iter_open(e.t, STORE_TOKENS, NULL, 0, &it));
    REQUIRE(store_token_next(&it, &tok) == FL_OK);
    CHECK_EQ_STR(tok.accessor, "0123456789abcdef");
    CHECK(tok.caps == STORE_CAP_READ && it.klen == STORE_TOKEN_HASH_BYTES);
    store_iter_close(&it);

    memset(&kin, 0, sizeof kin);
    kin.pk[0] = 42;
    kin.state = STORE_AGENTKEY_PENDING;
    CHECK_OK(store_agentkey_put(e.t, "edge-1", &kin));
    CHECK_OK(store_iter_open(e.t, STORE_AGENTKEYS, NULL, 0, &it));
    REQUIRE(store_agentkey_next(&it, &k) == FL_OK);
    CHECK(k.pk[0] == 42 && k.state == STORE_AGENTKEY_PENDING);
    CHECK(it.klen == 6 && memcmp(it.key, "edge-1", 6) == 0);
    store_iter_close(&it);

    {
        struct store_session ss, ssin;
        struct store_lock l, lin;
        struct store_job j, jin;
        struct store_run run, runin;
        memset(&ssin, 0, sizeof ssin);
        snprintf(ssin.id, sizeof ssin.id, "s-1");
        ssin.ttl_ms = 5000;
        CHECK_OK(store_session_put(e.t, &ssin));
        CHECK_OK(store_iter_open(e.t, STORE_SESSIONS, NULL, 0, &it));
        REQUIRE(store_session_next(&it, &ss) == FL_OK);
        CHECK_EQ_STR(ss.id, "s-1");
        CHECK_EQ_INT(ss.ttl_ms, 5000);
        CHECK_EQ_INT(store_session_next(&it, &ss), FL_ENOTFOUND);
        store_iter_close(&it);

        REQUIRE(store_lock_init(&lin, 2) == FL_OK);
        CHECK_OK(store_lock_put(e.t, "ns/a", 4, &lin));
        CHECK_OK(store_lock_put(e.t, "nt/b", 4, &lin));
        store_lock_free(&lin);
        CHECK_OK(store_iter_open(e.t, STORE_LOCKS, "ns/", 3, &it));
        REQUIRE(store_lock_next(&it, &l) == FL_OK);
        CHECK(l.limit == 2 && it.klen == 4 && memcmp(it.key, "ns/a", 4) == 0);
        store_lock_free(&l);
        CHECK_EQ_INT(store_lock_next(&it, &l), FL_ENOTFOUND); /* nt/b: another namespace */
        store_iter_close(&it);

        memset(&jin, 0, sizeof jin);
        snprintf(jin.name, sizeof jin.name, "nightly");
        jin.sched = STORE_JOB_EVERY;
        jin.every_ms = 60000;
        jin.overlap = STORE_OVERLAP_ALLOW;
        jin.mode = STORE_JOB_ONE;
        jin.misfire = STORE_MISFIRE_SKIP;
        CHECK_OK(store_job_put(e.t, &jin));
        CHECK_OK(store_iter_open(e.t, STORE_JOBS, NULL, 0, &it));
        REQUIRE(store_job_next(&it, &j) == FL_OK);
        CHECK_EQ_STR(j.name, "nightly");
        CHECK_EQ_INT(j.every_ms, 60000);
        store_iter_close(&it);

        memset(&runin, 0, sizeof runin);
        runin.outcome = STORE_RUN_STARTED;
        runin.sched_ms = 1000;
        CHECK_OK(store_run_put(e.t, "nightly", &runin));
        runin.sched_ms = 2000;
        CHECK_OK(store_run_put(e.t, "nightly", &runin));
        CHECK_OK(store_run_put(e.t, "nightly2", &runin));
        CHECK_OK(store_iter_open(e.t, STORE_RUNS, "nightly", 8, &it)); /* the name and its NUL */
        REQUIRE(store_run_next(&it, &run) == FL_OK);
        CHECK_EQ_INT(run.sched_ms, 1000);
        REQUIRE(store_run_next(&it, &run) == FL_OK);
        CHECK_EQ_INT(run.sched_ms, 2000);
        CHECK_EQ_INT(store_run_next(&it, &run), FL_ENOTFOUND); /* nightly2's is another job's */
        store_iter_close(&it);
    }
    env_close(&e);
}

int main(void)
{
    RUN(nodes_in_key_order_skipping_undecodable);
    RUN(kv_prefix_bounds);
    RUN(packages_of_one_name);
    RUN(every_type_reads_back);
    return check_summary();
}
