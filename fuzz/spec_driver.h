/* The HTTP body -> task spec fuzz driver, shared by fuzz_spec.c and the
 * corpus replay in tests/unit/test_fuzz_corpus.c.
 *
 * Input: byte 0's low bit says whether "hosts" is required (POST /v1/tasks)
 * or optional (a job's task template); the rest is the request body. It goes
 * through the API's own code: the same JSON parsing (objects only, no
 * duplicate keys, only the fields the route accepts) and node__task_build,
 * which validates every field, seals secret_env and builds the Raft command.
 * Invariants for an accepted body with hosts: the command passes the state machine's
 * own validation (rg_cmd_validate: the API never proposes what the FSM would
 * refuse), its spec decodes, and it survives the log entry encoding and
 * decoding with the same task id, hosts and spec. */
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
#include "node/spec.h"
#include "raft/rg_cmd.h"

static int spec_known_field(const char *k)
{
    for (const char *const *f = node__task_fields; *f != NULL; f++) {
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

/* Returns 1 if the body was accepted. */
static int spec_fuzz_one(const uint8_t *data, size_t size)
{
    static const unsigned char key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                          7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
    struct node_task_build b;
    json_error_t jerr;
    json_t *body;
    const char *k;
    json_t *v;
    int ok;
    if (size < 1 || sodium_init() < 0) {
        return 0;
    }
    body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        return 0;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    json_object_foreach(body, k, v)
    {
        if (!spec_known_field(k)) {
            json_decref(body);
            return 0;
        }
    }
    ok = node__task_build(NULL, body, data[0] & 1, key, &b);
    if (ok) {
        char err[FL_ERRMSG_SIZE] = "";
        struct node_spec spec;
        struct rg_entry_writer w;
        struct rg_entry e;
        struct rg_cmd back;
        void *entry = NULL;
        size_t len = 0;
        /* Without hosts it is a job's template: the job command carries
         * it, and TASK_SUBMIT is only built with the hosts of a run. */
        if (b.cmd.u.task.n_hosts > 0 && rg_cmd_validate(&b.cmd, err) != FL_OK) {
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
        rg_writer_init(&w);
        if (rg_writer_add(&w, &b.cmd) != FL_OK ||
            rg_writer_finish(&w, 1, 1, 1, 0, fl_malloc, &entry, &len) != FL_OK) {
            spec_fail("the command does not encode", NULL);
        }
        if (rg_entry_open(&e, entry, len) != FL_OK || e.n_cmds != 1 ||
            rg_entry_cmd(&e, 0, &back) != FL_OK || back.type != RG_CMD_TASK_SUBMIT ||
            back.u.task.idlen != b.cmd.u.task.idlen ||
            memcmp(back.u.task.id, b.cmd.u.task.id, back.u.task.idlen) != 0 ||
            back.u.task.n_hosts != b.cmd.u.task.n_hosts ||
            back.u.task.spec_len != b.cmd.u.task.spec_len ||
            memcmp(back.u.task.spec, b.cmd.u.task.spec, back.u.task.spec_len) != 0) {
            spec_fail("the command does not survive the log entry round trip", NULL);
        }
        rg_entry_close(&e);
        rg_writer_close(&w);
        fl_free(entry);
    }
    node__task_build_close(&b);
    json_decref(body);
    return ok;
}

#endif
