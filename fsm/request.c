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
        res->version = s.req_serial;
        f->n_req_stale++;
        return FL_OK;
    }
    res->err = (int)s.req_err;
    res->version = s.req_version;
    res->index = s.req_index;
    memcpy(res->str, s.req_str, sizeof res->str);
    res->replayed = 1;
    f->n_req_replayed++;
    return FL_OK;
}

int fsm__request_record(struct fsm *f, const struct fsm_cmd *c, const struct fsm_result *res)
{
    char id[STORE_SESSION_ID_MAX];
    struct store_session s;
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
    s.req_version = res->version;
    s.req_index = res->index;
    memcpy(s.req_str, res->str, sizeof s.req_str);
    s.req_str[sizeof s.req_str - 1] = '\0';
    return store_session_put(f->txn, &s);
}
