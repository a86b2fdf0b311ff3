"""Agents act only on their own units (docs/SCHEDULER.md "Reports from agents").

A Python client joins as agent "agent-a" over a real TLS agent link (the
cluster's CA issued its certificate), proves its identity key at HELLO as
`flotilla agent` does (common/ident.h: an ed25519 signature of the link's
RFC 8446 exporter and its id), and then reports DONE and LOG for a unit that a
real agent, "agent-b", runs. The leader refuses both and counts them; B's own
result is the one that stands.

Frames are the agent protocol's (agentproto/aproto.h): a u32 big-endian
length, then one msgpack array [version, type, fields...]. Debian's
python3-msgpack encodes them, python3-nacl signs; the exporter comes from the
OpenSSL library that Python's ssl module itself uses (the module does not
expose it)."""
import ctypes
import ctypes.util
import ssl
import struct
import time

import msgpack
import nacl.signing

from flotilla_cluster import Agent, Cluster, check, leader_api, request, run, wait_connected

APROTO_VERSION = 1
HELLO, WELCOME, DONE, LOG, ACK, ERROR = 1, 2, 7, 6, 9, 10
ST_OK, ST_FAILED = 1, 2
HELLO_LABEL = b"flotilla agent hello v1\0"
TLS1_3_VERSION = 0x0304

_libssl = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
_libssl.SSL_export_keying_material.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
    ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
_libssl.SSL_get_fd.argtypes = [ctypes.c_void_p]
_libssl.SSL_version.argtypes = [ctypes.c_void_p]


def _ssl_pointer(sock):
    """The SSL * of a connected ssl.SSLSocket: CPython's _ssl._SSLSocket object
    is PyObject_HEAD, a weak reference to its socket, then the SSL pointer.
    Checked against the socket's descriptor and the TLS version before use."""
    obj = sock._sslobj
    ptr = ctypes.c_void_p.from_address(id(obj) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
    if not ptr or _libssl.SSL_get_fd(ptr) != sock.fileno() or \
            _libssl.SSL_version(ptr) != TLS1_3_VERSION:
        raise RuntimeError("cannot find the TLS session of the socket")
    return ptr


def binding(sock):
    """tlink_binding: the RFC 8446 exporter "EXPORTER-flotilla-binding", 32 bytes."""
    out = ctypes.create_string_buffer(32)
    label = b"EXPORTER-flotilla-binding"
    if _libssl.SSL_export_keying_material(_ssl_pointer(sock), out, 32, label, len(label), None,
                                          0, 0) != 1:
        raise RuntimeError("SSL_export_keying_material failed")
    return out.raw


def frame(*fields):
    payload = msgpack.packb([APROTO_VERSION] + list(fields), use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


class FakeAgent:
    """An agent link spoken by hand: HELLO with a real identity proof, then
    whatever frames the test sends."""

    def __init__(self, cluster, addr, name, labels=()):
        self.name = name
        self.sock = cluster.tls_connect(addr, "agent", name)
        self.sock.settimeout(10)
        self.buf = b""
        key = nacl.signing.SigningKey.generate()
        sig = key.sign(HELLO_LABEL + binding(self.sock) + name.encode()).signature
        auth = bytes(key.verify_key) + sig
        # [agent_id, version, cap, labels, running, auth, flags]; cap 0: it
        # takes no work.
        self.send(HELLO, name, "python-probe", 0, list(labels), [], auth, 0)

    def send(self, *fields):
        self.sock.sendall(frame(*fields))

    def recv(self, timeout=10):
        """The next message as a list [version, type, fields...], or None."""
        end = time.time() + timeout
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    msg = msgpack.unpackb(self.buf[4:4 + n], raw=False)
                    self.buf = self.buf[4 + n:]
                    return msg
            if time.time() > end:
                return None
            self.sock.settimeout(max(0.05, end - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLError, OSError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def wait_for(self, mtype, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            m = self.recv(end - time.time())
            if m is None:
                return None
            if m[1] == mtype:
                return m
        return None

    def close(self):
        self.sock.close()


def dispatch_stats(c):
    st, body, _ = request(leader_api(c), "GET", "/v1/dispatch")
    check(st == 200, "GET /v1/dispatch: %s" % st)
    return body


def wait_running_unit(c, tid, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        st, body, _ = request(leader_api(c), "GET", "/v1/tasks/%s/units" % tid)
        if st == 200:
            units = body.get("units") or []
            if units and units[0]["state"] == "running":
                return units[0]
        time.sleep(0.05)
    raise AssertionError("unit of %s never ran" % tid)


def test_foreign_done_and_log_are_refused():
    c = Cluster(1, ["--lost-after", "5s", "--heartbeat", "500ms", "--cap", "0"], "reports")
    c.peers = "1=127.0.0.1:%d" % (c.base + 101)
    c.start()
    try:
        api = c.servers[1].api
        b = Agent(c, "agent-b", cap=1, labels=["role=b"]).start()
        wait_connected(c, ["agent-b"])
        a = FakeAgent(c, c.servers[1].agent, "agent-a")
        welcome = a.wait_for(WELCOME)
        check(welcome is not None and welcome[2] is True, "agent-a welcomed: %r" % (welcome,))
        wait_connected(c, ["agent-a", "agent-b"])
        before = dispatch_stats(c)
        check(before["foreign_reports"] == 0, "no foreign report yet: %r" % before)

        # B runs the unit: it prints, waits for a file, and ends ok.
        gate = c.dir + "/gate"
        st, body, _ = request(api, "POST", "/v1/tasks", {
            "hosts": ["web-1"], "retries": 0, "constraints": ["role=b"], "timeout_ms": 60000,
            "shell": "echo from-b; while [ ! -e %s ]; do sleep 0.05; done; echo b-done" % gate})
        check(st == 200, "submit: %s %r" % (st, body))
        tid = body["id"]
        unit = wait_running_unit(c, tid)
        check(unit["node"] == "agent-b", "the unit runs on agent-b: %r" % unit)
        ref = [tid, 0, unit["attempt"], unit["token"]]

        # A says the unit failed, with the unit's own attempt and token, and
        # streams output for it.
        now_ms = int(time.time() * 1000)
        a.send(DONE, ref, ST_FAILED, 7, now_ms - 10, now_ms,
               [["web-1", ST_FAILED, 7, b"forged by agent-a"]])
        a.send(LOG, ref, "", 1, 0, b"forged output\n" * 1000)
        ack = a.wait_for(ACK, 5)
        check(ack is not None and ack[2] == ref, "the refused DONE is acknowledged: %r" % (ack,))
        end = time.time() + 10
        while time.time() < end:
            after = dispatch_stats(c)
            if after["foreign_reports"] >= 2:
                break
            time.sleep(0.05)
        check(after["foreign_reports"] == 2 and after["foreign_results"] == 1
              and after["foreign_logs"] == 1, "both reports refused and counted: %r" % after)
        check(after["results_committed"] == before["results_committed"],
              "nothing was committed for them: %r" % after)
        st, body, _ = request(api, "GET", "/v1/tasks/%s/units" % tid)
        u = body["units"][0]
        check(u["state"] == "running" and u["node"] == "agent-b" and u["token"] == ref[3],
              "the unit still runs on agent-b: %r" % u)
        st, _, raw = request(api, "GET", "/v1/tasks/%s/units/0/logs" % tid)
        check(b"forged" not in raw, "A's output was not kept: %r" % raw[:200])
        st, task, _ = request(api, "GET", "/v1/tasks/" + tid)
        check(task["state"] == "running", "the task still runs: %r" % task["state"])
        # The server logged it, naming the agent and the unit.
        log = open(c.servers[1].log).read()
        check("agent agent-a: DONE for unit %s/0" % tid in log,
              "the refusal is logged with the agent and unit")

        # B finishes: its outcome is the task's.
        open(gate, "w").close()
        end = time.time() + 30
        while time.time() < end:
            st, task, _ = request(api, "GET", "/v1/tasks/" + tid)
            if task["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.05)
        check(task["state"] == "done", "the task ends with B's outcome: %r" % task)
        st, body, _ = request(api, "GET", "/v1/tasks/%s/results" % tid)
        r = body["results"][0]
        check(r["status"] == "ok" and r["rc"] == 0 and r["node"] == "agent-b",
              "B's result stands: %r" % r)
        tail = r.get("tail") or r.get("output") or ""
        check("forged" not in tail and "b-done" in tail, "B's output tail: %r" % tail)
        st, _, raw = request(api, "GET", "/v1/tasks/%s/units/0/logs" % tid)
        check(b"from-b" in raw and b"forged" not in raw, "the unit's log is B's: %r" % raw[:200])
        # A DONE after the end, with the same token, changes nothing.
        a.send(DONE, ref, ST_FAILED, 7, now_ms, now_ms, [["web-1", ST_FAILED, 7, b"late"]])
        check(a.wait_for(ACK, 5) is not None, "acknowledged again")
        final = dispatch_stats(c)
        check(final["foreign_results"] == 2, "counted again: %r" % final)
        st, body, _ = request(api, "GET", "/v1/tasks/%s/results" % tid)
        check(body["results"][0]["status"] == "ok", "B's result still stands")
        a.close()
        b.stop()
    finally:
        c.close()


if __name__ == "__main__":
    run([test_foreign_done_and_log_are_refused])
