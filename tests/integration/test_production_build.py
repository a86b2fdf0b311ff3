"""The production build refuses the test hooks (docs/ARCHITECTURE.md, "Test
hooks"): flotilla-prod ($FLOTILLA_PROD_BIN) is the test build without
FLOTILLA_TEST_HOOKS. Its API answers 400 to the noop and sleep executors,
its CLI has no --noop, --sleep or --raft-plaintext. The test build
($FLOTILLA_BIN) is checked beside it for the flags, so the checks cannot pass
because a flag is missing everywhere."""
import os
import subprocess

import flotilla_cluster
from flotilla_cluster import BIN, Cluster, check, leader_api, request, run, submit, wait_task

PROD = os.environ.get("FLOTILLA_PROD_BIN")


def cli(binary, *args):
    r = subprocess.run([binary] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_prod_binary_is_another_build():
    check(PROD is not None and os.access(PROD, os.X_OK),
          "FLOTILLA_PROD_BIN names no executable: %r" % PROD)
    check(os.path.realpath(PROD) != os.path.realpath(BIN), "the production binary is the test one")


def test_cli_flags_only_in_test_builds():
    for cmd, flags in ((["server"], ["--raft-plaintext"]),
                       (["task", "submit"], ["--noop", "--sleep"]),
                       (["job", "add"], ["--noop", "--sleep"])):
        rc_t, help_t = cli(BIN, *(cmd + ["--help"]))
        rc_p, help_p = cli(PROD, *(cmd + ["--help"]))
        check(rc_t == 0 and rc_p == 0, "%s --help: %d, %d" % (cmd, rc_t, rc_p))
        for f in flags:
            check(f in help_t, "the test build's %s --help lacks %s:\n%s" % (cmd, f, help_t))
            check(f not in help_p, "the production %s --help lists %s:\n%s" % (cmd, f, help_p))
    # Refused as unknown flags, before anything is sent or started.
    for args, flag in ((["server", "--raft-plaintext"], "--raft-plaintext"),
                       (["task", "submit", "--hosts", "a", "--noop"], "--noop"),
                       (["task", "submit", "--hosts", "a", "--sleep", "1s"], "--sleep"),
                       (["job", "add", "j", "--every", "1m", "--noop"], "--noop")):
        rc, out = cli(PROD, *(args + ["--addr", "127.0.0.1:9"]))
        check(rc == 2 and ("unknown flag %s" % flag) in out,
              "production %s: exit 2, unknown flag %s; got %d %r" % (args, flag, rc, out[-300:]))
    # Without a known executor the usage names only the production ones.
    rc, out = cli(PROD, "task", "submit", "--hosts", "a", "--addr", "127.0.0.1:9")
    check(rc == 2 and "--playbook" in out and "--noop" not in out,
          "production task submit without an executor: %d %r" % (rc, out[-300:]))


def test_api_refuses_test_executors():
    flotilla_cluster.BIN = PROD  # the cluster's servers are production servers
    try:
        c = Cluster(1, [], "prod").start()
    finally:
        flotilla_cluster.BIN = BIN
    try:
        api = leader_api(c)
        for spec, field in (({"hosts": ["a"], "noop": True}, "noop"),
                            ({"hosts": ["a"], "sleep_ms": 10}, "sleep_ms"),
                            ({"hosts": ["a"], "noop": False}, "noop"),
                            ({"hosts": ["a"], "exec": ["true"], "sleep_ms": 0}, "sleep_ms")):
            st, body, raw = request(api, "POST", "/v1/tasks", spec)
            check(st == 400 and body["error"]["message"] ==
                  'field "%s": available only in test builds' % field,
                  "POST /v1/tasks %r: 400 test builds only, got %s %r" % (spec, st, raw[:300]))
        st, body, raw = request(api, "POST", "/v1/jobs",
                                {"name": "nightly", "every": "1h", "noop": True})
        check(st == 400 and "available only in test builds" in body["error"]["message"],
              "POST /v1/jobs with noop: got %s %r" % (st, raw[:300]))
        st, body, raw = request(api, "POST", "/v1/tasks", {"hosts": ["a"]})
        check(st == 400 and "noop" not in body["error"]["message"] and
              "playbook" in body["error"]["message"],
              "no executor: the message names the production ones: %s %r" % (st, raw[:300]))
        st, body, _ = request(api, "GET", "/v1/tasks")
        check(st == 200 and body["tasks"] == [], "nothing was created: %r" % body)
        # A production executor is accepted and runs (on the server's node).
        tid = submit(c, {"hosts": ["server-1"], "run_on": "host", "exec": ["true"]})
        task = wait_task(c, tid, timeout=60)
        check(task["state"] == "done", "the exec task ran: %r" % task)
    finally:
        c.close()


if __name__ == "__main__":
    run([test_prod_binary_is_another_build, test_cli_flags_only_in_test_builds,
         test_api_refuses_test_executors])
