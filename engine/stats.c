/*
 * stats.c — streaming moments and histograms (see include/stats.h for the design).
 *
 * Moments: rows are processed in chunks of `chunk` rows: shift into a float scratch, one
 * ssyrk per chunk into a float product, added to the double accumulator. The work is one BLAS-3
 * call per chunk plus O(chunk*dim + dim^2) additions, so for chunk >= dim the ssyrk dominates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "stats.h"
#include "linalg.h"
#include "util.h"

#define MOMENTS_CHUNK 512

cce_status cce_moments_init(cce_moments *m, int dim, cce_err *err) {
    memset(m, 0, sizeof *m);
    if (dim <= 0) return cce_err_set(err, CCE_EINVAL, "stats: moments dimension %d is not positive", dim);
    size_t dd;
    if (!cce_size_mul((size_t)dim, (size_t)dim, &dd))
        return cce_err_set(err, CCE_ENOMEM, "stats: moments dimension %d overflows", dim);
    m->dim = dim;
    m->chunk = MOMENTS_CHUNK;
    m->shift = cce_alloc_zero((size_t)dim, sizeof(double));
    m->sum = cce_alloc_zero((size_t)dim, sizeof(double));
    m->xtx = cce_alloc_zero(dd, sizeof(double));
    m->batch = cce_alloc((size_t)m->chunk, (size_t)dim * sizeof(float));
    m->prod = cce_alloc(dd, sizeof(float));
    if (!m->shift || !m->sum || !m->xtx || !m->batch || !m->prod) {
        cce_moments_free(m);
        return cce_err_set(err, CCE_ENOMEM, "stats: cannot allocate moments of dimension %d", dim);
    }
    return CCE_OK;
}

void cce_moments_free(cce_moments *m) {
    if (!m) return;
    cce_free(m->shift);
    cce_free(m->sum);
    cce_free(m->xtx);
    cce_free(m->batch);
    cce_free(m->prod);
    memset(m, 0, sizeof *m);
}

void cce_moments_reset(cce_moments *m) {
    m->count = 0;
    memset(m->shift, 0, (size_t)m->dim * sizeof(double));
    memset(m->sum, 0, (size_t)m->dim * sizeof(double));
    memset(m->xtx, 0, (size_t)m->dim * m->dim * sizeof(double));
}

cce_status cce_moments_add(cce_moments *m, const float *x, int rows, int ld, cce_err *err) {
    int d = m->dim;
    if (rows < 0 || ld < d || (rows > 0 && !x))
        return cce_err_set(err, CCE_EINVAL, "stats: moments add of (%d, %d) rows with ld %d", rows, d, ld);
    if (rows == 0) return CCE_OK;
    if (m->count == 0) {   // the shift: mean of the first batch
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++) m->shift[j] += x[(size_t)r * ld + j];
        for (int j = 0; j < d; j++) m->shift[j] = (double)(float)(m->shift[j] / rows);
    }
    for (int r0 = 0; r0 < rows; r0 += m->chunk) {
        int n = rows - r0 < m->chunk ? rows - r0 : m->chunk;
        for (int r = 0; r < n; r++) {
            const float *src = x + (size_t)(r0 + r) * ld;
            float *dst = m->batch + (size_t)r * d;
            for (int j = 0; j < d; j++) {
                dst[j] = (float)(src[j] - m->shift[j]);
                m->sum[j] += dst[j];
            }
        }
        cce_mat b = {m->batch, n, d, d}, p = {m->prod, d, d, d};
        cce_status st = cce_linalg_syrk(1.0f, &b, 0.0f, &p, err);
        if (st) return st;
        for (int i = 0; i < d; i++) {
            const float *pr = m->prod + (size_t)i * d;
            double *ar = m->xtx + (size_t)i * d;
            for (int j = i; j < d; j++) ar[j] += pr[j];
        }
    }
    m->count += rows;
    return CCE_OK;
}

void cce_moments_mean(const cce_moments *m, double *mean) {
    for (int j = 0; j < m->dim; j++) mean[j] = m->count ? m->shift[j] + m->sum[j] / m->count : 0;
}

/* centred: 1 -> covariance, 0 -> second moment. */
static void moments_matrix(const cce_moments *m, int centred, double *out) {
    int d = m->dim;
    if (m->count == 0) {
        memset(out, 0, (size_t)d * d * sizeof(double));
        return;
    }
    double n = (double)m->count;
    for (int i = 0; i < d; i++) {
        double mi = m->sum[i] / n;   // mean of the shifted data
        for (int j = i; j < d; j++) {
            double mj = m->sum[j] / n;
            double c = m->xtx[(size_t)i * d + j] / n - mi * mj;   // shift-invariant covariance
            if (!centred) c += (m->shift[i] + mi) * (m->shift[j] + mj);
            out[(size_t)i * d + j] = out[(size_t)j * d + i] = c;
        }
    }
}

void cce_moments_cov(const cce_moments *m, double *cov) { moments_matrix(m, 1, cov); }
void cce_moments_second(const cce_moments *m, double *m2) { moments_matrix(m, 0, m2); }

/* ---- histograms ---- */

cce_status cce_hist_init(cce_hist *h, int n_bins, cce_err *err) {
    memset(h, 0, sizeof *h);
    if (n_bins <= 0 || n_bins > 1 << 20)
        return cce_err_set(err, CCE_EINVAL, "stats: histogram bins %d out of range 1..%d", n_bins, 1 << 20);
    h->n_bins = n_bins;
    h->counts = cce_alloc_zero((size_t)n_bins + 2, sizeof(uint64_t));
    if (!h->counts) return cce_err_set(err, CCE_ENOMEM, "stats: cannot allocate a histogram of %d bins", n_bins);
    h->min = INFINITY;
    h->max = -INFINITY;
    return CCE_OK;
}

cce_status cce_hist_init_edges(cce_hist *h, const cce_hist *like, cce_err *err) {
    cce_status st = cce_hist_init(h, like->n_bins, err);
    if (st) return st;
    h->lo = like->lo;
    h->hi = like->hi;
    h->ready = like->ready;
    return CCE_OK;
}

void cce_hist_free(cce_hist *h) {
    if (!h) return;
    cce_free(h->counts);
    memset(h, 0, sizeof *h);
}

/* The k-th smallest of a[0..n) (quickselect, median-of-three pivot; a is reordered). */
static float select_kth(float *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi];
        float piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, j = hi;
        while (i <= j) {   // Hoare partition around the pivot value
            while (a[i] < piv) i++;
            while (a[j] > piv) j--;
            if (i <= j) {
                float t = a[i]; a[i] = a[j]; a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

/* Fix the symmetric range from a sample of |x| of the first batch. */
static cce_status hist_choose_edges(cce_hist *h, const float *x, int rows, int cols, int ld, cce_err *err) {
    size_t n = (size_t)rows * cols, cap = 65536;
    size_t stride = n > cap ? (n + cap - 1) / cap : 1;
    size_t m = (n + stride - 1) / stride;
    float *s = cce_alloc(m, sizeof(float));   // (m) sampled |x|
    if (!s) return cce_err_set(err, CCE_ENOMEM, "stats: cannot allocate %zu histogram samples", m);
    size_t k = 0;
    for (size_t i = 0; i < n && k < m; i += stride) {
        float v = fabsf(x[(i / cols) * ld + i % cols]);
        s[k++] = isfinite(v) ? v : 0;
    }
    float top = 0;
    for (size_t i = 0; i < k; i++) top = s[i] > top ? s[i] : top;
    float q = select_kth(s, k, (size_t)floor(0.999 * (double)(k - 1)));
    cce_free(s);
    float hi = 1.5f * q;
    if (!(hi > 0)) hi = top > 0 ? top : 1.0f;
    h->hi = hi;
    h->lo = -hi;
    h->ready = 1;
    return CCE_OK;
}

cce_status cce_hist_add(cce_hist *h, const float *x, int rows, int cols, int ld, cce_err *err) {
    if (rows < 0 || cols < 0 || ld < cols || (rows > 0 && cols > 0 && !x))
        return cce_err_set(err, CCE_EINVAL, "stats: histogram add of (%d, %d) with ld %d", rows, cols, ld);
    if (rows == 0 || cols == 0) return CCE_OK;
    if (!h->ready) {
        cce_status st = hist_choose_edges(h, x, rows, cols, ld, err);
        if (st) return st;
    }
    double scale = h->n_bins / ((double)h->hi - h->lo);
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * ld;
        for (int j = 0; j < cols; j++) {
            float v = row[j];
            size_t b;
            if (!(v >= h->lo)) b = 0;   // below the range, or NaN
            else if (v >= h->hi) b = (size_t)h->n_bins + 1;
            else {
                long i = (long)((v - (double)h->lo) * scale);
                if (i >= h->n_bins) i = h->n_bins - 1;
                b = (size_t)i + 1;
            }
            h->counts[b]++;
            if (v < h->min) h->min = v;
            if (v > h->max) h->max = v;
        }
    }
    h->total += (uint64_t)rows * cols;
    return CCE_OK;
}

float cce_hist_edge(const cce_hist *h, int i) {
    return (float)(h->lo + ((double)h->hi - h->lo) * i / h->n_bins);
}
