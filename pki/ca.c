/* pki/ca — the cluster CA: making one, loading it, and signing a leaf
 * certificate for a holder's public key. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/alloc.h"
#include "common/err.h"
#include "pki/pki_int.h"

#define CA_CN        "flotilla-ca"
#define DAYS_MAX     36500
#define DNS_NAME_MAX 253
#define CA_PATH_CAP  4096
#define URI_CAP      (sizeof "flotilla://" + 2 * PKI_NAME_MAX + 16)

/* ---- building blocks ---------------------------------------------------- */

/* A random positive serial of 159 bits. */
static int set_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    int ok = 0;
    if (bn == NULL) {
        return 0;
    }
    do {
        if (!BN_rand(bn, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)) {
            BN_free(bn);
            return 0;
        }
    } while (BN_is_zero(bn));
    ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

/* CN=cn, O=org. */
static int set_subject(X509 *x, const char *cn, const char *org)
{
    X509_NAME *n = X509_get_subject_name(x);
    return X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                      0) &&
           X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1, 0);
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    int ok;
    if (ext == NULL) {
        return 0;
    }
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A version 3 certificate for pub with a fresh serial, valid from five
 * minutes ago for `days`, subject CN=cn, O=org. */
static X509 *new_cert(EVP_PKEY *pub, const char *cn, const char *org, unsigned days)
{
    X509 *x = X509_new();
    if (x == NULL) {
        return NULL;
    }
    if (!X509_set_version(x, X509_VERSION_3) || !set_serial(x) ||
        X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) == NULL ||
        !set_subject(x, cn, org) || !X509_set_pubkey(x, pub)) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* ---- subject alternative names ------------------------------------------ */

static int dns_name_valid(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > DNS_NAME_MAX || s[0] == '.' || s[n - 1] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-') {
                return 0;
            }
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_') ||
            (label == 0 && c == '-') || ++label > 63) {
            return 0;
        }
    }
    return s[n - 1] != '-';
}

/* Append a GEN_DNS / GEN_URI (IA5) or GEN_IPADD (octets) name. */
static int push_name(GENERAL_NAMES *gens, int type, const void *data, size_t len)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    if (g == NULL || s == NULL || !ASN1_STRING_set(s, data, (int)len)) {
        GENERAL_NAME_free(g);
        ASN1_STRING_free(s);
        return 0;
    }
    GENERAL_NAME_set0_value(g, type, s);
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return 0;
    }
    return 1;
}

/* 1 if gens already holds this name (DNS names compare without case). */
static int has_name(const GENERAL_NAMES *gens, int type, const void *data, size_t len)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING *s;
        if (g->type != type) {
            continue;
        }
        s = type == GEN_IPADD ? g->d.iPAddress : g->d.dNSName;
        if ((size_t)ASN1_STRING_length(s) != len) {
            continue;
        }
        if (type == GEN_DNS ? strncasecmp((const char *)ASN1_STRING_get0_data(s), data, len) == 0
                            : memcmp(ASN1_STRING_get0_data(s), data, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Parse one extra SAN ("DNS:host", "IP:1.2.3.4", "IP:::1") into gens.
 * FL_EINVAL for anything else, FL_ENOMEM. */
static int add_extra_san(GENERAL_NAMES *gens, const char *san, char *errmsg)
{
    unsigned char ip[16];
    if (san == NULL) {
        return fl_errf(errmsg, FL_EINVAL, "empty subject alternative name");
    }
    if (strncmp(san, "DNS:", 4) == 0) {
        const char *h = san + 4;
        if (!dns_name_valid(h)) {
            return fl_errf(errmsg, FL_EINVAL,
                           "bad subject alternative name \"%.80s\": not a DNS name "
                           "(letters, digits, '-', '_' in dot-separated labels)",
                           san);
        }
        if (!has_name(gens, GEN_DNS, h, strlen(h)) && !push_name(gens, GEN_DNS, h, strlen(h))) {
            return fl_errf(errmsg, FL_ENOMEM, "out of memory");
        }
        return FL_OK;
    }
    if (strncmp(san, "IP:", 3) == 0) {
        size_t n;
        if (inet_pton(AF_INET, san + 3, ip) == 1) {
            n = 4;
        } else if (inet_pton(AF_INET6, san + 3, ip) == 1) {
            n = 16;
        } else {
            return fl_errf(errmsg, FL_EINVAL,
                           "bad subject alternative name \"%.80s\": not an IPv4 or IPv6 address",
                           san);
        }
        if (!has_name(gens, GEN_IPADD, ip, n) && !push_name(gens, GEN_IPADD, ip, n)) {
            return fl_errf(errmsg, FL_ENOMEM, "out of memory");
        }
        return FL_OK;
    }
    return fl_errf(errmsg, FL_EINVAL,
                   "bad subject alternative name \"%.80s\": want DNS:NAME or IP:ADDRESS", san);
}

/* The leaf's SAN list: its URI, DNS:NAME for a server, then the extras. */
static int build_sans(const struct pki_identity *who, const char *const *sans, unsigned n_sans,
                      GENERAL_NAMES **out, char *errmsg)
{
    char uri[URI_CAP];
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int rv;
    if (gens == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    snprintf(uri, sizeof uri, "flotilla://%s/%s/%s", who->cluster, pki_role_name(who->role),
             who->name);
    if (!push_name(gens, GEN_URI, uri, strlen(uri)) ||
        (who->role == PKI_ROLE_SERVER && !push_name(gens, GEN_DNS, who->name, strlen(who->name)))) {
        GENERAL_NAMES_free(gens);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < n_sans; i++) {
        rv = add_extra_san(gens, sans[i], errmsg);
        if (rv != FL_OK) {
            GENERAL_NAMES_free(gens);
            return rv;
        }
    }
    *out = gens;
    return FL_OK;
}

/* ---- the CA ------------------------------------------------------------- */

static int ca_paths(const char *dir, char *cert, char *key, size_t cap, char *errmsg)
{
    if (dir == NULL || dir[0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "no CA directory");
    }
    if ((size_t)snprintf(cert, cap, "%s/%s", dir, PKI_CA_CERT) >= cap ||
        (size_t)snprintf(key, cap, "%s/%s", dir, PKI_CA_KEY) >= cap) {
        return fl_errf(errmsg, FL_EINVAL, "CA directory path too long");
    }
    return FL_OK;
}

int pki_ca_init(const char *dir, const char *cluster, unsigned days, int force, char *errmsg)
{
    char cert_path[CA_PATH_CAP], key_path[CA_PATH_CAP], why[160];
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509V3_CTX v;
    int rv;
    if (!pki_name_valid(cluster)) {
        return fl_errf(errmsg, FL_EINVAL,
                       "bad cluster name \"%.80s\": 1 to %d of letters, digits, '.', '_', '-', "
                       "not starting with '.' or '-'",
                       cluster != NULL ? cluster : "", PKI_NAME_MAX);
    }
    if (days > DAYS_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "--days %u is more than %d", days, DAYS_MAX);
    }
    rv = ca_paths(dir, cert_path, key_path, sizeof cert_path, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return fl_errf(errmsg, FL_EIO, "cannot create %s: %s", dir, strerror(errno));
    }
    if ((rv = pki_check_absent(cert_path, force, errmsg)) != FL_OK ||
        (rv = pki_check_absent(key_path, force, errmsg)) != FL_OK) {
        return rv;
    }
    ERR_clear_error();
    key = pki_new_key();
    x = key != NULL ? new_cert(key, CA_CN, cluster, days != 0 ? days : PKI_DAYS_CA) : NULL;
    if (x == NULL || !X509_set_issuer_name(x, X509_get_subject_name(x))) {
        rv = fl_errf(errmsg, FL_ENOMEM, "cannot make the CA certificate: %s",
                     pki_ossl_reason(why, sizeof why));
        goto out;
    }
    X509V3_set_ctx(&v, x, x, NULL, NULL, 0);
    if (!add_ext(x, &v, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext(x, &v, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(x, &v, NID_subject_key_identifier, "hash") || !X509_sign(x, key, EVP_sha256())) {
        rv = fl_errf(errmsg, FL_ENOMEM, "cannot sign the CA certificate: %s",
                     pki_ossl_reason(why, sizeof why));
        goto out;
    }
    rv = pki_write_pair(key, x, key_path, cert_path, force, errmsg);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rv;
}

/* The O of the CA's subject: the cluster it was made for. */
static int read_cluster(X509 *cert, char *out, size_t cap)
{
    const X509_NAME *n = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(n, NID_organizationName, -1);
    unsigned char *utf8 = NULL;
    int len, ok;
    if (i < 0 || X509_NAME_get_index_by_NID(n, NID_organizationName, i) >= 0) {
        return 0; /* none, or two */
    }
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)));
    if (len < 0) {
        return 0;
    }
    ok = (size_t)len < cap && memchr(utf8, '\0', (size_t)len) == NULL;
    if (ok) {
        memcpy(out, utf8, (size_t)len);
        out[len] = '\0';
        ok = pki_name_valid(out);
    }
    OPENSSL_free(utf8);
    return ok;
}

int pki_ca_load(const char *dir, struct pki_ca **out, char *errmsg)
{
    char cert_path[CA_PATH_CAP], key_path[CA_PATH_CAP], why[160];
    struct pki_ca *ca;
    int rv = ca_paths(dir, cert_path, key_path, sizeof cert_path, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    ca = fl_calloc(1, sizeof *ca);
    if (ca == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    rv = pki_load_cert(cert_path, &ca->cert, errmsg);
    if (rv == FL_ENOTFOUND) {
        rv = fl_errf(errmsg, FL_ENOTFOUND,
                     "no CA in %s: %s is missing (make one with flotilla ca init --dir %s)", dir,
                     cert_path, dir);
    }
    if (rv != FL_OK || (rv = pki_load_key(key_path, &ca->key, errmsg)) != FL_OK) {
        pki_ca_free(ca);
        return rv;
    }
    ERR_clear_error();
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        rv = fl_errf(errmsg, FL_EPROTO, "%s does not match the certificate %s (%s)", key_path,
                     cert_path, pki_ossl_reason(why, sizeof why));
    } else if (X509_check_ca(ca->cert) != 1) {
        rv = fl_errf(errmsg, FL_EPROTO,
                     "%s is not a CA certificate (no basicConstraints CA:TRUE with keyCertSign)",
                     cert_path);
    } else if (!read_cluster(ca->cert, ca->cluster, sizeof ca->cluster)) {
        rv = fl_errf(errmsg, FL_EPROTO,
                     "%s names no valid cluster (its subject needs one O=CLUSTER; make the CA "
                     "with flotilla ca init)",
                     cert_path);
    }
    ERR_clear_error();
    if (rv != FL_OK) {
        pki_ca_free(ca);
        return rv;
    }
    *out = ca;
    return FL_OK;
}

void pki_ca_free(struct pki_ca *ca)
{
    if (ca == NULL) {
        return;
    }
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    fl_free(ca);
}

const char *pki_ca_cluster(const struct pki_ca *ca)
{
    return ca->cluster;
}

/* ---- signing ------------------------------------------------------------ */

int pki_ca_sign(const struct pki_ca *ca, EVP_PKEY *pub, const struct pki_identity *who,
                unsigned days, const char *const *sans, unsigned n_sans, X509 **out, char *errmsg)
{
    char why[160];
    GENERAL_NAMES *gens = NULL;
    X509 *x = NULL;
    X509V3_CTX v;
    int rv;
    if (ca == NULL || pub == NULL || who == NULL || out == NULL) {
        return fl_errf(errmsg, FL_EINVAL, "no CA, key or identity");
    }
    if (pki_role_name(who->role)[0] == '?') {
        return fl_errf(errmsg, FL_EINVAL, "unknown role %d (server, agent or client)", who->role);
    }
    if (!pki_name_valid(who->name)) {
        return fl_errf(errmsg, FL_EINVAL,
                       "bad name \"%.80s\": 1 to %d of letters, digits, '.', '_', '-', not "
                       "starting with '.' or '-'",
                       who->name, PKI_NAME_MAX);
    }
    if (strcmp(who->cluster, ca->cluster) != 0) {
        return fl_errf(errmsg, FL_EINVAL, "the CA is cluster \"%s\"'s, not \"%.80s\"'s",
                       ca->cluster, who->cluster);
    }
    if (n_sans > PKI_SAN_MAX || (n_sans > 0 && sans == NULL)) {
        return fl_errf(errmsg, FL_EINVAL, "too many subject alternative names (at most %d)",
                       PKI_SAN_MAX);
    }
    if (days > DAYS_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "%u days is more than %d", days, DAYS_MAX);
    }
    rv = build_sans(who, sans, n_sans, &gens, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    ERR_clear_error();
    x = new_cert(pub, who->name, who->cluster, days != 0 ? days : PKI_DAYS_DEFAULT);
    if (x == NULL || !X509_set_issuer_name(x, X509_get_subject_name(ca->cert))) {
        rv = fl_errf(errmsg, FL_ENOMEM, "cannot make the certificate: %s",
                     pki_ossl_reason(why, sizeof why));
        goto out;
    }
    X509V3_set_ctx(&v, ca->cert, x, NULL, NULL, 0);
    if (!add_ext(x, &v, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, &v, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, &v, NID_ext_key_usage,
                 who->role == PKI_ROLE_SERVER ? "serverAuth,clientAuth" : "clientAuth") ||
        !add_ext(x, &v, NID_subject_key_identifier, "hash") ||
        !add_ext(x, &v, NID_authority_key_identifier, "keyid:always") ||
        !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) ||
        !X509_sign(x, ca->key, EVP_sha256())) {
        rv = fl_errf(errmsg, FL_ENOMEM, "cannot sign the certificate: %s",
                     pki_ossl_reason(why, sizeof why));
        goto out;
    }
    *out = x;
    x = NULL;
out:
    X509_free(x);
    GENERAL_NAMES_free(gens);
    ERR_clear_error();
    return rv;
}
