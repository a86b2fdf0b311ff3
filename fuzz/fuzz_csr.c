/* libFuzzer harness: certificate signing requests (pki_csr_sign); the two
 * ways an input is used are in csr_driver.h. */
#include "fuzz/csr_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csr_fuzz_one(data, size);
    return 0;
}
