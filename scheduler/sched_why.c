/* sched_why: the reasons behind a waiting unit, for `flotilla task why`.
 *
 * A diagnostic, called for one unit at a time: it favours a readable answer
 * over speed (O(N * C^2 * L) for C constraints and L labels per node). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "scheduler/sched_int.h"

struct line {
    char *buf;
    size_t len, size;
    int parts; /* items written since the last "; " section */
};

static void put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (l->len + 1 >= l->size) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(l->buf + l->len, l->size - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        l->len += (size_t)n;
    }
    if (l->len >= l->size) {
        l->len = l->size - 1;
    }
}

/* One "N reason" item; the first item of the list carries the noun. */
static void item(struct line *l, unsigned n, const char *reason)
{
    if (n == 0) {
        return;
    }
    if (l->parts++ == 0) {
        put(l, "%u node%s %s", n, n == 1 ? "" : "s", reason);
    } else {
        put(l, ", %u %s", n, reason);
    }
}

/* The mismatches, per constraint: each node is charged to the first
 * constraint it fails. */
static void mismatch_items(struct line *l, const struct sched_node *nodes, unsigned n_nodes,
                           const struct sched_unit *u)
{
    for (unsigned j = 0; j < u->n_constraints; j++) {
        const char *c = u->constraints != NULL ? u->constraints[j] : NULL;
        unsigned n = 0;
        char reason[160];
        for (unsigned i = 0; i < n_nodes; i++) {
            n += sched__first_mismatch(&nodes[i], u) == j;
        }
        snprintf(reason, sizeof reason, "not matching %s", c != NULL ? c : "(null)");
        item(l, n, reason);
    }
}

static void count(const struct sched_node *nodes, unsigned n_nodes, const struct sched_unit *u,
                  struct sched_why *w)
{
    for (unsigned i = 0; i < n_nodes; i++) {
        const struct sched_node *n = &nodes[i];
        if (!sched_node_matches(n, u)) {
            w->constraint_mismatch++;
        } else if (n->cap == 0) {
            w->cap_zero++;
        } else if (n->draining) {
            w->draining++;
        } else if (!n->connected) {
            w->disconnected++;
        } else if (n->running >= n->cap) {
            w->full++;
        } else {
            w->eligible_free++;
        }
    }
}

void sched_why(const struct sched_node *nodes, unsigned n_nodes, const struct sched_unit *unit,
               uint64_t now_ms, struct sched_why *out)
{
    struct line l;
    if (unit == NULL || out == NULL) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (nodes == NULL) {
        n_nodes = 0;
    }
    out->n_nodes = n_nodes;
    out->backoff = now_ms < unit->not_before_ms;
    count(nodes, n_nodes, unit, out);

    l.buf = out->summary;
    l.len = 0;
    l.size = sizeof out->summary;
    l.parts = 0;
    put(&l, "%s: ", out->backoff || out->eligible_free == 0 ? "waiting" : "placeable");
    if (out->backoff) {
        put(&l, "retry backoff, %llu ms left; ",
            (unsigned long long)(unit->not_before_ms - now_ms));
    }
    if (n_nodes == 0) {
        put(&l, "no nodes in the cluster");
        return;
    }
    if (out->eligible_free > 0) {
        put(&l, "%u node%s ha%s room", out->eligible_free, out->eligible_free == 1 ? "" : "s",
            out->eligible_free == 1 ? "s" : "ve");
        if (out->eligible_free == n_nodes) {
            return;
        }
        put(&l, "; ");
    }
    item(&l, out->full, "full");
    item(&l, out->draining, "draining");
    item(&l, out->cap_zero, "drained (cap 0)");
    item(&l, out->disconnected, "disconnected");
    if (out->constraint_mismatch > 0) {
        mismatch_items(&l, nodes, n_nodes, unit);
    }
}
