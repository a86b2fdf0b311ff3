"""tests/chaos/run: a Jepsen-style chaos run against real flotilla processes.

  tests/chaos/run [--minutes N] [--seed S] [--nemesis kill,pause,partition,membership,clock,disk]
                  [--loopback] [--keep] [--bin PATH]

Starts 5 servers (with their embedded agents) and 2 standalone agents, each
in its own network namespace (or all on loopback), runs the workloads and
the nemesis for N minutes, heals everything, waits for the cluster to
converge, runs every checker and prints a summary table. Exit status 0: no
violation; 1: a checker found one; 2: the harness itself failed (a step
overran its deadline, a fault step failed, or the run cannot do what it
claims on this machine).

The run ends on time: each phase has a budget (PHASES) that bounds every
call made in it, and the whole run, from the moment it holds the run lock,
ends within --minutes plus ALLOWANCE seconds or fails, saying which phase
overran (a watchdog enforces it). It needs root (namespaces, nftables,
mounts) and libfaketime; without them it refuses to run unless
FLOTILLA_CHAOS_REDUCED=1, and then the result lists what was left out.
See docs/CHAOS.md.
"""
import argparse
import atexit
import contextlib
import faulthandler
import json
import os
import random
import shutil
import sys
import threading
import time
import traceback
import urllib.parse
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
# The budget (s) of every phase but the faults themselves (--minutes). Every
# subprocess and HTTP call of a phase is cut to what is left of its budget.
PHASES = (
    ("setup", 60),      # probes, namespaces, cluster up, agents connected, jobs
    ("stop", 20),       # workers and nemesis stopped at once, joined together
    ("settle", 150),    # heal, members, resubmissions, read-backs, tasks, convergence
    ("check", 60),      # the checkers (kv-linearizable gets CHECK_KV_SECONDS of it)
    ("teardown", C.CLEANUP_SECONDS),
)
BUDGET = dict(PHASES)
GRACE = 10              # the watchdog's margin over the sum of the budgets
ALLOWANCE = sum(BUDGET.values()) + GRACE
CHECK_KV_SECONDS = 40
WORKER_STOP_SECONDS = 12    # a worker's call in flight when stopping ends by then
REDUCED_ENV = "FLOTILLA_CHAOS_REDUCED"


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
    ap.add_argument("--loopback", action="store_true", help="no namespaces: kill, pause and stall only")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--bin", default=None)
    ap.add_argument("--max-steps", type=int, default=3_000_000,
                    help="linearizability search bound per key")
    ap.add_argument("--lock-wait", type=float, default=900,
                    help="seconds to wait for another chaos run to finish (not counted "
                    "in the run's bound)")
    return ap.parse_args()


class Phases:
    """The run's phases with their budgets, what each took, and the
    watchdog that ends the run if the total bound passes."""

    def __init__(self, minutes):
        self.t0 = time.monotonic()
        self.minutes = minutes
        self.bound = minutes * 60 + ALLOWANCE
        self.done = []             # dict(phase, budget, took)
        self.current = None        # (name, budget, start)
        self.problems = []         # harness problems: overruns and failed steps

    @contextlib.contextmanager
    def phase(self, name, budget):
        self.current = (name, budget, time.monotonic())
        log("phase %s (budget %.0f s)" % (name, budget))
        try:
            with C.within(budget, name) as d:
                yield d
        except Exception as e:
            self.problem("phase %s failed after %.1f s: %s" % (
                name, time.monotonic() - self.current[2], e))
            raise
        finally:
            took = time.monotonic() - self.current[2]
            self.done.append(dict(phase=name, budget=budget, took=round(took, 1)))
            if took > budget:
                self.problem("phase %s overran its budget: %.1f s of %.0f s" % (name, took,
                                                                                 budget))
            self.current = None

    def problem(self, msg):
        log("HARNESS: " + msg)
        self.problems.append(msg)

    def start_watchdog(self):
        t = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        t.start()

    def _watch(self):
        time.sleep(max(0.0, self.t0 + self.bound - time.monotonic()))
        cur = self.current
        where = ("phase %s, %.0f s into its %.0f s budget" % (
            cur[0], time.monotonic() - cur[2], cur[1])) if cur else "between phases"
        self.problems.append("the run exceeded its bound of %.0f s in %s" % (self.bound, where))
        print("\nHARNESS: the run exceeded its bound of %.0f s (%.1f minutes of faults + %d s) "
              "in %s; thread stacks follow, then cleanup and exit 2" % (
                  self.bound, self.minutes, ALLOWANCE, where), flush=True)
        faulthandler.dump_traceback(all_threads=True)
        t = threading.Thread(target=C.cleanup, daemon=True)
        t.start()
        t.join(C.CLEANUP_SECONDS + 5)
        # the main thread may be cleaning up itself: give it that long
        if C._cleanup_lock.acquire(timeout=C.CLEANUP_SECONDS):
            C._cleanup_lock.release()
        os._exit(2)


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
            if s.state != "up" or self.stop.is_set():
                continue
            st = s.status(timeout=1.0)
            if st and "digest" in st:
                d = st["digest"]
                self.samples.append(dict(server=s.sid, index=d["index"], sha=d["sha"],
                                         applied=st.get("applied_index"), wall=time.time()))

    def sample_runs(self, stop=None):
        ups = self.w.up_servers()
        if not ups:
            return
        for job in JOBS:
            if stop is not None and stop.is_set():
                return
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
                self.sample_runs(self.stop)

    def halt(self, timeout):
        """Stop sampling; False if the thread did not end within timeout
        (one sampling call at most: a few seconds)."""
        self.stop.set()
        self.t.join(timeout)
        return not self.t.is_alive()


def step_left():
    d = C.current_step()
    return d.left() if d else float("inf")


def until(seconds):
    """A monotonic end: seconds from now, and no later than the current
    step's deadline."""
    return time.monotonic() + max(0.0, min(seconds, step_left()))


def add_jobs(world, unit_script):
    for name, (sched, dur) in JOBS.items():
        body = {"name": name, "overlap": "forbid", "retries": 3, "timeout_ms": 20000,
                "shell": "/bin/sh %s %s" % (unit_script, dur)}
        body.update(sched)
        end = until(60)
        while True:
            lid = world.wait_leader(30)
            try:
                st, resp = api(world.servers[lid].api, "POST", "/v1/jobs", body, timeout=5)
            except OSError:
                st, resp = None, None
            if st == 200 or (st == 409 and (resp or {}).get("error", {}).get("code") == "exists"):
                break
            if time.monotonic() > end:
                raise C.StepTimeout("could not add job %s: %s %r" % (name, st, resp))
            time.sleep(0.5)


def leader_call(world, method, path, body=None, timeout=5, tries=60):
    """A call to whichever server leads (the last one found first), retried
    while there is none; at most `tries` times and not past the current
    step's deadline."""
    last = None
    for k in range(tries):
        if k and step_left() <= 0:
            last = "the %s step's deadline passed" % C.current_step().step
            break
        lid = world.last_leader if k == 0 else None
        if lid is None or world.servers[lid].state != "up":
            lid = world.leader()
        if lid:
            try:
                st, resp = api(world.servers[lid].api, method, path, body, timeout=timeout)
                if st < 500:
                    return st, resp
                last = (st, resp)
            except OSError as e:
                last = repr(e)
            world.last_leader = None
        time.sleep(0.5)
    raise RuntimeError("%s %s: %r" % (method, path, last))


def readd_missing(world, hist):
    """A removal whose answer was lost may have been applied after the
    nemesis gave up: any server missing from the configuration is stopped,
    wiped and joined again. Returns the problems met."""
    from nemesis import wipe
    problems = []
    try:
        st, body = leader_call(world, "GET", "/v1/members", tries=20)
    except RuntimeError:
        return problems
    ids = {m["id"] for m in body.get("members", [])}
    for s in world.servers.values():
        if s.sid not in ids:
            log("server %d is not in the configuration: re-adding it" % s.sid)
            hist.event("member-readd-at-heal", value={"id": s.sid})
            try:
                s.kill9()
            except RuntimeError as e:
                problems.append("settle: %s" % e)
            wipe(s.data)
            try:   # its embedded agent comes back with a new identity key
                leader_call(world, "DELETE", "/v1/agents/server-%d" % s.sid, tries=10)
            except RuntimeError:
                pass
            s.join_mode = True
            s.start()
    return problems


def wait_members(world, timeout=120):
    """Every server back as a voter and every node connected."""
    end = until(timeout)
    want = set(world.servers)
    m = None
    while time.monotonic() < end:
        try:
            st, body = leader_call(world, "GET", "/v1/members", tries=4)
            m = {x["id"]: x["role"] for x in body["members"]}
            if set(m) == want and all(r == "voter" for r in m.values()):
                return True
        except RuntimeError:
            pass
        time.sleep(1)
    log("not every server is a voter again within %.0f s: %r" % (timeout, m))
    return False


def wait_converged(world, obs, timeout=120):
    end = until(timeout)
    last = None
    while time.monotonic() < end:
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


TASK_LIST_MAX = 10000     # GET /v1/tasks lists at most this many


def finish_tasks(world, ids, timeout):
    """Poll the tasks until each is terminal, within timeout; returns {id:
    task|None}. One GET /v1/tasks per round (a task it does not list does
    not exist), or one GET per task when the list may be cut."""
    out = {}
    pending = set(ids)
    end = until(timeout)
    while pending and time.monotonic() < end:
        listed = None
        try:
            st, body = leader_call(world, "GET", "/v1/tasks", timeout=10, tries=4)
            if st == 200 and len(body.get("tasks", [])) < TASK_LIST_MAX:
                listed = {t["id"]: t for t in body["tasks"]}
        except RuntimeError:
            pass
        for tid in sorted(pending):
            if listed is not None:
                st, body = (200, listed[tid]) if tid in listed else (404, None)
            else:
                try:
                    st, body = leader_call(world, "GET", "/v1/tasks/" + tid, tries=4)
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
    name the same task as any earlier acknowledgement. Returns (unknown,
    resolved ids, left: those not tried for want of time)."""
    pairs = checkers.pair_ops(history_recs)
    unknown = [inv for inv, done in pairs if inv["f"] == "submit"
               and (done is None or done["type"] == "info")]
    rng = random.Random(7)
    ids = []
    left = 0
    for inv in unknown:
        if step_left() <= 0:
            left += 1
            continue
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
            if step_left() <= 0:
                break
            time.sleep(0.5)
    return len(unknown), ids, left


KV_LIST_MAX = 100000      # GET /v1/kv?prefix= lists at most this many


def read_back_failed_writes(world, recs, run_id):
    """Every follower-sent write answered with a definite failure, read
    back (linearizable reads through the leader) after healing: {op:
    {status, value}}. Such a key must not exist. One listing of the
    follower writers' keys when it is complete, else a GET per key."""
    out = {}
    failed = [(i, d) for i, d in checkers.pair_ops(recs)
              if i["f"] == "fw-write" and d and d["type"] == "fail"]
    if not failed:
        return out
    prefix = "chaos-%s/fw/" % run_id
    present = None
    try:
        st, body = leader_call(world, "GET", "/v1/kv?prefix=%s&limit=%d" % (
            urllib.parse.quote(prefix, safe=""), KV_LIST_MAX), timeout=30, tries=10)
        if st == 200 and len(body.get("items", [])) < KV_LIST_MAX:
            present = {it["key"]: it for it in body["items"]}
    except RuntimeError as e:
        log("listing %s: %s; reading back key by key" % (prefix, e))
    for inv, _ in failed:
        if present is not None and inv["key"].startswith(prefix):
            it = present.get(inv["key"])
            out[inv["op"]] = dict(status=200 if it else 404, value=it)
            continue
        try:
            st, body = leader_call(world, "GET", "/v1/kv/" + inv["key"], tries=10)
        except RuntimeError:
            continue
        out[inv["op"]] = dict(status=st, value=body if st == 200 else None)
    log("%d definitely failed follower writes read back" % len(out))
    return out


def nemesis_timeline(nem, t_start, t_stop):
    """(number of fault steps, largest gap between consecutive ones
    (counting from the start and to the stop), where it began (s since
    the faults started))."""
    times = [t_start] + sorted(t for t, _ in nem.steps if t_start <= t <= t_stop) + [t_stop]
    gaps = [(b - a, a - t_start) for a, b in zip(times, times[1:])]
    big = max(gaps) if gaps else (0.0, 0.0)
    return len(times) - 2, big[0], big[1]


def print_table(faults, ops, results, crashes, meta, left_out, phases, timeline, nem_problems):
    w = sys.stdout.write
    w("\n==== chaos run: %s ====\n" % meta)
    if left_out:
        w("\nREDUCED RUN: left out\n")
        for what, why in left_out:
            w("  %-28s %s\n" % (what, why))
    w("\nphases (bound %.0f s: %.1f minutes of faults + %d s)\n" % (
        phases.bound, phases.minutes, ALLOWANCE))
    w("  %-28s %8s %8s\n" % ("phase", "took s", "budget"))
    for ph in phases.done:
        w("  %-28s %8.1f %8.0f%s\n" % (ph["phase"], ph["took"], ph["budget"],
                                        "  OVERRAN" if ph["took"] > ph["budget"] else ""))
    n_steps, gap, gap_at = timeline
    w("  %-28s %8d\n" % ("fault steps", n_steps))
    w("  %-28s %8.1f  (from %.1f s into the faults)\n" % ("largest gap between them, s", gap,
                                                          gap_at))
    w("  %-28s %8d\n" % ("fault steps failed/overran", len(nem_problems)))
    for p in nem_problems[:10]:
        w("    %s: took %.1f s of %.0f s%s\n" % (p["step"], p["took"], p["deadline"],
                                              ", " + p["error"][:80] if p["error"] else ""))
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
    for msg in phases.problems:
        w("HARNESS: %s\n" % msg)
    sys.stdout.flush()


def count_ops(recs):
    ops = defaultdict(Counter)
    for inv, done in checkers.pair_ops(recs):
        ops[inv["f"]][done["type"] if done else "info"] += 1
    return ops


LOOPBACK_KINDS = ("kill", "pause", "stall")


def plan(args, feats):
    """The nemeses to run, and what is left out of the run asked for:
    [(what, why)], and whether running without it needs REDUCED_ENV (all
    but what --loopback itself leaves out of the default set)."""
    want = [k for k in args.nemesis.split(",") if k and k != "none"]
    bad = [k for k in want if k not in ALL_KINDS]
    if bad:
        sys.exit("unknown nemesis: %s" % ",".join(bad))
    default = args.nemesis == ",".join(ALL_KINDS)
    left_out, needs_opt_in = [], False
    if not feats.netns and not args.loopback:
        left_out.append(("network namespaces (loopback instead)", feats.missing.get("netns")))
        needs_opt_in = True
    kinds = []
    for k in want:
        why = None
        if not feats.netns and k not in LOOPBACK_KINDS:
            why = "loopback mode: " + (feats.missing.get("netns") or "")
            needs_opt_in |= not (args.loopback and default)
        elif k == "clock" and not feats.faketime:
            why = feats.missing.get("faketime")
            needs_opt_in = True
        elif k == "disk" and not feats.mount:
            why = "cannot mount: " + (feats.missing.get("mount") or "")
            needs_opt_in = True
        if why:
            left_out.append(("nemesis " + k, why))
        else:
            kinds.append(k)
    return kinds, left_out, needs_opt_in


def main():
    args = parse()
    seed = args.seed if args.seed is not None else random.randrange(1, 1 << 30)
    binary = find_binary(args.bin)
    rng = random.Random(seed)
    C.install_signal_handlers()
    atexit.register(C.cleanup)
    lockf = C.acquire_run_lock(timeout=args.lock_wait)
    C.on_cleanup(lockf.close)
    phases = Phases(args.minutes)
    phases.start_watchdog()
    log("this run ends within %.0f s: %.1f minutes of faults + %d s (%s)" % (
        phases.bound, args.minutes, ALLOWANCE,
        ", ".join("%s %d" % kv for kv in PHASES)))

    with phases.phase("setup", BUDGET["setup"]):
        C.cleanup_leftovers()
        feats = C.Features(binary, want_netns=not args.loopback)
        kinds, left_out, needs_opt_in = plan(args, feats)
        if needs_opt_in and os.environ.get(REDUCED_ENV) != "1":
            print("\nchaos run: cannot run what was asked on this machine:", flush=True)
            for what, why in left_out:
                print("  %-40s %s" % (what, why))
            print("Run as root with iproute2, nftables, e2fsprogs and faketime (./do deps), "
                  "or set %s=1 to run without them (the result lists what was left out)."
                  % REDUCED_ENV, flush=True)
            return 2
        for what, why in left_out:
            log("REDUCED RUN: left out %s (%s)" % (what, why))
        log("seed %d, %s mode, nemeses: %s" % (seed, "netns" if feats.netns else "loopback",
                                                ",".join(kinds) or "none"))
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
        want_nodes = len(world.servers) + len(world.agents)
        end = until(45)
        conn = []
        while True:
            try:
                st, body = leader_call(world, "GET", "/v1/nodes", tries=4)
                conn = [n["id"] for n in body["nodes"] if n.get("connected")]
                if len(conn) >= want_nodes:
                    break
            except RuntimeError:
                pass
            if time.monotonic() > end:
                raise C.StepTimeout("setup: %d of %d nodes connected (%s)" % (
                    len(conn), want_nodes, ", ".join(sorted(conn))))
            time.sleep(0.5)
        add_jobs(world, unit_script)
        run_id = "%d" % seed
        workers = Workers(world, hist, seed, unit_script, run_id=run_id, kv_keys=8, fw_threads=2,
                          fw_burst_threads=6, rlock_threads=6)
        obs = Observer(world)
        nem = Nemesis(world, hist, seed + 1, kinds)
        workers.stall = nem.stall
        nem.before_leader_kill = workers.burst

    with phases.phase("faults", args.minutes * 60 + 5) as d:
        obs.start()
        hist.event("workloads-start")
        workers.start()
        nem.start()
        t_faults = time.monotonic()
        log("running for %.1f minutes" % args.minutes)
        t_end = t_faults + args.minutes * 60
        while time.monotonic() < t_end:
            time.sleep(min(10, max(0.1, t_end - time.monotonic())))
        t_stop = time.monotonic()

    with phases.phase("stop", BUDGET["stop"]) as d:
        log("stopping the workloads and the nemesis")
        workers.signal_stop(WORKER_STOP_SECONDS)
        nem.signal_stop()
        for t in workers.threads + nem.threads():
            t.join(max(0.0, d.left()))
        alive = [t.name for t in workers.threads + nem.threads() if t.is_alive()]
        if alive:
            phases.problem("stop: threads still running after %.0f s: %s" % (
                d.seconds, ", ".join(alive)))
        workers.stop_by = None      # the resolver submits through the workers next

    with phases.phase("settle", BUDGET["settle"]) as d:
        log("healing")
        nem.heal_all(seconds=45)
        try:
            world.wait_leader(45)
        except C.StepTimeout as e:
            log("settle: %s" % e)
        for msg in readd_missing(world, hist):
            phases.problem(msg)
        members_ok = wait_members(world, 60)
        hist.f.flush()
        n_unknown, resolved, unresolved = resolve_unknown_submits(world, workers,
                                                                  read_history(hist_path))
        log("%d unknown submissions resubmitted, %d resolved" % (n_unknown, len(resolved)))
        if unresolved:
            phases.problem("settle: %d unknown submissions not resubmitted for want of time"
                           % unresolved)
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
        readback = read_back_failed_writes(world, recs, run_id)
        log("waiting for %d acknowledged tasks" % len(acked))
        tasks = finish_tasks(world, acked, timeout=90)
        # the job runs' own tasks finish too (the jobs are paused now)
        units = read_unit_logs(world.unitlog_dir)
        job_tasks = sorted({u["task"] for u in units if u.get("job")})
        finish_tasks(world, job_tasks, timeout=45)
        if not obs.halt(max(0.0, min(15, d.left()))):
            phases.problem("settle: the observer did not stop")
        obs.sample_runs()
        converged, last = wait_converged(world, obs, timeout=60)
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
                     job_units=job_units, digests=obs.samples,
                     converged=converged and members_ok, last=last)

    with phases.phase("check", BUDGET["check"]):
        log("checking %d history records and %d unit log lines" % (len(recs), len(units)))
        results = checkers.run_all(recs, units, final, kills=dict(nem.kills),
                                   max_steps=args.max_steps, exclusive_jobs=list(JOBS),
                                   crashes=nem.crashes, max_seconds=CHECK_KV_SECONDS)
    for p in nem.problems:
        phases.problem("fault step %s %s" % (p["step"], "failed: " + p["error"] if p["error"]
                                             else "overran its %.0f s deadline (%.1f s)" % (
                                                 p["deadline"], p["took"])))
    timeline = nemesis_timeline(nem, t_faults, t_stop)
    log("fault steps: %d, largest gap between them %.1f s (from %.1f s into the faults)"
        % timeline)
    ops = count_ops(recs)
    meta = "seed %d, %.1f min, %s, nemeses %s" % (seed, args.minutes,
                                                  "netns" if feats.netns else "loopback",
                                                  ",".join(kinds) or "none")
    print_table(nem.counts, ops, results, nem.crashes, meta, left_out, phases, timeline,
                nem.problems)
    report = dict(seed=seed, minutes=args.minutes, kinds=kinds, faults=dict(nem.counts),
                  left_out=[dict(what=a, why=b) for a, b in left_out],
                  bound_s=phases.bound, phases=phases.done, harness_problems=phases.problems,
                  fault_steps=timeline[0], largest_fault_gap_s=round(timeline[1], 1),
                  nemesis_problems=nem.problems,
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
    if bad or phases.problems or args.keep:
        print("\nrun directory kept: %s (history.jsonl, unitlogs/, report.json, server logs)"
              % world.dir)
    else:
        C.on_cleanup(lambda: shutil.rmtree(world.dir, ignore_errors=True), last=True)
    teardown(phases)
    if bad:
        return 1
    if phases.problems:
        print("HARNESS: %d problem(s) above: the run did not do all it claims (exit 2)"
              % len(phases.problems), flush=True)
        return 2
    return 0


def teardown(phases):
    t = time.monotonic()
    C.cleanup()
    took = time.monotonic() - t
    log("teardown took %.1f s (budget %d s)" % (took, BUDGET["teardown"]))
    if took > BUDGET["teardown"]:
        phases.problem("phase teardown overran its budget: %.1f s of %d s" % (
            took, BUDGET["teardown"]))


if __name__ == "__main__":
    try:
        rc = main()
    except SystemExit:
        raise
    except C.StepTimeout as e:
        traceback.print_exc()
        print("\nHARNESS: a step overran its deadline: %s (exit 2)" % e, flush=True)
        rc = 2
    except Exception:  # noqa: BLE001 - the harness failed, not the cluster
        traceback.print_exc()
        print("\nHARNESS: the harness failed (exit 2)", flush=True)
        rc = 2
    C.cleanup()
    sys.exit(rc)
