"""The nemesis: faults injected while the workloads run, and their healing.

Kinds (each can be enabled with --nemesis):
  kill        kill -9 of a server (or now and then a standalone agent) and of
              every process it started (its units), restart 1-8 s later
  pause       SIGSTOP of a server or agent for 2-12 s (beyond --lost-after
              now and then), then SIGCONT
  partition   nftables in the servers' namespaces: random halves, the leader
              isolated, a bridge (two groups and one node that sees both),
              a majorities ring (each node sees a different majority), or
              one way (a node hears nobody; it can still send) for 4-15 s
  membership  a server removed from the Raft configuration, stopped, its data
              wiped, and 5-15 s later started again with --join (re-added)
  clock       the wall clock of one server (run under libfaketime) jumps by
              10-150 s forward or back for 5-20 s (never more than 4 min off:
              the servers' signed calls accept 5 min of skew)
  disk        the filesystem of one server's data directory filled to the last
              MiB for 5-15 s
  stall       SIGSTOP of a follower at the moment a retrying lock client sends
              it a request (the request waits in its socket), SIGCONT 2.5-6 s
              later, after the client retried elsewhere: the follower then
              reads and forwards the old copy. Driven by the clients (stall()),
              at most one at a time, one every 3-7 s at most; not counted
              against the two faults of the other kinds

At most two faults are active at once, one of each kind. A supervisor notes
every process that exits on its own (a crash) and restarts it. Every fault
and heal is recorded in the history as a nemesis event.

Every fault step (an injection or a heal) runs within STEP_SECONDS
(cluster.within): its subprocess and HTTP calls are cut to that deadline. A
step that fails or ends past its deadline is logged and kept in `problems`
(the run reports them and fails); the loop then goes on with its schedule.
"""
import os
import random
import threading
import time
from collections import Counter, defaultdict

from cluster import StepTimeout, api, current_step, log, within

ALL_KINDS = ("kill", "pause", "partition", "membership", "clock", "disk", "stall")
# kill (three in four server kills take the leader) is drawn three times as often
WEIGHT = {"kill": 3}
STEP_SECONDS = 10.0      # an injection or a heal
REMOVE_SECONDS = 25.0    # the background removal of a member (its own thread)
LATE_SECONDS = 2.0       # a loop turn this late is logged


class Nemesis:
    def __init__(self, world, history, seed, kinds, interval=(2.0, 6.0), max_active=2):
        self.w = world
        self.h = history
        self.rng = random.Random(seed)
        self.kinds = list(kinds)
        self.interval = interval
        self.max_active = max_active
        self.counts = Counter()          # kind or kind:subkind -> injected
        self.crashes = []                # processes that exited on their own
        self.kills = defaultdict(list)   # node name -> wall times of kill -9
        self.active = {}                 # kind -> (end monotonic, heal fn, desc)
        self.lock = threading.RLock()
        self.stop_ev = threading.Event()
        self.thread = None
        self.clock_offset = 0
        self.disk_full = False
        self.disk_freed_at = 0.0
        self.removed = None
        self.pending = []                # background actions (membership)
        self.stall_rng = random.Random(seed + 2)
        self.before_leader_kill = None   # fn(seconds): the follower writers' burst
        self.stalled = None              # (proc, end monotonic, desc)
        self.next_stall = time.monotonic() + 3
        self.problems = []               # fault steps that failed or overran their deadline
        self.healing = False             # heal_all began: a removal under way gives up
        self.steps = []                  # (monotonic, what) of every fault step

    # -- loop ----------------------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self._loop, name="nemesis", daemon=True)
        self.thread.start()

    def _loop(self):
        next_at = time.monotonic() + self.rng.uniform(*self.interval)
        last = time.monotonic()
        while not self.stop_ev.is_set():
            now = time.monotonic()
            if now - last > 0.2 + LATE_SECONDS:
                log("nemesis: loop turn %.1f s late" % (now - last - 0.2))
            with self.lock:
                for kind, (end, heal, desc) in list(self.active.items()):
                    if now >= end and not self.stop_ev.is_set():
                        self._heal(kind)
                if self.stalled and now >= self.stalled[1]:
                    self._unstall()
                self._supervise()
                if self.kinds and now >= next_at and len(self.active) < self.max_active \
                        and not self.stop_ev.is_set():
                    free = [k for k in self.kinds if k not in self.active and k != "stall"]
                    free = [k for k in free for _ in range(WEIGHT.get(k, 1))]
                    if free:
                        self._inject(self.rng.choice(free))
                    next_at = time.monotonic() + self.rng.uniform(*self.interval)
            last = time.monotonic()
            self.stop_ev.wait(0.2)

    def signal_stop(self):
        """Ask the loop to stop (it ends within one fault step); the caller
        joins self.threads() with its own deadline."""
        self.stop_ev.set()

    def threads(self):
        return ([self.thread] if self.thread else []) + list(self.pending)

    def _problem(self, step, d, error=None):
        """A fault step that failed or overran: logged, recorded in the
        history, kept for the result."""
        took = d.took()
        what = "overran its %.0f s deadline (took %.1f s)" % (d.seconds, took) \
            if took > d.seconds or isinstance(error, StepTimeout) else "failed"
        msg = "nemesis step %s %s%s" % (step, what, ": %s" % error if error else "")
        log(msg)
        self.problems.append(dict(step=step, took=round(took, 2), deadline=d.seconds,
                                  error=str(error) if error else None, wall=time.time()))
        self.h.event("nemesis-problem", value=self.problems[-1])

    def _step_done(self, step, d):
        self.steps.append((time.monotonic(), step))
        if d.took() > d.seconds:
            self._problem(step, d)

    def _inject(self, kind):
        with within(STEP_SECONDS, "inject " + kind) as d:
            try:
                res = getattr(self, "_start_" + kind)()
            except Exception as e:  # noqa: BLE001 - reported, and the schedule goes on
                self._problem("inject " + kind, d, e)
                if kind == "partition":
                    self._heal_network_after_failure()
                return
            if res is None:
                return
            dur, heal, desc = res
            self.active[kind] = (time.monotonic() + dur, heal, desc)
            self.counts[kind] += 1
            log("nemesis: %s (%.1fs)" % (desc, dur))
            self.h.event("start-" + kind, value=desc, duration=dur)
            self._step_done("inject " + kind, d)

    def _heal_network_after_failure(self):
        with within(STEP_SECONDS, "heal a failed partition", fresh=True) as d:
            try:
                self.w.net.heal()
            except Exception as e:  # noqa: BLE001
                self._problem("heal a failed partition", d, e)

    def _heal(self, kind):
        end, heal, desc = self.active[kind]
        with within(STEP_SECONDS, "heal " + kind) as d:
            try:
                if heal() == "later":
                    # not ready (a removal still under way): try again soon
                    self.active[kind] = (time.monotonic() + 0.5, heal, desc)
                    return
            except Exception as e:  # noqa: BLE001
                self._problem("heal " + kind, d, e)
            self.active.pop(kind, None)
            self.h.event("stop-" + kind, value=desc)
            self._step_done("heal " + kind, d)

    def heal_all(self, seconds=60):
        """End every fault, restart everything that is down, re-add a removed
        server: within `seconds` (a removal still under way is waited for
        first, within its own deadline). Returns the problems it met."""
        n0 = len(self.problems)
        self.healing = True
        with within(seconds, "heal everything") as d:
            for t in self.pending:
                t.join(max(0.1, d.left()))
            with self.lock:
                for kind in list(self.active):
                    _, heal, desc = self.active[kind]
                    if kind == "membership" and not heal.done.is_set():
                        self._problem("heal membership", d, "the removal never finished")
                    self._heal(kind)
                    if kind in self.active:      # still "later"
                        self.active.pop(kind)
                        self._problem("heal " + kind, d, "still not ready at the end")
                if self.stalled:
                    self._unstall()
                try:
                    self.w.net.heal()
                except Exception as e:  # noqa: BLE001
                    self._problem("heal everything: network", d, e)
                self._set_clock(0)
                self._disk_free()
                for p in list(self.w.servers.values()) + list(self.w.agents.values()):
                    p.resume()
                    if not p.alive():
                        if p.state == "removed":
                            p.join_mode = True
                        p.start()
                self.h.event("heal-all")
            if d.took() > d.seconds:
                self._problem("heal everything", d)
        return self.problems[n0:]

    def _kill9(self, p, step):
        """p.kill9(); a kill that may have missed a process (or a process
        that outlived SIGKILL) is a problem of the step, and the step goes
        on: p is down."""
        try:
            p.kill9()
        except RuntimeError as e:
            self._problem(step, current_step(), e)

    # -- supervisor ----------------------------------------------------------
    def _supervise(self):
        for p in list(self.w.servers.values()) + list(self.w.agents.values()):
            if p.state in ("up", "paused") and p.proc is not None and p.proc.poll() is not None:
                rc = p.proc.returncode
                # An exit is seen late when the kernel writes a core dump:
                # count it as the disk's if the disk was full in the last 30 s.
                recent = self.disk_full or time.time() - self.disk_freed_at < 30
                why = "disk full" if (recent and p.kind == "server" and p.sid == self.w.disk) \
                    else "unexpected"
                tail = p.log_tail(1500)
                self.crashes.append(dict(node=p.name, rc=rc, why=why, wall=time.time(), tail=tail))
                self.h.event("crash", value={"node": p.name, "rc": rc, "why": why})
                log("nemesis: %s exited by itself (rc %s, %s)" % (p.name, rc, why))
                p.state = "killed"
                if why != "disk full":
                    p.start()

    # -- helpers -------------------------------------------------------------
    def _up(self, servers=True, agents=False):
        out = []
        if servers:
            out += [p for p in self.w.servers.values() if p.state == "up" and p.alive()]
        if agents:
            out += [p for p in self.w.agents.values() if p.state == "up" and p.alive()]
        return out

    @staticmethod
    def node_name(p):
        return "server-%d" % p.sid if p.kind == "server" else "agent-%s" % p.name[1:]

    # -- kill ----------------------------------------------------------------
    def _start_kill(self):
        agent = self.w.agents and self.rng.random() < 0.2
        cands = self._up(servers=not agent, agents=agent)
        if not cands:
            return None
        p = self.rng.choice(cands)
        sub = p.kind
        if not agent and self.rng.random() < 0.75:
            # the leader: writes forwarded by the followers are in flight.
            # No leader right now (an election after the last kill): no kill
            # this time rather than a follower's
            lid = self.w.leader()
            if not lid or self.w.servers[lid].state != "up":
                return None
            p, sub = self.w.servers[lid], "leader"
            if self.before_leader_kill is not None:
                self.before_leader_kill(2.5)
                time.sleep(0.8)      # let the burst of forwarded writes build
        self.kills[self.node_name(p)].append(time.time())
        self._kill9(p, "inject kill")
        self.h.event("kill-sent", value={"node": p.name, "leader": sub == "leader",
                                         "wall": getattr(p, "killed_at", None)})
        self.counts["kill:" + sub] += 1

        def heal():
            if p.state == "killed":
                p.start()
        # a killed leader comes back sooner, so the next kill comes sooner
        dur = self.rng.uniform(1, 4) if sub == "leader" else self.rng.uniform(1, 8)
        return dur, heal, "kill -9 %s%s" % (p.name, " (the leader)" if sub == "leader" else "")

    # -- stall ---------------------------------------------------------------
    def stall(self, addr, who, leader_id):
        """Called by a retrying lock client just before it sends a request
        to addr: now and then, pause that server first (a follower, up),
        so the request waits unread in its socket until SIGCONT."""
        if "stall" not in self.kinds or self.stop_ev.is_set():
            return False
        if not self.lock.acquire(blocking=False):
            return False      # the nemesis is busy: never hold a client up
        try:
            now = time.monotonic()
            if self.stalled or now < self.next_stall or self.stall_rng.random() > 0.5:
                return False
            p = next((s for s in self.w.servers.values() if s.api == addr), None)
            if p is None or p.sid == leader_id or leader_id is None or p.state != "up" \
                    or not p.alive():
                return False
            p.pause()
            dur = self.stall_rng.uniform(2.5, 6.0)
            desc = "stall %s (a request of %s)" % (p.name, who)
            self.stalled = (p, now + dur, desc)
            self.counts["stall"] += 1
            self.steps.append((now, "stall " + p.name))
        finally:
            self.lock.release()
        log("nemesis: %s (%.1fs)" % (desc, dur))
        self.h.event("start-stall", value=desc, duration=dur, server=p.name, client=who)
        return True

    def _unstall(self):
        p, _, desc = self.stalled
        self.stalled = None
        p.resume()
        self.next_stall = time.monotonic() + self.stall_rng.uniform(3, 7)
        self.steps.append((time.monotonic(), "unstall " + p.name))
        self.h.event("stop-stall", value=desc)

    # -- pause ---------------------------------------------------------------
    def _start_pause(self):
        agent = self.w.agents and self.rng.random() < 0.2
        cands = self._up(servers=not agent, agents=agent)
        if not cands:
            return None
        p = self.rng.choice(cands)
        p.pause()
        self.counts["pause:" + p.kind] += 1

        def heal():
            p.resume()
        return self.rng.uniform(2, 12), heal, "pause %s" % p.name

    # -- partition -----------------------------------------------------------
    def _start_partition(self):
        if not self.w.net.netns:
            return None
        names = [p.name for p in self.w.servers.values()]
        agents = [p.name for p in self.w.agents.values()]
        self.rng.shuffle(names)
        sub = self.rng.choice(["halves", "isolate-leader", "bridge", "ring", "one-way"])
        grudge = {n: set() for n in names + agents}   # node -> nodes it does not hear
        one_way = False
        if sub == "halves":
            k = self.rng.choice([1, 2])
            a, b = set(names[:k + 1]), set(names[k + 1:])
            for ag in agents:
                (a if self.rng.random() < 0.5 else b).add(ag)
            for x in a:
                grudge[x] |= b
            for x in b:
                grudge[x] |= a
            desc = "partition halves %s | %s" % (sorted(a), sorted(b))
        elif sub == "isolate-leader":
            lid = self.w.leader()
            lone = "s%d" % lid if lid else names[0]
            rest = set(names + agents) - {lone}
            grudge[lone] |= rest
            for x in rest:
                grudge[x].add(lone)
            desc = "partition isolate leader %s" % lone
        elif sub == "bridge":
            a, br, b = set(names[:2]), names[2], set(names[3:])
            for x in a:
                grudge[x] |= b
            for x in b:
                grudge[x] |= a
            desc = "partition bridge %s - %s - %s" % (sorted(a), br, sorted(b))
        elif sub == "ring":
            n = len(names)
            for i, x in enumerate(names):
                near = {names[(i - 1) % n], names[(i + 1) % n], x}
                grudge[x] |= set(names) - near
            desc = "partition majorities ring %s" % "-".join(names)
        else:
            deaf = names[0]
            grudge[deaf] |= set(names[1:] + agents)
            one_way = True
            desc = "partition one-way: %s hears nobody" % deaf
        for x, g in grudge.items():
            self.w.net.block(x, g, set() if one_way else g)
        self.counts["partition:" + sub] += 1
        return self.rng.uniform(4, 15), self.w.net.heal, desc

    # -- membership ----------------------------------------------------------
    def _members(self, api_addr):
        st, body = api(api_addr, "GET", "/v1/members", timeout=3)
        if st != 200:
            return None
        return {m["id"]: m["role"] for m in body["members"]}

    def _start_membership(self):
        if self.removed is not None:
            return None
        ups = self._up()
        if len(ups) < len(self.w.servers):
            return None       # only remove from a whole cluster
        lid = self.w.leader()
        try:
            m = self._members(self.w.servers[lid].api) if lid else None
        except OSError:
            m = None
        if m is None or set(m) != set(self.w.servers) or any(r != "voter" for r in m.values()):
            return None       # the last re-add has not finished
        victim = self.rng.choice(ups)
        others = [p for p in ups if p is not victim]
        done = threading.Event()
        self.removed = victim
        victim.state = "removing"

        rng = random.Random(self.rng.random())    # this thread's own

        def remove():
            # Its own deadline: tries for 20 s, the kill and the wipe after;
            # gives up when the nemesis stops. Not under self.lock: the loop
            # goes on meanwhile.
            with within(REMOVE_SECONDS, "remove " + victim.name) as d:
                try:
                    ok = False
                    while time.monotonic() < d.end - 5 and not ok and not self.healing \
                            and not self.stop_ev.is_set():
                        via = rng.choice(others)
                        try:
                            st, body = api(via.api, "DELETE", "/v1/members/%d" % victim.sid,
                                           timeout=8)
                        except OSError as e:
                            st, body = None, repr(e)
                        self.h.event("member-remove", value={"id": victim.sid, "via": via.name,
                                                             "status": st})
                        if self.stop_ev.is_set() or self.healing:
                            break
                        try:
                            m = self._members(via.api)
                        except OSError:
                            m = None
                        if m is not None and victim.sid not in m:
                            ok = True
                            break
                        self.stop_ev.wait(1)
                    if not ok:
                        log("nemesis: could not remove %s; leaving it in" % victim.name)
                        victim.state = "up"
                        self.h.event("member-remove-failed", value={"id": victim.sid})
                        return
                    self.kills[self.node_name(victim)].append(time.time())
                    self._kill9(victim, "remove " + victim.name)
                    victim.state = "removed"
                    wipe(victim.data)
                    log("nemesis: %s removed and wiped" % victim.name)
                except Exception as e:  # noqa: BLE001 - reported like any fault step
                    self._problem("remove " + victim.name, d, e)
                    if victim.state == "removing":
                        victim.state = "up"
                finally:
                    if d.took() > d.seconds:
                        self._problem("remove " + victim.name, d)
                    done.set()

        t = threading.Thread(target=remove, name="nemesis-remove", daemon=True)
        t.start()
        self.pending = [x for x in self.pending if x.is_alive()] + [t]

        def heal():
            if not done.is_set():
                return "later"
            if victim.state == "removed":
                # The wiped server's embedded agent has a new identity key: the
                # operator's step (docs/SECURITY.md) is to forget the old one.
                for via in self.rng.sample(others, len(others)):
                    try:
                        st, _ = api(via.api, "DELETE", "/v1/agents/server-%d" % victim.sid,
                                    timeout=3)
                    except OSError:
                        st = None
                    self.h.event("agent-forget", value={"id": victim.sid, "via": via.name,
                                                        "status": st})
                    if st in (200, 404):
                        break
                victim.join_mode = True
                victim.start()
                self.h.event("member-rejoin", value={"id": victim.sid})
            self.removed = None
        heal.done = done
        return self.rng.uniform(8, 18), heal, "remove and re-add %s" % victim.name

    # -- clock ---------------------------------------------------------------
    def _set_clock(self, offset):
        p = self.w.servers.get(self.w.clock_victim) if self.w.clock_victim else None
        if p is None or not p.faketime_file:
            return
        self.clock_offset = offset
        tmp = p.faketime_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+d\n" % offset)
        os.replace(tmp, p.faketime_file)

    def _start_clock(self):
        if not self.w.clock_victim:
            return None
        jump = self.rng.choice([-1, 1]) * self.rng.uniform(10, 150)
        off = int(max(-240, min(240, self.clock_offset + jump)))
        self._set_clock(off)
        self.counts["clock:%s" % ("forward" if jump > 0 else "back")] += 1
        return self.rng.uniform(5, 20), lambda: self._set_clock(0), \
            "clock of s%d %+ds" % (self.w.clock_victim, off)

    # -- disk ----------------------------------------------------------------
    def _disk_free(self):
        if self.w.disk_mount:
            b = os.path.join(self.w.disk_mount, "ballast")
            if os.path.exists(b):
                os.unlink(b)
        was = self.disk_full
        if was:
            self.disk_freed_at = time.time()
        self.disk_full = False
        p = self.w.servers.get(self.w.disk) if self.w.disk else None
        if was and p is not None and p.state == "killed" and not p.alive():
            p.start()

    def _start_disk(self):
        if not self.w.disk_mount or not os.path.ismount(self.w.disk_mount):
            return None
        p = self.w.servers[self.w.disk]
        if p.state not in ("up", "paused"):
            return None
        st = os.statvfs(self.w.disk_mount)
        free = st.f_bavail * st.f_frsize
        fill = max(0, free - (1 << 20))
        path = os.path.join(self.w.disk_mount, "ballast")
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.posix_fallocate(fd, 0, fill)
        except OSError:
            pass
        finally:
            os.close(fd)
        self.disk_full = True
        return self.rng.uniform(5, 15), self._disk_free, \
            "disk of %s full (%d MiB ballast)" % (p.name, fill >> 20)


def wipe(path):
    """Empty a directory (it may be a mount point: keep it)."""
    import shutil
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            try:
                os.unlink(full)
            except OSError:
                pass
