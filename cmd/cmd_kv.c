/* flotilla kv put|get|list|delete */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"

static char *kv_path(const char *key, const char *query)
{
    char *esc = cli_escape(key, 1);
    size_t n = strlen(esc) + strlen(query) + 16;
    char *p = malloc(n);
    if (p == NULL) {
        exit(1);
    }
    snprintf(p, n, "/v1/kv/%s%s", esc, query);
    free(esc);
    return p;
}

static int kv_put(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        JSON_OPT,
        {"cas", 1, "write only if the key's version is this (0: create only)", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"kv put", "KEY VALUE", "Write a key.", opts, 2, 2};
    char *pos[2];
    int npos, status;
    json_t *body, *out;
    char *path;
    cli_parse(&c, argc, argv, pos, &npos);
    body = json_pack("{s:s}", "value", pos[1]);
    if (body == NULL) {
        cli_die_usage(&c, "VALUE must be valid UTF-8");
    }
    if (cli_flag(&c, "cas")) {
        char *end;
        unsigned long long v = strtoull(cli_val(&c, "cas"), &end, 10);
        if (*end != '\0' || cli_val(&c, "cas")[0] == '-' || cli_val(&c, "cas")[0] == '\0') {
            cli_die_usage(&c, "--cas must be a non-negative integer");
        }
        json_object_set_new(body, "cas", json_integer((json_int_t)v));
    }
    path = kv_path(pos[0], "");
    status = cli_call(&c, "PUT", path, body, &out);
    free(path);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("version %" JSON_INTEGER_FORMAT "\n",
               json_integer_value(json_object_get(out, "version")));
    }
    json_decref(out);
    return 0;
}

static int kv_get(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        JSON_OPT,
        {"stale", 0, "read this server's copy (no leader round trip)", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"kv get", "KEY", "Read a key (linearizable unless --stale).", opts, 1, 1};
    char *pos[1];
    int npos, status;
    json_t *out;
    char *path;
    cli_parse(&c, argc, argv, pos, &npos);
    path = kv_path(pos[0], cli_flag(&c, "stale") ? "?stale" : "");
    status = cli_call(&c, "GET", path, NULL, &out);
    free(path);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("%s\n", json_string_value(json_object_get(out, "value")));
    }
    json_decref(out);
    return 0;
}

static int kv_list(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT,
                             JSON_OPT,
                             {"prefix", 1, "only keys starting with this", NULL, 0},
                             {"limit", 1, "at most this many keys", "1000", 0},
                             {"stale", 0, "read this server's copy", NULL, 0},
                             {NULL}};
    struct cli_cmd c = {"kv list", "", "List keys in order.", opts, 0, 0};
    char *pos[1];
    int npos, status;
    json_t *out, *item;
    size_t i;
    char path[2048];
    char *prefix;
    cli_parse(&c, argc, argv, pos, &npos);
    prefix = cli_escape(cli_val(&c, "prefix") ? cli_val(&c, "prefix") : "", 0);
    snprintf(path, sizeof path, "/v1/kv?prefix=%s&limit=%s%s", prefix, cli_val(&c, "limit"),
             cli_flag(&c, "stale") ? "&stale" : "");
    free(prefix);
    status = cli_call(&c, "GET", path, NULL, &out);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        json_array_foreach(json_object_get(out, "items"), i, item)
        {
            printf("%s\t%s\t%" JSON_INTEGER_FORMAT "\n",
                   json_string_value(json_object_get(item, "key")),
                   json_string_value(json_object_get(item, "value")),
                   json_integer_value(json_object_get(item, "version")));
        }
    }
    json_decref(out);
    return 0;
}

static int kv_delete(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT,
                             JSON_OPT,
                             {"cas", 1, "delete only if the key's version is this", NULL, 0},
                             {NULL}};
    struct cli_cmd c = {"kv delete", "KEY", "Delete a key.", opts, 1, 1};
    char *pos[1];
    char query[64] = "";
    int npos, status;
    json_t *out;
    char *path;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_flag(&c, "cas")) {
        char *end;
        unsigned long long v = strtoull(cli_val(&c, "cas"), &end, 10);
        if (*end != '\0' || cli_val(&c, "cas")[0] == '-' || cli_val(&c, "cas")[0] == '\0') {
            cli_die_usage(&c, "--cas must be a non-negative integer");
        }
        snprintf(query, sizeof query, "?cas=%llu", v);
    }
    path = kv_path(pos[0], query);
    status = cli_call(&c, "DELETE", path, NULL, &out);
    free(path);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("deleted\n");
    }
    json_decref(out);
    return 0;
}

int cmd_kv(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "put") == 0) {
        return kv_put(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "get") == 0) {
        return kv_get(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "list") == 0) {
        return kv_list(argc - 1, argv + 1);
    }
    if (argc >= 1 && (strcmp(argv[0], "delete") == 0 || strcmp(argv[0], "rm") == 0)) {
        return kv_delete(argc - 1, argv + 1);
    }
    fprintf(argc >= 1 && strcmp(argv[0], "--help") != 0 ? stderr : stdout,
            "usage: flotilla kv put|get|list|delete ... (each has --help)\n");
    return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}
