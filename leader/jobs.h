/* leader/jobs — the leader's cron clock (docs/JOBS.md).
 *
 * The leader keeps every unpaused job in a min-heap keyed by its next fire
 * time, so a tick costs O(log n) per due job and nothing for the others (no
 * scan of every job per second). Due jobs are proposed as JOB_FIRE commands;
 * every command proposed in one loop iteration goes into one Raft entry, so
 * 10,000 jobs due in the same second are a handful of entries. The apply
 * (fsm/job.c) refuses a schedule time at or before the job's last one,
 * so a fire proposed twice — by a deposed leader, or again after a leader
 * change — runs once.
 *
 * Misfires: a schedule time more than JOBS_MISFIRE_GRACE_MS in the past when
 * the leader gets to it (no leader, paused dispatch loop, a long stop) is a
 * misfire; all the times missed together fold into one JOB_FIRE for the
 * latest, which runs (misfire run-once, within the starting deadline) or is
 * recorded as missed (misfire skip), carrying how many it folded. */
#ifndef FL_LEADER_JOBS_H
#define FL_LEADER_JOBS_H

#include <stdint.h>

#include "leader/leader_io.h"
#include "store/store.h"

#define JOBS_MISFIRE_GRACE_MS 2000

struct jobs;

/* What the cron clock asks of the rest of the leader (both may be NULL):
 * whether a node's agent is connected now (mode all fires on those), and
 * a nudge for the dispatcher once a fire started a run. */
struct jobs_hooks {
    int (*connected)(void *data, const char *node);
    void (*kick)(void *data);
    void *data;
};

/* The clock runs on the leader's port (leader/leader_io.h): proposals,
 * leadership, the wall clock, the store, a tick and an alarm. */
int jobs_create(const struct leader_io *io, const struct jobs_hooks *hooks, struct jobs **out);
void jobs_close(struct jobs *j, void (*cb)(void *data), void *data);

/* Check a schedule before it is stored: a cron expression (with its zone,
 * "" = UTC) or an interval. FL_EINVAL with the reason in errmsg. */
int jobs_check_cron(const char *expr, const char *tz, char *errmsg);

struct sched_unit;
/* 1 if node n matches every constraint of u, its labels with the implicit
 * node=<id>. */
int jobs_node_matches(const struct store_node *n, const struct sched_unit *u);

/* Up to n fire times (ms) of job j strictly after from_ms; returns how many
 * (0 if the expression never fires again). */
int jobs_next_fires(struct jobs *js, const struct store_job *j, uint64_t from_ms, uint64_t *out,
                    int n);

/* Mode all: the nodes that can run job j now (connected, not drained or
 * lost, matching its constraints); returns how many (at most max). */
unsigned jobs_eligible(struct jobs *js, const struct store_job *j, char (*ids)[STORE_NODE_ID_MAX],
                       unsigned max);

struct jobs_stats {
    uint64_t tracked;  /* jobs in the leader's heap */
    uint64_t proposed; /* JOB_FIRE commands proposed */
    uint64_t fired;    /* runs started by this server's proposals */
    uint64_t refused;  /* proposals refused as already fired */
    int leading;       /* this server runs the cron clock */
};
void jobs_stats(struct jobs *js, struct jobs_stats *out);

#endif
