"""The package store on three real servers (docs/PACKAGES.md).

Push to a follower in chunks; the version is recorded through Raft and the
bytes reach every server over the blob link, verified; hashes are checked
with an independent BLAKE2b (Debian's python3-nacl); versions are immutable;
retention keeps the last K; bad input changes nothing; a process with a
certificate of another CA gets no blob; an interrupted upload resumes."""
import hashlib
import json
import os
import subprocess
import time

import nacl.encoding
import nacl.hash

from flotilla_cluster import BIN, Cluster, check, request, run


def b2(data):
    return nacl.hash.blake2b(data, digest_size=32, encoder=nacl.encoding.HexEncoder).decode()


def cli(c, api, *args, ok=True):
    env = c.tls_env(env=dict(os.environ, FLOTILLA_ADDR=api))
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True, env=env, timeout=120)
    if ok:
        check(r.returncode == 0, "%s: rc %d\n%s%s" % (args, r.returncode, r.stdout, r.stderr))
    return r


def wait_everywhere(c, name, version, timeout=30):
    """Every server holds the blob (its own view, ?stale)."""
    end = time.time() + timeout
    while time.time() < end:
        got = []
        for s in c.servers.values():
            st, body, _ = request(s.api, "GET", "/v1/packages/%s/%s?stale" % (name, version))
            got.append(st == 200 and body["local"])
        if all(got):
            return
        time.sleep(0.2)
    logs = ""
    for s in c.servers.values():
        with open(s.log) as f:
            logs += "".join(ln for ln in f if "blob" in ln)[-2000:]
    raise AssertionError("%s@%s not on every server: %r\n%s" % (name, version, got, logs))


def blob_file(c, sid, h):
    return os.path.join(c.servers[sid].data, "blobs", h)


def test_push_replicate_and_verify():
    c = Cluster(3, name="pkg").start()
    try:
        lid = c.leader()
        fid = [i for i in c.servers if i != lid][0]
        api = c.servers[fid].api
        data = os.urandom(5 * 1024 * 1024 + 12345)  # 6 chunks, the last one short
        path = os.path.join(c.dir, "app-1.bin")
        with open(path, "wb") as f:
            f.write(data)
        r = cli(c, api, "package", "push", path, "--name", "app", "--version", "1.0", "--json")
        rec = json.loads(r.stdout)
        check(rec["hash"] == b2(data), "the package hash is BLAKE2b-256 of the bytes (nacl): %s"
              % rec["hash"])
        check(rec["origin"] == "server-%d" % fid, "recorded with the server that took the "
              "upload: %r" % rec)
        check(rec["size"] == len(data) and rec["chunks"] == 6, "size and chunks: %r" % rec)
        # Chunk hashes, independently.
        st, full, _ = request(c.servers[lid].api, "GET", "/v1/packages/app/1.0?chunks")
        cs = full["chunk_size"]
        want = [b2(data[i:i + cs]) for i in range(0, len(data), cs)]
        check(full["chunk_hashes"] == want, "chunk hashes match nacl's BLAKE2b of each chunk")
        wait_everywhere(c, "app", "1.0")
        for sid in c.servers:
            with open(blob_file(c, sid, rec["hash"]), "rb") as f:
                check(f.read() == data, "server %d holds the same bytes" % sid)
        fetched = sum(c.servers[s].status()["blob_links"]["fetched"] for s in c.servers)
        check(fetched == 2, "the two other servers fetched it over the blob link: %d" % fetched)

        # The same version again with the same bytes: recorded once.
        r = cli(c, c.servers[lid].api, "package", "push", path, "--name", "app", "--version",
                "1.0", "--json")
        check(json.loads(r.stdout)["index"] == rec["index"], "a repeated push is a no-op")
        # Other bytes under that version: refused, nothing changes.
        other = os.path.join(c.dir, "other.bin")
        with open(other, "wb") as f:
            f.write(os.urandom(1000))
        r = cli(c, api, "package", "push", other, "--name", "app", "--version", "1.0", ok=False)
        check(r.returncode == 1 and "never changes" in r.stderr, "immutable: %r" % r.stderr)
        st, body, _ = request(api, "GET", "/v1/packages/app/1.0")
        check(body["hash"] == rec["hash"], "1.0 still has its bytes")

        # A certificate of another CA gets no blob; one of the cluster's does.
        wca, wcert, wkey = c.foreign_tls()
        before = c.servers[lid].status()["blob_links"]["refused_handshakes"]
        out = os.path.join(c.dir, "fetched.bin")
        r = cli(c, api, "package", "fetch", "app@1.0", "--from", c.servers[lid].blob, "--ca",
                c.ca, "--cert", wcert, "--cert-key", wkey, "--out", out, ok=False)
        check(r.returncode == 2 and "does not verify against the CA" in r.stderr and
              not os.path.exists(out), "a foreign certificate is refused at load: %r" % r.stderr)
        r = cli(c, api, "package", "fetch", "app@1.0", "--from", c.servers[lid].blob, "--ca",
                wca, "--cert", wcert, "--cert-key", wkey, "--out", out, ok=False)
        check(r.returncode == 1 and not os.path.exists(out), "no blob for another CA: %r"
              % r.stderr)
        # The server's blob thread counts it when it reads the alert, which
        # may be a moment after the client gave up.
        end = time.time() + 5
        after = c.servers[lid].status()["blob_links"]["refused_handshakes"]
        while after == before and time.time() < end:
            time.sleep(0.05)
            after = c.servers[lid].status()["blob_links"]["refused_handshakes"]
        check(after == before + 1, "the refusal is counted: %d -> %d" % (before, after))
        r = cli(c, api, "package", "fetch", "app@1.0", "--from", c.servers[lid].blob, "--out",
                out)
        with open(out, "rb") as f:
            check(f.read() == data, "a fetch with the key gives the package")
    finally:
        c.close()


def test_retention_rm_and_bad_input():
    c = Cluster(3, name="pkgret").start()
    try:
        api = c.servers[c.leader()].api
        hashes = {}
        for v in ("1", "2", "3"):
            p = os.path.join(c.dir, "v%s" % v)
            with open(p, "wb") as f:
                f.write(os.urandom(70000) + v.encode())
            r = cli(c, api, "package", "push", p, "--name", "svc", "--version", v, "--keep", "2",
                    "--json")
            hashes[v] = json.loads(r.stdout)["hash"]
        st, body, _ = request(api, "GET", "/v1/packages/svc")
        check([x["version"] for x in body["versions"]] == ["3", "2"],
              "keep 2: the oldest went: %r" % body)
        st, body, _ = request(api, "GET", "/v1/packages")
        check(body["items"][0]["latest"]["version"] == "3" and body["items"][0]["versions"] == 2,
              "list: %r" % body)
        r = cli(c, api, "package", "rm", "svc@2")
        st, body, _ = request(api, "GET", "/v1/packages/svc/2")
        check(st == 404, "rm: %s" % st)
        r = cli(c, api, "package", "rm", "svc@2", ok=False)
        check(r.returncode == 1, "rm of a missing version fails")

        # Bad input: each refused, nothing recorded.
        st, before, _ = request(api, "GET", "/v1/packages/svc")
        st, up, _ = request(api, "POST", "/v1/uploads", {"size": 10})
        check(st == 200, "upload: %s %r" % (st, up))
        uid = up["id"]
        st, body, _ = request(api, "PUT", "/v1/uploads/%s?offset=5" % uid, raw=b"xxxxx")
        check(st == 409 and body["received"] == 0, "out-of-order chunk: %s %r" % (st, body))
        st, body, _ = request(api, "PUT", "/v1/uploads/%s?offset=0" % uid, raw=b"y" * 11)
        check(st == 413 or st == 400, "a chunk past the size: %s %r" % (st, body))
        st, body, _ = request(api, "POST", "/v1/uploads/%s/commit" % uid,
                              {"name": "svc", "version": "9"})
        check(st == 409, "commit of an incomplete upload: %s %r" % (st, body))
        st, body, _ = request(api, "PUT", "/v1/uploads/%s?offset=0" % uid, raw=b"0123456789")
        check(st == 200 and body["received"] == 10, "the chunk: %s %r" % (st, body))
        st, body, _ = request(api, "POST", "/v1/uploads/%s/commit" % uid,
                              {"name": "svc", "version": "9", "hash": "ab" * 32})
        check(st == 400 and "not the" in body["error"]["message"],
              "a wrong hash is refused: %s %r" % (st, body))
        for bad in ({"name": "../x", "version": "1"}, {"name": "ok", "version": ".hidden"},
                    {"name": "ok", "version": "a b"}, {"name": "ok"}, {"name": "ok", "version":
                    "1", "keep": 0}, {"name": "ok", "version": "1", "hash": "zz"}):
            st, up2, _ = request(api, "POST", "/v1/uploads", {"size": 0})
            st, body, _ = request(api, "POST", "/v1/uploads/%s/commit" % up2["id"], bad)
            check(st == 400, "commit %r refused: %s %r" % (bad, st, body))
        st, body, _ = request(api, "POST", "/v1/uploads", {"size": -1})
        check(st == 400, "negative size: %s" % st)
        st, body, _ = request(api, "GET", "/v1/uploads/%s" % ("0" * 32 + "-5"))
        check(st == 404, "unknown upload: %s" % st)
        st, body, _ = request(api, "POST", "/v1/uploads", {"size": 10}, token=None)
        check(st == 401, "uploads need a token: %s" % st)
        st, after, _ = request(api, "GET", "/v1/packages/svc")
        check(after == before, "nothing recorded by bad input")
    finally:
        c.close()


def test_resume_an_interrupted_upload():
    c = Cluster(3, name="pkgres").start()
    try:
        api = c.servers[c.leader()].api
        data = os.urandom(3 * 1024 * 1024)
        path = os.path.join(c.dir, "big")
        with open(path, "wb") as f:
            f.write(data)
        st, up, _ = request(api, "POST", "/v1/uploads", {"size": len(data)})
        st, body, _ = request(api, "PUT", "/v1/uploads/%s?offset=0" % up["id"],
                              raw=data[:1024 * 1024])
        check(st == 200, "first chunk: %s %r" % (st, body))
        r = cli(c, api, "package", "push", path, "--name", "big", "--version", "1", "--resume",
                up["id"], "--json")
        check(json.loads(r.stdout)["hash"] == b2(data), "the resumed upload has the right bytes")
        st, body, _ = request(api, "GET", "/v1/uploads/%s" % up["id"])
        check(st == 404, "a committed upload is gone: %s" % st)
    finally:
        c.close()

def test_acquire_with_a_delta():
    """An agent's acquire (`package fetch`, deploy/acquire.c): with an earlier
    version as basis, a librsync delta from a server holding the new one;
    bytes over the link (signature up, delta down) a few percent of the
    package for a 1% change; the result verified; no basis or an unrelated
    one: whole, verified chunks."""
    c = Cluster(3, name="pkgdelta").start()
    try:
        lid = c.leader()
        fid = [i for i in c.servers if i != lid][0]
        api = c.servers[lid].api
        size = 8 * 1024 * 1024
        v1 = bytearray(os.urandom(size))
        v2 = bytearray(v1)
        changed = 0
        rnd = __import__("random").Random(6)
        for _ in range(16):  # 1% of the bytes, in 16 places
            n = size // 100 // 16
            at = rnd.randrange(0, size - n)
            v2[at:at + n] = os.urandom(n)
            changed += n
        paths = {}
        for ver, data in (("1", v1), ("2", v2)):
            paths[ver] = os.path.join(c.dir, "app-%s.bin" % ver)
            with open(paths[ver], "wb") as f:
                f.write(data)
            cli(c, api, "package", "push", paths[ver], "--name", "app", "--version", ver)
        wait_everywhere(c, "app", "1")
        wait_everywhere(c, "app", "2")
        cache = os.path.join(c.dir, "agent-cache")
        os.makedirs(cache)

        def fetch(ver, basis=None, sources=None, ok=True, tls=None):
            out = os.path.join(cache, "app-%s" % ver)
            args = ["package", "fetch", "app@" + ver, "--from",
                    sources or c.servers[fid].blob, "--out", out, "--json"]
            if basis:
                args += ["--basis", basis]
            if tls:
                args += ["--ca", tls[0], "--cert", tls[1], "--cert-key", tls[2]]
            r = cli(c, api, *args, ok=ok)
            return (json.loads(r.stdout) if r.returncode == 0 else r), out

        # No earlier version: whole.
        st1, out1 = fetch("1")
        check(st1["method"] == "whole" and st1["bytes_received"] == size,
              "first version whole: %r" % st1)
        with open(out1, "rb") as f:
            check(f.read() == v1, "v1 as pushed")

        # v2 against v1: a delta, a few percent of the package over the link.
        st2, out2 = fetch("2", basis=out1)
        check(st2["method"] == "delta", "v2 by delta: %r" % st2)
        moved = st2["signature_bytes"] + st2["delta_bytes"]
        ratio = moved / size
        print("v2: %d bytes changed (%.2f%%); signature %d B up, delta %d B down: %.2f%% of %d B"
              % (changed, 100.0 * changed / size, st2["signature_bytes"], st2["delta_bytes"],
                 100 * ratio, size), flush=True)
        check(ratio <= 0.05, "bytes transferred for v2 at most 5%% of it: %.4f" % ratio)
        with open(out2, "rb") as f:
            got = f.read()
        check(got == v2 and b2(got) == b2(bytes(v2)), "the patched v2 is v2 (nacl BLAKE2b)")

        # Any holder serves it: a dead first source is skipped.
        dead = "127.0.0.1:%d" % (c.base + 99)
        os.unlink(out2)
        st3, _ = fetch("2", basis=out1, sources=dead + "," + c.servers[lid].blob)
        check(st3["method"] == "delta" and st3["source"] == c.servers[lid].blob,
              "the next source serves the delta: %r" % st3)

        # An unrelated basis: the delta would be most of the package, so
        # the server refuses it and the agent downloads whole.
        junk = os.path.join(c.dir, "junk.bin")
        with open(junk, "wb") as f:
            f.write(os.urandom(size))
        os.unlink(out2)
        st4, _ = fetch("2", basis=junk)
        check(st4["method"] == "whole" and "delta would be over" in st4["delta_refused"] and
              st4["whole_bytes"] == size and st4["delta_bytes"] == 0,
              "unrelated basis: whole download: %r" % st4)
        with open(out2, "rb") as f:
            check(f.read() == v2, "v2 whole is v2")

        # With a certificate of another CA: nothing, with or without a basis.
        os.unlink(out2)
        r, _ = fetch("2", basis=out1, ok=False, tls=c.foreign_tls())
        check(r.returncode == 1 and not os.path.exists(out2), "another CA, no bytes: %r"
              % r.stderr)
        left = [n for n in os.listdir(cache) if n not in ("app-1",) and not n.endswith(".part")]
        check(not left, "no temporary files left in the cache: %r" % left)
    finally:
        c.close()


if __name__ == "__main__":
    run([test_push_replicate_and_verify, test_retention_rm_and_bad_input,
         test_resume_an_interrupted_upload, test_acquire_with_a_delta])
