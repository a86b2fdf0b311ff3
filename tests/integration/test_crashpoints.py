"""Crash points: a server killed at an exact instant (before and after the
LMDB commit of applied entries, after taking a snapshot, after raft wrote it,
in the middle of installing one, in a membership change) comes back, catches
up, and every replica has the same state at the same index; nothing
acknowledged is lost (common/crashpoint.h, docs/CHAOS.md)."""
import os
import time

from flotilla_cluster import Cluster, check, run
from test_failover import load, verify

ARGS = ["--snapshot-threshold", "64", "--snapshot-trailing", "16"]


def start_armed(server, point, **kw):
    os.environ["FLOTILLA_CRASHPOINT"] = point
    try:
        server.start(**kw)
    finally:
        del os.environ["FLOTILLA_CRASHPOINT"]


def died_at(server, point, timeout=60):
    """Wait for the process to die at the crash point; check it said so."""
    name = point.split(":")[0]
    try:
        server.proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 - report below
        pass
    check(server.proc.poll() is not None, "server %d never reached %s" % (server.id, point))
    check(server.proc.returncode == -9, "killed by SIGKILL: rc %r" % server.proc.returncode)
    with open(server.log, errors="replace") as f:
        check("crash point %s reached" % name in f.read(),
              "server %d's log names crash point %s" % (server.id, name))


def crash_under_load(c, victim, point, prefix):
    # Writes acknowledged before the crash must survive it too: with them the
    # check below has something to verify even when the restarted server
    # reaches its crash point while it replays its log, before any new write.
    ts, acked, errors = load(c, 50, "%sbefore-" % prefix, threads=2)
    for t in ts:
        t.join()
    check(not errors and len(acked) == 50, "writes before the crash: %d acked, %d errors"
          % (len(acked), len(errors)))
    victim.kill9()
    start_armed(victim, point)
    end = time.time() + 60
    rnd = 0
    # Keep writing until it dies: a round can end before the restarted
    # server has applied anything.
    while victim.alive() and time.time() < end:
        ts, got, errors = load(c, 150, "%s%d-" % (prefix, rnd), threads=4)
        for t in ts:
            t.join()
        check(not errors, "writes never acknowledged: %d" % len(errors))
        acked.update(got)
        rnd += 1
        time.sleep(0.1)
    died_at(victim, point, timeout=5)
    victim.start()
    victim.wait_up()
    verify(c, acked, prefix)
    return acked


def test_apply_and_snapshot_points():
    c = Cluster(3, ARGS, "crashpt").start()
    try:
        lid = c.leader()
        follower = next(s for s in c.servers.values() if s.id != lid)
        for i, point in enumerate(["apply-before-commit:5", "apply-after-commit:5",
                                   "snapshot-taken:1", "snapshot-written:1"]):
            crash_under_load(c, follower, point, "cp%d-" % i)
        # The leader too: its crash is a failover in the middle of a commit.
        leader = c.servers[c.leader()]
        crash_under_load(c, leader, "apply-after-commit:5", "cpl-")
    finally:
        c.close()


def test_snapshot_install_point():
    c = Cluster(3, ARGS, "crashinst").start()
    try:
        lid = c.leader()
        victim = next(s for s in c.servers.values() if s.id != lid)
        victim.kill9()
        ts, acked, errors = load(c, 400, "in-", threads=4)
        for t in ts:
            t.join()
        check(not errors, "writes while it was down")
        # Far behind the leader's trailing log: it gets a snapshot, and dies
        # in the middle of installing it.
        start_armed(victim, "snapshot-install")
        died_at(victim, "snapshot-install")
        victim.start()
        victim.wait_up()
        verify(c, acked, "in-")
        st = victim.status()
        check(st["fsm"]["restores"] >= 1, "the second start installed the snapshot: %r" % st["fsm"])
    finally:
        c.close()


def test_membership_point():
    """Every server is armed to die right after it adds a joining server and
    before it promotes it: the join must still complete once they restart."""
    c = Cluster(3, ARGS, "crashmem").start()
    try:
        for s in list(c.servers.values()):
            s.kill9()
            start_armed(s, "member-added")
            s.wait_up()
            c.leader()
        new = c.add_server(4)
        lid = c.leader()
        new.start(join=c.servers[lid].api)
        crashed = set()
        end = time.time() + 90
        voter = False
        while time.time() < end and not voter:
            for s in list(c.servers.values()):
                if s.id != 4 and not s.alive():
                    if s.id not in crashed:
                        died_at(s, "member-added")
                        crashed.add(s.id)
                    s.start()
                    s.wait_up()
            try:
                from flotilla_cluster import request
                lid = c.leader(timeout=5)
                st, body, _ = request(c.servers[lid].api, "GET", "/v1/members")
                voter = st == 200 and any(m["id"] == 4 and m["role"] == "voter"
                                          for m in body["members"])
            except (OSError, RuntimeError):
                pass
            time.sleep(0.2)
        check(crashed, "no server reached the crash point")
        if not voter:
            try:
                from flotilla_cluster import request
                st, body, _ = request(c.servers[c.leader(timeout=5)].api, "GET", "/v1/status")
                print("leader status: membership %r members %r" % (body.get("membership"), body.get("members")))
            except (OSError, RuntimeError):
                pass
        check(voter, "server 4 became a voter after %d crashes" % len(crashed))
        ts, acked, errors = load(c, 100, "mem-", threads=2)
        for t in ts:
            t.join()
        verify(c, acked, "mem-")
    finally:
        c.close()


if __name__ == "__main__":
    run([test_apply_and_snapshot_points, test_snapshot_install_point, test_membership_point])
