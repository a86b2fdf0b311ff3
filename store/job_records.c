/* store/ — records of the cron tables: jobs and their runs (docs/JOBS.md).
 *
 *   job: [1, name, sched, expr, tz, every_ms, overlap, mode, misfire,
 *         start_deadline_ms, paused, created_ms, updated_index,
 *         last_sched_ms, runs, queued, run_seq, active(bin), tmpl(bin)]
 *   run: [1, sched_ms, fired_ms, manual, outcome, missed, token, replaced,
 *         tasks(bin)] */
#include <string.h>

#include "common/buf.h"
#include "store/store.h"
#include "store/store_int.h"

#define JOB_FORMAT 1
#define JOB_FIELDS 19
#define RUN_FORMAT 1
#define RUN_FIELDS 9

static const char *outcome_names[] = {
    "none", "started", "skipped_overlap", "queued", "missed", "skipped_paused", "no_nodes",
};

const char *store_run_outcome_name(int outcome)
{
    if (outcome < 0 || outcome > STORE_RUN_NO_NODES) {
        return "unknown";
    }
    return outcome_names[outcome];
}

static int small(struct fl_mp *r, int *v, int lo, int hi)
{
    uint64_t x;
    if (fl_mp_uint(r, &x) != FL_OK || x < (uint64_t)lo || x > (uint64_t)hi) {
        return FL_EDECODE;
    }
    *v = (int)x;
    return FL_OK;
}

int store_job_encode(const struct store_job *j, struct fl_buf *b)
{
    msgpack_packer pk;
    int r;
    msgpack_packer_init(&pk, b, store__buf_write);
    r = msgpack_pack_array(&pk, JOB_FIELDS) | msgpack_pack_uint64(&pk, JOB_FORMAT) |
        store__pack_str(&pk, j->name) | msgpack_pack_uint64(&pk, (uint64_t)j->sched) |
        store__pack_str(&pk, j->expr) | store__pack_str(&pk, j->tz) |
        msgpack_pack_uint64(&pk, j->every_ms) | msgpack_pack_uint64(&pk, (uint64_t)j->overlap) |
        msgpack_pack_uint64(&pk, (uint64_t)j->mode) |
        msgpack_pack_uint64(&pk, (uint64_t)j->misfire) |
        msgpack_pack_uint64(&pk, j->start_deadline_ms) | store__pack_bool(&pk, j->paused) |
        msgpack_pack_uint64(&pk, j->created_ms) | msgpack_pack_uint64(&pk, j->updated_index) |
        msgpack_pack_uint64(&pk, j->last_sched_ms) | msgpack_pack_uint64(&pk, j->runs) |
        msgpack_pack_uint64(&pk, j->queued) | msgpack_pack_uint64(&pk, j->run_seq) |
        store__pack_bin(&pk, j->active, j->active_len) | store__pack_bin(&pk, j->tmpl, j->tmpl_len);
    return r ? FL_ENOMEM : FL_OK;
}

int store_job_decode(const void *val, size_t vlen, struct store_job *j)
{
    struct fl_mp r;
    int rv;
    memset(j, 0, sizeof *j);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, JOB_FORMAT, JOB_FIELDS)) != FL_OK) {
        return rv;
    }
    if (store__str_field(&r, j->name, sizeof j->name) || j->name[0] == '\0' ||
        small(&r, &j->sched, STORE_JOB_CRON, STORE_JOB_EVERY) ||
        store__str_field(&r, j->expr, sizeof j->expr) ||
        store__str_field(&r, j->tz, sizeof j->tz) || fl_mp_uint(&r, &j->every_ms) ||
        small(&r, &j->overlap, 1, STORE_OVERLAP_QUEUE) || small(&r, &j->mode, 1, STORE_JOB_ALL) ||
        small(&r, &j->misfire, 1, STORE_MISFIRE_RUN_ONCE) ||
        fl_mp_uint(&r, &j->start_deadline_ms) || store__mp_bool(&r, &j->paused) ||
        fl_mp_uint(&r, &j->created_ms) || fl_mp_uint(&r, &j->updated_index) ||
        fl_mp_uint(&r, &j->last_sched_ms) || fl_mp_uint(&r, &j->runs) ||
        store__u32_field(&r, &j->queued) || fl_mp_uint(&r, &j->run_seq) ||
        fl_mp_bin(&r, &j->active, &j->active_len) || fl_mp_bin(&r, &j->tmpl, &j->tmpl_len) ||
        fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    return FL_OK;
}

int store_job_get(struct store_txn *t, const char *name, struct store_job *out)
{
    const void *v;
    size_t vl;
    int rv = store_get(t, STORE_JOBS, name, strlen(name), &v, &vl);
    if (rv != FL_OK) {
        return rv;
    }
    rv = store_job_decode(v, vl, out);
    if (rv != FL_OK) {
        return fl_errf(t->s->errmsg, FL_ECORRUPT, "job %s does not decode (%s)", name,
                       fl_errname(rv));
    }
    return FL_OK;
}

int store_job_put(struct store_txn *t, const struct store_job *j)
{
    struct fl_buf b;
    if (j->name[0] == '\0' || memchr(j->name, '\0', sizeof j->name) == NULL ||
        memchr(j->expr, '\0', sizeof j->expr) == NULL ||
        memchr(j->tz, '\0', sizeof j->tz) == NULL) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "job record: bad name, expression or zone");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_JOBS, j->name, strlen(j->name), &b, store_job_encode(j, &b));
}

size_t store_run_key(uint8_t *out, const char *job, uint64_t sched_ms)
{
    size_t n = strlen(job);
    memcpy(out, job, n);
    out[n] = '\0';
    store__put_be64(out + n + 1, sched_ms);
    return n + 9;
}

static int run_encode(struct fl_buf *b, const struct store_run *r)
{
    msgpack_packer pk;
    int rv;
    msgpack_packer_init(&pk, b, store__buf_write);
    rv = msgpack_pack_array(&pk, RUN_FIELDS) | msgpack_pack_uint64(&pk, RUN_FORMAT) |
         msgpack_pack_uint64(&pk, r->sched_ms) | msgpack_pack_uint64(&pk, r->fired_ms) |
         store__pack_bool(&pk, r->manual) | msgpack_pack_uint64(&pk, (uint64_t)r->outcome) |
         msgpack_pack_uint64(&pk, r->missed) | msgpack_pack_uint64(&pk, r->token) |
         msgpack_pack_uint64(&pk, r->replaced) | store__pack_bin(&pk, r->tasks, r->tasks_len);
    return rv ? FL_ENOMEM : FL_OK;
}

int store_run_decode(const void *val, size_t vlen, struct store_run *out)
{
    struct fl_mp r;
    int rv;
    memset(out, 0, sizeof *out);
    fl_mp_init(&r, val, vlen);
    if ((rv = store__header(&r, RUN_FORMAT, RUN_FIELDS)) != FL_OK) {
        return rv;
    }
    if (fl_mp_uint(&r, &out->sched_ms) || fl_mp_uint(&r, &out->fired_ms) ||
        store__mp_bool(&r, &out->manual) || small(&r, &out->outcome, 1, STORE_RUN_NO_NODES) ||
        store__u32_field(&r, &out->missed) || fl_mp_uint(&r, &out->token) ||
        fl_mp_uint(&r, &out->replaced) || fl_mp_bin(&r, &out->tasks, &out->tasks_len) ||
        fl_mp_end(&r)) {
        return FL_EDECODE;
    }
    return FL_OK;
}

int store_run_put(struct store_txn *t, const char *job, const struct store_run *r)
{
    uint8_t key[STORE_JOB_NAME_MAX + 9];
    struct fl_buf b;
    if (job[0] == '\0' || strlen(job) >= STORE_JOB_NAME_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "run record: bad job name");
    }
    fl_buf_init(&b);
    return store__put_encoded(t, STORE_RUNS, key, store_run_key(key, job, r->sched_ms), &b,
                              run_encode(&b, r));
}
