/* The raft flight recorder: raft's own diagnostic lines kept in a ring in
 * memory and written to stderr when the process aborts (an assertion inside
 * raft or Flotilla), so the last steps before a failure are in the server's
 * log. Off unless FLOTILLA_RAFT_TRACE is set to a level (1 error .. 5 trace);
 * with it unset raft formats nothing (raft-notes §2). */
#include "raft/rg_trace.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

#define RING_LINES   2048
#define LINE_MAX_LEN 240

static char ring[RING_LINES][LINE_MAX_LEN];
static unsigned ring_next;
static unsigned ring_used;
static int trace_level;

static void emit(struct raft_tracer *t, int type, const void *info)
{
    const struct raft_tracer_info *ti = info;
    (void)t;
    if (type != RAFT_TRACER_DIAGNOSTIC || ti == NULL)
        return;
    if (ti->diagnostic.level > trace_level)
        return;
    const char *file = ti->diagnostic.file ? ti->diagnostic.file : "?";
    const char *slash = strrchr(file, '/');
    if (slash != NULL)
        file = slash + 1;
    snprintf(ring[ring_next], LINE_MAX_LEN, "%llu %d %s:%d %s\n", (unsigned long long)fl_wall_ms(),
             ti->diagnostic.level, file, ti->diagnostic.line,
             ti->diagnostic.message ? ti->diagnostic.message : "");
    ring_next = (ring_next + 1) % RING_LINES;
    if (ring_used < RING_LINES)
        ring_used++;
}

static struct raft_tracer recorder = {NULL, 2, emit};

static void write_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

void rg_trace_dump(void)
{
    static const char head[] = "---- raft flight recorder (oldest first) ----\n";
    static const char tail[] = "---- end of raft flight recorder ----\n";
    write_all(head, sizeof head - 1);
    unsigned start = (ring_next + RING_LINES - ring_used) % RING_LINES;
    for (unsigned i = 0; i < ring_used; i++) {
        const char *line = ring[(start + i) % RING_LINES];
        write_all(line, strnlen(line, LINE_MAX_LEN));
    }
    write_all(tail, sizeof tail - 1);
}

static void on_abort(int sig)
{
    rg_trace_dump();
    signal(sig, SIG_DFL);
    raise(sig);
}

struct raft_tracer *rg_trace_tracer(void)
{
    static int checked;
    if (!checked) {
        checked = 1;
        const char *v = getenv("FLOTILLA_RAFT_TRACE");
        if (v != NULL && *v != '\0') {
            trace_level = atoi(v);
            if (trace_level < 1)
                trace_level = 5;
            signal(SIGABRT, on_abort);
        }
    }
    return trace_level > 0 ? &recorder : NULL;
}
