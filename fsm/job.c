/* Cron jobs: the commands and their apply (docs/JOBS.md).
 *
 * DESIGN.md "Guarantees": a cron job fires at most once per (job, scheduled
 * time), across leader changes, because the fire is committed before
 * dispatch. Here that is one comparison: a scheduled JOB_FIRE whose time is
 * not after the job's last_sched_ms changes nothing (FL_EEXIST), so a fire a
 * deposed leader proposed, or a new leader proposes again, is refused on
 * every replica. The run's tasks are created by the same command, in the
 * same transaction, so a fire that is recorded has its tasks and one that is
 * refused has none.
 *
 * Overlap (what a fire does while the job's previous run is unfinished):
 * allow runs both; forbid holds the lock cron/NAME for the run's lifetime
 * (a fencing token from the lock table; a user session holding cron/NAME
 * blocks the job too) and skips fires while it is held; replace cancels the
 * previous run's tasks; queue records the fire and starts it when the
 * previous run ends. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "fsm/fsm_int.h"

/* ---- validation and encoding ------------------------------------------------ */

int fsm_job_name_check(const char *name, size_t n, char *errmsg)
{
    if (n == 0 || n >= STORE_JOB_NAME_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "job name must be 1-%d characters",
                       STORE_JOB_NAME_MAX - 1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        int alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-'))) {
            return fl_errf(errmsg, FL_EINVAL,
                           "job name may only hold A-Z, a-z, 0-9, '_', '.', '-' and must start "
                           "with a letter or a digit");
        }
    }
    return FL_OK;
}

int fsm__job_validate(const struct fsm_cmd *c, char *errmsg)
{
    int rv = fsm_job_name_check(c->u.job.name, c->u.job.nlen, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (c->type == FSM_CMD_JOB_PUT) {
        struct store_job j;
        if (store_job_decode(c->u.job.def, c->u.job.def_len, &j) != FL_OK) {
            return fl_errf(errmsg, FL_EINVAL, "job definition does not decode");
        }
        if (strlen(j.name) != c->u.job.nlen || memcmp(j.name, c->u.job.name, c->u.job.nlen) != 0) {
            return fl_errf(errmsg, FL_EINVAL, "job definition names another job");
        }
        if ((j.sched == STORE_JOB_CRON && j.expr[0] == '\0') ||
            (j.sched == STORE_JOB_EVERY && j.every_ms < 1000)) {
            return fl_errf(errmsg, FL_EINVAL, "a job needs a cron expression or an interval >= 1s");
        }
        if (c->u.job.def_len > 300 * 1024) {
            return fl_errf(errmsg, FL_ETOOBIG, "job definition over 300 KiB");
        }
    }
    if (c->type == FSM_CMD_JOB_FIRE && c->u.job.n_nodes > FSM_JOB_NODES_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "at most %d nodes per fire", FSM_JOB_NODES_MAX);
    }
    return FL_OK;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Record an effect for the cron clock (fsm/fsm.h "Effects"). */
static void emit(struct fsm *f, const char *name, int deleted)
{
    struct fsm_effect *e = fsm__effect(f, FSM_EFF_JOB, name, strlen(name));
    if (e != NULL) {
        e->deleted = deleted;
    }
}

/* Task ids of a run: "j" + 16 hex of BLAKE2b(name) + "-" + run number
 * (+ "-" + node index in mode all): deterministic, unique, short. */
static void run_base(char *out, size_t cap, const char *name, uint64_t seq)
{
    uint8_t h[8];
    char hex[17];
    crypto_generichash(h, sizeof h, (const unsigned char *)name, strlen(name), NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(out, cap, "j%s-%llu", hex, (unsigned long long)seq);
}

/* The holder of cron/NAME for run `seq` (overlap forbid). */
static void run_holder(char *out, size_t cap, const char *name, uint64_t seq)
{
    run_base(out, cap, name, seq);
    out[0] = 'r'; /* "r<hash>-<run>": the run's task id base with another letter */
}

static void lock_key(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "cron/%s", name);
}

/* 1 while some task of the job's current run is unfinished. */
static int run_active(struct store_txn *t, const struct store_job *j, int *active)
{
    *active = 0;
    for (size_t off = 0; off < j->active_len;) {
        const char *id = (const char *)j->active + off;
        size_t n = strnlen(id, j->active_len - off);
        struct store_task task;
        char buf[STORE_TASK_ID_MAX];
        int rv;
        if (n == 0 || n >= sizeof buf || off + n >= j->active_len) {
            break;
        }
        memcpy(buf, id, n + 1);
        rv = store_task_get(t, buf, &task);
        if (rv == FL_OK && task.state < STORE_TASK_DONE) {
            *active = 1;
            return FL_OK;
        }
        if (rv != FL_OK && rv != FL_ENOTFOUND) {
            return rv;
        }
        off += n + 1;
    }
    return FL_OK;
}

/* Keep the last STORE_JOB_RUNS_KEPT records of a job (the oldest go). */
static int prune_runs(struct store_txn *t, const char *name)
{
    uint8_t prefix[STORE_JOB_NAME_MAX + 1];
    size_t plen = strlen(name) + 1, count = 0;
    struct store_cursor *c;
    const void *k, *v, *first = NULL;
    size_t kl, vl, first_len = 0;
    uint8_t first_key[STORE_JOB_NAME_MAX + 9];
    int rv;
    memcpy(prefix, name, plen);
    rv = store_cursor_open(t, STORE_RUNS, prefix, plen, &c);
    if (rv != FL_OK) {
        return rv;
    }
    while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK && kl > plen &&
           memcmp(k, prefix, plen) == 0) {
        if (count == 0 && kl <= sizeof first_key) {
            memcpy(first_key, k, kl);
            first = first_key;
            first_len = kl;
        }
        if (++count > STORE_JOB_RUNS_KEPT) {
            break;
        }
    }
    store_cursor_close(c);
    if (count > STORE_JOB_RUNS_KEPT && first != NULL) {
        return store_del(t, STORE_RUNS, first, first_len);
    }
    return FL_OK;
}

/* Submit one task of a run from the job's template. */
static int submit_task(struct fsm *f, const struct store_job *j, const char *id,
                       const char *task_name, const char *node, uint64_t index, uint64_t now)
{
    void *mem;
    struct fsm_cmd cmd;
    struct fsm_result res;
    char pin[STORE_NODE_ID_MAX + 8];
    const char *host_ptrs[1];
    int rv = fsm_cmd_decode_one(j->tmpl, j->tmpl_len, &mem, &cmd);
    if (rv != FL_OK || cmd.type != FSM_CMD_TASK_SUBMIT) {
        fl_free(mem);
        return FL_OK; /* a template that does not decode runs nothing (checked at JOB_PUT) */
    }
    cmd.u.task.id = id;
    cmd.u.task.idlen = strlen(id);
    cmd.u.task.name = task_name;
    cmd.u.task.namelen = strlen(task_name);
    cmd.u.task.idem = "";
    cmd.u.task.idemlen = 0;
    if (node != NULL) {
        /* mode all: one host, the node, and pinned to it */
        host_ptrs[0] = node;
        cmd.u.task.host_ptrs = host_ptrs;
        cmd.u.task.n_hosts = 1;
        cmd.u.task.unit_size = 1;
        snprintf(pin, sizeof pin, "node=%s", node);
        if (cmd.u.task.n_constraints < STORE_TASK_CONSTRAINTS) {
            cmd.u.task.constraints[cmd.u.task.n_constraints] = pin;
            cmd.u.task.constraint_lens[cmd.u.task.n_constraints] = strlen(pin);
            cmd.u.task.n_constraints++;
        }
    }
    memset(&res, 0, sizeof res);
    rv = fsm__apply_sched(f, &cmd, index, now, &res);
    if (rv == FL_OK) {
        fsm__sched_effects(f, &cmd, &res); /* the dispatcher places the new task */
    }
    fl_free(mem);
    return rv;
}

/* Start a run: its tasks, the job's active list and the run record's task
 * list. nodes: mode all's eligible nodes (n > 0), else NULL. */
static int start_run(struct fsm *f, struct store_job *j, struct store_run *r, struct fl_buf *active,
                     const struct fsm_cmd *c, uint64_t index, uint64_t now)
{
    char base[STORE_TASK_ID_MAX], id[64], tname[STORE_TASK_NAME_MAX + 64];
    uint32_t n = j->mode == STORE_JOB_ALL && c != NULL ? c->u.job.n_nodes : 1;
    int rv = FL_OK;

    j->run_seq++;
    run_base(base, sizeof base, j->name, j->run_seq);
    fl_buf_reset(active);
    for (uint32_t i = 0; i < n && rv == FL_OK; i++) {
        char node[STORE_NODE_ID_MAX];
        const char *pinned = NULL;
        if (j->mode == STORE_JOB_ALL && c != NULL) {
            snprintf(node, sizeof node, "%s", c->u.job.node_ptrs[i]);
            pinned = node;
            snprintf(id, sizeof id, "%s-%u", base, i);
        } else {
            snprintf(id, sizeof id, "%s", base);
        }
        struct store_job_ref ref = {.sched_ms = r->sched_ms, .index = i, .total = n};
        snprintf(ref.job, sizeof ref.job, "%s", j->name);
        rv = store_job_ref_name(&ref, tname, sizeof tname);
        if (rv == FL_OK) {
            rv = submit_task(f, j, id, tname, pinned, index, now);
        }
        if (rv == FL_OK) {
            rv = fl_buf_append(active, id, strlen(id) + 1);
        }
    }
    if (rv == FL_OK) {
        j->runs++;
        r->outcome = STORE_RUN_STARTED;
        r->tasks = active->data;
        r->tasks_len = active->len;
        j->active = active->data;
        j->active_len = active->len;
    }
    return rv;
}

/* ---- commands --------------------------------------------------------------- */

static int job_put(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                   struct fsm_result *res)
{
    struct store_job def, cur;
    int rv = store_job_decode(c->u.job.def, c->u.job.def_len, &def);
    if (rv != FL_OK) {
        return FL_OK; /* validated before; a backstop */
    }
    rv = store_job_get(f->txn, def.name, &cur);
    if (rv == FL_OK && c->u.job.manual) {
        res->err = FL_EEXIST; /* create only */
        return FL_OK;
    }
    if (rv == FL_OK) {
        /* A re-definition keeps what the job has done. */
        def.created_ms = cur.created_ms;
        def.last_sched_ms = cur.last_sched_ms;
        def.runs = cur.runs;
        def.queued = cur.queued;
        def.run_seq = cur.run_seq;
        def.active = cur.active;
        def.active_len = cur.active_len;
    } else if (rv == FL_ENOTFOUND) {
        def.created_ms = now;
        def.last_sched_ms = now; /* no backfill of times before its creation */
        def.runs = def.queued = 0;
        def.run_seq = 0;
        def.active = NULL;
        def.active_len = 0;
    } else {
        return rv;
    }
    def.updated_index = index;
    rv = store_job_put(f->txn, &def);
    if (rv == FL_OK) {
        emit(f, def.name, 0);
    }
    return rv;
}

static int job_del(struct fsm *f, const char *name, struct fsm_result *res)
{
    uint8_t prefix[STORE_JOB_NAME_MAX + 1];
    size_t plen = strlen(name) + 1;
    struct store_cursor *c;
    struct fl_buf keys;
    const void *k, *v;
    size_t kl, vl;
    int rv = store_del(f->txn, STORE_JOBS, name, strlen(name));
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    /* Its history goes too; running tasks finish on their own. */
    memcpy(prefix, name, plen);
    fl_buf_init(&keys);
    rv = store_cursor_open(f->txn, STORE_RUNS, prefix, plen, &c);
    while (rv == FL_OK && store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK && kl > plen &&
           memcmp(k, prefix, plen) == 0) {
        uint32_t n = (uint32_t)kl;
        rv = fl_buf_append(&keys, &n, sizeof n);
        if (rv == FL_OK) {
            rv = fl_buf_append(&keys, k, kl);
        }
    }
    if (c != NULL) {
        store_cursor_close(c);
    }
    for (size_t off = 0; rv == FL_OK && off < keys.len;) {
        uint32_t n;
        memcpy(&n, keys.data + off, sizeof n);
        off += sizeof n;
        rv = store_del(f->txn, STORE_RUNS, keys.data + off, n);
        off += n;
    }
    fl_buf_close(&keys);
    if (rv == FL_OK) {
        emit(f, name, 1);
    }
    return rv;
}

static int job_pause(struct fsm *f, const struct fsm_cmd *c, const char *name, uint64_t now,
                     struct fsm_result *res)
{
    struct store_job j;
    int rv = store_job_get(f->txn, name, &j);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (j.paused && !c->u.job.paused && j.last_sched_ms < now) {
        j.last_sched_ms = now; /* resumed: the times it slept through are not misfires */
    }
    j.paused = c->u.job.paused;
    rv = store_job_put(f->txn, &j);
    if (rv == FL_OK) {
        emit(f, name, 0);
    }
    return rv;
}

static int job_fire(struct fsm *f, const struct fsm_cmd *c, const char *name, uint64_t index,
                    uint64_t now, struct fsm_result *res)
{
    struct store_job j;
    struct store_run r;
    struct fl_buf active;
    char key[STORE_LOCK_KEY_MAX], holder[STORE_SESSION_ID_MAX];
    int rv, busy = 0;

    rv = store_job_get(f->txn, name, &j);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    memset(&r, 0, sizeof r);
    r.fired_ms = now;
    r.missed = c->u.job.missed;
    if (c->u.job.manual) {
        r.manual = 1;
        r.sched_ms = now;
    } else {
        if (c->u.job.sched_ms <= j.last_sched_ms) {
            res->err = FL_EEXIST; /* fired (or passed) already: at most once */
            res->sched_ms = j.last_sched_ms;
            return FL_OK;
        }
        j.last_sched_ms = c->u.job.sched_ms;
        r.sched_ms = c->u.job.sched_ms;
    }
    fl_buf_init(&active);
    if (c->u.job.skip) {
        r.outcome = STORE_RUN_MISSED;
    } else if (j.paused && !r.manual) {
        r.outcome = STORE_RUN_SKIPPED_PAUSED;
    } else if (j.mode == STORE_JOB_ALL && c->u.job.n_nodes == 0) {
        r.outcome = STORE_RUN_NO_NODES;
    } else {
        rv = run_active(f->txn, &j, &busy);
        if (rv == FL_OK && j.overlap == STORE_OVERLAP_FORBID) {
            lock_key(key, sizeof key, j.name);
            run_holder(holder, sizeof holder, j.name, j.run_seq + 1);
            rv = fsm__lock_hold(f, key, holder, now, &r.token);
            if (rv == FL_EBUSY) {
                r.outcome = STORE_RUN_SKIPPED_OVERLAP;
                rv = FL_OK;
            }
        } else if (rv == FL_OK && busy && j.overlap == STORE_OVERLAP_QUEUE) {
            if (j.queued >= STORE_JOB_RUNS_KEPT / 2) {
                r.outcome = STORE_RUN_MISSED; /* the queue is bounded */
            } else {
                j.queued++;
                r.outcome = STORE_RUN_QUEUED;
            }
        } else if (rv == FL_OK && busy && j.overlap == STORE_OVERLAP_REPLACE) {
            for (size_t off = 0; rv == FL_OK && off < j.active_len;) {
                const char *id = (const char *)j.active + off;
                size_t n = strnlen(id, j.active_len - off);
                struct fsm_cmd cancel;
                struct fsm_result cres;
                memset(&cancel, 0, sizeof cancel);
                cancel.type = FSM_CMD_TASK_CANCEL;
                cancel.u.task.id = id;
                cancel.u.task.idlen = n;
                memset(&cres, 0, sizeof cres);
                rv = fsm__apply_sched(f, &cancel, index, now, &cres);
                if (rv == FL_OK) {
                    fsm__sched_effects(f, &cancel, &cres); /* CANCEL goes to the agents */
                }
                r.replaced += cres.err == FL_OK;
                off += n + 1;
            }
        }
        if (rv == FL_OK && r.outcome == 0) {
            rv = start_run(f, &j, &r, &active, c, index, now);
        }
    }
    if (rv == FL_OK) {
        rv = store_run_put(f->txn, j.name, &r);
    }
    if (rv == FL_OK) {
        rv = prune_runs(f->txn, j.name);
    }
    if (rv == FL_OK) {
        rv = store_job_put(f->txn, &j);
    }
    fl_buf_close(&active);
    if (rv == FL_OK) {
        res->sched_ms = r.sched_ms;
        res->index = index;
        snprintf(res->outcome, sizeof res->outcome, "%s", store_run_outcome_name(r.outcome));
        emit(f, name, 0);
    }
    return rv;
}

/* The oldest queued fire of a job, to start now. */
static int oldest_queued(struct store_txn *t, const char *name, struct store_run *out)
{
    uint8_t prefix[STORE_JOB_NAME_MAX + 1];
    size_t plen = strlen(name) + 1;
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rv;
    memcpy(prefix, name, plen);
    rv = store_cursor_open(t, STORE_RUNS, prefix, plen, &c);
    if (rv != FL_OK) {
        return rv;
    }
    rv = FL_ENOTFOUND;
    while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK && kl > plen &&
           memcmp(k, prefix, plen) == 0) {
        if (store_run_decode(v, vl, out) == FL_OK && out->outcome == STORE_RUN_QUEUED) {
            rv = FL_OK;
            break;
        }
    }
    store_cursor_close(c);
    return rv;
}

int fsm__job_task_finished(struct fsm *f, const struct store_task *task, uint64_t index,
                           uint64_t now)
{
    char key[STORE_LOCK_KEY_MAX], holder[STORE_SESSION_ID_MAX];
    const char *name = task->job.job;
    struct store_job j;
    struct store_run r;
    struct fl_buf active;
    int rv, busy;

    if (name[0] == '\0' || strlen(name) >= STORE_JOB_NAME_MAX) {
        return FL_OK;
    }
    rv = store_job_get(f->txn, name, &j);
    if (rv == FL_ENOTFOUND) {
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    rv = run_active(f->txn, &j, &busy);
    if (rv != FL_OK || busy) {
        return rv; /* not this run, or not all of its tasks yet */
    }
    if (j.overlap == STORE_OVERLAP_FORBID) {
        lock_key(key, sizeof key, j.name);
        run_holder(holder, sizeof holder, j.name, j.run_seq);
        rv = fsm__lock_drop(f, key, holder, now);
    }
    if (rv != FL_OK || j.overlap != STORE_OVERLAP_QUEUE || j.queued == 0) {
        return rv;
    }
    /* Queue: the oldest queued fire starts now (mode all: on the nodes of
     * the fire that queued it is unknown, so on none; queue is for mode one). */
    if (oldest_queued(f->txn, name, &r) != FL_OK) {
        j.queued = 0;
        return store_job_put(f->txn, &j);
    }
    j.queued--;
    fl_buf_init(&active);
    r.fired_ms = now;
    rv = start_run(f, &j, &r, &active, NULL, index, now);
    if (rv == FL_OK) {
        rv = store_run_put(f->txn, j.name, &r);
    }
    if (rv == FL_OK) {
        rv = store_job_put(f->txn, &j);
    }
    fl_buf_close(&active);
    if (rv == FL_OK) {
        emit(f, name, 0);
    }
    return rv;
}

int fsm__apply_job(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                   struct fsm_result *res)
{
    char name[STORE_JOB_NAME_MAX];
    snprintf(name, sizeof name, "%.*s", (int)c->u.job.nlen, c->u.job.name);
    switch (c->type) {
    case FSM_CMD_JOB_PUT:
        return job_put(f, c, index, now, res);
    case FSM_CMD_JOB_DEL:
        return job_del(f, name, res);
    case FSM_CMD_JOB_PAUSE:
        return job_pause(f, c, name, now, res);
    case FSM_CMD_JOB_FIRE:
        return job_fire(f, c, name, index, now, res);
    default:
        res->err = FL_EVERSION;
        return FL_OK;
    }
}
