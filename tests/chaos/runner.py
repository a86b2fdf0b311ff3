"""tests/chaos/run: a Jepsen-style chaos run against real flotilla processes.

  tests/chaos/run [--minutes N] [--seed S] [--nemesis kill,pause,partition,membership,clock,disk]
                  [--loopback] [--keep] [--bin PATH]

Starts 5 servers (with their embedded agents) and 2 standalone agents, each
in its own network namespace (or all on loopback), runs the workloads and
the nemesis for N minutes, heals everything, waits for the cluster to
converge, runs every checker and prints a summary table. Exit status 0: no
violation; 1: a checker found one; 2: the harness itself failed.
See docs/CHAOS.md.
"""
import argparse
import atexit
import json
import os
import random
import shutil
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers  # noqa: E402
import cluster as C  # noqa: E402
from cluster import api, log  # noqa: E402
from nemesis import ALL_KINDS, Nemesis  # noqa: E402
from workloads import History, Workers, read_history, read_unit_logs, write_unit_script  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
JOBS = {  # name -> (schedule fields, unit duration s)
    "ex1": ({"every": "1s"}, 1.5),
    "cr2": ({"cron": "*/2 * * * * *"}, 0.7),
}


def find_binary(arg):
    for b in [arg, os.environ.get("FLOTILLA_BIN"), os.path.join(REPO, "build", "flotilla"),
              os.path.join(REPO, "build-chaos", "flotilla")]:
        if b and os.access(b, os.X_OK):
            return os.path.abspath(b)
    sys.exit("no flotilla binary: pass --bin or set FLOTILLA_BIN")


def parse():
    ap = argparse.ArgumentParser(prog="tests/chaos/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--nemesis", default=",".join(ALL_KINDS),
                    help="comma-separated: " + ",".join(ALL_KINDS) + " (or none)")
    ap.add_argument("--loopback", action="store_true", help="no namespaces: kill and pause only")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--bin", default=None)
    ap.add_argument("--max-steps", type=int, default=3_000_000,
                    help="linearizability search bound per key")
    return ap.parse_args()


class Observer:
    """Samples every server's digest and every job's run history while the
    run goes on (the checkers compare digests at equal indexes; runs show
    double fires even when they fall out of the last-100 window)."""

    def __init__(self, world):
        self.w = world
        self.samples = []
        self.runs = defaultdict(list)
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.t.start()

    def sample_digests(self):
        for s in self.w.servers.values():
            if s.state != "up":
                continue
            st = s.status(timeout=1.0)
            if st and "digest" in st:
                d = st["digest"]
                self.samples.append(dict(server=s.sid, index=d["index"], sha=d["sha"],
                                         applied=st.get("applied_index"), wall=time.time()))

    def sample_runs(self):
        ups = self.w.up_servers()
        if not ups:
            return
        for job in JOBS:
            s = random.choice(ups)
            try:
                st, body = api(s.api, "GET", "/v1/jobs/%s/runs" % job, timeout=3)
            except OSError:
                continue
            if st == 200:
                for run in body.get("items", []):
                    self.runs[job].append(run)

    def loop(self):
        n = 0
        while not self.stop.wait(2.0):
            n += 1
            self.sample_digests()
            if n % 2 == 0:
                self.sample_runs()

    def halt(self):
        self.stop.set()
        self.t.join(30)


def add_jobs(world, unit_script):
    for name, (sched, dur) in JOBS.items():
        body = {"name": name, "overlap": "forbid", "retries": 3, "timeout_ms": 20000,
                "shell": "/bin/sh %s %s" % (unit_script, dur)}
        body.update(sched)
        end = time.time() + 60
        while True:
            lid = world.wait_leader(30)
            try:
                st, resp = api(world.servers[lid].api, "POST", "/v1/jobs", body, timeout=5)
            except OSError:
                st, resp = None, None
            if st == 200 or (st == 409 and (resp or {}).get("error", {}).get("code") == "exists"):
                break
            if time.time() > end:
                raise RuntimeError("could not add job %s: %s %r" % (name, st, resp))
            time.sleep(0.5)


def leader_call(world, method, path, body=None, timeout=5, tries=60):
    """A call to whichever server leads, retried while there is none."""
    last = None
    for _ in range(tries):
        lid = world.leader()
        if lid:
            try:
                st, resp = api(world.servers[lid].api, method, path, body, timeout=timeout)
                if st < 500:
                    return st, resp
                last = (st, resp)
            except OSError as e:
                last = repr(e)
        time.sleep(0.5)
    raise RuntimeError("%s %s: %r" % (method, path, last))


def readd_missing(world, hist):
    """A removal whose answer was lost may have been applied after the
    nemesis gave up: any server missing from the configuration is stopped,
    wiped and joined again."""
    from nemesis import wipe
    try:
        st, body = leader_call(world, "GET", "/v1/members", tries=20)
    except RuntimeError:
        return
    ids = {m["id"] for m in body.get("members", [])}
    for s in world.servers.values():
        if s.sid not in ids:
            log("server %d is not in the configuration: re-adding it" % s.sid)
            hist.event("member-readd-at-heal", value={"id": s.sid})
            s.kill9()
            wipe(s.data)
            try:   # its embedded agent comes back with a new identity key
                leader_call(world, "DELETE", "/v1/agents/server-%d" % s.sid, tries=10)
            except RuntimeError:
                pass
            s.join_mode = True
            s.start()


def wait_members(world, timeout=120):
    """Every server back as a voter and every node connected."""
    end = time.time() + timeout
    want = set(world.servers)
    while time.time() < end:
        try:
            st, body = leader_call(world, "GET", "/v1/members", tries=4)
            m = {x["id"]: x["role"] for x in body["members"]}
            if set(m) == want and all(r == "voter" for r in m.values()):
                return True
        except RuntimeError:
            pass
        time.sleep(1)
    log("not every server is a voter again: %r" % (m if 'm' in dir() else None))
    return False


def wait_converged(world, obs, timeout=120):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        sts = [s.status(timeout=2) for s in world.servers.values()]
        if all(sts):
            for s, st in zip(world.servers.values(), sts):
                obs.samples.append(dict(server=s.sid, index=st["digest"]["index"],
                                        sha=st["digest"]["sha"], applied=st["applied_index"],
                                        wall=time.time()))
            last = [(st["id"], st["applied_index"], st["commit_index"], st["digest"]["index"],
                     st["digest"]["sha"][:12]) for st in sts]
            if len({(x[1], x[2], x[3], x[4]) for x in last}) == 1:
                return True, last
        time.sleep(0.5)
    return False, last


def finish_tasks(world, ids, timeout):
    """Poll the acked tasks until each is terminal; returns {id: task|None}."""
    out = {}
    pending = set(ids)
    end = time.time() + timeout
    while pending and time.time() < end:
        for tid in sorted(pending):
            try:
                st, body = leader_call(world, "GET", "/v1/tasks/" + tid, tries=10)
            except RuntimeError:
                continue
            if st == 404:
                out[tid] = None
                pending.discard(tid)
            elif st == 200:
                out[tid] = body
                if body["state"] in checkers.TERMINAL:
                    pending.discard(tid)
        if pending:
            time.sleep(1)
    return out


def resolve_unknown_submits(world, workers, history_recs):
    """Submit again every submission whose outcome was unknown, with the same
    idempotency key: the answer tells whether it had been applied, and must
    name the same task as any earlier acknowledgement."""
    pairs = checkers.pair_ops(history_recs)
    unknown = [inv for inv, done in pairs if inv["f"] == "submit"
               and (done is None or done["type"] == "info")]
    rng = random.Random(7)
    ids = []
    for inv in unknown:
        for _ in range(10):
            lid = world.leader()
            if not lid:
                time.sleep(0.5)
                continue
            tid = workers.submit("resolver", rng, inv["key"], inv["hosts"], "0.1",
                                 addr=world.servers[lid].api, retry_of=inv["op"])
            if tid:
                ids.append(tid)
                break
            time.sleep(0.5)
    return len(unknown), ids


def read_back_failed_writes(world, recs):
    """Every follower-sent write answered with a definite failure, read
    back (linearizable GET through the leader) after healing: {op: {status,
    value}}. Such a key must not exist."""
    out = {}
    failed = [(i, d) for i, d in checkers.pair_ops(recs)
              if i["f"] == "fw-write" and d and d["type"] == "fail"]
    lid = world.wait_leader(60)
    for inv, _ in failed:
        try:
            st, body = api(world.servers[lid].api, "GET", "/v1/kv/" + inv["key"], timeout=5)
            if st >= 500:
                raise OSError(st)
        except OSError:
            try:
                st, body = leader_call(world, "GET", "/v1/kv/" + inv["key"], tries=10)
            except RuntimeError:
                continue
        out[inv["op"]] = dict(status=st, value=body if st == 200 else None)
    log("%d definitely failed follower writes read back" % len(out))
    return out


def print_table(faults, ops, results, crashes, meta):
    w = sys.stdout.write
    w("\n==== chaos run: %s ====\n" % meta)
    w("\nfaults injected\n")
    w("  %-28s %8s\n" % ("kind", "count"))
    for k in sorted(k for k in faults if ":" not in k):
        w("  %-28s %8d\n" % (k, faults[k]))
        for sub in sorted(s for s in faults if s.startswith(k + ":")):
            w("    %-26s %8d\n" % (sub.split(":", 1)[1], faults[sub]))
    if not faults:
        w("  (none)\n")
    w("  %-28s %8d\n" % ("process exits (crashes)", len(crashes)))
    w("\noperations\n")
    w("  %-16s %8s %8s %8s\n" % ("kind", "ok", "fail", "unknown"))
    for f in sorted(ops):
        c = ops[f]
        w("  %-16s %8d %8d %8d\n" % (f, c["ok"], c["fail"], c["info"]))
    w("\ncheckers\n")
    w("  %-24s %10s  %s\n" % ("checker", "violations", "notes"))
    for r in results:
        w("  %-24s %10d  %s\n" % (r.name, len(r.violations), "; ".join(r.notes)[:110]))
    total = sum(len(r.violations) for r in results)
    w("\n%s\n" % ("NO VIOLATIONS" if total == 0 else "%d VIOLATIONS" % total))
    sys.stdout.flush()


def count_ops(recs):
    ops = defaultdict(Counter)
    for inv, done in checkers.pair_ops(recs):
        ops[inv["f"]][done["type"] if done else "info"] += 1
    return ops


def main():
    args = parse()
    seed = args.seed if args.seed is not None else random.randrange(1, 1 << 30)
    binary = find_binary(args.bin)
    rng = random.Random(seed)
    C.install_signal_handlers()
    atexit.register(C.cleanup)
    lockf = C.acquire_run_lock(timeout=900)
    C.on_cleanup(lockf.close)
    C.cleanup_leftovers()

    feats = C.Features(binary, want_netns=not args.loopback)
    want = [k for k in args.nemesis.split(",") if k and k != "none"]
    bad = [k for k in want if k not in ALL_KINDS]
    if bad:
        sys.exit("unknown nemesis: %s" % ",".join(bad))
    if not feats.netns and not args.loopback:
        log("network namespaces or nftables unavailable: loopback mode")
    kinds, skipped = [], []
    for k in want:
        why = None
        if not feats.netns and k in ("partition", "membership", "clock", "disk"):
            why = "loopback mode"
        elif k == "clock" and not feats.faketime:
            why = "libfaketime not usable"
        elif k == "disk" and not feats.mount:
            why = "cannot mount (not root)"
        (skipped.append("%s (%s)" % (k, why)) if why else kinds.append(k))
    log("seed %d, %s mode, nemeses: %s%s" % (seed, "netns" if feats.netns else "loopback",
                                              ",".join(kinds) or "none",
                                              ("; skipped: " + ", ".join(skipped)) if skipped else ""))
    log("binary %s (cluster key: %s/%s)" % (binary, feats.server_key, feats.agent_key))

    world = C.World(binary, feats, seed=seed, keep=args.keep)
    log("run directory %s" % world.dir)
    clock_victim = rng.randint(1, 5) if "clock" in kinds else None
    disk_victim = None
    if "disk" in kinds:
        disk_victim = rng.choice([i for i in range(1, 6) if i != clock_victim])
    world.setup(clock_victim=clock_victim, disk_victim=disk_victim)
    if disk_victim:
        log("server %d's data is on a %s" % (disk_victim, world.disk_kind))
    if clock_victim:
        log("server %d runs under libfaketime" % clock_victim)
    world.start_all()
    log("ACL token in use: %s" % bool(api.token))

    unit_script = os.path.join(world.dir, "unit.sh")
    write_unit_script(unit_script, world.unitlog_dir)
    hist_path = os.path.join(world.dir, "history.jsonl")
    hist = History(hist_path)
    # every node connected before the clock starts
    end = time.time() + 60
    while time.time() < end:
        try:
            st, body = leader_call(world, "GET", "/v1/nodes", tries=4)
            conn = [n for n in body["nodes"] if n.get("connected")]
            if len(conn) >= len(world.servers) + len(world.agents):
                break
        except RuntimeError:
            pass
        time.sleep(0.5)
    add_jobs(world, unit_script)
    run_id = "%d" % seed
    workers = Workers(world, hist, seed, unit_script, run_id=run_id, kv_keys=8, fw_threads=2,
                      fw_burst_threads=6, rlock_threads=6)
    obs = Observer(world)
    nem = Nemesis(world, hist, seed + 1, kinds)
    workers.stall = nem.stall
    nem.before_leader_kill = workers.burst
    obs.start()
    hist.event("workloads-start")
    workers.start()
    nem.start()
    log("running for %.1f minutes" % args.minutes)
    t_end = time.time() + args.minutes * 60
    while time.time() < t_end:
        time.sleep(min(10, max(0.1, t_end - time.time())))
    log("stopping the workloads and the nemesis")
    workers.halt()
    nem.stop()
    log("healing")
    nem.heal_all()
    world.wait_leader(60)
    readd_missing(world, hist)
    members_ok = wait_members(world, 120)
    hist.f.flush()
    n_unknown, resolved = resolve_unknown_submits(world, workers, read_history(hist_path))
    log("%d unknown submissions resubmitted, %d resolved" % (n_unknown, len(resolved)))
    for job in JOBS:
        try:
            leader_call(world, "POST", "/v1/jobs/%s/pause" % job)
        except RuntimeError as e:
            log("pausing %s: %s" % (job, e))
    for sess in list(workers.sessions):
        try:
            leader_call(world, "DELETE", "/v1/sessions/" + sess, tries=4)
        except RuntimeError:
            pass
    hist.close()
    recs = read_history(hist_path)
    acked = sorted({d["value"] for i, d in checkers.pair_ops(recs)
                    if i["f"] == "submit" and d and d["type"] == "ok"})
    readback = read_back_failed_writes(world, recs)
    log("waiting for %d acknowledged tasks" % len(acked))
    tasks = finish_tasks(world, acked, timeout=180)
    # the job runs' own tasks finish too (the jobs are paused now)
    units = read_unit_logs(world.unitlog_dir)
    job_tasks = sorted({u["task"] for u in units if u.get("job")})
    finish_tasks(world, job_tasks, timeout=60)
    obs.halt()
    obs.sample_runs()
    converged, last = wait_converged(world, obs, timeout=120)
    log("converged: %s %s" % (converged, last))
    units = read_unit_logs(world.unitlog_dir)
    job_units = {}
    for tid in sorted({u["task"] for u in units if u.get("job") in JOBS}):
        try:
            st, body = leader_call(world, "GET", "/v1/tasks/%s/units" % tid, tries=10)
            if st == 200:
                job_units[tid] = body["units"]
        except RuntimeError:
            pass
    st, body = leader_call(world, "GET", "/v1/nodes")
    caps = {n["id"]: n["cap"] for n in body["nodes"]}
    final = dict(readback=readback, tasks=tasks, caps=caps, job_runs=dict(obs.runs),
                 job_units=job_units, digests=obs.samples, converged=converged and members_ok,
                 last=last)
    log("checking %d history records and %d unit log lines" % (len(recs), len(units)))
    results = checkers.run_all(recs, units, final, kills=dict(nem.kills),
                               max_steps=args.max_steps, exclusive_jobs=list(JOBS),
                               crashes=nem.crashes)
    ops = count_ops(recs)
    meta = "seed %d, %.1f min, %s, nemeses %s" % (seed, args.minutes,
                                                  "netns" if feats.netns else "loopback",
                                                  ",".join(kinds) or "none")
    print_table(nem.counts, ops, results, nem.crashes, meta)
    report = dict(seed=seed, minutes=args.minutes, kinds=kinds, faults=dict(nem.counts),
                  crashes=nem.crashes, ops={k: dict(v) for k, v in ops.items()},
                  results=[dict(name=r.name, violations=r.violations, notes=r.notes,
                                verdict=r.verdict) for r in results])
    with open(os.path.join(world.dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    bad = [r for r in results if r.violations]
    t_start = next((x["t"] for x in recs if x.get("f") == "workloads-start"), 0)
    for r in bad:
        ats = [v["at"] for v in r.violations if isinstance(v.get("at"), (int, float))]
        print("\n%s:%s" % (r.name, " first violation %.1f s into the run" % (
            (min(ats) - t_start) / 1e9) if ats else ""))
        for v in r.violations[:10]:
            print("  - %s" % json.dumps(v, default=str)[:1500])
    for c in nem.crashes:
        print("\ncrash of %s (rc %s, %s); log tail:\n%s" % (c["node"], c["rc"], c["why"],
                                                           c["tail"][-800:]))
    if bad or args.keep:
        print("\nrun directory kept: %s (history.jsonl, unitlogs/, report.json, server logs)"
              % world.dir)
    else:
        C.on_cleanup(lambda: shutil.rmtree(world.dir, ignore_errors=True), last=True)
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        rc = main()
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - the harness failed, not the cluster
        traceback.print_exc()
        rc = 2
    C.cleanup()
    sys.exit(rc)
