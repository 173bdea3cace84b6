/*
 * test_quant.c — the storage-type kernels of quant.h against an independent slow decoder.
 *
 *  - the block table agrees with ggml's published sizes; row sizes are overflow-checked;
 *  - hand-made blocks decode to hand-computed values (both decoders, so a misreading of the
 *    layout shared by the engine and tests/unit/quant_ref.h would still be caught);
 *  - random blocks of every type (random bytes, finite random scales) decode bit-identically
 *    with cce_dequant and with quant_ref.h's bit-by-bit decoder;
 *  - cce_wtype_dot equals dequantise-then-dot (in double) to float rounding, for row lengths
 *    that are and are not multiples of the 256-element chunk;
 *  - cce_quantize of random data decodes within half a quantisation step (plus the rounding of
 *    the block scales), refuses partial blocks, and is deterministic.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "harness.h"
#include "quant.h"
#include "quant_ref.h"
#include "util.h"

/* our storage types and the ggml ids quant_ref.h decodes */
static const struct { cce_wtype t; int ggml; } TYPES[] = {
    {CCE_WT_F32, QR_F32},   {CCE_WT_F16, QR_F16},   {CCE_WT_BF16, QR_BF16}, {CCE_WT_Q8_0, QR_Q8_0},
    {CCE_WT_Q4_0, QR_Q4_0}, {CCE_WT_Q4_1, QR_Q4_1}, {CCE_WT_Q5_0, QR_Q5_0}, {CCE_WT_Q5_1, QR_Q5_1},
    {CCE_WT_Q4_K, QR_Q4_K}, {CCE_WT_Q5_K, QR_Q5_K}, {CCE_WT_Q6_K, QR_Q6_K},
};
#define N_TYPES ((int)(sizeof TYPES / sizeof TYPES[0]))

/* byte offsets of the f16 scale fields of each block type (to keep random blocks finite) */
static int scale_fields(int ggml, int off[2]) {
    switch (ggml) {
    case QR_Q8_0: case QR_Q4_0: case QR_Q5_0: off[0] = 0; return 1;
    case QR_Q4_1: case QR_Q5_1: case QR_Q4_K: case QR_Q5_K: off[0] = 0; off[1] = 2; return 2;
    case QR_Q6_K: off[0] = 208; return 1;
    default: return 0;
    }
}

/* A random finite half in ±[2^-6, 2^4): exponent field 9..18. */
static uint16_t rand_half(cce_rng *r) {
    uint16_t sign = (uint16_t)(cce_rng_u64(r) & 1) << 15, e = (uint16_t)(9 + cce_rng_u64(r) % 10);
    return (uint16_t)(sign | e << 10 | (cce_rng_u64(r) & 1023));
}

/* n random blocks of type (index k of TYPES) into buf: random bytes, scales finite; f32/f16/bf16
 * elements finite too. */
static void random_blocks(int k, cce_rng *r, uint8_t *buf, int n_blocks) {
    int bb = qr_block_bytes(TYPES[k].ggml), off[2];
    for (int i = 0; i < n_blocks * bb; i++) buf[i] = (uint8_t)cce_rng_u64(r);
    int nf = scale_fields(TYPES[k].ggml, off);
    for (int b = 0; b < n_blocks; b++) {
        uint8_t *p = buf + (size_t)b * bb;
        for (int f = 0; f < nf; f++) { uint16_t h = rand_half(r); memcpy(p + off[f], &h, 2); }
        if (TYPES[k].ggml == QR_F16) { uint16_t h = rand_half(r); memcpy(p, &h, 2); }
        if (TYPES[k].ggml == QR_BF16) { uint16_t h = (uint16_t)(0x3c00 + cce_rng_u64(r) % 0x600); memcpy(p, &h, 2); }
        if (TYPES[k].ggml == QR_F32) { float f = cce_rng_normal(r); memcpy(p, &f, 4); }
    }
}

static int same_bits(const float *a, const float *b, long n, long *at) {
    for (long i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) { *at = i; return 0; }
    return 1;
}

TEST(block_table) {
    for (int k = 0; k < N_TYPES; k++) {
        cce_wtype t = TYPES[k].t;
        CHECK_MSG(cce_wtype_supported(t), "%s not supported", cce_wtype_name(t));
        CHECK_MSG(cce_wtype_block(t) == qr_block(TYPES[k].ggml) && (int)cce_wtype_block_bytes(t) == qr_block_bytes(TYPES[k].ggml),
                  "%s: block %d x %zu bytes, ggml says %d x %d", cce_wtype_name(t), cce_wtype_block(t),
                  cce_wtype_block_bytes(t), qr_block(TYPES[k].ggml), qr_block_bytes(TYPES[k].ggml));
        int blk = cce_wtype_block(t);
        CHECK_EQ_INT(cce_wtype_row_bytes(t, 3 * 256), (size_t)(3 * 256 / blk) * cce_wtype_block_bytes(t));
        CHECK_EQ_INT(cce_wtype_row_bytes(t, 0), 0);
        CHECK_EQ_INT(cce_wtype_row_bytes(t, -256), 0);
        if (blk > 1) CHECK_EQ_INT(cce_wtype_row_bytes(t, blk + 1), 0);
    }
    CHECK_EQ_INT(cce_wtype_row_bytes(CCE_WT_F32, (int64_t)1 << 62), 0);   // 2^64 bytes: overflow
    CHECK_EQ_INT(cce_wtype_row_bytes(CCE_WT_COUNT, 256), 0);
    CHECK(!cce_wtype_supported(CCE_WT_COUNT));
    CHECK_STR(cce_wtype_name(CCE_WT_Q4_K), "q4_k");
    CHECK_STR(cce_wtype_name((cce_wtype)99), "?");
}

/* Hand-made blocks: expected values read off the layouts by hand. */
TEST(known_blocks) {
    uint8_t b[256];
    float y[256], z[256];
    /* Q4_0, d = 0.5: qs[0] = 0x1f -> x0 = 0.5*(15-8), x16 = 0.5*(1-8) */
    memset(b, 0, sizeof b);
    b[1] = 0x38; b[2] = 0x1f;
    cce_dequant(CCE_WT_Q4_0, b, y, 32);
    qr_decode(QR_Q4_0, b, z, 32);
    CHECK(y[0] == 3.5f && y[16] == -3.5f && y[1] == -4.0f && z[0] == 3.5f && z[16] == -3.5f);
    /* Q4_1, d = 2, m = -1: qs[3] = 0x52 -> x3 = 2*2-1, x19 = 2*5-1 */
    memset(b, 0, sizeof b);
    b[1] = 0x40; b[3] = 0xbc; b[4 + 3] = 0x52;
    cce_dequant(CCE_WT_Q4_1, b, y, 32);
    CHECK(y[3] == 3.0f && y[19] == 9.0f && y[0] == -1.0f);
    /* Q5_0, d = 1: qh bits 0 and 17 set; qs[1] = 0x0f -> x0 = 16-16, x1 = 15-16, x17 = (0|16)-16 */
    memset(b, 0, sizeof b);
    b[1] = 0x3c; b[2] = 0x01; b[4] = 0x02; b[6 + 1] = 0x0f;
    cce_dequant(CCE_WT_Q5_0, b, y, 32);
    qr_decode(QR_Q5_0, b, z, 32);
    CHECK(y[0] == 0.0f && y[1] == -1.0f && y[17] == 0.0f && y[16] == -16.0f && z[1] == -1.0f && z[17] == 0.0f);
    /* Q5_1, d = 0.25, m = 1: qh bit 31 -> x31 = 0.25*16+1 */
    memset(b, 0, sizeof b);
    b[1] = 0x34; b[3] = 0x3c; b[7] = 0x80;
    cce_dequant(CCE_WT_Q5_1, b, y, 32);
    CHECK(y[31] == 5.0f && y[30] == 1.0f);
    /* Q4_K, d = dmin = 1: sub-block 0 scale 2 min 1, qs[0] low nibble 3 -> x0 = 2*3-1;
     * sub-block 5: scales[9] = 0x21 (scale low 1, min low 2), scales[1] top bits 01 -> scale 17,
     * min 2; element 160 = 64*2+32: qs[64] high nibble 4 -> 17*4-2 */
    memset(b, 0, sizeof b);
    b[1] = 0x3c; b[3] = 0x3c;
    b[4 + 0] = 2; b[4 + 4] = 1; b[4 + 9] = 0x21; b[4 + 1] = 0x40; b[16 + 0] = 0x03; b[16 + 64] = 0x40;
    cce_dequant(CCE_WT_Q4_K, b, y, 256);
    qr_decode(QR_Q4_K, b, z, 256);
    CHECK_MSG(y[0] == 5.0f && y[160] == 66.0f && y[1] == -1.0f && z[0] == 5.0f && z[160] == 66.0f,
              "q4_k: %g %g %g / ref %g %g", y[0], y[160], y[1], z[0], z[160]);
    /* Q5_K: the same scales; qh[0] bit 0 -> x0 = 2*(3|16)-1; qh[0] bit 5 -> element 160 gets +16 */
    memset(b, 0, sizeof b);
    b[1] = 0x3c; b[3] = 0x3c;
    b[4 + 0] = 2; b[4 + 4] = 1; b[4 + 9] = 0x21; b[4 + 1] = 0x40; b[16 + 0] = 0x21; b[48 + 0] = 0x03; b[48 + 64] = 0x40;
    cce_dequant(CCE_WT_Q5_K, b, y, 256);
    qr_decode(QR_Q5_K, b, z, 256);
    CHECK_MSG(y[0] == 37.0f && y[160] == 17.0f * 20 - 2 && z[0] == 37.0f && z[160] == 338.0f, "q5_k: %g %g", y[0], y[160]);
    /* Q6_K, d = 1: sc[0] = 2, ql[0] low 5, qh[0] bits 0-1 = 1 -> x0 = 2*((5|16)-32);
     * element 100 = 32*3+4: ql[36] high nibble 7, qh[4] bits 6-7 = 3, sc[6] = -1 -> -((7|48)-32) */
    memset(b, 0, sizeof b);
    b[208] = 0x00; b[209] = 0x3c; b[192] = 2; b[192 + 6] = 0xff; b[0] = 0x05; b[128] = 0x01; b[36] = 0x70; b[128 + 4] = 0xc0;
    cce_dequant(CCE_WT_Q6_K, b, y, 256);
    qr_decode(QR_Q6_K, b, z, 256);
    CHECK_MSG(y[0] == -22.0f && y[100] == -23.0f && z[0] == -22.0f && z[100] == -23.0f, "q6_k: %g %g", y[0], y[100]);
    /* Q8_0, d = -0.5: q = -128 -> 64 */
    memset(b, 0, sizeof b);
    b[1] = 0xb8; b[2 + 5] = 0x80;
    cce_dequant(CCE_WT_Q8_0, b, y, 32);
    CHECK(y[5] == 64.0f && y[0] == 0.0f);
}

TEST(random_blocks_match_reference) {
    cce_rng r;
    cce_rng_seed(&r, 1234);
    enum { NB = 64 };
    static uint8_t buf[NB * 256 * 4];
    static float y[NB * 256], z[NB * 256];
    for (int k = 0; k < N_TYPES; k++) {
        for (int rep = 0; rep < 8; rep++) {
            random_blocks(k, &r, buf, NB);
            long n = (long)NB * qr_block(TYPES[k].ggml), at = -1;
            cce_dequant(TYPES[k].t, buf, y, n);
            qr_decode(TYPES[k].ggml, buf, z, n);
            CHECK_MSG(same_bits(y, z, n, &at), "%s: element %ld: engine %.9g, reference %.9g", cce_wtype_name(TYPES[k].t), at,
                      y[at], z[at]);
            for (long i = 0; i < n; i++) CHECK_MSG(isfinite(y[i]), "%s: element %ld not finite", cce_wtype_name(TYPES[k].t), i);
        }
    }
}

TEST(dequant_rows_stride) {
    cce_rng r;
    cce_rng_seed(&r, 77);
    static uint8_t buf[3 * 512 * 4];   // three rows of 512 of the widest type (f32)
    static float y[3 * 512], z[512];
    for (int k = 0; k < N_TYPES; k++) {
        int n = 512, rb = (int)cce_wtype_row_bytes(TYPES[k].t, n), per_row = n / qr_block(TYPES[k].ggml);
        random_blocks(k, &r, buf, 3 * per_row);
        cce_dequant_rows(TYPES[k].t, buf, 3, n, y);
        for (int row = 0; row < 3; row++) {
            long at = -1;
            qr_decode(TYPES[k].ggml, buf + (size_t)row * rb, z, n);
            CHECK_MSG(same_bits(y + row * n, z, n, &at), "%s row %d element %ld", cce_wtype_name(TYPES[k].t), row, at);
        }
    }
}

TEST(dot_matches_dequant) {
    cce_rng r;
    cce_rng_seed(&r, 99);
    static uint8_t buf[8 * 256 * 4];
    static float w[2048], x[2048];
    const int lens[] = {32, 96, 256, 288, 512, 1280, 2048};
    for (int k = 0; k < N_TYPES; k++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int n = lens[li], blk = qr_block(TYPES[k].ggml);
            if (n % blk) continue;
            random_blocks(k, &r, buf, n / blk);
            qr_decode(TYPES[k].ggml, buf, w, n);
            double ref = 0, mag = 0;
            for (int i = 0; i < n; i++) {
                x[i] = cce_rng_normal(&r);
                ref += (double)w[i] * x[i];
                mag += fabs((double)w[i] * x[i]);
            }
            float got = cce_wtype_dot(TYPES[k].t, buf, x, n);
            CHECK_MSG(fabs(got - ref) <= 1e-6 * mag + 1e-30, "%s n=%d: dot %.9g, dequantise-then-dot %.9g (sum |wx| %.3g)",
                      cce_wtype_name(TYPES[k].t), n, got, ref, mag);
        }
}

/* Half a quantisation step of each element, from the decoded block (scales as stored); x is
 * the encoded value. */
static double step_bound(int ggml, const uint8_t *blk, int j, double x) {
    switch (ggml) {
    case QR_F32: return 0;
    case QR_F16: return ldexp(1.0, -11) * fabs(qr_elem(ggml, blk, j)) + ldexp(1.0, -25);
    case QR_BF16: return ldexp(1.0, -8) * fabs(qr_elem(ggml, blk, j)) + 1e-38;
    /* q8_0 quantises against the unrounded d (ggml's reference) and stores d as f16: up to
     * 127 steps of the f16 rounding of d (2^-11 relative) on top of half a step */
    case QR_Q8_0: return (0.5 + 127 * ldexp(1.0, -11)) * fabs(qr_half(blk, 0));
    /* q4_0 / q5_0 put the value of largest magnitude on the grid end -8d (-16d), as ggml does;
     * the other end of the grid is 7d (15d), so values of the opposite sign beyond it clip */
    case QR_Q4_0: case QR_Q5_0: {
        double d = fabs(qr_half(blk, 0)), end = (ggml == QR_Q4_0 ? 7.5 : 15.5) * d;
        return 0.5 * d + (fabs(x) > end ? fabs(x) - end : 0);
    }
    case QR_Q4_1: case QR_Q5_1: return 0.5 * fabs(qr_half(blk, 0)) + 0.5 * ldexp(fabs(qr_half(blk, 2)), -10);
    case QR_Q4_K: case QR_Q5_K: {
        int s = j / 32;
        return 0.5 * qr_half(blk, 0) * qr_k_scale(blk, s, 0) + 0.5 * qr_half(blk, 2);
    }
    case QR_Q6_K: return 0.5 * fabs(qr_half(blk, 208) * (int8_t)blk[192 + j / 16]);
    default: return 0;
    }
}

TEST(quantize_round_trip) {
    cce_rng r;
    cce_rng_seed(&r, 5);
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4], q2[N * 4];
    for (int k = 0; k < N_TYPES; k++) {
        int ggml = TYPES[k].ggml, blk = qr_block(ggml), bb = qr_block_bytes(ggml);
        for (int rep = 0; rep < 3; rep++) {
            float scale = rep == 0 ? 1.0f : rep == 1 ? 0.02f : 30.0f;
            for (int i = 0; i < N; i++) x[i] = scale * cce_rng_normal(&r) + (rep == 2 ? 5.0f * scale * (i % 7 == 0) : 0);
            if (rep == 1) for (int i = 0; i < 64; i++) x[i] = 0;   // an all-zero block
            cce_err e = {{0}};
            CHECK_MSG(cce_quantize(TYPES[k].t, x, q, N, &e) == CCE_OK, "%s: %s", cce_wtype_name(TYPES[k].t), e.msg);
            CHECK_MSG(cce_quantize(TYPES[k].t, x, q2, N, &e) == CCE_OK && !memcmp(q, q2, cce_wtype_row_bytes(TYPES[k].t, N)),
                      "%s: not deterministic", cce_wtype_name(TYPES[k].t));
            qr_decode(ggml, q, y, N);
            double worst = 0, se = 0, sx = 0;
            int at = -1;
            for (int i = 0; i < N; i++) {
                se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                sx += (double)x[i] * x[i];
                const uint8_t *b = q + (size_t)(i / blk) * bb;
                double err = fabs((double)y[i] - x[i]), bound = step_bound(ggml, b, i % blk, x[i]) * 1.0001 + 1e-6 * fabs(x[i]);
                if (err - bound > worst) { worst = err - bound; at = i; }
            }
            CHECK_MSG(at < 0, "%s (scale %g): element %d: x %.6g decoded %.6g, error above half a step by %.3g",
                      cce_wtype_name(TYPES[k].t), scale, at, x[at], y[at], worst);
            /* and the scales are not wasteful: relative RMS error within 1.5x of what was measured
             * on N(0,1) data: f32 0, f16 2.1e-4, bf16 1.7e-3, q8_0 5.3e-3, q4_0 0.087, q4_1 0.077,
             * q5_0 0.042, q5_1 0.038, q4_k 0.079, q5_k 0.039, q6_k 0.020; 3x with outliers) */
            static const double rel_max[] = {0, 3.2e-4, 2.5e-3, 8e-3, 0.13, 0.115, 0.063, 0.057, 0.12, 0.059, 0.031};
            double rel = sqrt(se / sx);
            if (rep == 0) printf("# %s: relative RMS error %.3g\n", cce_wtype_name(TYPES[k].t), rel);
            CHECK_MSG(rel <= rel_max[k] * (rep == 2 ? 3 : 1), "%s (scale %g): relative RMS error %.3g > %.3g",
                      cce_wtype_name(TYPES[k].t), scale, rel, rel_max[k]);
            if (rep == 1) for (int i = 0; i < 64; i++) CHECK_MSG(y[i] == 0, "%s: zero block decodes to %g", cce_wtype_name(TYPES[k].t), y[i]);
        }
        if (blk > 1) {
            cce_err e = {{0}};
            CHECK(cce_quantize(TYPES[k].t, x, q, blk + 1, &e) == CCE_EINVAL);
            CHECK(strstr(e.msg, cce_wtype_name(TYPES[k].t)) != NULL);
        }
    }
}

int main(void) {
    RUN(block_table);
    RUN(known_blocks);
    RUN(random_blocks_match_reference);
    RUN(dequant_rows_stride);
    RUN(dot_matches_dequant);
    RUN(quantize_round_trip);
    return harness_done();
}
