/* Certificate signing requests under fuzzing (pki_csr_sign, what a server
 * runs on an enrolling agent's request): one input, two ways, by its first
 * byte. Shared by fuzz/fuzz_csr.c and the corpus replay in
 * tests/unit/test_fuzz_corpus.c.
 *
 *   0  the rest is the PEM text as sent
 *   1  the rest is DER, wrapped in PEM here (so mutations reach the ASN.1)
 *
 * Invariant: a request that is signed gives a certificate that names exactly
 * the identity the server chose (never the request's subject) for exactly
 * the request's public key, and verifies against the CA. Returns 1 if the
 * request was signed. The CA is made once per process by pki/. */
#ifndef FL_FUZZ_CSR_DRIVER_H
#define FL_FUZZ_CSR_DRIVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/alloc.h"
#include "common/err.h"
#include "pki/pki.h"

static struct pki_ca *csr_fuzz_ca;
static X509 *csr_fuzz_ca_cert;

static inline void csr_fuzz_init(void)
{
    char dir[64] = "/tmp/flotilla-fuzz-csr.XXXXXX", path[128], cmd[128];
    if (csr_fuzz_ca != NULL) {
        return;
    }
    if (mkdtemp(dir) == NULL || pki_ca_init(dir, "fuzz", 0, 0, NULL) != FL_OK ||
        pki_ca_load(dir, &csr_fuzz_ca, NULL) != FL_OK) {
        abort();
    }
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    if (pki_load_cert(path, &csr_fuzz_ca_cert, NULL) != FL_OK) {
        abort();
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        abort();
    }
}

/* PEM of `n` DER bytes as a certificate request (fl_malloc'd). */
static inline char *csr_fuzz_pem(const uint8_t *der, size_t n, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    long k;
    if (b == NULL || PEM_write_bio(b, "CERTIFICATE REQUEST", "", der, (long)n) <= 0) {
        BIO_free(b);
        return NULL;
    }
    k = BIO_get_mem_data(b, &data);
    out = k > 0 ? fl_malloc((size_t)k + 1) : NULL;
    if (out != NULL) {
        memcpy(out, data, (size_t)k);
        out[k] = '\0';
        *len = (size_t)k;
    }
    BIO_free(b);
    return out;
}

static inline int csr_fuzz_one(const uint8_t *data, size_t size)
{
    struct pki_identity who = {PKI_ROLE_AGENT, "fuzz", "web-1"}, got;
    char *pem = NULL, *cert_pem = NULL;
    size_t pem_len = 0, cert_len = 0;
    int signed_ok = 0;
    csr_fuzz_init();
    if (size == 0) {
        return 0;
    }
    if (data[0] % 2 == 0) {
        pem = fl_malloc(size);
        if (pem == NULL) {
            return 0;
        }
        memcpy(pem, data + 1, size - 1);
        pem_len = size - 1;
    } else if ((pem = csr_fuzz_pem(data + 1, size - 1, &pem_len)) == NULL) {
        return 0;
    }
    if (pki_csr_sign(csr_fuzz_ca, pem, pem_len, &who, 1, &cert_pem, &cert_len, NULL) == FL_OK) {
        BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
        BIO *rb = BIO_new_mem_buf(pem, (int)pem_len);
        X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
        X509_REQ *req = rb ? PEM_read_bio_X509_REQ(rb, NULL, NULL, NULL) : NULL;
        if (cert == NULL || req == NULL || pki_identity_of(cert, &got, NULL) != FL_OK ||
            got.role != who.role || strcmp(got.name, who.name) != 0 ||
            strcmp(got.cluster, who.cluster) != 0 ||
            EVP_PKEY_eq(X509_get0_pubkey(cert), X509_REQ_get0_pubkey(req)) != 1 ||
            X509_verify(cert, X509_get0_pubkey(csr_fuzz_ca_cert)) != 1) {
            abort();
        }
        X509_free(cert);
        X509_REQ_free(req);
        BIO_free(cb);
        BIO_free(rb);
        fl_free(cert_pem);
        signed_ok = 1;
    }
    fl_free(pem);
    return signed_ok;
}

#endif
