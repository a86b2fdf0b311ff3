/* flotilla server | flotilla dev */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/agent.h"
#include "cmd/cli.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/key.h"
#include "http/blocking.h"
#include "node/server.h"

static unsigned long long parse_num(struct cli_cmd *c, const char *flag, const char *s,
                                    unsigned long long max)
{
    char *end;
    unsigned long long v;
    if (s == NULL || s[0] == '\0' || s[0] == '-') {
        cli_die_usage(c, "--%s needs a non-negative integer", flag);
    }
    v = strtoull(s, &end, 10);
    if (*end != '\0' || v > max) {
        cli_die_usage(c, "--%s: \"%s\" is not an integer up to %llu", flag, s, max);
    }
    return v;
}

/* "512M", "2G", "1048576" -> bytes */
static size_t parse_size(struct cli_cmd *c, const char *flag, const char *s)
{
    char *end;
    unsigned long long v;
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        cli_die_usage(c, "--%s needs a size like 512M or 2G", flag);
    }
    v = strtoull(s, &end, 10);
    if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) {
        v <<= 10;
    } else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) {
        v <<= 20;
    } else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0) {
        v <<= 30;
    } else if (*end != '\0') {
        cli_die_usage(c, "--%s: bad size \"%s\" (use 512M, 2G, ...)", flag, s);
    }
    return (size_t)v;
}

static int valid_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long port;
    if (colon == NULL || colon == s || strlen(s) >= 128) {
        return 0;
    }
    port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port > 0 && port < 65536;
}

/* "1=127.0.0.1:8501,2=127.0.0.1:8502" */
static void parse_peers(struct cli_cmd *c, const char *s, struct node_config *cfg)
{
    char buf[4096];
    char *save = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        struct rg_peer *p;
        if (eq == NULL || cfg->n_peers == NODE_MAX_PEERS) {
            cli_die_usage(c, "--peers takes ID=HOST:PORT,... (at most %d)", NODE_MAX_PEERS);
        }
        *eq = '\0';
        p = &cfg->peers[cfg->n_peers++];
        p->id = parse_num(c, "peers", tok, (1ull << 62));
        if (p->id == 0 || !valid_hostport(eq + 1)) {
            cli_die_usage(c, "--peers: bad entry %s=%s", tok, eq + 1);
        }
        snprintf(p->addr, sizeof p->addr, "%s", eq + 1);
        p->role = RAFT_VOTER;
    }
}

/* --id, --name, --data. */
static void server_identity(struct cli_cmd *c, struct node_config *cfg)
{
    if (!cli_flag(c, "id")) {
        cli_die_usage(c, "--id is required");
    }
    if (!cli_flag(c, "data")) {
        cli_die_usage(c, "--data is required");
    }
    cfg->id = parse_num(c, "id", cli_val(c, "id"), (1ull << 62));
    if (cfg->id == 0) {
        cli_die_usage(c, "--id must be positive");
    }
    if (cli_val(c, "name") != NULL) {
        if (strlen(cli_val(c, "name")) >= sizeof cfg->name || cli_val(c, "name")[0] == '\0' ||
            strpbrk(cli_val(c, "name"), "/ \t") != NULL) {
            cli_die_usage(c, "--name must be 1-63 characters without '/' or spaces");
        }
        snprintf(cfg->name, sizeof cfg->name, "%s", cli_val(c, "name"));
    }
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", cli_val(c, "data"));
}

/* --raft-addr, --api-addr (checked here, kept by the caller), --agent-addr,
 * --blob-addr (default: the agent address's host, its port + 100). */
static void server_addresses(struct cli_cmd *c, struct node_config *cfg)
{
    if (!valid_hostport(cli_val(c, "raft-addr")) || !valid_hostport(cli_val(c, "api-addr"))) {
        cli_die_usage(c, "addresses must be HOST:PORT");
    }
    snprintf(cfg->raft_addr, sizeof cfg->raft_addr, "%s", cli_val(c, "raft-addr"));
    if (!valid_hostport(cli_val(c, "agent-addr"))) {
        cli_die_usage(c, "--agent-addr must be HOST:PORT");
    }
    snprintf(cfg->agent_addr, sizeof cfg->agent_addr, "%s", cli_val(c, "agent-addr"));
    if (cli_val(c, "blob-addr") != NULL) {
        if (!valid_hostport(cli_val(c, "blob-addr"))) {
            cli_die_usage(c, "--blob-addr must be HOST:PORT");
        }
        snprintf(cfg->blob_addr, sizeof cfg->blob_addr, "%s", cli_val(c, "blob-addr"));
    } else {
        const char *colon = strrchr(cfg->agent_addr, ':');
        long port = strtol(colon + 1, NULL, 10) + 100;
        if (port > 65535) {
            cli_die_usage(c, "the agent port + 100 is not a port: give --blob-addr");
        }
        snprintf(cfg->blob_addr, sizeof cfg->blob_addr, "%.*s:%ld", (int)(colon - cfg->agent_addr),
                 cfg->agent_addr, port);
    }
}

/* --no-agent, --placement, --label, --lost-after and --heartbeat. */
static void server_placement(struct cli_cmd *c, struct node_config *cfg)
{
    cfg->no_agent = cli_flag(c, "no-agent");
    if (strcmp(cli_val(c, "placement"), "pack") == 0) {
        cfg->placement_pack = 1;
    } else if (strcmp(cli_val(c, "placement"), "spread") != 0) {
        cli_die_usage(c, "--placement is spread or pack");
    }
    if (cli_val(c, "label")) {
        char buf[4096], *save = NULL;
        snprintf(buf, sizeof buf, "%s", cli_val(c, "label"));
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (cfg->n_labels == 32 || strlen(tok) >= 128 || strchr(tok, '=') == NULL) {
                cli_die_usage(c, "--label takes k=v[,k=v] (at most 32)");
            }
            snprintf(cfg->labels[cfg->n_labels++], 128, "%s", tok);
        }
    }
    long long lost = cli_duration_ms(cli_val(c, "lost-after"));
    long long hb = cli_duration_ms(cli_val(c, "heartbeat"));
    if (lost < 500 || hb < 50 || hb * 2 > lost) {
        cli_die_usage(c, "--lost-after must be at least 500ms and twice --heartbeat");
    }
    cfg->lost_after_ms = (unsigned)lost;
    cfg->heartbeat_ms = (unsigned)hb;
}

/* --bootstrap with --peers (default: this server alone), or --join with
 * --standby. */
static void server_membership(struct cli_cmd *c, struct node_config *cfg)
{
    if (cli_flag(c, "bootstrap") && cli_flag(c, "join")) {
        cli_die_usage(c, "--bootstrap and --join are exclusive");
    }
    if (cli_flag(c, "peers") && !cli_flag(c, "bootstrap")) {
        cli_die_usage(c, "--peers needs --bootstrap");
    }
    if (cli_flag(c, "standby") && !cli_flag(c, "join")) {
        cli_die_usage(c, "--standby needs --join");
    }
    cfg->bootstrap = cli_flag(c, "bootstrap");
    if (cfg->bootstrap) {
        int self = 0;
        if (cli_flag(c, "peers")) {
            parse_peers(c, cli_val(c, "peers"), cfg);
        } else {
            cfg->peers[0].id = cfg->id;
            snprintf(cfg->peers[0].addr, sizeof cfg->peers[0].addr, "%s", cfg->raft_addr);
            cfg->peers[0].role = RAFT_VOTER;
            cfg->n_peers = 1;
        }
        for (unsigned i = 0; i < cfg->n_peers; i++) {
            self |= cfg->peers[i].id == cfg->id;
        }
        if (!self) {
            cli_die_usage(c, "--peers must include this server's --id");
        }
    }
    if (cli_flag(c, "join")) {
        const char *j = cli_val(c, "join");
        if (strncmp(j, "http://", 7) == 0) {
            j += 7;
        }
        if (!valid_hostport(j)) {
            cli_die_usage(c, "--join needs HOST:PORT of a server's API");
        }
        snprintf(cfg->join, sizeof cfg->join, "%s", j);
        cfg->join_role = cli_flag(c, "standby") ? RAFT_STANDBY : RAFT_VOTER;
    }
}

/* Snapshots, store size, request and connection limits, cap, free disk. */
static void server_limits(struct cli_cmd *c, struct node_config *cfg)
{
    cfg->snapshot_threshold =
        (unsigned)parse_num(c, "snapshot-threshold", cli_val(c, "snapshot-threshold"), 1u << 30);
    cfg->snapshot_trailing =
        (unsigned)parse_num(c, "snapshot-trailing", cli_val(c, "snapshot-trailing"), 1u << 30);
    if (cfg->snapshot_threshold < 2) {
        cli_die_usage(c, "--snapshot-threshold must be at least 2");
    }
    cfg->store_size = parse_size(c, "store-size", cli_val(c, "store-size"));
    if (cfg->store_size < (1u << 20)) {
        cli_die_usage(c, "--store-size must be at least 1M");
    }
    cfg->max_body = parse_size(c, "max-body", cli_val(c, "max-body"));
    if (cfg->max_body < 1024 || cfg->max_body > (64u << 20)) {
        cli_die_usage(c, "--max-body must be between 1K and 64M");
    }
    cfg->max_conns_per_ip =
        (unsigned)parse_num(c, "max-conns-per-ip", cli_val(c, "max-conns-per-ip"), 100000);
    if (cfg->max_conns_per_ip == 0) {
        cli_die_usage(c, "--max-conns-per-ip must be 1-100000");
    }
    cfg->node_cap = (unsigned)parse_num(c, "cap", cli_val(c, "cap"), 1000000);
    cfg->min_free_disk = parse_size(c, "min-free-disk", cli_val(c, "min-free-disk"));
}

/* The servers' key, the TLS credentials, --apps, --raft-plaintext (test builds
 * only) and --require-agent-approval. */
static void server_key_and_apps(struct cli_cmd *c, struct node_config *cfg)
{
    struct cli_tls tls;
    cli_load_key(c, cfg->key);
    /* The embedded agent gives deploy-target the files just loaded. */
    cli_load_tls(c, &tls);
    cfg->creds = tls.creds;
    memcpy(cfg->tls_ca, tls.ca, sizeof cfg->tls_ca);
    memcpy(cfg->tls_cert, tls.cert, sizeof cfg->tls_cert);
    memcpy(cfg->tls_key, tls.key, sizeof cfg->tls_key);
    if (cli_val(c, "apps")[0] == '\0' || strlen(cli_val(c, "apps")) >= sizeof cfg->apps_dir) {
        cli_die_usage(c, "--apps takes a directory");
    }
    snprintf(cfg->apps_dir, sizeof cfg->apps_dir, "%s", cli_val(c, "apps"));
    cfg->raft_plaintext = cli_flag(c, "raft-plaintext");
    cfg->require_agent_approval = cli_flag(c, "require-agent-approval");
}

int cmd_server(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"id", 1, "Raft server id (a positive integer, unique in the cluster)", NULL, 0},
        {"name", 1, "node name (default and only value: the certificate's name)", NULL, 0},
        {"data", 1, "data directory (store and Raft log)", NULL, 0},
        {"raft-addr", 1, "host:port for Raft traffic", "127.0.0.1:8501", 0},
        {"api-addr", 1, "host:port for the HTTP API", "127.0.0.1:8401", 0},
        {"agent-addr", 1, "host:port where agents connect", "127.0.0.1:8601", 0},
        {"blob-addr", 1,
         "host:port of the package blob link (default: the agent address's "
         "host, its port + 100)",
         NULL, 0},
        {"label", 1, "labels of this server's node: k=v[,k=v]", NULL, 0},
        {"no-agent", 0, "do not run the embedded agent (the server executes no units)", NULL, 0},
        {"apps", 1,
         "where the embedded agent's deploys put an application's root by default "
         "(DIR/APP)",
         AGENT_APPS_DIR, 0},
        {"lost-after", 1, "an agent silent this long is committed lost", "10s", 0},
        {"heartbeat", 1, "agents' heartbeat period", "1s", 0},
        {"placement", 1, "spread (least loaded node first) or pack (fill nodes in turn)", "spread",
         0},
        {"bootstrap", 0, "bootstrap a new cluster (only on a fresh data directory)", NULL, 0},
        {"peers", 1, "with --bootstrap: ID=HOST:PORT,... of every voter (default: this server)",
         NULL, 0},
        {"join", 1, "API address of a server of the cluster to join", NULL, 0},
        {"standby", 0, "with --join: join as a standby (replicates, does not vote)", NULL, 0},
        {"snapshot-threshold", 1, "entries between snapshots", "8192", 0},
        {"snapshot-trailing", 1, "entries kept in the log after a snapshot", "8192", 0},
        {"store-size", 1, "maximum store size", "1G", 0},
        {"max-body", 1, "largest accepted request body", "1M", 0},
        {"max-conns-per-ip", 1, "HTTP connections one address may hold open (1-100000)", "1024", 0},
        {"cap", 1, "running-unit cap of this server's node", "4", 0},
        {"min-free-disk", 1, "refuse writes when the data disk has less free space", "64M", 0},
        {"key", 1,
         "the servers' secret key file (flotilla keygen; only servers hold it); default "
         "$FLOTILLA_KEY_FILE",
         NULL, 0},
        CLI_TLS_OPTS,
        {"require-agent-approval", 0,
         "new agents wait for `flotilla agent approve NAME` before they may join", NULL, 0},
#ifdef FLOTILLA_TEST_HOOKS
        {"raft-plaintext", 0,
         "test builds only, for measurement (bench/run writes --compare-plaintext): Raft "
         "traffic unencrypted and unauthenticated",
         NULL, 0},
#endif
        {NULL}};
    struct cli_cmd c = {"server", "", "Run a Flotilla server.", opts, 0, 0};
    struct node_config cfg;
    char *pos[1];
    int npos;

    cli_parse(&c, argc, argv, pos, &npos);
    node_config_defaults(&cfg);
    server_identity(&c, &cfg);
    server_addresses(&c, &cfg);
    server_placement(&c, &cfg);
    snprintf(cfg.api_addr, sizeof cfg.api_addr, "%s", cli_val(&c, "api-addr"));
    server_membership(&c, &cfg);
    server_limits(&c, &cfg);
    server_key_and_apps(&c, &cfg);
    return node_server_run(&cfg);
}

/* ---- dev ----------------------------------------------------------------- */

#define DEV_MAX 7

/* Every server knows where the leader's API is (so it can forward). */
static int all_know_leader(unsigned n, unsigned base)
{
    for (unsigned i = 1; i <= n; i++) {
        struct httpc_response r;
        char addr[64], err[FL_ERRMSG_SIZE];
        int ok = 0;
        snprintf(addr, sizeof addr, "127.0.0.1:%u", base + i);
        if (httpc_request(addr, "GET", "/v1/status", NULL, NULL, 0, 1000, &r, err) != 0) {
            return 0;
        }
        if (r.status == 200) {
            json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
            const char *api =
                json_string_value(json_object_get(json_object_get(j, "leader"), "api_addr"));
            ok = api != NULL && api[0] != '\0';
            json_decref(j);
        }
        httpc_response_free(&r);
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int leader_ready(const char *addr, char *name, size_t len)
{
    struct httpc_response r;
    char err[FL_ERRMSG_SIZE];
    int ok = 0;
    if (httpc_request(addr, "GET", "/v1/status", NULL, NULL, 0, 1000, &r, err) != 0) {
        return 0;
    }
    if (r.status == 200) {
        json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
        const char *state = json_string_value(json_object_get(j, "state"));
        ok = state != NULL && strcmp(state, "leader") == 0 &&
             json_is_true(json_object_get(j, "ready"));
        if (ok) {
            snprintf(name, len, "%s", json_string_value(json_object_get(j, "name")));
        }
        json_decref(j);
    }
    httpc_response_free(&r);
    return ok;
}

/* The dev cluster's management token: DIR/token, made by bootstrapping the
 * cluster the first time (a restarted dev cluster keeps its token). Returns
 * 1 if DIR/token holds it. */
static int dev_token(const char *dir, const char *leader_api)
{
    char path[PATH_MAX + 16], secret[80], body[160], b64[64], err[FL_ERRMSG_SIZE];
    unsigned char raw[32];
    struct httpc_response r;
    int fd, ok;
    snprintf(path, sizeof path, "%s/token", dir);
    if (access(path, R_OK) == 0) {
        return 1;
    }
    if (sodium_init() < 0) {
        return 0;
    }
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(secret, sizeof secret, "flt_%s", b64);
    snprintf(body, sizeof body, "{\"secret\": \"%s\"}", secret);
    for (int tries = 0; tries < 50; tries++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        if (httpc_request(leader_api, "POST", "/v1/acl/bootstrap",
                          "Content-Type: application/json\r\n", body, strlen(body), 5000, &r,
                          err) == 0) {
            int status = r.status;
            httpc_response_free(&r);
            if (status == 200) {
                break;
            }
            if (status == 409) {
                fprintf(stderr,
                        "flotilla dev: the cluster in %s was bootstrapped before and %s "
                        "is gone; use the token you kept\n",
                        dir, path);
                return 0;
            }
        }
        if (tries == 49) {
            fprintf(stderr, "flotilla dev: bootstrapping the API token failed\n");
            return 0;
        }
        nanosleep(&ts, NULL);
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ok = fd >= 0 && write(fd, secret, strlen(secret)) == (ssize_t)strlen(secret) &&
         write(fd, "\n", 1) == 1;
    if (fd >= 0) {
        close(fd);
    }
    if (!ok) {
        fprintf(stderr, "flotilla dev: cannot write %s; the token is %s\n", path, secret);
    }
    return ok;
}

/* The dev cluster's directory (made if missing; its absolute path into
 * dir), its key (made on the first run; the file's path into keyfile) and
 * this executable (into exe). Returns 0, or 1 after saying why not. */
static int dev_prepare(struct cli_cmd *c, char *dir, char *keyfile, size_t keycap, char *exe)
{
    char kerr[FL_ERRMSG_SIZE];
    unsigned char key[FL_KEY_BYTES];
    if (mkdir(cli_val(c, "dir"), 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "flotilla dev: cannot create %s: %s\n", cli_val(c, "dir"), strerror(errno));
        return 1;
    }
    if (realpath(cli_val(c, "dir"), dir) == NULL) {
        fprintf(stderr, "flotilla dev: %s: %s\n", cli_val(c, "dir"), strerror(errno));
        return 1;
    }
    /* The cluster's key lives with its data; made on the first run. */
    snprintf(keyfile, keycap, "%s/cluster.key", dir);
    if (fl_key_load(keyfile, key, kerr) == FL_ENOTFOUND) {
        if (fl_key_generate(keyfile, 0, key, kerr) != FL_OK) {
            fprintf(stderr, "flotilla dev: %s\n", kerr);
            return 1;
        }
    } else if (fl_key_load(keyfile, key, kerr) != FL_OK) {
        fprintf(stderr, "flotilla dev: %s\n", kerr);
        return 1;
    }
    /* The CA and every server's certificate, also made on the first run. */
    if (cli_dev_pki(dir, (unsigned)atoi(cli_val(c, "servers"))) != 0) {
        return 1;
    }
    ssize_t el = readlink("/proc/self/exe", exe, PATH_MAX - 1);
    if (el <= 0) {
        fprintf(stderr, "flotilla dev: cannot find my own binary\n");
        return 1;
    }
    exe[el] = '\0';
    return 0;
}

/* Start server-1..n as children (pids), each in its own process group with
 * its output in DIR/server-N.log. Returns 0, or 1 if a fork failed. */
static int dev_start(unsigned n, unsigned base, const char *dir, const char *exe,
                     const char *keyfile, const char *peers, const sigset_t *set, pid_t *pids)
{
    for (unsigned i = 1; i <= n; i++) {
        char id[16], data[PATH_MAX + 32], raft[64], api[64], agent[64], logf[PATH_MAX + 32];
        snprintf(id, sizeof id, "%u", i);
        snprintf(data, sizeof data, "%s/server-%u", dir, i);
        snprintf(raft, sizeof raft, "127.0.0.1:%u", base + 100 + i);
        snprintf(api, sizeof api, "127.0.0.1:%u", base + i);
        snprintf(agent, sizeof agent, "127.0.0.1:%u", base + 200 + i);
        snprintf(logf, sizeof logf, "%s/server-%u.log", dir, i);
        pids[i - 1] = fork();
        if (pids[i - 1] < 0) {
            perror("flotilla dev: fork");
            return 1;
        }
        if (pids[i - 1] == 0) {
            int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
            sigprocmask(SIG_UNBLOCK, set, NULL);
            setpgid(0, 0); /* Ctrl-C reaches the servers only through us */
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            char ca[PATH_MAX + 32], cert[PATH_MAX + 32], ckey[PATH_MAX + 32];
            snprintf(ca, sizeof ca, "%s/pki/ca.pem", dir);
            snprintf(cert, sizeof cert, "%s/pki/server-%u.pem", dir, i);
            snprintf(ckey, sizeof ckey, "%s/pki/server-%u.key", dir, i);
            execl(exe, exe, "server", "--id", id, "--data", data, "--raft-addr", raft, "--api-addr",
                  api, "--agent-addr", agent, "--bootstrap", "--peers", peers, "--key", keyfile,
                  "--ca", ca, "--cert", cert, "--cert-key", ckey, (char *)NULL);
            perror("exec");
            _exit(127);
        }
    }
    return 0;
}

/* Wait up to about 6 s for a server that is the ready leader (its name into
 * leader), saying which servers exit meanwhile. Returns 1 if one is. */
static int dev_wait_leader(unsigned n, unsigned base, const char *dir, pid_t *pids, char *leader,
                           size_t cap)
{
    int found = 0;
    for (int tries = 0; tries < 300 && !found; tries++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        for (unsigned i = 1; i <= n && !found; i++) {
            char api[64];
            snprintf(api, sizeof api, "127.0.0.1:%u", base + i);
            found = leader_ready(api, leader, cap);
        }
        if (!found) {
            int st;
            for (unsigned i = 0; i < n; i++) {
                if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                    fprintf(stderr,
                            "flotilla dev: server-%u exited at start; see %s/server-%u.log\n",
                            i + 1, dir, i + 1);
                    pids[i] = 0;
                }
            }
            nanosleep(&ts, NULL);
        }
    }
    return found;
}

/* Where the cluster is and how to use it. */
static void dev_banner(unsigned n, unsigned base, const char *dir, const char *keyfile,
                       int have_token)
{
    printf("  API:  ");
    for (unsigned i = 1; i <= n; i++) {
        printf("https://127.0.0.1:%u ", base + i);
    }
    printf("\n  agents connect to: ");
    for (unsigned i = 1; i <= n; i++) {
        printf("127.0.0.1:%u%s", base + 200 + i, i < n ? "," : "");
    }
    printf("\n  data: %s (logs: server-N.log)\n", dir);
    printf("  servers' key: %s (servers only)\n", keyfile);
    printf("  certificates: %s/pki (CA ca.pem; server-N, agent-1, client)\n", dir);
    printf("  an agent:  flotilla agent --ca %s/pki/ca.pem --cert %s/pki/agent-1.pem "
           "--cert-key %s/pki/agent-1.key --data %s/agent-1 --join 127.0.0.1:%u\n",
           dir, dir, dir, dir, base + 201);
    if (have_token) {
        printf("  API token (management): %s/token\n", dir);
        printf("  try:  export FLOTILLA_ADDR=127.0.0.1:%u FLOTILLA_TOKEN_FILE=%s/token "
               "FLOTILLA_CACERT=%s/pki/ca.pem\n"
               "        flotilla kv put hello world; flotilla status\n"
               "        curl --cacert %s/pki/ca.pem -H \"X-Flotilla-Token: $(cat %s/token)\" "
               "https://127.0.0.1:%u/v1/kv/hello\n",
               base + 1, dir, dir, dir, dir, base + 1);
    } else {
        printf("  try:  FLOTILLA_ADDR=127.0.0.1:%u FLOTILLA_CACERT=%s/pki/ca.pem flotilla status\n",
               base + 1, dir);
    }
    printf("Press Ctrl-C to stop the cluster.\n");
    fflush(stdout);
}

/* Until SIGINT or SIGTERM (blocked in set), saying which servers exit. */
static void dev_wait_signal(unsigned n, const char *dir, pid_t *pids, const sigset_t *set)
{
    for (;;) {
        int sig = sigwaitinfo(set, NULL);
        if (sig == SIGCHLD) {
            int st;
            for (unsigned i = 0; i < n; i++) {
                if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                    fprintf(stderr,
                            "flotilla dev: server-%u exited (%s %d); see %s/server-%u.log\n", i + 1,
                            WIFSIGNALED(st) ? "signal" : "status",
                            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), dir, i + 1);
                    pids[i] = 0;
                }
            }
            continue;
        }
        if (sig == SIGINT || sig == SIGTERM) {
            break;
        }
    }
}

/* SIGTERM to every server still running; SIGKILL to one still there 10 s
 * later. */
static void dev_stop(unsigned n, pid_t *pids)
{
    for (unsigned i = 0; i < n; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        int st;
        if (pids[i] <= 0) {
            continue;
        }
        for (int t = 0; t < 100; t++) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                pids[i] = 0;
                break;
            }
            nanosleep(&ts, NULL);
        }
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], &st, 0);
        }
    }
}

int cmd_dev(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"dir", 1, "directory for the servers' data and logs", "flotilla-dev", 0},
        {"servers", 1, "number of servers (1-7)", "3", 0},
        {"base-port", 1, "API ports are BASE+1.., Raft BASE+101.., agents BASE+201..", "8400", 0},
        {NULL}};
    struct cli_cmd c = {"dev",
                        "",
                        "Run a local cluster of servers on loopback, data under one directory. "
                        "Ctrl-C stops them all.",
                        opts,
                        0,
                        0};
    char *pos[1];
    int npos;
    unsigned n, base;
    pid_t pids[DEV_MAX] = {0};
    char dir[PATH_MAX], exe[PATH_MAX], peers[1024] = "", leader[64] = "";
    char keyfile[PATH_MAX + 16];
    sigset_t set;
    uint64_t t0 = fl_mono_ns();
    int found, have_token = 0;
    char leader_api[64];

    cli_parse(&c, argc, argv, pos, &npos);
    n = (unsigned)parse_num(&c, "servers", cli_val(&c, "servers"), DEV_MAX);
    base = (unsigned)parse_num(&c, "base-port", cli_val(&c, "base-port"), 65000);
    if (n == 0) {
        cli_die_usage(&c, "--servers must be 1..%d", DEV_MAX);
    }
    if (dev_prepare(&c, dir, keyfile, sizeof keyfile, exe) != 0) {
        return 1;
    }
    {
        /* The servers' API is HTTPS: dev asks it with the CA it made. */
        char ca[PATH_MAX + 32], err[FL_ERRMSG_SIZE];
        struct tls_creds *creds;
        snprintf(ca, sizeof ca, "%s/pki/ca.pem", dir);
        if (tls_creds_load_ca(ca, &creds, err) != FL_OK) {
            fprintf(stderr, "flotilla dev: %s\n", err);
            return 1;
        }
        cli_api_tls("dev", creds);
    }
    for (unsigned i = 1; i <= n; i++) {
        size_t used = strlen(peers);
        snprintf(peers + used, sizeof peers - used, "%s%u=127.0.0.1:%u", i > 1 ? "," : "", i,
                 base + 100 + i);
    }
    /* Signals are taken synchronously below; children get the defaults. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (dev_start(n, base, dir, exe, keyfile, peers, &set, pids) != 0) {
        return 1;
    }
    found = dev_wait_leader(n, base, dir, pids, leader, sizeof leader);
    if (found) {
        double elected = (double)(fl_mono_ns() - t0) / 1e9;
        for (int tries = 0; tries < 250 && !all_know_leader(n, base); tries++) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        printf("Flotilla dev cluster: %u servers, leader %s elected in %.2f s\n", n, leader,
               elected);
        snprintf(leader_api, sizeof leader_api, "127.0.0.1:%u", base + 1);
        have_token = dev_token(dir, leader_api);
    } else {
        printf("Flotilla dev cluster: %u servers started, no leader yet (see the logs)\n", n);
    }
    dev_banner(n, base, dir, keyfile, have_token);
    dev_wait_signal(n, dir, pids, &set);
    printf("\nstopping...\n");
    dev_stop(n, pids);
    printf("stopped\n");
    return 0;
}
