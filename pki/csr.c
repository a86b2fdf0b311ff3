/* pki/csr — enrolment: a holder makes a key and a certificate signing
 * request; the CA checks the request's proof of possession and signs a
 * certificate for its key under the name it was told, not the one asked. */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/alloc.h"
#include "common/err.h"
#include "pki/pki_int.h"

int pki_csr_make(const char *name, EVP_PKEY **key, char **pem, size_t *pem_len, char *errmsg)
{
    char why[160];
    EVP_PKEY *k = NULL;
    X509_REQ *r = NULL;
    BIO *bio = NULL;
    int rv = FL_OK;
    if (!pki_name_valid(name)) {
        return fl_errf(errmsg, FL_EINVAL, "bad name \"%.80s\"", name != NULL ? name : "");
    }
    ERR_clear_error();
    k = pki_new_key();
    r = X509_REQ_new();
    bio = BIO_new(BIO_s_mem());
    if (k == NULL || r == NULL || bio == NULL || !X509_REQ_set_version(r, X509_REQ_VERSION_1) ||
        !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_UTF8,
                                    (const unsigned char *)name, -1, -1, 0) ||
        !X509_REQ_set_pubkey(r, k) || !X509_REQ_sign(r, k, EVP_sha256()) ||
        !PEM_write_bio_X509_REQ(bio, r)) {
        rv = fl_errf(errmsg, FL_ENOMEM, "cannot make the certificate request: %s",
                     pki_ossl_reason(why, sizeof why));
    }
    if (rv == FL_OK) {
        rv = pki_bio_take(bio, pem, pem_len, errmsg);
    }
    BIO_free(bio);
    X509_REQ_free(r);
    if (rv != FL_OK) {
        EVP_PKEY_free(k);
        return rv;
    }
    *key = k;
    ERR_clear_error();
    return FL_OK;
}

/* The one request in pem (len bytes): every PEM block is read, and there
 * must be exactly one, a certificate request with no headers whose DER is
 * all one request. */
static int read_one_request(const char *pem, size_t len, X509_REQ **out, char *errmsg)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509_REQ *req = NULL;
    int blocks = 0, rv = FL_OK;
    if (bio == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
            break; /* no more blocks (or a broken one: counted as none) */
        }
        blocks++;
        if (blocks == 1 && rv == FL_OK) {
            const unsigned char *p = data;
            if (strcmp(name, "CERTIFICATE REQUEST") != 0 &&
                strcmp(name, "NEW CERTIFICATE REQUEST") != 0) {
                rv = fl_errf(errmsg, FL_EDECODE, "not a certificate request (PEM \"%.40s\")", name);
            } else if (header != NULL && header[0] != '\0') {
                rv = fl_errf(errmsg, FL_EDECODE, "certificate request with PEM headers");
            } else if ((req = d2i_X509_REQ(NULL, &p, dlen)) == NULL || p != data + dlen) {
                rv = fl_errf(errmsg, FL_EDECODE, "malformed certificate request");
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (rv == FL_OK && blocks == 0) {
        rv = fl_errf(errmsg, FL_EDECODE, "no PEM certificate request");
    } else if (rv == FL_OK && blocks > 1) {
        rv = fl_errf(errmsg, FL_EDECODE, "%d PEM blocks; want exactly one certificate request",
                     blocks);
    }
    if (rv != FL_OK) {
        X509_REQ_free(req);
        return rv;
    }
    *out = req;
    return FL_OK;
}

/* P-256 only: the module's one key type. */
static int key_is_p256(EVP_PKEY *pk)
{
    char group[32];
    size_t glen = 0;
    return EVP_PKEY_is_a(pk, "EC") &&
           EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

int pki_csr_sign(const struct pki_ca *ca, const char *csr_pem, size_t len,
                 const struct pki_identity *who, unsigned days, char **cert_pem,
                 size_t *cert_pem_len, char *errmsg)
{
    char why[160];
    X509_REQ *req = NULL;
    EVP_PKEY *pk;
    X509 *cert = NULL;
    int rv;
    if (csr_pem == NULL || len == 0) {
        return fl_errf(errmsg, FL_EDECODE, "empty certificate request");
    }
    if (len > PKI_CSR_MAX) {
        return fl_errf(errmsg, FL_EDECODE,
                       "certificate request of %zu bytes (at most %d): too large to be one", len,
                       PKI_CSR_MAX);
    }
    ERR_clear_error();
    rv = read_one_request(csr_pem, len, &req, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    pk = X509_REQ_get0_pubkey(req);
    if (pk == NULL) {
        rv = fl_errf(errmsg, FL_EDECODE, "certificate request without a usable public key (%s)",
                     pki_ossl_reason(why, sizeof why));
    } else if (!key_is_p256(pk)) {
        rv = fl_errf(errmsg, FL_EPROTO,
                     "certificate request for a %s key: only ECDSA P-256 keys are accepted",
                     EVP_PKEY_get0_type_name(pk) != NULL ? EVP_PKEY_get0_type_name(pk) : "?");
    } else if (X509_REQ_verify(req, pk) != 1) {
        rv = fl_errf(errmsg, FL_EPROTO,
                     "certificate request's signature does not verify with its own key (%s)",
                     pki_ossl_reason(why, sizeof why));
    } else {
        /* The request's subject and extensions are ignored: `who` is the name. */
        rv = pki_ca_sign(ca, pk, who, days, NULL, 0, &cert, errmsg);
    }
    if (rv == FL_OK) {
        rv = pki_cert_pem(cert, cert_pem, cert_pem_len, errmsg);
    }
    X509_free(cert);
    X509_REQ_free(req);
    ERR_clear_error();
    return rv;
}
