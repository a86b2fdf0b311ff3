/* store/ — raw access to the tables: get, put, del and cursors. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "store/store.h"
#include "store/store_int.h"

struct store_cursor {
    struct store_txn *t;
    MDB_cursor *c;
    /* The first record is looked up by store_cursor_open() (so `from` need
     * not outlive the call) and handed out by the first store_cursor_next(). */
    int pending;  /* 1: `first` holds the next record (or the end) */
    int first_rc; /* LMDB code of the positioning */
    MDB_val fk, fv;
};

/* Common checks of every table operation: a valid table, and a transaction
 * that has not already failed. */
static int check_txn(struct store_txn *t, enum store_table tab)
{
    if ((unsigned)tab >= STORE__NTABLES) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "no table %d", (int)tab);
    }
    if (t->err != FL_OK) {
        return fl_errf(t->s->errmsg, t->err, "transaction already failed: %s", t->errmsg);
    }
    return FL_OK;
}

static int check_write(struct store_txn *t, enum store_table tab)
{
    int rv = check_txn(t, tab);
    if (rv == FL_OK && !t->write) {
        rv = fl_errf(t->s->errmsg, FL_EINVAL, "write to %s in a read transaction",
                     store_table_name(tab));
    }
    return rv;
}

/* An LMDB failure of a write: NOTFOUND and BAD_VALSIZE leave the transaction
 * usable; anything else (MDB_MAP_FULL, I/O) leaves it failed, as LMDB itself
 * marks it (MDB_TXN_ERROR). */
static int write_failed(struct store_txn *t, int rc, const char *what, enum store_table tab)
{
    char ctx[64];
    int rv;
    snprintf(ctx, sizeof ctx, "%s %s", what, store_table_name(tab));
    rv = store__lmdb_err(t->s, rc, ctx);
    if (rc != MDB_NOTFOUND && rc != MDB_BAD_VALSIZE) {
        store__txn_fail(t, rv);
    }
    return rv;
}

int store_get(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
              const void **val, size_t *vlen)
{
    MDB_val k = {klen, (void *)(uintptr_t)key}, v;
    int rv = check_txn(t, tab), rc;
    if (rv != FL_OK) {
        return rv;
    }
    rc = mdb_get(t->txn, t->s->dbi[tab], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return FL_ENOTFOUND; /* a result, not a failure: errmsg untouched */
    }
    if (rc != 0) {
        return store__lmdb_err(t->s, rc, store_table_name(tab));
    }
    *val = v.mv_data;
    *vlen = v.mv_size;
    return FL_OK;
}

int store_put(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
              const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)(uintptr_t)key}, v = {vlen, (void *)(uintptr_t)val};
    int rv = check_write(t, tab), rc;
    if (rv != FL_OK) {
        return rv;
    }
    rc = mdb_put(t->txn, t->s->dbi[tab], &k, &v, 0);
    return rc == 0 ? FL_OK : write_failed(t, rc, "put", tab);
}

int store_del(struct store_txn *t, enum store_table tab, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)(uintptr_t)key};
    int rv = check_write(t, tab), rc;
    if (rv != FL_OK) {
        return rv;
    }
    rc = mdb_del(t->txn, t->s->dbi[tab], &k, NULL);
    if (rc == MDB_NOTFOUND) {
        return FL_ENOTFOUND;
    }
    return rc == 0 ? FL_OK : write_failed(t, rc, "del", tab);
}

/* ---- cursors --------------------------------------------------------- */

/* Position on the first key >= from. LMDB refuses empty keys and keys longer
 * than its maximum, neither of which can be stored: an empty `from` starts at
 * the first key, and a longer one is cut to the maximum, skipping the cut key
 * itself, which sorts before `from`. */
static int position(struct store_cursor *cur, const void *from, size_t fromlen)
{
    size_t max = (size_t)mdb_env_get_maxkeysize(cur->t->s->env);
    int rc;
    if (from == NULL || fromlen == 0) {
        return mdb_cursor_get(cur->c, &cur->fk, &cur->fv, MDB_FIRST);
    }
    cur->fk.mv_data = (void *)(uintptr_t)from;
    cur->fk.mv_size = fromlen > max ? max : fromlen;
    rc = mdb_cursor_get(cur->c, &cur->fk, &cur->fv, MDB_SET_RANGE);
    if (rc == 0 && fromlen > max && cur->fk.mv_size == max &&
        memcmp(cur->fk.mv_data, from, max) == 0) {
        rc = mdb_cursor_get(cur->c, &cur->fk, &cur->fv, MDB_NEXT);
    }
    return rc;
}

int store_cursor_open(struct store_txn *t, enum store_table tab, const void *from, size_t fromlen,
                      struct store_cursor **out)
{
    struct store_cursor *cur;
    int rv = check_txn(t, tab), rc;
    *out = NULL;
    if (rv != FL_OK) {
        return rv;
    }
    cur = fl_malloc(sizeof *cur);
    if (cur == NULL) {
        return fl_errf(t->s->errmsg, FL_ENOMEM, "store_cursor_open: out of memory");
    }
    cur->t = t;
    rc = mdb_cursor_open(t->txn, t->s->dbi[tab], &cur->c);
    if (rc != 0) {
        fl_free(cur);
        return store__lmdb_err(t->s, rc, "mdb_cursor_open");
    }
    cur->pending = 1;
    cur->first_rc = position(cur, from, fromlen);
    if (cur->first_rc != 0 && cur->first_rc != MDB_NOTFOUND) {
        rv = store__lmdb_err(t->s, cur->first_rc, store_table_name(tab));
        store_cursor_close(cur);
        return rv;
    }
    *out = cur;
    return FL_OK;
}

int store_cursor_next(struct store_cursor *cur, const void **key, size_t *klen, const void **val,
                      size_t *vlen)
{
    MDB_val k, v;
    int rc;
    if (cur->t->err != FL_OK) {
        return cur->t->err;
    }
    if (cur->pending) {
        cur->pending = 0;
        rc = cur->first_rc;
        k = cur->fk;
        v = cur->fv;
    } else {
        rc = mdb_cursor_get(cur->c, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) {
        cur->pending = 1; /* stay at the end */
        cur->first_rc = MDB_NOTFOUND;
        return FL_ENOTFOUND;
    }
    if (rc != 0) {
        return store__lmdb_err(cur->t->s, rc, "mdb_cursor_get");
    }
    *key = k.mv_data;
    *klen = k.mv_size;
    *val = v.mv_data;
    *vlen = v.mv_size;
    return FL_OK;
}

void store_cursor_close(struct store_cursor *cur)
{
    if (cur == NULL) {
        return;
    }
    mdb_cursor_close(cur->c);
    fl_free(cur);
}
