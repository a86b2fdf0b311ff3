/* The node heap of sched_place (declared in sched_int.h).
 *
 * Keys only ever move one way within a call: a placement raises a node's load,
 * so under SPREAD the node sinks and under PACK it rises, and sched__heap_fix
 * needs a single sift. */
#include "scheduler/sched_int.h"

int sched__better(const struct sched__slot *s, int pack, unsigned a, unsigned b)
{
    const struct sched__slot *sa = &s[a], *sb = &s[b];
    uint64_t la = (uint64_t)sa->used * sb->cap, lb = (uint64_t)sb->used * sa->cap;
    uint32_t fa = sa->cap - sa->used, fb = sb->cap - sb->used;
    if (la != lb) {
        return pack ? la > lb : la < lb; /* load ratio, cross-multiplied */
    }
    if (fa != fb) {
        return pack ? fa < fb : fa > fb;
    }
    return sa->tie < sb->tie;
}

static int before(const struct sched__heap *q, unsigned a, unsigned b)
{
    return sched__better(q->s, q->pack, a, b);
}

static void set(struct sched__heap *q, unsigned p, unsigned node)
{
    q->h[p] = node;
    q->pos[node] = p;
}

static void sift_up(struct sched__heap *q, unsigned p)
{
    unsigned node = q->h[p];
    while (p > 0 && before(q, node, q->h[(p - 1) / 2])) {
        set(q, p, q->h[(p - 1) / 2]);
        p = (p - 1) / 2;
    }
    set(q, p, node);
}

static void sift_down(struct sched__heap *q, unsigned p)
{
    unsigned node = q->h[p];
    for (;;) {
        unsigned c = 2 * p + 1;
        if (c >= q->n) {
            break;
        }
        if (c + 1 < q->n && before(q, q->h[c + 1], q->h[c])) {
            c++;
        }
        if (!before(q, q->h[c], node)) {
            break;
        }
        set(q, p, q->h[c]);
        p = c;
    }
    set(q, p, node);
}

void sched__heap_build(struct sched__heap *q)
{
    for (unsigned p = 0; p < q->n; p++) {
        q->pos[q->h[p]] = p;
    }
    for (unsigned p = q->n / 2; p-- > 0;) {
        sift_down(q, p);
    }
}

void sched__heap_fix(struct sched__heap *q, unsigned node)
{
    if (q->pack) {
        sift_up(q, q->pos[node]);
    } else {
        sift_down(q, q->pos[node]);
    }
}

void sched__heap_remove(struct sched__heap *q, unsigned node)
{
    unsigned p = q->pos[node], moved;
    q->pos[node] = SCHED__NONE;
    if (p == --q->n) {
        return;
    }
    moved = q->h[q->n];
    set(q, p, moved);
    sift_down(q, p);
    if (q->pos[moved] == p) {
        sift_up(q, p);
    }
}

/* The walk's frontier: a heap of positions of q, ordered by their nodes. */
static void fr_push(const struct sched__heap *q, unsigned *fr, unsigned *fn, unsigned p)
{
    unsigned i = (*fn)++;
    while (i > 0 && before(q, q->h[p], q->h[fr[(i - 1) / 2]])) {
        fr[i] = fr[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    fr[i] = p;
}

static unsigned fr_pop(const struct sched__heap *q, unsigned *fr, unsigned *fn)
{
    unsigned top = fr[0], last = fr[--*fn], i = 0;
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= *fn) {
            break;
        }
        if (c + 1 < *fn && before(q, q->h[fr[c + 1]], q->h[fr[c]])) {
            c++;
        }
        if (!before(q, q->h[fr[c]], q->h[last])) {
            break;
        }
        fr[i] = fr[c];
        i = c;
    }
    fr[i] = last;
    return top;
}

/* Positions leave the frontier in strategy order and enter it only after
 * their parent, so the first acceptable node met is the best acceptable one. */
unsigned sched__heap_best(const struct sched__heap *q, int (*ok)(const void *arg, unsigned node),
                          const void *arg, unsigned *fr)
{
    unsigned fn = 0, p = 0;
    if (q->n == 0) {
        return SCHED__NONE;
    }
    for (;;) {
        if (ok(arg, q->h[p])) {
            return q->h[p];
        }
        if (2 * p + 1 < q->n) {
            fr_push(q, fr, &fn, 2 * p + 1);
        }
        if (2 * p + 2 < q->n) {
            fr_push(q, fr, &fn, 2 * p + 2);
        }
        if (fn == 0) {
            return SCHED__NONE;
        }
        p = fr_pop(q, fr, &fn);
    }
}
