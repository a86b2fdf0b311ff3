/* The command line's API calls, and the request identity of its writes
 * (docs/API.md "Request identity").
 *
 * A `flotilla` process that writes makes a session of its own at its first
 * write (TTL 60 s, no lock-delay) and numbers its writes in it, so a write
 * whose answer was lost (a timeout, a dropped connection, outcome_unknown) is
 * sent again with the same identity until the answer is definite: the
 * cluster answers a copy of an applied request from memory and never applies
 * it twice. The session is destroyed when the process exits, so a copy still
 * travelling through a stalled server can never apply afterwards. A token
 * that may not create sessions (read, operate or admin alone) writes without
 * an identity: such a write is sent once and an unknown outcome is reported
 * as unknown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli.h"
#include "common/err.h"
#include "http/blocking.h"

#define CALL_BUDGET_MS   15000 /* retries of one call while the cluster has no leader */
#define CALL_TIMEOUT_MS  30000
#define IDENT_TTL        "60s"
#define IDENT_RENEW_MS   20000 /* renew before a write once the session is this old */
#define IDENT_DESTROY_MS 3000

static struct {
    int state; /* 0 not tried yet, 1 ready, -1 none (refused or unavailable) */
    char id[64];
    uint64_t serial;
    uint64_t renewed_ms;
    char addr[256];
    char headers[512];
} ident;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *error_code(json_t *body)
{
    const char *code = NULL;
    if (body != NULL) {
        json_unpack(body, "{s:{s:s}}", "error", "code", &code);
    }
    return code;
}

/* A refusal before anything was proposed: worth another try. */
static int no_leader_yet(int status, json_t *body)
{
    const char *code = error_code(body);
    return status == 503 && code != NULL &&
           (strcmp(code, "no_leader") == 0 || strcmp(code, "not_leader") == 0 ||
            strcmp(code, "busy") == 0);
}

static int unknown_outcome(int status, json_t *body)
{
    const char *code = error_code(body);
    return status == 503 && code != NULL && strcmp(code, "outcome_unknown") == 0;
}

void cli_ident_header(const char *session, uint64_t serial, char *out, size_t size)
{
    snprintf(out, size, "X-Flotilla-Request: %s/%llu\r\n", session, (unsigned long long)serial);
}

/* One exchange; FL_OK with *status and *out, else the transport error. */
static int exchange(const char *addr, const char *method, const char *path, const char *headers,
                    const char *text, int *status, json_t **out, char *err)
{
    struct httpc_response r;
    int rv = httpc_request(addr, method, path, headers[0] ? headers : NULL, text,
                           text ? strlen(text) : 0, CALL_TIMEOUT_MS, &r, err);
    *out = NULL;
    if (rv != FL_OK) {
        return rv;
    }
    *status = r.status;
    *out = r.body_len ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
    httpc_response_free(&r);
    return FL_OK;
}

static void ident_destroy(void)
{
    char path[128], headers[640], err[FL_ERRMSG_SIZE];
    struct httpc_response r;
    if (ident.state != 1) {
        return;
    }
    ident.state = -1;
    snprintf(path, sizeof path, "/v1/sessions/%s", ident.id);
    snprintf(headers, sizeof headers, "%s", ident.headers);
    cli_ident_header(ident.id, ++ident.serial, headers + strlen(headers),
                     sizeof headers - strlen(headers));
    if (httpc_request(ident.addr, "DELETE", path, headers, NULL, 0, IDENT_DESTROY_MS, &r, err) ==
        FL_OK) {
        httpc_response_free(&r);
    }
}

/* Make this process's session. Creating one twice is harmless (the spare
 * one expires), so creation is retried after any failure. */
static void ident_create(struct cli_cmd *c, const char *addr, const char *headers)
{
    char body[256], err[FL_ERRMSG_SIZE], hdr[600];
    uint64_t end = now_ms() + CALL_BUDGET_MS;
    snprintf(body, sizeof body,
             "{\"ttl\":\"%s\",\"lock_delay\":\"0s\",\"name\":\"flotilla %.100s\"}", IDENT_TTL,
             c->path);
    snprintf(hdr, sizeof hdr, "%s%s",
             strstr(headers, "Content-Type") ? "" : "Content-Type: application/json\r\n", headers);
    ident.state = -1;
    do {
        int status = 0;
        json_t *out = NULL;
        const char *id;
        if (exchange(addr, "POST", "/v1/sessions", hdr, body, &status, &out, err) == FL_OK) {
            id = json_string_value(json_object_get(out, "id"));
            if (status == 200 && id != NULL && strlen(id) < sizeof ident.id) {
                snprintf(ident.id, sizeof ident.id, "%s", id);
                ident.state = 1;
                ident.serial = 0;
                ident.renewed_ms = now_ms();
                snprintf(ident.addr, sizeof ident.addr, "%s", addr);
                snprintf(ident.headers, sizeof ident.headers, "%s", headers);
                atexit(ident_destroy);
                json_decref(out);
                return;
            }
            if (!no_leader_yet(status, out) && !unknown_outcome(status, out)) {
                json_decref(out); /* refused (a token without submit): no identity */
                return;
            }
            json_decref(out);
        }
        pause_ms(200);
    } while (now_ms() < end);
}

/* The identity header of this process's next write, or "" without one. */
static void ident_next(struct cli_cmd *c, const char *addr, const char *headers, char *out,
                       size_t size)
{
    out[0] = '\0';
    if (ident.state == 0) {
        ident_create(c, addr, headers);
    } else if (ident.state == 1 && now_ms() - ident.renewed_ms >= IDENT_RENEW_MS) {
        char path[128], hdr[640], err[FL_ERRMSG_SIZE];
        int status = 0;
        json_t *body = NULL;
        snprintf(path, sizeof path, "/v1/sessions/%s/renew", ident.id);
        snprintf(hdr, sizeof hdr, "%s", headers);
        cli_ident_header(ident.id, ++ident.serial, hdr + strlen(hdr), sizeof hdr - strlen(hdr));
        if (exchange(addr, "PUT", path, hdr, NULL, &status, &body, err) == FL_OK) {
            if (status == 200) {
                ident.renewed_ms = now_ms();
            } else if (status == 404) {
                ident.state = 0; /* expired: make another */
                ident_create(c, addr, headers);
            }
        }
        json_decref(body);
    }
    if (ident.state == 1) {
        cli_ident_header(ident.id, ++ident.serial, out, size);
    }
}

static json_t *unknown_body(const char *why)
{
    return json_pack("{s:{s:s, s:s}}", "error", "code", "outcome_unknown", "message", why);
}

static int call(struct cli_cmd *c, const char *method, const char *path, json_t *body, json_t **out,
                int may_ident);

int cli_call(struct cli_cmd *c, const char *method, const char *path, json_t *body, json_t **out)
{
    return call(c, method, path, body, out, 1);
}

int cli_call_plain(struct cli_cmd *c, const char *method, const char *path, json_t *body,
                   json_t **out)
{
    return call(c, method, path, body, out, 0);
}

static int call(struct cli_cmd *c, const char *method, const char *path, json_t *body, json_t **out,
                int may_ident)
{
    const char *addr = cli_addr(c);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char err[FL_ERRMSG_SIZE], headers[512], id[128], all[640];
    int write = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    int status = 0, unknown = 0;
    uint64_t end;

    cli_headers(c->path, text != NULL, headers, sizeof headers);
    id[0] = '\0';
    if (write && may_ident) {
        char plain[512];
        cli_headers(c->path, 0, plain, sizeof plain);
        ident_next(c, addr, plain, id, sizeof id);
    }
    snprintf(all, sizeof all, "%s%s", headers, id);
    *out = NULL;
    end = now_ms() + CALL_BUDGET_MS;
    for (;;) {
        int rv = exchange(addr, method, path, all, text, &status, out, err);
        int again;
        if (rv != FL_OK) {
            if (!write || id[0] == '\0') {
                fprintf(stderr, "flotilla %s: %s%s\n", c->path, err,
                        write && strncmp(err, "connect", 7) != 0
                            ? " (the request may or may not have been applied)"
                            : "");
                free(text);
                exit(1);
            }
            unknown = 1; /* the same request again: the identity makes it safe */
            again = 1;
        } else if (unknown && (status == 404 || status == 409) &&
                   (strcmp(error_code(*out) ? error_code(*out) : "", "session_not_found") == 0 ||
                    strcmp(error_code(*out) ? error_code(*out) : "", "stale_request") == 0)) {
            /* This copy was refused, but an earlier one may have been applied. */
            json_decref(*out);
            *out = unknown_body("an earlier attempt may have been applied and the cluster no "
                                "longer remembers it; check before retrying");
            status = 503;
            break;
        } else {
            again = no_leader_yet(status, *out) || (id[0] != '\0' && unknown_outcome(status, *out));
            unknown |= unknown_outcome(status, *out);
        }
        if (!again) {
            break;
        }
        if (now_ms() >= end) {
            if (rv != FL_OK) {
                *out = unknown_body(err);
                status = 503;
            }
            break;
        }
        json_decref(*out);
        *out = NULL;
        pause_ms(200);
    }
    if (unknown && no_leader_yet(status, *out)) {
        json_decref(*out);
        *out = unknown_body("an earlier attempt may have been applied, and no leader answered "
                            "since; check before retrying");
        status = 503;
    }
    free(text);
    return status;
}
