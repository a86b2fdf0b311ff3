/* /v1/deploys — cluster-wide rollouts of a package version (docs/DEPLOY.md,
 * "Rollouts").
 *
 * A rollout is a task of the deploy executor: one unit per target node,
 * pinned to that node (run_on host), at most max_parallel running at once,
 * stopped after max_failures + 1 failed targets, no retries. Each unit runs
 * the target agent's own `flotilla deploy-target` by hash (agent/, the
 * deploy executor), so everything the scheduler guarantees for tasks — caps,
 * fencing, results that survive failovers, cancel — holds for rollouts, and
 * the state machine alone decides when a rollout stops. This file turns a
 * request into that task (resolving the package and the targets on the
 * leader) and reads a rollout back with each target's steps: from the
 * report line at the end of a finished target's output, or from the step
 * events the leader has in memory for a running one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "blob/blob.h"
#include "common/err.h"
#include "leader/dispatch.h"
#include "node/node_int.h"
#include "store/iter.h"
#include "spec/spec.h"
#include "scheduler/sched.h"

#define DEPLOY_ARGS_MAX    32
#define DEPLOY_TIMEOUT_MS  (30u * 60 * 1000) /* per target, by default */
#define DEPLOY_LIST_MAX    200
#define DEPLOY_NAME_PREFIX "deploy:"
#define HOOK_MAX           4096

static const char *const deploy_fields[] = {"package",
                                            "version",
                                            "to",
                                            "app",
                                            "root",
                                            "max_parallel",
                                            "window",
                                            "max_failures",
                                            "health",
                                            "health_http",
                                            "health_timeout_ms",
                                            "reload_timeout_ms",
                                            "pre_hook",
                                            "post_hook",
                                            "keep",
                                            "timeout_ms",
                                            "priority",
                                            "idempotency_key",
                                            NULL};

static const char *const rollback_fields[] = {
    "app", "version", "max_parallel", "window", "max_failures", "timeout_ms", NULL};

/* What a rollout request says, after checking. Strings point into the body
 * or into this struct. */
struct rollout {
    char package[STORE_PKG_NAME_MAX], version[STORE_PKG_VERSION_MAX];
    char app[STORE_PKG_NAME_MAX];
    const char *root, *health, *health_http, *pre_hook, *post_hook;
    long long health_timeout_ms, reload_timeout_ms, keep, timeout_ms, priority;
    long long max_parallel, window, max_failures;
    unsigned n_to;
    const char *to[STORE_TASK_CONSTRAINTS];
    char idem[128];
    /* resolved */
    char hash[BLOB_HASH_BYTES * 2 + 1];
    uint64_t size;
    char (*targets)[STORE_NODE_ID_MAX];
    unsigned n_targets;
    json_t *skipped;
};

static void rollout_close(struct rollout *r)
{
    fl_free(r->targets);
    r->targets = NULL;
    json_decref(r->skipped);
    r->skipped = NULL;
}

/* An optional string of 1..max bytes without NUL; a script (multiline)
 * may have newlines, anything else is one line. */
static int opt_text(struct http_request *req, json_t *body, const char *name, size_t max,
                    int multiline, const char **out)
{
    json_t *v = json_object_get(body, name);
    char what[96];
    if (v == NULL) {
        return 1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v) ||
        (!multiline && strchr(json_string_value(v), '\n') != NULL)) {
        snprintf(what, sizeof what, "must be a string of 1-%zu bytes%s", max,
                 multiline ? "" : " on one line");
        return node__field_err(req, name, what);
    }
    *out = json_string_value(v);
    return 1;
}

static int opt_str(struct http_request *req, json_t *body, const char *name, size_t max,
                   const char **out)
{
    return opt_text(req, body, name, max, 0, out);
}

static int name_field(struct http_request *req, json_t *body, const char *name, int version,
                      char *out, size_t cap)
{
    const char *s = NULL;
    char why[FL_ERRMSG_SIZE];
    if (!opt_str(req, body, name, cap - 1, &s)) {
        return 0;
    }
    if (s == NULL) {
        out[0] = '\0';
        return 1;
    }
    if ((version ? fsm_package_version_check(s, strlen(s), why)
                 : fsm_package_name_check(s, strlen(s), why)) != FL_OK) {
        return node__field_err(req, name, why);
    }
    snprintf(out, cap, "%s", s);
    return 1;
}

/* The rollout's pace and failure threshold (shared by deploy and rollback). */
static int pace_fields(struct http_request *req, json_t *body, struct rollout *r)
{
    if (!node__int_field(req, body, "max_parallel", 1, 1000000, &r->max_parallel) ||
        !node__int_field(req, body, "window", 1, 100, &r->window) ||
        !node__int_field(req, body, "max_failures", 0, FSM_TASK_HOSTS_MAX, &r->max_failures) ||
        !node__int_field(req, body, "timeout_ms", 1000, 24LL * 3600 * 1000, &r->timeout_ms)) {
        return 0;
    }
    if (json_object_get(body, "max_parallel") != NULL && json_object_get(body, "window") != NULL) {
        return node__field_err(req, "window", "give max_parallel or window, not both");
    }
    return 1;
}

static int parse_request(struct http_request *req, json_t *body, struct rollout *r)
{
    json_t *to = json_object_get(body, "to"), *v;
    char why[FL_ERRMSG_SIZE], what[FL_ERRMSG_SIZE + 32];
    size_t i;
    const char *idem = NULL;

    if (!name_field(req, body, "package", 0, r->package, sizeof r->package) ||
        !name_field(req, body, "version", 1, r->version, sizeof r->version) ||
        !name_field(req, body, "app", 0, r->app, sizeof r->app)) {
        return 0;
    }
    if (r->package[0] == '\0' || r->version[0] == '\0') {
        return node__field_err(req, r->package[0] ? "version" : "package", "required");
    }
    if (r->app[0] == '\0') {
        snprintf(r->app, sizeof r->app, "%s", r->package);
    }
    if (!json_is_array(to) || json_array_size(to) == 0 ||
        json_array_size(to) > STORE_TASK_CONSTRAINTS) {
        snprintf(what, sizeof what, "required: 1-%d constraints such as \"role=web\"",
                 STORE_TASK_CONSTRAINTS);
        return node__field_err(req, "to", what);
    }
    json_array_foreach(to, i, v)
    {
        const char *c = json_string_value(v);
        if (c == NULL || sched_constraint_valid(c, why) != FL_OK) {
            snprintf(what, sizeof what, "item %zu: %s", i, c ? why : "must be a string");
            return node__field_err(req, "to", what);
        }
        r->to[r->n_to++] = c;
    }
    if (!opt_str(req, body, "root", 1024, &r->root) ||
        !opt_text(req, body, "health", HOOK_MAX, 1, &r->health) ||
        !opt_str(req, body, "health_http", 1024, &r->health_http) ||
        !opt_text(req, body, "pre_hook", HOOK_MAX, 1, &r->pre_hook) ||
        !opt_text(req, body, "post_hook", HOOK_MAX, 1, &r->post_hook) ||
        !opt_str(req, body, "idempotency_key", 127, &idem) ||
        !node__int_field(req, body, "health_timeout_ms", 1000, 3600LL * 1000,
                         &r->health_timeout_ms) ||
        !node__int_field(req, body, "reload_timeout_ms", 1000, 3600LL * 1000,
                         &r->reload_timeout_ms) ||
        !node__int_field(req, body, "keep", 1, 1000, &r->keep) ||
        !node__int_field(req, body, "priority", -1000000, 1000000, &r->priority) ||
        !pace_fields(req, body, r)) {
        return 0;
    }
    if (r->root != NULL && r->root[0] != '/') {
        return node__field_err(req, "root", "must be an absolute path");
    }
    if (r->health != NULL && r->health_http != NULL) {
        return node__field_err(req, "health_http", "give health or health_http, not both");
    }
    if (r->health_http != NULL && strncmp(r->health_http, "http://", 7) != 0) {
        return node__field_err(req, "health_http", "must be an http:// URL");
    }
    if (idem != NULL) {
        snprintf(r->idem, sizeof r->idem, "%s", idem);
    }
    return 1;
}

/* The nodes the rollout goes to: every node matching the constraints (with
 * the implicit node=<id> label) that is not lost, drained or at cap 0 — those
 * are listed in r->skipped with the reason. In node id order. */
static int resolve_targets(struct store_txn *t, struct rollout *r)
{
    struct store_iter it;
    struct store_node nd;
    struct sched_unit u;
    unsigned cap = 0;
    int rv;
    memset(&u, 0, sizeof u);
    u.n_constraints = r->n_to;
    u.constraints = r->to;
    r->skipped = json_array();
    if ((rv = store_iter_open(t, STORE_NODES, NULL, 0, &it)) != FL_OK) {
        return rv;
    }
    while (store_node_next(&it, &nd) == FL_OK) {
        const char *why = NULL;
        if (!jobs_node_matches(&nd, &u)) {
            continue;
        }
        if (nd.lost) {
            why = "lost";
        } else if (nd.drain) {
            why = "draining";
        } else if (nd.cap == 0) {
            why = "cap 0";
        }
        if (why != NULL) {
            json_array_append_new(r->skipped, json_pack("{s:s, s:s}", "node", nd.id, "why", why));
            continue;
        }
        if (r->n_targets == cap) {
            unsigned ncap = cap ? cap * 2 : 64;
            void *p = ncap > FSM_TASK_HOSTS_MAX ? NULL
                                                : fl_realloc(r->targets, sizeof *r->targets * ncap);
            if (p == NULL) {
                store_iter_close(&it);
                return FL_ENOMEM;
            }
            r->targets = p;
            cap = ncap;
        }
        memcpy(r->targets[r->n_targets++], nd.id, STORE_NODE_ID_MAX);
    }
    store_iter_close(&it);
    return FL_OK;
}

/* The deploy-target arguments of the rollout's units (the agent adds where
 * the blob sources are, its key, its name and --events). */
struct argv_build {
    const char *argv[DEPLOY_ARGS_MAX + 1];
    unsigned argc;
    char pkgver[STORE_PKG_NAME_MAX + STORE_PKG_VERSION_MAX + 2];
    char size[24], health_t[24], reload_t[24], keep[24];
};

static void arg2(struct argv_build *a, const char *opt, const char *val)
{
    if (val != NULL && a->argc + 2 <= DEPLOY_ARGS_MAX) {
        a->argv[a->argc++] = opt;
        a->argv[a->argc++] = val;
    }
}

static void build_argv(const struct rollout *r, struct argv_build *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->pkgver, sizeof a->pkgver, "%s@%s", r->package, r->version);
    snprintf(a->size, sizeof a->size, "%llu", (unsigned long long)r->size);
    a->argv[a->argc++] = a->pkgver;
    arg2(a, "--hash", r->hash);
    arg2(a, "--size", a->size);
    arg2(a, "--app", r->app);
    arg2(a, "--root", r->root);
    arg2(a, "--health", r->health);
    arg2(a, "--health-http", r->health_http);
    if (r->health_timeout_ms > 0) {
        snprintf(a->health_t, sizeof a->health_t, "%lldms", r->health_timeout_ms);
        arg2(a, "--health-timeout", a->health_t);
    }
    if (r->reload_timeout_ms > 0) {
        snprintf(a->reload_t, sizeof a->reload_t, "%lldms", r->reload_timeout_ms);
        arg2(a, "--reload-timeout", a->reload_t);
    }
    if (r->keep > 0) {
        snprintf(a->keep, sizeof a->keep, "%lld", r->keep);
        arg2(a, "--keep", a->keep);
    }
    arg2(a, "--pre-hook", r->pre_hook);
    arg2(a, "--post-hook", r->post_hook);
}

/* max_parallel: given, or window% of the targets rounded up, or 1. */
static uint32_t pace(const struct rollout *r)
{
    if (r->max_parallel > 0) {
        return (uint32_t)r->max_parallel;
    }
    if (r->window > 0) {
        uint64_t n = ((uint64_t)r->n_targets * (uint64_t)r->window + 99) / 100;
        return n == 0 ? 1 : (uint32_t)n;
    }
    return 1;
}

/* Look up the package, resolve the targets, build the task and submit it.
 * Answers the request in every case. */
static void submit_rollout(struct node_server *s, struct http_request *req, struct rollout *r)
{
    struct store_txn *t;
    struct store_package p;
    struct argv_build a;
    struct node_spec spec;
    struct fl_buf specbuf;
    struct fsm_cmd cmd;
    const char **hosts = NULL;
    char id[24], name[STORE_TASK_NAME_MAX + STORE_PKG_NAME_MAX + STORE_PKG_VERSION_MAX];
    uint8_t rnd[8];
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    rv = store_package_get(t, r->package, r->version, &p);
    if (rv != FL_OK) {
        store_abort(t);
        if (rv == FL_ENOTFOUND) {
            node__respond_err(req, FL_ENOTFOUND, "package %s@%s not found (flotilla package push)",
                              r->package, r->version);
        } else {
            node__respond_err(req, rv, "%s", store_errmsg(s->store));
        }
        return;
    }
    blob_hex(p.hash, r->hash);
    r->size = p.size;
    if (r->n_to > 0) { /* a rollback brings its targets */
        rv = resolve_targets(t, r);
    }
    store_abort(t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "reading the nodes: %s", fl_strerror(rv));
        return;
    }
    if (r->n_targets == 0) {
        char to[STORE_TASK_CONSTRAINTS * (SCHED_TEXT_MAX + 2)] = "";
        for (unsigned i = 0; i < r->n_to; i++) {
            snprintf(to + strlen(to), sizeof to - strlen(to), "%s%s", i ? ", " : "", r->to[i]);
        }
        node__respond_err(req, FL_EINVAL, "no node to deploy to: none matches %s%s",
                          r->n_to ? to : "the last rollout's targets",
                          json_array_size(r->skipped) ? " and is not lost, draining or at cap 0"
                                                      : "");
        return;
    }
    build_argv(r, &a);
    memset(&spec, 0, sizeof spec);
    spec.kind = NODE_DEPLOY;
    spec.argc = a.argc;
    for (unsigned i = 0; i < a.argc; i++) {
        spec.argv[i] = a.argv[i];
    }
    spec.kill_grace_ms = 10000; /* a cancelled target finishes its step and rolls back */
    fl_buf_init(&specbuf);
    hosts = fl_malloc(sizeof *hosts * r->n_targets);
    if (hosts == NULL || node_spec_encode(&spec, &specbuf) != FL_OK) {
        fl_free(hosts);
        fl_buf_close(&specbuf);
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    for (unsigned i = 0; i < r->n_targets; i++) {
        hosts[i] = r->targets[i];
    }
    randombytes_buf(rnd, sizeof rnd);
    id[0] = 'd';
    sodium_bin2hex(id + 1, sizeof id - 1, rnd, sizeof rnd);
    snprintf(name, sizeof name, "%s%s@%s", DEPLOY_NAME_PREFIX, r->package, r->version);
    name[STORE_TASK_NAME_MAX - 1] = '\0'; /* a task name's limit; the spec has it whole */
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_TASK_SUBMIT;
    cmd.u.task.id = id;
    cmd.u.task.idlen = strlen(id);
    cmd.u.task.name = name;
    cmd.u.task.namelen = strlen(name);
    cmd.u.task.idem = r->idem;
    cmd.u.task.idemlen = strlen(r->idem);
    cmd.u.task.n_hosts = r->n_targets;
    cmd.u.task.host_ptrs = hosts;
    cmd.u.task.unit_size = 1;
    cmd.u.task.timeout_ms = (uint32_t)(r->timeout_ms > 0 ? r->timeout_ms : DEPLOY_TIMEOUT_MS);
    cmd.u.task.retries = 0;
    cmd.u.task.priority = (int32_t)r->priority;
    cmd.u.task.spec = specbuf.data;
    cmd.u.task.spec_len = specbuf.len;
    cmd.u.task.placement = FSM_PLACE_HOST;
    cmd.u.task.max_running = pace(r);
    cmd.u.task.fail_stop = (uint32_t)r->max_failures + 1;
    node__submit(s, req, &cmd, node__submit_done);
    fl_free(hosts);
    fl_buf_close(&specbuf);
}

void node__deploys_create(struct node_server *s, struct http_request *req, char **args)
{
    json_t *body = node__body_object(req, deploy_fields);
    struct rollout r;
    (void)args;
    if (body == NULL) {
        return;
    }
    memset(&r, 0, sizeof r);
    if (parse_request(req, body, &r)) {
        submit_rollout(s, req, &r);
    }
    rollout_close(&r);
    json_decref(body);
}

/* ---- reading a rollout back ------------------------------------------------ */

/* A deploy task's spec, decoded; 0 if the task is not a rollout. */
static int deploy_spec(const struct store_task *k, struct node_spec *spec)
{
    if (node_spec_decode(k->spec, k->spec_len, spec) != FL_OK) {
        return 0;
    }
    if (spec->kind != NODE_DEPLOY || spec->argc == 0) {
        node_spec_close(spec);
        return 0;
    }
    return 1;
}

static const char *spec_opt(const struct node_spec *spec, const char *opt)
{
    for (unsigned i = 1; i + 1 < spec->argc; i++) {
        if (strcmp(spec->argv[i], opt) == 0) {
            return spec->argv[i + 1];
        }
    }
    return NULL;
}

/* "app", "package", "version" of a rollout's spec into o. */
static void spec_fields(const struct node_spec *spec, json_t *o)
{
    const char *at = strchr(spec->argv[0], '@');
    const char *app = spec_opt(spec, "--app");
    if (at != NULL) {
        json_object_set_new(o, "package",
                            json_stringn(spec->argv[0], (size_t)(at - spec->argv[0])));
        json_object_set_new(o, "version", json_string(at + 1));
    }
    json_object_set_new(o, "app", json_string(app ? app : ""));
    json_object_set_new(o, "hash",
                        json_string(spec_opt(spec, "--hash") ? spec_opt(spec, "--hash") : ""));
}

/* Parse deploy-target's event lines (docs/DEPLOY.md, "Events") in text[0..n):
 * the report line wins; otherwise the steps seen so far and the one begun. */
static void parse_events(const char *text, size_t n, json_t *tgt)
{
    json_t *steps = json_array();
    const char *p = text, *end = text + n;
    const char *current = NULL;
    json_t *report = NULL, *cur_obj = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > 10 && p[0] == '{') {
            json_t *ev = json_loadb(p, len, 0, NULL);
            const char *kind = ev ? json_string_value(json_object_get(ev, "event")) : NULL;
            if (kind != NULL && strcmp(kind, "report") == 0) {
                json_decref(report);
                report = json_incref(ev);
            } else if (kind != NULL && strcmp(kind, "step") == 0) {
                json_t *st = json_deep_copy(ev);
                json_object_del(st, "event");
                json_array_append_new(steps, st);
                json_decref(cur_obj);
                cur_obj = NULL;
                current = NULL;
            } else if (kind != NULL && strcmp(kind, "begin") == 0) {
                json_decref(cur_obj);
                cur_obj = json_incref(ev);
                current = json_string_value(json_object_get(ev, "step"));
            }
            json_decref(ev);
        }
        p += len + 1;
    }
    if (report != NULL) {
        json_t *rs = json_object_get(report, "steps");
        json_object_set(tgt, "steps", rs ? rs : steps);
        json_object_set(tgt, "result", json_object_get(report, "result"));
        if (json_object_get(report, "acquire") != NULL) {
            json_object_set(tgt, "acquire", json_object_get(report, "acquire"));
        }
        if (json_object_get(report, "ms") != NULL) {
            json_object_set(tgt, "ms", json_object_get(report, "ms"));
        }
        if (json_object_get(report, "previous") != NULL) {
            json_object_set(tgt, "previous", json_object_get(report, "previous"));
        }
        json_decref(report);
    } else {
        json_object_set(tgt, "steps", steps);
        if (current != NULL) {
            json_object_set_new(tgt, "current_step", json_string(current));
        }
    }
    json_decref(cur_obj);
    json_decref(steps);
}

/* The one result of a unit's single host, if recorded. */
static int unit_result(struct store_txn *t, const char *task, uint32_t unit, const char *host,
                       struct store_result *out)
{
    char key[STORE_TASK_ID_MAX + 8 + STORE_HOST_MAX];
    size_t kl = store_unit_key(key, task, unit), hl = strlen(host);
    const void *v;
    size_t vl;
    if (kl + 1 + hl > sizeof key) {
        return FL_EINVAL;
    }
    key[kl] = '/';
    memcpy(key + kl + 1, host, hl);
    if (store_get(t, STORE_RESULTS, key, kl + 1 + hl, &v, &vl) != FL_OK) {
        return FL_ENOTFOUND;
    }
    return store_result_decode(v, vl, out);
}

/* One target: its unit and what its deploy-target said. Counts into tally:
 * [0] waiting, [1] running, [2] deployed, [3] failed, [4] cancelled. */
static json_t *target_json(struct node_server *s, struct store_txn *t, const struct store_task *k,
                           uint32_t unit, unsigned tally[5])
{
    struct store_unit u;
    struct store_result res;
    const char *host = "";
    size_t pos = 0, hl = 0;
    char node[STORE_HOST_MAX];
    json_t *o;
    const char *state;
    if (store_unit_get(t, k->id, unit, &u) != FL_OK) {
        return NULL;
    }
    if (store_unit_host(&u, &pos, &host, &hl) != FL_OK || hl >= sizeof node) {
        return NULL;
    }
    memcpy(node, host, hl);
    node[hl] = '\0';
    if (u.state == STORE_UNIT_QUEUED) {
        state = "waiting";
        tally[0]++;
    } else if (u.state == STORE_UNIT_RUNNING) {
        state = "running";
        tally[1]++;
    } else if (u.status == STORE_ST_OK) {
        state = "deployed";
        tally[2]++;
    } else if (u.status == STORE_ST_CANCELLED) {
        state = "cancelled";
        tally[4]++;
    } else {
        state = "failed";
        tally[3]++;
    }
    o = json_pack("{s:s, s:s, s:I, s:I, s:I}", "node", node, "state", state, "attempt",
                  (json_int_t)u.attempt, "started_ms", (json_int_t)u.assigned_ms, "finished_ms",
                  (json_int_t)u.finished_ms);
    if (u.state == STORE_UNIT_DONE) {
        json_object_set_new(o, "status", json_string(store_status_name(u.status)));
        json_object_set_new(o, "exit_code", json_integer(u.exit_code));
        if (unit_result(t, k->id, unit, node, &res) == FL_OK) {
            parse_events((const char *)res.tail, res.tail_len, o);
            if (json_object_get(o, "result") == NULL && res.tail_len > 0) {
                /* no report: the last line of output says why */
                const char *e = (const char *)res.tail + res.tail_len;
                const char *b = e;
                while (b > (const char *)res.tail && (b[-1] == '\n')) {
                    e = --b;
                }
                while (b > (const char *)res.tail && b[-1] != '\n') {
                    b--;
                }
                json_object_set_new(o, "error", json_stringn(b, (size_t)(e - b)));
            }
        }
    } else if (u.state == STORE_UNIT_RUNNING) {
        struct fl_buf logs;
        fl_buf_init(&logs);
        if (dispatch_logs(s->dispatch, k->id, unit, &logs)) {
            parse_events((const char *)logs.data, logs.len, o);
        }
        fl_buf_close(&logs);
    }
    return o;
}

static const char *task_state(int st)
{
    static const char *names[] = {"?", "waiting", "running", "deployed", "failed", "cancelled"};
    return st >= 1 && st <= 5 ? names[st] : "?";
}

static json_t *rollout_summary(const struct store_task *k, const struct node_spec *spec)
{
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:I}", "id", k->id, "state",
                  task_state(k->state), "targets", (json_int_t)k->n_hosts, "max_parallel",
                  (json_int_t)k->max_running, "max_failures",
                  (json_int_t)(k->fail_stop > 0 ? k->fail_stop - 1 : 0), "seq", (json_int_t)k->seq,
                  "stopped", k->stopped, "cancel_requested", k->cancel_requested, "created_ms",
                  (json_int_t)k->created_ms, "finished_ms", (json_int_t)k->finished_ms);
    spec_fields(spec, o);
    json_object_set_new(o, "progress",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "waiting",
                                  (json_int_t)k->units_queued, "running",
                                  (json_int_t)k->units_running, "deployed",
                                  (json_int_t)k->hosts_by_status[STORE_ST_OK], "cancelled",
                                  (json_int_t)k->hosts_by_status[STORE_ST_CANCELLED], "failed",
                                  (json_int_t)(k->units_done - k->hosts_by_status[STORE_ST_OK] -
                                               k->hosts_by_status[STORE_ST_CANCELLED])));
    return o;
}

void node__deploys_get(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_task k;
    struct node_spec spec;
    json_t *o, *targets;
    unsigned tally[5] = {0};
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    rv = store_task_get(t, args[0], &k);
    if (rv != FL_OK || !deploy_spec(&k, &spec)) {
        store_abort(t);
        node__respond_err(req, rv == FL_OK || rv == FL_ENOTFOUND ? FL_ENOTFOUND : rv,
                          "no rollout \"%s\"", args[0]);
        return;
    }
    o = rollout_summary(&k, &spec);
    targets = json_array();
    for (uint32_t i = 0; i < k.n_units && i < 100000; i++) {
        json_t *tj = target_json(s, t, &k, i, tally);
        if (tj != NULL) {
            json_array_append_new(targets, tj);
        }
    }
    json_object_set_new(o, "target_list", targets);
    node_spec_close(&spec);
    store_abort(t);
    http_respond_json(req, 200, o);
}

/* The deploy tasks, newest first; with app, only that application's. */
static json_t *list_rollouts(struct store_txn *t, const char *app, unsigned limit)
{
    struct store_iter it;
    struct store_task task;
    json_t *arr = json_array();
    if (store_iter_open(t, STORE_TASKS, NULL, 0, &it) != FL_OK) {
        return arr;
    }
    while (store_task_next(&it, &task) == FL_OK) {
        struct node_spec spec;
        const char *a;
        if (strncmp(task.name, DEPLOY_NAME_PREFIX, strlen(DEPLOY_NAME_PREFIX)) != 0 ||
            !deploy_spec(&task, &spec)) {
            continue;
        }
        a = spec_opt(&spec, "--app");
        if (app == NULL || (a != NULL && strcmp(a, app) == 0)) {
            json_array_append_new(arr, rollout_summary(&task, &spec));
        }
        node_spec_close(&spec);
    }
    store_iter_close(&it);
    /* newest (highest submission index) first */
    for (size_t i = 1; i < json_array_size(arr); i++) {
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(arr, j - 1), *b = json_array_get(arr, j);
            if (json_integer_value(json_object_get(a, "seq")) >=
                json_integer_value(json_object_get(b, "seq"))) {
                break;
            }
            json_incref(a);
            json_array_set(arr, j - 1, b);
            json_array_set_new(arr, j, a);
        }
    }
    while (json_array_size(arr) > limit) {
        json_array_remove(arr, json_array_size(arr) - 1);
    }
    return arr;
}

void node__deploys_list(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    char app[STORE_PKG_NAME_MAX] = "";
    uint64_t limit = 50;
    json_t *arr;
    (void)args;
    if (http_query_param(req, "app", app, sizeof app) < 0) {
        node__respond_err(req, FL_EINVAL, "?app= is malformed or too long");
        return;
    }
    if (node__uint_query(req, "limit", 1, DEPLOY_LIST_MAX, &limit) < 0) {
        return;
    }
    if (store_begin(s->store, 0, &t) != FL_OK) {
        node__respond_err(req, FL_EIO, "%s", store_errmsg(s->store));
        return;
    }
    arr = list_rollouts(t, app[0] ? app : NULL, (unsigned)limit);
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:o}", "deploys", arr));
}

/* ---- rollback ---------------------------------------------------------------- */

/* POST /v1/deploys/rollback {app, version}: the app's latest rollout again,
 * same targets and checks, with an earlier version. */
void node__deploys_rollback(struct node_server *s, struct http_request *req, char **args)
{
    json_t *body = node__body_object(req, rollback_fields), *arr = NULL;
    struct store_txn *t = NULL;
    struct store_task last;
    struct node_spec spec;
    struct rollout r;
    const char *id;
    int have_spec = 0;
    (void)args;
    if (body == NULL) {
        return;
    }
    memset(&r, 0, sizeof r);
    if (!name_field(req, body, "app", 0, r.app, sizeof r.app) ||
        !name_field(req, body, "version", 1, r.version, sizeof r.version) ||
        !pace_fields(req, body, &r)) {
        goto out;
    }
    if (r.app[0] == '\0' || r.version[0] == '\0') {
        node__field_err(req, r.app[0] ? "version" : "app", "required");
        goto out;
    }
    if (store_begin(s->store, 0, &t) != FL_OK) {
        node__respond_err(req, FL_EIO, "%s", store_errmsg(s->store));
        goto out;
    }
    arr = list_rollouts(t, r.app, 1);
    id = json_string_value(json_object_get(json_array_get(arr, 0), "id"));
    if (id == NULL) {
        node__respond_err(req, FL_ENOTFOUND, "no rollout of app \"%s\" to roll back", r.app);
        goto out;
    }
    if (store_task_get(t, id, &last) != FL_OK || !deploy_spec(&last, &spec)) {
        node__respond_err(req, FL_ENOTFOUND, "rollout %s is gone", id);
        goto out;
    }
    have_spec = 1;
    /* Same package, targets, root, checks and hooks; this version. */
    {
        const char *at = strchr(spec.argv[0], '@');
        const char *v;
        size_t pl = at ? (size_t)(at - spec.argv[0]) : 0;
        if (pl == 0 || pl >= sizeof r.package) {
            node__respond_err(req, FL_ECORRUPT, "rollout %s has no package", id);
            goto out;
        }
        memcpy(r.package, spec.argv[0], pl);
        r.package[pl] = '\0';
        r.root = spec_opt(&spec, "--root");
        r.health = spec_opt(&spec, "--health");
        r.health_http = spec_opt(&spec, "--health-http");
        r.pre_hook = spec_opt(&spec, "--pre-hook");
        r.post_hook = spec_opt(&spec, "--post-hook");
        if ((v = spec_opt(&spec, "--keep")) != NULL) {
            r.keep = atoll(v);
        }
        if ((v = spec_opt(&spec, "--health-timeout")) != NULL) {
            r.health_timeout_ms = atoll(v);
        }
        if ((v = spec_opt(&spec, "--reload-timeout")) != NULL) {
            r.reload_timeout_ms = atoll(v);
        }
        if (json_object_get(body, "max_parallel") == NULL &&
            json_object_get(body, "window") == NULL) {
            r.max_parallel = last.max_running > 0 ? last.max_running : 1;
        }
        if (json_object_get(body, "max_failures") == NULL) {
            r.max_failures = last.fail_stop > 0 ? last.fail_stop - 1 : 0;
        }
        if (json_object_get(body, "timeout_ms") == NULL) {
            r.timeout_ms = last.timeout_ms;
        }
        /* the targets: "node=<id>" for each of the last rollout's */
        for (uint32_t i = 0; i < last.n_units; i++) {
            struct store_unit u;
            const char *h;
            size_t pos = 0, hl;
            if (store_unit_get(t, last.id, i, &u) != FL_OK ||
                store_unit_host(&u, &pos, &h, &hl) != FL_OK || hl >= STORE_NODE_ID_MAX) {
                continue;
            }
            if (r.n_targets % 64 == 0) {
                void *p = fl_realloc(r.targets, sizeof *r.targets * (r.n_targets + 64));
                if (p == NULL) {
                    node__respond_err(req, FL_ENOMEM, "out of memory");
                    goto out;
                }
                r.targets = p;
            }
            memcpy(r.targets[r.n_targets], h, hl);
            r.targets[r.n_targets][hl] = '\0';
            r.n_targets++;
        }
    }
    store_abort(t);
    t = NULL;
    submit_rollout(s, req, &r);
out:
    if (have_spec) {
        node_spec_close(&spec);
    }
    store_abort(t);
    json_decref(arr);
    rollout_close(&r);
    json_decref(body);
}
