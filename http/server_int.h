/* Private to the HTTP server's files: the server and connection objects
 * behind http/server.h, and what each file provides to the others.
 *
 *   server.c    the listener: accepting within the limits, stopping
 *   conn.c      a connection's states, reading, idle and linger timers
 *   parse.c     a request out of http_parser's callbacks; the request
 *               accessors (headers, query parameters)
 *   respond.c   writing responses, the server's own JSON errors
 *
 * Everything runs on the loop's thread. */
#ifndef FL_HTTP_SERVER_INT_H
#define FL_HTTP_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#include "common/buf.h"
#include "http/server.h"
#include "tls/tlink.h"

#define READ_BUF_SIZE    (64 * 1024)
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
    struct tlink *tls;            /* HTTPS: the connection's TLS (tls/tlink.h) */
    struct fl_buf ebuf;           /* HTTPS: wbuf encrypted, being written */
    int close_after_write;
    int reject_status; /* set by a parser callback on a limit violation */
    const char *reject_code;
    const char *reject_msg;
    int in_value;     /* the last header callback was on_header_value */
    int headers_done; /* later header callbacks are chunked trailers: ignored */
    size_t header_bytes;
    size_t lingered;
    uint64_t last_active;
    uint64_t req_started; /* loop time of the current request's first byte (0: none) */
    uint64_t headers_at;  /* loop time its headers ended (0: not yet) */
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

/* ---- server.c ---------------------------------------------------------------- */

/* Free a stopping server once its listener and every connection are closed,
 * then call its stop callback. */
void http__maybe_finish_stop(struct http_server *s);

/* ---- conn.c ------------------------------------------------------------------- */

/* Move c to state `to` (asserts the transition is allowed). */
void http__set_state(struct http_conn *c, enum conn_state to);
/* Close both handles (the request with the handler is detached); c is freed
 * in the close callback of the last one. Idempotent. */
void http__conn_close(struct http_conn *c);
/* Back to READING: parse what was pipelined, then read more. */
void http__resume(struct http_conn *c);
/* uv_write callback of a response: next request, lingering close, or close. */
void http__on_written(uv_write_t *w, int status);
/* HTTPS: send TLS bytes (handshake, alerts, close_notify) that are not a
 * response; b is emptied. */
void http__write_raw(struct http_conn *c, struct fl_buf *b);
/* Arm the timer for the nearest of the idle and the current request's
 * deadlines (a request began, or its headers ended). */
void http__arm_timer(struct http_conn *c);

/* ---- parse.c ------------------------------------------------------------------ */

/* Parse data; returns the bytes used. Returns with *complete set after one
 * complete request (dispatching it is the caller's), or with the connection
 * answering a rejected request, or with all bytes used. */
size_t http__parse(struct http_conn *c, const char *data, size_t len, int *complete);
/* Free a request (NULL is fine). */
void http__request_free(struct http_request *r);

/* ---- respond.c ---------------------------------------------------------------- */

/* The server's own answer to a request that broke a limit or did not parse:
 * a JSON error, then close. */
void http__reject_request(struct http_conn *c, int status, const char *code, const char *msg);

#endif
