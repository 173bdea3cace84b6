/*
 * quant.c — storage types of weight matrices: block tables, decoding, dot products, encoding.
 * See include/quant.h for the block layouts and the contracts.
 *
 * Decoding is one function per block type (qt_dec_*), each a direct transcription of the
 * formula in quant.h, written so that every product is formed in the order quant.h states
 * (tests compare an independent decoder bit for bit). The hot ones are written with GCC vector
 * extensions (8 float lanes; the compiler maps them to AVX2 / AVX-512 / SSE as the target has):
 * f16 through the exact bit-level conversion (exponent rebias, the subnormal case renormalised
 * by one float subtraction, inf / NaN kept), bf16 by a shift, q8_0 / q4_0 by widening integer
 * lanes; the rest are plain loops the compiler may vectorise.
 *
 * Dot products (the decoder's kernel: one row times one vector): f32 directly, q8_0 and q4_0
 * fused (each block's integer-weighted sum scaled once by d), every other type by decoding 256
 * elements into a stack buffer and a vector dot over it. Lanes are summed in float per block or
 * chunk and the chunks in double, so a type's dot equals dequantise-then-dot to float rounding
 * (tested against a double-precision reference).
 *
 * Encoders (cce_quantize) are plain round-to-nearest: good enough to write test files of every
 * type and Q8_0 GGUF exports, not a replacement for llama.cpp's error-minimising quantisers.
 * K-quant encoders pick each sub-block's scale (and min) from its range, then quantise those
 * sub-scales to 6 bits (8 for Q6_K) against one f16 super-scale, and finally quantise every
 * element against the decoded (rounded) scales, so rounding of the scales never costs more than
 * half a step of the element grid.
 */
#include <math.h>
#include <string.h>
#include "quant.h"
#include "util.h"

static const struct {
    const char *name;
    int block;
    size_t bytes;
    int supported;
} wt_table[CCE_WT_COUNT] = {
    [CCE_WT_F32] = {"f32", 1, 4, 1},      [CCE_WT_F16] = {"f16", 1, 2, 1},
    [CCE_WT_BF16] = {"bf16", 1, 2, 1},    [CCE_WT_Q8_0] = {"q8_0", 32, 34, 1},
    [CCE_WT_Q4_0] = {"q4_0", 32, 18, 1},  [CCE_WT_Q4_1] = {"q4_1", 32, 20, 1},
    [CCE_WT_Q5_0] = {"q5_0", 32, 22, 1},  [CCE_WT_Q5_1] = {"q5_1", 32, 24, 1},
    [CCE_WT_Q4_K] = {"q4_k", 256, 144, 1}, [CCE_WT_Q5_K] = {"q5_k", 256, 176, 1},
    [CCE_WT_Q6_K] = {"q6_k", 256, 210, 1},
};

static int wt_valid(cce_wtype t) { return (int)t >= 0 && t < CCE_WT_COUNT; }

const char *cce_wtype_name(cce_wtype t) { return wt_valid(t) ? wt_table[t].name : "?"; }
int cce_wtype_block(cce_wtype t) { return wt_valid(t) ? wt_table[t].block : 0; }
size_t cce_wtype_block_bytes(cce_wtype t) { return wt_valid(t) ? wt_table[t].bytes : 0; }
int cce_wtype_supported(cce_wtype t) { return wt_valid(t) && wt_table[t].supported; }

size_t cce_wtype_row_bytes(cce_wtype t, int64_t n) {
    if (!wt_valid(t) || n <= 0 || n % wt_table[t].block) return 0;
    size_t out;
    if (!cce_size_mul((size_t)(n / wt_table[t].block), wt_table[t].bytes, &out)) return 0;
    return out;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static float rdh(const uint8_t *p) { return cce_f16_to_f32(rd16(p)); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* ---- 8-lane vectors ---- */

typedef float qt_vf __attribute__((vector_size(32)));
typedef int32_t qt_vi __attribute__((vector_size(32)));
typedef uint16_t qt_vh __attribute__((vector_size(16)));
typedef int8_t qt_vc __attribute__((vector_size(8)));
typedef uint8_t qt_vb __attribute__((vector_size(8)));

static inline qt_vf qt_load(const float *p) { qt_vf v; memcpy(&v, p, sizeof v); return v; }
/* x in every lane, sign of zero kept (adding x to a zero vector would turn -0 into +0) */
static inline qt_vf qt_splat(float x) { return (qt_vf){x, x, x, x, x, x, x, x}; }
/* byte lanes to float lanes through int32 lanes (a direct conversion compiles to scalar code) */
static inline qt_vf qt_c2f(qt_vc q) { return __builtin_convertvector(__builtin_convertvector(q, qt_vi), qt_vf); }
static inline qt_vi qt_b2i(qt_vb q) { return __builtin_convertvector(q, qt_vi); }
static inline void qt_store(float *p, qt_vf v) { memcpy(p, &v, sizeof v); }
static inline float qt_hsum(qt_vf v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* 8 halves (little-endian at p) to floats, exactly (ryg's half_to_float). */
static inline qt_vf qt_f16x8(const uint8_t *p) {
    qt_vh h;
    memcpy(&h, p, sizeof h);
    qt_vi u = __builtin_convertvector(h, qt_vi);
    const qt_vi shifted_exp = (qt_vi){0} + (0x7c00 << 13);
    qt_vi o = (u & 0x7fff) << 13, e = o & shifted_exp;
    o += (127 - 15) << 23;
    qt_vi inf = e == shifted_exp, zero = e == 0;   // lanes -1 / 0
    o += inf & ((128 - 16) << 23);
    o += zero & (1 << 23);
    qt_vf f = (qt_vf)o - (qt_vf)(zero & (113 << 23));   // renormalise subnormals
    return (qt_vf)((qt_vi)f | ((u & 0x8000) << 16));
}

static inline qt_vf qt_bf16x8(const uint8_t *p) {
    qt_vh h;
    memcpy(&h, p, sizeof h);
    return (qt_vf)(__builtin_convertvector(h, qt_vi) << 16);
}

/* Σ a[i]·b[i] over n floats: 8-lane partial sums (n % 8 handled in scalar). */
static float qt_vdot(const float *a, const float *b, int n) {
    qt_vf s0 = {0}, s1 = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 += qt_load(a + i) * qt_load(b + i);
        s1 += qt_load(a + i + 8) * qt_load(b + i + 8);
    }
    if (i + 8 <= n) {
        s0 += qt_load(a + i) * qt_load(b + i);
        i += 8;
    }
    float s = qt_hsum(s0 + s1);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- decoders: one block of the type at b into y ---- */

static void qt_dec_q8_0(const uint8_t *b, float *y) {
    qt_vf d = qt_splat(rdh(b));
    for (int j = 0; j < 32; j += 8) {
        qt_vc q;
        memcpy(&q, b + 2 + j, sizeof q);
        qt_store(y + j, d * qt_c2f(q));
    }
}

/* Σ_j x_j·q_j of one q8_0 block times d. */
static inline float qt_dot_q8_0(const uint8_t *b, const float *x) {
    qt_vf s = {0};
    for (int j = 0; j < 32; j += 8) {
        qt_vc q;
        memcpy(&q, b + 2 + j, sizeof q);
        s += qt_c2f(q) * qt_load(x + j);
    }
    return rdh(b) * qt_hsum(s);
}

/* Σ_j x_j·(u_j − 8) of one q4_0 block times d. */
static inline float qt_dot_q4_0(const uint8_t *b, const float *x) {
    qt_vf s = {0};
    const qt_vf eight = qt_splat(8.0f);
    for (int j = 0; j < 16; j += 8) {
        qt_vb q;
        memcpy(&q, b + 2 + j, sizeof q);
        qt_vi qi = qt_b2i(q);
        qt_vf lo = __builtin_convertvector(qi & 15, qt_vf) - eight, hi = __builtin_convertvector(qi >> 4, qt_vf) - eight;
        s += lo * qt_load(x + j) + hi * qt_load(x + 16 + j);
    }
    return rdh(b) * qt_hsum(s);
}

/* q4_0 (has_m 0) and q4_1 (has_m 1) */
static void qt_dec_q4(const uint8_t *b, float *y, int has_m) {
    if (!has_m) {
        qt_vf d = qt_splat(rdh(b));
        const qt_vi eight = (qt_vi){0} + 8;
        for (int j = 0; j < 16; j += 8) {
            qt_vb q;
            memcpy(&q, b + 2 + j, sizeof q);
            qt_vi qi = qt_b2i(q), lo = (qi & 15) - eight, hi = (qi >> 4) - eight;
            qt_store(y + j, d * __builtin_convertvector(lo, qt_vf));
            qt_store(y + 16 + j, d * __builtin_convertvector(hi, qt_vf));
        }
        return;
    }
    float d = rdh(b), m = rdh(b + 2);
    const uint8_t *qs = b + (has_m ? 4 : 2);
    for (int j = 0; j < 16; j++) {
        int u0 = qs[j] & 15, u1 = qs[j] >> 4;
        if (has_m) {
            y[j] = d * (float)u0 + m;
            y[j + 16] = d * (float)u1 + m;
        } else {
            y[j] = d * (float)(u0 - 8);
            y[j + 16] = d * (float)(u1 - 8);
        }
    }
}

/* q5_0 (has_m 0) and q5_1 (has_m 1) */
static void qt_dec_q5(const uint8_t *b, float *y, int has_m) {
    float d = rdh(b), m = has_m ? rdh(b + 2) : 0.0f;
    uint32_t qh = rd32(b + (has_m ? 4 : 2));
    const uint8_t *qs = b + (has_m ? 8 : 6);
    for (int j = 0; j < 16; j++) {
        int v0 = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        int v1 = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        if (has_m) {
            y[j] = d * (float)v0 + m;
            y[j + 16] = d * (float)v1 + m;
        } else {
            y[j] = d * (float)(v0 - 16);
            y[j + 16] = d * (float)(v1 - 16);
        }
    }
}

/* The 6-bit scale and min of sub-block s of a q4_k / q5_k super-block (ggml's get_scale_min_k4). */
static void qt_scale_min_k4(const uint8_t *sc, int s, int *scale, int *min) {
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 15) | (sc[s - 4] >> 6) << 4;
        *min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
}

/* q4_k (five 0) and q5_k (five 1): 8 lanes of l at a time */
static void qt_dec_k45(const uint8_t *b, float *y, int five) {
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *scales = b + 4, *qh = five ? b + 16 : NULL, *qs = b + (five ? 48 : 16);
    for (int c = 0; c < 4; c++)
        for (int h = 0; h < 2; h++) {
            int sc, mn;
            qt_scale_min_k4(scales, 2 * c + h, &sc, &mn);
            qt_vf dl = qt_splat(d * (float)sc), ml = qt_splat(dmin * (float)mn);
            float *yy = y + 64 * c + 32 * h;
            for (int l = 0; l < 32; l += 8) {
                qt_vb q;
                memcpy(&q, qs + 32 * c + l, sizeof q);
                qt_vi u = (qt_b2i(q) >> (4 * h)) & 15;
                if (five) {
                    qt_vb hb;
                    memcpy(&hb, qh + l, sizeof hb);
                    u |= ((qt_b2i(hb) >> (2 * c + h)) & 1) << 4;
                }
                qt_store(yy + l, dl * __builtin_convertvector(u, qt_vf) - ml);
            }
        }
}

static void qt_dec_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rdh(b + 208);
    const qt_vi off = (qt_vi){0} + 32;
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l += 8) {   /* 8 lanes inside one 16-element sub-block */
                int j = 128 * g + 32 * k + l;
                qt_vb lq, hq;
                memcpy(&lq, ql + 64 * g + 32 * (k % 2) + l, sizeof lq);
                memcpy(&hq, qh + 32 * g + l, sizeof hq);
                qt_vi lo = (qt_b2i(lq) >> (4 * (k / 2))) & 15, hi = (qt_b2i(hq) >> (2 * k)) & 3;
                qt_vf dl = qt_splat(d * (float)sc[j / 16]);
                qt_store(y + j, dl * __builtin_convertvector((lo | hi << 4) - off, qt_vf));
            }
}

void cce_dequant(cce_wtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int blk = cce_wtype_block(t);
    size_t bb = cce_wtype_block_bytes(t);
    if (blk <= 0 || n % blk) {   // a caller bug (shapes are validated by the loaders): never read
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    int64_t nb = n / blk;
    switch (t) {
    case CCE_WT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case CCE_WT_F16: {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) qt_store(dst + i, qt_f16x8(p + 2 * i));
        for (; i < n; i++) dst[i] = cce_f16_to_f32(rd16(p + 2 * i));
        break;
    }
    case CCE_WT_BF16: {
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) qt_store(dst + i, qt_bf16x8(p + 2 * i));
        for (; i < n; i++) dst[i] = cce_bf16_to_f32(rd16(p + 2 * i));
        break;
    }
    case CCE_WT_Q8_0: for (int64_t b = 0; b < nb; b++) qt_dec_q8_0(p + b * bb, dst + b * 32); break;
    case CCE_WT_Q4_0: for (int64_t b = 0; b < nb; b++) qt_dec_q4(p + b * bb, dst + b * 32, 0); break;
    case CCE_WT_Q4_1: for (int64_t b = 0; b < nb; b++) qt_dec_q4(p + b * bb, dst + b * 32, 1); break;
    case CCE_WT_Q5_0: for (int64_t b = 0; b < nb; b++) qt_dec_q5(p + b * bb, dst + b * 32, 0); break;
    case CCE_WT_Q5_1: for (int64_t b = 0; b < nb; b++) qt_dec_q5(p + b * bb, dst + b * 32, 1); break;
    case CCE_WT_Q4_K: for (int64_t b = 0; b < nb; b++) qt_dec_k45(p + b * bb, dst + b * 256, 0); break;
    case CCE_WT_Q5_K: for (int64_t b = 0; b < nb; b++) qt_dec_k45(p + b * bb, dst + b * 256, 1); break;
    case CCE_WT_Q6_K: for (int64_t b = 0; b < nb; b++) qt_dec_q6_k(p + b * bb, dst + b * 256); break;
    default: memset(dst, 0, (size_t)n * sizeof(float)); break;
    }
}

void cce_dequant_rows(cce_wtype t, const void *src, int rows, int n, float *dst) {
    size_t rb = cce_wtype_row_bytes(t, n);
    for (int r = 0; r < rows; r++) cce_dequant(t, (const uint8_t *)src + (size_t)r * rb, dst + (size_t)r * n, n);
}

float cce_wtype_dot(cce_wtype t, const void *row, const float *x, int n) {
    float buf[256];
    const uint8_t *p = row;
    double s = 0;
    if (t == CCE_WT_F32) {
        const float *w = row;
        for (int i0 = 0; i0 < n; i0 += 256) s += qt_vdot(w + i0, x + i0, n - i0 < 256 ? n - i0 : 256);
        return (float)s;
    }
    if (t == CCE_WT_Q8_0 || t == CCE_WT_Q4_0) {   /* fused: 8 blocks (256 elements) per float partial sum */
        size_t bb = cce_wtype_block_bytes(t);
        for (int b0 = 0; b0 < n / 32; b0 += 8) {
            float acc = 0;
            for (int b = b0; b < b0 + 8 && b < n / 32; b++)
                acc += t == CCE_WT_Q8_0 ? qt_dot_q8_0(p + (size_t)b * bb, x + 32 * b) : qt_dot_q4_0(p + (size_t)b * bb, x + 32 * b);
            s += acc;
        }
        return (float)s;
    }
    /* 256 is a multiple of every block size (1, 32, 256) */
    const int chunk = 256;
    size_t cb = cce_wtype_row_bytes(t, chunk);
    for (int i0 = 0; i0 < n; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        cce_dequant(t, p + (size_t)(i0 / chunk) * cb, buf, k);
        s += qt_vdot(buf, x + i0, k);
    }
    return (float)s;
}

/* ---- encoders ---- */

static int qt_clampi(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* q4_0 / q5_0: d = (the value of largest magnitude) / -half, as ggml's reference, so that value
 * lands exactly on the grid's end; u = round(x/d) + half clamped to the grid. */
static void qt_enc_sym(const float *x, uint8_t *b, int five) {
    int half = five ? 16 : 8, top = 2 * half - 1;
    float amax = 0, mx = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); mx = x[j]; }
    uint16_t dh = cce_f32_to_f16(mx / (float)-half);
    float d = cce_f16_to_f32(dh), id = d != 0 ? 1.0f / d : 0.0f;
    wr16(b, dh);
    uint8_t u[32];
    for (int j = 0; j < 32; j++) u[j] = (uint8_t)qt_clampi(lrintf(x[j] * id) + half, 0, top);
    uint8_t *qs = b + (five ? 6 : 2);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((u[j] & 15) | (u[j + 16] & 15) << 4);
        qh |= (uint32_t)(u[j] >> 4) << j | (uint32_t)(u[j + 16] >> 4) << (j + 16);
    }
    if (five) for (int k = 0; k < 4; k++) b[2 + k] = (uint8_t)(qh >> (8 * k));
}

/* q4_1 / q5_1: m = min, d = (max - min) / top; u = round((x - m) / d). */
static void qt_enc_affine(const float *x, uint8_t *b, int five) {
    int top = five ? 31 : 15;
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) { lo = fminf(lo, x[j]); hi = fmaxf(hi, x[j]); }
    uint16_t dh = cce_f32_to_f16((hi - lo) / (float)top), mh = cce_f32_to_f16(lo);
    float d = cce_f16_to_f32(dh), m = cce_f16_to_f32(mh), id = d != 0 ? 1.0f / d : 0.0f;
    wr16(b, dh);
    wr16(b + 2, mh);
    uint8_t u[32];
    for (int j = 0; j < 32; j++) u[j] = (uint8_t)qt_clampi(lrintf((x[j] - m) * id), 0, top);
    uint8_t *qs = b + (five ? 8 : 4);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((u[j] & 15) | (u[j + 16] & 15) << 4);
        qh |= (uint32_t)(u[j] >> 4) << j | (uint32_t)(u[j + 16] >> 4) << (j + 16);
    }
    if (five) for (int k = 0; k < 4; k++) b[4 + k] = (uint8_t)(qh >> (8 * k));
}

/* q4_k / q5_k: sub-block s has x ≈ scale_s·u − min_s with min_s = −min(0, min x) ≥ 0 and
 * scale_s = (max x + min_s) / top; the sub-scales are then 6-bit multiples of d = max scale / 63
 * and dmin = max min / 63. */
static void qt_enc_k45(const float *x, uint8_t *b, int five) {
    int top = five ? 31 : 15;
    float scale[8], mins[8], smax = 0, mmax = 0;
    for (int s = 0; s < 8; s++) {
        float lo = 0, hi = 0;
        for (int l = 0; l < 32; l++) { lo = fminf(lo, x[32 * s + l]); hi = fmaxf(hi, x[32 * s + l]); }
        mins[s] = -lo;
        scale[s] = (hi - lo) / (float)top;
        smax = fmaxf(smax, scale[s]);
        mmax = fmaxf(mmax, mins[s]);
    }
    uint16_t dh = cce_f32_to_f16(smax / 63.0f), mh = cce_f32_to_f16(mmax / 63.0f);
    float d = cce_f16_to_f32(dh), dmin = cce_f16_to_f32(mh);
    wr16(b, dh);
    wr16(b + 2, mh);
    int sc[8], mn[8];
    for (int s = 0; s < 8; s++) {
        /* round the scale up, so the whole range still fits the grid */
        sc[s] = d > 0 ? qt_clampi((long)ceilf(scale[s] / d), 0, 63) : 0;
        mn[s] = dmin > 0 ? qt_clampi(lrintf(mins[s] / dmin), 0, 63) : 0;
    }
    uint8_t *scales = b + 4, *qh = five ? b + 16 : NULL, *qs = b + (five ? 48 : 16);
    for (int s = 0; s < 4; s++) {
        scales[s] = (uint8_t)((sc[s] & 63) | (sc[s + 4] >> 4) << 6);
        scales[s + 4] = (uint8_t)((mn[s] & 63) | (mn[s + 4] >> 4) << 6);
        scales[s + 8] = (uint8_t)((sc[s + 4] & 15) | (mn[s + 4] & 15) << 4);
    }
    memset(qs, 0, 128);
    if (qh) memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int h = 0; h < 2; h++) {
            int s = 2 * c + h;
            float dl = d * (float)sc[s], ml = dmin * (float)mn[s], idl = dl != 0 ? 1.0f / dl : 0.0f;
            for (int l = 0; l < 32; l++) {
                int u = qt_clampi(lrintf((x[64 * c + 32 * h + l] + ml) * idl), 0, top);
                qs[32 * c + l] |= (uint8_t)((u & 15) << (4 * h));
                if (qh) qh[l] |= (uint8_t)((u >> 4) << (2 * c + h));
            }
        }
}

/* q6_k: sub-block s of 16 has scale_s = max|x| / 31 (values −31..31 of the −32..31 grid),
 * quantised to int8 multiples of d = max scale / 127. */
static void qt_enc_q6_k(const float *x, uint8_t *b) {
    float scale[16], smax = 0;
    for (int s = 0; s < 16; s++) {
        float a = 0;
        for (int l = 0; l < 16; l++) a = fmaxf(a, fabsf(x[16 * s + l]));
        scale[s] = a / 31.0f;
        smax = fmaxf(smax, scale[s]);
    }
    uint16_t dh = cce_f32_to_f16(smax / 127.0f);
    float d = cce_f16_to_f32(dh);
    uint8_t *ql = b, *qh = b + 128;
    int8_t *sc = (int8_t *)(b + 192);
    wr16(b + 208, dh);
    for (int s = 0; s < 16; s++) sc[s] = (int8_t)(d > 0 ? qt_clampi((long)ceilf(scale[s] / d), 0, 127) : 0);
    memset(ql, 0, 128);
    memset(qh, 0, 64);
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int j = 128 * g + 32 * k + l;
                float dl = d * (float)sc[j / 16], idl = dl != 0 ? 1.0f / dl : 0.0f;
                int v = qt_clampi(lrintf(x[j] * idl), -32, 31) + 32;
                ql[64 * g + 32 * (k % 2) + l] |= (uint8_t)((v & 15) << (4 * (k / 2)));
                qh[32 * g + l] |= (uint8_t)((v >> 4) << (2 * k));
            }
}

cce_status cce_quantize(cce_wtype t, const float *src, void *dst, int64_t n, cce_err *err) {
    uint8_t *p = dst;
    if (!cce_wtype_row_bytes(t, n))
        return cce_err_set(err, CCE_EINVAL, "quantize: %lld elements are not whole %s blocks", (long long)n,
                           cce_wtype_name(t));
    int blk = cce_wtype_block(t);
    size_t bb = cce_wtype_block_bytes(t);
    int64_t nb = n / blk;
    switch (t) {
    case CCE_WT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return CCE_OK;
    case CCE_WT_F16:
    case CCE_WT_BF16:
        for (int64_t i = 0; i < n; i++) wr16(p + 2 * i, t == CCE_WT_F16 ? cce_f32_to_f16(src[i]) : cce_f32_to_bf16(src[i]));
        return CCE_OK;
    case CCE_WT_Q8_0:
        for (int64_t b = 0; b < nb; b++) {
            const float *x = src + b * 32;
            uint8_t *blk8 = p + b * 34;
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
            float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            wr16(blk8, cce_f32_to_f16(d));
            for (int i = 0; i < 32; i++) blk8[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
        }
        return CCE_OK;
    case CCE_WT_Q4_0: for (int64_t b = 0; b < nb; b++) qt_enc_sym(src + b * 32, p + b * bb, 0); return CCE_OK;
    case CCE_WT_Q5_0: for (int64_t b = 0; b < nb; b++) qt_enc_sym(src + b * 32, p + b * bb, 1); return CCE_OK;
    case CCE_WT_Q4_1: for (int64_t b = 0; b < nb; b++) qt_enc_affine(src + b * 32, p + b * bb, 0); return CCE_OK;
    case CCE_WT_Q5_1: for (int64_t b = 0; b < nb; b++) qt_enc_affine(src + b * 32, p + b * bb, 1); return CCE_OK;
    case CCE_WT_Q4_K: for (int64_t b = 0; b < nb; b++) qt_enc_k45(src + b * 256, p + b * bb, 0); return CCE_OK;
    case CCE_WT_Q5_K: for (int64_t b = 0; b < nb; b++) qt_enc_k45(src + b * 256, p + b * bb, 1); return CCE_OK;
    case CCE_WT_Q6_K: for (int64_t b = 0; b < nb; b++) qt_enc_q6_k(src + b * 256, p + b * bb); return CCE_OK;
    default:
        return cce_err_set(err, CCE_EUNSUPPORTED, "quantize: writing %s is not supported", cce_wtype_name(t));
    }
}
