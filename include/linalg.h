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
 * Thread-safety: all functions are reentrant (no global state); operands must not be shared
 * with a writer.
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

/* ---- double precision, for the encoder's least-squares solves (all matrices row-major) ---- */

/* C (m, n) = alpha·op(A) op(B) + beta·C (cblas_dgemm); op(A) is (m, k), op(B) (k, n). */
cce_status cce_linalg_gemm_d(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a, int lda,
                             const double *b, int ldb, double beta, double *c, int ldc, cce_err *err);
/* Solve A X = B for symmetric positive definite a (n, n) (destroyed: its Cholesky factor) and
 * b (n, nrhs), overwritten with X (LAPACKE_dpotrf + dpotrs). CCE_EFORMAT when not definite. */
cce_status cce_linalg_spd_solve_d(double *a, int n, double *b, int nrhs, cce_err *err);
/* Eigenvalues (descending) into w (n) and eigenvectors of symmetric a (n, n): column k of a
 * becomes the unit eigenvector of w[k] (LAPACKE_dsyevd). */
cce_status cce_linalg_eigh_d(double *a, int n, double *w, cce_err *err);

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

#endif
