/* Small helpers of the executors (agent/exec_int.h): the output tail ring,
 * string vectors for argv and the environment, mkdir -p, and the check
 * whether a process group still has a live member. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/exec_int.h"
#include "common/alloc.h"
#include "common/err.h"

/* ---- tail ------------------------------------------------------------------ */

int exec__tail_init(struct exec__tail *t, size_t cap)
{
    t->buf = fl_malloc(cap ? cap : 1);
    t->cap = cap;
    t->len = 0;
    t->head = 0;
    return t->buf ? FL_OK : FL_ENOMEM;
}

void exec__tail_close(struct exec__tail *t)
{
    fl_free(t->buf);
    t->buf = NULL;
    t->cap = t->len = t->head = 0;
}

void exec__tail_write(struct exec__tail *t, const void *p, size_t n)
{
    const uint8_t *b = p;
    if (t->cap == 0) {
        return;
    }
    if (n >= t->cap) { /* only the last cap bytes matter */
        memcpy(t->buf, b + n - t->cap, t->cap);
        t->head = 0;
        t->len = t->cap;
        return;
    }
    while (n > 0) {
        size_t room = t->cap - t->head;
        size_t k = n < room ? n : room;
        memcpy(t->buf + t->head, b, k);
        t->head = (t->head + k) % t->cap;
        b += k;
        n -= k;
        t->len = t->len + k > t->cap ? t->cap : t->len + k;
    }
}

char *exec__tail_copy(const struct exec__tail *t, size_t *len)
{
    char *s = fl_malloc(t->len + 1);
    size_t start;
    if (s == NULL) {
        return NULL;
    }
    start = (t->head + t->cap - t->len) % (t->cap ? t->cap : 1);
    if (start + t->len <= t->cap) {
        memcpy(s, t->buf + start, t->len);
    } else {
        size_t first = t->cap - start;
        memcpy(s, t->buf + start, first);
        memcpy(s + first, t->buf, t->len - first);
    }
    s[t->len] = '\0';
    *len = t->len;
    return s;
}

char *exec__tail_of(const void *p, size_t n, size_t cap, size_t *len)
{
    const char *b = p;
    size_t k = n > cap ? cap : n;
    char *s = fl_malloc(k + 1);
    if (s == NULL) {
        return NULL;
    }
    if (k > 0) {
        memcpy(s, b + n - k, k);
    }
    s[k] = '\0';
    *len = k;
    return s;
}

/* ---- string vectors ---------------------------------------------------------- */

void exec__strv_init(struct exec__strv *s)
{
    s->v = NULL;
    s->own = NULL;
    s->n = 0;
    s->cap = 0;
}

void exec__strv_close(struct exec__strv *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->own[i]) {
            fl_free(s->v[i]);
        }
    }
    fl_free(s->v);
    fl_free(s->own);
    exec__strv_init(s);
}

static int strv_grow(struct exec__strv *s)
{
    size_t cap = s->cap ? s->cap * 2 : 16;
    char **v;
    unsigned char *own;
    if (s->n + 2 <= s->cap) {
        return FL_OK;
    }
    v = fl_realloc(s->v, cap * sizeof *v);
    if (v == NULL) {
        return FL_ENOMEM;
    }
    s->v = v;
    own = fl_realloc(s->own, cap);
    if (own == NULL) {
        return FL_ENOMEM;
    }
    s->own = own;
    s->cap = cap;
    return FL_OK;
}

/* Put str (owned if own) at index i, or append when i == s->n. */
static int strv_put(struct exec__strv *s, size_t i, char *str, int own)
{
    if (i == s->n) {
        if (strv_grow(s) != FL_OK) {
            if (own) {
                fl_free(str);
            }
            return FL_ENOMEM;
        }
        s->n++;
        s->v[s->n] = NULL;
    } else if (s->own[i]) {
        fl_free(s->v[i]);
    }
    s->v[i] = str;
    s->own[i] = (unsigned char)own;
    return FL_OK;
}

int exec__strv_push(struct exec__strv *s, const char *str, int copy)
{
    char *p = copy ? fl_strdup(str) : (char *)(uintptr_t)str;
    if (p == NULL) {
        return FL_ENOMEM;
    }
    return strv_put(s, s->n, p, copy);
}

/* Index of the entry with kv's NAME, or s->n. */
static size_t env_find(const struct exec__strv *s, const char *kv)
{
    size_t name = (size_t)(strchr(kv, '=') - kv);
    for (size_t i = 0; i < s->n; i++) {
        if (strncmp(s->v[i], kv, name + 1) == 0) {
            return i;
        }
    }
    return s->n;
}

int exec__strv_setenv(struct exec__strv *s, const char *kv, int copy)
{
    char *p;
    if (strchr(kv, '=') == NULL || kv[0] == '=') {
        return FL_EINVAL;
    }
    p = copy ? fl_strdup(kv) : (char *)(uintptr_t)kv;
    if (p == NULL) {
        return FL_ENOMEM;
    }
    return strv_put(s, env_find(s, kv), p, copy);
}

int exec__strv_pushf(struct exec__strv *s, int env, const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return FL_EINVAL;
    }
    p = fl_malloc((size_t)n + 1);
    if (p == NULL) {
        return FL_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (env && strchr(p, '=') != NULL) {
        return strv_put(s, env_find(s, p), p, 1);
    }
    return strv_put(s, s->n, p, 1);
}

/* ---- files and processes ---------------------------------------------------------- */

int exec__mkdirp(const char *path, char *errmsg)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        return fl_errf(errmsg, FL_EINVAL, "workdir: bad path length %zu", n);
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') {
            continue;
        }
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            return fl_errf(errmsg, FL_EIO, "workdir: mkdir %s: %s", buf, strerror(errno));
        }
        buf[i] = path[i];
    }
    return FL_OK;
}

/* State and process group of /proc/PID/stat: "pid (comm) S ppid pgrp ...";
 * comm may hold spaces and parentheses, so parse after the last ')'. */
static int proc_stat(const char *pid, char *state, int *pgrp)
{
    char path[64], buf[512];
    const char *p;
    ssize_t n;
    int fd;
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %c %*d %d", state, pgrp) != 2) {
        return -1;
    }
    return 0;
}

int exec__group_alive(int pgid)
{
    DIR *d;
    struct dirent *de;
    int alive = 0;
    if (pgid <= 0) {
        return 0;
    }
    /* The common case costs one system call. */
    if (kill(-pgid, 0) != 0 && errno == ESRCH) {
        return 0;
    }
    /* Something is there: it may be zombies waiting for init to reap them,
     * which can no longer run or hold our pipes. Look closer. */
    d = opendir("/proc");
    if (d == NULL) {
        return 1;
    }
    while (!alive && (de = readdir(d)) != NULL) {
        char state;
        int pgrp;
        if (de->d_name[0] < '1' || de->d_name[0] > '9') {
            continue;
        }
        if (proc_stat(de->d_name, &state, &pgrp) == 0 && pgrp == pgid && state != 'Z' &&
            state != 'X') {
            alive = 1;
        }
    }
    closedir(d);
    return alive;
}
