/* The dispatcher (leader/dispatch.h; docs/SCHEDULER.md): the agents attached
 * to it, the tick (leadership, lost agents, reconcile deadlines), create and
 * close, stats. Its parts are listed in leader/dispatch_int.h. */
#include "leader/dispatch_int.h"

#include <sodium.h>

/* ---- attached agents ------------------------------------------------------------ */

int dispatch__is_leader(struct dispatch *d)
{
    uint64_t term;
    return d->io->leader(d->io->impl, &term);
}

struct dagent *dispatch__agent_of(struct dispatch *d, const char *node)
{
    struct dagent *a = strmap_get(&d->by_id, node);
    return a != NULL && !a->closing ? a : NULL;
}

int dispatch__send(struct dispatch *d, const char *node, const struct aproto_msg *m)
{
    struct dagent *a = dispatch__agent_of(d, node);
    if (a == NULL) {
        return FL_ENET;
    }
    return d->agents.send(d->agents.impl, a->link, m);
}

void dispatch__send_cancel(struct dispatch *d, const char *node, const char *task, uint32_t unit,
                           uint32_t attempt, uint64_t token)
{
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_CANCEL);
    aproto_unit_ref_set(&m.u.cancel.ref, task, unit, attempt, token);
    dispatch__send(d, node, &m);
}

void dispatch__ignore(void *data, int err, const struct fsm_result *res)
{
    (void)data, (void)err, (void)res;
}

static void finish(struct dispatch *d);

struct asked {
    struct dispatch *d;
    leader_done_cb cb;
    void *data;
};

static void asked_cb(void *data, int err, const struct fsm_result *res)
{
    struct asked *q = data;
    struct dispatch *d = q->d;
    q->cb(q->data, err, res);
    fl_free(q);
    d->n_asked--;
    if (d->closing && !d->timers_open && d->n_asked == 0) {
        finish(d);
    }
}

int dpropose(struct dispatch *d, const struct fsm_cmd *c, leader_done_cb cb, void *data)
{
    struct asked *q = fl_malloc(sizeof *q);
    int rv;
    if (q == NULL) {
        return FL_ENOMEM;
    }
    q->d = d;
    q->cb = cb;
    q->data = data;
    rv = d->io->propose(d->io->impl, c, asked_cb, q);
    if (rv != FL_OK) {
        fl_free(q);
        return rv;
    }
    d->n_asked++;
    return FL_OK;
}

/* Ask its link to end; the link answers with dispatch_detach. */
void dispatch__close_agent(struct dispatch *d, struct dagent *a, const char *why)
{
    if (a->closing) {
        return;
    }
    a->closing = 1;
    d->agents.close(d->agents.impl, a->link, why);
}

/* Close every attached agent, or (silent_now != 0) those silent past
 * lost_after at that time. Collected first: closing detaches, which edits
 * the map. */
static void close_agents(struct dispatch *d, const char *why, uint64_t silent_now)
{
    size_t i = 0;
    const char *k;
    void *v;
    struct dagent **all = fl_calloc(strmap_size(&d->by_id) + 1, sizeof *all);
    unsigned n = 0;
    if (all == NULL) {
        return;
    }
    while (strmap_next(&d->by_id, &i, &k, &v)) {
        struct dagent *a = v;
        if (silent_now == 0 || (!a->closing && silent_now - a->last_seen > d->cfg.lost_after_ms)) {
            all[n++] = a;
        }
    }
    for (unsigned j = 0; j < n; j++) {
        dispatch__close_agent(d, all[j], why);
    }
    fl_free(all);
}

static void agent_free(struct dagent *a)
{
    strmap_close(&a->stale);
    strmap_close(&a->held);
    fl_free(a);
}

int dispatch_attach(struct dispatch *d, void *link, const struct aproto_hello *h)
{
    if (d->closing) {
        return FL_ESHUTDOWN;
    }
    return dispatch__welcome(d, link, h);
}

void dispatch_detach(struct dispatch *d, const char *agent)
{
    struct dagent *a = strmap_del(&d->by_id, agent);
    uint64_t *since;
    if (a == NULL) {
        return;
    }
    since = fl_malloc(sizeof *since);
    if (since != NULL) {
        void *old = NULL;
        *since = now_ms(d);
        strmap_put(&d->disconnected, a->id, since, &old);
        fl_free(old);
    }
    if (!a->closing) {
        FL_INFO("agent %s disconnected", a->id);
    }
    agent_free(a);
}

void dispatch_agent_msg(struct dispatch *d, const char *agent, const struct aproto_msg *m)
{
    struct dagent *a = dispatch__agent_of(d, agent);
    if (a == NULL) {
        return;
    }
    a->last_seen = now_ms(d);
    switch (m->type) {
    case APROTO_HEARTBEAT:
        a->reported_running = m->u.heartbeat.running;
        break;
    case APROTO_STARTED:
        dispatch__on_started(d, a, &m->u.started);
        break;
    case APROTO_LOG:
        dispatch__on_log(d, a, &m->u.log);
        break;
    case APROTO_DONE:
        if (dispatch__is_leader(d)) {
            dispatch__on_done(d, a, &m->u.done);
        } else {
            dispatch__close_agent(d, a, "no longer the leader");
        }
        break;
    default:
        break;
    }
}

/* ---- the tick: leadership, lost agents, dispatch__reconcile -------------------------------- */

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

static void tick_cb(void *arg)
{
    struct dispatch *d = arg;
    uint64_t now = now_ms(d);
    int leader = dispatch__is_leader(d);
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
        close_agents(d, "leadership moved", 0);
    }
    d->leader = leader;
    if (!leader) {
        return;
    }
    /* Units in retry backoff become placeable with time alone. */
    dispatch_kick(d);
    close_agents(d, "silent past lost_after", now);
    {
        struct store_txn *t;
        if (store_begin(dstore(d), 0, &t) == FL_OK) {
            dispatch__sync_nodes(d, t);
            store_abort(t);
        }
    }
    for (unsigned n = 0; n < d->n_nodes; n++) {
        struct store_node *sn = &d->nodes[n].n;
        uint64_t *since;
        uint64_t from;
        if (sn->lost || dispatch__agent_of(d, sn->id) != NULL ||
            strmap_get(&d->lost_sent, sn->id)) {
            continue;
        }
        /* A node that may run nothing and runs nothing (a server started
         * with --no-agent) has nothing to lose. */
        if (sn->cap == 0 && sn->running == 0) {
            continue;
        }
        since = strmap_get(&d->disconnected, sn->id);
        from = since && *since > d->leader_since ? *since : d->leader_since;
        if (now - from > d->cfg.lost_after_ms) {
            struct fsm_cmd cmd;
            memset(&cmd, 0, sizeof cmd);
            cmd.type = FSM_CMD_NODE_LOST;
            cmd.u.node.id = sn->id;
            cmd.u.node.idlen = strlen(sn->id);
            if (dpropose(d, &cmd, lost_cb, d) == FL_OK) {
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
            dpropose(d, &cmd, requeue_cb, d);
        }
        fl_free(strmap_del(&d->missing, k));
    }
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
        dispatch__task_cache_free(v);
    }
    i = 0;
    while (strmap_next(&d->by_id, &i, &k, &v)) {
        agent_free(v);
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
    strmap_close(&d->counts_dirty);
    fl_free(d->nodes);
}

/* ---- create and close ------------------------------------------------------------- */

int dispatch_create(const struct leader_io *io, const struct dispatch_agents *agents,
                    const struct dispatch_config *cfg, struct dispatch **out)
{
    struct dispatch *d = fl_calloc(1, sizeof *d);
    int rv;
    if (d == NULL) {
        return FL_ENOMEM;
    }
    d->io = io;
    d->agents = *agents;
    d->cfg = *cfg;
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
    strmap_init(&d->counts_dirty);
    d->timers_open = 1;
    rv = io->timer_start(io->impl, DISPATCH_TICK_MS, tick_cb, d);
    if (rv != FL_OK) {
        free_maps(d);
        fl_free(d);
        return rv;
    }
    rv = io->subscribe(io->impl, dispatch__on_effect, d);
    if (rv != FL_OK) {
        io->timer_close(io->impl, NULL, NULL);
        free_maps(d);
        fl_free(d);
        return rv;
    }
    *out = d;
    return FL_OK;
}

/* Nothing fires and no answer is due: free everything. */
static void finish(struct dispatch *d)
{
    free_maps(d);
    sodium_memzero(d->cfg.secret_key, sizeof d->cfg.secret_key);
    fl_free(d);
}

/* The dispatcher is closed once its timers are: its owner goes on at once.
 * Proposals still unanswered (no quorum) must not hold a shutdown; the
 * memory goes with the last answer. */
static void timers_closed(void *arg)
{
    struct dispatch *d = arg;
    d->timers_open = 0;
    if (d->close_cb != NULL) {
        d->close_cb(d->close_data);
    }
    if (d->n_asked == 0) {
        finish(d);
    }
}

void dispatch_close(struct dispatch *d, void (*cb)(void *data), void *data)
{
    d->closing = 1;
    d->close_cb = cb;
    d->close_data = data;
    d->io->unsubscribe(d->io->impl, dispatch__on_effect, d);
    d->io->timer_close(d->io->impl, timers_closed, d);
}

/* ---- public ------------------------------------------------------------------- */

int dispatch_connected(struct dispatch *d, const char *node)
{
    return d != NULL && dispatch__agent_of(d, node) != NULL;
}

json_t *dispatch_stats_json(struct dispatch *d)
{
    json_t *o =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "agents_connected",
                  (json_int_t)strmap_size(&d->by_id), "units_assigned", (json_int_t)d->n_assigned,
                  "assignments_refused", (json_int_t)d->n_assign_refused, "runs_sent",
                  (json_int_t)d->n_runs, "results_committed", (json_int_t)d->n_results,
                  "stale_results", (json_int_t)d->n_stale, "nodes_lost", (json_int_t)d->n_lost,
                  "units_taken_back", (json_int_t)d->n_requeued, "rounds", (json_int_t)d->n_rounds);
    json_object_set_new(o, "runs_held", json_integer((json_int_t)d->n_held));
    json_object_set_new(o, "foreign_reports",
                        json_integer((json_int_t)(d->n_foreign_done + d->n_foreign_log)));
    json_object_set_new(o, "foreign_results", json_integer((json_int_t)d->n_foreign_done));
    json_object_set_new(o, "foreign_logs", json_integer((json_int_t)d->n_foreign_log));
    return o;
}

void dispatch_why(struct dispatch *d, struct store_txn *t, const struct sched_unit *u,
                  struct sched_why *out)
{
    struct sched_node *sn;
    dispatch__refresh_nodes(d, t);
    sn = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *sn);
    if (sn == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    for (unsigned i = 0; i < d->n_nodes; i++) {
        dispatch__fill_sched_node(d, i, &sn[i]);
    }
    sched_why(sn, d->n_nodes, u, dfsm(d)->time_ms, out);
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
    if (store_begin(dstore(d), 0, &t) != FL_OK) {
        return 0;
    }
    if (store_cursor_open(t, STORE_NODEUNITS, node, nl, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            char task[STORE_TASK_ID_MAX];
            struct store_unit u;
            uint32_t unit;
            if (!dispatch__nodeunit_parse(node, k, kl, task, sizeof task, &unit)) {
                break;
            }
            if (store_unit_get(t, task, unit, &u) == FL_OK && u.state == STORE_UNIT_RUNNING) {
                dispatch__send_cancel(d, node, task, unit, u.attempt, u.token);
                n++;
            }
        }
        store_cursor_close(c);
    }
    store_abort(t);
    return n;
}
