/* The leader's cron clock: a min-heap of next fire times (leader/jobs.h). */
#include "leader/jobs.h"

#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "cron/cron.h"
#include "common/err.h"
#include "common/log.h"
#include "common/strmap.h"
#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "scheduler/sched.h"

#define TICK_MS    100
#define MISSED_MAX 100000 /* schedule times counted in one misfire */

struct jent {
    char name[STORE_JOB_NAME_MAX];
    int sched;
    struct cron_expr ce;
    const struct fl_tz *tz; /* NULL = UTC; owned by the zone cache */
    uint64_t every_ms;
    int mode, misfire;
    uint64_t start_deadline_ms;
    uint64_t next_ms;
    uint64_t gen;
    unsigned n_constraints;
    char constraints[STORE_TASK_CONSTRAINTS][STORE_NODE_LABEL_MAX];
};

struct hent {
    uint64_t next_ms;
    uint64_t gen;
    struct jent *j;
};

struct jobs {
    const struct leader_io *io;
    struct jobs_hooks hooks;
    uint64_t alarm_due;    /* wall time the alarm is armed for */
    struct strmap zones;   /* zone name -> struct fl_tz */
    struct strmap entries; /* job name -> struct jent (leader only) */
    struct strmap dirty;   /* job names changed by applied commands */
    struct hent *heap;
    size_t n_heap, cap_heap;
    uint64_t gen;
    int loaded; /* entries reflect the store (leader) */
    struct jobs_stats st;
    void (*close_cb)(void *data);
    void *close_data;
};

/* ---- schedules ----------------------------------------------------------------- */

static int zone(struct jobs *js, const char *name, const struct fl_tz **out, char *errmsg)
{
    struct fl_tz *z;
    int rv;
    *out = NULL;
    if (name[0] == '\0' || strcmp(name, "UTC") == 0) {
        return FL_OK;
    }
    if ((z = strmap_get(&js->zones, name)) != NULL) {
        *out = z;
        return FL_OK;
    }
    rv = fl_tz_load(name, &z, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (strmap_put(&js->zones, name, z, NULL) != FL_OK) {
        fl_tz_destroy(z);
        return FL_ENOMEM;
    }
    *out = z;
    return FL_OK;
}

int jobs_check_cron(const char *expr, const char *tz, char *errmsg)
{
    struct cron_expr ce;
    struct fl_tz *z = NULL;
    int64_t next;
    int rv = cron_parse(expr, &ce, errmsg);
    if (rv == FL_OK && tz[0] != '\0' && strcmp(tz, "UTC") != 0) {
        rv = fl_tz_load(tz, &z, errmsg);
    }
    if (rv == FL_OK) {
        /* an expression that never fires (30 February) is refused here */
        rv = cron_next(&ce, z, (int64_t)(fl_wall_ms() / 1000), &next, errmsg);
    }
    if (z != NULL) {
        fl_tz_destroy(z);
    }
    return rv == FL_OK ? FL_OK : FL_EINVAL;
}

/* The first fire time strictly after `after` (ms); 0 if none. */
static uint64_t next_after(const struct jent *j, uint64_t after)
{
    int64_t next;
    if (j->sched == STORE_JOB_EVERY) {
        return after + j->every_ms;
    }
    if (cron_next(&j->ce, j->tz, (int64_t)(after / 1000), &next, NULL) != FL_OK || next < 0) {
        return 0;
    }
    return (uint64_t)next * 1000;
}

static int jent_fill(struct jobs *js, struct jent *e, const struct store_job *j)
{
    char err[FL_ERRMSG_SIZE];
    void *mem;
    struct fsm_cmd cmd;
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", j->name);
    e->sched = j->sched;
    e->every_ms = j->every_ms;
    e->mode = j->mode;
    e->misfire = j->misfire;
    e->start_deadline_ms = j->start_deadline_ms;
    if (j->sched == STORE_JOB_CRON &&
        (cron_parse(j->expr, &e->ce, err) != FL_OK || zone(js, j->tz, &e->tz, err) != FL_OK)) {
        FL_WARN("job %s: %s; not scheduled", j->name, err);
        return FL_EINVAL;
    }
    if (fsm_cmd_decode_one(j->tmpl, j->tmpl_len, &mem, &cmd) == FL_OK &&
        cmd.type == FSM_CMD_TASK_SUBMIT) {
        for (unsigned i = 0; i < cmd.u.task.n_constraints; i++) {
            snprintf(e->constraints[i], sizeof e->constraints[i], "%.*s",
                     (int)cmd.u.task.constraint_lens[i], cmd.u.task.constraints[i]);
        }
        e->n_constraints = cmd.u.task.n_constraints;
    }
    fl_free(mem);
    return FL_OK;
}

int jobs_next_fires(struct jobs *js, const struct store_job *j, uint64_t from_ms, uint64_t *out,
                    int n)
{
    struct jent e;
    uint64_t t = j->last_sched_ms > from_ms ? j->last_sched_ms : from_ms;
    int k = 0;
    if (jent_fill(js, &e, j) != FL_OK) {
        return 0;
    }
    if (j->sched == STORE_JOB_EVERY) {
        /* every: anchored at the last schedule time */
        t = j->last_sched_ms + j->every_ms;
        if (t <= from_ms) {
            t += ((from_ms - t) / j->every_ms + 1) * j->every_ms;
        }
        for (; k < n; k++, t += j->every_ms) {
            out[k] = t;
        }
        return k;
    }
    for (; k < n && (t = next_after(&e, t)) != 0; k++) {
        out[k] = t;
    }
    return k;
}

/* ---- the heap ----------------------------------------------------------------------- */

static int heap_less(const struct hent *a, const struct hent *b)
{
    return a->next_ms < b->next_ms;
}

static int heap_push(struct jobs *js, struct jent *e)
{
    size_t i;
    if (js->n_heap == js->cap_heap) {
        size_t cap = js->cap_heap ? js->cap_heap * 2 : 256;
        struct hent *h = fl_realloc(js->heap, cap * sizeof *h);
        if (h == NULL) {
            return FL_ENOMEM;
        }
        js->heap = h;
        js->cap_heap = cap;
    }
    i = js->n_heap++;
    js->heap[i] = (struct hent){e->next_ms, e->gen, e};
    while (i > 0 && heap_less(&js->heap[i], &js->heap[(i - 1) / 2])) {
        struct hent tmp = js->heap[i];
        js->heap[i] = js->heap[(i - 1) / 2];
        js->heap[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
    return FL_OK;
}

static void heap_pop(struct jobs *js)
{
    size_t i = 0;
    js->heap[0] = js->heap[--js->n_heap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < js->n_heap && heap_less(&js->heap[l], &js->heap[m])) {
            m = l;
        }
        if (r < js->n_heap && heap_less(&js->heap[r], &js->heap[m])) {
            m = r;
        }
        if (m == i) {
            break;
        }
        struct hent tmp = js->heap[i];
        js->heap[i] = js->heap[m];
        js->heap[m] = tmp;
        i = m;
    }
}

/* A heap entry is stale once its job was reloaded, deleted or paused:
 * entries carry the generation they were pushed with. A jent is freed only
 * by forget_all, which empties the heap too. */
static struct jent *heap_live(const struct hent *h)
{
    return h->gen == h->j->gen ? h->j : NULL;
}

static void forget_all(struct jobs *js)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(&js->entries, &i, &k, &v)) {
        fl_free(v);
    }
    strmap_close(&js->entries);
    strmap_init(&js->entries);
    js->n_heap = 0;
    js->loaded = 0;
    js->st.tracked = 0;
}

/* (Re)load one job from the store into the heap; paused or deleted jobs
 * leave it. Freed entries are never referenced by the heap: entries are
 * kept (with a new generation) instead of freed while the leader runs. */
static void load_job(struct jobs *js, const struct store_job *j)
{
    struct jent *e = strmap_get(&js->entries, j->name);
    uint64_t gen = ++js->gen;
    if (e == NULL) {
        e = fl_calloc(1, sizeof *e);
        if (e == NULL || strmap_put(&js->entries, j->name, e, NULL) != FL_OK) {
            fl_free(e);
            FL_ERROR("job %s: out of memory; not scheduled", j->name);
            return;
        }
        js->st.tracked++;
    }
    if (jent_fill(js, e, j) != FL_OK || j->paused) {
        e->gen = gen; /* not in the heap */
        return;
    }
    e->gen = gen;
    e->next_ms = next_after(e, j->last_sched_ms);
    if (e->next_ms != 0) {
        heap_push(js, e);
    }
}

static void unload_job(struct jobs *js, const char *name)
{
    struct jent *e = strmap_get(&js->entries, name);
    if (e != NULL) {
        e->gen = ++js->gen; /* heap entries go stale; the jent stays until forget_all */
    }
}

static void load_all(struct jobs *js)
{
    struct store_txn *t;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    forget_all(js);
    if (store_begin(js->io->store(js->io->impl), 0, &t) != FL_OK) {
        return;
    }
    if (store_cursor_open(t, STORE_JOBS, NULL, 0, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            struct store_job j;
            if (store_job_decode(v, vl, &j) == FL_OK) {
                load_job(js, &j);
            }
        }
        store_cursor_close(c);
    }
    store_abort(t);
    js->loaded = 1;
    FL_INFO("cron clock: %llu jobs", (unsigned long long)js->st.tracked);
}

static void reload_dirty(struct jobs *js)
{
    struct store_txn *t;
    size_t i = 0;
    const char *name;
    void *v;
    if (strmap_size(&js->dirty) == 0 || store_begin(js->io->store(js->io->impl), 0, &t) != FL_OK) {
        return;
    }
    while (strmap_next(&js->dirty, &i, &name, &v)) {
        struct store_job j;
        if (js->loaded) {
            if (store_job_get(t, name, &j) == FL_OK) {
                load_job(js, &j);
            } else {
                unload_job(js, name);
            }
        }
        strmap_del(&js->dirty, name);
    }
    store_abort(t);
}

/* ---- firing ------------------------------------------------------------------------ */

static void fire_cb(void *data, int err, const struct fsm_result *res)
{
    struct jobs *js = data;
    if (err != FL_OK) {
        return; /* not committed here: the next leader decides from the store */
    }
    if (res->err == FL_EEXIST) {
        js->st.refused++;
    } else if (res->err == FL_OK && strcmp(res->outcome, "started") == 0) {
        js->st.fired++;
    }
    if (js->hooks.kick != NULL) {
        js->hooks.kick(js->hooks.data);
    }
}

int jobs_node_matches(const struct store_node *n, const struct sched_unit *u)
{
    struct sched_node sn;
    const char *labels[STORE_NODE_LABELS + 1];
    char self[STORE_NODE_ID_MAX + 8];
    for (unsigned i = 0; i < n->n_labels; i++) {
        labels[i] = n->labels[i];
    }
    snprintf(self, sizeof self, "node=%s", n->id);
    labels[n->n_labels] = self;
    memset(&sn, 0, sizeof sn);
    sn.id = n->id;
    sn.n_labels = n->n_labels + 1;
    sn.labels = labels;
    return sched_node_matches(&sn, u);
}

/* Mode all: the nodes that can run the job now. */
static unsigned eligible(struct jobs *js, const struct jent *e, char (*ids)[STORE_NODE_ID_MAX],
                         unsigned max)
{
    struct store_txn *t;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    unsigned n = 0;
    const char *cons[STORE_TASK_CONSTRAINTS];
    struct sched_unit u;
    for (unsigned i = 0; i < e->n_constraints; i++) {
        cons[i] = e->constraints[i];
    }
    memset(&u, 0, sizeof u);
    u.n_constraints = e->n_constraints;
    u.constraints = cons;
    if (store_begin(js->io->store(js->io->impl), 0, &t) != FL_OK) {
        return 0;
    }
    if (store_cursor_open(t, STORE_NODES, NULL, 0, &c) == FL_OK) {
        while (n < max && store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            struct store_node nd;
            if (store_node_decode(v, vl, &nd) != FL_OK || nd.lost || nd.drain || nd.cap == 0 ||
                (js->hooks.connected != NULL && !js->hooks.connected(js->hooks.data, nd.id))) {
                continue;
            }
            if (jobs_node_matches(&nd, &u)) {
                snprintf(ids[n++], STORE_NODE_ID_MAX, "%s", nd.id);
            }
        }
        store_cursor_close(c);
    }
    store_abort(t);
    return n;
}

unsigned jobs_eligible(struct jobs *js, const struct store_job *j, char (*ids)[STORE_NODE_ID_MAX],
                       unsigned max)
{
    struct jent e;
    if (jent_fill(js, &e, j) != FL_OK) {
        return 0;
    }
    return eligible(js, &e, ids, max);
}

static void propose(struct jobs *js, const struct jent *e, uint64_t sched, uint32_t missed,
                    int skip)
{
    static char ids[256][STORE_NODE_ID_MAX];
    const char *ptrs[256];
    struct fsm_cmd c;
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_JOB_FIRE;
    c.u.job.name = e->name;
    c.u.job.nlen = strlen(e->name);
    c.u.job.sched_ms = sched;
    c.u.job.missed = missed;
    c.u.job.skip = skip;
    if (e->mode == STORE_JOB_ALL && !skip) {
        c.u.job.n_nodes = eligible(js, e, ids, 256);
        for (unsigned i = 0; i < c.u.job.n_nodes; i++) {
            ptrs[i] = ids[i];
        }
        c.u.job.node_ptrs = ptrs;
    }
    if (js->io->propose(js->io->impl, &c, fire_cb, js) == FL_OK) {
        js->st.proposed++;
    }
}

/* One due entry: fire it on time, or fold a misfire. Returns the time it
 * covered (the next fire is computed after it). */
static uint64_t fire_due(struct jobs *js, const struct jent *e, uint64_t now)
{
    uint64_t t = e->next_ms, latest = t, n;
    uint32_t k = 1;
    if (now <= t + JOBS_MISFIRE_GRACE_MS) {
        propose(js, e, t, 0, 0);
        return t;
    }
    while (k < MISSED_MAX && (n = next_after(e, latest)) != 0 && n <= now) {
        latest = n;
        k++;
    }
    if (e->misfire == STORE_MISFIRE_RUN_ONCE &&
        (e->start_deadline_ms == 0 || now - latest <= e->start_deadline_ms)) {
        propose(js, e, latest, k - 1, 0);
    } else {
        propose(js, e, latest, k - 1, 1);
    }
    FL_INFO("job %s: misfire, %u schedule time%s missed", e->name, k, k == 1 ? "" : "s");
    return latest;
}

static void arm(struct jobs *js);

static void alarm_cb(void *arg)
{
    struct jobs *js = arg;
    uint64_t now = js->io->wall_ms(js->io->impl);
    reload_dirty(js);
    while (js->loaded && js->n_heap > 0 && js->heap[0].next_ms <= now) {
        struct hent top = js->heap[0];
        struct jent *e;
        heap_pop(js);
        if ((e = heap_live(&top)) == NULL) {
            continue;
        }
        e->next_ms = next_after(e, fire_due(js, e, now));
        if (e->next_ms != 0) {
            heap_push(js, e);
        }
    }
    arm(js);
}

/* Wake at the heap's first time (at most a second from now: the wall clock
 * may move under the loop's monotonic timers). */
static void arm(struct jobs *js)
{
    uint64_t now = js->io->wall_ms(js->io->impl), wait = 1000;
    if (js->loaded && js->n_heap > 0) {
        wait = js->heap[0].next_ms <= now ? 0 : js->heap[0].next_ms - now;
        if (wait > 1000) {
            wait = 1000;
        }
    }
    js->alarm_due = now + wait;
    js->io->alarm(js->io->impl, wait, alarm_cb, js);
}

static void tick_cb(void *arg)
{
    struct jobs *js = arg;
    uint64_t term;
    if (!js->io->leader(js->io->impl, &term)) {
        if (js->loaded) {
            forget_all(js);
        }
        js->st.leading = 0;
        return;
    }
    js->st.leading = 1;
    if (!js->loaded) {
        strmap_close(&js->dirty);
        strmap_init(&js->dirty);
        load_all(js);
        arm(js);
    }
}

/* An effect of an applied entry: a job changed or is gone. */
static void on_effect(void *data, const struct fsm_effect *e)
{
    struct jobs *js = data;
    if (e->type != FSM_EFF_JOB) {
        return;
    }
    /* The job is read from the store at the next alarm or tick. */
    if (js->loaded) {
        strmap_put(&js->dirty, e->name, js, NULL);
        uint64_t now = js->io->wall_ms(js->io->impl);
        if (js->alarm_due > now + 50) {
            js->alarm_due = now + 50;
            js->io->alarm(js->io->impl, 50, alarm_cb, js);
        }
    }
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int jobs_create(const struct leader_io *io, const struct jobs_hooks *hooks, struct jobs **out)
{
    struct jobs *js = fl_calloc(1, sizeof *js);
    if (js == NULL) {
        return FL_ENOMEM;
    }
    js->io = io;
    if (hooks != NULL) {
        js->hooks = *hooks;
    }
    strmap_init(&js->zones);
    strmap_init(&js->entries);
    strmap_init(&js->dirty);
    if (io->timer_start(io->impl, TICK_MS, tick_cb, js) != FL_OK) {
        strmap_close(&js->zones);
        strmap_close(&js->entries);
        strmap_close(&js->dirty);
        fl_free(js);
        return FL_EIO;
    }
    if (io->subscribe(io->impl, on_effect, js) != FL_OK) {
        io->timer_close(io->impl, NULL, NULL);
        strmap_close(&js->zones);
        strmap_close(&js->entries);
        strmap_close(&js->dirty);
        fl_free(js);
        return FL_EBUSY;
    }
    *out = js;
    return FL_OK;
}

static void closed(void *arg)
{
    struct jobs *js = arg;
    size_t i = 0;
    const char *k;
    void *v;
    forget_all(js);
    strmap_close(&js->entries);
    strmap_close(&js->dirty);
    while (strmap_next(&js->zones, &i, &k, &v)) {
        fl_tz_destroy(v);
    }
    strmap_close(&js->zones);
    fl_free(js->heap);
    if (js->close_cb != NULL) {
        js->close_cb(js->close_data);
    }
    fl_free(js);
}

void jobs_close(struct jobs *js, void (*cb)(void *data), void *data)
{
    js->close_cb = cb;
    js->close_data = data;
    js->io->unsubscribe(js->io->impl, on_effect, js);
    js->io->timer_close(js->io->impl, closed, js);
}

void jobs_stats(struct jobs *js, struct jobs_stats *out)
{
    *out = js->st;
}
