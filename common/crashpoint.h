#ifndef FL_COMMON_CRASHPOINT_H
#define FL_COMMON_CRASHPOINT_H

/* Crash points for tests (docs/CHAOS.md, "Crash points").
 *
 * With FLOTILLA_CRASHPOINT=NAME[:N] in the environment, the N-th time (1 by
 * default) the code reaches fl_crashpoint("NAME") the process writes
 * "flotilla: crash point NAME reached" to stderr and kills itself with
 * SIGKILL, as `kill -9` would at that instant. Unset, a call costs one
 * branch. */
void fl_crashpoint(const char *name);

#endif
