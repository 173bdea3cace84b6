/*
 * analysis.c — the analysis job and its math (see include/analysis.h for the readings).
 *
 * Structure. The job is a small state machine driven by cce_analysis_step: step 0 builds the
 * calibration batch (calib.c), step ℓ+1 runs block ℓ with analysis_tap accumulating moments and
 * histograms of the block's sites, then derives, in order: angular distance / influence and the
 * update subsample (from h before and after), the layer-CKA row ℓ, eigen spectra, weight
 * spectra, head similarity and redundancy. The block's statistics are freed before the next
 * block; only results and the update subsample stay.
 *
 * Publication. Results of block ℓ are written before steps_done is stored with release order;
 * readers load it with acquire order and only touch blocks below it, so they never see a
 * half-written block. The phase is two atomics (kind, block) formatted by the reader.
 *
 * Numerics. Statistics are double; eigen and singular values run in float LAPACK (the data are
 * float activations); redundancy inverts the ridge-regularised covariance in double because
 * exactly redundant components make it singular up to the ridge.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analysis.h"
#include "calib.h"
#include "linalg.h"
#include "resource.h"
#include "util.h"

/* ------------------------------------------------------------------ small helpers */

const char *cce_cov_site_name(cce_cov_site s) {
    switch (s) {
    case CCE_COV_ATTN_IN: return "attn_in";
    case CCE_COV_HEADS: return "heads";
    case CCE_COV_FFN_IN: return "ffn_in";
    case CCE_COV_FFN_ACT: return "ffn_act";
    default: return "?";
    }
}

void cce_analysis_opts_default(cce_analysis_opts *o) {
    memset(o, 0, sizeof *o);
    o->tokens = 4096;
    o->seq_len = 0;
    o->seed = 1;
    o->hist_bins = 64;
    o->subsample = 1024;
    o->eps = 1e-3f;
    o->tau = 1e-2f;
    o->ridge = 1e-6;
    o->cka_gram = -1;
}

int cce_spectrum_count_below(const float *eig, int n, float eps) {
    if (n <= 0) return 0;
    if (!(eig[0] > 0)) return n;
    double thr = (double)eps * eig[0];
    int c = 0;
    for (int i = 0; i < n; i++) c += eig[i] < thr;
    return c;
}

static double frob2(const float *a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return s;
}

/* Copy x (rows, d, ld) into out (rows, d) with column means removed. */
static void centre_copy(const float *x, int ld, int rows, int d, float *out, double *mean) {
    for (int j = 0; j < d; j++) mean[j] = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < d; j++) mean[j] += x[(size_t)r * ld + j];
    for (int j = 0; j < d; j++) mean[j] /= rows > 0 ? rows : 1;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < d; j++) out[(size_t)r * d + j] = (float)(x[(size_t)r * ld + j] - mean[j]);
}

/* ‖xᵀy‖_F² for centred x (rows, dx), y (rows, dy); tmp (dx, dy). */
static cce_status cross_norm2(const float *x, int dx, const float *y, int dy, int rows, float *tmp,
                              double *out, cce_err *err) {
    cce_mat X = {(float *)x, rows, dx, dx}, Y = {(float *)y, rows, dy, dy}, T = {tmp, dx, dy, dy};
    cce_status st = cce_linalg_gemm(1, 0, 1.0f, &X, &Y, 0.0f, &T, err);
    if (st) return st;
    *out = frob2(tmp, (size_t)dx * dy);
    return CCE_OK;
}

cce_status cce_cka_linear(const float *x, int ldx, const float *y, int ldy, int rows, int dx, int dy,
                          double *out, cce_err *err) {
    *out = 0;
    if (rows <= 0 || dx <= 0 || dy <= 0 || ldx < dx || ldy < dy)
        return cce_err_set(err, CCE_EINVAL, "cka: bad shapes (%d, %d) ld %d and (%d, %d) ld %d", rows, dx, ldx,
                           rows, dy, ldy);
    cce_status st = CCE_ENOMEM;
    int dm = dx > dy ? dx : dy;
    float *xc = cce_alloc((size_t)rows, (size_t)dx * sizeof(float));   // (rows, dx)
    float *yc = cce_alloc((size_t)rows, (size_t)dy * sizeof(float));   // (rows, dy)
    float *tmp = cce_alloc((size_t)dm, (size_t)dm * sizeof(float));   // (dm, dm)
    double *mean = cce_alloc((size_t)dm, sizeof(double));               // (dm)
    if (!xc || !yc || !tmp || !mean) {
        cce_err_set(err, st, "cka: cannot allocate scratch for (%d, %d)", rows, dm);
        goto cleanup;
    }
    centre_copy(x, ldx, rows, dx, xc, mean);
    centre_copy(y, ldy, rows, dy, yc, mean);
    double xy, xx, yy;
    if ((st = cross_norm2(xc, dx, yc, dy, rows, tmp, &xy, err))) goto cleanup;
    if ((st = cross_norm2(xc, dx, xc, dx, rows, tmp, &xx, err))) goto cleanup;
    if ((st = cross_norm2(yc, dy, yc, dy, rows, tmp, &yy, err))) goto cleanup;
    *out = (xx > 0 && yy > 0) ? xy / sqrt(xx * yy) : 0;
    st = CCE_OK;
cleanup:
    cce_free(xc);
    cce_free(yc);
    cce_free(tmp);
    cce_free(mean);
    return st;
}

static cce_status comps_check(const cce_components *c, int n, const char *what, cce_err *err) {
    if (!c || c->n_comp < 0 || !c->off || (c->n_comp > 0 && !c->idx))
        return cce_err_set(err, CCE_EINVAL, "%s: components missing", what);
    if (c->off[0] != 0) return cce_err_set(err, CCE_EINVAL, "%s: components start at %d, not 0", what, c->off[0]);
    for (int k = 0; k < c->n_comp; k++)
        if (c->off[k + 1] <= c->off[k])
            return cce_err_set(err, CCE_EINVAL, "%s: component %d is empty", what, k);
    for (int i = 0; i < c->off[c->n_comp]; i++)
        if (c->idx[i] < 0 || c->idx[i] >= n)
            return cce_err_set(err, CCE_EINVAL, "%s: component index %d out of range 0..%d", what, c->idx[i], n - 1);
    return CCE_OK;
}

/* G_c = W_cᵀ W_c (s, s) for the columns idx of w (d, ·, ldw), in double. */
static void gram_of_columns(const float *w, int d, int ldw, const int *idx, int s, double *g) {
    for (int p = 0; p < s; p++)
        for (int q = p; q < s; q++) {
            double t = 0;
            for (int k = 0; k < d; k++) t += (double)w[(size_t)k * ldw + idx[p]] * w[(size_t)k * ldw + idx[q]];
            g[p * s + q] = g[q * s + p] = t;
        }
}

/* <G_a C_ab, C_ab G_b>_F with C_ab = cov[idx_a, idx_b]; scratch x, y (sa, sb). */
static double contrib_cross(const double *cov, int n, const int *ia, int sa, const int *ib, int sb,
                            const double *ga, const double *gb, double *c, double *x) {
    for (int p = 0; p < sa; p++)
        for (int q = 0; q < sb; q++) c[p * sb + q] = cov[(size_t)ia[p] * n + ib[q]];
    for (int p = 0; p < sa; p++)   // x = G_a C_ab
        for (int q = 0; q < sb; q++) {
            double t = 0;
            for (int k = 0; k < sa; k++) t += ga[p * sa + k] * c[k * sb + q];
            x[p * sb + q] = t;
        }
    double s = 0;
    for (int p = 0; p < sa; p++)   // sum x .* (C_ab G_b)
        for (int q = 0; q < sb; q++) {
            double t = 0;
            for (int k = 0; k < sb; k++) t += c[p * sb + k] * gb[k * sb + q];
            s += x[p * sb + q] * t;
        }
    return s;
}

cce_status cce_cka_from_cov(const double *cov, int n, const cce_components *comps, const float *w,
                            int d, int ldw, float *out, cce_err *err) {
    cce_status st = comps_check(comps, n, "head cka", err);
    if (st) return st;
    int nc = comps->n_comp, smax = 0;
    for (int k = 0; k < nc; k++)
        if (comps->off[k + 1] - comps->off[k] > smax) smax = comps->off[k + 1] - comps->off[k];
    double **g = cce_alloc_zero((size_t)nc ? (size_t)nc : 1, sizeof(double *));
    double *c = cce_alloc((size_t)smax ? (size_t)smax : 1, (size_t)(smax ? smax : 1) * sizeof(double));   // (smax, smax)
    double *x = cce_alloc((size_t)smax ? (size_t)smax : 1, (size_t)(smax ? smax : 1) * sizeof(double));   // (smax, smax)
    double *self = cce_alloc((size_t)nc ? (size_t)nc : 1, sizeof(double));                                 // (nc)
    st = CCE_ENOMEM;
    if (!g || !c || !x || !self) goto nomem;
    for (int k = 0; k < nc; k++) {
        int s = comps->off[k + 1] - comps->off[k];
        if (!(g[k] = cce_alloc((size_t)s, (size_t)s * sizeof(double)))) goto nomem;
        gram_of_columns(w, d, ldw, comps->idx + comps->off[k], s, g[k]);
    }
    for (int a = 0; a < nc; a++) {
        int sa = comps->off[a + 1] - comps->off[a];
        const int *ia = comps->idx + comps->off[a];
        self[a] = contrib_cross(cov, n, ia, sa, ia, sa, g[a], g[a], c, x);
    }
    for (int a = 0; a < nc; a++) {
        int sa = comps->off[a + 1] - comps->off[a];
        const int *ia = comps->idx + comps->off[a];
        for (int b = a; b < nc; b++) {
            int sb = comps->off[b + 1] - comps->off[b];
            const int *ib = comps->idx + comps->off[b];
            double k = a == b ? self[a] : contrib_cross(cov, n, ia, sa, ib, sb, g[a], g[b], c, x);
            double v = (self[a] > 0 && self[b] > 0) ? k / sqrt(self[a] * self[b]) : 0;
            out[a * nc + b] = out[b * nc + a] = (float)v;
        }
    }
    st = CCE_OK;
    goto cleanup;
nomem:
    cce_err_set(err, st, "head cka: cannot allocate scratch for %d components of up to %d", nc, smax);
cleanup:
    if (g)
        for (int k = 0; k < nc; k++) cce_free(g[k]);
    cce_free(g);
    cce_free(c);
    cce_free(x);
    cce_free(self);
    return st;
}

/* Inverse of a small SPD block (s, s) in place, with growing jitter if it lost definiteness
 * to rounding during downdates. Returns 0 on success. */
static int small_spd_inverse(double *a, int s, double *keep) {
    if (s == 1) {
        if (!(a[0] > 0)) return -1;
        a[0] = 1.0 / a[0];
        return 0;
    }
    memcpy(keep, a, (size_t)s * s * sizeof(double));
    double tr = 0;
    for (int i = 0; i < s; i++) tr += fabs(a[i * s + i]);
    double jit = tr > 0 ? tr / s * 1e-12 : 1e-300;
    for (int attempt = 0; attempt < 8; attempt++) {
        if (cce_linalg_spd_inverse_d(a, s, NULL) == CCE_OK) return 0;
        memcpy(a, keep, (size_t)s * s * sizeof(double));
        for (int i = 0; i < s; i++) a[i * s + i] += jit;
        jit *= 100;
    }
    return -1;
}

/* Weighted residual <G_c, (P_cc)^-1> of the component whose block starts at position a of the
 * compacted upper-triangular P (ld), size s; blk/keep are (s, s) scratch. -1 when the block is
 * numerically singular (then the caller treats the cost as 0: fully predictable). */
static double block_cost(const double *p, int ld, int a, int s, const double *gc, double *blk, double *keep) {
    for (int x = 0; x < s; x++)
        for (int y = x; y < s; y++) blk[x * s + y] = blk[y * s + x] = p[(size_t)(a + x) * ld + a + y];
    if (small_spd_inverse(blk, s, keep) != 0) return -1;
    double res = 0;
    for (int x = 0; x < s * s; x++) res += gc[x] * blk[x];
    return res;
}

cce_status cce_redundancy(const double *cov, int n, const cce_components *comps, const float *w,
                          int d, int ldw, double ridge, float *score, float *cost, int *order,
                          cce_err *err) {
    cce_status st = comps_check(comps, n, "redundancy", err);
    if (st) return st;
    int nc = comps->n_comp, nn = comps->off[nc], smax = 0;
    if (nc == 0) return CCE_OK;
    for (int k = 0; k < nc; k++)
        if (comps->off[k + 1] - comps->off[k] > smax) smax = comps->off[k + 1] - comps->off[k];
    double *p = cce_alloc((size_t)nn, (size_t)nn * sizeof(double));      // (nn, nn) (C + λI)^-1, compacted
    double *g = cce_alloc((size_t)nn, (size_t)smax * sizeof(double));    // component k's G at off[k]*smax
    double *blk = cce_alloc((size_t)smax, (size_t)smax * sizeof(double)); // (smax, smax)
    double *keep = cce_alloc((size_t)smax, (size_t)smax * sizeof(double));
    double *bt = cce_alloc((size_t)smax, (size_t)nn * sizeof(double));   // (s, k) P_c,rest (compacted order)
    double *tt = cce_alloc((size_t)smax, (size_t)nn * sizeof(double));   // (s, k) Q P_c,rest
    int *cur = cce_alloc((size_t)nc, sizeof(int));                       // living components, position order
    st = CCE_ENOMEM;
    if (!p || !g || !blk || !keep || !bt || !tt || !cur) {
        cce_err_set(err, st, "redundancy: cannot allocate scratch for %d x %d", nn, nn);
        goto cleanup;
    }
    double mean_diag = 0;
    for (int i = 0; i < nn; i++) mean_diag += cov[(size_t)comps->idx[i] * n + comps->idx[i]];
    mean_diag /= nn;
    double lambda = mean_diag > 0 ? ridge * mean_diag : 1e-30;
    for (int i = 0; i < nn; i++)
        for (int j = 0; j < nn; j++)
            p[(size_t)i * nn + j] = cov[(size_t)comps->idx[i] * n + comps->idx[j]] + (i == j ? lambda : 0);
    if ((st = cce_linalg_spd_inverse_d(p, nn, err))) {
        cce_err_prefix(err, st, "redundancy");
        goto cleanup;
    }
    for (int k = 0; k < nc; k++) {
        int s = comps->off[k + 1] - comps->off[k];
        gram_of_columns(w, d, ldw, comps->idx + comps->off[k], s, g + (size_t)comps->off[k] * smax);
        cur[k] = k;
    }
    /* Greedy backward elimination on the compacted P (only its upper triangle is kept up to
     * date): cost of each living component given the other living ones; the least goes; then
     * P_rest -= P_rest,c (P_cc)^-1 P_c,rest, with the removed rows and columns squeezed out so
     * that every update runs over contiguous memory. Step 0's costs are the leave-one-out ones. */
    int k = nn, ncur = nc;
    for (int step = 0; step < nc; step++) {
        int best_t = -1, best_a = 0;
        double best_cost = INFINITY;
        for (int t = 0, a = 0; t < ncur; t++) {
            int c = cur[t], s = comps->off[c + 1] - comps->off[c];
            double res = block_cost(p, nn, a, s, g + (size_t)comps->off[c] * smax, blk, keep);
            if (res < 0) res = 0;
            if (step == 0) {
                double var = 0;
                const double *gc = g + (size_t)comps->off[c] * smax;
                const int *ic = comps->idx + comps->off[c];
                for (int x = 0; x < s; x++)
                    for (int y = 0; y < s; y++) var += gc[x * s + y] * cov[(size_t)ic[x] * n + ic[y]];
                if (res > var) res = var;
                if (cost) cost[c] = (float)res;
                if (score) score[c] = var > 0 ? (float)(1.0 - res / var) : 1.0f;
            }
            if (res < best_cost) { best_cost = res; best_t = t; best_a = a; }
            a += s;
        }
        if (!order) break;
        int c = cur[best_t], s = comps->off[c + 1] - comps->off[c], a = best_a, kr = k - s;
        order[step] = c;
        for (int t = best_t; t + 1 < ncur; t++) cur[t] = cur[t + 1];
        ncur--;
        if (ncur == 0) break;
        // bt (s, kr): row x = P[a+x, rest] in compacted column order (read from the upper triangle)
        for (int x = 0; x < s; x++) {
            double *row = bt + (size_t)x * kr;
            for (int r = 0; r < a; r++) row[r] = p[(size_t)r * nn + a + x];
            for (int r = a + s; r < k; r++) row[r - s] = p[(size_t)(a + x) * nn + r];
        }
        int singular = block_cost(p, nn, a, s, g + (size_t)comps->off[c] * smax, blk, keep) < 0;
        // tt = Q bt with Q = (P_cc)^-1 now in blk
        for (int x = 0; x < s; x++) {
            double *trow = tt + (size_t)x * kr;
            for (int r = 0; r < kr; r++) trow[r] = 0;
            if (singular) continue;
            for (int y = 0; y < s; y++) {
                double q = blk[x * s + y];
                const double *brow = bt + (size_t)y * kr;
                for (int r = 0; r < kr; r++) trow[r] += q * brow[r];
            }
        }
        // squeeze out rows/columns [a, a+s) and apply the downdate to the upper triangle
        for (int r = 0; r < k; r++) {
            if (r >= a && r < a + s) continue;
            int rd = r < a ? r : r - s;
            double *dst = p + (size_t)rd * nn;
            const double *src = p + (size_t)r * nn;
            if (r < a) {   // columns r..a-1 stay, a+s..k-1 shift left by s
                memmove(dst + a, src + a + s, (size_t)(k - a - s) * sizeof(double));
            } else {       // whole row moves up by s and left by s
                memmove(dst + rd, src + r, (size_t)(k - r) * sizeof(double));
            }
            for (int x = 0; x < s; x++) {
                double f = tt[(size_t)x * kr + rd];
                if (f == 0) continue;
                const double *brow = bt + (size_t)x * kr;
                for (int q = rd; q < kr; q++) dst[q] -= f * brow[q];
            }
        }
        k = kr;
    }
    st = CCE_OK;
cleanup:
    cce_free(p);
    cce_free(g);
    cce_free(blk);
    cce_free(keep);
    cce_free(bt);
    cce_free(tt);
    cce_free(cur);
    return st;
}

/* ------------------------------------------------------------------ the job */

enum { PH_IDLE, PH_TOKENISE, PH_FORWARD, PH_SIMILARITY, PH_EIGEN, PH_SVD, PH_REDUNDANCY, PH_DONE,
       PH_FAILED, PH_CANCELLED };

struct cce_analysis {
    const cce_model *m;
    cce_analysis_opts opts;
    const cce_tokenizer *tok;
    char *text;                 // (text_len) copy of the calibration text, freed after step 0
    size_t text_len;
    int *stream;                // (n_stream) token stream (copied ids or tokenised text)
    size_t n_stream;
    cce_calib *calib;
    int L;
    cce_block_result *res;      // (L)
    float *layer_cka;           // (L, L)
    int gram;                   // layer CKA from Gram matrices (else from the updates)
    float *delta;               // (L, n_sub, dim) centred block updates on the token subsample,
                                // or with gram (L, n_sub, n_sub) their Gram matrices Δ Δᵀ
    double *delta_self;         // (L) ‖Δᵀ Δ‖_F
    float *cross;               // scratch: (dim, dim) Δ_iᵀ Δ_j, or with gram (n_sub, dim) Δ_l
    int *sub_rows;              // (n_sub) rows of the subsample, increasing
    int n_sub;
    float *h_prev;              // (rows, dim) hidden states before the current block
    /* statistics of the block being computed */
    cce_moments mom[CCE_COV_COUNT];
    cce_hist hist[CCE_TAP_COUNT];
    double t_tap;
    cce_status tap_status;
    cce_err tap_err;
    cce_block_stats_fn hook;
    void *hook_user;
    /* state */
    cce_status failed;
    char fail_msg[sizeof(((cce_err *)0)->msg)];
    atomic_int steps_done;      // 0: nothing; 1: calibration ready; ℓ+2: block ℓ done
    atomic_int phase, phase_block, cancel;
};

static const cce_tap_site cov_tap[CCE_COV_COUNT] = {CCE_TAP_ATTN_IN, CCE_TAP_HEADS, CCE_TAP_FFN_IN,
                                                    CCE_TAP_FFN_ACT};

/* Upper bound of the bytes an analysis with these (validated) options holds at its peak: the
 * calibration hidden states and their copy, the forward scratch of one chunk (2048 rows), one
 * block's statistics (double accumulator, covariance and eigenvectors per site), the redundancy
 * workspace of the widest site, the token subsample of every block's update, and the text. */
static uint64_t analysis_memory_estimate(const cce_model *m, const cce_analysis_opts *o, size_t text_len,
                                         size_t n_ids) {
    const cce_config *c = &m->cfg;
    uint64_t rows = (uint64_t)(o->tokens / o->seq_len) * (uint64_t)o->seq_len;
    uint64_t d = (uint64_t)c->dim, q = (uint64_t)c->n_heads * (uint64_t)c->head_dim;
    uint64_t kv = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim, hid = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (!m->layers[l].dropped && (uint64_t)m->layers[l].hidden > hid) hid = (uint64_t)m->layers[l].hidden;
    if (!hid) hid = (uint64_t)c->hidden_dim;
    uint64_t chunk = rows < 2048 ? rows : 2048;
    uint64_t sub = (uint64_t)o->subsample < rows ? (uint64_t)o->subsample : rows;
    uint64_t wide = hid > q ? hid : q;
    uint64_t bytes = rows * d * 4 * 2 + rows * 4;                          /* h, h_prev, ids */
    bytes += chunk * (2 * d + 2 * q + 2 * kv + 2 * hid) * 4; /* forward scratch */
    bytes += (2 * d * d + q * q + hid * hid) * 8 * 3;                      /* per-site moments, covariance, vectors */
    bytes += wide * wide * 8 * 4;                                           /* redundancy workspace */
    bytes += (uint64_t)c->n_layers * sub * (d < sub ? d : sub) * 4;         /* update subsample (or Gram) */
    bytes += text_len + n_ids * 4 + (text_len ? text_len * 4 : 0);          /* text and its token stream */
    return bytes;
}

cce_status cce_analysis_new(const cce_model *m, const cce_calib_source *src, const cce_analysis_opts *opts,
                            cce_analysis **out, cce_err *err) {
    *out = NULL;
    if (!m || !src) return cce_err_set(err, CCE_EINVAL, "analysis: model and calibration source are required");
    if (!src->text && (!src->ids || src->n_ids == 0))
        return cce_err_set(err, CCE_EINVAL, "analysis: calibration source has neither text nor ids");
    if (src->text && !src->tok) return cce_err_set(err, CCE_EINVAL, "analysis: calibration text needs a tokenizer");
    cce_analysis_opts o;
    if (opts) o = *opts;
    else cce_analysis_opts_default(&o);
    if (o.seq_len == 0) o.seq_len = m->cfg.seq_len < 256 ? m->cfg.seq_len : 256;
    if (o.seq_len < 2 || o.seq_len > m->cfg.seq_len)
        return cce_err_set(err, CCE_EINVAL, "analysis: seq_len %d out of range 2..%d", o.seq_len, m->cfg.seq_len);
    if (o.tokens < o.seq_len)
        return cce_err_set(err, CCE_EINVAL, "analysis: tokens %ld below one sequence of %d", o.tokens, o.seq_len);
    if (o.tokens > (1L << 24)) return cce_err_set(err, CCE_EINVAL, "analysis: tokens %ld above 16M", o.tokens);
    if (o.hist_bins < 1 || o.hist_bins > 4096)
        return cce_err_set(err, CCE_EINVAL, "analysis: hist_bins %d out of range 1..4096", o.hist_bins);
    if (o.subsample < 2) return cce_err_set(err, CCE_EINVAL, "analysis: subsample %d below 2", o.subsample);
    if (!(o.eps >= 0 && o.eps < 1) || !(o.tau >= 0 && o.tau < 1) || !(o.ridge > 0 && o.ridge < 1))
        return cce_err_set(err, CCE_EINVAL, "analysis: eps %g / tau %g / ridge %g out of range", (double)o.eps,
                           (double)o.tau, o.ridge);
    cce_status ms = cce_mem_check("analysis", analysis_memory_estimate(m, &o, src->text ? src->text_len : 0,
                                                                        src->text ? 0 : src->n_ids),
                                  "reduce --tokens (or --seq-len, --subsample)", err);
    if (ms) return ms;
    cce_analysis *j = cce_alloc_zero(1, sizeof *j);
    if (!j) return cce_err_set(err, CCE_ENOMEM, "analysis: cannot allocate the job");
    j->m = m;
    j->opts = o;
    j->tok = src->tok;
    j->L = m->cfg.n_layers;
    int L = j->L > 0 ? j->L : 1;
    j->res = cce_alloc_zero((size_t)L, sizeof *j->res);
    j->layer_cka = cce_alloc_zero((size_t)L, (size_t)L * sizeof(float));
    j->delta_self = cce_alloc_zero((size_t)L, sizeof(double));
    if (!j->res || !j->layer_cka || !j->delta_self) goto nomem;
    if (src->text) {
        j->text_len = src->text_len;
        if (!(j->text = cce_alloc(src->text_len + 1, 1))) goto nomem;
        memcpy(j->text, src->text, src->text_len);
        j->text[src->text_len] = 0;
    } else {
        if (!(j->stream = cce_alloc(src->n_ids, sizeof(int)))) goto nomem;
        memcpy(j->stream, src->ids, src->n_ids * sizeof(int));
        j->n_stream = src->n_ids;
    }
    *out = j;
    return CCE_OK;
nomem:
    cce_analysis_free(j);
    return cce_err_set(err, CCE_ENOMEM, "analysis: cannot allocate job state for %d layers", L);
}

void cce_analysis_set_stats_hook(cce_analysis *job, cce_block_stats_fn fn, void *user) {
    job->hook = fn;
    job->hook_user = user;
}

static void block_result_free(cce_block_result *r) {
    for (int s = 0; s < CCE_COV_COUNT; s++) cce_free(r->eig[s].values);
    for (int k = 0; k < r->n_weights; k++) {
        cce_free(r->weights[k].sv);
        cce_free(r->weights[k].sv_aw);
    }
    cce_free(r->head_cka);
    cce_free(r->group_cka);
    cce_free(r->neuron_score);
    cce_free(r->neuron_cost);
    cce_free(r->neuron_order);
    cce_free(r->head_score);
    cce_free(r->head_cost);
    cce_free(r->head_order);
    for (int s = 0; s < CCE_TAP_COUNT; s++) cce_hist_free(&r->hist[s]);
}

static void block_stats_free(cce_analysis *j) {
    for (int s = 0; s < CCE_COV_COUNT; s++) cce_moments_free(&j->mom[s]);
    for (int s = 0; s < CCE_TAP_COUNT; s++) cce_hist_free(&j->hist[s]);
}

void cce_analysis_free(cce_analysis *j) {
    if (!j) return;
    if (j->res)
        for (int l = 0; l < j->L; l++) block_result_free(&j->res[l]);
    block_stats_free(j);
    cce_free(j->res);
    cce_free(j->layer_cka);
    cce_free(j->delta);
    cce_free(j->delta_self);
    cce_free(j->cross);
    cce_free(j->sub_rows);
    cce_free(j->h_prev);
    cce_free(j->text);
    cce_free(j->stream);
    cce_calib_free(j->calib);
    cce_free(j);
}

int cce_analysis_n_layers(const cce_analysis *job) { return job->L; }
const cce_analysis_opts *cce_analysis_get_opts(const cce_analysis *job) { return &job->opts; }

int cce_analysis_finished(const cce_analysis *job) {
    return atomic_load_explicit(&((cce_analysis *)job)->steps_done, memory_order_acquire) >= job->L + 1;
}

void cce_analysis_progress(const cce_analysis *job, int *done, int *total, char *phase, size_t cap) {
    cce_analysis *j = (cce_analysis *)job;
    int d = atomic_load_explicit(&j->steps_done, memory_order_acquire);
    if (done) *done = d;
    if (total) *total = job->L + 1;
    if (!phase || cap == 0) return;
    int ph = atomic_load(&j->phase), b = atomic_load(&j->phase_block);
    static const char *names[] = {"idle", "tokenise", "forward", "similarity", "eigen", "svd", "redundancy",
                                  "done", "failed", "cancelled"};
    if (ph >= PH_FORWARD && ph <= PH_REDUNDANCY) snprintf(phase, cap, "block %d/%d %s", b + 1, job->L, names[ph]);
    else snprintf(phase, cap, "%s", names[ph]);
}

void cce_analysis_cancel(cce_analysis *job) { atomic_store(&job->cancel, 1); }

const cce_block_result *cce_analysis_block(const cce_analysis *job, int l) {
    if (l < 0 || l >= job->L) return NULL;
    int d = atomic_load_explicit(&((cce_analysis *)job)->steps_done, memory_order_acquire);
    return l + 2 <= d ? &job->res[l] : NULL;
}

const float *cce_analysis_layer_cka(const cce_analysis *job, int *n_done) {
    int d = atomic_load_explicit(&((cce_analysis *)job)->steps_done, memory_order_acquire);
    if (n_done) *n_done = d > 1 ? d - 1 : 0;
    return job->layer_cka;
}

void cce_analysis_calib_info(const cce_analysis *job, size_t *stream_tokens, int *n_seq, int *seq_len) {
    int ready = atomic_load_explicit(&((cce_analysis *)job)->steps_done, memory_order_acquire) >= 1;
    if (stream_tokens) *stream_tokens = ready ? job->n_stream : 0;
    if (n_seq) *n_seq = ready ? job->calib->n_seq : 0;
    if (seq_len) *seq_len = ready ? job->calib->seq_len : 0;
}

static int analysis_should_stop(void *user) { return atomic_load(&((cce_analysis *)user)->cancel); }

/* Step 0: token stream, calibration batch, token subsample, scratch. */
static cce_status analysis_prepare(cce_analysis *j, cce_err *err) {
    atomic_store(&j->phase, PH_TOKENISE);
    cce_status st;
    if (j->text) {
        st = cce_calib_text_tokens(j->tok, j->text, j->text_len, 0, analysis_should_stop, j, &j->stream,
                                   &j->n_stream, err);
        if (st == CCE_ECANCEL) cce_err_set(err, st, "analysis: cancelled while tokenising");
        if (st) return st;
        cce_free(j->text);
        j->text = NULL;
    }
    cce_calib_opts co = {j->opts.tokens, j->opts.seq_len, j->opts.seed, 0};
    if ((st = cce_calib_new(j->m, j->stream, j->n_stream, &co, &j->calib, err))) return st;
    int rows = j->calib->rows, d = j->calib->dim;
    j->n_sub = j->opts.subsample < rows ? j->opts.subsample : rows;
    j->sub_rows = cce_alloc((size_t)rows, sizeof(int));
    j->h_prev = cce_alloc((size_t)rows, (size_t)d * sizeof(float));
    // Compare updates directly (L²/2 products of (sub, d)ᵀ(sub, d)) or through Gram matrices
    // (L products (sub, d)(sub, d)ᵀ, then L²/2 dot products of (sub, sub)): the cheaper one.
    double ns = j->n_sub, dd = d, LL = j->L;
    j->gram = j->opts.cka_gram >= 0 ? j->opts.cka_gram : LL * LL / 2 * ns * dd * dd > LL * ns * ns * dd + LL * LL / 2 * ns * ns;
    j->cross = j->gram ? cce_alloc((size_t)j->n_sub, (size_t)d * sizeof(float)) : cce_alloc((size_t)d, (size_t)d * sizeof(float));
    size_t per;
    if (!cce_size_mul((size_t)j->n_sub, j->gram ? (size_t)j->n_sub : (size_t)d, &per) ||
        !cce_size_mul(per, (size_t)(j->L > 0 ? j->L : 1), &per))
        return cce_err_set(err, CCE_ENOMEM, "analysis: update subsample (%d layers, %d, %d) overflows", j->L, j->n_sub, d);
    j->delta = cce_alloc_zero(per, sizeof(float));
    if (!j->sub_rows || !j->h_prev || !j->cross || !j->delta)
        return cce_err_set(err, CCE_ENOMEM, "analysis: cannot allocate hidden-state copies for %d rows of %d", rows, d);
    // Seeded subsample: partial Fisher-Yates over all rows, then sorted.
    cce_rng r;
    cce_rng_seed(&r, j->opts.seed ^ 0x5eed5a3b1e0ffULL);
    for (int i = 0; i < rows; i++) j->sub_rows[i] = i;
    for (int i = 0; i < j->n_sub; i++) {
        int k = i + (int)(cce_rng_u64(&r) % (uint64_t)(rows - i));
        int t = j->sub_rows[i]; j->sub_rows[i] = j->sub_rows[k]; j->sub_rows[k] = t;
    }
    for (int i = 1; i < j->n_sub; i++)   // insertion sort keeps it simple and deterministic
        for (int k = i; k > 0 && j->sub_rows[k - 1] > j->sub_rows[k]; k--) {
            int t = j->sub_rows[k]; j->sub_rows[k] = j->sub_rows[k - 1]; j->sub_rows[k - 1] = t;
        }
    return CCE_OK;
}

static int cov_index(cce_tap_site s) {
    for (int k = 0; k < CCE_COV_COUNT; k++)
        if (cov_tap[k] == s) return k;
    return -1;
}

static int analysis_tap(void *user, const cce_tap *t) {
    cce_analysis *j = user;
    if (atomic_load(&j->cancel)) return 1;
    double t0 = cce_now();
    int k = cov_index(t->site);
    cce_status st = CCE_OK;
    if (k >= 0 && j->mom[k].dim) {
        if (t->cols != j->mom[k].dim)
            st = cce_err_set(&j->tap_err, CCE_EINVAL, "analysis: block %d site %s has %d columns, expected %d",
                             t->layer, cce_tap_site_name(t->site), t->cols, j->mom[k].dim);
        else st = cce_moments_add(&j->mom[k], t->x, t->rows, t->ld, &j->tap_err);
    }
    if (!st && t->site < CCE_TAP_COUNT) {
        cce_hist *h = &j->hist[t->site];
        if (!h->counts) st = cce_hist_init(h, j->opts.hist_bins, &j->tap_err);
        if (!st) st = cce_hist_add(h, t->x, t->rows, t->cols, t->ld, &j->tap_err);
    }
    j->t_tap += cce_now() - t0;
    if (st) {
        j->tap_status = st;
        return 1;
    }
    return 0;
}

/* Dense f32 (out, in) weights of a linear (the stored matrix, or a decoded / U V copy in *owned). */
static cce_status linear_dense(const cce_linear *lin, float **owned, const float **w, cce_err *err) {
    cce_status st = cce_linear_dense(lin, w, owned, err);
    return st ? cce_err_prefix(err, st, "analysis") : CCE_OK;
}

/* Plain and activation-aware spectra of one weight matrix; m2 (in, in) is the uncentred second
 * moment of its input. */
static cce_status weight_spectrum(const cce_linear *lin, const char *name, const double *m2, float tau,
                                  cce_weight_spectrum *ws, cce_err *err) {
    memset(ws, 0, sizeof *ws);
    snprintf(ws->name, sizeof ws->name, "%s", name);
    ws->rows = lin->out;
    ws->cols = lin->in;
    int n = lin->out < lin->in ? lin->out : lin->in;
    ws->n = n;
    float *owned = NULL, *wl = NULL, *chol = NULL;
    const float *w;
    cce_status st = linear_dense(lin, &owned, &w, err);
    if (st) return st;
    st = CCE_ENOMEM;
    ws->sv = cce_alloc((size_t)n, sizeof(float));
    ws->sv_aw = cce_alloc((size_t)n, sizeof(float));
    wl = cce_alloc((size_t)lin->out, (size_t)lin->in * sizeof(float));    // (out, in) W L
    chol = cce_alloc((size_t)lin->in, (size_t)lin->in * sizeof(float));   // (in, in) L
    if (!ws->sv || !ws->sv_aw || !wl || !chol) {
        cce_err_set(err, st, "analysis: cannot allocate the spectrum of %s (%d, %d)", name, lin->out, lin->in);
        goto cleanup;
    }
    cce_mat W = {(float *)w, lin->out, lin->in, lin->in};
    if ((st = cce_linalg_svd_values(&W, ws->sv, err))) goto cleanup;
    ws->frobenius = sqrt(frob2(w, (size_t)lin->out * lin->in));
    ws->spectral_norm = ws->sv[0];
    ws->stable_rank = ws->spectral_norm > 0 ? ws->frobenius * ws->frobenius / (ws->spectral_norm * ws->spectral_norm) : 0;
    ws->below_tau = cce_spectrum_count_below(ws->sv, n, tau);
    for (size_t i = 0; i < (size_t)lin->in * lin->in; i++) chol[i] = (float)m2[i];
    cce_mat C = {chol, lin->in, lin->in, lin->in};
    if ((st = cce_linalg_cholesky(&C, &ws->jitter, err))) goto cleanup;
    memcpy(wl, w, (size_t)lin->out * lin->in * sizeof(float));
    cce_mat WL = {wl, lin->out, lin->in, lin->in};
    if ((st = cce_linalg_trmm(1, 1, 0, &C, &WL, err))) goto cleanup;
    if ((st = cce_linalg_svd_values(&WL, ws->sv_aw, err))) goto cleanup;
    ws->aw_below_tau = cce_spectrum_count_below(ws->sv_aw, n, tau);
    st = CCE_OK;
cleanup:
    if (st) cce_err_prefix(err, st, name);
    cce_free(owned);
    cce_free(wl);
    cce_free(chol);
    return st;
}

/* Angular distance, influence, update RMS over all rows; the centred update subsample. */
static void block_similarity(cce_analysis *j, int l, cce_block_result *r) {
    const cce_calib *c = j->calib;
    int d = c->dim;
    double sum_cos = 0, sum_ang = 0, sum_dd = 0, sum_hh = 0;
    for (int i = 0; i < c->rows; i++) {
        const float *a = j->h_prev + (size_t)i * d, *b = c->h + (size_t)i * d;
        double ab = 0, aa = 0, bb = 0, dd = 0;
        for (int k = 0; k < d; k++) {
            ab += (double)a[k] * b[k];
            aa += (double)a[k] * a[k];
            bb += (double)b[k] * b[k];
            dd += ((double)b[k] - a[k]) * ((double)b[k] - a[k]);
        }
        double cs = (aa > 0 && bb > 0) ? ab / sqrt(aa * bb) : 1.0;
        if (dd == 0) cs = 1.0;   // unchanged token: exactly aligned
        if (cs > 1) cs = 1;
        if (cs < -1) cs = -1;
        sum_cos += cs;
        sum_ang += acos(cs) / M_PI;
        sum_dd += dd;
        sum_hh += aa;
    }
    r->angular_distance = sum_ang / c->rows;
    r->influence = 1.0 - sum_cos / c->rows;
    if (r->influence < 0) r->influence = 0;
    r->update_rms = sum_hh > 0 ? sqrt(sum_dd / sum_hh) : 0;
    r->near_identity = r->angular_distance < 1e-3;
    float *dl = j->gram ? j->cross : j->delta + (size_t)l * j->n_sub * d;   // (n_sub, d)
    for (int s = 0; s < j->n_sub; s++) {
        const float *a = j->h_prev + (size_t)j->sub_rows[s] * d, *b = c->h + (size_t)j->sub_rows[s] * d;
        for (int k = 0; k < d; k++) dl[(size_t)s * d + k] = b[k] - a[k];
    }
    for (int k = 0; k < d; k++) {   // centre the columns
        double m = 0;
        for (int s = 0; s < j->n_sub; s++) m += dl[(size_t)s * d + k];
        m /= j->n_sub;
        for (int s = 0; s < j->n_sub; s++) dl[(size_t)s * d + k] = (float)(dl[(size_t)s * d + k] - m);
    }
}

static double dot_f(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Row and column l of the layer CKA matrix: <K_i, K_l> = ‖Δ_iᵀ Δ_l‖_F² either way. */
static cce_status layer_cka_row(cce_analysis *j, int l, cce_err *err) {
    int d = j->calib->dim, ns = j->n_sub;
    size_t per = (size_t)ns * (j->gram ? (size_t)ns : (size_t)d);
    float *dl = j->delta + (size_t)l * per;
    double self;
    cce_status st;
    if (j->gram) {   // K_l = Δ_l Δ_lᵀ from the scratch update
        cce_mat D = {j->cross, ns, d, d}, K = {dl, ns, ns, ns};
        if ((st = cce_linalg_gemm(0, 1, 1.0f, &D, &D, 0.0f, &K, err))) return st;
        self = dot_f(dl, dl, per);
    } else if ((st = cross_norm2(dl, d, dl, d, ns, j->cross, &self, err))) {
        return st;
    }
    j->delta_self[l] = sqrt(self);
    for (int i = 0; i <= l; i++) {
        double v = 0;
        if (j->delta_self[i] > 0 && j->delta_self[l] > 0) {
            double x;
            const float *di = j->delta + (size_t)i * per;
            if (i == l) x = self;
            else if (j->gram) x = dot_f(di, dl, per);
            else if ((st = cross_norm2(di, d, dl, d, ns, j->cross, &x, err))) return st;
            v = x / (j->delta_self[i] * j->delta_self[l]);
        }
        j->layer_cka[(size_t)i * j->L + l] = j->layer_cka[(size_t)l * j->L + i] = (float)v;
    }
    return CCE_OK;
}

static cce_status eigen_of(const double *cov, int n, float eps, cce_spectrum *sp, cce_err *err) {
    sp->n = n;
    sp->values = cce_alloc((size_t)n, sizeof(float));
    float *a = cce_alloc((size_t)n, (size_t)n * sizeof(float));   // (n, n)
    cce_status st = CCE_ENOMEM;
    if (!sp->values || !a) {
        cce_err_set(err, st, "analysis: cannot allocate a (%d, %d) eigenproblem", n, n);
        goto cleanup;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)cov[i];
    cce_mat A = {a, n, n, n};
    if ((st = cce_linalg_eigh(&A, sp->values, 0, err))) goto cleanup;
    sp->below_eps = cce_spectrum_count_below(sp->values, n, eps);
cleanup:
    cce_free(a);
    return st;
}

/* Everything after the forward pass of block l. */
static cce_status block_analyse(cce_analysis *j, int l, cce_block_result *r, cce_err *err) {
    const cce_layer *ly = &j->m->layers[l];
    int hd = j->m->cfg.head_dim, qd = ly->n_heads * hd;
    double *cov[CCE_COV_COUNT] = {0}, *mean[CCE_COV_COUNT] = {0}, *m2 = NULL;
    int *idx = NULL, *off = NULL;
    cce_status st = CCE_ENOMEM;
    int dims[CCE_COV_COUNT] = {r->dim, qd, r->dim, ly->hidden};
    int dmax = 0;
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        if (dims[s] > dmax) dmax = dims[s];
        cov[s] = cce_alloc((size_t)dims[s], (size_t)dims[s] * sizeof(double));
        mean[s] = cce_alloc((size_t)dims[s], sizeof(double));
        if (!cov[s] || !mean[s]) goto nomem;
        cce_moments_cov(&j->mom[s], cov[s]);
        cce_moments_mean(&j->mom[s], mean[s]);
    }
    if (j->hook) {
        cce_block_stats bs = {.layer = l, .count = j->mom[0].count};
        for (int s = 0; s < CCE_COV_COUNT; s++) {
            bs.dims[s] = dims[s];
            bs.mean[s] = mean[s];
            bs.cov[s] = cov[s];
        }
        j->hook(j->hook_user, &bs);
    }
    // eigen spectra
    atomic_store(&j->phase, PH_EIGEN);
    double t0 = cce_now();
    for (int s = 0; s < CCE_COV_COUNT; s++)
        if ((st = eigen_of(cov[s], dims[s], j->opts.eps, &r->eig[s], err))) goto cleanup;
    r->t_eigen = cce_now() - t0;
    // weight spectra (inputs' uncentred second moments)
    atomic_store(&j->phase, PH_SVD);
    t0 = cce_now();
    if (!(m2 = cce_alloc((size_t)dmax, (size_t)dmax * sizeof(double)))) goto nomem;
    r->n_weights = 7;   // so that a failure below frees whatever was filled
    struct { const char *name; const cce_linear *lin; int site; } mats[7] = {
        {"wq", &ly->wq, CCE_COV_ATTN_IN}, {"wk", &ly->wk, CCE_COV_ATTN_IN}, {"wv", &ly->wv, CCE_COV_ATTN_IN},
        {"wo", &ly->wo, CCE_COV_HEADS},   {"w1", &ly->w1, CCE_COV_FFN_IN},  {"w3", &ly->w3, CCE_COV_FFN_IN},
        {"w2", &ly->w2, CCE_COV_FFN_ACT}};
    for (int s = 0; s < CCE_COV_COUNT; s++) {   // one second moment per input site, in matrix order
        int any = 0;
        for (int k = 0; k < 7; k++) any |= mats[k].site == s && mats[k].lin->out > 0;
        if (!any) continue;
        cce_moments_second(&j->mom[s], m2);
        for (int k = 0; k < 7; k++) {
            if (mats[k].site != s || mats[k].lin->out <= 0) continue;
            cce_weight_spectrum *ws = &r->weights[k];
            st = weight_spectrum(mats[k].lin, mats[k].name, m2, j->opts.tau, ws, err);
            if (st) goto cleanup;
        }
    }
    // compact: keep existing matrices in the fixed order wq wk wv wo w1 w3 w2
    r->n_weights = 0;
    for (int k = 0; k < 7; k++)
        if (mats[k].lin->out > 0) r->weights[r->n_weights++] = r->weights[k];
    for (int k = r->n_weights; k < 7; k++) memset(&r->weights[k], 0, sizeof r->weights[k]);
    r->t_svd = cce_now() - t0;
    // head similarity and redundancy
    atomic_store(&j->phase, PH_REDUNDANCY);
    t0 = cce_now();
    int nh = ly->n_heads, ng = ly->n_kv_heads, m = ly->hidden;
    int nmax = (qd > m ? qd : m);
    idx = cce_alloc((size_t)nmax, sizeof(int));
    off = cce_alloc((size_t)nmax + 1, sizeof(int));
    r->head_cka = cce_alloc((size_t)nh, (size_t)nh * sizeof(float));
    r->group_cka = cce_alloc((size_t)ng, (size_t)ng * sizeof(float));
    r->head_score = cce_alloc((size_t)nh, sizeof(float));
    r->head_cost = cce_alloc((size_t)nh, sizeof(float));
    r->head_order = cce_alloc((size_t)nh, sizeof(int));
    r->neuron_score = cce_alloc((size_t)m, sizeof(float));
    r->neuron_cost = cce_alloc((size_t)m, sizeof(float));
    r->neuron_order = cce_alloc((size_t)m, sizeof(int));
    if (!idx || !off || !r->head_cka || !r->group_cka || !r->head_score || !r->head_cost || !r->head_order ||
        !r->neuron_score || !r->neuron_cost || !r->neuron_order)
        goto nomem;
    float *wo_owned = NULL, *w2_owned = NULL;
    const float *wo, *w2;
    if ((st = linear_dense(&ly->wo, &wo_owned, &wo, err))) goto cleanup;
    if ((st = linear_dense(&ly->w2, &w2_owned, &w2, err))) { cce_free(wo_owned); goto cleanup; }
    for (int h = 0; h <= nh; h++) off[h] = h * hd;
    for (int i = 0; i < qd; i++) idx[i] = i;
    cce_components heads = {nh, off, idx};
    st = cce_cka_from_cov(cov[CCE_COV_HEADS], qd, &heads, wo, r->dim, qd, r->head_cka, err);
    if (!st)
        st = cce_redundancy(cov[CCE_COV_HEADS], qd, &heads, wo, r->dim, qd, j->opts.ridge, r->head_score,
                            r->head_cost, r->head_order, err);
    if (!st) {   // KV groups: all query heads of a group, in head order
        int p = 0;
        for (int g = 0; g < ng; g++) {
            off[g] = p;
            for (int h = 0; h < nh; h++)
                if (cce_layer_kv_of(ly, h) == g)
                    for (int k = 0; k < hd; k++) idx[p++] = h * hd + k;
            if (p == off[g]) {
                st = cce_err_set(err, CCE_EINVAL, "analysis: block %d KV head %d has no query head", l, g);
                break;
            }
        }
        off[ng] = p;
        cce_components groups = {ng, off, idx};
        if (!st) st = cce_cka_from_cov(cov[CCE_COV_HEADS], qd, &groups, wo, r->dim, qd, r->group_cka, err);
    }
    if (!st) {
        for (int i = 0; i <= m; i++) off[i] = i;
        for (int i = 0; i < m; i++) idx[i] = i;
        cce_components neurons = {m, off, idx};
        st = cce_redundancy(cov[CCE_COV_FFN_ACT], m, &neurons, w2, r->dim, m, j->opts.ridge, r->neuron_score,
                            r->neuron_cost, r->neuron_order, err);
    }
    cce_free(wo_owned);
    cce_free(w2_owned);
    r->t_redundancy = cce_now() - t0;
    goto cleanup;
nomem:
    st = cce_err_set(err, CCE_ENOMEM, "analysis: block %d: cannot allocate statistics (largest %d)", l, dmax);
cleanup:
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        cce_free(cov[s]);
        cce_free(mean[s]);
    }
    cce_free(m2);
    cce_free(idx);
    cce_free(off);
    return st;
}

static cce_status analysis_block_step(cce_analysis *j, int l, cce_err *err) {
    const cce_layer *ly = &j->m->layers[l];
    cce_calib *c = j->calib;
    cce_block_result *r = &j->res[l];
    memset(r, 0, sizeof *r);
    r->layer = l;
    r->dropped = ly->dropped;
    r->dim = j->m->cfg.dim;
    r->head_dim = j->m->cfg.head_dim;
    r->n_heads = ly->dropped ? 0 : ly->n_heads;
    r->n_kv_heads = ly->dropped ? 0 : ly->n_kv_heads;
    r->hidden = ly->dropped ? 0 : ly->hidden;
    atomic_store(&j->phase_block, l);
    atomic_store(&j->phase, PH_FORWARD);
    cce_status st = CCE_OK;
    block_stats_free(j);
    if (!ly->dropped) {
        int dims[CCE_COV_COUNT] = {r->dim, ly->n_heads * r->head_dim, r->dim, ly->hidden};
        for (int s = 0; s < CCE_COV_COUNT && !st; s++) st = cce_moments_init(&j->mom[s], dims[s], err);
        if (st) return st;
    }
    memcpy(j->h_prev, c->h, (size_t)c->rows * c->dim * sizeof(float));
    j->t_tap = 0;
    j->tap_status = CCE_OK;
    double t0 = cce_now();
    st = cce_calib_block(c, analysis_tap, j, err);
    if (st == CCE_ECANCEL && j->tap_status) {
        if (err) memcpy(err->msg, j->tap_err.msg, sizeof err->msg);
        st = j->tap_status;
    }
    if (st) return st;
    r->t_forward = cce_now() - t0 - j->t_tap;
    r->t_stats = j->t_tap;
    atomic_store(&j->phase, PH_SIMILARITY);
    t0 = cce_now();
    block_similarity(j, l, r);
    if ((st = layer_cka_row(j, l, err))) return st;
    r->t_similarity = cce_now() - t0;
    if (!ly->dropped && (st = block_analyse(j, l, r, err))) return st;
    for (int s = 0; s < CCE_TAP_COUNT; s++) {   // the block's histograms become its results
        r->hist[s] = j->hist[s];
        memset(&j->hist[s], 0, sizeof j->hist[s]);
    }
    block_stats_free(j);
    return CCE_OK;
}

cce_status cce_analysis_step(cce_analysis *j, cce_err *err) {
    if (j->failed) {
        if (err) snprintf(err->msg, sizeof err->msg, "%s", j->fail_msg);
        return j->failed;
    }
    int done = atomic_load(&j->steps_done);
    if (done >= j->L + 1) return CCE_OK;
    cce_err local = {{0}};
    cce_err *e = err ? err : &local;
    cce_status st;
    if (atomic_load(&j->cancel)) st = cce_err_set(e, CCE_ECANCEL, "analysis: cancelled");
    else if (done == 0) st = analysis_prepare(j, e);
    else {
        st = analysis_block_step(j, done - 1, e);
        if (st == CCE_ECANCEL && !j->tap_status) cce_err_set(e, CCE_ECANCEL, "analysis: cancelled in block %d", done - 1);
    }
    if (st) {
        j->failed = st;
        snprintf(j->fail_msg, sizeof j->fail_msg, "%s", e->msg);
        block_stats_free(j);
        atomic_store(&j->phase, st == CCE_ECANCEL ? PH_CANCELLED : PH_FAILED);
        return st;
    }
    atomic_store_explicit(&j->steps_done, done + 1, memory_order_release);
    if (done + 1 >= j->L + 1) atomic_store(&j->phase, PH_DONE);
    return CCE_OK;
}

cce_status cce_analysis_run(cce_analysis *job, cce_err *err) {
    while (!cce_analysis_finished(job)) {
        cce_status st = cce_analysis_step(job, err);
        if (st) return st;
    }
    return CCE_OK;
}
