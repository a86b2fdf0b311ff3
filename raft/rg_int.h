/* raft/ — private to the glue. */
#ifndef FL_RAFT_RG_INT_H
#define FL_RAFT_RG_INT_H

#include "raft/rg_cmd.h"
#include "raft/rg_fsm.h"

/* Apply one scheduling command (tasks, units, node loss, dispatch) in the
 * FSM's open write transaction. Business outcomes go to res->err; the return
 * value is a storage failure. */
int rg__apply_sched(struct rg_fsm *f, const struct rg_cmd *c, uint64_t index, uint64_t now,
                    struct rg_result *res);

/* Sessions and locks (rg_lock.c): validation, encoding and decoding of the
 * RG_CMD_SESSION_* / LEASE_EXTEND / LOCK_* commands, and their apply. */
int rg__lock_validate(const struct rg_cmd *c, char *errmsg);
int rg__lock_pack(msgpack_packer *pk, const struct rg_cmd *c); /* msgpack-c status */
int rg__lock_decode(const msgpack_object *f, uint32_t n, struct rg_cmd *c);
int rg__apply_lock(struct rg_fsm *f, const struct rg_cmd *c, uint64_t index, uint64_t now,
                   struct rg_result *res);

/* Holding a lock for a job run (overlap forbid) without a session: FL_OK
 * with *token, FL_EBUSY if it is held, has waiters or is in its lock-delay. */
int rg__lock_hold(struct rg_fsm *f, const char *key, const char *holder, uint64_t now,
                  uint64_t *token);
int rg__lock_drop(struct rg_fsm *f, const char *key, const char *holder, uint64_t now);

/* Cron jobs (rg_job.c). */
int rg__job_validate(const struct rg_cmd *c, char *errmsg);
int rg__job_pack(msgpack_packer *pk, const struct rg_cmd *c);
int rg__job_decode(const msgpack_object *f, uint32_t n, struct rg_cmd *c);
int rg__apply_job(struct rg_fsm *f, const struct rg_cmd *c, uint64_t index, uint64_t now,
                  struct rg_result *res);
/* A task of a job run has finished (called by the scheduling apply). */
int rg__job_task_finished(struct rg_fsm *f, const struct store_task *task, uint64_t index,
                          uint64_t now);

/* API tokens (rg_acl.c). */
int rg__acl_validate(const struct rg_cmd *c, char *errmsg);
int rg__acl_pack(msgpack_packer *pk, const struct rg_cmd *c);
int rg__acl_decode(const msgpack_object *f, uint32_t n, struct rg_cmd *c);
int rg__apply_acl(struct rg_fsm *f, const struct rg_cmd *c, uint64_t index, uint64_t now,
                  struct rg_result *res);

/* Package metadata (rg_package.c). */
int rg__package_validate(const struct rg_cmd *c, char *errmsg);
int rg__package_pack(msgpack_packer *pk, const struct rg_cmd *c);
int rg__package_decode(const msgpack_object *f, uint32_t n, struct rg_cmd *c);
int rg__apply_package(struct rg_fsm *f, const struct rg_cmd *c, uint64_t index, uint64_t now,
                      struct rg_result *res);

/* Agent identities (rg_agentkey.c). */
int rg__agentkey_validate(const struct rg_cmd *c, char *errmsg);
int rg__agentkey_pack(msgpack_packer *pk, const struct rg_cmd *c);
int rg__agentkey_decode(const msgpack_object *f, uint32_t n, struct rg_cmd *c);
int rg__apply_agentkey(struct rg_fsm *f, const struct rg_cmd *c, uint64_t index, uint64_t now,
                       struct rg_result *res);

/* Request identity (rg_request.c): before executing a command that carries
 * one, *run says whether to execute it; otherwise res already holds the
 * answer (a replay of the remembered result, or FL_ESTALE / FL_ENOSESSION)
 * and res->not_run is set. After executing it, record remembers the serial
 * and the result in the session. Both return storage failures only. */
int rg__request_check(struct rg_fsm *f, const struct rg_cmd *c, struct rg_result *res, int *run);
int rg__request_record(struct rg_fsm *f, const struct rg_cmd *c, const struct rg_result *res);

/* Read/write a decimal counter kept in META. */
int rg__meta_u64(struct store_txn *t, const char *name, uint64_t *out);
int rg__meta_put_u64(struct store_txn *t, const char *name, uint64_t v);

#endif
