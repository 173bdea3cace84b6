/*
 * kernels.h — the fast kernels the forward pass reads weights with: matrix-vector products on
 * weights in their stored type (f32, f16, bf16, q8_0), row decoding to f32 for the batched
 * GEMMs, the int8 activation quantisation the q8_0 products use, and a small persistent thread
 * pool for the products that are worth two cores.
 *
 * quant.h holds the plain reference versions (cce_dequant, cce_wtype_dot); these compute the
 * same sums with AVX-512 where the compiler targets it (F16C for f16, a shift for bf16, VNNI
 * int8 dot products for q8_0) and fall back to the reference elsewhere. tests/unit/
 * test_kernels.c compares each against quant.c by max difference with the tolerances below.
 *
 * q8_0 products and the activation. As llama.cpp does, a q8_0 row is multiplied by the
 * activation quantised to int8 per block of 32: d_b = max_j |x_j| / 127, q_j = round(x_j / d_b)
 * (cce_kvec_quantize), and each block's dot product is exact in int32 (vpdpbusd), then scaled
 * by d_w·d_b. The only error beyond float rounding is the activation's rounding, |x_j − d_b q_j|
 * ≤ d_b / 2, so for a row w
 *     |y − Σ_j w_j x_j| ≤ ½ Σ_b d_b Σ_{j in b} |w_j|      (+ float accumulation rounding),
 * which test_kernels checks row by row. Without the int8 path (no AVX-512 VNNI, or a kvec
 * without codes) q8_0 rows are multiplied by the f32 activation as the reference does.
 *
 * Thread-safety: the kernels are pure. A cce_pool is driven by one thread at a time (its
 * owner); different pools are independent.
 */
#ifndef CCE_KERNELS_H
#define CCE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "quant.h"
#include "status.h"

/* Which instruction set the kernels were built for: "avx512-vnni", "avx512" or "generic". */
const char *cce_kern_isa(void);

/* An activation vector as the products read it: the f32 values and, for q8_0 weights, their
 * int8 codes and per-32 block scales (cce_kvec_quantize). */
typedef struct {
    int n;            // elements
    const float *x;   // (n) f32 values
    int8_t *q;        // (n) int8 codes, or NULL when not quantised
    float *d;         // (n/32) block scales d_b, or NULL
    int stream;       // 1: the weights stream from DRAM (cce_kern_llc_bytes): f32/f16/bf16 rows are read
                      // one at a time, sequentially, which measured 1.37x faster there than four
                      // interleaved rows; 0: four rows per pass, ~9 % faster on cache-resident weights
} cce_kvec;

/* Bytes of the last-level cache (sysfs for cpu0's L3, else sysconf; 0 if unknown). */
size_t cce_kern_llc_bytes(void);

/* 1 when cce_kern_gemv on weights of type t reads the int8 codes of the activation (so the
 * caller must cce_kvec_quantize it first); 0 when it reads the f32 values. */
int cce_kern_wants_q8(cce_wtype t);

/* v->q (n) and v->d (n/32) = the int8 quantisation of v->x described above; n a multiple of 32
 * and q, d allocated by the caller. */
void cce_kvec_quantize(cce_kvec *v);

/* y (rows) = W x: y[r] = Σ_j W[r][j]·x[j] over rows of x->n elements of type t at w, row
 * stride rb bytes (cce_wtype_row_bytes). t supported; x quantised when cce_kern_wants_q8(t)
 * (else the f32 values are used). */
void cce_kern_gemv(cce_wtype t, const void *w, size_t rb, int rows, const cce_kvec *x, float *y);

/* dst (n) = the n elements of type t at src (the fast cce_dequant; bit-identical to it). */
void cce_kern_dequant(cce_wtype t, const void *src, float *dst, int64_t n);

/* ---- decoding attention (one query position against a KV cache) ---- */

/* s[t] = scale · Σ_i q[i]·kt[i·ld + t] for t < T: the scores of one query head q (hd) against T
 * keys stored transposed, kt (hd, ld) with ld >= T. */
void cce_kern_scores(const float *q, const float *kt, int ld, int hd, int T, float scale, float *s);

/* o[i] = scale · Σ_t p[t]·v[t·hd + i] for i < hd: T value rows v (T, hd) mixed by weights p (T). */
void cce_kern_mix(const float *p, const float *v, int hd, int T, float scale, float *o);

/* The batched pass's causal attention, four query rows at a time (nq <= 4 of them, row j at
 * q + j·ldq): s[j·lds + t] = scale · q_j·k_t for t < T, keys transposed kt (hd, ldk); and
 * o[j·ldo + i] = scale_j · Σ_{t<T} p[j·ldp + t]·v[t·ldv + i] for i < hd, values v (T, ldv). The
 * caller zeroes the weights past each row's causal horizon. */
void cce_kern_scores4(const float *q, int ldq, int nq, const float *kt, int ldk, int hd, int T, float scale,
                      float *s, int lds);
void cce_kern_mix4(const float *p, int ldp, int nq, const float *v, int ldv, int hd, int T, const float *scale,
                   float *o, int ldo);

/* ---- thread pool ----
 * n threads in all: the caller of cce_pool_run and n − 1 workers. A job is cut into chunks
 * that every thread claims one at a time from a shared counter, the caller included, so a
 * worker that the OS has not scheduled (a busy machine) costs nothing but its share: the caller
 * does the chunks nobody took, and waits only for chunks a worker has actually started.
 * Workers spin for a short while after each job (back-to-back jobs of one decoding step pay no
 * wake-up), yielding the CPU as they spin, then sleep on a futex. When the caller has to wait
 * for a worker longer than its own share took (the worker lost its core mid-chunk: a machine
 * with more runnable threads than cores), the pool runs the next jobs on the caller alone, for a
 * backoff that doubles while that goes on; on a quiet machine this never triggers. */
typedef struct cce_pool cce_pool;

/* The number of threads a pool should have by default: $CCE_THREADS if set (1..64), else the
 * CPUs this process may run on (at most 64). */
int cce_pool_default_threads(void);

/* A pool of n threads (n >= 1; n == 1 starts none). If a worker cannot be started the pool has
 * fewer threads (cce_pool_threads tells), which is not an error; CCE_ENOMEM only for memory. */
cce_status cce_pool_new(int n, cce_pool **out, cce_err *err);
void cce_pool_free(cce_pool *p);
int cce_pool_threads(const cce_pool *p);

/* Run fn(ctx, c, n_chunks) once for every chunk c in [0, n_chunks) (1 <= n_chunks <= 65535),
 * on any of the pool's threads, and return when all have finished. A NULL pool runs them in
 * order on the caller. */
void cce_pool_run(cce_pool *p, void (*fn)(void *ctx, int chunk, int n_chunks), void *ctx, int n_chunks);

/* The calling thread's index in the pool it works for, in [0, cce_pool_threads): 0 for the
 * thread that calls cce_pool_run (and any thread that is not a pool worker), so a job may keep
 * scratch per thread. A job's chunks must not poll the caller's cancel scope (util.h): workers
 * have none; the caller polls between jobs. */
int cce_pool_thread(void);

/* Bounds [*r0, *r1) of part i of n of the range [0, total), in multiples of `align` (except
 * the last end): contiguous, in order, as even as the alignment allows. */
void cce_split(int total, int i, int n, int align, int *r0, int *r1);

#endif
