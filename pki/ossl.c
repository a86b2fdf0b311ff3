/* pki/ossl — small OpenSSL helpers the module's files share: error reasons,
 * new keys, PEM into memory. */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/alloc.h"
#include "common/err.h"
#include "pki/pki_int.h"

const char *pki_ossl_reason(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (cap == 0) {
        ERR_clear_error();
        return out;
    }
    if (e == 0) {
        snprintf(out, cap, "unknown OpenSSL error");
    } else if (reason != NULL) {
        const char *lib = ERR_lib_error_string(e);
        snprintf(out, cap, "%s%s%s", lib != NULL ? lib : "", lib != NULL ? ": " : "", reason);
    } else {
        ERR_error_string_n(e, out, cap);
    }
    ERR_clear_error();
    return out;
}

EVP_PKEY *pki_new_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

int pki_bio_take(BIO *bio, char **pem, size_t *len, char *errmsg)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *copy;
    if (n <= 0 || data == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "PEM encoding produced nothing");
    }
    copy = fl_malloc((size_t)n + 1);
    if (copy == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    memcpy(copy, data, (size_t)n);
    copy[n] = '\0';
    *pem = copy;
    if (len != NULL) {
        *len = (size_t)n;
    }
    return FL_OK;
}

int pki_cert_pem(X509 *cert, char **pem, size_t *len, char *errmsg)
{
    char why[160];
    BIO *bio = BIO_new(BIO_s_mem());
    int rv;
    if (bio == NULL || !PEM_write_bio_X509(bio, cert)) {
        BIO_free(bio);
        return fl_errf(errmsg, FL_ENOMEM, "cannot encode the certificate: %s",
                       pki_ossl_reason(why, sizeof why));
    }
    rv = pki_bio_take(bio, pem, len, errmsg);
    BIO_free(bio);
    return rv;
}

int pki_key_pem(EVP_PKEY *key, char **pem, size_t *len, char *errmsg)
{
    char why[160];
    /* A secure-memory BIO clears what it held when freed. */
    BIO *bio = BIO_new(BIO_s_secmem());
    int rv;
    if (bio == NULL || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        return fl_errf(errmsg, FL_ENOMEM, "cannot encode the private key: %s",
                       pki_ossl_reason(why, sizeof why));
    }
    rv = pki_bio_take(bio, pem, len, errmsg);
    BIO_free(bio);
    return rv;
}
