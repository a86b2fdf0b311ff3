"""The checkers can fail: hand-made histories with a lost write, an
overlap, a repeated token, a double fire, a cap exceeded, diverged digests,
a non-linearizable read, an undecided key, a failed write that took effect,
a hold lost within its lease, a hold or place in a queue nobody asked for
and a waiter overtaken in the queue are each reported, and valid histories
pass.

/usr/bin/python3 tests/chaos/test_checkers.py  (prints 'N passed, N failed')
"""
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers as C  # noqa: E402

S = 1_000_000_000  # ns per second


class H:
    """A history builder: ops with invoke/complete at given seconds."""

    def __init__(self):
        self.recs = []
        self.n = 0

    def op(self, process, f, t0, t1, kind="ok", inv=None, done=None):
        self.n += 1
        inv = dict(inv or {})
        self.recs.append(dict(type="invoke", op=self.n, process=process, f=f, t=int(t0 * S), **inv))
        if kind is not None:
            d = dict(inv)
            d.update(done or {})
            self.recs.append(dict(type=kind, op=self.n, process=process, f=f, t=int(t1 * S), **d))
        return self

    def sorted(self):
        return sorted(self.recs, key=lambda r: r["t"])

    # shorthands
    def w(self, p, key, value, t0, t1, version, kind="ok"):
        return self.op(p, "kv-write", t0, t1, kind, {"key": key, "value": value},
                       {"version": version} if kind == "ok" else {"error": "timeout"})

    def r(self, p, key, value, version, t0, t1):
        v = None if value is None else {"value": value, "version": version}
        return self.op(p, "kv-read", t0, t1, "ok", {"key": key}, {"value": v})

    def cas(self, p, key, value, expect, t0, t1, version=None, current=None):
        if version is not None:
            return self.op(p, "kv-cas", t0, t1, "ok", {"key": key, "value": value, "cas": expect},
                           {"version": version})
        return self.op(p, "kv-cas", t0, t1, "fail", {"key": key, "value": value, "cas": expect},
                       {"error": "conflict", "current": current})

    def submit(self, p, key, t0, t1, tid, kind="ok"):
        return self.op(p, "submit", t0, t1, kind, {"key": key}, {"value": tid} if tid else {})

    def acquire(self, p, lock, sess, t0, t1, token, limit=1):
        return self.op(p, "lock-acquire", t0, t1, "ok", {"lock": lock, "session": sess,
                                                          "limit": limit}, {"token": token})

    def release(self, p, lock, sess, token, t0, t1, lease_end=None):
        inv = {"lock": lock, "session": sess, "token": token}
        if lease_end is not None:
            inv["lease_end"] = int(lease_end * S)
        return self.op(p, "lock-release", t0, t1, "ok", inv)


def unit(ev, task, u, attempt, token, node, t, job="", sched="", pid=None, dur=1.0):
    return dict(ev=ev, task=task, unit=u, attempt=attempt, token=token, node=node, t=t, job=job,
                sched=sched, pid=pid if pid is not None else hash((task, u, attempt)) % 100000,
                dur=dur)


def run_unit(task, u, attempt, token, node, t0, t1, **kw):
    return [unit("start", task, u, attempt, token, node, t0, **kw),
            unit("end", task, u, attempt, token, node, t1, **kw)]


def expect_bad(res, what):
    assert not res.ok, "%s: %s not reported (%s)" % (res.name, what, res.notes)


def expect_ok(res):
    assert res.ok, "%s: false violation: %s" % (res.name, res.violations)


# ---------------------------------------------------------------- submissions

def test_lost_write_reported():
    h = H().submit("c0", "k1", 1, 2, "t1").submit("c0", "k2", 3, 4, "t2")
    tasks = {"t1": {"state": "done"}, "t2": None}
    expect_bad(C.check_submissions_not_lost(h.sorted(), tasks), "a lost task")
    expect_ok(C.check_submissions_not_lost(h.sorted(), {"t1": {"state": "done"},
                                                        "t2": {"state": "done"}}))


def test_unknown_submission_may_be_absent():
    h = H().submit("c0", "k1", 1, 2, None, kind="info").submit("c0", "k2", 3, 4, None, kind="fail")
    expect_ok(C.check_submissions_not_lost(h.sorted(), {}))


def test_idempotency_key_two_tasks_reported():
    h = H().submit("c0", "k1", 1, 2, "t1").submit("c1", "k1", 3, 4, "t9")
    tasks = {"t1": {"state": "done"}, "t9": {"state": "done"}}
    expect_bad(C.check_submissions_not_lost(h.sorted(), tasks), "one key, two tasks")


def test_incomplete_task_reported():
    h = H().submit("c0", "k1", 1, 2, "t1").submit("c0", "k2", 3, 4, "t2")
    expect_bad(C.check_acked_tasks_complete(h.sorted(), {"t1": {"state": "done"},
                                                         "t2": {"state": "running"}}),
               "a task still running")
    res = C.check_acked_tasks_complete(h.sorted(), {"t1": {"state": "done"},
                                                    "t2": {"state": "failed"}})
    expect_ok(res)


# ---------------------------------------------------------------- caps

def test_cap_exceeded_reported():
    units = run_unit("t1", 0, 1, 10, "n1", 0.0, 2.0) + run_unit("t2", 0, 1, 11, "n1", 0.5, 2.5) \
        + run_unit("t3", 0, 1, 12, "n1", 1.0, 1.5)
    expect_bad(C.check_caps(units, {"n1": 2}), "three units on a cap-2 node")
    expect_ok(C.check_caps(units, {"n1": 3}))


def test_cap_back_to_back_ok():
    units = run_unit("t1", 0, 1, 10, "n1", 0.0, 1.0) + run_unit("t2", 0, 1, 11, "n1", 1.0, 2.0) \
        + run_unit("t3", 0, 1, 12, "n2", 0.5, 1.5)
    expect_ok(C.check_caps(units, {"n1": 1, "n2": 1}))


def test_cap_killed_unit_ends_at_kill():
    # t1's process was SIGKILLed with its node at 1.0 (no end logged)
    units = [unit("start", "t1", 0, 1, 10, "n1", 0.0, dur=5.0)] + \
        run_unit("t2", 0, 1, 11, "n1", 1.2, 2.0)
    expect_ok(C.check_caps(units, {"n1": 1}, kills={"n1": [1.0]}))
    expect_bad(C.check_caps(units, {"n1": 1}), "without the kill the unit may still run")


# ---------------------------------------------------------------- exclusive job

def test_overlap_reported():
    units = run_unit("j-1", 0, 1, 5, "n1", 0.0, 2.0, job="ex", sched="1") + \
        run_unit("j-2", 0, 1, 8, "n2", 1.5, 3.0, job="ex", sched="2")
    expect_bad(C.check_exclusive_job(units, ["ex"]), "two overlapping runs")


def test_no_overlap_and_stale_attempt_ok():
    # j-1's attempt 1 (token 5) was superseded by attempt 2 (token 7) after
    # its agent was paused; it may overlap j-2, whose token is current.
    units = run_unit("j-1", 0, 1, 5, "n1", 0.0, 4.0, job="ex", sched="1") + \
        run_unit("j-1", 0, 2, 7, "n2", 1.0, 2.0, job="ex", sched="1") + \
        run_unit("j-2", 0, 1, 9, "n2", 2.5, 3.5, job="ex", sched="2")
    final = {"j-1": [{"unit": 0, "token": 7, "status": "ok"}],
             "j-2": [{"unit": 0, "token": 9, "status": "ok"}]}
    expect_ok(C.check_exclusive_job(units, ["ex"], final))
    expect_bad(C.check_exclusive_job(units, ["ex"]), "the overlap when all tokens count")


# ---------------------------------------------------------------- locks

def test_two_holders_reported():
    h = H().acquire("c1", "L", "s1", 0, 1, 10).acquire("c2", "L", "s2", 1.5, 2, 11) \
        .release("c1", "L", "s1", 10, 3, 3.1).release("c2", "L", "s2", 11, 4, 4.1)
    expect_bad(C.check_lock_holders(h.sorted()), "two mutex holders")


def test_holders_handoff_ok_and_lease_cut():
    # c1 holds until 3 by its own clock but its lease ended at 1.8, before
    # c2 got the lock at 2: no overlap.
    h = H().acquire("c1", "L", "s1", 0, 1, 10).acquire("c2", "L", "s2", 1.5, 2, 11) \
        .release("c1", "L", "s1", 10, 3, 3.1, lease_end=1.8).release("c2", "L", "s2", 11, 4, 4.1)
    expect_ok(C.check_lock_holders(h.sorted()))
    expect_ok(C.check_tokens(h.sorted(), []))


def test_grant_after_lease_not_a_hold():
    # c1's grant came back after the lease it could prove had ended: it never
    # held the lock safely, so c2's hold is not an overlap
    h = H().acquire("c1", "L", "s1", 0, 2, 10).acquire("c2", "L", "s2", 2.5, 3, 11) \
        .release("c1", "L", "s1", 10, 4, 4.1, lease_end=1.5).release("c2", "L", "s2", 11, 5, 5.1)
    expect_ok(C.check_lock_holders(h.sorted()))


def test_semaphore_limit():
    h = H()
    for i in range(3):
        h.acquire("c%d" % i, "S", "s%d" % i, i * 0.1, 1 + i * 0.1, 10 + i, limit=2)
    for i in range(3):
        h.release("c%d" % i, "S", "s%d" % i, 10 + i, 5, 5.1)
    expect_bad(C.check_lock_holders(h.sorted()), "three holders of a limit-2 lock")


def test_repeated_token_reported():
    h = H().acquire("c1", "L", "s1", 0, 1, 10).release("c1", "L", "s1", 10, 1.5, 1.6) \
        .acquire("c2", "L", "s2", 2, 3, 10).release("c2", "L", "s2", 10, 3.5, 3.6)
    expect_bad(C.check_tokens(h.sorted(), []), "one token twice")


def test_token_decrease_reported():
    h = H().acquire("c1", "L", "s1", 0, 1, 12).release("c1", "L", "s1", 12, 1.5, 1.6) \
        .acquire("c2", "L", "s2", 2, 3, 11).release("c2", "L", "s2", 11, 3.5, 3.6)
    expect_bad(C.check_tokens(h.sorted(), []), "a smaller token later")


def test_unit_token_shared_with_lock_reported():
    h = H().acquire("c1", "L", "s1", 0, 1, 12).release("c1", "L", "s1", 12, 1.5, 1.6)
    units = run_unit("t1", 0, 1, 12, "n1", 0, 1)
    expect_bad(C.check_tokens(h.sorted(), units), "a lock token reused by a unit")


def test_assignment_run_twice_reported():
    units = run_unit("t1", 0, 1, 12, "n1", 0, 1, pid=100) + run_unit("t1", 0, 1, 12, "n1", 2, 3, pid=101)
    expect_bad(C.check_tokens([], units), "one assignment executed twice")


def test_unit_attempt_tokens():
    units = run_unit("t1", 0, 1, 12, "n1", 0, 1) + run_unit("t1", 0, 2, 11, "n2", 2, 3)
    expect_bad(C.check_tokens([], units), "attempt 2 with a smaller token")
    units = run_unit("t1", 0, 1, 12, "n1", 0, 1) + run_unit("t1", 0, 2, 13, "n2", 2, 3)
    expect_ok(C.check_tokens([], units))


# ---------------------------------------------------------------- fires

def test_double_fire_reported():
    units = run_unit("j-1", 0, 1, 5, "n1", 0, 1, job="ex", sched="100.000") + \
        run_unit("j-2", 0, 1, 6, "n2", 2, 3, job="ex", sched="100.000")
    expect_bad(C.check_fires(units), "two tasks for one schedule time")
    runs = {"ex": [{"scheduled_ms": 100000, "fired_ms": 100001, "outcome": "started",
                    "tasks": [{"id": "j-1"}]},
                   {"scheduled_ms": 100000, "fired_ms": 100900, "outcome": "started",
                    "tasks": [{"id": "j-2"}]}]}
    expect_bad(C.check_fires([], runs), "two fires in the runs")


def test_single_fires_ok():
    units = run_unit("j-1", 0, 1, 5, "n1", 0, 1, job="ex", sched="100.000") + \
        run_unit("j-1", 0, 2, 7, "n2", 1, 2, job="ex", sched="100.000") + \
        run_unit("j-2", 0, 1, 9, "n2", 2, 3, job="ex", sched="101.000")
    runs = {"ex": [{"scheduled_ms": 100000, "fired_ms": 100001, "outcome": "started",
                    "tasks": [{"id": "j-1"}], "token": 4},
                   {"scheduled_ms": 100000, "fired_ms": 100001, "outcome": "started",
                    "tasks": [{"id": "j-1"}], "token": 4},
                   {"scheduled_ms": 101000, "fired_ms": 101001, "outcome": "started",
                    "tasks": [{"id": "j-2"}], "token": 8}]}
    expect_ok(C.check_fires(units, runs))
    expect_ok(C.check_tokens([], units, runs))


# ---------------------------------------------------------------- digests

def test_digest_divergence_reported():
    samples = [dict(server=1, index=10, sha="aa"), dict(server=2, index=10, sha="ab"),
               dict(server=3, index=9, sha="cc")]
    expect_bad(C.check_digests(samples), "two digests at index 10")
    expect_bad(C.check_digests(samples[2:], converged=False), "no convergence")
    expect_ok(C.check_digests([dict(server=1, index=10, sha="aa"), dict(server=2, index=10, sha="aa"),
                               dict(server=3, index=9, sha="cc")]))


def test_crash_reported():
    crashes = [dict(node="s2", rc=-6, why="unexpected", tail="x\nflotilla: legacy.c: Assertion failed\n"),
               dict(node="s3", rc=1, why="disk full", tail="store full")]
    res = C.check_crashes(crashes)
    assert len(res.violations) == 1 and "Assertion" in res.violations[0]["msg"], res.violations
    expect_ok(C.check_crashes(crashes[1:]))


# ---------------------------------------------------------------- linearizability

def lin(h):
    return C.check_kv_linearizable(h.sorted(), max_steps=200000)


def test_stale_read_reported():
    # w(a) completes, then w(b) completes, then a read sees a: not linearizable
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "b", 2, 3, 6).r("c2", "k", "a", 5, 4, 5)
    res = lin(h)
    expect_bad(res, "a stale read")
    assert res.verdict == "not linearizable"


def test_concurrent_reads_ok():
    # the read overlaps w(b): it may see a or b
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "b", 2, 4, 6).r("c2", "k", "a", 5, 2.5, 3) \
        .r("c3", "k", "b", 6, 3.2, 3.5).r("c2", "k", "b", 6, 4.5, 5)
    res = lin(h)
    expect_ok(res)
    assert res.verdict == "linearizable"


def test_read_flip_flop_reported():
    # two concurrent writes; reads after both see b then a: impossible
    h = H().w("c1", "k", "a", 0, 2, 5).w("c2", "k", "b", 0, 2, 6).r("c3", "k", "b", 6, 3, 4) \
        .r("c3", "k", "a", 5, 5, 6)
    expect_bad(lin(h), "a read going back")


def test_failed_write_seen_reported():
    # a write answered with a definite failure must not be observed
    h = H().w("c1", "k", "a", 0, 1, 5).op("c1", "kv-write", 2, 3, "fail",
                                        {"key": "k", "value": "zz"}, {"error": "no_leader"}) \
        .r("c2", "k", "zz", 9, 4, 5)
    expect_bad(lin(h), "a failed write observed")


def test_unknown_write_may_apply_later_or_never():
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "x", 2, 3, None, kind="info") \
        .r("c2", "k", "a", 5, 4, 5).r("c2", "k", "x", 7, 6, 7).r("c3", "k", "x", 7, 8, 9)
    expect_ok(lin(h))
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "x", 2, 3, None, kind="info") \
        .r("c2", "k", "a", 5, 4, 5)
    expect_ok(lin(h))


def test_cas():
    h = H().w("c1", "k", "a", 0, 1, 5).cas("c2", "k", "b", 5, 2, 3, version=7) \
        .cas("c3", "k", "c", 5, 4, 5, current=7).r("c1", "k", "b", 7, 6, 7)
    expect_ok(lin(h))
    # a cas that succeeded against a version that was already replaced
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "b", 2, 3, 6) \
        .cas("c2", "k", "c", 5, 4, 5, version=8)
    expect_bad(lin(h), "a cas on an old version")
    # a cas that failed although the version matched and nothing overlapped
    h = H().w("c1", "k", "a", 0, 1, 5).cas("c2", "k", "c", 5, 2, 3, current=5)
    expect_bad(lin(h), "a cas that should have succeeded")


def test_unknown_write_revealed_by_cas_conflict():
    # x's write timed out; nobody read x, but a CAS conflict reports version 7,
    # which only x can have: linearizable
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "x", 2, 3, None, kind="info") \
        .cas("c2", "k", "b", 5, 4, 5, current=7)
    expect_ok(lin(h))
    # without the unknown write the conflict is impossible
    h = H().w("c1", "k", "a", 0, 1, 5).cas("c2", "k", "b", 5, 4, 5, current=7)
    expect_bad(lin(h), "a conflict with no write to explain it")


def test_absent_key_read():
    h = H().r("c1", "k", None, None, 0, 1).w("c1", "k", "a", 2, 3, 5).r("c1", "k", None, None, 4, 5)
    expect_bad(lin(h), "the key vanished")


def test_partition_by_key():
    h = H().w("c1", "k1", "a", 0, 1, 5).w("c1", "k2", "b", 2, 3, 6).r("c2", "k1", "a", 5, 4, 5) \
        .r("c2", "k2", "b", 6, 4, 5)
    expect_ok(lin(h))


def test_undecided_key_is_a_violation():
    h = H()
    # many concurrent writes, then a read of a value never written: the
    # search must explore many orders before giving up
    for i in range(14):
        h.w("c%d" % i, "k", "v%d" % i, 0, 10, 100 + i)
    h.r("r", "k", "nope", 1, 11, 12)
    res = C.check_kv_linearizable(h.sorted(), max_steps=5)
    assert res.verdict == "undecided", res.verdict
    expect_bad(res, "an undecided key")
    assert "could not be decided" in res.violations[0]["msg"]
    # the memory bound too
    res = C.check_kv_linearizable(h.sorted(), max_steps=10_000_000, max_cache=3)
    assert res.verdict == "undecided" and not res.ok, res.verdict
    res = C.check_kv_linearizable(h.sorted(), max_steps=10_000_000)
    assert res.verdict == "not linearizable", res.verdict
    # and the time bound: a key whose search runs out of time is undecided
    # (a violation), never passed
    res = C.check_kv_linearizable(h.sorted(), max_steps=10_000_000, max_seconds=0)
    assert res.verdict == "undecided" and not res.ok, res.verdict
    assert "the time bound" in res.violations[0]["msg"], res.violations[0]["msg"]
    # a bad history with time to spare is still found
    res = C.check_kv_linearizable(h.sorted(), max_steps=10_000_000, max_seconds=60)
    assert res.verdict == "not linearizable", res.verdict


def test_quiescent_split_decides_long_concurrent_history():
    # 300 bursts of 10 concurrent writes (versions in any order within a
    # burst) and a read after each: one search over it all would have to
    # carry every burst's orders; split at the quiescent points each burst
    # is searched alone, from the one state the previous can end in
    h = H()
    t, ver = 0.0, 0
    for b in range(300):
        vals = []
        for i in range(10):
            ver += 1
            vals.append(("b%d-%d" % (b, i), ver))
            h.w("c%d" % i, "k", "b%d-%d" % (b, i), t, t + 1, ver)
        h.r("r", "k", vals[-1][0], vals[-1][1], t + 1.5, t + 2)
        t += 3
    t0 = time.time()
    res = C.check_kv_linearizable(h.sorted(), max_steps=3_000_000)
    expect_ok(res)
    assert res.verdict == "linearizable", res.verdict
    assert time.time() - t0 < 30
    assert "600 segments" in res.notes[0], res.notes
    # within a time budget too: the budget is shared by the keys
    res = C.check_kv_linearizable(h.sorted(), max_steps=3_000_000, max_seconds=60)
    assert res.verdict == "linearizable", res.verdict
    # the same with the last read seeing the wrong value: found, not undecided
    h.r("r", "k", "b0-0", 1, t + 1, t + 2)
    res = C.check_kv_linearizable(h.sorted(), max_steps=3_000_000)
    assert res.verdict == "not linearizable", res.verdict


def test_segments_carry_every_end_state():
    # two concurrent writes end a segment in either state; the next segment
    # reads the one that linearized last (checked with both orders)
    for last in ("a", "b"):
        ver = 5 if last == "a" else 6
        h = H().w("c1", "k", "a", 0, 2, 5).w("c2", "k", "b", 0, 2, 6) \
            .r("c3", "k", last, ver, 3, 4)
        res = lin(h)
        # versions increase in apply order: only b (6) can be last
        if last == "b":
            expect_ok(res)
        else:
            expect_bad(res, "a read of the write applied first")
    h = H().w("c1", "k", "a", 0, 2, None, kind="info").w("c2", "k", "b", 0, 2, 6) \
        .r("c3", "k", "b", 6, 3, 4).r("c3", "k", "a", 7, 5, 6)
    expect_ok(lin(h))      # the unknown write happened, after b, before the read


def test_unread_unknown_write_is_pruned_and_seen_one_bounded():
    # an unknown write whose value a read returned happened before that read
    # answered: a read after that answer may not see the older state
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "x", 2, 3, None, kind="info") \
        .r("c2", "k", "x", 7, 4, 5).r("c3", "k", "a", 5, 6, 7)
    expect_bad(lin(h), "a read going back past an unknown write that was seen")
    # an optional (mystery) write can be placed, or not, before the conflict
    h = H().w("c1", "k", "a", 0, 1, 5).w("c1", "k", "x", 2, 3, None, kind="info") \
        .cas("c2", "k", "b", 5, 4, 5, current=7).r("c3", "k", "a", 5, 2.5, 2.8)
    expect_ok(lin(h))


def test_many_unknown_writes_and_a_conflict_decided():
    # 20 writes time out early (a full disk) and nobody reads their values;
    # 200 known writes and reads follow, then a CAS conflict names a version
    # no known write has: one of the 20 explains it. Each can only sit
    # right before that conflict, so the search stays small.
    h = H()
    for i in range(20):
        h.w("u%d" % i, "k", "u%d" % i, 0.01 * i, 0.5, None, kind="info")
    t, ver = 1.0, 10
    for i in range(200):
        ver += 2
        h.w("c1", "k", "v%d" % i, t, t + 0.2, ver).r("c2", "k", "v%d" % i, ver, t + 0.1, t + 0.3)
        t += 0.25
    h.cas("c3", "k", "z", ver, t + 1, t + 2, current=ver + 1)
    res = C.check_kv_linearizable(h.sorted(), max_steps=200_000)
    expect_ok(res)
    assert res.verdict == "linearizable", res.verdict
    # and a read of the value of the write the conflict named is still impossible
    h.r("c2", "k", "v199", ver, t + 3, t + 4)
    res = C.check_kv_linearizable(h.sorted(), max_steps=200_000)
    assert res.verdict == "not linearizable", res.verdict


def test_long_sequential_history_fast():
    h = H()
    t = 0.0
    for i in range(3000):
        h.w("c1", "k", "v%d" % i, t, t + 0.01, i + 1)
        h.r("c2", "k", "v%d" % i, i + 1, t + 0.005, t + 0.02)
        t += 0.03
    t0 = time.time()
    res = lin(h)
    expect_ok(res)
    assert time.time() - t0 < 30



# ---------------------------------------------------------------- failed writes, retried locks

def fw(h, p, key, t0, t1, kind="fail", error="no_leader"):
    return h.op(p, "fw-write", t0, t1, kind, {"key": key, "value": key + "-v", "node": "s2"},
                {"error": error} if kind != "ok" else {"version": 9})


def test_failed_follower_write_read_back_reported():
    h = fw(fw(fw(H(), "fw0", "f1", 1, 2), "fw0", "f2", 3, 4), "fw0", "f3", 5, 6, "fail", "conflict")
    recs = h.sorted()
    ops = {r["key"]: r["op"] for r in recs if r["type"] == "invoke"}
    res = C.check_failed_writes(recs, {ops["f1"]: {"status": 404}, ops["f2"]: {"status": 404},
                                       ops["f3"]: {"status": 404}})
    expect_ok(res)
    res = C.check_failed_writes(recs, {ops["f1"]: {"status": 404},
                                       ops["f2"]: {"status": 200, "value": {"value": "f2-v",
                                                                            "version": 7}},
                                       ops["f3"]: {"status": 404}})
    expect_bad(res, "a no_leader write that was applied")
    assert "f2" in res.violations[0]["msg"] and res.violations[0]["op"] == ops["f2"]
    res = C.check_failed_writes(recs, {ops["f1"]: {"status": 404}, ops["f2"]: {"status": 404},
                                       ops["f3"]: {"status": 200, "value": {"value": "f3-v"}}})
    expect_bad(res, "a create answered conflict that exists")
    assert "applied twice" in res.violations[0]["msg"]
    # a failed write that could not be read back is not a pass
    expect_bad(C.check_failed_writes(recs, {ops["f1"]: {"status": 404}}), "unread writes")


def test_failed_kv_write_seen_by_read_reported():
    h = H().w("c1", "k", "a", 0, 1, 5).op("c1", "kv-write", 2, 3, "fail",
                                        {"key": "k", "value": "zz"}, {"error": "no_leader"}) \
        .r("c2", "k", "zz", 9, 4, 5)
    res = C.check_failed_writes(h.sorted(), {})
    expect_bad(res, "a failed kv write read")
    h = H().w("c1", "k", "a", 0, 1, 5).op("c1", "kv-write", 2, 3, "fail",
                                        {"key": "k", "value": "zz"}, {"error": "no_leader"}) \
        .r("c2", "k", "a", 5, 4, 5)
    expect_ok(C.check_failed_writes(h.sorted(), {}))


def rel(h, p, lock, sess, token, t0, t1, kind, lease_end, first=True, error=None):
    return h.op(p, "lock-release", t0, t1, kind,
                {"lock": lock, "session": sess, "token": token, "lease_end": int(lease_end * S)},
                dict(first_definite=first, attempts=[], **({"error": error} if error else {})))


def test_hold_lost_reported():
    # A's hold (token 7) was released by an old copy of its earlier release:
    # its own release, within the lease it can prove, finds nothing
    h = H().acquire("A", "L", "sa", 0, 1, 7)
    rel(h, "A", "L", "sa", 7, 3, 3.1, "fail", lease_end=4, error="not_found")
    expect_bad(C.check_lock_hold_lost(h.sorted()), "a hold gone within its lease")
    # after the lease it could prove: the session may have expired
    h = H().acquire("A", "L", "sa", 0, 1, 7)
    rel(h, "A", "L", "sa", 7, 5, 5.1, "fail", lease_end=4, error="not_found")
    expect_ok(C.check_lock_hold_lost(h.sorted()))
    # a retry after an unknown first attempt may find its own work done
    h = H().acquire("A", "L", "sa", 0, 1, 7)
    rel(h, "A", "L", "sa", 7, 3, 3.1, "fail", lease_end=4, first=False, error="not_found")
    expect_ok(C.check_lock_hold_lost(h.sorted()))
    h = H().acquire("A", "L", "sa", 0, 1, 7)
    rel(h, "A", "L", "sa", 7, 3, 3.1, "ok", lease_end=4)
    expect_ok(C.check_lock_hold_lost(h.sorted()))


def test_stale_release_two_holders_reported():
    # scenario (a): A releases t1 (retried), acquires t2, an old copy of the
    # release frees t2 and B is granted while A still holds with a lease
    h = H().acquire("A", "L", "sa", 0, 1, 1)
    rel(h, "A", "L", "sa", 1, 2, 3, "ok", lease_end=4, first=False)
    h.acquire("A", "L", "sa", 3.1, 3.2, 3).acquire("B", "L", "sb", 2.5, 5, 4)
    rel(h, "A", "L", "sa", 3, 6, 6.1, "fail", lease_end=6.5, error="not_found")
    rel(h, "B", "L", "sb", 4, 6, 6.1, "ok", lease_end=7)
    expect_bad(C.check_lock_holders(h.sorted()), "two holders after a stale release")
    expect_bad(C.check_lock_hold_lost(h.sorted()), "A's hold gone")


def check(h, p, sess, t0, t1, locks):
    return h.op(p, "lock-check", t0, t1, "ok", {"lock": "L", "session": sess}, {"value": locks})


def test_unasked_hold_reported():
    # scenario (b): C's acquire timed out, its retry was refused (held), C
    # gave up; an old copy then granted it the lock
    h = H().op("C", "lock-acquire", 0, 2, "fail", {"lock": "L", "session": "sc", "limit": 1},
               {"error": "held", "attempts": [
                   {"node": "s3", "result": "unknown: timed out", "definite": False},
                   {"node": "s1", "result": "409 held", "definite": True}]})
    check(h, "C", "sc", 3, 3.1, [])
    check(h, "C", "sc", 5, 5.1, [{"key": "L", "state": "held"}])
    res = C.check_lock_unasked(h.sorted())
    expect_bad(res, "a hold its client did not ask for")
    assert res.violations[0]["requests"], res.violations
    h = H()
    check(h, "C", "sc", 3, 3.1, [])
    expect_ok(C.check_lock_unasked(h.sorted()))
    h = H()
    check(h, "C", "sc", 3, 3.1, [{"key": "L", "state": "waiting"}])
    expect_bad(C.check_lock_unasked(h.sorted()), "a queue place its client did not ask for")


def acq(h, p, sess, t0, t1, token, queued=None, lease_lost=False):
    return h.op(p, "lock-acquire", t0, t1, "ok", {"lock": "L", "session": sess, "limit": 1},
                {"token": token, "queued": int(queued * S) if queued is not None else None,
                 "lease_lost": lease_lost})


def test_fifo_reported():
    # X queued (202) at t=1; Y asked at t=2; Y got token 5 before X's 6
    h = H()
    acq(h, "X", "sx", 0, 4, 6, queued=1)
    acq(h, "Y", "sy", 2, 3, 5)
    expect_bad(C.check_lock_fifo(h.sorted()), "a later waiter granted first")
    # Y asked before X was known to be queued: either order
    h = H()
    acq(h, "X", "sx", 0, 4, 6, queued=1)
    acq(h, "Y", "sy", 0.5, 3, 5)
    expect_ok(C.check_lock_fifo(h.sorted()))
    # X's lease lapsed while it waited: it may have lost its place
    h = H()
    acq(h, "X", "sx", 0, 4, 6, queued=1, lease_lost=True)
    acq(h, "Y", "sy", 2, 3, 5)
    expect_ok(C.check_lock_fifo(h.sorted()))
    h = H()
    acq(h, "X", "sx", 0, 4, 5, queued=1)
    acq(h, "Y", "sy", 2, 5, 6)
    expect_ok(C.check_lock_fifo(h.sorted()))


def main():
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for t in tests:
        try:
            t()
            passed += 1
            print("ok   %s" % t.__name__)
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            traceback.print_exc()
            print("FAIL %s" % t.__name__)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
