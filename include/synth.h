/*
 * synth.h — random-weight Hugging Face directories of real model shapes, for speed and
 * robustness tests (never for quality: compression quality is measured on trained weights).
 *
 * Shapes ("like" names): "smollm-135m", "gpt2", "qwen2.5-0.5b", "llama-3.2-1b", "tiny"
 * (Llama, d 64, 2 layers, 4 heads, 2 KV heads, FFN 128, vocab 512). Linear weights, linear
 * biases and embeddings are N(0, 0.02), norm gains 1, LayerNorm biases 0; every tensor's values depend only on the
 * seed and the tensor's position, so the same seed always gives byte-identical files. The
 * weights are streamed into model.safetensors tensor by tensor (one 4 MiB buffer), so
 * synthesising a 1B model needs no more memory than a tiny one. No tokenizer is written.
 */
#ifndef CCE_SYNTH_H
#define CCE_SYNTH_H

#include <stdint.h>
#include "model.h"

/* The config a "like" name stands for; CCE_EINVAL (listing the names) for unknown ones.
 * *qkv_bias receives whether the family has q/k/v biases (Qwen2). */
cce_status cce_synth_config(const char *like, cce_config *cfg, int *qkv_bias, cce_err *err);

/* Write config.json + model.safetensors for `like` into dir (created if missing), each file
 * atomically. cce_synth_ex also reports the size of model.safetensors in *bytes_out (may be NULL). */
cce_status cce_synth(const char *like, uint64_t seed, const char *dir, cce_err *err);
cce_status cce_synth_ex(const char *like, uint64_t seed, const char *dir, uint64_t *bytes_out, cce_err *err);

/* Space-separated list of the known names (for help and errors). */
const char *cce_synth_names(void);

#endif
