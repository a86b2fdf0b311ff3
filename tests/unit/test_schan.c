/* The secure channel (common/schan.h): handshake, authentication failures,
 * every way a frame can be damaged, partial input, allocation failures; and
 * the cluster key files (common/key.h). */
#include <sodium.h>
#include <sys/stat.h>

#include "check.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/ident.h"
#include "common/key.h"
#include "common/schan.h"

static unsigned char key_a[FL_KEY_BYTES], key_b[FL_KEY_BYTES];

struct pair {
    struct schan *i, *r;    /* initiator, responder */
    struct fl_buf i2r, r2i; /* bytes in flight */
    struct fl_buf i_plain, r_plain;
};

static void config(struct schan_config *c, const unsigned char *key, int role, const char *name)
{
    memset(c, 0, sizeof *c);
    c->key = key;
    c->link = SCHAN_LINK_RAFT;
    c->self.role = (uint8_t)role;
    snprintf(c->self.name, sizeof c->self.name, "%s", name);
}

static int pair_create(struct pair *p, const struct schan_config *ci, const struct schan_config *cr)
{
    int rv;
    memset(p, 0, sizeof *p);
    fl_buf_init(&p->i2r);
    fl_buf_init(&p->r2i);
    fl_buf_init(&p->i_plain);
    fl_buf_init(&p->r_plain);
    rv = schan_create(ci, 1, &p->i, NULL);
    if (rv != FL_OK) {
        return rv;
    }
    rv = schan_create(cr, 0, &p->r, NULL);
    if (rv != FL_OK) {
        schan_destroy(p->i);
        p->i = NULL;
    }
    return rv;
}

static void pair_close(struct pair *p)
{
    schan_destroy(p->i);
    schan_destroy(p->r);
    fl_buf_close(&p->i2r);
    fl_buf_close(&p->r2i);
    fl_buf_close(&p->i_plain);
    fl_buf_close(&p->r_plain);
}

/* Move what is in flight until nothing moves; returns the first error. */
static int pump(struct pair *p)
{
    for (int round = 0; round < 8; round++) {
        struct fl_buf a, b;
        int rv;
        if (p->i2r.len == 0 && p->r2i.len == 0) {
            return FL_OK;
        }
        a = p->i2r;
        b = p->r2i;
        fl_buf_init(&p->i2r);
        fl_buf_init(&p->r2i);
        rv = schan_recv(p->r, a.data, a.len, &p->r2i, &p->r_plain);
        fl_buf_close(&a);
        if (rv != FL_OK) {
            fl_buf_close(&b);
            return rv;
        }
        rv = schan_recv(p->i, b.data, b.len, &p->i2r, &p->i_plain);
        fl_buf_close(&b);
        if (rv != FL_OK) {
            return rv;
        }
    }
    return FL_OK;
}

static int handshake(struct pair *p)
{
    int rv = schan_start(p->i, &p->i2r);
    return rv != FL_OK ? rv : pump(p);
}

static void open_pair(struct pair *p)
{
    struct schan_config ci, cr;
    config(&ci, key_a, SCHAN_ROLE_SERVER, "1@127.0.0.1:9001");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "2@127.0.0.1:9002");
    CHECK_OK(pair_create(p, &ci, &cr));
    CHECK_OK(handshake(p));
    CHECK_EQ_INT(schan_state(p->i), SCHAN_OPEN);
    CHECK_EQ_INT(schan_state(p->r), SCHAN_OPEN);
}

TEST(handshake_ok)
{
    struct pair p;
    unsigned char bi[SCHAN_BINDING_BYTES], br[SCHAN_BINDING_BYTES];
    open_pair(&p);
    CHECK_EQ_STR(schan_peer(p.i)->name, "2@127.0.0.1:9002");
    CHECK_EQ_STR(schan_peer(p.r)->name, "1@127.0.0.1:9001");
    CHECK_EQ_INT(schan_peer(p.r)->role, SCHAN_ROLE_SERVER);
    CHECK_OK(schan_binding(p.i, bi));
    CHECK_OK(schan_binding(p.r, br));
    CHECK(memcmp(bi, br, sizeof bi) == 0);
    /* Both directions carry data. */
    CHECK_OK(schan_send(p.i, (const uint8_t *)"hello", 5, &p.i2r));
    CHECK_OK(schan_send(p.r, (const uint8_t *)"world!", 6, &p.r2i));
    CHECK_OK(pump(&p));
    CHECK_EQ_INT(p.r_plain.len, 5);
    CHECK(memcmp(p.r_plain.data, "hello", 5) == 0);
    CHECK_EQ_INT(p.i_plain.len, 6);
    CHECK(memcmp(p.i_plain.data, "world!", 6) == 0);
    CHECK_OK(schan_eof(p.r));
    pair_close(&p);
}

TEST(sessions_differ)
{
    struct pair a, b;
    unsigned char ba[SCHAN_BINDING_BYTES], bb[SCHAN_BINDING_BYTES];
    open_pair(&a);
    open_pair(&b);
    CHECK_OK(schan_binding(a.i, ba));
    CHECK_OK(schan_binding(b.i, bb));
    CHECK(memcmp(ba, bb, sizeof ba) != 0);
    pair_close(&a);
    pair_close(&b);
}

TEST(large_stream_splits_into_frames)
{
    struct pair p;
    struct schan_config ci, cr;
    uint8_t *big = fl_malloc(300000);
    REQUIRE(big != NULL);
    randombytes_buf(big, 300000);
    config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "2@a:2");
    ci.max_frame = cr.max_frame = 4096;
    CHECK_OK(pair_create(&p, &ci, &cr));
    CHECK_OK(handshake(&p));
    CHECK_OK(schan_send(p.i, big, 300000, &p.i2r));
    CHECK_EQ_INT(p.i2r.len, 300000 + ((300000 + 4095) / 4096) * SCHAN_OVERHEAD);
    CHECK_OK(pump(&p));
    CHECK_EQ_INT(p.r_plain.len, 300000);
    CHECK(memcmp(p.r_plain.data, big, 300000) == 0);
    fl_free(big);
    pair_close(&p);
}

TEST(wrong_key_refused_both_sides)
{
    struct pair p;
    struct schan_config ci, cr;
    int rv;
    /* The initiator has the wrong key: the responder refuses HELLO and says
     * nothing back. */
    config(&ci, key_b, SCHAN_ROLE_SERVER, "1@a:1");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "2@a:2");
    CHECK_OK(pair_create(&p, &ci, &cr));
    rv = handshake(&p);
    CHECK_EQ_INT(rv, FL_EPROTO);
    CHECK_EQ_INT(schan_state(p.r), SCHAN_FAILED);
    CHECK(strstr(schan_errmsg(p.r), "wrong cluster key") != NULL);
    CHECK_EQ_INT(p.r2i.len, 0);
    CHECK_EQ_INT(schan_state(p.i), SCHAN_HANDSHAKE);
    pair_close(&p);

    /* A responder with the wrong key cannot produce a REPLY the initiator
     * accepts. Give it a HELLO made with its own (wrong) key so it answers. */
    config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
    config(&cr, key_b, SCHAN_ROLE_SERVER, "2@a:2");
    CHECK_OK(pair_create(&p, &ci, &cr));
    {
        struct schan *fake;
        struct schan_config cf;
        struct fl_buf hello, reply, plain;
        config(&cf, key_b, SCHAN_ROLE_SERVER, "1@a:1");
        fl_buf_init(&hello);
        fl_buf_init(&reply);
        fl_buf_init(&plain);
        CHECK_OK(schan_create(&cf, 1, &fake, NULL));
        CHECK_OK(schan_start(fake, &hello));
        CHECK_OK(schan_recv(p.r, hello.data, hello.len, &reply, &plain));
        CHECK(reply.len > 0);
        CHECK_OK(schan_start(p.i, &p.i2r));
        rv = schan_recv(p.i, reply.data, reply.len, &p.i2r, &p.i_plain);
        CHECK_EQ_INT(rv, FL_EPROTO);
        CHECK(strstr(schan_errmsg(p.i), "wrong cluster key") != NULL);
        CHECK_EQ_INT(schan_state(p.i), SCHAN_FAILED);
        /* And the error sticks. */
        CHECK_EQ_INT(schan_recv(p.i, reply.data, 1, &p.i2r, &p.i_plain), FL_EPROTO);
        CHECK_EQ_INT(schan_send(p.i, (const uint8_t *)"x", 1, &p.i2r), FL_EPROTO);
        schan_destroy(fake);
        fl_buf_close(&hello);
        fl_buf_close(&reply);
        fl_buf_close(&plain);
    }
    pair_close(&p);
}

TEST(identity_mismatch)
{
    struct pair p;
    struct schan_config ci, cr;
    config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "3@a:3");
    ci.expect.role = SCHAN_ROLE_SERVER;
    snprintf(ci.expect.name, sizeof ci.expect.name, "2@a:2");
    CHECK_OK(pair_create(&p, &ci, &cr));
    CHECK_EQ_INT(handshake(&p), FL_EPROTO);
    CHECK(strstr(schan_errmsg(p.i), "identity mismatch") != NULL);
    CHECK(strstr(schan_errmsg(p.i), "3@a:3") != NULL);
    pair_close(&p);

    /* Role pinned: an agent is not accepted where a server is expected. */
    config(&ci, key_a, SCHAN_ROLE_AGENT, "web-1");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "server-1");
    cr.expect.role = SCHAN_ROLE_SERVER;
    CHECK_OK(pair_create(&p, &ci, &cr));
    CHECK_EQ_INT(handshake(&p), FL_EPROTO);
    CHECK(strstr(schan_errmsg(p.r), "identity mismatch") != NULL);
    pair_close(&p);

    /* The link kind is bound too. */
    config(&ci, key_a, SCHAN_ROLE_AGENT, "web-1");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "server-1");
    ci.link = SCHAN_LINK_AGENT;
    CHECK_OK(pair_create(&p, &ci, &cr));
    CHECK_EQ_INT(handshake(&p), FL_EPROTO);
    CHECK(strstr(schan_errmsg(p.r), "link kind") != NULL);
    pair_close(&p);
}

/* A handshake message altered in transit: each byte of HELLO, then of REPLY
 * and CONFIRM, flipped in turn; never an open channel. */
TEST(handshake_tampered_every_byte)
{
    for (int msg = 0; msg < 3; msg++) {
        size_t len = 1;
        for (size_t at = 0; at < len; at++) {
            struct pair p;
            struct fl_buf *target;
            int rv;
            {
                struct schan_config ci, cr;
                config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
                config(&cr, key_a, SCHAN_ROLE_SERVER, "2@a:2");
                CHECK_OK(pair_create(&p, &ci, &cr));
            }
            CHECK_OK(schan_start(p.i, &p.i2r));
            if (msg >= 1) {
                struct fl_buf x = p.i2r;
                fl_buf_init(&p.i2r);
                CHECK_OK(schan_recv(p.r, x.data, x.len, &p.r2i, &p.r_plain));
                fl_buf_close(&x);
            }
            if (msg == 2) {
                struct fl_buf x = p.r2i;
                fl_buf_init(&p.r2i);
                CHECK_OK(schan_recv(p.i, x.data, x.len, &p.i2r, &p.i_plain));
                fl_buf_close(&x);
            }
            target = msg == 1 ? &p.r2i : &p.i2r;
            len = target->len;
            target->data[at] ^= 0x20;
            rv = pump(&p);
            (void)rv; /* an error, or a frame still waiting for bytes */
            CHECK(schan_state(p.r) != SCHAN_OPEN);
            if (msg <= 1) {
                CHECK(schan_state(p.i) != SCHAN_OPEN);
            }
            pair_close(&p);
        }
    }
}

TEST(tampered_frame)
{
    struct pair p;
    open_pair(&p);
    CHECK_OK(schan_send(p.i, (const uint8_t *)"append entries", 14, &p.i2r));
    p.i2r.data[10] ^= 1;
    CHECK_EQ_INT(pump(&p), FL_EPROTO);
    CHECK(strstr(schan_errmsg(p.r), "does not authenticate") != NULL);
    CHECK_EQ_INT(p.r_plain.len, 0);
    CHECK_EQ_INT(schan_state(p.r), SCHAN_FAILED);
    pair_close(&p);
}

TEST(replayed_frame)
{
    struct pair p;
    struct fl_buf copy;
    open_pair(&p);
    CHECK_OK(schan_send(p.i, (const uint8_t *)"vote", 4, &p.i2r));
    fl_buf_init(&copy);
    fl_buf_append(&copy, p.i2r.data, p.i2r.len);
    CHECK_OK(pump(&p));
    CHECK_EQ_INT(p.r_plain.len, 4);
    CHECK_EQ_INT(schan_recv(p.r, copy.data, copy.len, &p.r2i, &p.r_plain), FL_EPROTO);
    CHECK_EQ_INT(p.r_plain.len, 4);
    fl_buf_close(&copy);
    pair_close(&p);
}

TEST(reordered_frames)
{
    struct pair p;
    struct fl_buf one, two;
    open_pair(&p);
    fl_buf_init(&one);
    fl_buf_init(&two);
    CHECK_OK(schan_send(p.i, (const uint8_t *)"first", 5, &one));
    CHECK_OK(schan_send(p.i, (const uint8_t *)"second", 6, &two));
    CHECK_EQ_INT(schan_recv(p.r, two.data, two.len, &p.r2i, &p.r_plain), FL_EPROTO);
    CHECK_EQ_INT(p.r_plain.len, 0);
    fl_buf_close(&one);
    fl_buf_close(&two);
    pair_close(&p);
}

TEST(dropped_frame)
{
    struct pair p;
    struct fl_buf one, two;
    open_pair(&p);
    fl_buf_init(&one);
    fl_buf_init(&two);
    CHECK_OK(schan_send(p.i, (const uint8_t *)"first", 5, &one));
    CHECK_OK(schan_send(p.i, (const uint8_t *)"second", 6, &two));
    (void)one;
    CHECK_EQ_INT(schan_recv(p.r, two.data, two.len, &p.r2i, &p.r_plain), FL_EPROTO);
    fl_buf_close(&one);
    fl_buf_close(&two);
    pair_close(&p);
}

TEST(truncated_frame)
{
    struct pair p;
    struct fl_buf one, two, cut;
    open_pair(&p);
    fl_buf_init(&one);
    fl_buf_init(&two);
    fl_buf_init(&cut);
    CHECK_OK(schan_send(p.i, (const uint8_t *)"first frame", 11, &one));
    CHECK_OK(schan_send(p.i, (const uint8_t *)"second frame", 12, &two));
    /* The tail of the first frame lost, the second appended: the length
     * header swallows bytes of the second frame and the MAC fails. */
    fl_buf_append(&cut, one.data, one.len - 3);
    fl_buf_append(&cut, two.data, two.len);
    CHECK_EQ_INT(schan_recv(p.r, cut.data, cut.len, &p.r2i, &p.r_plain), FL_EPROTO);
    CHECK_EQ_INT(p.r_plain.len, 0);
    pair_close(&p);

    /* Cut short, then EOF: the pending partial frame is an error. */
    open_pair(&p);
    fl_buf_reset(&one);
    CHECK_OK(schan_send(p.i, (const uint8_t *)"first frame", 11, &one));
    CHECK_OK(schan_recv(p.r, one.data, one.len - 1, &p.r2i, &p.r_plain));
    CHECK_EQ_INT(p.r_plain.len, 0);
    CHECK(schan_pending(p.r) > 0);
    CHECK_EQ_INT(schan_eof(p.r), FL_EPROTO);
    CHECK(strstr(schan_errmsg(p.r), "truncated") != NULL);
    pair_close(&p);

    /* A frame shorter than its MAC. */
    open_pair(&p);
    {
        uint8_t tiny[4 + 16] = {0, 0, 0, 16};
        CHECK_EQ_INT(schan_recv(p.r, tiny, sizeof tiny, &p.r2i, &p.r_plain), FL_EDECODE);
    }
    pair_close(&p);
    fl_buf_close(&one);
    fl_buf_close(&two);
    fl_buf_close(&cut);
}

TEST(oversized_length)
{
    struct pair p;
    struct schan_config ci, cr;
    uint8_t hdr[4] = {0x7f, 0xff, 0xff, 0xff};
    /* Before the handshake: anything over SCHAN_HS_MAX, nothing buffered. */
    config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "2@a:2");
    CHECK_OK(pair_create(&p, &ci, &cr));
    hdr[0] = 0;
    hdr[1] = 0;
    hdr[2] = (SCHAN_HS_MAX + 1) >> 8;
    hdr[3] = (SCHAN_HS_MAX + 1) & 0xff;
    CHECK_EQ_INT(schan_recv(p.r, hdr, 4, &p.r2i, &p.r_plain), FL_ETOOBIG);
    pair_close(&p);
    /* After it: over max_frame + MAC. */
    ci.max_frame = cr.max_frame = 1000;
    CHECK_OK(pair_create(&p, &ci, &cr));
    CHECK_OK(handshake(&p));
    hdr[0] = 0;
    hdr[1] = 0;
    hdr[2] = (1000 + 17 + 1) >> 8;
    hdr[3] = (1000 + 17 + 1) & 0xff;
    CHECK_EQ_INT(schan_recv(p.r, hdr, 4, &p.r2i, &p.r_plain), FL_ETOOBIG);
    CHECK(strstr(schan_errmsg(p.r), "over the limit") != NULL);
    pair_close(&p);
}

TEST(garbage_bytes)
{
    /* Random garbage at a responder, then at an initiator that sent HELLO:
     * refused quickly, never buffered beyond one small frame. */
    for (int round = 0; round < 200; round++) {
        struct pair p;
        struct schan_config ci, cr;
        uint8_t junk[600];
        int rv;
        size_t n = 1 + randombytes_uniform(sizeof junk);
        randombytes_buf(junk, n);
        if (round % 3 == 0) {
            /* a plausible length header in front */
            junk[0] = 0;
            junk[1] = 0;
            junk[2] = (uint8_t)(randombytes_uniform(2));
            junk[3] = (uint8_t)randombytes_uniform(256);
        }
        config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
        config(&cr, key_a, SCHAN_ROLE_SERVER, "2@a:2");
        CHECK_OK(pair_create(&p, &ci, &cr));
        rv = schan_recv(p.r, junk, n, &p.r2i, &p.r_plain);
        CHECK(rv != FL_OK || schan_pending(p.r) <= 4 + SCHAN_HS_MAX);
        CHECK(schan_state(p.r) != SCHAN_OPEN);
        CHECK_EQ_INT(p.r2i.len, 0);
        CHECK_OK(schan_start(p.i, &p.i2r));
        rv = schan_recv(p.i, junk, n, &p.r2i, &p.i_plain);
        CHECK(schan_state(p.i) != SCHAN_OPEN);
        (void)rv;
        pair_close(&p);
    }
    /* A stock raft handshake (u64 protocol, u64 id, ...) at an encrypted
     * port: bad magic. */
    {
        struct pair p;
        struct schan_config ci, cr;
        uint8_t raft[24] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
                            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 16};
        config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
        config(&cr, key_a, SCHAN_ROLE_SERVER, "2@a:2");
        CHECK_OK(pair_create(&p, &ci, &cr));
        CHECK(schan_recv(p.r, raft, sizeof raft, &p.r2i, &p.r_plain) != FL_OK);
        pair_close(&p);
    }
}

/* Everything fed one byte at a time: handshake and data. */
TEST(byte_by_byte)
{
    struct pair p;
    struct schan_config ci, cr;
    struct fl_buf data;
    config(&ci, key_a, SCHAN_ROLE_AGENT, "web-1");
    config(&cr, key_a, SCHAN_ROLE_SERVER, "server-1");
    ci.link = cr.link = SCHAN_LINK_AGENT;
    CHECK_OK(pair_create(&p, &ci, &cr));
    CHECK_OK(schan_start(p.i, &p.i2r));
    for (int step = 0; step < 3; step++) {
        struct fl_buf x;
        if (step == 1) {
            x = p.r2i;
            fl_buf_init(&p.r2i);
            for (size_t k = 0; k < x.len; k++) {
                CHECK_OK(schan_recv(p.i, x.data + k, 1, &p.i2r, &p.i_plain));
            }
        } else {
            x = p.i2r;
            fl_buf_init(&p.i2r);
            for (size_t k = 0; k < x.len; k++) {
                CHECK_OK(schan_recv(p.r, x.data + k, 1, &p.r2i, &p.r_plain));
            }
        }
        fl_buf_close(&x);
    }
    CHECK_EQ_INT(schan_state(p.i), SCHAN_OPEN);
    CHECK_EQ_INT(schan_state(p.r), SCHAN_OPEN);
    fl_buf_init(&data);
    for (int k = 0; k < 10; k++) {
        char msg[32];
        snprintf(msg, sizeof msg, "message %d;", k);
        CHECK_OK(schan_send(p.i, (const uint8_t *)msg, strlen(msg), &data));
    }
    for (size_t k = 0; k < data.len; k++) {
        CHECK_OK(schan_recv(p.r, data.data + k, 1, &p.r2i, &p.r_plain));
    }
    CHECK(p.r_plain.len > 0 && strstr((char *)p.r_plain.data, "message 9;") != NULL);
    CHECK(strncmp((char *)p.r_plain.data, "message 0;message 1;", 20) == 0);
    CHECK_EQ_INT(schan_pending(p.r), 0);
    fl_buf_close(&data);
    pair_close(&p);
}

TEST(bad_config)
{
    struct schan_config c;
    struct schan *ch;
    config(&c, key_a, SCHAN_ROLE_SERVER, "");
    CHECK_EQ_INT(schan_create(&c, 1, &ch, NULL), FL_EINVAL);
    config(&c, key_a, 9, "x");
    CHECK_EQ_INT(schan_create(&c, 1, &ch, NULL), FL_EINVAL);
    config(&c, key_a, SCHAN_ROLE_SERVER, "has space");
    CHECK_EQ_INT(schan_create(&c, 1, &ch, NULL), FL_EINVAL);
    config(&c, NULL, SCHAN_ROLE_SERVER, "x");
    CHECK_EQ_INT(schan_create(&c, 1, &ch, NULL), FL_EINVAL);
    config(&c, key_a, SCHAN_ROLE_SERVER, "x");
    c.max_frame = SCHAN_FRAME_LIMIT + 1;
    CHECK_EQ_INT(schan_create(&c, 1, &ch, NULL), FL_EINVAL);
    config(&c, key_a, SCHAN_ROLE_SERVER, "x");
    CHECK_OK(schan_create(&c, 0, &ch, NULL));
    CHECK_EQ_INT(schan_send(ch, (const uint8_t *)"x", 1, NULL), FL_EINVAL);
    CHECK_EQ_INT(schan_start(ch, NULL), FL_EINVAL); /* a responder does not start */
    schan_destroy(ch);
}

TEST(raft_name)
{
    uint64_t id;
    const char *addr;
    CHECK(schan_raft_name_parse("3@127.0.0.1:8503", &id, &addr));
    CHECK_EQ_INT(id, 3);
    CHECK_EQ_STR(addr, "127.0.0.1:8503");
    CHECK(!schan_raft_name_parse("0@x", &id, &addr));
    CHECK(!schan_raft_name_parse("3@", &id, &addr));
    CHECK(!schan_raft_name_parse("3", &id, &addr));
    CHECK(!schan_raft_name_parse("99999999999999999999999@x", &id, &addr));
}

/* The N-th allocation fails, for every N a full exchange makes: an error
 * or success, never a crash or a leak (the sanitizer build checks). */
TEST(alloc_failure_sweep)
{
    int failures = 0, successes = 0;
    for (long n = 0; n < 60; n++) {
        struct pair p;
        struct schan_config ci, cr;
        int rv;
        uint8_t big[5000];
        memset(big, 7, sizeof big);
        config(&ci, key_a, SCHAN_ROLE_SERVER, "1@a:1");
        config(&cr, key_a, SCHAN_ROLE_SERVER, "2@a:2");
        ci.max_frame = cr.max_frame = 2048;
        fl_alloc_fault_set(n);
        rv = pair_create(&p, &ci, &cr);
        if (rv == FL_OK) {
            rv = handshake(&p);
            if (rv == FL_OK) {
                rv = schan_send(p.i, big, sizeof big, &p.i2r);
            }
            if (rv == FL_OK) {
                /* fed in pieces so the receive buffer is used */
                struct fl_buf x = p.i2r;
                fl_buf_init(&p.i2r);
                for (size_t off = 0; off < x.len && rv == FL_OK; off += 1000) {
                    size_t m = x.len - off < 1000 ? x.len - off : 1000;
                    rv = schan_recv(p.r, x.data + off, m, &p.r2i, &p.r_plain);
                }
                fl_buf_close(&x);
            }
            fl_alloc_fault_clear();
            if (rv == FL_OK) {
                CHECK_EQ_INT(p.r_plain.len, sizeof big);
            }
            pair_close(&p);
        }
        fl_alloc_fault_clear();
        if (rv == FL_OK) {
            successes++;
        } else {
            CHECK_EQ_INT(rv, FL_ENOMEM);
            failures++;
        }
    }
    CHECK(failures > 3);
    CHECK(successes > 0);
}

/* ---- key files ---------------------------------------------------------- */

TEST(key_files)
{
    char dir[256], path[512], err[FL_ERRMSG_SIZE];
    unsigned char k1[FL_KEY_BYTES], k2[FL_KEY_BYTES];
    FILE *f;
    REQUIRE(check_tmpdir(dir, sizeof dir) != NULL);
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    CHECK_EQ_INT(fl_key_load(path, k1, err), FL_ENOTFOUND);
    CHECK_OK(fl_key_generate(path, 0, k1, err));
    {
        struct stat st;
        CHECK_OK(stat(path, &st));
        CHECK_EQ_INT(st.st_mode & 0777, 0600);
        CHECK_EQ_INT(st.st_size, 45); /* 44 base64 characters and a newline */
    }
    CHECK_OK(fl_key_load(path, k2, err));
    CHECK(memcmp(k1, k2, sizeof k1) == 0);
    /* No overwrite without force. */
    CHECK_EQ_INT(fl_key_generate(path, 0, k2, err), FL_EEXIST);
    CHECK_OK(fl_key_load(path, k2, err));
    CHECK(memcmp(k1, k2, sizeof k1) == 0);
    CHECK_OK(fl_key_generate(path, 1, k2, err));
    CHECK(memcmp(k1, k2, sizeof k1) != 0);
    /* Readable by the group: refused, with the fix in the message. */
    CHECK_OK(chmod(path, 0640));
    CHECK_EQ_INT(fl_key_load(path, k1, err), FL_EPROTO);
    CHECK(strstr(err, "chmod 600") != NULL);
    CHECK_OK(chmod(path, 0600));
    /* Not a key. */
    f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("not base64 at all!\n", f);
    fclose(f);
    CHECK_EQ_INT(fl_key_load(path, k1, err), FL_EDECODE);
    f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("AAAA\n", f); /* 3 bytes */
    fclose(f);
    CHECK_EQ_INT(fl_key_load(path, k1, err), FL_EDECODE);
    check_rmrf(dir);
}

/* Agent identities: the HELLO proof binds the key, the session and the id. */
TEST(agent_identity)
{
    char dir[256], err[FL_ERRMSG_SIZE];
    unsigned char pk[FL_IDENT_PK_BYTES], sk[FL_IDENT_SK_BYTES], pk2[FL_IDENT_PK_BYTES];
    unsigned char sk2[FL_IDENT_SK_BYTES], got[FL_IDENT_PK_BYTES];
    unsigned char b1[SCHAN_BINDING_BYTES], b2[SCHAN_BINDING_BYTES], auth[FL_IDENT_AUTH_BYTES];
    int created = 0;
    struct pair p, q;
    REQUIRE(check_tmpdir(dir, sizeof dir) != NULL);
    CHECK_OK(fl_ident_load(dir, pk, sk, &created, err));
    CHECK_EQ_INT(created, 1);
    CHECK_OK(fl_ident_load(dir, pk2, sk2, &created, err));
    CHECK_EQ_INT(created, 0);
    CHECK(memcmp(pk, pk2, sizeof pk) == 0); /* the same key on the next start */
    open_pair(&p);
    open_pair(&q);
    CHECK_OK(schan_binding(p.i, b1));
    CHECK_OK(schan_binding(q.i, b2));
    fl_ident_hello_sign(sk, b1, "web-1", auth);
    CHECK_OK(fl_ident_hello_verify(auth, sizeof auth, b1, "web-1", got));
    CHECK(memcmp(got, pk, sizeof pk) == 0);
    /* Another session, another id, a damaged proof, a short one: refused. */
    CHECK_EQ_INT(fl_ident_hello_verify(auth, sizeof auth, b2, "web-1", got), FL_EPROTO);
    CHECK_EQ_INT(fl_ident_hello_verify(auth, sizeof auth, b1, "web-2", got), FL_EPROTO);
    auth[40] ^= 1;
    CHECK_EQ_INT(fl_ident_hello_verify(auth, sizeof auth, b1, "web-1", got), FL_EPROTO);
    CHECK_EQ_INT(fl_ident_hello_verify(auth, 95, b1, "web-1", got), FL_EPROTO);
    /* Someone else's public key in front of our signature. */
    fl_ident_hello_sign(sk, b1, "web-1", auth);
    randombytes_buf(auth, FL_IDENT_PK_BYTES);
    CHECK_EQ_INT(fl_ident_hello_verify(auth, sizeof auth, b1, "web-1", got), FL_EPROTO);
    pair_close(&p);
    pair_close(&q);
    check_rmrf(dir);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    randombytes_buf(key_a, sizeof key_a);
    randombytes_buf(key_b, sizeof key_b);
    RUN(handshake_ok);
    RUN(sessions_differ);
    RUN(large_stream_splits_into_frames);
    RUN(wrong_key_refused_both_sides);
    RUN(identity_mismatch);
    RUN(handshake_tampered_every_byte);
    RUN(tampered_frame);
    RUN(replayed_frame);
    RUN(reordered_frames);
    RUN(dropped_frame);
    RUN(truncated_frame);
    RUN(oversized_length);
    RUN(garbage_bytes);
    RUN(byte_by_byte);
    RUN(bad_config);
    RUN(raft_name);
    RUN(alloc_failure_sweep);
    RUN(key_files);
    RUN(agent_identity);
    return check_summary();
}
