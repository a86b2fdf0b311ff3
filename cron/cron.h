/* Cron expressions: parse, and find the next fire time in a time zone
 * (docs/CRON.md has the full syntax and the reasons for the rules below).
 *
 * Syntax. Five fields "minute hour day-of-month month day-of-week", or six
 * with SECONDS FIRST: "second minute hour day-of-month month day-of-week" (as
 * Quartz, robfig/cron and dkron order them; croniter puts seconds last). A
 * field is a comma-separated list of items; an item is "*", a number or a
 * range "a-b", optionally followed by a step "/n" (every n-th value; "a/n"
 * runs from a to the field's maximum). Months JAN-DEC and days
 * SUN-SAT may be named (any case); day-of-week 0-7 with 0 and 7 both
 * Sunday, and SUN closing a range means 7 ("FRI-SUN"). "?" stands for "*"
 * in day-of-month and day-of-week. Macros: @yearly @annually @monthly
 * @weekly @daily @midnight @hourly. At most CRON_TEXT_MAX bytes.
 *
 * Days (Vixie cron, cronie, croniter): when both day fields are restricted
 * (neither starts with '*' or '?'), a day matches if EITHER matches; when
 * one starts with '*' or '?', both must (a day-of-month of '*' with step 2
 * and day-of-week MON: odd days that are Mondays).
 *
 * Time zones. Fields are wall-clock time in the zone; an instant fires when
 * the zone's clock reads a matching time, with two exceptions at the clock
 * changes:
 *  - a matching time the clock skips (spring forward) fires once, read with
 *    the offset before the jump: as long after the jump as it would have
 *    been after the last time before it ("30 2 * * *" in Berlin on the last
 *    Sunday of March fires at 03:30 CEST; croniter agrees);
 *  - a matching time the clock shows twice (fall back) fires at its first
 *    occurrence only, unless the hour field starts with '*' (every hour, or
 *    '*' with a step):
 *    such jobs run by the hour and fire at both, one real hour apart
 *    (cronie's rule for wildcard jobs; croniter skips the second hour).
 * So the fire times form a fixed set of instants; cron_next never depends on
 * where a previous search started. */
#ifndef FL_CRON_CRON_H
#define FL_CRON_CRON_H

#include <stdint.h>

#include "cron/tz.h"

#define CRON_TEXT_MAX 256

/* A parsed expression: one bit per allowed value. Plain data, copyable. */
struct cron_expr {
    uint64_t sec;        /* bits 0-59; only bit 0 for five fields */
    uint64_t min;        /* bits 0-59 */
    uint32_t hour;       /* bits 0-23 */
    uint32_t dom;        /* bits 1-31 */
    uint16_t month;      /* bits 1-12 */
    uint8_t dow;         /* bits 0-6, 0 = Sunday (7 is folded into 0) */
    uint8_t dom_star;    /* day-of-month starts with '*' or '?' */
    uint8_t dow_star;    /* day-of-week starts with '*' or '?' */
    uint8_t hour_star;   /* hour starts with '*': fires in both copies of a repeated hour */
    uint8_t has_seconds; /* written with six fields */
};

/* Parse text into *out. FL_EINVAL with a message naming the field and the
 * problem ("minute: 61 is out of range 0-59", "expected 5 or 6 fields, got
 * 4"); an expression that can never fire (30 February) is refused here
 * ("never fires: ..."), so cron_next always finds a time for a parsed
 * expression. */
int cron_parse(const char *text, struct cron_expr *out, char *errmsg);

/* The first fire time strictly after `after` (Unix seconds), in zone z
 * (NULL = UTC), into *next. Cost: a few field skips (month, day, hour,
 * minute, second) per offset span of the zone it crosses, never a walk
 * second by second; about a microsecond. FL_EINVAL if `after` is outside
 * the years 1-9999 or the next time would be after 9999 (e.g.
 * "0 0 29 2 *" asked in 9997), and, for an expression not made by
 * cron_parse, if nothing matches within 400 years (the Gregorian cycle:
 * every date pattern that ever matches does within it). errmsg may be
 * NULL. */
int cron_next(const struct cron_expr *e, const struct fl_tz *z, int64_t after, int64_t *next,
              char *errmsg);

#endif
