/* flotilla delta — librsync signature, delta and patch of local files, and
 * their BLAKE2b-256 hash, with Flotilla's own code (deploy/delta.h). Needs no
 * server; used by the interop tests and `bench/run delta`, and handy to check
 * a package by hand. Each subcommand prints one JSON line of statistics
 * (seconds is the operation alone, without process start). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cli.h"
#include "common/err.h"
#include "deploy/delta.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t size_opt(struct cli_cmd *c, const char *name, size_t max)
{
    const char *s = cli_val(c, name);
    char *end;
    unsigned long long v;
    if (s == NULL) {
        return 0;
    }
    v = strtoull(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || v > max) {
        cli_die_usage(c, "--%s must be a number from 0 to %zu", name, max);
    }
    return (size_t)v;
}

static void read_opts(struct cli_cmd *c, struct deploy_delta_opts *o)
{
    memset(o, 0, sizeof *o);
    o->block_len = size_opt(c, "block-len", 1u << 20);
    o->strong_len = size_opt(c, "strong-len", 32);
    o->buf_size = size_opt(c, "buf-size", 64u << 20);
    o->max_out = size_opt(c, "max-out", SIZE_MAX);
}

static void print_stats(const char *op, const struct deploy_delta_stats *st, double secs,
                        const uint8_t *hash)
{
    char hex[DEPLOY_HASH_HEX] = "";
    if (hash != NULL) {
        deploy_hash_hex(hash, hex);
    }
    printf("{\"op\": \"%s\", \"in_bytes\": %llu, \"out_bytes\": %llu, \"lit_bytes\": %llu, "
           "\"copy_bytes\": %llu, \"block_len\": %zu, \"seconds\": %.6f%s%s%s}\n",
           op, (unsigned long long)st->in_bytes, (unsigned long long)st->out_bytes,
           (unsigned long long)st->lit_bytes, (unsigned long long)st->copy_bytes, st->block_len,
           secs, hash ? ", \"hash\": \"" : "", hex, hash ? "\"" : "");
}

#define DELTA_OPTS                                                                                 \
    {"block-len", 1, "signature block length (default: sqrt of the size, at most 2048)", NULL, 0}, \
        {"strong-len", 1, "bytes of BLAKE2 per block (default 16)", NULL, 0},                      \
        {"buf-size", 1, "I/O buffer bytes each way (default 262144)", NULL, 0},                    \
        {"max-out", 1, "delta: fail (too_big) when the delta would exceed this", NULL, 0},         \
    {                                                                                              \
        "hash", 1, "patch: the expected BLAKE2b-256 of the result (hex)", NULL, 0                  \
    }

static int run(const char *sub, char **pos, struct cli_cmd *c)
{
    struct deploy_delta_opts o;
    struct deploy_delta_stats st = {0};
    uint8_t want[DEPLOY_HASH_SIZE], got[DEPLOY_HASH_SIZE];
    char err[FL_ERRMSG_SIZE] = "";
    const char *hex = cli_val(c, "hash");
    double t0;
    int rv;
    read_opts(c, &o);
    if (hex != NULL && deploy_hash_parse(hex, want) != FL_OK) {
        cli_die_usage(c, "--hash must be 64 hex digits");
    }
    t0 = now_s();
    if (strcmp(sub, "signature") == 0) {
        rv = deploy_signature(pos[0], pos[1], &o, &st, err);
    } else if (strcmp(sub, "delta") == 0) {
        rv = deploy_delta(pos[0], pos[1], pos[2], &o, &st, err);
    } else if (strcmp(sub, "patch") == 0) {
        rv = deploy_patch(pos[0], pos[1], pos[2], hex ? want : NULL, got, &o, &st, err);
    } else {
        rv = deploy_hash_file(pos[0], got, &st.in_bytes, err);
    }
    if (rv != FL_OK) {
        fprintf(stderr, "flotilla delta %s: %s (%s)\n", sub, err, fl_errname(rv));
        return 1;
    }
    print_stats(sub, &st, now_s() - t0,
                strcmp(sub, "patch") == 0 || strcmp(sub, "hash") == 0 ? got : NULL);
    return 0;
}

int cmd_delta(int argc, char **argv)
{
    static const struct {
        const char *name, *args, *summary;
        int n;
    } subs[] = {
        {"signature", "BASIS SIG", "Write the librsync signature (BLAKE2) of BASIS to SIG.", 2},
        {"delta", "SIG NEW DELTA", "Write the delta from SIG's file to NEW into DELTA.", 3},
        {"patch", "BASIS DELTA OUT", "Apply DELTA to BASIS into OUT (checked with --hash).", 3},
        {"hash", "FILE", "Print the BLAKE2b-256 of FILE.", 1},
    };
    struct cli_opt opts[] = {DELTA_OPTS, {NULL}};
    char path[64], *pos[3];
    int npos;
    for (size_t i = 0; argc >= 1 && i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(argv[0], subs[i].name) == 0) {
            struct cli_cmd c = {path, subs[i].args, subs[i].summary, opts, subs[i].n, subs[i].n};
            snprintf(path, sizeof path, "delta %s", subs[i].name);
            cli_parse(&c, argc - 1, argv + 1, pos, &npos);
            return run(subs[i].name, pos, &c);
        }
    }
    fprintf(argc >= 1 && strcmp(argv[0], "--help") != 0 ? stderr : stdout,
            "usage: flotilla delta signature|delta|patch|hash ARGS (see --help of each)\n");
    return argc >= 1 && strcmp(argv[0], "--help") == 0 ? 0 : 2;
}
