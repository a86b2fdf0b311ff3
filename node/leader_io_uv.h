/* node/leader_io_uv — leader/leader_io.h over a server's libuv loop and its
 * replication (rg_repl). */
#ifndef FL_NODE_LEADER_IO_UV_H
#define FL_NODE_LEADER_IO_UV_H

#include <uv.h>

#include "leader/leader_io.h"

struct node_server;

struct leader_io_uv {
    struct leader_io io; /* hand &io to the component */
    struct node_server *s;
    uv_timer_t timer, alarm;
    int open; /* handles initialised and not yet closed */
    void (*fn)(void *arg);
    void *arg;
    void (*alarm_fn)(void *arg);
    void *alarm_arg;
    void (*closed)(void *arg);
    void *closed_arg;
};

void leader_io_uv_init(struct leader_io_uv *u, struct node_server *s);

#endif
