/* libFuzzer harness: every store record format (store/formats.c) through
 * the generic driver of schema/ formats (schema_driver.h). Byte 0 picks the
 * format, the rest is the record. */
#include "fuzz/schema_driver.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    schema_fuzz_record(store__formats[data[0] % store__n_formats], data + 1, size - 1);
    return 0;
}
