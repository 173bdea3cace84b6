/*
 * calib.h — the calibration batch, run through the model block by block.
 *
 * The calibration text is tokenised with the evaluation protocol (cce_text_tokens, include/
 * eval.h: documents split at blank lines, each encoded with BOS, concatenated). From the
 * floor(n / seq_len) non-overlapping windows of seq_len tokens, n_seq = tokens / seq_len are
 * chosen by a seeded RNG (partial Fisher-Yates) and sorted by position, so the same seed gives
 * the same batch. The batch is held as ids (n_seq*seq_len) and hidden states h
 * (n_seq*seq_len, dim); cce_calib_block applies the next block in place to h, a chunk of whole
 * sequences at a time (bounded forward scratch), calling the tap for every site of every chunk.
 * Memory: the ids, h and the forward scratch of one chunk. Nothing else is kept.
 *
 * Thread-safety: one thread at a time per cce_calib; the model is only read.
 */
#ifndef CCE_CALIB_H
#define CCE_CALIB_H

#include <stddef.h>
#include <stdint.h>
#include "forward.h"
#include "tokenizer.h"

typedef struct {
    long tokens;       // wanted calibration tokens; n_seq = tokens / seq_len (at least 1)
    int seq_len;       // tokens per sequence, 1..model seq_len
    uint64_t seed;     // which windows
    int chunk_rows;    // rows per forward call (rounded down to whole sequences); 0: 2048
} cce_calib_opts;

typedef struct {
    const cce_model *model;
    int n_seq, seq_len, rows, dim;   // rows = n_seq * seq_len
    int *ids;          // (rows) token ids of the chosen windows, sequence-major
    size_t *starts;    // (n_seq) offset of each window in the token stream
    float *h;          // (rows, dim) hidden states after `layer` blocks
    int layer;         // blocks applied so far (0: embeddings)
    int chunk_seqs;    // sequences per forward call
    int chunk_row0;    // first row of the chunk whose taps are being reported (valid in a tap)
    cce_fwd *fwd;
} cce_calib;

/* Tokenise a calibration text with the evaluation protocol, in pieces of about chunk_bytes
 * (0: 64 KiB) cut only after blank lines, so the stream is identical to cce_text_tokens on the
 * whole text; stop (may be NULL) is asked between pieces and a non-zero answer ends with
 * CCE_ECANCEL. *ids allocated (cce_free). */
cce_status cce_calib_text_tokens(const cce_tokenizer *tok, const char *text, size_t len, size_t chunk_bytes,
                                 int (*stop)(void *user), void *user, int **ids, size_t *n, cce_err *err);

/* Choose n_seq of the floor(n_ids / seq_len) non-overlapping windows with a seeded RNG;
 * starts (n_seq) receives their token offsets in increasing order. Fails with CCE_EINVAL
 * when there are fewer windows than n_seq. */
cce_status cce_calib_windows(size_t n_ids, int seq_len, int n_seq, uint64_t seed, size_t *starts,
                             cce_err *err);

/* Build the batch from a token stream (ids, n_ids) and embed it (layer 0). When the stream has
 * fewer windows than tokens/seq_len, uses all of them; fails when it has none. ids are copied. */
cce_status cce_calib_new(const cce_model *m, const int *ids, size_t n_ids, const cce_calib_opts *opts,
                         cce_calib **out, cce_err *err);
void cce_calib_free(cce_calib *c);

/* Apply block c->layer to h over all chunks, calling tap (may be NULL) for each site, then
 * advance c->layer. CCE_ECANCEL when the tap asked to stop (h is then partly updated). */
cce_status cce_calib_block(cce_calib *c, cce_tap_fn tap, void *user, cce_err *err);

/* Read a calibration text: a file, or a directory whose regular files (not starting with '.')
 * are concatenated in name order, separated by a blank line. sha (may be NULL) receives the
 * SHA-256 of the bytes returned. *text is NUL-terminated (cce_free). */
cce_status cce_calib_read_text(const char *path, char **text, size_t *len, char sha[65], cce_err *err);

#endif
