/* libFuzzer harness: package extraction (deploy_unpack_mem) of arbitrary
 * archive bytes into a real temporary directory.
 *
 * Oracle, after every input: the parent directory holds nothing but the
 * release (when the unpack succeeded) — no temporary directory, no file
 * written beside it — and every symbolic link inside the release resolves
 * inside it (or nowhere). A violation aborts. */
#include <ftw.h>
#include <dirent.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy/unpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char parent[64];
static char release[PATH_MAX];

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d != NULL && (de = readdir(d)) != NULL) {
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

/* Every link must resolve inside the release, or not at all. */
static int check_link(const char *path, const struct stat *st, int type, struct FTW *f)
{
    char real[PATH_MAX], root[PATH_MAX];
    (void)st;
    (void)f;
    if (type != FTW_SL && type != FTW_SLN) {
        return 0;
    }
    if (realpath(path, real) == NULL || realpath(release, root) == NULL) {
        return 0; /* dangling: points nowhere */
    }
    if (strncmp(real, root, strlen(root)) != 0 ||
        (real[strlen(root)] != '/' && real[strlen(root)] != '\0')) {
        fprintf(stderr, "link %s escapes to %s\n", path, real);
        abort();
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)f;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct deploy_unpack_opts o = {.max_entries = 256, .max_bytes = 1u << 20};
    int rv;
    if (parent[0] == '\0') {
        snprintf(parent, sizeof parent, "/tmp/flotilla-fuzz-unpack-XXXXXX");
        if (mkdtemp(parent) == NULL) {
            abort();
        }
        snprintf(release, sizeof release, "%s/rel", parent);
    }
    rv = deploy_unpack_mem(data, size, release, &o, NULL, NULL);
    if (count_entries(parent) != (rv == 0 ? 1 : 0)) {
        fprintf(stderr, "unpack returned %d and left %d entries\n", rv, count_entries(parent));
        abort();
    }
    if (rv == 0) {
        nftw(release, check_link, 16, FTW_PHYS);
        nftw(release, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}
