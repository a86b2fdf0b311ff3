"""Client workloads and the history they record.

Every client operation is written to the history (JSONL) as an `invoke`
followed by exactly one of `ok`, `fail` (it certainly did not happen) or
`info` (the outcome is unknown), with monotonic times in ns since the run
started ("t") and the wall clock ("wall", seconds). Nemesis events are
recorded in the same file with process "nemesis".

Operation kinds ("f"):
  submit        POST /v1/tasks with a unique idempotency key; ok value: task id
  kv-write      PUT /v1/kv/K {value}             ok: version
  kv-cas        PUT /v1/kv/K {value, cas}        ok: version; fail conflict: current version
  kv-read       GET /v1/kv/K                     ok: {value, version} or null (absent)
  lock-acquire  PUT /v1/locks/NS/NAME            ok: token
  lock-release  DELETE /v1/locks/NS/NAME         invoke carries lease_end (see checkers)
  fw-write      PUT /v1/kv/K {value, cas: 0} through a follower, a key of its own
                                                 ok: version; failed ones are read back
  lock-check    GET /v1/sessions/ID by a lock client that believes it neither
                holds nor waits                  ok: the session's locks

The retrying lock clients (RetryingLockClient) add to lock-acquire and
lock-release completions: attempts [{node, result, definite}] (one per server
tried with the request's X-Flotilla-Request), queued (ns of the first 202
answer), lease_lost, first_definite.
"""
import json
import os
import random
import socket
import threading
import time

from cluster import api

START_NS = time.monotonic_ns()


def now_ns():
    return time.monotonic_ns() - START_NS


class History:
    """Append-only JSONL history shared by all workers (thread safe)."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()
        self.next_id = 0

    def _write(self, rec):
        rec["t"] = now_ns()
        rec["wall"] = time.time()
        with self.lock:
            self.f.write(json.dumps(rec, sort_keys=True) + "\n")
        return rec

    def invoke(self, process, f, **kw):
        with self.lock:
            self.next_id += 1
            op = self.next_id
        self._write(dict(type="invoke", op=op, process=process, f=f, **kw))
        return op

    def complete(self, op, process, f, kind, **kw):
        assert kind in ("ok", "fail", "info")
        self._write(dict(type=kind, op=op, process=process, f=f, **kw))

    def event(self, f, **kw):
        self._write(dict(type="info", process="nemesis", f=f, **kw))

    def close(self):
        self.f.close()


def read_history(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# Answers that certainly mean "not applied": the request was refused before
# it was proposed. Everything else that is not a success (outcome_unknown,
# timeouts, dropped connections, 5xx without a body) is unknown.
DEFINITE_FAIL_CODES = {"invalid", "not_found", "conflict", "exists", "too_big", "no_leader",
                       "not_leader", "no_cluster", "busy", "store_full", "unauthorized",
                       "forbidden", "method_not_allowed", "held"}


def classify(status, body):
    """(kind, error code) for a non-2xx answer."""
    code = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
    if code in DEFINITE_FAIL_CODES:
        return "fail", code
    return "info", code or ("http-%s" % status)


class Workers:
    """Client threads driving the cluster through random servers."""

    def __init__(self, world, history, rng_seed, unit_script, kv_keys=4, kv_threads=3,
                 lock_threads=3, submit_threads=1, run_id="r", fw_threads=0, rlock_threads=0,
                 fw_burst_threads=0):
        self.world = world
        self.h = history
        self.seed = rng_seed
        self.unit_script = unit_script
        self.kv_keys = ["chaos-%s/k%d" % (run_id, i) for i in range(kv_keys)]
        self.kv_threads = kv_threads
        self.lock_threads = lock_threads
        self.submit_threads = submit_threads
        self.fw_threads = fw_threads
        self.fw_burst_threads = fw_burst_threads
        self.burst_until = 0.0     # monotonic; the burst writers write until then
        self.rlock_threads = rlock_threads
        self.run_id = run_id
        self.leader_id = None      # as the leader watcher last saw it
        # stall(addr, proc, leader_id) -> bool: the nemesis's hook that may
        # pause the follower a lock client is about to send a request to
        self.stall = None
        self.stop = threading.Event()
        self.stop_by = None        # monotonic: every call ends by then once stopping
        self.threads = []
        self.sessions = set()
        self.slock = threading.Lock()

    def addrs(self):
        ups = [s.api for s in self.world.servers.values() if s.state in ("up", "paused", "killed")]
        return ups or [s.api for s in self.world.servers.values()]

    def pick(self, rng):
        """A random server: mostly one that is up, now and then any (a
        request to a paused or dead server is a fault clients meet too)."""
        ups = [s.api for s in self.world.servers.values() if s.state == "up"]
        if ups and rng.random() < 0.85:
            return rng.choice(ups)
        return rng.choice(self.addrs())

    def start(self):
        n = 0
        for i in range(self.kv_threads):
            n += 1
            self._spawn(self.kv_loop, "kv%d" % i, n)
        for i in range(self.lock_threads):
            n += 1
            lock = "chaos/l1" if i < 2 or self.lock_threads < 3 else "chaos/sem"
            self._spawn(self.lock_loop, "lock%d" % i, n, lock)
        for i in range(self.submit_threads):
            n += 1
            self._spawn(self.submit_loop, "submit%d" % i, n)
        if self.fw_threads or self.rlock_threads:
            n += 1
            self._spawn(self.leader_watch, "leaderwatch", n)
        for i in range(self.fw_threads + self.fw_burst_threads):
            n += 1
            self._spawn(self.fw_loop, "fw%d" % i, n, i >= self.fw_threads)
        for i in range(self.rlock_threads):
            n += 1
            half = (self.rlock_threads + 1) // 2
            lock, limit = ("chaos/rmutex", 1) if i < half else ("chaos/rsem", 2)
            self._spawn(lambda proc, rng, lock=lock, limit=limit:
                        RetryingLockClient(self, proc, rng, lock, limit).run(), "rlock%d" % i, n)

    def _spawn(self, fn, name, n, *args):
        rng = random.Random(self.seed * 1000 + n)
        t = threading.Thread(target=fn, args=(name, rng) + args, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def call(self, addr, method, path, body=None, timeout=5.0, **kw):
        """api(), with the timeout cut to the stop deadline once the
        workers are stopping (a thread in a call then ends by that time,
        whatever it is waiting for)."""
        if self.stop_by is not None:
            timeout = max(0.1, min(timeout, self.stop_by - time.monotonic()))
        return api(addr, method, path, body, timeout=timeout, **kw)

    def signal_stop(self, seconds):
        """Stop every worker thread at once: each ends within `seconds`
        (the caller joins them with one shared deadline)."""
        self.stop_by = time.monotonic() + seconds
        self.stop.set()

    def _sleep(self, s):
        self.stop.wait(s)

    # -- kv -----------------------------------------------------------------
    def kv_loop(self, proc, rng):
        seq = 0
        versions = {}
        while not self.stop.is_set():
            key = rng.choice(self.kv_keys)
            addr = self.pick(rng)
            r = rng.random()
            if r < 0.45:
                self._kv_read(proc, addr, key, versions)
            elif r < 0.75 or key not in versions:
                seq += 1
                self._kv_write(proc, addr, key, "%s-%d" % (proc, seq), None, versions)
            else:
                seq += 1
                self._kv_write(proc, addr, key, "%s-%d" % (proc, seq), versions[key], versions)
            self._sleep(rng.uniform(0.005, 0.05))

    def _kv_read(self, proc, addr, key, versions):
        op = self.h.invoke(proc, "kv-read", key=key, node=addr)
        try:
            st, body = self.call(addr, "GET", "/v1/kv/" + key, timeout=4)
        except OSError as e:
            self.h.complete(op, proc, "kv-read", "info", key=key, error=str(e)[:80])
            return
        if st == 200:
            versions[key] = body["version"]
            self.h.complete(op, proc, "kv-read", "ok", key=key,
                            value={"value": body["value"], "version": body["version"]})
        elif st == 404 and (body or {}).get("error", {}).get("code") == "not_found":
            self.h.complete(op, proc, "kv-read", "ok", key=key, value=None)
        else:
            kind, code = classify(st, body)
            # A read that failed changed nothing either way.
            self.h.complete(op, proc, "kv-read", "fail", key=key, error=code)

    def _kv_write(self, proc, addr, key, value, cas, versions):
        f = "kv-write" if cas is None else "kv-cas"
        kw = dict(key=key, value=value)
        if cas is not None:
            kw["cas"] = cas
        op = self.h.invoke(proc, f, node=addr, **kw)
        body_out = {"value": value}
        if cas is not None:
            body_out["cas"] = cas
        try:
            st, body = self.call(addr, "PUT", "/v1/kv/" + key, body_out, timeout=4)
        except ConnectionRefusedError as e:
            self.h.complete(op, proc, f, "fail", error=str(e)[:80], **kw)
            return
        except OSError as e:
            self.h.complete(op, proc, f, "info", error=str(e)[:80], **kw)
            return
        if st == 200:
            versions[key] = body["version"]
            self.h.complete(op, proc, f, "ok", version=body["version"], **kw)
        elif st == 409 and cas is not None and (body or {}).get("error", {}).get("code") == "conflict":
            self.h.complete(op, proc, f, "fail", error="conflict", current=body.get("version"), **kw)
            versions[key] = body.get("version")
        else:
            kind, code = classify(st, body)
            self.h.complete(op, proc, f, kind, error=code, **kw)

    # -- locks ----------------------------------------------------------------
    TTL_MS = 3000
    MARGIN_MS = 1000

    def lock_loop(self, proc, rng, lock):
        limit = 2 if lock.endswith("sem") else 1
        while not self.stop.is_set():
            sess, sent = self._session(proc, rng)
            if sess is None:
                self._sleep(0.5)
                continue
            for _ in range(rng.randint(1, 4)):
                if self.stop.is_set():
                    break
                ok, sent = self._hold_once(proc, rng, lock, limit, sess, sent)
                if not ok:
                    break
                self._sleep(rng.uniform(0.0, 0.3))
            self._destroy(proc, rng, sess)

    def _session(self, proc, rng):
        addr = self.pick(rng)
        sent = now_ns()
        try:
            st, body = self.call(addr, "POST", "/v1/sessions",
                                 {"ttl": self.TTL_MS, "lock_delay": 1000, "name": proc}, timeout=4)
        except OSError:
            return None, 0
        if st != 200:
            return None, 0
        with self.slock:
            self.sessions.add(body["id"])
        return body["id"], sent

    def _destroy(self, proc, rng, sess):
        for _ in range(3):
            try:
                st, _ = self.call(self.pick(rng), "DELETE", "/v1/sessions/" + sess, timeout=4)
                if st in (200, 404):
                    with self.slock:
                        self.sessions.discard(sess)
                    return
            except OSError:
                pass
            self._sleep(0.2)

    def _renew(self, rng, sess):
        sent = now_ns()
        try:
            st, _ = self.call(self.pick(rng), "PUT", "/v1/sessions/%s/renew" % sess, timeout=2)
        except OSError:
            return None
        return sent if st == 200 else None

    def _hold_once(self, proc, rng, lock, limit, sess, sent):
        """Acquire, hold briefly (never past the lease as the client can
        prove it), release. Returns (session still usable, last renewal
        send time)."""
        path = "/v1/locks/" + lock
        op = self.h.invoke(proc, "lock-acquire", lock=lock, session=sess, limit=limit)
        deadline = time.monotonic() + 3.0
        while True:
            s2 = self._renew(rng, sess)
            if s2 is not None:
                sent = s2
            remaining = max(0.1, deadline - time.monotonic())
            addr = self.pick(rng)
            try:
                st, body = self.call(addr, "PUT", path, {"session": sess,
                                                         "wait": int(remaining * 1000),
                                                         "limit": limit}, timeout=12)
            except OSError as e:
                self.h.complete(op, proc, "lock-acquire", "info", lock=lock, session=sess,
                                error=str(e)[:80])
                return False, sent
            if st == 200 and body.get("granted"):
                token = body["token"]
                self.h.complete(op, proc, "lock-acquire", "ok", lock=lock, session=sess,
                                token=token, node=addr)
                break
            if st == 202 and time.monotonic() < deadline and not self.stop.is_set():
                continue
            kind, code = classify(st, body)
            if st == 409:
                kind = "fail"      # held, timeout (left the queue) or a limit mismatch
            if st == 202:
                kind, code = "info", "still-waiting"
            self.h.complete(op, proc, "lock-acquire", kind, lock=lock, session=sess, error=code)
            return kind == "fail" and st == 409, sent
        # Holding. The lease as the client can prove it ends TTL - margin
        # after the last renewal it *sent* that succeeded.
        hold_ms = rng.uniform(50, 900)
        end = time.monotonic() + hold_ms / 1000
        while time.monotonic() < end and not self.stop.is_set():
            lease_end = sent + (self.TTL_MS - self.MARGIN_MS) * 1_000_000
            if now_ns() > lease_end - 600_000_000:
                s2 = self._renew(rng, sess)
                if s2 is not None:
                    sent = s2
                elif now_ns() > lease_end:
                    break
            time.sleep(0.02)
        lease_end = sent + (self.TTL_MS - self.MARGIN_MS) * 1_000_000
        op = self.h.invoke(proc, "lock-release", lock=lock, session=sess, token=token,
                           lease_end=lease_end)
        try:
            st, body = self.call(self.pick(rng), "DELETE", "%s?session=%s" % (path, sess),
                                 timeout=4)
        except OSError as e:
            self.h.complete(op, proc, "lock-release", "info", lock=lock, session=sess,
                            token=token, error=str(e)[:80])
            return False, sent
        if st == 200:
            self.h.complete(op, proc, "lock-release", "ok", lock=lock, session=sess, token=token)
            return True, sent
        kind, code = classify(st, body)
        self.h.complete(op, proc, "lock-release", kind, lock=lock, session=sess, token=token,
                        error=code)
        return False, sent


    # -- writes through followers ---------------------------------------------
    def leader_watch(self, proc, rng):
        """Keep leader_id current from /v1/status of a random live server."""
        while not self.stop.is_set():
            ups = [s for s in self.world.servers.values() if s.state == "up"]
            if ups:
                try:
                    st, body = self.call(rng.choice(ups).api, "GET", "/v1/status", timeout=1)
                    if st == 200:
                        ld = body.get("leader") or {}
                        self.leader_id = ld.get("id") or None
                except OSError:
                    pass
            self._sleep(0.2)

    def burst(self, seconds):
        """The nemesis is about to kill the leader: every follower writer
        writes for the next `seconds`, so more forwarded writes are in
        flight at the kill."""
        self.burst_until = time.monotonic() + seconds

    def fw_loop(self, proc, rng, bursty=False):
        """Creates (cas 0) of keys of its own with unique values, always sent
        to a server that is not the leader, as fast as they are answered: a
        follower forwards each to the leader, so every leader kill finds
        some in flight. A definite failure must mean the key was not
        written (the runner reads each back after healing); a create
        answered `conflict` was applied twice. A bursty writer writes only
        around leader kills (burst())."""
        seq = 0
        while not self.stop.is_set():
            if bursty and time.monotonic() >= self.burst_until:
                self._sleep(0.05)
                continue
            lid = self.leader_id
            fols = [s for s in self.world.servers.values() if s.state == "up" and s.sid != lid]
            if lid is None or not fols:
                self._sleep(0.05)
                continue
            addr = rng.choice(fols).api
            seq += 1
            key = "chaos-%s/fw/%s-%d" % (self.run_id, proc, seq)
            value = "%s-%d" % (proc, seq)
            kw = dict(key=key, value=value, node=addr, leader=lid)
            op = self.h.invoke(proc, "fw-write", **kw)
            try:
                st, body = self.call(addr, "PUT", "/v1/kv/" + key, {"value": value, "cas": 0},
                                     timeout=4)
            except ConnectionRefusedError as e:
                self.h.complete(op, proc, "fw-write", "fail", error=str(e)[:80], **kw)
                self._sleep(0.05)
                continue
            except OSError as e:
                self.h.complete(op, proc, "fw-write", "info", error=str(e)[:80], **kw)
                continue
            if st == 200:
                self.h.complete(op, proc, "fw-write", "ok", version=body["version"], **kw)
                self._sleep(rng.uniform(0.002, 0.01))
                continue
            kind, code = classify(st, body)
            self.h.complete(op, proc, "fw-write", kind, error=code, **kw)
            self._sleep(0.05)

    # -- task submissions -------------------------------------------------------
    def submit_loop(self, proc, rng):
        seq = 0
        while not self.stop.is_set():
            seq += 1
            key = "%s-%s-%d" % (self.run_id, proc, seq)
            nh = rng.randint(1, 3)
            hosts = ["h%d-%s" % (i, key) for i in range(nh)]
            sleep = "%.2f" % rng.uniform(0.1, 1.2)
            self.submit(proc, rng, key, hosts, sleep)
            self._sleep(rng.uniform(0.2, 0.8))

    def submit(self, proc, rng, key, hosts, sleep, addr=None, retry_of=None):
        spec = {"hosts": hosts, "unit_size": 1, "retries": 6, "idempotency_key": key,
                "name": key, "shell": "/bin/sh %s %s" % (self.unit_script, sleep)}
        addr = addr or self.pick(rng)
        kw = dict(key=key, hosts=hosts, node=addr)
        if retry_of:
            kw["retry_of"] = retry_of
        op = self.h.invoke(proc, "submit", **kw)
        try:
            st, body = self.call(addr, "POST", "/v1/tasks", spec, timeout=6)
        except ConnectionRefusedError as e:
            self.h.complete(op, proc, "submit", "fail", error=str(e)[:80], **kw)
            return None
        except (OSError, socket.timeout) as e:
            self.h.complete(op, proc, "submit", "info", error=str(e)[:80], **kw)
            return None
        if st == 200:
            self.h.complete(op, proc, "submit", "ok", value=body["id"],
                            existing=body.get("existing", False), **kw)
            return body["id"]
        kind, code = classify(st, body)
        self.h.complete(op, proc, "submit", kind, error=code, **kw)
        return None


class RetryingLockClient:
    """A lock client that retries as docs/LOCKS.md and the request-identity
    contract tell it to: one session, one request at a time, each write
    with `X-Flotilla-Request: SESSION/SERIAL` (a new serial per request,
    the same serial on every retry of it); a request whose answer is lost
    (a timeout, a dropped connection, a 5xx other than a refusal) is sent
    again to another server; releases name their hold's token. Giving up on
    a request whose outcome stayed unknown, it sends a newer request that
    also undoes it (`DELETE /v1/locks/NS/NAME?session=ID` without a token:
    nothing held or queued afterwards), or destroys the session when even
    that stays unknown; an abandoned request can then never take effect.

    It checks what the checkers need: when it believes it neither holds nor
    waits and has nothing in flight it reads its own session (lock-check);
    after a request it had to retry elsewhere it stays in that state (idle,
    or holding again at once after a retried release) until the servers it
    had sent it to are running again and a little longer, so what an old
    copy of the request does when a stalled server finally forwards it is
    seen (lock-unasked, lock-holders, lock-hold-lost, lock-fifo)."""

    TTL_MS = 3000
    MARGIN_MS = 1000

    def __init__(self, workers, proc, rng, lock, limit):
        self.w = workers
        self.h = workers.h
        self.proc = proc
        self.rng = rng
        self.lock = lock
        self.limit = limit
        self.path = "/v1/locks/" + lock
        self.sess = None
        self.serial = 0
        self.lease_sent = 0
        self.gaps = 0             # times the provable lease ran out
        self.suspects = set()     # servers holding a copy of a request we retried elsewhere
        self.hold_long = False

    # -- plumbing ---------------------------------------------------------
    def stopped(self):
        return self.w.stop.is_set()

    def sleep(self, s):
        self.w.stop.wait(s)

    def lease_end(self):
        return self.lease_sent + (self.TTL_MS - self.MARGIN_MS) * 1_000_000

    def pick(self, exclude):
        ups = [s.api for s in self.w.world.servers.values() if s.state == "up"]
        cands = [a for a in ups if a not in exclude] or ups or \
            [s.api for s in self.w.world.servers.values()]
        return self.rng.choice(cands)

    def request(self, method, path, body=None, timeout=1.0, stall_ok=False, tries=4):
        """One request with a new serial, sent to up to `tries` servers
        until one gives a definite answer. Returns (status, body, attempts,
        send time of the answered attempt); status None when no attempt
        got a definite answer."""
        self.serial += 1
        hdr = {"X-Flotilla-Request": "%s/%d" % (self.sess, self.serial)}
        attempts, tried = [], []
        for k in range(tries):
            if k:
                self.sleep(self.rng.uniform(0.05, 0.2))
            addr = self.pick(tried)
            tried.append(addr)
            if k == 0 and stall_ok and self.w.stall is not None:
                self.w.stall(addr, self.proc, self.w.leader_id)
            sent = now_ns()
            try:
                st, b = self.w.call(addr, method, path, body, timeout=timeout, headers=hdr)
            except ConnectionRefusedError:
                attempts.append(dict(node=addr, result="refused", definite=False))
                continue
            except OSError as e:
                attempts.append(dict(node=addr, result="unknown: %s" % str(e)[:40],
                                     definite=False))
                self.suspects.add(addr)
                continue
            code = ((b or {}).get("error") or {}).get("code") if isinstance(b, dict) else None
            if st < 500:
                attempts.append(dict(node=addr, result="%d %s" % (st, code or ""), definite=True))
                return st, b, attempts, sent
            attempts.append(dict(node=addr, result="%d %s" % (st, code or ""), definite=False))
            if code not in ("no_leader", "not_leader", "no_cluster"):
                self.suspects.add(addr)
        return None, None, attempts, 0

    def new_session(self):
        addr = self.pick([])
        sent = now_ns()
        try:
            st, body = self.w.call(addr, "POST", "/v1/sessions",
                                   {"ttl": self.TTL_MS, "lock_delay": 1000, "name": self.proc},
                                   timeout=2)
        except OSError:
            return False
        if st != 200:
            return False
        self.sess, self.serial, self.lease_sent = body["id"], 0, sent
        with self.w.slock:
            self.w.sessions.add(self.sess)
        return True

    def drop_session(self):
        """Destroy the session (a newer request: nothing older of it can
        take effect any more) and forget it."""
        if self.sess is None:
            return
        st, _, _, _ = self.request("DELETE", "/v1/sessions/" + self.sess, timeout=2)
        if st in (200, 404):
            with self.w.slock:
                self.w.sessions.discard(self.sess)
        self.sess = None

    def renew(self):
        """'ok', 'gone' (the session no longer exists) or 'unknown'."""
        st, _, _, sent = self.request("PUT", "/v1/sessions/%s/renew" % self.sess, timeout=1,
                                      tries=2)
        if st == 200:
            if sent > self.lease_end():
                self.gaps += 1
            self.lease_sent = max(self.lease_sent, sent)
            return "ok"
        if st == 404:
            return "gone"
        if now_ns() > self.lease_end():
            self.gaps += 1
        return "unknown"

    def give_up(self):
        """After a request whose outcome stayed unknown: leave whatever it
        may have done (a hold, a place in the queue) with a newer request.
        Returns what happened."""
        st, _, att, _ = self.request("DELETE", "%s?session=%s" % (self.path, self.sess),
                                     timeout=1.5)
        if st in (200, 404, 409):
            return "left (%d)" % st
        self.drop_session()
        return "session destroyed"

    def wait_suspects(self, extra):
        """Until every server that may still hold a copy of a request of
        ours runs again (not paused, not killed), plus `extra` seconds; at
        most 15 s. Returns the monotonic deadline."""
        byaddr = {s.api: s for s in self.w.world.servers.values()}
        end = time.monotonic() + 15
        while self.suspects and time.monotonic() < end and not self.stopped():
            if all(byaddr[a].state == "up" for a in self.suspects if a in byaddr):
                break
            yield
        self.suspects.clear()
        end2 = min(end, time.monotonic() + extra)
        while time.monotonic() < end2 and not self.stopped():
            yield

    # -- the loop -----------------------------------------------------------
    def run(self):
        while not self.stopped():
            if self.sess is None:
                if not self.new_session():
                    self.sleep(0.5)
                    continue
            token = self.acquire()
            if token is not None:
                self.hold_and_release(token)
            if self.hold_long and self.sess is not None:
                continue             # take the lock again at once
            self.idle()
        if self.sess is not None:
            self.drop_session()

    def acquire(self):
        """Returns the token when granted, else None."""
        op = self.h.invoke(self.proc, "lock-acquire", lock=self.lock, session=self.sess,
                           limit=self.limit, client="retrying")
        kw = dict(lock=self.lock, session=self.sess)
        deadline = time.monotonic() + self.rng.uniform(1.5, 4.0)
        queued = None
        gaps0 = self.gaps
        attempts = []
        for _ in range(12):
            if self.renew() == "gone":
                self.h.complete(op, self.proc, "lock-acquire", "fail", error="session_gone",
                                attempts=attempts, **kw)
                self.sess = None
                return None
            remaining = max(0.1, deadline - time.monotonic())
            st, b, att, _ = self.request(
                "PUT", self.path, {"session": self.sess, "wait": int(remaining * 1000),
                                   "limit": self.limit},
                timeout=min(remaining, 1.5) + 1.0, stall_ok=True)
            attempts += att
            if st == 200 and b.get("granted"):
                lost = self.gaps > gaps0 or now_ns() > self.lease_end()
                self.h.complete(op, self.proc, "lock-acquire", "ok", token=b["token"],
                                queued=queued, lease_lost=lost, attempts=attempts, **kw)
                return b["token"]
            if st == 202:
                if queued is None:
                    queued = now_ns()
                    gaps0 = self.gaps
                if not self.stopped():
                    continue
            if st is None or st == 202:
                how = self.give_up()
                self.h.complete(op, self.proc, "lock-acquire", "info", error="abandoned",
                                gave_up=how, attempts=attempts, **kw)
                return None
            code = ((b or {}).get("error") or {}).get("code") if isinstance(b, dict) else None
            self.h.complete(op, self.proc, "lock-acquire", "fail", error=code or str(st),
                            attempts=attempts, **kw)
            if st == 404:
                self.sess = None
            return None
        how = self.give_up()
        self.h.complete(op, self.proc, "lock-acquire", "info", error="too-many-calls",
                        gave_up=how, attempts=attempts, **kw)
        return None

    def hold_and_release(self, token):
        long_ = self.hold_long
        self.hold_long = False
        end = time.monotonic() + self.rng.uniform(0.3, 1.5)
        waiter = self.wait_suspects(self.rng.uniform(1.5, 3.0)) if long_ else None
        gone = False
        while not self.stopped():
            if waiter is not None:
                if next(waiter, "done") == "done":
                    waiter = None
            elif time.monotonic() >= end:
                break
            if now_ns() > self.lease_end() - 1_200_000_000:
                if self.renew() == "gone":
                    gone = True
                    break
            if now_ns() > self.lease_end():
                break                # the lease cannot be proved: stop holding
            time.sleep(0.05)
        lease_end = self.lease_end()
        kw = dict(lock=self.lock, session=self.sess, token=token)
        op = self.h.invoke(self.proc, "lock-release", lease_end=lease_end, **kw)
        st, b, att, _ = self.request("DELETE", "%s?session=%s&token=%d" % (
            self.path, self.sess, token), timeout=1.0, stall_ok=True)
        retried = len(att) > 1
        if st == 200:
            self.h.complete(op, self.proc, "lock-release", "ok", attempts=att,
                            first_definite=not retried, **kw)
        elif st is not None:
            code = ((b or {}).get("error") or {}).get("code") if isinstance(b, dict) else None
            self.h.complete(op, self.proc, "lock-release", "fail", error=code or str(st),
                            attempts=att, first_definite=not retried, **kw)
            if st == 404 and code == "session_not_found":
                self.sess = None
        else:
            how = self.give_up()
            self.h.complete(op, self.proc, "lock-release", "info", error="abandoned",
                            gave_up=how, attempts=att, first_definite=False, **kw)
        if gone:
            self.sess = None
        if retried and self.sess is not None:
            self.hold_long = True    # hold again while the old copy may still arrive

    def check(self):
        """Read our own session: we neither hold nor wait, nothing in flight."""
        op = self.h.invoke(self.proc, "lock-check", lock=self.lock, session=self.sess)
        addr = self.pick([])
        try:
            st, b = self.w.call(addr, "GET", "/v1/sessions/" + self.sess, timeout=2)
        except OSError as e:
            self.h.complete(op, self.proc, "lock-check", "info", error=str(e)[:60],
                            session=self.sess)
            return
        if st == 200:
            locks = [x for x in b.get("locks", []) if x.get("key") == self.lock]
            self.h.complete(op, self.proc, "lock-check", "ok", value=locks, node=addr,
                            session=self.sess)
            if locks:
                self.give_up()       # recorded; leave it so the run goes on
            return
        kind, code = classify(st, b)
        self.h.complete(op, self.proc, "lock-check", "fail", error=code, session=self.sess)
        if st == 404:
            self.sess = None

    def idle(self):
        if self.sess is None:
            return
        waiter = self.wait_suspects(self.rng.uniform(1.0, 2.0)) if self.suspects else None
        end = time.monotonic() + self.rng.uniform(0.2, 1.0)
        while self.sess is not None and not self.stopped():
            self.check()
            if self.sess is None or now_ns() > self.lease_end() - 1_200_000_000 and \
                    self.renew() == "gone":
                self.sess = None
                return
            self.sleep(self.rng.uniform(0.2, 0.5))
            if waiter is not None:
                if next(waiter, "done") == "done":
                    waiter = None
            elif time.monotonic() >= end:
                return


UNIT_SCRIPT = r"""#!/bin/sh
# A chaos unit: logs its start and end (real wall clock, even under
# libfaketime) with its task, unit, attempt, fencing token and node to the
# node's own log, one JSON line each (appends under PIPE_BUF are atomic).
now() { env -u LD_PRELOAD date +%s.%N; }
L="@LOGDIR@/${FLOTILLA_NODE:-unknown}.log"
DUR="${1:-0.5}"
line() {
  printf '{"ev":"%s","task":"%s","unit":"%s","attempt":"%s","token":"%s","node":"%s","hosts":"%s","job":"%s","sched":"%s","pid":%d,"dur":%s,"t":%s}\n' \
    "$1" "$FLOTILLA_TASK_ID" "$FLOTILLA_UNIT" "$FLOTILLA_ATTEMPT" "$FLOTILLA_FENCING_TOKEN" \
    "$FLOTILLA_NODE" "$FLOTILLA_HOSTS" "$FLOTILLA_JOB" "$FLOTILLA_SCHEDULED_TIME" $$ "${DUR}" "$(now)" >> "$L"
}
trap 'line end-term; exit 143' TERM INT
line start
sleep "$DUR" &
wait $!
line end
"""


def write_unit_script(path, logdir):
    with open(path, "w") as f:
        f.write(UNIT_SCRIPT.replace("@LOGDIR@", logdir))
    os.chmod(path, 0o755)


def read_unit_logs(logdir):
    """Every line of every node's unit log, parsed (bad lines skipped)."""
    out = []
    for name in sorted(os.listdir(logdir)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(logdir, name)) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                rec["t"] = float(rec["t"])
                for k in ("unit", "attempt", "token"):
                    try:
                        rec[k] = int(rec[k])
                    except (TypeError, ValueError):
                        rec[k] = None
                out.append(rec)
    return out
