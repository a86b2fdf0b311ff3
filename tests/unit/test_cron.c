/* Cron expressions and time zones (cron/cron.c, cron/tz.c, docs/CRON.md).
 *
 * Hand-checked cases: the bit sets a field parses to, every class of error
 * with its message, the day-of-month/day-of-week rule, and fire times across
 * the clock changes of real zones from the system's tz database. The
 * thousands of random cases against croniter are in
 * tests/integration/test_cron_ref.py. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cron/cron.h"
#include "common/err.h"
#include "cron/tz.h"

static struct cron_expr parse_ok(const char *text)
{
    struct cron_expr e;
    char msg[FL_ERRMSG_SIZE] = "";
    memset(&e, 0, sizeof e);
    if (cron_parse(text, &e, msg) != FL_OK) {
        fprintf(stderr, "   parse %s: %s\n", text, msg);
        CHECK(0);
    }
    return e;
}

/* The instant of an ISO time (with offset), parsed by the module under test
 * but checked against hand-written Unix times below where it matters. */
static int64_t at(const char *iso)
{
    int64_t t = 0;
    char msg[FL_ERRMSG_SIZE];
    CHECK_OK(fl_tz_parse_time(NULL, iso, &t, msg));
    return t;
}

/* The next fire time after `from` in zone z, formatted in z. */
static void next_iso(const char *expr, const struct fl_tz *z, int64_t from, char *out)
{
    struct cron_expr e = parse_ok(expr);
    int64_t t = 0;
    char msg[FL_ERRMSG_SIZE] = "";
    if (cron_next(&e, z, from, &t, msg) != FL_OK) {
        fprintf(stderr, "   next %s: %s\n", expr, msg);
        snprintf(out, FL_TZ_ISO_MAX, "error");
        return;
    }
    fl_tz_format_iso(z, t, out);
}

static struct fl_tz *zone(const char *name)
{
    struct fl_tz *z = NULL;
    char msg[FL_ERRMSG_SIZE] = "";
    if (fl_tz_load(name, &z, msg) != FL_OK) {
        fprintf(stderr, "   zone %s: %s\n", name, msg);
    }
    return z;
}

TEST(fields_parse_to_bit_sets)
{
    struct cron_expr e = parse_ok("*/15 9-17 * * MON-FRI");
    CHECK(e.min == ((1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45)));
    CHECK(e.hour == 0x3fe00u); /* 9..17 */
    CHECK(e.dow == 0x3eu);     /* 1..5 */
    CHECK(e.dom_star && !e.dow_star && !e.has_seconds && e.sec == 1);
    e = parse_ok("30 0 12 1 JAN,jul SUN");
    CHECK(e.sec == (1ULL << 30) && e.min == 1 && e.hour == (1u << 12) && e.dom == 2u);
    CHECK(e.month == ((1u << 1) | (1u << 7)) && e.dow == 1u && e.has_seconds);
    e = parse_ok("0 0 * * 7"); /* 7 is Sunday too */
    CHECK_EQ_INT(e.dow, 1);
    e = parse_ok("0 0 * * FRI-SUN");
    CHECK_EQ_INT(e.dow, (1 << 5) | (1 << 6) | 1);
    e = parse_ok("5/20 * * * *");
    CHECK(e.min == ((1ULL << 5) | (1ULL << 25) | (1ULL << 45)));
    e = parse_ok("@hourly");
    CHECK(e.min == 1 && e.hour == 0xffffffu && e.hour_star);
    e = parse_ok("@weekly");
    CHECK(e.dow == 1 && e.hour == 1 && e.min == 1);
    e = parse_ok("0 0 ? * MON");
    CHECK(e.dom_star && !e.dow_star);
}

TEST(errors_name_the_field)
{
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {"61 * * * *", "minute: 61 is out of range 0-59"},
        {"* * * *", "expected 5 or 6 fields, got 4"},
        {"0 0 30 2 *", "never fires"},
        {"0 0 * * 8", "day-of-week: 8 is out of range 0-7"},
        {"*/0 * * * *", "step 0"},
        {"0 0 L * *", "not supported"},
        {"@reboot", "@reboot"},
        {"", "empty expression"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cron_expr e;
        char msg[FL_ERRMSG_SIZE] = "";
        CHECK_EQ_INT(cron_parse(bad[i].text, &e, msg), FL_EINVAL);
        if (strstr(msg, bad[i].want) == NULL) {
            fprintf(stderr, "   %s: \"%s\" lacks \"%s\"\n", bad[i].text, msg, bad[i].want);
            CHECK(0);
        }
    }
}

TEST(next_in_utc)
{
    char s[FL_TZ_ISO_MAX];
    CHECK_EQ_INT(at("1970-01-01T00:00:00Z"), 0);
    CHECK_EQ_INT(at("2026-11-22T10:00:00+01:00"), 1795338000);
    next_iso("*/5 * * * *", NULL, at("2026-11-22T10:02:59Z"), s);
    CHECK_EQ_STR(s, "2026-11-22T10:05:00+00:00");
    next_iso("*/5 * * * *", NULL, at("2026-11-22T10:05:00Z"), s); /* strictly after */
    CHECK_EQ_STR(s, "2026-11-22T10:10:00+00:00");
    next_iso("0 0 29 2 *", NULL, at("2026-03-01T00:00:00Z"), s);
    CHECK_EQ_STR(s, "2028-02-29T00:00:00+00:00");
    next_iso("15 30 23 31 12 *", NULL, at("2026-12-31T23:30:15Z"), s);
    CHECK_EQ_STR(s, "2027-12-31T23:30:15+00:00");
}

/* Both day fields restricted: either matches. One of them '*': both must. */
TEST(day_of_month_or_day_of_week)
{
    char s[FL_TZ_ISO_MAX];
    /* 2026-11-22 is a Sunday. The 1st or a Monday: Monday the 23rd. */
    next_iso("0 0 1 * MON", NULL, at("2026-11-22T12:00:00Z"), s);
    CHECK_EQ_STR(s, "2026-11-23T00:00:00+00:00");
    /* Odd days that are Mondays: the 23rd is odd. Then 2026-12-07. */
    next_iso("0 0 */2 * MON", NULL, at("2026-11-23T12:00:00Z"), s);
    CHECK_EQ_STR(s, "2026-12-07T00:00:00+00:00");
    /* Friday the 13th the cron way is "13 or Friday": the next Friday. */
    next_iso("0 0 13 * FRI", NULL, at("2026-11-22T00:00:00Z"), s);
    CHECK_EQ_STR(s, "2026-11-27T00:00:00+00:00");
}

TEST(clock_changes_in_berlin)
{
    struct fl_tz *z = zone("Europe/Berlin");
    char s[FL_TZ_ISO_MAX];
    REQUIRE(z != NULL);
    /* Spring forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 is skipped
     * and fires at 03:30 CEST, once. */
    next_iso("30 2 * * *", z, at("2026-03-29T00:00:00+01:00"), s);
    CHECK_EQ_STR(s, "2026-03-29T03:30:00+02:00");
    next_iso("30 2 * * *", z, at("2026-03-29T03:30:00+02:00"), s);
    CHECK_EQ_STR(s, "2026-03-30T02:30:00+02:00");
    /* Fall back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice; a
     * job with a fixed hour fires at the first only. */
    next_iso("30 2 * * *", z, at("2026-10-25T00:00:00+02:00"), s);
    CHECK_EQ_STR(s, "2026-10-25T02:30:00+02:00");
    next_iso("30 2 * * *", z, at("2026-10-25T02:30:00+02:00"), s);
    CHECK_EQ_STR(s, "2026-10-26T02:30:00+01:00");
    /* An hourly job runs by the hour: both copies, one real hour apart. */
    next_iso("30 * * * *", z, at("2026-10-25T02:30:00+02:00"), s);
    CHECK_EQ_STR(s, "2026-10-25T02:30:00+01:00");
    /* Offsets in the output follow the zone. */
    next_iso("0 12 * * *", z, at("2026-07-01T00:00:00Z"), s);
    CHECK_EQ_STR(s, "2026-07-01T12:00:00+02:00");
    fl_tz_destroy(z);
}

TEST(zones_with_odd_offsets)
{
    struct fl_tz *k = zone("Asia/Kathmandu"), *l = zone("Australia/Lord_Howe");
    char s[FL_TZ_ISO_MAX];
    REQUIRE(k != NULL && l != NULL);
    next_iso("0 9 * * *", k, at("2026-11-22T00:00:00Z"), s);
    CHECK_EQ_STR(s, "2026-11-22T09:00:00+05:45");
    /* Lord Howe moves its clock by 30 minutes: 2026-10-04 02:00 -> 02:30. */
    next_iso("15 2 * * *", l, at("2026-10-04T00:00:00+10:30"), s);
    CHECK_EQ_STR(s, "2026-10-04T02:45:00+11:00");
    fl_tz_destroy(k);
    fl_tz_destroy(l);
}

TEST(bad_zones_and_damaged_files)
{
    static const char *names[] = {"Mars/Olympus", "../etc/passwd", "/usr/share/zoneinfo/UTC", "",
                                  "Europe/Ber lin"};
    struct fl_tz *z = NULL;
    char msg[FL_ERRMSG_SIZE];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CHECK_EQ_INT(fl_tz_load(names[i], &z, msg), FL_EINVAL);
        CHECK(strstr(msg, "unknown time zone") != NULL);
        CHECK(z == NULL);
    }
    /* A header and nothing else; then garbage. */
    CHECK_EQ_INT(fl_tz_parse("x", "TZif2", 5, &z, msg), FL_EINVAL);
    CHECK_EQ_INT(fl_tz_parse("x", "not a tzif file at all, really", 30, &z, msg), FL_EINVAL);
    CHECK(z == NULL);
    /* UTC works without a database. */
    CHECK_OK(fl_tz_load("UTC", &z, msg));
    CHECK_EQ_INT(fl_tz_offset(z, 0), 0);
    fl_tz_destroy(z);
}

TEST(end_of_the_calendar)
{
    struct cron_expr e = parse_ok("0 0 29 2 *");
    int64_t t = 0;
    char msg[FL_ERRMSG_SIZE] = "";
    CHECK_EQ_INT(cron_next(&e, NULL, at("9997-03-01T00:00:00Z"), &t, msg), FL_EINVAL);
    CHECK(msg[0] != '\0');
    e = parse_ok("@yearly");
    CHECK_OK(cron_next(&e, NULL, at("9998-06-01T00:00:00Z"), &t, msg));
    CHECK_EQ_INT(t, at("9999-01-01T00:00:00Z"));
}

/* The fire times are a fixed set: asking from any instant between two fires
 * gives the later one. */
TEST(next_does_not_depend_on_the_start)
{
    struct fl_tz *z = zone("America/New_York");
    struct cron_expr e = parse_ok("*/7 1-3 * * *");
    int64_t from = at("2026-11-01T00:00:00-04:00"), t = 0, u = 0;
    char msg[FL_ERRMSG_SIZE];
    REQUIRE(z != NULL);
    for (int i = 0; i < 60; i++) {
        CHECK_OK(cron_next(&e, z, from, &t, msg));
        for (int64_t probe = from + 1; probe < t; probe += 97) {
            CHECK_OK(cron_next(&e, z, probe, &u, msg));
            CHECK(u == t);
        }
        from = t;
    }
    fl_tz_destroy(z);
}

int main(void)
{
    RUN(fields_parse_to_bit_sets);
    RUN(errors_name_the_field);
    RUN(next_in_utc);
    RUN(day_of_month_or_day_of_week);
    RUN(clock_changes_in_berlin);
    RUN(zones_with_odd_offsets);
    RUN(bad_zones_and_damaged_files);
    RUN(end_of_the_calendar);
    RUN(next_does_not_depend_on_the_start);
    return check_summary();
}
