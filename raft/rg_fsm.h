/* raft/rg_fsm — the state machine adapter: Raft log entries -> the store.
 *
 * Contract with the Raft library (raft-notes §4): apply always returns 0;
 * business outcomes ("version conflict", "no such node") are per-command
 * results, identical on every replica; a real storage failure while applying
 * stops the process with a clear message (replay redoes the entry on restart).
 *
 * Exactly once (DESIGN.md "Guarantees"): an entry at or below the store's
 * applied index is skipped; otherwise its commands and the new applied
 * {index, term} go into the same LMDB write transaction. One transaction
 * covers a run of applied entries: it is committed when the entry at the
 * commit index has been applied, and before anything observes the store
 * (rg_fsm_flush: apply and barrier callbacks, reads, snapshots, restore).
 *
 * Snapshots are logical dumps (store_dump); restore never rolls the store
 * back (store_load skips a snapshot at or below the applied index). */
#ifndef FL_RAFT_RG_FSM_H
#define FL_RAFT_RG_FSM_H

#include <stdint.h>

#include <raft.h>

#include "common/buf.h"
#include "store/store.h"

/* The outcome of one command. */
struct rg_result {
    int err;          /* FL_OK or a business error (FL_ECONFLICT, FL_ENOTFOUND, ...) */
    uint64_t index;   /* Raft index of the entry */
    uint64_t version; /* KV_PUT: the key's new version (the kv revision);
                         UNIT_ASSIGN: the fencing token; TASK_SUBMIT: units;
                         LOCK_ACQUIRE/UNWAIT: the token, 0 = waiting;
                         SESSION_RENEW: the new expiry (leader time) */
    char str[40];     /* TASK_SUBMIT: the task id (the existing one for a
                         repeated idempotency key); LOCK_ACQUIRE refused
                         as held: the first holder's session */
    char node[64];    /* UNIT_ASSIGN: the node; UNIT_RESULT/REQUEUE: the node
                         the unit left (so the leader can track free slots) */
    int not_run;      /* a command with a request identity that was not
                         executed: refused (FL_ESTALE, FL_ENOSESSION) or
                         answered from its session's memory (replayed) */
    int replayed;     /* the result is the remembered answer of the first
                         attempt of this request (its index included) */
};

/* What the lock commands did, for the leader's lock manager (node/locks.c):
 * it answers waiting acquire calls and keeps the lease deadlines. Emitted
 * while the entry is applied, on every server; pointers are valid during the
 * call only. */
enum rg_lock_event_type {
    RG_LEV_GRANT = 1,    /* key granted to session with token */
    RG_LEV_SESSION,      /* session created, renewed or extended: ttl_ms, renewals */
    RG_LEV_SESSION_GONE, /* session destroyed or expired */
    RG_LEV_DELAY,        /* waiters of key are held back by lock-delay until until_ms */
    RG_LEV_EXTENDED,     /* a LEASE_EXTEND was applied */
};
struct rg_lock_event {
    int type;
    const char *session;
    const char *key;
    size_t klen;
    uint64_t token;
    uint64_t ttl_ms;
    uint64_t renewals;
    uint64_t until_ms;
};

/* Called on the server that proposed an entry (origin == own id) when the
 * entry has been applied: results[i] belongs to the entry's command i. */
typedef void (*rg_fsm_results_cb)(void *data, uint64_t seq, uint64_t term, uint64_t index,
                                  const struct rg_result *results, unsigned n);

struct rg_fsm {
    struct raft_fsm fsm; /* handed to raft_init; fsm.data points back here */
    struct store *store;
    struct raft *raft;   /* for the index of the entry being applied */
    uint64_t self_id;
    struct store_txn *txn; /* open write transaction, or NULL */
    uint64_t txn_entries;  /* entries in the open transaction */
    uint64_t applied_index; /* including the open transaction */
    uint64_t applied_term;
    uint64_t time_ms;       /* leader stamp of the last applied entry */
    uint64_t revision;      /* cluster-wide count of kv writes (meta "revision") */
    uint64_t fence;         /* last fencing token handed out (meta "fence") */
    int dispatch_paused;    /* meta "dispatch_paused" */
    /* Hook for the leader's dispatcher: called after each applied command
     * that changes scheduling state (may be NULL). */
    void (*sched_cb)(void *data, const void *cmd, const struct rg_result *res);
    void *sched_data;
    void (*lock_cb)(void *data, const struct rg_lock_event *ev);
    void *lock_data;
    /* A job was created, redefined, paused, resumed, fired or deleted
     * (node/jobs.c keeps its timers from this). */
    void (*job_cb)(void *data, const char *name, int deleted);
    void *job_data;
    /* Jobs whose run tasks finished in the command being applied
     * (rg_sched_apply.c fills it, rg_job.c empties it). */
    struct fl_buf finished_runs;
    rg_fsm_results_cb results_cb;
    void *results_data;
    /* Counters, exposed by GET /v1/status. */
    uint64_t n_applied;        /* entries applied since start */
    uint64_t n_skipped;        /* entries skipped as already in the store */
    uint64_t n_cmds;           /* commands applied */
    uint64_t n_bad;            /* entries that did not decode (applied as no-ops) */
    uint64_t n_commits;        /* LMDB write transactions committed */
    uint64_t n_snapshots;      /* snapshots taken */
    uint64_t n_restores;       /* snapshots loaded */
    uint64_t n_restores_skipped; /* snapshots older than the store, ignored */
    uint64_t n_req_replayed;   /* requests answered from their session's memory */
    uint64_t n_req_stale;      /* requests refused: a newer one of the session applied */
    uint64_t n_req_nosession;  /* requests refused: their session does not exist */
};

/* Initialise over an open store. The raft pointer is set with
 * rg_fsm_set_raft once raft_init has run. */
int rg_fsm_init(struct rg_fsm *f, struct store *s, uint64_t self_id);
void rg_fsm_set_raft(struct rg_fsm *f, struct raft *r);
/* Commit the open write transaction, if any. A failure is fatal. */
void rg_fsm_flush(struct rg_fsm *f);
/* Flush and forget the store (the store itself is closed by its owner). */
void rg_fsm_close(struct rg_fsm *f);

/* Test hook: what a storage failure inside apply does. Default: log and
 * exit(74). Tests may replace it. */
extern void (*rg_fsm_fatal_hook)(const char *msg);

#endif
