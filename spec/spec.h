/* spec/spec — a task's executor spec: what each of its units runs.
 *
 * Stored opaque in the task record (store/), encoded here as a versioned
 * msgpack array:
 *   [2, kind, argv[], script, module, module_args, playbook, sleep_ms,
 *    inventory_vars[], kill_grace_ms, env[], secret_env[]]
 * (version 1 is the same without the last two). Kinds use the agent
 * protocol's numbers; a deploy's argv is deploy-target's arguments,
 * "NAME@VERSION" first (docs/DEPLOY.md, "The deploy executor"). env entries
 * are "NAME=value"; secret_env entries are "NAME=" + a sealed value
 * (node_secret_seal): the value encrypted under a key derived from the
 * cluster key, so the replicated state, the Raft log and snapshots never hold
 * it in clear (docs/ACL.md, "Secrets"). */
#ifndef FL_SPEC_SPEC_H
#define FL_SPEC_SPEC_H

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
    NODE_DEPLOY = 7,
};

#define NODE_SPEC_ARGV_MAX      256
#define NODE_SPEC_VARS_MAX      32
#define NODE_SPEC_ENV_MAX       32 /* env and secret_env entries, each */
#define NODE_SPEC_ENV_NAME_MAX  64
#define NODE_SPEC_ENV_VALUE_MAX 4096
#define NODE_SECRET_KEY_BYTES   32

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
    unsigned n_env;
    const char *env[NODE_SPEC_ENV_MAX + 1]; /* "NAME=value", NULL-terminated */
    unsigned n_secret;
    const char *secret[NODE_SPEC_ENV_MAX + 1]; /* "NAME=sealed", NULL-terminated */
    char *arena_;                              /* decode: owns the strings */
};

const char *node_exec_kind_name(int kind);
/* Its schema/ table (tests and fuzz drivers check it). */
struct schema;
extern const struct schema node_spec_schema;
/* Encode; the strings are the caller's. */
int node_spec_encode(const struct node_spec *s, struct fl_buf *out);
/* Decode into NUL-terminated strings owned by `out` (node_spec_close). */
int node_spec_decode(const uint8_t *p, size_t n, struct node_spec *out);
void node_spec_close(struct node_spec *s);

/* A valid environment name: 1-64 of [A-Za-z0-9_], not starting with a digit,
 * and not in the FLOTILLA_ namespace the agent sets. */
int node_env_name_valid(const char *name, size_t len);

/* The key secrets are sealed with, derived from the cluster key. */
void node_secret_key(const unsigned char cluster_key[32], unsigned char out[NODE_SECRET_KEY_BYTES]);
/* Seal value for NAME: out gets "NAME=" + base64url(nonce || XChaCha20-Poly1305
 * ciphertext), with NAME as associated data (a sealed value cannot be moved
 * to another name). Returns FL_OK or FL_ETOOBIG if out is too small. */
int node_secret_seal(const unsigned char key[NODE_SECRET_KEY_BYTES], const char *name,
                     const char *value, size_t vlen, char *out, size_t size);
/* Open a "NAME=sealed" entry into "NAME=value" in out. FL_EDECODE if it was
 * not sealed under this key for this name (tampered, or another cluster's). */
int node_secret_open(const unsigned char key[NODE_SECRET_KEY_BYTES], const char *entry, char *out,
                     size_t size);

#endif
