/* blob/blink — a blocking link: one TCP connection carrying a tls/tlink link
 * of kind TLINK_BLOB, and length-prefixed messages over it.
 *
 * For the package blob link (docs/PACKAGES.md), where each side is a thread
 * or a short-lived process that does one thing at a time: a server thread
 * answering fetches, a server's background fetcher, an agent acquiring a
 * package. Every read and write is bounded by the link's timeout. A message
 * is `u32 big-endian length` then that many bytes, inside the TLS stream; a
 * length over the receiver's limit closes the link. A server answers
 * servers, agents and clients; a fetcher accepts only a server. */
#ifndef FL_BLOB_BLINK_H
#define FL_BLOB_BLINK_H

#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"
#include "tls/creds.h"

struct blink;

/* Connect to addr ("host:port") and run the handshake as the initiator,
 * with the credentials `creds`; expect_name, if not NULL, pins the server's
 * certificate name. FL_ENET (connect), FL_ETIMEOUT, FL_EPROTO (the peer
 * refused us or failed our checks), FL_ENOMEM; detail in errmsg. */
int blink_connect(const char *addr, struct tls_creds *creds, const char *expect_name,
                  unsigned timeout_ms, struct blink **out, char *errmsg);
/* Run the responder's handshake on an accepted socket (the link owns fd from
 * here, closed by blink_close even on error). */
int blink_accept(int fd, struct tls_creds *creds, unsigned timeout_ms, struct blink **out,
                 char *errmsg);
/* The peer's certificate identity. */
const struct pki_identity *blink_peer(const struct blink *b);
/* Send one message. */
int blink_send(struct blink *b, const void *p, size_t n, char *errmsg);
/* Receive one message of at most max bytes; *p points into the link's
 * buffer, valid until the next call. FL_ENET with "closed" at a clean end
 * between messages; FL_ETOOBIG over max; FL_EPROTO on a bad record. */
int blink_recv(struct blink *b, size_t max, const uint8_t **p, size_t *n, char *errmsg);
void blink_close(struct blink *b); /* NULL is a no-op */

#endif
