/* flotilla deploy-target: one machine's deploy of a package version
 * (deploy/target.h, docs/DEPLOY.md "One target"). With --events it speaks to
 * the agent's deploy executor: JSON lines on stdout as the steps begin and
 * end, then the report (docs/DEPLOY.md, "Events"). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "common/alloc.h"
#include "blob/blob.h"
#include "common/clock.h"
#include "common/err.h"
#include "deploy/delta.h"
#include "deploy/target.h"

/* The report line stays under this: a server keeps the last 4,096 bytes of a
 * unit's output as its result, and a rollout reads the report from there. */
#define REPORT_LINE_MAX 3500
#define FIELD_MAX       128 /* app, version, previous, current in the report */

/* SIGTERM (the agent cancelling the unit) or SIGINT: deploy_target_run stops
 * at the next step and puts the old release back if it had switched. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct out {
    int json;     /* --json: the report at the end */
    FILE *events; /* --events: where the lines go (stdout as it was), else NULL */
};

/* s as at most max bytes of valid UTF-8 on one line, into out (max + 1
 * bytes): control characters become spaces, bytes that are not UTF-8 '?', a
 * character that would cross max is left out. Jansson takes only UTF-8. */
static void clean(const char *s, size_t max, char *out)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t o = 0;
    while (*p != '\0') {
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xE0) == 0xC0 ? 2
                   : (*p & 0xF0) == 0xE0 ? 3
                   : (*p & 0xF8) == 0xF0 ? 4
                                         : 0;
        uint32_t cp = n == 2 ? *p & 0x1Fu : n == 3 ? *p & 0x0Fu : *p & 0x07u;
        size_t i = 1;
        for (; i < n && (p[i] & 0xC0) == 0x80; i++) {
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        if (n > 1 &&
            (i < n || (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
             (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))) {
            n = 0;
        }
        if (o + (n ? n : 1) > max) {
            break;
        }
        if (n == 0) {
            out[o++] = '?';
            p++;
        } else if (n == 1) {
            out[o++] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
            p++;
        } else {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        }
    }
    out[o] = '\0';
}

/* A JSON string of s, cleaned, at most max bytes; longer text is cut and
 * ends with "...". */
static json_t *jstr(const char *s, size_t max)
{
    char buf[512];
    size_t len = s != NULL ? strlen(s) : 0;
    if (max >= sizeof buf) {
        max = sizeof buf - 1;
    }
    if (len > max && max >= 3) {
        clean(s, max - 3, buf);
        strcat(buf, "...");
    } else {
        clean(s, max, buf);
    }
    return json_string(buf);
}

static const char *step_status(const struct deploy_step *s)
{
    return s->ok > 0 ? "ok" : s->ok == 0 ? "failed" : "skipped";
}

/* One JSON line on the events stream, flushed. Takes o. */
static void emit(FILE *f, json_t *o)
{
    char *txt = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    if (txt != NULL) {
        fprintf(f, "%s\n", txt);
        fflush(f);
    }
    free(txt);
    json_decref(o);
}

static void on_begin(void *data, const char *step)
{
    struct out *o = data;
    if (o->events != NULL) {
        emit(o->events, json_pack("{s:s, s:s}", "event", "begin", "step", step));
    }
}

static void print_step(void *data, const struct deploy_step *s)
{
    struct out *o = data;
    if (o->events != NULL) {
        emit(o->events, json_pack("{s:s, s:s, s:s, s:I, s:o}", "event", "step", "step", s->name,
                                  "status", step_status(s), "ms", (json_int_t)s->ms, "detail",
                                  jstr(s->detail, sizeof s->detail - 1)));
    } else if (!o->json) {
        printf("%-11s %-7s %6llu ms  %s\n", s->name,
               s->ok > 0    ? "ok"
               : s->ok == 0 ? "FAILED"
                            : "skipped",
               (unsigned long long)s->ms, s->detail);
        fflush(stdout);
    }
}

/* The --json report; each step's detail at most cut[i] bytes (NULL: whole). */
static json_t *report_json(const struct deploy_target *t, const struct deploy_target_report *r,
                           const size_t *cut)
{
    json_t *steps = json_array();
    const struct deploy_acquire_stats *a = &r->acquire;
    for (unsigned i = 0; i < r->n_steps; i++) {
        const struct deploy_step *s = &r->steps[i];
        json_array_append_new(steps,
                              json_pack("{s:s, s:s, s:I, s:o}", "step", s->name, "status",
                                        step_status(s), "ms", (json_int_t)s->ms, "detail",
                                        jstr(s->detail, cut != NULL ? cut[i] : sizeof s->detail)));
    }
    return json_pack("{s:o, s:o, s:s, s:o, s:o, s:I, s:o, s:{s:s, s:I, s:I, s:I, s:I, s:o}}", "app",
                     jstr(t->app, FIELD_MAX), "version", jstr(t->version, FIELD_MAX), "result",
                     deploy_target_result_name(r->result), "previous", jstr(r->previous, FIELD_MAX),
                     "current", jstr(r->current, FIELD_MAX), "ms", (json_int_t)r->total_ms, "steps",
                     steps, "acquire", "method",
                     a->method == DEPLOY_FETCH_DELTA   ? "delta"
                     : a->method == DEPLOY_FETCH_WHOLE ? "whole"
                                                       : "cached",
                     "size", (json_int_t)t->want.size, "bytes_received",
                     (json_int_t)a->bytes_received, "signature_bytes", (json_int_t)a->sig_bytes,
                     "delta_bytes", (json_int_t)a->delta_bytes, "delta_refused",
                     jstr(a->delta_refused, 200));
}

/* The events' last line: {"event":"report", ...the --json report}, under
 * REPORT_LINE_MAX bytes with the newline: the longest step details are
 * halved until it fits. */
static void emit_report(FILE *f, const struct deploy_target *t,
                        const struct deploy_target_report *r)
{
    size_t cut[DEPLOY_TARGET_STEPS];
    for (unsigned i = 0; i < DEPLOY_TARGET_STEPS; i++) {
        cut[i] = sizeof r->steps[0].detail;
    }
    for (;;) {
        json_t *line = json_pack("{s:s}", "event", "report");
        json_t *rep = report_json(t, r, cut);
        char *txt;
        unsigned longest = 0;
        json_object_update(line, rep);
        json_decref(rep);
        txt = json_dumps(line, JSON_COMPACT);
        json_decref(line);
        for (unsigned i = 0; i < r->n_steps; i++) {
            size_t li = strlen(r->steps[i].detail), ll = strlen(r->steps[longest].detail);
            if ((li < cut[i] ? li : cut[i]) > (ll < cut[longest] ? ll : cut[longest])) {
                longest = i;
            }
        }
        if (txt == NULL || strlen(txt) + 1 < REPORT_LINE_MAX || r->n_steps == 0 ||
            cut[longest] == 0 || r->steps[longest].detail[0] == '\0') {
            fprintf(f, "%s\n", txt != NULL ? txt : "{\"event\":\"report\"}");
            fflush(f);
            free(txt);
            return;
        }
        free(txt);
        if (cut[longest] > strlen(r->steps[longest].detail)) {
            cut[longest] = strlen(r->steps[longest].detail);
        }
        cut[longest] /= 2;
    }
}

/* --events when deploy_target_run never ran: the package could not be had.
 * The step and the report say so, as for a refusal at acquire. */
static void emit_early(FILE *f, const struct deploy_target *t, const char *why, uint64_t t0)
{
    struct deploy_target_report r;
    struct out o;
    memset(&r, 0, sizeof r);
    r.result = DEPLOY_TARGET_REFUSED;
    r.n_steps = 1;
    r.steps[0].name = "acquire";
    r.steps[0].ok = 0;
    r.steps[0].ms = fl_mono_ns() / 1000000 - t0;
    r.total_ms = r.steps[0].ms;
    snprintf(r.steps[0].detail, sizeof r.steps[0].detail, "%s", why);
    o.json = 0;
    o.events = f;
    on_begin(&o, "acquire");
    print_step(&o, &r.steps[0]);
    emit_report(f, t, &r);
}

/* The flags that need checking beyond cli_parse; exits 2 when one is wrong. */
static void target_flags(struct cli_cmd *c, long long *health_ms, long long *reload_ms, int *keep)
{
    if (!cli_val(c, "app") || !cli_val(c, "root") || !cli_val(c, "from")) {
        cli_die_usage(c, "--app, --root and --from are required");
    }
    if (cli_val(c, "health") && cli_val(c, "health-http")) {
        cli_die_usage(c, "--health and --health-http exclude each other");
    }
    if (cli_flag(c, "json") && cli_flag(c, "events")) {
        cli_die_usage(c, "--json and --events exclude each other");
    }
    *health_ms = fl_duration_ms(cli_val(c, "health-timeout"));
    *reload_ms = fl_duration_ms(cli_val(c, "reload-timeout"));
    if (*health_ms <= 0 || *reload_ms <= 0) {
        cli_die_usage(c, "--health-timeout and --reload-timeout take a duration (30s, 5m)");
    }
    *keep = atoi(cli_val(c, "keep"));
    if (*keep < 1 || *keep > 1000) {
        cli_die_usage(c, "--keep takes 1..1000");
    }
    if ((cli_val(c, "hash") == NULL) != (cli_val(c, "size") == NULL)) {
        cli_die_usage(c, "--hash and --size go together");
    }
}

/* --events: the lines go to stdout as it is now; fd 1 becomes stderr, so
 * that what hooks and health commands print cannot break them. Returns 0,
 * or -1 after saying why. */
static int events_open(struct out *o)
{
    int fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
    o->events = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (o->events == NULL || dup2(2, 1) < 0) {
        fprintf(stderr, "flotilla deploy-target: cannot set up --events on stdout\n");
        return -1;
    }
    return 0;
}

/* What to deploy: the package NAME@VERSION of ref into name and ver, its
 * content into t->want and its chunk hashes into *chunks. With --hash and
 * --size everything comes from the blob link (srcs), else the API has the
 * package's record. Returns 0, or 1 (the exit status) after saying why, in
 * an early report too with --events. */
static int target_want(struct cli_cmd *c, const char *ref, const char *const *srcs, unsigned n_src,
                       struct tls_creds *creds, char *name, size_t ncap, char *ver, size_t vcap,
                       struct deploy_target *t, uint8_t **chunks, const struct out *o, uint64_t t0)
{
    if (cli_val(c, "hash") != NULL) {
        /* Everything from the blob link: the chunk hashes of that content. */
        uint8_t h[BLOB_HASH_BYTES];
        char *end = NULL, err[FL_ERRMSG_SIZE];
        const char *at = strchr(ref, '@');
        unsigned long long size = strtoull(cli_val(c, "size"), &end, 10);
        if (at == NULL || at == ref || (size_t)(at - ref) >= ncap || strlen(at + 1) >= vcap) {
            cli_die_usage(c, "expected NAME@VERSION, got %s", ref);
        }
        if (!blob_unhex(cli_val(c, "hash"), h)) {
            cli_die_usage(c, "--hash takes 64 hex digits");
        }
        if (end == NULL || *end != '\0' || cli_val(c, "size")[0] == '\0') {
            cli_die_usage(c, "--size takes a number of bytes");
        }
        snprintf(name, ncap, "%.*s", (int)(at - ref), ref);
        snprintf(ver, vcap, "%s", at + 1);
        if (blob_want_fetch(srcs, n_src, creds, h, size, &t->want, chunks, err) != FL_OK) {
            fprintf(stderr, "flotilla deploy-target: %s\n", err);
            if (o->events != NULL) {
                memset(t, 0, sizeof *t);
                t->app = cli_val(c, "app");
                t->version = ver;
                t->want.size = size;
                emit_early(o->events, t, err, t0);
            }
            return 1;
        }
    } else if (cli_package_want(c, ref, name, ncap, ver, vcap, &t->want, chunks) != 0) {
        if (o->events != NULL) {
            const char *at = strchr(ref, '@');
            memset(t, 0, sizeof *t);
            t->app = cli_val(c, "app");
            t->version = at != NULL ? at + 1 : ref;
            emit_early(o->events, t, "the package's record from the API: see the error output", t0);
        }
        return 1;
    }
    return 0;
}

/* SIGTERM and SIGINT stop the deploy at the next step (stop_requested). */
static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* The report (as events, JSON or a line) and the exit status of a result. */
static int target_report(const struct out *o, const struct deploy_target *t,
                         const struct deploy_target_report *r, const char *name, const char *ver)
{
    if (o->events != NULL) {
        emit_report(o->events, t, r);
    } else if (o->json) {
        json_t *rep = report_json(t, r, NULL);
        char *txt = rep != NULL ? json_dumps(rep, JSON_COMPACT) : NULL;
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(rep);
    } else {
        printf("%s@%s: %s (in service: %s) in %llu ms\n", name, ver,
               deploy_target_result_name(r->result), r->current[0] ? r->current : "nothing",
               (unsigned long long)r->total_ms);
    }
    switch (r->result) {
    case DEPLOY_TARGET_DEPLOYED:
        return 0;
    case DEPLOY_TARGET_REFUSED:
        return 1;
    case DEPLOY_TARGET_ROLLED_BACK:
        return 3;
    default:
        return 4;
    }
}

int cmd_deploy_target(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"addr", 1, "API address for the package's metadata (default $FLOTILLA_ADDR)", NULL, 0},
        {"app", 1, "application name (hooks' FLOTILLA_APP)", NULL, 0},
        {"root", 1, "application root: ROOT/releases/<version>, ROOT/current", NULL, 0},
        {"from", 1, "blob link address(es) of the servers, host:port[,host:port]", NULL, 0},
        CLI_TLS_OPTS,
        {"name", 1, "who this machine is (the agent's name, for messages)", "deploy-target", 0},
        {"hash", 1, "the package's BLAKE2b-256 (with --size: no API call, no token needed)", NULL,
         0},
        {"size", 1, "the package's size in bytes (with --hash)", NULL, 0},
        {"pre-hook", 1, "shell command run in the new release before the switch", NULL, 0},
        {"post-hook", 1, "shell command run after the health check", NULL, 0},
        {"health", 1, "shell command that exits 0 when the app is healthy", NULL, 0},
        {"health-http", 1, "URL that answers 2xx when the app is healthy", NULL, 0},
        {"health-timeout", 1, "how long the app has to become healthy", "30s", 0},
        {"reload-timeout", 1, "how long supervise has to bring the workers back", "10m", 0},
        {"keep", 1, "releases kept on disk (current and previous always stay)", "5", 0},
        {"json", 0, "print the report as JSON", NULL, 0},
        {"events", 0,
         "JSON lines as the steps begin and end, then the report (what an agent reads); what "
         "hooks print goes to stderr",
         NULL, 0},
        {NULL}};
    struct cli_cmd c = {
        "deploy-target",
        "NAME@VERSION",
        "Deploy a package version on this machine: acquire (delta against the release in "
        "service when it pays), verify, unpack, pre-hook, switch current, reload supervise, "
        "health check, post-hook; roll back on a failure after the switch. Exit 0 deployed, "
        "1 refused (nothing changed), 3 rolled back, 4 rolled back failed.",
        opts,
        1,
        1};
    char *pos[1], name[128], ver[256], from[1024];
    const char *srcs[16];
    unsigned n_src = 0;
    struct cli_tls tls;
    uint8_t *chunks = NULL;
    struct deploy_target t;
    struct deploy_target_report r;
    struct out o = {0, NULL};
    long long health_ms, reload_ms;
    uint64_t t0 = fl_mono_ns() / 1000000;
    int npos, keep;
    cli_parse(&c, argc, argv, pos, &npos);
    target_flags(&c, &health_ms, &reload_ms, &keep);
    cli_load_tls(&c, &tls);
    o.json = cli_flag(&c, "json");
    if (cli_flag(&c, "events") && events_open(&o) != 0) {
        return 1;
    }
    snprintf(from, sizeof from, "%s", cli_val(&c, "from"));
    for (char *save = NULL, *s = strtok_r(from, ",", &save); s && n_src < 16;
         s = strtok_r(NULL, ",", &save)) {
        srcs[n_src++] = s;
    }
    if (target_want(&c, pos[0], srcs, n_src, tls.creds, name, sizeof name, ver, sizeof ver, &t,
                    &chunks, &o, t0) != 0) {
        return 1;
    }
    struct blob_want want = t.want;
    memset(&t, 0, sizeof t);
    t.want = want;
    t.app = cli_val(&c, "app");
    t.root = cli_val(&c, "root");
    t.package = name;
    t.version = ver;
    t.sources = srcs;
    t.n_sources = n_src;
    t.creds = tls.creds;
    t.pre_hook = cli_val(&c, "pre-hook");
    t.post_hook = cli_val(&c, "post-hook");
    t.health_cmd = cli_val(&c, "health");
    t.health_http = cli_val(&c, "health-http");
    t.health_timeout_ms = (uint64_t)health_ms;
    t.reload_timeout_ms = (uint64_t)reload_ms;
    t.keep = (unsigned)keep;
    t.on_begin = on_begin;
    t.on_step = print_step;
    t.data = &o;
    t.cancel = &stop_requested;
    catch_stop_signals();
    deploy_target_run(&t, &r);
    fl_free(chunks);
    return target_report(&o, &t, &r, name, ver);
}
