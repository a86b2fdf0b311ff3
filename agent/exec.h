/* agent/exec — the executors that run one unit on an agent.
 *
 * A unit is one command, shell script, Ansible module, playbook, no-op,
 * sleep or deploy over the unit's hosts (DESIGN "Data flow of one task", step 4: "the
 * agent runs the unit (per-host results, logs streamed back in bounded
 * chunks), enforces the timeout by killing the whole process group").
 *
 * Processes. Every unit process is started with uv_spawn(UV_PROCESS_DETACHED),
 * which calls setsid() in the child: the unit is a session and a process
 * group of its own, with pgid == pid, and everything it forks stays in that
 * group unless it calls setsid() itself (a process that does escapes us; only
 * cgroups would catch it). stdin is /dev/null; stdout and stderr are pipes
 * read by the loop. Every descriptor libuv and this module open is
 * close-on-exec, so none reaches a unit (one the agent process itself
 * inherited without FD_CLOEXEC would; the agent should not keep any). The
 * working directory is
 * spec->workdir when given, else the agent's. The environment is the agent's
 * own, then spec->env (a NAME in spec->env replaces the agent's value), then
 * for Ansible the ANSIBLE_* settings below (these win: the JSON output is
 * what the results are parsed from).
 *
 * Killing. At the timeout or on exec_cancel the whole group gets SIGTERM, and
 * SIGKILL kill_grace_ms later if any member is still alive. When the main
 * process exits on its own and members of its group are left (`sleep 300 &`),
 * they get the same treatment: TERM, KILL after the grace. done() is called
 * only once no live process of the group is left (zombies waiting for their
 * new parent do not count) and both pipes are at end of file, or, in the
 * worst case, after bounded waits (EXEC_DRAIN_MS for output held open by a
 * process outside the group, EXEC_REAP_MS for a process that survives
 * SIGKILL, e.g. in uninterruptible sleep), which are logged.
 *
 * Ansible (EXEC_ANSIBLE_MODULE, EXEC_PLAYBOOK). The executor writes an INI
 * inventory (the hosts one per line, then [all:vars] with inventory_vars) and,
 * for a playbook, the YAML text to new files in workdir, and runs
 *     ansible all -i INVENTORY -m MODULE --args=MODULE_ARGS
 *     ansible-playbook -i INVENTORY PLAYBOOK
 * (both looked up in PATH) with ANSIBLE_STDOUT_CALLBACK=json,
 * ANSIBLE_LOAD_CALLBACK_PLUGINS=1, ANSIBLE_HOST_KEY_CHECKING=False,
 * ANSIBLE_RETRY_FILES_ENABLED=False, ANSIBLE_INVENTORY_ENABLED=ini,
 * ANSIBLE_NOCOLOR=1, ANSIBLE_LOCAL_TEMP/ANSIBLE_REMOTE_TEMP under workdir and
 * ANSIBLE_FORKS = min(n_hosts, 50). The per-host results come from the JSON
 * on stdout (see exec_ansible.c for the mapping); both streams are still
 * logged and kept as the unit's tail. The files are removed before done().
 *
 * Callbacks. Each is called from the loop, never synchronously from
 * exec_start or exec_cancel:
 *   started  at most once, before done, when the process is running (pid 0
 *            for noop and sleep); not called when nothing could be started;
 *   log      any number of times, after started and before done (may be
 *            NULL);
 *   done     exactly once for every exec_start that returned FL_OK, after
 *            every libuv handle of the unit is closed, so exec_free may be
 *            called from inside it.
 * The callbacks may call exec_cancel (on this or another exec) and
 * exec_start; only done may call exec_free on its own exec. */
#ifndef FL_AGENT_EXEC_H
#define FL_AGENT_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* The numbers are the agent protocol's (agentproto/aproto.h enum aproto_exec
 * and enum aproto_status) and the store's. */
enum exec_kind {
    EXEC_EXEC = 1,           /* argv, no shell */
    EXEC_SHELL = 2,          /* /bin/sh -c script */
    EXEC_ANSIBLE_MODULE = 3, /* ansible all -m module --args=module_args */
    EXEC_PLAYBOOK = 4,       /* ansible-playbook of the YAML text */
    EXEC_NOOP = 5,           /* every host ok, next loop iteration */
    EXEC_SLEEP = 6,          /* a timer, no process */
    EXEC_DEPLOY = 7          /* `flotilla deploy-target`: argv as for EXEC, the whole command
                                line (the agent builds it: agent_deploy_argv) */
};

enum exec_status {
    EXEC_OK = 1,
    EXEC_FAILED = 2,      /* ran and failed (non-zero exit, failed module or task) */
    EXEC_TIMEOUT = 3,     /* timeout_ms elapsed; the group was killed */
    EXEC_CANCELLED = 4,   /* exec_cancel; the group was killed */
    EXEC_ERROR = 5,       /* could not run, or no result for this host */
    EXEC_UNREACHABLE = 6, /* Ansible could not connect to the host */
};

#define EXEC_KILL_GRACE_MS   5000u  /* default kill_grace_ms */
#define EXEC_TAIL_BYTES      4096u  /* default tail_bytes */
#define EXEC_LOG_CHUNK_BYTES 16384u /* default log_chunk_bytes */
#define EXEC_LOG_CHUNK_MAX   (1024u * 1024u)
#define EXEC_LOG_FLUSH_MS    200u /* a partial log chunk is passed on after this long */
#define EXEC_ANSIBLE_FORKS   50u  /* cap of ANSIBLE_FORKS */
#define EXEC_JSON_MAX        (64u * 1024u * 1024u) /* Ansible stdout kept for parsing */
#define EXEC_DRAIN_MS        1000u                 /* output still open once the group is gone */
#define EXEC_REAP_MS         2000u                 /* a group member still alive after SIGKILL */

/* What to run. exec_start copies what it keeps: the spec and every string
 * and array it points to may be freed as soon as exec_start returns. */
struct exec_spec {
    int kind; /* enum exec_kind */
    const char *const *hosts;
    unsigned n_hosts;
    const char *const *argv; /* EXEC, DEPLOY: NULL-terminated; argv[0] looked up in PATH, no
                                shell */
    const char *script;      /* SHELL: run with /bin/sh -c */
    const char *module;      /* ANSIBLE_MODULE: [A-Za-z0-9_.]+, e.g. ansible.builtin.command */
    const char *module_args; /* ANSIBLE_MODULE: may be NULL or "" (no --args) */
    const char *playbook;    /* PLAYBOOK: the YAML text */
    uint32_t sleep_ms;       /* SLEEP */
    uint32_t timeout_ms;     /* 0 = none */
    uint32_t kill_grace_ms;  /* between TERM and KILL; 0 = EXEC_KILL_GRACE_MS */
    /* Extra "NAME=value" for the process, NULL-terminated, may be NULL (the
     * agent passes FLOTILLA_TASK_ID, FLOTILLA_UNIT, FLOTILLA_HOSTS,
     * FLOTILLA_ATTEMPT and FLOTILLA_FENCING_TOKEN). */
    const char *const *env;
    /* "k=v" lines for [all:vars] of the generated inventory, NULL-terminated,
     * may be NULL; no newlines. */
    const char *const *inventory_vars;
    /* A directory for the unit: its working directory and the place of the
     * temporary files (inventory, playbook, Ansible temp dirs); created
     * (mode 0700, parents too) if missing. Required for Ansible kinds; the
     * caller removes it when it wants to. */
    const char *workdir;
    /* Not NULL: the unit does not start; done() reports EXEC_ERROR for every
     * host with this text as the tail (the agent's refusal of a unit it
     * will not run as sent, e.g. a deploy without blob sources). */
    const char *refuse;
    size_t tail_bytes;      /* kept tail of the output; 0 = EXEC_TAIL_BYTES */
    size_t log_chunk_bytes; /* largest log() chunk; 0 = EXEC_LOG_CHUNK_BYTES, at most
                               EXEC_LOG_CHUNK_MAX */
};

/* One host's outcome. host and tail point into the exec and are valid during
 * done() only. tail is the last bytes (at most tail_bytes) of the host's
 * output, not NUL-terminated; for exec and shell every host has the
 * process's tail (stdout and stderr interleaved in arrival order). */
struct exec_host_result {
    const char *host;
    int status; /* enum exec_status */
    int rc;     /* exit code (128 + signal if killed by one); -1 if none */
    const char *tail;
    size_t tail_len;
};

struct exec_callbacks {
    /* The process is running (its pid, also its pgid); 0 for noop and sleep. */
    void (*started)(void *data, int pid);
    /* Output. host is "" (the whole unit); stream 1 = stdout, 2 = stderr;
     * offset = bytes of this stream passed before this chunk, so the chunks
     * of a stream are contiguous; 0 < n <= log_chunk_bytes; p is valid during
     * the call. May be NULL. */
    void (*log)(void *data, const char *host, int stream, uint64_t offset, const uint8_t *p,
                size_t n);
    /* The unit is over. unit_status is EXEC_OK when every host is ok;
     * EXEC_TIMEOUT/EXEC_CANCELLED when it was killed for that reason (every
     * host has that status); otherwise EXEC_FAILED if a host failed, else
     * EXEC_UNREACHABLE if a host was unreachable, else EXEC_ERROR. exit_code
     * is the main process's (128 + signal if killed by one), 0 for noop and
     * sleep, -1 if nothing ran. results has one entry per spec host, in the
     * spec's order; it and its strings are valid during the call only. */
    void (*done)(void *data, int unit_status, int exit_code, const struct exec_host_result *results,
                 unsigned n);
};

struct exec;

/* Start a unit on loop. cb is copied; data is passed to every callback.
 *
 * Returns FL_OK with *out set: done() will be called exactly once. Problems
 * of the unit itself (spec->refuse, unknown kind, missing
 * argv/script/module/playbook, a host name or inventory var that would not
 * survive the INI inventory, a workdir that cannot be created, a temporary
 * file that cannot be written, a command that cannot be started) are not
 * errors of exec_start: done()
 * reports EXEC_ERROR for every host with the reason as the tail, e.g.
 * "exec: nosuchcmd: No such file or directory".
 *
 * Errors (no callback is ever called, *out is untouched, errmsg says why):
 *   FL_EINVAL  loop, spec, cb, cb->done or out is NULL, or hosts is NULL
 *              with n_hosts > 0;
 *   FL_ENOMEM  out of memory. */
int exec_start(uv_loop_t *loop, const struct exec_spec *spec, const struct exec_callbacks *cb,
               void *data, struct exec **out, char *errmsg /* FL_ERRMSG_SIZE, may be NULL */);

/* Kill the unit: SIGTERM to its whole process group, SIGKILL after the
 * grace (a sleep just stops); done() then reports EXEC_CANCELLED for every
 * host. No-op once the outcome is decided: after a timeout (which stays
 * EXEC_TIMEOUT), after the process has exited on its own, and after done().
 * Safe to call any number of times until exec_free. */
void exec_cancel(struct exec *e);

/* Free the exec. Only after done() has returned, or from within done()
 * (the memory then goes when done returns). NULL is a no-op. */
void exec_free(struct exec *e);

#endif
