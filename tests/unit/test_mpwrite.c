/* common/mpwrite.h writes what msgpack-c's packers write: the same bytes for
 * every integer, string, binary and array header at and around each boundary
 * of the format, so records written by either encoder are identical. */
#include <msgpack.h>

#include "check.h"
#include "common/buf.h"
#include "common/mpwrite.h"

static int buf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

/* Both writers on fresh buffers; the bytes must agree. */
#define SAME(what, ours, theirs)                                                                   \
    do {                                                                                           \
        struct fl_buf a, b;                                                                        \
        struct fl_mpw w;                                                                           \
        msgpack_packer pk;                                                                         \
        fl_buf_init(&a);                                                                           \
        fl_buf_init(&b);                                                                           \
        fl_mpw_init(&w, &a);                                                                       \
        msgpack_packer_init(&pk, &b, buf_write);                                                   \
        ours;                                                                                      \
        theirs;                                                                                    \
        CHECK_OK(fl_mpw_done(&w));                                                                 \
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {                                \
            fprintf(stderr, "differs: %s\n", what);                                                \
            CHECK(0);                                                                              \
        }                                                                                          \
        CHECK(a.len == 0 || a.data[a.len] == '\0');                                                \
        fl_buf_close(&a);                                                                          \
        fl_buf_close(&b);                                                                          \
    } while (0)

/* Values at and beside every boundary of the integer encodings. */
static const int64_t edges[] = {
    0,   1,   2,     31,    32,    33,           127,          128,          129,      255,
    256, 257, 65535, 65536, 65537, 4294967295LL, 4294967296LL, 4294967297LL, INT64_MAX};

TEST(unsigned_integers)
{
    char what[64];
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        uint64_t v = (uint64_t)edges[i];
        snprintf(what, sizeof what, "uint %llu", (unsigned long long)v);
        SAME(what, fl_mpw_uint(&w, v), msgpack_pack_uint64(&pk, v));
    }
    SAME("uint max", fl_mpw_uint(&w, UINT64_MAX), msgpack_pack_uint64(&pk, UINT64_MAX));
}

TEST(signed_integers)
{
    char what[64];
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            int64_t v = sign * edges[i];
            snprintf(what, sizeof what, "int %lld", (long long)v);
            SAME(what, fl_mpw_int(&w, v), msgpack_pack_int64(&pk, v));
            SAME(what, fl_mpw_int(&w, v - 1), msgpack_pack_int64(&pk, v - 1));
        }
    }
    SAME("int min", fl_mpw_int(&w, INT64_MIN), msgpack_pack_int64(&pk, INT64_MIN));
}

TEST(strings_binaries_arrays)
{
    static char body[70000];
    static const size_t lens[] = {0, 1, 15, 16, 31, 32, 33, 255, 256, 257, 65535, 65536, 65537};
    char what[64];
    memset(body, 'x', sizeof body);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        snprintf(what, sizeof what, "str of %zu", n);
        SAME(what, fl_mpw_str(&w, body, n),
             (msgpack_pack_str(&pk, n), msgpack_pack_str_body(&pk, body, n)));
        snprintf(what, sizeof what, "bin of %zu", n);
        SAME(what, fl_mpw_bin(&w, body, n),
             (msgpack_pack_bin(&pk, n), msgpack_pack_bin_body(&pk, body, n)));
        snprintf(what, sizeof what, "array of %zu", n);
        SAME(what, fl_mpw_array(&w, (uint32_t)n), msgpack_pack_array(&pk, n));
    }
    SAME("bools", (fl_mpw_bool(&w, 1), fl_mpw_bool(&w, 0)),
         (msgpack_pack_true(&pk), msgpack_pack_false(&pk)));
}

/* Many values into one buffer: it grows as it goes and nothing is lost. */
TEST(growing_buffer)
{
    SAME(
        "sequence",
        for (int64_t v = -70000; v < 70000; v += 7) {
            fl_mpw_int(&w, v);
            fl_mpw_str(&w, "abc", (size_t)(v & 3));
        },
        for (int64_t v = -70000; v < 70000; v += 7) {
            msgpack_pack_int64(&pk, v);
            msgpack_pack_str(&pk, (size_t)(v & 3));
            msgpack_pack_str_body(&pk, "abc", (size_t)(v & 3));
        });
}

int main(void)
{
    RUN(unsigned_integers);
    RUN(signed_integers);
    RUN(strings_binaries_arrays);
    RUN(growing_buffer);
    return check_summary();
}
