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
