/*
 * model.h — a loaded transformer language model, architecture-neutral.
 *
 * One struct describes both families the engine runs: the Llama family (RMSNorm, RoPE, GQA,
 * SwiGLU, optional q/k/v biases) and GPT-2 (LayerNorm, learned positions, GELU, biases).
 * Shapes are per layer from the start, because compression changes them: a compressed block may
 * have fewer heads, a narrower FFN, low-rank factors instead of a dense matrix, or be dropped.
 *
 * Weights stay in their stored type (include/quant.h: f32, f16, bf16, q8_0, ...): a weight
 * matrix whose bytes in the file are usable as they are points straight into the read-only
 * mapping (never written); only what has to change layout (GPT-2's transposed Conv1D, a
 * misaligned f32 tensor) or type (norm vectors and biases, always f32) is converted once into
 * buffers owned by the model's arena. Readers never index a weight directly: they go through
 * cce_linear_rows / cce_linear_dense (f32 copies) or the forward pass's kernels.
 * The model is immutable after loading: forward passes only read it, so several threads may
 * share one model.
 *
 * Derived models (cce_model_derive): a compressed model starts as a copy of its source's
 * tables — every layer, norm and embedding pointer borrows the source's tensors — and the
 * encoder replaces the layers it changes with tensors it allocates from the derived model's own
 * arena (cce_model_alloc). Lifetime rule: the source must outlive every model derived from it;
 * cce_model_free on a derived model frees only what the derived model allocated.
 *
 * Empty sublayers: a layer with n_heads == 0 (and n_kv_heads == 0) has no attention sublayer,
 * one with hidden == 0 has no feed-forward sublayer; their linears are all zero-shaped and
 * their norms may be NULL. dropped == 1 is a block with neither (kept for its index).
 *
 * Conventions: every matrix is row-major (out, in): y = x W^T + b.
 */
#ifndef CCE_MODEL_H
#define CCE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "status.h"
#include "util.h"
#include "quant.h"

typedef enum { CCE_ARCH_LLAMA = 0, CCE_ARCH_GPT2 = 1 } cce_arch;
typedef enum { CCE_FMT_LLAMA2C = 0, CCE_FMT_GGUF, CCE_FMT_HF, CCE_FMT_SYNTH } cce_format;

/* A linear map y = x W^T + b with W of logical shape (out, in).
 * Dense:    w != NULL: (out, in) rows of `in` elements of type wt (row stride
 *           cce_wtype_row_bytes(wt, in)), rank == 0.
 * Low-rank: w == NULL, W = U V with u (out, rank), v (rank, in), both f32.
 * b is (out) f32 or NULL. out == in == 0: the linear does not exist (empty sublayer). */
typedef struct {
    int out, in;
    cce_wtype wt;      // storage type of w
    const void *w;     // (out, in) in wt, or NULL
    const float *b;    // (out) or NULL
    int rank;
    const float *u;    // (out, rank)
    const float *v;    // (rank, in)
} cce_linear;

typedef struct {
    int dropped;            // 1: the whole block is skipped (identity)
    int n_heads;            // query heads in this layer (<= cfg.n_heads); 0: no attention sublayer
    int n_kv_heads;         // KV heads in this layer (0 exactly when n_heads == 0)
    const int *head_kv;     // (n_heads): KV head of each query head, or NULL for h / (n_heads/n_kv_heads)
    int hidden;             // FFN width of this layer; 0: no feed-forward sublayer
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
    /* RoPE frequency remapping (Llama-3 long context, linear interpolation); all read through
     * cce_rope_inv_freq. Zero / NULL: plain theta^(-2j/d_h). */
    int rope_scaling;             // CCE_ROPE_SCALING_*
    float rope_factor;            // LINEAR, LLAMA3: the scaling factor (> 0)
    float rope_low_freq_factor;   // LLAMA3: low_freq_factor
    float rope_high_freq_factor;  // LLAMA3: high_freq_factor (> low_freq_factor)
    int rope_orig_ctx;            // LLAMA3: original_max_position_embeddings
    const float *rope_freq_div;   // (head_dim/2) per-pair divisors of the frequency (GGUF
                                  // rope_freqs.weight), owned by the model, or NULL
    int sliding_window;           // > 0: each token attends to at most this many positions
                                  // (Mistral); longer sequences are refused, see cce_rope_inv_freq
} cce_config;

/* RoPE scaling kinds of cce_config.rope_scaling. */
enum { CCE_ROPE_SCALING_NONE = 0, CCE_ROPE_SCALING_LINEAR = 1, CCE_ROPE_SCALING_LLAMA3 = 2 };

/* The rotation frequency of RoPE pair j (0 <= j < head_dim/2) in radians per position, in
 * double: base = theta^(-2j/d_h); LINEAR: base / factor; LLAMA3 (Hugging Face's
 * _compute_llama3_parameters): with wavelength λ = 2π/base, L = rope_orig_ctx,
 * λ < L/high_freq_factor -> base; λ > L/low_freq_factor -> base / factor; otherwise
 * (1 − s)·base/factor + s·base with s = (L/λ − low_freq_factor) / (high − low); then divided by
 * rope_freq_div[j] when present (llama.cpp's rope_freqs: θ_j / freq_factor_j). The one place both
 * forward passes get their angles from. */
double cce_rope_inv_freq(const cce_config *c, int j);

/* The longest sequence the model can run exactly: CCE_OK for n <= sliding_window (or any n
 * without one), else CCE_EUNSUPPORTED with a one-line message naming the window. Attention
 * within a window of W tokens equals full causal attention on sequences of at most W tokens. */
cce_status cce_config_check_positions(const cce_config *c, int n, cce_err *err);

typedef struct cce_arena_block cce_arena_block;

typedef struct cce_model {
    cce_config cfg;
    cce_format format;
    char *path;                 // what the user passed (file or directory)
    cce_layer *layers;          // (n_layers)
    cce_linear tok_emb;         // (vocab_size, dim) dense, any stored type: row t is token t's vector
    const float *pos_emb;       // GPT-2: (seq_len, dim); else NULL
    const float *final_norm;    // (dim)
    const float *final_norm_b;  // (dim) GPT-2 only
    cce_linear lm_head;         // (vocab_size, dim) dense; the same tensor as tok_emb when tied
    const struct cce_model *base;  // the model this one was derived from (borrowed), or NULL
    /* ownership */
    cce_mapped *maps;           // mapped files (n_maps)
    int n_maps;
    cce_arena_block *arena;     // owned buffers
} cce_model;

/* Allocate a zeroed model with n_layers layers; cfg copied. */
cce_status cce_model_new(const cce_config *cfg, cce_model **out, cce_err *err);
void cce_model_free(cce_model *m);

/* A new model that borrows every tensor of src (same config, format, path; layers copied by
 * value, so head_kv and all weight pointers are src's). The caller then replaces what it
 * changes with tensors from cce_model_alloc(*out, ...). src must outlive *out. */
cce_status cce_model_derive(const cce_model *src, cce_model **out, cce_err *err);

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
/* Bytes the weights of l occupy in memory (stored type; low-rank factors and bias in f32). */
uint64_t cce_linear_bytes(const cce_linear *l);
/* Bytes of all parameters of m as stored (embedding counted once when tied). */
uint64_t cce_model_bytes(const cce_model *m);

/* ---- reading weights (any storage type) ---- */

/* A dense f32 linear over w (out, in), no bias. */
static inline cce_linear cce_linear_of(int out, int in, const float *w) {
    cce_linear l = {.out = out, .in = in, .wt = CCE_WT_F32, .w = w};
    return l;
}
/* 1 when l exists (out > 0). */
static inline int cce_linear_present(const cce_linear *l) { return l->out > 0; }
/* The f32 weights of a dense f32 linear (no copy), else NULL. */
const float *cce_linear_f32(const cce_linear *l);
/* dst (n, in) = rows [r0, r0+n) of W in f32: dense rows decoded from their stored type, or
 * U[r0..r0+n) V for low-rank. The bias is not included. */
void cce_linear_rows(const cce_linear *l, int r0, int n, float *dst);
/* The whole W (out, in) in f32: *w is the stored data itself when dense f32 (*owned = NULL),
 * else a new buffer returned in *owned as well (cce_free it). */
cce_status cce_linear_dense(const cce_linear *l, const float **w, float **owned, cce_err *err);

/* ---- one place for what every module asks of a layer ---- */

/* KV head read by query head h of layer l (head_kv, or the default even grouping). */
static inline int cce_layer_kv_of(const cce_layer *l, int h) {
    return l->head_kv ? l->head_kv[h] : h / (l->n_heads / l->n_kv_heads);
}
/* The seven linears of a layer in the fixed order wq wk wv wo w1 w3 w2 (index = CCE_LIN_*). */
enum { CCE_LIN_WQ = 0, CCE_LIN_WK, CCE_LIN_WV, CCE_LIN_WO, CCE_LIN_W1, CCE_LIN_W3, CCE_LIN_W2, CCE_LIN_COUNT };
extern const char *const cce_lin_names[CCE_LIN_COUNT];   // "wq" "wk" "wv" "wo" "w1" "w3" "w2"
static inline cce_linear *cce_layer_lin(cce_layer *l, int k) {
    cce_linear *t[CCE_LIN_COUNT] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w1, &l->w3, &l->w2};
    return t[k];
}
static inline const cce_linear *cce_layer_lin_c(const cce_layer *l, int k) {
    return cce_layer_lin((cce_layer *)l, k);
}
/* Check one layer's shapes against the config (heads, KV map, linear shapes, norms present
 * for the sublayers that exist). what names the model for the message. */
cce_status cce_layer_check(const cce_model *m, int layer, const char *what, cce_err *err);

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
