#include "spec/spec.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/mpcheck.h"
#include "schema/schema.h"

static const char *kind_names[] = {"none",     "exec", "shell", "ansible",
                                   "playbook", "noop", "sleep", "deploy"};

const char *node_exec_kind_name(int kind)
{
    return kind >= 1 && kind <= NODE_DEPLOY ? kind_names[kind] : "unknown";
}

/* [version, kind, argv[], script, module, module_args, playbook, sleep_ms,
 *  inventory_vars[], kill_grace_ms, env[] (2), secret_env[] (2)]: a
 * schema/ table; every string is copied into one arena block at decoding,
 * and each array keeps a NULL after its last element. */
static const struct schema_field str_elem = SCHEMA_E_STR(0, 0, NULL);

static const struct schema_field spec_fields[] = {
    SCHEMA_F_UINT(node_spec, kind, NODE_EXEC, NODE_DEPLOY),
    SCHEMA_F_INLINE_NT(node_spec, argv, argc, &str_elem),
    SCHEMA_F_STR(node_spec, script, 0, 0),
    SCHEMA_F_STR(node_spec, module, 0, 0),
    SCHEMA_F_STR(node_spec, module_args, 0, 0),
    SCHEMA_F_STR(node_spec, playbook, 0, 0),
    SCHEMA_F_UINT(node_spec, sleep_ms, 0, 0),
    SCHEMA_F_INLINE_NT(node_spec, vars, n_vars, &str_elem),
    SCHEMA_F_UINT(node_spec, kill_grace_ms, 0, 0),
    SCHEMA_F_INLINE_NT(node_spec, env, n_env, &str_elem, .since = 2),
    SCHEMA_F_INLINE_NT(node_spec, secret, n_secret, &str_elem, .since = 2),
};

const struct schema node_spec_schema = {
    .name = "spec",
    SCHEMA_TABLE(spec_fields),
    .size = sizeof(struct node_spec),
    .version = 2,
    .oldest = 1,
};

static int buf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

/* Not validated: a spec encodes as it is (the decoder refuses a bad kind). */
int node_spec_encode(const struct node_spec *s, struct fl_buf *out)
{
    msgpack_packer pk;
    size_t start = out->len;
    const struct schema *sc = &node_spec_schema;
    msgpack_packer_init(&pk, out, buf_write);
    if (msgpack_pack_array(&pk, 1 + (size_t)schema_n_fields(sc, sc->version)) != 0 ||
        msgpack_pack_uint8(&pk, sc->version) != 0 ||
        schema_pack_fields(sc, s, sc->version, out) != FL_OK) {
        out->len = start;
        return FL_ENOMEM;
    }
    return FL_OK;
}

int node_spec_decode(const uint8_t *p, size_t n, struct node_spec *out)
{
    size_t used = 0;
    void *arena = NULL;
    int rv;
    memset(out, 0, sizeof *out);
    if (fl_mpcheck(p, n, 4, &used) != FL_OK || used != n) {
        return FL_EDECODE;
    }
    rv = schema_decode_record(&node_spec_schema, p, n, out, &arena, NULL);
    if (rv != FL_OK) {
        memset(out, 0, sizeof *out);
        return rv;
    }
    out->arena_ = arena;
    return FL_OK;
}

void node_spec_close(struct node_spec *s)
{
    fl_free(s->arena_);
    s->arena_ = NULL;
}

/* ---- environment and secrets ------------------------------------------- */

int node_env_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > NODE_SPEC_ENV_NAME_MAX || (name[0] >= '0' && name[0] <= '9') ||
        (len >= 9 && memcmp(name, "FLOTILLA_", 9) == 0)) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return 0;
        }
    }
    return 1;
}

void node_secret_key(const unsigned char cluster_key[32], unsigned char out[NODE_SECRET_KEY_BYTES])
{
    crypto_kdf_derive_from_key(out, NODE_SECRET_KEY_BYTES, 2, "flsecret", cluster_key);
}

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG   crypto_aead_xchacha20poly1305_ietf_ABYTES

int node_secret_seal(const unsigned char key[NODE_SECRET_KEY_BYTES], const char *name,
                     const char *value, size_t vlen, char *out, size_t size)
{
    unsigned char box[NONCE + NODE_SPEC_ENV_VALUE_MAX + TAG];
    unsigned long long clen = 0;
    size_t nlen = strlen(name), b64 = sodium_base64_ENCODED_LEN(
                                    NONCE + vlen + TAG, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (vlen > NODE_SPEC_ENV_VALUE_MAX || nlen + 1 + b64 > size) {
        return FL_ETOOBIG;
    }
    randombytes_buf(box, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(box + NONCE, &clen, (const unsigned char *)value,
                                               vlen, (const unsigned char *)name, nlen, NULL, box,
                                               key);
    memcpy(out, name, nlen);
    out[nlen] = '=';
    sodium_bin2base64(out + nlen + 1, size - nlen - 1, box, NONCE + (size_t)clen,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return FL_OK;
}

int node_secret_open(const unsigned char key[NODE_SECRET_KEY_BYTES], const char *entry, char *out,
                     size_t size)
{
    unsigned char box[NONCE + NODE_SPEC_ENV_VALUE_MAX + TAG];
    const char *eq = strchr(entry, '=');
    size_t nlen, blen = 0;
    unsigned long long vlen = 0;
    if (eq == NULL || (nlen = (size_t)(eq - entry)) == 0 || nlen > NODE_SPEC_ENV_NAME_MAX ||
        sodium_base642bin(box, sizeof box, eq + 1, strlen(eq + 1), NULL, &blen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        blen < NONCE + TAG || nlen + 1 + (blen - NONCE - TAG) + 1 > size) {
        return FL_EDECODE;
    }
    memcpy(out, entry, nlen + 1);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            (unsigned char *)out + nlen + 1, &vlen, NULL, box + NONCE, blen - NONCE,
            (const unsigned char *)entry, nlen, box, key) != 0) {
        sodium_memzero(out, size);
        return FL_EDECODE;
    }
    out[nlen + 1 + vlen] = '\0';
    sodium_memzero(box, sizeof box);
    return FL_OK;
}
