/* scheduler/ — the pure placement core.
 *
 * DESIGN.md, "Data flow of one task", step 3: "The leader's scheduler picks
 * runnable units in priority/FIFO order and eligible nodes with free cap
 * (cap - assigned > 0, not draining, constraints match, connected)". This
 * module makes exactly that decision and nothing else: it reads a view of
 * nodes and units that the caller builds from replicated state, the
 * leader-stamped time and a seed, and returns assignments. No I/O, no clock,
 * no global state; every call is independent, thread-safe on distinct
 * outputs, and deterministic for the same inputs and seed.
 *
 * Ownership: every pointer argument is borrowed for the duration of the call
 * only; nothing is retained. Scratch memory comes from fl_malloc and is freed
 * before returning.
 *
 * Labels and constraints (SCHED_TEXT_MAX characters at most, no spaces):
 *   label       "k=v"    the node has label key k with value v
 *   constraint  "k=v"    some label of the node is exactly k=v
 *               "k!=v"   no label of the node is k=v (absent or different)
 *               "k"      the node has some label with key k
 * Keys are [A-Za-z0-9._/-]+, values [A-Za-z0-9._/:@+-]+ (never empty). A
 * node may carry several labels with the same key; the rules above then read
 * "some" and "no" literally. A unit matches a node when every one of its
 * constraints does (no constraints: every node). */
#ifndef FL_SCHEDULER_SCHED_H
#define FL_SCHEDULER_SCHED_H

#include <stdint.h>

#define SCHED_TEXT_MAX      127   /* longest label or constraint, in bytes */
#define SCHED_UNIT_SIZE_MAX 10000 /* largest unit_size accepted by sched_split */

struct sched_node {
    const char *id;   /* node name, not NULL */
    uint32_t cap;     /* running-unit cap; 0 = drained (takes nothing) */
    uint32_t running; /* units assigned to it and not finished (replicated state) */
    int draining;     /* drain flag: takes nothing new */
    int connected;    /* its agent is connected to the leader now */
    unsigned n_labels;
    const char *const *labels; /* "k=v"; NULL entries are ignored */
};

struct sched_unit {
    uint32_t ref;     /* caller's handle (index into its own arrays), copied to the output */
    int32_t priority; /* higher first */
    uint64_t seq;     /* FIFO order within a priority (submission order) */
    unsigned n_constraints;
    const char *const *constraints; /* "k=v", "k!=v" or "k" (see above) */
    uint64_t not_before_ms;         /* retry backoff: not placeable while now_ms < this */
    const char *avoid_node;         /* node id of the last failed attempt, or NULL: used only if no
                                     * other node fits */
};

enum sched_strategy {
    /* Least loaded first: lowest (running + placed) / cap, ties by most free
     * slots, then by node id (strcmp), then by array index. */
    SCHED_SPREAD,
    /* Fill the most loaded node that still has room first: highest
     * (running + placed) / cap, ties by fewest free slots, then by a hash of
     * (seed, node id), then by node id, then by array index. */
    SCHED_PACK
};

struct sched_assignment {
    uint32_t unit_ref;   /* sched_unit.ref */
    unsigned node_index; /* index into the nodes array */
};

/* Place as many units as possible.
 *
 * A node has room when cap > 0, it is connected and not draining, and
 * running + (units placed on it in this call) < cap; no placement ever
 * exceeds a cap. Units are taken in (priority desc, seq asc, array index asc)
 * order, whatever order the caller gives them in; a unit in backoff
 * (now_ms < not_before_ms) is skipped. Each unit goes to the best node (by
 * `strategy`) among those with room that match its constraints, other than
 * its avoid_node; if there is none, to its avoid_node when that has room and
 * matches; otherwise it stays unplaced and the next unit is tried.
 *
 * Fairness rule — strict priority, no overtaking: every unit costs one slot,
 * so a slot that frees up is offered to the units in queue order, and it goes
 * to the first one that may use it. A unit that fits nowhere does not block
 * the units behind it, but only the nodes it cannot use remain for them: after
 * the call (unless out filled up), every node that matches an unplaced,
 * non-backoff unit U is full, and full only of units ordered before U. Because the caller passes
 * the queue from its head each round, U keeps its place across rounds too: the next slot that frees
 * on a node U can use goes to U (or to a unit ahead of it), never to one behind it. The rule is
 * greedy per unit: it does not move an earlier, flexible unit off a node to make room for a later,
 * pickier one.
 *
 * Output: out[0..*n_out) in placement order (the queue order above), at most
 * max_out entries; placement stops when out is full or no node has room.
 * Deterministic: the same arguments give the same output; the seed matters
 * only for the SCHED_PACK ties described above.
 *
 * Cost: O(U log U + N log N) to prepare (no sort when units already come in
 * queue order), then O(log N) per unconstrained placement. Constraints are
 * evaluated once per node and distinct constraint list within a call (O(1)
 * lookup per unit). A unit whose list matches no node with room costs O(1);
 * a list matching at most 64 nodes with room costs a scan of those; a broader
 * one keeps its own node heap, O(log N) per placement — each placement
 * re-keys its node in every such heap that holds it, so only the first 32
 * broad lists of a call get one and later ones use a best-first walk of the
 * node heap (same result, slower when the list's nodes rank low).
 *
 * Returns FL_OK; FL_EINVAL if n_out is NULL, an array (nodes, units, out, a
 * node's labels, a unit's constraints) is NULL with a non-zero count, or a
 * node id is NULL; FL_ENOMEM if scratch memory cannot be
 * allocated. On error *n_out (when not NULL) is 0. */
int sched_place(const struct sched_node *nodes, unsigned n_nodes, const struct sched_unit *units,
                unsigned n_units, enum sched_strategy strategy, uint64_t now_ms, uint64_t seed,
                struct sched_assignment *out, unsigned max_out, unsigned *n_out);

/* Why can `unit` not be placed now? (`flotilla task why`.)
 *
 * Each node is counted under exactly one reason, the first that applies in
 * this order: constraint_mismatch, cap_zero, draining, disconnected, full
 * (running >= cap); the rest are eligible_free. So n_nodes == the sum of the
 * six counts. avoid_node excludes nothing (it is only a preference). backoff
 * is 1 when now_ms < not_before_ms. summary is one line, for example
 *   "waiting: 3 nodes full, 1 draining, 2 not matching role=web"
 *   "waiting: retry backoff, 1500 ms left; 2 nodes have room"
 *   "waiting: no nodes in the cluster"
 *   "placeable: 2 nodes have room; 1 node full"
 * (a placeable unit may still wait behind higher-priority units, and whether
 * dispatch is paused is for the caller to say). Never fails; with a NULL
 * unit or out it does nothing. */
struct sched_why {
    unsigned n_nodes, full, draining, cap_zero, disconnected, constraint_mismatch, eligible_free;
    int backoff;
    char summary[256];
};
void sched_why(const struct sched_node *nodes, unsigned n_nodes, const struct sched_unit *unit,
               uint64_t now_ms, struct sched_why *out);

/* Validate a constraint / a label (grammar above). Return FL_OK, or FL_EINVAL
 * with a message naming the problem in errmsg (FL_ERRMSG_SIZE bytes, may be
 * NULL). NULL is invalid. */
int sched_constraint_valid(const char *c, char *errmsg);
int sched_label_valid(const char *l, char *errmsg);

/* 1 if every constraint of u matches n's labels, else 0. An invalid
 * constraint matches no node (a bad spec never lands anywhere by accident).
 * Ignores cap, drain, connection, backoff and avoid_node. */
int sched_node_matches(const struct sched_node *n, const struct sched_unit *u);

/* Split a host list into units: hosts [0, n_hosts) become
 * ceil(n_hosts / unit_size) units of unit_size hosts, the last one smaller;
 * unit i covers [i * unit_size, min(n_hosts, (i + 1) * unit_size)). Returns
 * the number of units: 0 when n_hosts is 0, and 0 when unit_size is outside
 * 1..SCHED_UNIT_SIZE_MAX (callers validate unit_size first to tell the two
 * apart). */
unsigned sched_split(unsigned n_hosts, unsigned unit_size);

#endif
