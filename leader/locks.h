/* leader/locks — the leader's side of sessions and locks (docs/LOCKS.md).
 *
 * The replicated part (sessions, holders, FIFO waiters, tokens) is applied
 * in fsm/lock.c. This module does what needs a clock or a connection:
 *
 *   - lease deadlines on the loop's monotonic clock, rebuilt from the store
 *     and a committed LEASE_EXTEND whenever this server becomes leader, so a
 *     failover never expires a healthy holder; expiry is proposed, never
 *     applied directly (SESSION_EXPIRE carries the renewal count it saw);
 *   - waiting acquire calls parked until the grant is applied (answered the
 *     moment it is), or until their wait ends (then LOCK_UNWAIT decides);
 *   - LOCK_WAKE when a lock-delay is over and waiters are queued.
 *
 * It runs on the leader's port (leader/leader_io.h): proposals, leadership,
 * clocks, store and timer come through it, and parked calls are answered
 * through struct lockmgr_answers, so the same code runs in a server (HTTP
 * answers, node/api_locks.c) and on raft_fixture in C tests. */
#ifndef FL_LEADER_LOCKS_H
#define FL_LEADER_LOCKS_H

#include <stdint.h>

#include "leader/leader_io.h"

struct lockmgr;

/* How a parked acquire call is answered; `req` is the handle given to
 * lockmgr_park. Each parked call gets exactly one answer. */
struct lockmgr_answers {
    void (*granted)(void *req, const char *session, const char *key, uint64_t token);
    /* This call's wait is over and the session still waits (202). */
    void (*waiting)(void *req, const char *session, const char *key);
    /* The caller's whole wait ended and the session left the queue. */
    void (*timeout)(void *req, const char *session, const char *key);
    /* The session no longer waits (it expired or released). */
    void (*not_waiting)(void *req, const char *session, const char *key);
    /* err: FL_EUNKNOWN when the session may still be queued and granted. */
    void (*failed)(void *req, int err, const char *msg);
};

#define LOCKMGR_TICK_MS 50

int lockmgr_create(const struct leader_io *io, const struct lockmgr_answers *ans,
                   struct lockmgr **out);
/* Answer parked calls (FL_EUNKNOWN) and close the timer; cb once closed. */
void lockmgr_close(struct lockmgr *m, void (*cb)(void *data), void *data);
/* The periodic work (the io's timer calls it every LOCKMGR_TICK_MS): time
 * out parked calls, propose expiries and wake-ups, drop parked calls when no
 * longer leader. */
void lockmgr_tick(void *m);
/* This server has become leader (after its post-election barrier). */
void lockmgr_on_leader(struct lockmgr *m);

/* A LOCK_ACQUIRE with a wait was applied and left `session` queued for
 * `key`: park req until the grant, or until wait_ms (at most
 * LOCKMGR_POLL_MAX_MS per call) has passed. final: the caller's whole wait
 * ends with this call, so leave the queue when it times out. */
#define LOCKMGR_POLL_MAX_MS 8000u
void lockmgr_park(struct lockmgr *m, void *req, const char *session, const char *key,
                  uint32_t limit, uint64_t wait_ms, int final);

/* Counters for /v1/status. */
struct lockmgr_stats {
    uint64_t leases;   /* sessions with a deadline on this server */
    uint64_t parked;   /* acquire calls waiting now */
    uint64_t expired;  /* expiries this server proposed and saw applied */
    uint64_t extended; /* LEASE_EXTENDs this server committed as leader */
    int can_expire;    /* leader with its lease extension committed */
};
void lockmgr_stats(struct lockmgr *m, struct lockmgr_stats *out);

#endif
