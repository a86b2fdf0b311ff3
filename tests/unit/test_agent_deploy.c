/* The deploy executor's pieces that need no cluster: the command line an
 * agent builds for a deploy unit (agent_deploy_argv: what it adds, the
 * default root from --app or from the package name, every refusal) and the
 * task spec of kind deploy (spec/spec.c) surviving its encoding. */
#include <string.h>

#include "agent/agent.h"
#include "check.h"
#include "common/buf.h"
#include "common/err.h"
#include "schema/schema.h"
#include "spec/spec.h"

#define EXE "/usr/local/bin/flotilla"

static const char *const sources_env[] = {
    "FLOTILLA_TASK_ID=d1", "FLOTILLA_UNIT=0", "FLOTILLA_BLOB_SOURCES=10.0.0.2:8701,10.0.0.1:8701",
    "FLOTILLA_BLOB_SOURCES=10.9.9.9:1", /* only the first counts */
};

static struct agent_config config(const char *apps)
{
    struct agent_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "web-1");
    snprintf(c.tls_ca, sizeof c.tls_ca, "/etc/flotilla/ca.pem");
    snprintf(c.tls_cert, sizeof c.tls_cert, "/etc/flotilla/web-1.pem");
    snprintf(c.tls_key, sizeof c.tls_key, "/etc/flotilla/web-1.key");
    snprintf(c.apps_dir, sizeof c.apps_dir, "%s", apps);
    return c;
}

/* out's argv is exactly want (NULL-terminated). */
static int argv_is(const struct agent_deploy_cmd *out, const char *const *want)
{
    unsigned n = 0;
    for (; want[n] != NULL; n++) {
        if (n >= out->argc || out->argv[n] == NULL || strcmp(out->argv[n], want[n]) != 0) {
            fprintf(stderr, "argv[%u]: \"%s\", want \"%s\"\n", n,
                    n < out->argc && out->argv[n] ? out->argv[n] : "(none)", want[n]);
            return 0;
        }
    }
    if (out->argc != n || out->argv[n] != NULL) {
        fprintf(stderr, "argc %u, want %u\n", out->argc, n);
        return 0;
    }
    return 1;
}

TEST(deploy_argv_full)
{
    static const char *const argv[] = {
        "web@2",      "--hash",           "ab12", "--size", "4198400", "--app", "web", "--health",
        "test -f ok", "--health-timeout", "30s",  "--keep", "5"};
    static const char *const want[] = {EXE,
                                       "deploy-target",
                                       "web@2",
                                       "--hash",
                                       "ab12",
                                       "--size",
                                       "4198400",
                                       "--app",
                                       "web",
                                       "--health",
                                       "test -f ok",
                                       "--health-timeout",
                                       "30s",
                                       "--keep",
                                       "5",
                                       "--from",
                                       "10.0.0.2:8701,10.0.0.1:8701",
                                       "--ca",
                                       "/etc/flotilla/ca.pem",
                                       "--cert",
                                       "/etc/flotilla/web-1.pem",
                                       "--cert-key",
                                       "/etc/flotilla/web-1.key",
                                       "--name",
                                       "web-1",
                                       "--events",
                                       "--root",
                                       "/srv/flotilla/web",
                                       NULL};
    struct agent_config c = config(""); /* "": AGENT_APPS_DIR */
    struct agent_deploy_cmd out;
    char err[FL_ERRMSG_SIZE] = "";
    CHECK_OK(agent_deploy_argv(&c, EXE, argv, 13, sources_env, 4, &out, err));
    CHECK(argv_is(&out, want));
    CHECK_EQ_STR(err, "");
}

TEST(deploy_argv_root_given_or_defaulted)
{
    static const char *const with_root[] = {"web@2",     "--app",      "web",         "--root",
                                            "/data/web", "--pre-hook", "make migrate"};
    static const char *const want_root[] = {EXE,
                                            "deploy-target",
                                            "web@2",
                                            "--app",
                                            "web",
                                            "--root",
                                            "/data/web",
                                            "--pre-hook",
                                            "make migrate",
                                            "--from",
                                            "10.0.0.2:8701,10.0.0.1:8701",
                                            "--ca",
                                            "/etc/flotilla/ca.pem",
                                            "--cert",
                                            "/etc/flotilla/web-1.pem",
                                            "--cert-key",
                                            "/etc/flotilla/web-1.key",
                                            "--name",
                                            "web-1",
                                            "--events",
                                            NULL};
    static const char *const root_eq[] = {"web@2", "--app", "web", "--root=/data/web"};
    /* No --app: the package's name is the application. */
    static const char *const no_app[] = {"api-svc@1.4.2+b7", "--hash", "ab12", "--size", "10"};
    static const char *const want_no_app[] = {EXE,
                                              "deploy-target",
                                              "api-svc@1.4.2+b7",
                                              "--hash",
                                              "ab12",
                                              "--size",
                                              "10",
                                              "--app",
                                              "api-svc",
                                              "--from",
                                              "10.0.0.2:8701,10.0.0.1:8701",
                                              "--ca",
                                              "/etc/flotilla/ca.pem",
                                              "--cert",
                                              "/etc/flotilla/web-1.pem",
                                              "--cert-key",
                                              "/etc/flotilla/web-1.key",
                                              "--name",
                                              "web-1",
                                              "--events",
                                              "--root",
                                              "/opt/apps/api-svc",
                                              NULL};
    /* --app=NAME, and the last --app given wins (as deploy-target reads it). */
    static const char *const app_eq[] = {"web@2", "--app", "first", "--app=shop"};
    struct agent_config c = config("/opt/apps");
    struct agent_deploy_cmd out;
    char err[FL_ERRMSG_SIZE];

    CHECK_OK(agent_deploy_argv(&c, EXE, with_root, 7, sources_env, 3, &out, err));
    CHECK(argv_is(&out, want_root));
    CHECK_OK(agent_deploy_argv(&c, EXE, root_eq, 4, sources_env, 3, &out, err));
    CHECK_EQ_STR(out.argv[out.argc - 1], "--events"); /* no --root added */

    CHECK_OK(agent_deploy_argv(&c, EXE, no_app, 5, sources_env, 3, &out, err));
    CHECK(argv_is(&out, want_no_app));

    CHECK_OK(agent_deploy_argv(&c, EXE, app_eq, 4, sources_env, 3, &out, err));
    REQUIRE(out.argc >= 2);
    CHECK_EQ_STR(out.argv[out.argc - 2], "--root");
    CHECK_EQ_STR(out.argv[out.argc - 1], "/opt/apps/shop");
}

/* argv must be refused, with a message that holds `says`. */
static void refused(const struct agent_config *c, const char *exe, const char *const *argv,
                    unsigned argc, const char *const *env, unsigned n_env, const char *says)
{
    struct agent_deploy_cmd out;
    char err[FL_ERRMSG_SIZE] = "";
    int rv = agent_deploy_argv(c, exe, argv, argc, env, n_env, &out, err);
    if (rv != FL_EINVAL || strstr(err, says) == NULL) {
        fprintf(stderr, "want a refusal saying \"%s\": %s, \"%s\"\n", says, fl_errname(rv), err);
    }
    CHECK_EQ_INT(rv, FL_EINVAL);
    CHECK(strstr(err, says) != NULL);
    CHECK(strncmp(err, "deploy: ", 8) == 0);
}

TEST(deploy_argv_refusals)
{
    static const char *const good[] = {"web@2", "--app", "web"};
    static const char *const no_sources[] = {"FLOTILLA_UNIT=0"};
    static const char *const empty_sources[] = {"FLOTILLA_BLOB_SOURCES="};
    static const char *const bad_source[] = {"FLOTILLA_BLOB_SOURCES=10.0.0.1:8701,nope"};
    static const char *const trailing_comma[] = {"FLOTILLA_BLOB_SOURCES=10.0.0.1:8701,"};
    static const char *const names[][1] = {{"web"},  {"@2"},   {"web@"},  {"../x@1"},
                                           {"-x@1"}, {".x@1"}, {"a/b@1"}, {""}};
    static const char *const owned[][3] = {{"web@2", "--from", "10.6.6.6:1"},
                                           {"web@2", "--cert-key", "/tmp/other.key"},
                                           {"web@2", "--ca=/tmp/other.pem", "x"},
                                           {"web@2", "--name", "evil"},
                                           {"web@2", "--events", "x"},
                                           {"web@2", "--json", "x"},
                                           {"web@2", "--", "--x"},
                                           {"web@2", "--health", "--from"}};
    static const char *const bad_app[] = {"web@2", "--app", "../etc"};
    static const char *const bad_app_rooted[] = {"web@2", "--app", "../etc", "--root", "/d"};
    const char **many = calloc(AGENT_DEPLOY_ARGV_MAX, sizeof *many);
    struct agent_config c = config("/srv/apps"), no_key = config("/srv/apps");
    struct agent_deploy_cmd out;
    char err[FL_ERRMSG_SIZE];

    REQUIRE(many != NULL);
    refused(&c, EXE, good, 3, NULL, 0, "no FLOTILLA_BLOB_SOURCES");
    refused(&c, EXE, good, 3, no_sources, 1, "no FLOTILLA_BLOB_SOURCES");
    refused(&c, EXE, good, 3, empty_sources, 1, "no FLOTILLA_BLOB_SOURCES");
    refused(&c, EXE, good, 3, bad_source, 1, "not host:port");
    refused(&c, EXE, good, 3, trailing_comma, 1, "not host:port");
    no_key.tls_key[0] = '\0';
    refused(&no_key, EXE, good, 3, sources_env, 3, "no certificate files");
    refused(&c, "", good, 3, sources_env, 3, "own executable");
    refused(&c, NULL, good, 3, sources_env, 3, "own executable");
    refused(&c, EXE, good, 0, sources_env, 3, "NAME@VERSION");
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        refused(&c, EXE, names[i], 1, sources_env, 3, "NAME@VERSION");
    }
    refused(&c, EXE, owned[0], 3, sources_env, 3, "--from is the agent's");
    refused(&c, EXE, owned[1], 3, sources_env, 3, "--cert-key is the agent's");
    refused(&c, EXE, owned[2], 3, sources_env, 3, "--ca is the agent's");
    refused(&c, EXE, owned[3], 3, sources_env, 3, "--name is the agent's");
    refused(&c, EXE, owned[4], 3, sources_env, 3, "--events is the agent's");
    refused(&c, EXE, owned[5], 3, sources_env, 3, "--json is the agent's");
    refused(&c, EXE, owned[6], 3, sources_env, 3, "\"--\" in argv");
    refused(&c, EXE, owned[7], 3, sources_env, 3, "--from is the agent's");
    /* The application names a directory only when it makes the root. */
    refused(&c, EXE, bad_app, 3, sources_env, 3, "cannot name a directory under /srv/apps");
    CHECK_OK(agent_deploy_argv(&c, EXE, bad_app_rooted, 5, sources_env, 3, &out, err));
    /* As many arguments as a RUN carries fit; more do not. */
    many[0] = "web@2";
    for (unsigned i = 1; i < AGENT_DEPLOY_ARGV_MAX; i++) {
        many[i] = "x";
    }
    CHECK_OK(agent_deploy_argv(&c, EXE, many, 256, sources_env, 3, &out, err));
    CHECK_EQ_INT(out.argc, 256 + 17);
    CHECK(out.argv[out.argc] == NULL);
    CHECK_OK(
        agent_deploy_argv(&c, EXE, many, AGENT_DEPLOY_ARGV_MAX - 17, sources_env, 3, &out, err));
    refused(&c, EXE, many, AGENT_DEPLOY_ARGV_MAX - 16, sources_env, 3, "arguments");
    free(many);
}

/* A task of kind deploy keeps its kind and argv through the spec encoding;
 * a kind past deploy is refused. */
/* The spec's arrays keep a NULL after their last element: their maximum
 * is one below their capacity, on both sides. */
TEST(spec_arrays_stay_null_terminated)
{
    char err[FL_ERRMSG_SIZE] = "";
    struct node_spec s, d;
    struct fl_buf b;
    CHECK_OK(schema_table_check(&node_spec_schema, err));
    memset(&s, 0, sizeof s);
    s.kind = NODE_EXEC;
    s.argc = NODE_SPEC_ARGV_MAX;
    for (unsigned i = 0; i < NODE_SPEC_ARGV_MAX; i++) {
        s.argv[i] = "x";
    }
    s.n_env = NODE_SPEC_ENV_MAX;
    for (unsigned i = 0; i < NODE_SPEC_ENV_MAX; i++) {
        s.env[i] = "A=1";
    }
    CHECK_OK(schema_validate(&node_spec_schema, &s, SIZE_MAX, err));
    fl_buf_init(&b);
    REQUIRE(node_spec_encode(&s, &b) == FL_OK);
    REQUIRE(node_spec_decode(b.data, b.len, &d) == FL_OK);
    CHECK(d.argc == NODE_SPEC_ARGV_MAX && d.argv[NODE_SPEC_ARGV_MAX] == NULL);
    CHECK(d.n_env == NODE_SPEC_ENV_MAX && d.env[NODE_SPEC_ENV_MAX] == NULL);
    node_spec_close(&d);
    /* one more: refused by the validator and by the decoder */
    s.argc = NODE_SPEC_ARGV_MAX + 1;
    s.argv[NODE_SPEC_ARGV_MAX] = "y";
    CHECK_EQ_INT(schema_validate(&node_spec_schema, &s, SIZE_MAX, err), FL_EINVAL);
    fl_buf_reset(&b);
    REQUIRE(node_spec_encode(&s, &b) == FL_OK);
    CHECK_EQ_INT(node_spec_decode(b.data, b.len, &d), FL_EDECODE);
    s.argc = 1;
    s.n_env = NODE_SPEC_ENV_MAX + 1;
    s.env[NODE_SPEC_ENV_MAX] = "B=2";
    CHECK_EQ_INT(schema_validate(&node_spec_schema, &s, SIZE_MAX, err), FL_EINVAL);
    fl_buf_reset(&b);
    REQUIRE(node_spec_encode(&s, &b) == FL_OK);
    CHECK_EQ_INT(node_spec_decode(b.data, b.len, &d), FL_EDECODE);
    fl_buf_close(&b);
}

TEST(spec_deploy_roundtrip)
{
    static const char *const argv[] = {"web@2", "--hash", "ab12",   "--size", "4198400",
                                       "--app", "web",    "--keep", "5"};
    struct node_spec s, d;
    struct fl_buf b;
    memset(&s, 0, sizeof s);
    s.kind = NODE_DEPLOY;
    s.argc = 9;
    for (unsigned i = 0; i < 9; i++) {
        s.argv[i] = argv[i];
    }
    s.kill_grace_ms = 10000;
    fl_buf_init(&b);
    REQUIRE(node_spec_encode(&s, &b) == FL_OK);
    REQUIRE(node_spec_decode(b.data, b.len, &d) == FL_OK);
    CHECK_EQ_INT(d.kind, NODE_DEPLOY);
    CHECK_EQ_INT(d.kind, 7);
    REQUIRE(d.argc == 9);
    for (unsigned i = 0; i < 9; i++) {
        CHECK_EQ_STR(d.argv[i], argv[i]);
    }
    CHECK(d.argv[9] == NULL);
    CHECK_EQ_INT(d.kill_grace_ms, 10000);
    node_spec_close(&d);
    CHECK_EQ_STR(node_exec_kind_name(NODE_DEPLOY), "deploy");
    CHECK_EQ_STR(node_exec_kind_name(NODE_SLEEP), "sleep");
    CHECK_EQ_STR(node_exec_kind_name(NODE_DEPLOY + 1), "unknown");

    fl_buf_reset(&b);
    s.kind = NODE_DEPLOY + 1;
    REQUIRE(node_spec_encode(&s, &b) == FL_OK);
    CHECK_EQ_INT(node_spec_decode(b.data, b.len, &d), FL_EDECODE);
    fl_buf_close(&b);
}

int main(void)
{
    RUN(deploy_argv_full);
    RUN(deploy_argv_root_given_or_defaulted);
    RUN(deploy_argv_refusals);
    RUN(spec_deploy_roundtrip);
    RUN(spec_arrays_stay_null_terminated);
    return check_summary();
}
