/* node/blobs — see blobs.h. */
#include "node/blobs.h"
#include "store/iter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/alloc.h"
#include "blob/blob.h"
#include "common/err.h"
#include "common/addrcap.h"
#include "common/log.h"
#include "deploy/delta.h"
#include "node/node_int.h"

#define MAX_CONNS                    64
#define BLOB_HANDSHAKING_PER_ADDRESS 16 /* of them before authenticating, from one address */
#define CHUNK_CACHE                  32 /* chunk lists kept (at most 32 KiB each) */
#define MAX_SOURCES                  16
#define SCAN_EVERY_MS                1000
#define GC_EVERY_MS                  30000
#define GC_GRACE_S                   120         /* an unreferenced blob younger than this stays */
#define UPLOAD_MAX_AGE_S             (24 * 3600) /* uploads never committed */
#define RETRY_MIN_MS                 1000
#define RETRY_MAX_MS                 30000

struct want {
    struct want *next;
    uint8_t hash[32];
    uint64_t size;
    uint32_t chunk_size, n_chunks;
    uint8_t *chunks;
    unsigned n_sources;
    char sources[MAX_SOURCES][STORE_NODE_ADDR_MAX];
    uint64_t next_try_ms;
    unsigned failures;
    int seen; /* still named by a record at the last scan */
};

struct blobs {
    struct node_server *s;
    char dir[4200], upload_dir[4200], tmp_dir[4200];
    struct tls_creds *creds; /* the server's (not owned) */
    int lfd, port;
    pthread_t accept_thread, fetch_thread;
    int accept_started, fetch_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    unsigned n_conns;
    int conn_fds[MAX_CONNS];
    struct want *wants;
    uint64_t last_scan_ms, last_gc_ms;
    /* Chunk lists answered to CHUNKS, computed from the file once per blob
     * (blobs never change under their hash): a deploy to many agents must
     * not hash the package once per agent. Under mu; round-robin. */
    struct chunk_list {
        uint8_t hash[BLOB_HASH_BYTES];
        uint64_t size;
        uint8_t *chunks;
        uint32_t n;
    } chunk_cache[CHUNK_CACHE];
    unsigned chunk_next;
    /* counters (under mu) */
    struct fl_addrcap handshaking; /* per peer address, under mu */
    uint64_t refused_per_address;
    uint64_t served_conns, refused_handshakes, refused_busy, gets, get_bytes, deltas, delta_bytes,
        not_found, fetched, fetch_failures, fetched_bytes, gc_removed, chunk_lists,
        chunk_lists_hashed;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void blobs_path(const struct blobs *b, const uint8_t hash[32], char *out, size_t size)
{
    char hex[65];
    blob_hex(hash, hex);
    snprintf(out, size, "%s/%s", b->dir, hex);
}

int blobs_have(const struct blobs *b, const uint8_t hash[32])
{
    char p[4300];
    blobs_path(b, hash, p, sizeof p);
    return access(p, F_OK) == 0;
}

const char *blobs_upload_dir(const struct blobs *b)
{
    return b->upload_dir;
}

int blobs_adopt(struct blobs *b, const char *path, const uint8_t hash[32], char *errmsg)
{
    char dst[4300];
    blobs_path(b, hash, dst, sizeof dst);
    if (access(dst, F_OK) == 0) {
        unlink(path);
        return FL_OK;
    }
    if (rename(path, dst) != 0) {
        return fl_errf(errmsg, FL_EIO, "moving the upload into %s: %s", b->dir, strerror(errno));
    }
    return FL_OK;
}

/* ---- the blob link: one thread per connection ------------------------------- */

struct conn {
    struct blobs *b;
    int fd, slot;
    char ip[64]; /* holds a place in b->handshaking until its handshake ends */
};

static void count(struct blobs *b, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&b->mu);
    *field += n;
    pthread_mutex_unlock(&b->mu);
}

static int answer(struct blink *l, int status, const char *msg, uint64_t size, const void *data,
                  size_t len)
{
    struct fl_buf out;
    char err[FL_ERRMSG_SIZE];
    int rv;
    fl_buf_init(&out);
    rv = blob_resp_encode(status, msg, size, data, len, &out);
    if (rv == FL_OK) {
        rv = blink_send(l, out.data, out.len, err);
    }
    fl_buf_close(&out);
    return rv;
}

/* DELTA: the signature to a temp file, deploy_delta against the blob. */
static int serve_delta(struct blobs *b, struct blink *l, const struct blob_req *q, const char *path,
                       uint64_t size)
{
    char sig[4300], out[4320], err[FL_ERRMSG_SIZE];
    struct deploy_delta_opts o;
    struct deploy_delta_stats ds;
    uint8_t *data = NULL;
    int fd, rv;
    snprintf(sig, sizeof sig, "%.4200s/sig-XXXXXX", b->tmp_dir);
    fd = mkstemp(sig);
    if (fd < 0) {
        return answer(l, FL_EIO, "cannot write the signature", 0, NULL, 0);
    }
    rv = write(fd, q->sig, q->sig_len) == (ssize_t)q->sig_len ? FL_OK : FL_EIO;
    close(fd);
    snprintf(out, sizeof out, "%s.delta", sig);
    memset(&o, 0, sizeof o);
    o.max_out = q->length ? q->length : size;
    if (rv == FL_OK) {
        rv = deploy_delta(sig, path, out, &o, &ds, err);
    } else {
        fl_errf(err, rv, "cannot write the signature");
    }
    unlink(sig);
    if (rv == FL_OK) {
        fd = open(out, O_RDONLY | O_CLOEXEC);
        data = fd >= 0 ? fl_malloc(ds.out_bytes ? ds.out_bytes : 1) : NULL;
        if (data == NULL || pread(fd, data, ds.out_bytes, 0) != (ssize_t)ds.out_bytes) {
            rv = fl_errf(err, FL_EIO, "cannot read the delta back");
        }
        if (fd >= 0) {
            close(fd);
        }
        unlink(out);
    }
    if (rv == FL_ETOOBIG) {
        fl_free(data);
        char msg[128];
        snprintf(msg, sizeof msg, "the delta would be over the %llu bytes asked for",
                 (unsigned long long)o.max_out);
        return answer(l, rv, msg, size, NULL, 0);
    }
    if (rv != FL_OK) {
        fl_free(data);
        return answer(l, rv, err, size, NULL, 0);
    }
    count(b, &b->deltas, 1);
    count(b, &b->delta_bytes, ds.out_bytes);
    rv = answer(l, FL_OK, "", size, data, ds.out_bytes);
    fl_free(data);
    return rv;
}

/* CHUNKS: the chunk list from the cache, else hashed from the file (which
 * must hash to the name it is stored under) and cached. */
static int serve_chunks(struct blobs *b, struct blink *l, const uint8_t hash[BLOB_HASH_BYTES],
                        const char *path, uint64_t size)
{
    uint8_t h[BLOB_HASH_BYTES], *chunks = NULL;
    uint64_t got = 0;
    uint32_t nc = 0;
    char err[FL_ERRMSG_SIZE];
    int rv;
    pthread_mutex_lock(&b->mu);
    for (unsigned i = 0; i < CHUNK_CACHE; i++) {
        struct chunk_list *c = &b->chunk_cache[i];
        if (c->chunks != NULL && c->size == size && memcmp(c->hash, hash, sizeof h) == 0) {
            chunks = fl_malloc((size_t)c->n * BLOB_HASH_BYTES + 1);
            if (chunks != NULL) {
                memcpy(chunks, c->chunks, (size_t)c->n * BLOB_HASH_BYTES);
                nc = c->n;
            }
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (chunks != NULL) {
        count(b, &b->chunk_lists, 1);
        rv = answer(l, FL_OK, "", size, chunks, (size_t)nc * BLOB_HASH_BYTES);
        fl_free(chunks);
        return rv;
    }
    if (blob_hash_file(path, blob_chunk_size(size), h, &got, &chunks, &nc, err) != FL_OK) {
        return answer(l, FL_EIO, "cannot read the blob", 0, NULL, 0);
    }
    if (memcmp(h, hash, sizeof h) != 0 || got != size) {
        fl_free(chunks);
        return answer(l, FL_ECORRUPT, "this server's copy of the blob is damaged", 0, NULL, 0);
    }
    rv = answer(l, FL_OK, "", size, chunks, (size_t)nc * BLOB_HASH_BYTES);
    pthread_mutex_lock(&b->mu);
    b->chunk_lists++;
    b->chunk_lists_hashed++;
    struct chunk_list *c = &b->chunk_cache[b->chunk_next++ % CHUNK_CACHE];
    fl_free(c->chunks);
    memcpy(c->hash, hash, sizeof c->hash);
    c->size = size;
    c->chunks = chunks; /* the cache owns it now */
    c->n = nc;
    pthread_mutex_unlock(&b->mu);
    return rv;
}

static int serve_one(struct blobs *b, struct blink *l, const uint8_t *p, size_t n)
{
    struct blob_req q;
    char path[4300];
    struct stat sb;
    int fd, rv;
    if (blob_req_decode(p, n, &q) != FL_OK) {
        answer(l, FL_EDECODE, "malformed request", 0, NULL, 0);
        return FL_EDECODE; /* a peer that sends garbage is dropped */
    }
    blobs_path(b, q.hash, path, sizeof path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        count(b, &b->not_found, 1);
        return answer(l, FL_ENOTFOUND, "this server does not hold that blob", 0, NULL, 0);
    }
    if (q.op == BLOB_STAT) {
        rv = answer(l, FL_OK, "", (uint64_t)sb.st_size, NULL, 0);
    } else if (q.op == BLOB_GET) {
        uint8_t *buf;
        ssize_t got;
        if (q.length > BLOB_GET_MAX || q.offset > (uint64_t)sb.st_size) {
            close(fd);
            return answer(l, FL_EINVAL, "a GET beyond the blob or over 4 MiB", 0, NULL, 0);
        }
        if (q.length > (uint64_t)sb.st_size - q.offset) {
            q.length = (uint64_t)sb.st_size - q.offset;
        }
        buf = fl_malloc(q.length ? q.length : 1);
        got = buf ? pread(fd, buf, q.length, (off_t)q.offset) : -1;
        if (got != (ssize_t)q.length) {
            rv = answer(l, FL_EIO, "read error", 0, NULL, 0);
        } else {
            count(b, &b->gets, 1);
            count(b, &b->get_bytes, q.length);
            rv = answer(l, FL_OK, "", (uint64_t)sb.st_size, buf, q.length);
        }
        fl_free(buf);
    } else if (q.op == BLOB_CHUNKS) {
        rv = serve_chunks(b, l, q.hash, path, (uint64_t)sb.st_size);
    } else {
        rv = serve_delta(b, l, &q, path, (uint64_t)sb.st_size);
    }
    close(fd);
    return rv;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct blobs *b = c->b;
    struct blink *l = NULL;
    char err[FL_ERRMSG_SIZE];
    int rv = blink_accept(c->fd, b->creds, 10000, &l, err);
    pthread_mutex_lock(&b->mu);
    fl_addrcap_give(&b->handshaking, c->ip); /* authenticated, or gone */
    pthread_mutex_unlock(&b->mu);
    if (rv != FL_OK) {
        FL_WARN("blob link: refused a connection: %s", err);
        count(b, &b->refused_handshakes, 1);
    } else {
        count(b, &b->served_conns, 1);
    }
    while (rv == FL_OK) {
        const uint8_t *p;
        size_t n;
        rv = blink_recv(l, BLOB_MSG_MAX, &p, &n, err);
        if (rv == FL_OK) {
            rv = serve_one(b, l, p, n);
        }
    }
    if (l != NULL) {
        blink_close(l); /* closes the fd */
    }
    pthread_mutex_lock(&b->mu);
    b->conn_fds[c->slot] = -1;
    b->n_conns--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    fl_free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct blobs *b = arg;
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        char ip[64] = "?";
        int fd = accept4(b->lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        struct conn *c;
        pthread_t t;
        int slot = -1;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            pthread_mutex_lock(&b->mu);
            int stop = b->stopping;
            pthread_mutex_unlock(&b->mu);
            if (stop) {
                return NULL;
            }
            struct timespec pause = {0, 100 * 1000 * 1000};
            nanosleep(&pause, NULL); /* EMFILE and the like: try again shortly */
            continue;
        }
        if (peer.sin_family == AF_INET) {
            inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        }
        pthread_mutex_lock(&b->mu);
        if (b->stopping) {
            pthread_mutex_unlock(&b->mu);
            close(fd);
            return NULL;
        }
        if (!fl_addrcap_take(&b->handshaking, ip)) {
            /* One address may not hold every slot before authenticating. */
            b->refused_per_address++;
            pthread_mutex_unlock(&b->mu);
            close(fd);
            continue;
        }
        for (int i = 0; i < MAX_CONNS && slot < 0; i++) {
            if (b->conn_fds[i] < 0) {
                slot = i;
            }
        }
        if (slot < 0) {
            b->refused_busy++;
            fl_addrcap_give(&b->handshaking, ip);
            pthread_mutex_unlock(&b->mu);
            close(fd);
            continue;
        }
        c = fl_malloc(sizeof *c);
        if (c == NULL) {
            fl_addrcap_give(&b->handshaking, ip);
            pthread_mutex_unlock(&b->mu);
            close(fd);
            continue;
        }
        c->b = b;
        c->fd = fd;
        c->slot = slot;
        snprintf(c->ip, sizeof c->ip, "%s", ip);
        b->conn_fds[slot] = fd;
        b->n_conns++;
        pthread_mutex_unlock(&b->mu);
        if (pthread_create(&t, NULL, conn_main, c) != 0) {
            pthread_mutex_lock(&b->mu);
            b->conn_fds[slot] = -1;
            b->n_conns--;
            fl_addrcap_give(&b->handshaking, ip);
            pthread_mutex_unlock(&b->mu);
            close(fd);
            fl_free(c);
            continue;
        }
        pthread_detach(t);
    }
}

/* ---- the fetcher ------------------------------------------------------------- */

static void want_free(struct want *w)
{
    fl_free(w->chunks);
    fl_free(w);
}

static void *fetch_main(void *arg)
{
    struct blobs *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stopping) {
        uint64_t now = mono_ms();
        struct want *w = NULL, copy;
        const char *srcs[MAX_SOURCES];
        char dest[4300], err[FL_ERRMSG_SIZE], hex[65];
        struct blob_want bw;
        struct blob_fetch_stats st;
        int rv;
        for (struct want *x = b->wants; x != NULL; x = x->next) {
            if (x->next_try_ms <= now) {
                w = x;
                break;
            }
        }
        if (w == NULL) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&b->cv, &b->mu, &until);
            continue;
        }
        copy = *w;
        copy.chunks = fl_malloc((size_t)w->n_chunks * 32 + 1);
        if (copy.chunks == NULL) {
            w->next_try_ms = now + RETRY_MAX_MS;
            continue;
        }
        memcpy(copy.chunks, w->chunks, (size_t)w->n_chunks * 32);
        pthread_mutex_unlock(&b->mu);

        memcpy(bw.hash, copy.hash, 32);
        bw.size = copy.size;
        bw.chunk_size = copy.chunk_size;
        bw.chunks = copy.chunks;
        bw.n_chunks = copy.n_chunks;
        for (unsigned i = 0; i < copy.n_sources; i++) {
            srcs[i] = copy.sources[i];
        }
        blobs_path(b, copy.hash, dest, sizeof dest);
        blob_hex(copy.hash, hex);
        rv = blob_fetch(srcs, copy.n_sources, b->creds, &bw, dest, &st, err);
        fl_free(copy.chunks);

        pthread_mutex_lock(&b->mu);
        for (struct want **pp = &b->wants; *pp != NULL; pp = &(*pp)->next) {
            if (memcmp((*pp)->hash, copy.hash, 32) != 0) {
                continue;
            }
            if (rv == FL_OK) {
                struct want *done = *pp;
                *pp = done->next;
                want_free(done);
            } else {
                unsigned f = ++(*pp)->failures;
                uint64_t wait = RETRY_MIN_MS << (f < 5 ? f : 5);
                (*pp)->next_try_ms = mono_ms() + (wait > RETRY_MAX_MS ? RETRY_MAX_MS : wait);
            }
            break;
        }
        if (rv == FL_OK) {
            b->fetched++;
            b->fetched_bytes += st.bytes_received;
            FL_INFO("blob %.12s: fetched %llu bytes from %s (%u chunks resumed)", hex,
                    (unsigned long long)st.bytes_received, st.source, st.chunks_resumed);
        } else {
            b->fetch_failures++;
            FL_WARN("blob %.12s: fetch failed: %s", hex, err);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ---- housekeeping (loop thread) --------------------------------------------- */

struct hashset {
    uint8_t (*h)[32];
    size_t n, cap;
};

static void hs_add(struct hashset *hs, const uint8_t h[32])
{
    if (hs->n == hs->cap) {
        size_t cap = hs->cap ? hs->cap * 2 : 64;
        void *nh = fl_realloc(hs->h, cap * 32);
        if (nh == NULL) {
            return;
        }
        hs->h = nh;
        hs->cap = cap;
    }
    memcpy(hs->h[hs->n++], h, 32);
}

static int hs_has(const struct hashset *hs, const uint8_t h[32])
{
    for (size_t i = 0; i < hs->n; i++) {
        if (memcmp(hs->h[i], h, 32) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The other servers' blob links, read once per scan. */
struct peers {
    unsigned n;
    char id[MAX_SOURCES][STORE_NODE_ID_MAX];
    char addr[MAX_SOURCES][STORE_NODE_ADDR_MAX];
};

static void read_peers(struct store_txn *t, const char *self, struct peers *out)
{
    struct store_iter it;
    struct store_node nd;
    out->n = 0;
    if (store_iter_open(t, STORE_NODES, NULL, 0, &it) != FL_OK) {
        return;
    }
    while (out->n < MAX_SOURCES && store_node_next(&it, &nd) == FL_OK) {
        if (nd.kind != STORE_NODE_SERVER || nd.blob_addr[0] == '\0' || strcmp(nd.id, self) == 0) {
            continue;
        }
        memcpy(out->id[out->n], nd.id, sizeof out->id[0]);
        memcpy(out->addr[out->n], nd.blob_addr, sizeof out->addr[0]);
        out->n++;
    }
    store_iter_close(&it);
}

/* The sources of a blob: the peers, the origin first. */
static unsigned sources_of(const struct peers *p, const char *origin,
                           char out[MAX_SOURCES][STORE_NODE_ADDR_MAX])
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->n; i++) {
        if (strcmp(p->id[i], origin) == 0) {
            memcpy(out[n++], p->addr[i], STORE_NODE_ADDR_MAX);
        }
    }
    for (unsigned i = 0; i < p->n; i++) {
        if (strcmp(p->id[i], origin) != 0) {
            memcpy(out[n++], p->addr[i], STORE_NODE_ADDR_MAX);
        }
    }
    return n;
}

static void gc(struct blobs *b, const struct hashset *named)
{
    DIR *d = opendir(b->dir);
    struct dirent *e;
    time_t now = time(NULL);
    char path[4600];
    struct stat sb;
    while (d != NULL && (e = readdir(d)) != NULL) {
        uint8_t h[32];
        snprintf(path, sizeof path, "%s/%s", b->dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &sb) != 0 || now - sb.st_mtime < GC_GRACE_S) {
            continue;
        }
        /* A fetch's partial file is named HEX.part: it goes once no record
         * names its blob. */
        if (strlen(e->d_name) >= 64) {
            char hex[65];
            memcpy(hex, e->d_name, 64);
            hex[64] = '\0';
            if (blob_unhex(hex, h) && hs_has(named, h)) {
                continue;
            }
        }
        if (unlink(path) == 0) {
            FL_INFO("blob %s: removed (no package version names it)", e->d_name);
            count(b, &b->gc_removed, 1);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    d = opendir(b->upload_dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", b->upload_dir, e->d_name);
        if (e->d_name[0] != '.' && stat(path, &sb) == 0 && now - sb.st_mtime > UPLOAD_MAX_AGE_S) {
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

void blobs_tick(struct blobs *b, uint64_t now)
{
    struct store_txn *t;
    struct store_iter it;
    struct store_package p;
    struct hashset named = {NULL, 0, 0};
    struct peers peers;
    int do_gc;
    if (now - b->last_scan_ms < SCAN_EVERY_MS) {
        return;
    }
    b->last_scan_ms = now;
    do_gc = now - b->last_gc_ms >= GC_EVERY_MS;
    if (store_begin(b->s->store, 0, &t) != FL_OK) {
        return;
    }
    read_peers(t, b->s->cfg.name, &peers);
    pthread_mutex_lock(&b->mu);
    for (struct want *w = b->wants; w != NULL; w = w->next) {
        w->seen = 0;
    }
    if (store_iter_open(t, STORE_PACKAGES, NULL, 0, &it) == FL_OK) {
        while (store_package_next(&it, &p) == FL_OK) {
            struct want *w;
            hs_add(&named, p.hash);
            for (w = b->wants; w != NULL && memcmp(w->hash, p.hash, 32) != 0; w = w->next) {
            }
            if (w != NULL) {
                w->seen = 1;
                w->n_sources = sources_of(&peers, p.origin, w->sources);
                continue;
            }
            if (blobs_have(b, p.hash)) {
                continue;
            }
            w = fl_calloc(1, sizeof *w);
            if (w == NULL || (w->chunks = fl_malloc((size_t)p.n_chunks * 32 + 1)) == NULL) {
                fl_free(w);
                continue;
            }
            memcpy(w->hash, p.hash, 32);
            w->size = p.size;
            w->chunk_size = p.chunk_size;
            w->n_chunks = p.n_chunks;
            memcpy(w->chunks, p.chunks, (size_t)p.n_chunks * 32);
            w->n_sources = sources_of(&peers, p.origin, w->sources);
            w->seen = 1;
            w->next = b->wants;
            b->wants = w;
            pthread_cond_broadcast(&b->cv);
        }
        store_iter_close(&it);
    }
    /* A version removed before its blob arrived is no longer wanted (the
     * fetcher may be on it: it then finds the entry gone, and gc removes the
     * file later). */
    for (struct want **pp = &b->wants; *pp != NULL;) {
        if (!(*pp)->seen) {
            struct want *gone = *pp;
            *pp = gone->next;
            want_free(gone);
        } else {
            pp = &(*pp)->next;
        }
    }
    pthread_mutex_unlock(&b->mu);
    store_abort(t);
    if (do_gc) {
        b->last_gc_ms = now;
        gc(b, &named);
    }
    fl_free(named.h);
}

json_t *blobs_status(struct blobs *b)
{
    json_t *o;
    unsigned wanted = 0;
    pthread_mutex_lock(&b->mu);
    for (struct want *w = b->wants; w != NULL; w = w->next) {
        wanted++;
    }
    o = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I}",
                  "connections", (int)b->n_conns, "served_connections", (json_int_t)b->served_conns,
                  "refused_handshakes", (json_int_t)b->refused_handshakes, "refused_busy",
                  (json_int_t)b->refused_busy, "refused_per_address",
                  (json_int_t)b->refused_per_address, "gets", (json_int_t)b->gets, "get_bytes",
                  (json_int_t)b->get_bytes, "deltas", (json_int_t)b->deltas, "delta_bytes",
                  (json_int_t)b->delta_bytes, "not_found", (json_int_t)b->not_found, "fetched",
                  (json_int_t)b->fetched, "fetch_failures", (json_int_t)b->fetch_failures,
                  "fetched_bytes", (json_int_t)b->fetched_bytes, "wanted", (int)wanted, "removed",
                  (json_int_t)b->gc_removed);
    json_object_set_new(o, "chunk_lists", json_integer((json_int_t)b->chunk_lists));
    json_object_set_new(o, "chunk_lists_hashed", json_integer((json_int_t)b->chunk_lists_hashed));
    pthread_mutex_unlock(&b->mu);
    return o;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int mkdirs(const char *p)
{
    return mkdir(p, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

static int listen_on(const char *addr, int *port, char *errmsg)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    char host[128];
    const char *colon = strrchr(addr, ':');
    int fd, one = 1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host) {
        return fl_errf(errmsg, FL_EINVAL, "bad blob address %s", addr);
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (host[0] != '\0' && inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return fl_errf(errmsg, FL_EINVAL, "blob address %s: an IPv4 address is needed", addr);
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return fl_errf(errmsg, FL_ENET, "socket: %s", strerror(errno));
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return fl_errf(errmsg, FL_ENET, "blob link on %s: %s", addr, strerror(e));
    }
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

int blobs_create(struct node_server *s, struct blobs **out, char *errmsg)
{
    struct blobs *b = fl_calloc(1, sizeof *b);
    char base[4100];
    *out = NULL;
    if (b == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    b->s = s;
    b->lfd = -1;
    for (int i = 0; i < MAX_CONNS; i++) {
        b->conn_fds[i] = -1;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    fl_addrcap_init(&b->handshaking, BLOB_HANDSHAKING_PER_ADDRESS);
    b->creds = s->creds;
    snprintf(base, sizeof base, "%.4000s", s->cfg.data_dir);
    snprintf(b->dir, sizeof b->dir, "%s/blobs", base);
    snprintf(b->upload_dir, sizeof b->upload_dir, "%s/uploads", base);
    snprintf(b->tmp_dir, sizeof b->tmp_dir, "%s/blobs-tmp", base);
    if (mkdirs(b->dir) || mkdirs(b->upload_dir) || mkdirs(b->tmp_dir)) {
        fl_errf(errmsg, FL_EIO, "creating %s: %s", b->dir, strerror(errno));
        blobs_destroy(b);
        return FL_EIO;
    }
    b->lfd = listen_on(s->cfg.blob_addr, &b->port, errmsg);
    if (b->lfd < 0) {
        int rv = b->lfd;
        b->lfd = -1;
        blobs_destroy(b);
        return rv;
    }
    if (pthread_create(&b->accept_thread, NULL, accept_main, b) != 0 || !(b->accept_started = 1) ||
        pthread_create(&b->fetch_thread, NULL, fetch_main, b) != 0) {
        blobs_destroy(b);
        return fl_errf(errmsg, FL_ENOMEM, "cannot start the blob threads");
    }
    b->fetch_started = 1;
    *out = b;
    return FL_OK;
}

void blobs_destroy(struct blobs *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    for (int i = 0; i < MAX_CONNS; i++) {
        if (b->conn_fds[i] >= 0) {
            shutdown(b->conn_fds[i], SHUT_RDWR);
        }
    }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (b->lfd >= 0) {
        shutdown(b->lfd, SHUT_RDWR); /* wakes accept() */
    }
    if (b->accept_started) {
        pthread_join(b->accept_thread, NULL);
    }
    if (b->fetch_started) {
        pthread_join(b->fetch_thread, NULL);
    }
    pthread_mutex_lock(&b->mu);
    while (b->n_conns > 0) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    if (b->lfd >= 0) {
        close(b->lfd);
    }
    while (b->wants != NULL) {
        struct want *w = b->wants;
        b->wants = w->next;
        want_free(w);
    }
    for (unsigned i = 0; i < CHUNK_CACHE; i++) {
        fl_free(b->chunk_cache[i].chunks);
    }
    fl_addrcap_close(&b->handshaking);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    fl_free(b);
}
