#include "node/spec.h"

#include <msgpack.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/mpcheck.h"

static const char *kind_names[] = {"none", "exec", "shell", "ansible", "playbook", "noop", "sleep"};

const char *node_exec_kind_name(int kind)
{
    return kind >= 1 && kind <= 6 ? kind_names[kind] : "unknown";
}

static int sbuf_write(void *data, const char *p, size_t n)
{
    return fl_buf_append(data, p, n) == FL_OK ? 0 : -1;
}

static int pack_s(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s ? s : "", n);
}

int node_spec_encode(const struct node_spec *s, struct fl_buf *out)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, out, sbuf_write);
    r = msgpack_pack_array(&pk, 10) | msgpack_pack_uint8(&pk, 1) |
        msgpack_pack_uint8(&pk, (uint8_t)s->kind) | msgpack_pack_array(&pk, s->argc);
    for (unsigned i = 0; i < s->argc; i++) {
        r |= pack_s(&pk, s->argv[i]);
    }
    r |= pack_s(&pk, s->script) | pack_s(&pk, s->module) | pack_s(&pk, s->module_args) |
         pack_s(&pk, s->playbook) | msgpack_pack_uint32(&pk, s->sleep_ms) |
         msgpack_pack_array(&pk, s->n_vars);
    for (unsigned i = 0; i < s->n_vars; i++) {
        r |= pack_s(&pk, s->vars[i]);
    }
    r |= msgpack_pack_uint32(&pk, s->kill_grace_ms);
    return r ? FL_ENOMEM : FL_OK;
}

/* Copy a msgpack string into the arena with a NUL. */
static const char *take(const msgpack_object *o, char **cursor)
{
    char *p = *cursor;
    if (o->type != MSGPACK_OBJECT_STR) {
        return NULL;
    }
    if (o->via.str.size > 0) {
        memcpy(p, o->via.str.ptr, o->via.str.size);
    }
    p[o->via.str.size] = '\0';
    *cursor = p + o->via.str.size + 1;
    return p;
}

static int get_u32(const msgpack_object *o, uint32_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX) {
        return 0;
    }
    *v = (uint32_t)o->via.u64;
    return 1;
}

int node_spec_decode(const uint8_t *p, size_t n, struct node_spec *out)
{
    msgpack_unpacked u;
    const msgpack_object *a;
    size_t used = 0, off = 0;
    uint32_t kind;
    char *cur;
    int rv = FL_EDECODE;

    memset(out, 0, sizeof *out);
    if (fl_mpcheck(p, n, 4, &used) != FL_OK || used != n) {
        return FL_EDECODE;
    }
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)p, n, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size < 10) {
        goto out;
    }
    a = u.data.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1) {
        rv = FL_EVERSION;
        goto out;
    }
    if (!get_u32(&a[1], &kind) || kind < 1 || kind > 6 || a[2].type != MSGPACK_OBJECT_ARRAY ||
        a[2].via.array.size > NODE_SPEC_ARGV_MAX || a[8].type != MSGPACK_OBJECT_ARRAY ||
        a[8].via.array.size > NODE_SPEC_VARS_MAX || !get_u32(&a[7], &out->sleep_ms) ||
        !get_u32(&a[9], &out->kill_grace_ms)) {
        goto out;
    }
    /* Every string fits in n bytes plus one NUL each. */
    out->arena_ = fl_malloc(n + 2 * (NODE_SPEC_ARGV_MAX + NODE_SPEC_VARS_MAX + 8));
    if (out->arena_ == NULL) {
        rv = FL_ENOMEM;
        goto out;
    }
    cur = out->arena_;
    out->kind = (int)kind;
    out->argc = a[2].via.array.size;
    for (unsigned i = 0; i < out->argc; i++) {
        if ((out->argv[i] = take(&a[2].via.array.ptr[i], &cur)) == NULL) {
            goto out;
        }
    }
    out->argv[out->argc] = NULL;
    out->n_vars = a[8].via.array.size;
    for (unsigned i = 0; i < out->n_vars; i++) {
        if ((out->vars[i] = take(&a[8].via.array.ptr[i], &cur)) == NULL) {
            goto out;
        }
    }
    out->vars[out->n_vars] = NULL;
    if ((out->script = take(&a[3], &cur)) == NULL || (out->module = take(&a[4], &cur)) == NULL ||
        (out->module_args = take(&a[5], &cur)) == NULL ||
        (out->playbook = take(&a[6], &cur)) == NULL) {
        goto out;
    }
    rv = FL_OK;
out:
    msgpack_unpacked_destroy(&u);
    if (rv != FL_OK) {
        node_spec_close(out);
    }
    return rv;
}

void node_spec_close(struct node_spec *s)
{
    fl_free(s->arena_);
    s->arena_ = NULL;
}
