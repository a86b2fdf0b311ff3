/* store/ — package metadata records (docs/PACKAGES.md).
 *
 *   package: [1, name, version, hash: bin(32), size, chunk_size,
 *             chunks: bin(n*32), created_ms, index, origin, keep]
 *
 * The key is name '\0' version, so one name's versions are adjacent. The
 * format is a table of formats.c. */
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"

uint32_t store_package_n_chunks(uint64_t size, uint32_t chunk_size)
{
    if (chunk_size == 0) {
        return 0;
    }
    return (uint32_t)((size + chunk_size - 1) / chunk_size);
}

int store_package_encode(const struct store_package *p, struct fl_buf *b)
{
    return schema_encode_record(&store__fmt_package, p, b, NULL);
}

int store_package_decode(const void *val, size_t vlen, struct store_package *p)
{
    return schema_decode_record(&store__fmt_package, val, vlen, p, NULL, NULL);
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
    if (klen == 0 || p->name[0] == '\0' || p->version[0] == '\0') {
        return fl_errf(t->s->errmsg, FL_EINVAL, "package record: bad name or version");
    }
    return store__put_record(t, STORE_PACKAGES, key, klen, &store__fmt_package, p);
}

int store_package_del(struct store_txn *t, const char *name, const char *version)
{
    char key[STORE_PKG_NAME_MAX + STORE_PKG_VERSION_MAX];
    size_t klen = store_package_key(name, version, key, sizeof key);
    return klen == 0 ? FL_ENOTFOUND : store_del(t, STORE_PACKAGES, key, klen);
}
