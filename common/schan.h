/* common/schan — the secure channel of every Flotilla link.
 *
 * Issue 5: "One secure channel module, used by all links — Raft between
 * servers, agent <-> server, and the blob transfer of the package pipeline.
 * Built from libsodium primitives only." The construction, what is MAC'd and
 * what an attacker without the key can do are in docs/SECURITY.md, "Links".
 *
 * Pure bytes in, bytes out: no sockets, no loop, no clock. The owner of a
 * connection feeds what it reads to schan_recv and writes what schan hands
 * back; it closes the connection on any error. A channel is one connection's
 * worth of state: one initiator (the side that connected) and one responder.
 *
 *   initiator                                   responder
 *   schan_start  -> HELLO ------------------->  schan_recv
 *   schan_recv   <- REPLY <-------------------  (writes REPLY)
 *   (writes CONFIRM) ------------------------>  schan_recv
 *   state OPEN                                  state OPEN
 *   schan_send   -> [u32 len][ciphertext] ...   schan_recv -> plaintext
 *
 * Wire: every message, handshake or data, is a frame `u32 big-endian length,
 * then that many bytes`. Handshake frames hold at most SCHAN_HS_MAX bytes;
 * data frames hold crypto_secretstream_xchacha20poly1305 ciphertext of at
 * most max_frame plaintext bytes. A frame that fails authentication (a
 * tampered, replayed, reordered or truncated frame), a length over the
 * limit, or anything that is not the next expected message puts the channel
 * in SCHAN_FAILED for good: every later call returns the same error, and
 * the caller must close the link.
 *
 * Identities: each side claims a role and a name (a Raft server "3@host:port",
 * an agent "web-1"); both are bound into the handshake transcript, so
 * neither can be changed by anyone without the cluster key. A side may pin
 * the identity it expects of its peer (SCHAN_EIDENTITY text in errmsg).
 * schan_binding gives a per-session value both sides share, for signatures
 * that must not be replayable on another connection (agent identities). */
#ifndef FL_COMMON_SCHAN_H
#define FL_COMMON_SCHAN_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/key.h"

#define SCHAN_NAME_MAX      255                   /* identity name: 1..255 bytes, printable ASCII */
#define SCHAN_HS_MAX        512                   /* largest handshake frame body */
#define SCHAN_FRAME_DEFAULT (1024u * 1024u)       /* default max plaintext per data frame */
#define SCHAN_FRAME_LIMIT   (16u * 1024u * 1024u) /* largest max_frame a caller may set */
#define SCHAN_OVERHEAD      (4u + 17u)            /* length header + secretstream ABYTES */
#define SCHAN_BINDING_BYTES 32

/* Which link a channel is for. Both ends must agree: a handshake captured on
 * one kind of link cannot be used on another. */
enum schan_link {
    SCHAN_LINK_RAFT = 1,  /* server <-> server Raft traffic */
    SCHAN_LINK_AGENT = 2, /* agent <-> server agent protocol */
    SCHAN_LINK_BLOB = 3,  /* package blob transfer */
};

/* The role a side claims. */
enum schan_role {
    SCHAN_ROLE_SERVER = 1,
    SCHAN_ROLE_AGENT = 2,
    SCHAN_ROLE_CLIENT = 3, /* tools (blob fetchers, tests) */
};

enum schan_state {
    SCHAN_HANDSHAKE = 1, /* keys not yet agreed: schan_send is FL_EINVAL */
    SCHAN_OPEN = 2,      /* both directions keyed and confirmed */
    SCHAN_FAILED = 3,    /* an error happened: close the link */
};

struct schan_identity {
    uint8_t role;                  /* enum schan_role */
    char name[SCHAN_NAME_MAX + 1]; /* NUL-terminated */
};

struct schan_config {
    const unsigned char *key;   /* the cluster key, FL_KEY_BYTES; copied */
    uint8_t link;               /* enum schan_link */
    struct schan_identity self; /* what this side claims */
    /* Optional pin on the peer: role 0 = any role; name "" = any name. */
    struct schan_identity expect;
    size_t max_frame; /* largest plaintext per data frame, both ways; 0 = default */
};

struct schan;

/* Allocate a channel (fl_malloc). `initiator` is 1 on the side that opened
 * the connection. FL_EINVAL (bad config: no key, bad link, bad role, empty
 * or non-printable name, max_frame over SCHAN_FRAME_LIMIT) or FL_ENOMEM,
 * detail in errmsg. */
int schan_create(const struct schan_config *c, int initiator, struct schan **out, char *errmsg);
/* Wipe the keys and free. NULL is a no-op. */
void schan_destroy(struct schan *ch);

/* Initiator only, once: append the HELLO frame to `wire`. FL_EINVAL on a
 * responder or a second call, FL_ENOMEM. */
int schan_start(struct schan *ch, struct fl_buf *wire);

/* Feed `n` received bytes. All of them are consumed (an incomplete frame is
 * kept until the rest arrives, at most one frame's worth). Handshake
 * messages to send back are appended to `wire`; decrypted application bytes
 * to `plain` (frame boundaries are not kept: the link is a byte stream).
 * Returns FL_OK, or the channel's error:
 *   FL_ETOOBIG   a length header over the limit
 *   FL_EDECODE   a malformed handshake message (garbage, wrong magic/type)
 *   FL_EPROTO    authentication failed: wrong cluster key, tampered,
 *                replayed, reordered or truncated frame, wrong link kind,
 *                unexpected peer identity
 *   FL_ENOMEM
 * with the detail in schan_errmsg. `wire` and `plain` may get bytes even on
 * error (what was complete before it); the caller closes the link anyway. */
int schan_recv(struct schan *ch, const uint8_t *p, size_t n, struct fl_buf *wire,
               struct fl_buf *plain);

/* Encrypt `n` application bytes (n may be 0: nothing is sent) into one or
 * more data frames of at most max_frame plaintext each, appended to `wire`.
 * Only in SCHAN_OPEN (else FL_EINVAL, or the error of a failed channel);
 * FL_ENOMEM fails the channel (frames already made advanced the stream). */
int schan_send(struct schan *ch, const uint8_t *p, size_t n, struct fl_buf *wire);

/* The peer closed its end: FL_OK if no partial frame was pending, else
 * FL_EPROTO ("truncated frame") and the channel fails. */
int schan_eof(struct schan *ch);

int schan_state(const struct schan *ch);
/* The peer's claimed (and, once OPEN, authenticated) identity; role 0 before
 * its handshake message arrived. */
const struct schan_identity *schan_peer(const struct schan *ch);
/* Once OPEN: a value unique to this session, equal on both ends, derived
 * from the transcript and the cluster key. FL_EINVAL before. */
int schan_binding(const struct schan *ch, unsigned char out[SCHAN_BINDING_BYTES]);
/* Detail of the last error ("" if none). Valid until the next call. */
const char *schan_errmsg(const struct schan *ch);
/* Bytes buffered of an incomplete frame (tests, slowloris accounting). */
size_t schan_pending(const struct schan *ch);

/* Parse a Raft identity name "ID@HOST:PORT". 1 if well-formed. */
int schan_raft_name_parse(const char *name, uint64_t *id, const char **addr);

#endif
