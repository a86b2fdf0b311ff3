/* agentproto/ — the encoder: a validated message to one frame.
 *
 * The payload is packed straight into the caller's buffer behind a 4-byte
 * placeholder that becomes the length once the size is known: the header
 * [version, type] with msgpack-c, the fields by the engine of schema/ from
 * the type's table. Nothing partial is ever left in the buffer. */
#include <msgpack.h>
#include <string.h>

#include "agentproto/aproto_int.h"

static int buf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

/* Pack m (already validated, or deliberately not) as a frame. */
static int pack_frame(const struct aproto_msg *m, const struct schema *sc, size_t max_frame,
                      struct fl_buf *out, char *errmsg)
{
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
    if (rv != 0 || schema_pack_fields(sc, &m->u, 0, out) != FL_OK) {
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
    const struct schema *sc = aproto__schema(m->type);
    if (sc == NULL) {
        return FL_EVERSION;
    }
    return pack_frame(m, sc, APROTO_FRAME_LIMIT, out, NULL);
}
