/* pki/ident — roles, names, and the identity a certificate names. */
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "common/err.h"
#include "pki/pki.h"

#define URI_SCHEME "flotilla://"

const char *pki_role_name(int role)
{
    switch (role) {
    case PKI_ROLE_SERVER:
        return "server";
    case PKI_ROLE_AGENT:
        return "agent";
    case PKI_ROLE_CLIENT:
        return "client";
    default:
        return "?";
    }
}

int pki_role_parse(const char *s)
{
    if (s == NULL) {
        return 0;
    }
    for (int r = PKI_ROLE_SERVER; r <= PKI_ROLE_CLIENT; r++) {
        if (strcmp(s, pki_role_name(r)) == 0) {
            return r;
        }
    }
    return 0;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* n bytes of p form a valid name. */
static int name_valid_n(const char *p, size_t n)
{
    if (n == 0 || n > PKI_NAME_MAX || p[0] == '.' || p[0] == '-') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_char(p[i])) {
            return 0;
        }
    }
    return 1;
}

int pki_name_valid(const char *s)
{
    return s != NULL && name_valid_n(s, strnlen(s, PKI_NAME_MAX + 1));
}

/* Parse "flotilla://CLUSTER/ROLE/NAME" (n bytes, no NUL inside). */
static int parse_uri(const char *p, size_t n, struct pki_identity *out, char *errmsg)
{
    const char *cl, *ro, *nm, *end = p + n, *s1, *s2;
    char role[16];
    size_t sl = strlen(URI_SCHEME);
    int r;
    cl = p + sl;
    s1 = memchr(cl, '/', (size_t)(end - cl));
    if (s1 == NULL) {
        return fl_errf(errmsg, FL_EPROTO, "certificate URI %.*s: no role", (int)n, p);
    }
    ro = s1 + 1;
    s2 = memchr(ro, '/', (size_t)(end - ro));
    if (s2 == NULL) {
        return fl_errf(errmsg, FL_EPROTO, "certificate URI %.*s: no name", (int)n, p);
    }
    nm = s2 + 1;
    if (memchr(nm, '/', (size_t)(end - nm)) != NULL) {
        return fl_errf(errmsg, FL_EPROTO,
                       "certificate URI %.*s: extra path components (want "
                       "flotilla://CLUSTER/ROLE/NAME)",
                       (int)n, p);
    }
    if (!name_valid_n(cl, (size_t)(s1 - cl))) {
        return fl_errf(errmsg, FL_EPROTO, "certificate URI %.*s: invalid cluster name", (int)n, p);
    }
    if ((size_t)(s2 - ro) >= sizeof role) {
        return fl_errf(errmsg, FL_EPROTO, "certificate URI %.*s: unknown role", (int)n, p);
    }
    memcpy(role, ro, (size_t)(s2 - ro));
    role[s2 - ro] = '\0';
    r = pki_role_parse(role);
    if (r == 0) {
        return fl_errf(errmsg, FL_EPROTO, "certificate URI %.*s: unknown role \"%s\"", (int)n, p,
                       role);
    }
    if (!name_valid_n(nm, (size_t)(end - nm))) {
        return fl_errf(errmsg, FL_EPROTO, "certificate URI %.*s: invalid name", (int)n, p);
    }
    memset(out, 0, sizeof *out);
    out->role = (uint8_t)r;
    memcpy(out->cluster, cl, (size_t)(s1 - cl));
    memcpy(out->name, nm, (size_t)(end - nm));
    return FL_OK;
}

int pki_identity_of(X509 *cert, struct pki_identity *out, char *errmsg)
{
    GENERAL_NAMES *gens;
    const unsigned char *found = NULL;
    size_t found_len = 0;
    int nfound = 0, crit = 0, rv;
    size_t sl = strlen(URI_SCHEME);
    if (cert == NULL) {
        return fl_errf(errmsg, FL_EPROTO, "no certificate");
    }
    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (gens == NULL) {
        return fl_errf(errmsg, FL_EPROTO,
                       crit == -2 ? "certificate has two subjectAltName extensions"
                                  : "certificate has no subjectAltName (no flotilla:// URI)");
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const unsigned char *d;
        size_t len;
        if (g->type != GEN_URI) {
            continue;
        }
        d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        len = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (len < sl || strncmp((const char *)d, URI_SCHEME, sl) != 0) {
            continue; /* some other URI (a NUL before the scheme's end lands here too) */
        }
        if (++nfound > 1) {
            break;
        }
        found = d;
        found_len = len;
    }
    if (nfound == 0) {
        GENERAL_NAMES_free(gens);
        return fl_errf(errmsg, FL_EPROTO, "certificate has no flotilla:// URI");
    }
    if (nfound > 1) {
        GENERAL_NAMES_free(gens);
        return fl_errf(errmsg, FL_EPROTO, "certificate has more than one flotilla:// URI");
    }
    if (memchr(found, '\0', found_len) != NULL) {
        GENERAL_NAMES_free(gens);
        return fl_errf(errmsg, FL_EPROTO, "certificate's flotilla:// URI has an embedded NUL");
    }
    rv = parse_uri((const char *)found, found_len, out, errmsg);
    GENERAL_NAMES_free(gens);
    return rv;
}
