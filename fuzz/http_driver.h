/* The HTTP request -> route fuzz driver, shared by fuzz_http.c and the corpus
 * replay in tests/unit/test_fuzz_corpus.c.
 *
 * Input: the bytes a client sends on one connection (a request, several
 * pipelined, or garbage), followed by the client's FIN. They go over
 * loopback TCP to the real HTTP server (http/server.c and the files behind
 * it: http_parser, limits, the origin-form target check, percent-decoding)
 * on a private loop, whose handler is the API's own route lookup (node__route_find over
 * node_routes, as node__api_handle calls it). A request the lookup matches
 * is answered 200 {"route", "method", "args"}: that is where the real
 * server would call the route's handler, which needs a cluster. Everything
 * else is answered by the lookup (404, 405, 400 for an argument) or by the
 * server itself (400, 413, 431).
 *
 * Invariants (a violation aborts):
 *   - the server ends the connection by itself once the client's FIN is in,
 *     and frees it (no hang, no connection left open);
 *   - what comes back parses as HTTP/1.1 responses: one per request the
 *     handler got, in order, plus at most one rejection; none is a 5xx;
 *   - every final response is application/json and its body parses; every
 *     error (>= 400) is {"error":{"code":string,"message":string}} and
 *     nothing else;
 *   - a request reaches the handler only with an origin-form target (a path
 *     starting with '/', visible ASCII only, no '#'; or "*" for OPTIONS);
 *   - a matched route has the request's method and one argument per "{}"
 *     or "*" of its pattern: a "{}" one is non-empty without '/', a "*" one
 *     non-empty, each is a string jansson accepts (UTF-8), and the pattern
 *     with the arguments put back is the decoded path. */
#ifndef FL_FUZZ_HTTP_DRIVER_H
#define FL_FUZZ_HTTP_DRIVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>
#include <jansson.h>
#include <uv.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "node/node_int.h"

#define HF_MAX_ARGS    4    /* as MAX_ARGS in node/api.c */
#define HF_MAX_REQS    4096 /* requests remembered per input (8 KiB inputs hold ~500) */
#define HF_DEADLINE_MS 10000

static struct {
    uv_loop_t loop;
    struct http_server *server;
    int port;
    int started;
    unsigned handled;                   /* requests the handler got from this input */
    unsigned char is_head[HF_MAX_REQS]; /* ... and which were HEAD (answered without body) */
} hf;

static void hf_fail(const char *what, const char *detail)
{
    fprintf(stderr, "http driver: %s: %s\n", what, detail ? detail : "");
    abort();
}

static uint64_t hf_now_ms(void)
{
    return fl_mono_ns() / 1000000u;
}

/* The driver's own reading of an acceptable target, independent of the
 * server's check. */
static int hf_origin_form(const char *t, int method)
{
    if (strcmp(t, "*") == 0) {
        return method == HTTP_OPTIONS;
    }
    if (t[0] != '/') {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)t; *p != '\0'; p++) {
        if (*p < 0x21 || *p > 0x7E || *p == '#') {
            return 0;
        }
    }
    return 1;
}

static void hf_check_route(const struct route *r, const struct http_request *req, char **args)
{
    struct fl_buf b;
    const char *p = r->pattern;
    unsigned n = 0;
    if (r->method != req->method) {
        hf_fail("the route found has another method", r->pattern);
    }
    fl_buf_init(&b);
    while (*p != '\0') {
        int seg = p[0] == '{' && p[1] == '}', rest = p[0] == '*' && p[1] == '\0';
        if (seg || rest) {
            if (n == HF_MAX_ARGS) {
                hf_fail("a pattern has more arguments than the lookup keeps", r->pattern);
            }
            if (args[n][0] == '\0' || (seg && strchr(args[n], '/') != NULL)) {
                hf_fail("an argument is empty, or a {} argument holds '/'", r->pattern);
            }
            json_t *j = json_string(args[n]);
            if (j == NULL) {
                hf_fail("an argument is not UTF-8", args[n]);
            }
            json_decref(j);
            fl_buf_append(&b, args[n], strlen(args[n]));
            n++;
            p += seg ? 2 : 1;
        } else {
            fl_buf_append(&b, p, 1);
            p++;
        }
    }
    fl_buf_append(&b, "", 1);
    if (strcmp((const char *)b.data, req->path) != 0) {
        hf_fail("the pattern with its arguments put back is not the path", req->path);
    }
    fl_buf_close(&b);
}

static void hf_handler(void *data, struct http_request *req)
{
    size_t cap = strlen(req->path) + HF_MAX_ARGS + 4;
    char *args[HF_MAX_ARGS], *scratch = malloc(cap);
    const struct route *r;
    (void)data;
    if (!hf_origin_form(req->target, req->method)) {
        hf_fail("a target that is not origin-form reached the handler", req->target);
    }
    if (req->path[0] != '/' && strcmp(req->target, "*") != 0) {
        hf_fail("a decoded path does not start with '/'", req->path);
    }
    if (hf.handled < HF_MAX_REQS) {
        hf.is_head[hf.handled] = req->method == HTTP_HEAD;
    }
    hf.handled++;
    if (scratch == NULL) {
        hf_fail("out of memory", NULL);
    }
    r = node__route_find(req, scratch, cap, args, HF_MAX_ARGS);
    if (r != NULL) {
        json_t *a = json_array();
        hf_check_route(r, req, args);
        for (const char *p = r->pattern; *p != '\0'; p++) {
            if ((p[0] == '{' && p[1] == '}') || (p[0] == '*' && p[1] == '\0')) {
                json_array_append_new(a, json_string(args[json_array_size(a)]));
            }
        }
        http_respond_json(req, 200,
                          json_pack("{s:s, s:s, s:o}", "route", r->pattern, "method",
                                    http_method_str((enum http_method)r->method), "args", a));
    }
    free(scratch);
}

static void hf_start(void)
{
    static const struct http_limits lim = {
        .max_body = 4096, .max_header = 4096, .max_conns = 16, .idle_timeout_ms = 60000};
    char err[FL_ERRMSG_SIZE] = "";
    if (hf.started) {
        return;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&hf.loop);
    if (http_server_start(&hf.loop, "127.0.0.1:0", &lim, hf_handler, NULL, &hf.server, err) !=
        FL_OK) {
        hf_fail("cannot start the server", err);
    }
    hf.port = http_server_port(hf.server);
    hf.started = 1;
}

/* Stop the server and close its loop (the corpus replay calls it last). */
static void http_fuzz_stop(void)
{
    if (!hf.started) {
        return;
    }
    http_server_stop(hf.server, NULL, NULL);
    uv_run(&hf.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&hf.loop) != 0) {
        hf_fail("the server left a handle open", NULL);
    }
    hf.started = 0;
}

/* Wait for fd (events) or the loop, at most 50 ms, then run the loop once. */
static void hf_wait(int fd, short events)
{
    struct pollfd p[2] = {{.fd = fd, .events = events},
                          {.fd = uv_backend_fd(&hf.loop), .events = POLLIN}};
    int t = uv_backend_timeout(&hf.loop);
    (void)poll(p, 2, t < 0 || t > 50 ? 50 : t);
    uv_run(&hf.loop, UV_RUN_NOWAIT);
}

/* Send data on a new connection, then FIN; collect what comes back until
 * the server closes. */
static void hf_exchange(const uint8_t *data, size_t size, struct fl_buf *in)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hf.port)};
    uint64_t deadline = hf_now_ms() + HF_DEADLINE_MS;
    struct http_stats st;
    size_t sent = 0;
    int shut = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
    char buf[16384];
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        hf_fail("cannot connect to the server", strerror(errno));
    }
    for (;;) {
        ssize_t n;
        if (sent < size) {
            n = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                sent += (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                sent = size; /* the server closed early (a rejection): stop sending */
            }
        }
        if (sent == size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            fl_buf_append(in, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            break; /* EOF, or a reset */
        }
        if (hf_now_ms() > deadline) {
            hf_fail("the server did not end the connection after the client's FIN", NULL);
        }
        hf_wait(fd, (short)(POLLIN | (sent < size ? POLLOUT : 0)));
    }
    close(fd);
    /* The server frees the connection in its handles' close callbacks. */
    for (;;) {
        http_server_stats(hf.server, &st);
        if (st.open_conns == 0) {
            break;
        }
        if (hf_now_ms() > deadline) {
            hf_fail("the server kept a finished connection open", NULL);
        }
        hf_wait(-1, 0);
    }
}

/* Reading the responses back. */
struct hf_reader {
    http_parser p;
    unsigned finals; /* final (non-1xx) responses so far */
    int *statuses;   /* their statuses, up to max */
    size_t max;
    int is_json;     /* the current one's Content-Type is application/json */
    int field_ctype; /* the last header field was Content-Type */
    struct fl_buf body;
};

static int hf_on_field(http_parser *p, const char *at, size_t len)
{
    struct hf_reader *r = p->data;
    r->field_ctype = len == 12 && strncasecmp(at, "Content-Type", 12) == 0;
    return 0;
}

static int hf_on_value(http_parser *p, const char *at, size_t len)
{
    struct hf_reader *r = p->data;
    if (r->field_ctype) {
        r->is_json = len == 16 && memcmp(at, "application/json", 16) == 0;
    }
    return 0;
}

static int hf_on_headers(http_parser *p)
{
    struct hf_reader *r = p->data;
    /* The answer to a HEAD has a Content-Length but no body. */
    return p->status_code >= 200 && r->finals < hf.handled && r->finals < HF_MAX_REQS &&
           hf.is_head[r->finals];
}

static int hf_on_body(http_parser *p, const char *at, size_t len)
{
    struct hf_reader *r = p->data;
    fl_buf_append(&r->body, at, len);
    return 0;
}

static int hf_on_complete(http_parser *p)
{
    struct hf_reader *r = p->data;
    unsigned status = p->status_code;
    int head = r->finals < hf.handled && r->finals < HF_MAX_REQS && hf.is_head[r->finals];
    char st[16];
    snprintf(st, sizeof st, "%u", status);
    if (status < 200) {
        if (status != 100) {
            hf_fail("an interim response other than 100 Continue", st);
        }
    } else {
        json_t *j = NULL, *e;
        if (status >= 500) {
            hf_fail("a 5xx answer", st);
        }
        if (!r->is_json) {
            hf_fail("an answer that is not application/json", st);
        }
        if (!head) {
            j = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
            if (j == NULL) {
                hf_fail("an answer whose body is not JSON", st);
            }
            e = json_object_get(j, "error");
            if (status >= 400 && (json_object_size(j) != 1 || json_object_size(e) != 2 ||
                                  !json_is_string(json_object_get(e, "code")) ||
                                  !json_is_string(json_object_get(e, "message")))) {
                hf_fail("an error answer that is not {\"error\":{\"code\",\"message\"}}", st);
            }
            json_decref(j);
        }
        if (r->finals < r->max) {
            r->statuses[r->finals] = (int)status;
        }
        r->finals++;
    }
    fl_buf_reset(&r->body);
    r->is_json = 0;
    return 0;
}

static const http_parser_settings hf_settings = {
    .on_header_field = hf_on_field,
    .on_header_value = hf_on_value,
    .on_headers_complete = hf_on_headers,
    .on_body = hf_on_body,
    .on_message_complete = hf_on_complete,
};

/* Run one input; returns how many final answers came back, their statuses
 * in statuses[0..max) (statuses may be NULL with max 0). */
static size_t http_fuzz_one(const uint8_t *data, size_t size, int *statuses, size_t max)
{
    struct hf_reader r;
    struct fl_buf in;
    size_t used;
    hf_start();
    hf.handled = 0;
    fl_buf_init(&in);
    hf_exchange(data, size, &in);
    memset(&r, 0, sizeof r);
    http_parser_init(&r.p, HTTP_RESPONSE);
    r.p.data = &r;
    r.statuses = statuses;
    r.max = max;
    fl_buf_init(&r.body);
    used = http_parser_execute(&r.p, &hf_settings, (const char *)in.data, in.len);
    if (HTTP_PARSER_ERRNO(&r.p) != HPE_OK || used != in.len) {
        hf_fail("the answers do not parse as HTTP", http_errno_name(HTTP_PARSER_ERRNO(&r.p)));
    }
    http_parser_execute(&r.p, &hf_settings, NULL, 0); /* the end of the stream */
    if (HTTP_PARSER_ERRNO(&r.p) != HPE_OK) {
        hf_fail("the connection ended inside an answer", NULL);
    }
    if (r.finals != hf.handled && r.finals != hf.handled + 1) {
        hf_fail("not one answer per request handled (plus at most one rejection)", NULL);
    }
    fl_buf_close(&r.body);
    fl_buf_close(&in);
    return r.finals;
}

#endif
