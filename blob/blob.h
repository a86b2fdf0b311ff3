/* blob/blob — the package blob link: its messages, a client that fetches
 * a blob in verified chunks with resume, and the server's answer to one
 * request (docs/PACKAGES.md "Blob link").
 *
 * Over a blob/blink link (tls/tlink.h kind TLINK_BLOB). Each request is
 *   [op, hash(bin 32), offset, length, sig(bin)]
 * and each answer
 *   [status, message, size, data(bin)]
 * with status 0 (FL_OK) or an FL_* code and a message. Ops:
 *   STAT   size = the blob's size
 *   GET    data = bytes [offset, offset+length) (length <= BLOB_GET_MAX;
 *          shorter only at the end of the blob)
 *   DELTA  data = a librsync delta that turns the basis whose signature is
 *          `sig` into the blob; FL_ETOOBIG when it would be over `length`
 *          bytes (the caller's limit, e.g. 80% of the package).
 *   CHUNKS size = the blob's size, data = the BLAKE2b-256 of each chunk of
 *          blob_chunk_size(size) bytes, concatenated: what a fetch needs
 *          when it knows only the package's hash (an agent has no API token).
 *          The server checks the whole hash as it computes them and answers
 *          FL_ECORRUPT if its copy is damaged. */
#ifndef FL_BLOB_BLOB_H
#define FL_BLOB_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "blob/blink.h"
#include "common/buf.h"

#define BLOB_HASH_BYTES 32
#define BLOB_GET_MAX    (4u * 1024u * 1024u)
#define BLOB_MSG_MAX    (80u * 1024u * 1024u) /* a signature or a delta in one message */
#define BLOB_TIMEOUT_MS 30000

enum blob_op { BLOB_STAT = 1, BLOB_GET = 2, BLOB_DELTA = 3, BLOB_CHUNKS = 4 };

struct blob_req {
    int op;
    uint8_t hash[BLOB_HASH_BYTES];
    uint64_t offset, length;
    const uint8_t *sig;
    size_t sig_len;
};

struct blob_resp {
    int status;
    const char *msg;
    size_t msg_len;
    uint64_t size;
    const uint8_t *data;
    size_t data_len;
};

int blob_req_encode(const struct blob_req *r, struct fl_buf *out);
int blob_req_decode(const uint8_t *p, size_t n, struct blob_req *r); /* points into p */
int blob_resp_encode(int status, const char *msg, uint64_t size, const void *data, size_t len,
                     struct fl_buf *out);
int blob_resp_decode(const uint8_t *p, size_t n, struct blob_resp *r);

/* What a fetch needs to know: the package record's hashes. */
struct blob_want {
    uint8_t hash[BLOB_HASH_BYTES];
    uint64_t size;
    uint32_t chunk_size;
    const uint8_t *chunks; /* n_chunks * 32 */
    uint32_t n_chunks;
};

struct blob_fetch_stats {
    uint64_t bytes_received; /* chunk bytes that came over the link */
    uint32_t chunks_fetched;
    uint32_t chunks_resumed; /* verified in DEST.part from an earlier attempt */
    uint32_t chunks_corrupt; /* arrived with a wrong hash (fetched again elsewhere) */
    char source[128];        /* the source that completed the fetch */
};

/* Fetch the blob into `dest`: chunks go to DEST.part, each checked against
 * its hash as it arrives; chunks already in DEST.part are verified and kept
 * (resume). Sources are tried in order; a source that fails, lacks the
 * blob or sends a bad chunk is left for the next. When every chunk is in,
 * the whole-file hash is checked and DEST.part renamed to dest. FL_ENOTFOUND
 * (no source has it), FL_ECORRUPT (bad bytes everywhere), FL_ENET, FL_EIO;
 * errmsg says which source said what. */
int blob_fetch(const char *const *sources, unsigned n_sources, struct tls_creds *creds,
               const struct blob_want *w, const char *dest, struct blob_fetch_stats *st,
               char *errmsg);

/* Fill *w for the blob with this hash and size from the first source that
 * answers CHUNKS; *chunks is fl_malloc'd (fl_free it). The chunk hashes
 * come from a server that proved a server certificate; the fetch
 * still checks the whole hash at the end. */
int blob_want_fetch(const char *const *sources, unsigned n_sources, struct tls_creds *creds,
                    const uint8_t hash[BLOB_HASH_BYTES], uint64_t size, struct blob_want *w,
                    uint8_t **chunks, char *errmsg);
/* One request to one source: connect, send q, and turn an answer with a
 * non-zero status into that error (the server's message in errmsg). On
 * FL_OK *l is the open link that resp points into (blink_close it after
 * using resp); on error the link is closed and *l NULL. */
int blob_ask(const char *source, struct tls_creds *creds, const struct blob_req *q,
             struct blink **l, struct blob_resp *resp, char *errmsg);
/* One request on an open link; resp points into the link's buffer. */
int blob_call(struct blink *l, const struct blob_req *req, struct blob_resp *resp, char *errmsg);

/* BLAKE2b-256 of a file's bytes in chunks of chunk_size: the whole-file
 * hash and, if chunks != NULL, the n*32 chunk hashes (fl_malloc'd, free
 * with fl_free). */
int blob_hash_file(const char *path, uint32_t chunk_size, uint8_t hash[BLOB_HASH_BYTES],
                   uint64_t *size, uint8_t **chunks, uint32_t *n_chunks, char *errmsg);
/* The chunk size for a package of `size` bytes: 1 MiB, doubled until the
 * package has at most 1024 chunks. */
uint32_t blob_chunk_size(uint64_t size);
void blob_hex(const uint8_t hash[BLOB_HASH_BYTES], char hex[2 * BLOB_HASH_BYTES + 1]);
int blob_unhex(const char *hex, uint8_t hash[BLOB_HASH_BYTES]); /* 0 if not 64 hex */

#endif
