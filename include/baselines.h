/*
 * baselines.h — the usual structured-compression baselines as plans (DESIGN §3.10), so the
 * same encoder, evaluation and `cce apply` serve them and CCE alike.
 *
 * Every baseline is expressed as a cce_plan: its method name, its decisions, and the encoding
 * options that reproduce the published method (encode.h then builds the weights). Each removes
 * at least the target fraction of the non-embedding parameters, counted exactly by
 * cce_plan_finish, at its own granularity; the plan's removed_fraction is what it achieved.
 * Components are the plan's: FFN neurons and query heads (a KV head goes with the last query
 * head that reads it: the generalisation of the MHA-era methods to GQA used here), whole blocks,
 * and ranks of the seven matrices.
 *
 * The readings (the published formulas; x_j is input channel j of W_o (the per-head outputs,
 * tap HEADS) or of W₂ (the FFN activation, tap FFN_ACT) over the N calibration tokens):
 *  - magnitude (the structured magnitude baseline of the FLAP repository): neuron j scores
 *    ‖W₂[:, j]‖₂; head h scores Σ_{j∈h} ‖W_o[:, j]‖₂. Lowest removed, uniform ratio per layer
 *    (below). Redistribution none.
 *  - wanda-sp (structured Wanda as defined in An et al. 2024): channel j scores
 *    mean_i |W_ij| · ‖X_j‖₂ with ‖X_j‖₂ = sqrt(Σ_t x_tj²); a head sums its channels. Uniform
 *    ratio per layer, no weight update (none). Sequential, as in the reference code: the
 *    statistics of block ℓ are taken on the stream the already-pruned blocks 0..ℓ−1 produce
 *    (block ℓ itself still dense), then block ℓ is pruned and the stream moves on through it.
 *  - flap (An et al. 2024, AL-AM): the fluctuation metric s_j = Var_t(x_j) · ‖W_{:,j}‖₂² with
 *    the sample variance (N−1); attention channels use s_j² (as the reference code does); each
 *    layer's channels are standardised per module, z = (s − mean) / std (std with n−1); a head
 *    scores the mean z of its channels; one global ascending order over every layer's heads
 *    and neurons, cut at the least count whose exact parameter removal reaches the target (each
 *    structure charged the parameters it really frees — the reference code's 512/3 weight for
 *    a LLaMA head is the same charge); bias compensation b += W_{:,R} x̄_R on the dense
 *    stream's means (redistribute bias). Statistics on the dense model's stream.
 *  - shortgpt (Men et al. 2024): block influence BI_ℓ = 1 − mean_t cos(h_in, h_out) on the dense
 *    stream; whole blocks dropped lowest BI first until the target is met. Redistribution none.
 *  - svd: plain truncated SVD of every weight matrix at one kept-parameter ratio κ (SVD-LLM's
 *    convention): a (m, n) matrix keeps rank max(1, ⌊κ·m·n/(m+n)⌋), κ the largest ratio whose
 *    plan removes at least the target. Low rank plain, redistribution none.
 *  - asvd: the same ranks, truncation-aware whitened SVD (SVD-LLM: truncate σ(W L) with
 *    E[xxᵀ] = L Lᵀ, which minimises the output error); the encoder takes each matrix's input
 *    second moment on the compressed stream. Low rank whitened, redistribution none.
 * Uniform ratio per layer (magnitude, wanda-sp): each block loses ⌊ρ·H_ℓ + ½⌋ of its query
 * heads and ⌊ρ·m_ℓ + ½⌋ of its neurons (H_ℓ, m_ℓ the block's counts), ρ the least ratio whose
 * plan removes at least the target.
 *
 * Statistics (cce_bl_stats_collect): one pass over the calibration batch of calib.h — the
 * encoder's windows, so every method sees the same tokens — with taps: per channel Σx and Σx²
 * of HEADS and FFN_ACT, and the block influence. Memory: the batch's hidden states, one chunk
 * of scratch, and O(n_heads·head_dim + hidden) sums per block.
 *
 * Thread-safety: reentrant; the model is only read.
 */
#ifndef CCE_BASELINES_H
#define CCE_BASELINES_H

#include <stddef.h>
#include "calib.h"
#include "plan.h"

typedef enum {
    CCE_BL_MAGNITUDE = 0,
    CCE_BL_WANDA_SP,
    CCE_BL_FLAP,
    CCE_BL_SHORTGPT,
    CCE_BL_SVD,
    CCE_BL_ASVD,
    CCE_BL_COUNT
} cce_baseline;

/* "magnitude" "wanda-sp" "flap" "shortgpt" "svd" "asvd"; -1 from the parser for other names. */
const char *cce_baseline_name(cce_baseline b);
int cce_baseline_parse(const char *name);
/* One line saying which reading of the method this is (for help and table footnotes). */
const char *cce_baseline_reading(cce_baseline b);

/* Progress: done/total blocks and a phase; non-zero cancels (CCE_ECANCEL). */
typedef int (*cce_bl_progress_fn)(void *user, int done, int total, const char *phase);

/* ---- calibration statistics ---- */

typedef struct {
    int heads_cols;            // n_heads·head_dim of the block's attention (0: none)
    int hidden;                // FFN width (0: none)
    double *heads_sum, *heads_sq;   // (heads_cols) Σ_t x_tj, Σ_t x_tj² at HEADS
    double *act_sum, *act_sq;       // (hidden) the same at FFN_ACT
    double influence;          // 1 − mean_t cos(h_in, h_out) over the batch
} cce_bl_layer_stats;

typedef struct {
    int n_layers;
    long tokens;               // N: calibration tokens (rows of the batch)
    cce_bl_layer_stats *layers;   // (n_layers)
} cce_bl_stats;

/* Decide block `layer` from its statistics before the stream moves on (sequential methods):
 * fill bp's heads_removed / neurons_removed (allocated with cce_alloc; the plan owns them). */
typedef cce_status (*cce_bl_decide_fn)(void *user, int layer, const cce_bl_layer_stats *ls, long tokens,
                                       cce_block_plan *bp, cce_err *err);

/* One pass over the batch cce_calib_new(m, ids, n, opts) builds. decide == NULL: the dense
 * model's stream (blocks may be NULL). Otherwise, after block ℓ's statistics are taken on the
 * current stream (block ℓ dense), decide(ℓ) fills blocks[ℓ] (an array of m's n_layers block
 * plans, decisions empty on entry) and the stream advances through block ℓ with those heads and
 * neurons removed, exactly as redistribution none builds it (their contributions to the residual
 * stream subtracted). *st is allocated (cce_bl_stats_free). */
cce_status cce_bl_stats_collect(const cce_model *m, const int *ids, size_t n, const cce_calib_opts *opts,
                                cce_bl_decide_fn decide, void *duser, cce_block_plan *blocks,
                                cce_bl_progress_fn progress, void *puser, cce_bl_stats *st, cce_err *err);
void cce_bl_stats_free(cce_bl_stats *st);

/* ---- scores (public for tests: each is the formula in the header comment) ---- */

/* Per query head (layer's n_heads) and per neuron (layer's hidden); either may be NULL.
 * Magnitude needs no statistics; wanda-sp and flap read ls (N = tokens). */
cce_status cce_bl_score_magnitude(const cce_model *m, int layer, double *head, double *neuron, cce_err *err);
cce_status cce_bl_score_wanda(const cce_model *m, int layer, const cce_bl_layer_stats *ls, double *head,
                              double *neuron, cce_err *err);
/* FLAP: raw fluctuation metrics per channel (attention channels already squared) when
 * raw_heads (heads_cols) / raw_neurons (hidden) are given, and the standardised scores per
 * head and neuron (head: mean of its channels' z). */
cce_status cce_bl_score_flap(const cce_model *m, int layer, const cce_bl_layer_stats *ls, long tokens,
                             double *raw_heads, double *raw_neurons, double *head, double *neuron, cce_err *err);

/* What a method ranked by, per block (filled by cce_bl_plan when asked). */
typedef struct {
    int n_layers;
    double **head;      // (n_layers) → (n_heads of the block) or NULL
    double **neuron;    // (n_layers) → (hidden of the block) or NULL
    double *block;      // (n_layers) shortgpt's influence, else NULL
    double ratio;       // magnitude / wanda-sp: ρ; svd / asvd: κ; else 0
} cce_bl_scores;
void cce_bl_scores_free(cce_bl_scores *s);

/* ---- plans ---- */

typedef struct {
    const int *ids;             // calibration token stream (the evaluation protocol's)
    size_t n;
    cce_calib_opts calib;       // the batch: tokens, seq_len, seed (the encoder's windows)
    const cce_bl_stats *dense;  // dense-stream statistics for flap / shortgpt; NULL: collected here
    cce_bl_progress_fn progress;
    void *user;
} cce_bl_input;

/* Fill p's decisions for baseline b at target (fraction of non-embedding parameters, (0, 0.95])
 * and its encoding options (redistribute, lowrank; the rest of p->enc and the identities are
 * kept), set p->method and p->knobs.target, and finish the plan (cce_plan_finish). p must have
 * been made by cce_plan_init for m; its earlier decisions are replaced. scores (may be NULL)
 * receives what the method ranked by (cce_bl_scores_free). in may be NULL for magnitude, svd and
 * asvd. Fails with CCE_EINVAL when the method cannot reach the target at its granularity. */
cce_status cce_bl_plan(cce_plan *p, const cce_model *m, cce_baseline b, double target, const cce_bl_input *in,
                       cce_bl_scores *scores, cce_err *err);

#endif
