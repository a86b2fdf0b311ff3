/* The TLS link under fuzzing (tls/tlink.h): one input, three ways, chosen by
 * its first byte. Shared by fuzz/fuzz_tlink.c and the corpus replay in
 * tests/unit/test_fuzz_corpus.c, so each committed seed runs through exactly
 * the fuzzed code in every test run.
 *
 *   0  the rest is fed to a fresh responder (a server's agent port): the
 *      ClientHello and everything before admission, in pieces of 7 bytes
 *   1  the rest is fed to an initiator that has sent its ClientHello
 *   2  the rest is a script against an open agent link: ops that send
 *      plaintext, flip bytes on the wire, append raw bytes and deliver the
 *      wire in chunks. Invariant: what the receiver decrypts is always a
 *      prefix of what was sent (nothing forged), and all of it when the
 *      wire was not touched.
 *
 * Invariants for 0 and 1: fixed bytes never open a link (no HELLO can come
 * from bytes that were made before this process's keys existed), and a
 * responder never holds more than one record's worth of undecrypted bytes
 * beyond what it was fed in one call.
 *
 * The credentials (a CA, a server and an agent certificate) are made once per
 * process by pki/ in a temporary directory. */
#ifndef FL_FUZZ_TLINK_DRIVER_H
#define FL_FUZZ_TLINK_DRIVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "pki/pki.h"
#include "tls/creds.h"
#include "tls/tlink.h"

static struct tls_creds *tlink_fuzz_server, *tlink_fuzz_agent;

static inline struct tls_creds *tlink_fuzz_issue(struct pki_ca *ca, const char *dir, int role,
                                                 const char *name)
{
    char prefix[300], cert[320], key[320], capem[320];
    struct pki_identity who = {0};
    struct tls_creds *c = NULL;
    who.role = (uint8_t)role;
    snprintf(who.cluster, sizeof who.cluster, "fuzz");
    snprintf(who.name, sizeof who.name, "%s", name);
    snprintf(prefix, sizeof prefix, "%s/%s", dir, name);
    snprintf(cert, sizeof cert, "%s.pem", prefix);
    snprintf(key, sizeof key, "%s.key", prefix);
    snprintf(capem, sizeof capem, "%s/ca.pem", dir);
    struct tls_creds_files f = {capem, cert, key};
    if (pki_issue_files(ca, &who, 0, NULL, 0, prefix, 1, NULL) != FL_OK ||
        tls_creds_load(&f, &c, NULL) != FL_OK) {
        abort();
    }
    return c;
}

static inline void tlink_fuzz_init(void)
{
    char dir[64] = "/tmp/flotilla-fuzz-tlink.XXXXXX", cmd[128];
    struct pki_ca *ca = NULL;
    if (tlink_fuzz_server != NULL) {
        return;
    }
    if (mkdtemp(dir) == NULL || pki_ca_init(dir, "fuzz", 0, 0, NULL) != FL_OK ||
        pki_ca_load(dir, &ca, NULL) != FL_OK) {
        abort();
    }
    tlink_fuzz_server = tlink_fuzz_issue(ca, dir, PKI_ROLE_SERVER, "server-1");
    tlink_fuzz_agent = tlink_fuzz_issue(ca, dir, PKI_ROLE_AGENT, "web-1");
    pki_ca_free(ca);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir); /* the creds are in memory now */
    if (system(cmd) != 0) {
        abort();
    }
}

static inline void tlink_fuzz_feed(int initiator, const uint8_t *data, size_t size)
{
    struct tlink_config c = {initiator ? tlink_fuzz_agent : tlink_fuzz_server, TLINK_AGENT, NULL,
                             NULL};
    struct tlink *l;
    struct fl_buf wire, plain;
    if (tlink_create(&c, initiator, &l, NULL) != FL_OK) {
        return;
    }
    fl_buf_init(&wire);
    fl_buf_init(&plain);
    if (initiator) {
        tlink_start(l, &wire);
    }
    for (size_t off = 0; off < size;) {
        size_t n = size - off < 7 ? size - off : 7;
        if (tlink_recv(l, data + off, n, &wire, &plain) != FL_OK) {
            break;
        }
        if (tlink_pending(l) > 18 * 1024 + 7) {
            abort(); /* held more than one record */
        }
        off += n;
    }
    if (tlink_state(l) == TLINK_OPEN || plain.len > 0) {
        abort(); /* no handshake can complete from fixed bytes */
    }
    tlink_destroy(l);
    fl_buf_close(&wire);
    fl_buf_close(&plain);
}

struct tlink_fuzz_pair {
    struct tlink *i, *r;
    struct fl_buf wire, plain, sent;
    int failed, tampered;
};

/* Run the handshake between two fresh ends until it is quiet. */
static inline int tlink_fuzz_open(struct tlink_fuzz_pair *p)
{
    struct tlink_config ci = {tlink_fuzz_agent, TLINK_AGENT, NULL, NULL};
    struct tlink_config cr = {tlink_fuzz_server, TLINK_AGENT, NULL, NULL};
    struct fl_buf a, b;
    int ok = 1;
    memset(p, 0, sizeof *p);
    if (tlink_create(&ci, 1, &p->i, NULL) != FL_OK) {
        return 0;
    }
    if (tlink_create(&cr, 0, &p->r, NULL) != FL_OK) {
        tlink_destroy(p->i);
        p->i = NULL;
        return 0;
    }
    fl_buf_init(&a);
    fl_buf_init(&b);
    ok = tlink_start(p->i, &a) == FL_OK;
    for (int round = 0; ok && round < 8 && (a.len > 0 || b.len > 0); round++) {
        if (a.len > 0) {
            ok = tlink_recv(p->r, a.data, a.len, &b, &p->plain) == FL_OK;
            fl_buf_reset(&a);
        }
        if (ok && b.len > 0) {
            ok = tlink_recv(p->i, b.data, b.len, &a, &p->plain) == FL_OK;
            fl_buf_reset(&b);
        }
    }
    fl_buf_close(&a);
    fl_buf_close(&b);
    if (ok && (tlink_state(p->i) != TLINK_OPEN || tlink_state(p->r) != TLINK_OPEN)) {
        abort();
    }
    return ok;
}

static inline void tlink_fuzz_deliver(struct tlink_fuzz_pair *p, size_t chunk)
{
    struct fl_buf back;
    fl_buf_init(&back);
    for (size_t off = 0; off < p->wire.len && !p->failed;) {
        size_t n = p->wire.len - off < chunk ? p->wire.len - off : chunk;
        if (tlink_recv(p->r, p->wire.data + off, n, &back, &p->plain) != FL_OK) {
            p->failed = 1;
        }
        off += n;
    }
    fl_buf_reset(&p->wire);
    fl_buf_close(&back);
}

static inline void tlink_fuzz_script(const uint8_t *d, size_t size)
{
    struct tlink_fuzz_pair p;
    size_t at = 0;
    if (!tlink_fuzz_open(&p)) {
        goto out;
    }
    while (at + 2 <= size && !p.failed) {
        uint8_t op = d[at] % 4, arg = d[at + 1];
        at += 2;
        if (op == 0) { /* send arg*64 bytes of plaintext (from the input, repeated) */
            size_t n = size - at < arg ? size - at : arg;
            for (unsigned rep = 0; rep < 64 && n > 0; rep++) {
                if (tlink_send(p.i, d + at, n, &p.wire) != FL_OK ||
                    fl_buf_append(&p.sent, d + at, n) != FL_OK) {
                    goto out;
                }
            }
            at += n;
        } else if (op == 1 && p.wire.len > 0) { /* flip bits of one wire byte */
            p.wire.data[(arg * 131u + at) % p.wire.len] ^= (uint8_t)(arg | 1);
            p.tampered = 1;
        } else if (op == 2) { /* deliver in chunks of arg+1 */
            tlink_fuzz_deliver(&p, (size_t)arg + 1);
        } else if (op == 3) { /* raw bytes on the wire */
            size_t n = size - at < arg ? size - at : arg;
            if (fl_buf_append(&p.wire, d + at, n) != FL_OK) {
                goto out;
            }
            p.tampered |= n > 0;
            at += n;
        }
    }
    tlink_fuzz_deliver(&p, 4096);
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
    tlink_destroy(p.i);
    tlink_destroy(p.r);
    fl_buf_close(&p.wire);
    fl_buf_close(&p.plain);
    fl_buf_close(&p.sent);
}

static inline void tlink_fuzz_one(const uint8_t *data, size_t size)
{
    tlink_fuzz_init();
    if (size == 0) {
        return;
    }
    switch (data[0] % 3) {
    case 0:
        tlink_fuzz_feed(0, data + 1, size - 1);
        break;
    case 1:
        tlink_fuzz_feed(1, data + 1, size - 1);
        break;
    default:
        tlink_fuzz_script(data + 1, size - 1);
        break;
    }
}

#endif
