/* The cron/time-zone fuzz driver (cron/cron.h, cron/tz.h), shared by
 * fuzz_cron.c and the corpus replay in tests/unit/test_fuzz_corpus.c.
 *
 * Input: byte 0 chooses what to do, bytes 1-8 a start time, the rest text.
 *   byte0 & 0x80  the rest is a TZif file: fl_tz_parse, then the next fire
 *                 times of a fixed expression in that zone;
 *   otherwise     the rest is a cron expression, evaluated in one of a few
 *                 real zones (byte0 % 8; UTC when the database is missing).
 * Invariants: cron_parse either fails with a message or gives an expression
 * for which cron_next finds a time strictly after the start (or refuses a
 * start outside years 1-9999); successive fire times strictly increase; a
 * zone's offsets stay within ±26 hours. */
#ifndef FL_FUZZ_CRON_DRIVER_H
#define FL_FUZZ_CRON_DRIVER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron/cron.h"
#include "common/err.h"
#include "cron/tz.h"

static const char *const cron_fuzz_zone_names[8] = {
    "UTC",          "Europe/Berlin",    "America/New_York", "Australia/Lord_Howe",
    "Asia/Kolkata", "America/Santiago", "Pacific/Chatham",  "Africa/Casablanca"};
static struct fl_tz *cron_fuzz_zones[8];

#define YEAR_SECS (366LL * 86400)
#define MIN_SECS  (-62135596800LL) /* 0001-01-01 */
#define MAX_SECS  (253402300799LL) /* 9999-12-31T23:59:59 */

static void walk(const struct cron_expr *e, const struct fl_tz *z, int64_t start)
{
    char err[FL_ERRMSG_SIZE];
    int64_t t = start, next;
    for (int i = 0; i < 6; i++) {
        int rv = cron_next(e, z, t, &next, err);
        if (rv != FL_OK) {
            /* Refusals only near the ends of the supported years. */
            if (t < MAX_SECS - 500 * YEAR_SECS && t > MIN_SECS + YEAR_SECS) {
                fprintf(stderr, "cron_next refused %lld: %s\n", (long long)t, err);
                abort();
            }
            return;
        }
        if (next <= t) {
            fprintf(stderr, "cron_next went backwards: %lld -> %lld\n", (long long)t,
                    (long long)next);
            abort();
        }
        t = next;
    }
}

static int cron_fuzz_one(const uint8_t *data, size_t size)
{
    char err[FL_ERRMSG_SIZE];
    struct cron_expr e;
    int64_t start = 0;
    if (size < 9) {
        return 0;
    }
    for (int i = 1; i <= 8; i++) {
        start = (int64_t)((uint64_t)start << 8 | data[i]);
    }
    /* Fold the start into years 1-9999 most of the time. */
    if (!(data[0] & 0x40)) {
        uint64_t span = (uint64_t)(MAX_SECS - MIN_SECS);
        start = MIN_SECS + (int64_t)((uint64_t)start % span);
    }
    const uint8_t *rest = data + 9;
    size_t n = size - 9;

    if (data[0] & 0x80) {
        struct fl_tz *z = NULL;
        if (fl_tz_parse("fuzz", rest, n, &z, err) != FL_OK) {
            return 0;
        }
        for (int64_t t = start, k = 0; k < 4; k++, t += 97 * 86400 + 3607) {
            int32_t off = fl_tz_offset(z, t);
            if (off < -26 * 3600 || off > 26 * 3600) {
                fprintf(stderr, "offset %d out of range\n", off);
                abort();
            }
            (void)fl_tz_local_to_utc(z, t);
        }
        if (cron_parse("30 2 * * *", &e, err) == FL_OK) {
            walk(&e, z, start);
        }
        fl_tz_destroy(z);
        return 0;
    }

    char *text = malloc(n + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, rest, n);
    text[n] = '\0';
    err[0] = '\0';
    if (cron_parse(text, &e, err) == FL_OK) {
        int zi = data[0] % 8;
        if (cron_fuzz_zones[zi] == NULL &&
            fl_tz_load(cron_fuzz_zone_names[zi], &cron_fuzz_zones[zi], NULL) != FL_OK) {
            cron_fuzz_zones[zi] = NULL;
        }
        walk(&e, cron_fuzz_zones[zi], start);
    } else if (err[0] == '\0') {
        fprintf(stderr, "cron_parse failed without a message\n");
        abort();
    }
    free(text);
    return 0;
}

#endif
