/* One link over mutual TLS 1.3 through memory BIOs (tls/tlink.h).
 *
 * The rules of tls-notes §6 hold throughout: the write BIO is drained after
 * every SSL call whatever it returned; SSL_read is looped until it wants
 * more bytes, also straight after the handshake completes; the error queue is
 * cleared before every I/O call; a zero-length SSL_write is never made. */
#include "tls/tlink.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/alloc.h"
#include "common/err.h"
#include "tls/tls_int.h"

#define MAGIC      "FLT1"
#define MAGIC_LEN  4
#define HELLO_MAX  (MAGIC_LEN + 2 + TLINK_CLAIM_MAX)
#define DRAIN_SLAB 16384
#define WRITE_MAX  (64u * 1024u) /* plaintext per SSL_write call */

struct tlink {
    struct tls_creds *creds;
    SSL *ssl;
    BIO *rb, *wb; /* owned by ssl */
    int initiator;
    int state;
    int err; /* the error a failed link keeps returning */
    uint8_t kind;
    int sent_hello;
    char claim[TLINK_CLAIM_MAX + 1];
    char expect[PKI_NAME_MAX + 1];
    struct pki_identity peer;
    char peer_claim[TLINK_CLAIM_MAX + 1];
    uint8_t hello[HELLO_MAX]; /* the peer's HELLO as it arrives */
    size_t hello_len;
    char policy[FL_ERRMSG_SIZE]; /* why the verify callback refused, if it did */
    char errmsg[FL_ERRMSG_SIZE];
};

static const char *kind_name(int kind)
{
    switch (kind) {
    case TLINK_RAFT:
        return "raft";
    case TLINK_AGENT:
        return "agent";
    case TLINK_BLOB:
        return "blob";
    case TLINK_HTTPS:
        return "https";
    }
    return "?";
}

/* ---- the peer's certificate ---------------------------------------------- */

static int role_allowed(const struct tlink *l, int role)
{
    if (!l->initiator) {
        switch (l->kind) {
        case TLINK_RAFT:
            return role == PKI_ROLE_SERVER;
        case TLINK_AGENT:
            return role == PKI_ROLE_AGENT || role == PKI_ROLE_SERVER;
        case TLINK_BLOB:
        case TLINK_HTTPS:
            return role == PKI_ROLE_SERVER || role == PKI_ROLE_AGENT || role == PKI_ROLE_CLIENT;
        }
        return 0;
    }
    return role == PKI_ROLE_SERVER; /* we dial servers only */
}

int tls__verify_cb(int preverify_ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tlink *l = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(x);
    struct pki_identity id;
    char why[FL_ERRMSG_SIZE], serial[64];
    if (l == NULL) {
        return 0;
    }
    if (!preverify_ok) {
        snprintf(l->policy, sizeof l->policy, "the peer's certificate does not verify: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(x) != 0) {
        return 1; /* the CA itself: chain checks are OpenSSL's */
    }
    if (pki_identity_of(cert, &id, why) != FL_OK) {
        snprintf(l->policy, sizeof l->policy, "the peer's certificate: %.200s", why);
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (tls_creds_self(l->creds)->cluster[0] != '\0' &&
        strcmp(id.cluster, tls_creds_self(l->creds)->cluster) != 0) {
        snprintf(l->policy, sizeof l->policy, "%s \"%s\" belongs to cluster \"%s\", not \"%s\"",
                 pki_role_name(id.role), id.name, id.cluster, tls_creds_self(l->creds)->cluster);
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (!role_allowed(l, id.role)) {
        snprintf(l->policy, sizeof l->policy, "a %s certificate (\"%s\") may not %s a %s link",
                 pki_role_name(id.role), id.name, l->initiator ? "answer" : "open",
                 kind_name(l->kind));
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    if (l->expect[0] && strcmp(id.name, l->expect) != 0) {
        snprintf(l->policy, sizeof l->policy, "expected %s \"%s\", the peer is \"%s\"",
                 pki_role_name(id.role), l->expect, id.name);
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    pki_serial_hex(cert, serial, sizeof serial);
    if (tls__denied(l->creds, &id, serial)) {
        snprintf(l->policy, sizeof l->policy, "%s \"%s\" (serial %s) is revoked",
                 pki_role_name(id.role), id.name, serial);
        X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REVOKED);
        return 0;
    }
    l->peer = id;
    return 1;
}

/* ---- plumbing ------------------------------------------------------------ */

static int fail(struct tlink *l, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct tlink *l, int err, const char *fmt, ...)
{
    va_list ap;
    if (l->state != TLINK_FAILED) {
        l->state = TLINK_FAILED;
        l->err = err;
        va_start(ap, fmt);
        vsnprintf(l->errmsg, sizeof l->errmsg, fmt, ap);
        va_end(ap);
    }
    return l->err;
}

static int drain(struct tlink *l, struct fl_buf *wire)
{
    size_t n;
    while ((n = (size_t)BIO_ctrl_pending(l->wb)) > 0) {
        if (fl_buf_reserve(wire, n) != FL_OK) {
            return fail(l, FL_ENOMEM, "out of memory");
        }
        int k = BIO_read(l->wb, wire->data + wire->len, (int)n);
        if (k <= 0) {
            break;
        }
        wire->len += (size_t)k;
    }
    return FL_OK;
}

/* An SSL call failed for good: say why, in the words that help. */
static int ssl_fail(struct tlink *l, int e, struct fl_buf *wire)
{
    char why[256];
    tls__ssl_reason(why, sizeof why);
    drain(l, wire); /* the alert tells the peer why */
    if (l->policy[0]) {
        return fail(l, FL_EPROTO, "TLS handshake refused: %s", l->policy);
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        return fail(l, FL_EPROTO, "the peer closed the link");
    }
    if (SSL_get_verify_result(l->ssl) != X509_V_OK) {
        return fail(l, FL_EPROTO, "TLS: the peer's certificate: %s (%s)",
                    X509_verify_cert_error_string(SSL_get_verify_result(l->ssl)), why);
    }
    return fail(l, FL_EPROTO, "TLS: %s", why[0] ? why : "the connection failed");
}

static int send_hello(struct tlink *l, struct fl_buf *wire)
{
    uint8_t h[HELLO_MAX];
    size_t n = strlen(l->claim);
    memcpy(h, MAGIC, MAGIC_LEN);
    h[MAGIC_LEN] = l->kind;
    h[MAGIC_LEN + 1] = (uint8_t)n;
    memcpy(h + MAGIC_LEN + 2, l->claim, n);
    ERR_clear_error();
    int r = SSL_write(l->ssl, h, (int)(MAGIC_LEN + 2 + n));
    if (r <= 0) {
        return ssl_fail(l, SSL_get_error(l->ssl, r), wire);
    }
    l->sent_hello = 1;
    return drain(l, wire);
}

/* Take the peer's HELLO off the front of `p`; *used is how much was its. */
static int take_hello(struct tlink *l, const uint8_t *p, size_t n, size_t *used,
                      struct fl_buf *wire)
{
    size_t need;
    *used = 0;
    while (*used < n) {
        need =
            l->hello_len < MAGIC_LEN + 2 ? MAGIC_LEN + 2 : MAGIC_LEN + 2 + l->hello[MAGIC_LEN + 1];
        if (l->hello_len >= need) {
            break;
        }
        l->hello[l->hello_len++] = p[(*used)++];
        if (l->hello_len == MAGIC_LEN && memcmp(l->hello, MAGIC, MAGIC_LEN) != 0) {
            return fail(l, FL_EPROTO, "the peer's first message is not a Flotilla HELLO");
        }
        if (l->hello_len == MAGIC_LEN + 1 && l->hello[MAGIC_LEN] != l->kind) {
            return fail(l, FL_EPROTO, "the peer opened a %s link on a %s port",
                        kind_name(l->hello[MAGIC_LEN]), kind_name(l->kind));
        }
    }
    need = l->hello_len < MAGIC_LEN + 2 ? MAGIC_LEN + 2 : MAGIC_LEN + 2 + l->hello[MAGIC_LEN + 1];
    if (l->hello_len < need) {
        return FL_OK; /* more to come */
    }
    size_t cn = l->hello[MAGIC_LEN + 1];
    for (size_t i = 0; i < cn; i++) {
        uint8_t ch = l->hello[MAGIC_LEN + 2 + i];
        if (ch < 0x21 || ch > 0x7e) {
            return fail(l, FL_EPROTO, "the peer's HELLO claim is not printable");
        }
    }
    memcpy(l->peer_claim, l->hello + MAGIC_LEN + 2, cn);
    l->peer_claim[cn] = '\0';
    if (!l->initiator) {
        int rv = send_hello(l, wire); /* admitted: answer */
        if (rv != FL_OK) {
            return rv;
        }
    }
    l->state = TLINK_OPEN;
    return FL_OK;
}

/* Read every decrypted byte there is. */
static int pump(struct tlink *l, struct fl_buf *wire, struct fl_buf *plain)
{
    uint8_t tmp[DRAIN_SLAB];
    for (;;) {
        if (!SSL_is_init_finished(l->ssl)) {
            ERR_clear_error();
            int r = SSL_do_handshake(l->ssl);
            int e = SSL_get_error(l->ssl, r);
            int rv = drain(l, wire);
            if (rv != FL_OK) {
                return rv;
            }
            if (r != 1) {
                if (e == SSL_ERROR_WANT_READ) {
                    return FL_OK;
                }
                return ssl_fail(l, e, wire);
            }
            if (l->kind == TLINK_HTTPS) {
                l->state = TLINK_OPEN; /* no HELLO: the API's tokens decide */
            } else if (l->initiator && !l->sent_hello && (rv = send_hello(l, wire)) != FL_OK) {
                return rv;
            }
        }
        ERR_clear_error();
        int r = SSL_read(l->ssl, tmp, sizeof tmp);
        int e = SSL_get_error(l->ssl, r);
        int rv = drain(l, wire);
        if (rv != FL_OK) {
            return rv;
        }
        if (r <= 0) {
            if (e == SSL_ERROR_WANT_READ) {
                return FL_OK;
            }
            if (e == SSL_ERROR_ZERO_RETURN && l->state == TLINK_OPEN) {
                return FL_OK; /* close_notify: a clean end; EOF follows */
            }
            return ssl_fail(l, e, wire);
        }
        size_t off = 0;
        if (l->state == TLINK_HANDSHAKE) {
            if ((rv = take_hello(l, tmp, (size_t)r, &off, wire)) != FL_OK) {
                return rv;
            }
        }
        if (off < (size_t)r) {
            if (l->state != TLINK_OPEN) {
                return fail(l, FL_EPROTO, "the peer sent data before its HELLO");
            }
            if (fl_buf_append(plain, tmp + off, (size_t)r - off) != FL_OK) {
                return fail(l, FL_ENOMEM, "out of memory");
            }
        }
    }
}

/* ---- the contract ---------------------------------------------------------- */

int tlink_create(const struct tlink_config *c, int initiator, struct tlink **out, char *errmsg)
{
    struct tlink *l;
    SSL_CTX *ctx;
    size_t cn = c->claim ? strlen(c->claim) : 0;
    if (c->creds == NULL || c->kind < TLINK_RAFT || c->kind > TLINK_HTTPS) {
        return fl_errf(errmsg, FL_EINVAL, "a link needs credentials and a kind");
    }
    if (cn > TLINK_CLAIM_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "claim longer than %d bytes", TLINK_CLAIM_MAX);
    }
    for (size_t i = 0; i < cn; i++) {
        if (c->claim[i] < 0x21 || c->claim[i] > 0x7e) {
            return fl_errf(errmsg, FL_EINVAL, "claim \"%s\" is not printable ASCII", c->claim);
        }
    }
    if (c->expect_name && strlen(c->expect_name) > PKI_NAME_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "expected name too long");
    }
    l = fl_calloc(1, sizeof *l);
    if (l == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    ctx = tls__ctx_get(c->creds, !initiator);
    if (ctx == NULL) {
        fl_free(l);
        return fl_errf(errmsg, FL_EINVAL, "these credentials cannot %s links",
                       initiator ? "dial" : "accept");
    }
    l->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    l->rb = BIO_new(BIO_s_mem());
    l->wb = BIO_new(BIO_s_mem());
    if (l->ssl == NULL || l->rb == NULL || l->wb == NULL) {
        BIO_free(l->rb);
        BIO_free(l->wb);
        SSL_free(l->ssl);
        fl_free(l);
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    SSL_set0_rbio(l->ssl, l->rb);
    SSL_set0_wbio(l->ssl, l->wb);
    SSL_set_app_data(l->ssl, l);
    if (!initiator && c->kind == TLINK_HTTPS) {
        /* A client certificate may come and is checked if it does; tokens
         * authorize API calls. */
        SSL_set_verify(l->ssl, SSL_VERIFY_PEER, tls__verify_cb);
    }
    if (c->kind == TLINK_RAFT) {
        /* A few busy links: keep their record buffers instead of freeing and
         * allocating them around every record (the mode saves memory on the
         * thousands of mostly idle agent links). */
        SSL_clear_mode(l->ssl, SSL_MODE_RELEASE_BUFFERS);
    }
    if (initiator) {
        SSL_set_connect_state(l->ssl);
    } else {
        SSL_set_accept_state(l->ssl);
    }
    l->creds = c->creds;
    l->initiator = initiator;
    l->kind = c->kind;
    l->state = TLINK_HANDSHAKE;
    memcpy(l->claim, c->claim ? c->claim : "", cn);
    snprintf(l->expect, sizeof l->expect, "%s", c->expect_name ? c->expect_name : "");
    *out = l;
    return FL_OK;
}

void tlink_destroy(struct tlink *l)
{
    if (l == NULL) {
        return;
    }
    SSL_set_shutdown(l->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(l->ssl);
    fl_free(l);
}

int tlink_start(struct tlink *l, struct fl_buf *wire)
{
    if (!l->initiator || l->state != TLINK_HANDSHAKE || SSL_in_before(l->ssl) == 0) {
        return FL_EINVAL;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(l->ssl);
    int e = SSL_get_error(l->ssl, r);
    int rv = drain(l, wire);
    if (rv != FL_OK) {
        return rv;
    }
    if (r != 1 && e != SSL_ERROR_WANT_READ) {
        return ssl_fail(l, e, wire);
    }
    return FL_OK;
}

int tlink_recv(struct tlink *l, const uint8_t *p, size_t n, struct fl_buf *wire,
               struct fl_buf *plain)
{
    if (l->state == TLINK_FAILED) {
        return l->err;
    }
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        if (BIO_write(l->rb, p, chunk) != chunk) {
            return fail(l, FL_ENOMEM, "out of memory");
        }
        p += chunk;
        n -= (size_t)chunk;
    }
    return pump(l, wire, plain);
}

int tlink_send(struct tlink *l, const uint8_t *p, size_t n, struct fl_buf *wire)
{
    if (l->state == TLINK_FAILED) {
        return l->err;
    }
    if (l->state != TLINK_OPEN) {
        return FL_EINVAL;
    }
    while (n > 0) {
        size_t k = n > WRITE_MAX ? WRITE_MAX : n;
        ERR_clear_error();
        int r = SSL_write(l->ssl, p, (int)k);
        if (r <= 0) {
            return ssl_fail(l, SSL_get_error(l->ssl, r), wire);
        }
        p += r;
        n -= (size_t)r;
        int rv = drain(l, wire);
        if (rv != FL_OK) {
            return rv;
        }
    }
    return FL_OK;
}

void tlink_shutdown(struct tlink *l, struct fl_buf *wire)
{
    if (l->state == TLINK_OPEN) {
        ERR_clear_error();
        SSL_shutdown(l->ssl);
        drain(l, wire);
    }
}

int tlink_eof(struct tlink *l)
{
    if (l->state == TLINK_FAILED) {
        return l->err;
    }
    if (BIO_ctrl_pending(l->rb) > 0 || SSL_has_pending(l->ssl)) {
        return fail(l, FL_EPROTO, "the connection ended inside a TLS record (truncated)");
    }
    return FL_OK;
}

int tlink_state(const struct tlink *l)
{
    return l->state;
}

const struct pki_identity *tlink_peer(const struct tlink *l)
{
    return &l->peer;
}

const char *tlink_peer_claim(const struct tlink *l)
{
    return l->state == TLINK_OPEN ? l->peer_claim : "";
}

int tlink_binding(const struct tlink *l, unsigned char out[TLINK_BINDING_BYTES])
{
    static const char label[] = "EXPORTER-flotilla-binding";
    if (l->state != TLINK_OPEN) {
        return FL_EINVAL;
    }
    if (SSL_export_keying_material(l->ssl, out, TLINK_BINDING_BYTES, label, sizeof label - 1, NULL,
                                   0, 0) != 1) {
        return FL_EPROTO;
    }
    return FL_OK;
}

const char *tlink_errmsg(const struct tlink *l)
{
    return l->errmsg;
}

size_t tlink_pending(const struct tlink *l)
{
    return (size_t)BIO_ctrl_pending(l->rb) + (size_t)(SSL_has_pending(l->ssl) ? 1 : 0);
}
