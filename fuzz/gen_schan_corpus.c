/* Writes the secure channel seed corpus:
 *   gen_schan_corpus OUTDIR   (writes the seeds into OUTDIR/schan/)
 * Mode bytes and scripts as in schan_driver.h. HELLOs are made by the real
 * encoder with the fixed fuzz key, so they pass the MAC check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fuzz/schan_driver.h"

static char dir[4096];

static void write_seed(const char *name, const uint8_t *p, size_t n)
{
    char path[8192];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void seed_hello(void)
{
    struct schan_config c;
    struct schan *ch;
    struct fl_buf b;
    fl_buf_init(&b);
    fl_buf_append(&b, "\0", 1); /* mode 0: to a responder */
    schan_fuzz_config(&c, SCHAN_ROLE_AGENT, "web-1");
    if (schan_create(&c, 1, &ch, NULL) != FL_OK || schan_start(ch, &b) != FL_OK) {
        exit(1);
    }
    write_seed("hello", b.data, b.len);
    /* HELLO then a CONFIRM-shaped frame that cannot match */
    {
        uint8_t confirm[4 + 61] = {0, 0, 0, 61, 'F', 'L', 'S', '1', 3};
        fl_buf_append(&b, confirm, sizeof confirm);
        write_seed("hello-confirm", b.data, b.len);
    }
    schan_destroy(ch);
    fl_buf_close(&b);
}

static void seed_reply(void)
{
    /* mode 1: a REPLY-shaped frame from a responder with the same key */
    struct schan_config ci, cr;
    struct schan *i, *r;
    struct fl_buf a, b, plain;
    fl_buf_init(&a);
    fl_buf_init(&b);
    fl_buf_init(&plain);
    fl_buf_append(&b, "\1", 1);
    schan_fuzz_config(&ci, SCHAN_ROLE_AGENT, "web-1");
    schan_fuzz_config(&cr, SCHAN_ROLE_SERVER, "server-1");
    if (schan_create(&ci, 1, &i, NULL) != FL_OK || schan_create(&cr, 0, &r, NULL) != FL_OK ||
        schan_start(i, &a) != FL_OK || schan_recv(r, a.data, a.len, &b, &plain) != FL_OK) {
        exit(1);
    }
    write_seed("reply", b.data, b.len);
    schan_destroy(i);
    schan_destroy(r);
    fl_buf_close(&a);
    fl_buf_close(&b);
    fl_buf_close(&plain);
}

static void seed_scripts(void)
{
    /* mode 2 scripts: [op, arg, data...] */
    static const uint8_t clean[] = {2, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 3, 'a', 'b', 'c', 2, 0};
    static const uint8_t bytewise[] = {2,   0,   10,  '0', '1', '2', '3', '4',
                                       '5', '6', '7', '8', '9', 2,   0};
    static const uint8_t flip[] = {2, 0, 4, 'v', 'o', 't', 'e', 1, 7, 2, 63};
    static const uint8_t raw[] = {2, 3, 4, 0, 0, 0, 30, 2, 9};
    static const uint8_t big_len[] = {2, 3, 4, 0x7f, 0xff, 0xff, 0xff, 2, 3};
    uint8_t many[1 + 2 * 40 + 40 * 200];
    size_t n = 0;
    write_seed("script-clean", clean, sizeof clean);
    write_seed("script-bytewise", bytewise, sizeof bytewise);
    write_seed("script-flip", flip, sizeof flip);
    write_seed("script-raw", raw, sizeof raw);
    write_seed("script-oversized", big_len, sizeof big_len);
    many[n++] = 2;
    for (int k = 0; k < 40; k++) {
        many[n++] = 0;
        many[n++] = 200;
        memset(many + n, 'a' + k % 26, 200);
        n += 200;
    }
    write_seed("script-many-frames", many, n);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: gen_schan_corpus OUTDIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/schan", argv[1]);
    seed_hello();
    seed_reply();
    seed_scripts();
    {
        uint8_t junk[300];
        junk[0] = 0;
        randombytes_buf(junk + 1, sizeof junk - 1);
        write_seed("garbage", junk, sizeof junk);
    }
    return 0;
}
