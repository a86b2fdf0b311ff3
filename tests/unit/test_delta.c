/* deploy/delta: round trips on random files with small edits, damaged and
 * truncated deltas, wrong bases, the fetch rule, and interop with Debian's
 * `rdiff` in both directions (librsync's format byte for byte). */
#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "deploy/delta.h"

static char dir[256];
static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)next();
    }
}

static char *path(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static int write_file(const char *name, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path(name), "wb");
    size_t w;
    if (f == NULL) {
        return -1;
    }
    w = n ? fwrite(p, 1, n, f) : 0;
    fclose(f);
    return w == n ? 0 : -1;
}

static uint8_t *read_file(const char *name, size_t *n)
{
    FILE *f = fopen(path(name), "rb");
    uint8_t *p;
    long len;
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

static int exists(const char *name)
{
    struct stat st;
    return lstat(path(name), &st) == 0;
}

/* Files in the test directory whose name contains ".part-": leftovers. */
static int leftovers(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d != NULL && (de = readdir(d)) != NULL) {
        n += strstr(de->d_name, ".part-") != NULL;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    uint8_t *pa = read_file(a, &na), *pb = read_file(b, &nb);
    int same = pa != NULL && pb != NULL && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

/* sig(old) -> delta(new) -> patch(old) == new, with the hash checked. */
static void round_trip(const uint8_t *old, size_t nold, const uint8_t *nw, size_t nnew,
                       uint64_t *delta_size)
{
    char err[FL_ERRMSG_SIZE] = "";
    uint8_t want[DEPLOY_HASH_SIZE], got[DEPLOY_HASH_SIZE];
    struct deploy_delta_stats st;
    REQUIRE(write_file("old", old, nold) == 0 && write_file("new", nw, nnew) == 0);
    unlink(path("out"));
    CHECK_OK(deploy_signature(path("old"), path("sig"), NULL, NULL, err));
    CHECK_OK(deploy_delta(path("sig"), path("new"), path("delta"), NULL, &st, err));
    CHECK_EQ_INT(st.in_bytes, nnew);
    CHECK_OK(deploy_hash_file(path("new"), want, NULL, err));
    CHECK_OK(deploy_patch(path("old"), path("delta"), path("out"), want, got, NULL, NULL, err));
    if (err[0]) {
        fprintf(stderr, "  error: %s\n", err);
    }
    CHECK(memcmp(want, got, DEPLOY_HASH_SIZE) == 0);
    CHECK(same_file("out", "new"));
    CHECK_EQ_INT(leftovers(), 0);
    if (delta_size != NULL) {
        *delta_size = st.out_bytes;
    }
}

#define BIG (3u * 1024 * 1024)

TEST(round_trip_edits)
{
    uint8_t *old = malloc(BIG), *nw = malloc(BIG + 4096);
    uint64_t dsize = 0;
    REQUIRE(old != NULL && nw != NULL);
    fill_random(old, BIG);

    /* identical: the delta is a few bytes of copy commands */
    round_trip(old, BIG, old, BIG, &dsize);
    CHECK(dsize < 1024);

    /* insert 100 bytes at 3 places */
    {
        size_t at[3] = {1000, BIG / 2, BIG - 10}, o = 0, n = 0;
        for (int i = 0; i < 3; i++) {
            memcpy(nw + n, old + o, at[i] - o);
            n += at[i] - o;
            o = at[i];
            fill_random(nw + n, 100);
            n += 100;
        }
        memcpy(nw + n, old + o, BIG - o);
        n += BIG - o;
        round_trip(old, BIG, nw, n, &dsize);
        CHECK(dsize < 20000);
    }
    /* delete 5000 bytes in the middle */
    memcpy(nw, old, BIG / 3);
    memcpy(nw + BIG / 3, old + BIG / 3 + 5000, BIG - BIG / 3 - 5000);
    round_trip(old, BIG, nw, BIG - 5000, &dsize);
    CHECK(dsize < 20000);

    /* change 1% of the bytes in 60 scattered runs: the delta stays small */
    memcpy(nw, old, BIG);
    for (int i = 0; i < 60; i++) {
        size_t at = (size_t)(next() % (BIG - 600));
        fill_random(nw + at, BIG / 100 / 60);
    }
    round_trip(old, BIG, nw, BIG, &dsize);
    fprintf(stderr, "  1%% in 60 runs: delta %llu bytes (%.2f%%)\n", (unsigned long long)dsize,
            100.0 * (double)dsize / BIG);
    CHECK(dsize < BIG / 20);

    /* change 1% of bytes, each byte alone: every block differs, delta ~ whole */
    memcpy(nw, old, BIG);
    for (size_t i = 0; i < BIG / 100; i++) {
        nw[next() % BIG] ^= 0x5a;
    }
    round_trip(old, BIG, nw, BIG, &dsize);
    CHECK(dsize > BIG / 2);
    CHECK_EQ_INT(deploy_fetch_choose(1, 0, BIG, dsize),
                 dsize > BIG / 100 * 80 ? DEPLOY_FETCH_WHOLE : DEPLOY_FETCH_DELTA);
    free(old);
    free(nw);
}

TEST(round_trip_small)
{
    uint8_t a[5000], b[5000];
    fill_random(a, sizeof a);
    fill_random(b, sizeof b);
    round_trip(a, 0, b, 0, NULL);        /* empty to empty */
    round_trip(a, 0, b, sizeof b, NULL); /* empty basis: all literal */
    round_trip(a, sizeof a, b, 0, NULL); /* to empty */
    round_trip(a, 1, b, 1, NULL);
    round_trip(a, sizeof a, a, 4999, NULL);
}

/* A prepared old/new/delta set for the failure tests. */
static void prepare(uint8_t want[DEPLOY_HASH_SIZE])
{
    static uint8_t old[200000], nw[200000];
    char err[FL_ERRMSG_SIZE];
    fill_random(old, sizeof old);
    memcpy(nw, old, sizeof nw);
    fill_random(nw + 50000, 3000);
    (void)write_file("old", old, sizeof old);
    (void)write_file("new", nw, sizeof nw);
    CHECK_OK(deploy_signature(path("old"), path("sig"), NULL, NULL, err));
    CHECK_OK(deploy_delta(path("sig"), path("new"), path("delta"), NULL, NULL, err));
    CHECK_OK(deploy_hash_file(path("new"), want, NULL, err));
    unlink(path("out"));
}

TEST(truncated_delta)
{
    uint8_t want[DEPLOY_HASH_SIZE];
    char err[FL_ERRMSG_SIZE] = "";
    size_t n;
    uint8_t *d;
    prepare(want);
    d = read_file("delta", &n);
    REQUIRE(d != NULL);
    for (size_t cut = 0; cut < n; cut += n / 7 + 1) {
        REQUIRE(write_file("delta.cut", d, cut) == 0);
        int rv =
            deploy_patch(path("old"), path("delta.cut"), path("out"), want, NULL, NULL, NULL, err);
        CHECK_EQ_INT(rv, FL_EDECODE);
        CHECK(!exists("out"));
        CHECK_EQ_INT(leftovers(), 0);
    }
    fprintf(stderr, "  truncated: %s\n", err);
    CHECK(strstr(err, "delta.cut") != NULL);
    free(d);
}

TEST(corrupted_delta)
{
    uint8_t want[DEPLOY_HASH_SIZE];
    char err[FL_ERRMSG_SIZE] = "";
    size_t n;
    uint8_t *d;
    int refused = 0;
    prepare(want);
    d = read_file("delta", &n);
    REQUIRE(d != NULL && n > 100);
    /* every byte position class: the magic, command bytes, literal data */
    for (size_t at = 0; at < n; at += n / 40 + 1) {
        d[at] ^= 0xff;
        REQUIRE(write_file("delta.bad", d, n) == 0);
        d[at] ^= 0xff;
        int rv =
            deploy_patch(path("old"), path("delta.bad"), path("out"), want, NULL, NULL, NULL, err);
        CHECK(rv == FL_EDECODE || rv == FL_ECORRUPT);
        refused += rv != FL_OK;
        CHECK(!exists("out"));
        CHECK_EQ_INT(leftovers(), 0);
    }
    CHECK(refused > 30);
    /* not a delta at all */
    REQUIRE(write_file("delta.bad", (const uint8_t *)"hello world", 11) == 0);
    CHECK_EQ_INT(
        deploy_patch(path("old"), path("delta.bad"), path("out"), want, NULL, NULL, NULL, err),
        FL_EDECODE);
    fprintf(stderr, "  bad magic: %s\n", err);
    CHECK(strstr(err, "magic") != NULL);
    CHECK(!exists("out"));
    free(d);
}

TEST(wrong_basis)
{
    uint8_t want[DEPLOY_HASH_SIZE], other[200000];
    char err[FL_ERRMSG_SIZE] = "";
    prepare(want);
    /* same size, other bytes: librsync cannot tell, the hash does */
    fill_random(other, sizeof other);
    REQUIRE(write_file("other", other, sizeof other) == 0);
    CHECK_EQ_INT(
        deploy_patch(path("other"), path("delta"), path("out"), want, NULL, NULL, NULL, err),
        FL_ECORRUPT);
    fprintf(stderr, "  wrong basis: %s\n", err);
    CHECK(strstr(err, "hash") != NULL);
    CHECK(!exists("out"));
    /* a shorter basis: the delta copies beyond its end */
    REQUIRE(write_file("other", other, 1000) == 0);
    CHECK_EQ_INT(
        deploy_patch(path("other"), path("delta"), path("out"), want, NULL, NULL, NULL, err),
        FL_EDECODE);
    fprintf(stderr, "  short basis: %s\n", err);
    CHECK(!exists("out"));
    /* a missing basis */
    CHECK_EQ_INT(
        deploy_patch(path("nothing"), path("delta"), path("out"), want, NULL, NULL, NULL, err),
        FL_ENOTFOUND);
    CHECK(!exists("out"));
    CHECK_EQ_INT(leftovers(), 0);
}

TEST(existing_output_kept_on_failure)
{
    uint8_t want[DEPLOY_HASH_SIZE], other[200000];
    char err[FL_ERRMSG_SIZE];
    size_t n;
    uint8_t *p;
    prepare(want);
    REQUIRE(write_file("out", (const uint8_t *)"previous", 8) == 0);
    fill_random(other, sizeof other);
    REQUIRE(write_file("other", other, sizeof other) == 0);
    CHECK_EQ_INT(
        deploy_patch(path("other"), path("delta"), path("out"), want, NULL, NULL, NULL, err),
        FL_ECORRUPT);
    p = read_file("out", &n);
    CHECK(p != NULL && n == 8 && memcmp(p, "previous", 8) == 0);
    free(p);
    unlink(path("out"));
}

TEST(bad_signatures)
{
    uint8_t want[DEPLOY_HASH_SIZE];
    char err[FL_ERRMSG_SIZE] = "", cmd[2048];
    size_t n;
    uint8_t *s;
    prepare(want);
    s = read_file("sig", &n);
    REQUIRE(s != NULL && n > 12);
    /* librsync's BLAKE2 + RabinKarp magic, block length, strong length 16 */
    CHECK(s[0] == 'r' && s[1] == 's' && s[2] == 0x01 && s[3] == 'G');
    CHECK_EQ_INT(s[11], DEPLOY_STRONG_LEN);
    /* truncated inside a block's sums */
    REQUIRE(write_file("sig.bad", s, n - 3) == 0);
    CHECK_EQ_INT(deploy_delta(path("sig.bad"), path("new"), path("d2"), NULL, NULL, err),
                 FL_EDECODE);
    fprintf(stderr, "  truncated signature: %s\n", err);
    CHECK(!exists("d2"));
    /* not a signature */
    REQUIRE(write_file("sig.bad", (const uint8_t *)"garbage!garbage!", 16) == 0);
    CHECK_EQ_INT(deploy_delta(path("sig.bad"), path("new"), path("d2"), NULL, NULL, err),
                 FL_EDECODE);
    /* MD4 signatures (rdiff -H md4) are refused */
    snprintf(cmd, sizeof cmd, "rdiff -H md4 signature %s %s", path("old"), path("sig.md4"));
    if (system(cmd) == 0) {
        CHECK_EQ_INT(deploy_delta(path("sig.md4"), path("new"), path("d2"), NULL, NULL, err),
                     FL_EVERSION);
        fprintf(stderr, "  md4: %s\n", err);
    } else {
        CHECK(!"rdiff is missing: apt-get install rdiff");
    }
    CHECK(!exists("d2"));
    CHECK_EQ_INT(leftovers(), 0);
    free(s);
}

TEST(delta_limit)
{
    uint8_t a[100000], b[100000];
    char err[FL_ERRMSG_SIZE] = "";
    struct deploy_delta_opts o = {0};
    fill_random(a, sizeof a);
    fill_random(b, sizeof b);
    REQUIRE(write_file("old", a, sizeof a) == 0 && write_file("new", b, sizeof b) == 0);
    CHECK_OK(deploy_signature(path("old"), path("sig"), NULL, NULL, err));
    o.max_out = deploy_delta_limit(sizeof b);
    CHECK_EQ_INT(o.max_out, 80000);
    unlink(path("delta"));
    CHECK_EQ_INT(deploy_delta(path("sig"), path("new"), path("delta"), &o, NULL, err), FL_ETOOBIG);
    fprintf(stderr, "  limit: %s\n", err);
    CHECK(!exists("delta"));
    CHECK_EQ_INT(leftovers(), 0);
    /* with the basis as the new file, it fits */
    CHECK_OK(deploy_delta(path("sig"), path("old"), path("delta"), &o, NULL, err));
    /* a patch is bounded too (a delta may repeat copies of the basis) */
    o.max_out = sizeof a - 1;
    CHECK_EQ_INT(deploy_patch(path("old"), path("delta"), path("out"), NULL, NULL, &o, NULL, err),
                 FL_ETOOBIG);
    CHECK(!exists("out"));
    o.max_out = sizeof a;
    CHECK_OK(deploy_patch(path("old"), path("delta"), path("out"), NULL, NULL, &o, NULL, err));
    CHECK(same_file("out", "old"));
    unlink(path("out"));
    CHECK_EQ_INT(leftovers(), 0);
}

TEST(fetch_rule)
{
    CHECK_EQ_INT(deploy_fetch_choose(0, 0, 1000, 10), DEPLOY_FETCH_WHOLE); /* no basis */
    CHECK_EQ_INT(deploy_fetch_choose(1, 1, 1000, 10), DEPLOY_FETCH_WHOLE); /* failed verify */
    CHECK_EQ_INT(deploy_fetch_choose(1, 0, 1000, 10), DEPLOY_FETCH_DELTA);
    CHECK_EQ_INT(deploy_fetch_choose(1, 0, 1000, 800), DEPLOY_FETCH_DELTA);
    CHECK_EQ_INT(deploy_fetch_choose(1, 0, 1000, 801), DEPLOY_FETCH_WHOLE);
    CHECK_EQ_INT(deploy_fetch_choose(1, 0, 0, 0), DEPLOY_FETCH_WHOLE);
    CHECK_EQ_INT(deploy_fetch_choose(1, 0, 1000, 0), DEPLOY_FETCH_DELTA); /* not known yet */
    CHECK_EQ_INT(deploy_delta_limit(1000), 800);
    CHECK_EQ_INT(deploy_delta_limit(99), 79);
    CHECK_EQ_INT(deploy_delta_limit(UINT64_MAX), UINT64_MAX / 100 * 80 + 15 * 80 / 100);
}

TEST(hash)
{
    uint8_t h[DEPLOY_HASH_SIZE], h2[DEPLOY_HASH_SIZE];
    char hex[DEPLOY_HASH_HEX], err[FL_ERRMSG_SIZE];
    uint64_t size = 1;
    REQUIRE(write_file("empty", NULL, 0) == 0);
    CHECK_OK(deploy_hash_file(path("empty"), h, &size, err));
    CHECK_EQ_INT(size, 0);
    deploy_hash_hex(h, hex);
    CHECK_EQ_STR(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    REQUIRE(write_file("abc", (const uint8_t *)"abc", 3) == 0);
    CHECK_OK(deploy_hash_file(path("abc"), h, &size, err));
    deploy_hash_hex(h, hex);
    CHECK_EQ_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    CHECK_OK(deploy_hash_parse(hex, h2));
    CHECK(memcmp(h, h2, sizeof h) == 0);
    CHECK_EQ_INT(deploy_hash_parse("abc", h2), FL_EINVAL);
    hex[5] = 'z';
    CHECK_EQ_INT(deploy_hash_parse(hex, h2), FL_EINVAL);
    CHECK_EQ_INT(deploy_hash_file(path("nothing"), h, NULL, err), FL_ENOTFOUND);
}

TEST(alloc_failures)
{
    uint8_t want[DEPLOY_HASH_SIZE];
    char err[FL_ERRMSG_SIZE];
    prepare(want);
    for (long k = 0; k < 3; k++) {
        fl_alloc_fault_set(k);
        int rv = deploy_patch(path("old"), path("delta"), path("out"), want, NULL, NULL, NULL, err);
        fl_alloc_fault_clear();
        CHECK(rv == FL_ENOMEM || rv == FL_OK);
        CHECK(rv == FL_OK || !exists("out"));
        unlink(path("out"));
        fl_alloc_fault_set(k);
        rv = deploy_signature(path("old"), path("sig2"), NULL, NULL, err);
        fl_alloc_fault_clear();
        CHECK(rv == FL_ENOMEM || rv == FL_OK);
        CHECK(rv == FL_OK || !exists("sig2"));
        unlink(path("sig2"));
    }
    CHECK_EQ_INT(leftovers(), 0);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* Flotilla's signatures, deltas and patches are librsync's: rdiff reads
 * ours and we read rdiff's. */
TEST(rdiff_interop)
{
    uint8_t want[DEPLOY_HASH_SIZE];
    char err[FL_ERRMSG_SIZE] = "";
    REQUIRE(system("rdiff --version >/dev/null 2>&1") == 0);
    prepare(want);
    /* ours: signature + delta; rdiff patches */
    CHECK_EQ_INT(sh("rdiff patch %s %s %s", path("old"), path("delta"), path("r.out")), 0);
    CHECK(same_file("r.out", "new"));
    /* rdiff: signature + delta; we patch */
    CHECK_EQ_INT(sh("rdiff signature %s %s", path("old"), path("r.sig")), 0);
    CHECK_EQ_INT(sh("rdiff delta %s %s %s", path("r.sig"), path("new"), path("r.delta")), 0);
    CHECK_OK(deploy_patch(path("old"), path("r.delta"), path("out"), want, NULL, NULL, NULL, err));
    CHECK(same_file("out", "new"));
    unlink(path("out"));
    /* mixed: rdiff's signature, our delta, rdiff patches */
    CHECK_OK(deploy_delta(path("r.sig"), path("new"), path("m.delta"), NULL, NULL, err));
    CHECK_EQ_INT(sh("rdiff patch %s %s %s", path("old"), path("m.delta"), path("m.out")), 0);
    CHECK(same_file("m.out", "new"));
    /* mixed: our signature, rdiff's delta, we patch */
    CHECK_EQ_INT(sh("rdiff delta %s %s %s", path("sig"), path("new"), path("m2.delta")), 0);
    CHECK_OK(deploy_patch(path("old"), path("m2.delta"), path("out"), want, NULL, NULL, NULL, err));
    CHECK(same_file("out", "new"));
    /* our delta is byte for byte rdiff's from the same signature */
    CHECK(same_file("m2.delta", "delta"));
    /* our signature is byte for byte rdiff's with the same parameters */
    {
        size_t block, strong;
        char b[32];
        deploy_sig_params(200000, &block, &strong);
        snprintf(b, sizeof b, "%zu", block);
        CHECK_EQ_INT(sh("rdiff -b %s -S 16 signature %s %s", b, path("old"), path("r16.sig")), 0);
    }
    CHECK(same_file("r16.sig", "sig"));
}

int main(void)
{
    if (check_tmpdir(dir, sizeof dir) == NULL) {
        fprintf(stderr, "no temporary directory\n");
        return 1;
    }
    RUN(hash);
    RUN(fetch_rule);
    RUN(round_trip_small);
    RUN(round_trip_edits);
    RUN(truncated_delta);
    RUN(corrupted_delta);
    RUN(wrong_basis);
    RUN(existing_output_kept_on_failure);
    RUN(bad_signatures);
    RUN(delta_limit);
    RUN(alloc_failures);
    RUN(rdiff_interop);
    check_rmrf(dir);
    return check_summary();
}
