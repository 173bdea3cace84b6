/*
 * experiments.h — the side-by-side comparison and the paper's experiments as engine drivers
 * (DESIGN §3.10–3.11): compare, sweep, sensitivity, robustness, classify. The batch commands
 * (tui/cmd_compare.c, ...) only parse options, print tables and write files.
 *
 * Every method is a plan (plan.h; baselines.h for the baselines) encoded by the same encoder
 * (encode.h) from the same calibration batch and measured by the same evaluation (eval.h):
 *  - one calibration batch: the setup's token stream, calib_tokens tokens in windows of seq_len
 *    chosen with seed — the baselines' statistics and the sequential encoder of every method
 *    take these windows, and the CCE analysis takes the first analysis.tokens of them (the
 *    window choice is a prefix-stable Fisher-Yates: fewer tokens are a subset of the same
 *    windows); cce_xp_setup_model gives the CCE defaults of `cce plan` for the model;
 *  - evaluation: each given token stream (capped at eval_tokens) by the protocol of eval.h,
 *    windows of eval_seq_len: loss, perplexity, top-1 next-token accuracy;
 *  - speed: KV-cached greedy decoding from BOS, decode_tokens steps, best of decode_reps runs
 *    (eval.h: cce_decode_speed, the measurement commit and bench use too).
 * Methods by name: the baselines' names and "cce" (the CCE planner on an analysis of the same
 * batch, refined by cce_plan_search when search > 0 — its dev windows are held-out calibration
 * windows, never evaluation text — encoded with the setup's encoding options, least squares by
 * default) and "cce-none" (that same plan encoded with redistribution none: the ablation).
 *
 * The readings of the experiments:
 *  - sweep: block ℓ alone compressed by CCE's own planner (only block ℓ's cost curves offered) to
 *    `level` of that block's parameters; the rest of the model dense (with the encoder's options:
 *    refit_all refits the other blocks towards the dense stream too);
 *  - sensitivity: threshold mode (target 0) over a grid of ε × τ; a point is on the Pareto
 *    frontier when no other point removes at least as much with at most its perplexity, one of
 *    the two strictly;
 *  - robustness: character-level noise: each ASCII letter of the evaluation text is, with
 *    probability p, replaced by one of the other 25 letters of the same case, uniformly (seeded;
 *    every other byte unchanged); perplexity of the dense and the compressed model on the noisy
 *    text, which both must predict;
 *  - classify: zero-shot by likelihood: for each example and label, the template with {text}
 *    replaced is cut at {label} into a context and a continuation (the label and whatever follows
 *    it; without {label}, " " + label is appended); the score is the sum of the continuation's
 *    token log-probabilities (the tokens of BOS + context + continuation after their longest
 *    common prefix with BOS + context); the highest score wins (first label on ties).
 *
 * Cancellation: every driver polls its progress callback; a non-zero answer stops it with
 * CCE_ECANCEL. Thread-safety: one driver per thread; models are only read.
 */
#ifndef CCE_EXPERIMENTS_H
#define CCE_EXPERIMENTS_H

#include <stddef.h>
#include <stdint.h>
#include "analysis.h"
#include "baselines.h"
#include "plan.h"
#include "tokenizer.h"

#define CCE_XP_MAX_EVALS 4

/* Progress: a phase and done/total of it; non-zero cancels. */
typedef int (*cce_xp_progress_fn)(void *user, const char *phase, long done, long total);

typedef struct {
    const int *ids;     // a token stream (the protocol's)
    size_t n;
} cce_xp_stream;

typedef struct {
    const cce_model *model;
    /* calibration */
    const int *calib_ids;
    size_t n_calib;
    long calib_tokens;        // tokens of the batch (windows of seq_len)
    int seq_len;              // 0: min(256, model context)
    uint64_t seed;
    cce_model_id model_id;    // identities written into every plan (tokens, seq_len, seed of
    cce_calib_id calib_id;    //   calib_id are set from the fields above)
    cce_analysis_opts analysis;   // CCE's analysis: tokens (at most calib_tokens; 0: calib_tokens);
                                  //   seq_len and seed set from the above
    cce_encode_opts enc;          // CCE's encoding (tokens, seq_len, seed set from the above)
    cce_knobs knobs;              // CCE's knobs (target set per budget)
    int search;                   // CCE: candidate plans cce_plan_search evaluates (0: none;
                                  //   -1: cce_search_auto of the model; default 0, as `cce plan`)
    /* evaluation */
    int n_evals;
    cce_xp_stream evals[CCE_XP_MAX_EVALS];
    int eval_seq_len;         // 0: min(256, model context)
    long eval_tokens;         // 0: every token of each stream
    int decode_tokens;        // 0: no speed measurement
    int decode_reps;
    cce_xp_progress_fn progress;
    void *user;
} cce_xp_setup;

/* Defaults: 8192 calibration tokens, seq_len 0, seed 1, analysis/encode/knob defaults, no
 * search, eval seq_len 0, all tokens, 128 decode tokens best of 3. The pointers are left NULL. */
void cce_xp_setup_default(cce_xp_setup *su);
/* The defaults `cce plan` uses for m: calibration tokens = the encoder's (cce_plan_init), the
 * analysis default of 4096 tokens, no search. Sets su->model. */
cce_status cce_xp_setup_model(cce_xp_setup *su, const cce_model *m, cce_err *err);

typedef struct {
    double loss, ppl, accuracy;
    long tokens, predictions;
} cce_xp_eval;

typedef struct {
    char method[32];          // "dense" for the uncompressed model
    double target;            // 0 for dense
    double removed_fraction;  // achieved, of the non-embedding parameters
    int64_t params;           // non-embedding parameters of the compressed model
    cce_xp_eval eval[CCE_XP_MAX_EVALS];
    double tokens_per_s;      // decode; 0 when not measured
    double seconds;           // planning + encoding
} cce_xp_row;

/* Measure a model: each evaluation stream, and the decode speed. */
cce_status cce_xp_measure(const cce_model *m, const cce_xp_setup *su, cce_xp_row *row, cce_err *err);

/* A method name: a baseline, "cce" or "cce-none". */
int cce_xp_method_known(const char *name);

/* The plan of one method at one target for su's model and batch (identities and the batch
 * recorded; finished). dense (may be NULL) are dense-stream baseline statistics to reuse; job
 * (may be NULL) a finished analysis of the batch to reuse for cce. */
cce_status cce_xp_plan(const cce_xp_setup *su, const char *method, double target, const cce_bl_stats *dense,
                       const cce_analysis *job, cce_plan *p, cce_err *err);

/* Called as each row is finished, with its plan (NULL for the dense row). */
typedef void (*cce_xp_row_fn)(void *user, const cce_xp_row *row, const cce_plan *plan);

/* method × target: the dense row first, then for each method each target. *rows allocated
 * (cce_free), *n_rows = 1 + n_methods · n_targets. The baselines' dense statistics and the CCE
 * analysis are computed once and shared across targets. */
cce_status cce_xp_compare(const cce_xp_setup *su, const char *const *methods, int n_methods, const double *targets,
                          int n_targets, cce_xp_row_fn row_fn, void *row_user, cce_xp_row **rows, int *n_rows,
                          cce_err *err);

/* ---- sweep ---- */

typedef struct {
    int block;
    int64_t block_params;     // the block's parameters before
    int64_t removed;          // parameters the plan removes (all in this block)
    double block_fraction;    // removed / block_params
    cce_xp_row row;           // method "cce"/"cce-none", target = removed share of the model asked
} cce_xp_sweep_row;

/* One row per block (*rows allocated, n_layers of them) plus the dense row in *dense. */
cce_status cce_xp_sweep(const cce_xp_setup *su, double level, cce_redistribute redist, cce_xp_row *dense,
                        cce_xp_sweep_row **rows, cce_err *err);

/* ---- sensitivity ---- */

typedef struct {
    double eps, tau;
    int pareto;               // on the removed-fraction / perplexity frontier (first evaluation)
    cce_xp_row row;
} cce_xp_sens_row;

/* n_eps × n_tau rows (ε major), threshold mode. */
cce_status cce_xp_sensitivity(const cce_xp_setup *su, const double *eps, int n_eps, const double *tau, int n_tau,
                              cce_redistribute redist, cce_xp_row *dense, cce_xp_sens_row **rows, cce_err *err);
/* Mark the frontier over n points (removed x, perplexity y): pareto[i] = 1 when no j dominates i. */
void cce_xp_pareto(const double *x, const double *y, int n, int *pareto);

/* ---- robustness ---- */

/* out (len bytes, may alias text) = text with character noise p (header comment); returns the
 * number of letters changed. Deterministic in (text, p, seed). */
size_t cce_xp_perturb(const char *text, size_t len, double p, uint64_t seed, char *out);

typedef struct {
    double noise;
    size_t changed;           // letters replaced
    cce_xp_eval dense, compressed;
} cce_xp_robust_row;

/* For each noise level: perturb, tokenise by the protocol, evaluate both models (seq_len,
 * max_tokens as in eval.h). *rows allocated (n_levels). */
cce_status cce_xp_robustness(const cce_model *dense, const cce_model *comp, const cce_tokenizer *tok, const char *text,
                             size_t len, const double *levels, int n_levels, uint64_t seed, int seq_len, long max_tokens,
                             cce_xp_progress_fn progress, void *user, cce_xp_robust_row **rows, cce_err *err);

/* ---- classify ---- */

typedef struct {
    char *text;
    int label;                // index into the label list
} cce_xp_example;

/* Read a TSV of "text<TAB>label" lines: label an index into labels (0, 1, ...) or one of the
 * label names. A first line whose label is neither (a header such as "text\tlabel") is skipped;
 * any later bad line is an error naming what and the line. *ex allocated (cce_xp_examples_free). */
cce_status cce_xp_read_tsv(const char *text, size_t len, const char *what, const char *const *labels, int n_labels,
                           cce_xp_example **ex, int *n, cce_err *err);
void cce_xp_examples_free(cce_xp_example *ex, int n);

typedef struct {
    int n, n_labels;
    long correct;
    double accuracy;
    int *confusion;           // (n_labels, n_labels): [true][predicted]
    int *pred;                // (n) predicted label of each example
    double *score;            // (n, n_labels) continuation log-likelihoods
    int majority;             // the most frequent true label
    double majority_accuracy; // accuracy of always predicting it
    long truncated;           // examples whose context was cut to fit the model
} cce_xp_classify_result;

cce_status cce_xp_classify(const cce_model *m, const cce_tokenizer *tok, const cce_xp_example *ex, int n,
                           const char *const *labels, int n_labels, const char *templ, cce_xp_progress_fn progress,
                           void *user, cce_xp_classify_result *res, cce_err *err);
void cce_xp_classify_free(cce_xp_classify_result *res);

#endif
