/* Helpers of the tests on raft's deterministic fixture (tests/fixture/):
 * proposing Flotilla commands with the real entry codec, and a tracer that
 * keeps the fixture quiet. Static functions: each test is one executable. */
#ifndef FL_TESTS_FIXTURE_UTIL_H
#define FL_TESTS_FIXTURE_UTIL_H

#include <stdlib.h>

#include <raft.h>
#include <raft/fixture.h>

#include "check.h"
#include "fsm/cmd.h"

static inline void fx_silent_emit(struct raft_tracer *t, int type, const void *info)
{
    (void)t, (void)type, (void)info;
}
static struct raft_tracer fx_silent = {NULL, 2, fx_silent_emit};

static inline void fx_apply_done(struct raft_apply *req, int status, void *result)
{
    (void)status, (void)result;
    free(req);
}

/* Propose one command as an entry on server i, if it believes it leads (it
 * may be a deposed leader that cannot commit), stamped with *stamp + 10
 * (the leader time the FSM sees); the entry's index or 0. */
static inline raft_index fx_propose_on(struct raft_fixture *f, unsigned i, uint64_t *stamp,
                                       const struct fsm_cmd *cmd)
{
    struct raft *r = raft_fixture_get(f, i);
    struct fsm_entry_writer w;
    struct raft_buffer buf;
    struct raft_apply *req;
    void *base;
    size_t len;
    if (!raft_fixture_alive(f, i) || raft_state(r) != RAFT_LEADER) {
        return 0;
    }
    fsm_writer_init(&w);
    CHECK_OK(fsm_writer_add(&w, cmd));
    *stamp += 10;
    CHECK_OK(fsm_writer_finish(&w, 0, 0, raft_current_term(r), *stamp, raft_malloc, &base, &len));
    fsm_writer_close(&w);
    buf.base = base;
    buf.len = len;
    req = calloc(1, sizeof *req);
    if (raft_apply(r, req, &buf, 1, fx_apply_done) != 0) {
        raft_free(base);
        free(req);
        return 0;
    }
    return req->index;
}

#endif
