/* Private to node/: the server object shared by its files. */
#ifndef FL_NODE_INT_H
#define FL_NODE_INT_H

#include <jansson.h>
#include <uv.h>

#include "common/num.h" /* the one spelling of a number a client may send */
#include "http/server.h"
#include "leader/jobs.h"
#include "node/leader_io_uv.h"
#include "node/server.h"
#include "raft/rg_repl.h"
#include "store/store.h"

struct dispatch;
struct agentlink;
struct agent;
struct lockmgr;
struct lockmgr_answers;
struct jobs;

struct node_server {
    struct node_config cfg;
    struct agentlink *links;         /* agent connections (node/agentlink.h) */
    struct dispatch *dispatch;       /* the leader's dispatch loop (leader/dispatch.h) */
    struct leader_io_uv dispatch_io; /* its port (leader/leader_io.h) */
    struct agent *agent;             /* this server's embedded agent */
    struct lockmgr *locks;           /* lease clock, parked acquire calls (leader/locks.h) */
    struct leader_io_uv locks_io;    /* the lock manager's port (leader/leader_io.h) */
    struct jobs *jobs;               /* the leader's cron clock (leader/jobs.h) */
    struct leader_io_uv jobs_io;     /* its port (leader/leader_io.h) */
    struct jobs_hooks jobs_hooks;    /* its view of the dispatcher */
    struct blobs *blobs;             /* package bytes and the blob link (node/blobs.h) */
    struct tls_creds *creds;         /* every link's TLS credentials (cfg.creds) */
    struct denylist *deny;           /* revoked agents, for the handshakes (node/denylist.h) */
    uv_loop_t *loop;
    struct store *store;
    struct rg_repl *repl;
    struct http_server *http;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t tick; /* join retries and self-registration */
    int stopping;
    int exit_status;
    int joined; /* the join request was accepted */
    int join_inflight;
    int register_inflight;
    uint64_t started_ms;
    uint64_t disk_free;       /* bytes free on the data directory's file system */
    uint64_t disk_checked_ms; /* loop time of that reading */
    uint64_t n_refused_full;  /* writes refused by admission control */
    uint64_t n_refused_hosts; /* tasks and jobs refused for more than FSM_TASK_HOSTS_MAX hosts */
    uint64_t n_forwarded;
    uint64_t n_forward_errors;
    uint64_t n_denied_401; /* requests without a valid token */
    uint64_t n_denied_403; /* tokens without the capability */
    char errmsg[256];
};

/* Route flags (node/api.c): how a route is served on a follower. */
enum {
    ROUTE_LOCAL = 0,       /* served by whichever server receives it */
    ROUTE_READ = 1,        /* linearizable read: leader after a barrier; ?stale = local */
    ROUTE_WRITE = 2,       /* forwarded to the leader */
    ROUTE_LOCAL_WRITE = 3, /* a write kept by the server that receives it (package
                              uploads: its disk holds the bytes); never forwarded */
};

typedef void (*route_fn)(struct node_server *s, struct http_request *req, char **args);

/* What a route needs from the caller (node/api_acl.c, docs/ACL.md).
 * NEED_UNSET is never valid: a route added without deciding is refused to
 * everyone and fails tests/unit/test_acl.c. */
enum {
    NEED_UNSET = 0,
    NEED_NONE,  /* public: status, health, routes, bootstrap */
    NEED_TOKEN, /* any valid token (who am I) */
    NEED_READ,
    NEED_SUBMIT, /* tasks, jobs, sessions, locks and kv writes */
    NEED_OPERATE,
    NEED_ADMIN,
    NEED_SERVER,   /* another server (servers' key HMAC), or an operate token */
    NEED_INTERNAL, /* another server only (servers' key HMAC), never a token */
};

/* What a route is to a token limited to namespaces (docs/ACL.md), when it
 * has no argument naming one (struct route.ns_arg). Tokens without
 * namespaces, and management tokens, are never limited. */
enum {
    NS_DENY = -1,    /* refused: tasks, jobs, results, deploys, packages writes,
                        operate and admin routes (they belong to no namespace) */
    NS_HANDLER = -2, /* the handler limits it: a list filtered to its
                        namespaces, a session only if the token owns it */
    NS_ANY = -3,     /* cluster information any token with the policy reads
                        (nodes, members, agents, packages, dispatch, whoami) */
};

struct route {
    int method;          /* HTTP_GET, ... */
    const char *pattern; /* e.g. a trailing star or {} segments */
    int kind;            /* ROUTE_* */
    route_fn fn;
    const char *summary;
    int need;     /* NEED_* */
    int ns_arg;   /* a token limited to namespaces: >= 0, the argument that names
                     the namespace it must be allowed; else NS_* below */
    int no_ident; /* a write that proposes no command of its own (membership,
                     messages to agents): it refuses X-Flotilla-Request */
};

/* The request identity header (docs/API.md "Request identity"). */
#define NODE_REQUEST_HEADER "X-Flotilla-Request"
/* Parse "SESSION/SERIAL" (a session id; a decimal serial 1..INT64_MAX
 * without leading zeros) into out, whose session points into value.
 * FL_EINVAL with the reason in errmsg. */
int node__request_ident_parse(const char *value, struct fsm_cmd_req *out, char *errmsg);

extern const struct route node_routes[];
extern const unsigned node_n_routes;

/* route.c: the route of node_routes that serves req (method and decoded
 * path). A pattern is literal text with "{}" for one non-empty segment
 * (without '/') and, last, "*" for the non-empty rest of the path; the first
 * route whose pattern matches and whose method is req's wins. Its captured
 * arguments, in pattern order, are written to args[0..max_args) and point
 * into scratch (cap bytes; strlen(req->path) + max_args + 1 is always
 * enough). Otherwise req has been answered and NULL is returned:
 *   404 "not_found"          no pattern matches the path;
 *   405 "method_not_allowed" some do, none with req's method;
 *   400 "invalid"            a captured argument is not well-formed UTF-8
 *                            (handlers quote arguments and store them in
 *                            tables shown as JSON, so no route takes one).
 * Needs no node_server: fuzz/http_driver.h calls it from a plain handler. */
const struct route *node__route_find(struct http_request *req, char *scratch, size_t cap,
                                     char **args, unsigned max_args);

/* api_acl.c (docs/ACL.md): 1 if the caller may use route r, else the
 * request has been answered (401/403) and 0 is returned. */
int node__authorize(struct node_server *s, struct http_request *req, const struct route *r,
                    char **args);
/* Derive the HMAC key of internal calls from the cluster key. */
const char *node__need_name(int need); /* "read", "submit", ... */
/* The calling token, for handlers that limit what a token limited to
 * namespaces sees (NS_HANDLER routes); called after node__authorize. 1, or 0
 * after answering (401 if the token is gone meanwhile). */
int node__caller(struct node_server *s, struct http_request *req, struct store_token *out);
/* Is tok limited to namespaces (some namespaces and not management)? */
int node__ns_limited(const struct store_token *tok);
/* May tok use the namespace that s[0..n) begins with (up to its first '/')? */
int node__ns_allowed(const struct store_token *tok, const char *s, size_t n);
/* May tok use the session ss: its owner, or a token not limited to
 * namespaces. */
int node__session_allowed(const struct store_token *tok, const struct store_session *ss);
/* Answer 403 forbidden, counted in acl.denied_forbidden. */
void node__forbid(struct node_server *s, struct http_request *req, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void node__acl_bootstrap(struct node_server *s, struct http_request *req, char **args);
void node__acl_self(struct node_server *s, struct http_request *req, char **args);
void node__acl_list(struct node_server *s, struct http_request *req, char **args);
void node__acl_create(struct node_server *s, struct http_request *req, char **args);
void node__acl_delete(struct node_server *s, struct http_request *req, char **args);

/* api.c */
void node__api_handle(void *data, struct http_request *req);
void node__respond_err(struct http_request *req, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int node__http_status(int err);
/* Parse the body as a JSON object whose keys are all in `allowed` (a NULL
 * terminated list). On failure responds 400 and returns NULL. */
json_t *node__body_object(struct http_request *req, const char *const *allowed);
int node__is_stale(const struct http_request *req);
/* The usual failures of a submitted command, answered: a submit error (err),
 * then res->err == code with msg, then any other res->err. Returns 1 if it
 * answered, 0 if the command succeeded and the caller answers. */
int node__answer_failure(struct http_request *req, int err, const struct fsm_result *res, int code,
                         const char *msg);
/* Submit a command; `done` gets the result. Handles not-leader by forwarding
 * when the request was not forwarded already. */
typedef void (*node_done_fn)(struct node_server *s, struct http_request *req, int err,
                             const struct fsm_result *res);
void node__submit(struct node_server *s, struct http_request *req, const struct fsm_cmd *cmd,
                  node_done_fn done);

/* api_num.c: numbers a client sends, in the only spelling accepted
 * (common/num.h: decimal digits, no sign, blanks or leading zeros, no
 * overflow). node__uint_arg parses text (a path argument) named `name` in
 * [min, max] into *out: 1, or 0 after answering 400 "invalid" naming it.
 * node__uint_query does the same for the query parameter `name`: 1 with
 * *out set, 0 if absent (*out untouched, nothing answered), -1 after
 * answering 400. */
int node__uint_arg(struct http_request *req, const char *name, const char *text, uint64_t min,
                   uint64_t max, uint64_t *out);
int node__uint_query(struct http_request *req, const char *name, uint64_t min, uint64_t max,
                     uint64_t *out);

/* forward.c */
void node__forward(struct node_server *s, struct http_request *req);
/* API address of the current leader, from the nodes table; 0 if unknown. */
int node__leader_api(struct node_server *s, char *out, size_t outlen);
/* The same as an https:// URL, what calls to the leader's API use. */
int node__leader_url(struct node_server *s, char *out, size_t outlen);

/* api_kv.c, api_cluster.c */
void node__kv_get(struct node_server *s, struct http_request *req, char **args);
void node__kv_list(struct node_server *s, struct http_request *req, char **args);
void node__kv_put(struct node_server *s, struct http_request *req, char **args);
void node__kv_delete(struct node_server *s, struct http_request *req, char **args);
void node__status(struct node_server *s, struct http_request *req, char **args);
void node__health(struct node_server *s, struct http_request *req, char **args);
void node__nodes_list(struct node_server *s, struct http_request *req, char **args);
/* api_agents.c: agent identities */
void node__agents_list(struct node_server *s, struct http_request *req, char **args);
void node__agents_approve(struct node_server *s, struct http_request *req, char **args);
void node__agents_forget(struct node_server *s, struct http_request *req, char **args);
void node__agents_revoke(struct node_server *s, struct http_request *req, char **args);
void node__agents_unrevoke(struct node_server *s, struct http_request *req, char **args);
void node__nodes_get(struct node_server *s, struct http_request *req, char **args);
void node__nodes_cap(struct node_server *s, struct http_request *req, char **args);
void node__nodes_drain(struct node_server *s, struct http_request *req, char **args);
void node__nodes_undrain(struct node_server *s, struct http_request *req, char **args);
void node__nodes_cancel_running(struct node_server *s, struct http_request *req, char **args);
void node__members_list(struct node_server *s, struct http_request *req, char **args);
void node__members_add(struct node_server *s, struct http_request *req, char **args);
void node__members_remove(struct node_server *s, struct http_request *req, char **args);
void node__members_promote(struct node_server *s, struct http_request *req, char **args);
void node__members_transfer(struct node_server *s, struct http_request *req, char **args);
void node__register(struct node_server *s, struct http_request *req, char **args);
void node__routes(struct node_server *s, struct http_request *req, char **args);
void node__tasks_submit(struct node_server *s, struct http_request *req, char **args);
void node__tasks_list(struct node_server *s, struct http_request *req, char **args);
void node__tasks_get(struct node_server *s, struct http_request *req, char **args);
void node__tasks_units(struct node_server *s, struct http_request *req, char **args);
void node__tasks_results(struct node_server *s, struct http_request *req, char **args);
void node__tasks_why(struct node_server *s, struct http_request *req, char **args);
void node__tasks_cancel(struct node_server *s, struct http_request *req, char **args);
void node__unit_logs(struct node_server *s, struct http_request *req, char **args);
void node__results_by_hosts(struct node_server *s, struct http_request *req, char **args);
void node__host_results(struct node_server *s, struct http_request *req, char **args);
void node__dispatch_status(struct node_server *s, struct http_request *req, char **args);
void node__dispatch_pause(struct node_server *s, struct http_request *req, char **args);
void node__dispatch_resume(struct node_server *s, struct http_request *req, char **args);
json_t *node__task_json(const struct store_task *k);
/* Open a read transaction and read task `id`; on failure answer the request
 * (404, 5xx) and return 0. On success the caller aborts *t. */
int node__open_task(struct node_server *s, struct http_request *req, const char *id,
                    struct store_txn **t, struct store_task *task);
/* api_packages.c (docs/PACKAGES.md) */
void node__uploads_create(struct node_server *s, struct http_request *req, char **args);
void node__uploads_get(struct node_server *s, struct http_request *req, char **args);
void node__uploads_put(struct node_server *s, struct http_request *req, char **args);
void node__uploads_delete(struct node_server *s, struct http_request *req, char **args);
void node__uploads_commit(struct node_server *s, struct http_request *req, char **args);
void node__packages_record(struct node_server *s, struct http_request *req, char **args);
void node__packages_list(struct node_server *s, struct http_request *req, char **args);
void node__packages_versions(struct node_server *s, struct http_request *req, char **args);
void node__packages_get(struct node_server *s, struct http_request *req, char **args);
void node__packages_delete(struct node_server *s, struct http_request *req, char **args);

/* api_tasks.c: answer 400 'field "F": what' and return 0. */
int node__field_err(struct http_request *req, const char *field, const char *what);
/* An optional integer field within [lo, hi] into *out (untouched when
 * absent); returns 0 after answering 400. */
int node__int_field(struct http_request *req, json_t *body, const char *name, long long lo,
                    long long hi, long long *out);

/* A TASK_SUBMIT's answer: {"id", "existing", "index"}, or the error. */
void node__submit_done(struct node_server *s, struct http_request *req, int err,
                       const struct fsm_result *res);
/* api_deploys.c (docs/DEPLOY.md, "Rollouts") */
void node__deploys_create(struct node_server *s, struct http_request *req, char **args);
void node__deploys_list(struct node_server *s, struct http_request *req, char **args);
void node__deploys_get(struct node_server *s, struct http_request *req, char **args);
void node__deploys_rollback(struct node_server *s, struct http_request *req, char **args);

/* Building a TASK_SUBMIT from a JSON body (task submit and job templates).
 * Strings point into the body: keep it until the command is submitted. */
#include "spec/spec.h"
struct node_task_build {
    const char **hosts;
    const char *constraints[STORE_TASK_CONSTRAINTS];
    struct node_spec spec;
    struct fl_buf specbuf;
    char *envbuf;             /* the env and sealed secret_env strings */
    const unsigned char *key; /* the cluster key: set by the caller, seals secret_env */
    char id[24], idem[128], name[STORE_TASK_NAME_MAX];
    struct fsm_cmd cmd;
    int over_hosts; /* refused: more hosts than FSM_TASK_HOSTS_MAX (counted by the caller) */
};
extern const char *const node__task_fields[]; /* the fields of POST /v1/tasks */
/* Returns 1, or 0 after answering 400 naming the field. need_hosts: 0 lets
 * "hosts" be absent (n_hosts 0). Call node__task_build_close in every case. */
int node__task_build(struct http_request *req, json_t *body, int need_hosts,
                     const unsigned char *key, struct node_task_build *b);
void node__task_build_close(struct node_task_build *b);
/* Make the TASK_SUBMIT c run each of its hosts on the node of that id
 * ("run_on": "host"): placement FSM_PLACE_HOST, one host per unit, at most
 * max_running units running at once (0: no limit), stopped once fail_stop
 * hosts failed (0: never). Every host must be a node id (fsm_cmd_validate
 * refuses the command otherwise). */
void node__task_on_hosts(struct fsm_cmd *c, uint32_t max_running, uint32_t fail_stop);

/* api_jobs.c: PUT /v1/jobs body -> JOB_PUT command (the job definition with
 * its task template, built by node__task_build). Returns 1, or 0 after
 * answering 400. Call node__job_build_close in every case. */
struct node_job_build {
    struct store_job j;
    struct fsm_entry_writer w; /* the template entry body */
    struct fl_buf def;         /* the encoded definition */
    struct fsm_cmd cmd;
    int over_hosts; /* as node_task_build's */
};
const char *const *node__job_fields(void); /* the fields of PUT /v1/jobs */
int node__job_build(struct http_request *req, json_t *body, const unsigned char *key,
                    struct node_job_build *jb);
void node__job_build_close(struct node_job_build *jb);

/* api_locks.c: POST /v1/locks/NS/NAME/acquire (path is what follows
 * /v1/locks/) -> the acquire. Returns 1, or 0 after answering 400. */
struct node_acquire {
    char session[STORE_SESSION_ID_MAX];
    char key[STORE_LOCK_KEY_MAX];
    uint32_t limit;
    uint64_t wait_ms;
};
extern const char *const node__acquire_fields[];
int node__acquire_parse(struct http_request *req, const char *path, json_t *body,
                        struct node_acquire *a);
void node__acquire_cmd(const struct node_acquire *a, struct fsm_cmd *c);

/* api_locks.c, locks.c */
void node__sessions_create(struct node_server *s, struct http_request *req, char **args);
void node__sessions_list(struct node_server *s, struct http_request *req, char **args);
void node__sessions_get(struct node_server *s, struct http_request *req, char **args);
void node__sessions_renew(struct node_server *s, struct http_request *req, char **args);
void node__sessions_destroy(struct node_server *s, struct http_request *req, char **args);
void node__locks_list(struct node_server *s, struct http_request *req, char **args);
void node__locks_get(struct node_server *s, struct http_request *req, char **args);
void node__locks_acquire(struct node_server *s, struct http_request *req, char **args);
void node__locks_release(struct node_server *s, struct http_request *req, char **args);
void node__jobs_put(struct node_server *s, struct http_request *req, char **args);
void node__jobs_list(struct node_server *s, struct http_request *req, char **args);
void node__jobs_get(struct node_server *s, struct http_request *req, char **args);
void node__jobs_runs(struct node_server *s, struct http_request *req, char **args);
void node__jobs_delete(struct node_server *s, struct http_request *req, char **args);
void node__jobs_pause(struct node_server *s, struct http_request *req, char **args);
void node__jobs_resume(struct node_server *s, struct http_request *req, char **args);
void node__jobs_run(struct node_server *s, struct http_request *req, char **args);
/* 200 {"granted": true, "key", "session", "token"}. */
/* How the lock manager answers parked HTTP calls (api_locks.c). */
extern const struct lockmgr_answers node__lock_answers;
void node__lock_granted(struct http_request *req, const char *session, const char *key,
                        uint64_t token);

/* server.c */
json_t *node__node_json(const struct store_node *n);

#endif
