/* flotilla cron next — the next fire times of a cron expression, computed
 * here with the server's own code (cron/cron.h); no server is needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "common/clock.h"
#include "cron/cron.h"
#include "common/err.h"
#include "cron/tz.h"

#define COUNT_MAX 1000

static int count_arg(struct cli_cmd *c)
{
    const char *s = cli_val(c, "count");
    char *end;
    long n = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || n < 1 || n > COUNT_MAX) {
        cli_die_usage(c, "--count must be a number from 1 to %d", COUNT_MAX);
    }
    return (int)n;
}

static int64_t from_arg(struct cli_cmd *c, const struct fl_tz *z)
{
    char err[FL_ERRMSG_SIZE];
    const char *s = cli_val(c, "from");
    int64_t t;
    if (strcmp(s, "now") == 0) {
        return (int64_t)(fl_wall_ms() / 1000);
    }
    if (fl_tz_parse_time(z, s, &t, err) != FL_OK) {
        cli_die_usage(c, "--from: %s", err);
    }
    return t;
}

static void print_times(const struct fl_tz *z, const int64_t *t, int n, int json)
{
    char iso[FL_TZ_ISO_MAX];
    json_t *arr = json ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        fl_tz_format_iso(z, t[i], iso);
        if (arr != NULL) {
            json_array_append_new(arr,
                                  json_pack("{s:s, s:I}", "time", iso, "unix", (json_int_t)t[i]));
        } else {
            printf("%s\n", iso);
        }
    }
    if (arr != NULL) {
        cli_print_json(arr);
        json_decref(arr);
    }
}

static int cron_next_cmd(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"tz", 1, "time zone the expression is read in (IANA name)", "UTC", 0},
        {"from", 1,
         "start after this time: 2026-03-29T01:59:59+01:00, 2026-03-29T00:59:59Z, a local time "
         "in --tz (2026-03-29T01:59:59) or @UNIXSECONDS",
         "now", 0},
        {"count", 1, "how many fire times (1-1000)", "5", 0},
        {"json", 0, "print a JSON array of {\"time\", \"unix\"}", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"cron next",
                        "'EXPR'",
                        "Print the next fire times of a cron expression strictly after --from, in "
                        "ISO 8601 with the zone's offset.\nEXPR has 5 fields, or 6 with seconds "
                        "first, or is a macro such as @daily (docs/CRON.md).\nNeeds no server.",
                        opts,
                        1,
                        1};
    char err[FL_ERRMSG_SIZE];
    char *pos[1];
    int npos, n, rv = FL_OK, k = 0;
    struct cron_expr e;
    struct fl_tz *z;
    int64_t *times, t;

    cli_parse(&c, argc, argv, pos, &npos);
    n = count_arg(&c);
    if (fl_tz_load(cli_val(&c, "tz"), &z, err) != FL_OK) {
        cli_die_usage(&c, "--tz: %s", err);
    }
    if (cron_parse(pos[0], &e, err) != FL_OK) {
        cli_die_usage(&c, "%s", err);
    }
    t = from_arg(&c, z);
    if ((times = calloc((size_t)n, sizeof *times)) == NULL) {
        fprintf(stderr, "flotilla cron next: out of memory\n");
        return 1;
    }
    while (k < n && (rv = cron_next(&e, z, t, &t, err)) == FL_OK) {
        times[k++] = t;
    }
    print_times(z, times, k, cli_flag(&c, "json"));
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla cron next: %s\n", err); /* only past the year 9999 */
    }
    free(times);
    fl_tz_destroy(z);
    return rv == FL_OK ? 0 : 1;
}

int cmd_cron(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "next") == 0) {
        return cron_next_cmd(argc - 1, argv + 1);
    }
    fprintf(argc >= 1 && strcmp(argv[0], "--help") != 0 ? stderr : stdout,
            "usage: flotilla cron next 'EXPR' [--tz ZONE] [--from TIME] [--count N] [--json] "
            "(see --help)\n");
    return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}
