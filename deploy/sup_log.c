/* deploy/supervise — the workers' log file with size-based rotation.
 *
 * Writes are plain write(2) calls from the loop: a line is at most
 * SUP_LINE_MAX bytes and the file is local, so a write does not block for
 * long, and an append of one line is never interleaved with another. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "deploy/deploy_int.h"
#include "deploy/sup_int.h"

static int open_file(struct sup_log *l, char *errmsg)
{
    struct stat st;
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        return deploy__errno(errmsg, errno, "open log", l->path);
    }
    l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return FL_OK;
}

int sup_log_open(struct sup_log *l, const char *root, const char *app, uint64_t max, unsigned keep,
                 char *errmsg)
{
    char dir[PATH_MAX];
    int n;
    l->fd = -1;
    l->max = max;
    l->keep = keep;
    n = snprintf(dir, sizeof dir, "%s/logs", root);
    if (n < 0 || n >= (int)sizeof dir ||
        snprintf(l->path, sizeof l->path, "%s/%s.log", dir, app) >= (int)sizeof l->path) {
        return fl_errf(errmsg, FL_ETOOBIG, "log path too long under %s", root);
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return deploy__errno(errmsg, errno, "create", dir);
    }
    return open_file(l, errmsg);
}

/* APP.log.(k-1) -> APP.log.k down to APP.log -> APP.log.1; the oldest is
 * overwritten. keep 0: the file is truncated instead. */
static void rotate(struct sup_log *l)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    close(l->fd);
    l->fd = -1;
    for (unsigned k = l->keep; k >= 1; k--) {
        if (k == 1) {
            snprintf(from, sizeof from, "%s", l->path);
        } else {
            snprintf(from, sizeof from, "%s.%u", l->path, k - 1);
        }
        snprintf(to, sizeof to, "%s.%u", l->path, k);
        (void)rename(from, to);
    }
    if (l->keep == 0) {
        (void)truncate(l->path, 0);
    }
    (void)open_file(l, NULL);
}

void sup_log_line(struct sup_log *l, const char *tag, const char *text, size_t n)
{
    char line[SUP_LINE_MAX + 128];
    uint64_t ms = fl_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    size_t off;
    if (l->fd < 0) {
        return;
    }
    gmtime_r(&secs, &tm);
    off = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    off +=
        (size_t)snprintf(line + off, sizeof line - off, ".%03uZ [%s] ", (unsigned)(ms % 1000), tag);
    if (n > sizeof line - off - 1) {
        n = sizeof line - off - 1;
    }
    memcpy(line + off, text, n);
    off += n;
    line[off++] = '\n';
    if (write(l->fd, line, off) == (ssize_t)off) {
        l->size += off;
    }
    if (l->max != 0 && l->size >= l->max) {
        rotate(l);
    }
}

void sup_log_printf(struct sup_log *l, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    sup_log_line(l, "supervise", text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

void sup_log_close(struct sup_log *l)
{
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}
