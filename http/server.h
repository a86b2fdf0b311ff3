/* The HTTP/1.1 server of the node's JSON API, on the node's libuv loop.
 *
 * Parsing is http_parser's (never by hand); this module adds connections,
 * limits, keep-alive and the one-request-at-a-time discipline:
 *
 *   - keep-alive by default for HTTP/1.1, "Connection: close" and HTTP/1.0
 *     (without "Connection: keep-alive") are honoured;
 *   - one request at a time per connection: the server stops reading while a
 *     request is with the handler and resumes once the response is written;
 *     pipelined bytes that were already read are parsed then, so responses
 *     come back in request order;
 *   - Content-Length and chunked request bodies; the body is buffered whole
 *     and bounded by http_limits.max_body;
 *   - limit violations are answered by the server itself with a JSON error
 *     {"error":{"code":...,"message":...}} and "Connection: close":
 *     body too large -> 413 "too_big", malformed request -> 400 "bad_request",
 *     request line plus headers too large or too many headers -> 431
 *     "headers_too_big"; a connection beyond max_conns gets a best-effort 503
 *     and is closed at once; a connection idle for idle_timeout_ms is closed;
 *   - deadlines that no trickle of bytes extends (slow clients): a request's
 *     line and headers must all arrive within header_timeout_ms of its first
 *     byte, its body within body_timeout_ms of the headers' end, else 408
 *     "request_timeout" and the connection is closed;
 *   - the request target must be origin-form: a path starting with '/' (and
 *     a query), visible ASCII only (0x21..0x7E), no fragment ('#'); "*" only
 *     for OPTIONS. Anything else (absolute form "http://h/p", authority form,
 *     control or raw non-ASCII bytes, a bad %-escape or %00 in the path) is
 *     a 400 "bad_request" from the server itself, before the handler, so
 *     nothing is routed or relayed on a target the server would not serve;
 *   - error messages are JSON strings, so what a message quotes from the
 *     request is escaped (bytes that are not UTF-8 become the text \xHH)
 *     and the status stays the one asked for;
 *   - after a final response the server shuts down its sending side and
 *     drains what the peer still sends for a short while before closing
 *     (a "lingering close"), so the peer reads the response instead of a
 *     reset even when it was still sending a body.
 *
 * Threading: everything runs on the loop's thread. The process must ignore
 * SIGPIPE (libuv writes with write(2), which raises it on a dead peer).
 * Memory: all through fl_malloc/fl_free. */
#ifndef FL_HTTP_SERVER_H
#define FL_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <jansson.h>
#include <uv.h>

#include "tls/creds.h"

/* Limits; a zero field takes the default. */
struct http_limits {
    size_t max_body;            /* request body bytes; default 1 MiB */
    size_t max_header;          /* request line + header bytes in total; default 16 KiB */
    unsigned max_conns;         /* open connections; default 4096 */
    unsigned max_conns_per_ip;  /* open connections from one address; default 1024 */
    unsigned idle_timeout_ms;   /* close a connection idle this long; default 60000 */
    unsigned header_timeout_ms; /* a request's line and headers, from its first byte; 10000 */
    unsigned body_timeout_ms;   /* its body, from the end of the headers; default 60000 */
    struct tls_creds *tls;      /* HTTPS with these credentials (not owned); NULL: plain HTTP */
};

#define HTTP_DEFAULT_MAX_BODY         (1024u * 1024u)
#define HTTP_DEFAULT_MAX_HEADER       (16u * 1024u)
#define HTTP_DEFAULT_MAX_CONNS        4096u
#define HTTP_DEFAULT_MAX_CONNS_PER_IP 1024u
#define HTTP_DEFAULT_IDLE_TIMEOUT     60000u
#define HTTP_DEFAULT_HEADER_TIMEOUT   10000u
#define HTTP_DEFAULT_BODY_TIMEOUT     60000u
#define HTTP_MAX_HEADERS              64 /* headers kept per request; more is a 431 */

struct http_conn;

struct http_header {
    const char *name;  /* as sent (case preserved), NUL-terminated */
    const char *value; /* surrounding blanks removed, NUL-terminated */
};

/* One request, allocated by the server and handed to the handler, which owns
 * it until it passes it to exactly one of the http_respond* functions or
 * http_drop (now or from a later loop iteration). Every pointer below stays
 * valid until then. */
struct http_request {
    int method;     /* enum http_method from http_parser.h */
    int http_major; /* protocol version of the request */
    int http_minor;
    char *path;                  /* path without query, percent-decoded; NUL-terminated */
    char *query;                 /* raw query string after '?', or "" */
    char *target;                /* origin-form target as sent (not decoded), for relaying */
    uint8_t *body;               /* body bytes (never NULL), NUL-terminated too */
    size_t body_len;             /* body length without that NUL */
    char remote[64];             /* peer "ip:port" */
    int peer_role;               /* HTTPS: the client certificate's role (pki/), 0 if none */
    char peer_name[64];          /* ... and its name */
    void *data;                  /* free for the handler */
    char scratch[96];            /* free for the handler; lives as long as the request */
    struct http_header *headers; /* n_headers entries, in arrival order */
    unsigned n_headers;

    /* Private. */
    struct http_conn *conn_; /* NULL once the connection has closed */
    int keep_alive_;
    char *raw_; /* one block holding url, headers, path, query */
    size_t raw_len_;
    size_t raw_cap_;
    size_t url_len_;
    size_t body_cap_;
    uint8_t empty_body_[1];
    struct http_header hdr_[HTTP_MAX_HEADERS];
    size_t hoff_[HTTP_MAX_HEADERS][2]; /* name/value offsets into raw_ while parsing */
};

/* Value of the first header called `name` (ASCII case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *r, const char *name);

/* Look up `name` in the query string. Keys and values are percent-decoded and
 * '+' means a space. Returns 1 if present (out holds the value, "" for "?key"
 * or "?key="), 0 if absent (out = ""), -1 if present but malformed
 * (bad %-escape, %00) or longer than outlen - 1 bytes (out = ""). Callers
 * that test only for presence should compare with 1. */
int http_query_param(const struct http_request *r, const char *name, char *out, size_t outlen);

/* Called once per complete request; the handler owns req (see above). */
typedef void (*http_handler_cb)(void *data, struct http_request *req);

struct http_server;

struct http_stats {
    uint64_t requests;        /* complete requests handed to the handler */
    uint64_t rejected;        /* answered by the limits: 400, 413, 429, 431, 503 */
    uint64_t rejected_per_ip; /* of those, connections over max_conns_per_ip (429) */
    uint64_t timed_out;       /* of those, requests past their header or body deadline (408) */
    uint64_t tls_refused; /* HTTPS connections whose TLS failed (garbage, a refused certificate) */
    uint64_t dropped;     /* requests whose connection was closed unanswered (http_drop) */
    uint64_t accepted;    /* connections accepted (including rejected ones) */
    unsigned open_conns;  /* connections open now */
};

/* Listen on addr ("ip:port" IPv4, port 0 = any free port; ":port" = all
 * interfaces) with SO_REUSEADDR (libuv sets it when binding) and a backlog of
 * 511. lim may be NULL (all defaults). On success *out is the server, to be
 * released with http_server_stop. Errors: FL_EINVAL (malformed addr),
 * FL_ENET (bind or listen failed, e.g. address in use), FL_ENOMEM; errmsg
 * (FL_ERRMSG_SIZE, may be NULL) gets the detail. */
int http_server_start(uv_loop_t *loop, const char *addr, const struct http_limits *lim,
                      http_handler_cb cb, void *data, struct http_server **out, char *errmsg);

/* The port actually bound (useful after binding port 0). */
int http_server_port(const struct http_server *s);

void http_server_stats(const struct http_server *s, struct http_stats *out);

/* Close the listener and every connection. Requests still with the handler
 * are detached: responding to them later only frees them. cb (may be NULL)
 * is called once, from the loop, after every handle is closed and the server
 * freed. No call on s is allowed after this one. */
void http_server_stop(struct http_server *s, void (*cb)(void *data), void *data);

/* Respond to req, exactly once per request, and free req. content_type may
 * be NULL (no Content-Type header); body is copied. A response to HEAD
 * carries the Content-Length of body but no body. If the connection died
 * meanwhile the call only frees req. */
void http_respond(struct http_request *req, int status, const char *content_type, const void *body,
                  size_t len);

/* Respond with body serialized compactly plus "\n" as application/json.
 * Steals the reference to body (NULL or unserializable -> 500). */
void http_respond_json(struct http_request *req, int status, json_t *body);

/* Respond with {"error":{"code":code,"message":<formatted>}}. The message
 * is cut at 1023 bytes; bytes in it that are not well-formed UTF-8 (say, a
 * path segment "%ff" quoted back) are written as the text \xHH (common/utf8.h),
 * so the answer is always JSON with `status`. code must be UTF-8. */
void http_respond_error(struct http_request *req, int status, const char *code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* Close req's connection at once without sending any response (the peer
 * sees the connection end before any byte of a response) and free req.
 * For fault injection in tests; if the connection died meanwhile it only
 * frees req. Like the http_respond* functions it ends the handler's
 * ownership of req, from the handler callback or any later loop iteration;
 * requests pipelined behind it on that connection are dropped too, other
 * connections are not touched. */
void http_drop(struct http_request *req);

#endif
