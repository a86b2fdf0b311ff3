/* fsm/ — encoding the core commands (keys, nodes, META, the dispatch
 * switch, tasks and units) into an entry's command list; the other domains
 * encode their own (lock.c, job.c, acl.c, agentkey.c, package.c). The
 * layouts are in fsm/cmd.h and docs/STORE.md; tests/unit/test_corpus.c holds
 * entries written by earlier code that must keep decoding the same. */
#include <string.h>

#include "fsm/fsm_int.h"

int fsm__pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str_with_body(pk, s == NULL ? "" : s, s == NULL ? 0 : n);
}

/* Keys, nodes, META and the dispatch switch; -2 for another type, else msgpack-c's status. */
int fsm__pack_node(msgpack_packer *pk, const struct fsm_cmd *c)
{
    int rv = 0;
    switch (c->type) {
    case FSM_CMD_KV_PUT:
        rv |= msgpack_pack_array(pk, 5);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.kv.key, c->u.kv.klen);
        rv |= msgpack_pack_bin_with_body(pk, c->u.kv.vlen ? (const void *)c->u.kv.value : "",
                                         c->u.kv.vlen);
        rv |= c->u.kv.has_cas ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        rv |= msgpack_pack_uint64(pk, c->u.kv.cas);
        return rv;
    case FSM_CMD_KV_DEL:
        rv |= msgpack_pack_array(pk, 4);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.kv.key, c->u.kv.klen);
        rv |= c->u.kv.has_cas ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        rv |= msgpack_pack_uint64(pk, c->u.kv.cas);
        return rv;
    case FSM_CMD_NODE_REGISTER:
        /* Field 10 (blob_addr) only when set: older servers read 9. */
        rv |= msgpack_pack_array(pk, c->u.node.blob_addr_len > 0 ? 10 : 9);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.node.id, c->u.node.idlen);
        rv |= msgpack_pack_uint64(pk, c->u.node.raft_id);
        rv |= fsm__pack_str(pk, c->u.node.raft_addr, c->u.node.raft_addr_len);
        rv |= fsm__pack_str(pk, c->u.node.api_addr, c->u.node.api_addr_len);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->u.node.kind);
        rv |= msgpack_pack_array(pk, c->u.node.n_labels);
        for (unsigned i = 0; i < c->u.node.n_labels; i++) {
            rv |= fsm__pack_str(pk, c->u.node.labels[i], c->u.node.label_lens[i]);
        }
        rv |= msgpack_pack_uint32(pk, c->u.node.cap);
        rv |= fsm__pack_str(pk, c->u.node.agent_addr, c->u.node.agent_addr_len);
        if (c->u.node.blob_addr_len > 0) {
            rv |= fsm__pack_str(pk, c->u.node.blob_addr, c->u.node.blob_addr_len);
        }
        return rv;
    case FSM_CMD_NODE_CAP:
        rv |= msgpack_pack_array(pk, 3);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.node.id, c->u.node.idlen);
        rv |= msgpack_pack_uint32(pk, c->u.node.cap);
        return rv;
    case FSM_CMD_NODE_DRAIN:
        rv |= msgpack_pack_array(pk, 3);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.node.id, c->u.node.idlen);
        rv |= c->u.node.drain ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        return rv;
    case FSM_CMD_DISPATCH:
        rv |= msgpack_pack_array(pk, 2);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= c->u.dispatch.paused ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        return rv;
    case FSM_CMD_NODE_LOST:
    case FSM_CMD_NODE_REMOVE:
        rv |= msgpack_pack_array(pk, 2);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.node.id, c->u.node.idlen);
        return rv;
    case FSM_CMD_META_INIT:
        rv |= msgpack_pack_array(pk, 3);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.meta.name, c->u.meta.nlen);
        rv |= fsm__pack_str(pk, c->u.meta.value, c->u.meta.vlen);
        return rv;
    default:
        return -2;
    }
}

/* Tasks and units; -2 for another type, else msgpack-c's status. */
int fsm__pack_sched(msgpack_packer *pk, const struct fsm_cmd *c)
{
    int rv = 0;
    switch (c->type) {
    case FSM_CMD_TASK_SUBMIT: {
        /* Fields 12-14 (the rollout controls) only when one is set: a task
         * without them encodes as before. */
        int controls = c->u.task.max_running != 0 || c->u.task.fail_stop != 0 ||
                       c->u.task.placement != FSM_PLACE_ANY;
        rv |= msgpack_pack_array(pk, controls ? 14 : 11);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.task.id, c->u.task.idlen);
        rv |= fsm__pack_str(pk, c->u.task.name, c->u.task.namelen);
        rv |= fsm__pack_str(pk, c->u.task.idem, c->u.task.idemlen);
        rv |= msgpack_pack_array(pk, c->u.task.n_hosts);
        for (uint32_t i = 0; i < c->u.task.n_hosts; i++) {
            const char *h = c->u.task.host_ptrs[i];
            rv |= fsm__pack_str(pk, h, strlen(h));
        }
        rv |= msgpack_pack_uint32(pk, c->u.task.unit_size);
        rv |= msgpack_pack_uint32(pk, c->u.task.timeout_ms);
        rv |= msgpack_pack_uint32(pk, c->u.task.retries);
        rv |= msgpack_pack_int32(pk, c->u.task.priority);
        rv |= msgpack_pack_array(pk, c->u.task.n_constraints);
        for (unsigned i = 0; i < c->u.task.n_constraints; i++) {
            rv |= fsm__pack_str(pk, c->u.task.constraints[i], c->u.task.constraint_lens[i]);
        }
        rv |= msgpack_pack_bin_with_body(pk, c->u.task.spec_len ? (const void *)c->u.task.spec : "",
                                         c->u.task.spec_len);
        if (controls) {
            rv |= msgpack_pack_uint32(pk, c->u.task.max_running);
            rv |= msgpack_pack_uint32(pk, c->u.task.fail_stop);
            rv |= msgpack_pack_uint8(pk, c->u.task.placement);
        }
        return rv;
    }
    case FSM_CMD_TASK_CANCEL:
        rv |= msgpack_pack_array(pk, 2);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.task.id, c->u.task.idlen);
        return rv;
    case FSM_CMD_UNIT_ASSIGN:
        rv |= msgpack_pack_array(pk, 5);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.unit.task, c->u.unit.tasklen);
        rv |= msgpack_pack_uint32(pk, c->u.unit.unit);
        rv |= msgpack_pack_uint32(pk, c->u.unit.attempt);
        rv |= fsm__pack_str(pk, c->u.unit.node, c->u.unit.nodelen);
        return rv;
    case FSM_CMD_UNIT_RESULT:
        rv |= msgpack_pack_array(pk, 10);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.unit.task, c->u.unit.tasklen);
        rv |= msgpack_pack_uint32(pk, c->u.unit.unit);
        rv |= msgpack_pack_uint32(pk, c->u.unit.attempt);
        rv |= msgpack_pack_uint64(pk, c->u.unit.token);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->u.unit.status);
        rv |= msgpack_pack_int32(pk, c->u.unit.exit_code);
        rv |= msgpack_pack_uint64(pk, c->u.unit.started_ms);
        rv |= msgpack_pack_uint64(pk, c->u.unit.finished_ms);
        rv |= msgpack_pack_array(pk, c->u.unit.n_results);
        for (uint32_t i = 0; i < c->u.unit.n_results; i++) {
            const struct fsm_host_result *r = &c->u.unit.result_ptrs[i];
            rv |= msgpack_pack_array(pk, 4);
            rv |= fsm__pack_str(pk, r->host, r->hostlen);
            rv |= msgpack_pack_uint8(pk, (uint8_t)r->status);
            rv |= msgpack_pack_int32(pk, r->rc);
            rv |= msgpack_pack_bin_with_body(pk, r->tail_len ? (const void *)r->tail : "",
                                             r->tail_len);
        }
        return rv;
    case FSM_CMD_UNIT_REQUEUE:
        rv |= msgpack_pack_array(pk, 5);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->type);
        rv |= fsm__pack_str(pk, c->u.unit.task, c->u.unit.tasklen);
        rv |= msgpack_pack_uint32(pk, c->u.unit.unit);
        rv |= msgpack_pack_uint64(pk, c->u.unit.token);
        rv |= msgpack_pack_uint8(pk, (uint8_t)c->u.unit.status);
        return rv;
    default:
        return -2;
    }
}
