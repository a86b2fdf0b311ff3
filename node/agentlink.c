/* node/ — the agent links (node/agentlink.h): accept, the secure channel
 * (docs/SECURITY.md "Links"), framing, sending and closing sessions, and the
 * dispatcher's port over them. */
#include "node/agentlink_int.h"
#include "node/denylist.h"

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
    if (ss->ch == NULL || tlink_state(ss->ch) != TLINK_OPEN) {
        return FL_ENET;
    }
    fl_buf_init(&wire);
    rv = tlink_send(ss->ch, p, n, &wire);
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

int agentlink__send_msg(struct session *ss, const struct aproto_msg *m)
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

static void closed_one(struct agentlink *l);

static void session_closed(uv_handle_t *h)
{
    struct session *ss = h->data;
    struct agentlink *l = ss->l;
    aproto_reader_close(&ss->rd);
    tlink_destroy(ss->ch);
    if (ss->prev) {
        ss->prev->next = ss->next;
    } else {
        l->sessions = ss->next;
    }
    if (ss->next) {
        ss->next->prev = ss->prev;
    }
    fl_free(ss);
    if (l->closing) {
        closed_one(l);
    }
}

void agentlink__admitted(struct session *ss)
{
    if (ss->holds_place) {
        ss->holds_place = 0;
        fl_addrcap_give(&ss->l->unadmitted, ss->ip);
        ss->l->n_unadmitted--;
    }
}

void agentlink__close(struct session *ss, const char *why)
{
    struct agentlink *l = ss->l;
    if (ss->closing) {
        return;
    }
    ss->closing = 1;
    agentlink__admitted(ss); /* its place is free */
    if (ss->welcomed) {
        FL_INFO("agent %s disconnected: %s", ss->id, why);
        ss->welcomed = 0;
        if (l->d != NULL) {
            dispatch_detach(l->d, ss->id);
        }
    }
    if (l->closing) {
        l->open_handles++;
    }
    uv_close((uv_handle_t *)&ss->tcp, session_closed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct session *ss = req->data;
    fl_free(req);
    agentlink__close(ss, "answered");
}

/* Close once what is queued has been written (uv_close would drop it). */
void agentlink__close_after_write(struct session *ss)
{
    uv_shutdown_t *req;
    if (ss->closing || ss->shutting) {
        return;
    }
    ss->shutting = 1;
    req = fl_malloc(sizeof *req);
    if (req == NULL) {
        agentlink__close(ss, "out of memory");
        return;
    }
    req->data = ss;
    uv_read_stop((uv_stream_t *)&ss->tcp);
    if (uv_shutdown(req, (uv_stream_t *)&ss->tcp, shutdown_cb) != 0) {
        fl_free(req);
        agentlink__close(ss, "shutdown failed");
    }
}

void agentlink__send_error(struct session *ss, const char *code, const char *msg)
{
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_ERROR);
    m.u.error.code = code;
    m.u.error.message = msg;
    agentlink__send_msg(ss, &m);
}

static void on_message(struct session *ss, struct aproto_msg *m)
{
    if (m->type != APROTO_HELLO && !ss->welcomed) {
        agentlink__send_error(ss, "bad_frame", "HELLO first");
        agentlink__close_after_write(ss);
        return;
    }
    switch (m->type) {
    case APROTO_HELLO:
        agentlink__on_hello(ss, &m->u.hello);
        break;
    case APROTO_HEARTBEAT:
    case APROTO_STARTED:
    case APROTO_LOG:
    case APROTO_DONE:
        dispatch_agent_msg(ss->l->d, ss->id, m);
        break;
    case APROTO_ERROR:
        FL_WARN("agent %s: error %s: %s", ss->id, m->u.error.code, m->u.error.message);
        break;
    default:
        agentlink__send_error(ss, "bad_frame", "unexpected message");
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
    struct agentlink *d = ss->l;
    size_t off = 0;
    while (off < len && !ss->closing && !ss->shutting) {
        size_t used = 0;
        int rv = aproto_reader_feed(&ss->rd, p + off, len - off, &used);
        off += used;
        if (rv != FL_OK && rv != APROTO_NEED_MORE) {
            d->n_bad_frames++;
            FL_WARN("agent connection %s: %s", ss->id[0] ? ss->id : "(before HELLO)",
                    ss->rd.errmsg);
            agentlink__send_error(ss, "bad_frame", ss->rd.errmsg);
            agentlink__close_after_write(ss);
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
                agentlink__send_error(ss, "bad_frame", ss->rd.errmsg);
                if (rv == FL_ETOOBIG || !ss->welcomed) {
                    agentlink__close_after_write(ss);
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
    struct agentlink *d = ss->l;
    struct fl_buf wire, plain;
    int was_open, rv;
    if (nread == 0 || ss->closing) {
        return;
    }
    if (nread < 0) {
        if (tlink_state(ss->ch) != TLINK_OPEN) {
            FL_WARN("agent connection from %s: closed during the TLS handshake", ss->peer);
        }
        agentlink__close(ss, nread == UV_EOF ? "closed by the agent" : uv_strerror((int)nread));
        return;
    }
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    was_open = tlink_state(ss->ch) == TLINK_OPEN;
    rv = tlink_recv(ss->ch, (const uint8_t *)buf->base, (size_t)nread, &wire, &plain);
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
                ss->id, tlink_errmsg(ss->ch));
        send_wire(ss, &wire); /* the alert says why */
        agentlink__close(ss, "TLS link failed");
    } else {
        send_wire(ss, &wire);
        on_plain(ss, plain.data, plain.len);
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

static int start_channel(struct session *ss)
{
    struct node_server *s = ss->l->s;
    struct tlink_config c = {s->creds, TLINK_AGENT, NULL, NULL};
    char err[FL_ERRMSG_SIZE];
    int rv;
    rv = tlink_create(&c, 0, &ss->ch, err);
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
    struct agentlink *l = server->data;
    struct session *ss;
    if (status != 0 || l->closing) {
        return;
    }
    ss = fl_calloc(1, sizeof *ss);
    if (ss == NULL) {
        return;
    }
    ss->l = l;
    aproto_reader_init(&ss->rd, APROTO_MAX_FRAME);
    uv_tcp_init(l->loop, &ss->tcp);
    ss->tcp.data = ss;
    ss->next = l->sessions;
    if (l->sessions) {
        l->sessions->prev = ss;
    }
    l->sessions = ss;
    if (uv_accept(server, (uv_stream_t *)&ss->tcp) != 0) {
        agentlink__close(ss, "accept failed");
        return;
    }
    uv_tcp_nodelay(&ss->tcp, 1);
    ss->opened_ms = uv_now(l->loop);
    peer_name(ss);
    snprintf(ss->ip, sizeof ss->ip, "%.*s", (int)strcspn(ss->peer, ":"), ss->peer);
    if (l->n_unadmitted >= AGENTLINK_UNADMITTED_MAX) {
        l->n_refused_busy++;
        agentlink__close(ss, "too many connections not yet admitted");
        return;
    }
    if (!fl_addrcap_take(&l->unadmitted, ss->ip)) {
        l->n_refused_per_address++;
        agentlink__close(ss, "too many connections not yet admitted from this address");
        return;
    }
    ss->holds_place = 1;
    l->n_unadmitted++;
    if (start_channel(ss) != FL_OK) {
        agentlink__close(ss, "no secure channel");
        return;
    }
    uv_read_start((uv_stream_t *)&ss->tcp, alloc_cb, read_cb);
}

/* ---- the dispatcher's port --------------------------------------------------------- */

static int port_send(void *impl, void *link, const struct aproto_msg *m)
{
    (void)impl;
    return agentlink__send_msg(link, m);
}

static void port_close(void *impl, void *link, const char *why)
{
    (void)impl;
    agentlink__close(link, why);
}

void agentlink_port(struct agentlink *l, struct dispatch_agents *out)
{
    out->impl = l;
    out->send = port_send;
    out->close = port_close;
}

void agentlink_set_dispatch(struct agentlink *l, struct dispatch *d)
{
    l->d = d;
}

/* A connection that has not been welcomed within lost_after (a client that
 * never finishes its handshake or never says HELLO) is closed. */
static void sweep_cb(uv_timer_t *h)
{
    struct agentlink *l = h->data;
    uint64_t now = uv_now(l->loop);
    struct session *next;
    for (struct session *ss = l->sessions; ss != NULL; ss = next) {
        next = ss->next;
        uint64_t limit = l->s->cfg.lost_after_ms < AGENTLINK_HELLO_MS ? l->s->cfg.lost_after_ms
                                                                      : AGENTLINK_HELLO_MS;
        if (!ss->closing && !ss->welcomed && now - ss->opened_ms > limit) {
            agentlink__close(ss, "no HELLO in time");
        }
    }
}

int agentlink_create(struct node_server *s, struct agentlink **out, char *errmsg)
{
    struct agentlink *l = fl_calloc(1, sizeof *l);
    struct sockaddr_in sa;
    char host[128];
    const char *colon = strrchr(s->cfg.agent_addr, ':');
    int rv;
    if (l == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    l->s = s;
    l->loop = s->loop;
    fl_addrcap_init(&l->unadmitted, AGENTLINK_UNADMITTED_PER_ADDRESS);
    if (colon == NULL || (size_t)(colon - s->cfg.agent_addr) >= sizeof host) {
        fl_free(l);
        return fl_errf(errmsg, FL_EINVAL, "bad agent address %s", s->cfg.agent_addr);
    }
    memcpy(host, s->cfg.agent_addr, (size_t)(colon - s->cfg.agent_addr));
    host[colon - s->cfg.agent_addr] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0) {
        fl_free(l);
        return fl_errf(errmsg, FL_EINVAL, "bad agent address %s", s->cfg.agent_addr);
    }
    uv_tcp_init(l->loop, &l->listener);
    l->listener.data = l;
    rv = uv_tcp_bind(&l->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&l->listener, 511, accept_cb);
    }
    if (rv != 0) {
        fl_errf(errmsg, FL_ENET, "agent listener on %s: %s", s->cfg.agent_addr, uv_strerror(rv));
        uv_close((uv_handle_t *)&l->listener, NULL);
        uv_run(l->loop, UV_RUN_NOWAIT);
        fl_free(l);
        return FL_ENET;
    }
    uv_timer_init(l->loop, &l->sweep);
    l->sweep.data = l;
    uv_timer_start(&l->sweep, sweep_cb, AGENTLINK_SWEEP_MS, AGENTLINK_SWEEP_MS);
    *out = l;
    return FL_OK;
}

/* The listener, the sweep timer and every session share one count. */
static void closed_one(struct agentlink *l)
{
    if (--l->open_handles == 0) {
        if (l->close_cb != NULL) {
            l->close_cb(l->close_data);
        }
        fl_addrcap_close(&l->unadmitted);
        fl_free(l);
    }
}

static void handle_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

void agentlink_close(struct agentlink *l, void (*cb)(void *data), void *data)
{
    l->closing = 1;
    l->close_cb = cb;
    l->close_data = data;
    l->open_handles = 2;
    for (struct session *ss = l->sessions; ss != NULL; ss = ss->next) {
        if (!ss->closing) {
            agentlink__close(ss, "server shutting down");
        } else {
            l->open_handles++;
        }
    }
    uv_close((uv_handle_t *)&l->listener, handle_closed);
    uv_close((uv_handle_t *)&l->sweep, handle_closed);
}

void agentlink_stats(struct agentlink *l, json_t *o)
{
    json_object_set_new(o, "bad_frames", json_integer((json_int_t)l->n_bad_frames));
    json_object_set_new(
        o, "refused_connections",
        json_integer((json_int_t)(l->n_refused + l->n_refused_per_address + l->n_refused_busy)));
    json_object_set_new(o, "refused_per_address",
                        json_integer((json_int_t)l->n_refused_per_address));
    json_object_set_new(o, "unadmitted_connections", json_integer((json_int_t)l->n_unadmitted));
}

void agentlink_close_denied(struct agentlink *l, struct denylist *d)
{
    struct session *next;
    for (struct session *ss = l->sessions; ss != NULL; ss = next) {
        next = ss->next;
        if (!ss->closing && ss->ch != NULL && tlink_peer(ss->ch)->role == PKI_ROLE_AGENT &&
            denylist_has(d, tlink_peer(ss->ch)->name)) {
            FL_WARN("agent %s is revoked: closing its link", tlink_peer(ss->ch)->name);
            agentlink__close(ss, "revoked");
        }
    }
}
