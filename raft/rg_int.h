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

/* Read/write a decimal counter kept in META. */
int rg__meta_u64(struct store_txn *t, const char *name, uint64_t *out);
int rg__meta_put_u64(struct store_txn *t, const char *name, uint64_t v);

#endif
