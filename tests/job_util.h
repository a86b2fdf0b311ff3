/* A cron job's JOB_PUT for the tests, built with the real codecs: a job of
 * one task template, for unit tests and fixture tests alike. Static
 * functions: each test is one executable. */
#ifndef FL_TESTS_JOB_UTIL_H
#define FL_TESTS_JOB_UTIL_H

#include <stdio.h>
#include <string.h>

#include "check.h"
#include "common/buf.h"
#include "fsm/cmd.h"
#include "store/store.h"

/* A JOB_PUT into *put: job `name` every every_ms, each run one task of one
 * host; its definition is written into def (the caller closes it after the
 * proposal). */
__attribute__((unused)) static void fx_job_put(struct fsm_cmd *put, struct fl_buf *def,
                                               const char *name, const char *host,
                                               uint64_t every_ms, int overlap, int misfire)
{
    struct fsm_entry_writer w;
    struct fsm_cmd task;
    struct store_job j;
    const char *hosts[1] = {host};
    memset(&task, 0, sizeof task);
    task.type = FSM_CMD_TASK_SUBMIT;
    task.u.task.id = "tmpl";
    task.u.task.idlen = 4;
    task.u.task.n_hosts = 1;
    task.u.task.host_ptrs = hosts;
    task.u.task.unit_size = 1;
    task.u.task.spec = (const uint8_t *)"x";
    task.u.task.spec_len = 1;
    fsm_writer_init(&w);
    CHECK_OK(fsm_writer_add(&w, &task));
    memset(&j, 0, sizeof j);
    snprintf(j.name, sizeof j.name, "%s", name);
    j.sched = STORE_JOB_EVERY;
    j.every_ms = every_ms;
    j.overlap = overlap;
    j.mode = STORE_JOB_ONE;
    j.misfire = misfire;
    j.tmpl = (const uint8_t *)w.body.data;
    j.tmpl_len = w.body.len;
    fl_buf_init(def);
    CHECK_OK(store_job_encode(&j, def));
    fsm_writer_close(&w);
    memset(put, 0, sizeof *put);
    put->type = FSM_CMD_JOB_PUT;
    put->u.job.name = name;
    put->u.job.nlen = strlen(name);
    put->u.job.def = def->data;
    put->u.job.def_len = def->len;
}

#endif
