/* Project-wide error codes.
 *
 * Every Flotilla function that can fail returns one of these ints (0 is
 * success). Codes from LMDB, libuv, errno and the Raft library are converted
 * where they are called, with the original kept in the caller's errmsg buffer.
 * The X-macro gives each code its symbol, a short name (used in JSON errors)
 * and a human message. */
#ifndef FL_COMMON_ERR_H
#define FL_COMMON_ERR_H

#define FL_ERRMSG_SIZE 256

#define FL_ERRORS(X)                                                                               \
    X(FL_OK, "ok", "success")                                                                      \
    X(FL_ENOMEM, "no_memory", "out of memory")                                                     \
    X(FL_EINVAL, "invalid", "invalid argument")                                                    \
    X(FL_ENOTFOUND, "not_found", "not found")                                                      \
    X(FL_ECONFLICT, "conflict", "version conflict")                                                \
    X(FL_EEXIST, "exists", "already exists")                                                       \
    X(FL_EMAPFULL, "store_full", "store map is full (raise --store-size)")                         \
    X(FL_EDISKFULL, "disk_full", "no space left on device")                                        \
    X(FL_EIO, "io", "input/output error")                                                          \
    X(FL_ETOOBIG, "too_big", "value too large")                                                    \
    X(FL_EDECODE, "decode", "malformed encoding")                                                  \
    X(FL_EVERSION, "version", "unsupported format version")                                        \
    X(FL_ENOTLEADER, "not_leader", "this server is not the leader")                                \
    X(FL_ENOLEADER, "no_leader", "the cluster has no leader")                                      \
    X(FL_ENOCLUSTER, "no_cluster", "this server is not part of a cluster")                         \
    X(FL_EUNKNOWN, "outcome_unknown", "leadership was lost; the outcome is unknown")               \
    X(FL_ETIMEOUT, "timeout", "timed out")                                                         \
    X(FL_ESHUTDOWN, "shutdown", "server is shutting down")                                         \
    X(FL_EBUSY, "busy", "busy; retry later")                                                       \
    X(FL_ECORRUPT, "corrupt", "stored data is corrupt")                                            \
    X(FL_ERAFT, "raft", "consensus library error")                                                 \
    X(FL_ENET, "network", "network error")                                                         \
    X(FL_EPROTO, "protocol", "protocol error")                                                     \
    X(FL_ESTALE, "stale_request",                                                                  \
      "a newer request of the session was applied first; this one never will be")                  \
    X(FL_ENOSESSION, "session_not_found",                                                          \
      "the request's session does not exist (it expired or was destroyed)")

enum fl_err {
#define FL__ERR_ENUM(sym, name, msg) sym,
    FL_ERRORS(FL__ERR_ENUM)
#undef FL__ERR_ENUM
        FL_ERR_COUNT
};

/* Short stable name of an error code ("not_found"); "unknown" if out of range. */
const char *fl_errname(int err);

/* Human-readable message of an error code. */
const char *fl_strerror(int err);

/* snprintf into an FL_ERRMSG_SIZE buffer; returns err so callers can
 * `return fl_errf(msg, FL_EIO, "...")`. msg may be NULL. */
int fl_errf(char *msg, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
