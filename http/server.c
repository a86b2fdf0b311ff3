/* HTTP/1.1 server (http/server.h): the listener, accepting connections
 * within the limits (max_conns, max_conns_per_ip), and stopping. What a
 * connection goes through is http/conn.c, parsing http/parse.c,
 * responses http/respond.c; the objects are in http/server_int.h. */
#include "http/server.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "http/server_int.h"

#define LISTEN_BACKLOG 511

void http__maybe_finish_stop(struct http_server *s)
{
    void (*cb)(void *data);
    void *data;
    if (!s->stopping || !s->listener_closed || s->conns != NULL || s->refusing > 0 ||
        s->spare_busy) {
        return;
    }
    cb = s->stop_cb;
    data = s->stop_data;
    fl_free(s);
    if (cb != NULL) {
        cb(data);
    }
}

/* ------------------------------------------------------------ accepting */

static void on_refused_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    if (h == (uv_handle_t *)&s->spare) {
        s->spare_busy = 0;
    } else {
        fl_free(h);
    }
    s->refusing--;
    http__maybe_finish_stop(s);
}

/* Accept and close at once, with a best-effort 503. */
static void refuse(struct http_server *s)
{
    static const char body[] =
        "{\"error\":{\"code\":\"busy\",\"message\":\"too many connections\"}}\n";
    char resp[256];
    uv_buf_t b;
    uv_tcp_t *t = fl_malloc(sizeof *t);
    s->stats.accepted++;
    s->stats.rejected++;
    if (t == NULL && !s->spare_busy) {
        t = &s->spare;
        s->spare_busy = 1;
    }
    if (t == NULL) {
        /* libuv pauses the listener until the next accept; nothing else to do. */
        FL_ERROR("http: out of memory refusing a connection");
        return;
    }
    uv_tcp_init(s->loop, t);
    t->data = s;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t) == 0) {
        b = uv_buf_init(resp, (unsigned)snprintf(resp, sizeof resp,
                                                 "HTTP/1.1 503 Service Unavailable\r\n"
                                                 "Content-Type: application/json\r\n"
                                                 "Content-Length: %zu\r\n"
                                                 "Connection: close\r\n\r\n%s",
                                                 sizeof body - 1, body));
        (void)uv_try_write((uv_stream_t *)t, &b, 1);
    }
    s->refusing++;
    uv_close((uv_handle_t *)t, on_refused_closed);
}

static void peer_name(struct http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
}

/* One address may hold at most max_conns_per_ip connections, so a single
 * client cannot take every slot: the connection over the limit is answered
 * 429 and closed. Counted by walking the open connections (at most
 * max_conns). */
static int over_ip_limit(struct http_server *s, struct http_conn *c)
{
    static const char body[] = "{\"error\":{\"code\":\"too_many_connections\","
                               "\"message\":\"too many connections from this address\"}}\n";
    size_t iplen = strrchr(c->remote, ':') ? (size_t)(strrchr(c->remote, ':') - c->remote) : 0;
    unsigned same = 0;
    char resp[320];
    uv_buf_t b;
    for (struct http_conn *o = s->conns; o != NULL; o = o->next) {
        if (o != c && strncmp(o->remote, c->remote, iplen + 1) == 0) {
            same++;
        }
    }
    if (same < s->lim.max_conns_per_ip) {
        return 0;
    }
    s->stats.rejected++;
    s->stats.rejected_per_ip++;
    b = uv_buf_init(resp, (unsigned)snprintf(resp, sizeof resp,
                                             "HTTP/1.1 429 Too Many Requests\r\n"
                                             "Content-Type: application/json\r\n"
                                             "Content-Length: %zu\r\n"
                                             "Connection: close\r\n\r\n%s",
                                             sizeof body - 1, body));
    (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    http__conn_close(c);
    return 1;
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct http_server *s = ls->data;
    struct http_conn *c;
    if (status < 0) {
        FL_WARN("http: accept: %s", uv_strerror(status));
        return;
    }
    if (s->stopping) {
        return;
    }
    if (s->stats.open_conns >= s->lim.max_conns || (c = fl_calloc(1, sizeof *c)) == NULL) {
        refuse(s);
        return;
    }
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->server = s;
    c->open_handles = 2;
    c->state = CONN_READING;
    fl_buf_init(&c->unparsed);
    fl_buf_init(&c->wbuf);
    fl_buf_init(&c->ebuf);
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->stats.open_conns++;
    s->stats.accepted++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        http__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    if (over_ip_limit(s, c)) {
        return;
    }
    if (s->lim.tls != NULL) {
        struct tlink_config tc = {s->lim.tls, TLINK_HTTPS, NULL, NULL};
        if (tlink_create(&tc, 0, &c->tls, NULL) != FL_OK) {
            http__conn_close(c);
            return;
        }
    }
    http__resume(c);
}

/* ------------------------------------------------------------ public */

static int parse_addr(const char *addr, struct sockaddr_in *sa, char *errmsg)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    char *end;
    long port;
    size_t hlen;
    if (colon == NULL || (hlen = (size_t)(colon - addr)) >= sizeof host) {
        return fl_errf(errmsg, FL_EINVAL, "invalid listen address \"%s\" (want ip:port)", addr);
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535 ||
        uv_ip4_addr(hlen == 0 ? "0.0.0.0" : host, (int)port, sa) != 0) {
        return fl_errf(errmsg, FL_EINVAL, "invalid listen address \"%s\" (want ip:port)", addr);
    }
    return FL_OK;
}

static void free_handle_owner(uv_handle_t *h)
{
    fl_free(h->data);
}

int http_server_start(uv_loop_t *loop, const char *addr, const struct http_limits *lim,
                      http_handler_cb cb, void *data, struct http_server **out, char *errmsg)
{
    struct sockaddr_in sa;
    struct http_server *s;
    int rv;
    if ((rv = parse_addr(addr, &sa, errmsg)) != FL_OK) {
        return rv;
    }
    s = fl_calloc(1, sizeof *s);
    if (s == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    s->loop = loop;
    s->cb = cb;
    s->data = data;
    if (lim != NULL) {
        s->lim = *lim;
    }
    s->lim.max_body = s->lim.max_body ? s->lim.max_body : HTTP_DEFAULT_MAX_BODY;
    s->lim.max_conns_per_ip =
        s->lim.max_conns_per_ip ? s->lim.max_conns_per_ip : HTTP_DEFAULT_MAX_CONNS_PER_IP;
    s->lim.max_header = s->lim.max_header ? s->lim.max_header : HTTP_DEFAULT_MAX_HEADER;
    s->lim.max_conns = s->lim.max_conns ? s->lim.max_conns : HTTP_DEFAULT_MAX_CONNS;
    s->lim.idle_timeout_ms =
        s->lim.idle_timeout_ms ? s->lim.idle_timeout_ms : HTTP_DEFAULT_IDLE_TIMEOUT;
    s->lim.header_timeout_ms =
        s->lim.header_timeout_ms ? s->lim.header_timeout_ms : HTTP_DEFAULT_HEADER_TIMEOUT;
    s->lim.body_timeout_ms =
        s->lim.body_timeout_ms ? s->lim.body_timeout_ms : HTTP_DEFAULT_BODY_TIMEOUT;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    /* uv_tcp_bind sets SO_REUSEADDR itself. */
    rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    }
    if (rv != 0) {
        fl_errf(errmsg, FL_ENET, "listen on %s: %s", addr, uv_strerror(rv));
        uv_close((uv_handle_t *)&s->listener, free_handle_owner);
        return FL_ENET;
    }
    *out = s;
    return FL_OK;
}

int http_server_port(const struct http_server *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0 ||
        ss.ss_family != AF_INET) {
        return -1;
    }
    return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
}

void http_server_stats(const struct http_server *s, struct http_stats *out)
{
    *out = s->stats;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->listener_closed = 1;
    http__maybe_finish_stop(s);
}

void http_server_stop(struct http_server *s, void (*cb)(void *data), void *data)
{
    struct http_conn *c;
    s->stopping = 1;
    s->stop_cb = cb;
    s->stop_data = data;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (c = s->conns; c != NULL; c = c->next) {
        http__conn_close(c); /* unlinks only in its close callback */
    }
}
