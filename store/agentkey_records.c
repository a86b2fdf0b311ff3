/* store/ — agent identity records (docs/SECURITY.md "Links", docs/STORE.md).
 *
 *   agentkey: [1, public_key: bin(32), state: uint, created_ms, updated_index]
 *
 * The key is the agent id. One public key per agent id: the first join (or
 * the operator's approval) records it, and the apply never replaces a key. */
#include <string.h>

#include "common/buf.h"
#include "store/store.h"
#include "store/store_int.h"

#define AGENTKEY_FORMAT 1
#define AGENTKEY_FIELDS 5

int store_agentkey_encode(const struct store_agentkey *k, struct fl_buf *b)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, AGENTKEY_FIELDS) | msgpack_pack_uint64(&pk, AGENTKEY_FORMAT) |
        store__pack_bin(&pk, k->pk, sizeof k->pk) | msgpack_pack_uint64(&pk, k->state) |
        msgpack_pack_uint64(&pk, k->created_ms) | msgpack_pack_uint64(&pk, k->updated_index);
    return r ? FL_ENOMEM : FL_OK;
}

int store_agentkey_decode(const void *val, size_t vlen, struct store_agentkey *k)
{
    struct fl_mp r;
    const uint8_t *pk;
    size_t n;
    uint64_t state;
    int rv;
    memset(k, 0, sizeof *k);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, AGENTKEY_FORMAT, AGENTKEY_FIELDS)) != FL_OK) {
        return rv;
    }
    if (fl_mp_bin(&r, &pk, &n) || n != sizeof k->pk || fl_mp_uint(&r, &state) ||
        (state != STORE_AGENTKEY_APPROVED && state != STORE_AGENTKEY_PENDING) ||
        fl_mp_uint(&r, &k->created_ms) || fl_mp_uint(&r, &k->updated_index) || fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    memcpy(k->pk, pk, sizeof k->pk);
    k->state = (int)state;
    return FL_OK;
}

int store_agentkey_get(struct store_txn *t, const char *agent, struct store_agentkey *out)
{
    const void *v;
    size_t vl;
    int rv = store_get(t, STORE_AGENTKEYS, agent, strlen(agent), &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_agentkey_decode(v, vl, out);
    if (rv != FL_OK) {
        return fl_errf(t->s->errmsg, FL_ECORRUPT, "agent key record of %s does not decode (%s)",
                       agent, fl_errname(rv));
    }
    return FL_OK;
}

int store_agentkey_put(struct store_txn *t, const char *agent, const struct store_agentkey *k)
{
    struct fl_buf b;
    size_t n = strlen(agent);
    if (n == 0 || n >= STORE_NODE_ID_MAX ||
        (k->state != STORE_AGENTKEY_APPROVED && k->state != STORE_AGENTKEY_PENDING)) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "agent key record: bad id or state");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_AGENTKEYS, agent, n, &b, store_agentkey_encode(k, &b));
}

int store_agentkey_del(struct store_txn *t, const char *agent)
{
    return store_del(t, STORE_AGENTKEYS, agent, strlen(agent));
}
