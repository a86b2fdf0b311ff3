/* libFuzzer harness: the TLS link's bytes before and after admission
 * (tls/tlink.h); the three ways an input is used are in tlink_driver.h. */
#include "fuzz/tlink_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tlink_fuzz_one(data, size);
    return 0;
}
