/* fsm/ — the task and node records the unit commands of an entry keep
 * rewriting, decoded once and written back once.
 *
 * A dispatcher's entry holds up to hundreds of UNIT_ASSIGN and UNIT_RESULT
 * commands, most of them for one task over a few nodes, and each reads and
 * rewrites its task and its node. fsm/sched.c reads and writes those two
 * tables only through the calls below: a record is decoded on its first read
 * and kept; a write changes the kept copy. fsm__recs_flush writes the changed
 * ones back (validated and encoded as every record is) and forgets them all.
 * fsm_apply flushes before every command that is not a unit assignment or
 * result, and at the end of every entry; fsm__apply_sched flushes before a
 * job's finished runs are handled and after every other scheduling command;
 * fsm_flush flushes before it commits. So the store holds every write before
 * anything else reads these tables, and the entry's result is the same bytes
 * as writing each record at once. */
#include <stddef.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "fsm/fsm_int.h"

#define RECS_NODES 16

enum { EMPTY, CLEAN, DIRTY };

struct recs_node {
    int state;
    struct store_node n;
};

struct fsm_recs {
    int task_state;
    struct store_task task;
    struct fl_buf spec; /* the kept task's spec: task.spec points here */
    unsigned n_nodes;
    struct recs_node nodes[RECS_NODES];
};

int fsm__recs_init(struct fsm *f)
{
    f->recs = fl_calloc(1, sizeof *f->recs);
    return f->recs != NULL ? FL_OK : FL_ENOMEM;
}

void fsm__recs_close(struct fsm *f)
{
    if (f->recs != NULL) {
        fl_buf_close(&f->recs->spec);
        fl_free(f->recs);
        f->recs = NULL;
    }
}

/* Keep a copy of t, its spec in our buffer. */
static int keep_task(struct fsm_recs *r, const struct store_task *t, int state)
{
    const uint8_t *spec = t->spec;
    size_t n = t->spec_len;
    if (spec == r->spec.data && spec != NULL && n <= r->spec.len) {
        r->spec.len = n; /* the kept spec itself (or its start) */
    } else {
        fl_buf_reset(&r->spec);
        if (n > 0 && fl_buf_append(&r->spec, spec, n) != FL_OK) {
            r->task_state = EMPTY;
            return FL_ENOMEM;
        }
    }
    if (t != &r->task) {
        r->task = *t;
    }
    r->task.spec = n > 0 ? r->spec.data : NULL;
    r->task.spec_len = n;
    r->task_state = state;
    return FL_OK;
}

static int write_task(struct fsm *f)
{
    struct fsm_recs *r = f->recs;
    int rv = r->task_state == DIRTY ? store_task_put(f->txn, &r->task) : FL_OK;
    r->task_state = EMPTY;
    return rv;
}

int fsm__task_get(struct fsm *f, const char *id, struct store_task *out)
{
    struct fsm_recs *r = f->recs;
    int rv;
    if (r->task_state != EMPTY && strcmp(r->task.id, id) == 0) {
        *out = r->task;
        return FL_OK;
    }
    if ((rv = write_task(f)) != FL_OK || (rv = store_task_get(f->txn, id, out)) != FL_OK) {
        return rv;
    }
    if ((rv = keep_task(r, out, CLEAN)) != FL_OK) {
        return rv;
    }
    out->spec = r->task.spec; /* ours: the store's pages move as it is written */
    return FL_OK;
}

int fsm__task_put(struct fsm *f, const struct store_task *t)
{
    struct fsm_recs *r = f->recs;
    int rv;
    if (r->task_state != EMPTY && strcmp(r->task.id, t->id) == 0) {
        return keep_task(r, t, DIRTY);
    }
    if ((rv = write_task(f)) != FL_OK) {
        return rv;
    }
    return keep_task(r, t, DIRTY);
}

static struct recs_node *find_node(struct fsm_recs *r, const char *id)
{
    for (unsigned i = 0; i < r->n_nodes; i++) {
        if (strcmp(r->nodes[i].n.id, id) == 0) {
            return &r->nodes[i];
        }
    }
    return NULL;
}

static int write_nodes(struct fsm *f)
{
    struct fsm_recs *r = f->recs;
    int rv = FL_OK;
    for (unsigned i = 0; i < r->n_nodes && rv == FL_OK; i++) {
        if (r->nodes[i].state == DIRTY) {
            rv = store_node_put(f->txn, &r->nodes[i].n);
        }
    }
    r->n_nodes = 0;
    return rv;
}

/* A slot for one more node: the kept ones are written back when full. */
static struct recs_node *new_node(struct fsm *f, int *rv)
{
    struct fsm_recs *r = f->recs;
    if (r->n_nodes == RECS_NODES && (*rv = write_nodes(f)) != FL_OK) {
        return NULL;
    }
    *rv = FL_OK;
    return &r->nodes[r->n_nodes++];
}

int fsm__node_ref(struct fsm *f, const char *id, struct store_node **out)
{
    struct recs_node *k = find_node(f->recs, id);
    int rv;
    if (k == NULL) {
        if ((k = new_node(f, &rv)) == NULL) {
            return rv;
        }
        if ((rv = store_node_get(f->txn, id, &k->n)) != FL_OK) {
            f->recs->n_nodes--; /* the slot just taken */
            return rv;
        }
        k->state = CLEAN;
    }
    *out = &k->n;
    return FL_OK;
}

void fsm__node_changed(struct fsm *f, struct store_node *n)
{
    struct recs_node *k = (struct recs_node *)(void *)((char *)n - offsetof(struct recs_node, n));
    (void)f;
    k->state = DIRTY;
}

int fsm__recs_flush(struct fsm *f)
{
    int rv, rv2;
    if (f->recs == NULL || f->txn == NULL) {
        return FL_OK;
    }
    rv = write_task(f);
    rv2 = write_nodes(f);
    return rv != FL_OK ? rv : rv2;
}

void fsm__recs_drop(struct fsm *f)
{
    if (f->recs != NULL) {
        f->recs->task_state = EMPTY;
        f->recs->n_nodes = 0;
    }
}
