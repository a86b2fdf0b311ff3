/* The cluster's certificates (pki/pki.h): the CA, issuing for each role and
 * verifying against the CA, the identity a certificate names and every way
 * to fake one, subject alternative names, enrolment by CSR, and the key and
 * certificate files. */
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "pki/pki.h"

#define PATHCAP 1024

static char root[256];   /* the test's temporary directory */
static char ca_dir[300]; /* the CA of cluster "c1" most tests use */

static struct pki_identity ident(int role, const char *cluster, const char *name)
{
    struct pki_identity w;
    memset(&w, 0, sizeof w);
    w.role = (uint8_t)role;
    snprintf(w.cluster, sizeof w.cluster, "%s", cluster);
    snprintf(w.name, sizeof w.name, "%s", name);
    return w;
}

static void path_in(char *out, size_t cap, const char *dir, const char *file)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, file) >= cap) {
        abort();
    }
}

static int file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static X509 *load_cert(const char *path)
{
    X509 *c = NULL;
    char err[FL_ERRMSG_SIZE];
    if (pki_load_cert(path, &c, err) != FL_OK) {
        fprintf(stderr, "load %s: %s\n", path, err);
        return NULL;
    }
    return c;
}

static X509 *load_ca_cert(const char *dir)
{
    char p[PATHCAP];
    path_in(p, sizeof p, dir, PKI_CA_CERT);
    return load_cert(p);
}

static EVP_PKEY *load_ca_key(const char *dir)
{
    char p[PATHCAP], err[FL_ERRMSG_SIZE];
    EVP_PKEY *k = NULL;
    path_in(p, sizeof p, dir, PKI_CA_KEY);
    if (pki_load_key(p, &k, err) != FL_OK) {
        fprintf(stderr, "load %s: %s\n", p, err);
    }
    return k;
}

/* X509_verify_cert of cert against the CA certificate alone, for a purpose
 * (X509_PURPOSE_SSL_SERVER / _CLIENT); returns the verify error (0 = ok). */
static int verify(X509 *ca, X509 *cert, int purpose)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rv = -1;
    if (st != NULL && ctx != NULL && X509_STORE_add_cert(st, ca) == 1 &&
        X509_STORE_CTX_init(ctx, st, cert, NULL) == 1 &&
        X509_STORE_CTX_set_purpose(ctx, purpose) == 1) {
        rv = X509_verify_cert(ctx) == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
        if (rv == 0 && X509_STORE_CTX_get_error(ctx) != X509_V_OK) {
            rv = X509_STORE_CTX_get_error(ctx);
        }
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    ERR_clear_error();
    return rv;
}

/* Issue for role/name in cluster c1 into root/PREFIX; returns the cert. */
static X509 *issue(const char *prefix, int role, const char *name, const char *const *sans,
                   unsigned n_sans)
{
    struct pki_ca *ca = NULL;
    struct pki_identity w = ident(role, "c1", name);
    char p[PATHCAP], err[FL_ERRMSG_SIZE];
    int rv;
    if (pki_ca_load(ca_dir, &ca, err) != FL_OK) {
        fprintf(stderr, "pki_ca_load: %s\n", err);
        return NULL;
    }
    path_in(p, sizeof p, root, prefix);
    rv = pki_issue_files(ca, &w, 0, sans, n_sans, p, 1, err);
    pki_ca_free(ca);
    if (rv != FL_OK) {
        fprintf(stderr, "pki_issue_files: %s\n", err);
        return NULL;
    }
    snprintf(p + strlen(p), sizeof p - strlen(p), ".pem");
    return load_cert(p);
}

/* 1 if cert's SAN holds a DNS name / an IP address of n bytes. */
static int has_san(X509 *cert, int type, const void *data, size_t n)
{
    GENERAL_NAMES *g = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    for (int i = 0; g != NULL && i < sk_GENERAL_NAME_num(g); i++) {
        const GENERAL_NAME *e = sk_GENERAL_NAME_value(g, i);
        const ASN1_STRING *s = type == GEN_DNS ? e->d.dNSName : e->d.iPAddress;
        if (e->type == type && (size_t)ASN1_STRING_length(s) == n &&
            memcmp(ASN1_STRING_get0_data(s), data, n) == 0) {
            found = 1;
        }
    }
    GENERAL_NAMES_free(g);
    return found;
}

static int count_sans(X509 *cert)
{
    GENERAL_NAMES *g = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int n = g != NULL ? sk_GENERAL_NAME_num(g) : -1;
    GENERAL_NAMES_free(g);
    return n;
}

/* ---- the CA ------------------------------------------------------------- */

TEST(ca_init_and_load)
{
    char dir[PATHCAP], cert_path[PATHCAP], key_path[PATHCAP], err[FL_ERRMSG_SIZE];
    struct pki_ca *ca = NULL;
    X509 *c;
    X509_NAME *n;
    snprintf(dir, sizeof dir, "%s/ca-init/sub", root);
    /* A missing parent is not created; the directory itself is. */
    CHECK_EQ_INT(pki_ca_init(dir, "c1", 0, 0, err), FL_EIO);
    snprintf(dir, sizeof dir, "%s/ca-init", root);
    CHECK_OK(pki_ca_init(dir, "prod.eu-1", 0, 0, err));
    path_in(cert_path, sizeof cert_path, dir, PKI_CA_CERT);
    path_in(key_path, sizeof key_path, dir, PKI_CA_KEY);
    CHECK_EQ_INT(file_mode(cert_path), 0644);
    CHECK_EQ_INT(file_mode(key_path), 0600);
    CHECK_EQ_INT(file_mode(dir), 0700);

    CHECK_OK(pki_ca_load(dir, &ca, err));
    REQUIRE(ca != NULL);
    CHECK_EQ_STR(pki_ca_cluster(ca), "prod.eu-1");
    pki_ca_free(ca);
    pki_ca_free(NULL);

    c = load_cert(cert_path);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(X509_check_ca(c), 1);
    CHECK((X509_get_key_usage(c) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
          (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    CHECK_EQ_INT(X509_get_pathlen(c), 0);
    CHECK(X509_get0_subject_key_id(c) != NULL);
    CHECK(X509_check_issued(c, c) == X509_V_OK);
    n = X509_get_subject_name(c);
    CHECK(X509_NAME_get_index_by_NID(n, NID_organizationName, -1) >= 0);
    CHECK(EVP_PKEY_is_a(X509_get0_pubkey(c), "EC"));
    /* Ten years by default. */
    {
        int day = 0, sec = 0;
        CHECK(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(c), X509_get0_notAfter(c)) == 1);
        CHECK(day >= PKI_DAYS_CA && day <= PKI_DAYS_CA + 1);
    }
    X509_free(c);

    /* Existing files are kept unless forced. */
    CHECK_EQ_INT(pki_ca_init(dir, "c1", 0, 0, err), FL_EEXIST);
    CHECK(strstr(err, "already exists") != NULL);
    CHECK_OK(pki_ca_load(dir, &ca, err));
    CHECK_EQ_STR(pki_ca_cluster(ca), "prod.eu-1");
    pki_ca_free(ca);
    CHECK_OK(pki_ca_init(dir, "c2", 30, 1, err));
    CHECK_OK(pki_ca_load(dir, &ca, err));
    CHECK_EQ_STR(pki_ca_cluster(ca), "c2");
    pki_ca_free(ca);

    /* A bad cluster name writes nothing. */
    snprintf(dir, sizeof dir, "%s/ca-bad", root);
    CHECK_EQ_INT(pki_ca_init(dir, "-c", 0, 0, err), FL_EINVAL);
    CHECK_EQ_INT(pki_ca_init(dir, "a/b", 0, 0, err), FL_EINVAL);
    CHECK(!exists(dir));
}

TEST(ca_load_refusals)
{
    char dir[PATHCAP], other[PATHCAP], a[PATHCAP], b[PATHCAP], cmd[4 * PATHCAP],
        err[FL_ERRMSG_SIZE];
    struct pki_ca *ca = NULL;
    X509 *leaf;
    snprintf(dir, sizeof dir, "%s/ca-refuse", root);
    CHECK_EQ_INT(pki_ca_load(dir, &ca, err), FL_ENOTFOUND);
    CHECK(strstr(err, dir) != NULL);
    CHECK_OK(pki_ca_init(dir, "c1", 0, 0, err));

    /* The key of another CA. */
    snprintf(other, sizeof other, "%s/ca-refuse-other", root);
    CHECK_OK(pki_ca_init(other, "c1", 0, 0, err));
    path_in(a, sizeof a, other, PKI_CA_KEY);
    path_in(b, sizeof b, dir, PKI_CA_KEY);
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s'", a, b);
    REQUIRE(system(cmd) == 0);
    CHECK_EQ_INT(pki_ca_load(dir, &ca, err), FL_EPROTO);
    CHECK(strstr(err, "does not match") != NULL);

    /* A leaf certificate and its key: not a CA. */
    leaf = issue("refuse-leaf", PKI_ROLE_SERVER, "s9", NULL, 0);
    REQUIRE(leaf != NULL);
    X509_free(leaf);
    snprintf(cmd, sizeof cmd,
             "cp -p '%s/refuse-leaf.pem' '%s/%s' && cp -p '%s/refuse-leaf.key' '%s'", root, dir,
             PKI_CA_CERT, root, b);
    REQUIRE(system(cmd) == 0);
    CHECK_EQ_INT(pki_ca_load(dir, &ca, err), FL_EPROTO);
    CHECK(strstr(err, "not a CA") != NULL);

    /* Not PEM. */
    path_in(a, sizeof a, dir, PKI_CA_CERT);
    snprintf(cmd, sizeof cmd, "echo garbage > '%s'", a);
    REQUIRE(system(cmd) == 0);
    CHECK_EQ_INT(pki_ca_load(dir, &ca, err), FL_EDECODE);
    CHECK(ca == NULL);
    CHECK_EQ_INT(ERR_peek_error(), 0);
}

/* ---- issuing and verifying ---------------------------------------------- */

TEST(issue_each_role)
{
    static const struct {
        int role;
        const char *name;
        uint32_t xku;
    } cases[] = {
        {PKI_ROLE_SERVER, "s1", XKU_SSL_SERVER | XKU_SSL_CLIENT},
        {PKI_ROLE_AGENT, "web-7.dc2", XKU_SSL_CLIENT},
        {PKI_ROLE_CLIENT, "alice", XKU_SSL_CLIENT},
    };
    char err[FL_ERRMSG_SIZE];
    X509 *ca = load_ca_cert(ca_dir);
    REQUIRE(ca != NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char prefix[64], p[PATHCAP], cn[80];
        struct pki_identity got;
        EVP_PKEY *key = NULL;
        X509 *c;
        snprintf(prefix, sizeof prefix, "role-%s", pki_role_name(cases[i].role));
        c = issue(prefix, cases[i].role, cases[i].name, NULL, 0);
        REQUIRE(c != NULL);
        CHECK_OK(pki_identity_of(c, &got, err));
        CHECK_EQ_INT(got.role, cases[i].role);
        CHECK_EQ_STR(got.cluster, "c1");
        CHECK_EQ_STR(got.name, cases[i].name);
        /* The subject repeats the name for people. */
        CHECK(X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn, sizeof cn) >
              0);
        CHECK_EQ_STR(cn, cases[i].name);
        /* Leaf extensions. */
        CHECK_EQ_INT(X509_check_ca(c), 0);
        CHECK(X509_get_extension_flags(c) & EXFLAG_BCONS);
        CHECK_EQ_INT(X509_get_key_usage(c), KU_DIGITAL_SIGNATURE);
        CHECK_EQ_INT(X509_get_extended_key_usage(c), cases[i].xku);
        CHECK(X509_get0_authority_key_id(c) != NULL);
        CHECK_EQ_INT(
            ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c), X509_get0_subject_key_id(ca)), 0);
        /* A server is also DNS:NAME; the others carry their URI only. */
        CHECK_EQ_INT(has_san(c, GEN_DNS, cases[i].name, strlen(cases[i].name)),
                     cases[i].role == PKI_ROLE_SERVER);
        CHECK_EQ_INT(count_sans(c), cases[i].role == PKI_ROLE_SERVER ? 2 : 1);
        /* Valid from five minutes ago for a year. */
        {
            time_t now = time(NULL);
            time_t before = now - 280;
            CHECK(X509_cmp_time(X509_get0_notBefore(c), &before) < 0);
            CHECK(X509_cmp_time(X509_get0_notAfter(c), &now) > 0);
            int day = 0, sec = 0;
            CHECK(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(c), X509_get0_notAfter(c)) == 1);
            CHECK_EQ_INT(day, PKI_DAYS_DEFAULT);
        }
        /* Files: the key is private, P-256 and the certificate's. */
        snprintf(p, sizeof p, "%s/%s.key", root, prefix);
        CHECK_EQ_INT(file_mode(p), 0600);
        CHECK_OK(pki_load_key(p, &key, err));
        REQUIRE(key != NULL);
        {
            char group[32];
            size_t glen = 0;
            CHECK(EVP_PKEY_get_group_name(key, group, sizeof group, &glen) == 1);
            CHECK_EQ_STR(group, "prime256v1");
        }
        CHECK_EQ_INT(X509_check_private_key(c, key), 1);
        EVP_PKEY_free(key);
        snprintf(p, sizeof p, "%s/%s.pem", root, prefix);
        CHECK_EQ_INT(file_mode(p), 0644);
        X509_free(c);
    }
    X509_free(ca);
}

TEST(verify_purposes)
{
    X509 *ca = load_ca_cert(ca_dir);
    X509 *srv = issue("vp-server", PKI_ROLE_SERVER, "s1", NULL, 0);
    X509 *agent = issue("vp-agent", PKI_ROLE_AGENT, "a1", NULL, 0);
    X509 *client = issue("vp-client", PKI_ROLE_CLIENT, "bob", NULL, 0);
    REQUIRE(ca != NULL && srv != NULL && agent != NULL && client != NULL);
    CHECK_EQ_INT(verify(ca, ca, X509_PURPOSE_ANY), 0);
    /* Servers dial each other: both purposes. */
    CHECK_EQ_INT(verify(ca, srv, X509_PURPOSE_SSL_SERVER), 0);
    CHECK_EQ_INT(verify(ca, srv, X509_PURPOSE_SSL_CLIENT), 0);
    /* Agents and clients only dial. */
    CHECK_EQ_INT(verify(ca, agent, X509_PURPOSE_SSL_CLIENT), 0);
    CHECK_EQ_INT(verify(ca, agent, X509_PURPOSE_SSL_SERVER), X509_V_ERR_INVALID_PURPOSE);
    CHECK_EQ_INT(verify(ca, client, X509_PURPOSE_SSL_CLIENT), 0);
    CHECK_EQ_INT(verify(ca, client, X509_PURPOSE_SSL_SERVER), X509_V_ERR_INVALID_PURPOSE);
    X509_free(ca);
    X509_free(srv);
    X509_free(agent);
    X509_free(client);
}

TEST(other_ca_does_not_verify)
{
    char dir[PATHCAP], p[PATHCAP], err[FL_ERRMSG_SIZE];
    struct pki_ca *other = NULL;
    struct pki_identity w = ident(PKI_ROLE_SERVER, "c1", "s1");
    X509 *ca = load_ca_cert(ca_dir), *ca2, *c;
    /* Same cluster name, another key: nothing it signs verifies. */
    snprintf(dir, sizeof dir, "%s/ca-other", root);
    CHECK_OK(pki_ca_init(dir, "c1", 0, 0, err));
    CHECK_OK(pki_ca_load(dir, &other, err));
    REQUIRE(other != NULL && ca != NULL);
    snprintf(p, sizeof p, "%s/other-s1", root);
    CHECK_OK(pki_issue_files(other, &w, 0, NULL, 0, p, 0, err));
    pki_ca_free(other);
    snprintf(p, sizeof p, "%s/other-s1.pem", root);
    c = load_cert(p);
    REQUIRE(c != NULL);
    CHECK(verify(ca, c, X509_PURPOSE_SSL_SERVER) != 0);
    CHECK(verify(ca, c, X509_PURPOSE_SSL_CLIENT) != 0);
    ca2 = load_ca_cert(dir);
    REQUIRE(ca2 != NULL);
    CHECK_EQ_INT(verify(ca2, c, X509_PURPOSE_SSL_SERVER), 0);
    X509_free(ca2);
    X509_free(ca);
    X509_free(c);
}

TEST(sign_checks_identity)
{
    char err[FL_ERRMSG_SIZE];
    struct pki_ca *ca = NULL;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *out = NULL;
    struct pki_identity w;
    REQUIRE(k != NULL);
    CHECK_OK(pki_ca_load(ca_dir, &ca, err));
    REQUIRE(ca != NULL);
    w = ident(PKI_ROLE_SERVER, "c2", "s1");
    CHECK_EQ_INT(pki_ca_sign(ca, k, &w, 0, NULL, 0, &out, err), FL_EINVAL);
    CHECK(strstr(err, "c2") != NULL);
    CHECK(out == NULL);
    w = ident(0, "c1", "s1");
    CHECK_EQ_INT(pki_ca_sign(ca, k, &w, 0, NULL, 0, &out, err), FL_EINVAL);
    w = ident(4, "c1", "s1");
    CHECK_EQ_INT(pki_ca_sign(ca, k, &w, 0, NULL, 0, &out, err), FL_EINVAL);
    w = ident(PKI_ROLE_AGENT, "c1", "a/b");
    CHECK_EQ_INT(pki_ca_sign(ca, k, &w, 0, NULL, 0, &out, err), FL_EINVAL);
    w = ident(PKI_ROLE_AGENT, "c1", "");
    CHECK_EQ_INT(pki_ca_sign(ca, k, &w, 0, NULL, 0, &out, err), FL_EINVAL);
    CHECK(out == NULL);
    w = ident(PKI_ROLE_AGENT, "c1", "a1");
    CHECK_OK(pki_ca_sign(ca, k, &w, 7, NULL, 0, &out, err));
    REQUIRE(out != NULL);
    CHECK_EQ_INT(X509_check_private_key(out, k), 1);
    {
        int day = 0, sec = 0;
        CHECK(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(out), X509_get0_notAfter(out)) == 1);
        CHECK_EQ_INT(day, 7);
    }
    X509_free(out);
    EVP_PKEY_free(k);
    pki_ca_free(ca);
}

TEST(sans)
{
    static const char *const good[] = {"DNS:localhost", "IP:127.0.0.1", "IP:::1",
                                       "DNS:s1.example.org", "DNS:s1"};
    static const char *const bad[] = {
        "DNS:",
        "DNS:-x",
        "DNS:x-",
        "DNS:a..b",
        "DNS:.a",
        "DNS:a b",
        "DNS:a,b",
        "DNS:*.example.org",
        "dns:x",
        "IP:1.2.3",
        "IP:300.1.1.1",
        "IP:",
        "IP:localhost",
        "IP:1.2.3.4/8",
        "URI:flotilla://c1/server/x",
        "email:a@b.c",
        "localhost",
        "",
        "DNS:a\nb",
    };
    const char *many[PKI_SAN_MAX + 1];
    char err[FL_ERRMSG_SIZE], p[PATHCAP];
    struct pki_ca *ca = NULL;
    struct pki_identity w = ident(PKI_ROLE_SERVER, "c1", "s1");
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *c = NULL;
    static const unsigned char lo4[4] = {127, 0, 0, 1};
    static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    REQUIRE(k != NULL);
    CHECK_OK(pki_ca_load(ca_dir, &ca, err));
    REQUIRE(ca != NULL);

    CHECK_OK(pki_ca_sign(ca, k, &w, 0, good, 5, &c, err));
    REQUIRE(c != NULL);
    CHECK(has_san(c, GEN_DNS, "localhost", 9));
    CHECK(has_san(c, GEN_DNS, "s1.example.org", 14));
    CHECK(has_san(c, GEN_IPADD, lo4, 4));
    CHECK(has_san(c, GEN_IPADD, lo6, 16));
    /* URI, DNS:s1 (once, though asked for again), localhost, two IPs, s1.example.org. */
    CHECK_EQ_INT(count_sans(c), 6);
    X509_free(c);

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[1] = {bad[i]};
        c = NULL;
        err[0] = '\0';
        CHECK_EQ_INT(pki_ca_sign(ca, k, &w, 0, one, 1, &c, err), FL_EINVAL);
        CHECK(c == NULL);
        CHECK(strstr(err, "subject alternative name") != NULL);
        if (c != NULL) {
            fprintf(stderr, "accepted SAN \"%s\"\n", bad[i]);
        }
    }
    for (int i = 0; i <= PKI_SAN_MAX; i++) {
        many[i] = "DNS:x";
    }
    CHECK_EQ_INT(pki_ca_sign(ca, k, &w, 0, many, PKI_SAN_MAX + 1, &c, err), FL_EINVAL);
    CHECK_OK(pki_ca_sign(ca, k, &w, 0, many, PKI_SAN_MAX, &c, err));
    X509_free(c);

    /* A bad SAN writes no file. */
    {
        const char *one[1] = {"IP:1.2.3"};
        snprintf(p, sizeof p, "%s/badsan", root);
        CHECK_EQ_INT(pki_issue_files(ca, &w, 0, one, 1, p, 0, err), FL_EINVAL);
        snprintf(p, sizeof p, "%s/badsan.pem", root);
        CHECK(!exists(p));
        snprintf(p, sizeof p, "%s/badsan.key", root);
        CHECK(!exists(p));
    }
    EVP_PKEY_free(k);
    pki_ca_free(ca);
}

/* ---- names and identities ----------------------------------------------- */

TEST(names_and_roles)
{
    static const char *const good[] = {"a", "s1", "A_b-c.d", "0", "_x", "node.dc-1", "a.", "x-"};
    static const char *const bad[] = {"",    ".a",  "-a",  "a/b",  "a b",  "caf\xc3\xa9",
                                      "a:b", "a\n", "a@b", "a%2f", "a\\b", "*"};
    char n63[64], n64[65];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK(pki_name_valid(good[i]));
        if (!pki_name_valid(good[i])) {
            fprintf(stderr, "refused good name \"%s\"\n", good[i]);
        }
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!pki_name_valid(bad[i]));
        if (pki_name_valid(bad[i])) {
            fprintf(stderr, "accepted bad name \"%s\"\n", bad[i]);
        }
    }
    CHECK(!pki_name_valid(NULL));
    memset(n63, 'n', 63);
    n63[63] = '\0';
    memset(n64, 'n', 64);
    n64[64] = '\0';
    CHECK(pki_name_valid(n63));
    CHECK(!pki_name_valid(n64));

    CHECK_EQ_STR(pki_role_name(PKI_ROLE_SERVER), "server");
    CHECK_EQ_STR(pki_role_name(PKI_ROLE_AGENT), "agent");
    CHECK_EQ_STR(pki_role_name(PKI_ROLE_CLIENT), "client");
    CHECK_EQ_STR(pki_role_name(0), "?");
    CHECK_EQ_STR(pki_role_name(9), "?");
    CHECK_EQ_INT(pki_role_parse("server"), PKI_ROLE_SERVER);
    CHECK_EQ_INT(pki_role_parse("agent"), PKI_ROLE_AGENT);
    CHECK_EQ_INT(pki_role_parse("client"), PKI_ROLE_CLIENT);
    CHECK_EQ_INT(pki_role_parse("Server"), 0);
    CHECK_EQ_INT(pki_role_parse("admin"), 0);
    CHECK_EQ_INT(pki_role_parse(""), 0);
    CHECK_EQ_INT(pki_role_parse(NULL), 0);
}

/* A leaf signed by the test CA whose SAN holds these URIs (explicit
 * lengths: they may hold NULs) and DNS:s1; with n < 0 no SAN at all. */
static X509 *hand_cert(const char *const *uris, const size_t *lens, int n)
{
    EVP_PKEY *cakey = load_ca_key(ca_dir), *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *ca = load_ca_cert(ca_dir), *x = X509_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    int ok =
        cakey != NULL && k != NULL && ca != NULL && x != NULL && gens != NULL && serial != NULL;
    ok = ok && X509_set_version(x, X509_VERSION_3) && ASN1_INTEGER_set(serial, 4242) &&
         X509_set_serialNumber(x, serial) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -300) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                                    (const unsigned char *)"s1", -1, -1, 0) &&
         X509_set_issuer_name(x, X509_get_subject_name(ca)) && X509_set_pubkey(x, k);
    for (int i = 0; ok && i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ok = g != NULL && s != NULL && ASN1_STRING_set(s, uris[i], (int)lens[i]);
        if (ok) {
            GENERAL_NAME_set0_value(g, GEN_URI, s);
            ok = sk_GENERAL_NAME_push(gens, g) > 0;
        } else {
            GENERAL_NAME_free(g);
            ASN1_STRING_free(s);
        }
    }
    if (ok && n >= 0) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ok = g != NULL && s != NULL && ASN1_STRING_set(s, "s1", 2);
        if (ok) {
            GENERAL_NAME_set0_value(g, GEN_DNS, s);
            ok = sk_GENERAL_NAME_push(gens, g) > 0;
        }
        ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
    }
    ok = ok && X509_sign(x, cakey, EVP_sha256()) > 0;
    GENERAL_NAMES_free(gens);
    ASN1_INTEGER_free(serial);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(k);
    /* Signed by the real CA: only the identity check can refuse it. */
    if (ok && verify(ca, x, X509_PURPOSE_ANY) != 0) {
        ok = 0;
    }
    X509_free(ca);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

TEST(identity_refusals)
{
    static const struct {
        const char *uris[3];
        size_t lens[3];
        int n;
        const char *why; /* in the message; NULL: accepted */
    } cases[] = {
        {{"flotilla://c1/server/s1"}, {23}, 1, NULL},
        /* Another URI beside ours is ignored. */
        {{"https://example.org/x", "flotilla://c1/agent/a1"}, {21, 22}, 2, NULL},
        {{"flotilla://c1/server/s1", "flotilla://c1/server/s2"}, {23, 23}, 2, "more than one"},
        {{"flotilla://c1/server/s1", "flotilla://c1/server/s1"}, {23, 23}, 2, "more than one"},
        {{"flotilla://c1/server/s1\0.evil"}, {29}, 1, "NUL"},
        {{"flotilla://c1/server/s1\0"}, {24}, 1, "NUL"},
        {{"flotilla://c1/admin/root"}, {24}, 1, "unknown role"},
        {{"flotilla://c1/Server/s1"}, {23}, 1, "unknown role"},
        {{"flotilla://c1//s1"}, {17}, 1, "unknown role"},
        {{"https://example.org/x"}, {21}, 1, "no flotilla:// URI"},
        {{""}, {0}, 0, "no flotilla:// URI"},
        {{""}, {0}, -1, "no subjectAltName"},
        {{"flotilla://c1/server/s1/x"}, {25}, 1, "extra path"},
        {{"flotilla://c1/server"}, {20}, 1, "no name"},
        {{"flotilla://c1"}, {13}, 1, "no role"},
        {{"flotilla://c1/server/"}, {21}, 1, "invalid name"},
        {{"flotilla://c1/server/.."}, {23}, 1, "invalid name"},
        {{"flotilla://c1/server/s%31"}, {25}, 1, "invalid name"},
        {{"flotilla:///server/s1"}, {21}, 1, "invalid cluster"},
        {{"flotilla://-c/server/s1"}, {23}, 1, "invalid cluster"},
        {{"flotilla://c1:80/server/s1"}, {26}, 1, "invalid cluster"},
        {{"FLOTILLA://c1/server/s1"}, {23}, 1, "no flotilla:// URI"},
    };
    char err[FL_ERRMSG_SIZE];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pki_identity got;
        X509 *x = hand_cert(cases[i].uris, cases[i].lens, cases[i].n);
        int rv;
        REQUIRE(x != NULL);
        err[0] = '\0';
        memset(&got, 0x5a, sizeof got);
        rv = pki_identity_of(x, &got, err);
        if (cases[i].why == NULL) {
            CHECK_OK(rv);
            CHECK_EQ_STR(got.cluster, "c1");
        } else {
            CHECK_EQ_INT(rv, FL_EPROTO);
            CHECK(strstr(err, cases[i].why) != NULL);
        }
        if ((rv == FL_OK) != (cases[i].why == NULL) ||
            (cases[i].why != NULL && strstr(err, cases[i].why) == NULL)) {
            fprintf(stderr, "case %zu: rv %d, \"%s\"\n", i, rv, err);
        }
        X509_free(x);
    }
    CHECK_EQ_INT(pki_identity_of(NULL, NULL, err), FL_EPROTO);
}

/* ---- enrolment ------------------------------------------------------------ */

static char *csr_pem_of(X509_REQ *r, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    long n;
    if (b != NULL && PEM_write_bio_X509_REQ(b, r) == 1 && (n = BIO_get_mem_data(b, &data)) > 0) {
        out = fl_malloc((size_t)n + 1);
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
        *len = (size_t)n;
    }
    BIO_free(b);
    return out;
}

static X509_REQ *csr_parse(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509_REQ *r = b != NULL ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return r;
}

/* A CSR of any key, signed with md (NULL for Ed25519). */
static char *csr_with_key(EVP_PKEY *k, const EVP_MD *md, size_t *len)
{
    X509_REQ *r = X509_REQ_new();
    char *pem = NULL;
    if (r != NULL && X509_REQ_set_version(r, X509_REQ_VERSION_1) &&
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_UTF8,
                                   (const unsigned char *)"x", -1, -1, 0) &&
        X509_REQ_set_pubkey(r, k) && X509_REQ_sign(r, k, md) > 0) {
        pem = csr_pem_of(r, len);
    }
    X509_REQ_free(r);
    return pem;
}

TEST(csr_round_trip)
{
    char err[FL_ERRMSG_SIZE], cn[80];
    struct pki_ca *ca = NULL;
    struct pki_identity w = ident(PKI_ROLE_AGENT, "c1", "a1"), got;
    EVP_PKEY *key = NULL;
    char *pem = NULL, *cert_pem = NULL;
    size_t len = 0, cert_len = 0;
    X509_REQ *r;
    X509 *c, *cacert = load_ca_cert(ca_dir);
    BIO *b;
    CHECK_EQ_INT(pki_csr_make("bad/name", &key, &pem, &len, err), FL_EINVAL);
    CHECK_OK(pki_csr_make("server-please", &key, &pem, &len, err));
    REQUIRE(key != NULL && pem != NULL && cacert != NULL);
    CHECK_EQ_INT(strlen(pem), len);
    CHECK(strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----") == pem);
    r = csr_parse(pem, len);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(X509_REQ_verify(r, X509_REQ_get0_pubkey(r)), 1);
    CHECK(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(r), NID_commonName, cn, sizeof cn) >
          0);
    CHECK_EQ_STR(cn, "server-please");
    X509_REQ_free(r);

    CHECK_OK(pki_ca_load(ca_dir, &ca, err));
    REQUIRE(ca != NULL);
    CHECK_OK(pki_csr_sign(ca, pem, len, &w, 0, &cert_pem, &cert_len, err));
    REQUIRE(cert_pem != NULL);
    CHECK_EQ_INT(strlen(cert_pem), cert_len);
    b = BIO_new_mem_buf(cert_pem, (int)cert_len);
    c = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    REQUIRE(c != NULL);
    /* The certificate is for the CSR's key and names `who`, not the CSR. */
    CHECK_EQ_INT(EVP_PKEY_eq(X509_get0_pubkey(c), key), 1);
    CHECK_OK(pki_identity_of(c, &got, err));
    CHECK_EQ_INT(got.role, PKI_ROLE_AGENT);
    CHECK_EQ_STR(got.name, "a1");
    CHECK(X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn, sizeof cn) > 0);
    CHECK_EQ_STR(cn, "a1");
    CHECK_EQ_INT(verify(cacert, c, X509_PURPOSE_SSL_CLIENT), 0);
    CHECK(verify(cacert, c, X509_PURPOSE_SSL_SERVER) != 0);
    /* The wrong cluster is refused here too. */
    {
        struct pki_identity w2 = ident(PKI_ROLE_AGENT, "c9", "a1");
        char *p2 = NULL;
        size_t l2 = 0;
        CHECK_EQ_INT(pki_csr_sign(ca, pem, len, &w2, 0, &p2, &l2, err), FL_EINVAL);
        CHECK(p2 == NULL);
    }
    X509_free(c);
    X509_free(cacert);
    fl_free(cert_pem);
    fl_free(pem);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
}

/* The CSR pem with one DER byte (at `at`, counted from the end if < 0)
 * flipped, PEM again. */
static char *csr_flip(const char *pem, size_t len, long at, size_t *out_len)
{
    X509_REQ *r = csr_parse(pem, len);
    unsigned char *der = NULL;
    int n = r != NULL ? i2d_X509_REQ(r, &der) : -1;
    char *out = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (n > 0 && b != NULL) {
        char *data = NULL;
        long m;
        der[at < 0 ? n + at : at] ^= 0x01;
        if (PEM_write_bio(b, "CERTIFICATE REQUEST", "", der, n) > 0 &&
            (m = BIO_get_mem_data(b, &data)) > 0) {
            out = fl_malloc((size_t)m + 1);
            memcpy(out, data, (size_t)m);
            out[m] = '\0';
            *out_len = (size_t)m;
        }
    }
    BIO_free(b);
    OPENSSL_free(der);
    X509_REQ_free(r);
    return out;
}

TEST(csr_refusals)
{
    char err[FL_ERRMSG_SIZE];
    struct pki_ca *ca = NULL;
    struct pki_identity w = ident(PKI_ROLE_AGENT, "c1", "a1");
    EVP_PKEY *key = NULL, *ed, *p384;
    char *pem = NULL, *bad, *cert_pem = NULL;
    size_t len = 0, blen = 0, cert_len = 0;
    CHECK_OK(pki_ca_load(ca_dir, &ca, err));
    CHECK_OK(pki_csr_make("a1", &key, &pem, &len, err));
    REQUIRE(ca != NULL && pem != NULL);

    /* The signature's last byte flipped: still DER, no longer valid. */
    bad = csr_flip(pem, len, -1, &blen);
    REQUIRE(bad != NULL);
    CHECK_EQ_INT(pki_csr_sign(ca, bad, blen, &w, 0, &cert_pem, &cert_len, err), FL_EPROTO);
    CHECK(strstr(err, "signature") != NULL);
    CHECK(cert_pem == NULL);
    fl_free(bad);
    /* A byte of the subject flipped ('a1' -> 'a0'): the signature no longer covers it. */
    {
        X509_REQ *r = csr_parse(pem, len);
        unsigned char *der = NULL;
        int n = i2d_X509_REQ(r, &der);
        long at = -1;
        for (int i = 0; i + 1 < n; i++) {
            if (der[i] == 'a' && der[i + 1] == '1') {
                at = i + 1;
            }
        }
        REQUIRE(at > 0);
        bad = csr_flip(pem, len, at, &blen);
        REQUIRE(bad != NULL);
        CHECK_EQ_INT(pki_csr_sign(ca, bad, blen, &w, 0, &cert_pem, &cert_len, err), FL_EPROTO);
        fl_free(bad);
        OPENSSL_free(der);
        X509_REQ_free(r);
    }

    /* Ed25519 and P-384 keys, though well signed. */
    ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    REQUIRE(ed != NULL);
    bad = csr_with_key(ed, NULL, &blen);
    REQUIRE(bad != NULL);
    CHECK_EQ_INT(pki_csr_sign(ca, bad, blen, &w, 0, &cert_pem, &cert_len, err), FL_EPROTO);
    CHECK(strstr(err, "P-256") != NULL);
    fl_free(bad);
    EVP_PKEY_free(ed);
    p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    REQUIRE(p384 != NULL);
    bad = csr_with_key(p384, EVP_sha256(), &blen);
    REQUIRE(bad != NULL);
    CHECK_EQ_INT(pki_csr_sign(ca, bad, blen, &w, 0, &cert_pem, &cert_len, err), FL_EPROTO);
    fl_free(bad);
    EVP_PKEY_free(p384);

    /* More than 8 KiB, even if a valid request leads it. */
    bad = fl_malloc(8193);
    REQUIRE(bad != NULL);
    memset(bad, '\n', 8193);
    memcpy(bad, pem, len);
    CHECK_EQ_INT(pki_csr_sign(ca, bad, 8193, &w, 0, &cert_pem, &cert_len, err), FL_EDECODE);
    CHECK(strstr(err, "too large") != NULL);
    CHECK_OK(pki_csr_sign(ca, bad, 8192, &w, 0, &cert_pem, &cert_len, err));
    fl_free(cert_pem);
    cert_pem = NULL;
    fl_free(bad);

    /* Two requests; a certificate; garbage; nothing. */
    bad = fl_malloc(2 * len + 1);
    REQUIRE(bad != NULL);
    memcpy(bad, pem, len);
    memcpy(bad + len, pem, len);
    CHECK_EQ_INT(pki_csr_sign(ca, bad, 2 * len, &w, 0, &cert_pem, &cert_len, err), FL_EDECODE);
    CHECK(strstr(err, "exactly one") != NULL);
    fl_free(bad);
    {
        char p[PATHCAP];
        FILE *f;
        char buf[4096];
        size_t n;
        snprintf(p, sizeof p, "%s/%s", ca_dir, PKI_CA_CERT);
        f = fopen(p, "r");
        REQUIRE(f != NULL);
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        CHECK_EQ_INT(pki_csr_sign(ca, buf, n, &w, 0, &cert_pem, &cert_len, err), FL_EDECODE);
    }
    CHECK_EQ_INT(pki_csr_sign(ca, "hello", 5, &w, 0, &cert_pem, &cert_len, err), FL_EDECODE);
    CHECK_EQ_INT(pki_csr_sign(ca, pem, 0, &w, 0, &cert_pem, &cert_len, err), FL_EDECODE);
    CHECK(cert_pem == NULL);
    CHECK_EQ_INT(ERR_peek_error(), 0);
    fl_free(pem);
    EVP_PKEY_free(key);
    pki_ca_free(ca);
}

/* ---- files ---------------------------------------------------------------- */

TEST(key_file_mode)
{
    char p[PATHCAP], err[FL_ERRMSG_SIZE];
    struct pki_ca *ca = NULL;
    EVP_PKEY *k = NULL;
    X509 *c = issue("mode", PKI_ROLE_CLIENT, "carol", NULL, 0);
    REQUIRE(c != NULL);
    X509_free(c);
    snprintf(p, sizeof p, "%s/mode.key", root);
    REQUIRE(chmod(p, 0644) == 0);
    CHECK_EQ_INT(pki_load_key(p, &k, err), FL_EPROTO);
    CHECK(strstr(err, "chmod 600") != NULL);
    CHECK(strstr(err, p) != NULL);
    CHECK(k == NULL);
    REQUIRE(chmod(p, 0640) == 0);
    CHECK_EQ_INT(pki_load_key(p, &k, err), FL_EPROTO);
    REQUIRE(chmod(p, 0600) == 0);
    CHECK_OK(pki_load_key(p, &k, err));
    EVP_PKEY_free(k);
    k = NULL;
    /* The CA's key too. */
    snprintf(p, sizeof p, "%s/%s", ca_dir, PKI_CA_KEY);
    REQUIRE(chmod(p, 0644) == 0);
    CHECK_EQ_INT(pki_ca_load(ca_dir, &ca, err), FL_EPROTO);
    CHECK(strstr(err, "chmod 600") != NULL);
    REQUIRE(chmod(p, 0600) == 0);
    CHECK_OK(pki_ca_load(ca_dir, &ca, err));
    pki_ca_free(ca);
    /* Missing and non-PEM files. */
    snprintf(p, sizeof p, "%s/nope.key", root);
    CHECK_EQ_INT(pki_load_key(p, &k, err), FL_ENOTFOUND);
    CHECK_EQ_INT(pki_load_cert(p, &c, err), FL_ENOTFOUND);
    CHECK_OK(pki_write_file(p, "junk\n", 5, 0600, 0, err));
    CHECK_EQ_INT(pki_load_key(p, &k, err), FL_EDECODE);
    CHECK_EQ_INT(pki_load_cert(p, &c, err), FL_EDECODE);
    CHECK_EQ_INT(ERR_peek_error(), 0);
}

TEST(no_overwrite_without_force)
{
    char p[PATHCAP], k[PATHCAP], err[FL_ERRMSG_SIZE];
    struct pki_ca *ca = NULL;
    struct pki_identity w = ident(PKI_ROLE_SERVER, "c1", "s5");
    X509 *first, *second;
    char s1[64], s2[64];
    CHECK_OK(pki_ca_load(ca_dir, &ca, err));
    REQUIRE(ca != NULL);
    snprintf(p, sizeof p, "%s/nf", root);
    CHECK_OK(pki_issue_files(ca, &w, 0, NULL, 0, p, 0, err));
    snprintf(p, sizeof p, "%s/nf.pem", root);
    first = load_cert(p);
    snprintf(p, sizeof p, "%s/nf", root);
    CHECK_EQ_INT(pki_issue_files(ca, &w, 0, NULL, 0, p, 0, err), FL_EEXIST);
    CHECK(strstr(err, "already exists") != NULL);
    snprintf(p, sizeof p, "%s/nf.pem", root);
    second = load_cert(p);
    REQUIRE(first != NULL && second != NULL);
    CHECK_EQ_INT(X509_cmp(first, second), 0);
    X509_free(second);
    snprintf(p, sizeof p, "%s/nf", root);
    CHECK_OK(pki_issue_files(ca, &w, 0, NULL, 0, p, 1, err));
    snprintf(p, sizeof p, "%s/nf.pem", root);
    second = load_cert(p);
    REQUIRE(second != NULL);
    CHECK(X509_cmp(first, second) != 0);
    /* Serials: lower-case hex without leading zeros, fresh each time. */
    pki_serial_hex(first, s1, sizeof s1);
    pki_serial_hex(second, s2, sizeof s2);
    CHECK(strcmp(s1, s2) != 0);
    CHECK(strlen(s1) > 0 && strlen(s1) <= 40 && s1[0] != '0');
    CHECK(strspn(s1, "0123456789abcdef") == strlen(s1));
    {
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(first), NULL);
        char *hex = BN_bn2hex(bn);
        CHECK(BN_num_bits(bn) <= 159 && !BN_is_zero(bn) && !BN_is_negative(bn));
        CHECK(strcasecmp(hex[0] == '0' ? hex + 1 : hex, s1) == 0);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    X509_free(first);
    X509_free(second);

    /* A key file alone is enough to refuse, and the certificate is not written. */
    snprintf(k, sizeof k, "%s/half.key", root);
    CHECK_OK(pki_write_file(k, "x\n", 2, 0600, 0, err));
    CHECK_EQ_INT(file_mode(k), 0600);
    snprintf(p, sizeof p, "%s/half", root);
    CHECK_EQ_INT(pki_issue_files(ca, &w, 0, NULL, 0, p, 0, err), FL_EEXIST);
    snprintf(p, sizeof p, "%s/half.pem", root);
    CHECK(!exists(p));
    CHECK_EQ_INT(pki_write_file(k, "y\n", 2, 0600, 0, err), FL_EEXIST);
    CHECK_OK(pki_write_file(k, "y\n", 2, 0644, 1, err));
    CHECK_EQ_INT(file_mode(k), 0644);
    pki_ca_free(ca);
}

int main(void)
{
    char err[FL_ERRMSG_SIZE];
    if (check_tmpdir(root, sizeof root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(ca_dir, sizeof ca_dir, "%s/ca", root);
    if (pki_ca_init(ca_dir, "c1", 0, 0, err) != FL_OK) {
        fprintf(stderr, "pki_ca_init: %s\n", err);
        return 1;
    }
    RUN(ca_init_and_load);
    RUN(ca_load_refusals);
    RUN(issue_each_role);
    RUN(verify_purposes);
    RUN(other_ca_does_not_verify);
    RUN(sign_checks_identity);
    RUN(sans);
    RUN(names_and_roles);
    RUN(identity_refusals);
    RUN(csr_round_trip);
    RUN(csr_refusals);
    RUN(key_file_mode);
    RUN(no_overwrite_without_force);
    check_rmrf(root);
    return check_summary();
}
