/* pki/issue — a new key and certificate for a holder, written to files. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "common/alloc.h"
#include "common/err.h"
#include "pki/pki_int.h"

#define ISSUE_PATH_CAP 4096

int pki_issue_files(const struct pki_ca *ca, const struct pki_identity *who, unsigned days,
                    const char *const *sans, unsigned n_sans, const char *prefix, int force,
                    char *errmsg)
{
    char cert_path[ISSUE_PATH_CAP], key_path[ISSUE_PATH_CAP], why[160];
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    int rv;
    if (prefix == NULL || prefix[0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "no output prefix");
    }
    if ((size_t)snprintf(cert_path, sizeof cert_path, "%s.pem", prefix) >= sizeof cert_path ||
        (size_t)snprintf(key_path, sizeof key_path, "%s.key", prefix) >= sizeof key_path) {
        return fl_errf(errmsg, FL_EINVAL, "output prefix too long");
    }
    if ((rv = pki_check_absent(cert_path, force, errmsg)) != FL_OK ||
        (rv = pki_check_absent(key_path, force, errmsg)) != FL_OK) {
        return rv;
    }
    ERR_clear_error();
    key = pki_new_key();
    if (key == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "cannot make a key: %s",
                       pki_ossl_reason(why, sizeof why));
    }
    /* Everything is checked and encoded before the first file is written. */
    if ((rv = pki_ca_sign(ca, key, who, days, sans, n_sans, &cert, errmsg)) == FL_OK) {
        rv = pki_write_pair(key, cert, key_path, cert_path, force, errmsg);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rv;
}
