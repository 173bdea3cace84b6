/*
 * linalg.h — the one thin module through which the engine calls BLAS and LAPACKE.
 *
 * A cce_mat is a row-major view {data, rows, cols, ld} (ld >= cols); it never owns memory
 * unless made by cce_mat_alloc. Every wrapper checks the shapes of its operands, refuses
 * inconsistent ones with CCE_EINVAL (one line naming the operation and the shapes), and maps
 * LAPACK's `info` to a cce_status: info < 0 is a programming error (CCE_EINVAL), info > 0 a
 * numerical failure (not positive definite, no convergence: CCE_EFORMAT with the index).
 *
 * Slow, obvious references of the same kernels live in engine/linalg_ref.c (cce_ref_*); they are
 * used only by tests, which compare the fast version against them by max difference.
 *
 * Double precision: a cce_matd is the same view over doubles. The OBS selection (select.c) and
 * the Gram-matrix spectra run in double because ridge-regularised inverses of nearly singular
 * covariances lose ~log10(1/ridge) digits.
 *
 * Accounting: every wrapper adds the wall time it spends inside BLAS/LAPACK to a per-thread
 * counter (cce_linalg_thread_seconds), so callers can report the share of their time that is
 * really BLAS/LAPACK-bound (scalar loops around the calls are not counted).
 *
 * Thread-safety: all functions are reentrant; operands must not be shared with a writer. The
 * BLAS thread count (cce_linalg_set_threads) is process-wide.
 */
#ifndef CCE_LINALG_H
#define CCE_LINALG_H

#include <stddef.h>
#include "status.h"

typedef struct {
    float *data;    // (rows, cols) row-major, element (i, j) at data[i*ld + j]
    int rows, cols, ld;
} cce_mat;

/* A view of existing memory; ld == cols. */
cce_mat cce_mat_view(float *data, int rows, int cols);
/* Allocate a zeroed (rows, cols) matrix with ld == cols. Free with cce_mat_free. */
cce_status cce_mat_alloc(cce_mat *m, int rows, int cols, cce_err *err);
void cce_mat_free(cce_mat *m);

/* C = alpha * op(A) op(B) + beta * C, op = transpose when trans_x != 0 (cblas_sgemm). */
cce_status cce_linalg_gemm(int trans_a, int trans_b, float alpha, const cce_mat *a,
                           const cce_mat *b, float beta, cce_mat *c, cce_err *err);

/* C (n, n) = alpha * X^T X + beta * C for X (rows, n) (cblas_ssyrk). Only the upper triangle
 * (j >= i) of C is written; call cce_linalg_symmetrize to mirror it. */
cce_status cce_linalg_syrk(float alpha, const cce_mat *x, float beta, cce_mat *c, cce_err *err);
/* Copy the upper triangle of the square matrix a into its lower triangle. */
void cce_linalg_symmetrize(cce_mat *a);
void cce_linalg_symmetrize_d(double *a, int n);   // (n, n), ld n

/* Eigenvalues of the symmetric matrix a (n, n) in DESCENDING order into w (n) (LAPACKE_ssyevd).
 * vectors == 0: a is destroyed. vectors != 0: a is overwritten with the eigenvectors; column k
 * of a is the unit eigenvector of w[k]. */
cce_status cce_linalg_eigh(cce_mat *a, float *w, int vectors, cce_err *err);

/* Cholesky factor of the symmetric positive (semi)definite a (n, n) in place: lower triangle
 * holds L with a = L L^T, the strict upper triangle is zeroed. When the factorisation fails the
 * diagonal gets a jitter of 1e-6 * mean(diag) (then x10, up to 6 retries) added to a copy of
 * the original; *jitter (may be NULL) receives the absolute jitter used (0 when none). A zero
 * matrix gets jitter 1e-12 scale so it factors. Fails with CCE_EFORMAT when all retries fail. */
cce_status cce_linalg_cholesky(cce_mat *a, float *jitter, cce_err *err);

/* Singular values of a (rows, cols) in descending order into s (min(rows, cols))
 * (LAPACKE_sgesdd, jobz 'N'). a is not modified (a copy is factored). */
cce_status cce_linalg_svd_values(const cce_mat *a, float *s, cce_err *err);

/* B = op(B) with a triangular A (n, n) (cblas_strmm / cblas_strsm):
 *   right != 0: B (m, n) := B op(A)   or   B op(A)^-1 (solve)
 *   right == 0: B (n, m) := op(A) B   or   op(A)^-1 B
 * lower: A is lower (else upper) triangular; trans: op(A) = A^T. */
cce_status cce_linalg_trmm(int right, int lower, int trans, const cce_mat *a, cce_mat *b, cce_err *err);
cce_status cce_linalg_trsm(int right, int lower, int trans, const cce_mat *a, cce_mat *b, cce_err *err);

/* Inverse of the symmetric positive definite a (n, n), double, in place (LAPACKE_dpotrf +
 * dpotri, then mirrored to full). Fails with CCE_EFORMAT if a is not positive definite. */
cce_status cce_linalg_spd_inverse_d(double *a, int n, cce_err *err);

/* ---- double precision ---- */

typedef struct {
    double *data;   // (rows, cols) row-major, element (i, j) at data[i*ld + j]
    int rows, cols, ld;
} cce_matd;

static inline cce_matd cce_matd_view(double *data, int rows, int cols) {
    cce_matd m = {data, rows, cols, cols};
    return m;
}

/* C = alpha op(A) op(B) + beta C (cblas_dgemm). */
cce_status cce_linalg_gemm_d(int trans_a, int trans_b, double alpha, const cce_matd *a, const cce_matd *b,
                             double beta, cce_matd *c, cce_err *err);
/* y (m) = alpha op(A) x + beta y (cblas_dgemv); x has op(A)'s column count, strides 1. */
cce_status cce_linalg_gemv_d(int trans_a, double alpha, const cce_matd *a, const double *x, double beta, double *y,
                             cce_err *err);
/* C (n, n) = alpha op(A) op(A)ᵀ + beta C, upper triangle only (cblas_dsyrk):
 * trans == 0: A is (n, k), C = A Aᵀ; trans != 0: A is (k, n), C = Aᵀ A. */
cce_status cce_linalg_syrk_d(int trans, double alpha, const cce_matd *a, double beta, cce_matd *c, cce_err *err);
/* C (n, n) = alpha (A Bᵀ + B Aᵀ) + beta C for A, B (n, k) (trans == 0), or alpha (Aᵀ B + Bᵀ A)
 * for A, B (k, n) (trans != 0); upper triangle only (cblas_dsyr2k). */
cce_status cce_linalg_syr2k_d(int trans, double alpha, const cce_matd *a, const cce_matd *b, double beta, cce_matd *c,
                              cce_err *err);
/* B := op(A) B (left) or B op(A) (right) with A lower/upper triangular (cblas_dtrmm). */
cce_status cce_linalg_trmm_d(int right, int lower, int trans, const cce_matd *a, cce_matd *b, cce_err *err);
/* B := op(A)⁻¹ B (left) or B op(A)⁻¹ (right) with A lower/upper triangular (cblas_dtrsm);
 * CCE_EFORMAT when A has a zero diagonal. */
cce_status cce_linalg_trsm_d(int right, int lower, int trans, const cce_matd *a, cce_matd *b, cce_err *err);
/* Cholesky factor in place, no jitter: lower triangle = L with A = L Lᵀ, strict upper zeroed
 * (dpotrf). CCE_EFORMAT (with the failing minor) when A is not positive definite. */
cce_status cce_linalg_cholesky_d(cce_matd *a, cce_err *err);
/* Eigenvalues of the symmetric a (n, n) in DESCENDING order into w (n) (LAPACKE_dsyevd); with
 * vectors, column k of a becomes the unit eigenvector of w[k], else a is destroyed. */
cce_status cce_linalg_eigh_d(cce_matd *a, double *w, int vectors, cce_err *err);
/* Solve A X = B for symmetric positive definite A (n, n) and B (n, nrhs) (LAPACKE_sposv /
 * dposv): on return b holds X and a its Cholesky factor (upper triangle, row-major view).
 * CCE_EFORMAT when A is not positive definite. */
cce_status cce_linalg_posv(cce_mat *a, cce_mat *b, cce_err *err);
cce_status cce_linalg_posv_d(cce_matd *a, cce_matd *b, cce_err *err);

/* Thin SVD a (m, n) = U diag(s) Vᵀ with k = min(m, n) (LAPACKE_sgesdd / dgesdd, jobz 'S'):
 * s (k) descending, u (m, k), vt (k, n) (any of u / vt may be NULL: values only). a is not
 * modified (a copy is factored). */
cce_status cce_linalg_svd(const cce_mat *a, float *s, cce_mat *u, cce_mat *vt, cce_err *err);
cce_status cce_linalg_svd_d(const cce_matd *a, double *s, cce_matd *u, cce_matd *vt, cce_err *err);

/* ---- accounting and threads ---- */

/* Seconds the calling thread has spent inside BLAS/LAPACK calls made through this module. */
double cce_linalg_thread_seconds(void);
/* Set the BLAS thread count (process-wide), returning the previous one; n <= 0 only queries. */
int cce_linalg_set_threads(int n);

/* ---- slow references (engine/linalg_ref.c), for tests only ---- */

/* C = op(A) op(B) with triple loops in double. C is (m, n) with ld n. */
void cce_ref_gemm(int trans_a, int trans_b, const cce_mat *a, const cce_mat *b, cce_mat *c);
/* Two-pass covariance of x (rows, n): mean (n) then cov (n, n) = (x-mean)^T (x-mean) / rows,
 * all in double. */
void cce_ref_covariance(const float *x, int rows, int n, int ld, double *mean, double *cov);
/* Eigenvalues of symmetric a (n, n, double) by cyclic Jacobi rotations, descending into w.
 * a is copied. Returns the number of sweeps used. */
int cce_ref_eigenvalues(const double *a, int n, double *w);
/* Linear CKA of x (rows, dx) and y (rows, dy) by the direct definition with centred Gram
 * matrices: <HKH, HLH> / (||HKH|| ||HLH||), K = x x^T, L = y y^T, all in double. 0 when either
 * side has zero variance. */
double cce_ref_cka(const float *x, int rows, int dx, int ldx, const float *y, int dy, int ldy);

/* Thin SVD by one-sided Jacobi rotations in double: s (k) descending, u (m, k), vt (k, n),
 * k = min(m, n); a (m, n, ld n) is copied. Returns the number of sweeps. */
int cce_ref_svd(const double *a, int m, int n, double *s, double *u, double *vt);
/* Eigenvalues (descending) and unit eigenvectors (columns of v (n, n)) of symmetric a by cyclic
 * Jacobi in double. Returns the number of sweeps. */
int cce_ref_eigh(const double *a, int n, double *w, double *v);
/* Solve A X = B (A (n, n), B (n, nrhs), both ld = cols) by Gaussian elimination with partial
 * pivoting in double; x (n, nrhs). Returns 0, or -1 when A is singular. */
int cce_ref_solve(const double *a, int n, const double *b, int nrhs, double *x);

#endif
