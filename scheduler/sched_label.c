/* Labels and constraints: the grammar, matching, and splitting host lists.
 *
 * The grammar is deliberately narrow (sched.h): no spaces, no quoting, one
 * operator. Specs are rejected at submit time with a message that names the
 * offending byte, so a task never waits forever on a constraint nobody can
 * read, and matching stays a couple of byte compares per label. */
#include "scheduler/sched_int.h"

#include <string.h>

#include "common/err.h"

static int key_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-' || ch == '/';
}

static int val_char(int ch)
{
    return key_char(ch) || ch == ':' || ch == '@' || ch == '+';
}

/* Name the byte at s[i] for an error message without printing raw control
 * characters or half a UTF-8 sequence. */
static int bad_char(char *errmsg, const char *what, const char *s, size_t i)
{
    unsigned char ch = (unsigned char)s[i];
    if (ch > 0x20 && ch < 0x7f) {
        return fl_errf(errmsg, FL_EINVAL, "%s \"%.64s\": unexpected '%c' at offset %zu", what, s,
                       ch, i);
    }
    return fl_errf(errmsg, FL_EINVAL, "%s \"%.64s\": unexpected byte 0x%02x at offset %zu%s", what,
                   s, ch, i, ch == ' ' ? " (spaces are not allowed)" : "");
}

int sched__parse(const char *s, int is_label, struct sched__cons *out, char *errmsg)
{
    const char *what = is_label ? "label" : "constraint";
    size_t len, i = 0, v;

    if (s == NULL) {
        return fl_errf(errmsg, FL_EINVAL, "%s is missing", what);
    }
    len = strnlen(s, SCHED_TEXT_MAX + 1);
    if (len == 0) {
        return fl_errf(errmsg, FL_EINVAL, "%s is empty", what);
    }
    if (len > SCHED_TEXT_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "%s \"%.32s...\" is longer than %d bytes", what, s,
                       SCHED_TEXT_MAX);
    }
    while (key_char((unsigned char)s[i])) {
        i++;
    }
    if (i == 0) {
        if (s[0] == '=' || s[0] == '!') {
            return fl_errf(errmsg, FL_EINVAL, "%s \"%s\" has no key before '%c'", what, s, s[0]);
        }
        return bad_char(errmsg, what, s, 0);
    }
    out->key = s;
    out->klen = i;
    out->val = NULL;
    if (s[i] == '\0') {
        out->op = SCHED__HAS;
        if (is_label) {
            return fl_errf(errmsg, FL_EINVAL, "label \"%s\" must be key=value", s);
        }
        return FL_OK;
    }
    if (s[i] == '=') {
        out->op = SCHED__EQ;
        v = i + 1;
    } else if (s[i] == '!' && s[i + 1] == '=' && !is_label) {
        out->op = SCHED__NE;
        v = i + 2;
    } else {
        return bad_char(errmsg, what, s, i);
    }
    if (s[v] == '\0') {
        return fl_errf(errmsg, FL_EINVAL, "%s \"%s\" has an empty value", what, s);
    }
    for (i = v; s[i] != '\0'; i++) {
        if (!val_char((unsigned char)s[i])) {
            return bad_char(errmsg, what, s, i);
        }
    }
    out->val = s + v;
    return FL_OK;
}

int sched_constraint_valid(const char *c, char *errmsg)
{
    struct sched__cons k;
    return sched__parse(c, 0, &k, errmsg);
}

int sched_label_valid(const char *l, char *errmsg)
{
    struct sched__cons k;
    return sched__parse(l, 1, &k, errmsg);
}

int sched__cons_match(const struct sched__cons *c, const struct sched_node *n)
{
    for (unsigned i = 0; n->labels != NULL && i < n->n_labels; i++) {
        const char *l = n->labels[i];
        if (l == NULL || strncmp(l, c->key, c->klen) != 0) {
            continue;
        }
        if (l[c->klen] == '\0' || l[c->klen] == '=') {
            if (c->op == SCHED__HAS) {
                return 1;
            }
            if (l[c->klen] == '=' && strcmp(l + c->klen + 1, c->val) == 0) {
                return c->op == SCHED__EQ;
            }
        }
    }
    return c->op == SCHED__NE;
}

unsigned sched__first_mismatch(const struct sched_node *n, const struct sched_unit *u)
{
    struct sched__cons k;
    if (u->n_constraints > 0 && u->constraints == NULL) {
        return 0;
    }
    for (unsigned j = 0; j < u->n_constraints; j++) {
        if (sched__parse(u->constraints[j], 0, &k, NULL) != FL_OK || !sched__cons_match(&k, n)) {
            return j;
        }
    }
    return u->n_constraints;
}

int sched_node_matches(const struct sched_node *n, const struct sched_unit *u)
{
    return sched__first_mismatch(n, u) == u->n_constraints;
}

unsigned sched_split(unsigned n_hosts, unsigned unit_size)
{
    if (unit_size == 0 || unit_size > SCHED_UNIT_SIZE_MAX) {
        return 0;
    }
    return n_hosts / unit_size + (n_hosts % unit_size != 0);
}
