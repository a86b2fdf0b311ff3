/* A bounds pre-check for untrusted msgpack bytes.
 *
 * msgpack-c's unpacker allocates array and map storage from the count an
 * object claims before it reads the elements, so a five-byte input can ask for
 * gigabytes. fl_mpcheck walks the encoding without allocating and accepts it
 * only if every container's claimed element count fits in the bytes that
 * remain and nesting stays within max_depth. Run it before msgpack_unpack_next
 * on anything that came from outside the process. */
#ifndef FL_COMMON_MPCHECK_H
#define FL_COMMON_MPCHECK_H

#include <stddef.h>
#include <stdint.h>

/* Check one complete object at the start of p[0..len). On success returns
 * FL_OK and sets *used to its encoded size; FL_EDECODE otherwise. */
int fl_mpcheck(const uint8_t *p, size_t len, unsigned max_depth, size_t *used);

#endif
