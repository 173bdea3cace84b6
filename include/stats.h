/*
 * stats.h — streaming statistics of activation matrices: moments (count, mean, X^T X,
 * covariance) and histograms with fixed bin edges.
 *
 * Calibration sees each activation site (attention input, per-head outputs, FFN activation, ...)
 * as a stream of row batches (rows, dim). A cce_moments accumulates, batch by batch and never
 * row by row: the count, the sum, and the cross-product matrix via cblas_ssyrk. To keep the
 * cancellation in cov = E[xx^T] - mean mean^T harmless, the data are shifted by the mean of
 * the first batch before the product; each batch's float ssyrk result (exact enough for one
 * batch) is added into a double accumulator, so the sum over thousands of rows stays accurate.
 *
 * A cce_hist has n_bins equal-width bins over a symmetric range [-hi, hi) plus an underflow and
 * an overflow bin. The range is fixed by the first batch it sees (1.5 x the 99.9th percentile of
 * |x| in that batch), so later batches of the same site are binned identically and histograms of
 * the same site before and after compression can be compared bin by bin when the edges are
 * copied (cce_hist_init_edges).
 *
 * Thread-safety: an accumulator is used by one thread at a time; finished results are plain
 * arrays that others may read.
 */
#ifndef CCE_STATS_H
#define CCE_STATS_H

#include <stdint.h>
#include "status.h"

typedef struct {
    int dim;
    long count;        // rows seen
    double *shift;     // (dim) mean of the first batch; data are accumulated as x - shift
    double *sum;       // (dim) sum of (x - shift)
    double *xtx;       // (dim, dim) upper triangle: sum of (x - shift)^T (x - shift)
    float *batch;      // (chunk, dim) scratch: shifted rows
    float *prod;       // (dim, dim) scratch: one chunk's ssyrk
    int chunk;         // rows per ssyrk call
} cce_moments;

/* Zeroed accumulator for rows of dim values. */
cce_status cce_moments_init(cce_moments *m, int dim, cce_err *err);
void cce_moments_free(cce_moments *m);
/* Forget everything seen (keeps the buffers). */
void cce_moments_reset(cce_moments *m);
/* Add rows (rows, dim) with leading dimension ld >= dim. */
cce_status cce_moments_add(cce_moments *m, const float *x, int rows, int ld, cce_err *err);
/* mean (dim) of everything added; zeros when nothing was. */
void cce_moments_mean(const cce_moments *m, double *mean);
/* Full symmetric (dim, dim) matrices, normalised by the count (population statistics):
 * centred covariance E[(x - mean)(x - mean)^T] / uncentred second moment E[x x^T]. */
void cce_moments_cov(const cce_moments *m, double *cov);
void cce_moments_second(const cce_moments *m, double *m2);

typedef struct {
    int n_bins;          // interior bins
    float lo, hi;        // range [lo, hi), lo = -hi; valid once ready
    int ready;           // edges fixed
    uint64_t *counts;    // (n_bins + 2): [0] below lo, [1..n_bins] bins, [n_bins+1] at or above hi
    uint64_t total;
    double min, max;     // of all values seen (non-finite values are counted in the outer bins)
} cce_hist;

cce_status cce_hist_init(cce_hist *h, int n_bins, cce_err *err);
/* Same bins as an existing, ready histogram (for comparing a site before/after). */
cce_status cce_hist_init_edges(cce_hist *h, const cce_hist *like, cce_err *err);
void cce_hist_free(cce_hist *h);
/* Count the values of x (rows, cols, ld). The first non-empty call fixes the edges. */
cce_status cce_hist_add(cce_hist *h, const float *x, int rows, int cols, int ld, cce_err *err);
/* Left edge of interior bin i (0..n_bins); edge n_bins == hi. */
float cce_hist_edge(const cce_hist *h, int i);

#endif
