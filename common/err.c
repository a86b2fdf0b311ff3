#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

static const char *names[] = {
#define FL__ERR_NAME(sym, name, msg) name,
    FL_ERRORS(FL__ERR_NAME)
#undef FL__ERR_NAME
};

static const char *messages[] = {
#define FL__ERR_MSG(sym, name, msg) msg,
    FL_ERRORS(FL__ERR_MSG)
#undef FL__ERR_MSG
};

const char *fl_errname(int err)
{
    if (err < 0 || err >= FL_ERR_COUNT) {
        return "unknown";
    }
    return names[err];
}

const char *fl_strerror(int err)
{
    if (err < 0 || err >= FL_ERR_COUNT) {
        return "unknown error";
    }
    return messages[err];
}

int fl_errf(char *msg, int err, const char *fmt, ...)
{
    va_list ap;
    if (msg != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, FL_ERRMSG_SIZE, fmt, ap);
        va_end(ap);
    }
    return err;
}
