/* flotilla deploy-target: one machine's deploy of a package version
 * (deploy/target.h, docs/DEPLOY.md "One target"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "common/alloc.h"
#include "common/blob.h"
#include "common/clock.h"
#include "common/err.h"
#include "deploy/delta.h"
#include "deploy/target.h"

static void print_step(void *data, const struct deploy_step *s)
{
    int json = *(int *)data;
    if (!json) {
        printf("%-11s %-7s %6llu ms  %s\n", s->name,
               s->ok > 0 ? "ok" : s->ok == 0 ? "FAILED" : "skipped", (unsigned long long)s->ms,
               s->detail);
        fflush(stdout);
    }
}

static json_t *report_json(const struct deploy_target *t, const struct deploy_target_report *r)
{
    json_t *steps = json_array();
    const struct deploy_acquire_stats *a = &r->acquire;
    for (unsigned i = 0; i < r->n_steps; i++) {
        const struct deploy_step *s = &r->steps[i];
        json_array_append_new(steps, json_pack("{s:s, s:s, s:I, s:s}", "step", s->name, "status",
                                               s->ok > 0    ? "ok"
                                               : s->ok == 0 ? "failed"
                                                            : "skipped",
                                               "ms", (json_int_t)s->ms, "detail", s->detail));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:{s:s, s:I, s:I, s:I, s:I, s:s}}",
                     "app", t->app, "version", t->version, "result",
                     deploy_target_result_name(r->result), "previous", r->previous, "current",
                     r->current, "ms", (json_int_t)r->total_ms, "steps", steps, "acquire",
                     "method",
                     a->method == DEPLOY_FETCH_DELTA   ? "delta"
                     : a->method == DEPLOY_FETCH_WHOLE ? "whole"
                                                       : "cached",
                     "size", (json_int_t)t->want.size, "bytes_received",
                     (json_int_t)a->bytes_received, "signature_bytes", (json_int_t)a->sig_bytes,
                     "delta_bytes", (json_int_t)a->delta_bytes, "delta_refused",
                     a->delta_refused);
}

int cmd_deploy_target(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"addr", 1, "API address for the package's metadata (default $FLOTILLA_ADDR)", NULL, 0},
        {"app", 1, "application name (hooks' FLOTILLA_APP)", NULL, 0},
        {"root", 1, "application root: ROOT/releases/<version>, ROOT/current", NULL, 0},
        {"from", 1, "blob link address(es) of the servers, host:port[,host:port]", NULL, 0},
        {"key", 1, "cluster key file (default $FLOTILLA_KEY_FILE)", NULL, 0},
        {"name", 1, "who this machine is on the blob link", "deploy-target", 0},
        {"hash", 1, "the package's BLAKE2b-256 (with --size: no API call, no token needed)", NULL, 0},
        {"size", 1, "the package's size in bytes (with --hash)", NULL, 0},
        {"pre-hook", 1, "shell command run in the new release before the switch", NULL, 0},
        {"post-hook", 1, "shell command run after the health check", NULL, 0},
        {"health", 1, "shell command that exits 0 when the app is healthy", NULL, 0},
        {"health-http", 1, "URL that answers 2xx when the app is healthy", NULL, 0},
        {"health-timeout", 1, "how long the app has to become healthy", "30s", 0},
        {"reload-timeout", 1, "how long supervise has to bring the workers back", "10m", 0},
        {"keep", 1, "releases kept on disk (current and previous always stay)", "5", 0},
        {"json", 0, "print the report as JSON", NULL, 0},
        {NULL}};
    struct cli_cmd c = {
        "deploy-target", "NAME@VERSION",
        "Deploy a package version on this machine: acquire (delta against the release in "
        "service when it pays), verify, unpack, pre-hook, switch current, reload supervise, "
        "health check, post-hook; roll back on a failure after the switch. Exit 0 deployed, "
        "1 refused (nothing changed), 3 rolled back, 4 rolled back failed.",
        opts, 1, 1};
    char *pos[1], name[128], ver[256], from[1024];
    const char *srcs[16];
    unsigned n_src = 0;
    unsigned char key[32];
    uint8_t *chunks = NULL;
    struct deploy_target t;
    struct deploy_target_report r;
    long long health_ms, reload_ms;
    int npos, json;
    cli_parse(&c, argc, argv, pos, &npos);
    if (!cli_val(&c, "app") || !cli_val(&c, "root") || !cli_val(&c, "from")) {
        cli_die_usage(&c, "--app, --root and --from are required");
    }
    if (cli_val(&c, "health") && cli_val(&c, "health-http")) {
        cli_die_usage(&c, "--health and --health-http exclude each other");
    }
    health_ms = fl_duration_ms(cli_val(&c, "health-timeout"));
    reload_ms = fl_duration_ms(cli_val(&c, "reload-timeout"));
    if (health_ms <= 0 || reload_ms <= 0) {
        cli_die_usage(&c, "--health-timeout and --reload-timeout take a duration (30s, 5m)");
    }
    int keep = atoi(cli_val(&c, "keep"));
    if (keep < 1 || keep > 1000) {
        cli_die_usage(&c, "--keep takes 1..1000");
    }
    if ((cli_val(&c, "hash") == NULL) != (cli_val(&c, "size") == NULL)) {
        cli_die_usage(&c, "--hash and --size go together");
    }
    cli_load_key(&c, key);
    snprintf(from, sizeof from, "%s", cli_val(&c, "from"));
    for (char *save = NULL, *s = strtok_r(from, ",", &save); s && n_src < 16;
         s = strtok_r(NULL, ",", &save)) {
        srcs[n_src++] = s;
    }
    if (cli_val(&c, "hash") != NULL) {
        /* Everything from the blob link: the chunk hashes of that content. */
        uint8_t h[BLOB_HASH_BYTES];
        char *end = NULL, err[FL_ERRMSG_SIZE];
        const char *at = strchr(pos[0], '@');
        unsigned long long size = strtoull(cli_val(&c, "size"), &end, 10);
        struct schan_identity self;
        if (at == NULL || at == pos[0] || (size_t)(at - pos[0]) >= sizeof name ||
            strlen(at + 1) >= sizeof ver) {
            cli_die_usage(&c, "expected NAME@VERSION, got %s", pos[0]);
        }
        if (!blob_unhex(cli_val(&c, "hash"), h)) {
            cli_die_usage(&c, "--hash takes 64 hex digits");
        }
        if (end == NULL || *end != '\0' || cli_val(&c, "size")[0] == '\0') {
            cli_die_usage(&c, "--size takes a number of bytes");
        }
        snprintf(name, sizeof name, "%.*s", (int)(at - pos[0]), pos[0]);
        snprintf(ver, sizeof ver, "%s", at + 1);
        memset(&self, 0, sizeof self);
        self.role = SCHAN_ROLE_CLIENT;
        snprintf(self.name, sizeof self.name, "%s", cli_val(&c, "name"));
        if (blob_want_fetch(srcs, n_src, key, &self, h, size, &t.want, &chunks, err) != FL_OK) {
            fprintf(stderr, "flotilla deploy-target: %s\n", err);
            return 1;
        }
    } else if (cli_package_want(&c, pos[0], name, sizeof name, ver, sizeof ver, &t.want,
                                &chunks) != 0) {
        return 1;
    }
    json = cli_flag(&c, "json");
    struct blob_want want = t.want;
    memset(&t, 0, sizeof t);
    t.want = want;
    t.app = cli_val(&c, "app");
    t.root = cli_val(&c, "root");
    t.package = name;
    t.version = ver;
    t.sources = srcs;
    t.n_sources = n_src;
    t.key = key;
    t.self.role = SCHAN_ROLE_CLIENT;
    snprintf(t.self.name, sizeof t.self.name, "%s", cli_val(&c, "name"));
    t.pre_hook = cli_val(&c, "pre-hook");
    t.post_hook = cli_val(&c, "post-hook");
    t.health_cmd = cli_val(&c, "health");
    t.health_http = cli_val(&c, "health-http");
    t.health_timeout_ms = (uint64_t)health_ms;
    t.reload_timeout_ms = (uint64_t)reload_ms;
    t.keep = (unsigned)keep;
    t.on_step = print_step;
    t.data = &json;
    deploy_target_run(&t, &r);
    fl_free(chunks);
    if (json) {
        json_t *o = report_json(&t, &r);
        char *txt = json_dumps(o, JSON_COMPACT);
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
    } else {
        printf("%s@%s: %s (in service: %s) in %llu ms\n", name, ver,
               deploy_target_result_name(r.result), r.current[0] ? r.current : "nothing",
               (unsigned long long)r.total_ms);
    }
    switch (r.result) {
    case DEPLOY_TARGET_DEPLOYED: return 0;
    case DEPLOY_TARGET_REFUSED: return 1;
    case DEPLOY_TARGET_ROLLED_BACK: return 3;
    default: return 4;
    }
}
