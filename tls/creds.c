/* The credentials of a process's links (tls/creds.h). */
#include "tls/creds.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/alloc.h"
#include "common/err.h"
#include "tls/tls_int.h"

#define PATH_CAP 4096

struct tls_creds {
    pthread_mutex_t mu;
    SSL_CTX *dial, *accept; /* under mu */
    struct pki_identity self;
    tls_deny_fn deny;
    void *deny_ud;
    char ca[PATH_CAP], cert[PATH_CAP], key[PATH_CAP];
};

void tls__ssl_reason(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(out, cap, "%s", "");
        return;
    }
    ERR_error_string_n(e, out, cap);
}

static SSL_CTX *make_ctx(int server, X509 *cert, STACK_OF(X509) * chain, EVP_PKEY *key,
                         const char *ca_path, char *errmsg)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        fl_errf(errmsg, FL_ENOMEM, "TLS context: out of memory");
        return NULL;
    }
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 ||
        SSL_CTX_load_verify_locations(ctx, ca_path, NULL) != 1) {
        tls__ssl_reason(why, sizeof why);
        fl_errf(errmsg, FL_EPROTO, "TLS context from %s: %s", ca_path, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i));
    }
    /* No tickets, no session cache: every handshake checks certificates. */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* A peer that has not authenticated cannot make us hold a large chain. */
    SSL_CTX_set_max_cert_list(ctx, 32 * 1024);
    SSL_CTX_set_verify(ctx,
                       server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                       tls__verify_cb);
    SSL_CTX_set_verify_depth(ctx, 2);
    return ctx;
}

/* Read the files into two fresh contexts and the identity they name. */
static int build(const char *ca, const char *certf, const char *keyf, SSL_CTX **dial,
                 SSL_CTX **accept, struct pki_identity *self, char *errmsg)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *vx = NULL;
    char why[256];
    int rv = pki_load_cert(certf, &cert, errmsg);
    if (rv != FL_OK) {
        goto out;
    }
    if ((rv = pki_load_key(keyf, &key, errmsg)) != FL_OK) {
        goto out;
    }
    if ((rv = pki_identity_of(cert, self, errmsg)) != FL_OK) {
        char inner[FL_ERRMSG_SIZE];
        snprintf(inner, sizeof inner, "%s", errmsg ? errmsg : "");
        rv = fl_errf(errmsg, FL_EPROTO, "%s: %s", certf, inner);
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        rv = fl_errf(errmsg, FL_EPROTO, "%s does not belong to the certificate %s", keyf, certf);
        goto out;
    }
    /* The certificate must verify against the CA we trust: a process with a
     * certificate of another CA could never link, so say it now. */
    store = X509_STORE_new();
    vx = X509_STORE_CTX_new();
    if (store == NULL || vx == NULL) {
        rv = fl_errf(errmsg, FL_ENOMEM, "out of memory");
        goto out;
    }
    ERR_clear_error();
    if (X509_STORE_load_file(store, ca) != 1) {
        tls__ssl_reason(why, sizeof why);
        rv = fl_errf(errmsg, FL_EIO, "CA certificate %s: %s", ca, why);
        goto out;
    }
    if (X509_STORE_CTX_init(vx, store, cert, NULL) != 1 || X509_verify_cert(vx) != 1) {
        rv = fl_errf(errmsg, FL_EPROTO, "%s does not verify against the CA %s: %s", certf, ca,
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(vx)));
        goto out;
    }
    *dial = make_ctx(0, cert, chain, key, ca, errmsg);
    *accept = *dial ? make_ctx(1, cert, chain, key, ca, errmsg) : NULL;
    if (*accept == NULL) {
        SSL_CTX_free(*dial);
        *dial = NULL;
        rv = FL_EPROTO;
        goto out;
    }
    rv = FL_OK;
out:
    X509_STORE_CTX_free(vx);
    X509_STORE_free(store);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

static void keep_paths(struct tls_creds *c, const struct tls_creds_files *f)
{
    snprintf(c->ca, sizeof c->ca, "%s", f->ca);
    snprintf(c->cert, sizeof c->cert, "%s", f->cert);
    snprintf(c->key, sizeof c->key, "%s", f->key);
}

int tls_creds_load(const struct tls_creds_files *f, struct tls_creds **out, char *errmsg)
{
    struct tls_creds *c;
    int rv;
    if (f == NULL || f->ca == NULL || f->cert == NULL || f->key == NULL || !f->ca[0] ||
        !f->cert[0] || !f->key[0]) {
        return fl_errf(errmsg, FL_EINVAL, "TLS needs a CA certificate, a certificate and a key");
    }
    c = fl_calloc(1, sizeof *c);
    if (c == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    rv = build(f->ca, f->cert, f->key, &c->dial, &c->accept, &c->self, errmsg);
    if (rv != FL_OK) {
        fl_free(c);
        return rv;
    }
    pthread_mutex_init(&c->mu, NULL);
    keep_paths(c, f);
    *out = c;
    return FL_OK;
}

int tls_creds_load_ca(const char *ca, struct tls_creds **out, char *errmsg)
{
    struct tls_creds *c;
    char why[256];
    if (ca == NULL || ca[0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "no CA certificate");
    }
    c = fl_calloc(1, sizeof *c);
    if (c == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    c->dial = SSL_CTX_new(TLS_client_method());
    ERR_clear_error();
    if (c->dial == NULL || SSL_CTX_set_min_proto_version(c->dial, TLS1_3_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(c->dial, ca, NULL) != 1) {
        tls__ssl_reason(why, sizeof why);
        SSL_CTX_free(c->dial);
        fl_free(c);
        return fl_errf(errmsg, FL_EIO, "CA certificate %s: %s", ca, why[0] ? why : "unreadable");
    }
    SSL_CTX_set_session_cache_mode(c->dial, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(c->dial, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_max_cert_list(c->dial, 32 * 1024);
    SSL_CTX_set_verify(c->dial, SSL_VERIFY_PEER, tls__verify_cb);
    SSL_CTX_set_verify_depth(c->dial, 2);
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->ca, sizeof c->ca, "%s", ca);
    *out = c;
    return FL_OK;
}

int tls_creds_reload(struct tls_creds *c, const struct tls_creds_files *f, char *errmsg)
{
    struct tls_creds_files same = {c->ca, c->cert, c->key};
    struct pki_identity self;
    SSL_CTX *dial, *accept, *old_dial, *old_accept;
    int rv;
    if (f == NULL) {
        f = &same;
    }
    rv = build(f->ca, f->cert, f->key, &dial, &accept, &self, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (self.role != c->self.role || strcmp(self.name, c->self.name) != 0 ||
        strcmp(self.cluster, c->self.cluster) != 0) {
        SSL_CTX_free(dial);
        SSL_CTX_free(accept);
        return fl_errf(errmsg, FL_EINVAL,
                       "the new certificate names %s/%s/%s, this process is %s/%s/%s", self.cluster,
                       pki_role_name(self.role), self.name, c->self.cluster,
                       pki_role_name(c->self.role), c->self.name);
    }
    pthread_mutex_lock(&c->mu);
    old_dial = c->dial;
    old_accept = c->accept;
    c->dial = dial;
    c->accept = accept;
    if (f != &same) {
        keep_paths(c, f);
    }
    pthread_mutex_unlock(&c->mu);
    SSL_CTX_free(old_dial); /* links made with them hold their own reference */
    SSL_CTX_free(old_accept);
    return FL_OK;
}

void tls_creds_free(struct tls_creds *c)
{
    if (c == NULL) {
        return;
    }
    SSL_CTX_free(c->dial);
    SSL_CTX_free(c->accept);
    pthread_mutex_destroy(&c->mu);
    fl_free(c);
}

SSL_CTX *tls__ctx_get(struct tls_creds *c, int server)
{
    SSL_CTX *ctx;
    pthread_mutex_lock(&c->mu);
    ctx = server ? c->accept : c->dial;
    if (ctx != NULL) {
        SSL_CTX_up_ref(ctx);
    }
    pthread_mutex_unlock(&c->mu);
    return ctx;
}

int tls__denied(struct tls_creds *c, const struct pki_identity *peer, const char *serial)
{
    tls_deny_fn fn;
    void *ud;
    pthread_mutex_lock(&c->mu);
    fn = c->deny;
    ud = c->deny_ud;
    pthread_mutex_unlock(&c->mu);
    return fn != NULL && fn(ud, peer, serial);
}

const struct pki_identity *tls_creds_self(const struct tls_creds *c)
{
    return &c->self;
}

void tls_creds_set_deny(struct tls_creds *c, tls_deny_fn fn, void *ud)
{
    pthread_mutex_lock(&c->mu);
    c->deny = fn;
    c->deny_ud = ud;
    pthread_mutex_unlock(&c->mu);
}

const char *tls_creds_cert_path(const struct tls_creds *c)
{
    return c->cert;
}

const char *tls_creds_ca_path(const struct tls_creds *c)
{
    return c->ca;
}
