/*
 * analysis.c — the analysis job and its math (see include/analysis.h for the readings).
 *
 * Structure. The job is a small state machine driven by cce_analysis_step: step 0 builds the
 * calibration batch (calib.c), step ℓ+1 runs block ℓ with analysis_tap accumulating moments and
 * histograms of the block's sites and what dropping its sublayers changes (drop_tap), then
 * derives: angular distance / influence and the update subsample (from h before and after), the
 * layer-CKA row ℓ, and the post-forward pieces as independent tasks (block_analyse): OBS of the
 * FFN neurons (select.c) and its curve, the neurons' nuclear-norm curve (once the order exists),
 * head and KV-group CKA with their OBS and curve, four eigen spectra, seven weight spectra with
 * their rank curves; then the drop curves. The block's statistics are freed before the next
 * block; only results and the update subsample stay.
 *
 * Threads. The tasks run on the stepping thread and one helper (opts.threads), with the BLAS
 * thread count set to 1 meanwhile (OpenBLAS on two threads is slower than one on these
 * LAPACK-bound sizes, and one BLAS thread per task makes each result independent of which
 * thread ran it: bit-identical runs). Tasks write disjoint fields; the first failure in task
 * order is reported. Cancel is polled between tasks, between OBS steps and nuclear-norm points,
 * so the longest uninterrupted piece at smollm-135m shapes is one LAPACK call of ~0.13 s (the
 * FFN covariance's eigenvalues, the OBS inverse).
 *
 * Cost per block at smollm-135m shapes (CPU ms of one thread, measured on a shared machine):
 * neurons' OBS 350, heads (two OBS, CKA, nuclear norms) 140, neurons' nuclear norms 133, FFN
 * covariance eigenvalues 125, the seven weight spectra 255, three other spectra 27; with two
 * threads ~0.55 s of wall per block on an idle machine.
 *
 * Publication. Results of block ℓ are written before steps_done is stored with release order;
 * readers load it with acquire order and only touch blocks below it, so they never see a
 * half-written block. The phase is two atomics (kind, block) formatted by the reader.
 *
 * Numerics. Statistics are double (accumulated from float ssyrk per chunk, so float-accurate);
 * covariance spectra run in float LAPACK; plain weight spectra from double Grams, aware ones in
 * float (see analysis.h for the accuracies); the OBS runs in double because exactly redundant
 * components make the ridge-regularised covariance singular up to the ridge.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analysis.h"
#include "analysis_internal.h"
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

/* G_c = W_cᵀ W_c (s, s) for the columns idx of w (d, ·, ldw), in double: the columns are
 * gathered into buf (d, s) and multiplied by one dsyrk. */
static cce_status gram_of_columns(const float *w, int d, int ldw, const int *idx, int s, double *g, double *buf,
                                  cce_err *err) {
    for (int k = 0; k < d; k++)
        for (int p = 0; p < s; p++) buf[(size_t)k * s + p] = w[(size_t)k * ldw + idx[p]];
    cce_matd B = {buf, d, s, s}, G = {g, s, s, s};
    cce_status st = cce_linalg_syrk_d(1, 1.0, &B, 0.0, &G, err);
    if (!st) cce_linalg_symmetrize_d(g, s);
    return st;
}

/* <G_a C_ab, C_ab G_b>_F with C_ab = cov[idx_a, idx_b]; scratch c, x, y (sa, sb). */
static cce_status contrib_cross(const double *cov, int n, const int *ia, int sa, const int *ib, int sb,
                                const double *ga, const double *gb, double *c, double *x, double *y, double *out,
                                cce_err *err) {
    for (int p = 0; p < sa; p++)
        for (int q = 0; q < sb; q++) c[p * sb + q] = cov[(size_t)ia[p] * n + ib[q]];
    cce_matd Ga = {(double *)ga, sa, sa, sa}, Gb = {(double *)gb, sb, sb, sb}, C = {c, sa, sb, sb};
    cce_matd X = {x, sa, sb, sb}, Y = {y, sa, sb, sb};
    cce_status st = cce_linalg_gemm_d(0, 0, 1.0, &Ga, &C, 0.0, &X, err);   // G_a C_ab
    if (!st) st = cce_linalg_gemm_d(0, 0, 1.0, &C, &Gb, 0.0, &Y, err);    // C_ab G_b
    if (st) return st;
    double s = 0;
    for (size_t i = 0; i < (size_t)sa * sb; i++) s += x[i] * y[i];
    *out = s;
    return CCE_OK;
}

cce_status cce_cka_from_cov(const double *cov, int n, const cce_components *comps, const float *w,
                            int d, int ldw, float *out, cce_err *err) {
    cce_status st = comps_check(comps, n, "head cka", err);
    if (st) return st;
    int nc = comps->n_comp, smax = 1;
    for (int k = 0; k < nc; k++)
        if (comps->off[k + 1] - comps->off[k] > smax) smax = comps->off[k + 1] - comps->off[k];
    size_t ss = (size_t)smax * smax;
    double **g = cce_alloc_zero((size_t)nc ? (size_t)nc : 1, sizeof(double *));
    double *c = cce_alloc(ss, sizeof(double)), *x = cce_alloc(ss, sizeof(double)), *y = cce_alloc(ss, sizeof(double));
    double *buf = cce_alloc((size_t)(d > 0 ? d : 1), (size_t)smax * sizeof(double));   // (d, smax)
    double *self = cce_alloc((size_t)nc ? (size_t)nc : 1, sizeof(double));           // (nc)
    st = CCE_ENOMEM;
    if (!g || !c || !x || !y || !buf || !self) goto nomem;
    for (int k = 0; k < nc; k++) {
        int s = comps->off[k + 1] - comps->off[k];
        if (!(g[k] = cce_alloc((size_t)s, (size_t)s * sizeof(double)))) goto nomem;
        if ((st = gram_of_columns(w, d, ldw, comps->idx + comps->off[k], s, g[k], buf, err))) goto cleanup;
    }
    for (int a = 0; a < nc; a++) {
        int sa = comps->off[a + 1] - comps->off[a];
        const int *ia = comps->idx + comps->off[a];
        if ((st = contrib_cross(cov, n, ia, sa, ia, sa, g[a], g[a], c, x, y, &self[a], err))) goto cleanup;
    }
    for (int a = 0; a < nc; a++) {
        int sa = comps->off[a + 1] - comps->off[a];
        const int *ia = comps->idx + comps->off[a];
        for (int b = a; b < nc; b++) {
            int sb = comps->off[b + 1] - comps->off[b];
            const int *ib = comps->idx + comps->off[b];
            double k = self[a];
            if (a != b && (st = contrib_cross(cov, n, ia, sa, ib, sb, g[a], g[b], c, x, y, &k, err))) goto cleanup;
            double v = (self[a] > 0 && self[b] > 0) ? k / sqrt(self[a] * self[b]) : 0;
            out[a * nc + b] = out[b * nc + a] = (float)v;
        }
    }
    st = CCE_OK;
    goto cleanup;
nomem:
    st = cce_err_set(err, CCE_ENOMEM, "head cka: cannot allocate scratch for %d components of up to %d", nc, smax);
cleanup:
    if (g)
        for (int k = 0; k < nc; k++) cce_free(g[k]);
    cce_free(g);
    cce_free(c);
    cce_free(x);
    cce_free(y);
    cce_free(buf);
    cce_free(self);
    return st;
}

/* Contribution energy tr(W_c C_cc W_cᵀ) of each component, for the scores: single columns
 * C_ii ‖w_i‖²; blocks through one GEMM T = W_c C_cc (d, s) and <T, W_c>. */
static cce_status contribution_energy(const double *cov, int n, const cce_components *comps, const float *w, int d,
                                      int ldw, double *var, cce_err *err) {
    int smax = 1;
    for (int c = 0; c < comps->n_comp; c++)
        if (comps->off[c + 1] - comps->off[c] > smax) smax = comps->off[c + 1] - comps->off[c];
    double *wc = NULL, *cc = NULL, *t = NULL;
    if (smax > 1) {
        wc = cce_alloc((size_t)(d > 0 ? d : 1), (size_t)smax * sizeof(double));   // (d, s)
        cc = cce_alloc((size_t)smax, (size_t)smax * sizeof(double));              // (s, s)
        t = cce_alloc((size_t)(d > 0 ? d : 1), (size_t)smax * sizeof(double));    // (d, s)
        if (!wc || !cc || !t) {
            cce_free(wc); cce_free(cc); cce_free(t);
            return cce_err_set(err, CCE_ENOMEM, "redundancy: cannot allocate (%d, %d) scratch", d, smax);
        }
    }
    cce_status st = CCE_OK;
    for (int c = 0; c < comps->n_comp && !st; c++) {
        const int *ic = comps->idx + comps->off[c];
        int s = comps->off[c + 1] - comps->off[c];
        double v = 0;
        if (s == 1) {
            for (int r = 0; r < d; r++) v += (double)w[(size_t)r * ldw + ic[0]] * w[(size_t)r * ldw + ic[0]];
            v *= cov[(size_t)ic[0] * n + ic[0]];
        } else {
            for (int r = 0; r < d; r++)
                for (int x = 0; x < s; x++) wc[(size_t)r * s + x] = w[(size_t)r * ldw + ic[x]];
            for (int x = 0; x < s; x++)
                for (int y = 0; y < s; y++) cc[x * s + y] = cov[(size_t)ic[x] * n + ic[y]];
            cce_matd W = {wc, d, s, s}, C = {cc, s, s, s}, T = {t, d, s, s};
            st = cce_linalg_gemm_d(0, 0, 1.0, &W, &C, 0.0, &T, err);
            for (size_t i = 0; i < (size_t)d * s; i++) v += t[i] * wc[i];
        }
        var[c] = v;
    }
    cce_free(wc);
    cce_free(cc);
    cce_free(t);
    return st;
}

cce_status cce_redundancy(const double *cov, int n, const cce_components *comps, const float *w,
                          int d, int ldw, double ridge, float *score, float *cost, int *order,
                          cce_err *err) {
    cce_status st = comps_check(comps, n, "redundancy", err);
    if (st) return st;
    int nc = comps->n_comp;
    if (nc == 0) return CCE_OK;
    int *ord = cce_alloc((size_t)nc, sizeof(int));
    double *curve = cce_alloc((size_t)nc + 1, sizeof(double)), *loo = cce_alloc((size_t)nc, sizeof(double));
    double *var = cce_alloc((size_t)nc, sizeof(double));
    if (!ord || !curve || !loo || !var) {
        st = cce_err_set(err, CCE_ENOMEM, "redundancy: cannot allocate for %d components", nc);
        goto cleanup;
    }
    if ((st = cce_select_obs_loo(cov, n, comps, w, d, ldw, ridge, 0, ord, curve, loo, NULL, NULL, err))) goto cleanup;
    if ((st = contribution_energy(cov, n, comps, w, d, ldw, var, err))) goto cleanup;
    for (int c = 0; c < nc; c++) {
        double res = loo[c] < var[c] ? loo[c] : var[c];
        if (cost) cost[c] = (float)res;
        if (score) score[c] = var[c] > 0 ? (float)(1.0 - res / var[c]) : 1.0f;
        if (order) order[c] = ord[c];
    }
cleanup:
    cce_free(ord);
    cce_free(curve);
    cce_free(loo);
    cce_free(var);
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
    size_t loaded_stream;       // a job read from a file (no calib): its calibration facts
    int loaded_n_seq, loaded_seq_len;
    /* statistics of the block being computed */
    cce_moments mom[CCE_COV_COUNT];
    cce_hist hist[CCE_TAP_COUNT];
    double t_tap;
    cce_status tap_status;
    cce_err tap_err;
    double drop_sq[3], *drop_sum;   // Σ‖v‖² and Σv (3, dim) of attention output, FFN output, block update
    double out_sq;                  // Σ‖h_out‖²
    long drop_rows[3], out_rows;
    float *attn_chunk;              // (chunk rows, dim) the current chunk's attention output
    int attn_chunk_rows;
    cce_block_stats_fn hook;
    void *hook_user;
    /* state */
    cce_status failed;
    char fail_msg[sizeof(((cce_err *)0)->msg)];
    atomic_int steps_done;      // 0: nothing; 1: calibration ready; ℓ+2: block ℓ done
    char calib_path[4096];      // calibration identity recorded with the job ("" when unknown)
    char calib_sha256[65];
    atomic_int phase, phase_block, cancel;
};

static const cce_tap_site cov_tap[CCE_COV_COUNT] = {CCE_TAP_ATTN_IN, CCE_TAP_HEADS, CCE_TAP_FFN_IN,
                                                    CCE_TAP_FFN_ACT};

/* Upper bound of the bytes an analysis with these (validated) options holds at its peak: the
 * calibration hidden states and their copy, the forward scratch of one chunk (2048 rows), one
 * block's statistics, the OBS workspace of the widest site with one weight spectrum beside it (the
 * two task threads), the token subsample of every block's update, and the text. */
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
    bytes += (2 * d * d + q * q + hid * hid) * 36;   /* per site: moments (double + float scratch), covariance,
                                                      second moment, the float eigenproblem */
    bytes += wide * wide * 8 * 3 + wide * 8 * 160;    /* OBS: P, G and H̃ rows; factors Z, V (R <= 2 s_max + 64) */
    bytes += (hid * d + d * d) * 8 * 3;               /* a weight spectrum (W in double, Grams) on the other thread */
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
    cce_free(r->group_order);
    cce_free(r->group_cost);
    for (int k = 0; k < CCE_CURVE_COUNT; k++) cce_curve_free(&r->curves[k]);
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
    cce_free(j->drop_sum);
    cce_free(j->attn_chunk);
    cce_free(j->text);
    cce_free(j->stream);
    cce_calib_free(j->calib);
    cce_free(j);
}

int cce_analysis_n_layers(const cce_analysis *job) { return job->L; }

void cce_analysis_set_calib_identity(cce_analysis *job, const char *path, const char *sha256) {
    snprintf(job->calib_path, sizeof job->calib_path, "%s", path ? path : "");
    snprintf(job->calib_sha256, sizeof job->calib_sha256, "%s", sha256 ? sha256 : "");
}
const char *cce_analysis_calib_path(const cce_analysis *job) { return job->calib_path; }
const char *cce_analysis_calib_sha256(const cce_analysis *job) { return job->calib_sha256; }
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
    if (ready && !job->calib) {   // read from a file
        if (stream_tokens) *stream_tokens = job->loaded_stream;
        if (n_seq) *n_seq = job->loaded_n_seq;
        if (seq_len) *seq_len = job->loaded_seq_len;
        return;
    }
    if (stream_tokens) *stream_tokens = ready ? job->n_stream : 0;
    if (n_seq) *n_seq = ready ? job->calib->n_seq : 0;
    if (seq_len) *seq_len = ready ? job->calib->seq_len : 0;
}

cce_status cce_analysis_new_loaded(const cce_model *m, const cce_analysis_opts *opts, size_t stream_tokens,
                                   int n_seq, int seq_len, cce_analysis **out, cce_err *err) {
    *out = NULL;
    cce_analysis *j = cce_alloc_zero(1, sizeof *j);
    if (!j) return cce_err_set(err, CCE_ENOMEM, "analysis: cannot allocate the job");
    j->m = m;
    j->opts = *opts;
    j->L = m->cfg.n_layers;
    int L = j->L > 0 ? j->L : 1;
    j->res = cce_alloc_zero((size_t)L, sizeof *j->res);
    j->layer_cka = cce_alloc_zero((size_t)L, (size_t)L * sizeof(float));
    j->delta_self = cce_alloc_zero((size_t)L, sizeof(double));
    if (!j->res || !j->layer_cka || !j->delta_self) {
        cce_analysis_free(j);
        return cce_err_set(err, CCE_ENOMEM, "analysis: cannot allocate job state for %d layers", L);
    }
    j->loaded_stream = stream_tokens;
    j->loaded_n_seq = n_seq;
    j->loaded_seq_len = seq_len;
    *out = j;
    return CCE_OK;
}

cce_block_result *cce_analysis_result_slot(cce_analysis *job, int l) { return l >= 0 && l < job->L ? &job->res[l] : NULL; }
float *cce_analysis_layer_cka_slot(cce_analysis *job) { return job->layer_cka; }
void cce_analysis_mark_finished(cce_analysis *job) {
    atomic_store(&job->phase, PH_DONE);
    atomic_store_explicit(&job->steps_done, job->L + 1, memory_order_release);
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
    j->drop_sum = cce_alloc_zero(3, (size_t)d * sizeof(double));
    j->attn_chunk_rows = j->calib->chunk_seqs * j->calib->seq_len;
    j->attn_chunk = cce_alloc((size_t)j->attn_chunk_rows, (size_t)d * sizeof(float));
    if (!j->sub_rows || !j->h_prev || !j->cross || !j->delta || !j->drop_sum || !j->attn_chunk)
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

static void vec_acc(const float *v, int d, double *sum, double *sq) {
    double q = 0;
    for (int k = 0; k < d; k++) {
        sum[k] += v[k];
        q += (double)v[k] * v[k];
    }
    *sq += q;
}

/* What dropping a sublayer changes, per token: the attention output (ATTN_OUT), the FFN output
 * (BLOCK_OUT − block input − attention output of the same rows) and the block update; and the
 * block output energy. The chunk's rows start at calib->chunk_row0. */
static cce_status drop_tap(cce_analysis *j, const cce_tap *t) {
    int d = j->calib->dim;
    if (t->cols != d || t->rows > j->attn_chunk_rows)
        return cce_err_set(&j->tap_err, CCE_EINVAL, "analysis: block %d site %s has (%d, %d), expected at most (%d, %d)",
                           t->layer, cce_tap_site_name(t->site), t->rows, t->cols, j->attn_chunk_rows, d);
    const cce_layer *ly = &j->m->layers[t->layer];
    if (t->site == CCE_TAP_ATTN_OUT) {
        for (int r = 0; r < t->rows; r++) {
            const float *o = t->x + (size_t)r * t->ld;
            memcpy(j->attn_chunk + (size_t)r * d, o, (size_t)d * sizeof(float));
            vec_acc(o, d, j->drop_sum, &j->drop_sq[0]);
        }
        j->drop_rows[0] += t->rows;
        return CCE_OK;
    }
    int has_attn = !ly->dropped && ly->n_heads > 0, has_ffn = !ly->dropped && ly->hidden > 0;
    float *u = j->cross;   // scratch (≥ dim floats)
    for (int r = 0; r < t->rows; r++) {
        const float *ho = t->x + (size_t)r * t->ld, *hi = j->h_prev + (size_t)(j->calib->chunk_row0 + r) * d;
        double q = 0;
        for (int k = 0; k < d; k++) {
            u[k] = ho[k] - hi[k];
            q += (double)ho[k] * ho[k];
        }
        j->out_sq += q;
        if (ly->dropped) continue;
        vec_acc(u, d, j->drop_sum + 2 * (size_t)d, &j->drop_sq[2]);
        if (has_ffn) {
            if (has_attn)
                for (int k = 0; k < d; k++) u[k] -= j->attn_chunk[(size_t)r * d + k];
            vec_acc(u, d, j->drop_sum + (size_t)d, &j->drop_sq[1]);
        }
    }
    j->out_rows += t->rows;
    if (!ly->dropped) {
        j->drop_rows[2] += t->rows;
        if (has_ffn) j->drop_rows[1] += t->rows;
    }
    return CCE_OK;
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
    if (!st && (t->site == CCE_TAP_ATTN_OUT || t->site == CCE_TAP_BLOCK_OUT)) st = drop_tap(j, t);
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

/* Eigenvalues (descending) of the symmetric double a (n, n) (destroyed) as σ = sqrt(max(λ, 0))
 * into sv (n) floats; λ into lam (n) when not NULL. */
static cce_status gram_sqrt_values(double *a, int n, double *lam, float *sv, cce_err *err) {
    cce_matd A = {a, n, n, n};
    cce_status st = cce_linalg_eigh_d(&A, lam, 0, err);
    if (st) return st;
    for (int i = 0; i < n; i++) sv[i] = (float)sqrt(lam[i] > 0 ? lam[i] : 0);
    return CCE_OK;
}

/* Plain and activation-aware spectra of one weight matrix (w (out, in) f32) from the smaller
 * Gram matrix: σ(W)² = eig(W Wᵀ) or eig(WᵀW) in double; σ(W L)² = eig(W M Wᵀ) (out <= in, float
 * products) or eig(Lᵀ WᵀW L) with L Lᵀ = M (out > in, double Cholesky with jitter), M (in, in) the
 * uncentred second moment of the input, float eigenvalues: M is accumulated by float ssyrk per
 * chunk (~1e-6 relative), so the aware spectrum is float-accurate whatever the arithmetic after
 * it. Also the rank curve of the matrix (see select.h / analysis.h). */
static cce_status weight_spectrum(const cce_linear *lin, const float *w, const char *name, const double *m2,
                                  float tau, cce_weight_spectrum *ws, cce_curve *cv, cce_err *err) {
    memset(ws, 0, sizeof *ws);
    snprintf(ws->name, sizeof ws->name, "%s", name);
    int out = lin->out, in = lin->in, n = out < in ? out : in;
    ws->rows = out;
    ws->cols = in;
    ws->n = n;
    double *wd = NULL, *g = NULL, *a = NULL, *lam = NULL, *l = NULL;
    cce_status st = CCE_ENOMEM;
    ws->sv = cce_alloc((size_t)n, sizeof(float));
    ws->sv_aw = cce_alloc((size_t)n, sizeof(float));
    wd = cce_alloc((size_t)out, (size_t)in * sizeof(double));   // (out, in) W in double
    g = cce_alloc((size_t)n, (size_t)n * sizeof(double));       // (n, n) plain Gram
    a = cce_alloc((size_t)n, (size_t)in * sizeof(double));      // (n, in) scratch, then (n, n) aware Gram
    lam = cce_alloc((size_t)n, sizeof(double));
    if (out > in) l = cce_alloc((size_t)in, (size_t)in * sizeof(double));   // (in, in) Cholesky of M
    if (!ws->sv || !ws->sv_aw || !wd || !g || !a || !lam || (out > in && !l)) {
        cce_err_set(err, st, "analysis: cannot allocate the spectrum of %s (%d, %d)", name, out, in);
        goto cleanup;
    }
    double fro = 0;
    for (size_t i = 0; i < (size_t)out * in; i++) {
        wd[i] = w[i];
        fro += wd[i] * wd[i];
    }
    cce_matd W = {wd, out, in, in}, Gm = {g, n, n, n}, Am = {a, n, n, n};
    if ((st = cce_linalg_syrk_d(out > in, 1.0, &W, 0.0, &Gm, err))) goto cleanup;
    cce_linalg_symmetrize_d(g, n);
    if (out <= in) {   // aware Gram W M Wᵀ (out, out): T = W M (out, in), then T Wᵀ, in float: M
                       // itself is only float-accurate (accumulated by float ssyrk per chunk)
        float *mf = cce_alloc((size_t)in, (size_t)in * sizeof(float)), *tf = cce_alloc((size_t)out, (size_t)in * sizeof(float));
        float *af = cce_alloc((size_t)out, (size_t)out * sizeof(float));
        if (!mf || !tf || !af) {
            cce_free(mf); cce_free(tf); cce_free(af);
            st = cce_err_set(err, CCE_ENOMEM, "analysis: %s: cannot allocate (%d, %d)", name, in, in);
            goto cleanup;
        }
        for (size_t i = 0; i < (size_t)in * in; i++) mf[i] = (float)m2[i];
        cce_mat Wf = {(float *)w, out, in, in}, Mf = {mf, in, in, in}, Tf = {tf, out, in, in}, Af = {af, out, out, out};
        st = cce_linalg_gemm(0, 0, 1.0f, &Wf, &Mf, 0.0f, &Tf, err);
        if (!st) st = cce_linalg_gemm(0, 1, 1.0f, &Tf, &Wf, 0.0f, &Af, err);
        for (size_t i = 0; !st && i < (size_t)out * out; i++) a[i] = af[i];
        cce_free(mf); cce_free(tf); cce_free(af);
        if (st) goto cleanup;
    } else {           // aware Gram Lᵀ (WᵀW) L (in, in)
        double md = 0;
        for (int i = 0; i < in; i++) md += m2[(size_t)i * in + i];
        md = md > 0 ? md / in : 1e-12;
        cce_matd Lm = {l, in, in, in};
        float used = 0;
        for (int attempt = 0; attempt <= 6; attempt++) {
            memcpy(l, m2, (size_t)in * in * sizeof(double));
            if (attempt > 0) {
                used = (float)(md * 1e-9 * pow(10.0, attempt - 1));
                for (int i = 0; i < in; i++) l[(size_t)i * in + i] += used;
            }
            st = cce_linalg_cholesky_d(&Lm, err);
            if (st != CCE_EFORMAT) break;
        }
        if (st) goto cleanup;
        ws->jitter = used;
        memcpy(a, g, (size_t)in * in * sizeof(double));
        if ((st = cce_linalg_trmm_d(1, 1, 0, &Lm, &Am, err))) goto cleanup;   // G L
        if ((st = cce_linalg_trmm_d(0, 1, 1, &Lm, &Am, err))) goto cleanup;   // Lᵀ G L
    }
    if ((st = gram_sqrt_values(g, n, lam, ws->sv, err))) goto cleanup;
    double nuc_all = 0;
    for (int i = 0; i < n; i++) nuc_all += ws->sv[i];
    ws->frobenius = sqrt(fro);
    ws->spectral_norm = ws->sv[0];
    ws->stable_rank = ws->spectral_norm > 0 ? fro / ((double)ws->spectral_norm * ws->spectral_norm) : 0;
    ws->below_tau = cce_spectrum_count_below(ws->sv, n, tau);
    {   // the aware Gram is float-accurate (float statistics, float products): float eigenvalues
        float *af = cce_alloc((size_t)n, (size_t)n * sizeof(float)), *lf = cce_alloc((size_t)n, sizeof(float));
        if (!af || !lf) {
            cce_free(af);
            cce_free(lf);
            st = cce_err_set(err, CCE_ENOMEM, "analysis: %s: cannot allocate (%d, %d)", name, n, n);
            goto cleanup;
        }
        for (size_t i = 0; i < (size_t)n * n; i++) af[i] = (float)a[i];
        cce_mat Af = {af, n, n, n};
        st = cce_linalg_eigh(&Af, lf, 0, err);
        for (int i = 0; !st && i < n; i++) {
            lam[i] = lf[i];
            ws->sv_aw[i] = sqrtf(lf[i] > 0 ? lf[i] : 0);
        }
        cce_free(af);
        cce_free(lf);
        if (st) goto cleanup;
    }
    ws->aw_below_tau = cce_spectrum_count_below(ws->sv_aw, n, tau);
    /* rank curve: ranks r0, r0−1, ..., 1 with r0 the largest rank whose factors U (out, r),
     * V (r, in) hold fewer parameters than the matrix; cost = Σ_{i>=r} σ_aw,i² (λ, unrounded) */
    int64_t wpar = lin->rank > 0 ? (int64_t)lin->rank * (out + in) : (int64_t)out * in;
    int r0 = (int)((wpar - 1) / (out + in));
    if (r0 > n) r0 = n;
    if (r0 < 0) r0 = 0;
    if ((st = cce_curve_alloc(cv, r0, 1, err))) goto cleanup;
    double tail = 0, head = 0;
    for (int i = n - 1; i >= r0; i--) tail += lam[i] > 0 ? lam[i] : 0;
    for (int i = 0; i < r0; i++) head += ws->sv[i];
    cv->nuc[0] = nuc_all;
    for (int k = 1; k <= r0; k++) {
        int rank = r0 - k + 1;
        if (k > 1) {   // index `rank` is dropped now
            tail += lam[rank] > 0 ? lam[rank] : 0;
            head -= ws->sv[rank];
        }
        cv->order[k - 1] = rank;
        cv->cost[k] = tail;
        cv->nuc[k] = head > 0 ? head : 0;
        cv->params[k] = wpar - (int64_t)rank * (out + in);
    }
    st = CCE_OK;
cleanup:
    if (st) cce_err_prefix(err, st, name);
    cce_free(wd);
    cce_free(g);
    cce_free(a);
    cce_free(lam);
    cce_free(l);
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

/* ------------------------------------------------------------------ post-forward tasks */

/* A += alpha W_C W_Cᵀ (d, d, upper triangle) over the columns cols[0..cnt) of w (d, ·, ldw),
 * 256 columns at a time through buf (d, 256). */
static cce_status gram_add_columns(const float *w, int d, int ldw, const int *cols, int cnt, double alpha,
                                   double *A, double *buf, cce_err *err) {
    enum { CH = 256 };
    cce_matd Am = {A, d, d, d};
    for (int c0 = 0; c0 < cnt; c0 += CH) {
        int k = cnt - c0 < CH ? cnt - c0 : CH;
        for (int r = 0; r < d; r++)
            for (int q = 0; q < k; q++) buf[(size_t)r * k + q] = w[(size_t)r * ldw + cols[c0 + q]];
        cce_matd B = {buf, d, k, k};
        cce_status st = cce_linalg_syrk_d(0, alpha, &B, 1.0, &Am, err);
        if (st) return st;
    }
    return CCE_OK;
}

/* Nuclear norm of W restricted to the columns that remain after each prefix of order: exact at
 * every k when n_comp <= 16 (heads), else at 9 evenly spaced k (neurons), linear between them. The
 * (d, d) Gram of the remaining columns is kept by downdates; once at most d columns remain, their
 * own (m, m) Gram is used instead (the smaller eigenproblem). nuc (n_comp + 1). */
static cce_status nuc_curve(const float *w, int d, int ldw, const cce_components *comps, const int *order,
                            double *nuc, cce_analysis *j, cce_err *err) {
    int nc = comps->n_comp, nn = comps->off[nc];
    int npts = nc + 1 <= 17 ? nc + 1 : 9;
    double *A = cce_alloc_zero((size_t)d, (size_t)d * sizeof(double));   // (d, d)
    double *S = cce_alloc((size_t)d, (size_t)d * sizeof(double));        // (d, d) Gram scratch
    float *Sf = cce_alloc((size_t)d, (size_t)d * sizeof(float));         // (d, d) its float copy
    float *lamf = cce_alloc((size_t)d + 1, sizeof(float));
    double *buf = cce_alloc((size_t)d, (size_t)(nn > d ? nn : d) * sizeof(double) + 256 * sizeof(double));
    double *lam = cce_alloc((size_t)d + 1, sizeof(double));
    int *cols = cce_alloc((size_t)nn + 1, sizeof(int));
    unsigned char *gone = cce_alloc_zero((size_t)nc + 1, 1);
    int *pts = cce_alloc((size_t)npts, sizeof(int));
    cce_status st = CCE_OK;
    if (!A || !S || !Sf || !lamf || !buf || !lam || !cols || !gone || !pts) {
        st = cce_err_set(err, CCE_ENOMEM, "analysis: cannot allocate the nuclear-norm curve (%d, %d)", d, nn);
        goto cleanup;
    }
    for (int i = 0; i < nn; i++) cols[i] = comps->idx[i];
    if ((st = gram_add_columns(w, d, ldw, cols, nn, 1.0, A, buf, err))) goto cleanup;
    for (int t = 0; t < npts; t++) pts[t] = (int)((long)t * nc / (npts - 1));
    int done = 0, prev = 0;
    for (int t = 0; t < npts; t++) {
        if (atomic_load(&j->cancel)) { st = cce_err_set(err, CCE_ECANCEL, "analysis: cancelled"); goto cleanup; }
        int k = pts[t], m = 0;
        for (; done < k; done++) {   // downdate by the components removed since the last point
            int c = order[done], cnt = comps->off[c + 1] - comps->off[c];
            gone[c] = 1;
            if ((st = gram_add_columns(w, d, ldw, comps->idx + comps->off[c], cnt, -1.0, A, buf, err))) goto cleanup;
        }
        for (int c = 0; c < nc; c++)
            if (!gone[c])
                for (int q = comps->off[c]; q < comps->off[c + 1]; q++) cols[m++] = comps->idx[q];
        double v = 0;
        if (m > 0) {
            int n = m < d ? m : d;
            if (m < d) {   // (m, m) Gram of the remaining columns
                for (int r = 0; r < d; r++)
                    for (int q = 0; q < m; q++) buf[(size_t)r * m + q] = w[(size_t)r * ldw + cols[q]];
                cce_matd B = {buf, d, m, m}, Sm = {S, m, m, m};
                if ((st = cce_linalg_syrk_d(1, 1.0, &B, 0.0, &Sm, err))) goto cleanup;
            } else {
                memcpy(S, A, (size_t)d * d * sizeof(double));
            }
            // float eigenvalues: each σ = sqrt(λ) carries at most ~sqrt(6e-8)·σ_max absolute error,
            // well inside "approximately" for a sum of hundreds of them
            for (int q = 0; q < n; q++)
                for (int i = 0; i < n; i++) Sf[(size_t)q * n + i] = (float)(i >= q ? S[(size_t)q * n + i] : S[(size_t)i * n + q]);
            cce_mat Sm = {Sf, n, n, n};
            if ((st = cce_linalg_eigh(&Sm, lamf, 0, err))) goto cleanup;
            for (int i = 0; i < n; i++) v += sqrt(lamf[i] > 0 ? (double)lamf[i] : 0);
        }
        nuc[k] = v;
        if (t > 0)   // linear between the exact points
            for (int q = prev + 1; q < k; q++) nuc[q] = nuc[prev] + (nuc[k] - nuc[prev]) * (q - prev) / (k - prev);
        prev = k;
    }
cleanup:
    cce_free(A);
    cce_free(S);
    cce_free(Sf);
    cce_free(lamf);
    cce_free(buf);
    cce_free(lam);
    cce_free(cols);
    cce_free(gone);
    cce_free(pts);
    return st;
}

/* Mean pairwise similarity among the components that remain after each prefix: sim (n + 1),
 * from a symmetric (n, n) similarity read through get (|correlation| or head CKA). O(n²). */
static void sim_curve(int n, const int *order, double (*get)(const void *, int, int), const void *ctx, double *sim) {
    unsigned char *gone = cce_alloc_zero((size_t)n + 1, 1);
    if (!gone) return;
    double total = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) total += get(ctx, a, b);
    for (int k = 0; k <= n; k++) {
        long rem = n - k;
        sim[k] = rem >= 2 ? total / ((double)rem * (rem - 1) / 2) : 0;
        if (k == n) break;
        int c = order[k];
        gone[c] = 1;
        for (int b = 0; b < n; b++)
            if (!gone[b]) total -= get(ctx, c, b);
        if (total < 0) total = 0;
    }
    cce_free(gone);
}

typedef struct { const double *cov; int n; } corr_ctx;
static double abs_corr(const void *p, int a, int b) {
    const corr_ctx *c = p;
    double va = c->cov[(size_t)a * c->n + a], vb = c->cov[(size_t)b * c->n + b];
    return va > 0 && vb > 0 ? fabs(c->cov[(size_t)a * c->n + b]) / sqrt(va * vb) : 0;
}
typedef struct { const float *m; int n; } cka_ctx;
static double cka_get(const void *p, int a, int b) {
    const cka_ctx *c = p;
    return c->m[(size_t)a * c->n + b];
}

typedef struct block_ctx block_ctx;
struct block_ctx {
    cce_analysis *j;
    int l;
    cce_block_result *r;
    const cce_layer *ly;
    int dims[CCE_COV_COUNT];
    double *cov[CCE_COV_COUNT], *mean[CCE_COV_COUNT], *m2[CCE_COV_COUNT];
    const float *w[CCE_LIN_COUNT];
    float *owned[CCE_LIN_COUNT];
    int n_tasks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int neurons_done;   // 0 running, 1 order ready, -1 failed (under mu)
    struct { int kind, arg, taken; double secs, blas; cce_status st; cce_err err; } task[16];
    int sync_ready;   // mu / cv initialised
};

enum { TK_NEURONS, TK_HEADS, TK_EIGEN, TK_SPECTRUM, TK_NEURON_NUC };
static const int lin_site[CCE_LIN_COUNT] = {CCE_COV_ATTN_IN, CCE_COV_ATTN_IN, CCE_COV_ATTN_IN, CCE_COV_HEADS,
                                             CCE_COV_FFN_IN, CCE_COV_FFN_IN, CCE_COV_FFN_ACT};

static int obs_cancel(void *user) { return atomic_load(&((cce_analysis *)user)->cancel); }

static int64_t lin_row_params(const cce_linear *l) {   // parameters of one output row (with its bias)
    return l->out > 0 ? (l->rank > 0 ? l->rank : l->in) + (l->b ? 1 : 0) : 0;
}
static int64_t lin_col_params(const cce_linear *l) {   // parameters of one input column
    return l->out > 0 ? (l->rank > 0 ? l->rank : l->out) : 0;
}

/* FFN neurons: OBS on W₂ over the centred FFN-activation covariance; scores; the curve. */
static cce_status task_neurons(block_ctx *b, cce_err *err) {
    cce_analysis *j = b->j;
    cce_block_result *r = b->r;
    const cce_layer *ly = b->ly;
    int m = ly->hidden, d = r->dim;
    const double *cov = b->cov[CCE_COV_FFN_ACT];
    int *off = cce_alloc((size_t)m + 1, sizeof(int)), *idx = cce_alloc((size_t)m, sizeof(int));
    double *loo = cce_alloc((size_t)m, sizeof(double)), *var = cce_alloc((size_t)m, sizeof(double));
    r->neuron_score = cce_alloc((size_t)m, sizeof(float));
    r->neuron_cost = cce_alloc((size_t)m, sizeof(float));
    r->neuron_order = cce_alloc((size_t)m, sizeof(int));
    cce_curve *cv = &r->curves[CCE_CURVE_NEURONS];
    cce_status st = cce_curve_alloc(cv, m, 1, err);
    if (!st && (!off || !idx || !loo || !var || !r->neuron_score || !r->neuron_cost || !r->neuron_order))
        st = cce_err_set(err, CCE_ENOMEM, "analysis: block %d: cannot allocate the neuron selection (%d)", b->l, m);
    if (st) goto cleanup;
    for (int i = 0; i <= m; i++) off[i] = i;
    for (int i = 0; i < m; i++) idx[i] = i;
    cce_components comps = {m, off, idx};
    const float *w2 = b->w[CCE_LIN_W2];
    st = cce_select_obs_loo(cov, m, &comps, w2, d, m, j->opts.ridge, 0, cv->order, cv->cost, loo, obs_cancel, j, err);
    if (st) goto cleanup;
    if ((st = contribution_energy(cov, m, &comps, w2, d, m, var, err))) goto cleanup;
    for (int i = 0; i < m; i++) {
        double res = loo[i] < var[i] ? loo[i] : var[i];
        r->neuron_cost[i] = (float)res;
        r->neuron_score[i] = var[i] > 0 ? (float)(1.0 - res / var[i]) : 1.0f;
        r->neuron_order[i] = cv->order[i];
    }
    int64_t per = lin_row_params(&ly->w1) + lin_row_params(&ly->w3) + lin_col_params(&ly->w2);
    for (int k = 0; k <= m; k++) cv->params[k] = per * k;
    corr_ctx cc = {cov, m};
    sim_curve(m, cv->order, abs_corr, &cc, cv->sim);
cleanup:
    pthread_mutex_lock(&b->mu);   // the nuclear-norm task waits for the order
    b->neurons_done = st ? -1 : 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    cce_free(off);
    cce_free(idx);
    cce_free(loo);
    cce_free(var);
    return st;
}

/* Heads: CKA between heads and KV groups, OBS on W_o over the centred per-head covariance (query
 * heads, then whole KV groups), scores and the heads curve. */
static cce_status task_heads(block_ctx *b, cce_err *err) {
    cce_analysis *j = b->j;
    cce_block_result *r = b->r;
    const cce_layer *ly = b->ly;
    int nh = ly->n_heads, ng = ly->n_kv_heads, hd = r->head_dim, qd = nh * hd, d = r->dim;
    const double *cov = b->cov[CCE_COV_HEADS];
    const float *wo = b->w[CCE_LIN_WO];
    int *off = cce_alloc((size_t)qd + 1, sizeof(int)), *idx = cce_alloc((size_t)qd, sizeof(int));
    int *left = cce_alloc((size_t)ng, sizeof(int));
    double *loo = cce_alloc((size_t)nh, sizeof(double)), *var = cce_alloc((size_t)nh, sizeof(double));
    r->head_cka = cce_alloc((size_t)nh, (size_t)nh * sizeof(float));
    r->group_cka = cce_alloc((size_t)ng, (size_t)ng * sizeof(float));
    r->head_score = cce_alloc((size_t)nh, sizeof(float));
    r->head_cost = cce_alloc((size_t)nh, sizeof(float));
    r->head_order = cce_alloc((size_t)nh, sizeof(int));
    r->group_order = cce_alloc((size_t)ng, sizeof(int));
    r->group_cost = cce_alloc((size_t)ng + 1, sizeof(double));
    cce_curve *cv = &r->curves[CCE_CURVE_HEADS];
    cce_status st = cce_curve_alloc(cv, nh, 1, err);
    if (!st && (!off || !idx || !left || !loo || !var || !r->head_cka || !r->group_cka || !r->head_score ||
                !r->head_cost || !r->head_order || !r->group_order || !r->group_cost))
        st = cce_err_set(err, CCE_ENOMEM, "analysis: block %d: cannot allocate the head selection (%d heads)", b->l, nh);
    if (st) goto cleanup;
    for (int h = 0; h <= nh; h++) off[h] = h * hd;
    for (int i = 0; i < qd; i++) idx[i] = i;
    cce_components heads = {nh, off, idx};
    if ((st = cce_cka_from_cov(cov, qd, &heads, wo, d, qd, r->head_cka, err))) goto cleanup;
    st = cce_select_obs_loo(cov, qd, &heads, wo, d, qd, j->opts.ridge, 0, cv->order, cv->cost, loo, obs_cancel, j, err);
    if (st) goto cleanup;
    if ((st = contribution_energy(cov, qd, &heads, wo, d, qd, var, err))) goto cleanup;
    for (int h = 0; h < nh; h++) {
        double res = loo[h] < var[h] ? loo[h] : var[h];
        r->head_cost[h] = (float)res;
        r->head_score[h] = var[h] > 0 ? (float)(1.0 - res / var[h]) : 1.0f;
        r->head_order[h] = cv->order[h];
    }
    // parameters: a query head's wq rows and wo columns; a KV head's wk and wv rows when the
    // last query head reading it goes
    for (int g = 0; g < ng; g++) left[g] = 0;
    for (int h = 0; h < nh; h++) left[cce_layer_kv_of(ly, h)]++;
    int64_t q_per = hd * (lin_row_params(&ly->wq) + lin_col_params(&ly->wo));
    int64_t kv_per = hd * (lin_row_params(&ly->wk) + lin_row_params(&ly->wv));
    for (int k = 1; k <= nh; k++) {
        int g = cce_layer_kv_of(ly, cv->order[k - 1]);
        cv->params[k] = cv->params[k - 1] + q_per + (--left[g] == 0 ? kv_per : 0);
    }
    cka_ctx kc = {r->head_cka, nh};
    sim_curve(nh, cv->order, cka_get, &kc, cv->sim);
    if ((st = nuc_curve(wo, d, qd, &heads, cv->order, cv->nuc, j, err))) goto cleanup;
    // KV groups: all query heads of a group, in head order
    int p = 0;
    for (int g = 0; g < ng; g++) {
        off[g] = p;
        for (int h = 0; h < nh; h++)
            if (cce_layer_kv_of(ly, h) == g)
                for (int k = 0; k < hd; k++) idx[p++] = h * hd + k;
        if (p == off[g]) {
            st = cce_err_set(err, CCE_EINVAL, "analysis: block %d KV head %d has no query head", b->l, g);
            goto cleanup;
        }
    }
    off[ng] = p;
    cce_components groups = {ng, off, idx};
    if ((st = cce_cka_from_cov(cov, qd, &groups, wo, d, qd, r->group_cka, err))) goto cleanup;
    st = cce_select_obs(cov, qd, &groups, wo, d, qd, j->opts.ridge, 0, r->group_order, r->group_cost, obs_cancel, j, err);
cleanup:
    cce_free(off);
    cce_free(idx);
    cce_free(left);
    cce_free(loo);
    cce_free(var);
    return st;
}

/* The neurons' nuclear-norm curve, once task_neurons has the order (task_pick hands it out only
 * then). */
static cce_status task_neuron_nuc(block_ctx *b, cce_err *err) {
    pthread_mutex_lock(&b->mu);
    int ok = b->neurons_done > 0;
    pthread_mutex_unlock(&b->mu);
    if (!ok) return CCE_OK;   // the neurons task reports its own failure
    int m = b->ly->hidden;
    int *off = cce_alloc((size_t)m + 1, sizeof(int)), *idx = cce_alloc((size_t)m, sizeof(int));
    cce_status st;
    if (!off || !idx) {
        st = cce_err_set(err, CCE_ENOMEM, "analysis: block %d: cannot allocate %d components", b->l, m);
    } else {
        for (int i = 0; i <= m; i++) off[i] = i;
        for (int i = 0; i < m; i++) idx[i] = i;
        cce_components comps = {m, off, idx};
        cce_curve *cv = &b->r->curves[CCE_CURVE_NEURONS];
        st = nuc_curve(b->w[CCE_LIN_W2], b->r->dim, m, &comps, cv->order, cv->nuc, b->j, err);
    }
    cce_free(off);
    cce_free(idx);
    return st;
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

static cce_status task_run(block_ctx *b, int t, cce_err *err) {
    cce_analysis *j = b->j;
    int kind = b->task[t].kind, k = b->task[t].arg;
    switch (kind) {
    case TK_NEURONS: return task_neurons(b, err);
    case TK_HEADS: return task_heads(b, err);
    case TK_NEURON_NUC: return task_neuron_nuc(b, err);
    case TK_EIGEN: return eigen_of(b->cov[k], b->dims[k], j->opts.eps, &b->r->eig[k], err);
    default: {
        const cce_linear *lin = cce_layer_lin_c(b->ly, k);
        return weight_spectrum(lin, b->w[k], cce_lin_names[k], b->m2[lin_site[k]], j->opts.tau, &b->r->weights[k],
                               &b->r->curves[cce_curve_rank_of(k)], err);
    }
    }
}

/* The next task for a worker (under mu): the first one not taken whose input is ready (the
 * neurons' nuclear-norm curve needs the OBS order); waits while only that one is left. -1: none. */
static int task_pick(block_ctx *b) {
    pthread_mutex_lock(&b->mu);
    int pick = -1;
    for (;;) {
        int waiting = 0;
        for (int t = 0; t < b->n_tasks && pick < 0; t++) {
            if (b->task[t].taken) continue;
            if (b->task[t].kind == TK_NEURON_NUC && !b->neurons_done) { waiting = 1; continue; }
            pick = t;
        }
        if (pick >= 0 || !waiting) break;
        pthread_cond_wait(&b->cv, &b->mu);
    }
    if (pick >= 0) b->task[pick].taken = 1;
    pthread_mutex_unlock(&b->mu);
    return pick;
}

/* Worker loop: take tasks until none is left; each records its status, error, wall time and the
 * BLAS/LAPACK time of its own thread. */
static void *task_worker(void *arg) {
    block_ctx *b = arg;
    for (;;) {
        int t = task_pick(b);
        if (t < 0) break;
        if (atomic_load(&b->j->cancel)) {
            b->task[t].st = cce_err_set(&b->task[t].err, CCE_ECANCEL, "analysis: cancelled");
            if (b->task[t].kind == TK_NEURONS) {
                pthread_mutex_lock(&b->mu);
                b->neurons_done = -1;
                pthread_cond_broadcast(&b->cv);
                pthread_mutex_unlock(&b->mu);
            }
            continue;
        }
        double t0 = cce_now(), b0 = cce_linalg_thread_seconds();
        b->task[t].st = task_run(b, t, &b->task[t].err);
        b->task[t].secs = cce_now() - t0;
        b->task[t].blas = cce_linalg_thread_seconds() - b0;
    }
    return NULL;
}

/* Everything after the forward pass of block l: covariances, then the independent pieces (OBS of
 * neurons and heads, four eigen spectra, seven weight spectra) as tasks on two threads with BLAS
 * single-threaded meanwhile (each task's result is the same as on one thread: deterministic), then
 * the drop curves. */
static cce_status block_analyse(cce_analysis *j, int l, cce_block_result *r, cce_err *err) {
    const cce_layer *ly = &j->m->layers[l];
    block_ctx *b = cce_alloc_zero(1, sizeof *b);
    if (!b) return cce_err_set(err, CCE_ENOMEM, "analysis: block %d: cannot allocate its task state", l);
    b->j = j;
    b->l = l;
    b->r = r;
    b->ly = ly;
    int hd = j->m->cfg.head_dim, qd = ly->n_heads * hd, d = r->dim;
    int dims[CCE_COV_COUNT] = {ly->n_heads > 0 ? d : 0, qd, ly->hidden > 0 ? d : 0, ly->hidden};
    cce_status st = CCE_OK;
    double t_post = cce_now();
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        b->dims[s] = dims[s];
        if (!dims[s]) continue;
        b->cov[s] = cce_alloc((size_t)dims[s], (size_t)dims[s] * sizeof(double));
        b->mean[s] = cce_alloc((size_t)dims[s], sizeof(double));
        b->m2[s] = cce_alloc((size_t)dims[s], (size_t)dims[s] * sizeof(double));
        if (!b->cov[s] || !b->mean[s] || !b->m2[s]) {
            st = cce_err_set(err, CCE_ENOMEM, "analysis: block %d: cannot allocate statistics (%d)", l, dims[s]);
            goto cleanup;
        }
        cce_moments_cov(&j->mom[s], b->cov[s]);
        cce_moments_mean(&j->mom[s], b->mean[s]);
        cce_moments_second(&j->mom[s], b->m2[s]);
    }
    if (j->hook) {
        cce_block_stats bs = {.layer = l, .count = j->mom[dims[0] ? 0 : 2].count};
        for (int s = 0; s < CCE_COV_COUNT; s++) {
            bs.dims[s] = dims[s];
            bs.mean[s] = b->mean[s];
            bs.cov[s] = b->cov[s];
        }
        j->hook(j->hook_user, &bs);
    }
    for (int k = 0; k < CCE_LIN_COUNT; k++) {
        const cce_linear *lin = cce_layer_lin_c(ly, k);
        if (!cce_linear_present(lin)) continue;
        if ((st = cce_linear_dense(lin, &b->w[k], &b->owned[k], err))) {
            cce_err_prefix(err, st, "analysis");
            goto cleanup;
        }
    }
    // tasks, longest first so that two threads finish together
    if (ly->hidden > 0) b->task[b->n_tasks++].kind = TK_NEURONS;
    if (ly->hidden > 0) { b->task[b->n_tasks].kind = TK_EIGEN; b->task[b->n_tasks++].arg = CCE_COV_FFN_ACT; }
    if (ly->n_heads > 0) b->task[b->n_tasks++].kind = TK_HEADS;
    static const int spec_order[CCE_LIN_COUNT] = {CCE_LIN_W2, CCE_LIN_W1, CCE_LIN_W3, CCE_LIN_WQ, CCE_LIN_WO,
                                                  CCE_LIN_WK, CCE_LIN_WV};
    for (int q = 0; q < CCE_LIN_COUNT; q++) {
        if (b->w[spec_order[q]]) { b->task[b->n_tasks].kind = TK_SPECTRUM; b->task[b->n_tasks++].arg = spec_order[q]; }
        // the neurons' nuclear norms once the OBS order is there (about when w2's spectrum is done);
        // a worker skips it until then
        if (q == 0 && ly->hidden > 0) b->task[b->n_tasks++].kind = TK_NEURON_NUC;
    }
    int eig_sites[3] = {CCE_COV_ATTN_IN, CCE_COV_HEADS, CCE_COV_FFN_IN};
    for (int q = 0; q < 3; q++)
        if (dims[eig_sites[q]]) { b->task[b->n_tasks].kind = TK_EIGEN; b->task[b->n_tasks++].arg = eig_sites[q]; }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->sync_ready = 1;
    atomic_store(&j->phase, PH_REDUNDANCY);
    int threads = j->opts.threads > 0 ? j->opts.threads : 2;
    pthread_t th;
    int helper = threads >= 2 && b->n_tasks >= 2;
    int prev_blas = helper ? cce_linalg_set_threads(1) : 0;
    if (helper && pthread_create(&th, NULL, task_worker, b) != 0) helper = 0;
    task_worker(b);
    if (helper) pthread_join(th, NULL);
    if (prev_blas > 1) cce_linalg_set_threads(prev_blas);
    for (int t = 0; t < b->n_tasks; t++) {
        double secs = b->task[t].secs;
        r->t_blas += b->task[t].blas;
        if (b->task[t].kind == TK_EIGEN) r->t_eigen += secs;
        else if (b->task[t].kind == TK_SPECTRUM || b->task[t].kind == TK_NEURON_NUC) r->t_svd += secs;
        else r->t_redundancy += secs;
    }
    for (int t = 0; t < b->n_tasks && !st; t++)   // the first failure in task order: deterministic
        if (b->task[t].st) {
            st = b->task[t].st;
            if (err) memcpy(err->msg, b->task[t].err.msg, sizeof err->msg);
        }
    r->n_weights = CCE_LIN_COUNT;   // so that a failure frees whatever was filled
    if (st) goto cleanup;
    // drop curves: what removing the sublayer (or block) changes, centred (an intercept keeps the mean)
    struct { int kind, idx, present; } drops[3] = {{CCE_CURVE_DROP_ATTN, 0, ly->n_heads > 0},
                                                   {CCE_CURVE_DROP_FFN, 1, ly->hidden > 0},
                                                   {CCE_CURVE_DROP_BLOCK, 2, 1}};
    for (int q = 0; q < 3; q++) {
        if (!drops[q].present) continue;
        cce_curve *cv = &r->curves[drops[q].kind];
        if ((st = cce_curve_alloc(cv, 1, 0, err))) goto cleanup;
        int x = drops[q].idx;
        long n = j->drop_rows[x];
        double e = 0;
        if (n > 0) {
            const double *sm = j->drop_sum + (size_t)x * d;
            double mm = 0;
            for (int k = 0; k < d; k++) mm += (sm[k] / n) * (sm[k] / n);
            e = j->drop_sq[x] / n - mm;
        }
        cv->cost[1] = e > 0 ? e : 0;
        int64_t par = 0;
        double nuc = 0;
        int lo = x == 1 ? CCE_LIN_W1 : 0, hi = x == 0 ? CCE_LIN_WO : CCE_LIN_W2;
        for (int k = lo; k <= hi; k++) {
            par += cce_linear_params(cce_layer_lin_c(ly, k));
            for (int i = 0; i < r->weights[k].n; i++) nuc += r->weights[k].sv[i];
        }
        if (x == 0) par += d + (ly->attn_norm_b ? d : 0);
        if (x == 1) par += d + (ly->ffn_norm_b ? d : 0);
        if (x == 2) par = cce_layer_params(j->m, l);
        cv->params[1] = par;
        cv->nuc[0] = nuc;
    }
    // compact: keep existing matrices in the fixed order wq wk wv wo w1 w3 w2
    r->n_weights = 0;
    for (int k = 0; k < CCE_LIN_COUNT; k++)
        if (cce_linear_present(cce_layer_lin_c(ly, k))) r->weights[r->n_weights++] = r->weights[k];
    for (int k = r->n_weights; k < CCE_LIN_COUNT; k++) memset(&r->weights[k], 0, sizeof r->weights[k]);
    r->t_post = cce_now() - t_post;
cleanup:
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        cce_free(b->cov[s]);
        cce_free(b->mean[s]);
        cce_free(b->m2[s]);
    }
    for (int k = 0; k < CCE_LIN_COUNT; k++) cce_free(b->owned[k]);
    if (b->sync_ready) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
    }
    cce_free(b);
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
        int dims[CCE_COV_COUNT] = {ly->n_heads > 0 ? r->dim : 0, ly->n_heads * r->head_dim,
                                   ly->hidden > 0 ? r->dim : 0, ly->hidden};
        for (int s = 0; s < CCE_COV_COUNT && !st; s++)
            if (dims[s] > 0) st = cce_moments_init(&j->mom[s], dims[s], err);
        if (st) return st;
    }
    memset(j->drop_sq, 0, sizeof j->drop_sq);
    memset(j->drop_rows, 0, sizeof j->drop_rows);
    memset(j->drop_sum, 0, 3 * (size_t)r->dim * sizeof(double));
    j->out_sq = 0;
    j->out_rows = 0;
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
    r->out_energy = j->out_rows ? j->out_sq / j->out_rows : 0;
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
