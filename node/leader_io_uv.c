/* node/ — the leader's port over the server's loop and replication
 * (node/leader_io_uv.h). */
#include "node/leader_io_uv.h"

#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "node/node_int.h"

static int propose(void *impl, const struct fsm_cmd *c, leader_done_cb cb, void *data)
{
    struct leader_io_uv *u = impl;
    return rg_repl_submit(u->s->repl, c, cb, data, NULL);
}

static int leader(void *impl, uint64_t *term)
{
    struct leader_io_uv *u = impl;
    struct rg_status st;
    rg_repl_status(u->s->repl, &st);
    *term = st.term;
    return st.state == RAFT_LEADER && st.ready;
}

static uint64_t now_ms(void *impl)
{
    struct leader_io_uv *u = impl;
    return uv_now(u->s->loop);
}

static uint64_t wall_ms(void *impl)
{
    (void)impl;
    return fl_wall_ms();
}

static struct store *store(void *impl)
{
    struct leader_io_uv *u = impl;
    return u->s->store;
}

static struct fsm *fsm(void *impl)
{
    struct leader_io_uv *u = impl;
    return rg_repl_fsm(u->s->repl);
}

static int subscribe(void *impl, leader_effect_cb fn, void *arg)
{
    struct leader_io_uv *u = impl;
    return rg_repl_subscribe(u->s->repl, fn, arg);
}

static void unsubscribe(void *impl, leader_effect_cb fn, void *arg)
{
    struct leader_io_uv *u = impl;
    rg_repl_unsubscribe(u->s->repl, fn, arg);
}

static void tick(uv_timer_t *h)
{
    struct leader_io_uv *u = h->data;
    u->fn(u->arg);
}

static void ring(uv_timer_t *h)
{
    struct leader_io_uv *u = h->data;
    u->alarm_fn(u->alarm_arg);
}

static void handles_init(struct leader_io_uv *u)
{
    if (u->open == 0) {
        uv_timer_init(u->s->loop, &u->timer);
        uv_timer_init(u->s->loop, &u->alarm);
        u->timer.data = u;
        u->alarm.data = u;
        u->open = 2;
    }
}

static int timer_start(void *impl, uint64_t period_ms, void (*fn)(void *arg), void *arg)
{
    struct leader_io_uv *u = impl;
    handles_init(u);
    u->fn = fn;
    u->arg = arg;
    return uv_timer_start(&u->timer, tick, period_ms, period_ms) == 0 ? FL_OK : FL_EIO;
}

static void alarm_set(void *impl, uint64_t after_ms, void (*fn)(void *arg), void *arg)
{
    struct leader_io_uv *u = impl;
    handles_init(u);
    u->alarm_fn = fn;
    u->alarm_arg = arg;
    uv_timer_start(&u->alarm, ring, after_ms, 0);
}

static void handle_closed(uv_handle_t *h)
{
    struct leader_io_uv *u = h->data;
    if (--u->open == 0 && u->closed != NULL) {
        u->closed(u->closed_arg);
    }
}

static void timer_close(void *impl, void (*closed)(void *arg), void *arg)
{
    struct leader_io_uv *u = impl;
    u->closed = closed;
    u->closed_arg = arg;
    if (u->open == 0) {
        if (closed != NULL) {
            closed(arg);
        }
        return;
    }
    uv_close((uv_handle_t *)&u->timer, handle_closed);
    uv_close((uv_handle_t *)&u->alarm, handle_closed);
}

void leader_io_uv_init(struct leader_io_uv *u, struct node_server *s)
{
    memset(u, 0, sizeof *u);
    u->s = s;
    u->io.impl = u;
    u->io.propose = propose;
    u->io.leader = leader;
    u->io.now_ms = now_ms;
    u->io.wall_ms = wall_ms;
    u->io.store = store;
    u->io.fsm = fsm;
    u->io.timer_start = timer_start;
    u->io.alarm = alarm_set;
    u->io.subscribe = subscribe;
    u->io.unsubscribe = unsubscribe;
    u->io.timer_close = timer_close;
}
