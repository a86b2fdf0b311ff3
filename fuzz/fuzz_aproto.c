/* libFuzzer harness: the agent protocol (agentproto/). The input is used
 * three ways: as one payload (aproto_decode), as one frame (aproto_frame_next
 * then the decoder), and as a byte stream fed to an aproto_reader in chunks
 * of varying size (the seeds in corpus/aproto are streams of frames). Beyond
 * "no crash, no out-of-bounds read", every message that decodes must be
 * within bounds: it validates, its footprint respects the documented bound,
 * and encoding it and decoding that again is a fixed point. */
#include <stdlib.h>
#include <string.h>

#include "agentproto/aproto.h"
#include "common/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct aproto_msg *m, size_t payload_len)
{
    struct fl_buf a, b;
    struct aproto_msg again;
    if (aproto_msg_footprint(m) > 16 * payload_len + 64) {
        abort();
    }
    if (m->type == APROTO_RUN && m->u.run.kind >= APROTO__EXEC_MAX) {
        return; /* received for forward compatibility, never sent */
    }
    if (aproto_msg_validate(m, NULL) != FL_OK) {
        abort();
    }
    fl_buf_init(&a);
    fl_buf_init(&b);
    if (aproto_encode_ex(m, APROTO_FRAME_LIMIT, &a, NULL) != FL_OK ||
        aproto_decode(a.data + 4, a.len - 4, &again) != FL_OK ||
        aproto_encode_ex(&again, APROTO_FRAME_LIMIT, &b, NULL) != FL_OK || a.len != b.len ||
        memcmp(a.data, b.data, a.len) != 0) {
        abort();
    }
    aproto_msg_close(&again);
    fl_buf_close(&a);
    fl_buf_close(&b);
}

static void as_payload(const uint8_t *data, size_t size)
{
    struct aproto_msg m;
    int rv = aproto_decode(data, size, &m);
    if (rv == FL_OK) {
        check(&m, size);
    } else if (m.type != 0 || m.arena != NULL) {
        abort(); /* a failed decode leaves nothing behind */
    }
    aproto_msg_close(&m);
}

static void as_frame(const uint8_t *data, size_t size)
{
    const uint8_t *payload;
    size_t frame_len, payload_len;
    if (aproto_frame_next(data, size, 0, &frame_len, &payload, &payload_len) == FL_OK) {
        if (frame_len > size || payload_len + 4 != frame_len) {
            abort();
        }
        as_payload(payload, payload_len);
    }
}

/* Feed in chunks of 1..256 bytes chosen by a small generator seeded from the
 * input, with a frame limit that is sometimes tiny. */
static void as_stream(const uint8_t *data, size_t size)
{
    struct aproto_reader r;
    uint32_t x = 2166136261u;
    size_t off = 0, max_frame;
    for (size_t i = 0; i < size && i < 16; i++) {
        x = (x ^ data[i]) * 16777619u;
    }
    max_frame = (x & 3) == 0 ? 16 + (x >> 24) : 0;
    aproto_reader_init(&r, max_frame);
    while (off < size) {
        size_t chunk = 1 + ((x = x * 1103515245u + 12345u) >> 16) % 256, used;
        struct aproto_msg m;
        int rv;
        if (chunk > size - off) {
            chunk = size - off;
        }
        rv = aproto_reader_feed(&r, data + off, chunk, &used);
        if (rv != FL_OK) {
            break;
        }
        off += used;
        if (aproto_reader_buffered(&r) > r.max_frame + 4) {
            abort();
        }
        while ((rv = aproto_reader_next(&r, &m)) != APROTO_NEED_MORE) {
            if (rv == FL_OK) {
                check(&m, r.max_frame);
            }
            aproto_msg_close(&m);
            if (rv == FL_ETOOBIG || (rv == FL_EDECODE && r.err != FL_OK)) {
                goto done;
            }
        }
    }
done:
    aproto_reader_close(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_payload(data, size);
    as_frame(data, size);
    as_stream(data, size);
    return 0;
}
