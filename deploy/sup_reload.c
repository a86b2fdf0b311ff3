/* deploy/supervise — rolling reload onto the current release.
 *
 * The reload is a small state machine over the workers in index order:
 *   next       the first worker not yet taken;
 *   in_flight  workers taken and not yet back (at most reload_batch);
 * a taken worker goes SUP_R_STOPPING (SIGTERM sent; SIGKILL after
 * stop_grace_ms) -> exit -> started again -> SUP_R_READY -> ready_ms later
 * SUP_R_NONE, back. A worker that exits in SUP_R_READY, or cannot be
 * started, is a failure of this reload and goes on with the normal backoff.
 * The reload ends when next == workers and in_flight == 0; then every client
 * that asked for it gets the reply, and a reload asked meanwhile starts. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "deploy/sup_int.h"

static void pump(struct sup *s);

static void reply_all(struct sup *s, const char *line)
{
    for (unsigned i = 0; i < s->n_active; i++) {
        if (s->active[i] != NULL) {
            sup_control_reply(s->active[i], line);
        }
    }
    s->n_active = 0;
}

static char *result_json(struct sup *s)
{
    char cur[DEPLOY_VERSION_MAX];
    json_t *j, *failed;
    char *line;
    sup_current(s, cur);
    if (s->n_failed == 0) {
        j = json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "release", cur, "workers",
                      (json_int_t)s->c.workers, "ms", (json_int_t)(sup_now_ms(s) - s->reload_t0));
    } else {
        failed = json_array();
        for (unsigned i = 0; i < s->n_failed; i++) {
            json_array_append_new(failed, json_integer(s->failed[i]));
        }
        j = json_pack("{s:b, s:s, s:s, s:o, s:I}", "ok", 0, "error",
                      "workers exited before they were back up", "release", cur, "failed", failed,
                      "ms", (json_int_t)(sup_now_ms(s) - s->reload_t0));
    }
    line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return line;
}

static void finish(struct sup *s)
{
    char *line = result_json(s);
    sup_log_printf(&s->log, "reload done: %s", line ? line : "?");
    reply_all(s, line ? line : "{\"ok\": false, \"error\": \"out of memory\"}");
    free(line);
    s->reloading = 0;
    if (s->n_queued > 0 && !s->stopping) {
        memcpy(s->active, s->queued, s->n_queued * sizeof s->queued[0]);
        s->n_active = s->n_queued;
        s->n_queued = 0;
        s->reloading = 1;
        s->next = s->in_flight = s->n_failed = 0;
        s->reload_t0 = sup_now_ms(s);
        pump(s);
    }
}

static void on_ready(uv_timer_t *t)
{
    struct sup_worker *w = t->data;
    struct sup *s = w->s;
    if (w->rphase != SUP_R_READY) {
        return;
    }
    w->rphase = SUP_R_NONE;
    s->in_flight--;
    pump(s);
}

static void failed(struct sup_worker *w)
{
    struct sup *s = w->s;
    w->rphase = SUP_R_NONE;
    s->failed[s->n_failed++] = w->id;
    s->in_flight--;
}

/* Start w again for the reload and wait ready_ms. */
static void restart(struct sup_worker *w)
{
    if (!sup_worker_start(w)) {
        failed(w); /* it is in backoff now */
        return;
    }
    w->rphase = SUP_R_READY;
    uv_timer_start(&w->timer, on_ready, w->s->c.ready_ms, 0);
}

static void on_kill(uv_timer_t *t)
{
    struct sup_worker *w = t->data;
    sup_log_printf(&w->s->log, "worker %u did not stop in time: SIGKILL", w->id);
    sup_worker_signal(w, SIGKILL);
}

static void take(struct sup_worker *w)
{
    struct sup *s = w->s;
    s->in_flight++;
    if (w->state == SUP_W_RUNNING) {
        w->rphase = SUP_R_STOPPING;
        sup_worker_signal(w, SIGTERM);
        uv_timer_start(&w->kill_timer, on_kill, s->c.stop_grace_ms, 0);
        return;
    }
    restart(w); /* in backoff: start it now */
}

static void pump(struct sup *s)
{
    if (!s->reloading) {
        return;
    }
    while (s->in_flight < s->c.reload_batch && s->next < s->c.workers && !s->stopping) {
        take(&s->workers[s->next++]);
    }
    if (s->in_flight == 0 && (s->next == s->c.workers || s->stopping)) {
        finish(s);
    }
}

void sup_reload_exited(struct sup_worker *w)
{
    struct sup *s = w->s;
    if (w->rphase == SUP_R_STOPPING) {
        w->restarts++;
        restart(w);
    } else if (w->rphase == SUP_R_READY) {
        uv_timer_stop(&w->timer);
        sup_log_printf(&s->log, "worker %u exited before it was back up", w->id);
        failed(w);
    }
    pump(s);
}

void sup_reload_request(struct sup_client *cl)
{
    struct sup *s = cl->s;
    if (s->stopping) {
        sup_control_reply(cl, "{\"ok\": false, \"error\": \"supervise is stopping\"}");
        return;
    }
    if (s->reloading) {
        if (s->n_queued == SUP_WAITERS_MAX) {
            sup_control_reply(cl, "{\"ok\": false, \"error\": \"too many reloads waiting\"}");
            return;
        }
        s->queued[s->n_queued++] = cl;
        return;
    }
    sup_log_printf(&s->log, "reload requested");
    s->active[0] = cl;
    s->n_active = 1;
    s->reloading = 1;
    s->next = s->in_flight = s->n_failed = 0;
    s->reload_t0 = sup_now_ms(s);
    pump(s);
}

void sup_reload_abort(struct sup *s, const char *why)
{
    char line[256];
    snprintf(line, sizeof line, "{\"ok\": false, \"error\": \"%s\"}", why);
    reply_all(s, line);
    for (unsigned i = 0; i < s->n_queued; i++) {
        if (s->queued[i] != NULL) {
            sup_control_reply(s->queued[i], line);
        }
    }
    s->n_queued = 0;
    s->reloading = 0;
    for (unsigned i = 0; i < s->c.workers; i++) {
        s->workers[i].rphase = SUP_R_NONE;
    }
}

void sup_reload_forget(struct sup *s, struct sup_client *cl)
{
    for (unsigned i = 0; i < s->n_active; i++) {
        if (s->active[i] == cl) {
            s->active[i] = NULL;
        }
    }
    for (unsigned i = 0; i < s->n_queued; i++) {
        if (s->queued[i] == cl) {
            s->queued[i] = NULL;
        }
    }
}
