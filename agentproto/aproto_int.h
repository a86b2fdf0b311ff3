/* agentproto/ — private to the module (and its unit test).
 *
 * One schema table per message type drives the validator, the encoder and
 * the decoder (the dqlite way, src/lib/serialize.h): a field is described
 * once, with its wire type, where it lives in the message struct and its
 * bounds, so the three cannot disagree about what is sendable. */
#ifndef FL_AGENTPROTO_APROTO_INT_H
#define FL_AGENTPROTO_APROTO_INT_H

#include <stddef.h>
#include <stdint.h>

#include "agentproto/aproto.h"
#include "common/mpread.h"

/* ---- schema ----------------------------------------------------------- */

enum aproto__ft {
    APROTO__U8,      /* uint8_t in [min, max] */
    APROTO__U32,     /* uint32_t */
    APROTO__U64,     /* uint64_t */
    APROTO__I32,     /* int32_t */
    APROTO__BOOL,    /* bool */
    APROTO__STR,     /* const char *, length in [min, max], then `valid` */
    APROTO__BIN,     /* const uint8_t * at off, uint32_t length at off_n, length <= max */
    APROTO__STRS,    /* const char *const * at off, uint32_t count at off_n <= max; each
                      * element's length in [min, elem_max], then `valid` */
    APROTO__REF,     /* struct aproto_unit_ref */
    APROTO__REFS,    /* const struct aproto_unit_ref * at off, count at off_n <= max */
    APROTO__RESULTS, /* const struct aproto_host_result * at off, count at off_n <= max */
};

/* A string check beyond its length bounds: 1 if s[0..n) is acceptable. s has
 * no NUL byte in [0, n) and need not be NUL-terminated. */
typedef int (*aproto__valid_fn)(const char *s, size_t n);

struct aproto__field {
    const char *name;
    uint8_t ft;
    uint16_t off;      /* offsetof the field in the union member */
    uint16_t off_n;    /* offsetof its count/length (BIN, STRS, REFS, RESULTS) */
    uint32_t min;      /* U8: least value; STR, STRS elements: least length */
    uint32_t max;      /* U8: greatest value; STR, BIN: length; arrays: count; 0 = frame-bounded */
    uint32_t elem_max; /* STRS: greatest element length; 0 = frame-bounded */
    aproto__valid_fn valid; /* STR, STRS elements; NULL = any (no NUL) */
};

struct aproto__schema {
    const char *name;
    const struct aproto__field *fields;
    unsigned n_fields;
    /* Rules across fields (RUN kinds, WELCOME); NULL if none. Returns FL_OK or
     * FL_EINVAL with errmsg. Runs on a complete message whose fields passed
     * their own checks; `sending` is 1 for the encoder's stricter rules. */
    int (*check)(const struct aproto_msg *m, int sending, char *errmsg);
};

/* The storage of a decoded message: one allocation, sized exactly by a
 * measuring pass of the decoder. */
struct aproto__arena {
    size_t size;     /* bytes of data */
    size_t reserved; /* keeps data 16-byte aligned */
    uint8_t data[];
};

/* The schema of a type, NULL if unknown. */
const struct aproto__schema *aproto__schema(int type);

/* Checks shared by the validator (encoder side) and the decoder. Each returns
 * FL_OK or FL_EINVAL (FL_ETOOBIG for a frame-bounded string longer than
 * APROTO_FRAME_LIMIT) with errmsg naming the field; idx >= 0 is the element
 * index inside an array field. */
/* A string field or array element; max 0 = bounded by the frame alone. */
int aproto__check_str(const struct aproto__schema *sc, const struct aproto__field *f, const char *s,
                      size_t n, uint32_t min, uint32_t max, long idx, char *errmsg);
int aproto__check_ref(const struct aproto__schema *sc, const char *task_id, size_t n, char *errmsg);
int aproto__check_result(const struct aproto__schema *sc, const struct aproto__field *f,
                         const struct aproto_host_result *hr, long idx, char *errmsg);
/* An array field's count. */
int aproto__check_count(const struct aproto__schema *sc, const struct aproto__field *f, uint64_t n,
                        char *errmsg);
/* A U8 field's value. */
int aproto__check_u8(const struct aproto__schema *sc, const struct aproto__field *f, uint64_t v,
                     char *errmsg);

/* ---- validators with explicit length ----------------------------------- */

int aproto__valid_agent_id(const char *s, size_t n);
int aproto__valid_task_id(const char *s, size_t n);
int aproto__valid_host(const char *s, size_t n);
int aproto__valid_label(const char *s, size_t n);
int aproto__valid_env(const char *s, size_t n);
int aproto__valid_var(const char *s, size_t n);
int aproto__valid_addr(const char *s, size_t n);
int aproto__valid_module(const char *s, size_t n);
int aproto__valid_error_code(const char *s, size_t n);
int aproto__valid_printable(const char *s, size_t n); /* no control characters */

/* ---- test hook ----------------------------------------------------------- */

/* aproto_encode_ex without validation: writes whatever m holds (the unit
 * test uses it to produce out-of-bounds frames for the decoder). Only the
 * type must be known. */
int aproto__encode_unchecked(const struct aproto_msg *m, struct fl_buf *out);

#endif
