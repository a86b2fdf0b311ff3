/* deploy/acquire — an agent gets a package version over the blob link.
 *
 * Issue 6: "an agent that holds an earlier version sends a librsync
 * signature of it and receives a delta computed by a server holding the new
 * version; it patches and verifies the full hash. Whole download when it has
 * no earlier version, when the delta would be more than about 80% of the
 * package, or when verification fails."
 *
 * deploy_acquire() with a basis (the file of an earlier version):
 *   1. signature of the basis (deploy_signature, librsync format);
 *   2. DELTA to each source in turn (blob/blob.h) with the limit
 *      min(deploy_delta_limit(size), what fits in one message): a source
 *      that lacks the blob or fails is left for the next; FL_ETOOBIG (the
 *      delta would be most of the package) goes straight to step 4;
 *   3. deploy_patch(basis, delta) into DEST with the package's hash: a
 *      result with another hash is refused (the delta or the basis was
 *      bad) and step 4 runs;
 *   4. otherwise, and without a basis: blob_fetch() — whole, in verified
 *      chunks, resumable from DEST.part.
 * DEST appears only complete and verified. The delta is one message (not
 * resumable); a failed delta costs at most that message before the whole
 * download. */
#ifndef FL_DEPLOY_ACQUIRE_H
#define FL_DEPLOY_ACQUIRE_H

#include <stdint.h>

#include "blob/blob.h"

struct deploy_acquire_stats {
    int method;              /* DEPLOY_FETCH_DELTA or DEPLOY_FETCH_WHOLE: what produced DEST */
    int delta_tried;         /* a delta was asked for */
    char delta_refused[160]; /* why the delta path gave way to a whole download, or "" */
    uint64_t sig_bytes;      /* signature sent */
    uint64_t delta_bytes;    /* delta received */
    uint64_t whole_bytes;    /* chunk bytes received by the whole download */
    uint64_t bytes_received; /* delta + whole: package bytes over the link */
    uint32_t chunks_resumed;
    char source[128]; /* the source that completed it */
};

/* Acquire the blob `w` into `dest` from `sources` (blob link addresses),
 * using `basis` (NULL: none) as described above. self is the identity this
 * side claims on the link (an agent's name). FL_OK, or blob_fetch()'s
 * errors; errmsg says what each step said. */
int deploy_acquire(const char *const *sources, unsigned n_sources, struct tls_creds *creds,
                   const struct blob_want *w, const char *basis, const char *dest,
                   const char *tmp_dir, struct deploy_acquire_stats *st, char *errmsg);

#endif
