/* leader/ — the RUN frame of a unit: what the leader sends an agent once the
 * unit's assignment is applied (docs/SCHEDULER.md): its hosts, the task's
 * executor spec, the environment (task, unit, attempt, fencing token, shard,
 * job), a deploy's blob sources and the task's secrets, opened only here. */
#include "leader/dispatch_int.h"

#include <sodium.h>

/* The shard of a unit, and for a job run (store_task.job) the job, its
 * schedule time and the run's shard: mode all runs one task per node, so
 * the shard is the task's place in the run. */
static unsigned job_env(const struct task_cache *tc, uint32_t unit,
                        char (*env)[STORE_HOST_MAX + 64])
{
    const struct store_job_ref *j = &tc->job;
    if (j->job[0] == '\0') {
        snprintf(env[0], sizeof env[0], "FLOTILLA_SHARD_INDEX=%u", unit);
        snprintf(env[1], sizeof env[1], "FLOTILLA_SHARD_TOTAL=%u", tc->n_units);
        return 2;
    }
    snprintf(env[0], sizeof env[0], "FLOTILLA_SHARD_INDEX=%u", j->index);
    snprintf(env[1], sizeof env[1], "FLOTILLA_SHARD_TOTAL=%u", j->total);
    snprintf(env[2], sizeof env[2], "FLOTILLA_JOB=%s", j->job);
    snprintf(env[3], sizeof env[3], "FLOTILLA_SCHEDULED_TIME=%llu.%03llu",
             (unsigned long long)(j->sched_ms / 1000), (unsigned long long)(j->sched_ms % 1000));
    return 4;
}

#define SECRET_OPEN_MAX (NODE_SPEC_ENV_NAME_MAX + NODE_SPEC_ENV_VALUE_MAX + 2)

/* The executor part of a RUN: what the task's spec says to run. */
static void run_spec(struct aproto_msg *m, const struct task_cache *tc)
{
    m->u.run.kind = (uint8_t)tc->spec.kind;
    m->u.run.argc = tc->spec.argc;
    m->u.run.argv = tc->spec.argv;
    m->u.run.script = tc->spec.script;
    m->u.run.module = tc->spec.module;
    m->u.run.module_args = tc->spec.module_args;
    m->u.run.playbook = tc->spec.playbook;
    m->u.run.sleep_ms = tc->spec.sleep_ms;
    m->u.run.timeout_ms = tc->timeout_ms;
    m->u.run.kill_grace_ms = tc->spec.kill_grace_ms;
    m->u.run.n_vars = tc->spec.n_vars;
    m->u.run.inventory_vars = tc->spec.vars;
}

/* A deploy fetches its package over the blob links of the servers not
 * lost (any that holds the blob serves it; the acquire tries them in
 * order), the list rotated by the unit so that the targets of a rollout
 * start at different servers (docs/DEPLOY.md, "The deploy executor"). */
static void blob_sources(struct dispatch *d, uint32_t unit, char *sources, size_t cap)
{
    const char *src[16];
    unsigned ns = 0;
    size_t used = (size_t)snprintf(sources, cap, "FLOTILLA_BLOB_SOURCES=");
    for (unsigned i = 0; i < d->n_nodes && ns < 16; i++) {
        const struct store_node *sn = &d->nodes[i].n;
        if (sn->kind == STORE_NODE_SERVER && !sn->lost && sn->blob_addr[0] != '\0') {
            src[ns++] = sn->blob_addr;
        }
    }
    for (unsigned i = 0; i < ns && used < cap; i++) {
        used += (size_t)snprintf(sources + used, cap - used, "%s%s", i ? "," : "",
                                 src[(unit + i) % ns]);
    }
}

/* Secrets are opened only here, for the unit's RUN over the agent link,
 * and the clear text is wiped once the frame is queued (docs/ACL.md): the
 * opened values go into `envp` from *n_env on; the returned block (NULL if
 * there is none or on allocation failure, *failed then set) is the caller's
 * to wipe and free. */
static char *open_secrets(struct dispatch *d, const struct task_cache *tc, const char *task_id,
                          const char **envp, unsigned *n_env, int *failed)
{
    char *secrets;
    *failed = 0;
    if (tc->spec.n_secret == 0) {
        return NULL;
    }
    secrets = fl_malloc((size_t)tc->spec.n_secret * SECRET_OPEN_MAX);
    if (secrets == NULL) {
        *failed = 1;
        return NULL;
    }
    for (unsigned i = 0; i < tc->spec.n_secret; i++) {
        char *slot = secrets + (size_t)i * SECRET_OPEN_MAX;
        if (node_secret_open(d->cfg.secret_key, tc->spec.secret[i], slot, SECRET_OPEN_MAX) !=
            FL_OK) {
            FL_WARN("task %s: a secret_env value does not open with this cluster's key; "
                    "the unit runs without it",
                    task_id);
            continue;
        }
        envp[(*n_env)++] = slot;
    }
    return secrets;
}

static void send_run(struct dispatch *d, const char *task_id, uint32_t unit, const char *node)
{
    struct store_txn *t;
    struct store_unit u;
    struct task_cache *tc;
    struct aproto_msg m;
    const char *hosts_stack[64], **hosts = hosts_stack;
    char env[9][STORE_HOST_MAX + 64];
    const char *envp[10 + 2 * NODE_SPEC_ENV_MAX];
    char sources[32 + 16 * STORE_NODE_ADDR_MAX]; /* a deploy's FLOTILLA_BLOB_SOURCES */
    char *secrets = NULL; /* opened secret_env entries, wiped after the send */
    int failed = 0;
    unsigned n_env;
    char *hostlist = NULL;
    size_t pos = 0, hl;
    const char *h;
    uint32_t n = 0;

    if (dispatch__agent_of(d, node) == NULL || store_begin(dstore(d), 0, &t) != FL_OK) {
        return; /* dispatch__reconcile or lost detection takes it from here */
    }
    if (store_unit_get(t, task_id, unit, &u) != FL_OK || u.state != STORE_UNIT_RUNNING ||
        strcmp(u.node, node) != 0 || (tc = dispatch__task_get(d, t, task_id)) == NULL ||
        !tc->spec_ok) {
        store_abort(t);
        return;
    }
    if (u.n_hosts > 64) {
        hosts = fl_malloc(sizeof *hosts * u.n_hosts);
        if (hosts == NULL) {
            store_abort(t);
            return;
        }
    }
    hostlist = fl_malloc(u.hosts_len + 1);
    if (hostlist == NULL) {
        goto out;
    }
    memcpy(hostlist, u.hosts, u.hosts_len);
    for (; n < u.n_hosts && store_unit_host(&u, &pos, &h, &hl) == FL_OK; n++) {
        hosts[n] = hostlist + (h - (const char *)u.hosts);
    }
    aproto_msg_init(&m, APROTO_RUN);
    aproto_unit_ref_set(&m.u.run.ref, task_id, unit, u.attempt, u.token);
    m.u.run.n_hosts = n;
    m.u.run.hosts = hosts;
    run_spec(&m, tc);
    snprintf(env[0], sizeof env[0], "FLOTILLA_TASK_ID=%s", task_id);
    snprintf(env[1], sizeof env[1], "FLOTILLA_UNIT=%u", unit);
    snprintf(env[2], sizeof env[2], "FLOTILLA_ATTEMPT=%u", u.attempt);
    snprintf(env[3], sizeof env[3], "FLOTILLA_FENCING_TOKEN=%llu", (unsigned long long)u.token);
    snprintf(env[4], sizeof env[4], "FLOTILLA_NODE=%s", node);
    n_env = 5 + job_env(tc, unit, env + 5);
    for (unsigned i = 0; i < n_env; i++) {
        envp[i] = env[i];
    }
    if (tc->spec.kind == NODE_DEPLOY) {
        blob_sources(d, unit, sources, sizeof sources);
        envp[n_env++] = sources;
    }
    for (unsigned i = 0; i < tc->spec.n_env; i++) {
        envp[n_env++] = tc->spec.env[i];
    }
    secrets = open_secrets(d, tc, task_id, envp, &n_env, &failed);
    if (failed) {
        goto out;
    }
    m.u.run.n_env = n_env;
    m.u.run.env = envp;
    if (dispatch__send(d, node, &m) == FL_OK) {
        d->n_runs++;
    }
out:
    if (secrets != NULL) {
        sodium_memzero(secrets, (size_t)tc->spec.n_secret * SECRET_OPEN_MAX);
        fl_free(secrets);
    }
    fl_free(hostlist);
    if (hosts != hosts_stack) {
        fl_free(hosts);
    }
    store_abort(t);
}

/* ---- RUNs held for a slot -------------------------------------------------------- */

uint32_t dispatch__stale_slots(const struct dagent *a)
{
    /* At most what it last said it runs: a DONE that never came frees them. */
    uint32_t stale = (uint32_t)strmap_size(&a->stale);
    return stale < a->reported_running ? stale : a->reported_running;
}

/* 1 if one more unit, counted in the node's running count and not held,
 * leaves the agent within its cap. */
static int has_room(struct dispatch *d, struct dagent *a)
{
    struct store_txn *t;
    struct store_node n;
    int rv;
    if (store_begin(dstore(d), 0, &t) != FL_OK) {
        return 0;
    }
    rv = store_node_get(t, a->id, &n);
    store_abort(t);
    if (rv != FL_OK) {
        return 0;
    }
    return (uint64_t)n.running - strmap_size(&a->held) + dispatch__stale_slots(a) <= n.cap;
}

void dispatch__run_or_hold(struct dispatch *d, const char *task_id, uint32_t unit, const char *node)
{
    struct dagent *a = dispatch__agent_of(d, node);
    char key[STORE_TASK_ID_MAX + 16];
    if (a == NULL) {
        return; /* reconcile or lost detection takes it from here */
    }
    /* With no stale run and nothing held, the node's running count in the
     * store (within its cap at apply) is what the agent runs. */
    if (strmap_size(&a->held) == 0 && (dispatch__stale_slots(a) == 0 || has_room(d, a))) {
        send_run(d, task_id, unit, node);
        return;
    }
    unit_key(key, sizeof key, task_id, unit);
    if (strmap_put(&a->held, key, (void *)1, NULL) == FL_OK) {
        d->n_held++;
    }
}

void dispatch__release_held(struct dispatch *d, struct dagent *a)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(&a->held, &i, &k, &v)) {
        char key[STORE_TASK_ID_MAX + 16], task[STORE_TASK_ID_MAX];
        const char *slash;
        uint32_t unit;
        snprintf(key, sizeof key, "%s", k);
        strmap_del(&a->held, key);
        i = 0; /* the map changed: walk it from the start */
        slash = strrchr(key, '/');
        if (slash == NULL || (size_t)(slash - key) >= sizeof task) {
            continue;
        }
        if (!has_room(d, a)) {
            strmap_put(&a->held, key, (void *)1, NULL);
            return;
        }
        memcpy(task, key, (size_t)(slash - key));
        task[slash - key] = '\0';
        unit = (uint32_t)strtoul(slash + 1, NULL, 10);
        send_run(d, task, unit, a->id);
    }
}
