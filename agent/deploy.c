/* The deploy executor's command line (agent/agent.h, agent_deploy_argv;
 * docs/DEPLOY.md, "The deploy executor"). Pure: the agent calls it for every
 * deploy RUN, the tests call it alone. */
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "agentproto/aproto.h"
#include "common/err.h"

#define SOURCES_ENV      "FLOTILLA_BLOB_SOURCES="
#define PACKAGE_NAME_MAX 64

/* What deploy-target gets from the agent and never from the task: where the
 * blobs are, the key, who it is on the blob link, the output format. */
static const char *const owned[] = {"--from", "--ca",     "--cert", "--cert-key",
                                    "--name", "--events", "--json", NULL};

/* A package name (fsm_package_name_check): 1-64 of [A-Za-z0-9._-], not
 * starting with '.' or '-'. It is also one safe directory name. */
static int package_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > PACKAGE_NAME_MAX || s[0] == '.' || s[0] == '-') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            return 0;
        }
    }
    return 1;
}

/* "--" (it would make the agent's options positional), or one of the
 * agent's options, alone or as --OPT=VALUE. */
static const char *owned_arg(const char *a)
{
    if (strcmp(a, "--") == 0) {
        return "--";
    }
    for (const char *const *o = owned; *o != NULL; o++) {
        size_t n = strlen(*o);
        if (strncmp(a, *o, n) == 0 && (a[n] == '\0' || a[n] == '=')) {
            return *o;
        }
    }
    return NULL;
}

/* Every comma-separated entry of s is host:port. */
static int sources_ok(const char *s)
{
    char one[APROTO_ADDR_MAX + 1];
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma != NULL ? (size_t)(comma - s) : strlen(s);
        if (n == 0 || n > APROTO_ADDR_MAX) {
            return 0;
        }
        memcpy(one, s, n);
        one[n] = '\0';
        if (!aproto_valid_addr(one)) {
            return 0;
        }
        if (comma == NULL) {
            return 1;
        }
        s = comma + 1;
    }
}

/* The value of option opt in argv[1..argc) (the last one given, as the
 * command line parser takes it), or NULL; *seen says whether opt is there. */
static const char *opt_value(const char *const *argv, unsigned argc, const char *opt, int *seen)
{
    size_t n = strlen(opt);
    const char *v = NULL;
    *seen = 0;
    for (unsigned i = 1; i < argc; i++) {
        if (strcmp(argv[i], opt) == 0) {
            *seen = 1;
            v = i + 1 < argc ? argv[i + 1] : NULL;
        } else if (strncmp(argv[i], opt, n) == 0 && argv[i][n] == '=') {
            *seen = 1;
            v = argv[i] + n + 1;
        }
    }
    return v;
}

int agent_deploy_argv(const struct agent_config *c, const char *exe, const char *const *argv,
                      unsigned argc, const char *const *env, unsigned n_env,
                      struct agent_deploy_cmd *out, char *errmsg)
{
    const char *sources = NULL, *at, *app, *bad;
    const char *apps = c->apps_dir[0] != '\0' ? c->apps_dir : AGENT_APPS_DIR;
    int has_app, has_root;
    unsigned n = 0;

    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < n_env; i++) {
        if (env[i] != NULL && strncmp(env[i], SOURCES_ENV, sizeof SOURCES_ENV - 1) == 0) {
            sources = env[i] + sizeof SOURCES_ENV - 1;
            break;
        }
    }
    if (sources == NULL || sources[0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL,
                       "deploy: the unit has no FLOTILLA_BLOB_SOURCES (the servers' blob links)");
    }
    if (!sources_ok(sources)) {
        return fl_errf(errmsg, FL_EINVAL,
                       "deploy: FLOTILLA_BLOB_SOURCES is not host:port[,host:port...]: %.200s",
                       sources);
    }
    if (c->tls_ca[0] == '\0' || c->tls_cert[0] == '\0' || c->tls_key[0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL,
                       "deploy: this agent has no certificate files to give deploy-target");
    }
    if (exe == NULL || exe[0] == '\0') {
        return fl_errf(errmsg, FL_EINVAL,
                       "deploy: this agent does not know its own executable (/proc/self/exe)");
    }
    if (argc == 0 || argv[0] == NULL || (at = strchr(argv[0], '@')) == NULL ||
        !package_name_ok(argv[0], (size_t)(at - argv[0])) || at[1] == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "deploy: argv[0] must be NAME@VERSION, got \"%.200s\"",
                       argc > 0 && argv[0] != NULL ? argv[0] : "");
    }
    memcpy(out->app, argv[0], (size_t)(at - argv[0]));
    out->app[at - argv[0]] = '\0';
    for (unsigned i = 1; i < argc; i++) {
        if (argv[i] == NULL) {
            return fl_errf(errmsg, FL_EINVAL, "deploy: argv[%u] is missing", i);
        }
        if ((bad = owned_arg(argv[i])) != NULL) {
            return strcmp(bad, "--") == 0
                       ? fl_errf(errmsg, FL_EINVAL,
                                 "deploy: \"--\" in argv would turn the agent's options into "
                                 "arguments")
                       : fl_errf(errmsg, FL_EINVAL,
                                 "deploy: %s is the agent's to give, not the task's", bad);
        }
    }
    if (argc + 17 > AGENT_DEPLOY_ARGV_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "deploy: %u arguments, at most %u", argc,
                       AGENT_DEPLOY_ARGV_MAX - 17);
    }
    app = opt_value(argv, argc, "--app", &has_app);
    opt_value(argv, argc, "--root", &has_root);
    if (!has_app) {
        app = out->app;
    }
    out->argv[n++] = exe;
    out->argv[n++] = "deploy-target";
    for (unsigned i = 0; i < argc; i++) {
        out->argv[n++] = argv[i];
    }
    if (!has_app) {
        out->argv[n++] = "--app";
        out->argv[n++] = out->app;
    }
    out->argv[n++] = "--from";
    out->argv[n++] = sources;
    out->argv[n++] = "--ca";
    out->argv[n++] = c->tls_ca;
    out->argv[n++] = "--cert";
    out->argv[n++] = c->tls_cert;
    out->argv[n++] = "--cert-key";
    out->argv[n++] = c->tls_key;
    out->argv[n++] = "--name";
    out->argv[n++] = c->id;
    out->argv[n++] = "--events";
    if (!has_root) {
        if (app == NULL || !package_name_ok(app, strlen(app))) {
            return fl_errf(errmsg, FL_EINVAL,
                           "deploy: application \"%.100s\" cannot name a directory under %s; "
                           "give --root",
                           app != NULL ? app : "", apps);
        }
        if ((size_t)snprintf(out->root, sizeof out->root, "%s/%s", apps, app) >= sizeof out->root) {
            return fl_errf(errmsg, FL_EINVAL, "deploy: %s/%s is too long", apps, app);
        }
        out->argv[n++] = "--root";
        out->argv[n++] = out->root;
    }
    out->argv[n] = NULL;
    out->argc = n;
    return FL_OK;
}
