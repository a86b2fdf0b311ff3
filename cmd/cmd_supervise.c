/* flotilla supervise — the bootloader of an application's workers
 * (deploy/supervise.h has the behaviour; docs/DEPLOY.md the how-to). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "common/err.h"
#include "deploy/supervise.h"

static unsigned long num(struct cli_cmd *c, const char *name, unsigned long lo, unsigned long hi)
{
    const char *s = cli_val(c, name);
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || v < lo || v > hi) {
        cli_die_usage(c, "--%s must be a number from %lu to %lu", name, lo, hi);
    }
    return v;
}

static uint64_t dur(struct cli_cmd *c, const char *name)
{
    long long ms = cli_duration_ms(cli_val(c, name));
    if (ms < 0) {
        cli_die_usage(c, "--%s: a duration such as 500ms, 10s, 2m", name);
    }
    return (uint64_t)ms;
}

static void copy_opt(struct cli_cmd *c, const char *name, char *out, size_t size)
{
    const char *v = cli_val(c, name);
    if (v != NULL && strlen(v) >= size) {
        cli_die_usage(c, "--%s is longer than %zu bytes", name, size - 1);
    }
    snprintf(out, size, "%s", v ? v : "");
}

int cmd_supervise(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"app", 1, "application name (names the log file ROOT/logs/APP.log)", NULL, 0},
        {"root", 1, "application root: ROOT/releases/<version>, ROOT/current", NULL, 0},
        {"reload-exit-code", 1, "exit code on which a worker is restarted at once", "75", 0},
        {"workers", 1, "number of worker processes", "1", 0},
        {"control", 1, "control socket (default ROOT/supervise.sock)", NULL, 0},
        {"reload-batch", 1, "workers restarted at a time by reload", "1", 0},
        {"ready", 1, "a restarted worker counts as back up after this long", "300ms", 0},
        {"backoff-min", 1, "first restart delay after a crash", "200ms", 0},
        {"backoff-max", 1, "longest restart delay", "30s", 0},
        {"stable", 1, "uptime after which the backoff starts over", "10s", 0},
        {"stop-grace", 1, "SIGKILL workers still running this long after SIGTERM", "10s", 0},
        {"log-max", 1, "rotate the log file past this many bytes", "10485760", 0},
        {"log-keep", 1, "rotated log files kept", "3", 0},
        {NULL}};
    struct cli_cmd c = {"supervise",
                        "-- CMD [ARGS...]",
                        "Run N workers of CMD from ROOT/current; restart them with backoff when "
                        "they crash and at once on the reload exit code; rolling reload and "
                        "status over the control socket (lines \"reload\", \"status\"); forward "
                        "SIGTERM/SIGINT/SIGHUP; capture output in ROOT/logs/APP.log.",
                        opts,
                        0,
                        0};
    struct deploy_sup_config sc;
    char err[FL_ERRMSG_SIZE], *pos[1];
    int npos, dash = argc, rv;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            dash = i;
            break;
        }
    }
    cli_parse(&c, dash, argv, pos, &npos);
    if (dash >= argc - 1) {
        cli_die_usage(&c, "give the command to run after --");
    }
    if (!cli_flag(&c, "app") || !cli_flag(&c, "root")) {
        cli_die_usage(&c, "--app and --root are required");
    }
    deploy_sup_config_init(&sc);
    copy_opt(&c, "app", sc.app, sizeof sc.app);
    copy_opt(&c, "root", sc.root, sizeof sc.root);
    copy_opt(&c, "control", sc.control, sizeof sc.control);
    sc.argv = argv + dash + 1;
    sc.reload_exit_code = (int)num(&c, "reload-exit-code", 1, 255);
    sc.workers = (unsigned)num(&c, "workers", 1, DEPLOY_SUP_WORKERS_MAX);
    sc.reload_batch = (unsigned)num(&c, "reload-batch", 1, DEPLOY_SUP_WORKERS_MAX);
    sc.ready_ms = dur(&c, "ready");
    sc.backoff_min_ms = dur(&c, "backoff-min");
    sc.backoff_max_ms = dur(&c, "backoff-max");
    sc.stable_ms = dur(&c, "stable");
    sc.stop_grace_ms = dur(&c, "stop-grace");
    sc.log_max_bytes = num(&c, "log-max", 0, 1ul << 40);
    sc.log_keep = (unsigned)num(&c, "log-keep", 0, 100);
    if (deploy_sup_config_check(&sc, err) != FL_OK) {
        cli_die_usage(&c, "%s", err);
    }
    rv = deploy_sup_run(&sc, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla supervise: %s\n", err);
        return 1;
    }
    return 0;
}
