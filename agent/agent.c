/* The agent runtime (agent/agent.h). One libuv loop; the executors are in
 * agent/exec.c. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/exec.h"
#include "agentproto/aproto.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/ident.h"
#include "common/log.h"
#include "common/schan.h"
#include "common/strmap.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* After a refusal (identity_mismatch, approval_required, ...) nothing changes
 * by retrying at once: back off from 1 s, doubling, up to these. */
#define REFUSED_MIN_MS 1000
#define REFUSED_MAX_MS 30000
#define PENDING_MAX_MS 5000 /* waiting for `flotilla agent approve` */

struct run;

struct agent {
    uv_loop_t *loop;
    struct agent_config cfg;
    char spool_dir[4200];
    char work_dir[4200];
    char exe[4096]; /* this executable, for deploy units ("" if unknown) */

    uv_tcp_t *tcp; /* current connection, NULL if none */
    struct schan *ch; /* its secure channel (docs/SECURITY.md "Links") */
    char server[128]; /* the address it goes to */
    unsigned char id_pk[FL_IDENT_PK_BYTES], id_sk[FL_IDENT_SK_BYTES];
    uv_connect_t connect_req;
    struct aproto_reader rd;
    int connecting;
    int connected;
    int welcomed;
    unsigned join_next;
    char redirect[128];
    uint64_t heartbeat_seq;
    unsigned backoff_ms;
    unsigned refused_ms; /* 0, or the current delay after a refusal */

    uv_timer_t reconnect;
    uv_timer_t heartbeat;
    struct strmap runs; /* "task/unit" -> struct run */
    struct strmap spool; /* unit ref -> struct spooled: results not yet acknowledged */
    int spool_fd;
    int closing;
    int open_handles;
    void (*close_cb)(void *data);
    void *close_data;
};

struct run {
    struct agent *a;
    struct aproto_unit_ref ref;
    struct exec *e;
    char workdir[4300];
    uint64_t started_ms;
    char key[64];
    uint64_t offsets[3];
};

struct write_req {
    uv_write_t req;
    uint8_t *data;
};

static void start_connect(struct agent *a);
static void runs_gone_close(struct agent *a);

/* ---- sending -------------------------------------------------------------- */

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    fl_free(w->data);
    fl_free(w);
}

/* Write bytes already on the wire format (the buffer is taken over). */
static int write_raw(struct agent *a, struct fl_buf *b)
{
    struct write_req *w;
    uv_buf_t buf;
    if (a->tcp == NULL || b->len == 0) {
        return a->tcp == NULL ? FL_ENET : FL_OK;
    }
    w = fl_malloc(sizeof *w);
    if (w == NULL) {
        return FL_ENOMEM;
    }
    buf.len = b->len;
    w->data = fl_buf_steal(b, NULL);
    buf.base = (char *)w->data;
    if (uv_write(&w->req, (uv_stream_t *)a->tcp, &buf, 1, write_done) != 0) {
        fl_free(w->data);
        fl_free(w);
        return FL_ENET;
    }
    return FL_OK;
}

/* Send protocol bytes through the secure channel. */
static int send_bytes(struct agent *a, const uint8_t *p, size_t n)
{
    struct fl_buf wire;
    int rv;
    if (!a->connected || a->tcp == NULL || a->ch == NULL || schan_state(a->ch) != SCHAN_OPEN) {
        return FL_ENET;
    }
    fl_buf_init(&wire);
    rv = schan_send(a->ch, p, n, &wire);
    if (rv == FL_OK) {
        rv = write_raw(a, &wire);
    }
    fl_buf_close(&wire);
    return rv;
}

static int send_msg(struct agent *a, const struct aproto_msg *m)
{
    struct fl_buf b;
    char err[FL_ERRMSG_SIZE];
    int rv;
    fl_buf_init(&b);
    rv = aproto_encode_ex(m, APROTO_FRAME_LIMIT, &b, err);
    if (rv != FL_OK) {
        FL_WARN("agent: cannot encode %s: %s", aproto_type_name(m->type), err);
    } else {
        rv = send_bytes(a, b.data, b.len);
    }
    fl_buf_close(&b);
    return rv;
}

/* ---- spool ----------------------------------------------------------------
 *
 * Every DONE frame is appended to DIR/spool/results.log before it is sent and
 * kept in memory until the leader acknowledges its commit. When nothing is
 * waiting for an acknowledgement the log is truncated. At start the log is
 * read back: every frame in it is sent again after WELCOME (a result that was
 * in fact committed comes back as stale and changes nothing). One file,
 * appended and truncated, instead of a file per unit: creating and deleting
 * tens of thousands of files a second is what a busy agent would otherwise
 * spend its time on. */

struct spooled {
    uint8_t *frame;
    size_t len;
};

static void spool_key(const struct aproto_unit_ref *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%u/%u/%llu", r->task_id, r->unit, r->attempt,
             (unsigned long long)r->token);
}

static int spool_open(struct agent *a)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/results.log", a->spool_dir);
    a->spool_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    return a->spool_fd >= 0 ? FL_OK : FL_EIO;
}

static void spool_write(struct agent *a, const struct aproto_unit_ref *r, const uint8_t *p,
                        size_t n)
{
    char key[96];
    struct spooled *sp = fl_malloc(sizeof *sp);
    void *old = NULL;
    if (sp == NULL || (sp->frame = fl_malloc(n)) == NULL) {
        fl_free(sp);
        FL_ERROR("agent: out of memory spooling a result");
        return;
    }
    memcpy(sp->frame, p, n);
    sp->len = n;
    /* The frame carries its own length header: the log is a frame stream. */
    if (a->spool_fd < 0 || write(a->spool_fd, p, n) != (ssize_t)n) {
        FL_ERROR("agent: spooling the result of %s/%u: %s", r->task_id, r->unit, strerror(errno));
    }
    spool_key(r, key, sizeof key);
    strmap_put(&a->spool, key, sp, &old);
    if (old != NULL) {
        fl_free(((struct spooled *)old)->frame);
        fl_free(old);
    }
}

static void spool_drop(struct agent *a, const struct aproto_unit_ref *r)
{
    char key[96];
    struct spooled *sp;
    spool_key(r, key, sizeof key);
    sp = strmap_del(&a->spool, key);
    if (sp != NULL) {
        fl_free(sp->frame);
        fl_free(sp);
    }
    if (strmap_size(&a->spool) == 0 && a->spool_fd >= 0 && ftruncate(a->spool_fd, 0) != 0) {
        FL_WARN("agent: truncating the spool: %s", strerror(errno));
    }
}

/* Read back what a previous run left in the log. */
static void spool_load(struct agent *a)
{
    struct aproto_reader rd;
    uint8_t buf[65536];
    ssize_t n;
    unsigned count = 0;
    if (lseek(a->spool_fd, 0, SEEK_SET) < 0) {
        return;
    }
    aproto_reader_init(&rd, APROTO_FRAME_LIMIT);
    while ((n = read(a->spool_fd, buf, sizeof buf)) > 0) {
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used = 0;
            int rv = aproto_reader_feed(&rd, buf + off, (size_t)n - off, &used);
            off += used;
            if (rv != FL_OK && rv != APROTO_NEED_MORE) {
                goto done; /* a torn last frame: stop there */
            }
            for (;;) {
                struct aproto_msg m;
                struct fl_buf b;
                rv = aproto_reader_next(&rd, &m);
                if (rv == APROTO_NEED_MORE) {
                    break;
                }
                if (rv != FL_OK) {
                    continue;
                }
                if (m.type == APROTO_DONE) {
                    fl_buf_init(&b);
                    if (aproto_encode(&m, &b) == FL_OK) {
                        int fd = a->spool_fd;
                        a->spool_fd = -1; /* already in the log: memory only */
                        spool_write(a, &m.u.done.ref, b.data, b.len);
                        a->spool_fd = fd;
                        count++;
                    }
                    fl_buf_close(&b);
                }
                aproto_msg_close(&m);
            }
        }
    }
done:
    aproto_reader_close(&rd);
    if (count > 0) {
        FL_INFO("agent: %u results from before the restart await acknowledgement", count);
    }
}

/* Send every result still waiting for an acknowledgement (after WELCOME). */
static void spool_resend(struct agent *a)
{
    size_t i = 0;
    const char *k;
    void *v;
    unsigned n = 0;
    while (strmap_next(&a->spool, &i, &k, &v)) {
        struct spooled *sp = v;
        send_bytes(a, sp->frame, sp->len);
        n++;
    }
    if (n > 0) {
        FL_INFO("agent: sent %u spooled results again", n);
    }
}

/* ---- running units ----------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* A unit's work directory goes when the unit is over. */
static void remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void run_started(void *data, int pid)
{
    struct run *r = data;
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_STARTED);
    m.u.started.ref = r->ref;
    m.u.started.pid = pid;
    send_msg(r->a, &m);
}

static void run_log(void *data, const char *host, int stream, uint64_t offset, const uint8_t *p,
                    size_t n)
{
    struct run *r = data;
    struct aproto_msg m;
    while (n > 0) {
        size_t chunk = n > APROTO_LOG_DATA_MAX ? APROTO_LOG_DATA_MAX : n;
        aproto_msg_init(&m, APROTO_LOG);
        m.u.log.ref = r->ref;
        m.u.log.host = host ? host : "";
        m.u.log.stream = (uint8_t)(stream == 2 ? APROTO_STDERR : APROTO_STDOUT);
        m.u.log.offset = offset;
        m.u.log.data = p;
        m.u.log.data_len = (uint32_t)chunk;
        if (send_msg(r->a, &m) != FL_OK) {
            return; /* not connected: the tail in DONE still carries the end */
        }
        p += chunk;
        n -= chunk;
        offset += chunk;
    }
}

static void run_done(void *data, int status, int exit_code, const struct exec_host_result *res,
                     unsigned n)
{
    struct run *r = data;
    struct agent *a = r->a;
    struct aproto_msg m;
    struct aproto_host_result stack[64], *hr = stack;
    struct fl_buf b;
    char err[FL_ERRMSG_SIZE];

    if (n > 64) {
        hr = fl_malloc(sizeof *hr * n);
        if (hr == NULL) {
            n = 0;
            hr = stack;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        hr[i].host = res[i].host;
        hr[i].status = (uint8_t)res[i].status;
        hr[i].rc = res[i].rc;
        hr[i].tail = (const uint8_t *)res[i].tail;
        hr[i].tail_len = (uint32_t)(res[i].tail_len > APROTO_TAIL_MAX ? APROTO_TAIL_MAX
                                                                      : res[i].tail_len);
        if (res[i].tail_len > APROTO_TAIL_MAX) {
            hr[i].tail = (const uint8_t *)res[i].tail + res[i].tail_len - APROTO_TAIL_MAX;
        }
    }
    aproto_msg_init(&m, APROTO_DONE);
    m.u.done.ref = r->ref;
    m.u.done.status = (uint8_t)status;
    m.u.done.exit_code = exit_code;
    m.u.done.started_ms = r->started_ms;
    m.u.done.finished_ms = fl_wall_ms();
    m.u.done.n_results = n;
    m.u.done.results = hr;
    fl_buf_init(&b);
    if (aproto_encode_ex(&m, APROTO_FRAME_LIMIT, &b, err) == FL_OK) {
        /* On disk before it leaves: dropped only once the leader acknowledges. */
        spool_write(a, &r->ref, b.data, b.len);
        send_bytes(a, b.data, b.len);
    } else {
        FL_ERROR("agent: result of %s/%u does not encode: %s", r->ref.task_id, r->ref.unit, err);
    }
    fl_buf_close(&b);
    if (hr != stack) {
        fl_free(hr);
    }
    if (strmap_get(&a->runs, r->key) == r) {
        strmap_del(&a->runs, r->key);
    }
    exec_free(r->e);
    remove_tree(r->workdir);
    fl_free(r);
    if (a->closing && strmap_size(&a->runs) == 0) {
        runs_gone_close(a);
    }
}

static void on_run(struct agent *a, const struct aproto_run *run)
{
    struct exec_spec spec;
    struct exec_callbacks cb = {run_started, run_log, run_done};
    struct run *r;
    struct agent_deploy_cmd deploy;
    char key[64], workdir[4300], err[FL_ERRMSG_SIZE], refuse[FL_ERRMSG_SIZE];
    const char **env = NULL, **argv = NULL, **vars = NULL;
    struct run *cur;
    struct fl_buf hostsvar;

    snprintf(key, sizeof key, "%s/%u", run->ref.task_id, run->ref.unit);
    cur = strmap_get(&a->runs, key);
    if (cur != NULL) {
        if (cur->ref.token == run->ref.token) {
            return; /* a repeated RUN */
        }
        exec_cancel(cur->e); /* superseded by a newer assignment */
    }
    r = fl_calloc(1, sizeof *r);
    env = fl_calloc(run->n_env + 2, sizeof *env);
    /* The executor takes NULL-terminated lists; the protocol gives counts. */
    argv = fl_calloc(run->argc + 1, sizeof *argv);
    vars = fl_calloc(run->n_vars + 1, sizeof *vars);
    fl_buf_init(&hostsvar);
    if (r == NULL || env == NULL || argv == NULL || vars == NULL) {
        fl_free(r);
        fl_free(env);
        fl_free(argv);
        fl_free(vars);
        return;
    }
    for (uint32_t i = 0; i < run->argc; i++) {
        argv[i] = run->argv[i];
    }
    for (uint32_t i = 0; i < run->n_vars; i++) {
        vars[i] = run->inventory_vars[i];
    }
    for (uint32_t i = 0; i < run->n_env; i++) {
        env[i] = run->env[i];
    }
    /* FLOTILLA_HOSTS: the unit's hosts, comma-separated. */
    fl_buf_append(&hostsvar, "FLOTILLA_HOSTS=", 15);
    for (uint32_t i = 0; i < run->n_hosts; i++) {
        if (i > 0) {
            fl_buf_append(&hostsvar, ",", 1);
        }
        fl_buf_append(&hostsvar, run->hosts[i], strlen(run->hosts[i]));
    }
    env[run->n_env] = hostsvar.data ? (const char *)hostsvar.data : "FLOTILLA_HOSTS=";
    r->a = a;
    r->ref = run->ref;
    r->started_ms = fl_wall_ms();
    snprintf(r->key, sizeof r->key, "%s", key);
    snprintf(workdir, sizeof workdir, "%s/%s-%u-%u", a->work_dir, run->ref.task_id, run->ref.unit,
             run->ref.attempt);
    memcpy(r->workdir, workdir, sizeof r->workdir);
    memset(&spec, 0, sizeof spec);
    spec.kind = run->kind;
    spec.hosts = run->hosts;
    spec.n_hosts = run->n_hosts;
    spec.argv = argv;
    spec.script = run->script;
    spec.module = run->module;
    spec.module_args = run->module_args;
    spec.playbook = run->playbook;
    spec.sleep_ms = run->sleep_ms;
    spec.timeout_ms = run->timeout_ms;
    spec.kill_grace_ms = run->kill_grace_ms;
    spec.env = env;
    spec.inventory_vars = vars;
    spec.workdir = workdir;
    if (run->kind == APROTO_EXEC_DEPLOY) {
        /* This machine's own deploy-target, with what only the agent has. */
        if (agent_deploy_argv(&a->cfg, a->exe, run->argv, run->argc, run->env, run->n_env,
                              &deploy, refuse) == FL_OK) {
            spec.argv = deploy.argv;
            FL_INFO("agent %s: unit %s deploys %s", a->cfg.id, key, run->argv[0]);
        } else {
            spec.refuse = refuse;
            FL_WARN("agent %s: unit %s not run: %s", a->cfg.id, key, refuse);
        }
    }
    if (strmap_put(&a->runs, key, r, NULL) != FL_OK ||
        exec_start(a->loop, &spec, &cb, r, &r->e, err) != FL_OK) {
        struct aproto_host_result hr[1];
        struct aproto_msg m;
        struct fl_buf b;
        strmap_del(&a->runs, key);
        FL_WARN("agent: unit %s does not start: %s", key, err);
        /* Report it as an error for every host, through the spool as usual. */
        aproto_msg_init(&m, APROTO_DONE);
        m.u.done.ref = run->ref;
        m.u.done.status = APROTO_ST_ERROR;
        m.u.done.exit_code = -1;
        m.u.done.started_ms = m.u.done.finished_ms = fl_wall_ms();
        hr[0].host = run->n_hosts ? run->hosts[0] : "";
        (void)hr;
        fl_buf_init(&b);
        if (aproto_encode(&m, &b) == FL_OK) {
            spool_write(a, &run->ref, b.data, b.len);
            send_bytes(a, b.data, b.len);
        }
        fl_buf_close(&b);
        fl_free(r);
    }
    fl_free(env);
    fl_free(argv);
    fl_free(vars);
    fl_buf_close(&hostsvar);
}

static void on_cancel(struct agent *a, const struct aproto_cancel *c)
{
    char key[64];
    struct run *r;
    snprintf(key, sizeof key, "%s/%u", c->ref.task_id, c->ref.unit);
    r = strmap_get(&a->runs, key);
    if (r != NULL && (c->ref.token == 0 || r->ref.token == c->ref.token)) {
        exec_cancel(r->e);
    }
}

/* ---- connection ------------------------------------------------------------- */

static void send_hello(struct agent *a)
{
    struct aproto_msg m;
    struct aproto_unit_ref *refs = NULL;
    const char *labels[AGENT_LABELS_MAX];
    unsigned char binding[SCHAN_BINDING_BYTES], auth[FL_IDENT_AUTH_BYTES];
    size_t i = 0;
    const char *k;
    void *v;
    uint32_t n = 0;
    refs = fl_calloc(strmap_size(&a->runs) + 1, sizeof *refs);
    if (refs == NULL) {
        return;
    }
    while (strmap_next(&a->runs, &i, &k, &v) && n < APROTO_RUNNING_MAX) {
        refs[n++] = ((struct run *)v)->ref;
    }
    for (unsigned j = 0; j < a->cfg.n_labels; j++) {
        labels[j] = a->cfg.labels[j];
    }
    /* Proof of the agent's identity key, bound to this session. */
    if (schan_binding(a->ch, binding) == FL_OK) {
        fl_ident_hello_sign(a->id_sk, binding, a->cfg.id, auth);
    }
    aproto_msg_init(&m, APROTO_HELLO);
    m.u.hello.auth = auth;
    m.u.hello.auth_len = sizeof auth;
    m.u.hello.agent_id = a->cfg.id;
    m.u.hello.version = "flotilla-0.1.0";
    m.u.hello.cap = a->cfg.cap;
    m.u.hello.n_labels = a->cfg.n_labels;
    m.u.hello.labels = labels;
    m.u.hello.n_running = n;
    m.u.hello.running = refs;
    send_msg(a, &m);
    fl_free(refs);
}

static void agent_finish(struct agent *a);

static void tcp_closed(uv_handle_t *h)
{
    struct agent *a = h->data;
    fl_free(h);
    if (--a->open_handles == 0 && a->closing) {
        agent_finish(a);
    }
}

static void reconnect_cb(uv_timer_t *h)
{
    start_connect(h->data);
}

static void schedule_reconnect(struct agent *a, unsigned delay)
{
    if (a->closing) {
        return;
    }
    uv_timer_start(&a->reconnect, reconnect_cb, delay, 0);
}

static void disconnect(struct agent *a, const char *why, unsigned delay)
{
    if (a->tcp != NULL) {
        if (a->welcomed) {
            FL_INFO("agent %s: disconnected: %s", a->cfg.id, why);
        }
        a->tcp->data = a;
        a->open_handles++;
        uv_close((uv_handle_t *)a->tcp, tcp_closed);
        a->tcp = NULL;
    }
    aproto_reader_close(&a->rd);
    schan_destroy(a->ch);
    a->ch = NULL;
    a->connected = a->welcomed = a->connecting = 0;
    uv_timer_stop(&a->heartbeat);
    schedule_reconnect(a, delay);
}

static void heartbeat_cb(uv_timer_t *h)
{
    struct agent *a = h->data;
    struct aproto_msg m;
    aproto_msg_init(&m, APROTO_HEARTBEAT);
    m.u.heartbeat.seq = ++a->heartbeat_seq;
    m.u.heartbeat.running = (uint32_t)strmap_size(&a->runs);
    send_msg(a, &m);
}

static void on_message(struct agent *a, struct aproto_msg *m)
{
    switch (m->type) {
    case APROTO_WELCOME:
        if (m->u.welcome.accepted) {
            FL_INFO("agent %s: connected to the leader", a->cfg.id);
            a->welcomed = 1;
            a->backoff_ms = BACKOFF_MIN_MS;
            a->refused_ms = 0;
            a->redirect[0] = '\0';
            uv_timer_start(&a->heartbeat, heartbeat_cb, m->u.welcome.heartbeat_ms,
                           m->u.welcome.heartbeat_ms ? m->u.welcome.heartbeat_ms : 1000);
            spool_resend(a);
        } else {
            snprintf(a->redirect, sizeof a->redirect, "%s",
                     m->u.welcome.leader ? m->u.welcome.leader : "");
            disconnect(a, "redirected", a->redirect[0] ? 0 : a->backoff_ms);
        }
        break;
    case APROTO_RUN:
        on_run(a, &m->u.run);
        break;
    case APROTO_CANCEL:
        on_cancel(a, &m->u.cancel);
        break;
    case APROTO_ACK:
        spool_drop(a, &m->u.ack.ref);
        break;
    case APROTO_HEARTBEAT:
        break;
    case APROTO_ERROR: {
        int pending = m->u.error.code != NULL && strcmp(m->u.error.code, "approval_required") == 0;
        unsigned cap = pending ? PENDING_MAX_MS : REFUSED_MAX_MS;
        a->refused_ms = a->refused_ms == 0 ? REFUSED_MIN_MS
                        : a->refused_ms >= cap / 2 ? cap
                                                   : a->refused_ms * 2;
        a->backoff_ms = a->refused_ms; /* used when the server closes the link */
        FL_WARN("agent %s: server says %s: %s (next attempt in %u ms)", a->cfg.id,
                m->u.error.code, m->u.error.message, a->refused_ms);
        break;
    }
    default:
        break;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[65536];
    buf->base = slab;
    buf->len = sizeof slab;
}

/* Decrypted protocol bytes: frames and messages. */
static void on_plain(struct agent *a, const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len && a->tcp != NULL) {
        size_t used = 0;
        int rv = aproto_reader_feed(&a->rd, p + off, len - off, &used);
        off += used;
        if (rv != FL_OK && rv != APROTO_NEED_MORE) {
            disconnect(a, a->rd.errmsg, a->backoff_ms);
            return;
        }
        while (a->tcp != NULL) {
            struct aproto_msg m;
            rv = aproto_reader_next(&a->rd, &m);
            if (rv == APROTO_NEED_MORE) {
                break;
            }
            if (rv != FL_OK) {
                FL_WARN("agent %s: bad frame from the server: %s", a->cfg.id, a->rd.errmsg);
                if (rv == FL_ETOOBIG) {
                    disconnect(a, "bad frame", a->backoff_ms);
                    return;
                }
                continue;
            }
            on_message(a, &m);
            aproto_msg_close(&m);
        }
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct agent *a = s->data;
    struct fl_buf wire, plain;
    int was_open, rv;
    if (nread == 0 || a->ch == NULL) {
        return;
    }
    if (nread < 0) {
        if (schan_state(a->ch) != SCHAN_OPEN) {
            FL_WARN("agent %s: %s closed the connection during the secure handshake "
                    "(a different cluster key? see its log)",
                    a->cfg.id, a->server);
        }
        disconnect(a, nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread),
                   a->backoff_ms);
        return;
    }
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    was_open = schan_state(a->ch) == SCHAN_OPEN;
    rv = schan_recv(a->ch, (const uint8_t *)buf->base, (size_t)nread, &wire, &plain);
    if (rv != FL_OK) {
        FL_WARN("agent %s: secure channel to %s: %s", a->cfg.id, a->server, schan_errmsg(a->ch));
        disconnect(a, "secure channel failed", a->backoff_ms);
    } else {
        write_raw(a, &wire);
        if (!was_open && schan_state(a->ch) == SCHAN_OPEN) {
            send_hello(a);
        }
        on_plain(a, plain.data, plain.len);
    }
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

/* The handshake's first message; HELLO follows once the channel is open. */
static int start_channel(struct agent *a)
{
    struct schan_config c;
    struct fl_buf wire;
    char err[FL_ERRMSG_SIZE];
    int rv;
    memset(&c, 0, sizeof c);
    c.key = a->cfg.key;
    c.link = SCHAN_LINK_AGENT;
    c.self.role = SCHAN_ROLE_AGENT;
    snprintf(c.self.name, sizeof c.self.name, "%s", a->cfg.id);
    c.expect.role = SCHAN_ROLE_SERVER;
    c.max_frame = APROTO_MAX_FRAME + APROTO_HEADER_SIZE;
    rv = schan_create(&c, 1, &a->ch, err);
    if (rv != FL_OK) {
        FL_ERROR("agent %s: %s", a->cfg.id, err);
        return rv;
    }
    fl_buf_init(&wire);
    rv = schan_start(a->ch, &wire);
    if (rv == FL_OK) {
        rv = write_raw(a, &wire);
    }
    fl_buf_close(&wire);
    return rv;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct agent *a = req->data;
    a->connecting = 0;
    if (a->closing) {
        return;
    }
    if (status != 0) {
        a->connected = 0;
        disconnect(a, uv_strerror(status), a->backoff_ms);
        if (a->backoff_ms < BACKOFF_MAX_MS) {
            a->backoff_ms *= 2;
        }
        return;
    }
    a->connected = 1;
    uv_tcp_nodelay(a->tcp, 1);
    a->tcp->data = a;
    if (start_channel(a) != FL_OK) {
        disconnect(a, "cannot start the secure channel", a->backoff_ms);
        return;
    }
    uv_read_start((uv_stream_t *)a->tcp, alloc_cb, read_cb);
}

static void start_connect(struct agent *a)
{
    struct sockaddr_in sa;
    char host[128], target[128];
    const char *addr, *colon;
    if (a->closing || a->connecting || a->tcp != NULL) {
        return;
    }
    if (a->redirect[0]) {
        snprintf(target, sizeof target, "%s", a->redirect);
        a->redirect[0] = '\0';
    } else {
        snprintf(target, sizeof target, "%s", a->cfg.join[a->join_next++ % a->cfg.n_join]);
    }
    addr = target;
    snprintf(a->server, sizeof a->server, "%s", target);
    colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
        schedule_reconnect(a, a->backoff_ms);
        return;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (uv_ip4_addr(host, atoi(colon + 1), &sa) != 0) {
        schedule_reconnect(a, a->backoff_ms);
        return;
    }
    a->tcp = fl_calloc(1, sizeof *a->tcp);
    if (a->tcp == NULL) {
        schedule_reconnect(a, a->backoff_ms);
        return;
    }
    uv_tcp_init(a->loop, a->tcp);
    aproto_reader_init(&a->rd, APROTO_FRAME_LIMIT);
    a->connecting = 1;
    a->connect_req.data = a;
    if (uv_tcp_connect(&a->connect_req, a->tcp, (const struct sockaddr *)&sa, connect_cb) != 0) {
        a->connecting = 0;
        disconnect(a, "connect failed", a->backoff_ms);
    }
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int mkdir_p(const char *path)
{
    char tmp[4400];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) {
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *s = tmp + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return -1;
            }
            *s = '/';
        }
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

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

int agent_create(uv_loop_t *loop, const struct agent_config *c, struct agent **out,
                 char *errmsg)
{
    struct agent *a;
    ssize_t el;
    if (c->n_join == 0) {
        return fl_errf(errmsg, FL_EINVAL, "an agent needs a server to join");
    }
    if (!aproto_valid_agent_id(c->id)) {
        return fl_errf(errmsg, FL_EINVAL, "agent id \"%s\" is not a valid node name", c->id);
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
    make_absolute(a->cfg.key_file, sizeof a->cfg.key_file);
    el = readlink("/proc/self/exe", a->exe, sizeof a->exe - 1);
    a->exe[el > 0 ? el : 0] = '\0';
    a->backoff_ms = BACKOFF_MIN_MS;
    snprintf(a->spool_dir, sizeof a->spool_dir, "%s/spool", c->data_dir);
    snprintf(a->work_dir, sizeof a->work_dir, "%s/work", c->data_dir);
    if (mkdir_p(a->spool_dir) != 0 || mkdir_p(a->work_dir) != 0) {
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
            FL_INFO("agent %s: made a new identity key %s/" FL_IDENT_FILE " (public key %s)",
                    c->id, c->data_dir, fpr);
        }
    }
    strmap_init(&a->runs);
    strmap_init(&a->spool);
    if (spool_open(a) != FL_OK) {
        fl_free(a);
        return fl_errf(errmsg, FL_EIO, "cannot open the spool in %s: %s", a->spool_dir,
                       strerror(errno));
    }
    spool_load(a);
    uv_timer_init(loop, &a->reconnect);
    uv_timer_init(loop, &a->heartbeat);
    a->reconnect.data = a;
    a->heartbeat.data = a;
    a->open_handles = 2;
    schedule_reconnect(a, 0);
    *out = a;
    return FL_OK;
}

/* The last handle of a closing agent is gone: free everything. Whichever
 * handle's close callback comes last (libuv does not promise an order)
 * gets here. */
static void agent_finish(struct agent *a)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(&a->spool, &i, &k, &v)) {
        fl_free(((struct spooled *)v)->frame);
        fl_free(v);
    }
    strmap_close(&a->spool);
    if (a->spool_fd >= 0) {
        close(a->spool_fd);
    }
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
        agent_finish(a);
    }
}

static void runs_gone_close(struct agent *a)
{
    if (a->tcp != NULL) {
        a->open_handles++;
        uv_close((uv_handle_t *)a->tcp, tcp_closed);
        a->tcp = NULL;
    }
    aproto_reader_close(&a->rd);
    schan_destroy(a->ch);
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
        runs_gone_close(a);
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
    uv_signal_t sigint, sigterm;
    int stopping;
};

static void agent_gone(void *data)
{
    struct main_ctx *m = data;
    uv_close((uv_handle_t *)&m->sigint, closed_cb);
    uv_close((uv_handle_t *)&m->sigterm, closed_cb);
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
    FL_INFO("agent %s: cap %u, joining %s", c->id, c->cap, c->join[0]);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
