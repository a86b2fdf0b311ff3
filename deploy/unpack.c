/* deploy/unpack — safe extraction of tar / tar.gz packages (deploy/unpack.h).
 *
 * libarchive parses; this file creates every directory, file and link itself
 * with *at() calls relative to the release's directory descriptor. Parents
 * are opened with O_NOFOLLOW one component at a time, so a symbolic link in
 * the archive can never redirect a later write, whatever order the entries
 * come in. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "deploy/deploy_int.h"
#include "deploy/unpack.h"

/* ------------------------------------------------------------ pure rules */

int deploy_unpack_path(const char *path, char *out, char *errmsg)
{
    size_t o = 0;
    const char *p = path;
    if (path[0] == '/') {
        return fl_errf(errmsg, FL_EINVAL, "entry \"%s\": absolute path", path);
    }
    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            return fl_errf(errmsg, FL_EINVAL, "entry \"%s\": \"..\" component", path);
        }
        if (n > NAME_MAX || o + n + 2 > PATH_MAX) {
            return fl_errf(errmsg, FL_ETOOBIG, "entry \"%.64s...\": path too long", path);
        }
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o > 0) {
                out[o++] = '/';
            }
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        p += *p == '/';
    }
    out[o] = '\0';
    return o == 0 ? FL_ENOTFOUND : FL_OK;
}

int deploy_unpack_link_ok(const char *link, const char *target, char *errmsg)
{
    unsigned depth = 0, up = 0;
    int seen_name = 0;
    const char *p = target;
    for (const char *q = link; *q != '\0'; q++) {
        depth += *q == '/';
    }
    if (target[0] == '\0' || target[0] == '/') {
        return fl_errf(errmsg, FL_EINVAL, "link \"%s\" -> \"%s\": %s target", link, target,
                       target[0] ? "absolute" : "empty");
    }
    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (seen_name || ++up > depth) {
                return fl_errf(errmsg, FL_EINVAL,
                               "link \"%s\" -> \"%s\": target escapes the "
                               "release",
                               link, target);
            }
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            seen_name = 1;
        }
        p += n;
        p += *p == '/';
    }
    return FL_OK;
}

/* ------------------------------------------------------------ extraction */

struct unpack {
    struct archive *a;
    int rootfd;
    uint64_t max_entries, max_bytes;
    struct deploy_unpack_stats st;
    char *errmsg;
};

/* Open the parent directory of normalised `path` below rootfd without
 * following links, creating missing directories when `create`. *leaf points
 * into path at the last component. */
static int open_parent(struct unpack *u, const char *path, int create, int *out, const char **leaf)
{
    char comp[NAME_MAX + 1];
    const char *p = path;
    int fd = dup(u->rootfd), next;
    if (fd < 0) {
        return deploy__errno(u->errmsg, errno, "dup", "release directory");
    }
    for (;;) {
        size_t n = strcspn(p, "/");
        if (p[n] != '/') {
            break;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create && mkdirat(fd, comp, 0755) == 0) {
            next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            close(fd);
            if (e == ELOOP || e == ENOTDIR || e == ENOENT) {
                return fl_errf(u->errmsg, FL_EINVAL, "entry \"%s\": \"%s\" is %s", path, comp,
                               e == ENOENT ? "missing" : "not a directory (a link or a file)");
            }
            return deploy__errno(u->errmsg, e, "open directory of", path);
        }
        close(fd);
        fd = next;
        p += n + 1;
    }
    *leaf = p;
    *out = fd;
    return FL_OK;
}

static int exists_error(struct unpack *u, int e, const char *what, const char *path)
{
    if (e == EEXIST) {
        return fl_errf(u->errmsg, FL_EEXIST, "entry \"%s\": duplicate entry", path);
    }
    return deploy__errno(u->errmsg, e, what, path);
}

static int make_dir(struct unpack *u, const char *path, mode_t mode)
{
    const char *leaf;
    int parent, fd, rv;
    if ((rv = open_parent(u, path, 1, &parent, &leaf)) != FL_OK) {
        return rv;
    }
    if (mkdirat(parent, leaf, 0700) != 0 && errno != EEXIST) {
        rv = deploy__errno(u->errmsg, errno, "mkdir", path);
        goto out;
    }
    fd = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rv = fl_errf(u->errmsg, FL_EEXIST, "entry \"%s\": a non-directory of that name exists",
                     path);
        goto out;
    }
    (void)fchmod(fd, (mode & 0777) | 0700);
    close(fd);
out:
    close(parent);
    return rv;
}

static int budget(struct unpack *u, uint64_t more, const char *path)
{
    if (more > u->max_bytes - u->st.bytes) {
        return fl_errf(u->errmsg, FL_ETOOBIG,
                       "entry \"%s\": archive holds more than %llu bytes "
                       "of files",
                       path, (unsigned long long)u->max_bytes);
    }
    return FL_OK;
}

static int copy_data(struct unpack *u, int fd, const char *path)
{
    const void *buf;
    size_t size;
    la_int64_t off;
    int r, rv;
    while ((r = archive_read_data_block(u->a, &buf, &size, &off)) == ARCHIVE_OK ||
           r == ARCHIVE_WARN) {
        if ((rv = budget(u, size, path)) != FL_OK) {
            return rv;
        }
        for (size_t done = 0; done < size;) {
            ssize_t w = pwrite(fd, (const char *)buf + done, size - done, off + (off_t)done);
            if (w < 0 && errno != EINTR) {
                return deploy__errno(u->errmsg, errno, "write", path);
            }
            done += w > 0 ? (size_t)w : 0;
        }
        u->st.bytes += size;
    }
    if (r != ARCHIVE_EOF) {
        return fl_errf(u->errmsg, FL_EDECODE, "entry \"%s\": %s", path,
                       archive_error_string(u->a) ? archive_error_string(u->a) : "bad data");
    }
    return FL_OK;
}

static int make_file(struct unpack *u, struct archive_entry *e, const char *path)
{
    struct timespec times[2] = {{0, UTIME_OMIT}, {archive_entry_mtime(e), 0}};
    const char *leaf;
    int parent, fd, rv;
    if ((rv = budget(u, (uint64_t)archive_entry_size(e), path)) != FL_OK) {
        return rv;
    }
    if ((rv = open_parent(u, path, 1, &parent, &leaf)) != FL_OK) {
        return rv;
    }
    fd = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    close(parent);
    if (fd < 0) {
        return exists_error(u, errno, "create", path);
    }
    rv = copy_data(u, fd, path);
    if (rv == FL_OK && ftruncate(fd, archive_entry_size(e)) != 0) {
        rv = deploy__errno(u->errmsg, errno, "truncate", path);
    }
    if (rv == FL_OK && fchmod(fd, archive_entry_perm(e) & 0777) != 0) {
        rv = deploy__errno(u->errmsg, errno, "chmod", path);
    }
    if (rv == FL_OK && archive_entry_mtime_is_set(e)) {
        (void)futimens(fd, times);
    }
    if (close(fd) != 0 && rv == FL_OK) {
        rv = deploy__errno(u->errmsg, errno, "close", path);
    }
    return rv;
}

static int make_symlink(struct unpack *u, const char *path, const char *target)
{
    const char *leaf;
    int parent, rv;
    if ((rv = deploy_unpack_link_ok(path, target, u->errmsg)) != FL_OK) {
        return rv;
    }
    if ((rv = open_parent(u, path, 1, &parent, &leaf)) != FL_OK) {
        return rv;
    }
    if (symlinkat(target, parent, leaf) != 0) {
        rv = exists_error(u, errno, "symlink", path);
    }
    close(parent);
    return rv;
}

/* A hard link may only name a regular file already extracted: a second name
 * for a symbolic link would move its relative target to another depth. */
static int make_hardlink(struct unpack *u, const char *path, const char *target_raw)
{
    char target[PATH_MAX];
    const char *leaf, *tleaf;
    struct stat st;
    int parent, tparent, rv;
    rv = deploy_unpack_path(target_raw, target, u->errmsg);
    if (rv != FL_OK) {
        return fl_errf(u->errmsg, rv == FL_ETOOBIG ? rv : FL_EINVAL,
                       "hard link \"%s\" -> \"%s\": target %s", path, target_raw,
                       rv == FL_ENOTFOUND ? "is empty" : "leaves the release");
    }
    if ((rv = open_parent(u, target, 0, &tparent, &tleaf)) != FL_OK) {
        return rv;
    }
    if (fstatat(tparent, tleaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
        rv = fl_errf(u->errmsg, FL_EINVAL,
                     "hard link \"%s\" -> \"%s\": target is not a file "
                     "extracted before it",
                     path, target_raw);
        goto out;
    }
    if ((rv = open_parent(u, path, 1, &parent, &leaf)) != FL_OK) {
        goto out;
    }
    if (linkat(tparent, tleaf, parent, leaf, 0) != 0) {
        rv = exists_error(u, errno, "link", path);
    }
    close(parent);
out:
    close(tparent);
    return rv;
}

static const char *type_name(mode_t type)
{
    switch (type) {
    case AE_IFCHR:
        return "a character device";
    case AE_IFBLK:
        return "a block device";
    case AE_IFIFO:
        return "a FIFO";
    case AE_IFSOCK:
        return "a socket";
    default:
        return "of an unknown type";
    }
}

static int extract_entry(struct unpack *u, struct archive_entry *e)
{
    char path[PATH_MAX];
    const char *raw = archive_entry_pathname(e);
    mode_t type = archive_entry_filetype(e), mode = archive_entry_mode(e);
    int rv;
    if (raw == NULL) {
        return fl_errf(u->errmsg, FL_EDECODE, "an entry has no path");
    }
    if ((rv = deploy_unpack_path(raw, path, u->errmsg)) != FL_OK) {
        return rv == FL_ENOTFOUND ? FL_OK : rv; /* "." : the release itself */
    }
    if (++u->st.entries > u->max_entries) {
        return fl_errf(u->errmsg, FL_ETOOBIG, "archive has more than %llu entries",
                       (unsigned long long)u->max_entries);
    }
    if (archive_entry_hardlink(e) != NULL) {
        return make_hardlink(u, path, archive_entry_hardlink(e));
    }
    if (type != AE_IFDIR && (mode & (S_ISUID | S_ISGID)) != 0) {
        return fl_errf(u->errmsg, FL_EINVAL, "entry \"%s\": setuid or setgid bit", raw);
    }
    switch (type) {
    case AE_IFDIR:
        return make_dir(u, path, mode);
    case AE_IFREG:
        return make_file(u, e, path);
    case AE_IFLNK:
        return make_symlink(u, path, archive_entry_symlink(e) ? archive_entry_symlink(e) : "");
    default:
        return fl_errf(u->errmsg, FL_EINVAL, "entry \"%s\" is %s", raw, type_name(type));
    }
}

static int extract_all(struct unpack *u)
{
    struct archive_entry *e;
    int r, rv;
    while ((r = archive_read_next_header(u->a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if ((rv = extract_entry(u, e)) != FL_OK) {
            return rv;
        }
    }
    if (r != ARCHIVE_EOF) {
        return fl_errf(u->errmsg, FL_EDECODE, "not a readable tar or tar.gz archive: %s",
                       archive_error_string(u->a) ? archive_error_string(u->a) : "read error");
    }
    return FL_OK;
}

/* ------------------------------------------------------------ staging */

/* The temporary directory beside dest: PARENT/.unpack-NAME-XXXXXX. */
static int make_staging(const char *dest, char *tmp, char *errmsg)
{
    const char *slash = strrchr(dest, '/');
    const char *name = slash ? slash + 1 : dest;
    int plen = slash ? (int)(slash - dest) : 1, n;
    if (*name == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "release directory \"%s\" has no name", dest);
    }
    n = snprintf(tmp, PATH_MAX, "%.*s/.unpack-%s-XXXXXX", plen, slash ? dest : ".", name);
    if (n < 0 || n >= PATH_MAX) {
        return fl_errf(errmsg, FL_ETOOBIG, "path too long: %s", dest);
    }
    if (mkdtemp(tmp) == NULL) {
        return deploy__errno(errmsg, errno, "create directory in the parent of", dest);
    }
    return FL_OK;
}

static int finish(struct unpack *u, const char *tmp, const char *dest,
                  const struct deploy_unpack_opts *o)
{
    if (o != NULL && o->sync && syncfs(u->rootfd) != 0) {
        return deploy__errno(u->errmsg, errno, "sync", tmp);
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) != 0) {
        return deploy__errno(u->errmsg, errno, "rename into place", dest);
    }
    return FL_OK;
}

static int unpack_opened(struct archive *a, const char *dest, const struct deploy_unpack_opts *o,
                         struct deploy_unpack_stats *stats, char *errmsg)
{
    struct unpack u = {.a = a, .rootfd = -1, .errmsg = errmsg};
    char tmp[PATH_MAX];
    struct stat st;
    int rv;
    u.max_entries = o != NULL && o->max_entries ? o->max_entries : DEPLOY_UNPACK_MAX_ENTRIES;
    u.max_bytes = o != NULL && o->max_bytes ? o->max_bytes : DEPLOY_UNPACK_MAX_BYTES;
    if (lstat(dest, &st) == 0) {
        return fl_errf(errmsg, FL_EEXIST, "release directory %s already exists", dest);
    }
    if ((rv = make_staging(dest, tmp, errmsg)) != FL_OK) {
        return rv;
    }
    u.rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.rootfd < 0) {
        rv = deploy__errno(errmsg, errno, "open", tmp);
        goto err;
    }
    (void)fchmod(u.rootfd, 0755);
    if ((rv = extract_all(&u)) != FL_OK || (rv = finish(&u, tmp, dest, o)) != FL_OK) {
        goto err;
    }
    close(u.rootfd);
    if (stats != NULL) {
        *stats = u.st;
    }
    return FL_OK;
err:
    if (u.rootfd >= 0) {
        close(u.rootfd);
    }
    (void)deploy__rmtree(tmp, NULL);
    return rv;
}

static struct archive *reader(char *errmsg)
{
    struct archive *a = archive_read_new();
    if (a == NULL) {
        (void)fl_errf(errmsg, FL_ENOMEM, "cannot create an archive reader");
        return NULL;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_none(a);
    archive_read_support_format_tar(a);
    return a;
}

static int open_error(struct archive *a, const char *what, char *errmsg)
{
    int e = archive_errno(a);
    if (e == ENOENT) {
        return fl_errf(errmsg, FL_ENOTFOUND, "archive %s: %s", what, strerror(e));
    }
    return fl_errf(errmsg, FL_EDECODE, "archive %s: %s", what,
                   archive_error_string(a) ? archive_error_string(a) : "cannot open");
}

int deploy_unpack(const char *archive, const char *dest, const struct deploy_unpack_opts *opts,
                  struct deploy_unpack_stats *stats, char *errmsg)
{
    struct archive *a = reader(errmsg);
    int rv;
    if (a == NULL) {
        return FL_ENOMEM;
    }
    if (archive_read_open_filename(a, archive, 64 * 1024) != ARCHIVE_OK) {
        rv = open_error(a, archive, errmsg);
    } else {
        rv = unpack_opened(a, dest, opts, stats, errmsg);
    }
    archive_read_free(a);
    return rv;
}

int deploy_unpack_mem(const void *p, size_t n, const char *dest,
                      const struct deploy_unpack_opts *opts, struct deploy_unpack_stats *stats,
                      char *errmsg)
{
    struct archive *a = reader(errmsg);
    int rv;
    if (a == NULL) {
        return FL_ENOMEM;
    }
    if (archive_read_open_memory(a, p, n) != ARCHIVE_OK) {
        rv = open_error(a, "in memory", errmsg);
    } else {
        rv = unpack_opened(a, dest, opts, stats, errmsg);
    }
    archive_read_free(a);
    return rv;
}
