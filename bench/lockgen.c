/* lockgen — lock handoffs and acquire latency for bench/run locks.
 *
 *   lockgen --addr HOST:PORT --mode contended|uncontended [--clients N]
 *           [--duration S] [--warmup S] [--distinct] [--label NAME]
 *
 * One thread per client, each with its own session (TTL 30 s, no lock-delay,
 * renewed every 10 s) and one keep-alive HTTP/1.1 connection with one
 * request outstanding.
 *
 *   contended    every client loops on the one mutex bench/mutex:
 *                  PUT /v1/locks/bench/mutex {"session":ID,"wait":"10s"}
 *                  (a 202 "still waiting" is asked again), then at once
 *                  DELETE /v1/locks/bench/mutex?session=ID
 *                So the lock always has a holder and a queue, and each grant
 *                is a handoff: the release of one client grants the next
 *                waiter in the same applied entry.
 *   uncontended  the clients (one by default) loop on a lock nobody else
 *                wants: PUT without a wait, then DELETE; the same lock each
 *                time (bench/solo-<client>), or with --distinct a new one
 *                each time (bench/solo-<client>-<seq>).
 *
 * Timeline: sessions are created, --warmup seconds run unrecorded, then
 * --duration seconds are measured; a grant counts when its 200 arrives inside
 * the window. Latencies (request written to response read, CLOCK_MONOTONIC)
 * are all kept and sorted, so the percentiles are exact. At the end the
 * clients stop, release and destroy their sessions.
 *
 * Output: "LABEL_metric: value unit" lines; contended: handoffs_per_sec,
 * acquire_p50/p99 (the wait, queueing included), gap_p50/p99/max (between
 * consecutive grants of the lock: the cost of one handoff), errors;
 * uncontended: acquire_p50/p99/max, release_p50/p99, cycles_per_sec, errors.
 *
 * It links nothing of Flotilla's, like loadgen: it measures the server from
 * the outside, over the HTTP any client uses. Exit 0 if anything was
 * granted, 1 if nothing was, 2 for bad usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fsdir.h"
#include "tls/creds.h"
#include "tls/tlink.h"

#define MAX_CLIENTS  256
#define RESP_MAX     65536
#define TTL_MS       30000
#define RENEW_MS     10000
#define IO_TIMEOUT_S 30

enum mode { CONTENDED, UNCONTENDED };

struct samples {
    uint64_t *v;
    size_t n, cap;
};

struct client {
    pthread_t thread;
    unsigned id;
    int fd;
    char session[64];
    uint64_t last_renew;
    char buf[RESP_MAX];
    size_t have;        /* bytes read past the previous response */
    struct samples acq; /* acquire latency, ns */
    struct samples rel; /* release latency, ns */
    struct samples at;  /* grant arrival, ns since the window start */
    uint64_t errors, waits, seq;
    char first_error[160];
    struct tlink *tls;  /* --ca: HTTPS through tls/tlink.h */
    struct fl_buf pend; /* decrypted bytes not read yet */
};

static struct {
    struct sockaddr_in addr;
    enum mode mode;
    unsigned clients;
    double duration, warmup;
    int distinct;
    const char *label;
    struct tls_creds *tls; /* --ca FILE */
    uint64_t start, end;   /* the measured window, ns */
    atomic_int stop;
    struct client *c;
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: lockgen --addr HOST:PORT --mode contended|uncontended [--clients N]\n"
                    "               [--duration S] [--warmup S] [--distinct] [--label NAME]\n");
    exit(2);
}

static void push(struct samples *s, uint64_t v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (s->v == NULL) {
            fprintf(stderr, "lockgen: out of memory\n");
            exit(1);
        }
    }
    s->v[s->n++] = v;
}

static void fail(struct client *c, const char *what, const char *detail)
{
    c->errors++;
    if (c->first_error[0] == '\0') {
        snprintf(c->first_error, sizeof c->first_error, "%s: %.120s", what, detail);
    }
}

/* ---- HTTP/1.1 over one blocking keep-alive socket ------------------------------ */

static void disconnect(struct client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->have = 0;
    tlink_destroy(c->tls);
    c->tls = NULL;
    fl_buf_reset(&c->pend);
}

/* Read what the server sent: plaintext, decrypted with --ca. */
static ssize_t read_some(struct client *c, char *p, size_t cap)
{
    char raw[16384];
    while (c->tls != NULL && c->pend.len == 0) {
        struct fl_buf wire;
        ssize_t r = read(c->fd, raw, sizeof raw);
        int rv;
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return r;
        }
        fl_buf_init(&wire);
        rv = tlink_recv(c->tls, (const uint8_t *)raw, (size_t)r, &wire, &c->pend);
        if (wire.len > 0) {
            fl_write_all(c->fd, (const char *)wire.data, wire.len);
        }
        fl_buf_close(&wire);
        if (rv != FL_OK) {
            return -1;
        }
    }
    if (c->tls != NULL) {
        size_t n = c->pend.len < cap ? c->pend.len : cap;
        memcpy(p, c->pend.data, n);
        memmove(c->pend.data, c->pend.data + n, c->pend.len - n);
        c->pend.len -= n;
        return (ssize_t)n;
    }
    return read(c->fd, p, cap);
}

static int tls_start(struct client *c)
{
    struct tlink_config tc = {g.tls, TLINK_HTTPS, NULL, NULL};
    struct fl_buf wire;
    char raw[16384];
    int rv;
    fl_buf_init(&wire);
    rv = tlink_create(&tc, 1, &c->tls, NULL) == FL_OK && tlink_start(c->tls, &wire) == FL_OK ? 0
                                                                                             : -1;
    while (rv == 0 && tlink_state(c->tls) == TLINK_HANDSHAKE) {
        ssize_t r;
        if (wire.len > 0 && fl_write_all(c->fd, (const char *)wire.data, wire.len) != 0) {
            rv = -1;
            break;
        }
        fl_buf_reset(&wire);
        r = read(c->fd, raw, sizeof raw);
        if (r <= 0 ||
            tlink_recv(c->tls, (const uint8_t *)raw, (size_t)r, &wire, &c->pend) != FL_OK) {
            rv = -1;
        }
    }
    if (rv == 0 && wire.len > 0 && fl_write_all(c->fd, (const char *)wire.data, wire.len) != 0) {
        rv = -1;
    }
    fl_buf_close(&wire);
    return rv == 0 && tlink_state(c->tls) == TLINK_OPEN ? 0 : -1;
}

static int connect_to(struct client *c)
{
    struct timeval tv = {IO_TIMEOUT_S, 0};
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) {
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c->fd, (struct sockaddr *)&g.addr, sizeof g.addr) != 0 ||
        (g.tls != NULL && tls_start(c) != 0)) {
        disconnect(c);
        return -1;
    }
    return 0;
}

static int write_all(struct client *c, const char *p, size_t n)
{
    if (c->tls != NULL) {
        struct fl_buf enc;
        int rv;
        fl_buf_init(&enc);
        rv = tlink_send(c->tls, (const uint8_t *)p, n, &enc) == FL_OK
                 ? fl_write_all(c->fd, (const char *)enc.data, enc.len)
                 : -1;
        fl_buf_close(&enc);
        return rv;
    }
    return fl_write_all(c->fd, p, n);
}

/* One request; the status (or -1 on a transport error) and the body,
 * NUL-terminated, in c->buf. The server sends Content-Length. */
static int call(struct client *c, const char *method, const char *path, const char *body)
{
    char req[1024];
    size_t blen = body ? strlen(body) : 0, used, need;
    char *hdr_end, *cl;
    const char *tok;
    int n, status;

    if (c->fd < 0 && connect_to(c) != 0) {
        return -1;
    }
    /* Every lock route needs an API token (docs/ACL.md): $FLOTILLA_TOKEN. */
    tok = getenv("FLOTILLA_TOKEN");
    n = snprintf(
        req, sizeof req, "%s %s HTTP/1.1\r\nHost: bench\r\n%s%s%s%sContent-Length: %zu\r\n\r\n%s",
        method, path, body ? "Content-Type: application/json\r\n" : "",
        tok ? "X-Flotilla-Token: " : "", tok ? tok : "", tok ? "\r\n" : "", blen, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof req || write_all(c, req, (size_t)n) != 0) {
        disconnect(c);
        return -1;
    }
    used = c->have;
    for (;;) {
        ssize_t r;
        c->buf[used] = '\0';
        hdr_end = strstr(c->buf, "\r\n\r\n");
        if (hdr_end != NULL) {
            cl = strcasestr(c->buf, "\r\nContent-Length:");
            need = (size_t)(hdr_end + 4 - c->buf) +
                   (cl != NULL && cl < hdr_end ? strtoul(cl + 17, NULL, 10) : 0);
            if (need >= sizeof c->buf) {
                disconnect(c);
                return -1;
            }
            if (used >= need) {
                break;
            }
        }
        if (used + 1 >= sizeof c->buf) {
            disconnect(c);
            return -1;
        }
        r = read_some(c, c->buf + used, sizeof c->buf - 1 - used);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            disconnect(c);
            return -1;
        }
        used += (size_t)r;
    }
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1) {
        disconnect(c);
        return -1;
    }
    {
        int closing = strcasestr(c->buf, "\r\nConnection: close") != NULL &&
                      strcasestr(c->buf, "\r\nConnection: close") < hdr_end;
        size_t hlen = (size_t)(hdr_end + 4 - c->buf);
        /* Move the body to the front; keep what follows it (nothing, with
         * one request outstanding). */
        memmove(c->buf, c->buf + hlen, used - hlen);
        c->buf[need - hlen] = '\0';
        c->have = 0;
        if (closing) {
            disconnect(c);
        }
    }
    return status;
}

/* ---- clients --------------------------------------------------------------------- */

static int create_session(struct client *c)
{
    char body[128];
    const char *p, *q;
    int st;
    snprintf(body, sizeof body, "{\"ttl\":%d,\"lock_delay\":0,\"name\":\"lockgen-%u\"}", TTL_MS,
             c->id);
    for (int tries = 0; tries < 50; tries++) {
        st = call(c, "POST", "/v1/sessions", body);
        if (st == 200 && (p = strstr(c->buf, "\"id\":\"")) != NULL &&
            (q = strchr(p + 6, '"')) != NULL && (size_t)(q - p - 6) < sizeof c->session) {
            memcpy(c->session, p + 6, (size_t)(q - p - 6));
            c->session[q - p - 6] = '\0';
            c->last_renew = now_ns();
            return 0;
        }
        usleep(100000);
    }
    fprintf(stderr, "lockgen: client %u could not create a session (HTTP %d): %.200s\n", c->id, st,
            c->buf);
    return -1;
}

static void renew_if_due(struct client *c)
{
    char path[128];
    if (now_ns() - c->last_renew < (uint64_t)RENEW_MS * 1000000u) {
        return;
    }
    snprintf(path, sizeof path, "/v1/sessions/%s/renew", c->session);
    if (call(c, "PUT", path, NULL) == 200) {
        c->last_renew = now_ns();
    } else {
        fail(c, "renew", c->buf);
    }
}

static void lock_name(struct client *c, char *out, size_t cap)
{
    if (g.mode == CONTENDED) {
        snprintf(out, cap, "bench/mutex");
    } else if (g.distinct) {
        snprintf(out, cap, "bench/solo-%u-%llu", c->id, (unsigned long long)c->seq);
    } else {
        snprintf(out, cap, "bench/solo-%u", c->id);
    }
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    char key[96], path[256], body[160];
    while (!atomic_load(&g.stop)) {
        uint64_t t0, t1, t2, t3;
        int st;
        renew_if_due(c);
        lock_name(c, key, sizeof key);
        c->seq++;
        snprintf(path, sizeof path, "/v1/locks/%s", key);
        snprintf(body, sizeof body, "{\"session\":\"%s\"%s}", c->session,
                 g.mode == CONTENDED ? ",\"wait\":\"10s\"" : "");
        t0 = now_ns();
        do {
            st = call(c, "PUT", path, body);
            c->waits += st == 202;
        } while (st == 202 && !atomic_load(&g.stop));
        t1 = now_ns();
        if (st != 200) {
            if (st != 202) {
                fail(c, "acquire", st < 0 ? "transport error" : c->buf);
                usleep(10000);
            }
            continue;
        }
        if (t1 >= g.start && t1 < g.end) {
            push(&c->acq, t1 - t0);
            push(&c->at, t1 - g.start);
        }
        snprintf(path, sizeof path, "/v1/locks/%s?session=%s", key, c->session);
        t2 = now_ns();
        st = call(c, "DELETE", path, NULL);
        t3 = now_ns();
        if (st != 200) {
            fail(c, "release", st < 0 ? "transport error" : c->buf);
            continue;
        }
        if (t3 >= g.start && t3 < g.end) {
            push(&c->rel, t3 - t2);
        }
    }
    return NULL;
}

/* ---- report ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void merge(struct samples *out, size_t off)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < g.clients; i++) {
        struct samples *s = (struct samples *)((char *)&g.c[i] + off);
        for (size_t j = 0; j < s->n; j++) {
            push(out, s->v[j]);
        }
    }
    if (out->n > 0) {
        qsort(out->v, out->n, sizeof *out->v, cmp_u64);
    }
}

static double pct_ms(const struct samples *s, double p)
{
    size_t i;
    if (s->n == 0) {
        return 0;
    }
    i = (size_t)((p / 100.0) * (double)(s->n - 1) + 0.5);
    return (double)s->v[i] / 1e6;
}

static void report(void)
{
    struct samples acq, rel, at, gaps = {0};
    uint64_t errors = 0, waits = 0;
    const char *first = NULL;
    const char *l = g.label;
    merge(&acq, offsetof(struct client, acq));
    merge(&rel, offsetof(struct client, rel));
    merge(&at, offsetof(struct client, at));
    for (unsigned i = 0; i < g.clients; i++) {
        errors += g.c[i].errors;
        waits += g.c[i].waits;
        if (first == NULL && g.c[i].first_error[0] != '\0') {
            first = g.c[i].first_error;
        }
    }
    if (g.mode == CONTENDED) {
        for (size_t i = 1; i < at.n; i++) {
            push(&gaps, at.v[i] - at.v[i - 1]);
        }
        if (gaps.n > 0) {
            qsort(gaps.v, gaps.n, sizeof *gaps.v, cmp_u64);
        }
        printf("%s_grants: %zu grants\n", l, at.n);
        printf("%s_acquire_p50: %.2f ms\n", l, pct_ms(&acq, 50));
        printf("%s_acquire_p99: %.2f ms\n", l, pct_ms(&acq, 99));
        printf("%s_gap_p50: %.3f ms\n", l, pct_ms(&gaps, 50));
        printf("%s_gap_p99: %.3f ms\n", l, pct_ms(&gaps, 99));
        printf("%s_gap_max: %.3f ms\n", l, pct_ms(&gaps, 100));
        printf("%s_polls_202: %llu polls\n", l, (unsigned long long)waits);
        printf("%s_errors: %llu errors\n", l, (unsigned long long)errors);
        printf("%s_handoffs_per_sec: %.0f handoffs/s\n", l, (double)at.n / g.duration);
    } else {
        printf("%s_release_p50: %.2f ms\n", l, pct_ms(&rel, 50));
        printf("%s_release_p99: %.2f ms\n", l, pct_ms(&rel, 99));
        printf("%s_cycles_per_sec: %.0f cycles/s\n", l, (double)at.n / g.duration);
        printf("%s_errors: %llu errors\n", l, (unsigned long long)errors);
        printf("%s_acquire_max: %.2f ms\n", l, pct_ms(&acq, 100));
        printf("%s_acquire_p50: %.2f ms\n", l, pct_ms(&acq, 50));
        printf("%s_acquire_p99: %.2f ms\n", l, pct_ms(&acq, 99));
    }
    if (first != NULL) {
        printf("# %s: first error: %s\n", l, first);
    }
    free(acq.v);
    free(rel.v);
    free(at.v);
    free(gaps.v);
}

static void parse_addr(const char *s)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    struct addrinfo hints, *res;
    if (colon == NULL || (size_t)(colon - s) >= sizeof host) {
        usage();
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
        fprintf(stderr, "lockgen: cannot resolve %s\n", s);
        exit(2);
    }
    memcpy(&g.addr, res->ai_addr, sizeof g.addr);
    freeaddrinfo(res);
}

int main(int argc, char **argv)
{
    int have_addr = 0, have_mode = 0;
    uint64_t granted = 0;
    g.clients = 0;
    g.duration = 10;
    g.warmup = 1;
    g.label = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--distinct") == 0) {
            g.distinct = 1;
            continue;
        }
        if (v == NULL) {
            usage();
        }
        i++;
        if (strcmp(a, "--addr") == 0) {
            parse_addr(v);
            have_addr = 1;
        } else if (strcmp(a, "--ca") == 0) {
            char err[FL_ERRMSG_SIZE];
            if (tls_creds_load_ca(v, &g.tls, err) != FL_OK) {
                fprintf(stderr, "lockgen: --ca: %s\n", err);
                exit(2);
            }
        } else if (strcmp(a, "--mode") == 0) {
            have_mode = 1;
            if (strcmp(v, "contended") == 0) {
                g.mode = CONTENDED;
            } else if (strcmp(v, "uncontended") == 0) {
                g.mode = UNCONTENDED;
            } else {
                usage();
            }
        } else if (strcmp(a, "--clients") == 0) {
            g.clients = (unsigned)atoi(v);
        } else if (strcmp(a, "--duration") == 0) {
            g.duration = atof(v);
        } else if (strcmp(a, "--warmup") == 0) {
            g.warmup = atof(v);
        } else if (strcmp(a, "--label") == 0) {
            g.label = v;
        } else {
            usage();
        }
    }
    if (!have_addr || !have_mode || g.duration <= 0 || g.warmup < 0) {
        usage();
    }
    if (g.clients == 0) {
        g.clients = g.mode == CONTENDED ? 16 : 1;
    }
    if (g.clients > MAX_CLIENTS) {
        usage();
    }
    if (g.label == NULL) {
        g.label = g.mode == CONTENDED ? "contended" : "uncontended";
    }
    g.c = calloc(g.clients, sizeof *g.c);
    if (g.c == NULL) {
        return 1;
    }
    for (unsigned i = 0; i < g.clients; i++) {
        g.c[i].id = i;
        g.c[i].fd = -1;
        if (create_session(&g.c[i]) != 0) {
            return 1;
        }
    }
    g.start = now_ns() + (uint64_t)(g.warmup * 1e9);
    g.end = g.start + (uint64_t)(g.duration * 1e9);
    for (unsigned i = 0; i < g.clients; i++) {
        pthread_create(&g.c[i].thread, NULL, client_main, &g.c[i]);
    }
    while (now_ns() < g.end) {
        usleep(20000);
    }
    atomic_store(&g.stop, 1);
    for (unsigned i = 0; i < g.clients; i++) {
        char path[128];
        pthread_join(g.c[i].thread, NULL);
        snprintf(path, sizeof path, "/v1/sessions/%s", g.c[i].session);
        call(&g.c[i], "DELETE", path, NULL); /* releases whatever it still holds */
        disconnect(&g.c[i]);
        granted += g.c[i].at.n;
    }
    report();
    return granted > 0 ? 0 : 1;
}
