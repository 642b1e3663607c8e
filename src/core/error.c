/*
 * Error reporting: the library fills a caller-provided cored_error and returns a status;
 * only the command-line tool prints. CORED_ASSERT is for cored's own invariants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

const char *cored_status_str(int status)
{
    switch (status) {
    case CORED_OK: return "ok";
    case CORED_E_ARG: return "invalid argument";
    case CORED_E_IO: return "I/O error";
    case CORED_E_NOMEM: return "out of memory";
    case CORED_E_FORMAT: return "malformed file";
    case CORED_E_SHAPE: return "shape or name mismatch";
    case CORED_E_NONFINITE: return "non-finite value";
    case CORED_E_INTERNAL: return "internal error";
    case CORED_E_STOPPED: return "stopped";
    case CORED_E_BUSY: return "in use by another run";
    default: return "unknown error";
    }
}

int cored_error_set(cored_error *err, int code, const char *where, int line, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->hint[0] = '\0';
        err->where = where;
        err->line = line;
    }
    return code;
}

void cored_error_hint(cored_error *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
}

void cored_error_prefix(cored_error *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t pl = strlen(prefix), cap = sizeof err->msg;
    size_t ml = strnlen(err->msg, cap - 1);
    if (pl + 2 + ml >= cap) ml = cap - 1 - (pl + 2);
    memmove(err->msg + pl + 2, err->msg, ml);
    memcpy(err->msg, prefix, pl);
    err->msg[pl] = ':';
    err->msg[pl + 1] = ' ';
    err->msg[pl + 2 + ml] = '\0';
}

_Noreturn void cored_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "cored: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
