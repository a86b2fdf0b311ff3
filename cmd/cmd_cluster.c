/* flotilla status | members ... | node ... */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli.h"
#include "cmd/table.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* The members of a status or members answer: `status` shows them indented. */
static void print_members_table(json_t *out, int indent)
{
    static const struct cli_table_col cols[] = {
        {"ID", 1, 0}, {"ADDRESS", 0, 0}, {"ROLE", 0, 0}, {"LEADER", 0, 0}};
    struct cli_table *tab = cli_table_new(cols, 4);
    json_t *m;
    size_t i;
    json_array_foreach(json_object_get(out, "members"), i, m)
    {
        cli_table_row(tab);
        cli_table_cell(tab, "%lld", jint(m, "id"));
        cli_table_cell(tab, "%s", jstr(m, "address"));
        cli_table_cell(tab, "%s", jstr(m, "role"));
        cli_table_cell(tab, "%s", json_is_true(json_object_get(m, "leader")) ? "*" : "");
    }
    cli_table_print(tab, stdout, indent);
}

int cmd_status(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {"status", "", "Show the server's view of the cluster.", opts, 0, 0};
    char *pos[1];
    int npos, status;
    json_t *out, *leader;
    cli_parse(&c, argc, argv, pos, &npos);
    status = cli_call(&c, "GET", "/v1/status", NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
        json_decref(out);
        return 0;
    }
    leader = json_object_get(out, "leader");
    printf("server     %s (id %lld) %s\n", jstr(out, "name"), jint(out, "id"), jstr(out, "state"));
    if (json_is_object(leader)) {
        printf("leader     id %lld, api %s\n", jint(leader, "id"), jstr(leader, "api_addr"));
    } else {
        printf("leader     none\n");
    }
    printf("term       %lld\ncommit     %lld\napplied    %lld\n", jint(out, "term"),
           jint(out, "commit_index"), jint(out, "applied_index"));
    printf("digest     %s at %lld\n", jstr(json_object_get(out, "digest"), "sha"),
           jint(json_object_get(out, "digest"), "index"));
    printf("members\n");
    print_members_table(out, 2);
    json_decref(out);
    return 0;
}

/* ---- members ------------------------------------------------------------- */

static int print_members(json_t *out)
{
    print_members_table(out, 0);
    return 0;
}

static int finish(struct cli_cmd *c, int status, json_t *out, int (*print)(json_t *))
{
    if (status != 200) {
        return cli_print_error(c->path, status, out);
    }
    if (cli_flag(c, "json") || print == NULL) {
        cli_print_json(out);
    } else {
        print(out);
    }
    json_decref(out);
    return 0;
}

static unsigned long long parse_id(struct cli_cmd *c, const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0 || s[0] == '-') {
        cli_die_usage(c, "server id must be a positive integer, not \"%s\"", s);
    }
    return v;
}

int cmd_members(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    char *pos[4];
    int npos, status;
    json_t *out = NULL;
    char path[128];

    if (strcmp(sub, "list") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {"members list", "", "List the Raft members.", opts, 0, 0};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        status = cli_call(&c, "GET", "/v1/members", NULL, &out);
        return finish(&c, status, out, print_members);
    }
    if (strcmp(sub, "add") == 0) {
        struct cli_opt opts[] = {
            ADDR_OPT,
            JSON_OPT,
            {"api-addr", 1, "the new server's API address", NULL, 0},
            {"name", 1, "the new server's node name", NULL, 0},
            {"standby", 0, "add as a standby (replicates, does not vote)", NULL, 0},
            {NULL}};
        struct cli_cmd c = {"members add",
                            "ID RAFT_ADDR",
                            "Add a server (normally done by `flotilla server --join`).",
                            opts,
                            2,
                            2};
        json_t *body;
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        body = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)parse_id(&c, pos[0]), "raft_addr",
                         pos[1], "role", cli_flag(&c, "standby") ? "standby" : "voter");
        if (cli_val(&c, "api-addr")) {
            json_object_set_new(body, "api_addr", json_string(cli_val(&c, "api-addr")));
        }
        if (cli_val(&c, "name")) {
            json_object_set_new(body, "name", json_string(cli_val(&c, "name")));
        }
        status = cli_call_plain(&c, "POST", "/v1/members", body, &out);
        json_decref(body);
        return finish(&c, status, out, NULL);
    }
    if (strcmp(sub, "remove") == 0 || strcmp(sub, "promote") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {strcmp(sub, "remove") == 0 ? "members remove" : "members promote",
                            "ID",
                            strcmp(sub, "remove") == 0 ? "Remove a server from the cluster."
                                                       : "Promote a standby server to voter.",
                            opts,
                            1,
                            1};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        if (strcmp(sub, "remove") == 0) {
            snprintf(path, sizeof path, "/v1/members/%llu", parse_id(&c, pos[0]));
            status = cli_call_plain(&c, "DELETE", path, NULL, &out);
        } else {
            snprintf(path, sizeof path, "/v1/members/%llu/promote", parse_id(&c, pos[0]));
            status = cli_call_plain(&c, "POST", path, NULL, &out);
        }
        return finish(&c, status, out, print_members);
    }
    if (strcmp(sub, "leave") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {"members leave",
                            "",
                            "Remove the server at --addr from the cluster (it steps down first "
                            "if it leads).",
                            opts,
                            0,
                            0};
        json_t *st = NULL;
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        status = cli_call(&c, "GET", "/v1/status", NULL, &st);
        if (status != 200) {
            return cli_print_error(c.path, status, st);
        }
        snprintf(path, sizeof path, "/v1/members/%lld", jint(st, "id"));
        json_decref(st);
        status = cli_call_plain(&c, "DELETE", path, NULL, &out);
        return finish(&c, status, out, print_members);
    }
    if (strcmp(sub, "transfer") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {"members transfer",
                            "[ID]",
                            "Hand leadership to another voter (any, without ID).",
                            opts,
                            0,
                            1};
        json_t *body = NULL;
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        if (npos == 1) {
            body = json_pack("{s:I}", "id", (json_int_t)parse_id(&c, pos[0]));
        }
        status = cli_call_plain(&c, "POST", "/v1/members/transfer", body, &out);
        json_decref(body);
        return finish(&c, status, out, print_members);
    }
    fprintf(
        strcmp(sub, "--help") == 0 ? stdout : stderr,
        "usage: flotilla members list|add|remove|leave|promote|transfer ... (each has --help)\n");
    return strcmp(sub, "--help") == 0 ? 0 : 2;
}

/* ---- nodes --------------------------------------------------------------- */

static int print_nodes(json_t *out)
{
    json_t *n;
    size_t i;
    static const struct cli_table_col cols[] = {{"NODE", 0, 0},  {"KIND", 0, 0}, {"CAP", 1, 0},
                                                {"DRAIN", 0, 0}, {"API", 0, 0},  {"LABELS", 0, 0}};
    struct cli_table *tab = cli_table_new(cols, 6);
    json_array_foreach(json_object_get(out, "nodes"), i, n)
    {
        const char *k;
        json_t *v;
        char labels[2048] = "";
        json_object_foreach(json_object_get(n, "labels"), k, v)
        {
            size_t l = strlen(labels);
            snprintf(labels + l, sizeof labels - l, "%s%s=%s", l ? " " : "", k,
                     json_string_value(v));
        }
        cli_table_row(tab);
        cli_table_cell(tab, "%s", jstr(n, "id"));
        cli_table_cell(tab, "%s", jstr(n, "kind"));
        cli_table_cell(tab, "%lld", jint(n, "cap"));
        cli_table_cell(tab, "%s", json_is_true(json_object_get(n, "drain")) ? "yes" : "no");
        cli_table_cell(tab, "%s", jstr(n, "api_addr"));
        cli_table_cell(tab, "%s", labels);
    }
    cli_table_print(tab, stdout, 0);
    return 0;
}

static int print_ok(json_t *out)
{
    printf("ok (index %lld)\n", jint(out, "index"));
    return 0;
}

/* Drain, then optionally wait for the node's running units to reach 0. */
static int drain(struct cli_cmd *c, const char *node)
{
    char path[256], *id = cli_escape(node, 0);
    long long deadline = 0, waited = 0;
    int status, cancelled = 0;
    json_t *out = NULL;
    struct timespec pause = {0, 250 * 1000 * 1000};
    if (cli_val(c, "deadline") && (deadline = cli_duration_ms(cli_val(c, "deadline"))) <= 0) {
        cli_die_usage(c, "--deadline: use 30s, 10m, ...");
    }
    if ((cli_flag(c, "deadline") || cli_flag(c, "cancel-at-deadline")) && !cli_flag(c, "wait")) {
        cli_die_usage(c, "--deadline and --cancel-at-deadline go with --wait");
    }
    snprintf(path, sizeof path, "/v1/nodes/%s/drain", id);
    status = cli_call(c, "POST", path, NULL, &out);
    if (status != 200) {
        free(id);
        return cli_print_error(c->path, status, out);
    }
    json_decref(out);
    if (!cli_flag(c, "wait")) {
        free(id);
        printf("draining %s\n", node);
        return 0;
    }
    snprintf(path, sizeof path, "/v1/nodes/%s", id);
    for (;;) {
        long long running;
        status = cli_call(c, "GET", path, NULL, &out);
        if (status != 200) {
            free(id);
            return cli_print_error(c->path, status, out);
        }
        running = jint(out, "running");
        json_decref(out);
        if (running == 0) {
            printf("%s is drained\n", node);
            free(id);
            return 0;
        }
        if (deadline > 0 && waited >= deadline && !cancelled) {
            if (!cli_flag(c, "cancel-at-deadline")) {
                fprintf(stderr, "flotilla node drain: %s still runs %lld units at the deadline\n",
                        node, running);
                free(id);
                return 3;
            }
            snprintf(path, sizeof path, "/v1/nodes/%s/cancel-running", id);
            status = cli_call_plain(c, "POST", path, NULL, &out);
            json_decref(out);
            fprintf(stderr, "deadline: cancelling the %lld units still running on %s\n", running,
                    node);
            snprintf(path, sizeof path, "/v1/nodes/%s", id);
            cancelled = 1;
        }
        if (!cancelled) {
            fprintf(stderr, "waiting for %lld units on %s\n", running, node);
        }
        nanosleep(&pause, NULL);
        waited += 250;
    }
}

int cmd_node(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    char *pos[4];
    int npos, status;
    json_t *out = NULL;
    char path[256];
    char *id;

    if (strcmp(sub, "list") == 0) {
        struct cli_opt opts[] = {
            ADDR_OPT, JSON_OPT, {"stale", 0, "read this server's copy", NULL, 0}, {NULL}};
        struct cli_cmd c = {"node list", "", "List nodes with caps, drain flags and labels.",
                            opts,        0,  0};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        status = cli_call(&c, "GET", cli_flag(&c, "stale") ? "/v1/nodes?stale" : "/v1/nodes", NULL,
                          &out);
        return finish(&c, status, out, print_nodes);
    }
    if (strcmp(sub, "cap") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {"node cap", "NODE N", "Set a node's running-unit cap (0 drains).",
                            opts,       2,        2};
        json_t *body;
        char *end;
        long v;
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        v = strtol(pos[1], &end, 10);
        if (*end != '\0' || pos[1][0] == '\0' || v < 0 || v > 1000000) {
            cli_die_usage(&c, "N must be an integer 0..1000000");
        }
        id = cli_escape(pos[0], 0);
        snprintf(path, sizeof path, "/v1/nodes/%s/cap", id);
        free(id);
        body = json_pack("{s:I}", "cap", (json_int_t)v);
        status = cli_call(&c, "PUT", path, body, &out);
        json_decref(body);
        return finish(&c, status, out, print_ok);
    }
    if (strcmp(sub, "drain") == 0) {
        struct cli_opt opts[] = {
            ADDR_OPT,
            JSON_OPT,
            {"wait", 0, "wait until the node runs nothing", NULL, 0},
            {"deadline", 1, "with --wait: give up after this long (10m)", NULL, 0},
            {"cancel-at-deadline", 0, "at the deadline, cancel what still runs and wait for it",
             NULL, 0},
            {NULL}};
        struct cli_cmd c = {"node drain",
                            "NODE",
                            "Drain a node: running units finish, no new ones are assigned "
                            "(/v1/health of a draining server answers 503).",
                            opts,
                            1,
                            1};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        return drain(&c, pos[0]);
    }
    if (strcmp(sub, "undrain") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {strcmp(sub, "drain") == 0 ? "node drain" : "node undrain",
                            "NODE",
                            strcmp(sub, "drain") == 0 ? "Drain a node: it takes no new work."
                                                      : "Let a drained node take work again.",
                            opts,
                            1,
                            1};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        id = cli_escape(pos[0], 0);
        snprintf(path, sizeof path, "/v1/nodes/%s/%s", id, sub);
        free(id);
        status = cli_call(&c, "POST", path, NULL, &out);
        return finish(&c, status, out, print_ok);
    }
    fprintf(strcmp(sub, "--help") == 0 ? stdout : stderr,
            "usage: flotilla node list|cap|drain|undrain ... (each has --help)\n");
    return strcmp(sub, "--help") == 0 ? 0 : 2;
}
