/* node/agentlink — the server's side of the agent links: the agent listener
 * (--agent-addr), the secure channel (docs/SECURITY.md "Links"), frames, and
 * the agent's proof of identity at HELLO. A follower answers HELLO with the
 * leader's agent address; on the leader a proven agent is handed to the
 * dispatcher (leader/dispatch.h), which talks to it through the port this
 * module implements. */
#ifndef FL_NODE_AGENTLINK_H
#define FL_NODE_AGENTLINK_H

#include <jansson.h>

#include "leader/dispatch.h"

struct node_server;
struct agentlink;

int agentlink_create(struct node_server *s, struct agentlink **out, char *errmsg);
/* The dispatcher's port to the agents over these links. */
void agentlink_port(struct agentlink *l, struct dispatch_agents *out);
/* The dispatcher welcomed agents go to (NULL: none yet). */
void agentlink_set_dispatch(struct agentlink *l, struct dispatch *d);
/* Stop listening, close every link (each attached agent is detached from
 * the dispatcher); cb once all handles are closed. */
void agentlink_close(struct agentlink *l, void (*cb)(void *data), void *data);
/* Add the links' counters (bad_frames, refused_connections) to o. */
void agentlink_stats(struct agentlink *l, json_t *o);

/* Close the links of agents on the deny-list (their certificate's name). */
struct denylist;
void agentlink_close_denied(struct agentlink *l, struct denylist *d);

#endif
