/* common/addrcap — how many connections each peer address holds on one
 * port, against a cap (docs/SECURITY.md, "Limits before authentication").
 *
 * A listener takes a place for the peer's address when it accepts a
 * connection that has not authenticated yet, and gives it back when the
 * connection is admitted or closes; a peer over the cap is refused at once
 * (counted). One address then cannot hold every handshake slot of a port.
 * Not thread-safe: the owner locks if it needs to. */
#ifndef FL_COMMON_ADDRCAP_H
#define FL_COMMON_ADDRCAP_H

#include <stdint.h>

#include "common/strmap.h"

struct fl_addrcap {
    struct strmap m; /* address -> count, as (uintptr_t) */
    unsigned cap;
    uint64_t refused; /* takes refused over the cap */
};

void fl_addrcap_init(struct fl_addrcap *a, unsigned cap);
void fl_addrcap_close(struct fl_addrcap *a);
/* Take a place for `addr` ("ip", no port): 1 if it was under the cap (now
 * counted), 0 if refused (or out of memory). */
int fl_addrcap_take(struct fl_addrcap *a, const char *addr);
/* Give back a place taken for `addr`. */
void fl_addrcap_give(struct fl_addrcap *a, const char *addr);
unsigned fl_addrcap_count(const struct fl_addrcap *a, const char *addr);

#endif
