#include "spec/spec.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/mpcheck.h"

static const char *kind_names[] = {"none",     "exec", "shell", "ansible",
                                   "playbook", "noop", "sleep", "deploy"};

const char *node_exec_kind_name(int kind)
{
    return kind >= 1 && kind <= NODE_DEPLOY ? kind_names[kind] : "unknown";
}

static int sbuf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

static int pack_s(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s ? s : "", n);
}

int node_spec_encode(const struct node_spec *s, struct fl_buf *out)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, out, sbuf_write);
    r = msgpack_pack_array(&pk, 12) | msgpack_pack_uint8(&pk, 2) |
        msgpack_pack_uint8(&pk, (uint8_t)s->kind) | msgpack_pack_array(&pk, s->argc);
    for (unsigned i = 0; i < s->argc; i++) {
        r |= pack_s(&pk, s->argv[i]);
    }
    r |= pack_s(&pk, s->script) | pack_s(&pk, s->module) | pack_s(&pk, s->module_args) |
         pack_s(&pk, s->playbook) | msgpack_pack_uint32(&pk, s->sleep_ms) |
         msgpack_pack_array(&pk, s->n_vars);
    for (unsigned i = 0; i < s->n_vars; i++) {
        r |= pack_s(&pk, s->vars[i]);
    }
    r |= msgpack_pack_uint32(&pk, s->kill_grace_ms) | msgpack_pack_array(&pk, s->n_env);
    for (unsigned i = 0; i < s->n_env; i++) {
        r |= pack_s(&pk, s->env[i]);
    }
    r |= msgpack_pack_array(&pk, s->n_secret);
    for (unsigned i = 0; i < s->n_secret; i++) {
        r |= pack_s(&pk, s->secret[i]);
    }
    return r ? FL_ENOMEM : FL_OK;
}

/* Copy a msgpack string into the arena with a NUL. */
static const char *take(const msgpack_object *o, char **cursor)
{
    char *p = *cursor;
    if (o->type != MSGPACK_OBJECT_STR) {
        return NULL;
    }
    if (o->via.str.size > 0) {
        memcpy(p, o->via.str.ptr, o->via.str.size);
    }
    p[o->via.str.size] = '\0';
    *cursor = p + o->via.str.size + 1;
    return p;
}

static int get_u32(const msgpack_object *o, uint32_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX) {
        return 0;
    }
    *v = (uint32_t)o->via.u64;
    return 1;
}

int node_spec_decode(const uint8_t *p, size_t n, struct node_spec *out)
{
    msgpack_unpacked u;
    const msgpack_object *a;
    size_t used = 0, off = 0;
    uint32_t kind;
    unsigned version;
    char *cur;
    int rv = FL_EDECODE;

    memset(out, 0, sizeof *out);
    if (fl_mpcheck(p, n, 4, &used) != FL_OK || used != n) {
        return FL_EDECODE;
    }
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)p, n, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size < 10) {
        goto out;
    }
    a = u.data.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 < 1 || a[0].via.u64 > 2) {
        rv = FL_EVERSION;
        goto out;
    }
    version = (unsigned)a[0].via.u64;
    if (version == 2 &&
        (u.data.via.array.size < 12 || a[10].type != MSGPACK_OBJECT_ARRAY ||
         a[10].via.array.size > NODE_SPEC_ENV_MAX || a[11].type != MSGPACK_OBJECT_ARRAY ||
         a[11].via.array.size > NODE_SPEC_ENV_MAX)) {
        goto out;
    }
    if (!get_u32(&a[1], &kind) || kind < 1 || kind > NODE_DEPLOY ||
        a[2].type != MSGPACK_OBJECT_ARRAY || a[2].via.array.size > NODE_SPEC_ARGV_MAX ||
        a[8].type != MSGPACK_OBJECT_ARRAY || a[8].via.array.size > NODE_SPEC_VARS_MAX ||
        !get_u32(&a[7], &out->sleep_ms) || !get_u32(&a[9], &out->kill_grace_ms)) {
        goto out;
    }
    /* Every string fits in n bytes plus one NUL each. */
    out->arena_ =
        fl_malloc(n + 2 * (NODE_SPEC_ARGV_MAX + NODE_SPEC_VARS_MAX + 2 * NODE_SPEC_ENV_MAX + 8));
    if (out->arena_ == NULL) {
        rv = FL_ENOMEM;
        goto out;
    }
    cur = out->arena_;
    out->kind = (int)kind;
    out->argc = a[2].via.array.size;
    for (unsigned i = 0; i < out->argc; i++) {
        if ((out->argv[i] = take(&a[2].via.array.ptr[i], &cur)) == NULL) {
            goto out;
        }
    }
    out->argv[out->argc] = NULL;
    out->n_vars = a[8].via.array.size;
    for (unsigned i = 0; i < out->n_vars; i++) {
        if ((out->vars[i] = take(&a[8].via.array.ptr[i], &cur)) == NULL) {
            goto out;
        }
    }
    out->vars[out->n_vars] = NULL;
    if (version == 2) {
        out->n_env = a[10].via.array.size;
        for (unsigned i = 0; i < out->n_env; i++) {
            if ((out->env[i] = take(&a[10].via.array.ptr[i], &cur)) == NULL) {
                goto out;
            }
        }
        out->n_secret = a[11].via.array.size;
        for (unsigned i = 0; i < out->n_secret; i++) {
            if ((out->secret[i] = take(&a[11].via.array.ptr[i], &cur)) == NULL) {
                goto out;
            }
        }
    }
    out->env[out->n_env] = NULL;
    out->secret[out->n_secret] = NULL;
    if ((out->script = take(&a[3], &cur)) == NULL || (out->module = take(&a[4], &cur)) == NULL ||
        (out->module_args = take(&a[5], &cur)) == NULL ||
        (out->playbook = take(&a[6], &cur)) == NULL) {
        goto out;
    }
    rv = FL_OK;
out:
    msgpack_unpacked_destroy(&u);
    if (rv != FL_OK) {
        node_spec_close(out);
    }
    return rv;
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
