/* The dispatcher: agent sessions and the leader's dispatch loop
 * (node/dispatch.h; docs/SCHEDULER.md). Everything runs on the server's
 * loop thread. */
#include "node/dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "agentproto/aproto.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/ident.h"
#include "common/log.h"
#include "common/schan.h"
#include "common/strmap.h"
#include "node/node_int.h"
#include "node/spec.h"
#include "fsm/cmd.h"

#define TICK_MS          250
#define RECONCILE_MS     3000 /* a re-attached agent has this long to report a unit */
#define LOG_KEEP_BYTES   (256 * 1024)
#define LOG_UNITS_MAX    2000
#define SPEC_CACHE_MAX   4096
#define CANDIDATES_MAX   8192

struct session {
    uv_tcp_t tcp;
    struct dispatch *d;
    struct schan *ch; /* the secure channel (docs/SECURITY.md "Links") */
    char peer[64];    /* remote address, for logs */
    struct aproto_reader rd;
    char id[STORE_NODE_ID_MAX];
    int welcomed;
    int closing;
    int shutting; /* closing once the queued writes are out */
    uint64_t last_seen;
    /* Units the agent still runs that are no longer its own (reported at
     * HELLO after they were taken back, and cancelled then): they hold real
     * slots until their DONE arrives, so placement counts them. */
    struct strmap stale;
    uint32_t reported_running; /* its last HELLO or HEARTBEAT */
    struct session *prev, *next;
};

struct write_req {
    uv_write_t req;
    uint8_t *data;
};

/* What the leader remembers of a task to place and run its units. */
struct task_cache {
    int32_t priority;
    unsigned n_constraints;
    char constraints[STORE_TASK_CONSTRAINTS][STORE_NODE_LABEL_MAX];
    const char *cons_ptrs[STORE_TASK_CONSTRAINTS];
    uint32_t timeout_ms;
    uint32_t n_units;
    uint32_t max_running; /* 0 = no limit */
    int placement;        /* FSM_PLACE_*: host pins each unit to the node its host names */
    char name[STORE_TASK_NAME_MAX];
    struct node_spec spec;
    int spec_ok;
};

struct missing {
    char node[STORE_NODE_ID_MAX];
    uint64_t token;
    uint64_t deadline;
};

struct cnode {
    struct store_node n;
    /* Its labels and the implicit "node=<id>" every node carries (jobs in
     * mode all pin one task to each node with it). */
    char self_label[STORE_NODE_ID_MAX + 8];
    const char *label_ptrs[STORE_NODE_LABELS + 1];
    uint32_t inflight; /* assignments proposed, not yet applied */
};

struct dispatch {
    struct node_server *s;
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t round_timer;
    uv_timer_t tick;
    int open_handles;
    int closing;
    void (*close_cb)(void *data);
    void *close_data;

    struct session *sessions;
    struct strmap by_id;        /* agent id -> session (welcomed) */
    struct strmap pending;      /* unit key -> (void *)1: assignment in flight */
    struct strmap missing;      /* unit key -> struct missing */
    struct strmap disconnected; /* node -> uint64_t * since (ms) */
    struct strmap lost_sent;    /* node -> (void *)1: NODE_LOST proposed */
    struct strmap logs;         /* unit key -> struct fl_buf * */
    struct strmap tasks;        /* task id -> struct task_cache */
    struct strmap cancels;      /* task id -> (void *)1: cancel sweep to do */

    struct cnode *nodes;
    unsigned n_nodes, cap_nodes;
    struct strmap node_index; /* node id -> (uintptr_t) index + 1 */
    int nodes_dirty;

    int leader;
    uint64_t leader_since;
    int round_pending;
    int in_round; /* round_run holds pointers into the task cache: no eviction */

    uint64_t n_assigned, n_assign_refused, n_runs, n_results, n_stale, n_lost, n_requeued;
    uint64_t n_rounds, n_bad_frames;
    uint64_t n_refused; /* connections refused by the secure channel or the identity check */
};

static uint64_t now_ms(struct dispatch *d)
{
    return uv_now(d->loop);
}

static void unit_key(char *out, size_t cap, const char *task, uint32_t unit)
{
    snprintf(out, cap, "%s/%u", task, unit);
}

/* ---- sending ------------------------------------------------------------ */

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    fl_free(w->data);
    fl_free(w);
}

/* Encrypt protocol bytes and write them. */
static int send_plain(struct session *ss, const uint8_t *p, size_t n)
{
    struct fl_buf wire;
    struct write_req *w;
    uv_buf_t buf;
    int rv;
    if (ss->ch == NULL || schan_state(ss->ch) != SCHAN_OPEN) {
        return FL_ENET;
    }
    fl_buf_init(&wire);
    rv = schan_send(ss->ch, p, n, &wire);
    w = rv == FL_OK ? fl_malloc(sizeof *w) : NULL;
    if (w == NULL) {
        fl_buf_close(&wire);
        return rv != FL_OK ? rv : FL_ENOMEM;
    }
    buf.len = wire.len;
    w->data = fl_buf_steal(&wire, NULL);
    buf.base = (char *)w->data;
    if (uv_write(&w->req, (uv_stream_t *)&ss->tcp, &buf, 1, write_done) != 0) {
        fl_free(w->data);
        fl_free(w);
        return FL_ENET;
    }
    return FL_OK;
}

/* Handshake bytes, written as they are. */
static void send_wire(struct session *ss, struct fl_buf *wire)
{
    struct write_req *w;
    uv_buf_t buf;
    if (wire->len == 0 || (w = fl_malloc(sizeof *w)) == NULL) {
        return;
    }
    buf.len = wire->len;
    w->data = fl_buf_steal(wire, NULL);
    buf.base = (char *)w->data;
    if (uv_write(&w->req, (uv_stream_t *)&ss->tcp, &buf, 1, write_done) != 0) {
        fl_free(w->data);
        fl_free(w);
    }
}

static int send_msg(struct session *ss, const struct aproto_msg *m)
{
    struct fl_buf b;
    char err[FL_ERRMSG_SIZE];
    int rv;
    if (ss == NULL || ss->closing) {
        return FL_ENET;
    }
    fl_buf_init(&b);
    if (aproto_encode_ex(m, APROTO_FRAME_LIMIT, &b, err) != FL_OK) {
        FL_WARN("agent %s: cannot encode %s: %s", ss->id, aproto_type_name(m->type), err);
        fl_buf_close(&b);
        return FL_EINVAL;
    }
    rv = send_plain(ss, b.data, b.len);
    fl_buf_close(&b);
    return rv;
}

static void dispatch_finish(struct dispatch *d);

static void session_closed(uv_handle_t *h)
{
    struct session *ss = h->data;
    struct dispatch *d = ss->d;
    aproto_reader_close(&ss->rd);
    schan_destroy(ss->ch);
    strmap_close(&ss->stale);
    if (ss->prev) {
        ss->prev->next = ss->next;
    } else {
        d->sessions = ss->next;
    }
    if (ss->next) {
        ss->next->prev = ss->prev;
    }
    fl_free(ss);
    if (d->closing && --d->open_handles == 0) {
        dispatch_finish(d);
    }
}

static void session_close(struct session *ss, const char *why)
{
    struct dispatch *d = ss->d;
    if (ss->closing) {
        return;
    }
    ss->closing = 1;
    if (ss->welcomed) {
        uint64_t *since = fl_malloc(sizeof *since);
        FL_INFO("agent %s disconnected: %s", ss->id, why);
        if (strmap_get(&d->by_id, ss->id) == ss) {
            strmap_del(&d->by_id, ss->id);
        }
        if (since != NULL) {
            void *old = NULL;
            *since = now_ms(d);
            strmap_put(&d->disconnected, ss->id, since, &old);
            fl_free(old);
        }
    }
    if (d->closing) {
        d->open_handles++;
    }
    uv_close((uv_handle_t *)&ss->tcp, session_closed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct session *ss = req->data;
    fl_free(req);
    session_close(ss, "answered");
}

/* Close once what is queued has been written (uv_close would drop it). */
static void session_close_after_write(struct session *ss)
{
    uv_shutdown_t *req;
    if (ss->closing || ss->shutting) {
        return;
    }
    ss->shutting = 1;
    req = fl_malloc(sizeof *req);
    if (req == NULL) {
        session_close(ss, "out of memory");
        return;
    }
    req->data = ss;
    uv_read_stop((uv_stream_t *)&ss->tcp);
    if (uv_shutdown(req, (uv_stream_t *)&ss->tcp, shutdown_cb) != 0) {
        fl_free(req);
        session_close(ss, "shutdown failed");
    }
}

static void send_error(struct session *ss, const char *code, const char *msg)
{
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_ERROR);
    m.u.error.code = code;
    m.u.error.message = msg;
    send_msg(ss, &m);
}

static struct session *session_of(struct dispatch *d, const char *node)
{
    struct session *ss = strmap_get(&d->by_id, node);
    return ss != NULL && !ss->closing ? ss : NULL;
}

static void send_cancel(struct dispatch *d, const char *node, const char *task, uint32_t unit,
                        uint32_t attempt, uint64_t token)
{
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_CANCEL);
    aproto_unit_ref_set(&m.u.cancel.ref, task, unit, attempt, token);
    send_msg(session_of(d, node), &m);
}

/* ---- caches -------------------------------------------------------------- */

static void task_cache_free(struct task_cache *tc)
{
    if (tc->spec_ok) {
        node_spec_close(&tc->spec);
    }
    fl_free(tc);
}

static struct task_cache *task_get(struct dispatch *d, struct store_txn *t, const char *id)
{
    struct task_cache *tc = strmap_get(&d->tasks, id);
    struct store_task task;
    if (tc != NULL) {
        return tc;
    }
    if (store_task_get(t, id, &task) != FL_OK) {
        return NULL;
    }
    /* Not during a round: its candidates point into cached entries. */
    if (!d->in_round && strmap_size(&d->tasks) >= SPEC_CACHE_MAX) {
        size_t i = 0;
        const char *k;
        void *v;
        while (strmap_size(&d->tasks) >= SPEC_CACHE_MAX / 2 && strmap_next(&d->tasks, &i, &k, &v)) {
            task_cache_free(strmap_del(&d->tasks, k));
        }
    }
    tc = fl_calloc(1, sizeof *tc);
    if (tc == NULL) {
        return NULL;
    }
    tc->priority = task.priority;
    tc->timeout_ms = task.timeout_ms;
    tc->n_units = task.n_units;
    tc->max_running = task.max_running;
    tc->placement = task.placement;
    memcpy(tc->name, task.name, sizeof tc->name);
    tc->n_constraints = task.n_constraints;
    for (unsigned i = 0; i < task.n_constraints; i++) {
        memcpy(tc->constraints[i], task.constraints[i], sizeof tc->constraints[i]);
        tc->cons_ptrs[i] = tc->constraints[i];
    }
    tc->spec_ok = node_spec_decode(task.spec, task.spec_len, &tc->spec) == FL_OK;
    if (strmap_put(&d->tasks, id, tc, NULL) != FL_OK) {
        task_cache_free(tc);
        return NULL;
    }
    return tc;
}

static void refresh_nodes(struct dispatch *d, struct store_txn *t)
{
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    strmap_close(&d->node_index);
    strmap_init(&d->node_index);
    d->n_nodes = 0;
    if (store_cursor_open(t, STORE_NODES, NULL, 0, &c) != FL_OK) {
        return;
    }
    while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        struct cnode *cn;
        if (d->n_nodes == d->cap_nodes) {
            unsigned cap = d->cap_nodes ? d->cap_nodes * 2 : 64;
            struct cnode *nn = fl_realloc(d->nodes, sizeof *nn * cap);
            if (nn == NULL) {
                break;
            }
            d->nodes = nn;
            d->cap_nodes = cap;
        }
        cn = &d->nodes[d->n_nodes];
        if (store_node_decode(v, vl, &cn->n) != FL_OK) {
            continue;
        }
        for (unsigned i = 0; i < cn->n.n_labels; i++) {
            cn->label_ptrs[i] = cn->n.labels[i];
        }
        snprintf(cn->self_label, sizeof cn->self_label, "node=%s", cn->n.id);
        cn->label_ptrs[cn->n.n_labels] = cn->self_label;
        cn->inflight = 0;
        d->n_nodes++;
        strmap_put(&d->node_index, cn->n.id, (void *)(uintptr_t)d->n_nodes, NULL);
    }
    store_cursor_close(c);
    /* Assignments in flight still count against their nodes. */
    {
        size_t i = 0;
        const char *key;
        void *val;
        while (strmap_next(&d->pending, &i, &key, &val)) {
            uintptr_t ix = (uintptr_t)strmap_get(&d->node_index, (const char *)val);
            if (ix != 0) {
                d->nodes[ix - 1].inflight++;
            }
        }
    }
    d->nodes_dirty = 0;
}

static struct cnode *cnode_of(struct dispatch *d, const char *id)
{
    uintptr_t ix = (uintptr_t)strmap_get(&d->node_index, id);
    return ix ? &d->nodes[ix - 1] : NULL;
}

static int is_leader(struct dispatch *d)
{
    struct rg_status st;
    rg_repl_status(d->s->repl, &st);
    return st.state == RAFT_LEADER && st.ready;
}

/* The scheduler's view of cached node i. */
static void fill_sched_node(struct dispatch *d, unsigned i, struct sched_node *sn)
{
    struct cnode *cn = &d->nodes[i];
    sn->id = cn->n.id;
    sn->cap = cn->n.lost ? 0 : cn->n.cap;
    struct session *ss = session_of(d, cn->n.id);
    uint32_t stale = 0;
    if (ss != NULL) {
        /* Units it runs that are no longer its own hold slots too (at most
         * what it last said it runs: a DONE that never came frees them). */
        stale = (uint32_t)strmap_size(&ss->stale);
        stale = stale < ss->reported_running ? stale : ss->reported_running;
    }
    sn->running = cn->n.running + cn->inflight + stale;
    sn->draining = cn->n.drain;
    sn->connected = ss != NULL;
    sn->n_labels = cn->n.n_labels + 1;
    sn->labels = cn->label_ptrs;
}

/* A NODEUNITS key under `node` ("node\0task/u32") into task and unit; 0 if
 * the key belongs to another node or is malformed. */
static int nodeunit_parse(const char *node, const void *key, size_t kl, char *task, size_t cap,
                          uint32_t *unit)
{
    const char *kp = key;
    size_t nl = strlen(node) + 1;
    if (kl <= nl + 5 || memcmp(kp, node, nl) != 0 || kl - nl - 5 >= cap) {
        return 0;
    }
    memcpy(task, kp + nl, kl - nl - 5);
    task[kl - nl - 5] = '\0';
    *unit = (uint32_t)(uint8_t)kp[kl - 4] << 24 | (uint32_t)(uint8_t)kp[kl - 3] << 16 |
            (uint32_t)(uint8_t)kp[kl - 2] << 8 | (uint8_t)kp[kl - 1];
    return 1;
}

/* ---- the dispatch round ---------------------------------------------------- */

struct assign_ctx {
    struct dispatch *d;
    char task[STORE_TASK_ID_MAX];
    uint32_t unit;
    char node[STORE_NODE_ID_MAX];
};

/* The shard of a unit, and for a job run ("job:NAME@SCHED#I/N", fsm/job.c)
 * the job, its schedule time and the run's shard: mode all runs one task per
 * node, so the shard is the task's place in the run. */
static unsigned job_env(const struct task_cache *tc, uint32_t unit, char (*env)[STORE_HOST_MAX + 64])
{
    unsigned long long sched = 0;
    unsigned idx = 0, total = 0;
    const char *at;
    if (strncmp(tc->name, "job:", 4) != 0 || (at = strchr(tc->name, '@')) == NULL ||
        sscanf(at + 1, "%llu#%u/%u", &sched, &idx, &total) != 3) {
        snprintf(env[0], sizeof env[0], "FLOTILLA_SHARD_INDEX=%u", unit);
        snprintf(env[1], sizeof env[1], "FLOTILLA_SHARD_TOTAL=%u", tc->n_units);
        return 2;
    }
    snprintf(env[0], sizeof env[0], "FLOTILLA_SHARD_INDEX=%u", idx);
    snprintf(env[1], sizeof env[1], "FLOTILLA_SHARD_TOTAL=%u", total);
    snprintf(env[2], sizeof env[2], "FLOTILLA_JOB=%.*s", (int)(at - tc->name - 4), tc->name + 4);
    snprintf(env[3], sizeof env[3], "FLOTILLA_SCHEDULED_TIME=%llu.%03llu", sched / 1000,
             sched % 1000);
    return 4;
}

#define SECRET_OPEN_MAX (NODE_SPEC_ENV_NAME_MAX + NODE_SPEC_ENV_VALUE_MAX + 2)

static void send_run(struct dispatch *d, const char *task_id, uint32_t unit, const char *node)
{
    struct store_txn *t;
    struct store_unit u;
    struct task_cache *tc;
    struct aproto_msg m;
    const char *hosts_stack[64], **hosts = hosts_stack;
    char env[9][STORE_HOST_MAX + 64];
    const char *envp[10 + 2 * NODE_SPEC_ENV_MAX];
    char sources[32 + 16 * STORE_NODE_ADDR_MAX]; /* a deploy's FLOTILLA_BLOB_SOURCES */
    char *secrets = NULL; /* opened secret_env entries, wiped after the send */
    unsigned char skey[NODE_SECRET_KEY_BYTES];
    unsigned n_env;
    char *hostlist = NULL;
    size_t pos = 0, hl;
    const char *h;
    uint32_t n = 0;
    struct session *ss = session_of(d, node);

    if (ss == NULL || store_begin(d->s->store, 0, &t) != FL_OK) {
        return; /* reconcile or lost detection takes it from here */
    }
    if (store_unit_get(t, task_id, unit, &u) != FL_OK || u.state != STORE_UNIT_RUNNING ||
        strcmp(u.node, node) != 0 || (tc = task_get(d, t, task_id)) == NULL || !tc->spec_ok) {
        store_abort(t);
        return;
    }
    if (u.n_hosts > 64) {
        hosts = fl_malloc(sizeof *hosts * u.n_hosts);
        if (hosts == NULL) {
            store_abort(t);
            return;
        }
    }
    hostlist = fl_malloc(u.hosts_len + 1);
    if (hostlist == NULL) {
        goto out;
    }
    memcpy(hostlist, u.hosts, u.hosts_len);
    for (; n < u.n_hosts && store_unit_host(&u, &pos, &h, &hl) == FL_OK; n++) {
        hosts[n] = hostlist + (h - (const char *)u.hosts);
    }
    aproto_msg_init(&m, APROTO_RUN);
    aproto_unit_ref_set(&m.u.run.ref, task_id, unit, u.attempt, u.token);
    m.u.run.n_hosts = n;
    m.u.run.hosts = hosts;
    m.u.run.kind = (uint8_t)tc->spec.kind;
    m.u.run.argc = tc->spec.argc;
    m.u.run.argv = tc->spec.argv;
    m.u.run.script = tc->spec.script;
    m.u.run.module = tc->spec.module;
    m.u.run.module_args = tc->spec.module_args;
    m.u.run.playbook = tc->spec.playbook;
    m.u.run.sleep_ms = tc->spec.sleep_ms;
    m.u.run.timeout_ms = tc->timeout_ms;
    m.u.run.kill_grace_ms = tc->spec.kill_grace_ms;
    m.u.run.n_vars = tc->spec.n_vars;
    m.u.run.inventory_vars = tc->spec.vars;
    snprintf(env[0], sizeof env[0], "FLOTILLA_TASK_ID=%s", task_id);
    snprintf(env[1], sizeof env[1], "FLOTILLA_UNIT=%u", unit);
    snprintf(env[2], sizeof env[2], "FLOTILLA_ATTEMPT=%u", u.attempt);
    snprintf(env[3], sizeof env[3], "FLOTILLA_FENCING_TOKEN=%llu", (unsigned long long)u.token);
    snprintf(env[4], sizeof env[4], "FLOTILLA_NODE=%s", node);
    n_env = 5 + job_env(tc, unit, env + 5);
    for (unsigned i = 0; i < n_env; i++) {
        envp[i] = env[i];
    }
    /* A deploy fetches its package over the blob links of the servers not
     * lost (any that holds the blob serves it; the acquire tries them in
     * order), the list rotated by the unit so that the targets of a rollout
     * start at different servers (docs/DEPLOY.md, "The deploy executor"). */
    if (tc->spec.kind == NODE_DEPLOY) {
        const char *src[16];
        unsigned ns = 0;
        size_t used = (size_t)snprintf(sources, sizeof sources, "FLOTILLA_BLOB_SOURCES=");
        for (unsigned i = 0; i < d->n_nodes && ns < 16; i++) {
            const struct store_node *sn = &d->nodes[i].n;
            if (sn->kind == STORE_NODE_SERVER && !sn->lost && sn->blob_addr[0] != '\0') {
                src[ns++] = sn->blob_addr;
            }
        }
        for (unsigned i = 0; i < ns; i++) {
            used += (size_t)snprintf(sources + used, sizeof sources - used, "%s%s", i ? "," : "",
                                     src[(unit + i) % ns]);
        }
        envp[n_env++] = sources;
    }
    for (unsigned i = 0; i < tc->spec.n_env; i++) {
        envp[n_env++] = tc->spec.env[i];
    }
    /* Secrets are opened only here, for the unit's RUN over the agent link,
     * and the clear text is wiped once the frame is queued (docs/ACL.md). */
    if (tc->spec.n_secret > 0) {
        secrets = fl_malloc((size_t)tc->spec.n_secret * SECRET_OPEN_MAX);
        if (secrets == NULL) {
            goto out;
        }
        node_secret_key(d->s->cfg.key, skey);
        for (unsigned i = 0; i < tc->spec.n_secret; i++) {
            char *slot = secrets + (size_t)i * SECRET_OPEN_MAX;
            if (node_secret_open(skey, tc->spec.secret[i], slot, SECRET_OPEN_MAX) != FL_OK) {
                FL_WARN("task %s: a secret_env value does not open with this cluster's key; "
                        "the unit runs without it",
                        task_id);
                continue;
            }
            envp[n_env++] = slot;
        }
        sodium_memzero(skey, sizeof skey);
    }
    m.u.run.n_env = n_env;
    m.u.run.env = envp;
    if (send_msg(ss, &m) == FL_OK) {
        d->n_runs++;
    }
out:
    if (secrets != NULL) {
        sodium_memzero(secrets, (size_t)tc->spec.n_secret * SECRET_OPEN_MAX);
        fl_free(secrets);
    }
    fl_free(hostlist);
    if (hosts != hosts_stack) {
        fl_free(hosts);
    }
    store_abort(t);
}

static void assign_cb(void *data, int err, const struct fsm_result *res)
{
    struct assign_ctx *a = data;
    struct dispatch *d = a->d;
    char key[STORE_TASK_ID_MAX + 16];
    struct cnode *cn;
    unit_key(key, sizeof key, a->task, a->unit);
    fl_free(strmap_del(&d->pending, key));
    if ((cn = cnode_of(d, a->node)) != NULL && cn->inflight > 0) {
        cn->inflight--;
    }
    if (err == FL_OK && res->err == FL_OK) {
        d->n_assigned++;
        if (!d->closing) {
            send_run(d, a->task, a->unit, a->node);
        }
    } else {
        d->n_assign_refused++;
        d->nodes_dirty = 1;
    }
    fl_free(a);
    if (!d->closing) {
        dispatch_kick(d);
    }
}

static void propose_assign(struct dispatch *d, const char *task, uint32_t unit, uint32_t attempt,
                           struct cnode *cn)
{
    struct assign_ctx *a = fl_malloc(sizeof *a);
    char key[STORE_TASK_ID_MAX + 16];
    struct fsm_cmd cmd;
    char *node_copy;
    if (a == NULL) {
        return;
    }
    a->d = d;
    snprintf(a->task, sizeof a->task, "%s", task);
    a->unit = unit;
    memcpy(a->node, cn->n.id, sizeof a->node);
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_UNIT_ASSIGN;
    cmd.u.unit.task = a->task;
    cmd.u.unit.tasklen = strlen(a->task);
    cmd.u.unit.unit = unit;
    cmd.u.unit.attempt = attempt;
    cmd.u.unit.node = a->node;
    cmd.u.unit.nodelen = strlen(a->node);
    unit_key(key, sizeof key, task, unit);
    node_copy = fl_strdup(cn->n.id);
    if (node_copy == NULL || strmap_put(&d->pending, key, node_copy, NULL) != FL_OK) {
        fl_free(node_copy);
        fl_free(a);
        return;
    }
    if (rg_repl_submit(d->s->repl, &cmd, assign_cb, a, NULL) != FL_OK) {
        fl_free(strmap_del(&d->pending, key));
        fl_free(a);
        return;
    }
    cn->inflight++;
}

struct candidate {
    char task[STORE_TASK_ID_MAX];
    uint32_t unit;
    uint32_t attempt;
    char last_node[STORE_NODE_ID_MAX];
    /* A unit placed on its host: the task's constraints and "node=<host>". */
    char pin[STORE_NODE_ID_MAX + 8];
    const char *cons[STORE_TASK_CONSTRAINTS + 1];
};

/* Units of a task with max_running that count against it in this round:
 * its running units (read fresh: the task cache holds static data only),
 * its assignments in flight, and its units taken as candidates so far. */
static uint32_t *round_used(struct dispatch *d, struct store_txn *t, struct strmap *used,
                            const char *task)
{
    uint32_t *n = strmap_get(used, task);
    struct store_task k;
    size_t i = 0, tl = strlen(task);
    const char *key;
    void *val;
    if (n != NULL) {
        return n;
    }
    if (store_task_get(t, task, &k) != FL_OK || (n = fl_malloc(sizeof *n)) == NULL) {
        return NULL;
    }
    *n = k.units_running;
    while (strmap_next(&d->pending, &i, &key, &val)) {
        if (strncmp(key, task, tl) == 0 && key[tl] == '/') {
            (*n)++;
        }
    }
    if (strmap_put(used, task, n, NULL) != FL_OK) {
        fl_free(n);
        return NULL;
    }
    return n;
}

/* A unit placed on its host goes to that node only: fill its constraint
 * list, and return 0 when the node cannot take it now (unknown, lost,
 * disconnected, draining, full with this round's pinned candidates, or not
 * matching the task's constraints), so that an unreachable target neither
 * holds a place under max_running nor blocks the other units. */
static int pin_candidate(struct dispatch *d, const struct sched_node *sn, uint32_t *pinned,
                         const struct task_cache *tc, const struct store_unit *u,
                         struct candidate *cd)
{
    struct sched_unit one;
    const struct sched_node *n;
    size_t pos = 0, hl;
    const char *host;
    uintptr_t ix;
    if (store_unit_host(u, &pos, &host, &hl) != FL_OK || hl == 0 || hl >= STORE_NODE_ID_MAX) {
        return 0;
    }
    snprintf(cd->pin, sizeof cd->pin, "node=%.*s", (int)hl, host);
    if ((ix = (uintptr_t)strmap_get(&d->node_index, cd->pin + 5)) == 0) {
        return 0;
    }
    n = &sn[ix - 1];
    if (!n->connected || n->draining || n->running + pinned[ix - 1] >= n->cap) {
        return 0;
    }
    for (unsigned i = 0; i < tc->n_constraints; i++) {
        cd->cons[i] = tc->cons_ptrs[i];
    }
    cd->cons[tc->n_constraints] = cd->pin;
    memset(&one, 0, sizeof one);
    one.n_constraints = tc->n_constraints + 1;
    one.constraints = cd->cons;
    if (!sched_node_matches(n, &one)) {
        return 0;
    }
    pinned[ix - 1]++;
    return 1;
}

static void round_run(struct dispatch *d)
{
    struct store_txn *t;
    struct store_cursor *c;
    struct sched_node *sn = NULL;
    struct sched_unit *su = NULL;
    struct candidate *cand = NULL;
    struct sched_assignment *out = NULL;
    struct strmap used;      /* task id -> uint32_t: units counted against max_running */
    uint32_t *pinned = NULL; /* per node: pinned candidates taken in this round */
    const void *k, *v;
    size_t kl, vl, mi = 0;
    unsigned n_cand = 0, n_out = 0, want;
    uint64_t free_slots = 0, now = rg_repl_time_ms(d->s->repl);
    const char *mk;
    void *mv;

    d->round_pending = 0;
    if (d->closing || !is_leader(d) || rg_repl_fsm(d->s->repl)->dispatch_paused) {
        return;
    }
    if (store_begin(d->s->store, 0, &t) != FL_OK) {
        return;
    }
    strmap_init(&used);
    d->in_round = 1;
    if (d->nodes_dirty) {
        refresh_nodes(d, t);
    }
    sn = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *sn);
    pinned = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *pinned);
    if (sn == NULL || pinned == NULL) {
        goto out;
    }
    for (unsigned i = 0; i < d->n_nodes; i++) {
        fill_sched_node(d, i, &sn[i]);
        if (sn[i].connected && !sn[i].draining && sn[i].cap > sn[i].running) {
            free_slots += sn[i].cap - sn[i].running;
        }
    }
    if (free_slots == 0) {
        goto out;
    }
    want = free_slots * 2 + 64 > CANDIDATES_MAX ? CANDIDATES_MAX : (unsigned)free_slots * 2 + 64;
    cand = fl_malloc(sizeof *cand * want);
    su = fl_calloc(want, sizeof *su);
    out = fl_malloc(sizeof *out * want);
    if (cand == NULL || su == NULL || out == NULL ||
        store_cursor_open(t, STORE_QUEUE, NULL, 0, &c) != FL_OK) {
        goto out;
    }
    /* Leader time can lag the wall clock between entries; use the later. */
    if ((uint64_t)uv_now(d->loop) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wall = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        if (wall > now) {
            now = wall;
        }
    }
    while (c != NULL && n_cand < want && store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        int32_t prio;
        uint64_t seq;
        char key[STORE_TASK_ID_MAX + 16];
        struct candidate *cd = &cand[n_cand];
        struct task_cache *tc;
        struct store_unit u;
        uint32_t *n_used = NULL;
        if (store_queue_key_parse(k, kl, &prio, &seq, cd->task, &cd->unit) != FL_OK) {
            continue;
        }
        unit_key(key, sizeof key, cd->task, cd->unit);
        if (strmap_get(&d->pending, key) != NULL || (tc = task_get(d, t, cd->task)) == NULL) {
            continue;
        }
        if (tc->max_running > 0) {
            n_used = round_used(d, t, &used, cd->task);
            if (n_used == NULL || *n_used >= tc->max_running) {
                /* At its limit: skip the task's other units, which follow
                 * in the queue (same priority, seq and task id). */
                uint8_t from[12 + STORE_TASK_ID_MAX + 5];
                store_cursor_close(c);
                if (store_cursor_open(t, STORE_QUEUE, from,
                                      store_queue_key(from, prio, seq, cd->task, UINT32_MAX),
                                      &c) != FL_OK) {
                    c = NULL;
                }
                continue;
            }
        }
        /* A pinned unit in its retry backoff waits for a later round (its
         * node is the same one). */
        if (store_unit_get(t, cd->task, cd->unit, &u) != FL_OK ||
            (tc->placement == FSM_PLACE_HOST &&
             (u.not_before_ms > now || !pin_candidate(d, sn, pinned, tc, &u, cd)))) {
            continue;
        }
        /* A unit in its retry backoff is not placed in this round: it
         * takes no place under max_running. */
        if (n_used != NULL && u.not_before_ms <= now) {
            (*n_used)++;
        }
        cd->attempt = u.attempt;
        memcpy(cd->last_node, u.last_node, sizeof cd->last_node);
        su[n_cand].ref = n_cand;
        su[n_cand].priority = prio;
        su[n_cand].seq = seq;
        su[n_cand].n_constraints = tc->n_constraints;
        su[n_cand].constraints = tc->cons_ptrs;
        su[n_cand].not_before_ms = u.not_before_ms;
        su[n_cand].avoid_node = cd->last_node[0] ? cd->last_node : NULL;
        if (tc->placement == FSM_PLACE_HOST) {
            su[n_cand].n_constraints = tc->n_constraints + 1;
            su[n_cand].constraints = cd->cons;
            su[n_cand].avoid_node = NULL; /* its node is the only one */
        }
        n_cand++;
    }
    store_cursor_close(c);
    if (n_cand == 0) {
        goto out;
    }
    if (sched_place(sn, d->n_nodes, su, n_cand,
                    d->s->cfg.placement_pack ? SCHED_PACK : SCHED_SPREAD, now, d->n_rounds, out,
                    want, &n_out) == FL_OK) {
        for (unsigned i = 0; i < n_out; i++) {
            struct candidate *cd = &cand[out[i].unit_ref];
            propose_assign(d, cd->task, cd->unit, cd->attempt, &d->nodes[out[i].node_index]);
        }
    }
    d->n_rounds++;
out:
    d->in_round = 0;
    store_abort(t);
    while (strmap_next(&used, &mi, &mk, &mv)) {
        fl_free(mv);
    }
    strmap_close(&used);
    fl_free(pinned);
    fl_free(sn);
    fl_free(su);
    fl_free(cand);
    fl_free(out);
}

/* ---- cancel sweeps ---------------------------------------------------------- */

static void cancel_sweep(struct dispatch *d, const char *task_id)
{
    struct store_txn *t;
    struct store_task task;
    if (store_begin(d->s->store, 0, &t) != FL_OK) {
        return;
    }
    if (store_task_get(t, task_id, &task) == FL_OK) {
        for (uint32_t i = 0; i < task.n_units; i++) {
            struct store_unit u;
            if (store_unit_get(t, task_id, i, &u) == FL_OK && u.state == STORE_UNIT_RUNNING &&
                u.cancel) {
                send_cancel(d, u.node, task_id, i, u.attempt, u.token);
            }
        }
    }
    store_abort(t);
}

static void round_cb(uv_timer_t *h)
{
    struct dispatch *d = h->data;
    size_t i = 0;
    const char *k;
    void *v;
    if (d->closing) {
        return;
    }
    while (strmap_next(&d->cancels, &i, &k, &v)) {
        char id[STORE_TASK_ID_MAX];
        snprintf(id, sizeof id, "%s", k);
        strmap_del(&d->cancels, k);
        if (is_leader(d)) {
            cancel_sweep(d, id);
        }
    }
    round_run(d);
}

void dispatch_kick(struct dispatch *d)
{
    if (d == NULL || d->closing || d->round_pending) {
        return;
    }
    d->round_pending = 1;
    uv_timer_start(&d->round_timer, round_cb, 1, 0);
}

/* Called by the FSM for every applied command (inside raft's apply: only
 * bookkeeping here, the work happens in the next round). */
static void on_applied(void *data, const void *cmdp, const struct fsm_result *res)
{
    struct dispatch *d = data;
    const struct fsm_cmd *c = cmdp;
    struct cnode *cn;
    switch (c->type) {
    case FSM_CMD_UNIT_ASSIGN:
        if (res->err == FL_OK && (cn = cnode_of(d, res->node)) != NULL) {
            cn->n.running++;
        }
        break;
    case FSM_CMD_UNIT_RESULT:
    case FSM_CMD_UNIT_REQUEUE:
        if (res->err == FL_OK && res->node[0] && (cn = cnode_of(d, res->node)) != NULL &&
            cn->n.running > 0) {
            cn->n.running--;
        }
        dispatch_kick(d);
        break;
    case FSM_CMD_TASK_CANCEL:
        if (res->err == FL_OK) {
            char id[STORE_TASK_ID_MAX];
            snprintf(id, sizeof id, "%.*s", (int)c->u.task.idlen, c->u.task.id);
            strmap_put(&d->cancels, id, (void *)1, NULL);
        }
        dispatch_kick(d);
        break;
    case FSM_CMD_NODE_REGISTER:
    case FSM_CMD_NODE_CAP:
    case FSM_CMD_NODE_DRAIN:
    case FSM_CMD_NODE_REMOVE:
    case FSM_CMD_NODE_LOST:
        d->nodes_dirty = 1;
        dispatch_kick(d);
        break;
    case FSM_CMD_TASK_SUBMIT:
    case FSM_CMD_DISPATCH:
        dispatch_kick(d);
        break;
    default:
        break;
    }
}

/* ---- results from agents ------------------------------------------------------ */

struct result_ctx {
    struct dispatch *d;
    char agent[STORE_NODE_ID_MAX];
    struct aproto_unit_ref ref;
};

static void result_cb(void *data, int err, const struct fsm_result *res)
{
    struct result_ctx *r = data;
    struct dispatch *d = r->d;
    if (err == FL_OK) {
        struct aproto_msg m;
        if (res->err == FL_OK) {
            d->n_results++;
        } else {
            d->n_stale++; /* a late or duplicate DONE: recorded as stale */
        }
        /* Committed either way: the agent may drop its spooled copy. */
        aproto_msg_init(&m, APROTO_ACK);
        m.u.ack.ref = r->ref;
        m.u.ack.what = APROTO_ACK_DONE;
        if (!d->closing) {
            send_msg(session_of(d, r->agent), &m);
        }
    }
    fl_free(r);
}

static void on_done(struct session *ss, const struct aproto_done *dn)
{
    struct dispatch *d = ss->d;
    struct fsm_host_result stack[64], *hr = stack;
    struct result_ctx *r;
    struct fsm_cmd cmd;
    char key[STORE_TASK_ID_MAX + 16];
    char why[FL_ERRMSG_SIZE];

    unit_key(key, sizeof key, dn->ref.task_id, dn->ref.unit);
    fl_free(strmap_del(&d->missing, key));
    if (strmap_del(&ss->stale, key) != NULL) {
        d->nodes_dirty = 1; /* a slot it held is free again */
        dispatch_kick(d);
    }
    if (dn->n_results > 64) {
        hr = fl_malloc(sizeof *hr * dn->n_results);
        if (hr == NULL) {
            return;
        }
    }
    for (uint32_t i = 0; i < dn->n_results; i++) {
        hr[i].host = dn->results[i].host;
        hr[i].hostlen = strlen(dn->results[i].host);
        hr[i].status = dn->results[i].status;
        hr[i].rc = dn->results[i].rc;
        hr[i].tail = dn->results[i].tail;
        hr[i].tail_len = dn->results[i].tail_len;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_UNIT_RESULT;
    cmd.u.unit.task = dn->ref.task_id;
    cmd.u.unit.tasklen = strlen(dn->ref.task_id);
    cmd.u.unit.unit = dn->ref.unit;
    cmd.u.unit.attempt = dn->ref.attempt;
    cmd.u.unit.token = dn->ref.token;
    cmd.u.unit.status = dn->status;
    cmd.u.unit.exit_code = dn->exit_code;
    cmd.u.unit.started_ms = dn->started_ms;
    cmd.u.unit.finished_ms = dn->finished_ms;
    cmd.u.unit.n_results = dn->n_results;
    cmd.u.unit.result_ptrs = hr;
    r = fl_malloc(sizeof *r);
    if (r != NULL) {
        r->d = d;
        memcpy(r->agent, ss->id, sizeof r->agent);
        r->ref = dn->ref;
        if (rg_repl_submit(d->s->repl, &cmd, result_cb, r, why) != FL_OK) {
            FL_WARN("result of %s/%u from %s not proposed: %s", dn->ref.task_id, dn->ref.unit,
                    ss->id, why);
            fl_free(r);
        }
    }
    if (hr != stack) {
        fl_free(hr);
    }
}

static void on_log(struct dispatch *d, const struct aproto_log *lg)
{
    char key[STORE_TASK_ID_MAX + 16];
    struct fl_buf *b;
    unit_key(key, sizeof key, lg->ref.task_id, lg->ref.unit);
    b = strmap_get(&d->logs, key);
    if (b == NULL) {
        if (strmap_size(&d->logs) >= LOG_UNITS_MAX) {
            size_t i = 0;
            const char *k;
            void *v;
            if (strmap_next(&d->logs, &i, &k, &v)) {
                fl_buf_close(v);
                fl_free(strmap_del(&d->logs, k));
            }
        }
        b = fl_calloc(1, sizeof *b);
        if (b == NULL || strmap_put(&d->logs, key, b, NULL) != FL_OK) {
            fl_free(b);
            return;
        }
    }
    if (b->len + lg->data_len > LOG_KEEP_BYTES) {
        size_t drop = b->len + lg->data_len - LOG_KEEP_BYTES;
        if (drop > b->len) {
            drop = b->len;
        }
        memmove(b->data, b->data + drop, b->len - drop);
        b->len -= drop;
    }
    fl_buf_append(b, lg->data, lg->data_len);
}

/* ---- HELLO: registration and reconcile --------------------------------------- */

static void register_cb(void *data, int err, const struct fsm_result *res)
{
    (void)data;
    (void)err;
    (void)res;
}

static void register_node(struct dispatch *d, struct store_txn *t, const struct aproto_hello *h)
{
    struct store_node n;
    struct fsm_cmd cmd;
    int have = store_node_get(t, h->agent_id, &n) == FL_OK;
    int same = have && !n.lost && n.n_labels == h->n_labels;
    for (unsigned i = 0; same && i < h->n_labels; i++) {
        same = strcmp(n.labels[i], h->labels[i]) == 0;
    }
    if (same) {
        return;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_NODE_REGISTER;
    cmd.u.node.id = h->agent_id;
    cmd.u.node.idlen = strlen(h->agent_id);
    cmd.u.node.kind = have ? n.kind : STORE_NODE_AGENT;
    cmd.u.node.cap = have ? n.cap : h->cap;
    if (have) {
        cmd.u.node.raft_id = n.raft_id;
        cmd.u.node.raft_addr = n.raft_addr;
        cmd.u.node.raft_addr_len = strlen(n.raft_addr);
        cmd.u.node.api_addr = n.api_addr;
        cmd.u.node.api_addr_len = strlen(n.api_addr);
        cmd.u.node.agent_addr = n.agent_addr;
        cmd.u.node.agent_addr_len = strlen(n.agent_addr);
    }
    cmd.u.node.n_labels = h->n_labels > STORE_NODE_LABELS ? STORE_NODE_LABELS : h->n_labels;
    for (unsigned i = 0; i < cmd.u.node.n_labels; i++) {
        cmd.u.node.labels[i] = h->labels[i];
        cmd.u.node.label_lens[i] = strlen(h->labels[i]);
    }
    rg_repl_submit(d->s->repl, &cmd, register_cb, NULL, NULL);
}

static void reconcile(struct dispatch *d, struct store_txn *t, struct session *ss,
                      const struct aproto_hello *h)
{
    struct strmap reported;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl, nl = strlen(ss->id) + 1;
    strmap_init(&reported);
    /* What it runs that we do not know (or know under another token): cancel. */
    for (uint32_t i = 0; i < h->n_running; i++) {
        const struct aproto_unit_ref *r = &h->running[i];
        struct store_unit u;
        char key[STORE_TASK_ID_MAX + 16];
        unit_key(key, sizeof key, r->task_id, r->unit);
        strmap_put(&reported, key, (void *)1, NULL);
        int own = store_unit_get(t, r->task_id, r->unit, &u) == FL_OK &&
                  u.state == STORE_UNIT_RUNNING && u.token == r->token &&
                  strcmp(u.node, ss->id) == 0;
        if (!own || u.cancel) {
            send_cancel(d, ss->id, r->task_id, r->unit, r->attempt, r->token);
        }
        if (!own) {
            strmap_put(&ss->stale, key, (void *)1, NULL); /* holds a slot until its DONE */
        }
    }
    /* What we think it runs that it does not report: give it a moment (its
     * spooled results come right after WELCOME), then take the unit back. */
    if (store_cursor_open(t, STORE_NODEUNITS, ss->id, nl, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            char task[STORE_TASK_ID_MAX], key[STORE_TASK_ID_MAX + 16];
            struct store_unit u;
            uint32_t unit;
            struct missing *m;
            if (!nodeunit_parse(ss->id, k, kl, task, sizeof task, &unit)) {
                break;
            }
            unit_key(key, sizeof key, task, unit);
            if (strmap_get(&reported, key) != NULL ||
                store_unit_get(t, task, unit, &u) != FL_OK) {
                continue;
            }
            m = fl_malloc(sizeof *m);
            if (m != NULL) {
                void *old = NULL;
                memcpy(m->node, ss->id, sizeof m->node);
                m->token = u.token;
                m->deadline = now_ms(d) + RECONCILE_MS;
                strmap_put(&d->missing, key, m, &old);
                fl_free(old);
            }
        }
        store_cursor_close(c);
    }
    strmap_close(&reported);
}

static void leader_agent_addr(struct dispatch *d, char *out, size_t cap)
{
    struct rg_status st;
    struct store_txn *t;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    out[0] = '\0';
    rg_repl_status(d->s->repl, &st);
    if (st.leader_id == 0 || store_begin(d->s->store, 0, &t) != FL_OK) {
        return;
    }
    if (store_cursor_open(t, STORE_NODES, NULL, 0, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            struct store_node n;
            if (store_node_decode(v, vl, &n) == FL_OK && n.kind == STORE_NODE_SERVER &&
                n.raft_id == st.leader_id) {
                snprintf(out, cap, "%s", n.agent_addr);
                break;
            }
        }
        store_cursor_close(c);
    }
    store_abort(t);
}

/* ---- agent identities (docs/SECURITY.md "Links") ------------------------------ */

static void refuse(struct session *ss, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct session *ss, const char *code, const char *fmt, ...)
{
    char msg[APROTO_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ss->d->n_refused++;
    FL_WARN("agent connection from %s refused: %s", ss->peer, msg);
    send_error(ss, code, msg);
    session_close_after_write(ss);
}

static void agentkey_cb(void *data, int err, const struct fsm_result *res)
{
    if (err == FL_OK && res->err == FL_ECONFLICT) {
        FL_WARN("an agent's identity key lost a race with another key for the same id; "
                "it is refused from its next connection on");
    }
}

static void propose_agentkey(struct dispatch *d, const char *agent, const unsigned char *pk,
                             int state)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_AGENT_KEY_SET;
    cmd.u.agentkey.agent = agent;
    cmd.u.agentkey.alen = strlen(agent);
    cmd.u.agentkey.pk = pk;
    cmd.u.agentkey.pklen = FL_IDENT_PK_BYTES;
    cmd.u.agentkey.state = (uint8_t)state;
    rg_repl_submit(d->s->repl, &cmd, agentkey_cb, NULL, NULL);
}

/* The identity a HELLO claims: the name the secure channel was opened with,
 * a signature of this session by the agent's ed25519 key, and (on the
 * leader) the key the cluster recorded for this id. Returns 1 to go on;
 * otherwise the agent was told why and the session is closing. */
static int hello_identity(struct session *ss, const struct aproto_hello *h)
{
    struct dispatch *d = ss->d;
    unsigned char binding[SCHAN_BINDING_BYTES], pk[FL_IDENT_PK_BYTES];
    char fpr[FL_IDENT_FPR_SIZE], known[FL_IDENT_FPR_SIZE];
    struct store_agentkey rec;
    struct store_txn *t;
    int rv;
    if (strcmp(h->agent_id, schan_peer(ss->ch)->name) != 0) {
        refuse(ss, "identity_mismatch", "HELLO names agent %s but the channel was opened by %s",
               h->agent_id, schan_peer(ss->ch)->name);
        return 0;
    }
    if (schan_binding(ss->ch, binding) != FL_OK ||
        fl_ident_hello_verify(h->auth, h->auth_len, binding, h->agent_id, pk) != FL_OK) {
        refuse(ss, "identity_proof", "agent %s: HELLO is not signed by an identity key",
               h->agent_id);
        return 0;
    }
    if (!is_leader(d)) {
        return 1; /* a follower only redirects */
    }
    fl_ident_fingerprint(pk, fpr);
    rv = store_begin(d->s->store, 0, &t);
    if (rv == FL_OK) {
        rv = store_agentkey_get(t, h->agent_id, &rec);
        store_abort(t);
    }
    if (rv == FL_OK && memcmp(rec.pk, pk, sizeof pk) != 0) {
        fl_ident_fingerprint(rec.pk, known);
        refuse(ss, "identity_mismatch",
               "agent id %s belongs to another key (%s); this agent's key is %s", h->agent_id,
               known, fpr);
        return 0;
    }
    if (rv == FL_OK && rec.state == STORE_AGENTKEY_APPROVED) {
        return 1;
    }
    if (rv != FL_OK && rv != FL_ENOTFOUND) {
        refuse(ss, "unavailable", "reading agent identities: %s", fl_strerror(rv));
        return 0;
    }
    if (d->s->cfg.require_agent_approval) {
        if (rv == FL_ENOTFOUND) {
            propose_agentkey(d, h->agent_id, pk, STORE_AGENTKEY_PENDING);
        }
        refuse(ss, "approval_required",
               "agent %s (key %s) awaits approval: flotilla agent approve %s", h->agent_id, fpr,
               h->agent_id);
        return 0;
    }
    /* First join (or approval no longer required): record the key. */
    propose_agentkey(d, h->agent_id, pk, STORE_AGENTKEY_APPROVED);
    FL_INFO("agent %s: recording its identity key %s", h->agent_id, fpr);
    return 1;
}

static void on_hello(struct session *ss, const struct aproto_hello *h)
{
    struct dispatch *d = ss->d;
    struct aproto_msg m;
    struct store_txn *t;
    struct session *other;
    char leader[STORE_NODE_ADDR_MAX];

    if (ss->welcomed) {
        send_error(ss, "bad_frame", "HELLO twice");
        session_close_after_write(ss);
        return;
    }
    aproto_msg_init(&m, APROTO_WELCOME);
    if (!is_leader(d)) {
        if (!hello_identity(ss, h)) {
            return; /* only its proof is checked here: the leader knows the keys */
        }
        leader_agent_addr(d, leader, sizeof leader);
        m.u.welcome.accepted = false;
        m.u.welcome.leader = leader;
        m.u.welcome.message = "not the leader";
        send_msg(ss, &m);
        session_close_after_write(ss);
        return;
    }
    other = session_of(d, h->agent_id);
    if (other != NULL) {
        FL_WARN("agent %s: a second connection while one is open; refused", h->agent_id);
        send_error(ss, "duplicate_agent", "an agent with this id is already connected");
        session_close_after_write(ss);
        return;
    }
    if (!hello_identity(ss, h)) {
        return;
    }
    snprintf(ss->id, sizeof ss->id, "%s", h->agent_id);
    if (store_begin(d->s->store, 0, &t) == FL_OK) {
        register_node(d, t, h);
        reconcile(d, t, ss, h);
        store_abort(t);
    }
    ss->welcomed = 1;
    strmap_put(&d->by_id, ss->id, ss, NULL);
    fl_free(strmap_del(&d->disconnected, ss->id));
    strmap_del(&d->lost_sent, ss->id);
    m.u.welcome.accepted = true;
    m.u.welcome.leader = "";
    m.u.welcome.heartbeat_ms = d->s->cfg.heartbeat_ms;
    m.u.welcome.lost_after_ms = d->s->cfg.lost_after_ms;
    m.u.welcome.message = "welcome";
    send_msg(ss, &m);
    ss->reported_running = h->n_running;
    FL_INFO("agent %s connected (cap %u, %u running)", ss->id, h->cap, h->n_running);
    d->nodes_dirty = 1;
    dispatch_kick(d);
}

static void on_message(struct session *ss, struct aproto_msg *m)
{
    struct dispatch *d = ss->d;
    char key[STORE_TASK_ID_MAX + 16];
    ss->last_seen = now_ms(d);
    if (m->type != APROTO_HELLO && !ss->welcomed) {
        send_error(ss, "bad_frame", "HELLO first");
        session_close_after_write(ss);
        return;
    }
    switch (m->type) {
    case APROTO_HELLO:
        on_hello(ss, &m->u.hello);
        break;
    case APROTO_HEARTBEAT:
        ss->reported_running = m->u.heartbeat.running;
        break;
    case APROTO_STARTED:
        unit_key(key, sizeof key, m->u.started.ref.task_id, m->u.started.ref.unit);
        fl_free(strmap_del(&d->missing, key));
        break;
    case APROTO_LOG:
        on_log(d, &m->u.log);
        break;
    case APROTO_DONE:
        if (is_leader(d)) {
            on_done(ss, &m->u.done);
        } else {
            session_close(ss, "no longer the leader");
        }
        break;
    case APROTO_ERROR:
        FL_WARN("agent %s: error %s: %s", ss->id, m->u.error.code, m->u.error.message);
        break;
    default:
        send_error(ss, "bad_frame", "unexpected message");
        break;
    }
}

/* ---- connections ---------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[65536];
    (void)h;
    (void)suggested;
    buf->base = slab;
    buf->len = sizeof slab;
}

/* Decrypted protocol bytes: frames and messages. */
static void on_plain(struct session *ss, const uint8_t *p, size_t len)
{
    struct dispatch *d = ss->d;
    size_t off = 0;
    while (off < len && !ss->closing && !ss->shutting) {
        size_t used = 0;
        int rv = aproto_reader_feed(&ss->rd, p + off, len - off, &used);
        off += used;
        if (rv != FL_OK && rv != APROTO_NEED_MORE) {
            d->n_bad_frames++;
            FL_WARN("agent connection %s: %s", ss->id[0] ? ss->id : "(before HELLO)",
                    ss->rd.errmsg);
            send_error(ss, "bad_frame", ss->rd.errmsg);
            session_close_after_write(ss);
            return;
        }
        for (;;) {
            struct aproto_msg m;
            rv = aproto_reader_next(&ss->rd, &m);
            if (rv == APROTO_NEED_MORE) {
                break;
            }
            if (rv != FL_OK) {
                d->n_bad_frames++;
                FL_WARN("agent %s: bad frame: %s", ss->id[0] ? ss->id : "(before HELLO)",
                        ss->rd.errmsg);
                send_error(ss, "bad_frame", ss->rd.errmsg);
                if (rv == FL_ETOOBIG || !ss->welcomed) {
                    session_close_after_write(ss);
                    return;
                }
                continue;
            }
            on_message(ss, &m);
            aproto_msg_close(&m);
            if (ss->closing || ss->shutting) {
                return;
            }
        }
    }
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct session *ss = stream->data;
    struct dispatch *d = ss->d;
    struct fl_buf wire, plain;
    int was_open, rv;
    if (nread == 0 || ss->closing) {
        return;
    }
    if (nread < 0) {
        if (schan_state(ss->ch) != SCHAN_OPEN) {
            FL_WARN("agent connection from %s: closed during the secure handshake", ss->peer);
        }
        session_close(ss, nread == UV_EOF ? "closed by the agent" : uv_strerror((int)nread));
        return;
    }
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    was_open = schan_state(ss->ch) == SCHAN_OPEN;
    rv = schan_recv(ss->ch, (const uint8_t *)buf->base, (size_t)nread, &wire, &plain);
    if (rv != FL_OK) {
        /* Nothing more is said on a channel that failed: close at once.
         * Malformed bytes count as bad frames, failed authentication as a
         * refused connection. */
        if (rv == FL_EPROTO && !was_open) {
            d->n_refused++;
        } else {
            d->n_bad_frames++;
        }
        FL_WARN("agent connection from %s%s%s: %s; closing it", ss->peer, ss->id[0] ? " " : "",
                ss->id, schan_errmsg(ss->ch));
        session_close(ss, "secure channel failed");
    } else {
        send_wire(ss, &wire);
        on_plain(ss, plain.data, plain.len);
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

static int start_channel(struct session *ss)
{
    struct node_server *s = ss->d->s;
    struct schan_config c;
    char err[FL_ERRMSG_SIZE];
    int rv;
    memset(&c, 0, sizeof c);
    c.key = s->cfg.key;
    c.link = SCHAN_LINK_AGENT;
    c.self.role = SCHAN_ROLE_SERVER;
    snprintf(c.self.name, sizeof c.self.name, "%s", s->cfg.name);
    c.expect.role = SCHAN_ROLE_AGENT;
    c.max_frame = APROTO_MAX_FRAME + APROTO_HEADER_SIZE;
    rv = schan_create(&c, 0, &ss->ch, err);
    if (rv != FL_OK) {
        FL_WARN("agent connection from %s: %s", ss->peer, err);
    }
    return rv;
}

static void peer_name(struct session *ss)
{
    struct sockaddr_storage st;
    int len = sizeof st;
    snprintf(ss->peer, sizeof ss->peer, "(unknown)");
    if (uv_tcp_getpeername(&ss->tcp, (struct sockaddr *)&st, &len) == 0 &&
        st.ss_family == AF_INET) {
        char ip[48];
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&st;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(ss->peer, sizeof ss->peer, "%s:%u", ip, ntohs(sin->sin_port));
    }
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct dispatch *d = server->data;
    struct session *ss;
    if (status != 0 || d->closing) {
        return;
    }
    ss = fl_calloc(1, sizeof *ss);
    if (ss == NULL) {
        return;
    }
    ss->d = d;
    strmap_init(&ss->stale);
    aproto_reader_init(&ss->rd, APROTO_MAX_FRAME);
    uv_tcp_init(d->loop, &ss->tcp);
    ss->tcp.data = ss;
    ss->next = d->sessions;
    if (d->sessions) {
        d->sessions->prev = ss;
    }
    d->sessions = ss;
    if (uv_accept(server, (uv_stream_t *)&ss->tcp) != 0) {
        session_close(ss, "accept failed");
        return;
    }
    uv_tcp_nodelay(&ss->tcp, 1);
    ss->last_seen = now_ms(d);
    peer_name(ss);
    if (start_channel(ss) != FL_OK) {
        session_close(ss, "no secure channel");
        return;
    }
    uv_read_start((uv_stream_t *)&ss->tcp, alloc_cb, read_cb);
}

/* ---- the tick: leadership, lost agents, reconcile -------------------------------- */

static void lost_cb(void *data, int err, const struct fsm_result *res)
{
    struct dispatch *d = data;
    if (err == FL_OK && res->err == FL_OK) {
        d->n_lost++;
    }
}

static void requeue_cb(void *data, int err, const struct fsm_result *res)
{
    struct dispatch *d = data;
    if (err == FL_OK && res->err == FL_OK) {
        d->n_requeued++;
    }
}

static void tick_cb(uv_timer_t *h)
{
    struct dispatch *d = h->data;
    uint64_t now = now_ms(d);
    int leader = is_leader(d);
    size_t i = 0;
    const char *k;
    void *v;

    if (d->closing) {
        return;
    }
    if (leader && !d->leader) {
        d->leader_since = now;
        d->nodes_dirty = 1;
        dispatch_kick(d);
    }
    if (!leader && d->leader) {
        /* Agents follow the leader: let them reconnect and be redirected. */
        for (struct session *ss = d->sessions; ss != NULL; ss = ss->next) {
            if (ss->welcomed) {
                session_close(ss, "leadership moved");
            }
        }
    }
    d->leader = leader;
    if (!leader) {
        return;
    }
    /* Units in retry backoff become placeable with time alone. */
    dispatch_kick(d);
    for (struct session *ss = d->sessions; ss != NULL; ss = ss->next) {
        if (!ss->closing && now - ss->last_seen > d->s->cfg.lost_after_ms) {
            session_close(ss, "silent past lost_after");
        }
    }
    if (d->nodes_dirty) {
        struct store_txn *t;
        if (store_begin(d->s->store, 0, &t) == FL_OK) {
            refresh_nodes(d, t);
            store_abort(t);
        }
    }
    for (unsigned n = 0; n < d->n_nodes; n++) {
        struct store_node *sn = &d->nodes[n].n;
        uint64_t *since;
        uint64_t from;
        if (sn->lost || session_of(d, sn->id) != NULL || strmap_get(&d->lost_sent, sn->id)) {
            continue;
        }
        /* A node that may run nothing and runs nothing (a server started
         * with --no-agent) has nothing to lose. */
        if (sn->cap == 0 && sn->running == 0) {
            continue;
        }
        since = strmap_get(&d->disconnected, sn->id);
        from = since && *since > d->leader_since ? *since : d->leader_since;
        if (now - from > d->s->cfg.lost_after_ms) {
            struct fsm_cmd cmd;
            memset(&cmd, 0, sizeof cmd);
            cmd.type = FSM_CMD_NODE_LOST;
            cmd.u.node.id = sn->id;
            cmd.u.node.idlen = strlen(sn->id);
            if (rg_repl_submit(d->s->repl, &cmd, lost_cb, d, NULL) == FL_OK) {
                FL_WARN("node %s: no agent for %llu ms: committing it lost", sn->id,
                        (unsigned long long)(now - from));
                strmap_put(&d->lost_sent, sn->id, (void *)1, NULL);
            }
        }
    }
    while (strmap_next(&d->missing, &i, &k, &v)) {
        struct missing *m = v;
        const char *slash;
        char task[STORE_TASK_ID_MAX];
        struct fsm_cmd cmd;
        if (now < m->deadline) {
            continue;
        }
        slash = strrchr(k, '/');
        if (slash != NULL && (size_t)(slash - k) < sizeof task) {
            memcpy(task, k, (size_t)(slash - k));
            task[slash - k] = '\0';
            memset(&cmd, 0, sizeof cmd);
            cmd.type = FSM_CMD_UNIT_REQUEUE;
            cmd.u.unit.task = task;
            cmd.u.unit.tasklen = strlen(task);
            cmd.u.unit.unit = (uint32_t)strtoul(slash + 1, NULL, 10);
            cmd.u.unit.token = m->token;
            cmd.u.unit.status = STORE_ST_LOST;
            FL_WARN("unit %s: agent %s no longer runs it; taking it back", k, m->node);
            rg_repl_submit(d->s->repl, &cmd, requeue_cb, d, NULL);
        }
        fl_free(strmap_del(&d->missing, k));
    }
}

/* ---- public ------------------------------------------------------------------- */

int dispatch_create(struct node_server *s, struct dispatch **out, char *errmsg)
{
    struct dispatch *d = fl_calloc(1, sizeof *d);
    struct sockaddr_in sa;
    char host[128];
    const char *colon = strrchr(s->cfg.agent_addr, ':');
    int rv;
    if (d == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    d->s = s;
    d->loop = s->loop;
    d->nodes_dirty = 1;
    strmap_init(&d->by_id);
    strmap_init(&d->pending);
    strmap_init(&d->missing);
    strmap_init(&d->disconnected);
    strmap_init(&d->lost_sent);
    strmap_init(&d->logs);
    strmap_init(&d->tasks);
    strmap_init(&d->cancels);
    strmap_init(&d->node_index);
    if (colon == NULL || (size_t)(colon - s->cfg.agent_addr) >= sizeof host) {
        fl_free(d);
        return fl_errf(errmsg, FL_EINVAL, "bad agent address %s", s->cfg.agent_addr);
    }
    memcpy(host, s->cfg.agent_addr, (size_t)(colon - s->cfg.agent_addr));
    host[colon - s->cfg.agent_addr] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0) {
        fl_free(d);
        return fl_errf(errmsg, FL_EINVAL, "bad agent address %s", s->cfg.agent_addr);
    }
    uv_tcp_init(d->loop, &d->listener);
    d->listener.data = d;
    rv = uv_tcp_bind(&d->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&d->listener, 511, accept_cb);
    }
    if (rv != 0) {
        fl_errf(errmsg, FL_ENET, "agent listener on %s: %s", s->cfg.agent_addr, uv_strerror(rv));
        uv_close((uv_handle_t *)&d->listener, NULL);
        uv_run(d->loop, UV_RUN_NOWAIT);
        fl_free(d);
        return FL_ENET;
    }
    uv_timer_init(d->loop, &d->round_timer);
    uv_timer_init(d->loop, &d->tick);
    d->round_timer.data = d;
    d->tick.data = d;
    uv_timer_start(&d->tick, tick_cb, TICK_MS, TICK_MS);
    rg_repl_fsm(s->repl)->sched_cb = on_applied;
    rg_repl_fsm(s->repl)->sched_data = d;
    *out = d;
    return FL_OK;
}

static void free_maps(struct dispatch *d)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(&d->pending, &i, &k, &v)) {
        fl_free(v);
    }
    i = 0;
    while (strmap_next(&d->missing, &i, &k, &v)) {
        fl_free(v);
    }
    i = 0;
    while (strmap_next(&d->disconnected, &i, &k, &v)) {
        fl_free(v);
    }
    i = 0;
    while (strmap_next(&d->logs, &i, &k, &v)) {
        fl_buf_close(v);
        fl_free(v);
    }
    i = 0;
    while (strmap_next(&d->tasks, &i, &k, &v)) {
        task_cache_free(v);
    }
    strmap_close(&d->by_id);
    strmap_close(&d->pending);
    strmap_close(&d->missing);
    strmap_close(&d->disconnected);
    strmap_close(&d->lost_sent);
    strmap_close(&d->logs);
    strmap_close(&d->tasks);
    strmap_close(&d->cancels);
    strmap_close(&d->node_index);
    fl_free(d->nodes);
}

/* The last handle of a closing dispatcher is gone (a session's or one of
 * its own; libuv does not promise an order): free everything. */
static void dispatch_finish(struct dispatch *d)
{
    free_maps(d);
    if (d->close_cb) {
        d->close_cb(d->close_data);
    }
    fl_free(d);
}

static void handle_closed(uv_handle_t *h)
{
    struct dispatch *d = h->data;
    if (--d->open_handles == 0) {
        dispatch_finish(d);
    }
}

void dispatch_close(struct dispatch *d, void (*cb)(void *data), void *data)
{
    d->closing = 1;
    d->close_cb = cb;
    d->close_data = data;
    rg_repl_fsm(d->s->repl)->sched_cb = NULL;
    d->open_handles = 3;
    for (struct session *ss = d->sessions; ss != NULL; ss = ss->next) {
        if (!ss->closing) {
            session_close(ss, "server shutting down");
        } else {
            d->open_handles++;
        }
    }
    /* Sessions decrement through session_closed; the three handles here. */
    uv_close((uv_handle_t *)&d->listener, handle_closed);
    uv_close((uv_handle_t *)&d->round_timer, handle_closed);
    uv_close((uv_handle_t *)&d->tick, handle_closed);
}

int dispatch_connected(struct dispatch *d, const char *node)
{
    return d != NULL && session_of(d, node) != NULL;
}

json_t *dispatch_stats_json(struct dispatch *d)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "agents_connected",
                     (json_int_t)strmap_size(&d->by_id), "units_assigned",
                     (json_int_t)d->n_assigned, "assignments_refused",
                     (json_int_t)d->n_assign_refused, "runs_sent", (json_int_t)d->n_runs,
                     "results_committed", (json_int_t)d->n_results, "stale_results",
                     (json_int_t)d->n_stale, "nodes_lost", (json_int_t)d->n_lost,
                     "units_taken_back", (json_int_t)d->n_requeued, "rounds",
                     (json_int_t)d->n_rounds, "bad_frames", (json_int_t)d->n_bad_frames);
    json_object_set_new(o, "refused_connections", json_integer((json_int_t)d->n_refused));
    return o;
}

void dispatch_why(struct dispatch *d, struct store_txn *t, const struct sched_unit *u,
                  struct sched_why *out)
{
    struct sched_node *sn;
    refresh_nodes(d, t);
    sn = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *sn);
    if (sn == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    for (unsigned i = 0; i < d->n_nodes; i++) {
        fill_sched_node(d, i, &sn[i]);
    }
    sched_why(sn, d->n_nodes, u, rg_repl_time_ms(d->s->repl), out);
    fl_free(sn);
}

int dispatch_logs(struct dispatch *d, const char *task, uint32_t unit, struct fl_buf *out)
{
    char key[STORE_TASK_ID_MAX + 16];
    struct fl_buf *b;
    unit_key(key, sizeof key, task, unit);
    b = strmap_get(&d->logs, key);
    if (b == NULL) {
        return 0;
    }
    fl_buf_append(out, b->data, b->len);
    return 1;
}

unsigned dispatch_cancel_node(struct dispatch *d, const char *node)
{
    struct store_txn *t;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl, nl = strlen(node) + 1;
    unsigned n = 0;
    if (store_begin(d->s->store, 0, &t) != FL_OK) {
        return 0;
    }
    if (store_cursor_open(t, STORE_NODEUNITS, node, nl, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            char task[STORE_TASK_ID_MAX];
            struct store_unit u;
            uint32_t unit;
            if (!nodeunit_parse(node, k, kl, task, sizeof task, &unit)) {
                break;
            }
            if (store_unit_get(t, task, unit, &u) == FL_OK && u.state == STORE_UNIT_RUNNING) {
                send_cancel(d, node, task, unit, u.attempt, u.token);
                n++;
            }
        }
        store_cursor_close(c);
    }
    store_abort(t);
    return n;
}
