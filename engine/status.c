/*
 * status.c — error message formatting. See status.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "status.h"

cce_status cce_err_set(cce_err *err, cce_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* one line: newlines in user-controlled text (names from files) become spaces */
        for (char *p = err->msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return s;
}

cce_status cce_err_prefix(cce_err *err, cce_status s, const char *prefix) {
    if (err) {
        char tmp[2 * sizeof err->msg + 8];
        int n = snprintf(tmp, sizeof tmp, "%.*s: %s", (int)sizeof err->msg, prefix, err->msg);
        size_t len = n < 0 ? 0 : (size_t)n;
        if (len >= sizeof err->msg) len = sizeof err->msg - 1;
        memcpy(err->msg, tmp, len);
        err->msg[len] = 0;
    }
    return s;
}

const char *cce_status_name(cce_status s) {
    switch (s) {
    case CCE_OK: return "ok";
    case CCE_EIO: return "i/o error";
    case CCE_EFORMAT: return "malformed input";
    case CCE_ENOMEM: return "out of memory";
    case CCE_EINVAL: return "invalid argument";
    case CCE_EUNSUPPORTED: return "unsupported";
    case CCE_ECANCEL: return "cancelled";
    }
    return "unknown status";
}
