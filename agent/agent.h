/* agent/ — the agent: connects to the cluster, executes units, reports.
 *
 * An agent (`flotilla agent`, or the one embedded in every server) connects
 * to any server's agent address, follows the redirect to the leader, says
 * HELLO with its id, cap, labels and the units it still runs (re-attach after
 * a leader change), heartbeats, runs what it is sent (agent/exec.h), streams
 * output, and reports DONE. Each DONE is spooled on disk until the leader
 * acknowledges its commit, and sent again after a reconnect, so neither a
 * leader failover nor an agent restart loses a result (docs/SCHEDULER.md). */
#ifndef FL_AGENT_AGENT_H
#define FL_AGENT_AGENT_H

#include <stdint.h>

#include <uv.h>

#define AGENT_JOIN_MAX   8
#define AGENT_LABELS_MAX 32

struct agent_config {
    char id[64];         /* node name */
    uint32_t cap;        /* advertised cap (the cluster's record wins after the first join) */
    unsigned n_labels;
    char labels[AGENT_LABELS_MAX][128];
    unsigned n_join;
    char join[AGENT_JOIN_MAX][128]; /* agent addresses of servers */
    char data_dir[4096];            /* spool, executor work directories, identity key */
    unsigned char key[32];          /* the cluster key (common/key.h) */
};

struct agent;

int agent_create(uv_loop_t *loop, const struct agent_config *c, struct agent **out,
                 char *errmsg);
/* Disconnect, kill running units (their results stay spooled if finished);
 * cb once every handle is closed. */
void agent_close(struct agent *a, void (*cb)(void *data), void *data);
/* Units running now. */
unsigned agent_running(const struct agent *a);

/* Run a standalone agent until SIGINT/SIGTERM; returns an exit status. */
int agent_main(const struct agent_config *c);

#endif
