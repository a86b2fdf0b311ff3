/* The TLS flags every linking command shares (cmd/cli.h, CLI_TLS_OPTS). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "common/err.h"

static void pick(struct cli_cmd *c, const char *flag, const char *env, char *out, size_t cap)
{
    const char *v = cli_val(c, flag);
    char abs[PATH_MAX];
    if (v == NULL || v[0] == '\0') {
        v = getenv(env);
    }
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr,
                "flotilla %s: no --%s (or $%s). Every link is mutual TLS: make a CA with "
                "`flotilla ca init --dir DIR` and a certificate with `flotilla cert issue "
                "--ca-dir DIR --role ROLE --name NAME --out PREFIX`, then give --ca DIR/ca.pem "
                "--cert PREFIX.pem --cert-key PREFIX.key.\n",
                c->path, flag, env);
        exit(2);
    }
    if (realpath(v, abs) != NULL) {
        v = abs;
    }
    if ((size_t)snprintf(out, cap, "%s", v) >= cap) {
        fprintf(stderr, "flotilla %s: --%s: path too long\n", c->path, flag);
        exit(2);
    }
}

void cli_load_tls(struct cli_cmd *c, struct cli_tls *out)
{
    char err[FL_ERRMSG_SIZE];
    struct tls_creds_files f;
    memset(out, 0, sizeof *out);
    pick(c, "ca", "FLOTILLA_CACERT", out->ca, sizeof out->ca);
    pick(c, "cert", "FLOTILLA_CERT", out->cert, sizeof out->cert);
    pick(c, "cert-key", "FLOTILLA_CERT_KEY", out->key, sizeof out->key);
    f.ca = out->ca;
    f.cert = out->cert;
    f.key = out->key;
    if (tls_creds_load(&f, &out->creds, err) != FL_OK) {
        fprintf(stderr, "flotilla %s: %s\n", c->path, err);
        exit(2);
    }
    cli_api_tls(c->path, out->creds); /* its API calls present the same certificate */
}
