/* common/blink — a blocking secure link: one TCP connection carrying a
 * common/schan channel, and length-prefixed messages over it.
 *
 * For the package blob link (docs/PACKAGES.md), where each side is a thread
 * or a short-lived process that does one thing at a time: a server thread
 * answering fetches, a server's background fetcher, an agent acquiring a
 * package. Every read and write is bounded by the link's timeout. A message
 * is `u32 big-endian length` then that many bytes, inside the encrypted
 * stream; a length over the receiver's limit closes the link. */
#ifndef FL_COMMON_BLINK_H
#define FL_COMMON_BLINK_H

#include <stddef.h>
#include <stdint.h>

#include "common/schan.h"

struct blink;

/* Connect to addr ("host:port") and run the handshake as the initiator of
 * link kind `link`, claiming `self`, with an optional pin on the peer
 * (expect may be NULL). FL_ENET (connect), FL_ETIMEOUT, FL_EPROTO (wrong
 * key, wrong identity: the peer refused or failed authentication), FL_ENOMEM;
 * detail in errmsg. */
int blink_connect(const char *addr, const unsigned char *key, uint8_t link,
                  const struct schan_identity *self, const struct schan_identity *expect,
                  unsigned timeout_ms, struct blink **out, char *errmsg);
/* Run the responder's handshake on an accepted socket (the link owns fd from
 * here, closed by blink_close even on error). */
int blink_accept(int fd, const unsigned char *key, uint8_t link, const struct schan_identity *self,
                 unsigned timeout_ms, struct blink **out, char *errmsg);
/* Send one message. */
int blink_send(struct blink *b, const void *p, size_t n, char *errmsg);
/* Receive one message of at most max bytes; *p points into the link's
 * buffer, valid until the next call. FL_ENET with "closed" at a clean end
 * between messages; FL_ETOOBIG over max; FL_EPROTO on a bad frame. */
int blink_recv(struct blink *b, size_t max, const uint8_t **p, size_t *n, char *errmsg);
void blink_close(struct blink *b); /* NULL is a no-op */

#endif
