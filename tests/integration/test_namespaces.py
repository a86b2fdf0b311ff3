"""Namespaces isolate (docs/ACL.md, "Namespaces"), on three real servers.

A token limited to namespace team-a reads, lists, writes and deletes only
team-a's kv keys and locks and its own sessions; it reads no tasks, jobs or
results at all. Every refusal is 403 forbidden, counted in
acl.denied_forbidden, and changes nothing: the store digest is the same after
all of them, and team-b's lock is still held by team-b's session. Tokens
without namespaces, and the management token, still see and manage
everything; a session's owner renews and destroys it."""
import time

from flotilla_cluster import Cluster, check, request, run


def make_token(api, policies, namespaces=None, name="t"):
    st, body, _ = request(api, "POST", "/v1/acl/tokens",
                          {"policies": policies, "namespaces": namespaces or [], "name": name})
    check(st == 200, "create token %r %r: %s %r" % (policies, namespaces, st, body))
    return body["accessor"], body["secret"]


def ok(api, method, path, body=None, token=None, want=200):
    st, resp, raw = request(api, method, path, body, token=token)
    check(st == want, "%s %s: %s %r" % (method, path, st, raw[:300]))
    return resp


def denied_total(c):
    return sum(s.status()["acl"]["denied_forbidden"] for s in c.servers.values())


def settled(c, quiet=2.0, timeout=30):
    """(index, digest) once the servers agree and nothing has been applied
    for `quiet` seconds: the servers' own start-up entries (their
    registrations) are in, so a later change is one the test made."""
    end = time.time() + timeout
    last = c.wait_converged()
    since = time.time()
    while time.time() < end:
        time.sleep(0.2)
        now = c.wait_converged()
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return now
    raise AssertionError("the cluster did not settle: %r" % (last,))


def session(api, token, name):
    return ok(api, "POST", "/v1/sessions", {"ttl": "10m", "lock_delay": "0s", "name": name},
              token=token)["id"]


def test_namespaces_isolate():
    c = Cluster(3, name="ns-isolate").start()
    try:
        api = c.servers[c.leader()].api
        follower = next(s.api for s in c.servers.values() if s.api != api)
        mgmt = c.token
        acc_a, ta = make_token(api, ["submit"], ["team-a"], "team a")
        acc_a2, ta2 = make_token(api, ["submit"], ["team-a"], "team a, another")
        acc_b, tb = make_token(api, ["submit"], ["team-b"], "team b")
        _, ops = make_token(api, ["submit"], [], "operators")

        # A management token is never limited to namespaces.
        st, body, _ = request(api, "POST", "/v1/acl/tokens",
                              {"policies": ["management"], "namespaces": ["team-a"]})
        check(st == 400 and "namespaces" in body["error"]["message"],
              "management with namespaces: %s %r" % (st, body))

        # team-b's state: a key, a session holding a lock, a second session.
        ok(api, "PUT", "/v1/kv/team-b/secret", {"value": "b-only"}, token=tb)
        sb = session(api, tb, "team b holder")
        sb2 = session(api, tb, "team b spare")
        got = ok(api, "PUT", "/v1/locks/team-b/db", {"session": sb}, token=tb)
        check(got["granted"], "team b holds its lock: %r" % got)
        # team-a's: a key, a session holding a lock.
        ok(api, "PUT", "/v1/kv/team-a/mine", {"value": "a"}, token=ta)
        sa = session(api, ta, "team a holder")
        ok(api, "PUT", "/v1/locks/team-a/db", {"session": sa}, token=ta)
        # The fleet's work, made by the management token: a cancelled task and
        # a paused job.
        # (Dispatch paused meanwhile, so the cancel finds the task waiting.)
        ok(api, "POST", "/v1/dispatch/pause", {}, token=mgmt)
        tid = ok(api, "POST", "/v1/tasks", {"name": "t1", "hosts": ["h1"], "noop": True},
                 token=mgmt)["id"]
        ok(api, "POST", "/v1/tasks/%s/cancel" % tid, {}, token=mgmt)
        ok(api, "POST", "/v1/dispatch/resume", {}, token=mgmt)
        ok(api, "POST", "/v1/jobs", {"name": "nightly", "cron": "0 3 1 1 *", "hosts": ["h1"],
                                     "noop": True}, token=mgmt)
        ok(api, "POST", "/v1/jobs/nightly/pause", {}, token=mgmt)

        # A session records its owner.
        got = ok(api, "GET", "/v1/sessions/" + sb, token=mgmt)
        check(got["owner"] == acc_b, "the session's owner is team b's token: %r" % got)

        before = settled(c)
        terms_before = {s.status()["term"] for s in c.servers.values()}
        denied0 = denied_total(c)
        refused = 0

        def refuse(method, path, body=None, token=ta, word=None, target=api, headers=None):
            nonlocal refused
            st, resp, raw = request(target, method, path, body, token=token, headers=headers)
            check(st == 403 and resp["error"]["code"] == "forbidden",
                  "%s %s must be refused: %s %r" % (method, path, st, raw[:300]))
            if word is not None:
                check(word in resp["error"]["message"],
                      "%s %s names %r: %r" % (method, path, word, resp["error"]["message"]))
            refused += 1

        # kv: no read, list, write or delete of team-b's keys.
        refuse("GET", "/v1/kv/team-b/secret", word="team-b")
        refuse("GET", "/v1/kv/team-b/secret?stale", target=follower, word="team-b")
        refuse("GET", "/v1/kv/team-b/secret", target=follower, word="team-b")
        refuse("GET", "/v1/kv?prefix=team-b/", word="team-b")
        refuse("GET", "/v1/kv?prefix=team-b/se&stale", target=follower, word="team-b")
        refuse("PUT", "/v1/kv/team-b/secret", {"value": "stolen"}, word="team-b")
        refuse("PUT", "/v1/kv/team-b/new", {"value": "x"}, target=follower, word="team-b")
        refuse("DELETE", "/v1/kv/team-b/secret", word="team-b")
        # sessions: team-b's are not team-a's to read, renew or destroy (nor
        # another team-a token's).
        for path in ("/v1/sessions/" + sb, "/v1/sessions/%s?stale" % sb2):
            refuse("GET", path, word="belongs to another token")
        refuse("PUT", "/v1/sessions/%s/renew" % sb, word="belongs to another token")
        refuse("DELETE", "/v1/sessions/" + sb, word="belongs to another token")
        refuse("DELETE", "/v1/sessions/" + sb, target=follower, word="belongs to another token")
        refuse("DELETE", "/v1/sessions/" + sa, token=ta2, word="belongs to another token")
        # ... nor to send requests under.
        refuse("PUT", "/v1/kv/team-a/k", {"value": "v"},
               headers={"X-Flotilla-Request": "%s/99" % sb}, word="belongs to another token")
        # locks: no read, list, acquire or release in team-b, and no use of
        # team-b's session for team-a's locks.
        refuse("GET", "/v1/locks/team-b/db", word="team-b")
        refuse("GET", "/v1/locks?namespace=team-b", word="team-b")
        refuse("PUT", "/v1/locks/team-b/db", {"session": sa}, word="team-b")
        refuse("DELETE", "/v1/locks/team-b/db?session=" + sb, word="team-b")
        refuse("PUT", "/v1/locks/team-a/other", {"session": sb}, word="belongs to another token")
        refuse("DELETE", "/v1/locks/team-a/db?session=" + sb, word="belongs to another token")
        # tasks, jobs, results, deploys: belong to no namespace.
        for method, path in (("GET", "/v1/tasks"), ("GET", "/v1/tasks/" + tid),
                             ("GET", "/v1/tasks/%s/units" % tid),
                             ("GET", "/v1/tasks/%s/results" % tid),
                             ("GET", "/v1/tasks/%s/why" % tid),
                             ("GET", "/v1/results?hosts=h1"), ("GET", "/v1/hosts/h1/results"),
                             ("GET", "/v1/jobs"), ("GET", "/v1/jobs/nightly"),
                             ("GET", "/v1/jobs/nightly/runs"), ("GET", "/v1/deploys"),
                             ("POST", "/v1/tasks/%s/cancel" % tid),
                             ("POST", "/v1/jobs/nightly/resume"), ("POST", "/v1/jobs/nightly/run"),
                             ("DELETE", "/v1/jobs/nightly")):
            refuse(method, path, {} if method == "POST" else None,
                   word="tasks, jobs, results and deploys belong to no namespace")
        refuse("GET", "/v1/tasks?stale", target=follower, word="without namespaces")
        refuse("POST", "/v1/tasks", {"name": "t", "hosts": ["h1"], "noop": True},
               word="without namespaces")

        # Lists are filtered to what the token may see.
        keys = [i["key"] for i in ok(api, "GET", "/v1/kv", token=ta)["items"]]
        check(keys == ["team-a/mine"], "team a lists only its keys: %r" % keys)
        keys = [i["key"] for i in ok(follower, "GET", "/v1/kv?prefix=team&stale",
                                     token=ta)["items"]]
        check(keys == ["team-a/mine"], "a prefix without a namespace is filtered: %r" % keys)
        ids = [i["id"] for i in ok(api, "GET", "/v1/sessions", token=ta)["items"]]
        check(ids == [sa], "team a lists only its own session: %r" % ids)
        ids = [i["id"] for i in ok(api, "GET", "/v1/sessions", token=ta2)["items"]]
        check(ids == [], "another team-a token owns no session: %r" % ids)
        locks = [i["key"] for i in ok(api, "GET", "/v1/locks", token=ta)["items"]]
        check(locks == ["team-a/db"], "team a lists only its locks: %r" % locks)
        got = ok(api, "GET", "/v1/sessions/" + sa, token=ta)
        check(got["owner"] == acc_a and got["locks"] == [{"key": "team-a/db", "state": "held"}],
              "team a reads its own session: %r" % got)
        ok(api, "GET", "/v1/kv/team-a/nothing", token=ta, want=404)

        # Nothing changed: the same digest everywhere, team b's lock still
        # held by its session, every refusal counted.
        after = c.wait_converged()
        terms_after = {s.status()["term"] for s in c.servers.values()}
        check(after == before, "refused requests changed nothing: %r then %r (terms %r, %r)" % (
            before, after, terms_before, terms_after))
        held = ok(api, "GET", "/v1/locks/team-b/db", token=tb)
        check([h["session"] for h in held["holders"]] == [sb], "team b still holds: %r" % held)
        check(ok(api, "GET", "/v1/kv/team-b/secret", token=tb)["value"] == "b-only",
              "team b's key is intact")
        denied = denied_total(c) - denied0
        check(denied == refused, "every refusal counted: %d counted, %d refused" % (
            denied, refused))

        # Tokens without namespaces, and management, see and manage everything.
        for tok in (ops, mgmt):
            keys = {i["key"] for i in ok(api, "GET", "/v1/kv", token=tok)["items"]}
            check({"team-a/mine", "team-b/secret"} <= keys, "all keys: %r" % keys)
            ids = {i["id"] for i in ok(api, "GET", "/v1/sessions", token=tok)["items"]}
            check({sa, sb, sb2} <= ids, "all sessions: %r" % ids)
            locks = {i["key"] for i in ok(api, "GET", "/v1/locks", token=tok)["items"]}
            check(locks == {"team-a/db", "team-b/db"}, "all locks: %r" % locks)
            ok(api, "GET", "/v1/sessions/" + sb, token=tok)
            ok(api, "GET", "/v1/tasks/" + tid, token=tok)
            ok(api, "GET", "/v1/jobs/nightly", token=tok)
        ok(api, "PUT", "/v1/sessions/%s/renew" % sb, token=ops)
        # The owner renews and destroys its sessions.
        ok(api, "PUT", "/v1/sessions/%s/renew" % sb, token=tb)
        ok(api, "DELETE", "/v1/sessions/" + sb2, token=tb)
        ok(api, "GET", "/v1/sessions/" + sb2, token=tb, want=404)
        ok(api, "DELETE", "/v1/sessions/" + sb, token=tb)
        st, _, _ = request(api, "GET", "/v1/locks/team-b/db", token=tb)
        check(st == 404, "destroying the holder frees team b's lock: %s" % st)
        # An operator without namespaces destroys team a's session; the
        # management token deletes the job.
        ok(api, "DELETE", "/v1/sessions/" + sa, token=ops)
        ok(api, "DELETE", "/v1/jobs/nightly", token=mgmt)
        print("   %d refusals, all 403 and counted; digest %s unchanged" % (refused, before[1][:16]))
    finally:
        c.close()


if __name__ == "__main__":
    run([test_namespaces_isolate])
