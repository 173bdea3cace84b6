/*
 * gguf_file.h — internal to engine/formats/gguf*.c: the parsed form of a GGUF file.
 *
 * gguf.c parses and validates (cce_ggf_parse, the hardened reader described at its top) and
 * answers metadata lookups; gguf_load.c builds a cce_model from the parsed file; gguf_write.c
 * writes one. Everything a cce_ggf_* lookup returns points into the mapped file, whose bytes
 * cce_ggf_parse has already bounded: a string's length, an array's elements and every tensor's
 * data are known to lie inside the file.
 */
#ifndef CCE_GGUF_FILE_H
#define CCE_GGUF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "quant.h"
#include "status.h"

/* ---- value and tensor types ---- */

enum {
    GG_U8 = 0, GG_I8, GG_U16, GG_I16, GG_U32, GG_I32, GG_F32, GG_BOOL, GG_STRING, GG_ARRAY,
    GG_U64, GG_I64, GG_F64, GG_N_VTYPES
};
extern const char *const cce_ggf_vtype_names[GG_N_VTYPES];
/* byte size of a scalar value type; 0 for string and array */
extern const uint8_t cce_ggf_vtype_size[GG_N_VTYPES];

enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8,
       GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_BF16 = 30, GGML_N_TYPES = 40 };
/* ggml's type table: elements per block and bytes per block; name NULL = removed/unknown id. */
typedef struct { const char *name; uint16_t blck, size; } cce_ggf_ttype;
extern const cce_ggf_ttype cce_ggf_ttypes[GGML_N_TYPES];

#define GG_MAX_DIMS 4
#define GG_MAX_NAME 127          // cce_gguf_tensor.name holds 127 bytes + NUL
#define GG_DEFAULT_ALIGNMENT 32
/* Smallest possible encodings, used to bound counts by the bytes left. */
#define GG_MIN_KV_BYTES 14       // u64 key length + 1 key byte + u32 type + 1 value byte
#define GG_MIN_TENSOR_BYTES 33   // u64 name length + 1 name byte + u32 n_dims + u64 ne0 + u32 type + u64 offset

/* ---- parsed file ---- */

typedef struct {
    const uint8_t *key;
    size_t key_len;
    uint32_t type;
    uint32_t arr_type;    // arrays: element type
    uint64_t arr_n;       // arrays: element count
    size_t pos;           // file offset of the value (arrays: of the first element)
} gg_kv;

typedef struct {
    const uint8_t *name;
    size_t name_len;
    uint32_t n_dims;
    int64_t ne[GG_MAX_DIMS];   // unused dims 1
    uint32_t type;
    uint64_t offset;           // absolute offset in the file
    uint64_t nbytes;
    uint64_t n_elem;
    int used;                  // loader bookkeeping
} gg_tensor;

typedef struct {
    const uint8_t *name;
    size_t len;
    size_t idx;                // into gg_file.t
} gg_name;

typedef struct {
    const char *path;
    const uint8_t *p;
    size_t len;
    size_t pos;                // cursor while parsing
    uint32_t version;
    gg_kv *kv;                 // (n_kv)
    size_t n_kv;
    gg_tensor *t;              // (n_tensors), file order
    size_t n_t;
    gg_name *t_by_name;        // (n_tensors) sorted by name
    uint64_t alignment;
    uint64_t data_start;
} gg_file;

/* Parse and validate the whole header of a mapped GGUF file (p, len); gf points into p. On
 * failure gf is freed and the message names path and the field. */
cce_status cce_ggf_parse(const char *path, const uint8_t *p, size_t len, gg_file *gf, cce_err *err);
void cce_ggf_free(gg_file *gf);

/* Little-endian unsigned integer of n bytes at p. */
uint64_t cce_ggf_le(const uint8_t *p, int n);
/* A printable, bounded copy of file bytes for messages (bytes outside ASCII shown as '?'). */
const char *cce_ggf_printable(const uint8_t *s, size_t n, char *buf, size_t cap);
/* Our storage type for a ggml tensor type; CCE_WT_COUNT when we have none. */
cce_wtype cce_ggf_wtype(uint32_t t);
/* ggml type name ("F32", "Q4_K", ...) of a type id the parser accepted. */
const char *cce_ggf_type_name(uint32_t t);

/* Metadata entry by key, or NULL. */
const gg_kv *cce_ggf_find(const gg_file *gf, const char *key);
bool cce_ggf_is_int(uint32_t t);
/* Integer value of an integer-typed scalar at file offset pos, sign-extended; false when an
 * unsigned 64-bit value exceeds INT64_MAX. */
bool cce_ggf_int_at(const gg_file *gf, uint32_t t, size_t pos, int64_t *out);
/* An integer key in [lo, hi] (any integer type). Absent: *out = def unless required. */
cce_status cce_ggf_get_int(const gg_file *gf, const char *key, bool required, int64_t def, int64_t lo,
                           int64_t hi, int64_t *out, cce_err *err);
/* A float32 / float64 key; absent: def. */
cce_status cce_ggf_get_float(const gg_file *gf, const char *key, double def, double *out, cce_err *err);
/* A bool key: -1 absent, else 0 / 1. */
cce_status cce_ggf_get_bool(const gg_file *gf, const char *key, int *out, cce_err *err);
/* A string key; *s NULL when absent (points into the map, not NUL-terminated). */
cce_status cce_ggf_get_str(const gg_file *gf, const char *key, const uint8_t **s, size_t *n, cce_err *err);
bool cce_ggf_str_is(const uint8_t *s, size_t n, const char *lit);
/* Tensor by name, or NULL. */
gg_tensor *cce_ggf_tensor_find(gg_file *gf, const char *name);

#endif
