/* leader/ — private to the dispatcher (leader/dispatch*.c): its state, one
 * attached agent, the task cache, and the contracts between its files:
 *   dispatch_round.c      the task and node caches, the placement round, cancels
 *   dispatch_run.c        the RUN frame of an applied assignment
 *   dispatch_results.c    results and streamed logs from agents
 *   dispatch_reconcile.c  an agent's HELLO: registration, reconcile, WELCOME
 *   dispatch.c            the tick (leadership, lost agents), create/close, stats
 * Everything runs on one thread; time, proposals and the store come through
 * the leader's port, agents through struct dispatch_agents. */
#ifndef FL_LEADER_DISPATCH_INT_H
#define FL_LEADER_DISPATCH_INT_H

#include "leader/dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "common/strmap.h"
#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "spec/spec.h"

#define RECONCILE_MS   3000 /* a re-attached agent has this long to report a unit */
#define LOG_KEEP_BYTES (256 * 1024)
#define LOG_UNITS_MAX  2000
#define SPEC_CACHE_MAX 4096
#define CANDIDATES_MAX 8192

/* An agent attached to this server (the leader). */
struct dagent {
    char id[STORE_NODE_ID_MAX];
    void *link;
    int closing; /* its link is being closed: send nothing more */
    uint64_t last_seen;
    /* Runs the agent still has that are no longer its own (reported at
     * HELLO after they were taken back, and cancelled then), by run_key:
     * they hold real slots until their DONE arrives, so placement counts
     * them. */
    struct strmap stale;
    uint32_t reported_running; /* its last HELLO or HEARTBEAT */
    /* Units assigned to it whose RUN waits for a slot: an assignment
     * proposed before a re-attach revealed stale units may commit while
     * those still run (dispatch_run.c). */
    struct strmap held;
    /* Reports about units not its own (dispatch_results.c): when the last
     * was logged, and how many were not logged since. */
    uint64_t foreign_logged_ms;
    uint64_t foreign_quiet;
};

/* What the leader remembers of a task to place and run its units. */
struct task_cache {
    int32_t priority;
    unsigned n_constraints;
    char constraints[STORE_TASK_CONSTRAINTS][STORE_NODE_LABEL_MAX];
    const char *cons_ptrs[STORE_TASK_CONSTRAINTS];
    uint32_t timeout_ms;
    uint32_t n_units;
    uint32_t max_running; /* 0 = no limit */
    int placement;        /* FSM_PLACE_*: host pins each unit to the node its host names */
    char name[STORE_TASK_NAME_MAX];
    struct store_job_ref job; /* a cron job's run: which one */
    struct node_spec spec;
    int spec_ok;
};

struct missing {
    char node[STORE_NODE_ID_MAX];
    uint64_t token;
    uint64_t deadline;
};

/* A node as the store has it, with what only the leader knows. */
struct cnode {
    struct store_node n;
    /* Its labels and the implicit "node=<id>" every node carries (jobs in
     * mode all pin one task to each node with it). */
    char self_label[STORE_NODE_ID_MAX + 8];
    const char *label_ptrs[STORE_NODE_LABELS + 1];
    uint32_t inflight; /* assignments proposed, not yet answered */
};

struct dispatch {
    const struct leader_io *io;
    struct dispatch_agents agents;
    struct dispatch_config cfg;
    int closing;
    int timers_open;  /* the port's timer and alarm may still fire */
    unsigned n_asked; /* proposals not yet answered */
    void (*close_cb)(void *data);
    void *close_data;

    struct strmap by_id;        /* agent id -> struct dagent (attached) */
    struct strmap pending;      /* unit key -> node id (strdup): assignment in flight */
    struct strmap missing;      /* unit key -> struct missing */
    struct strmap disconnected; /* node -> uint64_t * since (ms) */
    struct strmap lost_sent;    /* node -> (void *)1: NODE_LOST proposed */
    struct strmap logs;         /* unit key -> struct fl_buf * */
    struct strmap tasks;        /* task id -> struct task_cache */
    struct strmap cancels;      /* task id -> (void *)1: cancel sweep to do */

    /* The nodes as last read from the store (read again after any applied
     * command that changes a node's record or its running count). */
    struct cnode *nodes;
    unsigned n_nodes, cap_nodes;
    struct strmap node_index;   /* node id -> (uintptr_t) index + 1 */
    struct strmap counts_dirty; /* node id -> (void *)1: its running count changed */
    int nodes_dirty;            /* a node came, went or changed otherwise: read them all */

    int leader;
    uint64_t leader_since;
    int round_pending;
    int in_round; /* round_run holds pointers into the task cache: no eviction */

    uint64_t n_assigned, n_assign_refused, n_runs, n_results, n_stale, n_lost, n_requeued;
    uint64_t n_rounds;
    uint64_t n_held; /* RUNs that waited for a slot */
    /* DONE and LOG frames about units not assigned to their agent: refused. */
    uint64_t n_foreign_done, n_foreign_log;
};

static inline uint64_t now_ms(struct dispatch *d)
{
    return d->io->now_ms(d->io->impl);
}

static inline struct store *dstore(struct dispatch *d)
{
    return d->io->store(d->io->impl);
}

static inline struct fsm *dfsm(struct dispatch *d)
{
    return d->io->fsm(d->io->impl);
}

/* Propose through the port. Every answer reaches cb, also after
 * dispatch_close (cb frees its context and checks d->closing); the
 * dispatcher is freed once its timers are closed and no answer is due. */
int dpropose(struct dispatch *d, const struct fsm_cmd *c, leader_done_cb cb, void *data);

static inline void unit_key(char *out, size_t cap, const char *task, uint32_t unit)
{
    snprintf(out, cap, "%s/%u", task, unit);
}

/* One run of a unit: the same unit may run under an old token (taken back,
 * being cancelled) and a new one on the same agent. */
static inline void run_key(char *out, size_t cap, const struct aproto_unit_ref *r)
{
    snprintf(out, cap, "%s/%u#%llu", r->task_id, r->unit, (unsigned long long)r->token);
}

/* dispatch.c */
int dispatch__is_leader(struct dispatch *d);
struct dagent *dispatch__agent_of(struct dispatch *d, const char *node);
int dispatch__send(struct dispatch *d, const char *node, const struct aproto_msg *m);
void dispatch__send_cancel(struct dispatch *d, const char *node, const char *task, uint32_t unit,
                           uint32_t attempt, uint64_t token);
void dispatch__close_agent(struct dispatch *d, struct dagent *a, const char *why);
void dispatch__ignore(void *data, int err, const struct fsm_result *res);

/* dispatch_reconcile.c */
int dispatch__welcome(struct dispatch *d, void *link, const struct aproto_hello *h);

/* dispatch_round.c */
void dispatch__fill_sched_node(struct dispatch *d, unsigned i, struct sched_node *sn);
int dispatch__nodeunit_parse(const char *node, const void *key, size_t kl, char *task, size_t cap,
                             uint32_t *unit);
/* An effect of an applied entry (fsm/fsm.h "Effects"), through the port. */
void dispatch__on_effect(void *data, const struct fsm_effect *e);
void dispatch__refresh_nodes(struct dispatch *d, struct store_txn *t);
/* Bring the node cache to the store's state: every node when nodes_dirty,
 * else the nodes in counts_dirty. */
void dispatch__sync_nodes(struct dispatch *d, struct store_txn *t);
void dispatch__task_cache_free(struct task_cache *tc);
void dispatch__round_cb(void *arg);
/* The cached task (loaded from t on a miss); NULL if it does not exist. */
struct task_cache *dispatch__task_get(struct dispatch *d, struct store_txn *t, const char *id);

/* dispatch_run.c: send RUN for a unit assigned to `node`, as the store has it
 * (nothing if the agent is gone or the unit is no longer its own) — or hold
 * it while the agent has no free slot: its node's running count in the store
 * covers the unit, but units taken back from it may still occupy slots. */
void dispatch__run_or_hold(struct dispatch *d, const char *task_id, uint32_t unit,
                           const char *node);
/* Send the held RUNs of `a` that fit now. */
void dispatch__release_held(struct dispatch *d, struct dagent *a);
/* The slots of `a` taken by units no longer its own. */
uint32_t dispatch__stale_slots(const struct dagent *a);

/* dispatch_results.c: DONE and LOG count only for units assigned to the
 * agent whose link they arrive on (docs/SCHEDULER.md "Reports from agents"). */
void dispatch__on_done(struct dispatch *d, struct dagent *a, const struct aproto_done *dn);
void dispatch__on_log(struct dispatch *d, struct dagent *a, const struct aproto_log *lg);
/* STARTED: the unit is reported, if it is the agent's own. */
void dispatch__on_started(struct dispatch *d, struct dagent *a, const struct aproto_started *st);

#endif
