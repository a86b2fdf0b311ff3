/* fsm/ — API tokens in the state machine (docs/ACL.md).
 *
 *   ACL_BOOTSTRAP [28, hash(bin 32), record(bin), ""]
 *   TOKEN_CREATE  [29, hash(bin 32), record(bin), ""]
 *   TOKEN_DELETE  [30, "", "", accessor]
 *
 * Only the hash of a secret enters the log. Bootstrap happens once per
 * cluster: META "acl_bootstrap" keeps the hash it was made with, so a client
 * that retries a bootstrap whose answer it lost (same secret) is told it
 * worked, and every other bootstrap is refused with FL_ECONFLICT. Deleting
 * the last token that can manage tokens is refused, so the cluster cannot be
 * locked out by mistake. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "fsm/fsm_int.h"

#define META_BOOTSTRAP "acl_bootstrap"

int fsm__acl_validate(const struct fsm_cmd *c, char *errmsg)
{
    struct store_token tok;
    if (c->type == FSM_CMD_TOKEN_DELETE) {
        if (c->u.acl.alen == 0 || c->u.acl.alen >= STORE_TOKEN_ACCESSOR_MAX) {
            return fl_errf(errmsg, FL_EINVAL, "an accessor is 1-%d characters",
                           STORE_TOKEN_ACCESSOR_MAX - 1);
        }
        return FL_OK;
    }
    if (c->u.acl.hlen != STORE_TOKEN_HASH_BYTES) {
        return fl_errf(errmsg, FL_EINVAL, "a token hash is %d bytes", STORE_TOKEN_HASH_BYTES);
    }
    if (store_token_decode(c->u.acl.rec, c->u.acl.reclen, &tok) != FL_OK) {
        return fl_errf(errmsg, FL_EINVAL, "bad token record");
    }
    return FL_OK;
}

/* Find the token with this accessor; *admins counts the tokens that can
 * manage tokens. FL_OK with hash/out filled, FL_ENOTFOUND, or a storage
 * error. */
static int find_accessor(struct store_txn *t, const char *acc, size_t alen,
                         uint8_t hash[STORE_TOKEN_HASH_BYTES], struct store_token *out,
                         unsigned *admins)
{
    struct store_cursor *cur;
    const void *k, *v;
    size_t kl, vl;
    int rv, found = 0;
    *admins = 0;
    rv = store_cursor_open(t, STORE_TOKENS, NULL, 0, &cur);
    if (rv != FL_OK) {
        return rv;
    }
    while ((rv = store_cursor_next(cur, &k, &kl, &v, &vl)) == FL_OK) {
        struct store_token tok;
        if (kl != STORE_TOKEN_HASH_BYTES || store_token_decode(v, vl, &tok) != FL_OK) {
            continue;
        }
        if (tok.caps & STORE_CAP_ADMIN) {
            (*admins)++;
        }
        if (!found && strlen(tok.accessor) == alen && memcmp(tok.accessor, acc, alen) == 0) {
            memcpy(hash, k, STORE_TOKEN_HASH_BYTES);
            *out = tok;
            found = 1;
        }
    }
    store_cursor_close(cur);
    if (rv != FL_ENOTFOUND) {
        return rv;
    }
    return found ? FL_OK : FL_ENOTFOUND;
}

static int put_new(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                   int bootstrap, struct fsm_result *res)
{
    struct store_token tok, old;
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    unsigned admins;
    int rv;
    if (store_token_decode(c->u.acl.rec, c->u.acl.reclen, &tok) != FL_OK) {
        res->err = FL_EINVAL;
        return FL_OK;
    }
    rv = store_token_get(f->txn, c->u.acl.hash, &old);
    if (rv == FL_OK) {
        res->err = FL_EEXIST;
        return FL_OK;
    }
    if (rv != FL_ENOTFOUND) {
        return rv;
    }
    rv = find_accessor(f->txn, tok.accessor, strlen(tok.accessor), h, &old, &admins);
    if (rv == FL_OK) {
        res->err = FL_EEXIST;
        return FL_OK;
    }
    if (rv != FL_ENOTFOUND) {
        return rv;
    }
    tok.created_ms = now;
    tok.created_index = index;
    tok.bootstrap = bootstrap;
    if (bootstrap) {
        tok.caps = STORE_CAP_ALL;
        tok.n_ns = 0;
    }
    rv = store_token_put(f->txn, c->u.acl.hash, &tok);
    if (rv == FL_OK) {
        snprintf(res->accessor, sizeof res->accessor, "%s", tok.accessor);
    }
    return rv;
}

static int bootstrap(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                     struct fsm_result *res)
{
    char hex[STORE_TOKEN_HASH_BYTES * 2 + 1];
    const void *v;
    size_t vl;
    int rv;
    sodium_bin2hex(hex, sizeof hex, c->u.acl.hash, STORE_TOKEN_HASH_BYTES);
    rv = store_get(f->txn, STORE_META, META_BOOTSTRAP, strlen(META_BOOTSTRAP), &v, &vl);
    if (rv == FL_OK) {
        struct store_token tok;
        /* Done before: the same secret is a retry, anything else too late. */
        if (vl == strlen(hex) && memcmp(v, hex, vl) == 0 &&
            store_token_get(f->txn, c->u.acl.hash, &tok) == FL_OK) {
            snprintf(res->accessor, sizeof res->accessor, "%s", tok.accessor);
            return FL_OK;
        }
        res->err = FL_ECONFLICT;
        return FL_OK;
    }
    if (rv != FL_ENOTFOUND) {
        return rv;
    }
    rv = put_new(f, c, index, now, 1, res);
    if (rv != FL_OK || res->err != FL_OK) {
        return rv;
    }
    return store_put(f->txn, STORE_META, META_BOOTSTRAP, strlen(META_BOOTSTRAP), hex, strlen(hex));
}

static int delete_token(struct fsm *f, const struct fsm_cmd *c, struct fsm_result *res)
{
    struct store_token tok;
    uint8_t h[STORE_TOKEN_HASH_BYTES];
    unsigned admins;
    int rv = find_accessor(f->txn, c->u.acl.accessor, c->u.acl.alen, h, &tok, &admins);
    if (rv == FL_ENOTFOUND) {
        res->err = FL_ENOTFOUND;
        return FL_OK;
    }
    if (rv != FL_OK) {
        return rv;
    }
    if ((tok.caps & STORE_CAP_ADMIN) && admins <= 1) {
        res->err = FL_ECONFLICT;
        return FL_OK;
    }
    snprintf(res->accessor, sizeof res->accessor, "%s", tok.accessor);
    return store_del(f->txn, STORE_TOKENS, h, sizeof h);
}

int fsm__apply_acl(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                   struct fsm_result *res)
{
    switch (c->type) {
    case FSM_CMD_ACL_BOOTSTRAP:
        return bootstrap(f, c, index, now, res);
    case FSM_CMD_TOKEN_CREATE:
        return put_new(f, c, index, now, 0, res);
    case FSM_CMD_TOKEN_DELETE:
        return delete_token(f, c, res);
    default:
        res->err = FL_EVERSION;
        return FL_OK;
    }
}
