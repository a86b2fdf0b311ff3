/* The executors (agent/exec.h) on a real libuv loop with real processes:
 * exec and shell results, output streaming and tails, timeouts, cancels and
 * the killing of whole process groups, noop and sleep, and Ansible ad-hoc
 * modules and playbooks against ansible_connection=local hosts.
 *
 * Every run gets a fresh loop that must close cleanly (uv_loop_close == 0:
 * no handle left behind); the callbacks check their own contract (started
 * once and before done, log chunks contiguous and bounded, nothing after
 * done, done exactly once and never from exec_start). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <uv.h>

#include "agent/exec.h"
#include "check.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

#define MAXH 8

static char tmpdir[256];
static char marker[64];
static int inherited_fd[1024]; /* fds of the test process without FD_CLOEXEC */

struct outcome {
    struct exec *e;
    uv_loop_t loop;
    uv_timer_t cancel_timer;
    unsigned cancel_after_ms;
    int cancel_twice;
    int free_in_done;
    uint64_t t0;

    int sync_calls; /* callbacks seen before exec_start returned */
    int started_calls, pid, pgid_ok;
    int done_calls, unit_status, exit_code;
    unsigned n;
    char host[MAXH][64];
    int status[MAXH], rc[MAXH];
    char *tail[MAXH];
    size_t tail_len[MAXH];
    struct fl_buf log[3];
    size_t max_chunk;
    int bad_log;   /* wrong host/stream/offset, empty or oversized chunk, before started */
    int late_call; /* a callback after done */
    uint64_t ms;   /* exec_start to done */
    int live_at_done;
    int marker_at_done;
};

/* ---- /proc ------------------------------------------------------------------ */

static int read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) {
        return -1;
    }
    buf[n] = '\0';
    return (int)n;
}

/* Live (not zombie) processes in group pgid, and live processes whose
 * command line holds mark (if mark is not NULL). */
static int count_procs(int pgid, const char *mark)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int count = 0;
    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char path[300], buf[4096];
        const char *p;
        char state;
        int pgrp, n;
        if (de->d_name[0] < '1' || de->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        if (read_file(path, buf, sizeof buf) <= 0 || (p = strrchr(buf, ')')) == NULL ||
            sscanf(p + 1, " %c %*d %d", &state, &pgrp) != 2 || state == 'Z') {
            continue;
        }
        if (mark == NULL) {
            count += pgrp == pgid;
            continue;
        }
        snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
        n = read_file(path, buf, sizeof buf);
        for (int i = 0; i < n; i++) {
            buf[i] = buf[i] ? buf[i] : ' ';
        }
        count += n > 0 && strstr(buf, mark) != NULL;
    }
    closedir(d);
    return count;
}

/* ---- callbacks ------------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void o_started(void *data, int pid)
{
    struct outcome *o = data;
    o->started_calls++;
    o->pid = pid;
    o->pgid_ok = pid == 0 || getpgid(pid) == pid;
    o->late_call |= o->done_calls > 0;
}

static void o_log(void *data, const char *host, int stream, uint64_t offset, const uint8_t *p,
                  size_t n)
{
    struct outcome *o = data;
    o->late_call |= o->done_calls > 0;
    if (host == NULL || host[0] != '\0' || (stream != 1 && stream != 2) || n == 0 ||
        offset != o->log[stream].len || o->started_calls == 0) {
        o->bad_log = 1;
        return;
    }
    o->max_chunk = n > o->max_chunk ? n : o->max_chunk;
    fl_buf_append(&o->log[stream], p, n);
}

static void closed_nothing(uv_handle_t *h)
{
    (void)h;
}

static void o_done(void *data, int unit_status, int exit_code, const struct exec_host_result *res,
                   unsigned n)
{
    struct outcome *o = data;
    o->ms = now_ms() - o->t0;
    o->done_calls++;
    o->unit_status = unit_status;
    o->exit_code = exit_code;
    o->n = n;
    for (unsigned i = 0; i < n && i < MAXH; i++) {
        snprintf(o->host[i], sizeof o->host[i], "%s", res[i].host);
        o->status[i] = res[i].status;
        o->rc[i] = res[i].rc;
        o->tail[i] = fl_strndup(res[i].tail, res[i].tail_len);
        o->tail_len[i] = res[i].tail_len;
    }
    if (o->pid > 0) {
        o->live_at_done = count_procs(o->pid, NULL);
    }
    o->marker_at_done = count_procs(0, marker);
    if (!uv_is_closing((uv_handle_t *)&o->cancel_timer)) {
        uv_close((uv_handle_t *)&o->cancel_timer, closed_nothing);
    }
    exec_cancel(o->e); /* after done: a no-op */
    if (o->free_in_done) {
        exec_free(o->e);
        o->e = NULL;
    }
}

static void on_cancel_timer(uv_timer_t *t)
{
    struct outcome *o = t->data;
    exec_cancel(o->e);
    if (o->cancel_twice) {
        exec_cancel(o->e);
    }
}

static const struct exec_callbacks callbacks = {o_started, o_log, o_done};

/* Run spec to its end on a fresh loop. Returns exec_start's result. */
static int run(const struct exec_spec *spec, struct outcome *o)
{
    char err[FL_ERRMSG_SIZE];
    int rv;
    for (int s = 0; s < 3; s++) {
        fl_buf_init(&o->log[s]);
    }
    if (uv_loop_init(&o->loop) != 0) {
        return -1;
    }
    uv_timer_init(&o->loop, &o->cancel_timer);
    o->cancel_timer.data = o;
    o->t0 = now_ms();
    rv = exec_start(&o->loop, spec, &callbacks, o, &o->e, err);
    o->sync_calls = o->started_calls + o->done_calls;
    if (rv != FL_OK) {
        uv_close((uv_handle_t *)&o->cancel_timer, closed_nothing);
    } else if (o->cancel_after_ms > 0) {
        uv_timer_start(&o->cancel_timer, on_cancel_timer, o->cancel_after_ms, 0);
    }
    uv_run(&o->loop, UV_RUN_DEFAULT);
    if (rv == FL_OK && o->e != NULL) {
        exec_cancel(o->e);
        exec_free(o->e);
        o->e = NULL;
    }
    if (uv_loop_close(&o->loop) != 0) {
        fprintf(stderr, "loop did not close: a handle is left\n");
        return -2;
    }
    return rv;
}

static void outcome_free(struct outcome *o)
{
    for (unsigned i = 0; i < o->n && i < MAXH; i++) {
        fl_free(o->tail[i]);
    }
    for (int s = 0; s < 3; s++) {
        fl_buf_close(&o->log[s]);
    }
}

/* The contract every run keeps. */
#define CHECK_CONTRACT(o)                                                                          \
    do {                                                                                           \
        CHECK_EQ_INT((o).sync_calls, 0);                                                           \
        CHECK_EQ_INT((o).done_calls, 1);                                                           \
        CHECK((o).started_calls <= 1);                                                             \
        CHECK_EQ_INT((o).bad_log, 0);                                                              \
        CHECK_EQ_INT((o).late_call, 0);                                                            \
        CHECK((o).pgid_ok || (o).started_calls == 0);                                              \
        CHECK_EQ_INT((o).live_at_done, 0);                                                         \
    } while (0)

static const char *const hosts3[] = {"h1", "h2", "h3", NULL};

static struct exec_spec spec_of(int kind, unsigned n_hosts)
{
    struct exec_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.hosts = hosts3;
    s.n_hosts = n_hosts;
    s.workdir = tmpdir;
    return s;
}

static int tail_is(const struct outcome *o, unsigned i, const char *want)
{
    return o->tail[i] != NULL && o->tail_len[i] == strlen(want) &&
           memcmp(o->tail[i], want, o->tail_len[i]) == 0;
}

static int tail_has(const struct outcome *o, unsigned i, const char *want)
{
    return o->tail[i] != NULL && strstr(o->tail[i], want) != NULL;
}

/* ---- exec ------------------------------------------------------------------------ */

TEST(exec_true_false_exit3)
{
    static const char *const t[] = {"true", NULL}, *const f[] = {"false", NULL};
    struct exec_spec s = spec_of(EXEC_EXEC, 2);
    struct outcome o1 = {0}, o2 = {0}, o3 = {0};

    s.argv = t;
    CHECK_OK(run(&s, &o1));
    CHECK_CONTRACT(o1);
    CHECK_EQ_INT(o1.started_calls, 1);
    CHECK(o1.pid > 0);
    CHECK_EQ_INT(o1.unit_status, EXEC_OK);
    CHECK_EQ_INT(o1.exit_code, 0);
    REQUIRE(o1.n == 2);
    CHECK_EQ_STR(o1.host[0], "h1");
    CHECK_EQ_STR(o1.host[1], "h2");
    CHECK_EQ_INT(o1.status[0], EXEC_OK);
    CHECK_EQ_INT(o1.status[1], EXEC_OK);
    CHECK_EQ_INT(o1.rc[1], 0);

    s.argv = f;
    CHECK_OK(run(&s, &o2));
    CHECK_CONTRACT(o2);
    CHECK_EQ_INT(o2.unit_status, EXEC_FAILED);
    CHECK_EQ_INT(o2.exit_code, 1);
    CHECK_EQ_INT(o2.status[0], EXEC_FAILED);
    CHECK_EQ_INT(o2.rc[0], 1);
    CHECK_EQ_INT(o2.rc[1], 1);

    s = spec_of(EXEC_SHELL, 3);
    s.script = "echo bye; exit 3";
    o3.free_in_done = 1;
    CHECK_OK(run(&s, &o3));
    CHECK_CONTRACT(o3);
    CHECK_EQ_INT(o3.unit_status, EXEC_FAILED);
    CHECK_EQ_INT(o3.exit_code, 3);
    REQUIRE(o3.n == 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ_INT(o3.status[i], EXEC_FAILED);
        CHECK_EQ_INT(o3.rc[i], 3);
        CHECK(tail_is(&o3, i, "bye\n"));
    }
    outcome_free(&o1);
    outcome_free(&o2);
    outcome_free(&o3);
}

TEST(exec_argv_without_shell)
{
    static const char *const argv[] = {"printf", "[%s]", "a b; echo x", "$HOME", "c  d", NULL};
    struct exec_spec s = spec_of(EXEC_EXEC, 1);
    struct outcome o = {0};
    s.argv = argv;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    CHECK(tail_is(&o, 0, "[a b; echo x][$HOME][c  d]"));
    CHECK_EQ_STR((char *)o.log[1].data, "[a b; echo x][$HOME][c  d]");
    outcome_free(&o);
}

TEST(exec_not_found)
{
    static const char *const argv[] = {"nosuchcmd", "x", NULL};
    struct exec_spec s = spec_of(EXEC_EXEC, 2);
    struct outcome o = {0};
    s.argv = argv;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.started_calls, 0);
    CHECK_EQ_INT(o.unit_status, EXEC_ERROR);
    CHECK_EQ_INT(o.exit_code, -1);
    REQUIRE(o.n == 2);
    for (unsigned i = 0; i < 2; i++) {
        CHECK_EQ_INT(o.status[i], EXEC_ERROR);
        CHECK_EQ_INT(o.rc[i], -1);
        CHECK_EQ_STR(o.tail[i], "exec: nosuchcmd: No such file or directory");
    }
    outcome_free(&o);
}

TEST(exec_bad_specs)
{
    static const char *const empty[] = {NULL};
    static const char *const badenv[] = {"NOEQUALS", NULL};
    static const char *const bad_hosts[] = {"h1 ansible_host=evil", NULL};
    struct exec_spec s = spec_of(EXEC_EXEC, 1);
    struct outcome o1 = {0}, o2 = {0}, o3 = {0}, o4 = {0};
    struct exec *e = NULL;
    char err[FL_ERRMSG_SIZE];
    uv_loop_t loop;

    s.argv = empty;
    CHECK_OK(run(&s, &o1));
    CHECK_CONTRACT(o1);
    CHECK_EQ_INT(o1.status[0], EXEC_ERROR);
    CHECK(tail_has(&o1, 0, "empty argv"));

    s = spec_of(99, 1);
    CHECK_OK(run(&s, &o2));
    CHECK_CONTRACT(o2);
    CHECK_EQ_INT(o2.unit_status, EXEC_ERROR);
    CHECK(tail_has(&o2, 0, "unknown executor kind 99"));

    s = spec_of(EXEC_ANSIBLE_MODULE, 1);
    s.hosts = bad_hosts;
    s.module = "ping";
    CHECK_OK(run(&s, &o3));
    CHECK_CONTRACT(o3);
    CHECK_EQ_INT(o3.status[0], EXEC_ERROR);
    CHECK(tail_has(&o3, 0, "host name not usable"));

    s = spec_of(EXEC_SHELL, 1);
    s.script = "true";
    s.env = badenv;
    CHECK_OK(run(&s, &o4));
    CHECK_CONTRACT(o4);
    CHECK(tail_has(&o4, 0, "bad environment entry"));

    /* Only missing arguments fail synchronously. */
    uv_loop_init(&loop);
    CHECK_EQ_INT(exec_start(&loop, NULL, &callbacks, NULL, &e, err), FL_EINVAL);
    s.hosts = NULL;
    CHECK_EQ_INT(exec_start(&loop, &s, &callbacks, NULL, &e, err), FL_EINVAL);
    CHECK(e == NULL);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    exec_free(NULL);
    exec_cancel(NULL);
    outcome_free(&o1);
    outcome_free(&o2);
    outcome_free(&o3);
    outcome_free(&o4);
}

/* A deploy runs its argv as exec does (the agent builds it); deploy-target's
 * exit code decides, so rolled back (3) is a failure with rc 3. A refused
 * unit never starts and says why in every host's tail. */
TEST(exec_deploy_and_refuse)
{
    static const char *const ok[] = {"sh", "-c", "echo '{\"event\":\"report\"}'", NULL};
    static const char *const rolled_back[] = {"sh", "-c", "echo rolled back; exit 3", NULL};
    struct exec_spec s = spec_of(EXEC_DEPLOY, 1);
    struct outcome o1 = {0}, o2 = {0}, o3 = {0}, o4 = {0};

    s.argv = ok;
    CHECK_OK(run(&s, &o1));
    CHECK_CONTRACT(o1);
    CHECK_EQ_INT(o1.started_calls, 1);
    CHECK_EQ_INT(o1.unit_status, EXEC_OK);
    CHECK_EQ_INT(o1.status[0], EXEC_OK);
    CHECK(tail_is(&o1, 0, "{\"event\":\"report\"}\n"));

    s.argv = rolled_back;
    CHECK_OK(run(&s, &o2));
    CHECK_CONTRACT(o2);
    CHECK_EQ_INT(o2.unit_status, EXEC_FAILED);
    CHECK_EQ_INT(o2.exit_code, 3);
    CHECK_EQ_INT(o2.status[0], EXEC_FAILED);
    CHECK_EQ_INT(o2.rc[0], 3);
    CHECK(tail_is(&o2, 0, "rolled back\n"));

    s = spec_of(EXEC_DEPLOY, 2);
    s.argv = ok;
    s.refuse = "deploy: the unit has no FLOTILLA_BLOB_SOURCES";
    CHECK_OK(run(&s, &o3));
    CHECK_CONTRACT(o3);
    CHECK_EQ_INT(o3.started_calls, 0);
    CHECK_EQ_INT(o3.unit_status, EXEC_ERROR);
    CHECK_EQ_INT(o3.exit_code, -1);
    REQUIRE(o3.n == 2);
    for (unsigned i = 0; i < 2; i++) {
        CHECK_EQ_INT(o3.status[i], EXEC_ERROR);
        CHECK_EQ_INT(o3.rc[i], -1);
        CHECK_EQ_STR(o3.tail[i], "deploy: the unit has no FLOTILLA_BLOB_SOURCES");
    }

    /* Any kind can be refused, even one that runs nothing. */
    s = spec_of(EXEC_NOOP, 1);
    s.refuse = "";
    CHECK_OK(run(&s, &o4));
    CHECK_CONTRACT(o4);
    CHECK_EQ_INT(o4.unit_status, EXEC_ERROR);
    CHECK(tail_is(&o4, 0, "refused"));
    outcome_free(&o1);
    outcome_free(&o2);
    outcome_free(&o3);
    outcome_free(&o4);
}

/* ---- shell, environment, output -------------------------------------------------------- */

TEST(exec_shell_pipes_and_env)
{
    static const char *const env[] = {"FLOTILLA_TASK_ID=task-abc",
                                      "FLOTILLA_UNIT=7",
                                      "FLOTILLA_HOSTS=h1 h2 h3",
                                      "FLOTILLA_ATTEMPT=2",
                                      "FLOTILLA_FENCING_TOKEN=42",
                                      "FLOTILLA_TEST_OVERRIDE=new",
                                      NULL};
    struct exec_spec s = spec_of(EXEC_SHELL, 3);
    struct outcome o = {0};
    char cwd[600];
    setenv("FLOTILLA_TEST_INHERITED", "yes", 1);
    setenv("FLOTILLA_TEST_OVERRIDE", "old", 1);
    s.script = "echo \"$FLOTILLA_TASK_ID/$FLOTILLA_UNIT/$FLOTILLA_ATTEMPT/$FLOTILLA_FENCING_TOKEN\""
               " | tr a-z A-Z; echo \"$FLOTILLA_HOSTS\" | wc -w | tr -d ' ';"
               " echo $FLOTILLA_TEST_INHERITED $FLOTILLA_TEST_OVERRIDE; pwd; sleep 0.1;"
               " echo oops >&2; read x; echo \"stdin=$x.\"";
    s.env = env;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    snprintf(cwd, sizeof cwd, "TASK-ABC/7/2/42\n3\nyes new\n%s\n", tmpdir);
    CHECK(o.log[1].len > strlen(cwd) && memcmp(o.log[1].data, cwd, strlen(cwd)) == 0);
    CHECK_EQ_STR((char *)o.log[2].data, "oops\n");
    /* The tail interleaves the streams in arrival order; stdin is /dev/null. */
    snprintf(cwd, sizeof cwd, "TASK-ABC/7/2/42\n3\nyes new\n%s\noops\nstdin=.\n", tmpdir);
    CHECK(tail_is(&o, 2, cwd));
    unsetenv("FLOTILLA_TEST_INHERITED");
    unsetenv("FLOTILLA_TEST_OVERRIDE");
    outcome_free(&o);
}

TEST(exec_output_larger_than_tail)
{
    struct exec_spec s = spec_of(EXEC_SHELL, 2);
    struct outcome o = {0};
    struct fl_buf want, want_err;
    fl_buf_init(&want);
    fl_buf_init(&want_err);
    for (int i = 1; i <= 60000; i++) {
        fl_buf_printf(&want, "%d\n", i);
    }
    for (int i = 1; i <= 3000; i++) {
        fl_buf_printf(&want_err, "%d\n", i);
    }
    s.script = "seq 1 3000 >&2; seq 1 60000";
    s.tail_bytes = 100;
    s.log_chunk_bytes = 1000;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    CHECK_EQ_INT(o.log[1].len, want.len);
    CHECK(o.log[1].len == want.len && memcmp(o.log[1].data, want.data, want.len) == 0);
    CHECK(o.log[2].len == want_err.len && memcmp(o.log[2].data, want_err.data, want_err.len) == 0);
    CHECK(o.max_chunk <= 1000);
    REQUIRE(o.n == 2);
    CHECK_EQ_INT(o.tail_len[0], 100);
    CHECK(memcmp(o.tail[0], want.data + want.len - 100, 100) == 0);
    CHECK(tail_is(&o, 1, o.tail[0]));
    fl_buf_close(&want);
    fl_buf_close(&want_err);
    outcome_free(&o);
}

/* No descriptor of ours reaches a unit: only 0..2, plus what this test
 * process itself inherited without close-on-exec (not the executor's). */
TEST(exec_no_fd_leak)
{
    struct exec_spec s = spec_of(EXEC_SHELL, 1);
    struct outcome o = {0};
    char *p, *end;
    int leaked = 0;
    s.script = "ls /proc/$$/fd";
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    REQUIRE(o.log[1].data != NULL);
    for (p = (char *)o.log[1].data; *p; p = end) {
        long fd = strtol(p, &end, 10);
        if (end == p) {
            break;
        }
        if (fd > 2 && (fd >= 1024 || !inherited_fd[fd])) {
            fprintf(stderr, "leaked fd %ld\n", fd);
            leaked++;
        }
    }
    CHECK_EQ_INT(leaked, 0);
    outcome_free(&o);
}

/* ---- timeouts, cancels, process groups -------------------------------------------------- */

TEST(exec_timeout_kills)
{
    static const char *const argv[] = {"sleep", "60", NULL};
    struct exec_spec s = spec_of(EXEC_EXEC, 2);
    struct outcome o = {0};
    s.argv = argv;
    s.timeout_ms = 300;
    s.kill_grace_ms = 3000;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_TIMEOUT);
    CHECK_EQ_INT(o.exit_code, 128 + SIGTERM);
    CHECK_EQ_INT(o.status[0], EXEC_TIMEOUT);
    CHECK_EQ_INT(o.status[1], EXEC_TIMEOUT);
    CHECK(o.ms >= 290 && o.ms < 1500);
    outcome_free(&o);
}

TEST(exec_timeout_kills_background_children)
{
    struct exec_spec s = spec_of(EXEC_SHELL, 1);
    struct outcome o = {0};
    char script[400];
    snprintf(script, sizeof script,
             "sh -c 'sleep 300; : %s' & sh -c 'sleep 300; : %s' & sleep 300 & echo up; wait",
             marker, marker);
    s.script = script;
    s.timeout_ms = 400;
    s.kill_grace_ms = 2000;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_TIMEOUT);
    CHECK(tail_is(&o, 0, "up\n"));
    CHECK_EQ_INT(o.marker_at_done, 0);
    CHECK(o.ms < 2000);
    CHECK_EQ_INT(count_procs(o.pid, NULL), 0);
    CHECK_EQ_INT(count_procs(0, marker), 0);
    outcome_free(&o);
}

/* The main process exits on its own and leaves children behind: they are
 * killed too (TERM first), and done() waits for that. */
TEST(exec_leftovers_after_exit_are_killed)
{
    struct exec_spec s = spec_of(EXEC_SHELL, 1);
    struct outcome o = {0};
    char script[400];
    snprintf(script, sizeof script,
             "sh -c 'sleep 300; : %s' >/dev/null 2>&1 & sleep 300 & echo left; exit 0", marker);
    s.script = script;
    s.kill_grace_ms = 3000;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    CHECK(tail_is(&o, 0, "left\n"));
    CHECK_EQ_INT(o.marker_at_done, 0);
    CHECK(o.ms < 1500);
    outcome_free(&o);
}

TEST(exec_cancel_mid_run)
{
    struct exec_spec s = spec_of(EXEC_SHELL, 3);
    struct outcome o = {0};
    s.script = "echo running; sleep 60";
    o.cancel_after_ms = 300;
    o.cancel_twice = 1;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_CANCELLED);
    REQUIRE(o.n == 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ_INT(o.status[i], EXEC_CANCELLED);
        CHECK(tail_is(&o, i, "running\n"));
    }
    CHECK(o.ms >= 290 && o.ms < 1500);
    outcome_free(&o);
}

TEST(exec_term_ignored_then_killed)
{
    struct exec_spec s = spec_of(EXEC_SHELL, 1);
    struct outcome o = {0};
    s.script = "trap '' TERM; echo ready; while :; do sleep 0.05; done";
    s.timeout_ms = 200;
    s.kill_grace_ms = 700;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_TIMEOUT);
    CHECK_EQ_INT(o.exit_code, 128 + SIGKILL);
    CHECK_EQ_INT(o.rc[0], 128 + SIGKILL);
    CHECK(o.ms >= 880 && o.ms < 2500);
    outcome_free(&o);
}

/* ---- noop and sleep --------------------------------------------------------------------- */

TEST(exec_noop)
{
    struct exec_spec s = spec_of(EXEC_NOOP, 3);
    struct outcome o = {0};
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.started_calls, 1);
    CHECK_EQ_INT(o.pid, 0);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    CHECK_EQ_INT(o.exit_code, 0);
    REQUIRE(o.n == 3);
    CHECK_EQ_INT(o.status[2], EXEC_OK);
    CHECK_EQ_INT(o.tail_len[2], 0);
    CHECK(o.ms < 100);
    outcome_free(&o);
}

TEST(exec_sleep)
{
    struct exec_spec s = spec_of(EXEC_SLEEP, 2);
    struct outcome o1 = {0}, o2 = {0}, o3 = {0};
    s.sleep_ms = 200;
    CHECK_OK(run(&s, &o1));
    CHECK_CONTRACT(o1);
    CHECK_EQ_INT(o1.started_calls, 1);
    CHECK_EQ_INT(o1.unit_status, EXEC_OK);
    CHECK(o1.ms >= 190 && o1.ms < 1000);

    s.sleep_ms = 200;
    s.timeout_ms = 1000;
    CHECK_OK(run(&s, &o2));
    CHECK_EQ_INT(o2.unit_status, EXEC_OK);

    s.sleep_ms = 60000;
    s.timeout_ms = 150;
    CHECK_OK(run(&s, &o3));
    CHECK_CONTRACT(o3);
    CHECK_EQ_INT(o3.unit_status, EXEC_TIMEOUT);
    CHECK_EQ_INT(o3.status[1], EXEC_TIMEOUT);
    CHECK(o3.ms >= 140 && o3.ms < 1000);
    outcome_free(&o1);
    outcome_free(&o2);
    outcome_free(&o3);
}

TEST(exec_sleep_cancel)
{
    struct exec_spec s = spec_of(EXEC_SLEEP, 1);
    struct outcome o = {0};
    s.sleep_ms = 60000;
    o.cancel_after_ms = 100;
    o.free_in_done = 1;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_CANCELLED);
    CHECK(o.ms < 1000);
    outcome_free(&o);
}

/* ---- allocation faults ------------------------------------------------------------------- */

/* Every allocation of exec_start fails in turn: either it reports FL_ENOMEM
 * and nothing happens, or the unit runs and reports exactly once. Then the
 * results are computed with every allocation failing. */
TEST(exec_alloc_faults)
{
    static const char *const env[] = {"FLOTILLA_UNIT=1", NULL};
    struct exec_spec s = spec_of(EXEC_PLAYBOOK, 3);
    int kinds[] = {EXEC_SHELL, EXEC_PLAYBOOK, EXEC_NOOP};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int rv = FL_ENOMEM;
        for (long n = 0; rv == FL_ENOMEM && n < 1000; n++) {
            struct outcome o = {0};
            char err[FL_ERRMSG_SIZE];
            s.kind = kinds[k];
            s.script = "echo hi";
            s.playbook = "- hosts: all\n  gather_facts: false\n  tasks: []\n";
            s.env = env;
            uv_loop_init(&o.loop);
            for (int i = 0; i < 3; i++) {
                fl_buf_init(&o.log[i]);
            }
            o.t0 = now_ms();
            fl_alloc_fault_set(n);
            rv = exec_start(&o.loop, &s, &callbacks, &o, &o.e, err);
            fl_alloc_fault_clear();
            uv_timer_init(&o.loop, &o.cancel_timer);
            if (rv == FL_OK) {
                exec_cancel(o.e); /* keeps the playbook case short */
            } else {
                CHECK_EQ_INT(rv, FL_ENOMEM);
                uv_close((uv_handle_t *)&o.cancel_timer, closed_nothing);
            }
            uv_run(&o.loop, UV_RUN_DEFAULT);
            CHECK_EQ_INT(o.done_calls, rv == FL_OK ? 1 : 0);
            exec_free(o.e);
            CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
            outcome_free(&o);
        }
        CHECK_OK(rv);
    }
    /* Nothing left behind in the workdir by the failed starts. */
    {
        DIR *d = opendir(tmpdir);
        struct dirent *de;
        int files = 0;
        while (d != NULL && (de = readdir(d)) != NULL) {
            files += strncmp(de->d_name, "flotilla-", 9) == 0;
        }
        if (d != NULL) {
            closedir(d);
        }
        CHECK_EQ_INT(files, 0);
    }
    /* Results with no memory at all: still one done, with the fallback tail. */
    {
        struct outcome o = {0};
        char err[FL_ERRMSG_SIZE];
        s = spec_of(EXEC_SHELL, 2);
        s.script = "echo hi";
        uv_loop_init(&o.loop);
        uv_timer_init(&o.loop, &o.cancel_timer);
        for (int i = 0; i < 3; i++) {
            fl_buf_init(&o.log[i]);
        }
        CHECK_OK(exec_start(&o.loop, &s, &callbacks, &o, &o.e, err));
        fl_alloc_fault_set(0);
        uv_run(&o.loop, UV_RUN_DEFAULT);
        fl_alloc_fault_clear();
        CHECK_EQ_INT(o.done_calls, 1);
        CHECK_EQ_INT(o.unit_status, EXEC_OK);
        CHECK_EQ_INT(o.status[1], EXEC_OK);
        exec_free(o.e);
        CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
        outcome_free(&o);
    }
}

/* ---- Ansible ------------------------------------------------------------------------------ */

static const char *const local_vars[] = {"ansible_connection=local",
                                         "ansible_python_interpreter=/usr/bin/python3", NULL};

TEST(exec_ansible_ping)
{
    struct exec_spec s = spec_of(EXEC_ANSIBLE_MODULE, 3);
    struct outcome o = {0};
    s.module = "ping";
    s.inventory_vars = local_vars;
    s.timeout_ms = 60000;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    fprintf(stderr, "   ansible ping: %llu ms\n", (unsigned long long)o.ms);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    CHECK_EQ_INT(o.exit_code, 0);
    REQUIRE(o.n == 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ_INT(o.status[i], EXEC_OK);
        CHECK_EQ_INT(o.rc[i], 0);
        CHECK(tail_has(&o, i, "\"ping\":\"pong\""));
    }
    CHECK(o.log[1].len > 0 && strstr((char *)o.log[1].data, "\"stats\"") != NULL);
    outcome_free(&o);
}

TEST(exec_ansible_command)
{
    struct exec_spec s = spec_of(EXEC_ANSIBLE_MODULE, 3);
    struct outcome o = {0}, f = {0};
    s.module = "command";
    s.module_args = "echo hi";
    s.inventory_vars = local_vars;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    fprintf(stderr, "   ansible command: %llu ms\n", (unsigned long long)o.ms);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    REQUIRE(o.n == 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ_INT(o.status[i], EXEC_OK);
        CHECK_EQ_INT(o.rc[i], 0);
        CHECK(tail_is(&o, i, "hi"));
    }

    s.module_args = "/bin/false";
    CHECK_OK(run(&s, &f));
    CHECK_CONTRACT(f);
    fprintf(stderr, "   ansible failing command: %llu ms\n", (unsigned long long)f.ms);
    CHECK_EQ_INT(f.unit_status, EXEC_FAILED);
    CHECK_EQ_INT(f.exit_code, 2);
    REQUIRE(f.n == 3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK_EQ_INT(f.status[i], EXEC_FAILED);
        CHECK_EQ_INT(f.rc[i], 1);
        CHECK(tail_has(&f, i, "non-zero return code"));
    }
    outcome_free(&o);
    outcome_free(&f);
}

TEST(exec_playbook)
{
    static const char ok_play[] = "- hosts: all\n"
                                  "  gather_facts: false\n"
                                  "  tasks:\n"
                                  "    - name: say hi\n"
                                  "      command: echo hi {{ inventory_hostname }}\n"
                                  "    - name: say bye\n"
                                  "      debug: msg=\"bye {{ inventory_hostname }}\"\n";
    static const char bad_play[] = "- hosts: all\n"
                                   "  gather_facts: false\n"
                                   "  tasks:\n"
                                   "    - name: say hi\n"
                                   "      command: echo hi {{ inventory_hostname }}\n"
                                   "    - name: fail on h2\n"
                                   "      shell: echo boom >&2; exit 7\n"
                                   "      when: inventory_hostname == 'h2'\n";
    struct exec_spec s = spec_of(EXEC_PLAYBOOK, 3);
    struct outcome o = {0}, f = {0};
    s.inventory_vars = local_vars;
    s.playbook = ok_play;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    fprintf(stderr, "   playbook ok: %llu ms\n", (unsigned long long)o.ms);
    CHECK_EQ_INT(o.unit_status, EXEC_OK);
    REQUIRE(o.n == 3);
    for (unsigned i = 0; i < 3; i++) {
        char want[128];
        snprintf(want, sizeof want, "TASK [say hi]: hi h%u\nTASK [say bye]: bye h%u\n", i + 1,
                 i + 1);
        CHECK_EQ_INT(o.status[i], EXEC_OK);
        CHECK(tail_is(&o, i, want));
    }

    s.playbook = bad_play;
    CHECK_OK(run(&s, &f));
    CHECK_CONTRACT(f);
    fprintf(stderr, "   playbook failing: %llu ms\n", (unsigned long long)f.ms);
    CHECK_EQ_INT(f.unit_status, EXEC_FAILED);
    REQUIRE(f.n == 3);
    CHECK_EQ_INT(f.status[0], EXEC_OK);
    CHECK_EQ_INT(f.status[1], EXEC_FAILED);
    CHECK_EQ_INT(f.status[2], EXEC_OK);
    CHECK_EQ_INT(f.rc[1], 7);
    CHECK(tail_is(&f, 1, "TASK [fail on h2] FAILED: boom\nnon-zero return code"));
    CHECK(tail_is(&f, 0, "TASK [say hi]: hi h1\n"));
    outcome_free(&o);
    outcome_free(&f);
}

/* Output that is not the JSON object: every host EXEC_ERROR with the raw tail. */
TEST(exec_playbook_unparsable)
{
    struct exec_spec s = spec_of(EXEC_PLAYBOOK, 2);
    struct outcome o = {0};
    s.inventory_vars = local_vars;
    s.playbook = "- hosts: all\n  tasks: [\n";
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_ERROR);
    REQUIRE(o.n == 2);
    CHECK_EQ_INT(o.status[0], EXEC_ERROR);
    CHECK_EQ_INT(o.rc[0], o.exit_code);
    CHECK(o.exit_code != 0);
    CHECK(tail_has(&o, 0, "ERROR!"));
    CHECK(tail_has(&o, 1, "Syntax Error"));
    outcome_free(&o);
}

/* A host that Ansible never mentions is EXEC_ERROR; the others have results. */
TEST(exec_ansible_missing_host)
{
    static const char *const hosts[] = {"h1", "h2", NULL};
    static const char *const vars[] = {"ansible_connection=local",
                                       "ansible_python_interpreter=/usr/bin/python3", NULL};
    static const char play[] = "- hosts: h1\n"
                               "  gather_facts: false\n"
                               "  tasks:\n"
                               "    - ping:\n";
    struct exec_spec s = spec_of(EXEC_PLAYBOOK, 2);
    struct outcome o = {0};
    s.hosts = hosts;
    s.inventory_vars = vars;
    s.playbook = play;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_ERROR);
    REQUIRE(o.n == 2);
    CHECK_EQ_INT(o.status[0], EXEC_OK);
    CHECK_EQ_INT(o.status[1], EXEC_ERROR);
    CHECK(tail_has(&o, 1, "no result for this host"));
    outcome_free(&o);
}

/* ssh to a closed port: unreachable, for a module and for a playbook. */
TEST(exec_ansible_unreachable)
{
    static const char *const vars[] = {"ansible_connection=ssh", "ansible_host=127.0.0.1",
                                       "ansible_port=1", NULL};
    struct exec_spec s = spec_of(EXEC_ANSIBLE_MODULE, 2);
    struct outcome o = {0}, p = {0};
    s.module = "ping";
    s.inventory_vars = vars;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    CHECK_EQ_INT(o.unit_status, EXEC_UNREACHABLE);
    REQUIRE(o.n == 2);
    for (unsigned i = 0; i < 2; i++) {
        CHECK_EQ_INT(o.status[i], EXEC_UNREACHABLE);
        CHECK_EQ_INT(o.rc[i], -1);
        CHECK(tail_has(&o, i, "Connection refused"));
    }
    s.kind = EXEC_PLAYBOOK;
    s.playbook = "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: knock\n      ping:\n";
    CHECK_OK(run(&s, &p));
    CHECK_CONTRACT(p);
    CHECK_EQ_INT(p.unit_status, EXEC_UNREACHABLE);
    REQUIRE(p.n == 2);
    CHECK_EQ_INT(p.status[1], EXEC_UNREACHABLE);
    CHECK(tail_has(&p, 1, "TASK [knock] UNREACHABLE: Failed to connect"));
    outcome_free(&o);
    outcome_free(&p);
}

/* A timeout kills Ansible's whole tree: its workers and the modules they run. */
TEST(exec_ansible_timeout)
{
    struct exec_spec s = spec_of(EXEC_ANSIBLE_MODULE, 3);
    struct outcome o = {0};
    char args[128];
    snprintf(args, sizeof args, "sh -c 'sleep 60; : %s'", marker);
    s.module = "command";
    s.module_args = args;
    s.inventory_vars = local_vars;
    s.timeout_ms = 2000;
    s.kill_grace_ms = 3000;
    CHECK_OK(run(&s, &o));
    CHECK_CONTRACT(o);
    fprintf(stderr, "   ansible timeout: %llu ms\n", (unsigned long long)o.ms);
    CHECK_EQ_INT(o.unit_status, EXEC_TIMEOUT);
    REQUIRE(o.n == 3);
    CHECK_EQ_INT(o.status[0], EXEC_TIMEOUT);
    CHECK_EQ_INT(o.status[2], EXEC_TIMEOUT);
    CHECK_EQ_INT(o.marker_at_done, 0);
    CHECK(o.ms >= 1990 && o.ms < 6000);
    outcome_free(&o);
}

int main(void)
{
    uint64_t t0;
    signal(SIGPIPE, SIG_IGN);
    if (check_tmpdir(tmpdir, sizeof tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    strncat(tmpdir, "/work/unit", sizeof tmpdir - strlen(tmpdir) - 1); /* created by exec */
    snprintf(marker, sizeof marker, "flotilla-test-marker-%d", (int)getpid());
    for (int fd = 3; fd < 1024; fd++) {
        int fl = fcntl(fd, F_GETFD);
        inherited_fd[fd] = fl >= 0 && !(fl & FD_CLOEXEC);
    }
    RUN(exec_true_false_exit3);
    RUN(exec_argv_without_shell);
    RUN(exec_not_found);
    RUN(exec_bad_specs);
    RUN(exec_deploy_and_refuse);
    RUN(exec_shell_pipes_and_env);
    RUN(exec_output_larger_than_tail);
    RUN(exec_no_fd_leak);
    RUN(exec_timeout_kills);
    RUN(exec_timeout_kills_background_children);
    RUN(exec_leftovers_after_exit_are_killed);
    RUN(exec_cancel_mid_run);
    RUN(exec_term_ignored_then_killed);
    RUN(exec_noop);
    RUN(exec_sleep);
    RUN(exec_sleep_cancel);
    RUN(exec_alloc_faults);
    t0 = now_ms();
    RUN(exec_ansible_ping);
    RUN(exec_ansible_command);
    RUN(exec_playbook);
    RUN(exec_playbook_unparsable);
    RUN(exec_ansible_missing_host);
    RUN(exec_ansible_unreachable);
    RUN(exec_ansible_timeout);
    fprintf(stderr, "ansible tests: %llu ms\n", (unsigned long long)(now_ms() - t0));
    {
        char top[256];
        snprintf(top, sizeof top, "%s", tmpdir);
        *strstr(top, "/work/unit") = '\0';
        check_rmrf(top);
    }
    return check_summary();
}
