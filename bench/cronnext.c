/* cronnext: the cost of cron_next, the call the leader's cron clock makes
 * once per fire of every job (bench/cron-next.sh). Each expression is
 * chained through N fire times from a fixed start in each zone; the time
 * per call is the loop's monotonic time over N. Prints one "metric: value
 * unit" line per expression and zone, then the mean over all of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron/cron.h"
#include "common/err.h"
#include "cron/tz.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static const char *exprs[][2] = {
        {"every_minute", "* * * * *"},
        {"every_5min", "*/5 * * * *"},
        {"workdays_9_to_17", "0 9-17 * * MON-FRI"},
        {"nightly_0230", "30 2 * * *"},
        {"every_10s", "*/10 * * * * *"},
        {"leap_day", "0 0 29 2 *"},
    };
    static const char *zones[] = {"UTC", "Europe/Berlin", "America/New_York"};
    long n = argc > 1 ? atol(argv[1]) : 200000;
    double total = 0;
    int cells = 0;
    char msg[FL_ERRMSG_SIZE];
    if (n <= 0) {
        fprintf(stderr, "usage: cronnext [CALLS]\n");
        return 2;
    }
    for (size_t zi = 0; zi < sizeof zones / sizeof zones[0]; zi++) {
        struct fl_tz *z = NULL;
        if (fl_tz_load(zones[zi], &z, msg) != FL_OK) {
            fprintf(stderr, "cronnext: %s\n", msg);
            return 1;
        }
        for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
            struct cron_expr e;
            int64_t t = 1795338000; /* 2026-11-22T09:00:00Z */
            long calls = strcmp(exprs[i][0], "leap_day") == 0 ? n / 100 : n;
            double t0, ns;
            if (cron_parse(exprs[i][1], &e, msg) != FL_OK) {
                fprintf(stderr, "cronnext: %s\n", msg);
                return 1;
            }
            t0 = now_ns();
            for (long k = 0; k < calls; k++) {
                if (cron_next(&e, z, t, &t, msg) != FL_OK) {
                    t = 1795338000; /* ran off the calendar: start over */
                }
            }
            ns = (now_ns() - t0) / (double)calls;
            printf("cron_next_%s_%s: %.0f ns\n", exprs[i][0],
                   zones[zi][0] == 'U'   ? "utc"
                   : zones[zi][0] == 'E' ? "berlin"
                                         : "new_york",
                   ns);
            total += ns;
            cells++;
        }
        fl_tz_destroy(z);
    }
    printf("cron_next_mean: %.0f ns\n", total / cells);
    return 0;
}
