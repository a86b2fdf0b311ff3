/* store/ — typed records: KV, NODES and META values.
 *
 * KV and NODES values are records [format, field...] whose formats are the
 * tables of formats.c (docs/STORE.md, "Records"): a record of an unknown
 * format version is FL_EVERSION; anything else that is not exactly a record
 * of a known format is FL_EDECODE. META values are the raw bytes of a
 * string, readable as they are in mdb_dump. */
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"

#define META_NAME_MAX 511 /* LMDB's default maximum key size */

int store_kv_decode(const void *val, size_t vlen, struct store_kv *out)
{
    return schema_decode_record(&store__fmt_kv, val, vlen, out, NULL, NULL);
}

int store_node_decode(const void *val, size_t vlen, struct store_node *out)
{
    return schema_decode_record(&store__fmt_node, val, vlen, out, NULL, NULL);
}

/* ---- KV ---------------------------------------------------------------- */

static int kv_key_check(struct store_txn *t, size_t klen)
{
    if (klen == 0) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "empty kv key");
    }
    if (klen > STORE_KV_MAX_KEY) {
        return fl_errf(t->s->errmsg, FL_ETOOBIG, "kv key of %zu bytes (max %d)", klen,
                       STORE_KV_MAX_KEY);
    }
    return FL_OK;
}

/* No key of this length can be stored: get and del find nothing. */
static int kv_key_possible(size_t klen)
{
    return klen > 0 && klen <= STORE_KV_MAX_KEY;
}

/* A stored value that does not decode is damage, not bad input. */
static int corrupt(struct store_txn *t, int rv, const char *table, const char *key, size_t klen)
{
    int shown = klen > 64 ? 64 : (int)klen;
    return fl_errf(t->s->errmsg, FL_ECORRUPT, "%s/%.*s: undecodable record (%s)", table, shown, key,
                   fl_errname(rv));
}

int store_kv_get(struct store_txn *t, const char *key, size_t klen, struct store_kv *out)
{
    const void *val;
    size_t vlen;
    int rv;
    if (!kv_key_possible(klen)) {
        return FL_ENOTFOUND;
    }
    if ((rv = store_get(t, STORE_KV, key, klen, &val, &vlen)) != FL_OK) {
        return rv;
    }
    rv = store_kv_decode(val, vlen, out);
    return rv == FL_OK ? FL_OK : corrupt(t, rv, "kv", key, klen);
}

int store_kv_put(struct store_txn *t, const char *key, size_t klen, const void *value, size_t vlen,
                 uint64_t index, uint64_t time_ms)
{
    struct store_kv old, kv;
    uint64_t create_index = index;
    int rv = kv_key_check(t, klen);
    if (rv != FL_OK) {
        return rv;
    }
    if (vlen > STORE_KV_MAX_VALUE) {
        return fl_errf(t->s->errmsg, FL_ETOOBIG, "kv value of %zu bytes (max %d)", vlen,
                       STORE_KV_MAX_VALUE);
    }
    rv = store_kv_get(t, key, klen, &old);
    if (rv == FL_OK) {
        create_index = old.create_index;
    } else if (rv != FL_ENOTFOUND) {
        return rv;
    }
    memset(&kv, 0, sizeof kv);
    kv.value = value;
    kv.vlen = vlen;
    kv.version = index;
    kv.create_index = create_index;
    kv.mtime_ms = time_ms;
    return store__put_record(t, STORE_KV, key, klen, &store__fmt_kv, &kv);
}

int store_kv_del(struct store_txn *t, const char *key, size_t klen)
{
    return kv_key_possible(klen) ? store_del(t, STORE_KV, key, klen) : FL_ENOTFOUND;
}

/* ---- NODES --------------------------------------------------------------- */

int store_node_get(struct store_txn *t, const char *id, struct store_node *out)
{
    const void *val;
    size_t vlen, klen = strlen(id);
    int rv;
    if (klen == 0 || klen >= STORE_NODE_ID_MAX) {
        return FL_ENOTFOUND; /* no such node can exist */
    }
    rv = store_get(t, STORE_NODES, id, klen, &val, &vlen);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_node_decode(val, vlen, out);
    return rv == FL_OK ? FL_OK : corrupt(t, rv, "nodes", id, klen);
}

int store_node_put(struct store_txn *t, const struct store_node *n)
{
    /* The format refuses an empty id, a string without its NUL, a bad kind
     * and too many labels: exactly what store_node_decode refuses. */
    return store__put_record(t, STORE_NODES, n->id, strnlen(n->id, sizeof n->id), &store__fmt_node,
                             n);
}

int store_node_del(struct store_txn *t, const char *id)
{
    size_t klen = strlen(id);
    if (klen == 0 || klen >= STORE_NODE_ID_MAX) {
        return FL_ENOTFOUND;
    }
    return store_del(t, STORE_NODES, id, klen);
}

/* ---- META ---------------------------------------------------------------- */

static int meta_name_check(struct store_txn *t, const char *name, size_t len)
{
    if (len == 0 || len > META_NAME_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "meta name of %zu bytes", len);
    }
    if (len == STORE__APPLIED_KEY_LEN && memcmp(name, STORE__APPLIED_KEY, len) == 0) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "meta/applied is set with store_set_applied");
    }
    return FL_OK;
}

int store_meta_get(struct store_txn *t, const char *name, char *out, size_t outlen)
{
    const void *val;
    size_t vlen, len = strlen(name);
    int rv = meta_name_check(t, name, len);
    if (rv != FL_OK || (rv = store_get(t, STORE_META, name, len, &val, &vlen)) != FL_OK) {
        return rv;
    }
    if (memchr(val, '\0', vlen) != NULL) {
        return corrupt(t, FL_EDECODE, "meta", name, len);
    }
    if (vlen >= outlen) {
        return fl_errf(t->s->errmsg, FL_ETOOBIG, "meta/%s: %zu bytes do not fit in %zu", name, vlen,
                       outlen);
    }
    memcpy(out, val, vlen);
    out[vlen] = '\0';
    return FL_OK;
}

int store_meta_put(struct store_txn *t, const char *name, const char *value)
{
    size_t len = strlen(name);
    int rv = meta_name_check(t, name, len);
    return rv != FL_OK ? rv : store_put(t, STORE_META, name, len, value, strlen(value));
}
