/* store/ — API token records (docs/ACL.md).
 *
 *   token: [1, accessor, name, caps, [namespace...], created_ms,
 *           created_index, bootstrap]
 *
 * The key is the BLAKE2b-256 hash of the token's secret; the secret itself
 * is never stored, replicated or logged. */
#include <string.h>

#include "common/buf.h"
#include "store/store.h"
#include "store/store_int.h"

#define TOKEN_FORMAT 1
#define TOKEN_FIELDS 8

int store_token_encode(const struct store_token *tok, struct fl_buf *b)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, TOKEN_FIELDS) | msgpack_pack_uint64(&pk, TOKEN_FORMAT) |
        store__pack_str(&pk, tok->accessor) | store__pack_str(&pk, tok->name) |
        msgpack_pack_uint64(&pk, tok->caps) | msgpack_pack_array(&pk, tok->n_ns);
    for (unsigned i = 0; i < tok->n_ns && i < STORE_TOKEN_NS; i++) {
        r |= store__pack_str(&pk, tok->ns[i]);
    }
    r |= msgpack_pack_uint64(&pk, tok->created_ms) | msgpack_pack_uint64(&pk, tok->created_index) |
         store__pack_bool(&pk, tok->bootstrap);
    return r ? FL_ENOMEM : FL_OK;
}

int store_token_decode(const void *val, size_t vlen, struct store_token *tok)
{
    struct fl_mp r;
    uint64_t caps;
    uint32_t n;
    int rv;
    memset(tok, 0, sizeof *tok);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, TOKEN_FORMAT, TOKEN_FIELDS)) != FL_OK) {
        return rv;
    }
    if (store__str_field(&r, tok->accessor, sizeof tok->accessor) || tok->accessor[0] == '\0' ||
        store__str_field(&r, tok->name, sizeof tok->name) || fl_mp_uint(&r, &caps) || caps == 0 ||
        caps > STORE_CAP_ALL || fl_mp_array(&r, &n) || n > STORE_TOKEN_NS) {
        return FL_EDECODE;
    }
    tok->caps = (uint32_t)caps;
    tok->n_ns = n;
    for (unsigned i = 0; i < n; i++) {
        if (store__str_field(&r, tok->ns[i], sizeof tok->ns[i]) || tok->ns[i][0] == '\0') {
            return FL_EDECODE;
        }
    }
    if (fl_mp_uint(&r, &tok->created_ms) || fl_mp_uint(&r, &tok->created_index) ||
        store__mp_bool(&r, &tok->bootstrap) || fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    return FL_OK;
}

int store_token_get(struct store_txn *t, const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                    struct store_token *out)
{
    const void *v;
    size_t vl;
    int rv = store_get(t, STORE_TOKENS, hash, STORE_TOKEN_HASH_BYTES, &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_token_decode(v, vl, out);
    if (rv != FL_OK) {
        return fl_errf(t->s->errmsg, FL_ECORRUPT, "token record does not decode (%s)",
                       fl_errname(rv));
    }
    return FL_OK;
}

int store_token_put(struct store_txn *t, const uint8_t hash[STORE_TOKEN_HASH_BYTES],
                    const struct store_token *tok)
{
    struct fl_buf b;
    if (tok->accessor[0] == '\0' || memchr(tok->accessor, '\0', sizeof tok->accessor) == NULL ||
        memchr(tok->name, '\0', sizeof tok->name) == NULL || tok->caps == 0 ||
        tok->caps > STORE_CAP_ALL || tok->n_ns > STORE_TOKEN_NS) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "token record: bad accessor, name or policies");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_TOKENS, hash, STORE_TOKEN_HASH_BYTES, &b,
                              store_token_encode(tok, &b));
}
