/*
 * safetensors.h — read and write .safetensors files (Hugging Face's flat tensor container).
 *
 * Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
 * The JSON object maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data buffer) plus an optional "__metadata__" object of string -> string.
 *
 * The reader validates like the reference implementation (huggingface/safetensors) before any
 * tensor is trusted: N <= 100,000,000 and 8 + N <= file length; the header is valid UTF-8 and
 * one JSON object with nothing but whitespace after it; every tensor has a known dtype, a shape
 * of non-negative integers whose product does not overflow, begin <= end and
 * end - begin == product(shape) * dtype size; the byte ranges, sorted, tile the data buffer
 * from 0 to its end with no hole and no overlap; names are valid UTF-8 and unique.
 * Deliberate limits beyond the reference: at most 8 dimensions, and integers above 2^53 are
 * refused (JSON numbers arrive as doubles; no valid file on this machine needs them).
 *
 * The writer streams tensor by tensor into a temporary file beside the target, fsyncs, renames
 * and fsyncs the directory, so a failed write never replaces a good file.
 */
#ifndef CCE_SAFETENSORS_H
#define CCE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"
#include "util.h"

/* Every dtype the reference knows (byte-sized ones; sub-byte F4/F6 are not supported). */
typedef enum {
    CCE_ST_F32 = 0, CCE_ST_F16, CCE_ST_BF16,
    CCE_ST_F64, CCE_ST_I64, CCE_ST_U64, CCE_ST_I32, CCE_ST_U32, CCE_ST_I16, CCE_ST_U16,
    CCE_ST_I8, CCE_ST_U8, CCE_ST_BOOL, CCE_ST_F8_E4M3, CCE_ST_F8_E5M2, CCE_ST_F8_E8M0,
    CCE_ST_C64,
    CCE_ST_N_DTYPES
} cce_st_dtype;

#define CCE_ST_MAX_DIMS 8
#define CCE_ST_MAX_HEADER 100000000u

typedef struct {
    char *name;                 // owned, NUL-terminated, valid UTF-8
    int dtype;                  // cce_st_dtype
    int n_dims;
    int64_t shape[CCE_ST_MAX_DIMS];
    uint64_t begin, end;        // byte range within the data buffer
    const uint8_t *data;        // begin of the tensor's bytes inside the mapping (may be unaligned)
} cce_st_tensor;

typedef struct {
    cce_mapped map;             // the whole file, read-only
    cce_st_tensor *t;           // (n) in header order
    int n;
    int *sorted;                // (n) indices of t sorted by name, for cce_st_find
    char **meta;                // (2*n_meta) key, value pairs of "__metadata__" (owned)
    int n_meta;
    uint64_t header_len;        // N
} cce_safetensors;

/* Map and validate path. On success *out owns the mapping and the tensor table (free with
 * cce_st_close). On failure *out is zeroed and err names the file, tensor and field. */
cce_status cce_st_open(const char *path, cce_safetensors *out, cce_err *err);
void cce_st_close(cce_safetensors *s);

/* Tensor by exact (case-sensitive) name, or NULL. O(log n). */
const cce_st_tensor *cce_st_find(const cce_safetensors *s, const char *name);
/* Value of a "__metadata__" key, or NULL. */
const char *cce_st_meta(const cce_safetensors *s, const char *key);

/* "F32", "BF16", ... ; "?" for out-of-range values. */
const char *cce_st_dtype_name(int dtype);
/* Bytes per element (0 for out-of-range values). */
size_t cce_st_dtype_size(int dtype);
/* Element count of a tensor (validated at open, cannot overflow). */
uint64_t cce_st_numel(const cce_st_tensor *t);

/* Convert a F32/F16/BF16 tensor to f32 into dst (numel floats). Returns CCE_EUNSUPPORTED with a
 * message naming the tensor for any other dtype. what names the file for the message. */
cce_status cce_st_to_f32(const cce_st_tensor *t, float *dst, const char *what, cce_err *err);

/* ---- writer ---- */

/* One tensor to write. The source is always f32, converted on the way out to dtype
 * (CCE_ST_F32, CCE_ST_F16 or CCE_ST_BF16). Either data points at numel floats, or data is NULL
 * and the writer asks fill() for them in consecutive chunks. */
typedef struct {
    const char *name;
    int dtype;
    int n_dims;
    int64_t shape[CCE_ST_MAX_DIMS];
    const float *data;          // (numel) or NULL to use fill
} cce_st_entry;

/* Produce elements [first, first+count) of entry i (row-major flat index) into buf. Called
 * with increasing first for each entry, entries in order. Non-OK aborts the write. */
typedef cce_status (*cce_st_fill_fn)(void *user, int i, uint64_t first, size_t count, float *buf,
                                     cce_err *err);

/* Write n entries (in the given order) and n_meta "__metadata__" pairs meta[2k] -> meta[2k+1]
 * to path atomically. fill may be NULL when every entry has data. *bytes_out (may be NULL)
 * receives the file size. */
cce_status cce_st_write(const char *path, const cce_st_entry *e, int n,
                        const char *const *meta, int n_meta,
                        cce_st_fill_fn fill, void *user, uint64_t *bytes_out, cce_err *err);

#endif
