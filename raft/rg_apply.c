#include "raft/rg_apply.h"

#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/crashpoint.h"
#include "common/err.h"

static int apply_cb(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct rg_apply *a = rf->data;
    *result = NULL;
    fsm_apply(a->fsm, raft_last_applied(a->raft) + 1, raft_commit_index(a->raft), buf->base,
              buf->len);
    rg_apply_deliver(a); /* what this entry's flush, if any, made ready */
    return 0;
}

static int snapshot_cb(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct rg_apply *a = rf->data;
    struct fl_buf out;
    int rv;
    fl_buf_init(&out);
    rv = fsm_snapshot(a->fsm, &out);
    rg_apply_deliver(a); /* what its flush made ready */
    if (rv != FL_OK) {
        fl_buf_close(&out);
        return RAFT_NOMEM; /* raft skips this snapshot and tries later */
    }
    *bufs = fl_malloc(sizeof **bufs);
    if (*bufs == NULL) {
        fl_buf_close(&out);
        return RAFT_NOMEM;
    }
    (*bufs)[0].base = fl_buf_steal(&out, &(*bufs)[0].len);
    *n_bufs = 1;
    return 0;
}

static int snapshot_finalize_cb(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    fl_crashpoint("snapshot-written"); /* raft's put finished; log not yet truncated */
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++) {
            fl_free((*bufs)[i].base);
        }
        fl_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int restore_cb(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct rg_apply *a = rf->data;
    int rv = fsm_restore(a->fsm, buf->base, buf->len);
    rg_apply_deliver(a); /* what the flush before the load made ready */
    /* raft frees buf when restore fails inside raft_start. */
    if (rv != FL_OK) {
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    return 0;
}

void rg_apply_init(struct rg_apply *a, struct fsm *f)
{
    memset(a, 0, sizeof *a);
    a->fsm = f;
    a->rf.version = 2;
    a->rf.data = a;
    a->rf.apply = apply_cb;
    a->rf.snapshot = snapshot_cb;
    a->rf.snapshot_finalize = snapshot_finalize_cb;
    a->rf.restore = restore_cb;
}

void rg_apply_set_raft(struct rg_apply *a, struct raft *r)
{
    a->raft = r;
}

int rg_apply_subscribe(struct rg_apply *a, rg_effect_fn fn, void *arg)
{
    if (a->n_subs == RG_APPLY_SUBSCRIBERS_MAX) {
        return FL_EBUSY;
    }
    a->subs[a->n_subs].fn = fn;
    a->subs[a->n_subs].arg = arg;
    a->n_subs++;
    return FL_OK;
}

void rg_apply_unsubscribe(struct rg_apply *a, rg_effect_fn fn, void *arg)
{
    for (unsigned i = 0; i < a->n_subs; i++) {
        if (a->subs[i].fn == fn && a->subs[i].arg == arg) {
            memmove(&a->subs[i], &a->subs[i + 1], (a->n_subs - i - 1) * sizeof a->subs[0]);
            a->n_subs--;
            return;
        }
    }
}

void rg_apply_deliver(struct rg_apply *a)
{
    const struct fsm_effect *e;
    unsigned n;
    if (a->delivering) {
        return; /* the outer call hands them over next time */
    }
    a->delivering = 1;
    /* A subscriber may flush (and make more effects ready) while it runs. */
    while ((n = fsm_effects_take(a->fsm, &e)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            for (unsigned k = 0; k < a->n_subs; k++) {
                a->subs[k].fn(a->subs[k].arg, &e[i]);
            }
        }
    }
    a->delivering = 0;
}

void rg_apply_flush(struct rg_apply *a)
{
    fsm_flush(a->fsm);
    rg_apply_deliver(a);
}
