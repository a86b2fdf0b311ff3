/* The blob link message fuzz driver, shared by fuzz_blob.c and the corpus
 * replay in tests/unit/test_fuzz_corpus.c.
 *
 * Input: byte 0 picks the decoder (even: a request, odd: an answer); the
 * rest is the message body as it arrives over the blob link. Invariants:
 * the decoder never reads past the input; what it accepts encodes back to
 * a message that decodes to the same fields. Returns 1 if accepted. */
#ifndef FL_FUZZ_BLOB_DRIVER_H
#define FL_FUZZ_BLOB_DRIVER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob.h"
#include "common/buf.h"
#include "common/err.h"

static void blob_fail(const char *what)
{
    fprintf(stderr, "blob driver: %s\n", what);
    abort();
}

static int blob_fuzz_one(const uint8_t *data, size_t size)
{
    struct fl_buf b;
    int ok = 0;
    if (size < 1) {
        return 0;
    }
    fl_buf_init(&b);
    if ((data[0] & 1) == 0) {
        struct blob_req q, back;
        if (blob_req_decode(data + 1, size - 1, &q) == FL_OK) {
            ok = 1;
            if (q.op < BLOB_STAT || q.op > BLOB_CHUNKS) {
                blob_fail("a request with an unknown op was accepted");
            }
            if (blob_req_encode(&q, &b) != FL_OK ||
                blob_req_decode(b.data, b.len, &back) != FL_OK || back.op != q.op ||
                memcmp(back.hash, q.hash, sizeof q.hash) != 0 || back.offset != q.offset ||
                back.length != q.length || back.sig_len != q.sig_len ||
                (q.sig_len && memcmp(back.sig, q.sig, q.sig_len) != 0)) {
                blob_fail("a request does not survive re-encoding");
            }
        }
    } else {
        struct blob_resp a, back;
        if (blob_resp_decode(data + 1, size - 1, &a) == FL_OK) {
            char msg[512];
            ok = 1;
            snprintf(msg, sizeof msg, "%.*s", (int)(a.msg_len < 511 ? a.msg_len : 511), a.msg);
            if (a.msg_len < 511 && memchr(a.msg, 0, a.msg_len) == NULL &&
                (blob_resp_encode(a.status, msg, a.size, a.data, a.data_len, &b) != FL_OK ||
                 blob_resp_decode(b.data, b.len, &back) != FL_OK || back.status != a.status ||
                 back.size != a.size || back.msg_len != a.msg_len || back.data_len != a.data_len ||
                 (a.data_len && memcmp(back.data, a.data, a.data_len) != 0))) {
                blob_fail("an answer does not survive re-encoding");
            }
        }
    }
    fl_buf_close(&b);
    return ok;
}

#endif
