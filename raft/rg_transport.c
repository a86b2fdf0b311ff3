/* The encrypted Raft transport (raft/rg_transport.h; raft-notes §7;
 * docs/SECURITY.md "Links").
 *
 * A link is one TCP connection and, once its handshake is done, one
 * socketpair whose other end raft owns. Its life:
 *
 *   outbound: RESOLVE -> CONNECT -> HANDSHAKE -> RELAY -> CLOSING
 *   inbound:                        HANDSHAKE -> RELAY -> CLOSING
 *
 * A link is freed once all its handles are closed and no getaddrinfo is
 * pending; the transport's close callback fires once every link is gone and
 * the listener is closed. raft's connect callback runs exactly once per
 * connect that returned 0: with the pipe at RELAY, else RAFT_NOCONNECTION
 * (RAFT_CANCELED when the transport is closing). */
#include "raft/rg_transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "tls/tlink.h"

#define READ_SLAB 65536

enum link_state { L_RESOLVE, L_CONNECT, L_HANDSHAKE, L_RELAY, L_CLOSING };

struct rg_link {
    struct rg_transport *t;
    int outbound;
    int state;
    int handles;     /* open libuv handles of this link */
    int gai_pending; /* a getaddrinfo request not yet called back */
    int tcp_open, pipe_open, timer_open;
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    uv_tcp_t tcp;
    uv_pipe_t pipe; /* our end of the socketpair */
    uv_timer_t timer;
    int tcp_paused, pipe_paused; /* reading stopped by backpressure */
    struct tlink *ch;
    char ip[64];     /* inbound: the peer's address */
    int holds_place; /* inbound: counted in handshaking_per_address */
    /* outbound, until handed over */
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    uint64_t want_id;
    char peer[160]; /* address we dialled, or the remote address we accepted */
    struct rg_link *prev, *next;
};

struct wreq {
    uv_write_t req;
    struct rg_link *l;
    uint8_t *data;
};

static void link_close(struct rg_link *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void pipe_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* ---- lifetime --------------------------------------------------------------- */

static void maybe_transport_closed(struct rg_transport *t)
{
    if (t->closing && t->links == NULL && t->listener == NULL && t->close_cb != NULL) {
        raft_uv_transport_close_cb cb = t->close_cb;
        t->close_cb = NULL;
        cb(&t->outer);
    }
}

static void link_maybe_free(struct rg_link *l)
{
    struct rg_transport *t = l->t;
    if (l->handles > 0 || l->gai_pending) {
        return;
    }
    if (l->prev) {
        l->prev->next = l->next;
    } else {
        t->links = l->next;
    }
    if (l->next) {
        l->next->prev = l->prev;
    }
    tlink_destroy(l->ch);
    fl_free(l);
    maybe_transport_closed(t);
}

static void handle_closed(uv_handle_t *h)
{
    struct rg_link *l = h->data;
    l->handles--;
    link_maybe_free(l);
}

static void close_handle(struct rg_link *l, uv_handle_t *h, int *open)
{
    if (*open) {
        *open = 0;
        h->data = l;
        uv_close(h, handle_closed);
    }
}

/* Report a failed connect to raft (once). */
static void fail_connect(struct rg_link *l)
{
    if (l->req != NULL) {
        struct raft_uv_connect *req = l->req;
        l->req = NULL;
        l->cb(req, NULL, l->t->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
    }
}

static void link_close(struct rg_link *l, int level, const char *fmt, ...)
{
    struct rg_transport *t = l->t;
    va_list ap;
    char why[FL_ERRMSG_SIZE];
    if (l->state == L_CLOSING) {
        return;
    }
    if (l->state == L_HANDSHAKE && !l->outbound && t->n_handshaking > 0) {
        t->n_handshaking--;
    }
    if (l->holds_place) {
        l->holds_place = 0;
        fl_addrcap_give(&t->handshaking_per_address, l->ip);
    }
    l->state = L_CLOSING;
    if (level > 0 && fl_log_enabled(level)) {
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        fl_log(level, "raft link %s %s: %s", l->outbound ? "to" : "from", l->peer, why);
    }
    fail_connect(l);
    if (l->gai_pending) {
        uv_cancel((uv_req_t *)&l->gai);
    }
    close_handle(l, (uv_handle_t *)&l->timer, &l->timer_open);
    close_handle(l, (uv_handle_t *)&l->tcp, &l->tcp_open);
    close_handle(l, (uv_handle_t *)&l->pipe, &l->pipe_open);
    link_maybe_free(l);
}

static struct rg_link *link_new(struct rg_transport *t, int outbound)
{
    struct rg_link *l = fl_calloc(1, sizeof *l);
    if (l == NULL) {
        return NULL;
    }
    l->t = t;
    l->outbound = outbound;
    l->next = t->links;
    if (t->links) {
        t->links->prev = l;
    }
    t->links = l;
    uv_timer_init(t->loop, &l->timer);
    l->timer.data = l;
    l->timer_open = 1;
    l->handles = 1;
    return l;
}

/* ---- writing ---------------------------------------------------------------- */

static uv_stream_t *dest_of(struct rg_link *l, int to_tcp)
{
    return to_tcp ? (uv_stream_t *)&l->tcp : (uv_stream_t *)&l->pipe;
}

static void resume_source(struct rg_link *l, int wrote_tcp)
{
    /* Writes to TCP come from the pipe (outbound), writes to the pipe from TCP. */
    uv_stream_t *dst = dest_of(l, wrote_tcp);
    if (uv_stream_get_write_queue_size(dst) > RG_TRANSPORT_LOW_WATER) {
        return;
    }
    if (wrote_tcp && l->pipe_paused && l->pipe_open) {
        l->pipe_paused = 0;
        uv_read_start((uv_stream_t *)&l->pipe, alloc_cb, pipe_read_cb);
    } else if (!wrote_tcp && l->tcp_paused && l->tcp_open) {
        l->tcp_paused = 0;
        uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, tcp_read_cb);
    }
}

static void write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct rg_link *l = w->l;
    int to_tcp = req->handle == (uv_stream_t *)&l->tcp;
    fl_free(w->data);
    fl_free(w);
    if (l->state == L_CLOSING) {
        return;
    }
    if (status != 0) {
        link_close(l, FL_LOG_DEBUG, "write to %s: %s", to_tcp ? "peer" : "raft",
                   uv_strerror(status));
        return;
    }
    resume_source(l, to_tcp);
}

/* Write the bytes of `b` (taken over) to TCP or to the pipe. */
static int write_buf(struct rg_link *l, int to_tcp, struct fl_buf *b)
{
    struct wreq *w;
    uv_buf_t ub;
    uv_stream_t *dst = dest_of(l, to_tcp);
    if (b->len == 0) {
        return FL_OK;
    }
    w = fl_malloc(sizeof *w);
    if (w == NULL) {
        return FL_ENOMEM;
    }
    w->l = l;
    ub.len = b->len;
    w->data = fl_buf_steal(b, NULL);
    ub.base = (char *)w->data;
    if (uv_write(&w->req, dst, &ub, 1, write_cb) != 0) {
        fl_free(w->data);
        fl_free(w);
        return FL_ENET;
    }
    /* Backpressure: stop reading the other side while this one is full. */
    if (uv_stream_get_write_queue_size(dst) > RG_TRANSPORT_HIGH_WATER) {
        if (to_tcp && l->pipe_open && !l->pipe_paused) {
            l->pipe_paused = 1;
            uv_read_stop((uv_stream_t *)&l->pipe);
        } else if (!to_tcp && l->tcp_open && !l->tcp_paused) {
            l->tcp_paused = 1;
            uv_read_stop((uv_stream_t *)&l->tcp);
        }
    }
    return FL_OK;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[READ_SLAB];
    buf->base = slab;
    buf->len = sizeof slab;
}

/* ---- the relay ---------------------------------------------------------------- */

/* raft's end -> channel -> TCP (outbound links); raft never writes inbound
 * pipes, whose reads only tell us raft closed its end. */
static void pipe_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rg_link *l = s->data;
    struct fl_buf wire;
    int rv;
    if (nread == 0 || l->state != L_RELAY) {
        return;
    }
    if (nread < 0) {
        link_close(l, FL_LOG_DEBUG, "raft closed the connection");
        return;
    }
    if (!l->outbound) {
        link_close(l, FL_LOG_WARN, "raft wrote to an inbound connection");
        return;
    }
    fl_buf_init(&wire);
    rv = tlink_send(l->ch, (const uint8_t *)buf->base, (size_t)nread, &wire);
    if (rv == FL_OK) {
        l->t->bytes_sent += (uint64_t)nread;
        l->t->wire_sent += wire.len;
        rv = write_buf(l, 1, &wire);
    }
    fl_buf_close(&wire);
    if (rv != FL_OK) {
        link_close(l, FL_LOG_WARN, "relaying to the peer: %s", fl_strerror(rv));
    }
}

static void raft_pipe_closed(uv_handle_t *h)
{
    raft_free(h);
}

static int make_pipes(struct rg_link *l, uv_pipe_t **raft_end)
{
    struct rg_transport *t = l->t;
    uv_pipe_t *rp;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        return FL_ENET;
    }
    rp = raft_malloc(sizeof *rp);
    if (rp == NULL) {
        close(fds[0]);
        close(fds[1]);
        return FL_ENOMEM;
    }
    uv_pipe_init(t->loop, &l->pipe, 0);
    l->pipe.data = l;
    l->pipe_open = 1;
    l->handles++;
    uv_pipe_init(t->loop, rp, 0);
    if (uv_pipe_open(&l->pipe, fds[0]) != 0) {
        close(fds[0]);
        close(fds[1]);
        uv_close((uv_handle_t *)rp, raft_pipe_closed);
        return FL_ENET;
    }
    if (uv_pipe_open(rp, fds[1]) != 0) {
        /* rp is not raft's yet: close it ourselves; fds[0] belongs to l->pipe. */
        close(fds[1]);
        uv_close((uv_handle_t *)rp, raft_pipe_closed);
        return FL_ENET;
    }
    *raft_end = rp;
    return FL_OK;
}

/* "ID@ADDRESS": what a server says of itself in its HELLO. 1 if well-formed. */
static int raft_name_parse(const char *name, uint64_t *id, const char **addr)
{
    uint64_t v = 0;
    const char *s = name;
    if (*s < '1' || *s > '9') {
        return 0;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return 0;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s != '@' || s[1] == '\0') {
        return 0;
    }
    *id = v;
    *addr = s + 1;
    return 1;
}

/* The handshake just completed: check who it is, hand raft its end. */
static void established(struct rg_link *l, struct fl_buf *plain)
{
    struct rg_transport *t = l->t;
    const char *claim = tlink_peer_claim(l->ch);
    uv_pipe_t *rp = NULL;
    uint64_t id;
    const char *addr;
    int rv;
    if (!raft_name_parse(claim, &id, &addr)) {
        t->n_refused++;
        link_close(l, FL_LOG_WARN, "refused: server \"%s\" claims \"%s\", not ID@ADDRESS",
                   tlink_peer(l->ch)->name, claim);
        return;
    }
    if (l->outbound && id != l->want_id) {
        t->n_refused++;
        link_close(l, FL_LOG_WARN, "refused: expected server %llu, the peer is server %llu (%s)",
                   (unsigned long long)l->want_id, (unsigned long long)id, addr);
        return;
    }
    rv = make_pipes(l, &rp);
    if (rv != FL_OK) {
        link_close(l, FL_LOG_WARN, "socketpair: %s", strerror(errno));
        return;
    }
    uv_timer_stop(&l->timer);
    if (!l->outbound && t->n_handshaking > 0) {
        t->n_handshaking--;
    }
    if (l->holds_place) {
        l->holds_place = 0;
        fl_addrcap_give(&t->handshaking_per_address, l->ip);
    }
    l->state = L_RELAY;
    t->n_established++;
    uv_read_start((uv_stream_t *)&l->pipe, alloc_cb, pipe_read_cb);
    FL_DEBUG("raft link %s %s: established with server %llu", l->outbound ? "to" : "from", l->peer,
             (unsigned long long)id);
    if (l->outbound) {
        struct raft_uv_connect *req = l->req;
        l->req = NULL;
        l->cb(req, (struct uv_stream_s *)rp, 0);
    } else {
        t->accept_cb(&t->outer, id, addr, (struct uv_stream_s *)rp);
        if (l->state == L_RELAY) {
            rv = write_buf(l, 0, plain);
            if (rv != FL_OK) {
                link_close(l, FL_LOG_WARN, "relaying to raft: %s", fl_strerror(rv));
            }
        }
    }
}

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rg_link *l = s->data;
    struct fl_buf wire, plain;
    int was_open, rv;
    if (nread == 0 || l->state == L_CLOSING) {
        return;
    }
    if (nread < 0) {
        rv = tlink_eof(l->ch);
        link_close(l, rv == FL_OK && l->state == L_RELAY ? FL_LOG_DEBUG : FL_LOG_INFO, "%s%s",
                   nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread),
                   l->state == L_HANDSHAKE ? " during the handshake" : "");
        return;
    }
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    was_open = tlink_state(l->ch) == TLINK_OPEN;
    l->t->wire_received += (uint64_t)nread;
    rv = tlink_recv(l->ch, (const uint8_t *)buf->base, (size_t)nread, &wire, &plain);
    l->t->wire_sent += wire.len;
    l->t->bytes_received += plain.len;
    if (wire.len > 0 && write_buf(l, 1, &wire) != FL_OK && rv == FL_OK) {
        rv = FL_ENET;
    }
    if (rv != FL_OK) {
        if (was_open) {
            l->t->n_broken++;
        } else {
            l->t->n_refused++; /* a refused certificate, garbage, a stock raft handshake, ... */
        }
        link_close(l, FL_LOG_WARN, "%s; closing the link", tlink_errmsg(l->ch));
    } else if (!was_open && tlink_state(l->ch) == TLINK_OPEN) {
        established(l, &plain);
    } else if (plain.len > 0) {
        if (l->outbound) {
            link_close(l, FL_LOG_WARN, "unexpected data from the accepting side");
        } else if (write_buf(l, 0, &plain) != FL_OK) {
            link_close(l, FL_LOG_WARN, "relaying to raft failed");
        }
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

static void handshake_timeout(uv_timer_t *h)
{
    struct rg_link *l = h->data;
    l->t->n_handshake_timeouts++;
    link_close(l, FL_LOG_WARN, "handshake not finished within %d ms", RG_TRANSPORT_HANDSHAKE_MS);
}

/* TCP is connected (or accepted): start the secure channel. */
static int start_channel(struct rg_link *l)
{
    struct rg_transport *t = l->t;
    struct tlink_config c = {t->creds, TLINK_RAFT, t->name, NULL};
    struct fl_buf wire;
    int rv;
    rv = tlink_create(&c, l->outbound, &l->ch, NULL);
    if (rv != FL_OK) {
        return rv;
    }
    if (uv_tcp_nodelay(&l->tcp, 1) == 0) {
        t->n_nodelay++;
    }
    l->state = L_HANDSHAKE;
    uv_timer_start(&l->timer, handshake_timeout, RG_TRANSPORT_HANDSHAKE_MS, 0);
    if (uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, tcp_read_cb) != 0) {
        return FL_ENET;
    }
    if (l->outbound) {
        fl_buf_init(&wire);
        rv = tlink_start(l->ch, &wire);
        if (rv == FL_OK) {
            rv = write_buf(l, 1, &wire);
        }
        fl_buf_close(&wire);
    }
    return rv;
}

/* ---- connect ------------------------------------------------------------------ */

static void connected(uv_connect_t *req, int status)
{
    struct rg_link *l = req->data;
    int rv;
    if (l->state == L_CLOSING) {
        return;
    }
    if (status != 0) {
        link_close(l, FL_LOG_DEBUG, "connect: %s", uv_strerror(status));
        return;
    }
    rv = start_channel(l);
    if (rv != FL_OK) {
        link_close(l, FL_LOG_WARN, "starting the handshake: %s", fl_strerror(rv));
    }
}

static int dial(struct rg_link *l, const struct sockaddr *sa)
{
    int rv;
    uv_tcp_init(l->t->loop, &l->tcp);
    l->tcp.data = l;
    l->tcp_open = 1;
    l->handles++;
    l->state = L_CONNECT;
    l->conn.data = l;
    rv = uv_tcp_connect(&l->conn, &l->tcp, sa, connected);
    return rv == 0 ? FL_OK : FL_ENET;
}

static void resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rg_link *l = req->data;
    l->gai_pending = 0;
    if (l->state == L_CLOSING) {
        uv_freeaddrinfo(res);
        link_maybe_free(l);
        return;
    }
    if (status != 0 || res == NULL) {
        link_close(l, FL_LOG_WARN, "cannot resolve: %s", uv_strerror(status));
    } else if (dial(l, res->ai_addr) != FL_OK) {
        link_close(l, FL_LOG_WARN, "connect failed");
    }
    uv_freeaddrinfo(res);
}

static int split_addr(const char *address, char *host, size_t cap, char *port)
{
    const char *colon = strrchr(address, ':');
    size_t n;
    if (colon == NULL || colon == address || (n = (size_t)(colon - address)) >= cap ||
        strlen(colon + 1) == 0 || strlen(colon + 1) > 5) {
        return -1;
    }
    memcpy(host, address, n);
    host[n] = '\0';
    snprintf(port, 6, "%s", colon + 1);
    return 0;
}

static int sec_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req, raft_id id,
                       const char *address, raft_uv_connect_cb cb)
{
    struct rg_transport *t = outer->impl;
    struct rg_link *l;
    struct sockaddr_in sa;
    struct addrinfo hints;
    char host[128], port[6];
    if (t->closing) {
        return RAFT_CANCELED;
    }
    if (split_addr(address, host, sizeof host, port) != 0) {
        return RAFT_NOCONNECTION;
    }
    l = link_new(t, 1);
    if (l == NULL) {
        return RAFT_NOMEM;
    }
    l->want_id = id;
    snprintf(l->peer, sizeof l->peer, "%s (server %llu)", address, (unsigned long long)id);
    if (uv_ip4_addr(host, atoi(port), &sa) == 0) {
        if (dial(l, (const struct sockaddr *)&sa) != FL_OK) {
            link_close(l, 0, "connect failed");
            return RAFT_NOCONNECTION;
        }
    } else {
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET; /* like the stock transport (raft-notes §7) */
        hints.ai_socktype = SOCK_STREAM;
        l->gai.data = l;
        l->state = L_RESOLVE;
        if (uv_getaddrinfo(t->loop, &l->gai, resolved, host, port, &hints) != 0) {
            link_close(l, 0, "resolve failed");
            return RAFT_NOCONNECTION;
        }
        l->gai_pending = 1;
    }
    /* From here on, the outcome goes through cb, exactly once. */
    l->req = req;
    l->cb = cb;
    return 0;
}

/* ---- listen ------------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status)
{
    struct rg_transport *t = server->data;
    struct rg_link *l;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (status != 0 || t->closing) {
        return;
    }
    l = link_new(t, 0);
    if (l == NULL) {
        return; /* the connection stays in the backlog; retried on the next one */
    }
    uv_tcp_init(t->loop, &l->tcp);
    l->tcp.data = l;
    l->tcp_open = 1;
    l->handles++;
    snprintf(l->peer, sizeof l->peer, "(unknown)");
    if (uv_accept(server, (uv_stream_t *)&l->tcp) != 0) {
        link_close(l, 0, "accept failed");
        return;
    }
    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET) {
        char ip[64];
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        snprintf(l->peer, sizeof l->peer, "%s:%u", ip, ntohs(sin->sin_port));
        snprintf(l->ip, sizeof l->ip, "%s", ip);
    }
    if (t->n_handshaking >= RG_TRANSPORT_HANDSHAKES_MAX) {
        t->n_refused++;
        link_close(l, FL_LOG_DEBUG, "refused: %u handshakes already in progress", t->n_handshaking);
        return;
    }
    if (!fl_addrcap_take(&t->handshaking_per_address, l->ip)) {
        t->n_refused++;
        link_close(l, FL_LOG_DEBUG, "refused: %d handshakes from %s already in progress",
                   RG_TRANSPORT_HANDSHAKES_PER_ADDRESS, l->ip);
        return;
    }
    l->holds_place = 1;
    t->n_handshaking++;
    l->state = L_HANDSHAKE;
    if (start_channel(l) != FL_OK) {
        link_close(l, FL_LOG_WARN, "starting the handshake failed");
    }
}

static int bind_listener(struct rg_transport *t, char *errmsg)
{
    struct sockaddr_in sa;
    char host[128], port[6];
    struct addrinfo hints, *res = NULL;
    int rv;
    if (split_addr(t->bind_addr, host, sizeof host, port) != 0) {
        return fl_errf(errmsg, FL_EINVAL, "bad address %s", t->bind_addr);
    }
    if (uv_ip4_addr(host, atoi(port), &sa) != 0) {
        /* A host name: resolved once, at start, like the stock transport. */
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
            return fl_errf(errmsg, FL_ENET, "cannot resolve %s", t->bind_addr);
        }
        memcpy(&sa, res->ai_addr, sizeof sa);
        freeaddrinfo(res);
    }
    t->listener = fl_calloc(1, sizeof *t->listener);
    if (t->listener == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    uv_tcp_init(t->loop, t->listener);
    t->listener->data = t;
    rv = uv_tcp_bind(t->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)t->listener, 128, on_connection);
    }
    if (rv != 0) {
        return fl_errf(errmsg, FL_ENET, "listen on %s: %s", t->bind_addr, uv_strerror(rv));
    }
    return FL_OK;
}

static void listener_closed(uv_handle_t *h)
{
    struct rg_transport *t = h->data;
    fl_free(h);
    t->listener = NULL;
    maybe_transport_closed(t);
}

static int sec_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct rg_transport *t = outer->impl;
    char err[FL_ERRMSG_SIZE];
    t->accept_cb = cb;
    if (bind_listener(t, err) != FL_OK) {
        snprintf(outer->errmsg, sizeof outer->errmsg, "%s", err);
        FL_ERROR("raft transport: %s", err);
        if (t->listener != NULL) {
            uv_close((uv_handle_t *)t->listener, listener_closed);
        }
        return RAFT_IOERR;
    }
    return 0;
}

/* ---- init and close ----------------------------------------------------------- */

static int sec_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct rg_transport *t = outer->impl;
    t->id = id;
    snprintf(t->name, sizeof t->name, "%llu@%s", (unsigned long long)id, address);
    if (t->bind_addr[0] == '\0') {
        snprintf(t->bind_addr, sizeof t->bind_addr, "%s", address);
    }
    return 0;
}

static void sec_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct rg_transport *t = outer->impl;
    struct rg_link *l, *next;
    t->closing = 1;
    t->close_cb = cb;
    if (t->listener != NULL) {
        uv_close((uv_handle_t *)t->listener, listener_closed);
    }
    for (l = t->links; l != NULL; l = next) {
        next = l->next; /* link_close may free l */
        link_close(l, 0, "closing");
    }
    maybe_transport_closed(t);
}

int rg_transport_init(struct rg_transport *t, struct uv_loop_s *loop, const char *bind_addr,
                      struct tls_creds *creds, int plaintext)
{
    memset(t, 0, sizeof *t);
    if (creds == NULL || tls_creds_self(creds)->role != PKI_ROLE_SERVER) {
        return RAFT_INVALID;
    }
    t->creds = creds;
    fl_addrcap_init(&t->handshaking_per_address, RG_TRANSPORT_HANDSHAKES_PER_ADDRESS);
    t->loop = loop;
#ifdef FLOTILLA_TEST_HOOKS
    t->plaintext = plaintext;
    if (plaintext) {
        return rg__plain_init(t, loop, bind_addr);
    }
#else
    if (plaintext) {
        return RAFT_INVALID; /* a test build's alone (docs/ARCHITECTURE.md, "Test hooks") */
    }
#endif
    if (bind_addr != NULL) {
        snprintf(t->bind_addr, sizeof t->bind_addr, "%s", bind_addr);
    }
    t->outer.version = 1;
    t->outer.impl = t;
    t->outer.init = sec_init;
    t->outer.listen = sec_listen;
    t->outer.connect = sec_connect;
    t->outer.close = sec_close;
    return 0;
}

void rg_transport_close(struct rg_transport *t)
{
#ifdef FLOTILLA_TEST_HOOKS
    if (t->plaintext) {
        rg__plain_close(t);
    }
#endif
    if (t->creds != NULL) {
        fl_addrcap_close(&t->handshaking_per_address);
    }
    t->creds = NULL;
}
