/* store/ — package metadata records (docs/PACKAGES.md).
 *
 *   package: [1, name, version, hash: bin(32), size, chunk_size,
 *             chunks: bin(n*32), created_ms, index, origin, keep]
 *
 * The key is name '\0' version, so one name's versions are adjacent. */
#include <string.h>

#include "common/buf.h"
#include "store/store.h"
#include "store/store_int.h"

#define PACKAGE_FORMAT 1
#define PACKAGE_FIELDS 11

uint32_t store_package_n_chunks(uint64_t size, uint32_t chunk_size)
{
    if (chunk_size == 0) {
        return 0;
    }
    return (uint32_t)((size + chunk_size - 1) / chunk_size);
}

int store_package_encode(const struct store_package *p, struct fl_buf *b)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, PACKAGE_FIELDS) | msgpack_pack_uint64(&pk, PACKAGE_FORMAT) |
        store__pack_str(&pk, p->name) | store__pack_str(&pk, p->version) |
        store__pack_bin(&pk, p->hash, sizeof p->hash) | msgpack_pack_uint64(&pk, p->size) |
        msgpack_pack_uint64(&pk, p->chunk_size) |
        store__pack_bin(&pk, p->chunks, (size_t)p->n_chunks * 32) |
        msgpack_pack_uint64(&pk, p->created_ms) | msgpack_pack_uint64(&pk, p->index) |
        store__pack_str(&pk, p->origin) | msgpack_pack_uint64(&pk, p->keep);
    return r ? FL_ENOMEM : FL_OK;
}

int store_package_decode(const void *val, size_t vlen, struct store_package *p)
{
    struct fl_mp r;
    const uint8_t *hash;
    size_t hn, cn;
    uint64_t chunk_size, keep;
    int rv;
    memset(p, 0, sizeof *p);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, PACKAGE_FORMAT, PACKAGE_FIELDS)) != FL_OK) {
        return rv;
    }
    if (store__str_field(&r, p->name, sizeof p->name) ||
        store__str_field(&r, p->version, sizeof p->version) || fl_mp_bin(&r, &hash, &hn) ||
        hn != sizeof p->hash || fl_mp_uint(&r, &p->size) || fl_mp_uint(&r, &chunk_size) ||
        chunk_size == 0 || chunk_size > UINT32_MAX || fl_mp_bin(&r, &p->chunks, &cn) ||
        cn % 32 != 0 || cn / 32 > STORE_PKG_CHUNKS_MAX || fl_mp_uint(&r, &p->created_ms) ||
        fl_mp_uint(&r, &p->index) || store__str_field(&r, p->origin, sizeof p->origin) ||
        fl_mp_uint(&r, &keep) || keep > STORE_PKG_KEEP_MAX || fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    memcpy(p->hash, hash, sizeof p->hash);
    p->chunk_size = (uint32_t)chunk_size;
    p->n_chunks = (uint32_t)(cn / 32);
    p->keep = (uint32_t)keep;
    if (p->n_chunks != store_package_n_chunks(p->size, p->chunk_size)) {
        return FL_EDECODE;
    }
    return FL_OK;
}

size_t store_package_key(const char *name, const char *version, char *out, size_t cap)
{
    size_t n = strlen(name), v = strlen(version);
    if (n + 1 + v > cap) {
        return 0;
    }
    memcpy(out, name, n);
    out[n] = '\0';
    memcpy(out + n + 1, version, v);
    return n + 1 + v;
}

int store_package_get(struct store_txn *t, const char *name, const char *version,
                      struct store_package *out)
{
    char key[STORE_PKG_NAME_MAX + STORE_PKG_VERSION_MAX];
    size_t klen = store_package_key(name, version, key, sizeof key);
    const void *v;
    size_t vl;
    int rv;
    if (klen == 0) {
        return FL_ENOTFOUND;
    }
    rv = store_get(t, STORE_PACKAGES, key, klen, &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    if (store_package_decode(v, vl, out) != FL_OK) {
        return fl_errf(t->s->errmsg, FL_ECORRUPT, "package record %s@%s does not decode", name,
                       version);
    }
    return FL_OK;
}

int store_package_put(struct store_txn *t, const struct store_package *p)
{
    char key[STORE_PKG_NAME_MAX + STORE_PKG_VERSION_MAX];
    size_t klen = store_package_key(p->name, p->version, key, sizeof key);
    struct fl_buf b;
    if (klen == 0 || p->name[0] == '\0' || p->version[0] == '\0' ||
        p->n_chunks != store_package_n_chunks(p->size, p->chunk_size)) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "package record: bad name, version or chunks");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_PACKAGES, key, klen, &b, store_package_encode(p, &b));
}

int store_package_del(struct store_txn *t, const char *name, const char *version)
{
    char key[STORE_PKG_NAME_MAX + STORE_PKG_VERSION_MAX];
    size_t klen = store_package_key(name, version, key, sizeof key);
    return klen == 0 ? FL_ENOTFOUND : store_del(t, STORE_PACKAGES, key, klen);
}
