/* Route lookup: which entry of node_routes (api.c) serves a request, or the
 * answer when none does (node_int.h, node__route_find). */
#include <string.h>

#include "common/utf8.h"
#include "node/node_int.h"

/* Match path against pattern; "{}" captures one segment, a final "*" the
 * rest (at least one character). Captures point into `scratch`. */
static int match(const char *pattern, const char *path, char *scratch, size_t cap, char **args,
                 unsigned max_args, unsigned *n_args)
{
    size_t used = 0;
    *n_args = 0;
    while (*pattern != '\0') {
        if (pattern[0] == '{' && pattern[1] == '}') {
            const char *end = strchr(path, '/');
            size_t n = end ? (size_t)(end - path) : strlen(path);
            if (n == 0 || *n_args == max_args || used + n + 1 > cap) {
                return 0;
            }
            memcpy(scratch + used, path, n);
            scratch[used + n] = '\0';
            args[(*n_args)++] = scratch + used;
            used += n + 1;
            path += n;
            pattern += 2;
        } else if (pattern[0] == '*' && pattern[1] == '\0') {
            size_t n = strlen(path);
            if (n == 0 || *n_args == max_args || used + n + 1 > cap) {
                return 0;
            }
            memcpy(scratch + used, path, n + 1);
            args[(*n_args)++] = scratch + used;
            return 1;
        } else {
            if (*pattern != *path) {
                return 0;
            }
            pattern++;
            path++;
        }
    }
    return *path == '\0';
}

const struct route *node__route_find(struct http_request *req, char *scratch, size_t cap,
                                     char **args, unsigned max_args)
{
    const struct route *route = NULL;
    unsigned n_args = 0;
    int path_matched = 0;
    for (unsigned i = 0; i < node_n_routes; i++) {
        if (match(node_routes[i].pattern, req->path, scratch, cap, args, max_args, &n_args)) {
            path_matched = 1;
            if (node_routes[i].method == req->method) {
                route = &node_routes[i];
                break;
            }
        }
    }
    if (route == NULL) {
        if (path_matched) {
            http_respond_error(req, 405, "method_not_allowed", "%s is not allowed on %s",
                               http_method_str((enum http_method)req->method), req->path);
        } else {
            http_respond_error(req, 404, "not_found", "no route %s %s",
                               http_method_str((enum http_method)req->method), req->path);
        }
        return NULL;
    }
    for (unsigned i = 0; i < n_args; i++) {
        if (!fl_utf8_valid(args[i], strlen(args[i]))) {
            http_respond_error(req, 400, "invalid",
                               "path segment \"%s\" is not valid UTF-8 (%s %s takes text)", args[i],
                               http_method_str((enum http_method)req->method), route->pattern);
            return NULL;
        }
    }
    return route;
}
