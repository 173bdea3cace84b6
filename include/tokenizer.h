/*
 * tokenizer.h — BPE tokenizers: llama2.c/SentencePiece-style and Hugging Face tokenizer.json.
 *
 * Three kinds, one interface:
 *  - CCE_TOK_SP: SentencePiece-style BPE as in llama2.c: dummy-prefix space, greedy merging of
 *    the adjacent pair whose concatenation has the best score, byte fallback <0xXX>. Loaded from
 *    llama2.c tokenizer.bin, from GGUF metadata (pieces use U+2581 for space), or from a
 *    tokenizer.json of the Llama-2 family (model.type BPE with byte_fallback; merges by rank).
 *  - CCE_TOK_BYTELEVEL: GPT-2 byte-level BPE from tokenizer.json (pre-tokenisation regex,
 *    bytes-to-unicode table, merges by rank).
 * Pieces are stored as raw bytes (spaces as real spaces, byte tokens as their byte).
 */
#ifndef CCE_TOKENIZER_H
#define CCE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"

typedef enum { CCE_TOK_SP = 0, CCE_TOK_BYTELEVEL = 1 } cce_tok_kind;

typedef struct cce_tokenizer cce_tokenizer;

/* llama2.c tokenizer.bin: int32 max_token_length, then per token: f32 score, i32 len, bytes.
 * vocab_size comes from the model (the file has no count). */
cce_status cce_tokenizer_load_llama2c(const char *path, int vocab_size, cce_tokenizer **out, cce_err *err);
/* Hugging Face tokenizer.json (BPE, byte-level or SentencePiece-style with byte fallback). */
cce_status cce_tokenizer_load_hf(const char *path, cce_tokenizer **out, cce_err *err);
/* Build an SP tokenizer from arrays (GGUF metadata). pieces[i] has lens[i] bytes and may use
 * U+2581 for space (converted). types may be NULL (GGUF token_type: 1 normal, 2 unknown,
 * 3 control, 6 byte). what names the source for errors. Copies everything. */
cce_status cce_tokenizer_build_sp(int n, const char *const *pieces, const size_t *lens,
                                  const float *scores, const int32_t *types,
                                  int bos_id, int eos_id, int unk_id, const char *what,
                                  cce_tokenizer **out, cce_err *err);
void cce_tokenizer_free(cce_tokenizer *t);

cce_tok_kind cce_tokenizer_kind(const cce_tokenizer *t);
int cce_tokenizer_vocab_size(const cce_tokenizer *t);
int cce_tokenizer_bos(const cce_tokenizer *t);   /* -1 if none */
int cce_tokenizer_eos(const cce_tokenizer *t);   /* -1 if none */

/* Encode len bytes of text. add_bos: prepend BOS (if the tokenizer has one). The SP kind adds
 * the dummy-prefix space when the text is non-empty. *ids is allocated (cce_free); *n set. */
cce_status cce_tokenizer_encode(const cce_tokenizer *t, const char *text, size_t len, int add_bos,
                                int **ids, size_t *n, cce_err *err);

/* Decode one token following prev into bytes written to buf (NUL-terminated, cap bytes);
 * SP: strips the leading space after BOS, renders <0xXX> as the byte. Returns bytes written. */
size_t cce_tokenizer_decode(const cce_tokenizer *t, int prev, int id, char *buf, size_t cap);

/* Raw piece bytes of id (not NUL-terminated), and its score; NULL for out-of-range ids. */
const char *cce_tokenizer_piece(const cce_tokenizer *t, int id, size_t *len);
float cce_tokenizer_score(const cce_tokenizer *t, int id);

/* Offset of the first byte of s[0..len) that is not part of valid UTF-8 (a stray or missing
 * continuation byte, an overlong form, a surrogate, a codepoint above U+10FFFF), or len when the
 * whole text is valid. Encoding accepts any bytes (invalid ones fall back to byte tokens); a
 * front end uses this to warn that the text is not what a reference tokenizer would accept. */
size_t cce_tokenizer_utf8_check(const char *s, size_t len);

/* Write a tokenizer.json equivalent to this tokenizer (loads back with identical encodings). */
cce_status cce_tokenizer_save_hf(const cce_tokenizer *t, const char *path, cce_err *err);

/* Build a byte-level BPE tokenizer from GGUF metadata of tokenizer.ggml.model "gpt2": pieces[i]
 * (lens[i] bytes) in bytes_to_unicode form, types as for build_sp (may be NULL; 3 = control,
 * matched in the text before BPE), merges[k] = "left right" (merge_lens[k] bytes) in rank order,
 * pre = tokenizer.ggml.pre: NULL, "default", "gpt-2" (GPT-2 regex), "llama3", "llama-v3",
 * "llama-bpe" (Llama-3 regex), "qwen2" (Qwen2 regex), "smollm" (digits, then GPT-2 regex); any
 * other name is CCE_EUNSUPPORTED. bos_id: the BOS encode adds (-1 when add_bos_token is false).
 * Copies everything; errors name `what`. */
cce_status cce_tokenizer_build_bpe(int n, const char *const *pieces, const size_t *lens,
                                   const int32_t *types, size_t n_merges,
                                   const char *const *merges, const size_t *merge_lens,
                                   const char *pre, int bos_id, int eos_id, const char *what,
                                   cce_tokenizer **out, cce_err *err);

#endif
