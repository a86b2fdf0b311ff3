/* agentproto/ — private to the module (and its unit test).
 *
 * One field table per message type (schema.c) drives the validator, the
 * encoder and the decoder through the engine of schema/: a field is
 * described once, with its wire type, where it lives in the message struct
 * and its bounds, so the three cannot disagree about what is sendable. */
#ifndef FL_AGENTPROTO_APROTO_INT_H
#define FL_AGENTPROTO_APROTO_INT_H

#include <stddef.h>
#include <stdint.h>

#include "agentproto/aproto.h"
#include "schema/schema.h"

/* The storage of a decoded message: one allocation, sized exactly by the
 * measuring pass of the decoder. */
struct aproto__arena {
    size_t size;     /* bytes of data */
    size_t reserved; /* keeps data 16-byte aligned */
    uint8_t data[];
};

/* The table of a message type, NULL if unknown. Its fields are those of the
 * type's member of aproto_msg.u, in wire order after [version, type]. */
const struct schema *aproto__schema(int type);

/* ---- validators with explicit length ----------------------------------- */

int aproto__valid_agent_id(const char *s, size_t n);
int aproto__valid_task_id(const char *s, size_t n);
int aproto__valid_host(const char *s, size_t n);
int aproto__valid_label(const char *s, size_t n);
int aproto__valid_env(const char *s, size_t n);
int aproto__valid_var(const char *s, size_t n);
int aproto__valid_addr(const char *s, size_t n);
int aproto__valid_module(const char *s, size_t n);
int aproto__valid_error_code(const char *s, size_t n);
int aproto__valid_printable(const char *s, size_t n); /* no control characters */

/* ---- test hook ----------------------------------------------------------- */

/* aproto_encode_ex without validation: writes whatever m holds (the unit
 * test uses it to produce out-of-bounds frames for the decoder). Only the
 * type must be known. */
int aproto__encode_unchecked(const struct aproto_msg *m, struct fl_buf *out);

#endif
