/*
 * gguf.c — a hardened GGUF (v2/v3) reader: tensor listing for any architecture, and a model
 * loader for architecture "llama" (F32, F16, BF16 and Q8_0 tensors) with its SentencePiece
 * tokenizer from the metadata.
 *
 * File layout (little-endian):
 *   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
 *   n_kv x      { string key, u32 value_type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to `general.alignment` (default 32), then the tensor data; offsets are relative to
 *   the start of the data and multiples of the alignment.
 *   string = u64 length + bytes (no NUL); array = u32 element type, u64 count, elements.
 *
 * The file is untrusted. Parsing happens in one pass over the mapped bytes (gg_parse) with a
 * cursor that can never step past the end: every count and length is compared with the bytes
 * that are left before anything is sized from it, so a header claiming 2^62 tensors or a
 * 2^64-byte string fails at once and allocations only ever grow with entries actually present.
 * The checks follow ggml's gguf reader: known value types, no nested arrays, <= 4 dims, each
 * dim > 0, element count and byte size overflow-checked, known ggml types, rows a whole number
 * of blocks, power-of-two alignment, aligned offsets, every tensor inside the file, no duplicate
 * keys or tensor names; we also refuse overlapping tensors and out-of-range booleans.
 *
 * The loader then reads the llama.* hyperparameters (integers of any integer type with range
 * checks, floats as f32/f64; anything else is a type error naming the key), checks every
 * tensor's shape against them, and builds a cce_model. F32 tensors whose data is 4-byte aligned
 * point into the mapping (adopted by the model); everything else is converted into the model's
 * arena. GGUF dims are ne0 first, so [in, out] is row-major (out, in), our layout as is.
 * llama.cpp's converter already permutes Q/K rows to the interleaved RoPE convention, so GGUF
 * models use rope_interleaved = 1 like llama2.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "model.h"
#include "quant.h"
#include "status.h"
#include "tokenizer.h"
#include "util.h"

/* ---- value and tensor types ---- */

enum {
    GG_U8 = 0, GG_I8, GG_U16, GG_I16, GG_U32, GG_I32, GG_F32, GG_BOOL, GG_STRING, GG_ARRAY,
    GG_U64, GG_I64, GG_F64, GG_N_VTYPES
};
static const char *const gg_vtype_names[GG_N_VTYPES] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
    "uint64", "int64", "float64",
};
/* byte size of a scalar value type; 0 for string and array */
static const uint8_t gg_vtype_size[GG_N_VTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q8_0 = 8, GGML_BF16 = 30, GGML_N_TYPES = 40 };
/* ggml's type table: elements per block and bytes per block; name NULL = removed/unknown id. */
static const struct { const char *name; uint16_t blck, size; } gg_ttypes[GGML_N_TYPES] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136},[24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};

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

/* Our storage type for a ggml tensor type; CCE_WT_COUNT when we have none. */
static cce_wtype gg_wtype(uint32_t t) {
    switch (t) {
    case 0: return CCE_WT_F32;
    case 1: return CCE_WT_F16;
    case 2: return CCE_WT_Q4_0;
    case 3: return CCE_WT_Q4_1;
    case 6: return CCE_WT_Q5_0;
    case 7: return CCE_WT_Q5_1;
    case 8: return CCE_WT_Q8_0;
    case 12: return CCE_WT_Q4_K;
    case 13: return CCE_WT_Q5_K;
    case 14: return CCE_WT_Q6_K;
    case 30: return CCE_WT_BF16;
    default: return CCE_WT_COUNT;
    }
}

static void gg_file_free(gg_file *gf) {
    cce_free(gf->kv);
    cce_free(gf->t);
    cce_free(gf->t_by_name);
    memset(gf, 0, sizeof *gf);
}

/* A printable, bounded copy of file bytes for error messages. */
static const char *gg_printable(const uint8_t *s, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++) buf[k++] = (s[i] >= 32 && s[i] < 127) ? (char)s[i] : '?';
    if (k < n && k + 4 <= cap) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = 0;
    return buf;
}

static size_t gg_left(const gg_file *gf) { return gf->len - gf->pos; }

static cce_status gg_truncated(gg_file *gf, const char *what, cce_err *err) {
    return cce_err_set(err, CCE_EFORMAT, "%s: truncated at byte %zu reading %s (file has %zu bytes)",
                       gf->path, gf->pos, what, gf->len);
}

static uint64_t gg_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static cce_status gg_read(gg_file *gf, int n, uint64_t *v, const char *what, cce_err *err) {
    *v = 0;
    if (gg_left(gf) < (size_t)n) return gg_truncated(gf, what, err);
    *v = gg_le(gf->p + gf->pos, n);
    gf->pos += (size_t)n;
    return CCE_OK;
}

/* A string: u64 length bounded by the bytes left; returns a pointer into the map. */
static cce_status gg_read_str(gg_file *gf, const uint8_t **s, size_t *n, const char *what, cce_err *err) {
    uint64_t len = 0;
    size_t at = gf->pos;
    cce_status st = gg_read(gf, 8, &len, what, err);
    if (st) return st;
    if (len > gg_left(gf))
        return cce_err_set(err, CCE_EFORMAT, "%s: %s at byte %zu: string length %llu is past end of file (%zu bytes left)",
                           gf->path, what, at, (unsigned long long)len, gg_left(gf));
    *s = gf->p + gf->pos;
    *n = (size_t)len;
    gf->pos += (size_t)len;
    return CCE_OK;
}

/* Skip (validate) one value of type vt, which is not an array. */
static cce_status gg_skip_scalar(gg_file *gf, uint32_t vt, const char *key, cce_err *err) {
    if (vt == GG_STRING) {
        const uint8_t *s;
        size_t n;
        return gg_read_str(gf, &s, &n, key, err);
    }
    uint64_t v;
    cce_status st = gg_read(gf, gg_vtype_size[vt], &v, key, err);
    if (st) return st;
    if (vt == GG_BOOL && v > 1)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s': bool value %llu is not 0 or 1",
                           gf->path, key, (unsigned long long)v);
    return CCE_OK;
}

static int gg_cmp_kv(const void *a, const void *b) {
    const gg_kv *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int gg_cmp_name(const void *a, const void *b) {
    const gg_name *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Tensors sorted by offset, for the overlap check: index pairs (offset, i). */
typedef struct { uint64_t off, end; size_t i; } gg_span;
static int gg_cmp_span(const void *a, const void *b) {
    const gg_span *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* Grow *arr (element size sz) to hold at least need elements. */
static bool gg_grow(void **arr, size_t *cap, size_t need, size_t sz) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc < need) nc = need;
    void *p = cce_realloc(*arr, nc, sz);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* Parse and validate the whole header of a mapped GGUF file. On failure gf is freed. */
static cce_status gg_parse(const char *path, const uint8_t *p, size_t len, gg_file *gf, cce_err *err) {
    cce_status st = CCE_OK;
    char kbuf[80];
    memset(gf, 0, sizeof *gf);
    gf->path = path;
    gf->p = p;
    gf->len = len;
    gf->alignment = GG_DEFAULT_ALIGNMENT;
    gg_span *spans = NULL;

    if (len < 4 || memcmp(p, "GGUF", 4) != 0) {
        if (len < 4) st = cce_err_set(err, CCE_EFORMAT, "%s: file has %zu bytes, too short for the GGUF magic", path, len);
        else st = cce_err_set(err, CCE_EFORMAT, "%s: bad magic 0x%02x%02x%02x%02x (expected \"GGUF\")",
                              path, p[0], p[1], p[2], p[3]);
        goto fail;
    }
    gf->pos = 4;
    uint64_t v = 0, n_tensors = 0, n_kv = 0;
    if ((st = gg_read(gf, 4, &v, "version", err))) goto fail;
    if (v != 2 && v != 3) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: GGUF version %llu is not supported (2 or 3)%s", path,
                         (unsigned long long)v, (v & 0xffff) == 0 && v ? "; big-endian files are not supported" : "");
        goto fail;
    }
    gf->version = (uint32_t)v;
    if ((st = gg_read(gf, 8, &n_tensors, "tensor count", err))) goto fail;
    if ((st = gg_read(gf, 8, &n_kv, "metadata count", err))) goto fail;
    if (n_kv > gg_left(gf) / GG_MIN_KV_BYTES) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: metadata count %llu cannot fit in the %zu bytes left",
                         path, (unsigned long long)n_kv, gg_left(gf));
        goto fail;
    }
    if (n_tensors > (gg_left(gf) - n_kv * GG_MIN_KV_BYTES) / GG_MIN_TENSOR_BYTES || n_tensors > INT32_MAX) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: tensor count %llu cannot fit in the %zu bytes left",
                         path, (unsigned long long)n_tensors, gg_left(gf));
        goto fail;
    }

    /* metadata */
    size_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        gg_kv kv = {0};
        if ((st = gg_read_str(gf, &kv.key, &kv.key_len, "metadata key", err))) goto fail;
        const char *key = gg_printable(kv.key, kv.key_len, kbuf, sizeof kbuf);
        if (kv.key_len == 0) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: metadata entry %llu has an empty key", path, (unsigned long long)i);
            goto fail;
        }
        if ((st = gg_read(gf, 4, &v, key, err))) goto fail;
        if (v >= GG_N_VTYPES) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s': unknown value type %llu", path, key, (unsigned long long)v);
            goto fail;
        }
        kv.type = (uint32_t)v;
        if (kv.type == GG_ARRAY) {
            if ((st = gg_read(gf, 4, &v, key, err))) goto fail;
            if (v >= GG_N_VTYPES) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s': unknown array element type %llu",
                                 path, key, (unsigned long long)v);
                goto fail;
            }
            if (v == GG_ARRAY) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s': nested arrays are not supported", path, key);
                goto fail;
            }
            kv.arr_type = (uint32_t)v;
            if ((st = gg_read(gf, 8, &kv.arr_n, key, err))) goto fail;
            size_t min_elem = kv.arr_type == GG_STRING ? 8 : gg_vtype_size[kv.arr_type];
            if (kv.arr_n > gg_left(gf) / min_elem) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s': array of %llu %s is past end of file (%zu bytes left)",
                                 path, key, (unsigned long long)kv.arr_n, gg_vtype_names[kv.arr_type], gg_left(gf));
                goto fail;
            }
            kv.pos = gf->pos;
            if (kv.arr_type == GG_STRING || kv.arr_type == GG_BOOL) {
                for (uint64_t j = 0; j < kv.arr_n; j++)
                    if ((st = gg_skip_scalar(gf, kv.arr_type, key, err))) goto fail;
            } else {
                gf->pos += (size_t)kv.arr_n * min_elem;  // bounded above
            }
        } else {
            kv.pos = gf->pos;
            if ((st = gg_skip_scalar(gf, kv.type, key, err))) goto fail;
        }
        if (kv.key_len == 17 && !memcmp(kv.key, "general.alignment", 17)) {
            if (kv.type != GG_U32) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: metadata 'general.alignment' has type %s, expected uint32",
                                 path, gg_vtype_names[kv.type]);
                goto fail;
            }
            uint64_t a = gg_le(p + kv.pos, 4);
            if (a == 0 || (a & (a - 1))) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: metadata 'general.alignment' = %llu is not a power of two",
                                 path, (unsigned long long)a);
                goto fail;
            }
            gf->alignment = a;
        }
        if (!gg_grow((void **)&gf->kv, &cap, gf->n_kv + 1, sizeof *gf->kv)) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for metadata", path);
            goto fail;
        }
        gf->kv[gf->n_kv++] = kv;
    }
    if (gf->n_kv > 1) {
        gg_kv *sorted = cce_alloc(gf->n_kv, sizeof *sorted);
        if (!sorted) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for metadata", path);
            goto fail;
        }
        memcpy(sorted, gf->kv, gf->n_kv * sizeof *sorted);
        qsort(sorted, gf->n_kv, sizeof *sorted, gg_cmp_kv);
        for (size_t i = 1; i < gf->n_kv; i++) {
            if (!gg_cmp_kv(&sorted[i - 1], &sorted[i])) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: duplicate metadata key '%s'", path,
                                 gg_printable(sorted[i].key, sorted[i].key_len, kbuf, sizeof kbuf));
                cce_free(sorted);
                goto fail;
            }
        }
        cce_free(sorted);
    }

    /* tensor infos */
    if (n_tensors > gg_left(gf) / GG_MIN_TENSOR_BYTES) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: tensor count %llu cannot fit in the %zu bytes left after metadata",
                         path, (unsigned long long)n_tensors, gg_left(gf));
        goto fail;
    }
    cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        gg_tensor t = {0};
        for (int d = 0; d < GG_MAX_DIMS; d++) t.ne[d] = 1;
        if ((st = gg_read_str(gf, &t.name, &t.name_len, "tensor name", err))) goto fail;
        const char *name = gg_printable(t.name, t.name_len, kbuf, sizeof kbuf);
        if (t.name_len == 0 || t.name_len > GG_MAX_NAME || memchr(t.name, 0, t.name_len)) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor %llu: name '%s' is empty, longer than %d bytes or contains NUL",
                             path, (unsigned long long)i, name, GG_MAX_NAME);
            goto fail;
        }
        if ((st = gg_read(gf, 4, &v, name, err))) goto fail;
        if (v < 1 || v > GG_MAX_DIMS) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': n_dims %llu out of range 1..%d", path, name,
                             (unsigned long long)v, GG_MAX_DIMS);
            goto fail;
        }
        t.n_dims = (uint32_t)v;
        uint64_t n_elem = 1;
        for (uint32_t d = 0; d < t.n_dims; d++) {
            if ((st = gg_read(gf, 8, &v, name, err))) goto fail;
            if (v == 0 || v > INT64_MAX) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': dimension %u is %llu (must be 1..2^63-1)",
                                 path, name, d, (unsigned long long)v);
                goto fail;
            }
            t.ne[d] = (int64_t)v;
            if (!cce_u64_mul(n_elem, v, &n_elem) || n_elem > INT64_MAX) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': element count overflows", path, name);
                goto fail;
            }
        }
        t.n_elem = n_elem;
        if ((st = gg_read(gf, 4, &v, name, err))) goto fail;
        if (v >= GGML_N_TYPES || !gg_ttypes[v].name) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': unknown ggml type %llu", path, name, (unsigned long long)v);
            goto fail;
        }
        t.type = (uint32_t)v;
        uint64_t blck = gg_ttypes[v].blck;
        if ((uint64_t)t.ne[0] % blck) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': ne0=%lld is not a multiple of the %s block size %llu",
                             path, name, (long long)t.ne[0], gg_ttypes[v].name, (unsigned long long)blck);
            goto fail;
        }
        if (!cce_u64_mul(n_elem / blck, gg_ttypes[v].size, &t.nbytes)) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': byte size overflows", path, name);
            goto fail;
        }
        if ((st = gg_read(gf, 8, &t.offset, name, err))) goto fail;
        if (t.offset % gf->alignment) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': offset %llu is not a multiple of the alignment %llu",
                             path, name, (unsigned long long)t.offset, (unsigned long long)gf->alignment);
            goto fail;
        }
        if (!gg_grow((void **)&gf->t, &cap, gf->n_t + 1, sizeof *gf->t)) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for tensor infos", path);
            goto fail;
        }
        gf->t[gf->n_t++] = t;
    }

    /* data section */
    uint64_t ds;
    if (!cce_u64_add(gf->pos, gf->alignment - 1, &ds)) ds = UINT64_MAX;
    else ds &= ~(gf->alignment - 1);
    gf->data_start = ds;
    if (gf->n_t > 0 && ds > len) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: tensor data would start at byte %llu, past end of file (%zu bytes)",
                         path, (unsigned long long)ds, len);
        goto fail;
    }
    for (size_t i = 0; i < gf->n_t; i++) {
        gg_tensor *t = &gf->t[i];
        uint64_t room = len - ds;
        if (t->offset > room || t->nbytes > room - t->offset) {
            st = cce_err_set(err, CCE_EFORMAT,
                             "%s: tensor '%s': offset %llu + %llu bytes is past end of file (data section has %llu bytes)",
                             path, gg_printable(t->name, t->name_len, kbuf, sizeof kbuf),
                             (unsigned long long)t->offset, (unsigned long long)t->nbytes, (unsigned long long)room);
            goto fail;
        }
        t->offset += ds;
    }

    /* duplicate names and overlapping data */
    if (gf->n_t > 0) {
        gf->t_by_name = cce_alloc(gf->n_t, sizeof *gf->t_by_name);
        spans = cce_alloc(gf->n_t, sizeof *spans);
        if (!gf->t_by_name || !spans) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for tensor index", path);
            goto fail;
        }
        for (size_t i = 0; i < gf->n_t; i++) {
            gf->t_by_name[i] = (gg_name){gf->t[i].name, gf->t[i].name_len, i};
            spans[i] = (gg_span){gf->t[i].offset, gf->t[i].offset + gf->t[i].nbytes, i};
        }
        qsort(gf->t_by_name, gf->n_t, sizeof *gf->t_by_name, gg_cmp_name);
        for (size_t i = 1; i < gf->n_t; i++) {
            if (!gg_cmp_name(&gf->t_by_name[i - 1], &gf->t_by_name[i])) {
                const gg_tensor *t = &gf->t[gf->t_by_name[i].idx];
                st = cce_err_set(err, CCE_EFORMAT, "%s: duplicate tensor name '%s'", path,
                                 gg_printable(t->name, t->name_len, kbuf, sizeof kbuf));
                goto fail;
            }
        }
        qsort(spans, gf->n_t, sizeof *spans, gg_cmp_span);
        for (size_t i = 1; i < gf->n_t; i++) {
            if (spans[i].off < spans[i - 1].end) {
                const gg_tensor *a = &gf->t[spans[i - 1].i], *b = &gf->t[spans[i].i];
                char b2[80];
                st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' overlaps tensor '%s' at byte %llu", path,
                                 gg_printable(b->name, b->name_len, kbuf, sizeof kbuf),
                                 gg_printable(a->name, a->name_len, b2, sizeof b2), (unsigned long long)spans[i].off);
                goto fail;
            }
        }
    }
    cce_free(spans);
    return CCE_OK;

fail:
    cce_free(spans);
    gg_file_free(gf);
    return st;
}

/* ---- metadata lookup ---- */

static const gg_kv *gg_find(const gg_file *gf, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < gf->n_kv; i++)
        if (gf->kv[i].key_len == n && !memcmp(gf->kv[i].key, key, n)) return &gf->kv[i];
    return NULL;
}

static bool gg_is_int(uint32_t t) { return t <= GG_I32 || t == GG_U64 || t == GG_I64; }
static bool gg_is_signed(uint32_t t) { return t == GG_I8 || t == GG_I16 || t == GG_I32 || t == GG_I64; }

/* Integer value of an integer-typed scalar at pos, sign-extended. */
static bool gg_int_at(const gg_file *gf, uint32_t t, size_t pos, int64_t *out) {
    uint64_t u = gg_le(gf->p + pos, gg_vtype_size[t]);
    if (gg_is_signed(t)) {
        int bits = 8 * gg_vtype_size[t];
        if (bits < 64 && (u >> (bits - 1)) & 1) u |= ~(uint64_t)0 << bits;
        int64_t s;
        memcpy(&s, &u, sizeof s);
        *out = s;
        return true;
    }
    if (u > INT64_MAX) return false;
    *out = (int64_t)u;
    return true;
}

/* An integer key in [lo, hi]. Absent: *out = def when !required, else an error. */
static cce_status gg_get_int(const gg_file *gf, const char *key, bool required, int64_t def, int64_t lo,
                             int64_t hi, int64_t *out, cce_err *err) {
    const gg_kv *kv = gg_find(gf, key);
    if (!kv) {
        if (required) return cce_err_set(err, CCE_EFORMAT, "%s: required metadata '%s' is missing", gf->path, key);
        *out = def;
        return CCE_OK;
    }
    if (!gg_is_int(kv->type))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has type %s, expected an integer", gf->path, key,
                           gg_vtype_names[kv->type]);
    int64_t v;
    if (!gg_int_at(gf, kv->type, kv->pos, &v))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' = %llu is out of range %lld..%lld", gf->path, key,
                           (unsigned long long)gg_le(gf->p + kv->pos, 8), (long long)lo, (long long)hi);
    if (v < lo || v > hi)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' = %lld is out of range %lld..%lld", gf->path, key,
                           (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return CCE_OK;
}

static cce_status gg_get_float(const gg_file *gf, const char *key, double def, double *out, cce_err *err) {
    const gg_kv *kv = gg_find(gf, key);
    if (!kv) {
        *out = def;
        return CCE_OK;
    }
    if (kv->type == GG_F32) {
        uint32_t u = (uint32_t)gg_le(gf->p + kv->pos, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        *out = f;
    } else if (kv->type == GG_F64) {
        uint64_t u = gg_le(gf->p + kv->pos, 8);
        memcpy(out, &u, sizeof *out);
    } else {
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has type %s, expected float32", gf->path, key,
                           gg_vtype_names[kv->type]);
    }
    return CCE_OK;
}

/* A string key; *s NULL when absent. */
static cce_status gg_get_str(const gg_file *gf, const char *key, const uint8_t **s, size_t *n, cce_err *err) {
    const gg_kv *kv = gg_find(gf, key);
    *s = NULL;
    *n = 0;
    if (!kv) return CCE_OK;
    if (kv->type != GG_STRING)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has type %s, expected string", gf->path, key,
                           gg_vtype_names[kv->type]);
    *n = (size_t)gg_le(gf->p + kv->pos, 8);  // validated by gg_parse
    *s = gf->p + kv->pos + 8;
    return CCE_OK;
}

static bool gg_str_is(const uint8_t *s, size_t n, const char *lit) {
    return s && n == strlen(lit) && !memcmp(s, lit, n);
}

/* ---- listing ---- */

cce_status cce_gguf_list(const char *path, cce_gguf_tensor **tensors, int *n, char *arch, size_t arch_cap,
                         cce_err *err) {
    *tensors = NULL;
    *n = 0;
    if (arch && arch_cap) arch[0] = 0;
    cce_mapped map;
    cce_status st = cce_map_file(path, &map, err);
    if (st) return st;
    gg_file gf;
    st = gg_parse(path, map.data, map.len, &gf, err);
    if (st) goto cleanup_map;

    const uint8_t *a;
    size_t an;
    if ((st = gg_get_str(&gf, "general.architecture", &a, &an, err))) goto cleanup_file;
    if (a && arch && arch_cap) {
        char buf[256];
        snprintf(arch, arch_cap, "%s", gg_printable(a, an, buf, sizeof buf));
    }
    if (gf.n_t) {
        cce_gguf_tensor *out = cce_alloc_zero(gf.n_t, sizeof *out);
        if (!out) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory listing %zu tensors", path, gf.n_t);
            goto cleanup_file;
        }
        for (size_t i = 0; i < gf.n_t; i++) {
            const gg_tensor *t = &gf.t[i];
            for (size_t k = 0; k < t->name_len; k++) {  // <= 127 bytes into a zeroed buffer
                uint8_t ch = t->name[k];
                out[i].name[k] = (char)(ch < 0x20 || ch == 0x7f ? '?' : ch);  // no terminal control codes
            }
            snprintf(out[i].dtype, sizeof out[i].dtype, "%s", gg_ttypes[t->type].name);
            out[i].n_dims = (int)t->n_dims;
            for (int d = 0; d < GG_MAX_DIMS; d++) out[i].shape[d] = t->ne[d];
            out[i].offset = t->offset;
            out[i].nbytes = t->nbytes;
        }
        *tensors = out;
        *n = (int)gf.n_t;
    }

cleanup_file:
    gg_file_free(&gf);
cleanup_map:
    cce_unmap(&map);
    return st;
}

/* ---- model loading ---- */

static gg_tensor *gg_tensor_find(gg_file *gf, const char *name) {
    gg_name key = {(const uint8_t *)name, strlen(name), 0};
    const gg_name *hit = gf->n_t ? bsearch(&key, gf->t_by_name, gf->n_t, sizeof key, gg_cmp_name) : NULL;
    return hit ? &gf->t[hit->idx] : NULL;
}

/* Find tensor `name` with GGUF shape [ne0] (ne1 == 0) or [ne0, ne1], convert it to f32 and
 * return a pointer (into the map or the model's arena). optional: absent -> *out NULL, OK. */
static cce_status gg_tensor_load(gg_file *gf, cce_model *m, const char *name, int64_t ne0, int64_t ne1,
                                 bool optional, const float **out, cce_err *err) {
    *out = NULL;
    gg_tensor *t = gg_tensor_find(gf, name);
    if (!t) {
        if (optional) return CCE_OK;
        return cce_err_set(err, CCE_EFORMAT, "%s: required tensor '%s' is missing", gf->path, name);
    }
    t->used = 1;
    uint32_t want_dims = ne1 ? 2 : 1;
    if (t->n_dims != want_dims || t->ne[0] != ne0 || (ne1 && t->ne[1] != ne1)) {
        char got[96];
        int k = snprintf(got, sizeof got, "[%lld", (long long)t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims && k > 0 && (size_t)k < sizeof got; d++)
            k += snprintf(got + k, sizeof got - (size_t)k, ", %lld", (long long)t->ne[d]);
        if (k > 0 && (size_t)k < sizeof got) snprintf(got + k, sizeof got - (size_t)k, "]");
        if (ne1)
            return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' has shape %s, expected [%lld, %lld] from the metadata",
                               gf->path, name, got, (long long)ne0, (long long)ne1);
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' has shape %s, expected [%lld] from the metadata",
                           gf->path, name, got, (long long)ne0);
    }
    const uint8_t *src = gf->p + t->offset;
    size_t n = (size_t)t->n_elem;  // <= file length * 32 / 34 for the types below: fits
    if (t->type == GGML_F32 && ((uintptr_t)src % sizeof(float)) == 0) {
        *out = (const float *)src;
        return CCE_OK;
    }
    cce_wtype wt = gg_wtype(t->type);
    if (wt == CCE_WT_COUNT || !cce_wtype_supported(wt))
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s' has type %s, which this build cannot decode",
                           gf->path, name, gg_ttypes[t->type].name);
    float *dst = cce_model_alloc(m, n, sizeof(float));  // (n_elem)
    if (!dst)
        return cce_err_set(err, CCE_ENOMEM, "%s: tensor '%s': out of memory for %zu floats", gf->path, name, n);
    cce_dequant(wt, src, dst, (int64_t)n);
    *out = dst;
    return CCE_OK;
}

/* Weight matrix `name` of GGUF shape [in, out] kept in its stored type (pointing into the
 * mapping; only a misaligned F32 tensor is copied). optional: absent -> lin->w NULL, OK. */
static cce_status gg_weight_load(gg_file *gf, cce_model *m, const char *name, int64_t in, int64_t out,
                                 bool optional, cce_linear *lin, cce_err *err) {
    gg_tensor *t = gg_tensor_find(gf, name);
    memset(lin, 0, sizeof *lin);
    if (!t) {
        if (optional) return CCE_OK;
        return cce_err_set(err, CCE_EFORMAT, "%s: required tensor '%s' is missing", gf->path, name);
    }
    cce_wtype wt = gg_wtype(t->type);
    if (wt == CCE_WT_COUNT || !cce_wtype_supported(wt))
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s' has type %s, which this build cannot decode",
                           gf->path, name, gg_ttypes[t->type].name);
    const float *f32 = NULL;
    if (t->type == GGML_F32) {   // shape check and alignment handled by the f32 path
        cce_status st = gg_tensor_load(gf, m, name, in, out, optional, &f32, err);
        if (st) return st;
        *lin = (cce_linear){.out = (int)out, .in = (int)in, .wt = CCE_WT_F32, .w = f32};
        return CCE_OK;
    }
    t->used = 1;
    if (t->n_dims != 2 || t->ne[0] != in || t->ne[1] != out)
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' has shape [%lld, %lld] (%u dims), expected [%lld, %lld] from the metadata",
                           gf->path, name, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1), t->n_dims,
                           (long long)in, (long long)out);
    *lin = (cce_linear){.out = (int)out, .in = (int)in, .wt = wt, .w = gf->p + t->offset};
    return CCE_OK;
}

/* Tokenizer from tokenizer.ggml.* (SentencePiece "llama" model only; others: *tok = NULL). */
static cce_status gg_tokenizer_load(gg_file *gf, int vocab, cce_config *cfg, cce_tokenizer **tok, cce_err *err) {
    cce_status st;
    const uint8_t *model;
    size_t model_n;
    if (tok) *tok = NULL;
    if ((st = gg_get_str(gf, "tokenizer.ggml.model", &model, &model_n, err))) return st;
    int64_t bos, eos, unk;
    if ((st = gg_get_int(gf, "tokenizer.ggml.bos_token_id", false, -1, 0, vocab - 1, &bos, err))) return st;
    if ((st = gg_get_int(gf, "tokenizer.ggml.eos_token_id", false, -1, 0, vocab - 1, &eos, err))) return st;
    if ((st = gg_get_int(gf, "tokenizer.ggml.unknown_token_id", false, -1, 0, vocab - 1, &unk, err))) return st;
    bool sp = gg_str_is(model, model_n, "llama");
    /* SentencePiece vocabularies without explicit ids use llama's <s>=1, </s>=2. */
    cfg->bos_id = bos >= 0 ? (int)bos : sp && vocab > 2 ? 1 : -1;
    cfg->eos_id = eos >= 0 ? (int)eos : sp && vocab > 2 ? 2 : -1;
    if (!sp || !tok) return CCE_OK;

    const gg_kv *tokens = gg_find(gf, "tokenizer.ggml.tokens");
    const gg_kv *scores = gg_find(gf, "tokenizer.ggml.scores");
    const gg_kv *types = gg_find(gf, "tokenizer.ggml.token_type");
    if (!tokens || tokens->type != GG_ARRAY || tokens->arr_type != GG_STRING)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata 'tokenizer.ggml.tokens' is %s, expected an array of strings",
                           gf->path, tokens ? gg_vtype_names[tokens->type == GG_ARRAY ? tokens->arr_type : tokens->type] : "missing");
    if (!scores || scores->type != GG_ARRAY || scores->arr_type != GG_F32)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata 'tokenizer.ggml.scores' is %s, expected an array of float32",
                           gf->path, scores ? gg_vtype_names[scores->type == GG_ARRAY ? scores->arr_type : scores->type] : "missing");
    if (types && (types->type != GG_ARRAY || types->arr_type != GG_I32))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata 'tokenizer.ggml.token_type' has type %s, expected an array of int32",
                           gf->path, gg_vtype_names[types->type == GG_ARRAY ? types->arr_type : types->type]);
    if (tokens->arr_n != (uint64_t)vocab || scores->arr_n != (uint64_t)vocab || (types && types->arr_n != (uint64_t)vocab))
        return cce_err_set(err, CCE_EFORMAT, "%s: tokenizer has %llu tokens, %llu scores, %llu types; the model's vocabulary is %d",
                           gf->path, (unsigned long long)tokens->arr_n, (unsigned long long)scores->arr_n,
                           (unsigned long long)(types ? types->arr_n : (uint64_t)vocab), vocab);

    const char **pieces = cce_alloc((size_t)vocab, sizeof *pieces);  // (vocab) into the map
    size_t *lens = cce_alloc((size_t)vocab, sizeof *lens);           // (vocab)
    float *sc = cce_alloc((size_t)vocab, sizeof *sc);                // (vocab)
    int32_t *ty = types ? cce_alloc((size_t)vocab, sizeof *ty) : NULL; // (vocab)
    if (!pieces || !lens || !sc || (types && !ty)) {
        st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for a %d-token vocabulary", gf->path, vocab);
        goto cleanup;
    }
    size_t pos = tokens->pos;  // strings validated by gg_parse
    for (int i = 0; i < vocab; i++) {
        lens[i] = (size_t)gg_le(gf->p + pos, 8);
        pieces[i] = (const char *)gf->p + pos + 8;
        pos += 8 + lens[i];
    }
    for (int i = 0; i < vocab; i++) {
        uint32_t u = (uint32_t)gg_le(gf->p + scores->pos + 4 * (size_t)i, 4);
        memcpy(&sc[i], &u, sizeof u);
        if (ty) ty[i] = (int32_t)(uint32_t)gg_le(gf->p + types->pos + 4 * (size_t)i, 4);
    }
    st = cce_tokenizer_build_sp(vocab, pieces, lens, sc, ty, cfg->bos_id, cfg->eos_id, (int)unk, gf->path, tok, err);
    if (st) *tok = NULL;

cleanup:
    cce_free(pieces);
    cce_free(lens);
    cce_free(sc);
    cce_free(ty);
    return st;
}

#define GG_INT_MAX_DIM (1 << 24)

cce_status cce_load_gguf(const char *path, cce_model **out, struct cce_tokenizer **tok, cce_err *err) {
    cce_status st;
    cce_mapped map;
    gg_file gf;
    cce_model *m = NULL;
    cce_tokenizer *t = NULL;
    char name[96];
    *out = NULL;
    if (tok) *tok = NULL;

    if ((st = cce_map_file(path, &map, err))) return st;
    const uint8_t *data = map.data;
    if ((st = gg_parse(path, data, map.len, &gf, err))) goto cleanup_map;

    const uint8_t *arch;
    size_t arch_n;
    if ((st = gg_get_str(&gf, "general.architecture", &arch, &arch_n, err))) goto cleanup_file;
    if (!arch) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: required metadata 'general.architecture' is missing", path);
        goto cleanup_file;
    }
    if (!gg_str_is(arch, arch_n, "llama")) {
        char buf[80];
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: unsupported architecture '%s' (only 'llama' GGUF models load)",
                         path, gg_printable(arch, arch_n, buf, sizeof buf));
        goto cleanup_file;
    }

    int64_t dim, hidden, n_layers, n_heads, n_kv, ctx, rope_dims, key_len, val_len, vocab_meta;
    double theta, eps;
    if ((st = gg_get_int(&gf, "llama.embedding_length", true, 0, 1, GG_INT_MAX_DIM, &dim, err)) ||
        (st = gg_get_int(&gf, "llama.feed_forward_length", true, 0, 1, GG_INT_MAX_DIM, &hidden, err)) ||
        (st = gg_get_int(&gf, "llama.block_count", true, 0, 1, 100000, &n_layers, err)) ||
        (st = gg_get_int(&gf, "llama.attention.head_count", true, 0, 1, GG_INT_MAX_DIM, &n_heads, err)) ||
        (st = gg_get_int(&gf, "llama.attention.head_count_kv", false, n_heads, 1, GG_INT_MAX_DIM, &n_kv, err)) ||
        (st = gg_get_int(&gf, "llama.context_length", false, 2048, 1, INT32_MAX, &ctx, err)) ||
        (st = gg_get_int(&gf, "llama.rope.dimension_count", false, 0, 0, GG_INT_MAX_DIM, &rope_dims, err)) ||
        (st = gg_get_int(&gf, "llama.attention.key_length", false, 0, 0, GG_INT_MAX_DIM, &key_len, err)) ||
        (st = gg_get_int(&gf, "llama.attention.value_length", false, 0, 0, GG_INT_MAX_DIM, &val_len, err)) ||
        (st = gg_get_int(&gf, "llama.vocab_size", false, 0, 0, GG_INT_MAX_DIM, &vocab_meta, err)) ||
        (st = gg_get_float(&gf, "llama.rope.freq_base", 10000.0, &theta, err)) ||
        (st = gg_get_float(&gf, "llama.attention.layer_norm_rms_epsilon", 1e-5, &eps, err)))
        goto cleanup_file;
    if (dim % n_heads || n_heads % n_kv || (dim / n_heads) % 2) {
        st = cce_err_set(err, CCE_EFORMAT,
                         "%s: llama.attention.head_count=%lld, head_count_kv=%lld do not fit embedding_length=%lld "
                         "(heads must divide the width, KV heads the heads, head size must be even)",
                         path, (long long)n_heads, (long long)n_kv, (long long)dim);
        goto cleanup_file;
    }
    int64_t hd = dim / n_heads;
    if ((rope_dims && rope_dims != hd) || (key_len && key_len != hd) || (val_len && val_len != hd)) {
        st = cce_err_set(err, CCE_EUNSUPPORTED,
                         "%s: rope.dimension_count=%lld, key_length=%lld, value_length=%lld differ from the head size %lld; "
                         "partial RoPE and custom head sizes are not supported", path, (long long)rope_dims,
                         (long long)key_len, (long long)val_len, (long long)hd);
        goto cleanup_file;
    }
    const uint8_t *scaling;
    size_t scaling_n;
    if ((st = gg_get_str(&gf, "llama.rope.scaling.type", &scaling, &scaling_n, err))) goto cleanup_file;
    if (scaling && !gg_str_is(scaling, scaling_n, "none")) {
        char buf[80];
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: llama.rope.scaling.type '%s' is not supported", path,
                         gg_printable(scaling, scaling_n, buf, sizeof buf));
        goto cleanup_file;
    }
    if (!(eps > 0 && eps < 1) || !(theta > 0 && theta < 1e30)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: layer_norm_rms_epsilon=%g or rope.freq_base=%g out of range", path, eps, theta);
        goto cleanup_file;
    }
    gg_tensor *emb = gg_tensor_find(&gf, "token_embd.weight");
    if (!emb) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: required tensor 'token_embd.weight' is missing", path);
        goto cleanup_file;
    }
    int64_t vocab = emb->ne[1];
    if (emb->n_dims != 2 || vocab > GG_INT_MAX_DIM || (vocab_meta && vocab_meta != vocab)) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: tensor 'token_embd.weight' has %u dims, ne1=%lld (llama.vocab_size=%lld)",
                         path, emb->n_dims, (long long)vocab, (long long)vocab_meta);
        goto cleanup_file;
    }

    cce_config cfg = {
        .arch = CCE_ARCH_LLAMA, .dim = (int)dim, .n_layers = (int)n_layers, .n_heads = (int)n_heads,
        .n_kv_heads = (int)n_kv, .head_dim = (int)hd, .hidden_dim = (int)hidden, .vocab_size = (int)vocab,
        .seq_len = (int)ctx, .norm_eps = (float)eps, .rope_theta = (float)theta, .rope_interleaved = 1,
        .tied = 0, .bos_id = 1, .eos_id = 2,
    };
    if ((st = gg_tokenizer_load(&gf, (int)vocab, &cfg, tok ? &t : NULL, err))) goto cleanup_file;
    if ((st = cce_model_new(&cfg, &m, err))) {
        cce_err_prefix(err, st, path);
        goto cleanup_file;
    }
    m->format = CCE_FMT_GGUF;
    m->path = cce_strdup(path);
    if (!m->path) {
        st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
        goto cleanup_model;
    }
    if ((st = cce_model_adopt_map(m, &map, err))) goto cleanup_model;  // gf still points at data

    int64_t D = dim, Q = n_heads * hd, KV = n_kv * hd, H = hidden, V = vocab;
    if ((st = gg_weight_load(&gf, m, "token_embd.weight", D, V, false, &m->tok_emb, err)) ||
        (st = gg_tensor_load(&gf, m, "output_norm.weight", D, 0, false, &m->final_norm, err)) ||
        (st = gg_weight_load(&gf, m, "output.weight", D, V, true, &m->lm_head, err)))
        goto cleanup_model;
    /* Converters often store the head even when it is the embedding (stories260K does):
     * byte-identical data is a tied head, and counts once. */
    const gg_tensor *head = gg_tensor_find(&gf, "output.weight");
    if (m->lm_head.w && head->type == emb->type && head->nbytes == emb->nbytes &&
        !memcmp(data + head->offset, data + emb->offset, (size_t)emb->nbytes))
        m->lm_head.w = NULL;
    if (!m->lm_head.w) {
        m->lm_head = m->tok_emb;
        m->cfg.tied = 1;
    }
    for (int l = 0; l < (int)n_layers; l++) {
        cce_layer *ly = &m->layers[l];
        const struct { const char *suffix; const float **dst; } norms[] = {
            {"attn_norm", &ly->attn_norm}, {"ffn_norm", &ly->ffn_norm}};
        const struct { const char *suffix; int64_t in, out; cce_linear *dst; } want[] = {
            {"attn_q", D, Q, &ly->wq},        {"attn_k", D, KV, &ly->wk},
            {"attn_v", D, KV, &ly->wv},       {"attn_output", Q, D, &ly->wo},
            {"ffn_gate", D, H, &ly->w1},      {"ffn_up", D, H, &ly->w3},
            {"ffn_down", H, D, &ly->w2},
        };
        for (size_t k = 0; k < sizeof norms / sizeof norms[0]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, norms[k].suffix);
            if ((st = gg_tensor_load(&gf, m, name, D, 0, false, norms[k].dst, err))) goto cleanup_model;
        }
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, want[k].suffix);
            if ((st = gg_weight_load(&gf, m, name, want[k].in, want[k].out, false, want[k].dst, err)))
                goto cleanup_model;
        }
        ly->n_heads = (int)n_heads;
        ly->n_kv_heads = (int)n_kv;
        ly->head_kv = NULL;
        ly->hidden = (int)hidden;
    }
    /* A tensor we do not use means a variant we would run wrongly (biases, rope_freqs, MoE). */
    for (size_t i = 0; i < gf.n_t; i++) {
        if (!gf.t[i].used) {
            char buf[160];
            st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s' is not part of the llama layout this loader supports",
                             path, gg_printable(gf.t[i].name, gf.t[i].name_len, buf, sizeof buf));
            goto cleanup_model;
        }
    }
    if ((st = cce_model_validate(m, path, err))) goto cleanup_model;

    gg_file_free(&gf);
    *out = m;
    if (tok) *tok = t;
    return CCE_OK;

cleanup_model:
    cce_model_free(m);
cleanup_file:
    gg_file_free(&gf);
    if (t) cce_tokenizer_free(t);
cleanup_map:
    cce_unmap(&map);  // no-op once adopted
    return st;
}
