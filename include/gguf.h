/*
 * gguf.h — listing the tensors and metadata of any GGUF file (v2/v3), for `cce info FILE.gguf`.
 *
 * Loading a GGUF model is cce_load_gguf (model.h); this header adds a read-only listing that
 * works for every architecture, including ones the engine cannot run. Both go through the same
 * hardened parser (engine/formats/gguf.c): every count, length, dimension, type and offset is
 * checked against the real file length with overflow-safe arithmetic before it is trusted.
 */
#ifndef CCE_GGUF_H
#define CCE_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

typedef struct {
    char name[128];       // NUL-terminated tensor name; control bytes shown as '?'
    char dtype[16];       // ggml type name: "F32", "F16", "BF16", "Q8_0", "Q4_K", ...
    int n_dims;           // 1..4
    int64_t shape[4];     // GGUF order: ne0 (fastest-varying) first; unused entries 1
    uint64_t offset;      // absolute byte offset of the data in the file
    uint64_t nbytes;      // bytes of data
} cce_gguf_tensor;

/* Parse and fully validate the GGUF file at path (header, all metadata, all tensor infos,
 * bounds and alignment of every tensor), then return its tensors in file order.
 * *tensors is allocated with cce_alloc (free with cce_free; NULL when *n == 0).
 * arch receives general.architecture (NUL-terminated, truncated to arch_cap-1 bytes, bytes
 * outside printable ASCII shown as '?'), or "" when the key is absent; arch may be NULL.
 * A general.architecture that is not a string is an error, like any malformed metadata.
 * Errors: CCE_EIO (cannot open/map), CCE_EFORMAT (malformed; the message names path and field),
 * CCE_ENOMEM. Thread-safe (no shared state). */
cce_status cce_gguf_list(const char *path, cce_gguf_tensor **tensors, int *n,
                         char *arch, size_t arch_cap, cce_err *err);

/* One metadata entry of a GGUF file, rendered for display. */
typedef struct {
    char key[128];        // NUL-terminated; control bytes shown as '?'
    char type[24];        // "uint32", "float32", "string", "array[string]", ...
    char value[200];      // scalars as text, strings quoted (truncated with "..."), arrays as
                          // "N items: first, second, ..." (at most 4 shown)
} cce_gguf_meta;

/* Parse and fully validate the GGUF file at path like cce_gguf_list, then return its metadata in
 * file order. *meta is allocated with cce_alloc (cce_free; NULL when *n == 0). Errors as
 * cce_gguf_list. Thread-safe. */
cce_status cce_gguf_list_meta(const char *path, cce_gguf_meta **meta, int *n, cce_err *err);

#endif
