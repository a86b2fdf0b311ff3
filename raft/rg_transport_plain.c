/* The plaintext Raft transport, for measurement only (raft/rg_transport.h):
 * the stock TCP transport wrapped to set TCP_NODELAY on every connection
 * (raft-notes §7, "Delegating wrapper"). Unauthenticated: never use it for a
 * real cluster. Compiled in only with FLOTILLA_TEST_HOOKS (docs/ARCHITECTURE.md,
 * "Test hooks"). */
#ifdef FLOTILLA_TEST_HOOKS
#include <string.h>
#include <uv.h>

#include "raft/rg_transport.h"

struct connect_req {
    struct rg_transport *t;
    struct raft_uv_connect inner_req;
    struct raft_uv_connect *outer_req;
    raft_uv_connect_cb cb;
};

static void set_nodelay(struct rg_transport *t, struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP && uv_tcp_nodelay((uv_tcp_t *)stream, 1) == 0) {
        t->n_nodelay++;
    }
}

static int wrap_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct rg_transport *t = outer->impl;
    return t->inner.init(&t->inner, id, address);
}

static void inner_accept(struct raft_uv_transport *inner, raft_id id, const char *address,
                         struct uv_stream_s *stream)
{
    struct rg_transport *t = inner->data;
    set_nodelay(t, stream);
    t->accept_cb(&t->outer, id, address, stream);
}

static int wrap_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct rg_transport *t = outer->impl;
    t->accept_cb = cb;
    return t->inner.listen(&t->inner, inner_accept);
}

static void inner_connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct connect_req *c = req->data;
    struct raft_uv_connect *outer_req = c->outer_req;
    raft_uv_connect_cb cb = c->cb;
    if (status == 0) {
        set_nodelay(c->t, stream);
    }
    raft_free(c);
    cb(outer_req, stream, status);
}

static int wrap_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req, raft_id id,
                        const char *address, raft_uv_connect_cb cb)
{
    struct rg_transport *t = outer->impl;
    struct connect_req *c = raft_malloc(sizeof *c);
    int rv;
    if (c == NULL) {
        return RAFT_NOMEM;
    }
    memset(c, 0, sizeof *c);
    c->t = t;
    c->outer_req = req;
    c->cb = cb;
    c->inner_req.data = c;
    rv = t->inner.connect(&t->inner, &c->inner_req, id, address, inner_connect_cb);
    if (rv != 0) {
        raft_free(c);
    }
    return rv;
}

static void inner_close_cb(struct raft_uv_transport *inner)
{
    struct rg_transport *t = inner->data;
    /* raft_uv finds itself through the transport it was given. */
    t->close_cb(&t->outer);
}

static void wrap_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct rg_transport *t = outer->impl;
    t->close_cb = cb;
    t->inner.close(&t->inner, inner_close_cb);
}

int rg__plain_init(struct rg_transport *t, struct uv_loop_s *loop, const char *bind_addr)
{
    int rv;
    t->inner.version = 1;
    t->inner.data = t; /* kept by raft_uv_tcp_init */
    rv = raft_uv_tcp_init(&t->inner, loop);
    if (rv != 0) {
        return rv;
    }
    if (bind_addr != NULL) {
        rv = raft_uv_tcp_set_bind_address(&t->inner, bind_addr);
        if (rv != 0) {
            raft_uv_tcp_close(&t->inner);
            return rv;
        }
    }
    t->outer.version = 1;
    t->outer.impl = t;
    t->outer.init = wrap_init;
    t->outer.listen = wrap_listen;
    t->outer.connect = wrap_connect;
    t->outer.close = wrap_close;
    return 0;
}

void rg__plain_close(struct rg_transport *t)
{
    raft_uv_tcp_close(&t->inner);
}

#else
/* ISO C wants a translation unit to declare something. */
typedef int rg__no_plain_transport;
#endif
