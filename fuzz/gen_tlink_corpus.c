/* Writes the seed corpora of fuzz_tlink and fuzz_csr (fuzz/corpus/tlink,
 * fuzz/corpus/csr): real handshake flights captured from a pair of links,
 * scripts for an open link, and certificate requests made by pki/ and
 * variants of them.
 *
 *   fuzz_gen_tlink_corpus DIR      (DIR/tlink and DIR/csr must exist) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/alloc.h"
#include "fuzz/tlink_driver.h"

static const char *out_dir;

static void put(const char *corpus, const char *name, uint8_t mode, const void *p, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, corpus, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(&mode, 1, 1, f) != 1 || (n > 0 && fwrite(p, 1, n, f) != n)) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void handshake_seeds(void)
{
    struct tlink_config ci = {tlink_fuzz_agent, TLINK_AGENT, NULL, NULL};
    struct tlink_config cr = {tlink_fuzz_server, TLINK_AGENT, NULL, NULL};
    struct tlink *i, *r;
    struct fl_buf hello, flight, plain, fin;
    fl_buf_init(&hello);
    fl_buf_init(&flight);
    fl_buf_init(&plain);
    fl_buf_init(&fin);
    if (tlink_create(&ci, 1, &i, NULL) != FL_OK || tlink_create(&cr, 0, &r, NULL) != FL_OK ||
        tlink_start(i, &hello) != FL_OK || tlink_recv(r, hello.data, hello.len, &flight, &plain) ||
        tlink_recv(i, flight.data, flight.len, &fin, &plain) != FL_OK) {
        abort();
    }
    put("tlink", "client-hello", 0, hello.data, hello.len);
    put("tlink", "client-hello-and-finished", 0, hello.data, hello.len);
    {
        char path[4096];
        FILE *f;
        snprintf(path, sizeof path, "%s/tlink/client-hello-and-finished", out_dir);
        f = fopen(path, "ab");
        if (f == NULL || fwrite(fin.data, 1, fin.len, f) != fin.len) {
            abort();
        }
        fclose(f);
    }
    put("tlink", "server-flight", 1, flight.data, flight.len);
    put("tlink", "http-request", 0, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    tlink_destroy(i);
    tlink_destroy(r);
    fl_buf_close(&hello);
    fl_buf_close(&flight);
    fl_buf_close(&plain);
    fl_buf_close(&fin);
}

static void script_seeds(void)
{
    static const uint8_t clean[] = {0,   5, 'h', 'e', 'l', 'l', 'o', 2,
                                    255, 0, 3,   'a', 'b', 'c', 2,   0};
    static const uint8_t flip[] = {0, 8, '0', '1', '2', '3', '4', '5', '6', '7', 1, 9, 2, 40};
    static const uint8_t bytewise[] = {0, 4, 'p', 'i', 'n', 'g', 2, 0, 0, 2, 'o', 'k', 2, 0};
    static const uint8_t raw[] = {0, 2, 'h', 'i', 3, 5, 0x17, 0x03, 0x03, 0x00, 0x20, 2, 100};
    static const uint8_t many[] = {0, 255, 'x', 0, 255, 'y', 0, 255, 'z', 2, 255};
    static const uint8_t truncated_record[] = {3, 3, 0x17, 0x03, 0x03, 2, 200};
    put("tlink", "script-clean", 2, clean, sizeof clean);
    put("tlink", "script-flip", 2, flip, sizeof flip);
    put("tlink", "script-bytewise", 2, bytewise, sizeof bytewise);
    put("tlink", "script-raw", 2, raw, sizeof raw);
    put("tlink", "script-many-records", 2, many, sizeof many);
    put("tlink", "script-partial-header", 2, truncated_record, sizeof truncated_record);
}

static void csr_seeds(void)
{
    EVP_PKEY *key = NULL, *ed = NULL, *p384 = NULL;
    char *pem = NULL;
    size_t len = 0;
    unsigned char *der = NULL;
    int dlen;
    if (pki_csr_make("web-1", &key, &pem, &len, NULL) != FL_OK) {
        abort();
    }
    put("csr", "valid-pem", 0, pem, len);
    {
        BIO *b = BIO_new_mem_buf(pem, (int)len);
        X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
        dlen = i2d_X509_REQ(req, &der);
        put("csr", "valid-der", 1, der, (size_t)dlen);
        der[dlen - 5] ^= 0x01; /* a signature that does not verify */
        put("csr", "bad-signature-der", 1, der, (size_t)dlen);
        OPENSSL_free(der);
        der = NULL;
        /* The same request signed by another key type (refused). */
        ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        X509_REQ_set_pubkey(req, ed);
        X509_REQ_sign(req, ed, NULL);
        dlen = i2d_X509_REQ(req, &der);
        put("csr", "ed25519-der", 1, der, (size_t)dlen);
        OPENSSL_free(der);
        der = NULL;
        p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        X509_REQ_set_pubkey(req, p384);
        X509_REQ_sign(req, p384, EVP_sha384());
        dlen = i2d_X509_REQ(req, &der);
        put("csr", "p384-der", 1, der, (size_t)dlen);
        OPENSSL_free(der);
        X509_REQ_free(req);
        BIO_free(b);
    }
    {
        char *two = fl_malloc(2 * len);
        memcpy(two, pem, len);
        memcpy(two + len, pem, len);
        put("csr", "two-requests", 0, two, 2 * len);
        fl_free(two);
    }
    put("csr", "truncated-pem", 0, pem, len / 2);
    put("csr", "empty", 0, "", 0);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(p384);
    fl_free(pem);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_tlink_corpus DIR\n");
        return 2;
    }
    out_dir = argv[1];
    tlink_fuzz_init();
    handshake_seeds();
    script_seeds();
    csr_seeds();
    return 0;
}
