/* libFuzzer harness: HTTP request body -> task spec; see spec_driver.h. */
#include "fuzz/spec_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spec_fuzz_one(data, size);
    return 0;
}
