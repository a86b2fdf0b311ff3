#include "common/crashpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One armed point per kind, from "NAME[:N]" in an environment variable. */
struct point {
    const char *env;
    int armed; /* -1 not read yet, 0 off, 1 on */
    char want[64];
    long want_hits;
    long hits;
};

static struct point crash = {"FLOTILLA_CRASHPOINT", -1, "", 1, 0};
static struct point drop = {"FLOTILLA_DROPPOINT", -1, "", 1, 0};

static void arm(struct point *p)
{
    const char *v = getenv(p->env);
    const char *colon;
    size_t n;
    p->armed = 0;
    if (v == NULL || *v == '\0') {
        return;
    }
    colon = strchr(v, ':');
    n = colon ? (size_t)(colon - v) : strlen(v);
    if (n == 0 || n >= sizeof p->want) {
        return;
    }
    memcpy(p->want, v, n);
    p->want[n] = '\0';
    if (colon != NULL) {
        p->want_hits = strtol(colon + 1, NULL, 10);
        if (p->want_hits < 1) {
            p->want_hits = 1;
        }
    }
    p->armed = 1;
}

/* 1 exactly when this call is the N-th to reach the armed point. */
static int reached(struct point *p, const char *name)
{
    if (p->armed == 0) {
        return 0;
    }
    if (p->armed < 0) {
        arm(p);
        if (p->armed == 0) {
            return 0;
        }
    }
    if (strcmp(name, p->want) != 0) {
        return 0;
    }
    return ++p->hits == p->want_hits;
}

static void say(const char *kind, const char *name, long hit)
{
    char msg[160];
    int len =
        snprintf(msg, sizeof msg, "flotilla: %s point %s reached (hit %ld)\n", kind, name, hit);
    if (len > 0) {
        (void)!write(2, msg, (size_t)len);
    }
}

void fl_crashpoint(const char *name)
{
    if (!reached(&crash, name)) {
        return;
    }
    say("crash", name, crash.hits);
    kill(getpid(), SIGKILL);
    _exit(137);
}

int fl_droppoint(const char *name)
{
    if (!reached(&drop, name)) {
        return 0;
    }
    say("drop", name, drop.hits);
    return 1;
}
