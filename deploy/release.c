/* deploy/release — releases/<version>, the current and previous links,
 * rollback and retention (deploy/release.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "deploy/deploy_int.h"
#include "deploy/release.h"

#define LINK_PREFIX "releases/"

int deploy__fail_link_rename;

int deploy_release_version_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= DEPLOY_VERSION_MAX || v[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '+' || c == '@' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

static int bad_version(const char *v, char *errmsg)
{
    return fl_errf(errmsg, FL_EINVAL,
                   "\"%.*s\" is not a release version (1-127 bytes of "
                   "A-Z a-z 0-9 . _ + @ -, not starting with '.')",
                   DEPLOY_VERSION_MAX, v);
}

int deploy_release_init(const char *root, char *errmsg)
{
    char dir[PATH_MAX];
    int rv;
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        return deploy__errno(errmsg, errno, "create", root);
    }
    if ((rv = deploy__path(dir, root, "releases", errmsg)) != FL_OK) {
        return rv;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return deploy__errno(errmsg, errno, "create", dir);
    }
    return FL_OK;
}

int deploy_release_dir(const char *root, const char *version, char *out, char *errmsg)
{
    int n;
    if (!deploy_release_version_ok(version)) {
        return bad_version(version, errmsg);
    }
    n = snprintf(out, PATH_MAX, "%s/" LINK_PREFIX "%s", root, version);
    if (n < 0 || n >= PATH_MAX) {
        return fl_errf(errmsg, FL_ETOOBIG, "path too long: %s/releases/%s", root, version);
    }
    return FL_OK;
}

/* ------------------------------------------------------------ links */

static int read_link(const char *root, const char *name, char *version, char *errmsg)
{
    char path[PATH_MAX], target[PATH_MAX];
    struct stat st;
    ssize_t n;
    int rv;
    if ((rv = deploy__path(path, root, name, errmsg)) != FL_OK) {
        return rv;
    }
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? fl_errf(errmsg, FL_ENOTFOUND, "%s has no %s release", root, name)
                               : deploy__errno(errmsg, errno, "stat", path);
    }
    if (!S_ISLNK(st.st_mode)) {
        return fl_errf(errmsg, FL_EINVAL, "%s is not a symbolic link", path);
    }
    n = readlink(path, target, sizeof target - 1);
    if (n < 0) {
        return deploy__errno(errmsg, errno, "read link", path);
    }
    target[n] = '\0';
    if (strncmp(target, LINK_PREFIX, strlen(LINK_PREFIX)) != 0 ||
        !deploy_release_version_ok(target + strlen(LINK_PREFIX))) {
        return fl_errf(errmsg, FL_EINVAL, "%s points to \"%s\", not to releases/<version>", path,
                       target);
    }
    memcpy(version, target + strlen(LINK_PREFIX), strlen(target + strlen(LINK_PREFIX)) + 1);
    return FL_OK;
}

int deploy_release_current(const char *root, char *version, char *errmsg)
{
    return read_link(root, "current", version, errmsg);
}

int deploy_release_previous(const char *root, char *version, char *errmsg)
{
    return read_link(root, "previous", version, errmsg);
}

/* ROOT/NAME -> releases/VERSION, atomically: a new link under a temporary
 * name renamed over the old one. version NULL removes the link. */
static int set_link(const char *root, const char *name, const char *version, char *errmsg)
{
    char path[PATH_MAX], tmp[PATH_MAX], target[PATH_MAX];
    static unsigned seq;
    int rv;
    if ((rv = deploy__path(path, root, name, errmsg)) != FL_OK) {
        return rv;
    }
    if (version == NULL) {
        return unlink(path) == 0 || errno == ENOENT ? FL_OK
                                                    : deploy__errno(errmsg, errno, "remove", path);
    }
    snprintf(target, sizeof target, LINK_PREFIX "%s", version);
    for (int tries = 0;; tries++) {
        if (snprintf(tmp, sizeof tmp, "%s/.%s-%d-%u", root, name, (int)getpid(), seq++) >=
            (int)sizeof tmp) {
            return fl_errf(errmsg, FL_ETOOBIG, "path too long: %s", root);
        }
        if (symlink(target, tmp) == 0) {
            break;
        }
        if (errno != EEXIST || tries > 100) {
            return deploy__errno(errmsg, errno, "create link", tmp);
        }
    }
    if (deploy__fail_link_rename > 0 && --deploy__fail_link_rename == 0) {
        unlink(tmp);
        return fl_errf(errmsg, FL_EIO, "rename %s: injected failure", path);
    }
    if (rename(tmp, path) != 0) {
        rv = deploy__errno(errmsg, errno, "switch link", path);
        unlink(tmp);
        return rv;
    }
    return FL_OK;
}

/* The release directory must be a real directory. */
static int check_release(const char *root, const char *version, char *dir, char *errmsg)
{
    struct stat st;
    int rv;
    if ((rv = deploy_release_dir(root, version, dir, errmsg)) != FL_OK) {
        return rv;
    }
    if (lstat(dir, &st) != 0) {
        return errno == ENOENT ? fl_errf(errmsg, FL_ENOTFOUND, "no release %s in %s", version, root)
                               : deploy__errno(errmsg, errno, "stat", dir);
    }
    if (!S_ISDIR(st.st_mode)) {
        return fl_errf(errmsg, FL_EINVAL, "%s is not a directory", dir);
    }
    return FL_OK;
}

/* Read a link, treating "none" as an empty version. */
static int read_opt(const char *root, const char *name, char *version, char *errmsg)
{
    int rv = read_link(root, name, version, errmsg);
    if (rv == FL_ENOTFOUND) {
        version[0] = '\0';
        return FL_OK;
    }
    return rv;
}

int deploy_release_switch(const char *root, const char *version, char *errmsg)
{
    char dir[PATH_MAX], cur[DEPLOY_VERSION_MAX], prev[DEPLOY_VERSION_MAX];
    int rv;
    if ((rv = check_release(root, version, dir, errmsg)) != FL_OK ||
        (rv = read_opt(root, "current", cur, errmsg)) != FL_OK ||
        (rv = read_opt(root, "previous", prev, errmsg)) != FL_OK) {
        return rv;
    }
    if (strcmp(cur, version) != 0) {
        if (cur[0] != '\0' && (rv = set_link(root, "previous", cur, errmsg)) != FL_OK) {
            return rv;
        }
        if ((rv = set_link(root, "current", version, errmsg)) != FL_OK) {
            if (cur[0] != '\0') {
                (void)set_link(root, "previous", prev[0] ? prev : NULL, NULL);
            }
            return rv;
        }
    }
    (void)utimensat(AT_FDCWD, dir, NULL, 0);
    return FL_OK;
}

int deploy_release_rollback(const char *root, const char *to, char *switched, char *errmsg)
{
    char prev[DEPLOY_VERSION_MAX];
    int rv;
    if (to == NULL) {
        if ((rv = deploy_release_previous(root, prev, errmsg)) != FL_OK) {
            return rv == FL_ENOTFOUND
                       ? fl_errf(errmsg, FL_ENOTFOUND, "%s has no previous release", root)
                       : rv;
        }
        to = prev;
    }
    if ((rv = deploy_release_switch(root, to, errmsg)) != FL_OK) {
        return rv;
    }
    if (switched != NULL) {
        memcpy(switched, to, strlen(to) + 1);
    }
    return FL_OK;
}

/* ------------------------------------------------------------ list, prune */

static int newest_first(const void *a, const void *b)
{
    const struct deploy_release *x = a, *y = b;
    /* current, then previous, then by age: a rollback within the same
     * millisecond as the switch must not reorder them */
    if (x->is_current != y->is_current) {
        return x->is_current ? -1 : 1;
    }
    if (x->is_previous != y->is_previous) {
        return x->is_previous ? -1 : 1;
    }
    if (x->mtime_ms != y->mtime_ms) {
        return x->mtime_ms > y->mtime_ms ? -1 : 1;
    }
    return -strcmp(x->version, y->version);
}

static int add_release(struct deploy_release **v, size_t *n, size_t *cap, const char *name,
                       const struct stat *st)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct deploy_release *nv = fl_realloc(*v, c * sizeof *nv);
        if (nv == NULL) {
            return FL_ENOMEM;
        }
        *v = nv;
        *cap = c;
    }
    memset(&(*v)[*n], 0, sizeof **v);
    memcpy((*v)[*n].version, name, strlen(name) + 1);
    (*v)[*n].mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
    (*n)++;
    return FL_OK;
}

static int scan(const char *root, struct deploy_release **out, size_t *n, char *errmsg)
{
    char dir[PATH_MAX];
    size_t cap = 0;
    struct dirent *de;
    struct stat st;
    DIR *d;
    int rv = deploy__path(dir, root, "releases", errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if ((d = opendir(dir)) == NULL) {
        return errno == ENOENT ? FL_OK : deploy__errno(errmsg, errno, "list", dir);
    }
    while (rv == FL_OK && (de = readdir(d)) != NULL) {
        if (deploy_release_version_ok(de->d_name) &&
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            rv = add_release(out, n, &cap, de->d_name, &st);
        }
    }
    closedir(d);
    return rv == FL_OK ? FL_OK : fl_errf(errmsg, rv, "listing %s: out of memory", dir);
}

int deploy_release_list(const char *root, struct deploy_release **out, size_t *n, char *errmsg)
{
    char cur[DEPLOY_VERSION_MAX] = "", prev[DEPLOY_VERSION_MAX] = "";
    int rv;
    *out = NULL;
    *n = 0;
    (void)read_opt(root, "current", cur, NULL);
    (void)read_opt(root, "previous", prev, NULL);
    if ((rv = scan(root, out, n, errmsg)) != FL_OK) {
        fl_free(*out);
        *out = NULL;
        *n = 0;
        return rv;
    }
    for (size_t i = 0; i < *n; i++) {
        (*out)[i].is_current = strcmp((*out)[i].version, cur) == 0;
        (*out)[i].is_previous = strcmp((*out)[i].version, prev) == 0;
    }
    if (*n > 1) {
        qsort(*out, *n, sizeof **out, newest_first);
    }
    return FL_OK;
}

/* Rename releases/NAME to a hidden name, then remove it. */
static int remove_release(const char *root, const char *name, char *errmsg)
{
    char from[PATH_MAX], to[PATH_MAX];
    int rv;
    if ((rv = deploy_release_dir(root, name, from, errmsg)) != FL_OK) {
        return rv;
    }
    if (snprintf(to, sizeof to, "%s/releases/.trash-%s-%d", root, name, (int)getpid()) >=
        (int)sizeof to) {
        return fl_errf(errmsg, FL_ETOOBIG, "path too long: %s", from);
    }
    if (rename(from, to) != 0) {
        return deploy__errno(errmsg, errno, "remove release", from);
    }
    return deploy__rmtree(to, errmsg);
}

/* Leftovers: .trash-* (an interrupted removal), .unpack-* (an interrupted
 * unpack; unpacks of this root do not run concurrently with prune). */
static void remove_leftovers(const char *root)
{
    char dir[PATH_MAX], path[PATH_MAX];
    struct dirent *de;
    DIR *d;
    if (deploy__path(dir, root, "releases", NULL) != FL_OK || (d = opendir(dir)) == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if ((strncmp(de->d_name, ".trash-", 7) == 0 || strncmp(de->d_name, ".unpack-", 8) == 0) &&
            deploy__path(path, dir, de->d_name, NULL) == FL_OK) {
            (void)deploy__rmtree(path, NULL);
        }
    }
    closedir(d);
}

int deploy_release_prune(const char *root, unsigned keep, unsigned *removed, char *errmsg)
{
    struct deploy_release *v;
    size_t n;
    unsigned count = 0;
    int rv = deploy_release_list(root, &v, &n, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    for (size_t i = 0; i < n && rv == FL_OK; i++) {
        if (i < keep || v[i].is_current || v[i].is_previous) {
            continue;
        }
        if ((rv = remove_release(root, v[i].version, errmsg)) == FL_OK) {
            count++;
        }
    }
    fl_free(v);
    remove_leftovers(root);
    if (removed != NULL) {
        *removed = count;
    }
    return rv;
}

int deploy_release_hook_env(const char *root, const char *app, const char *version,
                            char env[][DEPLOY_HOOK_ENV_SIZE], int n)
{
    char cur[DEPLOY_VERSION_MAX] = "", prev[DEPLOY_VERSION_MAX] = "";
    char dir[PATH_MAX] = "";
    if (n < DEPLOY_HOOK_ENV_N) {
        return 0;
    }
    (void)read_opt(root, "current", cur, NULL);
    (void)read_opt(root, "previous", prev, NULL);
    (void)deploy_release_dir(root, version, dir, NULL);
    snprintf(env[0], DEPLOY_HOOK_ENV_SIZE, "FLOTILLA_APP=%s", app);
    snprintf(env[1], DEPLOY_HOOK_ENV_SIZE, "FLOTILLA_ROOT=%s", root);
    snprintf(env[2], DEPLOY_HOOK_ENV_SIZE, "FLOTILLA_RELEASE=%s", version);
    snprintf(env[3], DEPLOY_HOOK_ENV_SIZE, "FLOTILLA_RELEASE_DIR=%s", dir);
    snprintf(env[4], DEPLOY_HOOK_ENV_SIZE, "FLOTILLA_CURRENT_RELEASE=%s", cur);
    snprintf(env[5], DEPLOY_HOOK_ENV_SIZE, "FLOTILLA_PREVIOUS_RELEASE=%s", prev);
    return DEPLOY_HOOK_ENV_N;
}
