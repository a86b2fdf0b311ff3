#ifndef FL_COMMON_CRASHPOINT_H
#define FL_COMMON_CRASHPOINT_H

/* Fault points for tests (docs/CHAOS.md, "Crash points").
 *
 * With FLOTILLA_CRASHPOINT=NAME[:N] in the environment, the N-th time (1 by
 * default) the code reaches fl_crashpoint("NAME") the process writes
 * "flotilla: crash point NAME reached" to stderr and kills itself with
 * SIGKILL, as `kill -9` would at that instant.
 *
 * With FLOTILLA_DROPPOINT=NAME[:N], fl_droppoint("NAME") returns 1 the N-th
 * time it is reached (and 0 every other time), after writing "flotilla: drop
 * point NAME reached" to stderr; the caller then drops what it holds (a
 * connection closed without an answer) and carries on.
 *
 * Unset, a call costs one branch. */
void fl_crashpoint(const char *name);
int fl_droppoint(const char *name);

#endif
