/* libFuzzer harness: librsync deltas and signatures read by deploy/delta.
 *
 * The first byte chooses the path: even, the rest is a delta applied
 * (deploy_patch) to a fixed 16 KiB basis; odd, the rest is a signature
 * loaded to compute the delta of that basis (deploy_delta). Outputs are
 * bounded (max_out 1 MiB). Oracle: no crash, no leak, and after a failure no
 * output file and no temporary file is left. The basis is
 * fuzz_delta_basis() below; the seeds in corpus/delta were made against it
 * (tests/unit/test_fuzz_corpus.c replays them with the same basis). */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deploy/delta.h"

#define BASIS_SIZE 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], basis[128], input[128], out[128];

/* byte i of the basis: the same formula in test_fuzz_corpus.c */
static uint8_t basis_byte(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void setup(void)
{
    FILE *f;
    snprintf(dir, sizeof dir, "/tmp/flotilla-fuzz-delta-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    snprintf(basis, sizeof basis, "%s/basis", dir);
    snprintf(input, sizeof input, "%s/input", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    f = fopen(basis, "wb");
    for (size_t i = 0; f != NULL && i < BASIS_SIZE; i++) {
        fputc(basis_byte(i), f);
    }
    if (f == NULL || fclose(f) != 0) {
        abort();
    }
}

static int files_in_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d != NULL && (de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct deploy_delta_opts o = {.max_out = 1u << 20};
    FILE *f;
    int rv;
    if (dir[0] == '\0') {
        setup();
    }
    if (size == 0) {
        return 0;
    }
    f = fopen(input, "wb");
    if (f == NULL || (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) || fclose(f)) {
        abort();
    }
    if (data[0] & 1) {
        rv = deploy_delta(input, basis, out, &o, NULL, NULL);
    } else {
        rv = deploy_patch(basis, input, out, NULL, NULL, &o, NULL, NULL);
    }
    /* basis + input, plus out only on success */
    if (files_in_dir() != (rv == 0 ? 3 : 2)) {
        fprintf(stderr, "rv %d left %d files\n", rv, files_in_dir());
        abort();
    }
    unlink(out);
    return 0;
}
