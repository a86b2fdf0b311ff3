/* The command codec of log entries: round trips, framing, and a total decoder. */
#include <msgpack.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/mpcheck.h"
#include "fsm/cmd.h"
#include "fsm/cmd_int.h"

static void *plain_alloc(size_t n)
{
    return fl_malloc(n);
}

static void encode(const struct fsm_cmd *cmds, unsigned n, void **out, size_t *len)
{
    struct fsm_entry_writer w;
    fsm_writer_init(&w);
    for (unsigned i = 0; i < n; i++) {
        CHECK_OK(fsm_writer_add(&w, &cmds[i]));
    }
    CHECK_OK(fsm_writer_finish(&w, 7, 42, 3, 1700000000123ull, plain_alloc, out, len));
    fsm_writer_close(&w);
}

static struct fsm_cmd kv_put(const char *k, const char *v, int has_cas, uint64_t cas)
{
    struct fsm_cmd c = {0};
    c.type = FSM_CMD_KV_PUT;
    c.u.kv.key = k;
    c.u.kv.klen = strlen(k);
    c.u.kv.value = (const uint8_t *)v;
    c.u.kv.vlen = strlen(v);
    c.u.kv.has_cas = has_cas;
    c.u.kv.cas = cas;
    return c;
}

TEST(round_trip_all_types)
{
    static const char *labels[] = {"role=web", "dc=east"};
    struct fsm_cmd in[6] = {0};
    struct fsm_entry e;
    void *buf;
    size_t len;

    in[0] = kv_put("alpha", "one", 0, 0);
    in[1] = kv_put("beta", "", 1, 99);
    in[2].type = FSM_CMD_KV_DEL;
    in[2].u.kv.key = "alpha";
    in[2].u.kv.klen = 5;
    in[2].u.kv.has_cas = 1;
    in[2].u.kv.cas = 12;
    in[3].type = FSM_CMD_NODE_REGISTER;
    in[3].u.node.id = "server-1";
    in[3].u.node.idlen = 8;
    in[3].u.node.raft_id = 1;
    in[3].u.node.raft_addr = "127.0.0.1:8501";
    in[3].u.node.raft_addr_len = 14;
    in[3].u.node.api_addr = "127.0.0.1:8401";
    in[3].u.node.api_addr_len = 14;
    in[3].u.node.kind = STORE_NODE_SERVER;
    in[3].u.node.n_labels = 2;
    for (int i = 0; i < 2; i++) {
        in[3].u.node.labels[i] = labels[i];
        in[3].u.node.label_lens[i] = strlen(labels[i]);
    }
    in[3].u.node.cap = 8;
    in[4].type = FSM_CMD_NODE_CAP;
    in[4].u.node.id = "server-1";
    in[4].u.node.idlen = 8;
    in[4].u.node.cap = 0;
    in[5].type = FSM_CMD_NODE_DRAIN;
    in[5].u.node.id = "server-1";
    in[5].u.node.idlen = 8;
    in[5].u.node.drain = 1;

    encode(in, 6, &buf, &len);
    CHECK_EQ_INT(len % 8, 0);
    REQUIRE(fsm_entry_open(&e, buf, len) == FL_OK);
    CHECK_EQ_INT(e.origin, 7);
    CHECK_EQ_INT(e.seq, 42);
    CHECK_EQ_INT(e.term, 3);
    CHECK_EQ_INT(e.time_ms, 1700000000123ull);
    CHECK_EQ_INT(e.n_cmds, 6);
    for (unsigned i = 0; i < 6; i++) {
        struct fsm_cmd out;
        CHECK_OK(fsm_entry_cmd(&e, i, &out));
        CHECK_EQ_INT(out.type, in[i].type);
        CHECK_OK(fsm_cmd_validate(&out, NULL));
    }
    {
        struct fsm_cmd out;
        fsm_entry_cmd(&e, 1, &out);
        CHECK_EQ_INT(out.u.kv.vlen, 0);
        CHECK_EQ_INT(out.u.kv.has_cas, 1);
        CHECK_EQ_INT(out.u.kv.cas, 99);
        fsm_entry_cmd(&e, 3, &out);
        CHECK_EQ_INT(out.u.node.n_labels, 2);
        CHECK(out.u.node.label_lens[1] == 7 && memcmp(out.u.node.labels[1], "dc=east", 7) == 0);
        CHECK_EQ_INT(out.u.node.cap, 8);
        fsm_entry_cmd(&e, 5, &out);
        CHECK_EQ_INT(out.u.node.drain, 1);
    }
    CHECK_EQ_INT(fsm_entry_cmd(&e, 6, &(struct fsm_cmd){0}), FL_EINVAL);
    fsm_entry_close(&e);
    fl_free(buf);
}

TEST(empty_batch_and_padding)
{
    struct fsm_entry e;
    void *buf;
    size_t len;
    encode(NULL, 0, &buf, &len);
    CHECK_EQ_INT(len % 8, 0);
    CHECK_OK(fsm_entry_open(&e, buf, len));
    CHECK_EQ_INT(e.n_cmds, 0);
    fsm_entry_close(&e);
    /* Non-zero bytes in the padding are refused. */
    ((uint8_t *)buf)[len - 1] = 1;
    CHECK_EQ_INT(fsm_entry_open(&e, buf, len), FL_EDECODE);
    fsm_entry_close(&e);
    fl_free(buf);
}

TEST(validation)
{
    char big[STORE_KV_MAX_KEY + 2];
    struct fsm_cmd c = kv_put("", "v", 0, 0);
    char why[FL_ERRMSG_SIZE];
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    c = kv_put(big, "v", 0, 0);
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_ETOOBIG);
    c.u.kv.klen = 3;
    c.u.kv.vlen = STORE_KV_MAX_VALUE + 1;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_ETOOBIG);
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_NODE_CAP;
    c.u.node.id = "bad/name";
    c.u.node.idlen = 8;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
    c.type = 99;
    CHECK_EQ_INT(fsm_cmd_validate(&c, why), FL_EINVAL);
}

TEST(future_format_and_unknown_command)
{
    struct fsm_entry e;
    struct fsm_cmd c;
    /* [2, 1, 1, 1, 1, []] : a format this build does not know */
    uint8_t v2[8] = {0x96, 0x02, 0x01, 0x01, 0x01, 0x01, 0x90, 0x00};
    /* [1, 1, 1, 1, 1, [[200, "x"]]] : an unknown command type */
    uint8_t unk[16] = {0x96, 0x01, 0x01, 0x01, 0x01, 0x01, 0x91, 0x92, 0xcc, 200, 0xa1, 'x'};
    CHECK_EQ_INT(fsm_entry_open(&e, v2, sizeof v2), FL_EVERSION);
    fsm_entry_close(&e);
    REQUIRE(fsm_entry_open(&e, unk, sizeof unk) == FL_OK);
    CHECK_EQ_INT(fsm_entry_cmd(&e, 0, &c), FL_EVERSION);
    CHECK_EQ_INT(c.type, FSM_CMD_UNKNOWN);
    fsm_entry_close(&e);
}

/* A TASK_SUBMIT packed as entries were before the rollout controls: 11
 * fields, or `extra` more (0 .. 3) trailing controls. */
static void old_task_entry(msgpack_sbuffer *sb, unsigned extra)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint8(&pk, FSM_CMD_FORMAT);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 1000);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 11 + extra);
    msgpack_pack_uint8(&pk, FSM_CMD_TASK_SUBMIT);
    msgpack_pack_str_with_body(&pk, "t1", 2);
    msgpack_pack_str_with_body(&pk, "", 0);
    msgpack_pack_str_with_body(&pk, "", 0);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "n1", 2);
    msgpack_pack_str_with_body(&pk, "n2", 2);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_int32(&pk, 0);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_bin_with_body(&pk, "spec", 4);
    for (unsigned i = 0; i < extra; i++) {
        msgpack_pack_uint32(&pk, 1);
    }
}

TEST(task_rollout_controls)
{
    static const char *hosts[] = {"n1", "n2"};
    struct fsm_cmd in = {0}, out;
    struct fsm_entry e;
    msgpack_sbuffer sb;
    char why[FL_ERRMSG_SIZE];
    void *buf;
    size_t len;

    in.type = FSM_CMD_TASK_SUBMIT;
    in.u.task.id = "t1";
    in.u.task.idlen = 2;
    in.u.task.n_hosts = 2;
    in.u.task.host_ptrs = hosts;
    in.u.task.unit_size = 1;
    in.u.task.spec = (const uint8_t *)"spec";
    in.u.task.spec_len = 4;
    in.u.task.max_running = 3;
    in.u.task.fail_stop = 2;
    in.u.task.placement = FSM_PLACE_HOST;
    encode(&in, 1, &buf, &len);
    REQUIRE(fsm_entry_open(&e, buf, len) == FL_OK);
    CHECK_OK(fsm_entry_cmd(&e, 0, &out));
    CHECK_EQ_INT(out.u.task.max_running, 3);
    CHECK_EQ_INT(out.u.task.fail_stop, 2);
    CHECK_EQ_INT(out.u.task.placement, FSM_PLACE_HOST);
    CHECK_EQ_INT(out.u.task.n_hosts, 2);
    CHECK_OK(fsm_cmd_validate(&out, why));
    fsm_entry_close(&e);
    fl_free(buf);
    /* A job's template is one command encoded alone: it keeps them too. */
    {
        struct fsm_entry_writer w;
        void *mem;
        fsm_writer_init(&w);
        CHECK_OK(fsm_writer_add(&w, &in));
        CHECK_OK(fsm_cmd_decode_one(w.body.data, w.body.len, &mem, &out));
        CHECK_EQ_INT(out.type, FSM_CMD_TASK_SUBMIT);
        CHECK_EQ_INT(out.u.task.max_running, 3);
        CHECK_EQ_INT(out.u.task.fail_stop, 2);
        CHECK_EQ_INT(out.u.task.placement, FSM_PLACE_HOST);
        fl_free(mem);
        fsm_writer_close(&w);
    }

    /* An entry written before the controls: 11 fields, decoded as zeros. */
    old_task_entry(&sb, 0);
    REQUIRE(fsm_entry_open(&e, sb.data, sb.size) == FL_OK);
    memset(&out, 0xff, sizeof out);
    CHECK_OK(fsm_entry_cmd(&e, 0, &out));
    CHECK_EQ_INT(out.type, FSM_CMD_TASK_SUBMIT);
    CHECK_EQ_INT(out.u.task.n_hosts, 2);
    CHECK_EQ_INT(out.u.task.spec_len, 4);
    CHECK_EQ_INT(out.u.task.max_running, 0);
    CHECK_EQ_INT(out.u.task.fail_stop, 0);
    CHECK_EQ_INT(out.u.task.placement, FSM_PLACE_ANY);
    CHECK_OK(fsm_cmd_validate(&out, why));
    fsm_entry_close(&e);
    msgpack_sbuffer_destroy(&sb);
    /* The controls come as three together. */
    for (unsigned extra = 1; extra <= 3; extra++) {
        old_task_entry(&sb, extra);
        REQUIRE(fsm_entry_open(&e, sb.data, sb.size) == FL_OK);
        CHECK_EQ_INT(fsm_entry_cmd(&e, 0, &out), extra == 3 ? FL_OK : FL_EDECODE);
        fsm_entry_close(&e);
        msgpack_sbuffer_destroy(&sb);
    }
    /* Without controls a task encodes as before (11 fields). */
    in.u.task.max_running = 0;
    in.u.task.fail_stop = 0;
    in.u.task.placement = FSM_PLACE_ANY;
    encode(&in, 1, &buf, &len);
    REQUIRE(fsm_entry_open(&e, buf, len) == FL_OK);
    CHECK_EQ_INT(e.data[e.slots[0].off], 0x90 + 11); /* fixarray of 11 */
    fsm_entry_close(&e);
    fl_free(buf);
}

/* Encode c alone (the writer does not validate) and decode it back. */
static int round_trip_one(const struct fsm_cmd *c, struct fsm_cmd *out, void **mem)
{
    struct fsm_entry_writer w;
    int rv;
    fsm_writer_init(&w);
    CHECK_OK(fsm_writer_add(&w, c));
    rv = fsm_cmd_decode_one(w.body.data, w.body.len, mem, out);
    fsm_writer_close(&w);
    return rv;
}

/* Every command is a schema/ table; its bounds hold on both sides: what the
 * validator refuses, the decoder refuses too. */
TEST(command_tables_bound_both_directions)
{
    char err[FL_ERRMSG_SIZE] = "";
    char id[STORE_NODE_ID_MAX + 1];
    const char *hosts[2] = {"web1", "web 2"};
    struct fsm_cmd c = {0}, out;
    void *mem = NULL;
    int n_types = 0;
    for (int t = 0; t < FSM_CMD__MAX; t++) {
        const struct fsm_cmd_desc *d = fsm__cmd_desc(t);
        if (d != NULL) {
            n_types++;
            if (schema_table_check(d->sc, err) != FL_OK) {
                fprintf(stderr, "%s\n", err);
                CHECK(0);
            }
        }
    }
    CHECK_EQ_INT(n_types, FSM_CMD__MAX - 2); /* all but UNKNOWN and REQUEST */
    CHECK_OK(schema_table_check(&fsm__request_schema, err));

    /* a node id one byte too long */
    memset(id, 'n', sizeof id);
    c.type = FSM_CMD_NODE_CAP;
    c.u.node.id = id;
    c.u.node.idlen = STORE_NODE_ID_MAX - 1;
    CHECK_OK(fsm_cmd_validate(&c, err));
    CHECK_OK(round_trip_one(&c, &out, &mem));
    CHECK(out.u.node.idlen == STORE_NODE_ID_MAX - 1);
    fl_free(mem);
    c.u.node.idlen = STORE_NODE_ID_MAX;
    CHECK_EQ_INT(fsm_cmd_validate(&c, err), FL_EINVAL);
    CHECK_EQ_INT(round_trip_one(&c, &out, &mem), FL_EDECODE);
    fl_free(mem);
    /* a cap over the limit */
    c.u.node.idlen = 4;
    c.u.node.cap = 1000001;
    CHECK_EQ_INT(fsm_cmd_validate(&c, err), FL_EINVAL);
    CHECK_EQ_INT(round_trip_one(&c, &out, &mem), FL_EDECODE);
    fl_free(mem);

    /* a host with a space, in a task's host array (decoded into an arena) */
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_TASK_SUBMIT;
    c.u.task.id = "t";
    c.u.task.idlen = 1;
    c.u.task.unit_size = 1;
    c.u.task.n_hosts = 1;
    c.u.task.host_ptrs = hosts;
    CHECK_OK(fsm_cmd_validate(&c, err));
    CHECK_OK(round_trip_one(&c, &out, &mem));
    CHECK(mem != NULL && out.u.task.n_hosts == 1 && strcmp(out.u.task.host_ptrs[0], "web1") == 0);
    fl_free(mem);
    c.u.task.n_hosts = 2;
    CHECK_EQ_INT(fsm_cmd_validate(&c, err), FL_EINVAL);
    CHECK_EQ_INT(round_trip_one(&c, &out, &mem), FL_EDECODE);
    CHECK(mem == NULL);

    /* a lock command's token group is never a zero token */
    {
        static const uint8_t zero_token[] = {
            0x9a, FSM_CMD_LOCK_RELEASE, 0xa1, 's', 0xa3, 'a', '/', 'b', 0xa0, 0, 0, 0, 1, 0xc2, 0};
        static const uint8_t token[] = {
            0x9a, FSM_CMD_LOCK_RELEASE, 0xa1, 's', 0xa3, 'a', '/', 'b', 0xa0, 0, 0, 0, 1, 0xc2, 9};
        CHECK_EQ_INT(fsm_cmd_decode_one(zero_token, sizeof zero_token, &mem, &out), FL_EDECODE);
        CHECK_OK(fsm_cmd_decode_one(token, sizeof token, &mem, &out));
        CHECK(out.u.lock.token == 9 && out.u.lock.klen == 3 && mem == NULL);
    }
    /* a session's owner (group 3, after a zero token) only when it is set:
     * a session created without one keeps the bytes older code wrote */
    {
        static const uint8_t owned[] = {0x9b, FSM_CMD_SESSION_CREATE,
                                        0xa1, 's',
                                        0xa0, 0xa0,
                                        0xcd, 0x03,
                                        0xe8, 0,
                                        0,    0,
                                        0xc2, 0,
                                        0xa2, 'a',
                                        'b'};
        static const uint8_t empty_owner[] = {
            0x9b, FSM_CMD_SESSION_CREATE, 0xa1, 's', 0xa0, 0xa0, 0xcd, 0x03, 0xe8, 0, 0, 0, 0xc2, 0,
            0xa0};
        static const uint8_t plain[] = {
            0x99, FSM_CMD_SESSION_CREATE, 0xa1, 's', 0xa0, 0xa0, 0xcd, 0x03, 0xe8, 0, 0, 0, 0xc2};
        struct fsm_cmd sc = {0};
        struct fsm_entry_writer w;
        CHECK_OK(fsm_cmd_decode_one(owned, sizeof owned, &mem, &out));
        CHECK(out.u.lock.olen == 2 && memcmp(out.u.lock.owner, "ab", 2) == 0 && mem == NULL);
        CHECK_OK(fsm_cmd_validate(&out, err));
        CHECK_EQ_INT(fsm_cmd_decode_one(empty_owner, sizeof empty_owner, &mem, &out), FL_EDECODE);
        sc.type = FSM_CMD_SESSION_CREATE;
        sc.u.lock.session = "s";
        sc.u.lock.slen = 1;
        sc.u.lock.ttl_ms = 1000;
        fsm_writer_init(&w);
        CHECK_OK(fsm_writer_add(&w, &sc));
        CHECK(w.body.len >= sizeof plain &&
              memcmp((const uint8_t *)w.body.data + w.body.len - sizeof plain, plain,
                     sizeof plain) == 0);
        fsm_writer_close(&w);
        sc.u.lock.owner = "ab";
        sc.u.lock.olen = 2;
        fsm_writer_init(&w);
        CHECK_OK(fsm_writer_add(&w, &sc));
        CHECK(w.body.len >= sizeof owned &&
              memcmp((const uint8_t *)w.body.data + w.body.len - sizeof owned, owned,
                     sizeof owned) == 0);
        fsm_writer_close(&w);
        /* only a creation names an owner, and only a token's accessor */
        sc.type = FSM_CMD_SESSION_RENEW;
        CHECK_EQ_INT(fsm_cmd_validate(&sc, err), FL_EINVAL);
        sc.type = FSM_CMD_SESSION_CREATE;
        sc.u.lock.owner = "AB";
        CHECK_EQ_INT(fsm_cmd_validate(&sc, err), FL_EINVAL);
        sc.u.lock.owner = "0123456789abcdef0";
        sc.u.lock.olen = 17;
        CHECK_EQ_INT(fsm_cmd_validate(&sc, err), FL_EINVAL);
    }
    /* an envelope inside an envelope, a serial of 0 */
    {
        static const uint8_t nested[] = {0x94, 36,  0xa1, 's',  1,  0x94, 36,
                                         0xa1, 's', 1,    0x92, 14, 0xc3};
        static const uint8_t serial0[] = {0x94, 36, 0xa1, 's', 0, 0x92, 14, 0xc3};
        static const uint8_t ok[] = {0x94, 36, 0xa1, 's', 5, 0x92, 14, 0xc3};
        CHECK_EQ_INT(fsm_cmd_decode_one(nested, sizeof nested, &mem, &out), FL_EDECODE);
        CHECK_EQ_INT(fsm_cmd_decode_one(serial0, sizeof serial0, &mem, &out), FL_EDECODE);
        CHECK_OK(fsm_cmd_decode_one(ok, sizeof ok, &mem, &out));
        CHECK(out.type == FSM_CMD_DISPATCH && out.u.dispatch.paused && out.req.serial == 5);
    }
}

TEST(mpcheck_refuses_huge_claims)
{
    size_t used;
    /* array32 claiming 2^32-1 elements in a 5-byte input */
    uint8_t a[5] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    uint8_t s[3] = {0xd9, 0x10, 'a'}; /* str8 of 16 bytes, 1 present */
    uint8_t ok[4] = {0x93, 0x01, 0x02, 0xc0};
    uint8_t deep[40];
    CHECK_EQ_INT(fl_mpcheck(a, sizeof a, 8, &used), FL_EDECODE);
    CHECK_EQ_INT(fl_mpcheck(s, sizeof s, 8, &used), FL_EDECODE);
    CHECK_OK(fl_mpcheck(ok, sizeof ok, 8, &used));
    CHECK_EQ_INT(used, 4);
    memset(deep, 0x91, sizeof deep); /* 40 nested one-element arrays */
    deep[39] = 0x01;
    CHECK_EQ_INT(fl_mpcheck(deep, sizeof deep, 8, &used), FL_EDECODE);
    CHECK_OK(fl_mpcheck(deep, sizeof deep, 63, &used));
}

/* Every truncation and every single-byte change of a valid entry either
 * decodes or is refused; nothing reads out of bounds (run under ASan). */
TEST(total_decoder_sweep)
{
    struct fsm_cmd in[3];
    void *buf;
    size_t len;
    unsigned decoded = 0, refused = 0;
    in[0] = kv_put("alpha", "one", 0, 0);
    in[1] = kv_put("beta", "two", 1, 5);
    in[2] = kv_put("gamma", "three", 0, 0);
    encode(in, 3, &buf, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = fl_malloc(cut ? cut : 1);
        struct fsm_entry e;
        memcpy(copy, buf, cut);
        if (fsm_entry_open(&e, copy, cut) == FL_OK) {
            decoded++;
        } else {
            refused++;
        }
        fsm_entry_close(&e);
        fl_free(copy);
    }
    CHECK(refused > 0);
    for (size_t pos = 0; pos < len; pos++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *copy = fl_malloc(len);
            struct fsm_entry e;
            memcpy(copy, buf, len);
            copy[pos] ^= (uint8_t)(1u << bit);
            if (fsm_entry_open(&e, copy, len) == FL_OK) {
                for (unsigned i = 0; i < e.n_cmds; i++) {
                    struct fsm_cmd c;
                    if (fsm_entry_cmd(&e, i, &c) == FL_OK) {
                        fsm_cmd_validate(&c, NULL);
                    }
                }
                decoded++;
            } else {
                refused++;
            }
            fsm_entry_close(&e);
            fl_free(copy);
        }
    }
    CHECK(decoded > 0);
    fl_free(buf);
}

int main(void)
{
    RUN(round_trip_all_types);
    RUN(empty_batch_and_padding);
    RUN(validation);
    RUN(future_format_and_unknown_command);
    RUN(task_rollout_controls);
    RUN(command_tables_bound_both_directions);
    RUN(mpcheck_refuses_huge_claims);
    RUN(total_decoder_sweep);
    return check_summary();
}
