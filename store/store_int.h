/* store/ — private declarations shared by the files of the module.
 *
 * Not part of the contract: only the .c files of store/ include this header. */
#ifndef FL_STORE_STORE_INT_H
#define FL_STORE_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>
#include <msgpack.h>

#include "common/err.h"
#include "schema/schema.h"
#include "store/store.h"

/* Room for the tables still to come (tasks, units, results, locks, jobs...):
 * LMDB fixes the number of named databases when the environment is opened. */
#define STORE__MAXDBS 32

/* META key of the applied position: 16 bytes, u64 index then u64 term, both
 * big-endian. Written only through store_set_applied()/store_load(). */
#define STORE__APPLIED_KEY     "applied"
#define STORE__APPLIED_KEY_LEN (sizeof STORE__APPLIED_KEY - 1)

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE__NTABLES];
    struct store_txn *writer; /* the open write transaction, NULL if none */
    long fault_countdown;     /* store_fault_commit(); < 0 disabled */
    int log_durable;          /* opened MDB_NOSYNC with DIR/sync-state */
    int rebuilt;              /* the environment was removed at open */
    char sync_path[4200];     /* DIR/sync-state */
    char boot_id[64];
    char errmsg[FL_ERRMSG_SIZE];
};

struct store_txn {
    struct store *s;
    MDB_txn *txn;
    int write;
    /* First storage failure inside a write transaction (FL_EMAPFULL, ...).
     * LMDB refuses every further operation on such a transaction, so the
     * store does too, returning this code, and store_commit() aborts. */
    int err;
    char errmsg[FL_ERRMSG_SIZE]; /* the detail of `err` */
};

/* Mark write transaction t failed with `err` (the detail is the store's
 * current errmsg) unless it already failed; returns err. */
int store__txn_fail(struct store_txn *t, int err);

/* Convert an LMDB (or errno) code `rc` into an FL_* code, writing
 * "<what>: <LMDB message>" into s->errmsg. MDB_MAP_FULL -> FL_EMAPFULL,
 * ENOSPC/EDQUOT -> FL_EDISKFULL, MDB_NOTFOUND -> FL_ENOTFOUND,
 * MDB_BAD_VALSIZE -> FL_ETOOBIG, ENOMEM -> FL_ENOMEM,
 * MDB_READERS_FULL -> FL_EBUSY, anything else FL_EIO. */
int store__lmdb_err(struct store *s, int rc, const char *what);

/* 1 for the tables that are replicated, dumped and digested. */
int store__replicated(enum store_table tab);

/* Applied position as seen by transaction `t`; {0, 0} if never set.
 * FL_ECORRUPT if the stored value is not 16 bytes. */
int store__read_applied(struct store_txn *t, uint64_t *index, uint64_t *term);

/* Big-endian integers (snapshot format, applied position). */
void store__put_be32(uint8_t *p, uint32_t v);
void store__put_be64(uint8_t *p, uint64_t v);
uint32_t store__get_be32(const uint8_t *p);
uint64_t store__get_be64(const uint8_t *p);

/* The formats of the records (formats.c), run by the engine of schema/. */
extern const struct schema store__fmt_kv, store__fmt_node, store__fmt_task, store__fmt_unit,
    store__fmt_result, store__fmt_session, store__fmt_lock, store__fmt_job, store__fmt_run,
    store__fmt_token, store__fmt_agentkey, store__fmt_package;
/* Every record format, for the tests and the fuzz harness. */
extern const struct schema *const store__formats[];
extern const size_t store__n_formats;

/* Validate obj against sc, encode it as a record and put it under key:
 * FL_EINVAL (obj breaks its format; the detail in the store's errmsg),
 * FL_ENOMEM, or store_put's result. */
int store__put_record(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
                      const struct schema *sc, const void *obj);

#endif
