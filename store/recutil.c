/* store/ — the one way records are written: validated and encoded by the
 * engine of schema/ from their format's table (formats.c), then put. */
#include "common/buf.h"
#include "store/store_int.h"

int store__put_record(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
                      const struct schema *sc, const void *obj)
{
    struct fl_buf b;
    int rv;
    fl_buf_init(&b);
    rv = schema_encode_record(sc, obj, &b, t->s->errmsg);
    if (rv == FL_OK) {
        rv = store_put(t, tab, key, klen, b.data, b.len);
    }
    fl_buf_close(&b);
    return rv;
}
