/* raft/rg_transport — the Raft transport between servers.
 *
 * Issue 5 and raft-notes §7: the stock TCP transport authenticates nobody
 * (anyone who reaches the port can pose as a peer) and never sets
 * TCP_NODELAY. This transport owns the TCP sockets and runs the secure
 * link (tls/tlink.h, kind TLINK_RAFT: mutual TLS 1.3, server certificates
 * only) on each of them; raft gets
 * one end of a socketpair(AF_UNIX) as a raft_malloc'd uv_pipe_t and we relay
 * between the other end and the channel:
 *
 *   outbound (we connected):  raft -> pipe -> tlink_send -> TCP
 *   inbound  (we accepted):   TCP -> tlink_recv -> pipe -> raft
 *
 * Each side claims "ID@RAFT_ADDR" in its HELLO; the connecting
 * side checks that the peer is the server id raft asked for, and the
 * accepting side hands raft the authenticated id and address. A connection
 * is handed to raft only once the handshake is complete, so a failed
 * handshake is a failed connect (RAFT_NOCONNECTION; raft retries after its
 * connect_retry_delay). On an authentication failure, a damaged frame, EOF
 * or an error, both ends are closed: raft sees EOF or a write error and
 * reconnects. A handshake must finish within RG_TRANSPORT_HANDSHAKE_MS.
 * Backpressure: reading the source stops while the destination's write
 * queue holds more than RG_TRANSPORT_HIGH_WATER bytes and resumes below
 * RG_TRANSPORT_LOW_WATER.
 *
 * The plaintext mode (`flotilla server --raft-plaintext`) exists only to
 * measure what the encryption costs (bench/run writes --compare-plaintext):
 * it is the stock TCP transport with TCP_NODELAY, unauthenticated. Only a
 * test build has it (docs/ARCHITECTURE.md, "Test hooks"); in a production
 * build rg_transport_init refuses plaintext with RAFT_INVALID. */
#ifndef FL_RAFT_RG_TRANSPORT_H
#define FL_RAFT_RG_TRANSPORT_H

#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>

#include "common/addrcap.h"
#include "tls/creds.h"

#define RG_TRANSPORT_HANDSHAKE_MS           5000
#define RG_TRANSPORT_HIGH_WATER             (8u << 20)
#define RG_TRANSPORT_LOW_WATER              (1u << 20)
#define RG_TRANSPORT_HANDSHAKES_MAX         64 /* inbound handshakes at once */
#define RG_TRANSPORT_HANDSHAKES_PER_ADDRESS 8  /* ... of them from one address */

struct rg_link;

struct rg_transport {
    struct raft_uv_transport outer; /* handed to raft_uv_init */
    struct raft_uv_transport inner; /* plaintext mode: the stock TCP transport */
    int plaintext;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    unsigned n_nodelay; /* sockets configured (tests read it) */

    /* Encrypted mode. */
    struct uv_loop_s *loop;
    struct tls_creds *creds; /* not owned */
    uint64_t id;
    char name[160]; /* "ID@ADDR": the identity we claim */
    char bind_addr[128];
    struct uv_tcp_s *listener;
    struct rg_link *links;
    unsigned n_handshaking;                    /* inbound links before their handshake completed */
    struct fl_addrcap handshaking_per_address; /* ... per peer address */
    int closing;

    /* Counters (status, tests). */
    uint64_t n_established;        /* links handed to raft */
    uint64_t n_refused;            /* handshakes refused (bad certificate, bad bytes, wrong peer,
                                      too many at once, from one address) */
    uint64_t n_handshake_timeouts; /* peers silent past the handshake deadline */
    uint64_t n_broken;             /* established links closed on a bad frame */
    uint64_t bytes_sent;           /* plaintext raft bytes sealed onto outbound links */
    uint64_t bytes_received;       /* plaintext raft bytes opened from inbound links */
    uint64_t wire_sent;            /* bytes written to peers (handshakes and frames) */
    uint64_t wire_received;        /* bytes read from peers */
};

/* Initialise on `loop`. bind_addr is where we listen (raft's own address if
 * NULL). creds: this server's credentials (kept, not owned; a server
 * certificate is required, also in plaintext mode, so that a benchmark run
 * is configured like a real one). Returns a RAFT_* code. */
int rg_transport_init(struct rg_transport *t, struct uv_loop_s *loop, const char *bind_addr,
                      struct tls_creds *creds, int plaintext);
/* Release what is left; call from raft's close callback after raft_uv_close
 * (raft has closed the transport through outer.close by then). */
void rg_transport_close(struct rg_transport *t);

/* Plaintext mode (rg_transport_plain.c). */
int rg__plain_init(struct rg_transport *t, struct uv_loop_s *loop, const char *bind_addr);
void rg__plain_close(struct rg_transport *t);

#endif
