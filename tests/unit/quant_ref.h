/*
 * quant_ref.h — a slow, independent decoder of ggml's published block formats, for tests only.
 *
 * Written from the layout descriptions (include/quant.h, ggml's block_q* structs), not from
 * engine/quant.c: every field is read bit by bit from the block's byte string at the bit
 * offset the layout gives it (bit b of byte k is bit 8k + b), halves are decoded with the
 * test's own IEEE half rule (ldexp), and each element is computed from its own index. The
 * products are formed in the same order the formulas state, so on a correct engine decoder
 * the result is bit-identical.
 */
#ifndef CCE_TEST_QUANT_REF_H
#define CCE_TEST_QUANT_REF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ggml type ids (the GGUF tensor type field) of the formats below */
enum { QR_F32 = 0, QR_F16 = 1, QR_Q4_0 = 2, QR_Q4_1 = 3, QR_Q5_0 = 6, QR_Q5_1 = 7, QR_Q8_0 = 8,
       QR_Q4_K = 12, QR_Q5_K = 13, QR_Q6_K = 14, QR_BF16 = 30 };

/* n bits (n <= 16) starting at bit position pos of p, least significant first. */
static inline unsigned qr_bits(const uint8_t *p, unsigned pos, unsigned n) {
    unsigned v = 0;
    for (unsigned i = 0; i < n; i++) v |= (unsigned)((p[(pos + i) / 8] >> ((pos + i) % 8)) & 1) << i;
    return v;
}

/* IEEE binary16 at byte offset off, by the definition (sign, 5-bit exponent, 10-bit fraction). */
static inline float qr_half(const uint8_t *p, unsigned off) {
    unsigned h = qr_bits(p, 8 * off, 16), e = (h >> 10) & 31, f = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)f, -24);
    else if (e == 31) v = f ? NAN : INFINITY;
    else v = ldexpf((float)(1024 + f), (int)e - 25);
    return (h >> 15) ? -v : v;
}

static inline float qr_bf16(const uint8_t *p, unsigned off) {
    uint32_t u = (uint32_t)qr_bits(p, 8 * off, 16) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Elements per block and bytes per block of a type id; 0 for others. */
static inline int qr_block(int type) {
    switch (type) {
    case QR_F32: case QR_F16: case QR_BF16: return 1;
    case QR_Q4_0: case QR_Q4_1: case QR_Q5_0: case QR_Q5_1: case QR_Q8_0: return 32;
    case QR_Q4_K: case QR_Q5_K: case QR_Q6_K: return 256;
    default: return 0;
    }
}
static inline int qr_block_bytes(int type) {
    switch (type) {
    case QR_F32: return 4;
    case QR_F16: case QR_BF16: return 2;
    case QR_Q4_0: return 18; case QR_Q4_1: return 20; case QR_Q5_0: return 22; case QR_Q5_1: return 24;
    case QR_Q8_0: return 34; case QR_Q4_K: return 144; case QR_Q5_K: return 176; case QR_Q6_K: return 210;
    default: return 0;
    }
}

/* 6-bit scale (what 0) or min (what 1) of sub-block s of a Q4_K/Q5_K block whose 12 scale bytes
 * start at byte 4: entries 0..3 are the low 6 bits of bytes 0..3 (scales) / 4..7 (mins);
 * entries 4..7 take their low 4 bits from the nibbles of bytes 8..11 and their top 2 bits from
 * the top 2 bits of bytes 0..3 (scales) / 4..7 (mins). */
static inline int qr_k_scale(const uint8_t *b, int s, int what) {
    unsigned base = 8 * 4;
    if (s < 4) return (int)qr_bits(b, base + 8 * (unsigned)(s + 4 * what), 6);
    unsigned lo = qr_bits(b, base + 8 * (unsigned)(8 + s - 4) + 4 * (unsigned)what, 4);
    unsigned hi = qr_bits(b, base + 8 * (unsigned)(s - 4 + 4 * what) + 6, 2);
    return (int)(lo | hi << 4);
}

/* Element j of one block of type at b. */
static inline float qr_elem(int type, const uint8_t *b, int j) {
    switch (type) {
    case QR_F32: { float f; memcpy(&f, b, 4); return f; }
    case QR_F16: return qr_half(b, 0);
    case QR_BF16: return qr_bf16(b, 0);
    case QR_Q8_0: return qr_half(b, 0) * (float)(int8_t)qr_bits(b, 8 * (2 + (unsigned)j), 8);
    case QR_Q4_0: case QR_Q4_1: case QR_Q5_0: case QR_Q5_1: {
        int has_m = type == QR_Q4_1 || type == QR_Q5_1, five = type == QR_Q5_0 || type == QR_Q5_1;
        unsigned qs = 2 + 2 * (unsigned)has_m + 4 * (unsigned)five;   // byte offset of qs[16]
        unsigned u = qr_bits(b, 8 * (qs + (unsigned)(j % 16)) + 4 * (unsigned)(j / 16), 4);
        if (five) u |= qr_bits(b, 8 * (2 + 2 * (unsigned)has_m) + (unsigned)j, 1) << 4;
        float d = qr_half(b, 0);
        if (has_m) return d * (float)u + qr_half(b, 2);
        return d * (float)((int)u - (five ? 16 : 8));
    }
    case QR_Q4_K: case QR_Q5_K: {
        int five = type == QR_Q5_K, c = j / 64, h = (j % 64) / 32, l = j % 32;
        unsigned qs = five ? 48 : 16;
        unsigned u = qr_bits(b, 8 * (qs + 32 * (unsigned)c + (unsigned)l) + 4 * (unsigned)h, 4);
        if (five) u |= qr_bits(b, 8 * (16 + (unsigned)l) + 2 * (unsigned)c + (unsigned)h, 1) << 4;
        float dl = qr_half(b, 0) * (float)qr_k_scale(b, 2 * c + h, 0);
        float ml = qr_half(b, 2) * (float)qr_k_scale(b, 2 * c + h, 1);
        return dl * (float)u - ml;
    }
    case QR_Q6_K: {
        int g = j / 128, k = (j % 128) / 32, l = j % 32;
        unsigned lo = qr_bits(b, 8 * (64 * (unsigned)g + 32 * (unsigned)(k % 2) + (unsigned)l) + 4 * (unsigned)(k / 2), 4);
        unsigned hi = qr_bits(b, 8 * (128 + 32 * (unsigned)g + (unsigned)l) + 2 * (unsigned)k, 2);
        float dl = qr_half(b, 208) * (float)(int8_t)qr_bits(b, 8 * (192 + (unsigned)(j / 16)), 8);
        return dl * (float)((int)(lo | hi << 4) - 32);
    }
    default: return NAN;
    }
}

/* dst (n) = the n elements of type at src (n a multiple of the block size). */
static inline void qr_decode(int type, const void *src, float *dst, long n) {
    int blk = qr_block(type), bb = qr_block_bytes(type);
    for (long i = 0; i < n; i++) dst[i] = qr_elem(type, (const uint8_t *)src + (size_t)(i / blk) * (size_t)bb, (int)(i % blk));
}

#endif
