/* fsm/ — private to the command codec (cmd.c, cmd_schema.c). */
#ifndef FL_FSM_CMD_INT_H
#define FL_FSM_CMD_INT_H

#include "fsm/cmd.h"
#include "schema/schema.h"

#define FSM_SPEC_MAX (256u * 1024) /* a TASK_SUBMIT's executor spec */

/* How one command type is encoded and decoded. */
struct fsm_cmd_desc {
    /* Its fields after the type; size sizeof(struct fsm_cmd). The base
     * fields are since 1, a trailing group appended later since 2, 3... */
    const struct schema *sc;
    /* The last group this command writes; NULL: all of them (sc->version). */
    uint8_t (*format)(const struct fsm_cmd *c);
    /* A rule of the decoder beyond the table (NULL: none): FL_OK or
     * FL_EDECODE for a command decoded in format `format`. */
    int (*decoded)(const struct fsm_cmd *c, uint8_t format);
};

/* The description of a command type; NULL for an unknown one (and for
 * FSM_CMD_REQUEST, which is not a command). */
const struct fsm_cmd_desc *fsm__cmd_desc(int type);

/* The request identity (session, serial) of the envelope
 * [FSM_CMD_REQUEST, session, serial, command]. */
extern const struct schema fsm__request_schema;

/* A host name: 1-255 bytes, printable, no spaces or commas. */
int fsm__host_ok(const char *s, size_t n);

#endif
