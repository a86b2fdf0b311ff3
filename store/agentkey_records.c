/* store/ — agent identity records (docs/SECURITY.md "Links", docs/STORE.md).
 *
 *   agentkey: [1, public_key: bin(32), state: uint, created_ms, updated_index]
 *
 * The key is the agent id. One public key per agent id: the first join (or
 * the operator's approval) records it, and the apply never replaces a key.
 * The format is a table of formats.c. */
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"

int store_agentkey_encode(const struct store_agentkey *k, struct fl_buf *b)
{
    return schema_encode_record(&store__fmt_agentkey, k, b, NULL);
}

int store_agentkey_decode(const void *val, size_t vlen, struct store_agentkey *k)
{
    return schema_decode_record(&store__fmt_agentkey, val, vlen, k, NULL, NULL);
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
    size_t n = strlen(agent);
    if (n == 0 || n >= STORE_NODE_ID_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "agent key record: bad id");
    }
    return store__put_record(t, STORE_AGENTKEYS, agent, n, &store__fmt_agentkey, k);
}

int store_agentkey_del(struct store_txn *t, const char *agent)
{
    return store_del(t, STORE_AGENTKEYS, agent, strlen(agent));
}
