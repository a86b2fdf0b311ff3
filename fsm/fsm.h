/* fsm/fsm — the replicated state machine: log entries -> the store.
 *
 * It knows nothing of the Raft library: raft/rg_apply hands it each
 * committed entry with its index (raft-notes §4). Business outcomes ("version conflict", "no such
 * node") are per-command results, identical on every replica; a real storage failure while applying
 * stops the process with a clear message (replay redoes the entry on restart).
 *
 * Exactly once (DESIGN.md "Guarantees"): an entry at or below the store's
 * applied index is skipped; otherwise its commands and the new applied
 * {index, term} go into the same LMDB write transaction. One transaction
 * covers a run of applied entries: it is committed when the entry at the
 * commit index has been applied, and before anything observes the store
 * (fsm_flush: apply and barrier callbacks, reads, snapshots, restore).
 *
 * Snapshots are logical dumps (store_dump); restore never rolls the store
 * back (store_load skips a snapshot at or below the applied index). */
#ifndef FL_FSM_FSM_H
#define FL_FSM_FSM_H

#include <stdint.h>

#include "common/buf.h"
#include "store/store.h"

/* The outcome of one command. */
struct fsm_result {
    int err;        /* FL_OK or a business error (FL_ECONFLICT, FL_ENOTFOUND, ...) */
    uint64_t index; /* Raft index of the entry */
    /* What the command produced, one member per meaning (0 when the command
     * does not say). fsm/request.c remembers the one a command sets. */
    uint64_t kv_version;   /* KV_PUT: the key's new version (the kv revision);
                              KV_DEL: the deleted key's; refused (FL_ECONFLICT):
                              the key's current one (0: none) */
    uint64_t token;        /* UNIT_ASSIGN: the unit's fencing token; LOCK_ACQUIRE: the
                              lock's token, 0 = waiting; LOCK_RELEASE/UNWAIT: the
                              released hold's (refused: the hold's current one) */
    uint64_t units;        /* TASK_SUBMIT: the task's units */
    uint64_t expires_ms;   /* SESSION_CREATE/RENEW: the new expiry (leader time) */
    uint64_t limit;        /* LOCK_ACQUIRE refused (FL_ECONFLICT): the lock's limit */
    uint64_t sched_ms;     /* JOB_FIRE: the run's schedule time (refused as fired
                              already, FL_EEXIST: the job's last one) */
    uint64_t pkg_index;    /* PACKAGE_PUT: the index that recorded the version */
    uint64_t newer_serial; /* FL_ESTALE: the serial its session carried out */
    char task_id[40];      /* TASK_SUBMIT: the task's id (the existing task's for
                              a repeated idempotency key) */
    char session_id[40];   /* SESSION_CREATE: the session's id */
    char holder[40];       /* LOCK_ACQUIRE refused as held (FL_EBUSY): the first
                              holder's session */
    char outcome[40];      /* JOB_FIRE: the run's outcome (store_run_outcome_name) */
    char accessor[40];     /* ACL_BOOTSTRAP, TOKEN_CREATE, TOKEN_DELETE: the token's */
    char node[64];         /* UNIT_ASSIGN, UNIT_RESULT, UNIT_REQUEUE: the unit's node
                              (assigned to, or left: the leader tracks free slots) */
    int not_run;           /* a command with a request identity that was not
                              executed: refused (FL_ESTALE, FL_ENOSESSION) or
                              answered from its session's memory (replayed) */
    int replayed;          /* the result is the remembered answer of the first
                              attempt of this request (its index included) */
};

/* ---- Effects -------------------------------------------------------------
 *
 * What an applied entry means for the leader's components (leader/): the
 * dispatcher, the lock manager and the cron clock. Applying a command records
 * effects in a queue the fsm owns; nothing is called while the entry is being
 * applied. Each effect is a self-contained value (its strings are copies:
 * nothing points into the entry or into a store transaction).
 *
 * Contract:
 *  - effects are produced on every replica, the same ones for the same
 *    entries, in the order the commands of the entry did them (a job run's
 *    task or cancel comes where the JOB_FIRE or the task's end made it);
 *  - an effect becomes ready once the write transaction that holds its entry
 *    is committed (fsm_flush), so a consumer that reads the store sees the
 *    entry; fsm_effects_take hands over the ready ones, oldest first;
 *  - raft/rg_apply takes them after each fsm_apply and after each flush it
 *    makes, and gives them to its subscribers (the leader's port) before the
 *    proposer of the entry is answered;
 *  - a command that is not executed (refused or replayed from its session's
 *    memory) and a command whose business outcome is an error change nothing
 *    and produce nothing, except where noted.
 *
 * Each component decides what to do as leader or as follower. */
enum fsm_effect_type {
    FSM_EFF_PLACE = 1,       /* units may be placed: a task was submitted (name: its id),
                                a unit ended or was requeued, dispatch was paused or resumed
                                (name empty) */
    FSM_EFF_TASK_CANCELLED,  /* task `name` was cancelled: CANCEL its running units */
    FSM_EFF_NODE,            /* node `name`: its record changed (registered, capacity,
                                drained, removed, lost) */
    FSM_EFF_NODE_RUNNING,    /* node `name`: its count of running units changed */
    FSM_EFF_LOCK_GRANTED,    /* lock `key` granted to session `name` with `token` */
    FSM_EFF_SESSION,         /* session `name` created, renewed or extended: its lease is
                                now ttl_ms, with `renewals` */
    FSM_EFF_SESSION_GONE,    /* session `name` destroyed or expired */
    FSM_EFF_LOCK_DELAY,      /* waiters of lock `key` are held back by its lock-delay until
                                until_ms (leader time) */
    FSM_EFF_LEASES_EXTENDED, /* a LEASE_EXTEND was applied */
    FSM_EFF_JOB,             /* job `name` was created, redefined, paused, resumed or fired;
                                deleted: it is gone */
};

#define FSM_EFFECT_NAME_MAX 64 /* a session, task, node or job id and its NUL */

struct fsm_effect {
    int type;       /* enum fsm_effect_type */
    uint64_t index; /* the entry that produced it */
    char name[FSM_EFFECT_NAME_MAX];
    char key[STORE_LOCK_KEY_MAX];
    uint64_t token;
    uint64_t ttl_ms;
    uint64_t renewals;
    uint64_t until_ms;
    int deleted;
};

/* Called on the server that proposed an entry (origin == own id) when the
 * entry has been applied: results[i] belongs to the entry's command i. */
typedef void (*fsm_results_cb)(void *data, uint64_t seq, uint64_t term, uint64_t index,
                               const struct fsm_result *results, unsigned n);

struct fsm {
    struct store *store;
    uint64_t self_id;
    struct store_txn *txn;  /* open write transaction, or NULL */
    uint64_t txn_entries;   /* entries in the open transaction */
    uint64_t applied_index; /* including the open transaction */
    uint64_t applied_term;
    uint64_t time_ms;    /* leader stamp of the last applied entry */
    uint64_t revision;   /* cluster-wide count of kv writes (meta "revision") */
    uint64_t fence;      /* last fencing token handed out (meta "fence") */
    int dispatch_paused; /* meta "dispatch_paused" */
    /* Effects recorded by the applied entries: [0, n_ready) are committed
     * to the store, [n_ready, n) belong to the open transaction. `taken`
     * holds what fsm_effects_take last handed out. */
    struct fsm_effect *effects, *taken;
    unsigned n_effects, cap_effects, n_effects_ready, cap_taken;
    uint64_t applying; /* index of the entry being applied */
    int effects_oom;   /* an effect could not be recorded: the apply fails */
    /* Jobs whose run tasks finished in the command being applied
     * (fsm/sched.c fills it, fsm/job.c empties it). */
    struct fl_buf finished_runs;
    int sched_depth;       /* scheduling applies in progress (a job run submits tasks) */
    struct fsm_recs *recs; /* task and node records kept decoded (fsm/recs.c) */
    fsm_results_cb results_cb;
    void *results_data;
    /* Counters, exposed by GET /v1/status. */
    uint64_t n_applied;          /* entries applied since start */
    uint64_t n_skipped;          /* entries skipped as already in the store */
    uint64_t n_cmds;             /* commands applied */
    uint64_t n_bad;              /* entries that did not decode (applied as no-ops) */
    uint64_t n_commits;          /* LMDB write transactions committed */
    uint64_t n_snapshots;        /* snapshots taken */
    uint64_t n_restores;         /* snapshots loaded */
    uint64_t n_restores_skipped; /* snapshots older than the store, ignored */
    uint64_t n_req_replayed;     /* requests answered from their session's memory */
    uint64_t n_req_stale;        /* requests refused: a newer one of the session applied */
    uint64_t n_req_nosession;    /* requests refused: their session does not exist */
};

/* Initialise over an open store. */
int fsm_init(struct fsm *f, struct store *s, uint64_t self_id);
/* Apply the log entry at `index` (its bytes, as proposed). An entry at or
 * below the store's applied index is skipped; one that does not decode is
 * applied as a no-op (n_bad), the same on every replica. `commit` is the
 * highest index known committed: the open write transaction is committed
 * once `index` reaches it (or after 1024 entries). A storage failure is
 * fatal (fsm_fatal_hook). */
void fsm_apply(struct fsm *f, uint64_t index, uint64_t commit, const void *data, size_t len);
/* Append a logical dump of the state to `out` (flushes first). FL_OK, or a
 * storage error with `out` unchanged. */
int fsm_snapshot(struct fsm *f, struct fl_buf *out);
/* Replace the state with a dump, unless the store is already at or past it
 * (n_restores_skipped). A dump that does not load is fatal; the error is
 * returned when the hook returns. `data` is not kept. */
int fsm_restore(struct fsm *f, const void *data, size_t len);
/* Commit the open write transaction, if any. A failure is fatal. */
void fsm_flush(struct fsm *f);
/* Hand over the ready effects (see "Effects" above), oldest first: *out
 * points to them, valid until the next call; returns how many (0: *out is
 * NULL). They are no longer in the queue. */
unsigned fsm_effects_take(struct fsm *f, const struct fsm_effect **out);
/* Flush and forget the store (the store itself is closed by its owner). */
void fsm_close(struct fsm *f);

/* Test hook: what a storage failure inside apply does. Default: log and
 * exit(74). Tests may replace it. */
extern void (*fsm_fatal_hook)(const char *msg);

#endif
