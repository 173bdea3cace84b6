/*
 * eval.h — perplexity of a model on a text, by one fixed, documented protocol.
 *
 * The protocol (the same one the reference figures in shared/data/SOURCES.md were made with):
 *   1. CRLF -> LF.
 *   2. Split into documents at blank lines ("\n\n").
 *   3. Strip each document of leading/trailing whitespace (space, tab, CR, LF, VT, FF); skip
 *      empty ones.
 *   4. Encode each as BOS + tokens and concatenate. A tokenizer without BOS (GPT-2's) starts
 *      each document with EOS instead (<|endoftext|>, GPT-2's document separator).
 *   5. Optionally keep only the first max_tokens tokens of the stream.
 *   6. Cut the stream into non-overlapping windows of seq_len tokens; drop the last partial one.
 *   7. loss = mean next-token NLL (nats) over every predicted position: seq_len-1 per window
 *      (a window's first token is context only). ppl = exp(loss). accuracy = the share of the
 *      same predictions whose most likely token (argmax, first on ties) is the next token.
 * Windows are independent sequences (positions restart at 0), evaluated batch_seqs at a time
 * with the batched forward pass.
 */
#ifndef CCE_EVAL_H
#define CCE_EVAL_H

#include <stddef.h>
#include "status.h"
#include "model.h"
#include "tokenizer.h"

/* Steps 1-4: the protocol's token stream of len bytes of text. *ids allocated (cce_free).
 * Fails with CCE_EINVAL if the tokenizer has neither BOS nor EOS. */
cce_status cce_text_tokens(const cce_tokenizer *tok, const char *text, size_t len, int **ids,
                           size_t *n, cce_err *err);

typedef struct {
    double loss, ppl;       // mean NLL (nats/token) and exp(loss)
    double accuracy;        // share of predictions whose argmax (first on ties) is the next token
    long tokens;            // tokens in the stream that was evaluated (after max_tokens)
    long windows;           // full windows evaluated
    long predictions;       // windows * (seq_len - 1)
    int seq_len;
    double seconds;         // wall time of the forward passes
    double tokens_per_s;    // windows*seq_len / seconds
} cce_eval_result;

/* Progress callback: done/total windows; return non-zero to cancel (-> CCE_ECANCEL). */
typedef int (*cce_eval_progress_fn)(void *user, long done, long total);

/* Steps 6-7 over ids (n). seq_len >= 2 (and <= cfg.seq_len for GPT-2). batch_seqs <= 0 picks
 * a batch of about 2048 tokens. progress may be NULL. Fails with CCE_EINVAL when the stream
 * holds no full window. Thread-safety: model read-only; one call uses its own scratch. */
cce_status cce_eval_ids(const cce_model *m, const int *ids, size_t n, int seq_len, int batch_seqs,
                        cce_eval_progress_fn progress, void *user, cce_eval_result *res, cce_err *err);

/* The whole protocol on a text buffer: cce_text_tokens, keep max_tokens (0: all), cce_eval_ids. */
cce_status cce_eval_text(const cce_model *m, const cce_tokenizer *tok, const char *text, size_t len,
                         int seq_len, long max_tokens, int batch_seqs, cce_eval_progress_fn progress,
                         void *user, cce_eval_result *res, cce_err *err);

/* KV-cached greedy decoding speed: the best of `repeats` runs of n_tokens steps from BOS (EOS
 * when there is none), decoder setup included, tokens per second. Measured, never asserted. */
cce_status cce_decode_speed(const cce_model *m, int n_tokens, int repeats, double *tokens_per_s, cce_err *err);

#endif
