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
#include "common/mpread.h"
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

/* Records are read with the shared total reader (common/mpread.h). */
static inline int store__mp_bool(struct fl_mp *r, int *v)
{
    bool b = false;
    int rv = fl_mp_bool(r, &b);
    *v = b;
    return rv;
}

/* Record helpers (recutil.c). */
int store__buf_write(void *data, const char *p, size_t n); /* msgpack writer into an fl_buf */
int store__pack_str(msgpack_packer *pk, const char *s);
int store__pack_bin(msgpack_packer *pk, const void *p, size_t n);
int store__pack_bool(msgpack_packer *pk, int v);
/* Array header with the format version first: FL_EVERSION on another
 * version, FL_EDECODE unless it has exactly `fields` elements. */
int store__header(struct fl_mp *r, uint64_t format, uint32_t fields);
/* The same for a record read in several formats: formats 1..n_formats,
 * format v having exactly fields[v - 1] elements; *format gets the version.
 * FL_EVERSION on another version, FL_EDECODE on another element count. */
int store__header_formats(struct fl_mp *r, const uint32_t *fields, uint64_t n_formats,
                          uint64_t *format);
int store__str_field(struct fl_mp *r, char *dst, size_t max);
int store__u32_field(struct fl_mp *r, uint32_t *v);
/* Put the encoded record `b` (rv: the encoder's result) and close b. */
int store__put_encoded(struct store_txn *t, enum store_table tab, const void *key, size_t klen,
                       struct fl_buf *b, int rv);

#endif
