/* Replays the committed fuzz corpora through the decoders in every test run:
 * the seeds must decode, and anything the fuzzers once found stays fixed. */
#include <dirent.h>

#include "agentproto/aproto.h"
#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "raft/rg_cmd.h"
#include "store/store.h"

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = fl_malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fl_free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Calls fn for each file in corpus/NAME; returns how many there were. */
static int each(const char *name, void (*fn)(const char *file, const uint8_t *p, size_t n))
{
    char dir[4096];
    DIR *d;
    struct dirent *de;
    int count = 0;
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", FLOTILLA_SOURCE_DIR, name);
    d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        char path[8192];
        size_t len;
        uint8_t *p;
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        p = slurp(path, &len);
        CHECK(p != NULL);
        if (p != NULL) {
            fn(de->d_name, p, len);
            fl_free(p);
            count++;
        }
    }
    closedir(d);
    return count;
}

static void cmd_seed(const char *file, const uint8_t *p, size_t n)
{
    struct rg_entry e;
    int rv = rg_entry_open(&e, p, n);
    if (strncmp(file, "crash-", 6) != 0) {
        CHECK_EQ_INT(rv, FL_OK);
    }
    if (rv == FL_OK) {
        for (unsigned i = 0; i < e.n_cmds; i++) {
            struct rg_cmd c;
            if (rg_entry_cmd(&e, i, &c) == FL_OK && strncmp(file, "crash-", 6) != 0) {
                CHECK_OK(rg_cmd_validate(&c, NULL));
            }
        }
    }
    rg_entry_close(&e);
}

static void snapshot_seed(const char *file, const uint8_t *p, size_t n)
{
    char dir[256];
    struct store *st;
    int loaded = -1, rv;
    REQUIRE(check_tmpdir(dir, sizeof dir) != NULL);
    CHECK_OK(store_open(dir, NULL, &st, NULL));
    rv = store_load(st, p, n, &loaded);
    if (strncmp(file, "crash-", 6) != 0) {
        CHECK_EQ_INT(rv, FL_OK);
    }
    store_close(st);
    check_rmrf(dir);
}

/* An aproto seed is a stream of frames: all of them must decode. A crash-
 * file only has to go through the reader and the decoder without harm. */
static void aproto_seed(const char *file, const uint8_t *p, size_t n)
{
    int crash = strncmp(file, "crash-", 6) == 0, rv, frames = 0;
    struct aproto_reader r;
    struct aproto_msg m;
    size_t off = 0, used;
    (void)aproto_decode(p, n, &m); /* the fuzzer also tries the input as a payload */
    aproto_msg_close(&m);
    aproto_reader_init(&r, 0);
    while (off < n && aproto_reader_feed(&r, p + off, n - off, &used) == FL_OK) {
        off += used;
        while ((rv = aproto_reader_next(&r, &m)) != APROTO_NEED_MORE && r.err == FL_OK) {
            if (!crash) {
                CHECK_OK(rv);
                CHECK_OK(aproto_msg_validate(&m, NULL));
            }
            aproto_msg_close(&m);
            frames++;
        }
    }
    if (!crash) {
        CHECK(frames > 0);
        CHECK_EQ_INT(r.err, FL_OK);
        CHECK_EQ_INT(aproto_reader_buffered(&r), 0);
    }
    aproto_reader_close(&r);
}

TEST(cmd_corpus)
{
    CHECK(each("cmd", cmd_seed) >= 3);
}

TEST(snapshot_corpus)
{
    CHECK(each("snapshot", snapshot_seed) >= 2);
}

TEST(aproto_corpus)
{
    CHECK(each("aproto", aproto_seed) >= 12);
}

int main(void)
{
    RUN(cmd_corpus);
    RUN(snapshot_corpus);
    RUN(aproto_corpus);
    return check_summary();
}
