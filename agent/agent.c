/* The agent runtime (agent/agent.h): creating and closing an agent, and the
 * standalone agent's main. One libuv loop; the connection is agent/link.c,
 * the result spool agent/spool.c, running units agent/units.c and the
 * executors agent/exec.c. */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "agent/exec.h"
#include "agentproto/aproto.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/fsdir.h"
#include "common/ident.h"
#include "tls/tlink.h"
#include "common/log.h"
#include "common/strmap.h"

/* A relative path made absolute against the working directory now: units
 * run in their own work directories. */
static void make_absolute(char *path, size_t cap)
{
    char cwd[4096], tmp[8200];
    if (path[0] == '\0' || path[0] == '/' || getcwd(cwd, sizeof cwd) == NULL) {
        return;
    }
    snprintf(tmp, sizeof tmp, "%s/%s", cwd, path);
    if (strlen(tmp) < cap) {
        memcpy(path, tmp, strlen(tmp) + 1);
    }
}

int agent_create(uv_loop_t *loop, const struct agent_config *c, struct agent **out, char *errmsg)
{
    struct agent *a;
    ssize_t el;
    if (c->n_join == 0) {
        return fl_errf(errmsg, FL_EINVAL, "an agent needs a server to join");
    }
    if (!aproto_valid_agent_id(c->id)) {
        return fl_errf(errmsg, FL_EINVAL, "agent id \"%s\" is not a valid node name", c->id);
    }
    if (c->creds == NULL) {
        return fl_errf(errmsg, FL_EINVAL,
                       "an agent needs its certificate (--ca, --cert, --cert-key)");
    }
    if (strcmp(c->id, tls_creds_self(c->creds)->name) != 0) {
        return fl_errf(errmsg, FL_EINVAL,
                       "this node is \"%s\" but its certificate names \"%s\": an agent's name is "
                       "the one in its certificate",
                       c->id, tls_creds_self(c->creds)->name);
    }
    a = fl_calloc(1, sizeof *a);
    if (a == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    a->loop = loop;
    a->cfg = *c;
    if (a->cfg.apps_dir[0] == '\0') {
        snprintf(a->cfg.apps_dir, sizeof a->cfg.apps_dir, "%s", AGENT_APPS_DIR);
    }
    make_absolute(a->cfg.apps_dir, sizeof a->cfg.apps_dir);
    make_absolute(a->cfg.tls_ca, sizeof a->cfg.tls_ca);
    make_absolute(a->cfg.tls_cert, sizeof a->cfg.tls_cert);
    make_absolute(a->cfg.tls_key, sizeof a->cfg.tls_key);
    el = readlink("/proc/self/exe", a->exe, sizeof a->exe - 1);
    a->exe[el > 0 ? el : 0] = '\0';
    a->backoff_ms = BACKOFF_MIN_MS;
    snprintf(a->spool_dir, sizeof a->spool_dir, "%s/spool", c->data_dir);
    snprintf(a->work_dir, sizeof a->work_dir, "%s/work", c->data_dir);
    if (fl_mkdir_p(a->spool_dir) != 0 || fl_mkdir_p(a->work_dir) != 0) {
        fl_free(a);
        return fl_errf(errmsg, FL_EIO, "cannot create %s: %s", c->data_dir, strerror(errno));
    }
    {
        int created = 0;
        int rv = fl_ident_load(c->data_dir, a->id_pk, a->id_sk, &created, errmsg);
        if (rv != FL_OK) {
            fl_free(a);
            return rv;
        }
        if (created) {
            char fpr[FL_IDENT_FPR_SIZE];
            fl_ident_fingerprint(a->id_pk, fpr);
            FL_INFO("agent %s: made a new identity key %s/" FL_IDENT_FILE " (public key %s)", c->id,
                    c->data_dir, fpr);
        }
    }
    strmap_init(&a->runs);
    strmap_init(&a->spool);
    if (agent__spool_open(a) != FL_OK) {
        fl_free(a);
        return fl_errf(errmsg, FL_EIO, "cannot open the spool in %s: %s", a->spool_dir,
                       strerror(errno));
    }
    agent__spool_load(a);
    uv_timer_init(loop, &a->reconnect);
    uv_timer_init(loop, &a->heartbeat);
    a->reconnect.data = a;
    a->heartbeat.data = a;
    a->open_handles = 2;
    agent__schedule_reconnect(a, 0);
    *out = a;
    return FL_OK;
}

/* The last handle of a closing agent is gone: free everything. Whichever
 * handle's close callback comes last (libuv does not promise an order)
 * gets here. */
void agent__finish(struct agent *a)
{
    agent__spool_close(a);
    strmap_close(&a->runs);
    if (a->close_cb) {
        a->close_cb(a->close_data);
    }
    fl_free(a);
}

static void timer_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    if (--a->open_handles == 0) {
        agent__finish(a);
    }
}

void agent__runs_gone_close(struct agent *a)
{
    if (a->tcp != NULL) {
        a->open_handles++;
        uv_close((uv_handle_t *)a->tcp, agent__tcp_closed);
        a->tcp = NULL;
    }
    aproto_reader_close(&a->rd);
    tlink_destroy(a->ch);
    a->ch = NULL;
    uv_close((uv_handle_t *)&a->reconnect, timer_closed);
    uv_close((uv_handle_t *)&a->heartbeat, timer_closed);
}

void agent_close(struct agent *a, void (*cb)(void *data), void *data)
{
    size_t i = 0;
    const char *k;
    void *v;
    a->closing = 1;
    a->close_cb = cb;
    a->close_data = data;
    uv_timer_stop(&a->reconnect);
    uv_timer_stop(&a->heartbeat);
    /* Running units are killed; they report through done() into the spool. */
    if (strmap_size(&a->runs) == 0) {
        agent__runs_gone_close(a);
        return;
    }
    while (strmap_next(&a->runs, &i, &k, &v)) {
        exec_cancel(((struct run *)v)->e);
    }
}

/* ---- standalone ---------------------------------------------------------------- */

static void closed_cb(uv_handle_t *h)
{
    (void)h;
}

struct main_ctx {
    struct agent *a;
    struct tls_creds *creds;
    uv_signal_t sigint, sigterm, sighup;
    int stopping;
};

static void agent_gone(void *data)
{
    struct main_ctx *m = data;
    uv_close((uv_handle_t *)&m->sigint, closed_cb);
    uv_close((uv_handle_t *)&m->sigterm, closed_cb);
    uv_close((uv_handle_t *)&m->sighup, closed_cb);
}

/* SIGHUP: the certificate files again, for the next handshake (rotation). */
static void on_sighup(uv_signal_t *h, int sig)
{
    struct main_ctx *m = h->data;
    char err[FL_ERRMSG_SIZE];
    (void)sig;
    if (tls_creds_reload(m->creds, NULL, err) == FL_OK) {
        FL_INFO("agent: SIGHUP: certificates reloaded (%s)", tls_creds_cert_path(m->creds));
    } else {
        FL_WARN("agent: SIGHUP: kept the certificates in use: %s", err);
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    struct main_ctx *m = h->data;
    if (m->stopping) {
        exit(1);
    }
    m->stopping = 1;
    FL_INFO("agent: shutting down");
    agent_close(m->a, agent_gone, m);
}

int agent_main(const struct agent_config *c)
{
    struct main_ctx m;
    char err[FL_ERRMSG_SIZE];
    uv_loop_t *loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    memset(&m, 0, sizeof m);
    fl_log_init(c->id);
    if (agent_create(loop, c, &m.a, err) != FL_OK) {
        fprintf(stderr, "flotilla agent: %s\n", err);
        return 1;
    }
    uv_signal_init(loop, &m.sigint);
    uv_signal_init(loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    m.creds = c->creds;
    uv_signal_init(loop, &m.sighup);
    m.sighup.data = &m;
    uv_signal_start(&m.sighup, on_sighup, SIGHUP);
    FL_INFO("agent %s: cap %u, joining %s", c->id, c->cap, c->join[0]);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
