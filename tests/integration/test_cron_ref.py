"""`flotilla cron next` against Debian's python3-croniter (docs/CRON.md).

Run with /usr/bin/python3 (it sees python3-croniter and python3-dateutil);
FLOTILLA_BIN names the binary. Random expressions (5 and 6 fields, lists,
ranges, steps, names, macros) in random zones, half of them started near a
clock change, are run through the real binary with --count; each fire time
is compared with croniter's next time after the previous one, in the same
zone (zoneinfo, the same tz database the binary reads).

FLOTILLA_SEED repeats a run; FLOTILLA_CRON_CASES sets the number of cases.

Where the comparison stops: croniter is wrong in three known ways around
clock changes, and each such step is counted and printed, not compared.
  repeated  the step starts in, or flotilla answers in, the second copy of a
            repeated wall-clock hour. croniter computes with fold=0, so from
            inside the second copy it answers times before its start; and it
            never fires there, where flotilla fires hour-'*' jobs again.
  skipped   flotilla answers with a skipped wall time, moved past the jump,
            that lies after the start but whose wall time is before the
            start's: croniter searches wall times from the start's on and
            misses it (it does fire it when started before the jump).
  shifted   croniter's "DST lag" correction moved the answer of its own
            search (e.g. "0 12 * * *" at 11:00 the day after the spring jump).
            These steps ARE compared, against croniter's answer before the
            correction (its wall-clock search), and counted separately.
Syntax croniter reads differently (seconds last; 7 as Sunday with six
fields; its OR rule decided on expanded sets, not on the leading '*') is
translated: a field whose croniter expansion differs from the intended set is
given to croniter as an explicit list, and day_or follows flotilla's rule.
"""
import bisect
import datetime
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

from croniter import croniter
from croniter.croniter import CroniterBadDateError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flotilla_cluster import BIN, check, run  # noqa: E402

SEED = int(os.environ.get("FLOTILLA_SEED") or random.SystemRandom().randrange(1 << 31))
CASES = int(os.environ.get("FLOTILLA_CRON_CASES") or 3000)
COUNT = 8  # fire times per case

ZONES = [
    "UTC", "Europe/Berlin", "Europe/London", "Europe/Dublin", "Europe/Moscow",
    "America/New_York", "America/Los_Angeles", "America/St_Johns", "America/Havana",
    "America/Santiago", "America/Sao_Paulo", "America/Asuncion", "Asia/Kolkata",
    "Asia/Kathmandu", "Asia/Tehran", "Asia/Tokyo", "Asia/Gaza", "Australia/Sydney",
    "Australia/Adelaide", "Australia/Lord_Howe", "Pacific/Auckland", "Pacific/Chatham",
    "Pacific/Apia", "Africa/Casablanca", "Antarctica/Troll", "Etc/GMT+12",
]
YEARS = (1975, 2065)

# ------------------------------------------------------------------ zones

_zinfo = {}


def zone(name):
    if name not in _zinfo:
        _zinfo[name] = ZoneInfo(name)
    return _zinfo[name]


def offset(z, ts):
    return int(datetime.datetime.fromtimestamp(ts, z).utcoffset().total_seconds())


def last_change(z, lo, hi):
    """The instant in (lo, hi] at which the offset last changed (one change assumed)."""
    o = offset(z, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset(z, mid) == o:
            hi = mid
        else:
            lo = mid
    return hi


_trans = {}


def transitions(name):
    """Offset changes in YEARS, found by weekly sampling and bisection."""
    if name not in _trans:
        z = zone(name)
        t = int(datetime.datetime(YEARS[0], 1, 1, tzinfo=datetime.timezone.utc).timestamp())
        end = int(datetime.datetime(YEARS[1], 1, 1, tzinfo=datetime.timezone.utc).timestamp())
        out, o = [], offset(z, t)
        while t < end:
            n = offset(z, t + 7 * 86400)
            if n != o:
                out.append(last_change(z, t, t + 7 * 86400))
                o = n
            t += 7 * 86400
        _trans[name] = out
    return _trans[name]


def in_repeat(z, ts):
    return datetime.datetime.fromtimestamp(ts, z).fold == 1


def after_jump(z, ts):
    """(t, gap) if ts lies in the first `gap` seconds after a forward jump at t."""
    o = offset(z, ts)
    if offset(z, ts - 90000) == o:
        return None
    t = last_change(z, ts - 90000, ts)
    gap = o - offset(z, t - 1)
    return (t, gap) if 0 < gap and ts < t + gap else None


# ------------------------------------------------------------------ expressions

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (croniter index in its 5/6-field order is computed separately)
FIELDS = {
    "sec": (0, 59), "min": (0, 59), "hour": (0, 23), "dom": (1, 31), "mon": (1, 12),
    "dow": (0, 7),
}
STEPS = [1, 2, 3, 4, 5, 6, 7, 10, 12, 15, 20, 30]


def name_of(kind, v, rng, range_end=False):
    if kind == "mon" and rng.random() < 0.4:
        s = MONTHS[v - 1]
    elif kind == "dow" and rng.random() < 0.4 and (v < 7 or range_end):
        s = DAYS[v % 7]
    else:
        return str(v)
    return rng.choice([s, s.lower(), s.capitalize()])


def gen_item(kind, rng):
    lo, hi = FIELDS[kind]
    r = rng.random()
    a = rng.randint(lo, hi)
    if r < 0.5:
        return name_of(kind, a, rng), {a}
    b = rng.randint(a, hi)
    # SUN ends a range as 7 only after a later day ("FRI-SUN"; "SUN-SUN" is Sunday)
    bn = name_of(kind, b, rng, a > 0)
    if r < 0.75:
        return "%s-%s" % (name_of(kind, a, rng), bn), set(range(a, b + 1))
    n = rng.choice([s for s in STEPS if s <= hi])
    if r < 0.9:
        return "%s-%s/%d" % (name_of(kind, a, rng), bn, n), set(range(a, b + 1, n))
    return "%s/%d" % (name_of(kind, a, rng), n), set(range(a, hi + 1, n))


def gen_field(kind, rng, star_bias):
    lo, hi = FIELDS[kind]
    r = rng.random()
    if r < star_bias:
        if kind in ("dom", "dow") and rng.random() < 0.15:
            return "?", set(range(lo, hi + 1))
        return "*", set(range(lo, hi + 1))
    if r < star_bias + 0.15:
        n = rng.choice([s for s in STEPS if s <= hi])
        return "*/%d" % n, set(range(lo, hi + 1, n))
    items = [gen_item(kind, rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    return ",".join(t for t, _ in items), set().union(*(s for _, s in items))


def norm(kind, s):
    return {0 if (kind == "dow" and v == 7) else v for v in s}


MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def never_fires(sets, dom_text, dow_text):
    if not (dom_text[0] in "*?" or dow_text[0] in "*?"):
        return False
    maxd = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return not any(d <= maxd[m] for m in sets["mon"] for d in sets["dom"])


def gen_expr(rng):
    """(flotilla text, croniter text, croniter day_or, fields used for croniter as lists)."""
    if rng.random() < 0.04:
        m = rng.choice(sorted(MACROS))
        return rng.choice([m, m.upper()]), m, False, 0
    six = rng.random() < 0.4
    kinds = (["sec"] if six else []) + ["min", "hour", "dom", "mon", "dow"]
    bias = {"sec": 0.3, "min": 0.25, "hour": 0.4, "dom": 0.55, "mon": 0.6, "dow": 0.55}
    while True:
        texts, sets = {}, {}
        for k in kinds:
            texts[k], s = gen_field(k, rng, bias[k])
            sets[k] = norm(k, s)
        if not never_fires(sets, texts["dom"], texts["dow"]):
            break
    flot = " ".join(texts[k] for k in kinds)
    cr_text, day_or, listed = croniter_form(kinds, texts, sets)
    return flot, cr_text, day_or, listed


def cr_expand(kinds, texts):
    order = kinds[1:] + kinds[:1] if kinds[0] == "sec" else kinds
    expr = " ".join(texts[k].replace("?", "*") for k in order)
    expanded, _ = croniter.expand(expr)
    out = {}
    for k, e in zip(order, expanded):
        lo, hi = FIELDS[k]
        out[k] = set(range(lo, min(hi, 6 if k == "dow" else hi) + 1)) if e == ["*"] else set(e)
    return expr, out, expanded, order


def croniter_form(kinds, texts, sets):
    day_or = not (texts["dom"][0] in "*?" or texts["dow"][0] in "*?")  # flotilla's rule
    texts = dict(texts)
    _, got, _, _ = cr_expand(kinds, texts)
    listed = 0
    for k in kinds:
        if got[k] != sets[k]:
            texts[k] = ",".join(str(v) for v in sorted(sets[k]))
            listed += 1
    expr, got, expanded, order = cr_expand(kinds, texts)
    full = {k: e == ["*"] for k, e in zip(order, expanded)}
    if day_or and (full["dom"] or full["dow"]):
        # either day matches every day: so does the OR; croniter would AND
        texts["dom"] = texts["dow"] = "*"
        expr, _, _, _ = cr_expand(kinds, texts)
    elif day_or and never_fires(sets, "*", "*"):
        # the OR's day-of-month half never occurs (31 June): only the
        # weekdays fire; croniter would give up searching that half
        texts["dom"], day_or = "*", False
        expr, _, _, _ = cr_expand(kinds, texts)
    return expr, day_or, listed


class Recorder(croniter):
    """croniter that keeps the results of its wall-clock search (_calc),
    before its DST post-correction."""

    def _calc(self, now, expanded, nth, is_prev):
        r = super()._calc(now, expanded, nth, is_prev)
        self.raw.append(r)
        return r


# ------------------------------------------------------------------ matching

def matches_wall(sets_day_or, ts, z):
    """Does the wall time of ts (natural offset) match? (sets, day_or) from parse_sets."""
    sets, day_or = sets_day_or
    d = datetime.datetime.fromtimestamp(ts, z)
    dom_ok, dow_ok = d.day in sets["dom"], (d.isoweekday() % 7) in sets["dow"]
    day = (dom_ok or dow_ok) if day_or else (dom_ok and dow_ok)
    return (d.second in sets["sec"] and d.minute in sets["min"] and d.hour in sets["hour"] and
            d.month in sets["mon"] and day)


def parse_sets(cr_text, day_or):
    """The intended sets, read back from croniter's own expansion of cr_text."""
    expanded, _ = croniter.expand(cr_text)
    names = ["min", "hour", "dom", "mon", "dow"] + (["sec"] if len(expanded) == 6 else [])
    sets = {"sec": {0}}
    for k, e in zip(names, expanded):
        lo, hi = FIELDS[k]
        sets[k] = norm(k, set(range(lo, hi + 1)) if e == ["*"] else set(e))
    return sets, day_or


# ------------------------------------------------------------------ running

def flotilla_next(expr, tz, start, count=COUNT):
    r = subprocess.run([BIN, "cron", "next", expr, "--tz", tz, "--from", "@%d" % start,
                        "--count", str(count), "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return [item["unix"] for item in json.loads(r.stdout)], None


def gen_cases(rng, n):
    cases = []
    lo = int(datetime.datetime(1990, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    hi = int(datetime.datetime(2060, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    changing = [z for z in ZONES if any(lo <= t < hi for t in transitions(z))]
    for i in range(n):
        near = i % 2 == 1
        tz = rng.choice(changing if near else ZONES)
        flot, cr_text, day_or, listed = gen_expr(rng)
        if near:
            t = rng.choice([t for t in transitions(tz) if lo <= t < hi])
            start = t + rng.choice([rng.randint(-6 * 3600, 6 * 3600), rng.randint(-60, 60),
                                    rng.randint(-36 * 3600, 36 * 3600)])
        else:
            start = rng.randint(lo, hi)
        cases.append({"expr": flot, "cr": cr_text, "day_or": day_or, "listed": listed, "tz": tz,
                      "start": start, "near": near})
    return cases


def skipped_unseen(z, prev, t, sets, cr_text):
    """t is a skipped wall time moved past its jump, and croniter's search
    (which reads wall times from prev + 1 s, or + 1 min for five fields, on)
    begins after the jump, so it cannot see it."""
    jump = after_jump(z, t)
    if jump is None or matches_wall(sets, t, z):
        return False
    return prev + (1 if len(cr_text.split()) == 6 else 60) >= jump[0]


def day_matches(sets, d):
    dom_ok, dow_ok = d.day in sets[0]["dom"], (d.isoweekday() % 7) in sets[0]["dow"]
    return d.month in sets[0]["mon"] and ((dom_ok or dow_ok) if sets[1] else (dom_ok and dow_ok))


def brute_check(z, tz, prev, t, sets, hour_star):
    """Check a step against docs/CRON.md's rule read directly: an instant
    fires if its wall time matches (in the second copy of a repeated hour
    only for hour-'*' jobs), or if it lies in the first `gap` seconds after
    a forward jump and its wall time read with the offset before the jump
    matches. t must fire and no instant in (prev, t) may; instants are
    skipped a day, hour or minute at a time where the wall clock cannot
    match, never across a clock change. None if the step is longer than 400
    days (not tried), else an error or ""."""
    if t - prev > 400 * 86400:
        return None
    trans = transitions(tz)
    near = [j for j in trans[bisect.bisect_left(trans, prev - 90000):] if j <= t]
    windows = [(j, j + offset(z, j) - offset(z, j - 1), offset(z, j - 1)) for j in near
               if offset(z, j) > offset(z, j - 1)]

    def fires(u):
        if matches_wall(sets, u, z) and (hour_star or not in_repeat(z, u)):
            return True
        return any(a <= u < b and matches_wall(sets, u + old, datetime.timezone.utc)
                   for a, b, old in windows)

    def skip(u):
        if any(a <= u < b for a, b, _ in windows):
            return 1
        d = datetime.datetime.fromtimestamp(u, z)
        if not day_matches(sets, d):
            n = 86400 - (d.hour * 3600 + d.minute * 60 + d.second)
        elif d.hour not in sets[0]["hour"]:
            n = 3600 - (d.minute * 60 + d.second)
        elif d.minute not in sets[0]["min"]:
            n = 60 - d.second
        else:
            n = 1
        ahead = [j for j in near if j > u] + [a for a, _, _ in windows if a > u]
        return min([n] + [j - u for j in ahead])

    if not fires(t):
        return "%d does not fire" % t
    u = prev + 1
    while u < t:
        if fires(u):
            return "%d fires before %d" % (u, t)
        u += skip(u)
    return ""


def cr_next(it, start):
    """croniter's next time after start: (its answer, its search's answer
    before the DST correction); (None, None) if it gives up."""
    it.raw = []
    it.set_current(start, force=True)
    try:
        final = int(it.get_next(float))
    except CroniterBadDateError:
        return None, None
    return final, int(min(it.raw))


def compare_case(c, stats, failures):
    z = zone(c["tz"])
    it = Recorder(c["cr"], datetime.datetime.fromtimestamp(c["start"], z), day_or=c["day_or"])
    sets = parse_sets(c["cr"], c["day_or"])
    step = 1 if len(c["cr"].split()) == 6 else 60  # croniter searches from start + step
    words = c["expr"].lower().split()
    hour_star = words == ["@hourly"] or (len(words) > 1 and words[-4].startswith("*"))
    prev = c["start"]
    for k, t in enumerate(c["ours"]):
        stats["steps"] += 1
        raw = None
        if in_repeat(z, prev) or in_repeat(z, prev + step) or in_repeat(z, t):
            stats["repeated"] += 1
        elif skipped_unseen(z, prev, t, sets, c["cr"]):
            stats["skipped"] += 1
        else:
            final, raw = cr_next(it, prev)
            if t == raw:
                stats["compared"] += 1
                stats["shifted"] += final != raw
                prev = t
                continue
            if raw is None or t > raw or cr_next(it, t - step)[1] != t:
                failures.append((c, k, prev, t, raw, "differs from croniter"))
                return
            # croniter jumped over t, a time it reports itself when asked
            # from just before it
            dst = offset(z, prev) != offset(z, raw)
            stats["croniter_jumps_dst" if dst else "croniter_jumps_month"] += 1
        # excluded from the comparison: try the step against the rules
        err = brute_check(z, c["tz"], prev, t, sets, hour_star)
        stats["brute" if err is not None else "far"] += 1
        if err:
            failures.append((c, k, prev, t, raw, err))
            return
        prev = t


def iso(ts, tz):
    return datetime.datetime.fromtimestamp(ts, zone(tz)).isoformat() if ts is not None else None


def test_reference():
    rng = random.Random(SEED)
    t0 = time.time()
    cases = gen_cases(rng, CASES)
    t1 = time.time()
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda c: flotilla_next(c["expr"], c["tz"], c["start"]), cases))
    t2 = time.time()
    stats = dict.fromkeys(["steps", "compared", "repeated", "skipped", "shifted",
                           "croniter_jumps_dst", "croniter_jumps_month", "brute", "far"], 0)
    failures, errors = [], []
    for c, (ours, err) in zip(cases, results):
        if ours is None or len(ours) != COUNT:
            errors.append((c, err))
            continue
        c["ours"] = ours
        compare_case(c, stats, failures)
    t3 = time.time()
    print("cases %d (%d started near a clock change, %d six-field, %d fields given to croniter "
          "as lists); zones %d" % (
              len(cases), sum(c["near"] for c in cases),
              sum(len(c["expr"].split()) == 6 for c in cases), sum(c["listed"] for c in cases),
              len(ZONES)))
    print("steps %(steps)d: equal to croniter %(compared)d (%(shifted)d of them to its search "
          "before its DST shift)" % stats)
    print("excluded %d: repeated hour %d, skipped time after a jump %d, croniter jumps over a "
          "time it reports itself %d (%d at a clock change, %d at a month end)" % (
              stats["repeated"] + stats["skipped"] + stats["croniter_jumps_dst"] +
              stats["croniter_jumps_month"], stats["repeated"], stats["skipped"],
              stats["croniter_jumps_dst"] + stats["croniter_jumps_month"],
              stats["croniter_jumps_dst"], stats["croniter_jumps_month"]))
    print("excluded steps checked instant by instant against the rules: %d (%d longer than 400 "
          "days, not tried)" % (stats["brute"], stats["far"]))
    print("time: generate %.1fs, flotilla %.1fs, croniter %.1fs" % (t1 - t0, t2 - t1, t3 - t2))
    for c, err in errors[:10]:
        print("ERROR %r tz=%s from=@%d: %s" % (c["expr"], c["tz"], c["start"], err))
    for c, k, prev, t, ref, why in failures[:10]:
        print("MISMATCH %r (croniter %r day_or=%s) tz=%s from=%s step %d after %s: flotilla %s, "
              "croniter %s: %s" % (c["expr"], c["cr"], c["day_or"], c["tz"],
                                   iso(c["start"], c["tz"]), k, iso(prev, c["tz"]),
                                   iso(t, c["tz"]), iso(ref, c["tz"]), why))
    check(not errors, "%d cases failed to run" % len(errors))
    check(not failures, "%d cases differ from croniter" % len(failures))
    check(stats["compared"] >= 0.8 * stats["steps"], "too few steps compared")


# ------------------------------------------------------------------ the CLI

BAD = [
    ("61 * * * *", "minute: 61 is out of range 0-59"),
    ("* * * *", "expected 5 or 6 fields, got 4"),
    ("* * * * * * *", "expected 5 or 6 fields, got 7"),
    ("", "empty expression"),
    ("*/0 * * * *", "step 0 is out of range"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6,9,11 *", "never fires"),
    ("@reboot", "@reboot"),
    ("@fortnightly", "unknown macro"),
    ("@daily 5", "takes no fields"),
    ("0 24 * * *", "hour: 24 is out of range 0-23"),
    ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
    ("0 0 20-10 * *", "day-of-month: empty range 20-10"),
    ("0 0 * 13 *", "month: 13 is out of range 1-12"),
    ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
    ("0 0 * FOO *", "unknown month name"),
    ("0 0 * * FUNDAY", "unknown day name"),
    ("0 MON * * *", "hour: not a number"),
    ("1,,2 * * * *", "empty item"),
    ("1, * * * *", "empty item"),
    ("5x * * * *", "unexpected \"x\""),
    ("99999999999999999999 * * * *", "out of range"),
    ("0 0 L * *", "not supported"),
    ("0 0 * * 5#2", "not supported"),
    ("? * * * *", "\"?\""),
    ("*/5/2 * * * *", "unexpected"),
    ("1-2-3 * * * *", "unexpected"),
    ("0 0 * * MON-", "missing value"),
    ("0 0 * * */", "missing step"),
    ("60 * * * * *", "second: 60 is out of range 0-59"),
    ("* " * 200 + "*", "longer than 256 bytes"),
]


def test_invalid_expressions():
    for expr, want in BAD:
        r = subprocess.run([BIN, "cron", "next", expr], capture_output=True, text=True)
        check(r.returncode == 2, "%r: exit %d, want 2" % (expr, r.returncode))
        check(want in r.stderr, "%r: %r does not say %r" % (expr, r.stderr.strip(), want))
        check(r.stdout == "", "%r: printed %r" % (expr, r.stdout))
    print("%d invalid expressions refused" % len(BAD))


def test_invalid_zones_and_times():
    for tz in ["Mars/Olympus", "../../etc/passwd", "/usr/share/zoneinfo/UTC", "", "Europe",
               "Europe/Berlin\n", "A" * 65, "Europe/Ber lin", "zone.tab"]:
        r = subprocess.run([BIN, "cron", "next", "* * * * *", "--tz", tz], capture_output=True,
                           text=True)
        check(r.returncode == 2 and "unknown time zone" in r.stderr, "tz %r: %d %r" %
              (tz, r.returncode, r.stderr))
    for t in ["yesterday", "2026-02-30T00:00:00Z", "2026-03-29T25:00:00", "@x", "@",
              "2026-03-29T01:59:59+24:00", "2026-3-29"]:
        r = subprocess.run([BIN, "cron", "next", "* * * * *", "--from", t], capture_output=True,
                           text=True)
        check(r.returncode == 2 and "invalid time" in r.stderr, "from %r: %d %r" %
              (t, r.returncode, r.stderr))
    for n in ["0", "1001", "x", "-1"]:
        r = subprocess.run([BIN, "cron", "next", "* * * * *", "--count", n],
                           capture_output=True, text=True)
        check(r.returncode == 2 and "--count" in r.stderr, "count %r: %d" % (n, r.returncode))


def lines(*args):
    r = subprocess.run([BIN, "cron", "next"] + list(args), capture_output=True, text=True)
    check(r.returncode == 0, "%r: exit %d: %s" % (args, r.returncode, r.stderr))
    return r.stdout.split()


def test_cli_forms():
    berlin = ["0 3 * * *", "--tz", "Europe/Berlin", "--count", "2"]
    want = ["2026-03-29T03:00:00+02:00", "2026-03-30T03:00:00+02:00"]
    for frm in ["2026-03-29T01:59:59+01:00", "2026-03-29T00:59:59Z", "2026-03-29T01:59:59",
                "@1774745999", "2026-03-29 01:59:59.75", "2026-03-29T01:59:59+0100"]:
        got = lines(*berlin, "--from", frm)
        check(got == want, "--from %s: %r" % (frm, got))
    # the skipped 02:30 fires at 03:30 CEST; a local --from in the gap reads the same way
    check(lines("30 2 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-29", "--count", "1") ==
          ["2026-03-29T03:30:00+02:00"], "skipped time")
    check(lines("0 0 * * *", "--from", "@0", "--count", "1") == ["1970-01-02T00:00:00+00:00"],
          "UTC")
    check(lines("0 0 * * *", "--tz", "Asia/Kolkata", "--from", "@0", "--count", "1") ==
          ["1970-01-02T00:00:00+05:30"], "Kolkata")
    r = subprocess.run([BIN, "cron", "next", "*/20 * * * * *", "--from", "@10", "--count", "3",
                        "--json"], capture_output=True, text=True)
    got = json.loads(r.stdout)
    check(got == [{"time": "1970-01-01T00:00:20+00:00", "unix": 20},
                  {"time": "1970-01-01T00:00:40+00:00", "unix": 40},
                  {"time": "1970-01-01T00:01:00+00:00", "unix": 60}], "json %r" % got)
    check(len(lines("* * * * * *", "--count", "1000")) == 1000, "count 1000")
    now = time.time()
    first = lines("* * * * *", "--count", "1")[0]
    t = datetime.datetime.fromisoformat(first).timestamp()
    check(now < t <= now + 61, "default --from is now: %s" % first)
    # the end of the calendar: fewer times, exit 1, a message
    r = subprocess.run([BIN, "cron", "next", "@yearly", "--from", "9998-06-01T00:00:00Z"],
                       capture_output=True, text=True)
    check(r.returncode == 1 and r.stdout.split() == ["9999-01-01T00:00:00+00:00"] and
          "10000" in r.stderr, "year 9999: %d %r %r" % (r.returncode, r.stdout, r.stderr))


if __name__ == "__main__":
    print("seed %d (FLOTILLA_SEED=%d repeats this run)" % (SEED, SEED), flush=True)
    run([test_invalid_expressions, test_invalid_zones_and_times, test_cli_forms,
         test_reference])
