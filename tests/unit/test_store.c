/* store/: tables, typed records, the applied position, failures (injected
 * commit faults, a full map, allocation failures), dump/load/digest, and the
 * store being readable with lmdb-utils. Every test runs on a fresh store in a
 * temporary directory. */
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <msgpack.h>
#include <sodium.h>

#include "check.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"

/* ---- helpers --------------------------------------------------------- */

struct env {
    char tmp[256];
    char dir[300];
    struct store *s;
};

static int env_open(struct env *e, size_t map_size)
{
    struct store_options o = {.map_size = map_size, .no_sync = 1};
    char msg[FL_ERRMSG_SIZE] = "";
    int rv = store_open(e->dir, &o, &e->s, msg);
    if (rv != FL_OK) {
        fprintf(stderr, "store_open %s: %s\n", e->dir, msg);
    }
    return rv;
}

/* A fresh directory with a store in its "store" subdirectory (which
 * store_open has to create). */
static int env_init(struct env *e, size_t map_size)
{
    memset(e, 0, sizeof *e);
    if (check_tmpdir(e->tmp, sizeof e->tmp) == NULL) {
        return -1;
    }
    snprintf(e->dir, sizeof e->dir, "%s/store", e->tmp);
    return env_open(e, map_size);
}

static void env_close(struct env *e)
{
    store_close(e->s);
    e->s = NULL;
    check_rmrf(e->tmp);
}

static int kv_put1(struct store *s, const char *key, const char *val, uint64_t index)
{
    struct store_txn *t;
    int rv = store_begin(s, 1, &t);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_kv_put(t, key, strlen(key), val, strlen(val), index, 1000 + index);
    if (rv == FL_OK) {
        rv = store_set_applied(t, index, 1);
    }
    if (rv != FL_OK) {
        store_abort(t);
        return rv;
    }
    return store_commit(t);
}

/* 1 if key holds exactly `val` in the committed state. */
static int kv_is(struct store *s, const char *key, const char *val)
{
    struct store_txn *t;
    struct store_kv kv;
    int ok;
    if (store_begin(s, 0, &t) != FL_OK) {
        return 0;
    }
    ok = store_kv_get(t, key, strlen(key), &kv) == FL_OK && kv.vlen == strlen(val) &&
         memcmp(kv.value, val, kv.vlen) == 0;
    store_abort(t);
    return ok;
}

static int kv_absent(struct store *s, const char *key)
{
    struct store_txn *t;
    struct store_kv kv;
    int rv;
    if (store_begin(s, 0, &t) != FL_OK) {
        return 0;
    }
    rv = store_kv_get(t, key, strlen(key), &kv);
    store_abort(t);
    return rv == FL_ENOTFOUND;
}

static uint64_t applied_index(struct store *s)
{
    uint64_t i = 0, tm = 0;
    return store_applied(s, &i, &tm) == FL_OK ? i : UINT64_MAX;
}

static void digest(struct store *s, uint8_t out[32])
{
    if (store_digest(s, out, NULL, NULL) != FL_OK) {
        memset(out, 0xEE, 32);
    }
}

static void make_node(struct store_node *n, const char *id, int kind, unsigned labels)
{
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "%s", id);
    n->kind = kind;
    if (kind == STORE_NODE_SERVER) {
        n->raft_id = 7;
        snprintf(n->raft_addr, sizeof n->raft_addr, "127.0.0.1:9001");
        snprintf(n->api_addr, sizeof n->api_addr, "127.0.0.1:8001");
    }
    n->n_labels = labels;
    for (unsigned i = 0; i < labels; i++) {
        snprintf(n->labels[i], sizeof n->labels[i], "k%u=v%u", i, i);
    }
    n->cap = 4;
    n->created_index = 3;
    n->updated_index = 9;
}

/* A store with something in every table, applied at (index, 3). */
static int populate(struct store *s, uint64_t index, const char *tag)
{
    struct store_txn *t;
    struct store_node n;
    char key[32], val[64];
    int rv = store_begin(s, 1, &t);
    if (rv != FL_OK) {
        return rv;
    }
    for (int i = 0; i < 20 && rv == FL_OK; i++) {
        snprintf(key, sizeof key, "key-%02d", i);
        snprintf(val, sizeof val, "%s-value-%d", tag, i);
        rv = store_kv_put(t, key, strlen(key), val, strlen(val), index - 20 + (uint64_t)i, 5);
    }
    make_node(&n, "server-1", STORE_NODE_SERVER, 3);
    if (rv == FL_OK) {
        rv = store_node_put(t, &n);
    }
    make_node(&n, "agent-1", STORE_NODE_AGENT, 0);
    if (rv == FL_OK) {
        rv = store_node_put(t, &n);
    }
    if (rv == FL_OK) {
        rv = store_meta_put(t, "cluster_id", tag);
    }
    if (rv == FL_OK) {
        rv = store_put(t, STORE_LOCAL, "local-key", 9, tag, strlen(tag));
    }
    if (rv == FL_OK) {
        rv = store_set_applied(t, index, 3);
    }
    if (rv != FL_OK) {
        store_abort(t);
        return rv;
    }
    return store_commit(t);
}

/* 1 if the replicated tables of a and b hold the same records. */
static int same_contents(struct store *a, struct store *b)
{
    struct store_txn *ta, *tb;
    int same = 1;
    if (store_begin(a, 0, &ta) != FL_OK) {
        return 0;
    }
    if (store_begin(b, 0, &tb) != FL_OK) {
        store_abort(ta);
        return 0;
    }
    for (int tab = STORE_META; tab <= STORE_KV && same; tab++) {
        struct store_cursor *ca, *cb;
        const void *ka, *va, *kb, *vb;
        size_t kla, vla, klb, vlb;
        int ra, rb;
        if (store_cursor_open(ta, tab, NULL, 0, &ca) != FL_OK) {
            same = 0;
            break;
        }
        if (store_cursor_open(tb, tab, NULL, 0, &cb) != FL_OK) {
            store_cursor_close(ca);
            same = 0;
            break;
        }
        do {
            ra = store_cursor_next(ca, &ka, &kla, &va, &vla);
            rb = store_cursor_next(cb, &kb, &klb, &vb, &vlb);
            if (ra != rb || (ra == FL_OK && (kla != klb || vla != vlb || memcmp(ka, kb, kla) ||
                                             memcmp(va, vb, vla)))) {
                same = 0;
            }
        } while (same && ra == FL_OK);
        store_cursor_close(ca);
        store_cursor_close(cb);
    }
    store_abort(ta);
    store_abort(tb);
    return same;
}

static int is_reject(int rv)
{
    return rv == FL_EDECODE || rv == FL_ECORRUPT;
}

/* ---- dump builder: hand-made dumps with a valid checksum ------------- */

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}

static void dump_begin(struct fl_buf *b, uint64_t index, uint64_t term)
{
    uint8_t h[24];
    memcpy(h, "FLSNAP01", 8);
    be64(h + 8, index);
    be64(h + 16, term);
    fl_buf_init(b);
    fl_buf_append(b, h, sizeof h);
}

static void dump_rec(struct fl_buf *b, unsigned tab, const void *k, size_t kl, const void *v,
                     size_t vl)
{
    uint8_t h[9];
    h[0] = (uint8_t)tab;
    be32(h + 1, (uint32_t)kl);
    be32(h + 5, (uint32_t)vl);
    fl_buf_append(b, h, sizeof h);
    fl_buf_append(b, k, kl);
    fl_buf_append(b, v, vl);
}

/* Replace the last 32 bytes of a dump with the checksum of the rest. */
static void dump_resign(uint8_t *d, size_t len)
{
    crypto_generichash(d + len - 32, 32, d, len - 32, NULL, 0);
}

static void dump_end(struct fl_buf *b)
{
    uint8_t sum[32] = {0};
    dump_rec(b, 0xFF, "", 0, "", 0);
    fl_buf_append(b, sum, sizeof sum);
    dump_resign(b->data, b->len);
}

/* ---- tables and transactions ----------------------------------------- */

TEST(open_creates_directory)
{
    struct env e;
    struct stat st;
    char path[400];
    uint64_t i = 1, tm = 1, used, map;
    REQUIRE(env_init(&e, 0) == FL_OK);
    snprintf(path, sizeof path, "%s/data.mdb", e.dir);
    CHECK(stat(path, &st) == 0);
    snprintf(path, sizeof path, "%s/lock.mdb", e.dir);
    CHECK(stat(path, &st) == 0);
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK_EQ_INT(i, 0);
    CHECK_EQ_INT(tm, 0);
    store_usage(e.s, &used, &map);
    CHECK_EQ_INT(map, (uint64_t)1 << 30);
    CHECK(used > 0 && used < map);
    CHECK_EQ_STR(store_table_name(STORE_META), "meta");
    CHECK_EQ_STR(store_table_name(STORE_NODES), "nodes");
    CHECK_EQ_STR(store_table_name(STORE_KV), "kv");
    CHECK_EQ_STR(store_table_name(STORE_LOCAL), "local");
    store_close(e.s);
    /* Nested missing directories are created too. */
    snprintf(e.dir, sizeof e.dir, "%s/a/b/c", e.tmp);
    CHECK_OK(env_open(&e, 0));
    env_close(&e);
}

TEST(raw_put_get_del_every_table)
{
    struct env e;
    struct store_txn *t;
    const void *v;
    size_t vl;
    char big[600];
    REQUIRE(env_init(&e, 0) == FL_OK);
    memset(big, 'x', sizeof big);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        CHECK_EQ_INT(store_get(t, tab, "k", 1, &v, &vl), FL_ENOTFOUND);
        CHECK_OK(store_put(t, tab, "k", 1, "value", 5));
        CHECK_OK(store_put(t, tab, "empty", 5, "", 0));
        CHECK_OK(store_get(t, tab, "k", 1, &v, &vl));
        CHECK(vl == 5 && memcmp(v, "value", 5) == 0);
        CHECK_OK(store_get(t, tab, "empty", 5, &v, &vl));
        CHECK_EQ_INT(vl, 0);
        CHECK_OK(store_put(t, tab, "k", 1, "other", 5)); /* overwrite */
        CHECK_OK(store_get(t, tab, "k", 1, &v, &vl));
        CHECK(vl == 5 && memcmp(v, "other", 5) == 0);
        CHECK_OK(store_del(t, tab, "empty", 5));
        CHECK_EQ_INT(store_del(t, tab, "empty", 5), FL_ENOTFOUND);
        /* Key lengths: 1..511. Argument errors leave the txn usable. */
        CHECK_OK(store_put(t, tab, big, 511, "x", 1));
        CHECK_EQ_INT(store_put(t, tab, big, 512, "x", 1), FL_ETOOBIG);
        CHECK_EQ_INT(store_put(t, tab, "", 0, "x", 1), FL_ETOOBIG);
        CHECK_OK(store_get(t, tab, big, 511, &v, &vl));
    }
    CHECK_EQ_INT(store_put(t, STORE__NTABLES, "k", 1, "v", 1), FL_EINVAL);
    CHECK_EQ_INT(store_get(t, (enum store_table) - 1, "k", 1, &v, &vl), FL_EINVAL);
    CHECK_OK(store_commit(t));

    REQUIRE(store_begin(e.s, 0, &t) == FL_OK);
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        CHECK_OK(store_get(t, tab, "k", 1, &v, &vl));
        CHECK(vl == 5 && memcmp(v, "other", 5) == 0);
        CHECK_EQ_INT(store_get(t, tab, "empty", 5, &v, &vl), FL_ENOTFOUND);
    }
    CHECK_EQ_INT(store_put(t, STORE_KV, "k", 1, "v", 1), FL_EINVAL); /* read txn */
    CHECK_EQ_INT(store_del(t, STORE_KV, "k", 1), FL_EINVAL);
    CHECK_OK(store_commit(t)); /* ends a read txn */

    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        CHECK_OK(store_del(t, tab, "k", 1));
    }
    CHECK_OK(store_commit(t));
    REQUIRE(store_begin(e.s, 0, &t) == FL_OK);
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        CHECK_EQ_INT(store_get(t, tab, "k", 1, &v, &vl), FL_ENOTFOUND);
    }
    store_abort(t);
    store_abort(NULL);
    env_close(&e);
}

/* Collect the keys a cursor yields, comma-separated. */
static int cursor_keys(struct store_txn *t, enum store_table tab, const void *from, size_t fl,
                       char *out, size_t outlen)
{
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rv = store_cursor_open(t, tab, from, fl, &c);
    out[0] = '\0';
    if (rv != FL_OK) {
        return rv;
    }
    while ((rv = store_cursor_next(c, &k, &kl, &v, &vl)) == FL_OK) {
        size_t n = strlen(out);
        if (kl > 20) {
            snprintf(out + n, outlen - n, "%s<%zu>", n ? "," : "", kl);
        } else {
            snprintf(out + n, outlen - n, "%s%.*s", n ? "," : "", (int)kl, (const char *)k);
        }
    }
    /* The end is sticky. */
    if (rv == FL_ENOTFOUND && store_cursor_next(c, &k, &kl, &v, &vl) != FL_ENOTFOUND) {
        rv = FL_EIO;
    }
    store_cursor_close(c);
    return rv == FL_ENOTFOUND ? FL_OK : rv;
}

TEST(cursor_order_and_start)
{
    struct env e;
    struct store_txn *t;
    char got[256], longkey[600];
    static const char *keys[] = {"c", "a", "ba", "b", "d"};
    REQUIRE(env_init(&e, 0) == FL_OK);
    memset(longkey, 'c', sizeof longkey);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        CHECK_OK(cursor_keys(t, tab, NULL, 0, got, sizeof got));
        CHECK_EQ_STR(got, ""); /* empty table */
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            CHECK_OK(store_put(t, tab, keys[i], strlen(keys[i]), "v", 1));
        }
    }
    CHECK_OK(store_put(t, STORE_KV, longkey, 511, "v", 1));
    CHECK_OK(store_commit(t));

    REQUIRE(store_begin(e.s, 0, &t) == FL_OK);
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        if (tab == STORE_KV) {
            continue;
        }
        CHECK_OK(cursor_keys(t, tab, NULL, 0, got, sizeof got));
        CHECK_EQ_STR(got, "a,b,ba,c,d");
        CHECK_OK(cursor_keys(t, tab, "b", 1, got, sizeof got));
        CHECK_EQ_STR(got, "b,ba,c,d");
        CHECK_OK(cursor_keys(t, tab, "bb", 2, got, sizeof got));
        CHECK_EQ_STR(got, "c,d");
        CHECK_OK(cursor_keys(t, tab, "", 0, got, sizeof got));
        CHECK_EQ_STR(got, "a,b,ba,c,d");
        CHECK_OK(cursor_keys(t, tab, "z", 1, got, sizeof got));
        CHECK_EQ_STR(got, "");
    }
    /* A start key longer than any storable key. */
    CHECK_OK(cursor_keys(t, STORE_KV, "c", 1, got, sizeof got));
    CHECK_EQ_STR(got, "c,<511>,d");
    CHECK_OK(cursor_keys(t, STORE_KV, longkey, 511, got, sizeof got));
    CHECK_EQ_STR(got, "<511>,d");
    CHECK_OK(cursor_keys(t, STORE_KV, longkey, 600, got, sizeof got));
    CHECK_EQ_STR(got, "d");
    CHECK_EQ_INT(cursor_keys(t, STORE__NTABLES, NULL, 0, got, sizeof got), FL_EINVAL);
    store_abort(t);
    env_close(&e);
}

/* ---- typed records --------------------------------------------------- */

TEST(kv_versions)
{
    struct env e;
    struct store_txn *t;
    struct store_kv kv;
    static char big[STORE_KV_MAX_VALUE + 1];
    char key[STORE_KV_MAX_KEY + 1];
    REQUIRE(env_init(&e, 0) == FL_OK);
    memset(key, 'k', sizeof key);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_EQ_INT(store_kv_get(t, "a", 1, &kv), FL_ENOTFOUND);
    CHECK_OK(store_kv_put(t, "a", 1, "one", 3, 5, 1005));
    CHECK_OK(store_kv_get(t, "a", 1, &kv));
    CHECK(kv.vlen == 3 && memcmp(kv.value, "one", 3) == 0);
    CHECK_EQ_INT(kv.version, 5);
    CHECK_EQ_INT(kv.create_index, 5);
    CHECK_EQ_INT(kv.mtime_ms, 1005);
    CHECK_OK(store_commit(t));

    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_OK(store_kv_put(t, "a", 1, "two!", 4, 9, 1009));
    CHECK_OK(store_kv_get(t, "a", 1, &kv));
    CHECK(kv.vlen == 4 && memcmp(kv.value, "two!", 4) == 0);
    CHECK_EQ_INT(kv.version, 9);
    CHECK_EQ_INT(kv.create_index, 5); /* kept */
    CHECK_EQ_INT(kv.mtime_ms, 1009);
    CHECK_OK(store_kv_del(t, "a", 1));
    CHECK_EQ_INT(store_kv_del(t, "a", 1), FL_ENOTFOUND);
    CHECK_OK(store_kv_put(t, "a", 1, "", 0, 12, 1012)); /* recreated, empty */
    CHECK_OK(store_kv_get(t, "a", 1, &kv));
    CHECK_EQ_INT(kv.vlen, 0);
    CHECK_EQ_INT(kv.version, 12);
    CHECK_EQ_INT(kv.create_index, 12);
    /* Limits. */
    CHECK_EQ_INT(store_kv_put(t, "", 0, "x", 1, 13, 0), FL_EINVAL);
    CHECK_EQ_INT(STORE_KV_MAX_KEY, 511);
    CHECK_OK(store_kv_put(t, key, STORE_KV_MAX_KEY, "x", 1, 13, 0));
    CHECK_OK(store_kv_get(t, key, STORE_KV_MAX_KEY, &kv));
    CHECK_EQ_INT(store_kv_put(t, key, STORE_KV_MAX_KEY + 1, "x", 1, 13, 0), FL_ETOOBIG);
    CHECK_EQ_INT(store_kv_get(t, key, STORE_KV_MAX_KEY + 1, &kv), FL_ENOTFOUND);
    CHECK_EQ_INT(store_kv_del(t, key, STORE_KV_MAX_KEY + 1), FL_ENOTFOUND);
    CHECK_EQ_INT(store_kv_get(t, "", 0, &kv), FL_ENOTFOUND);
    CHECK_EQ_INT(store_kv_del(t, "", 0), FL_ENOTFOUND);
    CHECK_OK(store_kv_put(t, "big", 3, big, STORE_KV_MAX_VALUE, 14, 0));
    CHECK_EQ_INT(store_kv_put(t, "big", 3, big, STORE_KV_MAX_VALUE + 1, 15, 0), FL_ETOOBIG);
    CHECK_OK(store_kv_get(t, "big", 3, &kv));
    CHECK_EQ_INT(kv.vlen, STORE_KV_MAX_VALUE);
    CHECK_EQ_INT(kv.version, 14);
    /* A damaged record is reported as such, by get and by put. */
    CHECK_OK(store_put(t, STORE_KV, "bad", 3, "\x95\x01", 2));
    CHECK_EQ_INT(store_kv_get(t, "bad", 3, &kv), FL_ECORRUPT);
    CHECK(strstr(store_errmsg(e.s), "kv/bad") != NULL);
    CHECK_EQ_INT(store_kv_put(t, "bad", 3, "x", 1, 16, 0), FL_ECORRUPT);
    CHECK_OK(store_kv_del(t, "bad", 3));
    CHECK_OK(store_commit(t));
    env_close(&e);
}

TEST(kv_decode_total)
{
    struct fl_buf b;
    struct store_kv kv;
    msgpack_packer pk;
    msgpack_sbuffer sb;
    static const uint8_t v2[] = {0x95, 0x02, 0xc4, 0x00, 0x01, 0x01, 0x01};
    static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    /* A valid record, then every truncation of it. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "abc", 3);
    msgpack_pack_uint64(&pk, 300);
    msgpack_pack_uint64(&pk, 70000);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    CHECK_OK(store_kv_decode(sb.data, sb.size, &kv));
    CHECK(kv.vlen == 3 && memcmp(kv.value, "abc", 3) == 0);
    CHECK_EQ_INT(kv.version, 300);
    CHECK_EQ_INT(kv.create_index, 70000);
    CHECK(kv.mtime_ms == UINT64_MAX);
    for (size_t n = 0; n < sb.size; n++) {
        CHECK_EQ_INT(store_kv_decode(sb.data, n, &kv), FL_EDECODE);
    }
    fl_buf_init(&b);
    fl_buf_append(&b, sb.data, sb.size);
    fl_buf_append(&b, "", 1); /* trailing byte */
    CHECK_EQ_INT(store_kv_decode(b.data, b.len, &kv), FL_EDECODE);
    fl_buf_close(&b);
    msgpack_sbuffer_destroy(&sb);
    CHECK_EQ_INT(store_kv_decode(v2, sizeof v2, &kv), FL_EVERSION);
    CHECK_EQ_INT(store_kv_decode(huge, sizeof huge, &kv), FL_EDECODE);
    CHECK_EQ_INT(store_kv_decode("", 0, &kv), FL_EDECODE);
    CHECK_EQ_INT(store_kv_decode("\x90", 1, &kv), FL_EDECODE);
}

TEST(node_round_trip)
{
    struct env e;
    struct store_txn *t;
    struct store_node n, got;
    const void *k, *v;
    size_t kl, vl;
    struct store_cursor *c;
    REQUIRE(env_init(&e, 0) == FL_OK);
    /* Every field at its largest. */
    memset(&n, 0, sizeof n);
    memset(n.id, 'i', sizeof n.id - 1);
    n.raft_id = UINT64_MAX;
    memset(n.raft_addr, 'r', sizeof n.raft_addr - 1);
    memset(n.api_addr, 'a', sizeof n.api_addr - 1);
    memset(n.blob_addr, 'b', sizeof n.blob_addr - 1);
    n.kind = STORE_NODE_SERVER;
    n.n_labels = STORE_NODE_LABELS;
    for (int i = 0; i < STORE_NODE_LABELS; i++) {
        memset(n.labels[i], 'a' + i % 26, STORE_NODE_LABEL_MAX - 1);
        n.labels[i][0] = (char)('0' + i % 10);
    }
    n.cap = UINT32_MAX;
    n.drain = 1;
    n.created_index = 1;
    n.updated_index = UINT64_MAX;
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_OK(store_node_put(t, &n));
    make_node(&got, "agent-7", STORE_NODE_AGENT, 0);
    CHECK_OK(store_node_put(t, &got));
    CHECK_OK(store_commit(t));

    REQUIRE(store_begin(e.s, 0, &t) == FL_OK);
    CHECK_OK(store_node_get(t, n.id, &got));
    CHECK(memcmp(&n, &got, sizeof n) == 0);
    CHECK_OK(store_node_get(t, "agent-7", &got));
    CHECK_EQ_STR(got.id, "agent-7");
    CHECK_EQ_INT(got.kind, STORE_NODE_AGENT);
    CHECK_EQ_INT(got.n_labels, 0);
    CHECK_EQ_STR(got.raft_addr, "");
    CHECK_EQ_INT(got.drain, 0);
    CHECK_EQ_INT(got.cap, 4);
    CHECK_EQ_INT(store_node_get(t, "nobody", &got), FL_ENOTFOUND);
    CHECK_EQ_INT(store_node_get(t, "", &got), FL_ENOTFOUND);
    /* Cursor plus store_node_decode. */
    CHECK_OK(store_cursor_open(t, STORE_NODES, NULL, 0, &c));
    CHECK_OK(store_cursor_next(c, &k, &kl, &v, &vl));
    CHECK_OK(store_node_decode(v, vl, &got));
    CHECK(kl == 7 && memcmp(k, "agent-7", 7) == 0);
    CHECK_EQ_STR(got.id, "agent-7");
    CHECK_OK(store_cursor_next(c, &k, &kl, &v, &vl));
    CHECK_OK(store_node_decode(v, vl, &got));
    CHECK(memcmp(&n, &got, sizeof n) == 0);
    CHECK_EQ_INT(store_cursor_next(c, &k, &kl, &v, &vl), FL_ENOTFOUND);
    store_cursor_close(c);
    store_abort(t);

    /* Refused on put. */
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    make_node(&got, "", STORE_NODE_AGENT, 0);
    CHECK_EQ_INT(store_node_put(t, &got), FL_EINVAL);
    make_node(&got, "x", STORE_NODE_AGENT, 0);
    memset(got.id, 'x', sizeof got.id);
    CHECK_EQ_INT(store_node_put(t, &got), FL_EINVAL);
    make_node(&got, "x", 0, 0);
    CHECK_EQ_INT(store_node_put(t, &got), FL_EINVAL);
    make_node(&got, "x", STORE_NODE_AGENT, 0);
    got.n_labels = STORE_NODE_LABELS + 1;
    CHECK_EQ_INT(store_node_put(t, &got), FL_EINVAL);
    make_node(&got, "x", STORE_NODE_AGENT, 2);
    memset(got.labels[1], 'l', STORE_NODE_LABEL_MAX);
    CHECK_EQ_INT(store_node_put(t, &got), FL_EINVAL);
    make_node(&got, "x", STORE_NODE_SERVER, 0);
    memset(got.api_addr, 'a', sizeof got.api_addr);
    CHECK_EQ_INT(store_node_put(t, &got), FL_EINVAL);
    CHECK_OK(store_node_del(t, "agent-7"));
    CHECK_EQ_INT(store_node_del(t, "agent-7"), FL_ENOTFOUND);
    CHECK_OK(store_put(t, STORE_NODES, "junk", 4, "\xc1", 1));
    CHECK_EQ_INT(store_node_get(t, "junk", &got), FL_ECORRUPT);
    CHECK_OK(store_commit(t));
    env_close(&e);
}

/* A node record packed field by field, for hand-made bad records. */
struct raw_node {
    uint64_t format;
    unsigned fields;
    const char *id;
    size_t idlen;
    uint64_t kind;
    unsigned n_labels;
    const char *label;
    size_t labellen;
    uint64_t cap;
    int drain_as_int;
    int trailing;
};

static void pack_raw_node(msgpack_sbuffer *sb, const struct raw_node *r)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, r->fields);
    msgpack_pack_uint64(&pk, r->format);
    msgpack_pack_str(&pk, r->idlen);
    msgpack_pack_str_body(&pk, r->id, r->idlen);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_str(&pk, 0);
    msgpack_pack_str(&pk, 0);
    msgpack_pack_uint64(&pk, r->kind);
    msgpack_pack_array(&pk, r->n_labels);
    for (unsigned i = 0; i < r->n_labels; i++) {
        msgpack_pack_str(&pk, r->labellen);
        msgpack_pack_str_body(&pk, r->label, r->labellen);
    }
    msgpack_pack_uint64(&pk, r->cap);
    if (r->drain_as_int) {
        msgpack_pack_uint64(&pk, 1);
    } else {
        msgpack_pack_true(&pk);
    }
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 2);
    if (r->trailing) {
        msgpack_pack_nil(&pk);
    }
}

static int decode_raw_node(const struct raw_node *r)
{
    msgpack_sbuffer sb;
    struct store_node n;
    int rv;
    pack_raw_node(&sb, r);
    rv = store_node_decode(sb.data, sb.size, &n);
    msgpack_sbuffer_destroy(&sb);
    return rv;
}

/* 1 if every string of a decoded node is NUL-terminated in its field. */
static int node_strings_ok(const struct store_node *n)
{
    if (strnlen(n->id, sizeof n->id) == sizeof n->id || n->n_labels > STORE_NODE_LABELS ||
        strnlen(n->raft_addr, sizeof n->raft_addr) == sizeof n->raft_addr ||
        strnlen(n->api_addr, sizeof n->api_addr) == sizeof n->api_addr) {
        return 0;
    }
    for (unsigned i = 0; i < n->n_labels; i++) {
        if (strnlen(n->labels[i], STORE_NODE_LABEL_MAX) == STORE_NODE_LABEL_MAX) {
            return 0;
        }
    }
    return 1;
}

/* A session record by hand: format 1 (9 fields) or 2 (14 fields). */
static size_t raw_session_owned(uint8_t *out, size_t cap, int format, int fields,
                                const char *req_str, const char *owner)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)fields);
    msgpack_pack_uint64(&pk, (uint64_t)format);
    msgpack_pack_str_with_body(&pk, "s1", 2);
    msgpack_pack_str_with_body(&pk, "holder", 6);
    for (int i = 0; i < 6; i++) {
        msgpack_pack_uint64(&pk, 100 + (uint64_t)i); /* ttl .. created_index */
    }
    if (fields > 9) {
        msgpack_pack_uint64(&pk, 7); /* req_serial */
        msgpack_pack_uint64(&pk, FL_EBUSY);
        msgpack_pack_uint64(&pk, 42); /* req_version */
        msgpack_pack_uint64(&pk, 9);  /* req_index */
    }
    if (fields > 13) {
        msgpack_pack_str_with_body(&pk, req_str, strlen(req_str) + (req_str[0] == 'N'));
    }
    if (fields > 14) {
        msgpack_pack_str_with_body(&pk, owner, strlen(owner));
    }
    n = sb.size < cap ? sb.size : cap;
    memcpy(out, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static size_t raw_session(uint8_t *out, size_t cap, int format, int fields, const char *req_str)
{
    return raw_session_owned(out, cap, format, fields, req_str, "");
}

/* A job run's reference round-trips through its task name, and only a
 * well-formed name is one. */
TEST(job_ref_names)
{
    struct store_job_ref r = {.sched_ms = 1796665707483ull, .index = 2, .total = 3}, back;
    char name[STORE_TASK_NAME_MAX];
    snprintf(r.job, sizeof r.job, "backup.db-1");
    CHECK_OK(store_job_ref_name(&r, name, sizeof name));
    CHECK(strcmp(name, "job:backup.db-1@1796665707483#2/3") == 0);
    CHECK_OK(store_job_ref_parse(name, &back));
    CHECK(strcmp(back.job, "backup.db-1") == 0);
    CHECK_EQ_INT(back.sched_ms, r.sched_ms);
    CHECK_EQ_INT(back.index, 2);
    CHECK_EQ_INT(back.total, 3);
    CHECK_EQ_INT(store_job_ref_name(&r, name, 20), FL_EINVAL);
    static const char *not_runs[] = {
        "deploy",
        "job:",
        "job:@1#0/1",
        "job:x",
        "job:x@",
        "job:x@1",
        "job:x@1#0",
        "job:x@1#0/",
        "job:x@1#1/1",
        "job:x@1#0/1 ",
        "job:x@-1#0/1",
        "job:x@01#0/1",
        "job:x@1#00/1",
        "job:x@1#0/4294967296",
        "job:x@18446744073709551616#0/1",
        "Job:x@1#0/1",
        "job:x@1#0/0",
    };
    for (size_t i = 0; i < sizeof not_runs / sizeof not_runs[0]; i++) {
        CHECK_EQ_INT(store_job_ref_parse(not_runs[i], &back), FL_ENOTFOUND);
        CHECK(back.job[0] == '\0');
    }
    CHECK_OK(store_job_ref_parse("job:a@b@0#0/1", &back)); /* the last '@' splits */
    CHECK(strcmp(back.job, "a@b") == 0);
}

/* Sessions written before the request identity (format 1) still read, with
 * no request remembered; format 2 keeps the last request's answer; format 3
 * its owner, the accessor of the token that created it. */
TEST(session_record_formats)
{
    uint8_t rec[512];
    struct store_session s;
    size_t n = raw_session(rec, sizeof rec, 1, 9, "");
    CHECK_OK(store_session_decode(rec, n, &s));
    CHECK_EQ_STR(s.id, "s1");
    CHECK_EQ_INT(s.created_index, 105);
    CHECK_EQ_INT(s.req_serial, 0);
    CHECK_EQ_STR(s.req_str, "");
    n = raw_session(rec, sizeof rec, 2, 14, "holder-b");
    CHECK_OK(store_session_decode(rec, n, &s));
    CHECK_EQ_INT(s.req_serial, 7);
    CHECK_EQ_INT(s.req_err, FL_EBUSY);
    CHECK_EQ_INT(s.req_version, 42);
    CHECK_EQ_INT(s.req_index, 9);
    CHECK_EQ_STR(s.req_str, "holder-b");
    /* Field counts that belong to neither format, a NUL in the answer's
     * string, a string too long for it, an unknown format. */
    n = raw_session(rec, sizeof rec, 2, 9, "");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session(rec, sizeof rec, 1, 14, "x");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session(rec, sizeof rec, 2, 13, "");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session(rec, sizeof rec, 2, 14, "NUL");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session(rec, sizeof rec, 2, 14, "0123456789012345678901234567890123456789");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    /* Format 3: the owner. Older formats read it as "". */
    n = raw_session_owned(rec, sizeof rec, 3, 15, "x", "3f0c5e1a9b7d2e44");
    CHECK_OK(store_session_decode(rec, n, &s));
    CHECK_EQ_STR(s.req_str, "x");
    CHECK_EQ_STR(s.owner, "3f0c5e1a9b7d2e44");
    n = raw_session(rec, sizeof rec, 2, 14, "x");
    CHECK_OK(store_session_decode(rec, n, &s));
    CHECK_EQ_STR(s.owner, "");
    n = raw_session(rec, sizeof rec, 3, 14, "x");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session_owned(rec, sizeof rec, 2, 15, "x", "3f0c5e1a9b7d2e44");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session_owned(rec, sizeof rec, 3, 15, "x", "Not-An-Accessor");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session_owned(rec, sizeof rec, 3, 15, "x", "3f0c5e1a9b7d2e4401");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EDECODE);
    n = raw_session_owned(rec, sizeof rec, 4, 15, "x", "3f0c5e1a9b7d2e44");
    CHECK_EQ_INT(store_session_decode(rec, n, &s), FL_EVERSION);
}

/* A session without an owner is written in format 2, byte for byte as the
 * code before owners wrote it (so an old log applies to the same digest);
 * one with an owner in format 3. */
TEST(session_written_formats)
{
    struct env e;
    struct store_txn *t;
    struct store_session s, back;
    const void *v;
    size_t vl;
    uint8_t old[512];
    size_t n = raw_session(old, sizeof old, 2, 14, "holder-b");
    REQUIRE(env_init(&e, 0) == FL_OK);
    CHECK_OK(store_session_decode(old, n, &s));
    CHECK_OK(store_begin(e.s, 1, &t));
    CHECK_OK(store_session_put(t, &s));
    CHECK_OK(store_get(t, STORE_SESSIONS, "s1", 2, &v, &vl));
    CHECK(vl == n && memcmp(v, old, n) == 0);
    snprintf(s.owner, sizeof s.owner, "3f0c5e1a9b7d2e44");
    CHECK_OK(store_session_put(t, &s));
    CHECK_OK(store_get(t, STORE_SESSIONS, "s1", 2, &v, &vl));
    n = raw_session_owned(old, sizeof old, 3, 15, "holder-b", "3f0c5e1a9b7d2e44");
    CHECK(vl == n && memcmp(v, old, n) == 0);
    CHECK_OK(store_session_get(t, "s1", &back));
    CHECK_EQ_STR(back.owner, "3f0c5e1a9b7d2e44");
    snprintf(s.owner, sizeof s.owner, "ZZ");
    CHECK_EQ_INT(store_session_put(t, &s), FL_EINVAL);
    CHECK_OK(store_commit(t));
    env_close(&e);
}

TEST(node_decode_total)
{
    static char longs[200];
    struct raw_node ok = {1, 11, "n1", 2, STORE_NODE_AGENT, 2, "a=b", 3, 5, 0, 0};
    struct raw_node r;
    struct env e;
    struct store_txn *t;
    const void *v;
    size_t vl;
    uint8_t *rec;
    struct store_node n;
    unsigned seed = 12345;
    memset(longs, 'z', sizeof longs);
    CHECK_OK(decode_raw_node(&ok));
    r = ok, r.idlen = STORE_NODE_ID_MAX - 1, r.id = longs;
    CHECK_OK(decode_raw_node(&r));
    r = ok, r.idlen = STORE_NODE_ID_MAX, r.id = longs;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.idlen = 0;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.id = "a\0b", r.idlen = 3;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.label = longs, r.labellen = STORE_NODE_LABEL_MAX - 1;
    CHECK_OK(decode_raw_node(&r));
    r = ok, r.label = longs, r.labellen = STORE_NODE_LABEL_MAX;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.n_labels = STORE_NODE_LABELS;
    CHECK_OK(decode_raw_node(&r));
    r = ok, r.n_labels = STORE_NODE_LABELS + 1;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.kind = 3;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.cap = (uint64_t)UINT32_MAX + 1;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.drain_as_int = 1;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.trailing = 1;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.trailing = 1, r.fields = 12;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.format = 3; /* format 3 has 15 fields */
    CHECK_EQ_INT(decode_raw_node(&r), FL_EDECODE);
    r = ok, r.format = 4;
    CHECK_EQ_INT(decode_raw_node(&r), FL_EVERSION);

    /* Every truncation and every byte flip of a real record, and noise:
     * never a crash, and a success always leaves terminated strings. */
    REQUIRE(env_init(&e, 0) == FL_OK);
    make_node(&n, "server-9", STORE_NODE_SERVER, 4);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_OK(store_node_put(t, &n));
    CHECK_OK(store_get(t, STORE_NODES, "server-9", 8, &v, &vl));
    rec = fl_malloc(vl);
    REQUIRE(rec != NULL);
    memcpy(rec, v, vl);
    store_abort(t);
    env_close(&e);
    for (size_t i = 0; i < vl; i++) {
        CHECK_EQ_INT(store_node_decode(rec, i, &n), FL_EDECODE);
    }
    for (size_t i = 0; i < vl; i++) {
        for (int bit = 0; bit < 8; bit++) {
            int rv;
            rec[i] ^= (uint8_t)(1u << bit);
            rv = store_node_decode(rec, vl, &n);
            CHECK(rv == FL_OK || rv == FL_EDECODE || rv == FL_EVERSION);
            CHECK(rv != FL_OK || node_strings_ok(&n));
            rec[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rand_r(&seed) % (int)vl);
        int rv;
        for (size_t i = 0; i < len; i++) {
            rec[i] = (uint8_t)rand_r(&seed);
        }
        if (len > 0 && iter % 2 == 0) {
            rec[0] = 0x9b; /* a plausible array header */
        }
        rv = store_node_decode(rec, len, &n);
        CHECK(rv != FL_OK || node_strings_ok(&n));
    }
    fl_free(rec);
}

TEST(meta_strings)
{
    struct env e;
    struct store_txn *t;
    char out[16];
    REQUIRE(env_init(&e, 0) == FL_OK);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_EQ_INT(store_meta_get(t, "cluster_id", out, sizeof out), FL_ENOTFOUND);
    CHECK_OK(store_meta_put(t, "cluster_id", "c-0123456789"));
    CHECK_OK(store_meta_put(t, "empty", ""));
    CHECK_OK(store_meta_get(t, "cluster_id", out, sizeof out));
    CHECK_EQ_STR(out, "c-0123456789");
    CHECK_OK(store_meta_get(t, "empty", out, sizeof out));
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(store_meta_get(t, "cluster_id", out, 12), FL_ETOOBIG);
    CHECK_OK(store_meta_get(t, "cluster_id", out, 13));
    CHECK_EQ_INT(store_meta_put(t, "applied", "x"), FL_EINVAL);
    CHECK_EQ_INT(store_meta_put(t, "", "x"), FL_EINVAL);
    CHECK_OK(store_set_applied(t, 4, 1));
    CHECK_EQ_INT(store_meta_get(t, "applied", out, sizeof out), FL_EINVAL);
    CHECK_OK(store_commit(t));
    env_close(&e);
}

/* ---- the applied position, aborts and commit failures ----------------- */

TEST(applied_persists_across_reopen)
{
    struct env e;
    struct store_txn *t;
    uint64_t i, tm;
    REQUIRE(env_init(&e, 0) == FL_OK);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_OK(store_kv_put(t, "k", 1, "v", 1, 7, 0));
    CHECK_OK(store_set_applied(t, 7, 2));
    /* Not visible before the commit, visible inside the txn. */
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK_EQ_INT(i, 0);
    CHECK_OK(store_commit(t));
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK(i == 7 && tm == 2);
    store_close(e.s);
    REQUIRE(env_open(&e, 0) == FL_OK);
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK(i == 7 && tm == 2);
    CHECK(kv_is(e.s, "k", "v"));
    /* Large values survive the big-endian round trip. */
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_OK(store_set_applied(t, UINT64_MAX - 1, (uint64_t)1 << 40));
    CHECK_OK(store_commit(t));
    store_close(e.s);
    REQUIRE(env_open(&e, 0) == FL_OK);
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK(i == UINT64_MAX - 1 && tm == (uint64_t)1 << 40);
    env_close(&e);
}

static int open_log_durable(struct env *e)
{
    struct store_options o = {.log_durable = 1};
    char msg[FL_ERRMSG_SIZE] = "";
    int rv = store_open(e->dir, &o, &e->s, msg);
    if (rv != FL_OK) {
        fprintf(stderr, "store_open %s: %s\n", e->dir, msg);
    }
    return rv;
}

static void read_marker(const struct env *e, char *out, size_t size)
{
    char path[400];
    FILE *f;
    snprintf(path, sizeof path, "%s/sync-state", e->dir);
    out[0] = '\0';
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(out, (int)size, f) == NULL) {
            out[0] = '\0';
        }
        fclose(f);
    }
}

static void write_marker(const struct env *e, const char *line)
{
    char path[400];
    FILE *f;
    snprintf(path, sizeof path, "%s/sync-state", e->dir);
    f = fopen(path, "w");
    if (f != NULL) {
        fputs(line, f);
        fclose(f);
    }
}

/* Log-durable mode: commits are not flushed; the marker says whether the
 * environment can be trusted after a reboot. */
TEST(log_durable_marker_and_rebuild)
{
    struct env e;
    struct store_txn *t;
    uint64_t i, tm;
    char line[128], boot[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    int have_boot = f != NULL && fgets(boot, sizeof boot, f) != NULL && boot[0] != '\n';
    if (f != NULL) {
        fclose(f);
    }
    /* The marker names the boot: without the kernel's boot id (Linux always
     * has one) this mode cannot be tested, and that is a failure. */
    CHECK(have_boot);
    if (!have_boot) {
        fprintf(stderr, "   /proc/sys/kernel/random/boot_id is unreadable or empty\n");
        return;
    }
    boot[strcspn(boot, "\n")] = '\0';
    REQUIRE(env_init(&e, 0) == FL_OK);
    store_close(e.s);
    REQUIRE(open_log_durable(&e) == FL_OK);
    CHECK_EQ_INT(store_rebuilt(e.s), 0);
    read_marker(&e, line, sizeof line);
    CHECK(strncmp(line, boot, strlen(boot)) == 0 && strstr(line, " dirty") != NULL);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_OK(store_kv_put(t, "k", 1, "v", 1, 3, 0));
    CHECK_OK(store_set_applied(t, 3, 1));
    CHECK_OK(store_commit(t));
    store_close(e.s);
    read_marker(&e, line, sizeof line);
    CHECK(strstr(line, " clean") != NULL);

    /* Clean after another boot: kept. */
    write_marker(&e, "00000000-0000-0000-0000-000000000000 clean\n");
    REQUIRE(open_log_durable(&e) == FL_OK);
    CHECK_EQ_INT(store_rebuilt(e.s), 0);
    CHECK(kv_is(e.s, "k", "v"));
    /* Dirty in this boot (a process crash): kept. */
    store_close(e.s);
    snprintf(line, sizeof line, "%s dirty\n", boot);
    write_marker(&e, line);
    REQUIRE(open_log_durable(&e) == FL_OK);
    CHECK_EQ_INT(store_rebuilt(e.s), 0);
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK(i == 3 && tm == 1);
    store_close(e.s);
    /* Dirty from another boot: removed, opened empty, for Raft to refill. */
    write_marker(&e, "00000000-0000-0000-0000-000000000000 dirty\n");
    REQUIRE(open_log_durable(&e) == FL_OK);
    CHECK_EQ_INT(store_rebuilt(e.s), 1);
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK_EQ_INT(i, 0);
    CHECK(!kv_is(e.s, "k", "v"));
    read_marker(&e, line, sizeof line);
    CHECK(strncmp(line, boot, strlen(boot)) == 0 && strstr(line, " dirty") != NULL);
    /* A garbled marker is not trusted either. */
    store_close(e.s);
    write_marker(&e, "garbage");
    REQUIRE(open_log_durable(&e) == FL_OK);
    CHECK_EQ_INT(store_rebuilt(e.s), 1);
    env_close(&e);
}

TEST(abort_leaves_nothing)
{
    struct env e;
    struct store_txn *t, *r, *old, *w2;
    struct store_node n;
    const void *v;
    size_t vl;
    uint8_t before[32], after[32];
    REQUIRE(env_init(&e, 0) == FL_OK);
    REQUIRE(kv_put1(e.s, "base", "1", 3) == FL_OK);
    digest(e.s, before);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_EQ_INT(store_begin(e.s, 1, &w2), FL_EBUSY); /* one writer */
    CHECK(w2 == NULL);
    make_node(&n, "n", STORE_NODE_AGENT, 1);
    CHECK_OK(store_node_put(t, &n));
    CHECK_OK(store_kv_put(t, "new", 3, "x", 1, 4, 0));
    CHECK_OK(store_kv_del(t, "base", 4));
    CHECK_OK(store_meta_put(t, "cluster_id", "c"));
    CHECK_OK(store_put(t, STORE_LOCAL, "l", 1, "x", 1));
    CHECK_OK(store_set_applied(t, 4, 1));
    /* A read txn next to the writer sees the committed state only. */
    REQUIRE(store_begin(e.s, 0, &r) == FL_OK);
    CHECK_OK(store_get(r, STORE_KV, "base", 4, &v, &vl));
    CHECK_EQ_INT(store_get(r, STORE_KV, "new", 3, &v, &vl), FL_ENOTFOUND);
    store_abort(r);
    store_abort(t);
    digest(e.s, after);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_EQ_INT(applied_index(e.s), 3);
    CHECK(kv_is(e.s, "base", "1"));
    CHECK(kv_absent(e.s, "new"));
    REQUIRE(store_begin(e.s, 0, &r) == FL_OK);
    CHECK_EQ_INT(store_get(r, STORE_LOCAL, "l", 1, &v, &vl), FL_ENOTFOUND);
    CHECK_EQ_INT(store_get(r, STORE_NODES, "n", 1, &v, &vl), FL_ENOTFOUND);
    store_abort(r);

    /* A read txn opened before a commit keeps its snapshot. */
    REQUIRE(store_begin(e.s, 0, &old) == FL_OK);
    CHECK_OK(kv_put1(e.s, "base", "2", 5));
    CHECK(kv_is(e.s, "base", "2"));
    CHECK_OK(store_get(old, STORE_KV, "base", 4, &v, &vl));
    CHECK_OK(store_begin(e.s, 1, &t)); /* the writer slot was released */
    store_abort(t);
    store_abort(old);
    env_close(&e);
}

TEST(injected_commit_failure)
{
    struct env e;
    struct store_txn *t;
    uint8_t before[32], after[32];
    uint64_t i, tm;
    REQUIRE(env_init(&e, 0) == FL_OK);
    REQUIRE(kv_put1(e.s, "a", "1", 1) == FL_OK);
    store_fault_commit(e.s, 1);
    CHECK_OK(kv_put1(e.s, "b", "2", 2)); /* one more success */
    digest(e.s, before);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    CHECK_OK(store_kv_put(t, "a", 1, "changed", 7, 3, 0));
    CHECK_OK(store_kv_put(t, "c", 1, "3", 1, 3, 0));
    CHECK_OK(store_set_applied(t, 3, 2));
    CHECK_EQ_INT(store_commit(t), FL_EIO);
    CHECK(strstr(store_errmsg(e.s), "injected") != NULL);
    digest(e.s, after);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK(i == 2 && tm == 1);
    CHECK(kv_is(e.s, "a", "1"));
    CHECK(kv_absent(e.s, "c"));
    /* The fault fires once; a read txn's commit never counts. */
    REQUIRE(store_begin(e.s, 0, &t) == FL_OK);
    CHECK_OK(store_commit(t));
    CHECK_OK(kv_put1(e.s, "c", "3", 3));
    CHECK(kv_is(e.s, "c", "3"));
    store_fault_commit(e.s, 0);
    CHECK_EQ_INT(kv_put1(e.s, "d", "4", 4), FL_EIO);
    CHECK_EQ_INT(applied_index(e.s), 3);
    store_fault_commit(e.s, 0);
    store_fault_commit(e.s, -1);
    CHECK_OK(kv_put1(e.s, "d", "4", 4));
    CHECK_EQ_INT(applied_index(e.s), 4);
    env_close(&e);
}

TEST(map_full)
{
    struct env e;
    struct store_txn *t;
    struct store_kv kv;
    const void *v;
    size_t vl;
    char key[32], val[4000];
    int rv = FL_OK, put_failed = 0;
    uint64_t i, tm, used, map, committed = 10;
    REQUIRE(env_init(&e, (size_t)1 << 20) == FL_OK);
    memset(val, 'v', sizeof val);
    for (int k = 0; k < 10; k++) {
        snprintf(key, sizeof key, "base-%d", k);
        REQUIRE(kv_put1(e.s, key, "small", (uint64_t)k + 1) == FL_OK);
    }
    /* Fill, one commit per key, until the map is full: either a put or the
     * commit runs out of pages. */
    for (uint64_t n = 0; n < 1000 && rv == FL_OK; n++) {
        REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
        snprintf(key, sizeof key, "fill-%04u", (unsigned)n);
        rv = store_kv_put(t, key, strlen(key), val, sizeof val, 11 + n, 0);
        if (rv == FL_OK) {
            rv = store_set_applied(t, 11 + n, 1);
        }
        if (rv != FL_OK) {
            put_failed = 1;
            /* The transaction is failed: everything on it returns the error. */
            CHECK_EQ_INT(store_get(t, STORE_KV, "base-0", 6, &v, &vl), FL_EMAPFULL);
            CHECK_EQ_INT(store_put(t, STORE_KV, "x", 1, "x", 1), FL_EMAPFULL);
            CHECK_EQ_INT(store_commit(t), FL_EMAPFULL); /* aborts it */
            break;
        }
        rv = store_commit(t);
        if (rv == FL_OK) {
            committed = 11 + n;
        }
    }
    fprintf(stderr, "   map full after applied %llu (%s failed)\n", (unsigned long long)committed,
            put_failed ? "put" : "commit");
    CHECK_EQ_INT(rv, FL_EMAPFULL);
    CHECK(strstr(store_errmsg(e.s), "MDB_MAP_FULL") != NULL);
    CHECK(committed > 20);
    store_usage(e.s, &used, &map);
    CHECK_EQ_INT(map, (uint64_t)1 << 20);
    CHECK(used <= map && used > map / 2);

    /* Everything committed is intact, the applied index too. */
    CHECK_OK(store_applied(e.s, &i, &tm));
    CHECK_EQ_INT(i, committed);
    for (int k = 0; k < 10; k++) {
        snprintf(key, sizeof key, "base-%d", k);
        CHECK(kv_is(e.s, key, "small"));
    }
    REQUIRE(store_begin(e.s, 0, &t) == FL_OK);
    for (uint64_t n = 11; n <= committed; n++) {
        snprintf(key, sizeof key, "fill-%04u", (unsigned)(n - 11));
        CHECK_OK(store_kv_get(t, key, strlen(key), &kv));
        CHECK(kv.vlen == sizeof val && kv.version == n);
    }
    store_abort(t);

    /* A big write still fails in the put. The transaction is then failed:
     * everything on it returns the error, and it ends with store_abort (pass
     * 0) or with a store_commit that aborts and returns the error (pass 1). */
    for (int pass = 0; pass < 2; pass++) {
        REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
        rv = FL_OK;
        for (int n = 0; n < 100 && rv == FL_OK; n++) {
            snprintf(key, sizeof key, "more-%d", n);
            rv = store_kv_put(t, key, strlen(key), val, sizeof val, committed + 1, 0);
        }
        CHECK_EQ_INT(rv, FL_EMAPFULL);
        CHECK(strstr(store_errmsg(e.s), "MDB_MAP_FULL") != NULL);
        CHECK_EQ_INT(store_get(t, STORE_KV, "base-0", 6, &v, &vl), FL_EMAPFULL);
        CHECK_EQ_INT(store_put(t, STORE_KV, "x", 1, "x", 1), FL_EMAPFULL);
        CHECK_EQ_INT(store_kv_get(t, "base-0", 6, &kv), FL_EMAPFULL);
        if (pass == 0) {
            store_abort(t);
        } else {
            CHECK_EQ_INT(store_commit(t), FL_EMAPFULL);
            CHECK(strstr(store_errmsg(e.s), "MDB_MAP_FULL") != NULL);
        }
        CHECK_EQ_INT(applied_index(e.s), committed);
        CHECK(kv_absent(e.s, "more-0"));
        CHECK(kv_is(e.s, "base-9", "small"));
    }

    /* Deleting makes room; smaller writes then succeed. On a full map the
     * deletes go one key per transaction: LMDB reuses the pages a
     * transaction frees only from the next transaction on, and copying the
     * touched pages of a big delete needs more than the few free pages left
     * (docs/STORE.md, "A full map"). */
    for (uint64_t n = 11; n <= committed; n += 2) {
        REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
        snprintf(key, sizeof key, "fill-%04u", (unsigned)(n - 11));
        CHECK_OK(store_kv_del(t, key, strlen(key)));
        CHECK_OK(store_set_applied(t, committed + 1, 1));
        CHECK_OK(store_commit(t));
    }
    CHECK_OK(kv_put1(e.s, "after", "a smaller value", committed + 2));
    CHECK(kv_is(e.s, "after", "a smaller value"));
    CHECK(kv_absent(e.s, "fill-0000"));
    CHECK(!kv_absent(e.s, "fill-0001"));
    CHECK_EQ_INT(applied_index(e.s), committed + 2);
    env_close(&e);
}

/* ---- snapshots and digests -------------------------------------------- */

TEST(dump_load_round_trip)
{
    struct env a, b;
    struct fl_buf d;
    struct store_txn *t;
    const void *v;
    size_t vl;
    uint8_t da[32], db[32];
    uint64_t i, tm;
    int loaded = -1;
    REQUIRE(env_init(&a, 0) == FL_OK);
    REQUIRE(env_init(&b, 0) == FL_OK);
    REQUIRE(populate(a.s, 100, "A") == FL_OK);
    /* b has state of its own, replicated and local. */
    REQUIRE(kv_put1(b.s, "only-in-b", "x", 5) == FL_OK);
    REQUIRE(store_begin(b.s, 1, &t) == FL_OK);
    CHECK_OK(store_put(t, STORE_LOCAL, "b-local", 7, "keep", 4));
    CHECK_OK(store_commit(t));

    fl_buf_init(&d);
    fl_buf_append(&d, "prefix", 6); /* dumps append */
    CHECK_OK(store_dump(a.s, &d, &i, &tm));
    CHECK(i == 100 && tm == 3);
    REQUIRE(d.len > 6 + 24 + 9 + 32);
    CHECK(memcmp(d.data, "prefix", 6) == 0);
    CHECK(memcmp(d.data + 6, "FLSNAP01", 8) == 0);
    digest(a.s, da);
    CHECK(memcmp(da, d.data + d.len - 32, 32) == 0); /* digest == checksum */

    CHECK_OK(store_load(b.s, d.data + 6, d.len - 6, &loaded));
    CHECK_EQ_INT(loaded, 1);
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) == 0);
    CHECK(same_contents(a.s, b.s));
    CHECK_OK(store_applied(b.s, &i, &tm));
    CHECK(i == 100 && tm == 3);
    CHECK(kv_absent(b.s, "only-in-b"));
    CHECK(kv_is(b.s, "key-07", "A-value-7"));
    REQUIRE(store_begin(b.s, 0, &t) == FL_OK);
    CHECK_OK(store_get(t, STORE_LOCAL, "b-local", 7, &v, &vl)); /* LOCAL untouched */
    CHECK_EQ_INT(store_get(t, STORE_LOCAL, "local-key", 9, &v, &vl), FL_ENOTFOUND);
    store_abort(t);

    /* Survives a reopen; loading the same dump again is a no-op. */
    store_close(b.s);
    REQUIRE(env_open(&b, 0) == FL_OK);
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) == 0);
    CHECK_OK(store_load(b.s, d.data + 6, d.len - 6, &loaded));
    CHECK_EQ_INT(loaded, 0);
    /* A dump of b is byte-for-byte the dump of a. */
    {
        struct fl_buf d2;
        fl_buf_init(&d2);
        CHECK_OK(store_dump(b.s, &d2, NULL, NULL));
        CHECK(d2.len == d.len - 6 && memcmp(d2.data, d.data + 6, d2.len) == 0);
        fl_buf_close(&d2);
    }
    fl_buf_close(&d);
    env_close(&a);
    env_close(&b);
}

TEST(load_never_rolls_back)
{
    struct env a, b;
    struct fl_buf d;
    uint8_t before[32], after[32];
    int loaded = -1;
    REQUIRE(env_init(&a, 0) == FL_OK);
    REQUIRE(env_init(&b, 0) == FL_OK);
    REQUIRE(populate(a.s, 100, "old") == FL_OK);
    REQUIRE(populate(b.s, 200, "new") == FL_OK);
    fl_buf_init(&d);
    REQUIRE(store_dump(a.s, &d, NULL, NULL) == FL_OK);
    digest(b.s, before);
    CHECK_OK(store_load(b.s, d.data, d.len, &loaded));
    CHECK_EQ_INT(loaded, 0);
    digest(b.s, after);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_EQ_INT(applied_index(b.s), 200);
    CHECK(kv_is(b.s, "key-00", "new-value-0"));
    /* Equal index: not loaded either. */
    fl_buf_reset(&d);
    REQUIRE(populate(a.s, 200, "same") == FL_OK);
    REQUIRE(store_dump(a.s, &d, NULL, NULL) == FL_OK);
    CHECK_OK(store_load(b.s, d.data, d.len, &loaded));
    CHECK_EQ_INT(loaded, 0);
    CHECK(kv_is(b.s, "key-00", "new-value-0"));
    /* A load while a write txn is open is refused. */
    {
        struct store_txn *t;
        REQUIRE(store_begin(b.s, 1, &t) == FL_OK);
        CHECK_EQ_INT(store_load(b.s, d.data, d.len, &loaded), FL_EBUSY);
        store_abort(t);
    }
    fl_buf_close(&d);
    env_close(&a);
    env_close(&b);
}

/* A small dump: one record in each replicated table. */
static int small_dump(struct fl_buf *d)
{
    struct env a;
    struct store_txn *t;
    struct store_node n;
    int rv;
    if (env_init(&a, 0) != FL_OK) {
        return -1;
    }
    rv = store_begin(a.s, 1, &t);
    make_node(&n, "s1", STORE_NODE_SERVER, 1);
    if (rv == FL_OK && (rv = store_meta_put(t, "cid", "c1")) == FL_OK &&
        (rv = store_node_put(t, &n)) == FL_OK &&
        (rv = store_kv_put(t, "k", 1, "val", 3, 9, 1)) == FL_OK &&
        (rv = store_set_applied(t, 9, 2)) == FL_OK) {
        rv = store_commit(t);
    } else if (rv == FL_OK) {
        store_abort(t);
    }
    fl_buf_init(d);
    if (rv == FL_OK) {
        rv = store_dump(a.s, d, NULL, NULL);
    }
    env_close(&a);
    return rv;
}

TEST(load_rejects_corrupt_dumps)
{
    struct env b;
    struct fl_buf d, g;
    uint8_t *copy, want[32], got[32];
    int loaded, rv, accepted = 0;
    REQUIRE(small_dump(&d) == FL_OK);
    fprintf(stderr, "   small dump: %zu bytes\n", d.len);
    REQUIRE(env_init(&b, 0) == FL_OK);
    REQUIRE(kv_put1(b.s, "mine", "x", 1) == FL_OK);
    digest(b.s, want);
    copy = fl_malloc(d.len + 1);
    REQUIRE(copy != NULL);

    /* Every byte flipped, every truncation, one extra byte. */
    for (size_t i = 0; i < d.len; i++) {
        for (int pass = 0; pass < 2; pass++) {
            memcpy(copy, d.data, d.len);
            copy[i] ^= pass == 0 ? 0x01 : 0xFF;
            loaded = -1;
            rv = store_load(b.s, copy, d.len, &loaded);
            CHECK(is_reject(rv));
            CHECK_EQ_INT(loaded, 0);
        }
    }
    for (size_t n = 0; n < d.len; n++) {
        loaded = -1;
        CHECK(is_reject(store_load(b.s, d.data, n, &loaded)));
        CHECK_EQ_INT(loaded, 0);
    }
    memcpy(copy, d.data, d.len);
    copy[d.len] = 0;
    CHECK(is_reject(store_load(b.s, copy, d.len + 1, &loaded)));
    digest(b.s, got);
    CHECK(memcmp(want, got, 32) == 0);
    CHECK(kv_is(b.s, "mine", "x"));

    /* The same with a valid checksum, so the parser itself is exercised:
     * never a crash; a rejection changes nothing. A flip can also give a
     * valid dump (a changed value): then start over on a fresh store. */
    for (size_t i = 0; i < d.len - 32; i++) {
        memcpy(copy, d.data, d.len);
        copy[i] ^= 0x80;
        dump_resign(copy, d.len);
        loaded = 0;
        rv = store_load(b.s, copy, d.len, &loaded);
        if (rv == FL_OK) {
            accepted += loaded;
            if (loaded) {
                env_close(&b);
                REQUIRE(env_init(&b, 0) == FL_OK);
                REQUIRE(kv_put1(b.s, "mine", "x", 1) == FL_OK);
            }
            continue;
        }
        CHECK_EQ_INT(rv, FL_EDECODE);
        digest(b.s, got);
        CHECK(memcmp(want, got, 32) == 0);
    }
    fprintf(stderr, "   re-signed flips accepted as valid dumps: %d\n", accepted);

    /* Hand-made dumps with valid checksums. */
#define REJECT(build)                                                                              \
    do {                                                                                           \
        dump_begin(&g, 50, 1);                                                                     \
        build;                                                                                     \
        dump_end(&g);                                                                              \
        loaded = -1;                                                                               \
        CHECK_EQ_INT(store_load(b.s, g.data, g.len, &loaded), FL_EDECODE);                         \
        CHECK_EQ_INT(loaded, 0);                                                                   \
        fl_buf_close(&g);                                                                          \
    } while (0)
    {
        static char k512[512];
        uint8_t h[9] = {STORE_KV, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF};
        memset(k512, 'k', sizeof k512);
        REJECT(dump_rec(&g, STORE_LOCAL, "k", 1, "v", 1));
        REJECT(dump_rec(&g, STORE__NTABLES, "k", 1, "v", 1));
        REJECT(dump_rec(&g, 0xFE, "k", 1, "v", 1));
        REJECT(dump_rec(&g, STORE_KV, k512, 512, "v", 1));
        REJECT(dump_rec(&g, STORE_KV, "", 0, "v", 1));
        REJECT(dump_rec(&g, STORE_KV, "b", 1, "v", 1); dump_rec(&g, STORE_KV, "a", 1, "v", 1));
        REJECT(dump_rec(&g, STORE_KV, "a", 1, "v", 1); dump_rec(&g, STORE_KV, "a", 1, "w", 1));
        REJECT(dump_rec(&g, STORE_KV, "ab", 2, "v", 1); dump_rec(&g, STORE_KV, "a", 1, "v", 1));
        REJECT(dump_rec(&g, STORE_KV, "a", 1, "v", 1); dump_rec(&g, STORE_NODES, "a", 1, "v", 1));
        REJECT(dump_rec(&g, STORE_META, "applied", 7, "0123456789abcdef", 16));
        REJECT(fl_buf_append(&g, h, sizeof h); fl_buf_append(&g, "k", 1)); /* vlen overflow */
        REJECT(dump_rec(&g, 0xFF, "", 0, "", 0); dump_rec(&g, STORE_KV, "a", 1, "v", 1));
        REJECT(dump_rec(&g, 0xFF, "x", 1, "", 0));
        REJECT(fl_buf_append(&g, "\0", 1)); /* a partial record header */
    }
#undef REJECT
    digest(b.s, got);
    CHECK(memcmp(want, got, 32) == 0);

    /* And the hand-made format is the real one: a valid hand-made dump loads. */
    dump_begin(&g, 50, 4);
    dump_rec(&g, STORE_META, "cid", 3, "c9", 2);
    dump_rec(&g, STORE_KV, "a", 1, "not msgpack, still bytes", 24);
    dump_rec(&g, STORE_KV, "ab", 2, "", 0);
    dump_end(&g);
    CHECK_OK(store_load(b.s, g.data, g.len, &loaded));
    CHECK_EQ_INT(loaded, 1);
    CHECK(kv_absent(b.s, "mine"));
    CHECK_EQ_INT(applied_index(b.s), 50);
    digest(b.s, got);
    CHECK(memcmp(got, g.data + g.len - 32, 32) == 0);
    fl_buf_close(&g);
    fl_free(copy);
    fl_buf_close(&d);
    env_close(&b);
}

TEST(load_failure_changes_nothing)
{
    struct env a, b;
    struct fl_buf d;
    uint8_t before[32], after[32];
    int loaded = -1;
    REQUIRE(env_init(&a, 0) == FL_OK);
    REQUIRE(env_init(&b, 0) == FL_OK);
    REQUIRE(populate(a.s, 100, "A") == FL_OK);
    REQUIRE(populate(b.s, 50, "B") == FL_OK);
    fl_buf_init(&d);
    REQUIRE(store_dump(a.s, &d, NULL, NULL) == FL_OK);
    digest(b.s, before);
    store_fault_commit(b.s, 0);
    CHECK_EQ_INT(store_load(b.s, d.data, d.len, &loaded), FL_EIO);
    CHECK_EQ_INT(loaded, 0);
    digest(b.s, after);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_EQ_INT(applied_index(b.s), 50);
    CHECK_OK(store_load(b.s, d.data, d.len, &loaded));
    CHECK_EQ_INT(loaded, 1);
    fl_buf_close(&d);
    env_close(&a);
    env_close(&b);
}

/* `count` values of 4000 bytes under "pad-NNN", applied at `index`. */
static int pad(struct store *s, const char *tag, int count, uint64_t index)
{
    struct store_txn *t;
    char key[32], val[4000];
    int rv = store_begin(s, 1, &t);
    memset(val, tag[0], sizeof val);
    for (int i = 0; i < count && rv == FL_OK; i++) {
        snprintf(key, sizeof key, "pad-%03d", i);
        rv = store_kv_put(t, key, strlen(key), val, sizeof val, index, 0);
    }
    if (rv == FL_OK) {
        rv = store_set_applied(t, index, 1);
    }
    if (rv != FL_OK) {
        store_abort(t);
        return rv;
    }
    return store_commit(t);
}

TEST(load_into_full_map_changes_nothing)
{
    struct env a, b;
    struct fl_buf d;
    uint8_t before[32], after[32];
    int loaded = -1;
    REQUIRE(env_init(&a, 0) == FL_OK);
    REQUIRE(env_init(&b, (size_t)1 << 20) == FL_OK);
    REQUIRE(pad(a.s, "a", 150, 500) == FL_OK);
    REQUIRE(pad(b.s, "b", 100, 100) == FL_OK);
    fl_buf_init(&d);
    REQUIRE(store_dump(a.s, &d, NULL, NULL) == FL_OK);
    digest(b.s, before);
    /* The old tables' pages are free only after the commit: no room. */
    CHECK_EQ_INT(store_load(b.s, d.data, d.len, &loaded), FL_EMAPFULL);
    CHECK_EQ_INT(loaded, 0);
    CHECK(strstr(store_errmsg(b.s), "MDB_MAP_FULL") != NULL);
    digest(b.s, after);
    CHECK(memcmp(before, after, 32) == 0);
    CHECK_EQ_INT(applied_index(b.s), 100);
    CHECK_OK(kv_put1(b.s, "still", "works", 101));
    fl_buf_close(&d);
    env_close(&a);
    env_close(&b);
}

TEST(digests)
{
    struct env a, b;
    struct store_txn *t;
    uint8_t da[32], db[32];
    uint64_t i = 0, tm = 0;
    REQUIRE(env_init(&a, 0) == FL_OK);
    REQUIRE(env_init(&b, 0) == FL_OK);
    digest(a.s, da);
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) == 0); /* two empty stores */
    REQUIRE(populate(a.s, 100, "same") == FL_OK);
    REQUIRE(populate(b.s, 100, "same") == FL_OK);
    CHECK_OK(store_digest(a.s, da, &i, &tm));
    CHECK(i == 100 && tm == 3);
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) == 0);
    /* LOCAL is not part of it. */
    REQUIRE(store_begin(b.s, 1, &t) == FL_OK);
    CHECK_OK(store_put(t, STORE_LOCAL, "other", 5, "x", 1));
    CHECK_OK(store_commit(t));
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) == 0);
    /* One byte of one value. */
    REQUIRE(store_begin(b.s, 1, &t) == FL_OK);
    CHECK_OK(store_kv_put(t, "key-05", 6, "same-value-X", 12, 85, 5));
    CHECK_OK(store_commit(t));
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) != 0);
    REQUIRE(store_begin(b.s, 1, &t) == FL_OK);
    CHECK_OK(store_kv_put(t, "key-05", 6, "same-value-5", 12, 85, 5));
    CHECK_OK(store_commit(t));
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) == 0); /* back to equal */
    /* Same state, another applied position. */
    REQUIRE(store_begin(b.s, 1, &t) == FL_OK);
    CHECK_OK(store_set_applied(t, 101, 3));
    CHECK_OK(store_commit(t));
    digest(b.s, db);
    CHECK(memcmp(da, db, 32) != 0);
    env_close(&a);
    env_close(&b);
}

TEST(usage_grows)
{
    struct env e;
    struct store_txn *t;
    static char val[64 * 1024];
    uint64_t u0, u1, map;
    REQUIRE(env_init(&e, (size_t)64 << 20) == FL_OK);
    store_usage(e.s, &u0, &map);
    CHECK_EQ_INT(map, (uint64_t)64 << 20);
    REQUIRE(store_begin(e.s, 1, &t) == FL_OK);
    for (int i = 0; i < 32; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        CHECK_OK(store_kv_put(t, key, strlen(key), val, sizeof val, 1, 0));
    }
    CHECK_OK(store_commit(t));
    store_usage(e.s, &u1, &map);
    CHECK(u1 >= u0 + 32 * sizeof val);
    env_close(&e);
}

/* ---- allocation failures ------------------------------------------------ */

/* Open, write, dump, digest and load with the n-th allocation failing:
 * every step fails cleanly with FL_ENOMEM (valgrind checks for leaks). */
static int alloc_scenario(const char *tmp, long n)
{
    char dir[400];
    struct store *s = NULL, *s2 = NULL;
    struct store_options o = {.no_sync = 1};
    struct store_txn *t = NULL;
    struct store_node node;
    struct store_cursor *c = NULL;
    struct fl_buf d;
    uint8_t dg[32];
    int rv, loaded;
    fl_buf_init(&d);
    snprintf(dir, sizeof dir, "%s/s%ld", tmp, n);
    make_node(&node, "n1", STORE_NODE_SERVER, 2);
    fl_alloc_fault_set(n);
    rv = store_open(dir, &o, &s, NULL);
    if (rv == FL_OK && (rv = store_begin(s, 1, &t)) == FL_OK) {
        if ((rv = store_kv_put(t, "k", 1, "v", 1, 2, 0)) == FL_OK &&
            (rv = store_node_put(t, &node)) == FL_OK &&
            (rv = store_cursor_open(t, STORE_KV, NULL, 0, &c)) == FL_OK) {
            store_cursor_close(c);
            rv = store_set_applied(t, 2, 1);
        }
        if (rv == FL_OK) {
            rv = store_commit(t);
        } else {
            store_abort(t);
        }
    }
    if (rv == FL_OK) {
        rv = store_dump(s, &d, NULL, NULL);
    }
    if (rv == FL_OK) {
        rv = store_digest(s, dg, NULL, NULL);
    }
    if (rv == FL_OK) {
        snprintf(dir, sizeof dir, "%s/t%ld", tmp, n);
        rv = store_open(dir, &o, &s2, NULL);
    }
    if (rv == FL_OK) {
        rv = store_load(s2, d.data, d.len, &loaded);
    }
    fl_alloc_fault_clear();
    store_close(s2);
    store_close(s);
    fl_buf_close(&d);
    return rv;
}

TEST(allocation_failure_sweep)
{
    char tmp[256];
    long n;
    int rv = FL_ENOMEM;
    REQUIRE(check_tmpdir(tmp, sizeof tmp) != NULL);
    for (n = 0; n < 200 && rv != FL_OK; n++) {
        rv = alloc_scenario(tmp, n);
        CHECK(rv == FL_OK || rv == FL_ENOMEM);
    }
    CHECK_EQ_INT(rv, FL_OK);
    fprintf(stderr, "   %ld allocation fault points\n", n - 1);
    check_rmrf(tmp);
}

/* ---- lmdb-utils can read the store ------------------------------------- */

static int run(const char *cmd)
{
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) {
        return -1;
    }
    return WEXITSTATUS(st);
}

static int file_contains(const char *path, const char *needle)
{
    struct fl_buf b;
    char chunk[4096];
    size_t n;
    int found;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    fl_buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        fl_buf_append(&b, chunk, n);
    }
    fclose(f);
    found = b.data != NULL && strstr((const char *)b.data, needle) != NULL;
    fl_buf_close(&b);
    return found;
}

TEST(lmdb_utils_read_the_store)
{
    struct env e;
    char cmd[1200], out[400];
    REQUIRE(env_init(&e, 0) == FL_OK);
    REQUIRE(populate(e.s, 100, "tools") == FL_OK);
    REQUIRE(kv_put1(e.s, "hello-key", "hello-value", 101) == FL_OK);
    snprintf(out, sizeof out, "%s/out.txt", e.tmp);

    /* While the store is open, as an operator would. */
    snprintf(cmd, sizeof cmd, "mdb_stat -a '%s' > '%s' 2>&1", e.dir, out);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK(file_contains(out, "Status of kv"));
    CHECK(file_contains(out, "Status of nodes"));
    snprintf(cmd, sizeof cmd, "mdb_dump -s kv '%s' > '%s' 2>&1", e.dir, out);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK(file_contains(out, "68656c6c6f2d6b6579")); /* "hello-key" in hex */
    snprintf(cmd, sizeof cmd, "mdb_dump -p -s meta '%s' > '%s' 2>&1", e.dir, out);
    CHECK_EQ_INT(run(cmd), 0);
    CHECK(file_contains(out, "cluster_id"));
    CHECK(file_contains(out, "tools"));
    store_close(e.s);
    e.s = NULL;
    snprintf(cmd, sizeof cmd, "mdb_stat -a '%s' > /dev/null 2>&1", e.dir);
    CHECK_EQ_INT(run(cmd), 0);
    env_close(&e);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    RUN(open_creates_directory);
    RUN(raw_put_get_del_every_table);
    RUN(cursor_order_and_start);
    RUN(kv_versions);
    RUN(kv_decode_total);
    RUN(node_round_trip);
    RUN(node_decode_total);
    RUN(meta_strings);
    RUN(applied_persists_across_reopen);
    RUN(log_durable_marker_and_rebuild);
    RUN(abort_leaves_nothing);
    RUN(injected_commit_failure);
    RUN(map_full);
    RUN(dump_load_round_trip);
    RUN(load_never_rolls_back);
    RUN(load_rejects_corrupt_dumps);
    RUN(load_failure_changes_nothing);
    RUN(load_into_full_map_changes_nothing);
    RUN(digests);
    RUN(usage_grows);
    RUN(allocation_failure_sweep);
    RUN(lmdb_utils_read_the_store);
    RUN(session_record_formats);
    RUN(session_written_formats);
    RUN(job_ref_names);
    return check_summary();
}
