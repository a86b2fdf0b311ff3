/* Blocking HTTP/1.1 client for the command-line tools (no event loop).
 *
 * One request per connection ("Connection: close"); the response is parsed
 * by the clients' one response parser (http/response.h: Content-Length,
 * chunked and close-delimited bodies, bounded headers) and bounded by
 * HTTPC_MAX_BODY. Sends with MSG_NOSIGNAL, so a dead peer never
 * raises SIGPIPE. */
#ifndef FL_HTTP_BLOCKING_H
#define FL_HTTP_BLOCKING_H

#include <stddef.h>

#include "tls/creds.h"

#define HTTPC_MAX_BODY (64u * 1024u * 1024u)
#define HTTPC_HOST_MAX 256 /* host buffer of httpc_split_addr, NUL included */
#define HTTPC_PORT_MAX 6

/* A response; the caller owns it and frees it with httpc_response_free. */
struct httpc_response {
    int status;
    char *content_type; /* NULL if the response had none */
    char *body;         /* never NULL after success; NUL-terminated */
    size_t body_len;    /* without that NUL */
};

/* The credentials of HTTPS (the CA, and a client certificate if they have
 * one: tls/creds.h); kept, not owned. Once set, an address without a scheme
 * ("host:port") is HTTPS too, as the API always is; "http://" stays plain
 * (an application's health URL). Without them an https:// address is
 * FL_EINVAL. */
void httpc_set_tls(struct tls_creds *creds);

/* Send `method path_and_query` with body (copied; may be NULL when len is
 * 0) to addr ("host:port", "http://host:port[/]" or "https://host:port[/]":
 * TLS 1.3, the server's certificate checked against the CA; host is a name or an
 * IPv4 or bracketed IPv6 literal) and wait for the whole response.
 * extra_headers ("Name: value\r\n"..., may be NULL) are sent verbatim after
 * Host, Content-Length and Connection. timeout_ms bounds the whole exchange
 * (connect included); <= 0 waits forever.
 *
 * Returns FL_OK with *out filled (any HTTP status), or (FL_EPROTO also for a
 * TLS handshake that failed either way):
 *   FL_EINVAL    malformed addr or arguments;
 *   FL_ENET      resolve, connect, send or receive failed, or the peer
 *                closed before the response started;
 *   FL_ETIMEOUT  timeout_ms elapsed;
 *   FL_EPROTO    malformed or truncated response, or headers beyond the
 *                parser's limits (http/response.h);
 *   FL_ETOOBIG   response body over HTTPC_MAX_BODY;
 *   FL_ENOMEM    out of memory.
 * On error *out is zeroed and errmsg (FL_ERRMSG_SIZE, may be NULL) says what
 * happened, e.g. "connect to 127.0.0.1:8401: Connection refused". */
int httpc_request(const char *addr, const char *method, const char *path_and_query,
                  const char *extra_headers, const void *body, size_t len, int timeout_ms,
                  struct httpc_response *out, char *errmsg);

/* Split addr ("host:port", "[v6]:port", with an optional "http://" and
 * trailing '/'; or "https://") into host (brackets removed) and port (1..65535, digits).
 * *norm and *norm_len (may be NULL) get the address without scheme and
 * slashes, pointing into addr. Returns FL_OK or FL_EINVAL. */
int httpc_split_addr(const char *addr, char host[HTTPC_HOST_MAX], char port[HTTPC_PORT_MAX],
                     const char **norm, size_t *norm_len);

/* Free what a response holds and zero it; NULL or a zeroed one is fine. */
void httpc_response_free(struct httpc_response *r);

#endif
