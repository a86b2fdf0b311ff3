/* agentproto/ — validators of names and strings.
 *
 * The explicit-length versions (aproto__valid_*) are what the schema uses;
 * the public ones take C strings. Strings given to these never contain NUL
 * before n (the decoder refuses such strings first). */
#include <string.h>

#include "agentproto/aproto_int.h"

static int is_ctl(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f;
}

static int is_ident_start(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static int is_ident(unsigned char ch)
{
    return is_ident_start(ch) || (ch >= '0' && ch <= '9');
}

int aproto__valid_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (is_ctl((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* 1..max bytes, no '/', no spaces or control characters: the rule the store
 * applies to node names and task ids (fsm_cmd_validate). */
static int valid_name(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '/') {
            return 0;
        }
    }
    return 1;
}

int aproto__valid_agent_id(const char *s, size_t n)
{
    return valid_name(s, n, APROTO_AGENT_ID_MAX);
}

int aproto__valid_task_id(const char *s, size_t n)
{
    return valid_name(s, n, APROTO_TASK_ID_MAX);
}

int aproto__valid_host(const char *s, size_t n)
{
    if (n == 0 || n > APROTO_HOST_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == ',') {
            return 0;
        }
    }
    return 1;
}

int aproto__valid_label(const char *s, size_t n)
{
    const char *eq;
    if (n == 0 || n > APROTO_LABEL_MAX) {
        return 0;
    }
    eq = memchr(s, '=', n);
    return eq != NULL && eq != s && aproto__valid_printable(s, n);
}

/* [A-Za-z_][A-Za-z0-9_]* followed by '='; the index of the '=' or 0. */
static size_t ident_eq(const char *s, size_t n)
{
    size_t i;
    if (n == 0 || !is_ident_start((unsigned char)s[0])) {
        return 0;
    }
    for (i = 1; i < n && is_ident((unsigned char)s[i]); i++) {
    }
    return i < n && s[i] == '=' ? i : 0;
}

int aproto__valid_env(const char *s, size_t n)
{
    return ident_eq(s, n) != 0;
}

int aproto__valid_var(const char *s, size_t n)
{
    return n <= APROTO_VAR_MAX && ident_eq(s, n) != 0 && aproto__valid_printable(s, n);
}

int aproto__valid_addr(const char *s, size_t n)
{
    size_t colon = n, port = 0;
    if (n == 0 || n > APROTO_ADDR_MAX) {
        return 0;
    }
    while (colon > 0 && s[colon - 1] != ':') {
        colon--;
    }
    /* colon is now the index after the last ':' (0 if there is none). */
    if (colon < 2 || colon == n || n - colon > 5) {
        return 0;
    }
    for (size_t i = colon; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        port = port * 10 + (size_t)(s[i] - '0');
    }
    for (size_t i = 0; i < colon - 1; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f) {
            return 0;
        }
    }
    return port >= 1 && port <= 65535;
}

int aproto__valid_module(const char *s, size_t n)
{
    if (n == 0 || n > APROTO_MODULE_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!is_ident(ch) && ch != '.') {
            return 0;
        }
    }
    return 1;
}

int aproto__valid_error_code(const char *s, size_t n)
{
    if (n == 0 || n > APROTO_ERROR_CODE_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
            return 0;
        }
    }
    return 1;
}

/* Public C-string versions. */
#define APROTO__VALID_PUBLIC(name)                                                                 \
    int aproto_valid_##name(const char *s)                                                         \
    {                                                                                              \
        return s != NULL && aproto__valid_##name(s, strlen(s));                                    \
    }

APROTO__VALID_PUBLIC(agent_id)
APROTO__VALID_PUBLIC(task_id)
APROTO__VALID_PUBLIC(host)
APROTO__VALID_PUBLIC(label)
APROTO__VALID_PUBLIC(env)
APROTO__VALID_PUBLIC(var)
APROTO__VALID_PUBLIC(addr)
APROTO__VALID_PUBLIC(module)
APROTO__VALID_PUBLIC(error_code)
