/*
 * status.h — status codes and error messages for the whole engine.
 *
 * Engine functions never exit and never print. They return a cce_status and, on failure, fill
 * a cce_err with one line that names the file, the field and the offending value, e.g.
 *   "model.gguf: tensor 'blk.0.attn_q.weight': offset 1234 + 4096 bytes is past end of file (2048)"
 * Front ends print it as "cce: error: <msg>".
 */
#ifndef CCE_STATUS_H
#define CCE_STATUS_H

#include <stddef.h>

typedef enum {
    CCE_OK = 0,
    CCE_EIO,          /* open/read/write/mmap failed */
    CCE_EFORMAT,      /* file content is malformed or inconsistent */
    CCE_ENOMEM,       /* allocation failed or would exceed a limit */
    CCE_EINVAL,       /* bad argument from the caller / user */
    CCE_EUNSUPPORTED, /* well-formed but not something we handle (dtype, arch) */
    CCE_ECANCEL,      /* a job was cancelled */
} cce_status;

typedef struct {
    char msg[512];
} cce_err;

/* Set err->msg from a printf format (err may be NULL) and return s. */
cce_status cce_err_set(cce_err *err, cce_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message: "prefix: old message". Returns s. */
cce_status cce_err_prefix(cce_err *err, cce_status s, const char *prefix);

const char *cce_status_name(cce_status s);

#endif
