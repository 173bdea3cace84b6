/*
 * analysis.h — the CCE analysis job: calibration statistics, spectra and similarity, one block
 * at a time (DESIGN §3.1–3.4).
 *
 * A job owns the calibration batch (include/calib.h). Step 0 tokenises (when given text) and
 * embeds; step ℓ+1 runs block ℓ over the batch with taps that accumulate, per site, streaming
 * moments and histograms (include/stats.h), then derives the block's results right away and
 * frees its statistics. Block ℓ's results are readable (cce_analysis_block) as soon as its step
 * returns, while block ℓ+1 runs on another thread. After the forward pass of a block its
 * independent pieces (OBS of neurons and of heads, spectra) run as tasks on two threads with BLAS
 * single-threaded meanwhile; each task gives the same bits on any thread. Memory: one block's statistics, the hidden
 * states h (rows, dim) plus a copy of them, and for the layer similarity either the token
 * subsample of every block's update (L, subsample, dim) or its Gram matrix (L, subsample,
 * subsample), whichever is cheaper to compare (wide models: the Gram matrices).
 *
 * The readings (fixed by DESIGN):
 *  - eigen spectra: eigenvalues (descending) of the centred covariances of the attention input,
 *    the concatenated per-head outputs (before W_o), the FFN input and the FFN activation;
 *    directions with λ < ε·λ_max are counted as redundant (cce_spectrum_count_below).
 *  - layer similarity: linear CKA between centred block updates Δ_ℓ = h_ℓ − h_{ℓ−1} on a fixed
 *    seeded token subsample; angular distance mean_t arccos(cos(h_in, h_out))/π and block
 *    influence 1 − mean_t cos(h_in, h_out) over all calibration tokens.
 *  - head similarity: linear CKA between head contributions o_h W_o[:,h]ᵀ computed from the
 *    HEADS covariance: with G_a = W_aᵀW_a, ‖W_a C_ab W_bᵀ‖_F² = <G_a C_ab, C_ab G_b>_F, so no
 *    activations are stored; the same over KV groups (all query heads of a group together).
 *  - weight spectra: plain singular values of each weight matrix and activation-aware ones
 *    σ(W L) with E[x xᵀ] = L Lᵀ over the matrix's input site (uncentred: the output error of a
 *    truncation is measured on y = W x itself); σ < τ·σ_max counted; spectral norm, Frobenius
 *    norm and stable rank ‖W‖_F²/‖W‖_2². Computed as square roots of the eigenvalues of the
 *    smaller Gram matrix: plain σ from W Wᵀ or WᵀW in double (dsyevd: σ_i within ~n·1e-16·σ_max²/σ_i
 *    of exact, below float rounding for σ_i > 1e-6 σ_max, ~3e-7 σ_max absolute at worst); aware σ
 *    from W M Wᵀ (or Lᵀ WᵀW L with a Cholesky factor of M when W is tall) with float eigenvalues,
 *    because M itself is accumulated by float ssyrk per chunk (~1e-6 relative), so σ_aw is
 *    float-accurate in any case (~1e-3 σ_max absolute for the smallest values).
 *  - redundancy: greedy OBS selection (include/select.h) on the centred covariance C of the
 *    consumer's input (FFN activation with W₂; per-head outputs with W_o): at each step the
 *    component whose removal costs least given the *current, updated* weights and the downdated
 *    inverse of the kept set's C + λI (λ = ridge·mean diag C). order = that removal order.
 *    cost_i = the leave-one-out cost tr(W_i ((C+λI)⁻¹)_ii⁻¹ W_iᵀ) (output error of removing i
 *    alone when all others absorb), score_i = 1 − cost_i / tr(W_i C_ii W_iᵀ) in [0,1]
 *    (1: fully predictable). group_order / group_cost: the same greedy over whole KV groups.
 *  - curves (select.h, per block; costs are raw, mean per calibration token):
 *      NEURONS  OBS order and cumulative cost (centred: the encoder's intercept absorbs the
 *               mean); params = k·(row of w1 + row of w3 + column of w2, with their biases);
 *               sim = mean |correlation| among kept neurons; nuc = ‖W₂ restricted to the kept
 *               columns‖_*, exact at up to 17 evenly spaced k (float eigenvalues of the smaller
 *               Gram), linear between them.
 *      HEADS    the same over query heads with W_o; params add a KV head's wk/wv rows when the
 *               last query head reading it goes; sim = mean head CKA among kept heads.
 *      RANK_*   ranks r0 (the largest whose factors save parameters) down to 1: cost = Σ_{i≥r}
 *               σ_aw,i², params = out·in − r·(out+in), nuc = Σ_{i<r} σ_i (plain), sim = 0.
 *      DROP_*   one step: the centred energy E‖v − E v‖² of what the sublayer adds (attention
 *               output; FFN output; block update h_out − h_in), i.e. what removing it costs
 *               when a bias keeps its mean (first order: later sublayers' inputs are taken as
 *               unchanged); params = its linears, biases and norm (block: all of it).
 *    out_energy = mean ‖h_out‖² per token, for normalising.
 *
 * Determinism: for the same model, token stream, options and BLAS thread count, every result is
 * bit-identical from run to run (fixed seeds, fixed reduction orders, no timing dependence).
 *
 * Thread-safety: one thread drives a job (new/step/free); cce_analysis_progress,
 * cce_analysis_cancel, cce_analysis_block, cce_analysis_layer_cka and cce_analysis_finished may
 * be called from any thread while it runs.
 */
#ifndef CCE_ANALYSIS_H
#define CCE_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "tokenizer.h"
#include "forward.h"
#include "stats.h"
#include "select.h"

/* Covariance sites analysed per block. */
typedef enum {
    CCE_COV_ATTN_IN = 0,   // (dim)
    CCE_COV_HEADS,         // (n_heads*head_dim)
    CCE_COV_FFN_IN,        // (dim)
    CCE_COV_FFN_ACT,       // (hidden)
    CCE_COV_COUNT
} cce_cov_site;
const char *cce_cov_site_name(cce_cov_site s);

typedef struct {
    long tokens;       // calibration tokens (default 4096)
    int seq_len;       // 0: min(256, model seq_len)
    uint64_t seed;     // windows and token subsample (default 1)
    int hist_bins;     // default 64
    int subsample;     // tokens kept per block for layer CKA (default 1024)
    float eps;         // eigenvalue threshold for the counts (default 1e-3)
    float tau;         // singular value threshold for the counts (default 1e-2)
    double ridge;      // relative ridge for the redundancy regression (default 1e-6)
    int threads;       // threads for a block's post-forward work (default 0: two); results do not depend on it
    int cka_gram;      // layer CKA via: -1 the cheaper (default), 0 stored updates Δ (L, sub, dim)
                       // and ‖Δ_iᵀΔ_j‖, 1 stored Gram matrices ΔΔᵀ (L, sub, sub) and their dot products
} cce_analysis_opts;
void cce_analysis_opts_default(cce_analysis_opts *o);

/* Where the calibration tokens come from: text (tokenised in step 0 with tok) or ids. */
typedef struct {
    const cce_tokenizer *tok;
    const char *text;      // copied by cce_analysis_new
    size_t text_len;
    const int *ids;        // used when text == NULL; copied
    size_t n_ids;
} cce_calib_source;

typedef struct {
    int n;                 // 0 when the site does not exist (dropped block)
    float *values;         // (n) eigenvalues, descending
    int below_eps;         // cce_spectrum_count_below(values, n, opts.eps)
} cce_spectrum;

typedef struct {
    char name[4];          // "wq" "wk" "wv" "wo" "w1" "w3" "w2"
    int rows, cols;        // (out, in)
    int n;                 // min(rows, cols)
    float *sv;             // (n) singular values, descending
    float *sv_aw;          // (n) activation-aware singular values σ(W L), descending
    double spectral_norm, frobenius, stable_rank;
    int below_tau, aw_below_tau;   // counts below tau·max of each spectrum
    float jitter;          // Cholesky jitter used on the input second moment
} cce_weight_spectrum;

typedef struct cce_block_result {
    int layer, dropped;
    int dim, n_heads, n_kv_heads, head_dim, hidden;
    cce_spectrum eig[CCE_COV_COUNT];
    double angular_distance;   // mean over tokens of arccos(cos(h_in, h_out)) / π
    double influence;          // 1 − mean cos(h_in, h_out)
    double update_rms;         // sqrt(mean ‖Δ‖² / mean ‖h_in‖²)
    int near_identity;         // angular_distance < 1e-3: a layer-drop candidate
    float *head_cka;           // (n_heads, n_heads)
    float *group_cka;          // (n_kv_heads, n_kv_heads)
    int n_weights;
    cce_weight_spectrum weights[7];
    float *neuron_score, *neuron_cost;   // (hidden)
    int *neuron_order;                   // (hidden) pruning order, first = first to remove
    float *head_score, *head_cost;       // (n_heads)
    int *head_order;                     // (n_heads)
    int *group_order;                    // (n_kv_heads) KV-group removal order (OBS on W_o, whole groups)
    double *group_cost;                  // (n_kv_heads + 1) its cumulative cost curve
    cce_curve curves[CCE_CURVE_COUNT];   // the planner's cost curves (select.h); n == 0 when absent
    double out_energy;                   // mean ‖h_out‖² per calibration token at the block output
    cce_hist hist[CCE_TAP_COUNT];        // per tap site; n_bins 0 when the site did not report
    double t_forward, t_stats, t_similarity, t_eigen, t_svd, t_redundancy;   // seconds (eigen, svd,
                                         // redundancy: summed over the threads that ran them)
    double t_blas;                       // of t_stats .. t_redundancy: seconds inside BLAS/LAPACK calls
    double t_post;                       // wall seconds of the post-forward work
} cce_block_result;

/* Statistics of a finished block, offered to opts-independent consumers (the planner) before
 * they are freed. Pointers are valid only during the callback. */
typedef struct {
    int layer;
    int dims[CCE_COV_COUNT];
    const double *mean[CCE_COV_COUNT];    // (dims[s])
    const double *cov[CCE_COV_COUNT];     // (dims[s], dims[s]) centred covariance
    long count;
} cce_block_stats;
typedef void (*cce_block_stats_fn)(void *user, const cce_block_stats *st);

typedef struct cce_analysis cce_analysis;

/* Create a job (no computation yet). src->text or src->ids must be given; with text, src->tok.
 * The model (and tokenizer) must outlive the job. */
cce_status cce_analysis_new(const cce_model *m, const cce_calib_source *src, const cce_analysis_opts *opts,
                            cce_analysis **out, cce_err *err);
/* Optional hook called at the end of every block with its statistics (set before stepping). */
void cce_analysis_set_stats_hook(cce_analysis *job, cce_block_stats_fn fn, void *user);
/* Do the next step: step 0 tokenise + embed, step ℓ+1 block ℓ. CCE_OK when finished already.
 * After a failure every later call returns the same status and message. */
cce_status cce_analysis_step(cce_analysis *job, cce_err *err);
/* Run all remaining steps. */
cce_status cce_analysis_run(cce_analysis *job, cce_err *err);
int cce_analysis_finished(const cce_analysis *job);
/* done/total steps (total = n_layers + 1) and the phase ("tokenise", "block 3/30 forward",
 * "block 3/30 eigen", ..., "done"), written into phase (cap bytes). Any thread. */
void cce_analysis_progress(const cce_analysis *job, int *done, int *total, char *phase, size_t cap);
/* Ask the running step to stop: it returns CCE_ECANCEL at its next tap. Any thread. */
void cce_analysis_cancel(cce_analysis *job);
/* Block l's results once its step is done, else NULL. The pointer stays valid until free. */
const cce_block_result *cce_analysis_block(const cce_analysis *job, int l);
/* The (L, L) layer-similarity matrix; *n_done (may be NULL) = blocks done: entries (i, j) with
 * i, j < n_done are final, others are 0. */
const float *cce_analysis_layer_cka(const cce_analysis *job, int *n_done);
/* Calibration facts, valid after step 0 (else zeros): tokens in the stream, rows used. */
void cce_analysis_calib_info(const cce_analysis *job, size_t *stream_tokens, int *n_seq, int *seq_len);
int cce_analysis_n_layers(const cce_analysis *job);
/* The calibration text a job analysed (its path and SHA-256): recorded by the creator with
 * cce_analysis_set_calib_identity, or read from the file by cce_analysis_load; "" when unknown.
 * Set it before the job runs (not thread-safe against readers). */
void cce_analysis_set_calib_identity(cce_analysis *job, const char *path, const char *sha256);
const char *cce_analysis_calib_path(const cce_analysis *job);
const char *cce_analysis_calib_sha256(const cce_analysis *job);
const cce_analysis_opts *cce_analysis_get_opts(const cce_analysis *job);
void cce_analysis_free(cce_analysis *job);

/* ---- the analysis file (engine/analysis_io.c) ---- */

/* Model identity: the sha256 of the file the user named; for a Hugging Face directory the sha256
 * of the lines "NAME SHA256\n" (names sorted) of config.json and every weight file
 * (model.safetensors, or the shards that model.safetensors.index.json names). */
cce_status cce_model_sha256(const char *path, char out[65], cce_err *err);

/* Who and what an analysis file was made from (strings are copied into the file). */
typedef struct {
    const char *model_path, *model_sha256;   // as the user named it; cce_model_sha256 of it
    const char *calib_path, *calib_sha256;   // the calibration text ("random-tokens" / "none")
    double total_seconds;                    // recorded under "timings"
} cce_analysis_identity;

/* Write a finished job as the analysis JSON (format_version 2; the layout is in analysis_io.c),
 * atomically (cce_write_file_atomic). m is the job's model. Doubles and floats read back
 * exactly. Errors: CCE_EINVAL (job not finished), CCE_ENOMEM, CCE_EIO. */
cce_status cce_analysis_save(const cce_analysis *job, const cce_model *m, const cce_analysis_identity *id,
                             const char *path, cce_err *err);

/* Read an analysis file written for model m back into a finished job (no calibration batch;
 * every accessor works on it; free with cce_analysis_free). Everything is validated first:
 * format_version major, member types, every array's length against m's shapes (sizes never come
 * from the file), indices in range and orders permutations; m->path must hash (cce_model_sha256)
 * to the recorded model.sha256. Errors name the file and the field: CCE_EFORMAT (malformed),
 * CCE_EUNSUPPORTED (other major), CCE_EINVAL (another model), CCE_EIO, CCE_ENOMEM. */
cce_status cce_analysis_load(const char *path, const cce_model *m, cce_analysis **out, cce_err *err);

/* The i-th reading (what a number in the file means): its text, and *name its key; NULL past the
 * last. For help screens. */
const char *cce_analysis_readings_text(int i, const char **name);

/* ---- the math, public for tests and for the planner ---- */

/* Number of eigenvalues (descending, eig[0] = λ_max) below eps·λ_max; n when λ_max <= 0. */
int cce_spectrum_count_below(const float *eig, int n, float eps);

/* Linear CKA of x (rows, dx) and y (rows, dy), both centred internally:
 * ‖XᵀY‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F); 0 when either has zero variance. */
cce_status cce_cka_linear(const float *x, int ldx, const float *y, int ldy, int rows, int dx, int dy,
                          double *out, cce_err *err);

/* CKA between component contributions x_c W_cᵀ from the covariance cov (n, n):
 * out (n_comp, n_comp). */
cce_status cce_cka_from_cov(const double *cov, int n, const cce_components *comps, const float *w,
                            int d, int ldw, float *out, cce_err *err);

/* Redundancy of each component (see the header comment): score, cost (n_comp) and the greedy
 * pruning order (n_comp; any of the three may be NULL). ridge is relative to mean diag(cov). */
cce_status cce_redundancy(const double *cov, int n, const cce_components *comps, const float *w,
                          int d, int ldw, double ridge, float *score, float *cost, int *order,
                          cce_err *err);

#endif
