/* leader/dispatch — the leader's dispatch loop, on the leader's port
 * (leader/leader_io.h).
 *
 * It assigns queued units to nodes with free cap through the pure scheduler
 * (scheduler/), commits each assignment (with its attempt and fencing token)
 * before it sends RUN, commits results and then acknowledges them, commits a
 * node lost once its agent has been away past lost_after, takes back units an
 * agent no longer reports, and after a leader change reconciles what agents
 * report running with the replicated state (docs/SCHEDULER.md).
 *
 * It speaks to agents through a second port, struct dispatch_agents: the
 * server's agent links (node/agentlink.c) on a real server, a test's
 * in-memory agents on the Raft fixture. A link that has proven its agent's
 * identity calls dispatch_attach; every message of an attached agent goes to
 * dispatch_agent_msg; its end to dispatch_detach. Everything runs on one
 * thread. */
#ifndef FL_LEADER_DISPATCH_H
#define FL_LEADER_DISPATCH_H

#include <jansson.h>

#include "agentproto/aproto.h"
#include "common/buf.h"
#include "leader/leader_io.h"
#include "scheduler/sched.h"
#include "store/store.h"

struct dispatch;

/* How the dispatcher reaches attached agents; `link` is what the link gave
 * dispatch_attach. */
struct dispatch_agents {
    void *impl;
    /* Queue a message to the agent; FL_OK if it was queued. */
    int (*send)(void *impl, void *link, const struct aproto_msg *m);
    /* End the agent's link; the link calls dispatch_detach (possibly from
     * within this call). Nothing is sent to it afterwards. */
    void (*close)(void *impl, void *link, const char *why);
};

struct dispatch_config {
    uint64_t lost_after_ms;       /* an agent away this long: its node is committed lost */
    uint32_t heartbeat_ms;        /* agents' heartbeat period, told at WELCOME */
    int placement_pack;           /* SCHED_PACK instead of SCHED_SPREAD */
    unsigned char secret_key[32]; /* opens a task's secret_env (spec/spec.h) */
};

#define DISPATCH_TICK_MS 250

int dispatch_create(const struct leader_io *io, const struct dispatch_agents *agents,
                    const struct dispatch_config *cfg, struct dispatch **out);
/* Stop the timers and forget the agents (their links are closed by their
 * owner); cb once nothing fires again. */
void dispatch_close(struct dispatch *d, void (*cb)(void *data), void *data);

/* An agent whose identity its link has checked says HELLO to this server.
 * On the leader it is registered, reconciled and welcomed (FL_OK; the
 * WELCOME is sent through the port); FL_EEXIST if an agent of this id is
 * attached, FL_ENOTLEADER if this server does not lead (nothing sent). */
int dispatch_attach(struct dispatch *d, void *link, const struct aproto_hello *h);
/* An attached agent's link has ended. */
void dispatch_detach(struct dispatch *d, const char *agent);
/* A message (HEARTBEAT, STARTED, LOG, DONE) from an attached agent. */
void dispatch_agent_msg(struct dispatch *d, const char *agent, const struct aproto_msg *m);

/* Something changed that may let units be placed: run a round soon. */
void dispatch_kick(struct dispatch *d);
/* 1 if the agent of `node` is attached to this server. */
int dispatch_connected(struct dispatch *d, const char *node);
json_t *dispatch_stats_json(struct dispatch *d);
/* Why `u` cannot be placed now, over the nodes in the store. */
void dispatch_why(struct dispatch *d, struct store_txn *t, const struct sched_unit *u,
                  struct sched_why *out);
/* Append a unit's streamed output kept in memory; 0 if none is kept. */
int dispatch_logs(struct dispatch *d, const char *task, uint32_t unit, struct fl_buf *out);
/* Send CANCEL for every unit running on `node`; returns how many. */
unsigned dispatch_cancel_node(struct dispatch *d, const char *node);

#endif
