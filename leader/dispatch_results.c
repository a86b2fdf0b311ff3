/* leader/ — results and streamed logs from agents: results are committed in
 * batches and acknowledged once applied; logs are kept in leader memory. */
#include "leader/dispatch_int.h"

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

    unit_key(key, sizeof key, dn->ref.task_id, dn->ref.unit);
    fl_free(strmap_del(&d->missing, key));
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

void dispatch__on_log(struct dispatch *d, const struct aproto_log *lg)
{
    char key[STORE_TASK_ID_MAX + 16];
    struct fl_buf *b;
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
