"""`flotilla supervise` against real worker processes (docs/DEPLOY.md).

Run with /usr/bin/python3; FLOTILLA_BIN names the binary. Each test makes an
application root in a temporary directory with releases v1 and v2 holding
the same worker script, which appends one JSON line per start to
ROOT/starts.log (worker, pid, release, cwd, time) and then behaves as
ROOT/mode says: run (the default), crash (exit 3 at once), exit-once-CODE
(exit CODE once, consuming the mode file; also read while running),
ignore-term (SIGTERM and SIGINT), child (start a
grandchild `sleep` first). Everything is driven through the real binary,
its control socket and signals.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flotilla_cluster import BIN, check, run  # noqa: E402

PY = "/usr/bin/python3"

WORKER = r'''
import json, os, signal, subprocess, sys, time
root = os.environ["T_ROOT"]
wid = os.environ["FLOTILLA_WORKER"]
rel = os.environ["FLOTILLA_RELEASE"]
mode_file = os.path.join(root, "mode")
try:
    mode = open(mode_file).read().strip()
except FileNotFoundError:
    mode = "run"
def on_hup(*a):
    open(os.path.join(root, "hup-%s" % wid), "w").close()
signal.signal(signal.SIGHUP, on_hup)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
rec = {"w": int(wid), "pid": os.getpid(), "release": rel, "cwd": os.getcwd(),
       "t": time.time(), "app": os.environ.get("FLOTILLA_APP")}
if mode == "child":
    rec["child"] = subprocess.Popen(["sleep", "300"]).pid
with open(os.path.join(root, "starts.log"), "a") as f:
    f.write(json.dumps(rec) + "\n")
print("worker %s release %s up" % (wid, rel), flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
if mode == "crash":
    sys.exit(3)
if mode.startswith("exit-once-"):
    os.unlink(mode_file)
    sys.exit(int(mode[len("exit-once-"):]))
if mode == "chatty":
    for i in range(3000):
        print("chatty line %05d %s" % (i, "x" * 40))
    sys.stdout.flush()
while True:
    time.sleep(0.05)
    try:
        mode = open(mode_file).read().strip()
    except FileNotFoundError:
        continue
    if mode.startswith("exit-once-"):
        os.unlink(mode_file)
        sys.exit(int(mode[len("exit-once-"):]))
'''


def wait_until(fn, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Sup:
    def __init__(self, workers=1, extra=(), mode=None, current="v1"):
        self.root = tempfile.mkdtemp(prefix="flotilla-sup-")
        for v in ("v1", "v2"):
            d = os.path.join(self.root, "releases", v)
            os.makedirs(d)
            with open(os.path.join(d, "worker.py"), "w") as f:
                f.write(WORKER)
        if current:
            os.symlink("releases/" + current, os.path.join(self.root, "current"))
        if mode:
            self.set_mode(mode)
        env = dict(os.environ, T_ROOT=self.root)
        self.err = os.path.join(self.root, "supervise.stderr")
        with open(self.err, "w") as err:
            self.p = subprocess.Popen(
                [BIN, "supervise", "--app", "web", "--root", self.root, "--workers",
                 str(workers)] + list(extra) + ["--", PY, "worker.py"],
                env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.sock = os.path.join(self.root, "supervise.sock")
        # The socket file appears at bind, before supervise listens: wait
        # until a connection is accepted.
        wait_until(lambda: self.accepts() or self.p.poll() is not None, what="control socket")
        if self.p.poll() is not None:
            with open(self.err) as f:
                raise AssertionError("supervise exited at start: " + f.read())

    def accepts(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def set_mode(self, mode):
        with open(os.path.join(self.root, "mode.tmp"), "w") as f:
            f.write(mode)
        os.rename(os.path.join(self.root, "mode.tmp"), os.path.join(self.root, "mode"))

    def clear_mode(self):
        try:
            os.unlink(os.path.join(self.root, "mode"))
        except FileNotFoundError:
            pass

    def ctl(self, cmd, timeout=30):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sock)
        f = s.makefile("rw")
        f.write(cmd + "\n")
        f.flush()
        line = f.readline()
        s.close()
        check(line.endswith("\n"), "no reply line to %r: %r" % (cmd, line))
        return json.loads(line)

    def status(self):
        st = self.ctl("status")
        check(st["ok"] is True, "status: %s" % st)
        return st

    def starts(self):
        try:
            with open(os.path.join(self.root, "starts.log")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def switch(self, version):
        tmp = os.path.join(self.root, "current.tmp")
        os.symlink("releases/" + version, tmp)
        os.rename(tmp, os.path.join(self.root, "current"))

    def log(self):
        with open(os.path.join(self.root, "logs", "web.log")) as f:
            return f.read()

    def running(self, n):
        """Wait until n workers run; return the status."""
        def ok():
            st = self.status()
            return st if all(w["state"] == "running" and w["pid"] > 0
                             for w in st["workers"]) and len(st["workers"]) == n else None
        return wait_until(ok, what="%d running workers" % n)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("supervise did not exit after signal %d" % sig)
        return rc

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for r in self.starts():  # no worker may outlive a test
            for pid in (r["pid"], r.get("child")):
                if pid and alive(pid):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def with_sup(**kw):
    def deco(fn):
        def wrapper():
            s = Sup(**kw)
            try:
                fn(s)
            finally:
                s.close()
        wrapper.__name__ = fn.__name__
        return wrapper
    return deco


@with_sup(workers=3)
def test_start_status_and_logs(s):
    st = s.running(3)
    check(st["app"] == "web" and st["current"] == "v1" and st["pid"] == s.p.pid, str(st))
    starts = wait_until(lambda: len(s.starts()) >= 3 and s.starts(), what="3 starts")
    by_pid = {r["pid"]: r for r in starts}
    for w in st["workers"]:
        r = by_pid.get(w["pid"])
        check(r is not None, "status pid %d never started" % w["pid"])
        check(r["w"] == w["worker"] and r["release"] == "v1" and w["release"] == "v1", str(r))
        check(os.path.realpath(r["cwd"]) == os.path.realpath(
            os.path.join(s.root, "releases", "v1")), "cwd %s" % r["cwd"])
        check(r["app"] == "web", str(r))
        check(w["restarts"] == 0, str(w))
    wait_until(lambda: "a line on stderr" in s.log(), what="log lines")
    log = s.log()
    for w in st["workers"]:
        check("[w%d %d] worker %d release v1 up" % (w["worker"], w["pid"], w["worker"]) in log,
              "stdout line of worker %d missing:\n%s" % (w["worker"], log))
        check("[w%d %d err] a line on stderr" % (w["worker"], w["pid"]) in log, log)
    check(s.ctl("frobnicate")["ok"] is False, "unknown command accepted")
    check(s.stop() == 0, "exit status")


@with_sup(workers=1, mode="crash",
          extra=("--backoff-min", "200ms", "--backoff-max", "1600ms", "--stable", "10s"))
def test_crash_restarts_with_backoff(s):
    wait_until(lambda: len(s.starts()) >= 5, timeout=15, what="5 crashing starts")
    st = s.status()
    w = st["workers"][0]
    check(w["last_exit"]["code"] == 3, str(w))
    t = [r["t"] for r in s.starts()]
    gaps = [b - a for a, b in zip(t, t[1:])][:4]
    # 200, 400, 800, 1600 ms (+ the start time of python)
    for i, g in enumerate(gaps):
        want = 0.2 * (2 ** i)
        check(want * 0.9 <= g <= want + 0.6, "gap %d is %.3fs, want about %.1fs (%s)"
              % (i, g, want, gaps))
    # stops crashing: runs again, the restarts were counted
    s.clear_mode()
    st = s.running(1)
    check(st["workers"][0]["restarts"] >= 4, str(st))
    check("restart in 400 ms" in s.log() and "restart in 1600 ms" in s.log(), s.log())
    check(s.stop() == 0, "exit status")


@with_sup(workers=1, mode="crash",
          extra=("--backoff-min", "200ms", "--backoff-max", "5s", "--stable", "1s"))
def test_backoff_resets_after_stable_run(s):
    wait_until(lambda: len(s.starts()) >= 4, timeout=10, what="4 crashing starts")
    s.clear_mode()  # the 5th start (after 1.6 s) stays up
    wait_until(lambda: len(s.starts()) >= 5, timeout=10, what="a start that stays up")
    n = len(s.starts())
    time.sleep(1.5)  # longer than --stable
    check(len(s.starts()) == n, "the worker did not stay up")
    t0 = time.time()
    s.set_mode("exit-once-3")  # crash again: the next delay is 200 ms, not 3.2 s
    wait_until(lambda: len(s.starts()) > n, timeout=10, what="restart after the crash")
    gap = s.starts()[n]["t"] - t0
    check(gap < 1.5, "restarted after %.2fs: the backoff did not start over" % gap)
    check(s.stop() == 0, "exit status")


@with_sup(workers=1, extra=("--reload-exit-code", "42", "--backoff-min", "3s"))
def test_reload_exit_code_restarts_at_once(s):
    s.running(1)
    n0 = len(wait_until(lambda: s.starts(), what="the first start"))
    t0 = time.time()
    s.set_mode("exit-once-42")  # the running worker exits 42 within 50 ms
    wait_until(lambda: len(s.starts()) >= n0 + 1, timeout=5, what="restart after exit 42")
    gap = s.starts()[n0]["t"] - t0
    check(gap < 1.0, "exit 42 restarted after %.2fs, not at once (backoff is 3s)" % gap)
    st = s.running(1)
    check(st["workers"][0]["last_exit"]["code"] == 42, str(st))
    check(st["workers"][0]["restarts"] == 1, str(st))
    # with --reload-exit-code 42, 75 is an ordinary exit: backoff (3 s)
    t0 = time.time()
    s.set_mode("exit-once-75")
    wait_until(lambda: s.status()["workers"][0]["state"] == "backoff", timeout=5,
               what="backoff after exit 75")
    wait_until(lambda: len(s.starts()) >= n0 + 2, timeout=8, what="restart after backoff")
    gap = s.starts()[n0 + 1]["t"] - t0
    check(gap >= 2.9, "exit 75 restarted after %.2fs, before the 3 s backoff" % gap)
    check(s.stop() == 0, "exit status")


@with_sup(workers=4, extra=("--ready", "200ms"))
def test_switch_and_reload(s):
    old = s.running(4)
    old_pids = [w["pid"] for w in old["workers"]]
    s.switch("v2")
    # nothing moves before the reload
    time.sleep(0.3)
    check([w["pid"] for w in s.status()["workers"]] == old_pids, "restarted without reload")
    t0 = time.time()
    r = s.ctl("reload")
    took = time.time() - t0
    check(r["ok"] is True and r["release"] == "v2" and r["workers"] == 4, str(r))
    check(took >= 4 * 0.2 * 0.9, "reload replied before the workers were back (%.2fs)" % took)
    st = s.status()
    for w in st["workers"]:
        check(w["release"] == "v2" and w["state"] == "running", str(w))
        check(w["pid"] not in old_pids, "worker %d kept its pid" % w["worker"])
        check(alive(w["pid"]), "worker %d is not running" % w["worker"])
    for pid in old_pids:
        check(not alive(pid), "old worker %d still runs" % pid)
    pids = [w["pid"] for w in st["workers"]]
    news = wait_until(lambda: (lambda d: d if all(p in d for p in pids) else None)(
        {r["pid"]: r for r in s.starts()}), what="the new workers' start records")
    for w in st["workers"]:
        check(news[w["pid"]]["release"] == "v2", str(news[w["pid"]]))
        check(os.path.realpath(news[w["pid"]]["cwd"]) == os.path.realpath(
            os.path.join(s.root, "releases", "v2")), "cwd not the new release")
    # two reloads at once: both answered
    socks = []
    for _ in range(2):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(30)
        c.connect(s.sock)
        c.sendall(b"reload\n")
        socks.append(c)
    for c in socks:
        reply = json.loads(c.makefile().readline())
        check(reply["ok"] is True, str(reply))
        c.close()
    check(s.stop() == 0, "exit status")


@with_sup(workers=2, mode="child")
def test_sigterm_stops_everything(s):
    st = s.running(2)
    starts = wait_until(lambda: len(s.starts()) >= 2 and s.starts(), what="starts")
    pids = [w["pid"] for w in st["workers"]] + [r["child"] for r in starts]
    check(all(alive(p) for p in pids), "not all alive")
    check(s.stop(signal.SIGTERM) == 0, "supervise exit status after SIGTERM")
    # A worker's child got the SIGTERM with its group; it may still be on its
    # way out, reparented, when supervise returns: give it a moment.
    for p in pids:
        end = time.time() + 5
        while alive(p) and time.time() < end:
            time.sleep(0.05)
        check(not alive(p), "process %d survived supervise" % p)
    check(not os.path.exists(s.sock), "control socket left behind")
    check("all workers stopped" in s.log(), s.log())


@with_sup(workers=1, mode="ignore-term", extra=("--stop-grace", "1s"))
def test_stop_grace_kills(s):
    st = s.running(1)
    wait_until(lambda: s.starts(), what="the worker's handlers")
    pid = st["workers"][0]["pid"]
    t0 = time.time()
    check(s.stop(signal.SIGINT) == 0, "exit status")
    took = time.time() - t0
    check(0.9 <= took <= 5, "stopped after %.2fs, want about 1s" % took)
    check(not alive(pid), "worker survived SIGKILL")


@with_sup(workers=2)
def test_sighup_forwarded(s):
    st = s.running(2)
    wait_until(lambda: len(s.starts()) >= 2, what="the workers' handlers")
    s.p.send_signal(signal.SIGHUP)
    for w in st["workers"]:
        wait_until(lambda w=w: os.path.exists(os.path.join(s.root, "hup-%d" % w["worker"])),
                   what="SIGHUP at worker %d" % w["worker"])
    time.sleep(0.2)
    check([w["pid"] for w in s.status()["workers"]] == [w["pid"] for w in st["workers"]],
          "SIGHUP restarted workers")
    check(s.stop() == 0, "exit status")


@with_sup(workers=1, current=None, extra=("--backoff-min", "100ms", "--backoff-max", "200ms"))
def test_no_current_release_yet(s):
    st = wait_until(lambda: s.status()["workers"][0]["state"] == "backoff" and s.status(),
                    what="backoff without a release")
    check(st["current"] == "", str(st))
    s.switch("v1")
    st = s.running(1)
    check(st["workers"][0]["release"] == "v1", str(st))
    check("no current release" in s.log(), s.log())
    check(s.stop() == 0, "exit status")


@with_sup(workers=1, mode="chatty", extra=("--log-max", "20000", "--log-keep", "2"))
def test_log_rotation(s):
    s.running(1)
    logs = os.path.join(s.root, "logs")
    wait_until(lambda: os.path.exists(os.path.join(logs, "web.log.2")), what="rotation")
    time.sleep(0.5)
    names = sorted(os.listdir(logs))
    check(names == ["web.log", "web.log.1", "web.log.2"], str(names))
    for n in names:
        size = os.path.getsize(os.path.join(logs, n))
        check(size <= 20000 + 4200, "%s is %d bytes" % (n, size))
    with open(os.path.join(logs, "web.log.1")) as f:
        check("chatty line" in f.read(), "rotated file lost the lines")
    check(s.stop() == 0, "exit status")


def test_bad_arguments():
    root = tempfile.mkdtemp(prefix="flotilla-sup-")
    cases = [
        (["--root", root, "--", "true"], "--app"),
        (["--app", "web", "--", "true"], "--root"),
        (["--app", "web", "--root", root], "command"),
        (["--app", "web", "--root", root, "--"], "command"),
        (["--app", "web", "--root", root, "--workers", "0", "--", "true"], "--workers"),
        (["--app", "web", "--root", root, "--workers", "x", "--", "true"], "--workers"),
        (["--app", "web", "--root", root, "--reload-exit-code", "300", "--", "true"],
         "--reload-exit-code"),
        (["--app", "../web", "--root", root, "--", "true"], "app name"),
        (["--app", "web", "--root", root, "--ready", "soon", "--", "true"], "--ready"),
        (["--app", "web", "--root", root, "--bogus", "--", "true"], "--bogus"),
    ]
    try:
        for args, want in cases:
            p = subprocess.run([BIN, "supervise"] + args, capture_output=True, text=True,
                               timeout=10)
            check(p.returncode == 2, "%s: exit %d, want 2 (%s)" % (args, p.returncode, p.stderr))
            check(want in p.stderr, "%s: %r not in %r" % (args, want, p.stderr))
        check(not os.listdir(root), "bad arguments left files: %s" % os.listdir(root))
        # a live supervise owns its socket: a second one is refused (exit 1)
        s = Sup(workers=1)
        try:
            p = subprocess.run([BIN, "supervise", "--app", "web", "--root", s.root, "--", "true"],
                               capture_output=True, text=True, timeout=10)
            check(p.returncode == 1 and "another supervise" in p.stderr,
                  "second supervise: %d %s" % (p.returncode, p.stderr))
            check(s.status()["ok"], "first supervise hurt")
        finally:
            s.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run([test_bad_arguments,
         test_start_status_and_logs,
         test_crash_restarts_with_backoff,
         test_backoff_resets_after_stable_run,
         test_reload_exit_code_restarts_at_once,
         test_switch_and_reload,
         test_sigterm_stops_everything,
         test_stop_grace_kills,
         test_sighup_forwarded,
         test_no_current_release_yet,
         test_log_rotation])
