/* flotilla keygen — make the cluster key (docs/SECURITY.md, "Links"). */
#include <stdio.h>
#include <stdlib.h>

#include "cmd/cli.h"
#include "common/err.h"
#include "common/key.h"

int cmd_keygen(int argc, char **argv)
{
    struct cli_opt opts[] = {{"out", 1, "file to write the key to (mode 0600)", NULL, 0},
                             {"force", 0, "replace an existing file", NULL, 0},
                             {NULL}};
    struct cli_cmd c = {"keygen",
                        "",
                        "Write a new random 32-byte cluster key (base64). Give the same file to "
                        "every server and agent with --key (or $" FL_KEY_ENV ").",
                        opts,
                        0,
                        0};
    char *pos[1], err[FL_ERRMSG_SIZE];
    int npos;
    cli_parse(&c, argc, argv, pos, &npos);
    if (!cli_flag(&c, "out")) {
        cli_die_usage(&c, "--out FILE is required");
    }
    if (fl_key_generate(cli_val(&c, "out"), cli_flag(&c, "force"), NULL, err) != FL_OK) {
        fprintf(stderr, "flotilla keygen: %s\n", err);
        return 1;
    }
    printf("wrote a new cluster key to %s\n", cli_val(&c, "out"));
    return 0;
}

void cli_load_key(struct cli_cmd *c, unsigned char key[FL_KEY_BYTES])
{
    char err[FL_ERRMSG_SIZE];
    const char *path = cli_val(c, "key");
    if (path == NULL || path[0] == '\0') {
        path = getenv(FL_KEY_ENV);
    }
    if (path == NULL || path[0] == '\0') {
        fprintf(stderr,
                "flotilla %s: no cluster key: give --key FILE (or set $" FL_KEY_ENV "). "
                "Make one with: flotilla keygen --out cluster.key, and give the same file to "
                "every server and agent.\n",
                c->path);
        exit(2);
    }
    if (fl_key_load(path, key, err) != FL_OK) {
        fprintf(stderr, "flotilla %s: %s\n", c->path, err);
        exit(2);
    }
}
