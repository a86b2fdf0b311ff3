/* fsm/ — the field tables of the Raft commands (schema/): one table per
 * command layout drives the validator, the encoder and the decoder of every
 * command of that layout. A command on the wire is [type, field...]; the
 * fields are the table's, in table order.
 *
 * Fields a later version appended are a trailing group with a higher
 * `since`, written only when the command uses them (cmd_desc.format), so a
 * command without them encodes as it always did. The decoder reads the group
 * an array's length announces and refuses a partial group. Rules across
 * fields, and bounds whose refusal is FL_ETOOBIG, are the table's check
 * (the domain validators in lock.c, job.c, acl.c, agentkey.c, package.c).
 *
 * tests/unit/test_corpus.c holds entries written by the earlier hand-written
 * codec that must keep decoding the same; docs/STORE.md lists the layouts. */
#include <string.h>

#include "common/err.h"
#include "fsm/cmd_int.h"
#include "fsm/fsm_int.h"

/* clang-format off */
#define SZ(fld)  sizeof(((struct fsm_cmd *)0)->fld)
#define OFF(fld) (uint32_t) offsetof(struct fsm_cmd, fld)
#define UINT(nm, fld, lo, hi, ...)                                                               \
    {.name = nm, .type = SCHEMA_UINT, .size = SZ(fld), .off = OFF(fld), .min = (lo),           \
     .max = (hi), __VA_ARGS__}
#define INT(nm, fld, ...) {.name = nm, .type = SCHEMA_INT, .size = SZ(fld), .off = OFF(fld), __VA_ARGS__}
#define BOOL(nm, fld, ...) {.name = nm, .type = SCHEMA_BOOL, .size = SZ(fld), .off = OFF(fld), __VA_ARGS__}
#define STRN(nm, fld, nfld, lo, hi, ...)                                                         \
    {.name = nm, .type = SCHEMA_STRN, .n_size = SZ(nfld), .size = sizeof(const char *),         \
     .off = OFF(fld), .off_n = OFF(nfld), .min = (lo), .max = (hi), __VA_ARGS__}
#define BIN(nm, fld, nfld, hi, ...)                                                              \
    {.name = nm, .type = SCHEMA_BIN, .n_size = SZ(nfld), .size = 1, .off = OFF(fld),            \
     .off_n = OFF(nfld), .max = (hi), __VA_ARGS__}
#define ARRAY(nm, fld, nfld, hi, el, ...)                                                        \
    {.name = nm, .type = SCHEMA_ARRAY, .n_size = SZ(nfld), .size = sizeof(*((struct fsm_cmd *)0)->fld), \
     .off = OFF(fld), .off_n = OFF(nfld), .max = (hi), .elem = (el), __VA_ARGS__}
/* T *fld[N] with the lengths in lens[N] and the count in nfld. */
#define PARALLEL(nm, fld, nfld, el, ...)                                                         \
    {.name = nm, .type = SCHEMA_ARRAY, .flags = SCHEMA_INLINE, .n_size = SZ(nfld),              \
     .size = SZ(fld[0]), .off = OFF(fld), .off_n = OFF(nfld), .max = SZ(fld) / SZ(fld[0]),      \
     .elem = (el), __VA_ARGS__}
#define GAP(a, b) (uint32_t)(offsetof(struct fsm_cmd, b) - offsetof(struct fsm_cmd, a))
#define TABLE(nm, tbl, last, chk)                                                                \
    {.name = nm, SCHEMA_TABLE(tbl), .size = sizeof(struct fsm_cmd), .version = (last),          \
     .oldest = 1, .check = (chk)}
/* clang-format on */

/* ---- string checks ----------------------------------------------------------- */

/* An id (node, task, META name): printable, no spaces, no '/'. */
static int id_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '/') {
            return 0;
        }
    }
    return 1;
}

int fsm__host_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == ',') {
            return 0;
        }
    }
    return n > 0 && n < STORE_HOST_MAX;
}

static int label_ok(const char *s, size_t n)
{
    return memchr(s, '=', n) != NULL;
}

/* "applied" and "revision" are the store's own records. */
static int meta_name_ok(const char *s, size_t n)
{
    return id_ok(s, n) && !(n == 7 && memcmp(s, "applied", 7) == 0) &&
           !(n == 8 && memcmp(s, "revision", 8) == 0);
}

/* ---- rules across fields ------------------------------------------------------- */

static int check_kv(const void *obj, int sending, char *errmsg)
{
    const struct fsm_cmd *c = obj;
    (void)sending;
    if (c->type == FSM_CMD_KV_PUT && c->u.kv.vlen > STORE_KV_MAX_VALUE) {
        return fl_errf(errmsg, FL_ETOOBIG, "value is %zu bytes; the limit is %d", c->u.kv.vlen,
                       STORE_KV_MAX_VALUE);
    }
    if (c->u.kv.klen == 0) {
        return fl_errf(errmsg, FL_EINVAL, "key is empty");
    }
    if (c->u.kv.klen > STORE_KV_MAX_KEY) {
        return fl_errf(errmsg, FL_ETOOBIG, "key is %zu bytes; the limit is %d", c->u.kv.klen,
                       STORE_KV_MAX_KEY);
    }
    return FL_OK;
}

static int check_register(const void *obj, int sending, char *errmsg)
{
    const struct fsm_cmd *c = obj;
    (void)sending;
    if (c->u.node.raft_addr_len >= STORE_NODE_ADDR_MAX ||
        c->u.node.api_addr_len >= STORE_NODE_ADDR_MAX ||
        c->u.node.agent_addr_len >= STORE_NODE_ADDR_MAX ||
        c->u.node.blob_addr_len >= STORE_NODE_ADDR_MAX) {
        return fl_errf(errmsg, FL_ETOOBIG, "address too long");
    }
    if (c->u.node.kind != STORE_NODE_SERVER && c->u.node.kind != STORE_NODE_AGENT) {
        return fl_errf(errmsg, FL_EINVAL, "unknown node kind %d", c->u.node.kind);
    }
    return FL_OK;
}

static int check_task(const void *obj, int sending, char *errmsg)
{
    const struct fsm_cmd *c = obj;
    (void)sending;
    if (c->u.task.n_hosts == 0) {
        return fl_errf(errmsg, FL_EINVAL, "a task needs 1 to %d hosts", FSM_TASK_HOSTS_MAX);
    }
    if (c->u.task.spec_len > FSM_SPEC_MAX) {
        return fl_errf(errmsg, FL_ETOOBIG, "executor spec over 256 KiB");
    }
    if (c->u.task.placement == FSM_PLACE_HOST && c->u.task.unit_size != 1) {
        return fl_errf(errmsg, FL_EINVAL, "placement host needs unit_size 1");
    }
    for (uint32_t i = 0; c->u.task.placement == FSM_PLACE_HOST && i < c->u.task.n_hosts; i++) {
        /* Placed on its host: the host names the node that runs it. */
        const char *h = c->u.task.host_ptrs[i];
        size_t n = strlen(h);
        if (n >= STORE_NODE_ID_MAX || !id_ok(h, n)) {
            return fl_errf(errmsg, FL_EINVAL,
                           "host %u is not a node id (1-%d printable characters without '/')", i,
                           STORE_NODE_ID_MAX - 1);
        }
    }
    return FL_OK;
}

static int check_lock(const void *obj, int sending, char *errmsg)
{
    (void)sending;
    return fsm__lock_validate(obj, errmsg);
}

static int check_job(const void *obj, int sending, char *errmsg)
{
    (void)sending;
    return fsm__job_validate(obj, errmsg);
}

static int check_acl(const void *obj, int sending, char *errmsg)
{
    (void)sending;
    return fsm__acl_validate(obj, errmsg);
}

static int check_agentkey(const void *obj, int sending, char *errmsg)
{
    (void)sending;
    return fsm__agentkey_validate(obj, errmsg);
}

static int check_package(const void *obj, int sending, char *errmsg)
{
    (void)sending;
    return fsm__package_validate(obj, errmsg);
}

/* ---- keys, nodes, META, the dispatch switch ------------------------------------- */

static const struct schema_field kv_put_f[] = {
    STRN("key", u.kv.key, u.kv.klen, 0, 0, .since = 1),
    BIN("value", u.kv.value, u.kv.vlen, 0, .since = 1),
    BOOL("has_cas", u.kv.has_cas, .since = 1),
    UINT("cas", u.kv.cas, 0, 0, .since = 1),
};
static const struct schema kv_put_s = TABLE("kv_put", kv_put_f, 1, check_kv);

static const struct schema_field kv_del_f[] = {
    STRN("key", u.kv.key, u.kv.klen, 0, 0, .since = 1),
    BOOL("has_cas", u.kv.has_cas, .since = 1),
    UINT("cas", u.kv.cas, 0, 0, .since = 1),
};
static const struct schema kv_del_s = TABLE("kv_del", kv_del_f, 1, check_kv);

#define NODE_ID                                                                                    \
    STRN("id", u.node.id, u.node.idlen, 1, STORE_NODE_ID_MAX - 1, .valid = id_ok, .since = 1)
#define NODE_CAP_MAX 1000000

static const struct schema_field label_elem =
    SCHEMA_E_STRN(GAP(u.node.labels, u.node.label_lens), 0, STORE_NODE_LABEL_MAX - 1, label_ok);

/* agent_addr (2) and blob_addr (3) were appended; blob_addr is written only
 * when set. */
static const struct schema_field node_register_f[] = {
    NODE_ID,
    UINT("raft_id", u.node.raft_id, 0, 0, .since = 1),
    STRN("raft_addr", u.node.raft_addr, u.node.raft_addr_len, 0, 0, .since = 1),
    STRN("api_addr", u.node.api_addr, u.node.api_addr_len, 0, 0, .since = 1),
    UINT("kind", u.node.kind, 0, 255, .since = 1),
    PARALLEL("labels", u.node.labels, u.node.n_labels, &label_elem, .since = 1),
    UINT("cap", u.node.cap, 0, NODE_CAP_MAX, .since = 1),
    STRN("agent_addr", u.node.agent_addr, u.node.agent_addr_len, 0, 0, .since = 2),
    STRN("blob_addr", u.node.blob_addr, u.node.blob_addr_len, 0, 0, .since = 3),
};
static const struct schema node_register_s =
    TABLE("node_register", node_register_f, 3, check_register);

static const struct schema_field node_cap_f[] = {
    NODE_ID,
    UINT("cap", u.node.cap, 0, NODE_CAP_MAX, .since = 1),
};
static const struct schema node_cap_s = TABLE("node_cap", node_cap_f, 1, NULL);

static const struct schema_field node_drain_f[] = {
    NODE_ID,
    BOOL("drain", u.node.drain, .since = 1),
};
static const struct schema node_drain_s = TABLE("node_drain", node_drain_f, 1, NULL);

static const struct schema_field node_id_f[] = {NODE_ID};
static const struct schema node_remove_s = TABLE("node_remove", node_id_f, 1, NULL);
static const struct schema node_lost_s = TABLE("node_lost", node_id_f, 1, NULL);

static const struct schema_field meta_init_f[] = {
    STRN("name", u.meta.name, u.meta.nlen, 1, 63, .valid = meta_name_ok, .since = 1),
    STRN("value", u.meta.value, u.meta.vlen, 0, 1024, .since = 1),
};
static const struct schema meta_init_s = TABLE("meta_init", meta_init_f, 1, NULL);

static const struct schema_field dispatch_f[] = {
    BOOL("paused", u.dispatch.paused, .since = 1),
};
static const struct schema dispatch_s = TABLE("dispatch", dispatch_f, 1, NULL);

/* ---- tasks and units ------------------------------------------------------------ */

#define TASK_ID(fld, nfld)                                                                         \
    STRN("id", fld, nfld, 1, STORE_TASK_ID_MAX - 1, .valid = id_ok, .since = 1)

static const struct schema_field host_elem = SCHEMA_E_STR(1, STORE_HOST_MAX - 1, fsm__host_ok);
static const struct schema_field constraint_elem = SCHEMA_E_STRN(
    GAP(u.task.constraints, u.task.constraint_lens), 1, STORE_NODE_LABEL_MAX - 1, NULL);

/* The rollout controls (2) come as three together, written when one is set. */
static const struct schema_field task_submit_f[] = {
    TASK_ID(u.task.id, u.task.idlen),
    STRN("name", u.task.name, u.task.namelen, 0, STORE_TASK_NAME_MAX - 1, .since = 1),
    STRN("idem", u.task.idem, u.task.idemlen, 0, 127, .since = 1),
    ARRAY("hosts", u.task.host_ptrs, u.task.n_hosts, FSM_TASK_HOSTS_MAX, &host_elem, .since = 1),
    UINT("unit_size", u.task.unit_size, 1, FSM_UNIT_SIZE_MAX, .since = 1),
    UINT("timeout_ms", u.task.timeout_ms, 0, 0, .since = 1),
    UINT("retries", u.task.retries, 0, 0, .since = 1),
    INT("priority", u.task.priority, .since = 1),
    PARALLEL("constraints", u.task.constraints, u.task.n_constraints, &constraint_elem, .since = 1),
    BIN("spec", u.task.spec, u.task.spec_len, 0, .since = 1),
    UINT("max_running", u.task.max_running, 0, FSM_MAX_RUNNING_MAX, .since = 2),
    UINT("fail_stop", u.task.fail_stop, 0, FSM_TASK_HOSTS_MAX, .since = 2),
    UINT("placement", u.task.placement, 0, FSM_PLACE_HOST, .since = 2),
};
static const struct schema task_submit_s = TABLE("task_submit", task_submit_f, 2, check_task);

static const struct schema_field task_cancel_f[] = {TASK_ID(u.task.id, u.task.idlen)};
static const struct schema task_cancel_s = TABLE("task_cancel", task_cancel_f, 1, NULL);

static const struct schema_field unit_assign_f[] = {
    TASK_ID(u.unit.task, u.unit.tasklen),
    UINT("unit", u.unit.unit, 0, 0, .since = 1),
    UINT("attempt", u.unit.attempt, 0, 0, .since = 1),
    STRN("node", u.unit.node, u.unit.nodelen, 1, STORE_NODE_ID_MAX - 1, .valid = id_ok, .since = 1),
};
static const struct schema unit_assign_s = TABLE("unit_assign", unit_assign_f, 1, NULL);

static const struct schema_field unit_requeue_f[] = {
    TASK_ID(u.unit.task, u.unit.tasklen),
    UINT("unit", u.unit.unit, 0, 0, .since = 1),
    UINT("token", u.unit.token, 0, 0, .since = 1),
    UINT("status", u.unit.status, 1, STORE_ST__MAX - 1, .since = 1),
};
static const struct schema unit_requeue_s = TABLE("unit_requeue", unit_requeue_f, 1, NULL);

/* One host's outcome: [host, status, rc, tail]. */
static const struct schema_field host_result_f[] = {
    {.name = "host",
     .type = SCHEMA_STRN,
     .n_size = sizeof(size_t),
     .size = sizeof(const char *),
     .off = offsetof(struct fsm_host_result, host),
     .off_n = offsetof(struct fsm_host_result, hostlen),
     .min = 1,
     .max = STORE_HOST_MAX - 1,
     .valid = fsm__host_ok},
    {.name = "status",
     .type = SCHEMA_UINT,
     .size = sizeof(int),
     .off = offsetof(struct fsm_host_result, status),
     .min = 1,
     .max = STORE_ST__MAX - 1},
    {.name = "rc",
     .type = SCHEMA_INT,
     .size = sizeof(int32_t),
     .off = offsetof(struct fsm_host_result, rc)},
    {.name = "tail",
     .type = SCHEMA_BIN,
     .n_size = sizeof(size_t),
     .size = 1,
     .off = offsetof(struct fsm_host_result, tail),
     .off_n = offsetof(struct fsm_host_result, tail_len),
     .max = STORE_TAIL_MAX},
};
static const struct schema host_result_s = {
    .name = "host_result", SCHEMA_TABLE(host_result_f), .size = sizeof(struct fsm_host_result)};
static const struct schema_field host_result_elem =
    SCHEMA_E_TUPLE(struct fsm_host_result, &host_result_s);

static const struct schema_field unit_result_f[] = {
    TASK_ID(u.unit.task, u.unit.tasklen),
    UINT("unit", u.unit.unit, 0, 0, .since = 1),
    UINT("attempt", u.unit.attempt, 0, 0, .since = 1),
    UINT("token", u.unit.token, 0, 0, .since = 1),
    UINT("status", u.unit.status, 1, STORE_ST__MAX - 1, .since = 1),
    INT("exit_code", u.unit.exit_code, .since = 1),
    UINT("started_ms", u.unit.started_ms, 0, 0, .since = 1),
    UINT("finished_ms", u.unit.finished_ms, 0, 0, .since = 1),
    ARRAY("results", u.unit.result_ptrs, u.unit.n_results, STORE_UNIT_HOSTS_MAX, &host_result_elem,
          .since = 1),
};
static const struct schema unit_result_s = TABLE("unit_result", unit_result_f, 1, NULL);

/* ---- sessions and locks: one layout for every type -------------------------------
 * [type, session, key, name, ttl_ms, lock_delay_ms, renewals, limit, wait,
 *  token?, owner?]: the token (2, a LOCK_RELEASE of one hold) only when it is
 * set; the owner (3, a SESSION_CREATE by a token) only when it is set, with
 * the token before it (0). */

static const struct schema_field lock_f[] = {
    STRN("session", u.lock.session, u.lock.slen, 0, 0, .since = 1),
    STRN("key", u.lock.key, u.lock.klen, 0, 0, .since = 1),
    STRN("name", u.lock.name, u.lock.nlen, 0, 0, .since = 1),
    UINT("ttl_ms", u.lock.ttl_ms, 0, 0, .since = 1),
    UINT("lock_delay_ms", u.lock.lock_delay_ms, 0, 0, .since = 1),
    UINT("renewals", u.lock.renewals, 0, 0, .since = 1),
    UINT("limit", u.lock.limit, 0, 0, .since = 1),
    BOOL("wait", u.lock.wait, .since = 1),
    UINT("token", u.lock.token, 0, 0, .since = 2),
    STRN("owner", u.lock.owner, u.lock.olen, 0, 0, .since = 3),
};
static const struct schema lock_s = TABLE("lock", lock_f, 3, check_lock);

/* ---- jobs, tokens, agent keys, packages ------------------------------------------- */

static const struct schema_field job_node_elem = SCHEMA_E_STR(1, STORE_NODE_ID_MAX - 1, NULL);

/* [type, name, def, sched_ms, manual, paused, skip, missed, [nodes]] */
static const struct schema_field job_f[] = {
    STRN("name", u.job.name, u.job.nlen, 0, 0, .since = 1),
    BIN("def", u.job.def, u.job.def_len, 0, .since = 1),
    UINT("sched_ms", u.job.sched_ms, 0, 0, .since = 1),
    BOOL("manual", u.job.manual, .since = 1),
    BOOL("paused", u.job.paused, .since = 1),
    BOOL("skip", u.job.skip, .since = 1),
    UINT("missed", u.job.missed, 0, 0, .since = 1),
    ARRAY("nodes", u.job.node_ptrs, u.job.n_nodes, FSM_JOB_NODES_MAX, &job_node_elem, .since = 1),
};
static const struct schema job_s = TABLE("job", job_f, 1, check_job);

/* [type, hash, record, accessor] */
static const struct schema_field acl_f[] = {
    BIN("hash", u.acl.hash, u.acl.hlen, 0, .since = 1),
    BIN("record", u.acl.rec, u.acl.reclen, 0, .since = 1),
    STRN("accessor", u.acl.accessor, u.acl.alen, 0, 0, .since = 1),
};
static const struct schema acl_s = TABLE("acl", acl_f, 1, check_acl);

/* [type, agent, public_key, state] */
static const struct schema_field agentkey_f[] = {
    STRN("agent", u.agentkey.agent, u.agentkey.alen, 0, 0, .since = 1),
    BIN("public_key", u.agentkey.pk, u.agentkey.pklen, 0, .since = 1),
    UINT("state", u.agentkey.state, 0, 0, .since = 1),
};
static const struct schema agentkey_s = TABLE("agent_key", agentkey_f, 1, check_agentkey);

/* [type, name, version, record] */
static const struct schema_field package_f[] = {
    STRN("name", u.pkg.name, u.pkg.nlen, 0, 0, .since = 1),
    STRN("version", u.pkg.version, u.pkg.vlen, 0, 0, .since = 1),
    BIN("record", u.pkg.rec, u.pkg.reclen, 0, .since = 1),
};
static const struct schema package_s = TABLE("package", package_f, 1, check_package);

/* ---- the request envelope [36, session, serial, command] ------------------------ */

static const struct schema_field request_f[] = {
    STRN("session", req.session, req.slen, 0, 0, .since = 1),
    UINT("serial", req.serial, 1, 0, .since = 1),
};
const struct schema fsm__request_schema = TABLE("request", request_f, 1, NULL);

/* ---- which table, which group --------------------------------------------------- */

static uint8_t register_format(const struct fsm_cmd *c)
{
    return c->u.node.blob_addr_len > 0 ? 3 : 2;
}

static uint8_t task_format(const struct fsm_cmd *c)
{
    return c->u.task.max_running != 0 || c->u.task.fail_stop != 0 ||
                   c->u.task.placement != FSM_PLACE_ANY
               ? 2
               : 1;
}

static uint8_t lock_format(const struct fsm_cmd *c)
{
    return c->u.lock.olen > 0 ? 3 : c->u.lock.token != 0 ? 2 : 1;
}

/* A group is sent only when it is set: a format-2 command with a zero token,
 * or a format-3 one with an empty owner, is malformed. */
static int lock_decoded(const struct fsm_cmd *c, uint8_t format)
{
    if (format == 2) {
        return c->u.lock.token != 0 ? FL_OK : FL_EDECODE;
    }
    return format < 2 || c->u.lock.olen > 0 ? FL_OK : FL_EDECODE;
}

static const struct fsm_cmd_desc descs[FSM_CMD__MAX] = {
    [FSM_CMD_KV_PUT] = {&kv_put_s, NULL, NULL},
    [FSM_CMD_KV_DEL] = {&kv_del_s, NULL, NULL},
    [FSM_CMD_NODE_REGISTER] = {&node_register_s, register_format, NULL},
    [FSM_CMD_NODE_CAP] = {&node_cap_s, NULL, NULL},
    [FSM_CMD_NODE_DRAIN] = {&node_drain_s, NULL, NULL},
    [FSM_CMD_NODE_REMOVE] = {&node_remove_s, NULL, NULL},
    [FSM_CMD_META_INIT] = {&meta_init_s, NULL, NULL},
    [FSM_CMD_TASK_SUBMIT] = {&task_submit_s, task_format, NULL},
    [FSM_CMD_UNIT_ASSIGN] = {&unit_assign_s, NULL, NULL},
    [FSM_CMD_UNIT_RESULT] = {&unit_result_s, NULL, NULL},
    [FSM_CMD_UNIT_REQUEUE] = {&unit_requeue_s, NULL, NULL},
    [FSM_CMD_NODE_LOST] = {&node_lost_s, NULL, NULL},
    [FSM_CMD_TASK_CANCEL] = {&task_cancel_s, NULL, NULL},
    [FSM_CMD_DISPATCH] = {&dispatch_s, NULL, NULL},
    [FSM_CMD_SESSION_CREATE] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_SESSION_RENEW] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_SESSION_DESTROY] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_SESSION_EXPIRE] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_LEASE_EXTEND] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_LOCK_ACQUIRE] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_LOCK_RELEASE] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_LOCK_UNWAIT] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_LOCK_WAKE] = {&lock_s, lock_format, lock_decoded},
    [FSM_CMD_JOB_PUT] = {&job_s, NULL, NULL},
    [FSM_CMD_JOB_DEL] = {&job_s, NULL, NULL},
    [FSM_CMD_JOB_PAUSE] = {&job_s, NULL, NULL},
    [FSM_CMD_JOB_FIRE] = {&job_s, NULL, NULL},
    [FSM_CMD_ACL_BOOTSTRAP] = {&acl_s, NULL, NULL},
    [FSM_CMD_TOKEN_CREATE] = {&acl_s, NULL, NULL},
    [FSM_CMD_TOKEN_DELETE] = {&acl_s, NULL, NULL},
    [FSM_CMD_AGENT_KEY_SET] = {&agentkey_s, NULL, NULL},
    [FSM_CMD_AGENT_KEY_APPROVE] = {&agentkey_s, NULL, NULL},
    [FSM_CMD_AGENT_KEY_FORGET] = {&agentkey_s, NULL, NULL},
    [FSM_CMD_PACKAGE_PUT] = {&package_s, NULL, NULL},
    [FSM_CMD_PACKAGE_RM] = {&package_s, NULL, NULL},
    [FSM_CMD_AGENT_REVOKE] = {&agentkey_s, NULL, NULL},
    [FSM_CMD_AGENT_UNREVOKE] = {&agentkey_s, NULL, NULL},
};

const struct fsm_cmd_desc *fsm__cmd_desc(int type)
{
    if (type <= 0 || type >= FSM_CMD__MAX || descs[type].sc == NULL) {
        return NULL;
    }
    return &descs[type];
}
