/* store/ — logical snapshots (dump/load) and the state digest.
 *
 * Format (docs/STORE.md, "Snapshots"), all integers big-endian:
 *
 *   "FLSNAP01" | u64 index | u64 term                      header, 24 bytes
 *   { u8 table | u32 klen | u32 vlen | key | val }*         records
 *   0xFF | u32 0 | u32 0                                    end record
 *   BLAKE2b-256 of every byte above                         32 bytes
 *
 * Records come table by table (ascending table number), each table in LMDB's
 * key order, so a dump of a given state is byte-for-byte canonical. The
 * applied position travels in the header only: META's "applied" record is
 * left out of the record stream.
 *
 * The digest is the BLAKE2b-256 of the same bytes a dump would hold before
 * its checksum: the digest of a store equals the checksum of its dump. */
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/crashpoint.h"
#include "store/store.h"
#include "store/store_int.h"

#define MAGIC     "FLSNAP01"
#define MAGIC_LEN 8
#define HDR_LEN   (MAGIC_LEN + 16)
#define REC_LEN   9 /* u8 table, u32 klen, u32 vlen */
#define SUM_LEN   32
#define END_TABLE 0xFF

/* Where the serialized bytes go: always into the hash, and into `out` for a
 * dump (NULL for a digest). */
struct sink {
    struct fl_buf *out;
    crypto_generichash_state h;
};

static int emit(struct sink *k, const void *p, size_t n)
{
    crypto_generichash_update(&k->h, p, n);
    return k->out != NULL ? fl_buf_append(k->out, p, n) : FL_OK;
}

static int emit_record(struct sink *k, unsigned tab, const void *key, size_t klen, const void *val,
                       size_t vlen)
{
    uint8_t hdr[REC_LEN];
    int rv;
    hdr[0] = (uint8_t)tab;
    store__put_be32(hdr + 1, (uint32_t)klen);
    store__put_be32(hdr + 5, (uint32_t)vlen);
    if ((rv = emit(k, hdr, sizeof hdr)) != FL_OK || (rv = emit(k, key, klen)) != FL_OK ||
        (rv = emit(k, val, vlen)) != FL_OK) {
        return rv;
    }
    return FL_OK;
}

static int is_applied_key(unsigned tab, const void *key, size_t klen)
{
    return tab == STORE_META && klen == STORE__APPLIED_KEY_LEN &&
           memcmp(key, STORE__APPLIED_KEY, klen) == 0;
}

static int emit_table(struct store_txn *t, struct sink *k, enum store_table tab)
{
    struct store_cursor *cur;
    const void *key, *val;
    size_t klen, vlen;
    int rv = store_cursor_open(t, tab, NULL, 0, &cur);
    if (rv != FL_OK) {
        return rv;
    }
    while ((rv = store_cursor_next(cur, &key, &klen, &val, &vlen)) == FL_OK) {
        if (is_applied_key(tab, key, klen)) {
            continue;
        }
        if (vlen > UINT32_MAX) {
            rv = fl_errf(t->s->errmsg, FL_ETOOBIG, "%s: value of %zu bytes", store_table_name(tab),
                         vlen);
            break;
        }
        if ((rv = emit_record(k, (unsigned)tab, key, klen, val, vlen)) != FL_OK) {
            fl_errf(t->s->errmsg, rv, "snapshot: out of memory");
            break;
        }
    }
    store_cursor_close(cur);
    return rv == FL_ENOTFOUND ? FL_OK : rv;
}

/* Header, every replicated table and the end record, as of transaction t. */
static int serialize(struct store_txn *t, struct sink *k, uint64_t *index, uint64_t *term)
{
    uint8_t hdr[HDR_LEN];
    int rv = store__read_applied(t, index, term);
    if (rv != FL_OK) {
        return rv;
    }
    memcpy(hdr, MAGIC, MAGIC_LEN);
    store__put_be64(hdr + MAGIC_LEN, *index);
    store__put_be64(hdr + MAGIC_LEN + 8, *term);
    if ((rv = emit(k, hdr, sizeof hdr)) != FL_OK) {
        return fl_errf(t->s->errmsg, rv, "snapshot: out of memory");
    }
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        if (store__replicated((enum store_table)tab) &&
            (rv = emit_table(t, k, (enum store_table)tab)) != FL_OK) {
            return rv;
        }
    }
    if ((rv = emit_record(k, END_TABLE, "", 0, "", 0)) != FL_OK) {
        return fl_errf(t->s->errmsg, rv, "snapshot: out of memory");
    }
    return FL_OK;
}

int store_dump(struct store *s, struct fl_buf *out, uint64_t *index, uint64_t *term)
{
    struct store_txn *t;
    struct sink k = {.out = out};
    uint8_t sum[SUM_LEN];
    uint64_t i, tm;
    size_t start = out->len;
    int rv = store_begin(s, 0, &t);
    if (rv != FL_OK) {
        return rv;
    }
    crypto_generichash_init(&k.h, NULL, 0, SUM_LEN);
    rv = serialize(t, &k, &i, &tm);
    store_abort(t);
    if (rv == FL_OK) {
        crypto_generichash_final(&k.h, sum, SUM_LEN);
        rv = fl_buf_append(out, sum, SUM_LEN);
        if (rv != FL_OK) {
            fl_errf(s->errmsg, rv, "snapshot: out of memory");
        }
    }
    if (rv != FL_OK) {
        out->len = start; /* the caller's earlier bytes are kept */
        return rv;
    }
    if (index != NULL) {
        *index = i;
    }
    if (term != NULL) {
        *term = tm;
    }
    return FL_OK;
}

int store_digest(struct store *s, uint8_t out[32], uint64_t *index, uint64_t *term)
{
    struct store_txn *t;
    struct sink k = {.out = NULL};
    uint64_t i, tm;
    int rv = store_begin(s, 0, &t);
    if (rv != FL_OK) {
        return rv;
    }
    crypto_generichash_init(&k.h, NULL, 0, SUM_LEN);
    rv = serialize(t, &k, &i, &tm);
    store_abort(t);
    if (rv != FL_OK) {
        return rv;
    }
    crypto_generichash_final(&k.h, out, SUM_LEN);
    if (index != NULL) {
        *index = i;
    }
    if (term != NULL) {
        *term = tm;
    }
    return FL_OK;
}

/* ---- load -------------------------------------------------------------- */

/* LMDB's default key order: bytewise, a prefix before its extensions. */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : alen > blen;
}

/* Check a whole dump before anything is written: magic, checksum, every
 * record inside the body, known replicated tables only, keys LMDB can store,
 * strict table-then-key order (which also rules out duplicates, and lets the
 * load append), one end record, nothing after it. */
static int verify(struct store *s, const uint8_t *d, size_t len)
{
    uint8_t sum[SUM_LEN];
    size_t body, pos = HDR_LEN, maxkey, prevlen = 0;
    const uint8_t *prev = NULL;
    int prevtab = -1;

    if (len < HDR_LEN + REC_LEN + SUM_LEN) {
        return fl_errf(s->errmsg, FL_EDECODE, "snapshot: %zu bytes is too short", len);
    }
    body = len - SUM_LEN;
    if (memcmp(d, MAGIC, MAGIC_LEN) != 0) {
        return fl_errf(s->errmsg, FL_EDECODE, "snapshot: bad magic");
    }
    crypto_generichash(sum, SUM_LEN, d, body, NULL, 0);
    if (sodium_memcmp(sum, d + body, SUM_LEN) != 0) {
        return fl_errf(s->errmsg, FL_ECORRUPT, "snapshot: checksum mismatch");
    }
    maxkey = (size_t)mdb_env_get_maxkeysize(s->env);
    for (;;) {
        unsigned tab;
        uint64_t klen, vlen;
        if (body - pos < REC_LEN) {
            return fl_errf(s->errmsg, FL_EDECODE, "snapshot: truncated at %zu", pos);
        }
        tab = d[pos];
        klen = store__get_be32(d + pos + 1);
        vlen = store__get_be32(d + pos + 5);
        pos += REC_LEN;
        if (tab == END_TABLE) {
            if (klen != 0 || vlen != 0 || pos != body) {
                return fl_errf(s->errmsg, FL_EDECODE, "snapshot: bad end record at %zu",
                               pos - REC_LEN);
            }
            return FL_OK;
        }
        if (!store__replicated((enum store_table)tab)) {
            return fl_errf(s->errmsg, FL_EDECODE, "snapshot: unknown table %u", tab);
        }
        if (klen == 0 || klen > maxkey || klen + vlen > body - pos) {
            return fl_errf(s->errmsg, FL_EDECODE, "snapshot: bad record at %zu", pos - REC_LEN);
        }
        if ((int)tab < prevtab ||
            ((int)tab == prevtab && key_cmp(prev, prevlen, d + pos, klen) >= 0) ||
            is_applied_key(tab, d + pos, klen)) {
            return fl_errf(s->errmsg, FL_EDECODE, "snapshot: record out of order at %zu",
                           pos - REC_LEN);
        }
        prevtab = (int)tab;
        prev = d + pos;
        prevlen = klen;
        pos += klen + vlen;
    }
}

/* Replace every replicated table with the records of a verified dump. */
static int replace(struct store_txn *t, const uint8_t *d)
{
    struct store *s = t->s;
    size_t pos = HDR_LEN;
    int rc;
    for (int tab = 0; tab < STORE__NTABLES; tab++) {
        if (store__replicated((enum store_table)tab) &&
            (rc = mdb_drop(t->txn, s->dbi[tab], 0)) != 0) {
            return store__txn_fail(t, store__lmdb_err(s, rc, "snapshot: mdb_drop"));
        }
    }
    while (d[pos] != END_TABLE) {
        MDB_val k, v;
        k.mv_size = store__get_be32(d + pos + 1);
        v.mv_size = store__get_be32(d + pos + 5);
        k.mv_data = (void *)(uintptr_t)(d + pos + REC_LEN);
        v.mv_data = (void *)(uintptr_t)(d + pos + REC_LEN + k.mv_size);
        /* verify() proved the keys ascending: append without searching. */
        rc = mdb_put(t->txn, s->dbi[d[pos]], &k, &v, MDB_APPEND);
        if (rc != 0) {
            return store__txn_fail(t, store__lmdb_err(s, rc, "snapshot: mdb_put"));
        }
        pos += REC_LEN + k.mv_size + v.mv_size;
    }
    return FL_OK;
}

int store_load(struct store *s, const void *data, size_t len, int *loaded)
{
    const uint8_t *d = data;
    struct store_txn *t;
    uint64_t index, term, applied, applied_term;
    int rv;

    *loaded = 0;
    if ((rv = verify(s, d, len)) != FL_OK) {
        return rv;
    }
    index = store__get_be64(d + MAGIC_LEN);
    term = store__get_be64(d + MAGIC_LEN + 8);
    if ((rv = store_begin(s, 1, &t)) != FL_OK) {
        return rv;
    }
    if ((rv = store__read_applied(t, &applied, &applied_term)) != FL_OK) {
        store_abort(t);
        return rv;
    }
    if (index <= applied) {
        store_abort(t); /* never roll back (DESIGN.md, "Guarantees") */
        return FL_OK;
    }
    rv = replace(t, d);
    if (rv == FL_OK) {
        rv = store_set_applied(t, index, term);
    }
    if (rv != FL_OK) {
        store_abort(t);
        return rv;
    }
    fl_crashpoint("snapshot-install"); /* the image replaced, not yet committed */
    rv = store_commit(t);
    if (rv == FL_OK) {
        *loaded = 1;
    }
    return rv;
}
