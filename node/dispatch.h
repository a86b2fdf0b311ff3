/* node/dispatch — agent connections and, on the leader, the dispatch loop.
 *
 * Every server listens for agents (--agent-addr). A follower answers an
 * agent's HELLO with the leader's agent address; the leader keeps one session
 * per agent id, assigns queued units to nodes with free cap through the pure
 * scheduler (scheduler/), commits each assignment (with its attempt and
 * fencing token) before it sends RUN, commits results in batches and then
 * acknowledges them, re-queues the units of an agent silent past lost_after,
 * and after a leader change reconciles what agents report running with the
 * replicated state (docs/SCHEDULER.md). */
#ifndef FL_NODE_DISPATCH_H
#define FL_NODE_DISPATCH_H

#include <jansson.h>

#include "common/buf.h"
#include "scheduler/sched.h"
#include "store/store.h"

struct node_server;
struct dispatch;

int dispatch_create(struct node_server *s, struct dispatch **out, char *errmsg);
/* Stop listening, close every session; cb once all handles are closed. */
void dispatch_close(struct dispatch *d, void (*cb)(void *data), void *data);

/* Something changed that may let units be placed: run a round soon. */
void dispatch_kick(struct dispatch *d);
/* 1 if the agent of `node` has a session with this server. */
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
