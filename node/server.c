/* The server daemon: lifecycle, joining, and recording this server's
 * addresses in the replicated nodes table. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "agent/agent.h"
#include "http/blocking.h"
#include "http/client.h"
#include "node/blobs.h"
#include "node/denylist.h"
#include "leader/dispatch.h"
#include "node/agentlink.h"
#include "leader/jobs.h"
#include "leader/locks.h"
#include "node/node_int.h"

void node_config_defaults(struct node_config *c)
{
    memset(c, 0, sizeof *c);
    c->join_role = RAFT_VOTER;
    c->store_size = (size_t)1 << 30;
    c->max_body = 1024 * 1024;
    c->node_cap = 4;
    c->min_free_disk = 64u << 20;
    snprintf(c->agent_addr, sizeof c->agent_addr, "127.0.0.1:8601");
    snprintf(c->blob_addr, sizeof c->blob_addr, "127.0.0.1:8701");
    c->lost_after_ms = 10000;
    c->heartbeat_ms = 1000;
}

/* ---- keeping our row in the nodes table right ------------------------------ */

static int own_row_ok(struct node_server *s)
{
    struct store_txn *t;
    struct store_node n;
    int ok = 0;
    if (store_begin(s->store, 0, &t) != FL_OK) {
        return 0;
    }
    if (store_node_get(t, s->cfg.name, &n) == FL_OK) {
        ok = n.kind == STORE_NODE_SERVER && n.raft_id == s->cfg.id &&
             strcmp(n.raft_addr, s->cfg.raft_addr) == 0 &&
             strcmp(n.api_addr, s->cfg.api_addr) == 0 &&
             strcmp(n.agent_addr, s->cfg.agent_addr) == 0 &&
             strcmp(n.blob_addr, s->cfg.blob_addr) == 0 && n.n_labels == s->cfg.n_labels;
    }
    store_abort(t);
    return ok;
}

static void fill_register(struct node_server *s, struct fsm_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->type = FSM_CMD_NODE_REGISTER;
    cmd->u.node.id = s->cfg.name;
    cmd->u.node.idlen = strlen(s->cfg.name);
    cmd->u.node.raft_id = s->cfg.id;
    cmd->u.node.raft_addr = s->cfg.raft_addr;
    cmd->u.node.raft_addr_len = strlen(s->cfg.raft_addr);
    cmd->u.node.api_addr = s->cfg.api_addr;
    cmd->u.node.api_addr_len = strlen(s->cfg.api_addr);
    cmd->u.node.kind = STORE_NODE_SERVER;
    cmd->u.node.cap = s->cfg.no_agent ? 0 : s->cfg.node_cap; /* no agent: runs nothing */
    cmd->u.node.agent_addr = s->cfg.agent_addr;
    cmd->u.node.agent_addr_len = strlen(s->cfg.agent_addr);
    cmd->u.node.blob_addr = s->cfg.blob_addr;
    cmd->u.node.blob_addr_len = strlen(s->cfg.blob_addr);
    cmd->u.node.n_labels = s->cfg.n_labels;
    for (unsigned i = 0; i < s->cfg.n_labels; i++) {
        cmd->u.node.labels[i] = s->cfg.labels[i];
        cmd->u.node.label_lens[i] = strlen(s->cfg.labels[i]);
    }
}

static void register_local_cb(void *data, int err, const struct fsm_result *res)
{
    struct node_server *s = data;
    s->register_inflight = 0;
    if (err != FL_OK) {
        FL_WARN("recording this server in the nodes table: %s", fl_strerror(err));
    }
}

static void register_remote_cb(void *data, int err, int status, const char *ct, const uint8_t *body,
                               size_t len)
{
    struct node_server *s = data;
    s->register_inflight = 0;
    if (err != FL_OK || status != 200) {
        FL_DEBUG("registering with the leader: %s %d", fl_strerror(err), status);
    }
}

static char *member_json(struct node_server *s, const char *role)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)s->cfg.id, "raft_addr",
                  s->cfg.raft_addr, "api_addr", s->cfg.api_addr, "name", s->cfg.name, "agent_addr",
                  s->cfg.agent_addr, "blob_addr", s->cfg.blob_addr);
    char *text;
    if (role != NULL) {
        json_object_set_new(o, "role", json_string(role));
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* Headers of a POST from this server to another's internal route. Internal calls carry no
 * signature: the server's certificate on the HTTPS connection is its proof (docs/ACL.md). */
static void internal_headers(struct node_server *s, const char *target, const char *body, char *out,
                             size_t size)
{
    (void)s;
    (void)target;
    (void)body;
    snprintf(out, size, "Content-Type: application/json\r\n");
}

static void ensure_registered(struct node_server *s, const struct rg_status *st)
{
    char leader[STORE_NODE_ADDR_MAX + 16];
    if (s->register_inflight || own_row_ok(s)) {
        return;
    }
    if (st->state == RAFT_LEADER) {
        struct fsm_cmd cmd;
        if (!st->ready) {
            return;
        }
        fill_register(s, &cmd);
        if (rg_repl_submit(s->repl, &cmd, register_local_cb, s, NULL) == FL_OK) {
            s->register_inflight = 1;
        }
        return;
    }
    if (node__leader_url(s, leader, sizeof leader)) {
        char *body = member_json(s, NULL);
        char hdr[256];
        if (body != NULL) {
            internal_headers(s, "/v1/internal/register", body, hdr, sizeof hdr);
        }
        if (body != NULL &&
            http_client_request(s->loop, leader, "POST", "/v1/internal/register", hdr, body,
                                strlen(body), 5000, register_remote_cb, s) == FL_OK) {
            s->register_inflight = 1;
        }
        free(body);
    }
}

/* ---- joining ----------------------------------------------------------------- */

static void join_cb(void *data, int err, int status, const char *ct, const uint8_t *body,
                    size_t len)
{
    struct node_server *s = data;
    s->join_inflight = 0;
    if (err == FL_OK && status == 200) {
        FL_INFO("joined the cluster through %s", s->cfg.join);
        s->joined = 1;
        return;
    }
    if (err != FL_OK) {
        FL_WARN("join through %s: %s; retrying", s->cfg.join, fl_strerror(err));
    } else {
        FL_WARN("join through %s: HTTP %d %.*s; retrying", s->cfg.join, status,
                (int)(len > 300 ? 300 : len), (const char *)body);
    }
}

static void try_join(struct node_server *s)
{
    char *body, hdr[256], url[sizeof s->cfg.join + 16];
    if (s->join_inflight || s->joined) {
        return;
    }
    body = member_json(s, s->cfg.join_role == RAFT_STANDBY ? "standby" : "voter");
    if (body == NULL) {
        return;
    }
    internal_headers(s, "/v1/members", body, hdr, sizeof hdr);
    snprintf(url, sizeof url, "%s%s", strstr(s->cfg.join, "://") ? "" : "https://", s->cfg.join);
    if (http_client_request(s->loop, url, "POST", "/v1/members", hdr, body, strlen(body), 120000,
                            join_cb, s) == FL_OK) {
        s->join_inflight = 1;
    }
    free(body);
}

static void cluster_id_cb(void *data, int err, const struct fsm_result *res)
{
    (void)data;
    if (err == FL_OK && res->err == FL_OK) {
        FL_INFO("cluster id recorded");
    }
}

/* The leader names the cluster once; META_INIT keeps the first name. */
static void on_leader(void *data)
{
    struct node_server *s = data;
    struct store_txn *t;
    struct rg_status st;
    char cur[128];
    int have = 0;
    /* Followers forward to the address in our row: write it first. */
    rg_repl_status(s->repl, &st);
    ensure_registered(s, &st);
    if (s->locks != NULL) {
        lockmgr_on_leader(s->locks);
    }
    if (store_begin(s->store, 0, &t) == FL_OK) {
        have = store_meta_get(t, "cluster_id", cur, sizeof cur) == FL_OK;
        store_abort(t);
    }
    if (!have) {
        uint8_t rnd[16];
        char hex[33];
        struct fsm_cmd cmd;
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_META_INIT;
        cmd.u.meta.name = "cluster_id";
        cmd.u.meta.nlen = strlen("cluster_id");
        cmd.u.meta.value = hex;
        cmd.u.meta.vlen = strlen(hex);
        rg_repl_submit(s->repl, &cmd, cluster_id_cb, s, NULL);
    }
}

/* The revoked agents, for the handshakes; the open links of agents that
 * became revoked are closed (node/denylist.h). */
static void refresh_denylist(struct node_server *s)
{
    unsigned before = denylist_count(s->deny);
    if (denylist_refresh(s->deny, s->store) != FL_OK) {
        return; /* the copy stays as it was; the leader checks each HELLO */
    }
    if (denylist_count(s->deny) > 0 && s->links != NULL) {
        agentlink_close_denied(s->links, s->deny);
    }
    if (denylist_count(s->deny) != before) {
        FL_INFO("%u agent(s) revoked", denylist_count(s->deny));
    }
}

static void tick_cb(uv_timer_t *h)
{
    struct node_server *s = h->data;
    struct rg_status st;
    if (s->stopping) {
        return;
    }
    rg_repl_status(s->repl, &st);
    /* A join is a request to add this server and then assign its role. If
     * the leader fails between the two, this server is already in the
     * configuration as a spare: it keeps asking (the leader's answer to a
     * known spare is the assignment) until it holds the role or is told so. */
    if (s->cfg.join[0] != '\0' && !s->joined &&
        (!st.in_cluster || (st.role == RAFT_SPARE && s->cfg.join_role != RAFT_SPARE))) {
        try_join(s);
    }
    if (st.in_cluster && st.leader_id != 0) {
        ensure_registered(s, &st);
    }
    if (s->blobs != NULL) {
        blobs_tick(s->blobs, uv_now(s->loop));
    }
    refresh_denylist(s);
}

/* ---- lifecycle --------------------------------------------------------------- */

static void closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void repl_closed(void *data)
{
    struct node_server *s = data;
    s->repl = NULL;
    uv_close((uv_handle_t *)&s->tick, closed_cb);
    uv_close((uv_handle_t *)&s->sigint, closed_cb);
    uv_close((uv_handle_t *)&s->sigterm, closed_cb);
    uv_close((uv_handle_t *)&s->sighup, closed_cb);
}

static void http_stopped(void *data)
{
    struct node_server *s = data;
    s->http = NULL;
    /* No request uses the blob directory any more (a commit still hashing
     * finds it gone and answers shutdown). */
    blobs_destroy(s->blobs);
    s->blobs = NULL;
    rg_repl_close(s->repl, repl_closed, s);
}

static void jobs_closed(void *data)
{
    struct node_server *s = data;
    s->jobs = NULL;
    if (s->http != NULL) {
        http_server_stop(s->http, http_stopped, s);
    } else {
        http_stopped(s);
    }
}

static void locks_closed(void *data)
{
    struct node_server *s = data;
    s->locks = NULL;
    if (s->jobs != NULL) {
        jobs_close(s->jobs, jobs_closed, s);
    } else {
        jobs_closed(s);
    }
}

static void dispatch_closed(void *data)
{
    struct node_server *s = data;
    s->dispatch = NULL;
    if (s->locks != NULL) {
        lockmgr_close(s->locks, locks_closed, s);
    } else {
        locks_closed(s);
    }
}

static void links_closed(void *data)
{
    struct node_server *s = data;
    s->links = NULL;
    if (s->dispatch != NULL) {
        dispatch_close(s->dispatch, dispatch_closed, s);
    } else {
        dispatch_closed(s);
    }
}

/* The agent links go first: closing them detaches their agents from the
 * dispatcher, which closes next. */
static void agent_closed(void *data)
{
    struct node_server *s = data;
    s->agent = NULL;
    if (s->links != NULL) {
        agentlink_close(s->links, links_closed, s);
    } else {
        links_closed(s);
    }
}

static void stop(struct node_server *s)
{
    if (s->stopping) {
        FL_WARN("second signal: exiting now");
        exit(1);
    }
    FL_INFO("shutting down");
    s->stopping = 1;
    uv_timer_stop(&s->tick);
    if (s->agent != NULL) {
        agent_close(s->agent, agent_closed, s);
    } else {
        agent_closed(s);
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    stop(h->data);
}

/* SIGHUP: read the CA bundle, the certificate and its key again, for the
 * handshakes that follow (certificate rotation, docs/SECURITY.md); open links
 * keep theirs. On any error the certificates in use stay. */
static void sighup_cb(uv_signal_t *h, int signum)
{
    struct node_server *s = h->data;
    char err[FL_ERRMSG_SIZE];
    (void)signum;
    if (tls_creds_reload(s->creds, NULL, err) == FL_OK) {
        FL_INFO("SIGHUP: certificates reloaded (%s, CA %s)", tls_creds_cert_path(s->creds),
                tls_creds_ca_path(s->creds));
    } else {
        FL_WARN("SIGHUP: kept the certificates in use: %s", err);
    }
}

static int mkdir_one(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

/* The data directory and the store in DATA/store. Returns 0, or -1 after
 * saying why. */
static int open_store(struct node_server *s)
{
    struct store_options so = {0};
    char path[4200];
    char err[FL_ERRMSG_SIZE];
    int rv;
    if (mkdir_one(s->cfg.data_dir) != 0) {
        fprintf(stderr, "flotilla: cannot create %s: %s\n", s->cfg.data_dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/store", s->cfg.data_dir);
    so.map_size = s->cfg.store_size;
    so.log_durable = 1; /* the Raft log is the durable copy (docs/STORE.md) */
    rv = store_open(path, &so, &s->store, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla: opening the store in %s: %s\n", path, err);
        return -1;
    }
    if (store_rebuilt(s->store)) {
        FL_WARN("store: the store was not flushed before the machine restarted; "
                "it was removed and is rebuilt from the Raft snapshot and log");
    }
    return 0;
}

/* The replication instance over the store, its Raft state in DATA/raft.
 * Returns 0, or -1 after saying why. */
static int create_repl(struct node_server *s)
{
    struct rg_repl_options ro = {0};
    char path[4200];
    char err[FL_ERRMSG_SIZE];
    int rv;
    snprintf(path, sizeof path, "%s/raft", s->cfg.data_dir);
    ro.id = s->cfg.id;
    ro.raft_addr = s->cfg.raft_addr;
    ro.dir = path;
    ro.snapshot_threshold = s->cfg.snapshot_threshold;
    ro.snapshot_trailing = s->cfg.snapshot_trailing;
    ro.creds = s->creds;
    ro.raft_plaintext = s->cfg.raft_plaintext;
    if (s->cfg.raft_plaintext) {
        FL_WARN("Raft traffic is NOT encrypted (--raft-plaintext, for measurement only)");
    }
    rv = rg_repl_create(s->loop, s->store, &ro, &s->repl, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla: %s\n", err);
        return -1;
    }
    return 0;
}

/* Bootstrap if asked (a bootstrapped directory keeps its state) and start
 * Raft. Returns 0, or -1 after saying why. */
static int start_repl(struct node_server *s)
{
    char err[FL_ERRMSG_SIZE];
    int rv;
    if (s->cfg.bootstrap) {
        rv = rg_repl_bootstrap(s->repl, s->cfg.peers, s->cfg.n_peers, err);
        if (rv == FL_EEXIST) {
            FL_INFO("already bootstrapped; starting from the existing state");
        } else if (rv != FL_OK) {
            fprintf(stderr, "flotilla: %s\n", err);
            return -1;
        }
    }
    rg_repl_on_leader(s->repl, on_leader, s);
    rv = rg_repl_start(s->repl, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla: %s\n", err);
        return -1;
    }
    return 0;
}

/* This server's own agent, joining at its agent address; exits on failure. */
static void start_embedded_agent(struct node_server *s)
{
    struct agent_config ac;
    char err[FL_ERRMSG_SIZE];
    memset(&ac, 0, sizeof ac);
    snprintf(ac.id, sizeof ac.id, "%s", s->cfg.name);
    ac.cap = s->cfg.node_cap;
    ac.n_labels = s->cfg.n_labels;
    memcpy(ac.labels, s->cfg.labels, sizeof ac.labels);
    ac.n_join = 1;
    snprintf(ac.join[0], sizeof ac.join[0], "%s", s->cfg.agent_addr);
    snprintf(ac.data_dir, sizeof ac.data_dir, "%.4000s/agent", s->cfg.data_dir);
    /* The embedded agent links with its server's certificate (tls/tlink.h). */
    ac.creds = s->creds;
    memcpy(ac.tls_ca, s->cfg.tls_ca, sizeof ac.tls_ca);
    memcpy(ac.tls_cert, s->cfg.tls_cert, sizeof ac.tls_cert);
    memcpy(ac.tls_key, s->cfg.tls_key, sizeof ac.tls_key);
    memcpy(ac.apps_dir, s->cfg.apps_dir, sizeof ac.apps_dir);
    if (agent_create(s->loop, &ac, &s->agent, err) != FL_OK) {
        fprintf(stderr, "flotilla: embedded agent: %s\n", err);
        exit(1);
    }
}

/* Blobs, agent dispatch, locks, jobs and the embedded agent (unless
 * --no-agent); a failure here exits. */
/* The cron clock's view of the dispatcher (leader/jobs.h). */
static int jobs_connected(void *data, const char *node)
{
    struct node_server *s = data;
    return dispatch_connected(s->dispatch, node);
}

static void jobs_kick(void *data)
{
    struct node_server *s = data;
    dispatch_kick(s->dispatch);
}

/* The leader's dispatch loop on its port, talking to agents over the links. */
static void start_dispatch(struct node_server *s)
{
    struct dispatch_agents agents;
    struct dispatch_config dc;
    memset(&dc, 0, sizeof dc);
    dc.lost_after_ms = s->cfg.lost_after_ms;
    dc.heartbeat_ms = s->cfg.heartbeat_ms;
    dc.placement_pack = s->cfg.placement_pack;
    node_secret_key(s->cfg.key, dc.secret_key);
    leader_io_uv_init(&s->dispatch_io, s);
    agentlink_port(s->links, &agents);
    if (dispatch_create(&s->dispatch_io.io, &agents, &dc, &s->dispatch) != FL_OK) {
        fprintf(stderr, "flotilla: the dispatcher: out of memory\n");
        exit(1);
    }
    sodium_memzero(dc.secret_key, sizeof dc.secret_key);
    agentlink_set_dispatch(s->links, s->dispatch);
}

static void start_services(struct node_server *s)
{
    char err[FL_ERRMSG_SIZE];
    int rv;
    rv = blobs_create(s, &s->blobs, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla: %s\n", err);
        exit(1);
    }
    rv = agentlink_create(s, &s->links, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla: %s\n", err);
        exit(1);
    }
    start_dispatch(s);
    leader_io_uv_init(&s->locks_io, s);
    leader_io_uv_init(&s->jobs_io, s);
    s->jobs_hooks.connected = jobs_connected;
    s->jobs_hooks.kick = jobs_kick;
    s->jobs_hooks.data = s;
    if (lockmgr_create(&s->locks_io.io, &node__lock_answers, &s->locks) != FL_OK ||
        jobs_create(&s->jobs_io.io, &s->jobs_hooks, &s->jobs) != FL_OK) {
        fprintf(stderr, "flotilla: out of memory\n");
        exit(1);
    }
    if (!s->cfg.no_agent) {
        start_embedded_agent(s);
    }
}

/* The housekeeping timer and the SIGINT/SIGTERM handlers. */
static void start_loop_handles(struct node_server *s)
{
    uv_timer_init(s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, tick_cb, 200, 500);
    uv_signal_init(s->loop, &s->sigint);
    uv_signal_init(s->loop, &s->sigterm);
    s->sigint.data = s;
    s->sigterm.data = s;
    uv_signal_start(&s->sigint, signal_cb, SIGINT);
    uv_signal_start(&s->sigterm, signal_cb, SIGTERM);
    uv_signal_init(s->loop, &s->sighup);
    s->sighup.data = s;
    uv_signal_start(&s->sighup, sighup_cb, SIGHUP);
}

/* Every API connection, agent link and Raft link is a descriptor: take the
 * hard limit rather than the usual soft 1024, so thousands of agents and
 * clients (and a flood of slow ones, cut by the HTTP deadlines) fit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > (1u << 20) ? (1u << 20) : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int node_server_run(const struct node_config *cfg)
{
    struct node_server *s;
    struct http_limits lim = {0};
    char err[FL_ERRMSG_SIZE];
    int rv, status = 1;

    signal(SIGPIPE, SIG_IGN); /* raft-notes §0.2 */
    raise_fd_limit();
    if (sodium_init() < 0) {
        fprintf(stderr, "flotilla: libsodium failed to initialise\n");
        return 1;
    }
    s = fl_calloc(1, sizeof *s);
    if (s == NULL) {
        return 1;
    }
    s->cfg = *cfg;
    s->creds = cfg->creds;
    if (s->creds == NULL || tls_creds_self(s->creds)->role != PKI_ROLE_SERVER) {
        fprintf(stderr, "flotilla: a server needs a server certificate of the cluster CA "
                        "(flotilla cert issue --role server)\n");
        fl_free(s);
        return 2;
    }
    if (s->cfg.name[0] == '\0') {
        snprintf(s->cfg.name, sizeof s->cfg.name, "%s", tls_creds_self(s->creds)->name);
    } else if (strcmp(s->cfg.name, tls_creds_self(s->creds)->name) != 0) {
        fprintf(stderr,
                "flotilla: --name %s, but the certificate %s names \"%s\": a server's name is "
                "the one in its certificate\n",
                s->cfg.name, s->cfg.tls_cert, tls_creds_self(s->creds)->name);
        fl_free(s);
        return 2;
    }
    fl_log_init(s->cfg.name);
    s->loop = uv_default_loop();
    s->started_ms = fl_wall_ms();

    if (open_store(s) != 0) {
        goto out;
    }
    if (denylist_create(&s->deny) != FL_OK) {
        goto out_store;
    }
    denylist_refresh(s->deny, s->store);
    tls_creds_set_deny(s->creds, denylist_hook, s->deny);
    if (create_repl(s) != 0) {
        goto out_store;
    }
    if (start_repl(s) != 0) {
        goto out_repl;
    }
    lim.max_body = s->cfg.max_body;
    lim.max_conns_per_ip = s->cfg.max_conns_per_ip;
    lim.tls = s->creds; /* HTTPS, with the server's certificate */
    http_client_set_tls(s->creds);
    httpc_set_tls(s->creds);
    rv = http_server_start(s->loop, s->cfg.api_addr, &lim, node__api_handle, s, &s->http, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla: API on %s: %s\n", s->cfg.api_addr, err);
        s->stopping = 1;
        rg_repl_close(s->repl, NULL, NULL);
        s->repl = NULL;
        uv_run(s->loop, UV_RUN_DEFAULT);
        goto out_store;
    }
    start_services(s);
    start_loop_handles(s);
    FL_INFO("server %llu: API https://%s, Raft %s, agents %s, blobs %s, data %s",
            (unsigned long long)s->cfg.id, s->cfg.api_addr, s->cfg.raft_addr, s->cfg.agent_addr,
            s->cfg.blob_addr, s->cfg.data_dir);
    uv_run(s->loop, UV_RUN_DEFAULT);
    status = 0;
    FL_INFO("stopped");
    goto out_store;
out_repl:
    s->stopping = 1;
    rg_repl_close(s->repl, NULL, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
out_store:
    tls_creds_set_deny(s->creds, NULL, NULL);
    denylist_destroy(s->deny);
    store_close(s->store);
out:
    /* Pooled client connections are loop handles too. */
    http_client_close_idle(s->loop);
    uv_run(s->loop, UV_RUN_DEFAULT);
    uv_loop_close(s->loop);
    fl_free(s);
    return status;
}
