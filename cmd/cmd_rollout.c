/* flotilla deploy: cluster-wide rollouts of a package version
 * (docs/DEPLOY.md, "Rollouts"): start one, watch it, list them, roll an app
 * back to an earlier version, cancel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/table.h"

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* --to: "label:k=v", "k=v", "k!=v", "k", or "node:ID" (comma-separated) into
 * the API's constraint list; exits 2 on an empty item. */
static json_t *to_list(struct cli_cmd *c, const char *spec)
{
    json_t *arr = json_array();
    char *copy = strdup(spec), *save = NULL;
    for (char *s = strtok_r(copy, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save)) {
        char item[192];
        if (strncmp(s, "label:", 6) == 0) {
            s += 6;
        }
        if (strncmp(s, "node:", 5) == 0) {
            snprintf(item, sizeof item, "node=%s", s + 5);
        } else {
            snprintf(item, sizeof item, "%s", s);
        }
        if (item[0] == '\0' || strcmp(item, "node=") == 0) {
            free(copy);
            json_decref(arr);
            cli_die_usage(c, "--to: an empty selector in \"%s\"", spec);
        }
        json_array_append_new(arr, json_string(item));
    }
    free(copy);
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        cli_die_usage(c, "--to needs a selector such as label:role=web");
    }
    return arr;
}

static void set_ms(struct cli_cmd *c, json_t *body, const char *flag, const char *field)
{
    const char *v = cli_val(c, flag);
    long long ms;
    if (v == NULL) {
        return;
    }
    ms = cli_duration_ms(v);
    if (ms <= 0) {
        cli_die_usage(c, "--%s takes a duration (30s, 5m)", flag);
    }
    json_object_set_new(body, field, json_integer(ms));
}

static void set_int(struct cli_cmd *c, json_t *body, const char *flag, const char *field)
{
    const char *v = cli_val(c, flag);
    char *end;
    long long n;
    if (v == NULL) {
        return;
    }
    n = strtoll(v, &end, 10);
    if (*end != '\0' || v[0] == '\0') {
        cli_die_usage(c, "--%s takes a number", flag);
    }
    json_object_set_new(body, field, json_integer(n));
}

/* --max-parallel N, --window P% and --max-failures N into body. */
static void pace_flags(struct cli_cmd *c, json_t *body)
{
    const char *w = cli_val(c, "window");
    if (w != NULL && cli_val(c, "max-parallel") != NULL) {
        cli_die_usage(c, "--max-parallel and --window exclude each other");
    }
    set_int(c, body, "max-parallel", "max_parallel");
    if (w != NULL) {
        char *end;
        long p = strtol(w, &end, 10);
        if (end == w || (strcmp(end, "%") != 0 && *end != '\0') || p < 1 || p > 100) {
            cli_die_usage(c, "--window takes a percentage of the targets, 1%%..100%%");
        }
        json_object_set_new(body, "window", json_integer(p));
    }
    set_int(c, body, "max-failures", "max_failures");
    set_ms(c, body, "timeout", "timeout_ms");
}

/* ---- showing a rollout ----------------------------------------------------- */

static void bar(char *out, int width, long long part, long long total)
{
    int fill = total > 0 ? (int)(part * width / total) : 0;
    for (int i = 0; i < width; i++) {
        out[i] = i < fill ? '#' : '-';
    }
    out[width] = '\0';
}

static void progress_line(FILE *f, json_t *d, int cr)
{
    json_t *p = json_object_get(d, "progress");
    long long total = jint(d, "targets");
    long long done = jint(p, "deployed") + jint(p, "failed") + jint(p, "cancelled");
    char b[48];
    bar(b, 30, done, total);
    fprintf(f, "%s[%s] %lld/%lld  deployed %lld, failed %lld, running %lld, waiting %lld%s  %s%s",
            cr ? "\r" : "", b, done, total, jint(p, "deployed"), jint(p, "failed"),
            jint(p, "running"), jint(p, "waiting"), jint(p, "cancelled") ? " (cancelled some)" : "",
            jstr(d, "state"), cr ? "   " : "\n");
    fflush(f);
}

static void print_steps(json_t *t)
{
    json_t *steps = json_object_get(t, "steps"), *s;
    size_t i;
    char line[1024] = "";
    json_array_foreach(steps, i, s)
    {
        const char *st = jstr(s, "status");
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s %s %lldms", i ? ", " : "",
                 jstr(s, "step"), strcmp(st, "ok") == 0 ? "ok" : st, jint(s, "ms"));
    }
    if (json_object_get(t, "current_step") != NULL) {
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s ...", line[0] ? ", " : "",
                 jstr(t, "current_step"));
    }
    if (line[0] != '\0') {
        printf("      %s\n", line);
    }
    json_array_foreach(steps, i, s)
    {
        if (strcmp(jstr(s, "status"), "failed") == 0) {
            printf("      %s: %s\n", jstr(s, "step"), jstr(s, "detail"));
        }
    }
    if (json_object_get(t, "error") != NULL) {
        printf("      %s\n", jstr(t, "error"));
    }
}

static void print_rollout(json_t *d)
{
    json_t *targets = json_object_get(d, "target_list"), *t;
    size_t i;
    printf("rollout %s: %s@%s (app %s), %s\n", jstr(d, "id"), jstr(d, "package"),
           jstr(d, "version"), jstr(d, "app"), jstr(d, "state"));
    printf("  %lld target(s), %lld at a time, stops after %lld failure(s)%s\n", jint(d, "targets"),
           jint(d, "max_parallel"), jint(d, "max_failures") + 1,
           json_is_true(json_object_get(d, "stopped")) ? " — STOPPED: failure threshold reached"
                                                       : "");
    printf("  ");
    progress_line(stdout, d, 0);
    json_array_foreach(targets, i, t)
    {
        char took[32] = "";
        const char *res = jstr(t, "result");
        if (jint(t, "finished_ms") > 0 && jint(t, "started_ms") > 0) {
            snprintf(took, sizeof took, "%.1fs",
                     (double)(jint(t, "finished_ms") - jint(t, "started_ms")) / 1000.0);
        }
        printf("  %-20s %-10s %-12s %7s", jstr(t, "node"), jstr(t, "state"), res[0] ? res : "",
               took);
        if (json_object_get(t, "acquire") != NULL) {
            json_t *a = json_object_get(t, "acquire");
            long long size = jint(a, "size"), got = jint(a, "bytes_received");
            printf("  %s %lld B", jstr(a, "method"), got);
            if (size > 0 && strcmp(jstr(a, "method"), "cached") != 0) {
                printf(" (%.1f%%)", 100.0 * (double)got / (double)size);
            }
        }
        printf("\n");
        print_steps(t);
    }
}

static int rollout_finished(json_t *d)
{
    const char *st = jstr(d, "state");
    return strcmp(st, "deployed") == 0 || strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0;
}

/* Poll until the rollout ends (progress on stderr), then print it; exit 0
 * when every target deployed. */
static int wait_rollout(struct cli_cmd *c, const char *id, int json)
{
    char path[256];
    struct timespec pause = {0, 500 * 1000 * 1000};
    long long last = -1;
    snprintf(path, sizeof path, "/v1/deploys/%s", id);
    for (;;) {
        json_t *d;
        int status = cli_call(c, "GET", path, NULL, &d);
        if (status != 200) {
            return cli_print_error(c->path, status, d);
        }
        if (rollout_finished(d)) {
            int ok = strcmp(jstr(d, "state"), "deployed") == 0;
            if (isatty(2)) {
                fprintf(stderr, "\n");
            }
            if (json) {
                cli_print_json(d);
            } else {
                print_rollout(d);
            }
            json_decref(d);
            return ok ? 0 : 1;
        }
        json_t *p = json_object_get(d, "progress");
        long long now =
            jint(p, "deployed") * 1000000 + jint(p, "failed") * 1000 + jint(p, "running");
        if (!json && (isatty(2) || now != last)) {
            progress_line(stderr, d, isatty(2));
        }
        last = now;
        json_decref(d);
        nanosleep(&pause, NULL);
    }
}

/* ---- subcommands ------------------------------------------------------------ */

#define PACE_FLAGS                                                                                 \
    {"max-parallel", 1, "targets deploying at once (default 1)", NULL, 0},                         \
        {"window", 1, "targets deploying at once, as a share of them: 25%", NULL, 0},              \
        {"max-failures", 1, "failed targets tolerated before the rollout stops (default 0)", NULL, \
         0},                                                                                       \
        {"timeout", 1, "per target (default 30m)", NULL, 0},                                       \
        {"wait", 0, "follow the rollout with a progress bar until it ends", NULL, 0}, JSON_OPT

static int submit(struct cli_cmd *c, const char *path, json_t *body)
{
    json_t *out;
    int status = cli_call(c, "POST", path, body, &out);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c->path, status, out);
    }
    char id[64];
    snprintf(id, sizeof id, "%s", jstr(out, "id"));
    if (!cli_flag(c, "wait")) {
        if (cli_flag(c, "json")) {
            cli_print_json(out);
        } else {
            printf("%s\n", id);
        }
        json_decref(out);
        return 0;
    }
    if (!cli_flag(c, "json")) {
        printf("rollout %s%s\n", id,
               json_is_true(json_object_get(out, "existing")) ? " (existing)" : "");
    }
    json_decref(out);
    return wait_rollout(c, id, cli_flag(c, "json"));
}

static int deploy_start(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        {"to", 1, "the targets: label:k=v, k!=v, node:ID (comma-separated, all must match)", NULL,
         0},
        {"app", 1, "application name (default: the package's)", NULL, 0},
        {"root", 1, "application root on the targets (default: the agent's --apps DIR/APP)", NULL,
         0},
        {"health", 1, "shell command that exits 0 when the app is healthy", NULL, 0},
        {"health-http", 1, "URL that answers 2xx when the app is healthy", NULL, 0},
        {"health-timeout", 1, "how long a target has to become healthy (default 30s)", NULL, 0},
        {"reload-timeout", 1, "how long supervise has to bring the workers back (default 10m)",
         NULL, 0},
        {"pre-hook", 1, "shell command run in the new release before the switch", NULL, 0},
        {"post-hook", 1, "shell command run after the health check", NULL, 0},
        {"keep", 1, "releases kept on each target (default 5)", NULL, 0},
        {"priority", 1, "higher runs first", NULL, 0},
        {"idempotency-key", 1, "a retried deploy with the same key starts nothing new", NULL, 0},
        PACE_FLAGS,
        {NULL}};
    struct cli_cmd c = {
        "deploy",
        "NAME@VERSION",
        "Roll a package version out to every node matching --to: each target acquires it (a "
        "delta against its release in service), verifies, unpacks, runs the pre-hook, switches, "
        "reloads supervise, checks health, runs the post-hook, and rolls back on its own failure; "
        "--max-parallel targets at a time; the rollout stops when more than --max-failures "
        "targets fail. Prints the rollout id (see deploy status).",
        opts,
        1,
        1};
    char *pos[1];
    int npos;
    json_t *body;
    const char *at;
    cli_parse(&c, argc, argv, pos, &npos);
    at = strchr(pos[0], '@');
    if (at == NULL || at == pos[0] || at[1] == '\0') {
        cli_die_usage(&c, "expected NAME@VERSION, got %s", pos[0]);
    }
    if (cli_val(&c, "to") == NULL) {
        cli_die_usage(&c, "--to is required (label:role=web, node:ID, ...)");
    }
    if (cli_val(&c, "health") && cli_val(&c, "health-http")) {
        cli_die_usage(&c, "--health and --health-http exclude each other");
    }
    body = json_pack("{s:s%, s:s, s:o}", "package", pos[0], (size_t)(at - pos[0]), "version",
                     at + 1, "to", to_list(&c, cli_val(&c, "to")));
    static const char *const strs[][2] = {{"app", "app"},
                                          {"root", "root"},
                                          {"health", "health"},
                                          {"health-http", "health_http"},
                                          {"pre-hook", "pre_hook"},
                                          {"post-hook", "post_hook"},
                                          {"idempotency-key", "idempotency_key"}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (cli_val(&c, strs[i][0]) != NULL) {
            json_object_set_new(body, strs[i][1], json_string(cli_val(&c, strs[i][0])));
        }
    }
    set_ms(&c, body, "health-timeout", "health_timeout_ms");
    set_ms(&c, body, "reload-timeout", "reload_timeout_ms");
    set_int(&c, body, "keep", "keep");
    set_int(&c, body, "priority", "priority");
    pace_flags(&c, body);
    return submit(&c, "/v1/deploys", body);
}

static int deploy_rollback(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT, {"to", 1, "the version to go back to", NULL, 0}, PACE_FLAGS, {NULL}};
    struct cli_cmd c = {
        "deploy rollback",
        "APP",
        "Deploy an earlier version of APP to the targets of its latest rollout, with the same "
        "checks and hooks (its pace and threshold unless given here). The version must still "
        "be in the package store.",
        opts,
        1,
        1};
    char *pos[1];
    int npos;
    json_t *body;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_val(&c, "to") == NULL) {
        cli_die_usage(&c, "--to VERSION is required");
    }
    body = json_pack("{s:s, s:s}", "app", pos[0], "version", cli_val(&c, "to"));
    pace_flags(&c, body);
    return submit(&c, "/v1/deploys/rollback", body);
}

static int deploy_status(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT, {"wait", 0, "follow it until it ends", NULL, 0}, JSON_OPT, {NULL}};
    struct cli_cmd c = {"deploy status",
                        "ID",
                        "A rollout: its progress bar and every target's state, result, steps "
                        "with their times, and what failed.",
                        opts,
                        1,
                        1};
    char *pos[1], path[256];
    int npos, status;
    json_t *d;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_flag(&c, "wait")) {
        return wait_rollout(&c, pos[0], cli_flag(&c, "json"));
    }
    snprintf(path, sizeof path, "/v1/deploys/%s", pos[0]);
    if ((status = cli_get(&c, path, &d)) >= 0) {
        return status;
    }
    print_rollout(d);
    json_decref(d);
    return 0;
}

static int deploy_list(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT, {"app", 1, "only this application's rollouts", NULL, 0}, JSON_OPT, {NULL}};
    struct cli_cmd c = {"deploy list", "", "Rollouts, newest first.", opts, 0, 0};
    static const struct cli_table_col cols[] = {{"ID", 0, 0},
                                                {"PACKAGE", 0, 0},
                                                {"APP", 0, 0},
                                                {"STATE", 0, 0},
                                                {"DEPLOYED/TARGETS", 0, 0}};
    struct cli_table *tab;
    char *pos[1], path[256];
    int npos, status;
    json_t *out, *d;
    size_t i;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_val(&c, "app") != NULL) {
        char *e = cli_escape(cli_val(&c, "app"), 0);
        snprintf(path, sizeof path, "/v1/deploys?app=%s", e);
        free(e);
    } else {
        snprintf(path, sizeof path, "/v1/deploys");
    }
    if ((status = cli_get(&c, path, &out)) >= 0) {
        return status;
    }
    tab = cli_table_new(cols, 5);
    json_array_foreach(json_object_get(out, "deploys"), i, d)
    {
        cli_table_row(tab);
        cli_table_cell(tab, "%s", jstr(d, "id"));
        cli_table_cell(tab, "%s@%s", jstr(d, "package"), jstr(d, "version"));
        cli_table_cell(tab, "%s", jstr(d, "app"));
        cli_table_cell(tab, "%s", jstr(d, "state"));
        cli_table_cell(tab, "%lld/%lld", jint(json_object_get(d, "progress"), "deployed"),
                       jint(d, "targets"));
    }
    cli_table_print(tab, stdout, 0);
    json_decref(out);
    return 0;
}

static int deploy_cancel(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {"deploy cancel",
                        "ID",
                        "Stop a rollout: waiting targets are cancelled; a target deploying now "
                        "stops at its next step boundary and rolls back if it had switched.",
                        opts,
                        1,
                        1};
    char *pos[1], path[256];
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    snprintf(path, sizeof path, "/v1/deploys/%s/cancel", pos[0]);
    return cli_do(&c, "POST", path, "cancel requested");
}

int cmd_deploy(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {{"status", deploy_status},
                {"list", deploy_list},
                {"rollback", deploy_rollback},
                {"cancel", deploy_cancel}};
    for (size_t i = 0; argc >= 1 && i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(argv[0], subs[i].name) == 0) {
            return subs[i].fn(argc - 1, argv + 1);
        }
    }
    if (argc >= 1 && argv[0][0] != '-' && strchr(argv[0], '@') != NULL) {
        return deploy_start(argc, argv);
    }
    fprintf(argc >= 1 && strcmp(argv[0], "--help") == 0 ? stdout : stderr,
            "usage: flotilla deploy NAME@VERSION --to label:k=v [--max-parallel N | --window P%%] "
            "[--wait] ...\n"
            "       flotilla deploy status|list|rollback|cancel ... (each has --help)\n");
    return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}
