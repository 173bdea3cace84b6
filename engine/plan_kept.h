/*
 * plan_kept.h — (engine internal) what a block keeps under a plan: the one derivation of kept
 * heads, KV heads, the new head→KV map and kept neurons, shared by the plan's parameter counts
 * (plan.c) and the encoder (encode.c), so the two can never disagree.
 */
#ifndef CCE_PLAN_KEPT_H
#define CCE_PLAN_KEPT_H

#include "plan.h"

typedef struct {
    int attn, ffn;          // the sublayer exists after the plan
    int n_heads, n_kv;      // kept query heads / KV heads
    int *heads;             // (n_heads) source query heads kept, ascending
    int *kv;                // (n_kv) source KV heads kept, ascending
    int *head_kv;           // (n_heads) new KV index of each kept head, or NULL for the default grouping
    int hidden;
    int *neurons;           // (hidden) source neurons kept, ascending
    int rank[CCE_LIN_COUNT];// effective ranks (0: dense) for the kept shapes
    int out_bias[2];        // W_o / W₂ carry a bias after encoding (source bias, intercept or compensation)
} plan_kept;

/* Derive what block bp keeps of m's layer bp->block under encoding options enc; refits says
 * whether the encoder gives the block new tensors (plan_block_refits; biases it adds depend on
 * it). Arrays allocated (plan_kept_free). Fails with CCE_EINVAL naming the block and field when
 * an index is out of range. */
cce_status plan_kept_of(const cce_model *m, const cce_block_plan *bp, const cce_encode_opts *enc, int refits,
                        plan_kept *k, cce_err *err);
void plan_kept_free(plan_kept *k);
/* Parameters of the block after the plan (norms, linears at their ranks, biases). */
int64_t plan_kept_params(const cce_model *m, int layer, const plan_kept *k);
/* 1 when the encoder gives block l new tensors: anything of it removed or factored, LSQ with
 * refit_all, or LSQ with a sublayer the plan drops right after the block's last kept one (the
 * drop is folded into this block's down-projection). The plan's drop flags must be canonical
 * (cce_plan_finish sets them before it asks). */
int plan_block_refits(const cce_plan *p, const cce_model *m, int l);

#endif
