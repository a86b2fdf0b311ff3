#include "common/fsdir.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fl_mkdir_p(const char *path)
{
    char tmp[4400];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) {
        errno = n == 0 ? ENOENT : ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *s = tmp + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                return -1;
            }
            *s = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

int fl_write_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n > 0) {
        ssize_t w = write(fd, q, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = EIO;
            }
            return -1;
        }
        q += w;
        n -= (size_t)w;
    }
    return 0;
}
