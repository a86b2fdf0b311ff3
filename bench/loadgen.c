/* loadgen — closed-loop HTTP/1.1 write load for bench/run.
 *
 *   loadgen --target flotilla|etcd --addr HOST:PORT [--addr ...] --conns C
 *           [--duration S] [--warmup S] [--value-size N] [--label NAME]
 *           [--dump FILE]
 *
 * C keep-alive connections, each with exactly one request outstanding: the
 * next request on a connection is sent when the previous response has been
 * read, so C is the number of writes in flight. Connections are spread over
 * the --addr list round-robin (bench/run passes the leader only, for both
 * targets, so neither system pays for forwarding).
 *
 *   flotilla  PUT /v1/kv/bench-<conn>-<seq>   {"value":"<N bytes of x>"}
 *   etcd      POST /v3/kv/put                 {"key":"<base64>","value":"<base64>"}
 *
 * Within one run every key is new (a later run with the same connection
 * numbers rewrites earlier keys, the same way for both targets). The stored
 * value is N bytes in both cases; etcd's JSON gateway carries it base64-encoded,
 * so its request body is about 4/3 as long.
 *
 * Timeline: connect, run --warmup seconds unrecorded, then --duration seconds
 * measured, then stop sending and wait (at most DRAIN_MS) for the requests
 * still in flight. A request counts when its response completes inside the
 * measured window; its latency is from the write of its first byte to the
 * end of its response (uv_hrtime), and all of them are kept and sorted, so
 * the percentiles are exact. Responses are parsed with http_parser. A non-2xx
 * response, a failed connect, a reset or a close with a request in flight is
 * an error; the connection then reconnects after RECONNECT_MS.
 *
 * Output: "LABEL_metric: value unit" lines (writes_per_sec, p50, p99, max,
 * ok, errors), then "#" lines describing the errors, if any. --dump writes
 * "SECONDS_INTO_WINDOW LATENCY_MS" for every ok write, to find stalls.
 *
 * Exit status 0 if at least one write succeeded, 1 if none did, 2 for bad
 * usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "tls/creds.h"
#include "tls/tlink.h"

#define MAX_ADDRS    16
#define MAX_CONNS    4096
#define MAX_VALUE    (4u << 20)
#define DRAIN_MS     5000
#define RECONNECT_MS 50
#define ERR_SAMPLE   160

enum target { TARGET_FLOTILLA, TARGET_ETCD };

struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t retry;
    http_parser parser;
    struct bench *b;
    unsigned id;
    unsigned addr;
    uint64_t seq;
    uint64_t sent_ns; /* when the outstanding request was written; 0 if none */
    int open;         /* tcp handle initialised and not yet closed */
    int connected;
    int writing;   /* uv_write in progress: buf must not be reused */
    int want_send; /* response came back before the write callback */
    char *buf;     /* the request being sent */
    size_t buf_cap;
    char err_body[ERR_SAMPLE]; /* start of a non-2xx body, for the report */
    size_t err_len;
    struct tlink *tls; /* --ca: HTTPS (tls/tlink.h, the link Flotilla's own clients use) */
    struct fl_buf enc; /* the request encrypted, being written */
};

struct bench {
    uv_loop_t *loop;
    enum target target;
    struct sockaddr_storage addrs[MAX_ADDRS];
    char addr_names[MAX_ADDRS][64];
    unsigned n_addrs;
    unsigned n_conns;
    double warmup_s, duration_s;
    size_t value_size;
    const char *label;
    const char *dump;      /* --dump FILE: every measured write, in completion order */
    struct tls_creds *tls; /* --ca FILE: HTTPS, the server checked against that CA */

    char *value; /* the value as sent: N x's, or their base64 */
    size_t value_len;
    http_parser_settings settings;
    struct conn *conns;
    uv_timer_t phase;

    enum { PHASE_WARMUP, PHASE_MEASURE, PHASE_DRAIN, PHASE_DONE } state;
    uint64_t t_start, t_end; /* measured window, ns */

    uint64_t *lat; /* latencies of the ok writes in the window, ns */
    uint64_t *at;  /* with --dump: when each of them completed, ns */
    size_t n_lat, cap_lat;
    uint64_t errors, warmup_errors, transport_errors, unfinished;
    uint64_t status_count[600];
    char status_sample[600][ERR_SAMPLE];
    char transport_sample[ERR_SAMPLE];
};

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        die("out of memory");
    }
    return p;
}

/* ------------------------------------------------------------ requests */

static size_t base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* Append the n bytes at s to c->buf at *at. */
static void put(struct conn *c, size_t *at, const char *s, size_t n)
{
    memcpy(c->buf + *at, s, n);
    *at += n;
}

/* Build the next request of c into c->buf; returns its length. */
static size_t build_request(struct conn *c)
{
    static const char f_open[] = "{\"value\":\"", e_open[] = "{\"key\":\"",
                      e_mid[] = "\",\"value\":\"", end[] = "\"}";
    struct bench *b = c->b;
    char key[64], key64[96];
    size_t klen = (size_t)snprintf(key, sizeof key, "bench-%u-%" PRIu64, c->id, c->seq++);
    size_t need = b->value_len + 512;
    size_t n, body;

    if (c->buf_cap < need) {
        free(c->buf);
        c->buf = xmalloc(need);
        c->buf_cap = need;
    }
    if (b->target == TARGET_FLOTILLA) {
        /* Writes need an API token (docs/SECURITY.md): $FLOTILLA_TOKEN. */
        const char *tok = getenv("FLOTILLA_TOKEN");
        body = strlen(f_open) + b->value_len + strlen(end);
        n = (size_t)snprintf(c->buf, c->buf_cap,
                             "PUT /v1/kv/%s HTTP/1.1\r\nHost: %s\r\n%s%.200s%s"
                             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                             key, b->addr_names[c->addr], tok ? "X-Flotilla-Token: " : "",
                             tok ? tok : "", tok ? "\r\n" : "", body);
        put(c, &n, f_open, strlen(f_open));
    } else {
        size_t k64 = base64((const unsigned char *)key, klen, key64);
        body = strlen(e_open) + k64 + strlen(e_mid) + b->value_len + strlen(end);
        n = (size_t)snprintf(c->buf, c->buf_cap,
                             "POST /v3/kv/put HTTP/1.1\r\nHost: %s\r\n"
                             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                             b->addr_names[c->addr], body);
        put(c, &n, e_open, strlen(e_open));
        put(c, &n, key64, k64);
        put(c, &n, e_mid, strlen(e_mid));
    }
    put(c, &n, b->value, b->value_len);
    put(c, &n, end, strlen(end));
    return n;
}

/* ------------------------------------------------------------ connections */

static void conn_start(struct conn *c);
static void conn_send(struct conn *c);
static void maybe_finish(struct bench *b);

static void record_error(struct bench *b, int status, const char *sample, size_t len)
{
    if (b->state == PHASE_WARMUP) {
        b->warmup_errors++;
        return;
    }
    if (b->state != PHASE_MEASURE) {
        return;
    }
    b->errors++;
    if (status == 0) {
        b->transport_errors++;
        if (b->transport_sample[0] == '\0') {
            snprintf(b->transport_sample, ERR_SAMPLE, "%.*s", (int)len, sample);
        }
        return;
    }
    b->status_count[status]++;
    if (b->status_sample[status][0] == '\0') {
        snprintf(b->status_sample[status], ERR_SAMPLE, "%.*s", (int)len, sample);
    }
}

static void record_ok(struct bench *b, uint64_t lat)
{
    if (b->state != PHASE_MEASURE) {
        return;
    }
    if (b->n_lat == b->cap_lat) {
        b->cap_lat = b->cap_lat ? b->cap_lat * 2 : 1u << 16;
        b->lat = realloc(b->lat, b->cap_lat * sizeof *b->lat);
        if (b->lat == NULL) {
            die("out of memory");
        }
        if (b->dump != NULL && (b->at = realloc(b->at, b->cap_lat * sizeof *b->at)) == NULL) {
            die("out of memory");
        }
    }
    if (b->dump != NULL) {
        b->at[b->n_lat] = uv_hrtime() - b->t_start;
    }
    b->lat[b->n_lat++] = lat;
}

static void on_retry(uv_timer_t *t)
{
    conn_start(t->data);
}

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->open = 0;
    tlink_destroy(c->tls);
    c->tls = NULL;
    if (c->b->state <= PHASE_MEASURE) {
        uv_timer_start(&c->retry, on_retry, RECONNECT_MS, 0);
    } else {
        maybe_finish(c->b);
    }
}

/* Drop the connection; a request still in flight is a transport error. */
static void conn_fail(struct conn *c, const char *why)
{
    if (c->sent_ns != 0) {
        record_error(c->b, 0, why, strlen(why));
        c->sent_ns = 0;
    }
    c->connected = 0;
    c->want_send = 0;
    if (c->open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char slab[65536];
    buf->base = slab;
    buf->len = sizeof slab;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (p->status_code / 100 != 2 && c->err_len < ERR_SAMPLE - 1) {
        size_t n = ERR_SAMPLE - 1 - c->err_len;
        n = len < n ? len : n;
        memcpy(c->err_body + c->err_len, at, n);
        c->err_len += n;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    struct bench *b = c->b;
    uint64_t now = uv_hrtime();

    if (c->sent_ns == 0) {
        return 0; /* a response we did not ask for; ignore it */
    }
    if (p->status_code >= 200 && p->status_code < 300) {
        record_ok(b, now - c->sent_ns);
    } else {
        unsigned st = p->status_code < 600 ? p->status_code : 599;
        record_error(b, (int)st, c->err_body, c->err_len);
    }
    c->sent_ns = 0;
    c->err_len = 0;
    if (!http_should_keep_alive(p)) {
        conn_fail(c, "server closed the connection");
        return 0;
    }
    if (b->state != PHASE_WARMUP && b->state != PHASE_MEASURE) {
        maybe_finish(b);
        return 0;
    }
    if (c->writing) {
        c->want_send = 1;
    } else {
        conn_send(c);
    }
    return 0;
}

struct raw_write {
    uv_write_t req;
    uint8_t *data;
};

static void raw_written(uv_write_t *w, int status)
{
    struct raw_write *r = (struct raw_write *)w;
    (void)status;
    free(r->data);
    free(r);
}

/* TLS handshake bytes and alerts (not a request). */
static void write_raw(struct conn *c, struct fl_buf *b)
{
    struct raw_write *r;
    uv_buf_t ub;
    if (b->len == 0) {
        return;
    }
    r = xmalloc(sizeof *r);
    r->data = xmalloc(b->len);
    memcpy(r->data, b->data, b->len);
    ub = uv_buf_init((char *)r->data, (unsigned)b->len);
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &ub, 1, raw_written) != 0) {
        free(r->data);
        free(r);
    }
}

static void parse_response(struct conn *c, const char *data, size_t n);

/* HTTPS: decrypt; the first request goes once the link is open. */
static void on_tls_read(struct conn *c, const char *data, size_t n)
{
    struct fl_buf wire, plain;
    int was_open = tlink_state(c->tls) == TLINK_OPEN;
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    if (tlink_recv(c->tls, (const uint8_t *)data, n, &wire, &plain) != FL_OK) {
        char why[FL_ERRMSG_SIZE + 8];
        write_raw(c, &wire);
        snprintf(why, sizeof why, "TLS: %s", tlink_errmsg(c->tls));
        record_error(c->b, 0, why, strlen(why));
        conn_fail(c, why);
    } else {
        write_raw(c, &wire);
        if (!was_open && tlink_state(c->tls) == TLINK_OPEN) {
            conn_send(c);
        }
        if (plain.len > 0) {
            parse_response(c, (const char *)plain.data, plain.len);
        }
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    if (n == 0) {
        return;
    }
    if (n < 0) {
        conn_fail(c, n == UV_EOF ? "connection closed by the server" : uv_strerror((int)n));
        return;
    }
    if (c->tls != NULL) {
        on_tls_read(c, buf->base, (size_t)n);
    } else {
        parse_response(c, buf->base, (size_t)n);
    }
}

static void parse_response(struct conn *c, const char *data, size_t n)
{
    size_t done = http_parser_execute(&c->parser, &c->b->settings, data, n);
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || done != n) {
        char why[128];
        snprintf(why, sizeof why, "bad response: %s",
                 http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
        conn_fail(c, why);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    c->writing = 0;
    if (status < 0) {
        if (status != UV_ECANCELED) {
            conn_fail(c, uv_strerror(status));
        }
        return;
    }
    if (c->want_send) {
        c->want_send = 0;
        conn_send(c);
    }
}

static void conn_send(struct conn *c)
{
    uv_buf_t buf;
    int rv;
    buf.len = build_request(c);
    buf.base = c->buf;
    if (c->tls != NULL) {
        fl_buf_reset(&c->enc);
        if (tlink_send(c->tls, (const uint8_t *)c->buf, buf.len, &c->enc) != FL_OK) {
            conn_fail(c, "TLS");
            return;
        }
        buf.len = c->enc.len;
        buf.base = (char *)c->enc.data;
    }
    c->writing = 1;
    c->sent_ns = uv_hrtime();
    rv = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rv != 0) {
        c->writing = 0;
        conn_fail(c, uv_strerror(rv));
    }
}

static void on_connect(uv_connect_t *r, int status)
{
    struct conn *c = r->data;
    int rv;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof why, "connect %s: %s", c->b->addr_names[c->addr], uv_strerror(status));
        record_error(c->b, 0, why, strlen(why));
        conn_fail(c, why);
        return;
    }
    if (c->b->state > PHASE_MEASURE) {
        conn_fail(c, "");
        return;
    }
    c->connected = 1;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rv != 0) {
        conn_fail(c, uv_strerror(rv));
        return;
    }
    if (c->b->tls != NULL) {
        struct tlink_config tc = {c->b->tls, TLINK_HTTPS, NULL, NULL};
        struct fl_buf wire;
        fl_buf_init(&wire);
        if (tlink_create(&tc, 1, &c->tls, NULL) != FL_OK || tlink_start(c->tls, &wire) != FL_OK) {
            fl_buf_close(&wire);
            conn_fail(c, "TLS: cannot start");
            return;
        }
        write_raw(c, &wire);
        fl_buf_close(&wire);
        return; /* the request goes once the link is open */
    }
    conn_send(c);
}

static void conn_start(struct conn *c)
{
    struct bench *b = c->b;
    int rv;
    if (b->state > PHASE_MEASURE) {
        maybe_finish(b);
        return;
    }
    uv_tcp_init(b->loop, &c->tcp);
    c->tcp.data = c;
    c->open = 1;
    c->connect_req.data = c;
    c->write_req.data = c;
    rv = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&b->addrs[c->addr],
                        on_connect);
    if (rv != 0) {
        char why[128];
        snprintf(why, sizeof why, "connect %s: %s", b->addr_names[c->addr], uv_strerror(rv));
        record_error(b, 0, why, strlen(why));
        conn_fail(c, why);
    }
}

/* ------------------------------------------------------------ phases */

/* In the drain phase: once no request is in flight, close everything. */
static void maybe_finish(struct bench *b)
{
    if (b->state != PHASE_DRAIN) {
        return;
    }
    for (unsigned i = 0; i < b->n_conns; i++) {
        if (b->conns[i].sent_ns != 0) {
            return;
        }
    }
    b->state = PHASE_DONE;
    uv_timer_stop(&b->phase);
    for (unsigned i = 0; i < b->n_conns; i++) {
        struct conn *c = &b->conns[i];
        uv_timer_stop(&c->retry);
        if (c->open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
            uv_close((uv_handle_t *)&c->tcp, NULL);
        }
    }
}

static void on_phase(uv_timer_t *t)
{
    struct bench *b = t->data;
    switch (b->state) {
    case PHASE_WARMUP:
        b->state = PHASE_MEASURE;
        b->t_start = uv_hrtime();
        uv_timer_start(&b->phase, on_phase, (uint64_t)(b->duration_s * 1000), 0);
        break;
    case PHASE_MEASURE:
        b->t_end = uv_hrtime();
        b->state = PHASE_DRAIN;
        for (unsigned i = 0; i < b->n_conns; i++) {
            uv_timer_stop(&b->conns[i].retry);
        }
        uv_timer_start(&b->phase, on_phase, DRAIN_MS, 0);
        maybe_finish(b);
        break;
    case PHASE_DRAIN:
        for (unsigned i = 0; i < b->n_conns; i++) {
            if (b->conns[i].sent_ns != 0) {
                b->unfinished++;
                b->conns[i].sent_ns = 0;
            }
        }
        maybe_finish(b);
        break;
    case PHASE_DONE:
        break;
    }
}

/* ------------------------------------------------------------ report */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted latencies, in ms. */
static double pct_ms(const struct bench *b, double p)
{
    size_t rank;
    if (b->n_lat == 0) {
        return 0;
    }
    rank = (size_t)(p / 100.0 * (double)b->n_lat + 0.999999);
    rank = rank < 1 ? 1 : rank > b->n_lat ? b->n_lat : rank;
    return (double)b->lat[rank - 1] / 1e6;
}

static void dump(const struct bench *b)
{
    FILE *f = fopen(b->dump, "w");
    if (f == NULL) {
        fprintf(stderr, "loadgen: %s: %s\n", b->dump, strerror(errno));
        return;
    }
    for (size_t i = 0; i < b->n_lat; i++) {
        fprintf(f, "%.6f %.3f\n", (double)b->at[i] / 1e9, (double)b->lat[i] / 1e6);
    }
    fclose(f);
}

static void report(struct bench *b)
{
    double secs = (double)(b->t_end - b->t_start) / 1e9;
    const char *l = b->label;

    if (b->dump != NULL) {
        dump(b);
    }
    if (b->n_lat > 0) {
        qsort(b->lat, b->n_lat, sizeof *b->lat, cmp_u64);
    }
    printf("%s_writes_per_sec: %.0f writes/s\n", l, secs > 0 ? (double)b->n_lat / secs : 0.0);
    printf("%s_p50: %.2f ms\n", l, pct_ms(b, 50));
    printf("%s_p99: %.2f ms\n", l, pct_ms(b, 99));
    printf("%s_max: %.2f ms\n", l, pct_ms(b, 100));
    printf("%s_ok: %zu writes\n", l, b->n_lat);
    printf("%s_errors: %" PRIu64 " errors\n", l, b->errors);
    for (unsigned s = 0; s < 600; s++) {
        if (b->status_count[s] != 0) {
            printf("# %s: %" PRIu64 " x HTTP %u, first: %s\n", l, b->status_count[s], s,
                   b->status_sample[s]);
        }
    }
    if (b->transport_errors != 0) {
        printf("# %s: %" PRIu64 " transport errors, first: %s\n", l, b->transport_errors,
               b->transport_sample);
    }
    if (b->warmup_errors != 0) {
        printf("# %s: %" PRIu64 " errors during the warm-up (not counted)\n", l, b->warmup_errors);
    }
    if (b->unfinished != 0) {
        printf("# %s: %" PRIu64 " requests still unanswered %d ms after the end\n", l,
               b->unfinished, DRAIN_MS);
    }
}

/* ------------------------------------------------------------ options */

static void usage(FILE *f)
{
    fputs("usage: loadgen --target flotilla|etcd --addr HOST:PORT [--addr ...] [--conns C]\n"
          "               [--duration S] [--warmup S] [--value-size N] [--label NAME]\n"
          "               [--dump FILE]\n"
          "  --target      flotilla: PUT /v1/kv/KEY; etcd: POST /v3/kv/put (JSON gateway)\n"
          "  --addr        server to send to (numeric IP); repeat to spread connections\n"
          "  --conns       connections = writes in flight (default 1)\n"
          "  --duration    measured seconds (default 5)\n"
          "  --warmup      unrecorded seconds before (default 1)\n"
          "  --value-size  bytes per value (default 64)\n"
          "  --label       metric name prefix (default the target)\n"
          "  --dump FILE   also write \"SECONDS_INTO_RUN LATENCY_MS\" per ok write\n"
          "  --ca FILE     HTTPS: check the server's certificate against this CA\n",
          f);
}

static void add_addr(struct bench *b, const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end;
    long port;
    struct sockaddr_storage *sa;

    if (b->n_addrs == MAX_ADDRS) {
        die("at most %d --addr", MAX_ADDRS);
    }
    if (colon == NULL || (size_t)(colon - s) >= sizeof host || colon == s) {
        die("--addr %s: want HOST:PORT", s);
    }
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        die("--addr %s: bad port", s);
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    sa = &b->addrs[b->n_addrs];
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) != 0) {
        die("--addr %s: want a numeric IP address", s);
    }
    snprintf(b->addr_names[b->n_addrs], sizeof b->addr_names[0], "%s", s);
    b->n_addrs++;
}

static double parse_num(const char *flag, const char *s, double min, double max)
{
    char *end;
    double v;
    if (s == NULL) {
        die("%s needs a value", flag);
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        die("%s: \"%s\" is not a number in %g..%g", flag, s, min, max);
    }
    return v;
}

static void parse_args(struct bench *b, int argc, char **argv)
{
    const char *target = NULL;
    b->n_conns = 1;
    b->duration_s = 5;
    b->warmup_s = 1;
    b->value_size = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--target") == 0 && v) {
            target = v;
        } else if (strcmp(a, "--addr") == 0 && v) {
            add_addr(b, v);
        } else if (strcmp(a, "--conns") == 0) {
            b->n_conns = (unsigned)parse_num(a, v, 1, MAX_CONNS);
        } else if (strcmp(a, "--duration") == 0) {
            b->duration_s = parse_num(a, v, 0.1, 3600);
        } else if (strcmp(a, "--warmup") == 0) {
            b->warmup_s = parse_num(a, v, 0, 3600);
        } else if (strcmp(a, "--value-size") == 0) {
            b->value_size = (size_t)parse_num(a, v, 0, MAX_VALUE);
        } else if (strcmp(a, "--label") == 0 && v) {
            b->label = v;
        } else if (strcmp(a, "--dump") == 0 && v) {
            b->dump = v;
        } else if (strcmp(a, "--ca") == 0 && v) {
            char err[FL_ERRMSG_SIZE];
            if (tls_creds_load_ca(v, &b->tls, err) != FL_OK) {
                die("--ca: %s", err);
            }
        } else {
            usage(stderr);
            die("bad argument: %s", a);
        }
        i++;
    }
    if (target == NULL || b->n_addrs == 0) {
        usage(stderr);
        die("--target and --addr are required");
    }
    if (strcmp(target, "flotilla") == 0) {
        b->target = TARGET_FLOTILLA;
    } else if (strcmp(target, "etcd") == 0) {
        b->target = TARGET_ETCD;
    } else {
        die("--target must be flotilla or etcd");
    }
    if (b->label == NULL) {
        b->label = target;
    }
}

static void make_value(struct bench *b)
{
    char *raw = xmalloc(b->value_size + 1);
    memset(raw, 'x', b->value_size);
    raw[b->value_size] = '\0';
    if (b->target == TARGET_FLOTILLA) {
        b->value = raw;
        b->value_len = b->value_size;
        return;
    }
    b->value = xmalloc(b->value_size / 3 * 4 + 8);
    b->value_len = base64((const unsigned char *)raw, b->value_size, b->value);
    free(raw);
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;

    parse_args(b, argc, argv);
    make_value(b);
    b->loop = uv_default_loop();
    b->settings.on_body = on_body;
    b->settings.on_message_complete = on_message_complete;
    b->conns = calloc(b->n_conns, sizeof *b->conns);
    if (b->conns == NULL) {
        die("out of memory");
    }
    b->state = PHASE_WARMUP;
    uv_timer_init(b->loop, &b->phase);
    b->phase.data = b;
    for (unsigned i = 0; i < b->n_conns; i++) {
        struct conn *c = &b->conns[i];
        c->b = b;
        c->id = i;
        c->addr = i % b->n_addrs;
        uv_timer_init(b->loop, &c->retry);
        c->retry.data = c;
        conn_start(c);
    }
    uv_timer_start(&b->phase, on_phase, (uint64_t)(b->warmup_s * 1000), 0);
    uv_run(b->loop, UV_RUN_DEFAULT);
    /* The loop ends with every connection closed; the retry timers are
     * stopped but still open, so close them and run once more. */
    for (unsigned i = 0; i < b->n_conns; i++) {
        uv_close((uv_handle_t *)&b->conns[i].retry, NULL);
    }
    uv_close((uv_handle_t *)&b->phase, NULL);
    uv_run(b->loop, UV_RUN_DEFAULT);
    report(b);
    uv_loop_close(b->loop);
    return b->n_lat > 0 ? 0 : 1;
}
