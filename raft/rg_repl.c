#include "raft/rg_repl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <raft/uv.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/err.h"
#include "common/fsdir.h"
#include "common/log.h"
#include "raft/rg_apply.h"
#include "raft/rg_trace.h"
#include "raft/rg_transport.h"

/* One client operation waiting in a batch. */
struct op {
    rg_op_cb cb;
    void *data;
};

/* One proposed log entry. */
struct batch {
    struct raft_apply req; /* req.data = this */
    struct rg_repl *p;
    uint64_t seq;
    uint64_t term;
    unsigned n;
    struct op *ops;
    struct fsm_result *results; /* filled by the FSM when applied here */
    struct batch *next;         /* pending list */
};

struct waiter {
    rg_done_cb cb;
    void *data;
    struct waiter *next;
};

struct barrier {
    struct raft_barrier req;
    struct rg_repl *p;
    struct waiter *waiters; /* NULL for the post-election barrier */
    int election;
};

struct change {
    struct raft_change req;
    struct rg_repl *p;
    uint64_t id;
    int role; /* join: role to assign after the add */
    rg_done_cb cb;
    void *data;
};

struct transfer {
    struct raft_transfer req;
    struct rg_repl *p;
    uint64_t target;
    rg_done_cb cb;
    void *data;
};

struct rg_repl {
    uv_loop_t *loop;
    struct store *store;
    struct rg_repl_options o;
    char raft_addr[128];
    char dir[4096];
    struct raft raft;
    struct raft_io io;
    struct rg_transport transport;
    struct fsm fsm;
    struct rg_apply apply; /* fsm behind raft's raft_fsm */
    uv_check_t check;
    uv_idle_t idle;
    int started;
    int closing;
    void (*close_cb)(void *data);
    void *close_data;
    int handles_open;

    /* batch under construction */
    struct fsm_entry_writer writer;
    struct op *ops;
    unsigned n_ops, cap_ops;
    uint64_t next_seq;
    struct batch *pending; /* proposed, not yet completed */

    struct waiter *readers; /* waiting for the next read barrier */
    struct waiter **readers_tail;

    /* leadership tracking */
    uint64_t seen_term;
    int seen_leader;
    int ready;
    int election_barrier_pending;
    void (*on_leader)(void *data);
    void *on_leader_data;

    uint64_t n_batches;
    uint64_t n_proposed;
};

const char *rg_role_name(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_STANDBY:
        return "standby";
    case RAFT_SPARE:
        return "spare";
    default:
        return "none";
    }
}

static int raft_to_fl(int rv)
{
    switch (rv) {
    case 0:
        return FL_OK;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return FL_ENOTLEADER;
    case RAFT_NOMEM:
        return FL_ENOMEM;
    case RAFT_CANTCHANGE:
        return FL_EBUSY;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
        return FL_ENOTFOUND;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
        return FL_EEXIST;
    case RAFT_NOCONNECTION:
        return FL_ENET;
    case RAFT_NOSPACE:
        return FL_EDISKFULL;
    default:
        return FL_ERAFT;
    }
}

/* ---- results from the FSM ------------------------------------------- */

static void on_results(void *data, uint64_t seq, uint64_t term, uint64_t index,
                       const struct fsm_result *results, unsigned n)
{
    struct rg_repl *p = data;
    for (struct batch *b = p->pending; b != NULL; b = b->next) {
        if (b->seq == seq && b->term == term && b->n == n && b->results == NULL) {
            b->results = fl_malloc(sizeof *results * (n ? n : 1));
            if (b->results == NULL) {
                return; /* the clients get FL_EUNKNOWN */
            }
            memcpy(b->results, results, sizeof *results * n);
            return;
        }
    }
}

static void unlink_batch(struct rg_repl *p, struct batch *b)
{
    for (struct batch **pp = &p->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            return;
        }
    }
}

static void batch_free(struct batch *b)
{
    fl_free(b->ops);
    fl_free(b->results);
    fl_free(b);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct batch *b = req->data;
    struct rg_repl *p = b->p;
    /* Acknowledge only what the store holds, after the entry's effects went
     * to the subscribers (raft/rg_apply.h). */
    rg_apply_flush(&p->apply);
    unlink_batch(p, b);
    /* A proposed entry that fails (leadership lost, or this server closing)
     * may still commit on the others: its outcome is unknown. */
    for (unsigned i = 0; i < b->n; i++) {
        if (status == 0 && b->results != NULL) {
            b->ops[i].cb(b->ops[i].data, FL_OK, &b->results[i]);
        } else {
            b->ops[i].cb(b->ops[i].data, FL_EUNKNOWN, NULL);
        }
    }
    batch_free(b);
}

/* ---- batching ------------------------------------------------------- */

static void fail_ops(struct op *ops, unsigned n, int err)
{
    for (unsigned i = 0; i < n; i++) {
        ops[i].cb(ops[i].data, err, NULL);
    }
}

/* Propose the batch under construction as one entry. */
static void flush_batch(struct rg_repl *p)
{
    struct batch *b;
    struct raft_buffer buf;
    void *base;
    size_t len;
    int rv;

    if (p->n_ops == 0) {
        return;
    }
    b = fl_calloc(1, sizeof *b);
    if (b == NULL) {
        goto fail;
    }
    b->p = p;
    b->seq = ++p->next_seq;
    b->term = raft_current_term(&p->raft);
    b->n = p->n_ops;
    b->ops = p->ops;
    rv = fsm_writer_finish(&p->writer, p->o.id, b->seq, b->term, fl_wall_ms(), raft_malloc, &base,
                           &len);
    if (rv != FL_OK) {
        fl_free(b);
        goto fail;
    }
    buf.base = base;
    buf.len = len;
    b->req.data = b;
    rv = raft_apply(&p->raft, &b->req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(base);
        if (rv != RAFT_NOTLEADER && rv != RAFT_NOSPACE) {
            /* raft-notes §4: after a failed local append the node is
             * inconsistent; restarting replays the log. */
            FL_ERROR("FATAL: raft_apply: %s", raft_strerror(rv));
            exit(74);
        }
        p->ops = NULL;
        fail_ops(b->ops, b->n, rv == RAFT_NOSPACE ? FL_EDISKFULL : FL_ENOTLEADER);
        fl_free(b->ops);
        fl_free(b);
        goto reset;
    }
    b->next = p->pending;
    p->pending = b;
    p->n_batches++;
    p->n_proposed += b->n;
    p->ops = NULL;
    goto reset;
fail:
    fail_ops(p->ops, p->n_ops, FL_ENOMEM);
    fl_free(p->ops);
    p->ops = NULL;
reset:
    p->n_ops = 0;
    p->cap_ops = 0;
    fsm_writer_close(&p->writer);
    fsm_writer_init(&p->writer);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct barrier *b = req->data;
    struct rg_repl *p = b->p;
    struct waiter *w = b->waiters;
    rg_apply_flush(&p->apply);
    if (b->election) {
        p->election_barrier_pending = 0;
        if (status == 0 && raft_state(&p->raft) == RAFT_LEADER &&
            raft_current_term(&p->raft) == p->seen_term) {
            p->ready = 1;
            FL_INFO("leader for term %llu is ready", (unsigned long long)p->seen_term);
            if (p->on_leader != NULL) {
                p->on_leader(p->on_leader_data);
            }
        }
    }
    while (w != NULL) {
        struct waiter *next = w->next;
        w->cb(w->data, status == 0 ? FL_OK : p->closing ? FL_ESHUTDOWN : FL_ENOTLEADER);
        fl_free(w);
        w = next;
    }
    fl_free(b);
}

static int start_barrier(struct rg_repl *p, struct waiter *waiters, int election)
{
    struct barrier *b = fl_calloc(1, sizeof *b);
    int rv;
    if (b == NULL) {
        return FL_ENOMEM;
    }
    b->p = p;
    b->waiters = waiters;
    b->election = election;
    b->req.data = b;
    rv = raft_barrier(&p->raft, &b->req, barrier_cb);
    if (rv != 0) {
        fl_free(b);
        return raft_to_fl(rv);
    }
    return FL_OK;
}

static void flush_readers(struct rg_repl *p)
{
    struct waiter *w = p->readers;
    int rv;
    if (w == NULL) {
        return;
    }
    p->readers = NULL;
    p->readers_tail = &p->readers;
    rv = start_barrier(p, w, 0);
    if (rv != FL_OK) {
        while (w != NULL) {
            struct waiter *next = w->next;
            w->cb(w->data, rv);
            fl_free(w);
            w = next;
        }
    }
}

/* Leadership changes are observed here: raft has no state callback. */
static void watch_leadership(struct rg_repl *p)
{
    int leader = raft_state(&p->raft) == RAFT_LEADER;
    uint64_t term = raft_current_term(&p->raft);
    if (!leader) {
        if (p->seen_leader) {
            FL_INFO("no longer leader (term %llu)", (unsigned long long)term);
        }
        p->seen_leader = 0;
        p->ready = 0;
        return;
    }
    if (!p->seen_leader || term != p->seen_term) {
        FL_INFO("became leader for term %llu", (unsigned long long)term);
        p->seen_leader = 1;
        p->seen_term = term;
        p->ready = 0;
    }
    if (!p->ready && !p->election_barrier_pending) {
        if (start_barrier(p, NULL, 1) == FL_OK) {
            p->election_barrier_pending = 1;
        }
    }
}

static void check_cb(uv_check_t *h)
{
    struct rg_repl *p = h->data;
    if (p->closing) {
        return;
    }
    watch_leadership(p);
    flush_batch(p);
    flush_readers(p);
    uv_idle_stop(&p->idle);
}

static void idle_cb(uv_idle_t *h)
{
    (void)h; /* keeps the loop from blocking while work is queued */
}

static void wake(struct rg_repl *p)
{
    if (!uv_is_active((uv_handle_t *)&p->idle)) {
        uv_idle_start(&p->idle, idle_cb);
    }
}

int rg_repl_submit(struct rg_repl *p, const struct fsm_cmd *cmd, rg_op_cb cb, void *data,
                   char *errmsg)
{
    int rv;
    if (p->closing) {
        return fl_errf(errmsg, FL_ESHUTDOWN, "server is shutting down");
    }
    rv = fsm_cmd_validate(cmd, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (raft_state(&p->raft) != RAFT_LEADER) {
        return fl_errf(errmsg, FL_ENOTLEADER, "not the leader");
    }
    if (p->n_ops == p->cap_ops) {
        unsigned cap = p->cap_ops ? p->cap_ops * 2 : 16;
        struct op *ops = fl_realloc(p->ops, sizeof *ops * cap);
        if (ops == NULL) {
            return fl_errf(errmsg, FL_ENOMEM, "out of memory");
        }
        p->ops = ops;
        p->cap_ops = cap;
    }
    rv = fsm_writer_add(&p->writer, cmd);
    if (rv != FL_OK) {
        return fl_errf(errmsg, rv, "encoding the command");
    }
    p->ops[p->n_ops].cb = cb;
    p->ops[p->n_ops].data = data;
    p->n_ops++;
    if (p->n_ops >= p->o.max_batch_cmds || fsm_writer_size(&p->writer) >= p->o.max_batch_bytes) {
        flush_batch(p);
    } else {
        wake(p);
    }
    return FL_OK;
}

int rg_repl_read_barrier(struct rg_repl *p, rg_done_cb cb, void *data)
{
    struct waiter *w;
    if (p->closing) {
        return FL_ESHUTDOWN;
    }
    if (raft_state(&p->raft) != RAFT_LEADER) {
        return FL_ENOTLEADER;
    }
    w = fl_calloc(1, sizeof *w);
    if (w == NULL) {
        return FL_ENOMEM;
    }
    w->cb = cb;
    w->data = data;
    *p->readers_tail = w;
    p->readers_tail = &w->next;
    wake(p);
    return FL_OK;
}

/* ---- membership ----------------------------------------------------- */

static void change_done(struct change *c, int err)
{
    c->cb(c->data, err);
    fl_free(c);
}

static void assign_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;
    if (status != 0) {
        FL_WARN("assigning role %s to server %llu: %s", rg_role_name(c->role),
                (unsigned long long)c->id, raft_strerror(status));
    }
    change_done(c, raft_to_fl(status));
}

static void add_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;
    struct rg_repl *p = c->p;
    int rv;
    if (status != 0) {
        FL_WARN("adding server %llu: %s", (unsigned long long)c->id, raft_strerror(status));
        change_done(c, raft_to_fl(status));
        return;
    }
    if (c->role == RAFT_SPARE) {
        change_done(c, FL_OK);
        return;
    }
    fl_crashpoint("member-added"); /* in the configuration as a spare, not yet assigned */
    memset(&c->req, 0, sizeof c->req);
    c->req.data = c;
    rv = raft_assign(&p->raft, &c->req, c->id, c->role, assign_cb);
    if (rv != 0) {
        FL_WARN("assigning role to server %llu: %s", (unsigned long long)c->id, raft_strerror(rv));
        change_done(c, raft_to_fl(rv));
    }
}

static struct change *change_new(struct rg_repl *p, uint64_t id, int role, rg_done_cb cb,
                                 void *data)
{
    struct change *c = fl_calloc(1, sizeof *c);
    if (c != NULL) {
        c->p = p;
        c->id = id;
        c->role = role;
        c->cb = cb;
        c->data = data;
        c->req.data = c;
    }
    return c;
}

static int member_role(struct rg_repl *p, uint64_t id)
{
    for (unsigned i = 0; i < p->raft.configuration.n; i++) {
        if (p->raft.configuration.servers[i].id == id) {
            return p->raft.configuration.servers[i].role;
        }
    }
    return -1;
}

static int leader_gate(struct rg_repl *p)
{
    if (p->closing) {
        return FL_ESHUTDOWN;
    }
    if (raft_state(&p->raft) != RAFT_LEADER) {
        return FL_ENOTLEADER;
    }
    if (!p->ready) {
        return FL_EBUSY; /* the post-election barrier has not committed yet */
    }
    return FL_OK;
}

int rg_repl_join(struct rg_repl *p, uint64_t id, const char *addr, int role, rg_done_cb cb,
                 void *data)
{
    struct change *c;
    int rv = leader_gate(p);
    int cur;
    if (rv != FL_OK) {
        return rv;
    }
    cur = member_role(p, id);
    if (cur >= 0) {
        if (cur == role) {
            return FL_EEXIST;
        }
        return rg_repl_assign(p, id, role, cb, data);
    }
    c = change_new(p, id, role, cb, data);
    if (c == NULL) {
        return FL_ENOMEM;
    }
    rv = raft_add(&p->raft, &c->req, id, addr, add_cb);
    if (rv != 0) {
        fl_free(c);
        return raft_to_fl(rv);
    }
    return FL_OK;
}

int rg_repl_assign(struct rg_repl *p, uint64_t id, int role, rg_done_cb cb, void *data)
{
    struct change *c;
    int rv = leader_gate(p);
    if (rv != FL_OK) {
        return rv;
    }
    if (member_role(p, id) < 0) {
        return FL_ENOTFOUND;
    }
    c = change_new(p, id, role, cb, data);
    if (c == NULL) {
        return FL_ENOMEM;
    }
    rv = raft_assign(&p->raft, &c->req, id, role, assign_cb);
    if (rv != 0) {
        fl_free(c);
        return raft_to_fl(rv);
    }
    return FL_OK;
}

static void remove_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;
    if (status != 0) {
        FL_WARN("removing server %llu: %s", (unsigned long long)c->id, raft_strerror(status));
    }
    change_done(c, raft_to_fl(status));
}

int rg_repl_remove(struct rg_repl *p, uint64_t id, rg_done_cb cb, void *data)
{
    struct change *c;
    int rv = leader_gate(p);
    if (rv != FL_OK) {
        return rv;
    }
    if (member_role(p, id) < 0) {
        return FL_ENOTFOUND;
    }
    c = change_new(p, id, 0, cb, data);
    if (c == NULL) {
        return FL_ENOMEM;
    }
    rv = raft_remove(&p->raft, &c->req, id, remove_cb);
    if (rv != 0) {
        fl_free(c);
        return raft_to_fl(rv);
    }
    return FL_OK;
}

static void transfer_cb(struct raft_transfer *req)
{
    struct transfer *t = req->data;
    struct rg_repl *p = t->p;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&p->raft, &lid, &laddr);
    /* The callback has no status: check who leads now (raft-notes §3). */
    t->cb(t->data, (lid != 0 && lid != p->o.id && (t->target == 0 || lid == t->target))
                       ? FL_OK
                       : FL_ETIMEOUT);
    fl_free(t);
}

int rg_repl_transfer(struct rg_repl *p, uint64_t id, rg_done_cb cb, void *data)
{
    struct transfer *t;
    int rv = leader_gate(p);
    if (rv != FL_OK) {
        return rv;
    }
    t = fl_calloc(1, sizeof *t);
    if (t == NULL) {
        return FL_ENOMEM;
    }
    t->p = p;
    t->target = id;
    t->cb = cb;
    t->data = data;
    t->req.data = t;
    rv = raft_transfer(&p->raft, &t->req, id, transfer_cb);
    if (rv != 0) {
        fl_free(t);
        return raft_to_fl(rv);
    }
    return FL_OK;
}

/* ---- lifecycle ------------------------------------------------------ */

int rg_repl_create(uv_loop_t *loop, struct store *store, const struct rg_repl_options *o,
                   struct rg_repl **out, char *errmsg)
{
    struct rg_repl *p;
    int rv;

    if (o->id == 0 || o->raft_addr == NULL || o->dir == NULL) {
        return fl_errf(errmsg, FL_EINVAL, "id, raft address and directory are required");
    }
    p = fl_calloc(1, sizeof *p);
    if (p == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    p->loop = loop;
    p->store = store;
    p->o = *o;
    snprintf(p->raft_addr, sizeof p->raft_addr, "%s", o->raft_addr);
    snprintf(p->dir, sizeof p->dir, "%s", o->dir);
    p->o.raft_addr = p->raft_addr;
    p->o.dir = p->dir;
#define OPT_DEFAULT(field, v) (p->o.field = p->o.field != 0 ? p->o.field : (v)) /* 0: default */
    OPT_DEFAULT(snapshot_threshold, 8192);
    OPT_DEFAULT(snapshot_trailing, 8192);
    OPT_DEFAULT(election_timeout_ms, 1000);
    OPT_DEFAULT(heartbeat_ms, 100);
    OPT_DEFAULT(max_batch_cmds, 4096);
    OPT_DEFAULT(max_batch_bytes, 1024 * 1024);
#undef OPT_DEFAULT
    p->readers_tail = &p->readers;
    fsm_writer_init(&p->writer);

    if (fl_mkdir_p(p->dir) != 0) {
        rv = fl_errf(errmsg, FL_EIO, "create %s: %s", p->dir, strerror(errno));
        goto err;
    }
    rv = fsm_init(&p->fsm, store, o->id);
    if (rv != FL_OK) {
        fl_errf(errmsg, rv, "reading the store's applied index: %s", store_errmsg(store));
        goto err;
    }
    p->fsm.results_cb = on_results;
    p->fsm.results_data = p;
    rg_apply_init(&p->apply, &p->fsm);
    rv = rg_transport_init(&p->transport, loop, p->raft_addr, o->creds, o->raft_plaintext);
    if (rv != 0) {
        rv = fl_errf(errmsg, FL_ERAFT, "raft transport: %s", raft_strerror(rv));
        goto err;
    }
    rv = raft_uv_init(&p->io, loop, p->dir, &p->transport.outer);
    if (rv != 0) {
        fl_errf(errmsg, FL_ERAFT, "raft io in %s: %s", p->dir, p->io.errmsg);
        rg_transport_close(&p->transport);
        rv = FL_ERAFT;
        goto err;
    }
    raft_uv_set_auto_recovery(&p->io, false);
    raft_uv_set_tracer(&p->io, rg_trace_tracer());
    rv = raft_init(&p->raft, &p->io, &p->apply.rf, o->id, p->raft_addr);
    if (rv != 0) {
        fl_errf(errmsg, FL_ERAFT, "raft_init: %s", raft_errmsg(&p->raft));
        raft_uv_close(&p->io);
        rg_transport_close(&p->transport);
        rv = FL_ERAFT;
        goto err;
    }
    p->raft.tracer = rg_trace_tracer();
    rg_apply_set_raft(&p->apply, &p->raft);
    raft_set_pre_vote(&p->raft, true);
    raft_set_election_timeout(&p->raft, p->o.election_timeout_ms);
    raft_set_heartbeat_timeout(&p->raft, p->o.heartbeat_ms);
    raft_set_snapshot_threshold(&p->raft, p->o.snapshot_threshold);
    raft_set_snapshot_trailing(&p->raft, p->o.snapshot_trailing);
    raft_set_max_inflight_entries(&p->raft, 1024);
    uv_check_init(loop, &p->check);
    uv_idle_init(loop, &p->idle);
    p->check.data = p;
    p->idle.data = p;
    *out = p;
    return FL_OK;
err:
    fsm_writer_close(&p->writer);
    fl_free(p);
    return rv;
}

int rg_repl_bootstrap(struct rg_repl *p, const struct rg_peer *peers, unsigned n, char *errmsg)
{
    struct raft_configuration conf;
    int rv;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < n; i++) {
        rv = raft_configuration_add(&conf, peers[i].id, peers[i].addr, peers[i].role);
        if (rv != 0) {
            raft_configuration_close(&conf);
            return fl_errf(errmsg, FL_EINVAL, "peer %llu (%s): %s", (unsigned long long)peers[i].id,
                           peers[i].addr, raft_strerror(rv));
        }
    }
    rv = raft_bootstrap(&p->raft, &conf);
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        return fl_errf(errmsg, FL_EEXIST, "this server already has Raft state");
    }
    if (rv != 0) {
        return fl_errf(errmsg, FL_ERAFT, "bootstrap: %s", raft_errmsg(&p->raft));
    }
    return FL_OK;
}

int rg_repl_start(struct rg_repl *p, char *errmsg)
{
    int rv = raft_start(&p->raft);
    if (rv != 0) {
        return fl_errf(errmsg, FL_ERAFT, "raft_start: %s (%s)", raft_strerror(rv),
                       raft_errmsg(&p->raft));
    }
    p->started = 1;
    uv_check_start(&p->check, check_cb);
    return FL_OK;
}

void rg_repl_on_leader(struct rg_repl *p, void (*cb)(void *data), void *data)
{
    p->on_leader = cb;
    p->on_leader_data = data;
}

static void maybe_closed(struct rg_repl *p)
{
    if (--p->handles_open > 0) {
        return;
    }
    fsm_close(&p->fsm);
    fsm_writer_close(&p->writer);
    if (p->close_cb != NULL) {
        p->close_cb(p->close_data);
    }
    fl_free(p);
}

static void handle_closed(uv_handle_t *h)
{
    maybe_closed(h->data);
}

static void raft_closed(struct raft *r)
{
    struct rg_repl *p = (struct rg_repl *)((char *)r - offsetof(struct rg_repl, raft));
    raft_uv_close(&p->io);
    rg_transport_close(&p->transport);
    maybe_closed(p);
}

void rg_repl_close(struct rg_repl *p, void (*cb)(void *data), void *data)
{
    p->closing = 1;
    p->close_cb = cb;
    p->close_data = data;
    /* Queued operations never reached raft. */
    fail_ops(p->ops, p->n_ops, FL_ESHUTDOWN);
    fl_free(p->ops);
    p->ops = NULL;
    p->n_ops = p->cap_ops = 0;
    while (p->readers != NULL) {
        struct waiter *w = p->readers;
        p->readers = w->next;
        w->cb(w->data, FL_ESHUTDOWN);
        fl_free(w);
    }
    p->readers_tail = &p->readers;
    p->handles_open = 3;
    uv_close((uv_handle_t *)&p->check, handle_closed);
    uv_close((uv_handle_t *)&p->idle, handle_closed);
    /* raft_close fails pending requests (apply_cb/barrier_cb) first. */
    raft_close(&p->raft, raft_closed);
}

/* ---- status --------------------------------------------------------- */

void rg_repl_status(struct rg_repl *p, struct rg_status *s)
{
    raft_id lid = 0;
    const char *laddr = NULL;
    memset(s, 0, sizeof *s);
    s->id = p->o.id;
    s->state = raft_state(&p->raft);
    s->ready = p->ready && s->state == RAFT_LEADER;
    raft_leader(&p->raft, &lid, &laddr);
    s->leader_id = lid;
    if (laddr != NULL) {
        snprintf(s->leader_addr, sizeof s->leader_addr, "%s", laddr);
    }
    s->term = raft_current_term(&p->raft);
    s->commit_index = raft_commit_index(&p->raft);
    s->applied_index = raft_last_applied(&p->raft);
    s->last_index = raft_last_index(&p->raft);
    s->n_members = p->raft.configuration.n;
    s->role = member_role(p, p->o.id);
    s->in_cluster = s->role >= 0;
    s->conf_committed_index = p->raft.configuration_committed_index;
    s->conf_uncommitted_index = p->raft.configuration_uncommitted_index;
    s->promotee_id = s->state == RAFT_LEADER ? p->raft.leader_state.promotee_id : 0;
    s->n_batches = p->n_batches;
    s->n_proposed = p->n_proposed;
    s->links_established = p->transport.n_established;
    s->links_refused = p->transport.n_refused;
    s->links_broken = p->transport.n_broken;
    s->links_handshaking = p->transport.n_handshaking;
    s->links_timeouts = p->transport.n_handshake_timeouts;
    s->raft_bytes_sent = p->transport.bytes_sent;
    s->raft_bytes_received = p->transport.bytes_received;
    s->wire_bytes_sent = p->transport.wire_sent;
    s->wire_bytes_received = p->transport.wire_received;
}

int rg_repl_member(struct rg_repl *p, unsigned i, struct rg_peer *out)
{
    if (i >= p->raft.configuration.n) {
        return FL_ENOTFOUND;
    }
    out->id = p->raft.configuration.servers[i].id;
    snprintf(out->addr, sizeof out->addr, "%s", p->raft.configuration.servers[i].address);
    out->role = p->raft.configuration.servers[i].role;
    return FL_OK;
}

struct fsm *rg_repl_fsm(struct rg_repl *p)
{
    return &p->fsm;
}

void rg_repl_flush(struct rg_repl *p)
{
    rg_apply_flush(&p->apply);
}

int rg_repl_subscribe(struct rg_repl *p, rg_effect_fn fn, void *arg)
{
    return rg_apply_subscribe(&p->apply, fn, arg);
}

void rg_repl_unsubscribe(struct rg_repl *p, rg_effect_fn fn, void *arg)
{
    rg_apply_unsubscribe(&p->apply, fn, arg);
}
