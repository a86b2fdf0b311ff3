#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int threshold = FL_LOG_INFO;
static char who_buf[64] = "flotilla";

void fl_log_init(const char *who)
{
    const char *env = getenv("FLOTILLA_LOG");
    if (who != NULL) {
        snprintf(who_buf, sizeof who_buf, "%s", who);
    }
    if (env != NULL) {
        if (strcmp(env, "error") == 0) {
            threshold = FL_LOG_ERROR;
        } else if (strcmp(env, "warn") == 0) {
            threshold = FL_LOG_WARN;
        } else if (strcmp(env, "debug") == 0) {
            threshold = FL_LOG_DEBUG;
        } else {
            threshold = FL_LOG_INFO;
        }
    }
}

int fl_log_enabled(int level)
{
    return level <= threshold;
}

void fl_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"", "ERROR", "WARN", "INFO", "DEBUG"};
    char line[1024];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (!fl_log_enabled(level)) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof line, "%s.%03ldZ %s %s ", stamp, ts.tv_nsec / 1000000L, who_buf,
                 names[level < 1 || level > 4 ? 3 : level]);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) {
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    }
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
