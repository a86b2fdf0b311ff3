/* Logs and snapshots written by earlier code still read the same.
 *
 * tests/corpus/vN/ hold what a real three-server cluster wrote on its disk
 * (tests/corpus/capture.py): every entry of server-1's Raft log, the snapshot
 * it took partway, and the digest every server reported at the end. Today's
 * code must
 *   - apply the log from an empty store to that digest, decoding every entry;
 *   - reach, at the snapshot's position, the snapshot's exact bytes;
 *   - load the snapshot and apply the rest of the log to the same digest.
 * A change to a command or record encoding that misreads an existing log or
 * snapshot fails here. Each corpus is checked on its own; every command type
 * the servers propose is in one of them (NODE_REMOVE excepted: no server
 * proposes it): v1 was written before the agent deny-list, v2 after. */
#include <jansson.h>
#include <sodium.h>

#include "check.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "fsm/cmd.h"
#include "fsm/fsm.h"
#include "spec/spec.h"
#include "store/store.h"

static const char *const corpora[] = {"v1", "v2"};
static const char *corpus_dir; /* the corpus the tests run on now */
static int types_seen[FSM_CMD__MAX];
#define CORPUS_COMMAND 1 /* raft_uv's entry type RAFT_COMMAND */

struct corpus_entry {
    uint64_t index, term;
    unsigned type;
    const uint8_t *data;
    size_t len;
};

struct corpus {
    uint8_t *raw;
    size_t raw_len;
    struct corpus_entry *e;
    size_t n;
    uint8_t *snap;
    size_t snap_len;
    uint64_t snap_index; /* the Raft snapshot's index */
    uint64_t last_index;
    char digest[65];
};

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    long n;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = fl_malloc((size_t)n + 1);
        if (p != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
            fl_free(p);
            p = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return p;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static int corpus_load(struct corpus *c)
{
    json_t *m;
    size_t cap = 0, pos = 0;
    char path[512];
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/tests/corpus/%s/entries", FLOTILLA_SOURCE_DIR, corpus_dir);
    c->raw = slurp(path, &c->raw_len);
    snprintf(path, sizeof path, "%s/tests/corpus/%s/snapshot", FLOTILLA_SOURCE_DIR, corpus_dir);
    c->snap = slurp(path, &c->snap_len);
    snprintf(path, sizeof path, "%s/tests/corpus/%s/manifest", FLOTILLA_SOURCE_DIR, corpus_dir);
    if (c->raw == NULL || c->snap == NULL || (m = json_load_file(path, 0, NULL)) == NULL) {
        return -1;
    }
    c->snap_index = (uint64_t)json_integer_value(json_object_get(m, "snapshot_index"));
    c->last_index = (uint64_t)json_integer_value(json_object_get(m, "last_index"));
    snprintf(c->digest, sizeof c->digest, "%s",
             json_string_value(json_object_get(m, "digest"))
                 ? json_string_value(json_object_get(m, "digest"))
                 : "");
    json_decref(m);
    while (pos + 24 <= c->raw_len) {
        struct corpus_entry *e;
        uint32_t len = (uint32_t)(le64(c->raw + pos + 16) >> 32);
        if (c->n == cap) {
            cap = cap ? 2 * cap : 256;
            c->e = fl_realloc(c->e, cap * sizeof *c->e);
        }
        e = &c->e[c->n++];
        e->index = le64(c->raw + pos);
        e->term = le64(c->raw + pos + 8);
        e->type = c->raw[pos + 16];
        e->data = c->raw + pos + 24;
        e->len = len;
        pos += 24 + (((size_t)len + 7) & ~(size_t)7);
    }
    return pos == c->raw_len ? 0 : -1;
}

static void corpus_free(struct corpus *c)
{
    fl_free(c->raw);
    fl_free(c->snap);
    fl_free(c->e);
}

struct replica {
    char dir[256];
    struct store *store;
    struct fsm fsm;
};

static void replica_open(struct replica *r)
{
    memset(r, 0, sizeof *r);
    REQUIRE(check_tmpdir(r->dir, sizeof r->dir) != NULL);
    CHECK_OK(store_open(r->dir, NULL, &r->store, NULL));
    /* Not the id of any server in the corpus: no results are delivered. */
    CHECK_OK(fsm_init(&r->fsm, r->store, 99));
}

static void replica_close(struct replica *r)
{
    fsm_close(&r->fsm);
    store_close(r->store);
    check_rmrf(r->dir);
}

/* Apply entry e as raft would: commands go to the state machine with their
 * index; the others (configuration, barriers) never reach it. */
static void replica_apply(struct replica *r, const struct corpus_entry *e)
{
    if (e->type == CORPUS_COMMAND) {
        fsm_apply(&r->fsm, e->index, e->index, e->data, e->len);
    }
}

static void hex(const uint8_t d[32], char out[65])
{
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static void digest_hex(struct replica *r, char out[65], uint64_t *index)
{
    uint8_t d[32];
    fsm_flush(&r->fsm);
    CHECK_OK(store_digest(r->store, d, index, NULL));
    hex(d, out);
}

/* The command codec writes today what the earlier code wrote: every entry
 * of the log, decoded and encoded again, is the same bytes (commands,
 * envelopes, trailing groups, the entry's frame and padding). */
TEST(the_corpus_encodes_again_byte_for_byte)
{
    struct corpus c;
    size_t n_cmds = 0;
    REQUIRE(corpus_load(&c) == 0);
    for (size_t i = 0; i < c.n; i++) {
        struct fsm_entry e;
        struct fsm_entry_writer w;
        void *out = NULL;
        size_t len = 0;
        if (c.e[i].type != CORPUS_COMMAND) {
            continue;
        }
        REQUIRE(fsm_entry_open(&e, c.e[i].data, c.e[i].len) == FL_OK);
        fsm_writer_init(&w);
        for (unsigned k = 0; k < e.n_cmds; k++) {
            struct fsm_cmd cmd;
            size_t at = fsm_writer_size(&w);
            size_t n = e.slots[k + 1].off - e.slots[k].off;
            CHECK_OK(fsm_entry_cmd(&e, k, &cmd));
            CHECK_OK(fsm_writer_add(&w, &cmd));
            if (fsm_writer_size(&w) - at != n ||
                memcmp(w.body.data + at, e.data + e.slots[k].off, n) != 0) {
                fprintf(stderr, "entry %llu command %u (%s) encodes differently\n",
                        (unsigned long long)c.e[i].index, k, fsm_cmd_type_name(cmd.type));
                CHECK(0);
            }
            n_cmds++;
        }
        CHECK_OK(fsm_writer_finish(&w, e.origin, e.seq, e.term, e.time_ms, fl_malloc, &out, &len));
        CHECK(len == c.e[i].len && memcmp(out, c.e[i].data, len) == 0);
        fl_free(out);
        fsm_writer_close(&w);
        fsm_entry_close(&e);
    }
    CHECK(n_cmds > 0);
    corpus_free(&c);
}

/* The executor specs in the log (TASK_SUBMIT's spec, written by earlier
 * code) decode and encode again to the same bytes; a version 1 spec (before
 * env and secret_env) still decodes. */
TEST(the_corpus_specs_encode_again_byte_for_byte)
{
    /* [1, exec, ["true"], "", "", "", "", 0, [], 0] */
    static const uint8_t v1[] = {0x9a, 1,    1,    0x91, 0xa4, 't', 'r',  'u',
                                 'e',  0xa0, 0xa0, 0xa0, 0xa0, 0,   0x90, 0};
    /* [2, shell, [], "s", "m", "a", "p", 5, ["v"], 7, ["E=1"], ["S=x"]] */
    static const uint8_t v2[] = {0x9c, 2,    2,   0x90, 0xa1, 's',  0xa1, 'm', 0xa1,
                                 'a',  0xa1, 'p', 5,    0x91, 0xa1, 'v',  7,   0x91,
                                 0xa3, 'E',  '=', '1',  0x91, 0xa3, 'S',  '=', 'x'};
    struct corpus c;
    struct node_spec s;
    struct fl_buf b;
    size_t n_specs = 0;
    fl_buf_init(&b);
    REQUIRE(corpus_load(&c) == 0);
    for (size_t i = 0; i < c.n; i++) {
        struct fsm_entry e;
        if (c.e[i].type != CORPUS_COMMAND) {
            continue;
        }
        REQUIRE(fsm_entry_open(&e, c.e[i].data, c.e[i].len) == FL_OK);
        for (unsigned k = 0; k < e.n_cmds; k++) {
            struct fsm_cmd cmd;
            if (fsm_entry_cmd(&e, k, &cmd) != FL_OK || cmd.type != FSM_CMD_TASK_SUBMIT) {
                continue;
            }
            CHECK_OK(node_spec_decode(cmd.u.task.spec, cmd.u.task.spec_len, &s));
            fl_buf_reset(&b);
            CHECK_OK(node_spec_encode(&s, &b));
            CHECK(b.len == cmd.u.task.spec_len && memcmp(b.data, cmd.u.task.spec, b.len) == 0);
            CHECK(s.argv[s.argc] == NULL && s.env[s.n_env] == NULL);
            node_spec_close(&s);
            n_specs++;
        }
        fsm_entry_close(&e);
    }
    CHECK(n_specs > 0);
    /* Each field in its place, as the earlier code wrote them. */
    CHECK_OK(node_spec_decode(v2, sizeof v2, &s));
    CHECK(s.kind == NODE_SHELL && s.argc == 0 && strcmp(s.script, "s") == 0 &&
          strcmp(s.module, "m") == 0 && strcmp(s.module_args, "a") == 0 &&
          strcmp(s.playbook, "p") == 0 && s.sleep_ms == 5 && s.n_vars == 1 &&
          strcmp(s.vars[0], "v") == 0 && s.kill_grace_ms == 7 && s.n_env == 1 &&
          strcmp(s.env[0], "E=1") == 0 && s.n_secret == 1 && strcmp(s.secret[0], "S=x") == 0);
    fl_buf_reset(&b);
    CHECK_OK(node_spec_encode(&s, &b));
    CHECK(b.len == sizeof v2 && memcmp(b.data, v2, sizeof v2) == 0);
    node_spec_close(&s);
    CHECK_OK(node_spec_decode(v1, sizeof v1, &s));
    CHECK(s.kind == NODE_EXEC && s.argc == 1 && strcmp(s.argv[0], "true") == 0 &&
          s.argv[1] == NULL && s.n_env == 0 && s.env[0] == NULL && s.secret[0] == NULL);
    node_spec_close(&s);
    fl_buf_close(&b);
    corpus_free(&c);
}

TEST(the_corpus_is_a_whole_log)
{
    struct corpus c;
    REQUIRE(corpus_load(&c) == 0);
    REQUIRE(c.n > 0);
    CHECK_EQ_INT(c.e[0].index, 1);
    for (size_t i = 1; i < c.n; i++) {
        CHECK_EQ_INT(c.e[i].index, c.e[i - 1].index + 1);
    }
    CHECK(c.snap_index > 1 && c.snap_index < c.last_index);
    CHECK_EQ_INT(c.e[c.n - 1].index, c.last_index);
    /* Every command type the servers propose appears (decoded by today's
     * decoder, envelopes opened). */
    for (size_t i = 0; i < c.n; i++) {
        struct fsm_entry e;
        if (c.e[i].type != CORPUS_COMMAND) {
            continue;
        }
        CHECK_OK(fsm_entry_open(&e, c.e[i].data, c.e[i].len));
        for (unsigned k = 0; k < e.n_cmds; k++) {
            struct fsm_cmd cmd;
            CHECK_OK(fsm_entry_cmd(&e, k, &cmd));
            if (cmd.type > 0 && cmd.type < FSM_CMD__MAX) {
                types_seen[cmd.type]++;
                types_seen[FSM_CMD_REQUEST] += cmd.req.serial != 0;
            }
        }
        fsm_entry_close(&e);
    }
    corpus_free(&c);
}

TEST(every_command_type_is_in_a_corpus)
{
    for (int t = FSM_CMD_KV_PUT; t < FSM_CMD__MAX; t++) {
        if (t != FSM_CMD_NODE_REMOVE && types_seen[t] == 0) {
            fprintf(stderr, "no %s command in any corpus\n", fsm_cmd_type_name(t));
            CHECK(types_seen[t] > 0);
        }
    }
}

TEST(the_log_applies_to_the_digest_the_servers_reported)
{
    struct corpus c;
    struct replica r;
    char got[65];
    uint64_t index = 0;
    REQUIRE(corpus_load(&c) == 0);
    replica_open(&r);
    for (size_t i = 0; i < c.n; i++) {
        replica_apply(&r, &c.e[i]);
    }
    digest_hex(&r, got, &index);
    CHECK_EQ_INT(r.fsm.n_bad, 0);
    CHECK_EQ_INT(index, c.last_index);
    if (strcmp(got, c.digest) != 0) {
        fprintf(stderr, "digest %s, the servers reported %s\n", got, c.digest);
    }
    CHECK(strcmp(got, c.digest) == 0);
    replica_close(&r);
    corpus_free(&c);
}

TEST(replaying_to_the_snapshot_gives_its_bytes)
{
    struct corpus c;
    struct replica r;
    struct fl_buf dump;
    uint64_t index = 0, term = 0;
    REQUIRE(corpus_load(&c) == 0);
    replica_open(&r);
    for (size_t i = 0; i < c.n && c.e[i].index <= c.snap_index; i++) {
        replica_apply(&r, &c.e[i]);
    }
    fsm_flush(&r.fsm);
    fl_buf_init(&dump);
    CHECK_OK(store_dump(r.store, &dump, &index, &term));
    CHECK(index <= c.snap_index && index > 1);
    CHECK_EQ_INT(dump.len, c.snap_len);
    CHECK(dump.len == c.snap_len && memcmp(dump.data, c.snap, c.snap_len) == 0);
    fl_buf_close(&dump);
    replica_close(&r);
    corpus_free(&c);
}

TEST(the_snapshot_and_the_rest_of_the_log_reach_the_same_digest)
{
    struct corpus c;
    struct replica r;
    char got[65];
    uint64_t index = 0;
    REQUIRE(corpus_load(&c) == 0);
    replica_open(&r);
    /* What raft_start does with a snapshot: restore, then the entries after
     * the snapshot's index are applied. */
    CHECK_OK(fsm_restore(&r.fsm, c.snap, c.snap_len));
    CHECK_EQ_INT(r.fsm.n_restores, 1);
    for (size_t i = 0; i < c.n; i++) {
        if (c.e[i].index > c.snap_index) {
            replica_apply(&r, &c.e[i]);
        }
    }
    digest_hex(&r, got, &index);
    CHECK_EQ_INT(r.fsm.n_bad, 0);
    CHECK_EQ_INT(index, c.last_index);
    CHECK(strcmp(got, c.digest) == 0);
    replica_close(&r);
    corpus_free(&c);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof corpora / sizeof corpora[0]; i++) {
        corpus_dir = corpora[i];
        fprintf(stderr, "== tests/corpus/%s\n", corpus_dir);
        RUN(the_corpus_encodes_again_byte_for_byte);
        RUN(the_corpus_specs_encode_again_byte_for_byte);
        RUN(the_corpus_is_a_whole_log);
        RUN(the_log_applies_to_the_digest_the_servers_reported);
        RUN(replaying_to_the_snapshot_gives_its_bytes);
        RUN(the_snapshot_and_the_rest_of_the_log_reach_the_same_digest);
    }
    RUN(every_command_type_is_in_a_corpus);
    return check_summary();
}
