/* flotilla — one binary: the server, the local dev cluster and the CLI. */
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"server", cmd_server, "run a server"},
    {"dev", cmd_dev, "run a local three-server cluster on loopback"},
    {"status", cmd_status, "show a server's view of the cluster"},
    {"members", cmd_members, "list, add, remove, promote servers; transfer leadership"},
    {"node", cmd_node, "list nodes; set caps; drain and undrain"},
    {"kv", cmd_kv, "put, get, list, delete replicated keys"},
    {"task", cmd_task, "submit tasks; status, wait, results, why, logs, cancel"},
    {"results", cmd_results, "results by a list of hosts or by one host"},
    {"dispatch", cmd_dispatch, "pause or resume dispatch cluster-wide"},
    {"agent", cmd_agent, "run an agent that executes units"},
    {"job", cmd_job, "cron jobs: add, list, show, history, pause, resume, run, rm"},
    {"cron", cmd_cron, "check cron expressions: next fire times"},
    {"lock", cmd_lock, "acquire, release, list locks; run a command holding one"},
    {"acl", cmd_acl, "API tokens: bootstrap, token create|list|delete, whoami"},
    {"session", cmd_session, "create, renew, destroy sessions (locks are held by sessions)"},
    {"keygen", cmd_keygen, "write a new servers' key (--out FILE)"},
    {"ca", cmd_ca, "make the cluster's certificate authority (ca init)"},
    {"cert", cmd_cert, "issue a server's, agent's or client's key and certificate"},
    {"supervise", cmd_supervise, "run an app's workers from ROOT/current: restarts, reload, logs"},
    {"package", cmd_package, "push, list, show, remove and fetch packages"},
    {"deploy", cmd_deploy, "roll a package version out to nodes; status, list, rollback, cancel"},
    {"deploy-target", cmd_deploy_target,
     "deploy a package version on this machine (what each deploy target runs)"},
    {"delta", cmd_delta, "librsync signature, delta, patch, hash of local files"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: flotilla COMMAND [flags]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "  %-10s %s\n", "version", "print the version");
    fprintf(f, "\nEvery command takes --help. The CLI talks to the HTTPS API at --addr or "
               "$FLOTILLA_ADDR\n(default 127.0.0.1:8401), trusting the cluster CA in "
               "$FLOTILLA_CACERT.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("flotilla 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].fn(argc - 2, argv + 2);
        }
    }
    fprintf(stderr, "flotilla: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
