/* cmd/ — the one `flotilla` binary: shared helpers of the subcommands. */
#ifndef FL_CMD_CLI_H
#define FL_CMD_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tls/creds.h"

struct cli_opt {
    const char *name; /* long name without "--" */
    int has_arg;      /* 1: takes a value; 2: repeatable, values joined by '\n' */
    const char *help;
    const char *value; /* parsed value (or default), NULL if absent */
    int set;           /* given on the command line */
};

/* The options most commands share. */
#define ADDR_OPT                                                                                   \
    {                                                                                              \
        "addr", 1, "API address host:port (or $FLOTILLA_ADDR)", NULL, 0                            \
    }
#define JSON_OPT                                                                                   \
    {                                                                                              \
        "json", 0, "print the API's JSON", NULL, 0                                                 \
    }

struct cli_cmd {
    const char *path; /* "kv put" */
    const char *args; /* positional synopsis, "KEY VALUE" */
    const char *summary;
    struct cli_opt *opts; /* terminated by {NULL} */
    int min_pos, max_pos;
};

/* Parse argv (after the command words). Prints usage and exits 0 on --help,
 * prints an error and exits 2 on a bad flag or a wrong number of arguments. */
void cli_parse(struct cli_cmd *c, int argc, char **argv, char **pos, int *npos);
void cli_usage(const struct cli_cmd *c, int to_stderr);
struct cli_opt *cli_opt(struct cli_cmd *c, const char *name);
const char *cli_val(struct cli_cmd *c, const char *name); /* NULL if absent */
int cli_flag(struct cli_cmd *c, const char *name);
/* Exit 2 with "flotilla CMD: msg". */
void cli_die_usage(const struct cli_cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* The API is HTTPS: its CA from $FLOTILLA_CACERT (and a client certificate
 * from $FLOTILLA_CERT and $FLOTILLA_CERT_KEY if both are set), or `creds`
 * when the command has its own (--ca/--cert/--cert-key). Exits 2 with a hint
 * without a CA. cli_addr calls it. */
void cli_api_tls(const char *cmd, struct tls_creds *creds);
/* The API address: --addr, else $FLOTILLA_ADDR, else 127.0.0.1:8401. */
const char *cli_addr(struct cli_cmd *c);

/* Call the API (cmd/cli_request.c). A write carries this process's request
 * identity when it has one (docs/API.md "Request identity"). Retries for up
 * to ~15 s while the cluster has no leader (503 no_leader / not_leader /
 * busy); a write with an identity is also sent again, with the same
 * identity, after outcome_unknown or a transport failure, so its answer is
 * definite unless the cluster stays unreachable (then 503 outcome_unknown).
 * Returns the HTTP status and the parsed body (or NULL if not JSON); a
 * transport failure of a read or of a write without an identity prints the
 * error and exits 1. */
/* The API token from $FLOTILLA_TOKEN or $FLOTILLA_TOKEN_FILE, or NULL. */
const char *cli_token(const char *cmd);
/* Request headers: Content-Type (json) and X-Flotilla-Token (if any). */
void cli_headers(const char *cmd, int json, char *out, size_t size);
int cli_call(struct cli_cmd *c, const char *method, const char *path, json_t *body, json_t **out);
/* cli_call for the writes that take no request identity (membership,
 * cancel-running, package uploads: docs/API.md "Request identity"): sent
 * once, an unknown outcome reported as such. */
int cli_call_plain(struct cli_cmd *c, const char *method, const char *path, json_t *body,
                   json_t **out);
/* The "X-Flotilla-Request: SESSION/SERIAL\r\n" header line. */
void cli_ident_header(const char *session, uint64_t serial, char *out, size_t size);
/* Print an API error body ("error: message (code)") to stderr and release
 * it (json_decref; NULL is fine); returns 1. */
int cli_print_error(const char *cmd, int status, json_t *body);
/* Print JSON pretty to stdout. */
void cli_print_json(json_t *j);
/* Percent-encode a path segment (keys may contain '/', which is kept). */
char *cli_escape(const char *s, int keep_slash);

/* Call method path (no body); on 200 print `done` (a line; NULL: the JSON
 * answer), else the error. Returns an exit status. */
int cli_do(struct cli_cmd *c, const char *method, const char *path, const char *done);

/* GET path for a command that shows what it gets: on an error it prints it,
 * with --json it prints the answer; either way it returns the exit status.
 * Otherwise it returns -1 and *out is the answer to render (json_decref it). */
int cli_get(struct cli_cmd *c, const char *path, json_t **out);

/* GET path and print the body as it is (text); returns an exit status. */
int cli_raw(struct cli_cmd *c, const char *path, json_t **unused);
/* "500ms", "30s", "10m", "2h" or seconds -> ms; -1 if malformed. */
long long cli_duration_ms(const char *s);

/* The body of POST /v1/tasks from the task flags (TASK_FLAGS) of c; exits 2
 * on a bad flag. need_hosts: --hosts is required. */
json_t *cli_task_body(struct cli_cmd *c, int need_hosts);
/* The test-only executors' flags: a command's option table lists them only
 * in a test build (docs/ARCHITECTURE.md, "Test hooks"). */
#define TEST_TASK_FLAGS                                                                            \
    {"noop", 0, "do nothing (test builds only)", NULL, 0},                                         \
    {                                                                                              \
        "sleep", 1, "sleep this long (test builds only)", NULL, 0                                  \
    }
#define TASK_FLAGS                                                                                 \
    {"hosts", 1, "host list: a,b,c or @FILE (one per line or comma-separated)", NULL, 0},          \
        {"unit-size", 1, "hosts per unit", "30", 0},                                               \
        {"timeout", 1, "per-unit timeout (500ms, 30s, 10m, 2h; 0 = none)", "0", 0},                \
        {"retries", 1, "re-runs of a failed or lost unit", "0", 0},                                \
        {"priority", 1, "higher runs first", "0", 0},                                              \
        {"constraint", 1, "node labels required: k=v, k!=v or k (comma-separated)", NULL, 0},      \
        {"run-on", 1, "host: each host is a node id and its unit runs on that node", NULL, 0},     \
        {"max-parallel", 1, "units of this task running at once (default: no limit)", NULL, 0},    \
        {"stop-after-failures", 1, "cancel the waiting units once N hosts have failed", NULL, 0},  \
        {"exec", 1, "run a command (argv, no shell): 'cmd arg ...'", NULL, 0},                     \
        {"shell", 1, "run a shell script", NULL, 0},                                               \
        {"ansible-module", 1, "run an Ansible module against the unit's hosts", NULL, 0},          \
        {"ansible-args", 1, "the module's arguments", NULL, 0},                                    \
        {"playbook", 1, "run an Ansible playbook FILE against the unit's hosts", NULL, 0},         \
        {"inventory-var", 1, "Ansible inventory variables k=v (comma-separated)", NULL, 0},        \
        {"kill-grace", 1, "between TERM and KILL at timeout or cancel", NULL, 0},                  \
        {"env", 2, "NAME=value in the units' environment (repeatable)", NULL, 0},                  \
    {                                                                                              \
        "secret-env", 2,                                                                           \
            "NAME=@FILE: a secret read from FILE, stored encrypted, never shown (repeatable)",     \
            NULL, 0                                                                                \
    }

/* TLS credentials of a process that links to the cluster (server, agent,
 * deploy-target, package fetch): the cluster CA, a certificate and its key
 * (docs/SECURITY.md, "Identities"). cmd/cli_tls.c. */
#define CLI_TLS_OPTS                                                                               \
    {"ca", 1, "the cluster CA certificate (default $FLOTILLA_CACERT)", NULL, 0},                   \
        {"cert", 1, "this process's certificate (default $FLOTILLA_CERT)", NULL, 0},               \
    {                                                                                              \
        "cert-key", 1, "the certificate's private key, mode 0600 (default $FLOTILLA_CERT_KEY)",    \
            NULL, 0                                                                                \
    }
struct cli_tls {
    char ca[4096], cert[4096], key[4096]; /* absolute paths */
    struct tls_creds *creds;
};
/* Load the files named by --ca/--cert/--cert-key or the environment; exits 2
 * saying what is missing or wrong (and how to make them). */
void cli_load_tls(struct cli_cmd *c, struct cli_tls *out);
/* flotilla dev: DIR/pki/ca.pem and the certificates of server-1..n, agent-1
 * and client, made if missing (cmd/dev_pki.c). Returns 0, or 1 after saying
 * why. */
int cli_dev_pki(const char *dir, unsigned n);

int cmd_server(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_results(int argc, char **argv);
int cmd_dispatch(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_members(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_kv(int argc, char **argv);
int cmd_acl(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_cron(int argc, char **argv);
int cmd_session(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_ca(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_delta(int argc, char **argv);
int cmd_package(int argc, char **argv);
int cmd_deploy(int argc, char **argv);
int cmd_deploy_target(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
/* The cluster key from --key FILE (a "key" option of c) or $FLOTILLA_KEY_FILE;
 * exits 2 with a message saying how to make one (cmd_keygen.c). */
void cli_load_key(struct cli_cmd *c, unsigned char key[32]);

/* A package version (NAME@VERSION) from the API with its chunk hashes, for a
 * fetch over the blob link; *chunks is fl_malloc'ed (fl_free it). Prints the error
 * and returns 1 on failure, 0 on success. */
struct blob_want;
int cli_package_want(struct cli_cmd *c, const char *ref, char *name, size_t ncap, char *ver,
                     size_t vcap, struct blob_want *w, uint8_t **chunks);

#endif
