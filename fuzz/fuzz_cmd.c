/* libFuzzer harness: the Raft log entry decoder (raft/rg_cmd). Any byte
 * string must decode or be refused without reading out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "raft/rg_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rg_entry e;
    if (rg_entry_open(&e, data, size) == 0) {
        for (unsigned i = 0; i < e.n_cmds; i++) {
            struct rg_cmd c;
            if (rg_entry_cmd(&e, i, &c) == 0) {
                rg_cmd_validate(&c, NULL);
            }
        }
    }
    rg_entry_close(&e);
    return 0;
}
