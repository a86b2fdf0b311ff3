/* store/ — records of the scheduling tables: tasks, units, results, and the
 * keys of the index tables (docs/SCHEDULER.md).
 *
 * Values are records whose formats are the tables of formats.c, like the
 * records in records.c. */
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"

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

static int corrupt(struct store_txn *t, int rv, const char *what)
{
    return fl_errf(t->s->errmsg, FL_ECORRUPT, "%s record does not decode (%s)", what,
                   fl_errname(rv));
}

/* ---- tasks -------------------------------------------------------------- */

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
    int rv = schema_decode_record(&store__fmt_task, val, vlen, k, NULL, NULL);
    if (rv == FL_OK) {
        store_job_ref_parse(k->name, &k->job);
    }
    return rv;
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
    return store__put_record(t, STORE_TASKS, k->id, strnlen(k->id, sizeof k->id), &store__fmt_task,
                             k);
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

int store_unit_decode(const void *val, size_t vlen, struct store_unit *u)
{
    /* n_hosts is checked by store_unit_host as it walks the hosts (each
     * host must end with a NUL inside the blob: the format checks the last). */
    return schema_decode_record(&store__fmt_unit, val, vlen, u, NULL, NULL);
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
    size_t kl;
    if (strnlen(task, STORE_TASK_ID_MAX) >= STORE_TASK_ID_MAX || task[0] == '\0') {
        return fl_errf(t->s->errmsg, FL_EINVAL, "unit record: bad task id");
    }
    kl = store_unit_key(key, task, unit);
    return store__put_record(t, STORE_UNITS, key, kl, &store__fmt_unit, u);
}

/* ---- results ------------------------------------------------------------ */

int store_result_decode(const void *val, size_t vlen, struct store_result *out)
{
    return schema_decode_record(&store__fmt_result, val, vlen, out, NULL, NULL);
}

int store_result_put(struct store_txn *t, const char *task, uint32_t unit, const char *host,
                     size_t hlen, const struct store_result *r)
{
    char key[STORE_TASK_ID_MAX + 6 + STORE_HOST_MAX];
    size_t kl;
    if (hlen == 0 || hlen >= STORE_HOST_MAX || r->tail_len > STORE_TAIL_MAX ||
        strnlen(task, STORE_TASK_ID_MAX) >= STORE_TASK_ID_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "bad result record");
    }
    kl = store_unit_key(key, task, unit);
    key[kl++] = '/';
    memcpy(key + kl, host, hlen);
    kl += hlen;
    return store__put_record(t, STORE_RESULTS, key, kl, &store__fmt_result, r);
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
