"""Every link mutual TLS 1.3 with a certificate of the cluster CA (issue 16;
docs/SECURITY.md "Links").

Real processes: processes without certificates, or with certificates of
another CA, refuse to start or are refused; a server with another CA's
certificate cannot join Raft, an agent certificate cannot open a Raft link,
garbage and the stock raft handshake are refused, a byte flipped on a live
Raft link closes that link and the cluster carries on; `openssl s_client`
sees TLS 1.3 on the Raft, agent and blob ports and nothing older; the same
for agents (another CA, impersonation, approval)."""
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import flotilla_cluster
from flotilla_cluster import (BIN, Agent, Cluster, check, put, request, run, leader_api,
                              submit, wait_connected, wait_task)


def log_of(server):
    with open(server.log, errors="replace") as f:
        return f.read()


def wait_for(pred, timeout=20, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def write_ok(cluster, n=20, prefix="k"):
    lid = cluster.leader()
    for i in range(n):
        st, _, raw = put(cluster.servers[lid].api, "%s%d" % (prefix, i), "v%d" % i)
        check(st == 200, "write %d: %s %r" % (i, st, raw[:200]))


class FlipProxy:
    """A TCP proxy that can flip one byte of the next chunk it forwards from
    the connecting side to the accepting side."""

    def __init__(self, listen_port, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.listen(16)
        self.flip = threading.Event()
        self.flipped = 0
        self.accepted = 0
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, src, dst, forward):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if forward and self.flip.is_set() and len(data) > 8:
                    self.flip.clear()
                    b = bytearray(data)
                    b[len(b) // 2] ^= 0x01
                    data = bytes(b)
                    self.flipped += 1
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closing = True
        self.sock.close()


# ---- starting without credentials ----------------------------------------------


def run_bin(args, env=None, timeout=10):
    return subprocess.run([BIN] + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_no_certificate_refuses_to_start():
    c = Cluster(1, name="nocert")
    try:
        env = dict(os.environ)
        for k in ("FLOTILLA_CACERT", "FLOTILLA_CERT", "FLOTILLA_CERT_KEY"):
            env.pop(k, None)
        server = ["server", "--id", "1", "--data", os.path.join(c.dir, "s"), "--key", c.key]
        agent = ["agent", "--join", "127.0.0.1:1", "--data", os.path.join(c.dir, "a")]
        for args in (server, agent):
            p = run_bin(args, env)
            check(p.returncode == 2, "%s started without a certificate: %r" % (args[0], p))
            check("flotilla ca init" in p.stderr and "flotilla cert issue" in p.stderr,
                  "no hint how to make certificates: %r" % p.stderr)
        scert, skey = c.issue("server", "server-1")
        acert, akey = c.issue("agent", "web-1")
        # A key file readable by others is refused, like ssh does.
        loose = os.path.join(c.dir, "loose.key")
        with open(skey) as f, open(loose, "w") as g:
            g.write(f.read())
        os.chmod(loose, 0o644)
        p = run_bin(server + ["--ca", c.ca, "--cert", scert, "--cert-key", loose], env)
        check(p.returncode == 2 and "chmod 600" in p.stderr, "loose key accepted: %r" % p.stderr)
        # The environment names the files too.
        env2 = dict(env, FLOTILLA_CACERT=c.ca, FLOTILLA_CERT="/nonexistent/cert.pem",
                    FLOTILLA_CERT_KEY=skey)
        p = run_bin(server, env2)
        check(p.returncode == 2 and "/nonexistent/cert.pem" in p.stderr, "env: %r" % p.stderr)
        # A certificate of another CA is refused at start, saying so.
        _, fcert, fkey = c.foreign_tls("server", "server-1")
        p = run_bin(server + ["--ca", c.ca, "--cert", fcert, "--cert-key", fkey], env)
        check(p.returncode == 2 and "does not verify against the CA" in p.stderr,
              "another CA's certificate: %r" % p.stderr)
        # The key must be the certificate's.
        p = run_bin(server + ["--ca", c.ca, "--cert", scert, "--cert-key", akey], env)
        check(p.returncode == 2 and "does not belong to the certificate" in p.stderr,
              "another key: %r" % p.stderr)
        # Roles and names: an agent certificate does not make a server; a
        # server's or agent's name is the one in its certificate.
        p = run_bin(server + ["--ca", c.ca, "--cert", acert, "--cert-key", akey], env)
        check(p.returncode == 2 and "server certificate" in p.stderr,
              "an agent certificate ran a server: %r" % p.stderr)
        p = run_bin(server + ["--name", "server-9", "--ca", c.ca, "--cert", scert, "--cert-key",
                              skey], env)
        check(p.returncode == 2 and 'names "server-1"' in p.stderr, "--name: %r" % p.stderr)
        p = run_bin(agent + ["--name", "web-2", "--ca", c.ca, "--cert", acert, "--cert-key", akey],
                    env)
        check(p.returncode != 0 and 'certificate names "web-1"' in p.stderr,
              "agent --name: %r" % p.stderr)
        # The servers' key is still required, and for servers only.
        p = run_bin(["server", "--id", "1", "--data", os.path.join(c.dir, "s"), "--ca", c.ca,
                     "--cert", scert, "--cert-key", skey], dict(env, FLOTILLA_KEY_FILE=""))
        check(p.returncode == 2 and "flotilla keygen" in p.stderr, "no servers' key: %r" % p.stderr)
        p = run_bin(["agent", "--help"], env)
        check("--key " not in p.stdout and "--cert-key" in p.stdout,
              "the agent takes no cluster key: %r" % p.stdout)
        # keygen refuses to overwrite without --force and writes mode 0600.
        p = run_bin(["keygen", "--out", c.key])
        check(p.returncode != 0 and "--force" in p.stderr, "keygen overwrote: %r" % p.stderr)
        check(os.stat(c.key).st_mode & 0o777 == 0o600, "key mode")
        check(os.stat(skey).st_mode & 0o777 == 0o600, "certificate key mode")
    finally:
        c.close()


# ---- Raft ---------------------------------------------------------------------------


def test_foreign_ca_cannot_join_raft():
    c = Cluster(3, name="foreignca")
    fca, fcert, fkey = c.foreign_tls("server", "server-3")
    c.servers[3].extra = ["--ca", fca, "--cert", fcert, "--cert-key", fkey]
    try:
        for sid, srv in c.servers.items():
            srv.start()
        for sid in (1, 2):
            c.servers[sid].wait_up()
        # Server 3's API speaks with the other CA's certificate: the
        # harness, trusting the cluster's, cannot ask it anything.
        def server3_up():
            try:
                return https_call(c, c.servers[3].api, "GET", "/v1/status", ca=fca)[0] == 200
            except OSError:  # not listening yet
                return False
        wait_for(lambda: c.servers[3].alive() and server3_up(), 20, "server 3 to come up")
        c.bootstrap()
        write_ok(c, 30)
        # Servers 1 and 2 log why server 3 is refused; so does server 3.
        for sid in (1, 2, 3):
            wait_for(lambda: "raft link" in log_of(c.servers[sid]) and
                     ("certificate" in log_of(c.servers[sid]) or
                      "unknown ca" in log_of(c.servers[sid])), 15,
                     "server %d to log the refused certificate" % sid)
        check(any("unknown ca" in log_of(c.servers[i]) or "does not verify" in
                  log_of(c.servers[i]) for i in (1, 2)), "no reason logged")
        lid = c.leader()
        check(lid in (1, 2), "the server of another CA leads")
        good = c.servers[lid].status()
        bad = https_call(c, c.servers[3].api, "GET", "/v1/status", ca=fca)[1]
        check(c.servers[3].status() is None, "the harness reached server 3 with the cluster's CA")
        check(bad["applied_index"] < good["applied_index"],
              "server 3 applied entries: %r vs %r" % (bad["applied_index"], good["applied_index"]))
        check(bad["state"] != "leader", "server 3 leads")
        check(good["raft_links"]["refused_handshakes"] >= 1 or
              c.servers[1 if lid == 2 else 2].status()["raft_links"]["refused_handshakes"] >= 1,
              "the refusals are counted")
        c.wait_converged(servers=[c.servers[1], c.servers[2]])
        # With the cluster's certificate, server 3 catches up.
        c.servers[3].stop()
        c.servers[3].extra = []
        c.servers[3].start(bootstrap=True)
        c.servers[3].wait_up()
        c.wait_converged(timeout=30)
    finally:
        c.close()


def s_client(addr, cert, key, ca, extra=()):
    return subprocess.run(["openssl", "s_client", "-connect", addr, "-CAfile", ca, "-cert", cert,
                           "-key", key, "-verify_return_error", "-brief"] + list(extra),
                          input="", capture_output=True, text=True, timeout=20)


def test_tls13_on_every_port_and_roles():
    c = Cluster(3, name="tlsports").start()
    try:
        s1 = c.servers[1]
        blob = c.servers[1].blob
        scert, skey = c.issue("server", "probe-server")
        acert, akey = c.issue("agent", "probe-agent")
        ccert, ckey = c.issue("client", "probe-client")
        for addr, cert, key in ((s1.raft, scert, skey), (s1.agent, acert, akey),
                                (blob, ccert, ckey), (s1.api, ccert, ckey)):
            r = s_client(addr, cert, key, c.ca, ["-tls1_3"])
            out = r.stdout + r.stderr
            check("Protocol version: TLSv1.3" in out and "Verification: OK" in out,
                  "s_client to %s: %s" % (addr, out[-600:]))
            r = s_client(addr, cert, key, c.ca, ["-tls1_2"])
            out = r.stdout + r.stderr
            check(r.returncode != 0 and "TLSv1.2" not in out.split("Protocol version")[-1][:20],
                  "TLS 1.2 accepted on %s: %s" % (addr, out[-600:]))
            check("alert protocol version" in out or "unsupported protocol" in out,
                  "no protocol refusal on %s: %s" % (addr, out[-600:]))
        # The API: curl with the CA, TLS 1.3, a token; without the CA, no.
        token = flotilla_cluster.TOKEN
        r = subprocess.run(["curl", "-sv", "--cacert", c.ca, "-H", "X-Flotilla-Token: %s" % token,
                            "https://127.0.0.1:%s/v1/status" % s1.api.rsplit(":", 1)[1]],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 0 and "TLSv1.3" in r.stderr and '"leader"' in r.stdout,
              "curl --cacert: %r" % (r.stderr[-500:],))
        r = subprocess.run(["curl", "-s", "https://127.0.0.1:%s/v1/status" % s1.api.rsplit(":", 1)[1]],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 60, "curl without the CA must fail verification: %d" % r.returncode)
        r = subprocess.run(["curl", "-s", "--cacert", c.ca, "--tls-max", "1.2",
                            "https://127.0.0.1:%s/v1/status" % s1.api.rsplit(":", 1)[1]],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 35, "TLS 1.2 on the API: curl exit %d" % r.returncode)
        r = subprocess.run(["curl", "-s", "http://127.0.0.1:%s/v1/status" % s1.api.rsplit(":", 1)[1]],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode != 0 or '"leader"' not in r.stdout, "plain HTTP answered")
        # Roles: an agent certificate cannot open a Raft link; a client
        # certificate cannot open an agent link; no certificate, nothing.
        before = s1.status()["raft_links"]["refused_handshakes"]
        for addr, role, name, kind in ((s1.raft, "agent", "probe-agent", 1),
                                       (s1.agent, "client", "probe-client", 2)):
            try:
                sock = c.tls_connect(addr, role, name, kind=kind, claim=b"9@127.0.0.1:1")
                sock.close()
                raise AssertionError("a %s certificate opened a kind %d link" % (role, kind))
            except (ssl.SSLError, ConnectionError, OSError) as e:
                check("access denied" in str(e) or "alert" in str(e) or "closed" in str(e),
                      "refusal of %s on kind %d: %r" % (role, kind, e))
        wait_for(lambda: "may not open a raft link" in log_of(s1), 10, "the Raft refusal logged")
        wait_for(lambda: "may not open a agent link" in log_of(s1), 10, "the agent refusal logged")
        check(s1.status()["raft_links"]["refused_handshakes"] >= before + 1, "not counted")
        # No client certificate: the server's alert says so (read after the
        # client's own handshake ends, as TLS 1.3 orders it).
        ctx = ssl.create_default_context(cafile=c.ca)
        ctx.check_hostname = False
        host, port = s1.raft.rsplit(":", 1)
        refusal = ""
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            try:
                with ctx.wrap_socket(raw) as t:
                    t.sendall(b"FLT1\x01\x00")
                    got = t.recv(10)
                    refusal = "answered %r" % got
            except (ssl.SSLError, OSError) as e:
                refusal = str(e)
        check("CERTIFICATE_REQUIRED" in refusal.upper().replace(" ", "_"),
              "no client certificate: %s" % refusal)
        # A link of one kind cannot be used as another: a server certificate
        # saying "blob" on the Raft port is closed.
        try:
            sock = c.tls_connect(s1.raft, "server", "probe-server", kind=3)
            sock.close()
            raise AssertionError("a blob HELLO was answered on the Raft port")
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        wait_for(lambda: "opened a blob link on a raft port" in log_of(s1), 10, "kind mismatch")
        write_ok(c, 10)
        c.wait_converged()
    finally:
        c.close()


def test_garbage_and_stock_handshake_refused():
    c = Cluster(3, name="garbage")
    try:
        c.start()
        target = c.servers[1].raft
        host, port = target.rsplit(":", 1)
        links0 = c.servers[1].status()["raft_links"]
        payloads = [
            os.urandom(300),
            # The stock raft handshake: protocol 1, id 9, address length 16.
            (1).to_bytes(8, "little") + (9).to_bytes(8, "little") + (16).to_bytes(8, "little")
            + b"127.0.0.1:9999\0\0",
            b"\x7f\xff\xff\xff" + b"A" * 100,  # absurd length
            b"\x00\x00\x01",  # a partial header, then silence
        ]
        socks = []
        for p in payloads:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(p)
            socks.append(s)
        # Every one is closed by the server: refused at once, or the
        # handshake deadline for the silent one.
        for s in socks:
            s.settimeout(10)
            try:
                data = s.recv(100)
            except OSError:
                data = b""
            check(data == b"", "the server answered garbage with %r" % data[:20])
            s.close()
        log = log_of(c.servers[1])
        check("raft link from" in log, "no log line for refused links")
        check("wrong version number" in log or "packet length too long" in log or
              "record layer failure" in log, "no TLS reason logged: %s" % log[-1500:])
        write_ok(c, 10)
        c.wait_converged()
        # Counted: the refused handshakes (garbage, the stock handshake, the
        # absurd length; the silent one times out), and the real links carry
        # sealed bytes, more on the wire than raft handed over.
        links = c.servers[1].status()["raft_links"]
        check(links["refused_handshakes"] >= links0["refused_handshakes"] + 3 and
              links["handshake_timeouts"] >= links0["handshake_timeouts"] + 1,
              "refusals and the silent peer counted: %r -> %r" % (links0, links))
        check(links["established"] >= 2 and links["raft_bytes_sent"] > 0 and
              links["wire_bytes_sent"] > links["raft_bytes_sent"] and
              links["raft_bytes_received"] > 0, "link counters: %r" % links)
    finally:
        c.close()


def test_tampered_byte_closes_raft_link():
    c = Cluster(3, name="tamper")
    proxy_port = c.base + 105
    s2 = c.servers[2]
    # Everyone reaches server 2 through the proxy; server 2 listens on its own port.
    c.peers = ",".join("%d=127.0.0.1:%d" % (i, proxy_port if i == 2 else c.base + 100 + i)
                       for i in (1, 2, 3))
    proxy = FlipProxy(proxy_port, int(s2.raft.rsplit(":", 1)[1]))
    try:
        c.start(wait_nodes=False)
        # Followers answer the leader at the address it claims in its
        # handshake (its own); only the leader's links to server 2 use the
        # configured address, the proxy. So server 2 must follow.
        for _ in range(5):
            lid = c.leader()
            if lid != 2:
                break
            request(c.servers[lid].api, "POST", "/v1/members/transfer", {"id": 1})
            time.sleep(1)
        check(c.leader() != 2, "server 2 kept the leadership")
        write_ok(c, 20, "before")
        c.wait_converged()
        accepted = proxy.accepted
        check(accepted >= 1, "no Raft link went through the proxy")
        before = log_of(s2).count("closing the link")
        proxy.flip.set()
        wait_for(lambda: proxy.flipped > 0, 10, "the flip")
        wait_for(lambda: log_of(s2).count("closing the link") > before, 15,
                 "server 2 to close the tampered link")
        check(s2.status()["raft_links"]["closed_bad_frame"] >= 1,
              "the tampered link is counted: %r" % s2.status()["raft_links"])
        log = log_of(s2)
        check("bad record mac" in log or "decryption failed" in log,
              "no reason for closing: %s" % log[-2000:])
        # The cluster carries on, and the link comes back through the proxy.
        write_ok(c, 50, "after")
        wait_for(lambda: proxy.accepted > accepted, 15, "a new link through the proxy")
        c.wait_converged(timeout=30)
        check(all(s.alive() for s in c.servers.values()), "a server died")
    finally:
        proxy.close()
        c.close()


# ---- agents -------------------------------------------------------------------------


def agents(cluster):
    st, body, raw = request(leader_api(cluster), "GET", "/v1/agents")
    check(st == 200, "GET /v1/agents: %s %r" % (st, raw[:200]))
    return {a["id"]: a for a in body["agents"]}


def agent_log(agent):
    with open(agent.log, errors="replace") as f:
        return f.read()


def any_server_log(cluster, text):
    return any(text in log_of(s) for s in cluster.servers.values())


def test_agent_foreign_ca_refused():
    c = Cluster(3, name="agentca").start()
    try:
        fca, fcert, fkey = c.foreign_tls("agent", "intruder")
        # The intruder trusts our CA (it has the public certificate) but its
        # own certificate is another CA's.
        bad = Agent(c, "intruder", extra=["--ca", c.ca, "--cert", fcert, "--cert-key", fkey])
        bad.start()
        time.sleep(0.5)
        check(not bad.alive() and "does not verify against the CA" in agent_log(bad),
              "an agent with another CA's certificate started: %s" % agent_log(bad)[-500:])
        # Trusting its own CA it starts, and every server refuses it.
        bad = Agent(c, "intruder", extra=["--ca", fca, "--cert", fcert, "--cert-key", fkey])
        bad.start()
        good = Agent(c, "worker-1").start()
        wait_connected(c, ["worker-1"])
        wait_for(lambda: "TLS link to" in agent_log(bad), 15, "the agent to log why")
        check(bad.alive(), "the refused agent crashed")
        check("intruder" not in agents(c), "the intruder has an identity record")
        st, body, _ = request(leader_api(c), "GET", "/v1/nodes")
        check(st == 200 and "intruder" not in {n["id"] for n in body["nodes"]},
              "the intruder became a node")
        # Counted by the server it tried (any of them).
        refused = 0
        for srv in c.servers.values():
            st, body, _ = request(srv.api, "GET", "/v1/dispatch?stale")
            refused += body["refused_connections"]
        check(refused >= 1, "not counted: %r" % body)
        write_ok(c, 10)
        c.wait_converged()
    finally:
        c.close()


def agent_identity(agent, message=None):
    args = [BIN, "agent", "id", "--data", agent.data]
    if message is not None:
        args += ["--sign", message]
    out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=True).stdout
    return dict(line.split(" ", 1) for line in out.strip().splitlines())


def test_agent_impersonation_refused():
    import base64
    import nacl.exceptions
    import nacl.signing
    c = Cluster(3, name="imperson").start()
    try:
        real = Agent(c, "web-1").start()
        wait_connected(c, ["web-1"])
        rec = wait_for(lambda: agents(c).get("web-1"), 15, "web-1's identity record")
        check(rec["state"] == "approved", "first join records the key approved: %r" % rec)
        # The key the cluster recorded is the agent's, and a standard Ed25519
        # implementation verifies what the agent signs with it.
        ident = agent_identity(real, "flotilla interop check")
        check(ident["public_key"] == rec["public_key"], "recorded key differs")
        vk = nacl.signing.VerifyKey(base64.b64decode(ident["public_key"]))
        vk.verify(b"flotilla interop check", base64.b64decode(ident["signature"]))
        try:
            vk.verify(b"flotilla interop check!", base64.b64decode(ident["signature"]))
            raise AssertionError("a signature verified for another message")
        except nacl.exceptions.BadSignatureError:
            pass
        check(os.stat(os.path.join(real.data, "identity.key")).st_mode & 0o777 == 0o600,
              "identity key mode")
        real.stop()
        # Same name, another data directory: another key. Refused.
        fake = Agent(c, "web-1")
        fake.data = os.path.join(c.dir, "agent-web-1-fake")
        fake.log = os.path.join(c.dir, "agent-web-1-fake.log")
        fake.start()
        wait_for(lambda: any_server_log(c, "agent id web-1 belongs to another key"), 15,
                 "the leader to log the impersonation")
        wait_for(lambda: "identity_mismatch" in agent_log(fake), 15, "the agent to be told")
        time.sleep(1)
        st, body, _ = request(leader_api(c), "GET", "/v1/nodes/web-1")
        check(st == 200 and not body["connected"], "the impersonator is connected")
        check(agents(c)["web-1"]["public_key"] == rec["public_key"], "the record changed")
        # A refused agent backs off instead of hammering the leader.
        time.sleep(4)
        told = agent_log(fake).count("identity_mismatch")
        check(told <= 4, "the refused agent retried %d times in about 5 s" % told)
        check("next attempt in 2000 ms" in agent_log(fake), "the delay doubles")
        # Forgetting the recorded key needs an operate token, and then the next
        # join under that id records its own key (a wiped server or agent).
        st, body, _ = request(leader_api(c), "DELETE", "/v1/agents/web-1", token=None)
        check(st == 401, "forget without a token: %s %r" % (st, body))
        st, body, _ = request(leader_api(c), "DELETE", "/v1/agents/no-such-agent")
        check(st == 404 and body["error"]["code"] == "not_found", "forget unknown: %s %r" % (st, body))
        out = subprocess.run([BIN, "agent", "forget", "web-1", "--addr", leader_api(c)],
                             capture_output=True, text=True, timeout=10)
        check(out.returncode == 0 and "forgot" in out.stdout, "agent forget: %r" % (out,))
        fake_key = agent_identity(fake)["public_key"]
        wait_connected(c, ["web-1"], timeout=45)
        rec2 = wait_for(lambda: agents(c).get("web-1"), 15, "the new record")
        check(rec2["public_key"] == fake_key and rec2["public_key"] != rec["public_key"],
              "the new key is recorded: %r" % rec2)
        fake.stop()
        # Now the old key is the stranger.
        real.start()
        wait_for(lambda: agent_log(real).count("identity_mismatch") >= 1, 20,
                 "the old key to be refused")
    finally:
        c.close()


def test_agent_approval():
    c = Cluster(3, ["--require-agent-approval"], name="approval").start()
    try:
        a = Agent(c, "edge-1").start()
        rec = wait_for(lambda: agents(c).get("edge-1"), 20, "edge-1 pending")
        check(rec["state"] == "pending", "not pending: %r" % rec)
        wait_for(lambda: "awaits approval" in agent_log(a), 15, "the agent to be told")
        st, body, _ = request(leader_api(c), "GET", "/v1/nodes")
        check("edge-1" not in {n["id"] for n in body["nodes"] if n.get("connected")},
              "a pending agent is connected")
        out = subprocess.run([BIN, "agent", "list", "--addr", leader_api(c)],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0 and "edge-1" in out.stdout and "pending" in out.stdout,
              "agent list: %r %r" % (out.stdout, out.stderr))
        # Approving needs an operator token.
        st, _, _ = request(leader_api(c), "POST", "/v1/agents/edge-1/approve", token=None)
        check(st in (401, 403), "approve without a token: %s" % st)
        out = subprocess.run([BIN, "agent", "approve", "edge-1", "--addr", leader_api(c)],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "approve: %r" % out.stderr)
        wait_connected(c, ["edge-1"])
        check(agents(c)["edge-1"]["state"] == "approved", "not approved")
        out = subprocess.run([BIN, "agent", "approve", "nobody", "--addr", leader_api(c)],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode != 0, "approving an unknown agent worked")
    finally:
        c.close()


def node_connected(cluster, name):
    st, body, _ = request(leader_api(cluster), "GET", "/v1/nodes/%s" % name)
    return st == 200 and body.get("connected")


def test_revoked_agent_refused_at_every_handshake():
    c = Cluster(3, name="revoke").start()
    try:
        a = Agent(c, "edge-9").start()
        wait_connected(c, ["edge-9"])
        st, _, _ = request(leader_api(c), "POST", "/v1/agents/edge-9/revoke", token=None)
        check(st == 401, "revoke without a token: %s" % st)
        st, body, _ = request(leader_api(c), "POST", "/v1/agents/bad%20name/revoke")
        check(st == 400, "a name no certificate can carry: %s %r" % (st, body))
        refused0 = sum(request(s.api, "GET", "/v1/dispatch?stale")[1]["refused_connections"]
                       for s in c.servers.values())
        out = subprocess.run([BIN, "agent", "revoke", "edge-9", "--addr", leader_api(c)],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0 and "revoked edge-9" in out.stdout, "agent revoke: %r" % (out,))
        t0 = time.time()
        # Its open link is closed, and every handshake after is refused.
        wait_for(lambda: not node_connected(c, "edge-9"), 10, "edge-9 to be disconnected")
        wait_for(lambda: "revoked" in agent_log(a), 10, "the agent to be told it is revoked")
        closed_in = time.time() - t0
        check(closed_in < 5, "the open link was closed after %.1f s" % closed_in)
        check(agents(c)["edge-9"]["state"] == "revoked", "not listed revoked: %r" % agents(c))
        wait_for(lambda: agent_log(a).count("certificate revoked") >= 2, 20,
                 "two refused handshakes")
        refused1 = sum(request(s.api, "GET", "/v1/dispatch?stale")[1]["refused_connections"]
                       for s in c.servers.values())
        check(refused1 > refused0, "refusals counted: %d -> %d" % (refused0, refused1))
        check(any("edge-9" in log_of(s) and "revoked" in log_of(s) for s in c.servers.values()),
              "no server logged the revoked agent")
        # The name is revoked, not one certificate: a certificate issued again
        # for edge-9 gets nothing either, on the agent port or the blob port.
        prefix = os.path.join(c.pki, "reissued-edge-9")
        subprocess.check_call([BIN, "cert", "issue", "--ca-dir", c.pki, "--role", "agent", "--name",
                               "edge-9", "--out", prefix], stdout=subprocess.DEVNULL)
        for addr, kind in ((c.servers[1].agent, 2), (c.servers[1].blob, 3)):
            try:
                sock = c.tls_connect(addr, "agent", "edge-9", kind=kind,
                                     cert=(prefix + ".pem", prefix + ".key"))
                sock.close()
                raise AssertionError("a revoked name linked to %s" % addr)
            except (ssl.SSLError, ConnectionError, OSError) as e:
                check("revoked" in str(e) or "closed" in str(e), "refusal: %r" % e)
        time.sleep(1)
        check(not node_connected(c, "edge-9"), "edge-9 came back while revoked")
        # Other agents are untouched; unrevoking lets edge-9 back in.
        b = Agent(c, "edge-10").start()
        wait_connected(c, ["edge-10"])
        out = subprocess.run([BIN, "agent", "unrevoke", "edge-9", "--addr", leader_api(c)],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "agent unrevoke: %r" % (out,))
        wait_connected(c, ["edge-9"], timeout=45)
        check(agents(c)["edge-9"]["state"] == "approved", "after unrevoke: %r" % agents(c))
        out = subprocess.run([BIN, "agent", "unrevoke", "edge-9", "--addr", leader_api(c)],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode != 0, "unrevoking an agent that is not revoked worked")
        b.stop()
        write_ok(c, 10)
        c.wait_converged()
    finally:
        c.close()


def replace_file(path, data):
    """Write path through a temporary file renamed into place (what an
    operator's tooling does), keeping its mode."""
    mode = os.stat(path).st_mode & 0o777
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def issuer_of(addr, ca, cert, key):
    r = subprocess.run(["openssl", "s_client", "-connect", addr, "-CAfile", ca, "-cert", cert,
                        "-key", key, "-showcerts"], input="", capture_output=True, text=True,
                       timeout=20)
    return r.stdout + r.stderr


def test_ca_and_certificate_rotation_while_writing():
    """Rotate the CA and every server's certificate while a writer runs:
    trust both CAs (SIGHUP), reissue the servers' certificates from the new
    CA (SIGHUP), restart a follower so its links are made again with the new
    certificates, reissue the agent's, then trust the new CA alone. Zero
    failed writes; afterwards a certificate of the old CA is refused."""
    c = Cluster(3, name="rotate").start()
    stop = threading.Event()
    stats = {"ok": 0, "failed": [], "n": 0}

    def writer():
        while not stop.is_set():
            stats["n"] += 1
            try:
                st, _, raw = put(leader_api(c), "rot-%d" % stats["n"], "v", timeout=20)
            except Exception as e:  # noqa: BLE001 - a failed write, whatever it was
                st, raw = 0, repr(e)
            if st == 200:
                stats["ok"] += 1
            else:
                stats["failed"].append((st, raw[:200]))
            time.sleep(0.01)

    try:
        a = Agent(c, "rot-agent").start()
        wait_connected(c, ["rot-agent"])
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        old_ca = read(c.ca)
        new_dir = os.path.join(c.dir, "pki-new")
        subprocess.check_call([BIN, "ca", "init", "--dir", new_dir, "--cluster", "it"],
                              stdout=subprocess.DEVNULL)
        new_ca = read(os.path.join(new_dir, "ca.pem"))

        def hup_all():
            for srv in c.servers.values():
                srv.proc.send_signal(signal.SIGHUP)
            a.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)

        # 1. Everyone trusts both CAs.
        replace_file(c.ca, old_ca + new_ca)
        hup_all()
        # 2. The servers' certificates from the new CA.
        for sid, srv in c.servers.items():
            prefix = os.path.join(new_dir, "server-%d" % sid)
            subprocess.check_call([BIN, "cert", "issue", "--ca-dir", new_dir, "--role", "server",
                                   "--name", "server-%d" % sid, "--san",
                                   "DNS:localhost,IP:127.0.0.1", "--out", prefix],
                                  stdout=subprocess.DEVNULL)
            cert, key = c.issue("server", "server-%d" % sid)
            replace_file(cert, read(prefix + ".pem"))
            replace_file(key, read(prefix + ".key"))
            srv.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
        wait_for(lambda: all("certificates reloaded" in log_of(srv) for srv in c.servers.values()),
                 10, "every server to reload")
        # New handshakes present the new certificate.
        acert, akey = c.issue("agent", "rot-agent")
        out = issuer_of(c.servers[1].agent, c.ca, acert, akey)
        check("O = it, CN = flotilla-ca" in out or "CN = flotilla-ca" in out, "issuer: %s" % out[-800:])
        # 3. A follower restarts: its Raft links are made again, both ways.
        lid = c.leader()
        fid = [i for i in c.servers if i != lid][0]
        c.servers[fid].stop()
        c.servers[fid].start(bootstrap=True)
        c.servers[fid].wait_up()
        wait_for(lambda: (c.servers[fid].status() or {}).get("applied_index", 0) >=
                 c.servers[lid].status()["applied_index"] - 50, 30, "the follower to catch up")
        # 4. The agent's certificate from the new CA; then the new CA alone.
        prefix = os.path.join(new_dir, "rot-agent")
        subprocess.check_call([BIN, "cert", "issue", "--ca-dir", new_dir, "--role", "agent",
                               "--name", "rot-agent", "--out", prefix], stdout=subprocess.DEVNULL)
        replace_file(acert, read(prefix + ".pem"))
        replace_file(akey, read(prefix + ".key"))
        a.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        replace_file(c.ca, new_ca)
        hup_all()
        # A follower restarts again, the agent reconnects: all on the new CA.
        lid = c.leader()
        fid = [i for i in c.servers if i != lid][0]
        c.servers[fid].stop()
        c.servers[fid].start(bootstrap=True)
        c.servers[fid].wait_up()
        a.stop()
        a.start()
        wait_connected(c, ["rot-agent"], timeout=30)
        time.sleep(1)
        stop.set()
        t.join(30)
        c.wait_converged(timeout=30)  # the restarted follower caught up
        check(stats["ok"] > 50, "the writer made %d writes" % stats["ok"])
        check(not stats["failed"], "%d failed writes: %r" % (len(stats["failed"]),
                                                           stats["failed"][:5]))
        # A certificate of the old CA is refused now.
        old_dir = os.path.join(c.dir, "pki-old")
        os.makedirs(old_dir, mode=0o700)
        with open(os.path.join(old_dir, "ca.pem"), "wb") as f:
            f.write(old_ca)
        with open(os.path.join(old_dir, "ca.key"), "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(read(os.path.join(c.pki, "ca.key")))
        old_pki_cert = os.path.join(old_dir, "client-old")
        subprocess.check_call([BIN, "cert", "issue", "--ca-dir", old_dir, "--role", "client",
                               "--name", "old", "--out", old_pki_cert], stdout=subprocess.DEVNULL)
        # (The dialling side finishes its TLS handshake before the server has
        # judged its certificate: admission is the server's HELLO, which
        # never comes.)
        try:
            sock = c.tls_connect(c.servers[1].blob, "client", "old", kind=3,
                                 cert=(old_pki_cert + ".pem", old_pki_cert + ".key"))
            sock.close()
            raise AssertionError("a certificate of the old CA linked after the rotation")
        except (ssl.SSLError, ConnectionError, OSError) as e:
            check("unknown ca" in str(e).lower() or "closed" in str(e) or "alert" in str(e),
                  "refusal of the old CA: %r" % e)
    finally:
        stop.set()
        c.close()


def test_a_unit_on_an_agent_finds_no_cluster_secret():
    """A shell unit on a standalone agent dumps everything of its agent it can
    reach: the agent's command line and environment, every file the command
    line names, the agent's data directory. Neither the servers' key nor the
    CA's private key is anywhere in it (the agent holds its own key and the CA
    certificate only)."""
    import base64
    c = Cluster(3, name="nosecret").start()
    try:
        a = Agent(c, "probe-agent").start()
        wait_connected(c, ["probe-agent"])
        dump = os.path.join(c.dir, "unit-dump.txt")
        script = r"""
out=%s
{
  echo "== cmdline"; tr '\0' '\n' < /proc/$PPID/cmdline
  echo "== environ"; tr '\0' '\n' < /proc/$PPID/environ
  echo "== own environ"; env
  exe=$(readlink /proc/$PPID/exe)
  for f in $(tr '\0' ' ' < /proc/$PPID/cmdline); do
    [ "$f" = "$exe" ] && continue
    if [ -f "$f" ]; then echo "== file $f"; cat "$f"; fi
    if [ -d "$f" ]; then
      for g in $(find "$f" -maxdepth 3 -type f 2>/dev/null); do echo "== file $g"; cat "$g"; done
    fi
  done
  for v in $(tr '\0' '\n' < /proc/$PPID/environ | sed 's/^[^=]*=//'); do
    if [ -f "$v" ]; then echo "== file $v"; cat "$v"; fi
  done
  for fd in /proc/$PPID/fd/*; do
    t=$(readlink "$fd"); echo "== fd $t"
    if [ -f "$t" ]; then cat "$t"; fi
  done
} > "$out" 2>&1
echo dumped
""" % dump
        tid = submit(c, {"hosts": ["probe-agent"], "run_on": "host", "shell": script})
        t = wait_task(c, tid, timeout=60)
        check(t["state"] == "done", "the unit ran: %r" % t)
        text = read(dump)
        check(b"== cmdline" in text and b"--cert-key" in text and b"BEGIN CERTIFICATE" in text,
              "the dump holds the agent's command line and files: %r" % text[:400])
        cmdline = text.split(b"== cmdline\n", 1)[1].split(b"== environ", 1)[0].split(b"\n")
        environ = text.split(b"== environ\n", 1)[1].split(b"== file", 1)[0]
        check(b"--key" not in cmdline and b"FLOTILLA_KEY_FILE=" not in environ,
              "the agent was given a servers' key: %r %r" % (cmdline, environ[:300]))
        servers_key = read(c.key).strip()
        raw_key = base64.b64decode(servers_key)
        ca_key = read(os.path.join(c.pki, "ca.key"))
        ca_body = b"".join(l for l in ca_key.splitlines() if not l.startswith(b"-----"))
        check(servers_key not in text and raw_key not in text,
              "the servers' key is readable from a unit")
        check(ca_body not in text, "the CA's private key is readable from a unit")
        # And its results show none of it.
        st, res, _ = request(leader_api(c), "GET", "/v1/tasks/%s/results" % tid)
        blob = json.dumps(res).encode()
        check(servers_key not in blob and ca_body not in blob, "a secret in the results")
        a.stop()
    finally:
        c.close()


def test_one_address_cannot_hold_the_handshake_slots():
    """40 silent connections from one address to each of a server's Raft, agent
    and blob ports: only a few are kept (8, 16, 16) before authentication, the
    rest are refused at once and counted; every kept one is closed at its
    handshake deadline; meanwhile an agent from another address links, a
    client fetches over the blob link, and the cluster writes."""
    c = Cluster(3, name="slots").start()
    silent = []
    try:
        s1 = c.servers[1]
        before = s1.status()
        for addr in (s1.raft, s1.agent, s1.blob):
            host, port = addr.rsplit(":", 1)
            for _ in range(40):
                sk = socket.socket()
                sk.bind(("127.0.0.2", 0))
                sk.connect((host, int(port)))
                silent.append(sk)
        time.sleep(1)
        after = s1.status()
        raft_refused = (after["raft_links"]["refused_handshakes"] -
                        before["raft_links"]["refused_handshakes"])
        st, disp, _ = request(s1.api, "GET", "/v1/dispatch?stale")
        blob = after["blob_links"]
        print("   refused from one address: raft %d, agent %d, blob %d; agent links not yet "
              "admitted %d" % (raft_refused, disp["refused_per_address"],
                               blob["refused_per_address"], disp["unadmitted_connections"]))
        check(raft_refused >= 32, "Raft port kept more than 8: %d refused" % raft_refused)
        check(disp["refused_per_address"] >= 24, "agent port: %r" % disp)
        check(blob["refused_per_address"] >= 24, "blob port: %r" % blob)
        # Others are served meanwhile.
        a = Agent(c, "slot-agent").start()
        wait_connected(c, ["slot-agent"])
        sock = c.tls_connect(s1.blob, "client", "slot-client", kind=3)
        sock.close()
        write_ok(c, 10)
        # Every silent connection the servers kept is closed at its deadline
        # (Raft 5 s, agents and blobs 10 s).
        deadline = time.time() + 15
        open_left = len(silent)
        while time.time() < deadline and open_left > 0:
            open_left = 0
            for sk in silent:
                sk.setblocking(False)
                try:
                    if sk.recv(1) != b"":
                        open_left += 1
                except BlockingIOError:
                    open_left += 1
                except OSError:
                    pass
            time.sleep(0.5)
        check(open_left == 0, "%d silent connections still open after their deadline" % open_left)
        a.stop()
    finally:
        for sk in silent:
            sk.close()
        c.close()


def https_call(cluster, addr, method, path, body=None, cert=None, token=None, ca=None,
               caller_server=False):
    """One HTTPS request presenting a client certificate (cert, key), or none,
    trusting the cluster's CA (or `ca`)."""
    import http.client
    ctx = ssl.create_default_context(cafile=ca or cluster.ca)
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(*cert)
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=ctx)
    try:
        h = {"Content-Type": "application/json"}
        if token:
            h["X-Flotilla-Token"] = token
        if caller_server:  # what a follower says of a server it forwards for
            h["X-Flotilla-Caller-Server"] = "server-1"
            h["X-Flotilla-Forwarded"] = "1"
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def test_internal_routes_take_a_server_certificate():
    """The internal routes take a server's certificate, never a token or
    another role's certificate, and a follower's forwarding never lends its
    own; even with a server certificate no row can claim another server's
    Raft id."""
    c = Cluster(3, name="internal").start()
    try:
        lid = c.leader()
        leader = c.servers[lid].api
        follower = next(s.api for i, s in c.servers.items() if i != lid)
        decoy = {"id": lid, "name": "decoy", "raft_addr": "127.0.0.1:1", "api_addr": "10.6.6.6:1",
                 "agent_addr": "10.6.6.6:2"}
        token = flotilla_cluster.TOKEN
        before = c.wait_converged()
        for who, cert in (("an agent", c.issue("agent", "intruder-agent")),
                          ("a client", c.issue("client", "intruder-client")),
                          ("no", None)):
            st, body = https_call(c, leader, "POST", "/v1/internal/register", decoy, cert=cert,
                                  token=token)
            check(st == 403 and "servers only" in body["error"]["message"],
                  "%s certificate with the management token: %s %r" % (who, st, body))
        # Through a follower: it forwards with its own certificate, which
        # must not count as its caller's; nor does a caller's own claim.
        for cert, hdr in ((c.issue("client", "intruder-client"), False), (None, True)):
            st, body = https_call(c, follower, "POST", "/v1/internal/register", decoy, cert=cert,
                                  token=token, caller_server=hdr)
            # 403, or 503 when the follower will not forward what claims to be
            # forwarded already: either way it never reaches the state machine.
            check(st in (403, 503), "forwarded by a follower: %s %r" % (st, body))
        st, body = https_call(c, leader, "POST", "/v1/internal/register", decoy,
                              cert=c.issue("client", "intruder-client"), token=token,
                              caller_server=True)
        check(st == 403, "a client claiming a server caller: %s %r" % (st, body))
        # A server's certificate is taken, and still no decoy row: the Raft id
        # belongs to its server.
        st, body = https_call(c, leader, "POST", "/v1/internal/register", decoy,
                              cert=c.issue("server", "server-%d" % lid))
        check(st == 409, "a decoy of server %d's Raft id: %s %r" % (lid, st, body))
        st, nodes, _ = request(leader, "GET", "/v1/nodes")
        check("decoy" not in {n["id"] for n in nodes["nodes"]}, "a decoy row exists")
        after = c.wait_converged()
        check(after[1] == before[1] or after[0] > before[0], "converged")
        write_ok(c, 5)
    finally:
        c.close()


if __name__ == "__main__":
    run([
        test_no_certificate_refuses_to_start,
        test_foreign_ca_cannot_join_raft,
        test_tls13_on_every_port_and_roles,
        test_garbage_and_stock_handshake_refused,
        test_tampered_byte_closes_raft_link,
        test_agent_foreign_ca_refused,
        test_agent_impersonation_refused,
        test_agent_approval,
        test_revoked_agent_refused_at_every_handshake,
        test_ca_and_certificate_rotation_while_writing,
        test_a_unit_on_an_agent_finds_no_cluster_secret,
        test_one_address_cannot_hold_the_handshake_slots,
        test_internal_routes_take_a_server_certificate,
    ])
