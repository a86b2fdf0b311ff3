/* node/ — private to the dispatcher (node/dispatch*.c): its state, one
 * agent session, the task cache, and the contracts between its files:
 *   dispatch_link.c     agent connections, the secure channel, frames, sending
 *   dispatch_hello.c    HELLO: agent identity, registration, reconcile
 *   dispatch_round.c    the task and node caches, the placement round, cancels
 *   dispatch_results.c  results and streamed logs from agents
 *   dispatch.c          the tick (leadership, lost agents), create/close, stats
 * Everything runs on the server's loop thread. */
#ifndef FL_NODE_DISPATCH_INT_H
#define FL_NODE_DISPATCH_INT_H

#include "node/dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "agentproto/aproto.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/ident.h"
#include "common/log.h"
#include "common/schan.h"
#include "common/strmap.h"
#include "node/node_int.h"
#include "node/spec.h"
#include "fsm/cmd.h"

#define TICK_MS        250
#define RECONCILE_MS   3000 /* a re-attached agent has this long to report a unit */
#define LOG_KEEP_BYTES (256 * 1024)
#define LOG_UNITS_MAX  2000
#define SPEC_CACHE_MAX 4096
#define CANDIDATES_MAX 8192

struct session {
    uv_tcp_t tcp;
    struct dispatch *d;
    struct schan *ch; /* the secure channel (docs/SECURITY.md "Links") */
    char peer[64];    /* remote address, for logs */
    struct aproto_reader rd;
    char id[STORE_NODE_ID_MAX];
    int welcomed;
    int closing;
    int shutting; /* closing once the queued writes are out */
    uint64_t last_seen;
    /* Units the agent still runs that are no longer its own (reported at
     * HELLO after they were taken back, and cancelled then): they hold real
     * slots until their DONE arrives, so placement counts them. */
    struct strmap stale;
    uint32_t reported_running; /* its last HELLO or HEARTBEAT */
    struct session *prev, *next;
};

struct write_req {
    uv_write_t req;
    uint8_t *data;
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

struct cnode {
    struct store_node n;
    /* Its labels and the implicit "node=<id>" every node carries (jobs in
     * mode all pin one task to each node with it). */
    char self_label[STORE_NODE_ID_MAX + 8];
    const char *label_ptrs[STORE_NODE_LABELS + 1];
    uint32_t inflight; /* assignments proposed, not yet applied */
};

struct dispatch {
    struct node_server *s;
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t round_timer;
    uv_timer_t tick;
    int open_handles;
    int closing;
    void (*close_cb)(void *data);
    void *close_data;

    struct session *sessions;
    struct strmap by_id;        /* agent id -> session (welcomed) */
    struct strmap pending;      /* unit key -> (void *)1: assignment in flight */
    struct strmap missing;      /* unit key -> struct missing */
    struct strmap disconnected; /* node -> uint64_t * since (ms) */
    struct strmap lost_sent;    /* node -> (void *)1: NODE_LOST proposed */
    struct strmap logs;         /* unit key -> struct fl_buf * */
    struct strmap tasks;        /* task id -> struct task_cache */
    struct strmap cancels;      /* task id -> (void *)1: cancel sweep to do */

    struct cnode *nodes;
    unsigned n_nodes, cap_nodes;
    struct strmap node_index; /* node id -> (uintptr_t) index + 1 */
    int nodes_dirty;

    int leader;
    uint64_t leader_since;
    int round_pending;
    int in_round; /* round_run holds pointers into the task cache: no eviction */

    uint64_t n_assigned, n_assign_refused, n_runs, n_results, n_stale, n_lost, n_requeued;
    uint64_t n_rounds, n_bad_frames;
    uint64_t n_refused; /* connections refused by the secure channel or the identity check */
};

static inline uint64_t now_ms(struct dispatch *d)
{
    return uv_now(d->loop);
}

static inline void unit_key(char *out, size_t cap, const char *task, uint32_t unit)
{
    snprintf(out, cap, "%s/%u", task, unit);
}

/* dispatch_link.c */
void dispatch__accept_cb(uv_stream_t *server, int status);
void dispatch__send_cancel(struct dispatch *d, const char *node, const char *task, uint32_t unit,
                           uint32_t attempt, uint64_t token);
void dispatch__send_error(struct session *ss, const char *code, const char *msg);
int dispatch__send_msg(struct session *ss, const struct aproto_msg *m);
void dispatch__session_close(struct session *ss, const char *why);
void dispatch__session_close_after_write(struct session *ss);
void dispatch__session_closed(uv_handle_t *h);
struct session *dispatch__session_of(struct dispatch *d, const char *node);

/* dispatch_hello.c */
void dispatch__on_hello(struct session *ss, const struct aproto_hello *h);
void dispatch__reconcile(struct dispatch *d, struct store_txn *t, struct session *ss,
                         const struct aproto_hello *h);

/* dispatch_round.c */
void dispatch__fill_sched_node(struct dispatch *d, unsigned i, struct sched_node *sn);
int dispatch__is_leader(struct dispatch *d);
int dispatch__nodeunit_parse(const char *node, const void *key, size_t kl, char *task, size_t cap,
                             uint32_t *unit);
void dispatch__on_applied(void *data, const void *cmdp, const struct fsm_result *res);
void dispatch__refresh_nodes(struct dispatch *d, struct store_txn *t);
void dispatch__task_cache_free(struct task_cache *tc);
/* The cached task (loaded from t on a miss); NULL if it does not exist. */
struct task_cache *dispatch__task_get(struct dispatch *d, struct store_txn *t, const char *id);

/* dispatch_run.c: send RUN for a unit assigned to `node`, as the store has it
 * (nothing if the agent is gone or the unit is no longer its own). */
void dispatch__send_run(struct dispatch *d, const char *task_id, uint32_t unit, const char *node);

/* dispatch_results.c */
void dispatch__on_done(struct session *ss, const struct aproto_done *dn);
void dispatch__on_log(struct dispatch *d, const struct aproto_log *lg);

/* dispatch.c */
void dispatch__finish(struct dispatch *d);

#endif
