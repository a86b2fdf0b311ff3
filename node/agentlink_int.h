/* node/ — private to the agent links (node/agentlink*.c):
 *   agentlink.c        accept, the secure channel, frames, sending, closing
 *   agentlink_hello.c  HELLO: the agent's identity, the follower's redirect,
 *                      the hand-over to the dispatcher
 * Everything runs on the server's loop thread. */
#ifndef FL_NODE_AGENTLINK_INT_H
#define FL_NODE_AGENTLINK_INT_H

#include "node/agentlink.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "agentproto/aproto.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/addrcap.h"
#include "tls/tlink.h"
#include "node/node_int.h"

#define AGENTLINK_SWEEP_MS 1000

struct session {
    uv_tcp_t tcp;
    struct agentlink *l;
    struct tlink *ch; /* the TLS link (docs/SECURITY.md "Links") */
    char peer[64];    /* remote address, for logs */
    struct aproto_reader rd;
    char id[STORE_NODE_ID_MAX];
    int welcomed;    /* attached to the dispatcher */
    char ip[64];     /* the peer's address, for the per-address limit */
    int holds_place; /* counted among the connections not yet admitted */
    int closing;
    int shutting; /* closing once the queued writes are out */
    uint64_t opened_ms;
    struct session *prev, *next;
};

struct write_req {
    uv_write_t req;
    uint8_t *data;
};

struct agentlink {
    struct node_server *s;
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep; /* sessions that never said HELLO */
    struct dispatch *d;
    struct session *sessions;
    int open_handles;
    int closing;
    void (*close_cb)(void *data);
    void *close_data;
    uint64_t n_bad_frames;
    uint64_t n_refused; /* connections refused by the TLS handshake or the identity check */
    struct fl_addrcap unadmitted; /* connections not yet admitted, per peer address */
    unsigned n_unadmitted;
    uint64_t n_refused_per_address; /* over AGENTLINK_UNADMITTED_PER_ADDRESS */
    uint64_t n_refused_busy;        /* over AGENTLINK_UNADMITTED_MAX */
};

/* Connections that have not said a good HELLO yet (a TLS handshake, or an
 * open link before HELLO): at most this many from one address, this many in
 * all, each for at most AGENTLINK_HELLO_MS (docs/SECURITY.md, "Limits before
 * authentication"). Admitted agents are not counted: many may share an
 * address behind NAT. */
#define AGENTLINK_UNADMITTED_PER_ADDRESS 16
#define AGENTLINK_UNADMITTED_MAX         1024
#define AGENTLINK_HELLO_MS               10000

/* agentlink.c */
/* A good HELLO: the session stops counting against the limits above. */
void agentlink__admitted(struct session *ss);
int agentlink__send_msg(struct session *ss, const struct aproto_msg *m);
void agentlink__send_error(struct session *ss, const char *code, const char *msg);
void agentlink__close(struct session *ss, const char *why);
void agentlink__close_after_write(struct session *ss);

/* agentlink_hello.c */
void agentlink__on_hello(struct session *ss, const struct aproto_hello *h);

#endif
