"""Checkers: pure functions over a history, the agents' unit logs and what
was read from the cluster after healing. Each returns a Result whose
`violations` list is empty when the property held.

Inputs (see workloads.py for how they are produced):
- history: list of dicts {type: invoke|ok|fail|info, op, process, f, t (ns,
  monotonic), wall, ...}; nemesis events have process "nemesis".
- units: unit-log records {ev: start|end|end-term, task, unit, attempt,
  token, node, job, sched, pid, dur, t (wall seconds)}.
- final: what the harness read after healing: tasks {id: task or None},
  units {task id: [unit]}, caps {node: cap}, job_runs {job: [run]},
  digests [{server, index, sha}], converged bool.

Checkers never talk to the cluster, so tests/chaos/test_checkers.py can feed
them hand-made histories.
"""
import bisect
import time
from collections import defaultdict

INF = float("inf")
TERMINAL = ("done", "failed", "cancelled")


class Result:
    def __init__(self, name):
        self.name = name
        self.violations = []
        self.notes = []
        self.verdict = None   # for checkers with a third answer (unknown)

    def bad(self, msg, **evidence):
        self.violations.append(dict(msg=msg, **evidence))

    def note(self, msg):
        self.notes.append(msg)

    @property
    def ok(self):
        return not self.violations

    def __repr__(self):
        return "Result(%s, %d violations)" % (self.name, len(self.violations))


def pair_ops(history):
    """[(invoke, completion or None)] in invoke order; completion None means
    the client never learned the outcome (as info)."""
    inv = {}
    out = []
    for rec in history:
        if rec.get("process") == "nemesis":
            continue
        if rec["type"] == "invoke":
            inv[rec["op"]] = len(out)
            out.append([rec, None])
        elif rec.get("op") in inv:
            out[inv[rec["op"]]][1] = rec
    return [(a, b) for a, b in out]


# ---------------------------------------------------------------- submissions

def check_submissions_not_lost(history, final_tasks):
    """Every acknowledged submission exists after healing, and an
    idempotency key names one task only."""
    r = Result("submissions-not-lost")
    by_key = defaultdict(set)
    acked = 0
    for inv, done in pair_ops(history):
        if inv["f"] != "submit" or not done or done["type"] != "ok":
            continue
        acked += 1
        tid = done["value"]
        by_key[inv["key"]].add(tid)
        if final_tasks.get(tid) is None:
            r.bad("acknowledged task %s (key %s) is gone" % (tid, inv["key"]), op=inv["op"],
                  invoke=inv, ok=done)
    for key, ids in by_key.items():
        if len(ids) > 1:
            r.bad("idempotency key %s returned several tasks %s" % (key, sorted(ids)))
    r.note("%d acknowledged submissions" % acked)
    return r


def check_acked_tasks_complete(history, final_tasks):
    """Every acknowledged task reached a terminal state after healing; a
    failed one is reported as a note (retries exhausted by faults)."""
    r = Result("acked-tasks-complete")
    seen = set()
    failed = 0
    for inv, done in pair_ops(history):
        if inv["f"] != "submit" or not done or done["type"] != "ok":
            continue
        tid = done["value"]
        if tid in seen:
            continue
        seen.add(tid)
        t = final_tasks.get(tid)
        if t is None:
            continue  # reported as lost by check_submissions_not_lost
        if t.get("state") not in TERMINAL:
            r.bad("task %s is still %s after healing" % (tid, t.get("state")),
                  progress=t.get("progress"))
        elif t.get("state") != "done":
            failed += 1
    if failed:
        r.note("%d acknowledged tasks ended failed (retries used up by faults)" % failed)
    r.note("%d acknowledged tasks checked" % len(seen))
    return r


# ---------------------------------------------------------------- unit logs

def unit_intervals(units, kills=None, slack=0.5):
    """One interval per unit process: {task, unit, attempt, token, node, job,
    sched, start, end, ended}. A process that logged no end (killed with
    SIGKILL) ends at the first kill of its node after its start, and at
    the latest at start + its planned duration + slack: the script cannot
    outlive its sleep."""
    kills = kills or {}
    starts = {}
    ends = {}
    for u in units:
        k = (u["node"], u["pid"], u["task"], u["unit"], u["attempt"])
        if u["ev"] == "start":
            starts[k] = u
        elif k not in ends:
            ends[k] = u
    out = []
    for k, s in starts.items():
        e = ends.get(k)
        if e is not None:
            end, ended = e["t"], True
        else:
            end = s["t"] + float(s.get("dur") or 0) + slack
            for kt in sorted(kills.get(s["node"], [])):
                if kt >= s["t"]:
                    end = min(end, kt)
                    break
            ended = False
        out.append(dict(task=s["task"], unit=s["unit"], attempt=s["attempt"], token=s["token"],
                        node=s["node"], job=s.get("job") or "", sched=s.get("sched") or "",
                        start=s["t"], end=end, ended=ended, pid=s["pid"]))
    return out


def _max_overlap(intervals):
    """Sweep: the largest number of intervals open at one time, and a time
    and the set where it happens. Touching intervals do not overlap."""
    ev = []
    for i, iv in enumerate(intervals):
        ev.append((iv["start"], 1, i))
        ev.append((iv["end"], 0, i))
    ev.sort()
    open_, best, best_set, best_t = set(), 0, [], None
    for t, kind, i in ev:
        if kind == 1:
            open_.add(i)
            if len(open_) > best:
                best, best_set, best_t = len(open_), sorted(open_), t
        else:
            open_.discard(i)
    return best, best_t, [intervals[i] for i in best_set]


def check_caps(units, caps, kills=None):
    """No node ever ran more units at once than its cap (agent-side logs)."""
    r = Result("caps")
    by_node = defaultdict(list)
    for iv in unit_intervals(units, kills):
        by_node[iv["node"]].append(iv)
    for node, ivs in sorted(by_node.items()):
        cap = caps.get(node)
        if cap is None:
            r.note("no cap known for %s" % node)
            continue
        n, t, which = _max_overlap(ivs)
        if n > cap:
            r.bad("%s ran %d units at once (cap %d) at %.3f" % (node, n, cap, t),
                  units=[{k: w[k] for k in ("task", "unit", "attempt", "token", "start", "end",
                                            "ended")} for w in which])
    r.note("%d unit runs on %d nodes" % (sum(len(v) for v in by_node.values()), len(by_node)))
    return r


def check_exclusive_job(units, jobs, final_units=None, kills=None):
    """No two runs of a forbid job overlap while both tokens are current.

    A run's attempt is current if it is its unit's final attempt and ended
    ok: the cluster held the job's lock from the fire until that attempt's
    result was committed, which is after the process ended, and the next
    run's units were assigned after the lock was released. A superseded
    attempt (lost agent, re-queued) may overlap a later run: its token is
    stale, which is what fencing is for. final_units: {task: [unit dict with
    unit, token, status]}; None treats every logged attempt as current."""
    r = Result("exclusive-job")
    current = None
    if final_units is not None:
        current = set()
        for tid, us in final_units.items():
            for u in us or []:
                if u.get("status") == "ok":
                    current.add((tid, u["unit"], u["token"]))
    for job in jobs:
        ivs = [iv for iv in unit_intervals(units, kills) if iv["job"] == job]
        if current is not None:
            ivs = [iv for iv in ivs if (iv["task"], iv["unit"], iv["token"]) in current]
        ivs.sort(key=lambda iv: iv["start"])
        latest = None
        for iv in ivs:
            if latest is not None and iv["start"] < latest["end"] and iv["task"] != latest["task"]:
                r.bad("job %s: runs overlap: %s (token %s, %s, %.3f-%.3f) and %s (token %s, %s, "
                      "%.3f-%.3f)" % (job, latest["task"], latest["token"], latest["node"],
                                      latest["start"], latest["end"], iv["task"], iv["token"],
                                      iv["node"], iv["start"], iv["end"]), a=latest, b=iv)
            if latest is None or iv["end"] > latest["end"]:
                latest = iv
        r.note("job %s: %d current runs" % (job, len(ivs)))
    return r


def lock_holds(history):
    """Holder intervals per lock from the clients' view: from the acquire's
    ok until the release's invoke, cut at the lease the client could prove
    (lease_end: TTL minus a margin after the last renewal it sent)."""
    holds = defaultdict(list)
    acq = {}
    for inv, done in pair_ops(history):
        if inv["f"] == "lock-acquire" and done and done["type"] == "ok":
            acq[(inv["lock"], inv["session"], done["token"])] = (inv, done)
    rel = {}
    for inv, done in pair_ops(history):
        if inv["f"] == "lock-release":
            rel.setdefault((inv["lock"], inv["session"], inv["token"]), inv)   # the first
    for k, (inv, done) in acq.items():
        r = rel.get(k)
        end = INF
        if r is not None:
            end = min(r["t"], r.get("lease_end", INF))
        holds[k[0]].append(dict(lock=k[0], session=k[1], token=k[2], start=done["t"], end=end,
                                limit=inv.get("limit", 1), invoke=inv["t"],
                                empty=end <= done["t"]))
    return holds


def check_lock_holders(history):
    """Never more holders of a lock at once than its limit (1: a mutex)."""
    r = Result("lock-holders")
    for lock, hs in sorted(lock_holds(history).items()):
        limit = max(h["limit"] for h in hs)
        # A grant that arrived after the lease the client could prove had
        # run out was never safely held: no interval.
        empty = sum(1 for h in hs if h["empty"])
        if empty:
            r.note("lock %s: %d grants arrived after the client's provable lease" % (lock, empty))
        n, t, which = _max_overlap([dict(h) for h in hs if not h["empty"]])
        if n > limit:
            r.bad("lock %s had %d holders at once (limit %d) at t=%.3fs" % (lock, n, limit, t / 1e9),
                  holders=which, at=t)
        r.note("lock %s: %d grants" % (lock, len(hs)))
    return r


def _attempts_text(done):
    return ", ".join("%s %s" % (a.get("node"), a.get("result")) for a in (done or {}).get(
        "attempts", []))


def check_lock_hold_lost(history):
    """A hold the client could prove is never taken away: a release that
    names the hold's token, sent while the client's lease was provable,
    must not be answered "you do not hold it" (404 not_found, 409
    conflict) at its first attempt. (A later attempt may be: an earlier one
    with an unknown outcome may have released it.) Sessions cannot expire
    within the provable lease, and nothing else releases a hold."""
    r = Result("lock-hold-lost")
    n = 0
    for inv, done in pair_ops(history):
        if inv["f"] != "lock-release" or not done or "first_definite" not in done:
            continue
        n += 1
        if done["type"] == "fail" and done.get("error") in ("not_found", "conflict") \
                and done["first_definite"] and inv["t"] < inv.get("lease_end", INF):
            r.bad("lock %s: session %s's hold (token %s) was gone when it released it at t=%.3fs, "
                  "within the lease it could prove (until t=%.3fs): answered %s (%s)" % (
                      inv["lock"], inv["session"], inv.get("token"), inv["t"] / 1e9,
                      inv["lease_end"] / 1e9, done.get("error"), _attempts_text(done)),
                  op=inv["op"], process=inv["process"], invoke=inv, done=done, at=inv["t"])
    r.note("%d releases that name their token" % n)
    return r


def check_lock_unasked(history):
    """No hold or place in a queue that its client did not ask for: a lock
    client that believes it neither holds nor waits and has no request in
    flight reads its session (GET /v1/sessions/ID, linearizable); any lock
    listed there was granted or queued by a request the client had
    abandoned (or by nobody)."""
    r = Result("lock-unasked")
    n = 0
    recent = defaultdict(list)     # session -> its lock ops that had an unknown attempt
    for inv, done in pair_ops(history):
        if inv["f"] in ("lock-acquire", "lock-release") and done and any(
                not str(a.get("result", "")).isdigit() for a in done.get("attempts", [])):
            recent[inv["session"]].append((inv, done))
        if inv["f"] != "lock-check" or not done or done["type"] != "ok":
            continue
        n += 1
        locks = done.get("value") or []
        if locks:
            ev = [dict(op=i["op"], f=i["f"], t=i["t"] / 1e9, result=d["type"],
                       error=d.get("error"), attempts=d.get("attempts"))
                  for i, d in recent[inv["session"]][-3:]]
            r.bad("session %s of %s holds or waits for %s at t=%.3fs although its client "
                  "neither holds nor waits nor has a request in flight (its abandoned or "
                  "retried requests: %s)" % (
                      inv["session"], inv["process"],
                      ", ".join("%s (%s)" % (x.get("key"), x.get("state")) for x in locks),
                      done["t"] / 1e9, ev or "none"),
                  op=inv["op"], process=inv["process"], locks=locks, requests=ev, at=done["t"])
    r.note("%d session checks" % n)
    return r


def check_lock_fifo(history):
    """Waiters are granted in FIFO order. Tokens come from one counter in
    grant order, so when X was definitely queued (a 202 answer at time q)
    before Y's acquire was invoked, and X was then granted without leaving
    the queue or losing its provable lease in between, X's token is smaller
    than Y's."""
    r = Result("lock-fifo")
    grants = defaultdict(list)
    for inv, done in pair_ops(history):
        if inv["f"] == "lock-acquire" and done and done["type"] == "ok":
            grants[inv["lock"]].append((inv, done))
    n = 0
    for lock, gs in sorted(grants.items()):
        gs.sort(key=lambda g: g[0]["t"])
        invokes = [g[0]["t"] for g in gs]
        for xi, xd in gs:
            q = xd.get("queued")
            if q is None or xd.get("lease_lost"):
                continue
            n += 1
            for yi, yd in gs[bisect.bisect_right(invokes, q):]:
                if yi["session"] != xi["session"] and yd["token"] < xd["token"]:
                    r.bad("lock %s: session %s was queued at t=%.3fs, before session %s asked "
                          "(t=%.3fs), yet got token %d after its token %d" % (
                              lock, xi["session"], q / 1e9, yi["session"], yi["t"] / 1e9,
                              xd["token"], yd["token"]),
                          waiter=xi["op"], later=yi["op"], waiter_done=xd, later_done=yd,
                          at=max(xd["t"], yd["t"]))
    r.note("%d grants after a definite place in the queue" % n)
    return r


def check_failed_writes(history, readback=None):
    """A write answered with a definite failure did not happen: a kv write
    whose value a read returned, or a follower-sent write (a create of a
    key of its own) whose key exists when read back after healing, is a
    violation. readback: {op: {"status", "value"}} for the failed
    follower-sent writes."""
    r = Result("failed-writes")
    readback = readback or {}
    pairs = pair_ops(history)
    read_vals = {}
    for inv, done in pairs:
        if inv["f"] == "kv-read" and done and done["type"] == "ok" and done.get("value"):
            read_vals.setdefault((inv["key"], done["value"]["value"]), (inv, done))
    failed = unread = 0
    for inv, done in pairs:
        if inv["f"] in ("kv-write", "kv-cas") and done and done["type"] == "fail":
            seen = read_vals.get((inv["key"], inv["value"]))
            if seen:
                r.bad("%s of %s=%s answered %s (via %s, t=%.3fs) took effect: op %s read it "
                      "(version %s) at t=%.3fs" % (
                          inv["f"], inv["key"], inv["value"], done.get("error"), inv.get("node"),
                          done["t"] / 1e9, seen[0]["op"], seen[1]["value"]["version"],
                          seen[1]["t"] / 1e9), op=inv["op"], invoke=inv, done=done,
                      at=seen[1]["t"])
        if inv["f"] != "fw-write" or not done or done["type"] != "fail":
            continue
        failed += 1
        rb = readback.get(inv["op"]) or readback.get(str(inv["op"]))
        if rb is None:
            unread += 1
            continue
        if rb.get("status") == 200:
            v = rb.get("value") or {}
            r.bad("write of %s (a key of its own) through follower %s answered %s at t=%.3fs "
                  "took effect: read back after healing as %r (version %s)%s" % (
                      inv["key"], inv.get("node"), done.get("error"), done["t"] / 1e9,
                      v.get("value"), v.get("version"),
                      "; a create answered conflict was applied twice" if
                      done.get("error") == "conflict" else ""),
                  op=inv["op"], invoke=inv, done=done, at=done["t"])
    r.note("%d follower writes failed definitely, %d read back" % (failed, failed - unread))
    if unread:
        r.bad("%d definitely failed follower writes could not be read back" % unread)
    return r


def check_tokens(history, units, job_runs=None):
    """Fencing tokens: strictly increasing per lock in real-time order (a
    grant acknowledged before another was requested has the smaller token);
    each token names one holder (lock grant or unit attempt: the counter is
    shared); a unit's later attempts have larger tokens; a forbid job's runs
    have increasing tokens in schedule order."""
    r = Result("tokens")
    owners = defaultdict(set)
    for lock, hs in lock_holds(history).items():
        hs = sorted(hs, key=lambda h: h["start"])
        ok_times = [h["start"] for h in hs]
        prefmax, best = [], None
        for h in hs:
            best = h if best is None or h["token"] > best["token"] else best
            prefmax.append(best)
        for h in hs:
            owners[h["token"]].add(("lock", lock, h["session"]))
            i = bisect.bisect_left(ok_times, h["invoke"]) - 1
            if i >= 0 and prefmax[i]["token"] >= h["token"]:
                p = prefmax[i]
                r.bad("lock %s: token %d granted after token %d was acknowledged" % (
                    lock, h["token"], p["token"]), earlier=p, later=h)
    per_unit = defaultdict(dict)
    runs = defaultdict(set)
    for u in units:
        if u["ev"] != "start" or u["token"] is None:
            continue
        owners[u["token"]].add(("unit", u["task"], u["unit"], u["attempt"]))
        per_unit[(u["task"], u["unit"])][u["attempt"]] = u["token"]
        runs[(u["task"], u["unit"], u["attempt"], u["token"])].add((u["node"], u["pid"]))
    for (task, unit, attempt, tok), procs in sorted(runs.items()):
        if len(procs) > 1:
            r.bad("task %s unit %s attempt %s (token %d) ran %d times: %s" % (
                task, unit, attempt, tok, len(procs), sorted(procs)))
    for tok, who in sorted(owners.items()):
        if len(who) > 1:
            r.bad("token %d has %d holders: %s" % (tok, len(who), sorted(who)))
    for (task, unit), att in per_unit.items():
        prev = None
        for a in sorted(att):
            if prev is not None and att[a] <= att[prev]:
                r.bad("task %s unit %s: attempt %d has token %d, attempt %d had %d" % (
                    task, unit, a, att[a], prev, att[prev]))
            prev = a
    for job, runs in (job_runs or {}).items():
        last = None
        distinct = {(run["scheduled_ms"], run.get("token") or 0) for run in runs}
        for sched, tok in sorted(distinct):
            if tok == 0:
                continue
            if last is not None and tok <= last[1]:
                r.bad("job %s: run at %d has token %d, the run at %d had %d" % (
                    job, sched, tok, last[0], last[1]))
            last = (sched, tok)
    return r


def check_fires(units, job_runs=None):
    """A job fires at most once per schedule time: one task per (job,
    scheduled time) in the unit logs, and one fire in the runs seen."""
    r = Result("fire-once")
    tasks = defaultdict(set)
    for u in units:
        if u["ev"] == "start" and u.get("job"):
            # mode one: one task per fire; the task name/id differs per fire
            tasks[(u["job"], u["sched"])].add(u["task"])
    for (job, sched), ts in sorted(tasks.items()):
        if len(ts) > 1:
            r.bad("job %s fired %d times for %s: tasks %s" % (job, len(ts), sched, sorted(ts)))
    for job, runs in (job_runs or {}).items():
        seen = defaultdict(set)
        for run in runs:
            seen[run["scheduled_ms"]].add((run.get("fired_ms"), run.get("outcome"),
                                           tuple(sorted(t["id"] if isinstance(t, dict) else t
                                                        for t in run.get("tasks", [])))))
        for sched, fires in sorted(seen.items()):
            started = {f for f in fires if f[1] != "queued"}
            if len({f[0] for f in started}) > 1 or len({f[2] for f in started if f[2]}) > 1:
                r.bad("job %s: several fires for %d: %s" % (job, sched, sorted(fires, key=str)))
    r.note("%d (job, time) pairs ran" % len(tasks))
    return r


def check_digests(samples, converged=True, last=None):
    """Replicas at the same applied index have the same digest; after
    healing, every server reaches the same index."""
    r = Result("digests")
    by_index = defaultdict(dict)
    for s in samples:
        by_index[s["index"]].setdefault(s["sha"], set()).add(s["server"])
    for idx, shas in sorted(by_index.items()):
        if len(shas) > 1:
            r.bad("index %d: %d different digests: %s" % (
                idx, len(shas), {k[:12]: sorted(v) for k, v in shas.items()}))
    if not converged:
        r.bad("replicas did not converge after healing: %r" % (last,))
    r.note("%d samples at %d indexes" % (len(samples), len(by_index)))
    return r


# ---------------------------------------------------------------- linearizability

class KVOp:
    __slots__ = ("kind", "call", "ret", "value", "version", "cas", "current", "rec", "optional",
                 "mystery")

    def __init__(self, kind, call, ret, value=None, version=None, cas=None, current=None,
                 rec=None, optional=False, mystery=False):
        self.kind = kind        # write, cas, cas-fail, read
        self.call = call
        self.ret = ret
        self.value = value
        self.version = version
        self.cas = cas
        self.current = current
        self.rec = rec
        # An optional op (a write whose outcome is unknown) takes effect
        # between call and ret, or never.
        self.optional = optional or ret == INF
        # a CAS (or CAS conflict) naming a version no known write has: only
        # a write of unknown outcome and version can explain it
        self.mystery = mystery

    def __repr__(self):
        end = "inf" if self.ret == INF else "%.3f" % (self.ret / 1e9)
        return "%s(value=%r version=%r cas=%r cur=%r) [%.3f, %s]%s op %s" % (
            self.kind, self.value, self.version, self.cas, self.current, self.call / 1e9, end,
            " optional" if self.optional else "", self.rec.get("op") if self.rec else "?")


def kv_step(state, op):
    """The register model of a key: state None (absent) or (value, version,
    floor). Versions are the cluster's kv revisions: they increase in apply
    order. A write whose outcome was unknown and whose value nobody read
    leaves the state ("?", None, floor): some version above floor, the
    highest known before it, that no known write has; only a CAS or a CAS
    conflict naming such a version (op.mystery) can follow it. (Nothing else
    could tell it happened: a read would need its value, which nobody read,
    and a write after it is the same as the write without it; so the
    search never places it anywhere else, and never with a value, which
    keeps such writes interchangeable in the memo.)"""
    sv = state[1] if state else 0
    floor = state[2] if state else 0
    if op.kind == "read":
        if op.value is None:
            return state is None, state
        return state is not None and state[:2] == (op.value, op.version), state
    if op.kind == "write":
        if state is not None and sv is None:
            return False, state
        if op.version is None:
            return True, ("?", None, floor)
        return op.version > floor and op.version > sv, (op.value, op.version, op.version)
    if op.kind == "cas":
        if sv is None:
            if not (op.mystery and op.cas > floor):
                return False, state
        elif sv != op.cas:
            return False, state
        if op.version is None:
            return True, ("?", None, floor)
        return op.version > floor, (op.value, op.version, op.version)
    if op.kind == "cas-fail":
        if sv == op.cas:
            return False, state
        if op.current is None or op.current == sv:
            return True, state
        if sv is None and op.mystery and op.current > floor:
            return True, (state[0], op.current, op.current)   # the conflict pins it
        return False, state
    raise ValueError(op.kind)


def kv_ops_by_key(history, window_ns=60 * 10**9):
    """The history as KVOps per key. Failed writes did not happen and are
    dropped; reads whose outcome is unknown tell nothing and are dropped.

    A write with an unknown outcome may take effect any time after its
    invoke, or never. Values are unique, so:
    - when a read returned its value, it did take effect, with the version
      that read saw, and before the first such read returned: it becomes an
      ordinary write that returns then;
    - when no read returned its value, it can only matter to a CAS that names
      a version no known write has (a failed CAS's `current`, up to window_ns
      later): it is kept as an optional op (it happens before that CAS's
      answer, or never) with an unknown version; otherwise it is pruned
      (taking effect or not changes nothing any read or CAS could tell).
    """
    seen = {}        # (key, value) -> version a read saw
    first_read = {}  # (key, value) -> earliest return of a read that saw it
    known = set()
    pairs = [(i, d) for i, d in pair_ops(history) if i["f"] in ("kv-read", "kv-write", "kv-cas")]
    for inv, done in pairs:
        if inv["f"] == "kv-read" and done and done["type"] == "ok" and done.get("value"):
            kv = (inv["key"], done["value"]["value"])
            seen[kv] = done["value"]["version"]
            first_read[kv] = min(first_read.get(kv, INF), done["t"])
            known.add(done["value"]["version"])
        elif done and done["type"] == "ok" and inv["f"] != "kv-read":
            known.add(done["version"])
    # the return of each known version's write (ok, or unknown but read)
    known_ret = defaultdict(dict)    # key -> version -> return time
    for inv, done in pairs:
        if inv["f"] in ("kv-write", "kv-cas") and done and done["type"] == "ok":
            known_ret[inv["key"]][done["version"]] = done["t"]
        elif inv["f"] in ("kv-write", "kv-cas") and (inv["key"], inv["value"]) in seen:
            kv = (inv["key"], inv["value"])
            known_ret[inv["key"]].setdefault(seen[kv], first_read[kv])
    # key -> [(return time, latest time a write explaining it can take effect)]
    # for CAS failures naming a version no known write has. Versions grow in
    # apply order, so the write with that version was applied before the
    # known write with the next version above it.
    mystery = defaultdict(list)
    for inv, done in pairs:
        if inv["f"] == "kv-cas" and done and done["type"] == "fail" \
                and done.get("error") == "conflict" and done.get("current") is not None \
                and done["current"] not in known:
            kr = known_ret[inv["key"]]
            above = [kr[v] for v in kr if v > done["current"]]
            mystery[inv["key"]].append((done["t"], min([done["t"]] + above)))
    for k in mystery:
        mystery[k].sort()
    out = defaultdict(list)
    for inv, done in pairs:
        key = inv["key"]
        kind = done["type"] if done else "info"
        ret = done["t"] if done and kind != "info" else INF
        if inv["f"] == "kv-read":
            if kind != "ok":
                continue
            v = done.get("value")
            out[key].append(KVOp("read", inv["t"], ret, v["value"] if v else None,
                                 v["version"] if v else None, rec=inv))
        else:
            cas = inv.get("cas") if inv["f"] == "kv-cas" else None
            f = "write" if cas is None else "cas"
            mys = bool(cas) and cas not in known
            if kind == "ok":
                out[key].append(KVOp(f, inv["t"], ret, inv["value"], done["version"], cas=cas,
                                     rec=inv, mystery=mys))
            elif kind == "fail":
                if cas is not None and done.get("error") == "conflict":
                    cur = done.get("current")
                    out[key].append(KVOp("cas-fail", inv["t"], ret, cas=cas, current=cur, rec=inv,
                                         mystery=cur is not None and cur not in known))
            elif (key, inv["value"]) in seen:
                # a read returned the value: it happened, before that read's answer
                kv = (key, inv["value"])
                out[key].append(KVOp(f, inv["t"], max(inv["t"], first_read[kv]), inv["value"],
                                     seen[kv], cas=cas, rec=inv, mystery=mys))
            else:
                bounds = [b for t, b in mystery.get(key, [])
                          if inv["t"] <= t <= inv["t"] + window_ns and b > inv["t"]]
                if not bounds:
                    continue     # pruned: nothing could tell whether it happened
                out[key].append(KVOp(f, inv["t"], max(bounds), inv["value"], None, cas=cas,
                                     rec=inv, optional=True, mystery=mys))
    return out


def split_quiescent(ops):
    """The ops in segments at quiescent points: every op of a segment is
    invoked after every op of the previous segments returned. Any
    linearization is a concatenation of linearizations of the segments, so
    each segment can be searched on its own, from the states the previous
    one can end in."""
    ops = sorted(ops, key=lambda o: (o.call, o.ret))
    segs, cur, last_ret = [], [], -INF
    for op in ops:
        if cur and op.call > last_ret:
            segs.append(cur)
            cur = []
        cur.append(op)
        last_ret = max(last_ret, op.ret)
    if cur:
        segs.append(cur)
    return segs


class Undecided(Exception):
    pass


def wgl_search(ops, step, init, finals, budget, all_finals=True):
    """Wing & Gong's search with Lowe's memoisation (as Porcupine does it),
    over one segment, from state `init`.

    The segment is a list of call and return entries sorted by time (a call
    sorts before a return at the same instant, so such ops count as
    concurrent). Walking from the head, a call whose op the model accepts in
    the current state is linearized: its call and return are lifted out of
    the list, and (linearized set, state) is remembered so no configuration
    is explored twice. Reaching the return of an op that is not linearized:
    an optional op is dropped there (it never happened; the search also
    tries it earlier), any other means undo the last choice. When the list
    is empty the state is a possible end state: it is added to `finals`,
    and the search goes on for the others (all_finals) or stops.

    budget: {"steps": left, "cache": max entries, "until": monotonic time
    or None, "deepest": (depth, op, state)}; raises Undecided when the
    steps, the memory or the time (looked at every 1024 steps) run out.
    Returns whether any linearization was found."""
    n = len(ops)
    ents = []   # (time, is_return, op index)
    for i, op in enumerate(ops):
        ents.append((op.call, 0, i))
        ents.append((op.ret, 1, i))
    ents.sort(key=lambda e: (e[0], e[1]))
    m = len(ents)
    # a doubly linked list over entry positions 0..m-1; m is the head, -1 the end
    nxt = [q + 1 for q in range(m)] + [0]
    nxt[m - 1] = -1
    prv = [m] + list(range(0, m - 1)) + [-1]
    ret_pos = [0] * n
    call_pos = [0] * n
    for q, (_, is_ret, i) in enumerate(ents):
        if is_ret:
            ret_pos[i] = q
        else:
            call_pos[i] = q

    def unlink(p):
        a, b = prv[p], nxt[p]
        nxt[a] = b
        if b != -1:
            prv[b] = a

    def relink(p):
        a, b = prv[p], nxt[p]
        nxt[a] = p
        if b != -1:
            prv[b] = p

    def _mystery_next(i):
        """Whether an op naming an unknown version (op.mystery) could be
        linearized right after op i: its call comes before the first
        return still in the list. After a write of unknown version only
        such an op can follow (kv_step), so placing it anywhere else is a
        dead end the search need not walk into."""
        q = nxt[m]
        while q != -1:
            _, r, j = ents[q]
            if r and j != i:
                return False
            if not r and j != i and ops[j].mystery:
                return True
            q = nxt[q]
        return False

    cache = set()
    stack = []       # (forced, call position, op index, state before)
    lin = 0
    state = init
    depth = 0
    found = False
    p = nxt[m]
    max_cache = budget["cache"]
    until = budget.get("until")
    while True:
        if nxt[m] == -1:
            finals.add(state)
            found = True
            if not all_finals:
                return True
            p = None
        else:
            budget["steps"] -= 1
            if budget["steps"] < 0:
                raise Undecided("steps")
            if until is not None and budget["steps"] & 1023 == 0 and time.monotonic() > until:
                raise Undecided("time")
            _, is_ret, i = ents[p]
            if not is_ret:
                ok, new = step(state, ops[i])
                if ok and ops[i].optional and ops[i].version is None and not _mystery_next(i):
                    ok = False
                if ok:
                    nl = lin | (1 << i)
                    key = (nl, new)
                    if key not in cache:
                        if len(cache) >= max_cache:
                            raise Undecided("memory")
                        cache.add(key)
                        stack.append((False, p, i, state))
                        state, lin = new, nl
                        unlink(p)
                        unlink(ret_pos[i])
                        depth += 1
                        p = nxt[m]
                        continue
                p = nxt[p]
                continue
            if ops[i].optional:
                nl = lin | (1 << i)
                key = (nl, state)
                if key not in cache:
                    if len(cache) >= max_cache:
                        raise Undecided("memory")
                    cache.add(key)
                    stack.append((True, call_pos[i], i, state))
                    lin = nl
                    unlink(call_pos[i])
                    unlink(ret_pos[i])
                    depth += 1
                    p = nxt[m]
                    continue
            elif depth >= budget["deepest"][0]:
                budget["deepest"] = (depth, ops[i], state)
            p = None
        # undo the last choice; a forced one (a drop) has no alternative
        while p is None:
            if not stack:
                return found
            forced, pc, i, state = stack.pop()
            lin &= ~(1 << i)
            relink(ret_pos[i])
            relink(pc)
            depth -= 1
            if not forced:
                p = nxt[pc]


def wgl_check(ops, step, init=None, max_steps=2_000_000, max_cache=1_000_000,
              max_seconds=None):
    """Whether ops have a linearization under step, searched segment by
    segment (split_quiescent) from the set of states the previous segments
    can end in. Returns (verdict, info): verdict True, False, or None when
    the step, memory or time bound (max_seconds, None for none) was hit
    (info["why"], info["segment"])."""
    if not ops:
        return True, {"steps": 0, "segments": 0}
    segs = split_quiescent(ops)
    states = {init}
    budget = {"steps": max_steps, "cache": max_cache, "deepest": (0, None, None),
              "until": None if max_seconds is None else time.monotonic() + max_seconds}
    biggest = 0
    done = 0
    for k, seg in enumerate(segs):
        biggest = max(biggest, len(seg))
        finals = set()
        last = k == len(segs) - 1
        try:
            for s0 in states:
                if wgl_search(seg, step, s0, finals, budget, all_finals=not last) and last:
                    break
        except Undecided as e:
            return None, {"steps": max_steps - budget["steps"], "why": str(e),
                          "segment": (k, len(seg), seg[0].call, max(o.ret for o in seg)),
                          "segments": len(segs), "decided_ops": done}
        if not finals:
            depth, op, st = budget["deepest"]
            return False, {"steps": max_steps - budget["steps"], "deepest": (done + depth, op, st),
                           "segment": (k, len(seg), seg[0].call, max(o.ret for o in seg)),
                           "segments": len(segs)}
        done += len(seg)
        states = finals
        budget["deepest"] = (0, None, None)
    return True, {"steps": max_steps - budget["steps"], "segments": len(segs), "biggest": biggest}


def check_kv_linearizable(history, max_steps=2_000_000, max_cache=1_000_000, max_seconds=None):
    """Each key's operations (a key is an independent register, so the
    history is checked per key) have a linearization under kv_step. A key
    the search cannot decide within its bounds is a failure of the run too:
    a checker that gives up proves nothing. max_seconds bounds the whole
    check: each key may use what is left divided by the keys left."""
    r = Result("kv-linearizable")
    unknown = []
    total = 0
    steps = 0
    segs = 0
    end = None if max_seconds is None else time.monotonic() + max_seconds
    by_key = sorted(kv_ops_by_key(history).items())
    for n, (key, ops) in enumerate(by_key):
        total += len(ops)
        share = None if end is None else max(0.0, end - time.monotonic()) / (len(by_key) - n)
        ok, info = wgl_check(ops, kv_step, None, max_steps, max_cache, share)
        steps += info.get("steps", 0)
        segs += info.get("segments", 0)
        if ok is None:
            unknown.append(key)
            k, nseg, t0, t1 = info["segment"]
            r.bad("key %s could not be decided: the %s bound (%d steps, %d states%s) was hit "
                  "in segment %d of %d (%d ops concurrent between t=%.3fs and t=%.3fs); an "
                  "undecided key fails the run" % (
                      key, info["why"], max_steps, max_cache,
                      "" if share is None else ", %.1f s" % share, k + 1, info["segments"],
                      nseg, t0 / 1e9, (t1 if t1 != INF else t0) / 1e9),
                  key=key, undecided=True)
        elif not ok:
            depth, op, state = info["deepest"]
            r.bad("key %s is not linearizable: after %d ops, no order places %r (state %r)" % (
                key, depth, op, state), key=key, op=repr(op), state=repr(state))
    r.verdict = "undecided" if unknown else (
        "not linearizable" if r.violations else "linearizable")
    r.note("%d kv ops checked in %d segments (%d search steps): %s" % (total, segs, steps,
                                                                       r.verdict))
    return r


def check_crashes(crashes):
    """No server or agent exits by itself. A process that stops on a full
    disk is expected (DESIGN: a storage failure inside apply stops the
    process; replay redoes the entry) and only noted; any other exit (an
    assertion, a signal, a non-zero status) is a violation."""
    r = Result("no-crashes")
    expected = 0
    for c in crashes:
        if c.get("why") == "disk full":
            expected += 1
            continue
        lines = [ln for ln in (c.get("tail") or "").splitlines() if ln.strip()]
        r.bad("%s exited by itself with status %s: %s" % (c["node"], c["rc"],
                                                           lines[-1][:200] if lines else "?"),
              node=c["node"], rc=c["rc"], wall=c.get("wall"))
    if expected:
        r.note("%d exits on a full disk (expected)" % expected)
    return r


def run_all(history, units, final, kills=None, max_steps=2_000_000, exclusive_jobs=(),
            crashes=(), max_cache=1_000_000, max_seconds=None):
    """Every checker; returns a list of Results."""
    kills = kills or {}
    return [
        check_submissions_not_lost(history, final.get("tasks", {})),
        check_acked_tasks_complete(history, final.get("tasks", {})),
        check_caps(units, final.get("caps", {}), kills),
        check_exclusive_job(units, exclusive_jobs, final.get("job_units"), kills),
        check_lock_holders(history),
        check_lock_hold_lost(history),
        check_lock_unasked(history),
        check_lock_fifo(history),
        check_tokens(history, units, final.get("job_runs")),
        check_fires(units, final.get("job_runs")),
        check_digests(final.get("digests", []), final.get("converged", True), final.get("last")),
        check_kv_linearizable(history, max_steps, max_cache, max_seconds),
        check_failed_writes(history, final.get("readback")),
        check_crashes(crashes),
    ]
