/* raft/rg_transport — the Raft transport between servers.
 *
 * Wraps the library's stock TCP transport and sets TCP_NODELAY on every
 * Raft connection (the stock transport never does; with Nagle and delayed
 * ACKs a few requests in flight stall ~40 ms, raft-notes §7). The wrapper is
 * also the seam where the authenticated, encrypted channel goes. */
#ifndef FL_RAFT_RG_TRANSPORT_H
#define FL_RAFT_RG_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>

struct rg_transport {
    struct raft_uv_transport outer; /* handed to raft_uv_init */
    struct raft_uv_transport inner; /* the stock TCP transport */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    unsigned n_nodelay; /* sockets configured (tests read it) */
};

/* Initialise both transports on `loop`; bind_addr may be NULL. Returns a
 * RAFT_* code. */
int rg_transport_init(struct rg_transport *t, struct uv_loop_s *loop, const char *bind_addr);
/* Release the stock transport; call from raft's close callback after
 * raft_uv_close. */
void rg_transport_close(struct rg_transport *t);

#endif
