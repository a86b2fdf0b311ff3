/* store/ — the environment, transactions and the applied position.
 *
 * One LMDB environment with one named database per table. The environment is
 * opened with MDB_NOTLS so that a read transaction (a dump, a stale read) can
 * be open in the loop thread while the write transaction of the current apply
 * batch is open too: without it LMDB ties a reader slot to the thread and the
 * second transaction would fail with MDB_BAD_RSLOT. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/alloc.h"
#include "store/store_int.h"

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)

static const char *table_names[STORE__NTABLES] = {
    [STORE_META] = "meta",         [STORE_NODES] = "nodes",         [STORE_KV] = "kv",
    [STORE_LOCAL] = "local",       [STORE_TASKS] = "tasks",         [STORE_UNITS] = "units",
    [STORE_RESULTS] = "results",   [STORE_HOSTIDX] = "hostidx",     [STORE_QUEUE] = "queue",
    [STORE_IDEM] = "idem",         [STORE_NODEUNITS] = "nodeunits", [STORE_SESSIONS] = "sessions",
    [STORE_LOCKS] = "locks",       [STORE_SESSLOCKS] = "sesslocks", [STORE_JOBS] = "jobs",
    [STORE_RUNS] = "runs",         [STORE_TOKENS] = "tokens",       [STORE_AGENTKEYS] = "agentkeys",
    [STORE_PACKAGES] = "packages",
};

const char *store_table_name(enum store_table t)
{
    if ((unsigned)t >= STORE__NTABLES) {
        return "unknown";
    }
    return table_names[t];
}

int store__replicated(enum store_table tab)
{
    return (unsigned)tab < STORE__NTABLES && tab != STORE_LOCAL;
}

int store__lmdb_err(struct store *s, int rc, const char *what)
{
    int err;
    switch (rc) {
    case MDB_MAP_FULL:
        err = FL_EMAPFULL;
        break;
    case ENOSPC:
    case EDQUOT:
        err = FL_EDISKFULL;
        break;
    case MDB_NOTFOUND:
        err = FL_ENOTFOUND;
        break;
    case MDB_BAD_VALSIZE:
        err = FL_ETOOBIG;
        break;
    case ENOMEM:
        err = FL_ENOMEM;
        break;
    case MDB_READERS_FULL:
        err = FL_EBUSY;
        break;
    default:
        err = FL_EIO;
        break;
    }
    return fl_errf(s->errmsg, err, "%s: %s (lmdb %d)", what, mdb_strerror(rc), rc);
}

/* ---- big-endian helpers --------------------------------------------- */

void store__put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8) {
        p[i] = (uint8_t)v;
    }
}

void store__put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) {
        p[i] = (uint8_t)v;
    }
}

uint32_t store__get_be32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint64_t store__get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* ---- open / close ---------------------------------------------------- */

/* mkdir -p: create `dir` and any missing parent. */
static int make_dirs(const char *dir, char *errmsg)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        return fl_errf(errmsg, FL_EINVAL, "store directory path is empty or too long");
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            return fl_errf(errmsg, errno == ENOSPC ? FL_EDISKFULL : FL_EIO, "mkdir %s: %s", path,
                           strerror(errno));
        }
        path[i] = i < len ? '/' : '\0';
    }
    return FL_OK;
}

/* Open (creating) every named database in one write transaction; the handles
 * stay valid for the life of the environment. */
static int open_tables(struct store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        return store__lmdb_err(s, rc, "open tables: mdb_txn_begin");
    }
    for (int i = 0; i < STORE__NTABLES; i++) {
        rc = mdb_dbi_open(txn, table_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc != 0) {
            mdb_txn_abort(txn);
            return store__lmdb_err(s, rc, table_names[i]);
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return store__lmdb_err(s, rc, "open tables: mdb_txn_commit");
    }
    return FL_OK;
}

/* ---- log-durable mode (store_options.log_durable) ----------------------- */

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

/* The kernel's id of this boot, without the newline; 0 if unreadable. */
static int read_boot_id(char *out, size_t size)
{
    FILE *f = fopen(BOOT_ID_PATH, "r");
    size_t n;
    if (f == NULL) {
        return 0;
    }
    n = fread(out, 1, size - 1, f);
    fclose(f);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) {
        n--;
    }
    out[n] = '\0';
    return n > 0;
}

/* Write DIR/sync-state as "<boot id> <state>\n": a temporary file, fsync,
 * rename, fsync of the directory, so the marker is either old or new. */
static int write_sync_state(struct store *s, const char *dir, const char *state)
{
    char tmp[sizeof s->sync_path + 8], line[128];
    int fd, n, ok;
    snprintf(tmp, sizeof tmp, "%s.tmp", s->sync_path);
    n = snprintf(line, sizeof line, "%s %s\n", s->boot_id, state);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return fl_errf(s->errmsg, FL_EIO, "%s: %s", tmp, strerror(errno));
    }
    ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, s->sync_path) != 0) {
        unlink(tmp);
        return fl_errf(s->errmsg, FL_EIO, "%s: %s", s->sync_path, strerror(errno));
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return FL_OK;
}

/* Before the environment is opened: if the marker says a previous boot left
 * it dirty, remove it (Raft rebuilds it). Returns FL_OK or an FL_* error. */
static int check_sync_state(struct store *s, const char *dir)
{
    char line[128] = "", path[sizeof s->sync_path + 16];
    char id[64], state[16];
    FILE *f = fopen(s->sync_path, "r");
    if (f == NULL) {
        return FL_OK; /* a new store, or one written in the default mode */
    }
    if (fgets(line, sizeof line, f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    if (sscanf(line, "%63s %15s", id, state) == 2 && strcmp(state, "clean") == 0) {
        return FL_OK;
    }
    if (sscanf(line, "%63s %15s", id, state) == 2 && strcmp(id, s->boot_id) == 0) {
        return FL_OK; /* a process crash: every write is in the page cache */
    }
    /* Dirty after a reboot (or an unreadable marker): some commits may have
     * reached the disk only in part. */
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, i == 0 ? "data.mdb" : "lock.mdb");
        if (unlink(path) != 0 && errno != ENOENT) {
            return fl_errf(s->errmsg, FL_EIO, "%s: %s", path, strerror(errno));
        }
    }
    s->rebuilt = 1;
    return FL_OK;
}

int store_rebuilt(const struct store *s)
{
    return s->rebuilt;
}

int store_open(const char *dir, const struct store_options *opts, struct store **out, char *errmsg)
{
    struct store *s;
    size_t map_size = opts != NULL && opts->map_size != 0 ? opts->map_size : DEFAULT_MAP_SIZE;
    unsigned flags = MDB_NOTLS | (opts != NULL && opts->no_sync ? MDB_NOSYNC : MDB_NOMETASYNC);
    int rv, rc, dead;

    *out = NULL;
    if (sodium_init() < 0) {
        return fl_errf(errmsg, FL_EIO, "sodium_init failed");
    }
    rv = make_dirs(dir, errmsg);
    if (rv != FL_OK) {
        return rv;
    }
    s = fl_calloc(1, sizeof *s);
    if (s == NULL) {
        return fl_errf(errmsg, FL_ENOMEM, "store_open: out of memory");
    }
    s->fault_countdown = -1;
    if (opts != NULL && opts->log_durable && !opts->no_sync &&
        read_boot_id(s->boot_id, sizeof s->boot_id) &&
        snprintf(s->sync_path, sizeof s->sync_path, "%s/sync-state", dir) <
            (int)sizeof s->sync_path) {
        s->log_durable = 1;
        flags = MDB_NOTLS | MDB_NOSYNC;
        rv = check_sync_state(s, dir);
        if (rv != FL_OK) {
            goto err_free;
        }
    }
    rc = mdb_env_create(&s->env);
    if (rc != 0) {
        rv = store__lmdb_err(s, rc, "mdb_env_create");
        goto err_free;
    }
    if ((rc = mdb_env_set_mapsize(s->env, map_size)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, STORE__MAXDBS)) != 0) {
        rv = store__lmdb_err(s, rc, "mdb_env_set");
        goto err_env;
    }
    rc = mdb_env_open(s->env, dir, flags, 0644);
    if (rc != 0) {
        rv = store__lmdb_err(s, rc, dir);
        goto err_env;
    }
    /* Free the reader slots of processes that died (kill -9) holding a read
     * transaction; they would pin old pages forever. */
    mdb_reader_check(s->env, &dead);
    rv = open_tables(s);
    if (rv != FL_OK) {
        goto err_env;
    }
    /* From here on commits are not flushed: mark the environment dirty
     * (durably) before the first one. */
    if (s->log_durable && (rc = mdb_env_sync(s->env, 1)) != 0) {
        rv = store__lmdb_err(s, rc, "mdb_env_sync");
        goto err_env;
    }
    if (s->log_durable && (rv = write_sync_state(s, dir, "dirty")) != FL_OK) {
        goto err_env;
    }
    *out = s;
    return FL_OK;

err_env:
    mdb_env_close(s->env);
err_free:
    fl_errf(errmsg, rv, "%s", s->errmsg);
    fl_free(s);
    return rv;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    if (s->log_durable && s->writer == NULL && mdb_env_sync(s->env, 1) == 0) {
        char dir[sizeof s->sync_path];
        char *slash;
        snprintf(dir, sizeof dir, "%s", s->sync_path);
        slash = strrchr(dir, '/');
        if (slash != NULL) {
            *slash = '\0';
            write_sync_state(s, dir, "clean");
        }
    }
    mdb_env_close(s->env);
    fl_free(s);
}

const char *store_errmsg(const struct store *s)
{
    return s->errmsg;
}

void store_fault_commit(struct store *s, long countdown)
{
    s->fault_countdown = countdown;
}

void store_usage(struct store *s, uint64_t *used_bytes, uint64_t *map_bytes)
{
    MDB_envinfo info;
    MDB_stat st;
    *used_bytes = 0;
    *map_bytes = 0;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0) {
        return;
    }
    /* Pages 0 and 1 are the meta pages; me_last_pgno is the highest page in
     * use, so the file holds last_pgno + 1 pages. */
    *used_bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    *map_bytes = info.me_mapsize;
}

/* ---- transactions ---------------------------------------------------- */

int store_begin(struct store *s, int write, struct store_txn **out)
{
    struct store_txn *t;
    int rc;
    *out = NULL;
    if (write && s->writer != NULL) {
        /* LMDB's writer lock is not recursive: a second write transaction in
         * the same thread would deadlock. */
        return fl_errf(s->errmsg, FL_EBUSY, "a write transaction is already open");
    }
    t = fl_malloc(sizeof *t);
    if (t == NULL) {
        return fl_errf(s->errmsg, FL_ENOMEM, "store_begin: out of memory");
    }
    rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc != 0) {
        fl_free(t);
        return store__lmdb_err(s, rc, "mdb_txn_begin");
    }
    t->s = s;
    t->write = write ? 1 : 0;
    t->err = FL_OK;
    t->errmsg[0] = '\0';
    if (write) {
        s->writer = t;
    }
    *out = t;
    return FL_OK;
}

int store__txn_fail(struct store_txn *t, int err)
{
    if (t->err == FL_OK) {
        t->err = err;
        memcpy(t->errmsg, t->s->errmsg, sizeof t->errmsg);
    }
    return err;
}

static void txn_free(struct store_txn *t)
{
    if (t->write) {
        t->s->writer = NULL;
    }
    fl_free(t);
}

void store_abort(struct store_txn *t)
{
    if (t == NULL) {
        return;
    }
    mdb_txn_abort(t->txn);
    txn_free(t);
}

int store_commit(struct store_txn *t)
{
    struct store *s = t->s;
    int rv, rc;
    if (!t->write) {
        store_abort(t);
        return FL_OK;
    }
    if (t->err != FL_OK) {
        rv = fl_errf(s->errmsg, t->err, "commit of a failed transaction: %s", t->errmsg);
        store_abort(t);
        return rv;
    }
    if (s->fault_countdown == 0) {
        s->fault_countdown = -1;
        store_abort(t);
        return fl_errf(s->errmsg, FL_EIO, "mdb_txn_commit: injected fault");
    }
    /* mdb_txn_commit frees the transaction whether or not it succeeds; on
     * failure nothing of it reached the data file. */
    rc = mdb_txn_commit(t->txn);
    txn_free(t);
    if (rc != 0) {
        return store__lmdb_err(s, rc, "mdb_txn_commit");
    }
    if (s->fault_countdown > 0) {
        s->fault_countdown--;
    }
    return FL_OK;
}

/* ---- applied position ------------------------------------------------ */

int store__read_applied(struct store_txn *t, uint64_t *index, uint64_t *term)
{
    const void *val;
    size_t vlen;
    int rv;
    *index = 0;
    *term = 0;
    rv = store_get(t, STORE_META, STORE__APPLIED_KEY, STORE__APPLIED_KEY_LEN, &val, &vlen);
    if (rv == FL_ENOTFOUND) {
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if (vlen != 16) {
        return fl_errf(t->s->errmsg, FL_ECORRUPT, "meta/applied: %zu bytes, expected 16", vlen);
    }
    *index = store__get_be64(val);
    *term = store__get_be64((const uint8_t *)val + 8);
    return FL_OK;
}

int store_applied(struct store *s, uint64_t *index, uint64_t *term)
{
    struct store_txn *t;
    int rv = store_begin(s, 0, &t);
    if (rv != FL_OK) {
        *index = 0;
        *term = 0;
        return rv;
    }
    rv = store__read_applied(t, index, term);
    store_abort(t);
    return rv;
}

int store_set_applied(struct store_txn *t, uint64_t index, uint64_t term)
{
    uint8_t val[16];
    store__put_be64(val, index);
    store__put_be64(val + 8, term);
    return store_put(t, STORE_META, STORE__APPLIED_KEY, STORE__APPLIED_KEY_LEN, val, sizeof val);
}
