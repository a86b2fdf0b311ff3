/* The dispatcher (node/dispatch.h; docs/SCHEDULER.md): the tick (leadership,
 * lost agents, reconcile deadlines), create and close, stats. Its parts are
 * listed in node/dispatch_int.h. Everything runs on the server's loop thread. */
#include "node/dispatch_int.h"

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

static void tick_cb(uv_timer_t *h)
{
    struct dispatch *d = h->data;
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
        for (struct session *ss = d->sessions; ss != NULL; ss = ss->next) {
            if (ss->welcomed) {
                dispatch__session_close(ss, "leadership moved");
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
            dispatch__session_close(ss, "silent past lost_after");
        }
    }
    if (d->nodes_dirty) {
        struct store_txn *t;
        if (store_begin(d->s->store, 0, &t) == FL_OK) {
            dispatch__refresh_nodes(d, t);
            store_abort(t);
        }
    }
    for (unsigned n = 0; n < d->n_nodes; n++) {
        struct store_node *sn = &d->nodes[n].n;
        uint64_t *since;
        uint64_t from;
        if (sn->lost || dispatch__session_of(d, sn->id) != NULL ||
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
        rv = uv_listen((uv_stream_t *)&d->listener, 511, dispatch__accept_cb);
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
    rg_repl_fsm(s->repl)->sched_cb = dispatch__on_applied;
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
        dispatch__task_cache_free(v);
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
void dispatch__finish(struct dispatch *d)
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
        dispatch__finish(d);
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
            dispatch__session_close(ss, "server shutting down");
        } else {
            d->open_handles++;
        }
    }
    /* Sessions decrement through dispatch__session_closed; the three handles here. */
    uv_close((uv_handle_t *)&d->listener, handle_closed);
    uv_close((uv_handle_t *)&d->round_timer, handle_closed);
    uv_close((uv_handle_t *)&d->tick, handle_closed);
}

int dispatch_connected(struct dispatch *d, const char *node)
{
    return d != NULL && dispatch__session_of(d, node) != NULL;
}

json_t *dispatch_stats_json(struct dispatch *d)
{
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "agents_connected",
        (json_int_t)strmap_size(&d->by_id), "units_assigned", (json_int_t)d->n_assigned,
        "assignments_refused", (json_int_t)d->n_assign_refused, "runs_sent", (json_int_t)d->n_runs,
        "results_committed", (json_int_t)d->n_results, "stale_results", (json_int_t)d->n_stale,
        "nodes_lost", (json_int_t)d->n_lost, "units_taken_back", (json_int_t)d->n_requeued,
        "rounds", (json_int_t)d->n_rounds, "bad_frames", (json_int_t)d->n_bad_frames);
    json_object_set_new(o, "refused_connections", json_integer((json_int_t)d->n_refused));
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
