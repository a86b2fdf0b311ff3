/* Numbers in paths and query strings, parsed strictly (node_int.h;
 * common/num.h has the rule). */
#include <inttypes.h>

#include "common/err.h"
#include "common/num.h"
#include "node/node_int.h"

int node__uint_arg(struct http_request *req, const char *name, const char *text, uint64_t min,
                   uint64_t max, uint64_t *out)
{
    if (fl_num_parse(text, min, max, out) != FL_OK) {
        node__respond_err(req, FL_EINVAL,
                          "%s must be a whole number %" PRIu64 "..%" PRIu64
                          " in decimal digits (no sign, blanks or leading zeros), not \"%s\"",
                          name, min, max, text);
        return 0;
    }
    return 1;
}

int node__uint_query(struct http_request *req, const char *name, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char v[32];
    int rv = http_query_param(req, name, v, sizeof v);
    if (rv == 0) {
        return 0;
    }
    if (rv < 0) {
        node__respond_err(req, FL_EINVAL,
                          "?%s= must be a whole number %" PRIu64 "..%" PRIu64
                          " (malformed or too long)",
                          name, min, max);
        return -1;
    }
    return node__uint_arg(req, name, v, min, max, out) ? 1 : -1;
}
