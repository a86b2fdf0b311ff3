/* deploy/target — see target.h. */
#include "deploy/target.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "deploy/delta.h"
#include "deploy/release.h"
#include "deploy/unpack.h"
#include "http/blocking.h"

extern char **environ;

#define HEALTH_EVERY_MS   500
#define HEALTH_TRY_MS     10000 /* one health command or request */
#define DEFAULT_HEALTH_MS 30000
#define DEFAULT_RELOAD_MS 600000

static uint64_t now_ms(void)
{
    return fl_mono_ns() / 1000000;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *deploy_target_result_name(int result)
{
    switch (result) {
    case DEPLOY_TARGET_DEPLOYED:
        return "deployed";
    case DEPLOY_TARGET_REFUSED:
        return "refused";
    case DEPLOY_TARGET_ROLLED_BACK:
        return "rolled_back";
    default:
        return "broken";
    }
}

/* ---- steps ------------------------------------------------------------- */

struct run {
    const struct deploy_target *t;
    struct deploy_target_report *r;
    struct deploy_step *cur;
    uint64_t t0;
};

static void step_begin(struct run *x, const char *name)
{
    struct deploy_step *s =
        &x->r->steps[x->r->n_steps < DEPLOY_TARGET_STEPS ? x->r->n_steps++
                                                         : DEPLOY_TARGET_STEPS - 1];
    memset(s, 0, sizeof *s);
    s->name = name;
    x->cur = s;
    if (x->t->on_begin != NULL) {
        x->t->on_begin(x->t->data, name);
    }
    x->t0 = now_ms();
}

static int step_end(struct run *x, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int step_end(struct run *x, int ok, const char *fmt, ...)
{
    va_list ap;
    x->cur->ok = ok;
    x->cur->ms = now_ms() - x->t0;
    va_start(ap, fmt);
    vsnprintf(x->cur->detail, sizeof x->cur->detail, fmt, ap);
    va_end(ap);
    if (x->t->on_step != NULL) {
        x->t->on_step(x->t->data, x->cur);
    }
    return ok != 0;
}

static int cancelled(const struct run *x)
{
    return x->t->cancel != NULL && *x->t->cancel != 0;
}

/* Between steps: a cancel asked for ends the deploy here, as a failed step.
 * Returns 1 if so. */
static int stop_here(struct run *x)
{
    if (!cancelled(x)) {
        return 0;
    }
    step_begin(x, "cancel");
    step_end(x, 0, "cancelled (SIGTERM or SIGINT)");
    return 1;
}

/* `sh -c cmd` in dir with the hook environment added; its own process
 * group, killed on timeout. Returns the exit code, 128+signal, or -1 on a
 * timeout or a failure to start (why in err). */
static int run_sh(const char *cmd, const char *dir, char env_add[][DEPLOY_HOOK_ENV_SIZE], int n_add,
                  uint64_t timeout_ms, char *err, size_t errsize)
{
    size_t n_env = 0;
    char **env;
    pid_t pid;
    int status;
    uint64_t end = now_ms() + timeout_ms;
    while (environ[n_env] != NULL) {
        n_env++;
    }
    env = fl_calloc(n_env + (size_t)n_add + 1, sizeof *env);
    if (env == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        if (strncmp(environ[i], "FLOTILLA_", 9) != 0) {
            env[k++] = environ[i];
        }
    }
    for (int i = 0; i < n_add; i++) {
        env[k++] = env_add[i];
    }
    env[k] = NULL;
    char *argv[] = {"sh", "-c", fl_strdup(cmd), NULL};
    if (argv[2] == NULL) {
        snprintf(err, errsize, "out of memory");
        fl_free(env);
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errsize, "fork: %s", strerror(errno));
        fl_free(env);
        fl_free(argv[2]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        if (dir != NULL && chdir(dir) != 0) {
            _exit(126);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        execve("/bin/sh", argv, env);
        _exit(127);
    }
    fl_free(env);
    fl_free(argv[2]);
    setpgid(pid, pid);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            break;
        }
        if (w < 0 && errno != EINTR) {
            snprintf(err, errsize, "waitpid: %s", strerror(errno));
            return -1;
        }
        if (now_ms() >= end) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(err, errsize, "timed out after %llu ms", (unsigned long long)timeout_ms);
            return -1;
        }
        sleep_ms(20);
    }
    if (WIFSIGNALED(status)) {
        snprintf(err, errsize, "killed by signal %d", WTERMSIG(status));
        return 128 + WTERMSIG(status);
    }
    snprintf(err, errsize, "exit %d", WEXITSTATUS(status));
    return WEXITSTATUS(status);
}

int deploy_supervise_reload(const char *root, uint64_t timeout_ms, char *reply, size_t size,
                            char *errmsg)
{
    struct sockaddr_un sa;
    char buf[4096];
    size_t have = 0;
    uint64_t end = now_ms() + timeout_ms;
    int fd;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/supervise.sock", root) >=
        sizeof sa.sun_path) {
        return fl_errf(errmsg, FL_ETOOBIG, "%s/supervise.sock: path too long for a socket", root);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return fl_errf(errmsg, FL_EIO, "socket: %s", strerror(errno));
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED) {
            return fl_errf(errmsg, FL_ENOTFOUND, "no supervise listens on %s", sa.sun_path);
        }
        return fl_errf(errmsg, FL_ENET, "connect %s: %s", sa.sun_path, strerror(e));
    }
    if (write(fd, "reload\n", 7) != 7) {
        int e = errno;
        close(fd);
        return fl_errf(errmsg, FL_ENET, "write %s: %s", sa.sun_path, strerror(e));
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        uint64_t now = now_ms();
        int rv;
        if (memchr(buf, '\n', have) != NULL) {
            break;
        }
        if (now >= end) {
            close(fd);
            return fl_errf(errmsg, FL_ETIMEOUT, "supervise did not answer the reload in %llu ms",
                           (unsigned long long)timeout_ms);
        }
        rv = poll(&p, 1, (int)(end - now > 1000 ? 1000 : end - now));
        if (rv < 0 && errno != EINTR) {
            close(fd);
            return fl_errf(errmsg, FL_EIO, "poll: %s", strerror(errno));
        }
        if (rv > 0) {
            ssize_t got = read(fd, buf + have, sizeof buf - 1 - have);
            if (got <= 0) {
                close(fd);
                return fl_errf(errmsg, FL_ENET, "supervise closed the socket before answering");
            }
            have += (size_t)got;
            if (have == sizeof buf - 1) {
                break;
            }
        }
    }
    close(fd);
    buf[have] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    if (reply != NULL) {
        snprintf(reply, size, "%s", buf);
    }
    json_t *o = json_loads(buf, 0, NULL);
    int ok = json_is_true(json_object_get(o, "ok"));
    json_decref(o);
    if (!ok) {
        return fl_errf(errmsg, FL_EIO, "supervise: %.400s", buf);
    }
    return FL_OK;
}

static int health_once(const struct deploy_target *t, const char *dir,
                       char env[][DEPLOY_HOOK_ENV_SIZE], int n_env, char *why, size_t size)
{
    if (t->health_cmd != NULL) {
        int rc = run_sh(t->health_cmd, dir, env, n_env, HEALTH_TRY_MS, why, size);
        return rc == 0;
    }
    /* http://host:port/path or https://... (the application's, so "host:port"
     * alone is plain HTTP: the scheme is kept, never left to the client's
     * default, which is HTTPS for Flotilla's own API). */
    const char *u = t->health_http, *rest, *scheme = "http://";
    char addr[320], err[FL_ERRMSG_SIZE];
    struct httpc_response resp;
    if (strncmp(u, "http://", 7) == 0) {
        u += 7;
    } else if (strncmp(u, "https://", 8) == 0) {
        u += 8;
        scheme = "https://";
    }
    rest = strchr(u, '/');
    snprintf(addr, sizeof addr, "%s%.*s", scheme, rest ? (int)(rest - u) : (int)strlen(u), u);
    memset(&resp, 0, sizeof resp);
    if (httpc_request(addr, "GET", rest ? rest : "/", NULL, NULL, 0, HEALTH_TRY_MS, &resp, err) !=
        FL_OK) {
        snprintf(why, size, "%s", err);
        return 0;
    }
    int ok = resp.status >= 200 && resp.status < 300;
    snprintf(why, size, "HTTP %d", resp.status);
    httpc_response_free(&resp);
    return ok;
}

/* Where the package of `version` is cached: ROOT/.packages/NAME@VERSION. */
static void cache_path(const struct deploy_target *t, const char *version, char *out, size_t n)
{
    snprintf(out, n, "%s/.packages/%s@%s", t->root, t->package, version);
}

static int acquire(struct run *x, char *pkg, size_t pkgsize)
{
    const struct deploy_target *t = x->t;
    char basis[PATH_MAX] = "", dir[PATH_MAX], err[FL_ERRMSG_SIZE];
    uint8_t h[DEPLOY_HASH_SIZE];
    uint64_t size;
    step_begin(x, "acquire");
    snprintf(dir, sizeof dir, "%s/.packages", t->root);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return step_end(x, 0, "mkdir %s: %s", dir, strerror(errno));
    }
    cache_path(t, t->version, pkg, pkgsize);
    if (access(pkg, R_OK) == 0) {
        if (deploy_hash_file(pkg, h, &size, err) == FL_OK && size == t->want.size &&
            memcmp(h, t->want.hash, DEPLOY_HASH_SIZE) == 0) {
            x->r->acquire.method = 0;
            return step_end(x, 1, "cached, hash verified (%llu bytes)", (unsigned long long)size);
        }
        unlink(pkg); /* not what it claims: fetch it again */
    }
    if (x->r->previous[0] != '\0') {
        cache_path(t, x->r->previous, basis, sizeof basis);
        if (access(basis, R_OK) != 0) {
            basis[0] = '\0';
        }
    }
    int rv = deploy_acquire(t->sources, t->n_sources, t->creds, &t->want, basis[0] ? basis : NULL,
                            pkg, dir, &x->r->acquire, err);
    if (rv != FL_OK) {
        return step_end(x, 0, "%s", err);
    }
    const struct deploy_acquire_stats *a = &x->r->acquire;
    if (a->method == DEPLOY_FETCH_DELTA) {
        return step_end(x, 1, "delta against %s from %s: %llu bytes received, %llu sent, of %llu",
                        x->r->previous, a->source, (unsigned long long)a->delta_bytes,
                        (unsigned long long)a->sig_bytes, (unsigned long long)t->want.size);
    }
    return step_end(x, 1, "whole from %s: %llu bytes%s%.150s", a->source,
                    (unsigned long long)a->whole_bytes, a->delta_refused[0] ? "; delta: " : "",
                    a->delta_refused);
}

/* Reload onto whatever current is; skipped without a supervise. */
static int reload(struct run *x, const char *name)
{
    char reply[512], err[FL_ERRMSG_SIZE];
    step_begin(x, name);
    uint64_t to = x->t->reload_timeout_ms ? x->t->reload_timeout_ms : DEFAULT_RELOAD_MS;
    int rv = deploy_supervise_reload(x->t->root, to, reply, sizeof reply, err);
    if (rv == FL_ENOTFOUND) {
        return step_end(x, -1, "no supervise for this root: nothing to reload");
    }
    if (rv != FL_OK) {
        return step_end(x, 0, "%s", err);
    }
    return step_end(x, 1, "%.240s", reply);
}

static int hook(struct run *x, const char *name, const char *cmd, const char *dir)
{
    char env[DEPLOY_HOOK_ENV_N][DEPLOY_HOOK_ENV_SIZE], why[256];
    int n = deploy_release_hook_env(x->t->root, x->t->app, x->t->version, env, DEPLOY_HOOK_ENV_N);
    step_begin(x, name);
    uint64_t to = x->t->reload_timeout_ms ? x->t->reload_timeout_ms : DEFAULT_RELOAD_MS;
    int rc = run_sh(cmd, dir, env, n, to, why, sizeof why);
    return step_end(x, rc == 0, "%s", why);
}

static int health(struct run *x, const char *dir)
{
    const struct deploy_target *t = x->t;
    char env[DEPLOY_HOOK_ENV_N][DEPLOY_HOOK_ENV_SIZE], why[256] = "";
    int n = deploy_release_hook_env(t->root, t->app, t->version, env, DEPLOY_HOOK_ENV_N);
    uint64_t limit = t->health_timeout_ms ? t->health_timeout_ms : DEFAULT_HEALTH_MS;
    unsigned tries = 0;
    step_begin(x, "health");
    uint64_t end = now_ms() + limit;
    for (;;) {
        tries++;
        if (health_once(t, dir, env, n, why, sizeof why)) {
            return step_end(x, 1, "healthy after %u check%s (%s)", tries, tries == 1 ? "" : "s",
                            why);
        }
        if (now_ms() + HEALTH_EVERY_MS >= end) {
            return step_end(x, 0, "not healthy within %llu ms, %u checks; last: %s",
                            (unsigned long long)limit, tries, why);
        }
        if (cancelled(x)) {
            return step_end(x, 0, "cancelled after %u check%s; last: %s", tries,
                            tries == 1 ? "" : "s", why);
        }
        sleep_ms(HEALTH_EVERY_MS);
    }
}

static void roll_back(struct run *x)
{
    char err[FL_ERRMSG_SIZE], now[DEPLOY_VERSION_MAX];
    struct deploy_target_report *r = x->r;
    step_begin(x, "rollback");
    if (r->previous[0] == '\0') {
        step_end(x, 0, "no release was in service before: nothing to roll back to");
        r->result = DEPLOY_TARGET_BROKEN;
        return;
    }
    if (deploy_release_rollback(x->t->root, r->previous, now, err) != FL_OK) {
        step_end(x, 0, "%s", err);
        r->result = DEPLOY_TARGET_BROKEN;
        return;
    }
    step_end(x, 1, "current is %s again", now);
    r->result = reload(x, "reload-back") ? DEPLOY_TARGET_ROLLED_BACK : DEPLOY_TARGET_BROKEN;
}

/* Check the version, lay out the root, take the root's deploy lock (*lfd:
 * held until the caller closes it) and note the release in service. */
static int prepare(struct run *x, int *lfd)
{
    const struct deploy_target *t = x->t;
    struct deploy_target_report *r = x->r;
    char err[FL_ERRMSG_SIZE], lockp[PATH_MAX];
    step_begin(x, "prepare");
    if (!deploy_release_version_ok(t->version)) {
        return step_end(x, 0, "not a release version: %.200s", t->version);
    }
    if (deploy_release_init(t->root, err) != FL_OK) {
        return step_end(x, 0, "%s", err);
    }
    snprintf(lockp, sizeof lockp, "%s/.deploy.lock", t->root);
    *lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*lfd < 0 || flock(*lfd, LOCK_EX | LOCK_NB) != 0) {
        return step_end(x, 0, "another deploy runs on %s", t->root);
    }
    if (deploy_release_current(t->root, r->previous, err) != FL_OK) {
        r->previous[0] = '\0';
    }
    snprintf(r->current, sizeof r->current, "%s", r->previous);
    return step_end(x, 1, "in service: %s", r->previous[0] ? r->previous : "nothing");
}

/* The package pkg unpacked into its release directory (its path into dir),
 * unless that is already on disk. */
static int unpack(struct run *x, const char *pkg, char *dir)
{
    const struct deploy_target *t = x->t;
    char err[FL_ERRMSG_SIZE];
    struct stat sb;
    step_begin(x, "unpack");
    if (deploy_release_dir(t->root, t->version, dir, err) != FL_OK) {
        return step_end(x, 0, "%s", err);
    }
    if (lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        return step_end(x, 1, "releases/%s is already on disk", t->version);
    }
    struct deploy_unpack_stats us;
    if (deploy_unpack(pkg, dir, NULL, &us, err) != FL_OK) {
        return step_end(x, 0, "%s", err);
    }
    return step_end(x, 1, "%llu entries, %llu bytes", (unsigned long long)us.entries,
                    (unsigned long long)us.bytes);
}

/* current -> the new release (nothing to do if it already is). */
static int switch_current(struct run *x)
{
    const struct deploy_target *t = x->t;
    struct deploy_target_report *r = x->r;
    char err[FL_ERRMSG_SIZE];
    step_begin(x, "switch");
    if (strcmp(r->previous, t->version) == 0) {
        step_end(x, 1, "%s is already current", t->version);
    } else if (deploy_release_switch(t->root, t->version, err) != FL_OK) {
        return step_end(x, 0, "%s", err);
    } else {
        step_end(x, 1, "current -> releases/%s", t->version);
    }
    snprintf(r->current, sizeof r->current, "%s", t->version);
    return 1;
}

/* Cached packages follow their releases: remove ROOT/.packages/PACKAGE@V
 * for every V that is not among the n releases rel. */
static void prune_cache(const struct deploy_target *t, const struct deploy_release *rel, size_t n)
{
    char cdir[PATH_MAX];
    snprintf(cdir, sizeof cdir, "%s/.packages", t->root);
    DIR *d = opendir(cdir);
    struct dirent *e;
    size_t plen = strlen(t->package);
    while (d != NULL && (e = readdir(d)) != NULL) {
        int keep_it = 1;
        if (strncmp(e->d_name, t->package, plen) == 0 && e->d_name[plen] == '@') {
            keep_it = 0;
            for (size_t i = 0; i < n; i++) {
                if (strcmp(e->d_name + plen + 1, rel[i].version) == 0) {
                    keep_it = 1;
                }
            }
        }
        if (!keep_it) {
            unlinkat(dirfd(d), e->d_name, 0);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* Old releases beyond t->keep go, and their cached packages. The deploy
 * stands whatever happens here. */
static void prune(struct run *x)
{
    const struct deploy_target *t = x->t;
    char err[FL_ERRMSG_SIZE];
    step_begin(x, "prune");
    unsigned removed = 0;
    unsigned keep = t->keep ? t->keep : DEPLOY_RELEASE_KEEP;
    if (deploy_release_prune(t->root, keep, &removed, err) != FL_OK) {
        step_end(x, 0, "%s", err); /* the deploy stands; only the cleanup failed */
    } else {
        struct deploy_release *rel = NULL;
        size_t n = 0;
        if (deploy_release_list(t->root, &rel, &n, err) == FL_OK) {
            prune_cache(t, rel, n);
            fl_free(rel);
        }
        step_end(x, 1, "%u old release%s removed (keep %u)", removed, removed == 1 ? "" : "s",
                 keep);
    }
}

int deploy_target_run(const struct deploy_target *t, struct deploy_target_report *r)
{
    struct run x = {t, r, NULL, 0};
    char pkg[PATH_MAX], dir[PATH_MAX];
    uint64_t start = now_ms();
    int lfd = -1;
    memset(r, 0, sizeof *r);
    r->result = DEPLOY_TARGET_REFUSED;

    if (!prepare(&x, &lfd)) {
        goto out;
    }
    if (stop_here(&x) || !acquire(&x, pkg, sizeof pkg) || stop_here(&x)) {
        goto out;
    }
    if (!unpack(&x, pkg, dir)) {
        goto out;
    }
    if (stop_here(&x) || (t->pre_hook != NULL && !hook(&x, "pre-hook", t->pre_hook, dir)) ||
        stop_here(&x)) {
        goto out;
    }
    if (!switch_current(&x)) {
        goto out;
    }
    if (!reload(&x, "reload") || stop_here(&x) ||
        ((t->health_cmd != NULL || t->health_http != NULL) && !health(&x, dir)) || stop_here(&x) ||
        (t->post_hook != NULL && !hook(&x, "post-hook", t->post_hook, dir))) {
        if (strcmp(r->previous, t->version) == 0) {
            r->result = DEPLOY_TARGET_BROKEN; /* it was already current: nothing to go back to */
        } else {
            roll_back(&x);
        }
        if (r->result == DEPLOY_TARGET_ROLLED_BACK) {
            snprintf(r->current, sizeof r->current, "%s", r->previous);
        }
        goto out;
    }
    r->result = DEPLOY_TARGET_DEPLOYED;
    prune(&x);
out:
    if (lfd >= 0) {
        close(lfd); /* drops the lock */
    }
    r->total_ms = now_ms() - start;
    return r->result;
}
