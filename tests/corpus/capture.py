#!/usr/bin/python3
"""Write a corpus of Raft log entries and a snapshot, as a real cluster makes them.

    FLOTILLA_BIN=build/flotilla /usr/bin/python3 tests/corpus/capture.py OUTDIR

Runs three servers and two agents, drives every kind of command the servers
propose through the API and the CLI, stops the cluster, and reads server-1's
Raft directory: every entry of its log (raft_uv's segment files) and the one
snapshot it took. OUTDIR then holds

    entries     the log: records [index u64][term u64][type u8][pad 3][len u32][bytes],
                little endian, bytes padded to 8
    snapshot    the snapshot's data, exactly as the state machine wrote it
    manifest    JSON: the snapshot's index and term, the last applied index and
                the digest every server reported there, commands by type

tests/unit/test_corpus.c applies both with today's code and compares digests,
so a change to an encoding that would misread an existing log or snapshot
fails the default test run. A corpus is written once per format and
committed; this script is how it was made.
"""
import glob
import json
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import flotilla_cluster as fc  # noqa: E402
from flotilla_cluster import Agent, Cluster, check, request, wait_connected  # noqa: E402

RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE = 1, 2, 3


def cli(cluster, *args, ok=True):
    api = fc.leader_api(cluster)
    r = subprocess.run([fc.BIN] + list(args) + ["--addr", api], capture_output=True, text=True,
                       timeout=60)
    if ok and r.returncode != 0:
        raise AssertionError("flotilla %s: %s %s" % (" ".join(args), r.stdout, r.stderr))
    return r


def call(cluster, method, path, body=None, want=200, **kw):
    st, b, raw = request(fc.leader_api(cluster), method, path, body, **kw)
    check(st == want, "%s %s: %s %r" % (method, path, st, raw[:300]))
    return b


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out: " + what)


def descendants(pid):
    """The processes below pid (an agent's running units)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for t in glob.glob("/proc/%d/task/*/children" % p):
            try:
                kids = [int(x) for x in open(t).read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def workload(c, tmp):
    a1 = Agent(c, "web-1", cap=2, labels=["role=web"]).start()
    a2 = Agent(c, "web-2", cap=2, labels=["role=web"]).start()
    # Every agent joins pending (--require-agent-approval): approve them.
    names = ["server-1", "server-2", "server-3", "web-1", "web-2"]
    wait_for(lambda: len(call(c, "GET", "/v1/agents")["agents"]) >= 5, 30, "agents pending")
    for name in names:
        call(c, "POST", "/v1/agents/%s/approve" % name, {})
    wait_connected(c, names)

    # kv: plain, compare-and-set, delete with and without cas; with identities (CLI).
    for i in range(20):
        call(c, "PUT", "/v1/kv/k%d" % i, {"value": "v%d" % i})
    v1 = call(c, "GET", "/v1/kv/k1")["version"]
    call(c, "PUT", "/v1/kv/k1", {"value": "w", "cas": v1})
    call(c, "PUT", "/v1/kv/k1", {"value": "z", "cas": v1}, want=409)
    call(c, "PUT", "/v1/kv/new", {"value": "x", "cas": 0})
    call(c, "DELETE", "/v1/kv/k2")
    call(c, "DELETE", "/v1/kv/k3?cas=%d" % call(c, "GET", "/v1/kv/k3")["version"])
    cli(c, "kv", "put", "cli/a", "1")
    cli(c, "kv", "put", "cli/b", "2")
    cli(c, "kv", "delete", "cli/a")

    # nodes: cap, drain, undrain; dispatch pause and resume.
    call(c, "PUT", "/v1/nodes/web-2/cap", {"cap": 3})
    call(c, "POST", "/v1/nodes/server-3/drain", {})
    call(c, "POST", "/v1/nodes/server-3/undrain", {})
    call(c, "POST", "/v1/dispatch/pause", {})
    call(c, "POST", "/v1/dispatch/resume", {})

    # tasks: hosts split into units, constraints, pinned hosts, rollout controls,
    # a failure, a cancel, an idempotency key.
    t1 = cli(c, "task", "submit", "--hosts", ",".join("h%d" % i for i in range(9)), "--unit-size",
             "3", "--exec", "true", "--constraint", "role=web", "--name", "split", "--json",
             "--wait")
    t2 = cli(c, "task", "submit", "--hosts", "web-1,web-2", "--run-on", "host", "--shell",
             "echo out; echo err >&2; exit 3", "--max-parallel", "1", "--stop-after-failures",
             "2", "--retries", "1", "--priority", "5", "--env", "A=b", "--json", "--wait",
             ok=False)
    check(t2.returncode != 0, "the failing task fails")
    sub = call(c, "POST", "/v1/tasks", {"hosts": ["x"], "exec": ["sleep", "30"],
                                        "idempotency_key": "idem-1", "timeout_ms": 20000})
    call(c, "POST", "/v1/tasks", {"hosts": ["x"], "exec": ["sleep", "30"],
                                  "idempotency_key": "idem-1", "timeout_ms": 20000})
    wait_for(lambda: call(c, "GET", "/v1/tasks/%s" % sub["id"])["state"] == "running", 20,
             "a unit runs")
    call(c, "POST", "/v1/tasks/%s/cancel" % sub["id"], {})

    # An agent restarted under a running unit reports that it no longer runs
    # it: the leader takes the unit back (requeue).
    rq = call(c, "POST", "/v1/tasks", {"hosts": ["web-2"], "run_on": "host",
                                       "exec": ["sleep", "60"], "retries": 1})
    wait_for(lambda: call(c, "GET", "/v1/tasks/%s" % rq["id"])["state"] == "running", 20,
             "the unit on web-2 runs")
    units = descendants(a2.proc.pid)
    a2.kill9()
    for pid in units:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    a2.start()
    wait_for(lambda: "taking it back" in open(c.servers[c.leader()].log).read(), 30,
             "the unit is taken back")
    call(c, "POST", "/v1/tasks/%s/cancel" % rq["id"], {})

    # A unit on an agent that goes silent: the leader commits the agent lost.
    lost = call(c, "POST", "/v1/tasks", {"hosts": ["web-1"], "run_on": "host",
                                         "exec": ["sleep", "60"], "retries": 1})
    wait_for(lambda: call(c, "GET", "/v1/tasks/%s" % lost["id"])["state"] == "running", 20,
             "the pinned unit runs")
    a1.kill9()
    wait_for(lambda: any(n["id"] == "web-1" and n.get("lost")
                         for n in call(c, "GET", "/v1/nodes")["nodes"]), 30, "web-1 lost")
    call(c, "POST", "/v1/tasks/%s/cancel" % lost["id"], {})
    # web-1 forgotten: its next join records its key anew.
    call(c, "DELETE", "/v1/agents/web-1")
    # The deny-list: an agent name revoked and taken off again.
    call(c, "POST", "/v1/agents/gone-1/revoke", {})
    call(c, "DELETE", "/v1/agents/gone-1/revoke")

    # sessions and locks: create, renew, acquire (try and wait), a wait that
    # times out, release by token, destroy, expiry with lock-delay, wake.
    s1 = call(c, "POST", "/v1/sessions", {"ttl": "10s", "lock_delay": "0s", "name": "one"})
    s2 = call(c, "POST", "/v1/sessions", {"ttl": "10s", "lock_delay": "0s", "name": "two"})
    s3 = call(c, "POST", "/v1/sessions", {"ttl": "2s", "lock_delay": "1s", "name": "expires"})
    call(c, "PUT", "/v1/sessions/%s/renew" % s1["id"], {})
    g = call(c, "PUT", "/v1/locks/app/db", {"session": s1["id"]})
    call(c, "PUT", "/v1/locks/app/db", {"session": s2["id"], "wait": "300ms"}, want=409)
    call(c, "PUT", "/v1/locks/app/sem", {"session": s2["id"], "limit": 2})
    call(c, "DELETE", "/v1/locks/app/db?session=%s&token=%d" % (s1["id"], g["token"]))
    call(c, "PUT", "/v1/locks/app/exp", {"session": s3["id"]})
    wait_for(lambda: request(fc.leader_api(c), "GET", "/v1/sessions/%s" % s3["id"])[0] == 404,
             20, "the short session expires")
    call(c, "PUT", "/v1/locks/app/exp", {"session": s2["id"], "wait": "5s"})
    call(c, "DELETE", "/v1/sessions/%s" % s2["id"])
    cli(c, "lock", "acquire", "app/cli", "--ttl", "5s", "--lock-delay", "0s")

    # jobs: add, redefine, pause, resume, run now, fire on schedule, delete.
    cli(c, "job", "add", "tick", "--every", "1s", "--exec", "true", "--hosts", "j1")
    cli(c, "job", "add", "nightly", "--cron", "0 3 * * *", "--tz", "Europe/Berlin",
        "--overlap", "forbid", "--mode", "all", "--exec", "true")
    cli(c, "job", "add", "nightly", "--cron", "30 3 * * *", "--update", "--overlap", "forbid",
        "--mode", "all", "--exec", "true")
    cli(c, "job", "pause", "nightly")
    cli(c, "job", "resume", "nightly")
    cli(c, "job", "run", "nightly")
    # Runs longer than the interval: queued fires start as runs end, and a
    # forbidding job skips the fires its running run overlaps.
    cli(c, "job", "add", "slowq", "--every", "1s", "--overlap", "queue", "--exec", "sleep 1.3",
        "--hosts", "q1")
    cli(c, "job", "add", "slowf", "--every", "1s", "--overlap", "forbid", "--exec", "sleep 1.3",
        "--hosts", "f1")
    time.sleep(6)
    for job in ("tick", "slowq", "slowf"):
        cli(c, "job", "rm", job)

    # tokens: create and delete.
    t = call(c, "POST", "/v1/acl/tokens", {"policies": ["read"], "namespaces": [], "name": "ro"})
    call(c, "DELETE", "/v1/acl/tokens/" + t["accessor"])

    # packages: push two versions, remove one.
    pkg = os.path.join(tmp, "app.tar")
    d = os.path.join(tmp, "app")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "run.sh"), "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    subprocess.check_call(["tar", "-C", d, "-cf", pkg, "."])
    cli(c, "package", "push", pkg, "--name", "app", "--version", "1.0")
    cli(c, "package", "push", pkg, "--name", "app", "--version", "1.1")
    cli(c, "package", "rm", "app@1.0")
    call(c, "DELETE", "/v1/packages/app/1.0", want=404)

    # A leader change: the new leader extends every lease.
    old = c.leader()
    call(c, "POST", "/v1/members/transfer", {})
    wait_for(lambda: c.leader() != old, 20, "a new leader")
    cli(c, "kv", "put", "after/transfer", "1")
    a2.stop()


def read_segments(raft_dir):
    """Every entry of a raft_uv log directory: [(index, term, type, bytes)]."""
    closed, opened = [], []
    for p in os.listdir(raft_dir):
        if p.startswith("open-"):
            opened.append((int(p[5:]), p))
        elif "-" in p and p.split("-")[0].isdigit() and p.split("-")[1].isdigit():
            a, b = p.split("-")
            closed.append((int(a), int(b), p))
    entries = []
    next_index = None
    for start, end, p in sorted(closed):
        got = read_segment(os.path.join(raft_dir, p))
        check(len(got) == end - start + 1, "segment %s holds %d entries" % (p, len(got)))
        check(next_index in (None, start), "segments are contiguous at %s" % p)
        entries += [(start + i,) + e for i, e in enumerate(got)]
        next_index = end + 1
    for _, p in sorted(opened):
        got = read_segment(os.path.join(raft_dir, p))
        base = next_index or 1
        entries += [(base + i,) + e for i, e in enumerate(got)]
        next_index = base + len(got)
    return entries


def read_segment(path):
    data = open(path, "rb").read()
    check(struct.unpack_from("<Q", data, 0)[0] == 1, "segment format 1: " + path)
    off, out = 8, []
    while off + 16 <= len(data):
        crc1, crc2, n = struct.unpack_from("<IIQ", data, off)
        if n == 0 or crc1 == 0:
            break
        off += 16
        heads = [struct.unpack_from("<QB3xI", data, off + 16 * i) for i in range(n)]
        off += 16 * n
        for term, typ, ln in heads:
            out.append((term, typ, data[off:off + ln]))
            off += (ln + 7) & ~7
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # One snapshot partway through the run, and the whole log kept.
    c = Cluster(3, ["--snapshot-threshold", "150", "--snapshot-trailing", "1000000",
                    "--require-agent-approval", "--heartbeat", "200ms", "--lost-after", "1s"],
                "corpus")
    try:
        c.start()
        workload(c, c.dir)
        index, digest = c.wait_converged()
        for s in c.servers.values():
            s.stop()
        raft_dir = os.path.join(c.servers[1].data, "raft")
        entries = read_segments(raft_dir)
        check(entries and entries[0][0] == 1, "the log starts at index 1")
        check(entries[-1][0] >= index, "the log reaches the digest's index %d" % index)
        entries = [e for e in entries if e[0] <= index]
        snaps = sorted(p for p in glob.glob(os.path.join(raft_dir, "snapshot-*"))
                       if not p.endswith(".meta"))
        check(snaps, "server-1 took a snapshot")
        _, sterm, sindex, _ = os.path.basename(snaps[-1]).split("-")
        with open(os.path.join(out, "entries"), "wb") as f:
            for idx, term, typ, data in entries:
                f.write(struct.pack("<QQB3xI", idx, term, typ, len(data)))
                f.write(data + b"\0" * (((len(data) + 7) & ~7) - len(data)))
        with open(snaps[-1], "rb") as src, open(os.path.join(out, "snapshot"), "wb") as dst:
            dst.write(src.read())
        kinds = {}
        for _, _, typ, _ in entries:
            kinds[typ] = kinds.get(typ, 0) + 1
        manifest = {"entries": len(entries), "last_index": index, "digest": digest,
                    "snapshot_index": int(sindex), "snapshot_term": int(sterm),
                    "raft_entry_types": {str(k): v for k, v in sorted(kinds.items())}}
        with open(os.path.join(out, "manifest"), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")
        print(json.dumps(manifest, sort_keys=True))
    finally:
        c.close()


if __name__ == "__main__":
    main()
