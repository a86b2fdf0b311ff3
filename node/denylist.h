/* node/denylist — the revoked agents as every link's handshake sees them
 * (docs/SECURITY.md, "Revocation").
 *
 * The deny-list is replicated: AGENT_REVOKE turns an agent's record in the
 * agentkeys table revoked (fsm/agentkey.c). The TLS handshakes of the agent
 * and blob ports (tls/creds.h deny hook) run on the loop and on blob threads,
 * so the server keeps a copy of the revoked names that any thread may ask,
 * refreshed from the store on the loop (every housekeeping tick, 500 ms) and
 * closing the open links of agents that became revoked. The leader also
 * checks the record itself at every HELLO, so no revoked agent is attached
 * even in the moments before a refresh. */
#ifndef FL_NODE_DENYLIST_H
#define FL_NODE_DENYLIST_H

#include "pki/pki.h"
#include "store/store.h"

struct denylist;

int denylist_create(struct denylist **out);
void denylist_destroy(struct denylist *d); /* NULL is a no-op */
/* Read the revoked agent names from the store (loop thread). FL_OK or the
 * store's error (the copy is kept as it was). */
int denylist_refresh(struct denylist *d, struct store *st);
/* 1 if `name` is revoked (any thread). */
int denylist_has(struct denylist *d, const char *name);
/* The tls_deny_fn of the server's credentials: agent certificates whose name
 * is revoked are refused. */
int denylist_hook(void *ud, const struct pki_identity *peer, const char *serial);
/* How many names are on the list. */
unsigned denylist_count(struct denylist *d);

#endif
