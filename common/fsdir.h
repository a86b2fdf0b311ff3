/* common/fsdir — directories on the local disk. */
#ifndef FL_COMMON_FSDIR_H
#define FL_COMMON_FSDIR_H

/* Create `path` and its missing parents with mode 0700 (existing ones are
 * left as they are). 0, or -1 with errno set (ENAMETOOLONG for a path of
 * 4400 bytes or more). */
int fl_mkdir_p(const char *path);

#endif
