/* node/ — the leader's dispatch round: the task and node caches, placement
 * through the pure scheduler (scheduler/), assignments committed before RUN
 * is sent, cancel sweeps, and what applied commands change (docs/SCHEDULER.md). */
#include "node/dispatch_int.h"

/* ---- caches -------------------------------------------------------------- */

void dispatch__task_cache_free(struct task_cache *tc)
{
    if (tc->spec_ok) {
        node_spec_close(&tc->spec);
    }
    fl_free(tc);
}

static struct task_cache *task_get(struct dispatch *d, struct store_txn *t, const char *id)
{
    struct task_cache *tc = strmap_get(&d->tasks, id);
    struct store_task task;
    if (tc != NULL) {
        return tc;
    }
    if (store_task_get(t, id, &task) != FL_OK) {
        return NULL;
    }
    /* Not during a round: its candidates point into cached entries. */
    if (!d->in_round && strmap_size(&d->tasks) >= SPEC_CACHE_MAX) {
        size_t i = 0;
        const char *k;
        void *v;
        while (strmap_size(&d->tasks) >= SPEC_CACHE_MAX / 2 && strmap_next(&d->tasks, &i, &k, &v)) {
            dispatch__task_cache_free(strmap_del(&d->tasks, k));
        }
    }
    tc = fl_calloc(1, sizeof *tc);
    if (tc == NULL) {
        return NULL;
    }
    tc->priority = task.priority;
    tc->timeout_ms = task.timeout_ms;
    tc->n_units = task.n_units;
    tc->max_running = task.max_running;
    tc->placement = task.placement;
    memcpy(tc->name, task.name, sizeof tc->name);
    tc->n_constraints = task.n_constraints;
    for (unsigned i = 0; i < task.n_constraints; i++) {
        memcpy(tc->constraints[i], task.constraints[i], sizeof tc->constraints[i]);
        tc->cons_ptrs[i] = tc->constraints[i];
    }
    tc->spec_ok = node_spec_decode(task.spec, task.spec_len, &tc->spec) == FL_OK;
    if (strmap_put(&d->tasks, id, tc, NULL) != FL_OK) {
        dispatch__task_cache_free(tc);
        return NULL;
    }
    return tc;
}

void dispatch__refresh_nodes(struct dispatch *d, struct store_txn *t)
{
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    strmap_close(&d->node_index);
    strmap_init(&d->node_index);
    d->n_nodes = 0;
    if (store_cursor_open(t, STORE_NODES, NULL, 0, &c) != FL_OK) {
        return;
    }
    while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        struct cnode *cn;
        if (d->n_nodes == d->cap_nodes) {
            unsigned cap = d->cap_nodes ? d->cap_nodes * 2 : 64;
            struct cnode *nn = fl_realloc(d->nodes, sizeof *nn * cap);
            if (nn == NULL) {
                break;
            }
            d->nodes = nn;
            d->cap_nodes = cap;
        }
        cn = &d->nodes[d->n_nodes];
        if (store_node_decode(v, vl, &cn->n) != FL_OK) {
            continue;
        }
        for (unsigned i = 0; i < cn->n.n_labels; i++) {
            cn->label_ptrs[i] = cn->n.labels[i];
        }
        snprintf(cn->self_label, sizeof cn->self_label, "node=%s", cn->n.id);
        cn->label_ptrs[cn->n.n_labels] = cn->self_label;
        cn->inflight = 0;
        d->n_nodes++;
        strmap_put(&d->node_index, cn->n.id, (void *)(uintptr_t)d->n_nodes, NULL);
    }
    store_cursor_close(c);
    /* Assignments in flight still count against their nodes. */
    {
        size_t i = 0;
        const char *key;
        void *val;
        while (strmap_next(&d->pending, &i, &key, &val)) {
            uintptr_t ix = (uintptr_t)strmap_get(&d->node_index, (const char *)val);
            if (ix != 0) {
                d->nodes[ix - 1].inflight++;
            }
        }
    }
    d->nodes_dirty = 0;
}

static struct cnode *cnode_of(struct dispatch *d, const char *id)
{
    uintptr_t ix = (uintptr_t)strmap_get(&d->node_index, id);
    return ix ? &d->nodes[ix - 1] : NULL;
}

int dispatch__is_leader(struct dispatch *d)
{
    struct rg_status st;
    rg_repl_status(d->s->repl, &st);
    return st.state == RAFT_LEADER && st.ready;
}

/* The scheduler's view of cached node i. */
void dispatch__fill_sched_node(struct dispatch *d, unsigned i, struct sched_node *sn)
{
    struct cnode *cn = &d->nodes[i];
    sn->id = cn->n.id;
    sn->cap = cn->n.lost ? 0 : cn->n.cap;
    struct session *ss = dispatch__session_of(d, cn->n.id);
    uint32_t stale = 0;
    if (ss != NULL) {
        /* Units it runs that are no longer its own hold slots too (at most
         * what it last said it runs: a DONE that never came frees them). */
        stale = (uint32_t)strmap_size(&ss->stale);
        stale = stale < ss->reported_running ? stale : ss->reported_running;
    }
    sn->running = cn->n.running + cn->inflight + stale;
    sn->draining = cn->n.drain;
    sn->connected = ss != NULL;
    sn->n_labels = cn->n.n_labels + 1;
    sn->labels = cn->label_ptrs;
}

/* A NODEUNITS key under `node` ("node\0task/u32") into task and unit; 0 if
 * the key belongs to another node or is malformed. */
int dispatch__nodeunit_parse(const char *node, const void *key, size_t kl, char *task, size_t cap,
                          uint32_t *unit)
{
    const char *kp = key;
    size_t nl = strlen(node) + 1;
    if (kl <= nl + 5 || memcmp(kp, node, nl) != 0 || kl - nl - 5 >= cap) {
        return 0;
    }
    memcpy(task, kp + nl, kl - nl - 5);
    task[kl - nl - 5] = '\0';
    *unit = (uint32_t)(uint8_t)kp[kl - 4] << 24 | (uint32_t)(uint8_t)kp[kl - 3] << 16 |
            (uint32_t)(uint8_t)kp[kl - 2] << 8 | (uint8_t)kp[kl - 1];
    return 1;
}

/* ---- the dispatch round ---------------------------------------------------- */

struct assign_ctx {
    struct dispatch *d;
    char task[STORE_TASK_ID_MAX];
    uint32_t unit;
    char node[STORE_NODE_ID_MAX];
};

/* The shard of a unit, and for a job run ("job:NAME@SCHED#I/N", fsm/job.c)
 * the job, its schedule time and the run's shard: mode all runs one task per
 * node, so the shard is the task's place in the run. */
static unsigned job_env(const struct task_cache *tc, uint32_t unit, char (*env)[STORE_HOST_MAX + 64])
{
    unsigned long long sched = 0;
    unsigned idx = 0, total = 0;
    const char *at;
    if (strncmp(tc->name, "job:", 4) != 0 || (at = strchr(tc->name, '@')) == NULL ||
        sscanf(at + 1, "%llu#%u/%u", &sched, &idx, &total) != 3) {
        snprintf(env[0], sizeof env[0], "FLOTILLA_SHARD_INDEX=%u", unit);
        snprintf(env[1], sizeof env[1], "FLOTILLA_SHARD_TOTAL=%u", tc->n_units);
        return 2;
    }
    snprintf(env[0], sizeof env[0], "FLOTILLA_SHARD_INDEX=%u", idx);
    snprintf(env[1], sizeof env[1], "FLOTILLA_SHARD_TOTAL=%u", total);
    snprintf(env[2], sizeof env[2], "FLOTILLA_JOB=%.*s", (int)(at - tc->name - 4), tc->name + 4);
    snprintf(env[3], sizeof env[3], "FLOTILLA_SCHEDULED_TIME=%llu.%03llu", sched / 1000,
             sched % 1000);
    return 4;
}

#define SECRET_OPEN_MAX (NODE_SPEC_ENV_NAME_MAX + NODE_SPEC_ENV_VALUE_MAX + 2)

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
    unsigned char skey[NODE_SECRET_KEY_BYTES];
    unsigned n_env;
    char *hostlist = NULL;
    size_t pos = 0, hl;
    const char *h;
    uint32_t n = 0;
    struct session *ss = dispatch__session_of(d, node);

    if (ss == NULL || store_begin(d->s->store, 0, &t) != FL_OK) {
        return; /* dispatch__reconcile or lost detection takes it from here */
    }
    if (store_unit_get(t, task_id, unit, &u) != FL_OK || u.state != STORE_UNIT_RUNNING ||
        strcmp(u.node, node) != 0 || (tc = task_get(d, t, task_id)) == NULL || !tc->spec_ok) {
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
    m.u.run.kind = (uint8_t)tc->spec.kind;
    m.u.run.argc = tc->spec.argc;
    m.u.run.argv = tc->spec.argv;
    m.u.run.script = tc->spec.script;
    m.u.run.module = tc->spec.module;
    m.u.run.module_args = tc->spec.module_args;
    m.u.run.playbook = tc->spec.playbook;
    m.u.run.sleep_ms = tc->spec.sleep_ms;
    m.u.run.timeout_ms = tc->timeout_ms;
    m.u.run.kill_grace_ms = tc->spec.kill_grace_ms;
    m.u.run.n_vars = tc->spec.n_vars;
    m.u.run.inventory_vars = tc->spec.vars;
    snprintf(env[0], sizeof env[0], "FLOTILLA_TASK_ID=%s", task_id);
    snprintf(env[1], sizeof env[1], "FLOTILLA_UNIT=%u", unit);
    snprintf(env[2], sizeof env[2], "FLOTILLA_ATTEMPT=%u", u.attempt);
    snprintf(env[3], sizeof env[3], "FLOTILLA_FENCING_TOKEN=%llu", (unsigned long long)u.token);
    snprintf(env[4], sizeof env[4], "FLOTILLA_NODE=%s", node);
    n_env = 5 + job_env(tc, unit, env + 5);
    for (unsigned i = 0; i < n_env; i++) {
        envp[i] = env[i];
    }
    /* A deploy fetches its package over the blob links of the servers not
     * lost (any that holds the blob serves it; the acquire tries them in
     * order), the list rotated by the unit so that the targets of a rollout
     * start at different servers (docs/DEPLOY.md, "The deploy executor"). */
    if (tc->spec.kind == NODE_DEPLOY) {
        const char *src[16];
        unsigned ns = 0;
        size_t used = (size_t)snprintf(sources, sizeof sources, "FLOTILLA_BLOB_SOURCES=");
        for (unsigned i = 0; i < d->n_nodes && ns < 16; i++) {
            const struct store_node *sn = &d->nodes[i].n;
            if (sn->kind == STORE_NODE_SERVER && !sn->lost && sn->blob_addr[0] != '\0') {
                src[ns++] = sn->blob_addr;
            }
        }
        for (unsigned i = 0; i < ns; i++) {
            used += (size_t)snprintf(sources + used, sizeof sources - used, "%s%s", i ? "," : "",
                                     src[(unit + i) % ns]);
        }
        envp[n_env++] = sources;
    }
    for (unsigned i = 0; i < tc->spec.n_env; i++) {
        envp[n_env++] = tc->spec.env[i];
    }
    /* Secrets are opened only here, for the unit's RUN over the agent link,
     * and the clear text is wiped once the frame is queued (docs/ACL.md). */
    if (tc->spec.n_secret > 0) {
        secrets = fl_malloc((size_t)tc->spec.n_secret * SECRET_OPEN_MAX);
        if (secrets == NULL) {
            goto out;
        }
        node_secret_key(d->s->cfg.key, skey);
        for (unsigned i = 0; i < tc->spec.n_secret; i++) {
            char *slot = secrets + (size_t)i * SECRET_OPEN_MAX;
            if (node_secret_open(skey, tc->spec.secret[i], slot, SECRET_OPEN_MAX) != FL_OK) {
                FL_WARN("task %s: a secret_env value does not open with this cluster's key; "
                        "the unit runs without it",
                        task_id);
                continue;
            }
            envp[n_env++] = slot;
        }
        sodium_memzero(skey, sizeof skey);
    }
    m.u.run.n_env = n_env;
    m.u.run.env = envp;
    if (dispatch__send_msg(ss, &m) == FL_OK) {
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

static void assign_cb(void *data, int err, const struct fsm_result *res)
{
    struct assign_ctx *a = data;
    struct dispatch *d = a->d;
    char key[STORE_TASK_ID_MAX + 16];
    struct cnode *cn;
    unit_key(key, sizeof key, a->task, a->unit);
    fl_free(strmap_del(&d->pending, key));
    if ((cn = cnode_of(d, a->node)) != NULL && cn->inflight > 0) {
        cn->inflight--;
    }
    if (err == FL_OK && res->err == FL_OK) {
        d->n_assigned++;
        if (!d->closing) {
            send_run(d, a->task, a->unit, a->node);
        }
    } else {
        d->n_assign_refused++;
        d->nodes_dirty = 1;
    }
    fl_free(a);
    if (!d->closing) {
        dispatch_kick(d);
    }
}

static void propose_assign(struct dispatch *d, const char *task, uint32_t unit, uint32_t attempt,
                           struct cnode *cn)
{
    struct assign_ctx *a = fl_malloc(sizeof *a);
    char key[STORE_TASK_ID_MAX + 16];
    struct fsm_cmd cmd;
    char *node_copy;
    if (a == NULL) {
        return;
    }
    a->d = d;
    snprintf(a->task, sizeof a->task, "%s", task);
    a->unit = unit;
    memcpy(a->node, cn->n.id, sizeof a->node);
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_UNIT_ASSIGN;
    cmd.u.unit.task = a->task;
    cmd.u.unit.tasklen = strlen(a->task);
    cmd.u.unit.unit = unit;
    cmd.u.unit.attempt = attempt;
    cmd.u.unit.node = a->node;
    cmd.u.unit.nodelen = strlen(a->node);
    unit_key(key, sizeof key, task, unit);
    node_copy = fl_strdup(cn->n.id);
    if (node_copy == NULL || strmap_put(&d->pending, key, node_copy, NULL) != FL_OK) {
        fl_free(node_copy);
        fl_free(a);
        return;
    }
    if (rg_repl_submit(d->s->repl, &cmd, assign_cb, a, NULL) != FL_OK) {
        fl_free(strmap_del(&d->pending, key));
        fl_free(a);
        return;
    }
    cn->inflight++;
}

struct candidate {
    char task[STORE_TASK_ID_MAX];
    uint32_t unit;
    uint32_t attempt;
    char last_node[STORE_NODE_ID_MAX];
    /* A unit placed on its host: the task's constraints and "node=<host>". */
    char pin[STORE_NODE_ID_MAX + 8];
    const char *cons[STORE_TASK_CONSTRAINTS + 1];
};

/* Units of a task with max_running that count against it in this round:
 * its running units (read fresh: the task cache holds static data only),
 * its assignments in flight, and its units taken as candidates so far. */
static uint32_t *round_used(struct dispatch *d, struct store_txn *t, struct strmap *used,
                            const char *task)
{
    uint32_t *n = strmap_get(used, task);
    struct store_task k;
    size_t i = 0, tl = strlen(task);
    const char *key;
    void *val;
    if (n != NULL) {
        return n;
    }
    if (store_task_get(t, task, &k) != FL_OK || (n = fl_malloc(sizeof *n)) == NULL) {
        return NULL;
    }
    *n = k.units_running;
    while (strmap_next(&d->pending, &i, &key, &val)) {
        if (strncmp(key, task, tl) == 0 && key[tl] == '/') {
            (*n)++;
        }
    }
    if (strmap_put(used, task, n, NULL) != FL_OK) {
        fl_free(n);
        return NULL;
    }
    return n;
}

/* A unit placed on its host goes to that node only: fill its constraint
 * list, and return 0 when the node cannot take it now (unknown, lost,
 * disconnected, draining, full with this round's pinned candidates, or not
 * matching the task's constraints), so that an unreachable target neither
 * holds a place under max_running nor blocks the other units. */
static int pin_candidate(struct dispatch *d, const struct sched_node *sn, uint32_t *pinned,
                         const struct task_cache *tc, const struct store_unit *u,
                         struct candidate *cd)
{
    struct sched_unit one;
    const struct sched_node *n;
    size_t pos = 0, hl;
    const char *host;
    uintptr_t ix;
    if (store_unit_host(u, &pos, &host, &hl) != FL_OK || hl == 0 || hl >= STORE_NODE_ID_MAX) {
        return 0;
    }
    snprintf(cd->pin, sizeof cd->pin, "node=%.*s", (int)hl, host);
    if ((ix = (uintptr_t)strmap_get(&d->node_index, cd->pin + 5)) == 0) {
        return 0;
    }
    n = &sn[ix - 1];
    if (!n->connected || n->draining || n->running + pinned[ix - 1] >= n->cap) {
        return 0;
    }
    for (unsigned i = 0; i < tc->n_constraints; i++) {
        cd->cons[i] = tc->cons_ptrs[i];
    }
    cd->cons[tc->n_constraints] = cd->pin;
    memset(&one, 0, sizeof one);
    one.n_constraints = tc->n_constraints + 1;
    one.constraints = cd->cons;
    if (!sched_node_matches(n, &one)) {
        return 0;
    }
    pinned[ix - 1]++;
    return 1;
}

static void round_run(struct dispatch *d)
{
    struct store_txn *t;
    struct store_cursor *c;
    struct sched_node *sn = NULL;
    struct sched_unit *su = NULL;
    struct candidate *cand = NULL;
    struct sched_assignment *out = NULL;
    struct strmap used;      /* task id -> uint32_t: units counted against max_running */
    uint32_t *pinned = NULL; /* per node: pinned candidates taken in this round */
    const void *k, *v;
    size_t kl, vl, mi = 0;
    unsigned n_cand = 0, n_out = 0, want;
    uint64_t free_slots = 0, now = rg_repl_time_ms(d->s->repl);
    const char *mk;
    void *mv;

    d->round_pending = 0;
    if (d->closing || !dispatch__is_leader(d) || rg_repl_fsm(d->s->repl)->dispatch_paused) {
        return;
    }
    if (store_begin(d->s->store, 0, &t) != FL_OK) {
        return;
    }
    strmap_init(&used);
    d->in_round = 1;
    if (d->nodes_dirty) {
        dispatch__refresh_nodes(d, t);
    }
    sn = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *sn);
    pinned = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *pinned);
    if (sn == NULL || pinned == NULL) {
        goto out;
    }
    for (unsigned i = 0; i < d->n_nodes; i++) {
        dispatch__fill_sched_node(d, i, &sn[i]);
        if (sn[i].connected && !sn[i].draining && sn[i].cap > sn[i].running) {
            free_slots += sn[i].cap - sn[i].running;
        }
    }
    if (free_slots == 0) {
        goto out;
    }
    want = free_slots * 2 + 64 > CANDIDATES_MAX ? CANDIDATES_MAX : (unsigned)free_slots * 2 + 64;
    cand = fl_malloc(sizeof *cand * want);
    su = fl_calloc(want, sizeof *su);
    out = fl_malloc(sizeof *out * want);
    if (cand == NULL || su == NULL || out == NULL ||
        store_cursor_open(t, STORE_QUEUE, NULL, 0, &c) != FL_OK) {
        goto out;
    }
    /* Leader time can lag the wall clock between entries; use the later. */
    if ((uint64_t)uv_now(d->loop) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wall = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        if (wall > now) {
            now = wall;
        }
    }
    while (c != NULL && n_cand < want && store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        int32_t prio;
        uint64_t seq;
        char key[STORE_TASK_ID_MAX + 16];
        struct candidate *cd = &cand[n_cand];
        struct task_cache *tc;
        struct store_unit u;
        uint32_t *n_used = NULL;
        if (store_queue_key_parse(k, kl, &prio, &seq, cd->task, &cd->unit) != FL_OK) {
            continue;
        }
        unit_key(key, sizeof key, cd->task, cd->unit);
        if (strmap_get(&d->pending, key) != NULL || (tc = task_get(d, t, cd->task)) == NULL) {
            continue;
        }
        if (tc->max_running > 0) {
            n_used = round_used(d, t, &used, cd->task);
            if (n_used == NULL || *n_used >= tc->max_running) {
                /* At its limit: skip the task's other units, which follow
                 * in the queue (same priority, seq and task id). */
                uint8_t from[12 + STORE_TASK_ID_MAX + 5];
                store_cursor_close(c);
                if (store_cursor_open(t, STORE_QUEUE, from,
                                      store_queue_key(from, prio, seq, cd->task, UINT32_MAX),
                                      &c) != FL_OK) {
                    c = NULL;
                }
                continue;
            }
        }
        /* A pinned unit in its retry backoff waits for a later round (its
         * node is the same one). */
        if (store_unit_get(t, cd->task, cd->unit, &u) != FL_OK ||
            (tc->placement == FSM_PLACE_HOST &&
             (u.not_before_ms > now || !pin_candidate(d, sn, pinned, tc, &u, cd)))) {
            continue;
        }
        /* A unit in its retry backoff is not placed in this round: it
         * takes no place under max_running. */
        if (n_used != NULL && u.not_before_ms <= now) {
            (*n_used)++;
        }
        cd->attempt = u.attempt;
        memcpy(cd->last_node, u.last_node, sizeof cd->last_node);
        su[n_cand].ref = n_cand;
        su[n_cand].priority = prio;
        su[n_cand].seq = seq;
        su[n_cand].n_constraints = tc->n_constraints;
        su[n_cand].constraints = tc->cons_ptrs;
        su[n_cand].not_before_ms = u.not_before_ms;
        su[n_cand].avoid_node = cd->last_node[0] ? cd->last_node : NULL;
        if (tc->placement == FSM_PLACE_HOST) {
            su[n_cand].n_constraints = tc->n_constraints + 1;
            su[n_cand].constraints = cd->cons;
            su[n_cand].avoid_node = NULL; /* its node is the only one */
        }
        n_cand++;
    }
    store_cursor_close(c);
    if (n_cand == 0) {
        goto out;
    }
    if (sched_place(sn, d->n_nodes, su, n_cand,
                    d->s->cfg.placement_pack ? SCHED_PACK : SCHED_SPREAD, now, d->n_rounds, out,
                    want, &n_out) == FL_OK) {
        for (unsigned i = 0; i < n_out; i++) {
            struct candidate *cd = &cand[out[i].unit_ref];
            propose_assign(d, cd->task, cd->unit, cd->attempt, &d->nodes[out[i].node_index]);
        }
    }
    d->n_rounds++;
out:
    d->in_round = 0;
    store_abort(t);
    while (strmap_next(&used, &mi, &mk, &mv)) {
        fl_free(mv);
    }
    strmap_close(&used);
    fl_free(pinned);
    fl_free(sn);
    fl_free(su);
    fl_free(cand);
    fl_free(out);
}

/* ---- cancel sweeps ---------------------------------------------------------- */

static void cancel_sweep(struct dispatch *d, const char *task_id)
{
    struct store_txn *t;
    struct store_task task;
    if (store_begin(d->s->store, 0, &t) != FL_OK) {
        return;
    }
    if (store_task_get(t, task_id, &task) == FL_OK) {
        for (uint32_t i = 0; i < task.n_units; i++) {
            struct store_unit u;
            if (store_unit_get(t, task_id, i, &u) == FL_OK && u.state == STORE_UNIT_RUNNING &&
                u.cancel) {
                dispatch__send_cancel(d, u.node, task_id, i, u.attempt, u.token);
            }
        }
    }
    store_abort(t);
}

static void round_cb(uv_timer_t *h)
{
    struct dispatch *d = h->data;
    size_t i = 0;
    const char *k;
    void *v;
    if (d->closing) {
        return;
    }
    while (strmap_next(&d->cancels, &i, &k, &v)) {
        char id[STORE_TASK_ID_MAX];
        snprintf(id, sizeof id, "%s", k);
        strmap_del(&d->cancels, k);
        if (dispatch__is_leader(d)) {
            cancel_sweep(d, id);
        }
    }
    round_run(d);
}

void dispatch_kick(struct dispatch *d)
{
    if (d == NULL || d->closing || d->round_pending) {
        return;
    }
    d->round_pending = 1;
    uv_timer_start(&d->round_timer, round_cb, 1, 0);
}

/* Called by the FSM for every applied command (inside raft's apply: only
 * bookkeeping here, the work happens in the next round). */
void dispatch__on_applied(void *data, const void *cmdp, const struct fsm_result *res)
{
    struct dispatch *d = data;
    const struct fsm_cmd *c = cmdp;
    struct cnode *cn;
    switch (c->type) {
    case FSM_CMD_UNIT_ASSIGN:
        if (res->err == FL_OK && (cn = cnode_of(d, res->node)) != NULL) {
            cn->n.running++;
        }
        break;
    case FSM_CMD_UNIT_RESULT:
    case FSM_CMD_UNIT_REQUEUE:
        if (res->err == FL_OK && res->node[0] && (cn = cnode_of(d, res->node)) != NULL &&
            cn->n.running > 0) {
            cn->n.running--;
        }
        dispatch_kick(d);
        break;
    case FSM_CMD_TASK_CANCEL:
        if (res->err == FL_OK) {
            char id[STORE_TASK_ID_MAX];
            snprintf(id, sizeof id, "%.*s", (int)c->u.task.idlen, c->u.task.id);
            strmap_put(&d->cancels, id, (void *)1, NULL);
        }
        dispatch_kick(d);
        break;
    case FSM_CMD_NODE_REGISTER:
    case FSM_CMD_NODE_CAP:
    case FSM_CMD_NODE_DRAIN:
    case FSM_CMD_NODE_REMOVE:
    case FSM_CMD_NODE_LOST:
        d->nodes_dirty = 1;
        dispatch_kick(d);
        break;
    case FSM_CMD_TASK_SUBMIT:
    case FSM_CMD_DISPATCH:
        dispatch_kick(d);
        break;
    default:
        break;
    }
}
