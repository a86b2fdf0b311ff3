/* libFuzzer harness: the Raft log entry decoder (fsm/cmd.h) through the
 * command driver (cmd_driver.h), which checks every command's schema/ table
 * with the generic driver. Any byte string must decode or be refused
 * without reading out of bounds, and what decodes encodes to a fixed point. */
#include "fuzz/cmd_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cmd_fuzz_entry(data, size);
    return 0;
}
