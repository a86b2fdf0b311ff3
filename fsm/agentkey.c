/* fsm/ — agent identities in the state machine (docs/SECURITY.md "Links").
 *
 *   AGENT_KEY_SET     [31, agent, public_key(bin 32), state]
 *   AGENT_KEY_APPROVE [32, agent, "", 0]
 *   AGENT_KEY_FORGET  [33, agent, "", 0]
 *   AGENT_REVOKE      [37, agent, "", 0]
 *   AGENT_UNREVOKE    [38, agent, "", 0]
 *
 * SET records the key of an agent id that has none (state approved at a
 * first join, pending when the cluster requires approval), and may turn a
 * pending record of the same key into an approved one; a record never
 * changes its key: another key is FL_ECONFLICT, identical on every replica.
 * APPROVE turns a pending record into an approved one (FL_ENOTFOUND without
 * a record). FORGET deletes the record (FL_ENOTFOUND without one): the next
 * join under that id records its key as a first join does, so an agent whose
 * key was lost or rotated (a server wiped and re-added) can come back.
 *
 * REVOKE puts an agent name on the deny-list: its record (made with no key
 * if it has none) turns revoked, and stays so: SET and APPROVE on a revoked
 * record are FL_ECONFLICT, FORGET keeps it. UNREVOKE takes it off (FL_ENOTFOUND
 * unless revoked): back to approved with its key, or gone if it had none. */
#include <string.h>

#include "common/err.h"
#include "fsm/fsm_int.h"

int fsm__agentkey_validate(const struct fsm_cmd *c, char *errmsg)
{
    const struct fsm_cmd_agentkey *k = &c->u.agentkey;
    if (k->alen == 0 || k->alen >= STORE_NODE_ID_MAX || memchr(k->agent, '\0', k->alen) != NULL) {
        return fl_errf(errmsg, FL_EINVAL, "an agent id is 1-%d characters", STORE_NODE_ID_MAX - 1);
    }
    if (c->type == FSM_CMD_AGENT_KEY_SET &&
        (k->pklen != 32 ||
         (k->state != STORE_AGENTKEY_APPROVED && k->state != STORE_AGENTKEY_PENDING))) {
        return fl_errf(errmsg, FL_EINVAL, "an agent key is 32 bytes, approved or pending");
    }
    return FL_OK;
}

int fsm__apply_agentkey(struct fsm *f, const struct fsm_cmd *c, uint64_t index, uint64_t now,
                        struct fsm_result *res)
{
    const struct fsm_cmd_agentkey *k = &c->u.agentkey;
    struct store_agentkey rec;
    char agent[STORE_NODE_ID_MAX];
    int rv;
    if (fsm__agentkey_validate(c, NULL) != FL_OK) {
        res->err = FL_EINVAL;
        return FL_OK;
    }
    memcpy(agent, k->agent, k->alen);
    agent[k->alen] = '\0';
    rv = store_agentkey_get(f->txn, agent, &rec);
    if (rv != FL_OK && rv != FL_ENOTFOUND) {
        return rv;
    }
    if (c->type == FSM_CMD_AGENT_REVOKE) {
        if (rv == FL_ENOTFOUND) {
            memset(&rec, 0, sizeof rec);
            rec.created_ms = now;
        } else if (rec.state == STORE_AGENTKEY_REVOKED) {
            return FL_OK; /* already */
        }
        rec.state = STORE_AGENTKEY_REVOKED;
        rec.updated_index = index;
        return store_agentkey_put(f->txn, agent, &rec);
    }
    if (c->type == FSM_CMD_AGENT_UNREVOKE) {
        static const unsigned char none[sizeof rec.pk];
        if (rv == FL_ENOTFOUND || rec.state != STORE_AGENTKEY_REVOKED) {
            res->err = FL_ENOTFOUND;
            return FL_OK;
        }
        if (memcmp(rec.pk, none, sizeof none) == 0) {
            return store_agentkey_del(f->txn, agent);
        }
        rec.state = STORE_AGENTKEY_APPROVED;
        rec.updated_index = index;
        return store_agentkey_put(f->txn, agent, &rec);
    }
    if (rv == FL_OK && rec.state == STORE_AGENTKEY_REVOKED) {
        res->err = FL_ECONFLICT; /* revoked stays revoked until UNREVOKE */
        return FL_OK;
    }
    if (c->type == FSM_CMD_AGENT_KEY_FORGET) {
        if (rv == FL_ENOTFOUND) {
            res->err = FL_ENOTFOUND;
            return FL_OK;
        }
        return store_agentkey_del(f->txn, agent);
    }
    if (c->type == FSM_CMD_AGENT_KEY_APPROVE) {
        if (rv == FL_ENOTFOUND) {
            res->err = FL_ENOTFOUND;
            return FL_OK;
        }
        rec.state = STORE_AGENTKEY_APPROVED;
    } else if (rv == FL_ENOTFOUND) {
        memset(&rec, 0, sizeof rec);
        memcpy(rec.pk, k->pk, sizeof rec.pk);
        rec.state = k->state;
        rec.created_ms = now;
    } else if (memcmp(rec.pk, k->pk, sizeof rec.pk) != 0) {
        res->err = FL_ECONFLICT; /* one key per agent id, for good */
        return FL_OK;
    } else if (k->state == STORE_AGENTKEY_APPROVED) {
        rec.state = STORE_AGENTKEY_APPROVED;
    } else {
        return FL_OK; /* already recorded */
    }
    rec.updated_index = index;
    return store_agentkey_put(f->txn, agent, &rec);
}
