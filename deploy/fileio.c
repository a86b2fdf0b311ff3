/* deploy/fileio — temporary-then-rename output files, full reads, errno
 * mapping and tree removal shared by the deploy module. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "deploy/deploy_int.h"

int deploy__errno(char *errmsg, int e, const char *what, const char *path)
{
    int code = FL_EIO;
    if (e == ENOENT || e == ENOTDIR) {
        code = FL_ENOTFOUND;
    } else if (e == ENOSPC || e == EDQUOT) {
        code = FL_EDISKFULL;
    } else if (e == ENOMEM) {
        code = FL_ENOMEM;
    } else if (e == EEXIST || e == ENOTEMPTY) {
        code = FL_EEXIST;
    } else if (e == ENAMETOOLONG) {
        code = FL_ETOOBIG;
    }
    return fl_errf(errmsg, code, "%s %s: %s", what, path, strerror(e));
}

int deploy__path(char *out, const char *dir, const char *name, char *errmsg)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX) {
        return fl_errf(errmsg, FL_ETOOBIG, "path too long: %s/%s", dir, name);
    }
    return FL_OK;
}

int deploy__open_read(const char *path, int *fd, char *errmsg)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        return deploy__errno(errmsg, errno, "open", path);
    }
    (void)posix_fadvise(*fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return FL_OK;
}

int deploy__read_full(int fd, void *p, size_t n, size_t *got, const char *path, char *errmsg)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(fd, (char *)p + off, n - off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return deploy__errno(errmsg, errno, "read", path);
        }
        if (r == 0) {
            break;
        }
        off += (size_t)r;
    }
    *got = off;
    return FL_OK;
}

int deploy__sink_open(struct deploy__sink *s, const char *path, int hashing, uint64_t limit,
                      char *errmsg)
{
    int n;
    memset(s, 0, sizeof *s);
    s->fd = -1;
    n = snprintf(s->tmp, sizeof s->tmp, "%s.part-XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof s->tmp || strlen(path) >= sizeof s->final) {
        return fl_errf(errmsg, FL_ETOOBIG, "path too long: %s", path);
    }
    memcpy(s->final, path, strlen(path) + 1);
    s->fd = mkostemp(s->tmp, O_CLOEXEC);
    if (s->fd < 0) {
        return deploy__errno(errmsg, errno, "create", s->tmp);
    }
    (void)fchmod(s->fd, 0644);
    s->hashing = hashing;
    s->limit = limit;
    if (hashing) {
        crypto_generichash_init(&s->hash, NULL, 0, crypto_generichash_BYTES);
    }
    return FL_OK;
}

int deploy__sink_write(struct deploy__sink *s, const void *p, size_t n, char *errmsg)
{
    size_t off = 0;
    if (s->limit != 0 && s->written + n > s->limit) {
        return fl_errf(errmsg, FL_ETOOBIG, "%s would exceed %llu bytes", s->final,
                       (unsigned long long)s->limit);
    }
    if (s->hashing) {
        crypto_generichash_update(&s->hash, p, n);
    }
    while (off < n) {
        ssize_t w = write(s->fd, (const char *)p + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return deploy__errno(errmsg, errno, "write", s->tmp);
        }
        off += (size_t)w;
    }
    s->written += n;
    return FL_OK;
}

static int check_hash(struct deploy__sink *s, const uint8_t *expect, uint8_t *got, char *errmsg)
{
    uint8_t h[crypto_generichash_BYTES];
    if (!s->hashing) {
        return FL_OK;
    }
    crypto_generichash_final(&s->hash, h, sizeof h);
    if (got != NULL) {
        memcpy(got, h, sizeof h);
    }
    if (expect != NULL && sodium_memcmp(h, expect, sizeof h) != 0) {
        return fl_errf(errmsg, FL_ECORRUPT,
                       "%s: hash of the result does not match the expected hash "
                       "(wrong basis or damaged delta)",
                       s->final);
    }
    return FL_OK;
}

int deploy__sink_commit(struct deploy__sink *s, const uint8_t *expect, uint8_t *got, char *errmsg)
{
    int rv = check_hash(s, expect, got, errmsg);
    if (rv != FL_OK) {
        goto err;
    }
    if (close(s->fd) != 0) {
        s->fd = -1;
        rv = deploy__errno(errmsg, errno, "close", s->tmp);
        goto err;
    }
    s->fd = -1;
    if (rename(s->tmp, s->final) != 0) {
        rv = deploy__errno(errmsg, errno, "rename onto", s->final);
        goto err;
    }
    s->tmp[0] = '\0';
    return FL_OK;
err:
    deploy__sink_abort(s);
    return rv;
}

void deploy__sink_abort(struct deploy__sink *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->tmp[0] != '\0') {
        unlink(s->tmp);
        s->tmp[0] = '\0';
    }
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP) {
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    }
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int deploy__rmtree(const char *path, char *errmsg)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? FL_OK : deploy__errno(errmsg, errno, "stat", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path) == 0 ? FL_OK : deploy__errno(errmsg, errno, "remove", path);
    }
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) {
        return deploy__errno(errmsg, errno, "remove tree", path);
    }
    return FL_OK;
}
