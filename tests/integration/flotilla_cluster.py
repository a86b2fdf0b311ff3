"""Helpers for integration tests: real `flotilla server` processes on loopback.

Run with Debian's /usr/bin/python3 (standard library only). FLOTILLA_BIN names
the binary (ctest sets it). Every process a test starts is killed at exit.
"""
import atexit
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("FLOTILLA_BIN") or shutil.which("flotilla")
if not BIN:
    sys.exit("FLOTILLA_BIN is not set")

_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))

# A CA for when no cluster is up (a CLI test against a dead address still
# needs one to get as far as connecting); each Cluster uses its own.
_DEFAULT_PKI = tempfile.mkdtemp(prefix="flotilla-it-ca-")
atexit.register(lambda: shutil.rmtree(_DEFAULT_PKI, ignore_errors=True))
subprocess.check_call([BIN, "ca", "init", "--dir", _DEFAULT_PKI, "--force"],
                      stdout=subprocess.DEVNULL)
DEFAULT_CA = os.path.join(_DEFAULT_PKI, "ca.pem")
os.environ["FLOTILLA_CACERT"] = DEFAULT_CA


def free_port_block(n):
    """A base port such that base+1..n, base+101.., base+201.. and base+301.. (API,
    Raft, agents, blob links) are free.

    The block lies below the kernel's ephemeral range (32768 and up on
    Linux), so an outgoing connection can never take a port a server is
    about to listen on."""
    for _ in range(200):
        base = random.randrange(10000, 32768 - 300)
        ok = True
        for off in (list(range(1, n + 1)) + list(range(101, 101 + n)) + list(range(201, 201 + n))
                    + list(range(301, 301 + n))):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", base + off))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no free ports")


class HTTPError(Exception):
    pass


# The API token of the last cluster bootstrapped (Cluster.bootstrap); sent
# by request() unless a call passes token= (None: send none).
TOKEN = None
_DEFAULT = object()


# The API is HTTPS (docs/SECURITY.md): the CA of the cluster made last
# (Cluster.__init__); its path is also $FLOTILLA_CACERT for the CLI.
CA_FILE = DEFAULT_CA
_ctx_cache = {}


def api_context():
    """An SSL context that trusts the current cluster's CA (re-read when the
    file changes: rotation tests replace it)."""
    import ssl
    st = os.stat(CA_FILE)
    key = (CA_FILE, st.st_mtime_ns, st.st_size)
    ctx = _ctx_cache.get(key)
    if ctx is None:
        ctx = ssl.create_default_context(cafile=CA_FILE)
        ctx.check_hostname = False  # servers are named by their flotilla:// identity
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        _ctx_cache.clear()
        _ctx_cache[key] = ctx
    return ctx


def api_socket(addr, timeout=10):
    """A TLS connection to a server's API, for tests that write raw HTTP."""
    host, port = addr.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=timeout)
    return api_context().wrap_socket(raw)


def request(addr, method, path, body=None, timeout=10, raw=None, headers=None, token=_DEFAULT):
    """One HTTPS request; returns (status, parsed JSON or None, raw bytes)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=api_context())
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        token = TOKEN if token is _DEFAULT else token
        if token:
            h["X-Flotilla-Token"] = token
        if headers:
            h.update(headers)
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return resp.status, parsed, payload
    finally:
        conn.close()


class Server:
    def __init__(self, cluster, sid, extra=None):
        self.cluster = cluster
        self.id = sid
        self.api = "127.0.0.1:%d" % (cluster.base + sid)
        self.raft = "127.0.0.1:%d" % (cluster.base + 100 + sid)
        self.agent = "127.0.0.1:%d" % (cluster.base + 200 + sid)
        self.blob = "127.0.0.1:%d" % (cluster.base + 300 + sid)  # the default: agent port + 100
        self.data = os.path.join(cluster.dir, "server-%d" % sid)
        self.log = os.path.join(cluster.dir, "server-%d.log" % sid)
        self.extra = list(extra or [])
        self.proc = None

    def start(self, bootstrap=True, join=None, standby=False):
        args = [BIN, "server", "--id", str(self.id), "--data", self.data,
                "--raft-addr", self.raft, "--api-addr", self.api, "--agent-addr", self.agent,
                "--key", self.cluster.key] + self.cluster.tls_args("server", "server-%d" % self.id) \
            + self.cluster.server_args + self.extra
        if join:
            args += ["--join", join] + (["--standby"] if standby else [])
        elif bootstrap:
            args += ["--bootstrap", "--peers", self.cluster.peers]
        logf = open(self.log, "ab")
        env = dict(os.environ)
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf, env=env)
        _procs.append(self.proc)
        logf.close()
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=15):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self):
        try:
            st, body, _ = request(self.api, "GET", "/v1/status", timeout=3)
        except OSError:
            return None
        return body if st == 200 else None

    def wait_up(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if self.status() is not None:
                return
            if not self.alive():
                raise RuntimeError("server %d exited; log:\n%s" % (self.id, open(self.log).read()[-3000:]))
            time.sleep(0.05)
        raise RuntimeError("server %d did not come up" % self.id)


class Cluster:
    def __init__(self, n=3, server_args=None, name="cluster"):
        self.dir = tempfile.mkdtemp(prefix="flotilla-it-%s-" % name)
        # The servers' key (sealing, internal calls) and one CA per cluster
        # that issues every server's and agent's certificate (docs/SECURITY.md);
        # a later --key/--cert in server_args/extra overrides them.
        self.key = os.path.join(self.dir, "cluster.key")
        subprocess.check_call([BIN, "keygen", "--out", self.key], stdout=subprocess.DEVNULL)
        self.pki = os.path.join(self.dir, "pki")
        self.ca = os.path.join(self.pki, "ca.pem")
        subprocess.check_call([BIN, "ca", "init", "--dir", self.pki, "--cluster", "it"],
                              stdout=subprocess.DEVNULL)
        global CA_FILE
        CA_FILE = self.ca
        os.environ["FLOTILLA_CACERT"] = self.ca
        self.base = free_port_block(n + 2)
        self.server_args = list(server_args or [])
        self.servers = {}
        self.peers = ",".join("%d=127.0.0.1:%d" % (i, self.base + 100 + i) for i in range(1, n + 1))
        for i in range(1, n + 1):
            self.servers[i] = Server(self, i)

    def issue(self, role, name, sans=("DNS:localhost", "IP:127.0.0.1")):
        """A certificate of this cluster's CA: (cert, key) paths, made once."""
        prefix = os.path.join(self.pki, "%s-%s" % (role, name))
        if not os.path.exists(prefix + ".pem"):
            args = [BIN, "cert", "issue", "--ca-dir", self.pki, "--role", role, "--name", name,
                    "--out", prefix]
            if role == "server" and sans:
                args += ["--san", ",".join(sans)]
            subprocess.check_call(args, stdout=subprocess.DEVNULL)
        return prefix + ".pem", prefix + ".key"

    def tls_args(self, role, name):
        cert, key = self.issue(role, name)
        return ["--ca", self.ca, "--cert", cert, "--cert-key", key]

    def tls_env(self, role="client", name="ops", env=None):
        """The environment that gives a CLI command this cluster's CA and a
        certificate (package fetch, deploy-target)."""
        cert, key = self.issue(role, name)
        e = dict(os.environ if env is None else env)
        e.update(FLOTILLA_CACERT=self.ca, FLOTILLA_CERT=cert, FLOTILLA_CERT_KEY=key)
        return e

    def foreign_tls(self, role="client", name="ops", cluster="it"):
        """(ca, cert, key) of another CA, with the same cluster name: what an
        outsider who copied the setup, but not the CA's key, can make."""
        other = os.path.join(self.dir, "pki-other")
        if not os.path.exists(os.path.join(other, "ca.pem")):
            subprocess.check_call([BIN, "ca", "init", "--dir", other, "--cluster", cluster],
                                  stdout=subprocess.DEVNULL)
        prefix = os.path.join(other, "%s-%s" % (role, name))
        if not os.path.exists(prefix + ".pem"):
            subprocess.check_call([BIN, "cert", "issue", "--ca-dir", other, "--role", role,
                                   "--name", name, "--out", prefix], stdout=subprocess.DEVNULL)
        return os.path.join(other, "ca.pem"), prefix + ".pem", prefix + ".key"

    def tls_connect(self, addr, role="agent", name="probe", kind=2, claim=b"", cert=None):
        """A TLS link to a server's Raft (kind 1), agent (2) or blob (3) port
        from Debian's Python ssl, with this cluster's CA and a certificate,
        through the HELLO exchange (docs/SECURITY.md "Links"). Returns the
        socket, or raises ssl.SSLError / ConnectionError when refused."""
        import ssl
        cert, key = cert or self.issue(role, name)
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = False  # the link checks the flotilla:// identity
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
        host, port = addr.rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=10)
        s = ctx.wrap_socket(raw)
        s.sendall(b"FLT1" + bytes([kind, len(claim)]) + claim)
        head = b""
        while len(head) < 6:
            chunk = s.recv(6 - len(head))
            if not chunk:
                raise ConnectionError("closed before the server's HELLO")
            head += chunk
        rest = head[5]
        while rest > 0:
            chunk = s.recv(rest)
            if not chunk:
                raise ConnectionError("closed inside the server's HELLO")
            rest -= len(chunk)
        if head[:5] != b"FLT1" + bytes([kind]):
            raise ConnectionError("not a Flotilla HELLO: %r" % head)
        return s

    def start(self, wait_nodes=True):
        for s in self.servers.values():
            s.start()
        for s in self.servers.values():
            s.wait_up()
        self.bootstrap()
        if wait_nodes:
            self.wait_nodes(len(self.servers))
        return self

    def bootstrap(self, timeout=20):
        """Make the cluster's management token (flotilla acl bootstrap) and
        use it from here on: request() sends it, and FLOTILLA_TOKEN carries it
        to CLI processes. A retry with the same secret is answered 200."""
        global TOKEN
        secret = "flt_" + secrets.token_urlsafe(32)
        end = time.time() + timeout
        while True:
            lid = self.leader(timeout=timeout)
            try:
                st, body, _ = request(self.servers[lid].api, "POST", "/v1/acl/bootstrap",
                                      {"secret": secret}, token=None)
            except OSError:
                st, body = None, None
            if st == 200:
                break
            if time.time() > end:
                raise RuntimeError("bootstrap failed: %s %r" % (st, body))
            time.sleep(0.1)
        self.token = TOKEN = secret
        os.environ["FLOTILLA_TOKEN"] = secret
        return secret

    def wait_nodes(self, n, timeout=20):
        """Wait until n servers have recorded themselves in the nodes table."""
        end = time.time() + timeout
        while time.time() < end:
            lid = self.leader(timeout=timeout)
            try:
                st, body, _ = request(self.servers[lid].api, "GET", "/v1/nodes", timeout=3)
            except OSError:
                st = None
            if st == 200 and len(body["nodes"]) >= n:
                return body["nodes"]
            time.sleep(0.1)
        raise RuntimeError("servers did not record themselves")

    def add_server(self, sid, extra=None):
        s = Server(self, sid, extra)
        self.servers[sid] = s
        return s

    def leader(self, timeout=15, exclude=()):
        """The id of the ready leader, as every live server agrees."""
        end = time.time() + timeout
        while time.time() < end:
            for s in self.servers.values():
                if s.id in exclude or not s.alive():
                    continue
                st = s.status()
                if st and st["state"] == "leader" and st["ready"]:
                    return s.id
            time.sleep(0.05)
        raise RuntimeError("no leader within %ss" % timeout)

    def live(self):
        return [s for s in self.servers.values() if s.alive()]

    def wait_converged(self, timeout=30, servers=None):
        """Wait until the given servers report the same digest at the same
        applied index; returns that (index, digest)."""
        end = time.time() + timeout
        last = None
        while time.time() < end:
            sts = [s.status() for s in (servers or self.live())]
            if all(sts):
                digests = {(st["digest"]["index"], st["digest"]["sha"]) for st in sts}
                commits = {st["commit_index"] for st in sts}
                applied = {st["applied_index"] for st in sts}
                last = (digests, commits, applied)
                if len(digests) == 1 and len(commits) == 1 and len(applied) == 1:
                    return digests.pop()
            time.sleep(0.1)
        raise AssertionError("replicas did not converge: %r" % (last,))

    def close(self):
        failing = sys.exc_info()[0] is not None
        # With FLOTILLA_RAFT_TRACE set, a failing test aborts the servers
        # instead, so each one writes its raft flight recorder to its log.
        sig = signal.SIGABRT if failing and os.environ.get("FLOTILLA_RAFT_TRACE") else signal.SIGKILL
        for s in self.servers.values():
            if s.alive():
                s.proc.send_signal(sig)
                s.proc.wait()
        if failing:
            # Called from a `finally` while a test fails: the servers' last
            # words go with the failure (FLOTILLA_KEEP_LOGS=1 keeps the files).
            for s in self.servers.values():
                try:
                    with open(s.log, errors="replace") as f:
                        tail = f.readlines()[-60:]
                except OSError:
                    continue
                sys.stderr.write("---- server %d log (last %d lines)\n%s" % (s.id, len(tail), "".join(tail)))
        if failing and os.environ.get("FLOTILLA_KEEP_LOGS") == "1":
            sys.stderr.write("kept %s\n" % self.dir)
            return
        shutil.rmtree(self.dir, ignore_errors=True)
        global CA_FILE
        if CA_FILE == self.ca:
            CA_FILE = DEFAULT_CA
            os.environ["FLOTILLA_CACERT"] = DEFAULT_CA


class Agent:
    """A standalone `flotilla agent` process."""

    def __init__(self, cluster, name, cap=4, labels=None, extra=None):
        self.cluster = cluster
        self.name = name
        self.cap = cap
        self.labels = labels or []
        self.extra = list(extra or [])
        self.data = os.path.join(cluster.dir, "agent-" + name)
        self.log = os.path.join(cluster.dir, "agent-%s.log" % name)
        self.proc = None

    def start(self):
        join = ",".join(s.agent for s in self.cluster.servers.values())
        args = [BIN, "agent", "--join", join, "--name", self.name, "--cap", str(self.cap),
                "--data", self.data] + self.cluster.tls_args("agent", self.name) + self.extra
        if self.labels:
            args += ["--label", ",".join(self.labels)]
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf)
        _procs.append(self.proc)
        logf.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout=20):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def leader_api(cluster):
    return cluster.servers[cluster.leader()].api


def wait_connected(cluster, names, timeout=30):
    """Wait until the leader reports these nodes connected."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            st, body, _ = request(leader_api(cluster), "GET", "/v1/nodes", timeout=3)
        except (OSError, RuntimeError):
            st = None
        if st == 200:
            conn = {n["id"] for n in body["nodes"] if n.get("connected")}
            if set(names) <= conn:
                return body["nodes"]
        time.sleep(0.1)
    raise RuntimeError("nodes %r did not connect" % (names,))


def submit(cluster, spec, timeout=30):
    st, body, raw = request(leader_api(cluster), "POST", "/v1/tasks", spec, timeout=timeout)
    if st != 200:
        raise AssertionError("submit: %s %r" % (st, raw[:300]))
    return body["id"]


def wait_task(cluster, tid, timeout=120, states=("done", "failed", "cancelled")):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            st, body, _ = request(leader_api(cluster), "GET", "/v1/tasks/" + tid, timeout=5)
        except (OSError, RuntimeError):
            st = None
        if st == 200:
            last = body
            if body["state"] in states:
                return body
        time.sleep(0.1)
    raise AssertionError("task %s did not finish: %r" % (tid, last))


def put(addr, key, value, timeout=10):
    return request(addr, "PUT", "/v1/kv/" + key, {"value": value}, timeout=timeout)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Skipped(Exception):
    """Raised by a test that cannot run here and was told it may skip (an
    explicit opt-in such as FLOTILLA_ALLOW_SKIP=1): run() reports it as
    SKIPPED, not as passed."""


def run(tests):
    """Run test functions; print 'N passed, N failed' (and any SKIPPED) and
    exit accordingly. Test names given on the command line select tests; a
    name that matches none is an error, so a typo never passes by running
    nothing."""
    passed = failed = skipped = 0
    only = sys.argv[1:]
    unknown = sorted(set(only) - {t.__name__ for t in tests})
    if unknown:
        print("FAIL no such test: %s" % ", ".join(unknown), flush=True)
        sys.exit(1)
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.time()
        try:
            t()
            passed += 1
            print("ok   %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Skipped as e:
            skipped += 1
            print("SKIPPED %s: %s" % (t.__name__, e), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL %s: %s" % (t.__name__, e), flush=True)
    print("%d passed, %d failed%s" % (passed, failed,
                                      ", %d SKIPPED (not tested)" % skipped if skipped else ""))
    _cleanup()
    sys.exit(0 if failed == 0 else 1)
