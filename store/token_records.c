/* store/ — API token records (docs/ACL.md).
 *
 *   token: [1, accessor, name, caps, [namespace...], created_ms,
 *           created_index, bootstrap]
 *
 * The key is the BLAKE2b-256 hash of the token's secret; the secret itself
 * is never stored, replicated or logged. The format is a table of formats.c. */
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"

int store_token_encode(const struct store_token *tok, struct fl_buf *b)
{
    return schema_encode_record(&store__fmt_token, tok, b, NULL);
}

int store_token_decode(const void *val, size_t vlen, struct store_token *tok)
{
    return schema_decode_record(&store__fmt_token, val, vlen, tok, NULL, NULL);
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
    return store__put_record(t, STORE_TOKENS, hash, STORE_TOKEN_HASH_BYTES, &store__fmt_token, tok);
}
