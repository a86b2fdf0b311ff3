/* deploy/release: switch, keep-K, rollback, and failed switches that leave
 * current (and previous) unchanged. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "deploy/deploy_int.h"
#include "deploy/release.h"

static char root[256];

static void add(const char *version)
{
    char dir[PATH_MAX], file[PATH_MAX + 16], err[FL_ERRMSG_SIZE];
    FILE *f;
    REQUIRE(deploy_release_dir(root, version, dir, err) == FL_OK);
    REQUIRE(mkdir(dir, 0755) == 0);
    snprintf(file, sizeof file, "%s/VERSION", dir);
    f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs(version, f);
    fclose(f);
}

/* The version read through ROOT/current/VERSION, as a process would. */
static const char *served(void)
{
    static char v[64];
    char file[PATH_MAX];
    FILE *f;
    size_t n;
    snprintf(file, sizeof file, "%s/current/VERSION", root);
    if ((f = fopen(file, "r")) == NULL) {
        return "";
    }
    n = fread(v, 1, sizeof v - 1, f);
    v[n] = '\0';
    fclose(f);
    return v;
}

static const char *cur(void)
{
    static char v[DEPLOY_VERSION_MAX];
    return deploy_release_current(root, v, NULL) == FL_OK ? v : "";
}

static const char *prev(void)
{
    static char v[DEPLOY_VERSION_MAX];
    return deploy_release_previous(root, v, NULL) == FL_OK ? v : "";
}

static int n_hidden(void)
{
    char cmd[600];
    FILE *p;
    int n = -1;
    snprintf(cmd, sizeof cmd, "ls -A '%s' '%s/releases' | grep -c '^\\.' ", root, root);
    p = popen(cmd, "r");
    if (p != NULL && fscanf(p, "%d", &n) != 1) {
        n = -1;
    }
    if (p != NULL) {
        pclose(p);
    }
    return n;
}

TEST(versions)
{
    CHECK(deploy_release_version_ok("1.2.3"));
    CHECK(deploy_release_version_ok("v2-rc1+build_7@abc"));
    CHECK(!deploy_release_version_ok(""));
    CHECK(!deploy_release_version_ok("."));
    CHECK(!deploy_release_version_ok(".."));
    CHECK(!deploy_release_version_ok(".hidden"));
    CHECK(!deploy_release_version_ok("a/b"));
    CHECK(!deploy_release_version_ok("a b"));
    char long_v[200];
    memset(long_v, 'a', sizeof long_v - 1);
    long_v[sizeof long_v - 1] = '\0';
    CHECK(!deploy_release_version_ok(long_v));
}

TEST(switch_and_previous)
{
    char err[FL_ERRMSG_SIZE] = "", v[DEPLOY_VERSION_MAX], link[64];
    char path[PATH_MAX];
    ssize_t n;
    CHECK_OK(deploy_release_init(root, err));
    CHECK_EQ_INT(deploy_release_current(root, v, err), FL_ENOTFOUND);
    add("1.0");
    add("1.1");
    CHECK_OK(deploy_release_switch(root, "1.0", err));
    CHECK_EQ_STR(cur(), "1.0");
    CHECK_EQ_STR(prev(), "");
    CHECK_EQ_STR(served(), "1.0");
    CHECK_OK(deploy_release_switch(root, "1.1", err));
    CHECK_EQ_STR(cur(), "1.1");
    CHECK_EQ_STR(prev(), "1.0");
    CHECK_EQ_STR(served(), "1.1");
    /* the link is relative */
    snprintf(path, sizeof path, "%s/current", root);
    n = readlink(path, link, sizeof link - 1);
    REQUIRE(n > 0);
    link[n] = '\0';
    CHECK_EQ_STR(link, "releases/1.1");
    /* switching to current changes nothing */
    CHECK_OK(deploy_release_switch(root, "1.1", err));
    CHECK_EQ_STR(prev(), "1.0");
    CHECK_EQ_INT(n_hidden(), 0);
}

TEST(failed_switch_changes_nothing)
{
    char err[FL_ERRMSG_SIZE] = "", file[PATH_MAX];
    FILE *f;
    /* state from the previous test: current 1.1, previous 1.0 */
    CHECK_EQ_INT(deploy_release_switch(root, "9.9", err), FL_ENOTFOUND);
    fprintf(stderr, "  missing: %s\n", err);
    CHECK_EQ_INT(deploy_release_switch(root, "../1.0", err), FL_EINVAL);
    snprintf(file, sizeof file, "%s/releases/afile", root);
    f = fopen(file, "w");
    REQUIRE(f != NULL);
    fclose(f);
    CHECK_EQ_INT(deploy_release_switch(root, "afile", err), FL_EINVAL);
    fprintf(stderr, "  file: %s\n", err);
    snprintf(file, sizeof file, "%s/releases/alink", root);
    REQUIRE(symlink("1.0", file) == 0);
    CHECK_EQ_INT(deploy_release_switch(root, "alink", err), FL_EINVAL);
    CHECK_EQ_STR(cur(), "1.1");
    CHECK_EQ_STR(prev(), "1.0");
    /* the rename of current fails (after previous was moved): both restored */
    add("1.2");
    deploy__fail_link_rename = 2;
    CHECK_EQ_INT(deploy_release_switch(root, "1.2", err), FL_EIO);
    fprintf(stderr, "  injected: %s\n", err);
    CHECK_EQ_STR(cur(), "1.1");
    CHECK_EQ_STR(prev(), "1.0");
    CHECK_EQ_STR(served(), "1.1");
    /* the rename of previous fails: nothing moved */
    deploy__fail_link_rename = 1;
    CHECK_EQ_INT(deploy_release_switch(root, "1.2", err), FL_EIO);
    CHECK_EQ_STR(cur(), "1.1");
    CHECK_EQ_STR(prev(), "1.0");
    deploy__fail_link_rename = 0;
    CHECK_EQ_INT(n_hidden(), 0);
    unlink(file);
    snprintf(file, sizeof file, "%s/releases/afile", root);
    unlink(file);
}

TEST(rollback)
{
    char err[FL_ERRMSG_SIZE] = "", v[DEPLOY_VERSION_MAX];
    /* current 1.1, previous 1.0 */
    CHECK_OK(deploy_release_switch(root, "1.2", err));
    CHECK_EQ_STR(cur(), "1.2");
    CHECK_EQ_STR(prev(), "1.1");
    CHECK_OK(deploy_release_rollback(root, NULL, v, err));
    CHECK_EQ_STR(v, "1.1");
    CHECK_EQ_STR(cur(), "1.1");
    CHECK_EQ_STR(prev(), "1.2");
    CHECK_EQ_STR(served(), "1.1");
    CHECK_OK(deploy_release_rollback(root, "1.0", v, err));
    CHECK_EQ_STR(cur(), "1.0");
    CHECK_EQ_STR(prev(), "1.1");
    CHECK_EQ_INT(deploy_release_rollback(root, "0.1", v, err), FL_ENOTFOUND);
    CHECK_EQ_STR(cur(), "1.0");
}

TEST(list_and_prune)
{
    char err[FL_ERRMSG_SIZE] = "", dir[PATH_MAX], env[DEPLOY_HOOK_ENV_N][DEPLOY_HOOK_ENV_SIZE];
    struct deploy_release *v;
    size_t n;
    unsigned removed = 99;
    static const char *more[] = {"2.0", "2.1", "2.2", "2.3", "2.4", "2.5"};
    /* deploy 2.0..2.5 in order, a little apart so mtimes differ */
    for (int i = 0; i < 6; i++) {
        add(more[i]);
        usleep(20000);
        CHECK_OK(deploy_release_switch(root, more[i], err));
    }
    CHECK_EQ_STR(cur(), "2.5");
    CHECK_EQ_STR(prev(), "2.4");
    /* a leftover of an interrupted unpack */
    snprintf(dir, sizeof dir, "%s/releases/.unpack-3.0-abcdef", root);
    CHECK(mkdir(dir, 0755) == 0);
    CHECK_OK(deploy_release_list(root, &v, &n, err));
    CHECK_EQ_INT(n, 9); /* 1.0 1.1 1.2 2.0..2.5 */
    REQUIRE(n == 9);
    CHECK_EQ_STR(v[0].version, "2.5");
    CHECK(v[0].is_current && !v[0].is_previous);
    CHECK_EQ_STR(v[1].version, "2.4");
    CHECK(v[1].is_previous);
    CHECK(v[0].mtime_ms >= v[1].mtime_ms);
    fl_free(v);
    /* roll back to 2.4: current 2.4, previous 2.5; keep 1 -> those two */
    CHECK_OK(deploy_release_rollback(root, NULL, NULL, err));
    CHECK_OK(deploy_release_prune(root, 1, &removed, err));
    CHECK_EQ_INT(removed, 7);
    CHECK_OK(deploy_release_list(root, &v, &n, err));
    REQUIRE(n == 2);
    CHECK_EQ_STR(v[0].version, "2.4");
    CHECK_EQ_STR(v[1].version, "2.5");
    fl_free(v);
    CHECK_EQ_INT(n_hidden(), 0);
    CHECK_EQ_STR(served(), "2.4");
    /* keep 0 still keeps current and previous */
    CHECK_OK(deploy_release_prune(root, 0, &removed, err));
    CHECK_EQ_INT(removed, 0);
    /* keep K with more candidates: 3 new ones, keep 3 = 3.2 (current), 3.1
     * (previous), 3.0; 2.4 and 2.5 go */
    add("3.0");
    usleep(20000);
    CHECK_OK(deploy_release_switch(root, "3.0", err));
    add("3.1");
    usleep(20000);
    CHECK_OK(deploy_release_switch(root, "3.1", err));
    add("3.2");
    usleep(20000);
    CHECK_OK(deploy_release_switch(root, "3.2", err));
    CHECK_OK(deploy_release_prune(root, 3, &removed, err));
    CHECK_EQ_INT(removed, 2);
    CHECK_OK(deploy_release_list(root, &v, &n, err));
    REQUIRE(n == 3);
    CHECK_EQ_STR(v[0].version, "3.2");
    CHECK_EQ_STR(v[1].version, "3.1");
    CHECK_EQ_STR(v[2].version, "3.0");
    fl_free(v);
    CHECK_EQ_INT(deploy_release_hook_env(root, "web", "3.3", env, DEPLOY_HOOK_ENV_N), 6);
    CHECK_EQ_STR(env[0], "FLOTILLA_APP=web");
    CHECK_EQ_STR(env[2], "FLOTILLA_RELEASE=3.3");
    CHECK_EQ_STR(env[4], "FLOTILLA_CURRENT_RELEASE=3.2");
    CHECK_EQ_STR(env[5], "FLOTILLA_PREVIOUS_RELEASE=3.1");
    CHECK(strstr(env[3], "/releases/3.3") != NULL);
}

TEST(current_not_a_link)
{
    char err[FL_ERRMSG_SIZE] = "", path[PATH_MAX], v[DEPLOY_VERSION_MAX];
    char other[256];
    REQUIRE(check_tmpdir(other, sizeof other) != NULL);
    CHECK_OK(deploy_release_init(other, err));
    snprintf(path, sizeof path, "%s/current", other);
    CHECK(mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/releases/1", other);
    CHECK(mkdir(path, 0755) == 0);
    CHECK_EQ_INT(deploy_release_current(other, v, err), FL_EINVAL);
    CHECK_EQ_INT(deploy_release_switch(other, "1", err), FL_EINVAL);
    fprintf(stderr, "  %s\n", err);
    check_rmrf(other);
}

int main(void)
{
    if (check_tmpdir(root, sizeof root) == NULL) {
        return 1;
    }
    RUN(versions);
    RUN(switch_and_previous);
    RUN(failed_switch_changes_nothing);
    RUN(rollback);
    RUN(list_and_prune);
    RUN(current_not_a_link);
    check_rmrf(root);
    return check_summary();
}
