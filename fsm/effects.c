/* fsm/ — the effects of applied entries (fsm/fsm.h "Effects"): the queue the
 * state machine owns, and what the scheduling commands mean for the
 * dispatcher. */
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "fsm/fsm_int.h"

_Static_assert(FSM_EFFECT_NAME_MAX >= STORE_SESSION_ID_MAX &&
                   FSM_EFFECT_NAME_MAX >= STORE_TASK_ID_MAX &&
                   FSM_EFFECT_NAME_MAX >= STORE_NODE_ID_MAX &&
                   FSM_EFFECT_NAME_MAX >= STORE_JOB_NAME_MAX,
               "an effect's name holds every id it names");

struct fsm_effect *fsm__effect(struct fsm *f, int type, const char *name, size_t nlen)
{
    struct fsm_effect *e;
    if (f->n_effects == f->cap_effects) {
        unsigned cap = f->cap_effects ? f->cap_effects * 2 : 16;
        struct fsm_effect *grown = fl_realloc(f->effects, (size_t)cap * sizeof *grown);
        if (grown == NULL) {
            f->effects_oom = 1; /* fsm_apply stops: see fsm__fatal */
            return NULL;
        }
        f->effects = grown;
        f->cap_effects = cap;
    }
    e = &f->effects[f->n_effects++];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->index = f->applying;
    fsm__copy_str(e->name, sizeof e->name, name, name != NULL ? nlen : 0);
    return e;
}

void fsm__effects_committed(struct fsm *f)
{
    f->n_effects_ready = f->n_effects;
}

unsigned fsm_effects_take(struct fsm *f, const struct fsm_effect **out)
{
    unsigned n = f->n_effects_ready;
    *out = NULL;
    if (n == 0) {
        return 0;
    }
    if (n > f->cap_taken) {
        struct fsm_effect *grown = fl_realloc(f->taken, (size_t)f->cap_effects * sizeof *grown);
        if (grown == NULL) {
            return 0; /* they stay queued: handed over by a later call */
        }
        f->taken = grown;
        f->cap_taken = f->cap_effects;
    }
    memcpy(f->taken, f->effects, (size_t)n * sizeof *f->taken);
    memmove(f->effects, f->effects + n, (size_t)(f->n_effects - n) * sizeof *f->effects);
    f->n_effects -= n;
    f->n_effects_ready = 0;
    *out = f->taken;
    return n;
}

void fsm__effects_close(struct fsm *f)
{
    fl_free(f->effects);
    fl_free(f->taken);
    f->effects = f->taken = NULL;
    f->n_effects = f->cap_effects = f->n_effects_ready = f->cap_taken = 0;
}

void fsm__sched_effects(struct fsm *f, const struct fsm_cmd *c, const struct fsm_result *res)
{
    if (res->not_run || res->err != FL_OK) {
        return;
    }
    switch (c->type) {
    case FSM_CMD_UNIT_ASSIGN:
        fsm__effect(f, FSM_EFF_NODE_RUNNING, res->node, strlen(res->node));
        break;
    case FSM_CMD_UNIT_RESULT:
    case FSM_CMD_UNIT_REQUEUE:
        if (res->node[0] != '\0') {
            fsm__effect(f, FSM_EFF_NODE_RUNNING, res->node, strlen(res->node));
        }
        fsm__effect(f, FSM_EFF_PLACE, NULL, 0);
        break;
    case FSM_CMD_TASK_CANCEL:
        fsm__effect(f, FSM_EFF_TASK_CANCELLED, c->u.task.id, c->u.task.idlen);
        break;
    case FSM_CMD_NODE_REGISTER:
    case FSM_CMD_NODE_CAP:
    case FSM_CMD_NODE_DRAIN:
    case FSM_CMD_NODE_REMOVE:
    case FSM_CMD_NODE_LOST:
        fsm__effect(f, FSM_EFF_NODE, c->u.node.id, c->u.node.idlen);
        break;
    case FSM_CMD_TASK_SUBMIT:
        fsm__effect(f, FSM_EFF_PLACE, res->task_id, strlen(res->task_id));
        break;
    case FSM_CMD_DISPATCH:
        fsm__effect(f, FSM_EFF_PLACE, NULL, 0);
        break;
    default:
        break;
    }
}
