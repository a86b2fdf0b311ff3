/* The HTTP/1.1 response parser of both clients (http/response.h): what
 * http_parser's callbacks report, kept within the limits.
 *
 * Header callbacks may deliver a name or a value in several pieces (the
 * bytes arrive split anywhere): a name is collected up to
 * HTTP_RESPONSE_FIELD_MAX bytes, enough to recognise Content-Type, and a
 * field counts once, when its first piece arrives. */
#include "http/response.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

/* Record the first error; the callback that found it stops the parser. */
static int fail(struct http_response *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct http_response *r, int err, const char *fmt, ...)
{
    va_list ap;
    if (r->err_ == FL_OK) {
        r->err_ = err;
        va_start(ap, fmt);
        vsnprintf(r->why_, sizeof r->why_, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Forget what a response (an interim one, or an earlier attempt's) left. */
static void clear_message(struct http_response *r)
{
    r->in_field_ = 0;
    r->in_value_ = 0;
    r->field_len_ = 0;
    r->field_[0] = '\0';
    r->n_headers_ = 0;
    r->header_bytes_ = 0;
    r->has_ctype_ = 0;
    r->ctype_len_ = 0;
    r->ctype_[0] = '\0';
    fl_buf_reset(&r->body_);
    if (r->body_.data != NULL) {
        r->body_.data[0] = '\0';
    }
}

static int count_header_bytes(struct http_response *r, size_t len)
{
    if (len > HTTP_RESPONSE_MAX_HEADER_BYTES - r->header_bytes_) {
        fail(r, FL_EPROTO, "bad response: headers exceed %u bytes",
             (unsigned)HTTP_RESPONSE_MAX_HEADER_BYTES);
        return -1;
    }
    r->header_bytes_ += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_response *r = p->data;
    if (!r->in_field_) {
        /* The first piece of a new field. */
        if (r->n_headers_ >= HTTP_RESPONSE_MAX_HEADERS) {
            fail(r, FL_EPROTO, "bad response: more than %u header fields",
                 (unsigned)HTTP_RESPONSE_MAX_HEADERS);
            return -1;
        }
        r->n_headers_++;
        r->in_field_ = 1;
        r->in_value_ = 0;
        r->field_len_ = 0;
    }
    if (count_header_bytes(r, len) != 0) {
        return -1;
    }
    if (r->field_len_ <= HTTP_RESPONSE_FIELD_MAX &&
        len <= HTTP_RESPONSE_FIELD_MAX - r->field_len_) {
        memcpy(r->field_ + r->field_len_, at, len);
        r->field_len_ += len;
    } else {
        r->field_len_ = HTTP_RESPONSE_FIELD_MAX + 1; /* too long to be one we keep */
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_response *r = p->data;
    if (!r->in_value_) {
        /* The first piece of this field's value: is it Content-Type? */
        r->in_value_ = 1;
        r->in_field_ = 0;
        r->field_[r->field_len_ <= HTTP_RESPONSE_FIELD_MAX ? r->field_len_ : 0] = '\0';
        if (r->field_len_ <= HTTP_RESPONSE_FIELD_MAX &&
            strcasecmp(r->field_, "content-type") == 0) {
            r->has_ctype_ = 1;
            r->ctype_len_ = 0;
            r->ctype_[0] = '\0';
        } else {
            r->field_len_ = HTTP_RESPONSE_FIELD_MAX + 1; /* not a value we keep */
        }
    }
    if (count_header_bytes(r, len) != 0) {
        return -1;
    }
    if (r->field_len_ <= HTTP_RESPONSE_FIELD_MAX) {
        size_t room = HTTP_RESPONSE_MAX_CTYPE - r->ctype_len_;
        size_t n = len < room ? len : room;
        memcpy(r->ctype_ + r->ctype_len_, at, n);
        r->ctype_len_ += n;
        r->ctype_[r->ctype_len_] = '\0';
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_response *r = p->data;
    r->in_field_ = 0;
    r->in_value_ = 0;
    if (p->content_length != ULLONG_MAX && p->content_length > r->max_body_) {
        fail(r, FL_ETOOBIG, "response body exceeds %zu bytes", r->max_body_);
        return -1;
    }
    return r->head_ ? 1 : 0; /* 1: no body follows */
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_response *r = p->data;
    if (len > r->max_body_ - r->body_.len) {
        fail(r, FL_ETOOBIG, "response body exceeds %zu bytes", r->max_body_);
        return -1;
    }
    if (fl_buf_append(&r->body_, at, len) != FL_OK) {
        fail(r, FL_ENOMEM, "out of memory");
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_response *r = p->data;
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        clear_message(r); /* an interim response; the final one follows */
        return 0;
    }
    r->status = (int)p->status_code;
    r->complete = 1;
    http_parser_pause(p, 1); /* what follows is not ours */
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_response_init(struct http_response *r, int head, size_t max_body)
{
    memset(r, 0, sizeof *r);
    fl_buf_init(&r->body_);
    r->head_ = head != 0;
    r->max_body_ = max_body;
    http_response_restart(r);
}

void http_response_restart(struct http_response *r)
{
    http_parser_init(&r->parser_, HTTP_RESPONSE);
    r->parser_.data = r;
    r->status = 0;
    r->complete = 0;
    r->err_ = FL_OK;
    r->why_[0] = '\0';
    r->fed_ = 0;
    clear_message(r);
}

void http_response_close(struct http_response *r)
{
    fl_buf_close(&r->body_);
}

int http_response_feed(struct http_response *r, const void *data, size_t len, size_t *used)
{
    size_t n;
    enum http_errno e;
    if (used != NULL) {
        *used = 0;
    }
    if (r->err_ != FL_OK) {
        return r->err_;
    }
    if (r->complete) {
        return FL_OK;
    }
    if (data == NULL && len > 0) {
        return FL_EINVAL;
    }
    n = http_parser_execute(&r->parser_, &settings, data, len);
    if (used != NULL) {
        *used = n;
    }
    r->fed_ += n;
    if (r->complete) {
        return FL_OK;
    }
    if (r->err_ != FL_OK) {
        return r->err_;
    }
    e = HTTP_PARSER_ERRNO(&r->parser_);
    if (len == 0 && (e == HPE_OK || e == HPE_INVALID_EOF_STATE)) {
        /* The stream ended and the response did not. */
        return fail(r, FL_EPROTO,
                    r->fed_ == 0 ? "the stream ended before a response"
                                 : "connection closed in the middle of the response");
    }
    if (e != HPE_OK) {
        return fail(r, FL_EPROTO, "bad response: %s", http_errno_description(e));
    }
    return FL_OK;
}

const char *http_response_errmsg(const struct http_response *r)
{
    return r->why_;
}

const char *http_response_content_type(const struct http_response *r)
{
    return r->has_ctype_ ? r->ctype_ : NULL;
}

const uint8_t *http_response_body(const struct http_response *r, size_t *len)
{
    if (len != NULL) {
        *len = r->body_.len;
    }
    return r->body_.data != NULL ? r->body_.data : (const uint8_t *)"";
}

uint8_t *http_response_take_body(struct http_response *r, size_t *len)
{
    if (r->body_.data == NULL && fl_buf_reserve(&r->body_, 1) != FL_OK) {
        return NULL;
    }
    r->body_.data[r->body_.len] = '\0';
    return fl_buf_steal(&r->body_, len);
}

int http_response_keep_alive(const struct http_response *r)
{
    return r->complete && http_should_keep_alive(&r->parser_) && !r->parser_.upgrade;
}
