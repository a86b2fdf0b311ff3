/* libFuzzer harness: blob link requests and answers; see blob_driver.h. */
#include "fuzz/blob_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    blob_fuzz_one(data, size);
    return 0;
}
