/* Writes the store record seed corpus:
 *   gen_records_corpus OUTDIR   (writes the seeds into OUTDIR/records/)
 * For every format of store/formats.c two records, one with strings and one
 * element in every array, one with the least of everything, each behind the
 * byte that picks its format in fuzz_records. Built with -DFUZZ=ON as the
 * fuzz_gen_records_corpus target. */
#include "fuzz/schema_driver.h"
#include "store/store_int.h"

static void write_seed(const char *dir, size_t i, const char *name, int rich)
{
    char path[8192];
    uint8_t pick = (uint8_t)i;
    struct fl_buf b;
    FILE *f;
    fl_buf_init(&b);
    if (fl_buf_append(&b, &pick, 1) != FL_OK ||
        schema_fuzz_sample(store__formats[i], rich, &b) != FL_OK) {
        fprintf(stderr, "%s: no sample\n", name);
        exit(1);
    }
    if (schema_fuzz_record(store__formats[i], b.data + 1, b.len - 1) != 1) {
        fprintf(stderr, "%s: the sample does not decode\n", name);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/records/%s-%s", dir, name, rich ? "some" : "least");
    f = fopen(path, "wb");
    if (f == NULL || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    fl_buf_close(&b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_records_corpus OUTDIR\n");
        return 2;
    }
    for (size_t i = 0; i < store__n_formats; i++) {
        write_seed(argv[1], i, store__formats[i]->name, 1);
        write_seed(argv[1], i, store__formats[i]->name, 0);
    }
    return 0;
}
