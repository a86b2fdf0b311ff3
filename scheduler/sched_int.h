/* scheduler/ — private declarations shared by the files of the module.
 *
 * Not part of the contract: only the .c files of scheduler/ include this. */
#ifndef FL_SCHEDULER_SCHED_INT_H
#define FL_SCHEDULER_SCHED_INT_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler/sched.h"

enum sched__op {
    SCHED__HAS, /* "k"    */
    SCHED__EQ,  /* "k=v"  */
    SCHED__NE   /* "k!=v" */
};

/* A parsed constraint or label. key points into the parsed string (klen
 * bytes, not terminated there); val is the NUL-terminated tail of the string
 * (NULL for SCHED__HAS). Valid only while the string lives. */
struct sched__cons {
    const char *key;
    size_t klen;
    enum sched__op op;
    const char *val;
};

/* Parse `s` as a constraint (is_label 0) or a label (is_label 1, which
 * accepts only "k=v"). FL_OK or FL_EINVAL with the reason in errmsg (may be
 * NULL). */
int sched__parse(const char *s, int is_label, struct sched__cons *out, char *errmsg);

/* 1 if the parsed constraint holds for n's labels. */
int sched__cons_match(const struct sched__cons *c, const struct sched_node *n);

/* Index (0-based) of the first constraint of u that n does not satisfy (an
 * invalid constraint never is), or u->n_constraints when all hold. */
unsigned sched__first_mismatch(const struct sched_node *n, const struct sched_unit *u);

/* ------------------------------------------------------------ sched_heap.c
 *
 * An indexed binary heap of node indices for one sched_place call, best node
 * at the root under the strategy (sched.h). */

#define SCHED__NONE 0xffffffffu

/* Per-node state of one call. */
struct sched__slot {
    uint32_t cap, used; /* used = running + placed in this call */
    uint32_t tie;       /* final tiebreak rank (strategy-specific), unique */
    uint32_t id_rank;   /* rank in (id, index) order, unique */
};

struct sched__heap {
    const struct sched__slot *s; /* keys, shared by every heap of the call */
    int pack;                    /* SCHED_PACK order, else SCHED_SPREAD */
    unsigned *h;                 /* h[0..n): node indices */
    uint32_t *pos;               /* pos[node]: position in h, SCHED__NONE if absent */
    unsigned n;
};

/* 1 if node a goes strictly before node b. Both must have room. */
int sched__better(const struct sched__slot *s, int pack, unsigned a, unsigned b);

/* Order h[0..n) into a heap and fill pos for its nodes (pos of other nodes
 * must already be SCHED__NONE). */
void sched__heap_build(struct sched__heap *q);

/* Node's used count grew by one and it still has room: restore the order. */
void sched__heap_fix(struct sched__heap *q, unsigned node);

/* Take node out (it is full). */
void sched__heap_remove(struct sched__heap *q, unsigned node);

/* The best node of q with ok(arg, node), or SCHED__NONE: a best-first walk
 * from the root, O(r log r) for r nodes visited. fr: scratch of q->n. */
unsigned sched__heap_best(const struct sched__heap *q, int (*ok)(const void *arg, unsigned node),
                          const void *arg, unsigned *fr);

#endif
