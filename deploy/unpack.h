/* deploy/unpack — extract a package (tar or tar.gz) into a new release
 * directory, refusing anything that could write outside it.
 *
 * Issue 6, Deploy: "unpack (tar and tar.gz through libarchive ...; refuse
 * absolute paths, `..` and links that escape the release)".
 *
 * libarchive only reads the archive; every file is created by this module
 * relative to a directory descriptor of the new release, each parent opened
 * with O_NOFOLLOW, so nothing is ever written through a symbolic link, and
 * the process's working directory is never used or changed.
 *
 * Rules, checked for every entry before anything of it is written:
 *   - the path is relative, has no ".." component, fits PATH_MAX and each
 *     component NAME_MAX ("./" prefixes, "." components and repeated slashes
 *     are dropped; the entry "." itself is skipped);
 *   - the type is a regular file, a directory, a symbolic link or a hard
 *     link; device files, FIFOs and sockets are refused;
 *   - setuid and setgid bits are refused; files keep their permission bits
 *     (mode & 0777), directories get at least 0700 so extraction can go on;
 *     ownership, ACLs and extended attributes are never applied;
 *   - a symbolic link's target is relative, its ".." components come only
 *     first and are no more than the depth of the link's own directory, so
 *     it resolves inside the release (links are never followed while
 *     extracting, so a chain of links cannot escape either);
 *   - a hard link's target obeys the path rules and names an entry already
 *     extracted, found without following links;
 *   - a path already extracted is not extracted again (duplicate entries are
 *     refused), except directories;
 *   - at most limits->max_entries entries and limits->max_bytes bytes of file
 *     data in total (declared sizes and the bytes really written both count).
 *
 * Atomicity: the archive is extracted into a new temporary directory beside
 * `dest` (".unpack-NAME-XXXXXX" in dest's parent), which is renamed to `dest`
 * only when every entry succeeded; on any error the temporary directory is
 * removed, so a refused archive leaves nothing behind. `dest` must not exist
 * (FL_EEXIST, checked again atomically by the rename); its parent must.
 *
 * Errors (0 on success; detail with the entry's path in errmsg):
 *   FL_EINVAL    an entry breaks a rule above (the archive is refused);
 *   FL_ETOOBIG   a limit is exceeded;
 *   FL_EDECODE   not a tar or tar.gz archive, or damaged / truncated;
 *   FL_EEXIST    dest exists, or a duplicate entry;
 *   FL_ENOTFOUND the archive or dest's parent does not exist;
 *   FL_EDISKFULL, FL_EIO, FL_ENOMEM. */
#ifndef FL_DEPLOY_UNPACK_H
#define FL_DEPLOY_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#define DEPLOY_UNPACK_MAX_ENTRIES 200000
#define DEPLOY_UNPACK_MAX_BYTES   (8ull << 30)

struct deploy_unpack_opts {
    uint64_t max_entries; /* 0: DEPLOY_UNPACK_MAX_ENTRIES */
    uint64_t max_bytes;   /* 0: DEPLOY_UNPACK_MAX_BYTES */
    int sync;             /* 1: syncfs() the release before the rename */
};

struct deploy_unpack_stats {
    uint64_t entries; /* entries extracted (the "." entry not counted) */
    uint64_t bytes;   /* bytes of file data written */
};

/* Extract the archive file `archive` into the new directory `dest`.
 * opts and stats may be NULL. */
int deploy_unpack(const char *archive, const char *dest, const struct deploy_unpack_opts *opts,
                  struct deploy_unpack_stats *stats, char *errmsg);

/* The same from an archive held in memory (p, n), e.g. for the fuzzer. */
int deploy_unpack_mem(const void *p, size_t n, const char *dest,
                      const struct deploy_unpack_opts *opts, struct deploy_unpack_stats *stats,
                      char *errmsg);

/* The path rule alone: normalise `path` into out (PATH_MAX bytes). Returns
 * FL_OK, FL_EINVAL for an absolute path or a ".." component, FL_ETOOBIG for
 * an over-long path, and FL_ENOTFOUND (nothing to extract) when the path is
 * "." or empty. */
int deploy_unpack_path(const char *path, char *out, char *errmsg);

/* The symbolic-link rule alone: may the link at normalised path `link`
 * point to `target`? FL_OK or FL_EINVAL. */
int deploy_unpack_link_ok(const char *link, const char *target, char *errmsg);

#endif
