/* pki/ — what the module's files share (not part of the contract). */
#ifndef FL_PKI_PKI_INT_H
#define FL_PKI_PKI_INT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/pki.h"

/* Biggest CSR pki_csr_sign reads. */
#define PKI_CSR_MAX 8192

struct pki_ca {
    X509 *cert;
    EVP_PKEY *key;
    char cluster[PKI_NAME_MAX + 1];
};

/* The reason of the last OpenSSL error ("unknown" if the queue is empty),
 * then the queue cleared. Returns out. */
const char *pki_ossl_reason(char *out, size_t cap);

/* A new P-256 key, or NULL. */
EVP_PKEY *pki_new_key(void);

/* PEM of a certificate / of a private key (unencrypted PKCS#8), fl_malloc'ed
 * and NUL-terminated. FL_ENOMEM. */
int pki_cert_pem(X509 *cert, char **pem, size_t *len, char *errmsg);
int pki_key_pem(EVP_PKEY *key, char **pem, size_t *len, char *errmsg);

/* A NUL-terminated copy of the BIO's contents (fl_malloc). */
int pki_bio_take(BIO *bio, char **pem, size_t *len, char *errmsg);

/* FL_OK if path does not exist (or force); FL_EEXIST with a message. */
int pki_check_absent(const char *path, int force, char *errmsg);
/* Encode key and cert, then write the key (0600) and the certificate (0644);
 * a key whose certificate could not be written is removed again. */
int pki_write_pair(EVP_PKEY *key, X509 *cert, const char *key_path, const char *cert_path,
                   int force, char *errmsg);

#endif
