/* flotilla acl — API tokens (docs/ACL.md).
 *
 *   flotilla acl bootstrap [--secret-file F] [--out F]   the first management token, once
 *   flotilla acl token create --policy P[,P] [--namespace NS]... [--name N]
 *   flotilla acl token list | delete ACCESSOR
 *   flotilla acl whoami
 *
 * The bootstrap secret is generated here, not on the server, so a bootstrap
 * whose answer was lost can be retried with the same secret and succeed (the
 * cluster remembers the hash it was bootstrapped with). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cmd/cli.h"
#include "cmd/table.h"

static void read_secret_file(struct cli_cmd *c, const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(out, (int)size, f) == NULL) {
        cli_die_usage(c, "--secret-file %s: %s", path, f == NULL ? strerror(errno) : "empty");
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

/* Write the secret to a new file, mode 0600. */
static int write_secret(const char *path, const char *secret)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t n = strlen(secret);
    int ok;
    if (fd < 0) {
        fprintf(stderr, "flotilla acl bootstrap: %s: %s\n", path, strerror(errno));
        return 0;
    }
    ok = write(fd, secret, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        fprintf(stderr, "flotilla acl bootstrap: writing %s failed\n", path);
    }
    return ok;
}

static int acl_bootstrap(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        {"secret-file", 1, "use the secret in this file (32-128 characters) instead of a new one",
         NULL, 0},
        {"out", 1, "also write the secret to this new file (mode 0600)", NULL, 0},
        JSON_OPT,
        {NULL}};
    struct cli_cmd c = {"acl bootstrap",
                        "",
                        "Make the cluster's first API token, with every policy. It works once per "
                        "cluster; keep the secret it prints (export FLOTILLA_TOKEN=...).",
                        opts,
                        0,
                        0};
    char secret[160];
    unsigned char raw[32];
    char b64[64];
    json_t *body, *out = NULL;
    int status;

    char *nopos[1];
    int nnopos;
    cli_parse(&c, argc, argv, nopos, &nnopos);
    if (cli_val(&c, "secret-file") != NULL) {
        read_secret_file(&c, cli_val(&c, "secret-file"), secret, sizeof secret);
    } else {
        if (sodium_init() < 0) {
            fprintf(stderr, "flotilla acl bootstrap: libsodium failed to initialise\n");
            return 1;
        }
        randombytes_buf(raw, sizeof raw);
        sodium_bin2base64(b64, sizeof b64, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        snprintf(secret, sizeof secret, "flt_%s", b64);
    }
    body = json_pack("{s:s}", "secret", secret);
    status = cli_call(&c, "POST", "/v1/acl/bootstrap", body, &out);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_val(&c, "out") != NULL && !write_secret(cli_val(&c, "out"), secret)) {
        json_decref(out);
        return 1;
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("accessor: %s\nsecret:   %s\n", json_string_value(json_object_get(out, "accessor")),
               secret);
    }
    json_decref(out);
    return 0;
}

static int token_create(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        {"policy", 1, "read, submit, operate, admin or management; several with commas", NULL, 0},
        {"namespace", 1,
         "limit submit to these lock/kv namespaces (commas; a trailing * is a prefix)", NULL, 0},
        {"name", 1, "a description", NULL, 0},
        JSON_OPT,
        {NULL}};
    struct cli_cmd c = {"acl token create",
                        "",
                        "Create an API token. The secret is printed once and never again.",
                        opts,
                        0,
                        0};
    json_t *body, *pol = json_array(), *ns = json_array(), *out = NULL;
    char buf[1024], *save = NULL, *p;
    int status;

    char *nopos[1];
    int nnopos;
    cli_parse(&c, argc, argv, nopos, &nnopos);
    if (cli_val(&c, "policy") == NULL) {
        cli_die_usage(&c, "--policy is required");
    }
    snprintf(buf, sizeof buf, "%s", cli_val(&c, "policy"));
    for (p = strtok_r(buf, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
        json_array_append_new(pol, json_string(p));
    }
    if (cli_val(&c, "namespace") != NULL) {
        snprintf(buf, sizeof buf, "%s", cli_val(&c, "namespace"));
        for (p = strtok_r(buf, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
            json_array_append_new(ns, json_string(p));
        }
    }
    body = json_pack("{s:o, s:o, s:s}", "policies", pol, "namespaces", ns, "name",
                     cli_val(&c, "name") ? cli_val(&c, "name") : "");
    status = cli_call(&c, "POST", "/v1/acl/tokens", body, &out);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("accessor: %s\nsecret:   %s\n", json_string_value(json_object_get(out, "accessor")),
               json_string_value(json_object_get(out, "secret")));
    }
    json_decref(out);
    return 0;
}

static void print_token_row(struct cli_table *tab, json_t *t)
{
    json_t *v;
    size_t i;
    char pol[128] = "", ns[256] = "";
    json_array_foreach(json_object_get(t, "policies"), i, v)
    {
        size_t n = strlen(pol);
        snprintf(pol + n, sizeof pol - n, "%s%s", i ? "," : "", json_string_value(v));
    }
    json_array_foreach(json_object_get(t, "namespaces"), i, v)
    {
        size_t n = strlen(ns);
        snprintf(ns + n, sizeof ns - n, "%s%s", i ? "," : "", json_string_value(v));
    }
    cli_table_row(tab);
    cli_table_cell(tab, "%s", json_string_value(json_object_get(t, "accessor")));
    cli_table_cell(tab, "%s", pol);
    cli_table_cell(tab, "%s", ns[0] ? ns : "*");
    cli_table_cell(tab, "%s", json_string_value(json_object_get(t, "name")));
}

static int token_list(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {
        "acl token list", "", "List API tokens (accessors, never secrets).", opts, 0, 0};
    json_t *out = NULL, *t;
    size_t i;
    int status;
    char *nopos[1];
    int nnopos;
    cli_parse(&c, argc, argv, nopos, &nnopos);
    status = cli_call(&c, "GET", "/v1/acl/tokens", NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        static const struct cli_table_col cols[] = {
            {"ACCESSOR", 0, 0}, {"POLICIES", 0, 0}, {"NAMESPACES", 0, 0}, {"NAME", 0, 0}};
        struct cli_table *tab = cli_table_new(cols, 4);
        json_array_foreach(json_object_get(out, "items"), i, t)
        {
            print_token_row(tab, t);
        }
        cli_table_print(tab, stdout, 0);
    }
    json_decref(out);
    return 0;
}

static int token_delete(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {"acl token delete", "ACCESSOR", "Delete an API token.", opts, 1, 1};
    char *pos[1], path[128], *esc;
    json_t *out = NULL;
    int npos, status;
    cli_parse(&c, argc, argv, pos, &npos);
    esc = cli_escape(pos[0], 0);
    snprintf(path, sizeof path, "/v1/acl/tokens/%.64s", esc);
    free(esc);
    status = cli_call(&c, "DELETE", path, NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    printf("deleted %s\n", pos[0]);
    json_decref(out);
    return 0;
}

static int whoami(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {"acl whoami", "", "Show the token in FLOTILLA_TOKEN.", opts, 0, 0};
    json_t *out = NULL;
    int status;
    char *nopos[1];
    int nnopos;
    cli_parse(&c, argc, argv, nopos, &nnopos);
    status = cli_call(&c, "GET", "/v1/acl/self", NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    cli_print_json(out);
    json_decref(out);
    return 0;
}

int cmd_acl(int argc, char **argv)
{
    static const char usage[] =
        "usage: flotilla acl bootstrap | whoami | token create|list|delete (see --help)\n";
    if (argc >= 1 && strcmp(argv[0], "bootstrap") == 0) {
        return acl_bootstrap(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "whoami") == 0) {
        return whoami(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[0], "token") == 0) {
        if (strcmp(argv[1], "create") == 0) {
            return token_create(argc - 2, argv + 2);
        }
        if (strcmp(argv[1], "list") == 0) {
            return token_list(argc - 2, argv + 2);
        }
        if (strcmp(argv[1], "delete") == 0) {
            return token_delete(argc - 2, argv + 2);
        }
    }
    if (argc >= 1 && strcmp(argv[0], "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    fputs(usage, stderr);
    return 2;
}
