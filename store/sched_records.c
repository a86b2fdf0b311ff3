/* store/ — records of the scheduling tables: tasks, units, results, and the
 * keys of the index tables (docs/SCHEDULER.md).
 *
 * Values are msgpack arrays led by a format version, written with msgpack-c
 * into an fl_buf and read back with the total reader of common/mpread.c, like the
 * records in records.c. Signed integers are stored offset by 2^31 so the
 * reader's unsigned integers carry them. */
#include <msgpack.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "store/store.h"
#include "store/store_int.h"

#define TASK_FORMAT   2
#define TASK_FIELDS_1 21
#define TASK_FIELDS   25
#define UNIT_FORMAT   1
#define UNIT_FIELDS   15
#define RESULT_FORMAT 1
#define RESULT_FIELDS 8
#define OFFSET        2147483648LL

static const char *status_names[STORE_ST__MAX] = {
    "none", "ok", "failed", "timeout", "cancelled", "error", "unreachable", "lost",
};

const char *store_status_name(int status)
{
    if (status < 0 || status >= STORE_ST__MAX) {
        return "unknown";
    }
    return status_names[status];
}

static int i32_field(struct fl_mp *r, int32_t *v)
{
    uint64_t x;
    if (fl_mp_uint(r, &x) != FL_OK || x > UINT32_MAX) {
        return FL_EDECODE;
    }
    *v = (int32_t)((int64_t)x - OFFSET);
    return FL_OK;
}

static int small_field(struct fl_mp *r, int *v, int max)
{
    uint64_t x;
    if (fl_mp_uint(r, &x) != FL_OK || x > (uint64_t)max) {
        return FL_EDECODE;
    }
    *v = (int)x;
    return FL_OK;
}

static int corrupt(struct store_txn *t, int rv, const char *what)
{
    return fl_errf(t->s->errmsg, FL_ECORRUPT, "%s record does not decode (%s)", what,
                   fl_errname(rv));
}

/* ---- tasks -------------------------------------------------------------- */

static int task_encode(struct fl_buf *b, const struct store_task *k)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, TASK_FIELDS) | msgpack_pack_uint64(&pk, TASK_FORMAT) |
        store__pack_str(&pk, k->id) | store__pack_str(&pk, k->name) |
        msgpack_pack_uint64(&pk, (uint64_t)k->state) |
        msgpack_pack_uint64(&pk, (uint64_t)((int64_t)k->priority + OFFSET)) |
        msgpack_pack_uint64(&pk, k->seq) | msgpack_pack_uint64(&pk, k->unit_size) |
        msgpack_pack_uint64(&pk, k->n_hosts) | msgpack_pack_uint64(&pk, k->n_units) |
        msgpack_pack_uint64(&pk, k->timeout_ms) | msgpack_pack_uint64(&pk, k->retries) |
        msgpack_pack_array(&pk, k->n_constraints);
    for (unsigned i = 0; i < k->n_constraints; i++) {
        r |= store__pack_str(&pk, k->constraints[i]);
    }
    r |= store__pack_bin(&pk, k->spec, k->spec_len) | msgpack_pack_uint64(&pk, k->created_ms) |
         msgpack_pack_uint64(&pk, k->finished_ms) | store__pack_bool(&pk, k->cancel_requested) |
         msgpack_pack_uint64(&pk, k->units_queued) | msgpack_pack_uint64(&pk, k->units_running) |
         msgpack_pack_uint64(&pk, k->units_done) | msgpack_pack_array(&pk, STORE_ST__MAX);
    for (int i = 0; i < STORE_ST__MAX; i++) {
        r |= msgpack_pack_uint64(&pk, k->hosts_by_status[i]);
    }
    r |= msgpack_pack_uint64(&pk, k->stale_results) | msgpack_pack_uint64(&pk, k->max_running) |
         msgpack_pack_uint64(&pk, k->fail_stop) | msgpack_pack_uint64(&pk, (uint64_t)k->placement) |
         store__pack_bool(&pk, k->stopped);
    return r ? FL_ENOMEM : FL_OK;
}

static int digits(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9')) {
        return -1;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (max - (uint64_t)(*s - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return 0;
}

int store_job_ref_parse(const char *name, struct store_job_ref *r)
{
    const char *at, *p;
    uint64_t sched, idx, total;
    memset(r, 0, sizeof *r);
    if (strncmp(name, "job:", 4) != 0 || (at = strrchr(name, '@')) == NULL || at == name + 4 ||
        (size_t)(at - name - 4) >= sizeof r->job) {
        return FL_ENOTFOUND;
    }
    p = at + 1;
    if (digits(&p, UINT64_MAX, &sched) || *p++ != '#' || digits(&p, UINT32_MAX, &idx) ||
        *p++ != '/' || digits(&p, UINT32_MAX, &total) || *p != '\0' || idx >= total) {
        return FL_ENOTFOUND;
    }
    memcpy(r->job, name + 4, (size_t)(at - name - 4));
    r->sched_ms = sched;
    r->index = (uint32_t)idx;
    r->total = (uint32_t)total;
    return FL_OK;
}

int store_job_ref_name(const struct store_job_ref *r, char *out, size_t cap)
{
    int n = snprintf(out, cap, "job:%s@%llu#%u/%u", r->job, (unsigned long long)r->sched_ms,
                     r->index, r->total);
    return n < 0 || (size_t)n >= cap ? FL_EINVAL : FL_OK;
}

int store_task_decode(const void *val, size_t vlen, struct store_task *k)
{
    /* Format 1 had 21 fields; format 2 appends max_running, fail_stop,
     * placement and stopped (zeros in a format-1 record). */
    static const uint32_t fields[TASK_FORMAT] = {TASK_FIELDS_1, TASK_FIELDS};
    struct fl_mp r;
    uint64_t format;
    size_t n;
    uint32_t nc;
    int rv;
    memset(k, 0, sizeof *k);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header_formats(&r, fields, TASK_FORMAT, &format)) != FL_OK) {
        return rv;
    }
    if (store__str_field(&r, k->id, sizeof k->id) || k->id[0] == '\0' ||
        store__str_field(&r, k->name, sizeof k->name) ||
        small_field(&r, &k->state, STORE_TASK_CANCELLED) || i32_field(&r, &k->priority) ||
        fl_mp_uint(&r, &k->seq) || store__u32_field(&r, &k->unit_size) ||
        store__u32_field(&r, &k->n_hosts) || store__u32_field(&r, &k->n_units) ||
        store__u32_field(&r, &k->timeout_ms) || store__u32_field(&r, &k->retries) ||
        fl_mp_array(&r, &nc) || nc > STORE_TASK_CONSTRAINTS) {
        return FL_EDECODE;
    }
    k->n_constraints = nc;
    for (uint32_t i = 0; i < nc; i++) {
        if (store__str_field(&r, k->constraints[i], STORE_NODE_LABEL_MAX)) {
            return FL_EDECODE;
        }
    }
    if (fl_mp_bin(&r, &k->spec, &n) || fl_mp_uint(&r, &k->created_ms) ||
        fl_mp_uint(&r, &k->finished_ms) || store__mp_bool(&r, &k->cancel_requested) ||
        store__u32_field(&r, &k->units_queued) || store__u32_field(&r, &k->units_running) ||
        store__u32_field(&r, &k->units_done) || fl_mp_array(&r, &nc) || nc != STORE_ST__MAX) {
        return FL_EDECODE;
    }
    k->spec_len = n;
    for (int i = 0; i < STORE_ST__MAX; i++) {
        if (store__u32_field(&r, &k->hosts_by_status[i])) {
            return FL_EDECODE;
        }
    }
    if (fl_mp_uint(&r, &k->stale_results)) {
        return FL_EDECODE;
    }
    store_job_ref_parse(k->name, &k->job);
    if (format >= 2 &&
        (store__u32_field(&r, &k->max_running) || store__u32_field(&r, &k->fail_stop) ||
         small_field(&r, &k->placement, 1) || store__mp_bool(&r, &k->stopped))) {
        return FL_EDECODE;
    }
    return fl_mp_end(&r) ? FL_EDECODE : FL_OK;
}

int store_task_get(struct store_txn *t, const char *id, struct store_task *out)
{
    const void *v;
    size_t vl, kl = strlen(id);
    int rv;
    if (kl == 0 || kl >= STORE_TASK_ID_MAX) {
        return FL_ENOTFOUND;
    }
    rv = store_get(t, STORE_TASKS, id, kl, &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_task_decode(v, vl, out);
    return rv == FL_OK ? FL_OK : corrupt(t, rv, "task");
}

int store_task_put(struct store_txn *t, const struct store_task *k)
{
    struct fl_buf b;
    size_t kl = strnlen(k->id, sizeof k->id);
    if (kl == 0 || kl >= sizeof k->id || k->n_constraints > STORE_TASK_CONSTRAINTS) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "bad task record");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_TASKS, k->id, kl, &b, task_encode(&b, k));
}

/* ---- units -------------------------------------------------------------- */

size_t store_unit_key(char *out, const char *id, uint32_t unit)
{
    size_t n = strnlen(id, STORE_TASK_ID_MAX - 1);
    memcpy(out, id, n);
    out[n] = '/';
    store__put_be32((uint8_t *)out + n + 1, unit);
    return n + 5;
}

static int unit_encode(struct fl_buf *b, const struct store_unit *u)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, store__buf_write);
    if (fl_buf_reserve(b, u->hosts_len + 128) != FL_OK) {
        return FL_ENOMEM;
    }
    return (msgpack_pack_array(&pk, UNIT_FIELDS) | msgpack_pack_uint64(&pk, UNIT_FORMAT) |
            msgpack_pack_uint64(&pk, (uint64_t)u->state) | msgpack_pack_uint64(&pk, u->attempt) |
            msgpack_pack_uint64(&pk, u->token) | msgpack_pack_uint64(&pk, u->retries_left) |
            store__pack_str(&pk, u->node) | store__pack_str(&pk, u->last_node) |
            msgpack_pack_uint64(&pk, u->not_before_ms) | msgpack_pack_uint64(&pk, u->assigned_ms) |
            msgpack_pack_uint64(&pk, u->finished_ms) |
            msgpack_pack_uint64(&pk, (uint64_t)u->status) |
            msgpack_pack_uint64(&pk, (uint64_t)((int64_t)u->exit_code + OFFSET)) |
            store__pack_bool(&pk, u->cancel) | msgpack_pack_uint64(&pk, u->n_hosts) |
            store__pack_bin(&pk, u->hosts, u->hosts_len))
               ? FL_ENOMEM
               : FL_OK;
}

int store_unit_decode(const void *val, size_t vlen, struct store_unit *u)
{
    struct fl_mp r;
    size_t n;
    int rv;
    memset(u, 0, sizeof *u);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, UNIT_FORMAT, UNIT_FIELDS)) != FL_OK) {
        return rv;
    }
    /* n_hosts is checked by store_unit_host as it walks the hosts (each
     * host must end with a NUL inside the blob). That field precedes. */
    if (small_field(&r, &u->state, STORE_UNIT_DONE) || u->state == 0 ||
        store__u32_field(&r, &u->attempt) || fl_mp_uint(&r, &u->token) ||
        store__u32_field(&r, &u->retries_left) || store__str_field(&r, u->node, sizeof u->node) ||
        store__str_field(&r, u->last_node, sizeof u->last_node) ||
        fl_mp_uint(&r, &u->not_before_ms) || fl_mp_uint(&r, &u->assigned_ms) ||
        fl_mp_uint(&r, &u->finished_ms) || small_field(&r, &u->status, STORE_ST__MAX - 1) ||
        i32_field(&r, &u->exit_code) || store__mp_bool(&r, &u->cancel) ||
        store__u32_field(&r, &u->n_hosts) || u->n_hosts > STORE_UNIT_HOSTS_MAX ||
        fl_mp_bin(&r, &u->hosts, &n) || fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    u->hosts_len = n;
    if (n > 0 && u->hosts[n - 1] != '\0') {
        return FL_EDECODE;
    }
    return FL_OK;
}

int store_unit_host(const struct store_unit *u, size_t *pos, const char **host, size_t *len)
{
    const uint8_t *end;
    if (*pos >= u->hosts_len) {
        return FL_ENOTFOUND;
    }
    end = memchr(u->hosts + *pos, '\0', u->hosts_len - *pos);
    if (end == NULL) {
        return FL_ENOTFOUND;
    }
    *host = (const char *)u->hosts + *pos;
    *len = (size_t)(end - (u->hosts + *pos));
    *pos += *len + 1;
    return FL_OK;
}

int store_unit_get(struct store_txn *t, const char *task, uint32_t unit, struct store_unit *out)
{
    char key[STORE_TASK_ID_MAX + 5];
    const void *v;
    size_t vl, kl;
    int rv;
    if (strnlen(task, STORE_TASK_ID_MAX) >= STORE_TASK_ID_MAX || task[0] == '\0') {
        return FL_ENOTFOUND;
    }
    kl = store_unit_key(key, task, unit);
    rv = store_get(t, STORE_UNITS, key, kl, &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_unit_decode(v, vl, out);
    return rv == FL_OK ? FL_OK : corrupt(t, rv, "unit");
}

int store_unit_put(struct store_txn *t, const char *task, uint32_t unit, const struct store_unit *u)
{
    char key[STORE_TASK_ID_MAX + 5];
    struct fl_buf b;
    size_t kl;
    if (strnlen(task, STORE_TASK_ID_MAX) >= STORE_TASK_ID_MAX || task[0] == '\0' ||
        (u->hosts_len > 0 && u->hosts[u->hosts_len - 1] != '\0')) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "bad unit record");
    }
    kl = store_unit_key(key, task, unit);
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_UNITS, key, kl, &b, unit_encode(&b, u));
}

/* ---- results ------------------------------------------------------------ */

static int result_encode(struct fl_buf *b, const struct store_result *r)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, store__buf_write);
    return (msgpack_pack_array(&pk, RESULT_FIELDS) | msgpack_pack_uint64(&pk, RESULT_FORMAT) |
            msgpack_pack_uint64(&pk, (uint64_t)r->status) |
            msgpack_pack_uint64(&pk, (uint64_t)((int64_t)r->rc + OFFSET)) |
            msgpack_pack_uint64(&pk, r->attempt) | msgpack_pack_uint64(&pk, r->token) |
            store__pack_str(&pk, r->node) | msgpack_pack_uint64(&pk, r->finished_ms) |
            store__pack_bin(&pk, r->tail, r->tail_len))
               ? FL_ENOMEM
               : FL_OK;
}

int store_result_decode(const void *val, size_t vlen, struct store_result *out)
{
    struct fl_mp r;
    size_t n;
    int rv;
    memset(out, 0, sizeof *out);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, RESULT_FORMAT, RESULT_FIELDS)) != FL_OK) {
        return rv;
    }
    if (small_field(&r, &out->status, STORE_ST__MAX - 1) || i32_field(&r, &out->rc) ||
        store__u32_field(&r, &out->attempt) || fl_mp_uint(&r, &out->token) ||
        store__str_field(&r, out->node, sizeof out->node) || fl_mp_uint(&r, &out->finished_ms) ||
        fl_mp_bin(&r, &out->tail, &n) || n > STORE_TAIL_MAX || fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    out->tail_len = n;
    return FL_OK;
}

int store_result_put(struct store_txn *t, const char *task, uint32_t unit, const char *host,
                     size_t hlen, const struct store_result *r)
{
    char key[STORE_TASK_ID_MAX + 6 + STORE_HOST_MAX];
    struct fl_buf b;
    size_t kl;
    if (hlen == 0 || hlen >= STORE_HOST_MAX || r->tail_len > STORE_TAIL_MAX ||
        strnlen(task, STORE_TASK_ID_MAX) >= STORE_TASK_ID_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "bad result record");
    }
    kl = store_unit_key(key, task, unit);
    key[kl++] = '/';
    memcpy(key + kl, host, hlen);
    kl += hlen;
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_RESULTS, key, kl, &b, result_encode(&b, r));
}

/* ---- index tables ------------------------------------------------------- */

int store_index_put(struct store_txn *t, enum store_table tab, const void *key, size_t klen)
{
    return store_put(t, tab, key, klen, "", 0);
}

size_t store_queue_key(uint8_t *out, int32_t priority, uint64_t seq, const char *task,
                       uint32_t unit)
{
    /* Higher priority first: invert the sign-flipped value. */
    uint32_t p = ~((uint32_t)priority ^ 0x80000000u);
    store__put_be32(out, p);
    store__put_be64(out + 4, seq);
    return 12 + store_unit_key((char *)out + 12, task, unit);
}

int store_queue_key_parse(const void *key, size_t klen, int32_t *priority, uint64_t *seq,
                          char *task, uint32_t *unit)
{
    const uint8_t *k = key;
    size_t idlen;
    if (klen < 12 + 1 + 5 || klen > 12 + STORE_TASK_ID_MAX - 1 + 5 || k[klen - 5] != '/') {
        return FL_EDECODE;
    }
    *priority = (int32_t)(~store__get_be32(k) ^ 0x80000000u);
    *seq = store__get_be64(k + 4);
    idlen = klen - 12 - 5;
    memcpy(task, k + 12, idlen);
    task[idlen] = '\0';
    *unit = store__get_be32(k + klen - 4);
    return FL_OK;
}
