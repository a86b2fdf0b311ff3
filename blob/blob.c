/* blob/blob — see blob.h. */
#include "blob/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/mpread.h"

static int buf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

int blob_req_encode(const struct blob_req *r, struct fl_buf *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    return (msgpack_pack_array(&pk, 5) | msgpack_pack_uint8(&pk, (uint8_t)r->op) |
            msgpack_pack_bin_with_body(&pk, r->hash, sizeof r->hash) |
            msgpack_pack_uint64(&pk, r->offset) | msgpack_pack_uint64(&pk, r->length) |
            msgpack_pack_bin_with_body(&pk, r->sig_len ? (const void *)r->sig : "", r->sig_len))
               ? FL_ENOMEM
               : FL_OK;
}

int blob_req_decode(const uint8_t *p, size_t n, struct blob_req *r)
{
    struct fl_mp m;
    uint32_t fields;
    uint64_t op;
    const uint8_t *h;
    size_t hl;
    memset(r, 0, sizeof *r);
    fl_mp_init(&m, p, n);
    if (fl_mp_array(&m, &fields) || fields != 5 || fl_mp_uint(&m, &op) || op < BLOB_STAT ||
        op > BLOB_CHUNKS || fl_mp_bin(&m, &h, &hl) || hl != BLOB_HASH_BYTES ||
        fl_mp_uint(&m, &r->offset) || fl_mp_uint(&m, &r->length) ||
        fl_mp_bin(&m, &r->sig, &r->sig_len) || fl_mp_end(&m)) {
        return FL_EDECODE;
    }
    r->op = (int)op;
    memcpy(r->hash, h, sizeof r->hash);
    return FL_OK;
}

int blob_resp_encode(int status, const char *msg, uint64_t size, const void *data, size_t len,
                     struct fl_buf *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    return (msgpack_pack_array(&pk, 4) | msgpack_pack_uint8(&pk, (uint8_t)status) |
            msgpack_pack_str_with_body(&pk, msg ? msg : "", msg ? strlen(msg) : 0) |
            msgpack_pack_uint64(&pk, size) | msgpack_pack_bin_with_body(&pk, len ? data : "", len))
               ? FL_ENOMEM
               : FL_OK;
}

int blob_resp_decode(const uint8_t *p, size_t n, struct blob_resp *r)
{
    struct fl_mp m;
    uint32_t fields;
    uint64_t st;
    memset(r, 0, sizeof *r);
    fl_mp_init(&m, p, n);
    if (fl_mp_array(&m, &fields) || fields != 4 || fl_mp_uint(&m, &st) || st > 255 ||
        fl_mp_str(&m, &r->msg, &r->msg_len) || fl_mp_uint(&m, &r->size) ||
        fl_mp_bin(&m, &r->data, &r->data_len) || fl_mp_end(&m)) {
        return FL_EDECODE;
    }
    r->status = (int)st;
    return FL_OK;
}

int blob_call(struct blink *l, const struct blob_req *req, struct blob_resp *resp, char *errmsg)
{
    struct fl_buf b;
    const uint8_t *p;
    size_t n;
    int rv;
    fl_buf_init(&b);
    rv = blob_req_encode(req, &b);
    if (rv == FL_OK) {
        rv = blink_send(l, b.data, b.len, errmsg);
    } else {
        fl_errf(errmsg, rv, "out of memory");
    }
    fl_buf_close(&b);
    if (rv != FL_OK) {
        return rv;
    }
    if ((rv = blink_recv(l, BLOB_MSG_MAX, &p, &n, errmsg)) != FL_OK) {
        return rv;
    }
    if (blob_resp_decode(p, n, resp) != FL_OK) {
        return fl_errf(errmsg, FL_EPROTO, "blob link: a malformed answer");
    }
    return FL_OK;
}

uint32_t blob_chunk_size(uint64_t size)
{
    uint64_t c = 1024 * 1024;
    while (size > c * 1024 && c < 64ull * 1024 * 1024) {
        c *= 2;
    }
    return (uint32_t)c;
}

void blob_hex(const uint8_t hash[BLOB_HASH_BYTES], char hex[2 * BLOB_HASH_BYTES + 1])
{
    sodium_bin2hex(hex, 2 * BLOB_HASH_BYTES + 1, hash, BLOB_HASH_BYTES);
}

int blob_unhex(const char *hex, uint8_t hash[BLOB_HASH_BYTES])
{
    size_t n = 0;
    if (strlen(hex) != 2 * BLOB_HASH_BYTES) {
        return 0;
    }
    for (const char *c = hex; *c; c++) {
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) {
            return 0; /* lower case only: the hex is a file name */
        }
    }
    return sodium_hex2bin(hash, BLOB_HASH_BYTES, hex, strlen(hex), NULL, &n, NULL) == 0 &&
           n == BLOB_HASH_BYTES;
}

int blob_hash_file(const char *path, uint32_t chunk_size, uint8_t hash[BLOB_HASH_BYTES],
                   uint64_t *size, uint8_t **chunks, uint32_t *n_chunks, char *errmsg)
{
    crypto_generichash_state whole, part;
    uint8_t *buf = NULL, *ch = NULL;
    size_t bufsz = 256 * 1024, in_chunk = 0;
    uint32_t n = 0, cap = 0;
    uint64_t total = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rv = FL_OK;
    if (fd < 0) {
        return fl_errf(errmsg, errno == ENOENT ? FL_ENOTFOUND : FL_EIO, "%s: %s", path,
                       strerror(errno));
    }
    buf = fl_malloc(bufsz);
    if (buf == NULL) {
        close(fd);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    crypto_generichash_init(&whole, NULL, 0, BLOB_HASH_BYTES);
    crypto_generichash_init(&part, NULL, 0, BLOB_HASH_BYTES);
    for (;;) {
        ssize_t r = read(fd, buf, bufsz);
        size_t off = 0;
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rv = fl_errf(errmsg, FL_EIO, "read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) {
            break;
        }
        crypto_generichash_update(&whole, buf, (size_t)r);
        total += (uint64_t)r;
        while (chunks != NULL && off < (size_t)r) {
            size_t take = chunk_size - in_chunk;
            if (take > (size_t)r - off) {
                take = (size_t)r - off;
            }
            crypto_generichash_update(&part, buf + off, take);
            off += take;
            in_chunk += take;
            if (in_chunk == chunk_size) {
                if (n == cap) {
                    uint8_t *nc = fl_realloc(ch, (size_t)(cap ? cap * 2 : 64) * 32);
                    if (nc == NULL) {
                        rv = fl_errf(errmsg, FL_ENOMEM, "out of memory");
                        goto out;
                    }
                    ch = nc;
                    cap = cap ? cap * 2 : 64;
                }
                crypto_generichash_final(&part, ch + (size_t)n * 32, 32);
                crypto_generichash_init(&part, NULL, 0, BLOB_HASH_BYTES);
                n++;
                in_chunk = 0;
            }
        }
    }
    if (rv == FL_OK && chunks != NULL && in_chunk > 0) {
        if (n == cap) {
            uint8_t *nc = fl_realloc(ch, (size_t)(cap + 1) * 32);
            if (nc == NULL) {
                rv = fl_errf(errmsg, FL_ENOMEM, "out of memory");
                goto out;
            }
            ch = nc;
        }
        crypto_generichash_final(&part, ch + (size_t)n * 32, 32);
        n++;
    }
    if (rv == FL_OK) {
        crypto_generichash_final(&whole, hash, BLOB_HASH_BYTES);
        *size = total;
        if (chunks != NULL) {
            *chunks = ch;
            *n_chunks = n;
            ch = NULL;
        }
    }
out:
    fl_free(ch);
    fl_free(buf);
    close(fd);
    return rv;
}

/* Verify the chunks already in the .part file; returns how many leading
 * chunks are good (the file is cut there). */
static uint32_t resume_point(int fd, const struct blob_want *w, uint8_t *buf)
{
    struct stat sb;
    uint32_t good = 0;
    if (fstat(fd, &sb) != 0) {
        return 0;
    }
    while (good < w->n_chunks) {
        uint64_t off = (uint64_t)good * w->chunk_size;
        size_t len = (size_t)(w->size - off < w->chunk_size ? w->size - off : w->chunk_size);
        uint8_t h[32];
        if ((uint64_t)sb.st_size < off + len || pread(fd, buf, len, (off_t)off) != (ssize_t)len) {
            break;
        }
        crypto_generichash(h, sizeof h, buf, len, NULL, 0);
        if (memcmp(h, w->chunks + (size_t)good * 32, 32) != 0) {
            break;
        }
        good++;
    }
    if (ftruncate(fd, (off_t)((uint64_t)good * w->chunk_size)) != 0) {
        return 0;
    }
    return good;
}

int blob_ask(const char *source, struct tls_creds *creds, const struct blob_req *q,
             struct blink **l, struct blob_resp *resp, char *errmsg)
{
    int rv = blink_connect(source, creds, NULL, BLOB_TIMEOUT_MS, l, errmsg);
    if (rv == FL_OK) {
        rv = blob_call(*l, q, resp, errmsg);
    }
    if (rv == FL_OK && resp->status != FL_OK) {
        rv = resp->status;
        fl_errf(errmsg, rv, "%.*s", (int)resp->msg_len, resp->msg);
    }
    if (rv != FL_OK) {
        blink_close(*l);
        *l = NULL;
    }
    return rv;
}

int blob_want_fetch(const char *const *sources, unsigned n_sources, struct tls_creds *creds,
                    const uint8_t hash[BLOB_HASH_BYTES], uint64_t size, struct blob_want *w,
                    uint8_t **chunks, char *errmsg)
{
    char why[FL_ERRMSG_SIZE * 2] = "", one[FL_ERRMSG_SIZE];
    uint32_t cs = blob_chunk_size(size);
    uint64_t n = size == 0 ? 0 : (size + cs - 1) / cs;
    int rv = FL_ENOTFOUND;
    *chunks = NULL;
    for (unsigned s = 0; s < n_sources; s++) {
        struct blink *l = NULL;
        struct blob_req q;
        struct blob_resp a;
        memset(&q, 0, sizeof q);
        q.op = BLOB_CHUNKS;
        memcpy(q.hash, hash, BLOB_HASH_BYTES);
        rv = blob_ask(sources[s], creds, &q, &l, &a, one);
        if (rv == FL_OK && (a.size != size || a.data_len != n * BLOB_HASH_BYTES)) {
            rv = fl_errf(one, FL_ECORRUPT, "it holds %llu bytes and %zu chunk hashes, not %llu",
                         (unsigned long long)a.size, a.data_len / BLOB_HASH_BYTES,
                         (unsigned long long)size);
        }
        if (rv == FL_OK) {
            *chunks = fl_malloc(a.data_len ? a.data_len : 1);
            if (*chunks == NULL) {
                blink_close(l);
                return fl_errf(errmsg, FL_ENOMEM, "out of memory");
            }
            memcpy(*chunks, a.data, a.data_len);
            blink_close(l);
            memset(w, 0, sizeof *w);
            memcpy(w->hash, hash, BLOB_HASH_BYTES);
            w->size = size;
            w->chunk_size = cs;
            w->chunks = *chunks;
            w->n_chunks = (uint32_t)n;
            return FL_OK;
        }
        blink_close(l);
        size_t wl = strlen(why);
        snprintf(why + wl, sizeof why - wl, "%s%.100s: %s", wl ? "; " : "", sources[s], one);
    }
    return fl_errf(errmsg, rv, "chunk hashes: %s", n_sources ? why : "no source");
}

int blob_fetch(const char *const *sources, unsigned n_sources, struct tls_creds *creds,
               const struct blob_want *w, const char *dest, struct blob_fetch_stats *st,
               char *errmsg)
{
    char part[4200], why[FL_ERRMSG_SIZE * 2] = "", one[FL_ERRMSG_SIZE];
    uint8_t *buf;
    uint32_t next;
    int fd, rv = FL_ENOTFOUND;
    memset(st, 0, sizeof *st);
    if (w->n_chunks == 0 && w->size > 0) {
        return fl_errf(errmsg, FL_EINVAL, "a blob without chunk hashes");
    }
    snprintf(part, sizeof part, "%s.part", dest);
    fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return fl_errf(errmsg, FL_EIO, "%s: %s", part, strerror(errno));
    }
    buf = fl_malloc(w->chunk_size ? w->chunk_size : 1);
    if (buf == NULL) {
        close(fd);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    next = resume_point(fd, w, buf);
    st->chunks_resumed = next;
    for (unsigned s = 0; s < n_sources && next < w->n_chunks; s++) {
        struct blink *l = NULL;
        rv = blink_connect(sources[s], creds, NULL, BLOB_TIMEOUT_MS, &l, one);
        while (rv == FL_OK && next < w->n_chunks) {
            struct blob_req q;
            struct blob_resp a;
            uint64_t off = (uint64_t)next * w->chunk_size;
            size_t len = (size_t)(w->size - off < w->chunk_size ? w->size - off : w->chunk_size);
            uint8_t h[32];
            memset(&q, 0, sizeof q);
            q.op = BLOB_GET;
            memcpy(q.hash, w->hash, sizeof q.hash);
            q.offset = off;
            q.length = len;
            if ((rv = blob_call(l, &q, &a, one)) != FL_OK) {
                break;
            }
            if (a.status != FL_OK) {
                rv = a.status;
                fl_errf(one, rv, "%.*s", (int)a.msg_len, a.msg);
                break;
            }
            st->bytes_received += a.data_len;
            crypto_generichash(h, sizeof h, a.data, a.data_len, NULL, 0);
            if (a.data_len != len || memcmp(h, w->chunks + (size_t)next * 32, 32) != 0) {
                st->chunks_corrupt++;
                rv = fl_errf(one, FL_ECORRUPT, "chunk %u arrived corrupt (hash mismatch)", next);
                break;
            }
            if (pwrite(fd, a.data, a.data_len, (off_t)off) != (ssize_t)a.data_len) {
                rv = fl_errf(one, FL_EIO, "write %s: %s", part, strerror(errno));
                blink_close(l);
                goto out;
            }
            st->chunks_fetched++;
            next++;
        }
        if (rv == FL_OK) {
            snprintf(st->source, sizeof st->source, "%s", sources[s]);
        } else {
            size_t used = strlen(why);
            snprintf(why + used, sizeof why - used, "%s%s: %s", used ? "; " : "", sources[s], one);
        }
        blink_close(l);
    }
    if (next < w->n_chunks) {
        if (rv == FL_OK) {
            rv = FL_ENOTFOUND;
        }
        fl_errf(errmsg, rv, "%s", n_sources ? why : "no server to fetch from");
        goto out;
    }
    {
        uint8_t h[32];
        uint64_t size = 0;
        if (fsync(fd) != 0 ||
            (rv = blob_hash_file(part, w->chunk_size, h, &size, NULL, NULL, errmsg)) != FL_OK) {
            rv = rv != FL_OK ? rv : fl_errf(errmsg, FL_EIO, "fsync %s", part);
            goto out;
        }
        if (size != w->size || memcmp(h, w->hash, sizeof h) != 0) {
            unlink(part);
            rv = fl_errf(errmsg, FL_ECORRUPT, "the fetched blob's hash does not match");
            goto out;
        }
        if (rename(part, dest) != 0) {
            rv = fl_errf(errmsg, FL_EIO, "rename to %s: %s", dest, strerror(errno));
            goto out;
        }
        rv = FL_OK;
    }
out:
    fl_free(buf);
    close(fd);
    return rv;
}
