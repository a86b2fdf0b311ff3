/* store/ — typed records: KV, NODES and META values.
 *
 * KV and NODES values are msgpack arrays whose first element is the record's
 * format version (docs/STORE.md, "Records"). They are written with msgpack-c's
 * packer straight into an fl_buf (so every allocation goes through the
 * project's allocator) and read back with the total reader of common/mpread.c. A
 * record of another format version is FL_EVERSION; anything else that is not
 * exactly a version-1 record is FL_EDECODE. META values are the raw bytes of
 * a string, readable as they are in mdb_dump. */
#include <msgpack.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "store/store.h"
#include "store/store_int.h"

#define KV_FORMAT     1
#define KV_FIELDS     5 /* format, value, version, create_index, mtime_ms */
#define NODE_FORMAT   3
#define NODE_FIELDS_1 11
#define NODE_FIELDS_2 14
#define NODE_FIELDS   15
#define META_NAME_MAX 511 /* LMDB's default maximum key size */

/* ---- encoding ---------------------------------------------------------- */

static int kv_encode(struct fl_buf *b, const void *value, size_t vlen, uint64_t version,
                     uint64_t create_index, uint64_t mtime_ms)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, store__buf_write);
    if (fl_buf_reserve(b, vlen + 64) != FL_OK) {
        return FL_ENOMEM;
    }
    if (msgpack_pack_array(&pk, KV_FIELDS) | msgpack_pack_uint64(&pk, KV_FORMAT) |
        msgpack_pack_bin(&pk, vlen) | msgpack_pack_bin_body(&pk, value, vlen) |
        msgpack_pack_uint64(&pk, version) | msgpack_pack_uint64(&pk, create_index) |
        msgpack_pack_uint64(&pk, mtime_ms)) {
        return FL_ENOMEM; /* the only way store__buf_write fails */
    }
    return FL_OK;
}

static int node_encode(struct fl_buf *b, const struct store_node *n)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, NODE_FIELDS) | msgpack_pack_uint64(&pk, NODE_FORMAT) |
        store__pack_str(&pk, n->id) | msgpack_pack_uint64(&pk, n->raft_id) |
        store__pack_str(&pk, n->raft_addr) | store__pack_str(&pk, n->api_addr) |
        msgpack_pack_uint64(&pk, (uint64_t)n->kind) | msgpack_pack_array(&pk, n->n_labels);
    for (unsigned i = 0; i < n->n_labels; i++) {
        r |= store__pack_str(&pk, n->labels[i]);
    }
    r |= msgpack_pack_uint64(&pk, n->cap);
    r |= n->drain ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    r |= msgpack_pack_uint64(&pk, n->created_index) | msgpack_pack_uint64(&pk, n->updated_index);
    r |= msgpack_pack_uint64(&pk, n->running) | store__pack_str(&pk, n->agent_addr);
    r |= n->lost ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    r |= store__pack_str(&pk, n->blob_addr);
    return r != 0 ? FL_ENOMEM : FL_OK;
}

/* ---- decoding ---------------------------------------------------------- */

int store_kv_decode(const void *val, size_t vlen, struct store_kv *out)
{
    struct fl_mp r;
    size_t n;
    int rv;
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, KV_FORMAT, KV_FIELDS)) != FL_OK) {
        return rv;
    }
    if (fl_mp_bin(&r, &out->value, &n) != FL_OK || fl_mp_uint(&r, &out->version) ||
        fl_mp_uint(&r, &out->create_index) || fl_mp_uint(&r, &out->mtime_ms) || fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    out->vlen = n;
    return FL_OK;
}

static int node_labels(struct fl_mp *r, struct store_node *out)
{
    uint32_t n;
    if (fl_mp_array(r, &n) != FL_OK || n > STORE_NODE_LABELS) {
        return FL_EDECODE;
    }
    out->n_labels = n;
    for (uint32_t i = 0; i < n; i++) {
        if (store__str_field(r, out->labels[i], STORE_NODE_LABEL_MAX) != FL_OK) {
            return FL_EDECODE;
        }
    }
    return FL_OK;
}

int store_node_decode(const void *val, size_t vlen, struct store_node *out)
{
    struct fl_mp r;
    uint64_t kind, cap, running = 0, format;
    uint32_t fields;
    memset(out, 0, sizeof *out);
    fl_mp_init(&r, val, vlen);
    /* Format 1 had 11 fields; format 2 appends running, agent_addr, lost;
     * format 3 blob_addr. */
    if (fl_mp_array(&r, &fields) != FL_OK || fl_mp_uint(&r, &format) != FL_OK) {
        return FL_EDECODE;
    }
    if (format < 1 || format > 3) {
        return FL_EVERSION;
    }
    if ((format == 1 && fields != NODE_FIELDS_1) || (format == 2 && fields != NODE_FIELDS_2) ||
        (format == 3 && fields != NODE_FIELDS)) {
        return FL_EDECODE;
    }
    if (store__str_field(&r, out->id, sizeof out->id) || out->id[0] == '\0' ||
        fl_mp_uint(&r, &out->raft_id) ||
        store__str_field(&r, out->raft_addr, sizeof out->raft_addr) ||
        store__str_field(&r, out->api_addr, sizeof out->api_addr) || fl_mp_uint(&r, &kind) ||
        (kind != STORE_NODE_SERVER && kind != STORE_NODE_AGENT) || node_labels(&r, out) ||
        fl_mp_uint(&r, &cap) || cap > UINT32_MAX || store__mp_bool(&r, &out->drain) ||
        fl_mp_uint(&r, &out->created_index) || fl_mp_uint(&r, &out->updated_index)) {
        return FL_EDECODE;
    }
    if (format >= 2 && (fl_mp_uint(&r, &running) || running > UINT32_MAX ||
                        store__str_field(&r, out->agent_addr, sizeof out->agent_addr) ||
                        store__mp_bool(&r, &out->lost))) {
        return FL_EDECODE;
    }
    if (format == 3 && store__str_field(&r, out->blob_addr, sizeof out->blob_addr)) {
        return FL_EDECODE;
    }
    if (fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    out->running = (uint32_t)running;
    out->kind = (int)kind;
    out->cap = (uint32_t)cap;
    return FL_OK;
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
    struct store_kv old;
    struct fl_buf b;
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
    fl_buf_init(&b);
    rv = kv_encode(&b, value, vlen, index, create_index, time_ms);
    if (rv == FL_OK) {
        rv = store_put(t, STORE_KV, key, klen, b.data, b.len);
    } else {
        fl_errf(t->s->errmsg, rv, "kv record: out of memory");
    }
    fl_buf_close(&b);
    return rv;
}

int store_kv_del(struct store_txn *t, const char *key, size_t klen)
{
    return kv_key_possible(klen) ? store_del(t, STORE_KV, key, klen) : FL_ENOTFOUND;
}

/* ---- NODES --------------------------------------------------------------- */

/* A node must have a non-empty id, NUL-terminated strings, a known kind and
 * at most STORE_NODE_LABELS labels: exactly what store_node_decode accepts. */
static int node_check(struct store_txn *t, const struct store_node *n)
{
    char *msg = t->s->errmsg;
    if (strnlen(n->id, sizeof n->id) == sizeof n->id || n->id[0] == '\0') {
        return fl_errf(msg, FL_EINVAL, "node id empty or not NUL-terminated");
    }
    if (strnlen(n->raft_addr, sizeof n->raft_addr) == sizeof n->raft_addr ||
        strnlen(n->api_addr, sizeof n->api_addr) == sizeof n->api_addr ||
        strnlen(n->agent_addr, sizeof n->agent_addr) == sizeof n->agent_addr ||
        strnlen(n->blob_addr, sizeof n->blob_addr) == sizeof n->blob_addr) {
        return fl_errf(msg, FL_EINVAL, "node %s: address not NUL-terminated", n->id);
    }
    if (n->kind != STORE_NODE_SERVER && n->kind != STORE_NODE_AGENT) {
        return fl_errf(msg, FL_EINVAL, "node %s: bad kind %d", n->id, n->kind);
    }
    if (n->n_labels > STORE_NODE_LABELS) {
        return fl_errf(msg, FL_EINVAL, "node %s: %u labels (max %d)", n->id, n->n_labels,
                       STORE_NODE_LABELS);
    }
    for (unsigned i = 0; i < n->n_labels; i++) {
        if (strnlen(n->labels[i], STORE_NODE_LABEL_MAX) == STORE_NODE_LABEL_MAX) {
            return fl_errf(msg, FL_EINVAL, "node %s: label %u not NUL-terminated", n->id, i);
        }
    }
    return FL_OK;
}

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
    struct fl_buf b;
    int rv = node_check(t, n);
    if (rv != FL_OK) {
        return rv;
    }
    fl_buf_init(&b);
    rv = node_encode(&b, n);
    if (rv == FL_OK) {
        rv = store_put(t, STORE_NODES, n->id, strlen(n->id), b.data, b.len);
    } else {
        fl_errf(t->s->errmsg, rv, "node record: out of memory");
    }
    fl_buf_close(&b);
    return rv;
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
