/* store/ — the LMDB-backed state of one server.
 *
 * One LMDB environment per server (DATA/store/data.mdb, readable with
 * mdb_stat/mdb_dump from lmdb-utils), one named database per table. The store
 * knows nothing of Raft or libuv: the FSM adapter in raft/ drives it.
 *
 * Exactly-once apply (DESIGN.md, "Guarantees"): the applied {index, term}
 * lives in the META table and is written in the same write transaction as the
 * state it covers; callers skip entries at or below it on replay, and
 * store_load() never rolls the store back to an older snapshot.
 *
 * Threading: one thread uses a store at a time (the server's loop thread).
 * At most one write transaction is open at once; read transactions may be
 * open at the same time as the write transaction and see the last committed
 * state.
 *
 * Errors: FL_* codes (common/err.h). LMDB's MDB_MAP_FULL becomes FL_EMAPFULL,
 * ENOSPC becomes FL_EDISKFULL, other failures FL_EIO; the detail (with the
 * LMDB message) is in store_errmsg(). A failed write transaction is aborted by
 * the store and leaves the committed state untouched.
 *
 * Failed write transactions: once a put or del (typed or raw) has failed with
 * a storage error (FL_EMAPFULL, FL_EDISKFULL, FL_EIO, FL_ENOMEM) the
 * transaction is failed, as LMDB marks it: every later operation on it returns
 * that same error, and the caller must end it — store_abort(), or
 * store_commit(), which then aborts it and returns the error. Argument errors
 * (FL_EINVAL, FL_ETOOBIG) and FL_ENOTFOUND leave the transaction usable. */
#ifndef FL_STORE_STORE_H
#define FL_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct store;
struct store_txn;
struct store_cursor;

/* Tables. New tables are appended (never renumbered): the number is part of
 * the snapshot format. LOCAL is per-server bookkeeping that is not replicated,
 * not dumped into snapshots and not part of the digest. */
enum store_table {
    STORE_META = 0,       /* applied position, cluster id, schema version */
    STORE_NODES = 1,      /* node id -> struct store_node (msgpack) */
    STORE_KV = 2,         /* user key -> struct store_kv record (msgpack) */
    STORE_LOCAL = 3,      /* per-server, never replicated */
    STORE_TASKS = 4,      /* task id -> struct store_task */
    STORE_UNITS = 5,      /* task id '/' u32 unit -> struct store_unit */
    STORE_RESULTS = 6,    /* task id '/' u32 unit '/' host -> struct store_result */
    STORE_HOSTIDX = 7,    /* host '\0' task id '/' u32 unit -> "" (results by host) */
    STORE_QUEUE = 8,      /* u32 ~priority, u64 seq, task id '/' u32 unit -> "" (runnable) */
    STORE_IDEM = 9,       /* idempotency key -> task id */
    STORE_NODEUNITS = 10, /* node id '\0' task id '/' u32 unit -> "" (units on a node) */
    STORE_SESSIONS = 11,  /* session id -> struct store_session */
    STORE_LOCKS = 12,     /* "namespace/name" -> struct store_lock */
    STORE_SESSLOCKS = 13, /* session id '\0' lock key -> "H" held / "W" waiting */
    STORE_JOBS = 14,      /* job name -> struct store_job */
    STORE_RUNS = 15,      /* job name '\0' u64 scheduled second (BE) -> struct store_run */
    STORE_TOKENS = 16,    /* BLAKE2b-256 of an API token's secret -> struct store_token */
    STORE_AGENTKEYS = 17, /* agent id -> struct store_agentkey (its ed25519 public key) */
    STORE_PACKAGES = 18,  /* name '\0' version -> struct store_package (docs/PACKAGES.md) */
    STORE__NTABLES
};

const char *store_table_name(enum store_table t); /* "meta", "nodes", ... */

struct store_options {
    size_t map_size; /* bytes; 0 = 1 GiB. The file grows lazily up to it. */
    int no_sync;     /* 1: MDB_NOSYNC (tests only); default MDB_NOMETASYNC */
    /* 1: the Raft log is the durable copy of every applied entry, so a
     * commit is not flushed (MDB_NOSYNC). A process crash loses nothing (the
     * page cache survives it). A kernel crash or power loss may leave the
     * environment inconsistent, so the store keeps DIR/sync-state, "<boot
     * id> dirty|clean": opened after a reboot that followed an unclean stop,
     * the environment is removed and opened empty (`rebuilt` set), and Raft
     * restores it from its snapshot and log. store_close() flushes and marks
     * it clean. Without a readable boot id this falls back to the default. */
    int log_durable;
};

/* Open (creating if needed) the store in directory `dir` (created if
 * missing). On failure returns an FL_* code with the detail in errmsg (an
 * FL_ERRMSG_SIZE buffer, may be NULL). */
int store_open(const char *dir, const struct store_options *opts, struct store **out, char *errmsg);
void store_close(struct store *s);
/* 1 if store_open removed an environment left unclean by a kernel crash. */
int store_rebuilt(const struct store *s);
const char *store_errmsg(const struct store *s); /* detail of the last failure */

/* Committed applied position; {0, 0} for a new store. */
int store_applied(struct store *s, uint64_t *index, uint64_t *term);

/* Bytes used by the environment and its map size (for admission control). */
void store_usage(struct store *s, uint64_t *used_bytes, uint64_t *map_bytes);

/* ---- transactions ---------------------------------------------------- */

/* Begin a write (write = 1) or read (write = 0) transaction. FL_EBUSY if a
 * write transaction is asked for while one is open (LMDB's writer lock is not
 * recursive). */
int store_begin(struct store *s, int write, struct store_txn **out);
/* Commit. On any failure the transaction is aborted and the store unchanged.
 * A read transaction's commit just ends it. The txn is freed either way.
 * Errors: FL_EMAPFULL, FL_EDISKFULL, FL_EIO, or the error that failed the
 * transaction earlier (see "Failed write transactions" above). */
int store_commit(struct store_txn *t);
void store_abort(struct store_txn *t); /* NULL is a no-op */

/* Record the applied position inside a write transaction. */
int store_set_applied(struct store_txn *t, uint64_t index, uint64_t term);

/* ---- raw table access (pointers valid until the txn ends) ------------ */

/* Keys are 1 to 511 bytes (LMDB's maximum key size); other lengths are
 * FL_ETOOBIG. Writes in a read transaction are FL_EINVAL. */
int store_get(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
              const void **val, size_t *vlen); /* FL_ENOTFOUND if absent */
int store_put(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
              const void *val, size_t vlen);
int store_del(struct store_txn *t, enum store_table tab, const void *key,
              size_t klen); /* FL_ENOTFOUND if absent */

/* Cursor over a table in key order, starting at the first key >= `from`
 * (from = NULL: the first key). store_cursor_next returns FL_OK with the next
 * record, FL_ENOTFOUND at the end. Close before the txn ends. */
int store_cursor_open(struct store_txn *t, enum store_table tab, const void *from, size_t fromlen,
                      struct store_cursor **out);
int store_cursor_next(struct store_cursor *c, const void **key, size_t *klen, const void **val,
                      size_t *vlen);
void store_cursor_close(struct store_cursor *c);

/* ---- typed accessors ------------------------------------------------- */

/* KV table. The caller passes the kv revision of the write as `index` (the FSM
 * keeps a cluster-wide counter of kv writes, so it is unique and increases):
 * `version` is the revision of the key's last write, `create_index` the
 * revision of its creation. store_kv_put keeps the create_index of an
 * existing key, else uses `index`.
 * Keys are 1 to STORE_KV_MAX_KEY bytes inclusive: store_kv_put refuses an
 * empty key (FL_EINVAL) and a longer one (FL_ETOOBIG); store_kv_get/del report
 * such keys FL_ENOTFOUND, as they cannot exist. Values are at most
 * STORE_KV_MAX_VALUE bytes (FL_ETOOBIG). A stored record that does not decode
 * is FL_ECORRUPT. STORE_KV_MAX_KEY is LMDB's maximum key size (511 in its
 * default build): a 512-byte key cannot be stored at all. */
#define STORE_KV_MAX_KEY   511
#define STORE_KV_MAX_VALUE (512 * 1024)
struct store_kv {
    const uint8_t *value; /* points into the txn's memory */
    size_t vlen;
    uint64_t version;
    uint64_t create_index;
    uint64_t mtime_ms; /* leader-stamped time of the last write */
};
int store_kv_get(struct store_txn *t, const char *key, size_t klen, struct store_kv *out);
int store_kv_put(struct store_txn *t, const char *key, size_t klen, const void *value, size_t vlen,
                 uint64_t index, uint64_t time_ms);
int store_kv_del(struct store_txn *t, const char *key, size_t klen);
/* Decode a KV value (e.g. from a cursor); out->value points into `val`.
 * FL_EDECODE on bad bytes, FL_EVERSION on a record of an unknown format
 * version. */
int store_kv_decode(const void *val, size_t vlen, struct store_kv *out);

/* NODES table. A node is a server (with its embedded agent) or an agent. */
#define STORE_NODE_ID_MAX    64
#define STORE_NODE_ADDR_MAX  128
#define STORE_NODE_LABELS    32
#define STORE_NODE_LABEL_MAX 128
enum store_node_kind { STORE_NODE_SERVER = 1, STORE_NODE_AGENT = 2 };
struct store_node {
    char id[STORE_NODE_ID_MAX];          /* node name, e.g. "server-1" */
    uint64_t raft_id;                    /* servers only; 0 for agents */
    char raft_addr[STORE_NODE_ADDR_MAX]; /* servers only */
    char api_addr[STORE_NODE_ADDR_MAX];  /* servers only */
    int kind;                            /* enum store_node_kind */
    unsigned n_labels;
    char labels[STORE_NODE_LABELS][STORE_NODE_LABEL_MAX]; /* "k=v" */
    uint32_t cap; /* running-unit cap; 0 with drain = drained */
    int drain;    /* 1 while draining */
    uint64_t created_index;
    uint64_t updated_index;
    /* Format 2 (a format-1 record reads as 0, "", 0): */
    uint32_t running;                     /* units assigned to it and not finished */
    char agent_addr[STORE_NODE_ADDR_MAX]; /* servers: where agents connect */
    int lost;                             /* committed lost; cleared when it registers */
    /* Format 3: */
    char blob_addr[STORE_NODE_ADDR_MAX]; /* servers: the package blob link */
};
/* The key is `id`. store_node_put refuses (FL_EINVAL) an empty id, a string
 * field without its NUL, a kind other than SERVER/AGENT and more than
 * STORE_NODE_LABELS labels. store_node_get of a stored record that does not
 * decode is FL_ECORRUPT. */
int store_node_get(struct store_txn *t, const char *id, struct store_node *out);
int store_node_put(struct store_txn *t, const struct store_node *n);
int store_node_del(struct store_txn *t, const char *id);
/* Decode a NODES value (e.g. from a cursor); FL_EDECODE on bad bytes (strings
 * too long for their field or holding a NUL included), FL_EVERSION on a record
 * of an unknown format version. Strings in `out` are NUL-terminated; on
 * failure `out` holds garbage. */
int store_node_decode(const void *val, size_t vlen, struct store_node *out);

/* META table: string values by name ("cluster_id", ...), stored as the raw
 * bytes of the string. FL_ENOTFOUND if absent, FL_ETOOBIG if the value and
 * its NUL do not fit in outlen. The name "applied" is reserved for the applied
 * position (FL_EINVAL). */
int store_meta_get(struct store_txn *t, const char *name, char *out, size_t outlen);
int store_meta_put(struct store_txn *t, const char *name, const char *value);

/* ---- tasks, units, results (docs/SCHEDULER.md) -------------------------- */

#define STORE_TASK_ID_MAX      40
#define STORE_TASK_NAME_MAX    128
#define STORE_TASK_CONSTRAINTS 16
#define STORE_HOST_MAX         256
#define STORE_TAIL_MAX         4096

enum store_task_state {
    STORE_TASK_QUEUED = 1,
    STORE_TASK_RUNNING = 2,
    STORE_TASK_DONE = 3,   /* every host ok */
    STORE_TASK_FAILED = 4, /* finished, some host not ok */
    STORE_TASK_CANCELLED = 5,
};
enum store_unit_state { STORE_UNIT_QUEUED = 1, STORE_UNIT_RUNNING = 2, STORE_UNIT_DONE = 3 };
/* Host and unit outcomes; the numbers are the agent protocol's. */
enum store_status {
    STORE_ST_NONE = 0,
    STORE_ST_OK = 1,
    STORE_ST_FAILED = 2,
    STORE_ST_TIMEOUT = 3,
    STORE_ST_CANCELLED = 4,
    STORE_ST_ERROR = 5,
    STORE_ST_UNREACHABLE = 6,
    STORE_ST_LOST = 7, /* the node was lost and no retry was left */
    STORE_ST__MAX
};
const char *store_status_name(int status);

/* Which run of which cron job a task belongs to (docs/JOBS.md). On disk it
 * is the task's name, "job:NAME@SCHED_MS#INDEX/TOTAL", which only the state
 * machine writes (a client's task name may not start with "job:"); the
 * store decodes it here, so no one else parses names. */
struct store_job_ref {
    char job[STORE_TASK_NAME_MAX]; /* "" when the task is not a job run */
    uint64_t sched_ms;             /* the schedule time (a manual run: its time) */
    uint32_t index, total;         /* mode all: this node's task of `total` */
};
/* The task name of a job run; FL_EINVAL if it does not fit in cap. */
int store_job_ref_name(const struct store_job_ref *r, char *out, size_t cap);
/* Decode a task name: FL_OK with *r filled for a job run's name, else
 * FL_ENOTFOUND and r->job empty. Strict: digits only, index < total. */
int store_job_ref_parse(const char *name, struct store_job_ref *r);

struct store_task {
    char id[STORE_TASK_ID_MAX];
    char name[STORE_TASK_NAME_MAX];
    struct store_job_ref job; /* decoded from name (never written separately) */
    int state;
    int32_t priority;
    uint64_t seq; /* Raft index of the submission: FIFO order */
    uint32_t unit_size;
    uint32_t n_hosts;
    uint32_t n_units;
    uint32_t timeout_ms;
    uint32_t retries;
    unsigned n_constraints;
    char constraints[STORE_TASK_CONSTRAINTS][STORE_NODE_LABEL_MAX];
    const uint8_t *spec; /* executor spec (opaque to the store), into txn memory or caller's */
    size_t spec_len;
    uint64_t created_ms, finished_ms;
    int cancel_requested;
    /* progress */
    uint32_t units_queued, units_running, units_done;
    uint32_t hosts_by_status[STORE_ST__MAX];
    uint64_t stale_results;
    /* rollout controls (docs/SCHEDULER.md, "Rollout controls") */
    uint32_t max_running; /* units RUNNING at once; 0 = no limit */
    uint32_t fail_stop;   /* failed hosts that stop the task; 0 = never */
    int placement;        /* 0 any node, 1 each unit on the node its host names */
    int stopped;          /* fail_stop was reached: queued units were cancelled */
};
int store_task_get(struct store_txn *t, const char *id, struct store_task *out);
int store_task_put(struct store_txn *t, const struct store_task *task);
int store_task_decode(const void *val, size_t vlen, struct store_task *out);

#define STORE_UNIT_HOSTS_MAX 10000
struct store_unit {
    int state;
    uint32_t attempt; /* 0 before the first assignment */
    uint64_t token;   /* fencing token of the current assignment */
    uint32_t retries_left;
    char node[STORE_NODE_ID_MAX];      /* current node (running) */
    char last_node[STORE_NODE_ID_MAX]; /* node of the previous attempt */
    uint64_t not_before_ms;            /* retry backoff */
    uint64_t assigned_ms, finished_ms;
    int status; /* final unit status (done) */
    int32_t exit_code;
    int cancel; /* cancel requested while running */
    uint32_t n_hosts;
    const uint8_t *hosts; /* the hosts, each followed by a NUL (into txn or caller memory) */
    size_t hosts_len;
};
/* Key of unit `unit` of task `id`: "id/" + u32 big-endian. */
size_t store_unit_key(char *out, const char *id, uint32_t unit); /* out >= STORE_TASK_ID_MAX + 5 */
int store_unit_get(struct store_txn *t, const char *task, uint32_t unit, struct store_unit *out);
int store_unit_put(struct store_txn *t, const char *task, uint32_t unit,
                   const struct store_unit *u);
int store_unit_decode(const void *val, size_t vlen, struct store_unit *out);
/* Iterate the hosts of a unit: *pos starts at 0; FL_ENOTFOUND at the end. */
int store_unit_host(const struct store_unit *u, size_t *pos, const char **host, size_t *len);

struct store_result {
    int status;
    int32_t rc;
    uint32_t attempt;
    uint64_t token;
    char node[STORE_NODE_ID_MAX];
    uint64_t finished_ms;
    const uint8_t *tail;
    size_t tail_len;
};
int store_result_put(struct store_txn *t, const char *task, uint32_t unit, const char *host,
                     size_t hlen, const struct store_result *r);
int store_result_decode(const void *val, size_t vlen, struct store_result *out);

/* Index tables whose values are empty: put/del a key. */
int store_index_put(struct store_txn *t, enum store_table tab, const void *key, size_t klen);

/* QUEUE key: (~priority as u32 with the sign flipped so higher sorts first, seq, unit key). */
size_t store_queue_key(uint8_t *out, int32_t priority, uint64_t seq, const char *task,
                       uint32_t unit); /* out >= 12 + STORE_TASK_ID_MAX + 5 */
int store_queue_key_parse(const void *key, size_t klen, int32_t *priority, uint64_t *seq,
                          char *task, uint32_t *unit);

/* ---- sessions and locks (docs/LOCKS.md) ------------------------------- */

#define STORE_SESSION_ID_MAX    40
#define STORE_SESSION_NAME_MAX  128
#define STORE_SESSION_OWNER_MAX 17  /* a token's accessor and the NUL */
#define STORE_LOCK_KEY_MAX      256 /* "namespace/name" and its NUL */
#define STORE_LOCK_HOLDERS_MAX  1024
#define STORE_LOCK_WAITERS_MAX  4096

struct store_session {
    char id[STORE_SESSION_ID_MAX];
    char name[STORE_SESSION_NAME_MAX]; /* who holds it, free text */
    uint64_t ttl_ms;
    uint64_t lock_delay_ms;
    uint64_t created_ms;
    uint64_t expires_ms; /* leader-stamped time of the last renewal + ttl (informative) */
    uint64_t renewals;   /* counts renewals and lease extensions */
    uint64_t created_index;
    /* The last client request carried out under this session (docs/API.md
     * "Request identity"): its serial (0: none yet) and its answer. */
    uint64_t req_serial;
    uint32_t req_err;     /* the command's result: FL_OK or a business error */
    uint64_t req_version; /* the result's version field */
    uint64_t req_index;   /* the index of the entry that applied it */
    char req_str[40];     /* the result's string (a task id, a holder) */
    /* Format 3: the accessor of the API token that created the session
     * (docs/ACL.md); "" for sessions created before owners were recorded. */
    char owner[STORE_SESSION_OWNER_MAX];
};
int store_session_get(struct store_txn *t, const char *id, struct store_session *out);
int store_session_put(struct store_txn *t, const struct store_session *s);
int store_session_decode(const void *val, size_t vlen, struct store_session *out);

/* One holder or waiter of a lock. */
struct store_lock_slot {
    char session[STORE_SESSION_ID_MAX];
    uint64_t token;    /* holders: the fencing token of the grant; waiters: 0 */
    uint64_t since_ms; /* holders: granted at; waiters: queued at */
};

/* A lock (or an N-holder semaphore): holders, FIFO waiters, the last token
 * granted and the lock-delay. holders and waiters are allocated by
 * store_lock_get/decode with room for one more entry each (so apply can
 * append without reallocating); free them with store_lock_free. A lock
 * initialised with store_lock_init has that room too. */
struct store_lock {
    uint32_t limit;          /* holders allowed at once; 1 = mutex */
    uint64_t fence;          /* the last fencing token granted */
    uint64_t delay_until_ms; /* no grant before this leader-stamped time */
    uint32_t n_holders, n_waiters;
    struct store_lock_slot *holders;
    struct store_lock_slot *waiters;
};
int store_lock_init(struct store_lock *l, uint32_t limit); /* FL_ENOMEM */
void store_lock_free(struct store_lock *l);
int store_lock_get(struct store_txn *t, const char *key, size_t klen, struct store_lock *out);
int store_lock_put(struct store_txn *t, const char *key, size_t klen, const struct store_lock *l);
int store_lock_decode(const void *val, size_t vlen, struct store_lock *out);

/* ---- cron jobs (docs/JOBS.md) ---------------------------------------------- */

#define STORE_JOB_NAME_MAX  64
#define STORE_JOB_EXPR_MAX  256
#define STORE_JOB_TZ_MAX    65
#define STORE_JOB_RUNS_KEPT 100 /* run history per job */

enum store_job_sched { STORE_JOB_CRON = 1, STORE_JOB_EVERY = 2 };
enum store_job_overlap {
    STORE_OVERLAP_ALLOW = 1,
    STORE_OVERLAP_FORBID = 2,  /* through the lock cron/NAME, with a fencing token */
    STORE_OVERLAP_REPLACE = 3, /* cancel the running run */
    STORE_OVERLAP_QUEUE = 4,   /* start when the running run ends */
};
enum store_job_mode { STORE_JOB_ONE = 1, STORE_JOB_ALL = 2 };
enum store_job_misfire { STORE_MISFIRE_SKIP = 1, STORE_MISFIRE_RUN_ONCE = 2 };

struct store_job {
    char name[STORE_JOB_NAME_MAX];
    int sched;                     /* enum store_job_sched */
    char expr[STORE_JOB_EXPR_MAX]; /* cron expression */
    char tz[STORE_JOB_TZ_MAX];     /* IANA zone, "" = UTC */
    uint64_t every_ms;
    int overlap, mode, misfire; /* the enums above */
    uint64_t start_deadline_ms; /* a late fire runs only if at most this late; 0 = no limit */
    int paused;
    uint64_t created_ms;
    uint64_t updated_index;
    /* Runtime, kept across a re-definition: */
    uint64_t last_sched_ms; /* last scheduled time fired, skipped or missed: never fired again */
    uint64_t runs;          /* runs started */
    uint32_t queued;        /* fires waiting for the running run (overlap queue) */
    uint64_t run_seq;       /* numbers the runs (task ids) */
    const uint8_t *active;  /* task ids of the current run, each NUL-terminated */
    size_t active_len;
    const uint8_t *tmpl; /* the TASK_SUBMIT command every run is made from */
    size_t tmpl_len;
};
int store_job_get(struct store_txn *t, const char *name, struct store_job *out);
int store_job_put(struct store_txn *t, const struct store_job *j);
int store_job_decode(const void *val, size_t vlen, struct store_job *out);
/* Append the record's bytes (a JOB_PUT carries them). FL_ENOMEM. */
int store_job_encode(const struct store_job *j, struct fl_buf *out);

enum store_run_outcome {
    STORE_RUN_STARTED = 1,
    STORE_RUN_SKIPPED_OVERLAP = 2, /* forbid: the previous run still held cron/NAME */
    STORE_RUN_QUEUED = 3,          /* queue: started when the previous run ends */
    STORE_RUN_MISSED = 4,          /* misfire skip, or run-once past the starting deadline */
    STORE_RUN_SKIPPED_PAUSED = 5,
    STORE_RUN_NO_NODES = 6, /* mode all: no eligible node */
};
const char *store_run_outcome_name(int outcome);
struct store_run {
    uint64_t sched_ms; /* the schedule time (or the request time of a manual run) */
    uint64_t fired_ms; /* leader time of the fire */
    int manual;
    int outcome;          /* enum store_run_outcome */
    uint32_t missed;      /* schedule times folded into this one (misfire run-once) */
    uint64_t token;       /* forbid: the fencing token of its hold on cron/NAME */
    uint64_t replaced;    /* replace: runs cancelled to make room */
    const uint8_t *tasks; /* its task ids, each NUL-terminated */
    size_t tasks_len;
};
/* RUNS key: job name '\0' u64 big-endian sched_ms. */
size_t store_run_key(uint8_t *out, const char *job, uint64_t sched_ms); /* out >= 64 + 9 */
int store_run_put(struct store_txn *t, const char *job, const struct store_run *r);
int store_run_decode(const void *val, size_t vlen, struct store_run *out);

/* ---- API tokens (docs/ACL.md) ------------------------------ */

#define STORE_TOKEN_HASH_BYTES   32 /* BLAKE2b-256 of the secret: the TOKENS key */
#define STORE_TOKEN_ACCESSOR_MAX 17 /* 16 hex characters and the NUL */
#define STORE_TOKEN_NAME_MAX     64
#define STORE_TOKEN_NS           8 /* namespaces per token */
#define STORE_TOKEN_NS_MAX       65
_Static_assert(STORE_TOKEN_ACCESSOR_MAX == STORE_SESSION_OWNER_MAX,
               "a session's owner holds a token's accessor");

/* Capabilities (bits). A token's policies are a set of them. */
enum store_token_cap {
    STORE_CAP_READ = 1,    /* every read */
    STORE_CAP_SUBMIT = 2,  /* tasks, jobs, sessions, locks and kv (namespaces apply) */
    STORE_CAP_OPERATE = 4, /* caps, drain, members, dispatch pause */
    STORE_CAP_ADMIN = 8,   /* tokens */
    STORE_CAP_ALL = 15,
};

/* A token as stored: never its secret, only the secret's hash (the key). */
struct store_token {
    char accessor[STORE_TOKEN_ACCESSOR_MAX]; /* public id: list, delete */
    char name[STORE_TOKEN_NAME_MAX];         /* free text */
    uint32_t caps;                           /* enum store_token_cap bits */
    unsigned n_ns;                           /* 0 = every namespace */
    char ns[STORE_TOKEN_NS][STORE_TOKEN_NS_MAX];
    uint64_t created_ms; /* leader time */
    uint64_t created_index;
    int bootstrap; /* made by the one bootstrap */
};

int store_token_encode(const struct store_token *tok, struct fl_buf *out);
int store_token_decode(const void *val, size_t vlen, struct store_token *out);
/* FL_ENOTFOUND if no token has this hash; FL_ECORRUPT if its record does
 * not decode. */
int store_token_get(struct store_txn *t, const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                    struct store_token *out);
int store_token_put(struct store_txn *t, const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                    const struct store_token *tok);

/* ---- agent identities (docs/SECURITY.md, "Links") ---------------------------- */

enum store_agentkey_state {
    STORE_AGENTKEY_APPROVED = 1, /* the agent may join with this key */
    STORE_AGENTKEY_PENDING = 2,  /* seen, waiting for `flotilla agent approve` */
    STORE_AGENTKEY_REVOKED = 3,  /* on the deny-list: refused at every handshake and HELLO */
};

/* The ed25519 public key the cluster knows for an agent id. */
struct store_agentkey {
    uint8_t pk[32];
    int state;              /* enum store_agentkey_state */
    uint64_t created_ms;    /* leader time of the first record */
    uint64_t updated_index; /* log index of the last change */
};

int store_agentkey_encode(const struct store_agentkey *k, struct fl_buf *out);
int store_agentkey_decode(const void *val, size_t vlen, struct store_agentkey *out);
/* FL_ENOTFOUND if the agent has no record; FL_ECORRUPT if it does not decode. */
int store_agentkey_get(struct store_txn *t, const char *agent, struct store_agentkey *out);
/* FL_EINVAL for an empty or too long id (STORE_NODE_ID_MAX) or a bad state. */
int store_agentkey_put(struct store_txn *t, const char *agent, const struct store_agentkey *k);
/* FL_ENOTFOUND when there is no record. */
int store_agentkey_del(struct store_txn *t, const char *agent);

/* ---- snapshots and digest ------------------------------------------- */

/* Logical dump of every replicated table (not LOCAL), taken inside one read
 * transaction, appended to `out`. Format (docs/STORE.md): magic "FLSNAP01",
 * u64 index, u64 term, then records [u8 table][u32 klen][u32 vlen][key][val],
 * an end record (table 0xFF), and a BLAKE2b-256 of everything before it.
 * index/term (may be NULL) receive the applied position the dump covers.
 * On failure `out` is left as it was. */
int store_dump(struct store *s, struct fl_buf *out, uint64_t *index, uint64_t *term);

/* Replace the replicated tables with a dump, in one write transaction.
 * If the dump's index is <= the store's applied index the store is left as it
 * is and *loaded = 0 (never roll back); else *loaded = 1. Total decoder: a
 * truncated, corrupt or oversized dump returns FL_EDECODE/FL_ECORRUPT and
 * changes nothing. The whole dump is checked before the store is touched:
 * FL_ECORRUPT on a checksum mismatch, FL_EDECODE on anything else (magic,
 * bounds, unknown or non-replicated table, key length, order, trailing bytes).
 * The load needs map room for the old and the new tables at once; storage
 * errors are those of store_commit (the store is then unchanged). FL_EBUSY
 * while a write transaction is open. `data` is not kept. */
int store_load(struct store *s, const void *data, size_t len, int *loaded);

/* BLAKE2b-256 over every replicated table (in table then key order, each
 * record as in the dump), computed inside one read transaction, with the
 * applied position it covers. Replicas at the same index have equal digests.
 * Precisely: the hash of the bytes a dump taken at the same moment holds
 * before its checksum (header with the applied position, records, end
 * record), so it equals that dump's last 32 bytes. index/term may be NULL. */
int store_digest(struct store *s, uint8_t out[32], uint64_t *index, uint64_t *term);

/* ---- fault injection (tests) --------------------------------------- */

/* After `countdown` more successful write commits, the next commit fails with
 * FL_EIO (and is aborted). countdown < 0 disables. */
void store_fault_commit(struct store *s, long countdown);

/* ---- packages (docs/PACKAGES.md) ------------------------------------- */

#define STORE_PKG_NAME_MAX     65  /* 1-64 bytes */
#define STORE_PKG_VERSION_MAX  128 /* 1-127 bytes */
#define STORE_PKG_CHUNKS_MAX   1024
#define STORE_PKG_KEEP_DEFAULT 5
#define STORE_PKG_KEEP_MAX     1000

/* The metadata of one package version; the bytes live outside the store, in
 * each server's blob directory, named by hash. */
struct store_package {
    char name[STORE_PKG_NAME_MAX];
    char version[STORE_PKG_VERSION_MAX];
    uint8_t hash[32];      /* BLAKE2b-256 of the whole package */
    uint64_t size;         /* bytes */
    uint32_t chunk_size;   /* bytes per chunk (the last may be shorter) */
    const uint8_t *chunks; /* n_chunks * 32: BLAKE2b-256 of each chunk */
    uint32_t n_chunks;
    uint64_t created_ms;
    uint64_t index;                 /* Raft index of the PACKAGE_PUT (orders versions) */
    char origin[STORE_NODE_ID_MAX]; /* the server that received the upload */
    uint32_t keep;                  /* versions of this name kept (retention) */
};
/* The number of chunks of a package of `size` bytes in chunks of chunk_size. */
uint32_t store_package_n_chunks(uint64_t size, uint32_t chunk_size);
int store_package_encode(const struct store_package *p, struct fl_buf *out);
/* p's pointers point into val. Checks the shape (chunk count matches size). */
int store_package_decode(const void *val, size_t vlen, struct store_package *out);
int store_package_get(struct store_txn *t, const char *name, const char *version,
                      struct store_package *out); /* pointers valid until the txn ends */
int store_package_put(struct store_txn *t, const struct store_package *p);
int store_package_del(struct store_txn *t, const char *name, const char *version);
/* The table key of (name, version): name '\0' version. Returns its length,
 * 0 if it does not fit. */
size_t store_package_key(const char *name, const char *version, char *out, size_t cap);

#endif
