/* agentproto/ — the encoder: a validated message to one frame.
 *
 * The payload is packed with msgpack-c straight into the caller's buffer
 * behind a 4-byte placeholder that becomes the length once the size is
 * known. Nothing partial is ever left in the buffer. */
#include <msgpack.h>
#include <string.h>

#include "agentproto/aproto_int.h"

static int buf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    s = s != NULL ? s : "";
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int pack_bin(msgpack_packer *pk, const uint8_t *p, uint32_t n)
{
    return msgpack_pack_bin_with_body(pk, n > 0 ? (const void *)p : "", n);
}

static int pack_ref(msgpack_packer *pk, const struct aproto_unit_ref *ref)
{
    int rv = msgpack_pack_array(pk, 4);
    rv |= msgpack_pack_str_with_body(pk, ref->task_id, strnlen(ref->task_id, sizeof ref->task_id));
    rv |= msgpack_pack_uint32(pk, ref->unit);
    rv |= msgpack_pack_uint32(pk, ref->attempt);
    rv |= msgpack_pack_uint64(pk, ref->token);
    return rv;
}

static int pack_result(msgpack_packer *pk, const struct aproto_host_result *hr)
{
    int rv = msgpack_pack_array(pk, 4);
    rv |= pack_str(pk, hr->host);
    rv |= msgpack_pack_uint8(pk, hr->status);
    rv |= msgpack_pack_int32(pk, hr->rc);
    rv |= pack_bin(pk, hr->tail, hr->tail_len);
    return rv;
}

static int pack_array_field(msgpack_packer *pk, const struct aproto__field *f, const uint8_t *base)
{
    const void *a = *(const void *const *)(base + f->off);
    uint32_t n = *(const uint32_t *)(base + f->off_n);
    int rv = msgpack_pack_array(pk, n);
    for (uint32_t i = 0; rv == 0 && i < n; i++) {
        switch (f->ft) {
        case APROTO__STRS:
            rv = pack_str(pk, ((const char *const *)a)[i]);
            break;
        case APROTO__REFS:
            rv = pack_ref(pk, &((const struct aproto_unit_ref *)a)[i]);
            break;
        default:
            rv = pack_result(pk, &((const struct aproto_host_result *)a)[i]);
            break;
        }
    }
    return rv;
}

static int pack_field(msgpack_packer *pk, const struct aproto__field *f, const uint8_t *base)
{
    const uint8_t *p = base + f->off;
    switch (f->ft) {
    case APROTO__U8:
        return msgpack_pack_uint8(pk, *p);
    case APROTO__U32:
        return msgpack_pack_uint32(pk, *(const uint32_t *)p);
    case APROTO__U64:
        return msgpack_pack_uint64(pk, *(const uint64_t *)p);
    case APROTO__I32:
        return msgpack_pack_int32(pk, *(const int32_t *)p);
    case APROTO__BOOL:
        return *(const bool *)p ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case APROTO__STR:
        return pack_str(pk, *(const char *const *)p);
    case APROTO__BIN:
        return pack_bin(pk, *(const uint8_t *const *)p, *(const uint32_t *)(base + f->off_n));
    case APROTO__REF:
        return pack_ref(pk, (const struct aproto_unit_ref *)p);
    default:
        return pack_array_field(pk, f, base);
    }
}

/* Pack m (already validated, or deliberately not) as a frame. */
static int pack_frame(const struct aproto_msg *m, const struct aproto__schema *sc, size_t max_frame,
                      struct fl_buf *out, char *errmsg)
{
    const uint8_t *base = (const uint8_t *)&m->u;
    size_t start = out->len, n;
    msgpack_packer pk;
    int rv;

    if (fl_buf_reserve(out, 64) != FL_OK) {
        return fl_errf(errmsg, FL_ENOMEM, "out of memory encoding %s", sc->name);
    }
    out->len += APROTO_HEADER_SIZE; /* the length goes here */
    msgpack_packer_init(&pk, out, buf_write);
    rv = msgpack_pack_array(&pk, 2 + sc->n_fields);
    rv |= msgpack_pack_uint8(&pk, APROTO_VERSION);
    rv |= msgpack_pack_uint8(&pk, (uint8_t)m->type);
    for (unsigned i = 0; rv == 0 && i < sc->n_fields; i++) {
        rv = pack_field(&pk, &sc->fields[i], base);
    }
    if (rv != 0) {
        out->len = start;
        return fl_errf(errmsg, FL_ENOMEM, "out of memory encoding %s", sc->name);
    }
    n = out->len - start - APROTO_HEADER_SIZE;
    if (n > max_frame) {
        out->len = start;
        return fl_errf(errmsg, FL_ETOOBIG, "%s: %zu-byte payload over the %zu-byte frame limit",
                       sc->name, n, max_frame);
    }
    out->data[start] = (uint8_t)(n >> 24);
    out->data[start + 1] = (uint8_t)(n >> 16);
    out->data[start + 2] = (uint8_t)(n >> 8);
    out->data[start + 3] = (uint8_t)n;
    return FL_OK;
}

int aproto_encode_ex(const struct aproto_msg *m, size_t max_frame, struct fl_buf *out, char *errmsg)
{
    int rv = aproto_msg_validate(m, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (max_frame == 0) {
        max_frame = APROTO_MAX_FRAME;
    }
    if (max_frame > APROTO_FRAME_LIMIT) {
        max_frame = APROTO_FRAME_LIMIT;
    }
    return pack_frame(m, aproto__schema(m->type), max_frame, out, errmsg);
}

int aproto_encode(const struct aproto_msg *m, struct fl_buf *out)
{
    return aproto_encode_ex(m, APROTO_MAX_FRAME, out, NULL);
}

int aproto__encode_unchecked(const struct aproto_msg *m, struct fl_buf *out)
{
    const struct aproto__schema *sc = aproto__schema(m->type);
    if (sc == NULL) {
        return FL_EVERSION;
    }
    return pack_frame(m, sc, APROTO_FRAME_LIMIT, out, NULL);
}
