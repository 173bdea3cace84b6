/*
 * export.h — write a loaded (possibly compressed) model as a Hugging Face directory.
 *
 * Output: config.json, model.safetensors (F32) and, when a tokenizer is given, tokenizer.json.
 * `cce` loads the directory back (cce_load_hf) with the same weights and the same evaluation
 * results; when the model is expressible in a standard config (no dropped blocks, uniform
 * shapes, dense weights) Hugging Face transformers loads it too.
 *
 * Conventions of the written files:
 *  - Llama family: "architectures": ["LlamaForCausalLM"] (or "Qwen2ForCausalLM" when every
 *    block has q/k/v biases and no o bias), names model.embed_tokens.weight,
 *    model.layers.N.{input_layernorm,post_attention_layernorm}.weight,
 *    model.layers.N.self_attn.{q,k,v,o}_proj.*, model.layers.N.mlp.{gate,up,down}_proj.*,
 *    model.norm.weight, lm_head.weight (untied only). Models that rotate adjacent RoPE pairs
 *    (llama2.c, GGUF: rope_interleaved = 1) get the rows of wq and wk (and their biases and
 *    low-rank U factors) permuted within each head to HF's half rotation: new row j < hd/2 is
 *    old row 2j, new row hd/2 + j is old row 2j + 1.
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
 *      biases added by encoding: "<prefix>.bias" on any linear (e.g. mlp.down_proj.bias);
 *      GPT-2 blocks whose q/k/v are not all dense: "h.N.attn.{q,k,v}_proj.*" instead of c_attn.
 */
#ifndef CCE_EXPORT_H
#define CCE_EXPORT_H

#include <stdint.h>
#include "model.h"
#include "tokenizer.h"

/* Write m (and tok, may be NULL) into directory dir (created if missing; existing files of the
 * same names are replaced atomically, one by one). Reads m only. */
cce_status cce_export_hf(const cce_model *m, const cce_tokenizer *tok, const char *dir, cce_err *err);

/* Write a config.json for cfg to path atomically. architecture is "LlamaForCausalLM",
 * "Qwen2ForCausalLM" or "GPT2LMHeadModel"; attention_bias (Llama only) declares q/k/v/o biases.
 * m may be NULL; when given, per-block shapes that differ from cfg are recorded in "cce_layers". */
cce_status cce_export_config(const cce_config *cfg, const char *architecture, int attention_bias,
                             const cce_model *m, const char *path, cce_err *err);

/* Total size in bytes of the files cce_export_hf writes that exist in dir (0 if none). */
uint64_t cce_export_dir_bytes(const char *dir);

#endif
