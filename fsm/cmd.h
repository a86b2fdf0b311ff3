/* fsm/cmd — the versioned msgpack codec of Raft log entries.
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
 * as FSM_CMD_UNKNOWN and apply as a no-op with an FL_EVERSION result.
 *
 * Each command layout is a schema/ field table (fsm/cmd_schema.c) that
 * drives its validator, encoder and decoder; the entry framing and the
 * request envelope are cmd.c's. The decoder is total: any byte string
 * decodes or returns FL_EDECODE / FL_EVERSION / FL_ETOOBIG (FL_ENOMEM if a
 * command's arena cannot be had); it never reads out of bounds and sizes
 * nothing from a count the bytes cannot back. */
#ifndef FL_FSM_CMD_H
#define FL_FSM_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "store/store.h"

#define FSM_CMD_FORMAT      1
#define FSM_ENTRY_MAX_BYTES (8u * 1024 * 1024)
#define FSM_ENTRY_MAX_CMDS  65536
#define FSM_TASK_HOSTS_MAX  200000
#define FSM_UNIT_SIZE_MAX   10000
#define FSM_MAX_RUNNING_MAX 1000000

/* Where a task's units run (TASK_SUBMIT placement). */
enum {
    FSM_PLACE_ANY = 0,  /* on any node the scheduler picks */
    FSM_PLACE_HOST = 1, /* one host per unit, and the host is the node that runs it */
};

enum fsm_cmd_type {
    FSM_CMD_UNKNOWN = 0,
    FSM_CMD_KV_PUT = 1,
    FSM_CMD_KV_DEL = 2,
    FSM_CMD_NODE_REGISTER = 3, /* create, or update addresses and labels */
    FSM_CMD_NODE_CAP = 4,
    FSM_CMD_NODE_DRAIN = 5,
    FSM_CMD_NODE_REMOVE = 6,
    FSM_CMD_META_INIT = 7, /* set a meta value if it is not set yet */
    FSM_CMD_TASK_SUBMIT = 8,
    FSM_CMD_UNIT_ASSIGN = 9,
    FSM_CMD_UNIT_RESULT = 10,
    FSM_CMD_UNIT_REQUEUE = 11, /* the leader takes a unit back (lost agent, reconcile) */
    FSM_CMD_NODE_LOST = 12,
    FSM_CMD_TASK_CANCEL = 13,
    FSM_CMD_DISPATCH = 14, /* pause or resume dispatch cluster-wide */
    /* Sessions and locks (docs/LOCKS.md); all use u.lock. */
    FSM_CMD_SESSION_CREATE = 15,
    FSM_CMD_SESSION_RENEW = 16,
    FSM_CMD_SESSION_DESTROY = 17, /* release everything, no lock-delay */
    FSM_CMD_SESSION_EXPIRE = 18,  /* the leader's decision; refused if renewed since */
    FSM_CMD_LEASE_EXTEND = 19,    /* a new leader extends every lease by its TTL */
    FSM_CMD_LOCK_ACQUIRE = 20,
    FSM_CMD_LOCK_RELEASE = 21, /* give up a hold or a place in the queue */
    FSM_CMD_LOCK_UNWAIT = 22,  /* a wait timed out: leave the queue unless granted */
    FSM_CMD_LOCK_WAKE = 23,    /* the lock-delay is over: grant the waiters */
    /* Cron jobs (docs/JOBS.md); all use u.job. */
    FSM_CMD_JOB_PUT = 24, /* create or redefine */
    FSM_CMD_JOB_DEL = 25,
    FSM_CMD_JOB_PAUSE = 26, /* pause or resume */
    FSM_CMD_JOB_FIRE = 27,  /* one schedule time (or a manual run): at most once */
    /* API tokens (docs/SECURITY.md); all use u.acl. */
    FSM_CMD_ACL_BOOTSTRAP = 28, /* the first management token, exactly once */
    FSM_CMD_TOKEN_CREATE = 29,
    FSM_CMD_TOKEN_DELETE = 30,
    /* Agent identities (docs/SECURITY.md "Links"); both use u.agentkey. */
    FSM_CMD_AGENT_KEY_SET = 31,     /* record an agent's public key (first join) */
    FSM_CMD_AGENT_KEY_APPROVE = 32, /* approve a pending agent */
    FSM_CMD_AGENT_KEY_FORGET = 33,  /* drop a recorded key: the next join records anew */
    /* Package metadata (docs/PACKAGES.md); both use u.pkg. */
    FSM_CMD_PACKAGE_PUT = 34, /* record a version (immutable), apply retention */
    FSM_CMD_PACKAGE_RM = 35,  /* forget a version */
    /* Not a command: the envelope [36, session, serial, cmd] of a command
     * that carries a client's request identity (fsm_cmd.req). */
    FSM_CMD_REQUEST = 36,
    /* The agent deny-list (docs/SECURITY.md "Revocation"); both use u.agentkey. */
    FSM_CMD_AGENT_REVOKE = 37,   /* refuse this agent name at every handshake and HELLO */
    FSM_CMD_AGENT_UNREVOKE = 38, /* take it off the list */
    FSM_CMD__MAX
};

const char *fsm_cmd_type_name(int type);

struct fsm_cmd;

/* One host's outcome inside a UNIT_RESULT (encoding side). */
struct fsm_host_result {
    const char *host;
    size_t hostlen;
    int status;
    int32_t rc;
    const uint8_t *tail;
    size_t tail_len;
};

/* Host i of a UNIT_RESULT (FL_EINVAL past the last). */
int fsm_cmd_result(const struct fsm_cmd *c, uint32_t i, struct fsm_host_result *out);
/* Host i of a decoded TASK_SUBMIT. */
int fsm_cmd_host(const struct fsm_cmd *c, uint32_t i, const char **host, size_t *len);

/* A command. Decoded, its pointers point into the entry's bytes and its
 * memory (valid until fsm_entry_close); encoding, into the caller's. Every
 * layout is a field table in fsm/cmd_schema.c. */
/* An agent identity record (fsm/agentkey.c). */
struct fsm_cmd_agentkey {
    const char *agent;
    size_t alen;
    const uint8_t *pk; /* SET: 32 bytes */
    size_t pklen;
    uint8_t state; /* SET: STORE_AGENTKEY_APPROVED or _PENDING */
};

/* Package metadata (fsm/package.c). */
struct fsm_cmd_package {
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
 * [FSM_CMD_REQUEST, session, serial, command], so a command without one
 * encodes as before. */
struct fsm_cmd_req {
    const char *session;
    size_t slen;
    uint64_t serial;
};
#define FSM_REQ_SERIAL_MAX ((uint64_t)INT64_MAX)

struct fsm_cmd {
    int type;
    struct fsm_cmd_req req;
    union {
        struct {
            const char *key;
            size_t klen;
            const uint8_t *value; /* KV_PUT only */
            size_t vlen;
            int has_cas;  /* compare-and-set on the key's version */
            uint64_t cas; /* 0 = the key must not exist */
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
            uint32_t cap;           /* NODE_REGISTER (initial cap), NODE_CAP */
            int drain;              /* NODE_DRAIN */
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
            const char *const *host_ptrs; /* the hosts, NUL-terminated */
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
            uint8_t placement;    /* FSM_PLACE_* */
        } task;
        struct {
            const char *task;
            size_t tasklen;
            uint32_t unit;
            uint32_t attempt; /* ASSIGN: the unit's attempt before; RESULT: the attempt */
            uint64_t token;   /* RESULT, REQUEUE */
            const char *node; /* ASSIGN */
            size_t nodelen;
            int status; /* RESULT: unit status; REQUEUE: status if no retry left */
            int32_t exit_code;
            uint64_t started_ms, finished_ms;
            uint32_t n_results;
            const struct fsm_host_result *result_ptrs; /* [host, status, rc, tail] each */
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
            const char *owner;      /* SESSION_CREATE: the accessor of the API token that
                                       creates it (docs/ACL.md); olen 0 = none */
            size_t olen;
        } lock;
        struct {
            const char *name;
            size_t nlen;
            const uint8_t *def; /* JOB_PUT: a store_job record (definition and template) */
            size_t def_len;
            uint64_t sched_ms; /* JOB_FIRE: the schedule time */
            int manual;        /* JOB_FIRE: a run requested now, not a schedule time;
                                  JOB_PUT: create only (FL_EEXIST if it exists) */
            int paused;        /* JOB_PAUSE */
            int skip;          /* JOB_FIRE: record the time as missed, run nothing */
            uint32_t missed;   /* JOB_FIRE: earlier schedule times folded into this one */
            uint32_t n_nodes;  /* JOB_FIRE, mode all: the eligible nodes */
            const char *const *node_ptrs; /* NUL-terminated */
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
            const uint8_t *rec; /* BOOTSTRAP, CREATE: a store_token record */
            size_t reclen;
            const char *accessor; /* DELETE */
            size_t alen;
        } acl;
        struct fsm_cmd_agentkey agentkey;
        struct fsm_cmd_package pkg;
    } u;
};

/* Limits of sessions and locks (docs/LOCKS.md). */
#define FSM_SESSION_TTL_MIN_MS 1000u
#define FSM_SESSION_TTL_MAX_MS (24u * 3600 * 1000)
#define FSM_LOCK_DELAY_MAX_MS  (60u * 1000)
#define FSM_LOCK_NS_MAX        64
/* Check a lock's namespace and name; FL_EINVAL with a message saying what
 * is wrong. A namespace is 1-64 of [a-z0-9_.-] starting with a letter or a
 * digit; a name is 1-190 printable ASCII bytes without spaces. */
int fsm_lock_key_check(const char *ns, size_t nslen, const char *name, size_t namelen,
                       char *errmsg);
/* Check a full key "namespace/name" (split at the first '/'). */
int fsm_lock_full_key_check(const char *key, size_t klen, char *errmsg);
/* A session id: 1-39 of [A-Za-z0-9_-]. */
int fsm_session_id_check(const char *id, size_t n, char *errmsg);

/* A package name: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'; a
 * version: 1-127 of [A-Za-z0-9._+@-], not starting with '.'. FL_EINVAL. */
int fsm_package_name_check(const char *s, size_t n, char *errmsg);
int fsm_package_version_check(const char *s, size_t n, char *errmsg);

#define FSM_JOB_NODES_MAX 10000
/* A job name: 1-63 of [A-Za-z0-9_.-], starting with a letter or a digit. */
int fsm_job_name_check(const char *name, size_t n, char *errmsg);
/* Decode one command encoded alone by fsm_writer_add (a job's task
 * template). out points into data and into *arena (NULL if nothing was
 * copied): fl_free(*arena) after use, also after a failure. */
int fsm_cmd_decode_one(const void *data, size_t len, void **arena, struct fsm_cmd *out);

/* Validate a command before it is proposed (its table's bounds, then its
 * rules across fields): the leader refuses bad commands instead of logging
 * them, and the apply refuses them again. FL_EINVAL/FL_ETOOBIG with the
 * reason in errmsg. */
int fsm_cmd_validate(const struct fsm_cmd *c, char *errmsg);

/* ---- encoding: the leader builds one entry per batch ---------------- */

struct fsm_entry_writer {
    struct fl_buf body; /* encoded commands */
    unsigned n_cmds;
};
void fsm_writer_init(struct fsm_entry_writer *w);
void fsm_writer_close(struct fsm_entry_writer *w);
/* Append one command. FL_ENOMEM on allocation failure. */
int fsm_writer_add(struct fsm_entry_writer *w, const struct fsm_cmd *c);
size_t fsm_writer_size(const struct fsm_entry_writer *w);
/* Produce the padded entry in a buffer from `alloc` (raft_malloc for
 * raft_apply). *len is a multiple of 8. */
int fsm_writer_finish(struct fsm_entry_writer *w, uint64_t origin, uint64_t seq, uint64_t term,
                      uint64_t time_ms, void *(*alloc)(size_t), void **out, size_t *len);

/* ---- decoding ------------------------------------------------------- */

/* Command i of an entry: where it starts in the entry (the slot after the
 * last one holds the end), and the memory its decoding copied into. */
struct fsm_entry_slot {
    size_t off;
    void *arena;
};

struct fsm_entry {
    int format;
    uint64_t origin;
    uint64_t seq;
    uint64_t term;
    uint64_t time_ms;
    unsigned n_cmds;
    const uint8_t *data;          /* the entry's bytes: the caller keeps them until close */
    struct fsm_entry_slot *slots; /* n_cmds + 1 */
};

/* Decode the header and check the framing; then fsm_entry_cmd(i) decodes
 * command i, through the field tables of fsm/cmd_schema.c. A decoded
 * command points into the entry's bytes and into memory the entry owns:
 * valid until fsm_entry_close (or until command i is decoded again). Call
 * fsm_entry_close in every case after fsm_entry_open. */
int fsm_entry_open(struct fsm_entry *e, const void *data, size_t len);
int fsm_entry_cmd(const struct fsm_entry *e, unsigned i, struct fsm_cmd *out);
void fsm_entry_close(struct fsm_entry *e);

#endif
