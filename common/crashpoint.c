#include "common/crashpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int armed = -1; /* -1 not read yet, 0 off, 1 on */
static char want[64];
static long want_hits = 1;
static long hits;

static void arm(void)
{
    const char *v = getenv("FLOTILLA_CRASHPOINT");
    const char *colon;
    size_t n;
    armed = 0;
    if (v == NULL || *v == '\0') {
        return;
    }
    colon = strchr(v, ':');
    n = colon ? (size_t)(colon - v) : strlen(v);
    if (n == 0 || n >= sizeof want) {
        return;
    }
    memcpy(want, v, n);
    want[n] = '\0';
    if (colon != NULL) {
        want_hits = strtol(colon + 1, NULL, 10);
        if (want_hits < 1) {
            want_hits = 1;
        }
    }
    armed = 1;
}

void fl_crashpoint(const char *name)
{
    char msg[160];
    int len;
    if (armed == 0) {
        return;
    }
    if (armed < 0) {
        arm();
        if (armed == 0) {
            return;
        }
    }
    if (strcmp(name, want) != 0 || ++hits < want_hits) {
        return;
    }
    len = snprintf(msg, sizeof msg, "flotilla: crash point %s reached (hit %ld)\n", name, hits);
    if (len > 0) {
        (void)!write(2, msg, (size_t)len);
    }
    kill(getpid(), SIGKILL);
    _exit(137);
}
