/* The agent's result spool (agent/agent_int.h).
 *
 * Every DONE frame is appended to DIR/spool/results.log before it is sent and
 * kept in memory until the leader acknowledges its commit. When nothing is
 * waiting for an acknowledgement the log is truncated. At start the log is
 * read back: every frame in it is sent again after WELCOME (a result that was
 * in fact committed comes back as stale and changes nothing). One file,
 * appended and truncated, instead of a file per unit: creating and deleting
 * tens of thousands of files a second is what a busy agent would otherwise
 * spend its time on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/strmap.h"

struct spooled {
    uint8_t *frame;
    size_t len;
};

static void spool_key(const struct aproto_unit_ref *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%u/%u/%llu", r->task_id, r->unit, r->attempt,
             (unsigned long long)r->token);
}

int agent__spool_open(struct agent *a)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/results.log", a->spool_dir);
    a->spool_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    return a->spool_fd >= 0 ? FL_OK : FL_EIO;
}

void agent__spool_write(struct agent *a, const struct aproto_unit_ref *r, const uint8_t *p,
                        size_t n)
{
    char key[96];
    struct spooled *sp = fl_malloc(sizeof *sp);
    void *old = NULL;
    if (sp == NULL || (sp->frame = fl_malloc(n)) == NULL) {
        fl_free(sp);
        FL_ERROR("agent: out of memory spooling a result");
        return;
    }
    memcpy(sp->frame, p, n);
    sp->len = n;
    /* The frame carries its own length header: the log is a frame stream. */
    if (a->spool_fd < 0 || write(a->spool_fd, p, n) != (ssize_t)n) {
        FL_ERROR("agent: spooling the result of %s/%u: %s", r->task_id, r->unit, strerror(errno));
    }
    spool_key(r, key, sizeof key);
    strmap_put(&a->spool, key, sp, &old);
    if (old != NULL) {
        fl_free(((struct spooled *)old)->frame);
        fl_free(old);
    }
}

void agent__spool_drop(struct agent *a, const struct aproto_unit_ref *r)
{
    char key[96];
    struct spooled *sp;
    spool_key(r, key, sizeof key);
    sp = strmap_del(&a->spool, key);
    if (sp != NULL) {
        fl_free(sp->frame);
        fl_free(sp);
    }
    if (strmap_size(&a->spool) == 0 && a->spool_fd >= 0 && ftruncate(a->spool_fd, 0) != 0) {
        FL_WARN("agent: truncating the spool: %s", strerror(errno));
    }
}

/* Read back what a previous run left in the log. */
void agent__spool_load(struct agent *a)
{
    struct aproto_reader rd;
    uint8_t buf[65536];
    ssize_t n;
    unsigned count = 0;
    if (lseek(a->spool_fd, 0, SEEK_SET) < 0) {
        return;
    }
    aproto_reader_init(&rd, APROTO_FRAME_LIMIT);
    while ((n = read(a->spool_fd, buf, sizeof buf)) > 0) {
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used = 0;
            int rv = aproto_reader_feed(&rd, buf + off, (size_t)n - off, &used);
            off += used;
            if (rv != FL_OK && rv != APROTO_NEED_MORE) {
                goto done; /* a torn last frame: stop there */
            }
            for (;;) {
                struct aproto_msg m;
                struct fl_buf b;
                rv = aproto_reader_next(&rd, &m);
                if (rv == APROTO_NEED_MORE) {
                    break;
                }
                if (rv != FL_OK) {
                    continue;
                }
                if (m.type == APROTO_DONE) {
                    fl_buf_init(&b);
                    if (aproto_encode(&m, &b) == FL_OK) {
                        int fd = a->spool_fd;
                        a->spool_fd = -1; /* already in the log: memory only */
                        agent__spool_write(a, &m.u.done.ref, b.data, b.len);
                        a->spool_fd = fd;
                        count++;
                    }
                    fl_buf_close(&b);
                }
                aproto_msg_close(&m);
            }
        }
    }
done:
    aproto_reader_close(&rd);
    if (count > 0) {
        FL_INFO("agent: %u results from before the restart await acknowledgement", count);
    }
}

/* Send every result still waiting for an acknowledgement (after WELCOME). */
void agent__spool_resend(struct agent *a)
{
    size_t i = 0;
    const char *k;
    void *v;
    unsigned n = 0;
    while (strmap_next(&a->spool, &i, &k, &v)) {
        struct spooled *sp = v;
        agent__send_bytes(a, sp->frame, sp->len);
        n++;
    }
    if (n > 0) {
        FL_INFO("agent: sent %u spooled results again", n);
    }
}

void agent__spool_close(struct agent *a)
{
    size_t i = 0;
    const char *k;
    void *v;
    while (strmap_next(&a->spool, &i, &k, &v)) {
        fl_free(((struct spooled *)v)->frame);
        fl_free(v);
    }
    strmap_close(&a->spool);
    if (a->spool_fd >= 0) {
        close(a->spool_fd);
    }
}
