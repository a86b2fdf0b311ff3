/* libFuzzer harness: raw HTTP requests -> server -> route lookup; see
 * http_driver.h. */
#include "fuzz/http_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_fuzz_one(data, size, NULL, 0);
    return 0;
}
