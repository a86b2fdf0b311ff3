/* flotilla agent */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cmd/cli.h"

static unsigned split_into(const char *s, char out[][128], unsigned max, struct cli_cmd *c,
                           const char *flag)
{
    char buf[8192];
    char *save = NULL;
    unsigned n = 0;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max || strlen(tok) >= 128) {
            cli_die_usage(c, "--%s: at most %u items of under 128 bytes", flag, max);
        }
        snprintf(out[n++], 128, "%s", tok);
    }
    return n;
}

int cmd_agent(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"join", 1, "agent address(es) of servers, host:port[,host:port]", NULL, 0},
        {"name", 1, "this node's name (default: the host name)", NULL, 0},
        {"cap", 1, "units run at once (the cluster's setting wins once recorded)", "4", 0},
        {"label", 1, "labels k=v[,k=v]", NULL, 0},
        {"data", 1, "directory for the result spool and work files", "flotilla-agent", 0},
        {NULL}};
    struct cli_cmd c = {"agent", "", "Run an agent: it connects to the cluster and executes units.",
                        opts, 0, 0};
    struct agent_config cfg;
    char *pos[1], *end;
    int npos;
    long cap;
    cli_parse(&c, argc, argv, pos, &npos);
    memset(&cfg, 0, sizeof cfg);
    if (!cli_flag(&c, "join")) {
        cli_die_usage(&c, "--join is required");
    }
    cfg.n_join = split_into(cli_val(&c, "join"), cfg.join, AGENT_JOIN_MAX, &c, "join");
    if (cli_val(&c, "name")) {
        snprintf(cfg.id, sizeof cfg.id, "%s", cli_val(&c, "name"));
    } else if (gethostname(cfg.id, sizeof cfg.id - 1) != 0) {
        cli_die_usage(&c, "--name is required (no host name)");
    }
    cap = strtol(cli_val(&c, "cap"), &end, 10);
    if (*end != '\0' || cap < 0 || cap > 1000000) {
        cli_die_usage(&c, "--cap must be 0..1000000");
    }
    cfg.cap = (uint32_t)cap;
    if (cli_val(&c, "label")) {
        cfg.n_labels = split_into(cli_val(&c, "label"), cfg.labels, AGENT_LABELS_MAX, &c, "label");
        for (unsigned i = 0; i < cfg.n_labels; i++) {
            if (strchr(cfg.labels[i], '=') == NULL) {
                cli_die_usage(&c, "--label: \"%s\" is not k=v", cfg.labels[i]);
            }
        }
    }
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", cli_val(&c, "data"));
    return agent_main(&cfg);
}
