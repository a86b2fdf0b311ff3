/* agentproto: round trips at the bounds, refusal past them, framing and the
 * stream reader at every split point, and the decoder's totality (truncation,
 * bit flips, hostile counts, allocation faults). Run under valgrind too. */
#include "check.h"

#include "agentproto/aproto.h"
#include "agentproto/aproto_int.h"
#include "common/alloc.h"

/* ---- helpers ------------------------------------------------------------ */

/* Test strings live until the end of the test (drop_all). */
static void *kept[1 << 16];
static size_t n_kept;

static void *keep(void *p)
{
    if (p == NULL || n_kept == sizeof kept / sizeof kept[0]) {
        fprintf(stderr, "test allocation failed\n");
        abort();
    }
    kept[n_kept++] = p;
    return p;
}

static void drop_all(void)
{
    while (n_kept > 0) {
        fl_free(kept[--n_kept]);
    }
}

/* A string of n copies of c (after an optional prefix). */
static char *rep(const char *prefix, char c, size_t n)
{
    size_t p = strlen(prefix);
    char *s = keep(fl_malloc(p + n + 1));
    memcpy(s, prefix, p);
    memset(s + p, c, n);
    s[p + n] = '\0';
    return s;
}

static const char **strs(size_t n, const char *s)
{
    const char **a = keep(fl_calloc(n, sizeof *a));
    for (size_t i = 0; i < n; i++) {
        a[i] = s;
    }
    return a;
}

static struct aproto_unit_ref ref_max(void)
{
    struct aproto_unit_ref r;
    memset(&r, 0, sizeof r);
    memset(r.task_id, 't', APROTO_TASK_ID_MAX);
    r.unit = UINT32_MAX;
    r.attempt = UINT32_MAX;
    r.token = UINT64_MAX;
    return r;
}

static struct aproto_unit_ref ref_small(void)
{
    struct aproto_unit_ref r;
    aproto_unit_ref_set(&r, "task-1", 3, 1, 42);
    return r;
}

/* Encode m with a frame limit, take the frame apart and decode it; the frame
 * bytes are left in *frame. Checks that decoding then re-encoding gives the
 * same bytes (the encoder reads every field, so this compares them all). */
static int roundtrip_max(const struct aproto_msg *m, size_t max_frame, struct aproto_msg *out)
{
    struct fl_buf a, b;
    const uint8_t *payload;
    size_t frame_len, payload_len;
    char err[FL_ERRMSG_SIZE] = "";
    int rv;
    fl_buf_init(&a);
    fl_buf_init(&b);
    memset(out, 0, sizeof *out);
    rv = aproto_encode_ex(m, max_frame, &a, err);
    if (rv != FL_OK) {
        fprintf(stderr, "encode: %s\n", err);
        goto done;
    }
    rv = aproto_frame_next(a.data, a.len, max_frame, &frame_len, &payload, &payload_len);
    CHECK_OK(rv);
    CHECK_EQ_INT(frame_len, a.len);
    rv = aproto_decode_ex(payload, payload_len, out, err);
    if (rv != FL_OK) {
        fprintf(stderr, "decode: %s\n", err);
        goto done;
    }
    CHECK(aproto_msg_footprint(out) <= 16 * payload_len + 64);
    CHECK_OK(aproto_encode_ex(out, max_frame, &b, err));
    CHECK_EQ_INT(b.len, a.len);
    CHECK(b.len == a.len && memcmp(a.data, b.data, a.len) == 0);
done:
    fl_buf_close(&a);
    fl_buf_close(&b);
    return rv;
}

static int roundtrip(const struct aproto_msg *m, struct aproto_msg *out)
{
    return roundtrip_max(m, APROTO_MAX_FRAME, out);
}

/* m must be refused by the encoder (FL_EINVAL) and, written anyway, by the
 * decoder (FL_EDECODE). */
static void refused(const struct aproto_msg *m, const char *what)
{
    struct fl_buf b;
    struct aproto_msg out;
    size_t before;
    int rv;
    fl_buf_init(&b);
    fl_buf_append(&b, "xy", 2);
    before = b.len;
    rv = aproto_encode(m, &b);
    if (rv != FL_EINVAL) {
        fprintf(stderr, "encode of %s: %s\n", what, fl_errname(rv));
    }
    CHECK_EQ_INT(rv, FL_EINVAL);
    CHECK_EQ_INT(b.len, before); /* nothing partial appended */
    fl_buf_reset(&b);
    REQUIRE(aproto__encode_unchecked(m, &b) == FL_OK);
    rv = aproto_decode(b.data + 4, b.len - 4, &out);
    if (rv != FL_EDECODE) {
        fprintf(stderr, "decode of %s: %s\n", what, fl_errname(rv));
    }
    CHECK_EQ_INT(rv, FL_EDECODE);
    CHECK_EQ_INT(out.type, 0);
    aproto_msg_close(&out);
    fl_buf_close(&b);
}

/* Typical (small) messages of every type, for the stream and fuzz tests. */
static const char *const labels2[] = {"role=web", "dc=east"};
static const char *const hosts3[] = {"web-1.example.com", "web-2.example.com", "10.0.0.3"};
static const char *const argv2[] = {"/bin/echo", "hello"};
static const char *const env1[] = {"LANG=C"};
static const char *const vars1[] = {"ansible_user=deploy"};
static const uint8_t tail[] = "ok\n";

static unsigned typical(struct aproto_msg *ms)
{
    static struct aproto_unit_ref running[2];
    static struct aproto_host_result results[2];
    unsigned n = 0;
    running[0] = ref_small();
    running[1] = ref_small();
    running[1].unit = 4;
    results[0] = (struct aproto_host_result){"web-1.example.com", APROTO_ST_OK, 0, tail, 3};
    results[1] = (struct aproto_host_result){"web-2.example.com", APROTO_ST_FAILED, 2, NULL, 0};

    aproto_msg_init(&ms[n], APROTO_HELLO);
    ms[n].u.hello =
        (struct aproto_hello){"agent-7", "0.1.0", 4, 2, labels2, 2, running, NULL, 0, 0};
    n++;
    aproto_msg_init(&ms[n], APROTO_WELCOME);
    ms[n].u.welcome = (struct aproto_welcome){true, "", 1000, 10000, "welcome"};
    n++;
    aproto_msg_init(&ms[n], APROTO_WELCOME);
    ms[n].u.welcome = (struct aproto_welcome){false, "10.0.0.1:8601", 0, 0, "not the leader"};
    n++;
    aproto_msg_init(&ms[n], APROTO_HEARTBEAT);
    ms[n].u.heartbeat = (struct aproto_heartbeat){77, 2};
    n++;
    aproto_msg_init(&ms[n], APROTO_RUN);
    ms[n].u.run.ref = ref_small();
    ms[n].u.run.n_hosts = 3;
    ms[n].u.run.hosts = hosts3;
    ms[n].u.run.kind = APROTO_EXEC_EXEC;
    ms[n].u.run.argc = 2;
    ms[n].u.run.argv = argv2;
    ms[n].u.run.timeout_ms = 60000;
    ms[n].u.run.kill_grace_ms = 5000;
    ms[n].u.run.n_env = 1;
    ms[n].u.run.env = env1;
    ms[n].u.run.n_vars = 1;
    ms[n].u.run.inventory_vars = vars1;
    n++;
    aproto_msg_init(&ms[n], APROTO_RUN);
    ms[n].u.run.ref = ref_small();
    ms[n].u.run.kind = APROTO_EXEC_MODULE;
    ms[n].u.run.module = "ansible.builtin.ping";
    ms[n].u.run.module_args = "data=pong";
    n++;
    aproto_msg_init(&ms[n], APROTO_STARTED);
    ms[n].u.started = (struct aproto_started){ref_small(), 4242};
    n++;
    aproto_msg_init(&ms[n], APROTO_LOG);
    ms[n].u.log = (struct aproto_log){ref_small(), "web-1.example.com",       APROTO_STDERR,
                                      1024,        (const uint8_t *)"line\n", 5};
    n++;
    aproto_msg_init(&ms[n], APROTO_DONE);
    ms[n].u.done = (struct aproto_done){
        ref_small(), APROTO_ST_FAILED, 2, 1767225600000ull, 1767225601000ull, 2, results};
    n++;
    aproto_msg_init(&ms[n], APROTO_CANCEL);
    ms[n].u.cancel.ref = ref_small();
    n++;
    aproto_msg_init(&ms[n], APROTO_ACK);
    ms[n].u.ack = (struct aproto_ack){ref_small(), APROTO_ACK_DONE};
    n++;
    aproto_msg_init(&ms[n], APROTO_ERROR);
    ms[n].u.error = (struct aproto_error){"duplicate_agent", "agent-7 is already connected"};
    n++;
    return n;
}

#define N_TYPICAL 12

/* All typical messages, framed back to back. */
static void typical_stream(struct fl_buf *b, size_t *ends)
{
    struct aproto_msg ms[N_TYPICAL];
    unsigned n = typical(ms);
    fl_buf_init(b);
    for (unsigned i = 0; i < n; i++) {
        CHECK_OK(aproto_encode(&ms[i], b));
        ends[i] = b->len;
    }
}

/* ---- round trips -------------------------------------------------------- */

TEST(hello_max)
{
    struct aproto_msg m, d;
    struct aproto_unit_ref *running = keep(fl_calloc(APROTO_RUNNING_MAX, sizeof *running));
    uint8_t auth[APROTO_AUTH_MAX];
    for (unsigned i = 0; i < APROTO_RUNNING_MAX; i++) {
        running[i] = ref_max();
        running[i].unit = i;
    }
    memset(auth, 0xab, sizeof auth);
    aproto_msg_init(&m, APROTO_HELLO);
    m.u.hello.agent_id = rep("", 'a', APROTO_AGENT_ID_MAX);
    m.u.hello.version = rep("", 'v', APROTO_AGENT_VER_MAX);
    m.u.hello.cap = UINT32_MAX;
    m.u.hello.n_labels = APROTO_LABELS_MAX;
    m.u.hello.labels = strs(APROTO_LABELS_MAX, rep("k=", 'v', APROTO_LABEL_MAX - 2));
    m.u.hello.n_running = APROTO_RUNNING_MAX;
    m.u.hello.running = running;
    m.u.hello.auth = auth;
    m.u.hello.auth_len = APROTO_AUTH_MAX;
    m.u.hello.flags = UINT32_MAX;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_INT(d.type, APROTO_HELLO);
    CHECK_EQ_STR(d.u.hello.agent_id, m.u.hello.agent_id);
    CHECK_EQ_STR(d.u.hello.version, m.u.hello.version);
    CHECK_EQ_INT(d.u.hello.cap, UINT32_MAX);
    CHECK_EQ_INT(d.u.hello.n_labels, APROTO_LABELS_MAX);
    CHECK_EQ_STR(d.u.hello.labels[31], m.u.hello.labels[0]);
    CHECK_EQ_INT(d.u.hello.n_running, APROTO_RUNNING_MAX);
    CHECK_EQ_STR(d.u.hello.running[4095].task_id, running[0].task_id);
    CHECK_EQ_INT(d.u.hello.running[4095].unit, 4095);
    CHECK(d.u.hello.running[7].token == UINT64_MAX);
    CHECK_EQ_INT(d.u.hello.auth_len, APROTO_AUTH_MAX);
    CHECK(memcmp(d.u.hello.auth, auth, sizeof auth) == 0);
    CHECK_EQ_INT(d.u.hello.flags, UINT32_MAX);
    aproto_msg_close(&d);
    aproto_msg_close(&d); /* twice is fine */
    drop_all();
}

TEST(hello_min)
{
    struct aproto_msg m, d;
    aproto_msg_init(&m, APROTO_HELLO);
    m.u.hello.agent_id = "a";
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.hello.agent_id, "a");
    CHECK_EQ_STR(d.u.hello.version, "");
    CHECK_EQ_INT(d.u.hello.n_labels, 0);
    CHECK(d.u.hello.labels != NULL && d.u.hello.running != NULL && d.u.hello.auth != NULL);
    CHECK_EQ_INT(d.u.hello.auth_len, 0);
    aproto_msg_close(&d);
}

TEST(welcome)
{
    struct aproto_msg m, d;
    char *leader;
    aproto_msg_init(&m, APROTO_WELCOME);
    m.u.welcome.accepted = true;
    m.u.welcome.heartbeat_ms = 1;
    m.u.welcome.lost_after_ms = UINT32_MAX;
    m.u.welcome.message = rep("", 'm', APROTO_MESSAGE_MAX);
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK(d.u.welcome.accepted);
    CHECK_EQ_STR(d.u.welcome.leader, "");
    CHECK_EQ_INT(d.u.welcome.heartbeat_ms, 1);
    CHECK_EQ_INT(d.u.welcome.lost_after_ms, UINT32_MAX);
    CHECK_EQ_STR(d.u.welcome.message, m.u.welcome.message);
    aproto_msg_close(&d);

    aproto_msg_init(&m, APROTO_WELCOME);
    leader = rep("", 'h', APROTO_ADDR_MAX - 5);
    memcpy(leader + APROTO_ADDR_MAX - 12, "h:65535", 7);
    m.u.welcome.leader = leader;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK(!d.u.welcome.accepted);
    CHECK_EQ_STR(d.u.welcome.leader, m.u.welcome.leader);
    aproto_msg_close(&d);
    leader = rep("", 'h', APROTO_ADDR_MAX);
    memcpy(leader + APROTO_ADDR_MAX - 2, ":1", 2);
    m.u.welcome.leader = leader;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    aproto_msg_close(&d);
    m.u.welcome.leader = "[::1]:8601";
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.welcome.leader, "[::1]:8601");
    aproto_msg_close(&d);
    drop_all();
}

TEST(heartbeat_started_cancel_ack_error)
{
    struct aproto_msg m, d;
    aproto_msg_init(&m, APROTO_HEARTBEAT);
    m.u.heartbeat.seq = UINT64_MAX;
    m.u.heartbeat.running = UINT32_MAX;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK(d.u.heartbeat.seq == UINT64_MAX);
    CHECK_EQ_INT(d.u.heartbeat.running, UINT32_MAX);
    CHECK_EQ_INT(aproto_msg_footprint(&d), 0); /* nothing to allocate */
    aproto_msg_close(&d);

    aproto_msg_init(&m, APROTO_STARTED);
    m.u.started.ref = ref_max();
    m.u.started.pid = INT32_MIN;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_INT(d.u.started.pid, INT32_MIN);
    CHECK_EQ_STR(d.u.started.ref.task_id, m.u.started.ref.task_id);
    CHECK_EQ_INT(d.u.started.ref.attempt, UINT32_MAX);
    aproto_msg_close(&d);
    m.u.started.pid = INT32_MAX;
    m.u.started.ref = ref_small();
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_INT(d.u.started.pid, INT32_MAX);
    CHECK_EQ_STR(d.u.started.ref.task_id, "task-1");
    CHECK_EQ_INT(d.u.started.ref.unit, 3);
    CHECK_EQ_INT(d.u.started.ref.attempt, 1);
    CHECK_EQ_INT(d.u.started.ref.token, 42);
    aproto_msg_close(&d);

    aproto_msg_init(&m, APROTO_CANCEL);
    m.u.cancel.ref = ref_max();
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK(d.u.cancel.ref.token == UINT64_MAX);
    aproto_msg_close(&d);

    aproto_msg_init(&m, APROTO_ACK);
    m.u.ack.ref = ref_small();
    m.u.ack.what = APROTO_ACK_DONE;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_INT(d.u.ack.what, APROTO_ACK_DONE);
    aproto_msg_close(&d);

    aproto_msg_init(&m, APROTO_ERROR);
    m.u.error.code = rep("", 'z', APROTO_ERROR_CODE_MAX);
    m.u.error.message = rep("", 'x', APROTO_MESSAGE_MAX);
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.error.code, m.u.error.code);
    CHECK_EQ_STR(d.u.error.message, m.u.error.message);
    aproto_msg_close(&d);
    m.u.error.code = "bad_frame";
    m.u.error.message = NULL;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.error.message, "");
    aproto_msg_close(&d);
    drop_all();
}

TEST(run_max)
{
    struct aproto_msg m, d;
    struct fl_buf b;
    const char **hosts = keep(fl_calloc(APROTO_HOSTS_MAX, sizeof *hosts));
    for (unsigned i = 0; i < APROTO_HOSTS_MAX; i++) {
        char *h = rep("", 'h', APROTO_HOST_MAX);
        snprintf(h, 12, "%05u.", i);
        h[6] = 'h';
        hosts[i] = h;
    }
    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = ref_max();
    m.u.run.n_hosts = APROTO_HOSTS_MAX;
    m.u.run.hosts = hosts;
    m.u.run.kind = APROTO_EXEC_EXEC;
    m.u.run.argc = APROTO_ARGV_MAX;
    m.u.run.argv = strs(APROTO_ARGV_MAX, "arg");
    m.u.run.script = "echo hi";
    m.u.run.module = rep("", 'm', APROTO_MODULE_MAX);
    m.u.run.module_args = "a=1";
    m.u.run.playbook = "- hosts: all\n";
    m.u.run.sleep_ms = UINT32_MAX;
    m.u.run.timeout_ms = UINT32_MAX;
    m.u.run.kill_grace_ms = UINT32_MAX;
    m.u.run.n_env = APROTO_ENV_MAX;
    m.u.run.env = strs(APROTO_ENV_MAX, "NAME_1=value with spaces\nand a newline");
    m.u.run.n_vars = APROTO_VARS_MAX;
    m.u.run.inventory_vars = strs(APROTO_VARS_MAX, rep("k=", 'v', APROTO_VAR_MAX - 2));

    /* 10,000 hosts of 255 bytes do not fit the default frame. */
    fl_buf_init(&b);
    CHECK_EQ_INT(aproto_encode(&m, &b), FL_ETOOBIG);
    CHECK_EQ_INT(b.len, 0);
    fl_buf_close(&b);

    REQUIRE(roundtrip_max(&m, 4u * 1024 * 1024, &d) == FL_OK);
    CHECK_EQ_INT(d.u.run.n_hosts, APROTO_HOSTS_MAX);
    CHECK_EQ_STR(d.u.run.hosts[9999], hosts[9999]);
    CHECK_EQ_INT(d.u.run.kind, APROTO_EXEC_EXEC);
    CHECK_EQ_INT(d.u.run.argc, APROTO_ARGV_MAX);
    CHECK_EQ_STR(d.u.run.argv[255], "arg");
    CHECK_EQ_STR(d.u.run.script, "echo hi");
    CHECK_EQ_STR(d.u.run.module, m.u.run.module);
    CHECK_EQ_STR(d.u.run.module_args, "a=1");
    CHECK_EQ_STR(d.u.run.playbook, "- hosts: all\n");
    CHECK_EQ_INT(d.u.run.sleep_ms, UINT32_MAX);
    CHECK_EQ_INT(d.u.run.timeout_ms, UINT32_MAX);
    CHECK_EQ_INT(d.u.run.kill_grace_ms, UINT32_MAX);
    CHECK_EQ_INT(d.u.run.n_env, APROTO_ENV_MAX);
    CHECK_EQ_STR(d.u.run.env[127], m.u.run.env[0]);
    CHECK_EQ_INT(d.u.run.n_vars, APROTO_VARS_MAX);
    CHECK_EQ_STR(d.u.run.inventory_vars[31], m.u.run.inventory_vars[0]);
    aproto_msg_close(&d);
    drop_all();
}

TEST(run_kinds)
{
    struct aproto_msg m, d;
    static const char *const one_empty[] = {"/bin/true", ""};
    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = ref_small();
    m.u.run.kind = APROTO_EXEC_EXEC;
    m.u.run.argc = 2;
    m.u.run.argv = one_empty; /* later arguments may be empty */
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.run.argv[1], "");
    CHECK_EQ_INT(d.u.run.n_hosts, 0);
    aproto_msg_close(&d);

    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = ref_small();
    m.u.run.kind = APROTO_EXEC_SHELL;
    m.u.run.script = "set -e\necho $HOSTNAME\n";
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.run.script, m.u.run.script);
    aproto_msg_close(&d);

    m.u.run.kind = APROTO_EXEC_PLAYBOOK;
    m.u.run.script = NULL;
    m.u.run.playbook = rep("- hosts: all\n  tasks: []\n#", 'x', 200000);
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.run.playbook, m.u.run.playbook);
    aproto_msg_close(&d);

    m.u.run.playbook = NULL;
    m.u.run.kind = APROTO_EXEC_MODULE;
    m.u.run.module = "command";
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.run.module, "command");
    CHECK_EQ_STR(d.u.run.module_args, "");
    aproto_msg_close(&d);

    m.u.run.module = NULL;
    m.u.run.kind = APROTO_EXEC_NOOP;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    aproto_msg_close(&d);
    m.u.run.kind = APROTO_EXEC_SLEEP;
    m.u.run.sleep_ms = 1500;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_INT(d.u.run.sleep_ms, 1500);
    aproto_msg_close(&d);
    drop_all();
}

/* A deploy: deploy-target's arguments in argv, the blob sources in env. */
TEST(run_deploy)
{
    struct aproto_msg m, d;
    static const char *const argv[] = {
        "web@2",      "--hash",           "ab12", "--size", "4198400", "--app", "web", "--health",
        "test -f ok", "--health-timeout", "30s",  "--keep", "5"};
    static const char *const env[] = {"FLOTILLA_UNIT=3",
                                      "FLOTILLA_BLOB_SOURCES=10.0.0.2:8701,10.0.0.1:8701"};
    static const char *const hosts[] = {"web-1"};
    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = ref_small();
    m.u.run.kind = APROTO_EXEC_DEPLOY;
    m.u.run.n_hosts = 1;
    m.u.run.hosts = hosts;
    m.u.run.argc = 13;
    m.u.run.argv = argv;
    m.u.run.n_env = 2;
    m.u.run.env = env;
    m.u.run.timeout_ms = 1800000;
    m.u.run.kill_grace_ms = 10000;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_INT(d.u.run.kind, APROTO_EXEC_DEPLOY);
    REQUIRE(d.u.run.argc == 13);
    for (unsigned i = 0; i < 13; i++) {
        CHECK_EQ_STR(d.u.run.argv[i], argv[i]);
    }
    REQUIRE(d.u.run.n_env == 2);
    CHECK_EQ_STR(d.u.run.env[1], "FLOTILLA_BLOB_SOURCES=10.0.0.2:8701,10.0.0.1:8701");
    CHECK_EQ_STR(d.u.run.hosts[0], "web-1");
    CHECK_EQ_INT(d.u.run.timeout_ms, 1800000);
    CHECK_EQ_INT(d.u.run.kill_grace_ms, 10000);
    aproto_msg_close(&d);
    CHECK_OK(aproto_msg_validate(&m, NULL));
    drop_all();
}

/* A newer server's executor kind reaches an old agent as a message it can
 * answer (DONE error), not as a broken connection; we never send one. */
TEST(run_unknown_kind)
{
    struct aproto_msg m, d;
    struct fl_buf b;
    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = ref_small();
    m.u.run.kind = 200;
    fl_buf_init(&b);
    CHECK_EQ_INT(aproto_encode(&m, &b), FL_EINVAL);
    REQUIRE(aproto__encode_unchecked(&m, &b) == FL_OK);
    CHECK_OK(aproto_decode(b.data + 4, b.len - 4, &d));
    CHECK_EQ_INT(d.u.run.kind, 200);
    CHECK_EQ_STR(d.u.run.ref.task_id, "task-1");
    aproto_msg_close(&d);
    fl_buf_close(&b);
}

TEST(log_done)
{
    struct aproto_msg m, d;
    uint8_t *data = keep(fl_malloc(APROTO_LOG_DATA_MAX));
    struct aproto_host_result *res = keep(fl_calloc(APROTO_HOSTS_MAX, sizeof *res));
    for (size_t i = 0; i < APROTO_LOG_DATA_MAX; i++) {
        data[i] = (uint8_t)i;
    }
    aproto_msg_init(&m, APROTO_LOG);
    m.u.log.ref = ref_max();
    m.u.log.host = rep("", 'h', APROTO_HOST_MAX);
    m.u.log.stream = APROTO_STDERR;
    m.u.log.offset = UINT64_MAX;
    m.u.log.data = data;
    m.u.log.data_len = APROTO_LOG_DATA_MAX;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.log.host, m.u.log.host);
    CHECK_EQ_INT(d.u.log.stream, APROTO_STDERR);
    CHECK(d.u.log.offset == UINT64_MAX);
    CHECK_EQ_INT(d.u.log.data_len, APROTO_LOG_DATA_MAX);
    CHECK(memcmp(d.u.log.data, data, APROTO_LOG_DATA_MAX) == 0);
    aproto_msg_close(&d);
    m.u.log.host = NULL; /* the whole unit */
    m.u.log.data_len = 0;
    m.u.log.stream = APROTO_STDOUT;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_STR(d.u.log.host, "");
    CHECK_EQ_INT(d.u.log.data_len, 0);
    aproto_msg_close(&d);

    for (unsigned i = 0; i < APROTO_HOSTS_MAX; i++) {
        res[i].host = rep("", 'h', i < 10 ? APROTO_HOST_MAX : 1 + i % 20);
        res[i].status = (uint8_t)(1 + i % (APROTO__ST_MAX - 1));
        res[i].rc = i % 2 ? INT32_MIN : INT32_MAX;
        res[i].tail = data;
        res[i].tail_len = i < 10 ? APROTO_TAIL_MAX : i % 50;
    }
    aproto_msg_init(&m, APROTO_DONE);
    m.u.done.ref = ref_max();
    m.u.done.status = APROTO_ST_UNREACHABLE;
    m.u.done.exit_code = -1;
    m.u.done.started_ms = 1;
    m.u.done.finished_ms = UINT64_MAX;
    m.u.done.n_results = APROTO_HOSTS_MAX;
    m.u.done.results = res;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    CHECK_EQ_INT(d.u.done.status, APROTO_ST_UNREACHABLE);
    CHECK_EQ_INT(d.u.done.exit_code, -1);
    CHECK(d.u.done.finished_ms == UINT64_MAX);
    CHECK_EQ_INT(d.u.done.n_results, APROTO_HOSTS_MAX);
    CHECK_EQ_STR(d.u.done.results[0].host, res[0].host);
    CHECK_EQ_INT(d.u.done.results[0].tail_len, APROTO_TAIL_MAX);
    CHECK(memcmp(d.u.done.results[9].tail, data, APROTO_TAIL_MAX) == 0);
    CHECK_EQ_INT(d.u.done.results[9999].rc, INT32_MIN);
    CHECK_EQ_INT(d.u.done.results[9999].status, res[9999].status);
    aproto_msg_close(&d);
    /* Every result with a full tail: needs a bigger frame. */
    for (unsigned i = 0; i < APROTO_HOSTS_MAX; i++) {
        res[i].tail_len = APROTO_TAIL_MAX;
    }
    REQUIRE(roundtrip_max(&m, APROTO_FRAME_LIMIT, &d) == FL_OK);
    CHECK_EQ_INT(d.u.done.results[5000].tail_len, APROTO_TAIL_MAX);
    aproto_msg_close(&d);
    drop_all();
}

TEST(typical_all_types)
{
    struct aproto_msg ms[N_TYPICAL], d;
    unsigned n = typical(ms);
    CHECK_EQ_INT(n, N_TYPICAL);
    for (unsigned i = 0; i < n; i++) {
        CHECK_OK(aproto_msg_validate(&ms[i], NULL));
        REQUIRE(roundtrip(&ms[i], &d) == FL_OK);
        CHECK_EQ_INT(d.type, ms[i].type);
        aproto_msg_close(&d);
    }
    CHECK_EQ_STR(aproto_type_name(APROTO_HELLO), "hello");
    CHECK_EQ_STR(aproto_type_name(APROTO_ERROR), "error");
    CHECK_EQ_STR(aproto_type_name(0), "unknown");
    CHECK_EQ_STR(aproto_type_name(APROTO__TYPE_MAX), "unknown");
}

/* ---- bounds + 1 ------------------------------------------------------- */

TEST(refuse_hello)
{
    struct aproto_msg m, base;
    struct aproto_unit_ref *running = keep(fl_calloc(APROTO_RUNNING_MAX + 1, sizeof *running));
    static const uint8_t auth[APROTO_AUTH_MAX + 1];
    for (unsigned i = 0; i <= APROTO_RUNNING_MAX; i++) {
        running[i] = ref_small();
    }
    aproto_msg_init(&base, APROTO_HELLO);
    base.u.hello.agent_id = "agent-1";

    m = base;
    m.u.hello.agent_id = rep("", 'a', APROTO_AGENT_ID_MAX + 1);
    refused(&m, "agent id 64");
    m.u.hello.agent_id = "";
    refused(&m, "empty agent id");
    m.u.hello.agent_id = "a/b";
    refused(&m, "agent id with /");
    m.u.hello.agent_id = "a b";
    refused(&m, "agent id with space");
    m.u.hello.agent_id = "a\tb";
    refused(&m, "agent id with tab");
    m = base;
    m.u.hello.version = rep("", 'v', APROTO_AGENT_VER_MAX + 1);
    refused(&m, "version 64");
    m.u.hello.version = "1.0\n";
    refused(&m, "version with newline");
    m = base;
    m.u.hello.n_labels = APROTO_LABELS_MAX + 1;
    m.u.hello.labels = strs(APROTO_LABELS_MAX + 1, "a=b");
    refused(&m, "33 labels");
    m.u.hello.n_labels = 1;
    m.u.hello.labels = strs(1, rep("k=", 'v', APROTO_LABEL_MAX - 1));
    refused(&m, "label 128");
    m.u.hello.labels = strs(1, "novalue");
    refused(&m, "label without =");
    m.u.hello.labels = strs(1, "=v");
    refused(&m, "label without key");
    m.u.hello.labels = strs(1, "");
    refused(&m, "empty label");
    m = base;
    m.u.hello.n_running = APROTO_RUNNING_MAX + 1;
    m.u.hello.running = running;
    refused(&m, "4097 running");
    m.u.hello.n_running = 1;
    memset(running[0].task_id, 'x', sizeof running[0].task_id); /* 40 bytes, no NUL */
    refused(&m, "task id 40");
    running[0].task_id[0] = '\0';
    refused(&m, "empty task id");
    strcpy(running[0].task_id, "a/b");
    refused(&m, "task id with /");
    m = base;
    m.u.hello.auth = auth;
    m.u.hello.auth_len = APROTO_AUTH_MAX + 1;
    refused(&m, "auth 513");
    drop_all();
}

TEST(refuse_welcome_error_ack)
{
    struct aproto_msg m;
    char *leader = rep("", 'h', APROTO_ADDR_MAX + 1);
    memcpy(leader + APROTO_ADDR_MAX - 1, ":1", 2);
    aproto_msg_init(&m, APROTO_WELCOME);
    m.u.welcome.leader = leader;
    refused(&m, "leader 256");
    m.u.welcome.leader = "nocolon";
    refused(&m, "leader without port");
    m.u.welcome.leader = ":80";
    refused(&m, "leader without host");
    m.u.welcome.leader = "h:0";
    refused(&m, "port 0");
    m.u.welcome.leader = "h:65536";
    refused(&m, "port 65536");
    m.u.welcome.leader = "h:";
    refused(&m, "empty port");
    m.u.welcome.leader = "h:8x";
    refused(&m, "port not decimal");
    m.u.welcome.leader = "h h:80";
    refused(&m, "host with space");
    m.u.welcome.leader = "h:000080";
    refused(&m, "port of 6 digits");
    m.u.welcome.leader = "10.0.0.1:80";
    m.u.welcome.accepted = true;
    m.u.welcome.heartbeat_ms = 1000;
    refused(&m, "accepted with a leader");
    m.u.welcome.leader = NULL;
    m.u.welcome.heartbeat_ms = 0;
    refused(&m, "accepted without heartbeat");
    m.u.welcome.heartbeat_ms = 1000;
    m.u.welcome.message = rep("", 'm', APROTO_MESSAGE_MAX + 1);
    refused(&m, "message 257");

    aproto_msg_init(&m, APROTO_ERROR);
    m.u.error.code = "";
    refused(&m, "empty error code");
    m.u.error.code = rep("", 'c', APROTO_ERROR_CODE_MAX + 1);
    refused(&m, "error code 64");
    m.u.error.code = "Bad_Frame";
    refused(&m, "error code with capitals");
    m.u.error.code = "bad_frame";
    m.u.error.message = rep("", 'm', APROTO_MESSAGE_MAX + 1);
    refused(&m, "error message 257");

    aproto_msg_init(&m, APROTO_ACK);
    m.u.ack.ref = ref_small();
    m.u.ack.what = 0;
    refused(&m, "ack what 0");
    m.u.ack.what = APROTO_ACK_DONE + 1;
    refused(&m, "ack what 2");
    drop_all();
}

TEST(refuse_run)
{
    struct aproto_msg m, base;
    aproto_msg_init(&base, APROTO_RUN);
    base.u.run.ref = ref_small();
    base.u.run.kind = APROTO_EXEC_NOOP;

    m = base;
    m.u.run.n_hosts = APROTO_HOSTS_MAX + 1;
    m.u.run.hosts = strs(APROTO_HOSTS_MAX + 1, "h");
    refused(&m, "10001 hosts");
    m.u.run.n_hosts = 1;
    m.u.run.hosts = strs(1, rep("", 'h', APROTO_HOST_MAX + 1));
    refused(&m, "host 256");
    m.u.run.hosts = strs(1, "");
    refused(&m, "empty host");
    m.u.run.hosts = strs(1, "a b");
    refused(&m, "host with space");
    m.u.run.hosts = strs(1, "a,b");
    refused(&m, "host with comma");
    m.u.run.hosts = strs(1, "a\nb");
    refused(&m, "host with newline");
    m = base;
    m.u.run.kind = 0;
    refused(&m, "kind 0");
    m = base;
    m.u.run.kind = APROTO_EXEC_EXEC;
    refused(&m, "exec without argv");
    m.u.run.argc = 1;
    m.u.run.argv = strs(1, "");
    refused(&m, "exec with empty argv[0]");
    m.u.run.argc = APROTO_ARGV_MAX + 1;
    m.u.run.argv = strs(APROTO_ARGV_MAX + 1, "x");
    refused(&m, "257 arguments");
    m = base;
    m.u.run.kind = APROTO_EXEC_DEPLOY;
    refused(&m, "deploy without argv");
    m.u.run.argc = 1;
    m.u.run.argv = strs(1, "");
    refused(&m, "deploy with empty argv[0]");
    m.u.run.argc = 2;
    m.u.run.argv = strs(2, "");
    refused(&m, "deploy with empty argv[0] and more");
    m.u.run.argc = APROTO_ARGV_MAX + 1;
    m.u.run.argv = strs(APROTO_ARGV_MAX + 1, "web@1");
    refused(&m, "deploy with 257 arguments");
    m = base;
    m.u.run.kind = APROTO_EXEC_SHELL;
    refused(&m, "shell without script");
    m.u.run.kind = APROTO_EXEC_PLAYBOOK;
    refused(&m, "playbook without text");
    m.u.run.kind = APROTO_EXEC_MODULE;
    refused(&m, "module without name");
    m.u.run.module = rep("", 'm', APROTO_MODULE_MAX + 1);
    refused(&m, "module name 128");
    m.u.run.module = "a b";
    refused(&m, "module name with space");
    m = base;
    m.u.run.n_env = APROTO_ENV_MAX + 1;
    m.u.run.env = strs(APROTO_ENV_MAX + 1, "A=1");
    refused(&m, "129 env");
    m.u.run.n_env = 1;
    m.u.run.env = strs(1, "1A=x");
    refused(&m, "env name starting with a digit");
    m.u.run.env = strs(1, "NOEQ");
    refused(&m, "env without =");
    m.u.run.env = strs(1, "=x");
    refused(&m, "env without name");
    m = base;
    m.u.run.n_vars = APROTO_VARS_MAX + 1;
    m.u.run.inventory_vars = strs(APROTO_VARS_MAX + 1, "a=1");
    refused(&m, "33 vars");
    m.u.run.n_vars = 1;
    m.u.run.inventory_vars = strs(1, rep("k=", 'v', APROTO_VAR_MAX - 1));
    refused(&m, "var 4096");
    m.u.run.inventory_vars = strs(1, "k=1\n[all]\nevil");
    refused(&m, "var with newline");
    m.u.run.inventory_vars = strs(1, "k-x=1");
    refused(&m, "var with a bad name");
    m = base;
    m.u.run.ref.task_id[0] = '\0';
    refused(&m, "run with empty task id");
    drop_all();
}

TEST(refuse_log_done)
{
    struct aproto_msg m, base;
    static const uint8_t big[APROTO_LOG_DATA_MAX + 1];
    struct aproto_host_result res[1], *many;
    aproto_msg_init(&base, APROTO_LOG);
    base.u.log.ref = ref_small();
    base.u.log.stream = APROTO_STDOUT;

    m = base;
    m.u.log.host = rep("", 'h', APROTO_HOST_MAX + 1);
    refused(&m, "log host 256");
    m.u.log.host = "a b";
    refused(&m, "log host with space");
    m = base;
    m.u.log.stream = 0;
    refused(&m, "stream 0");
    m.u.log.stream = 3;
    refused(&m, "stream 3");
    m = base;
    m.u.log.data = big;
    m.u.log.data_len = APROTO_LOG_DATA_MAX + 1;
    refused(&m, "log data 64 KiB + 1");

    aproto_msg_init(&base, APROTO_DONE);
    base.u.done.ref = ref_small();
    base.u.done.status = APROTO_ST_OK;
    m = base;
    m.u.done.status = 0;
    refused(&m, "status 0");
    m.u.done.status = APROTO__ST_MAX;
    refused(&m, "status 7");
    m = base;
    m.u.done.n_results = APROTO_HOSTS_MAX + 1;
    many = keep(fl_calloc(APROTO_HOSTS_MAX + 1, sizeof *many));
    for (unsigned i = 0; i <= APROTO_HOSTS_MAX; i++) {
        many[i] = (struct aproto_host_result){"h", APROTO_ST_OK, 0, NULL, 0};
    }
    m.u.done.results = many;
    refused(&m, "10001 results");
    m.u.done.n_results = 1;
    m.u.done.results = res;
    res[0] = (struct aproto_host_result){"", APROTO_ST_OK, 0, NULL, 0};
    refused(&m, "result with empty host");
    res[0].host = "h";
    res[0].status = 0;
    refused(&m, "result status 0");
    res[0].status = APROTO__ST_MAX;
    refused(&m, "result status 7");
    res[0].status = APROTO_ST_OK;
    res[0].tail = big;
    res[0].tail_len = APROTO_TAIL_MAX + 1;
    refused(&m, "tail 4097");
    drop_all();
}

TEST(refuse_unknown_type)
{
    struct aproto_msg m;
    struct fl_buf b;
    fl_buf_init(&b);
    aproto_msg_init(&m, 0);
    CHECK_EQ_INT(aproto_encode(&m, &b), FL_EVERSION);
    aproto_msg_init(&m, APROTO__TYPE_MAX);
    CHECK_EQ_INT(aproto_encode(&m, &b), FL_EVERSION);
    CHECK_EQ_INT(b.len, 0);
    fl_buf_close(&b);
}

TEST(validators)
{
    CHECK(aproto_valid_agent_id("node-1.example"));
    CHECK(!aproto_valid_agent_id(NULL));
    CHECK(aproto_valid_task_id("t-20260101-abc"));
    CHECK(aproto_valid_host("web-1"));
    CHECK(!aproto_valid_host("web 1"));
    CHECK(aproto_valid_label("a=b=c"));
    CHECK(aproto_valid_label("k="));
    CHECK(aproto_valid_env("_X9=anything at all"));
    CHECK(aproto_valid_var("ansible_port=22"));
    CHECK(!aproto_valid_var("ansible_port"));
    CHECK(aproto_valid_addr("a:1"));
    CHECK(!aproto_valid_addr("a:1 "));
    CHECK(aproto_valid_module("community.general.ping"));
    CHECK(aproto_valid_error_code("duplicate_agent"));
    {
        struct aproto_unit_ref r;
        CHECK_EQ_INT(aproto_unit_ref_set(&r, "a/b", 1, 2, 3), FL_EINVAL);
        CHECK_EQ_STR(r.task_id, "");
        CHECK_OK(aproto_unit_ref_set(&r, "abc", 1, 2, 3));
        CHECK_EQ_STR(r.task_id, "abc");
    }
}

/* ---- hand-made payloads ------------------------------------------------ */

static int dec(const void *p, size_t n)
{
    struct aproto_msg m;
    int rv = aproto_decode(p, n, &m);
    aproto_msg_close(&m);
    return rv;
}

TEST(decode_versions_and_shapes)
{
    /* [1, 3, 5, 6] = heartbeat */
    static const uint8_t hb[] = {0x94, 0x01, 0x03, 0x05, 0x06};
    static const uint8_t v2[] = {0x94, 0x02, 0x03, 0x05, 0x06};
    static const uint8_t v2_garbage[] = {0x92, 0x02, 0xc1};
    static const uint8_t type99[] = {0x94, 0x01, 0x63, 0x05, 0x06};
    static const uint8_t type0[] = {0x92, 0x01, 0x00};
    static const uint8_t big_type[] = {0x92, 0x01, 0xcf, 1, 0, 0, 0, 0, 0, 0, 4};
    static const uint8_t only_version[] = {0x91, 0x01};
    static const uint8_t missing[] = {0x93, 0x01, 0x03, 0x05};
    /* the array says 3 elements; a fourth object follows it */
    static const uint8_t short_count[] = {0x93, 0x01, 0x03, 0x05, 0x06};
    static const uint8_t extra[] = {0x97, 0x01, 0x03, 0x05, 0x06, 0xa1, 'x', 0x92, 0x81, 0x01, 0x02,
                                    0xc0, 0x93, 0xc3, 0xca, 0,    0,    0,   0,    0xc4, 0x00};
    static const uint8_t extra_bad[] = {0x95, 0x01, 0x03, 0x05, 0x06, 0xc1};
    static const uint8_t trailing[] = {0x94, 0x01, 0x03, 0x05, 0x06, 0x00};
    static const uint8_t not_array[] = {0x81, 0x01, 0x03};
    static const uint8_t empty_array[] = {0x90};
    static const uint8_t version_str[] = {0x94, 0xa1, '1', 0x03, 0x05, 0x06};
    static const uint8_t neg_seq[] = {0x94, 0x01, 0x03, 0xff, 0x06};
    static const uint8_t int_seq[] = {0x94, 0x01, 0x03, 0xd0, 0x05, 0xd3, 0, 0, 0, 0, 0, 0, 0, 6};
    static const uint8_t big_running[] = {0x94, 0x01, 0x03, 0x05, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0};
    /* error: [1, 10, "a\0b", ""] */
    static const uint8_t nul[] = {0x94, 0x01, 0x0a, 0xa3, 'a', 0, 'b', 0xa0};
    static const uint8_t ok_err[] = {0x94, 0x01, 0x0a, 0xa3, 'a', '_', 'b', 0xa0};
    /* str8/16/32 forms of the same string */
    static const uint8_t str32[] = {0x94, 0x01, 0x0a, 0xdb, 0, 0, 0, 1, 'a', 0xd9, 0};
    static const uint8_t bin_as_str[] = {0x94, 0x01, 0x0a, 0xc4, 1, 'a', 0xa0};
    static const uint8_t long_str[] = {0x94, 0x01, 0x0a, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};

    CHECK_OK(dec(hb, sizeof hb));
    CHECK_EQ_INT(dec(v2, sizeof v2), FL_EVERSION);
    CHECK_EQ_INT(dec(v2_garbage, sizeof v2_garbage), FL_EVERSION);
    CHECK_EQ_INT(dec(type99, sizeof type99), FL_EVERSION);
    CHECK_EQ_INT(dec(type0, sizeof type0), FL_EVERSION);
    CHECK_EQ_INT(dec(big_type, sizeof big_type), FL_EVERSION);
    CHECK_EQ_INT(dec(only_version, sizeof only_version), FL_EDECODE);
    CHECK_EQ_INT(dec(missing, sizeof missing), FL_EDECODE);
    CHECK_EQ_INT(dec(short_count, sizeof short_count), FL_EDECODE);
    CHECK_OK(dec(extra, sizeof extra));
    CHECK_EQ_INT(dec(extra_bad, sizeof extra_bad), FL_EDECODE);
    CHECK_EQ_INT(dec(trailing, sizeof trailing), FL_EDECODE);
    CHECK_EQ_INT(dec(not_array, sizeof not_array), FL_EDECODE);
    CHECK_EQ_INT(dec(empty_array, sizeof empty_array), FL_EDECODE);
    CHECK_EQ_INT(dec(version_str, sizeof version_str), FL_EDECODE);
    CHECK_EQ_INT(dec(neg_seq, sizeof neg_seq), FL_EDECODE);
    CHECK_OK(dec(int_seq, sizeof int_seq));
    CHECK_EQ_INT(dec(big_running, sizeof big_running), FL_EDECODE);
    CHECK_EQ_INT(dec(nul, sizeof nul), FL_EDECODE);
    CHECK_OK(dec(ok_err, sizeof ok_err));
    CHECK_OK(dec(str32, sizeof str32));
    CHECK_EQ_INT(dec(bin_as_str, sizeof bin_as_str), FL_EDECODE);
    CHECK_EQ_INT(dec(long_str, sizeof long_str), FL_EDECODE);
    CHECK_EQ_INT(dec(hb, 0), FL_EDECODE);
    /* The length is checked before a byte is read. */
    CHECK_EQ_INT(dec(hb, (size_t)APROTO_FRAME_LIMIT + 1), FL_ETOOBIG);
}

TEST(decode_extra_nested)
{
    /* cancel with a unit ref carrying a fifth element from a newer peer */
    static const uint8_t p[] = {0x93, 0x01, 0x08, 0x95, 0xa1, 't',
                                0x01, 0x02, 0x03, 0x92, 0xa0, 0xc0};
    static const uint8_t short_ref[] = {0x93, 0x01, 0x08, 0x93, 0xa1, 't', 0x01, 0x02};
    static const uint8_t short_ref_more[] = {0x93, 0x01, 0x08, 0x93, 0xa1, 't', 0x01, 0x02, 0x03};
    struct aproto_msg m;
    REQUIRE(aproto_decode(p, sizeof p, &m) == FL_OK);
    CHECK_EQ_STR(m.u.cancel.ref.task_id, "t");
    CHECK_EQ_INT(m.u.cancel.ref.unit, 1);
    CHECK_EQ_INT(m.u.cancel.ref.attempt, 2);
    CHECK_EQ_INT(m.u.cancel.ref.token, 3);
    aproto_msg_close(&m);
    CHECK_EQ_INT(dec(short_ref, sizeof short_ref), FL_EDECODE);
    CHECK_EQ_INT(dec(short_ref_more, sizeof short_ref_more), FL_EDECODE);
}

/* 20 bytes claiming arrays of billions: refused before any allocation. */
TEST(hostile_counts)
{
    static const uint8_t inputs[][20] = {
        /* top-level array32 of 2^32-1 elements */
        {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01},
        /* hello whose labels claim 2^32-1 entries */
        {0x97, 0x01, 0x01, 0xa1, 'a', 0xa0, 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff},
        /* hello whose running refs claim 4096 (in bounds, but not in 20 bytes) */
        {0x99, 0x01, 0x01, 0xa1, 'a', 0xa0, 0x00, 0x90, 0xdc, 0x10, 0x00, 0x94},
        /* run whose hosts claim 65535 */
        {0x9f, 0x01, 0x04, 0x94, 0xa1, 't', 0, 0, 0, 0xdc, 0xff, 0xff},
        /* done whose results claim 10000 */
        {0x98, 0x01, 0x07, 0x94, 0xa1, 't', 0, 0, 0, 1, 0, 0, 0, 0xdc, 0x27, 0x10},
        /* log data bin32 of 4 GiB */
        {0x97, 0x01, 0x06, 0x94, 0xa1, 't', 0, 0, 0, 0xa0, 1, 0, 0xc6, 0xff, 0xff, 0xff, 0xff},
        /* error code str32 of 4 GiB */
        {0x94, 0x01, 0x0a, 0xdb, 0xff, 0xff, 0xff, 0xff},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        fl_alloc_fault_set(0); /* any allocation fails */
        CHECK_EQ_INT(dec(inputs[i], sizeof inputs[i]), FL_EDECODE);
        fl_alloc_fault_clear();
    }
}

/* The worst ratio of decoded size to input: arrays of the smallest elements. */
TEST(footprint_bound)
{
    struct aproto_msg m, d;
    struct aproto_unit_ref *refs = keep(fl_calloc(APROTO_RUNNING_MAX, sizeof *refs));
    struct aproto_host_result *res = keep(fl_calloc(APROTO_HOSTS_MAX, sizeof *res));
    static const char *const argv[APROTO_ARGV_MAX] = {"x"};
    const char **a = keep(fl_calloc(APROTO_ARGV_MAX, sizeof *a));
    for (unsigned i = 0; i < APROTO_ARGV_MAX; i++) {
        a[i] = argv[i] != NULL ? argv[i] : "";
    }
    for (unsigned i = 0; i < APROTO_RUNNING_MAX; i++) {
        aproto_unit_ref_set(&refs[i], "t", 0, 0, 0);
    }
    for (unsigned i = 0; i < APROTO_HOSTS_MAX; i++) {
        res[i] = (struct aproto_host_result){"h", APROTO_ST_OK, 0, NULL, 0};
    }
    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = ref_small();
    m.u.run.kind = APROTO_EXEC_EXEC;
    m.u.run.argc = APROTO_ARGV_MAX;
    m.u.run.argv = a;
    REQUIRE(roundtrip(&m, &d) == FL_OK); /* checks footprint <= 16 len + 64 */
    aproto_msg_close(&d);
    aproto_msg_init(&m, APROTO_HELLO);
    m.u.hello.agent_id = "a";
    m.u.hello.n_running = APROTO_RUNNING_MAX;
    m.u.hello.running = refs;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    aproto_msg_close(&d);
    aproto_msg_init(&m, APROTO_DONE);
    m.u.done.ref = ref_small();
    m.u.done.status = APROTO_ST_OK;
    m.u.done.n_results = APROTO_HOSTS_MAX;
    m.u.done.results = res;
    REQUIRE(roundtrip(&m, &d) == FL_OK);
    aproto_msg_close(&d);
    drop_all();
}

/* ---- framing ------------------------------------------------------------ */

TEST(frame_next)
{
    uint8_t buf[16] = {0, 0, 0, 5, 0x94, 0x01, 0x03, 0x05, 0x06, 0xee};
    const uint8_t *p = NULL;
    size_t fl = 0, pl = 0;
    for (size_t n = 0; n < 9; n++) {
        CHECK_EQ_INT(aproto_frame_next(buf, n, 0, &fl, &p, &pl), APROTO_NEED_MORE);
    }
    CHECK_OK(aproto_frame_next(buf, 10, 0, &fl, &p, &pl));
    CHECK_EQ_INT(fl, 9);
    CHECK_EQ_INT(pl, 5);
    CHECK(p == buf + 4);
    CHECK_OK(aproto_frame_next(buf, 9, 5, &fl, &p, &pl)); /* exactly the limit */
    CHECK_EQ_INT(aproto_frame_next(buf, 9, 4, &fl, &p, &pl), FL_ETOOBIG);
    memcpy(buf, "\0\0\0\0", 4);
    CHECK_EQ_INT(aproto_frame_next(buf, 4, 0, &fl, &p, &pl), FL_EDECODE);
    /* Over the limit: decided from the header alone. */
    memcpy(buf, "\x00\x10\x00\x01", 4);
    CHECK_EQ_INT(aproto_frame_next(buf, 4, 0, &fl, &p, &pl), FL_ETOOBIG);
    CHECK_EQ_INT(aproto_frame_next(buf, 4, 2u * 1024 * 1024, &fl, &p, &pl), APROTO_NEED_MORE);
    memcpy(buf, "\xff\xff\xff\xff", 4);
    CHECK_EQ_INT(aproto_frame_next(buf, 4, SIZE_MAX, &fl, &p, &pl), FL_ETOOBIG);
    CHECK(APROTO_NEED_MORE > FL_ERR_COUNT);
}

/* Feed [0, split) then the rest, draining in between; the messages that come
 * out must re-encode to exactly the stream. */
static void feed_split(struct aproto_reader *r, const struct fl_buf *in, size_t split, size_t chunk,
                       struct fl_buf *again)
{
    size_t off = 0;
    while (off < in->len) {
        size_t end = off < split ? split : in->len, used = 0;
        struct aproto_msg m;
        int rv;
        if (chunk > 0 && end - off > chunk) {
            end = off + chunk;
        }
        rv = aproto_reader_feed(r, in->data + off, end - off, &used);
        CHECK_OK(rv);
        if (rv != FL_OK) {
            return;
        }
        off += used;
        CHECK(aproto_reader_buffered(r) <= r->max_frame + APROTO_HEADER_SIZE);
        while ((rv = aproto_reader_next(r, &m)) == FL_OK) {
            CHECK_OK(aproto_encode(&m, again));
            aproto_msg_close(&m);
        }
        CHECK_EQ_INT(rv, APROTO_NEED_MORE);
    }
}

TEST(reader_every_split)
{
    struct fl_buf in, again;
    size_t ends[N_TYPICAL];
    struct aproto_reader r;
    typical_stream(&in, ends);
    for (size_t split = 0; split <= in.len; split++) {
        aproto_reader_init(&r, 0);
        fl_buf_init(&again);
        feed_split(&r, &in, split, 0, &again);
        CHECK_EQ_INT(again.len, in.len);
        CHECK(again.len == in.len && memcmp(again.data, in.data, in.len) == 0);
        CHECK_EQ_INT(aproto_reader_buffered(&r), 0);
        fl_buf_close(&again);
        aproto_reader_close(&r);
    }
    /* One byte at a time. */
    aproto_reader_init(&r, 0);
    fl_buf_init(&again);
    feed_split(&r, &in, 0, 1, &again);
    CHECK(again.len == in.len && memcmp(again.data, in.data, in.len) == 0);
    fl_buf_close(&again);
    aproto_reader_close(&r);
    fl_buf_close(&in);
}

TEST(reader_two_frames_one_buffer)
{
    struct fl_buf in;
    size_t ends[N_TYPICAL], used = 0;
    struct aproto_reader r;
    struct aproto_msg m;
    typical_stream(&in, ends);
    aproto_reader_init(&r, 0);
    CHECK_OK(aproto_reader_feed(&r, in.data, ends[1], &used));
    CHECK_EQ_INT(used, ends[1]);
    CHECK_OK(aproto_reader_next(&r, &m));
    CHECK_EQ_INT(m.type, APROTO_HELLO);
    CHECK_EQ_STR(m.u.hello.agent_id, "agent-7");
    aproto_msg_close(&m);
    CHECK_OK(aproto_reader_next(&r, &m));
    CHECK_EQ_INT(m.type, APROTO_WELCOME);
    aproto_msg_close(&m);
    CHECK_EQ_INT(aproto_reader_next(&r, &m), APROTO_NEED_MORE);
    aproto_reader_close(&r);
    fl_buf_close(&in);
}

/* A limit smaller than a read: feed takes what fits, the rest after draining. */
TEST(reader_small_limit)
{
    struct fl_buf in, again;
    size_t ends[N_TYPICAL], maxf = 0;
    struct aproto_reader r;
    typical_stream(&in, ends);
    for (unsigned i = 0; i < N_TYPICAL; i++) {
        size_t n = ends[i] - (i ? ends[i - 1] : 0) - APROTO_HEADER_SIZE;
        maxf = n > maxf ? n : maxf;
    }
    aproto_reader_init(&r, maxf);
    fl_buf_init(&again);
    feed_split(&r, &in, 0, 0, &again);
    CHECK(again.len == in.len && memcmp(again.data, in.data, in.len) == 0);
    fl_buf_close(&again);
    aproto_reader_close(&r);
    fl_buf_close(&in);
}

TEST(reader_oversized_refused_before_buffering)
{
    uint8_t data[4096];
    struct aproto_reader r;
    struct aproto_msg m;
    size_t used = 99;
    memset(data, 0x90, sizeof data);
    memcpy(data, "\x00\x00\x08\x00", 4); /* 2048 bytes */
    aproto_reader_init(&r, 1024);
    CHECK_EQ_INT(aproto_reader_feed(&r, data, sizeof data, &used), FL_ETOOBIG);
    CHECK_EQ_INT(used, 4);
    CHECK_EQ_INT(aproto_reader_buffered(&r), 4);
    CHECK(r.cap <= 4096);
    CHECK(strstr(r.errmsg, "2048") != NULL);
    CHECK_EQ_INT(aproto_reader_next(&r, &m), FL_ETOOBIG); /* sticky */
    CHECK_EQ_INT(aproto_reader_feed(&r, data, 1, &used), FL_ETOOBIG);
    CHECK_EQ_INT(used, 0);
    aproto_reader_close(&r);

    /* The same header arriving a byte at a time. */
    aproto_reader_init(&r, 1024);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(aproto_reader_feed(&r, data + i, 1, &used));
        CHECK_EQ_INT(aproto_reader_next(&r, &m), APROTO_NEED_MORE);
    }
    CHECK_EQ_INT(aproto_reader_feed(&r, data + 3, 100, &used), FL_ETOOBIG);
    CHECK_EQ_INT(used, 1);
    aproto_reader_close(&r);

    /* A gigabyte announced to the default reader. */
    aproto_reader_init(&r, 0);
    CHECK_EQ_INT(aproto_reader_feed(&r, (const uint8_t *)"\x40\x00\x00\x00\x90", 5, &used),
                 FL_ETOOBIG);
    CHECK_EQ_INT(aproto_reader_buffered(&r), 4);
    aproto_reader_close(&r);

    /* An empty frame. */
    aproto_reader_init(&r, 0);
    CHECK_EQ_INT(aproto_reader_feed(&r, (const uint8_t *)"\0\0\0\0\x90", 5, &used), FL_EDECODE);
    CHECK_EQ_INT(aproto_reader_next(&r, &m), FL_EDECODE);
    aproto_reader_close(&r);
}

/* A bad frame after a good one is only seen when reached; a payload that does
 * not decode is consumed and the stream goes on. */
TEST(reader_errors_in_stream)
{
    struct fl_buf in;
    struct aproto_msg m;
    struct aproto_reader r;
    size_t used;
    static const uint8_t unknown[] = {0, 0, 0, 3, 0x92, 0x01, 0x63};
    static const uint8_t garbage[] = {0, 0, 0, 2, 0xc1, 0xc1};
    static const uint8_t huge[] = {0xff, 0, 0, 0};
    fl_buf_init(&in);
    fl_buf_append(&in, unknown, sizeof unknown);
    fl_buf_append(&in, garbage, sizeof garbage);
    aproto_msg_init(&m, APROTO_HEARTBEAT);
    m.u.heartbeat.seq = 9;
    CHECK_OK(aproto_encode(&m, &in));
    fl_buf_append(&in, huge, sizeof huge);
    aproto_reader_init(&r, 0);
    CHECK_OK(aproto_reader_feed(&r, in.data, in.len, &used));
    CHECK_EQ_INT(used, in.len);
    CHECK_EQ_INT(aproto_reader_next(&r, &m), FL_EVERSION);
    CHECK(strstr(r.errmsg, "99") != NULL);
    CHECK_EQ_INT(aproto_reader_next(&r, &m), FL_EDECODE);
    CHECK_OK(aproto_reader_next(&r, &m));
    CHECK_EQ_INT(m.u.heartbeat.seq, 9);
    aproto_msg_close(&m);
    CHECK_EQ_INT(aproto_reader_next(&r, &m), FL_ETOOBIG);
    CHECK_EQ_INT(aproto_reader_next(&r, &m), FL_ETOOBIG);
    aproto_reader_close(&r);
    fl_buf_close(&in);
}

/* After a large frame the buffer is given back. */
TEST(reader_shrinks)
{
    struct aproto_msg m;
    struct fl_buf in;
    struct aproto_reader r;
    size_t used, off = 0;
    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = ref_small();
    m.u.run.kind = APROTO_EXEC_SHELL;
    m.u.run.script = rep("#", 'x', 300000);
    fl_buf_init(&in);
    REQUIRE(aproto_encode(&m, &in) == FL_OK);
    aproto_reader_init(&r, 0);
    while (off < in.len) {
        CHECK_OK(aproto_reader_feed(&r, in.data + off, in.len - off < 65536 ? in.len - off : 65536,
                                    &used));
        off += used;
    }
    CHECK(r.cap >= in.len);
    CHECK_OK(aproto_reader_next(&r, &m));
    CHECK_EQ_INT(strlen(m.u.run.script), 300001);
    aproto_msg_close(&m);
    CHECK_EQ_INT(r.cap, 0);
    aproto_reader_close(&r);
    fl_buf_close(&in);
    drop_all();
}

/* ---- totality ------------------------------------------------------------ */

/* A decoded message must be within bounds: it validates (an unknown RUN kind
 * is the one thing we receive but do not send) and re-encodes to a payload
 * that decodes again. */
static void check_decoded(const struct aproto_msg *m, size_t len)
{
    struct fl_buf b;
    struct aproto_msg again;
    CHECK(aproto_msg_footprint(m) <= 16 * len + 64);
    if (m->type == APROTO_RUN && m->u.run.kind >= APROTO__EXEC_MAX) {
        return;
    }
    CHECK_OK(aproto_msg_validate(m, NULL));
    fl_buf_init(&b);
    CHECK_OK(aproto_encode_ex(m, APROTO_FRAME_LIMIT, &b, NULL));
    if (b.len > 4) {
        CHECK_OK(aproto_decode(b.data + 4, b.len - 4, &again));
        aproto_msg_close(&again);
    }
    fl_buf_close(&b);
}

TEST(truncation_every_length)
{
    struct fl_buf in;
    size_t ends[N_TYPICAL];
    typical_stream(&in, ends);
    for (unsigned i = 0; i < N_TYPICAL; i++) {
        size_t start = i ? ends[i - 1] : 0, len = ends[i] - start;
        const uint8_t *p;
        size_t fl, pl;
        for (size_t n = 0; n < len; n++) {
            struct aproto_msg m;
            CHECK_EQ_INT(aproto_frame_next(in.data + start, n, 0, &fl, &p, &pl), APROTO_NEED_MORE);
            if (n >= 4) {
                CHECK(aproto_decode(in.data + start + 4, n - 4, &m) != FL_OK);
                aproto_msg_close(&m);
            }
        }
    }
    fl_buf_close(&in);
}

TEST(bit_flips)
{
    struct fl_buf in;
    size_t ends[N_TYPICAL];
    unsigned ok = 0, refused_n = 0;
    typical_stream(&in, ends);
    for (unsigned i = 0; i < N_TYPICAL; i++) {
        size_t start = i ? ends[i - 1] : 0, len = ends[i] - start;
        uint8_t *f = fl_malloc(len);
        REQUIRE(f != NULL);
        for (size_t bit = 0; bit < 8 * len; bit++) {
            const uint8_t *p;
            size_t fl, pl;
            struct aproto_msg m;
            int rv;
            memcpy(f, in.data + start, len);
            f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            rv = aproto_frame_next(f, len, 0, &fl, &p, &pl);
            if (rv != FL_OK) {
                continue;
            }
            rv = aproto_decode(p, pl, &m);
            if (rv == FL_OK) {
                ok++;
                check_decoded(&m, pl);
            } else {
                CHECK(rv == FL_EDECODE || rv == FL_EVERSION);
                CHECK_EQ_INT(m.type, 0);
                refused_n++;
            }
            aproto_msg_close(&m);
        }
        fl_free(f);
    }
    fprintf(stderr, "   bit flips: %u decoded, %u refused\n", ok, refused_n);
    CHECK(ok > 0 && refused_n > 0);
    fl_buf_close(&in);
}

/* Every allocation the decoder and reader make can fail cleanly. */
TEST(alloc_faults)
{
    struct aproto_msg ms[N_TYPICAL];
    unsigned n = typical(ms);
    for (unsigned i = 0; i < n; i++) {
        struct fl_buf b;
        struct aproto_msg d;
        size_t used;
        int rv;
        fl_buf_init(&b);
        REQUIRE(aproto_encode(&ms[i], &b) == FL_OK);
        for (long k = 0;; k++) {
            struct aproto_reader r;
            aproto_reader_init(&r, 0);
            fl_alloc_fault_set(k);
            rv = aproto_reader_feed(&r, b.data, b.len, &used);
            if (rv == FL_OK) {
                CHECK_EQ_INT(used, b.len);
                rv = aproto_reader_next(&r, &d);
                if (rv == FL_ENOMEM) { /* the frame stayed: a retry succeeds */
                    fl_alloc_fault_clear();
                    CHECK_EQ_INT(aproto_reader_buffered(&r), b.len);
                    CHECK_OK(aproto_reader_next(&r, &d));
                    aproto_msg_close(&d);
                }
            }
            fl_alloc_fault_clear();
            CHECK(rv == FL_OK || rv == FL_ENOMEM);
            if (rv == FL_OK) {
                CHECK_EQ_INT(d.type, ms[i].type);
                aproto_msg_close(&d);
            }
            aproto_reader_close(&r);
            if (rv == FL_OK) {
                break;
            }
        }
        /* Encoding into a full allocator leaves the buffer as it was. */
        for (long k = 0; k < 3; k++) {
            struct fl_buf e;
            fl_buf_init(&e);
            fl_alloc_fault_set(k);
            rv = aproto_encode(&ms[i], &e);
            fl_alloc_fault_clear();
            CHECK(rv == FL_OK || (rv == FL_ENOMEM && e.len == 0));
            fl_buf_close(&e);
        }
        fl_buf_close(&b);
    }
}

int main(void)
{
    RUN(hello_max);
    RUN(hello_min);
    RUN(welcome);
    RUN(heartbeat_started_cancel_ack_error);
    RUN(run_max);
    RUN(run_kinds);
    RUN(run_deploy);
    RUN(run_unknown_kind);
    RUN(log_done);
    RUN(typical_all_types);
    RUN(refuse_hello);
    RUN(refuse_welcome_error_ack);
    RUN(refuse_run);
    RUN(refuse_log_done);
    RUN(refuse_unknown_type);
    RUN(validators);
    RUN(decode_versions_and_shapes);
    RUN(decode_extra_nested);
    RUN(hostile_counts);
    RUN(footprint_bound);
    RUN(frame_next);
    RUN(reader_every_split);
    RUN(reader_two_frames_one_buffer);
    RUN(reader_small_limit);
    RUN(reader_oversized_refused_before_buffering);
    RUN(reader_errors_in_stream);
    RUN(reader_shrinks);
    RUN(truncation_every_length);
    RUN(bit_flips);
    RUN(alloc_faults);
    return check_summary();
}
