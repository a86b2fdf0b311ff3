/* The HTTP/JSON API: route table, dispatch and shared helpers.
 *
 * Every route is in node_routes[] with its kind, so one place decides how a
 * request is served on a follower (forwarded, or local) and tests can walk
 * the table. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/alloc.h"
#include "common/crashpoint.h"
#include "common/err.h"
#include "common/log.h"
#include "node/node_int.h"

const struct route node_routes[] = {
    {HTTP_GET, "/v1/status", ROUTE_LOCAL, node__status, "server, Raft and store status", NEED_NONE,
     NS_ANY},
    {HTTP_GET, "/v1/health", ROUTE_LOCAL, node__health, "health for load balancers", NEED_NONE,
     NS_ANY},
    {HTTP_GET, "/v1/routes", ROUTE_LOCAL, node__routes, "this table", NEED_NONE, NS_ANY},
    {HTTP_GET, "/v1/kv", ROUTE_READ, node__kv_list, "list keys (?prefix=&limit=)", NEED_READ,
     NS_HANDLER},
    {HTTP_GET, "/v1/kv/*", ROUTE_READ, node__kv_get, "read a key", NEED_READ, 0},
    {HTTP_PUT, "/v1/kv/*", ROUTE_WRITE, node__kv_put, "write a key (optional cas)", NEED_SUBMIT, 0},
    {HTTP_DELETE, "/v1/kv/*", ROUTE_WRITE, node__kv_delete, "delete a key (?cas=)", NEED_SUBMIT, 0},
    {HTTP_GET, "/v1/nodes", ROUTE_READ, node__nodes_list, "list nodes", NEED_READ, NS_ANY},
    {HTTP_GET, "/v1/agents", ROUTE_READ, node__agents_list,
     "agent identities, approved and pending", NEED_READ, NS_ANY},
    {HTTP_POST, "/v1/agents/{}/approve", ROUTE_WRITE, node__agents_approve,
     "approve a pending agent", NEED_OPERATE, NS_DENY},
    {HTTP_DELETE, "/v1/agents/{}", ROUTE_WRITE, node__agents_forget,
     "forget an agent's recorded key", NEED_OPERATE, NS_DENY},
    {HTTP_POST, "/v1/agents/{}/revoke", ROUTE_WRITE, node__agents_revoke,
     "refuse an agent at every handshake (deny-list)", NEED_OPERATE, NS_DENY},
    {HTTP_DELETE, "/v1/agents/{}/revoke", ROUTE_WRITE, node__agents_unrevoke,
     "take an agent off the deny-list", NEED_OPERATE, NS_DENY},
    {HTTP_GET, "/v1/nodes/{}", ROUTE_READ, node__nodes_get, "one node", NEED_READ, NS_ANY},
    {HTTP_PUT, "/v1/nodes/{}/cap", ROUTE_WRITE, node__nodes_cap, "set a node's cap", NEED_OPERATE,
     NS_DENY},
    {HTTP_POST, "/v1/nodes/{}/drain", ROUTE_WRITE, node__nodes_drain, "drain a node", NEED_OPERATE,
     NS_DENY},
    {HTTP_POST, "/v1/nodes/{}/undrain", ROUTE_WRITE, node__nodes_undrain, "undrain a node",
     NEED_OPERATE, NS_DENY},
    {HTTP_POST, "/v1/nodes/{}/cancel-running", ROUTE_WRITE, node__nodes_cancel_running,
     "cancel the units running on a node", NEED_OPERATE, NS_DENY, 1},
    {HTTP_GET, "/v1/members", ROUTE_READ, node__members_list, "Raft members", NEED_READ, NS_ANY},
    {HTTP_POST, "/v1/members", ROUTE_WRITE, node__members_add, "add a server", NEED_SERVER, NS_DENY,
     1},
    {HTTP_POST, "/v1/members/transfer", ROUTE_WRITE, node__members_transfer, "transfer leadership",
     NEED_OPERATE, NS_DENY, 1},
    {HTTP_POST, "/v1/members/{}/promote", ROUTE_WRITE, node__members_promote,
     "promote a standby to voter", NEED_OPERATE, NS_DENY, 1},
    {HTTP_DELETE, "/v1/members/{}", ROUTE_WRITE, node__members_remove, "remove a server",
     NEED_OPERATE, NS_DENY, 1},
    {HTTP_POST, "/v1/internal/register", ROUTE_WRITE, node__register,
     "a server records its addresses", NEED_INTERNAL, NS_DENY},
    {HTTP_POST, "/v1/tasks", ROUTE_WRITE, node__tasks_submit, "submit a task", NEED_SUBMIT,
     NS_DENY},
    {HTTP_GET, "/v1/tasks", ROUTE_READ, node__tasks_list, "list tasks", NEED_READ, NS_DENY},
    {HTTP_GET, "/v1/tasks/{}", ROUTE_READ, node__tasks_get, "a task with its progress", NEED_READ,
     NS_DENY},
    {HTTP_GET, "/v1/tasks/{}/units", ROUTE_READ, node__tasks_units, "a task's units", NEED_READ,
     NS_DENY},
    {HTTP_GET, "/v1/tasks/{}/results", ROUTE_READ, node__tasks_results,
     "a task's results (?host=&status=)", NEED_READ, NS_DENY},
    {HTTP_GET, "/v1/tasks/{}/why", ROUTE_READ, node__tasks_why, "why units are waiting", NEED_READ,
     NS_DENY},
    {HTTP_POST, "/v1/tasks/{}/cancel", ROUTE_WRITE, node__tasks_cancel, "cancel a task",
     NEED_SUBMIT, NS_DENY},
    {HTTP_GET, "/v1/tasks/{}/units/{}/logs", ROUTE_READ, node__unit_logs,
     "a unit's streamed output (leader memory)", NEED_READ, NS_DENY},
    {HTTP_GET, "/v1/results", ROUTE_READ, node__results_by_hosts, "results for ?hosts=a,b,c",
     NEED_READ, NS_DENY},
    {HTTP_GET, "/v1/hosts/{}/results", ROUTE_READ, node__host_results, "every result of one host",
     NEED_READ, NS_DENY},
    {HTTP_POST, "/v1/sessions", ROUTE_WRITE, node__sessions_create,
     "create a session with a TTL (locks are held by sessions)", NEED_SUBMIT, NS_HANDLER},
    {HTTP_GET, "/v1/sessions", ROUTE_READ, node__sessions_list, "list sessions", NEED_READ,
     NS_HANDLER},
    {HTTP_GET, "/v1/sessions/{}", ROUTE_READ, node__sessions_get, "one session and its locks",
     NEED_READ, NS_HANDLER},
    {HTTP_PUT, "/v1/sessions/{}/renew", ROUTE_WRITE, node__sessions_renew,
     "renew a session's lease", NEED_SUBMIT, NS_HANDLER},
    {HTTP_DELETE, "/v1/sessions/{}", ROUTE_WRITE, node__sessions_destroy,
     "destroy a session, releasing its locks", NEED_SUBMIT, NS_HANDLER},
    {HTTP_GET, "/v1/locks", ROUTE_READ, node__locks_list, "list locks (?namespace=)", NEED_READ,
     NS_HANDLER},
    {HTTP_GET, "/v1/locks/{}/*", ROUTE_READ, node__locks_get, "one lock: holders, waiters",
     NEED_READ, 0},
    {HTTP_PUT, "/v1/locks/{}/*", ROUTE_WRITE, node__locks_acquire,
     "acquire (try, or wait) for a session", NEED_SUBMIT, 0},
    {HTTP_DELETE, "/v1/locks/{}/*", ROUTE_WRITE, node__locks_release,
     "release a hold or leave the queue (?session=)", NEED_SUBMIT, 0},
    {HTTP_POST, "/v1/jobs", ROUTE_WRITE, node__jobs_put, "add (or, with update, redefine) a job",
     NEED_SUBMIT, NS_DENY},
    {HTTP_GET, "/v1/jobs", ROUTE_READ, node__jobs_list, "list jobs with their next fire times",
     NEED_READ, NS_DENY},
    {HTTP_GET, "/v1/jobs/{}", ROUTE_READ, node__jobs_get, "one job", NEED_READ, NS_DENY},
    {HTTP_GET, "/v1/jobs/{}/runs", ROUTE_READ, node__jobs_runs, "a job's run history", NEED_READ,
     NS_DENY},
    {HTTP_DELETE, "/v1/jobs/{}", ROUTE_WRITE, node__jobs_delete, "delete a job", NEED_SUBMIT,
     NS_DENY},
    {HTTP_POST, "/v1/jobs/{}/pause", ROUTE_WRITE, node__jobs_pause, "pause a job", NEED_SUBMIT,
     NS_DENY},
    {HTTP_POST, "/v1/jobs/{}/resume", ROUTE_WRITE, node__jobs_resume, "resume a job", NEED_SUBMIT,
     NS_DENY},
    {HTTP_POST, "/v1/jobs/{}/run", ROUTE_WRITE, node__jobs_run, "run a job now", NEED_SUBMIT,
     NS_DENY},
    {HTTP_POST, "/v1/uploads", ROUTE_LOCAL_WRITE, node__uploads_create,
     "start a package upload on this server", NEED_SUBMIT, NS_DENY},
    {HTTP_GET, "/v1/uploads/{}", ROUTE_LOCAL, node__uploads_get,
     "an upload's progress (to resume it)", NEED_SUBMIT, NS_DENY},
    {HTTP_PUT, "/v1/uploads/{}", ROUTE_LOCAL_WRITE, node__uploads_put, "append a chunk (?offset=)",
     NEED_SUBMIT, NS_DENY},
    {HTTP_DELETE, "/v1/uploads/{}", ROUTE_LOCAL_WRITE, node__uploads_delete, "abandon an upload",
     NEED_SUBMIT, NS_DENY},
    {HTTP_POST, "/v1/uploads/{}/commit", ROUTE_LOCAL_WRITE, node__uploads_commit,
     "hash the upload and record the package version", NEED_SUBMIT, NS_DENY},
    {HTTP_POST, "/v1/internal/packages", ROUTE_WRITE, node__packages_record,
     "a server records a package version it holds", NEED_INTERNAL, NS_DENY},
    {HTTP_GET, "/v1/packages", ROUTE_READ, node__packages_list,
     "packages with their latest version", NEED_READ, NS_ANY},
    {HTTP_GET, "/v1/packages/{}", ROUTE_READ, node__packages_versions,
     "a package's versions, newest first", NEED_READ, NS_ANY},
    {HTTP_GET, "/v1/packages/{}/{}", ROUTE_READ, node__packages_get, "one package version",
     NEED_READ, NS_ANY},
    {HTTP_DELETE, "/v1/packages/{}/{}", ROUTE_WRITE, node__packages_delete,
     "remove a package version", NEED_SUBMIT, NS_DENY},
    {HTTP_POST, "/v1/deploys", ROUTE_WRITE, node__deploys_create,
     "roll a package version out to the nodes matching \"to\"", NEED_SUBMIT, NS_DENY},
    {HTTP_GET, "/v1/deploys", ROUTE_READ, node__deploys_list,
     "rollouts, newest first (?app=&limit=)", NEED_READ, NS_DENY},
    {HTTP_POST, "/v1/deploys/rollback", ROUTE_WRITE, node__deploys_rollback,
     "the app's last rollout again with an earlier version", NEED_SUBMIT, NS_DENY},
    {HTTP_GET, "/v1/deploys/{}", ROUTE_READ, node__deploys_get,
     "a rollout with every target's steps", NEED_READ, NS_DENY},
    {HTTP_POST, "/v1/deploys/{}/cancel", ROUTE_WRITE, node__tasks_cancel,
     "stop a rollout (waiting targets are cancelled)", NEED_SUBMIT, NS_DENY},
    {HTTP_GET, "/v1/dispatch", ROUTE_READ, node__dispatch_status, "dispatcher state", NEED_READ,
     NS_ANY},
    {HTTP_POST, "/v1/dispatch/pause", ROUTE_WRITE, node__dispatch_pause,
     "stop assigning units cluster-wide", NEED_OPERATE, NS_DENY},
    {HTTP_POST, "/v1/dispatch/resume", ROUTE_WRITE, node__dispatch_resume, "assign units again",
     NEED_OPERATE, NS_DENY},
    {HTTP_POST, "/v1/acl/bootstrap", ROUTE_WRITE, node__acl_bootstrap,
     "make the first management token (once per cluster)", NEED_NONE, NS_ANY},
    {HTTP_GET, "/v1/acl/self", ROUTE_LOCAL, node__acl_self, "the calling token", NEED_TOKEN,
     NS_ANY},
    {HTTP_GET, "/v1/acl/tokens", ROUTE_READ, node__acl_list, "list tokens (never secrets)",
     NEED_ADMIN, NS_DENY},
    {HTTP_POST, "/v1/acl/tokens", ROUTE_WRITE, node__acl_create, "create a token", NEED_ADMIN,
     NS_DENY},
    {HTTP_DELETE, "/v1/acl/tokens/{}", ROUTE_WRITE, node__acl_delete, "delete a token", NEED_ADMIN,
     NS_DENY},
};
const unsigned node_n_routes = sizeof node_routes / sizeof node_routes[0];

#define MAX_ARGS 4

int node__http_status(int err)
{
    switch (err) {
    case FL_OK:
        return 200;
    case FL_EINVAL:
    case FL_EDECODE:
        return 400;
    case FL_ENOTFOUND:
    case FL_ENOSESSION:
        return 404;
    case FL_ECONFLICT:
    case FL_EEXIST:
    case FL_ESTALE:
        return 409;
    case FL_ETOOBIG:
        return 413;
    case FL_EMAPFULL:
    case FL_EDISKFULL:
        return 507;
    case FL_ETIMEOUT:
        return 504;
    case FL_ENOTLEADER:
    case FL_ENOLEADER:
    case FL_ENOCLUSTER:
    case FL_EUNKNOWN:
    case FL_ESHUTDOWN:
    case FL_EBUSY:
    case FL_ENET:
        return 503;
    default:
        return 500;
    }
}

void node__respond_err(struct http_request *req, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (req == NULL) {
        return; /* validation without a request (the spec fuzz harness) */
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_respond_error(req, node__http_status(err), fl_errname(err), "%s", msg);
}

int node__answer_failure(struct http_request *req, int err, const struct fsm_result *res, int code,
                         const char *msg)
{
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
    } else if (code != FL_OK && res->err == code) {
        node__respond_err(req, code, "%s", msg);
    } else if (res->err != FL_OK) {
        node__respond_err(req, res->err, "%s", fl_strerror(res->err));
    } else {
        return 0;
    }
    return 1;
}

int node__is_stale(const struct http_request *req)
{
    char v[8];
    return http_query_param(req, "stale", v, sizeof v) == 1;
}

json_t *node__body_object(struct http_request *req, const char *const *allowed)
{
    json_error_t jerr;
    json_t *o;
    const char *key;
    json_t *val;

    if (req->body_len == 0) {
        node__respond_err(req, FL_EINVAL, "request body must be a JSON object");
        return NULL;
    }
    o = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        node__respond_err(req, FL_EINVAL, "malformed JSON at line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        node__respond_err(req, FL_EINVAL, "request body must be a JSON object");
        return NULL;
    }
    json_object_foreach(o, key, val)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a != NULL; a++) {
            if (strcmp(*a, key) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            node__respond_err(req, FL_EINVAL, "unknown field \"%s\"", key);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ---- request identity (docs/API.md "Request identity") ------------------ */

int node__request_ident_parse(const char *value, struct fsm_cmd_req *out, char *errmsg)
{
    const char *slash = strchr(value, '/');
    char why[FL_ERRMSG_SIZE];
    uint64_t serial = 0;

    memset(out, 0, sizeof *out);
    if (slash == NULL) {
        return fl_errf(errmsg, FL_EINVAL, NODE_REQUEST_HEADER " must be SESSION/SERIAL");
    }
    if (fsm_session_id_check(value, (size_t)(slash - value), why) != FL_OK) {
        return fl_errf(errmsg, FL_EINVAL, NODE_REQUEST_HEADER ": %s", why);
    }
    if (fl_num_parse(slash + 1, 1, FSM_REQ_SERIAL_MAX, &serial) != FL_OK) {
        return fl_errf(errmsg, FL_EINVAL,
                       NODE_REQUEST_HEADER ": the serial must be a decimal number 1..%llu "
                                           "without leading zeros",
                       (unsigned long long)FSM_REQ_SERIAL_MAX);
    }
    out->session = value;
    out->slen = (size_t)(slash - value);
    out->serial = serial;
    return FL_OK;
}

/* Refuse a malformed identity, or one on a route that cannot honour it;
 * returns 0 after answering 400. */
static int check_ident(struct http_request *req, const struct route *route)
{
    const char *v = http_request_header(req, NODE_REQUEST_HEADER);
    struct fsm_cmd_req id;
    char why[FL_ERRMSG_SIZE];
    if (v == NULL) {
        return 1;
    }
    if (node__request_ident_parse(v, &id, why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        return 0;
    }
    if (route->kind != ROUTE_WRITE || route->no_ident) {
        node__respond_err(req, FL_EINVAL, NODE_REQUEST_HEADER " is not taken by %s %s: %s",
                          http_method_str((enum http_method)route->method), route->pattern,
                          route->kind == ROUTE_READ || route->kind == ROUTE_LOCAL
                              ? "it changes nothing"
                              : "it proposes no command of its own (docs/API.md, \"Request "
                                "identity\")");
        return 0;
    }
    return 1;
}

/* ---- submitting commands ---------------------------------------------- */

/* Admission control: a write is refused (507) before it enters the log when
 * the store's map is 90% used or the data disk is nearly full, so applying a
 * committed entry never meets a full map and the Raft log keeps room to grow.
 * The free-space reading is refreshed at most every 100 ms. */
static int admit(struct node_server *s, struct http_request *req)
{
    uint64_t used, map, now = uv_now(s->loop);
    store_usage(s->store, &used, &map);
    if (map > 0 && used > map / 10 * 9) {
        s->n_refused_full++;
        node__respond_err(req, FL_EMAPFULL, "store is %llu of %llu bytes full; raise --store-size",
                          (unsigned long long)used, (unsigned long long)map);
        return 0;
    }
    if (s->disk_checked_ms == 0 || now - s->disk_checked_ms >= 100) {
        struct statvfs vfs;
        if (statvfs(s->cfg.data_dir, &vfs) == 0) {
            s->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        }
        s->disk_checked_ms = now;
    }
    if (s->cfg.min_free_disk > 0 && s->disk_checked_ms != 0 &&
        s->disk_free < s->cfg.min_free_disk) {
        s->n_refused_full++;
        node__respond_err(req, FL_EDISKFULL,
                          "only %llu MiB free on %s; writes are refused below %llu MiB "
                          "(--min-free-disk)",
                          (unsigned long long)(s->disk_free >> 20), s->cfg.data_dir,
                          (unsigned long long)(s->cfg.min_free_disk >> 20));
        return 0;
    }
    return 1;
}

struct submit {
    struct node_server *s;
    struct http_request *req;
    node_done_fn done;
};

static int forwarded(const struct http_request *req)
{
    return http_request_header(req, "X-Flotilla-Forwarded") != NULL;
}

static void not_leader(struct node_server *s, struct http_request *req)
{
    if (!forwarded(req)) {
        node__forward(s, req);
        return;
    }
    node__respond_err(req, FL_ENOTLEADER, "this server is not the leader; retry");
}

/* A request its session's memory refused: the command was not executed. */
static void refused(struct http_request *req, const struct fsm_result *res)
{
    const char *v = http_request_header(req, NODE_REQUEST_HEADER);
    if (res->err == FL_ESTALE) {
        node__respond_err(req, FL_ESTALE,
                          "request %s is older than request %llu of its session, which was "
                          "applied first; it was not applied and never will be",
                          v ? v : "", (unsigned long long)res->newer_serial);
    } else {
        node__respond_err(req, FL_ENOSESSION,
                          "the session of request %s does not exist (it expired or was "
                          "destroyed); the request was not applied",
                          v ? v : "");
    }
}

static void submit_cb(void *data, int err, const struct fsm_result *res)
{
    struct submit *sub = data;
    struct node_server *s = sub->s;
    struct http_request *req = sub->req;
    node_done_fn done = sub->done;
    fl_free(sub);
    if (err == FL_ENOTLEADER) {
        not_leader(s, req);
        return;
    }
    if (err == FL_OK && forwarded(req)) {
        fl_crashpoint("forward-applied"); /* applied, not yet answered */
        if (fl_droppoint("forward-applied")) {
            http_drop(req); /* hang up on the follower, stay up */
            return;
        }
    }
    if (err == FL_OK && res->not_run && !res->replayed) {
        refused(req, res);
        return;
    }
    done(s, req, err, res);
}

void node__submit(struct node_server *s, struct http_request *req, const struct fsm_cmd *cmd,
                  node_done_fn done)
{
    char why[FL_ERRMSG_SIZE] = "";
    const char *ident = http_request_header(req, NODE_REQUEST_HEADER);
    struct submit *sub;
    struct fsm_cmd c;
    int rv;

    if (!admit(s, req)) {
        return;
    }
    sub = fl_malloc(sizeof *sub);
    if (sub == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    sub->s = s;
    sub->req = req;
    sub->done = done;
    if (forwarded(req)) {
        fl_crashpoint("forward-received"); /* read by the leader, not yet proposed */
        if (fl_droppoint("forward-received")) {
            fl_free(sub);
            http_drop(req);
            return;
        }
    }
    c = *cmd;
    if (ident != NULL && node__request_ident_parse(ident, &c.req, why) != FL_OK) {
        fl_free(sub);
        node__respond_err(req, FL_EINVAL, "%s", why);
        return;
    }
    rv = rg_repl_submit(s->repl, &c, submit_cb, sub, why);
    if (rv != FL_OK) {
        fl_free(sub);
        if (rv == FL_ENOTLEADER) {
            not_leader(s, req);
            return;
        }
        node__respond_err(req, rv, "%s", why[0] ? why : fl_strerror(rv));
    }
}

/* ---- dispatch ------------------------------------------------------------ */

struct deferred {
    struct node_server *s;
    struct http_request *req;
    const struct route *route;
    char *args[MAX_ARGS];
    char scratch[];
};

static void barrier_done(void *data, int err)
{
    struct deferred *d = data;
    if (err == FL_OK) {
        d->route->fn(d->s, d->req, d->args);
    } else if (err == FL_ENOTLEADER) {
        not_leader(d->s, d->req);
    } else {
        node__respond_err(d->req, err, "read barrier: %s", fl_strerror(err));
    }
    fl_free(d);
}

void node__api_handle(void *data, struct http_request *req)
{
    struct node_server *s = data;
    const struct route *route = NULL;
    size_t cap = strlen(req->path) + 8;
    struct deferred *d;
    struct rg_status st;

    if (s->stopping) {
        node__respond_err(req, FL_ESHUTDOWN, "server is shutting down");
        return;
    }
    d = fl_malloc(sizeof *d + cap);
    if (d == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    route = node__route_find(req, d->scratch, cap, d->args, MAX_ARGS);
    if (route == NULL) {
        fl_free(d); /* answered: 404, 405 or 400 */
        return;
    }
    d->s = s;
    d->req = req;
    d->route = route;
    if (!check_ident(req, route)) {
        fl_free(d);
        return;
    }
    if (route->kind == ROUTE_LOCAL || route->kind == ROUTE_LOCAL_WRITE) {
        if (node__authorize(s, req, route, d->args)) {
            route->fn(s, req, d->args);
        }
        fl_free(d);
        return;
    }
    rg_repl_status(s->repl, &st);
    if (!st.in_cluster) {
        fl_free(d);
        node__respond_err(req, FL_ENOCLUSTER,
                          "this server is not part of a cluster yet: start it with --bootstrap, "
                          "or --join an existing server");
        return;
    }
    if (route->kind == ROUTE_READ && node__is_stale(req)) {
        if (node__authorize(s, req, route, d->args)) {
            route->fn(s, req, d->args);
        }
        fl_free(d);
        return;
    }
    if (st.state != RAFT_LEADER) {
        fl_free(d);
        not_leader(s, req);
        return;
    }
    /* The leader decides who may (api_acl.c): followers forward with the
     * caller's headers. */
    if (!node__authorize(s, req, route, d->args)) {
        fl_free(d);
        return;
    }
    if (route->kind == ROUTE_WRITE) {
        route->fn(s, req, d->args);
        fl_free(d);
        return;
    }
    if (rg_repl_read_barrier(s->repl, barrier_done, d) != FL_OK) {
        fl_free(d);
        not_leader(s, req);
    }
}

void node__routes(struct node_server *s, struct http_request *req, char **args)
{
    static const char *kinds[] = {"local", "read", "write", "local-write"};
    json_t *arr = json_array();
    for (unsigned i = 0; i < node_n_routes; i++) {
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "method",
                           http_method_str((enum http_method)node_routes[i].method), "path",
                           node_routes[i].pattern, "kind", kinds[node_routes[i].kind], "summary",
                           node_routes[i].summary, "needs", node__need_name(node_routes[i].need)));
    }
    http_respond_json(req, 200, json_pack("{s:o}", "routes", arr));
}
