/* A small test runner for Flotilla's C tests.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ_INT(a, b); CHECK_OK(rv); }
 *   int main(void) { RUN(name); ...; return check_summary(); }
 *
 * A failed CHECK prints file:line and the expression and fails the test (the
 * test goes on, so one run shows every failure); check_summary() prints
 * "N passed, N failed" and returns the exit status. */
#ifndef FL_TESTS_CHECK_H
#define FL_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check__failed_now;
static int check__passed;
static int check__failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        check__failed_now = 0;                                                                     \
        fprintf(stderr, "-- %s\n", #name);                                                         \
        test_##name();                                                                             \
        if (check__failed_now) {                                                                   \
            check__failed++;                                                                       \
            fprintf(stderr, "FAIL %s\n", #name);                                                   \
        } else {                                                                                   \
            check__passed++;                                                                       \
            fprintf(stderr, "ok   %s\n", #name);                                                   \
        }                                                                                          \
    } while (0)

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #expr);               \
            check__failed_now = 1;                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long check__a = (long long)(a), check__b = (long long)(b);                            \
        if (check__a != check__b) {                                                                \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    check__a, check__b);                                                           \
            check__failed_now = 1;                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *check__a = (a), *check__b = (b);                                               \
        if (check__a == NULL || check__b == NULL || strcmp(check__a, check__b) != 0) {             \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, check__a ? check__a : "(null)", check__b ? check__b : "(null)");           \
            check__failed_now = 1;                                                                 \
        }                                                                                          \
    } while (0)

/* rv must be FL_OK (0). */
#define CHECK_OK(rv) CHECK_EQ_INT((rv), 0)

/* Stop the current test (after a failed precondition the rest is noise). */
#define REQUIRE(expr)                                                                              \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #expr);             \
            check__failed_now = 1;                                                                 \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check__passed, check__failed);
    return check__failed == 0 ? 0 : 1;
}

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp). */
static inline char *check_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/flotilla-test-XXXXXX", base ? base : "/tmp");
    return mkdtemp(buf);
}

static inline void check_rmrf(const char *dir)
{
    char cmd[4200];
    if (dir == NULL || strncmp(dir, "/tmp/", 5) != 0) {
        return;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
}

#endif
