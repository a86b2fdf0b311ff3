/* scheduler/: placement, fairness, why, labels and splitting, on plain arrays.
 *
 * The property test checks sched_place against a naive reference that walks
 * the queue in order and scans every node for every unit. */
#include <time.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "scheduler/admit.h"
#include "scheduler/sched.h"

#define MAXN 1000

/* ------------------------------------------------------------ helpers */

static struct sched_node node(const char *id, uint32_t cap, uint32_t running)
{
    struct sched_node n = {0};
    n.id = id;
    n.cap = cap;
    n.running = running;
    n.connected = 1;
    return n;
}

static struct sched_unit unit(uint32_t ref, int32_t prio, uint64_t seq)
{
    struct sched_unit u = {0};
    u.ref = ref;
    u.priority = prio;
    u.seq = seq;
    return u;
}

static unsigned place(const struct sched_node *nodes, unsigned nn, const struct sched_unit *units,
                      unsigned nu, enum sched_strategy st, struct sched_assignment *out)
{
    unsigned n_out = 12345;
    CHECK_OK(sched_place(nodes, nn, units, nu, st, 1000, 7, out, nu, &n_out));
    return n_out;
}

static void per_node(const struct sched_assignment *out, unsigned n_out, unsigned *count,
                     unsigned nn)
{
    memset(count, 0, nn * sizeof *count);
    for (unsigned i = 0; i < n_out; i++) {
        count[out[i].node_index]++;
    }
}

/* Where did unit `ref` go? -1 if unplaced. */
static int where(const struct sched_assignment *out, unsigned n_out, uint32_t ref)
{
    for (unsigned i = 0; i < n_out; i++) {
        if (out[i].unit_ref == ref) {
            return (int)out[i].node_index;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ strategies */

TEST(spread_balances)
{
    static const char *ids[] = {"e", "b", "d", "a", "c"};
    struct sched_node nodes[5];
    struct sched_unit units[23];
    struct sched_assignment out[23];
    unsigned count[5], n_out, lo = 99, hi = 0;

    for (unsigned i = 0; i < 5; i++) {
        nodes[i] = node(ids[i], 10, 0);
    }
    for (unsigned i = 0; i < 23; i++) {
        units[i] = unit(i, 0, i);
    }
    n_out = place(nodes, 5, units, 23, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 23);
    per_node(out, n_out, count, 5);
    for (unsigned i = 0; i < 5; i++) {
        lo = count[i] < lo ? count[i] : lo;
        hi = count[i] > hi ? count[i] : hi;
    }
    CHECK(hi - lo <= 1);
    /* Ties go by id: the first unit lands on "a". */
    CHECK_EQ_STR(nodes[out[0].node_index].id, "a");
    CHECK_EQ_STR(nodes[out[1].node_index].id, "b");

    /* Existing load counts: x (0/4) takes units until it is as loaded as y
     * (3/4); at 3/4 each the tie goes by id to x, and y gets the last. */
    nodes[0] = node("x", 4, 0);
    nodes[1] = node("y", 4, 3);
    n_out = place(nodes, 2, units, 5, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 5);
    per_node(out, n_out, count, 2);
    CHECK_EQ_INT(count[0], 4);
    CHECK_EQ_INT(count[1], 1);
    CHECK_EQ_INT(out[4].node_index, 1);

    /* The ratio decides, not the count of free slots: 0/2 before 5/10. */
    nodes[0] = node("big", 10, 5);
    nodes[1] = node("small", 2, 0);
    n_out = place(nodes, 2, units, 1, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 1);
    CHECK_EQ_INT(out[0].node_index, 1);
    /* Equal ratio: the one with more free slots. */
    nodes[0] = node("small", 2, 1);
    nodes[1] = node("big", 10, 5);
    n_out = place(nodes, 2, units, 1, SCHED_SPREAD, out);
    CHECK_EQ_INT(out[0].node_index, 1);
}

TEST(pack_fills_one_node_first)
{
    struct sched_node nodes[3] = {node("a", 4, 0), node("b", 4, 0), node("c", 4, 0)};
    struct sched_unit units[6];
    struct sched_assignment out[6];
    unsigned count[3], n_out;

    for (unsigned i = 0; i < 6; i++) {
        units[i] = unit(i, 0, i);
    }
    n_out = place(nodes, 3, units, 6, SCHED_PACK, out);
    CHECK_EQ_INT(n_out, 6);
    for (unsigned i = 1; i < 4; i++) {
        CHECK_EQ_INT(out[i].node_index, out[0].node_index);
    }
    CHECK(out[4].node_index != out[0].node_index);
    CHECK_EQ_INT(out[5].node_index, out[4].node_index);

    /* The most loaded node with room goes first; a full one is skipped. */
    nodes[0] = node("a", 4, 1);
    nodes[1] = node("b", 4, 3);
    nodes[2] = node("c", 4, 4);
    n_out = place(nodes, 3, units, 4, SCHED_PACK, out);
    CHECK_EQ_INT(n_out, 4);
    per_node(out, n_out, count, 3);
    CHECK_EQ_INT(out[0].node_index, 1);
    CHECK_EQ_INT(count[0], 3);
    CHECK_EQ_INT(count[1], 1);
    CHECK_EQ_INT(count[2], 0);
}

TEST(pack_seed_breaks_ties)
{
    static const char *ids[] = {"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"};
    struct sched_node nodes[8];
    struct sched_unit u = unit(0, 0, 0);
    struct sched_assignment out[1];
    unsigned n_out, seen = 0;

    for (unsigned i = 0; i < 8; i++) {
        nodes[i] = node(ids[i], 3, 0);
    }
    for (uint64_t seed = 0; seed < 32; seed++) {
        CHECK_OK(sched_place(nodes, 8, &u, 1, SCHED_PACK, 0, seed, out, 1, &n_out));
        REQUIRE(n_out == 1);
        seen |= 1u << out[0].node_index;
    }
    CHECK(seen != (seen & -seen)); /* more than one starting node over the seeds */

    /* SPREAD leaves no tie to the seed. */
    for (uint64_t seed = 0; seed < 8; seed++) {
        CHECK_OK(sched_place(nodes, 8, &u, 1, SCHED_SPREAD, 0, seed, out, 1, &n_out));
        CHECK_EQ_INT(out[0].node_index, 0);
    }
}

/* ------------------------------------------------------------ eligibility */

TEST(ineligible_nodes_get_nothing)
{
    struct sched_node nodes[5] = {node("zero", 0, 0), node("drain", 5, 0), node("gone", 5, 0),
                                  node("over", 2, 3), node("ok", 2, 0)};
    struct sched_unit units[10];
    struct sched_assignment out[10];
    unsigned count[5], n_out;

    nodes[1].draining = 1;
    nodes[2].connected = 0;
    for (unsigned i = 0; i < 10; i++) {
        units[i] = unit(i, 0, i);
    }
    for (int st = SCHED_SPREAD; st <= SCHED_PACK; st++) {
        n_out = place(nodes, 5, units, 10, (enum sched_strategy)st, out);
        CHECK_EQ_INT(n_out, 2);
        per_node(out, n_out, count, 5);
        CHECK_EQ_INT(count[4], 2);
        /* The first two units in the queue got the slots. */
        CHECK(where(out, n_out, 0) == 4 && where(out, n_out, 1) == 4);
    }
    /* A cluster with no room at all. */
    nodes[4].running = 2;
    CHECK_EQ_INT(place(nodes, 5, units, 10, SCHED_SPREAD, out), 0);
    CHECK_EQ_INT(place(nodes, 0, units, 10, SCHED_SPREAD, out), 0);
}

TEST(constraints)
{
    static const char *l_web_a[] = {"role=web", "zone=a"};
    static const char *l_db_a[] = {"role=db", "zone=a", "gpu=1"};
    static const char *l_web_b[] = {"role=web", "zone=b"};
    static const char *c_web[] = {"role=web"};
    static const char *c_not_web[] = {"role!=web"};
    static const char *c_gpu[] = {"gpu"};
    static const char *c_web_not_a[] = {"role=web", "zone!=a"};
    static const char *c_none[] = {"role=cache"};
    static const char *c_bad[] = {"role==web"};
    struct sched_node nodes[3] = {node("w1", 10, 0), node("d1", 10, 0), node("w2", 10, 0)};
    struct sched_unit units[6];
    struct sched_assignment out[6];
    unsigned n_out;

    nodes[0].labels = l_web_a;
    nodes[0].n_labels = 2;
    nodes[1].labels = l_db_a;
    nodes[1].n_labels = 3;
    nodes[2].labels = l_web_b;
    nodes[2].n_labels = 2;
    for (unsigned i = 0; i < 6; i++) {
        units[i] = unit(i, 0, i);
        units[i].n_constraints = 1;
    }
    units[0].constraints = c_web;
    units[1].constraints = c_not_web;
    units[2].constraints = c_gpu;
    units[3].constraints = c_web_not_a;
    units[3].n_constraints = 2;
    units[4].constraints = c_none;
    units[5].constraints = c_bad;
    n_out = place(nodes, 3, units, 6, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 4);
    CHECK(where(out, n_out, 0) == 0 || where(out, n_out, 0) == 2);
    CHECK_EQ_INT(where(out, n_out, 1), 1);
    CHECK_EQ_INT(where(out, n_out, 2), 1);
    CHECK_EQ_INT(where(out, n_out, 3), 2);
    CHECK_EQ_INT(where(out, n_out, 4), -1);
    CHECK_EQ_INT(where(out, n_out, 5), -1); /* an invalid constraint matches nothing */

    CHECK(sched_node_matches(&nodes[0], &units[0]));
    CHECK(!sched_node_matches(&nodes[1], &units[0]));
    CHECK(sched_node_matches(&nodes[1], &units[1]));
    CHECK(!sched_node_matches(&nodes[0], &units[2]));
    CHECK(!sched_node_matches(&nodes[0], &units[5]));
    units[0].n_constraints = 0;
    CHECK(sched_node_matches(&nodes[1], &units[0]));
}

TEST(constraint_semantics_multi_valued_labels)
{
    static const char *labels[] = {"role=web", "role=api", "flag"};
    static const char *c1[] = {"role=api"};
    static const char *c2[] = {"role!=api"};
    static const char *c3[] = {"role!=db"};
    static const char *c4[] = {"flag"};
    static const char *c5[] = {"rol"};
    static const char *c6[] = {"role=we"};
    struct sched_node n = node("n", 1, 0);
    struct sched_unit u = unit(0, 0, 0);

    n.labels = labels;
    n.n_labels = 3;
    u.n_constraints = 1;
    u.constraints = c1;
    CHECK(sched_node_matches(&n, &u));
    u.constraints = c2;
    CHECK(!sched_node_matches(&n, &u));
    u.constraints = c3;
    CHECK(sched_node_matches(&n, &u));
    u.constraints = c4;
    CHECK(sched_node_matches(&n, &u)); /* a bare label still has its key */
    u.constraints = c5;
    CHECK(!sched_node_matches(&n, &u)); /* keys are not prefixes */
    u.constraints = c6;
    CHECK(!sched_node_matches(&n, &u)); /* nor values */
}

TEST(avoid_node)
{
    struct sched_node nodes[2] = {node("a", 5, 0), node("b", 5, 4)};
    static const char *l_a[] = {"role=x"};
    static const char *c_x[] = {"role=x"};
    struct sched_unit u = unit(0, 0, 0);
    struct sched_assignment out[1];
    unsigned n_out;

    /* "a" is the best node by load, but the last attempt failed there. */
    u.avoid_node = "a";
    n_out = place(nodes, 2, &u, 1, SCHED_SPREAD, out);
    CHECK(n_out == 1 && out[0].node_index == 1);
    /* The other node is full: "a" is the only fit and is used. */
    nodes[1].running = 5;
    n_out = place(nodes, 2, &u, 1, SCHED_SPREAD, out);
    CHECK(n_out == 1 && out[0].node_index == 0);
    /* The other node has room but does not match: "a" again. */
    nodes[1].running = 0;
    nodes[0].labels = l_a;
    nodes[0].n_labels = 1;
    u.constraints = c_x;
    u.n_constraints = 1;
    n_out = place(nodes, 2, &u, 1, SCHED_PACK, out);
    CHECK(n_out == 1 && out[0].node_index == 0);
    /* An unknown avoid node changes nothing. */
    u.avoid_node = "zzz";
    n_out = place(nodes, 2, &u, 1, SCHED_PACK, out);
    CHECK(n_out == 1 && out[0].node_index == 0);
}

TEST(backoff)
{
    struct sched_node n = node("a", 5, 0);
    struct sched_unit units[2] = {unit(0, 9, 0), unit(1, 0, 1)};
    struct sched_assignment out[2];
    unsigned n_out;

    units[0].not_before_ms = 1001; /* place() uses now = 1000 */
    n_out = place(&n, 1, units, 2, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 1);
    CHECK_EQ_INT(out[0].unit_ref, 1);
    units[0].not_before_ms = 1000; /* due exactly now */
    n_out = place(&n, 1, units, 2, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 2);
    CHECK_EQ_INT(out[0].unit_ref, 0);
}

/* ------------------------------------------------------------ order and fairness */

TEST(priority_then_fifo)
{
    struct sched_node n = node("a", 3, 0);
    struct sched_unit units[5] = {unit(0, 0, 1), unit(1, 5, 9), unit(2, 0, 0), unit(3, 5, 3),
                                  unit(4, -2, 0)};
    struct sched_assignment out[5];
    unsigned n_out = place(&n, 1, units, 5, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 3);
    CHECK_EQ_INT(out[0].unit_ref, 3);
    CHECK_EQ_INT(out[1].unit_ref, 1);
    CHECK_EQ_INT(out[2].unit_ref, 2);
}

TEST(fairness_no_overtaking)
{
    static const char *l_gpu[] = {"gpu=1"};
    static const char *c_gpu[] = {"gpu=1"};
    static const char *c_zone[] = {"zone=z"};
    struct sched_node nodes[2] = {node("cpu", 2, 0), node("gpu", 1, 0)};
    struct sched_unit units[4] = {unit(0, 9, 0), unit(1, 9, 1), unit(2, 1, 2), unit(3, 1, 3)};
    struct sched_assignment out[4];
    unsigned n_out;

    nodes[1].labels = l_gpu;
    nodes[1].n_labels = 1;
    /* Unit 0 fits nowhere; unit 1 takes the one gpu slot; the low-priority
     * units behind are not blocked by unit 0 and fill the cpu node. */
    units[0].constraints = c_zone;
    units[0].n_constraints = 1;
    units[1].constraints = c_gpu;
    units[1].n_constraints = 1;
    units[2].constraints = c_gpu;
    units[2].n_constraints = 1;
    n_out = place(nodes, 2, units, 4, SCHED_SPREAD, out);
    CHECK_EQ_INT(n_out, 2);
    CHECK_EQ_INT(where(out, n_out, 0), -1);
    CHECK_EQ_INT(where(out, n_out, 1), 1);
    CHECK_EQ_INT(where(out, n_out, 2), -1); /* the gpu slot went to the earlier unit */
    CHECK_EQ_INT(where(out, n_out, 3), 0);

    /* Next round, the gpu slot frees: it goes to unit 2, never to unit 3. */
    nodes[0].running = 1;
    units[3].seq = 1; /* even an old low-priority unit without constraints */
    n_out = place(nodes, 2, &units[2], 2, SCHED_PACK, out);
    CHECK_EQ_INT(where(out, n_out, 2), 1);
}

TEST(determinism)
{
    static const char *l[] = {"role=web"};
    static const char *c[] = {"role=web"};
    struct sched_node nodes[50];
    struct sched_unit units[300];
    struct sched_assignment a[300], b[300];
    char ids[50][8];
    unsigned na, nb;

    for (unsigned i = 0; i < 50; i++) {
        snprintf(ids[i], sizeof ids[i], "n%u", (i * 17) % 50);
        nodes[i] = node(ids[i], 1 + i % 4, i % 3);
        nodes[i].labels = l;
        nodes[i].n_labels = i % 2;
    }
    for (unsigned i = 0; i < 300; i++) {
        units[i] = unit(i, (int32_t)(i % 3), 300 - i);
        units[i].constraints = c;
        units[i].n_constraints = i % 5 == 0;
    }
    for (int st = SCHED_SPREAD; st <= SCHED_PACK; st++) {
        CHECK_OK(sched_place(nodes, 50, units, 300, (enum sched_strategy)st, 5, 99, a, 300, &na));
        CHECK_OK(sched_place(nodes, 50, units, 300, (enum sched_strategy)st, 5, 99, b, 300, &nb));
        CHECK_EQ_INT(na, nb);
        CHECK(memcmp(a, b, na * sizeof a[0]) == 0);
    }
}

TEST(max_out_and_bad_arguments)
{
    struct sched_node n = node("a", 10, 0);
    struct sched_unit units[5] = {unit(0, 0, 0), unit(1, 0, 1), unit(2, 0, 2), unit(3, 0, 3),
                                  unit(4, 0, 4)};
    struct sched_assignment out[5];
    unsigned n_out;

    CHECK_OK(sched_place(&n, 1, units, 5, SCHED_SPREAD, 0, 0, out, 2, &n_out));
    CHECK_EQ_INT(n_out, 2);
    CHECK(out[0].unit_ref == 0 && out[1].unit_ref == 1);
    CHECK_OK(sched_place(&n, 1, units, 5, SCHED_SPREAD, 0, 0, NULL, 0, &n_out));
    CHECK_EQ_INT(n_out, 0);
    CHECK_EQ_INT(sched_place(&n, 1, units, 5, SCHED_SPREAD, 0, 0, out, 5, NULL), FL_EINVAL);
    CHECK_EQ_INT(sched_place(NULL, 1, units, 5, SCHED_SPREAD, 0, 0, out, 5, &n_out), FL_EINVAL);
    CHECK_EQ_INT(sched_place(&n, 1, NULL, 5, SCHED_SPREAD, 0, 0, out, 5, &n_out), FL_EINVAL);
    units[1].n_constraints = 1;
    CHECK_EQ_INT(sched_place(&n, 1, units, 5, SCHED_SPREAD, 0, 0, out, 5, &n_out), FL_EINVAL);
    units[1].n_constraints = 0;
    n.id = NULL;
    CHECK_EQ_INT(sched_place(&n, 1, units, 5, SCHED_SPREAD, 0, 0, out, 5, &n_out), FL_EINVAL);
    CHECK_EQ_INT(n_out, 0);
}

TEST(out_of_memory_sweep)
{
    static const char *l[] = {"role=web"};
    static const char *c[] = {"role=web"};
    struct sched_node nodes[100];
    struct sched_unit units[40];
    struct sched_assignment out[40], ref[40];
    char ids[100][8];
    unsigned n_ref, n_out;
    int rv = FL_ENOMEM;

    for (unsigned i = 0; i < 100; i++) {
        snprintf(ids[i], sizeof ids[i], "n%u", i);
        nodes[i] = node(ids[i], 2, 0);
        nodes[i].labels = l;
        nodes[i].n_labels = i % 2;
    }
    for (unsigned i = 0; i < 40; i++) {
        units[i] = unit(i, 0, i);
        units[i].constraints = c;
        units[i].n_constraints = i % 2;
    }
    CHECK_OK(sched_place(nodes, 100, units, 40, SCHED_PACK, 0, 1, ref, 40, &n_ref));
    for (long k = 0; k < 100 && rv != FL_OK; k++) {
        fl_alloc_fault_set(k);
        rv = sched_place(nodes, 100, units, 40, SCHED_PACK, 0, 1, out, 40, &n_out);
        fl_alloc_fault_clear();
        CHECK(rv == FL_OK || rv == FL_ENOMEM);
        if (rv == FL_ENOMEM) {
            CHECK_EQ_INT(n_out, 0);
        }
    }
    CHECK_OK(rv);
    CHECK(n_out == n_ref && memcmp(out, ref, n_ref * sizeof ref[0]) == 0);
}

/* ------------------------------------------------------------ property test */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return n == 0 ? 0 : (uint32_t)((rng_state >> 11) % n);
}

/* The test's own reading of the constraint grammar, independent of the
 * module's. */
static int ref_match1(const struct sched_node *n, const char *c)
{
    const char *ne = strstr(c, "!="), *eq = strchr(c, '=');
    size_t klen = ne ? (size_t)(ne - c) : eq ? (size_t)(eq - c) : strlen(c);
    int has = 0, equal = 0;
    for (unsigned i = 0; i < n->n_labels; i++) {
        const char *l = n->labels[i], *leq = strchr(l, '=');
        size_t lk = leq ? (size_t)(leq - l) : strlen(l);
        if (lk == klen && memcmp(l, c, klen) == 0) {
            has = 1;
            equal |= leq != NULL && (ne || eq) && strcmp(leq + 1, c + klen + (ne ? 2 : 1)) == 0;
        }
    }
    return ne ? !equal : eq ? equal : has;
}

static int ref_match(const struct sched_node *n, const struct sched_unit *u)
{
    for (unsigned j = 0; j < u->n_constraints; j++) {
        if (!ref_match1(n, u->constraints[j])) {
            return 0;
        }
    }
    return 1;
}

static int ref_before(const struct sched_unit *a, unsigned ia, const struct sched_unit *b,
                      unsigned ib)
{
    if (a->priority != b->priority) {
        return a->priority > b->priority;
    }
    if (a->seq != b->seq) {
        return a->seq < b->seq;
    }
    return ia < ib;
}

struct cluster {
    struct sched_node nodes[MAXN];
    char ids[MAXN][8];
    const char *labels[MAXN][3];
    struct sched_unit units[2000];
    const char *cons[2000][3];
    unsigned nn, nu;
};

static const char *vocab_labels[] = {"role=web", "role=db", "role=cache", "zone=a", "zone=b",
                                     "gpu=1",    "ssd=yes", "rack=r1",    "rack=r2"};
static const char *vocab_cons[] = {"role=web", "role!=db", "gpu",     "zone=a",  "zone!=b",
                                   "role=db",  "ssd",      "rack=r1", "rack!=r2"};
static const char *shared_cons[][2] = {{"role=web", "zone=a"}, {"gpu", "role!=cache"}, {"ssd"}};

static const char *slot_labels[] = {"slot=0", "slot=1", "slot=2", "slot=3", "slot=4",
                                    "slot=5", "slot=6", "slot=7", "slot=8", "slot=9"};
static const char *slot_cons[] = {"slot!=0", "slot!=1", "slot!=2", "slot!=3", "slot!=4",
                                  "slot!=5", "slot!=6", "slot!=7", "slot!=8", "slot!=9"};

/* A random cluster and queue. many_classes: every constrained unit also gets
 * a "slot!=K", so a call sees dozens of distinct broad constraint lists (more
 * than get their own heap). */
static void gen(struct cluster *c, unsigned max_nodes, unsigned max_units, int many_classes)
{
    unsigned perm[MAXN];
    c->nn = rnd(max_nodes + 1);
    c->nu = rnd(max_units + 1);
    for (unsigned i = 0; i < c->nn; i++) {
        perm[i] = i;
    }
    for (unsigned i = c->nn; i > 1; i--) {
        unsigned j = rnd(i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (unsigned i = 0; i < c->nn; i++) {
        struct sched_node *n = &c->nodes[i];
        snprintf(c->ids[i], sizeof c->ids[i], "n%03u", perm[i]);
        *n = node(c->ids[i], rnd(6), 0);
        n->running = rnd(n->cap + 2);
        n->draining = rnd(10) == 0;
        n->connected = rnd(10) != 0;
        n->n_labels = rnd(3);
        for (unsigned j = 0; j < n->n_labels; j++) {
            c->labels[i][j] = vocab_labels[rnd(9)];
        }
        if (many_classes) {
            c->labels[i][n->n_labels++] = slot_labels[rnd(10)];
        }
        n->labels = c->labels[i];
    }
    for (unsigned i = 0; i < c->nu; i++) {
        struct sched_unit *u = &c->units[i];
        *u = unit(i, (int32_t)rnd(4) - 1, rnd(c->nu + 1));
        u->not_before_ms = rnd(4) == 0 ? 1000 + rnd(3) - 1 : 0;
        u->avoid_node = rnd(4) == 0 && c->nn > 0 ? c->ids[rnd(c->nn)] : NULL;
        if (rnd(3) == 0) {
            unsigned s = rnd(3);
            u->constraints = shared_cons[s];
            u->n_constraints = s == 2 ? 1 : 2;
        } else if (rnd(2) == 0) {
            u->n_constraints = 1 + rnd(2);
            for (unsigned j = 0; j < u->n_constraints; j++) {
                c->cons[i][j] = vocab_cons[rnd(9)];
            }
            u->constraints = c->cons[i];
        }
        if (many_classes && u->n_constraints > 0) {
            c->cons[i][0] = u->constraints[0];
            c->cons[i][1] = slot_cons[rnd(10)];
            u->constraints = c->cons[i];
            u->n_constraints = 2;
        }
    }
}

static int eligible(const struct sched_node *n, uint32_t used)
{
    return n->cap > 0 && n->connected && !n->draining && used < n->cap;
}

/* Is node a strictly better than node b under the strategy? For SPREAD the
 * order is total (id, index); for PACK the seeded tie is left open. */
static int ref_better(const struct cluster *c, const uint32_t *used, int pack, unsigned a,
                      unsigned b, int total)
{
    const struct sched_node *na = &c->nodes[a], *nb = &c->nodes[b];
    uint64_t la = (uint64_t)used[a] * nb->cap, lb = (uint64_t)used[b] * na->cap;
    uint32_t fa = na->cap - used[a], fb = nb->cap - used[b];
    int r;
    if (la != lb) {
        return pack ? la > lb : la < lb;
    }
    if (fa != fb) {
        return pack ? fa < fb : fa > fb;
    }
    if (!total) {
        return 0;
    }
    r = strcmp(na->id, nb->id);
    return r != 0 ? r < 0 : a < b;
}

static void check_against_reference(const struct cluster *c, int pack, uint64_t now,
                                    const struct sched_assignment *out, unsigned n_out,
                                    unsigned max_out)
{
    static uint32_t used[MAXN];
    static unsigned order[2000];
    static int placed_at[2000], last_on[MAXN];
    unsigned k = 0, no = 0;

    for (unsigned i = 0; i < c->nn; i++) {
        used[i] = c->nodes[i].running;
    }
    for (unsigned i = 0; i < c->nu; i++) {
        placed_at[i] = -1;
    }
    for (unsigned i = 0; i < n_out; i++) {
        REQUIRE(out[i].unit_ref < c->nu && out[i].node_index < c->nn);
        CHECK(placed_at[out[i].unit_ref] == -1); /* each unit at most once */
        placed_at[out[i].unit_ref] = (int)out[i].node_index;
    }
    /* Queue order, by insertion (the reference's own sort). */
    for (unsigned i = 0; i < c->nu; i++) {
        unsigned j = no++;
        while (j > 0 && ref_before(&c->units[i], i, &c->units[order[j - 1]], order[j - 1])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (unsigned oi = 0; oi < no; oi++) {
        const struct sched_unit *u = &c->units[order[oi]];
        unsigned best = MAXN, best_avoid = MAXN, node;
        if (now < u->not_before_ms) {
            CHECK(placed_at[u->ref] == -1);
            continue;
        }
        for (unsigned i = 0; i < c->nn; i++) {
            unsigned *b;
            if (!eligible(&c->nodes[i], used[i]) || !ref_match(&c->nodes[i], u)) {
                continue;
            }
            b = u->avoid_node && strcmp(u->avoid_node, c->nodes[i].id) == 0 ? &best_avoid : &best;
            if (*b == MAXN || ref_better(c, used, pack, i, *b, 1)) {
                *b = i;
            }
        }
        if (best == MAXN) {
            best = best_avoid;
        }
        if (k == n_out) {
            /* Output exhausted: only allowed if nothing else fits or out is full. */
            CHECK(best == MAXN || n_out == max_out);
            if (best != MAXN) {
                break;
            }
            continue;
        }
        if (best == MAXN) {
            CHECK(placed_at[u->ref] == -1);
            continue;
        }
        REQUIRE(out[k].unit_ref == u->ref);
        node = out[k].node_index;
        CHECK(eligible(&c->nodes[node], used[node]));
        CHECK(ref_match(&c->nodes[node], u));
        if (u->avoid_node && strcmp(u->avoid_node, c->nodes[node].id) == 0) {
            CHECK(best == best_avoid);
        }
        if (pack) {
            CHECK(!ref_better(c, used, 1, best, node, 0));
        } else {
            CHECK_EQ_INT(node, best);
        }
        used[node]++;
        k++;
    }
    CHECK_EQ_INT(k, n_out);
    for (unsigned i = 0; i < c->nn; i++) {
        CHECK(used[i] <= c->nodes[i].cap || used[i] == c->nodes[i].running);
    }
    /* The fairness rule, stated directly: every node that matches an
     * unplaced, due unit ends full, and full only of units ahead of it. */
    if (n_out == max_out) {
        return;
    }
    for (unsigned n = 0; n < c->nn; n++) {
        last_on[n] = -1;
    }
    for (unsigned a = 0; a < n_out; a++) {
        unsigned l = out[a].unit_ref, n = out[a].node_index;
        if (last_on[n] == -1 ||
            ref_before(&c->units[last_on[n]], (unsigned)last_on[n], &c->units[l], l)) {
            last_on[n] = (int)l;
        }
    }
    for (unsigned i = 0; i < c->nu; i++) {
        const struct sched_unit *h = &c->units[i];
        if (placed_at[i] != -1 || now < h->not_before_ms) {
            continue;
        }
        for (unsigned n = 0; n < c->nn; n++) {
            if (!ref_match(&c->nodes[n], h)) {
                continue;
            }
            CHECK(!eligible(&c->nodes[n], used[n]));
            CHECK(last_on[n] == -1 ||
                  ref_before(&c->units[last_on[n]], (unsigned)last_on[n], h, i));
        }
    }
}

TEST(property_random_clusters)
{
    static struct cluster c;
    static struct sched_assignment out[2000];
    unsigned n_out, total = 0;

    rng_state = 0x9e3779b97f4a7c15ull;
    for (unsigned iter = 0; iter < 3000; iter++) {
        int pack = iter % 2;
        unsigned max_out;
        if (iter % 10 == 9) {
            gen(&c, 400, 1500, 0); /* broad classes: more than 64 matching nodes */
        } else if (iter % 10 == 4) {
            gen(&c, 400, 1500, 1);
        } else {
            gen(&c, iter % 3 == 0 ? 6 : 60, 200, 0);
        }
        max_out = rnd(5) == 0 ? rnd(c.nu + 1) : c.nu;
        CHECK_OK(sched_place(c.nodes, c.nn, c.units, c.nu, pack ? SCHED_PACK : SCHED_SPREAD, 1000,
                             iter, out, max_out, &n_out));
        REQUIRE(n_out <= max_out);
        check_against_reference(&c, pack, 1000, out, n_out, max_out);
        total += n_out;
        if (check__failed_now) {
            fprintf(stderr, "failed at iteration %u\n", iter);
            return;
        }
    }
    fprintf(stderr, "   %u placements checked\n", total);
}

/* More broad constraint lists than get their own heap, whose nodes rank
 * below every other node: the best-first walk of the node heap has to cross
 * all of those. Checked against the reference. */
TEST(many_broad_classes)
{
    static struct cluster c;
    static struct sched_assignment out[2000];
    static char cons_text[40][16];
    static const char *web[] = {"role=web"};
    unsigned n_out;

    for (int pack = 0; pack <= 1; pack++) {
        c.nn = 200;
        for (unsigned i = 0; i < c.nn; i++) {
            int is_web = i % 2 == 0;
            snprintf(c.ids[i], sizeof c.ids[i], "n%03u", (i * 37) % 200);
            /* SPREAD prefers idle nodes, PACK busy ones: make web nodes worst. */
            c.nodes[i] = node(c.ids[i], 6, is_web == !pack ? 3 : 1);
            c.nodes[i].labels = web;
            c.nodes[i].n_labels = is_web;
        }
        c.nu = 40 * 12;
        for (unsigned i = 0; i < c.nu; i++) {
            unsigned k = i % 40;
            snprintf(cons_text[k], sizeof cons_text[k], "slot!=%u", k);
            c.units[i] = unit(i, 0, i);
            c.cons[i][0] = "role=web";
            c.cons[i][1] = cons_text[k];
            c.units[i].constraints = c.cons[i];
            c.units[i].n_constraints = 2;
            c.units[i].avoid_node = i % 7 == 0 ? c.ids[i % 200] : NULL;
        }
        CHECK_OK(sched_place(c.nodes, c.nn, c.units, c.nu, pack ? SCHED_PACK : SCHED_SPREAD, 1000,
                             3, out, c.nu, &n_out));
        CHECK_EQ_INT(n_out, pack ? c.nu : 100 * 3); /* all units, or every web slot */
        check_against_reference(&c, pack, 1000, out, n_out, c.nu);
    }
}

/* ------------------------------------------------------------ why */

TEST(why_summaries)
{
    static const char *l_web[] = {"role=web"};
    static const char *l_db[] = {"role=db"};
    static const char *c_web[] = {"role=web"};
    struct sched_node nodes[8] = {node("f1", 2, 2), node("f2", 1, 1), node("f3", 3, 5),
                                  node("d1", 2, 0), node("z1", 0, 0), node("x1", 2, 0),
                                  node("m1", 2, 0), node("m2", 2, 0)};
    struct sched_unit u = unit(0, 0, 0);
    struct sched_why w;

    for (unsigned i = 0; i < 6; i++) {
        nodes[i].labels = l_web;
        nodes[i].n_labels = 1;
    }
    nodes[3].draining = 1;
    nodes[5].connected = 0;
    nodes[6].labels = l_db;
    nodes[6].n_labels = 1;
    u.constraints = c_web;
    u.n_constraints = 1;
    sched_why(nodes, 8, &u, 100, &w);
    CHECK_EQ_INT(w.n_nodes, 8);
    CHECK_EQ_INT(w.full, 3);
    CHECK_EQ_INT(w.draining, 1);
    CHECK_EQ_INT(w.cap_zero, 1);
    CHECK_EQ_INT(w.disconnected, 1);
    CHECK_EQ_INT(w.constraint_mismatch, 2);
    CHECK_EQ_INT(w.eligible_free, 0);
    CHECK_EQ_INT(w.backoff, 0);
    CHECK_EQ_STR(w.summary, "waiting: 3 nodes full, 1 draining, 1 drained (cap 0), "
                            "1 disconnected, 2 not matching role=web");

    /* Only full nodes. */
    sched_why(nodes, 3, &u, 100, &w);
    CHECK_EQ_STR(w.summary, "waiting: 3 nodes full");
    sched_why(nodes, 1, &u, 100, &w);
    CHECK_EQ_STR(w.summary, "waiting: 1 node full");

    /* Backoff, with room. */
    u.not_before_ms = 1600;
    nodes[0].running = 0;
    sched_why(nodes, 1, &u, 100, &w);
    CHECK_EQ_INT(w.backoff, 1);
    CHECK_EQ_INT(w.eligible_free, 1);
    CHECK_EQ_STR(w.summary, "waiting: retry backoff, 1500 ms left; 1 node has room");

    /* No nodes at all. */
    sched_why(NULL, 0, &u, 100, &w);
    CHECK_EQ_STR(w.summary, "waiting: retry backoff, 1500 ms left; no nodes in the cluster");
    u.not_before_ms = 0;
    sched_why(nodes, 0, &u, 100, &w);
    CHECK_EQ_STR(w.summary, "waiting: no nodes in the cluster");

    /* Placeable. */
    sched_why(nodes, 2, &u, 100, &w);
    CHECK_EQ_STR(w.summary, "placeable: 1 node has room; 1 node full");
    u.n_constraints = 0;
    sched_why(&nodes[6], 2, &u, 100, &w);
    CHECK_EQ_STR(w.summary, "placeable: 2 nodes have room");

    /* Several constraints: each node is charged to the first it fails. */
    {
        static const char *c2[] = {"role=web", "zone=a"};
        u.constraints = c2;
        u.n_constraints = 2;
        sched_why(&nodes[5], 3, &u, 100, &w);
        CHECK_EQ_INT(w.constraint_mismatch, 3);
        CHECK_EQ_STR(w.summary, "waiting: 2 nodes not matching role=web, 1 not matching zone=a");
    }
}

/* ------------------------------------------------------------ labels, split */

TEST(constraint_strings)
{
    char err[FL_ERRMSG_SIZE], longc[200];
    static const char *good[] = {"k=v", "k!=v", "k", "role=web", "a.b/c-d_e=x:y@z+1", "K9=0"};
    static const char *bad[] = {"",      "=v",    "!=v",  "k==v", "k =v", " k=v",
                                "k=v ",  "k= v",  "k=",   "k!=",  "k!v",  "k=!v",
                                "k=v=w", "k!==v", "k\tv", "ké=v", "k=v\n"};

    for (unsigned i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK_OK(sched_constraint_valid(good[i], err));
    }
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_EQ_INT(sched_constraint_valid(bad[i], err), FL_EINVAL);
        CHECK(err[0] != '\0');
    }
    CHECK_EQ_INT(sched_constraint_valid(NULL, NULL), FL_EINVAL);
    CHECK_EQ_INT(sched_constraint_valid("k==v", NULL), FL_EINVAL);

    memset(longc, 'a', sizeof longc);
    longc[0] = 'k';
    longc[1] = '=';
    longc[SCHED_TEXT_MAX] = '\0';
    CHECK_OK(sched_constraint_valid(longc, err));
    longc[SCHED_TEXT_MAX] = 'a';
    longc[SCHED_TEXT_MAX + 1] = '\0';
    CHECK_EQ_INT(sched_constraint_valid(longc, err), FL_EINVAL);
    CHECK(strstr(err, "longer than 127") != NULL);

    sched_constraint_valid("", err);
    CHECK_EQ_STR(err, "constraint is empty");
    sched_constraint_valid("=v", err);
    CHECK_EQ_STR(err, "constraint \"=v\" has no key before '='");
    sched_constraint_valid("k==v", err);
    CHECK_EQ_STR(err, "constraint \"k==v\": unexpected '=' at offset 2");
    sched_constraint_valid("k =v", err);
    CHECK_EQ_STR(err, "constraint \"k =v\": unexpected byte 0x20 at offset 1 "
                      "(spaces are not allowed)");
}

TEST(label_strings)
{
    char err[FL_ERRMSG_SIZE];
    CHECK_OK(sched_label_valid("role=web", err));
    CHECK_OK(sched_label_valid("dc=east-1", err));
    CHECK_EQ_INT(sched_label_valid("role", err), FL_EINVAL);
    CHECK_EQ_STR(err, "label \"role\" must be key=value");
    CHECK_EQ_INT(sched_label_valid("role!=web", err), FL_EINVAL);
    CHECK_EQ_INT(sched_label_valid("role==web", err), FL_EINVAL);
    CHECK_EQ_INT(sched_label_valid("=web", err), FL_EINVAL);
    CHECK_EQ_INT(sched_label_valid("", err), FL_EINVAL);
    CHECK_EQ_INT(sched_label_valid("a b=c", err), FL_EINVAL);
    CHECK_EQ_INT(sched_label_valid(NULL, err), FL_EINVAL);
}

TEST(split)
{
    CHECK_EQ_INT(sched_split(0, 30), 0);
    CHECK_EQ_INT(sched_split(1, 30), 1);
    CHECK_EQ_INT(sched_split(30, 30), 1);
    CHECK_EQ_INT(sched_split(31, 30), 2);
    CHECK_EQ_INT(sched_split(90, 30), 3);
    CHECK_EQ_INT(sched_split(1000, 30), 34); /* 33 of 30 and one of 10 */
    CHECK_EQ_INT(sched_split(7, 1), 7);
    CHECK_EQ_INT(sched_split(10000, 10000), 1);
    CHECK_EQ_INT(sched_split(10001, 10000), 2);
    CHECK_EQ_INT(sched_split(0xffffffffu, 1), 0xffffffffu);
    CHECK_EQ_INT(sched_split(0xffffffffu, 10000), 429497);
    CHECK_EQ_INT(sched_split(100, 0), 0);
    CHECK_EQ_INT(sched_split(100, 10001), 0);
}

/* ------------------------------------------------------------ micro-benchmark */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Time one call; print (not assert) the rate. */
static void bench(const char *what, const struct cluster *c, const struct sched_unit *units,
                  unsigned nu, enum sched_strategy st, struct sched_assignment *out)
{
    unsigned n_out = 0;
    double t0 = now_s(), dt;
    CHECK_OK(sched_place(c->nodes, c->nn, units, nu, st, 0, 1, out, nu, &n_out));
    dt = now_s() - t0;
    fprintf(stderr, "   bench %-42s %6u placed in %6.2f ms: %9.0f placements/s\n", what, n_out,
            dt * 1e3, n_out / dt);
}

TEST(benchmark)
{
    static const char *roles[] = {"role=web", "role=db", "role=cache"};
    static const char *zones[] = {"zone=a", "zone=b"};
    static const char *task_cons[][2] = {
        {"role=web", NULL}, {"zone=a", NULL}, {"role=db", "gpu"}, {"role!=db", "zone=b"}};
    static const unsigned task_ncons[] = {1, 1, 2, 2};
    static struct cluster c;
    const unsigned nu = 100000;
    struct sched_unit *units = fl_malloc(nu * sizeof *units);
    struct sched_assignment *out = fl_malloc(nu * sizeof *out);

    REQUIRE(units != NULL && out != NULL);
    c.nn = 1000;
    for (unsigned i = 0; i < c.nn; i++) {
        snprintf(c.ids[i], sizeof c.ids[i], "n%04u", (i * 7919) % 1000);
        c.nodes[i] = node(c.ids[i], 100, 0);
        c.labels[i][0] = roles[i % 3];
        c.labels[i][1] = zones[(i / 3) % 2];
        c.labels[i][2] = "gpu=1";
        c.nodes[i].labels = c.labels[i];
        c.nodes[i].n_labels = i % 50 == 1 ? 3 : 2; /* 20 gpu db nodes */
    }
    for (unsigned i = 0; i < nu; i++) {
        units[i] = unit(i, 0, i);
    }
    bench("spread, 100k plain units, 1000 nodes x 100", &c, units, nu, SCHED_SPREAD, out);
    bench("pack, 100k plain units, 1000 nodes x 100", &c, units, nu, SCHED_PACK, out);

    /* Tasks of 1000 units sharing a constraint array, 3 priorities, given
     * in reverse queue order (so sorted by the call). */
    for (unsigned i = 0; i < nu; i++) {
        unsigned task = i / 1000;
        units[i] = unit(i, (int32_t)(task % 3), nu - i);
        if (task % 5 < 4) {
            units[i].constraints = task_cons[task % 4];
            units[i].n_constraints = task_ncons[task % 4];
        }
    }
    bench("spread, 100k mixed constrained, unsorted", &c, units, nu, SCHED_SPREAD, out);
    bench("pack, 100k mixed constrained, unsorted", &c, units, nu, SCHED_PACK, out);

    /* 1000 nodes x cap 1: 1000 slots for a 100k queue. */
    for (unsigned i = 0; i < c.nn; i++) {
        c.nodes[i].cap = 1;
    }
    bench("spread, 100k mixed, 1000 nodes x 1", &c, units, nu, SCHED_SPREAD, out);
    fl_free(units);
    fl_free(out);
}

/* The admission rules: each one alone refuses, and they are reported in
 * their documented order when several break at once. */
TEST(admission_rules)
{
    struct sched_admit_task t = {.max_running = 2, .running = 1};
    struct sched_admit_node n = {.id = "n1", .cap = 3, .running = 2};
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_OK);
    CHECK_EQ_INT(sched_admit(1, &t, &n), SCHED_ADMIT_PAUSED);
    t.ending = 1;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_TASK_ENDING);
    t.ending = 0;
    n.draining = 1;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_NODE_DRAINING);
    n.draining = 0;
    n.lost = 1;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_NODE_LOST);
    n.lost = 0;
    n.running = 3;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_NODE_FULL);
    n.running = 0;
    n.cap = 0; /* cap 0 = drain by cap */
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_NODE_FULL);
    n.cap = 3;
    t.running = 2;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_TASK_AT_LIMIT);
    t.max_running = 0; /* no limit */
    t.running = 1000000;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_OK);
    /* Placed on its host: that node only, before any other rule. */
    t.on_host = 1;
    t.host = "n1x";
    t.host_len = 2;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_OK);
    t.host_len = 3;
    CHECK_EQ_INT(sched_admit(1, &t, &n), SCHED_ADMIT_NOT_ITS_HOST);
    t.host = "n";
    t.host_len = 1;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_NOT_ITS_HOST);
    /* Order: paused before ending before drain before lost before full. */
    t.on_host = 0;
    t.ending = 1;
    n.draining = n.lost = 1;
    n.running = 5;
    CHECK_EQ_INT(sched_admit(1, &t, &n), SCHED_ADMIT_PAUSED);
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_TASK_ENDING);
    t.ending = 0;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_NODE_DRAINING);
    n.draining = 0;
    CHECK_EQ_INT(sched_admit(0, &t, &n), SCHED_ADMIT_NODE_LOST);
    CHECK(sched_task_has_room(0, 99));
    CHECK(sched_task_has_room(3, 2));
    CHECK(!sched_task_has_room(3, 3));
    CHECK(strcmp(sched_admit_reason(SCHED_ADMIT_NODE_FULL), "node full") == 0);
}

int main(void)
{
    RUN(spread_balances);
    RUN(pack_fills_one_node_first);
    RUN(pack_seed_breaks_ties);
    RUN(ineligible_nodes_get_nothing);
    RUN(constraints);
    RUN(constraint_semantics_multi_valued_labels);
    RUN(avoid_node);
    RUN(backoff);
    RUN(priority_then_fifo);
    RUN(fairness_no_overtaking);
    RUN(determinism);
    RUN(max_out_and_bad_arguments);
    RUN(out_of_memory_sweep);
    RUN(property_random_clusters);
    RUN(many_broad_classes);
    RUN(why_summaries);
    RUN(constraint_strings);
    RUN(label_strings);
    RUN(split);
    RUN(admission_rules);
    RUN(benchmark);
    return check_summary();
}
