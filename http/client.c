/* Asynchronous HTTP/1.1 client with a per-address keep-alive pool.
 *
 * Two objects with separate lifetimes, each freed only in its close callback:
 *   - struct creq, one request: owns the timer (start, then timeout), the
 *     request bytes and the response being parsed;
 *   - struct cconn, one TCP connection: owned by a request while in use,
 *     by the pool while idle.
 * A request moves through explicit states:
 *
 *   STARTING --timer 0--> RESOLVING --> CONNECTING --> EXCHANGING --> DONE
 *   STARTING --pooled connection----------------------> EXCHANGING
 *   EXCHANGING --reused connection failed before any response byte,
 *       and the request may be repeated--> RESOLVING/CONNECTING (once)
 *   any --error or timeout--> DONE
 *
 * Once any attempt has written request bytes, the request counts as sent
 * for good: a later attempt that fails before writing does not make the
 * outcome "certainly not sent" again. A request is repeated only when its
 * method is safe or the caller said so (HTTP_CLIENT_REPEATABLE): a server
 * may have read and acted on the first copy before closing.
 *
 * DONE calls the callback exactly once; the connection is then pooled (a
 * complete keep-alive response, request fully written, nothing extra read)
 * or closed. Callbacks of a connection detached from its request (c->req
 * NULL) only clean up. */
#include "http/client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "http/blocking.h"
#include "http/response.h"
#include "tls/tlink.h"

#define READ_SIZE (64 * 1024)

enum creq_state { REQ_STARTING, REQ_RESOLVING, REQ_CONNECTING, REQ_EXCHANGING, REQ_DONE };

struct creq;

struct cconn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_loop_t *loop;
    struct creq *req;   /* the request using it; NULL when idle or closing */
    struct cconn *next; /* in the pool */
    char *key;          /* normalized address, the pool key */
    uint64_t idle_since;
    int reading;
    int reused;
    int closing;
    struct tlink *tls; /* https:// connections */
};

struct wreq {
    uv_write_t w;
    char data[];
};

struct creq {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    int gai_pending;
    struct addrinfo *ai; /* resolved addresses, tried in order */
    struct addrinfo *ai_cur;
    int timer_closed;
    enum creq_state state;
    http_client_cb cb;
    void *data;
    unsigned timeout_ms;
    char *key;                 /* normalized "host:port" */
    char host[HTTPC_HOST_MAX]; /* without brackets */
    char port[HTTPC_PORT_MAX];
    char *wire; /* the request bytes */
    size_t wire_len;
    int repeatable; /* may be sent a second time */
    int tls;        /* https:// */
    int sent;       /* some attempt has written request bytes */
    int attempts;
    struct cconn *conn;
    /* Response of the current attempt. */
    struct http_response resp;
    int got_bytes;
    int written;
};

static struct tls_creds *https_creds;

void http_client_set_tls(struct tls_creds *creds)
{
    https_creds = creds;
}

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cconn *pool; /* idle connections of every loop */

static void start_attempt(struct creq *r, int may_reuse);
static void connect_to(struct creq *r, const struct sockaddr *sa);

/* ------------------------------------------------------------ connections */

static void on_conn_closed(uv_handle_t *h)
{
    struct cconn *c = h->data;
    tlink_destroy(c->tls);
    fl_free(c->key);
    fl_free(c);
}

static void conn_close(struct cconn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    c->req = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void pool_unlink_locked(struct cconn *c)
{
    struct cconn **pp;
    for (pp = &pool; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            c->next = NULL;
            return;
        }
    }
}

/* An idle connection of this loop to key, or NULL. Stale ones are closed. */
static struct cconn *pool_take(uv_loop_t *loop, const char *key, int tls)
{
    struct cconn **pp, *found = NULL, *stale = NULL, *c;
    uint64_t now = uv_now(loop);
    pthread_mutex_lock(&pool_mu);
    pp = &pool;
    while (*pp != NULL) {
        int old;
        c = *pp;
        old = now - c->idle_since >= HTTP_CLIENT_POOL_IDLE_MS;
        if (c->loop != loop || strcmp(c->key, key) != 0 || (c->tls != NULL) != tls ||
            (found != NULL && !old)) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        if (old) {
            c->next = stale;
            stale = c;
        } else {
            c->next = NULL;
            found = c;
        }
    }
    pthread_mutex_unlock(&pool_mu);
    while (stale != NULL) {
        c = stale;
        stale = c->next;
        conn_close(c);
    }
    if (found != NULL) {
        uv_ref((uv_handle_t *)&found->tcp);
        found->reused = 1;
    }
    return found;
}

static void pool_put(struct cconn *c)
{
    struct cconn *p;
    int n = 0;
    c->req = NULL;
    c->idle_since = uv_now(c->loop);
    pthread_mutex_lock(&pool_mu);
    for (p = pool; p != NULL; p = p->next) {
        n += p->loop == c->loop && strcmp(p->key, c->key) == 0 &&
             (p->tls != NULL) == (c->tls != NULL);
    }
    if (n < HTTP_CLIENT_POOL_PER_ADDR) {
        c->next = pool;
        pool = c;
    }
    pthread_mutex_unlock(&pool_mu);
    if (n >= HTTP_CLIENT_POOL_PER_ADDR) {
        conn_close(c);
        return;
    }
    uv_unref((uv_handle_t *)&c->tcp); /* an idle connection does not keep the loop alive */
}

void http_client_close_idle(uv_loop_t *loop)
{
    struct cconn **pp, *mine = NULL, *c;
    pthread_mutex_lock(&pool_mu);
    pp = &pool;
    while (*pp != NULL) {
        c = *pp;
        if (c->loop == loop) {
            *pp = c->next;
            c->next = mine;
            mine = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&pool_mu);
    while (mine != NULL) {
        c = mine;
        mine = c->next;
        conn_close(c);
    }
}

unsigned http_client_pooled(uv_loop_t *loop)
{
    unsigned n = 0;
    pthread_mutex_lock(&pool_mu);
    for (struct cconn *c = pool; c != NULL; c = c->next) {
        n += loop == NULL || c->loop == loop;
    }
    pthread_mutex_unlock(&pool_mu);
    return n;
}

/* ------------------------------------------------------------ finishing */

static void req_maybe_free(struct creq *r)
{
    if (!r->timer_closed || r->gai_pending) {
        return;
    }
    if (r->ai != NULL) {
        uv_freeaddrinfo(r->ai);
    }
    http_response_close(&r->resp);
    fl_free(r->wire);
    fl_free(r->key);
    fl_free(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct creq *r = h->data;
    r->timer_closed = 1;
    req_maybe_free(r);
}

/* Detach the connection: back to the pool if reuse, else closed. */
static void detach(struct creq *r, int reuse)
{
    struct cconn *c = r->conn;
    r->conn = NULL;
    if (c == NULL) {
        return;
    }
    if (reuse) {
        pool_put(c);
    } else {
        conn_close(c);
    }
}

static void finish(struct creq *r, int err, int reuse, const char *why)
{
    int status = err == FL_OK ? r->resp.status : r->sent ? HTTP_CLIENT_MAYBE_SENT : 0;
    const char *ctype = err == FL_OK ? http_response_content_type(&r->resp) : NULL;
    const uint8_t *body = NULL;
    size_t len = 0;
    if (r->state == REQ_DONE) {
        return;
    }
    r->state = REQ_DONE;
    if (err != FL_OK) {
        FL_DEBUG("http client: %s: %s", r->key, why);
    } else {
        body = http_response_body(&r->resp, &len);
    }
    detach(r, err == FL_OK && reuse);
    uv_timer_stop(&r->timer);
    if (r->gai_pending) {
        uv_cancel((uv_req_t *)&r->gai);
    }
    r->cb(r->data, err, status, ctype, body, len);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static void finishf(struct creq *r, int err, const char *what, int uverr)
{
    char why[FL_ERRMSG_SIZE];
    snprintf(why, sizeof why, "%.200s: %s", what, uverr ? uv_strerror(uverr) : fl_strerror(err));
    finish(r, err, 0, why);
}

/* The exchange on the current connection failed. A reused connection that
 * failed before any response byte was most likely closed by the server
 * while idle: retry once on a fresh connection, if the request may be
 * repeated (the server may also have read it, acted, and closed). */
static void fail_exchange(struct creq *r, int err, const char *what, int uverr)
{
    if (r->repeatable && r->conn != NULL && r->conn->reused && !r->got_bytes && r->attempts == 1) {
        detach(r, 0);
        r->attempts++;
        start_attempt(r, 0);
        return;
    }
    finishf(r, err, what, uverr);
}

/* ------------------------------------------------------------ response */

/* Parse response bytes (len 0 = EOF); may finish the request. */
static void parse(struct creq *r, const char *data, size_t len)
{
    size_t n;
    int rv = http_response_feed(&r->resp, data, len, &n);
    if (rv == FL_OK && r->resp.complete) {
        /* Pool only a clean keep-alive connection: fully written request,
         * nothing read beyond the response, not at EOF. */
        int reuse = len > 0 && n == len && r->written && http_response_keep_alive(&r->resp);
        finish(r, FL_OK, reuse, NULL);
    } else if (rv != FL_OK) {
        /* A body over HTTP_CLIENT_MAX_BODY is a protocol error here. */
        finish(r, rv == FL_ENOMEM ? FL_ENOMEM : FL_EPROTO, 0, http_response_errmsg(&r->resp));
    }
}

/* ------------------------------------------------------------ exchange */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = fl_malloc(READ_SIZE);
    buf->len = buf->base != NULL ? READ_SIZE : 0;
}

static void send_request(struct creq *r);

static void on_raw_written(uv_write_t *w, int status)
{
    (void)status;
    fl_free(w);
}

static void write_raw(struct cconn *c, struct fl_buf *b)
{
    struct wreq *w;
    uv_buf_t ub;
    if (b->len == 0) {
        return;
    }
    w = fl_malloc(sizeof *w + b->len);
    if (w == NULL) {
        return;
    }
    memcpy(w->data, b->data, b->len);
    ub = uv_buf_init(w->data, (unsigned)b->len);
    if (uv_write(&w->w, (uv_stream_t *)&c->tcp, &ub, 1, on_raw_written) != 0) {
        fl_free(w);
    }
}

/* HTTPS: decrypt; the handshake's answers go back; once open the request
 * goes out, and what the server sent is the response. */
static void on_tls_bytes(struct cconn *c, struct creq *r, const char *data, size_t len)
{
    struct fl_buf wire, plain;
    int was_open = tlink_state(c->tls) == TLINK_OPEN;
    int rv;
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    rv = tlink_recv(c->tls, (const uint8_t *)data, len, &wire, &plain);
    write_raw(c, &wire);
    if (rv != FL_OK) {
        char why[FL_ERRMSG_SIZE];
        snprintf(why, sizeof why, "TLS to %s: %s", r->key, tlink_errmsg(c->tls));
        finish(r, FL_EPROTO, 0, why);
    } else if (!was_open && tlink_state(c->tls) == TLINK_OPEN) {
        send_request(r);
    } else if (plain.len > 0) {
        r->got_bytes = 1;
        parse(r, (const char *)plain.data, plain.len);
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct cconn *c = s->data;
    struct creq *r = c->req;
    if (c->closing || nread == 0) {
        fl_free(buf->base);
        return;
    }
    if (r == NULL) {
        /* Idle in the pool: the server closed it, or sent what nobody asked. */
        pthread_mutex_lock(&pool_mu);
        pool_unlink_locked(c);
        pthread_mutex_unlock(&pool_mu);
        conn_close(c);
    } else if (nread > 0 && c->tls != NULL) {
        on_tls_bytes(c, r, buf->base, (size_t)nread);
    } else if (nread > 0) {
        r->got_bytes = 1;
        parse(r, buf->base, (size_t)nread);
    } else if (nread == UV_EOF && c->tls != NULL && tlink_state(c->tls) != TLINK_OPEN) {
        fail_exchange(r, FL_EPROTO, "the server closed the connection during the TLS handshake", 0);
    } else if (nread == UV_EOF && r->got_bytes) {
        parse(r, NULL, 0); /* completes a close-delimited body */
    } else if (nread == UV_EOF) {
        fail_exchange(r, FL_ENET, "connection closed before the response", 0);
    } else {
        fail_exchange(r, nread == UV_ENOBUFS ? FL_ENOMEM : FL_ENET, "read", (int)nread);
    }
    fl_free(buf->base);
}

static void on_written(uv_write_t *w, int status)
{
    struct cconn *c = w->handle->data;
    struct creq *r = c->req;
    fl_free(w);
    if (r == NULL || c->closing) {
        return;
    }
    if (status < 0) {
        fail_exchange(r, FL_ENET, "write", status);
        return;
    }
    r->written = 1;
}

static void send_request(struct creq *r)
{
    struct cconn *c = r->conn;
    struct fl_buf enc;
    const char *src = r->wire;
    size_t n = r->wire_len;
    struct wreq *w;
    uv_buf_t b;
    int rv;
    r->state = REQ_EXCHANGING;
    http_response_restart(&r->resp);
    r->got_bytes = 0;
    r->written = 0;
    fl_buf_init(&enc);
    if (c->tls != NULL) {
        if (tlink_send(c->tls, (const uint8_t *)r->wire, r->wire_len, &enc) != FL_OK) {
            fl_buf_close(&enc);
            fail_exchange(r, FL_EPROTO, "TLS", 0);
            return;
        }
        src = (const char *)enc.data;
        n = enc.len;
    }
    w = fl_malloc(sizeof *w + n);
    if (w == NULL) {
        fl_buf_close(&enc);
        finish(r, FL_ENOMEM, 0, "out of memory");
        return;
    }
    memcpy(w->data, src, n);
    fl_buf_close(&enc);
    b = uv_buf_init(w->data, (unsigned)n);
    rv = uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rv != 0) {
        fl_free(w);
        fail_exchange(r, FL_ENET, "write", rv);
        return;
    }
    r->sent = 1; /* bytes may be on their way from now on */
    if (!c->reading) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rv != 0) {
            fail_exchange(r, FL_ENET, "read", rv);
            return;
        }
        c->reading = 1;
    }
}

static void on_connected(uv_connect_t *req, int status)
{
    struct cconn *c = req->data;
    struct creq *r = c->req;
    if (r == NULL || c->closing) {
        return; /* the request finished meanwhile */
    }
    if (status < 0 && r->ai_cur != NULL && r->ai_cur->ai_next != NULL) {
        detach(r, 0); /* try the next address of the name */
        r->ai_cur = r->ai_cur->ai_next;
        connect_to(r, r->ai_cur->ai_addr);
        return;
    }
    if (status < 0) {
        char what[HTTPC_HOST_MAX + 32];
        snprintf(what, sizeof what, "connect to %s", r->key);
        finishf(r, FL_ENET, what, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (r->tls) {
        struct tlink_config tc = {https_creds, TLINK_HTTPS, NULL, NULL};
        struct fl_buf wire;
        char err[FL_ERRMSG_SIZE];
        int rv;
        fl_buf_init(&wire);
        if (tlink_create(&tc, 1, &c->tls, err) != FL_OK || tlink_start(c->tls, &wire) != FL_OK) {
            fl_buf_close(&wire);
            finish(r, FL_EPROTO, 0, "TLS: cannot start");
            return;
        }
        write_raw(c, &wire);
        fl_buf_close(&wire);
        rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rv != 0) {
            finishf(r, FL_ENET, "read", rv);
            return;
        }
        c->reading = 1;
        return; /* the request goes once TLS is open (on_tls_bytes) */
    }
    send_request(r);
}

static void connect_to(struct creq *r, const struct sockaddr *sa)
{
    struct cconn *c = fl_calloc(1, sizeof *c);
    int rv;
    if (c == NULL || (c->key = fl_strdup(r->key)) == NULL) {
        fl_free(c);
        finish(r, FL_ENOMEM, 0, "out of memory");
        return;
    }
    uv_tcp_init(r->loop, &c->tcp);
    c->tcp.data = c;
    c->connect_req.data = c;
    c->loop = r->loop;
    c->req = r;
    r->conn = c;
    r->state = REQ_CONNECTING;
    rv = uv_tcp_connect(&c->connect_req, &c->tcp, sa, on_connected);
    if (rv != 0) {
        char what[HTTPC_HOST_MAX + 32];
        snprintf(what, sizeof what, "connect to %s", r->key);
        finishf(r, FL_ENET, what, rv);
    }
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct creq *r = gai->data;
    r->gai_pending = 0;
    if (r->state == REQ_DONE) {
        uv_freeaddrinfo(res);
        req_maybe_free(r);
        return;
    }
    if (status < 0 || res == NULL) {
        char what[HTTPC_HOST_MAX + 32];
        uv_freeaddrinfo(res);
        snprintf(what, sizeof what, "resolve %s", r->host);
        finishf(r, FL_ENET, what, status < 0 ? status : UV_EAI_NONAME);
        return;
    }
    r->ai = res;
    r->ai_cur = res;
    connect_to(r, res->ai_addr);
}

static void start_attempt(struct creq *r, int may_reuse)
{
    struct sockaddr_storage ss;
    struct addrinfo hints;
    int rv;
    if (may_reuse && (r->conn = pool_take(r->loop, r->key, r->tls)) != NULL) {
        r->conn->req = r;
        send_request(r);
        return;
    }
    if (uv_ip4_addr(r->host, atoi(r->port), (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(r->host, atoi(r->port), (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(r, (const struct sockaddr *)&ss);
        return;
    }
    if (r->ai != NULL) {
        uv_freeaddrinfo(r->ai);
        r->ai = r->ai_cur = NULL;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r->state = REQ_RESOLVING;
    r->gai.data = r;
    rv = uv_getaddrinfo(r->loop, &r->gai, on_resolved, r->host, r->port, &hints);
    if (rv != 0) {
        char what[HTTPC_HOST_MAX + 32];
        snprintf(what, sizeof what, "resolve %s", r->host);
        finishf(r, FL_ENET, what, rv);
        return;
    }
    r->gai_pending = 1;
}

static void on_timer(uv_timer_t *t)
{
    struct creq *r = t->data;
    if (r->state != REQ_STARTING) {
        finish(r, FL_ETIMEOUT, 0, "timed out");
        return;
    }
    if (r->timeout_ms > 0) {
        uv_timer_start(&r->timer, on_timer, r->timeout_ms, 0);
    }
    r->attempts = 1;
    start_attempt(r, 1);
}

/* ------------------------------------------------------------ request */

static int parse_addr(struct creq *r, const char *addr)
{
    const char *norm;
    size_t len;
    if (httpc_split_addr(addr, r->host, r->port, &norm, &len) != FL_OK) {
        return FL_EINVAL;
    }
    r->key = fl_strndup(norm, len);
    return r->key == NULL ? FL_ENOMEM : FL_OK;
}

static int build_wire(struct creq *r, const char *method, const char *path, const char *extra,
                      const void *body, size_t len)
{
    struct fl_buf b;
    size_t elen = extra != NULL ? strlen(extra) : 0;
    int rv;
    fl_buf_init(&b);
    rv = fl_buf_printf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n", method, path,
                       r->key, len);
    if (rv == FL_OK && elen > 0) {
        rv = fl_buf_append(&b, extra, elen);
        if (rv == FL_OK && (elen < 2 || strcmp(extra + elen - 2, "\r\n") != 0)) {
            rv = fl_buf_append(&b, "\r\n", 2);
        }
    }
    if (rv == FL_OK) {
        rv = fl_buf_append(&b, "\r\n", 2);
    }
    if (rv == FL_OK && len > 0) {
        rv = fl_buf_append(&b, body, len);
    }
    if (rv != FL_OK) {
        fl_buf_close(&b);
        return rv;
    }
    r->wire = (char *)fl_buf_steal(&b, &r->wire_len);
    return FL_OK;
}

int http_client_request(uv_loop_t *loop, const char *addr, const char *method,
                        const char *path_and_query, const char *extra_headers, const void *body,
                        size_t len, unsigned timeout_ms, http_client_cb cb, void *data)
{
    return http_client_request_flags(loop, addr, method, path_and_query, extra_headers, body, len,
                                     timeout_ms, 0, cb, data);
}

static int safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

int http_client_request_flags(uv_loop_t *loop, const char *addr, const char *method,
                              const char *path_and_query, const char *extra_headers,
                              const void *body, size_t len, unsigned timeout_ms, unsigned flags,
                              http_client_cb cb, void *data)
{
    struct creq *r;
    int rv;
    if (loop == NULL || addr == NULL || method == NULL || method[0] == '\0' ||
        strpbrk(method, " \r\n") != NULL || path_and_query == NULL || path_and_query[0] != '/' ||
        strpbrk(path_and_query, " \r\n") != NULL || cb == NULL || (body == NULL && len > 0)) {
        return FL_EINVAL;
    }
    r = fl_calloc(1, sizeof *r);
    if (r == NULL) {
        return FL_ENOMEM;
    }
    http_response_init(&r->resp, strcmp(method, "HEAD") == 0, HTTP_CLIENT_MAX_BODY);
    r->tls = strncmp(addr, "https://", 8) == 0;
    if (r->tls && https_creds == NULL) {
        fl_free(r);
        return FL_EINVAL; /* no CA to check an https:// server with */
    }
    rv = parse_addr(r, addr);
    if (rv == FL_OK) {
        rv = build_wire(r, method, path_and_query, extra_headers, body, len);
    }
    if (rv != FL_OK) {
        fl_free(r->key);
        fl_free(r);
        return rv;
    }
    r->loop = loop;
    r->cb = cb;
    r->data = data;
    r->timeout_ms = timeout_ms;
    r->repeatable = (flags & HTTP_CLIENT_REPEATABLE) != 0 || safe_method(method);
    r->state = REQ_STARTING;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    /* Start from the loop, so that every outcome reaches cb from the loop. */
    uv_timer_start(&r->timer, on_timer, 0, 0);
    return FL_OK;
}
