/* tls/tlink: mutual TLS 1.3 links between two in-memory ends, with real
 * certificates of a real CA (pki/), through the real OpenSSL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/buf.h"
#include "common/err.h"
#include "pki/pki.h"
#include "tls/creds.h"
#include "tls/tlink.h"

static char dir[256];
static struct tls_creds *s1, *s2, *ag, *cl, *foreign;

static struct tls_creds *issue(struct pki_ca *ca, const char *cadir, int role, const char *name)
{
    char prefix[512], cert[600], key[600], ca_pem[600], err[FL_ERRMSG_SIZE];
    struct pki_identity who = {0};
    struct tls_creds *c = NULL;
    who.role = (uint8_t)role;
    snprintf(who.cluster, sizeof who.cluster, "%s", pki_ca_cluster(ca));
    snprintf(who.name, sizeof who.name, "%s", name);
    snprintf(prefix, sizeof prefix, "%s/%s", cadir, name);
    if (pki_issue_files(ca, &who, 0, NULL, 0, prefix, 1, err) != FL_OK) {
        fprintf(stderr, "issue %s: %s\n", name, err);
        exit(1);
    }
    snprintf(cert, sizeof cert, "%s.pem", prefix);
    snprintf(key, sizeof key, "%s.key", prefix);
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", cadir);
    struct tls_creds_files f = {ca_pem, cert, key};
    if (tls_creds_load(&f, &c, err) != FL_OK) {
        fprintf(stderr, "load %s: %s\n", name, err);
        exit(1);
    }
    return c;
}

static void setup(void)
{
    char err[FL_ERRMSG_SIZE], other[300];
    struct pki_ca *ca, *oca;
    snprintf(dir, sizeof dir, "/tmp/test_tlink.XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    REQUIRE(pki_ca_init(dir, "c1", 0, 0, err) == FL_OK);
    REQUIRE(pki_ca_load(dir, &ca, err) == FL_OK);
    s1 = issue(ca, dir, PKI_ROLE_SERVER, "s1");
    s2 = issue(ca, dir, PKI_ROLE_SERVER, "s2");
    ag = issue(ca, dir, PKI_ROLE_AGENT, "web-1");
    cl = issue(ca, dir, PKI_ROLE_CLIENT, "ops");
    pki_ca_free(ca);
    /* Another CA of a cluster with the same name. */
    snprintf(other, sizeof other, "%s/other", dir);
    REQUIRE(pki_ca_init(other, "c1", 0, 0, err) == FL_OK);
    REQUIRE(pki_ca_load(other, &oca, err) == FL_OK);
    foreign = issue(oca, other, PKI_ROLE_SERVER, "s9");
    pki_ca_free(oca);
}

/* Two ends and the bytes in flight. */
struct pair {
    struct tlink *i, *r;
    struct fl_buf i_plain, r_plain;
    int ri, rr; /* last results */
};

static void pair_make(struct pair *p, struct tls_creds *ic, struct tls_creds *rc, int ikind,
                      int rkind, const char *iclaim, const char *rclaim, const char *expect)
{
    struct tlink_config a = {ic, (uint8_t)ikind, iclaim, expect};
    struct tlink_config b = {rc, (uint8_t)rkind, rclaim, NULL};
    memset(p, 0, sizeof *p);
    fl_buf_init(&p->i_plain);
    fl_buf_init(&p->r_plain);
    REQUIRE(tlink_create(&a, 1, &p->i, NULL) == FL_OK);
    REQUIRE(tlink_create(&b, 0, &p->r, NULL) == FL_OK);
}

static void pair_close(struct pair *p)
{
    tlink_destroy(p->i);
    tlink_destroy(p->r);
    fl_buf_close(&p->i_plain);
    fl_buf_close(&p->r_plain);
}

/* Deliver `w` to `to` in pieces of `step` bytes (0: at once). */
static int deliver(struct tlink *to, struct fl_buf *w, size_t step, struct fl_buf *reply,
                   struct fl_buf *plain)
{
    int rv = FL_OK;
    size_t off = 0;
    if (step == 0) {
        step = w->len ? w->len : 1;
    }
    while (off < w->len && rv == FL_OK) {
        size_t k = w->len - off < step ? w->len - off : step;
        rv = tlink_recv(to, w->data + off, k, reply, plain);
        off += k;
    }
    fl_buf_reset(w);
    return rv;
}

/* Run the handshake to quiet; returns when nothing is in flight. */
static void pair_run(struct pair *p, size_t step)
{
    struct fl_buf to_r, to_i;
    fl_buf_init(&to_r);
    fl_buf_init(&to_i);
    REQUIRE(tlink_start(p->i, &to_r) == FL_OK);
    for (int rounds = 0; rounds < 50 && (to_r.len > 0 || to_i.len > 0); rounds++) {
        if (to_r.len > 0) {
            struct fl_buf w = to_r;
            fl_buf_init(&to_r);
            p->rr = deliver(p->r, &w, step, &to_i, &p->r_plain);
            fl_buf_close(&w);
        }
        if (to_i.len > 0) {
            struct fl_buf w = to_i;
            fl_buf_init(&to_i);
            p->ri = deliver(p->i, &w, step, &to_r, &p->i_plain);
            fl_buf_close(&w);
        }
    }
    fl_buf_close(&to_r);
    fl_buf_close(&to_i);
}

TEST(raft_link_opens_with_claims_and_binding)
{
    struct pair p;
    unsigned char bi[TLINK_BINDING_BYTES], br[TLINK_BINDING_BYTES];
    pair_make(&p, s1, s2, TLINK_RAFT, TLINK_RAFT, "1@127.0.0.1:9001", "2@127.0.0.1:9002", NULL);
    CHECK_EQ_INT(tlink_binding(p.i, bi), FL_EINVAL); /* not before OPEN */
    pair_run(&p, 0);
    CHECK_EQ_INT(tlink_state(p.i), TLINK_OPEN);
    CHECK_EQ_INT(tlink_state(p.r), TLINK_OPEN);
    CHECK_EQ_STR(tlink_peer(p.i)->name, "s2");
    CHECK_EQ_STR(tlink_peer(p.r)->name, "s1");
    CHECK_EQ_INT(tlink_peer(p.r)->role, PKI_ROLE_SERVER);
    CHECK_EQ_STR(tlink_peer_claim(p.r), "1@127.0.0.1:9001");
    CHECK_EQ_STR(tlink_peer_claim(p.i), "2@127.0.0.1:9002");
    CHECK_OK(tlink_binding(p.i, bi));
    CHECK_OK(tlink_binding(p.r, br));
    CHECK(memcmp(bi, br, sizeof bi) == 0);
    pair_close(&p);
}

TEST(data_both_ways_large_and_byte_by_byte)
{
    struct pair p;
    struct fl_buf w;
    size_t big = 1u << 20;
    uint8_t *src = malloc(big);
    REQUIRE(src != NULL);
    for (size_t k = 0; k < big; k++) {
        src[k] = (uint8_t)(k * 31 + 7);
    }
    pair_make(&p, ag, s1, TLINK_AGENT, TLINK_AGENT, NULL, NULL, "s1");
    pair_run(&p, 1); /* the whole handshake one byte at a time */
    REQUIRE(tlink_state(p.i) == TLINK_OPEN && tlink_state(p.r) == TLINK_OPEN);
    CHECK_EQ_STR(tlink_peer(p.r)->name, "web-1");
    CHECK_EQ_INT(tlink_peer(p.r)->role, PKI_ROLE_AGENT);
    fl_buf_init(&w);
    CHECK_OK(tlink_send(p.i, src, big, &w));
    CHECK(w.len > big); /* records add their overhead */
    CHECK_OK(tlink_send(p.i, src, 0, &w));
    {
        struct fl_buf back;
        fl_buf_init(&back);
        CHECK_OK(deliver(p.r, &w, 7000, &back, &p.r_plain));
        CHECK_EQ_INT(back.len, 0);
        fl_buf_close(&back);
    }
    CHECK_EQ_INT(p.r_plain.len, big);
    CHECK(p.r_plain.len == big && memcmp(p.r_plain.data, src, big) == 0);
    CHECK_OK(tlink_send(p.r, (const uint8_t *)"pong", 4, &w));
    {
        struct fl_buf back;
        fl_buf_init(&back);
        CHECK_OK(deliver(p.i, &w, 1, &back, &p.i_plain));
        fl_buf_close(&back);
    }
    CHECK(p.i_plain.len == 4 && memcmp(p.i_plain.data, "pong", 4) == 0);
    CHECK_OK(tlink_eof(p.i)); /* between records: a clean end */
    fl_buf_close(&w);
    free(src);
    pair_close(&p);
}

/* The responder's checks: the initiator must never see OPEN. */
static void expect_refused(struct tls_creds *ic, struct tls_creds *rc, int ikind, int rkind,
                           const char *expect, const char *why_i, const char *why_r)
{
    struct pair p;
    pair_make(&p, ic, rc, ikind, rkind, NULL, NULL, expect);
    pair_run(&p, 0);
    CHECK(tlink_state(p.i) != TLINK_OPEN);
    CHECK(tlink_state(p.r) != TLINK_OPEN);
    if (why_i != NULL && strstr(tlink_errmsg(p.i), why_i) == NULL) {
        fprintf(stderr, "initiator said: %s (wanted \"%s\")\n", tlink_errmsg(p.i), why_i);
        CHECK(0);
    }
    if (why_r != NULL && strstr(tlink_errmsg(p.r), why_r) == NULL) {
        fprintf(stderr, "responder said: %s (wanted \"%s\")\n", tlink_errmsg(p.r), why_r);
        CHECK(0);
    }
    CHECK_EQ_INT(p.i_plain.len + p.r_plain.len, 0);
    pair_close(&p);
}

TEST(roles_are_enforced_per_link_kind)
{
    /* An agent may not join Raft; a client may not open an agent link. */
    expect_refused(ag, s1, TLINK_RAFT, TLINK_RAFT, NULL, NULL, "may not open a raft link");
    expect_refused(cl, s1, TLINK_AGENT, TLINK_AGENT, NULL, NULL, "may not open a agent link");
    /* Whoever dials wants a server: an agent answering is refused. */
    /* (OpenSSL's own purpose check speaks first: an agent certificate is
     * not for TLS servers.) */
    expect_refused(s1, ag, TLINK_BLOB, TLINK_BLOB, NULL, "unsuitable certificate purpose", NULL);
    /* A client may fetch blobs. */
    {
        struct pair p;
        pair_make(&p, cl, s1, TLINK_BLOB, TLINK_BLOB, NULL, NULL, NULL);
        pair_run(&p, 0);
        CHECK_EQ_INT(tlink_state(p.i), TLINK_OPEN);
        CHECK_EQ_INT(tlink_peer(p.r)->role, PKI_ROLE_CLIENT);
        pair_close(&p);
    }
}

TEST(another_ca_is_refused_both_ways)
{
    /* The initiator judges the responder's certificate first. */
    expect_refused(foreign, s1, TLINK_RAFT, TLINK_RAFT, NULL, "does not verify", "unknown ca");
    expect_refused(s1, foreign, TLINK_RAFT, TLINK_RAFT, NULL, "does not verify", NULL);
}

TEST(expected_name_and_link_kind)
{
    expect_refused(s1, s2, TLINK_RAFT, TLINK_RAFT, "s3", "expected server \"s3\"", NULL);
    expect_refused(s1, s2, TLINK_BLOB, TLINK_RAFT, NULL, NULL, "opened a blob link on a raft port");
}

static int deny_web1(void *ud, const struct pki_identity *peer, const char *serial)
{
    (*(int *)ud)++;
    return strcmp(peer->name, "web-1") == 0 && serial[0] != '\0';
}

TEST(deny_list_is_asked_at_every_handshake)
{
    int calls = 0;
    tls_creds_set_deny(s1, deny_web1, &calls);
    expect_refused(ag, s1, TLINK_AGENT, TLINK_AGENT, NULL, "revoked", "is revoked");
    CHECK(calls >= 1);
    {
        struct pair p; /* a server is not on the list */
        pair_make(&p, s2, s1, TLINK_AGENT, TLINK_AGENT, NULL, NULL, NULL);
        pair_run(&p, 0);
        CHECK_EQ_INT(tlink_state(p.i), TLINK_OPEN);
        pair_close(&p);
    }
    calls = 0;
    expect_refused(ag, s1, TLINK_AGENT, TLINK_AGENT, NULL, NULL, "revoked");
    CHECK_EQ_INT(calls, 1); /* no resumption skips the check */
    tls_creds_set_deny(s1, NULL, NULL);
}

TEST(tampered_truncated_and_garbage)
{
    struct pair p;
    struct fl_buf w, back;
    fl_buf_init(&w);
    fl_buf_init(&back);
    pair_make(&p, s1, s2, TLINK_RAFT, TLINK_RAFT, "1@a:1", "2@b:2", NULL);
    pair_run(&p, 0);
    REQUIRE(tlink_state(p.r) == TLINK_OPEN);
    CHECK_OK(tlink_send(p.i, (const uint8_t *)"0123456789", 10, &w));
    w.data[w.len - 3] ^= 0x40;
    CHECK_EQ_INT(deliver(p.r, &w, 0, &back, &p.r_plain), FL_EPROTO);
    CHECK_EQ_INT(tlink_state(p.r), TLINK_FAILED);
    CHECK_EQ_INT(p.r_plain.len, 0);
    CHECK_EQ_INT(tlink_send(p.r, (const uint8_t *)"x", 1, &w), FL_EPROTO); /* stays failed */
    pair_close(&p);

    pair_make(&p, s1, s2, TLINK_RAFT, TLINK_RAFT, "1@a:1", "2@b:2", NULL);
    pair_run(&p, 0);
    fl_buf_reset(&w);
    CHECK_OK(tlink_send(p.i, (const uint8_t *)"0123456789", 10, &w));
    CHECK_OK(tlink_recv(p.r, w.data, w.len - 4, &back, &p.r_plain));
    CHECK(tlink_pending(p.r) > 0);
    CHECK_EQ_INT(tlink_eof(p.r), FL_EPROTO);
    CHECK(strstr(tlink_errmsg(p.r), "truncated") != NULL);
    pair_close(&p);

    {
        struct tlink_config b = {s1, TLINK_RAFT, NULL, NULL};
        struct tlink *r;
        static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        REQUIRE(tlink_create(&b, 0, &r, NULL) == FL_OK);
        fl_buf_reset(&back);
        CHECK_EQ_INT(tlink_recv(r, (const uint8_t *)junk, sizeof junk - 1, &back, &w), FL_EPROTO);
        CHECK_EQ_INT(tlink_state(r), TLINK_FAILED);
        tlink_destroy(r);
    }
    fl_buf_close(&w);
    fl_buf_close(&back);
}

TEST(bad_config)
{
    struct tlink_config c = {s1, 9, NULL, NULL};
    struct tlink *l;
    char err[FL_ERRMSG_SIZE];
    CHECK_EQ_INT(tlink_create(&c, 1, &l, err), FL_EINVAL);
    c.kind = TLINK_RAFT;
    c.claim = "has space";
    CHECK_EQ_INT(tlink_create(&c, 1, &l, err), FL_EINVAL);
    c.claim = NULL;
    c.creds = NULL;
    CHECK_EQ_INT(tlink_create(&c, 1, &l, err), FL_EINVAL);
}

TEST(creds_refuse_bad_files)
{
    char ca[400], cert[400], key[400], err[FL_ERRMSG_SIZE], other_ca[400];
    struct tls_creds *c = NULL;
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(other_ca, sizeof other_ca, "%s/other/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/s1.pem", dir);
    snprintf(key, sizeof key, "%s/s2.key", dir);
    struct tls_creds_files mismatch = {ca, cert, key};
    CHECK_EQ_INT(tls_creds_load(&mismatch, &c, err), FL_EPROTO);
    CHECK(strstr(err, "does not belong") != NULL);
    snprintf(key, sizeof key, "%s/s1.key", dir);
    struct tls_creds_files wrong_ca = {other_ca, cert, key};
    CHECK_EQ_INT(tls_creds_load(&wrong_ca, &c, err), FL_EPROTO);
    CHECK(strstr(err, "does not verify against the CA") != NULL);
    struct tls_creds_files ok = {ca, cert, key};
    REQUIRE(tls_creds_load(&ok, &c, err) == FL_OK);
    CHECK_EQ_STR(tls_creds_self(c)->name, "s1");
    /* Rotation: reloading the same identity works, another name is refused. */
    CHECK_OK(tls_creds_reload(c, NULL, err));
    snprintf(cert, sizeof cert, "%s/s2.pem", dir);
    snprintf(key, sizeof key, "%s/s2.key", dir);
    struct tls_creds_files s2f = {ca, cert, key};
    CHECK_EQ_INT(tls_creds_reload(c, &s2f, err), FL_EINVAL);
    CHECK_EQ_STR(tls_creds_self(c)->name, "s1");
    tls_creds_free(c);
}

int main(void)
{
    setup();
    RUN(raft_link_opens_with_claims_and_binding);
    RUN(data_both_ways_large_and_byte_by_byte);
    RUN(roles_are_enforced_per_link_kind);
    RUN(another_ca_is_refused_both_ways);
    RUN(expected_name_and_link_kind);
    RUN(deny_list_is_asked_at_every_handshake);
    RUN(tampered_truncated_and_garbage);
    RUN(bad_config);
    RUN(creds_refuse_bad_files);
    tls_creds_free(s1);
    tls_creds_free(s2);
    tls_creds_free(ag);
    tls_creds_free(cl);
    tls_creds_free(foreign);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    return check_summary();
}
