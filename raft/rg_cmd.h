/* raft/rg_cmd — the versioned msgpack codec of Raft log entries.
 *
 * One log entry carries a batch of commands from one leader (DESIGN.md,
 * "Log entries are msgpack-encoded commands with a type and a format
 * version. Many operations go into one entry"):
 *
 *   [ format(=1), origin server id, batch seq, term, time_ms, [cmd, ...] ]
 *   followed by zero bytes up to a multiple of 8 (raft-notes §0.4).
 *
 * origin/seq let the leader that proposed the entry find the waiting client
 * requests when the entry is applied; term and time_ms are the leader's
 * stamp, the only clock the state machine ever sees. Each command is an
 * array whose first element is its type; new types and new trailing fields
 * may be added, so the decoder ignores nothing silently: unknown types decode
 * as RG_CMD_UNKNOWN and apply as a no-op with an FL_EVERSION result.
 *
 * The decoder is total: any byte string decodes or returns FL_EDECODE /
 * FL_EVERSION / FL_ETOOBIG; it never reads out of bounds. */
#ifndef FL_RAFT_RG_CMD_H
#define FL_RAFT_RG_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "common/buf.h"
#include "store/store.h"

#define RG_CMD_FORMAT      1
#define RG_ENTRY_MAX_BYTES (8u * 1024 * 1024)
#define RG_ENTRY_MAX_CMDS  65536
#define RG_TASK_HOSTS_MAX  200000
#define RG_UNIT_SIZE_MAX   10000
#define RG_MAX_RUNNING_MAX 1000000

/* Where a task's units run (TASK_SUBMIT placement). */
enum {
    RG_PLACE_ANY = 0,  /* on any node the scheduler picks */
    RG_PLACE_HOST = 1, /* one host per unit, and the host is the node that runs it */
};

enum rg_cmd_type {
    RG_CMD_UNKNOWN = 0,
    RG_CMD_KV_PUT = 1,
    RG_CMD_KV_DEL = 2,
    RG_CMD_NODE_REGISTER = 3, /* create, or update addresses and labels */
    RG_CMD_NODE_CAP = 4,
    RG_CMD_NODE_DRAIN = 5,
    RG_CMD_NODE_REMOVE = 6,
    RG_CMD_META_INIT = 7, /* set a meta value if it is not set yet */
    RG_CMD_TASK_SUBMIT = 8,
    RG_CMD_UNIT_ASSIGN = 9,
    RG_CMD_UNIT_RESULT = 10,
    RG_CMD_UNIT_REQUEUE = 11, /* the leader takes a unit back (lost agent, reconcile) */
    RG_CMD_NODE_LOST = 12,
    RG_CMD_TASK_CANCEL = 13,
    RG_CMD_DISPATCH = 14,     /* pause or resume dispatch cluster-wide */
    /* Sessions and locks (docs/LOCKS.md); all use u.lock. */
    RG_CMD_SESSION_CREATE = 15,
    RG_CMD_SESSION_RENEW = 16,
    RG_CMD_SESSION_DESTROY = 17, /* release everything, no lock-delay */
    RG_CMD_SESSION_EXPIRE = 18,  /* the leader's decision; refused if renewed since */
    RG_CMD_LEASE_EXTEND = 19,    /* a new leader extends every lease by its TTL */
    RG_CMD_LOCK_ACQUIRE = 20,
    RG_CMD_LOCK_RELEASE = 21,    /* give up a hold or a place in the queue */
    RG_CMD_LOCK_UNWAIT = 22,     /* a wait timed out: leave the queue unless granted */
    RG_CMD_LOCK_WAKE = 23,       /* the lock-delay is over: grant the waiters */
    /* Cron jobs (docs/JOBS.md); all use u.job. */
    RG_CMD_JOB_PUT = 24,   /* create or redefine */
    RG_CMD_JOB_DEL = 25,
    RG_CMD_JOB_PAUSE = 26, /* pause or resume */
    RG_CMD_JOB_FIRE = 27,  /* one schedule time (or a manual run): at most once */
    /* API tokens (docs/SECURITY.md); all use u.acl. */
    RG_CMD_ACL_BOOTSTRAP = 28, /* the first management token, exactly once */
    RG_CMD_TOKEN_CREATE = 29,
    RG_CMD_TOKEN_DELETE = 30,
    /* Agent identities (docs/SECURITY.md "Links"); both use u.agentkey. */
    RG_CMD_AGENT_KEY_SET = 31,     /* record an agent's public key (first join) */
    RG_CMD_AGENT_KEY_APPROVE = 32, /* approve a pending agent */
    RG_CMD_AGENT_KEY_FORGET = 33,  /* drop a recorded key: the next join records anew */
    /* Package metadata (docs/PACKAGES.md); both use u.pkg. */
    RG_CMD_PACKAGE_PUT = 34, /* record a version (immutable), apply retention */
    RG_CMD_PACKAGE_RM = 35,  /* forget a version */
    /* Not a command: the envelope [36, session, serial, cmd] of a command
     * that carries a client's request identity (rg_cmd.req). */
    RG_CMD_REQUEST = 36,
    RG_CMD__MAX
};

const char *rg_cmd_type_name(int type);

struct rg_cmd;

/* One host's outcome inside a UNIT_RESULT (encoding side). */
struct rg_host_result {
    const char *host;
    size_t hostlen;
    int status;
    int32_t rc;
    const uint8_t *tail;
    size_t tail_len;
};

/* Host i of a decoded UNIT_RESULT; FL_EDECODE if malformed. */
int rg_cmd_result(const struct rg_cmd *c, uint32_t i, struct rg_host_result *out);
/* Host i of a decoded TASK_SUBMIT. */
int rg_cmd_host(const struct rg_cmd *c, uint32_t i, const char **host, size_t *len);

/* A decoded command. Byte pointers point into the decoder's memory (valid
 * until rg_entry_close) or, when encoding, into the caller's. */
/* An agent identity record (raft/rg_agentkey.c). */
struct rg_cmd_agentkey {
    const char *agent;
    size_t alen;
    const uint8_t *pk; /* SET: 32 bytes */
    size_t pklen;
    uint8_t state;     /* SET: STORE_AGENTKEY_APPROVED or _PENDING */
};

/* Package metadata (raft/rg_package.c). */
struct rg_cmd_package {
    const char *name;
    size_t nlen;
    const char *version;
    size_t vlen;
    const uint8_t *rec; /* PUT: a store_package record */
    size_t reclen;
};

/* The client request a command carries out (docs/API.md "Request
 * identity"): the client's session and the request's serial, 1..INT64_MAX.
 * serial 0 means none. On the wire the command is wrapped in an envelope,
 * [RG_CMD_REQUEST, session, serial, command], so a command without one
 * encodes as before. */
struct rg_cmd_req {
    const char *session;
    size_t slen;
    uint64_t serial;
};
#define RG_REQ_SERIAL_MAX ((uint64_t)INT64_MAX)

struct rg_cmd {
    int type;
    struct rg_cmd_req req;
    union {
        struct {
            const char *key;
            size_t klen;
            const uint8_t *value; /* KV_PUT only */
            size_t vlen;
            int has_cas;          /* compare-and-set on the key's version */
            uint64_t cas;         /* 0 = the key must not exist */
        } kv;
        struct {
            const char *id;
            size_t idlen;
            uint64_t raft_id;
            const char *raft_addr;
            size_t raft_addr_len;
            const char *api_addr;
            size_t api_addr_len;
            int kind;
            unsigned n_labels;
            const char *labels[STORE_NODE_LABELS];
            size_t label_lens[STORE_NODE_LABELS];
            uint32_t cap;      /* NODE_REGISTER (initial cap), NODE_CAP */
            int drain;         /* NODE_DRAIN */
            const char *agent_addr; /* NODE_REGISTER, optional */
            size_t agent_addr_len;
            const char *blob_addr; /* NODE_REGISTER, optional */
            size_t blob_addr_len;
        } node;
        struct {
            const char *id; /* all task commands */
            size_t idlen;
            const char *name;
            size_t namelen;
            const char *idem;
            size_t idemlen;
            uint32_t n_hosts;
            const msgpack_object *hosts;  /* decoded: array of str */
            const char *const *host_ptrs; /* encoding: host strings */
            uint32_t unit_size;
            uint32_t timeout_ms;
            uint32_t retries;
            int32_t priority;
            unsigned n_constraints;
            const char *constraints[STORE_TASK_CONSTRAINTS];
            size_t constraint_lens[STORE_TASK_CONSTRAINTS];
            const uint8_t *spec; /* executor spec, opaque here */
            size_t spec_len;
            /* Rollout controls, optional trailing fields (0 when absent). */
            uint32_t max_running; /* units RUNNING at once; 0 = no limit */
            uint32_t fail_stop;   /* stop after this many failed hosts; 0 = never */
            uint8_t placement;    /* RG_PLACE_* */
        } task;
        struct {
            const char *task;
            size_t tasklen;
            uint32_t unit;
            uint32_t attempt; /* ASSIGN: the unit's attempt before; RESULT: the attempt */
            uint64_t token;   /* RESULT, REQUEUE */
            const char *node; /* ASSIGN */
            size_t nodelen;
            int status;       /* RESULT: unit status; REQUEUE: status if no retry left */
            int32_t exit_code;
            uint64_t started_ms, finished_ms;
            uint32_t n_results;
            const msgpack_object *results; /* decoded: [host, status, rc, tail] arrays */
            const struct rg_host_result *result_ptrs; /* encoding */
        } unit;
        struct {
            int paused;
        } dispatch;
        struct {
            const char *session; /* every type but LEASE_EXTEND and LOCK_WAKE */
            size_t slen;
            const char *key; /* "namespace/name": LOCK_* */
            size_t klen;
            const char *name; /* SESSION_CREATE: who holds it (free text) */
            size_t nlen;
            uint64_t ttl_ms;        /* SESSION_CREATE */
            uint64_t lock_delay_ms; /* SESSION_CREATE */
            uint64_t renewals;      /* SESSION_EXPIRE: the renewal count it saw */
            uint32_t limit;         /* LOCK_ACQUIRE: holders allowed (1 = mutex) */
            int wait;               /* LOCK_ACQUIRE: join the queue if not free */
            uint64_t token;         /* LOCK_RELEASE: release only the hold with this
                                       fencing token; 0 = the hold or the queue place */
        } lock;
        struct {
            const char *name;
            size_t nlen;
            const uint8_t *def; /* JOB_PUT: a store_job record (definition and template) */
            size_t def_len;
            uint64_t sched_ms;  /* JOB_FIRE: the schedule time */
            int manual;         /* JOB_FIRE: a run requested now, not a schedule time;
                                   JOB_PUT: create only (FL_EEXIST if it exists) */
            int paused;         /* JOB_PAUSE */
            int skip;           /* JOB_FIRE: record the time as missed, run nothing */
            uint32_t missed;    /* JOB_FIRE: earlier schedule times folded into this one */
            uint32_t n_nodes;   /* JOB_FIRE, mode all: the eligible nodes */
            const msgpack_object *nodes;  /* decoded: array of str */
            const char *const *node_ptrs; /* encoding */
        } job;
        struct {
            const char *name;
            size_t nlen;
            const char *value;
            size_t vlen;
        } meta;
        struct {
            const uint8_t *hash; /* BOOTSTRAP, CREATE: BLAKE2b-256 of the secret */
            size_t hlen;
            const uint8_t *rec;  /* BOOTSTRAP, CREATE: a store_token record */
            size_t reclen;
            const char *accessor; /* DELETE */
            size_t alen;
        } acl;
        struct rg_cmd_agentkey agentkey;
        struct rg_cmd_package pkg;
    } u;
};

/* Limits of sessions and locks (docs/LOCKS.md). */
#define RG_SESSION_TTL_MIN_MS   1000u
#define RG_SESSION_TTL_MAX_MS   (24u * 3600 * 1000)
#define RG_LOCK_DELAY_MAX_MS    (60u * 1000)
#define RG_LOCK_NS_MAX          64
/* Check a lock's namespace and name; FL_EINVAL with a message saying what
 * is wrong. A namespace is 1-64 of [a-z0-9_.-] starting with a letter or a
 * digit; a name is 1-190 printable ASCII bytes without spaces. */
int rg_lock_key_check(const char *ns, size_t nslen, const char *name, size_t namelen,
                      char *errmsg);
/* Check a full key "namespace/name" (split at the first '/'). */
int rg_lock_full_key_check(const char *key, size_t klen, char *errmsg);
/* A session id: 1-39 of [A-Za-z0-9_-]. */
int rg_session_id_check(const char *id, size_t n, char *errmsg);

/* A package name: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'; a
 * version: 1-127 of [A-Za-z0-9._+@-], not starting with '.'. FL_EINVAL. */
int rg_package_name_check(const char *s, size_t n, char *errmsg);
int rg_package_version_check(const char *s, size_t n, char *errmsg);

#define RG_JOB_NODES_MAX 10000
/* A job name: 1-63 of [A-Za-z0-9_.-], starting with a letter or a digit. */
int rg_job_name_check(const char *name, size_t n, char *errmsg);
/* Decode one command encoded alone by rg_writer_add (a job's task
 * template). `u` owns the decoded objects: destroy it after use. */
int rg_cmd_decode_one(const void *data, size_t len, msgpack_unpacked *u, struct rg_cmd *out);

/* Validate a command before it is proposed (sizes, required fields): the
 * leader refuses bad commands instead of logging them. FL_EINVAL/FL_ETOOBIG
 * with the reason in errmsg. */
int rg_cmd_validate(const struct rg_cmd *c, char *errmsg);

/* ---- encoding: the leader builds one entry per batch ---------------- */

struct rg_entry_writer {
    msgpack_sbuffer body; /* encoded commands */
    unsigned n_cmds;
};
void rg_writer_init(struct rg_entry_writer *w);
void rg_writer_close(struct rg_entry_writer *w);
/* Append one command. FL_ENOMEM on allocation failure. */
int rg_writer_add(struct rg_entry_writer *w, const struct rg_cmd *c);
size_t rg_writer_size(const struct rg_entry_writer *w);
/* Produce the padded entry in a buffer from `alloc` (raft_malloc for
 * raft_apply). *len is a multiple of 8. */
int rg_writer_finish(struct rg_entry_writer *w, uint64_t origin, uint64_t seq, uint64_t term,
                     uint64_t time_ms, void *(*alloc)(size_t), void **out, size_t *len);

/* ---- decoding ------------------------------------------------------- */

struct rg_entry {
    int format;
    uint64_t origin;
    uint64_t seq;
    uint64_t term;
    uint64_t time_ms;
    unsigned n_cmds;
    msgpack_unpacked unpacked; /* owns the decoded objects */
    const msgpack_object *cmds;
};

/* Decode the header and check the framing; then rg_entry_cmd(i) decodes
 * command i. Call rg_entry_close in every case after rg_entry_open. */
int rg_entry_open(struct rg_entry *e, const void *data, size_t len);
int rg_entry_cmd(const struct rg_entry *e, unsigned i, struct rg_cmd *out);
void rg_entry_close(struct rg_entry *e);

#endif
