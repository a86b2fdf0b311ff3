/* Writes the seed corpora in fuzz/corpus/ from the real encoders:
 *   gen_corpus OUTDIR   (OUTDIR/cmd/*, OUTDIR/snapshot/*)
 * Built with -DFUZZ=ON as the fuzz_gen_corpus target. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "fsm/cmd.h"
#include "store/store.h"

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void entry(const char *dir, const char *name, const struct fsm_cmd *cmds, unsigned n)
{
    struct fsm_entry_writer w;
    void *buf;
    size_t len;
    fsm_writer_init(&w);
    for (unsigned i = 0; i < n; i++) {
        fsm_writer_add(&w, &cmds[i]);
    }
    fsm_writer_finish(&w, 1, 7, 3, 1767225600000ull, fl_malloc, &buf, &len);
    fsm_writer_close(&w);
    write_file(dir, name, buf, len);
    fl_free(buf);
}

int main(int argc, char **argv)
{
    char cmd_dir[4096], snap_dir[4096], tmp[] = "/tmp/flotilla-gen-XXXXXX";
    struct fsm_cmd c[4];
    static const char *labels[] = {"role=web", "dc=east"};
    struct store *st;
    struct store_txn *t;
    struct store_node node;
    struct fl_buf dump;
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus OUTDIR\n");
        return 2;
    }
    snprintf(cmd_dir, sizeof cmd_dir, "%s/cmd", argv[1]);
    snprintf(snap_dir, sizeof snap_dir, "%s/snapshot", argv[1]);

    memset(c, 0, sizeof c);
    c[0].type = FSM_CMD_KV_PUT;
    c[0].u.kv.key = "greeting";
    c[0].u.kv.klen = 8;
    c[0].u.kv.value = (const uint8_t *)"hello";
    c[0].u.kv.vlen = 5;
    c[1] = c[0];
    c[1].u.kv.has_cas = 1;
    c[1].u.kv.cas = 12;
    c[2].type = FSM_CMD_KV_DEL;
    c[2].u.kv.key = "greeting";
    c[2].u.kv.klen = 8;
    entry(cmd_dir, "kv", c, 3);
    memset(c, 0, sizeof c);
    c[0].type = FSM_CMD_NODE_REGISTER;
    c[0].u.node.id = "server-1";
    c[0].u.node.idlen = 8;
    c[0].u.node.raft_id = 1;
    c[0].u.node.raft_addr = "127.0.0.1:8501";
    c[0].u.node.raft_addr_len = 14;
    c[0].u.node.api_addr = "127.0.0.1:8401";
    c[0].u.node.api_addr_len = 14;
    c[0].u.node.kind = STORE_NODE_SERVER;
    c[0].u.node.n_labels = 2;
    c[0].u.node.labels[0] = labels[0];
    c[0].u.node.label_lens[0] = 8;
    c[0].u.node.labels[1] = labels[1];
    c[0].u.node.label_lens[1] = 7;
    c[0].u.node.cap = 4;
    c[1].type = FSM_CMD_NODE_CAP;
    c[1].u.node.id = "server-1";
    c[1].u.node.idlen = 8;
    c[1].u.node.cap = 0;
    c[2].type = FSM_CMD_NODE_DRAIN;
    c[2].u.node.id = "server-1";
    c[2].u.node.idlen = 8;
    c[2].u.node.drain = 1;
    c[3].type = FSM_CMD_META_INIT;
    c[3].u.meta.name = "cluster_id";
    c[3].u.meta.nlen = 10;
    c[3].u.meta.value = "0123456789abcdef";
    c[3].u.meta.vlen = 16;
    entry(cmd_dir, "nodes", c, 4);
    entry(cmd_dir, "empty", c, 0);
    {
        static const char *hosts[] = {"web1", "web2", "web3"};
        static const struct fsm_host_result res[] = {
            {"web1", 4, 1, 0, (const uint8_t *)"ok\n", 3},
            {"web2", 4, 2, 1, (const uint8_t *)"boom\n", 5},
        };
        memset(c, 0, sizeof c);
        c[0].type = FSM_CMD_TASK_SUBMIT;
        c[0].u.task.id = "t0123456789abcdef";
        c[0].u.task.idlen = 17;
        c[0].u.task.name = "deploy";
        c[0].u.task.namelen = 6;
        c[0].u.task.idem = "key-1";
        c[0].u.task.idemlen = 5;
        c[0].u.task.n_hosts = 3;
        c[0].u.task.host_ptrs = hosts;
        c[0].u.task.unit_size = 2;
        c[0].u.task.timeout_ms = 60000;
        c[0].u.task.retries = 1;
        c[0].u.task.priority = -5;
        c[0].u.task.n_constraints = 1;
        c[0].u.task.constraints[0] = "role=web";
        c[0].u.task.constraint_lens[0] = 8;
        c[0].u.task.spec = (const uint8_t *)"\x9a\x01\x05\x90\xa0\xa0\xa0\xa0\x00\x90\x00";
        c[0].u.task.spec_len = 11;
        c[1].type = FSM_CMD_UNIT_ASSIGN;
        c[1].u.unit.task = "t0123456789abcdef";
        c[1].u.unit.tasklen = 17;
        c[1].u.unit.unit = 1;
        c[1].u.unit.node = "agent-1";
        c[1].u.unit.nodelen = 7;
        c[2].type = FSM_CMD_UNIT_RESULT;
        c[2].u.unit.task = "t0123456789abcdef";
        c[2].u.unit.tasklen = 17;
        c[2].u.unit.attempt = 1;
        c[2].u.unit.token = 9;
        c[2].u.unit.status = 2;
        c[2].u.unit.exit_code = -1;
        c[2].u.unit.n_results = 2;
        c[2].u.unit.result_ptrs = res;
        c[3].type = FSM_CMD_UNIT_REQUEUE;
        c[3].u.unit.task = "t0123456789abcdef";
        c[3].u.unit.tasklen = 17;
        c[3].u.unit.token = 9;
        c[3].u.unit.status = 7;
        entry(cmd_dir, "tasks", c, 4);
        memset(c, 0, sizeof c);
        c[0].type = FSM_CMD_NODE_LOST;
        c[0].u.node.id = "agent-1";
        c[0].u.node.idlen = 7;
        c[1].type = FSM_CMD_TASK_CANCEL;
        c[1].u.task.id = "t0123456789abcdef";
        c[1].u.task.idlen = 17;
        c[2].type = FSM_CMD_DISPATCH;
        c[2].u.dispatch.paused = 1;
        entry(cmd_dir, "control", c, 3);
    }
    {
        /* A rollout: each host is a node, two at a time, stopped at the
         * first failed host. */
        static const char *hosts[] = {"agent-1", "agent-2", "agent-3"};
        memset(c, 0, sizeof c);
        c[0].type = FSM_CMD_TASK_SUBMIT;
        c[0].u.task.id = "d0123456789abcdef";
        c[0].u.task.idlen = 17;
        c[0].u.task.name = "rollout";
        c[0].u.task.namelen = 7;
        c[0].u.task.n_hosts = 3;
        c[0].u.task.host_ptrs = hosts;
        c[0].u.task.unit_size = 1;
        c[0].u.task.timeout_ms = 60000;
        c[0].u.task.spec = (const uint8_t *)"\x9a\x01\x05\x90\xa0\xa0\xa0\xa0\x00\x90\x00";
        c[0].u.task.spec_len = 11;
        c[0].u.task.max_running = 2;
        c[0].u.task.fail_stop = 1;
        c[0].u.task.placement = FSM_PLACE_HOST;
        c[1].type = FSM_CMD_UNIT_ASSIGN;
        c[1].u.unit.task = "d0123456789abcdef";
        c[1].u.unit.tasklen = 17;
        c[1].u.unit.unit = 2;
        c[1].u.unit.node = "agent-3";
        c[1].u.unit.nodelen = 7;
        entry(cmd_dir, "tasks-rollout", c, 2);
    }
    /* Commands carrying a request identity, and a release naming its
     * token (docs/API.md "Request identity"). */
    memset(c, 0, sizeof c);
    c[0].type = FSM_CMD_KV_PUT;
    c[0].u.kv.key = "greeting";
    c[0].u.kv.klen = 8;
    c[0].u.kv.value = (const uint8_t *)"hello";
    c[0].u.kv.vlen = 5;
    c[0].req.session = "0123456789abcdef0123456789abcdef";
    c[0].req.slen = 32;
    c[0].req.serial = 7;
    c[1].type = FSM_CMD_LOCK_RELEASE;
    c[1].u.lock.session = "0123456789abcdef0123456789abcdef";
    c[1].u.lock.slen = 32;
    c[1].u.lock.key = "lc/repro1";
    c[1].u.lock.klen = 9;
    c[1].u.lock.token = 41;
    c[1].req = c[0].req;
    c[1].req.serial = 8;
    c[2].type = FSM_CMD_SESSION_RENEW;
    c[2].u.lock.session = "0123456789abcdef0123456789abcdef";
    c[2].u.lock.slen = 32;
    entry(cmd_dir, "request-identity", c, 3);

    if (mkdtemp(tmp) == NULL || store_open(tmp, NULL, &st, NULL) != 0) {
        return 1;
    }
    fl_buf_init(&dump);
    store_dump(st, &dump, NULL, NULL);
    write_file(snap_dir, "empty", dump.data, dump.len);
    fl_buf_reset(&dump);
    store_begin(st, 1, &t);
    store_kv_put(t, "greeting", 8, "hello", 5, 3, 1767225600000ull);
    store_kv_put(t, "other", 5, "", 0, 4, 1767225600001ull);
    memset(&node, 0, sizeof node);
    snprintf(node.id, sizeof node.id, "server-1");
    node.kind = STORE_NODE_SERVER;
    node.raft_id = 1;
    node.cap = 4;
    node.n_labels = 1;
    snprintf(node.labels[0], sizeof node.labels[0], "role=web");
    store_node_put(t, &node);
    store_meta_put(t, "cluster_id", "0123456789abcdef");
    store_set_applied(t, 9, 2);
    store_commit(t);
    store_dump(st, &dump, NULL, NULL);
    write_file(snap_dir, "small", dump.data, dump.len);
    fl_buf_close(&dump);
    store_close(st);
    return 0;
}
