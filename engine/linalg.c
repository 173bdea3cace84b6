/*
 * linalg.c — shape-checked wrappers over cblas and LAPACKE (see include/linalg.h).
 *
 * Everything numerical that the engine does with matrices goes through here, so that a shape
 * mistake is a status with a message rather than memory corruption inside BLAS, and so that
 * LAPACK's info codes become statuses in one place. The wrappers add no copying except where
 * the LAPACK routine would destroy an input the contract promises to keep (svd_values) or
 * where a retry needs the original (cholesky with jitter).
 *
 * Accounting: each call into BLAS/LAPACK is bracketed by TIMED(), which adds its wall time to
 * a thread-local counter; nothing else (shape checks, copies, mirroring) is counted.
 */
#include <string.h>
#include <math.h>
#include <cblas.h>
#include <lapacke.h>
#include "linalg.h"
#include "util.h"

static _Thread_local double tl_blas_seconds;
#define TIMED(call) do { double t0_ = cce_now(); call; tl_blas_seconds += cce_now() - t0_; } while (0)

double cce_linalg_thread_seconds(void) { return tl_blas_seconds; }

int cce_linalg_set_threads(int n) {
    int prev = openblas_get_num_threads();
    if (n > 0 && n != prev) openblas_set_num_threads(n);
    return prev;
}

cce_mat cce_mat_view(float *data, int rows, int cols) {
    cce_mat m = {data, rows, cols, cols};
    return m;
}

cce_status cce_mat_alloc(cce_mat *m, int rows, int cols, cce_err *err) {
    memset(m, 0, sizeof *m);
    if (rows < 0 || cols < 0)
        return cce_err_set(err, CCE_EINVAL, "linalg: matrix shape (%d, %d) is negative", rows, cols);
    size_t n;
    if (!cce_size_mul((size_t)rows, (size_t)cols, &n))
        return cce_err_set(err, CCE_ENOMEM, "linalg: matrix (%d, %d) overflows size_t", rows, cols);
    m->data = cce_alloc_zero(n ? n : 1, sizeof(float));
    if (!m->data)
        return cce_err_set(err, CCE_ENOMEM, "linalg: cannot allocate a (%d, %d) matrix", rows, cols);
    m->rows = rows;
    m->cols = cols;
    m->ld = cols;
    return CCE_OK;
}

void cce_mat_free(cce_mat *m) {
    if (!m) return;
    cce_free(m->data);
    memset(m, 0, sizeof *m);
}

/* A matrix view is well formed when its shape is non-negative, ld covers a row and data is
 * present whenever the matrix is non-empty. */
static int mat_ok(const cce_mat *m) {
    if (!m || m->rows < 0 || m->cols < 0) return 0;
    if (m->ld < (m->cols > 1 ? m->cols : 1)) return 0;
    if (m->rows > 0 && m->cols > 0 && !m->data) return 0;
    return 1;
}

static cce_status bad_view(cce_err *err, const char *op, const char *name, const cce_mat *m) {
    if (!m) return cce_err_set(err, CCE_EINVAL, "linalg %s: operand %s is NULL", op, name);
    return cce_err_set(err, CCE_EINVAL, "linalg %s: operand %s has invalid view (%d, %d) ld %d%s",
                       op, name, m->rows, m->cols, m->ld, m->data ? "" : " data NULL");
}

cce_status cce_linalg_gemm(int trans_a, int trans_b, float alpha, const cce_mat *a,
                           const cce_mat *b, float beta, cce_mat *c, cce_err *err) {
    if (!mat_ok(a)) return bad_view(err, "gemm", "A", a);
    if (!mat_ok(b)) return bad_view(err, "gemm", "B", b);
    if (!mat_ok(c)) return bad_view(err, "gemm", "C", c);
    int m = trans_a ? a->cols : a->rows, k = trans_a ? a->rows : a->cols;
    int kb = trans_b ? b->cols : b->rows, n = trans_b ? b->rows : b->cols;
    if (k != kb || c->rows != m || c->cols != n)
        return cce_err_set(err, CCE_EINVAL,
                           "linalg gemm: shapes op(A) (%d, %d) x op(B) (%d, %d) -> C (%d, %d) do not match",
                           m, k, kb, n, c->rows, c->cols);
    if (m == 0 || n == 0) return CCE_OK;
    if (k == 0) {   // C = beta C
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c->data[(size_t)i * c->ld + j] *= beta;
        return CCE_OK;
    }
    TIMED(cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                      m, n, k, alpha, a->data, a->ld, b->data, b->ld, beta, c->data, c->ld));
    return CCE_OK;
}

cce_status cce_linalg_syrk(float alpha, const cce_mat *x, float beta, cce_mat *c, cce_err *err) {
    if (!mat_ok(x)) return bad_view(err, "syrk", "X", x);
    if (!mat_ok(c)) return bad_view(err, "syrk", "C", c);
    if (c->rows != x->cols || c->cols != x->cols)
        return cce_err_set(err, CCE_EINVAL, "linalg syrk: X (%d, %d) needs C (%d, %d), got (%d, %d)",
                           x->rows, x->cols, x->cols, x->cols, c->rows, c->cols);
    if (x->cols == 0) return CCE_OK;
    if (x->rows == 0) {
        for (int i = 0; i < c->rows; i++)
            for (int j = i; j < c->cols; j++) c->data[(size_t)i * c->ld + j] *= beta;
        return CCE_OK;
    }
    TIMED(cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, x->cols, x->rows, alpha, x->data, x->ld,
                      beta, c->data, c->ld));
    return CCE_OK;
}

void cce_linalg_symmetrize(cce_mat *a) {
    int n = a->rows < a->cols ? a->rows : a->cols;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) a->data[(size_t)i * a->ld + j] = a->data[(size_t)j * a->ld + i];
}

void cce_linalg_symmetrize_d(double *a, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) a[(size_t)i * n + j] = a[(size_t)j * n + i];
}

static cce_status square_check(const char *op, const cce_mat *a, cce_err *err) {
    if (!mat_ok(a)) return bad_view(err, op, "A", a);
    if (a->rows != a->cols)
        return cce_err_set(err, CCE_EINVAL, "linalg %s: matrix (%d, %d) is not square", op, a->rows, a->cols);
    return CCE_OK;
}

static cce_status lapack_status(const char *op, int info, cce_err *err) {
    if (info == 0) return CCE_OK;
    if (info < 0) return cce_err_set(err, CCE_EINVAL, "linalg %s: LAPACK rejected argument %d", op, -info);
    return cce_err_set(err, CCE_EFORMAT, "linalg %s: LAPACK failed numerically (info %d)", op, info);
}

cce_status cce_linalg_eigh(cce_mat *a, float *w, int vectors, cce_err *err) {
    cce_status st = square_check("eigh", a, err);
    if (st) return st;
    int n = a->rows;
    if (n == 0) return CCE_OK;
    // A symmetric matrix reads the same in either storage order: values-only calls go column-major
    // to skip LAPACKE's transposition copies.
    int info;
    TIMED(info = vectors ? LAPACKE_ssyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, a->data, a->ld, w)
                         : LAPACKE_ssyevd(LAPACK_COL_MAJOR, 'N', 'L', n, a->data, a->ld, w));
    if ((st = lapack_status("eigh (ssyevd)", info, err))) return st;
    // LAPACK returns ascending order: reverse values (and eigenvector columns) to descending.
    for (int i = 0, j = n - 1; i < j; i++, j--) {
        float t = w[i]; w[i] = w[j]; w[j] = t;
        if (vectors)
            for (int r = 0; r < n; r++) {
                float *row = a->data + (size_t)r * a->ld;
                float u = row[i]; row[i] = row[j]; row[j] = u;
            }
    }
    return CCE_OK;
}

cce_status cce_linalg_cholesky(cce_mat *a, float *jitter, cce_err *err) {
    cce_status st = square_check("cholesky", a, err);
    if (st) return st;
    int n = a->rows;
    if (jitter) *jitter = 0;
    if (n == 0) return CCE_OK;
    float *orig = cce_alloc((size_t)n, (size_t)n * sizeof(float));   // (n, n)
    if (!orig) return cce_err_set(err, CCE_ENOMEM, "linalg cholesky: cannot allocate a (%d, %d) copy", n, n);
    for (int i = 0; i < n; i++) memcpy(orig + (size_t)i * n, a->data + (size_t)i * a->ld, (size_t)n * sizeof(float));
    double mean_diag = 0;
    for (int i = 0; i < n; i++) mean_diag += fabs((double)orig[(size_t)i * n + i]);
    mean_diag /= n;
    if (mean_diag <= 0) mean_diag = 1e-6;
    float used = 0;
    int info = 0;
    for (int attempt = 0; attempt <= 6; attempt++) {
        if (attempt > 0) {
            used = (float)(mean_diag * 1e-6 * pow(10.0, attempt - 1));
            for (int i = 0; i < n; i++) {
                memcpy(a->data + (size_t)i * a->ld, orig + (size_t)i * n, (size_t)n * sizeof(float));
                a->data[(size_t)i * a->ld + i] += used;
            }
        }
        // row-major lower L == column-major upper U = Lᵀ: no transposition copies in LAPACKE
        TIMED(info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', n, a->data, a->ld));
        if (info == 0) break;
        if (info < 0) break;
    }
    cce_free(orig);
    if (info != 0) {
        if (info < 0) return lapack_status("cholesky (spotrf)", info, err);
        return cce_err_set(err, CCE_EFORMAT,
                           "linalg cholesky: matrix (%d, %d) not positive definite even with jitter %g (leading minor %d)",
                           n, n, (double)used, info);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) a->data[(size_t)i * a->ld + j] = 0;
    if (jitter) *jitter = used;
    return CCE_OK;
}

cce_status cce_linalg_svd_values(const cce_mat *a, float *s, cce_err *err) {
    if (!mat_ok(a)) return bad_view(err, "svd", "A", a);
    int m = a->rows, n = a->cols;
    if (m == 0 || n == 0) return CCE_OK;
    float *copy = cce_alloc((size_t)m, (size_t)n * sizeof(float));   // (m, n)
    if (!copy) return cce_err_set(err, CCE_ENOMEM, "linalg svd: cannot allocate a (%d, %d) copy", m, n);
    for (int i = 0; i < m; i++) memcpy(copy + (size_t)i * n, a->data + (size_t)i * a->ld, (size_t)n * sizeof(float));
    float dummy_u[1], dummy_vt[1];
    // jobz 'N' never touches u / vt, but LAPACKE still checks their leading dimensions.
    int info;
    TIMED(info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'N', m, n, copy, n, s, dummy_u, m, dummy_vt, n));
    cce_free(copy);
    return lapack_status("svd (sgesdd)", info, err);
}

static cce_status tri_check(const char *op, int right, const cce_mat *a, const cce_mat *b, cce_err *err) {
    cce_status st = square_check(op, a, err);
    if (st) return st;
    if (!mat_ok(b)) return bad_view(err, op, "B", b);
    int need = right ? b->cols : b->rows;
    if (need != a->rows)
        return cce_err_set(err, CCE_EINVAL, "linalg %s: triangular (%d, %d) does not fit B (%d, %d) on the %s",
                           op, a->rows, a->cols, b->rows, b->cols, right ? "right" : "left");
    return CCE_OK;
}

cce_status cce_linalg_trmm(int right, int lower, int trans, const cce_mat *a, cce_mat *b, cce_err *err) {
    cce_status st = tri_check("trmm", right, a, b, err);
    if (st) return st;
    if (b->rows == 0 || b->cols == 0) return CCE_OK;
    TIMED(cblas_strmm(CblasRowMajor, right ? CblasRight : CblasLeft, lower ? CblasLower : CblasUpper,
                      trans ? CblasTrans : CblasNoTrans, CblasNonUnit, b->rows, b->cols, 1.0f,
                      a->data, a->ld, b->data, b->ld));
    return CCE_OK;
}

cce_status cce_linalg_trsm(int right, int lower, int trans, const cce_mat *a, cce_mat *b, cce_err *err) {
    cce_status st = tri_check("trsm", right, a, b, err);
    if (st) return st;
    for (int i = 0; i < a->rows; i++)
        if (a->data[(size_t)i * a->ld + i] == 0)
            return cce_err_set(err, CCE_EFORMAT, "linalg trsm: triangular matrix is singular (diagonal %d is 0)", i);
    if (b->rows == 0 || b->cols == 0) return CCE_OK;
    TIMED(cblas_strsm(CblasRowMajor, right ? CblasRight : CblasLeft, lower ? CblasLower : CblasUpper,
                      trans ? CblasTrans : CblasNoTrans, CblasNonUnit, b->rows, b->cols, 1.0f,
                      a->data, a->ld, b->data, b->ld));
    return CCE_OK;
}

cce_status cce_linalg_spd_inverse_d(double *a, int n, cce_err *err) {
    if (n < 0 || (n > 0 && !a)) return cce_err_set(err, CCE_EINVAL, "linalg spd_inverse: bad matrix (%d, %d)", n, n);
    if (n == 0) return CCE_OK;
    // row-major upper == column-major lower: no transposition copies in LAPACKE
    int info;
    TIMED(info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, a, n));
    if (info > 0)
        return cce_err_set(err, CCE_EFORMAT, "linalg spd_inverse: matrix (%d, %d) is not positive definite (leading minor %d)",
                           n, n, info);
    cce_status st = lapack_status("spd_inverse (dpotrf)", info, err);
    if (st) return st;
    TIMED(info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', n, a, n));
    if ((st = lapack_status("spd_inverse (dpotri)", info, err))) return st;
    cce_linalg_symmetrize_d(a, n);
    return CCE_OK;
}

/* ------------------------------------------------------------------ double precision */

static int matd_ok(const cce_matd *m) {
    if (!m || m->rows < 0 || m->cols < 0) return 0;
    if (m->ld < (m->cols > 1 ? m->cols : 1)) return 0;
    if (m->rows > 0 && m->cols > 0 && !m->data) return 0;
    return 1;
}

static cce_status bad_viewd(cce_err *err, const char *op, const char *name, const cce_matd *m) {
    if (!m) return cce_err_set(err, CCE_EINVAL, "linalg %s: operand %s is NULL", op, name);
    return cce_err_set(err, CCE_EINVAL, "linalg %s: operand %s has invalid view (%d, %d) ld %d%s", op, name, m->rows,
                       m->cols, m->ld, m->data ? "" : " data NULL");
}

cce_status cce_linalg_gemm_d(int trans_a, int trans_b, double alpha, const cce_matd *a, const cce_matd *b,
                             double beta, cce_matd *c, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "gemm_d", "A", a);
    if (!matd_ok(b)) return bad_viewd(err, "gemm_d", "B", b);
    if (!matd_ok(c)) return bad_viewd(err, "gemm_d", "C", c);
    int m = trans_a ? a->cols : a->rows, k = trans_a ? a->rows : a->cols;
    int kb = trans_b ? b->cols : b->rows, n = trans_b ? b->rows : b->cols;
    if (k != kb || c->rows != m || c->cols != n)
        return cce_err_set(err, CCE_EINVAL,
                           "linalg gemm_d: shapes op(A) (%d, %d) x op(B) (%d, %d) -> C (%d, %d) do not match", m, k,
                           kb, n, c->rows, c->cols);
    if (m == 0 || n == 0) return CCE_OK;
    if (k == 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c->data[(size_t)i * c->ld + j] *= beta;
        return CCE_OK;
    }
    TIMED(cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n,
                      k, alpha, a->data, a->ld, b->data, b->ld, beta, c->data, c->ld));
    return CCE_OK;
}

cce_status cce_linalg_gemv_d(int trans_a, double alpha, const cce_matd *a, const double *x, double beta, double *y,
                             cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "gemv_d", "A", a);
    int m = trans_a ? a->cols : a->rows, k = trans_a ? a->rows : a->cols;
    if ((m > 0 && !y) || (k > 0 && !x))
        return cce_err_set(err, CCE_EINVAL, "linalg gemv_d: missing vector for (%d, %d)", m, k);
    if (m == 0) return CCE_OK;
    if (k == 0) {
        for (int i = 0; i < m; i++) y[i] *= beta;
        return CCE_OK;
    }
    TIMED(cblas_dgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, a->rows, a->cols, alpha, a->data, a->ld, x,
                      1, beta, y, 1));
    return CCE_OK;
}

cce_status cce_linalg_syrk_d(int trans, double alpha, const cce_matd *a, double beta, cce_matd *c, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "syrk_d", "A", a);
    if (!matd_ok(c)) return bad_viewd(err, "syrk_d", "C", c);
    int n = trans ? a->cols : a->rows, k = trans ? a->rows : a->cols;
    if (c->rows != n || c->cols != n)
        return cce_err_set(err, CCE_EINVAL, "linalg syrk_d: A (%d, %d)%s needs C (%d, %d), got (%d, %d)", a->rows,
                           a->cols, trans ? "ᵀ" : "", n, n, c->rows, c->cols);
    if (n == 0) return CCE_OK;
    if (k == 0) {
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) c->data[(size_t)i * c->ld + j] *= beta;
        return CCE_OK;
    }
    TIMED(cblas_dsyrk(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans, n, k, alpha, a->data, a->ld, beta,
                      c->data, c->ld));
    return CCE_OK;
}

cce_status cce_linalg_syr2k_d(int trans, double alpha, const cce_matd *a, const cce_matd *b, double beta,
                              cce_matd *c, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "syr2k_d", "A", a);
    if (!matd_ok(b)) return bad_viewd(err, "syr2k_d", "B", b);
    if (!matd_ok(c)) return bad_viewd(err, "syr2k_d", "C", c);
    int n = trans ? a->cols : a->rows, k = trans ? a->rows : a->cols;
    if (b->rows != a->rows || b->cols != a->cols || c->rows != n || c->cols != n)
        return cce_err_set(err, CCE_EINVAL, "linalg syr2k_d: A (%d, %d), B (%d, %d), C (%d, %d) do not match", n, k,
                           b->rows, b->cols, c->rows, c->cols);
    if (n == 0) return CCE_OK;
    if (k == 0) {
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) c->data[(size_t)i * c->ld + j] *= beta;
        return CCE_OK;
    }
    TIMED(cblas_dsyr2k(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans, n, k, alpha, a->data, a->ld, b->data, b->ld, beta,
                       c->data, c->ld));
    return CCE_OK;
}

cce_status cce_linalg_trmm_d(int right, int lower, int trans, const cce_matd *a, cce_matd *b, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "trmm_d", "A", a);
    if (!matd_ok(b)) return bad_viewd(err, "trmm_d", "B", b);
    if (a->rows != a->cols || (right ? b->cols : b->rows) != a->rows)
        return cce_err_set(err, CCE_EINVAL, "linalg trmm_d: triangular (%d, %d) does not fit B (%d, %d) on the %s",
                           a->rows, a->cols, b->rows, b->cols, right ? "right" : "left");
    if (b->rows == 0 || b->cols == 0) return CCE_OK;
    TIMED(cblas_dtrmm(CblasRowMajor, right ? CblasRight : CblasLeft, lower ? CblasLower : CblasUpper,
                      trans ? CblasTrans : CblasNoTrans, CblasNonUnit, b->rows, b->cols, 1.0, a->data, a->ld, b->data,
                      b->ld));
    return CCE_OK;
}

cce_status cce_linalg_trsm_d(int right, int lower, int trans, const cce_matd *a, cce_matd *b, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "trsm_d", "A", a);
    if (!matd_ok(b)) return bad_viewd(err, "trsm_d", "B", b);
    if (a->rows != a->cols || (right ? b->cols : b->rows) != a->rows)
        return cce_err_set(err, CCE_EINVAL, "linalg trsm_d: triangular (%d, %d) does not fit B (%d, %d) on the %s",
                           a->rows, a->cols, b->rows, b->cols, right ? "right" : "left");
    for (int i = 0; i < a->rows; i++)
        if (a->data[(size_t)i * a->ld + i] == 0)
            return cce_err_set(err, CCE_EFORMAT, "linalg trsm_d: triangular matrix is singular (diagonal %d is 0)", i);
    if (b->rows == 0 || b->cols == 0) return CCE_OK;
    TIMED(cblas_dtrsm(CblasRowMajor, right ? CblasRight : CblasLeft, lower ? CblasLower : CblasUpper,
                      trans ? CblasTrans : CblasNoTrans, CblasNonUnit, b->rows, b->cols, 1.0, a->data, a->ld, b->data,
                      b->ld));
    return CCE_OK;
}

cce_status cce_linalg_cholesky_d(cce_matd *a, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "cholesky_d", "A", a);
    if (a->rows != a->cols)
        return cce_err_set(err, CCE_EINVAL, "linalg cholesky_d: matrix (%d, %d) is not square", a->rows, a->cols);
    int n = a->rows, info;
    if (n == 0) return CCE_OK;
    // row-major lower L == column-major upper U = Lᵀ
    TIMED(info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', n, a->data, a->ld));
    if (info > 0)
        return cce_err_set(err, CCE_EFORMAT, "linalg cholesky_d: matrix (%d, %d) is not positive definite (leading minor %d)",
                           n, n, info);
    cce_status st = lapack_status("cholesky_d (dpotrf)", info, err);
    if (st) return st;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) a->data[(size_t)i * a->ld + j] = 0;
    return CCE_OK;
}

cce_status cce_linalg_eigh_d(cce_matd *a, double *w, int vectors, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "eigh_d", "A", a);
    if (a->rows != a->cols)
        return cce_err_set(err, CCE_EINVAL, "linalg eigh_d: matrix (%d, %d) is not square", a->rows, a->cols);
    int n = a->rows, info;
    if (n == 0) return CCE_OK;
    TIMED(info = vectors ? LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, a->data, a->ld, w)
                         : LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'L', n, a->data, a->ld, w));
    cce_status st = lapack_status("eigh_d (dsyevd)", info, err);
    if (st) return st;
    for (int i = 0, j = n - 1; i < j; i++, j--) {
        double t = w[i]; w[i] = w[j]; w[j] = t;
        if (vectors)
            for (int r = 0; r < n; r++) {
                double *row = a->data + (size_t)r * a->ld;
                double u = row[i]; row[i] = row[j]; row[j] = u;
            }
    }
    return CCE_OK;
}

cce_status cce_linalg_posv(cce_mat *a, cce_mat *b, cce_err *err) {
    cce_status st = square_check("posv", a, err);
    if (st) return st;
    if (!mat_ok(b)) return bad_view(err, "posv", "B", b);
    if (b->rows != a->rows)
        return cce_err_set(err, CCE_EINVAL, "linalg posv: A (%d, %d) does not fit B (%d, %d)", a->rows, a->cols, b->rows,
                           b->cols);
    if (a->rows == 0 || b->cols == 0) return CCE_OK;
    int info;
    // A symmetric: row-major A is column-major A; 'L' of column-major is the row-major upper triangle
    TIMED(info = LAPACKE_sposv(LAPACK_ROW_MAJOR, 'U', a->rows, b->cols, a->data, a->ld, b->data, b->ld));
    if (info > 0)
        return cce_err_set(err, CCE_EFORMAT, "linalg posv: matrix (%d, %d) is not positive definite (leading minor %d)",
                           a->rows, a->cols, info);
    return lapack_status("posv (sposv)", info, err);
}

cce_status cce_linalg_posv_d(cce_matd *a, cce_matd *b, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "posv_d", "A", a);
    if (!matd_ok(b)) return bad_viewd(err, "posv_d", "B", b);
    if (a->rows != a->cols || b->rows != a->rows)
        return cce_err_set(err, CCE_EINVAL, "linalg posv_d: A (%d, %d) does not fit B (%d, %d)", a->rows, a->cols,
                           b->rows, b->cols);
    if (a->rows == 0 || b->cols == 0) return CCE_OK;
    int info;
    TIMED(info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', a->rows, b->cols, a->data, a->ld, b->data, b->ld));
    if (info > 0)
        return cce_err_set(err, CCE_EFORMAT, "linalg posv_d: matrix (%d, %d) is not positive definite (leading minor %d)",
                           a->rows, a->cols, info);
    return lapack_status("posv_d (dposv)", info, err);
}

cce_status cce_linalg_svd(const cce_mat *a, float *s, cce_mat *u, cce_mat *vt, cce_err *err) {
    if (!mat_ok(a)) return bad_view(err, "svd", "A", a);
    int m = a->rows, n = a->cols, k = m < n ? m : n;
    if ((u || vt) && (!u || !vt || !mat_ok(u) || !mat_ok(vt) || u->rows != m || u->cols != k || vt->rows != k ||
                      vt->cols != n))
        return cce_err_set(err, CCE_EINVAL, "linalg svd: A (%d, %d) needs U (%d, %d) and Vt (%d, %d), got (%d, %d) and (%d, %d)",
                           m, n, m, k, k, n, u ? u->rows : -1, u ? u->cols : -1, vt ? vt->rows : -1, vt ? vt->cols : -1);
    if (k == 0) return CCE_OK;
    if (!u) return cce_linalg_svd_values(a, s, err);
    float *copy = cce_alloc((size_t)m, (size_t)n * sizeof(float));   // (m, n)
    if (!copy) return cce_err_set(err, CCE_ENOMEM, "linalg svd: cannot allocate a (%d, %d) copy", m, n);
    for (int i = 0; i < m; i++) memcpy(copy + (size_t)i * n, a->data + (size_t)i * a->ld, (size_t)n * sizeof(float));
    int info;
    TIMED(info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', m, n, copy, n, s, u->data, u->ld, vt->data, vt->ld));
    cce_free(copy);
    return lapack_status("svd (sgesdd)", info, err);
}

cce_status cce_linalg_svd_d(const cce_matd *a, double *s, cce_matd *u, cce_matd *vt, cce_err *err) {
    if (!matd_ok(a)) return bad_viewd(err, "svd_d", "A", a);
    int m = a->rows, n = a->cols, k = m < n ? m : n;
    if ((u || vt) && (!u || !vt || !matd_ok(u) || !matd_ok(vt) || u->rows != m || u->cols != k || vt->rows != k ||
                      vt->cols != n))
        return cce_err_set(err, CCE_EINVAL, "linalg svd_d: A (%d, %d) needs U (%d, %d) and Vt (%d, %d)", m, n, m, k, k, n);
    if (k == 0) return CCE_OK;
    double *copy = cce_alloc((size_t)m, (size_t)n * sizeof(double));   // (m, n)
    if (!copy) return cce_err_set(err, CCE_ENOMEM, "linalg svd_d: cannot allocate a (%d, %d) copy", m, n);
    for (int i = 0; i < m; i++) memcpy(copy + (size_t)i * n, a->data + (size_t)i * a->ld, (size_t)n * sizeof(double));
    double du[1], dvt[1];
    int info;
    TIMED(info = u ? LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', m, n, copy, n, s, u->data, u->ld, vt->data, vt->ld)
                   : LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', m, n, copy, n, s, du, m, dvt, n));
    cce_free(copy);
    return lapack_status("svd_d (dgesdd)", info, err);
}
