/* agentproto/ — the decoder: one payload to a message that owns its memory.
 *
 * The header [version, type] is read here; the type's table and the engine
 * of schema/ decode the fields. Two passes over the same code: the first
 * checks every field and counts the bytes the message will need, with no
 * allocation at all, so a hostile payload is refused before it costs
 * memory; the second allocates exactly that much once and fills it. */
#include <string.h>

#include "agentproto/aproto_int.h"
#include "common/alloc.h"

/* One pass over [version, type, field...] into m (scalars in both passes,
 * everything in the filling pass); *sc gets the type's table. */
static int walk(struct schema_dec *d, size_t len, struct aproto_msg *m, const struct schema **sc)
{
    uint64_t version, type;
    uint32_t n;
    int rv;

    if (fl_mp_array(&d->r, &n) != FL_OK || n == 0) {
        return fl_errf(d->errmsg, FL_EDECODE, "payload is not a non-empty array");
    }
    if (fl_mp_uint(&d->r, &version) != FL_OK) {
        return fl_errf(d->errmsg, FL_EDECODE, "payload has no protocol version");
    }
    if (version != APROTO_VERSION) {
        return fl_errf(d->errmsg, FL_EVERSION, "protocol version %llu, this side speaks %d",
                       (unsigned long long)version, APROTO_VERSION);
    }
    if (n < 2 || fl_mp_uint(&d->r, &type) != FL_OK) {
        return fl_errf(d->errmsg, FL_EDECODE, "payload has no message type");
    }
    *sc = type < APROTO__TYPE_MAX ? aproto__schema((int)type) : NULL;
    if (*sc == NULL) {
        return fl_errf(d->errmsg, FL_EVERSION, "unknown message type %llu",
                       (unsigned long long)type);
    }
    d->name = (*sc)->name;
    if ((rv = schema_dec_fields(d, *sc, n - 2, 0, &m->u)) != FL_OK) {
        return rv;
    }
    if (d->r.pos != len) {
        return fl_errf(d->errmsg, FL_EDECODE, "%zu bytes after the payload", len - d->r.pos);
    }
    m->type = (int)type;
    return FL_OK;
}

int aproto_decode_ex(const uint8_t *payload, size_t len, struct aproto_msg *out, char *errmsg)
{
    const struct schema *sc = NULL;
    struct aproto__arena *a = NULL;
    struct aproto_msg tmp;
    struct schema_dec d;
    size_t need;
    int rv;

    memset(out, 0, sizeof *out);
    if (len > APROTO_FRAME_LIMIT) {
        return fl_errf(errmsg, FL_ETOOBIG, "%zu-byte payload", len);
    }
    memset(&tmp, 0, sizeof tmp);
    schema_dec_init(&d, payload, len, SCHEMA_MEASURE, errmsg);
    if ((rv = walk(&d, len, &tmp, &sc)) != FL_OK) {
        return rv;
    }
    need = d.used;
    schema_dec_init(&d, payload, len, SCHEMA_FILL, errmsg);
    if (need > 0) {
        a = fl_malloc(sizeof *a + need);
        if (a == NULL) {
            return fl_errf(errmsg, FL_ENOMEM, "no memory for a %zu-byte message", need);
        }
        a->size = need;
        a->reserved = 0;
        d.arena = a->data;
        d.cap = need;
    }
    out->arena = a;
    if ((rv = walk(&d, len, out, &sc)) == FL_OK && sc->check != NULL) {
        rv = sc->check(&out->u, 0, errmsg) == FL_OK ? FL_OK : FL_EDECODE;
    }
    if (rv != FL_OK) {
        aproto_msg_close(out);
    }
    return rv;
}

int aproto_decode(const uint8_t *payload, size_t len, struct aproto_msg *out)
{
    return aproto_decode_ex(payload, len, out, NULL);
}
