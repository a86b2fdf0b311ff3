/* agentproto/ — framing: [u32 big-endian payload length][payload].
 *
 * The 4 header bytes alone decide whether a frame can ever be valid, so a
 * peer announcing a gigabyte is refused before a byte of it is buffered. */
#include <string.h>

#include "agentproto/aproto_int.h"
#include "common/alloc.h"

/* A reader's buffer is freed when drained if it grew past this. */
#define READER_KEEP (64u * 1024u)
#define READER_MIN  4096u

static size_t clamp_max(size_t max_frame)
{
    if (max_frame == 0) {
        return APROTO_MAX_FRAME;
    }
    return max_frame > APROTO_FRAME_LIMIT ? APROTO_FRAME_LIMIT : max_frame;
}

/* Check a header: FL_OK with the payload length, or why it can never be valid. */
static int header(const uint8_t *p, size_t max_frame, size_t *payload_len, char *errmsg)
{
    size_t n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    if (n == 0) {
        return fl_errf(errmsg, FL_EDECODE, "frame announces an empty payload");
    }
    if (n > max_frame) {
        return fl_errf(errmsg, FL_ETOOBIG, "frame announces %zu bytes, the limit is %zu", n,
                       max_frame);
    }
    *payload_len = n;
    return FL_OK;
}

int aproto_frame_next(const uint8_t *buf, size_t len, size_t max_frame, size_t *frame_len,
                      const uint8_t **payload, size_t *payload_len)
{
    size_t n = 0;
    int rv;
    if (len < APROTO_HEADER_SIZE) {
        return APROTO_NEED_MORE;
    }
    if ((rv = header(buf, clamp_max(max_frame), &n, NULL)) != FL_OK) {
        return rv;
    }
    if (len - APROTO_HEADER_SIZE < n) {
        return APROTO_NEED_MORE;
    }
    *frame_len = APROTO_HEADER_SIZE + n;
    *payload = buf + APROTO_HEADER_SIZE;
    *payload_len = n;
    return FL_OK;
}

/* ---- the stream reader ------------------------------------------------- */

int aproto_reader_init(struct aproto_reader *r, size_t max_frame)
{
    memset(r, 0, sizeof *r);
    r->max_frame = clamp_max(max_frame);
    return FL_OK;
}

void aproto_reader_close(struct aproto_reader *r)
{
    fl_free(r->buf);
    memset(r, 0, sizeof *r);
}

size_t aproto_reader_buffered(const struct aproto_reader *r)
{
    return r->end - r->start;
}

static int fail(struct aproto_reader *r, int err)
{
    r->err = err;
    return err;
}

/* Make room for `want` more bytes at the end (want fits the limit). */
static int make_room(struct aproto_reader *r, size_t want)
{
    size_t have = r->end - r->start, cap;
    uint8_t *p;
    if (r->start > 0 && r->cap - r->end < want) {
        memmove(r->buf, r->buf + r->start, have);
        r->start = 0;
        r->end = have;
    }
    if (r->cap - r->end >= want) {
        return FL_OK;
    }
    cap = r->cap > READER_MIN ? r->cap : READER_MIN;
    while (cap < have + want) {
        cap *= 2;
    }
    if (cap > r->max_frame + APROTO_HEADER_SIZE) {
        cap = r->max_frame + APROTO_HEADER_SIZE;
    }
    p = fl_realloc(r->buf, cap);
    if (p == NULL) {
        return fl_errf(r->errmsg, FL_ENOMEM, "no memory for a %zu-byte read buffer", cap);
    }
    r->buf = p;
    r->cap = cap;
    return FL_OK;
}

static int append(struct aproto_reader *r, const uint8_t *data, size_t n)
{
    int rv = make_room(r, n);
    if (rv == FL_OK && n > 0) {
        memcpy(r->buf + r->end, data, n);
        r->end += n;
    }
    return rv;
}

int aproto_reader_feed(struct aproto_reader *r, const uint8_t *data, size_t len, size_t *used)
{
    size_t limit = r->max_frame + APROTO_HEADER_SIZE, have, take, payload = 0;
    int rv;
    *used = 0;
    if (r->err != FL_OK) {
        return r->err;
    }
    have = r->end - r->start;
    /* First complete and check the header of the frame at the front. */
    if (have < APROTO_HEADER_SIZE) {
        take = APROTO_HEADER_SIZE - have < len ? APROTO_HEADER_SIZE - have : len;
        if ((rv = append(r, data, take)) != FL_OK) {
            return rv;
        }
        *used = take;
        data += take;
        len -= take;
        have += take;
        if (have < APROTO_HEADER_SIZE) {
            return FL_OK;
        }
    }
    if ((rv = header(r->buf + r->start, r->max_frame, &payload, r->errmsg)) != FL_OK) {
        return fail(r, rv);
    }
    take = limit - have < len ? limit - have : len;
    if ((rv = append(r, data, take)) != FL_OK) {
        return rv;
    }
    *used += take;
    return FL_OK;
}

int aproto_reader_next(struct aproto_reader *r, struct aproto_msg *out)
{
    const uint8_t *payload = NULL;
    size_t frame_len = 0, payload_len = 0;
    int rv;
    memset(out, 0, sizeof *out);
    if (r->err != FL_OK) {
        return r->err;
    }
    if (r->end - r->start < APROTO_HEADER_SIZE) {
        return APROTO_NEED_MORE;
    }
    rv = header(r->buf + r->start, r->max_frame, &payload_len, r->errmsg);
    if (rv != FL_OK) {
        return fail(r, rv);
    }
    rv = aproto_frame_next(r->buf + r->start, r->end - r->start, r->max_frame, &frame_len, &payload,
                           &payload_len);
    if (rv != FL_OK) {
        return rv; /* APROTO_NEED_MORE: the header was checked above */
    }
    rv = aproto_decode_ex(payload, payload_len, out, r->errmsg);
    if (rv == FL_ENOMEM) {
        return rv; /* the frame stays: the caller may retry */
    }
    r->start += frame_len;
    if (r->start == r->end) {
        r->start = r->end = 0;
        if (r->cap > READER_KEEP) {
            fl_free(r->buf);
            r->buf = NULL;
            r->cap = 0;
        }
    }
    return rv;
}
