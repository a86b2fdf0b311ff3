"""Tasks end to end: real servers and agents on loopback.

Units append (node, task, unit, attempt, token, start/end times) to a file per
node from inside the executed command, so the checks read what the agents
actually ran, not what the servers say."""
import glob
import os
import signal
import socket
import struct
import subprocess
import time

from flotilla_cluster import (BIN, Agent, Cluster, check, leader_api, request, run, submit,
                              wait_connected, wait_task)

LOG_SCRIPT = ('echo "start $(date +%%s%%N) $FLOTILLA_NODE $FLOTILLA_TASK_ID $FLOTILLA_UNIT '
              '$FLOTILLA_ATTEMPT $FLOTILLA_FENCING_TOKEN" >> %(dir)s/$FLOTILLA_NODE.log; '
              'sleep %(sleep)s; '
              'echo "end $(date +%%s%%N) $FLOTILLA_NODE $FLOTILLA_TASK_ID $FLOTILLA_UNIT '
              '$FLOTILLA_ATTEMPT $FLOTILLA_FENCING_TOKEN" >> %(dir)s/$FLOTILLA_NODE.log')


def read_runs(logdir):
    """{(task, unit, attempt, token): {node, start, end}} from the agents' own logs."""
    runs = {}
    for path in glob.glob(os.path.join(logdir, "*.log")):
        for line in open(path):
            parts = line.split()
            if len(parts) != 7:
                continue
            kind, t, node, task, unit, attempt, token = parts
            key = (task, int(unit), int(attempt), int(token))
            r = runs.setdefault(key, {"node": node})
            r[kind] = int(t) / 1e9
    return runs


def wait_until(cond, timeout, what):
    """Poll cond every 50 ms until it returns a true value (returned), or fail
    after timeout seconds; what says what was awaited (or a function that says
    it, called on failure)."""
    end = time.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.time() > end:
            raise AssertionError("timed out after %ss waiting for %s"
                                 % (timeout, what() if callable(what) else what))
        time.sleep(0.05)


def max_concurrency(runs, node):
    events = []
    for r in runs.values():
        if r["node"] == node and "start" in r:
            events.append((r["start"], 1))
            events.append((r.get("end", 1e18), -1))
    events.sort(key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_thousand_hosts_caps_and_drain():
    c = Cluster(3, ["--lost-after", "3s", "--heartbeat", "500ms", "--cap", "2"], "tasks").start()
    logdir = os.path.join(c.dir, "unitlogs")
    os.makedirs(logdir)
    try:
        agents = [Agent(c, "agent-%d" % i, cap=3, labels=["role=worker"]).start()
                  for i in range(1, 5)]
        wait_connected(c, [a.name for a in agents] + ["server-1", "server-2", "server-3"])
        caps = {a.name: 3 for a in agents}
        caps.update({"server-%d" % i: 2 for i in (1, 2, 3)})
        hosts = ["host-%04d.example" % i for i in range(1000)]
        tid = submit(c, {"hosts": hosts, "unit_size": 30, "timeout_ms": 60000,
                         "shell": LOG_SCRIPT % {"dir": logdir, "sleep": "0.8"}})
        st, task, _ = request(leader_api(c), "GET", "/v1/tasks/" + tid)
        check(task["units"] == 34, "1000 hosts in units of 30 make 34 units: %r" % task["units"])
        # Sample the replicated running counts while it runs; drain one agent.
        drained_at = None
        samples = 0
        end = time.time() + 120
        while time.time() < end:
            st, body, _ = request(leader_api(c), "GET", "/v1/nodes")
            for n in body["nodes"]:
                check(n["running"] <= n["cap"], "node %s runs %d > cap %d"
                      % (n["id"], n["running"], n["cap"]))
            samples += 1
            st, task, _ = request(leader_api(c), "GET", "/v1/tasks/" + tid)
            if drained_at is None and task["progress"]["units"]["done"] >= 4:
                st, _, _ = request(leader_api(c), "POST", "/v1/nodes/agent-1/drain")
                check(st == 200, "drain agent-1")
                drained_at = time.time()
            if task["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        check(task["state"] == "done", "task done: %r" % task)
        check(task["progress"]["hosts"]["ok"] == 1000, "1000 hosts ok: %r" % task["progress"])
        check(samples > 10, "sampled the caps %d times" % samples)
        runs = read_runs(logdir)
        units = {(k[0], k[1]) for k in runs}
        check(len(units) == 34, "34 units ran: %d" % len(units))
        for node, cap in caps.items():
            mc = max_concurrency(runs, node)
            check(mc <= cap, "agent-side concurrency on %s is %d > cap %d" % (node, mc, cap))
        late = [r for r in runs.values()
                if r["node"] == "agent-1" and r["start"] > drained_at + 1.0]
        check(not late, "agent-1 got no new unit after it was drained: %r" % late[:3])
        # Results by task, by a list of hosts, by one host.
        st, body, _ = request(leader_api(c), "GET", "/v1/tasks/%s/results" % tid)
        check(len(body["results"]) == 1000 and all(r["status"] == "ok" for r in body["results"]),
              "1000 ok results by task")
        st, body, _ = request(leader_api(c), "GET", "/v1/results?hosts=host-0000.example,"
                              "host-0999.example,nosuch")
        check(sorted(r["host"] for r in body["results"]) == ["host-0000.example",
                                                             "host-0999.example"],
              "results by host list: %r" % body)
        st, body, _ = request(c.servers[2].api, "GET", "/v1/hosts/host-0500.example/results")
        check(len(body["results"]) == 1 and body["results"][0]["task"] == tid, "results by host")
        st, body, _ = request(leader_api(c), "GET", "/v1/nodes/agent-1")
        check(body["drain"] is True and body["running"] == 0, "drained agent-1 is idle: %r" % body)
    finally:
        c.close()


def test_agent_loss_requeues_and_late_results_are_stale():
    c = Cluster(3, ["--lost-after", "2s", "--heartbeat", "300ms", "--no-agent"], "loss").start()
    logdir = os.path.join(c.dir, "unitlogs")
    os.makedirs(logdir)
    try:
        agents = [Agent(c, "a%d" % i, cap=2).start() for i in range(1, 4)]
        wait_connected(c, ["a1", "a2", "a3"])
        tid = submit(c, {"hosts": ["h%d" % i for i in range(6)], "unit_size": 1, "retries": 2,
                         "timeout_ms": 60000,
                         "shell": LOG_SCRIPT % {"dir": logdir, "sleep": "3"}})
        wait_until(lambda: any(r["node"] == "a1" for r in read_runs(logdir).values()), 20,
                   "a1 to start a unit")
        # a1 runs units; it stops answering (SIGSTOP), is declared lost, and its
        # units run elsewhere with new tokens.
        agents[0].proc.send_signal(signal.SIGSTOP)
        body = wait_task(c, tid, timeout=60)
        check(body["state"] == "done" and body["progress"]["hosts"]["ok"] == 6, "done: %r" % body)
        st, units, _ = request(leader_api(c), "GET", "/v1/tasks/%s/units" % tid)
        moved = [u for u in units["units"] if u["attempt"] > 1]
        check(moved and all(u["node"] != "a1" for u in moved),
              "a1's units re-ran elsewhere: %r" % units)
        runs = read_runs(logdir)
        tokens = {}
        for (task, unit, attempt, token), r in runs.items():
            tokens.setdefault(unit, []).append((attempt, token))
        # Every unit ran, and the moved ones ran at least twice (a1, then elsewhere).
        check(len(tokens) == 6, "the six units' runs are in the log: %r" % sorted(tokens))
        check(all(len(tokens.get(u["unit"], [])) >= 2 for u in moved),
              "each moved unit ran twice: %r" % tokens)
        for unit, lst in tokens.items():
            lst.sort()
            check([t for _, t in lst] == sorted(t for _, t in lst) and
                  len({t for _, t in lst}) == len(lst), "tokens increase per unit: %r" % lst)
        # a1 comes back: its late DONEs carry old tokens and change nothing.
        before = request(leader_api(c), "GET", "/v1/tasks/%s/results" % tid)[1]["results"]
        agents[0].proc.send_signal(signal.SIGCONT)
        end = time.time() + 30
        stale = 0
        while time.time() < end:
            st, body, _ = request(leader_api(c), "GET", "/v1/tasks/" + tid)
            stale = body["stale_results"]
            if stale >= 1:
                break
            time.sleep(0.2)
        check(stale >= 1, "the late results were recorded as stale")
        after = request(leader_api(c), "GET", "/v1/tasks/%s/results" % tid)[1]["results"]
        check(before == after, "stale results changed nothing")
        check(body["state"] == "done", "the task stays done")
    finally:
        c.close()


def test_unit_taken_back_holds_its_slot_until_it_ends():
    """An agent silent past --lost-after loses its unit to the queue while the
    unit goes on running (SIGSTOP of the agent only). When the agent comes
    back it reports the unit, which is no longer its own: the leader cancels
    it, and until it has ended it holds the agent's slot, so the retried
    attempt (pinned to the same cap-1 agent) never runs beside it. The unit
    ignores SIGTERM, so the old attempt runs to its end after the cancel."""
    c = Cluster(3, ["--lost-after", "2s", "--heartbeat", "300ms", "--no-agent"],
                "stale-slot").start()
    logdir = os.path.join(c.dir, "unitlogs")
    os.makedirs(logdir)
    try:
        a1 = Agent(c, "a1", cap=1).start()
        wait_connected(c, ["a1"])
        script = "trap '' TERM; " + LOG_SCRIPT % {"dir": logdir, "sleep": "6"}
        tid = submit(c, {"hosts": ["h1"], "retries": 3, "timeout_ms": 60000,
                         "kill_grace_ms": 20000, "constraints": ["node=a1"], "shell": script})
        end = time.time() + 20
        while time.time() < end and not read_runs(logdir):
            time.sleep(0.05)
        check(read_runs(logdir), "the first attempt started")
        a1.proc.send_signal(signal.SIGSTOP)
        try:
            end = time.time() + 20
            taken = False
            while time.time() < end and not taken:
                st, units, _ = request(leader_api(c), "GET", "/v1/tasks/%s/units" % tid)
                taken = st == 200 and units["units"][0]["attempt"] >= 1 and \
                    units["units"][0]["state"] == "queued"
                time.sleep(0.1)
            check(taken, "the unit was taken back while a1 was silent: %r" % units)
        finally:
            a1.proc.send_signal(signal.SIGCONT)
            resumed = time.time()
        body = wait_task(c, tid, timeout=60)
        check(body["state"] == "done", "the retried attempt ran: %r" % body)
        runs = read_runs(logdir)
        attempts = sorted(k[2] for k in runs)
        check(len(runs) == 2 and attempts == [1, 2], "two attempts ran on a1: %r" % runs)
        check(all("end" in r for r in runs.values()), "both ended: %r" % runs)
        first = [r for k, r in runs.items() if k[2] == 1][0]
        check(first["end"] > resumed,
              "the old attempt still ran when a1 came back (else nothing was tested): %r" % runs)
        check(max_concurrency(runs, "a1") == 1,
              "a1 (cap 1) ran its old attempt and the new one at once: %r" % runs)
    finally:
        c.close()


def test_agent_kill9_and_restart():
    """kill -9 of an agent running units, restarted at once under the same name:
    it reports nothing running, so the leader takes its units back and they
    run again with new tokens."""
    c = Cluster(3, ["--lost-after", "20s", "--heartbeat", "300ms", "--no-agent"], "kill9").start()
    logdir = os.path.join(c.dir, "unitlogs")
    os.makedirs(logdir)
    try:
        a1 = Agent(c, "k1", cap=4).start()
        wait_connected(c, ["k1"])
        tid = submit(c, {"hosts": ["x%d" % i for i in range(4)], "unit_size": 1, "retries": 1,
                         "shell": LOG_SCRIPT % {"dir": logdir, "sleep": "2"}})
        # Killed while all four units run (each sleeps 2 s once started).
        end = time.time() + 20
        while time.time() < end and len([k for k in read_runs(logdir) if k[2] == 1]) < 4:
            time.sleep(0.05)
        check(len([k for k in read_runs(logdir) if k[2] == 1]) == 4,
              "the four first attempts started: %r" % read_runs(logdir))
        a1.kill9()
        a1.start()  # back long before lost_after: reconcile, not loss, takes the units back
        body = wait_task(c, tid, timeout=60)
        check(body["state"] == "done" and body["progress"]["hosts"]["ok"] == 4, "done: %r" % body)
        st, units, _ = request(leader_api(c), "GET", "/v1/tasks/%s/units" % tid)
        check(st == 200 and len(units["units"]) == 4 and
              all(u["attempt"] == 2 for u in units["units"]),
              "every unit ran a second time: %s %r"
              % (st, [u["attempt"] for u in (units or {}).get("units", [])]))
        runs = read_runs(logdir)
        firsts = {k[1]: k[3] for k in runs if k[2] == 1}
        seconds = {k[1]: k[3] for k in runs if k[2] == 2}
        check(len(firsts) == 4 and sorted(seconds) == sorted(firsts) and
              all(seconds[u] > firsts[u] for u in firsts), "new tokens: %r %r" % (firsts, seconds))
    finally:
        c.close()


def test_spooled_result_survives_agent_restart():
    """A unit finishes while the cluster is down; the agent is then killed. On
    restart it reads the result back from its spool and delivers it: the unit
    is not run again."""
    c = Cluster(1, ["--lost-after", "30s", "--heartbeat", "300ms", "--no-agent"], "spool")
    c.peers = "1=127.0.0.1:%d" % (c.base + 101)
    c.start()
    try:
        a = Agent(c, "sp1", cap=2).start()
        wait_connected(c, ["sp1"])
        tid = submit(c, {"hosts": ["only"], "retries": 3, "shell": "sleep 2; echo first-run"})
        time.sleep(0.7)
        check(c.servers[1].stop() == 0, "server stopped")
        time.sleep(2.5)  # the unit ends with nobody to tell
        a.kill9()
        c.servers[1].start()
        c.servers[1].wait_up()
        a.start()
        body = wait_task(c, tid, timeout=60)
        check(body["state"] == "done", "done: %r" % body)
        st, res, _ = request(c.servers[1].api, "GET", "/v1/tasks/%s/results" % tid)
        r = res["results"][0]
        check(r["attempt"] == 1 and "first-run" in r["tail"],
              "the spooled result of attempt 1 was delivered: %r" % r)
    finally:
        c.close()


def test_leader_kill_mid_task():
    c = Cluster(3, ["--lost-after", "3s", "--heartbeat", "300ms"], "leaderkill").start()
    try:
        agents = [Agent(c, "w%d" % i, cap=4).start() for i in range(1, 3)]
        wait_connected(c, ["w1", "w2"])
        tid = submit(c, {"hosts": ["n%03d" % i for i in range(120)], "unit_size": 4,
                         "retries": 1, "sleep_ms": 1500})
        # Killed as soon as units run: each takes 1.5 s, so the task is in
        # the middle (a fixed sleep here let the task end before the kill).
        old = c.leader()
        end = time.time() + 30
        while time.time() < end:
            st, mid, _ = request(c.servers[old].api, "GET", "/v1/tasks/" + tid)
            if st == 200 and mid["progress"]["units"]["running"] >= 1:
                break
            time.sleep(0.05)
        check(st == 200 and mid["state"] not in ("done", "failed", "cancelled")
              and mid["progress"]["units"]["running"] >= 1
              and mid["progress"]["hosts"]["ok"] < 120,
              "the task is still running when the leader is killed: %s %r" % (st, mid))
        c.servers[old].kill9()
        body = wait_task(c, tid, timeout=120)
        check(body["state"] == "done", "task done after the leader died: %r" % body)
        st, res, _ = request(leader_api(c), "GET", "/v1/tasks/%s/results" % tid)
        hosts = [r["host"] for r in res["results"]]
        check(len(hosts) == 120 and len(set(hosts)) == 120, "one result per host: %d" % len(hosts))
        c.servers[old].start()
        c.servers[old].wait_up()
        c.wait_converged(timeout=60)
    finally:
        c.close()


def test_timeout_kills_the_whole_group():
    c = Cluster(1, ["--lost-after", "3s"], "timeout")
    c.peers = "1=127.0.0.1:%d" % (c.base + 101)
    c.start()
    try:
        wait_connected(c, ["server-1"])
        marker = "%d" % (300 + os.getpid() % 500)
        tid = submit(c, {"hosts": ["x"], "timeout_ms": 1000, "kill_grace_ms": 500,
                         "shell": "sleep %s & sleep %s & echo started; wait" % (marker, marker)})
        body = wait_task(c, tid, timeout=30)
        check(body["state"] == "failed" and body["progress"]["hosts"]["timeout"] == 1,
              "reported timeout: %r" % body)
        def left():
            return subprocess.run(["pgrep", "-f", "^sleep %s$" % marker], capture_output=True,
                                  text=True).stdout.split()
        end = time.time() + 5
        while left() and time.time() < end:
            time.sleep(0.05)
        check(left() == [], "no child of the unit left: %r" % left())
        st, res, _ = request(c.servers[1].api, "GET", "/v1/tasks/%s/results" % tid)
        check("started" in res["results"][0]["tail"], "the tail kept its output")
    finally:
        c.close()


def test_ansible_module_and_playbook():
    c = Cluster(1, [], "ansible")
    c.peers = "1=127.0.0.1:%d" % (c.base + 101)
    c.start()
    try:
        wait_connected(c, ["server-1"])
        hosts = ["web1", "web2", "web3"]
        tid = submit(c, {"hosts": hosts, "ansible_module": "command", "ansible_args": "echo hi",
                         "inventory_vars": ["ansible_connection=local",
                                            "ansible_python_interpreter=/usr/bin/python3"],
                         "timeout_ms": 120000})
        body = wait_task(c, tid, timeout=150)
        check(body["state"] == "done", "ad-hoc module done: %r" % body)
        st, res, _ = request(c.servers[1].api, "GET", "/v1/tasks/%s/results" % tid)
        check(sorted(r["host"] for r in res["results"]) == hosts and
              all("hi" in r["tail"] for r in res["results"]), "per-host output: %r" % res)
        playbook = """- hosts: all
  gather_facts: false
  tasks:
    - name: say hello
      command: echo hello
    - name: fail on web2 only
      command: /bin/false
      when: inventory_hostname == "web2"
"""
        tid = submit(c, {"hosts": hosts, "playbook": playbook, "timeout_ms": 120000,
                         "inventory_vars": ["ansible_connection=local",
                                            "ansible_python_interpreter=/usr/bin/python3"]})
        body = wait_task(c, tid, timeout=150)
        st, res, _ = request(c.servers[1].api, "GET", "/v1/tasks/%s/results" % tid)
        by_host = {r["host"]: r["status"] for r in res["results"]}
        check(by_host == {"web1": "ok", "web2": "failed", "web3": "ok"},
              "playbook per-host status: %r" % by_host)
    finally:
        c.close()


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def test_bad_input():
    c = Cluster(1, ["--lost-after", "3s"], "badtask")
    c.peers = "1=127.0.0.1:%d" % (c.base + 101)
    c.start()
    try:
        api = c.servers[1].api
        cases = [
            ({"hosts": ["a"], "noop": True, "colour": "red"}, "colour"),
            ({"hosts": [], "noop": True}, "hosts"),
            ({"hosts": ["a b"], "noop": True}, "hosts"),
            ({"hosts": ["a"], "noop": True, "unit_size": 0}, "unit_size"),
            ({"hosts": ["a"], "noop": True, "retries": -1}, "retries"),
            ({"hosts": ["a"], "noop": True, "constraints": ["k==v"]}, "constraints"),
            ({"hosts": ["a"]}, "exec"),
            ({"hosts": ["a"], "noop": True, "shell": "x"}, "exec"),
            ({"hosts": ["a"], "exec": []}, "exec"),
            ({"hosts": ["a"], "exec": "ls"}, "exec"),
            ({"hosts": ["a"], "timeout_ms": "10s", "noop": True}, "timeout_ms"),
        ]
        for spec, field in cases:
            st, body, raw = request(api, "POST", "/v1/tasks", spec)
            check(st == 400 and ('"%s"' % field) in body["error"]["message"],
                  "%r: 400 naming %s, got %s %r" % (spec, field, st, raw[:200]))
        st, body, _ = request(api, "GET", "/v1/tasks")
        check(body["tasks"] == [], "no task was created")
        wait_connected(c, ["server-1"])
        host, port = c.servers[1].agent.split(":")
        # Garbage, an oversized frame, a truncated frame before TLS: refused,
        # the server lives.
        for payload in [b"\x00\x00\x00\x05hello", struct.pack(">I", 64 << 20) + b"x" * 10,
                        b"\x00\x00\x00\x10\x93\x01"]:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(4096)
            except OSError:
                pass
            s.close()
        st, _, _ = request(api, "GET", "/v1/status")
        check(st == 200, "the server survived bad frames")
        st, body, _ = request(api, "GET", "/v1/dispatch")
        check(body["refused_connections"] >= 3, "refusals were counted: %r" % body)
        # Inside an admitted TLS link: a malformed and an oversized agent frame.
        for payload in [b"\x00\x00\x00\x05hello", struct.pack(">I", 64 << 20) + b"x" * 10]:
            s = c.tls_connect(c.servers[1].agent, "agent", "prober")
            s.sendall(payload)
            try:
                s.recv(4096)
            except OSError:
                pass
            s.close()
        st, body, _ = request(api, "GET", "/v1/dispatch")
        check(body["bad_frames"] >= 2, "bad frames were counted: %r" % body)
        # A second agent with the id of a connected one is refused.
        dup = Agent(c, "server-1", cap=1).start()
        end = time.time() + 10
        while "duplicate_agent" not in open(dup.log).read() and time.time() < end:
            time.sleep(0.05)
        log = open(dup.log).read()
        check("duplicate_agent" in log, "duplicate agent refused: %r" % log[-500:])
        dup.stop()
        tid = submit(c, {"hosts": ["ok1"], "noop": True})
        check(wait_task(c, tid)["state"] == "done", "the original agent still works")
    finally:
        c.close()


def test_cancel_dispatch_pause_and_why():
    c = Cluster(1, ["--lost-after", "3s", "--cap", "1"], "cancel")
    c.peers = "1=127.0.0.1:%d" % (c.base + 101)
    c.start()
    try:
        api = c.servers[1].api
        wait_connected(c, ["server-1"])
        st, _, _ = request(api, "POST", "/v1/dispatch/pause")
        check(st == 200, "pause")
        tid = submit(c, {"hosts": ["a", "b"], "unit_size": 1, "sleep_ms": 30000})

        last = {}

        def why_says(task, word):
            def cond():
                st, last["why"], _ = request(api, "GET", "/v1/tasks/%s/why" % task)
                return st == 200 and word in last["why"]["summary"]
            return cond
        wait_until(why_says(tid, "paused"), 10, lambda: "why to say paused: %r" % last)
        st, _, _ = request(api, "POST", "/v1/dispatch/resume")
        wait_until(why_says(tid, "full"), 10, lambda: "why to say the node is full: %r" % last)
        tid2 = submit(c, {"hosts": ["z"], "noop": True, "constraints": ["role=db"]})
        wait_until(why_says(tid2, "role=db"), 10, lambda: "why to name the constraint: %r" % last)
        st, _, _ = request(api, "POST", "/v1/tasks/%s/cancel" % tid)
        check(st == 200, "cancel")
        body = wait_task(c, tid, timeout=30)
        check(body["state"] == "cancelled" and body["progress"]["hosts"]["cancelled"] == 2,
              "cancelled: %r" % body)
        # drain --wait with a deadline: what still runs is cancelled at the deadline.
        tid3 = submit(c, {"hosts": ["p"], "sleep_ms": 30000})
        wait_until(lambda: request(api, "GET", "/v1/tasks/" + tid3)[1]["progress"]["units"]
                   ["running"] == 1, 10, "the unit to run")
        r = subprocess.run([BIN, "node", "drain", "server-1", "--wait", "--deadline", "1s",
                            "--cancel-at-deadline", "--addr", api], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0 and "drained" in r.stdout, "drain --wait: %r %r"
              % (r.stdout, r.stderr))
        body = wait_task(c, tid3, timeout=30)
        check(body["progress"]["hosts"]["cancelled"] == 1, "cancelled at the deadline: %r" % body)
        st, h, _ = request(api, "GET", "/v1/health")
        check(st == 503 and h["draining"] is True, "health reports draining: %r" % h)
    finally:
        c.close()


def one_server(name):
    c = Cluster(1, ["--lost-after", "3s", "--heartbeat", "300ms", "--no-agent"], name)
    c.peers = "1=127.0.0.1:%d" % (c.base + 101)
    return c.start()


def test_run_on_host_one_at_a_time():
    """run_on host with max_parallel 1: every host runs on the node it names,
    and never two at once (by the replicated times and by the agents' own
    clocks)."""
    c = one_server("runonhost")
    logdir = os.path.join(c.dir, "unitlogs")
    os.makedirs(logdir)
    try:
        names = ["ra1", "ra2", "ra3"]
        agents = [Agent(c, n, cap=4).start() for n in names]
        wait_connected(c, names)
        tid = submit(c, {"hosts": names, "run_on": "host", "max_parallel": 1,
                         "timeout_ms": 60000,
                         "shell": LOG_SCRIPT % {"dir": logdir, "sleep": "0.3"}})
        body = wait_task(c, tid, timeout=60)
        check(body["state"] == "done" and body["progress"]["hosts"]["ok"] == 3, "done: %r" % body)
        check(body["run_on"] == "host" and body["max_parallel"] == 1 and body["unit_size"] == 1
              and body["stop_after_failures"] == 0 and body["stopped"] is False,
              "the task shows its controls: %r" % body)
        st, res, _ = request(leader_api(c), "GET", "/v1/tasks/%s/results" % tid)
        check(sorted(r["host"] for r in res["results"]) == names and
              all(r["node"] == r["host"] for r in res["results"]),
              "every host ran on its own node: %r" % [(r["host"], r["node"]) for r in res["results"]])
        st, units, _ = request(leader_api(c), "GET", "/v1/tasks/%s/units" % tid)
        spans = sorted((u["assigned_ms"], u["finished_ms"]) for u in units["units"])
        check(len(spans) == 3 and all(a > 0 and f >= a for a, f in spans),
              "three units have their times: %r" % spans)
        for (a1, f1), (a2, f2) in zip(spans, spans[1:]):
            check(a2 >= f1, "units overlapped: %r" % spans)
        runs = read_runs(logdir)
        check(len(runs) == 3 and all("end" in r for r in runs.values()), "three runs: %r" % runs)
        events = sorted([(r["start"], 1) for r in runs.values()] +
                        [(r["end"], -1) for r in runs.values()], key=lambda e: (e[0], e[1]))
        cur = most = 0
        for _, d in events:
            cur += d
            most = max(most, cur)
        check(most == 1, "agent-side, %d units ran at once" % most)
        check(sorted(r["node"] for r in runs.values()) == names, "one run per node: %r" % runs)
        # A host that is no node waits without holding the only place: the
        # units behind it run.
        tid = submit(c, {"hosts": ["ghost", "ra1", "ra2"], "run_on": "host", "max_parallel": 1,
                         "sleep_ms": 100})
        end = time.time() + 30
        while time.time() < end:
            st, units, _ = request(leader_api(c), "GET", "/v1/tasks/%s/units" % tid)
            states = [u["state"] for u in units["units"]]
            if states == ["queued", "done", "done"]:
                break
            time.sleep(0.1)
        check(states == ["queued", "done", "done"], "ra1 and ra2 ran past ghost: %r" % states)
        st, why, _ = request(leader_api(c), "GET", "/v1/tasks/%s/why" % tid)
        check("node=ghost" in why["summary"], "why names the host's node: %r" % why)
        st, _, _ = request(leader_api(c), "POST", "/v1/tasks/%s/cancel" % tid)
        body = wait_task(c, tid, timeout=30)
        check(body["state"] == "cancelled" and body["progress"]["hosts"]["ok"] == 2,
              "cancelled with two hosts ok: %r" % body)
    finally:
        c.close()


def test_stop_after_failures():
    """The first failed host stops the task: the units still queued are
    cancelled and the task ends failed."""
    c = one_server("failstop")
    try:
        names = ["fa1", "fa2", "fa3"]
        agents = [Agent(c, n, cap=2).start() for n in names]
        wait_connected(c, names)
        tid = submit(c, {"hosts": names, "run_on": "host", "max_parallel": 1,
                         "stop_after_failures": 1, "shell": "sleep 0.2; exit 1"})
        body = wait_task(c, tid, timeout=60)
        check(body["state"] == "failed" and body["stopped"] is True and
              body["cancel_requested"] is False, "stopped, failed: %r" % body)
        check(body["progress"]["hosts"]["failed"] == 1 and
              body["progress"]["hosts"]["cancelled"] == 2, "one failed, two cancelled: %r"
              % body["progress"])
        st, units, _ = request(leader_api(c), "GET", "/v1/tasks/%s/units" % tid)
        got = [(u["unit"], u["status"], u["attempt"]) for u in units["units"]]
        check(got == [(0, "failed", 1), (1, "cancelled", 0), (2, "cancelled", 0)],
              "the first unit failed, the others never ran: %r" % got)
        st, body, _ = request(leader_api(c), "GET", "/v1/tasks")
        check([t["id"] for t in body["tasks"]] == [tid], "one task: %r" % body)
    finally:
        c.close()


def test_rollout_controls_bad_input():
    c = one_server("badrollout")
    try:
        api = c.servers[1].api
        tid = submit(c, {"hosts": ["n1"], "noop": True, "run_on": "any", "max_parallel": 3,
                         "stop_after_failures": 2})
        st, body, _ = request(api, "GET", "/v1/tasks/" + tid)
        check(body["run_on"] == "any" and body["max_parallel"] == 3 and
              body["stop_after_failures"] == 2 and body["stopped"] is False, "controls: %r" % body)
        cases = [
            ({"hosts": ["a1"], "noop": True, "run_on": "host", "unit_size": 5}, "unit_size"),
            ({"hosts": ["a1"], "noop": True, "run_on": "elsewhere"}, "run_on"),
            ({"hosts": ["a1"], "noop": True, "run_on": 1}, "run_on"),
            ({"hosts": ["rack/a1"], "noop": True, "run_on": "host"}, "hosts"),
            ({"hosts": ["a" * 64], "noop": True, "run_on": "host"}, "hosts"),
            ({"hosts": ["a1"], "noop": True, "max_parallel": 0}, "max_parallel"),
            ({"hosts": ["a1"], "noop": True, "max_parallel": -1}, "max_parallel"),
            ({"hosts": ["a1"], "noop": True, "max_parallel": 1000001}, "max_parallel"),
            ({"hosts": ["a1"], "noop": True, "stop_after_failures": -1}, "stop_after_failures"),
            ({"hosts": ["a1"], "noop": True, "stop_after_failures": 200001},
             "stop_after_failures"),
        ]
        for spec, field in cases:
            st, body, raw = request(api, "POST", "/v1/tasks", spec)
            check(st == 400 and ('"%s"' % field) in body["error"]["message"],
                  "%r: 400 naming %s, got %s %r" % (spec, field, st, raw[:200]))
        st, body, _ = request(api, "GET", "/v1/tasks")
        check([t["id"] for t in body["tasks"]] == [tid], "no task was created: %r" % body)
        # run_on host without unit_size means one host per unit.
        tid2 = submit(c, {"hosts": ["server-1"], "noop": True, "run_on": "host"})
        st, body, _ = request(api, "GET", "/v1/tasks/" + tid2)
        check(body["unit_size"] == 1 and body["run_on"] == "host", "unit_size 1: %r" % body)
    finally:
        c.close()


if __name__ == "__main__":
    run([test_thousand_hosts_caps_and_drain, test_agent_loss_requeues_and_late_results_are_stale,
         test_unit_taken_back_holds_its_slot_until_it_ends,
         test_agent_kill9_and_restart, test_spooled_result_survives_agent_restart,
         test_leader_kill_mid_task, test_timeout_kills_the_whole_group,
         test_ansible_module_and_playbook, test_bad_input, test_cancel_dispatch_pause_and_why,
         test_run_on_host_one_at_a_time, test_stop_after_failures,
         test_rollout_controls_bad_input])
