/* The API's route table and its access rules (node/api.c, node/api_acl.c,
 * docs/ACL.md). A route added without deciding who may call it has
 * need NEED_UNSET and fails here, at build-and-test time; the same rules are
 * checked against the running servers by tests/integration/test_acl.py. */
#include <string.h>

#include "check.h"
#include "node/node_int.h"

static int is_public(const struct route *r)
{
    static const char *const pub[] = {"/v1/status", "/v1/health", "/v1/routes",
                                      "/v1/acl/bootstrap"};
    for (size_t i = 0; i < sizeof pub / sizeof pub[0]; i++) {
        if (strcmp(r->pattern, pub[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

TEST(every_route_declares_its_need)
{
    CHECK(node_n_routes >= 50);
    for (unsigned i = 0; i < node_n_routes; i++) {
        const struct route *r = &node_routes[i];
        if (r->need <= NEED_UNSET || r->need > NEED_INTERNAL) {
            fprintf(stderr, "   %s has no access rule\n", r->pattern);
            CHECK(0);
        }
        CHECK(r->need != NEED_NONE || is_public(r));
    }
}

TEST(writes_need_more_than_read)
{
    for (unsigned i = 0; i < node_n_routes; i++) {
        const struct route *r = &node_routes[i];
        if (r->method == HTTP_GET || is_public(r)) {
            continue;
        }
        if (r->need < NEED_SUBMIT) {
            fprintf(stderr, "   write route %s needs only %s\n", r->pattern,
                    node__need_name(r->need));
            CHECK(0);
        }
        CHECK(r->kind == ROUTE_WRITE || r->kind == ROUTE_LOCAL_WRITE);
    }
}

TEST(namespace_arguments_exist)
{
    for (unsigned i = 0; i < node_n_routes; i++) {
        const struct route *r = &node_routes[i];
        unsigned args = 0;
        for (const char *p = r->pattern; *p; p++) {
            args += (p[0] == '{' && p[1] == '}') || (p[0] == '*' && p[1] == '\0');
        }
        CHECK(r->ns_arg < (int)args);
        CHECK(r->ns_arg < 0 || r->need == NEED_SUBMIT || r->need == NEED_READ);
    }
}

static int under(const struct route *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(r->pattern, prefix, n) == 0 && (r->pattern[n] == '\0' || r->pattern[n] == '/');
}

/* What a token limited to namespaces may reach (docs/ACL.md): kv and locks
 * by the namespace in the path, or filtered by the handler; sessions only
 * its own (the handler); tasks, jobs, results and deploys never (they belong
 * to no namespace); cluster information only by reading. */
TEST(namespace_rules)
{
    for (unsigned i = 0; i < node_n_routes; i++) {
        const struct route *r = &node_routes[i];
        int namespaced = under(r, "/v1/kv") || under(r, "/v1/locks");
        CHECK(r->ns_arg >= NS_ANY);
        if (r->ns_arg >= 0) {
            CHECK(namespaced);
        }
        if (r->ns_arg == NS_HANDLER) {
            CHECK(namespaced || under(r, "/v1/sessions"));
        }
        if (namespaced || under(r, "/v1/sessions")) {
            if (r->ns_arg < 0 && r->ns_arg != NS_HANDLER) {
                fprintf(stderr, "   %s is not limited to a token's namespaces\n", r->pattern);
                CHECK(0);
            }
        }
        if (under(r, "/v1/tasks") || under(r, "/v1/jobs") || under(r, "/v1/results") ||
            under(r, "/v1/hosts") || under(r, "/v1/deploys") || under(r, "/v1/uploads")) {
            if (r->ns_arg != NS_DENY) {
                fprintf(stderr, "   %s is open to a token limited to namespaces\n", r->pattern);
                CHECK(0);
            }
        }
        if (r->ns_arg == NS_ANY) {
            CHECK(r->method == HTTP_GET || r->need == NEED_NONE);
            CHECK(r->need == NEED_NONE || r->need == NEED_TOKEN || r->need == NEED_READ);
        }
    }
}

int main(void)
{
    RUN(every_route_declares_its_need);
    RUN(writes_need_more_than_read);
    RUN(namespace_arguments_exist);
    RUN(namespace_rules);
    return check_summary();
}
