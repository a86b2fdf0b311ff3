/* tls/ internals shared by creds.c and tlink.c. */
#ifndef FL_TLS_TLS_INT_H
#define FL_TLS_TLS_INT_H

#include <openssl/ssl.h>

#include "tls/creds.h"

/* The context for dialling (server 0) or accepting (server 1), with a
 * reference taken (SSL_CTX_free it). */
SSL_CTX *tls__ctx_get(struct tls_creds *c, int server);
/* Ask the deny-list hook (0 when none is set). */
int tls__denied(struct tls_creds *c, const struct pki_identity *peer, const char *serial);
/* The verify callback both contexts install (tlink.c): it finds its link in
 * the SSL's app data and applies the link's policy. */
int tls__verify_cb(int preverify_ok, X509_STORE_CTX *x);
/* The OpenSSL reason of the last error, for messages ("" if none). */
void tls__ssl_reason(char *out, size_t cap);

#endif
