/*
 * export.h — write a loaded (possibly compressed) model as a Hugging Face directory, or as a
 * GGUF file (cce_export_gguf, at the end; implemented in engine/formats/gguf_write.c).
 *
 * Output: config.json, model.safetensors (F32 unless asked otherwise) and, when a tokenizer is given, tokenizer.json.
 * `cce` loads the directory back (cce_load_hf) with the same weights and the same evaluation
 * results; when the model is expressible in a standard config (no dropped blocks, uniform
 * shapes, dense weights) Hugging Face transformers loads it too.
 *
 * Conventions of the written files:
 *  - Llama family: "architectures": ["LlamaForCausalLM"] (or "Qwen2ForCausalLM" when the only
 *    biases are q/k/v ones), with "attention_bias" / "mlp_bias" set when any block has an o / FFN
 *    bias (biases a block lacks are then written as zeros, so HF loads it), names model.embed_tokens.weight,
 *    model.layers.N.{input_layernorm,post_attention_layernorm}.weight,
 *    model.layers.N.self_attn.{q,k,v,o}_proj.*, model.layers.N.mlp.{gate,up,down}_proj.*,
 *    model.norm.weight, lm_head.weight (untied only). Models that rotate adjacent RoPE pairs
 *    (llama2.c, GGUF: rope_interleaved = 1) get the rows of wq and wk (and their biases and
 *    low-rank U factors) permuted within each head to HF's half rotation: new row j < hd/2 is
 *    old row 2j, new row hd/2 + j is old row 2j + 1.
 *    RoPE scaling is written as "rope_scaling" (linear / llama3); a model with a sliding
 *    window as "MistralForCausalLM" with "sliding_window" (Qwen2: "use_sliding_window": true,
 *    "max_window_layers": 0); per-pair RoPE divisors (from a GGUF rope_freqs tensor) as the
 *    extension key "cce_rope_freq_div" (read back by cce, not by transformers).
 *  - GPT-2: "GPT2LMHeadModel", names transformer.{wte,wpe,ln_f}.*, transformer.h.N.{ln_1,ln_2,
 *    attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj}.*, dense weights in Conv1D (in, out) layout.
 *  - Compressed models are written as standard as possible: dropped blocks are left out and the
 *    remaining blocks renumbered 0..n-1 (config "cce_kept_layers": [source block indices] records
 *    which were kept, for provenance only); when every block has the same head counts and FFN
 *    width, those go into the standard keys (num_attention_heads, num_key_value_heads,
 *    intermediate_size / n_inner; head_dim stays explicit for Llama).
 *  - Compression extras (read back by cce_load_hf, ignored by transformers):
 *      config "cce_layers": [{"n_heads", "n_kv_heads", "hidden", "head_kv"?}, ...] one entry
 *        per written block, only when the blocks differ from each other, a head maps to a KV
 *        head other than the default grouping ("head_kv"), or GPT-2 heads were pruned (its
 *        config cannot express head_dim); the reader also accepts {"dropped": 1} entries;
 *      low-rank linears: "<prefix>.weight_u" (out, rank) and "<prefix>.weight_v" (rank, in)
 *        in place of "<prefix>.weight" (both families, (out, in) convention);
 *      (biases added by encoding are standard: see attention_bias / mlp_bias above; cce_load_hf
 *      drops all-zero biases, so the zeros cost nothing after loading);
 *      GPT-2 blocks whose q/k/v are not all dense: "h.N.attn.{q,k,v}_proj.*" instead of c_attn.
 */
#ifndef CCE_EXPORT_H
#define CCE_EXPORT_H

#include <stdint.h>
#include "model.h"
#include "quant.h"
#include "tokenizer.h"

/* Write m (and tok, may be NULL) into directory dir (created if missing; existing files of the
 * same names are replaced atomically, one by one). Reads m only. */
cce_status cce_export_hf(const cce_model *m, const cce_tokenizer *tok, const char *dir, cce_err *err);
/* The same with the weights stored as dtype (CCE_ST_F32, CCE_ST_F16 or CCE_ST_BF16 from
 * safetensors.h; F16/BF16 round to nearest even, so the reload is close but not identical). */
cce_status cce_export_hf_dtype(const cce_model *m, const cce_tokenizer *tok, const char *dir, int dtype,
                               cce_err *err);

/* Bias flags of cce_export_config (Llama family). */
#define CCE_EXPORT_ATTN_BIAS 1  /* "attention_bias": true — q/k/v/o biases */
#define CCE_EXPORT_MLP_BIAS 2   /* "mlp_bias": true — gate/up/down biases */
#define CCE_EXPORT_QKV_BIAS 4   /* q/k/v biases only (Qwen2; nothing in the config) */

/* Write a config.json for cfg to path atomically. architecture is "LlamaForCausalLM",
 * "Qwen2ForCausalLM" or "GPT2LMHeadModel"; bias_flags (CCE_EXPORT_*) set attention_bias /
 * mlp_bias for Llama. m may be NULL (cfg written as is); when given, the config describes m as
 * cce_export_hf writes it (dropped blocks left out, uniform block shapes folded in, "cce_layers"
 * for the rest) and cfg should be &m->cfg. */
cce_status cce_export_config(const cce_config *cfg, const char *architecture, int bias_flags,
                             const cce_model *m, const char *path, cce_err *err);

/* ---- GGUF ---- */

/* What cce_export_gguf_ex wrote. */
typedef struct {
    char arch[8];          // "llama" (uniform blocks) or "deci" (per-layer shapes)
    int n_blocks;          // blocks written (dropped ones left out)
    int n_tensors;
    int n_lowrank;         // low-rank linears multiplied out
    int n_f16_fallback;    // Q8_0 requested, rows not a multiple of 32: written as F16
    uint64_t bytes;        // size of the file
    char note[512];        // one line: what the file does not carry exactly as the model has it
                           // (multiplied-out factors, F16 fallbacks, tokenizer forms llama.cpp
                           // cannot name, a sliding window llama.cpp ignores); "" when nothing
} cce_gguf_export_info;

/* Write the Llama-family model m (and tok, may be NULL: tokenizer.ggml.model "none") as a GGUF
 * v3 file at path, atomically (temporary file beside it, fsync, rename, fsync of the directory;
 * cce_interrupted() between tensors gives CCE_ECANCEL and removes the temporary file; a previous
 * file at path is never damaged). dtype: CCE_WT_F32, CCE_WT_F16 or CCE_WT_Q8_0 for the matrices
 * (vectors are F32). The layout, the conventions (llama / deci, RoPE row order, head reordering,
 * biases, rope_freqs) and what is refused are described at the top of
 * engine/formats/gguf_write.c; every refusal is one line naming the block and why llama.cpp could
 * not run it (CCE_EUNSUPPORTED), and the file is then not written. cce_load_gguf reads the file
 * back with the same logits (F32: to float rounding). Reads m only; info may be NULL. */
cce_status cce_export_gguf(const cce_model *m, const cce_tokenizer *tok, const char *path, cce_wtype dtype,
                           cce_err *err);
cce_status cce_export_gguf_ex(const cce_model *m, const cce_tokenizer *tok, const char *path, cce_wtype dtype,
                              cce_gguf_export_info *info, cce_err *err);

/* Total size in bytes of the files cce_export_hf writes that exist in dir (0 if none). */
uint64_t cce_export_dir_bytes(const char *dir);

#endif
