"""One target's deploy on real servers and real supervised processes
(deploy/target.c, `flotilla deploy-target`; docs/DEPLOY.md "One target").

Three targets, each an application root with `flotilla supervise` running two
workers. v1 is fetched whole; v2, with 1% of its bytes changed, by a librsync
delta against v1 (bytes over the link printed, at most 5% of the package),
its hash verified, and the workers reloaded onto it; v3, whose health check
fails, is rolled back to v2 automatically. A corrupted chunk, a truncated
blob, a package whose bytes do not match its hash, a tarball with `../` and
one with an escaping link: each refused with a clear error while v2 keeps
running. With --events the same runs speak JSON lines, as the agent's deploy
executor reads them."""
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tarfile
import time

from flotilla_cluster import BIN, Cluster, check, run

PY = "/usr/bin/python3"

APP = r'''
import os, signal, sys, time
root = os.environ["FLOTILLA_ROOT_DIR"]
rel = os.environ["FLOTILLA_RELEASE"]
w = os.environ["FLOTILLA_WORKER"]
with open(os.path.join(root, "seen-w%s" % w), "a") as f:
    f.write("%s %d\n" % (rel, os.getpid()))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(1)
'''


def make_tar(path, files, links=()):
    """An uncompressed tar (what deltas work on: gzip would spread a 1%
    change over everything after it)."""
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            info.mtime = 1700000000
            t.addfile(info)


def cli(c, *args, ok=True, timeout=180):
    env = c.tls_env(env=dict(os.environ, FLOTILLA_ADDR=c.servers[c.leader()].api))
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout)
    if ok:
        check(r.returncode == 0, "%s: rc %d\n%s%s" % (args, r.returncode, r.stdout, r.stderr))
    return r


class Target:
    def __init__(self, c, name):
        self.c = c
        self.name = name
        self.root = os.path.join(c.dir, "target-" + name)
        os.makedirs(self.root)
        self.sup = None

    def start_supervise(self):
        env = dict(os.environ, FLOTILLA_ROOT_DIR=self.root)
        self.err = open(os.path.join(self.c.dir, "supervise-%s.err" % self.name), "w")
        self.sup = subprocess.Popen(
            [BIN, "supervise", "--app", "web", "--root", self.root, "--workers", "2",
             "--ready", "300ms", "--backoff-min", "100ms", "--", PY, "app.py"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err)
        sock = os.path.join(self.root, "supervise.sock")
        end = time.time() + 10
        while not os.path.exists(sock) and time.time() < end:
            time.sleep(0.05)
        check(os.path.exists(sock), "supervise of %s is up" % self.name)

    def ctl(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(os.path.join(self.root, "supervise.sock"))
        f = s.makefile("rw")
        f.write(cmd + "\n")
        f.flush()
        line = f.readline()
        s.close()
        return json.loads(line)

    def releases_running(self):
        st = self.ctl("status")
        return sorted((w["release"], w["state"]) for w in st["workers"])

    def wait_running(self, release, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            got = self.releases_running()
            if got == [(release, "running")] * 2:
                return
            time.sleep(0.1)
        raise AssertionError("%s: workers not both running %s: %r" % (self.name, release, got))

    def current(self):
        try:
            return os.readlink(os.path.join(self.root, "current"))
        except FileNotFoundError:
            return None

    def deploy(self, ref, *extra, expect_rc=0):
        servers = self.c.servers.values()
        sources = ",".join(s.blob for s in servers)
        r = cli(self.c, "deploy-target", ref, "--app", "web", "--root", self.root, "--from",
                sources, "--name", self.name, "--json", "--health-timeout", "3s", *extra,
                ok=False)
        check(r.returncode == expect_rc, "%s on %s: rc %d (want %d)\n%s%s"
              % (ref, self.name, r.returncode, expect_rc, r.stdout, r.stderr))
        return json.loads(r.stdout.strip().splitlines()[-1])

    def deploy_by_hash(self, ref, expect_rc=0):
        """As an agent does: the package's hash and size given, everything
        else over the blob link; no API address that works, no token."""
        meta = json.loads(cli(self.c, "package", "show", ref).stdout)
        env = self.c.tls_env(env=dict(os.environ, FLOTILLA_ADDR="127.0.0.1:1"))
        env.pop("FLOTILLA_TOKEN", None)
        sources = ",".join(s.blob for s in self.c.servers.values())
        r = subprocess.run([BIN, "deploy-target", ref, "--app", "web", "--root", self.root,
                            "--from", sources, "--hash", meta["hash"], "--size",
                            str(meta["size"]), "--name", self.name, "--json"] + HEALTH,
                           capture_output=True, text=True, env=env, timeout=180)
        check(r.returncode == expect_rc, "%s by hash on %s: rc %d (want %d)\n%s%s"
              % (ref, self.name, r.returncode, expect_rc, r.stdout, r.stderr))
        return r

    def close(self):
        if self.sup is not None and self.sup.poll() is None:
            self.sup.send_signal(signal.SIGTERM)
            try:
                self.sup.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.sup.kill()
        if self.sup is not None:
            self.err.close()


HEALTH = ["--health", "test -f healthy && test -f \"$FLOTILLA_RELEASE_DIR/app.py\""]


def step(rep, name):
    for s in rep["steps"]:
        if s["step"] == name:
            return s
    return None


def test_deploy_pipeline():
    c = Cluster(3, name="deploy").start()
    targets = []
    try:
        rnd = random.Random(66)
        assets = bytearray(rnd.randbytes(4 * 1024 * 1024))
        files = {"app.py": APP.encode(), "healthy": b"", "assets.bin": bytes(assets)}
        pkgs = os.path.join(c.dir, "pkgs")
        os.makedirs(pkgs)

        def push(ver, fs, links=()):
            p = os.path.join(pkgs, "web-%s.tar" % ver)
            make_tar(p, fs, links)
            cli(c, "package", "push", p, "--name", "web", "--version", ver)
            return p

        v1 = push("1", files)
        targets = [Target(c, "t%d" % i) for i in range(3)]
        for t in targets:
            t.start_supervise()

        # v1: nothing cached, so whole; the workers start on it.
        for t in targets:
            rep = t.deploy("web@1", *HEALTH)
            check(rep["result"] == "deployed" and rep["acquire"]["method"] == "whole",
                  "v1 deployed whole on %s: %r" % (t.name, rep))
            check([s["step"] for s in rep["steps"]] ==
                  ["prepare", "acquire", "unpack", "switch", "reload", "health", "prune"],
                  "the steps, in order: %r" % [s["step"] for s in rep["steps"]])
            check(all(s["status"] == "ok" for s in rep["steps"]), "all ok: %r" % rep["steps"])
            t.wait_running("1")

        # v2: 1% of the bytes changed, in 8 places.
        n = len(assets) // 100 // 8
        for _ in range(8):
            at = rnd.randrange(0, len(assets) - n)
            assets[at:at + n] = rnd.randbytes(n)
        files2 = dict(files, **{"assets.bin": bytes(assets)})
        v2 = push("2", files2)
        size2 = os.path.getsize(v2)
        for t in targets:
            rep = t.deploy("web@2", *HEALTH)
            a = rep["acquire"]
            moved = a["signature_bytes"] + a["delta_bytes"]
            print("%s: v2 by %s: signature %d B up + delta %d B down = %d B, %.2f%% of %d B; "
                  "deploy %d ms" % (t.name, a["method"], a["signature_bytes"], a["delta_bytes"],
                                    moved, 100.0 * moved / size2, size2, rep["ms"]), flush=True)
            check(rep["result"] == "deployed" and a["method"] == "delta", "v2 by delta: %r" % rep)
            check(moved <= 0.05 * size2, "v2 bytes over the link at most 5%%: %d of %d"
                  % (moved, size2))
            check(rep["previous"] == "1" and rep["current"] == "2", "1 -> 2: %r" % rep)
            t.wait_running("2")
            with open(os.path.join(t.root, "releases", "2", "assets.bin"), "rb") as f:
                check(f.read() == bytes(assets), "the release holds v2's bytes")
            # Every worker was restarted onto v2 by the reload.
            for w in (0, 1):
                with open(os.path.join(t.root, "seen-w%d" % w)) as f:
                    seen = [ln.split()[0] for ln in f]
                check(seen[-1] == "2" and "1" in seen, "worker %d went 1 -> 2: %r" % (w, seen))

        # v3 fails its health check: rolled back to v2, workers back on v2.
        files3 = dict(files2)
        del files3["healthy"]
        push("3", files3)
        for t in targets:
            rep = t.deploy("web@3", *HEALTH, expect_rc=3)
            check(rep["result"] == "rolled_back" and rep["current"] == "2",
                  "v3 rolled back to v2: %r" % rep)
            h = step(rep, "health")
            check(h and h["status"] == "failed", "the health step failed: %r" % h)
            check(step(rep, "rollback")["status"] == "ok" and
                  step(rep, "reload-back")["status"] == "ok", "rollback and reload: %r"
                  % rep["steps"])
            check(t.current() == "releases/2", "current is v2 again: %r" % t.current())
            t.wait_running("2")

        # By hash and size alone (what an agent has).
        r = targets[1].deploy_by_hash("web@2")
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        check(rep["result"] == "deployed" and rep["current"] == "2", "by hash: %r" % rep)
        # A second target: the chunk list is served from the server's cache,
        # the package is not hashed again.
        r = targets[2].deploy_by_hash("web@2")
        check(json.loads(r.stdout.strip().splitlines()[-1])["result"] == "deployed",
              "by hash on a second target")
        bl = [s.status()["blob_links"] for s in c.servers.values()]
        check(sum(b["chunk_lists"] for b in bl) == 2 and
              sum(b["chunk_lists_hashed"] for b in bl) == 1,
              "two chunk lists answered, one hash of the package: %r"
              % [(b["chunk_lists"], b["chunk_lists_hashed"]) for b in bl])

        t = targets[0]

        # --health-http: a 2xx is healthy, anything else is not (then rollback).
        import http.server
        import threading

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/ok" else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        hs = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=hs.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d" % hs.server_address[1]
        try:
            rep = t.deploy("web@2", "--health-http", url + "/ok")
            check(rep["result"] == "deployed" and step(rep, "health")["status"] == "ok" and
                  "HTTP 200" in step(rep, "health")["detail"], "HTTP health ok: %r" % rep["steps"])
            rep = t.deploy("web@3", "--health-http", url + "/bad", expect_rc=3)
            check(rep["result"] == "rolled_back" and "HTTP 503" in step(rep, "health")["detail"],
                  "HTTP 503 is unhealthy: %r" % rep["steps"])
            t.wait_running("2")
        finally:
            hs.shutdown()

        # A cached package whose bytes no longer match its hash is not used:
        # it is fetched again and verified.
        cached = os.path.join(t.root, ".packages", "web@2")
        check(os.path.exists(cached), "v2 is cached for the next delta")
        with open(cached, "r+b") as f:
            f.seek(10)
            f.write(b"XXXX")
        rep = t.deploy("web@2", *HEALTH)
        check(rep["result"] == "deployed" and rep["acquire"]["method"] in ("whole", "delta"),
              "a damaged cache is fetched again: %r" % rep)
        with open(cached, "rb") as f:
            check(f.read() == open(v2, "rb").read(), "the cache holds v2 again")

        def refused(ref, want_step, want_text):
            seen_before = {w: open(os.path.join(t.root, "seen-w%d" % w)).read() for w in (0, 1)}
            rep = t.deploy(ref, *HEALTH, expect_rc=1)
            s = step(rep, want_step)
            check(rep["result"] == "refused" and s and s["status"] == "failed" and
                  want_text in s["detail"], "%s refused at %s with %r: %r"
                  % (ref, want_step, want_text, rep["steps"]))
            check(t.current() == "releases/2", "current still v2")
            t.wait_running("2")
            for w in (0, 1):
                check(open(os.path.join(t.root, "seen-w%d" % w)).read() == seen_before[w],
                      "worker %d was not restarted" % w)
            check(not os.path.exists(os.path.join(t.root, "releases", ref.split("@")[1])),
                  "no release directory left for %s" % ref)
            return rep

        # A failing pre-deploy hook stops before the switch; hooks see their
        # environment and run in the new release.
        seen_before = open(os.path.join(t.root, "seen-w0")).read()
        rep = t.deploy("web@3", "--pre-hook", "test \"$FLOTILLA_RELEASE\" = 3 && test -f app.py "
                       "&& exit 7", expect_rc=1)
        check(rep["result"] == "refused" and step(rep, "pre-hook")["detail"] == "exit 7" and
              step(rep, "switch") is None, "pre-hook failure refuses: %r" % rep["steps"])
        check(t.current() == "releases/2" and
              open(os.path.join(t.root, "seen-w0")).read() == seen_before, "v2 untouched")
        marker = os.path.join(c.dir, "post-hook-ran")
        rep = t.deploy("web@2", "--post-hook", "echo \"$FLOTILLA_RELEASE $FLOTILLA_CURRENT_RELEASE $PWD\" > " + marker)
        check(rep["result"] == "deployed" and open(marker).read().split()[:2] == ["2", "2"] and
              open(marker).read().split()[2].endswith("/releases/2"),
              "the post-hook ran with its environment: %r" % rep["steps"])

        # Unsafe tarballs.
        push("4", dict(files2, **{"../evil": b"x"}))
        refused("web@4", "unpack", "..")
        push("5", files2, links=[("lib", "../../etc")])
        refused("web@5", "unpack", "lib")

        # A corrupted chunk and a truncated blob on every server.
        def damage(ver, how):
            r = cli(c, "package", "show", "web@" + ver)
            h = json.loads(r.stdout)["hash"]
            paths = [os.path.join(s.data, "blobs", h) for s in c.servers.values()]
            # The servers replicate it in the background; a fetch that failed
            # (a source not ready yet on a loaded machine) is retried after
            # 2, 4, 8, 16 and then 30 s.
            end = time.time() + 90
            while not all(os.path.exists(p) for p in paths) and time.time() < end:
                time.sleep(0.1)
            check(all(os.path.exists(p) for p in paths),
                  "every server holds web@%s: missing %r"
                  % (ver, [p for p in paths if not os.path.exists(p)]))
            for p in paths:
                if how == "corrupt":
                    with open(p, "r+b") as f:
                        f.seek(1000)
                        b = f.read(1)
                        f.seek(1000)
                        f.write(bytes([b[0] ^ 0xFF]))
                else:
                    with open(p, "r+b") as f:
                        f.truncate(os.path.getsize(p) // 2)
            return h

        files6 = dict(files2, **{"extra.txt": b"six"})
        push("6", files6)
        damage("6", "corrupt")
        refused("web@6", "acquire", "corrupt")
        r = t.deploy_by_hash("web@6", expect_rc=1)
        check("damaged" in r.stderr, "every server says its copy is damaged: %r" % r.stderr)
        files7 = dict(files2, **{"extra.txt": b"seven"})
        push("7", files7)
        damage("7", "truncate")
        refused("web@7", "acquire", "")

        # Bad input changes nothing.
        r = cli(c, "deploy-target", "web@2", "--app", "web", "--root", t.root, "--from",
                "x", "--health", "true", "--health-http", "http://x/", ok=False)
        check(r.returncode == 2 and "exclude" in r.stderr, "both health kinds: %r" % r.stderr)
        r = cli(c, "deploy-target", "web@nope", "--app", "web", "--root", t.root, "--from",
                c.servers[1].blob, ok=False)
        check(r.returncode == 1 and "not found" in r.stderr, "unknown version: %r" % r.stderr)
        check(t.current() == "releases/2", "current still v2 after bad input")
        del v1
    finally:
        for t in targets:
            t.close()
        c.close()


def events_deploy(t, ref, *extra, expect_rc=0, hash_=None, size=None):
    """`deploy-target --events` by hash, as the agent's deploy executor runs
    it. Every stdout line is JSON: for each step a begin then its end, in
    order, then the report, under 3,500 bytes (the server keeps a unit's last
    4,096 bytes of output). Returns (report, step events, the process)."""
    if hash_ is None:
        meta = json.loads(cli(t.c, "package", "show", ref).stdout)
        hash_, size = meta["hash"], meta["size"]
    env = t.c.tls_env(env=dict(os.environ, FLOTILLA_ADDR="127.0.0.1:1"))
    env.pop("FLOTILLA_TOKEN", None)
    sources = ",".join(s.blob for s in t.c.servers.values())
    r = subprocess.run([BIN, "deploy-target", ref, "--app", "web", "--root", t.root, "--from",
                        sources, "--hash", hash_, "--size", str(size), "--name", t.name,
                        "--events", "--health-timeout", "3s"] + list(extra),
                       capture_output=True, text=True, env=env, timeout=180)
    check(r.returncode == expect_rc, "%s --events: rc %d (want %d)\n%s%s"
          % (ref, r.returncode, expect_rc, r.stdout, r.stderr))
    lines = r.stdout.splitlines()
    check(len(lines) >= 3 and r.stdout.endswith("\n"), "events: %r" % r.stdout)
    events = []
    for ln in lines:
        try:
            events.append(json.loads(ln))
        except ValueError:
            raise AssertionError("not a JSON line: %r\n%s" % (ln, r.stdout))
    began, steps = None, []
    for ev in events[:-1]:
        if ev["event"] == "begin":
            check(began is None, "%s begins while %s runs" % (ev["step"], began))
            began = ev["step"]
        else:
            check(ev["event"] == "step" and ev["step"] == began,
                  "%r ends the step begun (%s)" % (ev, began))
            check(ev["status"] in ("ok", "failed", "skipped") and isinstance(ev["ms"], int) and
                  isinstance(ev["detail"], str), "a step event: %r" % ev)
            steps.append(ev)
            began = None
    check(began is None, "%s never ended" % began)
    rep = events[-1]
    check(rep["event"] == "report", "the last line is the report: %r" % rep)
    check(len(lines[-1].encode()) + 1 < 3500, "the report line is %d bytes"
          % len(lines[-1].encode()))
    check([(s["step"], s["status"], s["detail"]) for s in rep["steps"]] ==
          [(s["step"], s["status"], s["detail"]) for s in steps],
          "the report has the steps as they came: %r\n%r" % (rep["steps"], steps))
    for k in ("app", "version", "result", "previous", "current", "ms", "acquire"):
        check(k in rep, "the report has %s: %r" % (k, rep))
    return rep, steps, r


def test_deploy_target_events():
    c = Cluster(1, name="deploy-events").start()
    t = None
    try:
        pkgs = os.path.join(c.dir, "pkgs")
        os.makedirs(pkgs)
        files = {"app.py": APP.encode(), "healthy": b""}
        for ver, fs in (("1", files), ("2", {"app.py": APP.encode()})):
            p = os.path.join(pkgs, "web-%s.tar" % ver)
            make_tar(p, fs)
            cli(c, "package", "push", p, "--name", "web", "--version", ver)
        t = Target(c, "ev")
        t.start_supervise()

        # Deployed; what a hook prints goes to stderr, never between the lines.
        rep, steps, r = events_deploy(t, "web@1", "--pre-hook", "echo hook-out; echo hook-err >&2",
                                      *HEALTH)
        check(rep["result"] == "deployed" and rep["current"] == "1" and rep["version"] == "1" and
              rep["app"] == "web" and rep["acquire"]["method"] == "whole", "v1: %r" % rep)
        check([s["step"] for s in steps] ==
              ["prepare", "acquire", "unpack", "pre-hook", "switch", "reload", "health", "prune"],
              "the steps, in order: %r" % [s["step"] for s in steps])
        check(all(s["status"] == "ok" for s in steps), "all ok: %r" % steps)
        check("hook-out" in r.stderr and "hook-err" in r.stderr and "hook-out" not in r.stdout,
              "hook output on stderr: %r / %r" % (r.stdout, r.stderr))
        t.wait_running("1")

        # v2 fails its health check: rolled back, exit 3.
        rep, steps, r = events_deploy(t, "web@2", *HEALTH, expect_rc=3)
        check(rep["result"] == "rolled_back" and rep["previous"] == "1" and
              rep["current"] == "1", "v2 rolled back: %r" % rep)
        got = {s["step"]: s["status"] for s in steps}
        check(got.get("health") == "failed" and got.get("rollback") == "ok" and
              got.get("reload-back") == "ok", "health failed, rolled back: %r" % steps)
        check(t.current() == "releases/1", "current is v1 again: %r" % t.current())
        t.wait_running("1")

        # SIGTERM (how the agent cancels the unit) during the health check:
        # the lines arrive as the steps go (flushed each), and the deploy
        # stops at the next check and puts v1 back.
        meta = json.loads(cli(c, "package", "show", "web@2").stdout)
        env = c.tls_env()
        p = subprocess.Popen([BIN, "deploy-target", "web@2", "--app", "web", "--root", t.root,
                              "--from", c.servers[1].blob, "--hash", meta["hash"], "--size",
                              str(meta["size"]), "--events", "--health", "false",
                              "--health-timeout", "60s"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        seen = []
        t0 = time.time()
        for ln in p.stdout:
            seen.append(json.loads(ln))
            if seen[-1] == {"event": "begin", "step": "health"}:
                time.sleep(1)
                p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
        p.stderr.close()
        check(time.time() - t0 < 30, "stopped long before the health timeout")
        rep = seen[-1]
        check(rc == 3 and rep["event"] == "report" and rep["result"] == "rolled_back" and
              rep["current"] == "1", "cancelled during health, rolled back: rc %d %r" % (rc, rep))
        got = [(s["step"], s["status"]) for s in rep["steps"]]
        check(("health", "failed") in got and ("rollback", "ok") in got and
              ("reload-back", "ok") in got, "health stopped, rollback: %r" % got)
        check("cancelled" in [s for s in rep["steps"] if s["step"] == "health"][0]["detail"],
              "the health step says it was cancelled: %r" % rep["steps"])
        check(t.current() == "releases/1", "current is v1 after the cancel")
        t.wait_running("1")

        # A package no server has: refused at acquire, still a report.
        rep, steps, r = events_deploy(t, "web@9", hash_="ab" * 32, size=1000, expect_rc=1)
        check(rep["result"] == "refused" and [s["step"] for s in steps] == ["acquire"] and
              steps[0]["status"] == "failed" and steps[0]["detail"],
              "an unknown blob is refused at acquire: %r" % rep)
        check(t.current() == "releases/1", "current still v1")

        r = subprocess.run([BIN, "deploy-target", "web@1", "--app", "web", "--root", t.root,
                            "--from", c.servers[1].blob, "--json", "--events"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and "exclude" in r.stderr, "--json with --events: %r" % r.stderr)
    finally:
        if t is not None:
            t.close()
        c.close()


if __name__ == "__main__":
    run([test_deploy_pipeline, test_deploy_target_events])
