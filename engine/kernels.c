/*
 * kernels.c — fast kernels over stored weight types, and the thread pool. See kernels.h.
 *
 * Matrix-vector products take four rows per pass where the type allows (f32, f16, bf16), so
 * each load of the activation feeds four FMA chains and four sequential weight streams keep
 * the hardware prefetchers busy; the remainder rows go one at a time. Row tails that are not a
 * multiple of 16 use masked loads, so any width works. q8_0 rows go two blocks (64 weights)
 * per 512-bit vpdpbusd: the unsigned operand is |w| and the activation codes take w's sign
 * (llama.cpp's trick, as vpdpbusd multiplies unsigned by signed bytes), which is exact because
 * activation codes lie in [-127, 127]. Each block's 8 int32 lanes are converted to float and
 * scaled by d_w·d_x with one FMA into a 16-lane accumulator, reduced once per row.
 *
 * Everything here is also written in plain C (the reference calls of quant.h) for targets
 * without AVX-512; which one is built is cce_kern_isa().
 *
 * The pool: workers wait on a generation counter. cce_pool_run publishes fn/ctx, bumps the
 * generation (sequentially consistent) and wakes sleepers with a futex only when one is
 * registered as sleeping; each worker runs its share and decrements `pending`; the caller runs
 * share 0 and spins until pending is zero. A worker that has seen no new job for SPIN_NS
 * registers as a sleeper, re-checks the generation and sleeps on it (the re-check after
 * registering closes the lost-wake-up race with the caller's check of `sleepers`).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include "kernels.h"
#include "util.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
#define KERN_AVX512 1
#include <immintrin.h>
#if defined(__AVX512VNNI__)
#define KERN_VNNI 1
#endif
#endif

const char *cce_kern_isa(void) {
#if defined(KERN_VNNI)
    return "avx512-vnni";
#elif defined(KERN_AVX512)
    return "avx512";
#else
    return "generic";
#endif
}

int cce_kern_wants_q8(cce_wtype t) {
#if defined(KERN_VNNI)
    return t == CCE_WT_Q8_0;
#else
    (void)t;
    return 0;
#endif
}

static inline uint16_t kern_rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

size_t cce_kern_llc_bytes(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    unsigned long v = 0;
    char unit = 0;
    if (f) {
        int k = fscanf(f, "%lu%c", &v, &unit);
        fclose(f);
        if (k >= 1) return (size_t)v * (unit == 'K' ? 1024 : unit == 'M' ? 1 << 20 : 1);
    }
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);   // on some virtual machines: the host's whole L3
    return l3 > 0 ? (size_t)l3 : 0;
}

/* ---------------------------------------------------------------- activation quantisation */

void cce_kvec_quantize(cce_kvec *v) {
    int nb = v->n / 32;
    for (int b = 0; b < nb; b++) {
        const float *x = v->x + (size_t)b * 32;
        int8_t *q = v->q + (size_t)b * 32;
#if defined(KERN_AVX512)
        __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        float id = amax > 0 ? 127.0f / amax : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        /* cvtps rounds to nearest even (the default MXCSR mode), as lrintf does */
        _mm_storeu_si128((__m128i *)q, _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, vid))));
        _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, vid))));
#else
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        float id = amax > 0 ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32; j++) q[j] = (int8_t)lrintf(x[j] * id);
#endif
        v->d[b] = amax / 127.0f;
    }
}

/* ---------------------------------------------------------------- products */

#if defined(KERN_AVX512)
/* 16 weights starting at element j of a row, as f32 (t is f32, f16 or bf16). */
static inline __m512 kern_load16(cce_wtype t, const uint8_t *row, int j) {
    if (t == CCE_WT_F32) return _mm512_loadu_ps((const float *)row + j);
    __m256i h = _mm256_loadu_si256((const __m256i *)(row + 2 * (size_t)j));
    if (t == CCE_WT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
/* The same for the k < 16 weights selected by mask m (the others zero). */
static inline __m512 kern_load16_mask(cce_wtype t, const uint8_t *row, int j, __mmask16 m) {
    if (t == CCE_WT_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + j);
    __m256i h = _mm256_maskz_loadu_epi16(m, row + 2 * (size_t)j);
    if (t == CCE_WT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The four sums of c0..c3 (16 lanes each): halves folded, then two rounds of hadd, so short rows
 * (64 elements: four FMAs each) do not pay four full reductions. */
static inline void kern_reduce4(__m512 c0, __m512 c1, __m512 c2, __m512 c3, float *y) {
    __m256 a0 = _mm256_add_ps(_mm512_castps512_ps256(c0), _mm512_extractf32x8_ps(c0, 1));
    __m256 a1 = _mm256_add_ps(_mm512_castps512_ps256(c1), _mm512_extractf32x8_ps(c1, 1));
    __m256 a2 = _mm256_add_ps(_mm512_castps512_ps256(c2), _mm512_extractf32x8_ps(c2, 1));
    __m256 a3 = _mm256_add_ps(_mm512_castps512_ps256(c3), _mm512_extractf32x8_ps(c3, 1));
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));   // [s0 s1 s2 s3 | s0' s1' s2' s3']
    _mm_storeu_ps(y, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
}

/* f32 / f16 / bf16 rows times an f32 vector. Written once per type so that the type test is
 * hoisted out of the loops (always_inline + constant t). */
static inline __attribute__((always_inline)) void kern_gemv_float(cce_wtype t, const uint8_t *w, size_t rb,
                                                                  int rows, const float *x, int n, float *y,
                                                                  int stream) {
    int nv = n & ~15;
    __mmask16 tm = (__mmask16)((1u << (n & 15)) - 1);
    int r = 0;
    for (; !stream && r + 4 <= rows; r += 4) {
        const uint8_t *a0 = w + (size_t)r * rb, *a1 = a0 + rb, *a2 = a1 + rb, *a3 = a2 + rb;
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        const uint8_t *pf = a3 + rb;   // the next four rows, fetched while these are multiplied
        size_t es = t == CCE_WT_F32 ? 4 : 2;
        for (int j = 0; j < nv; j += 16) {
            __m512 xv = _mm512_loadu_ps(x + j);
            if (r + 8 <= rows) {
                _mm_prefetch((const char *)(pf + es * j), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf + rb + es * j), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf + 2 * rb + es * j), _MM_HINT_T0);
                _mm_prefetch((const char *)(pf + 3 * rb + es * j), _MM_HINT_T0);
            }
            c0 = _mm512_fmadd_ps(kern_load16(t, a0, j), xv, c0);
            c1 = _mm512_fmadd_ps(kern_load16(t, a1, j), xv, c1);
            c2 = _mm512_fmadd_ps(kern_load16(t, a2, j), xv, c2);
            c3 = _mm512_fmadd_ps(kern_load16(t, a3, j), xv, c3);
        }
        if (tm) {
            __m512 xv = _mm512_maskz_loadu_ps(tm, x + nv);
            c0 = _mm512_fmadd_ps(kern_load16_mask(t, a0, nv, tm), xv, c0);
            c1 = _mm512_fmadd_ps(kern_load16_mask(t, a1, nv, tm), xv, c1);
            c2 = _mm512_fmadd_ps(kern_load16_mask(t, a2, nv, tm), xv, c2);
            c3 = _mm512_fmadd_ps(kern_load16_mask(t, a3, nv, tm), xv, c3);
        }
        kern_reduce4(c0, c1, c2, c3, y + r);
    }
    for (; r < rows; r++) {
        const uint8_t *a = w + (size_t)r * rb;
        __m512 c = _mm512_setzero_ps();
        for (int j = 0; j < nv; j += 16) c = _mm512_fmadd_ps(kern_load16(t, a, j), _mm512_loadu_ps(x + j), c);
        if (tm) c = _mm512_fmadd_ps(kern_load16_mask(t, a, nv, tm), _mm512_maskz_loadu_ps(tm, x + nv), c);
        y[r] = _mm512_reduce_add_ps(c);
    }
}
#endif

#if defined(KERN_AVX512)
/* bf16 rows whose width is a multiple of 32: 32 weights per 512-bit load, split into the even
 * elements (shifted up: lane k holds element 2k in its low half) and the odd ones (masked), each
 * multiplied by the matching half of x de-interleaved once per call (xe[k] = x[2k], xo[k] =
 * x[2k+1]). Two integer operations per 32 weights instead of a widening load and a shift per
 * 16: the single-thread decoder was conversion-bound on bf16 (0.89x llama.cpp's). */
#define KERN_BF16_MAX 8192
static void kern_gemv_bf16(const uint8_t *w, size_t rb, int rows, const float *x, int n, float *y, int stream) {
    float xe[KERN_BF16_MAX / 2], xo[KERN_BF16_MAX / 2];
    for (int k = 0; k < n / 2; k++) { xe[k] = x[2 * k]; xo[k] = x[2 * k + 1]; }
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    int r = 0;
    for (; !stream && r + 4 <= rows; r += 4) {
        const uint8_t *a[4] = {w + (size_t)r * rb, w + (size_t)(r + 1) * rb, w + (size_t)(r + 2) * rb, w + (size_t)(r + 3) * rb};
        __m512 c[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int j = 0; j < n; j += 32) {
            __m512 ve = _mm512_loadu_ps(xe + j / 2), vo = _mm512_loadu_ps(xo + j / 2);
            for (int u = 0; u < 4; u++) {
                __m512i v = _mm512_loadu_si512(a[u] + 2 * (size_t)j);
                c[u] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), ve, c[u]);
                c[u] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), vo, c[u]);
            }
        }
        kern_reduce4(c[0], c[1], c[2], c[3], y + r);
    }
    for (; r < rows; r++) {
        const uint8_t *a = w + (size_t)r * rb;
        __m512 c0 = _mm512_setzero_ps(), c1 = c0;
        for (int j = 0; j < n; j += 32) {
            __m512i v = _mm512_loadu_si512(a + 2 * (size_t)j);
            c0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_loadu_ps(xe + j / 2), c0);
            c1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, hi)), _mm512_loadu_ps(xo + j / 2), c1);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(c0, c1));
    }
}
#endif

#if defined(KERN_VNNI)
/* Σ_lanes of the int32 dot products of 64 signed weight bytes w with 64 activation codes q
 * (in 16 lanes of 4 products each): vpdpbusd(|w|, sign(w)·q). */
static inline __m512i kern_dot64(__m512i w, __m512i q) {
    __mmask64 neg = _mm512_movepi8_mask(w);
    __m512i sq = _mm512_mask_sub_epi8(q, neg, _mm512_setzero_si512(), q);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sq);
}

/* One q8_0 row (nb blocks) times the quantised activation. */
static inline float kern_dot_q8(const uint8_t *row, int nb, const int8_t *q, const float *d) {
    __m512 acc = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        const uint8_t *b0 = row + (size_t)b * 34, *b1 = b0 + 34;
        __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
                                       _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
        __m512i s = kern_dot64(w, _mm512_loadu_si512(q + (size_t)b * 32));
        float s0 = _cvtsh_ss(kern_rd16(b0)) * d[b], s1 = _cvtsh_ss(kern_rd16(b1)) * d[b + 1];
        __m512 sc = _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, acc);
    }
    float tail = 0;
    if (b < nb) {  // an odd last block: 256-bit
        const uint8_t *b0 = row + (size_t)b * 34;
        __m256i w = _mm256_loadu_si256((const __m256i *)(b0 + 2));
        __m256i qq = _mm256_loadu_si256((const __m256i *)(q + (size_t)b * 32));
        __mmask32 neg = _mm256_movepi8_mask(w);
        __m256i sq = _mm256_mask_sub_epi8(qq, neg, _mm256_setzero_si256(), qq);
        __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), sq);
        __m256 f = _mm256_cvtepi32_ps(s);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        tail = _mm_cvtss_f32(h) * (_cvtsh_ss(kern_rd16(b0)) * d[b]);
    }
    return _mm512_reduce_add_ps(acc) + tail;
}
#endif

#if defined(KERN_AVX512)
/* One q8_0 row times the f32 activation: each block decoded in registers, its dot product
 * formed in f32 and scaled by d_w (the reference's arithmetic, in another order). */
static inline float kern_dot_q8_f32(const uint8_t *row, int nb, const float *x) {
    __m512 acc = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++, x += 32) {
        const uint8_t *blk = row + (size_t)b * 34;
        __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
        __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
        __m512 s = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(x)));
        acc = _mm512_fmadd_ps(s, _mm512_set1_ps(_cvtsh_ss(kern_rd16(blk))), acc);
    }
    return _mm512_reduce_add_ps(acc);
}
#endif

void cce_kern_gemv(cce_wtype t, const void *w, size_t rb, int rows, const cce_kvec *x, float *y) {
    const uint8_t *p = w;
    int n = x->n;
#if defined(KERN_AVX512)
    switch (t) {
    case CCE_WT_F32: kern_gemv_float(CCE_WT_F32, p, rb, rows, x->x, n, y, x->stream); return;
    case CCE_WT_F16: kern_gemv_float(CCE_WT_F16, p, rb, rows, x->x, n, y, x->stream); return;
    case CCE_WT_BF16:
        if (n % 32 == 0 && n <= KERN_BF16_MAX) kern_gemv_bf16(p, rb, rows, x->x, n, y, x->stream);
        else kern_gemv_float(CCE_WT_BF16, p, rb, rows, x->x, n, y, x->stream);
        return;
    case CCE_WT_Q8_0:
#if defined(KERN_VNNI)
        if (x->q) {
            for (int r = 0; r < rows; r++) y[r] = kern_dot_q8(p + (size_t)r * rb, n / 32, x->q, x->d);
            return;
        }
#endif
        for (int r = 0; r < rows; r++) y[r] = kern_dot_q8_f32(p + (size_t)r * rb, n / 32, x->x);
        return;
    default: break;
    }
#endif
    for (int r = 0; r < rows; r++) y[r] = cce_wtype_dot(t, p + (size_t)r * rb, x->x, n);
}

/* ---------------------------------------------------------------- decoding rows */

void cce_kern_dequant(cce_wtype t, const void *src, float *dst, int64_t n) {
#if defined(KERN_AVX512)
    const uint8_t *p = src;
    int64_t j = 0;
    switch (t) {
    case CCE_WT_F16:
    case CCE_WT_BF16:
        for (; j + 16 <= n; j += 16) {
            __m256i h = _mm256_loadu_si256((const __m256i *)(p + 2 * j));
            __m512 f = t == CCE_WT_F16 ? _mm512_cvtph_ps(h)
                                       : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
            _mm512_storeu_ps(dst + j, f);
        }
        if (j < n) cce_dequant(t, p + 2 * j, dst + j, n - j);
        return;
    case CCE_WT_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = p + b * 34;
            __m512 d = _mm512_set1_ps(_cvtsh_ss(kern_rd16(blk)));
            __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
            __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
            _mm512_storeu_ps(dst + b * 32, _mm512_mul_ps(d, lo));
            _mm512_storeu_ps(dst + b * 32 + 16, _mm512_mul_ps(d, hi));
        }
        return;
    default: break;
    }
#endif
    cce_dequant(t, src, dst, n);
}

/* ---------------------------------------------------------------- decoding attention */

void cce_kern_scores(const float *q, const float *kt, int ld, int hd, int T, float scale, float *s) {
    int t0 = 0;
#if defined(KERN_AVX512)
    /* 64 positions per pass in four accumulators; the last pass is masked */
    for (; t0 < T; t0 += 64) {
        int left = T - t0;
        __mmask16 m[4];
        for (int k = 0; k < 4; k++) {
            int c = left - 16 * k;
            m[k] = c >= 16 ? (__mmask16)0xffff : c <= 0 ? (__mmask16)0 : (__mmask16)((1u << c) - 1);
        }
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *k0 = kt + t0;
        if (left >= 64) {
            for (int i = 0; i < hd; i++, k0 += ld) {
                __m512 qi = _mm512_set1_ps(q[i]);
                a0 = _mm512_fmadd_ps(qi, _mm512_loadu_ps(k0), a0);
                a1 = _mm512_fmadd_ps(qi, _mm512_loadu_ps(k0 + 16), a1);
                a2 = _mm512_fmadd_ps(qi, _mm512_loadu_ps(k0 + 32), a2);
                a3 = _mm512_fmadd_ps(qi, _mm512_loadu_ps(k0 + 48), a3);
            }
        } else {
            for (int i = 0; i < hd; i++, k0 += ld) {
                __m512 qi = _mm512_set1_ps(q[i]);
                a0 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(m[0], k0), a0);
                a1 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(m[1], k0 + 16), a1);
                a2 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(m[2], k0 + 32), a2);
                a3 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(m[3], k0 + 48), a3);
            }
        }
        __m512 sc = _mm512_set1_ps(scale);
        _mm512_mask_storeu_ps(s + t0, m[0], _mm512_mul_ps(a0, sc));
        _mm512_mask_storeu_ps(s + t0 + 16, m[1], _mm512_mul_ps(a1, sc));
        _mm512_mask_storeu_ps(s + t0 + 32, m[2], _mm512_mul_ps(a2, sc));
        _mm512_mask_storeu_ps(s + t0 + 48, m[3], _mm512_mul_ps(a3, sc));
    }
#endif
    for (int t = t0; t < T; t++) {
        float acc = 0;
        for (int i = 0; i < hd; i++) acc += q[i] * kt[(size_t)i * ld + t];
        s[t] = acc * scale;
    }
}

void cce_kern_mix(const float *p, const float *v, int hd, int T, float scale, float *o) {
    int i0 = 0;
#if defined(KERN_AVX512)
    if (hd <= 8 && 16 % hd == 0) {
        /* narrow heads: the T value rows are T·hd contiguous floats, so a vector holds g = 16/hd
         * positions; the matching weights are g of p's values, each spread over hd lanes by a
         * permutation of the 16 weights loaded per 16 positions */
        int g = 16 / hd, sh = hd == 1 ? 0 : hd == 2 ? 1 : hd == 4 ? 2 : 3;
        __m512i base = _mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), sh);
        __m512i idx[16];   // lane l of vector k takes weight k·g + l/hd
        for (int k = 0; k < hd; k++) idx[k] = _mm512_add_epi32(base, _mm512_set1_epi32(k * g));
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
        for (int t0 = 0; t0 < T; t0 += 16) {
            int left = T - t0 < 16 ? T - t0 : 16;
            __mmask16 pm = (__mmask16)(left == 16 ? 0xffff : (1u << left) - 1);
            __m512 pv = _mm512_maskz_loadu_ps(pm, p + t0);   // zero weights past T
            const float *vr = v + (size_t)t0 * hd;
            int nvec = (left * hd + 15) / 16, tail = left * hd - (nvec - 1) * 16;
            for (int k = 0; k < nvec; k++) {
                __mmask16 vm = (__mmask16)(k + 1 < nvec || tail == 16 ? 0xffff : (1u << tail) - 1);
                __m512 pk = _mm512_permutexvar_ps(idx[k], pv), vk = _mm512_maskz_loadu_ps(vm, vr + 16 * k);
                if (k & 1) acc1 = _mm512_fmadd_ps(pk, vk, acc1);
                else acc0 = _mm512_fmadd_ps(pk, vk, acc0);
            }
        }
        float lanes[16];
        _mm512_storeu_ps(lanes, _mm512_add_ps(acc0, acc1));
        for (int i = 0; i < hd; i++) {
            float sum = 0;
            for (int k = 0; k < g; k++) sum += lanes[k * hd + i];
            o[i] = sum * scale;
        }
        return;
    }
    /* up to 64 columns per pass (four vectors); narrow heads use several accumulators over
     * alternating positions so that the FMA chains do not wait on each other */
    for (; i0 < hd; i0 += 64) {
        int w = hd - i0 < 64 ? hd - i0 : 64, nv = (w + 15) / 16;
        __mmask16 m[4];
        for (int k = 0; k < 4; k++) {
            int c = w - 16 * k;
            m[k] = c >= 16 ? (__mmask16)0xffff : c <= 0 ? (__mmask16)0 : (__mmask16)((1u << c) - 1);
        }
        __m512 acc[4][4];
        for (int k = 0; k < 4; k++)
            for (int u = 0; u < 4; u++) acc[k][u] = _mm512_setzero_ps();
        const float *vr = v + i0;
        if (nv == 1) {
            int t = 0;
            for (; t + 4 <= T; t += 4, vr += 4 * (size_t)hd)
                for (int u = 0; u < 4; u++)
                    acc[0][u] = _mm512_fmadd_ps(_mm512_set1_ps(p[t + u]), _mm512_maskz_loadu_ps(m[0], vr + (size_t)u * hd), acc[0][u]);
            for (; t < T; t++, vr += hd)
                acc[0][0] = _mm512_fmadd_ps(_mm512_set1_ps(p[t]), _mm512_maskz_loadu_ps(m[0], vr), acc[0][0]);
        } else if (nv == 2) {
            int t = 0;
            for (; t + 2 <= T; t += 2, vr += 2 * (size_t)hd)
                for (int u = 0; u < 2; u++) {
                    __m512 pt = _mm512_set1_ps(p[t + u]);
                    acc[0][u] = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vr + (size_t)u * hd), acc[0][u]);
                    acc[1][u] = _mm512_fmadd_ps(pt, _mm512_maskz_loadu_ps(m[1], vr + (size_t)u * hd + 16), acc[1][u]);
                }
            for (; t < T; t++, vr += hd) {
                __m512 pt = _mm512_set1_ps(p[t]);
                acc[0][0] = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vr), acc[0][0]);
                acc[1][0] = _mm512_fmadd_ps(pt, _mm512_maskz_loadu_ps(m[1], vr + 16), acc[1][0]);
            }
        } else {
            for (int t = 0; t < T; t++, vr += hd) {
                __m512 pt = _mm512_set1_ps(p[t]);
                for (int k = 0; k < nv; k++)
                    acc[k][0] = _mm512_fmadd_ps(pt, _mm512_maskz_loadu_ps(m[k], vr + 16 * k), acc[k][0]);
            }
        }
        __m512 sc = _mm512_set1_ps(scale);
        for (int k = 0; k < nv; k++) {
            __m512 a = _mm512_add_ps(_mm512_add_ps(acc[k][0], acc[k][1]), _mm512_add_ps(acc[k][2], acc[k][3]));
            _mm512_mask_storeu_ps(o + i0 + 16 * k, m[k], _mm512_mul_ps(a, sc));
        }
    }
#endif
    for (int i = i0; i < hd; i++) {
        float acc = 0;
        for (int t = 0; t < T; t++) acc += p[t] * v[(size_t)t * hd + i];
        o[i] = acc * scale;
    }
}

void cce_kern_scores4(const float *q, int ldq, int nq, const float *kt, int ldk, int hd, int T, float scale,
                      float *s, int lds) {
#if defined(KERN_AVX512)
    /* rows past nq read row 0 and are written to a scratch row */
    const float *q0 = q, *q1 = nq > 1 ? q + ldq : q, *q2 = nq > 2 ? q + 2 * (size_t)ldq : q, *q3 = nq > 3 ? q + 3 * (size_t)ldq : q;
    float dummy[32];
    __m512 sc = _mm512_set1_ps(scale);
    for (int t0 = 0; t0 < T; t0 += 32) {   // 32 keys x 4 queries per pass: eight accumulators
        int left = T - t0;
        __mmask16 m0 = (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1);
        __mmask16 m1 = (__mmask16)(left >= 32 ? 0xffff : left <= 16 ? 0 : (1u << (left - 16)) - 1);
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        const float *k = kt + t0;
        for (int i = 0; i < hd; i++, k += ldk) {
            __m512 k0 = _mm512_maskz_loadu_ps(m0, k), k1 = _mm512_maskz_loadu_ps(m1, k + 16);
            __m512 b0 = _mm512_set1_ps(q0[i]), b1 = _mm512_set1_ps(q1[i]);
            __m512 b2 = _mm512_set1_ps(q2[i]), b3 = _mm512_set1_ps(q3[i]);
            a00 = _mm512_fmadd_ps(b0, k0, a00); a01 = _mm512_fmadd_ps(b0, k1, a01);
            a10 = _mm512_fmadd_ps(b1, k0, a10); a11 = _mm512_fmadd_ps(b1, k1, a11);
            a20 = _mm512_fmadd_ps(b2, k0, a20); a21 = _mm512_fmadd_ps(b2, k1, a21);
            a30 = _mm512_fmadd_ps(b3, k0, a30); a31 = _mm512_fmadd_ps(b3, k1, a31);
        }
        float *s0 = s + t0, *s1 = nq > 1 ? s0 + lds : dummy, *s2 = nq > 2 ? s0 + 2 * (size_t)lds : dummy;
        float *s3 = nq > 3 ? s0 + 3 * (size_t)lds : dummy;
        _mm512_mask_storeu_ps(s0, m0, _mm512_mul_ps(a00, sc));
        _mm512_mask_storeu_ps(s0 + 16, m1, _mm512_mul_ps(a01, sc));
        _mm512_mask_storeu_ps(s1, m0, _mm512_mul_ps(a10, sc));
        _mm512_mask_storeu_ps(s1 + 16, m1, _mm512_mul_ps(a11, sc));
        _mm512_mask_storeu_ps(s2, m0, _mm512_mul_ps(a20, sc));
        _mm512_mask_storeu_ps(s2 + 16, m1, _mm512_mul_ps(a21, sc));
        _mm512_mask_storeu_ps(s3, m0, _mm512_mul_ps(a30, sc));
        _mm512_mask_storeu_ps(s3 + 16, m1, _mm512_mul_ps(a31, sc));
    }
#else
    for (int j = 0; j < nq; j++) cce_kern_scores(q + (size_t)j * ldq, kt, ldk, hd, T, scale, s + (size_t)j * lds);
#endif
}

void cce_kern_mix4(const float *p, int ldp, int nq, const float *v, int ldv, int hd, int T, const float *scale,
                   float *o, int ldo) {
#if defined(KERN_AVX512)
    const float *p0 = p, *p1 = nq > 1 ? p + ldp : p, *p2 = nq > 2 ? p + 2 * (size_t)ldp : p, *p3 = nq > 3 ? p + 3 * (size_t)ldp : p;
    float dummy[32];
    for (int i0 = 0; i0 < hd; i0 += 32) {   // 32 columns x 4 queries per pass: eight accumulators
        int w = hd - i0;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xffff : w <= 16 ? 0 : (1u << (w - 16)) - 1);
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        const float *vr = v + i0;
        for (int t = 0; t < T; t++, vr += ldv) {
            __m512 v0 = _mm512_maskz_loadu_ps(m0, vr), v1 = _mm512_maskz_loadu_ps(m1, vr + 16);
            __m512 b0 = _mm512_set1_ps(p0[t]), b1 = _mm512_set1_ps(p1[t]);
            __m512 b2 = _mm512_set1_ps(p2[t]), b3 = _mm512_set1_ps(p3[t]);
            a00 = _mm512_fmadd_ps(b0, v0, a00); a01 = _mm512_fmadd_ps(b0, v1, a01);
            a10 = _mm512_fmadd_ps(b1, v0, a10); a11 = _mm512_fmadd_ps(b1, v1, a11);
            a20 = _mm512_fmadd_ps(b2, v0, a20); a21 = _mm512_fmadd_ps(b2, v1, a21);
            a30 = _mm512_fmadd_ps(b3, v0, a30); a31 = _mm512_fmadd_ps(b3, v1, a31);
        }
        float *o0 = o + i0, *o1 = nq > 1 ? o0 + ldo : dummy, *o2 = nq > 2 ? o0 + 2 * (size_t)ldo : dummy;
        float *o3 = nq > 3 ? o0 + 3 * (size_t)ldo : dummy;
        __m512 c0 = _mm512_set1_ps(scale[0]), c1 = _mm512_set1_ps(nq > 1 ? scale[1] : 0.0f);
        __m512 c2 = _mm512_set1_ps(nq > 2 ? scale[2] : 0.0f), c3 = _mm512_set1_ps(nq > 3 ? scale[3] : 0.0f);
        _mm512_mask_storeu_ps(o0, m0, _mm512_mul_ps(a00, c0));
        _mm512_mask_storeu_ps(o0 + 16, m1, _mm512_mul_ps(a01, c0));
        _mm512_mask_storeu_ps(o1, m0, _mm512_mul_ps(a10, c1));
        _mm512_mask_storeu_ps(o1 + 16, m1, _mm512_mul_ps(a11, c1));
        _mm512_mask_storeu_ps(o2, m0, _mm512_mul_ps(a20, c2));
        _mm512_mask_storeu_ps(o2 + 16, m1, _mm512_mul_ps(a21, c2));
        _mm512_mask_storeu_ps(o3, m0, _mm512_mul_ps(a30, c3));
        _mm512_mask_storeu_ps(o3 + 16, m1, _mm512_mul_ps(a31, c3));
    }
#else
    for (int j = 0; j < nq; j++)
        for (int i = 0; i < hd; i++) {
            float acc = 0;
            for (int t = 0; t < T; t++) acc += p[(size_t)j * ldp + t] * v[(size_t)t * ldv + i];
            o[(size_t)j * ldo + i] = acc * scale[j];
        }
#endif
}

/* ---------------------------------------------------------------- thread pool */

#define SPIN_PAUSE_NS 20000L  /* after a job a worker spins with pause for 20 µs, */
#define SPIN_NS 200000L       /* then with sched_yield up to 0.2 ms, then sleeps */
#define MAX_THREADS 64

struct cce_pool {
    int n;                        // threads including the caller
    int started;                  // workers started (n - 1 when all went well)
    pthread_t th[MAX_THREADS];
    /* the current job: generation (32 bits) | n_chunks (16) | next unclaimed chunk (16) */
    _Atomic uint64_t ticket;
    atomic_int done;              // chunks of the current job finished
    _Atomic unsigned wake;        // futex word, bumped when a job is published and at shutdown
    atomic_int sleepers;          // workers sleeping (or about to) on wake
    atomic_int stop;
    void (*fn)(void *, int, int); // the current job; stable while it has unclaimed chunks
    void *ctx;
    int solo, backoff;            // congestion: jobs left to run on the caller alone, next backoff
    struct pool_arg { struct cce_pool *p; int i; } args[MAX_THREADS];
};

static _Thread_local int pool_tid;   // this thread's index in its pool (0: not a worker)

int cce_pool_thread(void) { return pool_tid; }

static double pool_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claim the next chunk of the current job: its index, or -1 when all are claimed. A claim
 * that succeeds proves the job is still running (its caller waits for every chunk), so fn and
 * ctx, written before the ticket was published, are that job's. */
static int pool_claim(cce_pool *p, int *n_chunks) {
    uint64_t t = atomic_load(&p->ticket);
    for (;;) {
        unsigned next = (unsigned)(t & 0xffff), nc = (unsigned)(t >> 16 & 0xffff);
        if (next >= nc) return -1;
        if (atomic_compare_exchange_weak(&p->ticket, &t, t + 1)) {
            *n_chunks = (int)nc;
            return (int)next;
        }
    }
}

static void pool_work(cce_pool *p) {
    int c, nc;
    while ((c = pool_claim(p, &nc)) >= 0) {
        p->fn(p->ctx, c, nc);
        atomic_fetch_add(&p->done, 1);
    }
}

static void *pool_worker(void *arg) {
    struct pool_arg *pa = arg;
    cce_pool *p = pa->p;
    pool_tid = pa->i;
    unsigned seen = 0;   // the value at creation: a job may be published before this thread runs
    for (;;) {
        unsigned w;
        double t0 = 0;
        for (long spins = 0;; spins++) {
            w = atomic_load(&p->wake);
            if (w != seen) break;
            if ((spins & 63) == 63) {
                double t = pool_now_ns();
                if (t0 == 0) t0 = t;
                if (t - t0 > SPIN_NS) {
                    atomic_fetch_add(&p->sleepers, 1);
                    if (atomic_load(&p->wake) == seen)
                        syscall(SYS_futex, (unsigned *)&p->wake, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
                    atomic_fetch_sub(&p->sleepers, 1);
                    t0 = 0;
                } else if (t - t0 > SPIN_PAUSE_NS) {
                    sched_yield();   // a busy machine: let whoever waits for this core have it
                }
            }
            pool_pause();
        }
        seen = w;
        if (atomic_load(&p->stop)) break;
        pool_work(p);
    }
    return NULL;
}

int cce_pool_default_threads(void) {
    const char *e = getenv("CCE_THREADS");
    if (e && *e) {
        int v = atoi(e);
        if (v >= 1 && v <= MAX_THREADS) return v;
    }
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > MAX_THREADS ? MAX_THREADS : n;
}

cce_status cce_pool_new(int n, cce_pool **out, cce_err *err) {
    *out = NULL;
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    cce_pool *p = cce_alloc_zero(1, sizeof *p);
    if (!p) return cce_err_set(err, CCE_ENOMEM, "thread pool: out of memory");
    atomic_init(&p->ticket, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->wake, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    for (int i = 1; i < n; i++) {
        p->args[i] = (struct pool_arg){p, i};
        if (pthread_create(&p->th[i], NULL, pool_worker, &p->args[i]) != 0) break;
        p->started++;
    }
    p->n = 1 + p->started;
    *out = p;
    return CCE_OK;
}

void cce_pool_free(cce_pool *p) {
    if (!p) return;
    if (p->started) {
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->wake, 1);
        syscall(SYS_futex, (unsigned *)&p->wake, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        for (int i = 1; i <= p->started; i++) pthread_join(p->th[i], NULL);
    }
    cce_free(p);
}

int cce_pool_threads(const cce_pool *p) { return p ? p->n : 1; }

void cce_pool_run(cce_pool *p, void (*fn)(void *ctx, int chunk, int n_chunks), void *ctx, int n_chunks) {
    if (n_chunks < 1) return;
    if (n_chunks > 0xffff) n_chunks = 0xffff;
    if (!p || p->n == 1 || n_chunks == 1 || p->solo > 0) {
        if (p && p->solo > 0) p->solo--;
        for (int c = 0; c < n_chunks; c++) fn(ctx, c, n_chunks);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->done, 0);
    uint64_t gen = (atomic_load(&p->ticket) >> 32) + 1;
    atomic_store(&p->ticket, gen << 32 | (uint64_t)n_chunks << 16);
    atomic_fetch_add(&p->wake, 1);
    if (atomic_load(&p->sleepers) > 0)
        syscall(SYS_futex, (unsigned *)&p->wake, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    double t0 = pool_now_ns();
    pool_work(p);
    double t1 = pool_now_ns();
    /* only chunks a worker has claimed are left; it is running them */
    for (long spins = 0; atomic_load(&p->done) < n_chunks; spins++) {
        pool_pause();
        if ((spins & 1023) == 1023) sched_yield();
    }
    /* Waiting longer than the caller's own share (plus 20 µs) means a worker lost its core in
     * the middle of a chunk (a busy machine): then the next `backoff` jobs run on the caller
     * alone, doubling up to 4096 while it goes on, halving back when a job runs clean. */
    double wait = pool_now_ns() - t1;
    if (wait > (t1 - t0) + 20000.0) {
        p->backoff = p->backoff < 16 ? 16 : p->backoff < 4096 ? 2 * p->backoff : 4096;
        p->solo = p->backoff;
    } else if (p->backoff > 0) {
        p->backoff /= 2;
    }
}

void cce_split(int total, int i, int n, int align, int *r0, int *r1) {
    if (align < 1) align = 1;
    long units = ((long)total + align - 1) / align;
    long a = units * i / n * align, b = units * (i + 1) / n * align;
    *r0 = (int)(a < total ? a : total);
    *r1 = (int)(b < total ? b : total);
}
