/* leader/ — the leader's dispatch round: the task and node caches, placement
 * through the pure scheduler (scheduler/), assignments committed before RUN
 * is sent, cancel sweeps, and what applied commands change (docs/SCHEDULER.md). */
#include "leader/dispatch_int.h"

#include "scheduler/admit.h"

/* ---- caches -------------------------------------------------------------- */

void dispatch__task_cache_free(struct task_cache *tc)
{
    if (tc->spec_ok) {
        node_spec_close(&tc->spec);
    }
    fl_free(tc);
}

struct task_cache *dispatch__task_get(struct dispatch *d, struct store_txn *t, const char *id)
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
    tc->job = task.job;
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
    strmap_close(&d->counts_dirty);
    strmap_init(&d->counts_dirty);
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

void dispatch__sync_nodes(struct dispatch *d, struct store_txn *t)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (!d->nodes_dirty && strmap_next(&d->counts_dirty, &i, &k, &v)) {
        struct cnode *cn = cnode_of(d, k);
        struct store_node n;
        if (cn == NULL || store_node_get(t, k, &n) != FL_OK || n.n_labels != cn->n.n_labels) {
            d->nodes_dirty = 1; /* a new or changed node: read them all */
            break;
        }
        cn->n = n;
        for (unsigned l = 0; l < n.n_labels; l++) {
            cn->label_ptrs[l] = cn->n.labels[l];
        }
    }
    strmap_close(&d->counts_dirty);
    strmap_init(&d->counts_dirty);
    if (d->nodes_dirty) {
        dispatch__refresh_nodes(d, t);
    }
}

/* The scheduler's view of cached node i. */
void dispatch__fill_sched_node(struct dispatch *d, unsigned i, struct sched_node *sn)
{
    struct cnode *cn = &d->nodes[i];
    sn->id = cn->n.id;
    sn->cap = cn->n.lost ? 0 : cn->n.cap;
    struct dagent *a = dispatch__agent_of(d, cn->n.id);
    uint32_t stale = 0;
    if (a != NULL) {
        /* Units it runs that are no longer its own hold slots too. */
        stale = dispatch__stale_slots(a);
    }
    sn->running = cn->n.running + cn->inflight + stale;
    sn->draining = cn->n.drain;
    sn->connected = a != NULL;
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
            dispatch__run_or_hold(d, a->task, a->unit, a->node);
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
    if (dpropose(d, &cmd, assign_cb, a) != FL_OK) {
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
    {
        struct sched_admit_task at = {.on_host = 1, .host = host, .host_len = hl};
        struct sched_admit_node an = {.id = n->id,
                                      .cap = n->cap,
                                      .running = n->running + pinned[ix - 1],
                                      .draining = n->draining};
        if (!n->connected || sched_admit(0, &at, &an) != SCHED_ADMIT_OK) {
            return 0;
        }
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

/* One placement round's working set. */
struct round {
    struct dispatch *d;
    struct store_txn *t;
    struct sched_node *sn;  /* per node, as the scheduler sees it */
    uint32_t *pinned;       /* per node: pinned candidates taken in this round */
    struct strmap used;     /* task id -> uint32_t: units counted against max_running */
    struct candidate *cand; /* the queue's head, as candidates */
    struct sched_unit *su;  /* the same, as the scheduler sees them */
    unsigned n_cand, want;
    uint64_t now;
};

/* Queue entry (prio, seq, task, unit) as candidate r->n_cand, unless the
 * task's policy holds it back in this round: 0 = not taken, 1 = taken,
 * -1 = the task is at its max_running (skip its other units). */
static int take_candidate(struct round *r, int32_t prio, uint64_t seq)
{
    struct dispatch *d = r->d;
    char key[STORE_TASK_ID_MAX + 16];
    struct candidate *cd = &r->cand[r->n_cand];
    struct sched_unit *su = &r->su[r->n_cand];
    struct task_cache *tc;
    struct store_unit u;
    uint32_t *n_used = NULL;
    unit_key(key, sizeof key, cd->task, cd->unit);
    if (strmap_get(&d->pending, key) != NULL ||
        (tc = dispatch__task_get(d, r->t, cd->task)) == NULL) {
        return 0;
    }
    if (tc->max_running > 0) {
        n_used = round_used(d, r->t, &r->used, cd->task);
        if (n_used == NULL || !sched_task_has_room(tc->max_running, *n_used)) {
            return -1;
        }
    }
    /* A pinned unit in its retry backoff waits for a later round (its
     * node is the same one). */
    if (store_unit_get(r->t, cd->task, cd->unit, &u) != FL_OK ||
        (tc->placement == FSM_PLACE_HOST &&
         (u.not_before_ms > r->now || !pin_candidate(d, r->sn, r->pinned, tc, &u, cd)))) {
        return 0;
    }
    /* A unit in its retry backoff is not placed in this round: it
     * takes no place under max_running. */
    if (n_used != NULL && u.not_before_ms <= r->now) {
        (*n_used)++;
    }
    cd->attempt = u.attempt;
    memcpy(cd->last_node, u.last_node, sizeof cd->last_node);
    su->ref = r->n_cand;
    su->priority = prio;
    su->seq = seq;
    su->n_constraints = tc->n_constraints;
    su->constraints = tc->cons_ptrs;
    su->not_before_ms = u.not_before_ms;
    su->avoid_node = cd->last_node[0] ? cd->last_node : NULL;
    if (tc->placement == FSM_PLACE_HOST) {
        su->n_constraints = tc->n_constraints + 1;
        su->constraints = cd->cons;
        su->avoid_node = NULL; /* its node is the only one */
    }
    return 1;
}

/* Walk the queue from its head into candidates, up to r->want. */
static void collect_candidates(struct round *r)
{
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    if (store_cursor_open(r->t, STORE_QUEUE, NULL, 0, &c) != FL_OK) {
        return;
    }
    while (c != NULL && r->n_cand < r->want && store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        int32_t prio;
        uint64_t seq;
        struct candidate *cd = &r->cand[r->n_cand];
        int taken;
        if (store_queue_key_parse(k, kl, &prio, &seq, cd->task, &cd->unit) != FL_OK) {
            continue;
        }
        taken = take_candidate(r, prio, seq);
        if (taken > 0) {
            r->n_cand++;
        } else if (taken < 0) {
            /* At its limit: skip the task's other units, which follow in
             * the queue (same priority, seq and task id). */
            uint8_t from[12 + STORE_TASK_ID_MAX + 5];
            store_cursor_close(c);
            if (store_cursor_open(r->t, STORE_QUEUE, from,
                                  store_queue_key(from, prio, seq, cd->task, UINT32_MAX),
                                  &c) != FL_OK) {
                c = NULL;
            }
        }
    }
    store_cursor_close(c);
}

/* Leader time can lag the wall clock between entries; use the later. */
static uint64_t round_now(struct dispatch *d)
{
    uint64_t now = dfsm(d)->time_ms;
    uint64_t wall = d->io->wall_ms(d->io->impl);
    return wall > now ? wall : now;
}

/* The scheduler's view of the nodes; the free slots over all of them. */
static uint64_t round_nodes(struct round *r)
{
    uint64_t free_slots = 0;
    for (unsigned i = 0; i < r->d->n_nodes; i++) {
        struct sched_node *n = &r->sn[i];
        dispatch__fill_sched_node(r->d, i, n);
        if (n->connected && !n->draining && n->cap > n->running) {
            free_slots += n->cap - n->running;
        }
    }
    return free_slots;
}

static void round_run(struct dispatch *d)
{
    struct round r;
    struct sched_assignment *out = NULL;
    unsigned n_out = 0;
    uint64_t free_slots;
    size_t mi = 0;
    const char *mk;
    void *mv;

    d->round_pending = 0;
    if (d->closing || !dispatch__is_leader(d) || dfsm(d)->dispatch_paused) {
        return;
    }
    memset(&r, 0, sizeof r);
    r.d = d;
    if (store_begin(dstore(d), 0, &r.t) != FL_OK) {
        return;
    }
    strmap_init(&r.used);
    d->in_round = 1;
    dispatch__sync_nodes(d, r.t);
    r.sn = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *r.sn);
    r.pinned = fl_calloc(d->n_nodes ? d->n_nodes : 1, sizeof *r.pinned);
    if (r.sn == NULL || r.pinned == NULL || (free_slots = round_nodes(&r)) == 0) {
        goto out;
    }
    r.want = free_slots * 2 + 64 > CANDIDATES_MAX ? CANDIDATES_MAX : (unsigned)free_slots * 2 + 64;
    r.cand = fl_malloc(sizeof *r.cand * r.want);
    r.su = fl_calloc(r.want, sizeof *r.su);
    out = fl_malloc(sizeof *out * r.want);
    if (r.cand == NULL || r.su == NULL || out == NULL) {
        goto out;
    }
    r.now = round_now(d);
    collect_candidates(&r);
    if (r.n_cand == 0) {
        goto out;
    }
    if (sched_place(r.sn, d->n_nodes, r.su, r.n_cand,
                    d->cfg.placement_pack ? SCHED_PACK : SCHED_SPREAD, r.now, d->n_rounds, out,
                    r.want, &n_out) == FL_OK) {
        for (unsigned i = 0; i < n_out; i++) {
            struct candidate *cd = &r.cand[out[i].unit_ref];
            propose_assign(d, cd->task, cd->unit, cd->attempt, &d->nodes[out[i].node_index]);
        }
    }
    d->n_rounds++;
out:
    d->in_round = 0;
    store_abort(r.t);
    while (strmap_next(&r.used, &mi, &mk, &mv)) {
        fl_free(mv);
    }
    strmap_close(&r.used);
    fl_free(r.pinned);
    fl_free(r.sn);
    fl_free(r.su);
    fl_free(r.cand);
    fl_free(out);
}

/* ---- cancel sweeps ---------------------------------------------------------- */

static void cancel_sweep(struct dispatch *d, const char *task_id)
{
    struct store_txn *t;
    struct store_task task;
    if (store_begin(dstore(d), 0, &t) != FL_OK) {
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

void dispatch__round_cb(void *arg)
{
    struct dispatch *d = arg;
    size_t i = 0;
    const char *k;
    void *v;
    if (d->closing) {
        return;
    }
    while (strmap_next(&d->by_id, &i, &k, &v)) {
        struct dagent *a = v;
        if (!a->closing && strmap_size(&a->held) > 0) {
            dispatch__release_held(d, a);
        }
    }
    i = 0;
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
    d->io->alarm(d->io->impl, 1, dispatch__round_cb, d);
}

/* The effects of applied entries, on every server (only bookkeeping here:
 * the work happens in the next round, as leader). */
void dispatch__on_effect(void *data, const struct fsm_effect *e)
{
    struct dispatch *d = data;
    switch (e->type) {
    case FSM_EFF_NODE_RUNNING:
        /* The node's running count changed in the store: read its record
         * again before the next round (no copy of a replicated count is
         * kept). */
        strmap_put(&d->counts_dirty, e->name, (void *)1, NULL);
        break;
    case FSM_EFF_NODE:
        d->nodes_dirty = 1;
        dispatch_kick(d);
        break;
    case FSM_EFF_TASK_CANCELLED:
        strmap_put(&d->cancels, e->name, (void *)1, NULL);
        dispatch_kick(d);
        break;
    case FSM_EFF_PLACE:
        dispatch_kick(d);
        break;
    default:
        break;
    }
}
