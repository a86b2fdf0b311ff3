/* deploy/supervise — private structures shared by supervise.c (workers,
 * restarts, signals), sup_reload.c, sup_control.c and sup_log.c. */
#ifndef FL_DEPLOY_SUP_INT_H
#define FL_DEPLOY_SUP_INT_H

#include <stdint.h>

#include <uv.h>

#include "deploy/release.h"
#include "deploy/supervise.h"

#define SUP_LINE_MAX 4096

/* The log file (ROOT/logs/APP.log) with size-based rotation. */
struct sup_log {
    int fd;
    char path[PATH_MAX];
    uint64_t size, max;
    unsigned keep;
};

int sup_log_open(struct sup_log *l, const char *root, const char *app, uint64_t max, unsigned keep,
                 char *errmsg);
/* One line "TIME [tag] text" (a newline is added). */
void sup_log_line(struct sup_log *l, const char *tag, const char *text, size_t n);
void sup_log_printf(struct sup_log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sup_log_close(struct sup_log *l);

struct sup_run;

/* One output pipe of a worker process, split into lines. */
struct sup_stream {
    uv_pipe_t pipe;
    struct sup_run *run;
    int is_err;
    size_t len;
    char buf[SUP_LINE_MAX];
};

/* One process of a worker: lives until its process and pipe handles are all
 * closed, which may be after the worker has moved on to the next process. */
struct sup_run {
    struct sup *s;
    struct sup_worker *w; /* NULL once the worker has moved on */
    uv_process_t proc;
    struct sup_stream out, err;
    int handles; /* open handles; freed at 0 */
    int pid;
    unsigned id;          /* the worker's index, for log lines */
    struct sup_run *next; /* in s->runs */
};

enum sup_wstate {
    SUP_W_IDLE = 0, /* not running, nothing scheduled (stopping) */
    SUP_W_RUNNING,
    SUP_W_BACKOFF /* waiting for its restart timer */
};

enum sup_rphase {
    SUP_R_NONE = 0,
    SUP_R_STOPPING, /* reload: SIGTERM sent, waiting for the exit */
    SUP_R_READY     /* reload: started again, waiting ready_ms */
};

struct sup_worker {
    struct sup *s;
    unsigned id;
    enum sup_wstate state;
    enum sup_rphase rphase;
    struct sup_run *run;
    char release[DEPLOY_VERSION_MAX];
    uint64_t started_ms;   /* wall clock, for status */
    uint64_t started_mono; /* ms, for the stable rule */
    unsigned restarts;
    unsigned failures; /* quick failures in a row (the backoff exponent) */
    int last_code, last_signal, ever_exited;
    uv_timer_t timer;      /* backoff, or reload readiness */
    uv_timer_t kill_timer; /* SIGKILL after stop_grace_ms */
};

struct sup_client {
    uv_pipe_t pipe;
    struct sup *s;
    size_t len;
    char buf[512];
    int closing;
    struct sup_client *next; /* in s->clients */
};

#define SUP_WAITERS_MAX 64

struct sup {
    uv_loop_t loop;
    struct deploy_sup_config c;
    struct sup_log log;
    struct sup_worker *workers;
    struct sup_run *runs;
    struct sup_client *clients;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_pipe_t ctl;
    char ctl_path[108];
    uv_timer_t stop_timer;
    int stopping;
    int closed; /* handles being closed: the loop is ending */
    /* reload (sup_reload.c) */
    int reloading;
    unsigned next, in_flight, n_failed;
    unsigned *failed;
    uint64_t reload_t0;
    struct sup_client *active[SUP_WAITERS_MAX], *queued[SUP_WAITERS_MAX];
    unsigned n_active, n_queued;
};

/* supervise.c */
uint64_t sup_now_ms(struct sup *s);
/* Start the worker's process now; on failure it goes to backoff. Returns 1
 * if a process is running. */
int sup_worker_start(struct sup_worker *w);
void sup_worker_signal(struct sup_worker *w, int sig);
void sup_worker_backoff(struct sup_worker *w);
/* The version ROOT/current points to ("" if none) into v. */
void sup_current(struct sup *s, char *v);

/* sup_reload.c */
void sup_reload_request(struct sup_client *cl);
/* Hooks from the worker life cycle while a reload runs. */
void sup_reload_exited(struct sup_worker *w);
void sup_reload_abort(struct sup *s, const char *why);
void sup_reload_forget(struct sup *s, struct sup_client *cl);

/* sup_control.c */
int sup_control_open(struct sup *s, char *errmsg);
void sup_control_reply(struct sup_client *cl, const char *json_line);
void sup_control_close(struct sup *s);

#endif
