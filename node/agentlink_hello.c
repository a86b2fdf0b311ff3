/* node/ — an agent's HELLO on the server's side of its link: its identity
 * (docs/SECURITY.md "Links"), the follower's redirect to the leader, and the
 * hand-over of a proven agent to the dispatcher (leader/dispatch.h). */
#include "node/agentlink_int.h"
#include "store/iter.h"

#include "common/ident.h"

static int is_leader(struct agentlink *l)
{
    struct rg_status st;
    rg_repl_status(l->s->repl, &st);
    return st.state == RAFT_LEADER && st.ready;
}

static void leader_agent_addr(struct agentlink *d, char *out, size_t cap)
{
    struct rg_status st;
    struct store_txn *t;
    struct store_iter it;
    struct store_node n;
    out[0] = '\0';
    rg_repl_status(d->s->repl, &st);
    if (st.leader_id == 0 || store_begin(d->s->store, 0, &t) != FL_OK) {
        return;
    }
    if (store_iter_open(t, STORE_NODES, NULL, 0, &it) == FL_OK) {
        while (store_node_next(&it, &n) == FL_OK) {
            if (n.kind == STORE_NODE_SERVER && n.raft_id == st.leader_id) {
                snprintf(out, cap, "%s", n.agent_addr);
                break;
            }
        }
        store_iter_close(&it);
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
    ss->l->n_refused++;
    FL_WARN("agent connection from %s refused: %s", ss->peer, msg);
    agentlink__send_error(ss, code, msg);
    agentlink__close_after_write(ss);
}

static void agentkey_cb(void *data, int err, const struct fsm_result *res)
{
    if (err == FL_OK && res->err == FL_ECONFLICT) {
        FL_WARN("an agent's identity key lost a race with another key for the same id; "
                "it is refused from its next connection on");
    }
}

static void propose_agentkey(struct agentlink *d, const char *agent, const unsigned char *pk,
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
    struct agentlink *d = ss->l;
    unsigned char binding[TLINK_BINDING_BYTES], pk[FL_IDENT_PK_BYTES];
    char fpr[FL_IDENT_FPR_SIZE], known[FL_IDENT_FPR_SIZE];
    struct store_agentkey rec;
    struct store_txn *t;
    int rv;
    if (strcmp(h->agent_id, tlink_peer(ss->ch)->name) != 0) {
        refuse(ss, "identity_mismatch", "HELLO names agent %s but its certificate names %s",
               h->agent_id, tlink_peer(ss->ch)->name);
        return 0;
    }
    if (tlink_binding(ss->ch, binding) != FL_OK ||
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
    if (rv == FL_OK && rec.state == STORE_AGENTKEY_REVOKED) {
        refuse(ss, "revoked", "agent %s is revoked (flotilla agent unrevoke %s)", h->agent_id,
               h->agent_id);
        return 0;
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

void agentlink__on_hello(struct session *ss, const struct aproto_hello *h)
{
    struct agentlink *l = ss->l;
    struct aproto_msg m;
    char leader[STORE_NODE_ADDR_MAX];
    int rv;

    if (ss->welcomed) {
        agentlink__send_error(ss, "bad_frame", "HELLO twice");
        agentlink__close_after_write(ss);
        return;
    }
    /* A second connection for an attached agent is refused before its
     * proof is looked at, as the first one's is already known good. */
    if (l->d != NULL && dispatch_connected(l->d, h->agent_id)) {
        FL_WARN("agent %s: a second connection while one is open; refused", h->agent_id);
        agentlink__send_error(ss, "duplicate_agent", "an agent with this id is already connected");
        agentlink__close_after_write(ss);
        return;
    }
    if (!hello_identity(ss, h)) {
        return;
    }
    snprintf(ss->id, sizeof ss->id, "%s", h->agent_id);
    rv = l->d != NULL ? dispatch_attach(l->d, ss, h) : FL_ENOTLEADER;
    if (rv == FL_OK) {
        ss->welcomed = 1;
        agentlink__admitted(ss);
        return;
    }
    if (rv == FL_EEXIST) {
        agentlink__send_error(ss, "duplicate_agent", "an agent with this id is already connected");
    } else if (rv == FL_ENOTLEADER) {
        /* Only its proof was checked here: the leader knows the keys. */
        leader_agent_addr(l, leader, sizeof leader);
        aproto_msg_init(&m, APROTO_WELCOME);
        m.u.welcome.accepted = false;
        m.u.welcome.leader = leader;
        m.u.welcome.message = "not the leader";
        agentlink__send_msg(ss, &m);
    } else {
        agentlink__send_error(ss, "unavailable", fl_strerror(rv));
    }
    agentlink__close_after_write(ss);
}
