/* Forwarding to the leader.
 *
 * A follower relays writes (and linearizable reads) to the leader's API and
 * copies the answer back, so clients may talk to any server. The leader's API
 * address comes from the replicated nodes table (each server records its own
 * addresses, see server.c). A forwarded request carries X-Flotilla-Forwarded;
 * a server that receives one but is not the leader answers 503 instead of
 * forwarding again, so a stale view can never make requests loop.
 *
 * The answer never guesses (docs/API.md "Request identity"): no_leader only
 * when no byte of the request reached a leader; once it may have been read,
 * a failure is outcome_unknown. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "http/client.h"
#include "node/node_int.h"
#include "pki/pki.h"
#include "store/iter.h"

int node__leader_api(struct node_server *s, char *out, size_t outlen)
{
    struct rg_status st;
    struct store_txn *t;
    struct store_iter it;
    int found = 0;

    rg_repl_status(s->repl, &st);
    if (st.leader_id == 0 || store_begin(s->store, 0, &t) != FL_OK) {
        return 0;
    }
    if (store_iter_open(t, STORE_NODES, NULL, 0, &it) == FL_OK) {
        struct store_node n;
        while (!found && store_node_next(&it, &n) == FL_OK) {
            if (n.kind == STORE_NODE_SERVER && n.raft_id == st.leader_id && n.api_addr[0] != '\0') {
                snprintf(out, outlen, "%s", n.api_addr);
                found = 1;
            }
        }
        store_iter_close(&it);
    }
    store_abort(t);
    return found;
}

int node__leader_url(struct node_server *s, char *out, size_t outlen)
{
    char addr[STORE_NODE_ADDR_MAX];
    if (!node__leader_api(s, addr, sizeof addr)) {
        return 0;
    }
    return (size_t)snprintf(out, outlen, "https://%.*s", (int)sizeof addr - 1, addr) < outlen;
}

struct fwd {
    struct node_server *s;
    struct http_request *req;
};

/* Whether repeating the request can change nothing (reads). */
static int safe_method(const struct http_request *req)
{
    return req->method == HTTP_GET || req->method == HTTP_HEAD || req->method == HTTP_OPTIONS;
}

static void forward_cb(void *data, int err, int status, const char *content_type,
                       const uint8_t *body, size_t len)
{
    struct fwd *f = data;
    if (err != FL_OK) {
        f->s->n_forward_errors++;
        if (status == HTTP_CLIENT_MAYBE_SENT && !safe_method(f->req)) {
            /* The leader may have read and applied it before the failure: a
             * definite error here would tell the client a write that took
             * effect had not (the chaos harness's linearizability checker
             * caught exactly that with the leader killed mid-request). */
            node__respond_err(f->req, FL_EUNKNOWN,
                              "the leader did not answer (%s): the request may have been "
                              "applied; check before retrying",
                              fl_strerror(err));
        } else {
            node__respond_err(f->req, FL_ENOLEADER, "forwarding to the leader failed: %s; retry",
                              fl_strerror(err));
        }
    } else {
        http_respond(f->req, status, content_type, body, len);
    }
    fl_free(f);
}

static void forward_to(struct node_server *s, struct http_request *req, const char *leader);

/* A request that found no leader known waits for one, briefly: a follower
 * whose election timer fired (a pause, a restart) learns the leader from its
 * next heartbeat, and answering 503 meanwhile would send every caller back
 * to retry for nothing. */
#define FORWARD_WAIT_MS 2000
#define FORWARD_POLL_MS 25

struct fwd_wait {
    uv_timer_t timer;
    struct node_server *s;
    struct http_request *req;
    uint64_t until;
};

static void wait_closed(uv_handle_t *h)
{
    fl_free(h->data);
}

static void wait_tick(uv_timer_t *t)
{
    struct fwd_wait *w = t->data;
    char leader[STORE_NODE_ADDR_MAX + 16];
    int known = !w->s->stopping && node__leader_url(w->s, leader, sizeof leader);
    if (!known && !w->s->stopping && uv_now(w->s->loop) < w->until) {
        return; /* the timer repeats */
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, wait_closed);
    if (known) {
        forward_to(w->s, w->req, leader);
    } else {
        node__respond_err(w->req, FL_ENOLEADER, "no leader is known yet; retry");
    }
}

void node__forward(struct node_server *s, struct http_request *req)
{
    char leader[STORE_NODE_ADDR_MAX + 16];
    struct fwd_wait *w;
    if (node__leader_url(s, leader, sizeof leader)) {
        forward_to(s, req, leader);
        return;
    }
    w = s->stopping ? NULL : fl_calloc(1, sizeof *w);
    if (w == NULL) {
        node__respond_err(req, FL_ENOLEADER, "no leader is known yet; retry");
        return;
    }
    w->s = s;
    w->req = req;
    w->until = uv_now(s->loop) + FORWARD_WAIT_MS;
    uv_timer_init(s->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, wait_tick, FORWARD_POLL_MS, FORWARD_POLL_MS);
}

static void forward_to(struct node_server *s, struct http_request *req, const char *leader)
{
    /* The caller's credentials go along: the leader decides (api_acl.c). */
    static const char *const pass[] = {"X-Flotilla-Token", "Authorization", NODE_REQUEST_HEADER};
    char headers[1024];
    unsigned flags = 0;
    struct fwd *f;
    const char *ct = http_request_header(req, "Content-Type");
    size_t used;
    int rv;

    snprintf(headers, sizeof headers, "X-Flotilla-Forwarded: %llu\r\n%s%.100s%s",
             (unsigned long long)s->cfg.id, ct ? "Content-Type: " : "", ct ? ct : "",
             ct ? "\r\n" : "");
    /* Our caller proved a server certificate to us (a server joining
     * through a follower): say so; the leader believes it only from a server
     * (docs/ACL.md). A caller's own copy of the header is never passed on. */
    if (req->peer_role == PKI_ROLE_SERVER &&
        http_request_header(req, "X-Flotilla-Forwarded") == NULL) {
        used = strlen(headers);
        snprintf(headers + used, sizeof headers - used, "X-Flotilla-Caller-Server: %s\r\n",
                 req->peer_name);
    }
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++) {
        const char *v = http_request_header(req, pass[i]);
        used = strlen(headers);
        if (v != NULL && strlen(v) <= 200 && strpbrk(v, "\r\n") == NULL) {
            snprintf(headers + used, sizeof headers - used, "%s: %s\r\n", pass[i], v);
        }
    }
    f = fl_malloc(sizeof *f);
    if (f == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    f->s = s;
    f->req = req;
    s->n_forwarded++;
    /* A write is sent to the leader at most once, unless it carries a request
     * identity: the leader's state machine makes a second copy a no-op. */
    if (http_request_header(req, NODE_REQUEST_HEADER) != NULL) {
        flags |= HTTP_CLIENT_REPEATABLE;
    }
    /* The raw request target goes through unchanged. */
    rv = http_client_request_flags(s->loop, leader, http_method_str((enum http_method)req->method),
                                   req->target, headers, req->body, req->body_len, 10000, flags,
                                   forward_cb, f);
    if (rv != FL_OK) {
        fl_free(f);
        node__respond_err(req, FL_ENOLEADER, "forwarding to the leader failed: %s; retry",
                          fl_strerror(rv));
    }
}
