/* flotilla lock acquire|release|list|show|run, flotilla session create|renew|destroy|list
 * (docs/LOCKS.md). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/table.h"
#include "common/clock.h"
#include "common/err.h"
#include "http/blocking.h"

/* Monotonic milliseconds: leases and waits are measured on it, so a jump
 * of the wall clock neither ends a wait early nor keeps a lost lock. */
static uint64_t mono_ms(void)
{
    return fl_mono_ns() / 1000000;
}

static char *lock_path(const char *key, const char *query)
{
    char *esc = cli_escape(key, 1);
    size_t n = strlen(esc) + strlen(query) + 16;
    char *p = malloc(n);
    if (p == NULL) {
        exit(1);
    }
    snprintf(p, n, "/v1/locks/%s%s", esc, query);
    free(esc);
    return p;
}

static void check_key(struct cli_cmd *c, const char *key)
{
    const char *slash = strchr(key, '/');
    if (slash == NULL || slash == key || slash[1] == '\0') {
        cli_die_usage(c, "a lock is named NAMESPACE/NAME, e.g. deploy/web");
    }
}

static json_t *session_body(struct cli_cmd *c)
{
    json_t *b = json_object();
    const char *name = cli_val(c, "name");
    char host[128] = "";
    char dflt[200];
    long long ms;
    /* The server checks these too; a bad flag is a usage error here. */
    if (cli_val(c, "ttl") != NULL) {
        ms = fl_duration_ms(cli_val(c, "ttl"));
        if (ms < 1000 || ms > 24LL * 3600 * 1000) {
            cli_die_usage(c, "--ttl must be a duration between 1s and 24h");
        }
        json_object_set_new(b, "ttl", json_string(cli_val(c, "ttl")));
    }
    if (cli_val(c, "lock-delay") != NULL) {
        ms = fl_duration_ms(cli_val(c, "lock-delay"));
        if (ms < 0 || ms > 60000) {
            cli_die_usage(c, "--lock-delay must be a duration between 0s and 60s");
        }
        json_object_set_new(b, "lock_delay", json_string(cli_val(c, "lock-delay")));
    }
    if (name == NULL) {
        gethostname(host, sizeof host - 1);
        snprintf(dflt, sizeof dflt, "%s pid %d", host, (int)getpid());
        name = dflt;
    }
    json_object_set_new(b, "name", json_string(name));
    return b;
}

/* ---- session ------------------------------------------------------------------ */

static int session_create(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        JSON_OPT,
        {"ttl", 1, "lease: expires unless renewed within", "15s", 0},
        {"lock-delay", 1, "after expiry, its locks stay ungranted for", "15s", 0},
        {"name", 1, "who holds it (free text)", NULL, 0},
        {NULL}};
    struct cli_cmd c = {
        "session create", "", "Create a session; locks are held by sessions.", opts, 0, 0};
    char *pos[1];
    int npos, status;
    json_t *body, *out;
    cli_parse(&c, argc, argv, pos, &npos);
    body = session_body(&c);
    status = cli_call(&c, "POST", "/v1/sessions", body, &out);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("%s\n", json_string_value(json_object_get(out, "id")));
    }
    json_decref(out);
    return 0;
}

static int session_simple(int argc, char **argv, const char *path, const char *method,
                          const char *suffix, const char *summary)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {path, "ID", summary, opts, 1, 1};
    char *pos[1], url[160];
    int npos, status;
    json_t *out;
    cli_parse(&c, argc, argv, pos, &npos);
    if (strlen(pos[0]) > 64) {
        cli_die_usage(&c, "session ids are at most 39 characters");
    }
    snprintf(url, sizeof url, "/v1/sessions/%s%s", pos[0], suffix);
    status = cli_call(&c, method, url, NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json") || strcmp(method, "GET") == 0) {
        cli_print_json(out);
    } else {
        printf("ok\n");
    }
    json_decref(out);
    return 0;
}

static int session_list(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {"session list", "", "List sessions.", opts, 0, 0};
    char *pos[1];
    int npos, status;
    json_t *out, *s;
    size_t i;
    cli_parse(&c, argc, argv, pos, &npos);
    status = cli_call(&c, "GET", "/v1/sessions", NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        static const struct cli_table_col cols[] = {
            {"ID", 0, 0}, {"TTL", 1, 0}, {"LOCKS", 1, 0}, {"NAME", 0, 0}};
        struct cli_table *tab = cli_table_new(cols, 4);
        json_array_foreach(json_object_get(out, "items"), i, s)
        {
            cli_table_row(tab);
            cli_table_cell(tab, "%s", json_string_value(json_object_get(s, "id")));
            cli_table_cell(tab, "%.1f",
                           (double)json_integer_value(json_object_get(s, "ttl_ms")) / 1000);
            cli_table_cell(tab, "%zu", json_array_size(json_object_get(s, "locks")));
            cli_table_cell(tab, "%s", json_string_value(json_object_get(s, "name")));
        }
        cli_table_print(tab, stdout, 0);
    }
    json_decref(out);
    return 0;
}

int cmd_session(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    if (strcmp(sub, "create") == 0) {
        return session_create(argc - 1, argv + 1);
    }
    if (strcmp(sub, "renew") == 0) {
        return session_simple(argc - 1, argv + 1, "session renew", "PUT", "/renew",
                              "Renew a session's lease.");
    }
    if (strcmp(sub, "destroy") == 0) {
        return session_simple(argc - 1, argv + 1, "session destroy", "DELETE", "",
                              "Destroy a session, releasing its locks at once.");
    }
    if (strcmp(sub, "show") == 0) {
        return session_simple(argc - 1, argv + 1, "session show", "GET", "",
                              "Show a session and its locks.");
    }
    if (strcmp(sub, "list") == 0) {
        return session_list(argc - 1, argv + 1);
    }
    fprintf(argc >= 1 && strcmp(sub, "--help") != 0 ? stderr : stdout,
            "usage: flotilla session create|renew|destroy|show|list ... (each has --help)\n");
    return argc >= 1 && strcmp(sub, "--help") == 0 ? 0 : 2;
}

/* ---- lock acquire / release / list / show ------------------------------------- */

static long long duration_opt(struct cli_cmd *c, const char *name)
{
    const char *v = cli_val(c, name);
    long long ms;
    if (v == NULL) {
        return 0;
    }
    ms = fl_duration_ms(v);
    if (ms < 0) {
        cli_die_usage(c, "--%s must be a duration such as 500ms, 15s, 2m", name);
    }
    return ms;
}

static int limit_opt(struct cli_cmd *c)
{
    const char *v = cli_val(c, "limit");
    char *end;
    long n;
    if (v == NULL) {
        return 1;
    }
    n = strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 1024) {
        cli_die_usage(c, "--limit must be 1-1024");
    }
    return (int)n;
}

static int lock_acquire(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        JSON_OPT,
        {"session", 1, "hold it for this session (default: a new one)", NULL, 0},
        {"ttl", 1, "TTL of the new session", "15s", 0},
        {"lock-delay", 1, "lock-delay of the new session", "15s", 0},
        {"name", 1, "name of the new session", NULL, 0},
        {"wait", 1, "wait this long for the lock (default: try once)", NULL, 0},
        {"limit", 1, "holders allowed at once (a semaphore)", "1", 0},
        {NULL}};
    struct cli_cmd c = {"lock acquire",
                        "NAMESPACE/NAME",
                        "Acquire a lock for a session and print the session and the fencing "
                        "token. The hold lasts while the session is renewed (flotilla session "
                        "renew) or until released.",
                        opts,
                        1,
                        1};
    char *pos[1], session[64], renew[160], *esc;
    int npos, status, limit;
    long long wait, left;
    json_t *body, *out = NULL;
    char *path;
    uint64_t start = mono_ms();

    cli_parse(&c, argc, argv, pos, &npos);
    check_key(&c, pos[0]);
    wait = duration_opt(&c, "wait");
    limit = limit_opt(&c);
    if (cli_val(&c, "session") != NULL) {
        snprintf(session, sizeof session, "%s", cli_val(&c, "session"));
    } else {
        body = session_body(&c);
        status = cli_call(&c, "POST", "/v1/sessions", body, &out);
        json_decref(body);
        if (status != 200) {
            return cli_print_error(c.path, status, out);
        }
        snprintf(session, sizeof session, "%s", json_string_value(json_object_get(out, "id")));
        json_decref(out);
    }
    path = lock_path(pos[0], "");
    esc = cli_escape(session, 0);
    snprintf(renew, sizeof renew, "/v1/sessions/%s/renew", esc);
    free(esc);
    for (;;) {
        left = wait - (long long)(mono_ms() - start);
        body = json_pack("{s:s, s:i, s:I}", "session", session, "limit", limit, "wait",
                         (json_int_t)(left > 0 ? left : 0));
        status = cli_call(&c, "PUT", path, body, &out);
        json_decref(body);
        if (status != 202) {
            break;
        }
        /* Still queued. One call waits at most half the session's TTL:
         * renew it between calls, or a wait longer than the TTL would
         * outlive the session. */
        json_decref(out);
        status = cli_call(&c, "PUT", renew, NULL, &out);
        if (status != 200) {
            break;
        }
        json_decref(out);
        out = NULL;
    }
    free(path);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("session %s token %" JSON_INTEGER_FORMAT "\n", session,
               json_integer_value(json_object_get(out, "token")));
    }
    json_decref(out);
    return 0;
}

static int lock_release(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT,
                             JSON_OPT,
                             {"session", 1, "the session holding it (required)", NULL, 0},
                             {"token", 1,
                              "release only the hold with this fencing token (the one acquire "
                              "printed): a newer hold of the session is never released",
                              NULL, 0},
                             {NULL}};
    struct cli_cmd c = {
        "lock release", "NAMESPACE/NAME", "Release a hold (or leave the queue).", opts, 1, 1};
    char *pos[1], q[128];
    int npos, status;
    json_t *out;
    char *path;
    cli_parse(&c, argc, argv, pos, &npos);
    check_key(&c, pos[0]);
    if (cli_val(&c, "session") == NULL) {
        cli_die_usage(&c, "--session is required");
    }
    if (strlen(cli_val(&c, "session")) > 64) {
        cli_die_usage(&c, "session ids are at most 39 characters");
    }
    if (cli_val(&c, "token") != NULL &&
        (strspn(cli_val(&c, "token"), "0123456789") != strlen(cli_val(&c, "token")) ||
         cli_val(&c, "token")[0] < '1' || strlen(cli_val(&c, "token")) > 20)) {
        cli_die_usage(&c, "--token takes a fencing token (a positive number)");
    }
    snprintf(q, sizeof q, "?session=%s%s%s", cli_val(&c, "session"),
             cli_val(&c, "token") ? "&token=" : "",
             cli_val(&c, "token") ? cli_val(&c, "token") : "");
    path = lock_path(pos[0], q);
    status = cli_call(&c, "DELETE", path, NULL, &out);
    free(path);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("released\n");
    }
    json_decref(out);
    return 0;
}

static void print_lock(json_t *l)
{
    json_t *h;
    size_t i;
    printf("%-40s limit %-4" JSON_INTEGER_FORMAT " fence %-8" JSON_INTEGER_FORMAT
           " holders %zu waiters %zu\n",
           json_string_value(json_object_get(l, "key")),
           json_integer_value(json_object_get(l, "limit")),
           json_integer_value(json_object_get(l, "fence")),
           json_array_size(json_object_get(l, "holders")),
           json_array_size(json_object_get(l, "waiters")));
    json_array_foreach(json_object_get(l, "holders"), i, h)
    {
        printf("  held by %s token %" JSON_INTEGER_FORMAT "\n",
               json_string_value(json_object_get(h, "session")),
               json_integer_value(json_object_get(h, "token")));
    }
}

static int lock_list(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT, JSON_OPT, {"namespace", 1, "only this namespace", NULL, 0}, {NULL}};
    struct cli_cmd c = {"lock list", "", "List held, waited-for and delayed locks.", opts, 0, 0};
    char *pos[1], path[128];
    int npos, status;
    json_t *out, *l;
    size_t i;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_val(&c, "namespace") != NULL) {
        char *esc = cli_escape(cli_val(&c, "namespace"), 0);
        if (strlen(esc) > 80) {
            cli_die_usage(&c, "--namespace is at most 64 characters");
        }
        snprintf(path, sizeof path, "/v1/locks?namespace=%s", esc);
        free(esc);
    } else {
        snprintf(path, sizeof path, "/v1/locks");
    }
    status = cli_call(&c, "GET", path, NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        json_array_foreach(json_object_get(out, "items"), i, l)
        {
            print_lock(l);
        }
    }
    json_decref(out);
    return 0;
}

static int lock_show(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {
        "lock show", "NAMESPACE/NAME", "Show a lock: holders, waiters, fence.", opts, 1, 1};
    char *pos[1];
    int npos, status;
    json_t *out;
    char *path;
    cli_parse(&c, argc, argv, pos, &npos);
    check_key(&c, pos[0]);
    path = lock_path(pos[0], "");
    status = cli_call(&c, "GET", path, NULL, &out);
    free(path);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    cli_print_json(out);
    json_decref(out);
    return 0;
}

/* ---- lock run ----------------------------------------------------------------
 *
 * Hold a lock for the lifetime of a command. The session is renewed every
 * third of its TTL; if no renewal has succeeded for TTL minus a margin
 * (measured from when the last successful renewal was sent, so before the
 * cluster can expire it), or the cluster says the session is gone, the
 * command's whole process group is killed (SIGKILL: it must not go on
 * without the lock) and lock run exits 3. Otherwise lock run exits with the
 * command's status and releases the lock. --addr may list several servers. */

struct runner {
    char addrs[8][128];
    int n_addrs, cur;
    /* Request identity (docs/API.md "Request identity"): the lock's own
     * session numbers every request made under it. A request whose outcome
     * is unknown keeps its serial until a definite answer; the next request
     * gets the next one, which makes every earlier copy stale. */
    char session[64];
    uint64_t serial;
    int pending; /* the last request's outcome is still unknown */
};

/* Call method path on the servers in turn (a transport failure or a 503
 * before proposal moves to the next). With a session, the request carries
 * its identity: the serial of the unresolved request, or a new one.
 * Returns the HTTP status, or -1 if no server answered. */
static int run_call(struct runner *r, const char *method, const char *path, json_t *body,
                    int timeout_ms, json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char err[FL_ERRMSG_SIZE], headers[640];
    int status = -1;
    *out = NULL;
    cli_headers("lock run", text != NULL, headers, sizeof headers - 128);
    if (r->session[0] != '\0') {
        if (!r->pending) {
            r->serial++;
        }
        cli_ident_header(r->session, r->serial, headers + strlen(headers),
                         sizeof headers - strlen(headers));
    }
    r->pending = 1;
    for (int i = 0; i < r->n_addrs; i++) {
        struct httpc_response resp;
        const char *code = NULL;
        int rv = httpc_request(r->addrs[r->cur], method, path, headers[0] ? headers : NULL, text,
                               text ? strlen(text) : 0, timeout_ms, &resp, err);
        if (rv == FL_OK) {
            status = resp.status;
            *out = resp.body_len ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
            httpc_response_free(&resp);
            if (status == 503 && *out != NULL) {
                json_unpack(*out, "{s:{s:s}}", "error", "code", &code);
            }
            if (status != 503 || code == NULL || strcmp(code, "outcome_unknown") == 0) {
                break;
            }
            json_decref(*out);
            *out = NULL;
        }
        r->cur = (r->cur + 1) % r->n_addrs;
    }
    /* No definite answer: the same request must be sent again (with the
     * same serial) before any other, or abandoned with r->pending = 0. */
    r->pending = status < 0 || status == 503;
    free(text);
    return status;
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static pid_t spawn(char **argv, const char *key, const char *session, long long token)
{
    char tok[32];
    pid_t pid;
    snprintf(tok, sizeof tok, "%lld", token);
    pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        setenv("FLOTILLA_FENCING_TOKEN", tok, 1);
        setenv("FLOTILLA_LOCK", key, 1);
        setenv("FLOTILLA_SESSION", session, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "flotilla lock run: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid > 0) {
        setpgid(pid, pid);
    }
    return pid;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Acquire the lock at path for session, renewing the session while queued:
 * the server answers a waiting call after at most half the session's TTL
 * (202), so there is a renewal between any two calls. Returns 0 with the
 * server's answer in *out, or 1 after saying why (the session destroyed when
 * the lock was refused). */
static int acquire(struct runner *r, const char *cmd, const char *path, const char *session,
                   const char *renew_path, long long ttl, long long wait, int limit, uint64_t start,
                   uint64_t *next_renew, json_t **out)
{
    char destroy[128];
    int status, acquiring = 1;
    json_t *body;
    for (;;) {
        long long left = wait < 0 ? 24LL * 3600 * 1000 : wait - (long long)(mono_ms() - start);
        /* One request at a time: a renewal is not sent while an acquire's
         * outcome is unknown (the acquire is sent again first), and an
         * unanswered renewal is sent again before the next acquire. */
        if (acquiring ? !r->pending && mono_ms() >= *next_renew : 1) {
            uint64_t sent = mono_ms();
            acquiring = 0;
            status = run_call(r, "PUT", renew_path, NULL, (int)(ttl / 3), out);
            json_decref(*out);
            *out = NULL;
            if (status == 404) {
                fprintf(stderr, "flotilla lock run: session expired while waiting\n");
                return 1;
            }
            if (r->pending) {
                sleep_ms(200);
                continue;
            }
            *next_renew = sent + (uint64_t)ttl / 3;
            acquiring = 1;
        }
        body = json_pack("{s:s, s:i, s:I}", "session", session, "limit", limit, "wait",
                         (json_int_t)(left < 0 ? 0 : left));
        status = run_call(r, "PUT", path, body, (int)(ttl / 2 + 10000), out);
        json_decref(body);
        if (status == 200) {
            return 0;
        }
        if (status == 202 || status == 503 || status < 0) {
            json_decref(*out);
            *out = NULL;
            if (status != 202) {
                sleep_ms(200);
            }
            continue;
        }
        cli_print_error(cmd, status, *out);
        snprintf(destroy, sizeof destroy, "/v1/sessions/%s", session);
        r->pending = 0;
        run_call(r, "DELETE", destroy, NULL, 5000, out);
        json_decref(*out);
        return 1;
    }
}

/* Hold the lock while child runs: renew the session every third of its TTL;
 * once no renewal has succeeded for TTL minus margin, or the session is
 * gone, kill the child's process group (*lost set). Signals are passed on to
 * the group. Returns lock run's exit status. */
static int hold(struct runner *r, pid_t child, const char *key, const char *session,
                const char *renew_path, long long ttl, long long margin, uint64_t last_ok,
                uint64_t next_renew, int *lost)
{
    json_t *out = NULL;
    int status;
    for (;;) {
        int st;
        pid_t w = waitpid(child, &st, WNOHANG);
        if (w == child) {
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (got_signal) {
            kill(-child, got_signal);
            got_signal = 0;
        }
        if (mono_ms() >= next_renew) {
            uint64_t sent = mono_ms();
            long long left = (long long)(last_ok + (uint64_t)(ttl - margin)) - (long long)sent;
            status = run_call(r, "PUT", renew_path, NULL, (int)(left > 100 ? left : 100), &out);
            json_decref(out);
            out = NULL;
            if (status == 200) {
                last_ok = sent;
                next_renew = sent + (uint64_t)ttl / 3;
            } else if (status == 404) {
                *lost = 1;
            } else {
                next_renew = mono_ms() + 200;
            }
        }
        if (*lost || mono_ms() >= last_ok + (uint64_t)(ttl - margin)) {
            *lost = 1;
            kill(-child, SIGKILL);
            waitpid(child, NULL, 0);
            fprintf(stderr, "flotilla lock run: lock %s lost (session %s); command killed\n", key,
                    session);
            return 3;
        }
        sleep_ms(20);
    }
}

static int lock_run_with(int argc, char **argv, char **pos)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        {"ttl", 1, "session TTL; renewed every third of it", "15s", 0},
        {"lock-delay", 1, "if this holder vanishes, the lock waits this long", "15s", 0},
        {"wait", 1, "give up if not acquired within (default: wait forever)", NULL, 0},
        {"limit", 1, "holders allowed at once (a semaphore)", "1", 0},
        {"name", 1, "session name", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"lock run",
                        "NAMESPACE/NAME -- COMMAND [ARGS...]",
                        "Run a command while holding a lock: the token is in "
                        "$FLOTILLA_FENCING_TOKEN; the command is killed if the lock is lost "
                        "(exit 3); the lock is released when it ends.",
                        opts,
                        2,
                        4096};
    struct runner r;
    char session[64], renew_path[128], *path, *addrs, *tok;
    int npos, status, limit, exit_code, lost = 0;
    long long ttl, wait, margin;
    json_t *body, *out = NULL;
    uint64_t start = mono_ms(), last_ok, next_renew;
    long long token;
    pid_t child;

    cli_parse(&c, argc, argv, pos, &npos);
    check_key(&c, pos[0]);
    ttl = fl_duration_ms(cli_val(&c, "ttl"));
    if (ttl < 1000 || ttl > 24LL * 3600 * 1000) {
        cli_die_usage(&c, "--ttl must be between 1s and 24h");
    }
    wait = cli_val(&c, "wait") ? duration_opt(&c, "wait") : -1;
    limit = limit_opt(&c);
    margin = ttl / 5 < 1000 ? ttl / 5 : 1000;
    memset(&r, 0, sizeof r);
    addrs = strdup(cli_addr(&c));
    for (tok = strtok(addrs, ","); tok != NULL && r.n_addrs < 8; tok = strtok(NULL, ",")) {
        snprintf(r.addrs[r.n_addrs++], sizeof r.addrs[0], "%s", tok);
    }
    free(addrs);
    if (r.n_addrs == 0) {
        cli_die_usage(&c, "no API address");
    }

    body = session_body(&c);
    status = run_call(&r, "POST", "/v1/sessions", body, 10000, &out);
    json_decref(body);
    if (status != 200) {
        return status < 0 ? (fprintf(stderr, "flotilla lock run: no server answered\n"), 1)
                          : cli_print_error(c.path, status, out);
    }
    snprintf(session, sizeof session, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(out);
    out = NULL;
    snprintf(r.session, sizeof r.session, "%s", session); /* its requests from here on */
    r.pending = 0;
    snprintf(renew_path, sizeof renew_path, "/v1/sessions/%s/renew", session);
    path = lock_path(pos[0], "");
    last_ok = mono_ms();
    next_renew = last_ok + (uint64_t)ttl / 3;

    if (acquire(&r, c.path, path, session, renew_path, ttl, wait, limit, start, &next_renew,
                &out) != 0) {
        free(path);
        return 1;
    }
    token = json_integer_value(json_object_get(out, "token"));
    json_decref(out);
    out = NULL;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    child = spawn(pos + 1, pos[0], session, token);
    if (child < 0) {
        fprintf(stderr, "flotilla lock run: fork: %s\n", strerror(errno));
        free(path);
        return 1;
    }
    exit_code =
        hold(&r, child, pos[0], session, renew_path, ttl, margin, last_ok, next_renew, &lost);
    free(path);
    /* Destroying the session releases the lock at once (no lock-delay). */
    if (!lost) {
        char destroy[128];
        snprintf(destroy, sizeof destroy, "/v1/sessions/%s", session);
        r.pending = 0; /* an unanswered renewal is abandoned: this makes it stale */
        run_call(&r, "DELETE", destroy, NULL, 5000, &out);
        json_decref(out);
    }
    return exit_code;
}

static int lock_run(int argc, char **argv)
{
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int rc;
    if (pos == NULL) {
        fprintf(stderr, "flotilla lock run: out of memory\n");
        return 1;
    }
    rc = lock_run_with(argc, argv, pos);
    free(pos);
    return rc;
}

int cmd_lock(int argc, char **argv)
{
    const char *sub = argc >= 1 ? argv[0] : "";
    if (strcmp(sub, "acquire") == 0) {
        return lock_acquire(argc - 1, argv + 1);
    }
    if (strcmp(sub, "release") == 0) {
        return lock_release(argc - 1, argv + 1);
    }
    if (strcmp(sub, "list") == 0) {
        return lock_list(argc - 1, argv + 1);
    }
    if (strcmp(sub, "show") == 0) {
        return lock_show(argc - 1, argv + 1);
    }
    if (strcmp(sub, "run") == 0) {
        return lock_run(argc - 1, argv + 1);
    }
    fprintf(argc >= 1 && strcmp(sub, "--help") != 0 ? stderr : stdout,
            "usage: flotilla lock acquire|release|list|show|run ... (each has --help)\n");
    return argc >= 1 && strcmp(sub, "--help") == 0 ? 0 : 2;
}
