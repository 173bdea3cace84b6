/*
 * encode.h — structured encoding: a plan's decisions turned into the weights of a compressed
 * model, by one sequential pass over calibration tokens (DESIGN §3.5–3.6).
 *
 * The compressed model is derived from the source (model.h: cce_model_derive): blocks the pass
 * changes own new f32 tensors, the others borrow the source's. The pass runs the dense model
 * and the compressed one side by side over the calibration batch, sublayer by sublayer:
 *  - input side (q/k/v and gate/up rows that are kept, with refit_inputs): least squares from
 *    the compressed stream's normalised input X̃ to the dense pre-activations X W₀ᵀ,
 *      Wᵀ = (X̃ᵀX̃ + λI)⁻¹ X̃ᵀX W₀ᵀ;
 *  - output side (W_o over the kept heads, W₂ over the kept neurons): least squares from the
 *    compressed sublayer's activations A to the target T = D − h̃, where h̃ is the compressed
 *    residual stream entering the sublayer and D the dense residual stream after this sublayer
 *    *and after every sublayer the plan drops before the next kept one* — so a dropped block's
 *    (or sublayer's) update is folded into the previous kept down-projection and no parameter
 *    is added, and each refit also corrects the error the earlier compressed blocks left in the
 *    stream; with an intercept the means go into a bias;
 *  - low rank (rank r of a matrix): the reduced-rank least-squares solution W_r = U_r U_rᵀ W,
 *    U_r the top-r eigenvectors of W S Wᵀ with S the second moment of the matrix's input on the
 *    compressed stream (whitened: output error minimised; CCE_LOWRANK_PLAIN uses S = I).
 * λ = ridge · mean diagonal of the Gram matrix of each solve. Redistribution none removes the
 * components and drops what the plan drops, nothing else; bias adds FLAP's compensation.
 *
 * Memory: the dense and compressed residual streams (rows, dim), one chunk of forward scratch,
 * one sublayer's Gram and cross matrices (hidden², hidden × dim), never the whole model twice.
 * Deterministic: the same model, plan, calibration tokens and BLAS thread count give
 * bit-identical weights.
 *
 * Thread-safety: one call per thread; the source model is only read.
 */
#ifndef CCE_ENCODE_H
#define CCE_ENCODE_H

#include <stddef.h>
#include "plan.h"

/* Progress: done/total sublayers and the phase; return non-zero to cancel (-> CCE_ECANCEL). */
typedef int (*cce_encode_progress_fn)(void *user, int done, int total, const char *phase);

/* Build *out, the compressed model of plan p applied to m, with the options p->enc from the
 * calibration token stream ids (n): p->enc.tokens tokens in windows of p->enc.seq_len (or the
 * plan's calibration seq_len) chosen with p->enc.seed, as in calib.h. p must have been finished
 * (cce_plan_finish) for m. *out borrows from m: free it before m. */
cce_status cce_encode(const cce_model *m, const cce_plan *p, const int *ids, size_t n,
                      cce_encode_progress_fn progress, void *user, cce_model **out, cce_err *err);

/* The same from the plan's calibration file: reads p->calib.path (or calib_path when not NULL),
 * refuses it when its SHA-256 differs from p->calib.sha256 (when the plan records one), encodes
 * it with tok by the evaluation protocol and calls cce_encode. */
struct cce_tokenizer;
cce_status cce_encode_calib(const cce_model *m, const struct cce_tokenizer *tok, const cce_plan *p,
                            const char *calib_path, cce_encode_progress_fn progress, void *user, cce_model **out,
                            cce_err *err);

#endif
