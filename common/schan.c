/* The secure channel (common/schan.h; docs/SECURITY.md "Links").
 *
 * Handshake messages (bodies of [u32 len] frames; integers are bytes):
 *
 *   HELLO   "FLS1" 1 link role nlen name[nlen] nonce_i[32] epk_i[32] mac1[32]
 *   REPLY   "FLS1" 2 link role nlen name[nlen] nonce_r[32] epk_r[32] hdr_r2i[24] mac2[32]
 *   CONFIRM "FLS1" 3 hdr_i2r[24] mac3[32]
 *
 * K(key, label, parts...) is keyed BLAKE2b-256 over label, a NUL and the
 * parts. With the cluster key C:
 *
 *   mac1    = K(C, "hello", HELLO without mac1)
 *   th      = K(C, "transcript", len|HELLO, len|REPLY up to epk_r)
 *   kx_i2r, kx_r2i = crypto_kx session keys of the two ephemeral key pairs
 *   k_i2r   = K(C, "i2r", th, kx_i2r)      k_r2i = K(C, "r2i", th, kx_r2i)
 *   k_conf  = K(C, "confirm", th, kx_i2r, kx_r2i)
 *   mac2    = K(k_conf, "reply", th, hdr_r2i)
 *   mac3    = K(k_conf, "confirm", th, hdr_i2r)
 *   binding = K(k_conf, "binding", th)
 *
 * then crypto_secretstream_xchacha20poly1305 with k_i2r one way and k_r2i
 * the other, its headers being hdr_i2r and hdr_r2i. */
#include "common/schan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/err.h"

#define MAGIC       "FLS1"
#define T_HELLO     1
#define T_REPLY     2
#define T_CONFIRM   3
#define NONCE_BYTES 32
#define HASH_BYTES  32
#define SS_HEADER   crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES   crypto_secretstream_xchacha20poly1305_ABYTES

/* Where a side is in the handshake. */
enum step {
    STEP_INIT = 0, /* initiator: nothing sent; responder: waiting for HELLO */
    STEP_WAIT = 1, /* initiator: HELLO sent; responder: REPLY sent */
    STEP_OPEN = 2,
};

struct schan {
    unsigned char key[FL_KEY_BYTES];
    uint8_t link;
    int initiator;
    int state;
    int step;
    int err;
    char errmsg[FL_ERRMSG_SIZE];
    struct schan_identity self, expect, peer;
    size_t max_frame;

    unsigned char esk[crypto_kx_SECRETKEYBYTES], epk[crypto_kx_PUBLICKEYBYTES];
    unsigned char nonce[NONCE_BYTES];
    unsigned char hello[SCHAN_HS_MAX]; /* the HELLO body, for the transcript */
    size_t hello_len;
    unsigned char th[HASH_BYTES];
    unsigned char k_conf[HASH_BYTES];
    unsigned char k_in[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    crypto_secretstream_xchacha20poly1305_state tx, rx;
    uint64_t n_in; /* data frames received (error messages) */

    /* An incomplete frame: header bytes, then the body in rbuf. */
    uint8_t hdr[4];
    size_t hdr_have;
    uint32_t frame_len;
    uint8_t *rbuf;
    size_t rbuf_cap, body_have;
};

/* ---- helpers ------------------------------------------------------------- */

static int fail(struct schan *ch, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct schan *ch, int err, const char *fmt, ...)
{
    va_list ap;
    if (ch->state == SCHAN_FAILED) {
        return ch->err;
    }
    va_start(ap, fmt);
    vsnprintf(ch->errmsg, sizeof ch->errmsg, fmt, ap);
    va_end(ap);
    ch->state = SCHAN_FAILED;
    ch->err = err;
    sodium_memzero(ch->k_in, sizeof ch->k_in);
    sodium_memzero(&ch->tx, sizeof ch->tx);
    sodium_memzero(&ch->rx, sizeof ch->rx);
    return err;
}

/* K(key, label, a, b, c): keyed BLAKE2b-256; NULL parts are skipped. */
static void kdf(unsigned char out[HASH_BYTES], const unsigned char key[32], const char *label,
                const unsigned char *a, size_t alen, const unsigned char *b, size_t blen,
                const unsigned char *c, size_t clen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, HASH_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)label, strlen(label) + 1);
    if (a != NULL) {
        crypto_generichash_update(&st, a, alen);
    }
    if (b != NULL) {
        crypto_generichash_update(&st, b, blen);
    }
    if (c != NULL) {
        crypto_generichash_update(&st, c, clen);
    }
    crypto_generichash_final(&st, out, HASH_BYTES);
    sodium_memzero(&st, sizeof st);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > SCHAN_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static int role_ok(unsigned r)
{
    return r >= SCHAN_ROLE_SERVER && r <= SCHAN_ROLE_CLIENT;
}

static const char *role_name(unsigned r)
{
    switch (r) {
    case SCHAN_ROLE_SERVER:
        return "server";
    case SCHAN_ROLE_AGENT:
        return "agent";
    case SCHAN_ROLE_CLIENT:
        return "client";
    default:
        return "unknown";
    }
}

/* Append one frame (header + body) to wire. */
static int put_frame(struct fl_buf *wire, const uint8_t *body, size_t len)
{
    uint8_t h[4];
    put_u32(h, (uint32_t)len);
    if (fl_buf_reserve(wire, 4 + len + 1) != FL_OK) {
        return FL_ENOMEM;
    }
    fl_buf_append(wire, h, 4);
    fl_buf_append(wire, body, len);
    return FL_OK;
}

/* Identity part shared by HELLO and REPLY: link role nlen name. */
static size_t put_identity(uint8_t *p, uint8_t link, const struct schan_identity *id)
{
    size_t n = strlen(id->name);
    p[0] = link;
    p[1] = id->role;
    p[2] = (uint8_t)n;
    memcpy(p + 3, id->name, n);
    return 3 + n;
}

/* Parse "link role nlen name" at body+5; returns its end offset or 0. */
static size_t get_identity(struct schan *ch, const uint8_t *body, size_t len,
                           struct schan_identity *out)
{
    size_t nlen;
    if (len < 8) {
        return 0;
    }
    nlen = body[7];
    if (len < 8 + nlen || !role_ok(body[6]) || !name_ok((const char *)body + 8, nlen)) {
        return 0;
    }
    out->role = body[6];
    memcpy(out->name, body + 8, nlen);
    out->name[nlen] = '\0';
    return 8 + nlen;
}

static int check_expected(struct schan *ch)
{
    if ((ch->expect.role != 0 && ch->expect.role != ch->peer.role) ||
        (ch->expect.name[0] != '\0' && strcmp(ch->expect.name, ch->peer.name) != 0)) {
        return fail(ch, FL_EPROTO, "peer identity mismatch: it is %s \"%s\", expected %s \"%s\"",
                    role_name(ch->peer.role), ch->peer.name,
                    ch->expect.role ? role_name(ch->expect.role) : "any role",
                    ch->expect.name[0] ? ch->expect.name : "(any name)");
    }
    return FL_OK;
}

/* From the transcript hash and the exchanged ephemeral keys: the direction
 * keys and the confirmation key. Initiator and responder get the same. */
static int derive(struct schan *ch, const unsigned char *peer_epk, unsigned char k_out[32])
{
    unsigned char rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
    unsigned char *i2r, *r2i, k_i2r[32], k_r2i[32];
    int rv;
    if (ch->initiator) {
        rv = crypto_kx_client_session_keys(rx, tx, ch->epk, ch->esk, peer_epk);
        i2r = tx;
        r2i = rx;
    } else {
        rv = crypto_kx_server_session_keys(rx, tx, ch->epk, ch->esk, peer_epk);
        i2r = rx;
        r2i = tx;
    }
    sodium_memzero(ch->esk, sizeof ch->esk);
    if (rv != 0) {
        return fail(ch, FL_EPROTO, "handshake: the peer's ephemeral key is unusable");
    }
    kdf(k_i2r, ch->key, "i2r", ch->th, HASH_BYTES, i2r, 32, NULL, 0);
    kdf(k_r2i, ch->key, "r2i", ch->th, HASH_BYTES, r2i, 32, NULL, 0);
    kdf(ch->k_conf, ch->key, "confirm", ch->th, HASH_BYTES, i2r, 32, r2i, 32);
    memcpy(k_out, ch->initiator ? k_i2r : k_r2i, 32);
    memcpy(ch->k_in, ch->initiator ? k_r2i : k_i2r, 32);
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    sodium_memzero(k_i2r, sizeof k_i2r);
    sodium_memzero(k_r2i, sizeof k_r2i);
    return FL_OK;
}

static void transcript(struct schan *ch, const uint8_t *reply_core, size_t core_len)
{
    uint8_t l1[4], l2[4];
    crypto_generichash_state st;
    put_u32(l1, (uint32_t)ch->hello_len);
    put_u32(l2, (uint32_t)core_len);
    crypto_generichash_init(&st, ch->key, sizeof ch->key, HASH_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)"transcript", 11);
    crypto_generichash_update(&st, l1, 4);
    crypto_generichash_update(&st, ch->hello, ch->hello_len);
    crypto_generichash_update(&st, l2, 4);
    crypto_generichash_update(&st, reply_core, core_len);
    crypto_generichash_final(&st, ch->th, HASH_BYTES);
}

/* ---- lifecycle ------------------------------------------------------------ */

int schan_create(const struct schan_config *c, int initiator, struct schan **out, char *errmsg)
{
    struct schan *ch;
    size_t max = c->max_frame ? c->max_frame : SCHAN_FRAME_DEFAULT;
    if (c->key == NULL || c->link < SCHAN_LINK_RAFT || c->link > SCHAN_LINK_BLOB) {
        return fl_errf(errmsg, FL_EINVAL, "secure channel: no key or unknown link kind");
    }
    if (!role_ok(c->self.role) || !name_ok(c->self.name, strnlen(c->self.name, 300)) ||
        (c->expect.role != 0 && !role_ok(c->expect.role))) {
        return fl_errf(errmsg, FL_EINVAL, "secure channel: bad identity \"%.64s\"", c->self.name);
    }
    if (max > SCHAN_FRAME_LIMIT) {
        return fl_errf(errmsg, FL_EINVAL, "secure channel: frame limit %zu over %u", max,
                       SCHAN_FRAME_LIMIT);
    }
    if (sodium_init() < 0) {
        return fl_errf(errmsg, FL_EIO, "libsodium failed to initialise");
    }
    ch = fl_calloc(1, sizeof *ch);
    if (ch == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory");
    }
    memcpy(ch->key, c->key, sizeof ch->key);
    ch->link = c->link;
    ch->initiator = initiator ? 1 : 0;
    ch->state = SCHAN_HANDSHAKE;
    ch->self = c->self;
    ch->expect = c->expect;
    ch->expect.name[SCHAN_NAME_MAX] = '\0';
    ch->max_frame = max;
    crypto_kx_keypair(ch->epk, ch->esk);
    randombytes_buf(ch->nonce, sizeof ch->nonce);
    *out = ch;
    return FL_OK;
}

void schan_destroy(struct schan *ch)
{
    if (ch == NULL) {
        return;
    }
    fl_free(ch->rbuf);
    sodium_memzero(ch, sizeof *ch);
    fl_free(ch);
}

int schan_state(const struct schan *ch)
{
    return ch->state;
}

const struct schan_identity *schan_peer(const struct schan *ch)
{
    return &ch->peer;
}

const char *schan_errmsg(const struct schan *ch)
{
    return ch->errmsg;
}

size_t schan_pending(const struct schan *ch)
{
    return ch->hdr_have + ch->body_have;
}

int schan_binding(const struct schan *ch, unsigned char out[SCHAN_BINDING_BYTES])
{
    if (ch->state != SCHAN_OPEN) {
        return FL_EINVAL;
    }
    kdf(out, ch->k_conf, "binding", ch->th, HASH_BYTES, NULL, 0, NULL, 0);
    return FL_OK;
}

/* ---- handshake ------------------------------------------------------------- */

int schan_start(struct schan *ch, struct fl_buf *wire)
{
    uint8_t *p = ch->hello;
    size_t n;
    if (!ch->initiator || ch->step != STEP_INIT || ch->state != SCHAN_HANDSHAKE) {
        return FL_EINVAL;
    }
    memcpy(p, MAGIC, 4);
    p[4] = T_HELLO;
    n = 5 + put_identity(p + 5, ch->link, &ch->self);
    memcpy(p + n, ch->nonce, NONCE_BYTES);
    n += NONCE_BYTES;
    memcpy(p + n, ch->epk, sizeof ch->epk);
    n += sizeof ch->epk;
    kdf(p + n, ch->key, "hello", p, n, NULL, 0, NULL, 0);
    n += HASH_BYTES;
    if (put_frame(wire, p, n) != FL_OK) {
        return fail(ch, FL_ENOMEM, "out of memory");
    }
    ch->hello_len = n;
    ch->step = STEP_WAIT;
    return FL_OK;
}

static int check_head(struct schan *ch, const uint8_t *body, size_t len, int type, const char *what)
{
    if (len < 5 || memcmp(body, MAGIC, 4) != 0) {
        return fail(ch, FL_EDECODE, "handshake: not a Flotilla secure channel (bad magic)");
    }
    if (body[4] != type) {
        return fail(ch, FL_EDECODE, "handshake: expected %s, got message type %u", what, body[4]);
    }
    if (type != T_CONFIRM && (len < 6 || body[5] != ch->link)) {
        return fail(ch, FL_EPROTO, "handshake: the peer speaks link kind %u, this is %u",
                    len < 6 ? 0 : body[5], ch->link);
    }
    return FL_OK;
}

/* Responder: HELLO in, REPLY out. */
static int on_hello(struct schan *ch, const uint8_t *body, size_t len, struct fl_buf *wire)
{
    unsigned char mac[HASH_BYTES], k_out[32];
    uint8_t reply[SCHAN_HS_MAX], *hdr;
    size_t off, n;
    int rv = check_head(ch, body, len, T_HELLO, "HELLO");
    if (rv != FL_OK) {
        return rv;
    }
    off = get_identity(ch, body, len, &ch->peer);
    if (off == 0 || len != off + NONCE_BYTES + 32 + HASH_BYTES) {
        return fail(ch, FL_EDECODE, "handshake: malformed HELLO");
    }
    kdf(mac, ch->key, "hello", body, len - HASH_BYTES, NULL, 0, NULL, 0);
    if (sodium_memcmp(mac, body + len - HASH_BYTES, HASH_BYTES) != 0) {
        return fail(ch, FL_EPROTO,
                    "handshake: HELLO from %s \"%s\" does not authenticate (wrong cluster key?)",
                    role_name(ch->peer.role), ch->peer.name);
    }
    rv = check_expected(ch);
    if (rv != FL_OK) {
        return rv;
    }
    memcpy(ch->hello, body, len);
    ch->hello_len = len;
    memcpy(reply, MAGIC, 4);
    reply[4] = T_REPLY;
    n = 5 + put_identity(reply + 5, ch->link, &ch->self);
    memcpy(reply + n, ch->nonce, NONCE_BYTES);
    n += NONCE_BYTES;
    memcpy(reply + n, ch->epk, sizeof ch->epk);
    n += sizeof ch->epk;
    transcript(ch, reply, n);
    rv = derive(ch, body + off + NONCE_BYTES, k_out);
    if (rv != FL_OK) {
        return rv;
    }
    hdr = reply + n;
    crypto_secretstream_xchacha20poly1305_init_push(&ch->tx, hdr, k_out);
    sodium_memzero(k_out, sizeof k_out);
    n += SS_HEADER;
    kdf(reply + n, ch->k_conf, "reply", ch->th, HASH_BYTES, hdr, SS_HEADER, NULL, 0);
    n += HASH_BYTES;
    if (put_frame(wire, reply, n) != FL_OK) {
        return fail(ch, FL_ENOMEM, "out of memory");
    }
    ch->step = STEP_WAIT;
    return FL_OK;
}

/* Initiator: REPLY in, CONFIRM out; the channel opens. */
static int on_reply(struct schan *ch, const uint8_t *body, size_t len, struct fl_buf *wire)
{
    unsigned char mac[HASH_BYTES], k_out[32];
    uint8_t confirm[5 + SS_HEADER + HASH_BYTES];
    size_t off, core;
    int rv = check_head(ch, body, len, T_REPLY, "REPLY");
    if (rv != FL_OK) {
        return rv;
    }
    off = get_identity(ch, body, len, &ch->peer);
    core = off + NONCE_BYTES + 32;
    if (off == 0 || len != core + SS_HEADER + HASH_BYTES) {
        return fail(ch, FL_EDECODE, "handshake: malformed REPLY");
    }
    transcript(ch, body, core);
    rv = derive(ch, body + off + NONCE_BYTES, k_out);
    if (rv != FL_OK) {
        return rv;
    }
    kdf(mac, ch->k_conf, "reply", ch->th, HASH_BYTES, body + core, SS_HEADER, NULL, 0);
    if (sodium_memcmp(mac, body + core + SS_HEADER, HASH_BYTES) != 0) {
        sodium_memzero(k_out, sizeof k_out);
        return fail(ch, FL_EPROTO,
                    "handshake: the reply of %s \"%s\" does not authenticate (wrong cluster key?)",
                    role_name(ch->peer.role), ch->peer.name);
    }
    rv = check_expected(ch);
    if (rv != FL_OK) {
        sodium_memzero(k_out, sizeof k_out);
        return rv;
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&ch->rx, body + core, ch->k_in) != 0) {
        sodium_memzero(k_out, sizeof k_out);
        return fail(ch, FL_EPROTO, "handshake: bad stream header");
    }
    memcpy(confirm, MAGIC, 4);
    confirm[4] = T_CONFIRM;
    crypto_secretstream_xchacha20poly1305_init_push(&ch->tx, confirm + 5, k_out);
    sodium_memzero(k_out, sizeof k_out);
    kdf(confirm + 5 + SS_HEADER, ch->k_conf, "confirm", ch->th, HASH_BYTES, confirm + 5, SS_HEADER,
        NULL, 0);
    if (put_frame(wire, confirm, sizeof confirm) != FL_OK) {
        return fail(ch, FL_ENOMEM, "out of memory");
    }
    ch->step = STEP_OPEN;
    ch->state = SCHAN_OPEN;
    return FL_OK;
}

/* Responder: CONFIRM in; the channel opens. */
static int on_confirm(struct schan *ch, const uint8_t *body, size_t len)
{
    unsigned char mac[HASH_BYTES];
    int rv = check_head(ch, body, len, T_CONFIRM, "CONFIRM");
    if (rv != FL_OK) {
        return rv;
    }
    if (len != 5 + SS_HEADER + HASH_BYTES) {
        return fail(ch, FL_EDECODE, "handshake: malformed CONFIRM");
    }
    kdf(mac, ch->k_conf, "confirm", ch->th, HASH_BYTES, body + 5, SS_HEADER, NULL, 0);
    if (sodium_memcmp(mac, body + 5 + SS_HEADER, HASH_BYTES) != 0) {
        return fail(ch, FL_EPROTO,
                    "handshake: %s \"%s\" failed to confirm the keys (wrong cluster key?)",
                    role_name(ch->peer.role), ch->peer.name);
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&ch->rx, body + 5, ch->k_in) != 0) {
        return fail(ch, FL_EPROTO, "handshake: bad stream header");
    }
    ch->step = STEP_OPEN;
    ch->state = SCHAN_OPEN;
    return FL_OK;
}

/* ---- data --------------------------------------------------------------- */

static int on_data(struct schan *ch, const uint8_t *c, size_t clen, struct fl_buf *plain)
{
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (fl_buf_reserve(plain, clen + 1) != FL_OK) {
        return fail(ch, FL_ENOMEM, "out of memory");
    }
    if (crypto_secretstream_xchacha20poly1305_pull(&ch->rx, plain->data + plain->len, &mlen, &tag,
                                                   c, clen, NULL, 0) != 0 ||
        tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) {
        return fail(ch, FL_EPROTO,
                    "frame %llu from %s \"%s\" does not authenticate "
                    "(tampered, replayed, reordered or truncated)",
                    (unsigned long long)ch->n_in + 1, role_name(ch->peer.role), ch->peer.name);
    }
    plain->len += (size_t)mlen;
    plain->data[plain->len] = '\0';
    ch->n_in++;
    return FL_OK;
}

static int on_frame(struct schan *ch, const uint8_t *body, size_t len, struct fl_buf *wire,
                    struct fl_buf *plain)
{
    if (ch->step == STEP_OPEN) {
        return on_data(ch, body, len, plain);
    }
    if (ch->initiator) {
        if (ch->step != STEP_WAIT) {
            return fail(ch, FL_EPROTO, "handshake: data before HELLO was sent");
        }
        return on_reply(ch, body, len, wire);
    }
    return ch->step == STEP_INIT ? on_hello(ch, body, len, wire) : on_confirm(ch, body, len);
}

/* The length header of the next frame is complete: check it against the
 * limit of the current step (handshake frames are small, so a peer that has
 * not authenticated cannot make us buffer much). */
static int check_len(struct schan *ch, uint32_t len)
{
    size_t max = ch->step == STEP_OPEN ? ch->max_frame + SS_ABYTES : SCHAN_HS_MAX;
    size_t min = ch->step == STEP_OPEN ? SS_ABYTES + 1 : 5;
    if (len > max) {
        return fail(ch, FL_ETOOBIG, "frame of %u bytes over the limit of %zu%s", len, max,
                    ch->step == STEP_OPEN ? "" : " during the handshake");
    }
    if (len < min) {
        return fail(ch, FL_EDECODE, "frame of %u bytes is too short", len);
    }
    return FL_OK;
}

int schan_recv(struct schan *ch, const uint8_t *p, size_t n, struct fl_buf *wire,
               struct fl_buf *plain)
{
    int rv;
    if (ch->state == SCHAN_FAILED) {
        return ch->err;
    }
    if (ch->initiator && ch->step == STEP_INIT && n > 0) {
        return fail(ch, FL_EPROTO, "handshake: the peer spoke first");
    }
    while (n > 0) {
        size_t take;
        if (ch->hdr_have < 4) {
            take = n < 4 - ch->hdr_have ? n : 4 - ch->hdr_have;
            memcpy(ch->hdr + ch->hdr_have, p, take);
            ch->hdr_have += take;
            p += take;
            n -= take;
            if (ch->hdr_have < 4) {
                break;
            }
            ch->frame_len = get_u32(ch->hdr);
            rv = check_len(ch, ch->frame_len);
            if (rv != FL_OK) {
                return rv;
            }
            ch->body_have = 0;
        }
        if (ch->body_have == 0 && n >= ch->frame_len) {
            /* The whole frame is in the input: no copy. */
            rv = on_frame(ch, p, ch->frame_len, wire, plain);
            p += ch->frame_len;
            n -= ch->frame_len;
        } else {
            if (ch->rbuf_cap < ch->frame_len) {
                uint8_t *b = fl_realloc(ch->rbuf, ch->frame_len);
                if (b == NULL) {
                    return fail(ch, FL_ENOMEM, "out of memory");
                }
                ch->rbuf = b;
                ch->rbuf_cap = ch->frame_len;
            }
            take = ch->frame_len - ch->body_have;
            take = n < take ? n : take;
            memcpy(ch->rbuf + ch->body_have, p, take);
            ch->body_have += take;
            p += take;
            n -= take;
            if (ch->body_have < ch->frame_len) {
                break;
            }
            rv = on_frame(ch, ch->rbuf, ch->frame_len, wire, plain);
        }
        if (rv != FL_OK) {
            return rv;
        }
        ch->hdr_have = 0;
        ch->body_have = 0;
    }
    return FL_OK;
}

int schan_send(struct schan *ch, const uint8_t *p, size_t n, struct fl_buf *wire)
{
    if (ch->state != SCHAN_OPEN) {
        return ch->state == SCHAN_FAILED ? ch->err : FL_EINVAL;
    }
    while (n > 0) {
        size_t m = n < ch->max_frame ? n : ch->max_frame;
        unsigned long long clen = 0;
        if (fl_buf_reserve(wire, 4 + m + SS_ABYTES + 1) != FL_OK) {
            /* Earlier frames of this call advanced the stream: the link
             * cannot go on. */
            return fail(ch, FL_ENOMEM, "out of memory");
        }
        crypto_secretstream_xchacha20poly1305_push(
            &ch->tx, wire->data + wire->len + 4, &clen, p, m, NULL, 0,
            crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
        put_u32(wire->data + wire->len, (uint32_t)clen);
        wire->len += 4 + (size_t)clen;
        wire->data[wire->len] = '\0';
        p += m;
        n -= m;
    }
    return FL_OK;
}

int schan_eof(struct schan *ch)
{
    if (ch->state == SCHAN_FAILED) {
        return ch->err;
    }
    if (ch->hdr_have > 0) {
        return fail(ch, FL_EPROTO, "the peer closed in the middle of a frame (truncated)");
    }
    return FL_OK;
}

int schan_raft_name_parse(const char *name, uint64_t *id, const char **addr)
{
    uint64_t v = 0;
    const char *s = name;
    if (*s < '1' || *s > '9') {
        return 0;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return 0;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (*s != '@' || s[1] == '\0') {
        return 0;
    }
    *id = v;
    *addr = s + 1;
    return 1;
}
