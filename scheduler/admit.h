/* scheduler/admit — the rules every start of a unit on a node obeys
 * (docs/SCHEDULER.md "Caps"): the state machine applies them to each
 * assignment on every replica (the final word: a refused assignment changes
 * nothing), and the leader's round applies the same ones before it proposes,
 * so that it proposes only what apply will accept. Pure: no I/O, no clock. */
#ifndef FL_SCHEDULER_ADMIT_H
#define FL_SCHEDULER_ADMIT_H

#include <stddef.h>
#include <stdint.h>

/* After a failed or lost attempt that will be retried, the unit waits this
 * long before it may be placed again. */
#define SCHED_RETRY_BACKOFF_MS 1000

enum sched_admit_result {
    SCHED_ADMIT_OK = 0,
    SCHED_ADMIT_NOT_ITS_HOST,  /* a unit placed on its host, offered another node */
    SCHED_ADMIT_PAUSED,        /* dispatch is paused cluster-wide */
    SCHED_ADMIT_TASK_ENDING,   /* the task is being cancelled or was stopped */
    SCHED_ADMIT_NODE_DRAINING, /* the node takes nothing new */
    SCHED_ADMIT_NODE_LOST,     /* the node's agent was committed lost */
    SCHED_ADMIT_NODE_FULL,     /* running >= cap (cap 0 included) */
    SCHED_ADMIT_TASK_AT_LIMIT, /* max_running units of the task already run */
};

/* The task side of one start. */
struct sched_admit_task {
    uint32_t max_running; /* 0 = no limit */
    uint32_t running;     /* its units counted against max_running */
    int ending;           /* cancel requested, or stopped after failures */
    int on_host;          /* placed on its host: runs on the node its host names */
    const char *host;     /* on_host: the unit's host */
    size_t host_len;
};

/* The node side of one start. */
struct sched_admit_node {
    const char *id;
    uint32_t cap;
    uint32_t running; /* units running on it (and, for the leader, held for it) */
    int draining;
    int lost;
};

/* May the unit start on the node? SCHED_ADMIT_OK or the first rule it
 * breaks, in the order of enum sched_admit_result. */
int sched_admit(int paused, const struct sched_admit_task *t, const struct sched_admit_node *n);

/* 1 if a task with max_running (0 = no limit) and `counted` units counted
 * against it may start one more. */
int sched_task_has_room(uint32_t max_running, uint32_t counted);

/* A short reason ("node full", ...) for an admit result. */
const char *sched_admit_reason(int result);

#endif
