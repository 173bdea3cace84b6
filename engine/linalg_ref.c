/*
 * linalg_ref.c — slow, obvious reference kernels used only by the tests.
 *
 * Each is the textbook definition, in double, with no BLAS: triple-loop products, two-pass
 * covariance (mean first, then centred products), cyclic Jacobi rotations for symmetric
 * eigenvalues, and linear CKA from explicitly centred Gram matrices. The fast kernels in
 * linalg.c / stats.c / analysis.c are compared against these by max difference.
 * Allocation failures here abort the computation with zeroed outputs (tests only).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "linalg.h"
#include "util.h"

void cce_ref_gemm(int trans_a, int trans_b, const cce_mat *a, const cce_mat *b, cce_mat *c) {
    int m = trans_a ? a->cols : a->rows, k = trans_a ? a->rows : a->cols;
    int n = trans_b ? b->rows : b->cols;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double x = trans_a ? a->data[(size_t)p * a->ld + i] : a->data[(size_t)i * a->ld + p];
                double y = trans_b ? b->data[(size_t)j * b->ld + p] : b->data[(size_t)p * b->ld + j];
                s += x * y;
            }
            c->data[(size_t)i * c->ld + j] = (float)s;
        }
}

void cce_ref_covariance(const float *x, int rows, int n, int ld, double *mean, double *cov) {
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int r = 0; r < rows; r++) s += x[(size_t)r * ld + j];
        mean[j] = rows ? s / rows : 0;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int r = 0; r < rows; r++)
                s += (x[(size_t)r * ld + i] - mean[i]) * (x[(size_t)r * ld + j] - mean[j]);
            cov[(size_t)i * n + j] = rows ? s / rows : 0;
        }
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

int cce_ref_eigenvalues(const double *a0, int n, double *w) {
    double *a = cce_alloc(n > 0 ? (size_t)n * n : 1, sizeof(double));   // (n, n)
    if (!a) { memset(w, 0, (size_t)n * sizeof(double)); return 0; }
    memcpy(a, a0, (size_t)n * n * sizeof(double));
    int sweep;
    for (sweep = 0; sweep < 100; sweep++) {
        double off = 0, total = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double v = a[(size_t)i * n + j] * a[(size_t)i * n + j];
                total += v;
                if (i != j) off += v;
            }
        if (off <= 1e-30 * (total > 0 ? total : 1)) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[(size_t)p * n + q];
                if (apq == 0) continue;
                double app = a[(size_t)p * n + p], aqq = a[(size_t)q * n + q];
                double theta = (aqq - app) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) {   // rotate columns p, q
                    double akp = a[(size_t)k * n + p], akq = a[(size_t)k * n + q];
                    a[(size_t)k * n + p] = c * akp - s * akq;
                    a[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {   // rotate rows p, q
                    double apk = a[(size_t)p * n + k], aqk = a[(size_t)q * n + k];
                    a[(size_t)p * n + k] = c * apk - s * aqk;
                    a[(size_t)q * n + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < n; i++) w[i] = a[(size_t)i * n + i];
    qsort(w, (size_t)n, sizeof(double), cmp_desc);
    cce_free(a);
    return sweep;
}

/* Centred Gram matrix H (x x^T) H of x (rows, d), in double, into g (rows, rows). */
static void centred_gram(const float *x, int rows, int d, int ld, double *g) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < rows; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += (double)x[(size_t)i * ld + k] * x[(size_t)j * ld + k];
            g[(size_t)i * rows + j] = s;
        }
    double *rm = cce_alloc_zero((size_t)rows, sizeof(double));
    if (!rm) return;
    double all = 0;
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < rows; j++) rm[i] += g[(size_t)i * rows + j];
        all += rm[i];
        rm[i] /= rows;
    }
    all /= (double)rows * rows;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < rows; j++) g[(size_t)i * rows + j] += all - rm[i] - rm[j];
    cce_free(rm);
}

double cce_ref_cka(const float *x, int rows, int dx, int ldx, const float *y, int dy, int ldy) {
    double *k = cce_alloc((size_t)rows * rows, sizeof(double));   // (rows, rows)
    double *l = cce_alloc((size_t)rows * rows, sizeof(double));   // (rows, rows)
    double r = 0;
    if (k && l) {
        centred_gram(x, rows, dx, ldx, k);
        centred_gram(y, rows, dy, ldy, l);
        double kl = 0, kk = 0, ll = 0;
        for (size_t i = 0; i < (size_t)rows * rows; i++) {
            kl += k[i] * l[i];
            kk += k[i] * k[i];
            ll += l[i] * l[i];
        }
        r = (kk > 0 && ll > 0) ? kl / sqrt(kk * ll) : 0;
    }
    cce_free(k);
    cce_free(l);
    return r;
}

int cce_ref_eigh(const double *a0, int n, double *w, double *v) {
    double *a = cce_alloc(n > 0 ? (size_t)n * n : 1, sizeof(double));   // (n, n)
    int *perm = cce_alloc(n > 0 ? (size_t)n : 1, sizeof(int));
    double *vv = cce_alloc(n > 0 ? (size_t)n * n : 1, sizeof(double));  // (n, n) accumulated rotations
    if (!a || !perm || !vv) {
        memset(w, 0, (size_t)n * sizeof(double));
        cce_free(a); cce_free(perm); cce_free(vv);
        return 0;
    }
    memcpy(a, a0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n * n; i++) vv[i] = 0;
    for (int i = 0; i < n; i++) vv[(size_t)i * n + i] = 1;
    int sweep;
    for (sweep = 0; sweep < 100; sweep++) {
        double off = 0, total = 0;
        for (int i = 0; i < n * n; i++) {
            total += a[i] * a[i];
            if (i / n != i % n) off += a[i] * a[i];
        }
        if (off <= 1e-30 * (total > 0 ? total : 1)) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[(size_t)p * n + q];
                if (apq == 0) continue;
                double theta = (a[(size_t)q * n + q] - a[(size_t)p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) {
                    double akp = a[(size_t)k * n + p], akq = a[(size_t)k * n + q];
                    a[(size_t)k * n + p] = c * akp - s * akq;
                    a[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = a[(size_t)p * n + k], aqk = a[(size_t)q * n + k];
                    a[(size_t)p * n + k] = c * apk - s * aqk;
                    a[(size_t)q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {   // V := V J
                    double vkp = vv[(size_t)k * n + p], vkq = vv[(size_t)k * n + q];
                    vv[(size_t)k * n + p] = c * vkp - s * vkq;
                    vv[(size_t)k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = 1; i < n; i++)   // insertion sort by eigenvalue, descending
        for (int k = i; k > 0 && a[(size_t)perm[k - 1] * n + perm[k - 1]] < a[(size_t)perm[k] * n + perm[k]]; k--) {
            int t = perm[k]; perm[k] = perm[k - 1]; perm[k - 1] = t;
        }
    for (int j = 0; j < n; j++) {
        w[j] = a[(size_t)perm[j] * n + perm[j]];
        if (v)
            for (int i = 0; i < n; i++) v[(size_t)i * n + j] = vv[(size_t)i * n + perm[j]];
    }
    cce_free(a);
    cce_free(perm);
    cce_free(vv);
    return sweep;
}

int cce_ref_svd(const double *a, int m, int n, double *s, double *u, double *vt) {
    /* One-sided Jacobi on the columns of B = A (m >= n) or of Aᵀ (m < n): orthogonalise the
     * columns by plane rotations accumulated in V; then s_j = ‖b_j‖, u_j = b_j / s_j. */
    int tr = m < n, r = tr ? n : m, c = tr ? m : n;   // B (r, c), r >= c
    double *b = cce_alloc((size_t)r * c + 1, sizeof(double));
    double *v = cce_alloc((size_t)c * c + 1, sizeof(double));
    int *perm = cce_alloc(c ? (size_t)c : 1, sizeof(int));
    double *nrm = cce_alloc(c ? (size_t)c : 1, sizeof(double));
    if (!b || !v || !perm || !nrm) {
        memset(s, 0, (size_t)c * sizeof(double));
        cce_free(b); cce_free(v); cce_free(perm); cce_free(nrm);
        return 0;
    }
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) b[(size_t)i * c + j] = tr ? a[(size_t)j * n + i] : a[(size_t)i * n + j];
    for (int i = 0; i < c * c; i++) v[i] = 0;
    for (int i = 0; i < c; i++) v[(size_t)i * c + i] = 1;
    int sweep;
    for (sweep = 0; sweep < 100; sweep++) {
        double worst = 0;
        for (int p = 0; p < c; p++)
            for (int q = p + 1; q < c; q++) {
                double al = 0, be = 0, ga = 0;
                for (int i = 0; i < r; i++) {
                    double x = b[(size_t)i * c + p], y = b[(size_t)i * c + q];
                    al += x * x; be += y * y; ga += x * y;
                }
                if (ga == 0 || al == 0 || be == 0) continue;
                double rel = fabs(ga) / sqrt(al * be);
                if (rel > worst) worst = rel;
                if (rel < 1e-15) continue;
                double zeta = (be - al) / (2 * ga);
                double t = (zeta >= 0 ? 1 : -1) / (fabs(zeta) + sqrt(1 + zeta * zeta));
                double cs = 1 / sqrt(1 + t * t), sn = cs * t;
                for (int i = 0; i < r; i++) {
                    double x = b[(size_t)i * c + p], y = b[(size_t)i * c + q];
                    b[(size_t)i * c + p] = cs * x - sn * y;
                    b[(size_t)i * c + q] = sn * x + cs * y;
                }
                for (int i = 0; i < c; i++) {
                    double x = v[(size_t)i * c + p], y = v[(size_t)i * c + q];
                    v[(size_t)i * c + p] = cs * x - sn * y;
                    v[(size_t)i * c + q] = sn * x + cs * y;
                }
            }
        if (worst < 1e-15) break;
    }
    for (int j = 0; j < c; j++) {
        double t = 0;
        for (int i = 0; i < r; i++) t += b[(size_t)i * c + j] * b[(size_t)i * c + j];
        nrm[j] = sqrt(t);
        perm[j] = j;
    }
    for (int i = 1; i < c; i++)
        for (int k = i; k > 0 && nrm[perm[k - 1]] < nrm[perm[k]]; k--) {
            int t = perm[k]; perm[k] = perm[k - 1]; perm[k - 1] = t;
        }
    /* B = U_b S Vᵀ: for m >= n, A = B-side: U = U_b (m, n), Vt = Vᵀ; for m < n, Aᵀ = U_b S Vᵀ so
     * A = V S U_bᵀ: U = V (m, m), Vt = U_bᵀ (m, n). */
    for (int j = 0; j < c; j++) {
        int pj = perm[j];
        s[j] = nrm[pj];
        double inv = nrm[pj] > 0 ? 1 / nrm[pj] : 0;
        for (int i = 0; i < r; i++) {
            double ub = b[(size_t)i * c + pj] * inv;
            if (!tr && u) u[(size_t)i * c + j] = ub;
            if (tr && vt) vt[(size_t)j * n + i] = ub;
        }
        for (int i = 0; i < c; i++) {
            double vv = v[(size_t)i * c + pj];
            if (!tr && vt) vt[(size_t)j * n + i] = vv;
            if (tr && u) u[(size_t)i * c + j] = vv;
        }
    }
    cce_free(b);
    cce_free(v);
    cce_free(perm);
    cce_free(nrm);
    return sweep;
}

int cce_ref_solve(const double *a0, int n, const double *b, int nrhs, double *x) {
    double *a = cce_alloc(n > 0 ? (size_t)n * n : 1, sizeof(double));   // (n, n)
    if (!a) return -1;
    memcpy(a, a0, (size_t)n * n * sizeof(double));
    memcpy(x, b, (size_t)n * nrhs * sizeof(double));
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[(size_t)r * n + col]) > fabs(a[(size_t)piv * n + col])) piv = r;
        if (a[(size_t)piv * n + col] == 0) { cce_free(a); return -1; }
        if (piv != col) {
            for (int k = 0; k < n; k++) { double t = a[(size_t)col * n + k]; a[(size_t)col * n + k] = a[(size_t)piv * n + k]; a[(size_t)piv * n + k] = t; }
            for (int k = 0; k < nrhs; k++) { double t = x[(size_t)col * nrhs + k]; x[(size_t)col * nrhs + k] = x[(size_t)piv * nrhs + k]; x[(size_t)piv * nrhs + k] = t; }
        }
        for (int r = col + 1; r < n; r++) {
            double f = a[(size_t)r * n + col] / a[(size_t)col * n + col];
            if (f == 0) continue;
            for (int k = col; k < n; k++) a[(size_t)r * n + k] -= f * a[(size_t)col * n + k];
            for (int k = 0; k < nrhs; k++) x[(size_t)r * nrhs + k] -= f * x[(size_t)col * nrhs + k];
        }
    }
    for (int col = n - 1; col >= 0; col--)
        for (int k = 0; k < nrhs; k++) {
            double s = x[(size_t)col * nrhs + k];
            for (int j = col + 1; j < n; j++) s -= a[(size_t)col * n + j] * x[(size_t)j * nrhs + k];
            x[(size_t)col * nrhs + k] = s / a[(size_t)col * n + col];
        }
    cce_free(a);
    return 0;
}
