/* pki/pki — the cluster's certificates (docs/SECURITY.md, "Identities").
 *
 * One certificate authority per cluster signs a certificate for each server,
 * agent and client. A certificate names its holder by one URI subject
 * alternative name
 *
 *     flotilla://CLUSTER/ROLE/NAME        ROLE: server, agent or client
 *
 * which is what every link and the API read (the subject CN repeats the
 * name for people; nothing decides on it). Keys are ECDSA P-256 (every TLS
 * client, browsers included, speaks it). Leaf certificates carry
 * basicConstraints CA:FALSE, keyUsage digitalSignature and the extended key
 * usage their role needs: serverAuth and clientAuth for servers (they dial
 * each other), clientAuth for agents and clients.
 *
 * Files: a certificate is PEM (mode 0644), a private key unencrypted PKCS#8
 * PEM (mode 0600, written through a temporary file renamed into place; a key
 * file its group or others may read is refused on load, like ssh). A CA
 * directory holds ca.pem and ca.key.
 *
 * No event loop, no sockets: libcrypto only. */
#ifndef FL_PKI_PKI_H
#define FL_PKI_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define PKI_NAME_MAX     63 /* cluster and holder names: 1..63 of [A-Za-z0-9._-] */
#define PKI_SAN_MAX      16 /* extra DNS/IP names on one certificate */
#define PKI_DAYS_CA      3650
#define PKI_DAYS_DEFAULT 365
#define PKI_CA_CERT      "ca.pem"
#define PKI_CA_KEY       "ca.key"

enum pki_role {
    PKI_ROLE_SERVER = 1,
    PKI_ROLE_AGENT = 2,
    PKI_ROLE_CLIENT = 3,
};

struct pki_identity {
    uint8_t role; /* enum pki_role */
    char cluster[PKI_NAME_MAX + 1];
    char name[PKI_NAME_MAX + 1];
};

/* "server", "agent", "client"; "?" for anything else. */
const char *pki_role_name(int role);
/* The role named `s`, or 0. */
int pki_role_parse(const char *s);
/* 1 if `s` is a valid cluster or holder name. */
int pki_name_valid(const char *s);

/* The identity of a certificate: its one flotilla:// URI SAN, parsed.
 * FL_EPROTO (no such URI, two of them, an unknown role, a bad name, an
 * embedded NUL), detail in errmsg (FL_ERRMSG_SIZE, may be NULL). */
int pki_identity_of(X509 *cert, struct pki_identity *out, char *errmsg);

/* ---- a CA in memory ------------------------------------------------------ */

struct pki_ca; /* the CA certificate and its private key */

/* Make a new CA for `cluster` in `dir` (created if missing): DIR/ca.pem and
 * DIR/ca.key. Existing files are FL_EEXIST unless `force`. days 0 =
 * PKI_DAYS_CA. FL_EINVAL (bad cluster name), FL_EIO. */
int pki_ca_init(const char *dir, const char *cluster, unsigned days, int force, char *errmsg);
/* Load DIR/ca.pem and DIR/ca.key (the key must match the certificate and be
 * mode 0600). FL_ENOTFOUND, FL_EIO, FL_EPROTO (mode, mismatch, not a CA),
 * FL_EDECODE (not PEM). */
int pki_ca_load(const char *dir, struct pki_ca **out, char *errmsg);
void pki_ca_free(struct pki_ca *ca); /* NULL is a no-op */
/* The cluster name the CA's own certificate was made for. */
const char *pki_ca_cluster(const struct pki_ca *ca);

/* Sign a certificate for `pub` naming `who` (whose cluster must be the
 * CA's), valid for `days` (0 = PKI_DAYS_DEFAULT) from five minutes ago.
 * `sans` are extra names, "DNS:host" or "IP:1.2.3.4" (n_sans <=
 * PKI_SAN_MAX); a server certificate also gets DNS:NAME. The serial is 159
 * random bits. *out is the new certificate (X509_free it). FL_EINVAL (bad
 * identity, bad SAN, wrong cluster), FL_ENOMEM. */
int pki_ca_sign(const struct pki_ca *ca, EVP_PKEY *pub, const struct pki_identity *who,
                unsigned days, const char *const *sans, unsigned n_sans, X509 **out, char *errmsg);

/* Issue a new key and certificate and write them to PREFIX.pem and
 * PREFIX.key (existing files: FL_EEXIST unless `force`). */
int pki_issue_files(const struct pki_ca *ca, const struct pki_identity *who, unsigned days,
                    const char *const *sans, unsigned n_sans, const char *prefix, int force,
                    char *errmsg);

/* ---- enrolment ----------------------------------------------------------- */

/* A new P-256 key and a certificate signing request signed by it (proof of
 * possession). The subject CN is `name`; the CA ignores it. *key: free with
 * EVP_PKEY_free; *pem: fl_free. */
int pki_csr_make(const char *name, EVP_PKEY **key, char **pem, size_t *pem_len, char *errmsg);
/* Check a PEM CSR (at most 8 KiB, one request, a P-256 key, a valid
 * self-signature) and sign a certificate for its key naming `who`.
 * *cert_pem: fl_free. FL_EDECODE (not a CSR), FL_EPROTO (bad signature,
 * key type), FL_EINVAL, FL_ENOMEM. */
int pki_csr_sign(const struct pki_ca *ca, const char *csr_pem, size_t len,
                 const struct pki_identity *who, unsigned days, char **cert_pem,
                 size_t *cert_pem_len, char *errmsg);

/* ---- files --------------------------------------------------------------- */

/* Write PEM bytes to `path` with `mode` through a temporary file renamed into
 * place. FL_EEXIST (exists and !force), FL_EIO. */
int pki_write_file(const char *path, const char *pem, size_t len, unsigned mode, int force,
                   char *errmsg);
/* Load a certificate / a private key (refused if group or others may read
 * it). FL_ENOTFOUND, FL_EIO, FL_EPROTO (mode), FL_EDECODE. */
int pki_load_cert(const char *path, X509 **out, char *errmsg);
int pki_load_key(const char *path, EVP_PKEY **out, char *errmsg);
/* The certificate's serial number as lower-case hex (no leading zeros),
 * NUL-terminated; cap >= 48. */
void pki_serial_hex(X509 *cert, char *out, size_t cap);

#endif
