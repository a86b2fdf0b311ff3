/* /v1/sessions and /v1/locks (docs/LOCKS.md, docs/API.md).
 *
 *   POST   /v1/sessions            {"ttl": "15s", "lock_delay": "15s", "name": "..."}
 *   PUT    /v1/sessions/ID/renew
 *   DELETE /v1/sessions/ID
 *   GET    /v1/sessions[/ID]
 *   PUT    /v1/locks/NS/NAME       {"session": ID, "wait": "10s", "limit": 1}
 *   DELETE /v1/locks/NS/NAME?session=ID[&token=T]
 *   GET    /v1/locks[?namespace=NS], /v1/locks/NS/NAME
 *
 * Durations are strings ("500ms", "15s", "2m") or integers of milliseconds.
 *
 * A session belongs to the token that created it (its accessor is the
 * session's owner). A token limited to namespaces (docs/ACL.md) sees, renews,
 * destroys and locks with only its own sessions, and sees only the locks of
 * its namespaces; other tokens with the policy reach every session. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/err.h"
#include "leader/locks.h"
#include "node/node_int.h"
#include "store/iter.h"

#define DEFAULT_TTL_MS        15000
#define DEFAULT_LOCK_DELAY_MS 15000
#define MAX_WAIT_MS           (24ull * 3600 * 1000)

/* A duration field; returns 0 after answering 400. */
static int duration(struct http_request *req, json_t *body, const char *field, uint64_t dflt,
                    uint64_t *out)
{
    json_t *v = json_object_get(body, field);
    long long ms;
    if (v == NULL || json_is_null(v)) {
        *out = dflt;
        return 1;
    }
    if (json_is_integer(v)) {
        ms = json_integer_value(v);
    } else if (json_is_string(v)) {
        ms = fl_duration_ms(json_string_value(v));
    } else {
        ms = -1;
    }
    if (ms < 0) {
        node__respond_err(req, FL_EINVAL,
                          "%s must be a duration such as \"500ms\", \"15s\", \"2m\" or an integer "
                          "of milliseconds",
                          field);
        return 0;
    }
    *out = (uint64_t)ms;
    return 1;
}

/* ---- JSON views --------------------------------------------------------------- */

static json_t *session_json(struct store_txn *t, const struct store_session *s)
{
    json_t *locks = json_array();
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl, idlen = strlen(s->id);
    if (store_cursor_open(t, STORE_SESSLOCKS, s->id, idlen + 1, &c) == FL_OK) {
        while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
            if (kl <= idlen + 1 || memcmp(k, s->id, idlen + 1) != 0) {
                break;
            }
            json_array_append_new(
                locks, json_pack("{s:s%, s:s}", "key", (const char *)k + idlen + 1, kl - idlen - 1,
                                 "state", vl == 1 && *(const char *)v == 'H' ? "held" : "waiting"));
        }
        store_cursor_close(c);
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "id", s->id, "name",
                     s->name, "owner", s->owner, "ttl_ms", (json_int_t)s->ttl_ms, "lock_delay_ms",
                     (json_int_t)s->lock_delay_ms, "created_ms", (json_int_t)s->created_ms,
                     "expires_ms", (json_int_t)s->expires_ms, "renewals", (json_int_t)s->renewals,
                     "created_index", (json_int_t)s->created_index, "locks", locks);
}

static json_t *slots_json(const struct store_lock_slot *s, uint32_t n, int holders)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++) {
        json_array_append_new(a, holders ? json_pack("{s:s, s:I, s:I}", "session", s[i].session,
                                                     "token", (json_int_t)s[i].token, "since_ms",
                                                     (json_int_t)s[i].since_ms)
                                         : json_pack("{s:s, s:I}", "session", s[i].session,
                                                     "since_ms", (json_int_t)s[i].since_ms));
    }
    return a;
}

static json_t *lock_json(const char *key, size_t klen, const struct store_lock *l)
{
    const char *slash = memchr(key, '/', klen);
    size_t nslen = slash ? (size_t)(slash - key) : 0;
    return json_pack("{s:s%, s:s%, s:s%, s:I, s:I, s:I, s:o, s:o}", "key", key, klen, "namespace",
                     key, nslen, "name", slash ? slash + 1 : key, slash ? klen - nslen - 1 : klen,
                     "limit", (json_int_t)l->limit, "fence", (json_int_t)l->fence, "delay_until_ms",
                     (json_int_t)l->delay_until_ms, "holders",
                     slots_json(l->holders, l->n_holders, 1), "waiters",
                     slots_json(l->waiters, l->n_waiters, 0));
}

/* ---- who may use a session ------------------------------------------------------ */

/* May the caller (tok) use session `id`? 1 if so, or if the session does not
 * exist (the command or the read answers 404); 0 after answering 403. */
static int may_use_session(struct node_server *s, struct http_request *req,
                           const struct store_token *tok, const char *id)
{
    struct store_txn *t;
    struct store_session ss;
    int rv;
    if (!node__ns_limited(tok)) {
        return 1;
    }
    rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return 0;
    }
    rv = store_session_get(t, id, &ss);
    store_abort(t);
    if (rv == FL_OK && !node__session_allowed(tok, &ss)) {
        node__forbid(s, req,
                     "token %s is limited to namespaces and session %s belongs to another "
                     "token",
                     tok->accessor, id);
        return 0;
    }
    return 1;
}

/* ---- sessions ------------------------------------------------------------------ */

static void created(struct node_server *s, struct http_request *req, int err,
                    const struct fsm_result *res)
{
    (void)s;
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    if (res->err != FL_OK) {
        node__respond_err(req, res->err, "session not created: %s", fl_strerror(res->err));
        return;
    }
    http_respond_json(req, 200,
                      json_pack("{s:s, s:I, s:I}", "id", res->session_id, "expires_ms",
                                (json_int_t)res->expires_ms, "index", (json_int_t)res->index));
}

void node__sessions_create(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"ttl", "lock_delay", "name", NULL};
    char id[33];
    json_t *body = node__body_object(req, allowed);
    uint64_t ttl, delay;
    const char *name = "";
    char why[FL_ERRMSG_SIZE];
    struct fsm_cmd c;
    struct store_token tok;
    uint8_t rnd[16];
    (void)args;
    if (body == NULL) {
        return;
    }
    if (!node__caller(s, req, &tok)) {
        json_decref(body);
        return;
    }
    if (!duration(req, body, "ttl", DEFAULT_TTL_MS, &ttl) ||
        !duration(req, body, "lock_delay", DEFAULT_LOCK_DELAY_MS, &delay)) {
        json_decref(body);
        return;
    }
    if (json_object_get(body, "name") != NULL) {
        if (!json_is_string(json_object_get(body, "name"))) {
            json_decref(body);
            node__respond_err(req, FL_EINVAL, "name must be a string");
            return;
        }
        name = json_string_value(json_object_get(body, "name"));
    }
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(id, sizeof id, rnd, sizeof rnd);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_SESSION_CREATE;
    c.u.lock.session = id;
    c.u.lock.slen = strlen(id);
    c.u.lock.name = name;
    c.u.lock.nlen = strlen(name);
    c.u.lock.ttl_ms = ttl;
    c.u.lock.lock_delay_ms = delay;
    c.u.lock.owner = tok.accessor;
    c.u.lock.olen = strlen(tok.accessor);
    if (fsm_cmd_validate(&c, why) != FL_OK) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL, "%s", why);
        return;
    }
    node__submit(s, req, &c, created);
    json_decref(body);
}

static int session_arg(struct http_request *req, const char *id)
{
    char why[FL_ERRMSG_SIZE];
    if (fsm_session_id_check(id, strlen(id), why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        return 0;
    }
    return 1;
}

static void session_changed(struct node_server *s, struct http_request *req, int err,
                            const struct fsm_result *res)
{
    (void)s;
    if (node__answer_failure(req, err, res, FL_ENOTFOUND,
                             "session not found (it expired or was destroyed)")) {
        return;
    }
    http_respond_json(req, 200,
                      json_pack("{s:I, s:I}", "expires_ms", (json_int_t)res->expires_ms, "index",
                                (json_int_t)res->index));
}

static void session_cmd(struct node_server *s, struct http_request *req, const char *id, int type)
{
    struct fsm_cmd c;
    struct store_token tok;
    if (!session_arg(req, id) || !node__caller(s, req, &tok) ||
        !may_use_session(s, req, &tok, id)) {
        return;
    }
    memset(&c, 0, sizeof c);
    c.type = type;
    c.u.lock.session = id;
    c.u.lock.slen = strlen(id);
    node__submit(s, req, &c, session_changed);
}

void node__sessions_renew(struct node_server *s, struct http_request *req, char **args)
{
    session_cmd(s, req, args[0], FSM_CMD_SESSION_RENEW);
}

void node__sessions_destroy(struct node_server *s, struct http_request *req, char **args)
{
    session_cmd(s, req, args[0], FSM_CMD_SESSION_DESTROY);
}

void node__sessions_get(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_session ss;
    struct store_token tok;
    int rv;
    if (!session_arg(req, args[0]) || !node__caller(s, req, &tok)) {
        return;
    }
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK) {
        rv = store_session_get(t, args[0], &ss);
        if (rv == FL_OK && !node__session_allowed(&tok, &ss)) {
            store_abort(t);
            node__forbid(s, req,
                         "token %s is limited to namespaces and session %s belongs to another "
                         "token",
                         tok.accessor, args[0]);
            return;
        }
        if (rv == FL_OK) {
            http_respond_json(req, 200, session_json(t, &ss));
        }
        store_abort(t);
    }
    if (rv == FL_ENOTFOUND) {
        node__respond_err(req, rv, "session %s not found", args[0]);
    } else if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
    }
}

void node__sessions_list(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_iter it;
    struct store_session ss;
    struct store_token tok;
    json_t *items;
    int rv;
    (void)args;
    if (!node__caller(s, req, &tok)) {
        return;
    }
    items = json_array();
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK && (rv = store_iter_open(t, STORE_SESSIONS, NULL, 0, &it)) == FL_OK) {
        while (json_array_size(items) < 10000 && store_session_next(&it, &ss) == FL_OK) {
            if (node__session_allowed(&tok, &ss)) {
                json_array_append_new(items, session_json(t, &ss));
            }
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

/* ---- locks ------------------------------------------------------------------------ */

/* "NS" and "NAME" from the path into key; returns 0 after answering 400. */
static int lock_key(struct http_request *req, char **args, char *key, size_t cap)
{
    char why[FL_ERRMSG_SIZE];
    if (fsm_lock_key_check(args[0], strlen(args[0]), args[1], strlen(args[1]), why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        return 0;
    }
    snprintf(key, cap, "%s/%s", args[0], args[1]);
    return 1;
}

void node__locks_get(struct node_server *s, struct http_request *req, char **args)
{
    char key[STORE_LOCK_KEY_MAX];
    struct store_txn *t;
    struct store_lock l;
    int rv;
    if (!lock_key(req, args, key, sizeof key)) {
        return;
    }
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK) {
        rv = store_lock_get(t, key, strlen(key), &l);
        if (rv == FL_OK) {
            http_respond_json(req, 200, lock_json(key, strlen(key), &l));
            store_lock_free(&l);
        }
        store_abort(t);
    }
    if (rv == FL_ENOTFOUND) {
        node__respond_err(req, rv, "lock %s is free (nobody holds or waits for it)", key);
    } else if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
    }
}

void node__locks_list(struct node_server *s, struct http_request *req, char **args)
{
    char ns[FSM_LOCK_NS_MAX + 2] = "";
    struct store_txn *t;
    struct store_iter it;
    struct store_lock l;
    struct store_token tok;
    size_t plen;
    json_t *items;
    int rv;
    (void)args;
    if (!node__caller(s, req, &tok)) {
        return;
    }
    if (http_query_param(req, "namespace", ns, sizeof ns - 1) < 0) {
        node__respond_err(req, FL_EINVAL, "bad namespace");
        return;
    }
    plen = strlen(ns);
    if (plen > 0 && !node__ns_allowed(&tok, ns, plen)) {
        node__forbid(s, req, "token %s may not use namespace \"%s\"", tok.accessor, ns);
        return;
    }
    items = json_array();
    if (plen > 0) {
        ns[plen++] = '/';
        ns[plen] = '\0';
    }
    rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK && (rv = store_iter_open(t, STORE_LOCKS, ns, plen, &it)) == FL_OK) {
        while (json_array_size(items) < 10000 && store_lock_next(&it, &l) == FL_OK) {
            if (node__ns_allowed(&tok, it.key, it.klen)) {
                json_array_append_new(items, lock_json(it.key, it.klen, &l));
            }
            store_lock_free(&l);
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

/* An acquire call is parsed from the request (its path and body stay valid
 * until it is answered, so the completion parses them again rather than
 * keep state that a forwarded request would leak). */

#define LOCKS_PREFIX "/v1/locks/"

const char *const node__acquire_fields[] = {"session", "wait", "limit", NULL};

int node__acquire_parse(struct http_request *req, const char *path, json_t *body,
                        struct node_acquire *a)
{
    const char *slash = strchr(path, '/');
    char why[FL_ERRMSG_SIZE];
    json_t *v;

    memset(a, 0, sizeof *a);
    a->limit = 1;
    if (slash == NULL || fsm_lock_key_check(path, (size_t)(slash - path), slash + 1,
                                            strlen(slash + 1), why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", slash ? why : "a lock is named namespace/name");
        return 0;
    }
    snprintf(a->key, sizeof a->key, "%s", path);
    if (!duration(req, body, "wait", 0, &a->wait_ms)) {
        return 0;
    }
    v = json_object_get(body, "session");
    if (!json_is_string(v)) {
        node__respond_err(req, FL_EINVAL, "session (a session id) is required");
        return 0;
    }
    if (!session_arg(req, json_string_value(v))) {
        return 0;
    }
    snprintf(a->session, sizeof a->session, "%s", json_string_value(v));
    v = json_object_get(body, "limit");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > STORE_LOCK_HOLDERS_MAX) {
            node__respond_err(req, FL_EINVAL, "limit must be an integer 1-%d",
                              STORE_LOCK_HOLDERS_MAX);
            return 0;
        }
        a->limit = (uint32_t)json_integer_value(v);
    }
    if (a->wait_ms > MAX_WAIT_MS) {
        node__respond_err(req, FL_EINVAL, "wait must be at most 24h");
        return 0;
    }
    return 1;
}

void node__acquire_cmd(const struct node_acquire *a, struct fsm_cmd *c)
{
    memset(c, 0, sizeof *c);
    c->type = FSM_CMD_LOCK_ACQUIRE;
    c->u.lock.session = a->session;
    c->u.lock.slen = strlen(a->session);
    c->u.lock.key = a->key;
    c->u.lock.klen = strlen(a->key);
    c->u.lock.limit = a->limit;
    c->u.lock.wait = a->wait_ms > 0;
}

/* Returns 1, or 0 after answering 400. */
/* ---- answers to parked acquire calls (leader/locks.h) --------------------------- */

void node__lock_granted(struct http_request *req, const char *session, const char *key,
                        uint64_t token)
{
    http_respond_json(req, 200,
                      json_pack("{s:b, s:s, s:s, s:I}", "granted", 1, "key", key, "session",
                                session, "token", (json_int_t)token));
}

static void answer_granted(void *req, const char *session, const char *key, uint64_t token)
{
    node__lock_granted(req, session, key, token);
}

static void answer_waiting(void *req, const char *session, const char *key)
{
    http_respond_json(req, 202,
                      json_pack("{s:b, s:b, s:s, s:s}", "granted", 0, "waiting", 1, "key", key,
                                "session", session));
}

static void answer_timeout(void *req, const char *session, const char *key)
{
    (void)session;
    http_respond_error(req, 409, "timeout", "lock %s is still held; gave up waiting", key);
}

static void answer_not_waiting(void *req, const char *session, const char *key)
{
    http_respond_error(req, 409, "not_waiting",
                       "session %s no longer waits for %s (it expired or released)", session, key);
}

static void answer_failed(void *req, int err, const char *msg)
{
    node__respond_err(req, err, "%s", msg);
}

const struct lockmgr_answers node__lock_answers = {
    .granted = answer_granted,
    .waiting = answer_waiting,
    .timeout = answer_timeout,
    .not_waiting = answer_not_waiting,
    .failed = answer_failed,
};

static int parse_acquire(struct http_request *req, struct node_acquire *a)
{
    json_t *body = node__body_object(req, node__acquire_fields);
    int ok = body != NULL && node__acquire_parse(req, req->path + strlen(LOCKS_PREFIX), body, a);
    json_decref(body);
    return ok;
}

/* The token with which session holds key in the store, or 0. */
static uint64_t held_token(struct store_txn *t, const char *key, const char *session)
{
    struct store_lock l;
    uint64_t token = 0;
    if (store_lock_get(t, key, strlen(key), &l) != FL_OK) {
        return 0;
    }
    for (uint32_t i = 0; i < l.n_holders; i++) {
        if (strcmp(l.holders[i].session, session) == 0) {
            token = l.holders[i].token;
        }
    }
    store_lock_free(&l);
    return token;
}

static void acquired(struct node_server *s, struct http_request *req, int err,
                     const struct fsm_result *res)
{
    struct node_acquire a;
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    if (!parse_acquire(req, &a)) {
        return; /* cannot happen: it parsed before */
    }
    if (res->err == FL_ENOTFOUND) {
        node__respond_err(req, FL_ENOTFOUND, "session %s not found (it expired or was destroyed)",
                          a.session);
    } else if (res->err == FL_EBUSY) {
        http_respond_json(req, 409,
                          json_pack("{s:{s:s, s:s}, s:b, s:s}", "error", "code", "held", "message",
                                    "the lock is held", "granted", 0, "holder", res->holder));
    } else if (res->err == FL_ECONFLICT) {
        node__respond_err(req, FL_ECONFLICT, "lock %s is held with limit %llu, not %u", a.key,
                          (unsigned long long)res->limit, a.limit);
    } else if (res->err == FL_ETOOBIG) {
        node__respond_err(req, FL_ETOOBIG, "lock %s already has %d waiters", a.key,
                          STORE_LOCK_WAITERS_MAX);
    } else if (res->err != FL_OK) {
        node__respond_err(req, res->err, "%s", fl_strerror(res->err));
    } else if (res->token != 0) {
        node__lock_granted(req, a.session, a.key, res->token);
    } else {
        /* One call waits at most half the session's TTL, so the holder can
         * renew between calls. */
        uint64_t poll = LOCKMGR_POLL_MAX_MS, token = 0;
        struct store_txn *t;
        struct store_session ss;
        if (store_begin(s->store, 0, &t) == FL_OK) {
            if (store_session_get(t, a.session, &ss) == FL_OK && ss.ttl_ms / 2 < poll) {
                poll = ss.ttl_ms / 2;
            }
            token = held_token(t, a.key, a.session);
            store_abort(t);
        }
        /* The grant may already be applied: raft completes a batch of
         * applied entries before their callbacks run, and a release in the
         * same entry grants the waiter at once; its GRANT event went by
         * before this call was parked. */
        if (token != 0) {
            node__lock_granted(req, a.session, a.key, token);
            return;
        }
        lockmgr_park(s->locks, req, a.session, a.key, a.limit, a.wait_ms < poll ? a.wait_ms : poll,
                     a.wait_ms <= poll);
    }
}

void node__locks_acquire(struct node_server *s, struct http_request *req, char **args)
{
    struct node_acquire a;
    struct fsm_cmd c;
    struct store_token tok;
    (void)args;
    if (!parse_acquire(req, &a) || !node__caller(s, req, &tok) ||
        !may_use_session(s, req, &tok, a.session)) {
        return;
    }
    node__acquire_cmd(&a, &c);
    node__submit(s, req, &c, acquired);
}

static void released(struct node_server *s, struct http_request *req, int err,
                     const struct fsm_result *res)
{
    (void)s;
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
    } else if (res->err == FL_ENOTFOUND) {
        node__respond_err(req, FL_ENOTFOUND, "the session neither holds nor waits for this lock");
    } else if (res->err == FL_ECONFLICT && res->token != 0) {
        node__respond_err(req, FL_ECONFLICT,
                          "the session holds this lock with token %llu, not the one named; "
                          "nothing was released",
                          (unsigned long long)res->token);
    } else if (res->err == FL_ECONFLICT) {
        node__respond_err(req, FL_ECONFLICT,
                          "the session only waits for this lock and holds no token; nothing was "
                          "released");
    } else if (res->err != FL_OK) {
        node__respond_err(req, res->err, "%s", fl_strerror(res->err));
    } else {
        http_respond_json(req, 200,
                          json_pack("{s:b, s:I}", "released", 1, "token", (json_int_t)res->token));
    }
}

void node__locks_release(struct node_server *s, struct http_request *req, char **args)
{
    char key[STORE_LOCK_KEY_MAX], session[STORE_SESSION_ID_MAX + 1];
    struct fsm_cmd c;
    struct store_token tok;
    uint64_t token = 0; /* 0: no token named */
    int rv;
    if (!lock_key(req, args, key, sizeof key)) {
        return;
    }
    rv = http_query_param(req, "session", session, sizeof session);
    if (rv <= 0) {
        node__respond_err(req, FL_EINVAL, "?session=ID is required");
        return;
    }
    if (!session_arg(req, session) || node__uint_query(req, "token", 1, UINT64_MAX, &token) < 0) {
        return;
    }
    if (!node__caller(s, req, &tok) || !may_use_session(s, req, &tok, session)) {
        return;
    }
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_LOCK_RELEASE;
    c.u.lock.token = token;
    c.u.lock.session = session;
    c.u.lock.slen = strlen(session);
    c.u.lock.key = key;
    c.u.lock.klen = strlen(key);
    node__submit(s, req, &c, released);
}
