"""Joining, standby and promotion, leadership transfer, removal; `flotilla dev`."""
import os
import re
import signal
import subprocess
import tempfile
import shutil
import time

import flotilla_cluster
from flotilla_cluster import BIN, Cluster, check, free_port_block, put, request, run


def members(api):
    st, body, _ = request(api, "GET", "/v1/members?stale")
    check(st == 200, "members: %s" % st)
    return {m["id"]: m["role"] for m in body["members"]}


def wait_for(pred, timeout=30, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def test_join_standby_promote_transfer_remove():
    c = Cluster(3, ["--snapshot-threshold", "64", "--snapshot-trailing", "32"], "members").start()
    try:
        lid = c.leader()
        for i in range(200):  # enough history that the joiners need a snapshot
            st, _, _ = put(c.servers[lid].api, "pre%03d" % i, "x" * 100)
            check(st == 200, "pre-write")
        # A voter joins through a follower (the request is forwarded).
        follower = next(s for s in c.servers.values() if s.id != lid)
        s4 = c.add_server(4)
        s4.start(join=follower.api)
        s4.wait_up()
        wait_for(lambda: members(c.servers[lid].api).get(4) == "voter", what="server 4 voter")
        # A standby joins, replicates, and does not vote.
        s5 = c.add_server(5)
        s5.start(join=c.servers[lid].api, standby=True)
        s5.wait_up()
        wait_for(lambda: members(c.servers[lid].api).get(5) == "standby", what="server 5 standby")
        c.wait_nodes(5)
        c.wait_converged(timeout=60)
        st, body, _ = request(s5.api, "GET", "/v1/kv/pre199?stale")
        check(st == 200 and body["value"] == "x" * 100, "the standby has the data")
        # The log was compacted past what the joiners lacked: both caught
        # up from a snapshot, not only from the log.
        for joiner in (s4, s5):
            fsm = joiner.status()["fsm"]
            check(fsm["restores"] >= 1, "server %d installed a snapshot: %r" % (joiner.id, fsm))
        # Promote the standby with the CLI.
        r = subprocess.run([BIN, "members", "promote", "5", "--addr", s4.api], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, "promote: %r" % r.stderr)
        check(members(c.servers[lid].api)[5] == "voter", "server 5 is a voter")
        # Transfer leadership to server 5.
        st, body, _ = request(c.servers[lid].api, "POST", "/v1/members/transfer", {"id": 5})
        check(st == 200, "transfer: %s %r" % (st, body))
        check(c.leader() == 5, "server 5 leads")
        # Server 4 leaves; it is gone from the configuration everywhere.
        r = subprocess.run([BIN, "members", "leave", "--addr", s4.api],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "remove: %r" % r.stderr)
        wait_for(lambda: 4 not in members(c.servers[1].api), what="server 4 removed")
        s4.stop()
        del c.servers[4]
        st, _, _ = put(c.servers[1].api, "after", "removal")
        check(st == 200, "the four-voter cluster still writes")
        c.wait_converged(timeout=60)
        # Removing the leader itself: it steps down and the rest elect.
        st, body, _ = request(c.servers[2].api, "DELETE", "/v1/members/5")
        check(st == 200, "remove the leader: %s %r" % (st, body))
        wait_for(lambda: 5 not in members(c.servers[1].api), what="leader removed")
        new = c.leader(exclude=(5,))
        check(new in (1, 2, 3), "a remaining server leads")
    finally:
        c.close()


def test_transfer_and_membership_errors():
    c = Cluster(3, name="memberr").start()
    try:
        lid = c.leader()
        api = c.servers[lid].api
        st, body, _ = request(api, "POST", "/v1/members/transfer", {"id": 99})
        check(st == 404, "transfer to an unknown server: %s %r" % (st, body))
        st, body, _ = request(api, "POST", "/v1/members/2/promote")
        check(st == 200, "promoting a voter is a no-op: %s" % st)
        st, body, _ = request(api, "POST", "/v1/members", {"id": 2, "raft_addr": "127.0.0.1:1"})
        check(st in (200, 409), "re-adding an existing id does not break anything: %s" % st)
        check(len(members(api)) == 3, "still three members")
    finally:
        c.close()


def test_dev_up_and_down():
    d = tempfile.mkdtemp(prefix="flotilla-it-dev-")
    base = free_port_block(3)
    p = None
    try:
        p = subprocess.Popen([BIN, "dev", "--dir", d, "--base-port", str(base)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first = p.stdout.readline()
        m = re.search(r"leader (server-\d) elected in ([0-9.]+) s", first)
        check(m is not None, "dev reports its leader: %r" % first)
        # Election time is measured by bench/, not asserted here: a loaded CI
        # machine can stretch it. This only bounds a hang.
        check(float(m.group(2)) < 20.0, "a leader within 20 s: %s" % m.group(2))
        api = "127.0.0.1:%d" % (base + 1)
        flotilla_cluster.CA_FILE = os.path.join(d, "pki", "ca.pem")  # dev's own CA
        lines = []
        while not lines or "Press Ctrl-C" not in lines[-1]:
            lines.append(p.stdout.readline())
            check(len(lines) < 20 and lines[-1], "dev's banner ends: %r" % lines)
        check(any("API token (management): %s/token" % d in ln for ln in lines),
              "dev prints where its token is: %r" % lines)
        tok_path = os.path.join(d, "token")
        check(os.stat(tok_path).st_mode & 0o077 == 0, "the token file is private")
        with open(tok_path) as f:
            token = f.read().strip()
        st, body, _ = request(api, "PUT", "/v1/kv/dev", {"value": "works"}, token=None)
        check(st == 401, "no write without the token: %s %r" % (st, body))
        st, body, _ = request(api, "PUT", "/v1/kv/dev", {"value": "works"}, token=token)
        check(st == 200, "write through dev with its token: %s %r" % (st, body))
        pids = subprocess.run(["pgrep", "-f", "--", "--data %s/server-" % d], capture_output=True,
                              text=True).stdout.split()
        check(len(pids) == 3, "three server processes: %r" % pids)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
        check(p.returncode == 0 and "stopped" in out, "clean stop: %r" % out)
        left = subprocess.run(["pgrep", "-f", "--", "--data %s/server-" % d], capture_output=True,
                              text=True).stdout.split()
        check(left == [], "no server left running: %r" % left)
        for i in (1, 2, 3):
            log = open(os.path.join(d, "server-%d.log" % i)).read()
            check("stopped" in log, "server-%d shut down cleanly" % i)
        # Up again on the same data: the key is still there.
        p = subprocess.Popen([BIN, "dev", "--dir", d, "--base-port", str(base)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        p.stdout.readline()
        st, body, _ = request(api, "GET", "/v1/kv/dev", token=token)
        check(st == 200 and body["value"] == "works", "data survives a restart: %r" % body)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        check(p.returncode == 0, "stopped by SIGTERM too")
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        # Servers of a dev cluster whose parent died must not outlive the test.
        subprocess.run(["pkill", "-9", "-f", "--", "--data %s/server-" % d])
        shutil.rmtree(d, ignore_errors=True)
        flotilla_cluster.CA_FILE = flotilla_cluster.DEFAULT_CA


if __name__ == "__main__":
    run([test_join_standby_promote_transfer_remove, test_transfer_and_membership_errors,
         test_dev_up_and_down])
