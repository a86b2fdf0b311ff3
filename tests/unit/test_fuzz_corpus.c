/* Replays the committed fuzz corpora through the decoders in every test run:
 * the seeds must decode, and anything the fuzzers once found stays fixed. */
#include <dirent.h>

#include "agentproto/aproto.h"
#include "check.h"
#include "fuzz/blob_driver.h"
#include "fuzz/cmd_driver.h"
#include "fuzz/cron_driver.h"
#include "fuzz/http_driver.h"
#include "fuzz/spec_driver.h"
#include "fuzz/csr_driver.h"
#include "fuzz/tlink_driver.h"
#include "fuzz/schema_driver.h"
#include "common/alloc.h"
#include "common/err.h"
#include "deploy/delta.h"
#include "deploy/unpack.h"
#include "fsm/cmd.h"
#include "store/store.h"
#include "store/store_int.h"

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
    struct fsm_entry e;
    int rv;
    (void)cmd_fuzz_entry(p, n); /* the fuzzer's checks */
    rv = fsm_entry_open(&e, p, n);
    if (strncmp(file, "crash-", 6) != 0) {
        CHECK_EQ_INT(rv, FL_OK);
    }
    if (rv == FL_OK) {
        for (unsigned i = 0; i < e.n_cmds; i++) {
            struct fsm_cmd c;
            if (fsm_entry_cmd(&e, i, &c) == FL_OK && strncmp(file, "crash-", 6) != 0) {
                CHECK_OK(fsm_cmd_validate(&c, NULL));
            }
        }
    }
    fsm_entry_close(&e);
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

/* A store record seed: byte 0 picks the format; seeds decode. */
static void records_seed(const char *file, const uint8_t *p, size_t n)
{
    int ok;
    REQUIRE(n >= 1);
    ok = schema_fuzz_record(store__formats[p[0] % store__n_formats], p + 1, n - 1);
    if (strncmp(file, "crash-", 6) != 0) {
        CHECK(ok);
    }
}

TEST(records_corpus)
{
    CHECK(each("records", records_seed) >= 2 * (int)store__n_formats);
}

TEST(aproto_corpus)
{
    CHECK(each("aproto", aproto_seed) >= 12);
}

/* Cron seeds run through the fuzz driver (it aborts on a broken invariant);
 * those named bad-* or never-* must be refused by cron_parse, the others
 * (not TZif) accepted. */
static void cron_seed(const char *file, const uint8_t *p, size_t n)
{
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    cron_fuzz_one(p, n);
    if (n > 9 && !(p[0] & 0x80)) {
        char text[512], err[FL_ERRMSG_SIZE];
        struct cron_expr e;
        size_t len = n - 9 < sizeof text - 1 ? n - 9 : sizeof text - 1;
        memcpy(text, p + 9, len);
        text[len] = '\0';
        int bad = strncmp(base, "bad-", 4) == 0 || strncmp(base, "never-", 6) == 0;
        int rv = cron_parse(text, &e, err);
        if (bad != (rv != FL_OK)) {
            fprintf(stderr, "cron seed %s: \"%s\" parse %s\n", base, text, fl_errname(rv));
        }
        CHECK(bad == (rv != FL_OK));
    }
}

/* Request bodies: ok-* must be accepted (and pass the driver's invariants),
 * bad-* refused. */
static void spec_seed(const char *file, const uint8_t *p, size_t n)
{
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    int ok = spec_fuzz_one(p, n);
    int want = strncmp(base, "ok-", 3) == 0;
    if (ok != want) {
        fprintf(stderr, "spec seed %s: accepted %d\n", base, ok);
    }
    CHECK(ok == want);
}

TEST(spec_corpus)
{
    CHECK(each("spec", spec_seed) >= 26);
}

/* Blob link messages: ok-* accepted (and re-encode), bad-* refused. */
static void blob_seed(const char *file, const uint8_t *p, size_t n)
{
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    int ok = blob_fuzz_one(p, n);
    if (ok != (strncmp(base, "ok-", 3) == 0)) {
        fprintf(stderr, "blob seed %s: accepted %d\n", base, ok);
    }
    CHECK(ok == (strncmp(base, "ok-", 3) == 0));
}

TEST(blob_corpus)
{
    CHECK(each("blob", blob_seed) >= 10);
}

/* Raw requests (fuzz/http_driver.h, which aborts on a broken invariant). A
 * seed's name starts with the statuses of the answers it must get, in
 * order ("200-404-405-pipelined"); a name without them gets no answer. A
 * crash- file only has to go through. */
static void http_seed(const char *file, const uint8_t *p, size_t n)
{
    int want[16], got[64];
    size_t nw = 0, ng;
    const char *q = file;
    int ok;
    while (nw < 16 && q[0] >= '1' && q[0] <= '5' && q[1] >= '0' && q[1] <= '9' && q[2] >= '0' &&
           q[2] <= '9' && q[3] == '-') {
        want[nw++] = (q[0] - '0') * 100 + (q[1] - '0') * 10 + (q[2] - '0');
        q += 4;
    }
    ng = http_fuzz_one(p, n, got, 64);
    if (strncmp(file, "crash-", 6) == 0) {
        return;
    }
    ok = ng == nw;
    for (size_t i = 0; ok && i < nw; i++) {
        ok = got[i] == want[i];
    }
    if (!ok) {
        fprintf(stderr, "http seed %s: %zu answers:", file, ng);
        for (size_t i = 0; i < ng && i < 64; i++) {
            fprintf(stderr, " %d", got[i]);
        }
        fprintf(stderr, "\n");
    }
    CHECK(ok);
}

TEST(http_corpus)
{
    CHECK(each("http", http_seed) >= 30);
    http_fuzz_stop();
}

TEST(cron_corpus)
{
    CHECK(each("cron", cron_seed) >= 12);
}

static void tlink_seed(const char *file, const uint8_t *p, size_t n)
{
    (void)file;
    tlink_fuzz_one(p, n); /* aborts on a broken invariant */
}

/* The TLS link: the seeds run through the fuzzed code, and the captured
 * ClientHello still gets a server flight from a fresh responder (so the
 * fuzzer starts past the record layer). */
TEST(tlink_corpus)
{
    struct tlink_config c;
    struct tlink *l;
    struct fl_buf wire, plain;
    char path[4096];
    uint8_t *hello;
    size_t len = 0;
    CHECK(each("tlink", tlink_seed) >= 10);
    snprintf(path, sizeof path, "%s/fuzz/corpus/tlink/client-hello", FLOTILLA_SOURCE_DIR);
    hello = slurp(path, &len);
    REQUIRE(hello != NULL && len > 1);
    memset(&c, 0, sizeof c);
    c.creds = tlink_fuzz_server;
    c.kind = TLINK_AGENT;
    REQUIRE(tlink_create(&c, 0, &l, NULL) == FL_OK);
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    CHECK_OK(tlink_recv(l, hello + 1, len - 1, &wire, &plain));
    CHECK(wire.len > 1000); /* ServerHello, its certificate, CertificateRequest, Finished */
    tlink_destroy(l);
    fl_buf_close(&wire);
    fl_buf_close(&plain);
    fl_free(hello);
}

static int csr_signed;

static void csr_seed(const char *file, const uint8_t *p, size_t n)
{
    int ok = csr_fuzz_one(p, n); /* aborts on a broken invariant */
    if (ok) {
        csr_signed++;
    }
    if (ok != (strncmp(file, "valid-", 6) == 0)) {
        fprintf(stderr, "csr seed %s: signed %d\n", file, ok);
        check__failed_now = 1;
    }
}

/* Requests: the valid ones are signed, every variant is refused. */
TEST(csr_corpus)
{
    CHECK(each("csr", csr_seed) >= 8);
    CHECK_EQ_INT(csr_signed, 2);
}

/* Package seeds (fuzz/fuzz_unpack.c): "ok-" archives unpack, "bad-" ones
 * are refused, and either way nothing but the release is left. */
static void unpack_seed(const char *file, const uint8_t *p, size_t n)
{
    struct deploy_unpack_opts o = {.max_entries = 256, .max_bytes = 1u << 20};
    char dir[256], rel[300], err[FL_ERRMSG_SIZE] = "";
    int rv;
    REQUIRE(check_tmpdir(dir, sizeof dir) != NULL);
    snprintf(rel, sizeof rel, "%s/rel", dir);
    rv = deploy_unpack_mem(p, n, rel, &o, NULL, err);
    if (strncmp(file, "ok-", 3) == 0) {
        CHECK_EQ_INT(rv, FL_OK);
    } else if (strncmp(file, "bad-", 4) == 0) {
        CHECK(rv != FL_OK);
        CHECK(opendir(rel) == NULL);
    }
    if (rv != FL_OK && strncmp(file, "ok-", 3) == 0) {
        fprintf(stderr, "  %s: %s\n", file, err);
    }
    check_rmrf(dir);
}

/* Delta seeds (fuzz/fuzz_delta.c): the first byte picks patch (even) or
 * signature (odd); the basis is the harness's 16 KiB formula. */
static void delta_seed(const char *file, const uint8_t *p, size_t n)
{
    struct deploy_delta_opts o = {.max_out = 1u << 20};
    char dir[256], basis[300], input[300], out[300];
    FILE *f;
    int rv;
    REQUIRE(n > 0 && check_tmpdir(dir, sizeof dir) != NULL);
    snprintf(basis, sizeof basis, "%s/basis", dir);
    snprintf(input, sizeof input, "%s/input", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    f = fopen(basis, "wb");
    REQUIRE(f != NULL);
    for (size_t i = 0; i < 16384; i++) {
        fputc((uint8_t)((i * 2654435761u) >> 13), f);
    }
    fclose(f);
    f = fopen(input, "wb");
    REQUIRE(f != NULL);
    CHECK(n == 1 || fwrite(p + 1, 1, n - 1, f) == n - 1);
    fclose(f);
    rv = p[0] & 1 ? deploy_delta(input, basis, out, &o, NULL, NULL)
                  : deploy_patch(basis, input, out, NULL, NULL, &o, NULL, NULL);
    if (strncmp(file, "ok-", 3) == 0) {
        CHECK_EQ_INT(rv, FL_OK);
    } else if (strncmp(file, "bad-", 4) == 0) {
        CHECK(rv != FL_OK);
        CHECK(fopen(out, "rb") == NULL);
    }
    check_rmrf(dir);
}

TEST(unpack_corpus)
{
    CHECK(each("unpack", unpack_seed) >= 10);
}

TEST(delta_corpus)
{
    CHECK(each("delta", delta_seed) >= 5);
}

int main(void)
{
    RUN(cmd_corpus);
    RUN(snapshot_corpus);
    RUN(aproto_corpus);
    RUN(records_corpus);
    RUN(cron_corpus);
    RUN(spec_corpus);
    RUN(tlink_corpus);
    RUN(csr_corpus);
    RUN(blob_corpus);
    RUN(unpack_corpus);
    RUN(delta_corpus);
    RUN(http_corpus);
    return check_summary();
}
