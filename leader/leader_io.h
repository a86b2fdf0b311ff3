/* leader/leader_io — what the leader's logic needs from the server it runs in,
 * as a table of functions, the way the Raft library takes its I/O through
 * raft_io: propose a command and learn its result, whether this server leads
 * (and in which term), the clocks, the store and the state machine, and one
 * periodic timer and a one-shot alarm. node/leader_io_uv.c implements it over a server's libuv
 * loop and replication (rg_repl); tests/fixture/leader_fixture.h over
 * raft_fixture, so that the same logic runs in C tests with leader changes,
 * partitions and a clock the test moves. The dispatcher (leader/dispatch*.c),
 * the lock manager (leader/locks.c) and the cron clock (leader/jobs.c) run on
 * it, one port each.
 *
 * What the replicated state machine did reaches them as effects (fsm/fsm.h
 * "Effects": a task to place or cancel, a node changed, a lock granted, a
 * lease, a job changed, ...), never as calls made while an entry is applied:
 * a component subscribes, and the port calls it for every effect of every
 * entry applied on this server, leader or follower, in order, once the entry
 * is in the store and before the entry's proposer gets its answer. The
 * component decides what an effect means as leader or as follower. */
#ifndef FL_LEADER_LEADER_IO_H
#define FL_LEADER_LEADER_IO_H

#include <stdint.h>

struct fsm;
struct fsm_cmd;
struct fsm_effect;
struct fsm_result;
struct store;

/* A proposal's outcome: err FL_OK and the command's result once it was
 * applied on this server and the store holds it; otherwise err says why it may not have been
 * (FL_EUNKNOWN: it may still be applied) and res is NULL. */
typedef void (*leader_done_cb)(void *data, int err, const struct fsm_result *res);
/* One effect of an applied entry; e is valid during the call only. */
typedef void (*leader_effect_cb)(void *arg, const struct fsm_effect *e);

struct leader_io {
    void *impl;
    /* Propose one command. FL_OK: cb is called exactly once, later. Any
     * other value: nothing was proposed and cb is never called. */
    int (*propose)(void *impl, const struct fsm_cmd *c, leader_done_cb cb, void *data);
    /* 1 if this server is the leader and may serve (its first entry of the
     * term is applied); *term is the current term either way. */
    int (*leader)(void *impl, uint64_t *term);
    uint64_t (*now_ms)(void *impl);  /* monotonic milliseconds */
    uint64_t (*wall_ms)(void *impl); /* milliseconds since the epoch */
    struct store *(*store)(void *impl);
    struct fsm *(*fsm)(void *impl);
    /* Call fn(arg) every period_ms; one timer per io. */
    int (*timer_start)(void *impl, uint64_t period_ms, void (*fn)(void *arg), void *arg);
    /* Call fn(arg) once, after_ms from now; arming again replaces the
     * previous alarm. One alarm per io. */
    void (*alarm)(void *impl, uint64_t after_ms, void (*fn)(void *arg), void *arg);
    /* Receive the effects of applied entries (see above): FL_OK, or an
     * error and nothing is received. Unsubscribing (in the component's
     * close) stops them at once. */
    int (*subscribe)(void *impl, leader_effect_cb fn, void *arg);
    void (*unsubscribe)(void *impl, leader_effect_cb fn, void *arg);
    /* Stop the timer and the alarm; closed(arg) once neither fires again. */
    void (*timer_close)(void *impl, void (*closed)(void *arg), void *arg);
};

#endif
