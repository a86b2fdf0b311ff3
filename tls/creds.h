/* tls/creds — the credentials a process's links and API run on
 * (docs/SECURITY.md, "Identities").
 *
 * One set per process: the cluster CA certificate (the only one trusted),
 * this process's certificate and its private key. From them come the two
 * OpenSSL contexts every link uses, one for dialling and one for
 * accepting, both TLS 1.3 only, without session tickets (a resumed session
 * would skip the certificate checks, tls-notes §2), each verifying the peer
 * against the CA alone. The process's own identity is the one in its
 * certificate (pki_identity_of); a peer of another cluster is refused.
 *
 * A deny-list hook, when set, is asked about every peer certificate at every
 * handshake; it may be called from any thread (blob threads dial too). A
 * reload swaps in new files for the handshakes that follow (certificate
 * rotation); open links keep what they were made with. */
#ifndef FL_TLS_CREDS_H
#define FL_TLS_CREDS_H

#include "pki/pki.h"

struct tls_creds;

struct tls_creds_files {
    const char *ca;   /* PEM: the cluster CA certificate (a bundle: rotation) */
    const char *cert; /* PEM: this process's certificate (chain allowed) */
    const char *key;  /* PEM: its private key, mode 0600 */
};

/* 1 if the peer must be refused. `serial` is lower-case hex. */
typedef int (*tls_deny_fn)(void *ud, const struct pki_identity *peer, const char *serial);

/* Load the files and build both contexts. FL_ENOTFOUND, FL_EIO, FL_EPROTO
 * (key mode, the key does not match the certificate, the certificate does not
 * verify against the CA, it names no flotilla identity), FL_EDECODE, with
 * the path and the reason in errmsg. */
int tls_creds_load(const struct tls_creds_files *f, struct tls_creds **out, char *errmsg);
/* Credentials of a client that has no certificate of its own (the CLI on
 * the API): the CA alone, for dialling HTTPS links. Its identity has role 0. */
int tls_creds_load_ca(const char *ca, struct tls_creds **out, char *errmsg);
/* Load again from `f` (NULL: the same paths). On error nothing changes.
 * The identity may not change (FL_EINVAL): a process keeps its name. */
int tls_creds_reload(struct tls_creds *c, const struct tls_creds_files *f, char *errmsg);
void tls_creds_free(struct tls_creds *c); /* NULL is a no-op; after every link is gone */

/* This process's identity, from its certificate. */
const struct pki_identity *tls_creds_self(const struct tls_creds *c);
void tls_creds_set_deny(struct tls_creds *c, tls_deny_fn fn, void *ud);
/* Paths given to load (for reload and messages). */
const char *tls_creds_cert_path(const struct tls_creds *c);
const char *tls_creds_ca_path(const struct tls_creds *c);

#endif
