/*
 * resource.h — refusing work up front that would not fit in memory.
 *
 * A model whose weights, once converted to f32, would not fit, or a calibration request whose
 * statistics would not, must be refused with a clear message before anything is allocated,
 * instead of being killed by the OOM killer half way through. Callers estimate the bytes they
 * are about to allocate and ask cce_mem_check first.
 *
 * The budget is MemAvailable from /proc/meminfo less a safety margin (CCE_MEM_MARGIN below),
 * or exactly the value of the environment variable CCE_MEM_LIMIT (bytes) when it is set, so
 * tests can provoke a refusal deterministically on any machine.
 */
#ifndef CCE_RESOURCE_H
#define CCE_RESOURCE_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

/* Headroom kept free for the rest of the process and the system (bytes). */
#define CCE_MEM_MARGIN (256ull << 20)

/* Bytes the process may still allocate: CCE_MEM_LIMIT when set (a decimal byte count; a
 * malformed value is ignored), else MemAvailable - CCE_MEM_MARGIN (0 if less). UINT64_MAX when
 * neither is known (no /proc): then nothing is refused. */
uint64_t cce_mem_budget(void);

/* Refuse when need_bytes exceeds cce_mem_budget(). On refusal returns CCE_ENOMEM with
 *   "WHAT: needs 12.3 GiB, 8.1 GiB available; HINT"
 * (hint may be NULL: then the message ends after "available"). what names the file or job.
 * Thread-safe. */
cce_status cce_mem_check(const char *what, uint64_t need_bytes, const char *hint, cce_err *err);

/* Human-readable byte count into buf ("512 B", "3.5 KiB", "12.3 GiB"); returns buf. */
char *cce_bytes_fmt(uint64_t bytes, char *buf, size_t cap);

/* What loading a model will cost, estimated from file headers only (nothing is converted).
 *   alloc_bytes:  bytes the loader allocates for f32 copies: vectors (norms, biases) stored in
 *                 another type, F32 tensors that are not 4-byte aligned in the file, and GPT-2's
 *                 Conv1D weights (transposed into new buffers whatever their dtype); weight
 *                 matrices in F16/BF16 (and GGUF's quantised types) stay stored in the mapping;
 *   mapped_bytes: bytes of tensors used in place from the read-only mapping (page cache, not
 *                 counted against the budget).
 * path: a .gguf file or a Hugging Face directory (model.safetensors, or the shards named by
 * model.safetensors.index.json); any other file is a llama2.c checkpoint, which is fully
 * mapped (alloc 0, mapped = file size). Validation errors of the headers are returned as the
 * parsers report them (the loader would report the same). */
typedef struct {
    uint64_t alloc_bytes;
    uint64_t mapped_bytes;
} cce_load_estimate;
cce_status cce_model_estimate(const char *path, cce_load_estimate *est, cce_err *err);

#endif
