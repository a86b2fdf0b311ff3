/* libFuzzer harness: cron expressions and time zones; see cron_driver.h. */
#include "fuzz/cron_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return cron_fuzz_one(data, size);
}
