/* node/ — the dispatcher's agent connections: accept, the secure channel
 * (docs/SECURITY.md "Links"), framing, sending and closing sessions. */
#include "node/dispatch_int.h"

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

int dispatch__send_msg(struct session *ss, const struct aproto_msg *m)
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

void dispatch__session_closed(uv_handle_t *h)
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
        dispatch__finish(d);
    }
}

void dispatch__session_close(struct session *ss, const char *why)
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
    uv_close((uv_handle_t *)&ss->tcp, dispatch__session_closed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct session *ss = req->data;
    fl_free(req);
    dispatch__session_close(ss, "answered");
}

/* Close once what is queued has been written (uv_close would drop it). */
void dispatch__session_close_after_write(struct session *ss)
{
    uv_shutdown_t *req;
    if (ss->closing || ss->shutting) {
        return;
    }
    ss->shutting = 1;
    req = fl_malloc(sizeof *req);
    if (req == NULL) {
        dispatch__session_close(ss, "out of memory");
        return;
    }
    req->data = ss;
    uv_read_stop((uv_stream_t *)&ss->tcp);
    if (uv_shutdown(req, (uv_stream_t *)&ss->tcp, shutdown_cb) != 0) {
        fl_free(req);
        dispatch__session_close(ss, "shutdown failed");
    }
}

void dispatch__send_error(struct session *ss, const char *code, const char *msg)
{
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_ERROR);
    m.u.error.code = code;
    m.u.error.message = msg;
    dispatch__send_msg(ss, &m);
}

struct session *dispatch__session_of(struct dispatch *d, const char *node)
{
    struct session *ss = strmap_get(&d->by_id, node);
    return ss != NULL && !ss->closing ? ss : NULL;
}

void dispatch__send_cancel(struct dispatch *d, const char *node, const char *task, uint32_t unit,
                           uint32_t attempt, uint64_t token)
{
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_CANCEL);
    aproto_unit_ref_set(&m.u.cancel.ref, task, unit, attempt, token);
    dispatch__send_msg(dispatch__session_of(d, node), &m);
}

static void on_message(struct session *ss, struct aproto_msg *m)
{
    struct dispatch *d = ss->d;
    char key[STORE_TASK_ID_MAX + 16];
    ss->last_seen = now_ms(d);
    if (m->type != APROTO_HELLO && !ss->welcomed) {
        dispatch__send_error(ss, "bad_frame", "HELLO first");
        dispatch__session_close_after_write(ss);
        return;
    }
    switch (m->type) {
    case APROTO_HELLO:
        dispatch__on_hello(ss, &m->u.hello);
        break;
    case APROTO_HEARTBEAT:
        ss->reported_running = m->u.heartbeat.running;
        break;
    case APROTO_STARTED:
        unit_key(key, sizeof key, m->u.started.ref.task_id, m->u.started.ref.unit);
        fl_free(strmap_del(&d->missing, key));
        break;
    case APROTO_LOG:
        dispatch__on_log(d, &m->u.log);
        break;
    case APROTO_DONE:
        if (dispatch__is_leader(d)) {
            dispatch__on_done(ss, &m->u.done);
        } else {
            dispatch__session_close(ss, "no longer the leader");
        }
        break;
    case APROTO_ERROR:
        FL_WARN("agent %s: error %s: %s", ss->id, m->u.error.code, m->u.error.message);
        break;
    default:
        dispatch__send_error(ss, "bad_frame", "unexpected message");
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
            dispatch__send_error(ss, "bad_frame", ss->rd.errmsg);
            dispatch__session_close_after_write(ss);
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
                dispatch__send_error(ss, "bad_frame", ss->rd.errmsg);
                if (rv == FL_ETOOBIG || !ss->welcomed) {
                    dispatch__session_close_after_write(ss);
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
        dispatch__session_close(ss,
                                nread == UV_EOF ? "closed by the agent" : uv_strerror((int)nread));
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
        dispatch__session_close(ss, "secure channel failed");
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

void dispatch__accept_cb(uv_stream_t *server, int status)
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
        dispatch__session_close(ss, "accept failed");
        return;
    }
    uv_tcp_nodelay(&ss->tcp, 1);
    ss->last_seen = now_ms(d);
    peer_name(ss);
    if (start_channel(ss) != FL_OK) {
        dispatch__session_close(ss, "no secure channel");
        return;
    }
    uv_read_start((uv_stream_t *)&ss->tcp, alloc_cb, read_cb);
}
