/*
 * forward.h — the batched forward pass, its activation taps, and KV-cached decoding.
 *
 * Prefill-style: a batch is n_seq independent sequences of seq_len tokens each (positions
 * 0..seq_len-1 in every sequence), held as one (n_seq*seq_len, dim) row-major matrix; every
 * linear layer is one cblas_sgemm over all rows; attention is causal within each sequence.
 * The pass is exposed block by block so calibration can run block ℓ over the whole calibration
 * batch, accumulate statistics from the taps, then move on, keeping only the hidden states.
 *
 * Cancellation: the batched pass polls cce_interrupted() (util.h: the calling thread's cancel
 * scope, else the process default) before each sublayer and between its products, and once per
 * LM-head chunk; the decoder polls it before each layer. They then return CCE_ECANCEL, leaving
 * h (batched) or the decoder's filled positions as they were.
 *
 * Thread-safety: a cce_fwd is used by one thread at a time; the model is read-only and shared.
 */
#ifndef CCE_FORWARD_H
#define CCE_FORWARD_H

#include "model.h"

typedef enum {
    CCE_TAP_ATTN_IN = 0, // normalised attention input         (rows, dim)
    CCE_TAP_HEADS,       // concatenated per-head outputs, before W_o (rows, n_heads*head_dim)
    CCE_TAP_ATTN_OUT,    // attention output after W_o (+bias)  (rows, dim)
    CCE_TAP_FFN_IN,      // normalised FFN input                (rows, dim)
    CCE_TAP_FFN_ACT,     // FFN intermediate act(x W1^T) ⊙ (x W3^T), GPT-2: gelu(x W1^T + b) (rows, hidden)
    CCE_TAP_BLOCK_OUT,   // residual stream after the block     (rows, dim)
    CCE_TAP_COUNT
} cce_tap_site;

const char *cce_tap_site_name(cce_tap_site s);

typedef struct {
    int layer;
    cce_tap_site site;
    const float *x;   // (rows, cols), leading dimension ld
    int rows, cols, ld;
    int n_seq, seq_len;  // rows == n_seq*seq_len
} cce_tap;

/* Called synchronously inside cce_fwd_block for each site. Return 0 to continue, non-zero
 * to cancel (the block returns CCE_ECANCEL). The data is only valid during the call. */
typedef int (*cce_tap_fn)(void *user, const cce_tap *tap);

typedef struct cce_fwd cce_fwd;

/* Scratch for batches of up to max_rows = n_seq*seq_len rows and sequences up to max_seq_len. */
cce_status cce_fwd_new(const cce_model *m, int max_rows, int max_seq_len, cce_fwd **out, cce_err *err);
void cce_fwd_free(cce_fwd *f);

/* h (n_seq*seq_len, dim) = token (+ position) embeddings of ids (n_seq*seq_len). Ids are
 * checked against the vocabulary. */
cce_status cce_fwd_embed(cce_fwd *f, const int *ids, int n_seq, int seq_len, float *h, cce_err *err);

/* Apply block `layer` in place to h (n_seq*seq_len, dim). A dropped block is the identity and
 * reports only CCE_TAP_BLOCK_OUT. tap may be NULL. */
cce_status cce_fwd_block(cce_fwd *f, int layer, float *h, int n_seq, int seq_len,
                         cce_tap_fn tap, void *user, cce_err *err);

/* One sublayer of block `layer` in place on h: ffn == 0 the attention sublayer (h += attn(norm(h)),
 * taps ATTN_IN, HEADS, ATTN_OUT), ffn == 1 the feed-forward sublayer (h += ffn(norm(h)), taps
 * FFN_IN, FFN_ACT). A sublayer the layer lacks (or a dropped block) leaves h as it is.
 * cce_fwd_block is the two in order followed by the BLOCK_OUT tap. */
cce_status cce_fwd_sublayer(cce_fwd *f, int layer, int ffn, float *h, int n_seq, int seq_len,
                            cce_tap_fn tap, void *user, cce_err *err);

/* out (rows, dim) = the normalised input a sublayer of `layer` would see for h (rows, dim):
 * the attention norm (ffn == 0) or the FFN norm (ffn == 1). Fails when the sublayer is absent. */
cce_status cce_fwd_norm_input(cce_fwd *f, int layer, int ffn, const float *h, int rows, float *out, cce_err *err);

/* Final norm + LM head + log-softmax over h; adds to *sum_nll the negative log-likelihood of
 * ids[r+1] at every row r that is not the last of its sequence (seq_len-1 predictions per
 * sequence) and to *count the number of predictions. ids as given to cce_fwd_embed. */
cce_status cce_fwd_nll(cce_fwd *f, const float *h, const int *ids, int n_seq, int seq_len,
                       double *sum_nll, long *count, cce_err *err);

/* Final norm + LM head for rows of h: logits (rows, vocab). */
cce_status cce_fwd_logits(cce_fwd *f, const float *h, int rows, float *logits, cce_err *err);

/* Whole-model convenience: mean NLL over n_seq sequences of ids. */
cce_status cce_fwd_sequences_nll(cce_fwd *f, const int *ids, int n_seq, int seq_len,
                                 double *sum_nll, long *count, cce_err *err);
/* The same, also adding to *correct the predictions whose argmax (first on ties) is the target. */
cce_status cce_fwd_sequences_nll_acc(cce_fwd *f, const int *ids, int n_seq, int seq_len,
                                     double *sum_nll, long *count, long *correct, cce_err *err);

/* KV-cached incremental decoding of one sequence. */
typedef struct cce_decoder cce_decoder;
cce_status cce_decoder_new(const cce_model *m, int max_seq_len, cce_decoder **out, cce_err *err);
void cce_decoder_free(cce_decoder *d);
/* Threads the decoder's large products run on (1 when it has no pool). */
int cce_decoder_threads(const cce_decoder *d);
/* How q8_0 weights are multiplied. Default (exact == 0): by the activation quantised to int8
 * per block of 32, as llama.cpp does (VNNI int8 dot products; each product's error is bounded
 * in kernels.h; test_forward states what it does to the logits). exact == 1: by the f32
 * activation, which gives the batched pass's logits to float rounding. Other types are
 * unaffected. */
void cce_decoder_set_exact(cce_decoder *d, int exact);
/* Feed ids[0..n) at positions 0..n-1, restarting the cache: the batched pass over the whole
 * prompt (GEMMs, where n steps would be n matrix-vector passes over every weight), which also
 * writes every layer's keys and values into the cache; logits (vocab) for the token after
 * ids[n-1]. Steps continue at position n. The same logits as n cce_decoder_step calls to float
 * rounding (for q8_0 weights: as the exact mode's, see cce_decoder_set_exact). Allocates the
 * batched pass's scratch for n rows for the duration of the call. n <= the cache's length. */
cce_status cce_decoder_prefill(cce_decoder *d, const int *ids, int n, float *logits, cce_err *err);
/* Feed token at position pos (0, 1, 2, ... in order); logits (vocab) for the next token. */
cce_status cce_decoder_step(cce_decoder *d, int token, int pos, float *logits, cce_err *err);

/* Index of the largest of n values (the first one on ties). */
int cce_argmax(const float *x, int n);

/* Greedy continuation: ids[0] is the start token; fills ids[1..n-1] with the argmax next token at
 * each step (no stop token). Allocates its own decoder and logits. */
cce_status cce_greedy_ids(const cce_model *m, int *ids, int n, cce_err *err);

/* Slow, obvious reference forward of one sequence (no BLAS, token by token, for tests):
 * logits (T, vocab). Also calls tap per site with rows = T, like the fast path. */
cce_status cce_ref_forward(const cce_model *m, const int *ids, int T, float *logits,
                           cce_tap_fn tap, void *user, cce_err *err);

#endif
