/* The command codec of log entries: round trips, framing, and a total decoder. */
#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/mpcheck.h"
#include "fsm/cmd.h"

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
        msgpack_unpacked u;
        fsm_writer_init(&w);
        CHECK_OK(fsm_writer_add(&w, &in));
        CHECK_OK(fsm_cmd_decode_one(w.body.data, w.body.size, &u, &out));
        CHECK_EQ_INT(out.type, FSM_CMD_TASK_SUBMIT);
        CHECK_EQ_INT(out.u.task.max_running, 3);
        CHECK_EQ_INT(out.u.task.fail_stop, 2);
        CHECK_EQ_INT(out.u.task.placement, FSM_PLACE_HOST);
        msgpack_unpacked_destroy(&u);
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
    CHECK_EQ_INT(e.cmds[0].via.array.size, 11);
    fsm_entry_close(&e);
    fl_free(buf);
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
    RUN(mpcheck_refuses_huge_claims);
    RUN(total_decoder_sweep);
    return check_summary();
}
