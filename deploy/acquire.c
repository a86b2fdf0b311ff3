/* deploy/acquire — see acquire.h. */
#include "deploy/acquire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"
#include "deploy/delta.h"
#include "deploy/deploy_int.h"

/* Room for the answer's envelope around a delta in one link message. */
#define ENVELOPE 4096

/* A whole (small) file into memory: the signature to send. */
static int read_file(const char *path, uint64_t max, uint8_t **out, size_t *len, char *errmsg)
{
    struct stat sb;
    uint8_t *p;
    size_t got = 0;
    int fd, rv = deploy__open_read(path, &fd, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size > max) {
        close(fd);
        return fl_errf(errmsg, FL_ETOOBIG, "%s: over %llu bytes", path, (unsigned long long)max);
    }
    p = fl_malloc(sb.st_size ? (size_t)sb.st_size : 1);
    if (p == NULL) {
        close(fd);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    rv = deploy__read_full(fd, p, (size_t)sb.st_size, &got, path, errmsg);
    close(fd);
    if (rv != FL_OK) {
        fl_free(p);
        return rv;
    }
    *out = p;
    *len = got;
    return FL_OK;
}

/* The received delta to a file for deploy_patch. */
static int write_file(const char *path, const void *p, size_t n, char *errmsg)
{
    struct deploy__sink k;
    int rv = deploy__sink_open(&k, path, 0, 0, errmsg);
    if (rv == FL_OK) {
        rv = deploy__sink_write(&k, p, n, errmsg);
    }
    if (rv == FL_OK) {
        return deploy__sink_commit(&k, NULL, NULL, errmsg);
    }
    deploy__sink_abort(&k);
    return rv;
}

/* Steps 1-3 of acquire.h. FL_OK with DEST in place; otherwise why not, in
 * st->delta_refused. */
static int try_delta(const char *const *sources, unsigned n_sources, struct tls_creds *creds,
                     const struct blob_want *w, const char *basis, const char *dest,
                     const char *tmp_dir, struct deploy_acquire_stats *st)
{
    char sig[4200], delta[4220], err[FL_ERRMSG_SIZE], why[600] = "";
    uint8_t *sigbuf = NULL;
    size_t siglen = 0;
    struct deploy_delta_stats ds;
    uint64_t limit = deploy_delta_limit(w->size);
    int fd, rv;

    if (deploy_fetch_choose(1, 0, w->size, 0) != DEPLOY_FETCH_DELTA) {
        snprintf(st->delta_refused, sizeof st->delta_refused, "an empty package");
        return FL_EINVAL;
    }
    if (limit > BLOB_MSG_MAX - ENVELOPE) {
        limit = BLOB_MSG_MAX - ENVELOPE;
    }
    snprintf(sig, sizeof sig, "%.4000s/acquire-sig-XXXXXX", tmp_dir);
    fd = mkstemp(sig);
    if (fd < 0) {
        snprintf(st->delta_refused, sizeof st->delta_refused, "temporary file in %.100s: %s",
                 tmp_dir, strerror(errno));
        return FL_EIO;
    }
    close(fd);
    rv = deploy_signature(basis, sig, NULL, &ds, err);
    if (rv == FL_OK) {
        rv = read_file(sig, DEPLOY_SIG_MAX, &sigbuf, &siglen, err);
    }
    unlink(sig);
    if (rv != FL_OK) {
        snprintf(st->delta_refused, sizeof st->delta_refused, "signature of the basis: %.120s",
                 err);
        return rv;
    }
    st->delta_tried = 1;
    st->sig_bytes = siglen;
    rv = FL_ENOTFOUND;
    for (unsigned s = 0; s < n_sources; s++) {
        struct blink *l = NULL;
        struct blob_req q;
        struct blob_resp a;
        memset(&q, 0, sizeof q);
        q.op = BLOB_DELTA;
        memcpy(q.hash, w->hash, sizeof q.hash);
        q.length = limit;
        q.sig = sigbuf;
        q.sig_len = siglen;
        rv = blob_ask(sources[s], creds, &q, &l, &a, err);
        if (rv != FL_OK) {
            snprintf(why, sizeof why, "%.200s: %s", sources[s], err);
            if (rv == FL_ETOOBIG) {
                break; /* every holder would say so: the fetch rule's 80% */
            }
            continue;
        }
        st->delta_bytes += a.data_len;
        st->bytes_received += a.data_len;
        snprintf(delta, sizeof delta, "%s.delta", sig);
        rv = write_file(delta, a.data, a.data_len, err);
        blink_close(l); /* a.data pointed into the link's buffer */
        if (rv == FL_OK) {
            uint8_t got[DEPLOY_HASH_SIZE];
            struct deploy_delta_opts o;
            memset(&o, 0, sizeof o);
            o.max_out = w->size;
            rv = deploy_patch(basis, delta, dest, w->hash, got, &o, &ds, err);
            unlink(delta);
        }
        if (rv == FL_OK) {
            snprintf(st->source, sizeof st->source, "%s", sources[s]);
            st->method = DEPLOY_FETCH_DELTA;
            break;
        }
        /* A delta that does not give the package: never trust another
         * delta for it (the fetch rule's verify_failed). */
        snprintf(why, sizeof why, "%.200s: patched result refused: %s", sources[s], err);
        break;
    }
    fl_free(sigbuf);
    if (rv != FL_OK) {
        snprintf(st->delta_refused, sizeof st->delta_refused, "%.159s", why[0] ? why : "no source");
    }
    return rv;
}

int deploy_acquire(const char *const *sources, unsigned n_sources, struct tls_creds *creds,
                   const struct blob_want *w, const char *basis, const char *dest,
                   const char *tmp_dir, struct deploy_acquire_stats *st, char *errmsg)
{
    struct blob_fetch_stats fs;
    int rv;
    memset(st, 0, sizeof *st);
    if (basis != NULL && access(basis, R_OK) == 0 &&
        try_delta(sources, n_sources, creds, w, basis, dest, tmp_dir, st) == FL_OK) {
        return FL_OK;
    }
    if (st->delta_refused[0] != '\0') {
        FL_INFO("acquire: whole download: %s", st->delta_refused);
    }
    memset(&fs, 0, sizeof fs);
    rv = blob_fetch(sources, n_sources, creds, w, dest, &fs, errmsg);
    st->whole_bytes = fs.bytes_received;
    st->bytes_received += fs.bytes_received;
    st->chunks_resumed = fs.chunks_resumed;
    if (rv == FL_OK) {
        st->method = DEPLOY_FETCH_WHOLE;
        snprintf(st->source, sizeof st->source, "%s", fs.source);
    }
    return rv;
}
