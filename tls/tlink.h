/* tls/tlink — one link between Flotilla processes: mutual TLS 1.3 through
 * memory BIOs, bytes in and bytes out (docs/SECURITY.md, "Links").
 *
 * No sockets, no loop, no clock: the owner of a connection feeds what it
 * reads to tlink_recv and writes what the link hands back; it closes the
 * connection on any error. One side opened the connection (the initiator,
 * the TLS client), the other accepted it (the responder, the TLS server).
 * Both present a certificate of the cluster CA (tls/creds.h) and both check
 * the other's during the handshake:
 *
 *   link kind   the responder accepts          the initiator accepts
 *   RAFT        server                         server
 *   AGENT       agent, server (embedded agent) server
 *   BLOB        server, agent, client          server
 *   HTTPS       any of the CA's, or none       server
 *
 * plus the cluster name, the deny-list and, optionally, the peer's name
 * (expect_name). A refused certificate ends the handshake with a TLS alert
 * that says why ("certificate revoked", "access denied").
 *
 * After TLS, each side sends one HELLO record inside it:
 *
 *     "FLT1" | kind (1) | claim length (1) | claim (0..255 bytes)
 *
 * the link kind (a link of one kind cannot be used as another) and a claim
 * (what a Raft server says of itself: "ID@ADDRESS"; empty elsewhere). The
 * initiator sends first (HTTPS links have no HELLO: they open when TLS does,
 * and the API's tokens decide); the responder answers only once it has checked the
 * initiator's certificate and HELLO, so the initiator's OPEN means it was
 * admitted (a TLS 1.3 client finishes before the server has judged its
 * certificate, tls-notes pitfall 3). Then both directions carry application
 * bytes as a stream. A link that fails stays failed: every later call
 * returns the same error. */
#ifndef FL_TLS_TLINK_H
#define FL_TLS_TLINK_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "pki/pki.h"
#include "tls/creds.h"

#define TLINK_CLAIM_MAX     255
#define TLINK_BINDING_BYTES 32

enum tlink_kind {
    TLINK_RAFT = 1,  /* server <-> server Raft traffic */
    TLINK_AGENT = 2, /* agent -> server agent protocol */
    TLINK_BLOB = 3,  /* package blob transfer */
    TLINK_HTTPS = 4, /* the HTTP API: plain TLS, no HELLO; a client certificate is optional */
};

enum tlink_state {
    TLINK_HANDSHAKE = 1, /* TLS or HELLO not done: tlink_send is FL_EINVAL */
    TLINK_OPEN = 2,
    TLINK_FAILED = 3, /* close the connection */
};

struct tlink_config {
    struct tls_creds *creds;
    uint8_t kind;            /* enum tlink_kind */
    const char *claim;       /* NULL or "" = none; at most TLINK_CLAIM_MAX printable bytes */
    const char *expect_name; /* NULL = any; else the peer certificate's name must be this */
};

struct tlink;

/* FL_EINVAL (bad kind, claim), FL_ENOMEM; detail in errmsg. */
int tlink_create(const struct tlink_config *c, int initiator, struct tlink **out, char *errmsg);
void tlink_destroy(struct tlink *l); /* NULL is a no-op */

/* Initiator only, once: append the ClientHello to `wire`. */
int tlink_start(struct tlink *l, struct fl_buf *wire);

/* Feed `n` received bytes (all are consumed). Bytes to send back go to
 * `wire` (also on error: a TLS alert that says why), application bytes to
 * `plain`. FL_OK, or the link's error: FL_EPROTO (handshake refused either
 * way, a record that does not authenticate, a bad HELLO), FL_ENOMEM; detail
 * in tlink_errmsg. */
int tlink_recv(struct tlink *l, const uint8_t *p, size_t n, struct fl_buf *wire,
               struct fl_buf *plain);
/* Encrypt `n` application bytes into `wire` (n 0: nothing). OPEN only. */
int tlink_send(struct tlink *l, const uint8_t *p, size_t n, struct fl_buf *wire);
/* A clean close: append a close_notify to `wire`. */
void tlink_shutdown(struct tlink *l, struct fl_buf *wire);
/* The connection reached EOF: FL_OK if it ended between records, else
 * FL_EPROTO ("truncated") and the link fails. */
int tlink_eof(struct tlink *l);

int tlink_state(const struct tlink *l);
/* The peer's certificate identity (role 0 until its certificate passed). */
const struct pki_identity *tlink_peer(const struct tlink *l);
/* The peer's HELLO claim ("" until OPEN). */
const char *tlink_peer_claim(const struct tlink *l);
/* Once OPEN: a value unique to this session, equal on both ends (the TLS
 * exporter, RFC 8446 §7.5, label "EXPORTER-flotilla-binding"). */
int tlink_binding(const struct tlink *l, unsigned char out[TLINK_BINDING_BYTES]);
const char *tlink_errmsg(const struct tlink *l);
/* Received bytes not yet decrypted (slow-peer accounting, tests). */
size_t tlink_pending(const struct tlink *l);

#endif
