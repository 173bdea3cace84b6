/*
 * gguf.c — a hardened GGUF (v2/v3) reader: parsing and validation of any GGUF file, metadata
 * lookups for the model loader (gguf_load.c) and writer (gguf_write.c), and the listings of
 * tensors and metadata behind `cce info FILE.gguf`.
 *
 * File layout (little-endian):
 *   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
 *   n_kv x      { string key, u32 value_type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to `general.alignment` (default 32), then the tensor data; offsets are relative to
 *   the start of the data and multiples of the alignment.
 *   string = u64 length + bytes (no NUL); array = u32 element type, u64 count, elements.
 *
 * The file is untrusted. Parsing happens in one pass over the mapped bytes (cce_ggf_parse) with a
 * cursor that can never step past the end: every count and length is compared with the bytes
 * that are left before anything is sized from it, so a header claiming 2^62 tensors or a
 * 2^64-byte string fails at once and allocations only ever grow with entries actually present.
 * The checks follow ggml's gguf reader: known value types, no nested arrays, <= 4 dims, each
 * dim > 0, element count and byte size overflow-checked, known ggml types, rows a whole number
 * of blocks (ne0 a multiple of the type's block size) and bytes = blocks x block bytes,
 * power-of-two alignment, aligned offsets, every tensor inside the file, no duplicate keys or
 * tensor names; we also refuse overlapping tensors and out-of-range booleans. A file that passes
 * is a valid GGUF file whatever its architecture; whether it is a model we can run is the
 * loader's question (gguf_load.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gguf.h"
#include "gguf_file.h"
#include "quant.h"
#include "status.h"
#include "util.h"

/* ---- value and tensor types ---- */

const char *const cce_ggf_vtype_names[GG_N_VTYPES] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array",
    "uint64", "int64", "float64",
};
/* byte size of a scalar value type; 0 for string and array */
const uint8_t cce_ggf_vtype_size[GG_N_VTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ggml's type table: elements per block and bytes per block; name NULL = removed/unknown id. */
const cce_ggf_ttype cce_ggf_ttypes[GGML_N_TYPES] = {
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

const char *cce_ggf_type_name(uint32_t t) { return t < GGML_N_TYPES && cce_ggf_ttypes[t].name ? cce_ggf_ttypes[t].name : "?"; }

/* Our storage type for a ggml tensor type; CCE_WT_COUNT when we have none. */
cce_wtype cce_ggf_wtype(uint32_t t) {
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

void cce_ggf_free(gg_file *gf) {
    cce_free(gf->kv);
    cce_free(gf->t);
    cce_free(gf->t_by_name);
    memset(gf, 0, sizeof *gf);
}

/* A printable, bounded copy of file bytes for error messages. */
const char *cce_ggf_printable(const uint8_t *s, size_t n, char *buf, size_t cap) {
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

uint64_t cce_ggf_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static cce_status gg_read(gg_file *gf, int n, uint64_t *v, const char *what, cce_err *err) {
    *v = 0;
    if (gg_left(gf) < (size_t)n) return gg_truncated(gf, what, err);
    *v = cce_ggf_le(gf->p + gf->pos, n);
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
    cce_status st = gg_read(gf, cce_ggf_vtype_size[vt], &v, key, err);
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
cce_status cce_ggf_parse(const char *path, const uint8_t *p, size_t len, gg_file *gf, cce_err *err) {
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
        const char *key = cce_ggf_printable(kv.key, kv.key_len, kbuf, sizeof kbuf);
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
            size_t min_elem = kv.arr_type == GG_STRING ? 8 : cce_ggf_vtype_size[kv.arr_type];
            if (kv.arr_n > gg_left(gf) / min_elem) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s': array of %llu %s is past end of file (%zu bytes left)",
                                 path, key, (unsigned long long)kv.arr_n, cce_ggf_vtype_names[kv.arr_type], gg_left(gf));
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
                                 path, cce_ggf_vtype_names[kv.type]);
                goto fail;
            }
            uint64_t a = cce_ggf_le(p + kv.pos, 4);
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
                                 cce_ggf_printable(sorted[i].key, sorted[i].key_len, kbuf, sizeof kbuf));
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
        const char *name = cce_ggf_printable(t.name, t.name_len, kbuf, sizeof kbuf);
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
        if (v >= GGML_N_TYPES || !cce_ggf_ttypes[v].name) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': unknown ggml type %llu", path, name, (unsigned long long)v);
            goto fail;
        }
        t.type = (uint32_t)v;
        uint64_t blck = cce_ggf_ttypes[v].blck;
        if ((uint64_t)t.ne[0] % blck) {
            st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': ne0=%lld is not a multiple of the %s block size %llu",
                             path, name, (long long)t.ne[0], cce_ggf_ttypes[v].name, (unsigned long long)blck);
            goto fail;
        }
        if (!cce_u64_mul(n_elem / blck, cce_ggf_ttypes[v].size, &t.nbytes)) {
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
                             path, cce_ggf_printable(t->name, t->name_len, kbuf, sizeof kbuf),
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
                                 cce_ggf_printable(t->name, t->name_len, kbuf, sizeof kbuf));
                goto fail;
            }
        }
        qsort(spans, gf->n_t, sizeof *spans, gg_cmp_span);
        for (size_t i = 1; i < gf->n_t; i++) {
            if (spans[i].off < spans[i - 1].end) {
                const gg_tensor *a = &gf->t[spans[i - 1].i], *b = &gf->t[spans[i].i];
                char b2[80];
                st = cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' overlaps tensor '%s' at byte %llu", path,
                                 cce_ggf_printable(b->name, b->name_len, kbuf, sizeof kbuf),
                                 cce_ggf_printable(a->name, a->name_len, b2, sizeof b2), (unsigned long long)spans[i].off);
                goto fail;
            }
        }
    }
    cce_free(spans);
    return CCE_OK;

fail:
    cce_free(spans);
    cce_ggf_free(gf);
    return st;
}

/* ---- metadata lookup ---- */

const gg_kv *cce_ggf_find(const gg_file *gf, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < gf->n_kv; i++)
        if (gf->kv[i].key_len == n && !memcmp(gf->kv[i].key, key, n)) return &gf->kv[i];
    return NULL;
}

bool cce_ggf_is_int(uint32_t t) { return t <= GG_I32 || t == GG_U64 || t == GG_I64; }
static bool gg_is_signed(uint32_t t) { return t == GG_I8 || t == GG_I16 || t == GG_I32 || t == GG_I64; }

/* Integer value of an integer-typed scalar at pos, sign-extended. */
bool cce_ggf_int_at(const gg_file *gf, uint32_t t, size_t pos, int64_t *out) {
    uint64_t u = cce_ggf_le(gf->p + pos, cce_ggf_vtype_size[t]);
    if (gg_is_signed(t)) {
        int bits = 8 * cce_ggf_vtype_size[t];
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
cce_status cce_ggf_get_int(const gg_file *gf, const char *key, bool required, int64_t def, int64_t lo,
                             int64_t hi, int64_t *out, cce_err *err) {
    const gg_kv *kv = cce_ggf_find(gf, key);
    if (!kv) {
        if (required) return cce_err_set(err, CCE_EFORMAT, "%s: required metadata '%s' is missing", gf->path, key);
        *out = def;
        return CCE_OK;
    }
    if (!cce_ggf_is_int(kv->type))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has type %s, expected an integer", gf->path, key,
                           cce_ggf_vtype_names[kv->type]);
    int64_t v;
    if (!cce_ggf_int_at(gf, kv->type, kv->pos, &v))
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' = %llu is out of range %lld..%lld", gf->path, key,
                           (unsigned long long)cce_ggf_le(gf->p + kv->pos, 8), (long long)lo, (long long)hi);
    if (v < lo || v > hi)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' = %lld is out of range %lld..%lld", gf->path, key,
                           (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return CCE_OK;
}

cce_status cce_ggf_get_float(const gg_file *gf, const char *key, double def, double *out, cce_err *err) {
    const gg_kv *kv = cce_ggf_find(gf, key);
    if (!kv) {
        *out = def;
        return CCE_OK;
    }
    if (kv->type == GG_F32) {
        uint32_t u = (uint32_t)cce_ggf_le(gf->p + kv->pos, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        *out = f;
    } else if (kv->type == GG_F64) {
        uint64_t u = cce_ggf_le(gf->p + kv->pos, 8);
        memcpy(out, &u, sizeof *out);
    } else {
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has type %s, expected float32", gf->path, key,
                           cce_ggf_vtype_names[kv->type]);
    }
    return CCE_OK;
}

/* A string key; *s NULL when absent. */
cce_status cce_ggf_get_str(const gg_file *gf, const char *key, const uint8_t **s, size_t *n, cce_err *err) {
    const gg_kv *kv = cce_ggf_find(gf, key);
    *s = NULL;
    *n = 0;
    if (!kv) return CCE_OK;
    if (kv->type != GG_STRING)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has type %s, expected string", gf->path, key,
                           cce_ggf_vtype_names[kv->type]);
    *n = (size_t)cce_ggf_le(gf->p + kv->pos, 8);  // validated by cce_ggf_parse
    *s = gf->p + kv->pos + 8;
    return CCE_OK;
}

bool cce_ggf_str_is(const uint8_t *s, size_t n, const char *lit) {
    return s && n == strlen(lit) && !memcmp(s, lit, n);
}

cce_status cce_ggf_get_bool(const gg_file *gf, const char *key, int *out, cce_err *err) {
    const gg_kv *kv = cce_ggf_find(gf, key);
    *out = -1;
    if (!kv) return CCE_OK;
    if (kv->type != GG_BOOL)
        return cce_err_set(err, CCE_EFORMAT, "%s: metadata '%s' has type %s, expected bool", gf->path, key,
                           cce_ggf_vtype_names[kv->type]);
    *out = gf->p[kv->pos] != 0;   // 0 or 1, checked by the parser
    return CCE_OK;
}

static int gg_cmp_name(const void *a, const void *b);
gg_tensor *cce_ggf_tensor_find(gg_file *gf, const char *name) {
    gg_name key = {(const uint8_t *)name, strlen(name), 0};
    const gg_name *hit = gf->n_t ? bsearch(&key, gf->t_by_name, gf->n_t, sizeof key, gg_cmp_name) : NULL;
    return hit ? &gf->t[hit->idx] : NULL;
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
    st = cce_ggf_parse(path, map.data, map.len, &gf, err);
    if (st) goto cleanup_map;

    const uint8_t *a;
    size_t an;
    if ((st = cce_ggf_get_str(&gf, "general.architecture", &a, &an, err))) goto cleanup_file;
    if (a && arch && arch_cap) {
        char buf[256];
        snprintf(arch, arch_cap, "%s", cce_ggf_printable(a, an, buf, sizeof buf));
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
            snprintf(out[i].dtype, sizeof out[i].dtype, "%s", cce_ggf_ttypes[t->type].name);
            out[i].n_dims = (int)t->n_dims;
            for (int d = 0; d < GG_MAX_DIMS; d++) out[i].shape[d] = t->ne[d];
            out[i].offset = t->offset;
            out[i].nbytes = t->nbytes;
        }
        *tensors = out;
        *n = (int)gf.n_t;
    }

cleanup_file:
    cce_ggf_free(&gf);
cleanup_map:
    cce_unmap(&map);
    return st;
}


/* ---- metadata listing ---- */

/* Render one scalar of type vt at file offset pos into buf (cap bytes). Returns the offset
 * after it. */
static size_t gg_render(const gg_file *gf, uint32_t vt, size_t pos, char *buf, size_t cap) {
    const uint8_t *p = gf->p + pos;
    if (vt == GG_STRING) {
        size_t n = (size_t)cce_ggf_le(p, 8);
        char tmp[120];
        snprintf(buf, cap, "\"%s\"", cce_ggf_printable(p + 8, n, tmp, sizeof tmp));
        return pos + 8 + n;
    }
    if (vt == GG_F32) {
        uint32_t u = (uint32_t)cce_ggf_le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        snprintf(buf, cap, "%.9g", (double)f);
    } else if (vt == GG_F64) {
        uint64_t u = cce_ggf_le(p, 8);
        double d;
        memcpy(&d, &u, 8);
        snprintf(buf, cap, "%.17g", d);
    } else if (vt == GG_BOOL) {
        snprintf(buf, cap, "%s", p[0] ? "true" : "false");
    } else {
        int64_t v;
        if (cce_ggf_int_at(gf, vt, pos, &v)) snprintf(buf, cap, "%lld", (long long)v);
        else snprintf(buf, cap, "%llu", (unsigned long long)cce_ggf_le(p, 8));
    }
    return pos + cce_ggf_vtype_size[vt];
}

cce_status cce_gguf_list_meta(const char *path, cce_gguf_meta **meta, int *n, cce_err *err) {
    *meta = NULL;
    *n = 0;
    cce_mapped map;
    cce_status st = cce_map_file(path, &map, err);
    if (st) return st;
    gg_file gf;
    st = cce_ggf_parse(path, map.data, map.len, &gf, err);
    if (st) goto cleanup_map;
    if (gf.n_kv) {
        cce_gguf_meta *out = cce_alloc_zero(gf.n_kv, sizeof *out);
        if (!out) {
            st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory listing %zu metadata entries", path, gf.n_kv);
            goto cleanup_file;
        }
        for (size_t i = 0; i < gf.n_kv; i++) {
            const gg_kv *kv = &gf.kv[i];
            cce_gguf_meta *o = &out[i];
            cce_ggf_printable(kv->key, kv->key_len, o->key, sizeof o->key);
            if (kv->type != GG_ARRAY) {
                snprintf(o->type, sizeof o->type, "%s", cce_ggf_vtype_names[kv->type]);
                gg_render(&gf, kv->type, kv->pos, o->value, sizeof o->value);
                continue;
            }
            snprintf(o->type, sizeof o->type, "array[%s]", cce_ggf_vtype_names[kv->arr_type]);
            size_t k = (size_t)snprintf(o->value, sizeof o->value, "%llu items%s", (unsigned long long)kv->arr_n,
                                        kv->arr_n ? ": " : "");
            size_t pos = kv->pos;
            for (uint64_t j = 0; j < kv->arr_n && j < 4 && k < sizeof o->value; j++) {
                char one[140];
                pos = gg_render(&gf, kv->arr_type, pos, one, sizeof one);
                k += (size_t)snprintf(o->value + k, sizeof o->value - k, "%s%s", j ? ", " : "", one);
            }
            if (kv->arr_n > 4 && k < sizeof o->value) snprintf(o->value + k, sizeof o->value - k, ", ...");
        }
        *meta = out;
        *n = (int)gf.n_kv;
    }
cleanup_file:
    cce_ggf_free(&gf);
cleanup_map:
    cce_unmap(&map);
    return st;
}
