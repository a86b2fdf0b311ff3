/* The one HTTP/1.1 response parser, shared by the asynchronous client
 * (http/client.c) and the blocking client (http/blocking.c).
 *
 * Bytes go in as they arrive, split anywhere (one at a time is fine); the
 * status line and headers are http_parser's, and this module keeps what the
 * clients need and enforces the limits:
 *
 *   - the final response: interim 1xx responses (100 Continue; 101 is final)
 *     are parsed and forgotten;
 *   - the status code, the Content-Type value (the first
 *     HTTP_RESPONSE_MAX_CTYPE bytes of the last Content-Type header), and
 *     the body: Content-Length, chunked or, without either, up to the end
 *     of the stream; a response to HEAD has no body;
 *   - limits: at most HTTP_RESPONSE_MAX_HEADERS header fields and
 *     HTTP_RESPONSE_MAX_HEADER_BYTES bytes of names and values per
 *     response (chunked trailers included), and a body of at most the
 *     max_body given to http_response_init, checked against a declared
 *     Content-Length before any body byte is kept.
 *
 * Feeding is total: any bytes, any split, never a read beyond len; once
 * the response is complete or an error was found, later bytes are not
 * looked at and the same outcome is returned again. Errors:
 *   FL_EPROTO    malformed response (status line, headers, chunk framing),
 *                too many or too large headers, or the stream ended before
 *                the response did;
 *   FL_ETOOBIG   the body is larger than max_body;
 *   FL_ENOMEM    out of memory for the body;
 *   FL_EINVAL    data NULL with len > 0.
 * http_response_errmsg then says which, in words.
 *
 * Memory: the body is in an fl_buf (fl_malloc); everything else is inside
 * the struct. */
#ifndef FL_HTTP_RESPONSE_H
#define FL_HTTP_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "common/buf.h"

#define HTTP_RESPONSE_MAX_CTYPE        256 /* Content-Type bytes kept; the rest is cut */
#define HTTP_RESPONSE_MAX_HEADERS      128 /* header fields per response, trailers included */
#define HTTP_RESPONSE_MAX_HEADER_BYTES (64u * 1024u) /* names plus values per response */
#define HTTP_RESPONSE_FIELD_MAX        32 /* longest header name compared (Content-Type) */

struct http_response {
    int status;   /* the final response's status code, once complete */
    int complete; /* the final response has been parsed whole */

    /* Private. */
    http_parser parser_;
    size_t max_body_;
    int head_;
    int err_;       /* FL_OK, or the error found */
    char why_[128]; /* that error in words */
    size_t fed_;    /* bytes parsed so far */
    char field_[HTTP_RESPONSE_FIELD_MAX + 1];
    size_t field_len_; /* > HTTP_RESPONSE_FIELD_MAX: a field that is not Content-Type */
    int in_field_;     /* the last header callback was on a name */
    int in_value_;     /* ... on a value */
    unsigned n_headers_;
    size_t header_bytes_;
    int has_ctype_;
    char ctype_[HTTP_RESPONSE_MAX_CTYPE + 1];
    size_t ctype_len_;
    struct fl_buf body_;
};

/* Set r up to parse one response to a request of method HEAD (head != 0:
 * no body follows) or any other, with a body of at most max_body bytes.
 * r needs no cleaning before; call http_response_close when done. */
void http_response_init(struct http_response *r, int head, size_t max_body);

/* Start over for a new response on the same terms (the body's memory is
 * kept for reuse). */
void http_response_restart(struct http_response *r);

/* Free the body; r may be initialized again afterwards. */
void http_response_close(struct http_response *r);

/* Parse len bytes at data; len 0 means the peer closed the stream (which
 * completes a body delimited by the end of the stream and truncates any
 * other). *used (may be NULL) gets the bytes consumed: all of them unless
 * the response completed before their end (what follows belongs to no
 * request) or an error stopped the parse. Returns FL_OK (check
 * r->complete) or an error (above). */
int http_response_feed(struct http_response *r, const void *data, size_t len, size_t *used);

/* What went wrong, in words ("bad response: invalid HTTP status code"),
 * after an error; "" otherwise. */
const char *http_response_errmsg(const struct http_response *r);

/* Content-Type of the final response (NUL-terminated, possibly cut at
 * HTTP_RESPONSE_MAX_CTYPE bytes), or NULL if it had none. Valid until the
 * next call on r. */
const char *http_response_content_type(const struct http_response *r);

/* The body so far: never NULL, NUL-terminated ("" when empty); *len (may
 * be NULL) gets its length without that NUL. Valid until the next call on r. */
const uint8_t *http_response_body(const struct http_response *r, size_t *len);

/* Hand the body to the caller (NUL-terminated, free with fl_free); r's body
 * becomes empty. NULL when out of memory. */
uint8_t *http_response_take_body(struct http_response *r, size_t *len);

/* Whether the connection may carry another request after this complete
 * response: HTTP/1.1 without "Connection: close" (or 1.0 with keep-alive),
 * not an upgrade, a body not delimited by the end of the stream. 0 before
 * the response is complete. */
int http_response_keep_alive(const struct http_response *r);

#endif
