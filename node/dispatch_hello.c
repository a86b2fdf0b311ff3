/* node/ — an agent's HELLO: its identity (docs/SECURITY.md "Links"), its
 * registration as a node, and the reconcile of what it reports running with
 * the replicated state. */
#include "node/dispatch_int.h"

/* ---- HELLO: registration and dispatch__reconcile --------------------------------------- */

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

void dispatch__reconcile(struct dispatch *d, struct store_txn *t, struct session *ss,
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
            dispatch__send_cancel(d, ss->id, r->task_id, r->unit, r->attempt, r->token);
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
            if (!dispatch__nodeunit_parse(ss->id, k, kl, task, sizeof task, &unit)) {
                break;
            }
            unit_key(key, sizeof key, task, unit);
            if (strmap_get(&reported, key) != NULL || store_unit_get(t, task, unit, &u) != FL_OK) {
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
    dispatch__send_error(ss, code, msg);
    dispatch__session_close_after_write(ss);
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
    if (!dispatch__is_leader(d)) {
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

void dispatch__on_hello(struct session *ss, const struct aproto_hello *h)
{
    struct dispatch *d = ss->d;
    struct aproto_msg m;
    struct store_txn *t;
    struct session *other;
    char leader[STORE_NODE_ADDR_MAX];

    if (ss->welcomed) {
        dispatch__send_error(ss, "bad_frame", "HELLO twice");
        dispatch__session_close_after_write(ss);
        return;
    }
    aproto_msg_init(&m, APROTO_WELCOME);
    if (!dispatch__is_leader(d)) {
        if (!hello_identity(ss, h)) {
            return; /* only its proof is checked here: the leader knows the keys */
        }
        leader_agent_addr(d, leader, sizeof leader);
        m.u.welcome.accepted = false;
        m.u.welcome.leader = leader;
        m.u.welcome.message = "not the leader";
        dispatch__send_msg(ss, &m);
        dispatch__session_close_after_write(ss);
        return;
    }
    other = dispatch__session_of(d, h->agent_id);
    if (other != NULL) {
        FL_WARN("agent %s: a second connection while one is open; refused", h->agent_id);
        dispatch__send_error(ss, "duplicate_agent", "an agent with this id is already connected");
        dispatch__session_close_after_write(ss);
        return;
    }
    if (!hello_identity(ss, h)) {
        return;
    }
    snprintf(ss->id, sizeof ss->id, "%s", h->agent_id);
    if (store_begin(d->s->store, 0, &t) == FL_OK) {
        register_node(d, t, h);
        dispatch__reconcile(d, t, ss, h);
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
    dispatch__send_msg(ss, &m);
    ss->reported_running = h->n_running;
    FL_INFO("agent %s connected (cap %u, %u running)", ss->id, h->cap, h->n_running);
    d->nodes_dirty = 1;
    dispatch_kick(d);
}
