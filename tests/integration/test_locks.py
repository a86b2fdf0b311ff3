"""Sessions, leases and locks with real processes on loopback (docs/LOCKS.md).

DESIGN.md "Guarantees": a lock never has two holders whose fencing tokens are
both current; tokens strictly increase per lock; the token is handed to the
executed command (FLOTILLA_FENCING_TOKEN). Bad input gets a clear error and
changes nothing.

  mutual_exclusion_with_lock_run  competing `flotilla lock run` commands
  leases_survive_failover         kill -9 of the leader; a renewing holder keeps
                                  its lock and token, an idle session expires
  lost_lock_kills_the_command     SIGSTOP of `lock run` past its TTL
  wait_timeout_and_long_wait      409 timeout through a follower; a CLI wait
                                  longer than one server poll
  bad_input_changes_nothing       400/404 answers, CLI usage errors
  fencing_under_nemesis           8 clients, 3 locks, kill -9 / SIGSTOP

FLOTILLA_LOCKS_NEMESIS_SECS sets the length of the last one (default 60).
"""
import os
import random
import signal
import subprocess
import threading
import time

from flotilla_cluster import BIN, Cluster, check, request, run

MUTEX_KEY = "it/mutex"


def addrs(cluster):
    return ",".join(s.api for s in cluster.servers.values())


def call(cluster, method, path, body=None, timeout=15, servers=None, deadline=30):
    """One request, moved to another live server on connection errors and
    503s that say "no leader"/"not leader"/"busy" (the outcome of those is
    known: nothing was done). Returns (status, body)."""
    end = time.time() + deadline
    last = None
    while time.time() < end:
        live = [s for s in (servers or cluster.servers.values()) if s.alive()]
        s = random.choice(live)
        try:
            st, body_out, _ = request(s.api, method, path, body, timeout=timeout)
        except OSError as e:
            last = e
            time.sleep(0.1)
            continue
        code = (body_out or {}).get("error", {}).get("code") if isinstance(body_out, dict) else None
        if st == 503 and code in ("no_leader", "not_leader", "busy"):
            last = (st, body_out)
            time.sleep(0.1)
            continue
        return st, body_out
    raise AssertionError("%s %s: no answer within %ss (last: %r)" % (method, path, deadline, last))


def new_session(cluster, ttl="10s", lock_delay="0s", name="it"):
    st, body = call(cluster, "POST", "/v1/sessions", {"ttl": ttl, "lock_delay": lock_delay, "name": name})
    check(st == 200, "create session: %s %r" % (st, body))
    return body["id"]


def lock_state(cluster, key, server=None):
    st, body = call(cluster, "GET", "/v1/locks/" + key, servers=[server] if server else None)
    if st == 404:
        return {"holders": [], "waiters": [], "fence": 0}
    check(st == 200, "GET lock %s: %s %r" % (key, st, body))
    return body


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def pid_alive(pid):
    """A running (not zombie) process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- (a)

CRITICAL = r"""
import os, random, sys, time
path, who, n = sys.argv[1], sys.argv[2], 0
tok = os.environ["FLOTILLA_FENCING_TOKEN"]
assert os.environ["FLOTILLA_LOCK"] == sys.argv[3], os.environ["FLOTILLA_LOCK"]
assert os.environ["FLOTILLA_SESSION"]
with open(path, "a") as f:
    f.write("start %.6f %s %s\n" % (time.monotonic(), tok, who)); f.flush()
time.sleep(random.uniform(0.02, 0.15))
with open(path, "a") as f:
    f.write("end %.6f %s %s\n" % (time.monotonic(), tok, who)); f.flush()
"""


def test_mutual_exclusion_with_lock_run(c):
    """Three workers loop `flotilla lock run` on one lock; each critical
    section logs its start and end on the monotonic clock with its token.
    No two sections overlap and tokens increase in the order of starts."""
    log = os.path.join(c.dir, "critical.log")
    workers, sections = 3, 5
    failures = []

    def worker(w):
        for i in range(sections):
            p = subprocess.run([BIN, "lock", "run", MUTEX_KEY, "--addr", addrs(c), "--ttl", "5s",
                                "--lock-delay", "0s", "--wait", "60s", "--name", "worker-%d" % w,
                                "--", "/usr/bin/python3", "-c", CRITICAL, log, "w%d.%d" % (w, i), MUTEX_KEY],
                               capture_output=True, timeout=120)
            if p.returncode != 0:
                failures.append((w, i, p.returncode, p.stderr[-500:]))

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not failures, "lock run failed: %r" % failures)
    starts, ends = {}, {}
    with open(log) as f:
        for line in f:
            kind, at, tok, who = line.split()
            (starts if kind == "start" else ends)[who] = (float(at), int(tok))
    check(len(starts) == workers * sections and set(starts) == set(ends),
          "every section started and ended: %d starts, %d ends" % (len(starts), len(ends)))
    sec = sorted((starts[w][0], ends[w][0], starts[w][1], w) for w in starts)
    for (s1, e1, t1, w1), (s2, e2, t2, w2) in zip(sec, sec[1:]):
        check(e1 <= s2, "sections overlap: %s [%f, %f] and %s [%f, %f]" % (w1, s1, e1, w2, s2, e2))
        check(t1 < t2, "tokens not increasing in start order: %s %d then %s %d" % (w1, t1, w2, t2))
    for w in starts:
        check(starts[w][1] == ends[w][1], "one token per section")
    # Every lock run destroyed its session: the lock is free again.
    check(lock_state(c, MUTEX_KEY)["holders"] == [], "the lock is free at the end")


# ---------------------------------------------------------------- (b)

def test_leases_survive_failover():
    """A session (TTL 4 s) renewed every second keeps its lock and token
    across kill -9 of the leader; one created with it and never renewed
    expires after the failover, about a TTL after the new leader is up."""
    c = Cluster(3, name="locks-failover").start()
    try:
        ttl = 4.0
        held = new_session(c, ttl="4s", lock_delay="0s", name="renewed")
        idle = new_session(c, ttl="4s", lock_delay="0s", name="idle")
        st, g = call(c, "PUT", "/v1/locks/fo/held", {"session": held})
        check(st == 200 and g["granted"], "acquire: %s %r" % (st, g))
        token = g["token"]
        st, g2 = call(c, "PUT", "/v1/locks/fo/idle", {"session": idle})
        check(st == 200, "acquire idle: %s %r" % (st, g2))

        stop = threading.Event()
        renew_errors = []

        def renewer():
            while not stop.is_set():
                t0 = time.time()
                try:
                    st, body = call(c, "PUT", "/v1/sessions/%s/renew" % held, timeout=3, deadline=3)
                    if st != 200:
                        renew_errors.append((time.time(), st, body))
                except AssertionError as e:  # no server answered within 3 s
                    renew_errors.append((time.time(), None, str(e)))
                stop.wait(max(0.0, 1.0 - (time.time() - t0)))

        rt = threading.Thread(target=renewer)
        rt.start()
        time.sleep(1.0)
        old = c.leader()
        c.servers[old].kill9()
        killed_at = time.time()
        new = c.leader(exclude=(old,), timeout=20)
        ready_at = time.time()
        survivors = [s for s in c.servers.values() if s.id != old]

        # The idle session lives a full TTL from the new leader's extension,
        # then expires (its lock with it).
        gone_at = None
        alive_seen = 0.0
        while time.time() < ready_at + ttl + 10:
            st, body = call(c, "GET", "/v1/sessions/" + idle, servers=survivors)
            if st == 404:
                gone_at = time.time()
                break
            alive_seen = time.time()
            time.sleep(0.1)
        check(gone_at is not None, "the idle session never expired after the failover")
        check(alive_seen >= ready_at + ttl - 2.0,
              "the idle session expired %.1fs after the new leader was ready: before a full TTL"
              % (gone_at - ready_at))
        check(gone_at <= ready_at + ttl + 4.0,
              "the idle session expired %.1fs after the new leader was ready (TTL %.0fs)"
              % (gone_at - ready_at, ttl))
        check(lock_state(c, "fo/idle", server=c.servers[new])["holders"] == [],
              "the idle session's lock was released")

        # The renewed one still holds, with the same token, for two TTLs.
        end = time.time() + 2 * ttl
        while time.time() < end:
            l = lock_state(c, "fo/held", server=c.servers[new])
            check([h["session"] for h in l["holders"]] == [held], "still held by the renewer: %r" % l)
            check(l["holders"][0]["token"] == token, "same token %d: %r" % (token, l))
            time.sleep(0.5)
        st, s = call(c, "GET", "/v1/sessions/" + held, servers=survivors)
        check(st == 200 and s["renewals"] >= 3, "session renewed through the failover: %s %r" % (st, s))
        stop.set()
        rt.join()
        not_found = [e for e in renew_errors if e[1] == 404]
        check(not not_found, "a renewal found the session gone: %r" % not_found)
        print("   leader %d killed; new leader %d ready after %.1fs; idle session gone %.1fs later; "
              "%d renewals failed during the failover" % (old, new, ready_at - killed_at,
                                                           gone_at - ready_at, len(renew_errors)))
        c.servers[old].start()
        c.servers[old].wait_up()
        c.wait_converged(timeout=30, servers=list(c.servers.values()))
    finally:
        c.close()


# ---------------------------------------------------------------- (c)

def test_lost_lock_kills_the_command(c):
    """`lock run --ttl 2s --lock-delay 0s -- sleep 60` is stopped (SIGSTOP)
    for 5 s: the cluster expires its session and a waiter gets the lock with
    a larger token; after SIGCONT lock run finds the session gone, kills its
    command and exits 3."""
    key = "it/lost"
    errf = open(os.path.join(c.dir, "lockrun-lost.err"), "w+b")
    lr = subprocess.Popen([BIN, "lock", "run", key, "--addr", addrs(c), "--ttl", "2s",
                           "--lock-delay", "0s", "--", "sleep", "60"], stderr=errf)
    try:
        end = time.time() + 20
        sleeper = None
        while time.time() < end and sleeper is None:
            kids = [k for k in children(lr.pid) if pid_alive(k)]
            if kids and lock_state(c, key)["holders"]:
                sleeper = kids[0]
            time.sleep(0.1)
        check(sleeper is not None, "lock run started its command")
        first = lock_state(c, key)["holders"][0]

        # A waiter (renewing its own session) queues behind it.
        waiter = new_session(c, ttl="10s", lock_delay="0s", name="waiter")
        got = {}

        def wait_for_it():
            st, body = call(c, "PUT", "/v1/locks/" + key, {"session": waiter, "wait": "4s"}, timeout=20)
            got["answer"] = (st, body, time.time())

        wt = threading.Thread(target=wait_for_it)
        wt.start()
        time.sleep(0.3)
        lr.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        wt.join(timeout=15)
        st, body, at = got.get("answer", (None, None, None))
        check(st == 200 and body.get("granted"), "the waiter got the lock: %s %r" % (st, body))
        check(body["token"] > first["token"], "a larger token: %d after %d" % (body["token"], first["token"]))
        check(at - stopped_at < 2 + 3, "granted %.1fs after the stop (TTL 2s)" % (at - stopped_at))
        check(pid_alive(sleeper), "the command still runs while lock run is stopped")
        time.sleep(max(0.0, 5.0 - (time.time() - stopped_at)))
        lr.send_signal(signal.SIGCONT)
        rc = lr.wait(timeout=10)
        errf.seek(0)
        err = errf.read().decode(errors="replace")
        check(rc == 3, "lock run exited %d (want 3); stderr: %s" % (rc, err[-400:]))
        check("lost" in err, "lock run said the lock was lost: %r" % err[-400:])
        check(not pid_alive(sleeper), "the command (pid %d) was killed" % sleeper)
        l = lock_state(c, key)
        check([h["session"] for h in l["holders"]] == [waiter], "the waiter still holds it: %r" % l)
        call(c, "DELETE", "/v1/sessions/" + waiter)
    finally:
        if lr.poll() is None:
            lr.send_signal(signal.SIGCONT)
            lr.kill()
            lr.wait()
        errf.close()


# ---------------------------------------------------------------- (d)

def test_wait_timeout_and_long_wait(c):
    """A wait through a follower ends with 409 "timeout" after about the wait,
    leaving no trace in the queue; a CLI wait (8 s) longer than one server
    poll (TTL 3 s / 2), and than the TTL itself, gets the lock when the holder
    releases at 4.5 s: the CLI renews its session between polls."""
    key = "it/wait"
    lid = c.leader()
    follower = [s for s in c.servers.values() if s.id != lid][0]
    holder = new_session(c, ttl="15s", name="holder")
    st, g = call(c, "PUT", "/v1/locks/" + key, {"session": holder})
    check(st == 200, "holder acquires: %s %r" % (st, g))
    waiter = new_session(c, ttl="15s", name="waiter")
    t0 = time.time()
    st, body, _ = request(follower.api, "PUT", "/v1/locks/" + key, {"session": waiter, "wait": "2s"}, timeout=20)
    dt = time.time() - t0
    check(st == 409 and body["error"]["code"] == "timeout", "timeout: %s %r" % (st, body))
    check(1.8 <= dt <= 4.0, "answered after %.2fs (wait 2s)" % dt)
    l = lock_state(c, key)
    check(l["waiters"] == [], "the waiter left the queue: %r" % l)
    st, s = call(c, "GET", "/v1/sessions/" + waiter)
    check(st == 200 and s["locks"] == [], "the session waits for nothing: %r" % s)

    # One server poll lasts at most half the TTL: 202, still queued.
    short = new_session(c, ttl="4s", name="short")
    t0 = time.time()
    st, body, _ = request(follower.api, "PUT", "/v1/locks/" + key, {"session": short, "wait": "10s"}, timeout=20)
    dt = time.time() - t0
    check(st == 202 and body["waiting"] is True, "still waiting: %s %r" % (st, body))
    check(1.8 <= dt <= 3.5, "a poll lasts TTL/2: %.2fs" % dt)
    check([w["session"] for w in lock_state(c, key)["waiters"]] == [short], "queued")
    call(c, "DELETE", "/v1/sessions/" + short)

    # The CLI waits 8 s with a 3 s session: it renews between polls.
    t0 = time.time()
    cli = subprocess.Popen([BIN, "lock", "acquire", key, "--addr", follower.api, "--ttl", "3s",
                            "--lock-delay", "0s", "--wait", "8s", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(4.5 - (time.time() - t0))
    check(cli.poll() is None, "the CLI is still waiting at 4.5 s")
    st, body = call(c, "DELETE", "/v1/locks/%s?session=%s" % (key, holder))
    check(st == 200 and body["token"] == g["token"], "holder releases: %s %r" % (st, body))
    out, err = cli.communicate(timeout=15)
    dt = time.time() - t0
    check(cli.returncode == 0, "CLI exit %d: %s" % (cli.returncode, err.decode()[-300:]))
    import json
    got = json.loads(out)
    check(got["granted"] and got["token"] > g["token"], "granted with a larger token: %r" % got)
    check(dt < 6.0, "granted at %.1fs (released at 4.5s)" % dt)
    l = lock_state(c, key)
    check([h["session"] for h in l["holders"]] == [got["session"]], "the CLI's session holds it: %r" % l)
    for sid in (holder, waiter, got["session"]):
        call(c, "DELETE", "/v1/sessions/" + sid)


# ---------------------------------------------------------------- (f)

def test_bad_input_changes_nothing(c):
    """Bad requests get clear 400/404 errors and change no lock or session;
    the CLI exits 2 on bad flags."""
    sid = new_session(c, ttl="10s", name="bad-input")
    st, g = call(c, "PUT", "/v1/locks/bad/held", {"session": sid})
    check(st == 200, "setup acquire")
    st, locks_before = call(c, "GET", "/v1/locks")
    st, sessions_before = call(c, "GET", "/v1/sessions")
    gone = new_session(c, ttl="10s", name="destroyed")
    check(call(c, "DELETE", "/v1/sessions/" + gone)[0] == 200, "destroy")

    long_name = "x" * 300
    cases = [
        ("PUT", "/v1/locks/Bad/x", {"session": sid}, 400),
        ("PUT", "/v1/locks/b%20d/x", {"session": sid}, 400),
        ("PUT", "/v1/locks/-ns/x", {"session": sid}, 400),
        ("PUT", "/v1/locks/" + "n" * 65 + "/x", {"session": sid}, 400),
        ("PUT", "/v1/locks/ns/" + long_name, {"session": sid}, 400),
        ("PUT", "/v1/locks/ns/a%20b", {"session": sid}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": sid, "limit": 0}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": sid, "limit": 1025}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": sid, "limit": "2"}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": sid, "wait": "forever"}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": sid, "wait": -5}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": sid, "wait": "25h"}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": sid, "unknown": 1}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": 12}, 400),
        ("PUT", "/v1/locks/ns/x", {}, 400),
        ("PUT", "/v1/locks/ns/x", {"session": "bad/id"}, 400),
        ("PUT", "/v1/locks/ns/x", [sid], 400),
        ("PUT", "/v1/locks/ns/x", {"session": gone}, 404),
        ("PUT", "/v1/locks/bad/held", {"session": gone, "wait": "1s"}, 404),
        ("DELETE", "/v1/locks/bad/held?session=" + gone, None, 404),
        ("DELETE", "/v1/locks/bad/held", None, 400),
        ("DELETE", "/v1/locks/Bad/held?session=" + sid, None, 400),
        ("POST", "/v1/sessions", {"ttl": "0s"}, 400),
        ("POST", "/v1/sessions", {"ttl": "1000h"}, 400),
        ("POST", "/v1/sessions", {"ttl": "999ms"}, 400),
        ("POST", "/v1/sessions", {"lock_delay": "2m"}, 400),
        ("POST", "/v1/sessions", {"ttl": True}, 400),
        ("POST", "/v1/sessions", {"ttl": 1.5}, 400),
        ("POST", "/v1/sessions", {"ttl": "ten seconds"}, 400),
        ("POST", "/v1/sessions", {"name": 5}, 400),
        ("POST", "/v1/sessions", {"name": "n" * 200}, 400),
        ("POST", "/v1/sessions", {"unknown": "x"}, 400),
        ("POST", "/v1/sessions", ["ttl", "10s"], 400),
        ("PUT", "/v1/sessions/%s/renew" % gone, None, 404),
        ("DELETE", "/v1/sessions/" + gone, None, 404),
        ("PUT", "/v1/sessions/bad!id/renew", None, 400),
        ("GET", "/v1/sessions/" + "a" * 60, None, 400),
        ("GET", "/v1/locks/ns/never-held", None, 404),
    ]
    for method, path, body, want in cases:
        st, out = call(c, method, path, body)
        check(st == want, "%s %s %r: %s (want %d) %r" % (method, path[:60], body, st, want, out))
        check(isinstance(out, dict) and out.get("error", {}).get("code") and out["error"].get("message"),
              "%s %s: a JSON error with code and message: %r" % (method, path[:60], out))
    # Not JSON at all, and a truncated body.
    for raw in (b"{not json", b'{"ttl": "10s"', b"\xff\xfe"):
        st, out, _ = request(random.choice(c.live()).api, "POST", "/v1/sessions", raw=raw)
        check(st == 400, "raw body %r: %s" % (raw, st))
    st, locks_after = call(c, "GET", "/v1/locks")
    st, sessions_after = call(c, "GET", "/v1/sessions")
    check(locks_after == locks_before, "GET /v1/locks unchanged:\n%r\n%r" % (locks_before, locks_after))
    check(sorted(s["id"] for s in sessions_after["items"]) == sorted(s["id"] for s in sessions_before["items"]),
          "no session created or lost")

    # The CLI: usage errors exit 2 before anything is sent.
    a = addrs(c).split(",")[0]
    usage = [
        ["lock"],
        ["lock", "bogus"],
        ["lock", "acquire"],
        ["lock", "acquire", "noslash", "--addr", a],
        ["lock", "acquire", "ns/x", "--addr", a, "--limit", "0"],
        ["lock", "acquire", "ns/x", "--addr", a, "--limit", "1025"],
        ["lock", "acquire", "ns/x", "--addr", a, "--wait", "soon"],
        ["lock", "acquire", "ns/x", "--addr", a, "--ttl", "0s"],
        ["lock", "acquire", "ns/x", "--addr", a, "--lock-delay", "2m"],
        ["lock", "acquire", "ns/x", "--addr", a, "--bogus"],
        ["lock", "release", "ns/x", "--addr", a],
        ["lock", "run", "ns/x", "--addr", a, "--ttl", "0s", "--", "true"],
        ["lock", "run", "ns/x", "--addr", a, "--ttl", "1000h", "--", "true"],
        ["lock", "run", "ns/x", "--addr", a, "--limit", "x", "--", "true"],
        ["lock", "run", "ns/x", "--addr", a],
        ["session", "create", "--addr", a, "--ttl", "0s"],
        ["session", "create", "--addr", a, "--ttl"],
        ["session", "bogus"],
        ["session", "renew", "--addr", a],
    ]
    for args in usage:
        p = subprocess.run([BIN] + args, capture_output=True, timeout=20)
        check(p.returncode == 2, "flotilla %s: exit %d (want 2); %r" % (" ".join(args), p.returncode, p.stderr[-200:]))
    st, locks_after = call(c, "GET", "/v1/locks")
    check(locks_after == locks_before, "GET /v1/locks unchanged after the CLI calls")
    call(c, "DELETE", "/v1/sessions/" + sid)


# ---------------------------------------------------------------- (e)

NEMESIS_LOCKS = {"nem/a": 1, "nem/b": 1, "nem/sem": 2}


def nemesis_client(c, cid, stop, grants, holds, counters, lock):
    """Acquire, hold briefly, release, over random locks and servers.

    Records every grant seen (token, lock, session, ack time) and every hold
    confirmed by its release (the release answered 200 with the grant's
    token, so the session still held it then) as (lock, token, session,
    ack of the grant, send of the release)."""
    rnd = random.Random(cid)
    sid = None
    renew_stop = threading.Event()
    current = {"sid": None, "paused": False}

    def renewer():
        while not renew_stop.is_set():
            s = current["sid"]
            if s is not None and not current["paused"]:
                try:
                    st, _ = call(c, "PUT", "/v1/sessions/%s/renew" % s, timeout=2, deadline=2)
                    if st == 404 and current["sid"] == s:
                        current["sid"] = None
                except AssertionError:
                    pass
            renew_stop.wait(0.8)

    rt = threading.Thread(target=renewer)
    rt.start()
    try:
        while not stop.is_set():
            sid = current["sid"]
            if sid is None:
                try:
                    st, body = call(c, "POST", "/v1/sessions",
                                    {"ttl": "4s", "lock_delay": "300ms" if cid % 2 else "0s",
                                     "name": "client-%d" % cid},
                                    timeout=5, deadline=10)
                except AssertionError:
                    continue
                if st != 200:
                    continue
                current["sid"] = sid = body["id"]
                counters["sessions"] += 1
            key = rnd.choice(sorted(NEMESIS_LOCKS))
            limit = NEMESIS_LOCKS[key]
            granted = None
            for _ in range(10):  # retry an unknown outcome: acquire is idempotent
                try:
                    st, body = call(c, "PUT", "/v1/locks/" + key,
                                    {"session": sid, "wait": "2s", "limit": limit}, timeout=12, deadline=12)
                except AssertionError:
                    continue
                if st == 200:
                    granted = (body["token"], time.monotonic())
                    break
                if st == 202 or st == 503:
                    continue
                if st == 404:
                    if current["sid"] == sid:
                        current["sid"] = None
                    counters["lost_sessions"] += 1
                break  # 409 held/timeout/not_waiting
            if granted is None:
                # Leave the queue in case a lost answer left us there.
                try:
                    call(c, "DELETE", "/v1/locks/%s?session=%s" % (key, sid), timeout=5, deadline=5)
                except AssertionError:
                    pass
                continue
            token, acked = granted
            with lock:
                grants.append((token, key, sid, acked))
            if rnd.random() < 0.03:
                # A pause (a long GC, a stopped VM): no renewal for longer
                # than the TTL, so the cluster expires the session under us.
                current["paused"] = True
                stop.wait(rnd.uniform(4.5, 6))
                current["paused"] = False
                counters["pauses"] += 1
            else:
                time.sleep(rnd.uniform(0.02, 0.3))
            sent = time.monotonic()
            confirmed = False
            for _ in range(5):
                try:
                    st, body = call(c, "DELETE", "/v1/locks/%s?session=%s" % (key, sid), timeout=5, deadline=5)
                except AssertionError:
                    continue
                if st == 200:
                    confirmed = body.get("token") == token
                    break
                if st == 404:
                    break  # expired (or a retried release already applied)
            with lock:
                if confirmed:
                    holds.append((key, token, sid, acked, sent))
                else:
                    counters["unconfirmed"] += 1
    finally:
        renew_stop.set()
        rt.join()


def check_fencing(grants, holds):
    """The checks, and why they are sound.

    Every command is committed through Raft, so it takes effect at one point
    of a single history, between the moment the client sent it and the moment
    it got the answer (linearizability). A hold confirmed by its release -
    the release answered 200 with the hold's token, so the session still
    held the lock when the release was applied - lasted in that history from
    its grant (no later than the grant's answer, `acked`) to its release (no
    earlier than the release was sent, `sent`). So [acked, sent] on the
    client's monotonic clock lies inside the hold. The state machine never
    lets more than `limit` sessions hold a lock at one point of the history,
    hence:

      1. at any instant, at most `limit` confirmed inner intervals of a lock
         overlap (for a mutex: none);
      2. for a mutex, if one confirmed interval ends before another begins,
         the first hold was granted first, and tokens increase in grant
         order: the earlier interval has the smaller token;
      3. a token is granted once: every grant seen with a token names the
         same lock and session (a retried acquire returns the same token).

    Grants whose release was not confirmed (session expired, outcome unknown)
    are only used for 3: their real end is not known."""
    by_token = {}
    for token, key, sid, _ in grants:
        prev = by_token.setdefault(token, (key, sid))
        check(prev == (key, sid), "token %d granted twice: %r and %r" % (token, prev, (key, sid)))
    for key, limit in NEMESIS_LOCKS.items():
        mine = sorted((acked, sent, token, sid) for k, token, sid, acked, sent in holds if k == key)
        events = sorted([(a, 1) for a, _, _, _ in mine] + [(s, -1) for _, s, _, _ in mine],
                        key=lambda e: (e[0], e[1]))
        inside = 0
        for at, d in events:
            inside += d
            check(inside <= limit, "%s: %d confirmed holds at once (limit %d) at %.6f"
                  % (key, inside, limit, at))
        if limit == 1:
            for (a1, s1, t1, x1), (a2, s2, t2, x2) in zip(mine, mine[1:]):
                check(s1 <= a2, "%s: holds overlap: %s [%.6f, %.6f] and %s [%.6f, %.6f]"
                      % (key, x1, a1, s1, x2, a2, s2))
                check(t1 < t2, "%s: token %d held before token %d" % (key, t1, t2))


def test_fencing_under_nemesis():
    """8 clients acquire and release 3 locks (one a semaphore of 2) through
    random servers while a nemesis kills -9 and restarts servers and pauses
    them with SIGSTOP/SIGCONT."""
    secs = float(os.environ.get("FLOTILLA_LOCKS_NEMESIS_SECS", "60"))
    seed = int(os.environ.get("FLOTILLA_SEED", str(random.randrange(1 << 30))))
    print("   seed %d (FLOTILLA_SEED), %.0fs" % (seed, secs))
    rnd = random.Random(seed)
    c = Cluster(3, name="locks-nemesis").start()
    stop = threading.Event()
    grants, holds, lock = [], [], threading.Lock()
    counters = {"sessions": 0, "lost_sessions": 0, "unconfirmed": 0, "pauses": 0}
    actions = []
    try:
        clients = [threading.Thread(target=nemesis_client, args=(c, i, stop, grants, holds, counters, lock))
                   for i in range(8)]
        for t in clients:
            t.start()
        end = time.time() + secs
        while time.time() < end:
            time.sleep(rnd.uniform(2, 4))
            s = rnd.choice(list(c.servers.values()))
            if rnd.random() < 0.5:
                s.kill9()
                actions.append("kill %d" % s.id)
                time.sleep(rnd.uniform(1, 3))
                s.start()
                s.wait_up()
            else:
                s.proc.send_signal(signal.SIGSTOP)
                actions.append("stop %d" % s.id)
                time.sleep(rnd.uniform(0.5, 2.5))
                s.proc.send_signal(signal.SIGCONT)
        stop.set()
        for t in clients:
            t.join(timeout=60)
        check(not any(t.is_alive() for t in clients), "clients finished")
        print("   nemesis: %s" % ", ".join(actions))
        print("   %d grants seen, %d confirmed holds, %d unconfirmed, %d sessions (%d lost), "
              "%d client pauses" % (len(grants), len(holds), counters["unconfirmed"],
                                    counters["sessions"], counters["lost_sessions"], counters["pauses"]))
        check(len(holds) >= 50, "enough confirmed holds to mean something: %d" % len(holds))
        check_fencing(grants, holds)
        c.wait_converged(timeout=60, servers=list(c.servers.values()))
    finally:
        stop.set()
        for s in c.servers.values():
            if s.alive():
                s.proc.send_signal(signal.SIGCONT)
        c.close()


# ---------------------------------------------------------------- main

SHARED = {}


def shared(fn):
    """Run fn on the cluster shared by the tests that kill nothing."""
    def wrapper():
        if "cluster" not in SHARED:
            SHARED["cluster"] = Cluster(3, name="locks").start()
        fn(SHARED["cluster"])
    wrapper.__name__ = fn.__name__
    return wrapper


def test_shared_cluster_converged():
    """The replicas of the cluster the shared tests ran on agree. Selected
    without any of them there is nothing to check, and that is a failure."""
    c = SHARED.pop("cluster", None)
    check(c is not None, "no shared cluster to check: select it with at least one shared test")
    try:
        c.wait_converged(timeout=30, servers=list(c.servers.values()))
    finally:
        c.close()


if __name__ == "__main__":
    run([shared(test_mutual_exclusion_with_lock_run),
         shared(test_lost_lock_kills_the_command),
         shared(test_wait_timeout_and_long_wait),
         shared(test_bad_input_changes_nothing),
         test_shared_cluster_converged,
         test_leases_survive_failover,
         test_fencing_under_nemesis])
