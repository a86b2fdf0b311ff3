/* libFuzzer harness: the Raft log entry decoder (raft/fsm_cmd). Any byte
 * string must decode or be refused without reading out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "fsm/cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fsm_entry e;
    if (fsm_entry_open(&e, data, size) == 0) {
        for (unsigned i = 0; i < e.n_cmds; i++) {
            struct fsm_cmd c;
            if (fsm_entry_cmd(&e, i, &c) == 0) {
                fsm_cmd_validate(&c, NULL);
            }
        }
    }
    fsm_entry_close(&e);
    return 0;
}
