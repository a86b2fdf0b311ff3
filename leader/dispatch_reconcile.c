/* leader/ — an attached agent's HELLO on the leader: its registration as a
 * node, the reconcile of what it reports running with the replicated state,
 * and its WELCOME. Its identity was checked by its link (node/agentlink_hello.c). */
#include "leader/dispatch_int.h"

/* ---- registration and reconcile ------------------------------------------------- */

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
        cmd.u.node.blob_addr = n.blob_addr; /* a server's row keeps its blob link */
        cmd.u.node.blob_addr_len = strlen(n.blob_addr);
    }
    cmd.u.node.n_labels = h->n_labels > STORE_NODE_LABELS ? STORE_NODE_LABELS : h->n_labels;
    for (unsigned i = 0; i < cmd.u.node.n_labels; i++) {
        cmd.u.node.labels[i] = h->labels[i];
        cmd.u.node.label_lens[i] = strlen(h->labels[i]);
    }
    dpropose(d, &cmd, dispatch__ignore, NULL);
}

static void reconcile(struct dispatch *d, struct store_txn *t, struct dagent *a,
                      const struct aproto_hello *h)
{
    struct strmap reported;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl, nl = strlen(a->id) + 1;
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
                  strcmp(u.node, a->id) == 0;
        if (!own || u.cancel) {
            dispatch__send_cancel(d, a->id, r->task_id, r->unit, r->attempt, r->token);
        }
        if (!own) {
            char run[STORE_TASK_ID_MAX + 40];
            run_key(run, sizeof run, r);
            strmap_put(&a->stale, run, (void *)1, NULL); /* holds a slot until its DONE */
        }
    }
    /* What we think it runs that it does not report: give it a moment (its
     * spooled results come right after WELCOME), then take the unit back. */
    if (store_cursor_open(t, STORE_NODEUNITS, a->id, nl, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            char task[STORE_TASK_ID_MAX], key[STORE_TASK_ID_MAX + 16];
            struct store_unit u;
            uint32_t unit;
            struct missing *m;
            if (!dispatch__nodeunit_parse(a->id, k, kl, task, sizeof task, &unit)) {
                break;
            }
            unit_key(key, sizeof key, task, unit);
            if (strmap_get(&reported, key) != NULL || store_unit_get(t, task, unit, &u) != FL_OK) {
                continue;
            }
            m = fl_malloc(sizeof *m);
            if (m != NULL) {
                void *old = NULL;
                memcpy(m->node, a->id, sizeof m->node);
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

int dispatch__welcome(struct dispatch *d, void *link, const struct aproto_hello *h)
{
    struct aproto_msg m;
    struct store_txn *t;
    struct dagent *a;

    if (!dispatch__is_leader(d)) {
        return FL_ENOTLEADER;
    }
    if (strmap_get(&d->by_id, h->agent_id) != NULL) {
        FL_WARN("agent %s: a second connection while one is open; refused", h->agent_id);
        return FL_EEXIST;
    }
    a = fl_calloc(1, sizeof *a);
    if (a == NULL) {
        return FL_ENOMEM;
    }
    snprintf(a->id, sizeof a->id, "%s", h->agent_id);
    a->link = link;
    a->last_seen = now_ms(d);
    strmap_init(&a->stale);
    strmap_init(&a->held);
    if (strmap_put(&d->by_id, a->id, a, NULL) != FL_OK) {
        strmap_close(&a->stale);
        strmap_close(&a->held);
        fl_free(a);
        return FL_ENOMEM;
    }
    fl_free(strmap_del(&d->disconnected, a->id));
    strmap_del(&d->lost_sent, a->id);
    /* WELCOME first: the CANCELs of the reconcile follow it. */
    aproto_msg_init(&m, APROTO_WELCOME);
    m.u.welcome.accepted = true;
    m.u.welcome.leader = "";
    m.u.welcome.heartbeat_ms = d->cfg.heartbeat_ms;
    m.u.welcome.lost_after_ms = (uint32_t)d->cfg.lost_after_ms;
    m.u.welcome.message = "welcome";
    dispatch__send(d, a->id, &m);
    if (store_begin(dstore(d), 0, &t) == FL_OK) {
        register_node(d, t, h);
        reconcile(d, t, a, h);
        store_abort(t);
    }
    a->reported_running = h->n_running;
    FL_INFO("agent %s connected (cap %u, %u running)", a->id, h->cap, h->n_running);
    d->nodes_dirty = 1;
    dispatch_kick(d);
    return FL_OK;
}
