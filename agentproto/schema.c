/* agentproto/ — the message schemas and the checks both directions share.
 *
 * The order of a table is the order of the fields on the wire, after the
 * version and the type. Fields are only ever appended (a receiver ignores
 * trailing elements it does not know). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "agentproto/aproto_int.h"

/* clang-format off */
#define U8(st, fld, lo, hi) \
    {#fld, APROTO__U8, offsetof(struct st, fld), 0, lo, hi, 0, NULL}
#define SCALAR(ft, st, fld) \
    {#fld, ft, offsetof(struct st, fld), 0, 0, 0, 0, NULL}
#define STR(st, fld, lo, hi, fn) \
    {#fld, APROTO__STR, offsetof(struct st, fld), 0, lo, hi, 0, fn}
#define BIN(st, fld, nfld, hi) \
    {#fld, APROTO__BIN, offsetof(struct st, fld), offsetof(struct st, nfld), 0, hi, 0, NULL}
#define STRS(st, fld, nfld, count, lo, hi, fn) \
    {#fld, APROTO__STRS, offsetof(struct st, fld), offsetof(struct st, nfld), lo, count, hi, fn}
#define ARRAY(ft, st, fld, nfld, count) \
    {#fld, ft, offsetof(struct st, fld), offsetof(struct st, nfld), 0, count, 0, NULL}
/* clang-format on */
#define REF(st) SCALAR(APROTO__REF, st, ref)

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

static const struct aproto__field hello[] = {
    STR(aproto_hello, agent_id, 1, APROTO_AGENT_ID_MAX, aproto__valid_agent_id),
    STR(aproto_hello, version, 0, APROTO_AGENT_VER_MAX, aproto__valid_printable),
    SCALAR(APROTO__U32, aproto_hello, cap),
    STRS(aproto_hello, labels, n_labels, APROTO_LABELS_MAX, 1, APROTO_LABEL_MAX,
         aproto__valid_label),
    ARRAY(APROTO__REFS, aproto_hello, running, n_running, APROTO_RUNNING_MAX),
    BIN(aproto_hello, auth, auth_len, APROTO_AUTH_MAX),
    SCALAR(APROTO__U32, aproto_hello, flags),
};

static const struct aproto__field welcome[] = {
    SCALAR(APROTO__BOOL, aproto_welcome, accepted),
    STR(aproto_welcome, leader, 0, APROTO_ADDR_MAX, addr_or_empty),
    SCALAR(APROTO__U32, aproto_welcome, heartbeat_ms),
    SCALAR(APROTO__U32, aproto_welcome, lost_after_ms),
    STR(aproto_welcome, message, 0, APROTO_MESSAGE_MAX, NULL),
};

static const struct aproto__field heartbeat[] = {
    SCALAR(APROTO__U64, aproto_heartbeat, seq),
    SCALAR(APROTO__U32, aproto_heartbeat, running),
};

static const struct aproto__field run[] = {
    REF(aproto_run),
    STRS(aproto_run, hosts, n_hosts, APROTO_HOSTS_MAX, 1, APROTO_HOST_MAX, aproto__valid_host),
    U8(aproto_run, kind, 1, 255),
    STRS(aproto_run, argv, argc, APROTO_ARGV_MAX, 0, 0, NULL),
    STR(aproto_run, script, 0, 0, NULL),
    STR(aproto_run, module, 0, APROTO_MODULE_MAX, module_or_empty),
    STR(aproto_run, module_args, 0, 0, NULL),
    STR(aproto_run, playbook, 0, 0, NULL),
    SCALAR(APROTO__U32, aproto_run, sleep_ms),
    SCALAR(APROTO__U32, aproto_run, timeout_ms),
    SCALAR(APROTO__U32, aproto_run, kill_grace_ms),
    STRS(aproto_run, env, n_env, APROTO_ENV_MAX, 2, 0, aproto__valid_env),
    STRS(aproto_run, inventory_vars, n_vars, APROTO_VARS_MAX, 2, APROTO_VAR_MAX, aproto__valid_var),
};

static const struct aproto__field started[] = {
    REF(aproto_started),
    SCALAR(APROTO__I32, aproto_started, pid),
};

static const struct aproto__field log_[] = {
    REF(aproto_log),
    STR(aproto_log, host, 0, APROTO_HOST_MAX, host_or_empty),
    U8(aproto_log, stream, APROTO_STDOUT, APROTO_STDERR),
    SCALAR(APROTO__U64, aproto_log, offset),
    BIN(aproto_log, data, data_len, APROTO_LOG_DATA_MAX),
};

static const struct aproto__field done[] = {
    REF(aproto_done),
    U8(aproto_done, status, 1, APROTO__ST_MAX - 1),
    SCALAR(APROTO__I32, aproto_done, exit_code),
    SCALAR(APROTO__U64, aproto_done, started_ms),
    SCALAR(APROTO__U64, aproto_done, finished_ms),
    ARRAY(APROTO__RESULTS, aproto_done, results, n_results, APROTO_HOSTS_MAX),
};

static const struct aproto__field cancel[] = {
    REF(aproto_cancel),
};

static const struct aproto__field ack[] = {
    REF(aproto_ack),
    U8(aproto_ack, what, APROTO_ACK_DONE, APROTO_ACK_DONE),
};

static const struct aproto__field error[] = {
    STR(aproto_error, code, 1, APROTO_ERROR_CODE_MAX, aproto__valid_error_code),
    STR(aproto_error, message, 0, APROTO_MESSAGE_MAX, NULL),
};

static int welcome_check(const struct aproto_msg *m, int sending, char *errmsg)
{
    const struct aproto_welcome *w = &m->u.welcome;
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
static int run_check(const struct aproto_msg *m, int sending, char *errmsg)
{
    const struct aproto_run *r = &m->u.run;
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
#define SCHEMA(name, tbl, chk) {name, tbl, sizeof tbl / sizeof tbl[0], chk}
/* clang-format on */

static const struct aproto__schema schemas[APROTO__TYPE_MAX] = {
    [APROTO_HELLO] = SCHEMA("hello", hello, NULL),
    [APROTO_WELCOME] = SCHEMA("welcome", welcome, welcome_check),
    [APROTO_HEARTBEAT] = SCHEMA("heartbeat", heartbeat, NULL),
    [APROTO_RUN] = SCHEMA("run", run, run_check),
    [APROTO_STARTED] = SCHEMA("started", started, NULL),
    [APROTO_LOG] = SCHEMA("log", log_, NULL),
    [APROTO_DONE] = SCHEMA("done", done, NULL),
    [APROTO_CANCEL] = SCHEMA("cancel", cancel, NULL),
    [APROTO_ACK] = SCHEMA("ack", ack, NULL),
    [APROTO_ERROR] = SCHEMA("error", error, NULL),
};

const struct aproto__schema *aproto__schema(int type)
{
    if (type <= 0 || type >= APROTO__TYPE_MAX) {
        return NULL;
    }
    return &schemas[type];
}

const char *aproto_type_name(int type)
{
    const struct aproto__schema *sc = aproto__schema(type);
    return sc != NULL ? sc->name : "unknown";
}

/* ---- checks ------------------------------------------------------------ */

static const char *idx_str(char *buf, size_t size, long idx)
{
    if (idx < 0) {
        buf[0] = '\0';
    } else {
        snprintf(buf, size, "[%ld]", idx);
    }
    return buf;
}

int aproto__check_str(const struct aproto__schema *sc, const struct aproto__field *f, const char *s,
                      size_t n, uint32_t min, uint32_t max, long idx, char *errmsg)
{
    char ib[24];
    if (max == 0 && n > APROTO_FRAME_LIMIT) {
        return fl_errf(errmsg, FL_ETOOBIG, "%s.%s%s: longer than a frame", sc->name, f->name,
                       idx_str(ib, sizeof ib, idx));
    }
    if (n < min || (max != 0 && n > max)) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: length %zu not in %u..%u", sc->name, f->name,
                       idx_str(ib, sizeof ib, idx), n, min, max);
    }
    if (memchr(s, '\0', n) != NULL) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: contains a NUL byte", sc->name, f->name,
                       idx_str(ib, sizeof ib, idx));
    }
    if (f->valid != NULL && !f->valid(s, n)) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s%s: malformed", sc->name, f->name,
                       idx_str(ib, sizeof ib, idx));
    }
    return FL_OK;
}

int aproto__check_ref(const struct aproto__schema *sc, const char *task_id, size_t n, char *errmsg)
{
    if (memchr(task_id, '\0', n) != NULL || !aproto__valid_task_id(task_id, n)) {
        return fl_errf(errmsg, FL_EINVAL, "%s: bad task id in a unit ref", sc->name);
    }
    return FL_OK;
}

int aproto__check_result(const struct aproto__schema *sc, const struct aproto__field *f,
                         const struct aproto_host_result *hr, long idx, char *errmsg)
{
    if (hr->host == NULL || !aproto__valid_host(hr->host, strlen(hr->host))) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s[%ld]: bad host", sc->name, f->name, idx);
    }
    if (hr->status < 1 || hr->status >= APROTO__ST_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s[%ld]: bad status %u", sc->name, f->name, idx,
                       hr->status);
    }
    if (hr->tail_len > APROTO_TAIL_MAX || (hr->tail == NULL && hr->tail_len > 0)) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s[%ld]: tail over %d bytes", sc->name, f->name, idx,
                       APROTO_TAIL_MAX);
    }
    return FL_OK;
}

int aproto__check_count(const struct aproto__schema *sc, const struct aproto__field *f, uint64_t n,
                        char *errmsg)
{
    if (n > f->max) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s: %llu elements, at most %u", sc->name, f->name,
                       (unsigned long long)n, f->max);
    }
    return FL_OK;
}

int aproto__check_u8(const struct aproto__schema *sc, const struct aproto__field *f, uint64_t v,
                     char *errmsg)
{
    if (v < f->min || v > f->max) {
        return fl_errf(errmsg, FL_EINVAL, "%s.%s: %llu not in %u..%u", sc->name, f->name,
                       (unsigned long long)v, f->min, f->max);
    }
    return FL_OK;
}

/* ---- validation of a message to send ---------------------------------- */

static int check_strs(const struct aproto__schema *sc, const struct aproto__field *f,
                      const uint8_t *base, char *errmsg)
{
    const char *const *a = *(const char *const *const *)(base + f->off);
    uint32_t n = *(const uint32_t *)(base + f->off_n);
    int rv = aproto__check_count(sc, f, n, errmsg);
    if (rv == FL_OK && a == NULL && n > 0) {
        rv = fl_errf(errmsg, FL_EINVAL, "%s.%s: NULL array", sc->name, f->name);
    }
    for (uint32_t i = 0; rv == FL_OK && i < n; i++) {
        if (a[i] == NULL) {
            return fl_errf(errmsg, FL_EINVAL, "%s.%s[%u]: NULL", sc->name, f->name, i);
        }
        rv = aproto__check_str(sc, f, a[i], strlen(a[i]), f->min, f->elem_max, (long)i, errmsg);
    }
    return rv;
}

static int check_ref(const struct aproto__schema *sc, const struct aproto_unit_ref *ref,
                     char *errmsg)
{
    return aproto__check_ref(sc, ref->task_id, strnlen(ref->task_id, sizeof ref->task_id), errmsg);
}

static int check_array(const struct aproto__schema *sc, const struct aproto__field *f,
                       const uint8_t *base, char *errmsg)
{
    const void *a = *(const void *const *)(base + f->off);
    uint32_t n = *(const uint32_t *)(base + f->off_n);
    int rv = aproto__check_count(sc, f, n, errmsg);
    if (rv == FL_OK && a == NULL && n > 0) {
        rv = fl_errf(errmsg, FL_EINVAL, "%s.%s: NULL array", sc->name, f->name);
    }
    for (uint32_t i = 0; rv == FL_OK && i < n; i++) {
        if (f->ft == APROTO__REFS) {
            rv = check_ref(sc, &((const struct aproto_unit_ref *)a)[i], errmsg);
        } else {
            rv = aproto__check_result(sc, f, &((const struct aproto_host_result *)a)[i], (long)i,
                                      errmsg);
        }
    }
    return rv;
}

static int check_field(const struct aproto__schema *sc, const struct aproto__field *f,
                       const uint8_t *base, char *errmsg)
{
    const char *s;
    switch (f->ft) {
    case APROTO__U8:
        return aproto__check_u8(sc, f, *(const uint8_t *)(base + f->off), errmsg);
    case APROTO__STR:
        s = *(const char *const *)(base + f->off);
        s = s != NULL ? s : "";
        return aproto__check_str(sc, f, s, strlen(s), f->min, f->max, -1, errmsg);
    case APROTO__BIN:
        if (*(const uint32_t *)(base + f->off_n) > f->max ||
            (*(const uint8_t *const *)(base + f->off) == NULL &&
             *(const uint32_t *)(base + f->off_n) > 0)) {
            return fl_errf(errmsg, FL_EINVAL, "%s.%s: over %u bytes", sc->name, f->name, f->max);
        }
        return FL_OK;
    case APROTO__STRS:
        return check_strs(sc, f, base, errmsg);
    case APROTO__REF:
        return check_ref(sc, (const struct aproto_unit_ref *)(base + f->off), errmsg);
    case APROTO__REFS:
    case APROTO__RESULTS:
        return check_array(sc, f, base, errmsg);
    default: /* U32, U64, I32, BOOL: every value of the C type is valid */
        return FL_OK;
    }
}

int aproto_msg_validate(const struct aproto_msg *m, char *errmsg)
{
    const struct aproto__schema *sc = aproto__schema(m->type);
    const uint8_t *base = (const uint8_t *)&m->u;
    if (sc == NULL) {
        return fl_errf(errmsg, FL_EVERSION, "unknown message type %d", m->type);
    }
    for (unsigned i = 0; i < sc->n_fields; i++) {
        int rv = check_field(sc, &sc->fields[i], base, errmsg);
        if (rv != FL_OK) {
            return rv;
        }
    }
    return sc->check != NULL ? sc->check(m, 1, errmsg) : FL_OK;
}
