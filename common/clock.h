/* Time sources. Wall-clock time enters the state machine only through the
 * leader's stamp in each log entry (DESIGN.md, "deterministic"). */
#ifndef FL_COMMON_CLOCK_H
#define FL_COMMON_CLOCK_H

#include <stdint.h>

uint64_t fl_wall_ms(void); /* milliseconds since the Unix epoch */
uint64_t fl_mono_ns(void); /* monotonic nanoseconds */

/* "500ms", "30s", "10m", "2h" or a bare number of seconds (fractions
 * allowed) -> milliseconds; -1 if malformed, negative or over 10 years. */
long long fl_duration_ms(const char *s);

#endif
