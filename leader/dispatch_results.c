/* leader/ — results and streamed logs from agents: results are committed in
 * batches and acknowledged once applied; logs are kept in leader memory. */
#include "leader/dispatch_int.h"

/* ---- whose report is it ------------------------------------------------------- */

#define FOREIGN_LOG_MS 10000 /* one warning per link and period */

enum report {
    REPORT_OWN,     /* the unit's current assignment is this agent's, under this token */
    REPORT_STALE,   /* an earlier run of this agent: fencing makes it stale */
    REPORT_FOREIGN, /* not this agent's: refused */
    REPORT_UNKNOWN  /* the state could not be read */
};

/* Classify a report about `ref` from agent `a` against the unit's
 * assignment in the leader's applied state. A new leader serves only once
 * every committed entry is applied, and RUN goes out only after its
 * assignment is applied, so an honest agent's current run is always found
 * here as its own.
 *
 * Own: the unit runs on `a` under this very token. Stale: another token or a
 * unit no longer running, not newer than the unit's token, and `a` has a claim
 * on it: it is the unit's node (current or, once done, last), the node of the
 * previous attempt, or it reported this run at its HELLO after it was taken
 * back. Foreign: anything else — another agent's unit, a token the unit never
 * had, an unknown unit. A stale DONE is proposed as before and the state
 * machine counts it stale (its token is older than the unit's, so it cannot
 * match a later assignment either); a foreign one is never proposed. */
static enum report classify(struct dispatch *d, struct dagent *a, const struct aproto_unit_ref *ref)
{
    struct store_txn *t;
    struct store_unit u;
    char run[STORE_TASK_ID_MAX + 40];
    int rv;
    if (store_begin(dstore(d), 0, &t) != FL_OK) {
        return REPORT_UNKNOWN;
    }
    rv = store_unit_get(t, ref->task_id, ref->unit, &u);
    store_abort(t);
    if (rv == FL_ENOTFOUND) {
        return REPORT_FOREIGN;
    }
    if (rv != FL_OK) {
        return REPORT_UNKNOWN;
    }
    if (u.state == STORE_UNIT_RUNNING && u.token == ref->token) {
        return strcmp(u.node, a->id) == 0 ? REPORT_OWN : REPORT_FOREIGN;
    }
    if (ref->token > u.token) {
        return REPORT_FOREIGN;
    }
    run_key(run, sizeof run, ref);
    if (strcmp(u.node, a->id) == 0 || strcmp(u.last_node, a->id) == 0 ||
        strmap_get(&a->stale, run) != NULL) {
        return REPORT_STALE;
    }
    return REPORT_FOREIGN;
}

/* A refused report: counted, and logged at most once per period per link. */
static void foreign(struct dispatch *d, struct dagent *a, const char *what,
                    const struct aproto_unit_ref *ref)
{
    uint64_t now = now_ms(d);
    if (a->foreign_logged_ms != 0 && now - a->foreign_logged_ms < FOREIGN_LOG_MS) {
        a->foreign_quiet++;
        return;
    }
    if (a->foreign_quiet > 0) {
        FL_WARN("agent %s: %llu more reports about units not assigned to it were refused", a->id,
                (unsigned long long)a->foreign_quiet);
    }
    FL_WARN("agent %s: %s for unit %s/%u (token %llu), which is not assigned to it: refused", a->id,
            what, ref->task_id, ref->unit, (unsigned long long)ref->token);
    a->foreign_logged_ms = now;
    a->foreign_quiet = 0;
}

void dispatch__on_started(struct dispatch *d, struct dagent *a, const struct aproto_started *st)
{
    char key[STORE_TASK_ID_MAX + 16];
    struct missing *m;
    unit_key(key, sizeof key, st->ref.task_id, st->ref.unit);
    m = strmap_get(&d->missing, key);
    if (m != NULL && strcmp(m->node, a->id) == 0) {
        fl_free(strmap_del(&d->missing, key));
    }
}

/* ---- results from agents ------------------------------------------------------ */

struct result_ctx {
    struct dispatch *d;
    char agent[STORE_NODE_ID_MAX];
    struct aproto_unit_ref ref;
};

static void result_cb(void *data, int err, const struct fsm_result *res)
{
    struct result_ctx *r = data;
    struct dispatch *d = r->d;
    if (err == FL_OK) {
        struct aproto_msg m;
        if (res->err == FL_OK) {
            d->n_results++;
        } else {
            d->n_stale++; /* a late or duplicate DONE: recorded as stale */
        }
        /* Committed either way: the agent may drop its spooled copy. */
        aproto_msg_init(&m, APROTO_ACK);
        m.u.ack.ref = r->ref;
        m.u.ack.what = APROTO_ACK_DONE;
        if (!d->closing) {
            dispatch__send(d, r->agent, &m);
        }
    }
    fl_free(r);
}

void dispatch__on_done(struct dispatch *d, struct dagent *a, const struct aproto_done *dn)
{
    struct fsm_host_result stack[64], *hr = stack;
    struct result_ctx *r;
    struct fsm_cmd cmd;
    char key[STORE_TASK_ID_MAX + 16], run[STORE_TASK_ID_MAX + 40];
    int rv;

    enum report kind = classify(d, a, &dn->ref);
    if (kind == REPORT_UNKNOWN) {
        FL_WARN("result of %s/%u from %s not proposed: the state cannot be read", dn->ref.task_id,
                dn->ref.unit, a->id);
        return; /* not acknowledged: the agent sends it again */
    }
    if (kind == REPORT_FOREIGN) {
        struct aproto_msg m;
        d->n_foreign_done++;
        foreign(d, a, "DONE", &dn->ref);
        /* Refused for good: the agent may drop it from its spool (an
         * honest agent with a report this old cannot do anything else
         * with it; a dishonest one learns nothing). */
        aproto_msg_init(&m, APROTO_ACK);
        m.u.ack.ref = dn->ref;
        m.u.ack.what = APROTO_ACK_DONE;
        dispatch__send(d, a->id, &m);
        return;
    }
    unit_key(key, sizeof key, dn->ref.task_id, dn->ref.unit);
    if (kind == REPORT_OWN) {
        fl_free(strmap_del(&d->missing, key));
    }
    run_key(run, sizeof run, &dn->ref);
    if (strmap_del(&a->stale, run) != NULL) {
        d->nodes_dirty = 1; /* a slot it held is free again */
        dispatch_kick(d);
    }
    if (dn->n_results > 64) {
        hr = fl_malloc(sizeof *hr * dn->n_results);
        if (hr == NULL) {
            return;
        }
    }
    for (uint32_t i = 0; i < dn->n_results; i++) {
        hr[i].host = dn->results[i].host;
        hr[i].hostlen = strlen(dn->results[i].host);
        hr[i].status = dn->results[i].status;
        hr[i].rc = dn->results[i].rc;
        hr[i].tail = dn->results[i].tail;
        hr[i].tail_len = dn->results[i].tail_len;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = FSM_CMD_UNIT_RESULT;
    cmd.u.unit.task = dn->ref.task_id;
    cmd.u.unit.tasklen = strlen(dn->ref.task_id);
    cmd.u.unit.unit = dn->ref.unit;
    cmd.u.unit.attempt = dn->ref.attempt;
    cmd.u.unit.token = dn->ref.token;
    cmd.u.unit.status = dn->status;
    cmd.u.unit.exit_code = dn->exit_code;
    cmd.u.unit.started_ms = dn->started_ms;
    cmd.u.unit.finished_ms = dn->finished_ms;
    cmd.u.unit.n_results = dn->n_results;
    cmd.u.unit.result_ptrs = hr;
    r = fl_malloc(sizeof *r);
    if (r != NULL) {
        r->d = d;
        memcpy(r->agent, a->id, sizeof r->agent);
        r->ref = dn->ref;
        if ((rv = dpropose(d, &cmd, result_cb, r)) != FL_OK) {
            FL_WARN("result of %s/%u from %s not proposed: %s", dn->ref.task_id, dn->ref.unit,
                    a->id, fl_strerror(rv));
            fl_free(r);
        }
    }
    if (hr != stack) {
        fl_free(hr);
    }
}

/* Output of a unit the agent runs now, under its current token; anything else
 * is dropped before a byte is kept, so what LOG holds in memory is bounded by
 * LOG_KEEP_BYTES per unit that ran (docs/SCHEDULER.md "Logs"). */
void dispatch__on_log(struct dispatch *d, struct dagent *a, const struct aproto_log *lg)
{
    char key[STORE_TASK_ID_MAX + 16];
    struct fl_buf *b;
    enum report kind = classify(d, a, &lg->ref);
    if (kind != REPORT_OWN) {
        if (kind == REPORT_FOREIGN) {
            d->n_foreign_log++;
            foreign(d, a, "LOG", &lg->ref);
        }
        return; /* a stale run's output: its unit is no longer its own */
    }
    unit_key(key, sizeof key, lg->ref.task_id, lg->ref.unit);
    b = strmap_get(&d->logs, key);
    if (b == NULL) {
        if (strmap_size(&d->logs) >= LOG_UNITS_MAX) {
            size_t i = 0;
            const char *k;
            void *v;
            if (strmap_next(&d->logs, &i, &k, &v)) {
                fl_buf_close(v);
                fl_free(strmap_del(&d->logs, k));
            }
        }
        b = fl_calloc(1, sizeof *b);
        if (b == NULL || strmap_put(&d->logs, key, b, NULL) != FL_OK) {
            fl_free(b);
            return;
        }
    }
    if (b->len + lg->data_len > LOG_KEEP_BYTES) {
        size_t drop = b->len + lg->data_len - LOG_KEEP_BYTES;
        if (drop > b->len) {
            drop = b->len;
        }
        memmove(b->data, b->data + drop, b->len - drop);
        b->len -= drop;
    }
    fl_buf_append(b, lg->data, lg->data_len);
}
