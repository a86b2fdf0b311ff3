/* deploy/release — the release layout of one application on an agent.
 *
 * DESIGN "Package pipeline": "unpack into `releases/<version>`, pre-deploy
 * hook, atomic switch of `current`, reload of supervised processes, health
 * check, rollback to the previous release on failure, retention of the last
 * K releases".
 *
 *   ROOT/releases/<version>/   one directory per release (deploy/unpack.h
 *                              creates it: deploy_unpack(pkg, dir, ...) with
 *                              dir from deploy_release_dir())
 *   ROOT/current  -> releases/<version>   the release in service
 *   ROOT/previous -> releases/<version>   the release current replaced
 *
 * Both links are relative, so ROOT can be moved or mounted elsewhere. A
 * switch makes the new link under a temporary name and rename()s it over the
 * old one: a process resolving ROOT/current sees the old release or the new
 * one, never a missing link. `previous` is updated first and restored if the
 * switch of `current` fails, so a failed switch changes neither.
 *
 * Release order. A release's directory mtime is set to the time of each
 * switch to it (and is its unpack time before that); deploy_release_list()
 * orders by it, newest first, and deploy_release_prune() keeps the newest.
 *
 * Hooks are run by the caller (the agent's deploy steps); it gets what a
 * hook needs from deploy_release_dir(), deploy_release_current(),
 * deploy_release_previous() and deploy_release_hook_env().
 *
 * Concurrency: the functions of one ROOT must not run concurrently (the
 * agent runs one deploy per application at a time); reading ROOT/current
 * from other processes at any time is safe.
 *
 * Errors (0 on success, detail in errmsg):
 *   FL_EINVAL    a malformed version (see deploy_release_version_ok), or
 *                ROOT/current is not a symbolic link;
 *   FL_ENOTFOUND no such release, no current or no previous release;
 *   FL_EIO, FL_EDISKFULL, FL_ENOMEM, FL_ETOOBIG (path too long). */
#ifndef FL_DEPLOY_RELEASE_H
#define FL_DEPLOY_RELEASE_H

#include <stddef.h>
#include <stdint.h>

#define DEPLOY_VERSION_MAX  128 /* bytes, with the NUL */
#define DEPLOY_RELEASE_KEEP 5   /* default retention */

struct deploy_release {
    char version[DEPLOY_VERSION_MAX];
    int64_t mtime_ms; /* last switch to it, or its unpack */
    int is_current;
    int is_previous;
};

/* 1 if v can name a release: 1..127 bytes of [A-Za-z0-9._+@-], not
 * starting with '.' (so never "." or ".." and never a temporary name). */
int deploy_release_version_ok(const char *v);

/* Create ROOT and ROOT/releases if missing. */
int deploy_release_init(const char *root, char *errmsg);

/* out (PATH_MAX bytes) = ROOT/releases/VERSION; FL_EINVAL for a bad version. */
int deploy_release_dir(const char *root, const char *version, char *out, char *errmsg);

/* The version ROOT/current (or ROOT/previous) points to, into version
 * (DEPLOY_VERSION_MAX bytes); FL_ENOTFOUND when there is none. */
int deploy_release_current(const char *root, char *version, char *errmsg);
int deploy_release_previous(const char *root, char *version, char *errmsg);

/* Point ROOT/current at releases/VERSION, which must be a directory (not a
 * link). The release current pointed to, if another, becomes previous; the
 * release's mtime becomes now. Switching to the current release only
 * refreshes its mtime. */
int deploy_release_switch(const char *root, const char *version, char *errmsg);

/* Switch back: to `to`, or when to is NULL to the previous release (the
 * release left becomes previous, so a second rollback undoes the first).
 * `switched` (DEPLOY_VERSION_MAX bytes, may be NULL) receives the version
 * now current. */
int deploy_release_rollback(const char *root, const char *to, char *switched, char *errmsg);

/* The releases, newest first; *out is fl_malloc'ed (fl_free it), NULL when
 * there are none. Names that are not valid versions are skipped. */
int deploy_release_list(const char *root, struct deploy_release **out, size_t *n, char *errmsg);

/* Keep the `keep` newest releases plus current and previous (never
 * removed, whatever keep is); remove the others and leftovers of
 * interrupted unpacks and removals. A release is first renamed to a hidden
 * name, then removed, so a half-removed release is never listed.
 * *removed (may be NULL) receives the number of releases removed. */
int deploy_release_prune(const char *root, unsigned keep, unsigned *removed, char *errmsg);

/* The environment of a pre- or post-deploy hook, as NAME=VALUE strings in
 * env (n entries of DEPLOY_HOOK_ENV_SIZE bytes; 6 are used):
 * FLOTILLA_APP, FLOTILLA_ROOT, FLOTILLA_RELEASE (the version being
 * deployed), FLOTILLA_RELEASE_DIR, FLOTILLA_CURRENT_RELEASE and
 * FLOTILLA_PREVIOUS_RELEASE (empty when none). Returns the count used. */
#define DEPLOY_HOOK_ENV_SIZE 4200
#define DEPLOY_HOOK_ENV_N    6
int deploy_release_hook_env(const char *root, const char *app, const char *version,
                            char env[][DEPLOY_HOOK_ENV_SIZE], int n);

#endif
