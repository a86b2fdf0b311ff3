/* Asynchronous HTTP/1.1 client on the node's libuv loop.
 *
 * A follower uses it to forward an API request to the leader and relay the
 * answer. Responses are parsed by the clients' one response parser
 * (http/response.h: Content-Length, chunked and close-delimited bodies,
 * bounded headers) and bounded by HTTP_CLIENT_MAX_BODY.
 *
 * Connections are kept alive and pooled per (loop, address) while idle, at
 * most HTTP_CLIENT_POOL_PER_ADDR of them, for at most HTTP_CLIENT_POOL_IDLE_MS
 * (below the server's default idle timeout). An idle pooled connection does
 * not keep uv_run alive, but it is a handle of the loop: call
 * http_client_close_idle(loop) before uv_loop_close. When a request sent on a
 * reused connection fails before any byte of the response arrived (most
 * often the server had closed it while idle), it is retried once on a new
 * connection only if it may be repeated: a safe method (GET, HEAD, OPTIONS)
 * or HTTP_CLIENT_REPEATABLE. Any other request is never sent twice, since
 * the server may have read and acted on it before it closed.
 *
 * Threading: a request and its callback stay on the loop's thread; several
 * loops on several threads may use the client at once (the pool is locked).
 * The process must ignore SIGPIPE (libuv writes with write(2)). */
#ifndef FL_HTTP_CLIENT_H
#define FL_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "tls/creds.h"

#define HTTP_CLIENT_MAX_BODY      (64u * 1024u * 1024u)
#define HTTP_CLIENT_POOL_PER_ADDR 8
#define HTTP_CLIENT_POOL_IDLE_MS  30000
#define HTTP_CLIENT_MAYBE_SENT    (-1)
#define HTTP_CLIENT_REPEATABLE    1u /* flag: sending it twice changes nothing */

/* The outcome of one request. err is FL_OK when a complete response arrived
 * (whatever its status), else:
 *   FL_ENET      resolve, connect, write or read failed, or the peer closed
 *                the connection before sending anything;
 *   FL_ETIMEOUT  no complete response within timeout_ms of the call;
 *   FL_EPROTO    malformed or truncated response, headers beyond the
 *                parser's limits (http/response.h), or a body larger than
 *                HTTP_CLIENT_MAX_BODY;
 *   FL_ENOMEM    out of memory.
 * On error content_type and body are NULL, and status tells whether the
 * server may have acted on the request: 0 when it certainly did not (resolve
 * or connect failed, on every attempt), HTTP_CLIENT_MAYBE_SENT when some
 * attempt wrote the request, at least in part, before the failure (a write
 * forwarded this way may have been applied: its outcome is unknown). On success content_type
 * is NULL if the response had none, and body is never NULL (NUL-terminated,
 * "" when empty). content_type and body are valid during the call only. */
typedef void (*http_client_cb)(void *data, int err, int status, const char *content_type,
                               const uint8_t *body, size_t len);

/* Send `method path_and_query` with body (copied; may be NULL when len is 0)
 * to addr ("host:port", optionally "http://host:port", or "https://host:port"
 * for TLS; host is an IPv4 or
 * bracketed IPv6 literal or a name resolved with uv_getaddrinfo).
 * extra_headers ("Name: value\r\n"..., may be NULL) are added verbatim
 * after Host and Content-Length. timeout_ms 0 means no timeout.
 *
 * Returns FL_OK, and then cb is called exactly once, from the loop, never
 * from inside this call. Returns FL_EINVAL (malformed addr or arguments) or
 * FL_ENOMEM, and then cb is never called. */
int http_client_request(uv_loop_t *loop, const char *addr, const char *method,
                        const char *path_and_query, const char *extra_headers, const void *body,
                        size_t len, unsigned timeout_ms, http_client_cb cb, void *data);
/* The same with flags: HTTP_CLIENT_REPEATABLE lets a request of an unsafe
 * method be retried as a safe one is (the caller knows a second copy is
 * harmless: it carries a request identity, docs/API.md). */
int http_client_request_flags(uv_loop_t *loop, const char *addr, const char *method,
                              const char *path_and_query, const char *extra_headers,
                              const void *body, size_t len, unsigned timeout_ms, unsigned flags,
                              http_client_cb cb, void *data);

/* The credentials of "https://" addresses (tls/creds.h; kept, not owned):
 * TLS 1.3, the server's certificate checked against the CA, this process's
 * certificate presented. Without them an https:// address is FL_EINVAL. */
void http_client_set_tls(struct tls_creds *creds);

/* Close every idle pooled connection of loop (their memory is released by
 * the loop's next iteration). Requests in flight are not affected; their
 * connections are closed or pooled when they finish. */
void http_client_close_idle(uv_loop_t *loop);

/* The idle pooled connections of loop (of every loop when NULL). After
 * http_client_close_idle(loop) and the loop's next iteration it is 0 for
 * that loop; an entry left for a loop that is then closed would be taken by
 * the next loop created at the same address. */
unsigned http_client_pooled(uv_loop_t *loop);

#endif
