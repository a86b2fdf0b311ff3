#include "fsm/fsm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crashpoint.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "fsm/cmd.h"
#include "fsm/fsm_int.h"

static void default_fatal(const char *msg)
{
    FL_ERROR("FATAL: %s", msg);
    exit(74); /* EX_IOERR: restart replays the entry from the Raft log */
}

void (*fsm_fatal_hook)(const char *msg) = default_fatal;

void fsm__fatal(struct fsm *f, const char *what, int err)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s (%s)%s", what, fl_strerror(err), store_errmsg(f->store),
             err == FL_EMAPFULL ? "; restart with a larger --store-size" : "");
    fsm__recs_drop(f); /* their writes go with the transaction */
    if (f->txn != NULL) {
        store_abort(f->txn);
        f->txn = NULL;
        f->n_effects = f->n_effects_ready; /* their entries are not in the store */
    }
    fsm_fatal_hook(msg);
}

void fsm__copy_str(char *dst, size_t cap, const char *s, size_t n)
{
    if (s == NULL) {
        n = 0;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    if (n > 0) {
        memcpy(dst, s, n);
    }
    dst[n] = '\0';
}

void fsm_flush(struct fsm *f)
{
    int rv;
    if (f->txn == NULL) {
        return;
    }
    if ((rv = fsm__recs_flush(f)) != FL_OK) {
        fsm__fatal(f, "writing back the kept records", rv);
        return;
    }
    fl_crashpoint("apply-before-commit");
    rv = store_commit(f->txn);
    fl_crashpoint("apply-after-commit");
    f->txn = NULL;
    f->txn_entries = 0;
    if (rv != FL_OK) {
        fsm__fatal(f, "committing applied entries to the store", rv);
        return;
    }
    f->n_commits++;
    fsm__effects_committed(f); /* the store now shows what they say */
}

/* ---- commands ------------------------------------------------------- */

/* Key versions are revisions: a counter of kv writes kept in META, so each
 * write of the cluster has its own version even when many share an entry. */
static int revision_load(struct fsm *f, struct store_txn *t)
{
    uint64_t paused = 0;
    int rv = fsm__meta_u64(t, "revision", &f->revision);
    if (rv == FL_OK) {
        rv = fsm__meta_u64(t, "fence", &f->fence);
    }
    if (rv == FL_OK) {
        rv = fsm__meta_u64(t, "dispatch_paused", &paused);
    }
    f->dispatch_paused = paused != 0;
    return rv;
}

static int revision_reload(struct fsm *f)
{
    struct store_txn *t;
    int rv = store_begin(f->store, 0, &t);
    if (rv != FL_OK) {
        return rv;
    }
    rv = revision_load(f, t);
    store_abort(t);
    return rv;
}

/* Execute one decoded command. Business outcomes go to res->err; the return
 * value is a storage failure. */
static int execute_cmd(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                       struct fsm_result *res);

static int execute(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                   struct fsm_result *res)
{
    char why[FL_ERRMSG_SIZE];
    int rv, run;
    if (fsm_cmd_validate(c, why) != FL_OK) {
        res->err = FL_EINVAL; /* a leader validates first; this is a backstop */
        return FL_OK;
    }
    if (c->req.serial == 0) {
        return execute_cmd(f, c, index, now, res);
    }
    rv = fsm__request_check(f, c, res, &run);
    if (rv != FL_OK || !run) {
        return rv;
    }
    rv = execute_cmd(f, c, index, now, res);
    return rv != FL_OK ? rv : fsm__request_record(f, c, res);
}

static int execute_cmd(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                       struct fsm_result *res)
{
    switch (c->type) {
    case FSM_CMD_KV_PUT:
    case FSM_CMD_KV_DEL:
        return fsm__apply_kv(f, c, now, res);
    case FSM_CMD_NODE_REGISTER:
    case FSM_CMD_NODE_CAP:
    case FSM_CMD_NODE_DRAIN:
    case FSM_CMD_NODE_REMOVE:
    case FSM_CMD_META_INIT:
        return fsm__apply_node(f, c, index, res);
    case FSM_CMD_TASK_SUBMIT:
    case FSM_CMD_UNIT_ASSIGN:
    case FSM_CMD_UNIT_RESULT:
    case FSM_CMD_UNIT_REQUEUE:
    case FSM_CMD_NODE_LOST:
    case FSM_CMD_TASK_CANCEL:
    case FSM_CMD_DISPATCH:
        return fsm__apply_sched(f, c, index, now, res);
    case FSM_CMD_SESSION_CREATE:
    case FSM_CMD_SESSION_RENEW:
    case FSM_CMD_SESSION_DESTROY:
    case FSM_CMD_SESSION_EXPIRE:
    case FSM_CMD_LEASE_EXTEND:
    case FSM_CMD_LOCK_ACQUIRE:
    case FSM_CMD_LOCK_RELEASE:
    case FSM_CMD_LOCK_UNWAIT:
    case FSM_CMD_LOCK_WAKE:
        return fsm__apply_lock(f, c, index, now, res);
    case FSM_CMD_JOB_PUT:
    case FSM_CMD_JOB_DEL:
    case FSM_CMD_JOB_PAUSE:
    case FSM_CMD_JOB_FIRE:
        return fsm__apply_job(f, c, index, now, res);
    case FSM_CMD_ACL_BOOTSTRAP:
    case FSM_CMD_TOKEN_CREATE:
    case FSM_CMD_TOKEN_DELETE:
        return fsm__apply_acl(f, c, index, now, res);
    case FSM_CMD_AGENT_KEY_SET:
    case FSM_CMD_AGENT_KEY_APPROVE:
    case FSM_CMD_AGENT_KEY_FORGET:
    case FSM_CMD_AGENT_REVOKE:
    case FSM_CMD_AGENT_UNREVOKE:
        return fsm__apply_agentkey(f, c, index, now, res);
    case FSM_CMD_PACKAGE_PUT:
    case FSM_CMD_PACKAGE_RM:
        return fsm__apply_package(f, c, index, now, res);
    default:
        res->err = FL_EVERSION;
        return FL_OK;
    }
}

/* ---- entries, snapshots --------------------------------------------- */

void fsm_apply(struct fsm *f, uint64_t index, uint64_t commit, const void *data, size_t len)
{
    struct fsm_result stack[64];
    struct fsm_result *res = stack;
    struct fsm_entry e;
    uint64_t revision, fence;
    int rv;

    if (index <= f->applied_index) {
        f->n_skipped++; /* already in the store: replay after restart */
        return;
    }
    if (f->txn == NULL) {
        rv = store_begin(f->store, 1, &f->txn);
        if (rv != FL_OK) {
            fsm__fatal(f, "opening a store transaction", rv);
            return;
        }
    }
    rv = fsm_entry_open(&e, data, len);
    if (rv != FL_OK) {
        /* Every replica sees the same bytes, so skipping is deterministic. */
        FL_ERROR("entry %llu does not decode (%s); applied as a no-op", (unsigned long long)index,
                 fl_strerror(rv));
        f->n_bad++;
        fsm_entry_close(&e);
        e.term = f->applied_term;
        e.n_cmds = 0;
        e.origin = 0;
    }
    if (e.n_cmds > sizeof stack / sizeof stack[0]) {
        res = fl_calloc(e.n_cmds, sizeof *res);
        if (res == NULL) {
            fsm__fatal(f, "allocating command results", FL_ENOMEM);
            fsm_entry_close(&e);
            return;
        }
    }
    revision = f->revision;
    fence = f->fence;
    f->applying = index;
    for (unsigned i = 0; i < e.n_cmds; i++) {
        struct fsm_cmd c;
        memset(&res[i], 0, sizeof res[i]);
        res[i].index = index;
        rv = fsm_entry_cmd(&e, i, &c);
        if (rv != FL_OK) {
            res[i].err = rv;
            continue;
        }
        /* Records kept over a run of unit commands are written back before
         * any other command (fsm/recs.c). */
        if (c.type != FSM_CMD_UNIT_ASSIGN && c.type != FSM_CMD_UNIT_RESULT) {
            rv = fsm__recs_flush(f);
        }
        if (rv == FL_OK) {
            rv = execute(f, &c, index, e.time_ms, &res[i]);
        }
        if (rv != FL_OK) {
            fsm__fatal(f, "applying a command", rv);
            goto out;
        }
        f->n_cmds++;
        fsm__sched_effects(f, &c, &res[i]);
        if (f->effects_oom) {
            f->effects_oom = 0;
            fsm__fatal(f, "recording the effects of an entry", FL_ENOMEM);
            goto out;
        }
    }
    if ((rv = fsm__recs_flush(f)) != FL_OK) {
        fsm__fatal(f, "writing back the kept records", rv);
        goto out;
    }
    if (f->revision != revision) {
        char text[32];
        snprintf(text, sizeof text, "%llu", (unsigned long long)f->revision);
        rv = store_meta_put(f->txn, "revision", text);
        if (rv != FL_OK) {
            fsm__fatal(f, "recording the kv revision", rv);
            goto out;
        }
    }
    if (f->fence != fence) {
        rv = fsm__meta_put_u64(f->txn, "fence", f->fence);
        if (rv != FL_OK) {
            fsm__fatal(f, "recording the fencing counter", rv);
            goto out;
        }
    }
    rv = store_set_applied(f->txn, index, e.term);
    if (rv != FL_OK) {
        fsm__fatal(f, "recording the applied index", rv);
        goto out;
    }
    f->applied_index = index;
    f->applied_term = e.term;
    f->time_ms = e.time_ms;
    f->txn_entries++;
    f->n_applied++;
    /* The last entry of this run of commits: make it durable now. */
    if (index >= commit || f->txn_entries >= 1024) {
        fsm_flush(f);
    }
    if (e.origin == f->self_id && e.origin != 0 && f->results_cb != NULL) {
        f->results_cb(f->results_data, e.seq, e.term, index, res, e.n_cmds);
    }
out:
    if (res != stack) {
        fl_free(res);
    }
    fsm_entry_close(&e);
}

int fsm_snapshot(struct fsm *f, struct fl_buf *out)
{
    int rv;

    fsm_flush(f);
    rv = store_dump(f->store, out, NULL, NULL);
    if (rv != FL_OK) {
        FL_ERROR("snapshot: %s (%s)", fl_strerror(rv), store_errmsg(f->store));
        return rv;
    }
    f->n_snapshots++;
    fl_crashpoint("snapshot-taken"); /* taken, not yet written by raft */
    return FL_OK;
}

int fsm_restore(struct fsm *f, const void *data, size_t len)
{
    int loaded = 0;
    int rv;

    fsm_flush(f);
    rv = store_load(f->store, data, len, &loaded);
    if (rv != FL_OK) {
        /* During an install the node would silently stop applying: stop
         * instead (the caller also refuses the snapshot). */
        fsm__fatal(f, "restoring a snapshot", rv);
        return rv;
    }
    if (loaded) {
        f->n_restores++;
    } else {
        f->n_restores_skipped++;
    }
    store_applied(f->store, &f->applied_index, &f->applied_term);
    if (revision_reload(f) != FL_OK) {
        fsm__fatal(f, "reading the kv revision", FL_EIO);
    }
    return FL_OK;
}

int fsm_init(struct fsm *f, struct store *s, uint64_t self_id)
{
    int rv;
    memset(f, 0, sizeof *f);
    f->store = s;
    f->self_id = self_id;
    rv = fsm__recs_init(f);
    if (rv == FL_OK) {
        rv = store_applied(s, &f->applied_index, &f->applied_term);
    }
    if (rv == FL_OK) {
        rv = revision_reload(f);
    }
    if (rv != FL_OK) {
        fsm__recs_close(f);
    }
    return rv;
}

void fsm_close(struct fsm *f)
{
    fsm_flush(f);
    fsm__recs_close(f);
    fl_buf_close(&f->finished_runs);
    fsm__effects_close(f);
    f->store = NULL;
}
