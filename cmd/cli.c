#include "cmd/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "http/blocking.h"

void cli_usage(const struct cli_cmd *c, int to_stderr)
{
    FILE *f = to_stderr ? stderr : stdout;
    fprintf(f, "usage: flotilla %s%s%s%s\n\n%s\n", c->path,
            c->opts && c->opts[0].name ? " [flags]" : "", c->args && c->args[0] ? " " : "",
            c->args ? c->args : "", c->summary);
    if (c->opts != NULL && c->opts[0].name != NULL) {
        fprintf(f, "\nflags:\n");
        for (struct cli_opt *o = c->opts; o->name != NULL; o++) {
            char left[64];
            snprintf(left, sizeof left, "--%s%s", o->name, o->has_arg ? " VALUE" : "");
            fprintf(f, "  %-26s %s", left, o->help);
            if (o->has_arg && o->value != NULL) {
                fprintf(f, " (default %s)", o->value);
            }
            fprintf(f, "\n");
        }
    }
    fprintf(f, "  %-26s %s\n", "--help", "show this help");
}

void cli_die_usage(const struct cli_cmd *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "flotilla %s: ", c->path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see flotilla %s --help)\n", c->path);
    exit(2);
}

struct cli_opt *cli_opt(struct cli_cmd *c, const char *name)
{
    for (struct cli_opt *o = c->opts; o != NULL && o->name != NULL; o++) {
        if (strcmp(o->name, name) == 0) {
            return o;
        }
    }
    return NULL;
}

const char *cli_val(struct cli_cmd *c, const char *name)
{
    struct cli_opt *o = cli_opt(c, name);
    return o ? o->value : NULL;
}

int cli_flag(struct cli_cmd *c, const char *name)
{
    struct cli_opt *o = cli_opt(c, name);
    return o ? o->set : 0;
}

void cli_parse(struct cli_cmd *c, int argc, char **argv, char **pos, int *npos)
{
    int only_pos = 0;
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            cli_usage(c, 0);
            exit(0);
        }
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            char name[64];
            const char *eq = strchr(a + 2, '=');
            size_t n = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            struct cli_opt *o;
            if (n >= sizeof name) {
                cli_die_usage(c, "unknown flag %s", a);
            }
            memcpy(name, a + 2, n);
            name[n] = '\0';
            o = cli_opt(c, name);
            if (o == NULL) {
                cli_die_usage(c, "unknown flag --%s", name);
            }
            if (o->has_arg == 2 && o->set && o->value != NULL) {
                /* A repeatable flag: its values joined by newlines. */
                const char *v = eq != NULL ? eq + 1 : i + 1 < argc ? argv[i + 1] : NULL;
                char *joined;
                if (v == NULL) {
                    cli_die_usage(c, "flag --%s needs a value", name);
                }
                joined = malloc(strlen(o->value) + strlen(v) + 2);
                if (joined == NULL) {
                    cli_die_usage(c, "out of memory");
                }
                sprintf(joined, "%s\n%s", o->value, v);
                o->value = joined; /* lives until exit */
                i += eq == NULL;
                continue;
            }
            o->set = 1;
            if (o->has_arg) {
                if (eq != NULL) {
                    o->value = eq + 1;
                } else if (i + 1 < argc) {
                    o->value = argv[++i];
                } else {
                    cli_die_usage(c, "flag --%s needs a value", name);
                }
            } else if (eq != NULL) {
                cli_die_usage(c, "flag --%s takes no value", name);
            }
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            cli_die_usage(c, "unknown flag %s", a);
        }
        if (*npos >= c->max_pos) {
            cli_die_usage(c, "unexpected argument \"%s\"", a);
        }
        pos[(*npos)++] = a;
    }
    if (*npos < c->min_pos) {
        cli_die_usage(c, "expected %s", c->args);
    }
}

static int api_tls_ready;
static struct tls_creds *api_tls_owned; /* loaded here from the environment */

void cli_api_tls(const char *cmd, struct tls_creds *creds)
{
    char err[FL_ERRMSG_SIZE];
    const char *ca, *cert, *key;
    if (creds != NULL) {
        /* The command's own credentials replace what the environment gave. */
        httpc_set_tls(creds);
        tls_creds_free(api_tls_owned);
        api_tls_owned = NULL;
        api_tls_ready = 1;
        return;
    }
    if (api_tls_ready) {
        return;
    }
    ca = getenv("FLOTILLA_CACERT");
    cert = getenv("FLOTILLA_CERT");
    key = getenv("FLOTILLA_CERT_KEY");
    if (ca == NULL || ca[0] == '\0') {
        fprintf(stderr,
                "flotilla %s: the API is HTTPS: set FLOTILLA_CACERT to the cluster's CA "
                "certificate (flotilla dev prints it: DIR/pki/ca.pem)\n",
                cmd);
        exit(2);
    }
    if (cert != NULL && cert[0] && key != NULL && key[0]) {
        struct tls_creds_files f = {ca, cert, key};
        if (tls_creds_load(&f, &creds, err) != FL_OK) {
            fprintf(stderr, "flotilla %s: %s\n", cmd, err);
            exit(2);
        }
    } else if (tls_creds_load_ca(ca, &creds, err) != FL_OK) {
        fprintf(stderr, "flotilla %s: $FLOTILLA_CACERT: %s\n", cmd, err);
        exit(2);
    }
    httpc_set_tls(creds);
    api_tls_owned = creds;
    api_tls_ready = 1;
}

const char *cli_addr(struct cli_cmd *c)
{
    const char *a = cli_val(c, "addr");
    if (a == NULL) {
        a = getenv("FLOTILLA_ADDR");
    }
    cli_api_tls(c->path, NULL);
    return a != NULL && a[0] ? a : "127.0.0.1:8401";
}

/* The API token: $FLOTILLA_TOKEN, or the first line of $FLOTILLA_TOKEN_FILE
 * (docs/ACL.md). Exits with a message if the file cannot be read. */
const char *cli_token(const char *cmd)
{
    static char buf[256];
    const char *t = getenv("FLOTILLA_TOKEN"), *file = getenv("FLOTILLA_TOKEN_FILE");
    FILE *f;
    if (t != NULL && t[0] != '\0') {
        return t;
    }
    if (file == NULL || file[0] == '\0') {
        return NULL;
    }
    if (buf[0] != '\0') {
        return buf;
    }
    f = fopen(file, "r");
    if (f == NULL || fgets(buf, sizeof buf, f) == NULL) {
        fprintf(stderr, "flotilla %s: cannot read FLOTILLA_TOKEN_FILE %s: %s\n", cmd, file,
                f == NULL ? strerror(errno) : "empty file");
        exit(1);
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

void cli_headers(const char *cmd, int json, char *out, size_t size)
{
    const char *token = cli_token(cmd);
    if (token != NULL && (strlen(token) > 300 || strpbrk(token, "\r\n") != NULL)) {
        fprintf(stderr, "flotilla %s: FLOTILLA_TOKEN is not a token\n", cmd);
        exit(1);
    }
    snprintf(out, size, "%s%s%s%s", json ? "Content-Type: application/json\r\n" : "",
             token ? "X-Flotilla-Token: " : "", token ? token : "", token ? "\r\n" : "");
}

int cli_print_error(const char *cmd, int status, json_t *body)
{
    const char *msg = NULL, *code = NULL;
    if (body != NULL) {
        json_unpack(body, "{s:{s:s, s?s}}", "error", "message", &msg, "code", &code);
    }
    fprintf(stderr, "flotilla %s: %s (HTTP %d%s%s)\n", cmd, msg ? msg : "request failed", status,
            code ? ", " : "", code ? code : "");
    json_decref(body);
    return 1;
}

void cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (s != NULL) {
        printf("%s\n", s);
        free(s);
    }
}

char *cli_escape(const char *s, int keep_slash)
{
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    size_t o = 0;
    if (out == NULL) {
        fprintf(stderr, "flotilla: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keep_slash && ch == '/')) {
            out[o++] = (char)ch;
        } else {
            o += (size_t)sprintf(out + o, "%%%02X", ch);
        }
    }
    out[o] = '\0';
    return out;
}

int cli_do(struct cli_cmd *c, const char *method, const char *path, const char *done)
{
    json_t *out = NULL;
    int status = cli_call(c, method, path, NULL, &out);
    if (status != 200) {
        return cli_print_error(c->path, status, out);
    }
    if (done != NULL) {
        printf("%s\n", done);
    } else {
        cli_print_json(out);
    }
    json_decref(out);
    return 0;
}

int cli_get(struct cli_cmd *c, const char *path, json_t **out)
{
    int status = cli_call(c, "GET", path, NULL, out);
    if (status != 200) {
        return cli_print_error(c->path, status, *out);
    }
    if (cli_flag(c, "json")) {
        cli_print_json(*out);
        json_decref(*out);
        return 0;
    }
    return -1;
}

int cli_raw(struct cli_cmd *c, const char *path, json_t **unused)
{
    struct httpc_response r;
    char err[FL_ERRMSG_SIZE];
    char headers[512];
    *unused = NULL;
    cli_headers(c->path, 0, headers, sizeof headers);
    if (httpc_request(cli_addr(c), "GET", path, headers[0] ? headers : NULL, NULL, 0, 30000, &r,
                      err) != FL_OK) {
        fprintf(stderr, "flotilla %s: %s\n", c->path, err);
        return 1;
    }
    if (r.status != 200) {
        json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
        int rv = cli_print_error(c->path, r.status, j);
        httpc_response_free(&r);
        return rv;
    }
    fwrite(r.body, 1, r.body_len, stdout);
    httpc_response_free(&r);
    return 0;
}
