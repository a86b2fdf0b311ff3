/* flotilla dev: the local cluster's CA and certificates (docs/SECURITY.md,
 * "Identities"), made under DIR/pki on the first run and kept after. */
#include <stdio.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "common/err.h"
#include "pki/pki.h"

static int issue_once(const struct pki_ca *ca, int role, const char *name, const char *pki)
{
    static const char *const sans[] = {"DNS:localhost", "IP:127.0.0.1"};
    struct pki_identity who = {0};
    char prefix[4200], pem[4300], err[FL_ERRMSG_SIZE];
    struct stat st;
    snprintf(prefix, sizeof prefix, "%s/%s", pki, name);
    snprintf(pem, sizeof pem, "%s.pem", prefix);
    if (stat(pem, &st) == 0) {
        return 0;
    }
    who.role = (uint8_t)role;
    snprintf(who.cluster, sizeof who.cluster, "%s", pki_ca_cluster(ca));
    snprintf(who.name, sizeof who.name, "%s", name);
    if (pki_issue_files(ca, &who, 0, sans, role == PKI_ROLE_SERVER ? 2 : 0, prefix, 0, err) !=
        FL_OK) {
        fprintf(stderr, "flotilla dev: %s\n", err);
        return 1;
    }
    return 0;
}

int cli_dev_pki(const char *dir, unsigned n)
{
    char pki[4200], ca_pem[4300], name[32], err[FL_ERRMSG_SIZE];
    struct pki_ca *ca = NULL;
    struct stat st;
    int rv = 0;
    snprintf(pki, sizeof pki, "%s/pki", dir);
    snprintf(ca_pem, sizeof ca_pem, "%s/" PKI_CA_CERT, pki);
    if (stat(ca_pem, &st) != 0 && pki_ca_init(pki, "dev", 0, 0, err) != FL_OK) {
        fprintf(stderr, "flotilla dev: %s\n", err);
        return 1;
    }
    if (pki_ca_load(pki, &ca, err) != FL_OK) {
        fprintf(stderr, "flotilla dev: %s\n", err);
        return 1;
    }
    for (unsigned i = 1; i <= n && rv == 0; i++) {
        snprintf(name, sizeof name, "server-%u", i);
        rv = issue_once(ca, PKI_ROLE_SERVER, name, pki);
    }
    /* One agent's and one client's, to try agents and the blob link with. */
    if (rv == 0) {
        rv = issue_once(ca, PKI_ROLE_AGENT, "agent-1", pki);
    }
    if (rv == 0) {
        rv = issue_once(ca, PKI_ROLE_CLIENT, "client", pki);
    }
    pki_ca_free(ca);
    return rv;
}
