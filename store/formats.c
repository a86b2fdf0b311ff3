/* store/ — the formats of the replicated records: one field table each, run
 * by the engine of schema/ (encoder, total decoder, validator).
 *
 * A record is a msgpack array [format, field...]. The order of a table is the
 * order on the wire, and it is part of the snapshot and log formats
 * (tests/corpus/v1 holds records written by older code; test_corpus checks
 * they still read the same). A new field is appended with .since = the new
 * format, the format's version is raised, and older records read it as zero;
 * nothing is ever reordered or removed (docs/STORE.md, "Records").
 *
 * Signed integers are carried offset by 2^31 (SCHEMA_INT_OFS) so that every
 * number in a record is unsigned; bools and small enums live in an int. */
#include <stddef.h>
#include <string.h>

#include "store/store_int.h"

#define U(st, fld, ...)            SCHEMA_F_UINT(st, fld, 0, 0, __VA_ARGS__)
#define ENUM(st, fld, lo, hi, ...) SCHEMA_F_UINT(st, fld, lo, hi, __VA_ARGS__)
#define CHARS(st, fld, lo, ...)    SCHEMA_F_CHARS(st, fld, lo, __VA_ARGS__)
#define BOOL(st, fld, ...)         SCHEMA_F_BOOL(st, fld, __VA_ARGS__)
#define BIN(st, fld, nfld, hi)     SCHEMA_F_BIN(st, fld, nfld, 1, hi)

/* ---- KV: [1, value, version, create_index, mtime_ms] ---------------------- */

static const struct schema_field kv_fields[] = {
    BIN(store_kv, value, vlen, STORE_KV_MAX_VALUE),
    U(store_kv, version),
    U(store_kv, create_index),
    U(store_kv, mtime_ms),
};
const struct schema store__fmt_kv = {
    "kv", SCHEMA_TABLE(kv_fields), sizeof(struct store_kv), 1, 1, 1, NULL};

/* ---- NODES ----------------------------------------------------------------- */

static const struct schema_field label_elem = SCHEMA_E_CHARS(STORE_NODE_LABEL_MAX, 0, NULL);

static const struct schema_field node_fields[] = {
    CHARS(store_node, id, 1),
    U(store_node, raft_id),
    CHARS(store_node, raft_addr, 0),
    CHARS(store_node, api_addr, 0),
    ENUM(store_node, kind, STORE_NODE_SERVER, STORE_NODE_AGENT),
    SCHEMA_F_INLINE(store_node, labels, n_labels, &label_elem),
    U(store_node, cap),
    BOOL(store_node, drain),
    U(store_node, created_index),
    U(store_node, updated_index),
    /* format 2 */
    U(store_node, running, .since = 2),
    CHARS(store_node, agent_addr, 0, .since = 2),
    BOOL(store_node, lost, .since = 2),
    /* format 3 */
    CHARS(store_node, blob_addr, 0, .since = 3),
};
const struct schema store__fmt_node = {
    "node", SCHEMA_TABLE(node_fields), sizeof(struct store_node), 3, 1, 1, NULL};

/* ---- TASKS ----------------------------------------------------------------- */

static const struct schema_field status_count_elem = SCHEMA_E_UINT(uint32_t, 0, 0);

static const struct schema_field task_fields[] = {
    CHARS(store_task, id, 1),
    CHARS(store_task, name, 0),
    ENUM(store_task, state, 0, STORE_TASK_CANCELLED),
    SCHEMA_F_INT_OFS(store_task, priority),
    U(store_task, seq),
    U(store_task, unit_size),
    U(store_task, n_hosts),
    U(store_task, n_units),
    U(store_task, timeout_ms),
    U(store_task, retries),
    SCHEMA_F_INLINE(store_task, constraints, n_constraints, &label_elem),
    BIN(store_task, spec, spec_len, 0),
    U(store_task, created_ms),
    U(store_task, finished_ms),
    BOOL(store_task, cancel_requested),
    U(store_task, units_queued),
    U(store_task, units_running),
    U(store_task, units_done),
    SCHEMA_F_FIXED(store_task, hosts_by_status, &status_count_elem),
    U(store_task, stale_results),
    /* format 2: rollout controls */
    U(store_task, max_running, .since = 2),
    U(store_task, fail_stop, .since = 2),
    ENUM(store_task, placement, 0, 1, .since = 2),
    BOOL(store_task, stopped, .since = 2),
};
const struct schema store__fmt_task = {
    "task", SCHEMA_TABLE(task_fields), sizeof(struct store_task), 2, 1, 1, NULL};

/* ---- UNITS ----------------------------------------------------------------- */

/* The hosts are NUL-terminated one after the other: the blob ends with one. */
static int unit_check(const void *obj, int sending, char *errmsg)
{
    const struct store_unit *u = obj;
    if (u->hosts_len > 0 && u->hosts[u->hosts_len - 1] != '\0') {
        return fl_errf(errmsg, FL_EINVAL, "unit.hosts: the last host has no NUL");
    }
    return FL_OK;
}

static const struct schema_field unit_fields[] = {
    ENUM(store_unit, state, STORE_UNIT_QUEUED, STORE_UNIT_DONE),
    U(store_unit, attempt),
    U(store_unit, token),
    U(store_unit, retries_left),
    CHARS(store_unit, node, 0),
    CHARS(store_unit, last_node, 0),
    U(store_unit, not_before_ms),
    U(store_unit, assigned_ms),
    U(store_unit, finished_ms),
    ENUM(store_unit, status, 0, STORE_ST__MAX - 1),
    SCHEMA_F_INT_OFS(store_unit, exit_code),
    BOOL(store_unit, cancel),
    ENUM(store_unit, n_hosts, 0, STORE_UNIT_HOSTS_MAX),
    BIN(store_unit, hosts, hosts_len, 0),
};
const struct schema store__fmt_unit = {
    "unit", SCHEMA_TABLE(unit_fields), sizeof(struct store_unit), 1, 1, 1, unit_check};

/* ---- RESULTS --------------------------------------------------------------- */

static const struct schema_field result_fields[] = {
    ENUM(store_result, status, 0, STORE_ST__MAX - 1),
    SCHEMA_F_INT_OFS(store_result, rc),
    U(store_result, attempt),
    U(store_result, token),
    CHARS(store_result, node, 0),
    U(store_result, finished_ms),
    BIN(store_result, tail, tail_len, STORE_TAIL_MAX),
};
const struct schema store__fmt_result = {
    "result", SCHEMA_TABLE(result_fields), sizeof(struct store_result), 1, 1, 1, NULL};

/* ---- SESSIONS --------------------------------------------------------------- */

/* A token's accessor: lowercase hex. */
static int owner_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static const struct schema_field session_fields[] = {
    CHARS(store_session, id, 1),
    CHARS(store_session, name, 0),
    U(store_session, ttl_ms),
    U(store_session, lock_delay_ms),
    U(store_session, created_ms),
    U(store_session, expires_ms),
    U(store_session, renewals),
    U(store_session, created_index),
    /* format 2: the last request carried out under the session */
    U(store_session, req_serial, .since = 2),
    U(store_session, req_err, .since = 2),
    U(store_session, req_version, .since = 2),
    U(store_session, req_index, .since = 2),
    CHARS(store_session, req_str, 0, .since = 2),
    /* format 3: the token that created it */
    CHARS(store_session, owner, 0, .since = 3, .valid = owner_ok),
};
/* A session without an owner (created by a command written before owners
 * were recorded) is written in format 2, as that code wrote it, so an old
 * log applies to the same digest (tests/corpus/v1). */
static uint8_t session_format(const void *obj)
{
    return ((const struct store_session *)obj)->owner[0] != '\0' ? 3 : 2;
}
const struct schema store__fmt_session = {
    "session",     SCHEMA_TABLE(session_fields), sizeof(struct store_session), 3, 1, 1, NULL,
    session_format};

/* ---- LOCKS: [1, limit, fence, delay_until_ms, holders, waiters] ---------------- */

/* [session, token, since_ms] */
static const struct schema_field slot_fields[] = {
    CHARS(store_lock_slot, session, 1),
    U(store_lock_slot, token),
    U(store_lock_slot, since_ms),
};
static const struct schema slot_schema = {
    "slot", SCHEMA_TABLE(slot_fields), sizeof(struct store_lock_slot), 0, 0, 1, NULL};
static const struct schema_field slot_elem = SCHEMA_E_TUPLE(struct store_lock_slot, &slot_schema);

static int lock_check(const void *obj, int sending, char *errmsg)
{
    const struct store_lock *l = obj;
    if (l->n_holders > l->limit) {
        return fl_errf(errmsg, FL_EINVAL, "lock: %u holders over its limit %u", l->n_holders,
                       l->limit);
    }
    return FL_OK;
}

/* Holders and waiters are allocated one by one with room for one more
 * (SCHEMA_HEAP): the apply appends without reallocating. */
static const struct schema_field lock_fields[] = {
    ENUM(store_lock, limit, 1, STORE_LOCK_HOLDERS_MAX),
    U(store_lock, fence),
    U(store_lock, delay_until_ms),
    SCHEMA_F_ARRAY(store_lock, holders, n_holders, STORE_LOCK_HOLDERS_MAX, &slot_elem,
                   .flags = SCHEMA_HEAP),
    SCHEMA_F_ARRAY(store_lock, waiters, n_waiters, STORE_LOCK_WAITERS_MAX, &slot_elem,
                   .flags = SCHEMA_HEAP),
};
const struct schema store__fmt_lock = {
    "lock", SCHEMA_TABLE(lock_fields), sizeof(struct store_lock), 1, 1, 1, lock_check};

/* ---- JOBS and RUNS ------------------------------------------------------------- */

static const struct schema_field job_fields[] = {
    CHARS(store_job, name, 1),
    ENUM(store_job, sched, STORE_JOB_CRON, STORE_JOB_EVERY),
    CHARS(store_job, expr, 0),
    CHARS(store_job, tz, 0),
    U(store_job, every_ms),
    ENUM(store_job, overlap, STORE_OVERLAP_ALLOW, STORE_OVERLAP_QUEUE),
    ENUM(store_job, mode, STORE_JOB_ONE, STORE_JOB_ALL),
    ENUM(store_job, misfire, STORE_MISFIRE_SKIP, STORE_MISFIRE_RUN_ONCE),
    U(store_job, start_deadline_ms),
    BOOL(store_job, paused),
    U(store_job, created_ms),
    U(store_job, updated_index),
    U(store_job, last_sched_ms),
    U(store_job, runs),
    U(store_job, queued),
    U(store_job, run_seq),
    BIN(store_job, active, active_len, 0),
    BIN(store_job, tmpl, tmpl_len, 0),
};
const struct schema store__fmt_job = {
    "job", SCHEMA_TABLE(job_fields), sizeof(struct store_job), 1, 1, 1, NULL};

static const struct schema_field run_fields[] = {
    U(store_run, sched_ms),  U(store_run, fired_ms),
    BOOL(store_run, manual), ENUM(store_run, outcome, STORE_RUN_STARTED, STORE_RUN_NO_NODES),
    U(store_run, missed),    U(store_run, token),
    U(store_run, replaced),  BIN(store_run, tasks, tasks_len, 0),
};
const struct schema store__fmt_run = {
    "run", SCHEMA_TABLE(run_fields), sizeof(struct store_run), 1, 1, 1, NULL};

/* ---- TOKENS ---------------------------------------------------------------------- */

static const struct schema_field ns_elem = SCHEMA_E_CHARS(STORE_TOKEN_NS_MAX, 1, NULL);

static const struct schema_field token_fields[] = {
    CHARS(store_token, accessor, 1),
    CHARS(store_token, name, 0),
    ENUM(store_token, caps, 1, STORE_CAP_ALL),
    SCHEMA_F_INLINE(store_token, ns, n_ns, &ns_elem),
    U(store_token, created_ms),
    U(store_token, created_index),
    BOOL(store_token, bootstrap),
};
const struct schema store__fmt_token = {
    "token", SCHEMA_TABLE(token_fields), sizeof(struct store_token), 1, 1, 1, NULL};

/* ---- AGENTKEYS: [1, public_key: bin(32), state, created_ms, updated_index] ---- */

static const struct schema_field agentkey_fields[] = {
    SCHEMA_F_BYTES(store_agentkey, pk),
    ENUM(store_agentkey, state, STORE_AGENTKEY_APPROVED, STORE_AGENTKEY_REVOKED),
    U(store_agentkey, created_ms),
    U(store_agentkey, updated_index),
};
const struct schema store__fmt_agentkey = {
    "agentkey", SCHEMA_TABLE(agentkey_fields), sizeof(struct store_agentkey), 1, 1, 1, NULL};

/* ---- PACKAGES -------------------------------------------------------------------- */

/* The chunk hashes cover the size exactly. */
static int package_check(const void *obj, int sending, char *errmsg)
{
    const struct store_package *p = obj;
    if (p->n_chunks != store_package_n_chunks(p->size, p->chunk_size)) {
        return fl_errf(errmsg, FL_EINVAL, "package: %u chunk hashes for %llu bytes", p->n_chunks,
                       (unsigned long long)p->size);
    }
    return FL_OK;
}

static const struct schema_field package_fields[] = {
    CHARS(store_package, name, 0),
    CHARS(store_package, version, 0),
    SCHEMA_F_BYTES(store_package, hash),
    U(store_package, size),
    ENUM(store_package, chunk_size, 1, UINT32_MAX),
    /* n_chunks BLAKE2b-256 hashes of 32 bytes */
    SCHEMA_F_BIN(store_package, chunks, n_chunks, 32, STORE_PKG_CHUNKS_MAX),
    U(store_package, created_ms),
    U(store_package, index),
    CHARS(store_package, origin, 0),
    ENUM(store_package, keep, 0, STORE_PKG_KEEP_MAX),
};
const struct schema store__fmt_package = {
    "package", SCHEMA_TABLE(package_fields), sizeof(struct store_package), 1, 1, 1, package_check};

/* ---- every table ------------------------------------------------------------ */

const struct schema *const store__formats[] = {
    &store__fmt_kv,     &store__fmt_node,    &store__fmt_task,     &store__fmt_unit,
    &store__fmt_result, &store__fmt_session, &store__fmt_lock,     &store__fmt_job,
    &store__fmt_run,    &store__fmt_token,   &store__fmt_agentkey, &store__fmt_package,
};
const size_t store__n_formats = sizeof store__formats / sizeof store__formats[0];
