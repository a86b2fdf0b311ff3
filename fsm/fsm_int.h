/* fsm/ — private to the state machine. */
#ifndef FL_FSM_FSM_INT_H
#define FL_FSM_FSM_INT_H

#include "fsm/cmd.h"
#include "fsm/fsm.h"

/* Keys (kv.c): KV_PUT, KV_DEL. */
int fsm__apply_kv(struct fsm *f, const struct fsm_cmd *c, uint64_t now, struct fsm_result *res);
/* Nodes and META (node.c): NODE_REGISTER, NODE_CAP, NODE_DRAIN, NODE_REMOVE,
 * META_INIT. */
int fsm__apply_node(struct fsm *f, const struct fsm_cmd *c, uint64_t index, struct fsm_result *res);

/* Apply one scheduling command (tasks, units, node loss, dispatch) in the
 * FSM's open write transaction. Business outcomes go to res->err; the return
 * value is a storage failure. */
int fsm__apply_sched(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                     struct fsm_result *res);

/* The task and node records of a run of unit commands, kept decoded
 * (fsm/recs.c): fsm/sched.c reads and writes those tables only through
 * these. Task get/put behave as store_task_get/put (a task's spec read here
 * stays valid until another task is read). A node is changed in place:
 * fsm__node_ref gives the kept record (FL_ENOTFOUND if there is none), valid
 * until the next fsm__node_ref or flush, and fsm__node_changed marks it to be
 * written. The writes reach the store at fsm__recs_flush, which forgets
 * every kept record. fsm__recs_drop forgets them unwritten (the transaction
 * is aborted). */
int fsm__recs_init(struct fsm *f);
void fsm__recs_close(struct fsm *f);
int fsm__task_get(struct fsm *f, const char *id, struct store_task *out);
int fsm__task_put(struct fsm *f, const struct store_task *t);
int fsm__node_ref(struct fsm *f, const char *id, struct store_node **out);
void fsm__node_changed(struct fsm *f, struct store_node *n);
int fsm__recs_flush(struct fsm *f);
void fsm__recs_drop(struct fsm *f);

/* Sessions and locks (fsm/lock.c): the rules of the FSM_CMD_SESSION_* /
 * LEASE_EXTEND / LOCK_* commands beyond their field table (fsm/cmd_schema.c),
 * and their apply. The other domains below likewise. */
int fsm__lock_validate(const struct fsm_cmd *c, char *errmsg);
int fsm__apply_lock(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                    struct fsm_result *res);

/* Holding a lock for a job run (overlap forbid) without a session: FL_OK
 * with *token, FL_EBUSY if it is held, has waiters or is in its lock-delay. */
int fsm__lock_hold(struct fsm *f, const char *key, const char *holder, uint64_t now,
                   uint64_t *token);
int fsm__lock_drop(struct fsm *f, const char *key, const char *holder, uint64_t now);

/* Cron jobs (fsm/job.c). */
int fsm__job_validate(const struct fsm_cmd *c, char *errmsg);
int fsm__apply_job(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                   struct fsm_result *res);
/* A task of a job run has finished (called by the scheduling apply). */
int fsm__job_task_finished(struct fsm *f, const struct store_task *task, uint64_t index,
                           uint64_t now);

/* API tokens (fsm/acl.c). */
int fsm__acl_validate(const struct fsm_cmd *c, char *errmsg);
int fsm__apply_acl(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                   struct fsm_result *res);

/* Package metadata (fsm/package.c). */
int fsm__package_validate(const struct fsm_cmd *c, char *errmsg);
int fsm__apply_package(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                       struct fsm_result *res);

/* Agent identities (fsm/agentkey.c). */
int fsm__agentkey_validate(const struct fsm_cmd *c, char *errmsg);
int fsm__apply_agentkey(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                        struct fsm_result *res);

/* Request identity (fsm/request.c): before executing a command that carries
 * one, *run says whether to execute it; otherwise res already holds the
 * answer (a replay of the remembered result, or FL_ESTALE / FL_ENOSESSION)
 * and res->not_run is set. After executing it, record remembers the serial
 * and the result in the session. Both return storage failures only. */
int fsm__request_check(struct fsm *f, const struct fsm_cmd *c, struct fsm_result *res, int *run);
int fsm__request_record(struct fsm *f, const struct fsm_cmd *c, const struct fsm_result *res);

/* A command's counted string into a NUL-terminated field of cap bytes,
 * cut to fit; NULL reads as empty (fsm.c). */
void fsm__copy_str(char *dst, size_t cap, const char *s, size_t n);

/* Effects (effects.c, fsm/fsm.h "Effects"). fsm__effect appends one of the
 * entry being applied, zeroed but for its type, index and name (copied, cut
 * to fit; NULL reads as empty), for the caller to fill in; NULL if memory
 * ran out (fsm_apply then stops with a fatal error after the command). fsm__effects_committed marks
 * every queued effect ready (the transaction holding their entries is committed).
 * fsm__sched_effects records what an executed scheduling or node command means for the dispatcher.
 */
struct fsm_effect *fsm__effect(struct fsm *f, int type, const char *name, size_t nlen);
void fsm__effects_committed(struct fsm *f);
void fsm__effects_close(struct fsm *f);
void fsm__sched_effects(struct fsm *f, const struct fsm_cmd *c, const struct fsm_result *res);

/* A storage (or allocation) failure while applying: abort the open
 * transaction and call fsm_fatal_hook (fsm.c). */
void fsm__fatal(struct fsm *f, const char *what, int err);

/* Read/write a decimal counter kept in META. */
int fsm__meta_u64(struct store_txn *t, const char *name, uint64_t *out);
int fsm__meta_put_u64(struct store_txn *t, const char *name, uint64_t v);

#endif
