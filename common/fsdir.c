#include "common/fsdir.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

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
