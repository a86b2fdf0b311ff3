/* fsm/ — package metadata in the state machine (docs/PACKAGES.md).
 *
 *   PACKAGE_PUT [34, name, version, record(bin)]  record: a store_package
 *   PACKAGE_RM  [35, name, version, ""]
 *
 * PUT records a version. A version is immutable: putting it again with the
 * same hash is a no-op (the answer carries the first index), with another
 * hash FL_EEXIST. After the put, the oldest versions of the name beyond the
 * record's `keep` are deleted (retention), by Raft index order. The record's
 * index and created_ms are set by the apply, so every replica writes the
 * same bytes. RM deletes one version (FL_ENOTFOUND if absent). The bytes are
 * not in the log: each server's blob directory holds them by hash, and a
 * server drops a blob no record names any more. */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "fsm/fsm_int.h"

#define PKG_CHUNK_MIN (64u * 1024u)
#define PKG_CHUNK_MAX (64u * 1024u * 1024u)
#define PKG_SIZE_MAX  (64ull * 1024 * 1024 * 1024)

static int name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

int fsm_package_name_check(const char *s, size_t n, char *errmsg)
{
    if (n == 0 || n >= STORE_PKG_NAME_MAX || !(name_char(s[0]) && s[0] != '.' && s[0] != '-')) {
        return fl_errf(errmsg, FL_EINVAL,
                       "a package name is 1-%d of A-Z a-z 0-9 . _ - starting with a letter, a "
                       "digit or _",
                       STORE_PKG_NAME_MAX - 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_char(s[i])) {
            return fl_errf(errmsg, FL_EINVAL, "a package name may only hold A-Z a-z 0-9 . _ -");
        }
    }
    return FL_OK;
}

int fsm_package_version_check(const char *s, size_t n, char *errmsg)
{
    if (n == 0 || n >= STORE_PKG_VERSION_MAX || s[0] == '.') {
        return fl_errf(errmsg, FL_EINVAL, "a version is 1-%d characters, not starting with '.'",
                       STORE_PKG_VERSION_MAX - 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_char(s[i]) && s[i] != '+' && s[i] != '@') {
            return fl_errf(errmsg, FL_EINVAL, "a version may only hold A-Z a-z 0-9 . _ + @ -");
        }
    }
    return FL_OK;
}

int fsm__package_validate(const struct fsm_cmd *c, char *errmsg)
{
    const struct fsm_cmd_package *p = &c->u.pkg;
    struct store_package rec;
    int rv;
    if ((rv = fsm_package_name_check(p->name, p->nlen, errmsg)) != FL_OK ||
        (rv = fsm_package_version_check(p->version, p->vlen, errmsg)) != FL_OK) {
        return rv;
    }
    if (c->type == FSM_CMD_PACKAGE_RM) {
        return FL_OK;
    }
    if (store_package_decode(p->rec, p->reclen, &rec) != FL_OK) {
        return fl_errf(errmsg, FL_EINVAL, "a package record does not decode");
    }
    if (strlen(rec.name) != p->nlen || memcmp(rec.name, p->name, p->nlen) != 0 ||
        strlen(rec.version) != p->vlen || memcmp(rec.version, p->version, p->vlen) != 0) {
        return fl_errf(errmsg, FL_EINVAL, "a package record names another version");
    }
    if (rec.chunk_size < PKG_CHUNK_MIN || rec.chunk_size > PKG_CHUNK_MAX ||
        rec.size > PKG_SIZE_MAX) {
        return fl_errf(errmsg, FL_EINVAL,
                       "package chunks are 64 KiB-64 MiB, packages at most 64 GiB");
    }
    if (rec.keep < 1 || rec.keep > STORE_PKG_KEEP_MAX) {
        return fl_errf(errmsg, FL_EINVAL, "keep is 1-%d versions", STORE_PKG_KEEP_MAX);
    }
    return FL_OK;
}

struct pkg_ver {
    uint64_t index;
    char version[STORE_PKG_VERSION_MAX];
};

static int by_index(const void *a, const void *b)
{
    const struct pkg_ver *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Delete the oldest versions of `name` beyond `keep`. */
static int retain(struct fsm *f, const char *name, uint32_t keep)
{
    char from[STORE_PKG_NAME_MAX + 1];
    size_t nlen = strlen(name), n = 0, cap = 16;
    struct pkg_ver *v = fl_malloc(cap * sizeof *v);
    struct store_cursor *cur;
    const void *k, *val;
    size_t kl, vl;
    int rv;
    if (v == NULL) {
        return FL_ENOMEM;
    }
    memcpy(from, name, nlen + 1);
    rv = store_cursor_open(f->txn, STORE_PACKAGES, from, nlen + 1, &cur);
    while (rv == FL_OK && (rv = store_cursor_next(cur, &k, &kl, &val, &vl)) == FL_OK) {
        struct store_package p;
        if (kl <= nlen || memcmp(k, from, nlen + 1) != 0) {
            break;
        }
        if (store_package_decode(val, vl, &p) != FL_OK) {
            continue; /* cannot happen: every record was checked when written */
        }
        if (n == cap) {
            struct pkg_ver *nv = fl_realloc(v, cap * 2 * sizeof *v);
            if (nv == NULL) {
                rv = FL_ENOMEM;
                break;
            }
            v = nv;
            cap *= 2;
        }
        v[n].index = p.index;
        memcpy(v[n].version, p.version, sizeof v[n].version);
        n++;
    }
    if (rv == FL_ENOTFOUND || rv == FL_OK) {
        rv = FL_OK;
    }
    if (cur != NULL) {
        store_cursor_close(cur);
    }
    if (rv == FL_OK && n > keep) {
        qsort(v, n, sizeof *v, by_index);
        for (size_t i = 0; i < n - keep && rv == FL_OK; i++) {
            rv = store_package_del(f->txn, name, v[i].version);
        }
    }
    fl_free(v);
    return rv;
}

int fsm__apply_package(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                       struct fsm_result *res)
{
    const struct fsm_cmd_package *p = &c->u.pkg;
    char name[STORE_PKG_NAME_MAX], version[STORE_PKG_VERSION_MAX];
    struct store_package rec, old;
    int rv;
    if (fsm__package_validate(c, NULL) != FL_OK) {
        res->err = FL_EINVAL;
        return FL_OK;
    }
    memcpy(name, p->name, p->nlen);
    name[p->nlen] = '\0';
    memcpy(version, p->version, p->vlen);
    version[p->vlen] = '\0';
    rv = store_package_get(f->txn, name, version, &old);
    if (rv != FL_OK && rv != FL_ENOTFOUND) {
        return rv;
    }
    if (c->type == FSM_CMD_PACKAGE_RM) {
        if (rv == FL_ENOTFOUND) {
            res->err = FL_ENOTFOUND;
            return FL_OK;
        }
        return store_package_del(f->txn, name, version);
    }
    store_package_decode(p->rec, p->reclen, &rec); /* checked by validate */
    if (rv == FL_OK) {
        res->pkg_index = old.index;
        if (memcmp(old.hash, rec.hash, sizeof rec.hash) != 0) {
            res->err = FL_EEXIST; /* a version never changes its bytes */
        }
        return FL_OK;
    }
    rec.index = index;
    rec.created_ms = now;
    res->pkg_index = index;
    if ((rv = store_package_put(f->txn, &rec)) != FL_OK) {
        return rv;
    }
    return retain(f, name, rec.keep);
}
