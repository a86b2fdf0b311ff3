/* The secure channel under fuzzing (common/schan.h): one input, three ways,
 * chosen by its first byte. Shared by fuzz/fuzz_schan.c and the corpus replay
 * in tests/unit/test_fuzz_corpus.c, so each committed seed runs through
 * exactly the fuzzed code in every test run.
 *
 *   0  the rest is fed to a fresh responder (HELLO and CONFIRM decoding)
 *   1  the rest is fed to an initiator that has sent HELLO (REPLY decoding)
 *   2  the rest is a script against an open channel: ops that send
 *      plaintext, flip bytes on the wire, append raw bytes and deliver the
 *      wire in chunks. Invariant: what the receiver decrypts is always a
 *      prefix of what was sent (nothing forged), and all of it when the
 *      wire was not touched.
 *
 * The cluster key is fixed (SCHAN_FUZZ_KEY) so that seeds hold HELLOs that
 * authenticate and the decoder goes past the MAC check. */
#ifndef FL_FUZZ_SCHAN_DRIVER_H
#define FL_FUZZ_SCHAN_DRIVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/schan.h"

static const unsigned char SCHAN_FUZZ_KEY[FL_KEY_BYTES] = {
    0x46, 0x4c, 0x4f, 0x54, 0x49, 0x4c, 0x4c, 0x41, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b, 0x65,
    0x79, 0x2d, 0x6e, 0x6f, 0x74, 0x2d, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x00, 0x01, 0x02, 0x03};

#define SCHAN_FUZZ_FRAME 512 /* small frames: the fuzzer reaches the limits */

static inline void schan_fuzz_config(struct schan_config *c, int role, const char *name)
{
    memset(c, 0, sizeof *c);
    c->key = SCHAN_FUZZ_KEY;
    c->link = SCHAN_LINK_AGENT;
    c->self.role = (uint8_t)role;
    snprintf(c->self.name, sizeof c->self.name, "%s", name);
    c->max_frame = SCHAN_FUZZ_FRAME;
}

static inline void schan_fuzz_check_pending(const struct schan *ch)
{
    if (schan_pending(ch) > 4 + SCHAN_FUZZ_FRAME + 17 + SCHAN_HS_MAX) {
        abort(); /* buffered more than one frame */
    }
}

static inline void schan_fuzz_feed(int initiator, const uint8_t *data, size_t size)
{
    struct schan_config c;
    struct schan *ch;
    struct fl_buf wire, plain;
    schan_fuzz_config(&c, initiator ? SCHAN_ROLE_AGENT : SCHAN_ROLE_SERVER,
                      initiator ? "web-1" : "server-1");
    if (schan_create(&c, initiator, &ch, NULL) != FL_OK) {
        return;
    }
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    if (initiator) {
        schan_start(ch, &wire);
    }
    /* Whole, then (on a second channel's worth of state) in small pieces. */
    for (size_t off = 0; off < size;) {
        size_t n = size - off < 7 ? size - off : 7;
        if (schan_recv(ch, data + off, n, &wire, &plain) != FL_OK) {
            break;
        }
        schan_fuzz_check_pending(ch);
        off += n;
    }
    if (!initiator && schan_state(ch) == SCHAN_OPEN && plain.len > 0) {
        abort(); /* no valid CONFIRM can come from fixed bytes and a fresh key */
    }
    schan_destroy(ch);
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

struct schan_fuzz_pair {
    struct schan *i, *r;
    struct fl_buf wire, plain, sent;
    int failed, tampered;
};

static inline int schan_fuzz_open(struct schan_fuzz_pair *p)
{
    struct schan_config ci, cr;
    struct fl_buf a, b;
    int ok;
    memset(p, 0, sizeof *p);
    schan_fuzz_config(&ci, SCHAN_ROLE_AGENT, "web-1");
    schan_fuzz_config(&cr, SCHAN_ROLE_SERVER, "server-1");
    if (schan_create(&ci, 1, &p->i, NULL) != FL_OK) {
        return 0;
    }
    if (schan_create(&cr, 0, &p->r, NULL) != FL_OK) {
        schan_destroy(p->i);
        p->i = NULL;
        return 0;
    }
    fl_buf_init(&a);
    fl_buf_init(&b);
    ok = schan_start(p->i, &a) == FL_OK && schan_recv(p->r, a.data, a.len, &b, &p->plain) == 0;
    fl_buf_reset(&a);
    ok = ok && schan_recv(p->i, b.data, b.len, &a, &p->plain) == FL_OK &&
         schan_recv(p->r, a.data, a.len, &b, &p->plain) == FL_OK;
    fl_buf_close(&a);
    fl_buf_close(&b);
    if (ok && (schan_state(p->i) != SCHAN_OPEN || schan_state(p->r) != SCHAN_OPEN)) {
        abort();
    }
    return ok;
}

static inline void schan_fuzz_deliver(struct schan_fuzz_pair *p, size_t chunk)
{
    for (size_t off = 0; off < p->wire.len && !p->failed;) {
        size_t n = p->wire.len - off < chunk ? p->wire.len - off : chunk;
        if (schan_recv(p->r, p->wire.data + off, n, NULL, &p->plain) != FL_OK) {
            p->failed = 1;
        }
        schan_fuzz_check_pending(p->r);
        off += n;
    }
    fl_buf_reset(&p->wire);
}

static inline void schan_fuzz_script(const uint8_t *d, size_t size)
{
    struct schan_fuzz_pair p;
    size_t at = 0;
    if (!schan_fuzz_open(&p)) {
        goto out; /* allocation failure */
    }
    while (at + 2 <= size && !p.failed) {
        uint8_t op = d[at] % 4, arg = d[at + 1];
        at += 2;
        if (op == 0) { /* send arg bytes of plaintext (taken from the input) */
            size_t n = size - at < arg ? size - at : arg;
            if (schan_send(p.i, d + at, n, &p.wire) != FL_OK ||
                fl_buf_append(&p.sent, d + at, n) != FL_OK) {
                goto out;
            }
            at += n;
        } else if (op == 1 && p.wire.len > 0) { /* flip bits of one wire byte */
            p.wire.data[(arg * 131u + at) % p.wire.len] ^= (uint8_t)(arg | 1);
            p.tampered = 1;
        } else if (op == 2) { /* deliver in chunks of arg+1 */
            schan_fuzz_deliver(&p, (size_t)arg + 1);
        } else if (op == 3) { /* raw bytes on the wire */
            size_t n = size - at < arg ? size - at : arg;
            if (fl_buf_append(&p.wire, d + at, n) != FL_OK) {
                goto out;
            }
            p.tampered |= n > 0;
            at += n;
        }
    }
    schan_fuzz_deliver(&p, 4096);
    /* Nothing forged: the receiver got a prefix of what was sent... */
    if (p.plain.len > p.sent.len ||
        (p.plain.len > 0 && memcmp(p.plain.data, p.sent.data, p.plain.len) != 0)) {
        abort();
    }
    /* ...and all of it when nobody touched the wire. */
    if (!p.tampered && (p.failed || p.plain.len != p.sent.len)) {
        abort();
    }
out:
    schan_destroy(p.i);
    schan_destroy(p.r);
    fl_buf_close(&p.wire);
    fl_buf_close(&p.plain);
    fl_buf_close(&p.sent);
}

static inline void schan_fuzz_one(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return;
    }
    switch (data[0] % 3) {
    case 0:
        schan_fuzz_feed(0, data + 1, size - 1);
        break;
    case 1:
        schan_fuzz_feed(1, data + 1, size - 1);
        break;
    default:
        schan_fuzz_script(data + 1, size - 1);
        break;
    }
}

#endif
