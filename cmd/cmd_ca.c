/* flotilla ca init, flotilla cert issue — the cluster CA and the
 * certificates it signs (pki/pki.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "common/err.h"
#include "pki/pki.h"

#define SAN_TEXT_MAX 4096

/* --days: 1..36500, or `dflt` when absent. Exits 2 if malformed. */
static unsigned parse_days(struct cli_cmd *c, unsigned dflt)
{
    const char *s = cli_val(c, "days");
    char *end = NULL;
    unsigned long v;
    if (s == NULL) {
        return dflt;
    }
    errno = 0;
    v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || errno != 0 || end == s || *end != '\0' || v == 0 || v > 36500) {
        cli_die_usage(c, "--days wants a number of days from 1 to 36500, not \"%s\"", s);
    }
    return (unsigned)v;
}

static int ca_init(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"dir", 1, "directory for ca.pem and ca.key (created if missing)", NULL, 0},
        {"cluster", 1, "the cluster's name", "flotilla", 0},
        {"days", 1, "validity in days (default 3650)", NULL, 0},
        {"force", 0, "replace an existing CA", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"ca init",
                        "",
                        "Make the cluster's certificate authority: a P-256 key (DIR/ca.key, "
                        "mode 0600) and its self-signed certificate (DIR/ca.pem). Keep ca.key "
                        "off the servers; give ca.pem to every server, agent and client.",
                        opts,
                        0,
                        0};
    char *pos[1], err[FL_ERRMSG_SIZE];
    const char *dir, *cluster;
    unsigned days;
    int npos, rv;
    cli_parse(&c, argc, argv, pos, &npos);
    dir = cli_val(&c, "dir");
    cluster = cli_val(&c, "cluster");
    if (dir == NULL || dir[0] == '\0') {
        cli_die_usage(&c, "--dir DIR is required");
    }
    if (!pki_name_valid(cluster)) {
        cli_die_usage(&c,
                      "bad cluster name \"%s\": 1 to %d of letters, digits, '.', '_', '-', not "
                      "starting with '.' or '-'",
                      cluster, PKI_NAME_MAX);
    }
    days = parse_days(&c, PKI_DAYS_CA);
    rv = pki_ca_init(dir, cluster, days, cli_flag(&c, "force"), err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla ca init: %s\n", err);
        return rv == FL_EINVAL ? 2 : 1;
    }
    printf("made the CA of cluster %s\n%s/%s\n%s/%s\n", cluster, dir, PKI_CA_CERT, dir, PKI_CA_KEY);
    return 0;
}

int cmd_ca(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "init") == 0) {
        return ca_init(argc - 1, argv + 1);
    }
    fprintf(argc >= 1 && strcmp(argv[0], "--help") != 0 ? stderr : stdout,
            "usage: flotilla ca init --dir DIR [--cluster NAME] (see --help)\n");
    return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}

/* Split the --san values (comma- or newline-separated, the flag repeatable)
 * in place into sans[]. Exits 2 on too many or an empty one. */
static unsigned split_sans(struct cli_cmd *c, char *text, const char **sans)
{
    unsigned n = 0;
    char *p = text;
    if (text == NULL) {
        return 0;
    }
    for (;;) {
        char *end = p + strcspn(p, ",\n");
        int last = *end == '\0';
        *end = '\0';
        if (p[0] == '\0') {
            cli_die_usage(c, "--san: an empty name in the list");
        }
        if (n == PKI_SAN_MAX) {
            cli_die_usage(c, "--san: at most %d names", PKI_SAN_MAX);
        }
        sans[n++] = p;
        if (last) {
            return n;
        }
        p = end + 1;
    }
}

static int cert_issue(int argc, char **argv)
{
    struct cli_opt opts[] = {
        {"ca-dir", 1, "the CA's directory (ca.pem, ca.key)", NULL, 0},
        {"role", 1, "server, agent or client", NULL, 0},
        {"name", 1, "the holder's name (a server's node name, an agent's, a user's)", NULL, 0},
        {"out", 1, "write PREFIX.pem (the certificate) and PREFIX.key (its key, mode 0600)", NULL,
         0},
        {"san", 2, "extra names: DNS:host,IP:address (comma-separated, repeatable)", NULL, 0},
        {"days", 1, "validity in days (default 365)", NULL, 0},
        {"force", 0, "replace existing files", NULL, 0},
        {NULL}};
    struct cli_cmd c = {"cert issue",
                        "",
                        "Issue a new P-256 key and a certificate naming "
                        "flotilla://CLUSTER/ROLE/NAME, signed by the CA in --ca-dir. A server's "
                        "certificate also names DNS:NAME and serves as a client's too.",
                        opts,
                        0,
                        0};
    char *pos[1], err[FL_ERRMSG_SIZE], san_text[SAN_TEXT_MAX];
    const char *sans[PKI_SAN_MAX], *ca_dir, *out, *name, *san;
    struct pki_identity who;
    struct pki_ca *ca = NULL;
    unsigned n_sans, days;
    int npos, role, rv;
    cli_parse(&c, argc, argv, pos, &npos);
    ca_dir = cli_val(&c, "ca-dir");
    out = cli_val(&c, "out");
    name = cli_val(&c, "name");
    if (ca_dir == NULL || ca_dir[0] == '\0') {
        cli_die_usage(&c, "--ca-dir DIR is required");
    }
    if (out == NULL || out[0] == '\0') {
        cli_die_usage(&c, "--out PREFIX is required");
    }
    role = pki_role_parse(cli_val(&c, "role"));
    if (role == 0) {
        cli_die_usage(&c, "--role must be server, agent or client");
    }
    if (!pki_name_valid(name)) {
        cli_die_usage(&c,
                      "bad --name \"%s\": 1 to %d of letters, digits, '.', '_', '-', not "
                      "starting with '.' or '-'",
                      name != NULL ? name : "", PKI_NAME_MAX);
    }
    san = cli_val(&c, "san");
    if (san != NULL && strlen(san) >= sizeof san_text) {
        cli_die_usage(&c, "--san: too long");
    }
    snprintf(san_text, sizeof san_text, "%s", san != NULL ? san : "");
    n_sans = split_sans(&c, san != NULL ? san_text : NULL, sans);
    days = parse_days(&c, PKI_DAYS_DEFAULT);

    rv = pki_ca_load(ca_dir, &ca, err);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla cert issue: %s\n", err);
        return 1;
    }
    memset(&who, 0, sizeof who);
    who.role = (uint8_t)role;
    snprintf(who.cluster, sizeof who.cluster, "%s", pki_ca_cluster(ca));
    snprintf(who.name, sizeof who.name, "%s", name);
    rv = pki_issue_files(ca, &who, days, sans, n_sans, out, cli_flag(&c, "force"), err);
    pki_ca_free(ca);
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla cert issue: %s\n", err);
        return rv == FL_EINVAL ? 2 : 1;
    }
    printf("flotilla://%s/%s/%s\n%s.pem\n%s.key\n", who.cluster, pki_role_name(role), who.name, out,
           out);
    return 0;
}

int cmd_cert(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "issue") == 0) {
        return cert_issue(argc - 1, argv + 1);
    }
    fprintf(argc >= 1 && strcmp(argv[0], "--help") != 0 ? stderr : stdout,
            "usage: flotilla cert issue --ca-dir DIR --role ROLE --name NAME --out PREFIX "
            "(see --help)\n");
    return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}
