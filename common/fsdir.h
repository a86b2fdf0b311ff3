/* common/fsdir — directories and files on the local disk. */
#ifndef FL_COMMON_FSDIR_H
#define FL_COMMON_FSDIR_H

#include <stddef.h>

/* Create `path` and its missing parents with mode 0700 (existing ones are
 * left as they are). 0, or -1 with errno set (ENAMETOOLONG for a path of
 * 4400 bytes or more). */
int fl_mkdir_p(const char *path);

/* Write all n bytes to fd (a file, or a blocking socket), retrying after
 * EINTR and short writes. 0, or -1 with errno set. */
int fl_write_all(int fd, const void *p, size_t n);

#endif
