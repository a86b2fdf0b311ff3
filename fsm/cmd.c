#include "fsm/cmd.h"

#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/mpcheck.h"
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
    "request",
};

const char *fsm_cmd_type_name(int type)
{
    if (type <= 0 || type >= FSM_CMD__MAX || type_names[type] == NULL) {
        return "unknown";
    }
    return type_names[type];
}

/* ---- validation ------------------------------------------------------ */

static int valid_name(const char *s, size_t n, size_t max)
{
    if (n == 0 || n >= max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '/') {
            return 0;
        }
    }
    return 1;
}

/* A host name: 1..255 bytes, printable, no spaces or commas. */
static int valid_host(const char *s, size_t n)
{
    if (n == 0 || n >= STORE_HOST_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == ',') {
            return 0;
        }
    }
    return 1;
}

static int validate_task(const struct fsm_cmd *c, char *errmsg)
{
    if (!valid_name(c->u.task.id, c->u.task.idlen, STORE_TASK_ID_MAX)) {
        return fl_errf(errmsg, FL_EINVAL, "bad task id");
    }
    if (c->u.task.namelen >= STORE_TASK_NAME_MAX || c->u.task.idemlen >= 128) {
        return fl_errf(errmsg, FL_EINVAL, "name or idempotency key too long (limit 127)");
    }
    if (c->u.task.n_hosts == 0 || c->u.task.n_hosts > FSM_TASK_HOSTS_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "a task needs 1 to %d hosts", FSM_TASK_HOSTS_MAX);
    }
    if (c->u.task.unit_size == 0 || c->u.task.unit_size > FSM_UNIT_SIZE_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "unit_size must be 1..%d", FSM_UNIT_SIZE_MAX);
    }
    if (c->u.task.n_constraints > STORE_TASK_CONSTRAINTS) {
        return fl_errf(errmsg, FL_EINVAL, "at most %d constraints", STORE_TASK_CONSTRAINTS);
    }
    for (unsigned i = 0; i < c->u.task.n_constraints; i++) {
        if (c->u.task.constraint_lens[i] == 0 ||
            c->u.task.constraint_lens[i] >= STORE_NODE_LABEL_MAX) {
            return fl_errf(errmsg, FL_EINVAL, "constraint %u is empty or too long", i);
        }
    }
    if (c->u.task.spec_len > 256 * 1024) {
        return fl_errf(errmsg, FL_ETOOBIG, "executor spec over 256 KiB");
    }
    if (c->u.task.max_running > FSM_MAX_RUNNING_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "max_running must be 0..%d", FSM_MAX_RUNNING_MAX);
    }
    if (c->u.task.fail_stop > FSM_TASK_HOSTS_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "fail_stop must be 0..%d", FSM_TASK_HOSTS_MAX);
    }
    if (c->u.task.placement != FSM_PLACE_ANY && c->u.task.placement != FSM_PLACE_HOST) {
        return fl_errf(errmsg, FL_EINVAL, "unknown placement %u", c->u.task.placement);
    }
    if (c->u.task.placement == FSM_PLACE_HOST && c->u.task.unit_size != 1) {
        return fl_errf(errmsg, FL_EINVAL, "placement host needs unit_size 1");
    }
    for (uint32_t i = 0; i < c->u.task.n_hosts; i++) {
        const char *h;
        size_t n;
        if (fsm_cmd_host(c, i, &h, &n) != FL_OK || !valid_host(h, n)) {
            return fl_errf(errmsg, FL_EINVAL,
                           "host %u must be 1-255 printable bytes without spaces or commas", i);
        }
        /* Placed on its host: the host names the node that runs it. */
        if (c->u.task.placement == FSM_PLACE_HOST && !valid_name(h, n, STORE_NODE_ID_MAX)) {
            return fl_errf(errmsg, FL_EINVAL,
                           "host %u is not a node id (1-%d printable characters without '/')", i,
                           STORE_NODE_ID_MAX - 1);
        }
    }
    return FL_OK;
}

static int validate_unit(const struct fsm_cmd *c, char *errmsg)
{
    if (!valid_name(c->u.unit.task, c->u.unit.tasklen, STORE_TASK_ID_MAX)) {
        return fl_errf(errmsg, FL_EINVAL, "bad task id");
    }
    if (c->type == FSM_CMD_UNIT_ASSIGN &&
        !valid_name(c->u.unit.node, c->u.unit.nodelen, STORE_NODE_ID_MAX)) {
        return fl_errf(errmsg, FL_EINVAL, "bad node id");
    }
    if (c->type != FSM_CMD_UNIT_ASSIGN &&
        (c->u.unit.status <= 0 || c->u.unit.status >= STORE_ST__MAX)) {
        return fl_errf(errmsg, FL_EINVAL, "bad status %d", c->u.unit.status);
    }
    if (c->type == FSM_CMD_UNIT_RESULT) {
        if (c->u.unit.n_results > STORE_UNIT_HOSTS_MAX) {
            return fl_errf(errmsg, FL_EINVAL, "too many host results");
        }
        for (uint32_t i = 0; i < c->u.unit.n_results; i++) {
            struct fsm_host_result r;
            if (fsm_cmd_result(c, i, &r) != FL_OK || !valid_host(r.host, r.hostlen) ||
                r.status <= 0 || r.status >= STORE_ST__MAX || r.tail_len > STORE_TAIL_MAX) {
                return fl_errf(errmsg, FL_EINVAL, "bad host result %u", i);
            }
        }
    }
    return FL_OK;
}

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

static int validate_cmd(const struct fsm_cmd *c, char *errmsg);

int fsm_cmd_validate(const struct fsm_cmd *c, char *errmsg)
{
    int rv = validate_req(c, errmsg);
    return rv != FL_OK ? rv : validate_cmd(c, errmsg);
}

static int validate_cmd(const struct fsm_cmd *c, char *errmsg)
{
    switch (c->type) {
    case FSM_CMD_KV_PUT:
        if (c->u.kv.vlen > STORE_KV_MAX_VALUE) {
            return fl_errf(errmsg, FL_ETOOBIG, "value is %zu bytes; the limit is %d", c->u.kv.vlen,
                           STORE_KV_MAX_VALUE);
        }
        /* fall through */
    case FSM_CMD_KV_DEL:
        if (c->u.kv.klen == 0) {
            return fl_errf(errmsg, FL_EINVAL, "key is empty");
        }
        if (c->u.kv.klen > STORE_KV_MAX_KEY) {
            return fl_errf(errmsg, FL_ETOOBIG, "key is %zu bytes; the limit is %d", c->u.kv.klen,
                           STORE_KV_MAX_KEY);
        }
        return FL_OK;
    case FSM_CMD_NODE_REGISTER:
        if (c->u.node.raft_addr_len >= STORE_NODE_ADDR_MAX ||
            c->u.node.api_addr_len >= STORE_NODE_ADDR_MAX ||
            c->u.node.agent_addr_len >= STORE_NODE_ADDR_MAX ||
            c->u.node.blob_addr_len >= STORE_NODE_ADDR_MAX) {
            return fl_errf(errmsg, FL_ETOOBIG, "address too long");
        }
        if (c->u.node.kind != STORE_NODE_SERVER && c->u.node.kind != STORE_NODE_AGENT) {
            return fl_errf(errmsg, FL_EINVAL, "unknown node kind %d", c->u.node.kind);
        }
        if (c->u.node.n_labels > STORE_NODE_LABELS) {
            return fl_errf(errmsg, FL_ETOOBIG, "at most %d labels", STORE_NODE_LABELS);
        }
        for (unsigned i = 0; i < c->u.node.n_labels; i++) {
            if (c->u.node.label_lens[i] >= STORE_NODE_LABEL_MAX ||
                memchr(c->u.node.labels[i], '=', c->u.node.label_lens[i]) == NULL) {
                return fl_errf(errmsg, FL_EINVAL, "label %u must be k=v, shorter than %d", i,
                               STORE_NODE_LABEL_MAX);
            }
        }
        /* fall through */
    case FSM_CMD_NODE_CAP:
    case FSM_CMD_NODE_DRAIN:
    case FSM_CMD_NODE_REMOVE:
        if (!valid_name(c->u.node.id, c->u.node.idlen, STORE_NODE_ID_MAX)) {
            return fl_errf(errmsg, FL_EINVAL,
                           "node id must be 1-%d printable characters without '/' or spaces",
                           STORE_NODE_ID_MAX - 1);
        }
        if (c->u.node.cap > 1000000) {
            return fl_errf(errmsg, FL_EINVAL, "cap %u is absurd (limit 1000000)", c->u.node.cap);
        }
        return FL_OK;
    case FSM_CMD_TASK_SUBMIT:
        return validate_task(c, errmsg);
    case FSM_CMD_TASK_CANCEL:
        if (!valid_name(c->u.task.id, c->u.task.idlen, STORE_TASK_ID_MAX)) {
            return fl_errf(errmsg, FL_EINVAL, "bad task id");
        }
        return FL_OK;
    case FSM_CMD_UNIT_ASSIGN:
    case FSM_CMD_UNIT_RESULT:
    case FSM_CMD_UNIT_REQUEUE:
        return validate_unit(c, errmsg);
    case FSM_CMD_NODE_LOST:
        if (!valid_name(c->u.node.id, c->u.node.idlen, STORE_NODE_ID_MAX)) {
            return fl_errf(errmsg, FL_EINVAL, "bad node id");
        }
        return FL_OK;
    case FSM_CMD_DISPATCH:
        return FL_OK;
    case FSM_CMD_SESSION_CREATE:
    case FSM_CMD_SESSION_RENEW:
    case FSM_CMD_SESSION_DESTROY:
    case FSM_CMD_SESSION_EXPIRE:
    case FSM_CMD_LEASE_EXTEND:
    case FSM_CMD_LOCK_ACQUIRE:
    case FSM_CMD_LOCK_RELEASE:
    case FSM_CMD_LOCK_UNWAIT:
    case FSM_CMD_LOCK_WAKE:
        return fsm__lock_validate(c, errmsg);
    case FSM_CMD_JOB_PUT:
    case FSM_CMD_JOB_DEL:
    case FSM_CMD_JOB_PAUSE:
    case FSM_CMD_JOB_FIRE:
        return fsm__job_validate(c, errmsg);
    case FSM_CMD_ACL_BOOTSTRAP:
    case FSM_CMD_TOKEN_CREATE:
    case FSM_CMD_TOKEN_DELETE:
        return fsm__acl_validate(c, errmsg);
    case FSM_CMD_AGENT_KEY_SET:
    case FSM_CMD_AGENT_KEY_APPROVE:
    case FSM_CMD_AGENT_KEY_FORGET:
        return fsm__agentkey_validate(c, errmsg);
    case FSM_CMD_PACKAGE_PUT:
    case FSM_CMD_PACKAGE_RM:
        return fsm__package_validate(c, errmsg);
    case FSM_CMD_META_INIT:
        /* "applied" is the store's own record of the applied position. */
        if (!valid_name(c->u.meta.name, c->u.meta.nlen, 64) || c->u.meta.vlen > 1024 ||
            (c->u.meta.nlen == 7 && memcmp(c->u.meta.name, "applied", 7) == 0) ||
            (c->u.meta.nlen == 8 && memcmp(c->u.meta.name, "revision", 8) == 0)) {
            return fl_errf(errmsg, FL_EINVAL, "bad meta name or value");
        }
        return FL_OK;
    default:
        return fl_errf(errmsg, FL_EINVAL, "unknown command type %d", c->type);
    }
}

/* ---- encoding -------------------------------------------------------- */

void fsm_writer_init(struct fsm_entry_writer *w)
{
    msgpack_sbuffer_init(&w->body);
    w->n_cmds = 0;
}

void fsm_writer_close(struct fsm_entry_writer *w)
{
    msgpack_sbuffer_destroy(&w->body);
    w->n_cmds = 0;
}

size_t fsm_writer_size(const struct fsm_entry_writer *w)
{
    return w->body.size;
}

int fsm_writer_add(struct fsm_entry_writer *w, const struct fsm_cmd *c)
{
    msgpack_packer pk;
    size_t start = w->body.size;
    int env = 0, rv;
    msgpack_packer_init(&pk, &w->body, msgpack_sbuffer_write);
    if (c->type == FSM_CMD_REQUEST) {
        return FL_EINVAL; /* an envelope is never a command of its own */
    }
    if (c->req.serial != 0) {
        env |= msgpack_pack_array(&pk, 4);
        env |= msgpack_pack_uint8(&pk, FSM_CMD_REQUEST);
        env |= fsm__pack_str(&pk, c->req.session, c->req.slen);
        env |= msgpack_pack_uint64(&pk, c->req.serial);
    }
    if ((rv = fsm__pack_node(&pk, c)) == -2 && (rv = fsm__pack_sched(&pk, c)) == -2) {
        rv = 0;
        switch (c->type) {
        case FSM_CMD_SESSION_CREATE:
        case FSM_CMD_SESSION_RENEW:
        case FSM_CMD_SESSION_DESTROY:
        case FSM_CMD_SESSION_EXPIRE:
        case FSM_CMD_LEASE_EXTEND:
        case FSM_CMD_LOCK_ACQUIRE:
        case FSM_CMD_LOCK_RELEASE:
        case FSM_CMD_LOCK_UNWAIT:
        case FSM_CMD_LOCK_WAKE:
            rv |= fsm__lock_pack(&pk, c);
            break;
        case FSM_CMD_JOB_PUT:
        case FSM_CMD_JOB_DEL:
        case FSM_CMD_JOB_PAUSE:
        case FSM_CMD_JOB_FIRE:
            rv |= fsm__job_pack(&pk, c);
            break;
        case FSM_CMD_ACL_BOOTSTRAP:
        case FSM_CMD_TOKEN_CREATE:
        case FSM_CMD_TOKEN_DELETE:
            rv |= fsm__acl_pack(&pk, c);
            break;
        case FSM_CMD_AGENT_KEY_SET:
        case FSM_CMD_AGENT_KEY_APPROVE:
        case FSM_CMD_AGENT_KEY_FORGET:
            rv |= fsm__agentkey_pack(&pk, c);
            break;
        case FSM_CMD_PACKAGE_PUT:
        case FSM_CMD_PACKAGE_RM:
            rv |= fsm__package_pack(&pk, c);
            break;
        default:
            w->body.size = start; /* drop an envelope already written */
            return FL_EINVAL;
        }
    }
    if (rv != 0 || env != 0) {
        w->body.size = start;
        return FL_ENOMEM;
    }
    w->n_cmds++;
    return FL_OK;
}

int fsm_writer_finish(struct fsm_entry_writer *w, uint64_t origin, uint64_t seq, uint64_t term,
                      uint64_t time_ms, void *(*alloc)(size_t), void **out, size_t *len)
{
    msgpack_sbuffer head;
    msgpack_packer pk;
    size_t total, padded;
    uint8_t *p;
    int rv = 0;

    msgpack_sbuffer_init(&head);
    msgpack_packer_init(&pk, &head, msgpack_sbuffer_write);
    rv |= msgpack_pack_array(&pk, 6);
    rv |= msgpack_pack_uint8(&pk, FSM_CMD_FORMAT);
    rv |= msgpack_pack_uint64(&pk, origin);
    rv |= msgpack_pack_uint64(&pk, seq);
    rv |= msgpack_pack_uint64(&pk, term);
    rv |= msgpack_pack_uint64(&pk, time_ms);
    rv |= msgpack_pack_array(&pk, w->n_cmds);
    if (rv != 0) {
        msgpack_sbuffer_destroy(&head);
        return FL_ENOMEM;
    }
    total = head.size + w->body.size;
    padded = (total + 7) & ~(size_t)7;
    p = alloc(padded);
    if (p == NULL) {
        msgpack_sbuffer_destroy(&head);
        return FL_ENOMEM;
    }
    memcpy(p, head.data, head.size);
    if (w->body.size > 0) {
        memcpy(p + head.size, w->body.data, w->body.size);
    }
    memset(p + total, 0, padded - total);
    msgpack_sbuffer_destroy(&head);
    *out = p;
    *len = padded;
    return FL_OK;
}

/* ---- decoding -------------------------------------------------------- */

static int get_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return 0;
    }
    *v = o->via.u64;
    return 1;
}

static int get_bool(const msgpack_object *o, int *v)
{
    if (o->type != MSGPACK_OBJECT_BOOLEAN) {
        return 0;
    }
    *v = o->via.boolean ? 1 : 0;
    return 1;
}

static int get_str(const msgpack_object *o, const char **s, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return 0;
    }
    *s = o->via.str.ptr;
    *n = o->via.str.size;
    return 1;
}

static int get_i32(const msgpack_object *o, int32_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX) {
        *v = (int32_t)o->via.u64;
        return 1;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT32_MIN) {
        *v = (int32_t)o->via.i64;
        return 1;
    }
    return 0;
}

static int get_u32(const msgpack_object *o, uint32_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX) {
        return 0;
    }
    *v = (uint32_t)o->via.u64;
    return 1;
}

static int get_bin(const msgpack_object *o, const uint8_t **s, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_BIN) {
        return 0;
    }
    *s = (const uint8_t *)o->via.bin.ptr;
    *n = o->via.bin.size;
    return 1;
}

int fsm_entry_open(struct fsm_entry *e, const void *data, size_t len)
{
    const uint8_t *p = data;
    const msgpack_object *a;
    size_t used = 0, off = 0;
    uint64_t format;

    memset(e, 0, sizeof *e);
    msgpack_unpacked_init(&e->unpacked);
    if (len > FSM_ENTRY_MAX_BYTES + 8) {
        return FL_ETOOBIG;
    }
    if (fl_mpcheck(p, len, 8, &used) != FL_OK) {
        return FL_EDECODE;
    }
    for (size_t i = used; i < len; i++) {
        if (p[i] != 0) {
            return FL_EDECODE; /* only zero padding may follow */
        }
    }
    if (msgpack_unpack_next(&e->unpacked, data, used, &off) != MSGPACK_UNPACK_SUCCESS) {
        return FL_EDECODE;
    }
    if (e->unpacked.data.type != MSGPACK_OBJECT_ARRAY || e->unpacked.data.via.array.size < 6) {
        return FL_EDECODE;
    }
    a = e->unpacked.data.via.array.ptr;
    if (!get_u64(&a[0], &format)) {
        return FL_EDECODE;
    }
    if (format != FSM_CMD_FORMAT) {
        return FL_EVERSION;
    }
    if (!get_u64(&a[1], &e->origin) || !get_u64(&a[2], &e->seq) || !get_u64(&a[3], &e->term) ||
        !get_u64(&a[4], &e->time_ms) || a[5].type != MSGPACK_OBJECT_ARRAY ||
        a[5].via.array.size > FSM_ENTRY_MAX_CMDS) {
        return FL_EDECODE;
    }
    e->format = (int)format;
    e->n_cmds = a[5].via.array.size;
    e->cmds = a[5].via.array.ptr;
    return FL_OK;
}

void fsm_entry_close(struct fsm_entry *e)
{
    msgpack_unpacked_destroy(&e->unpacked);
    e->cmds = NULL;
    e->n_cmds = 0;
}

static int decode_node(const msgpack_object *f, uint32_t n, int type, struct fsm_cmd *c)
{
    uint64_t v;
    if (n < 2 || !get_str(&f[1], &c->u.node.id, &c->u.node.idlen)) {
        return FL_EDECODE;
    }
    switch (type) {
    case FSM_CMD_NODE_REGISTER:
        if (n < 8 || !get_u64(&f[2], &c->u.node.raft_id) ||
            !get_str(&f[3], &c->u.node.raft_addr, &c->u.node.raft_addr_len) ||
            !get_str(&f[4], &c->u.node.api_addr, &c->u.node.api_addr_len) || !get_u64(&f[5], &v) ||
            v > 255 || f[6].type != MSGPACK_OBJECT_ARRAY ||
            f[6].via.array.size > STORE_NODE_LABELS) {
            return FL_EDECODE;
        }
        c->u.node.kind = (int)v;
        c->u.node.n_labels = f[6].via.array.size;
        for (unsigned i = 0; i < c->u.node.n_labels; i++) {
            if (!get_str(&f[6].via.array.ptr[i], &c->u.node.labels[i], &c->u.node.label_lens[i])) {
                return FL_EDECODE;
            }
        }
        if (!get_u64(&f[7], &v) || v > UINT32_MAX) {
            return FL_EDECODE;
        }
        c->u.node.cap = (uint32_t)v;
        if (n >= 9 && !get_str(&f[8], &c->u.node.agent_addr, &c->u.node.agent_addr_len)) {
            return FL_EDECODE;
        }
        if (n >= 10 && !get_str(&f[9], &c->u.node.blob_addr, &c->u.node.blob_addr_len)) {
            return FL_EDECODE;
        }
        return FL_OK;
    case FSM_CMD_NODE_CAP:
        if (n < 3 || !get_u64(&f[2], &v) || v > UINT32_MAX) {
            return FL_EDECODE;
        }
        c->u.node.cap = (uint32_t)v;
        return FL_OK;
    case FSM_CMD_NODE_DRAIN:
        return n >= 3 && get_bool(&f[2], &c->u.node.drain) ? FL_OK : FL_EDECODE;
    default:
        return FL_OK;
    }
}

static int decode_task(const msgpack_object *f, uint32_t n, struct fsm_cmd *c)
{
    if (n < 11 || !get_str(&f[1], &c->u.task.id, &c->u.task.idlen) ||
        !get_str(&f[2], &c->u.task.name, &c->u.task.namelen) ||
        !get_str(&f[3], &c->u.task.idem, &c->u.task.idemlen) || f[4].type != MSGPACK_OBJECT_ARRAY ||
        !get_u32(&f[5], &c->u.task.unit_size) || !get_u32(&f[6], &c->u.task.timeout_ms) ||
        !get_u32(&f[7], &c->u.task.retries) || !get_i32(&f[8], &c->u.task.priority) ||
        f[9].type != MSGPACK_OBJECT_ARRAY || f[9].via.array.size > STORE_TASK_CONSTRAINTS ||
        !get_bin(&f[10], &c->u.task.spec, &c->u.task.spec_len)) {
        return FL_EDECODE;
    }
    /* Entries written before the rollout controls have 11 fields (zeros);
     * the controls come as three together. */
    if (n == 12 || n == 13) {
        return FL_EDECODE;
    }
    if (n >= 14) {
        uint32_t place;
        if (!get_u32(&f[11], &c->u.task.max_running) || !get_u32(&f[12], &c->u.task.fail_stop) ||
            !get_u32(&f[13], &place) || place > 255) {
            return FL_EDECODE;
        }
        c->u.task.placement = (uint8_t)place;
    }
    c->u.task.n_hosts = f[4].via.array.size;
    c->u.task.hosts = f[4].via.array.ptr;
    c->u.task.n_constraints = f[9].via.array.size;
    for (unsigned i = 0; i < c->u.task.n_constraints; i++) {
        if (!get_str(&f[9].via.array.ptr[i], &c->u.task.constraints[i],
                     &c->u.task.constraint_lens[i])) {
            return FL_EDECODE;
        }
    }
    return FL_OK;
}

static int decode_unit(const msgpack_object *f, uint32_t n, struct fsm_cmd *c)
{
    uint32_t status = 0;
    if (n < 5 || !get_str(&f[1], &c->u.unit.task, &c->u.unit.tasklen) ||
        !get_u32(&f[2], &c->u.unit.unit)) {
        return FL_EDECODE;
    }
    switch (c->type) {
    case FSM_CMD_UNIT_ASSIGN:
        return get_u32(&f[3], &c->u.unit.attempt) &&
                       get_str(&f[4], &c->u.unit.node, &c->u.unit.nodelen)
                   ? FL_OK
                   : FL_EDECODE;
    case FSM_CMD_UNIT_REQUEUE:
        if (!get_u64(&f[3], &c->u.unit.token) || !get_u32(&f[4], &status)) {
            return FL_EDECODE;
        }
        c->u.unit.status = (int)(status > 255 ? 0 : status);
        return FL_OK;
    default: /* RESULT */
        if (n < 10 || !get_u32(&f[3], &c->u.unit.attempt) || !get_u64(&f[4], &c->u.unit.token) ||
            !get_u32(&f[5], &status) || status > 255 || !get_i32(&f[6], &c->u.unit.exit_code) ||
            !get_u64(&f[7], &c->u.unit.started_ms) || !get_u64(&f[8], &c->u.unit.finished_ms) ||
            f[9].type != MSGPACK_OBJECT_ARRAY) {
            return FL_EDECODE;
        }
        c->u.unit.status = (int)status;
        c->u.unit.n_results = f[9].via.array.size;
        c->u.unit.results = f[9].via.array.ptr;
        return FL_OK;
    }
}

int fsm_cmd_host(const struct fsm_cmd *c, uint32_t i, const char **host, size_t *len)
{
    if (i >= c->u.task.n_hosts) {
        return FL_EINVAL;
    }
    if (c->u.task.hosts == NULL) { /* encoding side */
        *host = c->u.task.host_ptrs[i];
        *len = strlen(*host);
        return FL_OK;
    }
    return get_str(&c->u.task.hosts[i], host, len) ? FL_OK : FL_EDECODE;
}

int fsm_cmd_result(const struct fsm_cmd *c, uint32_t i, struct fsm_host_result *out)
{
    const msgpack_object *a;
    uint32_t st;
    if (i >= c->u.unit.n_results) {
        return FL_EINVAL;
    }
    if (c->u.unit.results == NULL) {
        *out = c->u.unit.result_ptrs[i];
        return FL_OK;
    }
    if (c->u.unit.results[i].type != MSGPACK_OBJECT_ARRAY ||
        c->u.unit.results[i].via.array.size < 4) {
        return FL_EDECODE;
    }
    a = c->u.unit.results[i].via.array.ptr;
    if (!get_str(&a[0], &out->host, &out->hostlen) || !get_u32(&a[1], &st) || st > 255 ||
        !get_i32(&a[2], &out->rc) || !get_bin(&a[3], &out->tail, &out->tail_len)) {
        return FL_EDECODE;
    }
    out->status = (int)st;
    return FL_OK;
}

/* Decode one command object; an envelope carries the request identity and
 * the command itself (never another envelope). */
static int decode_cmd(const msgpack_object *o, int in_envelope, struct fsm_cmd *c)
{
    const msgpack_object *f;
    uint32_t n;
    uint64_t type;

    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1) {
        return FL_EDECODE;
    }
    f = o->via.array.ptr;
    n = o->via.array.size;
    if (!get_u64(&f[0], &type)) {
        return FL_EDECODE;
    }
    if (type == FSM_CMD_REQUEST) {
        if (in_envelope || n < 4 || !get_str(&f[1], &c->req.session, &c->req.slen) ||
            !get_u64(&f[2], &c->req.serial) || c->req.serial == 0) {
            return FL_EDECODE;
        }
        return decode_cmd(&f[3], 1, c);
    }
    if (type == 0 || type >= FSM_CMD__MAX) {
        c->type = FSM_CMD_UNKNOWN;
        return FL_EVERSION;
    }
    c->type = (int)type;
    switch (c->type) {
    case FSM_CMD_KV_PUT:
        if (n < 5 || !get_str(&f[1], &c->u.kv.key, &c->u.kv.klen) ||
            !get_bin(&f[2], &c->u.kv.value, &c->u.kv.vlen) || !get_bool(&f[3], &c->u.kv.has_cas) ||
            !get_u64(&f[4], &c->u.kv.cas)) {
            return FL_EDECODE;
        }
        return FL_OK;
    case FSM_CMD_KV_DEL:
        if (n < 4 || !get_str(&f[1], &c->u.kv.key, &c->u.kv.klen) ||
            !get_bool(&f[2], &c->u.kv.has_cas) || !get_u64(&f[3], &c->u.kv.cas)) {
            return FL_EDECODE;
        }
        return FL_OK;
    case FSM_CMD_TASK_SUBMIT:
        return decode_task(f, n, c);
    case FSM_CMD_TASK_CANCEL:
        return n >= 2 && get_str(&f[1], &c->u.task.id, &c->u.task.idlen) ? FL_OK : FL_EDECODE;
    case FSM_CMD_UNIT_ASSIGN:
    case FSM_CMD_UNIT_RESULT:
    case FSM_CMD_UNIT_REQUEUE:
        return decode_unit(f, n, c);
    case FSM_CMD_DISPATCH:
        return n >= 2 && get_bool(&f[1], &c->u.dispatch.paused) ? FL_OK : FL_EDECODE;
    case FSM_CMD_SESSION_CREATE:
    case FSM_CMD_SESSION_RENEW:
    case FSM_CMD_SESSION_DESTROY:
    case FSM_CMD_SESSION_EXPIRE:
    case FSM_CMD_LEASE_EXTEND:
    case FSM_CMD_LOCK_ACQUIRE:
    case FSM_CMD_LOCK_RELEASE:
    case FSM_CMD_LOCK_UNWAIT:
    case FSM_CMD_LOCK_WAKE:
        return fsm__lock_decode(f, n, c);
    case FSM_CMD_JOB_PUT:
    case FSM_CMD_JOB_DEL:
    case FSM_CMD_JOB_PAUSE:
    case FSM_CMD_JOB_FIRE:
        return fsm__job_decode(f, n, c);
    case FSM_CMD_ACL_BOOTSTRAP:
    case FSM_CMD_TOKEN_CREATE:
    case FSM_CMD_TOKEN_DELETE:
        return fsm__acl_decode(f, n, c);
    case FSM_CMD_AGENT_KEY_SET:
    case FSM_CMD_AGENT_KEY_APPROVE:
    case FSM_CMD_AGENT_KEY_FORGET:
        return fsm__agentkey_decode(f, n, c);
    case FSM_CMD_PACKAGE_PUT:
    case FSM_CMD_PACKAGE_RM:
        return fsm__package_decode(f, n, c);
    case FSM_CMD_META_INIT:
        if (n < 3 || !get_str(&f[1], &c->u.meta.name, &c->u.meta.nlen) ||
            !get_str(&f[2], &c->u.meta.value, &c->u.meta.vlen)) {
            return FL_EDECODE;
        }
        return FL_OK;
    default:
        return decode_node(f, n, c->type, c);
    }
}

int fsm_entry_cmd(const struct fsm_entry *e, unsigned i, struct fsm_cmd *c)
{
    memset(c, 0, sizeof *c);
    if (i >= e->n_cmds) {
        return FL_EINVAL;
    }
    return decode_cmd(&e->cmds[i], 0, c);
}

int fsm_cmd_decode_one(const void *data, size_t len, msgpack_unpacked *u, struct fsm_cmd *out)
{
    struct fsm_entry e;
    size_t used = 0, off = 0;
    msgpack_unpacked_init(u);
    memset(out, 0, sizeof *out);
    if (fl_mpcheck(data, len, 8, &used) != FL_OK || used != len ||
        msgpack_unpack_next(u, data, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        return FL_EDECODE;
    }
    memset(&e, 0, sizeof e);
    e.n_cmds = 1;
    e.cmds = &u->data;
    return fsm_entry_cmd(&e, 0, out);
}
