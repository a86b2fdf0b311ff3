/* schema/ — the encoder: a struct's fields, in table order, packed with
 * msgpack-c straight into an fl_buf (every allocation goes through the
 * project's allocator). msgpack-c packs every integer in its shortest form,
 * so the bytes depend on the values only, not on the C types. */
#include <msgpack.h>
#include <string.h>

#include "common/err.h"
#include "schema/schema_int.h"

static int buf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

static int pack_fields(msgpack_packer *pk, const struct schema *sc, const uint8_t *base,
                       uint8_t format);

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, n > 0 ? s : "", n);
}

static int pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    return msgpack_pack_bin(pk, n) | msgpack_pack_bin_body(pk, n > 0 ? p : "", n);
}

static int64_t get_int(const uint8_t *p, unsigned size)
{
    int32_t i32;
    int64_t i64;
    if (size == 4) {
        memcpy(&i32, p, 4);
        return i32;
    }
    memcpy(&i64, p, 8);
    return i64;
}

static int pack_field(msgpack_packer *pk, const struct schema_field *f, const uint8_t *base);

static int pack_array(msgpack_packer *pk, const struct schema_field *f, const uint8_t *base)
{
    const uint8_t *a = base + f->off;
    uint64_t n = schema__count(f, base);
    int rv;
    if (!(f->flags & SCHEMA_INLINE)) {
        const uint8_t *ptr;
        memcpy(&ptr, a, sizeof ptr); /* the field holds the pointer */
        a = ptr;
    }
    if (n > UINT32_MAX || (a == NULL && n > 0)) {
        return -1;
    }
    rv = msgpack_pack_array(pk, (size_t)n);
    for (uint64_t i = 0; rv == 0 && i < n; i++) {
        rv = pack_field(pk, f->elem, a + i * f->size);
    }
    return rv;
}

static int pack_field(msgpack_packer *pk, const struct schema_field *f, const uint8_t *base)
{
    const uint8_t *p = base + f->off;
    const char *s;
    uint64_t n;
    switch (f->type) {
    case SCHEMA_UINT:
        return msgpack_pack_uint64(pk, schema__get_uint(p, f->size));
    case SCHEMA_INT:
        return msgpack_pack_int64(pk, get_int(p, f->size));
    case SCHEMA_INT_OFS:
        return msgpack_pack_uint64(pk, (uint64_t)(get_int(p, 4) + 2147483648LL));
    case SCHEMA_BOOL:
        return schema__get_uint(p, f->size) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case SCHEMA_STR:
        memcpy(&s, p, sizeof s);
        s = s != NULL ? s : "";
        return pack_str(pk, s, strlen(s));
    case SCHEMA_CHARS:
        return pack_str(pk, (const char *)p, strnlen((const char *)p, f->size));
    case SCHEMA_BIN:
        memcpy(&s, p, sizeof s);
        n = schema__count(f, base) * (f->size > 1 ? f->size : 1);
        return s == NULL && n > 0 ? -1 : pack_bin(pk, s, (size_t)n);
    case SCHEMA_STRN:
        memcpy(&s, p, sizeof s);
        n = schema__get_uint(base + f->off_n, f->n_size);
        return s == NULL && n > 0 ? -1 : pack_str(pk, s, (size_t)n);
    case SCHEMA_BYTES:
        return pack_bin(pk, p, f->size);
    case SCHEMA_ARRAY:
        return pack_array(pk, f, base);
    default: /* SCHEMA_TUPLE */
        return msgpack_pack_array(pk, f->sub->n_fields) | pack_fields(pk, f->sub, p, 0);
    }
}

static int pack_fields(msgpack_packer *pk, const struct schema *sc, const uint8_t *base,
                       uint8_t format)
{
    int rv = 0;
    for (uint32_t i = 0; rv == 0 && i < sc->n_fields; i++) {
        if (sc->fields[i].since <= format) {
            rv = pack_field(pk, &sc->fields[i], base);
        }
    }
    return rv;
}

int schema_pack_fields(const struct schema *sc, const void *obj, uint8_t format, struct fl_buf *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    return pack_fields(&pk, sc, obj, format) == 0 ? FL_OK : FL_ENOMEM;
}

int schema_encode_record(const struct schema *sc, const void *obj, struct fl_buf *out, char *errmsg)
{
    msgpack_packer pk;
    size_t start = out->len;
    int rv = schema_validate(sc, obj, SIZE_MAX, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    msgpack_packer_init(&pk, out, buf_write);
    if (msgpack_pack_array(&pk, 1 + (size_t)schema_n_fields(sc, sc->version)) != 0 ||
        msgpack_pack_uint64(&pk, sc->version) != 0 || pack_fields(&pk, sc, obj, sc->version) != 0) {
        out->len = start;
        return fl_errf(errmsg, FL_ENOMEM, "%s: out of memory encoding", sc->name);
    }
    return FL_OK;
}
