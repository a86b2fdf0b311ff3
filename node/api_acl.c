/* API access control (docs/ACL.md).
 *
 * Every route declares what it needs (struct route.need). A caller presents
 * a token's secret in `X-Flotilla-Token: SECRET` or `Authorization: Bearer
 * SECRET`; the server hashes it (BLAKE2b-256) and looks the hash up in the
 * replicated TOKENS table, so secrets are never stored and a token works on
 * every server once its creation has been applied there. The check is made
 * where the request is served (a follower forwards writes and linearizable
 * reads with their headers, and the leader decides), so a token created a
 * moment ago is never refused for being unknown to a lagging follower.
 *
 * There is no default token: until `flotilla acl bootstrap` has made the
 * first management token, every route but the public ones is refused.
 * Servers call each other's internal routes (join, register) with an HMAC
 * of the request under a key derived from the cluster key. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/num.h"
#include "node/node_int.h"
#include "pki/pki.h"
#include "store/iter.h"
#include "fsm/cmd.h"

#define SECRET_PREFIX       "flt_"
#define SECRET_MIN          32
#define SECRET_MAX          128
#define SERVER_AUTH_SKEW_MS (5 * 60 * 1000)

static const struct {
    const char *name;
    uint32_t caps;
} policies[] = {
    {"read", STORE_CAP_READ},
    {"submit", STORE_CAP_SUBMIT | STORE_CAP_READ},
    {"operate", STORE_CAP_OPERATE | STORE_CAP_READ},
    {"admin", STORE_CAP_ADMIN | STORE_CAP_READ},
    {"management", STORE_CAP_ALL},
};

/* ---- secrets and hashes -------------------------------------------------- */

static void hash_secret(const char *secret, uint8_t out[STORE_TOKEN_HASH_BYTES])
{
    crypto_generichash(out, STORE_TOKEN_HASH_BYTES, (const unsigned char *)secret, strlen(secret),
                       NULL, 0);
}

/* "flt_" + 43 characters of base64url: 256 random bits. */
static void new_secret(char *out, size_t size)
{
    unsigned char raw[32];
    char b64[64];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, size, "%s%s", SECRET_PREFIX, b64);
    sodium_memzero(raw, sizeof raw);
}

static void new_accessor(char out[STORE_TOKEN_ACCESSOR_MAX])
{
    unsigned char raw[8];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, STORE_TOKEN_ACCESSOR_MAX, raw, sizeof raw);
}

/* A secret a client chose (bootstrap --secret): printable, no spaces. */
static int valid_secret(const char *s)
{
    size_t n = strlen(s);
    if (n < SECRET_MIN || n > SECRET_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* The presented secret, or NULL. */
static const char *presented(const struct http_request *req)
{
    const char *v = http_request_header(req, "X-Flotilla-Token");
    if (v != NULL && v[0] != '\0') {
        return v;
    }
    v = http_request_header(req, "Authorization");
    if (v != NULL && strncasecmp(v, "Bearer ", 7) == 0 && v[7] != '\0') {
        return v + 7;
    }
    return NULL;
}

static json_t *policy_names(uint32_t caps)
{
    json_t *a = json_array();
    if (caps == STORE_CAP_ALL) {
        json_array_append_new(a, json_string("management"));
        return a;
    }
    for (size_t i = 0; i + 1 < sizeof policies / sizeof policies[0]; i++) {
        if ((caps & policies[i].caps) == policies[i].caps &&
            (policies[i].caps != STORE_CAP_READ || caps == STORE_CAP_READ)) {
            json_array_append_new(a, json_string(policies[i].name));
        }
    }
    return a;
}

static json_t *token_json(const struct store_token *tok)
{
    json_t *ns = json_array();
    for (unsigned i = 0; i < tok->n_ns; i++) {
        json_array_append_new(ns, json_string(tok->ns[i]));
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:b}", "accessor", tok->accessor, "name",
                     tok->name, "policies", policy_names(tok->caps), "namespaces", ns, "created_ms",
                     (json_int_t)tok->created_ms, "created_index", (json_int_t)tok->created_index,
                     "bootstrap", tok->bootstrap);
}

/* ---- the check ----------------------------------------------------------- */

/* Look the secret up in the local store. FL_OK, FL_ENOTFOUND or an error. */
static int lookup(struct node_server *s, const char *secret, struct store_token *out,
                  int *bootstrapped)
{
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    struct store_txn *t;
    const void *v;
    size_t vl;
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        return rv;
    }
    *bootstrapped = store_get(t, STORE_META, "acl_bootstrap", 13, &v, &vl) == FL_OK;
    if (secret == NULL) {
        rv = FL_ENOTFOUND;
    } else {
        hash_secret(secret, h);
        rv = store_token_get(t, h, out);
    }
    store_abort(t);
    return rv;
}

/* The caller proved a server certificate on this connection (HTTPS; the
 * verify callback checked it against the CA). A request a follower forwards
 * arrives on the follower's connection with the follower's certificate, not
 * its caller's: it counts as a server's only when the follower says that its
 * own caller proved one (X-Flotilla-Caller-Server, which a follower sets only
 * then and never passes on from a client). */
static int from_server(const struct http_request *req)
{
    if (req->peer_role != PKI_ROLE_SERVER) {
        return 0;
    }
    if (http_request_header(req, "X-Flotilla-Forwarded") == NULL) {
        return 1;
    }
    return http_request_header(req, "X-Flotilla-Caller-Server") != NULL;
}

/* A management token is never limited: it can make itself a token without
 * namespaces anyway (and one cannot be created with namespaces). */
int node__ns_limited(const struct store_token *tok)
{
    return tok->n_ns > 0 && tok->caps != STORE_CAP_ALL;
}

/* May this token use the namespace s[0..n) begins with (a lock's namespace,
 * a kv key's first segment, up to the first '/')? A listed namespace ending
 * in '*' is a prefix. */
int node__ns_allowed(const struct store_token *tok, const char *arg, size_t len)
{
    const char *slash = memchr(arg, '/', len);
    size_t n = slash != NULL ? (size_t)(slash - arg) : len;
    if (!node__ns_limited(tok)) {
        return 1;
    }
    for (unsigned i = 0; i < tok->n_ns; i++) {
        size_t l = strlen(tok->ns[i]);
        if (l > 0 && tok->ns[i][l - 1] == '*' ? n >= l - 1 && memcmp(arg, tok->ns[i], l - 1) == 0
                                              : n == l && memcmp(arg, tok->ns[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

int node__session_allowed(const struct store_token *tok, const struct store_session *ss)
{
    return !node__ns_limited(tok) ||
           (ss->owner[0] != '\0' && strcmp(ss->owner, tok->accessor) == 0);
}

static void deny(struct node_server *s, struct http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void deny(struct node_server *s, struct http_request *req, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status == 401) {
        s->n_denied_401++;
    } else {
        s->n_denied_403++;
    }
    http_respond_error(req, status, status == 401 ? "unauthorized" : "forbidden", "%s", msg);
}

void node__forbid(struct node_server *s, struct http_request *req, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    deny(s, req, 403, "%s", msg);
}

int node__caller(struct node_server *s, struct http_request *req, struct store_token *out)
{
    int bootstrapped, rv = lookup(s, presented(req), out, &bootstrapped);
    if (rv == FL_ENOTFOUND) {
        deny(s, req, 401, "unknown API token (it was deleted meanwhile)");
        return 0;
    }
    if (rv != FL_OK) {
        node__respond_err(req, rv, "token lookup: %s", store_errmsg(s->store));
        return 0;
    }
    return 1;
}

/* A token limited to namespaces sends requests under its own sessions only
 * (X-Flotilla-Request names the session whose memory the request updates).
 * 1, or 0 after answering 403. A session that does not exist is left to the
 * state machine (404 session_not_found). */
static int ident_allowed(struct node_server *s, struct http_request *req,
                         const struct store_token *tok)
{
    const char *v = http_request_header(req, NODE_REQUEST_HEADER);
    char why[FL_ERRMSG_SIZE], id[STORE_SESSION_ID_MAX];
    struct fsm_cmd_req ident;
    struct store_session ss;
    struct store_txn *t;
    int rv;
    if (v == NULL || node__request_ident_parse(v, &ident, why) != FL_OK ||
        ident.slen >= sizeof id) {
        return 1; /* none, or refused before (check_ident) */
    }
    memcpy(id, ident.session, ident.slen);
    id[ident.slen] = '\0';
    if (store_begin(s->store, 0, &t) != FL_OK) {
        return 1;
    }
    rv = store_session_get(t, id, &ss);
    store_abort(t);
    if (rv == FL_OK && !node__session_allowed(tok, &ss)) {
        deny(s, req, 403,
             "token %s is limited to namespaces and may not send requests under session %s, "
             "which belongs to another token",
             tok->accessor, id);
        return 0;
    }
    return 1;
}

static uint32_t needed_caps(int need)
{
    switch (need) {
    case NEED_READ:
        return STORE_CAP_READ;
    case NEED_SUBMIT:
        return STORE_CAP_SUBMIT;
    case NEED_OPERATE:
    case NEED_SERVER:
        return STORE_CAP_OPERATE;
    case NEED_ADMIN:
        return STORE_CAP_ADMIN;
    default:
        return 0;
    }
}

const char *node__need_name(int need)
{
    static const char *names[] = {"?",       "none",  "token",   "read",  "submit",
                                  "operate", "admin", "operate", "server"};
    return need >= 0 && need <= NEED_INTERNAL ? names[need] : "?";
}

/* Routes of the fleet's work: tasks, jobs, results, deploys. */
static int is_work(const char *pattern)
{
    static const char *const prefixes[] = {"/v1/tasks", "/v1/jobs", "/v1/results", "/v1/hosts",
                                           "/v1/deploys"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (strncmp(pattern, prefixes[i], strlen(prefixes[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

int node__authorize(struct node_server *s, struct http_request *req, const struct route *r,
                    char **args)
{
    struct store_token tok;
    const char *secret;
    int bootstrapped = 0, rv;

    if (r->need == NEED_NONE) {
        return 1;
    }
    if (r->need == NEED_UNSET) {
        deny(s, req, 403, "route %s has no access rule", r->pattern);
        return 0;
    }
    if ((r->need == NEED_SERVER || r->need == NEED_INTERNAL) && from_server(req)) {
        return 1;
    }
    secret = presented(req);
    rv = lookup(s, secret, &tok, &bootstrapped);
    if (rv != FL_OK && rv != FL_ENOTFOUND) {
        node__respond_err(req, rv, "token lookup: %s", store_errmsg(s->store));
        return 0;
    }
    if (rv == FL_ENOTFOUND) {
        if (!bootstrapped) {
            deny(s, req, 401,
                 "%s: this cluster has no API token yet; make the first with "
                 "`flotilla acl bootstrap`",
                 secret == NULL ? "no API token" : "unknown API token");
        } else {
            deny(s, req, 401, "%s (send X-Flotilla-Token, or set FLOTILLA_TOKEN for the CLI)",
                 secret == NULL ? "this request needs an API token" : "unknown API token");
        }
        return 0;
    }
    if (r->need == NEED_INTERNAL) {
        deny(s, req, 403,
             "%s is called by servers only (with a server certificate), never with a token",
             r->pattern);
        return 0;
    }
    if ((tok.caps & needed_caps(r->need)) != needed_caps(r->need)) {
        deny(s, req, 403, "token %s lacks the %s policy", tok.accessor, node__need_name(r->need));
        return 0;
    }
    if (node__ns_limited(&tok)) {
        if (r->ns_arg >= 0 && !node__ns_allowed(&tok, args[r->ns_arg], strlen(args[r->ns_arg]))) {
            int n = (int)strcspn(args[r->ns_arg], "/");
            deny(s, req, 403, "token %s may not use namespace \"%.*s\"", tok.accessor,
                 n > 64 ? 64 : n, args[r->ns_arg]);
            return 0;
        }
        if (r->ns_arg == NS_DENY) {
            deny(s, req, 403,
                 "token %s is limited to namespaces (kv, locks and its own sessions); %s %s "
                 "needs a token without namespaces%s",
                 tok.accessor, http_method_str((enum http_method)r->method), r->pattern,
                 is_work(r->pattern) ? " (tasks, jobs, results and deploys belong to no "
                                       "namespace)"
                                     : "");
            return 0;
        }
        if (!ident_allowed(s, req, &tok)) {
            return 0;
        }
    }
    return 1;
}

/* ---- routes -------------------------------------------------------------- */

/* The new token's secret rides in req->scratch until the command is applied:
 * it is never part of the command. */
static void created_done(struct node_server *s, struct http_request *req, int err,
                         const struct fsm_result *res)
{
    (void)s;
    if (!node__answer_failure(
            req, err, res, FL_ECONFLICT,
            "ACLs are already bootstrapped; ask an admin token holder for a token")) {
        http_respond_json(req, 200,
                          json_pack("{s:s, s:s, s:I}", "accessor", res->accessor, "secret",
                                    req->scratch, "index", (json_int_t)res->index));
    }
    sodium_memzero(req->scratch, sizeof req->scratch);
}

static void submit_token(struct node_server *s, struct http_request *req, int type,
                         const struct store_token *tok)
{
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    struct fl_buf b;
    struct fsm_cmd c;
    fl_buf_init(&b);
    if (store_token_encode(tok, &b) != FL_OK) {
        fl_buf_close(&b);
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    hash_secret(req->scratch, h);
    memset(&c, 0, sizeof c);
    c.type = type;
    c.u.acl.hash = h;
    c.u.acl.hlen = sizeof h;
    c.u.acl.rec = b.data;
    c.u.acl.reclen = b.len;
    node__submit(s, req, &c, created_done);
    fl_buf_close(&b);
}

void node__acl_bootstrap(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"secret", NULL};
    struct store_token tok;
    json_t *body = NULL, *sec;
    (void)args;
    if (req->body_len > 0 && (body = node__body_object(req, allowed)) == NULL) {
        return;
    }
    sec = body != NULL ? json_object_get(body, "secret") : NULL;
    if (sec != NULL && (!json_is_string(sec) || !valid_secret(json_string_value(sec)))) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL,
                          "secret must be %d-%d printable characters without spaces", SECRET_MIN,
                          SECRET_MAX);
        return;
    }
    if (sec != NULL) {
        snprintf(req->scratch, sizeof req->scratch, "%s", json_string_value(sec));
    } else {
        new_secret(req->scratch, sizeof req->scratch);
    }
    json_decref(body);
    memset(&tok, 0, sizeof tok);
    new_accessor(tok.accessor);
    snprintf(tok.name, sizeof tok.name, "bootstrap management token");
    tok.caps = STORE_CAP_ALL;
    submit_token(s, req, FSM_CMD_ACL_BOOTSTRAP, &tok);
}

static int parse_policies(struct http_request *req, json_t *arr, uint32_t *caps)
{
    size_t i;
    json_t *v;
    *caps = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        node__respond_err(req, FL_EINVAL,
                          "policies must be a non-empty array of "
                          "read, submit, operate, admin, management");
        return 0;
    }
    json_array_foreach(arr, i, v)
    {
        size_t k;
        for (k = 0; k < sizeof policies / sizeof policies[0]; k++) {
            if (json_is_string(v) && strcmp(json_string_value(v), policies[k].name) == 0) {
                break;
            }
        }
        if (k == sizeof policies / sizeof policies[0]) {
            node__respond_err(req, FL_EINVAL,
                              "policies[%zu]: unknown policy (read, submit, operate, admin, "
                              "management)",
                              i);
            return 0;
        }
        *caps |= policies[k].caps;
    }
    return 1;
}

/* A namespace in a token: as a lock namespace ([a-z0-9_.-], starting with a
 * letter or digit), optionally ending in '*'. */
static int valid_ns(const char *ns)
{
    size_t n = strlen(ns);
    if (n == 0 || n >= STORE_TOKEN_NS_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = ns[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 (i > 0 && (ch == '_' || ch == '.' || ch == '-')) || (i == n - 1 && ch == '*');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int parse_namespaces(struct http_request *req, json_t *arr, struct store_token *tok)
{
    size_t i;
    json_t *v;
    if (arr == NULL) {
        return 1;
    }
    if (!json_is_array(arr) || json_array_size(arr) > STORE_TOKEN_NS) {
        node__respond_err(req, FL_EINVAL, "namespaces must be an array of at most %d",
                          STORE_TOKEN_NS);
        return 0;
    }
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || !valid_ns(json_string_value(v))) {
            node__respond_err(req, FL_EINVAL,
                              "namespaces[%zu]: 1-64 of [a-z0-9_.-] starting with a letter or "
                              "digit, optionally ending in '*'",
                              i);
            return 0;
        }
        snprintf(tok->ns[i], sizeof tok->ns[i], "%s", json_string_value(v));
    }
    tok->n_ns = (unsigned)json_array_size(arr);
    return 1;
}

void node__acl_create(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"name", "policies", "namespaces", NULL};
    struct store_token tok;
    json_t *body, *name;
    (void)args;
    if ((body = node__body_object(req, allowed)) == NULL) {
        return;
    }
    memset(&tok, 0, sizeof tok);
    name = json_object_get(body, "name");
    if (name != NULL &&
        (!json_is_string(name) || strlen(json_string_value(name)) >= STORE_TOKEN_NAME_MAX)) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL, "name must be a string shorter than %d bytes",
                          STORE_TOKEN_NAME_MAX);
        return;
    }
    snprintf(tok.name, sizeof tok.name, "%s", name != NULL ? json_string_value(name) : "");
    if (!parse_policies(req, json_object_get(body, "policies"), &tok.caps) ||
        !parse_namespaces(req, json_object_get(body, "namespaces"), &tok)) {
        json_decref(body);
        return;
    }
    if (tok.caps == STORE_CAP_ALL && tok.n_ns > 0) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL,
                          "namespaces: a management token is never limited to namespaces; "
                          "give the namespaced token other policies");
        return;
    }
    json_decref(body);
    new_accessor(tok.accessor);
    new_secret(req->scratch, sizeof req->scratch);
    submit_token(s, req, FSM_CMD_TOKEN_CREATE, &tok);
}

static void deleted_done(struct node_server *s, struct http_request *req, int err,
                         const struct fsm_result *res)
{
    (void)s;
    if (err == FL_OK && res->err == FL_ECONFLICT) {
        node__respond_err(req, FL_ECONFLICT,
                          "that is the last token that can manage tokens; create another first");
    } else if (!node__answer_failure(req, err, res, FL_ENOTFOUND, "no token with that accessor")) {
        http_respond_json(
            req, 200,
            json_pack("{s:s, s:I}", "accessor", res->accessor, "index", (json_int_t)res->index));
    }
}

void node__acl_delete(struct node_server *s, struct http_request *req, char **args)
{
    struct fsm_cmd c;
    if (strlen(args[0]) >= STORE_TOKEN_ACCESSOR_MAX) {
        node__respond_err(req, FL_ENOTFOUND, "no token with that accessor");
        return;
    }
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_TOKEN_DELETE;
    c.u.acl.accessor = args[0];
    c.u.acl.alen = strlen(args[0]);
    node__submit(s, req, &c, deleted_done);
}

void node__acl_list(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t = NULL;
    struct store_iter it;
    json_t *items = json_array();
    int rv;
    (void)args;
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK && (rv = store_iter_open(t, STORE_TOKENS, NULL, 0, &it)) == FL_OK) {
        struct store_token tok;
        while ((rv = store_token_next(&it, &tok)) == FL_OK) {
            json_array_append_new(items, token_json(&tok));
        }
        store_iter_close(&it);
        rv = rv == FL_ENOTFOUND ? FL_OK : rv;
    }
    if (t != NULL) {
        store_abort(t);
    }
    if (rv != FL_OK) {
        json_decref(items);
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "items", items));
}

void node__acl_self(struct node_server *s, struct http_request *req, char **args)
{
    struct store_token tok;
    int bootstrapped, rv = lookup(s, presented(req), &tok, &bootstrapped);
    (void)args;
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", fl_strerror(rv));
        return;
    }
    http_respond_json(req, 200, token_json(&tok));
}
