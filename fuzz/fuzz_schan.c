/* libFuzzer harness: the secure channel's handshake and frame decoder
 * (common/schan.h); the three ways an input is used are in schan_driver.h.
 * libsodium's random source is replaced by a deterministic one so a run can
 * be reproduced from its input. */
#include <sodium.h>

#include "fuzz/schan_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t counter;

static const char *det_name(void)
{
    return "flotilla-fuzz-deterministic";
}

static uint32_t det_random(void)
{
    uint32_t v;
    unsigned char seed[randombytes_SEEDBYTES] = {0};
    memcpy(seed, &counter, sizeof counter);
    counter++;
    randombytes_buf_deterministic(&v, sizeof v, seed);
    return v;
}

static void det_buf(void *buf, size_t size)
{
    unsigned char seed[randombytes_SEEDBYTES] = {0};
    memcpy(seed, &counter, sizeof counter);
    counter++;
    randombytes_buf_deterministic(buf, size, seed);
}

static struct randombytes_implementation det = {det_name, det_random, NULL, NULL, det_buf, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        randombytes_set_implementation(&det);
        if (sodium_init() < 0) {
            abort();
        }
        init = 1;
    }
    counter = 0; /* every input sees the same "random" keys */
    schan_fuzz_one(data, size);
    return 0;
}
