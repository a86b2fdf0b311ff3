"""Cron jobs end to end: real servers (with their embedded agents) on loopback.

Job commands append what they ran (job, scheduled time, fencing token, start
and end times) to files from inside the executed command, so the checks read
what actually ran, not only what the servers say.

The policies' logic runs on the C fixture, with the real state machine and
cron clock on three servers (no real processes, the fixture's clock):
tests/fixture/test_leader_job_policies.c (overlap forbid, replace and queue,
misfire run-once and skip), test_leader_jobs.c and test_jobs_fixture.c
(every schedule time once across leader changes)."""
import glob
import os
import subprocess
import time

from flotilla_cluster import (BIN, Cluster, check, leader_api, request, run, wait_connected)

RUN_SCRIPT = ('echo "start $(date +%%s%%N) $FLOTILLA_JOB $FLOTILLA_SCHEDULED_TIME '
              '$FLOTILLA_FENCING_TOKEN $FLOTILLA_NODE $FLOTILLA_SHARD_INDEX $FLOTILLA_SHARD_TOTAL" '
              '>> %(dir)s/$FLOTILLA_NODE.log; sleep %(sleep)s; '
              'echo "end $(date +%%s%%N) $FLOTILLA_JOB $FLOTILLA_SCHEDULED_TIME '
              '$FLOTILLA_FENCING_TOKEN $FLOTILLA_NODE $FLOTILLA_SHARD_INDEX $FLOTILLA_SHARD_TOTAL" '
              '>> %(dir)s/$FLOTILLA_NODE.log')


def read_log(logdir, job):
    """[(sched, token, node, start, end, shard, total)] of one job from the nodes' logs."""
    runs = {}
    for path in glob.glob(os.path.join(logdir, "*.log")):
        for line in open(path):
            p = line.split()
            if len(p) != 8 or p[2] != job:
                continue
            key = (p[3], int(p[4]), p[5])
            r = runs.setdefault(key, {"sched": float(p[3]), "token": int(p[4]), "node": p[5],
                                      "shard": int(p[6]), "total": int(p[7])})
            r[p[0]] = int(p[1]) / 1e9
    return list(runs.values())


def add_job(api, body):
    st, out, _ = request(api, "POST", "/v1/jobs", body)
    check(st == 200, "add job %s: %s %r" % (body.get("name"), st, out))


def runs_of(api, name):
    st, out, _ = request(api, "GET", "/v1/jobs/%s/runs" % name)
    check(st == 200, "runs of %s: %s %r" % (name, st, out))
    return out["items"]


def cluster(name, extra=None):
    c = Cluster(3, ["--lost-after", "3s", "--heartbeat", "500ms", "--cap", "4"] + (extra or []),
                name).start()
    wait_connected(c, ["server-1", "server-2", "server-3"])
    logdir = os.path.join(c.dir, "joblogs")
    os.makedirs(logdir)
    return c, logdir


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def accounted(runs):
    """Schedule times covered by the history: each run is one, plus the ones folded into it."""
    return sum(1 + r["missed"] for r in runs if not r["manual"])


def test_every_fires_each_time_once_across_leader_kills():
    c, logdir = cluster("jobs-failover")
    try:
        api = leader_api(c)
        add_job(api, {"name": "tick", "every": "1s", "shell": RUN_SCRIPT % {"dir": logdir, "sleep": 0}})
        time.sleep(4)
        for _ in range(2):  # kill the leader twice while the job keeps firing
            lid = c.leader()
            c.servers[lid].kill9()
            c.leader(exclude=(lid,))
            time.sleep(3)
            c.servers[lid].start(bootstrap=False)
            c.servers[lid].wait_up()
            time.sleep(2)
        api = leader_api(c)
        st, job, _ = request(api, "GET", "/v1/jobs/tick")
        check(st == 200, "job: %r" % job)
        last = job["last_scheduled_ms"]
        wait_for(lambda: all(t["state"] in ("done", "failed") for r in runs_of(api, "tick")
                             for t in r["tasks"]), 20, "runs to finish")
        runs = runs_of(api, "tick")
        scheds = [r["scheduled_ms"] for r in runs]
        check(len(scheds) == len(set(scheds)), "a schedule time fired twice: %r" % scheds)
        created = job["created_ms"]
        expected = (last - created) // 1000  # every 1 s from creation up to the last one
        check(accounted(runs) == expected,
              "history accounts for %d times, expected %d" % (accounted(runs), expected))
        # What ran: each schedule time at most once (retries 0), and only recorded ones.
        ran = [r["sched"] for r in read_log(logdir, "tick")]
        check(len(ran) == len(set(ran)), "a schedule time ran twice")
        started = {r["scheduled_ms"] / 1000.0 for r in runs if r["outcome"] == "started"}
        check(all(any(abs(s - t) < 0.002 for t in started) for s in ran),
              "a run that the history does not record")
        # ... and every recorded run whose tasks ended done did run (a run
        # whose unit was lost with a killed server's agent may not have).
        done = [r["scheduled_ms"] / 1000.0 for r in runs if r["outcome"] == "started"
                and r["tasks"] and all(t["state"] == "done" for t in r["tasks"])]
        check(len(done) >= expected // 2, "runs done: %d of %d times" % (len(done), expected))
        missing = [d for d in done if not any(abs(d - t) < 0.002 for t in ran)]
        check(not missing, "runs recorded done that never ran: %r" % missing[:5])
        # Every replica agrees.
        c.wait_converged(timeout=30)
    finally:
        c.close()


def test_mode_all_runs_on_every_node_with_shards(c, logdir):
    api = leader_api(c)
    add_job(api, {"name": "everywhere", "every": "1h", "mode": "all",
                  "shell": RUN_SCRIPT % {"dir": logdir, "sleep": 0}})
    st, out, _ = request(api, "POST", "/v1/jobs/everywhere/run")
    check(st == 200 and out["outcome"] == "started", "run now: %s %r" % (st, out))
    wait_for(lambda: len(read_log(logdir, "everywhere")) == 3 and
             all("end" in r for r in read_log(logdir, "everywhere")), 20, "3 shards")
    ran = read_log(logdir, "everywhere")
    check(sorted(r["node"] for r in ran) == ["server-1", "server-2", "server-3"],
          "one per node: %r" % ran)
    check(sorted(r["shard"] for r in ran) == [0, 1, 2] and all(r["total"] == 3 for r in ran),
          "shards: %r" % ran)
    runs = runs_of(api, "everywhere")
    check(len(runs) == 1 and runs[0]["manual"] and len(runs[0]["tasks"]) == 3, "history %r" % runs)


def test_pause_resume_list_show_cli(c, logdir):
    api = leader_api(c)
    env = dict(os.environ, FLOTILLA_ADDR=api)
    r = subprocess.run([BIN, "job", "add", "nightly", "--cron", "0 3 * * *", "--tz",
                        "Europe/Berlin", "--overlap", "forbid", "--noop"],
                       capture_output=True, text=True, env=env, timeout=30)
    check(r.returncode == 0, "job add: %r" % r.stderr)
    r = subprocess.run([BIN, "job", "add", "nightly", "--cron", "0 3 * * *", "--noop"],
                       capture_output=True, text=True, env=env, timeout=30)
    check(r.returncode == 1 and "exists" in r.stderr, "a second add is refused: %r" % r.stderr)
    r = subprocess.run([BIN, "job", "list"], capture_output=True, text=True, env=env, timeout=30)
    check(r.returncode == 0 and "nightly" in r.stdout, "job list: %r" % r.stdout)
    st, job, _ = request(api, "GET", "/v1/jobs/nightly")
    check(st == 200 and len(job["next_ms"]) == 5, "next fire times: %r" % job)
    for t in job["next_ms"]:
        lt = time.gmtime(t / 1000)
        check(lt.tm_min == 0 and lt.tm_sec == 0 and lt.tm_hour in (1, 2),
              "03:00 Berlin is 01:00 or 02:00 UTC: %r" % (lt,))
    for sub in ("pause", "resume"):
        r = subprocess.run([BIN, "job", sub, "nightly"], capture_output=True, text=True,
                           env=env, timeout=30)
        check(r.returncode == 0, "job %s: %r" % (sub, r.stderr))
    r = subprocess.run([BIN, "job", "run", "nightly"], capture_output=True, text=True,
                       env=env, timeout=30)
    check(r.returncode == 0 and "started" in r.stdout, "job run: %r %r" % (r.stdout, r.stderr))
    r = subprocess.run([BIN, "job", "history", "nightly"], capture_output=True, text=True,
                       env=env, timeout=30)
    check(r.returncode == 0 and "(manual)" in r.stdout, "job history: %r" % r.stdout)
    r = subprocess.run([BIN, "job", "rm", "nightly"], capture_output=True, text=True, env=env,
                       timeout=30)
    check(r.returncode == 0, "job rm: %r" % r.stderr)
    check(request(api, "GET", "/v1/jobs/nightly")[0] == 404, "deleted")


def test_bad_input_changes_nothing(c, logdir):
    api = leader_api(c)
    bad = [
        ({"name": "x", "cron": "61 * * * *", "noop": True}, "minute"),
        ({"name": "x", "cron": "* * * *", "noop": True}, "field"),
        ({"name": "x", "cron": "0 0 30 2 *", "noop": True}, ""),
        ({"name": "x", "cron": "*/0 * * * *", "noop": True}, ""),
        ({"name": "x", "cron": "@reboot", "noop": True}, ""),
        ({"name": "x", "cron": "0 3 * * *", "tz": "Mars/Olympus", "noop": True}, "zone"),
        ({"name": "x", "cron": "0 3 * * *", "tz": "../../etc/passwd", "noop": True}, "zone"),
        ({"name": "x", "every": "0s", "noop": True}, "every"),
        ({"name": "x", "every": "500ms", "noop": True}, "every"),
        ({"name": "x", "every": "9999d", "noop": True}, "every"),
        ({"name": "x", "every": "1s", "cron": "* * * * *", "noop": True}, "exactly one"),
        ({"name": "x", "noop": True}, "exactly one"),
        ({"name": "y" * 64, "every": "1s", "noop": True}, "name"),
        ({"name": "bad name", "every": "1s", "noop": True}, "name"),
        ({"name": "-x", "every": "1s", "noop": True}, "name"),
        ({"name": "x", "every": "1s", "overlap": "sometimes", "noop": True}, "overlap"),
        ({"name": "x", "every": "1s", "mode": "some", "noop": True}, "mode"),
        ({"name": "x", "every": "1s", "misfire": "never", "noop": True}, "misfire"),
        ({"name": "x", "every": "1s", "mode": "all", "hosts": ["a"], "noop": True}, "hosts"),
        ({"name": "x", "every": "1s", "mode": "all", "overlap": "queue", "noop": True}, "queue"),
        ({"name": "x", "every": "1s"}, "executor"),
        ({"name": "x", "every": "1s", "noop": True, "bogus": 1}, "unknown field"),
        ({"name": "x", "every": 5, "noop": True}, "every"),
        ({"name": "x", "every": "1s", "tz": "UTC", "noop": True}, "tz"),
    ]
    before = request(api, "GET", "/v1/jobs")[1]
    for body, word in bad:
        st, out, _ = request(api, "POST", "/v1/jobs", body)
        msg = out.get("error", {}).get("message", "") if isinstance(out, dict) else ""
        check(st == 400, "refused: %r -> %s %r" % (body, st, out))
        check(word.lower() in msg.lower(), "message for %r names %r: %r" % (body, word, msg))
    check(request(api, "GET", "/v1/jobs")[1] == before, "nothing changed")
    for path in ("/v1/jobs/nope/run", "/v1/jobs/nope/pause"):
        st, out, _ = request(api, "POST", path)
        check(st == 404, "%s: %s" % (path, st))
    r = subprocess.run([BIN, "job", "add", "x", "--every", "1s", "--cron", "* * * * *", "--noop"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 2, "CLI refuses both schedules: %r" % r.stderr)


SHARED = {}


def shared(fn):
    """Run fn on the cluster shared by the tests that kill nothing."""
    def wrapper():
        if "cluster" not in SHARED:
            SHARED["cluster"] = cluster("jobs")
        fn(*SHARED["cluster"])
    wrapper.__name__ = fn.__name__
    return wrapper


def test_shared_cluster_converged():
    """The replicas of the cluster the shared tests ran on agree. Selected
    without any of them there is nothing to check, and that is a failure."""
    c, _ = SHARED.pop("cluster", (None, None))
    check(c is not None, "no shared cluster to check: select it with at least one shared test")
    try:
        c.wait_converged(timeout=30, servers=list(c.servers.values()))
    finally:
        c.close()


if __name__ == "__main__":
    run([shared(test_mode_all_runs_on_every_node_with_shards),
         shared(test_pause_resume_list_show_cli),
         shared(test_bad_input_changes_nothing),
         test_shared_cluster_converged,
         test_every_fires_each_time_once_across_leader_kills])
