/* hsgen — full mutual-TLS handshakes against a server's agent port, as fast
 * as `--threads` blocking clients can make them (bench/handshakes.sh).
 *
 *   hsgen --addr HOST:PORT --ca CA --cert CERT --cert-key KEY
 *         [--threads N] [--seconds S] [--warmup S]
 *
 * Each client loops: connect, run the real link module (tls/tlink.h, kind
 * agent) until the server's HELLO says it was admitted, close. Prints
 * "metric: value unit" lines: handshakes completed in the measured window
 * per second, their latency percentiles (connect to admission), failures. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "tls/creds.h"
#include "tls/tlink.h"

#define MAX_SAMPLES (1u << 22)

static struct tls_creds *creds;
static struct sockaddr_storage target;
static socklen_t target_len;
static double t_start, t_measure, t_end;
static atomic_uint_fast64_t n_ok, n_fail;
static atomic_uint_fast64_t n_samples;
static uint32_t *samples_us;
static char first_error[FL_ERRMSG_SIZE];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_error(const char *msg)
{
    pthread_mutex_lock(&err_mu);
    if (first_error[0] == '\0') {
        snprintf(first_error, sizeof first_error, "%s", msg);
    }
    pthread_mutex_unlock(&err_mu);
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One handshake; 0 when admitted. */
static int one(void)
{
    struct tlink_config c = {creds, TLINK_AGENT, NULL, NULL};
    struct tlink *l = NULL;
    struct fl_buf wire, plain;
    uint8_t buf[16384];
    int fd, one_ = 1, rv = -1;
    fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error(strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    if (connect(fd, (struct sockaddr *)&target, target_len) != 0) {
        note_error(strerror(errno));
        goto out;
    }
    if (tlink_create(&c, 1, &l, NULL) != FL_OK || tlink_start(l, &wire) != FL_OK ||
        send_all(fd, wire.data, wire.len) != 0) {
        note_error("start");
        goto out;
    }
    while (tlink_state(l) == TLINK_HANDSHAKE) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) {
            note_error(r == 0 ? "closed by the server" : strerror(errno));
            goto out;
        }
        fl_buf_reset(&wire);
        if (tlink_recv(l, buf, (size_t)r, &wire, &plain) != FL_OK) {
            note_error(tlink_errmsg(l));
            goto out;
        }
        if (wire.len > 0 && send_all(fd, wire.data, wire.len) != 0) {
            note_error("send");
            goto out;
        }
    }
    rv = tlink_state(l) == TLINK_OPEN ? 0 : -1;
out:
    tlink_destroy(l);
    fl_buf_close(&wire);
    fl_buf_close(&plain);
    close(fd);
    return rv;
}

static void *client(void *arg)
{
    (void)arg;
    for (;;) {
        double t0 = now();
        int rv;
        if (t0 >= t_end) {
            return NULL;
        }
        rv = one();
        double t1 = now();
        if (t0 < t_measure || t1 > t_end) {
            continue;
        }
        if (rv == 0) {
            uint64_t k = atomic_fetch_add(&n_samples, 1);
            atomic_fetch_add(&n_ok, 1);
            if (k < MAX_SAMPLES) {
                samples_us[k] = (uint32_t)((t1 - t0) * 1e6);
            }
        } else {
            atomic_fetch_add(&n_fail, 1);
        }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return def;
}

int main(int argc, char **argv)
{
    const char *addr = arg(argc, argv, "--addr", NULL);
    struct tls_creds_files f = {arg(argc, argv, "--ca", NULL), arg(argc, argv, "--cert", NULL),
                                arg(argc, argv, "--cert-key", NULL)};
    int threads = atoi(arg(argc, argv, "--threads", "2"));
    double seconds = atof(arg(argc, argv, "--seconds", "5"));
    double warmup = atof(arg(argc, argv, "--warmup", "1"));
    char err[FL_ERRMSG_SIZE], host[256];
    const char *colon;
    struct addrinfo hints, *res;
    pthread_t tid[256];
    if (addr == NULL || (colon = strrchr(addr, ':')) == NULL || threads < 1 || threads > 256 ||
        seconds <= 0) {
        fprintf(stderr, "usage: hsgen --addr HOST:PORT --ca CA --cert CERT --cert-key KEY "
                        "[--threads N] [--seconds S] [--warmup S]\n");
        return 2;
    }
    if (tls_creds_load(&f, &creds, err) != FL_OK) {
        fprintf(stderr, "hsgen: %s\n", err);
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
        fprintf(stderr, "hsgen: cannot resolve %s\n", addr);
        return 2;
    }
    memcpy(&target, res->ai_addr, res->ai_addrlen);
    target_len = res->ai_addrlen;
    freeaddrinfo(res);
    samples_us = calloc(MAX_SAMPLES, sizeof *samples_us);
    if (samples_us == NULL) {
        return 1;
    }
    t_start = now();
    t_measure = t_start + warmup;
    t_end = t_measure + seconds;
    for (int i = 0; i < threads; i++) {
        pthread_create(&tid[i], NULL, client, NULL);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
    }
    uint64_t n = atomic_load(&n_samples);
    if (n > MAX_SAMPLES) {
        n = MAX_SAMPLES;
    }
    qsort(samples_us, n, sizeof *samples_us, cmp_u32);
    printf("# %d client threads, %.1f s measured after %.1f s warm-up, to %s\n", threads, seconds,
           warmup, addr);
    if (first_error[0]) {
        printf("# first error: %s\n", first_error);
    }
    printf("handshakes_failed: %llu\n", (unsigned long long)atomic_load(&n_fail));
    if (n > 0) {
        printf("handshake_p50: %.2f ms\n", samples_us[n / 2] / 1000.0);
        printf("handshake_p99: %.2f ms\n", samples_us[(n * 99) / 100] / 1000.0);
    }
    printf("handshakes_ok: %llu\n", (unsigned long long)atomic_load(&n_ok));
    printf("handshakes_per_sec: %.0f /s\n", (double)atomic_load(&n_ok) / seconds);
    tls_creds_free(creds);
    free(samples_us);
    return atomic_load(&n_ok) > 0 ? 0 : 1;
}
