/* deploy/supervise — the bootloader: `flotilla supervise`.
 *
 * Issue 6: "runs the command from DIR/current, restarts it with backoff on a
 * crash, restarts it at once when it exits with the reload code, reloads on
 * request from the local agent after a deploy switch (a control socket),
 * forwards signals, captures output" — Plaid's bootloader, which reloads
 * the application when it exits with a special code after fetching a build.
 *
 * Workers. N workers run the same command. Each start resolves ROOT/current
 * (deploy/release.h) to ROOT/releases/<version> and uses that directory as
 * the working directory, so a worker keeps the release it started in and a
 * restart picks up the release current at that moment. The command is
 * argv[0] looked up in PATH, or relative to that directory when it contains
 * a '/' ("./bin/server"). A worker's environment is supervise's plus
 * FLOTILLA_APP, FLOTILLA_RELEASE, FLOTILLA_RELEASE_DIR and FLOTILLA_WORKER
 * (0..N-1); stdin is /dev/null. Each worker is a process group of its own
 * (setsid), and signals go to the whole group.
 *
 * Restarts. Exit with reload_exit_code: started again at once. Any other
 * exit (a crash, a signal, even 0) or a failure to start (no current
 * release, command not found): started again after a backoff that doubles
 * from backoff_min_ms to backoff_max_ms with each quick failure and returns
 * to backoff_min_ms once a worker has stayed up stable_ms.
 *
 * Control socket (a unix stream socket, mode 0600). Commands are lines;
 * each gets one line of JSON in reply, and a connection may send several:
 *   status  {"ok": true, "app", "pid", "current", "stopping",
 *            "workers": [{"worker", "pid", "release", "state",
 *            "started_ms", "restarts", "last_exit"}]}
 *   reload  rolling restart onto the release current now: reload_batch
 *           workers at a time get SIGTERM (SIGKILL after stop_grace_ms),
 *           are started again, and count as back up once they have run
 *           ready_ms; the reply comes when all are back:
 *           {"ok": true, "release", "workers", "ms"} or {"ok": false,
 *           "error", "failed": [worker...]} when some exited before
 *           ready_ms (they go on with backoff). A reload asked while one
 *           runs is done after it (it may find a newer current).
 *   anything else: {"ok": false, "error": "unknown command ..."}.
 *
 * Signals. SIGTERM and SIGINT are forwarded to every worker and supervise
 * stops: no more restarts, SIGKILL to what is left after stop_grace_ms, exit
 * status 0 once every worker is gone. SIGHUP is forwarded and supervise goes
 * on (a worker that exits because of it is restarted by the rules above).
 *
 * Logs. Every line a worker writes to stdout or stderr goes to
 * ROOT/logs/APP.log as "TIME [wI PID] line" ("[wI PID err]" for stderr),
 * with supervise's own events as "TIME [supervise] ..."; lines longer than
 * 4 KiB are split. When the file passes log_max_bytes it is renamed to
 * APP.log.1 (APP.log.1 to .2 ... up to log_keep files) and a new one begun. */
#ifndef FL_DEPLOY_SUPERVISE_H
#define FL_DEPLOY_SUPERVISE_H

#include <limits.h>
#include <stdint.h>

#define DEPLOY_SUP_WORKERS_MAX 10000

struct deploy_sup_config {
    char app[64];            /* [A-Za-z0-9._-], names the log file */
    char root[PATH_MAX];     /* the application root (deploy/release.h) */
    char control[108];       /* control socket; "" = ROOT/supervise.sock */
    char *const *argv;       /* the command, NULL-terminated; borrowed */
    int reload_exit_code;    /* 75 (EX_TEMPFAIL) by default */
    unsigned workers;        /* 1..DEPLOY_SUP_WORKERS_MAX */
    unsigned reload_batch;   /* workers restarted at once by reload; 1 */
    uint64_t backoff_min_ms; /* 200 */
    uint64_t backoff_max_ms; /* 30000 */
    uint64_t stable_ms;      /* 10000 */
    uint64_t ready_ms;       /* 300 */
    uint64_t stop_grace_ms;  /* 10000 */
    uint64_t log_max_bytes;  /* 10 MiB */
    unsigned log_keep;       /* 3 rotated files */
};

/* Fill the defaults above (app, root and argv left empty). */
void deploy_sup_config_init(struct deploy_sup_config *c);

/* Check a configuration; FL_EINVAL with the reason in errmsg. */
int deploy_sup_config_check(const struct deploy_sup_config *c, char *errmsg);

/* Run until stopped by SIGTERM or SIGINT. Returns 0 after a clean stop, or
 * an FL_* code (detail in errmsg) when it could not start: the log or the
 * control socket cannot be opened (a live supervise already listening on
 * the socket gives FL_EEXIST). */
int deploy_sup_run(const struct deploy_sup_config *c, char *errmsg);

#endif
