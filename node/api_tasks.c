/* /v1/tasks, /v1/dispatch — submitting work and reading tasks, units, the
 * reasons units wait and their logs (docs/API.md); results are read in
 * node/api_results.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/err.h"
#include "leader/dispatch.h"
#include "node/agentlink.h"
#include "node/node_int.h"
#include "spec/spec.h"
#include "store/iter.h"
#include "scheduler/sched.h"

/* ---- submit ------------------------------------------------------------- */

int node__field_err(struct http_request *req, const char *field, const char *what)
{
    node__respond_err(req, FL_EINVAL, "field \"%s\": %s", field, what);
    return 0;
}

int node__int_field(struct http_request *req, json_t *body, const char *name, long long lo,
                    long long hi, long long *out)
{
    json_t *v = json_object_get(body, name);
    char what[96];
    if (v == NULL) {
        return 1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(what, sizeof what, "must be an integer %lld..%lld", lo, hi);
        return node__field_err(req, name, what);
    }
    *out = json_integer_value(v);
    return 1;
}

/* An array of strings, each checked by `check` (may be NULL). */
static int str_array(struct http_request *req, json_t *body, const char *name, unsigned max,
                     size_t maxlen, const char **out, unsigned *n,
                     int (*check)(const char *, char *))
{
    json_t *arr = json_object_get(body, name), *v;
    char why[FL_ERRMSG_SIZE], what[FL_ERRMSG_SIZE + 64];
    size_t i;
    *n = 0;
    if (arr == NULL) {
        return 1;
    }
    if (!json_is_array(arr) || json_array_size(arr) > max) {
        snprintf(what, sizeof what, "must be an array of at most %u strings", max);
        return node__field_err(req, name, what);
    }
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL || strlen(s) == 0 || strlen(s) > maxlen ||
            strlen(s) != json_string_length(v)) {
            snprintf(what, sizeof what, "item %zu must be a non-empty string of at most %zu bytes",
                     i, maxlen);
            return node__field_err(req, name, what);
        }
        if (check != NULL && check(s, why) != FL_OK) {
            snprintf(what, sizeof what, "item %zu: %s", i, why);
            return node__field_err(req, name, what);
        }
        out[(*n)++] = s;
    }
    return 1;
}

static int valid_host(const char *s, char *why)
{
    /* A leading '#' or '[' would read as a comment or a group in an Ansible
     * inventory. */
    if (s[0] == '#' || s[0] == '[') {
        snprintf(why, FL_ERRMSG_SIZE, "\"%.60s\" starts with '#' or '['", s);
        return FL_EINVAL;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == ',' || *p == 0x7f) {
            snprintf(why, FL_ERRMSG_SIZE, "\"%.60s\" has a space, comma or control character", s);
            return FL_EINVAL;
        }
    }
    return FL_OK;
}

/* With run_on host a host names the node that runs it: a node id is 1-63
 * printable characters without '/' (fsm/cmd.c). */
static int valid_node_host(const char *s, char *why)
{
    if (valid_host(s, why) != FL_OK) {
        return FL_EINVAL;
    }
    if (strlen(s) >= STORE_NODE_ID_MAX || strchr(s, '/') != NULL) {
        snprintf(why, FL_ERRMSG_SIZE,
                 "\"%.60s\" is not a node id (1-%d characters without '/'), as run_on host needs",
                 s, STORE_NODE_ID_MAX - 1);
        return FL_EINVAL;
    }
    return FL_OK;
}

static int valid_var(const char *s, char *why)
{
    if (strchr(s, '=') == NULL || s[0] == '=' || strchr(s, '\n') != NULL) {
        snprintf(why, FL_ERRMSG_SIZE, "must be k=v on one line");
        return FL_EINVAL;
    }
    return FL_OK;
}

void node__submit_done(struct node_server *s, struct http_request *req, int err,
                       const struct fsm_result *res)
{
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    if (res->err != FL_OK && res->err != FL_EEXIST) {
        node__respond_err(req, res->err, "%s", fl_strerror(res->err));
        return;
    }
    dispatch_kick(s->dispatch);
    http_respond_json(req, 200,
                      json_pack("{s:s, s:b, s:I}", "id", res->task_id, "existing",
                                res->err == FL_EEXIST, "index", (json_int_t)res->index));
}

/* One env entry as stored: NAME=value, or NAME= and a sealed value
 * (nonce, ciphertext and tag in base64). */
#define ENV_ENTRY_MAX (NODE_SPEC_ENV_NAME_MAX + 2 + (NODE_SPEC_ENV_VALUE_MAX + 64) * 4 / 3 + 8)

/* "env" or "secret_env": an object of NAME -> string value. Secret values
 * are sealed here, on the server that took the request, before anything is
 * proposed: only ciphertext enters the log. */
static int env_field(struct http_request *req, json_t *body, const char *field, int sealed,
                     struct node_task_build *b, const char **out, unsigned *n)
{
    unsigned char key[NODE_SECRET_KEY_BYTES];
    json_t *obj = json_object_get(body, field), *v;
    const char *name;
    char msg[160];
    *n = 0;
    if (obj == NULL) {
        return 1;
    }
    if (!json_is_object(obj) || json_object_size(obj) > NODE_SPEC_ENV_MAX) {
        snprintf(msg, sizeof msg, "must be an object of at most %d NAME: value pairs",
                 NODE_SPEC_ENV_MAX);
        node__field_err(req, field, msg);
        return 0;
    }
    if (b->envbuf == NULL &&
        (b->envbuf = fl_calloc((size_t)NODE_SPEC_ENV_MAX * 2, ENV_ENTRY_MAX)) == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return 0;
    }
    if (sealed) {
        if (b->key == NULL) {
            node__field_err(req, field, "this server has no cluster key to seal secrets with");
            return 0;
        }
        node_secret_key(b->key, key);
    }
    json_object_foreach(obj, name, v)
    {
        char *slot = b->envbuf + (size_t)((sealed ? NODE_SPEC_ENV_MAX : 0) + *n) * ENV_ENTRY_MAX;
        size_t vlen = json_is_string(v) ? json_string_length(v) : 0;
        if (!node_env_name_valid(name, strlen(name))) {
            snprintf(msg, sizeof msg,
                     "\"%.64s\": a name is 1-64 of [A-Za-z0-9_], not starting with a digit "
                     "or FLOTILLA_",
                     name);
            node__field_err(req, field, msg);
            return 0;
        }
        if (!json_is_string(v) || vlen > NODE_SPEC_ENV_VALUE_MAX ||
            memchr(json_string_value(v), '\0', vlen) != NULL) {
            snprintf(msg, sizeof msg, "\"%.64s\": the value must be a string of at most %d bytes",
                     name, NODE_SPEC_ENV_VALUE_MAX);
            node__field_err(req, field, msg);
            return 0;
        }
        if (sealed) {
            node_secret_seal(key, name, json_string_value(v), vlen, slot, ENV_ENTRY_MAX);
        } else {
            snprintf(slot, ENV_ENTRY_MAX, "%s=%s", name, json_string_value(v));
        }
        out[(*n)++] = slot;
    }
    if (sealed) {
        sodium_memzero(key, sizeof key);
    }
    return 1;
}

/* The test-only executors, noop and sleep_ms, are compiled in only with
 * FLOTILLA_TEST_HOOKS (docs/ARCHITECTURE.md, "Test hooks"); a production
 * build knows their fields only to refuse them by name. */
#ifdef FLOTILLA_TEST_HOOKS
#define TEST_EXECUTORS 1
#define EXECUTOR_NAMES "exec, shell, ansible_module, playbook, noop or sleep_ms"
#else
#define TEST_EXECUTORS 0
#define EXECUTOR_NAMES "exec, shell, ansible_module or playbook"
#endif

static int no_test_executor(struct http_request *req, json_t *body)
{
    static const char *const fields[] = {"noop", "sleep_ms"};
    for (size_t i = 0; !TEST_EXECUTORS && i < sizeof fields / sizeof fields[0]; i++) {
        if (json_object_get(body, fields[i]) != NULL) {
            return node__field_err(req, fields[i], "available only in test builds");
        }
    }
    return 1;
}

const char *const node__task_fields[] = {"name",
                                         "hosts",
                                         "unit_size",
                                         "timeout_ms",
                                         "retries",
                                         "priority",
                                         "constraints",
                                         "idempotency_key",
                                         "exec",
                                         "shell",
                                         "ansible_module",
                                         "ansible_args",
                                         "playbook",
                                         "noop",
                                         "sleep_ms",
                                         "inventory_vars",
                                         "kill_grace_ms",
                                         "env",
                                         "secret_env",
                                         "max_parallel",
                                         "stop_after_failures",
                                         "run_on",
                                         NULL};

void node__task_on_hosts(struct fsm_cmd *c, uint32_t max_running, uint32_t fail_stop)
{
    c->u.task.placement = FSM_PLACE_HOST;
    c->u.task.unit_size = 1;
    c->u.task.max_running = max_running;
    c->u.task.fail_stop = fail_stop;
}

void node__task_build_close(struct node_task_build *b)
{
    fl_buf_close(&b->specbuf);
    if (b->envbuf != NULL) {
        sodium_memzero(b->envbuf, (size_t)NODE_SPEC_ENV_MAX * 2 * ENV_ENTRY_MAX);
        fl_free(b->envbuf);
        b->envbuf = NULL;
    }
    fl_free(b->hosts);
    b->hosts = NULL;
}

/* The executor: exactly one of the executor fields. */
static int executor_fields(struct http_request *req, json_t *body, uint32_t sleep_ms,
                           struct node_spec *spec)
{
    static const char *const executors[] = {"exec",     "shell", "ansible_module",
                                            "playbook", "noop",  "sleep_ms"};
    unsigned n_exec = 0;
    json_t *v;

    for (size_t i = 0; i < sizeof executors / sizeof executors[0]; i++) {
        n_exec += json_object_get(body, executors[i]) != NULL;
    }
    if (n_exec != 1) {
        node__field_err(req, "exec", "give exactly one executor: " EXECUTOR_NAMES);
        return 0;
    }
    if ((v = json_object_get(body, "exec")) != NULL) {
        spec->kind = NODE_EXEC;
        if (!str_array(req, body, "exec", NODE_SPEC_ARGV_MAX, 64 * 1024, spec->argv, &spec->argc,
                       NULL)) {
            return 0;
        }
        if (spec->argc == 0) {
            node__field_err(req, "exec", "must name a command: [\"cmd\", \"arg\", ...]");
            return 0;
        }
    } else if ((v = json_object_get(body, "shell")) != NULL) {
        spec->kind = NODE_SHELL;
        if (!json_is_string(v) || json_string_length(v) == 0) {
            node__field_err(req, "shell", "must be a non-empty script");
            return 0;
        }
        spec->script = json_string_value(v);
    } else if ((v = json_object_get(body, "ansible_module")) != NULL) {
        json_t *a = json_object_get(body, "ansible_args");
        spec->kind = NODE_ANSIBLE_MODULE;
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128) {
            node__field_err(req, "ansible_module", "must be a module name");
            return 0;
        }
        if (a != NULL && !json_is_string(a)) {
            node__field_err(req, "ansible_args", "must be a string");
            return 0;
        }
        spec->module = json_string_value(v);
        spec->module_args = a ? json_string_value(a) : "";
    } else if ((v = json_object_get(body, "playbook")) != NULL) {
        spec->kind = NODE_PLAYBOOK;
        if (!json_is_string(v) || json_string_length(v) == 0) {
            node__field_err(req, "playbook", "must be the playbook's YAML text");
            return 0;
        }
        spec->playbook = json_string_value(v);
    } else if (!TEST_EXECUTORS) {
        return node__field_err(req, "exec", "give exactly one executor: " EXECUTOR_NAMES);
    } else if ((v = json_object_get(body, "noop")) != NULL) {
        spec->kind = NODE_NOOP;
        if (!json_is_true(v)) {
            node__field_err(req, "noop", "must be true");
            return 0;
        }
    } else {
        spec->kind = NODE_SLEEP;
        spec->sleep_ms = sleep_ms;
    }
    return 1;
}

/* The optional idempotency key and task name. */
static int name_fields(struct http_request *req, json_t *body, struct node_task_build *b)
{
    json_t *v;

    if ((v = json_object_get(body, "idempotency_key")) != NULL) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 127) {
            node__field_err(req, "idempotency_key", "must be a string of 1-127 bytes");
            return 0;
        }
        snprintf(b->idem, sizeof b->idem, "%s", json_string_value(v));
    }
    if ((v = json_object_get(body, "name")) != NULL) {
        if (!json_is_string(v) || json_string_length(v) >= sizeof b->name) {
            node__field_err(req, "name", "must be a string of at most 127 bytes");
            return 0;
        }
        if (strncmp(json_string_value(v), "job:", 4) == 0) {
            node__field_err(req, "name",
                            "may not start with \"job:\" (the names of cron job runs)");
            return 0;
        }
        snprintf(b->name, sizeof b->name, "%s", json_string_value(v));
    }
    return 1;
}

int node__task_build(struct http_request *req, json_t *body, int need_hosts,
                     const unsigned char *key, struct node_task_build *b)
{
    unsigned n_hosts = 0, n_constraints = 0;
    long long unit_size = 30, timeout_ms = 0, retries = 0, priority = 0, sleep_ms = 0, grace = 0,
              max_parallel = 0, stop_after = 0;
    int on_host = 0;
    struct node_spec *spec = &b->spec;
    uint8_t rnd[8];
    json_t *v;

    memset(b, 0, sizeof *b);
    b->key = key;
    fl_buf_init(&b->specbuf);
    if (!no_test_executor(req, body)) {
        return 0;
    }
    if ((v = json_object_get(body, "run_on")) != NULL) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "any") != 0 &&
                                   strcmp(json_string_value(v), "host") != 0)) {
            node__field_err(req, "run_on",
                            "must be \"any\" (a node the scheduler picks) or \"host\" "
                            "(each host is the id of the node that runs it)");
            return 0;
        }
        on_host = strcmp(json_string_value(v), "host") == 0;
    }
    v = json_object_get(body, "hosts");
    if (need_hosts || v != NULL) {
        if (!json_is_array(v) || json_array_size(v) == 0 ||
            json_array_size(v) > FSM_TASK_HOSTS_MAX) {
            b->over_hosts = json_is_array(v) && json_array_size(v) > FSM_TASK_HOSTS_MAX;
            node__field_err(req, "hosts", "required: an array of 1 to 200000 host names");
            return 0;
        }
        b->hosts = fl_malloc(sizeof *b->hosts * json_array_size(v));
        if (b->hosts == NULL) {
            node__respond_err(req, FL_ENOMEM, "out of memory");
            return 0;
        }
    }
    if ((b->hosts != NULL &&
         !str_array(req, body, "hosts", FSM_TASK_HOSTS_MAX, STORE_HOST_MAX - 1, b->hosts, &n_hosts,
                    on_host ? valid_node_host : valid_host)) ||
        !str_array(req, body, "constraints", STORE_TASK_CONSTRAINTS, SCHED_TEXT_MAX, b->constraints,
                   &n_constraints, sched_constraint_valid) ||
        !str_array(req, body, "inventory_vars", NODE_SPEC_VARS_MAX, 255, spec->vars, &spec->n_vars,
                   valid_var) ||
        !node__int_field(req, body, "unit_size", 1, FSM_UNIT_SIZE_MAX, &unit_size) ||
        !node__int_field(req, body, "timeout_ms", 0, 7 * 24 * 3600 * 1000LL, &timeout_ms) ||
        !node__int_field(req, body, "retries", 0, 100, &retries) ||
        !node__int_field(req, body, "priority", -1000000, 1000000, &priority) ||
        !node__int_field(req, body, "sleep_ms", 0, 24 * 3600 * 1000LL, &sleep_ms) ||
        !node__int_field(req, body, "kill_grace_ms", 0, 600000, &grace) ||
        !node__int_field(req, body, "max_parallel", 1, FSM_MAX_RUNNING_MAX, &max_parallel) ||
        !node__int_field(req, body, "stop_after_failures", 0, FSM_TASK_HOSTS_MAX, &stop_after)) {
        return 0;
    }
    if (on_host && json_object_get(body, "unit_size") != NULL && unit_size != 1) {
        node__field_err(req, "unit_size", "must be 1 with run_on host (each unit is one node)");
        return 0;
    }
    if (!executor_fields(req, body, (uint32_t)sleep_ms, spec)) {
        return 0;
    }
    if (json_object_get(body, "ansible_args") != NULL && spec->kind != NODE_ANSIBLE_MODULE) {
        node__field_err(req, "ansible_args", "only goes with ansible_module");
        return 0;
    }
    spec->kill_grace_ms = (uint32_t)grace;
    if (!env_field(req, body, "env", 0, b, spec->env, &spec->n_env) ||
        !env_field(req, body, "secret_env", 1, b, spec->secret, &spec->n_secret)) {
        return 0;
    }
    for (unsigned i = 0; i < spec->n_secret; i++) {
        size_t l = strcspn(spec->secret[i], "=");
        for (unsigned k = 0; k < spec->n_env; k++) {
            if (strncmp(spec->env[k], spec->secret[i], l + 1) == 0) {
                node__field_err(req, "secret_env", "a name is in both env and secret_env");
                return 0;
            }
        }
    }
    if (!name_fields(req, body, b)) {
        return 0;
    }
    if (node_spec_encode(spec, &b->specbuf) != FL_OK) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return 0;
    }
    randombytes_buf(rnd, sizeof rnd);
    b->id[0] = 't';
    sodium_bin2hex(b->id + 1, sizeof b->id - 1, rnd, sizeof rnd);
    memset(&b->cmd, 0, sizeof b->cmd);
    b->cmd.type = FSM_CMD_TASK_SUBMIT;
    b->cmd.u.task.id = b->id;
    b->cmd.u.task.idlen = strlen(b->id);
    b->cmd.u.task.name = b->name;
    b->cmd.u.task.namelen = strlen(b->name);
    b->cmd.u.task.idem = b->idem;
    b->cmd.u.task.idemlen = strlen(b->idem);
    b->cmd.u.task.n_hosts = n_hosts;
    b->cmd.u.task.host_ptrs = b->hosts;
    b->cmd.u.task.unit_size = (uint32_t)unit_size;
    b->cmd.u.task.timeout_ms = (uint32_t)timeout_ms;
    b->cmd.u.task.retries = (uint32_t)retries;
    b->cmd.u.task.priority = (int32_t)priority;
    b->cmd.u.task.n_constraints = n_constraints;
    for (unsigned i = 0; i < n_constraints; i++) {
        b->cmd.u.task.constraints[i] = b->constraints[i];
        b->cmd.u.task.constraint_lens[i] = strlen(b->constraints[i]);
    }
    b->cmd.u.task.spec = b->specbuf.data;
    b->cmd.u.task.spec_len = b->specbuf.len;
    b->cmd.u.task.max_running = (uint32_t)max_parallel;
    b->cmd.u.task.fail_stop = (uint32_t)stop_after;
    if (on_host) {
        node__task_on_hosts(&b->cmd, (uint32_t)max_parallel, (uint32_t)stop_after);
    }
    return 1;
}

void node__tasks_submit(struct node_server *s, struct http_request *req, char **args)
{
    json_t *body = node__body_object(req, node__task_fields);
    struct node_task_build b;
    (void)args;
    if (body == NULL) {
        return;
    }
    if (node__task_build(req, body, 1, s->cfg.key, &b)) {
        node__submit(s, req, &b.cmd, node__submit_done);
    } else if (b.over_hosts) {
        s->n_refused_hosts++;
    }
    node__task_build_close(&b);
    json_decref(body);
}

/* ---- task views ----------------------------------------------------------- */

static const char *task_state_name(int st)
{
    static const char *names[] = {"?", "queued", "running", "done", "failed", "cancelled"};
    return st >= 1 && st <= 5 ? names[st] : "?";
}

json_t *node__task_json(const struct store_task *k)
{
    json_t *hosts = json_object(), *cons = json_array(), *o;
    struct node_spec spec;
    uint32_t finished = 0;
    for (int i = 1; i < STORE_ST__MAX; i++) {
        json_object_set_new(hosts, store_status_name(i), json_integer(k->hosts_by_status[i]));
        finished += k->hosts_by_status[i];
    }
    json_object_set_new(hosts, "pending", json_integer(k->n_hosts - finished));
    for (unsigned i = 0; i < k->n_constraints; i++) {
        json_array_append_new(cons, json_string(k->constraints[i]));
    }
    o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:b, s:I}", "id",
                  k->id, "name", k->name, "state", task_state_name(k->state), "priority",
                  k->priority, "hosts", (json_int_t)k->n_hosts, "units", (json_int_t)k->n_units,
                  "unit_size", (json_int_t)k->unit_size, "timeout_ms", (json_int_t)k->timeout_ms,
                  "retries", (json_int_t)k->retries, "constraints", cons, "created_ms",
                  (json_int_t)k->created_ms, "finished_ms", (json_int_t)k->finished_ms,
                  "cancel_requested", k->cancel_requested, "stale_results",
                  (json_int_t)k->stale_results);
    json_object_set_new(o, "max_parallel", json_integer(k->max_running));
    json_object_set_new(o, "stop_after_failures", json_integer(k->fail_stop));
    json_object_set_new(o, "run_on", json_string(k->placement == FSM_PLACE_HOST ? "host" : "any"));
    json_object_set_new(o, "stopped", json_boolean(k->stopped));
    json_object_set_new(o, "progress",
                        json_pack("{s:{s:I, s:I, s:I}, s:o}", "units", "queued",
                                  (json_int_t)k->units_queued, "running",
                                  (json_int_t)k->units_running, "done", (json_int_t)k->units_done,
                                  "hosts", hosts));
    if (node_spec_decode(k->spec, k->spec_len, &spec) == FL_OK) {
        json_t *e = json_pack("{s:s}", "kind", node_exec_kind_name(spec.kind));
        if (spec.kind == NODE_EXEC) {
            json_t *argv = json_array();
            for (unsigned i = 0; i < spec.argc; i++) {
                json_array_append_new(argv, json_string(spec.argv[i]));
            }
            json_object_set_new(e, "argv", argv);
        } else if (spec.kind == NODE_SHELL) {
            json_object_set_new(e, "script", json_string(spec.script));
        } else if (spec.kind == NODE_ANSIBLE_MODULE) {
            json_object_set_new(e, "module", json_string(spec.module));
            json_object_set_new(e, "args", json_string(spec.module_args));
        } else if (spec.kind == NODE_SLEEP) {
            json_object_set_new(e, "sleep_ms", json_integer(spec.sleep_ms));
        }
        if (spec.n_env > 0 || spec.n_secret > 0) {
            json_t *env = json_object(), *names = json_array();
            for (unsigned i = 0; i < spec.n_env; i++) {
                const char *eq = strchr(spec.env[i], '=');
                if (eq != NULL) {
                    json_object_setn_new(env, spec.env[i], (size_t)(eq - spec.env[i]),
                                         json_string(eq + 1));
                }
            }
            /* Secrets: their names only, never a value or its ciphertext. */
            for (unsigned i = 0; i < spec.n_secret; i++) {
                json_array_append_new(names,
                                      json_stringn(spec.secret[i], strcspn(spec.secret[i], "=")));
            }
            json_object_set_new(e, "env", env);
            json_object_set_new(e, "secret_env", names);
        }
        json_object_set_new(o, "executor", e);
        node_spec_close(&spec);
    }
    return o;
}

int node__open_task(struct node_server *s, struct http_request *req, const char *id,
                    struct store_txn **t, struct store_task *task)
{
    int rv = store_begin(s->store, 0, t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return 0;
    }
    rv = store_task_get(*t, id, task);
    if (rv != FL_OK) {
        store_abort(*t);
        node__respond_err(req, rv, "task \"%s\": %s", id, fl_strerror(rv));
        return 0;
    }
    return 1;
}

void node__tasks_get(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_task task;
    if (!node__open_task(s, req, args[0], &t, &task)) {
        return;
    }
    http_respond_json(req, 200, node__task_json(&task));
    store_abort(t);
}

void node__tasks_list(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_iter it;
    json_t *arr = json_array();
    if (store_begin(s->store, 0, &t) != FL_OK) {
        json_decref(arr);
        node__respond_err(req, FL_EIO, "%s", store_errmsg(s->store));
        return;
    }
    if (store_iter_open(t, STORE_TASKS, NULL, 0, &it) == FL_OK) {
        struct store_task task;
        while (json_array_size(arr) < 10000 && store_task_next(&it, &task) == FL_OK) {
            json_array_append_new(arr, node__task_json(&task));
        }
        store_iter_close(&it);
    }
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:o}", "tasks", arr));
}

static json_t *unit_json(const struct store_unit *u, uint32_t unit)
{
    static const char *states[] = {"?", "queued", "running", "done"};
    json_t *hosts = json_array();
    size_t pos = 0, hl;
    const char *h;
    while (store_unit_host(u, &pos, &h, &hl) == FL_OK) {
        json_array_append_new(hosts, json_stringn(h, hl));
    }
    return json_pack("{s:I, s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:i, s:I, s:I, s:o, s:b}", "unit",
                     (json_int_t)unit, "state", states[u->state <= 3 ? u->state : 0], "node",
                     u->node, "attempt", (json_int_t)u->attempt, "token", (json_int_t)u->token,
                     "status", store_status_name(u->status), "retries_left",
                     (json_int_t)u->retries_left, "last_node", u->last_node, "exit_code",
                     u->exit_code, "assigned_ms", (json_int_t)u->assigned_ms, "finished_ms",
                     (json_int_t)u->finished_ms, "hosts", hosts, "cancel", u->cancel);
}

void node__tasks_units(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_task task;
    json_t *arr;
    if (!node__open_task(s, req, args[0], &t, &task)) {
        return;
    }
    arr = json_array();
    for (uint32_t i = 0; i < task.n_units && i < 100000; i++) {
        struct store_unit u;
        if (store_unit_get(t, task.id, i, &u) == FL_OK) {
            json_array_append_new(arr, unit_json(&u, i));
        }
    }
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:s, s:o}", "task", task.id, "units", arr));
}

static void plain_done(struct node_server *s, struct http_request *req, int err,
                       const struct fsm_result *res)
{
    if (err == FL_OK) {
        err = res->err;
    }
    if (err != FL_OK) {
        node__respond_err(req, err, "%s",
                          err == FL_EEXIST ? "the task has finished already" : fl_strerror(err));
        return;
    }
    dispatch_kick(s->dispatch);
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

void node__tasks_cancel(struct node_server *s, struct http_request *req, char **args)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_TASK_CANCEL;
    cmd.u.task.id = args[0];
    cmd.u.task.idlen = strlen(args[0]);
    node__submit(s, req, &cmd, plain_done);
}

static void set_dispatch(struct node_server *s, struct http_request *req, int paused)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_DISPATCH;
    cmd.u.dispatch.paused = paused;
    node__submit(s, req, &cmd, plain_done);
}

void node__dispatch_pause(struct node_server *s, struct http_request *req, char **args)
{
    set_dispatch(s, req, 1);
}

void node__dispatch_resume(struct node_server *s, struct http_request *req, char **args)
{
    set_dispatch(s, req, 0);
}

void node__dispatch_status(struct node_server *s, struct http_request *req, char **args)
{
    json_t *o = dispatch_stats_json(s->dispatch);
    agentlink_stats(s->links, o);
    json_object_set_new(o, "paused", json_boolean(rg_repl_fsm(s->repl)->dispatch_paused));
    http_respond_json(req, 200, o);
}

/* ---- why ------------------------------------------------------------------ */

void node__tasks_why(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_task task;
    json_t *o;
    if (!node__open_task(s, req, args[0], &t, &task)) {
        return;
    }
    o = json_pack("{s:s, s:s}", "task", task.id, "state", task_state_name(task.state));
    if (rg_repl_fsm(s->repl)->dispatch_paused) {
        json_object_set_new(o, "summary",
                            json_string("dispatch is paused cluster-wide (flotilla dispatch "
                                        "resume)"));
    } else if (task.units_queued == 0) {
        json_object_set_new(o, "summary",
                            json_string(task.state >= STORE_TASK_DONE
                                            ? "the task has finished"
                                            : "no unit is waiting for a node"));
    } else {
        struct sched_why why;
        struct store_unit u;
        struct sched_unit su;
        const char *cons[STORE_TASK_CONSTRAINTS + 1];
        char pin[STORE_NODE_ID_MAX + 8];
        uint32_t first = 0;
        for (; first < task.n_units; first++) {
            if (store_unit_get(t, task.id, first, &u) == FL_OK && u.state == STORE_UNIT_QUEUED) {
                break;
            }
        }
        for (unsigned i = 0; i < task.n_constraints; i++) {
            cons[i] = task.constraints[i];
        }
        memset(&su, 0, sizeof su);
        su.priority = task.priority;
        su.seq = task.seq;
        su.n_constraints = task.n_constraints;
        su.constraints = cons;
        su.not_before_ms = first < task.n_units ? u.not_before_ms : 0;
        if (task.placement == FSM_PLACE_HOST && first < task.n_units) {
            /* The unit runs on its host's node only. */
            size_t pos = 0, hl;
            const char *h;
            if (store_unit_host(&u, &pos, &h, &hl) == FL_OK && hl < STORE_NODE_ID_MAX) {
                snprintf(pin, sizeof pin, "node=%.*s", (int)hl, h);
                cons[su.n_constraints++] = pin;
            }
        }
        dispatch_why(s->dispatch, t, &su, &why);
        if (task.max_running > 0 && task.units_running >= task.max_running) {
            snprintf(why.summary, sizeof why.summary,
                     "waiting: max_parallel %u reached (%u units running)", task.max_running,
                     task.units_running);
        }
        json_object_set_new(o, "summary", json_string(why.summary));
        json_object_set_new(o, "nodes",
                            json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "total", why.n_nodes,
                                      "full", why.full, "draining", why.draining, "cap_zero",
                                      why.cap_zero, "disconnected", why.disconnected,
                                      "constraint_mismatch", why.constraint_mismatch,
                                      "eligible_free", why.eligible_free));
        json_object_set_new(o, "queued_units", json_integer(task.units_queued));
    }
    store_abort(t);
    http_respond_json(req, 200, o);
}

/* ---- logs ----------------------------------------------------------------- */

void node__unit_logs(struct node_server *s, struct http_request *req, char **args)
{
    uint64_t unit;
    struct fl_buf out;
    if (!node__uint_arg(req, "unit", args[1], 0, UINT32_MAX, &unit)) {
        return;
    }
    fl_buf_init(&out);
    if (!dispatch_logs(s->dispatch, args[0], (uint32_t)unit, &out)) {
        fl_buf_close(&out);
        node__respond_err(req, FL_ENOTFOUND,
                          "no logs kept for unit %" PRIu64 " of task %s on this leader (logs live "
                          "in the leader's memory; the final tail of each host is in its result)",
                          unit, args[0]);
        return;
    }
    http_respond(req, 200, "text/plain; charset=utf-8", out.data, out.len);
    fl_buf_close(&out);
}
