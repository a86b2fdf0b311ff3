/* store/ — helpers shared by the record encoders and decoders: values are
 * msgpack arrays led by a format version, written with msgpack-c into an
 * fl_buf and read back with the total reader of common/mpread.h. */
#include <msgpack.h>
#include <string.h>

#include "common/buf.h"
#include "store/store_int.h"

int store__buf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

int store__pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

int store__header(struct fl_mp *r, uint64_t format, uint32_t fields)
{
    uint32_t n;
    uint64_t v;
    if (fl_mp_array(r, &n) != FL_OK || n == 0 || fl_mp_uint(r, &v) != FL_OK) {
        return FL_EDECODE;
    }
    if (v != format) {
        return FL_EVERSION;
    }
    return n == fields ? FL_OK : FL_EDECODE;
}

int store__header_formats(struct fl_mp *r, const uint32_t *fields, uint64_t n_formats,
                          uint64_t *format)
{
    uint32_t n;
    if (fl_mp_array(r, &n) != FL_OK || n == 0 || fl_mp_uint(r, format) != FL_OK) {
        return FL_EDECODE;
    }
    if (*format < 1 || *format > n_formats) {
        return FL_EVERSION;
    }
    return n == fields[*format - 1] ? FL_OK : FL_EDECODE;
}

/* A string field into a char[max]: refused if it does not fit with its NUL
 * or holds a NUL (it would not survive the round trip). */
int store__str_field(struct fl_mp *r, char *dst, size_t max)
{
    const char *s;
    size_t n;
    if (fl_mp_str(r, &s, &n) != FL_OK || n >= max || memchr(s, '\0', n) != NULL) {
        return FL_EDECODE;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return FL_OK;
}

int store__u32_field(struct fl_mp *r, uint32_t *v)
{
    uint64_t x;
    if (fl_mp_uint(r, &x) != FL_OK || x > UINT32_MAX) {
        return FL_EDECODE;
    }
    *v = (uint32_t)x;
    return FL_OK;
}

int store__pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    return msgpack_pack_bin(pk, n) | msgpack_pack_bin_body(pk, n ? p : "", n);
}

int store__pack_bool(msgpack_packer *pk, int v)
{
    return v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

int store__put_encoded(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
                       struct fl_buf *b, int rv)
{
    if (rv == FL_OK) {
        rv = store_put(t, tab, key, klen, b->data, b->len);
    } else {
        rv = fl_errf(t->s->errmsg, FL_ENOMEM, "%s record: out of memory", store_table_name(tab));
    }
    fl_buf_close(b);
    return rv;
}
