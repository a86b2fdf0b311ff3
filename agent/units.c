/* The agent's running units (agent/agent_int.h): a RUN becomes an executor
 * (agent/exec.h) in its own work directory, keyed "task/unit" in the agent's
 * runs; what the unit does goes back to the leader as STARTED, LOG and DONE,
 * each DONE through the spool (agent/spool.c). A CANCEL kills the unit. */
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/agent_int.h"
#include "agent/exec.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/strmap.h"

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
    agent__send_msg(r->a, &m);
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
        if (agent__send_msg(r->a, &m) != FL_OK) {
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
        hr[i].tail_len =
            (uint32_t)(res[i].tail_len > APROTO_TAIL_MAX ? APROTO_TAIL_MAX : res[i].tail_len);
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
        agent__spool_write(a, &r->ref, b.data, b.len);
        agent__send_bytes(a, b.data, b.len);
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
        agent__runs_gone_close(a);
    }
}

void agent__on_run(struct agent *a, const struct aproto_run *run)
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
        if (agent_deploy_argv(&a->cfg, a->exe, run->argv, run->argc, run->env, run->n_env, &deploy,
                              refuse) == FL_OK) {
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
            agent__spool_write(a, &run->ref, b.data, b.len);
            agent__send_bytes(a, b.data, b.len);
        }
        fl_buf_close(&b);
        fl_free(r);
    }
    fl_free(env);
    fl_free(argv);
    fl_free(vars);
    fl_buf_close(&hostsvar);
}

void agent__on_cancel(struct agent *a, const struct aproto_cancel *c)
{
    char key[64];
    struct run *r;
    snprintf(key, sizeof key, "%s/%u", c->ref.task_id, c->ref.unit);
    r = strmap_get(&a->runs, key);
    if (r != NULL && (c->ref.token == 0 || r->ref.token == c->ref.token)) {
        exec_cancel(r->e);
    }
}
