/* deploy/supervise — the control socket: one command per line, one JSON
 * line per reply (deploy/supervise.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "common/alloc.h"
#include "common/err.h"
#include "deploy/deploy_int.h"
#include "deploy/sup_int.h"

struct reply {
    uv_write_t req;
    char *data;
};

static void on_written(uv_write_t *req, int status)
{
    struct reply *r = (struct reply *)req;
    (void)status;
    fl_free(r->data);
    fl_free(r);
}

void sup_control_reply(struct sup_client *cl, const char *json_line)
{
    struct reply *r;
    uv_buf_t b;
    size_t n = strlen(json_line);
    if (cl->closing) {
        return;
    }
    r = fl_malloc(sizeof *r);
    if (r == NULL || (r->data = fl_malloc(n + 1)) == NULL) {
        fl_free(r);
        return;
    }
    memcpy(r->data, json_line, n);
    r->data[n] = '\n';
    b = uv_buf_init(r->data, (unsigned)n + 1);
    if (uv_write(&r->req, (uv_stream_t *)&cl->pipe, &b, 1, on_written) != 0) {
        fl_free(r->data);
        fl_free(r);
    }
}

static const char *state_name(const struct sup_worker *w)
{
    if (w->rphase == SUP_R_STOPPING) {
        return "reloading";
    }
    switch (w->state) {
    case SUP_W_RUNNING:
        return "running";
    case SUP_W_BACKOFF:
        return "backoff";
    default:
        return "stopped";
    }
}

static json_t *worker_json(const struct sup_worker *w)
{
    json_t *j = json_pack("{s:I, s:I, s:s, s:s, s:I, s:I}", "worker", (json_int_t)w->id, "pid",
                          (json_int_t)(w->state == SUP_W_RUNNING && w->run ? w->run->pid : 0),
                          "release", w->release, "state", state_name(w), "started_ms",
                          (json_int_t)w->started_ms, "restarts", (json_int_t)w->restarts);
    if (j != NULL && w->ever_exited) {
        json_object_set_new(
            j, "last_exit",
            json_pack("{s:i, s:i}", "code", w->last_code, "signal", w->last_signal));
    }
    return j;
}

static void status(struct sup_client *cl)
{
    struct sup *s = cl->s;
    char cur[DEPLOY_VERSION_MAX], *line;
    json_t *workers = json_array(), *j;
    sup_current(s, cur);
    for (unsigned i = 0; i < s->c.workers; i++) {
        json_array_append_new(workers, worker_json(&s->workers[i]));
    }
    j = json_pack("{s:b, s:s, s:I, s:s, s:b, s:b, s:o}", "ok", 1, "app", s->c.app, "pid",
                  (json_int_t)getpid(), "current", cur, "stopping", s->stopping, "reloading",
                  s->reloading, "workers", workers);
    line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    sup_control_reply(cl, line ? line : "{\"ok\": false, \"error\": \"out of memory\"}");
    free(line);
    json_decref(j);
}

static void command(struct sup_client *cl, char *line)
{
    char reply[600];
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) {
        line[--n] = '\0';
    }
    while (*line == ' ' || *line == '\t') {
        line++;
    }
    if (strcmp(line, "status") == 0) {
        status(cl);
    } else if (strcmp(line, "reload") == 0) {
        sup_reload_request(cl);
    } else if (*line != '\0') {
        json_t *j = json_pack("{s:b, s:s}", "ok", 0, "error", "unknown command (status, reload)");
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        snprintf(reply, sizeof reply, "%s", s ? s : "{\"ok\": false}");
        sup_control_reply(cl, reply);
        free(s);
        json_decref(j);
    }
}

static void client_closed(uv_handle_t *h)
{
    struct sup_client *cl = h->data, **pp;
    for (pp = &cl->s->clients; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    }
    fl_free(cl);
}

static void client_close(struct sup_client *cl)
{
    if (!cl->closing) {
        cl->closing = 1;
        sup_reload_forget(cl->s, cl);
        uv_close((uv_handle_t *)&cl->pipe, client_closed);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sup_client *cl = h->data;
    (void)suggested;
    buf->base = cl->buf + cl->len;
    buf->len = sizeof cl->buf - cl->len;
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    struct sup_client *cl = h->data;
    char *nl;
    (void)buf;
    if (n < 0) {
        client_close(cl);
        return;
    }
    cl->len += (size_t)n;
    while ((nl = memchr(cl->buf, '\n', cl->len)) != NULL) {
        size_t used = (size_t)(nl - cl->buf) + 1;
        *nl = '\0';
        command(cl, cl->buf);
        memmove(cl->buf, cl->buf + used, cl->len - used);
        cl->len -= used;
    }
    if (cl->len == sizeof cl->buf) {
        sup_control_reply(cl, "{\"ok\": false, \"error\": \"line too long\"}");
        client_close(cl);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct sup *s = server->data;
    struct sup_client *cl;
    if (status != 0 || s->closed || (cl = fl_calloc(1, sizeof *cl)) == NULL) {
        return;
    }
    cl->s = s;
    uv_pipe_init(&s->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    cl->next = s->clients;
    s->clients = cl;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0 ||
        uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) != 0) {
        client_close(cl);
    }
}

/* A socket file left by a supervise that died is removed; one with a live
 * listener is not (FL_EEXIST). */
static int clear_stale(const char *path, char *errmsg)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, live;
    if (lstat(path, &st) != 0) {
        return FL_OK;
    }
    if (!S_ISSOCK(st.st_mode)) {
        return fl_errf(errmsg, FL_EEXIST, "control socket %s exists and is not a socket", path);
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0) {
        close(fd);
    }
    if (live) {
        return fl_errf(errmsg, FL_EEXIST, "another supervise is listening on %s", path);
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        return deploy__errno(errmsg, errno, "remove stale socket", path);
    }
    return FL_OK;
}

static int control_path(struct sup *s, char *errmsg)
{
    int n;
    if (s->c.control[0] != '\0') {
        n = snprintf(s->ctl_path, sizeof s->ctl_path, "%s", s->c.control);
    } else {
        n = snprintf(s->ctl_path, sizeof s->ctl_path, "%s/supervise.sock", s->c.root);
    }
    if (n < 0 || n >= (int)sizeof s->ctl_path) {
        return fl_errf(errmsg, FL_ETOOBIG,
                       "control socket path longer than %zu bytes (give a "
                       "shorter --control)",
                       sizeof s->ctl_path - 1);
    }
    return FL_OK;
}

int sup_control_open(struct sup *s, char *errmsg)
{
    int rv;
    if ((rv = control_path(s, errmsg)) != FL_OK ||
        (rv = clear_stale(s->ctl_path, errmsg)) != FL_OK) {
        return rv;
    }
    uv_pipe_init(&s->loop, &s->ctl, 0);
    s->ctl.data = s;
    if ((rv = uv_pipe_bind(&s->ctl, s->ctl_path)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&s->ctl, 64, on_connection)) != 0) {
        uv_close((uv_handle_t *)&s->ctl, NULL);
        return fl_errf(errmsg, FL_EIO, "control socket %s: %s", s->ctl_path, uv_strerror(rv));
    }
    (void)chmod(s->ctl_path, 0600);
    return FL_OK;
}

void sup_control_close(struct sup *s)
{
    if (s->ctl.loop != NULL && !uv_is_closing((uv_handle_t *)&s->ctl)) {
        uv_close((uv_handle_t *)&s->ctl, NULL);
        (void)unlink(s->ctl_path);
    }
    for (struct sup_client *cl = s->clients; cl != NULL; cl = cl->next) {
        client_close(cl);
    }
}
