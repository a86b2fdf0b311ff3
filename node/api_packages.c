/* The package API (docs/PACKAGES.md): uploads in chunks to any server, the
 * commit that hashes the upload, keeps its bytes in the blob directory and
 * records the version through Raft, and the package views.
 *
 *   POST   /v1/uploads                 {size}            -> {id, chunk_max}
 *   PUT    /v1/uploads/ID?offset=N     raw bytes          (appends; resumable)
 *   GET    /v1/uploads/ID                                 -> {size, received}
 *   DELETE /v1/uploads/ID
 *   POST   /v1/uploads/ID/commit       {name, version, keep?, hash?}
 *   POST   /v1/internal/packages       a follower's commit, on the leader
 *   GET    /v1/packages[/NAME[/VERSION]]   DELETE /v1/packages/NAME/VERSION
 *
 * Uploads and commits are served by the server that receives them (its
 * disk holds the bytes); the commit of a follower sends the record to the
 * leader over the internal route, with the cluster-key HMAC of servers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sodium.h>

#include "common/alloc.h"
#include "blob/blob.h"
#include "common/err.h"
#include "common/log.h"
#include "common/num.h"
#include "http/client.h"
#include "node/blobs.h"
#include "node/node_int.h"
#include "store/iter.h"

#define UPLOAD_ID_HEX 32
#define PKG_SIZE_MAX  (64ull * 1024 * 1024 * 1024)

/* ---- uploads ----------------------------------------------------------- */

/* Parse an upload id "<32 hex>-<size>" and build its path. 0 after 404. */
static int upload_arg(struct node_server *s, struct http_request *req, const char *id,
                      uint64_t *size, char *path, size_t cap)
{
    size_t n = strlen(id);
    int ok = n > UPLOAD_ID_HEX + 1 && n < UPLOAD_ID_HEX + 22 && id[UPLOAD_ID_HEX] == '-';
    for (size_t i = 0; ok && i < UPLOAD_ID_HEX; i++) {
        ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    }
    if (ok) {
        /* The size is written by uploads_create in the canonical form. */
        ok = fl_num_parse(id + UPLOAD_ID_HEX + 1, 0, PKG_SIZE_MAX, size) == FL_OK;
    }
    if (ok) {
        snprintf(path, cap, "%s/%s", blobs_upload_dir(s->blobs), id);
        ok = access(path, F_OK) == 0;
    }
    if (!ok) {
        node__respond_err(req, FL_ENOTFOUND,
                          "upload %s not found on this server (uploads are kept by the server "
                          "that received them)",
                          id);
    }
    return ok;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

void node__uploads_create(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"size", NULL};
    json_t *body = node__body_object(req, allowed), *v;
    uint8_t rnd[UPLOAD_ID_HEX / 2];
    char hex[UPLOAD_ID_HEX + 1], id[UPLOAD_ID_HEX + 24], path[4400];
    struct statvfs vfs;
    uint64_t size;
    int fd;
    (void)args;
    if (body == NULL) {
        return;
    }
    v = json_object_get(body, "size");
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > PKG_SIZE_MAX) {
        json_decref(body);
        node__respond_err(req, FL_EINVAL, "size (bytes, at most 64 GiB) is required");
        return;
    }
    size = (uint64_t)json_integer_value(v);
    json_decref(body);
    if (statvfs(blobs_upload_dir(s->blobs), &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < size * 2 + s->cfg.min_free_disk) {
        node__respond_err(req, FL_EDISKFULL,
                          "not enough free disk on this server for a %llu-byte package (the "
                          "upload and its blob, plus --min-free-disk)",
                          (unsigned long long)size);
        return;
    }
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(id, sizeof id, "%s-%llu", hex, (unsigned long long)size);
    snprintf(path, sizeof path, "%s/%s", blobs_upload_dir(s->blobs), id);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        node__respond_err(req, FL_EIO, "cannot create the upload: %s", strerror(errno));
        return;
    }
    close(fd);
    http_respond_json(req, 200,
                      json_pack("{s:s, s:I, s:I, s:I}", "id", id, "size", (json_int_t)size,
                                "received", (json_int_t)0, "chunk_max",
                                (json_int_t)s->cfg.max_body));
}

void node__uploads_get(struct node_server *s, struct http_request *req, char **args)
{
    char path[4400];
    uint64_t size;
    if (!upload_arg(s, req, args[0], &size, path, sizeof path)) {
        return;
    }
    http_respond_json(req, 200,
                      json_pack("{s:s, s:I, s:I}", "id", args[0], "size", (json_int_t)size,
                                "received", (json_int_t)file_size(path)));
}

void node__uploads_put(struct node_server *s, struct http_request *req, char **args)
{
    char path[4400];
    uint64_t size, have, offset;
    int fd, rv;
    if (!upload_arg(s, req, args[0], &size, path, sizeof path)) {
        return;
    }
    have = file_size(path);
    rv = node__uint_query(req, "offset", 0, UINT64_MAX, &offset);
    if (rv == 0) {
        node__respond_err(req, FL_EINVAL, "?offset= (the byte offset of this chunk) is required");
    }
    if (rv != 1) {
        return;
    }
    if (offset != have) {
        http_respond_json(req, 409,
                          json_pack("{s:{s:s, s:s}, s:I}", "error", "code", "conflict", "message",
                                    "chunks are appended: send the one at offset received",
                                    "received", (json_int_t)have));
        return;
    }
    if (req->body_len > size - have) {
        node__respond_err(req, FL_ETOOBIG, "the chunk goes past the declared size (%llu bytes)",
                          (unsigned long long)size);
        return;
    }
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, req->body, req->body_len, (off_t)offset) != (ssize_t)req->body_len) {
        int e = errno;
        if (fd >= 0) {
            if (ftruncate(fd, (off_t)have) != 0) {
                FL_WARN("upload %s: cannot cut back a failed write", args[0]);
            }
            close(fd);
        }
        node__respond_err(req, e == ENOSPC ? FL_EDISKFULL : FL_EIO, "writing the chunk: %s",
                          strerror(e));
        return;
    }
    close(fd);
    http_respond_json(req, 200, json_pack("{s:I}", "received", (json_int_t)(have + req->body_len)));
}

void node__uploads_delete(struct node_server *s, struct http_request *req, char **args)
{
    char path[4400];
    uint64_t size;
    if (!upload_arg(s, req, args[0], &size, path, sizeof path)) {
        return;
    }
    unlink(path);
    http_respond_json(req, 200, json_pack("{s:b}", "deleted", 1));
}

/* ---- commit -------------------------------------------------------------- */

struct commit {
    uv_work_t work;
    struct node_server *s;
    struct http_request *req;
    char path[4400];
    char name[STORE_PKG_NAME_MAX], version[STORE_PKG_VERSION_MAX];
    uint32_t keep;
    int have_expect;
    uint8_t expect[32];
    /* results of the work */
    int rv;
    char err[FL_ERRMSG_SIZE];
    uint8_t hash[32];
    uint64_t size;
    uint32_t chunk_size, n_chunks;
    uint8_t *chunks;
};

static json_t *package_json(struct node_server *s, const struct store_package *p, int full)
{
    char hex[65];
    json_t *o;
    blob_hex(p->hash, hex);
    o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:b}", "name", p->name, "version",
                  p->version, "hash", hex, "size", (json_int_t)p->size, "created_ms",
                  (json_int_t)p->created_ms, "index", (json_int_t)p->index, "origin", p->origin,
                  "local", blobs_have(s->blobs, p->hash));
    if (full) {
        json_object_set_new(o, "chunk_size", json_integer(p->chunk_size));
        json_object_set_new(o, "chunks", json_integer(p->n_chunks));
        json_object_set_new(o, "keep", json_integer(p->keep));
    }
    return o;
}

/* The answer to a commit, on the leader once the PACKAGE_PUT applied. */
static void recorded(struct node_server *s, struct http_request *req, int err,
                     const struct fsm_result *res)
{
    json_t *body =
        req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, NULL) : NULL;
    const char *name = NULL, *version = NULL;
    struct store_txn *t;
    struct store_package p;
    json_unpack(body, "{s:s, s:s}", "name", &name, "version", &version);
    if (node__answer_failure(req, err, res, FL_EEXIST,
                             "that version exists with other bytes (a version never changes: "
                             "push a new version)")) {
        json_decref(body);
        return;
    }
    if (name != NULL && version != NULL && store_begin(s->store, 0, &t) == FL_OK) {
        if (store_package_get(t, name, version, &p) == FL_OK) {
            json_t *o = package_json(s, &p, 1);
            json_object_set_new(o, "index", json_integer((json_int_t)res->pkg_index));
            store_abort(t);
            json_decref(body);
            http_respond_json(req, 200, o);
            return;
        }
        store_abort(t);
    }
    json_decref(body);
    /* Recorded and then removed at once by retention (keep smaller than
     * the versions already there is not possible: the new one is newest). */
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->pkg_index));
}

/* POST /v1/internal/packages: {name, version, record: base64}. */
void node__packages_record(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"name", "version", "record", NULL};
    json_t *body = node__body_object(req, allowed);
    const char *name = NULL, *version = NULL, *b64 = NULL;
    uint8_t *rec = NULL;
    size_t len = 0;
    char why[FL_ERRMSG_SIZE];
    struct fsm_cmd c;
    (void)args;
    if (body == NULL) {
        return;
    }
    if (json_unpack(body, "{s:s, s:s, s:s}", "name", &name, "version", &version, "record", &b64) !=
            0 ||
        (rec = fl_malloc(strlen(b64) + 1)) == NULL ||
        sodium_base642bin(rec, strlen(b64) + 1, b64, strlen(b64), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        node__respond_err(req, FL_EINVAL, "name, version and record (base64) are required");
        goto out;
    }
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_PACKAGE_PUT;
    c.u.pkg.name = name;
    c.u.pkg.nlen = strlen(name);
    c.u.pkg.version = version;
    c.u.pkg.vlen = strlen(version);
    c.u.pkg.rec = rec;
    c.u.pkg.reclen = len;
    if (fsm_cmd_validate(&c, why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        goto out;
    }
    node__submit(s, req, &c, recorded);
out:
    fl_free(rec);
    json_decref(body);
}

static void relay_cb(void *data, int err, int status, const char *ct, const uint8_t *body,
                     size_t len)
{
    struct http_request *req = data;
    (void)ct;
    if (err != FL_OK) {
        node__respond_err(req, FL_EUNKNOWN,
                          "the leader did not answer the commit (%s): list the package to see "
                          "whether it was recorded",
                          fl_strerror(err));
        return;
    }
    http_respond(req, status, "application/json", body, len);
}

static void hash_work(uv_work_t *w)
{
    struct commit *c = w->data;
    uint64_t size = file_size(c->path);
    c->chunk_size = blob_chunk_size(size);
    c->rv =
        blob_hash_file(c->path, c->chunk_size, c->hash, &c->size, &c->chunks, &c->n_chunks, c->err);
}

static void hash_done(uv_work_t *w, int status)
{
    struct commit *c = w->data;
    struct node_server *s = c->s;
    struct http_request *req = c->req;
    struct store_package p;
    struct fl_buf rec;
    struct fsm_cmd cmd;
    struct rg_status st;
    char why[FL_ERRMSG_SIZE], hex[65], hex2[65];
    (void)status;
    fl_buf_init(&rec);
    if (s->blobs == NULL) {
        node__respond_err(req, FL_ESHUTDOWN, "the server is shutting down; commit again");
        goto out;
    }
    if (c->rv != FL_OK) {
        node__respond_err(req, c->rv, "hashing the upload: %s", c->err);
        goto out;
    }
    if (c->have_expect && memcmp(c->expect, c->hash, 32) != 0) {
        blob_hex(c->hash, hex);
        blob_hex(c->expect, hex2);
        unlink(c->path);
        node__respond_err(req, FL_EINVAL,
                          "the upload's BLAKE2b-256 is %s, not the %s given: it was corrupted "
                          "on the way and is discarded; push again",
                          hex, hex2);
        goto out;
    }
    if (blobs_adopt(s->blobs, c->path, c->hash, why) != FL_OK) {
        node__respond_err(req, FL_EIO, "%s", why);
        goto out;
    }
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", c->name);
    snprintf(p.version, sizeof p.version, "%s", c->version);
    memcpy(p.hash, c->hash, 32);
    p.size = c->size;
    p.chunk_size = c->chunk_size;
    p.chunks = c->chunks;
    p.n_chunks = c->n_chunks;
    snprintf(p.origin, sizeof p.origin, "%s", s->cfg.name);
    p.keep = c->keep;
    if (store_package_encode(&p, &rec) != FL_OK) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        goto out;
    }
    rg_repl_status(s->repl, &st);
    if (st.state == RAFT_LEADER) {
        memset(&cmd, 0, sizeof cmd);
        cmd.type = FSM_CMD_PACKAGE_PUT;
        cmd.u.pkg.name = p.name;
        cmd.u.pkg.nlen = strlen(p.name);
        cmd.u.pkg.version = p.version;
        cmd.u.pkg.vlen = strlen(p.version);
        cmd.u.pkg.rec = rec.data;
        cmd.u.pkg.reclen = rec.len;
        node__submit(s, req, &cmd, recorded);
    } else {
        char leader[STORE_NODE_ADDR_MAX + 16], hdr[512];
        size_t b64len = sodium_base64_ENCODED_LEN(rec.len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = fl_malloc(b64len);
        char *text = NULL;
        json_t *o;
        if (b64 == NULL || !node__leader_url(s, leader, sizeof leader)) {
            fl_free(b64);
            node__respond_err(req, FL_ENOLEADER,
                              "no leader to record the package with; the "
                              "upload is kept: commit again");
            goto out;
        }
        sodium_bin2base64(b64, b64len, rec.data, rec.len, sodium_base64_VARIANT_ORIGINAL);
        o = json_pack("{s:s, s:s, s:s}", "name", p.name, "version", p.version, "record", b64);
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        fl_free(b64);
        /* No signature: this server's certificate is its proof (docs/ACL.md). */
        snprintf(hdr, sizeof hdr, "Content-Type: application/json\r\n");
        if (http_client_request(s->loop, leader, "POST", "/v1/internal/packages", hdr, text,
                                strlen(text), 30000, relay_cb, req) != FL_OK) {
            node__respond_err(req, FL_ENET, "cannot reach the leader at %s", leader);
        }
        free(text);
    }
out:
    fl_buf_close(&rec);
    fl_free(c->chunks);
    fl_free(c);
}

void node__uploads_commit(struct node_server *s, struct http_request *req, char **args)
{
    static const char *const allowed[] = {"name", "version", "keep", "hash", NULL};
    json_t *body, *v;
    struct commit *c;
    const char *name = NULL, *version = NULL;
    char why[FL_ERRMSG_SIZE];
    uint64_t size;
    c = fl_calloc(1, sizeof *c);
    if (c == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    if (!upload_arg(s, req, args[0], &size, c->path, sizeof c->path)) {
        fl_free(c);
        return;
    }
    body = node__body_object(req, allowed);
    if (body == NULL) {
        fl_free(c);
        return;
    }
    json_unpack(body, "{s?s, s?s}", "name", &name, "version", &version);
    if (name == NULL || fsm_package_name_check(name, strlen(name), why) != FL_OK ||
        version == NULL || fsm_package_version_check(version, strlen(version), why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s",
                          name && version ? why : "name and version are required");
        goto fail;
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->version, sizeof c->version, "%s", version);
    c->keep = STORE_PKG_KEEP_DEFAULT;
    v = json_object_get(body, "keep");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > STORE_PKG_KEEP_MAX) {
            node__respond_err(req, FL_EINVAL, "keep is 1-%d versions", STORE_PKG_KEEP_MAX);
            goto fail;
        }
        c->keep = (uint32_t)json_integer_value(v);
    }
    v = json_object_get(body, "hash");
    if (v != NULL) {
        if (!json_is_string(v) || !blob_unhex(json_string_value(v), c->expect)) {
            node__respond_err(req, FL_EINVAL, "hash is 64 lower-case hex digits (BLAKE2b-256)");
            goto fail;
        }
        c->have_expect = 1;
    }
    if (file_size(c->path) != size) {
        http_respond_json(req, 409,
                          json_pack("{s:{s:s, s:s}, s:I, s:I}", "error", "code", "conflict",
                                    "message", "the upload is incomplete", "received",
                                    (json_int_t)file_size(c->path), "size", (json_int_t)size));
        goto fail;
    }
    json_decref(body);
    c->s = s;
    c->req = req;
    c->work.data = c;
    if (uv_queue_work(s->loop, &c->work, hash_work, hash_done) != 0) {
        node__respond_err(req, FL_ENOMEM, "cannot queue the hashing");
        fl_free(c);
    }
    return;
fail:
    json_decref(body);
    fl_free(c);
}

/* ---- views ------------------------------------------------------------------ */

static int by_index_desc(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "index"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "index"));
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Versions of `name` (all names when NULL), newest first. */
static int collect(struct node_server *s, const char *name, json_t *out)
{
    struct store_txn *t;
    struct store_iter it;
    struct store_package p;
    size_t nlen = name ? strlen(name) : 0;
    int rv = store_begin(s->store, 0, &t);
    if (rv != FL_OK) {
        return rv;
    }
    /* The key is name '\0' version: the prefix is the name and its NUL. */
    rv = store_iter_open(t, STORE_PACKAGES, name, name ? nlen + 1 : 0, &it);
    while (rv == FL_OK && store_package_next(&it, &p) == FL_OK) {
        json_array_append_new(out, package_json(s, &p, 0));
    }
    store_iter_close(&it);
    store_abort(t);
    return rv;
}

static void sort_desc(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **items = fl_malloc((n ? n : 1) * sizeof *items);
    if (items == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        items[i] = json_incref(json_array_get(arr, i));
    }
    qsort(items, n, sizeof *items, by_index_desc);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, items[i]);
    }
    fl_free(items);
}

void node__packages_list(struct node_server *s, struct http_request *req, char **args)
{
    json_t *all = json_array(), *items = json_array(), *byname = json_object();
    size_t i;
    json_t *p;
    (void)args;
    if (collect(s, NULL, all) != FL_OK) {
        json_decref(all);
        json_decref(items);
        json_decref(byname);
        node__respond_err(req, FL_EIO, "%s", store_errmsg(s->store));
        return;
    }
    sort_desc(all);
    json_array_foreach(all, i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        json_t *e = json_object_get(byname, name);
        if (e == NULL) {
            e = json_pack("{s:s, s:i, s:O}", "name", name, "versions", 0, "latest", p);
            json_object_set_new(byname, name, e);
            json_array_append(items, e);
        }
        json_object_set_new(e, "versions",
                            json_integer(json_integer_value(json_object_get(e, "versions")) + 1));
    }
    json_decref(all);
    json_decref(byname);
    http_respond_json(req, 200, json_pack("{s:o}", "items", items));
}

void node__packages_versions(struct node_server *s, struct http_request *req, char **args)
{
    json_t *items = json_array();
    if (collect(s, args[0], items) != FL_OK) {
        json_decref(items);
        node__respond_err(req, FL_EIO, "%s", store_errmsg(s->store));
        return;
    }
    if (json_array_size(items) == 0) {
        json_decref(items);
        node__respond_err(req, FL_ENOTFOUND, "package %s not found", args[0]);
        return;
    }
    sort_desc(items);
    http_respond_json(req, 200, json_pack("{s:s, s:o}", "name", args[0], "versions", items));
}

void node__packages_get(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_package p;
    int rv = store_begin(s->store, 0, &t);
    if (rv == FL_OK) {
        rv = store_package_get(t, args[0], args[1], &p);
        if (rv == FL_OK) {
            json_t *o = package_json(s, &p, 1);
            char v[8];
            if (http_query_param(req, "chunks", v, sizeof v) == 1) {
                json_t *hs = json_array();
                char hex[65];
                for (uint32_t i = 0; i < p.n_chunks; i++) {
                    blob_hex(p.chunks + (size_t)i * 32, hex);
                    json_array_append_new(hs, json_string(hex));
                }
                json_object_set_new(o, "chunk_hashes", hs);
            }
            store_abort(t);
            http_respond_json(req, 200, o);
            return;
        }
        store_abort(t);
    }
    if (rv == FL_ENOTFOUND) {
        node__respond_err(req, rv, "package %s@%s not found", args[0], args[1]);
    } else {
        node__respond_err(req, rv, "%s", store_errmsg(s->store));
    }
}

static void removed(struct node_server *s, struct http_request *req, int err,
                    const struct fsm_result *res)
{
    (void)s;
    if (node__answer_failure(req, err, res, FL_ENOTFOUND, "no such package version")) {
        return;
    }
    http_respond_json(req, 200, json_pack("{s:I}", "index", (json_int_t)res->index));
}

void node__packages_delete(struct node_server *s, struct http_request *req, char **args)
{
    struct fsm_cmd c;
    char why[FL_ERRMSG_SIZE];
    memset(&c, 0, sizeof c);
    c.type = FSM_CMD_PACKAGE_RM;
    c.u.pkg.name = args[0];
    c.u.pkg.nlen = strlen(args[0]);
    c.u.pkg.version = args[1];
    c.u.pkg.vlen = strlen(args[1]);
    if (fsm_cmd_validate(&c, why) != FL_OK) {
        node__respond_err(req, FL_EINVAL, "%s", why);
        return;
    }
    node__submit(s, req, &c, removed);
}
