/* agent/ — the agent: connects to the cluster, executes units, reports.
 *
 * An agent (`flotilla agent`, or the one embedded in every server) connects
 * to any server's agent address, follows the redirect to the leader, says
 * HELLO with its id, cap, labels and the units it still runs (re-attach after
 * a leader change), heartbeats, runs what it is sent (agent/exec.h), streams
 * output, and reports DONE. Each DONE is spooled on disk until the leader
 * acknowledges its commit, and sent again after a reconnect, so neither a
 * leader failover nor an agent restart loses a result (docs/SCHEDULER.md).
 *
 * A unit of the deploy executor runs this machine's own `flotilla
 * deploy-target` (the agent's executable, found once at start) through the
 * same process machinery as exec, with the blob sources the server sends,
 * the agent's certificate files and name, and --events (docs/DEPLOY.md, "The
 * deploy executor"). */
#ifndef FL_AGENT_AGENT_H
#define FL_AGENT_AGENT_H

#include <stdint.h>

#include <uv.h>

#include "tls/creds.h"

#define AGENT_JOIN_MAX   8
#define AGENT_LABELS_MAX 32
#define AGENT_APPS_DIR   "/srv/flotilla" /* default apps_dir */

struct agent_config {
    char id[64];  /* node name */
    uint32_t cap; /* advertised cap (the cluster's record wins after the first join) */
    unsigned n_labels;
    char labels[AGENT_LABELS_MAX][128];
    unsigned n_join;
    char join[AGENT_JOIN_MAX][128]; /* agent addresses of servers */
    char data_dir[4096];            /* spool, executor work directories, identity key */
    struct tls_creds *creds;        /* the agent's certificate and the CA (not owned) */
    char tls_ca[4096];              /* the files creds came from, for deploy-target */
    char tls_cert[4096];            /*   ("": deploys are refused) */
    char tls_key[4096];
    char apps_dir[4096]; /* deploys' default roots: DIR/APP ("": AGENT_APPS_DIR) */
};

struct agent;

int agent_create(uv_loop_t *loop, const struct agent_config *c, struct agent **out, char *errmsg);
/* Disconnect, kill running units (their results stay spooled if finished);
 * cb once every handle is closed. */
void agent_close(struct agent *a, void (*cb)(void *data), void *data);

/* Run a standalone agent until SIGINT/SIGTERM; returns an exit status. */
int agent_main(const struct agent_config *c);

/* The command line of a deploy unit (agent/deploy.c). */
#define AGENT_DEPLOY_ARGV_MAX (256 + 20) /* the RUN's argv (APROTO_ARGV_MAX) and the agent's */

struct agent_deploy_cmd {
    /* exe deploy-target ARGV... [--app NAME] --from SOURCES --ca CA --cert CERT
     * --cert-key KEY --name ID --events [--root APPS_DIR/APP]; NULL-terminated. The strings
     * point into the inputs of agent_deploy_argv and into app and root. */
    const char *argv[AGENT_DEPLOY_ARGV_MAX + 1];
    unsigned argc;
    char app[72];
    char root[4200];
};

/* Build the command line of a deploy unit from the RUN's argv (deploy-target's
 * arguments, "NAME@VERSION" first) and env (where FLOTILLA_BLOB_SOURCES is:
 * the first such entry), for the agent of config c whose executable is exe.
 * --app NAME is added when argv has no --app, and --root APPS_DIR/APP when it
 * has no --root; APP is the value of --app, else NAME.
 *
 * FL_EINVAL, with the reason in errmsg (FL_ERRMSG_SIZE, may be NULL) and out
 * unusable, when the unit must not run: no FLOTILLA_BLOB_SOURCES or an empty
 * one, a source that is not host:port, no certificate files, no exe, argv[0] not
 * NAME@VERSION (NAME a package name: 1-64 of A-Z a-z 0-9 . _ -, not starting
 * with '.' or '-'), an argument anywhere in argv that is one of the agent's
 * own (--from, --ca, --cert, --cert-key, --name, --events, with or without =VALUE) or --json or
 * "--", an APP that is not a package name when it makes the root, or more
 * arguments than fit. */
int agent_deploy_argv(const struct agent_config *c, const char *exe, const char *const *argv,
                      unsigned argc, const char *const *env, unsigned n_env,
                      struct agent_deploy_cmd *out, char *errmsg);

#endif
