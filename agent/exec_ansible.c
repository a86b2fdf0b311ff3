/* The Ansible executors (agent/exec.h): the generated inventory and playbook
 * files, the command line and environment, and the per-host results read
 * from the json stdout callback.
 *
 * The json callback (ansible-core 2.14) prints one object when the run ends:
 *   {"plays": [{"play": {...}, "tasks": [{"task": {"name": ...},
 *               "hosts": {HOST: RESULT, ...}}, ...]}, ...],
 *    "stats": {HOST: {"ok", "failures", "unreachable", "skipped",
 *                     "ignored", "rescued", "changed"}, ...}, ...}
 * A RESULT has "failed": true, "unreachable": true or "skipped": true when
 * so, and "rc", "stdout", "stderr", "msg" when the module gives them; a loop
 * puts the per-item results in "results"; no_log replaces it all by
 * "censored". A failure under ignore_errors also says "failed": true (only
 * the stats tell it apart, as "ignored"), so the stats decide a playbook
 * host's status. Nothing is printed before the end, so a killed run has no
 * JSON at all; a run that could not start (bad playbook syntax) prints
 * nothing on stdout and its reason on stderr.
 *
 * Mapping:
 *   module:   the host's result in the (single) task: unreachable ->
 *             EXEC_UNREACHABLE, failed -> EXEC_FAILED, else EXEC_OK; rc from
 *             "rc" (or the first failed loop item's), else 0 if ok, -1 if
 *             not; tail = stdout, stderr, msg (or, when a module says none of
 *             these, e.g. ping, the result as compact JSON).
 *   playbook: the host's stats: failures -> EXEC_FAILED, else unreachable ->
 *             EXEC_UNREACHABLE, else EXEC_OK; tail for a failed or
 *             unreachable host = "TASK [name] FAILED: " + the failing task's
 *             text (the last failed result of the host, rc from it); for an
 *             ok host the texts of its tasks, one "TASK [name]: text" line
 *             each.
 *   a host absent from the output -> EXEC_ERROR "no result for this host";
 *   no parsable JSON -> every host EXEC_ERROR with the raw output tail. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/exec_int.h"
#include "common/alloc.h"
#include "common/err.h"

/* ---- input checks ------------------------------------------------------------ */

/* A host must stay one host on its inventory line: no spaces (they start
 * host variables), no comment, section, range or quoting characters. */
static int valid_host(const char *h)
{
    if (h == NULL || h[0] == '\0' || strlen(h) > 253) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)h; *p; p++) {
        if (*p <= ' ' || *p >= 0x7f || strchr("#;[]=,\"'\\", *p) != NULL) {
            return 0;
        }
    }
    return 1;
}

static int valid_var(const char *v)
{
    const char *eq = strchr(v, '=');
    if (eq == NULL || eq == v || v[0] == '[' || v[0] == '#' || v[0] == ';') {
        return 0;
    }
    return strpbrk(v, "\r\n") == NULL;
}

static int valid_module(const char *m)
{
    if (m == NULL || m[0] == '\0' || m[0] == '.' || strlen(m) > 200) {
        return 0;
    }
    return strspn(m, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") ==
           strlen(m);
}

static int content_error(struct exec *e, const char *what, const char *value)
{
    snprintf(e->errtext, sizeof e->errtext, "exec: %s%s%.200s%s", what, value ? " \"" : "",
             value ? value : "", value ? "\"" : "");
    return FL_EINVAL;
}

static int check_spec(struct exec *e, const struct exec_spec *spec)
{
    if (e->kind == EXEC_ANSIBLE_MODULE && !valid_module(spec->module)) {
        return content_error(e, "bad module name", spec->module ? spec->module : "");
    }
    if (e->kind == EXEC_PLAYBOOK && (spec->playbook == NULL || spec->playbook[0] == '\0')) {
        return content_error(e, "empty playbook", NULL);
    }
    if (e->n_hosts == 0) {
        return content_error(e, "no hosts for Ansible", NULL);
    }
    if (e->workdir == NULL) {
        return content_error(e, "Ansible needs a workdir", NULL);
    }
    for (unsigned i = 0; i < e->n_hosts; i++) {
        if (!valid_host(e->hosts[i])) {
            return content_error(e, "host name not usable in an inventory:", e->hosts[i]);
        }
    }
    for (const char *const *v = spec->inventory_vars; v != NULL && *v != NULL; v++) {
        if (!valid_var(*v)) {
            return content_error(e, "bad inventory variable (want k=v on one line):", *v);
        }
    }
    return FL_OK;
}

/* ---- files ----------------------------------------------------------------------- */

/* Write data to a new file workdir/NAME-XXXXXX[suffix]; *path gets its name. */
static int write_temp(struct exec *e, const char *name, const char *suffix, const void *data,
                      size_t len, char **path)
{
    struct fl_buf p;
    const char *b = data;
    int fd;
    fl_buf_init(&p);
    if (fl_buf_printf(&p, "%s/%s-XXXXXX%s", e->workdir, name, suffix) != FL_OK) {
        return FL_ENOMEM;
    }
    fd = mkostemps((char *)p.data, (int)strlen(suffix), O_CLOEXEC);
    if (fd < 0) {
        snprintf(e->errtext, sizeof e->errtext, "exec: cannot create %.400s: %s", (char *)p.data,
                 strerror(errno));
        fl_buf_close(&p);
        return FL_EIO;
    }
    *path = (char *)p.data; /* owned by e from here; removed by exec__ansible_cleanup */
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            snprintf(e->errtext, sizeof e->errtext, "exec: cannot write %.400s: %s", *path,
                     strerror(n < 0 ? errno : EIO));
            close(fd);
            return FL_EIO;
        }
        b += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0) {
        snprintf(e->errtext, sizeof e->errtext, "exec: cannot write %.400s: %s", *path,
                 strerror(errno));
        return FL_EIO;
    }
    return FL_OK;
}

static int write_inventory(struct exec *e, const struct exec_spec *spec)
{
    struct fl_buf b;
    int rv = FL_OK;
    fl_buf_init(&b);
    for (unsigned i = 0; i < e->n_hosts && rv == FL_OK; i++) {
        rv = fl_buf_printf(&b, "%s\n", e->hosts[i]);
    }
    if (rv == FL_OK) {
        rv = fl_buf_printf(&b, "\n[all:vars]\n");
    }
    for (const char *const *v = spec->inventory_vars; rv == FL_OK && v != NULL && *v != NULL; v++) {
        rv = fl_buf_printf(&b, "%s\n", *v);
    }
    if (rv == FL_OK) {
        rv = write_temp(e, "flotilla-inventory", ".ini", b.data, b.len, &e->inventory_path);
    }
    fl_buf_close(&b);
    return rv;
}

void exec__ansible_cleanup(struct exec *e)
{
    if (e->inventory_path != NULL) {
        unlink(e->inventory_path);
        fl_free(e->inventory_path);
        e->inventory_path = NULL;
    }
    if (e->playbook_path != NULL) {
        unlink(e->playbook_path);
        fl_free(e->playbook_path);
        e->playbook_path = NULL;
    }
}

/* ---- command line ------------------------------------------------------------------ */

static int push_env(struct exec *e, struct exec__strv *env)
{
    unsigned forks = e->n_hosts < EXEC_ANSIBLE_FORKS ? e->n_hosts : EXEC_ANSIBLE_FORKS;
    int rv = FL_OK;
    /* LOAD_CALLBACK_PLUGINS: ad-hoc `ansible` ignores the stdout callback
     * without it. INVENTORY_ENABLED: our file is INI; no plugin guessing. */
    static const char *const fixed[] = {
        "ANSIBLE_STDOUT_CALLBACK=json",    "ANSIBLE_LOAD_CALLBACK_PLUGINS=1",
        "ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_RETRY_FILES_ENABLED=False",
        "ANSIBLE_INVENTORY_ENABLED=ini",   "ANSIBLE_NOCOLOR=1",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && rv == FL_OK; i++) {
        rv = exec__strv_setenv(env, fixed[i], 0);
    }
    if (rv == FL_OK) {
        rv = exec__strv_pushf(env, 1, "ANSIBLE_FORKS=%u", forks ? forks : 1);
    }
    if (rv == FL_OK) {
        rv = exec__strv_pushf(env, 1, "ANSIBLE_LOCAL_TEMP=%s/ansible-tmp/local", e->workdir);
    }
    if (rv == FL_OK) {
        rv = exec__strv_pushf(env, 1, "ANSIBLE_REMOTE_TEMP=%s/ansible-tmp/remote", e->workdir);
    }
    return rv;
}

int exec__ansible_prepare(struct exec *e, const struct exec_spec *spec, struct exec__strv *argv,
                          struct exec__strv *env)
{
    int rv = check_spec(e, spec);
    if (rv != FL_OK) {
        return rv;
    }
    if ((rv = write_inventory(e, spec)) != FL_OK) {
        return rv;
    }
    if (e->kind == EXEC_PLAYBOOK) {
        rv = write_temp(e, "flotilla-playbook", ".yml", spec->playbook, strlen(spec->playbook),
                        &e->playbook_path);
        if (rv != FL_OK) {
            return rv;
        }
        rv = exec__strv_push(argv, "ansible-playbook", 0);
        rv = rv ? rv : exec__strv_push(argv, "-i", 0);
        rv = rv ? rv : exec__strv_push(argv, e->inventory_path, 0);
        rv = rv ? rv : exec__strv_push(argv, e->playbook_path, 0);
    } else {
        rv = exec__strv_push(argv, "ansible", 0);
        rv = rv ? rv : exec__strv_push(argv, "all", 0);
        rv = rv ? rv : exec__strv_push(argv, "-i", 0);
        rv = rv ? rv : exec__strv_push(argv, e->inventory_path, 0);
        rv = rv ? rv : exec__strv_push(argv, "-m", 0);
        rv = rv ? rv : exec__strv_push(argv, spec->module, 0);
        /* --args=X, not -a X: arguments starting with '-' stay arguments. */
        if (rv == FL_OK && spec->module_args != NULL && spec->module_args[0] != '\0') {
            rv = exec__strv_pushf(argv, 0, "--args=%s", spec->module_args);
        }
    }
    return rv != FL_OK ? rv : push_env(e, env);
}

/* ---- results ------------------------------------------------------------------------- */

static int is_true(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

/* Append s on a line of its own (s may be "" to just end the current line). */
static int append_text(struct fl_buf *b, const char *s)
{
    int rv = FL_OK;
    if (s == NULL) {
        return FL_OK;
    }
    if (b->len > 0 && b->data[b->len - 1] != '\n') {
        rv = fl_buf_append(b, "\n", 1);
    }
    return rv != FL_OK ? rv : fl_buf_append(b, s, strlen(s));
}

/* Append v as compact JSON. */
static int append_json(struct fl_buf *b, const json_t *v)
{
    size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    size_t n = json_dumpb(v, NULL, 0, flags);
    int rv = FL_OK;
    if (n > 0 && (rv = fl_buf_reserve(b, n + 1)) == FL_OK) {
        json_dumpb(v, (char *)b->data + b->len, n, flags);
        b->len += n;
        b->data[b->len] = '\0';
    }
    return rv;
}

/* The human text of one result: its loop items' texts, then its own
 * stdout, stderr, msg and (no_log) censored. */
static int result_text(const json_t *r, struct fl_buf *b)
{
    static const char *const keys[] = {"stdout", "stderr", "msg", "censored"};
    const json_t *items = json_object_get(r, "results");
    int rv = FL_OK;
    if (json_is_array(items)) {
        size_t i;
        const json_t *it;
        json_array_foreach(items, i, it)
        {
            if (json_is_object(it) && !is_true(it, "skipped") && rv == FL_OK) {
                rv = result_text(it, b);
            }
        }
    }
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && rv == FL_OK; k++) {
        const json_t *v = json_object_get(r, keys[k]);
        if (json_is_string(v)) {
            rv = json_string_length(v) > 0 ? append_text(b, json_string_value(v)) : FL_OK;
        } else if (v != NULL && !json_is_null(v)) { /* debug: msg=[...] or {...} */
            rv = append_text(b, "");
            rv = rv ? rv : append_json(b, v);
        }
    }
    return rv;
}

/* The result as compact JSON without the bookkeeping keys (for modules that
 * say nothing in text, like ping). */
static int result_dump(const json_t *r, struct fl_buf *b)
{
    json_t *c = json_copy((json_t *)(uintptr_t)r);
    const char *k;
    json_t *v, *tmp;
    int rv;
    if (c == NULL) {
        return FL_ENOMEM;
    }
    json_object_foreach_safe(c, tmp, k, v)
    {
        if (strncmp(k, "_ansible", 8) == 0 || strcmp(k, "invocation") == 0 ||
            strcmp(k, "ansible_facts") == 0) {
            json_object_del(c, k);
        }
    }
    rv = append_json(b, c);
    json_decref(c);
    return rv;
}

/* "rc" of a result, or of its first failed loop item; dflt if none. */
static int result_rc(const json_t *r, int dflt)
{
    const json_t *rc = json_object_get(r, "rc");
    const json_t *items = json_object_get(r, "results");
    if (json_is_integer(rc)) {
        return (int)json_integer_value(rc);
    }
    if (json_is_array(items)) {
        size_t i;
        const json_t *it;
        json_array_foreach(items, i, it)
        {
            rc = json_object_get(it, "rc");
            if (is_true(it, "failed") && json_is_integer(rc)) {
                return (int)json_integer_value(rc);
            }
        }
    }
    return dflt;
}

/* Calls fn(task, host_result, arg) for every task result of host, in order. */
typedef int (*task_fn)(const json_t *task, const json_t *r, void *arg);

static int each_result(const json_t *root, const char *host, task_fn fn, void *arg)
{
    const json_t *play, *task;
    size_t i, j;
    int rv = FL_OK;
    json_array_foreach(json_object_get(root, "plays"), i, play)
    {
        json_array_foreach(json_object_get(play, "tasks"), j, task)
        {
            const json_t *r = json_object_get(json_object_get(task, "hosts"), host);
            if (json_is_object(r) && (rv = fn(task, r, arg)) != FL_OK) {
                return rv;
            }
        }
    }
    return rv;
}

static const char *task_name(const json_t *task)
{
    const char *n = json_string_value(json_object_get(json_object_get(task, "task"), "name"));
    return n != NULL ? n : "";
}

struct last_match {
    const char *flag; /* "failed" or "unreachable"; NULL = any */
    const json_t *task, *r;
};

static int take_last(const json_t *task, const json_t *r, void *arg)
{
    struct last_match *m = arg;
    if (m->flag == NULL || is_true(r, m->flag)) {
        m->task = task;
        m->r = r;
    }
    return FL_OK;
}

static int append_task_line(const json_t *task, const json_t *r, void *arg)
{
    struct fl_buf *b = arg;
    struct fl_buf t;
    int rv;
    if (is_true(r, "skipped")) {
        return FL_OK;
    }
    fl_buf_init(&t);
    rv = result_text(r, &t);
    if (rv == FL_OK && t.len > 0) {
        rv = fl_buf_printf(b, "TASK [%s]: %s\n", task_name(task), (char *)t.data);
    }
    fl_buf_close(&t);
    return rv;
}

static int module_host(struct exec *e, const json_t *root, unsigned i, struct fl_buf *b)
{
    struct last_match m = {NULL, NULL, NULL};
    int status, rc, rv;
    each_result(root, e->hosts[i], take_last, &m);
    if (m.r == NULL) {
        static const char msg[] = "exec: no result for this host in Ansible's output";
        return exec__set_result(e, i, EXEC_ERROR, -1, msg, sizeof msg - 1);
    }
    if (is_true(m.r, "unreachable")) {
        status = EXEC_UNREACHABLE;
        rc = -1;
    } else if (is_true(m.r, "failed")) {
        status = EXEC_FAILED;
        rc = result_rc(m.r, -1);
    } else {
        status = EXEC_OK;
        rc = result_rc(m.r, 0);
    }
    rv = result_text(m.r, b);
    if (rv == FL_OK && b->len == 0) {
        rv = result_dump(m.r, b);
    }
    if (rv != FL_OK) {
        return rv;
    }
    return exec__set_result(e, i, status, rc, (const char *)b->data, b->len);
}

static int playbook_host(struct exec *e, const json_t *root, unsigned i, struct fl_buf *b)
{
    const json_t *st = json_object_get(json_object_get(root, "stats"), e->hosts[i]);
    struct last_match m = {NULL, NULL, NULL};
    int status, rc = 0, rv = FL_OK;
    if (!json_is_object(st)) {
        static const char msg[] = "exec: no result for this host in Ansible's output";
        return exec__set_result(e, i, EXEC_ERROR, -1, msg, sizeof msg - 1);
    }
    if (json_integer_value(json_object_get(st, "failures")) > 0) {
        status = EXEC_FAILED;
        m.flag = "failed";
    } else if (json_integer_value(json_object_get(st, "unreachable")) > 0) {
        status = EXEC_UNREACHABLE;
        m.flag = "unreachable";
    } else {
        status = EXEC_OK;
    }
    if (m.flag != NULL) {
        each_result(root, e->hosts[i], take_last, &m);
        rc = -1;
        if (m.r != NULL) {
            struct fl_buf t;
            fl_buf_init(&t);
            rc = status == EXEC_FAILED ? result_rc(m.r, -1) : -1;
            rv = result_text(m.r, &t);
            rv = rv ? rv
                    : fl_buf_printf(b, "TASK [%s] %s: %s", task_name(m.task),
                                    status == EXEC_FAILED ? "FAILED" : "UNREACHABLE",
                                    t.len ? (char *)t.data : "");
            fl_buf_close(&t);
        }
    } else {
        rv = each_result(root, e->hosts[i], append_task_line, b);
    }
    if (rv != FL_OK) {
        return rv;
    }
    return exec__set_result(e, i, status, rc, (const char *)b->data, b->len);
}

/* The JSON object on stdout. Anything printed before it (a plugin's stray
 * line) is skipped: the object starts at the first '{' that begins a line. */
static json_t *load_json(const struct exec *e)
{
    const char *p = (const char *)e->json.data;
    size_t n = e->json.len;
    json_error_t err;
    if (e->json_overflow || p == NULL) {
        return NULL;
    }
    while (n > 0 && *p != '{') {
        const char *nl = memchr(p, '\n', n);
        if (nl == NULL) {
            return NULL;
        }
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    return n > 0 ? json_loadb(p, n, JSON_DISABLE_EOF_CHECK, &err) : NULL;
}

int exec__ansible_results(struct exec *e)
{
    json_t *root = load_json(e);
    struct fl_buf b;
    int rv = FL_OK;
    if (!json_is_object(root) || !json_is_object(json_object_get(root, "stats"))) {
        json_decref(root);
        return FL_OK; /* every host stays EXEC_ERROR with the raw output tail */
    }
    fl_buf_init(&b);
    for (unsigned i = 0; i < e->n_hosts; i++) {
        int r;
        fl_buf_reset(&b);
        r = e->kind == EXEC_PLAYBOOK ? playbook_host(e, root, i, &b) : module_host(e, root, i, &b);
        if (r != FL_OK) {
            rv = r;
            exec__set_result(e, i, EXEC_ERROR, -1, "exec: out of memory", 19);
        }
    }
    fl_buf_close(&b);
    json_decref(root);
    return rv;
}
