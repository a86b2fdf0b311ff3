/* libFuzzer harness: snapshot restore (store_load) into a real LMDB store.
 * A dump that does not verify must be refused and change nothing. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *st;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int loaded = 0;
    if (st == NULL) {
        char dir[] = "/tmp/flotilla-fuzz-snapshot-XXXXXX";
        struct store_options so = {0};
        so.no_sync = 1;
        so.map_size = 256u << 20;
        if (mkdtemp(dir) == NULL || store_open(dir, &so, &st, NULL) != 0) {
            abort();
        }
    }
    /* Half the inputs get a valid checksum appended in place of their last
     * 32 bytes, so mutations reach the record parser behind the checksum. */
    if (size > 32 && (data[size - 1] & 1)) {
        uint8_t *copy = malloc(size);
        memcpy(copy, data, size - 32);
        crypto_generichash(copy + size - 32, 32, copy, size - 32, NULL, 0);
        if (store_load(st, copy, size, &loaded) == 0 && loaded) {
            uint8_t d[32];
            if (store_digest(st, d, NULL, NULL) != 0) {
                abort();
            }
        }
        free(copy);
        return 0;
    }
    if (store_load(st, data, size, &loaded) == 0 && loaded) {
        /* A valid dump was loaded: its digest must be computable. */
        uint8_t d[32];
        if (store_digest(st, d, NULL, NULL) != 0) {
            abort();
        }
    }
    return 0;
}
