/* deploy/unpack: good tar and tar.gz packages, and every kind of malicious
 * or broken archive refused with nothing left behind. The archives are built
 * here with libarchive's writer. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "check.h"
#include "common/err.h"
#include "deploy/unpack.h"

static char dir[256];

/* One archive entry to write. */
struct ent {
    const char *path;
    mode_t type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR... */
    mode_t perm;
    const char *data; /* file contents */
    const char *link; /* symlink target */
    const char *hard; /* hard link target */
};

static char *p(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static int write_archive(const char *name, int gz, const struct ent *e, int n)
{
    struct archive *a = archive_write_new();
    struct archive_entry *ae;
    int ok = 1;
    archive_write_set_format_pax_restricted(a);
    if (gz) {
        archive_write_add_filter_gzip(a);
    }
    if (archive_write_open_filename(a, p(name)) != ARCHIVE_OK) {
        archive_write_free(a);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].path);
        archive_entry_set_filetype(ae, e[i].type ? e[i].type : AE_IFREG);
        archive_entry_set_perm(ae, e[i].perm ? e[i].perm : 0644);
        archive_entry_set_mtime(ae, 1700000000, 0);
        if (e[i].link) {
            archive_entry_set_symlink(ae, e[i].link);
        }
        if (e[i].hard) {
            archive_entry_set_hardlink(ae, e[i].hard);
        }
        if (e[i].type == AE_IFCHR || e[i].type == AE_IFBLK) {
            archive_entry_set_rdev(ae, makedev(1, 3));
        }
        archive_entry_set_size(ae, e[i].data ? (la_int64_t)strlen(e[i].data) : 0);
        ok &= archive_write_header(a, ae) == ARCHIVE_OK;
        if (e[i].data && *e[i].data) {
            ok &= archive_write_data(a, e[i].data, strlen(e[i].data)) ==
                  (la_ssize_t)strlen(e[i].data);
        }
        archive_entry_free(ae);
    }
    ok &= archive_write_close(a) == ARCHIVE_OK;
    archive_write_free(a);
    return ok ? 0 : -1;
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "rb");
    size_t n;
    if (f == NULL) {
        return NULL;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Entries in the "rel" directory (where releases go): must stay empty after
 * a refusal, so no temporary directory is left either. */
static int count_rel(void)
{
    DIR *d = opendir(p("rel"));
    struct dirent *de;
    int n = 0;
    while (d != NULL && (de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.' || strncmp(de->d_name, ".unpack-", 8) == 0;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static const struct ent good[] = {
    {"./", AE_IFDIR, 0755},
    {"./bin/", AE_IFDIR, 0755},
    {"./bin/app", AE_IFREG, 0755, "#!/bin/sh\necho v1\n"},
    {"lib", AE_IFDIR, 0750},
    {"lib/v1/data.txt", AE_IFREG, 0640, "hello"},
    {"lib/current", AE_IFLNK, 0777, NULL, "v1"},
    {"lib/v1/up", AE_IFLNK, 0777, NULL, "../../bin/app"},
    {"lib/same.txt", AE_IFREG, 0644, NULL, NULL, "lib/v1/data.txt"},
    {"empty", AE_IFREG, 0600, ""},
    {"deep//a/./b/c.txt", AE_IFREG, 0644, "deep"},
};

static void check_good(const char *dest)
{
    char link[256], path[512];
    struct stat st;
    ssize_t n;
    snprintf(path, sizeof path, "%s/bin/app", dest);
    CHECK(slurp(path) != NULL && strcmp(slurp(path), "#!/bin/sh\necho v1\n") == 0);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0755 && st.st_mtime == 1700000000);
    snprintf(path, sizeof path, "%s/lib/current/data.txt", dest);
    CHECK(slurp(path) != NULL && strcmp(slurp(path), "hello") == 0);
    snprintf(path, sizeof path, "%s/lib/v1/up", dest);
    n = readlink(path, link, sizeof link - 1);
    CHECK(n == 13 && memcmp(link, "../../bin/app", 13) == 0);
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
    snprintf(path, sizeof path, "%s/lib/same.txt", dest);
    CHECK(stat(path, &st) == 0 && st.st_nlink == 2);
    snprintf(path, sizeof path, "%s/deep/a/b/c.txt", dest);
    CHECK(slurp(path) != NULL && strcmp(slurp(path), "deep") == 0);
    snprintf(path, sizeof path, "%s/empty", dest);
    CHECK(stat(path, &st) == 0 && st.st_size == 0 && (st.st_mode & 0777) == 0600);
}

TEST(good_tar_and_tgz)
{
    struct deploy_unpack_stats st;
    char err[FL_ERRMSG_SIZE] = "";
    int n = (int)(sizeof good / sizeof good[0]);
    REQUIRE(write_archive("good.tar", 0, good, n) == 0);
    REQUIRE(write_archive("good.tar.gz", 1, good, n) == 0);
    CHECK_OK(deploy_unpack(p("good.tar"), p("rel/v1"), NULL, &st, err));
    if (err[0]) {
        fprintf(stderr, "  %s\n", err);
    }
    check_good(p("rel/v1"));
    CHECK_EQ_INT(st.entries, n - 1);
    CHECK_EQ_INT(st.bytes, strlen("#!/bin/sh\necho v1\n") + 5 + 4);
    CHECK_OK(deploy_unpack(p("good.tar.gz"), p("rel/v2"), NULL, &st, err));
    check_good(p("rel/v2"));
    /* the destination must be new */
    CHECK_EQ_INT(deploy_unpack(p("good.tar"), p("rel/v1"), NULL, NULL, err), FL_EEXIST);
    CHECK_EQ_INT(count_rel(), 2);
    check_rmrf(p("rel"));
    mkdir(p("rel"), 0755);
}

/* Build the archive, unpack it, expect `code`, and nothing anywhere. */
static void refused(const char *what, int code, const struct ent *e, int n,
                    const struct deploy_unpack_opts *o)
{
    char err[FL_ERRMSG_SIZE] = "";
    int rv;
    REQUIRE(write_archive("bad.tar", n % 2, e, n) == 0);
    rv = deploy_unpack(p("bad.tar"), p("rel/v1"), o, NULL, err);
    fprintf(stderr, "  %-22s -> %s: %s\n", what, fl_errname(rv), err);
    CHECK_EQ_INT(rv, code);
    CHECK(err[0] != '\0');
    CHECK(!exists(p("rel/v1")));
    CHECK_EQ_INT(count_rel(), 0);
    CHECK(!exists(p("evil")));
    CHECK(!exists("/tmp/flotilla-unpack-evil"));
}

#define REFUSED(what, code, ...)                                                                   \
    do {                                                                                           \
        const struct ent e_[] = {{"ok.txt", AE_IFREG, 0644, "fine"}, __VA_ARGS__};                 \
        refused(what, code, e_, (int)(sizeof e_ / sizeof e_[0]), NULL);                            \
    } while (0)

TEST(refused_paths)
{
    REFUSED("dotdot", FL_EINVAL, {"../evil", AE_IFREG, 0644, "x"});
    REFUSED("inner dotdot", FL_EINVAL, {"a/b/../../../evil", AE_IFREG, 0644, "x"});
    REFUSED("dotdot dir", FL_EINVAL, {"..", AE_IFDIR, 0755});
    REFUSED("absolute", FL_EINVAL, {"/tmp/flotilla-unpack-evil", AE_IFREG, 0644, "x"});
}

TEST(refused_links)
{
    REFUSED("symlink absolute", FL_EINVAL, {"l", AE_IFLNK, 0777, NULL, "/etc"});
    REFUSED("symlink up", FL_EINVAL, {"l", AE_IFLNK, 0777, NULL, ".."});
    REFUSED("symlink deep up", FL_EINVAL, {"a/b/l", AE_IFLNK, 0777, NULL, "../../../evil"});
    REFUSED("symlink inner dotdot", FL_EINVAL, {"d", AE_IFLNK, 0777, NULL, "."},
            {"l", AE_IFLNK, 0777, NULL, "d/.."});
    REFUSED("symlink empty", FL_EINVAL, {"l", AE_IFLNK, 0777, NULL, ""});
    /* a link that stays inside, then a file written through it */
    REFUSED("write through link", FL_EINVAL, {"sub", AE_IFDIR, 0755},
            {"l", AE_IFLNK, 0777, NULL, "sub"}, {"l/x", AE_IFREG, 0644, "x"});
    REFUSED("hardlink up", FL_EINVAL, {"h", AE_IFREG, 0644, NULL, NULL, "../evil"});
    REFUSED("hardlink absolute", FL_EINVAL, {"h", AE_IFREG, 0644, NULL, NULL, "/etc/passwd"});
    REFUSED("hardlink to symlink", FL_EINVAL, {"a/b/l", AE_IFLNK, 0777, NULL, "../../ok.txt"},
            {"h", AE_IFREG, 0644, NULL, NULL, "a/b/l"});
    REFUSED("hardlink missing", FL_EINVAL, {"h", AE_IFREG, 0644, NULL, NULL, "nothing"});
}

TEST(refused_types)
{
    REFUSED("char device", FL_EINVAL, {"null", AE_IFCHR, 0666});
    REFUSED("block device", FL_EINVAL, {"sda", AE_IFBLK, 0660});
    REFUSED("fifo", FL_EINVAL, {"fifo", AE_IFIFO, 0644});
    REFUSED("setuid", FL_EINVAL, {"suid", AE_IFREG, 04755, "x"});
    REFUSED("setgid", FL_EINVAL, {"sgid", AE_IFREG, 02755, "x"});
    REFUSED("duplicate", FL_EEXIST, {"ok.txt", AE_IFREG, 0644, "again"});
}

TEST(limits)
{
    static char big[9000];
    struct deploy_unpack_opts o = {0};
    struct ent e[40];
    memset(big, 'b', sizeof big - 1);
    for (int i = 0; i < 40; i++) {
        static char names[40][16];
        snprintf(names[i], sizeof names[i], "f%d", i);
        e[i] = (struct ent){names[i], AE_IFREG, 0644, i == 39 ? big : "0123456789"};
    }
    o.max_entries = 20;
    refused("too many entries", FL_ETOOBIG, e, 40, &o);
    o.max_entries = 0;
    o.max_bytes = 8000;
    refused("too many bytes", FL_ETOOBIG, e, 40, &o);
    o.max_bytes = 400 + 8999;
    {
        char err[FL_ERRMSG_SIZE] = "";
        REQUIRE(write_archive("fits.tar", 0, e, 40) == 0);
        CHECK_OK(deploy_unpack(p("fits.tar"), p("rel/v1"), &o, NULL, err));
        check_rmrf(p("rel/v1"));
    }
}

TEST(broken_archives)
{
    char err[FL_ERRMSG_SIZE] = "";
    int n = (int)(sizeof good / sizeof good[0]), rv;
    FILE *f;
    long len;
    REQUIRE(write_archive("good.tar.gz", 1, good, n) == 0);
    REQUIRE(write_archive("good.tar", 0, good, n) == 0);
    f = fopen(p("good.tar.gz"), "rb+");
    REQUIRE(f != NULL);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fclose(f);
    CHECK(truncate(p("good.tar.gz"), len / 2) == 0);
    rv = deploy_unpack(p("good.tar.gz"), p("rel/v1"), NULL, NULL, err);
    fprintf(stderr, "  truncated tar.gz -> %s: %s\n", fl_errname(rv), err);
    CHECK_EQ_INT(rv, FL_EDECODE);
    CHECK_EQ_INT(count_rel(), 0);
    f = fopen(p("junk"), "wb");
    REQUIRE(f != NULL);
    fputs("this is not an archive at all, just some text that goes on and on", f);
    fclose(f);
    rv = deploy_unpack(p("junk"), p("rel/v1"), NULL, NULL, err);
    fprintf(stderr, "  junk -> %s: %s\n", fl_errname(rv), err);
    CHECK_EQ_INT(rv, FL_EDECODE);
    CHECK_EQ_INT(count_rel(), 0);
    CHECK_EQ_INT(deploy_unpack(p("nothing.tar"), p("rel/v1"), NULL, NULL, err), FL_ENOTFOUND);
    CHECK_EQ_INT(deploy_unpack(p("good.tar"), p("no/such/parent"), NULL, NULL, err), FL_ENOTFOUND);
    CHECK_EQ_INT(count_rel(), 0);
}

TEST(path_rules)
{
    char out[PATH_MAX], err[FL_ERRMSG_SIZE];
    CHECK_OK(deploy_unpack_path("./a//b/./c/", out, err));
    CHECK_EQ_STR(out, "a/b/c");
    CHECK_EQ_INT(deploy_unpack_path("./", out, err), FL_ENOTFOUND);
    CHECK_EQ_INT(deploy_unpack_path("", out, err), FL_ENOTFOUND);
    CHECK_EQ_INT(deploy_unpack_path("a/..", out, err), FL_EINVAL);
    CHECK_EQ_INT(deploy_unpack_path("/a", out, err), FL_EINVAL);
    CHECK_OK(deploy_unpack_path("a/..b/c..", out, err));
    CHECK_OK(deploy_unpack_link_ok("a/b/l", "../../x", err));
    CHECK_OK(deploy_unpack_link_ok("a/l", "./../x/./y", err));
    CHECK_EQ_INT(deploy_unpack_link_ok("a/l", "../../x", err), FL_EINVAL);
    CHECK_EQ_INT(deploy_unpack_link_ok("a/b/l", "x/../../y", err), FL_EINVAL);
    CHECK_EQ_INT(deploy_unpack_link_ok("l", "/x", err), FL_EINVAL);
}

TEST(memory_input)
{
    char err[FL_ERRMSG_SIZE] = "", *buf;
    int n = (int)(sizeof good / sizeof good[0]);
    FILE *f;
    long len;
    REQUIRE(write_archive("good.tar", 0, good, n) == 0);
    f = fopen(p("good.tar"), "rb");
    REQUIRE(f != NULL);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len);
    CHECK(fread(buf, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    CHECK_OK(deploy_unpack_mem(buf, (size_t)len, p("rel/m"), NULL, NULL, err));
    check_good(p("rel/m"));
    free(buf);
    check_rmrf(p("rel/m"));
}

/* Archives made by GNU tar (GNU and pax formats, gzip, long names) unpack
 * to the same tree (diff -r without following links). */
TEST(gnu_tar_archives)
{
    static const char *formats[] = {"gnu", "pax"};
    char cmd[8192], err[FL_ERRMSG_SIZE] = "", src[600], rel[600];
    const char *longname = "this-directory-name-is-long-enough-that-the-path-needs-a-gnu-"
                           "longname-or-pax-record-0123456789-abcdefghijklmnopqrstuvwxyz";
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p %s; cd %s; mkdir -p bin L/deeper; printf run > bin/app;"
             " chmod 755 bin/app; printf data > L/deeper/f; ln -s ../bin/app L/app;"
             " ln bin/app bin/app2; mv L %s",
             src, src, longname);
    REQUIRE(system(cmd) == 0);
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "tar --format=%s -C %s -czf %s/g.tgz .", formats[i], src, dir);
        REQUIRE(system(cmd) == 0);
        snprintf(rel, sizeof rel, "%s/rel/g-%s", dir, formats[i]);
        CHECK_OK(deploy_unpack(p("g.tgz"), rel, NULL, NULL, err));
        if (err[0]) {
            fprintf(stderr, "  %s: %s\n", formats[i], err);
        }
        snprintf(cmd, sizeof cmd, "diff -r --no-dereference %s %s", src, rel);
        CHECK_EQ_INT(system(cmd), 0);
        check_rmrf(rel);
    }
    check_rmrf(src);
}

int main(void)
{
    if (check_tmpdir(dir, sizeof dir) == NULL || mkdir(p("rel"), 0755) != 0) {
        fprintf(stderr, "no temporary directory\n");
        return 1;
    }
    RUN(path_rules);
    RUN(good_tar_and_tgz);
    RUN(refused_paths);
    RUN(refused_links);
    RUN(refused_types);
    RUN(limits);
    RUN(broken_archives);
    RUN(memory_input);
    RUN(gnu_tar_archives);
    check_rmrf(dir);
    return check_summary();
}
