/* node/spec — a task's executor spec: what each of its units runs.
 *
 * Stored opaque in the task record (store/), encoded here as a versioned
 * msgpack array:
 *   [1, kind, argv[], script, module, module_args, playbook, sleep_ms,
 *    inventory_vars[], kill_grace_ms]
 * Kinds use the agent protocol's numbers. */
#ifndef FL_NODE_SPEC_H
#define FL_NODE_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

enum node_exec_kind {
    NODE_EXEC = 1,
    NODE_SHELL = 2,
    NODE_ANSIBLE_MODULE = 3,
    NODE_PLAYBOOK = 4,
    NODE_NOOP = 5,
    NODE_SLEEP = 6,
};

#define NODE_SPEC_ARGV_MAX 256
#define NODE_SPEC_VARS_MAX 32

struct node_spec {
    int kind;
    unsigned argc;
    const char *argv[NODE_SPEC_ARGV_MAX + 1]; /* NULL-terminated */
    const char *script;
    const char *module;
    const char *module_args;
    const char *playbook;
    uint32_t sleep_ms;
    uint32_t kill_grace_ms;
    unsigned n_vars;
    const char *vars[NODE_SPEC_VARS_MAX + 1]; /* NULL-terminated */
    char *arena_;                             /* decode: owns the strings */
};

const char *node_exec_kind_name(int kind);
/* Encode; the strings are the caller's. */
int node_spec_encode(const struct node_spec *s, struct fl_buf *out);
/* Decode into NUL-terminated strings owned by `out` (node_spec_close). */
int node_spec_decode(const uint8_t *p, size_t n, struct node_spec *out);
void node_spec_close(struct node_spec *s);

#endif
