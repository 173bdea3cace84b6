/*
 * baselines.c — the baselines' statistics, scores and plans (the readings are in
 * include/baselines.h).
 *
 * Statistics pass. The calibration batch of calib.h is walked block by block over chunks of
 * whole sequences with the batch's own forward scratch. For block ℓ and each chunk: a copy of
 * the chunk's input h_in is kept for the influence; the dense block runs (in place on the
 * stream in dense mode, on a copy in sequential mode) with a tap that adds Σx and Σx² of HEADS
 * and FFN_ACT into the block's sums (double) and Σ_t cos(h_in, h_out) at BLOCK_OUT. In
 * sequential mode the decide callback then fixes block ℓ's removals and the stream advances
 * through the pruned block: attention sublayer, then h −= A_R W_o[:, R]ᵀ with A_R the removed
 * heads' outputs captured at HEADS; FFN sublayer, then h −= a_R W₂[:, R]ᵀ. That is exactly the
 * forward of the block redistribution none builds (removed columns contribute nothing; nothing
 * else changes), without building a model per block.
 *
 * Searches. Every method's decisions are monotone in one number (ρ, κ, a count K), and the
 * exact parameter count of a candidate comes from cce_plan_finish, so each search returns the
 * least compression that still removes at least the target:
 *  - uniform ratio: ρ runs over the breakpoints (k − ½)/N of the per-block counts; the
 *    parameters a count removes depend on which heads go (a KV head is freed only with all its
 *    query heads), so the search starts at the first breakpoint where a packing of whole KV
 *    groups would reach the target and tries the real selection at each breakpoint from there;
 *  - flap: bisection on the number K of structures removed in the global order;
 *  - shortgpt: blocks in ascending influence until the target is reached;
 *  - svd/asvd: bisection on κ (removal is non-increasing in κ).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "baselines.h"
#include "linalg.h"
#include "util.h"

/* ---------------------------------------------------------------- names */

static const char *const bl_names[CCE_BL_COUNT] = {"magnitude", "wanda-sp", "flap", "shortgpt", "svd", "asvd"};

static const char *const bl_readings[CCE_BL_COUNT] = {
    "neurons ||W2[:,j]||, heads sum of ||Wo[:,j]|| over the head; lowest removed, uniform ratio per layer; no update",
    "mean_i |W_ij| * ||X_j|| per channel of Wo / W2 (heads: summed), pruned-stream statistics; uniform ratio per layer; no update",
    "Var(x_j)*||W[:,j]||^2 (heads squared), per-layer standardised, one global order charged exact parameters; bias b += W[:,R] mean(x_R)",
    "block influence 1 - mean cos(h_in, h_out) on the dense stream; lowest blocks dropped; no update",
    "plain truncated SVD of every matrix, rank floor(k*m*n/(m+n)) at one kept-parameter ratio k; no update",
    "truncation-aware whitened SVD (SVD-LLM) of every matrix at one kept-parameter ratio; no update",
};

const char *cce_baseline_name(cce_baseline b) { return (unsigned)b < CCE_BL_COUNT ? bl_names[b] : "?"; }
const char *cce_baseline_reading(cce_baseline b) { return (unsigned)b < CCE_BL_COUNT ? bl_readings[b] : "?"; }

int cce_baseline_parse(const char *name) {
    for (int b = 0; b < CCE_BL_COUNT; b++)
        if (!strcmp(name, bl_names[b])) return b;
    return -1;
}

/* ---------------------------------------------------------------- statistics */

void cce_bl_stats_free(cce_bl_stats *st) {
    if (!st) return;
    for (int l = 0; st->layers && l < st->n_layers; l++) {
        cce_bl_layer_stats *ls = &st->layers[l];
        cce_free(ls->heads_sum);
        cce_free(ls->heads_sq);
        cce_free(ls->act_sum);
        cce_free(ls->act_sq);
    }
    cce_free(st->layers);
    memset(st, 0, sizeof *st);
}

typedef struct {
    cce_bl_layer_stats *ls;
    int stats;              // 1: accumulate the sums and the influence
    const float *hin;       // (chunk rows, dim) the chunk's input, for the influence
    int dim;
    double cos_sum;
    float *cap;             // (chunk rows, cap_cols) activations captured at cap_site
    int cap_site, cap_cols;
} bl_pass;

static void add_sums(double *sum, double *sq, const cce_tap *t) {
    for (int r = 0; r < t->rows; r++) {
        const float *x = t->x + (size_t)r * t->ld;
        for (int j = 0; j < t->cols; j++) {
            double v = x[j];
            sum[j] += v;
            sq[j] += v * v;
        }
    }
}

static int bl_tap(void *user, const cce_tap *t) {
    bl_pass *P = user;
    if (P->stats) {
        cce_bl_layer_stats *ls = P->ls;
        if (t->site == CCE_TAP_HEADS && t->cols == ls->heads_cols) add_sums(ls->heads_sum, ls->heads_sq, t);
        else if (t->site == CCE_TAP_FFN_ACT && t->cols == ls->hidden) add_sums(ls->act_sum, ls->act_sq, t);
        else if (t->site == CCE_TAP_BLOCK_OUT)
            for (int r = 0; r < t->rows; r++) {
                const float *a = P->hin + (size_t)r * P->dim, *b = t->x + (size_t)r * t->ld;
                double ab = 0, aa = 0, bb = 0;
                for (int j = 0; j < P->dim; j++) {
                    ab += (double)a[j] * b[j];
                    aa += (double)a[j] * a[j];
                    bb += (double)b[j] * b[j];
                }
                P->cos_sum += aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
            }
    }
    if ((int)t->site == P->cap_site && t->cols <= P->cap_cols)
        for (int r = 0; r < t->rows; r++)
            memcpy(P->cap + (size_t)r * t->cols, t->x + (size_t)r * t->ld, (size_t)t->cols * sizeof(float));
    return 0;
}

/* The removed columns R of an outgoing matrix W (d, k): WR (d, |R|·width) gathered. */
static cce_status gather_cols(const cce_linear *w, const int *removed, int n_removed, int width, float **out,
                              cce_err *err) {
    *out = NULL;
    const float *wf;
    float *owned;
    cce_status s = cce_linear_dense(w, &wf, &owned, err);
    if (s) return s;
    int nc = n_removed * width;
    float *g = cce_alloc((size_t)w->out, (size_t)(nc > 0 ? nc : 1) * sizeof(float));   // (d, nc)
    if (!g) {
        cce_free(owned);
        return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
    }
    for (int i = 0; i < w->out; i++)
        for (int r = 0; r < n_removed; r++)
            for (int e = 0; e < width; e++)
                g[(size_t)i * nc + r * width + e] = wf[(size_t)i * w->in + removed[r] * width + e];
    cce_free(owned);
    *out = g;
    return CCE_OK;
}

/* h (rows, d) −= A_R (rows, |R|·width) W_R (d, |R|·width)ᵀ, with A_R gathered from cap (rows, cols). */
static cce_status subtract_removed(float *h, int rows, int d, const float *cap, int cols, const int *removed,
                                   int n_removed, int width, const float *wr, float *scratch, cce_err *err) {
    int nc = n_removed * width;
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < n_removed; q++)
            memcpy(scratch + (size_t)r * nc + q * width, cap + (size_t)r * cols + removed[q] * width,
                   (size_t)width * sizeof(float));
    cce_mat A = {scratch, rows, nc, nc}, W = {(float *)wr, d, nc, nc}, H = {h, rows, d, d};
    return cce_linalg_gemm(0, 1, -1.0f, &A, &W, 1.0f, &H, err);
}

/* Move the batch's stream through block l with bp's heads and neurons removed (redistribution
 * none): each sublayer runs dense, then the removed components' contributions, captured at
 * HEADS / FFN_ACT, are subtracted. P captures; scr is (chunk rows, max components) scratch. */
static cce_status bl_advance_pruned(cce_calib *cal, int l, const cce_block_plan *bp, bl_pass *P, float *scr,
                                    cce_err *err) {
    const cce_model *m = cal->model;
    const cce_layer *y = &m->layers[l];
    int d = m->cfg.dim, hd = m->cfg.head_dim;
    if (y->dropped) return CCE_OK;
    int do_attn = y->n_heads > 0 && !bp->drop && !bp->drop_attn && bp->n_heads_removed < y->n_heads;
    int do_ffn = y->hidden > 0 && !bp->drop && !bp->drop_ffn && bp->n_neurons_removed < y->hidden;
    float *wo_r = NULL, *w2_r = NULL;
    cce_status s = CCE_OK;
    if (do_attn && bp->n_heads_removed) s = gather_cols(&y->wo, bp->heads_removed, bp->n_heads_removed, hd, &wo_r, err);
    if (!s && do_ffn && bp->n_neurons_removed) s = gather_cols(&y->w2, bp->neurons_removed, bp->n_neurons_removed, 1, &w2_r, err);
    for (int s0 = 0; !s && s0 < cal->n_seq; s0 += cal->chunk_seqs) {
        int ns = cal->n_seq - s0 < cal->chunk_seqs ? cal->n_seq - s0 : cal->chunk_seqs, rows = ns * cal->seq_len;
        float *hc = cal->h + (size_t)s0 * cal->seq_len * d;
        if (do_attn) {
            P->cap_site = CCE_TAP_HEADS;
            if (!(s = cce_fwd_sublayer(cal->fwd, l, 0, hc, ns, cal->seq_len, bl_tap, P, err)) && wo_r)
                s = subtract_removed(hc, rows, d, P->cap, y->n_heads * hd, bp->heads_removed, bp->n_heads_removed, hd, wo_r,
                                     scr, err);
        }
        if (!s && do_ffn) {
            P->cap_site = CCE_TAP_FFN_ACT;
            if (!(s = cce_fwd_sublayer(cal->fwd, l, 1, hc, ns, cal->seq_len, bl_tap, P, err)) && w2_r)
                s = subtract_removed(hc, rows, d, P->cap, y->hidden, bp->neurons_removed, bp->n_neurons_removed, 1, w2_r,
                                     scr, err);
        }
    }
    cce_free(wo_r);
    cce_free(w2_r);
    return s;
}

cce_status cce_bl_stats_collect(const cce_model *m, const int *ids, size_t n, const cce_calib_opts *opts,
                                cce_bl_decide_fn decide, void *duser, cce_block_plan *blocks,
                                cce_bl_progress_fn progress, void *puser, cce_bl_stats *st, cce_err *err) {
    memset(st, 0, sizeof *st);
    const cce_config *c = &m->cfg;
    int L = c->n_layers, d = c->dim, hd = c->head_dim;
    if (decide && !blocks) return cce_err_set(err, CCE_EINVAL, "baselines: a sequential pass needs block plans");
    cce_calib *cal = NULL;
    cce_status s = cce_calib_new(m, ids, n, opts, &cal, err);
    if (s) return cce_err_prefix(err, s, "baselines");
    st->n_layers = L;
    st->tokens = cal->rows;
    st->layers = cce_alloc_zero((size_t)L, sizeof *st->layers);
    int crows = cal->chunk_seqs * cal->seq_len, maxk = 1;
    for (int l = 0; l < L; l++) {
        const cce_layer *y = &m->layers[l];
        if (!y->dropped && y->n_heads * hd > maxk) maxk = y->n_heads * hd;
        if (!y->dropped && y->hidden > maxk) maxk = y->hidden;
    }
    float *hin = cce_alloc((size_t)crows, (size_t)d * sizeof(float));      // (crows, d)
    float *work = cce_alloc((size_t)crows, (size_t)d * sizeof(float));     // (crows, d)
    float *cap = cce_alloc((size_t)crows, (size_t)maxk * sizeof(float));   // (crows, maxk)
    float *scr = cce_alloc((size_t)crows, (size_t)maxk * sizeof(float));   // (crows, maxk)
    if (!st->layers || !hin || !work || !cap || !scr) {
        s = cce_err_set(err, CCE_ENOMEM, "baselines: cannot allocate the statistics of %d blocks", L);
        goto fail;
    }
    for (int l = 0; l < L; l++) {
        const cce_layer *y = &m->layers[l];
        cce_bl_layer_stats *ls = &st->layers[l];
        ls->heads_cols = y->dropped ? 0 : y->n_heads * hd;
        ls->hidden = y->dropped ? 0 : y->hidden;
        ls->heads_sum = cce_alloc_zero((size_t)(ls->heads_cols ? ls->heads_cols : 1), sizeof(double));
        ls->heads_sq = cce_alloc_zero((size_t)(ls->heads_cols ? ls->heads_cols : 1), sizeof(double));
        ls->act_sum = cce_alloc_zero((size_t)(ls->hidden ? ls->hidden : 1), sizeof(double));
        ls->act_sq = cce_alloc_zero((size_t)(ls->hidden ? ls->hidden : 1), sizeof(double));
        if (!ls->heads_sum || !ls->heads_sq || !ls->act_sum || !ls->act_sq) {
            s = cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
            goto fail;
        }
    }
    for (int l = 0; l < L; l++) {
        char phase[64];
        snprintf(phase, sizeof phase, "baseline statistics block %d/%d", l + 1, L);
        if (progress && progress(puser, l, L, phase)) {
            s = cce_err_set(err, CCE_ECANCEL, "baselines: cancelled at block %d", l);
            goto fail;
        }
        bl_pass P = {.ls = &st->layers[l], .stats = 1, .hin = hin, .dim = d, .cap = cap, .cap_site = -1, .cap_cols = maxk};
        /* 1. statistics of the dense block on the current stream */
        for (int s0 = 0; s0 < cal->n_seq; s0 += cal->chunk_seqs) {
            int ns = cal->n_seq - s0 < cal->chunk_seqs ? cal->n_seq - s0 : cal->chunk_seqs, rows = ns * cal->seq_len;
            float *hc = cal->h + (size_t)s0 * cal->seq_len * d;
            memcpy(hin, hc, (size_t)rows * d * sizeof(float));
            float *x = hc;
            if (decide) {
                memcpy(work, hc, (size_t)rows * d * sizeof(float));
                x = work;
            }
            if ((s = cce_fwd_block(cal->fwd, l, x, ns, cal->seq_len, bl_tap, &P, err))) goto fail;
        }
        st->layers[l].influence = 1.0 - P.cos_sum / (double)cal->rows;
        if (!decide) continue;
        /* 2. the method decides block l; 3. the stream moves on through the pruned block */
        if ((s = decide(duser, l, &st->layers[l], st->tokens, &blocks[l], err))) goto fail;
        P.stats = 0;
        if ((s = bl_advance_pruned(cal, l, &blocks[l], &P, scr, err))) goto fail;
    }
    if (progress) progress(puser, L, L, "baseline statistics done");
    cce_free(hin); cce_free(work); cce_free(cap); cce_free(scr);
    cce_calib_free(cal);
    return CCE_OK;
fail:
    cce_free(hin); cce_free(work); cce_free(cap); cce_free(scr);
    cce_calib_free(cal);
    cce_bl_stats_free(st);
    return s;
}

/* ---------------------------------------------------------------- scores */

/* Per column j of W (out, in): Σ_i W_ij² (l2sq) and mean_i |W_ij| (absmean); either may be NULL. */
static cce_status col_stats(const cce_linear *w, double *l2sq, double *absmean, cce_err *err) {
    const float *wf;
    float *owned;
    cce_status s = cce_linear_dense(w, &wf, &owned, err);
    if (s) return s;
    for (int j = 0; j < w->in; j++) {
        double q = 0, a = 0;
        for (int i = 0; i < w->out; i++) {
            double v = wf[(size_t)i * w->in + j];
            q += v * v;
            a += fabs(v);
        }
        if (l2sq) l2sq[j] = q;
        if (absmean) absmean[j] = w->out > 0 ? a / w->out : 0;
    }
    cce_free(owned);
    return CCE_OK;
}

static int layer_has_attn(const cce_layer *y) { return !y->dropped && y->n_heads > 0; }
static int layer_has_ffn(const cce_layer *y) { return !y->dropped && y->hidden > 0; }

cce_status cce_bl_score_magnitude(const cce_model *m, int layer, double *head, double *neuron, cce_err *err) {
    const cce_layer *y = &m->layers[layer];
    int hd = m->cfg.head_dim;
    cce_status s = CCE_OK;
    if (head && layer_has_attn(y)) {
        double *q = cce_alloc((size_t)y->wo.in, sizeof(double));
        if (!q) return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
        if (!(s = col_stats(&y->wo, q, NULL, err)))
            for (int h = 0; h < y->n_heads; h++) {
                head[h] = 0;
                for (int e = 0; e < hd; e++) head[h] += sqrt(q[h * hd + e]);
            }
        cce_free(q);
        if (s) return s;
    }
    if (neuron && layer_has_ffn(y)) {
        if ((s = col_stats(&y->w2, neuron, NULL, err))) return s;
        for (int j = 0; j < y->hidden; j++) neuron[j] = sqrt(neuron[j]);
    }
    return CCE_OK;
}

cce_status cce_bl_score_wanda(const cce_model *m, int layer, const cce_bl_layer_stats *ls, double *head,
                              double *neuron, cce_err *err) {
    const cce_layer *y = &m->layers[layer];
    int hd = m->cfg.head_dim;
    cce_status s = CCE_OK;
    if (head && layer_has_attn(y)) {
        if (ls->heads_cols != y->wo.in)
            return cce_err_set(err, CCE_EINVAL, "baselines: block %d statistics have %d head channels, W_o has %d", layer,
                               ls->heads_cols, y->wo.in);
        double *a = cce_alloc((size_t)y->wo.in, sizeof(double));
        if (!a) return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
        if (!(s = col_stats(&y->wo, NULL, a, err)))
            for (int h = 0; h < y->n_heads; h++) {
                head[h] = 0;
                for (int e = 0; e < hd; e++) head[h] += a[h * hd + e] * sqrt(ls->heads_sq[h * hd + e]);
            }
        cce_free(a);
        if (s) return s;
    }
    if (neuron && layer_has_ffn(y)) {
        if (ls->hidden != y->w2.in)
            return cce_err_set(err, CCE_EINVAL, "baselines: block %d statistics have %d FFN channels, W2 has %d", layer,
                               ls->hidden, y->w2.in);
        if ((s = col_stats(&y->w2, NULL, neuron, err))) return s;
        for (int j = 0; j < y->hidden; j++) neuron[j] *= sqrt(ls->act_sq[j]);
    }
    return CCE_OK;
}

/* Sample variance of channel j from Σx, Σx² over n tokens. */
static double sample_var(double sum, double sq, long n) {
    if (n < 2) return 0;
    double v = (sq - sum * sum / (double)n) / (double)(n - 1);
    return v > 0 ? v : 0;
}

/* z = (x − mean) / std over n values (std with n − 1; 0 when the values are all equal). */
static void standardise(const double *x, int n, double *z) {
    double mu = 0, var = 0;
    for (int i = 0; i < n; i++) mu += x[i];
    mu = n > 0 ? mu / n : 0;
    for (int i = 0; i < n; i++) var += (x[i] - mu) * (x[i] - mu);
    double sd = n > 1 ? sqrt(var / (n - 1)) : 0;
    for (int i = 0; i < n; i++) z[i] = sd > 0 ? (x[i] - mu) / sd : 0;
}

cce_status cce_bl_score_flap(const cce_model *m, int layer, const cce_bl_layer_stats *ls, long tokens,
                             double *raw_heads, double *raw_neurons, double *head, double *neuron, cce_err *err) {
    const cce_layer *y = &m->layers[layer];
    int hd = m->cfg.head_dim;
    cce_status s = CCE_OK;
    for (int site = 0; site < 2; site++) {
        int attn = site == 0;
        if (attn ? !layer_has_attn(y) : !layer_has_ffn(y)) continue;
        double *raw_out = attn ? raw_heads : raw_neurons, *out = attn ? head : neuron;
        if (!raw_out && !out) continue;
        const cce_linear *w = attn ? &y->wo : &y->w2;
        int k = w->in;
        if ((attn ? ls->heads_cols : ls->hidden) != k)
            return cce_err_set(err, CCE_EINVAL, "baselines: block %d statistics do not match its %s", layer,
                               attn ? "W_o" : "W2");
        const double *sum = attn ? ls->heads_sum : ls->act_sum, *sq = attn ? ls->heads_sq : ls->act_sq;
        double *raw = cce_alloc((size_t)k, sizeof(double)), *z = cce_alloc((size_t)k, sizeof(double));
        if (!raw || !z) {
            cce_free(raw);
            cce_free(z);
            return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
        }
        if (!(s = col_stats(w, raw, NULL, err))) {
            for (int j = 0; j < k; j++) {
                raw[j] *= sample_var(sum[j], sq[j], tokens);
                if (attn) raw[j] *= raw[j];
            }
            if (raw_out) memcpy(raw_out, raw, (size_t)k * sizeof(double));
            standardise(raw, k, z);
            if (out && attn)
                for (int h = 0; h < y->n_heads; h++) {
                    out[h] = 0;
                    for (int e = 0; e < hd; e++) out[h] += z[h * hd + e];
                    out[h] /= hd;
                }
            else if (out)
                memcpy(out, z, (size_t)k * sizeof(double));
        }
        cce_free(raw);
        cce_free(z);
        if (s) return s;
    }
    return CCE_OK;
}

void cce_bl_scores_free(cce_bl_scores *sc) {
    if (!sc) return;
    for (int l = 0; l < sc->n_layers; l++) {
        if (sc->head) cce_free(sc->head[l]);
        if (sc->neuron) cce_free(sc->neuron[l]);
    }
    cce_free(sc->head);
    cce_free(sc->neuron);
    cce_free(sc->block);
    memset(sc, 0, sizeof *sc);
}

static cce_status scores_init(cce_bl_scores *sc, const cce_model *m, int per_component, int per_block, cce_err *err) {
    memset(sc, 0, sizeof *sc);
    int L = m->cfg.n_layers;
    sc->n_layers = L;
    sc->head = cce_alloc_zero((size_t)L, sizeof(double *));
    sc->neuron = cce_alloc_zero((size_t)L, sizeof(double *));
    if (per_block) sc->block = cce_alloc_zero((size_t)L, sizeof(double));
    int ok = sc->head && sc->neuron && (!per_block || sc->block);
    for (int l = 0; ok && per_component && l < L; l++) {
        const cce_layer *y = &m->layers[l];
        if (layer_has_attn(y)) ok = (sc->head[l] = cce_alloc_zero((size_t)y->n_heads, sizeof(double))) != NULL;
        if (ok && layer_has_ffn(y)) ok = (sc->neuron[l] = cce_alloc_zero((size_t)y->hidden, sizeof(double))) != NULL;
    }
    if (!ok) {
        cce_bl_scores_free(sc);
        return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory for scores");
    }
    return CCE_OK;
}

/* ---------------------------------------------------------------- plan helpers */

/* Clear every decision of p (keeps identities and options). */
static void plan_clear(cce_plan *p) {
    for (int l = 0; l < p->n_blocks; l++) {
        cce_block_plan *b = &p->blocks[l];
        cce_free(b->heads_removed);
        cce_free(b->neurons_removed);
        int keep = b->block;
        memset(b, 0, sizeof *b);
        b->block = keep;
    }
}

/* Set block b's removed lists (copies; n == 0 clears). */
static cce_status block_set(cce_block_plan *b, const int *heads, int nh, const int *neurons, int nn, cce_err *err) {
    cce_free(b->heads_removed);
    cce_free(b->neurons_removed);
    b->heads_removed = b->neurons_removed = NULL;
    b->n_heads_removed = b->n_neurons_removed = 0;
    b->drop_attn = b->drop_ffn = b->drop = 0;   // derived again by cce_plan_finish
    if (nh > 0) {
        if (!(b->heads_removed = cce_alloc((size_t)nh, sizeof(int)))) goto nomem;
        memcpy(b->heads_removed, heads, (size_t)nh * sizeof(int));
        b->n_heads_removed = nh;
    }
    if (nn > 0) {
        if (!(b->neurons_removed = cce_alloc((size_t)nn, sizeof(int)))) goto nomem;
        memcpy(b->neurons_removed, neurons, (size_t)nn * sizeof(int));
        b->n_neurons_removed = nn;
    }
    return CCE_OK;
nomem:
    return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
}

/* The least parameter count that reaches target: ceil(target · before). */
static int64_t goal_of(const cce_plan *p, double target) {
    return (int64_t)ceil(target * (double)p->params_before - 1e-9);
}
static int reached(const cce_plan *p, int64_t goal) { return p->params_before - p->params_after >= goal; }

/* Indices 0..n-1 sorted by ascending score (ties: lower index first). */
typedef struct { double v; int i; } bl_key;
static int key_cmp(const void *a, const void *b) {
    const bl_key *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}
static cce_status lowest(const double *score, int n, int k, int *out, cce_err *err) {
    bl_key *keys = cce_alloc((size_t)(n > 0 ? n : 1), sizeof *keys);
    if (!keys) return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
    for (int i = 0; i < n; i++) keys[i] = (bl_key){score[i], i};
    qsort(keys, (size_t)n, sizeof *keys, key_cmp);
    for (int i = 0; i < k; i++) out[i] = keys[i].i;
    cce_free(keys);
    return CCE_OK;
}

/* ---------------------------------------------------------------- uniform ratio per layer */

static int ratio_count(double rho, int n) {
    long k = (long)floor(rho * n + 0.5 + 1e-9);
    return k < 0 ? 0 : k > n ? n : (int)k;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Ascending unique breakpoints (k − ½)/N of the counts of every block; *nb set. */
static cce_status breakpoints(const cce_model *m, double **out, int *nb, cce_err *err) {
    int cap = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const cce_layer *y = &m->layers[l];
        if (layer_has_attn(y)) cap += y->n_heads;
        if (layer_has_ffn(y)) cap += y->hidden;
    }
    double *b = cce_alloc((size_t)(cap > 0 ? cap : 1), sizeof(double));
    if (!b) return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
    int n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const cce_layer *y = &m->layers[l];
        int N[2] = {layer_has_attn(y) ? y->n_heads : 0, layer_has_ffn(y) ? y->hidden : 0};
        for (int q = 0; q < 2; q++)
            for (int k = 1; k <= N[q]; k++) b[n++] = (k - 0.5) / N[q];
    }
    qsort(b, (size_t)n, sizeof(double), dbl_cmp);
    int w = 0;
    for (int i = 0; i < n; i++)
        if (w == 0 || b[i] - b[w - 1] > 1e-12) b[w++] = b[i];
    *out = b;
    *nb = w;
    return CCE_OK;
}

/* Heads of block y in an order whose prefixes free as many KV heads as possible (packed = 1:
 * whole KV groups, smallest first) or as few as possible (packed = 0: each group keeps its last
 * head until every group is down to one). order (n_heads). */
static cce_status head_packing(const cce_layer *y, int packed, int *order, cce_err *err) {
    int H = y->n_heads, G = y->n_kv_heads;
    int *size = cce_alloc_zero((size_t)G, sizeof(int)), *members = cce_alloc((size_t)H, sizeof(int));
    int *start = cce_alloc_zero((size_t)G + 1, sizeof(int)), *gs = cce_alloc((size_t)G, sizeof(int));
    if (!size || !members || !start || !gs) {
        cce_free(size); cce_free(members); cce_free(start); cce_free(gs);
        return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
    }
    for (int h = 0; h < H; h++) size[cce_layer_kv_of(y, h)]++;
    for (int g = 0; g < G; g++) start[g + 1] = start[g] + size[g];
    for (int g = 0; g < G; g++) gs[g] = 0;
    for (int h = 0; h < H; h++) {
        int g = cce_layer_kv_of(y, h);
        members[start[g] + gs[g]++] = h;
    }
    int n = 0;
    if (packed) {
        for (int g = 0; g < G; g++) gs[g] = g;   // groups by ascending size (stable)
        for (int i = 1; i < G; i++)
            for (int j = i; j > 0 && size[gs[j - 1]] > size[gs[j]]; j--) { int t = gs[j]; gs[j] = gs[j - 1]; gs[j - 1] = t; }
        for (int q = 0; q < G; q++)
            for (int e = 0; e < size[gs[q]]; e++) order[n++] = members[start[gs[q]] + e];
    } else {
        int maxs = 0;
        for (int g = 0; g < G; g++) maxs = size[g] > maxs ? size[g] : maxs;
        for (int r = 0; r + 1 < maxs; r++)   // all but the last head of each group, round robin
            for (int g = 0; g < G; g++)
                if (r + 1 < size[g]) order[n++] = members[start[g] + r];
        for (int g = 0; g < G; g++)
            if (size[g] > 0) order[n++] = members[start[g] + size[g] - 1];
    }
    cce_free(size); cce_free(members); cce_free(start); cce_free(gs);
    return CCE_OK;
}

/* Decisions at ratio rho with heads taken in a packing order (packed 0/1) and neurons 0..k-1
 * (any neurons remove the same parameters); then finish. */
static cce_status uniform_bound(cce_plan *p, const cce_model *m, double rho, int packed, int *ibuf, cce_err *err) {
    cce_status s = CCE_OK;
    for (int l = 0; !s && l < m->cfg.n_layers; l++) {
        const cce_layer *y = &m->layers[l];
        int kh = layer_has_attn(y) ? ratio_count(rho, y->n_heads) : 0;
        int kn = layer_has_ffn(y) ? ratio_count(rho, y->hidden) : 0;
        int *hb = ibuf, *nb = ibuf + (layer_has_attn(y) ? y->n_heads : 0);
        if (kh && (s = head_packing(y, packed, hb, err))) break;
        for (int j = 0; j < kn; j++) nb[j] = j;
        s = block_set(&p->blocks[l], hb, kh, nb, kn, err);
    }
    return s ? s : cce_plan_finish(p, m, err);
}

/* Per-block scores for one uniform selection: magnitude (fixed) or wanda (sequential pass). */
typedef struct {
    const cce_model *m;
    double rho;
    cce_bl_scores *sc;       // where the scores go (always allocated here)
    int *ibuf;
} bl_uniform;

static cce_status select_block(const cce_model *m, int l, double rho, const double *head, const double *neuron,
                               int *ibuf, cce_block_plan *bp, cce_err *err) {
    const cce_layer *y = &m->layers[l];
    int kh = layer_has_attn(y) ? ratio_count(rho, y->n_heads) : 0;
    int kn = layer_has_ffn(y) ? ratio_count(rho, y->hidden) : 0;
    int *hb = ibuf, *nb = ibuf + (layer_has_attn(y) ? y->n_heads : 0);
    cce_status s = CCE_OK;
    if (kh) s = lowest(head, y->n_heads, kh, hb, err);
    if (!s && kn) s = lowest(neuron, y->hidden, kn, nb, err);
    return s ? s : block_set(bp, hb, kh, nb, kn, err);
}

static cce_status wanda_decide(void *user, int layer, const cce_bl_layer_stats *ls, long tokens, cce_block_plan *bp,
                               cce_err *err) {
    (void)tokens;
    bl_uniform *u = user;
    cce_status s = cce_bl_score_wanda(u->m, layer, ls, u->sc->head[layer], u->sc->neuron[layer], err);
    return s ? s : select_block(u->m, layer, u->rho, u->sc->head[layer], u->sc->neuron[layer], u->ibuf, bp, err);
}

static cce_status plan_uniform(cce_plan *p, const cce_model *m, cce_baseline b, double target, const cce_bl_input *in,
                               cce_bl_scores *sc, cce_err *err) {
    int L = m->cfg.n_layers, maxn = 1;
    for (int l = 0; l < L; l++) {
        const cce_layer *y = &m->layers[l];
        int n = (layer_has_attn(y) ? y->n_heads : 0) + (layer_has_ffn(y) ? y->hidden : 0);
        maxn = n > maxn ? n : maxn;
    }
    double *bps = NULL;
    int nb = 0;
    int *ibuf = cce_alloc((size_t)maxn, sizeof(int));
    cce_status s = ibuf ? breakpoints(m, &bps, &nb, err) : cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
    if (s) goto done;
    if ((s = scores_init(sc, m, 1, 0, err))) goto done;
    if (b == CCE_BL_MAGNITUDE)
        for (int l = 0; !s && l < L; l++) s = cce_bl_score_magnitude(m, l, sc->head[l], sc->neuron[l], err);
    if (s) goto done;
    int64_t goal = goal_of(p, target);
    /* first breakpoint where packing whole KV groups reaches the goal (no selection can do better) */
    int lo = 0, hi = nb;   // answer in [lo, hi]; hi == nb: unreachable
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if ((s = uniform_bound(p, m, bps[mid], 1, ibuf, err))) goto done;
        if (reached(p, goal)) hi = mid;
        else lo = mid + 1;
    }
    int found = 0;
    for (int i = lo; i < nb && !found; i++) {
        double rho = bps[i];
        plan_clear(p);
        if (b == CCE_BL_MAGNITUDE) {
            for (int l = 0; !s && l < L; l++) s = select_block(m, l, rho, sc->head[l], sc->neuron[l], ibuf, &p->blocks[l], err);
        } else {
            if (!in || !in->ids) {
                s = cce_err_set(err, CCE_EINVAL, "baselines: wanda-sp needs calibration tokens");
                goto done;
            }
            bl_uniform u = {m, rho, sc, ibuf};
            cce_bl_stats st;
            s = cce_bl_stats_collect(m, in->ids, in->n, &in->calib, wanda_decide, &u, p->blocks, in->progress, in->user,
                                     &st, err);
            if (!s) cce_bl_stats_free(&st);
        }
        if (s || (s = cce_plan_finish(p, m, err))) goto done;
        found = reached(p, goal);
        sc->ratio = rho;
    }
    if (!found) s = cce_err_set(err, CCE_EINVAL, "%s: cannot remove %.1f%% at a uniform ratio", cce_baseline_name(b), 100 * target);
done:
    cce_free(bps);
    cce_free(ibuf);
    return s;
}

/* ---------------------------------------------------------------- flap */

typedef struct { double z; int layer, kind, index; } flap_item;   // kind 0 head, 1 neuron
static int flap_cmp(const void *a, const void *b) {
    const flap_item *x = a, *y = b;
    if (x->z < y->z) return -1;
    if (x->z > y->z) return 1;
    if (x->layer != y->layer) return x->layer - y->layer;
    if (x->kind != y->kind) return x->kind - y->kind;
    return x->index - y->index;
}

/* Decisions: the first k items of the global order (per-block counts, then the lists). */
static cce_status flap_take(cce_plan *p, const cce_model *m, const flap_item *it, int k, int *cnt, cce_err *err) {
    int L = m->cfg.n_layers;
    memset(cnt, 0, (size_t)L * 2 * sizeof(int));
    for (int i = 0; i < k; i++) cnt[2 * it[i].layer + it[i].kind]++;
    for (int l = 0; l < L; l++) {
        cce_block_plan *b = &p->blocks[l];
        cce_free(b->heads_removed);
        cce_free(b->neurons_removed);
        b->heads_removed = cnt[2 * l] ? cce_alloc((size_t)cnt[2 * l], sizeof(int)) : NULL;
        b->neurons_removed = cnt[2 * l + 1] ? cce_alloc((size_t)cnt[2 * l + 1], sizeof(int)) : NULL;
        b->n_heads_removed = b->n_neurons_removed = 0;
        b->drop = b->drop_attn = b->drop_ffn = 0;
        if ((cnt[2 * l] && !b->heads_removed) || (cnt[2 * l + 1] && !b->neurons_removed))
            return cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
    }
    for (int i = 0; i < k; i++) {
        cce_block_plan *b = &p->blocks[it[i].layer];
        if (it[i].kind == 0) b->heads_removed[b->n_heads_removed++] = it[i].index;
        else b->neurons_removed[b->n_neurons_removed++] = it[i].index;
    }
    return cce_plan_finish(p, m, err);
}

static cce_status plan_flap(cce_plan *p, const cce_model *m, double target, const cce_bl_input *in, cce_bl_scores *sc,
                            cce_err *err) {
    int L = m->cfg.n_layers;
    cce_bl_stats own = {0};
    const cce_bl_stats *st = in ? in->dense : NULL;
    cce_status s = CCE_OK;
    if (!st) {
        if (!in || !in->ids) return cce_err_set(err, CCE_EINVAL, "baselines: flap needs calibration tokens");
        if ((s = cce_bl_stats_collect(m, in->ids, in->n, &in->calib, NULL, NULL, NULL, in->progress, in->user, &own, err)))
            return s;
        st = &own;
    }
    flap_item *it = NULL;
    int *cnt = NULL, n = 0;
    if (st->n_layers != L) {
        s = cce_err_set(err, CCE_EINVAL, "baselines: statistics of %d blocks for a model of %d", st->n_layers, L);
        goto done;
    }
    if ((s = scores_init(sc, m, 1, 0, err))) goto done;
    int total = 0;
    for (int l = 0; l < L; l++) {
        const cce_layer *y = &m->layers[l];
        if (layer_has_attn(y)) total += y->n_heads;
        if (layer_has_ffn(y)) total += y->hidden;
    }
    it = cce_alloc((size_t)(total > 0 ? total : 1), sizeof *it);
    cnt = cce_alloc((size_t)L, 2 * sizeof(int));
    if (!it || !cnt) {
        s = cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
        goto done;
    }
    for (int l = 0; !s && l < L; l++) {
        const cce_layer *y = &m->layers[l];
        if ((s = cce_bl_score_flap(m, l, &st->layers[l], st->tokens, NULL, NULL, sc->head[l], sc->neuron[l], err))) break;
        for (int h = 0; layer_has_attn(y) && h < y->n_heads; h++) it[n++] = (flap_item){sc->head[l][h], l, 0, h};
        for (int j = 0; layer_has_ffn(y) && j < y->hidden; j++) it[n++] = (flap_item){sc->neuron[l][j], l, 1, j};
    }
    if (s) goto done;
    qsort(it, (size_t)n, sizeof *it, flap_cmp);
    int64_t goal = goal_of(p, target);
    int lo = 0, hi = n;   // least k in [0, n] that reaches the goal
    if ((s = flap_take(p, m, it, n, cnt, err))) goto done;
    if (!reached(p, goal)) {
        s = cce_err_set(err, CCE_EINVAL, "flap: cannot remove %.1f%%", 100 * target);
        goto done;
    }
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if ((s = flap_take(p, m, it, mid, cnt, err))) goto done;
        if (reached(p, goal)) hi = mid;
        else lo = mid + 1;
    }
    s = flap_take(p, m, it, lo, cnt, err);
done:
    cce_free(it);
    cce_free(cnt);
    cce_bl_stats_free(&own);
    return s;
}

/* ---------------------------------------------------------------- shortgpt */

static cce_status plan_shortgpt(cce_plan *p, const cce_model *m, double target, const cce_bl_input *in,
                                cce_bl_scores *sc, cce_err *err) {
    int L = m->cfg.n_layers;
    cce_bl_stats own = {0};
    const cce_bl_stats *st = in ? in->dense : NULL;
    cce_status s = CCE_OK;
    if (!st) {
        if (!in || !in->ids) return cce_err_set(err, CCE_EINVAL, "baselines: shortgpt needs calibration tokens");
        if ((s = cce_bl_stats_collect(m, in->ids, in->n, &in->calib, NULL, NULL, NULL, in->progress, in->user, &own, err)))
            return s;
        st = &own;
    }
    int *order = cce_alloc((size_t)L, sizeof(int));
    if (!order) s = cce_err_set(err, CCE_ENOMEM, "baselines: out of memory");
    if (!s) s = scores_init(sc, m, 0, 1, err);
    if (s) goto done;
    for (int l = 0; l < L; l++) sc->block[l] = st->layers[l].influence;
    if ((s = lowest(sc->block, L, L, order, err))) goto done;
    int64_t goal = goal_of(p, target);
    int k = 0, ok = 0;
    while (!ok && k < L) {
        int l = order[k++];
        if (m->layers[l].dropped) continue;
        p->blocks[l].drop = 1;
        if ((s = cce_plan_finish(p, m, err))) goto done;
        ok = reached(p, goal);
    }
    if (!ok) s = cce_err_set(err, CCE_EINVAL, "shortgpt: dropping every block does not remove %.1f%%", 100 * target);
done:
    cce_free(order);
    cce_bl_stats_free(&own);
    return s;
}

/* ---------------------------------------------------------------- svd / asvd */

static void svd_ranks(cce_plan *p, const cce_model *m, double kappa) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const cce_layer *y = &m->layers[l];
        for (int k = 0; k < CCE_LIN_COUNT; k++) {
            const cce_linear *x = cce_layer_lin_c(y, k);
            p->blocks[l].rank[k] = 0;
            if (y->dropped || !cce_linear_present(x)) continue;
            int full = x->out < x->in ? x->out : x->in;
            long r = (long)floor(kappa * (double)x->out * x->in / (double)(x->out + x->in));
            if (r < 1) r = 1;
            if (r > full) r = full;
            p->blocks[l].rank[k] = (int)r;
        }
    }
}

static cce_status plan_svd(cce_plan *p, const cce_model *m, double target, cce_bl_scores *sc, cce_err *err) {
    int64_t goal = goal_of(p, target);
    cce_status s;
    svd_ranks(p, m, 0.0);   // rank 1 everywhere: the most an SVD can remove
    if ((s = cce_plan_finish(p, m, err))) return s;
    if (!reached(p, goal)) return cce_err_set(err, CCE_EINVAL, "svd: rank 1 everywhere does not remove %.1f%%", 100 * target);
    double lo = 0, hi = 1;   // reached at lo; the answer is the largest such kappa
    for (int it = 0; it < 60; it++) {
        double mid = 0.5 * (lo + hi);
        svd_ranks(p, m, mid);
        if ((s = cce_plan_finish(p, m, err))) return s;
        if (reached(p, goal)) lo = mid;
        else hi = mid;
    }
    svd_ranks(p, m, lo);
    if ((s = scores_init(sc, m, 0, 0, err))) return s;
    sc->ratio = lo;
    return cce_plan_finish(p, m, err);
}

/* ---------------------------------------------------------------- entry point */

cce_status cce_bl_plan(cce_plan *p, const cce_model *m, cce_baseline b, double target, const cce_bl_input *in,
                       cce_bl_scores *scores, cce_err *err) {
    if ((unsigned)b >= CCE_BL_COUNT) return cce_err_set(err, CCE_EINVAL, "baselines: unknown method %d", (int)b);
    if (!(target > 0 && target <= 0.95))
        return cce_err_set(err, CCE_EINVAL, "%s: target %g out of range (0, 0.95]", cce_baseline_name(b), target);
    if (p->n_blocks != m->cfg.n_layers)
        return cce_err_set(err, CCE_EINVAL, "%s: the plan has %d blocks, the model %d", cce_baseline_name(b), p->n_blocks,
                           m->cfg.n_layers);
    plan_clear(p);
    snprintf(p->method, sizeof p->method, "%s", cce_baseline_name(b));
    p->knobs.target = target;
    p->enc.redistribute = b == CCE_BL_FLAP ? CCE_REDIST_BIAS : CCE_REDIST_NONE;
    p->enc.lowrank = b == CCE_BL_SVD ? CCE_LOWRANK_PLAIN : CCE_LOWRANK_WHITENED;
    cce_status s = cce_plan_finish(p, m, err);   // params_before for the goal
    if (s) return s;
    cce_bl_scores local;
    cce_bl_scores *sc = scores ? scores : &local;
    memset(sc, 0, sizeof *sc);
    switch (b) {
    case CCE_BL_MAGNITUDE: case CCE_BL_WANDA_SP: s = plan_uniform(p, m, b, target, in, sc, err); break;
    case CCE_BL_FLAP: s = plan_flap(p, m, target, in, sc, err); break;
    case CCE_BL_SHORTGPT: s = plan_shortgpt(p, m, target, in, sc, err); break;
    case CCE_BL_SVD: case CCE_BL_ASVD: s = plan_svd(p, m, target, sc, err); break;
    default: break;
    }
    if (!scores || s) cce_bl_scores_free(sc);
    if (s) {
        plan_clear(p);
        cce_plan_finish(p, m, NULL);
    }
    return s;
}
