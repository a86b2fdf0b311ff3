/* raft/rg_repl — one server's Raft instance and the write path into it.
 *
 * Owns the raft instance, its raft_uv I/O, the transport and the FSM adapter,
 * all on one libuv loop (raft-notes §2: no raft call is thread-safe).
 *
 * Writes: rg_repl_submit queues a command; everything queued during one loop
 * iteration is encoded into one log entry (DESIGN.md "Replication layer":
 * Raft throughput comes from batching and from many entries in flight). The
 * callback of every submission runs exactly once, never synchronously:
 *   FL_OK + result       the entry was applied; result->err is the command's
 *                        business outcome (FL_ECONFLICT, FL_ENOTFOUND, ...);
 *   FL_ENOTLEADER        not proposed: this server is not the leader;
 *   FL_EUNKNOWN          proposed, then leadership was lost or the server
 *                        began closing: the entry may or may not commit
 *                        (raft-notes §4);
 *   FL_ESHUTDOWN         the server is closing and the command was never
 *                        proposed.
 *
 * Reads: rg_repl_read_barrier calls back once everything committed before the
 * call is applied to the store on this (leader) server, so a read after it is
 * linearizable. Barriers requested during one iteration share one entry.
 *
 * After winning an election the leader commits a barrier of its own before
 * it reports itself ready (rg_repl_ready) and runs the on_leader hook: a new
 * leader cannot change the configuration before that (raft-notes §3). */
#ifndef FL_RAFT_RG_REPL_H
#define FL_RAFT_RG_REPL_H

#include <stdint.h>

#include <raft.h>

#include <uv.h>

#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "raft/rg_apply.h"
#include "store/store.h"
#include "tls/creds.h"

struct rg_repl_options {
    uint64_t id;                  /* Raft server id, > 0 */
    const char *raft_addr;        /* "host:port" this server listens on */
    const char *dir;              /* Raft log directory (created if missing) */
    unsigned snapshot_threshold;  /* 0 = 8192 (raft-notes §5: 1-5 s of peak entries) */
    unsigned snapshot_trailing;   /* 0 = 8192 */
    unsigned election_timeout_ms; /* 0 = 1000 */
    unsigned heartbeat_ms;        /* 0 = 100 */
    unsigned max_batch_cmds;      /* 0 = 4096 */
    size_t max_batch_bytes;       /* 0 = 1 MiB */
    struct tls_creds *creds;      /* this server's TLS credentials, required; not owned */
    int raft_plaintext;           /* test builds, measurement only: unencrypted (rg_transport.h) */
};

struct rg_peer {
    uint64_t id;
    char addr[128];
    int role; /* RAFT_VOTER, RAFT_STANDBY, RAFT_SPARE */
};

typedef void (*rg_op_cb)(void *data, int err, const struct fsm_result *res);
typedef void (*rg_done_cb)(void *data, int err);

struct rg_repl;

int rg_repl_create(uv_loop_t *loop, struct store *store, const struct rg_repl_options *o,
                   struct rg_repl **out, char *errmsg);
/* Bootstrap a new cluster with this configuration (all servers use the same
 * list). FL_EEXIST if this server already has Raft state. Before start. */
int rg_repl_bootstrap(struct rg_repl *p, const struct rg_peer *peers, unsigned n, char *errmsg);
int rg_repl_start(struct rg_repl *p, char *errmsg);
/* Close everything; operations not yet proposed fail with FL_ESHUTDOWN,
 * proposed ones with FL_EUNKNOWN. cb runs once
 * all handles are closed; then the object is freed. */
void rg_repl_close(struct rg_repl *p, void (*cb)(void *data), void *data);

/* Hook run each time this server becomes a ready leader. */
void rg_repl_on_leader(struct rg_repl *p, void (*cb)(void *data), void *data);

/* ---- operations (callbacks exactly once, asynchronously) ------------- */

/* The command is copied (encoded) before this returns. Returns FL_OK, or an
 * error without calling cb: FL_EINVAL/FL_ETOOBIG (validation, detail in
 * errmsg), FL_ENOTLEADER. */
int rg_repl_submit(struct rg_repl *p, const struct fsm_cmd *cmd, rg_op_cb cb, void *data,
                   char *errmsg);
/* FL_ENOTLEADER without calling cb when not the leader. */
int rg_repl_read_barrier(struct rg_repl *p, rg_done_cb cb, void *data);

/* Membership. join = add as spare, then assign `role`; an existing member is
 * only assigned. cb gets FL_OK or an error with the detail logged. */
int rg_repl_join(struct rg_repl *p, uint64_t id, const char *addr, int role, rg_done_cb cb,
                 void *data);
int rg_repl_assign(struct rg_repl *p, uint64_t id, int role, rg_done_cb cb, void *data);
int rg_repl_remove(struct rg_repl *p, uint64_t id, rg_done_cb cb, void *data);
/* id 0: let raft pick a voter. cb's err is FL_OK if leadership moved. */
int rg_repl_transfer(struct rg_repl *p, uint64_t id, rg_done_cb cb, void *data);

/* ---- status --------------------------------------------------------- */

struct rg_status {
    uint64_t id;
    int state; /* RAFT_FOLLOWER, RAFT_CANDIDATE, RAFT_LEADER, RAFT_UNAVAILABLE */
    int ready; /* leader whose post-election barrier has committed */
    uint64_t leader_id;
    char leader_addr[128];
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index; /* raft's last applied */
    uint64_t last_index;
    unsigned n_members;
    int in_cluster; /* this server appears in the configuration */
    int role;       /* its role there (RAFT_VOTER, ...), -1 when absent */
    /* Membership changes: the last committed configuration's index, the
     * index of one not yet committed (0: none), and, on a leader, the server
     * being caught up before its promotion to voter (0: none). */
    uint64_t conf_committed_index, conf_uncommitted_index, promotee_id;
    uint64_t n_batches;  /* entries proposed by this server */
    uint64_t n_proposed; /* commands proposed by this server */
    /* The encrypted Raft transport (zero in --raft-plaintext mode). */
    uint64_t links_established, links_refused, links_broken, links_handshaking, links_timeouts;
    uint64_t raft_bytes_sent, raft_bytes_received, wire_bytes_sent, wire_bytes_received;
};
void rg_repl_status(struct rg_repl *p, struct rg_status *s);
/* Member i of the current configuration (0 <= i < n_members). */
int rg_repl_member(struct rg_repl *p, unsigned i, struct rg_peer *out);
struct fsm *rg_repl_fsm(struct rg_repl *p);
/* Commit what the state machine has applied so far and hand the effects
 * that makes ready to the subscribers (a reader that wants the store to show
 * every applied entry, such as the status digest). */
void rg_repl_flush(struct rg_repl *p);
/* The effects of applied entries (raft/rg_apply.h): subscribers are called
 * on this server for every applied entry, before its proposer is answered. */
int rg_repl_subscribe(struct rg_repl *p, rg_effect_fn fn, void *arg);
void rg_repl_unsubscribe(struct rg_repl *p, rg_effect_fn fn, void *arg);
const char *rg_role_name(int role);

#endif
