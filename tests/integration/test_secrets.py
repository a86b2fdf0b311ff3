"""Task environment and secrets on three real servers (docs/ACL.md, "Secrets").

A secret given with --secret-env NAME=@FILE reaches the unit's environment,
and nowhere else: not the API, not the Raft log, the snapshots or LMDB on any
server (their files are searched byte by byte), not the servers' logs."""
import json
import os
import secrets
import subprocess
import time

from flotilla_cluster import BIN, Cluster, check, leader_api, request, run, wait_task


def files_containing(root, needle):
    hits = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                with open(p, "rb") as f:
                    if needle in f.read():
                        hits.append(p)
            except FileNotFoundError:
                pass  # removed while the walk ran (a rotated log, a spool file)
    return hits


def test_secret_reaches_the_unit_only():
    c = Cluster(3, ["--snapshot-threshold", "16", "--snapshot-trailing", "4"], "secrets").start()
    try:
        api = leader_api(c)
        secret = "s3cr3t-" + secrets.token_hex(24)
        sfile = os.path.join(c.dir, "db-pass")
        with open(sfile, "w") as f:
            f.write(secret + "\n")
        out = os.path.join(c.dir, "unit-env")
        env = dict(os.environ, FLOTILLA_ADDR=api)
        r = subprocess.run([BIN, "task", "submit", "--hosts", "h1", "--name", "uses-secret",
                            "--shell", 'printf "%s|%s" "$MODE" "$DB_PASS" > ' + out,
                            "--env", "MODE=prod", "--secret-env", "DB_PASS=@" + sfile, "--wait"],
                           capture_output=True, text=True, env=env, timeout=120)
        check(r.returncode == 0, "submit with a secret: %r %r" % (r.stdout, r.stderr))
        with open(out) as f:
            check(f.read() == "prod|" + secret, "the unit sees MODE and DB_PASS")
        st, tasks, raw = request(api, "GET", "/v1/tasks")
        tid = [t for t in tasks["tasks"] if t["name"] == "uses-secret"][0]["id"]
        st, body, raw = request(api, "GET", "/v1/tasks/" + tid)
        check(st == 200 and body["executor"]["env"] == {"MODE": "prod"} and
              body["executor"]["secret_env"] == ["DB_PASS"], "the task shows names: %r" % body)
        check(secret.encode() not in raw, "no secret in the task")
        st, _, raw = request(api, "GET", "/v1/tasks/%s/results" % tid)
        check(st == 200 and secret.encode() not in raw, "no secret in the results")

        # A job carries it to every run.
        out2 = os.path.join(c.dir, "job-env")
        st, body, _ = request(api, "POST", "/v1/jobs", {
            "name": "nightly", "cron": "0 3 * * *", "hosts": ["h2"],
            "shell": 'printf "%s" "$DB_PASS" > ' + out2, "secret_env": {"DB_PASS": secret}})
        check(st == 200, "job with a secret: %s %r" % (st, body))
        st, body, _ = request(api, "POST", "/v1/jobs/nightly/run", {})
        check(st == 200, "run now: %s %r" % (st, body))
        end = time.time() + 60
        while not (os.path.exists(out2) and os.path.getsize(out2) > 0) and time.time() < end:
            time.sleep(0.1)
        with open(out2) as f:
            check(f.read() == secret, "the job's unit sees the secret")

        # Force snapshots, then search every byte the servers wrote.
        for i in range(40):
            request(api, "PUT", "/v1/kv/fill-%d" % i, {"value": "x"})
        c.wait_converged()
        for s in c.servers.values():
            hits = files_containing(s.data, secret.encode())
            check(not hits, "server %d holds the secret in clear: %r" % (s.id, hits))
            with open(s.log, "rb") as f:
                check(secret.encode() not in f.read(), "server %d logged it" % s.id)
        snaps = [n for s in c.servers.values() for _, _, ns in os.walk(s.data) for n in ns
                 if n.startswith("snapshot")]
        check(snaps, "snapshots were written and searched: %d files" % len(snaps))
    finally:
        c.close()


def test_bad_env_changes_nothing():
    c = Cluster(1, name="secrets-bad").start()
    try:
        api = leader_api(c)
        base = {"hosts": ["h"], "shell": "true"}
        for field, val, word in (
                ("env", {"1BAD": "x"}, "env"), ("env", {"FLOTILLA_TOKEN": "x"}, "env"),
                ("env", {"A": 5}, "env"), ("env", ["A=b"], "env"),
                ("env", {"A%d" % i: "x" for i in range(33)}, "env"),
                ("secret_env", {"A": "x" * 4097}, "secret_env"),
                ("secret_env", {"A-B": "x"}, "secret_env")):
            st, body, _ = request(api, "POST", "/v1/tasks", dict(base, **{field: val}))
            check(st == 400 and body["error"]["message"].startswith('field "%s"' % word),
                  "%s=%r: %s %r" % (field, str(val)[:40], st, body))
        st, body, _ = request(api, "POST", "/v1/tasks",
                              dict(base, env={"A": "1"}, secret_env={"A": "2"}))
        check(st == 400 and "both" in body["error"]["message"], "same name twice: %r" % body)
        st, body, _ = request(api, "GET", "/v1/tasks")
        check(st == 200 and body["tasks"] == [], "nothing was created: %r" % body)
        env = dict(os.environ, FLOTILLA_ADDR=api)
        r = subprocess.run([BIN, "task", "submit", "--hosts", "h", "--shell", "true",
                            "--secret-env", "PASS=inline"], capture_output=True, text=True,
                           env=env)
        check(r.returncode == 2 and "@FILE" in r.stderr, "inline secret refused: %r" % r.stderr)
        r = subprocess.run([BIN, "task", "submit", "--hosts", "h", "--shell", "true",
                            "--secret-env", "PASS=@/nonexistent"], capture_output=True, text=True,
                           env=env)
        check(r.returncode == 2 and "/nonexistent" in r.stderr, "missing file: %r" % r.stderr)
    finally:
        c.close()


if __name__ == "__main__":
    run([test_secret_reaches_the_unit_only, test_bad_env_changes_nothing])
