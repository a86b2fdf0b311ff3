/* Time zones from the system's compiled tz database, and calendar arithmetic.
 *
 * A zone is read from a TZif file (RFC 8536, versions 1 to 4) under
 * /usr/share/zoneinfo, or under $FLOTILLA_ZONEINFO if that is set. Version 2+
 * files are read from their 64-bit data; instants after the last transition
 * follow the POSIX TZ string of the footer ("CET-1CEST,M3.5.0,M10.5.0/3"),
 * so a zone is correct past 2037 and with "slim" files whose table stops
 * at the last rule change. Version 1 files use their 32-bit table and keep
 * the last offset after it.
 *
 * Nothing here touches the process's TZ, localtime_r or any other global
 * state: a loaded zone is immutable and may be shared between threads. The
 * server caches zones itself (leader/jobs.c); fl_tz_load reads a file, so it
 * blocks briefly and should not be called per fire.
 *
 * Instants are Unix seconds ("utc_sec"); "local seconds" are the wall-clock
 * reading of a zone counted as if it were UTC (utc_sec + offset). Calendar
 * functions use the proleptic Gregorian calendar. Every function that takes
 * a zone treats NULL as UTC. */
#ifndef FL_CRON_TZ_H
#define FL_CRON_TZ_H

#include <stddef.h>
#include <stdint.h>

#define FL_TZ_NAME_MAX 64 /* longest accepted zone name, bytes */
#define FL_TZ_ISO_MAX  32 /* buffer for fl_tz_format_iso, with the NUL */

struct fl_tz;

/* Load the zone `name`, an IANA name such as "Europe/Berlin" or "UTC".
 * Names that are empty, longer than FL_TZ_NAME_MAX, absolute, contain ".."
 * or characters outside [A-Za-z0-9/_+-] are refused before any file is
 * opened. "UTC" works even where the database is not installed.
 * Returns FL_OK and *out (free with fl_tz_destroy); FL_EINVAL with
 * `unknown time zone "NAME"` in errmsg (and the reason, for a damaged or
 * leap-second file); FL_ENOMEM. */
int fl_tz_load(const char *name, struct fl_tz **out, char *errmsg);

/* Build a zone from the bytes of a TZif file (tests and fuzzing; name is
 * only used in error messages). The same errors as fl_tz_load. */
int fl_tz_parse(const char *name, const void *data, size_t len, struct fl_tz **out, char *errmsg);

void fl_tz_destroy(struct fl_tz *z); /* NULL is a no-op */

/* The UTC offset (seconds east of Greenwich) in force at utc_sec. */
int32_t fl_tz_offset(const struct fl_tz *z, int64_t utc_sec);

/* A maximal stretch of time over which a zone's offset is constant:
 * [start, end) in Unix seconds; start is INT64_MIN and end INT64_MAX when
 * unbounded. At `start` the clock changed from prev_offset to offset: a
 * forward jump (prev_offset < offset) skips the local times
 * [start + prev_offset, start + offset); a backward one repeats
 * [start + offset, start + prev_offset). prev_offset == offset when start is
 * unbounded. */
struct fl_tz_span {
    int64_t start;
    int64_t end;
    int32_t offset;
    int32_t prev_offset;
};

/* The span that contains utc_sec. */
void fl_tz_span(const struct fl_tz *z, int64_t utc_sec, struct fl_tz_span *out);

/* The instant at which the zone's clock reads local_sec. A local time that
 * occurs twice (clocks set back) gives the earlier instant; one that does not
 * occur (clocks set forward) is read with the offset in force before the
 * jump, so it lands as far after the jump as it was after the last valid
 * time: 02:30 on the day Berlin jumps from 02:00 to 03:00 is 03:30 CEST. */
int64_t fl_tz_local_to_utc(const struct fl_tz *z, int64_t local_sec);

/* ISO 8601 with the zone's offset: "2026-03-29T03:00:00+02:00" (seconds of
 * the offset are added, "+00:53:28", only for historical offsets that have
 * them). buf must hold FL_TZ_ISO_MAX bytes; years 1-9999 (others are
 * printed as they are). Returns the length. */
size_t fl_tz_format_iso(const struct fl_tz *z, int64_t utc_sec, char *buf);

/* Parse a time: "@UNIXSECONDS", an ISO 8601 date-time with an offset
 * ("2026-03-29T01:59:59+01:00", "...Z", "+0100", "+01") or without one (then
 * local time in z, as fl_tz_local_to_utc reads it), or a date alone
 * ("2026-03-29", local midnight). 'T' may be a space; a fraction of a second
 * is dropped. FL_EINVAL with the reason. */
int fl_tz_parse_time(const struct fl_tz *z, const char *text, int64_t *utc_sec, char *errmsg);

/* ---- calendar arithmetic (proleptic Gregorian) ---------------------------- */

struct fl_civil {
    int64_t year;
    int month;  /* 1-12 */
    int day;    /* 1-31 */
    int hour;   /* 0-23 */
    int minute; /* 0-59 */
    int second; /* 0-59 */
};

/* Days since 1970-01-01 of a date; month 1-12, day 1-31 (not checked
 * against the month's length: day 32 is the next month's first). */
int64_t fl_civil_days(int64_t year, int month, int day);
/* Split seconds since the epoch (UTC or local seconds) into fields. */
void fl_civil_from_secs(int64_t secs, struct fl_civil *out);
/* The inverse: fields (in range) to seconds since the epoch. */
int64_t fl_civil_to_secs(const struct fl_civil *c);
int fl_civil_days_in_month(int64_t year, int month);
/* Day of the week of a day number: 0 = Sunday .. 6 = Saturday. */
int fl_civil_weekday(int64_t days);

#endif
