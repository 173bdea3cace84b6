/*
 * model.h — a loaded transformer language model, architecture-neutral.
 *
 * One struct describes both families the engine runs: the Llama family (RMSNorm, RoPE, GQA,
 * SwiGLU, optional q/k/v biases) and GPT-2 (LayerNorm, learned positions, GELU, biases).
 * Shapes are per layer from the start, because compression changes them: a compressed block may
 * have fewer heads, a narrower FFN, low-rank factors instead of a dense matrix, or be dropped.
 *
 * Weights are f32. Tensors stored as f32 in a little-endian file with 4-byte alignment point
 * straight into the read-only mapping (never written); all others (f16, bf16, q8_0, GPT-2's
 * transposed Conv1D layout) are converted once into buffers owned by the model's arena.
 * The model is immutable after loading: forward passes only read it, so several threads may
 * share one model.
 *
 * Conventions: every matrix is row-major (out, in): y = x W^T + b.
 */
#ifndef CCE_MODEL_H
#define CCE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"
#include "util.h"

typedef enum { CCE_ARCH_LLAMA = 0, CCE_ARCH_GPT2 = 1 } cce_arch;
typedef enum { CCE_FMT_LLAMA2C = 0, CCE_FMT_GGUF, CCE_FMT_HF, CCE_FMT_SYNTH } cce_format;

/* A linear map y = x W^T + b with W of logical shape (out, in).
 * Dense:    w != NULL (out, in), rank == 0.
 * Low-rank: w == NULL, W = U V with u (out, rank), v (rank, in).
 * b is (out) or NULL. */
typedef struct {
    int out, in;
    const float *w;    // (out, in)
    const float *b;    // (out) or NULL
    int rank;
    const float *u;    // (out, rank)
    const float *v;    // (rank, in)
} cce_linear;

typedef struct {
    int dropped;            // 1: the whole block is skipped (identity)
    int n_heads;            // query heads in this layer (<= cfg.n_heads)
    int n_kv_heads;         // KV heads in this layer
    const int *head_kv;     // (n_heads): KV head of each query head, or NULL for h / (n_heads/n_kv_heads)
    int hidden;             // FFN width of this layer
    const float *attn_norm, *attn_norm_b;   // (dim); _b only for LayerNorm (GPT-2)
    const float *ffn_norm, *ffn_norm_b;     // (dim)
    cce_linear wq;          // (n_heads*head_dim, dim)
    cce_linear wk, wv;      // (n_kv_heads*head_dim, dim)
    cce_linear wo;          // (dim, n_heads*head_dim)
    cce_linear w1;          // Llama: gate (hidden, dim); GPT-2: c_fc (hidden, dim)
    cce_linear w3;          // Llama: up (hidden, dim); GPT-2: unused (w == NULL, out == 0)
    cce_linear w2;          // down (dim, hidden); also may carry an added bias from encoding
} cce_layer;

typedef struct {
    cce_arch arch;
    int dim;            // model width d
    int n_layers;
    int n_heads;        // query heads of the original model
    int n_kv_heads;
    int head_dim;       // d_h (dim / n_heads unless the config says otherwise)
    int hidden_dim;     // original FFN width
    int vocab_size;
    int seq_len;        // training / maximum context
    float norm_eps;     // RMSNorm / LayerNorm epsilon
    float rope_theta;
    int rope_interleaved; // 1: rotate adjacent pairs (2i, 2i+1) (llama2.c, GGUF); 0: HF half rotation (i, i+d_h/2)
    int tied;           // lm_head shares tok_emb
    int bos_id, eos_id; // -1 when unknown
} cce_config;

typedef struct cce_arena_block cce_arena_block;

typedef struct cce_model {
    cce_config cfg;
    cce_format format;
    char *path;                 // what the user passed (file or directory)
    cce_layer *layers;          // (n_layers)
    const float *tok_emb;       // (vocab_size, dim)
    const float *pos_emb;       // GPT-2: (seq_len, dim); else NULL
    const float *final_norm;    // (dim)
    const float *final_norm_b;  // (dim) GPT-2 only
    const float *lm_head;       // (vocab_size, dim); == tok_emb when tied
    /* ownership */
    cce_mapped *maps;           // mapped files (n_maps)
    int n_maps;
    cce_arena_block *arena;     // owned buffers
} cce_model;

/* Allocate a zeroed model with n_layers layers; cfg copied. */
cce_status cce_model_new(const cce_config *cfg, cce_model **out, cce_err *err);
void cce_model_free(cce_model *m);

/* Arena allocation owned by the model (freed with it). Overflow-checked; NULL on failure. */
void *cce_model_alloc(cce_model *m, size_t n, size_t size);
/* Keep a mapping alive for the lifetime of the model (takes ownership of *map). */
cce_status cce_model_adopt_map(cce_model *m, cce_mapped *map, cce_err *err);

/* Check the config and every layer's shapes for internal consistency (dims positive, heads
 * divide, per-layer linear shapes match). Used by every loader after it fills a model. */
cce_status cce_model_validate(const cce_model *m, const char *what, cce_err *err);

/* Parameter counts. Non-embedding = everything except tok_emb and lm_head (a tied head counts
 * once, with the embedding); pos_emb counts as embedding too. */
typedef struct {
    int64_t total;
    int64_t embedding;      // tok_emb + pos_emb + untied lm_head
    int64_t non_embedding;
} cce_param_count;
cce_param_count cce_model_params(const cce_model *m);
int64_t cce_layer_params(const cce_model *m, int layer);
int64_t cce_linear_params(const cce_linear *l);

/* Options for opening a model from a path. */
typedef struct {
    const char *tokenizer_path;  // NULL: beside the model (tokenizer.bin / tok512.bin for llama2.c,
                                 // metadata for GGUF, tokenizer.json for HF)
    int no_tokenizer;            // 1: do not load a tokenizer
} cce_open_opts;

struct cce_tokenizer;
/* Detect the format (directory -> HF, GGUF magic -> GGUF, else llama2.c) and load model and
 * tokenizer. *tok may be NULL on return if opts->no_tokenizer. */
cce_status cce_model_open(const char *path, const cce_open_opts *opts, cce_model **model,
                          struct cce_tokenizer **tok, cce_err *err);

/* Format loaders (engine/formats/). Each validates completely before trusting. */
cce_status cce_load_llama2c(const char *path, cce_model **out, cce_err *err);
cce_status cce_load_gguf(const char *path, cce_model **out, struct cce_tokenizer **tok, cce_err *err);
cce_status cce_load_hf(const char *dir, cce_model **out, cce_err *err);

const char *cce_arch_name(cce_arch a);
const char *cce_format_name(cce_format f);

#endif
