/* agentproto/ — the decoder: one payload to a message that owns its memory.
 *
 * Two passes over the same code. The first walks the payload, checks every
 * field against the schema and counts the bytes the message will need, with
 * no allocation at all, so a hostile payload is refused before it costs
 * memory. The second allocates exactly that much once and fills it. What the
 * first pass accepted, the second cannot refuse (same bytes, same code); the
 * arena bound is still checked, so a bug could only fail the decode. */
#include <string.h>

#include "agentproto/aproto_int.h"
#include "common/alloc.h"

struct dec {
    struct fl_mp r;
    const struct aproto__schema *sc;
    uint8_t *arena; /* NULL in the measuring pass */
    size_t used;    /* arena bytes used (filling) or needed (measuring) */
    size_t cap;
    char *errmsg;
};

/* Where zero-length arrays and empty binaries point (never written). */
static union {
    max_align_t align;
    uint8_t byte;
} empty_obj;

/* n bytes from the arena, aligned; in the measuring pass only counted.
 * Returns NULL when measuring (and on the impossible overflow when filling:
 * *ok is cleared). */
static void *take(struct dec *d, size_t n, size_t align, int *ok)
{
    void *p;
    if (n == 0) {
        return (void *)&empty_obj;
    }
    d->used = (d->used + align - 1) & ~(align - 1);
    if (d->arena == NULL) {
        d->used += n;
        return NULL;
    }
    if (n > d->cap || d->used > d->cap - n) {
        *ok = 0;
        return NULL;
    }
    p = d->arena + d->used;
    d->used += n;
    return p;
}

static int bad(struct dec *d, const struct aproto__field *f, const char *what)
{
    return fl_errf(d->errmsg, FL_EDECODE, "%s.%s: %s", d->sc->name, f->name, what);
}

/* A string into the arena, NUL-terminated. */
static int dec_str(struct dec *d, const struct aproto__field *f, uint32_t min, uint32_t max,
                   long idx, const char **out)
{
    const char *s;
    size_t n;
    char *copy;
    int ok = 1;
    if (fl_mp_str(&d->r, &s, &n) != FL_OK) {
        return bad(d, f, "not a string");
    }
    if (aproto__check_str(d->sc, f, s, n, min, max, idx, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    copy = take(d, n + 1, 1, &ok);
    if (!ok) {
        return bad(d, f, "arena overflow");
    }
    if (copy != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
        *out = copy;
    }
    return FL_OK;
}

static int dec_bin(struct dec *d, const struct aproto__field *f, uint32_t max, const uint8_t **out,
                   uint32_t *len)
{
    const uint8_t *b;
    uint8_t *copy;
    size_t n;
    int ok = 1;
    if (fl_mp_bin(&d->r, &b, &n) != FL_OK) {
        return bad(d, f, "not a bin");
    }
    if (n > max) {
        return bad(d, f, "too long");
    }
    copy = take(d, n, 1, &ok);
    if (!ok) {
        return bad(d, f, "arena overflow");
    }
    if (copy != NULL) {
        if (n > 0) {
            memcpy(copy, b, n);
        }
        *out = copy;
        *len = (uint32_t)n;
    }
    return FL_OK;
}

static int dec_uint(struct dec *d, const struct aproto__field *f, uint64_t max, uint64_t *v)
{
    if (fl_mp_uint(&d->r, v) != FL_OK || *v > max) {
        return bad(d, f, "not an unsigned integer in range");
    }
    return FL_OK;
}

static int dec_i32(struct dec *d, const struct aproto__field *f, int32_t *out)
{
    int64_t v;
    if (fl_mp_int(&d->r, &v) != FL_OK || v < INT32_MIN || v > INT32_MAX) {
        return bad(d, f, "not a 32-bit integer");
    }
    *out = (int32_t)v;
    return FL_OK;
}

/* The header of a nested array of at least `need` elements. */
static int dec_tuple(struct dec *d, const struct aproto__field *f, uint32_t need, uint32_t *n)
{
    if (fl_mp_array(&d->r, n) != FL_OK || *n < need) {
        return bad(d, f, "not an array of enough elements");
    }
    return FL_OK;
}

/* Skip the elements of a nested array past the ones we know. */
static int skip_extra(struct dec *d, const struct aproto__field *f, uint32_t n, uint32_t known)
{
    for (uint32_t i = known; i < n; i++) {
        if (fl_mp_skip(&d->r) != FL_OK) {
            return bad(d, f, "malformed trailing element");
        }
    }
    return FL_OK;
}

/* [task_id, unit, attempt, token]; the task id is copied into the ref. */
static int dec_ref(struct dec *d, const struct aproto__field *f, struct aproto_unit_ref *ref)
{
    const char *s;
    size_t n;
    uint64_t unit, attempt;
    uint32_t count;
    int rv = dec_tuple(d, f, 4, &count);
    if (rv != FL_OK) {
        return rv;
    }
    if (fl_mp_str(&d->r, &s, &n) != FL_OK) {
        return bad(d, f, "task id is not a string");
    }
    if (aproto__check_ref(d->sc, s, n, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    if ((rv = dec_uint(d, f, UINT32_MAX, &unit)) != FL_OK ||
        (rv = dec_uint(d, f, UINT32_MAX, &attempt)) != FL_OK ||
        (rv = dec_uint(d, f, UINT64_MAX, &ref->token)) != FL_OK) {
        return rv;
    }
    memcpy(ref->task_id, s, n);
    ref->task_id[n] = '\0';
    ref->unit = (uint32_t)unit;
    ref->attempt = (uint32_t)attempt;
    return skip_extra(d, f, count, 4);
}

/* [host, status, rc, tail] */
static int dec_result(struct dec *d, const struct aproto__field *f, long idx,
                      struct aproto_host_result *hr)
{
    static const struct aproto__field host = {"host", APROTO__STR,     0, 0,
                                              1,      APROTO_HOST_MAX, 0, aproto__valid_host};
    uint64_t status;
    uint32_t count;
    int rv = dec_tuple(d, f, 4, &count);
    if (rv != FL_OK || (rv = dec_str(d, &host, 1, APROTO_HOST_MAX, idx, &hr->host)) != FL_OK ||
        (rv = dec_uint(d, f, APROTO__ST_MAX - 1, &status)) != FL_OK || status == 0 ||
        (rv = dec_i32(d, f, &hr->rc)) != FL_OK ||
        (rv = dec_bin(d, f, APROTO_TAIL_MAX, &hr->tail, &hr->tail_len)) != FL_OK) {
        return rv != FL_OK ? rv : bad(d, f, "bad host status");
    }
    hr->status = (uint8_t)status;
    return skip_extra(d, f, count, 4);
}

/* An array field: STRS, REFS or RESULTS. */
static int dec_array(struct dec *d, const struct aproto__field *f, uint8_t *base)
{
    static const size_t elem[] = {[APROTO__STRS] = sizeof(const char *),
                                  [APROTO__REFS] = sizeof(struct aproto_unit_ref),
                                  [APROTO__RESULTS] = sizeof(struct aproto_host_result)};
    uint32_t n;
    uint8_t *a;
    int ok = 1, rv = FL_OK;
    if (fl_mp_array(&d->r, &n) != FL_OK) {
        return bad(d, f, "not an array");
    }
    if (aproto__check_count(d->sc, f, n, d->errmsg) != FL_OK) {
        return FL_EDECODE;
    }
    a = take(d, (size_t)n * elem[f->ft], 8, &ok);
    if (!ok) {
        return bad(d, f, "arena overflow");
    }
    for (uint32_t i = 0; rv == FL_OK && i < n; i++) {
        const char *s;
        struct aproto_unit_ref ref;
        struct aproto_host_result hr;
        switch (f->ft) {
        case APROTO__STRS:
            rv = dec_str(d, f, f->min, f->elem_max, (long)i, &s);
            if (rv == FL_OK && a != NULL) {
                ((const char **)(void *)a)[i] = s;
            }
            break;
        case APROTO__REFS:
            rv = dec_ref(d, f, &ref);
            if (rv == FL_OK && a != NULL) {
                ((struct aproto_unit_ref *)(void *)a)[i] = ref;
            }
            break;
        default:
            memset(&hr, 0, sizeof hr);
            rv = dec_result(d, f, (long)i, &hr);
            if (rv == FL_OK && a != NULL) {
                ((struct aproto_host_result *)(void *)a)[i] = hr;
            }
            break;
        }
    }
    if (rv == FL_OK && a != NULL) {
        *(const void **)(void *)(base + f->off) = a;
        *(uint32_t *)(void *)(base + f->off_n) = n;
    }
    return rv;
}

static int dec_field(struct dec *d, const struct aproto__field *f, uint8_t *base)
{
    uint8_t *p = base + f->off;
    uint64_t v;
    int rv;
    switch (f->ft) {
    case APROTO__U8:
        if ((rv = dec_uint(d, f, UINT8_MAX, &v)) != FL_OK) {
            return rv;
        }
        if (aproto__check_u8(d->sc, f, v, d->errmsg) != FL_OK) {
            return FL_EDECODE;
        }
        *p = (uint8_t)v;
        return FL_OK;
    case APROTO__U32:
        if ((rv = dec_uint(d, f, UINT32_MAX, &v)) == FL_OK) {
            *(uint32_t *)(void *)p = (uint32_t)v;
        }
        return rv;
    case APROTO__U64:
        return dec_uint(d, f, UINT64_MAX, (uint64_t *)(void *)p);
    case APROTO__I32:
        return dec_i32(d, f, (int32_t *)(void *)p);
    case APROTO__BOOL:
        return fl_mp_bool(&d->r, (bool *)(void *)p) == FL_OK ? FL_OK : bad(d, f, "not a bool");
    case APROTO__STR:
        return dec_str(d, f, f->min, f->max, -1, (const char **)(void *)p);
    case APROTO__BIN:
        return dec_bin(d, f, f->max, (const uint8_t **)(void *)p,
                       (uint32_t *)(void *)(base + f->off_n));
    case APROTO__REF:
        return dec_ref(d, f, (struct aproto_unit_ref *)(void *)p);
    default:
        return dec_array(d, f, base);
    }
}

/* One pass over [version, type, field...]: into m (scalars in both passes,
 * everything in the filling pass). */
static int walk(struct dec *d, const uint8_t *payload, size_t len, struct aproto_msg *m)
{
    static const struct aproto__field top = {"payload", 0, 0, 0, 0, 0, 0, NULL};
    uint64_t version, type;
    uint32_t n;
    int rv;

    fl_mp_init(&d->r, payload, len);
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
    d->sc = type < APROTO__TYPE_MAX ? aproto__schema((int)type) : NULL;
    if (d->sc == NULL) {
        return fl_errf(d->errmsg, FL_EVERSION, "unknown message type %llu",
                       (unsigned long long)type);
    }
    if (n - 2 < d->sc->n_fields) {
        return fl_errf(d->errmsg, FL_EDECODE, "%s: %u fields, needs %u", d->sc->name, n - 2,
                       d->sc->n_fields);
    }
    for (unsigned i = 0; i < d->sc->n_fields; i++) {
        if ((rv = dec_field(d, &d->sc->fields[i], (uint8_t *)&m->u)) != FL_OK) {
            return rv;
        }
    }
    if ((rv = skip_extra(d, &top, n - 2, d->sc->n_fields)) != FL_OK) {
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
    struct aproto__arena *a = NULL;
    struct aproto_msg tmp;
    struct dec d;
    int rv;

    memset(out, 0, sizeof *out);
    if (len > APROTO_FRAME_LIMIT) {
        return fl_errf(errmsg, FL_ETOOBIG, "%zu-byte payload", len);
    }
    memset(&d, 0, sizeof d);
    memset(&tmp, 0, sizeof tmp);
    d.errmsg = errmsg;
    if ((rv = walk(&d, payload, len, &tmp)) != FL_OK) {
        return rv;
    }
    if (d.used > 0) {
        a = fl_malloc(sizeof *a + d.used);
        if (a == NULL) {
            return fl_errf(errmsg, FL_ENOMEM, "no memory for a %zu-byte message", d.used);
        }
        a->size = d.used;
        a->reserved = 0;
        d.arena = a->data;
        d.cap = d.used;
    }
    d.used = 0;
    out->arena = a;
    if ((rv = walk(&d, payload, len, out)) == FL_OK && d.sc->check != NULL) {
        rv = d.sc->check(out, 0, errmsg) == FL_OK ? FL_OK : FL_EDECODE;
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
