"""Cluster-wide rollouts through the real binary (`flotilla deploy`,
node/api_deploys.c, the agents' deploy executor; docs/DEPLOY.md "Rollouts").

Three servers; three agents labelled role=web, each with `flotilla supervise`
running two workers of the app from its own application root, and one agent
labelled role=db that must never be touched. v1 goes out one target at a
time; v2, with 1% of its bytes changed, goes out by librsync deltas (bytes
over the link printed, at most 5% per target), hashes verified, workers
reloaded onto it; v3, whose health check fails, is rolled back on the first
target and the rollout stops there (the others are cancelled and keep v2);
`deploy rollback web --to 1` takes every target back to v1. Bad input is
refused and creates nothing."""
import json
import os
import random
import signal
import subprocess
import time

from flotilla_cluster import Agent, Cluster, check, request, run, wait_connected
from test_deploy import APP, HEALTH, Target, cli, make_tar

WEB = ["web-a", "web-b", "web-c"]


class AppTarget(Target):
    """The application root an agent deploys into: --apps DIR gives DIR/web."""

    def __init__(self, c, name, apps):
        self.c = c
        self.name = name
        self.root = os.path.join(apps, "web")
        os.makedirs(self.root)
        self.sup = None


def count_tasks(c):
    st, body, _ = request(c.servers[c.leader()].api, "GET", "/v1/tasks")
    check(st == 200, "list tasks: %s" % st)
    return len(body["tasks"])


def rollout(c, rid):
    st, body, raw = request(c.servers[c.leader()].api, "GET", "/v1/deploys/" + rid)
    check(st == 200, "GET /v1/deploys/%s: %s %r" % (rid, st, raw[:300]))
    return body


def by_node(d):
    return {t["node"]: t for t in d["target_list"]}


def step(t, name):
    for s in t.get("steps", []):
        if s["step"] == name:
            return s
    return None


def test_rollout():
    c = Cluster(3, name="rollout").start()
    agents, targets = [], []
    try:
        apps = {}
        for name in WEB + ["db-a"]:
            apps[name] = os.path.join(c.dir, "apps-" + name)
            os.makedirs(apps[name])
            role = "role=db" if name.startswith("db") else "role=web"
            agents.append(Agent(c, name, cap=2, labels=[role],
                                extra=["--apps", apps[name]]).start())
        wait_connected(c, WEB + ["db-a"])
        targets = [AppTarget(c, n, apps[n]) for n in WEB]
        for t in targets:
            t.start_supervise()

        rnd = random.Random(67)
        assets = bytearray(rnd.randbytes(4 * 1024 * 1024))
        files = {"app.py": APP.encode(), "healthy": b"", "assets.bin": bytes(assets)}
        pkgs = os.path.join(c.dir, "pkgs")
        os.makedirs(pkgs)

        def push(ver, fs):
            p = os.path.join(pkgs, "web-%s.tar" % ver)
            make_tar(p, fs)
            cli(c, "package", "push", p, "--name", "web", "--version", ver)
            return p

        push("1", files)

        # v1, one target at a time: whole downloads, workers start on v1.
        r = cli(c, "deploy", "web@1", "--to", "label:role=web", "--max-parallel", "1",
                "--health", HEALTH[1], "--health-timeout", "5s", "--wait")
        check("rollout " in r.stdout and "deployed" in r.stdout, "v1 out: %s" % r.stdout)
        rid1 = r.stdout.split()[1]
        d = rollout(c, rid1)
        check(d["state"] == "deployed" and d["targets"] == 3 and d["max_parallel"] == 1,
              "v1 rollout: %r" % {k: d[k] for k in ("state", "targets", "max_parallel")})
        check(sorted(by_node(d)) == WEB, "exactly the role=web nodes: %r" % sorted(by_node(d)))
        spans = sorted((t["started_ms"], t["finished_ms"]) for t in d["target_list"])
        for a, b in zip(spans, spans[1:]):
            check(a[1] <= b[0], "one target at a time: %r" % spans)
        for t in targets:
            tj = by_node(d)[t.name]
            check(tj["result"] == "deployed" and tj["acquire"]["method"] == "whole",
                  "%s got v1 whole: %r" % (t.name, tj))
            check([s["step"] for s in tj["steps"]] ==
                  ["prepare", "acquire", "unpack", "switch", "reload", "health", "prune"],
                  "%s's steps: %r" % (t.name, tj["steps"]))
            t.wait_running("1")
        check(os.listdir(apps["db-a"]) == [], "the role=db node got nothing")

        # v2: 1% changed in 8 places; two at a time (window 50% of 3, rounded up).
        n = len(assets) // 100 // 8
        for _ in range(8):
            at = rnd.randrange(0, len(assets) - n)
            assets[at:at + n] = rnd.randbytes(n)
        files2 = dict(files, **{"assets.bin": bytes(assets)})
        size2 = os.path.getsize(push("2", files2))
        r = cli(c, "deploy", "web@2", "--to", "label:role=web", "--window", "50%",
                "--health", HEALTH[1], "--wait", "--json")
        d = json.loads(r.stdout[r.stdout.index("{"):])
        check(d["state"] == "deployed" and d["max_parallel"] == 2, "v2 rollout: %r"
              % {k: d[k] for k in ("state", "max_parallel")})
        for t in targets:
            tj = by_node(d)[t.name]
            a = tj["acquire"]
            moved = a["signature_bytes"] + a["delta_bytes"]
            print("%s: v2 by %s: signature %d B + delta %d B = %.2f%% of %d B; target took %d ms"
                  % (t.name, a["method"], a["signature_bytes"], a["delta_bytes"],
                     100.0 * moved / size2, size2, tj["ms"]), flush=True)
            check(a["method"] == "delta" and moved <= 0.05 * size2,
                  "%s: v2 by delta, at most 5%%: %r" % (t.name, a))
            t.wait_running("2")
            with open(os.path.join(t.root, "releases", "2", "assets.bin"), "rb") as f:
                check(f.read() == bytes(assets), "%s holds v2's bytes" % t.name)
            for w in (0, 1):
                with open(os.path.join(t.root, "seen-w%d" % w)) as f:
                    seen = [ln.split()[0] for ln in f]
                check(seen[-1] == "2" and "1" in seen, "worker %d went 1 -> 2: %r" % (w, seen))

        # deploy status: the progress bar and every target's steps.
        r = cli(c, "deploy", "status", d["id"])
        check("[##############################] 3/3" in r.stdout, "a full bar: %s" % r.stdout)
        for name in WEB:
            check(any(ln.split()[:3] == [name, "deployed", "deployed"]
                      for ln in r.stdout.splitlines()), "%s deployed in %s" % (name, r.stdout))
        check(r.stdout.count("acquire ok") == 3 and r.stdout.count("health ok") == 3,
              "steps per target: %s" % r.stdout)

        # v3 fails its health check: the first target rolls back to v2 and
        # the rollout stops (max failures 0), the others never start.
        files3 = dict(files2)
        del files3["healthy"]
        push("3", files3)
        r = cli(c, "deploy", "web@3", "--to", "label:role=web", "--max-parallel", "1",
                "--health", HEALTH[1], "--health-timeout", "2s", "--wait", ok=False)
        check(r.returncode == 1 and "STOPPED" in r.stdout, "v3 stops: rc %d %s%s"
              % (r.returncode, r.stdout, r.stderr))
        rid3 = r.stdout.split()[1]
        d = rollout(c, rid3)
        states = sorted(t["state"] for t in d["target_list"])
        check(d["state"] == "failed" and d["stopped"] and states ==
              ["cancelled", "cancelled", "failed"], "one failed, two cancelled: %s %r"
              % (d["state"], states))
        bad = [t for t in d["target_list"] if t["state"] == "failed"][0]
        check(bad["result"] == "rolled_back" and bad["exit_code"] == 3 and
              step(bad, "health")["status"] == "failed" and
              step(bad, "rollback")["status"] == "ok", "rolled back: %r" % bad)
        for t in targets:
            check(t.current() == "releases/2", "%s still on v2: %r" % (t.name, t.current()))
            t.wait_running("2")
            check(not os.path.exists(os.path.join(t.root, "releases", "3")) or
                  t.name == bad["node"], "v3 never unpacked on %s" % t.name)

        # Rollback: the app's last rollout's targets and checks, version 1.
        r = cli(c, "deploy", "rollback", "web", "--to", "1", "--max-parallel", "3", "--wait")
        check("deployed" in r.stdout, "rolled back: %s" % r.stdout)
        d = rollout(c, r.stdout.split()[1])
        check(d["version"] == "1" and d["state"] == "deployed" and
              sorted(by_node(d)) == WEB, "rollback to 1 everywhere: %r" % d)
        for t in targets:
            check(t.current() == "releases/1", "%s back on v1" % t.name)
            t.wait_running("1")

        # deploy list: newest first.
        r = cli(c, "deploy", "list", "--json")
        ls = json.loads(r.stdout)["deploys"]
        check([x["version"] for x in ls] == ["1", "3", "2", "1"], "newest first: %r"
              % [x["version"] for x in ls])
        check(json.loads(cli(c, "deploy", "list", "--app", "nope", "--json").stdout)["deploys"]
              == [], "no rollouts of another app")

        # The same controls on any task, from the CLI: pinned, one at a time.
        r = cli(c, "task", "submit", "--hosts", "web-c,db-a", "--run-on", "host",
                "--max-parallel", "1", "--stop-after-failures", "1",
                "--shell", "echo on $FLOTILLA_NODE", "--json")
        tid = json.loads(r.stdout)["id"]
        cli(c, "task", "wait", tid)
        st, body, _ = request(c.servers[c.leader()].api, "GET", "/v1/tasks/%s/results" % tid)
        check(st == 200 and sorted((x["host"], x["node"], x["status"]) for x in body["results"])
              == [("db-a", "db-a", "ok"), ("web-c", "web-c", "ok")],
              "each unit ran on its host: %r" % body)

        # Bad input: a clear error, nothing created.
        before = count_tasks(c)
        for args, code, text in [
            (["web@9", "--to", "label:role=web"], 1, "not found"),
            (["web@2", "--to", "label:role=cache"], 1, "no node to deploy to"),
            (["web@2", "--to", "label:role=web", "--max-parallel", "2", "--window", "50%"], 2,
             "exclude"),
            (["web@2", "--to", "label:role=web", "--health", "true", "--health-http",
              "http://x/"], 2, "exclude"),
            (["web@2", "--to", "label:role=web", "--root", "relative/dir"], 1, "absolute"),
            (["web@2", "--to", "label:role=web", "--max-parallel", "0"], 1, "max_parallel"),
            (["web@2"], 2, "--to is required"),
            (["web2", "--to", "label:role=web"], 2, ""),
        ]:
            r = cli(c, "deploy", *args, ok=False)
            check(r.returncode == code and text in r.stderr, "deploy %r: rc %d %r"
                  % (args, r.returncode, r.stderr))
        r = cli(c, "deploy", "rollback", "nope", "--to", "1", ok=False)
        check(r.returncode == 1 and "no rollout of app" in r.stderr, "rollback of an unknown "
              "app: %r" % r.stderr)
        r = cli(c, "deploy", "status", "dffff", ok=False)
        check(r.returncode == 1 and "no rollout" in r.stderr, "status of nothing: %r" % r.stderr)
        check(count_tasks(c) == before, "bad input created no task")
        for t in targets:
            check(t.current() == "releases/1", "%s untouched by bad input" % t.name)

        # The leader dies in the middle of a rollout: the new leader carries it
        # on from the replicated state, nothing runs twice.
        r = cli(c, "deploy", "web@2", "--to", "label:role=web", "--max-parallel", "1",
                "--health", HEALTH[1], "--json")
        rid = json.loads(r.stdout)["id"]
        end = time.time() + 60
        while rollout(c, rid)["progress"]["deployed"] < 1 and time.time() < end:
            time.sleep(0.05)
        mid = rollout(c, rid)
        done_before = mid["progress"]["deployed"]
        check(mid["state"] in ("waiting", "running") and 1 <= done_before < len(targets),
              "the leader is killed in the middle of the rollout: %r" % mid)
        old = c.leader()
        c.servers[old].kill9()
        end, d = time.time() + 120, None
        while time.time() < end:
            try:
                d = rollout(c, rid)
                if d["state"] not in ("waiting", "running"):
                    break
            except (OSError, RuntimeError, AssertionError):
                pass
            time.sleep(0.2)
        check(d is not None and d["state"] == "deployed" and
              all(t["attempt"] == 1 and t["result"] == "deployed" for t in d["target_list"]),
              "the rollout finished under the new leader, each target once: %r" % d)
        print("failover: server %d killed after %d target(s); the rollout finished under "
              "server %d" % (old, done_before, c.leader()), flush=True)
        for t in targets:
            check(t.current() == "releases/2", "%s on v2 after the failover" % t.name)
            t.wait_running("2")
    finally:
        for t in targets:
            t.close()
        for a in agents:
            if a.alive():
                a.proc.send_signal(signal.SIGTERM)
                try:
                    a.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    a.proc.kill()
        c.close()


if __name__ == "__main__":
    run([test_rollout])
