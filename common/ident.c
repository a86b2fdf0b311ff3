/* Agent identities (common/ident.h). */
#include "common/ident.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/key.h"

#define HELLO_LABEL   "flotilla agent hello v1"
#define BINDING_BYTES 32

int fl_ident_load(const char *dir, unsigned char pk[FL_IDENT_PK_BYTES],
                  unsigned char sk[FL_IDENT_SK_BYTES], int *created, char *errmsg)
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    char path[4200];
    int rv;
    *created = 0;
    if (sodium_init() < 0) {
        return fl_errf(errmsg, FL_EIO, "libsodium failed to initialise");
    }
    snprintf(path, sizeof path, "%.4000s/" FL_IDENT_FILE, dir);
    rv = fl_secret_file_read(path, seed, sizeof seed, errmsg);
    if (rv == FL_ENOTFOUND) {
        randombytes_buf(seed, sizeof seed);
        rv = fl_secret_file_write(path, 0, seed, sizeof seed, errmsg);
        *created = rv == FL_OK;
    }
    if (rv == FL_OK) {
        crypto_sign_seed_keypair(pk, sk, seed);
    }
    sodium_memzero(seed, sizeof seed);
    return rv;
}

/* What is signed: label NUL | binding | agent id. */
static size_t hello_message(unsigned char *out, size_t cap, const unsigned char *binding,
                            const char *agent_id)
{
    size_t l = sizeof HELLO_LABEL, n = strlen(agent_id);
    if (l + BINDING_BYTES + n > cap) {
        n = cap - l - BINDING_BYTES;
    }
    memcpy(out, HELLO_LABEL, l);
    memcpy(out + l, binding, BINDING_BYTES);
    memcpy(out + l + BINDING_BYTES, agent_id, n);
    return l + BINDING_BYTES + n;
}

void fl_ident_hello_sign(const unsigned char sk[FL_IDENT_SK_BYTES], const unsigned char *binding,
                         const char *agent_id, unsigned char auth[FL_IDENT_AUTH_BYTES])
{
    unsigned char msg[512];
    size_t n = hello_message(msg, sizeof msg, binding, agent_id);
    memcpy(auth, sk + 32, FL_IDENT_PK_BYTES); /* libsodium's sk is seed | pk */
    crypto_sign_detached(auth + FL_IDENT_PK_BYTES, NULL, msg, n, sk);
}

int fl_ident_hello_verify(const unsigned char *auth, size_t len, const unsigned char *binding,
                          const char *agent_id, unsigned char pk[FL_IDENT_PK_BYTES])
{
    unsigned char msg[512];
    size_t n;
    if (auth == NULL || len != FL_IDENT_AUTH_BYTES) {
        return FL_EPROTO;
    }
    n = hello_message(msg, sizeof msg, binding, agent_id);
    if (crypto_sign_verify_detached(auth + FL_IDENT_PK_BYTES, msg, n, auth) != 0) {
        return FL_EPROTO;
    }
    memcpy(pk, auth, FL_IDENT_PK_BYTES);
    return FL_OK;
}

void fl_ident_fingerprint(const unsigned char pk[FL_IDENT_PK_BYTES], char out[FL_IDENT_FPR_SIZE])
{
    sodium_bin2base64(out, FL_IDENT_FPR_SIZE, pk, FL_IDENT_PK_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
}
