/* store/ — records of the cron tables: jobs and their runs (docs/JOBS.md).
 *
 *   job: [1, name, sched, expr, tz, every_ms, overlap, mode, misfire,
 *         start_deadline_ms, paused, created_ms, updated_index,
 *         last_sched_ms, runs, queued, run_seq, active(bin), tmpl(bin)]
 *   run: [1, sched_ms, fired_ms, manual, outcome, missed, token, replaced,
 *         tasks(bin)]
 *
 * The formats are the tables of formats.c. */
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"

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

int store_job_encode(const struct store_job *j, struct fl_buf *b)
{
    return schema_encode_record(&store__fmt_job, j, b, NULL);
}

int store_job_decode(const void *val, size_t vlen, struct store_job *j)
{
    return schema_decode_record(&store__fmt_job, val, vlen, j, NULL, NULL);
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
    return store__put_record(t, STORE_JOBS, j->name, strnlen(j->name, sizeof j->name),
                             &store__fmt_job, j);
}

size_t store_run_key(uint8_t *out, const char *job, uint64_t sched_ms)
{
    size_t n = strlen(job);
    memcpy(out, job, n);
    out[n] = '\0';
    store__put_be64(out + n + 1, sched_ms);
    return n + 9;
}

int store_run_decode(const void *val, size_t vlen, struct store_run *out)
{
    return schema_decode_record(&store__fmt_run, val, vlen, out, NULL, NULL);
}

int store_run_put(struct store_txn *t, const char *job, const struct store_run *r)
{
    uint8_t key[STORE_JOB_NAME_MAX + 9];
    if (job[0] == '\0' || strlen(job) >= STORE_JOB_NAME_MAX) {
        return fl_errf(t->s->errmsg, FL_EINVAL, "run record: bad job name");
    }
    return store__put_record(t, STORE_RUNS, key, store_run_key(key, job, r->sched_ms),
                             &store__fmt_run, r);
}
