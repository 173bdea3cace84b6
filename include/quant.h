/*
 * quant.h — storage types of weight matrices, and the kernels that read them.
 *
 * A weight matrix stays in the type its file stores it in (f32, f16, bf16, or one of ggml's
 * block-quantised types), inside the read-only mapping; the forward pass reads it through these
 * kernels and the compression math converts one matrix at a time to f32 (cce_linear_dense in
 * model.h). A row of n elements is n / block blocks of block_bytes bytes; rows are packed
 * (row stride = cce_wtype_row_bytes(t, n)). Block layouts are ggml's (little-endian):
 *   f32 / f16 / bf16   one element per "block" of 4 / 2 / 2 bytes
 *   q8_0  32 elements  {f16 d; int8 q[32]}                    x = d·q
 *   q4_0  32 elements  {f16 d; u8 q[16]}                      x = d·(nibble − 8); element j < 16 in
 *                                                             the low nibble of q[j], j ≥ 16 in the high nibble of q[j−16]
 *   q4_1  32 elements  {f16 d, m; u8 q[16]}                   x = d·nibble + m
 *   q5_0  32 elements  {f16 d; u32 qh; u8 q[16]}              x = d·((nibble | bit j of qh << 4) − 16)
 *   q5_1  32 elements  {f16 d, m; u32 qh; u8 q[16]}           x = d·(nibble | bit << 4) + m
 *   q4_k / q5_k / q6_k 256 elements in super-blocks with 6-bit (K) or 8-bit (Q6_K) sub-block
 *                     scales; see engine/quant.c for the exact layouts.
 * Which types decode is cce_wtype_supported(); the others are refused by the loaders with a
 * one-line message naming the tensor and its type.
 *
 * Thread-safety: all functions are pure (no state).
 */
#ifndef CCE_QUANT_H
#define CCE_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

typedef enum {
    CCE_WT_F32 = 0,
    CCE_WT_F16,
    CCE_WT_BF16,
    CCE_WT_Q8_0,
    CCE_WT_Q4_0,
    CCE_WT_Q4_1,
    CCE_WT_Q5_0,
    CCE_WT_Q5_1,
    CCE_WT_Q4_K,
    CCE_WT_Q5_K,
    CCE_WT_Q6_K,
    CCE_WT_COUNT
} cce_wtype;

/* "f32", "f16", "bf16", "q8_0", "q4_0", ... ; "?" when out of range. */
const char *cce_wtype_name(cce_wtype t);
/* Elements per block (1, 32 or 256) and bytes per block; 0 when out of range. */
int cce_wtype_block(cce_wtype t);
size_t cce_wtype_block_bytes(cce_wtype t);
/* Bytes of n elements of type t; 0 when n is not a positive multiple of the block size or the
 * size overflows. */
size_t cce_wtype_row_bytes(cce_wtype t, int64_t n);
/* 1 when rows of type t can be decoded (cce_dequant) and used by the forward pass. */
int cce_wtype_supported(cce_wtype t);

/* dst (n) = the n elements stored at src; n a multiple of the block size, t supported. */
void cce_dequant(cce_wtype t, const void *src, float *dst, int64_t n);

/* dst (rows, n) = rows of n elements starting at src (row stride cce_wtype_row_bytes(t, n)). */
void cce_dequant_rows(cce_wtype t, const void *src, int rows, int n, float *dst);

/* Σ_j row[j]·x[j] over n stored elements and n floats (n a multiple of the block size). */
float cce_wtype_dot(cce_wtype t, const void *row, const float *x, int n);

/* Encode n floats as type t into dst (cce_wtype_row_bytes(t, n) bytes): round to nearest for
 * f16/bf16, ggml's reference rounding for q8_0 (d = max|x|/127, q = round(x/d)). Other types:
 * CCE_EUNSUPPORTED. */
cce_status cce_quantize(cce_wtype t, const float *src, void *dst, int64_t n, cce_err *err);

#endif
