/* Responses of the HTTP server (http/server_int.h): serializing a response
 * onto its connection, the handler's http_respond* and http_drop, and the
 * server's own JSON error for a request it rejects. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/utf8.h"
#include "http/server_int.h"

static const char *reason(int status)
{
    const char *r = http_status_str((enum http_status)status);
    return r == NULL || r[0] == '<' ? "Status" : r;
}

/* Serialize and send one response; the connection goes to WRITING. */
static void write_response(struct http_conn *c, int status, const char *ctype, const void *body,
                           size_t len, int keep_alive, int head, int http10)
{
    int no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
    int rv;
    uv_buf_t b;
    fl_buf_reset(&c->wbuf);
    rv = fl_buf_printf(&c->wbuf, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (rv == FL_OK && ctype != NULL) {
        rv = fl_buf_printf(&c->wbuf, "Content-Type: %s\r\n", ctype);
    }
    if (rv == FL_OK && !no_body) {
        rv = fl_buf_printf(&c->wbuf, "Content-Length: %zu\r\n", len);
    }
    if (rv == FL_OK) {
        const char *conn = !keep_alive ? "Connection: close\r\n"
                           : http10    ? "Connection: keep-alive\r\n"
                                       : "";
        rv = fl_buf_printf(&c->wbuf, "%s\r\n", conn);
    }
    if (rv == FL_OK && !no_body && !head && len > 0) {
        rv = fl_buf_append(&c->wbuf, body, len);
    }
    if (rv != FL_OK) {
        http__conn_close(c);
        return;
    }
    c->close_after_write = !keep_alive;
    http__set_state(c, CONN_WRITING);
    c->write_req.data = c;
    b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    if (c->tls != NULL) {
        fl_buf_reset(&c->ebuf);
        if (tlink_send(c->tls, c->wbuf.data, c->wbuf.len, &c->ebuf) != FL_OK) {
            http__conn_close(c);
            return;
        }
        b = uv_buf_init((char *)c->ebuf.data, (unsigned)c->ebuf.len);
    }
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, http__on_written) != 0) {
        http__conn_close(c);
    }
}

/* The server's own answer to a request that broke a limit or did not parse:
 * a JSON error, then close. */
void http__reject_request(struct http_conn *c, int status, const char *code, const char *msg)
{
    char body[256];
    int n;
    c->server->stats.rejected++;
    http__request_free(c->cur);
    c->cur = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                 msg);
    write_response(c, status, "application/json", body, (size_t)n, 0, 0, 0);
}

void http_respond(struct http_request *req, int status, const char *content_type, const void *body,
                  size_t len)
{
    struct http_conn *c = req->conn_;
    if (c != NULL) {
        assert(c->pending == req && c->state == CONN_HANDLING);
        c->pending = NULL;
        write_response(c, status, content_type, body, len, req->keep_alive_ && !c->server->stopping,
                       req->method == HTTP_HEAD, req->http_major == 1 && req->http_minor == 0);
    }
    http__request_free(req);
}

static int dump_to_buf(const char *p, size_t n, void *data)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

void http_respond_json(struct http_request *req, int status, json_t *body)
{
    struct fl_buf b;
    fl_buf_init(&b);
    if (body == NULL ||
        json_dump_callback(body, dump_to_buf, &b, JSON_COMPACT | JSON_ENCODE_ANY) != 0 ||
        fl_buf_append(&b, "\n", 1) != FL_OK) {
        static const char err[] = "{\"error\":{\"code\":\"internal\",\"message\":\"could not "
                                  "serialize the response\"}}\n";
        /* A handler built a body that is not JSON (a string that is not
         * UTF-8 fails json_pack, which gives NULL), or memory ran out. */
        FL_ERROR("http: the %d answer to %s could not be serialized; answering 500", status,
                 http_method_str((enum http_method)req->method));
        http_respond(req, 500, "application/json", err, sizeof err - 1);
    } else {
        http_respond(req, status, "application/json", b.data, b.len);
    }
    fl_buf_close(&b);
    json_decref(body);
}

void http_respond_error(struct http_request *req, int status, const char *code, const char *fmt,
                        ...)
{
    char msg[1024], safe[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message often quotes what the client sent (a path, a key): bytes
     * that are not UTF-8 are shown as \xHH, so the answer stays JSON with
     * its status instead of failing to serialize. */
    fl_utf8_escape(msg, safe, sizeof safe);
    http_respond_json(req, status,
                      json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", safe));
}

void http_drop(struct http_request *req)
{
    struct http_conn *c = req->conn_;
    if (c != NULL) {
        assert(c->pending == req && c->state == CONN_HANDLING);
        c->pending = NULL;
        c->server->stats.dropped++;
        http__conn_close(c); /* bytes read after the request are discarded with it */
    }
    http__request_free(req);
}
