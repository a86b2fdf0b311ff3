/* node/blobs — a server's package bytes (docs/PACKAGES.md).
 *
 * DATA/blobs/<hash hex> holds each package blob this server has, complete
 * and verified (content-addressed: a file there never changes). Three
 * pieces, two of them on their own threads so that disk reads, hashing and
 * delta computation never stall the loop (Raft heartbeats run there):
 *
 *   - the blob link: a listener on --blob-addr; each connection runs the
 *     TLS handshake as the responder (tls/tlink.h kind TLINK_BLOB: servers,
 *     agents and clients of the cluster CA) and
 *     answers STAT/GET/DELTA (blob/blob.h) on its own thread;
 *   - the fetcher: a thread that brings in the blobs that package records
 *     name and this server lacks, from the other servers' blob links, in
 *     verified chunks (blob/blob.c blob_fetch);
 *   - housekeeping on the loop (blobs_tick): it reads the packages table,
 *     hands missing blobs to the fetcher, and removes blobs no record names
 *     any more (after a grace period) and stale uploads. */
#ifndef FL_NODE_BLOBS_H
#define FL_NODE_BLOBS_H

#include <stdint.h>

#include <jansson.h>

struct node_server;
struct blobs;

int blobs_create(struct node_server *s, struct blobs **out, char *errmsg);
/* Stop the threads and close every link (waits for them: bounded by the
 * link timeout of a connection stuck in a write, normally immediate). */
void blobs_destroy(struct blobs *b);
void blobs_tick(struct blobs *b, uint64_t now_ms);
/* 1 if DATA/blobs has the blob. */
int blobs_have(const struct blobs *b, const uint8_t hash[32]);
/* DATA/blobs/<hex> into out. */
void blobs_path(const struct blobs *b, const uint8_t hash[32], char *out, size_t size);
/* DATA/uploads, for the upload routes. */
const char *blobs_upload_dir(const struct blobs *b);
/* Move a verified file into the blob directory (rename). FL_OK also when
 * the blob was already there (the file is removed then). */
int blobs_adopt(struct blobs *b, const char *path, const uint8_t hash[32], char *errmsg);
/* Counters for /v1/status. */
json_t *blobs_status(struct blobs *b);

#endif
