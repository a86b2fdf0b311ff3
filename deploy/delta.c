/* deploy/delta — librsync jobs driven over file descriptors (deploy/delta.h).
 *
 * Every operation is one librsync job fed by one driver loop: fill the input
 * buffer from a descriptor, run rs_job_iter(), flush what it produced to the
 * output sink, until the job says RS_DONE. The job's own result codes are
 * mapped to FL_* here, with librsync's last trace message as the detail. */
#include <errno.h>
#include <librsync.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "deploy/delta.h"
#include "deploy/deploy_int.h"

/* librsync reports details through a global trace hook; keep the last error
 * line per thread so it can go into errmsg instead of stderr. */
static __thread char last_trace[160];
static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_keep(rs_loglevel level, const char *msg)
{
    (void)level;
    snprintf(last_trace, sizeof last_trace, "%s", msg);
}

static void trace_install(void)
{
    rs_trace_set_level(RS_LOG_ERR);
    rs_trace_to(trace_keep);
}

static void trace_begin(void)
{
    pthread_once(&trace_once, trace_install);
    last_trace[0] = '\0';
}

static int map_rs(rs_result r, const char *what, const char *path, char *errmsg)
{
    int code;
    const char *trail;
    switch (r) {
    case RS_DONE:
        return FL_OK;
    case RS_MEM_ERROR:
        code = FL_ENOMEM;
        break;
    case RS_IO_ERROR:
        code = FL_EIO;
        break;
    case RS_INPUT_ENDED:
    case RS_BAD_MAGIC:
    case RS_CORRUPT:
        code = FL_EDECODE;
        break;
    case RS_UNIMPLEMENTED:
        code = FL_EVERSION;
        break;
    default:
        code = FL_EINVAL;
        break;
    }
    /* librsync's trace line ("librsync: ERROR: (fn) ...") usually repeats
     * rs_strerror(); keep it only when it says more. */
    trail = last_trace;
    if (strstr(trail, rs_strerror(r)) != NULL) {
        trail = "";
    }
    return fl_errf(errmsg, code, "%s %s: librsync: %s%s%.*s%s", what, path, rs_strerror(r),
                   *trail ? " (" : "", (int)strcspn(trail, "\n"), trail, *trail ? ")" : "");
}

/* One job's I/O: input descriptor, optional output sink, both buffers. */
struct drive {
    rs_job_t *job;
    int in_fd;
    const char *in_path;
    struct deploy__sink *out; /* NULL: the job produces nothing (loadsig) */
    char *inbuf, *outbuf;
    size_t size;
    uint64_t in_bytes;
    const char *what;
};

static int fill(struct drive *d, rs_buffers_t *b, char *errmsg)
{
    size_t got;
    int rv;
    if (b->eof_in || b->avail_in == d->size) {
        return FL_OK;
    }
    if (b->avail_in > 0 && b->next_in != d->inbuf) {
        memmove(d->inbuf, b->next_in, b->avail_in);
    }
    rv = deploy__read_full(d->in_fd, d->inbuf + b->avail_in, d->size - b->avail_in, &got,
                           d->in_path, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    b->next_in = d->inbuf;
    b->avail_in += got;
    b->eof_in = b->avail_in < d->size;
    d->in_bytes += got;
    return FL_OK;
}

static int flush(struct drive *d, rs_buffers_t *b, char *errmsg)
{
    size_t n = (size_t)(b->next_out - d->outbuf);
    int rv = FL_OK;
    if (n > 0 && d->out != NULL) {
        rv = deploy__sink_write(d->out, d->outbuf, n, errmsg);
    }
    b->next_out = d->outbuf;
    b->avail_out = d->size;
    return rv;
}

static int run(struct drive *d, char *errmsg)
{
    rs_buffers_t b;
    rs_result r;
    int rv;
    memset(&b, 0, sizeof b);
    b.next_in = d->inbuf;
    b.next_out = d->outbuf;
    b.avail_out = d->size;
    do {
        if ((rv = fill(d, &b, errmsg)) != FL_OK) {
            return rv;
        }
        r = rs_job_iter(d->job, &b);
        if (r != RS_DONE && r != RS_BLOCKED) {
            return map_rs(r, d->what, d->in_path, errmsg);
        }
        if ((rv = flush(d, &b, errmsg)) != FL_OK) {
            return rv;
        }
    } while (r != RS_DONE);
    return FL_OK;
}

static size_t buf_size(const struct deploy_delta_opts *o)
{
    return o != NULL && o->buf_size >= 4096 ? o->buf_size : DEPLOY_DELTA_BUF;
}

/* Allocate the buffers and run the job over in_fd into out. */
static int drive_job(rs_job_t *job, int in_fd, const char *in_path, struct deploy__sink *out,
                     const struct deploy_delta_opts *o, const char *what, uint64_t *in_bytes,
                     char *errmsg)
{
    struct drive d;
    int rv;
    memset(&d, 0, sizeof d);
    d.job = job;
    d.in_fd = in_fd;
    d.in_path = in_path;
    d.out = out;
    d.size = buf_size(o);
    d.what = what;
    d.inbuf = fl_malloc(d.size);
    d.outbuf = fl_malloc(d.size);
    if (d.inbuf == NULL || d.outbuf == NULL) {
        rv = fl_errf(errmsg, FL_ENOMEM, "%s %s: no memory for buffers", what, in_path);
        goto out;
    }
    rv = run(&d, errmsg);
out:
    fl_free(d.inbuf);
    fl_free(d.outbuf);
    if (in_bytes != NULL) {
        *in_bytes = d.in_bytes;
    }
    return rv;
}

static void fill_stats(struct deploy_delta_stats *st, rs_job_t *job, uint64_t in_bytes,
                       uint64_t out_bytes, size_t block_len)
{
    const rs_stats_t *rs = rs_job_statistics(job);
    if (st == NULL) {
        return;
    }
    memset(st, 0, sizeof *st);
    st->in_bytes = in_bytes;
    st->out_bytes = out_bytes;
    st->lit_bytes = rs != NULL ? (uint64_t)rs->lit_bytes : 0;
    st->copy_bytes = rs != NULL ? (uint64_t)rs->copy_bytes : 0;
    st->block_len = block_len != 0 ? block_len : (rs != NULL ? rs->block_len : 0);
}

void deploy_sig_params(uint64_t size, size_t *block_len, size_t *strong_len)
{
    rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
    size_t b = 0, s = 0;
    if (rs_sig_args((rs_long_t)size, &magic, &b, &s) != RS_DONE || b == 0) {
        b = DEPLOY_BLOCK_MAX;
    }
    *block_len = b < DEPLOY_BLOCK_MAX ? b : DEPLOY_BLOCK_MAX;
    *strong_len = DEPLOY_STRONG_LEN;
}

/* ------------------------------------------------------------ signature */

static int sig_args(int fd, const char *path, const struct deploy_delta_opts *o, size_t *block,
                    size_t *strong, char *errmsg)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return deploy__errno(errmsg, errno, "stat", path);
    }
    deploy_sig_params((uint64_t)st.st_size, block, strong);
    if (o != NULL && o->block_len != 0) {
        *block = o->block_len;
    }
    if (o != NULL && o->strong_len != 0) {
        *strong = o->strong_len;
    }
    if (*block < 16 || *block > (1u << 20) || *strong > 32) {
        return fl_errf(errmsg, FL_EINVAL,
                       "signature of %s: block length %zu or strong sum "
                       "length %zu out of range",
                       path, *block, *strong);
    }
    return FL_OK;
}

int deploy_signature(const char *basis, const char *sig_out, const struct deploy_delta_opts *opts,
                     struct deploy_delta_stats *stats, char *errmsg)
{
    struct deploy__sink out;
    rs_job_t *job = NULL;
    size_t block = 0, strong = 0;
    uint64_t in_bytes = 0;
    int fd, rv;
    trace_begin();
    if ((rv = deploy__open_read(basis, &fd, errmsg)) != FL_OK) {
        return rv;
    }
    if ((rv = sig_args(fd, basis, opts, &block, &strong, errmsg)) != FL_OK) {
        goto err_fd;
    }
    if ((rv = deploy__sink_open(&out, sig_out, 0, 0, errmsg)) != FL_OK) {
        goto err_fd;
    }
    job = rs_sig_begin(block, strong, RS_RK_BLAKE2_SIG_MAGIC);
    if (job == NULL) {
        rv = fl_errf(errmsg, FL_ENOMEM, "signature of %s: cannot start librsync job", basis);
        goto err_sink;
    }
    rv = drive_job(job, fd, basis, &out, opts, "signature of", &in_bytes, errmsg);
    if (rv == FL_OK) {
        fill_stats(stats, job, in_bytes, out.written, block);
        rv = deploy__sink_commit(&out, NULL, NULL, errmsg);
    }
    rs_job_free(job);
err_sink:
    deploy__sink_abort(&out);
err_fd:
    close(fd);
    return rv;
}

/* ------------------------------------------------------------ delta */

/* Only BLAKE2 signatures are accepted: MD4 ones allow crafted collisions. */
static int check_sig_magic(int fd, const char *path, char *errmsg)
{
    uint8_t m[4];
    uint32_t magic;
    ssize_t n = pread(fd, m, sizeof m, 0);
    if (n < 0) {
        return deploy__errno(errmsg, errno, "read", path);
    }
    if (n < 4) {
        return fl_errf(errmsg, FL_EDECODE, "signature %s: truncated (%zd bytes)", path, n);
    }
    magic = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
    if (magic == RS_MD4_SIG_MAGIC || magic == RS_RK_MD4_SIG_MAGIC) {
        return fl_errf(errmsg, FL_EVERSION,
                       "signature %s uses MD4, which Flotilla refuses "
                       "(make it with BLAKE2, librsync's default)",
                       path);
    }
    if (magic != RS_BLAKE2_SIG_MAGIC && magic != RS_RK_BLAKE2_SIG_MAGIC) {
        return fl_errf(errmsg, FL_EDECODE, "%s is not a librsync signature (magic %08x)", path,
                       magic);
    }
    return FL_OK;
}

static int load_sig(const char *path, rs_signature_t **sig, const struct deploy_delta_opts *o,
                    char *errmsg)
{
    struct stat st;
    rs_job_t *job;
    int fd, rv;
    rs_result r;
    *sig = NULL;
    if ((rv = deploy__open_read(path, &fd, errmsg)) != FL_OK) {
        return rv;
    }
    if (fstat(fd, &st) != 0) {
        rv = deploy__errno(errmsg, errno, "stat", path);
        goto out;
    }
    if ((uint64_t)st.st_size > DEPLOY_SIG_MAX) {
        rv = fl_errf(errmsg, FL_ETOOBIG, "signature %s: %lld bytes, more than the %u allowed", path,
                     (long long)st.st_size, DEPLOY_SIG_MAX);
        goto out;
    }
    if ((rv = check_sig_magic(fd, path, errmsg)) != FL_OK) {
        goto out;
    }
    job = rs_loadsig_begin(sig);
    if (job == NULL) {
        rv = fl_errf(errmsg, FL_ENOMEM, "signature %s: cannot start librsync job", path);
        goto out;
    }
    rv = drive_job(job, fd, path, NULL, o, "load signature", NULL, errmsg);
    rs_job_free(job);
    if (rv == FL_OK && (r = rs_build_hash_table(*sig)) != RS_DONE) {
        rv = map_rs(r, "index signature", path, errmsg);
    }
out:
    if (rv != FL_OK && *sig != NULL) {
        rs_free_sumset(*sig);
        *sig = NULL;
    }
    close(fd);
    return rv;
}

int deploy_delta(const char *sig_path, const char *new_file, const char *delta_out,
                 const struct deploy_delta_opts *opts, struct deploy_delta_stats *stats,
                 char *errmsg)
{
    struct deploy__sink out;
    rs_signature_t *sig;
    rs_job_t *job;
    uint64_t in_bytes = 0;
    int fd, rv;
    trace_begin();
    if ((rv = load_sig(sig_path, &sig, opts, errmsg)) != FL_OK) {
        return rv;
    }
    if ((rv = deploy__open_read(new_file, &fd, errmsg)) != FL_OK) {
        goto err_sig;
    }
    rv = deploy__sink_open(&out, delta_out, 0, opts != NULL ? opts->max_out : 0, errmsg);
    if (rv != FL_OK) {
        goto err_fd;
    }
    job = rs_delta_begin(sig);
    if (job == NULL) {
        rv = fl_errf(errmsg, FL_ENOMEM, "delta of %s: cannot start librsync job", new_file);
        goto err_sink;
    }
    rv = drive_job(job, fd, new_file, &out, opts, "delta of", &in_bytes, errmsg);
    if (rv == FL_OK) {
        fill_stats(stats, job, in_bytes, out.written, 0);
        rv = deploy__sink_commit(&out, NULL, NULL, errmsg);
    }
    rs_job_free(job);
err_sink:
    deploy__sink_abort(&out);
err_fd:
    close(fd);
err_sig:
    rs_free_sumset(sig);
    return rv;
}

/* ------------------------------------------------------------ patch */

/* The basis is read with pread() at the positions the delta names. */
struct basis {
    int fd;
    const char *path;
    int beyond_end; /* the delta asked for bytes past the end */
    int err;        /* errno of a failed read */
};

static rs_result copy_cb(void *arg, rs_long_t pos, size_t *len, void **buf)
{
    struct basis *b = arg;
    ssize_t n;
    if (pos < 0) {
        b->beyond_end = 1;
        return RS_CORRUPT;
    }
    do {
        n = pread(b->fd, *buf, *len, (off_t)pos);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        b->err = errno;
        return RS_IO_ERROR;
    }
    if (n == 0) {
        b->beyond_end = 1;
        return RS_INPUT_ENDED;
    }
    *len = (size_t)n;
    return RS_DONE;
}

static int patch_error(int rv, const struct basis *b, const char *delta, char *errmsg)
{
    if (b->err != 0) {
        return deploy__errno(errmsg, b->err, "read basis", b->path);
    }
    if (b->beyond_end) {
        return fl_errf(errmsg, FL_EDECODE,
                       "delta %s copies beyond the end of the basis %s "
                       "(wrong basis or damaged delta)",
                       delta, b->path);
    }
    return rv;
}

int deploy_patch(const char *basis, const char *delta, const char *out_path,
                 const uint8_t expect[DEPLOY_HASH_SIZE], uint8_t got[DEPLOY_HASH_SIZE],
                 const struct deploy_delta_opts *opts, struct deploy_delta_stats *stats,
                 char *errmsg)
{
    struct deploy__sink out;
    struct basis b = {.fd = -1, .path = basis};
    rs_job_t *job;
    uint64_t in_bytes = 0;
    int fd, rv;
    trace_begin();
    if ((rv = deploy__open_read(basis, &b.fd, errmsg)) != FL_OK) {
        return rv;
    }
    if ((rv = deploy__open_read(delta, &fd, errmsg)) != FL_OK) {
        goto err_basis;
    }
    rv = deploy__sink_open(&out, out_path, 1, opts != NULL ? opts->max_out : 0, errmsg);
    if (rv != FL_OK) {
        goto err_fd;
    }
    job = rs_patch_begin(copy_cb, &b);
    if (job == NULL) {
        rv = fl_errf(errmsg, FL_ENOMEM, "patch with %s: cannot start librsync job", delta);
        goto err_sink;
    }
    rv = drive_job(job, fd, delta, &out, opts, "patch with delta", &in_bytes, errmsg);
    if (rv != FL_OK) {
        rv = patch_error(rv, &b, delta, errmsg);
    } else {
        fill_stats(stats, job, in_bytes, out.written, 0);
        rv = deploy__sink_commit(&out, expect, got, errmsg);
    }
    rs_job_free(job);
err_sink:
    deploy__sink_abort(&out);
err_fd:
    close(fd);
err_basis:
    close(b.fd);
    return rv;
}

/* ------------------------------------------------------------ hashes */

int deploy_hash_file(const char *path, uint8_t out[DEPLOY_HASH_SIZE], uint64_t *size, char *errmsg)
{
    crypto_generichash_state st;
    uint64_t total = 0;
    uint8_t *buf;
    size_t got;
    int fd, rv;
    if ((rv = deploy__open_read(path, &fd, errmsg)) != FL_OK) {
        return rv;
    }
    buf = fl_malloc(DEPLOY_DELTA_BUF);
    if (buf == NULL) {
        close(fd);
        return fl_errf(errmsg, FL_ENOMEM, "hash of %s: no memory", path);
    }
    crypto_generichash_init(&st, NULL, 0, DEPLOY_HASH_SIZE);
    do {
        rv = deploy__read_full(fd, buf, DEPLOY_DELTA_BUF, &got, path, errmsg);
        crypto_generichash_update(&st, buf, rv == FL_OK ? got : 0);
        total += rv == FL_OK ? got : 0;
    } while (rv == FL_OK && got == DEPLOY_DELTA_BUF);
    if (rv == FL_OK) {
        crypto_generichash_final(&st, out, DEPLOY_HASH_SIZE);
    }
    if (size != NULL) {
        *size = total;
    }
    fl_free(buf);
    close(fd);
    return rv;
}

void deploy_hash_hex(const uint8_t h[DEPLOY_HASH_SIZE], char hex[DEPLOY_HASH_HEX])
{
    sodium_bin2hex(hex, DEPLOY_HASH_HEX, h, DEPLOY_HASH_SIZE);
}

int deploy_hash_parse(const char *hex, uint8_t out[DEPLOY_HASH_SIZE])
{
    size_t n = 0;
    if (strlen(hex) != 2 * DEPLOY_HASH_SIZE ||
        sodium_hex2bin(out, DEPLOY_HASH_SIZE, hex, strlen(hex), NULL, &n, NULL) != 0 ||
        n != DEPLOY_HASH_SIZE) {
        return FL_EINVAL;
    }
    return FL_OK;
}

/* ------------------------------------------------------------ fetch rule */

uint64_t deploy_delta_limit(uint64_t package_size)
{
    return package_size / 100 * DEPLOY_DELTA_MAX_PCT +
           package_size % 100 * DEPLOY_DELTA_MAX_PCT / 100;
}

enum deploy_fetch deploy_fetch_choose(int have_basis, int verify_failed, uint64_t package_size,
                                      uint64_t delta_size)
{
    if (!have_basis || verify_failed || package_size == 0) {
        return DEPLOY_FETCH_WHOLE;
    }
    if (delta_size > deploy_delta_limit(package_size)) {
        return DEPLOY_FETCH_WHOLE;
    }
    return DEPLOY_FETCH_DELTA;
}
