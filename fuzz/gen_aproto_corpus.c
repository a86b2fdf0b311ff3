/* Writes the agent protocol seed corpus from the real encoder:
 *   gen_aproto_corpus OUTDIR   (writes the seeds into OUTDIR/aproto/)
 * Each seed is a stream of one or more complete frames. Built with -DFUZZ=ON
 * as the fuzz_gen_aproto_corpus target; it links only flaproto and flcommon,
 * like the module it feeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentproto/aproto.h"

static char dir[4096];

static void append(struct fl_buf *b, const struct aproto_msg *m)
{
    char err[FL_ERRMSG_SIZE];
    if (aproto_encode_ex(m, APROTO_FRAME_LIMIT, b, err) != FL_OK) {
        fprintf(stderr, "encode %s: %s\n", aproto_type_name(m->type), err);
        exit(1);
    }
}

static void write_seed(const char *name, const struct fl_buf *b)
{
    char path[8192];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void one(const char *name, const struct aproto_msg *m)
{
    struct fl_buf b;
    fl_buf_init(&b);
    append(&b, m);
    write_seed(name, &b);
    fl_buf_close(&b);
}

static struct aproto_unit_ref ref(const char *task, uint32_t unit, uint32_t attempt, uint64_t token)
{
    struct aproto_unit_ref r;
    if (aproto_unit_ref_set(&r, task, unit, attempt, token) != FL_OK) {
        exit(1);
    }
    return r;
}

int main(int argc, char **argv)
{
    static const char *const labels[] = {"role=web", "dc=east", "os=debian-12"};
    static const char *const hosts[] = {"web-1.example.com", "web-2.example.com", "10.0.0.3"};
    static const char *const exec_argv[] = {"/usr/bin/env", "uptime", ""};
    static const char *const env[] = {"LANG=C.UTF-8", "FLOTILLA_TASK=t-1"};
    static const char *const vars[] = {"ansible_user=deploy", "ansible_port=22"};
    static const uint8_t tail[] = "load average: 0.01\n";
    struct aproto_unit_ref running[3];
    struct aproto_host_result results[3];
    struct aproto_msg m, all[16];
    struct fl_buf stream;
    unsigned n = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: gen_aproto_corpus OUTDIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/aproto", argv[1]);
    running[0] = ref("t-20260101-0001", 0, 1, 17);
    running[1] = ref("t-20260101-0001", 1, 2, 18);
    running[2] = ref("t-20260101-0002", 4294967295u, 4294967295u, 18446744073709551615ull);
    results[0] =
        (struct aproto_host_result){"web-1.example.com", APROTO_ST_OK, 0, tail, sizeof tail - 1};
    results[1] = (struct aproto_host_result){"web-2.example.com", APROTO_ST_FAILED, -1, NULL, 0};
    results[2] = (struct aproto_host_result){"10.0.0.3", APROTO_ST_UNREACHABLE, 4, NULL, 0};

    aproto_msg_init(&m, APROTO_HELLO);
    m.u.hello =
        (struct aproto_hello){"agent-7", "flotilla 0.1.0", 4, 3, labels, 3, running, NULL, 0, 0};
    all[n++] = m;
    one("hello", &m);
    aproto_msg_init(&m, APROTO_WELCOME);
    m.u.welcome = (struct aproto_welcome){true, "", 1000, 10000, "welcome, agent-7"};
    all[n++] = m;
    one("welcome", &m);
    m.u.welcome = (struct aproto_welcome){false, "10.0.0.1:8601", 0, 0, "not the leader"};
    one("welcome-redirect", &m);
    aproto_msg_init(&m, APROTO_HEARTBEAT);
    m.u.heartbeat = (struct aproto_heartbeat){77, 2};
    all[n++] = m;
    one("heartbeat", &m);

    aproto_msg_init(&m, APROTO_RUN);
    m.u.run.ref = running[0];
    m.u.run.n_hosts = 3;
    m.u.run.hosts = hosts;
    m.u.run.kind = APROTO_EXEC_EXEC;
    m.u.run.argc = 3;
    m.u.run.argv = exec_argv;
    m.u.run.timeout_ms = 60000;
    m.u.run.kill_grace_ms = 5000;
    m.u.run.n_env = 2;
    m.u.run.env = env;
    m.u.run.n_vars = 2;
    m.u.run.inventory_vars = vars;
    all[n++] = m;
    one("run-exec", &m);
    m.u.run.kind = APROTO_EXEC_SHELL;
    m.u.run.argc = 0;
    m.u.run.script = "set -e\nuptime\n";
    one("run-shell", &m);
    m.u.run.kind = APROTO_EXEC_MODULE;
    m.u.run.script = NULL;
    m.u.run.module = "ansible.builtin.command";
    m.u.run.module_args = "cmd=uptime";
    one("run-module", &m);
    m.u.run.kind = APROTO_EXEC_PLAYBOOK;
    m.u.run.module = m.u.run.module_args = NULL;
    m.u.run.playbook = "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n";
    one("run-playbook", &m);
    m.u.run.kind = APROTO_EXEC_SLEEP;
    m.u.run.playbook = NULL;
    m.u.run.sleep_ms = 250;
    one("run-sleep", &m);
    m.u.run.kind = APROTO_EXEC_NOOP;
    m.u.run.n_env = m.u.run.n_vars = 0;
    one("run-noop", &m);

    aproto_msg_init(&m, APROTO_STARTED);
    m.u.started = (struct aproto_started){running[0], 4242};
    all[n++] = m;
    one("started", &m);
    aproto_msg_init(&m, APROTO_LOG);
    m.u.log = (struct aproto_log){running[0],
                                  "web-1.example.com",
                                  APROTO_STDERR,
                                  1024,
                                  (const uint8_t *)"warning: \x00\xff binary\n",
                                  20};
    all[n++] = m;
    one("log", &m);
    aproto_msg_init(&m, APROTO_DONE);
    m.u.done = (struct aproto_done){
        running[0], APROTO_ST_FAILED, 4, 1767225600000ull, 1767225601250ull, 3, results};
    all[n++] = m;
    one("done", &m);
    aproto_msg_init(&m, APROTO_CANCEL);
    m.u.cancel.ref = running[1];
    all[n++] = m;
    one("cancel", &m);
    aproto_msg_init(&m, APROTO_ACK);
    m.u.ack = (struct aproto_ack){running[0], APROTO_ACK_DONE};
    all[n++] = m;
    one("ack", &m);
    aproto_msg_init(&m, APROTO_ERROR);
    m.u.error = (struct aproto_error){"duplicate_agent", "agent-7 is already connected"};
    all[n++] = m;
    one("error", &m);

    /* A whole conversation in one stream. */
    fl_buf_init(&stream);
    for (unsigned i = 0; i < n; i++) {
        append(&stream, &all[i]);
    }
    write_seed("stream", &stream);
    fl_buf_close(&stream);
    return 0;
}
