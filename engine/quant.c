/*
 * quant.c — storage types of weight matrices: block tables, decoding, dot products, encoding.
 * See include/quant.h for the block layouts and the contracts.
 *
 * Decoding is one function per block type (qt_dec_*), each a direct transcription of the
 * formula in quant.h, written so that every product is formed in the order quant.h states
 * (tests compare an independent decoder bit for bit). cce_wtype_dot decodes 256 elements at a
 * time into a stack buffer and forms the dot product in float per chunk, summed in double: one
 * path for every type, so a type's dot is exactly as correct as its decoder (tested against
 * dequantise-then-dot). A faster kernel for a type replaces its branch here and is checked by
 * the same tests.
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

/* ---- decoders: one block of the type at b into y ---- */

static void qt_dec_q8_0(const uint8_t *b, float *y) {
    float d = rdh(b);
    for (int j = 0; j < 32; j++) y[j] = d * (float)(int8_t)b[2 + j];
}

/* q4_0 (has_m 0) and q4_1 (has_m 1) */
static void qt_dec_q4(const uint8_t *b, float *y, int has_m) {
    float d = rdh(b), m = has_m ? rdh(b + 2) : 0.0f;
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

/* q4_k (five 0) and q5_k (five 1) */
static void qt_dec_k45(const uint8_t *b, float *y, int five) {
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *scales = b + 4, *qh = five ? b + 16 : NULL, *qs = b + (five ? 48 : 16);
    for (int c = 0; c < 4; c++)
        for (int h = 0; h < 2; h++) {
            int sc, mn;
            qt_scale_min_k4(scales, 2 * c + h, &sc, &mn);
            float dl = d * (float)sc, ml = dmin * (float)mn;
            float *yy = y + 64 * c + 32 * h;
            for (int l = 0; l < 32; l++) {
                int u = (qs[32 * c + l] >> (4 * h)) & 15;
                if (five) u |= ((qh[l] >> (2 * c + h)) & 1) << 4;
                yy[l] = dl * (float)u - ml;
            }
        }
}

static void qt_dec_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rdh(b + 208);
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int j = 128 * g + 32 * k + l;
                int lo = (ql[64 * g + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
                int hi = (qh[32 * g + l] >> (2 * k)) & 3;
                float dl = d * (float)sc[j / 16];
                y[j] = dl * (float)((lo | hi << 4) - 32);
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
    case CCE_WT_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = cce_f16_to_f32(rd16(p + 2 * i));
        break;
    case CCE_WT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = cce_bf16_to_f32(rd16(p + 2 * i));
        break;
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
    double s = 0;
    if (t == CCE_WT_F32) {
        const float *w = row;
        float acc = 0;
        for (int i = 0; i < n; i++) acc += w[i] * x[i];
        return acc;
    }
    /* 256 is a multiple of every block size (1, 32, 256) */
    const int chunk = 256;
    size_t cb = cce_wtype_row_bytes(t, chunk);
    for (int i0 = 0; i0 < n; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        cce_dequant(t, (const uint8_t *)row + (size_t)(i0 / chunk) * cb, buf, k);
        float acc = 0;
        for (int i = 0; i < k; i++) acc += buf[i] * x[i0 + i];
        s += acc;
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
