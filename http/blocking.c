/* Blocking HTTP/1.1 client: getaddrinfo, non-blocking connect bounded by
 * poll, send, then receive until the response parser (http/response.h)
 * reports the response complete (or the peer closes, which ends a
 * close-delimited body). */
#include "http/blocking.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "http/response.h"
#include "tls/tlink.h"

static struct tls_creds *https_creds;

void httpc_set_tls(struct tls_creds *creds)
{
    https_creds = creds;
}

#define RECV_SIZE (16 * 1024)

struct call {
    char addr[HTTPC_HOST_MAX + 16]; /* normalized, for messages and Host */
    char host[HTTPC_HOST_MAX];
    char port[HTTPC_PORT_MAX];
    uint64_t deadline; /* fl_mono_ns; 0 = none */
    int timeout_ms;
    int fd;
    struct tlink *tls; /* https:// */
    struct http_response resp;
};

int httpc_split_addr(const char *addr, char host[HTTPC_HOST_MAX], char port[HTTPC_PORT_MAX],
                     const char **norm, size_t *norm_len)
{
    const char *hs, *he = NULL, *ps;
    size_t alen, hlen, plen, i;
    if (addr == NULL) {
        return FL_EINVAL;
    }
    if (strncmp(addr, "http://", 7) == 0) {
        addr += 7;
    } else if (strncmp(addr, "https://", 8) == 0) {
        addr += 8;
    }
    alen = strlen(addr);
    while (alen > 0 && addr[alen - 1] == '/') {
        alen--;
    }
    if (alen > 0 && addr[0] == '[') {
        hs = addr + 1;
        he = memchr(addr, ']', alen);
        if (he == NULL || he + 1 >= addr + alen || he[1] != ':') {
            return FL_EINVAL;
        }
        ps = he + 2;
    } else {
        hs = addr;
        for (ps = addr + alen; ps > addr; ps--) {
            if (ps[-1] == ':') {
                he = ps - 1;
                break;
            }
        }
        if (he == NULL) {
            return FL_EINVAL;
        }
    }
    hlen = (size_t)(he - hs);
    plen = (size_t)(addr + alen - ps);
    if (hlen == 0 || hlen >= HTTPC_HOST_MAX || plen == 0 || plen >= HTTPC_PORT_MAX) {
        return FL_EINVAL;
    }
    for (i = 0; i < plen; i++) {
        if (ps[i] < '0' || ps[i] > '9') {
            return FL_EINVAL;
        }
    }
    for (i = 0; i < hlen; i++) {
        if (hs[i] == '/' || hs[i] == ' ' || hs[i] == '\r' || hs[i] == '\n') {
            return FL_EINVAL;
        }
    }
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    memcpy(port, ps, plen);
    port[plen] = '\0';
    if (atoi(port) < 1 || atoi(port) > 65535) {
        return FL_EINVAL;
    }
    if (norm != NULL) {
        *norm = addr;
    }
    if (norm_len != NULL) {
        *norm_len = alen;
    }
    return FL_OK;
}

/* Milliseconds left before the deadline for poll: -1 = none, 0 = expired. */
static int remaining_ms(const struct call *c)
{
    uint64_t now;
    if (c->deadline == 0) {
        return -1;
    }
    now = fl_mono_ns();
    if (now >= c->deadline) {
        return 0;
    }
    return (int)((c->deadline - now + 999999) / 1000000);
}

/* Wait for events on the socket; FL_ETIMEOUT when the deadline passes. */
static int wait_fd(struct call *c, short events, short *revents, char *errmsg)
{
    struct pollfd pfd = {.fd = c->fd, .events = events};
    for (;;) {
        int ms = remaining_ms(c);
        int n;
        if (ms == 0) {
            return fl_errf(errmsg, FL_ETIMEOUT, "%s: no response within %d ms", c->addr,
                           c->timeout_ms);
        }
        n = poll(&pfd, 1, ms);
        if (n > 0) {
            *revents = pfd.revents;
            return FL_OK;
        }
        if (n < 0 && errno != EINTR) {
            return fl_errf(errmsg, FL_ENET, "poll: %s", strerror(errno));
        }
    }
}

static int connect_one(struct call *c, const struct addrinfo *ai, char *errmsg)
{
    short rev;
    int err = 0, one = 1, rv;
    socklen_t elen = sizeof err;
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (c->fd < 0) {
        return fl_errf(errmsg, FL_ENET, "connect to %s: %s", c->addr, strerror(errno));
    }
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            err = errno;
        } else if ((rv = wait_fd(c, POLLOUT, &rev, errmsg)) != FL_OK) {
            close(c->fd);
            c->fd = -1;
            return rv;
        } else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
            err = errno;
        }
    }
    if (err != 0) {
        close(c->fd);
        c->fd = -1;
        return fl_errf(errmsg, FL_ENET, "connect to %s: %s", c->addr, strerror(err));
    }
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return FL_OK;
}

static int connect_any(struct call *c, char *errmsg)
{
    struct addrinfo hints, *res = NULL, *ai;
    int rv;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    rv = getaddrinfo(c->host, c->port, &hints, &res);
    if (rv != 0) {
        return fl_errf(errmsg, FL_ENET, "resolve %s: %s", c->host, gai_strerror(rv));
    }
    rv = FL_ENET;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        rv = connect_one(c, ai, errmsg);
        if (rv == FL_OK || rv == FL_ETIMEOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    return rv;
}

/* Send everything, unless the server answers (or closes) first: then the
 * rest is moot and the answer is read. *early is set in that case. */
static int send_all(struct call *c, const uint8_t *p, size_t len, int *early, char *errmsg)
{
    *early = 0;
    while (len > 0) {
        short rev = 0;
        ssize_t n;
        int rv = wait_fd(c, POLLOUT | POLLIN, &rev, errmsg);
        if (rv != FL_OK) {
            return rv;
        }
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
            *early = 1;
            return FL_OK;
        }
        n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            *early = 1; /* a response may be waiting */
            return FL_OK;
        }
        if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            return fl_errf(errmsg, FL_ENET, "send to %s: %s", c->addr, strerror(errno));
        }
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
    return FL_OK;
}

/* Feed bytes (len 0 = EOF) to the response parser. */
static int parse(struct call *c, const char *data, size_t len, char *errmsg)
{
    int rv = http_response_feed(&c->resp, data, len, NULL);
    if (rv == FL_ENOMEM) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    if (rv != FL_OK) {
        return fl_errf(errmsg, rv, "%s: %s", c->addr, http_response_errmsg(&c->resp));
    }
    return FL_OK;
}

/* HTTPS: run the handshake to OPEN over the connected socket. */
static int tls_handshake(struct call *c, char *errmsg)
{
    struct tlink_config tc = {https_creds, TLINK_HTTPS, NULL, NULL};
    struct fl_buf wire, plain;
    char buf[RECV_SIZE];
    int rv, early = 0;
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    rv = tlink_create(&tc, 1, &c->tls, errmsg);
    if (rv == FL_OK) {
        rv = tlink_start(c->tls, &wire);
    }
    while (rv == FL_OK) {
        short rev;
        ssize_t n;
        if (wire.len > 0) {
            rv = send_all(c, wire.data, wire.len, &early, errmsg);
            fl_buf_reset(&wire);
            if (rv != FL_OK) {
                break;
            }
        }
        if (tlink_state(c->tls) == TLINK_OPEN) {
            break;
        }
        if ((rv = wait_fd(c, POLLIN, &rev, errmsg)) != FL_OK) {
            break;
        }
        n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        }
        if (n <= 0) {
            rv = fl_errf(errmsg, FL_ENET, "%s closed the connection during the TLS handshake",
                         c->addr);
            break;
        }
        if (tlink_recv(c->tls, (const uint8_t *)buf, (size_t)n, &wire, &plain) != FL_OK) {
            rv = fl_errf(errmsg, FL_EPROTO, "TLS to %s: %s", c->addr, tlink_errmsg(c->tls));
            if (wire.len > 0) {
                send_all(c, wire.data, wire.len, &early, NULL);
            }
        }
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
    return rv;
}

static int receive(struct call *c, int sent_all, char *errmsg)
{
    char buf[RECV_SIZE];
    int got = 0;
    while (!c->resp.complete) {
        short rev;
        ssize_t n;
        int rv = wait_fd(c, POLLIN, &rev, errmsg);
        if (rv != FL_OK) {
            return rv;
        }
        n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        }
        if (n < 0) {
            return fl_errf(errmsg, FL_ENET, "receive from %s: %s", c->addr, strerror(errno));
        }
        if (n == 0 && !got) {
            return fl_errf(errmsg, FL_ENET, "%s closed the connection%s", c->addr,
                           sent_all ? " without responding" : " before the request was sent");
        }
        got = 1;
        if (c->tls != NULL && n > 0) {
            struct fl_buf wire, plain;
            fl_buf_init(&wire);
            fl_buf_init(&plain);
            rv = tlink_recv(c->tls, (const uint8_t *)buf, (size_t)n, &wire, &plain);
            if (rv != FL_OK) {
                rv = fl_errf(errmsg, FL_EPROTO, "TLS from %s: %s", c->addr, tlink_errmsg(c->tls));
            } else if (plain.len > 0) {
                rv = parse(c, (const char *)plain.data, plain.len, errmsg);
            }
            fl_buf_close(&wire);
            fl_buf_close(&plain);
            if (rv != FL_OK) {
                return rv;
            }
            continue;
        }
        if (c->tls != NULL && tlink_eof(c->tls) != FL_OK) {
            return fl_errf(errmsg, FL_EPROTO, "TLS from %s: %s", c->addr, tlink_errmsg(c->tls));
        }
        if ((rv = parse(c, buf, (size_t)n, errmsg)) != FL_OK) {
            return rv;
        }
    }
    return FL_OK;
}

static int build_request(struct call *c, struct fl_buf *b, const char *method, const char *path,
                         const char *extra, const void *body, size_t len)
{
    size_t elen = extra != NULL ? strlen(extra) : 0;
    int rv = fl_buf_printf(b,
                           "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n",
                           method, path, c->addr, len);
    if (rv == FL_OK && elen > 0) {
        rv = fl_buf_append(b, extra, elen);
        if (rv == FL_OK && (elen < 2 || strcmp(extra + elen - 2, "\r\n") != 0)) {
            rv = fl_buf_append(b, "\r\n", 2);
        }
    }
    if (rv == FL_OK) {
        rv = fl_buf_append(b, "\r\n", 2);
    }
    if (rv == FL_OK && len > 0) {
        rv = fl_buf_append(b, body, len);
    }
    return rv;
}

static int fill_response(struct call *c, struct httpc_response *out)
{
    const char *ctype = http_response_content_type(&c->resp);
    if (ctype != NULL) {
        out->content_type = fl_strdup(ctype);
        if (out->content_type == NULL) {
            return FL_ENOMEM;
        }
    }
    out->status = c->resp.status;
    out->body = (char *)http_response_take_body(&c->resp, &out->body_len);
    return out->body != NULL ? FL_OK : FL_ENOMEM;
}

int httpc_request(const char *addr, const char *method, const char *path_and_query,
                  const char *extra_headers, const void *body, size_t len, int timeout_ms,
                  struct httpc_response *out, char *errmsg)
{
    struct call *c;
    struct fl_buf req;
    const char *norm;
    size_t nlen;
    int rv, early = 0;
    if (out != NULL) {
        memset(out, 0, sizeof *out);
    }
    if (out == NULL || method == NULL || method[0] == '\0' || strpbrk(method, " \r\n") != NULL ||
        path_and_query == NULL || path_and_query[0] != '/' ||
        strpbrk(path_and_query, " \r\n") != NULL || (body == NULL && len > 0)) {
        return fl_errf(errmsg, FL_EINVAL, "invalid request arguments");
    }
    c = fl_calloc(1, sizeof *c);
    if (c == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    c->fd = -1;
    http_response_init(&c->resp, strcmp(method, "HEAD") == 0, HTTPC_MAX_BODY);
    fl_buf_init(&req);
    if (httpc_split_addr(addr, c->host, c->port, &norm, &nlen) != FL_OK || nlen >= sizeof c->addr) {
        rv = fl_errf(errmsg, FL_EINVAL, "invalid address \"%s\" (want host:port)",
                     addr ? addr : "(null)");
        goto out;
    }
    memcpy(c->addr, norm, nlen);
    c->addr[nlen] = '\0';
    c->timeout_ms = timeout_ms;
    c->deadline = timeout_ms > 0 ? fl_mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    if ((rv = build_request(c, &req, method, path_and_query, extra_headers, body, len)) != FL_OK) {
        rv = fl_errf(errmsg, rv, "out of memory");
        goto out;
    }
    if (strncmp(addr, "https://", 8) == 0 || (https_creds != NULL && strstr(addr, "://") == NULL)) {
        struct fl_buf enc;
        if (https_creds == NULL) {
            rv = fl_errf(errmsg, FL_EINVAL, "%s: HTTPS needs the cluster's CA certificate", addr);
            goto out;
        }
        if ((rv = connect_any(c, errmsg)) != FL_OK || (rv = tls_handshake(c, errmsg)) != FL_OK) {
            goto out;
        }
        fl_buf_init(&enc);
        if (tlink_send(c->tls, req.data, req.len, &enc) != FL_OK) {
            fl_buf_close(&enc);
            rv = fl_errf(errmsg, FL_EPROTO, "TLS to %s: %s", c->addr, tlink_errmsg(c->tls));
            goto out;
        }
        fl_buf_close(&req);
        req = enc;
    } else if ((rv = connect_any(c, errmsg)) != FL_OK) {
        goto out;
    }
    if ((rv = send_all(c, req.data, req.len, &early, errmsg)) != FL_OK ||
        (rv = receive(c, !early, errmsg)) != FL_OK) {
        goto out;
    }
    if ((rv = fill_response(c, out)) != FL_OK) {
        httpc_response_free(out);
        rv = fl_errf(errmsg, rv, "out of memory");
    }
out:
    tlink_destroy(c->tls);
    if (c->fd >= 0) {
        close(c->fd);
    }
    fl_buf_close(&req);
    http_response_close(&c->resp);
    fl_free(c);
    return rv;
}

void httpc_response_free(struct httpc_response *r)
{
    if (r == NULL) {
        return;
    }
    fl_free(r->content_type);
    fl_free(r->body);
    memset(r, 0, sizeof *r);
}
