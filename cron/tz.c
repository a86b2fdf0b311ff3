/* Time zones from TZif files (RFC 8536) and calendar arithmetic (cron/tz.h).
 *
 * A zone is kept as the list of instants at which its UTC offset changes
 * (transitions that only rename the zone or flip isdst are dropped: cron and
 * ISO output only need the offset), plus the footer's POSIX rule for the
 * time after the file's last transition. The rule's transitions are computed
 * on demand for the few years around the instant asked about, so a zone is
 * a few kilobytes however far ahead it is asked. */
#include "cron/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"

#define ZONEINFO_DEFAULT "/usr/share/zoneinfo"
#define TZIF_FILE_MAX    (1024 * 1024) /* the largest real file is a few KB */
#define TZIF_HEADER      44
#define OFF_MIN          (-89999) /* RFC 8536 3.2: the range utoff should have */
#define OFF_MAX          93599
#define LOCAL_REACH      93600            /* an instant lies within this of its wall time */
#define SECS_MIN         (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define SECS_MAX         253402300799LL   /* 9999-12-31T23:59:59Z */

/* A date of a POSIX TZ rule: "Jn" (kind 'J', day 1-365, 29 February never
 * counted), "n" ('D', day 0-365) or "Mm.w.d" ('M'); secs is the local time
 * of day of the change, -167 h to 167 h (RFC 8536 3.3.1). */
struct rule_date {
    char kind;
    int day, m, w, d;
    int32_t secs;
};

/* "STDoff[DST[off],start[/time],end[/time]]": offsets here are seconds east
 * (the string's signs are the other way round). DST starts at `start` read
 * in standard time and ends at `end` read in daylight time. */
struct rule {
    int32_t std_off, dst_off;
    int has_dst;
    struct rule_date start, end;
};

struct fl_tz {
    char name[FL_TZ_NAME_MAX + 1];
    int32_t off0;      /* before the first transition: time type 0 (RFC 8536 3.2) */
    int has_rule;      /* the footer's rule governs from rule_from on */
    int64_t rule_from; /* the file's last transition; INT64_MIN when it has none */
    struct rule rule;
    size_t n;     /* transitions that change the offset */
    int64_t *at;  /* ascending; in the same allocation as the zone */
    int32_t *off; /* off[i]: the offset from at[i] on */
};

/* ---- calendar ----------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* H. Hinnant's days_from_civil: exact for every int64 year that fits. */
int64_t fl_civil_days(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void fl_civil_from_secs(int64_t secs, struct fl_civil *c)
{
    int64_t days = floor_div(secs, 86400), sod = secs - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    c->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    c->month = (int)(mp < 10 ? mp + 3 : mp - 9);
    c->year = yoe + era * 400 + (c->month <= 2);
    c->hour = (int)(sod / 3600);
    c->minute = (int)(sod / 60 % 60);
    c->second = (int)(sod % 60);
}

int64_t fl_civil_to_secs(const struct fl_civil *c)
{
    return fl_civil_days(c->year, c->month, c->day) * 86400 + c->hour * 3600 + c->minute * 60 +
           c->second;
}

int fl_civil_days_in_month(int64_t year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

int fl_civil_weekday(int64_t days)
{
    return (int)((days % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
}

/* ---- the POSIX TZ string of the footer ------------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* 1 to `maxd` digits, value at most max. */
static const char *num(const char *p, const char *end, int maxd, int max, int *out)
{
    int v = 0, n = 0;
    while (p < end && is_digit(*p) && n < maxd) {
        v = v * 10 + (*p++ - '0');
        n++;
    }
    if (n == 0 || v > max || (p < end && is_digit(*p))) {
        return NULL;
    }
    *out = v;
    return p;
}

/* A zone abbreviation: three or more letters, or <...> of [A-Za-z0-9+-]. */
static const char *tzs_name(const char *p, const char *end)
{
    const char *q;
    if (p < end && *p == '<') {
        for (q = ++p; q < end && (is_alpha(*q) || is_digit(*q) || *q == '+' || *q == '-'); q++) {
        }
        return q < end && *q == '>' && q - p >= 3 ? q + 1 : NULL;
    }
    for (q = p; q < end && is_alpha(*q); q++) {
    }
    return q - p >= 3 ? q : NULL;
}

/* [+-]h[h[h]][:mm[:ss]] with hours at most maxh; seconds, signed. */
static const char *tzs_hms(const char *p, const char *end, int maxh, int32_t *out)
{
    int sign = 1, h, m = 0, s = 0;
    if (p < end && (*p == '+' || *p == '-')) {
        sign = *p++ == '-' ? -1 : 1;
    }
    if ((p = num(p, end, 3, maxh, &h)) == NULL) {
        return NULL;
    }
    if (p < end && *p == ':' && (p = num(p + 1, end, 2, 59, &m)) == NULL) {
        return NULL;
    }
    if (p < end && *p == ':' && (p = num(p + 1, end, 2, 59, &s)) == NULL) {
        return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *tzs_date(const char *p, const char *end, struct rule_date *r)
{
    memset(r, 0, sizeof *r);
    r->secs = 7200; /* POSIX: 02:00 unless given */
    if (p < end && *p == 'J') {
        r->kind = 'J';
        p = num(p + 1, end, 3, 365, &r->day);
        if (p != NULL && r->day == 0) {
            return NULL;
        }
    } else if (p < end && *p == 'M') {
        r->kind = 'M';
        if ((p = num(p + 1, end, 2, 12, &r->m)) == NULL || r->m == 0 || p == end || *p != '.' ||
            (p = num(p + 1, end, 1, 5, &r->w)) == NULL || r->w == 0 || p == end || *p != '.' ||
            (p = num(p + 1, end, 1, 6, &r->d)) == NULL) {
            return NULL;
        }
    } else {
        r->kind = 'D';
        p = num(p, end, 3, 365, &r->day);
    }
    if (p != NULL && p < end && *p == '/') {
        p = tzs_hms(p + 1, end, 167, &r->secs);
    }
    return p;
}

/* Parse the footer. zic always writes DST rules in full, so a DST name
 * without ",start,end" (POSIX leaves its rules to the implementation) is
 * refused rather than guessed. 0, or -1 if malformed. */
static int rule_parse(const char *s, size_t len, struct rule *r)
{
    const char *p = s, *end = s + len;
    int32_t v;
    memset(r, 0, sizeof *r);
    if ((p = tzs_name(p, end)) == NULL || (p = tzs_hms(p, end, 24, &v)) == NULL) {
        return -1;
    }
    r->std_off = r->dst_off = -v;
    if (p == end) {
        return 0;
    }
    if ((p = tzs_name(p, end)) == NULL) {
        return -1;
    }
    r->dst_off = r->std_off + 3600;
    if (p < end && *p != ',') {
        if ((p = tzs_hms(p, end, 24, &v)) == NULL) {
            return -1;
        }
        r->dst_off = -v;
    }
    if (p == end || *p != ',' || (p = tzs_date(p + 1, end, &r->start)) == NULL || p == end ||
        *p != ',' || (p = tzs_date(p + 1, end, &r->end)) == NULL || p != end) {
        return -1;
    }
    r->has_dst = 1;
    return 0;
}

/* The day (since the epoch) a rule date falls on in year y. */
static int64_t rule_day(const struct rule_date *r, int64_t y)
{
    int64_t first, d;
    switch (r->kind) {
    case 'J':
        return fl_civil_days(y, 1, 1) + r->day - 1 + (r->day >= 60 && is_leap(y));
    case 'D':
        return fl_civil_days(y, 1, 1) + r->day;
    default:
        first = fl_civil_days(y, r->m, 1);
        d = first + (r->d - fl_civil_weekday(first) + 7) % 7 + 7 * (r->w - 1);
        /* week 5 means the last such weekday, which may be the 4th */
        return d >= first + fl_civil_days_in_month(y, r->m) ? d - 7 : d;
    }
}

struct ev {
    int64_t at;
    int32_t off, prev;
};

/* Insert keeping ev sorted by time; equal times keep their order. */
static void ev_add(struct ev *ev, int *n, int64_t at, int32_t off)
{
    int i = *n;
    while (i > 0 && ev[i - 1].at > at) {
        ev[i] = ev[i - 1];
        i--;
    }
    ev[i].at = at;
    ev[i].off = off;
    (*n)++;
}

/* The offset changes of the rule from the year before `y` to two after, in
 * order: ch[k] changes the offset from ch[k].prev to ch[k].off. A change
 * overtaken by another at the same instant does not count, so the
 * all-year-DST encoding ("0/0,J365/25", RFC 8536 3.3.1) yields none. */
static int rule_changes(const struct rule *r, int64_t y, struct ev *ch, int32_t *first)
{
    struct ev ev[8];
    int n = 0, nc = 0;
    int32_t cur;
    for (int64_t yy = y - 1; yy <= y + 2; yy++) {
        ev_add(ev, &n, rule_day(&r->start, yy) * 86400 + r->start.secs - r->std_off, r->dst_off);
        ev_add(ev, &n, rule_day(&r->end, yy) * 86400 + r->end.secs - r->dst_off, r->std_off);
    }
    cur = ev[ev[1].at == ev[0].at ? 1 : 0].off;
    for (int i = 1; i < n; i++) {
        if ((i + 1 < n && ev[i + 1].at == ev[i].at) || ev[i].off == cur) {
            continue;
        }
        ch[nc] = ev[i];
        ch[nc++].prev = cur;
        cur = ev[i].off;
    }
    *first = ev[ev[1].at == ev[0].at ? 1 : 0].off;
    return nc;
}

/* ---- spans ---------------------------------------------------------------------- */

/* How many of the table's transitions are at or before t. */
static size_t table_index(const struct fl_tz *z, int64_t t)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void table_span(const struct fl_tz *z, int64_t t, struct fl_tz_span *sp)
{
    size_t i = table_index(z, t);
    sp->offset = i > 0 ? z->off[i - 1] : z->off0;
    sp->prev_offset = i > 1 ? z->off[i - 2] : z->off0;
    sp->start = i > 0 ? z->at[i - 1] : INT64_MIN;
    sp->end = i < z->n ? z->at[i] : (z->has_rule ? z->rule_from : INT64_MAX);
}

/* t >= rule_from: the rule's span, cut at rule_from (before it the table
 * rules, and its last offset is what the clock changed from). */
static void rule_span(const struct fl_tz *z, int64_t t, struct fl_tz_span *sp)
{
    const struct rule *r = &z->rule;
    struct ev ch[8];
    struct fl_civil c;
    int nc = 0, j = -1;
    int32_t first = r->std_off;
    if (r->has_dst) {
        fl_civil_from_secs(t + r->std_off, &c);
        nc = rule_changes(r, c.year, ch, &first);
    }
    while (j + 1 < nc && ch[j + 1].at <= t) {
        j++;
    }
    if (nc == 0) {
        sp->offset = sp->prev_offset = first; /* no DST, or DST all year */
        sp->start = INT64_MIN;
        sp->end = INT64_MAX;
    } else if (j < 0) {
        sp->offset = sp->prev_offset = ch[0].prev;
        sp->start = INT64_MIN;
        sp->end = ch[0].at;
    } else {
        sp->offset = ch[j].off;
        sp->prev_offset = ch[j].prev;
        sp->start = ch[j].at;
        sp->end = j + 1 < nc ? ch[j + 1].at : INT64_MAX;
    }
    if (sp->start <= z->rule_from) {
        struct fl_tz_span before;
        sp->start = z->rule_from;
        sp->prev_offset = sp->offset;
        if (z->rule_from != INT64_MIN) {
            table_span(z, z->rule_from - 1, &before);
            sp->prev_offset = before.offset;
        }
    }
}

void fl_tz_span(const struct fl_tz *z, int64_t t, struct fl_tz_span *out)
{
    if (z == NULL) {
        *out = (struct fl_tz_span){INT64_MIN, INT64_MAX, 0, 0};
    } else if (z->has_rule && t >= z->rule_from) {
        rule_span(z, t, out);
    } else {
        table_span(z, t, out);
    }
}

int32_t fl_tz_offset(const struct fl_tz *z, int64_t t)
{
    struct fl_tz_span sp;
    fl_tz_span(z, t, &sp);
    return sp.offset;
}

int64_t fl_tz_local_to_utc(const struct fl_tz *z, int64_t local)
{
    struct fl_tz_span sp;
    int64_t t;
    if (z == NULL || local < INT64_MIN / 2 || local > INT64_MAX / 2) {
        return local - fl_tz_offset(z, local);
    }
    /* Walk the spans that can hold an instant whose clock reads `local`,
     * earliest first; 16 is far more than any zone has in two days. */
    t = local - LOCAL_REACH;
    for (int i = 0; i < 16; i++) {
        fl_tz_span(z, t, &sp);
        if (sp.prev_offset < sp.offset && local - sp.prev_offset >= sp.start &&
            local - sp.offset < sp.start) {
            return local - sp.prev_offset; /* skipped by a forward jump */
        }
        if (local - sp.offset >= sp.start && local - sp.offset < sp.end) {
            return local - sp.offset;
        }
        if (sp.end == INT64_MAX || sp.end > local + LOCAL_REACH) {
            break;
        }
        t = sp.end;
    }
    return local - fl_tz_offset(z, local);
}

/* ---- TZif --------------------------------------------------------------------- */

struct tzif_header {
    int version; /* 1-4 */
    uint32_t isut, isstd, leap, time, type, chars;
};

/* One data block: tsize 4 (version 1 block) or 8. */
struct tzif_block {
    const unsigned char *times, *idx, *types;
    uint32_t ntime, ntype;
    int tsize;
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int64_t block_time(const struct tzif_block *b, uint32_t i)
{
    return b->tsize == 8 ? be64(b->times + 8 * (size_t)i) : (int32_t)be32(b->times + 4 * (size_t)i);
}

static int32_t block_off(const struct tzif_block *b, uint32_t type)
{
    return (int32_t)be32(b->types + 6 * (size_t)type);
}

static const char *header_read(const unsigned char **p, const unsigned char *end,
                               struct tzif_header *h)
{
    const unsigned char *q = *p;
    if (end - q < TZIF_HEADER || memcmp(q, "TZif", 4) != 0) {
        return "not a TZif file";
    }
    if (q[4] != 0 && (q[4] < '2' || q[4] > '4')) {
        return "unknown TZif version";
    }
    h->version = q[4] == 0 ? 1 : q[4] - '0';
    h->isut = be32(q + 20);
    h->isstd = be32(q + 24);
    h->leap = be32(q + 28);
    h->time = be32(q + 32);
    h->type = be32(q + 36);
    h->chars = be32(q + 40);
    *p = q + TZIF_HEADER;
    return NULL;
}

static size_t block_size(const struct tzif_header *h, int tsize)
{
    return (size_t)h->time * (size_t)(tsize + 1) + (size_t)h->type * 6 + h->chars +
           (size_t)h->leap * (size_t)(tsize + 4) + h->isstd + h->isut;
}

/* Check the block that will be used (RFC 8536 3.2) and point b into it. */
static const char *block_read(const unsigned char **p, const unsigned char *end,
                              const struct tzif_header *h, int tsize, struct tzif_block *b)
{
    size_t need = block_size(h, tsize);
    if ((size_t)(end - *p) < need) {
        return "truncated";
    }
    if (h->leap != 0) {
        return "leap-second zones are not supported";
    }
    if (h->type == 0 || h->type > 256 || h->chars == 0 || (h->isut != 0 && h->isut != h->type) ||
        (h->isstd != 0 && h->isstd != h->type)) {
        return "bad header counts";
    }
    b->tsize = tsize;
    b->ntime = h->time;
    b->ntype = h->type;
    b->times = *p;
    b->idx = b->times + (size_t)h->time * (size_t)tsize;
    b->types = b->idx + h->time;
    for (uint32_t i = 0; i < h->type; i++) {
        int32_t off = block_off(b, i);
        if (off < OFF_MIN || off > OFF_MAX || b->types[6 * i + 4] > 1 ||
            b->types[6 * i + 5] >= h->chars) {
            return "bad local time type";
        }
    }
    for (uint32_t i = 0; i < h->time; i++) {
        if (b->idx[i] >= h->type || (i > 0 && block_time(b, i) <= block_time(b, i - 1))) {
            return "bad transition";
        }
    }
    *p += need;
    return NULL;
}

/* Version 2+: "\n" TZ-string "\n" after the 64-bit block. */
static const char *footer_read(const unsigned char *p, const unsigned char *end, struct rule *r,
                               int *has_rule)
{
    const unsigned char *nl;
    *has_rule = 0;
    if (p == end || *p != '\n' || (nl = memchr(p + 1, '\n', (size_t)(end - p - 1))) == NULL) {
        return "missing footer";
    }
    if (nl == p + 1) {
        return NULL; /* empty: the last offset stays */
    }
    if (rule_parse((const char *)(p + 1), (size_t)(nl - p - 1), r) != 0) {
        return "bad TZ string in footer";
    }
    *has_rule = 1;
    return NULL;
}

static int zone_build(const char *name, const struct tzif_block *b, const struct rule *r,
                      int has_rule, struct fl_tz **out)
{
    struct fl_tz *z;
    int32_t prev = block_off(b, 0);
    size_t n = 0, k = 0;
    for (uint32_t i = 0; i < b->ntime; i++) {
        int32_t o = block_off(b, b->idx[i]);
        n += o != prev;
        prev = o;
    }
    z = fl_calloc(1, sizeof *z + n * (sizeof(int64_t) + sizeof(int32_t)));
    if (z == NULL) {
        return FL_ENOMEM;
    }
    snprintf(z->name, sizeof z->name, "%s", name);
    z->at = (int64_t *)(void *)(z + 1);
    z->off = (int32_t *)(void *)(z->at + n);
    z->n = n;
    z->off0 = prev = block_off(b, 0);
    for (uint32_t i = 0; i < b->ntime; i++) {
        int32_t o = block_off(b, b->idx[i]);
        if (o != prev) {
            z->at[k] = block_time(b, i);
            z->off[k++] = prev = o;
        }
    }
    z->has_rule = has_rule;
    z->rule_from = b->ntime > 0 ? block_time(b, b->ntime - 1) : INT64_MIN;
    if (has_rule) {
        z->rule = *r;
    }
    *out = z;
    return FL_OK;
}

/* A name fit for a message: at most FL_TZ_NAME_MAX bytes, quotes and
 * unprintable bytes shown as '?'. */
static const char *shown(const char *s, char *buf, size_t cap)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < cap && i < FL_TZ_NAME_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '?' : (char)c;
    }
    buf[i] = '\0';
    return buf;
}

static int unknown(char *errmsg, const char *name, const char *why)
{
    char show[FL_TZ_NAME_MAX + 1];
    return fl_errf(errmsg, FL_EINVAL, "unknown time zone \"%s\"%s%s",
                   shown(name ? name : "", show, sizeof show), why ? ": " : "", why ? why : "");
}

int fl_tz_parse(const char *name, const void *data, size_t len, struct fl_tz **out, char *errmsg)
{
    const unsigned char *p = data, *end = p + len;
    struct tzif_header h;
    struct tzif_block b;
    struct rule r;
    int has_rule = 0, rv;
    const char *why;
    *out = NULL;
    if ((why = header_read(&p, end, &h)) != NULL) {
        return unknown(errmsg, name, why);
    }
    if (h.version >= 2) {
        /* skip the 32-bit data: only its size matters */
        if ((size_t)(end - p) < block_size(&h, 4)) {
            return unknown(errmsg, name, "truncated");
        }
        p += block_size(&h, 4);
        if ((why = header_read(&p, end, &h)) != NULL || h.version < 2) {
            return unknown(errmsg, name, why ? why : "bad second header");
        }
    }
    if ((why = block_read(&p, end, &h, h.version >= 2 ? 8 : 4, &b)) != NULL ||
        (h.version >= 2 && (why = footer_read(p, end, &r, &has_rule)) != NULL)) {
        return unknown(errmsg, name, why);
    }
    rv = zone_build(name, &b, &r, has_rule, out);
    return rv == FL_OK ? FL_OK : fl_errf(errmsg, rv, "out of memory loading a time zone");
}

static int name_ok(const char *name)
{
    size_t n = strnlen(name, FL_TZ_NAME_MAX + 1);
    if (n == 0 || n > FL_TZ_NAME_MAX || name[0] == '/' || strstr(name, "..") != NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!is_alpha(c) && !is_digit(c) && c != '/' && c != '_' && c != '+' && c != '-') {
            return 0;
        }
    }
    return 1;
}

/* Read a whole regular file. FL_ENOTFOUND if absent, FL_EIO if unreadable
 * or not a regular file of sane size, FL_ENOMEM. */
static int file_read(const char *path, unsigned char **buf, size_t *len)
{
    struct stat st;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rv = FL_EIO;
    *buf = NULL;
    if (fd < 0) {
        return errno == ENOENT || errno == ENOTDIR ? FL_ENOTFOUND : FL_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TZIF_FILE_MAX) {
        goto err_close;
    }
    if ((*buf = fl_malloc((size_t)st.st_size + 1)) == NULL) {
        rv = FL_ENOMEM;
        goto err_close;
    }
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, *buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            goto err_free;
        }
        got += (size_t)k;
    }
    close(fd);
    *len = got;
    return FL_OK;

err_free:
    fl_free(*buf);
    *buf = NULL;
err_close:
    close(fd);
    return rv;
}

/* UTC without a database (containers without tzdata). */
static int utc_builtin(struct fl_tz **out, char *errmsg)
{
    struct fl_tz *z = fl_calloc(1, sizeof *z);
    if (z == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory loading a time zone");
    }
    snprintf(z->name, sizeof z->name, "UTC");
    z->rule_from = INT64_MIN;
    *out = z;
    return FL_OK;
}

int fl_tz_load(const char *name, struct fl_tz **out, char *errmsg)
{
    const char *dir = getenv("FLOTILLA_ZONEINFO");
    char path[4096];
    unsigned char *buf;
    size_t len;
    int rv;
    *out = NULL;
    if (name == NULL || !name_ok(name)) {
        return unknown(errmsg, name, NULL);
    }
    if (dir == NULL || dir[0] == '\0') {
        dir = ZONEINFO_DEFAULT;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        return unknown(errmsg, name, NULL);
    }
    rv = file_read(path, &buf, &len);
    if (rv == FL_ENOTFOUND && strcmp(name, "UTC") == 0) {
        return utc_builtin(out, errmsg);
    }
    if (rv == FL_ENOMEM) {
        return fl_errf(errmsg, rv, "out of memory loading a time zone");
    }
    if (rv != FL_OK) {
        return unknown(errmsg, name, NULL);
    }
    rv = fl_tz_parse(name, buf, len, out, errmsg);
    fl_free(buf);
    return rv;
}

void fl_tz_destroy(struct fl_tz *z)
{
    fl_free(z);
}

/* ---- ISO 8601 ------------------------------------------------------------------- */

size_t fl_tz_format_iso(const struct fl_tz *z, int64_t t, char *buf)
{
    int32_t off = fl_tz_offset(z, t), a = off < 0 ? -off : off;
    struct fl_civil c;
    int n;
    fl_civil_from_secs(t + off, &c);
    n = snprintf(buf, FL_TZ_ISO_MAX, "%04lld-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
                 (long long)c.year, c.month, c.day, c.hour, c.minute, c.second, off < 0 ? '-' : '+',
                 (int)(a / 3600), (int)(a / 60 % 60));
    if (n > 0 && n < FL_TZ_ISO_MAX - 3 && a % 60 != 0) {
        n += snprintf(buf + n, (size_t)(FL_TZ_ISO_MAX - n), ":%02d", (int)(a % 60));
    }
    return strlen(buf);
}

/* Exactly n digits. */
static const char *digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, p++) {
        if (!is_digit(*p)) {
            return NULL;
        }
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return p;
}

/* "Z", "+hh", "+hhmm" or "+hh:mm" (hours 0-23); *has is 0 if absent. */
static const char *iso_offset(const char *p, int *has, int32_t *off)
{
    int h, m = 0, sign;
    *has = 0;
    *off = 0;
    if (*p == 'Z' || *p == 'z') {
        *has = 1;
        return p + 1;
    }
    if (*p != '+' && *p != '-') {
        return p;
    }
    sign = *p == '-' ? -1 : 1;
    if ((p = digits(p + 1, 2, &h)) == NULL || h > 23) {
        return NULL;
    }
    if (*p == ':' || is_digit(*p)) {
        if ((p = digits(p + (*p == ':'), 2, &m)) == NULL || m > 59) {
            return NULL;
        }
    }
    *has = 1;
    *off = sign * (h * 3600 + m * 60);
    return p;
}

/* The date-time part; 0, or -1 if malformed. */
static int iso_fields(const char *p, struct fl_civil *c, int *has_off, int32_t *off)
{
    int y;
    memset(c, 0, sizeof *c);
    if ((p = digits(p, 4, &y)) == NULL || *p++ != '-' || (p = digits(p, 2, &c->month)) == NULL ||
        *p++ != '-' || (p = digits(p, 2, &c->day)) == NULL) {
        return -1;
    }
    c->year = y;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if ((p = digits(p + 1, 2, &c->hour)) == NULL || *p++ != ':' ||
            (p = digits(p, 2, &c->minute)) == NULL) {
            return -1;
        }
        if (*p == ':' && (p = digits(p + 1, 2, &c->second)) != NULL && *p == '.' &&
            is_digit(p[1])) {
            for (p++; is_digit(*p); p++) {
            }
        }
        if (p == NULL || (p = iso_offset(p, has_off, off)) == NULL) {
            return -1;
        }
    } else {
        *has_off = 0;
    }
    if (*p != '\0' || y < 1 || c->month < 1 || c->month > 12 || c->day < 1 ||
        c->day > fl_civil_days_in_month(y, c->month) || c->hour > 23 || c->minute > 59 ||
        c->second > 59) {
        return -1;
    }
    return 0;
}

int fl_tz_parse_time(const struct fl_tz *z, const char *text, int64_t *utc_sec, char *errmsg)
{
    char show[FL_TZ_NAME_MAX + 1];
    struct fl_civil c;
    int has_off = 0;
    int32_t off = 0;
    if (text[0] == '@') {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(text + 1, &end, 10);
        if (errno == 0 && end != text + 1 && *end == '\0' && v >= SECS_MIN && v <= SECS_MAX) {
            *utc_sec = v;
            return FL_OK;
        }
    } else if (iso_fields(text, &c, &has_off, &off) == 0) {
        int64_t local = fl_civil_to_secs(&c);
        *utc_sec = has_off ? local - off : fl_tz_local_to_utc(z, local);
        return FL_OK;
    }
    return fl_errf(errmsg, FL_EINVAL,
                   "invalid time \"%s\" (use 2026-03-29T01:59:59+01:00, 2026-03-29T00:59:59Z, "
                   "2026-03-29T01:59:59 in the zone, or @UNIXSECONDS)",
                   shown(text, show, sizeof show));
}
