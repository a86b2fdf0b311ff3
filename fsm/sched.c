/* Applying the scheduling commands: tasks split into units, assignments
 * within caps with fencing tokens, results, requeues, node loss, cancel and
 * the dispatch switch (docs/SCHEDULER.md).
 *
 * Every decision here is made from the entry and the store alone, so every
 * replica reaches the same state. The invariants the store keeps:
 *   - a unit is in QUEUE iff its state is QUEUED;
 *   - a unit is in NODEUNITS under node N iff it is RUNNING on N;
 *   - node.running == the number of its NODEUNITS entries, and an
 *     assignment is refused when node.running >= node.cap, the node drains,
 *     is lost, or dispatch is paused: a node never has more than cap units;
 *   - a task never has more than max_running units RUNNING (when set), and
 *     a unit placed on its host runs on that node only;
 *   - tokens come from one counter (meta "fence") and strictly increase. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "fsm/fsm_int.h"
#include "scheduler/admit.h"
#include "scheduler/sched.h"

/* A job run's task has finished: fsm/job.c releases the run's lock or
 * starts its next queued run once the current command is applied
 * (fsm__apply_sched). */
static void task_finished(struct fsm *f, const struct store_task *task)
{
    if (task->job.job[0] != '\0' &&
        fl_buf_append(&f->finished_runs, task->id, strlen(task->id) + 1) != FL_OK) {
        fsm_fatal_hook("out of memory recording a finished job run");
    }
}

int fsm__meta_u64(struct store_txn *t, const char *name, uint64_t *out)
{
    char buf[32];
    int rv = store_meta_get(t, name, buf, sizeof buf);
    *out = 0;
    if (rv == FL_OK) {
        *out = strtoull(buf, NULL, 10);
    }
    return rv == FL_ENOTFOUND ? FL_OK : rv;
}

int fsm__meta_put_u64(struct store_txn *t, const char *name, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return store_meta_put(t, name, buf);
}

static size_t nodeunit_key(char *out, const char *node, const char *task, uint32_t unit)
{
    size_t n = strlen(node);
    memcpy(out, node, n);
    out[n] = '\0';
    return n + 1 + store_unit_key(out + n + 1, task, unit);
}

/* ---- submit ------------------------------------------------------------- */

static int task_submit(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                       struct fsm_result *res)
{
    struct store_txn *t = f->txn;
    struct store_task task;
    struct store_unit u;
    struct fl_buf hosts;
    char id[STORE_TASK_ID_MAX];
    const void *v;
    size_t vl;
    int rv;

    fsm__copy_str(id, sizeof id, c->u.task.id, c->u.task.idlen);
    if (c->u.task.idemlen > 0) {
        rv = store_get(t, STORE_IDEM, c->u.task.idem, c->u.task.idemlen, &v, &vl);
        if (rv == FL_OK) {
            res->err = FL_EEXIST;
            fsm__copy_str(res->task_id, sizeof res->task_id, v, vl);
            return FL_OK;
        }
        if (rv != FL_ENOTFOUND) {
            return rv;
        }
    }
    rv = fsm__task_get(f, id, &task);
    if (rv == FL_OK) {
        res->err = FL_EEXIST;
        fsm__copy_str(res->task_id, sizeof res->task_id, id, strlen(id));
        return FL_OK;
    }
    if (rv != FL_ENOTFOUND) {
        return rv;
    }
    memset(&task, 0, sizeof task);
    memcpy(task.id, id, sizeof id);
    fsm__copy_str(task.name, sizeof task.name, c->u.task.name, c->u.task.namelen);
    task.state = STORE_TASK_QUEUED;
    task.priority = c->u.task.priority;
    task.seq = index;
    task.unit_size = c->u.task.unit_size;
    task.n_hosts = c->u.task.n_hosts;
    task.n_units = sched_split(c->u.task.n_hosts, c->u.task.unit_size);
    task.timeout_ms = c->u.task.timeout_ms;
    task.retries = c->u.task.retries;
    task.n_constraints = c->u.task.n_constraints;
    for (unsigned i = 0; i < task.n_constraints; i++) {
        fsm__copy_str(task.constraints[i], sizeof task.constraints[i], c->u.task.constraints[i],
                      c->u.task.constraint_lens[i]);
    }
    task.spec = c->u.task.spec;
    task.spec_len = c->u.task.spec_len;
    task.max_running = c->u.task.max_running;
    task.fail_stop = c->u.task.fail_stop;
    task.placement = c->u.task.placement == FSM_PLACE_HOST ? FSM_PLACE_HOST : FSM_PLACE_ANY;
    task.created_ms = now;
    task.units_queued = task.n_units;
    rv = fsm__task_put(f, &task);
    if (rv != FL_OK) {
        return rv;
    }
    fl_buf_init(&hosts);
    for (uint32_t unit = 0; unit < task.n_units && rv == FL_OK; unit++) {
        uint32_t first = unit * task.unit_size;
        uint32_t last =
            first + task.unit_size > task.n_hosts ? task.n_hosts : first + task.unit_size;
        uint8_t qkey[12 + STORE_TASK_ID_MAX + 5];
        size_t qlen;
        fl_buf_reset(&hosts);
        for (uint32_t h = first; h < last; h++) {
            const char *name;
            size_t n;
            if (fsm_cmd_host(c, h, &name, &n) != FL_OK || fl_buf_append(&hosts, name, n) != FL_OK ||
                fl_buf_append(&hosts, "", 1) != FL_OK) {
                fl_buf_close(&hosts);
                return FL_ENOMEM;
            }
        }
        memset(&u, 0, sizeof u);
        u.state = STORE_UNIT_QUEUED;
        u.retries_left = task.retries;
        u.n_hosts = last - first;
        u.hosts = hosts.data;
        u.hosts_len = hosts.len;
        rv = store_unit_put(t, id, unit, &u);
        if (rv == FL_OK) {
            qlen = store_queue_key(qkey, task.priority, task.seq, id, unit);
            rv = store_index_put(t, STORE_QUEUE, qkey, qlen);
        }
    }
    fl_buf_close(&hosts);
    if (rv == FL_OK && c->u.task.idemlen > 0) {
        rv = store_put(t, STORE_IDEM, c->u.task.idem, c->u.task.idemlen, id, strlen(id));
    }
    fsm__copy_str(res->task_id, sizeof res->task_id, id, strlen(id));
    res->units = task.n_units;
    return rv;
}

/* ---- shared unit transitions ------------------------------------------- */

/* The unit leaves its node: running count and NODEUNITS entry. */
static int release_node(struct fsm *f, const char *task, uint32_t unit, const struct store_unit *u)
{
    struct store_node *n;
    char key[STORE_NODE_ID_MAX + STORE_TASK_ID_MAX + 8];
    int rv = fsm__node_ref(f, u->node, &n);
    if (rv == FL_OK) {
        if (n->running > 0) {
            n->running--;
            fsm__node_changed(f, n);
        }
    } else if (rv == FL_ENOTFOUND) {
        rv = FL_OK; /* the node was removed meanwhile */
    }
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_del(f->txn, STORE_NODEUNITS, key, nodeunit_key(key, u->node, task, unit));
    return rv == FL_ENOTFOUND ? FL_OK : rv;
}

static int requeue(struct store_txn *t, struct store_task *task, uint32_t unit,
                   struct store_unit *u, uint64_t now)
{
    uint8_t qkey[12 + STORE_TASK_ID_MAX + 5];
    size_t qlen;
    int rv;
    u->state = STORE_UNIT_QUEUED;
    u->retries_left--;
    memcpy(u->last_node, u->node, sizeof u->node);
    u->node[0] = '\0';
    u->not_before_ms = now + SCHED_RETRY_BACKOFF_MS;
    rv = store_unit_put(t, task->id, unit, u);
    if (rv != FL_OK) {
        return rv;
    }
    qlen = store_queue_key(qkey, task->priority, task->seq, task->id, unit);
    rv = store_index_put(t, STORE_QUEUE, qkey, qlen);
    task->units_running--;
    task->units_queued++;
    return rv;
}

static int finish_unit(struct fsm *f, struct store_task *task, uint32_t unit, struct store_unit *u,
                       const struct fsm_cmd *c, int status, int32_t exit_code, uint64_t now);

/* Hosts of the task that finished neither ok nor cancelled. */
static uint32_t failed_hosts(const struct store_task *task)
{
    uint32_t n = 0;
    for (int st = 1; st < STORE_ST__MAX; st++) {
        if (st != STORE_ST_OK && st != STORE_ST_CANCELLED) {
            n += task->hosts_by_status[st];
        }
    }
    return n;
}

/* fail_stop reached: the task is stopped and every unit still queued is
 * finished as cancelled, as a cancel does; running units run to completion
 * and are not retried. stopped is set first, so the finish_unit calls below
 * (cancelled units, which fail no host) do not come back here. */
static int stop_task(struct fsm *f, struct store_task *task, uint64_t now)
{
    struct store_txn *t = f->txn;
    int rv = FL_OK;
    task->stopped = 1;
    for (uint32_t unit = 0; unit < task->n_units && task->units_queued > 0 && rv == FL_OK; unit++) {
        struct store_unit u;
        uint8_t qkey[12 + STORE_TASK_ID_MAX + 5];
        if ((rv = store_unit_get(t, task->id, unit, &u)) != FL_OK) {
            break;
        }
        if (u.state == STORE_UNIT_QUEUED) {
            rv = store_del(t, STORE_QUEUE, qkey,
                           store_queue_key(qkey, task->priority, task->seq, task->id, unit));
            if (rv == FL_OK || rv == FL_ENOTFOUND) {
                rv = finish_unit(f, task, unit, &u, NULL, STORE_ST_CANCELLED, -1, now);
            }
        }
    }
    return rv;
}

/* Record the final per-host results of a unit and close the task when it was
 * the last one; stop the task when its failed hosts reach fail_stop. `c` may
 * be NULL: then every host gets `status`. */
static int finish_unit(struct fsm *f, struct store_task *task, uint32_t unit, struct store_unit *u,
                       const struct fsm_cmd *c, int status, int32_t exit_code, uint64_t now)
{
    struct store_txn *t = f->txn;
    size_t pos = 0, hlen;
    const char *host;
    uint32_t i = 0;
    int rv = FL_OK;
    int was_running = u->state == STORE_UNIT_RUNNING;

    while (rv == FL_OK && store_unit_host(u, &pos, &host, &hlen) == FL_OK) {
        struct store_result r;
        char key[STORE_HOST_MAX + STORE_TASK_ID_MAX + 8];
        size_t kl;
        memset(&r, 0, sizeof r);
        r.status = status;
        r.rc = exit_code;
        if (c != NULL) {
            struct fsm_host_result hr;
            int found = 0;
            if (i < c->u.unit.n_results && fsm_cmd_result(c, i, &hr) == FL_OK &&
                hr.hostlen == hlen && memcmp(hr.host, host, hlen) == 0) {
                found = 1;
            }
            for (uint32_t j = 0; !found && j < c->u.unit.n_results; j++) {
                if (fsm_cmd_result(c, j, &hr) == FL_OK && hr.hostlen == hlen &&
                    memcmp(hr.host, host, hlen) == 0) {
                    found = 1;
                }
            }
            if (found) {
                r.status = hr.status;
                r.rc = hr.rc;
                r.tail = hr.tail;
                r.tail_len = hr.tail_len > STORE_TAIL_MAX ? STORE_TAIL_MAX : hr.tail_len;
            } else {
                r.status = STORE_ST_ERROR; /* the agent reported nothing for it */
            }
        }
        r.attempt = u->attempt;
        r.token = u->token;
        memcpy(r.node, u->node, sizeof r.node);
        r.finished_ms = now;
        rv = store_result_put(t, task->id, unit, host, hlen, &r);
        if (rv == FL_OK) {
            memcpy(key, host, hlen);
            key[hlen] = '\0';
            kl = hlen + 1 + store_unit_key(key + hlen + 1, task->id, unit);
            rv = store_index_put(t, STORE_HOSTIDX, key, kl);
        }
        if (r.status > 0 && r.status < STORE_ST__MAX) {
            task->hosts_by_status[r.status]++;
        }
        i++;
    }
    if (rv != FL_OK) {
        return rv;
    }
    u->state = STORE_UNIT_DONE;
    u->status = status;
    u->exit_code = exit_code;
    u->finished_ms = now;
    rv = store_unit_put(t, task->id, unit, u);
    if (rv != FL_OK) {
        return rv;
    }
    if (was_running) {
        task->units_running--;
    } else {
        task->units_queued--;
    }
    task->units_done++;
    if (task->units_done == task->n_units) {
        task->finished_ms = now;
        if (task->cancel_requested) {
            task->state = STORE_TASK_CANCELLED;
        } else {
            task->state = task->hosts_by_status[STORE_ST_OK] == task->n_hosts ? STORE_TASK_DONE
                                                                              : STORE_TASK_FAILED;
        }
        task_finished(f, task);
    }
    if (task->fail_stop > 0 && !task->stopped && failed_hosts(task) >= task->fail_stop) {
        return stop_task(f, task, now);
    }
    return FL_OK;
}

/* ---- assign ------------------------------------------------------------- */

static int unit_assign(struct fsm *f, const struct fsm_cmd *c, uint64_t now, struct fsm_result *res)
{
    struct store_txn *t = f->txn;
    char task_id[STORE_TASK_ID_MAX], node_id[STORE_NODE_ID_MAX];
    char nkey[STORE_NODE_ID_MAX + STORE_TASK_ID_MAX + 8];
    uint8_t qkey[12 + STORE_TASK_ID_MAX + 5];
    struct store_task task;
    struct store_unit u;
    struct store_node *n;
    int rv;

    fsm__copy_str(task_id, sizeof task_id, c->u.unit.task, c->u.unit.tasklen);
    fsm__copy_str(node_id, sizeof node_id, c->u.unit.node, c->u.unit.nodelen);
    rv = store_unit_get(t, task_id, c->u.unit.unit, &u);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (u.state != STORE_UNIT_QUEUED || u.attempt != c->u.unit.attempt) {
        res->err = FL_ECONFLICT; /* assigned already, or done */
        return FL_OK;
    }
    if ((rv = fsm__task_get(f, task_id, &task)) != FL_OK) {
        return rv == FL_ENOTFOUND ? FL_ECORRUPT : rv;
    }
    rv = fsm__node_ref(f, node_id, &n);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    /* The cap, drain, loss, pause, max_running and host rules, on every
     * replica (scheduler/admit.h). */
    {
        struct sched_admit_task at = {.max_running = task.max_running,
                                      .running = task.units_running,
                                      .ending = task.cancel_requested || task.stopped,
                                      .on_host = task.placement == FSM_PLACE_HOST};
        struct sched_admit_node an = {.id = node_id,
                                      .cap = n->cap,
                                      .running = n->running,
                                      .draining = n->drain,
                                      .lost = n->lost};
        size_t pos = 0;
        if (at.on_host && store_unit_host(&u, &pos, &at.host, &at.host_len) != FL_OK) {
            res->err = FL_EINVAL;
            return FL_OK;
        }
        rv = sched_admit(f->dispatch_paused, &at, &an);
        if (rv != SCHED_ADMIT_OK) {
            res->err = rv == SCHED_ADMIT_NOT_ITS_HOST ? FL_EINVAL : FL_EBUSY;
            return FL_OK;
        }
    }
    u.state = STORE_UNIT_RUNNING;
    u.attempt++;
    u.token = ++f->fence;
    memcpy(u.node, node_id, sizeof node_id);
    u.assigned_ms = now;
    u.not_before_ms = 0;
    if ((rv = store_unit_put(t, task_id, c->u.unit.unit, &u)) != FL_OK) {
        return rv;
    }
    rv = store_del(t, STORE_QUEUE, qkey,
                   store_queue_key(qkey, task.priority, task.seq, task_id, c->u.unit.unit));
    if (rv != FL_OK) {
        return rv == FL_ENOTFOUND ? FL_ECORRUPT : rv;
    }
    rv = store_index_put(t, STORE_NODEUNITS, nkey,
                         nodeunit_key(nkey, node_id, task_id, c->u.unit.unit));
    if (rv != FL_OK) {
        return rv;
    }
    n->running++; /* n is still the kept record: nothing above reads another node */
    fsm__node_changed(f, n);
    task.units_queued--;
    task.units_running++;
    if (task.state == STORE_TASK_QUEUED) {
        task.state = STORE_TASK_RUNNING;
    }
    res->token = u.token;
    memcpy(res->node, node_id, sizeof res->node);
    return fsm__task_put(f, &task);
}

/* ---- results and requeues ------------------------------------------------ */

static int stale(struct fsm *f, const char *task_id, struct fsm_result *res)
{
    struct store_task task;
    int rv = fsm__task_get(f, task_id, &task);
    res->err = FL_ECONFLICT;
    if (rv != FL_OK) {
        return rv == FL_ENOTFOUND ? FL_OK : rv;
    }
    task.stale_results++;
    return fsm__task_put(f, &task);
}

static int retryable(int status)
{
    return status != STORE_ST_OK && status != STORE_ST_CANCELLED;
}

static int unit_result(struct fsm *f, const struct fsm_cmd *c, uint64_t now, struct fsm_result *res)
{
    struct store_txn *t = f->txn;
    char task_id[STORE_TASK_ID_MAX];
    struct store_task task;
    struct store_unit u;
    int rv;

    fsm__copy_str(task_id, sizeof task_id, c->u.unit.task, c->u.unit.tasklen);
    rv = store_unit_get(t, task_id, c->u.unit.unit, &u);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    /* A result for another assignment than the current one is stale: it is
     * counted and changes nothing else. */
    if (u.state != STORE_UNIT_RUNNING || u.token != c->u.unit.token) {
        return stale(f, task_id, res);
    }
    if ((rv = fsm__task_get(f, task_id, &task)) != FL_OK) {
        return rv == FL_ENOTFOUND ? FL_ECORRUPT : rv;
    }
    if ((rv = release_node(f, task_id, c->u.unit.unit, &u)) != FL_OK) {
        return rv;
    }
    memcpy(res->node, u.node, sizeof res->node);
    if (retryable(c->u.unit.status) && u.retries_left > 0 && !u.cancel && !task.cancel_requested &&
        !task.stopped) {
        rv = requeue(t, &task, c->u.unit.unit, &u, now);
    } else {
        rv = finish_unit(f, &task, c->u.unit.unit, &u, c, c->u.unit.status, c->u.unit.exit_code,
                         now);
    }
    if (rv != FL_OK) {
        return rv;
    }
    return fsm__task_put(f, &task);
}

/* The leader takes a running unit back (its node was lost, or its agent does
 * not know it after a leader change). */
static int take_back(struct fsm *f, const char *task_id, uint32_t unit, uint64_t token, int status,
                     uint64_t now, struct fsm_result *res)
{
    struct store_txn *t = f->txn;
    struct store_task task;
    struct store_unit u;
    int rv = store_unit_get(t, task_id, unit, &u);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (u.state != STORE_UNIT_RUNNING || (token != 0 && u.token != token)) {
        res->err = FL_ECONFLICT;
        return FL_OK;
    }
    if ((rv = fsm__task_get(f, task_id, &task)) != FL_OK) {
        return rv == FL_ENOTFOUND ? FL_ECORRUPT : rv;
    }
    if ((rv = release_node(f, task_id, unit, &u)) != FL_OK) {
        return rv;
    }
    memcpy(res->node, u.node, sizeof res->node);
    if (u.retries_left > 0 && !u.cancel && !task.cancel_requested && !task.stopped) {
        rv = requeue(t, &task, unit, &u, now);
    } else {
        rv = finish_unit(f, &task, unit, &u, NULL,
                         u.cancel || task.cancel_requested ? STORE_ST_CANCELLED : status, -1, now);
    }
    return rv == FL_OK ? fsm__task_put(f, &task) : rv;
}

static int node_lost(struct fsm *f, const struct fsm_cmd *c, uint64_t now, struct fsm_result *res)
{
    struct store_txn *t = f->txn;
    char node_id[STORE_NODE_ID_MAX];
    struct store_node *n;
    struct store_cursor *cur;
    struct fl_buf keys;
    const void *k, *v;
    size_t kl, vl, off;
    int rv;

    fsm__copy_str(node_id, sizeof node_id, c->u.node.id, c->u.node.idlen);
    rv = fsm__node_ref(f, node_id, &n);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    n->lost = 1;
    fsm__node_changed(f, n);
    /* Collect the node's units first: take_back edits NODEUNITS. */
    fl_buf_init(&keys);
    rv = store_cursor_open(t, STORE_NODEUNITS, node_id, strlen(node_id) + 1, &cur);
    if (rv != FL_OK) {
        return rv;
    }
    while (store_cursor_next(cur, &k, &kl, &v, &vl) == FL_OK) {
        size_t nl = strlen(node_id) + 1;
        uint16_t len;
        if (kl <= nl || memcmp(k, node_id, nl) != 0) {
            break;
        }
        len = (uint16_t)(kl - nl);
        if (fl_buf_append(&keys, &len, sizeof len) != FL_OK ||
            fl_buf_append(&keys, (const char *)k + nl, len) != FL_OK) {
            rv = FL_ENOMEM;
            break;
        }
    }
    store_cursor_close(cur);
    for (off = 0; rv == FL_OK && off + 2 <= keys.len;) {
        uint16_t len;
        char task_id[STORE_TASK_ID_MAX];
        const uint8_t *p;
        memcpy(&len, keys.data + off, 2);
        p = keys.data + off + 2;
        off += 2u + len;
        if (len < 6 || len - 5u >= sizeof task_id) {
            continue;
        }
        memcpy(task_id, p, len - 5u);
        task_id[len - 5] = '\0';
        struct fsm_result ignore = {0};
        rv = take_back(f, task_id,
                       (uint32_t)p[len - 4] << 24 | (uint32_t)p[len - 3] << 16 |
                           (uint32_t)p[len - 2] << 8 | p[len - 1],
                       0, STORE_ST_LOST, now, &ignore);
    }
    fl_buf_close(&keys);
    return rv;
}

static int task_cancel(struct fsm *f, const struct fsm_cmd *c, uint64_t now, struct fsm_result *res)
{
    struct store_txn *t = f->txn;
    char task_id[STORE_TASK_ID_MAX];
    struct store_task task;
    int rv;

    fsm__copy_str(task_id, sizeof task_id, c->u.task.id, c->u.task.idlen);
    rv = fsm__task_get(f, task_id, &task);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (task.state >= STORE_TASK_DONE) {
        res->err = FL_EEXIST; /* finished already */
        return FL_OK;
    }
    task.cancel_requested = 1;
    for (uint32_t unit = 0; unit < task.n_units && rv == FL_OK; unit++) {
        struct store_unit u;
        uint8_t qkey[12 + STORE_TASK_ID_MAX + 5];
        rv = store_unit_get(t, task_id, unit, &u);
        if (rv != FL_OK) {
            break;
        }
        if (u.state == STORE_UNIT_QUEUED) {
            rv = store_del(t, STORE_QUEUE, qkey,
                           store_queue_key(qkey, task.priority, task.seq, task_id, unit));
            if (rv == FL_OK || rv == FL_ENOTFOUND) {
                rv = finish_unit(f, &task, unit, &u, NULL, STORE_ST_CANCELLED, -1, now);
            }
        } else if (u.state == STORE_UNIT_RUNNING && !u.cancel) {
            u.cancel = 1; /* the leader sends CANCEL; the agent reports cancelled */
            rv = store_unit_put(t, task_id, unit, &u);
        }
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (task.units_done == task.n_units && task.state != STORE_TASK_CANCELLED) {
        task.state = STORE_TASK_CANCELLED;
        task.finished_ms = now;
        task_finished(f, &task);
    }
    return fsm__task_put(f, &task);
}

static int apply_sched(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                       struct fsm_result *res);

/* Runs of cron jobs whose tasks finished release their lock or start the
 * next queued run (fsm/job.c); done after the command, at the outermost
 * level only (a job run itself submits and cancels tasks). */
int fsm__apply_sched(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                     struct fsm_result *res)
{
    int rv;
    f->sched_depth++;
    rv = apply_sched(f, c, index, now, res);
    f->sched_depth--;
    /* The kept records (fsm/recs.c) outlive only a run of unit assignments
     * and results; a job's code reads the store. */
    if (rv == FL_OK && (f->sched_depth > 0 || f->finished_runs.len > 0 ||
                        (c->type != FSM_CMD_UNIT_ASSIGN && c->type != FSM_CMD_UNIT_RESULT))) {
        rv = fsm__recs_flush(f);
    }
    while (rv == FL_OK && f->sched_depth == 0 && f->finished_runs.len > 0) {
        struct fl_buf ids = f->finished_runs;
        fl_buf_init(&f->finished_runs);
        f->sched_depth++;
        for (size_t off = 0; rv == FL_OK && off < ids.len;
             off += strlen((char *)ids.data + off) + 1) {
            struct store_task task;
            rv = store_task_get(f->txn, (char *)ids.data + off, &task);
            if (rv == FL_OK) {
                rv = fsm__job_task_finished(f, &task, index, now);
            } else if (rv == FL_ENOTFOUND) {
                rv = FL_OK;
            }
        }
        f->sched_depth--;
        fl_buf_close(&ids);
    }
    return rv;
}

static int apply_sched(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                       struct fsm_result *res)
{
    switch (c->type) {
    case FSM_CMD_TASK_SUBMIT:
        return task_submit(f, c, index, now, res);
    case FSM_CMD_UNIT_ASSIGN:
        return unit_assign(f, c, now, res);
    case FSM_CMD_UNIT_RESULT:
        return unit_result(f, c, now, res);
    case FSM_CMD_UNIT_REQUEUE: {
        char task_id[STORE_TASK_ID_MAX];
        fsm__copy_str(task_id, sizeof task_id, c->u.unit.task, c->u.unit.tasklen);
        return take_back(f, task_id, c->u.unit.unit, c->u.unit.token, c->u.unit.status, now, res);
    }
    case FSM_CMD_NODE_LOST:
        return node_lost(f, c, now, res);
    case FSM_CMD_TASK_CANCEL:
        return task_cancel(f, c, now, res);
    case FSM_CMD_DISPATCH:
        f->dispatch_paused = c->u.dispatch.paused;
        return fsm__meta_put_u64(f->txn, "dispatch_paused", (uint64_t)c->u.dispatch.paused);
    default:
        res->err = FL_EVERSION;
        return FL_OK;
    }
}
