/* The fuzz driver of Raft log entries (fsm/cmd.h), shared by fuzz_cmd.c and
 * the corpus replay in tests/unit/test_fuzz_corpus.c. The commands are
 * schema/ tables (fsm/cmd_schema.c), so every table first goes through the
 * generic driver's table check (schema_driver.h); then for any input:
 *
 *   - the entry decoder never crashes or reads outside the input (ASan), and
 *     a command is refused with FL_EDECODE or FL_EVERSION only;
 *   - a decoded command goes through the validator without harm;
 *   - encoding a decoded command, decoding that and encoding again is a
 *     fixed point, and the copy validates exactly when the original does. */
#ifndef FL_FUZZ_CMD_DRIVER_H
#define FL_FUZZ_CMD_DRIVER_H

#include "fsm/cmd_int.h"
#include "fuzz/schema_driver.h"

static inline void cmd_fuzz_fail(const char *what, int type)
{
    fprintf(stderr, "command driver: %s: %s\n", fsm_cmd_type_name(type), what);
    abort();
}

static inline void cmd_fuzz_tables(void)
{
    static int done;
    char err[FL_ERRMSG_SIZE] = "";
    for (int t = 0; !done && t < FSM_CMD__MAX; t++) {
        const struct fsm_cmd_desc *d = fsm__cmd_desc(t);
        if (d != NULL &&
            (d->sc->size > SCHEMA_FUZZ_OBJ || schema_table_check(d->sc, err) != FL_OK)) {
            schema_fuzz_fail(d->sc, "bad table", err);
        }
    }
    if (!done && schema_table_check(&fsm__request_schema, err) != FL_OK) {
        schema_fuzz_fail(&fsm__request_schema, "bad table", err);
    }
    done = 1;
}

/* Encode c alone into w (initialised); aborts if it cannot. */
static inline void cmd_fuzz_encode(const struct fsm_cmd *c, struct fsm_entry_writer *w)
{
    fsm_writer_init(w);
    if (fsm_writer_add(w, c) != FL_OK) {
        cmd_fuzz_fail("a decoded command does not encode", c->type);
    }
}

static inline void cmd_fuzz_fixed_point(const struct fsm_cmd *c)
{
    struct fsm_entry_writer a, b;
    struct fsm_cmd back;
    void *mem = NULL;
    int valid = fsm_cmd_validate(c, NULL) == FL_OK;
    cmd_fuzz_encode(c, &a);
    if (fsm_cmd_decode_one(a.body.data, a.body.len, &mem, &back) != FL_OK) {
        cmd_fuzz_fail("a re-encoded command does not decode", c->type);
    }
    if ((fsm_cmd_validate(&back, NULL) == FL_OK) != valid) {
        cmd_fuzz_fail("validation changed in the round trip", c->type);
    }
    cmd_fuzz_encode(&back, &b);
    if (a.body.len != b.body.len || memcmp(a.body.data, b.body.data, a.body.len) != 0) {
        cmd_fuzz_fail("encoding is not a fixed point", c->type);
    }
    fl_free(mem);
    fsm_writer_close(&a);
    fsm_writer_close(&b);
}

/* One input as a log entry. Returns how many commands decoded, -1 if the
 * entry's frame did not. */
static inline int cmd_fuzz_entry(const uint8_t *data, size_t size)
{
    struct fsm_entry e;
    int n = 0, rv;
    cmd_fuzz_tables();
    if (fsm_entry_open(&e, data, size) != FL_OK) {
        fsm_entry_close(&e);
        return -1;
    }
    for (unsigned i = 0; i < e.n_cmds; i++) {
        struct fsm_cmd c;
        rv = fsm_entry_cmd(&e, i, &c);
        if (rv != FL_OK && rv != FL_EDECODE && rv != FL_EVERSION && rv != FL_ENOMEM) {
            cmd_fuzz_fail("an error other than decode or version", c.type);
        }
        if (rv == FL_OK) {
            cmd_fuzz_fixed_point(&c);
            n++;
        }
    }
    fsm_entry_close(&e);
    return n;
}

#endif
