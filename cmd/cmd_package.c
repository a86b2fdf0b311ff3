/* flotilla package push|list|show|rm|fetch (docs/PACKAGES.md) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/table.h"
#include "common/alloc.h"
#include "blob/blob.h"
#include "common/err.h"
#include "common/key.h"
#include "deploy/acquire.h"
#include "deploy/delta.h"
#include "fsm/cmd.h"
#include "http/blocking.h"

/* NAME@VERSION into name and version; exits 2 if malformed. */
static void split_ref(struct cli_cmd *c, const char *ref, char *name, size_t ncap, char *ver,
                      size_t vcap, int need_version)
{
    const char *at = strchr(ref, '@');
    if (at == NULL) {
        if (need_version) {
            cli_die_usage(c, "give NAME@VERSION");
        }
        snprintf(name, ncap, "%s", ref);
        ver[0] = '\0';
        return;
    }
    if ((size_t)(at - ref) >= ncap || strlen(at + 1) >= vcap || at == ref || at[1] == '\0') {
        cli_die_usage(c, "give NAME@VERSION");
    }
    snprintf(name, ncap, "%.*s", (int)(at - ref), ref);
    snprintf(ver, vcap, "%s", at + 1);
}

/* PUT one chunk of raw bytes; returns the HTTP status (0 on transport
 * failure) and sets *received from the answer. */
static int put_chunk(struct cli_cmd *c, const char *id, uint64_t off, const uint8_t *p, size_t n,
                     uint64_t *received, char *err)
{
    char path[256], headers[512];
    struct httpc_response r;
    json_t *body;
    int status;
    snprintf(path, sizeof path, "/v1/uploads/%s?offset=%llu", id, (unsigned long long)off);
    cli_headers(c->path, 0, headers, sizeof headers);
    if (strlen(headers) + 48 < sizeof headers) {
        strcat(headers, "Content-Type: application/octet-stream\r\n");
    }
    if (httpc_request(cli_addr(c), "PUT", path, headers, p, n, 60000, &r, err) != FL_OK) {
        return 0;
    }
    status = r.status;
    body = json_loadb(r.body, r.body_len, 0, NULL);
    json_int_t got = json_integer_value(json_object_get(body, "received"));
    if (body != NULL && json_object_get(body, "received") != NULL) {
        *received = (uint64_t)got;
    }
    if (status != 200) {
        const char *msg = NULL;
        json_unpack(body, "{s:{s:s}}", "error", "message", &msg);
        snprintf(err, FL_ERRMSG_SIZE, "%s", msg ? msg : r.body);
    }
    json_decref(body);
    httpc_response_free(&r);
    return status;
}

/* Start the upload of size bytes, or find the one --resume names: its id,
 * the bytes the server has and the largest chunk it takes. Returns 0, or
 * the exit status after saying why. */
static int push_begin(struct cli_cmd *c, uint64_t size, char *id, size_t idcap, uint64_t *received,
                      uint64_t *chunk)
{
    char path[256];
    json_t *out, *body;
    int status;
    if (cli_val(c, "resume") != NULL) {
        snprintf(id, idcap, "%s", cli_val(c, "resume"));
        snprintf(path, sizeof path, "/v1/uploads/%s", id);
        status = cli_call(c, "GET", path, NULL, &out);
    } else {
        body = json_pack("{s:I}", "size", (json_int_t)size);
        status = cli_call_plain(c, "POST", "/v1/uploads", body, &out);
        json_decref(body);
    }
    if (status != 200) {
        return cli_print_error(c->path, status, out);
    }
    snprintf(id, idcap, "%s", json_string_value(json_object_get(out, "id")));
    *received = (uint64_t)json_integer_value(json_object_get(out, "received"));
    *chunk = (uint64_t)json_integer_value(json_object_get(out, "chunk_max"));
    if (*chunk == 0 || *chunk > 1024 * 1024) {
        *chunk = 1024 * 1024;
    }
    if ((uint64_t)json_integer_value(json_object_get(out, "size")) != size) {
        fprintf(stderr, "flotilla package push: upload %s is for %lld bytes, the file has %llu\n",
                id, (long long)json_integer_value(json_object_get(out, "size")),
                (unsigned long long)size);
        json_decref(out);
        return 1;
    }
    json_decref(out);
    return 0;
}

/* Send the bytes of fd (the file `file`, size bytes) from received on, in
 * chunks of at most `chunk`; a chunk is tried up to five times while the
 * failure is the transport's or the server's (5xx). Returns 0, or 1 after
 * saying how to resume. */
static int push_chunks(struct cli_cmd *c, int fd, const char *file, const char *id, const char *hex,
                       uint64_t size, uint64_t received, uint64_t chunk)
{
    char err[FL_ERRMSG_SIZE];
    int status;
    uint8_t *buf = malloc(chunk);
    if (buf == NULL) {
        return 1;
    }
    fprintf(stderr, "upload %s: %llu bytes, BLAKE2b-256 %s\n", id, (unsigned long long)size, hex);
    while (received < size) {
        size_t n = (size_t)(size - received < chunk ? size - received : chunk);
        int tries = 0;
        if (pread(fd, buf, n, (off_t)received) != (ssize_t)n) {
            fprintf(stderr, "flotilla package push: read %s: %s\n", file, strerror(errno));
            free(buf);
            return 1;
        }
        for (;;) {
            uint64_t before = received;
            status = put_chunk(c, id, received, buf, n, &received, err);
            if (status == 200) {
                break;
            }
            if (status == 409 && received != before) {
                break; /* the server has a different point: continue from there */
            }
            if (++tries == 5 || (status != 0 && status < 500)) {
                fprintf(stderr,
                        "flotilla package push: chunk at %llu: %s%s\n  resume with: --resume %s\n",
                        (unsigned long long)before, status ? "" : "transport: ", err, id);
                free(buf);
                return 1;
            }
            sleep(1);
        }
    }
    free(buf);
    return 0;
}

static int pkg_push(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        JSON_OPT,
        {"name", 1, "package name", NULL, 0},
        {"version", 1, "version (immutable once pushed)", NULL, 0},
        {"keep", 1, "versions of this package kept (older ones are removed)", NULL, 0},
        {"resume", 1, "continue the upload with this id", NULL, 0},
        {NULL}};
    struct cli_cmd c = {
        "package push", "FILE", "Upload a package to the server at --addr and record the version.",
        opts,           1,      1};
    char *pos[1], err[FL_ERRMSG_SIZE], hex[65], id[128], path[256];
    int npos, status, fd;
    uint8_t hash[32];
    uint64_t size = 0, received = 0, chunk = 0;
    json_t *out, *body;
    struct stat sb;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_val(&c, "name") == NULL || cli_val(&c, "version") == NULL) {
        cli_die_usage(&c, "--name and --version are required");
    }
    if (fsm_package_name_check(cli_val(&c, "name"), strlen(cli_val(&c, "name")), err) != FL_OK ||
        fsm_package_version_check(cli_val(&c, "version"), strlen(cli_val(&c, "version")), err) !=
            FL_OK) {
        cli_die_usage(&c, "%s", err);
    }
    fd = open(pos[0], O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fprintf(stderr, "flotilla package push: %s: %s\n", pos[0],
                fd < 0 ? strerror(errno) : "not a regular file");
        return 1;
    }
    if (blob_hash_file(pos[0], blob_chunk_size((uint64_t)sb.st_size), hash, &size, NULL, NULL,
                       err) != FL_OK) {
        fprintf(stderr, "flotilla package push: %s\n", err);
        return 1;
    }
    blob_hex(hash, hex);
    status = push_begin(&c, size, id, sizeof id, &received, &chunk);
    if (status != 0) {
        return status;
    }
    if (push_chunks(&c, fd, pos[0], id, hex, size, received, chunk) != 0) {
        return 1;
    }
    close(fd);
    body = json_pack("{s:s, s:s, s:s}", "name", cli_val(&c, "name"), "version",
                     cli_val(&c, "version"), "hash", hex);
    if (cli_val(&c, "keep") != NULL) {
        char *end;
        long k = strtol(cli_val(&c, "keep"), &end, 10);
        if (*end != '\0' || k < 1) {
            cli_die_usage(&c, "--keep must be a positive integer");
        }
        json_object_set_new(body, "keep", json_integer(k));
    }
    snprintf(path, sizeof path, "/v1/uploads/%s/commit", id);
    status = cli_call_plain(&c, "POST", path, body, &out);
    json_decref(body);
    if (status != 200) {
        return cli_print_error(c.path, status, out);
    }
    if (cli_flag(&c, "json")) {
        cli_print_json(out);
    } else {
        printf("%s@%s  %s  %llu bytes  index %lld\n", cli_val(&c, "name"), cli_val(&c, "version"),
               hex, (unsigned long long)size,
               (long long)json_integer_value(json_object_get(out, "index")));
    }
    json_decref(out);
    return 0;
}

static void print_version(struct cli_table *tab, json_t *p)
{
    cli_table_row(tab);
    cli_table_cell(tab, "%s", json_string_value(json_object_get(p, "name")));
    cli_table_cell(tab, "%s", json_string_value(json_object_get(p, "version")));
    cli_table_cell(tab, "%lld", (long long)json_integer_value(json_object_get(p, "size")));
    cli_table_cell(tab, "%s", json_string_value(json_object_get(p, "hash")));
    cli_table_cell(tab, "%s%s", json_string_value(json_object_get(p, "origin")),
                   json_is_true(json_object_get(p, "local")) ? "" : "  (not on this server yet)");
}

static int pkg_list(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, JSON_OPT, {NULL}};
    struct cli_cmd c = {
        "package list", "[NAME]", "List packages (latest versions), or the versions of NAME.",
        opts,           0,        1};
    /* The hash is shown by its first 16 hex digits. */
    static const struct cli_table_col cols[] = {
        {"NAME", 0, 0}, {"VERSION", 0, 0}, {"BYTES", 1, 0}, {"HASH", 0, 16}, {"ORIGIN", 0, 0}};
    struct cli_table *tab;
    char *pos[1], path[256];
    int npos, status;
    json_t *out, *items, *p;
    size_t i;
    cli_parse(&c, argc, argv, pos, &npos);
    if (npos == 1) {
        char *esc = cli_escape(pos[0], 0);
        snprintf(path, sizeof path, "/v1/packages/%s", esc);
        free(esc);
    } else {
        snprintf(path, sizeof path, "/v1/packages");
    }
    if ((status = cli_get(&c, path, &out)) >= 0) {
        return status;
    }
    tab = cli_table_new(cols, 5);
    items = json_object_get(out, npos == 1 ? "versions" : "items");
    json_array_foreach(items, i, p)
    {
        print_version(tab, npos == 1 ? p : json_object_get(p, "latest"));
    }
    cli_table_print(tab, stdout, 0);
    json_decref(out);
    return 0;
}

/* /v1/packages/NAME/VERSION from NAME@VERSION (segments escaped). */
static void ref_path(struct cli_cmd *c, const char *ref, char *path, size_t cap, char *name,
                     size_t ncap, char *ver, size_t vcap)
{
    char *en, *ev;
    split_ref(c, ref, name, ncap, ver, vcap, 1);
    en = cli_escape(name, 0);
    ev = cli_escape(ver, 0);
    snprintf(path, cap, "/v1/packages/%s/%s", en, ev);
    free(en);
    free(ev);
}

static int pkg_show(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {"package show", "NAME@VERSION", "One package version (JSON).", opts, 1, 1};
    char *pos[1], name[128], ver[256], path[1024];
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    ref_path(&c, pos[0], path, sizeof path, name, sizeof name, ver, sizeof ver);
    return cli_do(&c, "GET", path, NULL);
}

static int pkg_rm(int argc, char **argv)
{
    struct cli_opt opts[] = {ADDR_OPT, {NULL}};
    struct cli_cmd c = {"package rm",
                        "NAME@VERSION",
                        "Remove a package version (servers drop its bytes later).",
                        opts,
                        1,
                        1};
    char *pos[1], name[128], ver[256], path[1024], done[420];
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    ref_path(&c, pos[0], path, sizeof path, name, sizeof name, ver, sizeof ver);
    snprintf(done, sizeof done, "removed %s@%s", name, ver);
    return cli_do(&c, "DELETE", path, done);
}

/* A package version's hashes from the API (GET ...?chunks) into *w; *chunks
 * is fl_malloc'ed (fl_free it). Prints the error and returns 1 on failure. */
int cli_package_want(struct cli_cmd *c, const char *ref, char *name, size_t ncap, char *ver,
                     size_t vcap, struct blob_want *w, uint8_t **chunks)
{
    char path[1040];
    json_t *out, *hs, *h;
    size_t i;
    int status;
    ref_path(c, ref, path, sizeof path - 8, name, ncap, ver, vcap);
    strcat(path, "?chunks");
    status = cli_call(c, "GET", path, NULL, &out);
    if (status != 200) {
        cli_print_error(c->path, status, out);
        return 1;
    }
    memset(w, 0, sizeof *w);
    if (!blob_unhex(json_string_value(json_object_get(out, "hash")), w->hash)) {
        fprintf(stderr, "flotilla %s: the server sent no hash\n", c->path);
        json_decref(out);
        return 1;
    }
    w->size = (uint64_t)json_integer_value(json_object_get(out, "size"));
    w->chunk_size = (uint32_t)json_integer_value(json_object_get(out, "chunk_size"));
    hs = json_object_get(out, "chunk_hashes");
    *chunks = fl_malloc(json_array_size(hs) * 32 + 1);
    if (*chunks == NULL) {
        json_decref(out);
        return 1;
    }
    json_array_foreach(hs, i, h)
    {
        if (!json_is_string(h) || !blob_unhex(json_string_value(h), *chunks + i * 32)) {
            fprintf(stderr, "flotilla %s: a malformed chunk hash\n", c->path);
            fl_free(*chunks);
            *chunks = NULL;
            json_decref(out);
            return 1;
        }
    }
    w->chunks = *chunks;
    w->n_chunks = (uint32_t)json_array_size(hs);
    json_decref(out);
    return 0;
}

/* Fetch a version's bytes over the blob link, as an agent does: needs a
 * certificate of the cluster CA (the API only gives the metadata). */
static int pkg_fetch(int argc, char **argv)
{
    struct cli_opt opts[] = {
        ADDR_OPT,
        {"from", 1, "blob link address(es) host:port[,host:port]", NULL, 0},
        CLI_TLS_OPTS,
        {"out", 1, "output file", NULL, 0},
        {"basis", 1, "an earlier version's file: fetch a delta against it", NULL, 0},
        {"json", 0, "print what was transferred as JSON", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"package fetch",
                        "NAME@VERSION",
                        "Download a package version over the blob link as an agent does: a "
                        "librsync delta against --basis when that pays, else whole in verified, "
                        "resumable chunks; the result's hash is always checked.",
                        opts,
                        1,
                        1};
    char *pos[1], name[128], ver[256], err[FL_ERRMSG_SIZE], from[1024];
    const char *srcs[16];
    unsigned n_src = 0;
    int npos, rv;
    struct cli_tls tls;
    struct blob_want w;
    struct deploy_acquire_stats st;
    char tmp[1100];
    uint8_t *chunks = NULL;
    cli_parse(&c, argc, argv, pos, &npos);
    if (cli_val(&c, "from") == NULL || cli_val(&c, "out") == NULL) {
        cli_die_usage(&c, "--from and --out are required");
    }
    if (cli_package_want(&c, pos[0], name, sizeof name, ver, sizeof ver, &w, &chunks) != 0) {
        return 1;
    }
    cli_load_tls(&c, &tls);
    snprintf(from, sizeof from, "%s", cli_val(&c, "from"));
    for (char *save = NULL, *t = strtok_r(from, ",", &save); t && n_src < 16;
         t = strtok_r(NULL, ",", &save)) {
        srcs[n_src++] = t;
    }
    /* Temporary files (the signature, the delta) beside the output. */
    snprintf(tmp, sizeof tmp, "%s", cli_val(&c, "out"));
    {
        char *slash = strrchr(tmp, '/');
        if (slash == NULL) {
            snprintf(tmp, sizeof tmp, ".");
        } else if (slash == tmp) {
            tmp[1] = '\0';
        } else {
            *slash = '\0';
        }
    }
    rv = deploy_acquire(srcs, n_src, tls.creds, &w, cli_val(&c, "basis"), cli_val(&c, "out"), tmp,
                        &st, err);
    fl_free(chunks);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla package fetch: %s\n", err);
        return 1;
    }
    if (cli_flag(&c, "json")) {
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "name", name, "version", ver,
            "method", st.method == DEPLOY_FETCH_DELTA ? "delta" : "whole", "size",
            (json_int_t)w.size, "bytes_received", (json_int_t)st.bytes_received, "signature_bytes",
            (json_int_t)st.sig_bytes, "delta_bytes", (json_int_t)st.delta_bytes, "whole_bytes",
            (json_int_t)st.whole_bytes, "chunks_resumed", (json_int_t)st.chunks_resumed,
            "delta_refused", st.delta_refused, "source", st.source);
        char *txt = json_dumps(o, JSON_COMPACT);
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(o);
        return 0;
    }
    printf("%s@%s: %s, %llu bytes of %llu from %s", name, ver,
           st.method == DEPLOY_FETCH_DELTA ? "delta" : "whole",
           (unsigned long long)st.bytes_received, (unsigned long long)w.size, st.source);
    if (st.delta_refused[0] != '\0') {
        printf(" (delta not used: %s)", st.delta_refused);
    }
    printf("\n");
    return 0;
}

int cmd_package(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "push") == 0) {
        return pkg_push(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "list") == 0) {
        return pkg_list(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "show") == 0) {
        return pkg_show(argc - 1, argv + 1);
    }
    if (argc >= 1 && (strcmp(argv[0], "rm") == 0 || strcmp(argv[0], "delete") == 0)) {
        return pkg_rm(argc - 1, argv + 1);
    }
    if (argc >= 1 && strcmp(argv[0], "fetch") == 0) {
        return pkg_fetch(argc - 1, argv + 1);
    }
    fprintf(argc >= 1 && strcmp(argv[0], "--help") != 0 ? stderr : stdout,
            "usage: flotilla package push|list|show|rm|fetch ... (each has --help)\n");
    return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}
