/* Raft's commit index never moves backwards on a follower.
 *
 * Drives raft 0.22.1's core (raft_step, no I/O) as a follower and hands it
 * the AppendEntries sequence that a pipelining leader produces: entries with
 * a commit index, then an empty AppendEntries whose prev_log_index is below
 * what the follower has already committed (the leader probes from an older
 * next index) while its leader_commit is higher. Stock 0.22.1 sets the commit
 * index to min(leader_commit, prev_log_index) there, below what the follower
 * has applied, and the legacy layer then aborts on
 * `last_applied <= commit_index` (or takes a snapshot labelled with an index
 * older than its contents). third_party/raft-commit-monotonic.patch keeps the
 * higher value. Found by the chaos harness (docs/CHAOS.md). */
#include <raft.h>

#include "check.h"

#define LEADER 1
#define SELF   2

static struct raft_message msgs_unused;

struct follower {
    struct raft r;
    raft_time now;
};

static void step(struct follower *f, struct raft_event *ev, struct raft_update *up)
{
    ev->time = f->now;
    ev->capacity = 0;
    memset(up, 0, sizeof *up);
    int rv = raft_step(&f->r, ev, up);
    CHECK_EQ_INT(rv, 0);
    /* The follower "persists" new entries at once: their payload batch is
     * ours to free, and raft learns they are stored. */
    if (up->flags & RAFT_UPDATE_ENTRIES) {
        raft_index last = up->entries.index + up->entries.n - 1;
        raft_free(up->entries.batch[0].batch);
        struct raft_event done = {0};
        struct raft_update up2;
        done.type = RAFT_PERSISTED_ENTRIES;
        done.persisted_entries.index = last;
        done.time = f->now;
        memset(&up2, 0, sizeof up2);
        CHECK_EQ_INT(raft_step(&f->r, &done, &up2), 0);
    }
}

static void start(struct follower *f, struct raft_buffer *conf_buf, struct raft_entry *first)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    CHECK_EQ_INT(raft_configuration_add(&conf, 1, "1", RAFT_VOTER), 0);
    CHECK_EQ_INT(raft_configuration_add(&conf, 2, "2", RAFT_VOTER), 0);
    CHECK_EQ_INT(raft_configuration_add(&conf, 3, "3", RAFT_VOTER), 0);
    CHECK_EQ_INT(raft_configuration_encode(&conf, conf_buf), 0);
    raft_configuration_close(&conf);

    memset(f, 0, sizeof *f);
    CHECK_EQ_INT(raft_init(&f->r, NULL, NULL, SELF, "2"), 0);
    f->r.tracer = NULL;
    memset(first, 0, sizeof *first);
    first->type = RAFT_CHANGE;
    first->term = 1;
    first->buf = *conf_buf;
    first->batch = conf_buf->base;

    struct raft_event ev = {0};
    struct raft_update up;
    ev.type = RAFT_START;
    ev.start.term = 1;
    ev.start.voted_for = 0;
    ev.start.metadata = NULL;
    ev.start.start_index = 1;
    ev.start.entries = first;
    ev.start.n_entries = 1;
    step(f, &ev, &up);
}

/* AppendEntries from the leader in term 2 carrying entries [from, to]. */
static void append_change(struct follower *f, raft_index prev, raft_term prev_term, raft_index from,
                          raft_index to, raft_index leader_commit, raft_index change_at,
                          const struct raft_buffer *change);

static void append(struct follower *f, raft_index prev, raft_term prev_term, raft_index from,
                   raft_index to, raft_index leader_commit)
{
    append_change(f, prev, prev_term, from, to, leader_commit, 0, NULL);
}

/* The same, with the entry at change_at (if any) a configuration change
 * whose encoding is *change. */
static void append_change(struct follower *f, raft_index prev, raft_term prev_term, raft_index from,
                          raft_index to, raft_index leader_commit, raft_index change_at,
                          const struct raft_buffer *change)
{
    unsigned n = (unsigned)(to >= from ? to - from + 1 : 0);
    struct raft_entry entries[16];
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_APPEND_ENTRIES;
    m.server_id = LEADER;
    m.server_address = "1";
    m.append_entries.version = 0;
    m.append_entries.term = 2;
    m.append_entries.prev_log_index = prev;
    m.append_entries.prev_log_term = prev_term;
    m.append_entries.leader_commit = leader_commit;
    m.append_entries.n_entries = n;
    m.append_entries.entries = n ? entries : NULL;
    if (n > 0) {
        /* One payload batch for the message: 8 bytes per entry, then the
         * configuration's encoding. */
        size_t extra = change != NULL ? change->len : 0;
        uint8_t *batch = raft_malloc(8 * n + extra);
        CHECK(batch != NULL);
        memset(batch, 0, 8 * n);
        for (unsigned i = 0; i < n; i++) {
            entries[i].term = 2;
            entries[i].type = RAFT_COMMAND;
            entries[i].buf.base = batch + 8 * i;
            entries[i].buf.len = 8;
            entries[i].batch = batch;
            if (change != NULL && from + i == change_at) {
                memcpy(batch + 8 * n, change->base, change->len);
                entries[i].type = RAFT_CHANGE;
                entries[i].buf.base = batch + 8 * n;
                entries[i].buf.len = change->len;
            }
        }
    }
    struct raft_event ev = {0};
    struct raft_update up;
    ev.type = RAFT_RECEIVE;
    ev.receive.message = &m;
    f->now += 10;
    step(f, &ev, &up);
}

TEST(commit_index_never_decreases)
{
    struct follower f;
    struct raft_buffer conf_buf;
    struct raft_entry first;
    (void)msgs_unused;
    start(&f, &conf_buf, &first);
    CHECK_EQ_INT((int)raft_commit_index(&f.r), 1);

    /* The leader of term 2 replicates 2..10 and has committed 8. */
    append(&f, 1, 1, 2, 10, 8);
    CHECK_EQ_INT((int)raft_last_index(&f.r), 10);
    CHECK_EQ_INT((int)raft_commit_index(&f.r), 8);

    /* An empty AppendEntries probing from index 5 with leader_commit 10:
     * what the follower may conclude is "5 matches"; it must not forget that
     * 8 is committed. */
    append(&f, 5, 2, 1, 0, 10);
    CHECK((int)raft_commit_index(&f.r) >= 8);

    /* More entries and a higher commit move it forward as usual. */
    append(&f, 10, 2, 11, 12, 12);
    CHECK_EQ_INT((int)raft_commit_index(&f.r), 12);

    /* A stale-looking empty AppendEntries from the start of the term. */
    append(&f, 2, 2, 1, 0, 12);
    CHECK_EQ_INT((int)raft_commit_index(&f.r), 12);

    raft_close(&f.r, NULL);
    raft_free(conf_buf.base);
}

/* A follower that receives a configuration change in the middle of a batch
 * of new entries records the change's own index as the uncommitted one.
 * Stock 0.22.1 records the batch's first index: when the change commits, the
 * apply of its real index does not match, the configuration is never marked
 * committed, and once that follower leads, every later membership change is
 * refused (RAFT_CANTCHANGE) for good. Found by test_crashpoints (the leader
 * killed right after adding a server); third_party/raft-conf-index.patch. */
TEST(uncommitted_change_index_is_its_own)
{
    struct follower f;
    struct raft_buffer conf_buf, four_buf;
    struct raft_entry first;
    struct raft_configuration four;
    start(&f, &conf_buf, &first);

    raft_configuration_init(&four);
    CHECK_EQ_INT(raft_configuration_add(&four, 1, "1", RAFT_VOTER), 0);
    CHECK_EQ_INT(raft_configuration_add(&four, 2, "2", RAFT_VOTER), 0);
    CHECK_EQ_INT(raft_configuration_add(&four, 3, "3", RAFT_VOTER), 0);
    CHECK_EQ_INT(raft_configuration_add(&four, 4, "4", RAFT_SPARE), 0);
    CHECK_EQ_INT(raft_configuration_encode(&four, &four_buf), 0);

    /* Entries 2..5 in one message; 4 adds server 4 as a spare. */
    append_change(&f, 1, 1, 2, 5, 1, 4, &four_buf);
    CHECK_EQ_INT((int)f.r.configuration.n, 4);
    CHECK_EQ_INT((int)f.r.configuration_uncommitted_index, 4);

    /* The leader commits through 5; the change at 4 is applied. */
    append(&f, 5, 2, 1, 0, 5);
    CHECK_EQ_INT((int)raft_commit_index(&f.r), 5);
    struct raft_event ev = {0};
    struct raft_update up;
    ev.type = RAFT_CONFIGURATION;
    ev.configuration.index = 4;
    CHECK_EQ_INT(raft_configuration_decode(&four_buf, &ev.configuration.conf), 0);
    step(&f, &ev, &up);
    CHECK_EQ_INT((int)f.r.configuration_committed_index, 4);
    CHECK_EQ_INT((int)f.r.configuration_uncommitted_index, 0);

    raft_configuration_close(&four);
    raft_free(four_buf.base);
    raft_close(&f.r, NULL);
    raft_free(conf_buf.base);
}

int main(void)
{
    RUN(commit_index_never_decreases);
    RUN(uncommitted_change_index_is_its_own);
    return check_summary();
}
