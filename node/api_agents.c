/* Agent identities in the API (docs/SECURITY.md "Links", "Revocation"):
 *   GET  /v1/agents                every recorded agent, approved, pending or revoked
 *   POST /v1/agents/{id}/approve   let a pending agent join
 *   DELETE /v1/agents/{id}         forget its key: the next join records a new one
 *   POST /v1/agents/{id}/revoke    refuse it at every handshake from now on
 *   DELETE /v1/agents/{id}/revoke  take it off the deny-list */
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "common/ident.h"
#include "leader/dispatch.h"
#include "node/node_int.h"
#include "pki/pki.h"
#include "store/iter.h"
#include "fsm/cmd.h"

static json_t *agentkey_json(const char *id, size_t idlen, const struct store_agentkey *k,
                             int connected)
{
    char fpr[FL_IDENT_FPR_SIZE];
    fl_ident_fingerprint(k->pk, fpr);
    return json_pack("{s:s%, s:s, s:s, s:I, s:I, s:b}", "id", id, idlen, "public_key", fpr, "state",
                     k->state == STORE_AGENTKEY_APPROVED  ? "approved"
                     : k->state == STORE_AGENTKEY_PENDING ? "pending"
                                                          : "revoked",
                     "created_ms", (json_int_t)k->created_ms, "updated_index",
                     (json_int_t)k->updated_index, "connected", connected);
}

void node__agents_list(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_iter it;
    json_t *arr;
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
        return;
    }
    arr = json_array();
    if (store_iter_open(t, STORE_AGENTKEYS, NULL, 0, &it) == FL_OK) {
        struct store_agentkey rec;
        while (store_agentkey_next(&it, &rec) == FL_OK) {
            char id[STORE_NODE_ID_MAX];
            if (it.klen >= sizeof id) {
                continue;
            }
            memcpy(id, it.key, it.klen);
            id[it.klen] = '\0';
            json_array_append_new(
                arr, agentkey_json(id, it.klen, &rec, dispatch_connected(s->dispatch, id)));
        }
        store_iter_close(&it);
    }
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:o}", "agents", arr));
}

static void approve_done(struct node_server *s, struct http_request *req, int err,
                         const struct fsm_result *res)
{
    if (err == FL_OK) {
        err = res->err;
    }
    if (err == FL_ENOTFOUND) {
        node__respond_err(req, err, "no agent with this id has tried to join");
        return;
    }
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

void node__agents_approve(struct node_server *s, struct http_request *req, char **args)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_AGENT_KEY_APPROVE;
    cmd.u.agentkey.agent = args[0];
    cmd.u.agentkey.alen = strlen(args[0]);
    node__submit(s, req, &cmd, approve_done);
}

static void forget_done(struct node_server *s, struct http_request *req, int err,
                        const struct fsm_result *res)
{
    (void)s;
    if (err == FL_OK) {
        err = res->err;
    }
    if (err == FL_ENOTFOUND) {
        node__respond_err(req, err, "no key is recorded for this agent id");
        return;
    }
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

void node__agents_forget(struct node_server *s, struct http_request *req, char **args)
{
    struct fsm_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_AGENT_KEY_FORGET;
    cmd.u.agentkey.agent = args[0];
    cmd.u.agentkey.alen = strlen(args[0]);
    node__submit(s, req, &cmd, forget_done);
}

static void revoke_done(struct node_server *s, struct http_request *req, int err,
                        const struct fsm_result *res)
{
    (void)s;
    if (err == FL_OK) {
        err = res->err;
    }
    if (err == FL_ENOTFOUND) {
        node__respond_err(req, err, "this agent is not revoked");
        return;
    }
    if (err != FL_OK) {
        node__respond_err(req, err, "%s", fl_strerror(err));
        return;
    }
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

static void submit_revoke(struct node_server *s, struct http_request *req, const char *agent,
                          int type)
{
    struct fsm_cmd cmd;
    if (!pki_name_valid(agent)) {
        node__respond_err(req, FL_EINVAL,
                          "an agent name is a certificate name: 1-%d of [A-Za-z0-9._-], not "
                          "starting with . or -",
                          PKI_NAME_MAX);
        return;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = type;
    cmd.u.agentkey.agent = agent;
    cmd.u.agentkey.alen = strlen(agent);
    node__submit(s, req, &cmd, revoke_done);
}

void node__agents_revoke(struct node_server *s, struct http_request *req, char **args)
{
    submit_revoke(s, req, args[0], FSM_CMD_AGENT_REVOKE);
}

void node__agents_unrevoke(struct node_server *s, struct http_request *req, char **args)
{
    submit_revoke(s, req, args[0], FSM_CMD_AGENT_UNREVOKE);
}
