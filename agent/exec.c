/* The executors' life cycle (agent/exec.h): start, output, timeout, cancel,
 * reaping of the process group, results, close, done.
 *
 * The state machine is in exec_int.h. The rules that keep it simple:
 * - nothing ends a process unit but the exit of its main process (seen in
 *   on_exit), possibly followed by the reaping of what it left behind;
 * - the results are fixed once, in finish(), which closes every handle;
 * - done() runs from the last close callback, so when it runs no libuv
 *   callback of ours can follow and the memory can go at once. */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/exec_int.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

extern char **environ;

#define REAP_POLL_MIN_MS 5u
#define REAP_POLL_MAX_MS 200u

static const char oom_text[] = "exec: out of memory";

static void finish(struct exec *e);
static void reap_check(struct exec *e);

static int is_process_kind(int kind)
{
    return kind == EXEC_EXEC || kind == EXEC_SHELL || kind == EXEC_ANSIBLE_MODULE ||
           kind == EXEC_PLAYBOOK || kind == EXEC_DEPLOY;
}

static int is_ansible_kind(int kind)
{
    return kind == EXEC_ANSIBLE_MODULE || kind == EXEC_PLAYBOOK;
}

/* ---- memory ------------------------------------------------------------------ */

static void destroy(struct exec *e)
{
    for (unsigned i = 0; i < e->n_hosts; i++) {
        if (e->hosts != NULL) {
            fl_free(e->hosts[i]);
        }
        if (e->tails != NULL) {
            fl_free(e->tails[i]);
        }
    }
    fl_free(e->hosts);
    fl_free(e->tails);
    fl_free(e->results);
    fl_free(e->unit_tail);
    fl_free(e->workdir);
    fl_free(e->inventory_path);
    fl_free(e->playbook_path);
    fl_free(e->out.chunk);
    fl_free(e->err.chunk);
    exec__tail_close(&e->tail);
    fl_buf_close(&e->json);
    fl_free(e);
}

void exec_free(struct exec *e)
{
    if (e == NULL) {
        return;
    }
    if (e->in_done) {
        e->free_requested = 1; /* freed when done() returns */
        return;
    }
    assert(e->state == EXEC__DONE);
    destroy(e);
}

int exec__set_result(struct exec *e, unsigned i, int status, int rc, const char *tail,
                     size_t tail_len)
{
    struct exec_host_result *r = &e->results[i];
    size_t n = 0;
    char *t;
    r->host = e->hosts[i];
    r->status = status;
    r->rc = rc;
    fl_free(e->tails[i]);
    e->tails[i] = NULL;
    t = exec__tail_of(tail, tail_len, e->tail_bytes, &n);
    if (t == NULL) {
        r->tail = oom_text;
        r->tail_len = sizeof oom_text - 1;
        return FL_ENOMEM;
    }
    e->tails[i] = t;
    r->tail = t;
    r->tail_len = n;
    return FL_OK;
}

/* ---- done ------------------------------------------------------------------ */

static void deliver(struct exec *e)
{
    assert(e->state == EXEC__CLOSING && e->handles == 0);
    if (e->launched && !e->started_reported && e->cb.started != NULL) {
        e->started_reported = 1;
        e->cb.started(e->data, e->pid);
    }
    e->state = EXEC__DONE;
    e->in_done = 1;
    e->cb.done(e->data, e->unit_status, e->exit_code, e->results, e->n_hosts);
    e->in_done = 0;
    if (e->free_requested) {
        destroy(e);
    }
}

static void on_close(uv_handle_t *h)
{
    struct exec *e = h->data;
    assert(e->handles > 0);
    if (--e->handles == 0) {
        deliver(e);
    }
}

static void close_handle(struct exec *e, uv_handle_t *h)
{
    (void)e;
    if (!uv_is_closing(h)) {
        uv_close(h, on_close);
    }
}

/* ---- output ------------------------------------------------------------------ */

static int stream_no(const struct exec *e, const struct exec__stream *s)
{
    return s == &e->out ? 1 : 2;
}

static void flush_stream(struct exec *e, struct exec__stream *s)
{
    if (s->used == 0) {
        return;
    }
    if (!e->started_reported && e->cb.started != NULL) { /* started comes first, always */
        e->started_reported = 1;
        e->cb.started(e->data, e->pid);
    }
    if (e->cb.log != NULL) {
        e->cb.log(e->data, "", stream_no(e, s), s->offset, s->chunk, s->used);
    }
    s->offset += s->used;
    s->used = 0;
}

static void on_flush_timer(uv_timer_t *t)
{
    struct exec *e = t->data;
    flush_stream(e, &e->out);
    flush_stream(e, &e->err);
}

static struct exec__stream *stream_of(struct exec *e, uv_handle_t *h)
{
    return h == (uv_handle_t *)&e->out.pipe ? &e->out : &e->err;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct exec *e = h->data;
    struct exec__stream *s = stream_of(e, h);
    (void)suggested;
    if (s->used == e->chunk_bytes) {
        flush_stream(e, s);
    }
    buf->base = (char *)s->chunk + s->used;
    buf->len = e->chunk_bytes - s->used;
}

static void stream_eof(struct exec *e, struct exec__stream *s)
{
    flush_stream(e, s);
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->pipe);
        s->reading = 0;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct exec *e = st->data;
    struct exec__stream *s = stream_of(e, (uv_handle_t *)st);
    if (nread < 0) { /* UV_EOF, or an error that ends the stream all the same */
        stream_eof(e, s);
        if (e->state == EXEC__REAPING) {
            reap_check(e);
        }
        return;
    }
    if (nread == 0) {
        return;
    }
    exec__tail_write(&e->tail, buf->base, (size_t)nread);
    if (s == &e->out && is_ansible_kind(e->kind) && !e->json_overflow) {
        if (e->json.len + (size_t)nread > EXEC_JSON_MAX ||
            fl_buf_append(&e->json, buf->base, (size_t)nread) != FL_OK) {
            e->json_overflow = 1; /* the results become EXEC_ERROR with the raw tail */
            fl_buf_close(&e->json);
        }
    }
    s->used += (size_t)nread;
    if (s->used == e->chunk_bytes) {
        flush_stream(e, s);
    } else if (!uv_is_active((uv_handle_t *)&e->t_flush)) {
        uv_timer_start(&e->t_flush, on_flush_timer, EXEC_LOG_FLUSH_MS, 0);
    }
}

/* ---- killing and reaping --------------------------------------------------------- */

static void signal_group(struct exec *e, int sig)
{
    if (e->pid > 0 && kill(-e->pid, sig) != 0 && errno != ESRCH) {
        FL_WARN("exec: kill(-%d, %d): %s", e->pid, sig, strerror(errno));
    }
}

static void send_kill(struct exec *e)
{
    signal_group(e, SIGKILL);
    e->kill_sent = 1;
    e->kill_sent_at = uv_now(e->loop);
}

static void on_kill_timer(uv_timer_t *t)
{
    struct exec *e = t->data;
    if (e->state == EXEC__KILLING) {
        send_kill(e); /* the exit follows */
    } else if (e->state == EXEC__REAPING) {
        reap_check(e);
    }
}

/* Timeout or cancel of a running process: TERM now, KILL after the grace. */
static void begin_kill(struct exec *e, int reason)
{
    assert(e->state == EXEC__RUNNING && is_process_kind(e->kind));
    e->reason = reason;
    e->state = EXEC__KILLING;
    signal_group(e, SIGTERM);
    e->term_sent = 1;
    e->kill_at = uv_now(e->loop) + e->grace_ms;
    uv_timer_start(&e->t_kill, on_kill_timer, e->grace_ms, 0);
}

/* REAPING: the main process has exited. Anything left in its group gets TERM,
 * then KILL at kill_at; the unit is over when the group is empty and the
 * pipes are at EOF, or when the bounded waits run out. Called on entry, on
 * each pipe EOF and from a backing-off poll (5 ms doubling to 200 ms).
 *
 * The pgid is signalled only while a live member holds it: the kernel does
 * not hand out a pid that is still some group's id, so the id cannot have
 * been reused then (the window between the last member's death and our next
 * look is at most one poll interval, far less than a pid wrap-around). */
static void reap_check(struct exec *e)
{
    uint64_t now = uv_now(e->loop);
    uint64_t wait;
    assert(e->state == EXEC__REAPING);
    if (exec__group_alive(e->pid)) {
        e->gone_seen = 0;
        if (!e->term_sent) {
            signal_group(e, SIGTERM);
            e->term_sent = 1;
            e->kill_at = now + e->grace_ms;
        }
        if (!e->kill_sent && now >= e->kill_at) {
            send_kill(e);
        }
        if (e->kill_sent && now >= e->kill_sent_at + EXEC_REAP_MS) {
            FL_WARN("exec: process group %d survives SIGKILL; reporting the unit anyway", e->pid);
            finish(e);
            return;
        }
    } else {
        if (!e->out.reading && !e->err.reading) {
            finish(e);
            return;
        }
        if (!e->gone_seen) {
            e->gone_seen = 1;
            e->gone_at = now;
        } else if (now >= e->gone_at + EXEC_DRAIN_MS) {
            FL_WARN("exec: output of process group %d still open after it is gone (a process "
                    "outside the group holds it); closing",
                    e->pid);
            finish(e);
            return;
        }
    }
    wait = e->poll_ms;
    if (!e->kill_sent && e->term_sent && e->kill_at > now && e->kill_at - now < wait) {
        wait = e->kill_at - now;
    }
    e->poll_ms = e->poll_ms * 2 > REAP_POLL_MAX_MS ? REAP_POLL_MAX_MS : e->poll_ms * 2;
    uv_timer_start(&e->t_kill, on_kill_timer, wait, 0);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
    struct exec *e = p->data;
    assert(e->state == EXEC__RUNNING || e->state == EXEC__KILLING);
    e->exit_code = sig != 0 ? 128 + sig : (int)status;
    e->exited = 1;
    uv_timer_stop(&e->t_timeout);
    uv_timer_stop(&e->t_kill);
    e->state = EXEC__REAPING;
    e->poll_ms = REAP_POLL_MIN_MS;
    reap_check(e);
}

static void on_timeout(uv_timer_t *t)
{
    struct exec *e = t->data;
    if (e->kind == EXEC_SLEEP) {
        e->reason = e->sleep_ms <= e->timeout_ms || e->timeout_ms == 0 ? 0 : EXEC_TIMEOUT;
        e->exit_code = 0;
        finish(e);
    } else if (e->state == EXEC__RUNNING) {
        begin_kill(e, EXEC_TIMEOUT);
    }
}

static void on_kick(uv_timer_t *t)
{
    struct exec *e = t->data;
    if (!e->started_reported && e->cb.started != NULL &&
        (e->state == EXEC__RUNNING || e->state == EXEC__KILLING || e->state == EXEC__REAPING)) {
        e->started_reported = 1;
        e->cb.started(e->data, e->pid);
    }
}

void exec_cancel(struct exec *e)
{
    if (e == NULL || e->state != EXEC__RUNNING) {
        return;
    }
    if (e->kind == EXEC_SLEEP) {
        e->reason = EXEC_CANCELLED;
        e->exit_code = 0;
        finish(e);
    } else {
        begin_kill(e, EXEC_CANCELLED);
    }
}

/* ---- results ------------------------------------------------------------------- */

/* Every host gets status and rc with the unit's output tail (shared). */
static void all_hosts(struct exec *e, int status, int rc, const char *tail, size_t len)
{
    for (unsigned i = 0; i < e->n_hosts; i++) {
        e->results[i].host = e->hosts[i];
        e->results[i].status = status;
        e->results[i].rc = rc;
        e->results[i].tail = tail;
        e->results[i].tail_len = len;
    }
}

static int unit_status_of_hosts(const struct exec *e)
{
    int any_failed = 0, any_unreachable = 0, all_ok = 1;
    for (unsigned i = 0; i < e->n_hosts; i++) {
        int st = e->results[i].status;
        all_ok &= st == EXEC_OK;
        any_failed |= st == EXEC_FAILED;
        any_unreachable |= st == EXEC_UNREACHABLE;
    }
    if (all_ok) {
        return EXEC_OK;
    }
    return any_failed ? EXEC_FAILED : any_unreachable ? EXEC_UNREACHABLE : EXEC_ERROR;
}

static void compute_results(struct exec *e)
{
    const char *tail;
    size_t len = 0;
    if (e->errtext[0] != '\0') {
        all_hosts(e, EXEC_ERROR, -1, e->errtext, strlen(e->errtext));
        e->unit_status = EXEC_ERROR;
        e->exit_code = -1;
        return;
    }
    e->unit_tail = exec__tail_copy(&e->tail, &len);
    tail = e->unit_tail != NULL ? e->unit_tail : oom_text;
    len = e->unit_tail != NULL ? len : sizeof oom_text - 1;
    e->unit_tail_len = len;
    if (e->reason != 0) {
        all_hosts(e, e->reason, e->exit_code, tail, len);
        e->unit_status = e->reason;
    } else if (e->kind == EXEC_NOOP || e->kind == EXEC_SLEEP) {
        all_hosts(e, EXEC_OK, 0, "", 0);
        e->exit_code = 0;
        e->unit_status = EXEC_OK;
    } else if (e->kind == EXEC_EXEC || e->kind == EXEC_SHELL || e->kind == EXEC_DEPLOY) {
        e->unit_status = e->exit_code == 0 ? EXEC_OK : EXEC_FAILED;
        all_hosts(e, e->unit_status, e->exit_code, tail, len);
    } else {
        all_hosts(e, EXEC_ERROR, e->exit_code, tail, len); /* what a failed parse leaves */
        if (exec__ansible_results(e) != FL_OK) {
            FL_WARN("exec: out of memory while reading Ansible's results");
        }
        e->unit_status = unit_status_of_hosts(e);
    }
}

/* The outcome is decided: fix the results and close every handle; done()
 * follows from the last close callback. */
static void finish(struct exec *e)
{
    assert(e->state != EXEC__CLOSING && e->state != EXEC__DONE);
    flush_stream(e, &e->out);
    flush_stream(e, &e->err);
    e->state = EXEC__CLOSING;
    compute_results(e);
    exec__ansible_cleanup(e);
    fl_buf_close(&e->json);
    close_handle(e, (uv_handle_t *)&e->t_kick);
    close_handle(e, (uv_handle_t *)&e->t_timeout);
    close_handle(e, (uv_handle_t *)&e->t_kill);
    close_handle(e, (uv_handle_t *)&e->t_flush);
    if (e->out.open) {
        close_handle(e, (uv_handle_t *)&e->out.pipe);
    }
    if (e->err.open) {
        close_handle(e, (uv_handle_t *)&e->err.pipe);
    }
    if (e->proc_open) {
        close_handle(e, (uv_handle_t *)&e->proc);
    }
}

/* ---- start ------------------------------------------------------------------- */

static void set_errtext(struct exec *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_errtext(struct exec *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->errtext, sizeof e->errtext, fmt, ap);
    va_end(ap);
}

/* The command line and environment of a process unit; content problems
 * go to e->errtext. FL_ENOMEM only. */
static int build_command(struct exec *e, const struct exec_spec *spec, struct exec__strv *argv,
                         struct exec__strv *env)
{
    int rv;
    for (char **p = environ; p != NULL && *p != NULL; p++) {
        if (strchr(*p, '=') != NULL && (rv = exec__strv_push(env, *p, 0)) != FL_OK) {
            return rv;
        }
    }
    for (const char *const *p = spec->env; p != NULL && *p != NULL; p++) {
        rv = exec__strv_setenv(env, *p, 0);
        if (rv == FL_EINVAL) {
            set_errtext(e, "exec: bad environment entry \"%.200s\" (want NAME=value)", *p);
            return FL_OK;
        }
        if (rv != FL_OK) {
            return rv;
        }
    }
    if (e->workdir != NULL && exec__mkdirp(e->workdir, e->errtext) != FL_OK) {
        return FL_OK;
    }
    switch (e->kind) {
    case EXEC_EXEC:
    case EXEC_DEPLOY:
        if (spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] == '\0') {
            set_errtext(e, "exec: empty argv");
            return FL_OK;
        }
        for (const char *const *p = spec->argv; *p != NULL; p++) {
            if ((rv = exec__strv_push(argv, *p, 0)) != FL_OK) {
                return rv;
            }
        }
        return FL_OK;
    case EXEC_SHELL:
        if (spec->script == NULL) {
            set_errtext(e, "exec: no script");
            return FL_OK;
        }
        if ((rv = exec__strv_push(argv, "/bin/sh", 0)) != FL_OK ||
            (rv = exec__strv_push(argv, "-c", 0)) != FL_OK ||
            (rv = exec__strv_push(argv, spec->script, 0)) != FL_OK) {
            return rv;
        }
        return FL_OK;
    default:
        rv = exec__ansible_prepare(e, spec, argv, env);
        return rv == FL_ENOMEM ? rv : FL_OK;
    }
}

static int stream_init(struct exec *e, struct exec__stream *s)
{
    s->chunk = fl_malloc(e->chunk_bytes);
    return s->chunk != NULL ? FL_OK : FL_ENOMEM;
}

static void handle_init(struct exec *e, uv_handle_t *h)
{
    h->data = e;
    e->handles++;
}

/* Spawn argv; a failure becomes e->errtext. */
static void spawn(struct exec *e, struct exec__strv *argv, struct exec__strv *env)
{
    uv_process_options_t o;
    uv_stdio_container_t io[3];
    int rv;

    uv_pipe_init(e->loop, &e->out.pipe, 0);
    handle_init(e, (uv_handle_t *)&e->out.pipe);
    e->out.open = 1;
    uv_pipe_init(e->loop, &e->err.pipe, 0);
    handle_init(e, (uv_handle_t *)&e->err.pipe);
    e->err.open = 1;

    memset(&o, 0, sizeof o);
    io[0].flags = UV_IGNORE; /* libuv opens /dev/null for an ignored 0..2 */
    io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[1].data.stream = (uv_stream_t *)&e->out.pipe;
    io[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[2].data.stream = (uv_stream_t *)&e->err.pipe;
    o.exit_cb = on_proc_exit;
    o.file = argv->v[0];
    o.args = argv->v;
    o.env = env->v;
    o.cwd = e->workdir;
    o.flags = UV_PROCESS_DETACHED; /* setsid(): a group of its own, pgid == pid */
    o.stdio_count = 3;
    o.stdio = io;
    rv = uv_spawn(e->loop, &e->proc, &o);
    handle_init(e, (uv_handle_t *)&e->proc); /* initialised even when uv_spawn fails */
    e->proc_open = 1;
    if (rv != 0) {
        /* libuv codes are negated errno values on Unix: say it the way libc does. */
        set_errtext(e, "exec: %.300s: %s", argv->v[0], strerror(-rv));
        return;
    }
    e->pid = e->proc.pid;
    e->launched = 1;
    if (uv_read_start((uv_stream_t *)&e->out.pipe, on_alloc, on_read) == 0) {
        e->out.reading = 1;
    }
    if (uv_read_start((uv_stream_t *)&e->err.pipe, on_alloc, on_read) == 0) {
        e->err.reading = 1;
    }
}

/* noop and sleep run only in a test build (docs/ARCHITECTURE.md, "Test
 * hooks"); a production agent reports them as an error result. */
#ifdef FLOTILLA_TEST_HOOKS
#define TEST_KINDS 1
#else
#define TEST_KINDS 0
#endif

static int copy_spec(struct exec *e, const struct exec_spec *spec)
{
    e->kind = spec->kind;
    e->n_hosts = spec->n_hosts;
    e->timeout_ms = spec->timeout_ms;
    e->sleep_ms = spec->sleep_ms;
    e->grace_ms = spec->kill_grace_ms ? spec->kill_grace_ms : EXEC_KILL_GRACE_MS;
    e->tail_bytes = spec->tail_bytes ? spec->tail_bytes : EXEC_TAIL_BYTES;
    e->chunk_bytes = spec->log_chunk_bytes ? spec->log_chunk_bytes : EXEC_LOG_CHUNK_BYTES;
    if (e->chunk_bytes > EXEC_LOG_CHUNK_MAX) {
        e->chunk_bytes = EXEC_LOG_CHUNK_MAX;
    }
    e->exit_code = -1;
    fl_buf_init(&e->json);
    e->hosts = fl_calloc(e->n_hosts + 1, sizeof *e->hosts);
    e->tails = fl_calloc(e->n_hosts + 1, sizeof *e->tails);
    e->results = fl_calloc(e->n_hosts + 1, sizeof *e->results);
    if (e->hosts == NULL || e->tails == NULL || e->results == NULL ||
        exec__tail_init(&e->tail, e->tail_bytes) != FL_OK) {
        return FL_ENOMEM;
    }
    for (unsigned i = 0; i < e->n_hosts; i++) {
        if ((e->hosts[i] = fl_strdup(spec->hosts[i] ? spec->hosts[i] : "")) == NULL) {
            return FL_ENOMEM;
        }
    }
    if (spec->workdir != NULL && (e->workdir = fl_strdup(spec->workdir)) == NULL) {
        return FL_ENOMEM;
    }
    if (is_process_kind(e->kind) &&
        (stream_init(e, &e->out) != FL_OK || stream_init(e, &e->err) != FL_OK)) {
        return FL_ENOMEM;
    }
    return FL_OK;
}

int exec_start(uv_loop_t *loop, const struct exec_spec *spec, const struct exec_callbacks *cb,
               void *data, struct exec **out, char *errmsg)
{
    struct exec__strv argv, env;
    struct exec *e;
    int rv;

    if (loop == NULL || spec == NULL || cb == NULL || cb->done == NULL || out == NULL ||
        (spec->hosts == NULL && spec->n_hosts > 0)) {
        return fl_errf(errmsg, FL_EINVAL, "exec_start: missing argument");
    }
    exec__strv_init(&argv);
    exec__strv_init(&env);
    e = fl_calloc(1, sizeof *e);
    if (e == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "exec_start: out of memory");
    }
    e->loop = loop;
    e->cb = *cb;
    e->data = data;
    e->state = EXEC__RUNNING;
    rv = copy_spec(e, spec);
    if (rv == FL_OK && spec->refuse != NULL) {
        snprintf(e->errtext, sizeof e->errtext, "%s", spec->refuse[0] ? spec->refuse : "refused");
    } else if (rv == FL_OK && is_process_kind(e->kind)) {
        rv = build_command(e, spec, &argv, &env);
    } else if (rv == FL_OK && !TEST_KINDS && (e->kind == EXEC_NOOP || e->kind == EXEC_SLEEP)) {
        snprintf(e->errtext, sizeof e->errtext, "exec: executor kind %d: test builds only",
                 e->kind);
    } else if (rv == FL_OK && e->kind != EXEC_NOOP && e->kind != EXEC_SLEEP) {
        snprintf(e->errtext, sizeof e->errtext, "exec: unknown executor kind %d", e->kind);
    }
    if (rv != FL_OK) {
        goto err;
    }

    /* From here on nothing fails synchronously: problems are results. */
    uv_timer_init(loop, &e->t_kick);
    handle_init(e, (uv_handle_t *)&e->t_kick);
    uv_timer_init(loop, &e->t_timeout);
    handle_init(e, (uv_handle_t *)&e->t_timeout);
    uv_timer_init(loop, &e->t_kill);
    handle_init(e, (uv_handle_t *)&e->t_kill);
    uv_timer_init(loop, &e->t_flush);
    handle_init(e, (uv_handle_t *)&e->t_flush);

    if (e->errtext[0] == '\0' && is_process_kind(e->kind)) {
        spawn(e, &argv, &env);
    }
    exec__strv_close(&argv);
    exec__strv_close(&env);
    *out = e;

    if (e->errtext[0] != '\0') {
        finish(e);
    } else if (e->kind == EXEC_NOOP) {
        e->launched = 1;
        finish(e);
    } else if (e->kind == EXEC_SLEEP) {
        uint32_t ms = e->sleep_ms;
        e->launched = 1;
        if (e->timeout_ms > 0 && e->timeout_ms < ms) {
            ms = e->timeout_ms;
        }
        uv_timer_start(&e->t_kick, on_kick, 0, 0);
        uv_timer_start(&e->t_timeout, on_timeout, ms, 0);
    } else {
        uv_timer_start(&e->t_kick, on_kick, 0, 0);
        if (e->timeout_ms > 0) {
            uv_timer_start(&e->t_timeout, on_timeout, e->timeout_ms, 0);
        }
    }
    return FL_OK;

err:
    exec__strv_close(&argv);
    exec__strv_close(&env);
    exec__ansible_cleanup(e);
    destroy(e);
    return fl_errf(errmsg, rv, "exec_start: out of memory");
}
