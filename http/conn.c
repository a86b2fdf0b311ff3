/* The connections of the HTTP server (http/server_int.h): their states,
 * reading, and the idle and linger timers.
 *
 * Each connection is an explicit state machine (allowed transitions are
 * checked in http__set_state):
 *
 *   READING --complete request--> HANDLING --http_respond--> WRITING
 *   READING --limit violated----> WRITING (server's own error, then close)
 *   WRITING --keep-alive-> READING      WRITING --close--> LINGERING
 *   any --error, EOF, idle, stop--> CLOSING --both handles closed--> freed
 *
 * The parser is paused in on_message_complete (http/parse.c), so
 * http_parser_execute stops right after one request; bytes after it
 * (pipelining) wait in `unparsed` until the response is written. A
 * connection is freed only in the close callback of the last of its two
 * handles (socket and timer); a request with the handler when its
 * connection closes is detached (conn_ = NULL) and freed by http_respond. */
#include <assert.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "http/server_int.h"

void http__set_state(struct http_conn *c, enum conn_state to)
{
    static const unsigned allowed[] = {
        [CONN_READING] = 1u << CONN_HANDLING | 1u << CONN_WRITING | 1u << CONN_CLOSING,
        [CONN_HANDLING] = 1u << CONN_WRITING | 1u << CONN_CLOSING,
        [CONN_WRITING] = 1u << CONN_READING | 1u << CONN_LINGERING | 1u << CONN_CLOSING,
        [CONN_LINGERING] = 1u << CONN_CLOSING,
        [CONN_CLOSING] = 0,
    };
    assert(allowed[c->state] & (1u << to));
    (void)allowed;
    c->state = to;
}

static void on_conn_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    struct http_server *s = c->server;
    if (--c->open_handles > 0) {
        return;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->stats.open_conns--;
    fl_buf_close(&c->unparsed);
    fl_buf_close(&c->wbuf);
    fl_buf_close(&c->ebuf);
    tlink_destroy(c->tls);
    fl_free(c);
    http__maybe_finish_stop(s);
}

void http__conn_close(struct http_conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    http__set_state(c, CONN_CLOSING);
    if (c->pending != NULL) {
        c->pending->conn_ = NULL; /* http_respond will only free it */
        c->pending = NULL;
    }
    http__request_free(c->cur);
    c->cur = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void linger(struct http_conn *c);

struct raw_write {
    uv_write_t req;
    uint8_t *data;
};

static void raw_written(uv_write_t *w, int status)
{
    struct raw_write *r = (struct raw_write *)w;
    (void)status;
    fl_free(r->data);
    fl_free(r);
}

void http__write_raw(struct http_conn *c, struct fl_buf *b)
{
    struct raw_write *r;
    uv_buf_t ub;
    if (b->len == 0 || c->state == CONN_CLOSING) {
        fl_buf_reset(b);
        return;
    }
    r = fl_malloc(sizeof *r);
    if (r == NULL) {
        fl_buf_reset(b);
        return;
    }
    ub.len = b->len;
    r->data = fl_buf_steal(b, NULL);
    ub.base = (char *)r->data;
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &ub, 1, raw_written) != 0) {
        fl_free(r->data);
        fl_free(r);
    }
}

void http__on_written(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    if (c->wbuf.cap > WBUF_KEEP) {
        fl_buf_close(&c->wbuf);
    } else {
        fl_buf_reset(&c->wbuf);
    }
    if (c->ebuf.cap > WBUF_KEEP) {
        fl_buf_close(&c->ebuf);
    } else {
        fl_buf_reset(&c->ebuf);
    }
    if (c->state == CONN_CLOSING) {
        return; /* cancelled by conn_close */
    }
    if (status < 0) {
        http__conn_close(c);
        return;
    }
    if (c->close_after_write || c->server->stopping) {
        linger(c);
        return;
    }
    http__set_state(c, CONN_READING);
    http_parser_pause(&c->parser, 0);
    http__resume(c);
}

static void dispatch(struct http_conn *c)
{
    struct http_request *r = c->cur;
    c->cur = NULL;
    c->req_started = 0;
    c->headers_at = 0;
    if (c->tls != NULL && tlink_peer(c->tls)->role != 0) {
        r->peer_role = tlink_peer(c->tls)->role;
        snprintf(r->peer_name, sizeof r->peer_name, "%s", tlink_peer(c->tls)->name);
    }
    c->pending = r;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    http__set_state(c, CONN_HANDLING);
    c->server->stats.requests++;
    c->server->cb(c->server->data, r); /* may respond, or stop the server, at once */
}

/* ------------------------------------------------------------ reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    buf->base = c->server->readbuf;
    buf->len = sizeof c->server->readbuf;
}

/* Plaintext request bytes: parse, and dispatch a complete request. */
static void feed(struct http_conn *c, const char *data, size_t len)
{
    size_t n;
    int complete;
    c->last_active = uv_now(c->server->loop);
    n = http__parse(c, data, len, &complete);
    if (complete) {
        /* Keep what follows the request for after the response. */
        if (fl_buf_append(&c->unparsed, data + n, len - n) != FL_OK) {
            http__conn_close(c);
            return;
        }
        c->unparsed_off = 0;
        dispatch(c);
    }
}

/* HTTPS: decrypt, answer the handshake, feed what the client sent. */
static void feed_tls(struct http_conn *c, const char *data, size_t len)
{
    struct fl_buf wire, plain;
    int rv;
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    rv = tlink_recv(c->tls, (const uint8_t *)data, len, &wire, &plain);
    http__write_raw(c, &wire); /* the handshake's answer, or the alert that says why */
    if (rv != FL_OK) {
        c->server->stats.tls_refused++;
        http__conn_close(c);
    } else if (plain.len > 0) {
        feed(c, (const char *)plain.data, plain.len);
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;
    if (nread == 0) {
        return;
    }
    if (c->state == CONN_LINGERING) {
        c->lingered += nread > 0 ? (size_t)nread : 0;
        if (nread < 0 || c->lingered > LINGER_MAX_BYTES) {
            http__conn_close(c);
        }
        return;
    }
    if (nread < 0) {
        http__conn_close(c); /* EOF or error; a partial request is dropped */
        return;
    }
    if (c->state != CONN_READING) {
        return; /* not reading: cannot happen */
    }
    if (c->tls != NULL) {
        feed_tls(c, buf->base, (size_t)nread);
    } else {
        feed(c, buf->base, (size_t)nread);
    }
}

/* The current request's deadline (loop time), or 0 when none runs. */
static uint64_t request_deadline(const struct http_conn *c)
{
    if (c->cur == NULL || c->req_started == 0) {
        return 0;
    }
    return c->headers_at ? c->headers_at + c->server->lim.body_timeout_ms
                         : c->req_started + c->server->lim.header_timeout_ms;
}

static void on_timer(uv_timer_t *t);

void http__arm_timer(struct http_conn *c)
{
    uint64_t now = uv_now(c->server->loop);
    uint64_t due = c->last_active + c->server->lim.idle_timeout_ms;
    uint64_t req = request_deadline(c);
    if (c->state != CONN_READING) {
        return;
    }
    if (req != 0 && req < due) {
        due = req;
    }
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    uint64_t now = uv_now(c->server->loop);
    uint64_t idle = c->server->lim.idle_timeout_ms;
    uint64_t req = request_deadline(c);
    if (c->state == CONN_LINGERING) {
        http__conn_close(c);
    } else if (c->state == CONN_READING && req != 0 && now >= req) {
        /* A trickle of bytes extends the idle timer, never this. */
        c->server->stats.timed_out++;
        http__reject_request(c, 408, "request_timeout",
                             c->headers_at ? "the request body did not arrive in time"
                                           : "the request headers did not arrive in time");
    } else if (c->state == CONN_READING && now - c->last_active >= idle) {
        http__conn_close(c);
    } else if (c->state == CONN_READING) {
        http__arm_timer(c);
    }
}

/* Back to READING: parse what was pipelined, then read more. */
void http__resume(struct http_conn *c)
{
    c->last_active = uv_now(c->server->loop);
    uv_timer_start(&c->timer, on_timer, c->server->lim.idle_timeout_ms, 0);
    if (c->unparsed_off < c->unparsed.len) {
        int complete;
        c->unparsed_off += http__parse(c, (const char *)c->unparsed.data + c->unparsed_off,
                                       c->unparsed.len - c->unparsed_off, &complete);
        if (complete) {
            dispatch(c); /* the rest stays for the next resume */
            return;
        }
    }
    fl_buf_close(&c->unparsed);
    c->unparsed_off = 0;
    if (c->state == CONN_READING && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        http__conn_close(c);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    if (status < 0 && c->state != CONN_CLOSING) {
        http__conn_close(c);
    }
}

/* After a final response: send FIN, drain what the peer still sends (so it
 * is not answered with a reset that could destroy the response in flight),
 * close on its EOF or after LINGER_MS. */
static void linger(struct http_conn *c)
{
    if (c->tls != NULL) {
        struct fl_buf b;
        fl_buf_init(&b);
        tlink_shutdown(c->tls, &b); /* close_notify: the end is not a truncation */
        http__write_raw(c, &b);
        fl_buf_close(&b);
    }
    http__set_state(c, CONN_LINGERING);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        http__conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}
