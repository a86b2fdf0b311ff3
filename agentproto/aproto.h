/* agentproto/ — the agent protocol: frames and messages, bytes in and bytes out.
 *
 * DESIGN.md, "Agent protocol": "Length-prefixed msgpack frames over TCP, every
 * frame bounded in size, every decoder total (never crashes, never reads past
 * the buffer), fuzzed." This module is pure: no sockets, no loop, no store. The
 * agent and the server own the connections and hand bytes to it.
 *
 * Wire format
 *
 *   frame   = u32 big-endian payload length, then the payload (1..max_frame bytes)
 *   payload = one msgpack array [APROTO_VERSION, type, field...]
 *
 * Fields are positional; the tables in schema.c (one schema for both
 * directions, see aproto_int.h) list them per type. A receiver ignores extra
 * trailing elements of any array it knows (so a newer peer may append fields)
 * but refuses missing ones. A payload whose version is not APROTO_VERSION, or
 * whose type it does not know, is FL_EVERSION; the frame boundaries are still
 * sound, so a caller may answer with an ERROR message instead of hanging up.
 *
 * Bounds are part of the protocol: the encoder refuses (FL_EINVAL) every
 * message the decoder would refuse, so a well-behaved peer never sends a frame
 * that makes the other side drop the connection. Every *_MAX below is the
 * largest value allowed (inclusive).
 *
 * Strings are NUL-terminated C strings on both sides; a string on the wire
 * that contains a NUL byte is refused (it could not be one). Binary fields
 * (auth, log data, tails) are pointer + length. */
#ifndef FL_AGENTPROTO_APROTO_H
#define FL_AGENTPROTO_APROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define APROTO_VERSION 1

/* Frames: the default receive limit, and the largest limit a caller may
 * configure (larger values are clamped to it). The limit counts payload
 * bytes, not the 4-byte header. */
#define APROTO_MAX_FRAME   (1024u * 1024u)
#define APROTO_FRAME_LIMIT (64u * 1024u * 1024u)
#define APROTO_HEADER_SIZE 4

/* Returned by aproto_frame_next and aproto_reader_next when the bytes seen so
 * far do not hold a complete frame. Positive and distinct from every FL_ code. */
#define APROTO_NEED_MORE 0x100

/* Field bounds (inclusive maxima). */
#define APROTO_AGENT_ID_MAX   63    /* node name: 1..63 bytes, see aproto_valid_agent_id */
#define APROTO_TASK_ID_MAX    39    /* 1..39 bytes, see aproto_valid_task_id */
#define APROTO_AGENT_VER_MAX  63    /* agent version string, may be empty */
#define APROTO_LABELS_MAX     32    /* labels per HELLO */
#define APROTO_LABEL_MAX      127   /* "k=v", see aproto_valid_label */
#define APROTO_RUNNING_MAX    4096  /* unit refs per HELLO */
#define APROTO_AUTH_MAX       512   /* HELLO auth blob */
#define APROTO_ADDR_MAX       255   /* "host:port", see aproto_valid_addr */
#define APROTO_MESSAGE_MAX    256   /* WELCOME and ERROR message text */
#define APROTO_ERROR_CODE_MAX 63    /* ERROR code: [a-z0-9_], 1..63 bytes */
#define APROTO_HOSTS_MAX      10000 /* hosts per RUN, host results per DONE */
#define APROTO_HOST_MAX       255   /* host name, see aproto_valid_host */
#define APROTO_ARGV_MAX       256   /* RUN argv entries */
#define APROTO_MODULE_MAX     127   /* Ansible module name, see aproto_valid_module */
#define APROTO_ENV_MAX        128   /* RUN env entries, "NAME=value" */
#define APROTO_VARS_MAX       32    /* RUN inventory vars, "k=v" */
#define APROTO_VAR_MAX        4095  /* one inventory var */
#define APROTO_LOG_DATA_MAX   65536 /* LOG data */
#define APROTO_TAIL_MAX       4096  /* DONE host result tail */

/* Message types (the second element of every payload). */
enum aproto_type {
    APROTO_HELLO = 1,     /* agent -> server */
    APROTO_WELCOME = 2,   /* server -> agent */
    APROTO_HEARTBEAT = 3, /* either way */
    APROTO_RUN = 4,       /* server -> agent */
    APROTO_STARTED = 5,   /* agent -> server */
    APROTO_LOG = 6,       /* agent -> server */
    APROTO_DONE = 7,      /* agent -> server */
    APROTO_CANCEL = 8,    /* server -> agent */
    APROTO_ACK = 9,       /* server -> agent */
    APROTO_ERROR = 10,    /* either way */
    APROTO__TYPE_MAX
};

/* RUN executor kinds. The decoder accepts any kind 1..255 so that an agent
 * older than its server can still answer a unit it cannot run with DONE
 * status APROTO_ST_ERROR instead of dropping the connection; the fields a
 * known kind needs are checked (exec and deploy: argv[0] non-empty; shell:
 * script non-empty; module: a valid module name; playbook: non-empty text).
 * The encoder only sends known kinds. */
enum aproto_exec {
    APROTO_EXEC_EXEC = 1,
    APROTO_EXEC_SHELL = 2,
    APROTO_EXEC_MODULE = 3,   /* one Ansible module with module_args */
    APROTO_EXEC_PLAYBOOK = 4, /* playbook holds the YAML text */
    APROTO_EXEC_NOOP = 5,
    APROTO_EXEC_SLEEP = 6,
    /* `flotilla deploy-target` on the agent: argv holds its arguments,
     * "NAME@VERSION" first, without the ones the agent adds (--from, --key,
     * --name, --events); env holds FLOTILLA_BLOB_SOURCES (docs/DEPLOY.md,
     * "The deploy executor"). */
    APROTO_EXEC_DEPLOY = 7,
    APROTO__EXEC_MAX
};

/* DONE unit status and host result status. */
enum aproto_status {
    APROTO_ST_OK = 1,
    APROTO_ST_FAILED = 2,
    APROTO_ST_TIMEOUT = 3,
    APROTO_ST_CANCELLED = 4,
    APROTO_ST_ERROR = 5,
    APROTO_ST_UNREACHABLE = 6,
    APROTO__ST_MAX
};

enum aproto_stream { APROTO_STDOUT = 1, APROTO_STDERR = 2 };

/* ACK what. */
enum aproto_ack_what {
    APROTO_ACK_DONE = 1 /* the DONE is committed: the agent may drop its spooled result */
};

/* A unit reference: a value, copied freely. The fencing token lets the server
 * ignore reports from an attempt it has since taken back. Wire: [task_id,
 * unit, attempt, token]. */
struct aproto_unit_ref {
    char task_id[APROTO_TASK_ID_MAX + 1];
    uint32_t unit;
    uint32_t attempt;
    uint64_t token;
};

/* One host's outcome in a DONE. Wire: [host, status, rc, tail]. */
struct aproto_host_result {
    const char *host; /* aproto_valid_host */
    uint8_t status;   /* enum aproto_status */
    int32_t rc;
    const uint8_t *tail; /* last bytes of the host's output */
    uint32_t tail_len;   /* 0..APROTO_TAIL_MAX */
};

/* In the message structs below, a NULL string encodes as "" and a NULL array
 * with a zero count as an empty array; decoded strings and arrays are never
 * NULL. Counts are the lengths of the arrays next to them. */

struct aproto_hello {
    const char *agent_id; /* aproto_valid_agent_id */
    const char *version;  /* 0..APROTO_AGENT_VER_MAX bytes, printable */
    uint32_t cap;         /* how many units it runs at once */
    uint32_t n_labels;    /* 0..APROTO_LABELS_MAX */
    const char *const *labels;
    uint32_t n_running; /* 0..APROTO_RUNNING_MAX: units it still runs (re-attach) */
    const struct aproto_unit_ref *running;
    const uint8_t *auth; /* 0..APROTO_AUTH_MAX bytes: the agent identity proof (common/ident.h) */
    uint32_t auth_len;
    uint32_t flags; /* reserved, 0 */
};

struct aproto_welcome {
    bool accepted;
    /* Empty if accepted. When refused because this server is not the leader,
     * the leader's agent address (aproto_valid_addr) to reconnect to; empty
     * when there is no leader or the refusal has another reason. */
    const char *leader;
    uint32_t heartbeat_ms;  /* > 0 if accepted */
    uint32_t lost_after_ms; /* silence after which the server declares the agent lost */
    const char *message;    /* 0..APROTO_MESSAGE_MAX bytes */
};

struct aproto_heartbeat {
    uint64_t seq;
    uint32_t running; /* units the agent runs now */
};

struct aproto_run {
    struct aproto_unit_ref ref;
    uint32_t n_hosts; /* 0..APROTO_HOSTS_MAX, each aproto_valid_host */
    const char *const *hosts;
    uint8_t kind;  /* enum aproto_exec */
    uint32_t argc; /* exec, deploy: 1..APROTO_ARGV_MAX, argv[0] non-empty */
    const char *const *argv;
    const char *script;      /* shell */
    const char *module;      /* module: aproto_valid_module */
    const char *module_args; /* module, may be empty */
    const char *playbook;    /* playbook: the YAML text */
    uint32_t sleep_ms;       /* sleep */
    uint32_t timeout_ms;     /* 0 = none */
    uint32_t kill_grace_ms;  /* SIGTERM to SIGKILL */
    uint32_t n_env;          /* 0..APROTO_ENV_MAX, each aproto_valid_env */
    const char *const *env;
    uint32_t n_vars; /* 0..APROTO_VARS_MAX, each aproto_valid_var: [all:vars] lines */
    const char *const *inventory_vars;
};

struct aproto_started {
    struct aproto_unit_ref ref;
    int32_t pid; /* 0 when there is no process (noop, sleep) */
};

struct aproto_log {
    struct aproto_unit_ref ref;
    const char *host; /* empty = the whole unit, else aproto_valid_host */
    uint8_t stream;   /* enum aproto_stream */
    uint64_t offset;  /* of data[0] in the stream */
    const uint8_t *data;
    uint32_t data_len; /* 0..APROTO_LOG_DATA_MAX */
};

struct aproto_done {
    struct aproto_unit_ref ref;
    uint8_t status; /* enum aproto_status */
    int32_t exit_code;
    uint64_t started_ms, finished_ms;
    uint32_t n_results; /* 0..APROTO_HOSTS_MAX */
    const struct aproto_host_result *results;
};

struct aproto_cancel {
    struct aproto_unit_ref ref;
};

struct aproto_ack {
    struct aproto_unit_ref ref;
    uint8_t what; /* enum aproto_ack_what */
};

struct aproto_error {
    const char *code;    /* "duplicate_agent", "bad_frame": [a-z0-9_], 1..63 bytes */
    const char *message; /* 0..APROTO_MESSAGE_MAX bytes */
};

struct aproto__arena;

/* One message. To send: aproto_msg_init, fill u.<type> with pointers the
 * caller owns (they must stay valid until aproto_encode returns), encode.
 * Decoded: every pointer points into the message's own arena, valid until
 * aproto_msg_close; nothing points into the input bytes. A decoded message
 * may be moved (copy the struct, then forget the source) but closed once. */
struct aproto_msg {
    int type; /* enum aproto_type */
    union {
        struct aproto_hello hello;
        struct aproto_welcome welcome;
        struct aproto_heartbeat heartbeat;
        struct aproto_run run;
        struct aproto_started started;
        struct aproto_log log;
        struct aproto_done done;
        struct aproto_cancel cancel;
        struct aproto_ack ack;
        struct aproto_error error;
    } u;
    struct aproto__arena *arena; /* private: storage of a decoded message */
};

/* Zero the message and set its type. */
void aproto_msg_init(struct aproto_msg *m, int type);

/* Free a decoded message's storage and zero it. Safe on a message from
 * aproto_msg_init, on a failed decode, and twice. */
void aproto_msg_close(struct aproto_msg *m);

/* Bytes the decoded message holds beyond the struct (0 if not decoded). It is
 * at most a small multiple of the payload size: see aproto_decode. */
size_t aproto_msg_footprint(const struct aproto_msg *m);

/* "hello", "run", ...; "unknown" for anything else. */
const char *aproto_type_name(int type);

/* Fill a unit ref. FL_EINVAL if task_id is not aproto_valid_task_id (the ref
 * is then left with an empty task id). */
int aproto_unit_ref_set(struct aproto_unit_ref *ref, const char *task_id, uint32_t unit,
                        uint32_t attempt, uint64_t token);

/* Check every field of m against the bounds above. FL_OK, FL_EINVAL (a field
 * is out of bounds or malformed; errmsg names it) or FL_EVERSION (unknown
 * type). errmsg is an FL_ERRMSG_SIZE buffer or NULL. */
int aproto_msg_validate(const struct aproto_msg *m, char *errmsg);

/* Encode m as one complete frame appended to out.
 *
 * Returns FL_OK; FL_EINVAL or FL_EVERSION as aproto_msg_validate; FL_ETOOBIG
 * if the payload would exceed max_frame (0 = APROTO_MAX_FRAME; clamped to
 * APROTO_FRAME_LIMIT): a RUN with many long hosts or a long playbook can, and
 * the caller must not send it to a receiver with a smaller limit; FL_ENOMEM.
 * On error out is unchanged (nothing partial is appended). */
int aproto_encode_ex(const struct aproto_msg *m, size_t max_frame, struct fl_buf *out,
                     char *errmsg);

/* aproto_encode_ex with max_frame APROTO_MAX_FRAME and no errmsg. */
int aproto_encode(const struct aproto_msg *m, struct fl_buf *out);

/* Find one complete frame at the start of buf[0..len).
 *
 * FL_OK: *frame_len is its size with the header, *payload and *payload_len its
 * payload (pointing into buf). APROTO_NEED_MORE: the frame is not complete
 * yet (fewer than 4 bytes, or fewer than the announced length); the outputs
 * are untouched. FL_ETOOBIG: the header announces more than max_frame (0 =
 * APROTO_MAX_FRAME; clamped to APROTO_FRAME_LIMIT) payload bytes. FL_EDECODE:
 * the header announces 0. Both errors are decided from the 4 header bytes
 * alone, before any payload is waited for; the stream cannot be resynced
 * and the caller closes the connection. */
int aproto_frame_next(const uint8_t *buf, size_t len, size_t max_frame, size_t *frame_len,
                      const uint8_t **payload, size_t *payload_len);

/* Decode one payload into out (which need not be initialised; on error it is
 * left as after aproto_msg_close).
 *
 * Total: any byte string either decodes into a message whose every field is
 * within the bounds above, or is refused; the decoder never reads outside
 * payload[0..len) and checks the whole payload before it allocates anything,
 * then allocates exactly what the message needs, at most 16 * len + 64 bytes
 * (pointers for arrays of short strings dominate).
 *
 * Returns FL_OK; FL_EVERSION (the version is not APROTO_VERSION, or the type
 * is unknown: out->type is then still 0); FL_ETOOBIG (len >
 * APROTO_FRAME_LIMIT); FL_EDECODE (anything else malformed: missing fields,
 * wrong msgpack types, out-of-bounds values, trailing bytes after the array);
 * FL_ENOMEM. errmsg (FL_ERRMSG_SIZE or NULL) gets the detail. */
int aproto_decode_ex(const uint8_t *payload, size_t len, struct aproto_msg *out, char *errmsg);

/* aproto_decode_ex without errmsg. */
int aproto_decode(const uint8_t *payload, size_t len, struct aproto_msg *out);

/* A stream reader: feed it bytes as they arrive, pull complete messages.
 * The caller owns the struct (init/close); fields are private. It buffers at
 * most max_frame + 4 bytes: a full buffer always holds a complete frame (or a
 * framing error), so draining with aproto_reader_next always makes room. A
 * buffer that grew past 64 KiB for a large frame is freed once drained, so an
 * idle connection costs no more than that. */
struct aproto_reader {
    uint8_t *buf;
    size_t start, end, cap; /* buffered bytes are buf[start..end) */
    size_t max_frame;
    int err; /* sticky framing error */
    char errmsg[FL_ERRMSG_SIZE];
};

/* max_frame 0 = APROTO_MAX_FRAME; clamped to APROTO_FRAME_LIMIT. Allocates
 * nothing; returns FL_OK. */
int aproto_reader_init(struct aproto_reader *r, size_t max_frame);

/* Buffer up to len bytes of data; *used says how many were taken. When
 * *used < len the buffer is full: call aproto_reader_next until it returns
 * APROTO_NEED_MORE, then feed the rest. As soon as the 4 header bytes of the
 * first buffered frame are in, they are checked, and a frame that announces
 * too much (FL_ETOOBIG) or nothing (FL_EDECODE) is refused before any of its
 * payload is buffered. Framing errors are sticky: every later feed and next
 * returns the same error (close the connection); r->errmsg has the detail.
 * FL_ENOMEM if the buffer cannot grow (not sticky; *used says what was taken). */
int aproto_reader_feed(struct aproto_reader *r, const uint8_t *data, size_t len, size_t *used);

/* Pull the next complete message into out (as aproto_decode: out need not be
 * initialised, the caller closes it after FL_OK).
 *
 * Returns FL_OK; APROTO_NEED_MORE; a sticky framing error (FL_ETOOBIG,
 * FL_EDECODE) as aproto_reader_feed; a decode error of one well-framed
 * payload (FL_EDECODE, FL_EVERSION): that frame is consumed and the stream
 * stays in sync, so the caller may answer with an ERROR message and go on, or
 * hang up; or FL_ENOMEM: the frame stays buffered and the same call may be
 * retried. r->errmsg has the detail of any error. */
int aproto_reader_next(struct aproto_reader *r, struct aproto_msg *out);

/* Bytes buffered and not yet returned as messages. */
size_t aproto_reader_buffered(const struct aproto_reader *r);

void aproto_reader_close(struct aproto_reader *r);

/* Validators (C strings; NULL is invalid). Each returns 1 if s is valid. */

/* 1..APROTO_AGENT_ID_MAX bytes, no '/', no spaces or control characters. */
int aproto_valid_agent_id(const char *s);
/* 1..APROTO_TASK_ID_MAX bytes, no '/', no spaces or control characters. */
int aproto_valid_task_id(const char *s);
/* 1..APROTO_HOST_MAX printable bytes without spaces or commas (the rule the
 * store applies to the hosts of a task, so every stored host can be sent). */
int aproto_valid_host(const char *s);
/* "k=v": 1..APROTO_LABEL_MAX bytes, a non-empty key before the first '=', no
 * control characters. */
int aproto_valid_label(const char *s);
/* "NAME=value": NAME is [A-Za-z_][A-Za-z0-9_]*; the value is anything. */
int aproto_valid_env(const char *s);
/* "k=v" for the inventory's [all:vars]: k is [A-Za-z_][A-Za-z0-9_]*, at most
 * APROTO_VAR_MAX bytes in all, no control characters (a newline would inject
 * inventory lines). */
int aproto_valid_var(const char *s);
/* "host:port": at most APROTO_ADDR_MAX bytes, a non-empty host without spaces
 * or control characters, a decimal port 1..65535 after the last ':'. */
int aproto_valid_addr(const char *s);
/* An Ansible module name: 1..APROTO_MODULE_MAX bytes of [A-Za-z0-9_.]. */
int aproto_valid_module(const char *s);
/* An ERROR code: 1..APROTO_ERROR_CODE_MAX bytes of [a-z0-9_]. */
int aproto_valid_error_code(const char *s);

#endif
