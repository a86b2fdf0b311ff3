/* common/blink — see blink.h. */
#include "blob/blink.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "tls/tlink.h"

struct blink {
    int fd;
    struct tlink *ch;
    unsigned timeout_ms;
    struct fl_buf plain; /* decrypted bytes not yet consumed */
    size_t off;          /* consumed prefix of plain */
    struct fl_buf wire;
    uint64_t bytes_in, bytes_out;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, int64_t deadline, char *errmsg)
{
    for (;;) {
        struct pollfd p = {fd, ev, 0};
        int64_t left = deadline - now_ms();
        int rv;
        if (left <= 0) {
            return fl_errf(errmsg, FL_ETIMEOUT, "blob link: timed out");
        }
        rv = poll(&p, 1, (int)left);
        if (rv > 0) {
            return FL_OK;
        }
        if (rv < 0 && errno != EINTR) {
            return fl_errf(errmsg, FL_ENET, "blob link: poll: %s", strerror(errno));
        }
    }
}

static int write_all(struct blink *b, const uint8_t *p, size_t n, char *errmsg)
{
    int64_t deadline = now_ms() + b->timeout_ms;
    while (n > 0) {
        ssize_t w = send(b->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            deadline = now_ms() + b->timeout_ms; /* progress resets the clock */
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            int rv = wait_fd(b->fd, POLLOUT, deadline, errmsg);
            if (rv != FL_OK) {
                return rv;
            }
            continue;
        }
        return fl_errf(errmsg, FL_ENET, "blob link: send: %s", strerror(errno));
    }
    return FL_OK;
}

/* Read once and feed the channel; handshake replies are written back. */
static int pump(struct blink *b, int64_t deadline, char *errmsg)
{
    uint8_t buf[64 * 1024];
    ssize_t r;
    int rv;
    for (;;) {
        r = recv(b->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            break;
        }
        if (r == 0) {
            if (tlink_eof(b->ch) != FL_OK) {
                return fl_errf(errmsg, FL_EPROTO, "blob link: %s", tlink_errmsg(b->ch));
            }
            return fl_errf(errmsg, FL_ENET, "blob link: closed by the peer");
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return fl_errf(errmsg, FL_ENET, "blob link: recv: %s", strerror(errno));
        }
        if ((rv = wait_fd(b->fd, POLLIN, deadline, errmsg)) != FL_OK) {
            return rv;
        }
    }
    if (b->off > 0) { /* drop what was consumed: messages before this call */
        memmove(b->plain.data, b->plain.data + b->off, b->plain.len - b->off);
        b->plain.len -= b->off;
        b->off = 0;
    }
    fl_buf_reset(&b->wire);
    rv = tlink_recv(b->ch, buf, (size_t)r, &b->wire, &b->plain);
    if (b->wire.len > 0) {
        int wrv = write_all(b, b->wire.data, b->wire.len, errmsg);
        if (rv == FL_OK && wrv != FL_OK) {
            return wrv;
        }
    }
    if (rv != FL_OK) {
        return fl_errf(errmsg, rv, "blob link: %s", tlink_errmsg(b->ch));
    }
    return FL_OK;
}

static int handshake(struct blink *b, char *errmsg)
{
    int64_t deadline = now_ms() + b->timeout_ms;
    while (tlink_state(b->ch) == TLINK_HANDSHAKE) {
        int rv = pump(b, deadline, errmsg);
        if (rv != FL_OK) {
            return rv;
        }
    }
    return tlink_state(b->ch) == TLINK_OPEN
               ? FL_OK
               : fl_errf(errmsg, FL_EPROTO, "blob link: %s", tlink_errmsg(b->ch));
}

static int make(int fd, struct tls_creds *creds, const char *expect_name, int initiator,
                unsigned timeout_ms, struct blink **out, char *errmsg)
{
    struct tlink_config c = {creds, TLINK_BLOB, NULL, expect_name};
    struct blink *b = fl_calloc(1, sizeof *b);
    int rv, one = 1;
    *out = NULL;
    if (b == NULL) {
        close(fd);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    b->fd = fd;
    b->timeout_ms = timeout_ms ? timeout_ms : 30000;
    fl_buf_init(&b->plain);
    fl_buf_init(&b->wire);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rv = tlink_create(&c, initiator, &b->ch, errmsg);
    if (rv == FL_OK && initiator) {
        rv = tlink_start(b->ch, &b->wire);
        if (rv == FL_OK) {
            rv = write_all(b, b->wire.data, b->wire.len, errmsg);
        }
    }
    if (rv == FL_OK) {
        rv = handshake(b, errmsg);
    }
    if (rv != FL_OK) {
        blink_close(b);
        return rv;
    }
    *out = b;
    return FL_OK;
}

int blink_connect(const char *addr, struct tls_creds *creds, const char *expect_name,
                  unsigned timeout_ms, struct blink **out, char *errmsg)
{
    char host[256], port[16];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, rv, err = 0;
    *out = NULL;
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host ||
        strlen(colon + 1) >= sizeof port) {
        return fl_errf(errmsg, FL_EINVAL, "blob link: bad address %s", addr);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rv = getaddrinfo(host, port, &hints, &res)) != 0) {
        return fl_errf(errmsg, FL_ENET, "blob link: resolve %s: %s", host, gai_strerror(rv));
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int64_t deadline = now_ms() + (timeout_ms ? timeout_ms : 30000);
        socklen_t elen = sizeof err;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                err = errno;
            } else if (wait_fd(fd, POLLOUT, deadline, NULL) != FL_OK) {
                err = ETIMEDOUT;
            } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
                err = errno;
            }
        }
        if (err == 0) {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return fl_errf(errmsg, err == ETIMEDOUT ? FL_ETIMEOUT : FL_ENET,
                       "blob link: connect to %s: %s", addr, strerror(err ? err : ECONNREFUSED));
    }
    return make(fd, creds, expect_name, 1, timeout_ms, out, errmsg);
}

int blink_accept(int fd, struct tls_creds *creds, unsigned timeout_ms, struct blink **out,
                 char *errmsg)
{
    return make(fd, creds, NULL, 0, timeout_ms, out, errmsg);
}

const struct pki_identity *blink_peer(const struct blink *b)
{
    return tlink_peer(b->ch);
}

int blink_send(struct blink *b, const void *p, size_t n, char *errmsg)
{
    uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    int rv;
    if (n > UINT32_MAX) {
        return fl_errf(errmsg, FL_ETOOBIG, "blob link: message too large");
    }
    fl_buf_reset(&b->wire);
    if ((rv = tlink_send(b->ch, hdr, sizeof hdr, &b->wire)) != FL_OK ||
        (rv = tlink_send(b->ch, p, n, &b->wire)) != FL_OK) {
        return fl_errf(errmsg, rv, "blob link: %s", tlink_errmsg(b->ch));
    }
    b->bytes_out += n + 4;
    return write_all(b, b->wire.data, b->wire.len, errmsg);
}

int blink_recv(struct blink *b, size_t max, const uint8_t **p, size_t *n, char *errmsg)
{
    int64_t deadline = now_ms() + b->timeout_ms;
    size_t need = 4, len = 0;
    for (;;) {
        size_t have = b->plain.len - b->off;
        const uint8_t *q = b->plain.data + b->off;
        if (have >= 4) {
            len = (size_t)q[0] << 24 | (size_t)q[1] << 16 | (size_t)q[2] << 8 | q[3];
            if (len > max) {
                return fl_errf(errmsg, FL_ETOOBIG, "blob link: a message of %zu bytes (limit %zu)",
                               len, max);
            }
            need = 4 + len;
            if (have >= need) {
                *p = q + 4;
                *n = len;
                b->off += need;
                b->bytes_in += need;
                return FL_OK;
            }
        }
        {
            size_t before = b->plain.len - b->off;
            int rv = pump(b, deadline, errmsg);
            if (rv != FL_OK) {
                return rv;
            }
            if (b->plain.len - b->off > before) {
                deadline = now_ms() + b->timeout_ms;
            }
        }
    }
}

void blink_close(struct blink *b)
{
    if (b == NULL) {
        return;
    }
    if (b->fd >= 0) {
        close(b->fd);
    }
    tlink_destroy(b->ch);
    fl_buf_close(&b->plain);
    fl_buf_close(&b->wire);
    fl_free(b);
}
