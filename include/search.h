/*
 * search.h — refining a plan's allocation by evaluating candidate plans end to end
 * (DESIGN §3.8, `--search N`).
 *
 * The planner compares blocks through their predicted losses; how much a block's output error
 * really costs at the model's output differs from block to block. The search measures it: each
 * candidate plan is encoded (encode.h) and scored by the mean next-token NLL of the compressed
 * model on held-out calibration windows (a dev set disjoint from the windows the analysis and
 * the encoder use), and the best candidate is kept. Candidates:
 *   1. the plan as the knobs give it;
 *   2. per-block sensitivities: each block compressed alone as in plan 1, its measured NLL
 *      increase over its predicted L_rec becomes its scale s_b (plan.h: block_scale), and the
 *      plan is rebuilt with them;
 *   3. while evaluations remain: each block's scale in turn doubled or halved, kept when the
 *      dev NLL improves (coordinate descent in log scale).
 * Step 2 needs one evaluation per compressed sublayer; with fewer evaluations only 1 and 3 run.
 * A candidate that removes less than the plan it refines never wins.
 *
 * Not run unless asked (`cce plan --search N|auto`, `compare --search`, the TUI's :search): on
 * stories260K (calibration text/train, dev 32,768 held-out tokens) searches of 12-16 candidates
 * lowered the dev NLL but raised the perplexity of unseen text (TinyStories valid, second half:
 * 7.755 -> 8.341 at 10 %; WikiText: 152 -> 212), and only longer ones (30) helped there. The
 * dev set is calibration-like text; what it rewards does not reliably carry over.
 *
 * Thread-safety: one call per thread; the model and results are only read.
 */
#ifndef CCE_SEARCH_H
#define CCE_SEARCH_H

#include <stddef.h>
#include "encode.h"

struct cce_block_result;

typedef struct {
    int evaluations;     // candidate plans to encode and score (1 = just score the plan)
    long dev_tokens;     // held-out calibration tokens scoring each candidate (default 32768: a smaller
                         // dev set lets the search chase noise; measured on stories260K at 10 %)
    uint64_t dev_seed;   // which held-out windows (default 7)
} cce_search_opts;

void cce_search_opts_default(cce_search_opts *o);

/* The default number of candidates for m ("--search auto"): 2·n_layers + 6 for models of at
 * most 5M non-embedding parameters (each candidate costs one encoding: seconds there), else 0. */
int cce_search_auto(const cce_model *m);

typedef struct {
    int evaluated;       // candidate plans encoded and scored
    long dev_tokens;     // tokens in the dev set
    double dense_nll;    // the source model's dev NLL
    double first_nll;    // candidate 1's
    double best_nll;     // the kept plan's
} cce_search_result;

/* Refine p (built by cce_plan_build_blocks from blocks, with its knobs, pins and encoding
 * options) in place: p ends as the best candidate, with block_scale set when a scaled candidate
 * won. ids (n) is the calibration token stream the plan's encoding uses. progress (may be NULL)
 * reports candidates done/total; non-zero cancels (CCE_ECANCEL, p unchanged). */
cce_status cce_plan_search(cce_plan *p, const cce_model *m, const struct cce_block_result *const *blocks,
                           const int *ids, size_t n, const cce_search_opts *o, cce_encode_progress_fn progress,
                           void *user, cce_search_result *res, cce_err *err);

#endif
