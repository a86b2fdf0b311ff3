/* agentproto/ — message lifetime and small builders. */
#include <string.h>

#include "agentproto/aproto_int.h"
#include "common/alloc.h"

void aproto_msg_init(struct aproto_msg *m, int type)
{
    memset(m, 0, sizeof *m);
    m->type = type;
}

void aproto_msg_close(struct aproto_msg *m)
{
    fl_free(m->arena);
    memset(m, 0, sizeof *m);
}

size_t aproto_msg_footprint(const struct aproto_msg *m)
{
    return m->arena != NULL ? sizeof *m->arena + m->arena->size : 0;
}

int aproto_unit_ref_set(struct aproto_unit_ref *ref, const char *task_id, uint32_t unit,
                        uint32_t attempt, uint64_t token)
{
    memset(ref, 0, sizeof *ref);
    if (!aproto_valid_task_id(task_id)) {
        return FL_EINVAL;
    }
    memcpy(ref->task_id, task_id, strlen(task_id) + 1);
    ref->unit = unit;
    ref->attempt = attempt;
    ref->token = token;
    return FL_OK;
}
