/*
 * select.h — which components go: structured optimal-brain-surgeon selection and the cost
 * curves the planner works from (DESIGN §3.4).
 *
 * A consumer matrix W (d, n) reads an input x (n) whose (centred or uncentred) second moment is
 * H = E[x xᵀ] (n, n); its columns are grouped into components (an FFN neuron: one column of W₂;
 * a head: its head_dim columns of W_o; a KV group: the columns of all its query heads). Removing
 * a set S of components and letting the kept columns K absorb what they can costs
 *
 *     cost(S) = min_{W'_K} E‖W x − W'_K x_K‖² = tr(W_S ((H̃⁻¹)_SS)⁻¹ W_Sᵀ),   H̃ = H + λI,
 *
 * with λ = ridge · mean diag H. Greedy selection removes, at each step, the component whose
 * removal increases the cost least *given the current, already-updated W* and the current
 * inverse of the kept set's H̃ (the OBS update W ← W − W_S ((H̃⁻¹)_SS)⁻¹ (H̃⁻¹)_{S,:} and the
 * matching downdate of H̃⁻¹), so later choices account for what the survivors absorbed from
 * earlier removals. Components of more than one column use exact block inverses. An optional
 * swap pass then tries, for each prefix k, the exchange of one removed and one kept component
 * that lowers prefix k's cost most, and keeps it when the summed cost of all the prefixes the
 * exchange changes drops: the curve's area never rises, single prefixes may (in one nested
 * order no exchange lowers every prefix, see engine/select.c). The cumulative costs along the order form the cost
 * curve: cost[k] = cost(first k removed), exact for the quadratic model (not a sum of
 * leave-one-out scores).
 *
 * Only the columns named by the components take part (others of H neither go nor absorb). If
 * H̃ is not numerically positive definite the ridge grows x10, at most three times.
 *
 * Units: H is normalised per token, so costs are mean squared output error per token, in the
 * units of W's output (the residual stream for W_o and W₂).
 *
 * Thread-safety: reentrant; inputs are only read.
 */
#ifndef CCE_SELECT_H
#define CCE_SELECT_H

#include <stdint.h>
#include "status.h"

/* Components of a covariance: component c owns the indices idx[off[c] .. off[c+1]) of the
 * covariance (and the same columns of the outgoing weight matrix w (d, n), ld ldw). */
typedef struct {
    int n_comp;
    const int *off;    // (n_comp + 1)
    const int *idx;    // (off[n_comp])
} cce_components;

/* The removal order of all n_comp components and the cumulative cost curve:
 *   H (n, n) row-major double, symmetric positive semidefinite;
 *   w (d, ·) row-major f32 with leading dimension ldw, columns indexed as in comps;
 *   order (n_comp): component removed at step k (first = first removed);
 *   cost (n_comp + 1): cost[0] = 0, cost[k] = cost of removing order[0..k).
 * swap_passes: 0 for plain greedy; > 0 runs that many swap sweeps over the prefixes.
 * cancel (may be NULL) is polled between steps (and between the inverse and the pieces of WᵀW
 * before them); non-zero stops with CCE_ECANCEL.
 * Errors: CCE_EINVAL for inconsistent components, CCE_ENOMEM. */
cce_status cce_select_obs(const double *H, int n, const cce_components *comps, const float *w, int d, int ldw,
                          double ridge, int swap_passes, int *order, double *cost,
                          int (*cancel)(void *user), void *user, cce_err *err);

/* cce_select_obs that also returns each component's leave-one-out cost (loo (n_comp), may be
 * NULL): loo[c] = tr(W_c ((H̃⁻¹)_cc)⁻¹ W_cᵀ), the cost of removing c alone with all others
 * absorbing (the first greedy step's candidate increments). */
cce_status cce_select_obs_loo(const double *H, int n, const cce_components *comps, const float *w, int d, int ldw,
                              double ridge, int swap_passes, int *order, double *cost, double *loo,
                              int (*cancel)(void *user), void *user, cce_err *err);

/* The exact cost of removing the set removed[0..n_removed) (component indices) by the formula
 * above, computed directly (one Schur complement, no greedy state): the reference that tests
 * compare cce_select_obs against, and what a brute-force subset search minimises. */
cce_status cce_select_cost(const double *H, int n, const cce_components *comps, const float *w, int d, int ldw,
                           double ridge, const int *removed, int n_removed, double *cost, cce_err *err);

/* ---- cost curves, as kept per analysed block and read by the planner (plan.h) ---- */

typedef enum {
    CCE_CURVE_NEURONS = 0,   // FFN neurons, OBS on W₂ over the FFN activation
    CCE_CURVE_HEADS,         // query heads, OBS on W_o over the per-head outputs (a KV head goes
                             // with the last query head that reads it)
    CCE_CURVE_RANK_WQ,       // low rank of each matrix (activation-aware SVD), in CCE_LIN_* order
    CCE_CURVE_RANK_WK,
    CCE_CURVE_RANK_WV,
    CCE_CURVE_RANK_WO,
    CCE_CURVE_RANK_W1,
    CCE_CURVE_RANK_W3,
    CCE_CURVE_RANK_W2,
    CCE_CURVE_DROP_ATTN,     // the attention sublayer removed (one step)
    CCE_CURVE_DROP_FFN,      // the feed-forward sublayer removed (one step)
    CCE_CURVE_DROP_BLOCK,    // the whole block removed (one step)
    CCE_CURVE_COUNT
} cce_curve_kind;

/* "neurons" "heads" "rank_wq" ... "drop_attn" "drop_ffn" "drop_block" */
const char *cce_curve_name(cce_curve_kind k);
/* The rank curve of linear CCE_LIN_k is CCE_CURVE_RANK_WQ + k. */
static inline cce_curve_kind cce_curve_rank_of(int lin) { return (cce_curve_kind)(CCE_CURVE_RANK_WQ + lin); }

/* One curve: what k steps along one kind of removal cost in one block, independently of the
 * block's other curves.
 *   n        steps (0: the kind does not exist in this block)
 *   order    (n) neurons / heads: the component removed at step k; ranks: the rank after step k
 *            (strictly decreasing, order[0] = the largest rank that saves parameters); drops: NULL
 *   cost     (n+1) mean squared output error per token after k steps; cost[0] = 0
 *   sim      (n+1) mean pairwise similarity among the retained components after k steps
 *            (neurons: |correlation|; heads: head CKA; ranks and drops: 0)
 *   nuc      (n+1) nuclear norm of the affected matrix after k steps (nuc[0]: the original)
 *   params   (n+1) parameters removed after k steps; params[0] = 0, non-decreasing */
typedef struct {
    int n;
    int *order;
    double *cost;
    double *sim;
    double *nuc;
    int64_t *params;
} cce_curve;

/* Allocate a curve of n steps (arrays zeroed; order only when with_order). */
cce_status cce_curve_alloc(cce_curve *c, int n, int with_order, cce_err *err);
void cce_curve_free(cce_curve *c);

#endif
