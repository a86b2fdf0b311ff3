/* deploy/delta — rsync signatures, deltas and patches of package files, and
 * their content hashes.
 *
 * DESIGN "Package pipeline": "An agent deploying version B when it has
 * version A sends an rsync signature of A, receives a delta (librsync),
 * patches, and verifies the hash of the result; without A, or when the delta
 * would be most of the file, it downloads B whole".
 *
 * Formats. Signatures, deltas and patches are librsync's own formats, byte
 * for byte: a signature uses the RabinKarp rollsum with BLAKE2 strong sums
 * (magic "rs\x01G", librsync's default since 2.2; MD4 is never produced or
 * accepted), so Debian's `rdiff` reads what Flotilla writes and the other way
 * round (tests/unit/test_delta.c checks both directions).
 *
 * Streaming and memory. Every function reads and writes through two buffers
 * of opts->buf_size bytes (DEPLOY_DELTA_BUF by default) and never holds a
 * whole file. deploy_delta() holds the loaded signature: about 40 bytes per
 * block of the basis (about 2 MB for a 100 MB basis at 2 KiB blocks); a
 * signature file larger than DEPLOY_SIG_MAX is refused before loading.
 *
 * Output files. Each output is written to a temporary file in the same
 * directory ("OUT.part-XXXXXX") and renamed onto OUT only when the operation
 * succeeded and, where a hash is expected, matched; on any error nothing is
 * left at OUT or at the temporary name (an existing OUT is left untouched).
 * Outputs are not fsynced: a package is verified by its hash before use, so a
 * file torn by a crash is detected, not trusted.
 *
 * Errors. Functions return 0 or an FL_* code and, when errmsg is not NULL,
 * write the detail (path, librsync's own message) into it
 * (FL_ERRMSG_SIZE bytes):
 *   FL_EIO       reading or writing a file failed (errno in the detail);
 *   FL_ENOTFOUND an input file does not exist;
 *   FL_EDISKFULL no space left for the output;
 *   FL_EDECODE   a signature or delta is not librsync's format, is truncated
 *                or holds impossible values (librsync's RS_BAD_MAGIC,
 *                RS_INPUT_ENDED, RS_CORRUPT), or the delta copies beyond the
 *                end of the basis;
 *   FL_EVERSION  a librsync format this build does not accept (MD4
 *                signatures, RS_UNIMPLEMENTED);
 *   FL_ECORRUPT  the patched result does not have the expected hash (a wrong
 *                basis or a delta whose literal bytes were damaged);
 *   FL_ETOOBIG   an output would exceed opts->max_out, or the signature file
 *                exceeds DEPLOY_SIG_MAX;
 *   FL_ENOMEM    out of memory;
 *   FL_EINVAL    bad arguments (librsync's RS_PARAM_ERROR, RS_INTERNAL_ERROR).
 *
 * Thread safety: the functions keep no shared state except the librsync
 * trace hook, which is installed once and keeps the last message per thread. */
#ifndef FL_DEPLOY_DELTA_H
#define FL_DEPLOY_DELTA_H

#include <stddef.h>
#include <stdint.h>

#define DEPLOY_HASH_SIZE  32 /* BLAKE2b-256 */
#define DEPLOY_HASH_HEX   (2 * DEPLOY_HASH_SIZE + 1)
#define DEPLOY_DELTA_BUF  (256 * 1024)        /* default I/O buffer, each way */
#define DEPLOY_SIG_MAX    (64u * 1024 * 1024) /* largest signature accepted */
#define DEPLOY_BLOCK_MAX  2048                /* Flotilla's largest block length */
#define DEPLOY_STRONG_LEN 16                  /* bytes of BLAKE2 kept per block */
/* The delta is sent only while it is at most this percentage of the package
 * (issue 6: "when the delta would be more than about 80% of the package"). */
#define DEPLOY_DELTA_MAX_PCT 80

struct deploy_delta_opts {
    size_t block_len;  /* signature block length; 0: deploy_sig_params() */
    size_t strong_len; /* bytes of each strong sum, 1..32; 0: DEPLOY_STRONG_LEN */
    size_t buf_size;   /* I/O buffer each way; 0: DEPLOY_DELTA_BUF */
    uint64_t max_out;  /* delta, patch: FL_ETOOBIG when the output would grow
                        * beyond this (a patch's output is the package: pass
                        * its size); 0: no limit */
};

/* What one operation did (any pointer argument of this type may be NULL). */
struct deploy_delta_stats {
    uint64_t in_bytes;   /* bytes of the main input read */
    uint64_t out_bytes;  /* bytes of the output written */
    uint64_t lit_bytes;  /* delta/patch: bytes sent or taken literally */
    uint64_t copy_bytes; /* delta/patch: bytes copied from the basis */
    size_t block_len;    /* signature block length used */
};

/* The signature parameters Flotilla uses for a basis of `size` bytes:
 * librsync's recommended block length (about the square root of the size)
 * capped at DEPLOY_BLOCK_MAX, so that a change costs at most a few KiB of
 * delta beyond its own bytes even in a large package, and DEPLOY_STRONG_LEN
 * bytes of BLAKE2 (the whole-file hash checked after every patch catches the
 * remaining chance of a false block match). */
void deploy_sig_params(uint64_t size, size_t *block_len, size_t *strong_len);

/* Write the signature of file `basis` to `sig_out`. */
int deploy_signature(const char *basis, const char *sig_out, const struct deploy_delta_opts *opts,
                     struct deploy_delta_stats *stats, char *errmsg);

/* Write to `delta_out` the delta that turns the file the signature `sig`
 * describes into `new_file`. With opts->max_out set, stops with FL_ETOOBIG
 * (and no output) as soon as the delta grows past it. */
int deploy_delta(const char *sig, const char *new_file, const char *delta_out,
                 const struct deploy_delta_opts *opts, struct deploy_delta_stats *stats,
                 char *errmsg);

/* Apply `delta` to `basis`, writing the result to `out` while hashing it.
 * A delta may repeat copies of the basis, so its result can be far larger
 * than the delta: set opts->max_out to the expected size.
 * When `expect` is not NULL the result must have that BLAKE2b-256 hash
 * (FL_ECORRUPT otherwise, and `out` is not created); when `got` is not NULL
 * it receives the hash of the result. `basis` and `out` must differ. */
int deploy_patch(const char *basis, const char *delta, const char *out,
                 const uint8_t expect[DEPLOY_HASH_SIZE], uint8_t got[DEPLOY_HASH_SIZE],
                 const struct deploy_delta_opts *opts, struct deploy_delta_stats *stats,
                 char *errmsg);

/* BLAKE2b-256 (libsodium crypto_generichash, no key) of the whole file,
 * streamed; `size` (may be NULL) receives its length. */
int deploy_hash_file(const char *path, uint8_t out[DEPLOY_HASH_SIZE], uint64_t *size, char *errmsg);
/* Lower-case hex of a hash into hex (DEPLOY_HASH_HEX bytes). */
void deploy_hash_hex(const uint8_t h[DEPLOY_HASH_SIZE], char hex[DEPLOY_HASH_HEX]);
/* Parse 64 hex digits; FL_EINVAL if malformed. */
int deploy_hash_parse(const char *hex, uint8_t out[DEPLOY_HASH_SIZE]);

/* How an agent fetches a package version. */
enum deploy_fetch {
    DEPLOY_FETCH_DELTA = 1, /* patch the earlier version with a delta */
    DEPLOY_FETCH_WHOLE = 2  /* download the package whole */
};

/* The fetch rule of issue 6, a pure function: whole when the agent has no
 * earlier version (have_basis 0), when a delta has already failed
 * verification for this version (verify_failed 1), or when the delta
 * (delta_size bytes, once known; pass 0 before it is) exceeds
 * DEPLOY_DELTA_MAX_PCT percent of package_size; a delta otherwise. An empty
 * package is always fetched whole. */
enum deploy_fetch deploy_fetch_choose(int have_basis, int verify_failed, uint64_t package_size,
                                      uint64_t delta_size);
/* The largest delta worth sending for a package of package_size bytes: the
 * value to pass as opts->max_out to deploy_delta(). */
uint64_t deploy_delta_limit(uint64_t package_size);

#endif
