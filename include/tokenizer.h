/*
 * tokenizer.h — BPE tokenizers: llama2.c/SentencePiece-style and Hugging Face tokenizer.json.
 *
 * Two kinds, one interface:
 *  - CCE_TOK_SP: character-level BPE with byte fallback <0xXX> (or <unk>). As in llama2.c
 *    (tokenizer.bin, GGUF "llama" metadata: a dummy-prefix space, the adjacent pair whose
 *    concatenation has the best score merges first), or from a tokenizer.json by merge rank:
 *    the Llama-2 normalizer form, a Metaspace pre-tokenizer, or plain BPE over the raw text
 *    (no normalizer, no pre-tokenizer).
 *  - CCE_TOK_BYTELEVEL: byte-level BPE (GPT-2 family) from tokenizer.json or GGUF "gpt2"
 *    metadata: a pre-tokenisation regex (GPT-2, Llama-3 or Qwen2, optionally after a Digits
 *    split), the bytes_to_unicode alphabet, merges by rank, ignore_merges (Llama-3).
 * tokenizer.json added tokens are matched as Hugging Face matches them (before BPE, leftmost-
 * longest, with their lstrip / rstrip / single_word / normalized options). What is refused, and
 * the exact semantics, are in engine/tokenizer_hf.c. Pieces are stored as raw bytes (spaces as
 * real spaces, byte tokens as their byte). A tokenizer is immutable once built: any number of
 * threads may encode and decode with it at once.
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
/* Hugging Face tokenizer.json (BPE: byte-level, SentencePiece-style or plain). The file is read
 * whole (at most 512 MB) and validated completely; a pipeline we do not reproduce exactly is
 * CCE_EUNSUPPORTED with one line naming the file and the component, a malformed file
 * CCE_EFORMAT naming the field. *out is NULL on error. */
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
/* A short fixed description of the form ("byte-level BPE, Llama-3 regex", "BPE over the raw
 * text, byte fallback", ...) for `cce info`; a static string. */
const char *cce_tokenizer_form(const cce_tokenizer *t);
int cce_tokenizer_vocab_size(const cce_tokenizer *t);
int cce_tokenizer_bos(const cce_tokenizer *t);   /* -1 if none */
int cce_tokenizer_eos(const cce_tokenizer *t);   /* -1 if none */

/* Encode len bytes of text (any bytes: invalid UTF-8 falls back to byte tokens). add_bos:
 * prepend BOS (if the tokenizer has one). A llama2.c / GGUF SP vocabulary adds the dummy-prefix
 * space when the text is non-empty. *ids is allocated (cce_free); *n set. EINVAL when a byte
 * has no token and no <unk> (llama2.c / GGUF vocabularies; a tokenizer.json one drops such a
 * character, as Hugging Face does), ENOMEM. */
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

/* Build a byte-level BPE tokenizer from GGUF metadata of tokenizer.ggml.model "gpt2" (the GGUF
 * loader calls this for that model name): pieces[i] (lens[i] bytes) = tokenizer.ggml.tokens in
 * bytes_to_unicode form; types = tokenizer.ggml.token_type as for build_sp (may be NULL; 3
 * control and 4 user-defined are matched in the raw text before BPE, 5 unused is skipped);
 * merges[k] = tokenizer.ggml.merges[k], "left right" (merge_lens[k] bytes), in rank order;
 * pre = tokenizer.ggml.pre: NULL, "default", "gpt-2", "gpt2" (GPT-2 regex), "llama3",
 * "llama-v3", "llama-bpe" (Llama-3 regex, ignore_merges), "qwen2" (Qwen2 regex), "smollm"
 * (single digits, then the GPT-2 regex); any other name is CCE_EUNSUPPORTED, one line naming it.
 * bos_id: the BOS encode adds (-1 when tokenizer.ggml.add_bos_token is false); eos_id: -1 if
 * none. Validated as a tokenizer.json would be (messages name `what` and the tokenizer.json
 * field: model.vocab is tokenizer.ggml.tokens, model.merges tokenizer.ggml.merges). Copies
 * everything; *out is NULL on error. */
cce_status cce_tokenizer_build_bpe(int n, const char *const *pieces, const size_t *lens,
                                   const int32_t *types, size_t n_merges,
                                   const char *const *merges, const size_t *merge_lens,
                                   const char *pre, int bos_id, int eos_id, const char *what,
                                   cce_tokenizer **out, cce_err *err);

#endif
