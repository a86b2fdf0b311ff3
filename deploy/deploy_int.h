/* deploy/ — private helpers shared by the module's files. Not a public
 * header: nothing outside deploy/ includes it. */
#ifndef FL_DEPLOY_INT_H
#define FL_DEPLOY_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

/* An output file written under a temporary name and renamed into place on
 * commit (deploy/delta.h "Output files"), optionally hashed and limited. */
struct deploy__sink {
    int fd;
    char tmp[PATH_MAX];
    char final[PATH_MAX];
    int hashing;
    crypto_generichash_state hash;
    uint64_t written;
    uint64_t limit; /* 0: none; beyond it writes fail with FL_ETOOBIG */
};

/* Create the temporary file beside `path`. */
int deploy__sink_open(struct deploy__sink *s, const char *path, int hashing, uint64_t limit,
                      char *errmsg);
int deploy__sink_write(struct deploy__sink *s, const void *p, size_t n, char *errmsg);
/* Close, check the hash against expect (if not NULL), store it in got (if
 * not NULL), rename into place. On failure the temporary file is removed. */
int deploy__sink_commit(struct deploy__sink *s, const uint8_t *expect, uint8_t *got, char *errmsg);
/* Close and remove the temporary file (no-op after commit or when fd < 0). */
void deploy__sink_abort(struct deploy__sink *s);

/* Open a file for reading (O_CLOEXEC, sequential advice). */
int deploy__open_read(const char *path, int *fd, char *errmsg);
/* read() the full n bytes unless end of file; *got receives the count. */
int deploy__read_full(int fd, void *p, size_t n, size_t *got, const char *path, char *errmsg);

/* errno -> FL_* (ENOENT not_found, ENOSPC/EDQUOT disk_full, ENOMEM, EEXIST,
 * else io), with "what PATH: strerror" as detail. */
int deploy__errno(char *errmsg, int e, const char *what, const char *path);

/* Join dir and name into out (PATH_MAX); FL_ETOOBIG if it does not fit. */
int deploy__path(char *out, const char *dir, const char *name, char *errmsg);

/* Remove a directory tree (no symlink is followed); 0 or FL_EIO. A missing
 * path is success. */
int deploy__rmtree(const char *path, char *errmsg);

/* Tests: when > 0, counts down at each switch of a release link
 * (deploy/release.c) and fails the rename that brings it to 0. */
extern int deploy__fail_link_rename;

#endif
