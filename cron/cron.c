/* Cron expressions (cron/cron.h, docs/CRON.md). */
#include "cron/cron.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"

#define SECS_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define SECS_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */
/* 400 Gregorian years: every calendar pattern repeats within them. */
#define HORIZON (146097LL * 86400)

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW };

struct field {
    const char *name;
    int lo, hi;               /* accepted values (day-of-week: 0-7) */
    const char *const *names; /* three-letter names of lo, lo+1, ... or NULL */
};

static const char *const MONTHS[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                     "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const DAYS[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const struct field FIELDS[6] = {
    {"second", 0, 59, NULL},       {"minute", 0, 59, NULL},  {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL}, {"month", 1, 12, MONTHS}, {"day-of-week", 0, 7, DAYS},
};

static const struct {
    const char *name, *expansion;
} MACROS[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* ---- parsing --------------------------------------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The field being parsed, for messages. */
struct fctx {
    const struct field *f;
    const char *text;
    char *errmsg;
};

static int bad(const struct fctx *x, const char *what, const char *p, int n)
{
    return fl_errf(x->errmsg, FL_EINVAL, "%s: %s \"%.*s\" in \"%s\"", x->f->name, what, n, p,
                   x->text);
}

static int junk(const struct fctx *x, const char *p)
{
    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
        return fl_errf(x->errmsg, FL_EINVAL, "%s: unexpected byte 0x%02x", x->f->name,
                       (unsigned char)*p);
    }
    return bad(x, "unexpected", p, 1);
}

/* A number, or in month and day-of-week a name; *sun: it was the name SUN. */
static int value(const struct fctx *x, const char **pp, int *out, int *sun)
{
    const char *p = *pp, *q = p;
    long v = 0;
    *sun = 0;
    if (is_digit(*p)) {
        for (; is_digit(*q); q++) {
            v = v < 1000000 ? v * 10 + (*q - '0') : v;
        }
        if (v < x->f->lo || v > x->f->hi) {
            return fl_errf(x->errmsg, FL_EINVAL, "%s: %.*s is out of range %d-%d", x->f->name,
                           (int)(q - p), p, x->f->lo, x->f->hi);
        }
    } else if (is_alpha(*p)) {
        for (; is_alpha(*q); q++) {
        }
        for (v = 0; x->f->names != NULL && x->f->names[v] != NULL; v++) {
            if (q - p == 3 && strncasecmp(p, x->f->names[v], 3) == 0) {
                break;
            }
        }
        if (x->f->names == NULL) {
            return bad(x, "not a number:", p, (int)(q - p));
        }
        if (x->f->names[v] == NULL) {
            return bad(x,
                       x->f->names == MONTHS ? "unknown month name (use JAN-DEC)"
                                             : "unknown day name (use SUN-SAT)",
                       p, (int)(q - p));
        }
        v += x->f->lo;
        *sun = x->f->names == DAYS && v == 0;
    } else {
        return *p == '\0' || *p == ',' || *p == '-' || *p == '/'
                   ? fl_errf(x->errmsg, FL_EINVAL, "%s: missing value in \"%s\"", x->f->name,
                             x->text)
                   : junk(x, p);
    }
    *out = (int)v;
    *pp = q;
    return FL_OK;
}

/* "/n" after an item. */
static int step(const struct fctx *x, const char **pp, int *out)
{
    const char *p = *pp, *q = p;
    long v = 0;
    if (!is_digit(*p)) {
        return *p == '\0' || *p == ','
                   ? fl_errf(x->errmsg, FL_EINVAL, "%s: missing step after \"/\" in \"%s\"",
                             x->f->name, x->text)
                   : junk(x, p);
    }
    for (; is_digit(*q); q++) {
        v = v < 1000000 ? v * 10 + (*q - '0') : v;
    }
    if (v < 1 || v > x->f->hi) {
        return fl_errf(x->errmsg, FL_EINVAL, "%s: step %.*s is out of range 1-%d", x->f->name,
                       (int)(q - p), p, x->f->hi);
    }
    *out = (int)v;
    *pp = q;
    return FL_OK;
}

/* One list item: "*", "a", "a-b", each optionally "/n". */
static int item(const struct fctx *x, const char **pp, uint64_t *bits)
{
    const char *p = *pp, *start = p;
    int lo, hi, by = 1, sun, rv;
    if (*p == '*') {
        lo = x->f->lo;
        hi = x->f->hi;
        p++;
    } else {
        if ((rv = value(x, &p, &lo, &sun)) != FL_OK) {
            return rv;
        }
        hi = lo;
        if (*p == '-') {
            p++;
            if ((rv = value(x, &p, &hi, &sun)) != FL_OK) {
                return rv;
            }
            hi = sun && lo > 0 ? 7 : hi; /* FRI-SUN */
            if (hi < lo) {
                return fl_errf(x->errmsg, FL_EINVAL, "%s: empty range %.*s", x->f->name,
                               (int)(p - start), start);
            }
        } else if (*p == '/') {
            hi = x->f->hi; /* a/n: from a to the maximum */
        }
    }
    if (*p == '/') {
        p++;
        if ((rv = step(x, &p, &by)) != FL_OK) {
            return rv;
        }
    }
    if (*p != '\0' && *p != ',') {
        return junk(x, p);
    }
    for (int v = lo; v <= hi; v += by) {
        *bits |= (uint64_t)1 << v;
    }
    *pp = p;
    return FL_OK;
}

/* Quartz and friends have more syntax; say so instead of "unexpected". */
static int unsupported(const struct fctx *x)
{
    int day = x->f == &FIELDS[F_DOM] || x->f == &FIELDS[F_DOW];
    if (strchr(x->text, '?') != NULL && (strcmp(x->text, "?") != 0 || !day)) {
        return fl_errf(x->errmsg, FL_EINVAL,
                       "%s: \"?\" is allowed only as the whole day-of-month or day-of-week",
                       x->f->name);
    }
    if (x->f == &FIELDS[F_DOM] && strpbrk(x->text, "LlWw") != NULL) {
        return fl_errf(x->errmsg, FL_EINVAL,
                       "day-of-month: \"L\" (last day) and \"W\" (weekday) are not supported");
    }
    if (x->f == &FIELDS[F_DOW] && strpbrk(x->text, "#Ll") != NULL) {
        return fl_errf(x->errmsg, FL_EINVAL,
                       "day-of-week: \"#\" (nth weekday) and \"L\" (last) are not supported");
    }
    return FL_OK;
}

static int field_parse(const struct field *f, const char *text, uint64_t *bits, char *errmsg)
{
    struct fctx x = {f, text, errmsg};
    const char *p = text;
    int rv;
    *bits = 0;
    if ((rv = unsupported(&x)) != FL_OK) {
        return rv;
    }
    if (strcmp(text, "?") == 0) {
        p = "*";
    }
    for (;;) {
        if (*p == ',' || *p == '\0') {
            return fl_errf(errmsg, FL_EINVAL, "%s: empty item in list \"%s\"", f->name, text);
        }
        if ((rv = item(&x, &p, bits)) != FL_OK) {
            return rv;
        }
        if (*p == '\0') {
            break;
        }
        p++; /* ',' */
    }
    if (f == &FIELDS[F_DOW] && (*bits & 0x80)) {
        *bits = (*bits & 0x7f) | 1; /* 7 is Sunday */
    }
    return FL_OK;
}

/* Refuse what can never fire. When either day field starts with '*', both
 * must match: some month must have one of the days (30 February cannot);
 * every (month, day) of the Gregorian cycle meets every weekday. When both
 * are restricted either suffices, and every month has every weekday. */
static int never_check(const struct cron_expr *e, const char *dom, const char *mon, char *errmsg)
{
    static const int maxd[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!e->dom_star && !e->dow_star) {
        return FL_OK;
    }
    for (int m = 1; m <= 12; m++) {
        if ((e->month >> m & 1) && (e->dom & (((uint32_t)2 << maxd[m]) - 2)) != 0) {
            return FL_OK;
        }
    }
    return fl_errf(errmsg, FL_EINVAL, "never fires: day-of-month %s does not occur in month %s",
                   dom, mon);
}

static int macro(char **tok, int n, struct cron_expr *out, char *errmsg)
{
    if (strcasecmp(tok[0], "@reboot") == 0) {
        return fl_errf(errmsg, FL_EINVAL, "@reboot is not supported (jobs run on a schedule)");
    }
    for (size_t i = 0; i < sizeof MACROS / sizeof MACROS[0]; i++) {
        if (strcasecmp(tok[0], MACROS[i].name) == 0) {
            if (n > 1) {
                return fl_errf(errmsg, FL_EINVAL, "%s takes no fields", MACROS[i].name);
            }
            return cron_parse(MACROS[i].expansion, out, errmsg);
        }
    }
    return fl_errf(errmsg, FL_EINVAL,
                   "unknown macro \"%.32s\" (use @yearly, @annually, @monthly, @weekly, @daily, "
                   "@midnight or @hourly)",
                   tok[0]);
}

/* Split buf in place at blanks; returns the number of fields (counting past
 * max, storing at most max). */
static int split(char *buf, char **tok, int max)
{
    int n = 0;
    char *p = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            return n;
        }
        if (n < max) {
            tok[n] = p;
        }
        n++;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            p++;
        }
    }
}

int cron_parse(const char *text, struct cron_expr *out, char *errmsg)
{
    char buf[CRON_TEXT_MAX + 1];
    char *tok[6];
    uint64_t bits[6];
    size_t len = text == NULL ? 0 : strnlen(text, CRON_TEXT_MAX + 1);
    int n, first, rv;
    memset(out, 0, sizeof *out);
    if (len > CRON_TEXT_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "expression is longer than %d bytes", CRON_TEXT_MAX);
    }
    memcpy(buf, text ? text : "", len);
    buf[len] = '\0';
    n = split(buf, tok, 6);
    if (n == 0) {
        return fl_errf(errmsg, FL_EINVAL, "empty expression");
    }
    if (tok[0][0] == '@') {
        return macro(tok, n, out, errmsg);
    }
    if (n != 5 && n != 6) {
        return fl_errf(errmsg, FL_EINVAL, "expected 5 or 6 fields, got %d", n);
    }
    first = n == 6 ? F_SEC : F_MIN;
    bits[F_SEC] = 1;
    for (int i = 0; i < n; i++) {
        if ((rv = field_parse(&FIELDS[first + i], tok[i], &bits[first + i], errmsg)) != FL_OK) {
            return rv;
        }
    }
    out->sec = bits[F_SEC];
    out->min = bits[F_MIN];
    out->hour = (uint32_t)bits[F_HOUR];
    out->dom = (uint32_t)bits[F_DOM];
    out->month = (uint16_t)bits[F_MON];
    out->dow = (uint8_t)bits[F_DOW];
    out->hour_star = tok[F_HOUR - first][0] == '*';
    out->dom_star = tok[F_DOM - first][0] == '*' || tok[F_DOM - first][0] == '?';
    out->dow_star = tok[F_DOW - first][0] == '*' || tok[F_DOW - first][0] == '?';
    out->has_seconds = n == 6;
    return never_check(out, tok[F_DOM - first], tok[F_MON - first], errmsg);
}

/* ---- searching ----------------------------------------------------------------- */

/* The smallest member of set that is >= from, or -1. */
static int next_bit(uint64_t set, int from)
{
    uint64_t m = from > 63 ? 0 : set >> from << from;
    return m ? __builtin_ctzll(m) : -1;
}

/* Bits of the days 1-31 that are r days after a multiple of 7 from the 1st. */
static const uint32_t WEEK[7] = {0x20408102, 0x40810204, 0x81020408, 0x02040810,
                                 0x04081020, 0x08102040, 0x10204080};

/* The days of month mo of year y that match (bit d = day d). */
static uint32_t day_mask(const struct cron_expr *e, int64_t y, int mo)
{
    int dim = fl_civil_days_in_month(y, mo);
    int w1 = fl_civil_weekday(fl_civil_days(y, mo, 1));
    uint32_t dw = 0, valid = (uint32_t)(((uint64_t)2 << dim) - 2);
    for (int r = 0; r < 7; r++) {
        if (e->dow >> ((w1 + r) % 7) & 1) {
            dw |= WEEK[r];
        }
    }
    return ((e->dom_star || e->dow_star) ? e->dom & dw : e->dom | dw) & valid;
}

/* Carry into the next unit of c, zeroing the smaller ones. Fields may
 * overflow by one (day 32, hour 24, minute 60): the next search step finds
 * no match there and carries on; fl_civil_to_secs reads them correctly. */
static void next_month(struct fl_civil *c)
{
    if (++c->month > 12) {
        c->year++;
        c->month = 1;
    }
    c->day = 1;
    c->hour = c->minute = c->second = 0;
}

static void next_day(struct fl_civil *c)
{
    c->day++;
    c->hour = c->minute = c->second = 0;
}

static void next_hour(struct fl_civil *c)
{
    c->hour++;
    c->minute = c->second = 0;
}

/* The first matching wall time (local seconds) in [from, limit): 0, or -1 if
 * none. Skips by field: a month, day, hour or minute that cannot match is
 * passed whole, so any gap costs a handful of steps per month crossed. */
static int wall_next(const struct cron_expr *e, int64_t from, int64_t limit, int64_t *out)
{
    struct fl_civil c;
    int v;
    fl_civil_from_secs(from, &c);
    while (fl_civil_to_secs(&c) < limit) {
        if ((v = next_bit(e->month, c.month)) < 0) {
            c.month = 12;
            next_month(&c);
            continue;
        }
        if (v != c.month) {
            c.month = v;
            c.day = 1;
            c.hour = c.minute = c.second = 0;
        }
        if ((v = next_bit(day_mask(e, c.year, c.month), c.day)) < 0) {
            next_month(&c);
            continue;
        }
        if (v != c.day) {
            c.day = v;
            c.hour = c.minute = c.second = 0;
        }
        if ((v = next_bit(e->hour, c.hour)) < 0) {
            next_day(&c);
            continue;
        }
        if (v != c.hour) {
            c.hour = v;
            c.minute = c.second = 0;
        }
        if ((v = next_bit(e->min, c.minute)) < 0) {
            next_hour(&c);
            continue;
        }
        if (v != c.minute) {
            c.minute = v;
            c.second = 0;
        }
        if ((v = next_bit(e->sec, c.second)) < 0) {
            c.minute++;
            c.second = 0;
            continue;
        }
        c.second = v;
        *out = fl_civil_to_secs(&c);
        return *out < limit ? 0 : -1;
    }
    return -1;
}

/* Walk the zone's spans of constant offset from `after` on. In each span the
 * clock reads instant + offset; the span's opening transition adds the
 * cron.h rules: after a backward one, the repeated wall times fire only for
 * hour-'*' jobs (the others fired at the first occurrence); after a forward
 * one, the skipped wall times fire at skipped time - old offset, which lies
 * in the first (offset - old offset) seconds of the span. */
static int next_zoned(const struct cron_expr *e, const struct fl_tz *z, int64_t after,
                      int64_t limit, int64_t *out)
{
    int64_t s = after + 1;
    while (s < limit) {
        struct fl_tz_span sp;
        int64_t best = INT64_MAX, w, lo = s, end;
        fl_tz_span(z, s, &sp);
        end = sp.end < limit ? sp.end : limit;
        if (sp.prev_offset > sp.offset && !e->hour_star &&
            lo < sp.start + (sp.prev_offset - sp.offset)) {
            lo = sp.start + (sp.prev_offset - sp.offset);
        }
        if (lo < end && wall_next(e, lo + sp.offset, end + sp.offset, &w) == 0) {
            best = w - sp.offset;
        }
        if (sp.prev_offset < sp.offset && s < sp.start + (sp.offset - sp.prev_offset) &&
            wall_next(e, s + sp.prev_offset, sp.start + sp.offset, &w) == 0 &&
            w - sp.prev_offset < best) {
            best = w - sp.prev_offset;
        }
        if (best < limit) {
            *out = best;
            return 0;
        }
        s = end;
    }
    return -1;
}

int cron_next(const struct cron_expr *e, const struct fl_tz *z, int64_t after, int64_t *next,
              char *errmsg)
{
    int64_t limit, t;
    int rv;
    if (after < SECS_MIN || after > SECS_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "time %lld is outside the years 1-9999",
                       (long long)after);
    }
    limit = after > SECS_MAX - HORIZON ? SECS_MAX + 1 : after + HORIZON;
    rv = z == NULL ? wall_next(e, after + 1, limit, &t) : next_zoned(e, z, after, limit, &t);
    if (rv != 0) {
        return fl_errf(errmsg, FL_EINVAL, "%s",
                       limit > SECS_MAX ? "no fire time before the year 10000"
                                        : "no fire time within 400 years");
    }
    *next = t;
    return FL_OK;
}
