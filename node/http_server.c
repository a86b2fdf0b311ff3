/* HTTP/1.1 server: connections, limits and keep-alive around http_parser.
 *
 * Each connection is an explicit state machine (allowed transitions are
 * checked in set_state):
 *
 *   READING --complete request--> HANDLING --http_respond--> WRITING
 *   READING --limit violated----> WRITING (server's own error, then close)
 *   WRITING --keep-alive-> READING      WRITING --close--> LINGERING
 *   any --error, EOF, idle, stop--> CLOSING --both handles closed--> freed
 *
 * The parser is paused in on_message_complete, so http_parser_execute stops
 * right after one request; bytes after it (pipelining) wait in `unparsed`
 * until the response is written. A connection is freed only in the close
 * callback of the last of its two handles (socket and timer); a request with
 * the handler when its connection closes is detached (conn_ = NULL) and
 * freed by http_respond. */
#include "node/http_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/utf8.h"

#define READ_BUF_SIZE    (64 * 1024)
#define LISTEN_BACKLOG   511
#define LINGER_MS        2000              /* drain the peer this long after a final response */
#define LINGER_MAX_BYTES (4 * 1024 * 1024) /* ... or this many bytes, whichever first */
#define WBUF_KEEP        (64 * 1024)       /* keep a write buffer this big for the next response */

enum conn_state {
    CONN_READING,   /* waiting for, or parsing, a request */
    CONN_HANDLING,  /* a request is with the handler; not reading */
    CONN_WRITING,   /* a response is being written; not reading */
    CONN_LINGERING, /* final response sent, sending side shut down; draining input */
    CONN_CLOSING,   /* uv_close called on both handles */
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle timeout while READING, linger deadline while LINGERING */
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    struct http_server *server;
    struct http_conn *prev, *next;
    enum conn_state state;
    int open_handles;
    http_parser parser;
    struct http_request *cur;     /* request being parsed */
    struct http_request *pending; /* request with the handler (HANDLING) */
    struct fl_buf unparsed;       /* read but not yet parsed (pipelined) bytes ... */
    size_t unparsed_off;          /* ... from this offset */
    struct fl_buf wbuf;           /* the response being written */
    int close_after_write;
    int reject_status; /* set by a parser callback on a limit violation */
    const char *reject_code;
    const char *reject_msg;
    int in_value;     /* the last header callback was on_header_value */
    int headers_done; /* later header callbacks are chunked trailers: ignored */
    size_t header_bytes;
    size_t lingered;
    uint64_t last_active;
    char remote[64];
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_tcp_t spare; /* accepts a connection to refuse it when allocation fails */
    int spare_busy;
    struct http_limits lim;
    http_handler_cb cb;
    void *data;
    struct http_conn *conns;
    struct http_stats stats;
    unsigned refusing; /* refused connections still closing */
    int listener_closed;
    int stopping;
    void (*stop_cb)(void *data);
    void *stop_data;
    char readbuf[READ_BUF_SIZE]; /* shared: a read is parsed before the next one */
};

/* ------------------------------------------------------------ helpers */

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch = lower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Decode one character of a percent-encoded string at src[*i] (i < len),
 * advancing *i; '+' is a space if plus. Returns the byte, or -1 when the
 * escape is malformed or decodes to NUL. */
static int decode_char(const char *src, size_t len, size_t *i, int plus)
{
    int ch = (unsigned char)src[*i], hi, lo;
    if (ch == '+' && plus) {
        (*i)++;
        return ' ';
    }
    if (ch != '%') {
        (*i)++;
        return ch;
    }
    if (*i + 2 >= len) {
        return -1;
    }
    hi = hexval((unsigned char)src[*i + 1]);
    lo = hexval((unsigned char)src[*i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        return -1;
    }
    *i += 3;
    return hi * 16 + lo;
}

/* Decode src[0..len) into out (room for len + 1 bytes). Returns the decoded
 * length or -1 if malformed. */
static long decode(const char *src, size_t len, int plus, char *out)
{
    size_t i = 0, n = 0;
    while (i < len) {
        int ch = decode_char(src, len, &i, plus);
        if (ch < 0) {
            return -1;
        }
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return (long)n;
}

static const char *reason(int status)
{
    const char *r = http_status_str((enum http_status)status);
    return r == NULL || r[0] == '<' ? "Status" : r;
}

static void request_free(struct http_request *r)
{
    if (r == NULL) {
        return;
    }
    if (r->body != r->empty_body_) {
        fl_free(r->body);
    }
    fl_free(r->raw_);
    fl_free(r);
}

static int raw_append(struct http_request *r, const void *p, size_t n)
{
    if (r->raw_len_ + n > r->raw_cap_) {
        size_t cap = r->raw_cap_ ? r->raw_cap_ : 256;
        char *q;
        while (cap < r->raw_len_ + n) {
            cap *= 2;
        }
        q = fl_realloc(r->raw_, cap);
        if (q == NULL) {
            return FL_ENOMEM;
        }
        r->raw_ = q;
        r->raw_cap_ = cap;
    }
    memcpy(r->raw_ + r->raw_len_, p, n);
    r->raw_len_ += n;
    return FL_OK;
}

/* ------------------------------------------------------------ state */

static void set_state(struct http_conn *c, enum conn_state to)
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

static void maybe_finish_stop(struct http_server *s)
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
    fl_free(c);
    maybe_finish_stop(s);
}

static void conn_close(struct http_conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    set_state(c, CONN_CLOSING);
    if (c->pending != NULL) {
        c->pending->conn_ = NULL; /* http_respond will only free it */
        c->pending = NULL;
    }
    request_free(c->cur);
    c->cur = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* ------------------------------------------------------------ writing */

static void linger(struct http_conn *c);
static void resume(struct http_conn *c);

static void on_written(uv_write_t *w, int status)
{
    struct http_conn *c = w->data;
    if (c->wbuf.cap > WBUF_KEEP) {
        fl_buf_close(&c->wbuf);
    } else {
        fl_buf_reset(&c->wbuf);
    }
    if (c->state == CONN_CLOSING) {
        return; /* cancelled by conn_close */
    }
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write || c->server->stopping) {
        linger(c);
        return;
    }
    set_state(c, CONN_READING);
    http_parser_pause(&c->parser, 0);
    resume(c);
}

/* Serialize and send one response; the connection goes to WRITING. */
static void write_response(struct http_conn *c, int status, const char *ctype, const void *body,
                           size_t len, int keep_alive, int head, int http10)
{
    int no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
    int rv;
    uv_buf_t b;
    fl_buf_reset(&c->wbuf);
    rv = fl_buf_printf(&c->wbuf, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (rv == FL_OK && ctype != NULL) {
        rv = fl_buf_printf(&c->wbuf, "Content-Type: %s\r\n", ctype);
    }
    if (rv == FL_OK && !no_body) {
        rv = fl_buf_printf(&c->wbuf, "Content-Length: %zu\r\n", len);
    }
    if (rv == FL_OK) {
        const char *conn = !keep_alive ? "Connection: close\r\n"
                           : http10    ? "Connection: keep-alive\r\n"
                                       : "";
        rv = fl_buf_printf(&c->wbuf, "%s\r\n", conn);
    }
    if (rv == FL_OK && !no_body && !head && len > 0) {
        rv = fl_buf_append(&c->wbuf, body, len);
    }
    if (rv != FL_OK) {
        conn_close(c);
        return;
    }
    c->close_after_write = !keep_alive;
    set_state(c, CONN_WRITING);
    c->write_req.data = c;
    b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        conn_close(c);
    }
}

/* The server's own answer to a request that broke a limit or did not parse:
 * a JSON error, then close. */
static void reject_request(struct http_conn *c, int status, const char *code, const char *msg)
{
    char body[256];
    int n;
    c->server->stats.rejected++;
    request_free(c->cur);
    c->cur = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                 msg);
    write_response(c, status, "application/json", body, (size_t)n, 0, 0, 0);
}

/* ------------------------------------------------------------ parsing */

static void reject_in_callback(struct http_conn *c, int status, const char *code, const char *msg)
{
    if (c->reject_status == 0) {
        c->reject_status = status;
        c->reject_code = code;
        c->reject_msg = msg;
    }
}

/* Account n more bytes of request line and headers; 0 if within the limit. */
static int header_budget(struct http_conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->server->lim.max_header) {
        reject_in_callback(c, 431, "headers_too_big", "request line and headers are too large");
        return -1;
    }
    return 0;
}

static int no_memory(struct http_conn *c)
{
    reject_in_callback(c, 503, "no_memory", "out of memory");
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    request_free(c->cur);
    c->cur = fl_calloc(1, sizeof *c->cur);
    if (c->cur == NULL) {
        return no_memory(c);
    }
    c->cur->conn_ = c;
    c->cur->body = c->cur->empty_body_;
    memcpy(c->cur->remote, c->remote, sizeof c->remote);
    c->header_bytes = 0;
    c->in_value = 0;
    c->headers_done = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (header_budget(c, len) != 0) {
        return -1;
    }
    if (raw_append(c->cur, at, len) != FL_OK) {
        return no_memory(c);
    }
    c->cur->url_len_ += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *r = c->cur;
    if (header_budget(c, len + 2) != 0) {
        return -1;
    }
    if (c->headers_done) {
        return 0;
    }
    if (r->n_headers == 0 || c->in_value) {
        /* A new header: terminate the url or the previous value. */
        if (r->n_headers == HTTP_MAX_HEADERS) {
            reject_in_callback(c, 431, "headers_too_big", "too many headers");
            return -1;
        }
        if (raw_append(r, "", 1) != FL_OK) {
            return no_memory(c);
        }
        r->hoff_[r->n_headers][0] = r->raw_len_;
        r->hoff_[r->n_headers][1] = 0;
        r->n_headers++;
        c->in_value = 0;
    }
    return raw_append(r, at, len) == FL_OK ? 0 : no_memory(c);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *r = c->cur;
    if (header_budget(c, len) != 0) {
        return -1;
    }
    if (c->headers_done) {
        return 0;
    }
    if (!c->in_value) {
        if (raw_append(r, "", 1) != FL_OK) {
            return no_memory(c);
        }
        r->hoff_[r->n_headers - 1][1] = r->raw_len_;
        c->in_value = 1;
    }
    return raw_append(r, at, len) == FL_OK ? 0 : no_memory(c);
}

static int raw_reserve(struct http_request *r, size_t n)
{
    char *q;
    if (r->raw_len_ + n <= r->raw_cap_) {
        return FL_OK;
    }
    q = fl_realloc(r->raw_, r->raw_len_ + n);
    if (q == NULL) {
        return FL_ENOMEM;
    }
    r->raw_ = q;
    r->raw_cap_ = r->raw_len_ + n;
    return FL_OK;
}

/* Why the request target t[0..n) is refused, or NULL. Only the origin form
 * is served: a path starting with '/' and an optional query, in visible
 * ASCII (0x21..0x7E: anything else must be percent-encoded), without a
 * fragment; and "*" alone for OPTIONS. The absolute form ("http://h/p", for
 * proxies) and the authority form ("h:443", for CONNECT) are refused, so a
 * follower never relays a target the leader would not take as it is. */
static const char *target_error(const char *t, size_t n, int method)
{
    if (n == 1 && t[0] == '*' && method == HTTP_OPTIONS) {
        return NULL;
    }
    if (n == 0 || t[0] != '/') {
        return "the request target must be a path starting with / (origin-form)";
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch < 0x21 || ch > 0x7E) {
            return "the request target holds a control, blank or non-ASCII byte "
                   "(percent-encode it)";
        }
        if (ch == '#') {
            return "the request target must not hold a fragment (#)";
        }
    }
    return NULL;
}

/* Append the decoded path and the raw query of the url (raw_[0..url_len_))
 * to raw_ and point r->path and r->query at them. */
static int split_url(struct http_conn *c)
{
    struct http_request *r = c->cur;
    struct http_parser_url u;
    size_t po = 0, plen = 0, qo = 0, qlen = 0;
    const char *why = target_error(r->raw_, r->url_len_, r->method);
    long n;
    if (why != NULL) {
        reject_in_callback(c, 400, "bad_request", why);
        return -1;
    }
    http_parser_url_init(&u);
    if (http_parser_parse_url(r->raw_, r->url_len_, 0, &u) != 0) {
        reject_in_callback(c, 400, "bad_request", "malformed request target");
        return -1;
    }
    if (u.field_set & (1 << UF_PATH)) {
        po = u.field_data[UF_PATH].off;
        plen = u.field_data[UF_PATH].len;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        qo = u.field_data[UF_QUERY].off;
        qlen = u.field_data[UF_QUERY].len;
    }
    /* One terminator for the last header, then path and query. */
    if (raw_reserve(r, 1 + (plen ? plen : 1) + 1 + qlen + 1) != FL_OK) {
        return no_memory(c);
    }
    r->raw_[r->raw_len_++] = '\0';
    if (plen == 0) {
        n = decode("/", 1, 0, r->raw_ + r->raw_len_);
    } else {
        n = decode(r->raw_ + po, plen, 0, r->raw_ + r->raw_len_);
    }
    if (n < 0) {
        reject_in_callback(c, 400, "bad_request", "malformed percent-encoding in path");
        return -1;
    }
    r->path = r->raw_ + r->raw_len_;
    r->raw_len_ += (size_t)n + 1;
    r->target = r->raw_; /* the url, terminated by the first NUL appended above */
    r->query = r->raw_ + r->raw_len_;
    memcpy(r->query, r->raw_ + qo, qlen);
    r->query[qlen] = '\0';
    r->raw_len_ += qlen + 1;
    return 0;
}

static void trim_value(char *v)
{
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        v[--n] = '\0';
    }
}

static void maybe_continue(struct http_conn *c)
{
    static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n"; /* uv_buf_t wants char * */
    const char *e = http_request_header(c->cur, "Expect");
    uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
    int rv;
    if (e == NULL || strcasecmp(e, "100-continue") != 0 || c->parser.http_minor < 1) {
        return;
    }
    /* Best effort: a client that gets nothing sends the body after a delay. */
    rv = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (rv > 0 && (size_t)rv < b.len) {
        reject_in_callback(c, 503, "busy", "could not send 100 Continue");
    }
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_request *r = c->cur;
    unsigned i;
    c->headers_done = 1;
    r->method = (int)p->method;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    if (p->content_length != ULLONG_MAX && p->content_length > c->server->lim.max_body) {
        reject_in_callback(c, 413, "too_big", "request body is too large");
        return -1;
    }
    if (split_url(c) != 0) {
        return -1;
    }
    r->headers = r->hdr_;
    for (i = 0; i < r->n_headers; i++) {
        r->hdr_[i].name = r->raw_ + r->hoff_[i][0];
        /* A header without a value callback has an empty value. */
        r->hdr_[i].value = r->hoff_[i][1] ? r->raw_ + r->hoff_[i][1] : "";
        if (r->hoff_[i][1]) {
            trim_value(r->raw_ + r->hoff_[i][1]);
        }
    }
    if (p->content_length != ULLONG_MAX && p->content_length > 0) {
        r->body = fl_malloc(p->content_length + 1);
        if (r->body == NULL) {
            r->body = r->empty_body_;
            return no_memory(c);
        }
        r->body_cap_ = p->content_length + 1;
    }
    maybe_continue(c);
    return c->reject_status ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *r = c->cur;
    if (len > c->server->lim.max_body - r->body_len) {
        reject_in_callback(c, 413, "too_big", "request body is too large");
        return -1;
    }
    if (r->body_len + len + 1 > r->body_cap_) {
        size_t cap = r->body_cap_ ? r->body_cap_ : 1024;
        uint8_t *b;
        while (cap < r->body_len + len + 1) {
            cap *= 2;
        }
        b = fl_realloc(r->body == r->empty_body_ ? NULL : r->body, cap);
        if (b == NULL) {
            return no_memory(c);
        }
        r->body = b;
        r->body_cap_ = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_request *r = c->cur;
    r->body[r->body_len] = '\0';
    r->keep_alive_ = http_should_keep_alive(p) && !p->upgrade;
    /* Stop right after this request; the rest waits for the response. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void dispatch(struct http_conn *c)
{
    struct http_request *r = c->cur;
    c->cur = NULL;
    c->pending = r;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    set_state(c, CONN_HANDLING);
    c->server->stats.requests++;
    c->server->cb(c->server->data, r); /* may respond, or stop the server, at once */
}

/* Parse data; returns the bytes used. Returns with *complete set after one
 * complete request (dispatching it is the caller's), or with the connection
 * answering a rejected request, or with all bytes used. */
static size_t parse(struct http_conn *c, const char *data, size_t len, int *complete)
{
    size_t n = http_parser_execute(&c->parser, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    *complete = 0;
    if (c->reject_status != 0) {
        reject_request(c, c->reject_status, c->reject_code, c->reject_msg);
    } else if (e == HPE_PAUSED) {
        *complete = 1;
    } else if (e == HPE_HEADER_OVERFLOW) {
        reject_request(c, 431, "headers_too_big", "request line and headers are too large");
    } else if (e != HPE_OK || n != len) {
        reject_request(c, 400, "bad_request", http_errno_description(e));
    }
    return n;
}

/* ------------------------------------------------------------ reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    buf->base = c->server->readbuf;
    buf->len = sizeof c->server->readbuf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;
    size_t n;
    int complete;
    if (nread == 0) {
        return;
    }
    if (c->state == CONN_LINGERING) {
        c->lingered += nread > 0 ? (size_t)nread : 0;
        if (nread < 0 || c->lingered > LINGER_MAX_BYTES) {
            conn_close(c);
        }
        return;
    }
    if (nread < 0) {
        conn_close(c); /* EOF or error; a partial request is dropped */
        return;
    }
    if (c->state != CONN_READING) {
        return; /* not reading: cannot happen */
    }
    c->last_active = uv_now(c->server->loop);
    n = parse(c, buf->base, (size_t)nread, &complete);
    if (complete) {
        /* Keep what follows the request for after the response. */
        if (fl_buf_append(&c->unparsed, buf->base + n, (size_t)nread - n) != FL_OK) {
            conn_close(c);
            return;
        }
        c->unparsed_off = 0;
        dispatch(c);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    uint64_t idle = c->server->lim.idle_timeout_ms;
    uint64_t elapsed = uv_now(c->server->loop) - c->last_active;
    if (c->state == CONN_LINGERING || (c->state == CONN_READING && elapsed >= idle)) {
        conn_close(c);
    } else if (c->state == CONN_READING) {
        uv_timer_start(t, on_timer, idle - elapsed, 0);
    }
}

/* Back to READING: parse what was pipelined, then read more. */
static void resume(struct http_conn *c)
{
    c->last_active = uv_now(c->server->loop);
    uv_timer_start(&c->timer, on_timer, c->server->lim.idle_timeout_ms, 0);
    if (c->unparsed_off < c->unparsed.len) {
        int complete;
        c->unparsed_off += parse(c, (const char *)c->unparsed.data + c->unparsed_off,
                                 c->unparsed.len - c->unparsed_off, &complete);
        if (complete) {
            dispatch(c); /* the rest stays for the next resume */
            return;
        }
    }
    fl_buf_close(&c->unparsed);
    c->unparsed_off = 0;
    if (c->state == CONN_READING && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    if (status < 0 && c->state != CONN_CLOSING) {
        conn_close(c);
    }
}

/* After a final response: send FIN, drain what the peer still sends (so it
 * is not answered with a reset that could destroy the response in flight),
 * close on its EOF or after LINGER_MS. */
static void linger(struct http_conn *c)
{
    set_state(c, CONN_LINGERING);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
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
    maybe_finish_stop(s);
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
    conn_close(c);
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
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    if (over_ip_limit(s, c)) {
        return;
    }
    resume(c);
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
    maybe_finish_stop(s);
}

void http_server_stop(struct http_server *s, void (*cb)(void *data), void *data)
{
    struct http_conn *c;
    s->stopping = 1;
    s->stop_cb = cb;
    s->stop_data = data;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (c = s->conns; c != NULL; c = c->next) {
        conn_close(c); /* unlinks only in its close callback */
    }
}

const char *http_request_header(const struct http_request *r, const char *name)
{
    unsigned i;
    for (i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}

/* Does the percent-encoded key src[0..len) decode to name? */
static int key_equals(const char *src, size_t len, const char *name)
{
    size_t i = 0, j = 0;
    while (i < len) {
        int ch = decode_char(src, len, &i, 1);
        if (ch < 0 || name[j] == '\0' || (unsigned char)name[j] != ch) {
            return 0;
        }
        j++;
    }
    return name[j] == '\0';
}

int http_query_param(const struct http_request *r, const char *name, char *out, size_t outlen)
{
    const char *q = r->query;
    if (outlen > 0) {
        out[0] = '\0';
    }
    while (*q != '\0') {
        size_t plen = strcspn(q, "&");
        const char *eq = memchr(q, '=', plen);
        size_t klen = eq ? (size_t)(eq - q) : plen;
        if (key_equals(q, klen, name)) {
            const char *v = eq ? eq + 1 : q + plen;
            size_t vlen = (size_t)(q + plen - v), i = 0, n = 0;
            while (i < vlen) {
                int ch = decode_char(v, vlen, &i, 1);
                if (ch < 0 || n + 1 >= outlen) {
                    if (outlen > 0) {
                        out[0] = '\0';
                    }
                    return -1;
                }
                out[n++] = (char)ch;
            }
            if (outlen == 0) {
                return -1;
            }
            out[n] = '\0';
            return 1;
        }
        q += plen + (q[plen] == '&');
    }
    return 0;
}

void http_respond(struct http_request *req, int status, const char *content_type, const void *body,
                  size_t len)
{
    struct http_conn *c = req->conn_;
    if (c != NULL) {
        assert(c->pending == req && c->state == CONN_HANDLING);
        c->pending = NULL;
        write_response(c, status, content_type, body, len, req->keep_alive_ && !c->server->stopping,
                       req->method == HTTP_HEAD, req->http_major == 1 && req->http_minor == 0);
    }
    request_free(req);
}

static int dump_to_buf(const char *p, size_t n, void *data)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

void http_respond_json(struct http_request *req, int status, json_t *body)
{
    struct fl_buf b;
    fl_buf_init(&b);
    if (body == NULL ||
        json_dump_callback(body, dump_to_buf, &b, JSON_COMPACT | JSON_ENCODE_ANY) != 0 ||
        fl_buf_append(&b, "\n", 1) != FL_OK) {
        static const char err[] = "{\"error\":{\"code\":\"internal\",\"message\":\"could not "
                                  "serialize the response\"}}\n";
        /* A handler built a body that is not JSON (a string that is not
         * UTF-8 fails json_pack, which gives NULL), or memory ran out. */
        FL_ERROR("http: the %d answer to %s could not be serialized; answering 500", status,
                 http_method_str((enum http_method)req->method));
        http_respond(req, 500, "application/json", err, sizeof err - 1);
    } else {
        http_respond(req, status, "application/json", b.data, b.len);
    }
    fl_buf_close(&b);
    json_decref(body);
}

void http_respond_error(struct http_request *req, int status, const char *code, const char *fmt,
                        ...)
{
    char msg[1024], safe[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message often quotes what the client sent (a path, a key): bytes
     * that are not UTF-8 are shown as \xHH, so the answer stays JSON with
     * its status instead of failing to serialize. */
    fl_utf8_escape(msg, safe, sizeof safe);
    http_respond_json(req, status,
                      json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", safe));
}

void http_drop(struct http_request *req)
{
    struct http_conn *c = req->conn_;
    if (c != NULL) {
        assert(c->pending == req && c->state == CONN_HANDLING);
        c->pending = NULL;
        c->server->stats.dropped++;
        conn_close(c); /* bytes read after the request are discarded with it */
    }
    request_free(req);
}
