/* deploy/supervise — workers, restarts with backoff, signals, shutdown
 * (deploy/supervise.h). One libuv loop; every callback runs on it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "deploy/release.h"
#include "deploy/sup_int.h"

extern char **environ;

void deploy_sup_config_init(struct deploy_sup_config *c)
{
    memset(c, 0, sizeof *c);
    c->reload_exit_code = 75;
    c->workers = 1;
    c->reload_batch = 1;
    c->backoff_min_ms = 200;
    c->backoff_max_ms = 30000;
    c->stable_ms = 10000;
    c->ready_ms = 300;
    c->stop_grace_ms = 10000;
    c->log_max_bytes = 10u << 20;
    c->log_keep = 3;
}

int deploy_sup_config_check(const struct deploy_sup_config *c, char *errmsg)
{
    size_t n = strlen(c->app);
    if (n == 0 ||
        strspn(c->app, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789._-") != n ||
        c->app[0] == '.') {
        return fl_errf(errmsg, FL_EINVAL,
                       "app name \"%s\" must be letters, digits, '.', '_' or "
                       "'-' (not starting with '.')",
                       c->app);
    }
    if (c->root[0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "no application root");
    }
    if (c->argv == NULL || c->argv[0] == NULL || c->argv[0][0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "no command to run");
    }
    if (c->workers < 1 || c->workers > DEPLOY_SUP_WORKERS_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "workers must be 1..%d", DEPLOY_SUP_WORKERS_MAX);
    }
    if (c->reload_exit_code < 1 || c->reload_exit_code > 255) {
        return fl_errf(errmsg, FL_EINVAL, "the reload exit code must be 1..255");
    }
    if (c->reload_batch < 1 || c->backoff_min_ms < 1 || c->backoff_max_ms < c->backoff_min_ms) {
        return fl_errf(errmsg, FL_EINVAL, "reload batch must be >= 1 and backoff min <= max");
    }
    return FL_OK;
}

uint64_t sup_now_ms(struct sup *s)
{
    uv_update_time(&s->loop);
    return uv_now(&s->loop);
}

void sup_current(struct sup *s, char *v)
{
    if (deploy_release_current(s->c.root, v, NULL) != FL_OK) {
        v[0] = '\0';
    }
}

/* ------------------------------------------------------------ process runs */

static void run_handle_closed(uv_handle_t *h)
{
    struct sup_run *r = h->data, **pp;
    if (--r->handles > 0) {
        return;
    }
    for (pp = &r->s->runs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    fl_free(r);
}

static void close_handle(struct sup_run *r, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, run_handle_closed);
    }
    (void)r;
}

static void stream_emit(struct sup_stream *st, size_t n)
{
    char tag[48];
    struct sup_run *r = st->run;
    snprintf(tag, sizeof tag, "w%u %d%s", r->id, r->pid, st->is_err ? " err" : "");
    sup_log_line(&r->s->log, tag, st->buf, n);
}

/* Emit every complete line; a full buffer without a newline is emitted as
 * one (split) line. */
static void stream_lines(struct sup_stream *st)
{
    char *nl;
    while ((nl = memchr(st->buf, '\n', st->len)) != NULL || st->len == sizeof st->buf) {
        size_t n = nl ? (size_t)(nl - st->buf) : st->len;
        stream_emit(st, n);
        n += nl != NULL;
        memmove(st->buf, st->buf + n, st->len - n);
        st->len -= n;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sup_stream *st = (struct sup_stream *)h; /* pipe is the first member */
    (void)suggested;
    buf->base = st->buf + st->len;
    buf->len = sizeof st->buf - st->len;
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    struct sup_stream *st = (struct sup_stream *)h;
    (void)buf;
    if (n > 0) {
        st->len += (size_t)n;
        stream_lines(st);
        return;
    }
    if (n < 0) {
        if (st->len > 0) {
            stream_emit(st, st->len);
            st->len = 0;
        }
        close_handle(st->run, (uv_handle_t *)h);
    }
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig);

static struct sup_run *run_new(struct sup_worker *w)
{
    struct sup_run *r = fl_calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->s = w->s;
    r->w = w;
    r->id = w->id;
    r->proc.data = r;
    r->out.run = r->err.run = r;
    r->err.is_err = 1;
    uv_pipe_init(&w->s->loop, &r->out.pipe, 0);
    uv_pipe_init(&w->s->loop, &r->err.pipe, 0);
    r->out.pipe.data = r->err.pipe.data = r;
    r->handles = 2;
    r->next = w->s->runs;
    w->s->runs = r;
    return r;
}

/* The environment: supervise's own plus the FLOTILLA_* of this worker. */
static char **make_env(struct sup_worker *w, const char *dir, char extra[4][PATH_MAX + 64])
{
    size_t n = 0, k = 0;
    char **env;
    while (environ[n] != NULL) {
        n++;
    }
    env = fl_calloc(n + 5, sizeof *env);
    if (env == NULL) {
        return NULL;
    }
    snprintf(extra[0], PATH_MAX + 64, "FLOTILLA_APP=%s", w->s->c.app);
    snprintf(extra[1], PATH_MAX + 64, "FLOTILLA_RELEASE=%s", w->release);
    snprintf(extra[2], PATH_MAX + 64, "FLOTILLA_RELEASE_DIR=%s", dir);
    snprintf(extra[3], PATH_MAX + 64, "FLOTILLA_WORKER=%u", w->id);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "FLOTILLA_APP=", 13) != 0 &&
            strncmp(environ[i], "FLOTILLA_RELEASE", 16) != 0 &&
            strncmp(environ[i], "FLOTILLA_WORKER=", 16) != 0) {
            env[k++] = environ[i];
        }
    }
    for (int i = 0; i < 4; i++) {
        env[k++] = extra[i];
    }
    return env;
}

static int spawn(struct sup_worker *w, const char *dir, char *err, size_t errlen)
{
    static char extra[4][PATH_MAX + 64];
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    struct sup_run *r = run_new(w);
    char **env;
    int rv;
    if (r == NULL || (env = make_env(w, dir, extra)) == NULL) {
        if (r != NULL) {
            close_handle(r, (uv_handle_t *)&r->out.pipe);
            close_handle(r, (uv_handle_t *)&r->err.pipe);
        }
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(&o, 0, sizeof o);
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&r->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&r->err.pipe;
    o.exit_cb = on_proc_exit;
    o.file = w->s->c.argv[0];
    o.args = (char **)(uintptr_t)w->s->c.argv;
    o.env = env;
    o.cwd = dir;
    o.flags = UV_PROCESS_DETACHED;
    o.stdio = stdio;
    o.stdio_count = 3;
    rv = uv_spawn(&w->s->loop, &r->proc, &o);
    fl_free(env);
    r->handles++; /* the process handle is initialised even when uv_spawn fails */
    if (rv != 0) {
        snprintf(err, errlen, "cannot start %s in %s: %s", o.file, dir, uv_strerror(rv));
        r->w = NULL;
        close_handle(r, (uv_handle_t *)&r->proc);
        close_handle(r, (uv_handle_t *)&r->out.pipe);
        close_handle(r, (uv_handle_t *)&r->err.pipe);
        return -1;
    }
    r->pid = r->proc.pid;
    uv_read_start((uv_stream_t *)&r->out.pipe, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&r->err.pipe, on_alloc, on_read);
    w->run = r;
    return 0;
}

int sup_worker_start(struct sup_worker *w)
{
    char dir[PATH_MAX], err[PATH_MAX + 128] = "";
    struct sup *s = w->s;
    uv_timer_stop(&w->timer);
    sup_current(s, w->release);
    if (w->release[0] == '\0') {
        snprintf(err, sizeof err, "no current release in %s", s->c.root);
    } else if (deploy_release_dir(s->c.root, w->release, dir, NULL) != FL_OK) {
        snprintf(err, sizeof err, "bad release %s", w->release);
    } else if (spawn(w, dir, err, sizeof err) == 0) {
        w->state = SUP_W_RUNNING;
        w->started_ms = fl_wall_ms();
        w->started_mono = sup_now_ms(s);
        sup_log_printf(&s->log, "worker %u started: pid %d, release %s", w->id, w->run->pid,
                       w->release);
        return 1;
    }
    sup_log_printf(&s->log, "worker %u: %s", w->id, err);
    fprintf(stderr, "flotilla supervise: worker %u: %s\n", w->id, err);
    w->started_mono = sup_now_ms(s);
    sup_worker_backoff(w);
    return 0;
}

void sup_worker_signal(struct sup_worker *w, int sig)
{
    if (w->state != SUP_W_RUNNING || w->run == NULL || w->run->pid <= 0) {
        return;
    }
    if (kill(-w->run->pid, sig) != 0) {
        (void)kill(w->run->pid, sig);
    }
}

/* ------------------------------------------------------------ restarts */

static void on_backoff(uv_timer_t *t)
{
    struct sup_worker *w = t->data;
    if (w->s->stopping || w->state != SUP_W_BACKOFF) {
        return;
    }
    w->restarts++;
    (void)sup_worker_start(w);
}

void sup_worker_backoff(struct sup_worker *w)
{
    struct sup *s = w->s;
    uint64_t delay = s->c.backoff_min_ms;
    if (s->stopping) {
        w->state = SUP_W_IDLE;
        return;
    }
    if (sup_now_ms(s) - w->started_mono >= s->c.stable_ms) {
        w->failures = 0;
    }
    for (unsigned i = 0; i < w->failures && delay < s->c.backoff_max_ms; i++) {
        delay *= 2;
    }
    if (delay > s->c.backoff_max_ms) {
        delay = s->c.backoff_max_ms;
    }
    w->failures++;
    w->state = SUP_W_BACKOFF;
    sup_log_printf(&s->log, "worker %u: restart in %llu ms", w->id, (unsigned long long)delay);
    uv_timer_start(&w->timer, on_backoff, delay, 0);
}

static void shutdown_all(struct sup *s);

static int all_idle(struct sup *s)
{
    for (unsigned i = 0; i < s->c.workers; i++) {
        if (s->workers[i].state == SUP_W_RUNNING) {
            return 0;
        }
    }
    return 1;
}

static void worker_exited(struct sup_worker *w, int code, int sig)
{
    struct sup *s = w->s;
    w->state = SUP_W_IDLE;
    w->ever_exited = 1;
    w->last_code = code;
    w->last_signal = sig;
    uv_timer_stop(&w->kill_timer);
    if (s->stopping) {
        if (all_idle(s)) {
            shutdown_all(s);
        }
        return;
    }
    if (w->rphase != SUP_R_NONE) {
        sup_reload_exited(w); /* restarts it or records the failure */
        if (w->state != SUP_W_IDLE) {
            return;
        }
    }
    if (sig == 0 && code == s->c.reload_exit_code) {
        w->restarts++;
        (void)sup_worker_start(w);
        return;
    }
    sup_worker_backoff(w);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
    struct sup_run *r = p->data;
    struct sup_worker *w = r->w;
    close_handle(r, (uv_handle_t *)p);
    if (w == NULL) {
        return;
    }
    r->w = NULL;
    w->run = NULL;
    sup_log_printf(&w->s->log, "worker %u (pid %d) exited: %s %d", w->id, r->pid,
                   sig ? "signal" : "code", sig ? sig : (int)status);
    worker_exited(w, (int)status, sig);
}

/* ------------------------------------------------------------ stop */

static void on_stop_grace(uv_timer_t *t)
{
    struct sup *s = t->data;
    for (unsigned i = 0; i < s->c.workers; i++) {
        if (s->workers[i].state == SUP_W_RUNNING) {
            sup_log_printf(&s->log, "worker %u did not stop in time: SIGKILL", i);
        }
        sup_worker_signal(&s->workers[i], SIGKILL);
    }
}

static void stop(struct sup *s, int sig)
{
    if (!s->stopping) {
        s->stopping = 1;
        sup_log_printf(&s->log, "signal %d: stopping %u workers", sig, s->c.workers);
        sup_reload_abort(s, "supervise is stopping");
        uv_timer_start(&s->stop_timer, on_stop_grace, s->c.stop_grace_ms, 0);
    }
    for (unsigned i = 0; i < s->c.workers; i++) {
        struct sup_worker *w = &s->workers[i];
        uv_timer_stop(&w->timer);
        if (w->state == SUP_W_BACKOFF) {
            w->state = SUP_W_IDLE;
        }
        sup_worker_signal(w, sig);
    }
    if (all_idle(s)) {
        shutdown_all(s);
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    struct sup *s = h->data;
    if (sig == SIGHUP) {
        sup_log_printf(&s->log, "SIGHUP: forwarded to the workers");
        for (unsigned i = 0; i < s->c.workers; i++) {
            sup_worker_signal(&s->workers[i], SIGHUP);
        }
        return;
    }
    stop(s, sig);
}

static void close_if_open(uv_handle_t *h)
{
    if (h->loop != NULL && !uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* Every worker is gone: close what keeps the loop alive. */
static void shutdown_all(struct sup *s)
{
    if (s->closed) {
        return;
    }
    s->closed = 1;
    sup_log_printf(&s->log, "all workers stopped");
    close_if_open((uv_handle_t *)&s->sig_term);
    close_if_open((uv_handle_t *)&s->sig_int);
    close_if_open((uv_handle_t *)&s->sig_hup);
    close_if_open((uv_handle_t *)&s->stop_timer);
    for (unsigned i = 0; i < s->c.workers; i++) {
        close_if_open((uv_handle_t *)&s->workers[i].timer);
        close_if_open((uv_handle_t *)&s->workers[i].kill_timer);
    }
    /* output pipes still held open by a worker's own children */
    for (struct sup_run *r = s->runs; r != NULL; r = r->next) {
        close_handle(r, (uv_handle_t *)&r->out.pipe);
        close_handle(r, (uv_handle_t *)&r->err.pipe);
    }
    sup_control_close(s);
}

/* ------------------------------------------------------------ run */

/* Each worker holds two pipes: with thousands of workers the default soft
 * limit of 1024 descriptors is too low, so raise it to the hard limit (the
 * workers inherit the raised limit). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int setup(struct sup *s, char *errmsg)
{
    int rv;
    raise_nofile();
    s->workers = fl_calloc(s->c.workers, sizeof *s->workers);
    s->failed = fl_calloc(s->c.workers, sizeof *s->failed);
    if (s->workers == NULL || s->failed == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory for %u workers", s->c.workers);
    }
    if ((rv = sup_log_open(&s->log, s->c.root, s->c.app, s->c.log_max_bytes, s->c.log_keep,
                           errmsg)) != FL_OK) {
        return rv;
    }
    if ((rv = uv_loop_init(&s->loop)) != 0) {
        return fl_errf(errmsg, FL_EIO, "event loop: %s", uv_strerror(rv));
    }
    return FL_OK;
}

static void start_handles(struct sup *s)
{
    uv_signal_t *sigs[3] = {&s->sig_term, &s->sig_int, &s->sig_hup};
    int nums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&s->loop, sigs[i]);
        sigs[i]->data = s;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    uv_timer_init(&s->loop, &s->stop_timer);
    s->stop_timer.data = s;
    for (unsigned i = 0; i < s->c.workers; i++) {
        struct sup_worker *w = &s->workers[i];
        w->s = s;
        w->id = i;
        uv_timer_init(&s->loop, &w->timer);
        uv_timer_init(&s->loop, &w->kill_timer);
        w->timer.data = w->kill_timer.data = w;
    }
}

int deploy_sup_run(const struct deploy_sup_config *c, char *errmsg)
{
    struct sup *s = fl_calloc(1, sizeof *s);
    int rv, loop_ok = 0;
    if (s == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    s->c = *c;
    s->log.fd = -1;
    if ((rv = deploy_sup_config_check(c, errmsg)) != FL_OK || (rv = setup(s, errmsg)) != FL_OK) {
        goto out;
    }
    loop_ok = 1;
    start_handles(s);
    if ((rv = sup_control_open(s, errmsg)) != FL_OK) {
        shutdown_all(s);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    sup_log_printf(&s->log, "supervise %s: %u workers of %s, control %s", c->app, c->workers,
                   c->argv[0], s->ctl_path);
    for (unsigned i = 0; i < s->c.workers; i++) {
        (void)sup_worker_start(&s->workers[i]);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
out:
    if (loop_ok) {
        (void)uv_loop_close(&s->loop);
    }
    sup_log_close(&s->log);
    fl_free(s->workers);
    fl_free(s->failed);
    fl_free(s);
    return rv;
}
