#include "fsm/cmd.h"

#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/mpwrite.h"
#include "common/mpcheck.h"
#include "common/mpread.h"
#include "fsm/cmd_int.h"
#include "fsm/fsm_int.h"

static const char *const type_names[FSM_CMD__MAX] = {
    "unknown",           "kv_put",           "kv_del",         "node_register",
    "node_cap",          "node_drain",       "node_remove",    "meta_init",
    "task_submit",       "unit_assign",      "unit_result",    "unit_requeue",
    "node_lost",         "task_cancel",      "dispatch",       "session_create",
    "session_renew",     "session_destroy",  "session_expire", "lease_extend",
    "lock_acquire",      "lock_release",     "lock_unwait",    "lock_wake",
    "job_put",           "job_del",          "job_pause",      "job_fire",
    "acl_bootstrap",     "token_create",     "token_delete",   "agent_key_set",
    "agent_key_approve", "agent_key_forget", "package_put",    "package_rm",
    "request",           "agent_revoke",     "agent_unrevoke",
};

const char *fsm_cmd_type_name(int type)
{
    if (type <= 0 || type >= FSM_CMD__MAX || type_names[type] == NULL) {
        return "unknown";
    }
    return type_names[type];
}

/* ---- validation ------------------------------------------------------ */

static int validate_req(const struct fsm_cmd *c, char *errmsg)
{
    char why[FL_ERRMSG_SIZE];
    if (c->req.serial == 0) {
        return c->req.slen == 0 ? FL_OK
                                : fl_errf(errmsg, FL_EINVAL, "request identity without a serial");
    }
    if (c->req.serial > FSM_REQ_SERIAL_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "request serial must be 1..%llu",
                       (unsigned long long)FSM_REQ_SERIAL_MAX);
    }
    if (fsm_session_id_check(c->req.session, c->req.slen, why) != FL_OK) {
        return fl_errf(errmsg, FL_EINVAL, "request identity: %s", why);
    }
    return FL_OK;
}

int fsm_cmd_validate(const struct fsm_cmd *c, char *errmsg)
{
    const struct fsm_cmd_desc *d = fsm__cmd_desc(c->type);
    int rv = validate_req(c, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    if (d == NULL) {
        return fl_errf(errmsg, FL_EINVAL, "unknown command type %d", c->type);
    }
    return schema_validate(d->sc, c, SIZE_MAX, errmsg);
}

/* ---- encoding -------------------------------------------------------- */

void fsm_writer_init(struct fsm_entry_writer *w)
{
    fl_buf_init(&w->body);
    w->n_cmds = 0;
}

void fsm_writer_close(struct fsm_entry_writer *w)
{
    fl_buf_close(&w->body);
    w->n_cmds = 0;
}

size_t fsm_writer_size(const struct fsm_entry_writer *w)
{
    return w->body.len;
}

/* [36, session, serial, cmd] around a command with a request identity, then
 * [type, field...] in the group the command needs. */
static int pack_cmd(const struct fsm_cmd *c, const struct fsm_cmd_desc *d, struct fl_buf *out)
{
    struct fl_mpw w;
    uint8_t format = d->format != NULL ? d->format(c) : d->sc->version;
    fl_mpw_init(&w, out);
    if (c->req.serial != 0) {
        fl_mpw_array(&w, 4);
        fl_mpw_uint(&w, FSM_CMD_REQUEST);
        if (fl_mpw_done(&w) != FL_OK ||
            schema_pack_fields(&fsm__request_schema, c, 1, out) != FL_OK) {
            return FL_ENOMEM;
        }
    }
    fl_mpw_array(&w, 1 + schema_n_fields(d->sc, format));
    fl_mpw_uint(&w, (uint8_t)c->type);
    if (fl_mpw_done(&w) != FL_OK) {
        return FL_ENOMEM;
    }
    return schema_pack_fields(d->sc, c, format, out);
}

int fsm_writer_add(struct fsm_entry_writer *w, const struct fsm_cmd *c)
{
    const struct fsm_cmd_desc *d = fsm__cmd_desc(c->type);
    size_t start = w->body.len;
    if (d == NULL) {
        return FL_EINVAL; /* unknown, or an envelope (never a command of its own) */
    }
    if (pack_cmd(c, d, &w->body) != FL_OK) {
        w->body.len = start; /* the commands before it stay whole */
        return FL_ENOMEM;
    }
    w->n_cmds++;
    return FL_OK;
}

int fsm_writer_finish(struct fsm_entry_writer *w, uint64_t origin, uint64_t seq, uint64_t term,
                      uint64_t time_ms, void *(*alloc)(size_t), void **out, size_t *len)
{
    struct fl_buf head;
    struct fl_mpw mw;
    size_t total, padded;
    uint8_t *p;

    fl_buf_init(&head);
    fl_mpw_init(&mw, &head);
    fl_mpw_array(&mw, 6);
    fl_mpw_uint(&mw, FSM_CMD_FORMAT);
    fl_mpw_uint(&mw, origin);
    fl_mpw_uint(&mw, seq);
    fl_mpw_uint(&mw, term);
    fl_mpw_uint(&mw, time_ms);
    fl_mpw_array(&mw, w->n_cmds);
    if (fl_mpw_done(&mw) != FL_OK) {
        fl_buf_close(&head);
        return FL_ENOMEM;
    }
    total = head.len + w->body.len;
    padded = (total + 7) & ~(size_t)7;
    p = alloc(padded);
    if (p == NULL) {
        fl_buf_close(&head);
        return FL_ENOMEM;
    }
    memcpy(p, head.data, head.len);
    if (w->body.len > 0) {
        memcpy(p + head.len, w->body.data, w->body.len);
    }
    memset(p + total, 0, padded - total);
    fl_buf_close(&head);
    *out = p;
    *len = padded;
    return FL_OK;
}

/* ---- decoding --------------------------------------------------------
 * The entry's bytes are checked whole (common/mpcheck.h: well-formed,
 * nesting bounded), then read with the total reader of common/mpread.h;
 * nothing is sized from a count the bytes cannot back. A command decodes
 * without copying (strings and binaries point into the entry) unless its
 * table has a variable array: then into one arena block of its own, sized
 * by a first pass that allocates nothing. */

int fsm_entry_open(struct fsm_entry *e, const void *data, size_t len)
{
    struct fl_mp r;
    size_t used = 0;
    uint64_t format;
    uint32_t n, n_cmds;

    memset(e, 0, sizeof *e);
    if (len > FSM_ENTRY_MAX_BYTES + 8) {
        return FL_ETOOBIG;
    }
    if (fl_mpcheck(data, len, 8, &used) != FL_OK) {
        return FL_EDECODE;
    }
    for (size_t i = used; i < len; i++) {
        if (((const uint8_t *)data)[i] != 0) {
            return FL_EDECODE; /* only zero padding may follow */
        }
    }
    fl_mp_init(&r, data, used);
    if (fl_mp_array(&r, &n) != FL_OK || n < 6 || fl_mp_uint(&r, &format) != FL_OK) {
        return FL_EDECODE;
    }
    if (format != FSM_CMD_FORMAT) {
        return FL_EVERSION;
    }
    if (fl_mp_uint(&r, &e->origin) != FL_OK || fl_mp_uint(&r, &e->seq) != FL_OK ||
        fl_mp_uint(&r, &e->term) != FL_OK || fl_mp_uint(&r, &e->time_ms) != FL_OK ||
        fl_mp_array(&r, &n_cmds) != FL_OK || n_cmds > FSM_ENTRY_MAX_CMDS) {
        return FL_EDECODE;
    }
    if (n_cmds > 0 && (e->slots = fl_calloc((size_t)n_cmds + 1, sizeof *e->slots)) == NULL) {
        return FL_ENOMEM;
    }
    for (uint32_t i = 0; i < n_cmds; i++) {
        e->slots[i].off = r.pos;
        if (fl_mp_skip(&r) != FL_OK) {
            fsm_entry_close(e);
            return FL_EDECODE;
        }
    }
    if (n_cmds > 0) {
        e->slots[n_cmds].off = r.pos;
    }
    e->data = data;
    e->format = (int)format;
    e->n_cmds = n_cmds;
    return FL_OK;
}

void fsm_entry_close(struct fsm_entry *e)
{
    if (e->slots != NULL) {
        for (unsigned i = 0; i < e->n_cmds; i++) {
            fl_free(e->slots[i].arena);
        }
        fl_free(e->slots);
    }
    e->slots = NULL;
    e->n_cmds = 0;
}

/* 1 if the table has a variable array: decoding needs an arena. */
static int needs_arena(const struct schema *sc)
{
    for (uint32_t i = 0; i < sc->n_fields; i++) {
        if (sc->fields[i].type == SCHEMA_ARRAY && !(sc->fields[i].flags & SCHEMA_INLINE)) {
            return 1;
        }
    }
    return 0;
}

/* The group an array of m fields holds: all of one group, or the last
 * group and elements a newer writer appended. 0 if none. */
static uint8_t group_of(const struct schema *sc, uint32_t m)
{
    for (uint8_t g = sc->version; g >= 1; g--) {
        uint32_t need = schema_n_fields(sc, g);
        if (need <= m) {
            return g == sc->version || need == m ? g : 0;
        }
    }
    return 0;
}

#define WALK_ARENA 1 /* borrowing, the command turned out to need an arena */

/* One pass over a command (in an envelope or not) into c. */
static int walk(struct schema_dec *d, struct fsm_cmd *c)
{
    const struct fsm_cmd_desc *desc;
    uint64_t type;
    uint32_t n;
    uint8_t g;
    int rv;
    memset(c, 0, sizeof *c);
    if (fl_mp_array(&d->r, &n) != FL_OK || n < 1 || fl_mp_uint(&d->r, &type) != FL_OK) {
        return FL_EDECODE;
    }
    if (type == FSM_CMD_REQUEST) {
        d->name = fsm__request_schema.name;
        if (n < 4 || schema_dec_fields(d, &fsm__request_schema, 2, 1, c) != FL_OK ||
            fl_mp_array(&d->r, &n) != FL_OK || n < 1 || fl_mp_uint(&d->r, &type) != FL_OK ||
            type == FSM_CMD_REQUEST) {
            return FL_EDECODE;
        }
    }
    if ((desc = fsm__cmd_desc((int)(type < FSM_CMD__MAX ? type : 0))) == NULL) {
        c->type = FSM_CMD_UNKNOWN;
        return FL_EVERSION;
    }
    c->type = (int)type;
    if (d->mode == SCHEMA_BORROW && needs_arena(desc->sc)) {
        return WALK_ARENA;
    }
    d->name = desc->sc->name;
    if ((g = group_of(desc->sc, n - 1)) == 0) {
        return fl_errf(d->errmsg, FL_EDECODE, "%s: %u fields", desc->sc->name, n - 1);
    }
    if ((rv = schema_dec_fields(d, desc->sc, n - 1, g, c)) != FL_OK) {
        return FL_EDECODE;
    }
    return desc->decoded != NULL ? desc->decoded(c, g) : FL_OK;
}

/* Decode the command in p[0..len) into c; *arena (NULL if none) holds what
 * c points to that is not in p. */
static int decode_cmd(const uint8_t *p, size_t len, struct fsm_cmd *c, void **arena)
{
    char why[FL_ERRMSG_SIZE];
    struct schema_dec d;
    size_t need;
    int rv;
    *arena = NULL;
    schema_dec_init(&d, p, len, SCHEMA_BORROW, why);
    if ((rv = walk(&d, c)) != WALK_ARENA) {
        return rv;
    }
    schema_dec_init(&d, p, len, SCHEMA_MEASURE, why);
    if ((rv = walk(&d, c)) != FL_OK) {
        return rv;
    }
    need = d.used;
    schema_dec_init(&d, p, len, SCHEMA_FILL, why);
    if (need > 0 && (d.arena = fl_malloc(need)) == NULL) {
        return FL_ENOMEM;
    }
    d.cap = need;
    if ((rv = walk(&d, c)) != FL_OK) {
        fl_free(d.arena);
        memset(c, 0, sizeof *c);
        return rv == WALK_ARENA ? FL_EDECODE : rv;
    }
    *arena = d.arena;
    return FL_OK;
}

int fsm_entry_cmd(const struct fsm_entry *e, unsigned i, struct fsm_cmd *c)
{
    struct fsm_entry_slot *s;
    memset(c, 0, sizeof *c);
    if (i >= e->n_cmds) {
        return FL_EINVAL;
    }
    s = &e->slots[i];
    fl_free(s->arena);
    s->arena = NULL;
    return decode_cmd(e->data + s->off, e->slots[i + 1].off - s->off, c, &s->arena);
}

int fsm_cmd_host(const struct fsm_cmd *c, uint32_t i, const char **host, size_t *len)
{
    if (i >= c->u.task.n_hosts) {
        return FL_EINVAL;
    }
    *host = c->u.task.host_ptrs[i];
    *len = strlen(*host);
    return FL_OK;
}

int fsm_cmd_result(const struct fsm_cmd *c, uint32_t i, struct fsm_host_result *out)
{
    if (i >= c->u.unit.n_results) {
        return FL_EINVAL;
    }
    *out = c->u.unit.result_ptrs[i];
    return FL_OK;
}

int fsm_cmd_decode_one(const void *data, size_t len, void **arena, struct fsm_cmd *out)
{
    size_t used = 0;
    *arena = NULL;
    memset(out, 0, sizeof *out);
    if (fl_mpcheck(data, len, 8, &used) != FL_OK || used != len) {
        return FL_EDECODE;
    }
    return decode_cmd(data, len, out, arena);
}
