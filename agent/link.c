/* The agent's connection to the servers (agent/agent_int.h): one TCP
 * connection at a time to a server's agent address (the join list in turn,
 * or where a redirect points), the secure channel on it (docs/SECURITY.md
 * "Links"), HELLO once the channel is open, heartbeats after WELCOME, the
 * messages from the leader, and reconnecting with a backoff after a failure,
 * a redirect or a refusal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/ident.h"
#include "common/log.h"
#include "tls/tlink.h"
#include "common/strmap.h"

struct write_req {
    uv_write_t req;
    uint8_t *data;
};

static void start_connect(struct agent *a);

/* ---- sending -------------------------------------------------------------- */

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    fl_free(w->data);
    fl_free(w);
}

/* Write bytes already on the wire format (the buffer is taken over). */
static int write_raw(struct agent *a, struct fl_buf *b)
{
    struct write_req *w;
    uv_buf_t buf;
    if (a->tcp == NULL || b->len == 0) {
        return a->tcp == NULL ? FL_ENET : FL_OK;
    }
    w = fl_malloc(sizeof *w);
    if (w == NULL) {
        return FL_ENOMEM;
    }
    buf.len = b->len;
    w->data = fl_buf_steal(b, NULL);
    buf.base = (char *)w->data;
    if (uv_write(&w->req, (uv_stream_t *)a->tcp, &buf, 1, write_done) != 0) {
        fl_free(w->data);
        fl_free(w);
        return FL_ENET;
    }
    return FL_OK;
}

/* Send protocol bytes through the secure channel. */
int agent__send_bytes(struct agent *a, const uint8_t *p, size_t n)
{
    struct fl_buf wire;
    int rv;
    if (!a->connected || a->tcp == NULL || a->ch == NULL || tlink_state(a->ch) != TLINK_OPEN) {
        return FL_ENET;
    }
    fl_buf_init(&wire);
    rv = tlink_send(a->ch, p, n, &wire);
    if (rv == FL_OK) {
        rv = write_raw(a, &wire);
    }
    fl_buf_close(&wire);
    return rv;
}

int agent__send_msg(struct agent *a, const struct aproto_msg *m)
{
    struct fl_buf b;
    char err[FL_ERRMSG_SIZE];
    int rv;
    fl_buf_init(&b);
    rv = aproto_encode_ex(m, APROTO_FRAME_LIMIT, &b, err);
    if (rv != FL_OK) {
        FL_WARN("agent: cannot encode %s: %s", aproto_type_name(m->type), err);
    } else {
        rv = agent__send_bytes(a, b.data, b.len);
    }
    fl_buf_close(&b);
    return rv;
}

static void send_hello(struct agent *a)
{
    struct aproto_msg m;
    struct aproto_unit_ref *refs = NULL;
    const char *labels[AGENT_LABELS_MAX];
    unsigned char binding[TLINK_BINDING_BYTES], auth[FL_IDENT_AUTH_BYTES];
    size_t i = 0;
    const char *k;
    void *v;
    uint32_t n = 0;
    refs = fl_calloc(strmap_size(&a->runs) + 1, sizeof *refs);
    if (refs == NULL) {
        return;
    }
    while (strmap_next(&a->runs, &i, &k, &v) && n < APROTO_RUNNING_MAX) {
        refs[n++] = ((struct run *)v)->ref;
    }
    for (unsigned j = 0; j < a->cfg.n_labels; j++) {
        labels[j] = a->cfg.labels[j];
    }
    /* Proof of the agent's identity key, bound to this session. */
    if (tlink_binding(a->ch, binding) == FL_OK) {
        fl_ident_hello_sign(a->id_sk, binding, a->cfg.id, auth);
    }
    aproto_msg_init(&m, APROTO_HELLO);
    m.u.hello.auth = auth;
    m.u.hello.auth_len = sizeof auth;
    m.u.hello.agent_id = a->cfg.id;
    m.u.hello.version = "flotilla-0.1.0";
    m.u.hello.cap = a->cfg.cap;
    m.u.hello.n_labels = a->cfg.n_labels;
    m.u.hello.labels = labels;
    m.u.hello.n_running = n;
    m.u.hello.running = refs;
    agent__send_msg(a, &m);
    fl_free(refs);
}

void agent__tcp_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    fl_free(h);
    if (--a->open_handles == 0 && a->closing) {
        agent__finish(a);
    }
}

static void reconnect_cb(uv_timer_t *h)
{
    start_connect(h->data);
}

void agent__schedule_reconnect(struct agent *a, unsigned delay)
{
    if (a->closing) {
        return;
    }
    uv_timer_start(&a->reconnect, reconnect_cb, delay, 0);
}

static void disconnect(struct agent *a, const char *why, unsigned delay)
{
    if (a->tcp != NULL) {
        if (a->welcomed) {
            FL_INFO("agent %s: disconnected: %s", a->cfg.id, why);
        }
        a->tcp->data = a;
        a->open_handles++;
        uv_close((uv_handle_t *)a->tcp, agent__tcp_closed);
        a->tcp = NULL;
    }
    aproto_reader_close(&a->rd);
    tlink_destroy(a->ch);
    a->ch = NULL;
    a->connected = a->welcomed = a->connecting = 0;
    uv_timer_stop(&a->heartbeat);
    agent__schedule_reconnect(a, delay);
}

static void heartbeat_cb(uv_timer_t *h)
{
    struct agent *a = h->data;
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_HEARTBEAT);
    m.u.heartbeat.seq = ++a->heartbeat_seq;
    m.u.heartbeat.running = (uint32_t)strmap_size(&a->runs);
    agent__send_msg(a, &m);
}

static void on_message(struct agent *a, struct aproto_msg *m)
{
    switch (m->type) {
    case APROTO_WELCOME:
        if (m->u.welcome.accepted) {
            FL_INFO("agent %s: connected to the leader", a->cfg.id);
            a->welcomed = 1;
            a->backoff_ms = BACKOFF_MIN_MS;
            a->refused_ms = 0;
            a->redirect[0] = '\0';
            uv_timer_start(&a->heartbeat, heartbeat_cb, m->u.welcome.heartbeat_ms,
                           m->u.welcome.heartbeat_ms ? m->u.welcome.heartbeat_ms : 1000);
            agent__spool_resend(a);
        } else {
            snprintf(a->redirect, sizeof a->redirect, "%s",
                     m->u.welcome.leader ? m->u.welcome.leader : "");
            disconnect(a, "redirected", a->redirect[0] ? 0 : a->backoff_ms);
        }
        break;
    case APROTO_RUN:
        agent__on_run(a, &m->u.run);
        break;
    case APROTO_CANCEL:
        agent__on_cancel(a, &m->u.cancel);
        break;
    case APROTO_ACK:
        agent__spool_drop(a, &m->u.ack.ref);
        break;
    case APROTO_HEARTBEAT:
        break;
    case APROTO_ERROR: {
        int pending = m->u.error.code != NULL && strcmp(m->u.error.code, "approval_required") == 0;
        unsigned cap = pending ? PENDING_MAX_MS : REFUSED_MAX_MS;
        a->refused_ms = a->refused_ms == 0         ? REFUSED_MIN_MS
                        : a->refused_ms >= cap / 2 ? cap
                                                   : a->refused_ms * 2;
        a->backoff_ms = a->refused_ms; /* used when the server closes the link */
        FL_WARN("agent %s: server says %s: %s (next attempt in %u ms)", a->cfg.id, m->u.error.code,
                m->u.error.message, a->refused_ms);
        break;
    }
    default:
        break;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[65536];
    buf->base = slab;
    buf->len = sizeof slab;
}

/* Decrypted protocol bytes: frames and messages. */
static void on_plain(struct agent *a, const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len && a->tcp != NULL) {
        size_t used = 0;
        int rv = aproto_reader_feed(&a->rd, p + off, len - off, &used);
        off += used;
        if (rv != FL_OK && rv != APROTO_NEED_MORE) {
            disconnect(a, a->rd.errmsg, a->backoff_ms);
            return;
        }
        while (a->tcp != NULL) {
            struct aproto_msg m;
            rv = aproto_reader_next(&a->rd, &m);
            if (rv == APROTO_NEED_MORE) {
                break;
            }
            if (rv != FL_OK) {
                FL_WARN("agent %s: bad frame from the server: %s", a->cfg.id, a->rd.errmsg);
                if (rv == FL_ETOOBIG) {
                    disconnect(a, "bad frame", a->backoff_ms);
                    return;
                }
                continue;
            }
            on_message(a, &m);
            aproto_msg_close(&m);
        }
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct agent *a = s->data;
    struct fl_buf wire, plain;
    int was_open, rv;
    if (nread == 0 || a->ch == NULL) {
        return;
    }
    if (nread < 0) {
        if (tlink_state(a->ch) != TLINK_OPEN) {
            FL_WARN("agent %s: %s closed the connection during the TLS handshake "
                    "(a certificate of another CA, or revoked? see its log)",
                    a->cfg.id, a->server);
        }
        disconnect(a, nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread),
                   a->backoff_ms);
        return;
    }
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    was_open = tlink_state(a->ch) == TLINK_OPEN;
    rv = tlink_recv(a->ch, (const uint8_t *)buf->base, (size_t)nread, &wire, &plain);
    if (rv != FL_OK) {
        FL_WARN("agent %s: TLS link to %s: %s", a->cfg.id, a->server, tlink_errmsg(a->ch));
        write_raw(a, &wire); /* the alert says why */
        disconnect(a, "TLS link failed", a->backoff_ms);
    } else {
        write_raw(a, &wire);
        if (!was_open && tlink_state(a->ch) == TLINK_OPEN) {
            send_hello(a);
        }
        on_plain(a, plain.data, plain.len);
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

/* The handshake's first message; HELLO follows once the channel is open. */
static int start_channel(struct agent *a)
{
    struct tlink_config c = {a->cfg.creds, TLINK_AGENT, NULL, NULL};
    struct fl_buf wire;
    char err[FL_ERRMSG_SIZE];
    int rv;
    rv = tlink_create(&c, 1, &a->ch, err);
    if (rv != FL_OK) {
        FL_ERROR("agent %s: %s", a->cfg.id, err);
        return rv;
    }
    fl_buf_init(&wire);
    rv = tlink_start(a->ch, &wire);
    if (rv == FL_OK) {
        rv = write_raw(a, &wire);
    }
    fl_buf_close(&wire);
    return rv;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct agent *a = req->data;
    a->connecting = 0;
    if (a->closing) {
        return;
    }
    if (status != 0) {
        a->connected = 0;
        disconnect(a, uv_strerror(status), a->backoff_ms);
        if (a->backoff_ms < BACKOFF_MAX_MS) {
            a->backoff_ms *= 2;
        }
        return;
    }
    a->connected = 1;
    uv_tcp_nodelay(a->tcp, 1);
    a->tcp->data = a;
    if (start_channel(a) != FL_OK) {
        disconnect(a, "cannot start the secure channel", a->backoff_ms);
        return;
    }
    uv_read_start((uv_stream_t *)a->tcp, alloc_cb, read_cb);
}

static void start_connect(struct agent *a)
{
    struct sockaddr_in sa;
    char host[128], target[128];
    const char *addr, *colon;
    if (a->closing || a->connecting || a->tcp != NULL) {
        return;
    }
    if (a->redirect[0]) {
        snprintf(target, sizeof target, "%s", a->redirect);
        a->redirect[0] = '\0';
    } else {
        snprintf(target, sizeof target, "%s", a->cfg.join[a->join_next++ % a->cfg.n_join]);
    }
    addr = target;
    snprintf(a->server, sizeof a->server, "%s", target);
    colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
        agent__schedule_reconnect(a, a->backoff_ms);
        return;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0) {
        agent__schedule_reconnect(a, a->backoff_ms);
        return;
    }
    a->tcp = fl_calloc(1, sizeof *a->tcp);
    if (a->tcp == NULL) {
        agent__schedule_reconnect(a, a->backoff_ms);
        return;
    }
    uv_tcp_init(a->loop, a->tcp);
    aproto_reader_init(&a->rd, APROTO_FRAME_LIMIT);
    a->connecting = 1;
    a->connect_req.data = a;
    if (uv_tcp_connect(&a->connect_req, a->tcp, (const struct sockaddr *)&sa, connect_cb) != 0) {
        a->connecting = 0;
        disconnect(a, "connect failed", a->backoff_ms);
    }
}
