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
                 lock_threads=3, submit_threads=1, run_id="r"):
        self.world = world
        self.h = history
        self.seed = rng_seed
        self.unit_script = unit_script
        self.kv_keys = ["chaos-%s/k%d" % (run_id, i) for i in range(kv_keys)]
        self.kv_threads = kv_threads
        self.lock_threads = lock_threads
        self.submit_threads = submit_threads
        self.run_id = run_id
        self.stop = threading.Event()
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

    def _spawn(self, fn, name, n, *args):
        rng = random.Random(self.seed * 1000 + n)
        t = threading.Thread(target=fn, args=(name, rng) + args, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def halt(self, timeout=30):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)

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
            st, body = api(addr, "GET", "/v1/kv/" + key, timeout=4)
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
            st, body = api(addr, "PUT", "/v1/kv/" + key, body_out, timeout=4)
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
            st, body = api(addr, "POST", "/v1/sessions",
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
                st, _ = api(self.pick(rng), "DELETE", "/v1/sessions/" + sess, timeout=4)
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
            st, _ = api(self.pick(rng), "PUT", "/v1/sessions/%s/renew" % sess, timeout=2)
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
                st, body = api(addr, "PUT", path, {"session": sess, "wait": int(remaining * 1000),
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
            st, body = api(self.pick(rng), "DELETE", "%s?session=%s" % (path, sess), timeout=4)
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
            st, body = api(addr, "POST", "/v1/tasks", spec, timeout=6)
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
