"""bench/run cron-burst: N jobs due in the same second on a fresh three-server cluster.

Creates --jobs cron jobs (6-field expressions naming one second ~--lead seconds
ahead, a noop task each), waits for that second, and measures:

  - fire_all_ms: from the scheduled second until every job's fire is
    committed (the job's last_scheduled_ms equals it on the leader), polled
    every 50 ms;
  - done_all_ms: until every run's task has finished (noop units on the
    servers' embedded agents, --cap slots each);
  - api_max_ms / api_p99_ms: latency of a small replicated write
    (PUT /v1/kv) issued every 20 ms by another thread during the burst, to
    show whether the API stalls.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


# Every route but status needs an API token (docs/ACL.md); main() bootstraps it.
TOKEN = {}


CTX = None  # the API is HTTPS: main() trusts the run's CA


def https(host, port, timeout):
    return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=CTX)


def req(addr, method, path, body=None, timeout=30):
    host, port = addr.rsplit(":", 1)
    c = https(host, port, timeout)
    data = json.dumps(body).encode() if body is not None else None
    h = dict(TOKEN, **({"Content-Type": "application/json"} if data else {}))
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    c.close()
    return r.status, (json.loads(raw) if raw else None)


def main():
    ap = argparse.ArgumentParser(prog="bench/run cron-burst")
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--lead", type=int, default=0, help="seconds between the last job added and the burst (0: auto)")
    ap.add_argument("--cap", type=int, default=200, help="slots of each server's embedded agent")
    ap.add_argument("--base-port", type=int, default=18700)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    binp = os.environ["FLOTILLA_BIN"]
    work = tempfile.mkdtemp(prefix="flotilla-bench-cron.")
    # The servers' key, and a CA with a certificate per server (docs/SECURITY.md).
    os.environ["FLOTILLA_KEY_FILE"] = os.path.join(work, "cluster.key")
    subprocess.check_call([binp, "keygen", "--out", os.environ["FLOTILLA_KEY_FILE"]],
                          stdout=subprocess.DEVNULL)
    pki = os.path.join(work, "pki")
    subprocess.check_call([binp, "ca", "init", "--dir", pki, "--cluster", "bench"],
                          stdout=subprocess.DEVNULL)
    os.environ["FLOTILLA_CACERT"] = os.path.join(pki, "ca.pem")
    global CTX
    import ssl
    CTX = ssl.create_default_context(cafile=os.environ["FLOTILLA_CACERT"])
    CTX.check_hostname = False

    def cert_args(name):
        prefix = os.path.join(pki, name)
        subprocess.check_call([binp, "cert", "issue", "--ca-dir", pki, "--role", "server",
                               "--name", name, "--out", prefix], stdout=subprocess.DEVNULL)
        return ["--cert", prefix + ".pem", "--cert-key", prefix + ".key"]
    P = a.base_port
    peers = ",".join("%d=127.0.0.1:%d" % (i, P + 100 + i) for i in (1, 2, 3))
    procs = []

    def cleanup(*_):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if a.keep:
            print("# kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(143)))
    try:
        for i in (1, 2, 3):
            log = open(os.path.join(work, "server-%d.log" % i), "wb")
            procs.append(subprocess.Popen(
                [binp, "server", "--id", str(i), "--data", os.path.join(work, "server-%d" % i)]
                + cert_args("server-%d" % i) + [
                 "--raft-addr", "127.0.0.1:%d" % (P + 100 + i), "--api-addr", "127.0.0.1:%d" % (P + i),
                 "--agent-addr", "127.0.0.1:%d" % (P + 200 + i), "--cap", str(a.cap),
                 "--bootstrap", "--peers", peers], stdout=log, stderr=log))
        leader = None
        end = time.time() + 30
        while leader is None and time.time() < end:
            for i in (1, 2, 3):
                try:
                    st, s = req("127.0.0.1:%d" % (P + i), "GET", "/v1/status", timeout=1)
                except OSError:
                    continue
                if st == 200 and s.get("state") == "leader" and s.get("ready") and \
                        s.get("jobs", {}).get("leading"):
                    leader = "127.0.0.1:%d" % (P + i)
            time.sleep(0.2)
        if leader is None:
            sys.exit("bench/run cron-burst: no leader")
        secret = "flt_bench" + os.urandom(16).hex()
        st, body = req(leader, "POST", "/v1/acl/bootstrap", {"secret": secret})
        if st != 200:
            sys.exit("bench/run cron-burst: bootstrapping the API token: %s %r" % (st, body))
        TOKEN["X-Flotilla-Token"] = secret
        # Pick the burst second far enough ahead to add every job first.
        t0 = time.time()
        lead = a.lead or max(10, int(a.jobs / 800) + 8)
        burst = int(t0) + lead
        tm = time.gmtime(burst)
        expr = "%d %d %d %d %d *" % (tm.tm_sec, tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon)
        errors = []
        lock = threading.Lock()
        nxt = [0]

        def adder():
            host, port = leader.rsplit(":", 1)
            conn = https(host, port, 30)
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= a.jobs:
                    break
                body = json.dumps({"name": "burst-%05d" % i, "cron": expr, "noop": True}).encode()
                conn.request("POST", "/v1/jobs", body=body, headers=dict(TOKEN, **{"Content-Type": "application/json"}))
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
            conn.close()

        ths = [threading.Thread(target=adder) for _ in range(16)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        added_s = time.time() - t0
        if errors:
            sys.exit("bench/run cron-burst: %d job adds failed (%r)" % (len(errors), errors[:5]))
        if time.time() > burst - 1:
            sys.exit("bench/run cron-burst: adding took %.1f s, past the burst second; raise --lead" % added_s)
        # API probe during the burst.
        lat = []
        stop = threading.Event()

        def probe():
            host, port = leader.rsplit(":", 1)
            conn = https(host, port, 30)
            k = 0
            while not stop.is_set():
                k += 1
                b = json.dumps({"value": "x"}).encode()
                s = time.time()
                conn.request("PUT", "/v1/kv/probe-%d" % k, body=b, headers=dict(TOKEN, **{"Content-Type": "application/json"}))
                conn.getresponse().read()
                lat.append((s, (time.time() - s) * 1000))
                time.sleep(0.02)
            conn.close()

        pt = threading.Thread(target=probe)
        pt.start()
        fired_at = done_at = None
        deadline = burst + 120
        while time.time() < deadline and (fired_at is None or done_at is None):
            time.sleep(0.05)
            if time.time() < burst:
                continue
            if fired_at is None:
                st, js = req(leader, "GET", "/v1/jobs")
                n = sum(1 for j in js["items"] if j["last_scheduled_ms"] == burst * 1000)
                if n == a.jobs:
                    fired_at = time.time()
            else:
                # every run's unit has run and its result is committed (a fresh
                # cluster: the job units are the only ones)
                st, d = req(leader, "GET", "/v1/dispatch")
                if d.get("results_committed", 0) >= a.jobs:
                    done_at = time.time()
        stop.set()
        pt.join()
        burst_lat = sorted(l for s, l in lat if burst - 0.5 <= s <= (fired_at or burst + 5) + 1)
        st, s = req(leader, "GET", "/v1/status")
        print("# %d jobs, each '%s' UTC (one second), noop task; 3 servers on loopback, embedded "
              "agents with cap %d; %d cores; load average at start %s" %
              (a.jobs, expr, a.cap, os.cpu_count(), open("/proc/loadavg").read().split()[0]))
        print("# jobs added in %.1f s by 16 clients (%.0f/s)" % (added_s, a.jobs / added_s))
        print("# leader: jobs proposed %d, fired %d, refused %d; entries proposed %d" %
              (s["jobs"]["proposed"], s["jobs"]["fired"], s["jobs"]["refused"],
               s["proposed"]["entries"]))
        if burst_lat:
            print("api_probe_writes: %d" % len(burst_lat))
            print("api_p99_ms: %.1f ms" % burst_lat[min(len(burst_lat) - 1, int(len(burst_lat) * 0.99))])
            print("api_max_ms: %.1f ms" % burst_lat[-1])
        if done_at is not None:
            print("done_all_ms: %.0f ms" % ((done_at - burst) * 1000))
        if fired_at is None:
            sys.exit("bench/run cron-burst: not every job fired within 120 s")
        print("fire_all_ms: %.0f ms" % ((fired_at - burst) * 1000))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
