/* flotilla task ... | results | dispatch ... */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

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

/* "500ms", "30s", "10m", "2h", or plain seconds -> milliseconds; -1 if bad. */
long long cli_duration_ms(const char *s)
{
    return fl_duration_ms(s);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL) {
        return NULL;
    }
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            buf = realloc(buf, cap);
            if (buf == NULL) {
                fclose(f);
                return NULL;
            }
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r == 0) {
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Split "a,b c\nd" (commas, blanks or newlines) into a JSON array. */
static json_t *split_list(const char *s)
{
    json_t *arr = json_array();
    const char *p = s;
    while (*p) {
        size_t n;
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
        }
        n = strcspn(p, ", \t\r\n");
        if (n > 0) {
            json_array_append_new(arr, json_stringn(p, n));
        }
        p += n;
    }
    return arr;
}

/* Shell-like words: blanks separate, '...' and "..." quote, \ escapes. */
static json_t *split_words(struct cli_cmd *c, const char *s)
{
    json_t *arr = json_array();
    char *word = malloc(strlen(s) + 1);
    size_t n = 0;
    int in_word = 0;
    char quote = 0;
    for (const char *p = s;; p++) {
        if (*p == '\0') {
            if (quote) {
                cli_die_usage(c, "--exec: unterminated quote");
            }
            break;
        }
        if (quote) {
            if (*p == quote) {
                quote = 0;
            } else if (*p == '\\' && quote == '"' && p[1]) {
                word[n++] = *++p;
            } else {
                word[n++] = *p;
            }
            continue;
        }
        if (*p == ' ' || *p == '\t' || *p == '\n') {
            if (in_word) {
                json_array_append_new(arr, json_stringn(word, n));
                n = 0;
                in_word = 0;
            }
            continue;
        }
        in_word = 1;
        if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if (*p == '\\' && p[1]) {
            word[n++] = *++p;
        } else {
            word[n++] = *p;
        }
    }
    if (in_word) {
        json_array_append_new(arr, json_stringn(word, n));
    }
    free(word);
    return arr;
}

static void progress_line(json_t *task, int final)
{
    json_t *pr = json_object_get(task, "progress");
    json_t *units = json_object_get(pr, "units"), *hosts = json_object_get(pr, "hosts");
    long long total = jint(task, "units"), done = jint(units, "done");
    int width = 30, fill = total > 0 ? (int)(done * width / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) {
        bar[i] = i < fill ? '#' : '-';
    }
    bar[width] = '\0';
    fprintf(stderr,
            "%s[%s] %lld/%lld units (%lld running) | hosts ok %lld failed %lld timeout %lld "
            "%s%s",
            isatty(2) ? "\r" : "", bar, done, total, jint(units, "running"), jint(hosts, "ok"),
            jint(hosts, "failed"), jint(hosts, "timeout"), jstr(task, "state"),
            final || !isatty(2) ? "\n" : "   ");
    fflush(stderr);
}

static int finished(json_t *task)
{
    const char *st = jstr(task, "state");
    return strcmp(st, "done") == 0 || strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0;
}

/* Poll until the task finishes; exit status 0 if every host is ok. */
static int wait_task(struct cli_cmd *c, const char *id, long long timeout_ms, int quiet)
{
    char path[256];
    struct timespec pause = {0, 200 * 1000 * 1000};
    long long waited = 0;
    long long last_done = -1;
    snprintf(path, sizeof path, "/v1/tasks/%s", id);
    for (;;) {
        json_t *task;
        int status = cli_call(c, "GET", path, NULL, &task);
        if (status != 200) {
            return cli_print_error(c->path, status, task);
        }
        long long done = jint(json_object_get(json_object_get(task, "progress"), "units"), "done");
        if (finished(task)) {
            int ok = strcmp(jstr(task, "state"), "done") == 0;
            if (!quiet) {
                progress_line(task, 1);
            }
            json_decref(task);
            return ok ? 0 : 1;
        }
        if (!quiet && (isatty(2) || done != last_done)) {
            progress_line(task, 0);
        }
        last_done = done;
        json_decref(task);
        if (timeout_ms > 0 && waited >= timeout_ms) {
            fprintf(stderr, "flotilla %s: still running after the --timeout\n", c->path);
            return 3;
        }
        nanosleep(&pause, NULL);
        waited += 200;
    }
}

/* --env / --secret-env values (one per line, as the repeatable flag joins
 * them) into {"NAME": "value"}. A secret is only taken from a file
 * (NAME=@FILE), so it stays out of shell history and the process list; one
 * trailing newline of the file is dropped. */
static json_t *env_object(struct cli_cmd *c, const char *flag, const char *lines, int from_file)
{
    json_t *o = json_object();
    char *copy = strdup(lines), *save = NULL;
    for (char *ln = strtok_r(copy, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(ln, '=');
        if (eq == NULL || eq == ln) {
            cli_die_usage(c, "--%s %s: want NAME=%s", flag, ln, from_file ? "@FILE" : "value");
        }
        *eq = '\0';
        if (!from_file) {
            json_object_set_new(o, ln, json_string(eq + 1));
            continue;
        }
        if (eq[1] != '@') {
            cli_die_usage(c, "--secret-env %s: give the secret in a file, NAME=@FILE", ln);
        }
        {
            char buf[4098];
            size_t n;
            FILE *f = fopen(eq + 2, "r");
            if (f == NULL) {
                cli_die_usage(c, "--secret-env %s: %s: %s", ln, eq + 2, strerror(errno));
            }
            n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            if (n > 4096) {
                cli_die_usage(c, "--secret-env %s: %s is longer than 4096 bytes", ln, eq + 2);
            }
            if (n > 0 && buf[n - 1] == '\n') {
                n--;
            }
            buf[n] = '\0';
            json_object_set_new(o, ln, json_stringn(buf, n));
            sodium_memzero(buf, sizeof buf);
        }
    }
    free(copy);
    return o;
}

/* The noop and sleep executors exist only in a test build (cli.h). */
#ifdef FLOTILLA_TEST_HOOKS
#define EXEC_TEST_FLAGS ", --noop, --sleep"
#else
#define EXEC_TEST_FLAGS ""
#endif

json_t *cli_task_body(struct cli_cmd *c, int need_hosts)
{
    json_t *body;
    const char *hosts,
        *exec_flags[] = {"exec", "shell", "ansible-module", "playbook", "noop", "sleep"};
    int n_exec = 0;
    long long v;

    hosts = cli_val(c, "hosts");
    if (hosts == NULL && need_hosts) {
        cli_die_usage(c, "--hosts is required");
    }
    for (size_t i = 0; i < sizeof exec_flags / sizeof exec_flags[0]; i++) {
        n_exec += cli_flag(c, exec_flags[i]);
    }
    if (n_exec != 1) {
        cli_die_usage(
            c, "give exactly one of --exec, --shell, --ansible-module, --playbook" EXEC_TEST_FLAGS);
    }
    body = json_object();
    if (hosts == NULL) {
        /* no hosts: the caller decides (jobs) */
    } else if (hosts[0] == '@') {
        size_t len;
        char *text = slurp(hosts + 1, &len);
        if (text == NULL) {
            fprintf(stderr, "flotilla %s: %s: %s\n", c->path, hosts + 1, strerror(errno));
            exit(1);
        }
        json_object_set_new(body, "hosts", split_list(text));
        free(text);
    } else {
        json_object_set_new(body, "hosts", split_list(hosts));
    }
    v = strtoll(cli_val(c, "unit-size"), NULL, 10);
    if (cli_val(c, "run-on") == NULL || cli_opt(c, "unit-size")->set) {
        json_object_set_new(body, "unit_size", json_integer(v)); /* run_on host: 1 */
    }
    if (cli_val(c, "run-on")) {
        json_object_set_new(body, "run_on", json_string(cli_val(c, "run-on")));
    }
    if (cli_val(c, "max-parallel")) {
        json_object_set_new(body, "max_parallel",
                            json_integer(strtoll(cli_val(c, "max-parallel"), NULL, 10)));
    }
    if (cli_val(c, "stop-after-failures")) {
        json_object_set_new(body, "stop_after_failures",
                            json_integer(strtoll(cli_val(c, "stop-after-failures"), NULL, 10)));
    }
    v = cli_duration_ms(cli_val(c, "timeout"));
    if (v < 0) {
        cli_die_usage(c, "--timeout: use 500ms, 30s, 10m or 2h");
    }
    json_object_set_new(body, "timeout_ms", json_integer(v));
    json_object_set_new(body, "retries", json_integer(strtoll(cli_val(c, "retries"), NULL, 10)));
    json_object_set_new(body, "priority", json_integer(strtoll(cli_val(c, "priority"), NULL, 10)));
    if (cli_val(c, "constraint")) {
        json_object_set_new(body, "constraints", split_list(cli_val(c, "constraint")));
    }
    if (cli_val(c, "idempotency-key")) {
        json_object_set_new(body, "idempotency_key", json_string(cli_val(c, "idempotency-key")));
    }
    if (cli_val(c, "name")) {
        json_object_set_new(body, "name", json_string(cli_val(c, "name")));
    }
    if (cli_val(c, "inventory-var")) {
        json_object_set_new(body, "inventory_vars", split_list(cli_val(c, "inventory-var")));
    }
    if (cli_val(c, "env")) {
        json_object_set_new(body, "env", env_object(c, "env", cli_val(c, "env"), 0));
    }
    if (cli_val(c, "secret-env")) {
        json_object_set_new(body, "secret_env",
                            env_object(c, "secret-env", cli_val(c, "secret-env"), 1));
    }
    if (cli_val(c, "kill-grace")) {
        v = cli_duration_ms(cli_val(c, "kill-grace"));
        if (v < 0) {
            cli_die_usage(c, "--kill-grace: use 500ms, 5s, ...");
        }
        json_object_set_new(body, "kill_grace_ms", json_integer(v));
    }
    if (cli_val(c, "exec")) {
        json_object_set_new(body, "exec", split_words(c, cli_val(c, "exec")));
    } else if (cli_val(c, "shell")) {
        json_object_set_new(body, "shell", json_string(cli_val(c, "shell")));
    } else if (cli_val(c, "ansible-module")) {
        json_object_set_new(body, "ansible_module", json_string(cli_val(c, "ansible-module")));
        if (cli_val(c, "ansible-args")) {
            json_object_set_new(body, "ansible_args", json_string(cli_val(c, "ansible-args")));
        }
    } else if (cli_val(c, "playbook")) {
        size_t len;
        char *text = slurp(cli_val(c, "playbook"), &len);
        if (text == NULL) {
            fprintf(stderr, "flotilla %s: %s: %s\n", c->path, cli_val(c, "playbook"),
                    strerror(errno));
            exit(1);
        }
        json_object_set_new(body, "playbook", json_string(text));
        free(text);
    } else if (cli_flag(c, "noop")) {
        json_object_set_new(body, "noop", json_true());
    } else if (cli_val(c, "sleep")) {
        v = cli_duration_ms(cli_val(c, "sleep"));
        if (v < 0) {
            cli_die_usage(c, "--sleep: use 500ms, 30s, ...");
        }
        json_object_set_new(body, "sleep_ms", json_integer(v));
    }
    return body;
}

static int task_submit(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        JSON_OPT,
        {"hosts", 1, "host list: a,b,c or @FILE (one per line or comma-separated)", NULL, 0},
        {"unit-size", 1, "hosts per unit", "30", 0},
        {"timeout", 1, "per-unit timeout (500ms, 30s, 10m, 2h; 0 = none)", "0", 0},
        {"retries", 1, "re-runs of a failed or lost unit", "0", 0},
        {"priority", 1, "higher runs first", "0", 0},
        {"constraint", 1, "node labels required: k=v, k!=v or k (comma-separated)", NULL, 0},
        {"run-on", 1, "host: each host is a node id and its unit runs on that node", NULL, 0},
        {"max-parallel", 1, "units of this task running at once (default: no limit)", NULL, 0},
        {"stop-after-failures", 1, "cancel the waiting units once N hosts have failed", NULL, 0},
        {"idempotency-key", 1, "a retried submit with the same key returns the same task", NULL, 0},
        {"name", 1, "a name for the task", NULL, 0},
        {"exec", 1, "run a command (argv, no shell): 'cmd arg ...'", NULL, 0},
        {"shell", 1, "run a shell script", NULL, 0},
        {"ansible-module", 1, "run an Ansible module against the unit's hosts", NULL, 0},
        {"ansible-args", 1, "the module's arguments", NULL, 0},
        {"playbook", 1, "run an Ansible playbook FILE against the unit's hosts", NULL, 0},
#ifdef FLOTILLA_TEST_HOOKS
        TEST_TASK_FLAGS,
#endif
        {"inventory-var", 1, "Ansible inventory variables k=v (comma-separated)", NULL, 0},
        {"kill-grace", 1, "between TERM and KILL at timeout or cancel", NULL, 0},
        {"env", 2, "NAME=value in the units' environment (repeatable)", NULL, 0},
        {"secret-env", 2,
         "NAME=@FILE: a secret read from FILE, stored encrypted, never shown (repeatable)", NULL,
         0},
        {"wait", 0, "wait for the task to finish, with a progress bar", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"task submit", "", "Submit a task: the host list is split into units.",
                        opts,          0,  0};
    char *pos[1];
    int npos, status;
    json_t *body, *out;

    cli_parse(&c, argc, argv, pos, &npos);
    body = cli_task_body(&c, 1);
    status = cli_call(&c, "POST", "/v1/tasks", body, &out);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("%s%s\n", jstr(out, "id"),
               json_is_true(json_object_get(out, "existing")) ? " (existing)" : "");
    }
    fflush(stdout);
    if (cli_flag(&c, "wait")) {
        char id[64];
        snprintf(id, sizeof id, "%s", jstr(out, "id"));
        json_decref(out);
        return wait_task(&c, id, 0, cli_flag(&c, "json"));
    }
    json_decref(out);
    return 0;
}

static int print_task(json_t *t)
{
    json_t *pr = json_object_get(t, "progress");
    json_t *units = json_object_get(pr, "units"), *hosts = json_object_get(pr, "hosts");
    const char *k;
    json_t *v;
    printf("task       %s %s\nstate      %s\n", jstr(t, "id"), jstr(t, "name"), jstr(t, "state"));
    printf("executor   %s\n", jstr(json_object_get(t, "executor"), "kind"));
    printf("units      %lld (size %lld): queued %lld, running %lld, done %lld\n", jint(t, "units"),
           jint(t, "unit_size"), jint(units, "queued"), jint(units, "running"),
           jint(units, "done"));
    printf("hosts      %lld:", jint(t, "hosts"));
    json_object_foreach(hosts, k, v)
    {
        if (json_integer_value(v) > 0) {
            printf(" %s %lld", k, (long long)json_integer_value(v));
        }
    }
    printf("\n");
    if (jint(t, "stale_results") > 0) {
        printf("stale      %lld late results ignored\n", jint(t, "stale_results"));
    }
    return 0;
}

static int print_results(json_t *out)
{
    static const struct cli_table_col cols[] = {{"HOST", 0, 0}, {"STATUS", 0, 0},
                                                {"RC", 1, 0},   {"ATTEMPT", 1, 0},
                                                {"NODE", 0, 0}, {"TASK/UNIT", 0, 0}};
    struct cli_table *tab = cli_table_new(cols, 6);
    json_t *r;
    size_t i;
    json_array_foreach(json_object_get(out, "results"), i, r)
    {
        cli_table_row(tab);
        cli_table_cell(tab, "%s", jstr(r, "host"));
        cli_table_cell(tab, "%s", jstr(r, "status"));
        cli_table_cell(tab, "%lld", jint(r, "rc"));
        cli_table_cell(tab, "%lld", jint(r, "attempt"));
        cli_table_cell(tab, "%s", jstr(r, "node"));
        cli_table_cell(tab, "%s/%lld", jstr(r, "task"), jint(r, "unit"));
    }
    cli_table_print(tab, stdout, 0);
    return 0;
}

static int print_tasks(json_t *out)
{
    static const struct cli_table_col cols[] = {
        {"ID", 0, 0}, {"STATE", 0, 0}, {"UNITS", 1, 0}, {"DONE", 1, 0}, {"NAME", 0, 0}};
    struct cli_table *tab = cli_table_new(cols, 5);
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(out, "tasks"), i, t)
    {
        cli_table_row(tab);
        cli_table_cell(tab, "%s", jstr(t, "id"));
        cli_table_cell(tab, "%s", jstr(t, "state"));
        cli_table_cell(tab, "%lld", jint(t, "units"));
        cli_table_cell(tab, "%lld",
                       jint(json_object_get(json_object_get(t, "progress"), "units"), "done"));
        cli_table_cell(tab, "%s", jstr(t, "name"));
    }
    cli_table_print(tab, stdout, 0);
    return 0;
}

static int print_why(json_t *out)
{
    printf("%s\n", jstr(out, "summary"));
    return 0;
}

static int print_ok(json_t *out)
{
    printf("ok\n");
    return 0;
}

static int simple(struct cli_cmd *c, const char *method, const char *path, int (*print)(json_t *))
{
    json_t *out;
    int status = cli_call(c, method, path, NULL, &out);
    if (status != 200) {
        return cli_print_error(c->path, status, out);
    }
    if (cli_flag(c, "json")) {
        cli_print_json(out);
    } else {
        print(out);
    }
    json_decref(out);
    return 0;
}

int cmd_task(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    char *pos[4];
    int npos;
    char path[1024];
    char *id;

    if (strcmp(sub, "submit") == 0) {
        return task_submit(argc - 1, argv + 1);
    }
    if (strcmp(sub, "list") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {"task list", "", "List tasks.", opts, 0, 0};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        return simple(&c, "GET", "/v1/tasks", print_tasks);
    }
    if (strcmp(sub, "status") == 0 || strcmp(sub, "why") == 0 || strcmp(sub, "cancel") == 0 ||
        strcmp(sub, "units") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
        struct cli_cmd c = {strcmp(sub, "status") == 0  ? "task status"
                            : strcmp(sub, "why") == 0   ? "task why"
                            : strcmp(sub, "units") == 0 ? "task units"
                                                        : "task cancel",
                            "ID",
                            strcmp(sub, "status") == 0  ? "Show a task's progress."
                            : strcmp(sub, "why") == 0   ? "Explain why a task's units wait."
                            : strcmp(sub, "units") == 0 ? "Show a task's units."
                                                        : "Cancel a task: queued units are "
                                                          "dropped, running ones killed.",
                            opts,
                            1,
                            1};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        id = cli_escape(pos[0], 0);
        if (strcmp(sub, "status") == 0) {
            snprintf(path, sizeof path, "/v1/tasks/%s", id);
            free(id);
            return simple(&c, "GET", path, print_task);
        }
        if (strcmp(sub, "units") == 0) {
            snprintf(path, sizeof path, "/v1/tasks/%s/units", id);
            free(id);
            c.opts[1].set = 1; /* always JSON */
            return simple(&c, "GET", path, print_ok);
        }
        snprintf(path, sizeof path, "/v1/tasks/%s/%s", id, sub);
        free(id);
        return simple(&c, strcmp(sub, "why") == 0 ? "GET" : "POST", path,
                      strcmp(sub, "why") == 0 ? print_why : print_ok);
    }
    if (strcmp(sub, "wait") == 0) {
        struct cli_opt opts[] = {ADDR_OPT,
                                 {"timeout", 1, "give up after this long", NULL, 0},
                                 {"quiet", 0, "no progress bar", NULL, 0},
                                 {NULL}};
        struct cli_cmd c = {"task wait",
                            "ID",
                            "Wait for a task to finish (exit 0: every host ok; 1: not; 3: "
                            "timed out).",
                            opts,
                            1,
                            1};
        long long t = 0;
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        if (cli_val(&c, "timeout") && (t = cli_duration_ms(cli_val(&c, "timeout"))) < 0) {
            cli_die_usage(&c, "--timeout: use 30s, 10m, ...");
        }
        id = cli_escape(pos[0], 0);
        npos = wait_task(&c, id, t, cli_flag(&c, "quiet"));
        free(id);
        return npos;
    }
    if (strcmp(sub, "results") == 0) {
        struct cli_opt opts[] = {
            ADDR_OPT,
            JSON_OPT,
            {"host", 1, "only this host", NULL, 0},
            {"status", 1, "only this status (ok, failed, timeout, ...)", NULL, 0},
            {NULL}};
        struct cli_cmd c = {"task results", "ID", "Per-host results of a task.", opts, 1, 1};
        char *h, *st;
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        id = cli_escape(pos[0], 0);
        h = cli_escape(cli_val(&c, "host") ? cli_val(&c, "host") : "", 0);
        st = cli_escape(cli_val(&c, "status") ? cli_val(&c, "status") : "", 0);
        snprintf(path, sizeof path, "/v1/tasks/%s/results?host=%s&status=%s", id, h, st);
        free(id);
        free(h);
        free(st);
        return simple(&c, "GET", path, print_results);
    }
    if (strcmp(sub, "logs") == 0) {
        struct cli_opt opts[] = {ADDR_OPT, {NULL}};
        struct cli_cmd c = {"task logs", "ID UNIT", "A unit's streamed output.", opts, 2, 2};
        json_t *out;
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        id = cli_escape(pos[0], 0);
        snprintf(path, sizeof path, "/v1/tasks/%s/units/%s/logs", id, pos[1]);
        free(id);
        return cli_raw(&c, path, &out);
    }
    fprintf(strcmp(sub, "--help") == 0 ? stdout : stderr,
            "usage: flotilla task submit|list|status|wait|units|results|why|logs|cancel ... (each "
            "has --help)\n");
    return strcmp(sub, "--help") == 0 ? 0 : 2;
}

int cmd_results(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT,
                             JSON_OPT,
                             {"hosts", 1, "results of these hosts: a,b,c", NULL, 0},
                             {"host", 1, "every result of one host, across tasks", NULL, 0},
                             {NULL}};
    struct cli_cmd c = {"results", "", "Results by a list of hosts, or by one host.", opts, 0, 0};
    char *pos[1], path[8192], *esc;
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_flag(&c, "hosts") == cli_flag(&c, "host")) {
        cli_die_usage(&c, "give --hosts or --host");
    }
    if (cli_flag(&c, "host")) {
        esc = cli_escape(cli_val(&c, "host"), 0);
        snprintf(path, sizeof path, "/v1/hosts/%s/results", esc);
    } else {
        esc = cli_escape(cli_val(&c, "hosts"), 0);
        snprintf(path, sizeof path, "/v1/results?hosts=%s", esc);
    }
    free(esc);
    return simple(&c, "GET", path, print_results);
}

static int print_dispatch(json_t *out)
{
    printf("dispatch   %s\n", json_is_true(json_object_get(out, "paused")) ? "paused" : "running");
    printf("agents     %lld connected\n", jint(out, "agents_connected"));
    printf("assigned   %lld units, %lld results committed\n", jint(out, "units_assigned"),
           jint(out, "results_committed"));
    return 0;
}

int cmd_dispatch(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    char *pos[1];
    int npos;
    if (strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0) {
        struct cli_cmd c = {strcmp(sub, "pause") == 0 ? "dispatch pause" : "dispatch resume",
                            "",
                            strcmp(sub, "pause") == 0
                                ? "Stop assigning units cluster-wide (running ones go on)."
                                : "Assign units again.",
                            opts,
                            0,
                            0};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        return simple(&c, "POST",
                      strcmp(sub, "pause") == 0 ? "/v1/dispatch/pause" : "/v1/dispatch/resume",
                      print_ok);
    }
    if (strcmp(sub, "status") == 0) {
        struct cli_cmd c = {"dispatch status", "", "Show the dispatcher's state.", opts, 0, 0};
        cli_parse(&c, argc - 1, argv + 1, pos, &npos);
        return simple(&c, "GET", "/v1/dispatch", print_dispatch);
    }
    fprintf(strcmp(sub, "--help") == 0 ? stdout : stderr,
            "usage: flotilla dispatch pause|resume|status (each has --help)\n");
    return strcmp(sub, "--help") == 0 ? 0 : 2;
}
