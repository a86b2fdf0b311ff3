"""API tokens on three real servers (docs/ACL.md).

The route table is walked from GET /v1/routes, so a route added without an
access rule, or with a wrong one, fails here: every route but the public ones
answers 401 without a token and with an unknown one, every write route 403
with a read-only token, and the denied requests change nothing."""
import os
import subprocess

from flotilla_cluster import BIN, Cluster, check, request, run
import flotilla_cluster

PUBLIC = {("GET", "/v1/status"), ("GET", "/v1/health"), ("GET", "/v1/routes"),
          ("POST", "/v1/acl/bootstrap")}


def concrete(path):
    """A request path for a route pattern: {} and * filled in."""
    return path.replace("{}", "x1").replace("*", "x2")


def make_token(api, policies, namespaces=None, name="t"):
    st, body, raw = request(api, "POST", "/v1/acl/tokens",
                            {"policies": policies, "namespaces": namespaces or [], "name": name})
    check(st == 200, "create token %r: %s %r" % (policies, st, body))
    return body["accessor"], body["secret"]


def state(api):
    """What a write route could change, as the leader sees it."""
    out = {}
    for path in ("/v1/kv", "/v1/tasks", "/v1/jobs", "/v1/sessions", "/v1/locks", "/v1/acl/tokens",
                 "/v1/members"):
        st, body, _ = request(api, "GET", path)
        check(st == 200, "GET %s: %s" % (path, st))
        out[path] = body
    st, body, _ = request(api, "GET", "/v1/nodes")
    out["nodes"] = sorted((n["id"], n["cap"], n["drain"]) for n in body["nodes"])
    st, body, _ = request(api, "GET", "/v1/dispatch")
    out["dispatch_paused"] = body.get("paused")
    return out


def leader_api(c):
    return c.servers[c.leader()].api


def test_route_table_is_guarded():
    c = Cluster(3, name="acl-routes").start()
    try:
        api = leader_api(c)
        follower = next(s.api for s in c.servers.values() if s.api != api)
        st, body, _ = request(api, "GET", "/v1/routes", token=None)
        check(st == 200, "routes are public")
        routes = body["routes"]
        check(len(routes) >= 50, "the whole table: %d routes" % len(routes))
        for r in routes:
            check(r["needs"] in ("none", "token", "read", "submit", "operate", "admin", "server"),
                  "%s %s declares what it needs: %r" % (r["method"], r["path"], r["needs"]))
            if (r["method"], r["path"]) not in PUBLIC:
                check(r["needs"] != "none", "%s %s is not public" % (r["method"], r["path"]))
            if r["method"] != "GET":
                check(r["needs"] not in ("read", "token") or r["path"] == "/v1/acl/bootstrap",
                      "write route %s %s needs more than read" % (r["method"], r["path"]))
        _, read_secret = make_token(api, ["read"])
        before = state(api)
        denied = 0
        for r in routes:
            if (r["method"], r["path"]) in PUBLIC:
                continue
            path = concrete(r["path"])
            body = {} if r["method"] in ("POST", "PUT") else None
            for who, tok in (("no token", None), ("an unknown token", "flt_" + "A" * 43)):
                for target in (api, follower):
                    st, resp, _ = request(target, r["method"], path, body, token=tok)
                    check(st == 401, "%s %s with %s via %s: %s %r" % (
                        r["method"], path, who, target, st, resp))
                    check(resp["error"]["code"] == "unauthorized", "401 says unauthorized")
                    denied += 1
            st, resp, _ = request(api, r["method"], path, body, token=read_secret)
            if r["method"] == "GET" and r["needs"] in ("read", "token"):
                check(st not in (401, 403), "%s %s with a read token: %s %r" % (
                    r["method"], path, st, resp))
            elif r["method"] == "GET":
                check(st == 403, "%s %s (%s) with a read token: %s" % (
                    r["method"], path, r["needs"], st))
            else:
                check(st == 403 and resp["error"]["code"] == "forbidden",
                      "%s %s with a read token: %s %r" % (r["method"], path, st, resp))
                denied += 1
        # Routes only servers call refuse every token, the management one too.
        internal = [r for r in routes if r["needs"] == "server"]
        check(len(internal) >= 2, "internal routes: %r" % internal)
        for r in internal:
            st, resp, _ = request(api, r["method"], concrete(r["path"]), {})
            check(st == 403 and "servers only" in resp["error"]["message"],
                  "%s %s with the management token: %s %r" % (r["method"], r["path"], st, resp))
            denied += 1
        after = state(api)
        check(after == before, "denied requests changed nothing:\n%r\n%r" % (before, after))
        counts = {k: 0 for k in ("denied_unauthenticated", "denied_forbidden")}
        for s in c.servers.values():
            acl = s.status()["acl"]
            for k in counts:
                counts[k] += acl[k]
        check(sum(counts.values()) >= denied, "every denial counted: %r >= %d" % (counts, denied))
        print("   %d routes, %d denials checked, %r" % (len(routes), denied, counts))
    finally:
        c.close()


def test_bootstrap_once_and_tokens():
    c = Cluster(3, name="acl-tokens").start()
    try:
        api = leader_api(c)
        mgmt = c.token
        # Exactly once: the same secret is a retry, another is refused.
        st, body, _ = request(api, "POST", "/v1/acl/bootstrap", {"secret": mgmt}, token=None)
        check(st == 200, "retrying the bootstrap with its secret: %s %r" % (st, body))
        st, body, _ = request(api, "POST", "/v1/acl/bootstrap",
                              {"secret": "flt_" + "b" * 43}, token=None)
        check(st == 409, "a second bootstrap is refused: %s %r" % (st, body))
        st, body, _ = request(api, "POST", "/v1/acl/bootstrap", {}, token=None)
        check(st == 409, "even without a secret: %s" % st)
        for bad in ({"secret": "short"}, {"secret": "x" * 200}, {"secret": 5},
                    {"secret": "has a space" * 4}, {"nope": 1}):
            st, body, _ = request(api, "POST", "/v1/acl/bootstrap", bad, token=None)
            check(st == 400, "bad bootstrap body %r: %s" % (bad, st))
        # Bad token specs: 400 naming the problem, nothing created.
        for bad, word in (({"policies": []}, "policies"), ({"policies": ["root"]}, "policies[0]"),
                          ({"policies": ["read"], "namespaces": ["Bad NS"]}, "namespaces[0]"),
                          ({"policies": ["read"], "namespaces": ["a"] * 9}, "namespaces"),
                          ({"policies": ["read"], "name": "n" * 64}, "name"),
                          ({"policies": ["read"], "extra": 1}, "extra")):
            st, body, _ = request(api, "POST", "/v1/acl/tokens", bad)
            check(st == 400 and word in body["error"]["message"],
                  "bad token %r: %s %r" % (bad, st, body))
        st, body, _ = request(api, "GET", "/v1/acl/tokens")
        check(st == 200 and len(body["items"]) == 1, "only the bootstrap token: %r" % body)

        # A submit token limited to namespace team-a (and team-b-* by prefix).
        acc, sub = make_token(api, ["submit"], ["team-a", "team-b-*"], "team a")
        st, sess, _ = request(api, "POST", "/v1/sessions", {"ttl": "10s"}, token=sub)
        check(st == 200, "a namespaced token may create sessions: %s %r" % (st, sess))
        sid = sess["id"]
        for ns, want in (("team-a", 200), ("team-b-1", 200), ("team-c", 403), ("team-b", 403)):
            st, body, _ = request(api, "PUT", "/v1/locks/%s/db" % ns, {"session": sid}, token=sub)
            check(st == want, "lock in %s: %s %r" % (ns, st, body))
            st, body, _ = request(api, "PUT", "/v1/kv/%s/k" % ns, {"value": "v"}, token=sub)
            check(st == want, "kv in %s: %s %r" % (ns, st, body))
        st, body, _ = request(api, "POST", "/v1/tasks", {"name": "t", "hosts": ["h"],
                                                         "exec": "true"}, token=sub)
        check(st == 403 and "without namespaces" in body["error"]["message"],
              "tasks need an unrestricted token: %s %r" % (st, body))
        st, body, _ = request(api, "GET", "/v1/kv/team-b-1/none", token=sub)
        check(st == 404, "submit includes read: %s" % st)
        st, body, _ = request(api, "GET", "/v1/kv/team-c/k", token=sub)
        check(st == 403 and "team-c" in body["error"]["message"],
              "reads are limited to the namespaces too: %s %r" % (st, body))
        # Operate: drain yes, kv no.
        _, op = make_token(api, ["operate"])
        st, body, _ = request(api, "POST", "/v1/dispatch/pause", {}, token=op)
        check(st == 200, "operate pauses dispatch: %s %r" % (st, body))
        st, body, _ = request(api, "POST", "/v1/dispatch/resume", {}, token=op)
        st, body, _ = request(api, "PUT", "/v1/kv/x", {"value": "v"}, token=op)
        check(st == 403 and "submit" in body["error"]["message"], "operate cannot write kv")
        st, body, _ = request(api, "GET", "/v1/acl/tokens", token=op)
        check(st == 403, "operate cannot list tokens")

        # Listing never shows a secret; secrets never reach the logs.
        st, body, raw = request(api, "GET", "/v1/acl/tokens")
        check(st == 200 and len(body["items"]) == 3, "three tokens listed")
        for secret in (mgmt, sub, op):
            check(secret.encode() not in raw, "no secret in the listing")
            for s in c.servers.values():
                with open(s.log, "rb") as f:
                    check(secret.encode() not in f.read(), "no secret in %s" % s.log)
        st, body, _ = request(api, "GET", "/v1/acl/self", token=sub)
        check(st == 200 and body["accessor"] == acc and body["namespaces"] == ["team-a", "team-b-*"]
              and body["policies"] == ["submit"], "whoami: %r" % body)

        # Delete: the token stops working on every server at once.
        st, body, _ = request(api, "DELETE", "/v1/acl/tokens/" + acc)
        check(st == 200, "delete: %s %r" % (st, body))
        c.wait_converged()
        for s in c.servers.values():
            st, body, _ = request(s.api, "GET", "/v1/kv?stale", token=sub)
            check(st == 401, "deleted token refused by server %d: %s" % (s.id, st))
        st, body, _ = request(api, "DELETE", "/v1/acl/tokens/" + acc)
        check(st == 404, "deleting twice: %s" % st)
        mg_acc = [t["accessor"] for t in request(api, "GET", "/v1/acl/tokens")[1]["items"]
                  if t["policies"] == ["management"]][0]
        st, body, _ = request(api, "DELETE", "/v1/acl/tokens/" + mg_acc)
        check(st == 409, "the last management token cannot be deleted: %s %r" % (st, body))
    finally:
        c.close()


def test_cli_tokens():
    c = Cluster(3, name="acl-cli").start()
    try:
        env = dict(os.environ, FLOTILLA_ADDR=leader_api(c), FLOTILLA_TOKEN=c.token)
        r = subprocess.run([BIN, "acl", "token", "create", "--policy", "read", "--name", "viewer"],
                           capture_output=True, text=True, env=env)
        check(r.returncode == 0 and "secret:" in r.stdout, "token create: %r" % (r.stdout,))
        secret = r.stdout.split("secret:")[1].split()[0]
        ro = dict(env, FLOTILLA_TOKEN=secret)
        r = subprocess.run([BIN, "kv", "put", "k", "v"], capture_output=True, text=True, env=ro)
        check(r.returncode == 1 and "lacks the submit policy" in r.stderr and "403" in r.stderr,
              "read token cannot write: %r" % r.stderr)
        r = subprocess.run([BIN, "kv", "put", "k", "v"], capture_output=True, text=True, env=env)
        check(r.returncode == 0, "management token writes: %r" % r.stderr)
        tokfile = os.path.join(c.dir, "ro-token")
        with open(tokfile, "w") as f:
            f.write(secret + "\n")
        viaf = dict(env, FLOTILLA_TOKEN_FILE=tokfile)
        del viaf["FLOTILLA_TOKEN"]
        r = subprocess.run([BIN, "kv", "get", "k"], capture_output=True, text=True, env=viaf)
        check(r.returncode == 0, "FLOTILLA_TOKEN_FILE works: %r" % r.stderr)
        none = dict(env)
        del none["FLOTILLA_TOKEN"]
        r = subprocess.run([BIN, "kv", "get", "k"], capture_output=True, text=True, env=none)
        check(r.returncode == 1 and "401" in r.stderr, "no token: %r" % r.stderr)
        r = subprocess.run([BIN, "acl", "token", "list"], capture_output=True, text=True, env=env)
        check(r.returncode == 0 and "viewer" in r.stdout and secret not in r.stdout,
              "token list: %r" % r.stdout)
        r = subprocess.run([BIN, "acl", "bootstrap"], capture_output=True, text=True, env=none)
        check(r.returncode == 1 and "409" in r.stderr, "bootstrap again: %r" % r.stderr)
        r = subprocess.run([BIN, "acl", "token", "create"], capture_output=True, text=True, env=env)
        check(r.returncode == 2 and "--policy" in r.stderr, "create without --policy: %r" % r.stderr)
    finally:
        c.close()


if __name__ == "__main__":
    run([test_route_table_is_guarded, test_bootstrap_once_and_tokens, test_cli_tokens])
