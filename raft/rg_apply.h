/* raft/rg_apply — the state machine (fsm/) behind the Raft library's
 * raft_fsm interface (raft-notes §4).
 *
 * apply passes each committed entry to fsm_apply with its index (raft's
 * last_applied + 1) and raft's commit index, and always returns 0: outcomes
 * are per-command results and a storage failure stops the process.
 * snapshot hands raft a logical dump (fsm_snapshot), released by
 * snapshot_finalize once raft has written it; restore loads one
 * (fsm_restore), which never rolls the store back. */
#ifndef FL_RAFT_RG_APPLY_H
#define FL_RAFT_RG_APPLY_H

#include <raft.h>

#include "fsm/fsm.h"

struct rg_apply {
    struct raft_fsm rf; /* handed to raft_init (or raft_fixture_grow) */
    struct fsm *fsm;
    struct raft *raft; /* set once raft_init has run */
};

void rg_apply_init(struct rg_apply *a, struct fsm *f);
void rg_apply_set_raft(struct rg_apply *a, struct raft *r);

#endif
