/* Private to agent/exec*.c: the exec object and the helpers its files share. */
#ifndef FL_AGENT_EXEC_INT_H
#define FL_AGENT_EXEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/exec.h"
#include "common/buf.h"

/* The last `cap` bytes written (a ring). */
struct exec__tail {
    uint8_t *buf;
    size_t cap;
    size_t len;  /* bytes held, <= cap */
    size_t head; /* next write position */
};

int exec__tail_init(struct exec__tail *t, size_t cap); /* FL_ENOMEM */
void exec__tail_close(struct exec__tail *t);
void exec__tail_write(struct exec__tail *t, const void *p, size_t n);
/* The held bytes in order, as a new NUL-terminated string (fl_free). */
char *exec__tail_copy(const struct exec__tail *t, size_t *len);
/* Keep the last `cap` bytes of p[0..n) as a new NUL-terminated string. */
char *exec__tail_of(const void *p, size_t n, size_t cap, size_t *len);

/* A NULL-terminated vector of strings; `own` marks the ones it frees. */
struct exec__strv {
    char **v;
    unsigned char *own;
    size_t n;
    size_t cap;
};

void exec__strv_init(struct exec__strv *s);
void exec__strv_close(struct exec__strv *s);
/* Append s (copied if copy, else borrowed). FL_ENOMEM. */
int exec__strv_push(struct exec__strv *s, const char *str, int copy);
/* Set "NAME=value" entry kv: replaces an entry with the same NAME, else
 * appends. Borrowed unless copy. FL_ENOMEM, FL_EINVAL (no '='). */
int exec__strv_setenv(struct exec__strv *s, const char *kv, int copy);
/* printf into a new owned entry (appended, or replacing the same NAME= if
 * env). FL_ENOMEM. */
int exec__strv_pushf(struct exec__strv *s, int env, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mkdir -p with mode 0700. FL_EIO with errmsg. */
int exec__mkdirp(const char *path, char *errmsg);

/* 1 if a process of group pgid is alive (a zombie is not), 0 if none. */
int exec__group_alive(int pgid);

/* What a unit is doing (the explicit state machine of exec.c):
 *
 *   RUNNING --timeout/cancel--> KILLING --exit--> REAPING --group gone,
 *      |                                            ^      pipes at EOF--> CLOSING --> DONE
 *      +------------------exit----------------------+
 *   RUNNING (sleep, noop, spawn error) ----------------------------------> CLOSING
 *
 * KILLING: TERM sent, KILL at kill_at. REAPING: the main process has exited;
 * members left get TERM then KILL; pipes drain. CLOSING: the results are
 * fixed and the handles are closing; done() runs from the last close
 * callback. DONE: done() has been called. */
enum exec__state {
    EXEC__RUNNING = 1,
    EXEC__KILLING,
    EXEC__REAPING,
    EXEC__CLOSING,
    EXEC__DONE,
};

struct exec__stream {
    uv_pipe_t pipe;
    int open;       /* handle initialised (to be closed) */
    int reading;    /* read started, EOF not seen */
    uint8_t *chunk; /* the read buffer, passed to log() when full or flushed */
    size_t used;
    uint64_t offset; /* bytes passed to log() so far */
};

struct exec {
    uv_loop_t *loop;
    struct exec_callbacks cb;
    void *data;
    int kind;
    enum exec__state state;

    char **hosts; /* copies */
    unsigned n_hosts;
    char *workdir;                        /* NULL if none */
    char *inventory_path, *playbook_path; /* our temporary files, NULL if none */
    uint32_t timeout_ms, grace_ms, sleep_ms;
    size_t tail_bytes, chunk_bytes;

    /* Handles; `handles` counts those initialised and not yet closed. */
    uv_process_t proc;
    int proc_open;
    int pid; /* == pgid; 0 before spawn */
    int exited;
    struct exec__stream out, err;
    uv_timer_t t_kick;    /* 0 ms: reports started */
    uv_timer_t t_timeout; /* timeout_ms; SLEEP: min(sleep_ms, timeout_ms) */
    uv_timer_t t_kill;    /* KILLING: the grace; REAPING: a poll */
    uv_timer_t t_flush;   /* partial log chunks */
    unsigned handles;

    int reason; /* EXEC_TIMEOUT or EXEC_CANCELLED once killing, else 0 */
    int term_sent, kill_sent;
    uint64_t kill_at; /* loop time the SIGKILL is due (TERM + grace) */
    uint64_t kill_sent_at;
    int gone_seen; /* REAPING: the group was seen empty, at gone_at */
    uint64_t gone_at;
    uint64_t poll_ms; /* REAPING: the next poll interval (backs off) */
    int exit_code;    /* -1 until exit */
    int started_reported;
    int launched; /* a process or timer did start */
    int free_requested;
    int in_done;

    struct exec__tail tail; /* stdout+stderr in arrival order */
    struct fl_buf json;     /* Ansible kinds: stdout */
    int json_overflow;
    char errtext[512]; /* why the unit could not run ("" if it ran) */

    struct exec_host_result *results;
    char **tails; /* owned per-host tails (NULL entries share `unit_tail`) */
    char *unit_tail;
    size_t unit_tail_len;
    int unit_status;
};

/* Ansible (exec_ansible.c). Write the inventory (and playbook) files into
 * e->workdir and append the command line to argv and the ANSIBLE_* settings
 * to env. On failure e->errtext says why and the unit is reported as
 * EXEC_ERROR; returns FL_ENOMEM or FL_EIO/FL_EINVAL. */
int exec__ansible_prepare(struct exec *e, const struct exec_spec *spec, struct exec__strv *argv,
                          struct exec__strv *env);
/* Fill e->results from the JSON on stdout (e->json); the process exited
 * with e->exit_code. FL_ENOMEM only. */
int exec__ansible_results(struct exec *e);
/* Remove the temporary files. */
void exec__ansible_cleanup(struct exec *e);

/* Set host i's result; tail is copied (last tail_bytes kept). FL_ENOMEM. */
int exec__set_result(struct exec *e, unsigned i, int status, int rc, const char *tail,
                     size_t tail_len);

#endif
