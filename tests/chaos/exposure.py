"""How much a chaos run exercised the paths where a write's answer can be
wrong: leader kills, writes forwarded by a follower at that moment, their
answers, and the linearizability verdict per key.

  /usr/bin/python3 tests/chaos/exposure.py RUN_DIR

RUN_DIR is a kept run directory (tests/chaos/run --keep): history.jsonl and
the servers' logs s1.log... (leadership is read from "became leader" and
"no longer leader" lines; a server under libfaketime logs a shifted wall
clock, so its leadership times are approximate).
"""
import datetime
import json
import os
import re
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers  # noqa: E402

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z server-(\d+) INFO "
                  r"(became leader for term|no longer leader|---- start)")


def leadership(run_dir):
    """[(sid, start wall, end wall)] from the servers' logs."""
    out = []
    for name in sorted(os.listdir(run_dir)):
        m = re.match(r"^s(\d+)\.log$", name)
        if not m:
            continue
        sid = int(m.group(1))
        since = None
        with open(os.path.join(run_dir, name), errors="replace") as f:
            for line in f:
                if line.startswith("---- start"):
                    if since is not None:      # killed while leading
                        out.append((sid, since, float(line.split()[4].rstrip(":"))))
                    since = None
                    continue
                lm = LINE.match(line)
                if not lm:
                    continue
                t = datetime.datetime.strptime(lm.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                if lm.group(3).startswith("became"):
                    since = t
                elif since is not None:
                    out.append((sid, since, t))
                    since = None
        if since is not None:
            out.append((sid, since, float("inf")))
    return out


def leader_at(terms, sid, wall):
    return any(s == sid and a <= wall <= b + 0.05 for s, a, b in terms)


def main(run_dir):
    with open(os.path.join(run_dir, "history.jsonl")) as f:
        recs = [json.loads(x) for x in f if x.strip()]
    terms = leadership(run_dir)
    nem = [r for r in recs if r.get("process") == "nemesis"]
    t0 = min(r["wall"] - r["t"] / 1e9 for r in recs)
    # "kill-sent" is recorded just before the kill (newer runs); "start-kill"
    # only after the kill and its bookkeeping
    kills = [r for r in nem if r["f"] == "kill-sent" and r["value"]["node"].startswith("s")]
    if not kills:
        kills = [r for r in nem if r["f"] == "start-kill" and " s" in r["value"]]
    for k in kills:
        if isinstance(k["value"], dict):
            k["victim"], k["was_leader"] = int(k["value"]["node"][1:]), k["value"]["leader"]
            k["wall"] = k["value"].get("wall") or k["wall"]     # when SIGKILL went out
        else:
            k["victim"] = int(re.search(r"kill -9 s(\d+)", k["value"]).group(1))
            k["was_leader"] = leader_at(terms, k["victim"], k["wall"])
    pairs = checkers.pair_ops(recs)
    writes = [(i, d) for i, d in pairs if i["f"] in ("kv-write", "kv-cas", "fw-write")]
    print("run %s: %.0f s of history, %d server kills, %d leader terms" % (
        run_dir, (recs[-1]["wall"] - t0), len(kills), len(terms)))
    lk = 0
    for k in kills:
        sid, was = k["victim"], k["was_leader"]
        lk += was
        inflight = Counter()
        for i, d in writes:
            if i["wall"] <= k["wall"] and (d is None or d["wall"] >= k["wall"]):
                via = "leader" if i.get("node", "").endswith(".1%d:8401" % sid) else "follower"
                inflight[(i["f"], via, d["type"] if d else "none",
                          (d or {}).get("error") if d and d["type"] != "ok" else "")] += 1
        print("  t=%6.1fs kill s%d%s; writes in flight: %s" % (
            k["wall"] - t0, sid, " (LEADER)" if was else "",
            ", ".join("%s via %s -> %s %s: %d" % (f, v, ty, e or "", n)
                      for (f, v, ty, e), n in sorted(inflight.items(), key=str)) or "none"))
    answers = Counter()
    for i, d in writes:
        if d and d["type"] != "ok":
            answers[(i["f"], d["type"], d.get("error"))] += 1
    print("leader kills: %d of %d server kills" % (lk, len(kills)))
    stalls = [r for r in nem if r["f"] == "start-stall"]
    print("follower stalls: %d" % len(stalls))
    print("definite failures and unknowns among writes:")
    for (f, ty, e), n in sorted(answers.items(), key=str):
        print("  %-9s %-5s %-22s %6d" % (f, ty, e, n))
    by = checkers.kv_ops_by_key(recs)
    print("kv ops per key (after dropping failures and unread unknown writes): %s" % (
        ", ".join("%s %d" % (k.rsplit("/", 1)[-1], len(v)) for k, v in sorted(by.items()))))


if __name__ == "__main__":
    main(sys.argv[1])
