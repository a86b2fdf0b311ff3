/* Status, health, nodes and members. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "leader/dispatch.h"
#include "node/agentlink.h"
#include "leader/jobs.h"
#include "leader/locks.h"
#include "node/blobs.h"
#include "node/node_int.h"
#include "store/iter.h"

static const char *state_name(int state)
{
    switch (state) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "unavailable";
    }
}

static json_t *members_json(struct node_server *s)
{
    json_t *arr = json_array();
    struct rg_status st;
    struct rg_peer m;
    rg_repl_status(s->repl, &st);
    for (unsigned i = 0; rg_repl_member(s->repl, i, &m) == FL_OK; i++) {
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:b}", "id", (json_int_t)m.id,
                                             "address", m.addr, "role", rg_role_name(m.role),
                                             "leader", m.id == st.leader_id));
    }
    return arr;
}

/* Counters of the state machine, the store, proposals and access control. */
static void status_counters(struct node_server *s, const struct rg_status *st, const struct fsm *f,
                            uint64_t used, uint64_t map, json_t *o)
{
    json_object_set_new(
        o, "fsm",
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}}", "applied_entries",
                  (json_int_t)f->n_applied, "skipped_entries", (json_int_t)f->n_skipped, "commands",
                  (json_int_t)f->n_cmds, "bad_entries", (json_int_t)f->n_bad, "store_commits",
                  (json_int_t)f->n_commits, "snapshots", (json_int_t)f->n_snapshots, "restores",
                  (json_int_t)f->n_restores, "restores_skipped", (json_int_t)f->n_restores_skipped,
                  "requests", "replayed", (json_int_t)f->n_req_replayed, "stale",
                  (json_int_t)f->n_req_stale, "no_session", (json_int_t)f->n_req_nosession));
    json_object_set_new(o, "store",
                        json_pack("{s:I, s:I, s:I, s:I}", "used_bytes", (json_int_t)used,
                                  "map_bytes", (json_int_t)map, "disk_free_bytes",
                                  (json_int_t)s->disk_free, "writes_refused_full",
                                  (json_int_t)s->n_refused_full));
    json_object_set_new(o, "proposed",
                        json_pack("{s:I, s:I, s:I, s:I}", "entries", (json_int_t)st->n_batches,
                                  "commands", (json_int_t)st->n_proposed, "forwarded",
                                  (json_int_t)s->n_forwarded, "forward_errors",
                                  (json_int_t)s->n_forward_errors));
    json_object_set_new(o, "acl",
                        json_pack("{s:I, s:I}", "denied_unauthenticated",
                                  (json_int_t)s->n_denied_401, "denied_forbidden",
                                  (json_int_t)s->n_denied_403));
}

/* Locks, jobs and HTTP, with the limits of a request. */
static void status_services(struct node_server *s, json_t *o)
{
    if (s->locks != NULL) {
        struct lockmgr_stats ls;
        lockmgr_stats(s->locks, &ls);
        json_object_set_new(o, "locks",
                            json_pack("{s:I, s:I, s:I, s:I, s:b}", "leases", (json_int_t)ls.leases,
                                      "parked", (json_int_t)ls.parked, "expired",
                                      (json_int_t)ls.expired, "extended", (json_int_t)ls.extended,
                                      "can_expire", ls.can_expire));
    }
    if (s->jobs != NULL) {
        struct jobs_stats js;
        jobs_stats(s->jobs, &js);
        json_object_set_new(o, "jobs",
                            json_pack("{s:I, s:I, s:I, s:I, s:b}", "tracked",
                                      (json_int_t)js.tracked, "proposed", (json_int_t)js.proposed,
                                      "fired", (json_int_t)js.fired, "refused",
                                      (json_int_t)js.refused, "leading", js.leading));
    }
    {
        struct http_stats hs;
        http_server_stats(s->http, &hs);
        json_object_set_new(o, "http",
                            json_pack("{s:I, s:I, s:I, s:I, s:I}", "requests",
                                      (json_int_t)hs.requests, "rejected", (json_int_t)hs.rejected,
                                      "rejected_per_address", (json_int_t)hs.rejected_per_ip,
                                      "timed_out", (json_int_t)hs.timed_out, "open_connections",
                                      (json_int_t)hs.open_conns));
        json_object_set_new(o, "limits",
                            json_pack("{s:I, s:I}", "hosts_per_task",
                                      (json_int_t)FSM_TASK_HOSTS_MAX, "refused_hosts_per_task",
                                      (json_int_t)s->n_refused_hosts));
    }
}

/* Raft, agent and blob links. */
static void status_links(struct node_server *s, const struct rg_status *st, json_t *o)
{
    json_object_set_new(
        o, "raft_links",
        json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "established",
            (json_int_t)st->links_established, "refused_handshakes", (json_int_t)st->links_refused,
            "handshake_timeouts", (json_int_t)st->links_timeouts, "closed_bad_frame",
            (json_int_t)st->links_broken, "handshaking", (json_int_t)st->links_handshaking,
            "raft_bytes_sent", (json_int_t)st->raft_bytes_sent, "raft_bytes_received",
            (json_int_t)st->raft_bytes_received, "wire_bytes_sent", (json_int_t)st->wire_bytes_sent,
            "wire_bytes_received", (json_int_t)st->wire_bytes_received));
    if (s->dispatch != NULL) {
        json_t *d = dispatch_stats_json(s->dispatch);
        agentlink_stats(s->links, d);
        json_object_set_new(o, "agent_links",
                            json_pack("{s:O, s:O, s:O}", "connected",
                                      json_object_get(d, "agents_connected"), "refused",
                                      json_object_get(d, "refused_connections"), "bad_frames",
                                      json_object_get(d, "bad_frames")));
        json_decref(d);
    }
    if (s->blobs != NULL) {
        json_t *bl = blobs_status(s->blobs);
        json_object_set_new(bl, "addr", json_string(s->cfg.blob_addr));
        json_object_set_new(o, "blob_links", bl);
    }
}

void node__status(struct node_server *s, struct http_request *req, char **args)
{
    struct rg_status st;
    struct fsm *f = rg_repl_fsm(s->repl);
    uint8_t digest[32];
    char hex[65];
    char leader_api[STORE_NODE_ADDR_MAX] = "";
    uint64_t dindex = 0, dterm = 0, used = 0, map = 0;
    json_t *o;

    rg_repl_status(s->repl, &st);
    rg_repl_flush(s->repl);
    if (store_digest(s->store, digest, &dindex, &dterm) != FL_OK) {
        memset(digest, 0, sizeof digest);
    }
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    }
    node__leader_api(s, leader_api, sizeof leader_api);
    store_usage(s->store, &used, &map);
    o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I}", "id",
                  (json_int_t)st.id, "name", s->cfg.name, "state", state_name(st.state),
                  "raft_addr", s->cfg.raft_addr, "api_addr", s->cfg.api_addr, "in_cluster",
                  st.in_cluster, "ready", st.ready, "term", (json_int_t)st.term, "commit_index",
                  (json_int_t)st.commit_index, "applied_index", (json_int_t)st.applied_index,
                  "last_index", (json_int_t)st.last_index);
    json_object_set_new(o, "leader",
                        st.leader_id
                            ? json_pack("{s:I, s:s, s:s}", "id", (json_int_t)st.leader_id,
                                        "raft_addr", st.leader_addr, "api_addr", leader_api)
                            : json_null());
    json_object_set_new(o, "members", members_json(s));
    json_object_set_new(o, "membership",
                        json_pack("{s:I, s:I, s:I}", "committed_index",
                                  (json_int_t)st.conf_committed_index, "uncommitted_index",
                                  (json_int_t)st.conf_uncommitted_index, "promotee",
                                  (json_int_t)st.promotee_id));
    json_object_set_new(o, "digest",
                        json_pack("{s:s, s:I, s:I}", "sha", hex, "index", (json_int_t)dindex,
                                  "term", (json_int_t)dterm));
    status_counters(s, &st, f, used, map, o);
    status_services(s, o);
    status_links(s, &st, o);
    json_object_set_new(o, "uptime_ms", json_integer((json_int_t)(fl_wall_ms() - s->started_ms)));
    http_respond_json(req, 200, o);
}

void node__health(struct node_server *s, struct http_request *req, char **args)
{
    struct rg_status st;
    struct store_txn *t;
    struct store_node n;
    int draining = 0;
    rg_repl_status(s->repl, &st);
    if (store_begin(s->store, 0, &t) == FL_OK) {
        if (store_node_get(t, s->cfg.name, &n) == FL_OK) {
            draining = n.drain;
        }
        store_abort(t);
    }
    if (!st.in_cluster || st.leader_id == 0 || s->stopping) {
        http_respond_json(req, 503,
                          json_pack("{s:s, s:s, s:b}", "status",
                                    !st.in_cluster ? "no_cluster" : "no_leader", "state",
                                    state_name(st.state), "draining", draining));
        return;
    }
    /* A draining server answers 503 so load balancers stop sending to it. */
    http_respond_json(req, draining ? 503 : 200,
                      json_pack("{s:s, s:s, s:b}", "status", draining ? "draining" : "ok", "state",
                                state_name(st.state), "draining", draining));
}

/* ---- nodes ---------------------------------------------------------------- */

json_t *node__node_json(const struct store_node *n)
{
    json_t *labels = json_object();
    for (unsigned i = 0; i < n->n_labels; i++) {
        const char *eq = strchr(n->labels[i], '=');
        if (eq != NULL) {
            json_object_setn_new(labels, n->labels[i], (size_t)(eq - n->labels[i]),
                                 json_string(eq + 1));
        }
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:b, s:b, s:I, s:I}", "id",
                     n->id, "kind", n->kind == STORE_NODE_SERVER ? "server" : "agent", "raft_id",
                     (json_int_t)n->raft_id, "raft_addr", n->raft_addr, "api_addr", n->api_addr,
                     "agent_addr", n->agent_addr, "blob_addr", n->blob_addr, "labels", labels,
                     "cap", (json_int_t)n->cap, "running", (json_int_t)n->running, "drain",
                     n->drain, "lost", n->lost, "created_index", (json_int_t)n->created_index,
                     "updated_index", (json_int_t)n->updated_index);
}

void node__nodes_list(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_iter it;
    json_t *arr;
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    arr = json_array();
    if (store_iter_open(t, STORE_NODES, NULL, 0, &it) == FL_OK) {
        struct store_node n;
        while (store_node_next(&it, &n) == FL_OK) {
            json_t *j = node__node_json(&n);
            json_object_set_new(j, "connected",
                                json_boolean(dispatch_connected(s->dispatch, n.id)));
            json_array_append_new(arr, j);
        }
        store_iter_close(&it);
    }
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:o}", "nodes", arr));
}

void node__nodes_get(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_node n;
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    rv = store_node_get(t, args[0], &n);
    store_abort(t);
    if (rv == FL_OK) {
        json_t *j = node__node_json(&n);
        json_object_set_new(j, "connected", json_boolean(dispatch_connected(s->dispatch, n.id)));
        http_respond_json(req, 200, j);
    } else {
        node__respond_err(req, rv, "node \"%s\": %s", args[0], fl_strerror(rv));
    }
}

static void node_done(struct node_server *s, struct http_request *req, int err,
                      const struct fsm_result *res)
{
    if (err == FL_OK) {
        err = res->err;
    }
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

static void node_cmd(struct node_server *s, struct http_request *req, int type, const char *id,
                     uint32_t cap, int drain)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = type;
    cmd.u.node.id = id;
    cmd.u.node.idlen = strlen(id);
    cmd.u.node.cap = cap;
    cmd.u.node.drain = drain;
    node__submit(s, req, &cmd, node_done);
}

void node__nodes_cap(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"cap", NULL};
    json_t *body = node__body_object(req, allowed);
    json_t *cap;
    if (body == NULL) {
        return;
    }
    cap = json_object_get(body, "cap");
    if (!json_is_integer(cap) || json_integer_value(cap) < 0 || json_integer_value(cap) > 1000000) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL, "\"cap\" must be an integer 0..1000000");
        return;
    }
    node_cmd(s, req, FSM_CMD_NODE_CAP, args[0], (uint32_t)json_integer_value(cap), 0);
    json_decref(body);
}

void node__nodes_drain(struct node_server *s, struct http_request *req, char **args)
{
    node_cmd(s, req, FSM_CMD_NODE_DRAIN, args[0], 0, 1);
}

void node__nodes_undrain(struct node_server *s, struct http_request *req, char **args)
{
    node_cmd(s, req, FSM_CMD_NODE_DRAIN, args[0], 0, 0);
}

/* The leader sends CANCEL for what runs on the node; the agents report the
 * units cancelled (drain --cancel-at-deadline). */
void node__nodes_cancel_running(struct node_server *s, struct http_request *req, char **args)
{
    unsigned n = dispatch_cancel_node(s->dispatch, args[0]);
    http_respond_json(req, 200, json_pack("{s:s, s:i}", "node", args[0], "cancelled", n));
}

/* ---- members -------------------------------------------------------------- */

void node__members_list(struct node_server *s, struct http_request *req, char **args)
{
    http_respond_json(req, 200, json_pack("{s:o}", "members", members_json(s)));
}

struct member_op {
    struct node_server *s;
    struct http_request *req;
    uint64_t id;
    char name[STORE_NODE_ID_MAX];
    char raft_addr[STORE_NODE_ADDR_MAX];
    char api_addr[STORE_NODE_ADDR_MAX];
    char agent_addr[STORE_NODE_ADDR_MAX];
    char blob_addr[STORE_NODE_ADDR_MAX];
};

static void member_change_done(void *data, int err)
{
    struct member_op *m = data;
    if (err == FL_OK) {
        http_respond_json(
            m->req, 200,
            json_pack("{s:I, s:o}", "id", (json_int_t)m->id, "members", members_json(m->s)));
    } else {
        node__respond_err(m->req, err, "membership change for server %llu: %s",
                          (unsigned long long)m->id, fl_strerror(err));
    }
    fl_free(m);
}

static void register_done(struct node_server *s, struct http_request *req, int err,
                          const struct fsm_result *res)
{
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    if (res->err == FL_ECONFLICT) {
        node__respond_err(req, res->err, "this Raft id belongs to another node name");
        return;
    }
    if (res->err != FL_OK) {
        node__respond_err(req, res->err, "%s", fl_strerror(res->err));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

static void submit_register(struct node_server *s, struct http_request *req, const char *name,
                            uint64_t id, const char *raft_addr, const char *api_addr,
                            const char *agent_addr, const char *blob_addr, node_done_fn done)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_NODE_REGISTER;
    cmd.u.node.id = name;
    cmd.u.node.idlen = strlen(name);
    cmd.u.node.raft_id = id;
    cmd.u.node.raft_addr = raft_addr;
    cmd.u.node.raft_addr_len = strlen(raft_addr);
    cmd.u.node.api_addr = api_addr;
    cmd.u.node.api_addr_len = strlen(api_addr);
    cmd.u.node.kind = STORE_NODE_SERVER;
    cmd.u.node.cap = s->cfg.node_cap;
    cmd.u.node.agent_addr = agent_addr;
    cmd.u.node.agent_addr_len = strlen(agent_addr);
    cmd.u.node.blob_addr = blob_addr;
    cmd.u.node.blob_addr_len = strlen(blob_addr);
    node__submit(s, req, &cmd, done);
}

static void member_added(void *data, int err)
{
    struct member_op *m = data;
    if (err != FL_OK) {
        member_change_done(m, err);
        return;
    }
    if (m->api_addr[0] != '\0') {
        submit_register(m->s, m->req, m->name, m->id, m->raft_addr, m->api_addr, m->agent_addr,
                        m->blob_addr, register_done);
        fl_free(m);
        return;
    }
    member_change_done(m, FL_OK);
}

static int role_from(const char *s)
{
    if (s == NULL || strcmp(s, "voter") == 0) {
        return RAFT_VOTER;
    }
    if (strcmp(s, "standby") == 0) {
        return RAFT_STANDBY;
    }
    if (strcmp(s, "spare") == 0) {
        return RAFT_SPARE;
    }
    return -1;
}

/* Parse {"id", "raft_addr", "api_addr", "name", "role"}; responds on error. */
static struct member_op *member_body(struct node_server *s, struct http_request *req, int *role,
                                     int need_role)
{
    static const char *const allowed[] = {"id",   "raft_addr",  "api_addr",  "name",
                                          "role", "agent_addr", "blob_addr", NULL};
    json_t *body = node__body_object(req, allowed);
    json_t *id, *raft_addr, *api_addr, *name, *jrole;
    struct member_op *m;
    if (body == NULL) {
        return NULL;
    }
    id = json_object_get(body, "id");
    raft_addr = json_object_get(body, "raft_addr");
    api_addr = json_object_get(body, "api_addr");
    name = json_object_get(body, "name");
    jrole = json_object_get(body, "role");
    if (!json_is_integer(id) || json_integer_value(id) <= 0 || !json_is_string(raft_addr) ||
        json_string_length(raft_addr) == 0 ||
        json_string_length(raft_addr) >= STORE_NODE_ADDR_MAX ||
        (api_addr &&
         (!json_is_string(api_addr) || json_string_length(api_addr) >= STORE_NODE_ADDR_MAX)) ||
        (name && (!json_is_string(name) || json_string_length(name) == 0 ||
                  json_string_length(name) >= STORE_NODE_ID_MAX)) ||
        (jrole && !json_is_string(jrole))) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL,
                          "need \"id\" (integer > 0) and \"raft_addr\" (host:port); optional "
                          "\"api_addr\", \"name\", \"role\"");
        return NULL;
    }
    *role = role_from(jrole ? json_string_value(jrole) : NULL);
    if (need_role && *role < 0) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL, "\"role\" must be voter, standby or spare");
        return NULL;
    }
    m = fl_calloc(1, sizeof *m);
    if (m == NULL) {
        json_decref(body);
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return NULL;
    }
    m->s = s;
    m->req = req;
    m->id = (uint64_t)json_integer_value(id);
    snprintf(m->raft_addr, sizeof m->raft_addr, "%s", json_string_value(raft_addr));
    snprintf(m->api_addr, sizeof m->api_addr, "%s", api_addr ? json_string_value(api_addr) : "");
    {
        json_t *ag = json_object_get(body, "agent_addr");
        snprintf(m->agent_addr, sizeof m->agent_addr, "%.127s",
                 json_is_string(ag) ? json_string_value(ag) : "");
        ag = json_object_get(body, "blob_addr");
        snprintf(m->blob_addr, sizeof m->blob_addr, "%.127s",
                 json_is_string(ag) ? json_string_value(ag) : "");
    }
    if (name) {
        snprintf(m->name, sizeof m->name, "%s", json_string_value(name));
    } else {
        snprintf(m->name, sizeof m->name, "server-%llu", (unsigned long long)m->id);
    }
    json_decref(body);
    return m;
}

void node__members_add(struct node_server *s, struct http_request *req, char **args)
{
    int role = 0;
    struct member_op *m = member_body(s, req, &role, 1);
    int rv;
    if (m == NULL) {
        return;
    }
    rv = rg_repl_join(s->repl, m->id, m->raft_addr, role, member_added, m);
    if (rv == FL_EEXIST) {
        member_added(m, FL_OK); /* already a member with that role: idempotent */
        return;
    }
    if (rv != FL_OK) {
        member_change_done(m, rv);
    }
}

void node__register(struct node_server *s, struct http_request *req, char **args)
{
    int role = 0;
    struct member_op *m = member_body(s, req, &role, 0);
    if (m == NULL) {
        return;
    }
    submit_register(s, req, m->name, m->id, m->raft_addr, m->api_addr, m->agent_addr, m->blob_addr,
                    register_done);
    fl_free(m);
}

void node__members_remove(struct node_server *s, struct http_request *req, char **args)
{
    struct member_op *m;
    uint64_t id;
    int rv;
    if (!node__uint_arg(req, "server id", args[0], 1, UINT64_MAX, &id)) {
        return;
    }
    m = fl_calloc(1, sizeof *m);
    if (m == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    m->s = s;
    m->req = req;
    m->id = id;
    rv = rg_repl_remove(s->repl, id, member_change_done, m);
    if (rv != FL_OK) {
        member_change_done(m, rv);
    }
}

void node__members_promote(struct node_server *s, struct http_request *req, char **args)
{
    struct member_op *m;
    uint64_t id;
    int rv;
    if (!node__uint_arg(req, "server id", args[0], 1, UINT64_MAX, &id)) {
        return;
    }
    m = fl_calloc(1, sizeof *m);
    if (m == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    m->s = s;
    m->req = req;
    m->id = id;
    rv = rg_repl_assign(s->repl, id, RAFT_VOTER, member_change_done, m);
    if (rv == FL_EEXIST) {
        member_change_done(m, FL_OK);
        return;
    }
    if (rv != FL_OK) {
        member_change_done(m, rv);
    }
}

void node__members_transfer(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"id", NULL};
    struct member_op *m;
    uint64_t id = 0;
    int rv;
    if (req->body_len > 0) {
        json_t *body = node__body_object(req, allowed);
        json_t *jid;
        if (body == NULL) {
            return;
        }
        jid = json_object_get(body, "id");
        if (jid != NULL && (!json_is_integer(jid) || json_integer_value(jid) < 0)) {
            json_decref(body);
            node__respond_err(req, FL_EINVAL, "\"id\" must be a server id");
            return;
        }
        id = jid ? (uint64_t)json_integer_value(jid) : 0;
        json_decref(body);
    }
    m = fl_calloc(1, sizeof *m);
    if (m == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    m->s = s;
    m->req = req;
    m->id = id;
    rv = rg_repl_transfer(s->repl, id, member_change_done, m);
    if (rv != FL_OK) {
        member_change_done(m, rv);
    }
}
