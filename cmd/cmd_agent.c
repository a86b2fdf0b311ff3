/* flotilla agent */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/agent.h"
#include "cmd/cli.h"
#include "cmd/table.h"
#include "common/err.h"
#include "common/ident.h"
#include "common/key.h"

static unsigned split_into(const char *s, char out[][128], unsigned max, struct cli_cmd *c,
                           const char *flag)
{
    char buf[8192];
    char *save = NULL;
    unsigned n = 0;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max || strlen(tok) >= 128) {
            cli_die_usage(c, "--%s: at most %u items of under 128 bytes", flag, max);
        }
        snprintf(out[n++], 128, "%s", tok);
    }
    return n;
}

static int agents_list(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {"json", 0, "print the JSON answer", NULL, 0}, {NULL}};
    struct cli_cmd c = {
        "agent list", "", "Agent identities the cluster knows, approved and pending approval.",
        opts,         0,  0};
    static const struct cli_table_col cols[] = {
        {"AGENT", 0, 0}, {"STATE", 0, 0}, {"CONNECTED", 0, 0}, {"PUBLIC KEY", 0, 0}};
    struct cli_table *tab;
    char *pos[1];
    int npos, status;
    json_t *out = NULL, *a;
    size_t i;
    cli_parse(&c, argc, argv, pos, &npos);
    status = cli_call(&c, "GET", "/v1/agents", NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
        json_decref(out);
        return 0;
    }
    tab = cli_table_new(cols, 4);
    json_array_foreach(json_object_get(out, "agents"), i, a)
    {
        cli_table_row(tab);
        cli_table_cell(tab, "%s", json_string_value(json_object_get(a, "id")));
        cli_table_cell(tab, "%s", json_string_value(json_object_get(a, "state")));
        cli_table_cell(tab, "%s", json_is_true(json_object_get(a, "connected")) ? "yes" : "no");
        cli_table_cell(tab, "%s", json_string_value(json_object_get(a, "public_key")));
    }
    cli_table_print(tab, stdout, 0);
    json_decref(out);
    return 0;
}

static int agents_approve(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {"agent approve",
                        "NAME",
                        "Let an agent that waits for approval join (check its public key with "
                        "flotilla agent list first).",
                        opts,
                        1,
                        1};
    char *pos[1], path[512], done[400], *id;
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    id = cli_escape(pos[0], 0);
    snprintf(path, sizeof path, "/v1/agents/%s/approve", id);
    free(id);
    snprintf(done, sizeof done, "approved %.300s", pos[0]);
    return cli_do(&c, "POST", path, done);
}

/* agent revoke NAME / agent unrevoke NAME (docs/SECURITY.md, "Revocation"). */
static int agents_revoke(int argc, char **argv, int revoke)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {
        revoke ? "agent revoke" : "agent unrevoke",
        "NAME",
        revoke ? "Put an agent on the cluster's deny-list: every server refuses its certificate "
                 "at the next handshake, and its open link is closed within a second."
               : "Take an agent off the deny-list: it may link again.",
        opts,
        1,
        1};
    char *pos[1], path[512], done[400], *id;
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    id = cli_escape(pos[0], 0);
    snprintf(path, sizeof path, "/v1/agents/%s/revoke", id);
    free(id);
    snprintf(done, sizeof done, "%s %.300s", revoke ? "revoked" : "unrevoked", pos[0]);
    return cli_do(&c, revoke ? "POST" : "DELETE", path, done);
}

static int agents_forget(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {"agent forget",
                        "NAME",
                        "Forget the public key recorded for an agent id, so that the next agent "
                        "joining under that id records its own (a server or agent whose data was "
                        "wiped, or a rotated key). With --require-agent-approval it waits for "
                        "approval again.",
                        opts,
                        1,
                        1};
    char *pos[1], path[512], done[400], *id;
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    id = cli_escape(pos[0], 0);
    snprintf(path, sizeof path, "/v1/agents/%s", id);
    free(id);
    snprintf(done, sizeof done, "forgot the key of %.300s", pos[0]);
    return cli_do(&c, "DELETE", path, done);
}

/* The agent's identity: its public key, and (for checks with other tools)
 * a detached signature of a message, both base64. */
static int agent_id(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"data", 1, "the agent's data directory", "flotilla-agent", 0},
        {"sign", 1, "also print an ed25519 signature of this message", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"agent id",
                        "",
                        "Print this agent's public key (made on first use) and optionally sign a "
                        "message with it.",
                        opts,
                        0,
                        0};
    unsigned char pk[FL_IDENT_PK_BYTES], sk[FL_IDENT_SK_BYTES], sig[crypto_sign_BYTES];
    char *pos[1], fpr[FL_IDENT_FPR_SIZE], err[FL_ERRMSG_SIZE];
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    int npos, created;
    cli_parse(&c, argc, argv, pos, &npos);
    if (fl_ident_load(cli_val(&c, "data"), pk, sk, &created, err) != FL_OK) {
        fprintf(stderr, "flotilla agent id: %s\n", err);
        return 1;
    }
    fl_ident_fingerprint(pk, fpr);
    printf("public_key %s\n", fpr);
    if (cli_val(&c, "sign") != NULL) {
        const char *m = cli_val(&c, "sign");
        crypto_sign_detached(sig, NULL, (const unsigned char *)m, strlen(m), sk);
        sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
        printf("signature %s\n", b64);
    }
    sodium_memzero(sk, sizeof sk);
    return 0;
}

int cmd_agent(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"join", 1, "agent address(es) of servers, host:port[,host:port]", NULL, 0},
        {"name", 1, "this node's name (default and only value: the certificate's name)", NULL, 0},
        {"cap", 1, "units run at once (the cluster's setting wins once recorded)", "4", 0},
        {"label", 1, "labels k=v[,k=v]", NULL, 0},
        {"data", 1, "directory for the result spool and work files", "flotilla-agent", 0},
        CLI_TLS_OPTS,
        {"apps", 1, "where deploys put an application's root by default (DIR/APP)", AGENT_APPS_DIR,
         0},
        {NULL}};
    struct cli_cmd c = {"agent", "", "Run an agent: it connects to the cluster and executes units.",
                        opts,    0,  0};
    struct cli_tls tls;
    struct agent_config cfg;
    char *pos[1], *end;
    int npos;
    long cap;
    if (argc >= 1 && strcmp(argv[0], "list") == 0) {
        return agents_list(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "approve") == 0) {
        return agents_approve(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "forget") == 0) {
        return agents_forget(argc - 1, argv + 1);
    }
    if (argc >= 1 && (strcmp(argv[0], "revoke") == 0 || strcmp(argv[0], "unrevoke") == 0)) {
        return agents_revoke(argc - 1, argv + 1, strcmp(argv[0], "revoke") == 0);
    }
    if (argc >= 1 && strcmp(argv[0], "id") == 0) {
        return agent_id(argc - 1, argv + 1);
    }
    cli_parse(&c, argc, argv, pos, &npos);
    memset(&cfg, 0, sizeof cfg);
    if (!cli_flag(&c, "join")) {
        cli_die_usage(&c, "--join is required");
    }
    cfg.n_join = split_into(cli_val(&c, "join"), cfg.join, AGENT_JOIN_MAX, &c, "join");
    if (cli_val(&c, "name")) {
        snprintf(cfg.id, sizeof cfg.id, "%s", cli_val(&c, "name"));
    }
    cap = strtol(cli_val(&c, "cap"), &end, 10);
    if (*end != '\0' || cap < 0 || cap > 1000000) {
        cli_die_usage(&c, "--cap must be 0..1000000");
    }
    cfg.cap = (uint32_t)cap;
    if (cli_val(&c, "label")) {
        cfg.n_labels = split_into(cli_val(&c, "label"), cfg.labels, AGENT_LABELS_MAX, &c, "label");
        for (unsigned i = 0; i < cfg.n_labels; i++) {
            if (strchr(cfg.labels[i], '=') == NULL) {
                cli_die_usage(&c, "--label: \"%s\" is not k=v", cfg.labels[i]);
            }
        }
    }
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", cli_val(&c, "data"));
    if (cli_val(&c, "apps")[0] == '\0' || strlen(cli_val(&c, "apps")) >= sizeof cfg.apps_dir) {
        cli_die_usage(&c, "--apps takes a directory");
    }
    snprintf(cfg.apps_dir, sizeof cfg.apps_dir, "%s", cli_val(&c, "apps"));
    /* The files deploy-target is given (deploy units): the ones just loaded. */
    cli_load_tls(&c, &tls);
    cfg.creds = tls.creds;
    memcpy(cfg.tls_ca, tls.ca, sizeof cfg.tls_ca);
    memcpy(cfg.tls_cert, tls.cert, sizeof cfg.tls_cert);
    memcpy(cfg.tls_key, tls.key, sizeof cfg.tls_key);
    if (!cli_opt(&c, "name")->set) {
        snprintf(cfg.id, sizeof cfg.id, "%s", tls_creds_self(tls.creds)->name);
    }
    return agent_main(&cfg);
}
