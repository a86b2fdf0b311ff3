/* Requests of the HTTP server (http/server_int.h): a request assembled from
 * http_parser's callbacks (url, headers, body) within the limits, the
 * origin-form target check and percent-decoding of the path; and the
 * accessors a handler uses (http_request_header, http_query_param). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/err.h"
#include "http/server_int.h"

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
void http__request_free(struct http_request *r)
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
    http__request_free(c->cur);
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
    c->req_started = uv_now(c->server->loop);
    c->headers_at = 0;
    http__arm_timer(c);
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
    if (c->tls != NULL) {
        struct fl_buf w;
        fl_buf_init(&w);
        if (tlink_send(c->tls, (const uint8_t *)cont, sizeof cont - 1, &w) == FL_OK) {
            http__write_raw(c, &w);
        }
        fl_buf_close(&w);
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
    c->headers_at = uv_now(c->server->loop);
    http__arm_timer(c);
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

/* Parse data; returns the bytes used. Returns with *complete set after one
 * complete request (dispatching it is the caller's), or with the connection
 * answering a rejected request, or with all bytes used. */
size_t http__parse(struct http_conn *c, const char *data, size_t len, int *complete)
{
    size_t n = http_parser_execute(&c->parser, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    *complete = 0;
    if (c->reject_status != 0) {
        http__reject_request(c, c->reject_status, c->reject_code, c->reject_msg);
    } else if (e == HPE_PAUSED) {
        *complete = 1;
    } else if (e == HPE_HEADER_OVERFLOW) {
        http__reject_request(c, 431, "headers_too_big", "request line and headers are too large");
    } else if (e != HPE_OK || n != len) {
        http__reject_request(c, 400, "bad_request", http_errno_description(e));
    }
    return n;
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
