/* The HTTP body -> task, job and lock spec fuzz driver, shared by
 * fuzz_spec.c and the corpus replay in tests/unit/test_fuzz_corpus.c.
 *
 * Input: byte 0's two low bits pick the route: 0 a job's task template
 * ("hosts" optional), 1 POST /v1/tasks ("hosts" required), 2 PUT /v1/jobs,
 * 3 a lock acquire, whose input is "namespace/name\n" then the body. The
 * rest is the request body. It goes through the API's own code: the same
 * JSON parsing (objects only, no duplicate keys, only the fields the route
 * accepts) and the builders the handlers use (node__task_build,
 * node__job_build, node__acquire_parse), which validate every field and
 * build the Raft command. Invariants for an accepted body: the command
 * passes the state machine's own validation (fsm_cmd_validate: the API never
 * proposes what the FSM would refuse) and survives the log entry encoding
 * and decoding unchanged; a task's spec decodes; a job's definition decodes
 * to the same schedule and its template gives, for any run id, a task the
 * state machine accepts. */
#ifndef FL_FUZZ_SPEC_DRIVER_H
#define FL_FUZZ_SPEC_DRIVER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "common/alloc.h"
#include "common/err.h"
#include "node/node_int.h"
#include "spec/spec.h"
#include "fsm/cmd.h"

static const unsigned char spec_key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                           7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

static int spec_known_field(const char *const *fields, const char *k)
{
    for (const char *const *f = fields; *f != NULL; f++) {
        if (strcmp(*f, k) == 0) {
            return 1;
        }
    }
    return 0;
}

static void spec_fail(const char *what, const char *detail)
{
    fprintf(stderr, "spec driver: %s: %s\n", what, detail ? detail : "");
    abort();
}

/* Encode c alone in an entry and decode it back into *back (valid until
 * fsm_entry_close(e) and fl_free(*entry)). */
static void spec_round_trip(const struct fsm_cmd *c, struct fsm_entry *e, void **entry,
                            struct fsm_cmd *back)
{
    struct fsm_entry_writer w;
    size_t len = 0;
    fsm_writer_init(&w);
    if (fsm_writer_add(&w, c) != FL_OK ||
        fsm_writer_finish(&w, 1, 1, 1, 0, fl_malloc, entry, &len) != FL_OK) {
        spec_fail("the command does not encode", NULL);
    }
    fsm_writer_close(&w);
    if (fsm_entry_open(e, *entry, len) != FL_OK || e->n_cmds != 1 ||
        fsm_entry_cmd(e, 0, back) != FL_OK || back->type != c->type) {
        spec_fail("the command does not survive the log entry round trip", NULL);
    }
}

static int spec_same(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void spec_check_job(const struct node_job_build *jb)
{
    char err[FL_ERRMSG_SIZE] = "";
    struct store_job j;
    struct fsm_entry e;
    struct fsm_cmd back, t;
    void *mem;
    void *entry = NULL;
    static const char *const run_ids[] = {"nightly-1", "x-18446744073709551615"};
    if (fsm_cmd_validate(&jb->cmd, err) != FL_OK) {
        spec_fail("the API built a JOB_PUT the state machine refuses", err);
    }
    spec_round_trip(&jb->cmd, &e, &entry, &back);
    if (!spec_same(back.u.job.name, back.u.job.nlen, jb->cmd.u.job.name, jb->cmd.u.job.nlen) ||
        !spec_same(back.u.job.def, back.u.job.def_len, jb->cmd.u.job.def, jb->cmd.u.job.def_len) ||
        back.u.job.manual != jb->cmd.u.job.manual) {
        spec_fail("the JOB_PUT changed in the log entry round trip", NULL);
    }
    fsm_entry_close(&e);
    fl_free(entry);
    if (store_job_decode(jb->cmd.u.job.def, jb->cmd.u.job.def_len, &j) != FL_OK ||
        strcmp(j.name, jb->j.name) != 0 || j.sched != jb->j.sched ||
        strcmp(j.expr, jb->j.expr) != 0 || strcmp(j.tz, jb->j.tz) != 0 ||
        j.every_ms != jb->j.every_ms || j.overlap != jb->j.overlap || j.mode != jb->j.mode ||
        j.misfire != jb->j.misfire || j.paused != jb->j.paused ||
        !spec_same(j.tmpl, j.tmpl_len, jb->j.tmpl, jb->j.tmpl_len)) {
        spec_fail("the job definition does not decode to what was built", NULL);
    }
    /* What the state machine does at a fire (fsm/job.c submit_task). */
    for (unsigned i = 0; i < 2; i++) {
        if (fsm_cmd_decode_one(j.tmpl, j.tmpl_len, &mem, &t) != FL_OK ||
            t.type != FSM_CMD_TASK_SUBMIT) {
            spec_fail("the job's template does not decode to a task", NULL);
        }
        t.u.task.id = run_ids[i];
        t.u.task.idlen = strlen(run_ids[i]);
        t.u.task.name = j.name;
        t.u.task.namelen = strlen(j.name);
        t.u.task.idem = "";
        t.u.task.idemlen = 0;
        if (fsm_cmd_validate(&t, err) != FL_OK) {
            spec_fail("a run of the job is a task the state machine refuses", err);
        }
        fl_free(mem);
    }
}

static int spec_fuzz_job(json_t *body)
{
    struct node_job_build jb;
    int ok = node__job_build(NULL, body, spec_key, &jb);
    if (ok) {
        spec_check_job(&jb);
    }
    node__job_build_close(&jb);
    return ok;
}

static int spec_fuzz_lock(const char *path, json_t *body)
{
    struct node_acquire a;
    struct fsm_cmd c, back;
    struct fsm_entry e;
    void *entry = NULL;
    char err[FL_ERRMSG_SIZE] = "";
    if (!node__acquire_parse(NULL, path, body, &a)) {
        return 0;
    }
    node__acquire_cmd(&a, &c);
    if (fsm_cmd_validate(&c, err) != FL_OK) {
        spec_fail("the API built a LOCK_ACQUIRE the state machine refuses", err);
    }
    if (a.limit < 1 || a.limit > STORE_LOCK_HOLDERS_MAX || strcmp(a.key, path) != 0) {
        spec_fail("an acquire outside the documented limits was accepted", a.key);
    }
    spec_round_trip(&c, &e, &entry, &back);
    if (!spec_same(back.u.lock.key, back.u.lock.klen, a.key, strlen(a.key)) ||
        !spec_same(back.u.lock.session, back.u.lock.slen, a.session, strlen(a.session)) ||
        back.u.lock.limit != a.limit || back.u.lock.wait != c.u.lock.wait) {
        spec_fail("the LOCK_ACQUIRE changed in the log entry round trip", NULL);
    }
    fsm_entry_close(&e);
    fl_free(entry);
    return 1;
}

/* Returns 1 if the body was accepted. */
static int spec_fuzz_one(const uint8_t *data, size_t size)
{
    struct node_task_build b;
    json_error_t jerr;
    json_t *body;
    const char *k;
    json_t *v;
    const char *const *fields = node__task_fields;
    const uint8_t *p = data + 1;
    char path[STORE_LOCK_KEY_MAX + 1];
    int ok, mode;
    if (size < 1 || sodium_init() < 0) {
        return 0;
    }
    mode = data[0] & 3;
    if (mode == 2) {
        fields = node__job_fields();
    } else if (mode == 3) {
        const uint8_t *nl = memchr(p, '\n', size - 1);
        if (nl == NULL || (size_t)(nl - p) >= sizeof path || memchr(p, 0, (size_t)(nl - p))) {
            return 0;
        }
        memcpy(path, p, (size_t)(nl - p));
        path[nl - p] = '\0';
        fields = node__acquire_fields;
        p = nl + 1;
    }
    body = json_loadb((const char *)p, size - (size_t)(p - data), JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        return 0;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    json_object_foreach(body, k, v)
    {
        if (!spec_known_field(fields, k)) {
            json_decref(body);
            return 0;
        }
    }
    if (mode == 2 || mode == 3) {
        ok = mode == 2 ? spec_fuzz_job(body) : spec_fuzz_lock(path, body);
        json_decref(body);
        return ok;
    }
    ok = node__task_build(NULL, body, data[0] & 1, spec_key, &b);
    if (ok) {
        char err[FL_ERRMSG_SIZE] = "";
        struct node_spec spec;
        struct fsm_entry_writer w;
        struct fsm_entry e;
        struct fsm_cmd back;
        void *entry = NULL;
        size_t len = 0;
        /* Without hosts it is a job's template: the job command carries
         * it, and TASK_SUBMIT is only built with the hosts of a run. */
        if (b.cmd.u.task.n_hosts > 0 && fsm_cmd_validate(&b.cmd, err) != FL_OK) {
            spec_fail("the API built a command the state machine refuses", err);
        }
        if (node_spec_decode(b.cmd.u.task.spec, b.cmd.u.task.spec_len, &spec) != FL_OK) {
            spec_fail("the built spec does not decode", NULL);
        }
        node_spec_close(&spec);
        if (b.cmd.u.task.n_hosts == 0) {
            node__task_build_close(&b);
            json_decref(body);
            return ok;
        }
        fsm_writer_init(&w);
        if (fsm_writer_add(&w, &b.cmd) != FL_OK ||
            fsm_writer_finish(&w, 1, 1, 1, 0, fl_malloc, &entry, &len) != FL_OK) {
            spec_fail("the command does not encode", NULL);
        }
        if (fsm_entry_open(&e, entry, len) != FL_OK || e.n_cmds != 1 ||
            fsm_entry_cmd(&e, 0, &back) != FL_OK || back.type != FSM_CMD_TASK_SUBMIT ||
            back.u.task.idlen != b.cmd.u.task.idlen ||
            memcmp(back.u.task.id, b.cmd.u.task.id, back.u.task.idlen) != 0 ||
            back.u.task.n_hosts != b.cmd.u.task.n_hosts ||
            back.u.task.spec_len != b.cmd.u.task.spec_len ||
            memcmp(back.u.task.spec, b.cmd.u.task.spec, back.u.task.spec_len) != 0 ||
            back.u.task.unit_size != b.cmd.u.task.unit_size ||
            back.u.task.max_running != b.cmd.u.task.max_running ||
            back.u.task.fail_stop != b.cmd.u.task.fail_stop ||
            back.u.task.placement != b.cmd.u.task.placement) {
            spec_fail("the command does not survive the log entry round trip", NULL);
        }
        fsm_entry_close(&e);
        fsm_writer_close(&w);
        fl_free(entry);
    }
    node__task_build_close(&b);
    json_decref(body);
    return ok;
}

#endif
