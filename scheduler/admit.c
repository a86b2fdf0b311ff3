/* scheduler/ — the admission rules (scheduler/admit.h). */
#include "scheduler/admit.h"

#include <string.h>

int sched_task_has_room(uint32_t max_running, uint32_t counted)
{
    return max_running == 0 || counted < max_running;
}

int sched_admit(int paused, const struct sched_admit_task *t, const struct sched_admit_node *n)
{
    if (t->on_host && (t->host_len != strlen(n->id) || memcmp(t->host, n->id, t->host_len) != 0)) {
        return SCHED_ADMIT_NOT_ITS_HOST;
    }
    if (paused) {
        return SCHED_ADMIT_PAUSED;
    }
    if (t->ending) {
        return SCHED_ADMIT_TASK_ENDING;
    }
    if (n->draining) {
        return SCHED_ADMIT_NODE_DRAINING;
    }
    if (n->lost) {
        return SCHED_ADMIT_NODE_LOST;
    }
    if (n->running >= n->cap) {
        return SCHED_ADMIT_NODE_FULL;
    }
    if (!sched_task_has_room(t->max_running, t->running)) {
        return SCHED_ADMIT_TASK_AT_LIMIT;
    }
    return SCHED_ADMIT_OK;
}

const char *sched_admit_reason(int result)
{
    switch (result) {
    case SCHED_ADMIT_OK:
        return "admitted";
    case SCHED_ADMIT_NOT_ITS_HOST:
        return "not the node its host names";
    case SCHED_ADMIT_PAUSED:
        return "dispatch paused";
    case SCHED_ADMIT_TASK_ENDING:
        return "task cancelled or stopped";
    case SCHED_ADMIT_NODE_DRAINING:
        return "node draining";
    case SCHED_ADMIT_NODE_LOST:
        return "node lost";
    case SCHED_ADMIT_NODE_FULL:
        return "node full";
    case SCHED_ADMIT_TASK_AT_LIMIT:
        return "task at max_running";
    default:
        return "unknown";
    }
}
