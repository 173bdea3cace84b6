/*
 * quant.h — storage types of weight matrices, and the kernels that read them.
 *
 * A weight matrix stays in the type its file stores it in (f32, f16, bf16, or one of ggml's
 * block-quantised types), inside the read-only mapping; the forward pass reads it through these
 * kernels and the compression math converts one matrix at a time to f32 (cce_linear_dense in
 * model.h). A row of n elements is n / block blocks of block_bytes bytes; rows are packed
 * (row stride = cce_wtype_row_bytes(t, n)). Block layouts are ggml's (little-endian; f16 = IEEE
 * half; "nibble" = 4-bit unsigned; element j of a block counts from 0):
 *   f32 / f16 / bf16   one element per "block" of 4 / 2 / 2 bytes
 *   q8_0  32 el, 34 B  {f16 d; i8 q[32]}                 x_j = d·q_j
 *   q4_0  32 el, 18 B  {f16 d; u8 qs[16]}                x_j = d·(u_j − 8)
 *   q4_1  32 el, 20 B  {f16 d, m; u8 qs[16]}             x_j = d·u_j + m
 *                      u_j = low nibble of qs[j] for j < 16, high nibble of qs[j−16] for j ≥ 16
 *   q5_0  32 el, 22 B  {f16 d; u32 qh; u8 qs[16]}        x_j = d·(v_j − 16)
 *   q5_1  32 el, 24 B  {f16 d, m; u32 qh; u8 qs[16]}     x_j = d·v_j + m
 *                      v_j = u_j | (bit j of qh) << 4   (qh little-endian)
 *   q4_k  256 el, 144 B {f16 d, dmin; u8 scales[12]; u8 qs[128]}
 *         eight sub-blocks s of 32 with 6-bit scale sc_s and min mn_s:
 *           s < 4: sc_s = scales[s] & 63, mn_s = scales[s+4] & 63;
 *           s ≥ 4: sc_s = (scales[s+4] & 15) | (scales[s−4] >> 6) << 4,
 *                  mn_s = (scales[s+4] >> 4) | (scales[s] >> 6) << 4   (ggml's get_scale_min_k4)
 *         element j = 64c + 32h + l (c 0..3, h 0..1, l 0..31) is in sub-block s = 2c + h:
 *           u = nibble h (0 low, 1 high) of qs[32c + l];  x = (d·sc_s)·u − (dmin·mn_s)
 *   q5_k  256 el, 176 B {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
 *         as q4_k with u | (bit 2c + h of qh[l]) << 4 as the 5-bit value
 *   q6_k  256 el, 210 B {u8 ql[128]; u8 qh[64]; i8 sc[16]; f16 d}
 *         element j = 128g + 32k + l (g 0..1, k 0..3, l 0..31): sixteen sub-blocks of 16, sc[j/16];
 *           lo = nibble (k / 2) of ql[64g + 32(k % 2) + l], hi = bits 2k, 2k+1 of qh[32g + l];
 *           x = (d·sc[j/16])·((lo | hi << 4) − 32)
 * Products are formed in float exactly in the order written (no fused multiply-add on the
 * reference compiler), so an independent decoder of these formulas agrees bit for bit.
 * Every listed type decodes (cce_wtype_supported); the loaders refuse ggml types outside this
 * list with a one-line message naming the tensor and its type.
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

/* Encode n floats as type t into dst (cce_wtype_row_bytes(t, n) bytes), n a positive multiple of
 * the block size (else CCE_EINVAL): round to nearest for f16/bf16, ggml's reference rounding for
 * q8_0 (d = max|x|/127, q = round(x/d)); the other block types with plain round-to-nearest
 * encoders (not ggml's error-minimising search): q4_0/q5_0 d = x_absmax/−8 (/−16) as ggml, q4_1/q5_1
 * d = (max − min)/15 (/31), m = min; k-quants: per sub-block range scaled by 6-bit (8-bit for
 * q6_k) sub-scales of one f16 super-scale. Every value decodes within about half a quantisation
 * step of the input (tested), which is all a test or a writer of these types needs. */
cce_status cce_quantize(cce_wtype t, const float *src, void *dst, int64_t n, cce_err *err);

#endif
