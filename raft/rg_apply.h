/* raft/rg_apply — the state machine (fsm/) behind the Raft library's
 * raft_fsm interface (raft-notes §4).
 *
 * apply passes each committed entry to fsm_apply with its index (raft's
 * last_applied + 1) and raft's commit index, and always returns 0: outcomes
 * are per-command results and a storage failure stops the process.
 * snapshot hands raft a logical dump (fsm_snapshot), released by
 * snapshot_finalize once raft has written it; restore loads one
 * (fsm_restore), which never rolls the store back.
 *
 * Effects (fsm/fsm.h "Effects"): after each fsm_apply, after a snapshot and
 * a restore (both flush the store first), and in rg_apply_flush, the effects
 * the state machine has made ready (their entry is committed to the store)
 * go to the subscribers, one effect at a time in the order they
 * were recorded, each effect to every subscriber in the order they
 * subscribed. The server's replication (raft/rg_repl) and the test fixture
 * flush through rg_apply_flush before they answer a proposal, so the
 * subscribers see an entry's effects before its proposer sees its result;
 * whatever else flushes the store flushes through it too (rg_repl_flush). */
#ifndef FL_RAFT_RG_APPLY_H
#define FL_RAFT_RG_APPLY_H

#include <raft.h>

#include "fsm/fsm.h"

typedef void (*rg_effect_fn)(void *arg, const struct fsm_effect *e);

#define RG_APPLY_SUBSCRIBERS_MAX 8

struct rg_apply {
    struct raft_fsm rf; /* handed to raft_init (or raft_fixture_grow) */
    struct fsm *fsm;
    struct raft *raft; /* set once raft_init has run */
    struct {
        rg_effect_fn fn;
        void *arg;
    } subs[RG_APPLY_SUBSCRIBERS_MAX];
    unsigned n_subs;
    int delivering; /* inside rg_apply_deliver */
};

void rg_apply_init(struct rg_apply *a, struct fsm *f);
void rg_apply_set_raft(struct rg_apply *a, struct raft *r);
/* Receive the effects of applied entries: FL_OK, or FL_EBUSY when
 * RG_APPLY_SUBSCRIBERS_MAX are subscribed. */
int rg_apply_subscribe(struct rg_apply *a, rg_effect_fn fn, void *arg);
/* Stop receiving them (may be called from a subscriber). */
void rg_apply_unsubscribe(struct rg_apply *a, rg_effect_fn fn, void *arg);
/* Give the ready effects to the subscribers (effects with no subscriber are
 * dropped). */
void rg_apply_deliver(struct rg_apply *a);
/* fsm_flush, then rg_apply_deliver. */
void rg_apply_flush(struct rg_apply *a);

#endif
