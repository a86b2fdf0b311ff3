"""Every write's answer is true and it takes effect at most once
(docs/API.md "Request identity").

Through the real binary on a three-server cluster:
- the identity's rules: the same serial is answered from memory, an older
  one is refused as stale, an unknown session and a malformed header are
  refused, and nothing changes in any of those cases;
- a release that names its fencing token never releases a newer hold;
- a follower stopped with a request in its socket and resumed after the
  client moved on (a release, an acquire) changes nothing;
- the leader killed right after it read a forwarded write, and right after
  it applied one, before answering (crash points): the follower answers
  outcome_unknown, never no_leader, and a retry with the same identity
  applies the write exactly once;
- the leader closing the connection instead of answering while it stays up
  (drop points), on a pooled connection the follower reuses: a write without
  an identity is never sent twice (outcome_unknown), one with an identity is
  retried and applied once;
- writes through the followers while the leader is killed again and again:
  no write answered as not applied was applied.
"""
import json
import os
import random
import signal
import subprocess
import threading
import time

from flotilla_cluster import BIN, Cluster, api_socket, check, request, run

SERIALS = {}


def session(addr, ttl="60s", name="client"):
    st, body, raw = request(addr, "POST", "/v1/sessions",
                            {"ttl": ttl, "lock_delay": "0s", "name": name})
    check(st == 200, "session create: %s %r" % (st, raw[:200]))
    SERIALS[body["id"]] = 0
    return body["id"]


def ident(sid, serial=None):
    """The X-Flotilla-Request header of sid's next request (or of serial)."""
    if serial is None:
        SERIALS[sid] += 1
        serial = SERIALS[sid]
    return {"X-Flotilla-Request": "%s/%d" % (sid, serial)}


def fsm_requests(server):
    st = server.status()
    check(st is not None, "server %d answers its status" % server.id)
    return st["fsm"].get("requests", {"replayed": 0, "stale": 0, "no_session": 0})


def settle(cond, timeout=10):
    """Poll until cond() holds (or the time is up)."""
    end = time.time() + timeout
    while time.time() < end and not cond():
        time.sleep(0.05)


def kv(addr, key):
    st, body, _ = request(addr, "GET", "/v1/kv/" + key)
    if st == 404:
        return None
    check(st == 200, "read %s: %s %r" % (key, st, body))
    return body


def lock(addr, key):
    st, body, _ = request(addr, "GET", "/v1/locks/" + key)
    if st == 404:
        return {"holders": [], "waiters": []}
    check(st == 200, "lock %s: %s %r" % (key, st, body))
    return body


def code(body):
    return (body or {}).get("error", {}).get("code")


def leader_and_followers(c):
    lid = c.leader()
    return c.servers[lid], [s for s in c.servers.values() if s.id != lid]


def tasks_named(addr, name):
    st, body, _ = request(addr, "GET", "/v1/tasks")
    check(st == 200, "task list: %s" % st)
    items = body.get("tasks", body.get("items", []))
    return [t for t in items if t.get("name") == name]


# ---------------------------------------------------------------- the rules

def test_identity_rules(c):
    leader, (f1, _f2) = leader_and_followers(c)
    sid = session(leader.api)
    before = fsm_requests(leader)

    h1 = ident(sid)
    st, first, _ = request(f1.api, "PUT", "/v1/kv/id/a", {"value": "one"}, headers=h1)
    check(st == 200, "first write through a follower: %s %r" % (st, first))
    # The same request again, with another body even: answered from memory.
    st, again, _ = request(leader.api, "PUT", "/v1/kv/id/a", {"value": "other"}, headers=h1)
    check(st == 200 and again == first, "a retry gets the first answer: %r vs %r" % (again, first))
    check(kv(leader.api, "id/a")["value"] == "one", "the retry changed nothing")
    check(kv(leader.api, "id/a")["version"] == first["version"], "applied once")

    h2 = ident(sid)
    st, second, _ = request(leader.api, "PUT", "/v1/kv/id/a", {"value": "two"}, headers=h2)
    check(st == 200 and second["version"] > first["version"], "serial 2 applies: %r" % second)
    # Serial 1 now comes too late: refused, nothing changes.
    for addr in (leader.api, f1.api):
        st, body, _ = request(addr, "PUT", "/v1/kv/id/a", {"value": "late"}, headers=h1)
        check(st == 409 and code(body) == "stale_request", "stale: %s %r" % (st, body))
    check(kv(leader.api, "id/a")["value"] == "two", "a stale request changed nothing")

    # An unknown session, and a destroyed one.
    st, body, _ = request(f1.api, "PUT", "/v1/kv/id/b", {"value": "x"},
                          headers={"X-Flotilla-Request": "nosuchsession/1"})
    check(st == 404 and code(body) == "session_not_found", "unknown session: %s %r" % (st, body))
    gone = session(leader.api)
    st, _, _ = request(leader.api, "DELETE", "/v1/sessions/" + gone, headers=ident(gone))
    check(st == 200, "destroy with an identity: %s" % st)
    st, body, _ = request(leader.api, "PUT", "/v1/kv/id/b", {"value": "x"}, headers=ident(gone))
    check(st == 404 and code(body) == "session_not_found", "destroyed session: %s %r" % (st, body))
    check(kv(leader.api, "id/b") is None, "nothing written under a missing session")

    # Malformed identities and routes that cannot take one: 400, nothing done.
    for bad in ("%s" % sid, "%s/0" % sid, "%s/01" % sid, "%s/-1" % sid, "%s/1x" % sid,
                "%s/9223372036854775808" % sid, "/5", "bad session/5", "%s/" % sid):
        for addr in (leader.api, f1.api):
            st, body, _ = request(addr, "PUT", "/v1/kv/id/c", {"value": "x"},
                                  headers={"X-Flotilla-Request": bad})
            check(st == 400 and code(body) == "invalid", "header %r: %s %r" % (bad, st, body))
    st, body, _ = request(f1.api, "GET", "/v1/kv/id/a", headers=ident(sid, 99))
    check(st == 400, "a read refuses an identity: %s %r" % (st, body))
    st, body, _ = request(leader.api, "POST", "/v1/members/transfer", {}, headers=ident(sid, 99))
    check(st == 400 and "proposes no command" in body["error"]["message"],
          "a membership route refuses an identity: %s %r" % (st, body))
    check(c.leader() == leader.id, "the refused transfer did nothing")
    check(kv(leader.api, "id/c") is None, "nothing written by a refused request")

    # A task submitted twice with one identity and no idempotency key: one task.
    spec = {"hosts": ["h1"], "noop": True, "name": "id-task-once"}
    h = ident(sid)
    st, t1, _ = request(f1.api, "POST", "/v1/tasks", spec, headers=h)
    check(st == 200, "submit: %s %r" % (st, t1))
    st, t2, _ = request(leader.api, "POST", "/v1/tasks", spec, headers=h)
    check(st == 200 and t2 == t1, "the retry names the same task: %r %r" % (t1, t2))
    check(len(tasks_named(leader.api, "id-task-once")) == 1, "one task")

    after = fsm_requests(leader)
    check(after["replayed"] - before["replayed"] == 2, "two replays counted: %r" % after)
    check(after["stale"] - before["stale"] == 2, "two stale refusals counted: %r" % after)
    check(after["no_session"] - before["no_session"] == 2, "two missing sessions: %r" % after)
    c.wait_converged()


def test_release_names_its_token(c):
    leader, (f1, _f2) = leader_and_followers(c)
    a = session(leader.api, name="a")
    st, g1, _ = request(leader.api, "PUT", "/v1/locks/it/tok", {"session": a}, headers=ident(a))
    check(st == 200 and g1["granted"], "acquire: %s %r" % (st, g1))
    st, body, _ = request(f1.api, "DELETE", "/v1/locks/it/tok?session=%s&token=%d"
                          % (a, g1["token"] + 1000), headers=ident(a))
    check(st == 409 and code(body) == "conflict" and str(g1["token"]) in body["error"]["message"],
          "another token releases nothing: %s %r" % (st, body))
    check([h["token"] for h in lock(leader.api, "it/tok")["holders"]] == [g1["token"]], "held")
    for bad in ("0", "01", "x", "-3", "18446744073709551616"):
        st, body, _ = request(f1.api, "DELETE", "/v1/locks/it/tok?session=%s&token=%s" % (a, bad))
        check(st == 400, "token %r: %s %r" % (bad, st, body))
    st, body, _ = request(f1.api, "DELETE", "/v1/locks/it/tok?session=%s&token=%d"
                          % (a, g1["token"]), headers=ident(a))
    check(st == 200 and body["token"] == g1["token"], "the named hold is released: %r" % body)
    check(lock(leader.api, "it/tok")["holders"] == [], "free")


# ---------------------------------------------------- a follower that stalls

def send_and_abandon(sock, method, path, body, headers, timeout=1.0):
    """Send a request to a stopped server on a TLS connection opened before it
    stopped (a new one could not finish its handshake, so nothing would be
    sent), and give up on it. Returns the status if it answered anyway."""
    import flotilla_cluster
    data = json.dumps(body).encode() if body is not None else b""
    h = dict(headers or {})
    if flotilla_cluster.TOKEN:
        h["X-Flotilla-Token"] = flotilla_cluster.TOKEN
    if body is not None:
        h["Content-Type"] = "application/json"
    head = "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (
        method, path, len(data), "".join("%s: %s\r\n" % kv for kv in h.items()))
    try:
        sock.settimeout(timeout)
        sock.sendall(head.encode() + data)
        got = sock.recv(100)
    except OSError:
        got = b""
    finally:
        sock.close()
    return int(got.split(b" ")[1]) if got.startswith(b"HTTP/1.1 ") else None


def wait_forwarded(server, before, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        st = server.status()
        if st and st["proposed"]["forwarded"] > before:
            return
        time.sleep(0.05)
    raise AssertionError("server %d did not forward the abandoned request" % server.id)


def forwarded(server):
    return server.status()["proposed"]["forwarded"]


def test_stalled_follower_replays_an_abandoned_release(c):
    """Session A's release, abandoned on a stopped follower and retried on the
    leader, must not release A's newer hold when the follower resumes."""
    leader, (f, _f2) = leader_and_followers(c)
    a, b = session(leader.api, name="A"), session(leader.api, name="B")
    key = "lc/repro1"
    st, g1, _ = request(leader.api, "PUT", "/v1/locks/" + key, {"session": a}, headers=ident(a))
    check(st == 200, "A acquires: %r" % g1)
    fwd = forwarded(f)
    rel = "/v1/locks/%s?session=%s&token=%d" % (key, a, g1["token"])
    h = ident(a)
    sock = api_socket(f.api)
    f.proc.send_signal(signal.SIGSTOP)
    try:
        st = send_and_abandon(sock, "DELETE", rel, None, h)
        check(st is None, "the stopped follower answered: %s" % st)
        st, body, _ = request(leader.api, "DELETE", rel, headers=h)  # the retry
        check(st == 200, "retry on the leader releases: %s %r" % (st, body))
        st, g2, _ = request(leader.api, "PUT", "/v1/locks/" + key, {"session": a}, headers=ident(a))
        check(st == 200 and g2["token"] > g1["token"], "A holds again: %r" % g2)
        waiter = {}

        def wait_b():
            waiter["answer"] = request(leader.api, "PUT", "/v1/locks/" + key,
                                       {"session": b, "wait": "60s"}, headers=ident(b), timeout=20)
        t = threading.Thread(target=wait_b)
        t.start()
        end = time.time() + 10
        while time.time() < end and not lock(leader.api, key)["waiters"]:
            time.sleep(0.05)
        check([w["session"] for w in lock(leader.api, key)["waiters"]] == [b], "B queues")
        stale_before = fsm_requests(leader)["stale"]
    finally:
        f.proc.send_signal(signal.SIGCONT)
    wait_forwarded(f, fwd)
    mine = [(a, g2["token"])]
    settle(lambda: fsm_requests(leader)["stale"] != stale_before or
           [(h["session"], h["token"]) for h in lock(leader.api, key)["holders"]] != mine)
    held = lock(leader.api, key)
    check([(h["session"], h["token"]) for h in held["holders"]] == mine,
          "A still holds its new hold: %r" % held)
    check([w["session"] for w in held["waiters"]] == [b], "B still queued: %r" % held)
    check(fsm_requests(leader)["stale"] == stale_before + 1, "the old release came and was stale")
    for s in (a, b):
        request(leader.api, "DELETE", "/v1/sessions/" + s, headers=ident(s))
    t.join()
    st, body, _ = waiter["answer"]
    check(st in (200, 202, 404), "B's call ended: %s %r" % (st, body))


def test_stalled_follower_replays_an_abandoned_acquire(c):
    """C's acquire, abandoned on a stopped follower, must not grant C a lock
    once the holder releases and the follower resumes: neither after C's
    retry got an answer, nor when C gave up with a newer request."""
    leader, (f, _f2) = leader_and_followers(c)
    for how in ("retried", "gave-up"):
        cs, d = session(leader.api, name="C"), session(leader.api, name="D")
        key = "lc/repro2-" + how
        st, _, _ = request(leader.api, "PUT", "/v1/locks/" + key, {"session": d}, headers=ident(d))
        check(st == 200, "D acquires")
        fwd = forwarded(f)
        h = ident(cs)
        sock = api_socket(f.api)
        f.proc.send_signal(signal.SIGSTOP)
        try:
            st = send_and_abandon(sock, "PUT", "/v1/locks/" + key, {"session": cs}, h)
            check(st is None, "the stopped follower answered: %s" % st)
            if how == "retried":
                st, body, _ = request(leader.api, "PUT", "/v1/locks/" + key, {"session": cs},
                                      headers=h)
                check(st == 409 and code(body) == "held", "C's retry: held: %s %r" % (st, body))
            else:
                st, _, _ = request(leader.api, "PUT", "/v1/sessions/%s/renew" % cs,
                                   headers=ident(cs))
                check(st == 200, "C gives up with a newer request (a renewal)")
            st, _, _ = request(leader.api, "DELETE", "/v1/locks/%s?session=%s" % (key, d),
                               headers=ident(d))
            check(st == 200, "D releases")
            check(lock(leader.api, key)["holders"] == [], "the lock is free")
            counts = fsm_requests(leader)
        finally:
            f.proc.send_signal(signal.SIGCONT)
        wait_forwarded(f, fwd)
        which = "replayed" if how == "retried" else "stale"
        settle(lambda: fsm_requests(leader)[which] != counts[which] or
               lock(leader.api, key)["holders"] != [])
        check(lock(leader.api, key)["holders"] == [], "%s: C holds nothing: %r"
              % (how, lock(leader.api, key)))
        st, body, _ = request(leader.api, "GET", "/v1/sessions/" + cs)
        check(st == 200 and body["locks"] == [], "%s: C's session holds nothing: %r" % (how, body))
        check(fsm_requests(leader)[which] == counts[which] + 1,
              "%s: the old acquire came and was %s" % (how, which))
        for s in (cs, d):
            request(leader.api, "DELETE", "/v1/sessions/" + s, headers=ident(s))


# --------------------------------------------- the leader dies or hangs up

def arm(c, env):
    """Restart the leader with env (a fault point) in its environment and
    hand leadership back to it; the other servers run without one."""
    lid = c.leader()
    s = c.servers[lid]
    s.stop()
    if env:
        ARMED.add(lid)
    else:
        ARMED.discard(lid)
    saved = {k: os.environ.get(k) for k in ("FLOTILLA_CRASHPOINT", "FLOTILLA_DROPPOINT")}
    os.environ.pop("FLOTILLA_CRASHPOINT", None)
    os.environ.pop("FLOTILLA_DROPPOINT", None)
    os.environ.update(env)
    try:
        s.start()
        s.wait_up()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    end = time.time() + 30
    while time.time() < end:
        now = c.leader(timeout=30)
        if now == lid:
            break
        request(c.servers[now].api, "POST", "/v1/members/transfer", {"id": lid}, timeout=5)
        time.sleep(0.3)
    check(c.leader() == lid, "leadership back on the armed server")
    c.wait_converged()
    return s


ARMED = set()


def revive(c):
    """Start again, without fault points, any server the crash point killed
    and any still armed."""
    for s in c.servers.values():
        if s.alive() and s.id in ARMED:
            s.stop()
        if not s.alive():
            s.start()
            s.wait_up()
    ARMED.clear()
    c.leader(timeout=30)
    c.wait_converged()


class LeadershipMoved(Exception):
    """The armed server lost leadership on its own (an election under a
    loaded machine) before the fault point was reached: the case proves
    nothing either way and is run again."""


def term_of(server):
    st = server.status()
    check(st is not None, "server %d answers its status" % server.id)
    return st["term"], st["state"]


def crash_expected(leader, term0):
    """The armed leader is gone, as its crash point says it must be. If it
    is alive, that fails the case, unless leadership left it meanwhile (its
    term moved on or it no longer leads): then LeadershipMoved."""
    end = time.monotonic() + 10
    while leader.alive() and time.monotonic() < end:
        st = leader.status()
        if st is None:
            time.sleep(0.1)  # not answering: on its way out, or hung
            continue
        if st["term"] != term0 or st["state"] != "leader":
            raise LeadershipMoved("term %d -> %d, %s" % (term0, st["term"], st["state"]))
        break  # still the same leader: its crash point was never reached
    check(not leader.alive(), "the leader died at the crash point")


def retried_if_leadership_moved(t):
    """Run a crash-point case again (at most three times in all) when
    LeadershipMoved says it did not get to its point."""
    def f(c):
        for attempt in range(3):
            try:
                return t(c)
            except LeadershipMoved as e:
                print("  %s: leadership moved before the fault point (%s); again"
                      % (t.__name__, e), flush=True)
                revive(c)
        check(False, "%s: leadership moved three times in a row" % t.__name__)
    f.__name__ = t.__name__
    return f


def two_forwarded_writes(c, make, second_headers):
    """Through one follower: a first forwarded write (it opens the pooled
    connection to the leader) and a second one, on that connection, which
    meets the armed fault point. Returns the leader, the follower, the
    second write's answer and the leader's term before the writes."""
    leader, (f, _f2) = leader_and_followers(c)
    term0, _ = term_of(leader)
    st, body, _ = request(f.api, "PUT", "/v1/kv/warm/%d" % time.monotonic_ns(), {"value": "w"})
    check(st == 200, "the first forwarded write: %s %r" % (st, body))
    return leader, f, make(f.api, second_headers), term0


@retried_if_leadership_moved
def test_leader_killed_after_reading_a_forwarded_write(c):
    arm(c, {"FLOTILLA_CRASHPOINT": "forward-received:2"})
    try:
        leader, _ = leader_and_followers(c)
        sid = session(leader.api)
        h = ident(sid)

        def put(addr, headers):
            return request(addr, "PUT", "/v1/kv/crash/recv", {"value": "v"}, headers=headers,
                           timeout=30)
        leader, f, (st, body, _), term0 = two_forwarded_writes(c, put, h)
        crash_expected(leader, term0)
        check(st == 503 and code(body) == "outcome_unknown",
              "the follower says the outcome is unknown, not %s %r" % (st, body))
        revive(c)
        lead = c.servers[c.leader()]
        check(kv(lead.api, "crash/recv") is None, "read, never proposed: not applied")
        # The retry with the same identity applies it, once.
        st, body, _ = request(f.api, "PUT", "/v1/kv/crash/recv", {"value": "v"}, headers=h)
        check(st == 200, "the retry: %s %r" % (st, body))
        st, again, _ = request(lead.api, "PUT", "/v1/kv/crash/recv", {"value": "v"}, headers=h)
        check(st == 200 and again == body, "a second retry gets the same answer: %r" % again)
        check(kv(lead.api, "crash/recv")["version"] == body["version"], "applied once: %r" % body)
    finally:
        revive(c)


@retried_if_leadership_moved
def test_leader_killed_after_applying_a_forwarded_write(c):
    arm(c, {"FLOTILLA_CRASHPOINT": "forward-applied:2"})
    try:
        leader, _ = leader_and_followers(c)
        sid = session(leader.api)
        h = ident(sid)

        def put(addr, headers):
            return request(addr, "PUT", "/v1/kv/crash/applied", {"value": "second"}, headers=headers,
                           timeout=30)
        leader, f, (st, body, _), term0 = two_forwarded_writes(c, put, h)
        crash_expected(leader, term0)
        check(st == 503 and code(body) == "outcome_unknown",
              "the follower says the outcome is unknown, not %s %r" % (st, body))
        revive(c)
        lead = c.servers[c.leader()]
        applied = kv(lead.api, "crash/applied")
        check(applied["value"] == "second", "the write was applied before the crash")
        st, body, _ = request(f.api, "PUT", "/v1/kv/crash/applied", {"value": "second"}, headers=h)
        check(st == 200 and body["version"] == applied["version"],
              "the retry gets the first attempt's answer: %s %r vs %r" % (st, body, applied))
        check(kv(lead.api, "crash/applied")["version"] == applied["version"], "applied once")
    finally:
        revive(c)


def sessions(addr):
    st, body, _ = request(addr, "GET", "/v1/sessions")
    check(st == 200, "session list: %s" % st)
    return body["items"]


@retried_if_leadership_moved
def test_cli_resolves_an_unknown_outcome(c):
    """The CLI writes through a follower; the leader dies right after applying
    the write. The CLI sends it again with the same identity until a new
    leader answers from memory: exit 0, applied once, and the CLI's own
    session is gone when it exits."""
    arm(c, {"FLOTILLA_CRASHPOINT": "forward-applied:2"})
    try:
        leader, (f, _f2) = leader_and_followers(c)
        term0, _ = term_of(leader)
        before = {x["id"] for x in sessions(leader.api)}
        t0 = time.monotonic()
        r = subprocess.run([BIN, "kv", "put", "cli/once", "v", "--addr", f.api, "--json"],
                           capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        crash_expected(leader, term0)
        check(r.returncode == 0, "the CLI resolved the outcome (%.1fs): %r %r"
              % (took, r.stdout, r.stderr))
        answer = json.loads(r.stdout)
        revive(c)
        lead = c.servers[c.leader()]
        now = kv(lead.api, "cli/once")
        check(now["version"] == answer["version"], "applied once: %r vs %r" % (now, answer))
        check(fsm_requests(lead)["replayed"] >= 1, "the retry was answered from memory")
        left = [x for x in sessions(lead.api) if x["id"] not in before]
        check(not left, "the CLI destroyed its session at exit: %r" % left)
    finally:
        revive(c)


def submit_named(name):
    def make(addr, headers):
        return request(addr, "POST", "/v1/tasks", {"hosts": ["h1"], "noop": True, "name": name},
                       headers=headers, timeout=30)
    return make


def test_leader_hangs_up_on_a_pooled_connection(c):
    """The leader reads a forwarded write from the follower's pooled
    connection, applies it and closes the connection without answering
    (staying up), or closes it right after reading. Without an identity the
    follower must not send the write again: a second task would run twice."""
    cases = [
        ("forward-applied", None, 1, "outcome_unknown"),
        ("forward-received", None, 0, "outcome_unknown"),
        ("forward-applied", "ident", 1, 200),
        ("forward-received", "ident", 1, 200),
    ]
    try:
        hang_up_cases(c, cases)
    finally:
        arm(c, {})


def hang_up_cases(c, cases):
    for point, with_ident, want_tasks, want in cases:
        arm(c, {"FLOTILLA_DROPPOINT": point + ":2"})
        leader, _ = leader_and_followers(c)
        h = ident(session(leader.api)) if with_ident else None
        name = "drop-%s-%s" % (point, with_ident or "none")
        leader, f, (st, body, _), _term0 = two_forwarded_writes(c, submit_named(name), h)
        check(leader.alive(), "the leader stays up")
        c.wait_converged()
        n = len(tasks_named(leader.api, name))
        check(n == want_tasks, "%s %s: %d tasks, want %d" % (point, with_ident, n, want_tasks))
        got = st if st == 200 else code(body)
        check(got == want, "%s %s: answered %s %r, want %s" % (point, with_ident, st, body, want))
        if with_ident:
            st, again, _ = request(leader.api, "POST", "/v1/tasks",
                                   {"hosts": ["h1"], "noop": True, "name": name}, headers=h)
            check(st == 200 and again["id"] == body["id"], "a retry names the same task")
            check(len(tasks_named(leader.api, name)) == 1, "still one task")


# ------------------------------------ writes through followers, leader killed

def test_followers_writes_under_leader_kills(c):
    """Writes of distinct keys through the followers while the leader is
    killed with SIGKILL again and again; then every key answered no_leader
    (or any other definite failure) is read back: none may exist."""
    rng = random.Random(14)
    stop = threading.Event()
    outcomes = []
    olock = threading.Lock()
    view = {"leader": c.leader()}

    def writer(w):
        n = 0
        while not stop.is_set():
            n += 1
            key = "fw/%d-%d" % (w, n)
            ups = [s for s in c.servers.values() if s.alive() and s.id != view["leader"]]
            if not ups:
                time.sleep(0.01)
                continue
            s = rng.choice(ups)
            try:
                st, body, _ = request(s.api, "PUT", "/v1/kv/" + key, {"value": key}, timeout=15)
                res = "ok" if st == 200 else (code(body) or "http-%d" % st)
            except OSError as e:
                res = "refused" if isinstance(e, ConnectionRefusedError) else "net"
            with olock:
                outcomes.append((key, res))
            if res != "ok":
                time.sleep(0.05)  # no leader yet: do not spin

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    kills = 0
    try:
        while kills < 12:
            time.sleep(rng.uniform(0.4, 1.2))
            old = c.servers[view["leader"]]
            old.kill9()
            kills += 1
            view["leader"] = c.leader(timeout=30)
            old.start()
            old.wait_up()
    finally:
        stop.set()
        for t in threads:
            t.join()
    c.leader(timeout=30)
    c.wait_converged()
    lead = c.servers[c.leader()]
    definite = {"no_leader", "not_leader", "refused", "busy", "invalid"}
    counts = {}
    for _, res in outcomes:
        counts[res] = counts.get(res, 0) + 1
    st, body, _ = request(lead.api, "GET", "/v1/kv?prefix=fw/&limit=100000", timeout=60)
    check(st == 200, "list: %s" % st)
    present = {item["key"] for item in body["items"]}
    wrong = [(k, res) for k, res in outcomes if res in definite and k in present]
    print("  %d kills, %d writes: %s" % (kills, len(outcomes),
                                         ", ".join("%s %d" % kv_ for kv_ in sorted(counts.items()))))
    check(counts.get("ok", 0) > 100, "the writers made progress: %r" % counts)
    check(sum(n for r, n in counts.items() if r in definite) > 0,
          "some writes met a definite failure, so the check checked something: %r" % counts)
    check(not wrong, "%d writes answered as not applied were applied: %r" % (len(wrong), wrong[:10]))
    lost = [k for k, res in outcomes if res == "ok" and k not in present]
    check(not lost, "acknowledged writes lost: %r" % lost[:10])


def main():
    c = Cluster(3, name="reqid").start()
    status = 1
    try:
        tests = [test_identity_rules, test_release_names_its_token,
                 test_stalled_follower_replays_an_abandoned_release,
                 test_stalled_follower_replays_an_abandoned_acquire,
                 test_leader_killed_after_reading_a_forwarded_write,
                 test_leader_killed_after_applying_a_forwarded_write,
                 test_cli_resolves_an_unknown_outcome,
                 test_leader_hangs_up_on_a_pooled_connection,
                 test_followers_writes_under_leader_kills]

        def bind(t):
            def f():
                t(c)
            f.__name__ = t.__name__
            return f
        try:
            run([bind(t) for t in tests])
        except SystemExit as e:
            status = e.code
    finally:
        c.close()
    raise SystemExit(status)


if __name__ == "__main__":
    main()
