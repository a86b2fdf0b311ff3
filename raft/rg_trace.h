#ifndef FL_RAFT_RG_TRACE_H
#define FL_RAFT_RG_TRACE_H

#include <raft.h>

/* The tracer to give raft and raft_uv: the flight recorder when
 * FLOTILLA_RAFT_TRACE=LEVEL is set in the environment, NULL otherwise. */
struct raft_tracer *rg_trace_tracer(void);

/* Write the recorded lines to stderr (async-signal-safe). */
void rg_trace_dump(void);

#endif
