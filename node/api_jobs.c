/* /v1/jobs — cron jobs (docs/JOBS.md, docs/API.md).
 *
 *   POST   /v1/jobs             {"name", "cron"|"every", "tz", "overlap", "mode", "misfire",
 *                                "starting_deadline", "paused", "update", task fields...}
 *   GET    /v1/jobs             with the next fire times
 *   GET    /v1/jobs/NAME
 *   GET    /v1/jobs/NAME/runs   the run history, each run with its tasks' states
 *   POST   /v1/jobs/NAME/pause | /resume | /run
 *   DELETE /v1/jobs/NAME */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "leader/jobs.h"
#include "node/node_int.h"
#include "store/iter.h"

#define NEXT_SHOWN 5

static const char *const overlap_names[] = {NULL, "allow", "forbid", "replace", "queue"};
static const char *const mode_names[] = {NULL, "one", "all"};
static const char *const misfire_names[] = {NULL, "skip", "run-once"};

/* A string field naming one of names[1..n]; returns 0 after answering 400. */
static int choice(struct http_request *req, json_t *body, const char *field,
                  const char *const *names, int n, int dflt, int *out)
{
    json_t *v = json_object_get(body, field);
    *out = dflt;
    if (v == NULL) {
        return 1;
    }
    for (int i = 1; i <= n && json_is_string(v); i++) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
            *out = i;
            return 1;
        }
    }
    node__respond_err(req, FL_EINVAL, "%s must be one of %s%s%s%s%s%s%s", field, names[1],
                      n > 1 ? ", " : "", n > 1 ? names[2] : "", n > 2 ? ", " : "",
                      n > 2 ? names[3] : "", n > 3 ? ", " : "", n > 3 ? names[4] : "");
    return 0;
}

static int duration_field(struct http_request *req, json_t *body, const char *field, long long *out)
{
    json_t *v = json_object_get(body, field);
    *out = 0;
    if (v == NULL) {
        return 1;
    }
    *out = json_is_string(v)    ? fl_duration_ms(json_string_value(v))
           : json_is_integer(v) ? json_integer_value(v)
                                : -1;
    if (*out < 0) {
        node__respond_err(req, FL_EINVAL, "%s must be a duration such as \"30s\" or \"5m\"", field);
        return 0;
    }
    return 1;
}

static int string_field(struct http_request *req, json_t *body, const char *field, char *out,
                        size_t cap)
{
    json_t *v = json_object_get(body, field);
    out[0] = '\0';
    if (v == NULL) {
        return 1;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap) {
        node__respond_err(req, FL_EINVAL, "%s must be a string of at most %zu bytes", field,
                          cap - 1);
        return 0;
    }
    snprintf(out, cap, "%s", json_string_value(v));
    return 1;
}

static void put_done(struct node_server *s, struct http_request *req, int err,
                     const struct fsm_result *res)
{
    (void)s;
    if (node__answer_failure(req, err, res, FL_EEXIST,
                             "a job with that name exists (use update to redefine it)")) {
        return;
    }
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

/* Fill the schedule and policy fields of j from the body. */
static int job_fields(struct http_request *req, json_t *body, struct store_job *j)
{
    char why[FL_ERRMSG_SIZE];
    json_t *v;
    long long every = 0, deadline = 0;
    if (!string_field(req, body, "name", j->name, sizeof j->name) ||
        !string_field(req, body, "cron", j->expr, sizeof j->expr) ||
        !string_field(req, body, "tz", j->tz, sizeof j->tz) ||
        !duration_field(req, body, "every", &every) ||
        !duration_field(req, body, "starting_deadline", &deadline) ||
        !choice(req, body, "overlap", overlap_names, 4, STORE_OVERLAP_ALLOW, &j->overlap) ||
        !choice(req, body, "mode", mode_names, 2, STORE_JOB_ONE, &j->mode) ||
        !choice(req, body, "misfire", misfire_names, 2, STORE_MISFIRE_RUN_ONCE, &j->misfire)) {
        return 0;
    }
    if (fsm_job_name_check(j->name, strlen(j->name), why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        return 0;
    }
    if ((j->expr[0] != '\0') == (json_object_get(body, "every") != NULL)) {
        node__respond_err(req, FL_EINVAL, "give exactly one schedule: cron or every");
        return 0;
    }
    if (j->expr[0] != '\0') {
        j->sched = STORE_JOB_CRON;
        if (jobs_check_cron(j->expr, j->tz, why) != FL_OK) {
            node__respond_err(req, FL_EINVAL, "%s", why);
            return 0;
        }
    } else {
        j->sched = STORE_JOB_EVERY;
        if (every < 1000 || every > 366LL * 24 * 3600 * 1000) {
            node__respond_err(req, FL_EINVAL, "every must be between 1s and 366 days");
            return 0;
        }
        if (j->tz[0] != '\0') {
            node__respond_err(req, FL_EINVAL, "tz goes with cron, not with every");
            return 0;
        }
        j->every_ms = (uint64_t)every;
    }
    if (deadline > 366LL * 24 * 3600 * 1000) {
        node__respond_err(req, FL_EINVAL, "starting_deadline must be at most 366 days");
        return 0;
    }
    j->start_deadline_ms = (uint64_t)deadline;
    if (j->mode == STORE_JOB_ALL && json_object_get(body, "hosts") != NULL) {
        node__respond_err(req, FL_EINVAL,
                          "mode all runs once on every eligible node: hosts do not apply");
        return 0;
    }
    if (j->mode == STORE_JOB_ALL && j->overlap == STORE_OVERLAP_QUEUE) {
        node__respond_err(req, FL_EINVAL, "overlap queue works with mode one only");
        return 0;
    }
    v = json_object_get(body, "paused");
    if (v != NULL && !json_is_boolean(v)) {
        node__respond_err(req, FL_EINVAL, "paused must be true or false");
        return 0;
    }
    j->paused = json_is_true(v);
    return 1;
}

const char *const *node__job_fields(void)
{
    static const char *const job_only[] = {
        "cron",   "every",  "tz", "overlap", "mode", "misfire", "starting_deadline",
        "paused", "update", NULL};
    static const char *allowed[48];
    if (allowed[0] == NULL) {
        unsigned n = 0;
        for (const char *const *f = node__task_fields; *f != NULL; f++) {
            if (strcmp(*f, "idempotency_key") != 0) {
                allowed[n++] = *f;
            }
        }
        for (const char *const *f = job_only; *f != NULL; f++) {
            allowed[n++] = *f;
        }
        allowed[n] = NULL;
    }
    return allowed;
}

void node__job_build_close(struct node_job_build *jb)
{
    fsm_writer_close(&jb->w);
    fl_buf_close(&jb->def);
}

int node__job_build(struct http_request *req, json_t *body, const unsigned char *key,
                    struct node_job_build *jb)
{
    struct node_task_build b;
    char why[FL_ERRMSG_SIZE];
    const char *self[1];
    json_t *v;

    memset(jb, 0, sizeof *jb);
    memset(&b, 0, sizeof b);
    fl_buf_init(&b.specbuf);
    fl_buf_init(&jb->def);
    fsm_writer_init(&jb->w);
    if (!job_fields(req, body, &jb->j) || !node__task_build(req, body, 0, key, &b)) {
        jb->over_hosts = b.over_hosts;
        node__task_build_close(&b);
        return 0;
    }
    v = json_object_get(body, "update");
    if (v != NULL && !json_is_boolean(v)) {
        node__respond_err(req, FL_EINVAL, "update must be true or false");
        node__task_build_close(&b);
        return 0;
    }
    if (b.cmd.u.task.n_hosts == 0 && b.cmd.u.task.placement == FSM_PLACE_HOST &&
        jb->j.mode != STORE_JOB_ALL) {
        /* Mode all gives each run's task its node as the host. */
        node__respond_err(req, FL_EINVAL, "run_on host needs hosts naming the nodes (or mode all)");
        node__task_build_close(&b);
        return 0;
    }
    if (b.cmd.u.task.n_hosts == 0) {
        self[0] = jb->j.name; /* the job's one "host" is itself */
        b.cmd.u.task.host_ptrs = self;
        b.cmd.u.task.n_hosts = 1;
    }
    if (fsm_cmd_validate(&b.cmd, why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        node__task_build_close(&b);
        return 0;
    }
    if (fsm_writer_add(&jb->w, &b.cmd) != FL_OK) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        node__task_build_close(&b);
        return 0;
    }
    node__task_build_close(&b);
    jb->j.tmpl = (const uint8_t *)jb->w.body.data;
    jb->j.tmpl_len = jb->w.body.len;
    if (store_job_encode(&jb->j, &jb->def) != FL_OK) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return 0;
    }
    memset(&jb->cmd, 0, sizeof jb->cmd);
    jb->cmd.type = FSM_CMD_JOB_PUT;
    jb->cmd.u.job.name = jb->j.name;
    jb->cmd.u.job.nlen = strlen(jb->j.name);
    jb->cmd.u.job.def = jb->def.data;
    jb->cmd.u.job.def_len = jb->def.len;
    jb->cmd.u.job.manual = !json_is_true(v); /* create only, unless updating */
    return 1;
}

void node__jobs_put(struct node_server *s, struct http_request *req, char **args)
{
    struct node_job_build jb;
    json_t *body;
    (void)args;

    body = node__body_object(req, node__job_fields());
    if (body == NULL) {
        return;
    }
    if (node__job_build(req, body, s->cfg.key, &jb)) {
        node__submit(s, req, &jb.cmd, put_done);
    } else if (jb.over_hosts) {
        s->n_refused_hosts++;
    }
    node__job_build_close(&jb);
    json_decref(body);
}

/* ---- views -------------------------------------------------------------------------- */

static json_t *ms_array(const uint64_t *t, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(a, json_integer((json_int_t)t[i]));
    }
    return a;
}

static json_t *ids_array(const uint8_t *p, size_t len)
{
    json_t *a = json_array();
    for (size_t off = 0; off < len;) {
        size_t n = strnlen((const char *)p + off, len - off);
        if (n == 0 || off + n >= len) {
            break;
        }
        json_array_append_new(a, json_stringn((const char *)p + off, n));
        off += n + 1;
    }
    return a;
}

static json_t *job_json(struct node_server *s, const struct store_job *j, int n_next)
{
    uint64_t next[NEXT_SHOWN];
    int n = j->paused ? 0 : jobs_next_fires(s->jobs, j, fl_wall_ms(), next, n_next);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "name",
        j->name, "schedule", j->sched == STORE_JOB_CRON ? "cron" : "every", "tz",
        j->tz[0] ? j->tz : "UTC", "overlap", overlap_names[j->overlap], "mode", mode_names[j->mode],
        "misfire", misfire_names[j->misfire], "paused", j->paused, "starting_deadline_ms",
        (json_int_t)j->start_deadline_ms, "created_ms", (json_int_t)j->created_ms,
        "last_scheduled_ms", (json_int_t)j->last_sched_ms, "runs", (json_int_t)j->runs, "queued",
        (json_int_t)j->queued, "updated_index", (json_int_t)j->updated_index, "next_ms",
        ms_array(next, n), "active", ids_array(j->active, j->active_len));
    if (j->sched == STORE_JOB_CRON) {
        json_object_set_new(o, "cron", json_string(j->expr));
    } else {
        json_object_set_new(o, "every_ms", json_integer((json_int_t)j->every_ms));
    }
    return o;
}

void node__jobs_list(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_iter it;
    struct store_job j;
    json_t *items = json_array();
    int rv;
    (void)args;
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK && (rv = store_iter_open(t, STORE_JOBS, NULL, 0, &it)) == FL_OK) {
        while (json_array_size(items) < 100000 && store_job_next(&it, &j) == FL_OK) {
            json_array_append_new(items, job_json(s, &j, 3));
        }
        store_iter_close(&it);
    }
    store_abort(t);
    if (rv != FL_OK) {
        json_decref(items);
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "items", items));
}

static int name_arg(struct http_request *req, const char *name)
{
    char why[FL_ERRMSG_SIZE];
    if (fsm_job_name_check(name, strlen(name), why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        return 0;
    }
    return 1;
}

void node__jobs_get(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_job j;
    int rv;
    if (!name_arg(req, args[0])) {
        return;
    }
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK) {
        rv = store_job_get(t, args[0], &j);
        if (rv == FL_OK) {
            http_respond_json(req, 200, job_json(s, &j, NEXT_SHOWN));
        }
        store_abort(t);
    }
    if (rv == FL_ENOTFOUND) {
        node__respond_err(req, rv, "no job \"%s\"", args[0]);
    } else if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
    }
}

static json_t *run_json(struct store_txn *t, const struct store_run *r)
{
    json_t *tasks = json_array();
    const char *state = NULL;
    for (size_t off = 0; off < r->tasks_len;) {
        char id[STORE_TASK_ID_MAX];
        size_t n = strnlen((const char *)r->tasks + off, r->tasks_len - off);
        struct store_task task;
        if (n == 0 || n >= sizeof id || off + n >= r->tasks_len) {
            break;
        }
        memcpy(id, r->tasks + off, n + 1);
        if (store_task_get(t, id, &task) == FL_OK) {
            json_array_append_new(tasks, node__task_json(&task));
        } else {
            json_array_append_new(tasks, json_pack("{s:s, s:s}", "id", id, "state", "gone"));
        }
        off += n + 1;
    }
    (void)state;
    return json_pack("{s:I, s:I, s:b, s:s, s:i, s:I, s:I, s:o}", "scheduled_ms",
                     (json_int_t)r->sched_ms, "fired_ms", (json_int_t)r->fired_ms, "manual",
                     r->manual, "outcome", store_run_outcome_name(r->outcome), "missed",
                     (int)r->missed, "token", (json_int_t)r->token, "replaced",
                     (json_int_t)r->replaced, "tasks", tasks);
}

void node__jobs_runs(struct node_server *s, struct http_request *req, char **args)
{
    uint8_t prefix[STORE_JOB_NAME_MAX + 1];
    size_t plen;
    struct store_txn *t;
    struct store_iter it;
    struct store_run r;
    json_t *items = json_array();
    int rv;
    if (!name_arg(req, args[0])) {
        json_decref(items);
        return;
    }
    plen = strlen(args[0]) + 1;
    memcpy(prefix, args[0], plen);
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK && (rv = store_iter_open(t, STORE_RUNS, prefix, plen, &it)) == FL_OK) {
        while (store_run_next(&it, &r) == FL_OK) {
            json_array_append_new(items, run_json(t, &r));
        }
        store_iter_close(&it);
    }
    store_abort(t);
    if (rv != FL_OK) {
        json_decref(items);
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "items", items));
}

static void simple_done(struct node_server *s, struct http_request *req, int err,
                        const struct fsm_result *res)
{
    (void)s;
    if (node__answer_failure(req, err, res, FL_ENOTFOUND, "no such job")) {
        return;
    }
    http_respond_json(req, 200,
                      json_pack("{s:I, s:s, s:I}", "index", (json_int_t)res->index, "outcome",
                                res->outcome, "scheduled_ms", (json_int_t)res->sched_ms));
}

static void job_cmd(struct node_server *s, struct http_request *req, const char *name, int type,
                    int flag)
{
    struct fsm_cmd c;
    if (!name_arg(req, name)) {
        return;
    }
    memset(&c, 0, sizeof c);
    c.type = type;
    c.u.job.name = name;
    c.u.job.nlen = strlen(name);
    if (type == FSM_CMD_JOB_PAUSE) {
        c.u.job.paused = flag;
    } else if (type == FSM_CMD_JOB_FIRE) {
        c.u.job.manual = 1;
    }
    node__submit(s, req, &c, simple_done);
}

void node__jobs_delete(struct node_server *s, struct http_request *req, char **args)
{
    job_cmd(s, req, args[0], FSM_CMD_JOB_DEL, 0);
}

void node__jobs_pause(struct node_server *s, struct http_request *req, char **args)
{
    job_cmd(s, req, args[0], FSM_CMD_JOB_PAUSE, 1);
}

void node__jobs_resume(struct node_server *s, struct http_request *req, char **args)
{
    job_cmd(s, req, args[0], FSM_CMD_JOB_PAUSE, 0);
}

/* Run now: mode all gets the nodes eligible now, like a scheduled fire. */
void node__jobs_run(struct node_server *s, struct http_request *req, char **args)
{
    static char ids[256][STORE_NODE_ID_MAX];
    const char *ptrs[256];
    struct store_txn *t;
    struct store_job j;
    struct fsm_cmd c;
    int rv;
    if (!name_arg(req, args[0])) {
        return;
    }
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK) {
        rv = store_job_get(t, args[0], &j);
        store_abort(t);
    }
    if (rv != FL_OK) {
        node__respond_err(req, rv, rv == FL_ENOTFOUND ? "no such job" : "%s",
                          store_errmsg(s->store));
        return;
    }
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_JOB_FIRE;
    c.u.job.name = args[0];
    c.u.job.nlen = strlen(args[0]);
    c.u.job.manual = 1;
    if (j.mode == STORE_JOB_ALL) {
        c.u.job.n_nodes = jobs_eligible(s->jobs, &j, ids, 256);
        for (unsigned i = 0; i < c.u.job.n_nodes; i++) {
            ptrs[i] = ids[i];
        }
        c.u.job.node_ptrs = ptrs;
    }
    node__submit(s, req, &c, simple_done);
}
