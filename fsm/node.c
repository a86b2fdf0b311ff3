/* fsm/ — nodes (servers and agents) and cluster metadata in the state
 * machine: registration (create, or update addresses and labels; a lost
 * node registering again is back), caps, drain, removal, and META values
 * set once (META_INIT).
 *
 * A Raft id belongs to one node name: registering a server under a Raft id
 * another row already holds is FL_ECONFLICT (docs/SECURITY.md: where
 * forwarding and agents find the leader, no decoy row may claim its id). */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "fsm/fsm_int.h"
#include "store/iter.h"

/* 1 if a row other than `id` holds Raft id `raft_id` (its name in owner). */
static int raft_id_taken(struct store_txn *t, uint64_t raft_id, const char *id, char *owner,
                         size_t cap, int *err)
{
    struct store_iter it;
    struct store_node n;
    int rv, taken = 0;
    memset(&it, 0, sizeof it);
    *err = store_iter_open(t, STORE_NODES, NULL, 0, &it);
    while (*err == FL_OK && (rv = store_node_next(&it, &n)) == FL_OK) {
        if (n.raft_id == raft_id && strcmp(n.id, id) != 0) {
            snprintf(owner, cap, "%s", n.id);
            taken = 1;
            break;
        }
    }
    if (*err == FL_OK && !taken && rv != FL_ENOTFOUND) {
        *err = rv;
    }
    store_iter_close(&it);
    return taken;
}

static int reg(struct store_txn *t, const struct fsm_cmd *c, uint64_t index, struct fsm_result *res)
{
    struct store_node n;
    char id[STORE_NODE_ID_MAX], owner[STORE_NODE_ID_MAX];
    int rv;
    fsm__copy_str(id, sizeof id, c->u.node.id, c->u.node.idlen);
    if (c->u.node.raft_id != 0 &&
        raft_id_taken(t, c->u.node.raft_id, id, owner, sizeof owner, &rv)) {
        res->err = FL_ECONFLICT;
        return FL_OK;
    }
    if (c->u.node.raft_id != 0 && rv != FL_OK) {
        return rv;
    }
    rv = store_node_get(t, id, &n);
    if (rv == FL_ENOTFOUND) {
        memset(&n, 0, sizeof n);
        fsm__copy_str(n.id, sizeof n.id, c->u.node.id, c->u.node.idlen);
        n.cap = c->u.node.cap;
        n.created_index = index;
    } else if (rv != FL_OK) {
        return rv;
    }
    n.raft_id = c->u.node.raft_id;
    fsm__copy_str(n.raft_addr, sizeof n.raft_addr, c->u.node.raft_addr, c->u.node.raft_addr_len);
    fsm__copy_str(n.api_addr, sizeof n.api_addr, c->u.node.api_addr, c->u.node.api_addr_len);
    n.kind = c->u.node.kind;
    fsm__copy_str(n.agent_addr, sizeof n.agent_addr, c->u.node.agent_addr,
                  c->u.node.agent_addr_len);
    fsm__copy_str(n.blob_addr, sizeof n.blob_addr, c->u.node.blob_addr, c->u.node.blob_addr_len);
    n.lost = 0; /* registering again brings a lost node back */
    n.n_labels = c->u.node.n_labels;
    for (unsigned i = 0; i < n.n_labels; i++) {
        fsm__copy_str(n.labels[i], sizeof n.labels[i], c->u.node.labels[i],
                      c->u.node.label_lens[i]);
    }
    n.updated_index = index;
    return store_node_put(t, &n);
}

static int update(struct store_txn *t, const struct fsm_cmd *c, uint64_t index,
                  struct fsm_result *res)
{
    struct store_node n;
    char id[STORE_NODE_ID_MAX];
    int rv;
    fsm__copy_str(id, sizeof id, c->u.node.id, c->u.node.idlen);
    rv = store_node_get(t, id, &n);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    switch (c->type) {
    case FSM_CMD_NODE_CAP:
        n.cap = c->u.node.cap;
        break;
    case FSM_CMD_NODE_DRAIN:
        n.drain = c->u.node.drain;
        break;
    case FSM_CMD_NODE_REMOVE:
        return store_node_del(t, id);
    }
    n.updated_index = index;
    return store_node_put(t, &n);
}

static int meta_init(struct store_txn *t, const struct fsm_cmd *c, struct fsm_result *res)
{
    char name[64], value[1025], cur[1025];
    int rv;
    fsm__copy_str(name, sizeof name, c->u.meta.name, c->u.meta.nlen);
    fsm__copy_str(value, sizeof value, c->u.meta.value, c->u.meta.vlen);
    rv = store_meta_get(t, name, cur, sizeof cur);
    if (rv == FL_OK) {
        res->err = FL_EEXIST;
        return FL_OK;
    }
    if (rv != FL_ENOTFOUND) {
        return rv;
    }
    return store_meta_put(t, name, value);
}

int fsm__apply_node(struct fsm *f, const struct fsm_cmd *c, uint64_t index, struct fsm_result *res)
{
    switch (c->type) {
    case FSM_CMD_NODE_REGISTER:
        return reg(f->txn, c, index, res);
    case FSM_CMD_META_INIT:
        return meta_init(f->txn, c, res);
    default:
        return update(f->txn, c, index, res);
    }
}
