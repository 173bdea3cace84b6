/*
 * test_kernels.c — the fast kernels of kernels.c against the reference versions of quant.c:
 * row decoding (bit-identical), matrix-vector products per stored type (by max difference
 * within the float-summation bound), the int8 activation quantisation and the q8_0 product
 * (exact in the codes, and within the stated activation-rounding bound of the f32 product),
 * and the thread pool (every share run exactly once per job, across many jobs and sleeps).
 *
 * Tolerances, with u = 2^-24 (f32 unit roundoff):
 *  - f32/f16/bf16 rows: the fast and the reference sums each err by at most n·u·Σ_j |w_j x_j|
 *    (any summation order), so they may differ by 2·n·u·Σ|w_j x_j|.
 *  - q8_0 with the int8 activation: against the exact product of the decoded row and the f32
 *    activation, ½·Σ_b d_b·Σ_{j∈b} |w_j| (kernels.h) plus the same summation term; against
 *    the exact product of the codes (Σ_b dw_b·d_b·Σ_j qw_j·q_j, in double) only the summation
 *    term, which is what proves the VNNI arithmetic itself.
 */
#include <stdatomic.h>
#include "harness.h"
#include "kernels.h"
#include "quant.h"
#include "util.h"

static const double U = 1.0 / 16777216.0;

static void fill(float *x, size_t n, uint64_t seed, float scale) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = scale * cce_rng_normal(&r);
}

/* rows x n random weights stored as t; *f32 gets the decoded (reference) values. */
static uint8_t *stored(cce_wtype t, int rows, int n, uint64_t seed, float **f32) {
    size_t rb = cce_wtype_row_bytes(t, n);
    float *w = cce_alloc((size_t)rows * n, sizeof(float));
    uint8_t *q = cce_alloc((size_t)rows, rb);
    cce_err e;
    fill(w, (size_t)rows * n, seed, 0.5f);
    for (int r = 0; r < rows; r++) cce_quantize(t, w + (size_t)r * n, q + (size_t)r * rb, n, &e);
    cce_dequant_rows(t, q, rows, n, w);
    *f32 = w;
    return q;
}

TEST(dequant_bit_identical) {
    cce_wtype ts[3] = {CCE_WT_F16, CCE_WT_BF16, CCE_WT_Q8_0};
    int ns[4] = {32, 96, 1024, 37};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++) {
            int n = ns[i];
            if (n % cce_wtype_block(ts[k])) continue;
            float *ref = NULL;
            uint8_t *q = stored(ts[k], 1, n, 10 + (uint64_t)i, &ref);
            float *got = cce_alloc((size_t)n, sizeof(float));
            cce_kern_dequant(ts[k], q, got, n);
            int same = memcmp(got, ref, (size_t)n * sizeof(float)) == 0;
            cce_free(got); cce_free(ref); cce_free(q);
            CHECK_MSG(same, "%s, n = %d: fast decode differs from cce_dequant", cce_wtype_name(ts[k]), n);
        }
}

TEST(gemv_float_types_match_reference) {
    cce_wtype ts[3] = {CCE_WT_F32, CCE_WT_F16, CCE_WT_BF16};
    int shapes[6][2] = {{1, 16}, {7, 37}, {64, 192}, {13, 1536}, {4, 5}, {6, 32}};  // rows, n (odd tails, 4-row
                                                                                  // remainders, bf16's 32-wide path)
    double worst_ratio = 0;
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 6; s++) {
            int rows = shapes[s][0], n = shapes[s][1];
            float *wf = NULL, *x = cce_alloc((size_t)n, sizeof(float)), *y = cce_alloc((size_t)rows, sizeof(float));
            uint8_t *w = stored(ts[k], rows, n, 20 + (uint64_t)s, &wf);
            fill(x, (size_t)n, 30 + (uint64_t)s, 1.0f);
            for (int stream = 0; stream < 2; stream++) {   // four rows per pass, or one (DRAM)
            cce_kvec v = {.n = n, .x = x, .stream = stream};
            cce_kern_gemv(ts[k], w, cce_wtype_row_bytes(ts[k], n), rows, &v, y);
            for (int r = 0; r < rows; r++) {
                float ref = cce_wtype_dot(ts[k], w + (size_t)r * cce_wtype_row_bytes(ts[k], n), x, n);
                double mag = 0;
                for (int j = 0; j < n; j++) mag += fabs((double)wf[(size_t)r * n + j] * x[j]);
                double tol = 2.0 * n * U * mag, d = fabs((double)y[r] - ref);
                if (tol > 0 && d / tol > worst_ratio) worst_ratio = d / tol;
                CHECK_MSG(d <= tol, "%s %dx%d row %d (stream %d): fast %.9g vs reference %.9g (diff %.3g > tol %.3g)",
                          cce_wtype_name(ts[k]), rows, n, r, stream, y[r], ref, d, tol);
            }
            }
            cce_free(wf); cce_free(w); cce_free(x); cce_free(y);
        }
    printf("# float-type GEMV: worst diff / bound = %.3f\n", worst_ratio);
}

/* The codes and scales of the int8 activation: d = max|x|/127, q = round-half-even(x·127/max|x|). */
TEST(activation_quantisation) {
    int n = 96;
    float x[96];
    int8_t q[96];
    float d[3];
    fill(x, 96, 40, 2.0f);
    for (int j = 32; j < 64; j++) x[j] = 0;       // an all-zero block: d = 0, codes 0
    x[70] = -7.0f;                                // a block whose extreme is negative
    cce_kvec v = {.n = n, .x = x, .q = q, .d = d};
    cce_kvec_quantize(&v);
    for (int b = 0; b < 3; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fabsf(x[b * 32 + j]) > amax ? fabsf(x[b * 32 + j]) : amax;
        CHECK_MSG(d[b] == amax / 127.0f, "block %d: d %.9g, expected %.9g", b, d[b], amax / 127.0f);
        float id = amax > 0 ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32; j++) {
            int want = (int)lrintf(x[b * 32 + j] * id);
            CHECK_MSG(q[b * 32 + j] == want, "x[%d] = %g: code %d, expected %d", b * 32 + j, x[b * 32 + j],
                      q[b * 32 + j], want);
            CHECK(fabs((double)x[b * 32 + j] - (double)d[b] * q[b * 32 + j]) <= d[b] * 0.5 * (1 + 1e-6));
        }
    }
    CHECK_EQ_INT(q[70], -127);
    CHECK(d[1] == 0);
}

TEST(gemv_q8_0_int8_exact_in_codes_and_within_activation_bound) {
    if (!cce_kern_wants_q8(CCE_WT_Q8_0)) SKIP_TEST("this build (%s) multiplies q8_0 by the f32 activation", cce_kern_isa());
    int shapes[4][2] = {{5, 32}, {9, 96}, {64, 576}, {3, 1536}};   // odd and even block counts
    double worst_code = 0, worst_bound = 0, max_err = 0;
    for (int s = 0; s < 4; s++) {
        int rows = shapes[s][0], n = shapes[s][1], nb = n / 32;
        size_t rb = cce_wtype_row_bytes(CCE_WT_Q8_0, n);
        float *wf = NULL, *x = cce_alloc((size_t)n, sizeof(float)), *y = cce_alloc((size_t)rows, sizeof(float));
        float *d = cce_alloc((size_t)nb, sizeof(float));
        int8_t *q = cce_alloc((size_t)n, 1);
        uint8_t *w = stored(CCE_WT_Q8_0, rows, n, 50 + (uint64_t)s, &wf);
        fill(x, (size_t)n, 60 + (uint64_t)s, 1.0f);
        x[3] = 9.0f;   // an outlier: its block's codes are coarse
        cce_kvec v = {.n = n, .x = x, .q = q, .d = d};
        cce_kvec_quantize(&v);
        cce_kern_gemv(CCE_WT_Q8_0, w, rb, rows, &v, y);
        for (int r = 0; r < rows; r++) {
            const uint8_t *row = w + (size_t)r * rb;
            double exact = 0, mag = 0, bound = 0, codes = 0;
            for (int j = 0; j < n; j++) {
                exact += (double)wf[(size_t)r * n + j] * x[j];
                mag += fabs((double)wf[(size_t)r * n + j] * x[j]);
            }
            for (int b = 0; b < nb; b++) {
                double l1 = 0;
                long isum = 0;
                for (int j = 0; j < 32; j++) {
                    l1 += fabs((double)wf[(size_t)r * n + b * 32 + j]);
                    isum += (long)(int8_t)row[b * 34 + 2 + j] * q[b * 32 + j];
                }
                bound += 0.5 * d[b] * l1;
                codes += (double)cce_f16_to_f32((uint16_t)(row[b * 34] | row[b * 34 + 1] << 8)) * d[b] * (double)isum;
            }
            double sum_tol = 2.0 * n * U * (mag + bound), err = fabs(y[r] - exact), dc = fabs(y[r] - codes);
            CHECK_MSG(err <= bound + sum_tol, "%dx%d row %d: %.9g vs exact %.9g, error %.3g > bound %.3g", rows, n,
                      r, y[r], exact, err, bound + sum_tol);
            CHECK_MSG(dc <= sum_tol, "%dx%d row %d: %.9g vs the codes' exact product %.9g (diff %.3g > %.3g)", rows,
                      n, r, y[r], codes, dc, sum_tol);
            if (err > max_err) max_err = err;
            if (err / (bound + sum_tol) > worst_bound) worst_bound = err / (bound + sum_tol);
            if (dc / sum_tol > worst_code) worst_code = dc / sum_tol;
        }
        cce_free(wf); cce_free(w); cce_free(x); cce_free(y); cce_free(d); cce_free(q);
    }
    printf("# q8_0 GEMV on int8 activations: max error %.3g; worst error / activation bound %.3f; worst diff from "
           "the codes' product / summation bound %.3f\n", max_err, worst_bound, worst_code);
    CHECK_MSG(max_err > 0, "the int8 path gave the f32 product exactly: not taken?");
}

TEST(gemv_q8_0_f32_activation) {
    int shapes[3][2] = {{5, 32}, {9, 96}, {3, 1536}};
    for (int s = 0; s < 3; s++) {
        int rows = shapes[s][0], n = shapes[s][1];
        size_t rb = cce_wtype_row_bytes(CCE_WT_Q8_0, n);
        float *wf = NULL, *x = cce_alloc((size_t)n, sizeof(float)), *y = cce_alloc((size_t)rows, sizeof(float));
        uint8_t *w = stored(CCE_WT_Q8_0, rows, n, 70 + (uint64_t)s, &wf);
        fill(x, (size_t)n, 80 + (uint64_t)s, 1.0f);
        cce_kvec v = {.n = n, .x = x};   // no codes: the f32 values are read
        cce_kern_gemv(CCE_WT_Q8_0, w, rb, rows, &v, y);
        for (int r = 0; r < rows; r++) {
            double exact = 0, mag = 0;
            for (int j = 0; j < n; j++) {
                exact += (double)wf[(size_t)r * n + j] * x[j];
                mag += fabs((double)wf[(size_t)r * n + j] * x[j]);
            }
            CHECK_MSG(fabs(y[r] - exact) <= 2.0 * n * U * mag, "%dx%d row %d: %.9g vs %.9g (tol %.3g)", rows, n, r,
                      y[r], exact, 2.0 * n * U * mag);
        }
        cce_free(wf); cce_free(w); cce_free(x); cce_free(y);
    }
}

/* ---- decoding attention ---- */

TEST(attention_kernels_match_reference) {
    int hds[11] = {1, 2, 4, 6, 8, 16, 32, 40, 64, 80, 128}, Ts[8] = {1, 5, 16, 17, 63, 64, 65, 200};
    int ld = 203;   // keys transposed (hd, ld), ld > T
    float *kt = cce_alloc((size_t)128 * ld, sizeof(float)), *v = cce_alloc((size_t)200 * 128, sizeof(float));
    float q[128], p[200], s[208], o[128];
    fill(kt, (size_t)128 * ld, 90, 1.0f);
    fill(v, (size_t)200 * 128, 91, 1.0f);
    fill(q, 128, 92, 1.0f);
    fill(p, 200, 93, 1.0f);
    for (int a = 0; a < 11; a++)
        for (int b = 0; b < 8; b++) {
            int hd = hds[a], T = Ts[b];
            s[T] = 12345.0f;   // must stay untouched
            cce_kern_scores(q, kt, ld, hd, T, 0.5f, s);
            for (int t = 0; t < T; t++) {
                double ref = 0, mag = 0;
                for (int i = 0; i < hd; i++) {
                    ref += (double)q[i] * kt[(size_t)i * ld + t];
                    mag += fabs((double)q[i] * kt[(size_t)i * ld + t]);
                }
                CHECK_MSG(fabs(s[t] - 0.5 * ref) <= 2.0 * hd * U * mag + 1e-30, "scores hd %d T %d t %d: %.9g vs %.9g",
                          hd, T, t, s[t], 0.5 * ref);
            }
            CHECK_MSG(s[T] == 12345.0f, "scores hd %d T %d wrote past T", hd, T);
            if (hd < 128) o[hd] = 777.0f;   // must stay untouched
            cce_kern_mix(p, v, hd, T, 0.25f, o);
            for (int i = 0; i < hd; i++) {
                double ref = 0, mag = 0;
                for (int t = 0; t < T; t++) {
                    ref += (double)p[t] * v[(size_t)t * hd + i];
                    mag += fabs((double)p[t] * v[(size_t)t * hd + i]);
                }
                CHECK_MSG(fabs(o[i] - 0.25 * ref) <= 2.0 * T * U * mag + 1e-30, "mix hd %d T %d i %d: %.9g vs %.9g", hd,
                          T, i, o[i], 0.25 * ref);
            }
            if (hd < 128) CHECK_MSG(o[hd] == 777.0f, "mix hd %d T %d wrote past hd", hd, T);
        }
    cce_free(kt);
    cce_free(v);
}

TEST(attention4_kernels_match_reference) {
    int hds[6] = {6, 8, 16, 40, 64, 128}, Ts[6] = {1, 7, 16, 33, 64, 150};
    int ldk = 160, ldq = 133, lds = 151, ldv = 140, ldo = 135;
    float *q = cce_alloc(4 * (size_t)ldq, sizeof(float)), *kt = cce_alloc(128 * (size_t)ldk, sizeof(float));
    float *v = cce_alloc(150 * (size_t)ldv, sizeof(float)), *p = cce_alloc(4 * (size_t)lds, sizeof(float));
    float *s = cce_alloc(4 * (size_t)lds, sizeof(float)), *o = cce_alloc(4 * (size_t)ldo, sizeof(float));
    fill(q, 4 * (size_t)ldq, 94, 1.0f);
    fill(kt, 128 * (size_t)ldk, 95, 1.0f);
    fill(v, 150 * (size_t)ldv, 96, 1.0f);
    fill(p, 4 * (size_t)lds, 97, 1.0f);
    float scale[4] = {0.5f, 2.0f, -1.0f, 0.25f};
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++)
            for (int nq = 1; nq <= 4; nq++) {
                int hd = hds[a], T = Ts[b];
                for (size_t k = 0; k < 4 * (size_t)lds; k++) s[k] = 777.0f;
                for (size_t k = 0; k < 4 * (size_t)ldo; k++) o[k] = 777.0f;
                cce_kern_scores4(q, ldq, nq, kt, ldk, hd, T, 0.5f, s, lds);
                cce_kern_mix4(p, lds, nq, v, ldv, hd, T, scale, o, ldo);
                for (int j = 0; j < 4; j++) {
                    for (int t = 0; t < T; t++) {
                        double ref = 0, mag = 0;
                        for (int i = 0; i < hd; i++) {
                            ref += (double)q[j * ldq + i] * kt[(size_t)i * ldk + t];
                            mag += fabs((double)q[j * ldq + i] * kt[(size_t)i * ldk + t]);
                        }
                        if (j < nq)
                            CHECK_MSG(fabs(s[j * lds + t] - 0.5 * ref) <= 2.0 * hd * U * mag, "scores4 hd %d T %d row %d t %d",
                                      hd, T, j, t);
                        else CHECK_MSG(s[j * lds + t] == 777.0f, "scores4 nq %d wrote row %d", nq, j);
                    }
                    CHECK_MSG(s[j * lds + T] == 777.0f, "scores4 wrote past T");
                    for (int i = 0; i < hd; i++) {
                        double ref = 0, mag = 0;
                        for (int t = 0; t < T; t++) {
                            ref += (double)p[j * lds + t] * v[(size_t)t * ldv + i];
                            mag += fabs((double)p[j * lds + t] * v[(size_t)t * ldv + i]);
                        }
                        if (j < nq)
                            CHECK_MSG(fabs(o[j * ldo + i] - scale[j] * ref) <= 2.0 * T * U * mag * fabs(scale[j]),
                                      "mix4 hd %d T %d row %d i %d: %g vs %g", hd, T, j, i, o[j * ldo + i], scale[j] * ref);
                        else CHECK_MSG(o[j * ldo + i] == 777.0f, "mix4 nq %d wrote row %d", nq, j);
                    }
                    CHECK_MSG(o[j * ldo + hd] == 777.0f, "mix4 wrote past hd");
                }
            }
    cce_free(q); cce_free(kt); cce_free(v); cce_free(p); cce_free(s); cce_free(o);
}

/* ---- pool ---- */

typedef struct {
    atomic_int hits[100];
    atomic_int bad;
    int expect_n, threads;
    atomic_int by_thread[64];
} pool_job;

static void pool_fn(void *ctx, int c, int n) {
    pool_job *j = ctx;
    int t = cce_pool_thread();
    if (n != j->expect_n || c < 0 || c >= n || t < 0 || t >= (j->threads ? j->threads : 1)) atomic_fetch_add(&j->bad, 1);
    else {
        atomic_fetch_add(&j->hits[c], 1);
        atomic_fetch_add(&j->by_thread[t], 1);
    }
}

TEST(pool_runs_every_chunk_once) {
    cce_pool *p = NULL;
    cce_err e;
    CHECK_OK(cce_pool_new(3, &p, &e));
    CHECK_EQ_INT(cce_pool_threads(p), 3);   // threads need no free cores to start
    int sizes[4] = {1, 2, 7, 100}, jobs = 5000;
    for (int k = 0; k < 4; k++) {
        pool_job j = {.expect_n = sizes[k], .threads = 3};
        for (int it = 0; it < jobs; it++) {
            cce_pool_run(p, pool_fn, &j, sizes[k]);
            if (k == 2 && it == jobs / 2) usleep(300000);   // the workers sleep on the futex, then must wake
        }
        int ok = atomic_load(&j.bad) == 0, total = 0;
        for (int c = 0; c < sizes[k]; c++) ok = ok && atomic_load(&j.hits[c]) == jobs;
        for (int t = 0; t < 3; t++) total += atomic_load(&j.by_thread[t]);
        ok = ok && total == jobs * sizes[k];   // every chunk ran on a thread whose index is in [0, 3)
        CHECK_MSG(ok, "%d chunks: bad %d, hits[0] %d, hits[last] %d of %d", sizes[k], atomic_load(&j.bad),
                  atomic_load(&j.hits[0]), atomic_load(&j.hits[sizes[k] - 1]), jobs);
    }
    cce_pool_free(p);
    /* a one-thread pool and a NULL pool run the chunks in order on the caller */
    cce_pool *one = NULL;
    CHECK_OK(cce_pool_new(1, &one, &e));
    pool_job j1 = {.expect_n = 5, .threads = 1};
    cce_pool_run(one, pool_fn, &j1, 5);
    cce_pool_run(NULL, pool_fn, &j1, 5);
    cce_pool_free(one);
    for (int c = 0; c < 5; c++) CHECK_EQ_INT(atomic_load(&j1.hits[c]), 2);
    /* a pool freed while its workers sleep */
    cce_pool *s = NULL;
    CHECK_OK(cce_pool_new(2, &s, &e));
    usleep(300000);
    cce_pool_free(s);
}

TEST(split_covers_the_range) {
    int totals[5] = {0, 1, 7, 100, 1537}, aligns[3] = {1, 4, 32};
    for (int a = 0; a < 3; a++)
        for (int t = 0; t < 5; t++)
            for (int n = 1; n <= 5; n++) {
                int next = 0;
                for (int i = 0; i < n; i++) {
                    int r0, r1;
                    cce_split(totals[t], i, n, aligns[a], &r0, &r1);
                    CHECK_MSG(r0 == next && r1 >= r0 && (r0 % aligns[a] == 0 || r0 == totals[t]),
                              "total %d align %d part %d/%d: [%d, %d) after %d", totals[t], aligns[a], i, n, r0, r1, next);
                    next = r1;
                }
                CHECK_EQ_INT(next, totals[t]);
            }
}

int main(void) {
    printf("# kernels: %s\n", cce_kern_isa());
    RUN(dequant_bit_identical);
    RUN(gemv_float_types_match_reference);
    RUN(activation_quantisation);
    RUN(gemv_q8_0_int8_exact_in_codes_and_within_activation_bound);
    RUN(gemv_q8_0_f32_activation);
    RUN(attention_kernels_match_reference);
    RUN(attention4_kernels_match_reference);
    RUN(pool_runs_every_chunk_once);
    RUN(split_covers_the_range);
    return harness_done();
}
