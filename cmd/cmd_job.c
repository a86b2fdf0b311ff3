/* flotilla job add|list|show|history|pause|resume|run|rm (docs/JOBS.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli.h"
#include "cmd/table.h"
#include "common/clock.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* UTC ISO 8601 of a millisecond time ("-" for 0). */
static const char *iso(long long ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0) {
        return "-";
    }
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static int job_add(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        JSON_OPT,
        {"cron", 1, "cron expression: 5 fields, or 6 with seconds first, or @hourly etc.", NULL, 0},
        {"tz", 1, "time zone of the cron expression (IANA name)", "UTC", 0},
        {"every", 1, "fixed interval instead of cron (10s, 5m)", NULL, 0},
        {"overlap", 1, "while a run is unfinished: allow, forbid, replace or queue", "allow", 0},
        {"mode", 1, "one (one eligible node) or all (every eligible node)", "one", 0},
        {"misfire", 1, "a late fire: skip, or run-once", "run-once", 0},
        {"starting-deadline", 1, "run a late fire only if at most this late (0 = any)", NULL, 0},
        {"paused", 0, "create it paused", NULL, 0},
        {"update", 0, "redefine an existing job (keeps its history)", NULL, 0},
        TASK_FLAGS,
#ifdef FLOTILLA_TEST_HOOKS
        TEST_TASK_FLAGS,
#endif
        {NULL}};
    struct cli_cmd c = {"job add",
                        "NAME",
                        "Add a cron job: a task submitted at each schedule time, fired at most "
                        "once per time across leader changes.",
                        opts,
                        1,
                        1};
    char *pos[1];
    int npos, status;
    json_t *body, *out;
    cli_parse(&c, argc, argv, pos, &npos);
    if ((cli_val(&c, "cron") == NULL) == (cli_val(&c, "every") == NULL)) {
        cli_die_usage(&c, "give exactly one of --cron and --every");
    }
    body = cli_task_body(&c, 0);
    json_object_set_new(body, "name", json_string(pos[0]));
    if (cli_val(&c, "cron") != NULL) {
        json_object_set_new(body, "cron", json_string(cli_val(&c, "cron")));
        json_object_set_new(body, "tz", json_string(cli_val(&c, "tz")));
    } else {
        if (cli_flag(&c, "tz")) {
            cli_die_usage(&c, "--tz goes with --cron");
        }
        json_object_set_new(body, "every", json_string(cli_val(&c, "every")));
    }
    json_object_set_new(body, "overlap", json_string(cli_val(&c, "overlap")));
    json_object_set_new(body, "mode", json_string(cli_val(&c, "mode")));
    json_object_set_new(body, "misfire", json_string(cli_val(&c, "misfire")));
    if (cli_val(&c, "starting-deadline") != NULL) {
        json_object_set_new(body, "starting_deadline",
                            json_string(cli_val(&c, "starting-deadline")));
    }
    if (cli_flag(&c, "paused")) {
        json_object_set_new(body, "paused", json_true());
    }
    if (cli_flag(&c, "update")) {
        json_object_set_new(body, "update", json_true());
    }
    status = cli_call(&c, "POST", "/v1/jobs", body, &out);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("job %s %s\n", pos[0], cli_flag(&c, "update") ? "updated" : "added");
    }
    json_decref(out);
    return 0;
}

static void print_job(struct cli_table *tab, json_t *j, int verbose)
{
    char b1[32], b2[32];
    json_t *next = json_object_get(j, "next_ms"), *v;
    size_t i;
    char sched[300];
    if (json_object_get(j, "cron") != NULL) {
        snprintf(sched, sizeof sched, "cron '%s' %s", jstr(j, "cron"), jstr(j, "tz"));
    } else {
        long long ms = jint(j, "every_ms");
        const char *unit = ms % 3600000 == 0 ? "h"
                           : ms % 60000 == 0 ? "m"
                           : ms % 1000 == 0  ? "s"
                                             : "ms";
        long long div = unit[0] == 'h'                      ? 3600000
                        : unit[0] == 'm' && unit[1] == '\0' ? 60000
                        : unit[0] == 's'                    ? 1000
                                                            : 1;
        snprintf(sched, sizeof sched, "every %lld%s", ms / div, unit);
    }
    if (!verbose) {
        cli_table_row(tab);
        cli_table_cell(tab, "%s", jstr(j, "name"));
        cli_table_cell(tab, "%s", sched);
        cli_table_cell(tab, "%s",
                       json_array_size(next)
                           ? iso(json_integer_value(json_array_get(next, 0)), b1, sizeof b1)
                           : (json_is_true(json_object_get(j, "paused")) ? "paused" : "-"));
        cli_table_cell(tab, "%s", iso(jint(j, "last_scheduled_ms"), b2, sizeof b2));
        cli_table_cell(tab, "%lld", jint(j, "runs"));
        return;
    }
    printf("job        %s\nschedule   %s\noverlap    %s\nmode       %s\nmisfire    %s\n"
           "paused     %s\nruns       %lld (queued %lld)\nlast time  %s\nnext       ",
           jstr(j, "name"), sched, jstr(j, "overlap"), jstr(j, "mode"), jstr(j, "misfire"),
           json_is_true(json_object_get(j, "paused")) ? "yes" : "no", jint(j, "runs"),
           jint(j, "queued"), iso(jint(j, "last_scheduled_ms"), b1, sizeof b1));
    json_array_foreach(next, i, v)
    {
        printf("%s%s", i ? "\n           " : "", iso(json_integer_value(v), b2, sizeof b2));
    }
    printf("\n");
}

/* A job's run history: its tasks' ids in one column, "(manual)" after them. */
static void print_runs(json_t *out)
{
    static const struct cli_table_col cols[] = {{"SCHEDULED", 0, 0}, {"FIRED", 0, 0},
                                                {"OUTCOME", 0, 0},   {"MISSED", 1, 0},
                                                {"STATE", 0, 0},     {"TASKS", 0, 0}};
    struct cli_table *tab = cli_table_new(cols, 6);
    json_t *r;
    size_t i;
    char b1[32], b2[32];
    json_array_foreach(json_object_get(out, "items"), i, r)
    {
        json_t *tasks = json_object_get(r, "tasks"), *t;
        char ids[1024] = "";
        size_t k, l;
        json_array_foreach(tasks, k, t)
        {
            l = strlen(ids);
            snprintf(ids + l, sizeof ids - l, "%s%s", k ? " " : "", jstr(t, "id"));
        }
        if (json_is_true(json_object_get(r, "manual"))) {
            l = strlen(ids);
            snprintf(ids + l, sizeof ids - l, "%s(manual)", l ? " " : "");
        }
        cli_table_row(tab);
        cli_table_cell(tab, "%s", iso(jint(r, "scheduled_ms"), b1, sizeof b1));
        cli_table_cell(tab, "%s", iso(jint(r, "fired_ms"), b2, sizeof b2));
        cli_table_cell(tab, "%s", jstr(r, "outcome"));
        cli_table_cell(tab, "%lld", jint(r, "missed"));
        cli_table_cell(tab, "%s",
                       json_array_size(tasks) ? jstr(json_array_get(tasks, 0), "state") : "-");
        cli_table_cell(tab, "%s", ids);
    }
    cli_table_print(tab, stdout, 0);
}

static int job_list(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {"job list", "", "List jobs with their next fire time (UTC).", opts, 0, 0};
    char *pos[1];
    int npos, status;
    json_t *out, *j;
    size_t i;
    cli_parse(&c, argc, argv, pos, &npos);
    status = cli_call(&c, "GET", "/v1/jobs", NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        static const struct cli_table_col cols[] = {
            {"NAME", 0, 0}, {"SCHEDULE", 0, 0}, {"NEXT", 0, 0}, {"LAST", 0, 0}, {"RUNS", 1, 0}};
        struct cli_table *tab = cli_table_new(cols, 5);
        json_array_foreach(json_object_get(out, "items"), i, j)
        {
            print_job(tab, j, 0);
        }
        cli_table_print(tab, stdout, 0);
    }
    json_decref(out);
    return 0;
}

static int job_one(int argc, char **argv, const char *path, const char *method, const char *suffix,
                   const char *summary)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {path, "NAME", summary, opts, 1, 1};
    char *pos[1], url[160];
    int npos, status;
    json_t *out;
    cli_parse(&c, argc, argv, pos, &npos);
    if (strlen(pos[0]) > 80) {
        cli_die_usage(&c, "job names are at most 63 characters");
    }
    snprintf(url, sizeof url, "/v1/jobs/%s%s", pos[0], suffix);
    status = cli_call(&c, method, url, NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else if (strcmp(suffix, "/runs") == 0) {
        print_runs(out);
    } else if (strcmp(method, "GET") == 0) {
        print_job(NULL, out, 1);
    } else if (strcmp(suffix, "/run") == 0) {
        printf("%s\n", jstr(out, "outcome"));
    } else {
        printf("ok\n");
    }
    json_decref(out);
    return 0;
}

int cmd_job(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    if (strcmp(sub, "add") == 0) {
        return job_add(argc - 1, argv + 1);
    }
    if (strcmp(sub, "list") == 0) {
        return job_list(argc - 1, argv + 1);
    }
    if (strcmp(sub, "show") == 0) {
        return job_one(argc - 1, argv + 1, "job show", "GET", "", "Show a job.");
    }
    if (strcmp(sub, "history") == 0) {
        return job_one(argc - 1, argv + 1, "job history", "GET", "/runs",
                       "A job's runs (the last 100), with their tasks.");
    }
    if (strcmp(sub, "pause") == 0) {
        return job_one(argc - 1, argv + 1, "job pause", "POST", "/pause", "Pause a job.");
    }
    if (strcmp(sub, "resume") == 0) {
        return job_one(argc - 1, argv + 1, "job resume", "POST", "/resume",
                       "Resume a job (times it slept through are not run).");
    }
    if (strcmp(sub, "run") == 0) {
        return job_one(argc - 1, argv + 1, "job run", "POST", "/run",
                       "Run a job now (its overlap policy applies).");
    }
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "delete") == 0) {
        return job_one(argc - 1, argv + 1, "job rm", "DELETE", "",
                       "Delete a job and its history (running tasks finish).");
    }
    fprintf(
        argc >= 1 && strcmp(sub, "--help") != 0 ? stderr : stdout,
        "usage: flotilla job add|list|show|history|pause|resume|run|rm ... (each has --help)\n");
    return argc >= 1 && strcmp(sub, "--help") == 0 ? 0 : 2;
}
