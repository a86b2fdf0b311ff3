/* agentproto/ — the message tables (schema/ is the engine that runs them)
 * and the rules across fields.
 *
 * The order of a table is the order of the fields on the wire, after the
 * version and the type. Fields are only ever appended (a receiver ignores
 * trailing elements it does not know). */
#include <stddef.h>
#include <string.h>

#include "agentproto/aproto_int.h"

#define U8(st, fld, lo, hi)             SCHEMA_F_UINT(st, fld, lo, hi)
#define U(st, fld)                      SCHEMA_F_UINT(st, fld, 0, 0)
#define STR(st, fld, lo, hi, fn)        SCHEMA_F_STR(st, fld, lo, hi, .valid = (fn))
#define BIN(st, fld, nfld, hi)          SCHEMA_F_BIN(st, fld, nfld, 1, hi)
#define ARRAY(st, fld, nfld, count, el) SCHEMA_F_ARRAY(st, fld, nfld, count, el)
#define REF(st)                         SCHEMA_F_TUPLE(st, ref, &ref_schema)

/* Empty, or a valid value. */
static int addr_or_empty(const char *s, size_t n)
{
    return n == 0 || aproto__valid_addr(s, n);
}

static int host_or_empty(const char *s, size_t n)
{
    return n == 0 || aproto__valid_host(s, n);
}

static int module_or_empty(const char *s, size_t n)
{
    return n == 0 || aproto__valid_module(s, n);
}

/* [task_id, unit, attempt, token] */
static const struct schema_field ref_fields[] = {
    SCHEMA_F_CHARS(aproto_unit_ref, task_id, 1, .valid = aproto__valid_task_id),
    U(aproto_unit_ref, unit),
    U(aproto_unit_ref, attempt),
    U(aproto_unit_ref, token),
};
static const struct schema ref_schema = {
    "ref", SCHEMA_TABLE(ref_fields), sizeof(struct aproto_unit_ref), 0, 0, 0, NULL};

/* [host, status, rc, tail] */
static const struct schema_field result_fields[] = {
    STR(aproto_host_result, host, 1, APROTO_HOST_MAX, aproto__valid_host),
    U8(aproto_host_result, status, 1, APROTO__ST_MAX - 1),
    SCHEMA_F_INT(aproto_host_result, rc),
    BIN(aproto_host_result, tail, tail_len, APROTO_TAIL_MAX),
};
static const struct schema result_schema = {
    "result", SCHEMA_TABLE(result_fields), sizeof(struct aproto_host_result), 0, 0, 0, NULL};

/* Elements of the array fields. */
static const struct schema_field ref_elem = SCHEMA_E_TUPLE(struct aproto_unit_ref, &ref_schema);
static const struct schema_field result_elem =
    SCHEMA_E_TUPLE(struct aproto_host_result, &result_schema);
static const struct schema_field label_elem =
    SCHEMA_E_STR(1, APROTO_LABEL_MAX, aproto__valid_label);
static const struct schema_field host_elem = SCHEMA_E_STR(1, APROTO_HOST_MAX, aproto__valid_host);
static const struct schema_field argv_elem = SCHEMA_E_STR(0, 0, NULL);
static const struct schema_field env_elem = SCHEMA_E_STR(2, 0, aproto__valid_env);
static const struct schema_field var_elem = SCHEMA_E_STR(2, APROTO_VAR_MAX, aproto__valid_var);

static const struct schema_field hello[] = {
    STR(aproto_hello, agent_id, 1, APROTO_AGENT_ID_MAX, aproto__valid_agent_id),
    STR(aproto_hello, version, 0, APROTO_AGENT_VER_MAX, aproto__valid_printable),
    U(aproto_hello, cap),
    ARRAY(aproto_hello, labels, n_labels, APROTO_LABELS_MAX, &label_elem),
    ARRAY(aproto_hello, running, n_running, APROTO_RUNNING_MAX, &ref_elem),
    BIN(aproto_hello, auth, auth_len, APROTO_AUTH_MAX),
    U(aproto_hello, flags),
};

static const struct schema_field welcome[] = {
    SCHEMA_F_BOOL(aproto_welcome, accepted),
    STR(aproto_welcome, leader, 0, APROTO_ADDR_MAX, addr_or_empty),
    U(aproto_welcome, heartbeat_ms),
    U(aproto_welcome, lost_after_ms),
    STR(aproto_welcome, message, 0, APROTO_MESSAGE_MAX, NULL),
};

static const struct schema_field heartbeat[] = {
    U(aproto_heartbeat, seq),
    U(aproto_heartbeat, running),
};

static const struct schema_field run[] = {
    REF(aproto_run),
    ARRAY(aproto_run, hosts, n_hosts, APROTO_HOSTS_MAX, &host_elem),
    U8(aproto_run, kind, 1, 255),
    ARRAY(aproto_run, argv, argc, APROTO_ARGV_MAX, &argv_elem),
    STR(aproto_run, script, 0, 0, NULL),
    STR(aproto_run, module, 0, APROTO_MODULE_MAX, module_or_empty),
    STR(aproto_run, module_args, 0, 0, NULL),
    STR(aproto_run, playbook, 0, 0, NULL),
    U(aproto_run, sleep_ms),
    U(aproto_run, timeout_ms),
    U(aproto_run, kill_grace_ms),
    ARRAY(aproto_run, env, n_env, APROTO_ENV_MAX, &env_elem),
    ARRAY(aproto_run, inventory_vars, n_vars, APROTO_VARS_MAX, &var_elem),
};

static const struct schema_field started[] = {
    REF(aproto_started),
    SCHEMA_F_INT(aproto_started, pid),
};

static const struct schema_field log_[] = {
    REF(aproto_log),
    STR(aproto_log, host, 0, APROTO_HOST_MAX, host_or_empty),
    U8(aproto_log, stream, APROTO_STDOUT, APROTO_STDERR),
    U(aproto_log, offset),
    BIN(aproto_log, data, data_len, APROTO_LOG_DATA_MAX),
};

static const struct schema_field done[] = {
    REF(aproto_done),
    U8(aproto_done, status, 1, APROTO__ST_MAX - 1),
    SCHEMA_F_INT(aproto_done, exit_code),
    U(aproto_done, started_ms),
    U(aproto_done, finished_ms),
    ARRAY(aproto_done, results, n_results, APROTO_HOSTS_MAX, &result_elem),
};

static const struct schema_field cancel[] = {
    REF(aproto_cancel),
};

static const struct schema_field ack[] = {
    REF(aproto_ack),
    U8(aproto_ack, what, APROTO_ACK_DONE, APROTO_ACK_DONE),
};

static const struct schema_field error[] = {
    STR(aproto_error, code, 1, APROTO_ERROR_CODE_MAX, aproto__valid_error_code),
    STR(aproto_error, message, 0, APROTO_MESSAGE_MAX, NULL),
};

static int welcome_check(const void *obj, int sending, char *errmsg)
{
    const struct aproto_welcome *w = obj;
    if (w->accepted && w->leader != NULL && w->leader[0] != '\0') {
        return fl_errf(errmsg, FL_EINVAL, "welcome: an accepted agent gets no leader address");
    }
    if (w->accepted && w->heartbeat_ms == 0) {
        return fl_errf(errmsg, FL_EINVAL, "welcome: heartbeat_ms must be > 0");
    }
    return FL_OK;
}

static int empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* What each executor kind needs (DESIGN: exec runs argv, shell a script,
 * module one Ansible module, playbook the YAML text; deploy gives
 * deploy-target its arguments, "NAME@VERSION" first). */
static int run_check(const void *obj, int sending, char *errmsg)
{
    const struct aproto_run *r = obj;
    switch (r->kind) {
    case APROTO_EXEC_EXEC:
        if (r->argc == 0 || empty(r->argv[0])) {
            return fl_errf(errmsg, FL_EINVAL, "run: exec needs a non-empty argv[0]");
        }
        return FL_OK;
    case APROTO_EXEC_DEPLOY:
        if (r->argc == 0 || empty(r->argv[0])) {
            return fl_errf(errmsg, FL_EINVAL, "run: deploy needs NAME@VERSION in argv[0]");
        }
        return FL_OK;
    case APROTO_EXEC_SHELL:
        return empty(r->script) ? fl_errf(errmsg, FL_EINVAL, "run: shell needs a script") : FL_OK;
    case APROTO_EXEC_MODULE:
        return empty(r->module) ? fl_errf(errmsg, FL_EINVAL, "run: module needs a module name")
                                : FL_OK;
    case APROTO_EXEC_PLAYBOOK:
        return empty(r->playbook) ? fl_errf(errmsg, FL_EINVAL, "run: playbook needs its text")
                                  : FL_OK;
    case APROTO_EXEC_NOOP:
    case APROTO_EXEC_SLEEP:
        return FL_OK;
    default:
        /* A newer server's kind: received, the agent answers DONE error. */
        return sending ? fl_errf(errmsg, FL_EINVAL, "run: unknown executor kind %u", r->kind)
                       : FL_OK;
    }
}

/* clang-format off */
#define SCHEMA(name, st, tbl, chk) {name, SCHEMA_TABLE(tbl), sizeof(struct st), 0, 0, 0, chk}
/* clang-format on */

static const struct schema schemas[APROTO__TYPE_MAX] = {
    [APROTO_HELLO] = SCHEMA("hello", aproto_hello, hello, NULL),
    [APROTO_WELCOME] = SCHEMA("welcome", aproto_welcome, welcome, welcome_check),
    [APROTO_HEARTBEAT] = SCHEMA("heartbeat", aproto_heartbeat, heartbeat, NULL),
    [APROTO_RUN] = SCHEMA("run", aproto_run, run, run_check),
    [APROTO_STARTED] = SCHEMA("started", aproto_started, started, NULL),
    [APROTO_LOG] = SCHEMA("log", aproto_log, log_, NULL),
    [APROTO_DONE] = SCHEMA("done", aproto_done, done, NULL),
    [APROTO_CANCEL] = SCHEMA("cancel", aproto_cancel, cancel, NULL),
    [APROTO_ACK] = SCHEMA("ack", aproto_ack, ack, NULL),
    [APROTO_ERROR] = SCHEMA("error", aproto_error, error, NULL),
};

const struct schema *aproto__schema(int type)
{
    if (type <= 0 || type >= APROTO__TYPE_MAX) {
        return NULL;
    }
    return &schemas[type];
}

const char *aproto_type_name(int type)
{
    const struct schema *sc = aproto__schema(type);
    return sc != NULL ? sc->name : "unknown";
}

int aproto_msg_validate(const struct aproto_msg *m, char *errmsg)
{
    const struct schema *sc = aproto__schema(m->type);
    if (sc == NULL) {
        return fl_errf(errmsg, FL_EVERSION, "unknown message type %d", m->type);
    }
    return schema_validate(sc, &m->u, APROTO_FRAME_LIMIT, errmsg);
}
