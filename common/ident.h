/* common/ident — an agent's ed25519 identity (docs/SECURITY.md, "Links").
 *
 * Issue 5, "Agent identities": each agent has an ed25519 key pair made on its
 * first start and kept in its data directory; the cluster records the public
 * key at the first join (or on approval) and refuses another key for the same
 * agent id. The agent proves possession of its key in every HELLO by signing
 * the TLS link's session binding (tlink_binding, an RFC 8446 exporter) and its id, so a
 * signature seen on one connection is useless on any other.
 *
 * HELLO auth (96 bytes): public key (32) | signature (64) of
 *   "flotilla agent hello v1" NUL | binding (32) | agent id
 * Standard libsodium formats: crypto_sign (Ed25519) detached signatures. */
#ifndef FL_COMMON_IDENT_H
#define FL_COMMON_IDENT_H

#include <stddef.h>

#define FL_IDENT_PK_BYTES   32
#define FL_IDENT_SK_BYTES   64
#define FL_IDENT_SIG_BYTES  64
#define FL_IDENT_AUTH_BYTES (FL_IDENT_PK_BYTES + FL_IDENT_SIG_BYTES)
#define FL_IDENT_FILE       "identity.key" /* in the agent's data directory */
#define FL_IDENT_FPR_SIZE   48             /* base64 of a public key, NUL included */

/* Load DIR/identity.key (the 32-byte seed, base64, mode 0600), or make it if
 * it does not exist (*created = 1). Errors as fl_secret_file_read/write. */
int fl_ident_load(const char *dir, unsigned char pk[FL_IDENT_PK_BYTES],
                  unsigned char sk[FL_IDENT_SK_BYTES], int *created, char *errmsg);

/* The HELLO auth blob for this session and agent id. */
void fl_ident_hello_sign(const unsigned char sk[FL_IDENT_SK_BYTES], const unsigned char *binding,
                         const char *agent_id, unsigned char auth[FL_IDENT_AUTH_BYTES]);
/* Check a HELLO auth blob; on success (FL_OK) the public key it proves is in
 * pk. FL_EPROTO if it is not 96 bytes or the signature does not verify. */
int fl_ident_hello_verify(const unsigned char *auth, size_t len, const unsigned char *binding,
                          const char *agent_id, unsigned char pk[FL_IDENT_PK_BYTES]);

/* Base64 of a public key: how operators see and compare keys. */
void fl_ident_fingerprint(const unsigned char pk[FL_IDENT_PK_BYTES], char out[FL_IDENT_FPR_SIZE]);

#endif
