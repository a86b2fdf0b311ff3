"""The chaos harness's world: a network (namespaces or loopback), servers,
agents, and the cleanup of everything it creates.

Run with Debian's /usr/bin/python3 (standard library only). Every name this
module creates in the kernel starts with PREFIX ("fltc-"): network
namespaces fltc-s1.., fltc-a1.., the bridge fltc-br and its veth ends
fltc-vs1..; run directories are /tmp/fltc-run-*. cleanup_leftovers() removes
whatever an earlier, crashed run left behind by those names.

Two functions are the only places that build a server's or an agent's
command line (server_argv, agent_argv) and one is the only HTTP client
(api): the cluster key and the API token are added there when the binary
supports them.

Deadlines: every step of a run runs inside `within(seconds, step)`, and sh()
and api() cap their timeouts to what is left of the innermost deadlines of
the calling thread, so no subprocess or HTTP call outlives the step that
makes it.
"""
import contextlib
import errno
import fcntl
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time

PREFIX = "fltc-"
RUN_ROOT = "/tmp"
RUN_PREFIX = "fltc-run-"
LOCK_FILE = "/tmp/fltc.lock"
SUBNET = "10.213.0"          # only inside namespaces this harness creates
BRIDGE = PREFIX + "br"
FAKETIME_LIB_CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
]


def log(msg):
    print("[%8.2f] %s" % (time.monotonic() - T0, msg), flush=True)


T0 = time.monotonic()


class Deadline:
    """A step that must end `seconds` from now."""

    def __init__(self, seconds, step):
        self.step = step
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self):
        return self.end - time.monotonic()

    def expired(self):
        return time.monotonic() >= self.end

    def took(self):
        return time.monotonic() - self.start


class StepTimeout(RuntimeError):
    """A call that did not finish before its step's deadline."""


_scope = threading.local()


@contextlib.contextmanager
def within(seconds, step, fresh=False):
    """Run the body as a step that must end within `seconds`: every sh()
    and api() call this thread makes inside it has its timeout cut to what
    is left (and to the deadlines of enclosing steps, unless fresh: the
    cleanup after a step ran out of time still gets its own)."""
    d = Deadline(seconds, step)
    saved = getattr(_scope, "stack", None)
    stack = _scope.stack = [] if fresh or saved is None else saved
    stack.append(d)
    try:
        yield d
    finally:
        stack.pop()
        _scope.stack = saved


def current_step():
    stack = getattr(_scope, "stack", None)
    return stack[-1] if stack else None


def cap(timeout, floor=0.2):
    """timeout cut to the time left in this thread's steps; at least floor
    (a call after its step's deadline fails fast instead of not at all)."""
    for d in getattr(_scope, "stack", None) or ():
        timeout = min(timeout, d.left())
    return max(floor, timeout)


def sh(args, check=True, timeout=10, input=None):
    """Run a command (a list) with a timeout (cut by the step's deadline);
    returns CompletedProcess. With check, a non-zero exit raises
    RuntimeError and a timeout StepTimeout; without, neither raises (exit
    127 and the error in stderr)."""
    t = cap(timeout, floor=0.5)
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=t, input=input)
    except subprocess.TimeoutExpired:
        if check:
            raise StepTimeout("%s: no exit within %.1f s" % (" ".join(args), t)) from None
        return subprocess.CompletedProcess(args, 127, "", "timeout after %.1f s" % t)
    except OSError as e:
        if check:
            raise
        return subprocess.CompletedProcess(args, 127, "", str(e))
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


# ---------------------------------------------------------------- HTTP

class Api:
    """The harness's one HTTP client. `token` is sent as X-Flotilla-Token
    once the cluster has been bootstrapped (ACLs present)."""

    def __init__(self):
        self.token = None
        self.ca = None  # the run's CA: the API is HTTPS when the binary has TLS
        self._ctx = None

    def set_ca(self, ca):
        import ssl
        self.ca = ca
        self._ctx = ssl.create_default_context(cafile=ca)
        self._ctx.check_hostname = False  # servers are named by their flotilla:// identity
        os.environ["FLOTILLA_CACERT"] = ca  # for the CLI the runner starts

    def __call__(self, addr, method, path, body=None, timeout=5.0, token=True, headers=None):
        """One request (headers: extra ones, such as X-Flotilla-Request).
        Returns (status, parsed JSON or None). Raises OSError (including
        socket.timeout) when no answer was read."""
        host, port = addr.rsplit(":", 1)
        if self._ctx is not None:
            conn = http.client.HTTPSConnection(host, int(port), timeout=timeout,
                                               context=self._ctx)
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            h = {"Content-Type": "application/json"} if data is not None else {}
            if token and self.token:
                h["X-Flotilla-Token"] = self.token
            h.update(headers or {})
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            payload = resp.read()
            try:
                parsed = json.loads(payload) if payload else None
            except ValueError:
                parsed = None
            return resp.status, parsed
        except http.client.HTTPException as e:
            raise OSError("http: %r" % e) from e
        finally:
            conn.close()


api = Api()


# ---------------------------------------------------------------- features

class Features:
    """What this machine and this flotilla binary support, and for what is
    missing, why (`missing`: capability -> reason)."""

    def __init__(self, binary, want_netns=True):
        self.binary = binary
        self.root = os.geteuid() == 0
        self.missing = {}
        self.key = self._help_ok(["keygen", "--help"])
        self.server_key = self.key and "--key" in self._help(["server", "--help"])
        self.agent_key = self.key and "--key " in self._help(["agent", "--help"])
        # Mutual TLS on every link (docs/SECURITY.md): a CA and a certificate
        # per server and agent.
        self.tls = self._help_ok(["ca", "--help"]) and "--cert-key" in self._help(["server",
                                                                                   "--help"])
        self.netns = want_netns and self._probe_netns()
        if not want_netns:
            self.missing["netns"] = "--loopback given"
        self.faketime_lib = next((p for p in FAKETIME_LIB_CANDIDATES if os.path.exists(p)), None)
        self.faketime = self.faketime_lib is not None and self._probe_faketime()
        if not self.faketime:
            self.missing["faketime"] = ("libfaketime does not work" if self.faketime_lib else
                                        "libfaketime not installed (package faketime)")
        self.mount = self.root and shutil.which("mount") is not None
        if not self.mount:
            self.missing["mount"] = "not root" if not self.root else "no mount command"
        self.loop_ext4 = self.mount and shutil.which("mkfs.ext4") is not None \
            and os.path.exists("/dev/loop-control")

    def _help(self, args):
        r = sh([self.binary] + args, check=False)
        return r.stdout + r.stderr

    def _help_ok(self, args):
        return sh([self.binary] + args, check=False).returncode == 0

    def _probe_netns(self):
        if not self.root:
            self.missing["netns"] = "not root"
            return False
        for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
            if not shutil.which(tool):
                self.missing["netns"] = "no %s command (package %s)" % (tool, pkg)
                return False
        name = PREFIX + "probe%d" % os.getpid()
        r = sh(["ip", "netns", "add", name], check=False)
        if r.returncode != 0:
            self.missing["netns"] = "ip netns add: %s" % r.stderr.strip()[:120]
            return False
        try:
            r = sh(["ip", "netns", "exec", name, "nft", "add", "table", "inet", "fltc_probe"],
                   check=False)
            if r.returncode != 0:
                self.missing["netns"] = "nft in a namespace: %s" % r.stderr.strip()[:120]
        finally:
            sh(["ip", "netns", "del", name], check=False)
        return r.returncode == 0

    def _probe_faketime(self):
        """The library loads and a change of the timestamp file is seen at
        once, while the monotonic clock stays real."""
        f = "/tmp/%sftprobe%d" % (PREFIX, os.getpid())
        with open(f, "w") as fh:
            fh.write("+3600\n")
        try:
            env = dict(os.environ, LD_PRELOAD=self.faketime_lib, FAKETIME_TIMESTAMP_FILE=f,
                       FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
            code = ("import time,sys;a=time.time();open(sys.argv[1],'w').write('+0\\n');"
                    "b=time.time();print(a-b)")
            r = subprocess.run(["/usr/bin/python3", "-c", code, f], env=env, capture_output=True,
                               text=True, timeout=cap(10))
            return r.returncode == 0 and 3500 < float(r.stdout.strip() or 0) < 3700
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return False
        finally:
            os.unlink(f)


# ---------------------------------------------------------------- cleanup

_cleanups = []
_cleanup_lock = threading.Lock()
_cleaned = False


def on_cleanup(fn, last=False):
    """Register fn to run at cleanup (last registered runs first; with
    last=True, fn runs after everything registered so far)."""
    if last:
        _cleanups.insert(0, fn)
    else:
        _cleanups.append(fn)


CLEANUP_SECONDS = 30


def cleanup():
    """Run the cleanups (each of their calls bounded: the whole within
    CLEANUP_SECONDS, about)."""
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    with _cleanup_lock, within(CLEANUP_SECONDS, "teardown", fresh=True):
        while _cleanups:
            fn = _cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - clean up as much as possible
                print("cleanup: %r" % e, flush=True)


def install_signal_handlers():
    def handler(signum, _frame):
        print("\nsignal %d: cleaning up" % signum, flush=True)
        cleanup()
        os._exit(130 if signum == signal.SIGINT else 143)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def acquire_run_lock(timeout):
    """One harness at a time per machine (they share names). Returns the
    open lock file; waits up to timeout seconds."""
    fd = open(LOCK_FILE, "a+")
    end = time.time() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES) or time.time() > end:
                raise RuntimeError("another chaos run holds %s" % LOCK_FILE)
            time.sleep(1)


def _pids_matching(fragment):
    me = {os.getpid(), os.getppid()}
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmd:
            out.append(int(d))
    return out


def kill_pids(pids, sig=signal.SIGKILL):
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


def netns_pids(name):
    r = sh(["ip", "netns", "pids", name], check=False, timeout=5)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def cleanup_leftovers(verbose=True):
    """Remove what an earlier crashed run left: processes whose command line
    names a run directory, namespaces and links named fltc-*, mounts and
    loop devices under /tmp/fltc-run-*. Only call while holding the run
    lock, so no live run is touched."""
    found = []
    if shutil.which("ip"):
        for line in sh(["ip", "netns", "list"], check=False).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(PREFIX):
                kill_pids(netns_pids(name))
                sh(["ip", "netns", "del", name], check=False)
                found.append("netns " + name)
    pids = _pids_matching(os.path.join(RUN_ROOT, RUN_PREFIX))
    if pids:
        kill_pids(pids)
        found.append("%d processes" % len(pids))
    if shutil.which("ip"):
        for line in sh(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
            parts = line.split(":")
            if len(parts) > 1:
                name = parts[1].strip().split("@")[0]
                if name.startswith(PREFIX):
                    sh(["ip", "link", "del", name], check=False)
                    found.append("link " + name)
    try:
        with open("/proc/mounts") as f:
            mounts = [ln.split()[1] for ln in f]
    except OSError:
        mounts = []
    for m in reversed(mounts):
        if m.startswith(os.path.join(RUN_ROOT, RUN_PREFIX)):
            sh(["umount", "-l", m], check=False)
            found.append("mount " + m)
    if shutil.which("losetup"):
        for line in sh(["losetup", "-a"], check=False).stdout.splitlines():
            if os.path.join(RUN_ROOT, RUN_PREFIX) in line:
                dev = line.split(":")[0]
                sh(["losetup", "-d", dev], check=False)
                found.append("loop " + dev)
    if found and verbose:
        print("removed leftovers of an earlier run: %s" % ", ".join(found), flush=True)
    return found


# ---------------------------------------------------------------- network

class Network:
    """Where each process lives and which address it has.

    netns mode: one namespace per server and per standalone agent, each with
    eth0 on SUBNET.0/24 through a veth pair into the bridge; the harness (the
    clients) talks from the root namespace through the bridge's address
    SUBNET.1, which partitions never block. loopback mode: everything on
    127.0.0.1 with distinct ports; no partitions."""

    def __init__(self, netns, base_port=None):
        self.netns = netns
        self.base = base_port
        self.members = {}   # name -> ip

    def setup(self):
        if not self.netns:
            return
        on_cleanup(self.teardown)
        sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
        sh(["ip", "addr", "add", SUBNET + ".1/24", "dev", BRIDGE])
        sh(["ip", "link", "set", BRIDGE, "up"])

    def add_host(self, name, octet):
        """A namespace PREFIX+name with address SUBNET.octet."""
        ip = "%s.%d" % (SUBNET, octet)
        self.members[name] = ip
        if not self.netns:
            return "127.0.0.1"
        ns = PREFIX + name
        veth = PREFIX + "v" + name
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        sh(["ip", "link", "set", veth, "master", BRIDGE, "up"])
        sh(["ip", "netns", "exec", ns, "ip", "addr", "add", ip + "/24", "dev", "eth0"])
        sh(["ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"])
        sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        # The table partitions use: an input and an output chain that drop
        # the addresses in the set `blocked_in` / `blocked_out`.
        rules = """
table inet fltc {
  set blocked_in { type ipv4_addr; }
  set blocked_out { type ipv4_addr; }
  chain input { type filter hook input priority 0; policy accept;
    ip saddr @blocked_in drop; }
  chain output { type filter hook output priority 0; policy accept;
    ip daddr @blocked_out drop; }
}
"""
        sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules)
        return ip

    def wrap(self, name, argv):
        """argv run inside the host's namespace."""
        if not self.netns:
            return argv
        return ["ip", "netns", "exec", PREFIX + name] + argv

    def block(self, name, block_in, block_out):
        """Replace what host `name` drops: packets from the hosts in block_in,
        and to those in block_out."""
        if not self.netns:
            return
        ns = PREFIX + name
        cmds = ["flush set inet fltc blocked_in", "flush set inet fltc blocked_out"]
        ins = [self.members[h] for h in block_in]
        outs = [self.members[h] for h in block_out]
        if ins:
            cmds.append("add element inet fltc blocked_in { %s }" % ", ".join(ins))
        if outs:
            cmds.append("add element inet fltc blocked_out { %s }" % ", ".join(outs))
        sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], input="\n".join(cmds) + "\n",
           timeout=5)

    def heal(self):
        """Flush every host's sets; every host is tried, and a failure
        (an nft error or timeout) is raised afterwards."""
        errors = []
        for name in self.members:
            try:
                self.block(name, [], [])
            except RuntimeError as e:
                errors.append("%s: %s" % (name, e))
        if errors:
            raise RuntimeError("healing the network failed: %s" % "; ".join(errors))

    def teardown(self):
        if not self.netns:
            return
        for name in self.members:
            ns = PREFIX + name
            kill_pids(netns_pids(ns))
        for name in self.members:
            sh(["ip", "link", "del", PREFIX + "v" + name], check=False, timeout=5)
            sh(["ip", "netns", "del", PREFIX + name], check=False, timeout=5)
        sh(["ip", "link", "del", BRIDGE], check=False, timeout=5)


# ---------------------------------------------------------------- processes

def children_of(pid):
    """Every descendant of pid (by parent pid), found in /proc."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


class Proc:
    """A server or an agent: how to start it, its process, its state."""

    def __init__(self, world, name, kind, sid=None):
        self.world = world
        self.name = name          # s1.. / a1..
        self.kind = kind          # server / agent
        self.sid = sid
        self.proc = None
        self.state = "new"        # up, killed, paused, removed
        self.data = os.path.join(world.dir, name)
        self.logpath = os.path.join(world.dir, name + ".log")
        self.ip = None
        self.port_off = 0
        self.faketime_file = None
        self.join_mode = False    # start with --join instead of --bootstrap
        self.starts = 0

    # addresses
    def _port(self, base):
        if self.world.net.netns:
            return base
        return self.world.net.base + (base - 8000) + self.port_off

    @property
    def api(self):
        return "%s:%d" % (self.ip, self._port(8401))

    @property
    def raft(self):
        return "%s:%d" % (self.ip, self._port(8501))

    @property
    def agent_addr(self):
        return "%s:%d" % (self.ip, self._port(8601))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if _cleaned:
            return        # cleaning up: start nothing new
        os.makedirs(self.data, exist_ok=True)
        argv = self.world.server_argv(self) if self.kind == "server" else self.world.agent_argv(self)
        env = dict(os.environ)
        pre = []
        if self.faketime_file:
            pre = ["env", "LD_PRELOAD=" + self.world.features.faketime_lib,
                   "FAKETIME_TIMESTAMP_FILE=" + self.faketime_file, "FAKETIME_NO_CACHE=1",
                   "FAKETIME_DONT_FAKE_MONOTONIC=1"]
        full = self.world.net.wrap(self.name, pre + argv)
        logf = open(self.logpath, "ab")
        logf.write(("---- start %d at %.3f: %s\n" % (self.starts, time.time(), " ".join(full))).encode())
        logf.flush()
        self.proc = subprocess.Popen(full, stdout=logf, stderr=logf, env=env,
                                     start_new_session=True)
        logf.close()
        self.starts += 1
        self.state = "up"

    def kill9(self):
        """kill -9 of the process and everything it started (its units): a
        crash of the machine, as far as this node's processes go."""
        if self.proc is None:
            return
        pids = children_of(self.proc.pid)
        err = None
        if self.world.net.netns:
            r = sh(["ip", "netns", "pids", PREFIX + self.name], check=False, timeout=5)
            if r.returncode != 0:
                err = "ip netns pids: %s" % r.stderr.strip()[:120]
            pids += [int(x) for x in r.stdout.split() if x.isdigit()]
        self.killed_at = time.time()
        try:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        except OSError:
            pass
        kill_pids(set(pids))
        try:
            self.proc.wait(timeout=cap(10))
        except subprocess.TimeoutExpired:
            err = err or "pid %d still there after SIGKILL" % self.proc.pid
        self.state = "killed"
        if err:     # the processes found were killed; some may have been missed
            raise RuntimeError("kill -9 %s: %s" % (self.name, err))

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.state = "paused"

    def resume(self):
        if self.proc is not None:
            try:
                self.proc.send_signal(signal.SIGCONT)
            except OSError:
                pass
        if self.state == "paused":
            self.state = "up"

    def status(self, timeout=2.0):
        try:
            st, body = api(self.api, "GET", "/v1/status", timeout=timeout)
        except OSError:
            return None
        return body if st == 200 else None

    def log_tail(self, n=2000):
        try:
            with open(self.logpath, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class World:
    """Servers, agents, network, key and token of one run."""

    def __init__(self, binary, features, n_servers=5, n_agents=2, server_cap=2, agent_cap=2,
                 keep=False, seed=0):
        self.binary = binary
        self.features = features
        self.dir = os.path.join(RUN_ROOT, "%s%d-%d" % (RUN_PREFIX, seed, os.getpid()))
        os.makedirs(self.dir, exist_ok=True)
        self.unitlog_dir = os.path.join(self.dir, "unitlogs")
        os.makedirs(self.unitlog_dir, exist_ok=True)
        self.keep = keep
        base = None
        if not features.netns:
            base = 20000 + (os.getpid() % 50) * 200
        self.net = Network(features.netns, base)
        self.servers = {}
        self.agents = {}
        self.n_servers = n_servers
        self.server_cap = server_cap
        self.agent_cap = agent_cap
        self.n_agents = n_agents
        self.key_file = None
        self.pki = None
        self.peers = None
        self.extra_server_args = ["--lost-after", "6s", "--snapshot-threshold", "1024",
                                  "--snapshot-trailing", "256"]
        self.disk = None           # sid whose data dir is on a small filesystem
        self.disk_mount = None
        self.clock_victim = None   # sid run under libfaketime
        self.last_leader = None    # asked first by leader()

    # -- the two command lines -------------------------------------------
    def server_argv(self, p):
        argv = [self.binary, "server", "--id", str(p.sid), "--name", "server-%d" % p.sid,
                "--data", p.data, "--raft-addr", p.raft, "--api-addr", p.api,
                "--agent-addr", p.agent_addr, "--cap", str(self.server_cap)] + self.extra_server_args
        if self.features.server_key and self.key_file:
            argv += ["--key", self.key_file]
        argv += self.tls_argv("server", "server-%d" % p.sid)
        if p.join_mode:
            live = [s for s in self.servers.values() if s is not p and s.state == "up"]
            argv += ["--join", ",".join(s.api for s in live[:1]) or self.servers[1].api]
        else:
            argv += ["--bootstrap", "--peers", self.peers]
        return argv

    def agent_argv(self, p):
        join = ",".join(s.agent_addr for s in self.servers.values())
        argv = [self.binary, "agent", "--join", join, "--name", "agent-" + p.name[1:],
                "--cap", str(self.agent_cap), "--data", p.data]
        if self.features.agent_key and self.key_file:
            argv += ["--key", self.key_file]
        argv += self.tls_argv("agent", "agent-" + p.name[1:])
        return argv

    def tls_argv(self, role, name):
        """--ca/--cert/--cert-key of a certificate of this run's CA (made once)."""
        if not self.pki:
            return []
        prefix = os.path.join(self.pki, name)
        if not os.path.exists(prefix + ".pem"):
            sh([self.binary, "cert", "issue", "--ca-dir", self.pki, "--role", role, "--name", name,
                "--out", prefix])
        return ["--ca", os.path.join(self.pki, "ca.pem"), "--cert", prefix + ".pem",
                "--cert-key", prefix + ".key"]

    # -- setup ------------------------------------------------------------
    def setup(self, clock_victim=None, disk_victim=None, disk_mb=384):
        on_cleanup(self.teardown)
        self.net.setup()
        if self.features.key:
            self.key_file = os.path.join(self.dir, "cluster.key")
            sh([self.binary, "keygen", "--out", self.key_file])
        if self.features.tls:
            self.pki = os.path.join(self.dir, "pki")
            sh([self.binary, "ca", "init", "--dir", self.pki, "--cluster", "chaos"])
            api.set_ca(os.path.join(self.pki, "ca.pem"))
        for i in range(1, self.n_servers + 1):
            p = Proc(self, "s%d" % i, "server", sid=i)
            p.port_off = i
            p.ip = self.net.add_host(p.name, 10 + i)
            self.servers[i] = p
        for j in range(1, self.n_agents + 1):
            p = Proc(self, "a%d" % j, "agent")
            p.port_off = 50 + j
            p.ip = self.net.add_host(p.name, 30 + j)
            self.agents[j] = p
        self.peers = ",".join("%d=%s" % (s.sid, s.raft) for s in self.servers.values())
        if clock_victim:
            self.clock_victim = clock_victim
            f = os.path.join(self.dir, "faketime-s%d" % clock_victim)
            with open(f, "w") as fh:
                fh.write("+0\n")
            self.servers[clock_victim].faketime_file = f
        if disk_victim:
            self.disk = disk_victim
            self._small_fs(self.servers[disk_victim], disk_mb)

    def _small_fs(self, p, mb):
        """p's data directory on a small filesystem of its own: an ext4 image
        on a loop device, or a size-limited tmpfs."""
        os.makedirs(p.data, exist_ok=True)
        img = os.path.join(self.dir, "disk-%s.img" % p.name)
        kind = None
        if self.features.loop_ext4:
            try:
                with open(img, "wb") as f:
                    f.truncate(mb << 20)
                sh(["mkfs.ext4", "-q", "-F", "-m", "0", img], timeout=30)
                sh(["mount", "-o", "loop", img, p.data])
                kind = "ext4 image %d MiB" % mb
            except (RuntimeError, OSError):
                kind = None
        if kind is None:
            sh(["mount", "-t", "tmpfs", "-o", "size=%dm" % mb, PREFIX + "disk", p.data])
            kind = "tmpfs %d MiB" % mb
        self.disk_mount = p.data
        self.disk_kind = kind

        def umount():
            ballast = os.path.join(p.data, "ballast")
            if os.path.exists(ballast):
                os.unlink(ballast)
            sh(["umount", p.data], check=False, timeout=5)
            if os.path.ismount(p.data):
                sh(["umount", "-l", p.data], check=False, timeout=5)
        on_cleanup(umount)

    def start_all(self):
        for s in self.servers.values():
            s.start()
        self.wait_leader(timeout=30)
        self.bootstrap_acl()
        for a in self.agents.values():
            a.start()

    def bootstrap_acl(self, timeout=30):
        """ACLs, when the binary has them: make the management token once
        (with a secret of our own, so a retry is safe) and send it from
        then on; CLI processes get it through FLOTILLA_TOKEN."""
        lid = self.wait_leader(timeout)
        try:
            st, body = api(self.servers[lid].api, "GET", "/v1/routes", token=False)
        except OSError:
            st, body = None, None
        paths = {r.get("path") for r in (body or {}).get("routes", [])} if st == 200 else set()
        if "/v1/acl/bootstrap" not in paths:
            self.acl = False
            return None
        self.acl = True
        secret = "flt_" + secrets.token_urlsafe(32)
        end = time.time() + timeout
        while True:
            lid = self.wait_leader(timeout)
            try:
                st, body = api(self.servers[lid].api, "POST", "/v1/acl/bootstrap",
                               {"secret": secret}, token=False)
            except OSError:
                st, body = None, None
            if st == 200:
                break
            if time.time() > end:
                raise RuntimeError("ACL bootstrap failed: %s %r" % (st, body))
            time.sleep(0.2)
        api.token = secret
        os.environ["FLOTILLA_TOKEN"] = secret
        return secret

    def leader(self):
        """The id of a ready leader that a live server reports, or None (the
        last leader found is asked first)."""
        for s in sorted(self.servers.values(), key=lambda x: x.sid != self.last_leader):
            if s.state != "up":
                continue
            st = s.status(timeout=1.0)
            if st and st.get("state") == "leader" and st.get("ready"):
                self.last_leader = s.sid
                return s.sid
        return None

    def wait_leader(self, timeout=30):
        """The leader's id; StepTimeout when there is none within timeout
        (cut by the step's deadline)."""
        end = time.monotonic() + cap(timeout, floor=1.0)
        while time.monotonic() < end:
            lid = self.leader()
            if lid:
                return lid
            time.sleep(0.2)
        raise StepTimeout("no leader within %.0f s" % timeout)

    def up_servers(self):
        return [s for s in self.servers.values() if s.state == "up"]

    def teardown(self):
        """SIGKILL to every process and its descendants at once, then one
        shared wait for them all."""
        procs = [p for p in list(self.agents.values()) + list(self.servers.values())
                 if p.proc is not None]
        pids = set()
        for p in procs:
            pids |= set(children_of(p.proc.pid))
            try:
                p.proc.send_signal(signal.SIGCONT)
                p.proc.kill()
            except OSError:
                pass
        kill_pids(pids)
        end = time.monotonic() + cap(10)
        for p in procs:
            try:
                p.proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log("teardown: %s (pid %d) still there after SIGKILL" % (p.name, p.proc.pid))
            p.state = "killed"
        # units left behind by agents that were killed earlier
        kill_pids(_pids_matching(self.dir))
