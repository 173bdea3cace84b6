/*
 * quant.c — storage types of weight matrices: block tables, decoding, dot products, encoding.
 * See include/quant.h for the block layouts and the contracts.
 *
 * These are the plain, obvious versions; every caller goes through the functions of quant.h,
 * so a faster kernel for a type replaces one function here and is checked against the same
 * tests (decode of known blocks, dot against dequantise-then-dot).
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
    [CCE_WT_Q4_0] = {"q4_0", 32, 18, 0},  [CCE_WT_Q4_1] = {"q4_1", 32, 20, 0},
    [CCE_WT_Q5_0] = {"q5_0", 32, 22, 0},  [CCE_WT_Q5_1] = {"q5_1", 32, 24, 0},
    [CCE_WT_Q4_K] = {"q4_k", 256, 144, 0}, [CCE_WT_Q5_K] = {"q5_k", 256, 176, 0},
    [CCE_WT_Q6_K] = {"q6_k", 256, 210, 0},
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

void cce_dequant(cce_wtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    switch (t) {
    case CCE_WT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case CCE_WT_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = cce_f16_to_f32(rd16(p + 2 * i));
        break;
    case CCE_WT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = cce_bf16_to_f32(rd16(p + 2 * i));
        break;
    case CCE_WT_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = p + b * 34;
            float d = cce_f16_to_f32(rd16(blk));
            for (int i = 0; i < 32; i++) dst[b * 32 + i] = d * (float)(int8_t)blk[2 + i];
        }
        break;
    default: memset(dst, 0, (size_t)n * sizeof(float)); break;   // unsupported: refused by loaders
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
    int blk = cce_wtype_block(t), chunk = blk > 256 ? blk : 256 / blk * blk;
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

cce_status cce_quantize(cce_wtype t, const float *src, void *dst, int64_t n, cce_err *err) {
    uint8_t *p = dst;
    if (!cce_wtype_row_bytes(t, n))
        return cce_err_set(err, CCE_EINVAL, "quantize: %lld elements are not whole %s blocks", (long long)n,
                           cce_wtype_name(t));
    switch (t) {
    case CCE_WT_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return CCE_OK;
    case CCE_WT_F16:
    case CCE_WT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = t == CCE_WT_F16 ? cce_f32_to_f16(src[i]) : cce_f32_to_bf16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return CCE_OK;
    case CCE_WT_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            const float *x = src + b * 32;
            uint8_t *blk = p + b * 34;
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
            float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            uint16_t h = cce_f32_to_f16(d);
            blk[0] = (uint8_t)h;
            blk[1] = (uint8_t)(h >> 8);
            for (int i = 0; i < 32; i++) blk[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
        }
        return CCE_OK;
    default:
        return cce_err_set(err, CCE_EUNSUPPORTED, "quantize: writing %s is not supported", cce_wtype_name(t));
    }
}
