/* HTTP plumbing: the server (http/server) driven through raw sockets,
 * the blocking client (http/blocking) and the async client (http/client).
 *
 * Most tests run the server's loop on a thread of its own ("fixture") and
 * talk to it with blocking sockets from the test thread; the async client
 * tests run client and server on one loop in the test thread. Raw scripted
 * servers (a thread with canned responses) exercise the clients against
 * close-delimited, chunked and stale keep-alive responses. */
#include <errno.h>
#include <execinfo.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "http/blocking.h"
#include "http/client.h"
#include "http/server.h"

/* ------------------------------------------------------------ handler */

struct ctx {
    uv_loop_t *loop;
    struct http_server *server;
    struct http_request *held; /* a /hold request, answered only at stop */
    int drop_held;             /* ... or dropped */
};

struct deferred {
    uv_timer_t timer;
    struct http_request *req;
    int drop; /* http_drop instead of answering */
};

/* Echo the request as JSON. */
static void respond_echo(struct http_request *req)
{
    char x[64], n[16];
    int xr = http_query_param(req, "x", x, sizeof x);
    int nr = http_query_param(req, "n", n, sizeof n);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s%,s:s?,s:s?,s:s?,s:s?,s:i,s:s}", "method",
                          http_method_str((enum http_method)req->method), "target", req->target,
                          "path", req->path, "query", req->query, "body", (const char *)req->body,
                          req->body_len, "x", xr == 1 ? x : NULL, "n", nr == 1 ? n : NULL, "x_test",
                          http_request_header(req, "x-TEST"), "x_empty",
                          http_request_header(req, "X-Empty"), "x_ret", xr, "remote", req->remote);
    http_respond_json(req, 200, j);
}

static void on_deferred_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_deferred(uv_timer_t *t)
{
    struct deferred *d = t->data;
    if (d->drop) {
        http_drop(d->req);
    } else {
        respond_echo(d->req);
    }
    uv_close((uv_handle_t *)t, on_deferred_closed);
}

static void handler(void *data, struct http_request *req)
{
    struct ctx *ctx = data;
    char ms[16];
    if (strcmp(req->path, "/defer") == 0 || strcmp(req->path, "/drop-later") == 0) {
        struct deferred *d = malloc(sizeof *d);
        long v = http_query_param(req, "ms", ms, sizeof ms) == 1 ? atol(ms) : 10;
        d->req = req;
        d->drop = req->path[1] == 'd' && req->path[2] == 'r';
        uv_timer_init(ctx->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, on_deferred, v < 0 || v > 2000 ? 10 : (uint64_t)v, 0);
    } else if (strcmp(req->path, "/hold") == 0 && ctx->held == NULL) {
        ctx->held = req;
    } else if (strcmp(req->path, "/stats") == 0) {
        struct http_stats st;
        http_server_stats(ctx->server, &st);
        http_respond_json(req, 200,
                          json_pack("{s:I,s:I,s:I,s:i}", "requests", (json_int_t)st.requests,
                                    "rejected", (json_int_t)st.rejected, "accepted",
                                    (json_int_t)st.accepted, "open", (int)st.open_conns));
    } else if (strcmp(req->path, "/big") == 0) {
        size_t len = 3 * 1024 * 1024;
        char *b = malloc(len);
        memset(b, 'b', len);
        http_respond(req, 200, "application/octet-stream", b, len);
        free(b);
    } else if (strcmp(req->path, "/error") == 0) {
        http_respond_error(req, 404, "not_found", "no task %d", 42);
    } else if (strncmp(req->path, "/quote/", 7) == 0) {
        /* An error quoting the decoded path, with ?status= (default 404)
         * and ?pad=N bytes of 'p' before it (to cut the message). */
        char st[8], pad[8], fill[1100];
        int status = http_query_param(req, "status", st, sizeof st) == 1 ? atoi(st) : 404;
        int np = http_query_param(req, "pad", pad, sizeof pad) == 1 ? atoi(pad) : 0;
        np = np < 0 ? 0 : np > (int)sizeof fill - 1 ? (int)sizeof fill - 1 : np;
        memset(fill, 'p', (size_t)np);
        fill[np] = '\0';
        http_respond_error(req, status, "not_found", "%s%s", fill, req->path + 6);
    } else if (strcmp(req->path, "/drop") == 0) {
        http_drop(req);
    } else if (strcmp(req->path, "/empty") == 0) {
        http_respond(req, 204, NULL, NULL, 0);
    } else {
        respond_echo(req);
    }
}

/* ------------------------------------------------------------ fixture */

struct fx {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct ctx ctx;
    int port;
    struct http_stats stats; /* taken when stopping */
    int stopped_cb;
};

static void on_server_stopped(void *data)
{
    struct fx *f = data;
    f->stopped_cb++;
}

static void on_stop_async(uv_async_t *a)
{
    struct fx *f = a->data;
    http_server_stats(f->ctx.server, &f->stats);
    http_server_stop(f->ctx.server, on_server_stopped, f);
    if (f->ctx.held != NULL) {
        /* Its connection is closed by now: this only frees it. */
        if (f->ctx.drop_held) {
            http_drop(f->ctx.held);
        } else {
            http_respond(f->ctx.held, 200, "text/plain", "late", 4);
        }
        f->ctx.held = NULL;
    }
    uv_close((uv_handle_t *)a, NULL);
}

static void *fx_thread(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static const struct http_limits test_limits = {
    .max_body = 64 * 1024, .max_header = 4096, .max_conns = 64, .idle_timeout_ms = 5000};

static int fx_start(struct fx *f, const struct http_limits *lim)
{
    char err[FL_ERRMSG_SIZE];
    memset(f, 0, sizeof *f);
    uv_loop_init(&f->loop);
    f->ctx.loop = &f->loop;
    if (http_server_start(&f->loop, "127.0.0.1:0", lim, handler, &f->ctx, &f->ctx.server, err) !=
        FL_OK) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    f->port = http_server_port(f->ctx.server);
    uv_async_init(&f->loop, &f->stop, on_stop_async);
    f->stop.data = f;
    pthread_create(&f->thread, NULL, fx_thread, f);
    return 0;
}

/* Stop the server, join its thread; 0 if every handle closed cleanly. */
static int fx_stop(struct fx *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    if (f->stopped_cb != 1) {
        return -1;
    }
    return uv_loop_close(&f->loop) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ raw sockets */

static int raw_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int raw_send(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return -1;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

static int raw_sends(int fd, const char *s)
{
    return raw_send(fd, s, strlen(s));
}

struct rresp {
    int status;
    int keep_alive;
    char body[8192];
    size_t body_len;
};

/* Reads responses one at a time from a socket, keeping what follows. */
struct reader {
    int fd;
    int head;
    http_parser p;
    struct rresp *cur;
    int done;
    char buf[65536];
    size_t len;
};

static int rd_body(http_parser *p, const char *at, size_t len)
{
    struct reader *r = p->data;
    size_t room = sizeof r->cur->body - 1 - r->cur->body_len;
    size_t n = len < room ? len : room;
    memcpy(r->cur->body + r->cur->body_len, at, n);
    r->cur->body_len += n;
    r->cur->body[r->cur->body_len] = '\0';
    return 0;
}

static int rd_headers(http_parser *p)
{
    struct reader *r = p->data;
    return r->head ? 1 : 0;
}

static int rd_complete(http_parser *p)
{
    struct reader *r = p->data;
    r->done = 1;
    r->cur->status = (int)p->status_code;
    r->cur->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings rd_settings = {
    .on_headers_complete = rd_headers, .on_body = rd_body, .on_message_complete = rd_complete};

static void reader_init(struct reader *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    http_parser_init(&r->p, HTTP_RESPONSE);
    r->p.data = r;
}

/* 0 with *out filled, -1 on EOF, error, timeout or a parse error. */
static int read_resp(struct reader *r, struct rresp *out)
{
    memset(out, 0, sizeof *out);
    r->cur = out;
    r->done = 0;
    http_parser_pause(&r->p, 0);
    for (;;) {
        ssize_t n;
        if (r->len > 0) {
            size_t used = http_parser_execute(&r->p, &rd_settings, r->buf, r->len);
            memmove(r->buf, r->buf + used, r->len - used);
            r->len -= used;
            if (r->done) {
                return 0;
            }
            if (HTTP_PARSER_ERRNO(&r->p) != HPE_OK) {
                return -1;
            }
        }
        n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (n <= 0) {
            if (n == 0) {
                http_parser_execute(&r->p, &rd_settings, NULL, 0);
                if (r->done) {
                    return 0;
                }
            }
            return -1;
        }
        r->len += (size_t)n;
    }
}

/* 1 if the peer closes (EOF or reset) before anything else arrives. */
static int expect_eof(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* One raw exchange: send, read one response. */
static int raw_exchange(int port, const char *req, struct rresp *out)
{
    struct reader *r = malloc(sizeof *r);
    int fd = raw_connect(port), rv = -1;
    if (fd >= 0 && raw_sends(fd, req) == 0) {
        reader_init(r, fd);
        rv = read_resp(r, out);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(r);
    return rv;
}

static json_t *parse_json(const char *s)
{
    return json_loads(s, 0, NULL);
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static uint64_t now_ms(void)
{
    return fl_mono_ns() / 1000000u;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ server tests */

TEST(get_put_with_bodies)
{
    struct fx f;
    struct httpc_response res;
    char err[FL_ERRMSG_SIZE];
    json_t *j;
    REQUIRE(fx_start(&f, &test_limits) == 0);

    CHECK_EQ_INT(httpc_request("127.0.0.1:0", "GET", "/", NULL, NULL, 0, 1000, &res, err),
                 FL_EINVAL);
    CHECK_EQ_INT(httpc_request(NULL, "GET", "/", NULL, NULL, 0, 1000, &res, err), FL_EINVAL);

    {
        char addr[64];
        snprintf(addr, sizeof addr, "http://127.0.0.1:%d/", f.port);
        CHECK_OK(httpc_request(addr, "GET", "/echo/a%20b?x=h%C3%A9llo+w&y", "X-Test: one\r\n", NULL,
                               0, 5000, &res, err));
    }
    CHECK_EQ_INT(res.status, 200);
    CHECK_EQ_STR(res.content_type, "application/json");
    CHECK(res.body_len > 0 && res.body[res.body_len - 1] == '\n');
    j = parse_json(res.body);
    REQUIRE(j != NULL);
    CHECK_EQ_STR(jstr(j, "method"), "GET");
    CHECK_EQ_STR(jstr(j, "path"), "/echo/a b");
    CHECK_EQ_STR(jstr(j, "target"), "/echo/a%20b?x=h%C3%A9llo+w&y");
    CHECK_EQ_STR(jstr(j, "query"), "x=h%C3%A9llo+w&y");
    CHECK_EQ_STR(jstr(j, "x"), "h\xc3\xa9llo w");
    CHECK_EQ_STR(jstr(j, "x_test"), "one");
    CHECK_EQ_STR(jstr(j, "body"), "");
    CHECK(strncmp(jstr(j, "remote"), "127.0.0.1:", 10) == 0);
    json_decref(j);
    httpc_response_free(&res);

    {
        char addr[64], body[5000];
        memset(body, 'z', sizeof body - 1);
        body[sizeof body - 1] = '\0';
        snprintf(addr, sizeof addr, "127.0.0.1:%d", f.port);
        CHECK_OK(httpc_request(addr, "PUT", "/echo", "X-Test: two", body, strlen(body), 5000, &res,
                               err));
        j = parse_json(res.body);
        REQUIRE(j != NULL);
        CHECK_EQ_STR(jstr(j, "method"), "PUT");
        CHECK_EQ_STR(jstr(j, "body"), body);
        CHECK_EQ_STR(jstr(j, "x_test"), "two");
        json_decref(j);
        httpc_response_free(&res);

        CHECK_OK(httpc_request(addr, "GET", "/error", NULL, NULL, 0, 5000, &res, err));
        CHECK_EQ_INT(res.status, 404);
        CHECK_EQ_STR(res.body, "{\"error\":{\"code\":\"not_found\",\"message\":\"no task 42\"}}\n");
        httpc_response_free(&res);

        CHECK_OK(httpc_request(addr, "GET", "/empty", NULL, NULL, 0, 5000, &res, err));
        CHECK_EQ_INT(res.status, 204);
        CHECK_EQ_INT(res.body_len, 0);
        CHECK(res.content_type == NULL);
        httpc_response_free(&res);

        CHECK_OK(httpc_request(addr, "HEAD", "/echo", NULL, NULL, 0, 5000, &res, err));
        CHECK_EQ_INT(res.status, 200);
        CHECK_EQ_INT(res.body_len, 0);
        httpc_response_free(&res);

        /* A body above the client-side buffers, in many reads. */
        CHECK_OK(httpc_request(addr, "GET", "/big", NULL, NULL, 0, 10000, &res, err));
        CHECK_EQ_INT(res.status, 200);
        CHECK_EQ_INT(res.body_len, 3 * 1024 * 1024);
        CHECK(res.body[0] == 'b' && res.body[res.body_len - 1] == 'b');
        httpc_response_free(&res);
    }
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.requests, 6);
    CHECK_EQ_INT(f.stats.rejected, 0);
}

TEST(query_params)
{
    struct http_request r;
    char out[8];
    memset(&r, 0, sizeof r);
    r.query = "a=1&b=&c&d=%41%2b+&e=%zz&long=123456789&a=2&%66=k";
    CHECK_EQ_INT(http_query_param(&r, "a", out, sizeof out), 1);
    CHECK_EQ_STR(out, "1");
    CHECK_EQ_INT(http_query_param(&r, "b", out, sizeof out), 1);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(&r, "c", out, sizeof out), 1);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(&r, "d", out, sizeof out), 1);
    CHECK_EQ_STR(out, "A+ ");
    CHECK_EQ_INT(http_query_param(&r, "e", out, sizeof out), -1);
    CHECK_EQ_INT(http_query_param(&r, "long", out, sizeof out), -1);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(http_query_param(&r, "f", out, sizeof out), 1);
    CHECK_EQ_STR(out, "k");
    CHECK_EQ_INT(http_query_param(&r, "zz", out, sizeof out), 0);
    r.query = "";
    CHECK_EQ_INT(http_query_param(&r, "a", out, sizeof out), 0);
}

TEST(keep_alive_and_close)
{
    struct fx f;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    int fd;
    REQUIRE(fx_start(&f, &test_limits) == 0);

    /* Two requests on one connection. */
    fd = raw_connect(f.port);
    REQUIRE(fd >= 0);
    reader_init(r, fd);
    CHECK_OK(raw_sends(fd, "GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(res.keep_alive);
    CHECK_OK(
        raw_sends(fd, "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\nX-Empty:\r\nX-Test:  v  \r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK(strstr(res.body, "\"n\":\"2\"") != NULL);
    CHECK(strstr(res.body, "\"x_test\":\"v\"") != NULL);
    CHECK(strstr(res.body, "\"x_empty\":\"\"") != NULL);
    /* "Connection: close": answered, then closed. */
    CHECK_OK(raw_sends(fd, "GET /echo?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(!res.keep_alive);
    CHECK(expect_eof(fd));
    close(fd);

    /* HTTP/1.0 closes by default, keeps alive on request. */
    fd = raw_connect(f.port);
    reader_init(r, fd);
    CHECK_OK(raw_sends(fd, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK(res.keep_alive);
    CHECK_OK(raw_sends(fd, "GET /echo HTTP/1.0\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(expect_eof(fd));
    close(fd);

    /* A request sent a byte at a time. */
    {
        const char *req = "PUT /echo?x=1 HTTP/1.1\r\nHost: t\r\nX-Test: slow\r\n"
                          "Content-Length: 3\r\n\r\nabc";
        size_t i;
        fd = raw_connect(f.port);
        reader_init(r, fd);
        for (i = 0; req[i] != '\0'; i++) {
            CHECK_OK(raw_send(fd, req + i, 1));
        }
        CHECK_OK(read_resp(r, &res));
        CHECK(strstr(res.body, "\"x_test\":\"slow\"") != NULL);
        CHECK(strstr(res.body, "\"body\":\"abc\"") != NULL);
        close(fd);
    }
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.accepted, 3);
    free(r);
}

TEST(pipelined_in_order)
{
    struct fx f;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    int fd, i;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    fd = raw_connect(f.port);
    reader_init(r, fd);
    /* The first is answered late; the others must still come after it. */
    CHECK_OK(raw_sends(fd, "GET /defer?ms=100&n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                           "PUT /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
                           "GET /defer?ms=1&n=3 HTTP/1.1\r\nHost: t\r\n\r\n"
                           "GET /echo?n=4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    for (i = 1; i <= 4; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"n\":\"%d\"", i);
        CHECK_OK(read_resp(r, &res));
        CHECK_EQ_INT(res.status, 200);
        CHECK(strstr(res.body, want) != NULL);
    }
    CHECK(expect_eof(fd));
    close(fd);

    /* Many small ones in one send. */
    {
        char *many = malloc(300 * 64);
        size_t len = 0;
        int ok = 1;
        for (i = 0; i < 300; i++) {
            len += (size_t)sprintf(many + len, "GET /echo?n=%d HTTP/1.1\r\n\r\n", i);
        }
        fd = raw_connect(f.port);
        reader_init(r, fd);
        CHECK_OK(raw_send(fd, many, len));
        for (i = 0; i < 300 && ok; i++) {
            char want[32];
            snprintf(want, sizeof want, "\"n\":\"%d\"", i);
            ok = read_resp(r, &res) == 0 && strstr(res.body, want) != NULL;
        }
        CHECK(ok);
        close(fd);
        free(many);
    }
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.requests, 304);
    free(r);
}

TEST(deferred_response)
{
    struct fx f;
    struct httpc_response res;
    char addr[64], err[FL_ERRMSG_SIZE];
    uint64_t t0;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f.port);
    t0 = now_ms();
    CHECK_OK(httpc_request(addr, "POST", "/defer?ms=150", NULL, "x", 1, 5000, &res, err));
    CHECK(now_ms() - t0 >= 150);
    CHECK_EQ_INT(res.status, 200);
    CHECK(strstr(res.body, "\"body\":\"x\"") != NULL);
    httpc_response_free(&res);
    CHECK_OK(fx_stop(&f));
}

TEST(chunked_request_body)
{
    struct fx f;
    struct rresp res;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    CHECK_OK(raw_exchange(f.port,
                          "PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
                          &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(strstr(res.body, "\"body\":\"hello world\"") != NULL);
    CHECK_OK(fx_stop(&f));
}

TEST(expect_continue)
{
    struct fx f;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    int fd;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    fd = raw_connect(f.port);
    reader_init(r, fd);
    CHECK_OK(raw_sends(fd, "PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                           "Content-Length: 4\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 100);
    CHECK_OK(raw_sends(fd, "data"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(strstr(res.body, "\"body\":\"data\"") != NULL);
    close(fd);
    CHECK_OK(fx_stop(&f));
    free(r);
}

TEST(too_big_413)
{
    struct fx f;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    char *big = malloc(200 * 1024);
    int fd;
    json_t *j;
    REQUIRE(fx_start(&f, &test_limits) == 0);

    /* Declared too big: answered before the body is read; the body the
     * client keeps sending does not turn the answer into a reset. */
    fd = raw_connect(f.port);
    reader_init(r, fd);
    CHECK_OK(raw_sends(fd, "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 204800\r\n\r\n"));
    memset(big, 'a', 200 * 1024);
    (void)raw_send(fd, big, 200 * 1024);
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 413);
    CHECK(!res.keep_alive);
    j = parse_json(res.body);
    CHECK_EQ_STR(jstr(json_object_get(j, "error"), "code"), "too_big");
    json_decref(j);
    CHECK(expect_eof(fd));
    close(fd);

    /* Chunked past the limit. */
    fd = raw_connect(f.port);
    reader_init(r, fd);
    CHECK_OK(raw_sends(fd, "PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    {
        int i;
        for (i = 0; i < 5; i++) {
            char hdr[32];
            snprintf(hdr, sizeof hdr, "%x\r\n", 20000);
            if (raw_sends(fd, hdr) != 0 || raw_send(fd, big, 20000) != 0 ||
                raw_sends(fd, "\r\n") != 0) {
                break;
            }
        }
    }
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 413);
    close(fd);

    /* The blocking client relays the early answer as a response. */
    {
        struct httpc_response hr;
        char addr[64], err[FL_ERRMSG_SIZE];
        size_t len = 4 * 1024 * 1024;
        char *huge = calloc(1, len);
        snprintf(addr, sizeof addr, "127.0.0.1:%d", f.port);
        CHECK_OK(httpc_request(addr, "PUT", "/echo", NULL, huge, len, 5000, &hr, err));
        CHECK_EQ_INT(hr.status, 413);
        httpc_response_free(&hr);
        free(huge);
    }

    /* The body limit is exact. */
    {
        char *req = malloc(80 * 1024);
        size_t hl = (size_t)sprintf(req, "PUT /x HTTP/1.1\r\nContent-Length: %d\r\n\r\n", 65536);
        memset(req + hl, 'q', 65536);
        req[hl + 65536] = '\0';
        CHECK_OK(raw_exchange(f.port, req, &res));
        CHECK_EQ_INT(res.status, 200);
        free(req);
    }
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.rejected, 3);
    free(big);
    free(r);
}

TEST(garbage_400)
{
    struct fx f;
    struct rresp res;
    json_t *j;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    CHECK_OK(raw_exchange(f.port, "GARBAGE\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 400);
    j = parse_json(res.body);
    CHECK_EQ_STR(jstr(json_object_get(j, "error"), "code"), "bad_request");
    json_decref(j);
    CHECK_OK(raw_exchange(f.port, "GET /a%zz HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 400);
    CHECK_OK(raw_exchange(f.port, "GET /a%00b HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 400);
    CHECK_OK(raw_exchange(f.port, "GET /a%4 HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 400);
    CHECK_OK(raw_exchange(
        f.port, "PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 400);
    CHECK_OK(raw_exchange(f.port, "GET / HTTP/1.1\r\nBad Header\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 400);
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.rejected, 6);
}

/* 1 if body is {"error":{"code":code,"message":<non-empty string>}}; the
 * message goes to msg (may be NULL). */
static int is_json_error(const char *body, const char *code, char *msg, size_t cap)
{
    json_t *j = json_loads(body, 0, NULL), *e = json_object_get(j, "error");
    const char *m = jstr(e, "message");
    int ok = j != NULL && json_object_size(j) == 1 && json_object_size(e) == 2 &&
             jstr(e, "code") != NULL && strcmp(jstr(e, "code"), code) == 0 && m != NULL &&
             m[0] != '\0';
    if (ok && msg != NULL) {
        snprintf(msg, cap, "%s", m);
    }
    json_decref(j);
    return ok;
}

/* Only origin-form targets reach the handler: everything else is the
 * server's own 400 "bad_request" with a JSON body, and the connection ends. */
TEST(bad_targets_400)
{
    static const char *const bad[] = {
        "GET http://h:1 HTTP/1.1\r\n\r\n", /* absolute form */
        "GET http://h/p?x=%41 HTTP/1.1\r\nA: b\r\n\r\n",
        "GET HTTP://H/v1/kv/k HTTP/1.1\r\n\r\n",
        "GET h:80 HTTP/1.1\r\n\r\n", /* authority form */
        "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        "GET * HTTP/1.1\r\n\r\n", /* "*" is for OPTIONS only */
        "DELETE * HTTP/1.1\r\n\r\n",
        "GET ?x=1 HTTP/1.1\r\n\r\n",    /* no path */
        "GET /p#frag HTTP/1.1\r\n\r\n", /* a fragment */
        "GET /p?x=1#f HTTP/1.1\r\n\r\n",
        "GET /a\tb HTTP/1.1\r\n\r\n", /* control bytes */
        "GET /a\fb HTTP/1.1\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\n\r\n",
        "GET /a\x7f HTTP/1.1\r\n\r\n",
        "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", /* raw non-ASCII, even UTF-8 */
        "GET /\xff HTTP/1.1\r\n\r\n",
        "GET /p?q=\xff HTTP/1.1\r\n\r\n",
    };
    struct fx f;
    struct rresp res;
    char msg[256];
    size_t i;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int ok = raw_exchange(f.port, bad[i], &res) == 0 && res.status == 400 && !res.keep_alive &&
                 is_json_error(res.body, "bad_request", msg, sizeof msg);
        if (!ok) {
            fprintf(stderr, "  bad target %zu (%.30s): %d %s\n", i, bad[i], res.status, res.body);
        }
        CHECK(ok);
    }
    /* The message says what is wrong. */
    CHECK_OK(raw_exchange(f.port, "GET http://h/v1/kv/k HTTP/1.1\r\n\r\n", &res));
    CHECK(is_json_error(res.body, "bad_request", msg, sizeof msg));
    CHECK(strstr(msg, "origin-form") != NULL);
    CHECK_OK(raw_exchange(f.port, "GET /p#x HTTP/1.1\r\n\r\n", &res));
    CHECK(is_json_error(res.body, "bad_request", msg, sizeof msg));
    CHECK(strstr(msg, "fragment") != NULL);
    /* Good targets still reach the handler. */
    CHECK_OK(raw_exchange(f.port, "OPTIONS * HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(strstr(res.body, "\"path\":\"*\"") != NULL);
    CHECK_OK(raw_exchange(f.port, "GET /p?x=%41&y=a/b:c@d!$'()*+,; HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(strstr(res.body, "\"x\":\"A\"") != NULL);
    CHECK_OK(raw_exchange(f.port, "GET //x/./../p HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.requests, 3);
    CHECK_EQ_INT(f.stats.rejected, sizeof bad / sizeof bad[0] + 2);
}

/* An error message quoting bytes that are not UTF-8 (a decoded "%ff") stays
 * a JSON error with its own status: such bytes are shown as \xHH. */
TEST(error_messages_stay_json)
{
    static const struct {
        const char *target;
        int status;
        const char *want; /* the message */
    } cases[] = {
        {"/quote/%ff", 404, "/\\xFF"},
        {"/quote/%c0%af?status=400", 400, "/\\xC0\\xAF"},             /* overlong '/' */
        {"/quote/a%ed%a0%80b?status=405", 405, "/a\\xED\\xA0\\x80b"}, /* a surrogate */
        {"/quote/%f4%90%80%80", 404, "/\\xF4\\x90\\x80\\x80"},        /* past U+10FFFF */
        {"/quote/%e2%82", 404, "/\\xE2\\x82"},                        /* cut short */
        {"/quote/%80x", 404, "/\\x80x"},                              /* stray continuation */
        {"/quote/caf%c3%a9%f0%9f%9a%80", 404, "/caf\xc3\xa9\xf0\x9f\x9a\x80"}, /* UTF-8 */
        {"/quote/%0a%09%22%5c", 404, "/\n\t\"\\"}, /* controls and quotes: JSON escapes them */
    };
    struct fx f;
    struct rresp res;
    char msg[1100], req[256];
    size_t i;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ok;
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", cases[i].target);
        ok = raw_exchange(f.port, req, &res) == 0 && res.status == cases[i].status &&
             is_json_error(res.body, "not_found", msg, sizeof msg) &&
             strcmp(msg, cases[i].want) == 0;
        if (!ok) {
            fprintf(stderr, "  %s: %d %s\n", cases[i].target, res.status, res.body);
        }
        CHECK(ok);
    }
    /* Cut at 1023 bytes inside a UTF-8 sequence or an escape: still JSON,
     * nothing split. */
    for (i = 1015; i <= 1023; i++) {
        snprintf(req, sizeof req, "GET /quote/%%c3%%a9%%ff%%c3%%a9?pad=%zu HTTP/1.1\r\n\r\n", i);
        CHECK_OK(raw_exchange(f.port, req, &res));
        CHECK_EQ_INT(res.status, 404);
        CHECK(is_json_error(res.body, "not_found", msg, sizeof msg));
        CHECK(strlen(msg) <= 1023 && strlen(msg) >= i);
    }
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.rejected, 0);
}

/* http_drop ends the connection before any byte of an answer, now or later,
 * and leaves the other connections alone. */
TEST(drop_closes_without_answer)
{
    struct fx f;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    struct http_stats st;
    int keep, fd, i, ok = 0;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    keep = raw_connect(f.port);
    REQUIRE(keep >= 0);
    reader_init(r, keep);
    CHECK_OK(raw_sends(keep, "GET /echo?n=1 HTTP/1.1\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);

    /* From the handler callback; then from a timer, with a request
     * pipelined behind it (dropped along). */
    fd = raw_connect(f.port);
    CHECK_OK(raw_sends(fd, "GET /drop HTTP/1.1\r\n\r\n"));
    CHECK(expect_eof(fd));
    close(fd);
    fd = raw_connect(f.port);
    CHECK_OK(raw_sends(fd, "GET /drop-later?ms=50 HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\n\r\n"));
    CHECK(expect_eof(fd));
    close(fd);
    /* The peer left first (the server, not reading while the request is
     * held, learns it at the drop). */
    fd = raw_connect(f.port);
    CHECK_OK(raw_sends(fd, "GET /drop-later?ms=100 HTTP/1.1\r\n\r\n"));
    sleep_ms(20);
    close(fd);
    sleep_ms(200);

    /* The kept connection still works. */
    CHECK_OK(raw_sends(keep, "GET /echo?n=2 HTTP/1.1\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK(strstr(res.body, "\"n\":\"2\"") != NULL);
    for (i = 0; i < 50 && !ok; i++) {
        CHECK_OK(raw_sends(keep, "GET /stats HTTP/1.1\r\n\r\n"));
        CHECK_OK(read_resp(r, &res));
        ok = strstr(res.body, "\"open\":1") != NULL;
        if (!ok) {
            sleep_ms(20);
        }
    }
    CHECK(ok);
    close(keep);

    /* Held past the server's stop, whose connection is closed by then:
     * dropping it only frees it (ASan: no leak). */
    fd = raw_connect(f.port);
    CHECK_OK(raw_sends(fd, "GET /hold HTTP/1.1\r\n\r\n"));
    sleep_ms(100);
    f.ctx.drop_held = 1;
    CHECK_OK(fx_stop(&f));
    CHECK(expect_eof(fd));
    close(fd);
    st = f.stats;
    CHECK_EQ_INT(st.dropped, 3);
    CHECK_EQ_INT(st.rejected, 0);
    free(r);
}

TEST(headers_too_big_431)
{
    struct fx f;
    struct rresp res;
    char *req = malloc(64 * 1024);
    int i, n;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    n = sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'h', 20000);
    strcpy(req + n + 20000, "\r\n\r\n");
    CHECK_OK(raw_exchange(f.port, req, &res));
    CHECK_EQ_INT(res.status, 431);
    CHECK(strstr(res.body, "headers_too_big") != NULL);

    /* A long url counts too. */
    n = sprintf(req, "GET /");
    memset(req + n, 'u', 5000);
    strcpy(req + n + 5000, " HTTP/1.1\r\n\r\n");
    CHECK_OK(raw_exchange(f.port, req, &res));
    CHECK_EQ_INT(res.status, 431);

    /* Too many headers. */
    n = sprintf(req, "GET / HTTP/1.1\r\n");
    for (i = 0; i < HTTP_MAX_HEADERS + 1; i++) {
        n += sprintf(req + n, "H%d: v\r\n", i);
    }
    strcpy(req + n, "\r\n");
    CHECK_OK(raw_exchange(f.port, req, &res));
    CHECK_EQ_INT(res.status, 431);
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.rejected, 3);
    free(req);
}

TEST(client_gone_before_deferred_response)
{
    struct fx f;
    struct rresp res;
    int fd, i;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    for (i = 0; i < 5; i++) {
        fd = raw_connect(f.port);
        CHECK_OK(raw_sends(fd, "GET /defer?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
        if (i % 2 == 1) {
            struct linger l = {.l_onoff = 1, .l_linger = 0}; /* close with a reset */
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(fd);
    }
    sleep_ms(300);
    CHECK_OK(raw_exchange(f.port, "GET /echo HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 200);

    /* Held by the handler past the server's stop: responding only frees. */
    fd = raw_connect(f.port);
    CHECK_OK(raw_sends(fd, "GET /hold HTTP/1.1\r\n\r\n"));
    sleep_ms(100);
    CHECK_OK(fx_stop(&f));
    CHECK(expect_eof(fd));
    close(fd);
}

TEST(idle_timeout)
{
    struct fx f;
    struct http_limits lim = test_limits;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    uint64_t t0;
    int fd;
    lim.idle_timeout_ms = 200;
    REQUIRE(fx_start(&f, &lim) == 0);
    fd = raw_connect(f.port);
    t0 = now_ms();
    CHECK(expect_eof(fd));
    CHECK(now_ms() - t0 >= 150);
    close(fd);

    /* Activity postpones it; a request with the handler is not idle. */
    fd = raw_connect(f.port);
    reader_init(r, fd);
    sleep_ms(120);
    CHECK_OK(raw_sends(fd, "GET /echo"));
    sleep_ms(120);
    CHECK_OK(raw_sends(fd, " HTTP/1.1\r\n\r\nGET /defer?ms=400 HTTP/1.1\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    t0 = now_ms();
    CHECK(expect_eof(fd));
    CHECK(now_ms() - t0 >= 150);
    close(fd);
    CHECK_OK(fx_stop(&f));
    free(r);
}

/* 1 if fd has something to read (an answer or EOF) within ms. */
static int answered_within(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

/* Slow clients: a byte now and then extends the idle timer but never a
 * request's deadlines. Headers that trickle in past header_timeout_ms, and
 * a body past body_timeout_ms after the headers, are answered 408 and the
 * connection closes; a request on time is served. */
TEST(request_deadlines_408)
{
    struct fx f;
    struct http_limits lim = test_limits;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    static const char *const head = "GET /echo HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
    uint64_t t0, elapsed;
    int fd;
    lim.idle_timeout_ms = 5000;
    lim.header_timeout_ms = 300;
    lim.body_timeout_ms = 400;
    REQUIRE(fx_start(&f, &lim) == 0);
    fd = raw_connect(f.port);
    reader_init(r, fd);
    t0 = now_ms();
    for (const char *p = head; *p != '\0' && now_ms() - t0 < 2000; p++) {
        char one[2] = {*p, '\0'};
        if (raw_sends(fd, one) != 0 || answered_within(fd, 40)) {
            break; /* the server answered or closed */
        }
    }
    elapsed = now_ms() - t0;
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 408);
    CHECK(strstr(res.body, "request_timeout") != NULL);
    CHECK(elapsed >= 250 && elapsed < 1500);
    CHECK(expect_eof(fd));
    close(fd);

    /* The body: headers on time, then a byte every 50 ms of 100. */
    fd = raw_connect(f.port);
    reader_init(r, fd);
    CHECK_OK(raw_sends(fd, "PUT /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n"));
    t0 = now_ms();
    for (int i = 0; i < 40 && now_ms() - t0 < 2000; i++) {
        if (raw_sends(fd, "b") != 0 || answered_within(fd, 50)) {
            break;
        }
    }
    elapsed = now_ms() - t0;
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 408);
    CHECK(strstr(res.body, "body") != NULL);
    CHECK(elapsed >= 350 && elapsed < 1500);
    close(fd);

    /* On time, even slowly started: served. */
    fd = raw_connect(f.port);
    reader_init(r, fd);
    sleep_ms(350); /* before the first byte: only the idle timer runs */
    CHECK_OK(raw_sends(fd, "GET /echo HTTP/1.1\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK_EQ_INT(res.status, 200);
    close(fd);
    CHECK_OK(fx_stop(&f));
    CHECK_EQ_INT(f.stats.timed_out, 2);
    free(r);
}

TEST(too_many_connections)
{
    struct fx f;
    struct http_limits lim = test_limits;
    struct reader *r = malloc(sizeof *r);
    struct rresp res;
    int a, b, c, ok = 0, i;
    lim.max_conns = 2;
    REQUIRE(fx_start(&f, &lim) == 0);
    a = raw_connect(f.port);
    b = raw_connect(f.port);
    reader_init(r, a);
    CHECK_OK(raw_sends(a, "GET /echo HTTP/1.1\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    reader_init(r, b);
    CHECK_OK(raw_sends(b, "GET /stats HTTP/1.1\r\n\r\n"));
    CHECK_OK(read_resp(r, &res));
    CHECK(strstr(res.body, "\"open\":2") != NULL);
    c = raw_connect(f.port);
    reader_init(r, c);
    /* A 503 or just a close, nothing else. */
    if (read_resp(r, &res) == 0) {
        CHECK_EQ_INT(res.status, 503);
    }
    close(c);
    close(a);
    /* Once a is gone there is room again. */
    for (i = 0; i < 50 && !ok; i++) {
        sleep_ms(20);
        ok = raw_exchange(f.port, "GET /echo HTTP/1.1\r\n\r\n", &res) == 0 && res.status == 200;
    }
    CHECK(ok);
    close(b);
    CHECK_OK(fx_stop(&f));
    CHECK(f.stats.rejected >= 1);
    free(r);
}

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

TEST(random_garbage_and_truncation)
{
    static const char *seeds[] = {
        "GET /echo?x=1 HTTP/1.1\r\nHost: t\r\nX-Test: a\r\n\r\n",
        "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.1\r\n\r\n",
    };
    struct fx f;
    struct rresp res;
    char buf[1024];
    int iter, hung = 0;
    REQUIRE(fx_start(&f, &test_limits) == 0);
    rng_state = 0x9e3779b97f4a7c15ull;
    for (iter = 0; iter < 300; iter++) {
        const char *seed = seeds[rnd() % 4];
        size_t len = strlen(seed), i;
        int fd = raw_connect(f.port);
        REQUIRE(fd >= 0);
        memcpy(buf, seed, len);
        switch (iter % 3) {
        case 0: /* random bytes */
            len = rnd() % sizeof buf;
            for (i = 0; i < len; i++) {
                buf[i] = (char)rnd();
            }
            break;
        case 1: /* truncated */
            len = rnd() % len;
            break;
        default: /* a few bytes flipped */
            for (i = 0; i < 1 + rnd() % 4; i++) {
                buf[rnd() % len] = (char)rnd();
            }
        }
        (void)raw_send(fd, buf, len);
        shutdown(fd, SHUT_WR);
        /* The server must end every such connection by itself. */
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                break;
            }
            if (n < 0) {
                hung++;
                break;
            }
        }
        close(fd);
    }
    CHECK_EQ_INT(hung, 0);
    CHECK_OK(raw_exchange(f.port, "GET /echo HTTP/1.1\r\n\r\n", &res));
    CHECK_EQ_INT(res.status, 200);
    CHECK_OK(fx_stop(&f));
}

TEST(start_errors)
{
    uv_loop_t loop;
    struct http_server *s = NULL, *s2 = NULL;
    char err[FL_ERRMSG_SIZE];
    char addr[64];
    int ctx = 0;
    uv_loop_init(&loop);
    CHECK_EQ_INT(http_server_start(&loop, "nonsense", NULL, handler, &ctx, &s, err), FL_EINVAL);
    CHECK_EQ_INT(http_server_start(&loop, "127.0.0.1:99999", NULL, handler, &ctx, &s, err),
                 FL_EINVAL);
    CHECK_OK(http_server_start(&loop, "127.0.0.1:0", NULL, handler, &ctx, &s, err));
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_server_port(s));
    CHECK_EQ_INT(http_server_start(&loop, addr, NULL, handler, &ctx, &s2, err), FL_ENET);
    CHECK(strstr(err, "address already in use") != NULL);
    http_server_stop(s, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_OK(uv_loop_close(&loop));
}

/* ------------------------------------------------------------ raw servers */

/* A scripted server: for each canned response, accept a connection, read
 * the request head, write the response and close. */
struct script {
    int lfd;
    int port;
    const char *const *responses;
    int n;
    int served;
    pthread_t thread;
};

static int listen_any(int *port, int backlog)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, backlog) != 0) {
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void *script_thread(void *arg)
{
    struct script *s = arg;
    int i;
    for (i = 0; i < s->n; i++) {
        char buf[4096];
        size_t got = 0;
        int fd = accept(s->lfd, NULL, NULL);
        struct timeval tv = {.tv_sec = 5};
        if (fd < 0) {
            break;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (got < sizeof buf - 1) {
            ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "\r\n\r\n") != NULL) {
                break;
            }
        }
        (void)raw_sends(fd, s->responses[i]);
        s->served++;
        close(fd);
    }
    return NULL;
}

static int script_start(struct script *s, const char *const *responses, int n)
{
    memset(s, 0, sizeof *s);
    s->responses = responses;
    s->n = n;
    s->lfd = listen_any(&s->port, 16);
    if (s->lfd < 0) {
        return -1;
    }
    pthread_create(&s->thread, NULL, script_thread, s);
    return 0;
}

static void script_join(struct script *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

TEST(httpc_against_scripted_servers)
{
    static const char *const resp[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil close",
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: "
        "chunked\r\n\r\n4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "NOT HTTP AT ALL\r\n\r\n",
        "",
        "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    };
    struct script s;
    struct httpc_response res;
    char addr[64], err[FL_ERRMSG_SIZE];
    REQUIRE(script_start(&s, resp, 8) == 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    CHECK_OK(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err));
    CHECK_EQ_INT(res.status, 200);
    CHECK_EQ_STR(res.body, "until close");
    CHECK_EQ_STR(res.content_type, "text/plain");
    httpc_response_free(&res);
    CHECK_OK(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err));
    CHECK_EQ_INT(res.status, 201);
    CHECK_EQ_STR(res.body, "chunked");
    httpc_response_free(&res);
    CHECK_OK(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err));
    CHECK_EQ_INT(res.status, 200);
    CHECK_EQ_STR(res.body, "ok");
    httpc_response_free(&res);
    CHECK_EQ_INT(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err), FL_EPROTO);
    CHECK(res.body == NULL);
    CHECK_EQ_INT(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err), FL_EPROTO);
    CHECK_EQ_INT(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err), FL_ENET);
    CHECK_EQ_INT(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err), FL_ETOOBIG);
    CHECK_EQ_INT(httpc_request(addr, "GET", "/", NULL, NULL, 0, 5000, &res, err), FL_EPROTO);
    script_join(&s);
}

TEST(httpc_refused_and_timeout)
{
    struct httpc_response res;
    char addr[64], err[FL_ERRMSG_SIZE], want[96];
    uint64_t t0;
    int port, fd = listen_any(&port, 4);
    REQUIRE(fd >= 0);
    close(fd); /* nobody listens there now */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    CHECK_EQ_INT(httpc_request(addr, "GET", "/", NULL, NULL, 0, 2000, &res, err), FL_ENET);
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d: Connection refused", port);
    CHECK_EQ_STR(err, want);

    fd = listen_any(&port, 4); /* listens, never answers */
    snprintf(addr, sizeof addr, "localhost:%d", port);
    t0 = now_ms();
    CHECK_EQ_INT(httpc_request(addr, "GET", "/", NULL, NULL, 0, 300, &res, err), FL_ETIMEOUT);
    CHECK(now_ms() - t0 >= 290);
    close(fd);
    CHECK_EQ_INT(httpc_request("nonsense", "GET", "/", NULL, NULL, 0, 300, &res, err), FL_EINVAL);
    CHECK_EQ_INT(httpc_request("[::1", "GET", "/", NULL, NULL, 0, 300, &res, err), FL_EINVAL);
    CHECK_EQ_INT(httpc_request("h:1", "GET", "no-slash", NULL, NULL, 0, 300, &res, err), FL_EINVAL);
}

/* ------------------------------------------------------------ async client */

struct outcome {
    int called;
    int err;
    int status;
    char ctype[64];
    char body[256];
    size_t len;
    /* Optionally chain a second request from the callback. */
    uv_loop_t *chain_loop;
    const char *chain_addr;
    struct outcome *chain_out;
};

static void on_client(void *data, int err, int status, const char *ctype, const uint8_t *body,
                      size_t len);

static void chain(struct outcome *o)
{
    if (o->chain_loop != NULL) {
        CHECK_OK(http_client_request(o->chain_loop, o->chain_addr, "GET", "/echo?n=2", NULL, NULL,
                                     0, 5000, on_client, o->chain_out));
    }
}

static void on_client(void *data, int err, int status, const char *ctype, const uint8_t *body,
                      size_t len)
{
    struct outcome *o = data;
    o->called++;
    o->err = err;
    o->status = status;
    o->len = len;
    snprintf(o->ctype, sizeof o->ctype, "%s", ctype ? ctype : "(none)");
    if (body != NULL) {
        snprintf(o->body, sizeof o->body, "%.*s", (int)(len < 255 ? len : 255), (const char *)body);
    }
    chain(o);
}

static void run_until(uv_loop_t *loop, const int *flag)
{
    uint64_t t0 = now_ms();
    while (!*flag && now_ms() - t0 < 20000) {
        uv_run(loop, UV_RUN_ONCE);
    }
}

static void stop_and_close(uv_loop_t *loop, struct http_server *s)
{
    http_client_close_idle(loop);
    if (s != NULL) {
        http_server_stop(s, NULL, NULL);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(http_client_pooled(NULL), 0); /* nothing left for a later loop */
    CHECK_OK(uv_loop_close(loop));
}

TEST(async_client_against_server)
{
    uv_loop_t loop;
    struct ctx ctx = {.loop = &loop};
    struct outcome a, b, c;
    struct http_stats st;
    char addr[64], err[FL_ERRMSG_SIZE];
    uv_loop_init(&loop);
    REQUIRE(http_server_start(&loop, "127.0.0.1:0", &test_limits, handler, &ctx, &ctx.server,
                              err) == FL_OK);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_server_port(ctx.server));

    memset(&a, 0, sizeof a);
    CHECK_OK(http_client_request(&loop, addr, "PUT", "/echo?n=1", "X-Test: async\r\n", "body", 4,
                                 5000, on_client, &a));
    CHECK_EQ_INT(a.called, 0); /* never from inside the call */
    run_until(&loop, &a.called);
    CHECK_EQ_INT(a.called, 1);
    CHECK_EQ_INT(a.err, FL_OK);
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_STR(a.ctype, "application/json");
    CHECK(strstr(a.body, "\"body\":\"body\"") != NULL);
    CHECK(strstr(a.body, "\"x_test\":\"async\"") != NULL);

    /* The second request, started from the first one's callback, and a
     * third later reuse the pooled connection. */
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    memset(&a, 0, sizeof a);
    a.chain_loop = &loop;
    a.chain_addr = addr;
    a.chain_out = &b;
    CHECK_OK(http_client_request(&loop, addr, "GET", "/defer?ms=20&n=1", NULL, NULL, 0, 5000,
                                 on_client, &a));
    run_until(&loop, &b.called);
    CHECK_EQ_INT(b.err, FL_OK);
    CHECK(strstr(b.body, "\"n\":\"2\"") != NULL);
    CHECK_EQ_INT(http_client_request(&loop, "http://127.0.0.1", "GET", "/", NULL, NULL, 0, 5000,
                                     on_client, &c),
                 FL_EINVAL);
    CHECK_OK(http_client_request(&loop, addr, "HEAD", "/echo", NULL, NULL, 0, 5000, on_client, &c));
    run_until(&loop, &c.called);
    CHECK_EQ_INT(c.err, FL_OK);
    CHECK_EQ_INT(c.status, 200);
    CHECK_EQ_INT(c.len, 0);
    http_server_stats(ctx.server, &st);
    CHECK_EQ_INT(st.accepted, 1);
    CHECK_EQ_INT(st.requests, 4);

    /* A body larger than the server takes: 413, relayed as a response. */
    {
        size_t len = 100 * 1024;
        char *big = calloc(1, len);
        memset(&a, 0, sizeof a);
        CHECK_OK(
            http_client_request(&loop, addr, "PUT", "/echo", NULL, big, len, 5000, on_client, &a));
        run_until(&loop, &a.called);
        CHECK_EQ_INT(a.err, FL_OK);
        CHECK_EQ_INT(a.status, 413);
        free(big);
    }

    /* A response body over 1 MiB in many reads, by name. */
    memset(&a, 0, sizeof a);
    snprintf(addr, sizeof addr, "localhost:%d", http_server_port(ctx.server));
    CHECK_OK(http_client_request(&loop, addr, "GET", "/big", NULL, NULL, 0, 5000, on_client, &a));
    run_until(&loop, &a.called);
    CHECK_EQ_INT(a.err, FL_OK);
    CHECK_EQ_INT(a.len, 3 * 1024 * 1024);

    stop_and_close(&loop, ctx.server);
}

TEST(async_client_errors)
{
    uv_loop_t loop;
    struct outcome a, b;
    char addr[64];
    int port, fd;
    uint64_t t0;
    uv_loop_init(&loop);

    /* Refused. */
    fd = listen_any(&port, 4);
    close(fd);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    memset(&a, 0, sizeof a);
    CHECK_OK(http_client_request(&loop, addr, "GET", "/", NULL, NULL, 0, 2000, on_client, &a));
    CHECK_EQ_INT(a.called, 0);
    run_until(&loop, &a.called);
    CHECK_EQ_INT(a.called, 1);
    CHECK_EQ_INT(a.err, FL_ENET);
    CHECK_EQ_INT(a.status, 0);

    /* A listener that never answers. */
    fd = listen_any(&port, 4);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    memset(&a, 0, sizeof a);
    t0 = now_ms();
    CHECK_OK(http_client_request(&loop, addr, "POST", "/x", NULL, "abc", 3, 300, on_client, &a));
    run_until(&loop, &a.called);
    CHECK_EQ_INT(a.err, FL_ETIMEOUT);
    CHECK_EQ_INT(a.status, HTTP_CLIENT_MAYBE_SENT); /* written: it may have acted on it */
    CHECK(now_ms() - t0 >= 290);
    close(fd);

    /* Unresolvable name. */
    memset(&b, 0, sizeof b);
    CHECK_OK(http_client_request(&loop, "no-such-host.invalid:80", "GET", "/", NULL, NULL, 0, 5000,
                                 on_client, &b));
    run_until(&loop, &b.called);
    CHECK_EQ_INT(b.err, FL_ENET);
    CHECK_EQ_INT(b.status, 0); /* never sent */

    CHECK_EQ_INT(http_client_request(&loop, "nope", "GET", "/", NULL, NULL, 0, 0, on_client, &a),
                 FL_EINVAL);
    CHECK_EQ_INT(http_client_request(&loop, addr, "GET", "/", NULL, NULL, 0, 0, NULL, &a),
                 FL_EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(http_client_pooled(NULL), 0);
    CHECK_OK(uv_loop_close(&loop));
}

TEST(async_client_scripted)
{
    static const char *const resp[] = {
        /* Keep-alive, then closed right away: the pooled connection is
         * stale when the next request takes it, and that one is retried. */
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nk1",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nk2",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
        "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nch\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "garbage\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n",
        "",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    };
    uv_loop_t loop;
    struct script s;
    struct outcome a, b;
    char addr[64];
    int i;
    uv_loop_init(&loop);
    REQUIRE(script_start(&s, resp, 10) == 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);

    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.chain_loop = &loop;
    a.chain_addr = addr;
    a.chain_out = &b;
    CHECK_OK(http_client_request(&loop, addr, "GET", "/", NULL, NULL, 0, 5000, on_client, &a));
    run_until(&loop, &b.called);
    CHECK_EQ_INT(a.err, FL_OK);
    CHECK_EQ_STR(a.body, "k1");
    CHECK_EQ_INT(b.err, FL_OK);
    CHECK_EQ_STR(b.body, "k2");

    for (i = 0; i < 8; i++) {
        static const int want_err[] = {FL_OK, FL_OK,     FL_EPROTO, FL_EPROTO,
                                       FL_OK, FL_EPROTO, FL_ENET,   FL_EPROTO};
        static const char *const want_body[] = {"until close", "ch", "", "", "ok", "", "", ""};
        memset(&a, 0, sizeof a);
        CHECK_OK(http_client_request(&loop, addr, "GET", "/", NULL, NULL, 0, 5000, on_client, &a));
        run_until(&loop, &a.called);
        CHECK_EQ_INT(a.err, want_err[i]);
        CHECK_EQ_STR(a.body, want_body[i]);
    }
    script_join(&s);
    CHECK_EQ_INT(s.served, 10);
    stop_and_close(&loop, NULL);
}

static void on_tick(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run the loop for ms milliseconds. */
static void run_for(uv_loop_t *loop, unsigned ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_tick, ms, 0);
    run_until(loop, &fired);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* A server that answers the first request on a connection (keep-alive),
 * then reads the second one whole and closes without a byte of answer, as
 * a server that acted on it and then went away would. Later connections
 * (a retry) are answered normally, unless `refuse_after` closed the
 * listener first. Counts the requests it read. */
struct hangup {
    int lfd, port, refuse_after;
    int requests;
    pthread_t thread;
};

static int read_request(int fd)
{
    char buf[4096];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        char *end;
        if (n <= 0) {
            return 0;
        }
        got += (size_t)n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strstr(buf, "Content-Length: ");
            size_t body = cl != NULL ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
            if (got >= (size_t)(end + 4 - buf) + body) {
                return 1;
            }
        }
    }
    return 0;
}

static void *hangup_thread(void *arg)
{
    struct hangup *h = arg;
    struct timeval tv = {.tv_sec = 5};
    struct pollfd p = {.fd = h->lfd, .events = POLLIN};
    int fd = accept(h->lfd, NULL, NULL);
    if (fd < 0) {
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (read_request(fd)) {
        h->requests++;
        (void)raw_sends(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nk1");
    }
    if (read_request(fd)) {
        h->requests++;
    }
    if (h->refuse_after) {
        close(h->lfd); /* the retry's connect is refused */
        h->lfd = -1;
    }
    close(fd);
    if (h->lfd < 0 || poll(&p, 1, 300) != 1 || (fd = accept(h->lfd, NULL, NULL)) < 0) {
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (read_request(fd)) {
        h->requests++;
        (void)raw_sends(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nk2");
    }
    close(fd);
    return NULL;
}

/* A write on a pooled connection that the server closes after reading it:
 * sent again only when the caller says a copy is harmless; and once bytes
 * went out, the outcome stays "maybe sent" even if the retry's connect is
 * refused (the follower must then answer outcome_unknown, not no_leader). */
TEST(async_client_resends_only_repeatable_writes)
{
    static const struct {
        const char *method;
        unsigned flags;
        int refuse_after;
        int want_err, want_status, want_requests;
    } cases[] = {
        {"PUT", 0, 0, FL_ENET, HTTP_CLIENT_MAYBE_SENT, 2},
        {"POST", 0, 0, FL_ENET, HTTP_CLIENT_MAYBE_SENT, 2},
        {"PUT", HTTP_CLIENT_REPEATABLE, 0, FL_OK, 200, 3},
        {"GET", 0, 0, FL_OK, 200, 3},
        {"PUT", HTTP_CLIENT_REPEATABLE, 1, FL_ENET, HTTP_CLIENT_MAYBE_SENT, 2},
        {"GET", 0, 1, FL_ENET, HTTP_CLIENT_MAYBE_SENT, 2},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uv_loop_t loop;
        struct hangup h;
        struct outcome a;
        char addr[64];
        uv_loop_init(&loop);
        memset(&h, 0, sizeof h);
        h.refuse_after = cases[i].refuse_after;
        h.lfd = listen_any(&h.port, 4);
        REQUIRE(h.lfd >= 0);
        pthread_create(&h.thread, NULL, hangup_thread, &h);
        snprintf(addr, sizeof addr, "127.0.0.1:%d", h.port);
        memset(&a, 0, sizeof a);
        CHECK_OK(http_client_request_flags(&loop, addr, cases[i].method, "/one", NULL, "x", 1, 5000,
                                           cases[i].flags, on_client, &a));
        run_until(&loop, &a.called);
        CHECK_EQ_INT(a.err, FL_OK);
        memset(&a, 0, sizeof a);
        CHECK_OK(http_client_request_flags(&loop, addr, cases[i].method, "/two", NULL, "y", 1, 5000,
                                           cases[i].flags, on_client, &a));
        run_until(&loop, &a.called);
        pthread_join(h.thread, NULL);
        if (h.lfd >= 0) {
            close(h.lfd);
        }
        CHECK_EQ_INT(a.err, cases[i].want_err);
        CHECK_EQ_INT(a.status, cases[i].want_status);
        CHECK_EQ_INT(h.requests, cases[i].want_requests);
        http_client_close_idle(&loop);
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK_EQ_INT(http_client_pooled(NULL), 0);
        CHECK_OK(uv_loop_close(&loop));
    }
}

TEST(async_pool_connection_closed_by_server)
{
    uv_loop_t loop;
    struct ctx ctx = {.loop = &loop};
    struct http_limits lim = test_limits;
    struct outcome a;
    struct http_stats st;
    char addr[64], err[FL_ERRMSG_SIZE];
    int i;
    lim.idle_timeout_ms = 100;
    uv_loop_init(&loop);
    REQUIRE(http_server_start(&loop, "127.0.0.1:0", &lim, handler, &ctx, &ctx.server, err) ==
            FL_OK);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_server_port(ctx.server));
    for (i = 0; i < 2; i++) {
        memset(&a, 0, sizeof a);
        CHECK_OK(
            http_client_request(&loop, addr, "GET", "/echo", NULL, NULL, 0, 5000, on_client, &a));
        run_until(&loop, &a.called);
        CHECK_EQ_INT(a.err, FL_OK);
        run_for(&loop, 300); /* the server drops the idle pooled connection */
    }
    http_server_stats(ctx.server, &st);
    CHECK_EQ_INT(st.accepted, 2);
    CHECK_EQ_INT(st.open_conns, 0);
    stop_and_close(&loop, ctx.server);
}

/* Make the n-th allocation fail, for every n, during a request through the
 * async client to the server on one loop: the callback still comes exactly
 * once, nothing leaks, and both sides work afterwards. */
TEST(allocation_fault_sweep)
{
    uv_loop_t loop;
    struct ctx ctx = {.loop = &loop};
    struct outcome a;
    char addr[64], err[FL_ERRMSG_SIZE];
    long n;
    int failures = 0;
    uv_loop_init(&loop);
    REQUIRE(http_server_start(&loop, "127.0.0.1:0", &test_limits, handler, &ctx, &ctx.server,
                              err) == FL_OK);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_server_port(ctx.server));
    for (n = 0; n < 40; n++) {
        int rv;
        memset(&a, 0, sizeof a);
        if (n % 2 == 1) {
            http_client_close_idle(&loop); /* odd rounds start on a fresh connection */
            run_for(&loop, 1);
        }
        fl_alloc_fault_set(n);
        rv = http_client_request(&loop, addr, "PUT", "/echo?x=1", "X-Test: f\r\n", "payload", 7,
                                 2000, on_client, &a);
        if (rv == FL_OK) {
            run_until(&loop, &a.called);
            CHECK_EQ_INT(a.called, 1);
        } else {
            CHECK_EQ_INT(rv, FL_ENOMEM);
        }
        fl_alloc_fault_clear();
        run_for(&loop, 5);
        failures += rv != FL_OK || a.err != FL_OK || a.status != 200;
        /* Everything works again. */
        memset(&a, 0, sizeof a);
        CHECK_OK(
            http_client_request(&loop, addr, "GET", "/echo", NULL, NULL, 0, 5000, on_client, &a));
        run_until(&loop, &a.called);
        CHECK_EQ_INT(a.err, FL_OK);
        CHECK_EQ_INT(a.status, 200);
    }
    CHECK(failures > 10);
    stop_and_close(&loop, ctx.server);
}

/* A run that hangs (the whole file takes seconds) is reported with where it
 * is stuck instead of silently running into ctest's timeout. */
static void on_watchdog(int sig)
{
    static const char msg[] = "test_http: still running after 120 s; stuck here:\n";
    void *frames[64];
    int n = backtrace(frames, 64);
    (void)sig;
    (void)!write(2, msg, sizeof msg - 1);
    backtrace_symbols_fd(frames, n, 2);
    _exit(3);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_watchdog);
    alarm(120);
    RUN(query_params);
    RUN(start_errors);
    RUN(get_put_with_bodies);
    RUN(keep_alive_and_close);
    RUN(pipelined_in_order);
    RUN(deferred_response);
    RUN(chunked_request_body);
    RUN(expect_continue);
    RUN(too_big_413);
    RUN(garbage_400);
    RUN(bad_targets_400);
    RUN(error_messages_stay_json);
    RUN(drop_closes_without_answer);
    RUN(headers_too_big_431);
    RUN(client_gone_before_deferred_response);
    RUN(idle_timeout);
    RUN(request_deadlines_408);
    RUN(too_many_connections);
    RUN(random_garbage_and_truncation);
    RUN(httpc_against_scripted_servers);
    RUN(httpc_refused_and_timeout);
    RUN(async_client_against_server);
    RUN(async_client_errors);
    RUN(async_client_scripted);
    RUN(async_pool_connection_closed_by_server);
    RUN(async_client_resends_only_repeatable_writes);
    RUN(allocation_fault_sweep);
    return check_summary();
}
