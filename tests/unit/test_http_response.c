/* The clients' one HTTP response parser (http/response.h), fed bytes
 * directly: whole, one byte at a time and split at every position; chunked,
 * Content-Length and close-delimited bodies; interim responses; HEAD; bad
 * status lines; header and body limits; truncation; feeding after the end.
 * Each input is fed from a heap copy of exactly its length, so a read past
 * the end shows under AddressSanitizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "http/response.h"

#define BIG_BODY (1u << 20)

/* Outcome of one parse. */
struct outcome {
    int rv;
    int complete;
    int status;
    char ctype[HTTP_RESPONSE_MAX_CTYPE + 1];
    int has_ctype;
    char body[4096];
    size_t body_len;
    size_t used; /* bytes consumed over all feeds */
    int keep_alive;
    char why[128];
};

/* Feed in[0..len) in pieces of `step` bytes (0: all at once), then EOF if
 * eof is set and the response is not complete. */
static void run(const char *in, size_t len, size_t step, int eof, int head, size_t max_body,
                struct outcome *o)
{
    struct http_response r;
    char *copy = fl_malloc(len > 0 ? len : 1);
    size_t off = 0;
    memcpy(copy, in, len);
    memset(o, 0, sizeof *o);
    http_response_init(&r, head, max_body);
    o->rv = FL_OK;
    while (off < len && o->rv == FL_OK && !r.complete) {
        size_t n = step == 0 || len - off < step ? len - off : step, used = 0;
        o->rv = http_response_feed(&r, copy + off, n, &used);
        CHECK(used <= n);
        if (o->rv == FL_OK && !r.complete) {
            CHECK_EQ_INT(used, n); /* incomplete: everything was taken */
        }
        o->used += used;
        off += n;
    }
    if (o->rv == FL_OK && !r.complete && eof) {
        o->rv = http_response_feed(&r, NULL, 0, NULL);
    }
    o->complete = r.complete;
    o->status = r.status;
    if (http_response_content_type(&r) != NULL) {
        o->has_ctype = 1;
        snprintf(o->ctype, sizeof o->ctype, "%s", http_response_content_type(&r));
    }
    {
        size_t blen;
        const uint8_t *b = http_response_body(&r, &blen);
        CHECK(b != NULL);
        CHECK_EQ_INT(b[blen], 0);
        o->body_len = blen;
        memcpy(o->body, b, blen < sizeof o->body - 1 ? blen : sizeof o->body - 1);
    }
    o->keep_alive = http_response_keep_alive(&r);
    snprintf(o->why, sizeof o->why, "%s", http_response_errmsg(&r));
    CHECK((o->rv == FL_OK) == (o->why[0] == '\0'));
    http_response_close(&r);
    fl_free(copy);
}

/* Parse in every way (whole, byte by byte, split in two at every position)
 * and check every way gives the same outcome as the whole. */
static void run_all_ways(const char *in, size_t len, int eof, int head, size_t max_body,
                         struct outcome *whole)
{
    struct outcome o;
    size_t cut;
    run(in, len, 0, eof, head, max_body, whole);
    for (cut = 1; cut <= len; cut++) {
        run(in, len, cut, eof, head, max_body, &o);
        CHECK_EQ_INT(o.rv, whole->rv);
        CHECK_EQ_INT(o.complete, whole->complete);
        CHECK_EQ_INT(o.status, whole->status);
        CHECK_EQ_INT(o.has_ctype, whole->has_ctype);
        CHECK_EQ_STR(o.ctype, whole->ctype);
        if (whole->rv == FL_OK) {
            /* After an error, how much of the body was kept depends on
             * the split; nothing of it is handed out. */
            CHECK_EQ_INT(o.body_len, whole->body_len);
            CHECK(memcmp(o.body, whole->body, o.body_len < sizeof o.body ? o.body_len : 0) == 0);
            CHECK_EQ_INT(o.used, whole->used);
        }
        CHECK_EQ_INT(o.keep_alive, whole->keep_alive);
        CHECK_EQ_STR(o.why, whole->why);
        if (o.rv != whole->rv || strcmp(o.why, whole->why) != 0 ||
            (o.rv == FL_OK && (o.body_len != whole->body_len || o.used != whole->used))) {
            fprintf(stderr, "  (pieces of %zu bytes)\n", cut);
            break;
        }
    }
}

#define S(lit) lit, sizeof(lit) - 1

TEST(content_length)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 8\r\n\r\n{\"a\":1}\n";
    struct outcome o;
    run_all_ways(S(in), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(o.complete);
    CHECK_EQ_INT(o.status, 200);
    CHECK_EQ_STR(o.ctype, "application/json");
    CHECK_EQ_INT(o.body_len, 8);
    CHECK_EQ_STR(o.body, "{\"a\":1}\n");
    CHECK_EQ_INT(o.used, sizeof in - 1);
    CHECK(o.keep_alive);
}

TEST(chunked_with_extensions_and_trailers)
{
    static const char in[] = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "4;ext=1\r\nchun\r\n3\r\nked\r\na\r\n 0123456\r\n\r\n"
                             "0\r\nX-Trailer: t\r\n\r\n";
    struct outcome o;
    run_all_ways(S(in), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(o.complete);
    CHECK_EQ_INT(o.status, 201);
    CHECK(!o.has_ctype);
    CHECK_EQ_STR(o.body, "chunked 0123456\r\n");
    CHECK_EQ_INT(o.used, sizeof in - 1);
    CHECK(o.keep_alive);
}

TEST(bad_chunks)
{
    static const char size[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    static const char tail[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX";
    static const char cut[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    struct outcome o;
    run_all_ways(S(size), 1, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK(strstr(o.why, "bad response") != NULL);
    run_all_ways(S(tail), 1, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    run_all_ways(S(cut), 1, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK_EQ_STR(o.why, "connection closed in the middle of the response");
}

TEST(close_delimited)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Connection: close\r\n\r\nuntil close";
    struct outcome o;
    run_all_ways(S(in), 1, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(o.complete);
    CHECK_EQ_STR(o.body, "until close");
    CHECK_EQ_STR(o.ctype, "text/plain");
    CHECK(!o.keep_alive);
    /* Without the EOF it is not over. */
    run(S(in), 1, 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(!o.complete);
}

TEST(interim_responses_are_forgotten)
{
    static const char in[] = "HTTP/1.1 100 Continue\r\nContent-Type: text/x-interim\r\n\r\n"
                             "HTTP/1.1 102 Processing\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    static const char only[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct outcome o;
    run_all_ways(S(in), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_INT(o.status, 200);
    CHECK(!o.has_ctype);
    CHECK_EQ_STR(o.body, "ok");
    run_all_ways(S(only), 1, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK_EQ_STR(o.why, "connection closed in the middle of the response");
}

TEST(head_has_no_body)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    struct outcome o;
    run_all_ways(S(in), 0, 1, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(o.complete);
    CHECK_EQ_INT(o.body_len, 0);
    CHECK_EQ_STR(o.body, "");
    CHECK(o.keep_alive);
}

TEST(no_body_statuses)
{
    static const char in204[] = "HTTP/1.1 204 No Content\r\n\r\n";
    static const char in304[] = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
    struct outcome o;
    run_all_ways(S(in204), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_INT(o.status, 204);
    CHECK_EQ_INT(o.used, sizeof in204 - 1);
    run_all_ways(S(in304), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_INT(o.status, 304);
    CHECK_EQ_INT(o.body_len, 0);
}

TEST(bad_status_lines)
{
    static const char *const bad[] = {
        "NOT HTTP AT ALL\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 OK\r\n\r\n",
        "HTTP/x.1 200 OK\r\n\r\n",
        "HTTP/1.1 -20 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "\x00\x01\x02\xff",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct outcome o;
        size_t len = i == sizeof bad / sizeof bad[0] - 1 ? 4 : strlen(bad[i]);
        run_all_ways(bad[i], len, 1, 0, BIG_BODY, &o);
        CHECK_EQ_INT(o.rv, FL_EPROTO);
        CHECK(!o.complete);
        CHECK_EQ_INT(o.status, 0);
        CHECK(strncmp(o.why, "bad response: ", 14) == 0);
        CHECK(o.used <= len);
    }
}

TEST(truncated)
{
    static const char *const cut[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nContent-Len",
        "HTTP/1.1 20",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    };
    size_t i;
    struct outcome o;
    for (i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        run_all_ways(cut[i], strlen(cut[i]), 1, 0, BIG_BODY, &o);
        CHECK_EQ_INT(o.rv, FL_EPROTO);
        CHECK(!o.complete);
        CHECK_EQ_STR(o.why, "connection closed in the middle of the response");
    }
    /* Nothing at all before the end of the stream. */
    run("", 0, 0, 1, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK_EQ_STR(o.why, "the stream ended before a response");
}

TEST(body_limit)
{
    static const char declared[] = "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n";
    static const char at[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    static const char chunked[] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
        "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
        "0\r\n\r\n";
    char buf[256];
    struct outcome o;
    run_all_ways(S(declared), 1, 0, 100, &o);
    CHECK_EQ_INT(o.rv, FL_ETOOBIG);
    CHECK_EQ_STR(o.why, "response body exceeds 100 bytes");
    CHECK_EQ_INT(o.body_len, 0);
    /* The limit itself is fine. */
    snprintf(buf, sizeof buf, "%s%0100d", at, 0);
    run_all_ways(buf, strlen(buf), 0, 0, 100, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_INT(o.body_len, 100);
    /* Chunked and close-delimited bodies are counted as they come. */
    run_all_ways(S(chunked), 1, 0, 100, &o);
    CHECK_EQ_INT(o.rv, FL_ETOOBIG);
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n%0101d", 0);
    run_all_ways(buf, strlen(buf), 1, 0, 100, &o);
    CHECK_EQ_INT(o.rv, FL_ETOOBIG);
    CHECK(o.body_len <= 100);
}

/* A response head with n headers "X-Hnnnn: " plus vlen value bytes each. */
static char *many_headers(unsigned n, size_t vlen, size_t *len)
{
    struct fl_buf b;
    unsigned i;
    fl_buf_init(&b);
    fl_buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
    for (i = 0; i < n; i++) {
        fl_buf_printf(&b, "X-H%04u: ", i);
        for (size_t k = 0; k < vlen; k++) {
            fl_buf_append(&b, "v", 1);
        }
        fl_buf_append(&b, "\r\n", 2);
    }
    fl_buf_append(&b, "\r\n", 2);
    return (char *)fl_buf_steal(&b, len);
}

TEST(header_limits)
{
    struct outcome o;
    size_t len;
    char *in;
    /* Content-Length counts as one: the limit exactly. */
    in = many_headers(HTTP_RESPONSE_MAX_HEADERS - 1, 1, &len);
    run(in, len, 0, 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(o.complete);
    run(in, len, 1, 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    fl_free(in);
    /* One field more. */
    in = many_headers(HTTP_RESPONSE_MAX_HEADERS, 1, &len);
    run(in, len, 0, 0, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK(strstr(o.why, "more than 128 header fields") != NULL);
    run(in, len, 1, 0, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK(strstr(o.why, "more than 128 header fields") != NULL);
    fl_free(in);
    /* Few fields, too many bytes. */
    in = many_headers(8, 10000, &len);
    run(in, len, 0, 0, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK(strstr(o.why, "headers exceed 65536 bytes") != NULL);
    run(in, len, 7, 0, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK(strstr(o.why, "headers exceed 65536 bytes") != NULL);
    fl_free(in);
    /* One huge value. */
    in = many_headers(1, 200000, &len);
    run(in, len, 0, 0, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    fl_free(in);
}

TEST(trailers_count_against_the_limits)
{
    struct fl_buf b;
    size_t len;
    unsigned i;
    char *in;
    struct outcome o;
    fl_buf_init(&b);
    fl_buf_printf(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n");
    for (i = 0; i < HTTP_RESPONSE_MAX_HEADERS; i++) {
        fl_buf_printf(&b, "T%u: t\r\n", i);
    }
    fl_buf_append(&b, "\r\n", 2);
    in = (char *)fl_buf_steal(&b, &len);
    run(in, len, 0, 0, 0, BIG_BODY, &o);
    CHECK_EQ_INT(o.rv, FL_EPROTO);
    CHECK(strstr(o.why, "header fields") != NULL);
    fl_free(in);
}

TEST(content_type_kept_and_cut)
{
    char in[1024], want[HTTP_RESPONSE_MAX_CTYPE + 1];
    struct outcome o;
    size_t i;
    /* Name case does not matter, a folded-looking name is not it, a long
     * name is not it, and the last Content-Type wins. */
    static const char names[] =
        "HTTP/1.1 200 OK\r\nX-Content-Type: no\r\ncontent-TYPE: text/a\r\n"
        "Content-Type-Extra-Long-Name-Over-32: no\r\nCONTENT-TYPE: text/b\r\n"
        "Content-Length: 0\r\n\r\n";
    static const char empty[] = "HTTP/1.1 200 OK\r\nContent-Type:\r\nContent-Length: 0\r\n\r\n";
    run_all_ways(S(names), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_STR(o.ctype, "text/b");
    run_all_ways(S(empty), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(o.has_ctype);
    CHECK_EQ_STR(o.ctype, "");
    /* Over HTTP_RESPONSE_MAX_CTYPE: the first bytes, however split. */
    for (i = 0; i < HTTP_RESPONSE_MAX_CTYPE; i++) {
        want[i] = (char)('a' + i % 26);
    }
    want[HTTP_RESPONSE_MAX_CTYPE] = '\0';
    snprintf(in, sizeof in,
             "HTTP/1.1 200 OK\r\nContent-Type: %sXYZXYZ\r\nContent-Length: 0\r\n\r\n", want);
    run_all_ways(in, strlen(in), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_STR(o.ctype, want);
}

TEST(bytes_after_the_response_are_not_taken)
{
    static const char in[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 No\r\n\r\n";
    struct http_response r;
    size_t used = 99;
    struct outcome o;
    run_all_ways(S(in), 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_INT(o.status, 200);
    CHECK_EQ_INT(o.used, strstr(in, "okHTTP") + 2 - in);
    /* Once complete, later feeds take nothing and change nothing. */
    http_response_init(&r, 0, BIG_BODY);
    CHECK_OK(http_response_feed(&r, in, sizeof in - 1, &used));
    CHECK(r.complete);
    CHECK_OK(http_response_feed(&r, "more", 4, &used));
    CHECK_EQ_INT(used, 0);
    CHECK_OK(http_response_feed(&r, NULL, 0, &used));
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR((const char *)http_response_body(&r, NULL), "ok");
    http_response_close(&r);
}

TEST(errors_are_sticky_and_restart_clears)
{
    struct http_response r;
    size_t used = 99, len;
    uint8_t *body;
    http_response_init(&r, 0, BIG_BODY);
    CHECK_EQ_INT(http_response_feed(&r, "XTTP/1.1", 8, &used), FL_EPROTO);
    CHECK_EQ_INT(http_response_feed(&r, "HTTP/1.1 200 OK\r\n\r\n", 19, &used), FL_EPROTO);
    CHECK_EQ_INT(used, 0);
    CHECK_EQ_INT(http_response_feed(&r, NULL, 1, &used), FL_EPROTO);
    /* A new attempt on the same struct. */
    http_response_restart(&r);
    CHECK_EQ_STR(http_response_errmsg(&r), "");
    CHECK_EQ_INT(http_response_feed(&r, NULL, 1, &used), FL_EINVAL);
    CHECK_OK(http_response_feed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 41, &used));
    CHECK(r.complete);
    CHECK_EQ_STR((const char *)http_response_body(&r, NULL), "abc");
    http_response_restart(&r);
    CHECK(!r.complete);
    CHECK_EQ_STR((const char *)http_response_body(&r, &len), "");
    CHECK_EQ_INT(len, 0);
    CHECK(http_response_content_type(&r) == NULL);
    CHECK_OK(http_response_feed(&r, "HTTP/1.0 404 Not Found\r\n\r\nnope", 30, &used));
    CHECK_OK(http_response_feed(&r, "", 0, &used));
    CHECK(r.complete);
    CHECK_EQ_INT(r.status, 404);
    CHECK(!http_response_keep_alive(&r));
    body = http_response_take_body(&r, &len);
    CHECK_EQ_STR((const char *)body, "nope");
    CHECK_EQ_INT(len, 4);
    fl_free(body);
    CHECK_EQ_STR((const char *)http_response_body(&r, &len), "");
    CHECK_EQ_INT(len, 0);
    http_response_close(&r);
}

TEST(keep_alive_rules)
{
    struct outcome o;
    run_all_ways(S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), 0, 0,
                 BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(!o.keep_alive);
    run_all_ways(S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"), 0, 0,
                 BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK(o.keep_alive);
    run_all_ways(S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"),
                 0, 0, BIG_BODY, &o);
    CHECK_OK(o.rv);
    CHECK_EQ_INT(o.status, 101);
    CHECK(!o.keep_alive);
}

/* Random bytes and random cuts of valid responses: the parser ends in a
 * defined state, never takes more than it was given. */
TEST(random_input_is_total)
{
    static const char *const seeds[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    };
    unsigned seed = 12345;
    int round;
    for (round = 0; round < 3000; round++) {
        char in[160];
        size_t len, i;
        struct outcome o;
        const char *s = seeds[round % 3];
        seed = seed * 1103515245u + 12345u;
        len = strlen(s);
        memcpy(in, s, len);
        for (i = 0; i < 1 + seed % 4; i++) {
            seed = seed * 1103515245u + 12345u;
            in[(seed >> 8) % len] = (char)(seed >> 16);
        }
        seed = seed * 1103515245u + 12345u;
        if (seed % 3 == 0) {
            len = (seed >> 8) % (len + 1);
        }
        run(in, len, 1 + (seed >> 4) % 7, 1, 0, 64, &o);
        CHECK(o.used <= len);
        CHECK(o.rv == FL_OK || o.rv == FL_EPROTO || o.rv == FL_ETOOBIG);
        CHECK(o.rv != FL_OK || o.complete);
        CHECK(o.body_len <= 64);
    }
}

int main(void)
{
    RUN(content_length);
    RUN(chunked_with_extensions_and_trailers);
    RUN(bad_chunks);
    RUN(close_delimited);
    RUN(interim_responses_are_forgotten);
    RUN(head_has_no_body);
    RUN(no_body_statuses);
    RUN(bad_status_lines);
    RUN(truncated);
    RUN(body_limit);
    RUN(header_limits);
    RUN(trailers_count_against_the_limits);
    RUN(content_type_kept_and_cut);
    RUN(bytes_after_the_response_are_not_taken);
    RUN(errors_are_sticky_and_restart_clears);
    RUN(keep_alive_rules);
    RUN(random_input_is_total);
    return check_summary();
}
