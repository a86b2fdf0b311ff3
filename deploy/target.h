/* deploy/target — one target's deploy: the steps an agent runs for
 * `flotilla deploy` on its own machine (docs/DEPLOY.md, "One target").
 *
 *   acquire   the package into ROOT/.packages/NAME@VERSION (deploy/acquire.h:
 *             a delta against the package of the release in service when
 *             the cache has it, else whole; hash verified either way). A
 *             cached file is used again only after its hash is checked.
 *   unpack    into ROOT/releases/VERSION (deploy/unpack.h refuses absolute
 *             paths, `..`, escaping links); a release already on disk is
 *             used as it is (a redeploy, a rollback target).
 *   pre-hook  `sh -c CMD` in the release directory with the hook environment
 *             (deploy_release_hook_env); a failure stops here: nothing has
 *             been switched.
 *   switch    ROOT/current -> releases/VERSION (atomic rename).
 *   reload    `reload` on supervise's control socket (ROOT/supervise.sock):
 *             its answer comes when every worker is back on the new release.
 *             No socket: nothing to reload (step reported as skipped).
 *   health    `sh -c CMD` until it exits 0, or GET URL until a 2xx, every
 *             500 ms, for at most health_timeout_ms.
 *   post-hook as the pre-hook.
 *   prune     keep the newest `keep` releases (current and previous always
 *             stay) and their cached packages.
 * A failure after the switch rolls back: current goes back to the release
 * that was in service, supervise reloads onto it, and the result is
 * DEPLOY_TARGET_ROLLED_BACK. Every step records its time and a detail line;
 * `on_begin` (may be NULL) hears each as it begins, `on_step` (may be NULL)
 * as it ends. One deploy per ROOT at a time (ROOT/.deploy.lock, flock; a
 * second one is refused at once).
 *
 * `cancel` (may be NULL), once non-zero (set by a signal handler: the agent
 * cancels a unit with SIGTERM), stops the deploy at the next step boundary
 * (recorded as a failed step "cancel") or health check (the health step fails
 * saying so): before the switch nothing has changed (DEPLOY_TARGET_REFUSED);
 * after it, the old release is put back as for any failure there. A step
 * under way is finished first. */
#ifndef FL_DEPLOY_TARGET_H
#define FL_DEPLOY_TARGET_H

#include <signal.h>
#include <stdint.h>

#include "blob/blob.h"
#include "deploy/acquire.h"

enum deploy_target_result {
    DEPLOY_TARGET_DEPLOYED = 0,    /* the new release is current and healthy */
    DEPLOY_TARGET_REFUSED = 1,     /* failed before the switch: nothing changed */
    DEPLOY_TARGET_ROLLED_BACK = 2, /* failed after the switch: the old release is back */
    DEPLOY_TARGET_BROKEN = 3       /* failed, and the rollback failed too */
};

#define DEPLOY_TARGET_STEPS 10

struct deploy_step {
    const char *name; /* "acquire", "unpack", ... (static) */
    int ok;           /* 1 ok, 0 failed, -1 skipped */
    uint64_t ms;
    char detail[256];
};

struct deploy_target {
    const char *app;
    const char *root;
    const char *package; /* package name */
    const char *version;
    struct blob_want want;      /* hash, size, chunk hashes */
    const char *const *sources; /* blob link addresses, tried in order */
    unsigned n_sources;
    struct tls_creds *creds;                        /* the blob link's TLS credentials */
    const char *pre_hook, *post_hook;               /* NULL: none */
    const char *health_cmd;                         /* NULL: none */
    const char *health_http;                        /* URL, NULL: none */
    uint64_t health_timeout_ms;                     /* 0: 30 s */
    uint64_t reload_timeout_ms;                     /* 0: 10 min */
    unsigned keep;                                  /* 0: DEPLOY_RELEASE_KEEP */
    void (*on_begin)(void *data, const char *step); /* "acquire", ... (static) */
    void (*on_step)(void *data, const struct deploy_step *s);
    void *data; /* for on_begin and on_step */
    const volatile sig_atomic_t *cancel;
};

struct deploy_target_report {
    int result;         /* enum deploy_target_result */
    char previous[128]; /* the release in service before, "" if none */
    char current[128];  /* the release in service after */
    unsigned n_steps;
    struct deploy_step steps[DEPLOY_TARGET_STEPS];
    struct deploy_acquire_stats acquire;
    uint64_t total_ms;
};

const char *deploy_target_result_name(int result);

/* Run the steps; always fills *r. Returns r->result. */
int deploy_target_run(const struct deploy_target *t, struct deploy_target_report *r);

/* Ask the supervise of ROOT to reload (its control socket); FL_ENOTFOUND
 * when no supervise listens there. reply (may be NULL, size bytes) gets its
 * JSON answer. */
int deploy_supervise_reload(const char *root, uint64_t timeout_ms, char *reply, size_t size,
                            char *errmsg);

#endif
