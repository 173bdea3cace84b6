/*
 * test_linalg.c — the BLAS/LAPACKE wrappers against the slow references in linalg_ref.c, on
 * small random matrices with fixed seeds; shape errors; Cholesky jitter; whitened SVD.
 */
#include <float.h>
#include "harness.h"
#include "linalg.h"
#include "util.h"

static void fill_normal(float *x, size_t n, uint64_t seed) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = cce_rng_normal(&r);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
    }
    return m;
}

TEST(gemm_matches_reference_all_transposes) {
    // op(A) (7, 5) x op(B) (5, 9)
    float a[7 * 5], b[5 * 9], c[7 * 9], r[7 * 9];
    fill_normal(a, 35, 1);
    fill_normal(b, 45, 2);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            cce_mat A = ta ? cce_mat_view(a, 5, 7) : cce_mat_view(a, 7, 5);
            cce_mat B = tb ? cce_mat_view(b, 9, 5) : cce_mat_view(b, 5, 9);
            cce_mat C = cce_mat_view(c, 7, 9), R = cce_mat_view(r, 7, 9);
            cce_err err;
            CHECK_OK(cce_linalg_gemm(ta, tb, 1.0f, &A, &B, 0.0f, &C, &err));
            cce_ref_gemm(ta, tb, &A, &B, &R);
            double d = max_abs_diff(c, r, 63);
            printf("  gemm ta=%d tb=%d max diff %.3g\n", ta, tb, d);
            CHECK_MSG(d < 1e-5, "gemm ta=%d tb=%d max diff %g", ta, tb, d);
        }
}

TEST(gemm_rejects_bad_shapes) {
    float a[12], b[12], c[12];
    cce_mat A = cce_mat_view(a, 3, 4), B = cce_mat_view(b, 3, 4), C = cce_mat_view(c, 3, 4);
    cce_err err = {{0}};
    CHECK_EQ_INT(cce_linalg_gemm(0, 0, 1, &A, &B, 0, &C, &err), CCE_EINVAL);
    CHECK(strstr(err.msg, "gemm") != NULL);
    cce_mat bad = {a, 3, 4, 2};   // ld < cols
    CHECK_EQ_INT(cce_linalg_gemm(0, 1, 1, &bad, &B, 0, &C, &err), CCE_EINVAL);
    cce_mat C3 = cce_mat_view(c, 3, 3);
    CHECK_EQ_INT(cce_linalg_gemm(0, 1, 1, &A, &B, 0, &C3, &err), CCE_OK);
}

TEST(syrk_matches_two_pass_products) {
    enum { R = 50, N = 11 };
    float x[R * N], c[N * N];
    fill_normal(x, R * N, 3);
    cce_mat X = cce_mat_view(x, R, N), C = cce_mat_view(c, N, N);
    cce_err err;
    CHECK_OK(cce_linalg_syrk(1.0f, &X, 0.0f, &C, &err));
    cce_linalg_symmetrize(&C);
    float r[N * N];
    cce_mat Rm = cce_mat_view(r, N, N);
    cce_ref_gemm(1, 0, &X, &X, &Rm);
    double d = max_abs_diff(c, r, N * N);
    printf("  syrk max diff %.3g\n", d);
    CHECK(d < 1e-4);
    cce_mat W = cce_mat_view(c, N - 1, N - 1);
    CHECK_EQ_INT(cce_linalg_syrk(1.0f, &X, 0.0f, &W, &err), CCE_EINVAL);
}

TEST(eigh_matches_jacobi) {
    enum { R = 40, N = 13 };
    float x[R * N], c[N * N], w[N];
    double cd[N * N], wr[N];
    fill_normal(x, R * N, 4);
    cce_mat X = cce_mat_view(x, R, N), C = cce_mat_view(c, N, N);
    cce_err err;
    CHECK_OK(cce_linalg_syrk(1.0f / R, &X, 0.0f, &C, &err));
    cce_linalg_symmetrize(&C);
    for (int i = 0; i < N * N; i++) cd[i] = c[i];
    int sweeps = cce_ref_eigenvalues(cd, N, wr);
    CHECK(sweeps > 0 && sweeps < 100);
    float v[N * N];
    memcpy(v, c, sizeof v);
    CHECK_OK(cce_linalg_eigh(&C, w, 0, &err));
    double d = 0;
    for (int i = 0; i < N; i++) d = fmax(d, fabs(w[i] - wr[i]));
    printf("  eigh vs Jacobi max diff %.3g (lambda_max %.3g)\n", d, wr[0]);
    CHECK(d < 1e-5 * wr[0] + 1e-6);
    for (int i = 1; i < N; i++) CHECK(w[i - 1] >= w[i]);
    // with vectors: A v_k = w_k v_k
    cce_mat V = cce_mat_view(v, N, N);
    float orig[N * N];
    memcpy(orig, v, sizeof orig);
    CHECK_OK(cce_linalg_eigh(&V, w, 1, &err));
    double res = 0;
    for (int k = 0; k < N; k++)
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j < N; j++) s += orig[i * N + j] * v[j * N + k];
            res = fmax(res, fabs(s - w[k] * v[i * N + k]));
        }
    printf("  eigenvector residual %.3g\n", res);
    CHECK(res < 1e-5);
}

TEST(cholesky_factors_and_jitters) {
    enum { R = 30, N = 8 };
    float x[R * N], a[N * N], l[N * N], p[N * N];
    fill_normal(x, R * N, 5);
    cce_mat X = cce_mat_view(x, R, N), A = cce_mat_view(a, N, N);
    cce_err err;
    CHECK_OK(cce_linalg_syrk(1.0f, &X, 0.0f, &A, &err));
    cce_linalg_symmetrize(&A);
    memcpy(l, a, sizeof l);
    cce_mat L = cce_mat_view(l, N, N), P = cce_mat_view(p, N, N);
    float jit = -1;
    CHECK_OK(cce_linalg_cholesky(&L, &jit, &err));
    CHECK(jit == 0);
    cce_ref_gemm(0, 1, &L, &L, &P);
    double d = max_abs_diff(p, a, N * N);
    printf("  L L^T - A max diff %.3g\n", d);
    CHECK(d < 1e-4);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) CHECK(l[i * N + j] == 0);
    // rank-deficient (a zero column gives an exactly zero pivot): needs jitter, still factors
    for (int r = 0; r < R; r++) x[r * N + 3] = 0;
    CHECK_OK(cce_linalg_syrk(1.0f, &X, 0.0f, &A, &err));
    cce_linalg_symmetrize(&A);
    CHECK_OK(cce_linalg_cholesky(&A, &jit, &err));
    printf("  jitter used on singular matrix %.3g\n", jit);
    CHECK(jit > 0);
    // indefinite matrix: fails with a message
    float ind[4] = {1, 0, 0, -100};
    cce_mat I2 = cce_mat_view(ind, 2, 2);
    CHECK_EQ_INT(cce_linalg_cholesky(&I2, &jit, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "positive definite") != NULL);
}

TEST(svd_values_match_eigen_of_gram) {
    enum { M = 9, N = 6 };
    float a[M * N], s[N];
    fill_normal(a, M * N, 6);
    cce_mat A = cce_mat_view(a, M, N);
    float keep[M * N];
    memcpy(keep, a, sizeof keep);
    cce_err err;
    CHECK_OK(cce_linalg_svd_values(&A, s, &err));
    CHECK(memcmp(keep, a, sizeof keep) == 0);
    double g[N * N], w[N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double t = 0;
            for (int r = 0; r < M; r++) t += (double)a[r * N + i] * a[r * N + j];
            g[i * N + j] = t;
        }
    cce_ref_eigenvalues(g, N, w);
    double d = 0;
    for (int i = 0; i < N; i++) d = fmax(d, fabs(s[i] - sqrt(fmax(w[i], 0))));
    printf("  singular values vs sqrt(eig(A^T A)) max diff %.3g\n", d);
    CHECK(d < 1e-4);
    // wide matrix too
    cce_mat At = cce_mat_view(a, N, M);
    CHECK_OK(cce_linalg_svd_values(&At, s, &err));
}

TEST(whitened_svd_matches_explicit_product) {
    // sigma(W L) with L the Cholesky factor of a covariance, via trmm, vs the explicit product
    enum { OUT = 7, IN = 10, R = 60 };
    float w[OUT * IN], x[R * IN], c[IN * IN], wl[OUT * IN], ex[OUT * IN], s1[OUT], s2[OUT];
    fill_normal(w, OUT * IN, 7);
    fill_normal(x, R * IN, 8);
    cce_mat X = cce_mat_view(x, R, IN), C = cce_mat_view(c, IN, IN);
    cce_err err;
    CHECK_OK(cce_linalg_syrk(1.0f / R, &X, 0.0f, &C, &err));
    cce_linalg_symmetrize(&C);
    CHECK_OK(cce_linalg_cholesky(&C, NULL, &err));
    memcpy(wl, w, sizeof wl);
    cce_mat WL = cce_mat_view(wl, OUT, IN), W = cce_mat_view(w, OUT, IN), EX = cce_mat_view(ex, OUT, IN);
    CHECK_OK(cce_linalg_trmm(1, 1, 0, &C, &WL, &err));
    cce_ref_gemm(0, 0, &W, &C, &EX);
    double dp = max_abs_diff(wl, ex, OUT * IN);
    CHECK_OK(cce_linalg_svd_values(&WL, s1, &err));
    CHECK_OK(cce_linalg_svd_values(&EX, s2, &err));
    double d = max_abs_diff(s1, s2, OUT);
    printf("  W L trmm vs explicit max diff %.3g, singular values max diff %.3g\n", dp, d);
    CHECK(dp < 1e-5 && d < 1e-4);
    // trsm undoes trmm
    CHECK_OK(cce_linalg_trsm(1, 1, 0, &C, &WL, &err));
    double back = max_abs_diff(wl, w, OUT * IN);
    printf("  trsm(trmm(W)) - W max diff %.3g\n", back);
    CHECK(back < 1e-4);
    cce_mat bad = cce_mat_view(wl, IN, OUT);
    CHECK_EQ_INT(cce_linalg_trmm(1, 1, 0, &C, &bad, &err), CCE_EINVAL);
}

TEST(spd_inverse_double) {
    enum { N = 6 };
    double a[N * N], inv[N * N];
    cce_rng r;
    cce_rng_seed(&r, 9);
    double b[N * N];
    for (int i = 0; i < N * N; i++) b[i] = cce_rng_normal(&r);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = i == j ? 0.5 : 0;
            for (int k = 0; k < N; k++) s += b[i * N + k] * b[j * N + k];
            a[i * N + j] = s;
        }
    memcpy(inv, a, sizeof inv);
    cce_err err;
    CHECK_OK(cce_linalg_spd_inverse_d(inv, N, &err));
    double d = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++) s += a[i * N + k] * inv[k * N + j];
            d = fmax(d, fabs(s - (i == j)));
        }
    printf("  A A^-1 - I max diff %.3g\n", d);
    CHECK(d < 1e-9);
    double neg[4] = {1, 2, 2, 1};
    CHECK_EQ_INT(cce_linalg_spd_inverse_d(neg, 2, &err), CCE_EFORMAT);
}

TEST(cka_reference_properties) {
    enum { R = 40, D = 5 };
    float x[R * D], y[R * D];
    fill_normal(x, R * D, 10);
    // CKA is invariant to isotropic scaling and orthogonal transforms: y = 3 * x permuted
    for (int r = 0; r < R; r++)
        for (int j = 0; j < D; j++) y[r * D + j] = 3 * x[r * D + (j + 2) % D] + 1.0f;
    CHECK_NEAR(cce_ref_cka(x, R, D, D, y, D, D), 1.0, 1e-9);
    fill_normal(y, R * D, 11);
    double c = cce_ref_cka(x, R, D, D, y, D, D);
    CHECK(c > 0 && c < 0.6);
}

static void fill_normal_d(double *x, size_t n, uint64_t seed) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = cce_rng_normal(&r);
}

/* The thin SVD with vectors, float and double, wide and tall, against one-sided Jacobi: the
 * singular values by max difference, the factors by reconstruction and orthonormality (vectors
 * are unique only up to sign). */
TEST(svd_with_vectors_matches_jacobi) {
    int shapes[2][2] = {{9, 6}, {5, 8}};
    for (int t = 0; t < 2; t++) {
        int m = shapes[t][0], n = shapes[t][1], k = m < n ? m : n;
        double a[72], s_ref[8], u_ref[72], vt_ref[72], sd[8], ud[72], vtd[72];
        float af[72], sf[8], uf[72], vtf[72];
        fill_normal_d(a, (size_t)m * n, 40 + t);
        for (int i = 0; i < m * n; i++) { af[i] = (float)a[i]; a[i] = af[i]; }
        int sweeps = cce_ref_svd(a, m, n, s_ref, u_ref, vt_ref);
        CHECK(sweeps > 0 && sweeps < 100);
        cce_matd A = cce_matd_view(a, m, n), U = cce_matd_view(ud, m, k), VT = cce_matd_view(vtd, k, n);
        cce_mat Af = cce_mat_view(af, m, n), Uf = cce_mat_view(uf, m, k), VTf = cce_mat_view(vtf, k, n);
        cce_err err;
        CHECK_OK(cce_linalg_svd_d(&A, sd, &U, &VT, &err));
        CHECK_OK(cce_linalg_svd(&Af, sf, &Uf, &VTf, &err));
        double ds = 0, dsf = 0, rec = 0, recf = 0, orth = 0, rref = 0;
        for (int i = 0; i < k; i++) {
            ds = fmax(ds, fabs(sd[i] - s_ref[i]));
            dsf = fmax(dsf, fabs(sf[i] - s_ref[i]));
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double x = 0, xf = 0, xr = 0;
                for (int q = 0; q < k; q++) {
                    x += ud[i * k + q] * sd[q] * vtd[q * n + j];
                    xf += (double)uf[i * k + q] * sf[q] * vtf[q * n + j];
                    xr += u_ref[i * k + q] * s_ref[q] * vt_ref[q * n + j];
                }
                rec = fmax(rec, fabs(x - a[i * n + j]));
                recf = fmax(recf, fabs(xf - a[i * n + j]));
                rref = fmax(rref, fabs(xr - a[i * n + j]));
            }
        for (int p = 0; p < k; p++)
            for (int q = 0; q < k; q++) {
                double uu = 0, vv = 0;
                for (int i = 0; i < m; i++) uu += ud[i * k + p] * ud[i * k + q];
                for (int j = 0; j < n; j++) vv += vtd[p * n + j] * vtd[q * n + j];
                orth = fmax(orth, fmax(fabs(uu - (p == q)), fabs(vv - (p == q))));
            }
        printf("  svd (%d, %d): values vs Jacobi double %.3g float %.3g; U S Vt - A double %.3g float %.3g "
               "(Jacobi's own %.3g); orthonormality %.3g\n", m, n, ds, dsf, rec, recf, rref, orth);
        CHECK(ds < 1e-13 && rec < 1e-13 && orth < 1e-13 && rref < 1e-13);   // measured ~3e-15
        CHECK(dsf < 5e-6 && recf < 5e-6);   // float: measured ~1e-6
        // values only through the same entry point
        CHECK_OK(cce_linalg_svd_d(&A, sd, NULL, NULL, &err));
        for (int i = 0; i < k; i++) CHECK(fabs(sd[i] - s_ref[i]) < 1e-12);
        cce_matd bad = cce_matd_view(ud, m, k + 1);
        CHECK_EQ_INT(cce_linalg_svd_d(&A, sd, &bad, &VT, &err), CCE_EINVAL);
    }
}

TEST(posv_matches_elimination) {
    enum { N = 7, K = 3 };
    double b0[N * N], a[N * N], rhs[N * K], x_ref[N * K];
    fill_normal_d(b0, N * N, 50);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double t = i == j ? 0.1 : 0;
            for (int q = 0; q < N; q++) t += b0[i * N + q] * b0[j * N + q];
            a[i * N + j] = t;
        }
    fill_normal_d(rhs, N * K, 51);
    CHECK_EQ_INT(cce_ref_solve(a, N, rhs, K, x_ref), 0);
    double ad[N * N], xd[N * K];
    float af[N * N], xf[N * K];
    memcpy(ad, a, sizeof ad);
    memcpy(xd, rhs, sizeof xd);
    for (int i = 0; i < N * N; i++) af[i] = (float)a[i];
    for (int i = 0; i < N * K; i++) xf[i] = (float)rhs[i];
    cce_matd A = cce_matd_view(ad, N, N), B = cce_matd_view(xd, N, K);
    cce_mat Af = cce_mat_view(af, N, N), Bf = cce_mat_view(xf, N, K);
    cce_err err;
    CHECK_OK(cce_linalg_posv_d(&A, &B, &err));
    CHECK_OK(cce_linalg_posv(&Af, &Bf, &err));
    double dd = 0, df = 0, scale = 0;
    for (int i = 0; i < N * K; i++) {
        dd = fmax(dd, fabs(xd[i] - x_ref[i]));
        df = fmax(df, fabs(xf[i] - x_ref[i]));
        scale = fmax(scale, fabs(x_ref[i]));
    }
    printf("  posv vs elimination: double %.3g float %.3g (max |x| %.3g)\n", dd, df, scale);
    CHECK(dd < 1e-13 * scale && df < 2e-6 * scale);   // measured 7e-16 and 4e-7 relative
    double nd[4] = {1, 2, 2, 1}, nb[2] = {1, 1};
    cce_matd NA = cce_matd_view(nd, 2, 2), NB = cce_matd_view(nb, 2, 1);
    CHECK_EQ_INT(cce_linalg_posv_d(&NA, &NB, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "positive definite") != NULL);
    cce_matd WB = cce_matd_view(nb, 1, 2);
    CHECK_EQ_INT(cce_linalg_posv_d(&A, &WB, &err), CCE_EINVAL);
}

TEST(eigh_double_with_vectors_matches_jacobi) {
    enum { N = 9 };
    double b0[N * N], a[N * N], w_ref[N], v_ref[N * N], w[N], v[N * N];
    fill_normal_d(b0, N * N, 60);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double t = 0;
            for (int q = 0; q < N; q++) t += b0[i * N + q] * b0[j * N + q];
            a[i * N + j] = t;
        }
    cce_ref_eigh(a, N, w_ref, v_ref);
    memcpy(v, a, sizeof v);
    cce_matd V = cce_matd_view(v, N, N);
    cce_err err;
    CHECK_OK(cce_linalg_eigh_d(&V, w, 1, &err));
    double dw = 0, res = 0, dv = 0;
    for (int k = 0; k < N; k++) {
        dw = fmax(dw, fabs(w[k] - w_ref[k]));
        double dot = 0;
        for (int i = 0; i < N; i++) dot += v[i * N + k] * v_ref[i * N + k];
        dv = fmax(dv, fabs(fabs(dot) - 1));   // same direction up to sign
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j < N; j++) s += a[i * N + j] * v[j * N + k];
            res = fmax(res, fabs(s - w[k] * v[i * N + k]));
        }
    }
    printf("  eigh_d vs Jacobi: values %.3g (lambda_max %.3g), |<v, v_ref>| - 1 %.3g, residual %.3g\n", dw, w_ref[0], dv, res);
    CHECK(dw < 1e-13 * w_ref[0] && dv < 1e-12 && res < 1e-13 * w_ref[0]);   // measured ~1e-15 relative
    memcpy(v, a, sizeof v);
    CHECK_OK(cce_linalg_eigh_d(&V, w, 0, &err));
    for (int k = 0; k < N; k++) CHECK(fabs(w[k] - w_ref[k]) < 1e-12 * w_ref[0]);
}

/* gemm_d / gemv_d / syrk_d / syr2k_d / trmm_d / cholesky_d against loops; the accounting counts. */
TEST(double_blas_matches_loops) {
    enum { M = 6, K = 5, N = 4 };
    double a[M * K], b[K * N], c[M * N], sym[M * M], sym2[M * M], x[K], y[M];
    fill_normal_d(a, M * K, 70);
    fill_normal_d(b, K * N, 71);
    fill_normal_d(x, K, 72);
    cce_err err;
    double t0 = cce_linalg_thread_seconds();
    cce_matd A = cce_matd_view(a, M, K), B = cce_matd_view(b, K, N), C = cce_matd_view(c, M, N);
    CHECK_OK(cce_linalg_gemm_d(0, 0, 1.0, &A, &B, 0.0, &C, &err));
    double d = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int q = 0; q < K; q++) s += a[i * K + q] * b[q * N + j];
            d = fmax(d, fabs(s - c[i * N + j]));
        }
    CHECK_OK(cce_linalg_gemv_d(0, 1.0, &A, x, 0.0, y, &err));
    for (int i = 0; i < M; i++) {
        double s = 0;
        for (int q = 0; q < K; q++) s += a[i * K + q] * x[q];
        d = fmax(d, fabs(s - y[i]));
    }
    // syrk: A Aᵀ (M, M); syr2k: A Bᵀ + B Aᵀ with B = A shifted
    cce_matd S = cce_matd_view(sym, M, M), S2 = cce_matd_view(sym2, M, M);
    memset(sym, 0, sizeof sym);
    memset(sym2, 0, sizeof sym2);
    CHECK_OK(cce_linalg_syrk_d(0, 1.0, &A, 0.0, &S, &err));
    double a2[M * K];
    for (int i = 0; i < M * K; i++) a2[i] = a[(i + 7) % (M * K)];
    cce_matd A2 = cce_matd_view(a2, M, K);
    CHECK_OK(cce_linalg_syr2k_d(0, 1.0, &A, &A2, 0.0, &S2, &err));
    for (int i = 0; i < M; i++)
        for (int j = i; j < M; j++) {
            double s = 0, s2 = 0;
            for (int q = 0; q < K; q++) {
                s += a[i * K + q] * a[j * K + q];
                s2 += a[i * K + q] * a2[j * K + q] + a2[i * K + q] * a[j * K + q];
            }
            d = fmax(d, fmax(fabs(s - sym[i * M + j]), fabs(s2 - sym2[i * M + j])));
        }
    // syrk with trans: Aᵀ A (K, K)
    double g[K * K];
    cce_matd Gm = cce_matd_view(g, K, K);
    CHECK_OK(cce_linalg_syrk_d(1, 1.0, &A, 0.0, &Gm, &err));
    for (int i = 0; i < K; i++)
        for (int j = i; j < K; j++) {
            double s = 0;
            for (int q = 0; q < M; q++) s += a[q * K + i] * a[q * K + j];
            d = fmax(d, fabs(s - g[i * K + j]));
        }
    // cholesky_d of A Aᵀ + I, then trmm L Lᵀ gives it back
    cce_linalg_symmetrize_d(sym, M);
    for (int i = 0; i < M; i++) sym[i * M + i] += 1;
    double l[M * M], ll[M * M];
    memcpy(l, sym, sizeof l);
    cce_matd L = cce_matd_view(l, M, M), LL = cce_matd_view(ll, M, M);
    CHECK_OK(cce_linalg_cholesky_d(&L, &err));
    for (int i = 0; i < M * M; i++) ll[i] = l[(i % M) * M + i / M];   // Lᵀ
    CHECK_OK(cce_linalg_trmm_d(0, 1, 0, &L, &LL, &err));               // L Lᵀ
    for (int i = 0; i < M * M; i++) d = fmax(d, fabs(ll[i] - sym[i]));
    // trsm_d undoes trmm_d: L⁻¹ (L X) = X, and X L⁻ᵀ solves the right-hand form
    double xx[M * 3], keepx[M * 3], xr[3 * M];
    fill_normal_d(xx, M * 3, 73);
    memcpy(keepx, xx, sizeof xx);
    cce_matd XX = cce_matd_view(xx, M, 3), XR = cce_matd_view(xr, 3, M);
    CHECK_OK(cce_linalg_trmm_d(0, 1, 0, &L, &XX, &err));
    CHECK_OK(cce_linalg_trsm_d(0, 1, 0, &L, &XX, &err));
    for (int i = 0; i < M * 3; i++) d = fmax(d, fabs(xx[i] - keepx[i]));
    for (int i = 0; i < 3 * M; i++) xr[i] = keepx[i];
    CHECK_OK(cce_linalg_trsm_d(1, 1, 1, &L, &XR, &err));   // Y = X L⁻ᵀ  <=>  Y Lᵀ = X
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < M; j++) {
            double t = 0;
            for (int q = 0; q <= j; q++) t += xr[i * M + q] * l[j * M + q];
            d = fmax(d, fabs(t - keepx[i * M + j]));
        }
    printf("  double BLAS vs loops max diff %.3g\n", d);
    CHECK(d < 1e-12);
    double neg[4] = {1, 2, 2, 1};
    cce_matd NG = cce_matd_view(neg, 2, 2);
    CHECK_EQ_INT(cce_linalg_cholesky_d(&NG, &err), CCE_EFORMAT);
    CHECK_EQ_INT(cce_linalg_gemm_d(0, 0, 1.0, &A, &A, 0.0, &C, &err), CCE_EINVAL);
    CHECK_EQ_INT(cce_linalg_syr2k_d(0, 1.0, &A, &B, 0.0, &S2, &err), CCE_EINVAL);
    // transposed form: Aᵀ B + Bᵀ A (K, K) for A, B (M, K)
    double t2[K * K];
    cce_matd T2 = cce_matd_view(t2, K, K);
    CHECK_OK(cce_linalg_syr2k_d(1, 1.0, &A, &A2, 0.0, &T2, &err));
    for (int i = 0; i < K; i++)
        for (int j = i; j < K; j++) {
            double s2 = 0;
            for (int q = 0; q < M; q++) s2 += a[q * K + i] * a2[q * K + j] + a2[q * K + i] * a[q * K + j];
            CHECK(fabs(s2 - t2[i * K + j]) < 1e-12);
        }
    CHECK(cce_linalg_thread_seconds() > t0);
    int prev = cce_linalg_set_threads(0);
    CHECK(prev >= 1 && cce_linalg_set_threads(0) == prev);
}

int main(void) {
    RUN(gemm_matches_reference_all_transposes);
    RUN(gemm_rejects_bad_shapes);
    RUN(syrk_matches_two_pass_products);
    RUN(eigh_matches_jacobi);
    RUN(cholesky_factors_and_jitters);
    RUN(svd_values_match_eigen_of_gram);
    RUN(whitened_svd_matches_explicit_product);
    RUN(spd_inverse_double);
    RUN(cka_reference_properties);
    RUN(svd_with_vectors_matches_jacobi);
    RUN(posv_matches_elimination);
    RUN(eigh_double_with_vectors_matches_jacobi);
    RUN(double_blas_matches_loops);
    return harness_done();
}
