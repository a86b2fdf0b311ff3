/* Private to agent/agent.c, link.c, spool.c and units.c: the agent object
 * and what each of those files provides to the others.
 *
 *   agent.c  creating and closing the agent, the standalone main
 *   link.c   the connection to the servers: connect, secure channel,
 *            HELLO, heartbeats, the messages that come in, reconnect
 *   spool.c  results on disk until the leader acknowledges them
 *   units.c  running units: RUN and CANCEL, and what a unit reports
 *
 * Everything runs on the agent's loop thread. */
#ifndef FL_AGENT_AGENT_INT_H
#define FL_AGENT_AGENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/agent.h"
#include "agentproto/aproto.h"
#include "common/ident.h"
#include "common/strmap.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* After a refusal (identity_mismatch, approval_required, ...) nothing changes
 * by retrying at once: back off from 1 s, doubling, up to these. */
#define REFUSED_MIN_MS 1000
#define REFUSED_MAX_MS 30000
#define PENDING_MAX_MS 5000 /* waiting for `flotilla agent approve` */

struct exec;
struct tlink;

/* One agent: its configuration, the connection (link.c), the units it runs
 * (units.c) and the results not yet acknowledged (spool.c). */
struct agent {
    uv_loop_t *loop;
    struct agent_config cfg;
    char spool_dir[4200];
    char work_dir[4200];
    char exe[4096]; /* this executable, for deploy units ("" if unknown) */

    uv_tcp_t *tcp;    /* current connection, NULL if none */
    struct tlink *ch; /* its TLS link (docs/SECURITY.md "Links") */
    char server[128]; /* the address it goes to */
    unsigned char id_pk[FL_IDENT_PK_BYTES], id_sk[FL_IDENT_SK_BYTES];
    uv_connect_t connect_req;
    struct aproto_reader rd;
    int connecting;
    int connected;
    int welcomed;
    unsigned join_next;
    char redirect[128];
    uint64_t heartbeat_seq;
    unsigned backoff_ms;
    unsigned refused_ms; /* 0, or the current delay after a refusal */

    uv_timer_t reconnect;
    uv_timer_t heartbeat;
    struct strmap runs;  /* "task/unit" -> struct run */
    struct strmap spool; /* unit ref -> struct spooled: results not yet acknowledged */
    int spool_fd;
    int closing;
    int open_handles;
    void (*close_cb)(void *data);
    void *close_data;
};

/* A unit being run (units.c), in the agent's runs. */
struct run {
    struct agent *a;
    struct aproto_unit_ref ref;
    struct exec *e;
    char workdir[4300];
    uint64_t started_ms;
    char key[64];
    uint64_t offsets[3];
};

/* ---- link.c ---------------------------------------------------------------- */

/* Send protocol bytes (an encoded frame) through the secure channel; FL_ENET
 * when the channel is not open. */
int agent__send_bytes(struct agent *a, const uint8_t *p, size_t n);
/* Encode m and send it (FL_ENET when not connected). */
int agent__send_msg(struct agent *a, const struct aproto_msg *m);
/* Connect again after delay ms (nothing once the agent is closing). */
void agent__schedule_reconnect(struct agent *a, unsigned delay);
/* Close callback of a connection's handle (h->data is the agent): frees it
 * and finishes a closing agent whose last handle it was. */
void agent__tcp_closed(uv_handle_t *h);

/* ---- spool.c --------------------------------------------------------------- */

/* Open DIR/spool/results.log (FL_EIO, errno set). */
int agent__spool_open(struct agent *a);
/* Read back what a previous run left in the log. */
void agent__spool_load(struct agent *a);
/* Keep the encoded DONE frame p[0..n) of unit r: appended to the log and held
 * in memory until acknowledged. */
void agent__spool_write(struct agent *a, const struct aproto_unit_ref *r, const uint8_t *p,
                        size_t n);
/* The leader acknowledged r's result: forget it (the log is truncated once
 * nothing waits). */
void agent__spool_drop(struct agent *a, const struct aproto_unit_ref *r);
/* Send every result still waiting for an acknowledgement (after WELCOME). */
void agent__spool_resend(struct agent *a);
/* Free the held results and close the log. */
void agent__spool_close(struct agent *a);

/* ---- units.c --------------------------------------------------------------- */

/* A RUN from the leader: start the unit (a repeated RUN is ignored, a newer
 * assignment cancels the older one); a unit that cannot start is reported
 * DONE with an error. */
void agent__on_run(struct agent *a, const struct aproto_run *run);
/* A CANCEL: kill the unit if it is the one meant (token 0 matches any). */
void agent__on_cancel(struct agent *a, const struct aproto_cancel *c);

/* ---- agent.c --------------------------------------------------------------- */

/* The last handle of a closing agent is gone: free everything. */
void agent__finish(struct agent *a);
/* A closing agent's last unit is over: close the connection and the timers. */
void agent__runs_gone_close(struct agent *a);

#endif
