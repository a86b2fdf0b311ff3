/* Request identity: at most once per client request (docs/API.md
 * "Request identity", the Raft dissertation's §6.3).
 *
 * A command may carry its client's session and the request's serial. The
 * session's record remembers the serial of the last request it carried out
 * and that request's result, so on every replica, from the entry and the
 * store alone:
 *   - a serial above the remembered one is executed, then remembered;
 *   - the same serial is not executed again: its remembered result is the
 *     answer (a retry whose first attempt was applied);
 *   - a lower serial is refused with FL_ESTALE (a newer request of the
 *     client was applied first: this one must never take effect);
 *   - an unknown session is refused with FL_ENOSESSION. */
#include <string.h>

#include "common/err.h"
#include "fsm/fsm_int.h"

/* The session record keeps one number of a result (req_version, format
 * 2): the member the command's type sets. The stored bytes are those the
 * single `version` member of earlier results gave. */
static uint64_t *result_number(const struct fsm_cmd *c, struct fsm_result *res)
{
    switch (c->type) {
    case FSM_CMD_KV_PUT:
    case FSM_CMD_KV_DEL:
        return &res->kv_version;
    case FSM_CMD_TASK_SUBMIT:
        return &res->units;
    case FSM_CMD_SESSION_CREATE:
    case FSM_CMD_SESSION_RENEW:
        return &res->expires_ms;
    case FSM_CMD_LOCK_ACQUIRE:
        return res->err == FL_ECONFLICT ? &res->limit : &res->token;
    case FSM_CMD_UNIT_ASSIGN:
    case FSM_CMD_LOCK_RELEASE:
    case FSM_CMD_LOCK_UNWAIT:
        return &res->token;
    case FSM_CMD_JOB_FIRE:
        return &res->sched_ms;
    case FSM_CMD_PACKAGE_PUT:
        return &res->pkg_index;
    default:
        return NULL; /* no number: stored as 0 */
    }
}

/* And one string (req_str): the member the command's type sets, each as
 * long as req_str. */
#define SAME_SIZE(m)                                                                               \
    sizeof(((struct fsm_result *)0)->m) == sizeof(((struct store_session *)0)->req_str)
_Static_assert(SAME_SIZE(task_id) && SAME_SIZE(session_id) && SAME_SIZE(holder) &&
                   SAME_SIZE(outcome) && SAME_SIZE(accessor),
               "a result's strings are as long as the session's req_str");

static char *result_text(const struct fsm_cmd *c, struct fsm_result *res)
{
    switch (c->type) {
    case FSM_CMD_TASK_SUBMIT:
        return res->task_id;
    case FSM_CMD_SESSION_CREATE:
        return res->session_id;
    case FSM_CMD_LOCK_ACQUIRE:
        return res->holder;
    case FSM_CMD_JOB_FIRE:
        return res->outcome;
    case FSM_CMD_ACL_BOOTSTRAP:
    case FSM_CMD_TOKEN_CREATE:
    case FSM_CMD_TOKEN_DELETE:
        return res->accessor;
    default:
        return NULL; /* no string: stored empty */
    }
}

static void session_name(const struct fsm_cmd *c, char out[STORE_SESSION_ID_MAX])
{
    size_t n = c->req.slen < STORE_SESSION_ID_MAX - 1 ? c->req.slen : STORE_SESSION_ID_MAX - 1;
    memcpy(out, c->req.session, n);
    out[n] = '\0';
}

int fsm__request_check(struct fsm *f, const struct fsm_cmd *c, struct fsm_result *res, int *run)
{
    char id[STORE_SESSION_ID_MAX];
    struct store_session s;
    uint64_t *num;
    char *text;
    int rv;

    *run = 0;
    session_name(c, id);
    rv = store_session_get(f->txn, id, &s);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOSESSION;
        res->not_run = 1;
        f->n_req_nosession++;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (c->req.serial > s.req_serial) {
        *run = 1;
        return FL_OK;
    }
    res->not_run = 1;
    if (c->req.serial < s.req_serial) {
        res->err = FL_ESTALE;
        res->newer_serial = s.req_serial;
        f->n_req_stale++;
        return FL_OK;
    }
    res->err = (int)s.req_err;
    if ((num = result_number(c, res)) != NULL) {
        *num = s.req_version;
    }
    res->index = s.req_index;
    if ((text = result_text(c, res)) != NULL) {
        memcpy(text, s.req_str, sizeof s.req_str);
    }
    res->replayed = 1;
    f->n_req_replayed++;
    return FL_OK;
}

int fsm__request_record(struct fsm *f, const struct fsm_cmd *c, const struct fsm_result *res)
{
    char id[STORE_SESSION_ID_MAX];
    struct store_session s;
    struct fsm_result r = *res;
    const uint64_t *num = result_number(c, &r);
    const char *text = result_text(c, &r);
    int rv;

    session_name(c, id);
    rv = store_session_get(f->txn, id, &s);
    if (rv == FL_ENOTFOUND) {
        return FL_OK; /* the request destroyed its own session */
    }
    if (rv != FL_OK) {
        return rv;
    }
    s.req_serial = c->req.serial;
    s.req_err = (uint32_t)res->err;
    s.req_version = num != NULL ? *num : 0;
    s.req_index = res->index;
    memset(s.req_str, 0, sizeof s.req_str);
    if (text != NULL) {
        memcpy(s.req_str, text, sizeof s.req_str);
    }
    s.req_str[sizeof s.req_str - 1] = '\0';
    return store_session_put(f->txn, &s);
}
