/* Text from clients: strict decimal numbers (common/num) and UTF-8 checking
 * and escaping (common/utf8). */
#include <jansson.h>

#include "check.h"
#include "common/err.h"
#include "common/num.h"
#include "common/utf8.h"

TEST(numbers_canonical_only)
{
    static const char *const good[] = {"0", "1", "9", "10", "4096", "18446744073709551615"};
    static const char *const bad[] = {"",
                                      "00",
                                      "01",
                                      "007",
                                      "-1",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "\t1",
                                      "1\n",
                                      "1x",
                                      "x1",
                                      "0x10",
                                      "1e3",
                                      "1.0",
                                      "1,000",
                                      "-0",
                                      "+0",
                                      "١",
                                      "\xef\xbc\x91",
                                      "18446744073709551616",
                                      "18446744073709551620",
                                      "99999999999999999999",
                                      "000000000000000000001"};
    uint64_t v;
    size_t i;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK(fl_num_canonical(good[i]));
        v = 7;
        CHECK_OK(fl_num_parse(good[i], 0, UINT64_MAX, &v));
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (fl_num_canonical(bad[i])) {
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        }
        CHECK(!fl_num_canonical(bad[i]));
        v = 7;
        CHECK_EQ_INT(fl_num_parse(bad[i], 0, UINT64_MAX, &v), FL_EINVAL);
        CHECK_EQ_INT(v, 7); /* untouched */
    }
    CHECK(!fl_num_canonical(NULL));
    CHECK_OK(fl_num_parse("18446744073709551615", 1, UINT64_MAX, &v));
    CHECK(v == UINT64_MAX);
    CHECK_OK(fl_num_parse("1844674407370955161", 0, UINT64_MAX, &v));
    CHECK(v == UINT64_MAX / 10);
    CHECK_OK(fl_num_parse("0", 0, 0, &v));
    CHECK_EQ_INT(v, 0);
    CHECK_OK(fl_num_parse("4294967295", 0, UINT32_MAX, &v));
    CHECK(v == UINT32_MAX);
}

TEST(numbers_in_range)
{
    uint64_t v = 0;
    CHECK_EQ_INT(fl_num_parse("0", 1, 10, &v), FL_EINVAL);
    CHECK_EQ_INT(fl_num_parse("11", 1, 10, &v), FL_EINVAL);
    CHECK_EQ_INT(fl_num_parse("4294967296", 0, UINT32_MAX, &v), FL_EINVAL);
    CHECK_EQ_INT(v, 0);
    CHECK_OK(fl_num_parse("1", 1, 10, &v));
    CHECK_EQ_INT(v, 1);
    CHECK_OK(fl_num_parse("10", 1, 10, &v));
    CHECK_EQ_INT(v, 10);
}

static unsigned agree(const unsigned char *b, size_t n, unsigned *valid)
{
    json_t *j = json_stringn((const char *)b, n);
    int ours = fl_utf8_valid((const char *)b, n);
    *valid += ours;
    json_decref(j);
    return ours != (j != NULL);
}

/* fl_utf8_valid agrees with jansson (which decides what a JSON string may
 * hold) on every sequence of one and two bytes, and on three and four from
 * every lead byte with every second byte and the edge values after it. */
TEST(utf8_valid_agrees_with_jansson)
{
    static const unsigned char edge[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                         0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xF4, 0xF5, 0xFF};
    unsigned char b[4];
    unsigned disagree = 0, valid = 0;
    for (unsigned x = 0; x < 65536; x++) {
        b[0] = (unsigned char)(x >> 8);
        b[1] = (unsigned char)x;
        disagree += agree(b, 1, &valid) + agree(b, 2, &valid);
    }
    for (unsigned lead = 0xC0; lead <= 0xFF; lead++) {
        for (unsigned second = 0; second <= 0xFF; second++) {
            for (size_t i = 0; i < sizeof edge; i++) {
                for (size_t k = 0; k < sizeof edge; k++) {
                    b[0] = (unsigned char)lead;
                    b[1] = (unsigned char)second;
                    b[2] = edge[i];
                    b[3] = edge[k];
                    disagree += agree(b, 4, &valid) + (k == 0 ? agree(b, 3, &valid) : 0);
                }
            }
        }
    }
    CHECK_EQ_INT(disagree, 0);
    CHECK(valid > 1000);
    CHECK(fl_utf8_valid("", 0));
    CHECK(fl_utf8_valid("caf\xc3\xa9 \xf0\x9f\x9a\x80", 10));
    CHECK(!fl_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    CHECK(!fl_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!fl_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    CHECK(!fl_utf8_valid("\xe2\x82", 2));         /* cut short */
}

TEST(utf8_escape)
{
    char out[64];
    json_t *j;
    CHECK_EQ_INT(fl_utf8_escape("plain /v1/kv", out, sizeof out), 12);
    CHECK_EQ_STR(out, "plain /v1/kv");
    fl_utf8_escape("a\xff"
                   "b\xc0\xaf"
                   "caf\xc3\xa9\xe2\x82",
                   out, sizeof out);
    CHECK_EQ_STR(out, "a\\xFFb\\xC0\\xAFcaf\xc3\xa9\\xE2\\x82");
    j = json_string(out);
    CHECK(j != NULL);
    json_decref(j);
    /* Cut short: never half a sequence or half an escape. */
    CHECK_EQ_INT(fl_utf8_escape("ab\xc3\xa9", out, 4), 2);
    CHECK_EQ_STR(out, "ab");
    CHECK_EQ_INT(fl_utf8_escape("ab\xc3\xa9", out, 5), 4);
    CHECK_EQ_STR(out, "ab\xc3\xa9");
    CHECK_EQ_INT(fl_utf8_escape("a\xff", out, 5), 1);
    CHECK_EQ_STR(out, "a");
    CHECK_EQ_INT(fl_utf8_escape("a\xff", out, 6), 5);
    CHECK_EQ_STR(out, "a\\xFF");
    CHECK_EQ_INT(fl_utf8_escape("abc", out, 1), 0);
    CHECK_EQ_STR(out, "");
    out[0] = 'z';
    CHECK_EQ_INT(fl_utf8_escape("abc", out, 0), 0);
    CHECK(out[0] == 'z');
    /* Every cut of a mixed string is valid UTF-8. */
    for (size_t cap = 1; cap < 40; cap++) {
        size_t n = fl_utf8_escape("\xf0\x9f\x9a\x80\xff\xc3\xa9\x80x\xed\xa0\x80", out, cap);
        CHECK(n < cap && strlen(out) == n && fl_utf8_valid(out, n));
    }
}

int main(void)
{
    RUN(numbers_canonical_only);
    RUN(numbers_in_range);
    RUN(utf8_valid_agrees_with_jansson);
    RUN(utf8_escape);
    return check_summary();
}
