/* /v1/kv — the replicated key/value table.
 *
 *   PUT    /v1/kv/KEY  {"value": "...", "cas": VERSION}   cas 0 = create only
 *   GET    /v1/kv/KEY                                      ?stale for a local read
 *   GET    /v1/kv?prefix=P&limit=N
 *   DELETE /v1/kv/KEY?cas=VERSION
 *
 * A key's version is the Raft index of its last write.
 *
 * A token limited to namespaces (docs/ACL.md) reaches only keys whose first
 * segment (before '/') is one of them: a key route outside them is refused
 * by node__authorize; a list asked for a prefix that names a namespace
 * (holds a '/') outside them is refused, any other list is filtered to the
 * keys it may read. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "node/node_int.h"
#include "store/iter.h"

/* Keys come percent-decoded from the URL; they must be UTF-8 to be shown. */
static int key_ok(struct http_request *req, const char *key)
{
    json_t *probe = json_string(key);
    if (probe == NULL) {
        node__respond_err(req, FL_EINVAL, "key must be valid UTF-8");
        return 0;
    }
    json_decref(probe);
    return 1;
}

static json_t *kv_json(const char *key, size_t klen, const struct store_kv *kv)
{
    return json_pack("{s:s%, s:s%, s:I, s:I, s:I}", "key", key, klen, "value",
                     (const char *)kv->value, kv->vlen, "version", (json_int_t)kv->version,
                     "create_index", (json_int_t)kv->create_index, "mtime_ms",
                     (json_int_t)kv->mtime_ms);
}

void node__kv_get(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_kv kv;
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    rv = store_kv_get(t, args[0], strlen(args[0]), &kv);
    if (rv == FL_OK) {
        http_respond_json(req, 200, kv_json(args[0], strlen(args[0]), &kv));
    } else if (rv == FL_ENOTFOUND) {
        node__respond_err(req, rv, "key \"%s\" not found", args[0]);
    } else {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
    }
    store_abort(t);
}

void node__kv_list(struct node_server *s, struct http_request *req, char **args)
{
    char prefix[STORE_KV_MAX_KEY + 1], lim[32];
    long limit = 1000;
    struct store_txn *t;
    struct store_iter it;
    struct store_kv kv;
    struct store_token tok;
    size_t plen;
    json_t *items;
    int rv, limited;

    if (!node__caller(s, req, &tok)) {
        return;
    }
    limited = node__ns_limited(&tok);
    if (http_query_param(req, "prefix", prefix, sizeof prefix) < 0) {
        node__respond_err(req, FL_EINVAL, "bad prefix");
        return;
    }
    rv = http_query_param(req, "limit", lim, sizeof lim);
    if (rv != 0) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (rv < 0 || !fl_num_canonical(lim) || limit < 1 || limit > 100000) {
            node__respond_err(req, FL_EINVAL, "limit must be 1..100000");
            return;
        }
    }
    plen = strlen(prefix);
    if (limited && strchr(prefix, '/') != NULL && !node__ns_allowed(&tok, prefix, plen)) {
        int n = (int)strcspn(prefix, "/");
        node__forbid(s, req, "token %s may not use namespace \"%.*s\"", tok.accessor,
                     n > 64 ? 64 : n, prefix);
        return;
    }
    rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    rv = store_iter_open(t, STORE_KV, prefix, plen, &it);
    if (rv != FL_OK) {
        store_abort(t);
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    items = json_array();
    while ((long)json_array_size(items) < limit && store_kv_next(&it, &kv) == FL_OK) {
        if (!limited || node__ns_allowed(&tok, it.key, it.klen)) {
            json_array_append_new(items, kv_json(it.key, it.klen, &kv));
        }
    }
    store_iter_close(&it);
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:o}", "items", items));
}

static void kv_done(struct node_server *s, struct http_request *req, int err,
                    const struct fsm_result *res)
{
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    if (res->err == FL_ECONFLICT) {
        http_respond_json(req, 409,
                          json_pack("{s:{s:s, s:s}, s:I}", "error", "code", "conflict", "message",
                                    "version does not match", "version",
                                    (json_int_t)res->kv_version));
        return;
    }
    if (res->err != FL_OK) {
        node__respond_err(req, res->err, "%s", fl_strerror(res->err));
        return;
    }
    http_respond_json(req, 200,
                      json_pack("{s:I, s:I}", "version", (json_int_t)res->kv_version, "index",
                                (json_int_t)res->index));
}

void node__kv_put(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"value", "cas", NULL};
    json_t *body = node__body_object(req, allowed);
    json_t *value, *cas;
    struct fsm_cmd cmd;

    if (body == NULL) {
        return;
    }
    if (!key_ok(req, args[0])) {
        json_decref(body);
        return;
    }
    value = json_object_get(body, "value");
    cas = json_object_get(body, "cas");
    if (!json_is_string(value)) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL, "\"value\" (a string) is required");
        return;
    }
    if (cas != NULL && (!json_is_integer(cas) || json_integer_value(cas) < 0)) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL, "\"cas\" must be a non-negative integer");
        return;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_KV_PUT;
    cmd.u.kv.key = args[0];
    cmd.u.kv.klen = strlen(args[0]);
    cmd.u.kv.value = (const uint8_t *)json_string_value(value);
    cmd.u.kv.vlen = json_string_length(value);
    cmd.u.kv.has_cas = cas != NULL;
    cmd.u.kv.cas = cas ? (uint64_t)json_integer_value(cas) : 0;
    node__submit(s, req, &cmd, kv_done);
    json_decref(body);
}

void node__kv_delete(struct node_server *s, struct http_request *req, char **args)
{
    char casbuf[32];
    struct fsm_cmd cmd;
    int rv;

    if (!key_ok(req, args[0])) {
        return;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_KV_DEL;
    cmd.u.kv.key = args[0];
    cmd.u.kv.klen = strlen(args[0]);
    rv = http_query_param(req, "cas", casbuf, sizeof casbuf);
    if (rv != 0) {
        char *end;
        unsigned long long v = strtoull(casbuf, &end, 10);
        if (rv < 0 || !fl_num_canonical(casbuf)) {
            node__respond_err(req, FL_EINVAL, "cas must be a non-negative integer");
            return;
        }
        cmd.u.kv.has_cas = 1;
        cmd.u.kv.cas = v;
    }
    if (req->body_len > 0) {
        node__respond_err(req, FL_EINVAL, "DELETE takes no body");
        return;
    }
    node__submit(s, req, &cmd, kv_done);
}
