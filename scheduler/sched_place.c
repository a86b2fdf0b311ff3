/* sched_place: greedy placement in queue order (contract in sched.h).
 *
 * Shape of one call:
 *   - every node with room goes into one heap ordered by the strategy (best
 *     node at the root, sched_heap.c); a node leaves it when it becomes full;
 *   - units are visited in (priority desc, seq asc, index asc) order; each
 *     takes the best node it may use, and that node is re-keyed;
 *   - units with the same constraint list share a "class", evaluated the first
 *     time a unit of it is visited: a bitmap of matching nodes, and the number
 *     of matching nodes with room (kept exact as nodes fill), so a unit whose
 *     class has no room left is rejected in O(1).
 *
 * Finding the best node of a class. The empty list: the root of the node
 * heap. A narrow class (at most NARROW nodes with room): a scan of its
 * members. A broad class: its own heap of its members, kept in step with the
 * node heap, so the answer is again a root. The node heap alone is not enough
 * there: a class's units load its nodes, under SPREAD they sink below every
 * node outside the class, and a walk from the root would cross all of those
 * for each placement. Every placement re-keys its node in each class heap
 * that holds it, so the number of class heaps per call is bounded
 * (MAX_HEAPS); broad classes beyond it fall back on a best-first walk of the
 * node heap, which is correct, only slower. */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "scheduler/sched_int.h"

#define NONE      SCHED__NONE
#define NARROW    64 /* a class with at most this many nodes with room is scanned */
#define MAX_HEAPS 32 /* broad classes with their own heap, per call */
#define ALL       0u /* class 0: no constraints, every node matches */

struct cls {
    const char *const *cons;
    unsigned n_cons;
    uint64_t hash;
    uint64_t *bits;          /* matching nodes; NULL until evaluated */
    unsigned count;          /* matching nodes with room */
    unsigned *members;       /* narrow classes: matching nodes with room at evaluation */
    unsigned n_members;      /* (some may have filled up since) */
    struct sched__heap heap; /* broad classes: h != NULL */
};

struct by_id {
    const char *id;
    unsigned idx;
};

struct by_hash {
    uint64_t h;
    uint32_t id_rank, idx;
};

struct qent {
    int32_t priority;
    uint32_t idx;
    uint64_t seq;
};

struct ctx {
    const struct sched_node *nodes;
    unsigned n;
    int pack;
    struct sched__slot *s;
    struct sched__heap all; /* every node with room */
    unsigned *fr;           /* scratch for sched__heap_best */
    struct by_id *ids;      /* nodes in (id, index) order */
    struct cls *cls;
    unsigned n_cls;
    unsigned *evald, n_evald; /* evaluated classes other than ALL */
    unsigned heaped[MAX_HEAPS], n_heaped;
    uint32_t *table; /* class hash table: class index + 1, 0 = empty */
    unsigned table_mask;
    size_t words; /* uint64_t per class bitmap */
};

static int bit(const struct cls *c, unsigned node)
{
    return (c->bits[node / 64] >> (node % 64)) & 1;
}

static int has_room(const struct ctx *x, unsigned node)
{
    return x->all.pos[node] != NONE;
}

/* One more unit on node: re-key it in every heap that holds it, or take it
 * out of all of them and out of the class counts when it is full. */
static void charge(struct ctx *x, unsigned node)
{
    int full = ++x->s[node].used == x->s[node].cap;
    for (unsigned i = 0; i <= x->n_heaped; i++) {
        struct sched__heap *q = i == x->n_heaped ? &x->all : &x->cls[x->heaped[i]].heap;
        if (q->pos[node] == NONE) {
            continue;
        }
        if (full) {
            sched__heap_remove(q, node);
        } else {
            sched__heap_fix(q, node);
        }
    }
    for (unsigned i = 0; full && i < x->n_evald; i++) {
        struct cls *c = &x->cls[x->evald[i]];
        c->count -= (unsigned)bit(c, node);
    }
}

/* ------------------------------------------------------------ node ranks */

static int cmp_id(const void *a, const void *b)
{
    const struct by_id *x = a, *y = b;
    int r = strcmp(x->id, y->id);
    return r != 0 ? r : (x->idx > y->idx) - (x->idx < y->idx);
}

static int cmp_hash(const void *a, const void *b)
{
    const struct by_hash *x = a, *y = b;
    if (x->h != y->h) {
        return x->h < y->h ? -1 : 1;
    }
    return (x->id_rank > y->id_rank) - (x->id_rank < y->id_rank);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fill slots, rank ties and build the heap of nodes with room. */
static int nodes_init(struct ctx *x, uint64_t seed)
{
    struct by_hash *bh = NULL;
    for (unsigned i = 0; i < x->n; i++) {
        x->ids[i].id = x->nodes[i].id;
        x->ids[i].idx = i;
    }
    qsort(x->ids, x->n, sizeof *x->ids, cmp_id);
    for (unsigned r = 0; r < x->n; r++) {
        x->s[x->ids[r].idx].id_rank = r;
        x->s[x->ids[r].idx].tie = r;
    }
    if (x->pack && x->n > 0) {
        bh = fl_malloc(x->n * sizeof *bh);
        if (bh == NULL) {
            return FL_ENOMEM;
        }
        for (unsigned i = 0; i < x->n; i++) {
            bh[i].h = mix(seed ^ fnv(0xcbf29ce484222325ull, x->nodes[i].id));
            bh[i].id_rank = x->s[i].id_rank;
            bh[i].idx = i;
        }
        qsort(bh, x->n, sizeof *bh, cmp_hash);
        for (unsigned r = 0; r < x->n; r++) {
            x->s[bh[r].idx].tie = r;
        }
        fl_free(bh);
    }
    x->all.s = x->s;
    x->all.pack = x->pack;
    x->all.n = 0;
    for (unsigned i = 0; i < x->n; i++) {
        const struct sched_node *nd = &x->nodes[i];
        x->s[i].cap = nd->cap;
        x->s[i].used = nd->running;
        x->all.pos[i] = NONE;
        if (nd->cap > 0 && nd->running < nd->cap && nd->connected && !nd->draining) {
            x->all.h[x->all.n++] = i;
        }
    }
    sched__heap_build(&x->all);
    return FL_OK;
}

/* ------------------------------------------------------------ classes */

static uint64_t cons_hash(const struct sched_unit *u)
{
    uint64_t h = 0xcbf29ce484222325ull ^ u->n_constraints;
    for (unsigned j = 0; j < u->n_constraints; j++) {
        h = u->constraints[j] != NULL ? fnv(h, u->constraints[j]) : h ^ 0xffu;
        h = (h ^ 0x1f) * 0x100000001b3ull; /* separator: {"ab"} != {"a","b"} */
    }
    return h;
}

static int cons_equal(const struct cls *c, const struct sched_unit *u)
{
    if (c->n_cons != u->n_constraints) {
        return 0;
    }
    for (unsigned j = 0; j < c->n_cons; j++) {
        const char *a = c->cons[j], *b = u->constraints[j];
        if (a != b && (a == NULL || b == NULL || strcmp(a, b) != 0)) {
            return 0;
        }
    }
    return 1;
}

/* The class of u's constraint list, created on first sight. */
static unsigned class_of(struct ctx *x, const struct sched_unit *u)
{
    uint64_t h;
    unsigned i;
    if (u->n_constraints == 0) {
        return ALL;
    }
    h = cons_hash(u);
    for (i = (unsigned)h & x->table_mask; x->table[i] != 0; i = (i + 1) & x->table_mask) {
        struct cls *c = &x->cls[x->table[i] - 1];
        if (c->hash == h && cons_equal(c, u)) {
            return x->table[i] - 1;
        }
    }
    x->table[i] = x->n_cls + 1;
    memset(&x->cls[x->n_cls], 0, sizeof x->cls[0]);
    x->cls[x->n_cls].cons = u->constraints;
    x->cls[x->n_cls].n_cons = u->n_constraints;
    x->cls[x->n_cls].hash = h;
    return x->n_cls++;
}

/* A broad class's own heap: its matching nodes with room. */
static int class_heap(struct ctx *x, struct cls *c)
{
    struct sched__heap *q = &c->heap;
    q->s = x->s;
    q->pack = x->pack;
    q->h = fl_malloc((c->count + 1) * sizeof *q->h);
    q->pos = fl_malloc(x->n * sizeof *q->pos);
    if (q->h == NULL || q->pos == NULL) {
        return FL_ENOMEM;
    }
    for (unsigned i = 0; i < x->n; i++) {
        q->pos[i] = NONE;
    }
    for (unsigned i = 0; i < x->all.n; i++) {
        if (bit(c, x->all.h[i])) {
            q->h[q->n++] = x->all.h[i];
        }
    }
    sched__heap_build(q);
    x->heaped[x->n_heaped++] = (unsigned)(c - x->cls);
    return FL_OK;
}

/* Evaluate a class against the nodes with room (the others never get room
 * back within a call): one constraint at a time, clearing the nodes it rules
 * out. An invalid constraint rules out every node. */
static int class_eval(struct ctx *x, struct cls *c)
{
    const unsigned *h = x->all.h, hn = x->all.n;
    struct sched__cons k;
    x->evald[x->n_evald++] = (unsigned)(c - x->cls); /* freed by ctx_free from here on */
    c->bits = fl_calloc(x->words, sizeof *c->bits);
    if (c->bits == NULL) {
        return FL_ENOMEM;
    }
    for (unsigned i = 0; i < hn; i++) {
        c->bits[h[i] / 64] |= 1ull << (h[i] % 64);
    }
    for (unsigned j = 0; j < c->n_cons; j++) {
        int valid = sched__parse(c->cons[j], 0, &k, NULL) == FL_OK;
        for (unsigned i = 0; i < hn; i++) {
            if (bit(c, h[i]) && (!valid || !sched__cons_match(&k, &x->nodes[h[i]]))) {
                c->bits[h[i] / 64] &= ~(1ull << (h[i] % 64));
            }
        }
    }
    for (unsigned i = 0; i < hn; i++) {
        c->count += (unsigned)bit(c, h[i]);
    }
    if (c->count > NARROW) {
        return x->n_heaped < MAX_HEAPS ? class_heap(x, c) : FL_OK;
    }
    c->members = fl_malloc((c->count + 1) * sizeof *c->members);
    if (c->members == NULL) {
        return FL_ENOMEM;
    }
    for (unsigned i = 0; i < hn; i++) {
        if (bit(c, h[i])) {
            c->members[c->n_members++] = h[i];
        }
    }
    return FL_OK;
}

/* ------------------------------------------------------------ picking a node */

/* The avoid node as a range of id ranks [*lo, *hi) (empty when none: ids
 * are not unique by contract, so every node of that name is avoided). */
static void avoid_range(const struct ctx *x, const char *id, unsigned *lo, unsigned *hi)
{
    unsigned a = 0, b = x->n;
    *lo = *hi = 0;
    if (id == NULL) {
        return;
    }
    while (a < b) {
        unsigned m = a + (b - a) / 2;
        if (strcmp(x->ids[m].id, id) < 0) {
            a = m + 1;
        } else {
            b = m;
        }
    }
    *lo = a;
    while (a < x->n && strcmp(x->ids[a].id, id) == 0) {
        a++;
    }
    *hi = a;
}

struct want {
    const struct ctx *x;
    const struct cls *c; /* NULL: no constraints */
    unsigned alo, ahi;   /* avoided id ranks */
};

static int usable(const void *arg, unsigned node)
{
    const struct want *w = arg;
    unsigned r = w->x->s[node].id_rank;
    return (w->c == NULL || bit(w->c, node)) && (r < w->alo || r >= w->ahi);
}

static int better(const struct ctx *x, unsigned a, unsigned b)
{
    return sched__better(x->s, x->pack, a, b);
}

/* Best among the avoided nodes that have room and match: the fallback. */
static unsigned avoided_best(const struct ctx *x, const struct want *w, unsigned *n_avoided)
{
    unsigned best = NONE;
    *n_avoided = 0;
    for (unsigned r = w->alo; r < w->ahi; r++) {
        unsigned node = x->ids[r].idx;
        if (has_room(x, node) && (w->c == NULL || bit(w->c, node))) {
            ++*n_avoided;
            if (best == NONE || better(x, node, best)) {
                best = node;
            }
        }
    }
    return best;
}

static unsigned pick(struct ctx *x, const struct want *w)
{
    const struct cls *c = w->c;
    unsigned count = c == NULL ? x->all.n : c->count, n_avoided, fallback, best = NONE;

    if (count == 0) {
        return NONE;
    }
    fallback = avoided_best(x, w, &n_avoided);
    if (n_avoided == count) {
        return fallback; /* the avoid node is the only fit */
    }
    if (c != NULL && c->members != NULL) {
        for (unsigned i = 0; i < c->n_members; i++) {
            unsigned node = c->members[i];
            if (has_room(x, node) && usable(w, node) && (best == NONE || better(x, node, best))) {
                best = node;
            }
        }
        return best;
    }
    return sched__heap_best(c != NULL && c->heap.h != NULL ? &c->heap : &x->all, usable, w, x->fr);
}

/* ------------------------------------------------------------ the call */

static int cmp_q(const void *a, const void *b)
{
    const struct qent *x = a, *y = b;
    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }
    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Units in queue order; no sort when the caller already gave them so. */
static struct qent *queue_order(const struct sched_unit *units, unsigned n)
{
    struct qent *q = fl_malloc((n + 1) * sizeof *q);
    int sorted = 1;
    if (q == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        q[i].priority = units[i].priority;
        q[i].seq = units[i].seq;
        q[i].idx = i;
        if (i > 0 && cmp_q(&q[i - 1], &q[i]) > 0) {
            sorted = 0;
        }
    }
    if (!sorted) {
        qsort(q, n, sizeof *q, cmp_q);
    }
    return q;
}

static int ctx_alloc(struct ctx *x, unsigned n_units)
{
    size_t n = (size_t)x->n + 1, tsize = 16;
    while (tsize < 2 * (size_t)n_units) {
        tsize *= 2;
    }
    x->words = (x->n + 63) / 64 + 1;
    x->s = fl_malloc(n * sizeof *x->s);
    x->all.h = fl_malloc(n * sizeof *x->all.h);
    x->all.pos = fl_malloc(n * sizeof *x->all.pos);
    x->fr = fl_malloc(n * sizeof *x->fr);
    x->ids = fl_malloc(n * sizeof *x->ids);
    x->cls = fl_malloc(((size_t)n_units + 1) * sizeof *x->cls);
    x->evald = fl_malloc(((size_t)n_units + 1) * sizeof *x->evald);
    x->table = fl_calloc(tsize, sizeof *x->table);
    x->table_mask = (unsigned)(tsize - 1);
    x->n_cls = 1; /* ALL */
    if (x->s == NULL || x->all.h == NULL || x->all.pos == NULL || x->fr == NULL || x->ids == NULL ||
        x->cls == NULL || x->evald == NULL || x->table == NULL) {
        return FL_ENOMEM;
    }
    memset(&x->cls[ALL], 0, sizeof x->cls[ALL]);
    return FL_OK;
}

static void ctx_free(struct ctx *x)
{
    for (unsigned i = 0; i < x->n_evald; i++) {
        struct cls *c = &x->cls[x->evald[i]];
        fl_free(c->bits);
        fl_free(c->members);
        fl_free(c->heap.h);
        fl_free(c->heap.pos);
    }
    fl_free(x->s);
    fl_free(x->all.h);
    fl_free(x->all.pos);
    fl_free(x->fr);
    fl_free(x->ids);
    fl_free(x->cls);
    fl_free(x->evald);
    fl_free(x->table);
}

static int args_valid(const struct sched_node *nodes, unsigned n_nodes,
                      const struct sched_unit *units, unsigned n_units,
                      const struct sched_assignment *out, unsigned max_out)
{
    if ((n_nodes > 0 && nodes == NULL) || (n_units > 0 && units == NULL) ||
        (max_out > 0 && out == NULL)) {
        return 0;
    }
    for (unsigned i = 0; i < n_nodes; i++) {
        if (nodes[i].id == NULL || (nodes[i].n_labels > 0 && nodes[i].labels == NULL)) {
            return 0;
        }
    }
    for (unsigned i = 0; i < n_units; i++) {
        if (units[i].n_constraints > 0 && units[i].constraints == NULL) {
            return 0;
        }
    }
    return 1;
}

/* Visit the queue and place; the last visited unit's class is reused for the
 * next one when both share the constraint array (units of one task do). */
static int place_all(struct ctx *x, const struct sched_unit *units, const struct qent *q,
                     unsigned n_units, uint64_t now_ms, struct sched_assignment *out,
                     unsigned max_out, unsigned *n_out)
{
    const struct sched_unit *prev = NULL;
    struct want w = {x, NULL, 0, 0};
    unsigned k = 0;
    int rv;

    for (unsigned i = 0; i < n_units && k < max_out && x->all.n > 0; i++) {
        const struct sched_unit *u = &units[q[i].idx];
        unsigned node;
        if (now_ms < u->not_before_ms) {
            continue;
        }
        if (prev == NULL || u->constraints != prev->constraints ||
            u->n_constraints != prev->n_constraints) {
            unsigned c = class_of(x, u);
            w.c = c == ALL ? NULL : &x->cls[c];
            if (w.c != NULL && w.c->bits == NULL && (rv = class_eval(x, &x->cls[c])) != FL_OK) {
                return rv;
            }
        }
        prev = u;
        avoid_range(x, u->avoid_node, &w.alo, &w.ahi);
        node = pick(x, &w);
        if (node == NONE) {
            continue;
        }
        out[k].unit_ref = u->ref;
        out[k].node_index = node;
        k++;
        charge(x, node);
    }
    *n_out = k;
    return FL_OK;
}

int sched_place(const struct sched_node *nodes, unsigned n_nodes, const struct sched_unit *units,
                unsigned n_units, enum sched_strategy strategy, uint64_t now_ms, uint64_t seed,
                struct sched_assignment *out, unsigned max_out, unsigned *n_out)
{
    struct ctx x;
    struct qent *q = NULL;
    int rv;

    if (n_out == NULL) {
        return FL_EINVAL;
    }
    *n_out = 0;
    if (!args_valid(nodes, n_nodes, units, n_units, out, max_out)) {
        return FL_EINVAL;
    }
    if (n_nodes == 0 || n_units == 0 || max_out == 0) {
        return FL_OK;
    }
    memset(&x, 0, sizeof x);
    x.nodes = nodes;
    x.n = n_nodes;
    x.pack = strategy == SCHED_PACK;
    rv = ctx_alloc(&x, n_units);
    if (rv == FL_OK) {
        rv = nodes_init(&x, seed);
    }
    if (rv == FL_OK && x.all.n > 0) {
        q = queue_order(units, n_units);
        rv = q == NULL ? FL_ENOMEM : place_all(&x, units, q, n_units, now_ms, out, max_out, n_out);
    }
    if (rv != FL_OK) {
        *n_out = 0;
    }
    fl_free(q);
    ctx_free(&x);
    return rv;
}
