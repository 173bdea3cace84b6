/*
 * plan.h — a compression plan: what to remove from each block, the knobs that chose it, and
 * the planner that turns an analysis's cost curves into one (DESIGN §3.7–3.8, §5).
 *
 * A plan says, per block: the query heads removed (a KV head goes with the last query head that
 * reads it), the FFN neurons removed, the rank of each of the seven matrices (0 = dense), and
 * whether the attention sublayer, the FFN sublayer or the whole block is dropped; with the
 * predicted losses and the parameter counts before and after. It also names the model and the
 * calibration it was made for and how it is to be encoded (encode.h), so `cce apply` can rebuild
 * exactly the same weights.
 *
 * The loss of a block (DESIGN §3.7), from the curves of select.h at the chosen steps k_c:
 *   L_rec = Σ_c s_c · cost_c[k_c] / out_energy  (output error relative to the residual stream
 *                                                energy ‖h_out‖² at the block output, each curve
 *                                                times its sublayer's measured sensitivity s_c when
 *                                                the plan has them — block_scale, set by
 *                                                cce_plan_search)
 *   L_sim = mean over the block's component curves (neurons, heads) of sim_c[k_c]
 *   L_reg = Σ_c nuc_c[k_c] / Σ_c nuc_c[0]        (retained nuclear norm over the original)
 *   L_CCE = α·L_rec + β·L_sim + γ·L_reg
 * and the plan's totals are sums over blocks (L_sim and L_reg: means).
 *
 * Two modes (DESIGN §3.8):
 *  - budget (target P > 0): one global pool of steps along every block's curves; the planner
 *    repeatedly takes the step with the least marginal L_CCE per parameter saved (on the lower
 *    convex hull of each curve, so a step that is only worth it together with the next is taken
 *    with it) until at least P of the non-embedding parameters are removed, counted exactly
 *    from the resulting shapes;
 *  - threshold (P == 0): ε and τ decide per block — neurons: as many as the FFN activation's
 *    eigenvalues below ε·λ_max; heads: the heads covariance's count below ε·λ_max over head_dim;
 *    ranks: the singular values of the activation-aware spectrum at or above τ·σ_max, when that
 *    rank saves parameters; a block whose angular distance is below ε is dropped.
 * Pins and forces: a pinned component is never removed, so the curve it lies on is only used up
 * to the step before it; a forced one is always removed, so its curve is used at least up to
 * it. Pins and forces of a whole sublayer or block (index -1 on a drop curve) keep or drop it.
 * Re-planning reads only the cached curves: no forward pass, no factorisation.
 *
 * Thread-safety: plans are plain data; functions are reentrant.
 */
#ifndef CCE_PLAN_H
#define CCE_PLAN_H

#include <stdint.h>
#include "status.h"
#include "model.h"
#include "select.h"

struct cce_analysis;

#define CCE_PLAN_FORMAT_MAJOR 1
#define CCE_PLAN_FORMAT_MINOR 0

/* ---- identities (shared with sessions and analysis files) ---- */

typedef struct {
    char path[1024];
    char sha256[65];
    char arch[16];            // "llama" / "gpt2"
    int dim, n_layers, n_heads, n_kv_heads, head_dim, hidden_dim, vocab_size;
    int64_t params_non_embedding;
} cce_model_id;

typedef struct {
    char path[4096];          // a file, or a directory whose regular files are concatenated in name order
    char sha256[65];          // of the bytes read (the concatenation for a directory)
    long tokens;              // calibration tokens used
    int seq_len;
    uint64_t seed;
} cce_calib_id;

/* Fill id from a loaded model (sha256 of the model's file(s): cce_model_sha256, analysis.h). */
cce_status cce_model_id_of(const cce_model *m, cce_model_id *id, cce_err *err);

/* ---- knobs ---- */

typedef struct {
    double alpha, beta, gamma;   // loss weights, each in [0, 1e6]
    double eps;                  // eigenvalue threshold, [0, 1)
    double tau;                  // singular value threshold, [0, 1)
    double target;               // fraction of non-embedding parameters to remove, [0, 0.95]; 0: threshold mode
} cce_knobs;

/* α 1, β 0, γ 0, ε 1e-3, τ 1e-2, target 0.2. */
void cce_knobs_default(cce_knobs *k);
/* Check every knob's range; one line naming the knob on failure (what prefixes it). */
cce_status cce_knobs_check(const cce_knobs *k, const char *what, cce_err *err);
/* Set a knob by its batch-option name ("alpha" "beta" "gamma" "eps" "tau" "target"). */
cce_status cce_knobs_set(cce_knobs *k, const char *name, double value, cce_err *err);
extern const char *const cce_knob_names[6];

/* A pinned or forced component: block, curve kind and component index (a neuron or query head
 * on NEURONS / HEADS; -1 with a DROP_* kind for the sublayer or block itself). */
typedef struct {
    int block;
    cce_curve_kind kind;
    int index;
} cce_pin;

/* ---- encoding options (how a plan's decisions become weights; encode.h applies them) ---- */

typedef enum {
    CCE_REDIST_NONE = 0,   // remove components, nothing else (the ablation)
    CCE_REDIST_LSQ,        // sequential least-squares refit toward the dense model (DESIGN §3.5)
    CCE_REDIST_BIAS,       // FLAP's bias compensation: b += W_{:,R} x̄_R, weights otherwise unchanged
} cce_redistribute;

typedef enum {
    CCE_LOWRANK_WHITENED = 0,   // activation-aware: truncation minimises the output error
    CCE_LOWRANK_PLAIN,          // plain truncated SVD of the weights (the "svd" baseline)
} cce_lowrank;

typedef struct {
    cce_redistribute redistribute;
    double ridge;            // relative ridge of every least-squares solve (× mean diagonal)
    int intercept;           // LSQ: refits of W_o / W₂ get a bias that absorbs means
    int refit_inputs;        // LSQ: q/k/v and gate/up rows refitted to the dense pre-activations
    int refit_all;           // LSQ: refit blocks the plan does not change too
    cce_lowrank lowrank;
    long tokens;             // calibration tokens for the sequential pass
    int seq_len;             // 0: the calibration's
    uint64_t seed;           // which calibration windows
} cce_encode_opts;

/* LSQ, ridge 1e-3, intercept on, input refit on, refit_all on, whitened low rank, 8192
 * tokens, seq_len 0, seed 1. */
void cce_encode_opts_default(cce_encode_opts *o);
const char *cce_redistribute_name(cce_redistribute r);   // "none" "lsq" "bias"

/* ---- the plan ---- */

typedef struct {
    int block;
    int drop, drop_attn, drop_ffn;
    int n_heads_removed;
    int *heads_removed;          // (n_heads_removed) query heads, ascending
    int n_neurons_removed;
    int *neurons_removed;        // (n_neurons_removed) FFN neurons, ascending
    int rank[CCE_LIN_COUNT];     // 0: dense; else the rank of the factorisation
    int steps[CCE_CURVE_COUNT];  // planner: steps taken along each curve (0 when not planned from curves)
    /* shapes and counts after the plan (derived by cce_plan_finish) */
    int n_heads, n_kv_heads, hidden;
    int64_t params_before, params_after;
    double L_rec, L_sim, L_reg, L_cce;
} cce_block_plan;

typedef struct {
    char method[32];             // "cce", or a baseline's name
    cce_knobs knobs;
    cce_encode_opts enc;
    cce_model_id model;
    cce_calib_id calib;
    int n_blocks;
    cce_block_plan *blocks;      // (n_blocks)
    int n_pins, n_forces;
    cce_pin *pins, *forces;
    double *block_scale;         // (2·n_blocks) measured sensitivities multiplying each sublayer's loss —
                                 // [2b] block b's attention, [2b+1] its FFN (a block drop: their
                                 // geometric mean) — or NULL (all 1)
    int64_t params_before, params_after;   // non-embedding, exact for the planned shapes
    double removed_fraction;               // 1 - params_after / params_before
    double L_rec, L_sim, L_reg, L_cce;     // predicted totals
} cce_plan;

/* A plan with no decisions for m (every block kept whole); identities left empty; default
 * knobs and encoding options, with 32768 encoding tokens for models of at most 100M
 * non-embedding parameters (8192 above). */
cce_status cce_plan_init(cce_plan *p, const cce_model *m, cce_err *err);
void cce_plan_free(cce_plan *p);
/* Deep copy. */
cce_status cce_plan_copy(cce_plan *dst, const cce_plan *src, cce_err *err);

/* After decisions are set: sort and check indices against m's shapes, derive each block's
 * resulting shapes and exact parameter counts (including biases an LSQ intercept adds), the
 * totals and the removed fraction. Fails with CCE_EINVAL naming the block and field when an
 * index is out of range or a decision contradicts the model. */
cce_status cce_plan_finish(cce_plan *p, const cce_model *m, cce_err *err);

/* The planner: fill p's decisions from the analysis's cost curves with p->knobs, p->pins and
 * p->forces (the rest of p — identities, encoding options — is kept), then cce_plan_finish
 * and the predicted losses. Uses only the blocks the analysis has finished (a running job's
 * later blocks are left whole). No forward pass, no factorisation: milliseconds. */
cce_status cce_plan_build(cce_plan *p, const cce_model *m, const struct cce_analysis *a, cce_err *err);

/* The same from an array of per-block results (blocks[l] NULL: block l not analysed), for
 * callers that hold results without a job (tests, loaded files). */
struct cce_block_result;
cce_status cce_plan_build_blocks(cce_plan *p, const cce_model *m, const struct cce_block_result *const *blocks,
                                 cce_err *err);

/* Predicted L_rec, L_sim, L_reg, L_CCE of each block and the totals for the plan's steps (the
 * planner calls it; callers that set decisions by hand get the steps they imply on the curves,
 * where a decision is a prefix of a curve's order, else the loss of the nearest prefix). */
void cce_plan_losses(cce_plan *p, const struct cce_block_result *const *blocks);

/* ---- files (JSON, DESIGN §5) ---- */

/* Write the plan as JSON to path atomically. */
cce_status cce_plan_save(const cce_plan *p, const char *path, cce_err *err);
/* JSON text of the plan (cce_free it). */
cce_status cce_plan_to_json(const cce_plan *p, char **text, cce_err *err);
/* Read and validate a plan file against model m (which may be NULL to skip the model checks):
 * format_version major, types, array sizes, indices in range, knobs in range, the model's
 * sha256 and shapes. One line naming the file and the field on any failure. */
cce_status cce_plan_load(const char *path, const cce_model *m, cce_plan *p, cce_err *err);
cce_status cce_plan_from_json(const char *text, size_t len, const char *what, const cce_model *m, cce_plan *p,
                              cce_err *err);
/* The same on parsed JSON, for files that embed a plan (sessions): cce_plan_to_cjson builds the
 * object (numbers as raw text that reads back bit for bit; cJSON_Delete it), cce_plan_from_cjson
 * validates one. The predicted losses are kept as saved. */
struct cJSON;
/* A JSON number item whose text reads back as exactly v (the shortest of 15–17 digits), for
 * every file the engine writes; null for a non-finite v. */
struct cJSON *cce_json_exact_number(double v);
cce_status cce_plan_to_cjson(const cce_plan *p, struct cJSON **out, cce_err *err);
cce_status cce_plan_from_cjson(const struct cJSON *root, const char *what, const cce_model *m, cce_plan *p,
                               cce_err *err);

#endif
