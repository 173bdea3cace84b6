/*
 * hf.c — load a Hugging Face model directory: config.json + model.safetensors (or shards listed
 * by model.safetensors.index.json) into a cce_model.
 *
 * Families (architectures[0], or model_type when architectures is absent):
 *   LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM -> CCE_ARCH_LLAMA with HF's half
 *     rotation (rope_interleaved = 0). Qwen2 must carry q/k/v biases; "attention_bias": true
 *     requires q/k/v/o biases, "mlp_bias": true gate/up/down ones; any other linear bias in the
 *     file is loaded too. All-zero biases are dropped (cce_export_hf writes zeros where a config
 *     flag declares a bias a block does not have).
 *   Options of the Llama family: "rope_scaling" {"rope_type" (or "type"): "linear" | "llama3" |
 *     "default"} (llama3: factor, low_freq_factor, high_freq_factor,
 *     original_max_position_embeddings; the remapping is cce_rope_inv_freq's; yarn, dynamic and
 *     the rest are refused naming the type); a sliding window (Mistral's "sliding_window", Qwen2's
 *     when "use_sliding_window" is true and max_window_layers < num_hidden_layers) limits every
 *     sequence to the window (cce_config_check_positions); tie_word_embeddings as written, or
 *     tied when absent and there is no lm_head.weight (Qwen2 small models).
 *   GPT2LMHeadModel -> CCE_ARCH_GPT2. Conv1D weights are stored (in, out); they are split
 *     (c_attn into q, k, v) and transposed into (out, in) buffers in the model arena.
 *
 * Validation order: config.json is parsed strictly (case-sensitive keys, integers must be
 * integral positive numbers, heads divide the width, KV heads divide heads) before any weight
 * file is opened; every safetensors file is validated by cce_st_open; every tensor's shape is
 * checked against the config before it is used. F32 tensors that are 4-byte aligned in the
 * mapping are used in place; F16/BF16 (and unaligned F32) are converted into the arena.
 * Shard file names from the index must stay inside the directory (no absolute path, no "..").
 *
 * cce extensions, written by cce_export_hf for compressed models and documented in export.h:
 *   config "cce_layers": array of n_layers objects {"dropped": 0|1, "n_heads": H_l,
 *     "n_kv_heads": G_l, "hidden": m_l, "head_kv": [KV head of each query head] (optional)};
 *     missing keys default to the global config. A dropped layer has no tensors (the exporter
 *     leaves dropped blocks out instead, but such files are still read).
 *   config "cce_rope_freq_div": [head_dim/2 numbers], per-pair divisors of the RoPE
 *     frequencies (what a GGUF rope_freqs.weight holds), for models converted from GGUF.
 *   low-rank linears: "<prefix>.weight_u" (out, rank) and "<prefix>.weight_v" (rank, in)
 *     instead of "<prefix>.weight", in (out, in) convention for both families.
 *   GPT-2 blocks whose q/k/v are not all dense are written as separate
 *     "h.N.attn.{q,k,v}_proj.*" instead of the fused c_attn (dense ones in Conv1D layout).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "model.h"
#include "safetensors.h"

#define HF_PATH_MAX 4096
#define HF_CONFIG_MAX (16u << 20)   /* config.json / index.json size limit */
#define HF_DIM_MAX (1 << 24)
#define HF_LAYERS_MAX 4096
#define HF_MAX_SHARDS 1024

typedef enum { FAM_LLAMA, FAM_QWEN2, FAM_GPT2 } hf_family;

typedef struct {
    int dropped, n_heads, n_kv_heads, hidden;
    int *head_kv;               // (n_heads) or NULL, owned until copied into the arena
} hf_layer_spec;

typedef struct {
    const char *dir;
    char cfg_path[HF_PATH_MAX];
    hf_family fam;
    int attention_bias, mlp_bias;
    int mistral;                // MistralForCausalLM (sliding_window applies)
    float *rope_freq_div;       // (head_dim/2) from "cce_rope_freq_div", until moved into the model
    int tie_explicit;           // -1 absent, 0 false, 1 true
    hf_layer_spec *spec;        // (n_layers)
    /* weights */
    cce_safetensors *shards;    // (n_shards)
    char **shard_names;         // (n_shards) names as written in the index (or "model.safetensors")
    char **shard_paths;         // (n_shards) dir/name
    int n_shards;
    cJSON *index;               // parsed index.json (owns weight_map) or NULL
    const cJSON *wmap;
    /* weight_map as a table sorted by tensor name, for O(log n) lookups and duplicate checks */
    const char **wm_name;       // (n_wm) tensor names (point into index)
    int *wm_shard;              // (n_wm) shard index of each
    int n_wm;
    char index_path[HF_PATH_MAX];
    cce_model *m;
    const char *gpt2_prefix;    // "transformer." or ""
} hf_ctx;

/* ---- JSON helpers ---- */

/* Parse a small JSON file strictly: size limit, UTF-8, nothing but whitespace after the value. */
static cce_status json_load(const char *path, cJSON **out, cce_err *err) {
    char *buf = NULL;
    size_t len = 0;
    cce_status s = cce_read_file(path, HF_CONFIG_MAX, &buf, &len, err);
    *out = NULL;
    if (s) return s;
    if (!cce_utf8_valid(buf, len)) {
        cce_free(buf);
        return cce_err_set(err, CCE_EFORMAT, "%s: not valid UTF-8", path);
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        size_t at = end && end >= buf ? (size_t)(end - buf) : 0;
        cce_free(buf);
        return cce_err_set(err, CCE_EFORMAT, "%s: not valid JSON (near byte %zu)", path, at);
    }
    for (const char *q = end; q < buf + len; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            size_t at = (size_t)(q - buf);
            cce_free(buf);
            cJSON_Delete(j);
            return cce_err_set(err, CCE_EFORMAT, "%s: trailing garbage after the JSON value at byte %zu", path, at);
        }
    cce_free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return cce_err_set(err, CCE_EFORMAT, "%s: top-level JSON value is not an object", path);
    }
    *out = j;
    return CCE_OK;
}

static const char *jdesc(const cJSON *it, char *buf, size_t cap) {
    if (!it) snprintf(buf, cap, "missing");
    else if (cJSON_IsNumber(it)) snprintf(buf, cap, "%.17g", it->valuedouble);
    else if (cJSON_IsString(it)) snprintf(buf, cap, "the string \"%.40s\"", it->valuestring);
    else if (cJSON_IsBool(it)) snprintf(buf, cap, "a boolean");
    else if (cJSON_IsNull(it)) snprintf(buf, cap, "null");
    else if (cJSON_IsArray(it)) snprintf(buf, cap, "an array");
    else snprintf(buf, cap, "an object");
    return buf;
}

/* Integer field in [lo, hi]. Absent (or null when null_ok) -> *out = def, unless required. */
static cce_status cfg_int(const char *path, const cJSON *obj, const char *key, int required, int null_ok,
                          long lo, long hi, long def, long *out, cce_err *err) {
    char d[96];
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || (null_ok && cJSON_IsNull(it))) {
        if (required) return cce_err_set(err, CCE_EFORMAT, "%s: field '%s' is missing", path, key);
        *out = def;
        return CCE_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || floor(it->valuedouble) != it->valuedouble)
        return cce_err_set(err, CCE_EFORMAT, "%s: field '%s' is %s, expected an integer", path, key,
                           jdesc(it, d, sizeof d));
    if (it->valuedouble < (double)lo || it->valuedouble > (double)hi)
        return cce_err_set(err, CCE_EFORMAT, "%s: field '%s' is %.17g, expected %ld..%ld", path, key,
                           it->valuedouble, lo, hi);
    *out = (long)it->valuedouble;
    return CCE_OK;
}

/* Positive finite float field; absent or null -> def. */
static cce_status cfg_float(const char *path, const cJSON *obj, const char *key, double def, double hi,
                            float *out, cce_err *err) {
    char d[96];
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = (float)def;
        return CCE_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || !(it->valuedouble > 0) || it->valuedouble > hi)
        return cce_err_set(err, CCE_EFORMAT, "%s: field '%s' is %s, expected a positive number <= %g", path, key,
                           jdesc(it, d, sizeof d), hi);
    *out = (float)it->valuedouble;
    return CCE_OK;
}

/* Boolean field: -1 absent/null, 0/1 otherwise. */
static cce_status cfg_bool(const char *path, const cJSON *obj, const char *key, int *out, cce_err *err) {
    char d[96];
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) *out = -1;
    else if (cJSON_IsBool(it)) *out = cJSON_IsTrue(it) ? 1 : 0;
    else return cce_err_set(err, CCE_EFORMAT, "%s: field '%s' is %s, expected true or false", path, key,
                            jdesc(it, d, sizeof d));
    return CCE_OK;
}

/* Token id: integer in [0, vocab), null/absent (-1), or an array whose first element is used
 * (Llama 3 lists several eos ids). */
static cce_status cfg_token(const char *path, const cJSON *obj, const char *key, int vocab, int *out,
                            cce_err *err) {
    char d[96];
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsArray(it)) it = it->child;
    if (!it || cJSON_IsNull(it)) {
        *out = -1;
        return CCE_OK;
    }
    if (!cJSON_IsNumber(it) || floor(it->valuedouble) != it->valuedouble || it->valuedouble < 0 ||
        it->valuedouble >= vocab)
        return cce_err_set(err, CCE_EFORMAT, "%s: field '%s' is %s, expected a token id 0..%d", path, key,
                           jdesc(it, d, sizeof d), vocab - 1);
    *out = (int)it->valuedouble;
    return CCE_OK;
}

/* ---- config ---- */

static cce_status parse_layers_ext(hf_ctx *c, const cJSON *root, cce_config *cfg, cce_err *err) {
    const char *p = c->cfg_path;
    cce_status s;
    c->spec = cce_alloc_zero((size_t)cfg->n_layers, sizeof *c->spec);
    if (!c->spec) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p);
    for (int l = 0; l < cfg->n_layers; l++) {
        c->spec[l].n_heads = cfg->n_heads;
        c->spec[l].n_kv_heads = cfg->n_kv_heads;
        c->spec[l].hidden = cfg->hidden_dim;
    }
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(root, "cce_layers");
    if (!ext || cJSON_IsNull(ext)) return CCE_OK;
    if (!cJSON_IsArray(ext) || cJSON_GetArraySize(ext) != cfg->n_layers)
        return cce_err_set(err, CCE_EFORMAT, "%s: field 'cce_layers' must be an array of %d layer objects", p,
                           cfg->n_layers);
    int l = 0;
    for (const cJSON *e = ext->child; e; e = e->next, l++) {
        hf_layer_spec *sp = &c->spec[l];
        char key[64];
        long v;
        if (!cJSON_IsObject(e))
            return cce_err_set(err, CCE_EFORMAT, "%s: cce_layers[%d] is not an object", p, l);
        snprintf(key, sizeof key, "cce_layers[%d]", l);
        int b;
        const cJSON *dr = cJSON_GetObjectItemCaseSensitive(e, "dropped");
        if (cJSON_IsBool(dr)) {
            if ((s = cfg_bool(p, e, "dropped", &b, err))) return s;
            sp->dropped = b == 1;
        } else {
            if ((s = cfg_int(p, e, "dropped", 0, 1, 0, 1, 0, &v, err))) return cce_err_prefix(err, s, key);
            sp->dropped = (int)v;
        }
        if (sp->dropped) continue; /* a dropped block has no shapes and no tensors */
        /* n_heads 0: no attention sublayer (n_kv_heads 0 too); hidden 0: no FFN sublayer */
        if ((s = cfg_int(p, e, "n_heads", 0, 0, 0, cfg->n_heads, cfg->n_heads, &v, err)))
            return cce_err_prefix(err, s, key);
        sp->n_heads = (int)v;
        if ((s = cfg_int(p, e, "n_kv_heads", 0, 0, sp->n_heads ? 1 : 0, sp->n_heads,
                         sp->n_heads ? cfg->n_kv_heads : 0, &v, err)))
            return cce_err_prefix(err, s, key);
        sp->n_kv_heads = (int)v;
        if ((s = cfg_int(p, e, "hidden", 0, 0, 0, HF_DIM_MAX, cfg->hidden_dim, &v, err)))
            return cce_err_prefix(err, s, key);
        sp->hidden = (int)v;
        const cJSON *hk = cJSON_GetObjectItemCaseSensitive(e, "head_kv");
        if (hk && !cJSON_IsNull(hk)) {
            if (!cJSON_IsArray(hk) || cJSON_GetArraySize(hk) != sp->n_heads)
                return cce_err_set(err, CCE_EFORMAT, "%s: cce_layers[%d].head_kv must be an array of %d integers",
                                   p, l, sp->n_heads);
            sp->head_kv = cce_alloc((size_t)sp->n_heads, sizeof(int));
            if (!sp->head_kv) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p);
            int h = 0;
            for (const cJSON *x = hk->child; x; x = x->next, h++) {
                if (!cJSON_IsNumber(x) || floor(x->valuedouble) != x->valuedouble || x->valuedouble < 0 ||
                    x->valuedouble >= sp->n_kv_heads)
                    return cce_err_set(err, CCE_EFORMAT, "%s: cce_layers[%d].head_kv[%d] is not a KV head 0..%d", p,
                                       l, h, sp->n_kv_heads - 1);
                sp->head_kv[h] = (int)x->valuedouble;
            }
        } else if (sp->n_heads && sp->n_heads % sp->n_kv_heads) {
            return cce_err_set(err, CCE_EFORMAT, "%s: cce_layers[%d]: n_kv_heads %d does not divide n_heads %d", p,
                               l, sp->n_kv_heads, sp->n_heads);
        }
    }
    return CCE_OK;
}

/* "rope_scaling": null / absent / {"rope_type" (or the older "type"): "default"} -> none;
 * "linear" {factor}; "llama3" {factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings} (Llama 3.1+; the remapping is cce_rope_inv_freq's); other
 * types are refused naming the type. */
static cce_status parse_rope_scaling(const char *p, const cJSON *root, cce_config *cfg, cce_err *err) {
    char d[96];
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return CCE_OK;
    if (!cJSON_IsObject(rs))
        return cce_err_set(err, CCE_EFORMAT, "%s: field 'rope_scaling' is %s, expected an object or null", p,
                           jdesc(rs, d, sizeof d));
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(ty))
        return cce_err_set(err, CCE_EFORMAT, "%s: field 'rope_scaling.rope_type' is %s, expected a string", p,
                           jdesc(ty, d, sizeof d));
    const char *t = ty->valuestring;
    if (!strcmp(t, "default")) return CCE_OK;
    int linear = !strcmp(t, "linear"), llama3 = !strcmp(t, "llama3");
    if (!linear && !llama3)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: field 'rope_scaling' has type '%.40s'; only linear and llama3 "
                           "RoPE scaling are supported", p, t);
    cce_status s;
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(rs, "factor");
    if (!fa) return cce_err_set(err, CCE_EFORMAT, "%s: field 'rope_scaling.factor' is missing", p);
    if ((s = cfg_float(p, rs, "factor", 1, 1e6, &cfg->rope_factor, err))) return cce_err_prefix(err, s, "rope_scaling");
    cfg->rope_scaling = linear ? CCE_ROPE_SCALING_LINEAR : CCE_ROPE_SCALING_LLAMA3;
    if (linear) return CCE_OK;
    static const char *const req[3] = {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    for (int i = 0; i < 3; i++)
        if (!cJSON_GetObjectItemCaseSensitive(rs, req[i]))
            return cce_err_set(err, CCE_EFORMAT, "%s: field 'rope_scaling.%s' is missing (llama3 RoPE scaling)", p, req[i]);
    long orig;
    if ((s = cfg_float(p, rs, "low_freq_factor", 1, 1e6, &cfg->rope_low_freq_factor, err)) ||
        (s = cfg_float(p, rs, "high_freq_factor", 1, 1e6, &cfg->rope_high_freq_factor, err)) ||
        (s = cfg_int(p, rs, "original_max_position_embeddings", 1, 0, 1, HF_DIM_MAX, 0, &orig, err)))
        return cce_err_prefix(err, s, "rope_scaling");
    cfg->rope_orig_ctx = (int)orig;
    if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
        return cce_err_set(err, CCE_EFORMAT, "%s: rope_scaling: high_freq_factor %g must exceed low_freq_factor %g", p,
                           (double)cfg->rope_high_freq_factor, (double)cfg->rope_low_freq_factor);
    return CCE_OK;
}

/* Sliding-window attention: Mistral's "sliding_window" (an integer, or null for none), Qwen2's
 * when "use_sliding_window" is true (HF applies it from layer max_window_layers on; the whole
 * model is limited to the window here, the conservative reading). The engine runs full causal
 * attention, which equals sliding-window attention on sequences of at most the window, and
 * refuses longer ones (cce_config_check_positions). Llama configs have no window. */
static cce_status parse_sliding_window(const char *p, const cJSON *root, int qwen2, int mistral, cce_config *cfg,
                                       cce_err *err) {
    long v;
    cce_status s;
    if (qwen2) {
        int use;
        if ((s = cfg_bool(p, root, "use_sliding_window", &use, err))) return s;
        if (use != 1) return CCE_OK;
        long first_layer;
        if ((s = cfg_int(p, root, "max_window_layers", 0, 1, 0, HF_LAYERS_MAX, 0, &first_layer, err))) return s;
        if (first_layer >= cfg->n_layers) return CCE_OK;   // no layer uses the window
    } else if (!mistral) {
        return CCE_OK;
    }
    if ((s = cfg_int(p, root, "sliding_window", 0, 1, 1, INT32_MAX, 0, &v, err))) return s;
    cfg->sliding_window = (int)v;
    return CCE_OK;
}

/* "cce_rope_freq_div": [head_dim/2 positive numbers], written by cce_export_hf for models whose
 * RoPE frequencies carry per-pair divisors (GGUF rope_freqs.weight); kept in c until the model
 * exists. */
static cce_status parse_rope_freq_div(hf_ctx *c, const cJSON *root, cce_config *cfg, cce_err *err) {
    const char *p = c->cfg_path;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "cce_rope_freq_div");
    if (!a || cJSON_IsNull(a)) return CCE_OK;
    int n = cfg->head_dim / 2;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return cce_err_set(err, CCE_EFORMAT, "%s: field 'cce_rope_freq_div' must be an array of %d numbers", p, n);
    c->rope_freq_div = cce_alloc((size_t)n, sizeof(float));
    if (!c->rope_freq_div) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", p);
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || !(x->valuedouble > 0) || x->valuedouble > 1e30)
            return cce_err_set(err, CCE_EFORMAT, "%s: cce_rope_freq_div[%d] is not a positive number", p, i);
        c->rope_freq_div[i] = (float)x->valuedouble;
    }
    return CCE_OK;
}

static cce_status parse_config(hf_ctx *c, cce_config *cfg, cce_err *err) {
    const char *p = c->cfg_path;
    cJSON *root = NULL;
    cce_status s;
    long v;
    char d[96];
    memset(cfg, 0, sizeof *cfg);
    if ((s = json_load(p, &root, err))) return s;

    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *an = NULL;
    if (arch && !cJSON_IsNull(arch)) {
        if (!cJSON_IsArray(arch) || !cJSON_IsString(arch->child)) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: field 'architectures' is %s, expected an array of strings", p,
                            jdesc(arch, d, sizeof d));
            goto done;
        }
        an = arch->child->valuestring;
    } else {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
        if (!cJSON_IsString(mt)) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: neither 'architectures' nor 'model_type' names the model", p);
            goto done;
        }
        const char *t = mt->valuestring;
        an = !strcmp(t, "llama") ? "LlamaForCausalLM" : !strcmp(t, "mistral") ? "MistralForCausalLM"
           : !strcmp(t, "qwen2") ? "Qwen2ForCausalLM" : !strcmp(t, "gpt2") ? "GPT2LMHeadModel" : t;
    }
    c->mistral = !strcmp(an, "MistralForCausalLM");
    if (!strcmp(an, "LlamaForCausalLM") || !strcmp(an, "MistralForCausalLM")) c->fam = FAM_LLAMA;
    else if (!strcmp(an, "Qwen2ForCausalLM")) c->fam = FAM_QWEN2;
    else if (!strcmp(an, "GPT2LMHeadModel")) c->fam = FAM_GPT2;
    else {
        s = cce_err_set(err, CCE_EUNSUPPORTED,
                        "%s: architecture '%.60s' is not supported (Llama, Mistral, Qwen2, GPT-2)", p, an);
        goto done;
    }

    if (c->fam == FAM_GPT2) {
        cfg->arch = CCE_ARCH_GPT2;
        if ((s = cfg_int(p, root, "n_embd", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->dim = (int)v;
        if ((s = cfg_int(p, root, "n_layer", 1, 0, 1, HF_LAYERS_MAX, 0, &v, err))) goto done;
        cfg->n_layers = (int)v;
        if ((s = cfg_int(p, root, "n_head", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->n_heads = cfg->n_kv_heads = (int)v;
        if ((s = cfg_int(p, root, "n_inner", 0, 1, 1, HF_DIM_MAX, 4L * cfg->dim, &v, err))) goto done;
        cfg->hidden_dim = (int)v;
        if ((s = cfg_int(p, root, "n_positions", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->seq_len = (int)v;
        if ((s = cfg_int(p, root, "vocab_size", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->vocab_size = (int)v;
        if ((s = cfg_float(p, root, "layer_norm_epsilon", 1e-5, 0.5, &cfg->norm_eps, err))) goto done;
        if (cfg->dim % cfg->n_heads) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: n_head %d does not divide n_embd %d", p, cfg->n_heads, cfg->dim);
            goto done;
        }
        cfg->head_dim = cfg->dim / cfg->n_heads;
        cfg->rope_theta = 10000;
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
        if (act && !(cJSON_IsString(act) && (!strcmp(act->valuestring, "gelu_new") ||
                                             !strcmp(act->valuestring, "gelu_pytorch_tanh")))) {
            s = cce_err_set(err, CCE_EUNSUPPORTED,
                            "%s: field 'activation_function' is %s; only the tanh GELU (gelu_new) is supported", p,
                            jdesc(act, d, sizeof d));
            goto done;
        }
    } else {
        cfg->arch = CCE_ARCH_LLAMA;
        if ((s = cfg_int(p, root, "hidden_size", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->dim = (int)v;
        if ((s = cfg_int(p, root, "num_hidden_layers", 1, 0, 1, HF_LAYERS_MAX, 0, &v, err))) goto done;
        cfg->n_layers = (int)v;
        if ((s = cfg_int(p, root, "num_attention_heads", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->n_heads = (int)v;
        if ((s = cfg_int(p, root, "num_key_value_heads", 0, 1, 1, HF_DIM_MAX, cfg->n_heads, &v, err))) goto done;
        cfg->n_kv_heads = (int)v;
        if ((s = cfg_int(p, root, "intermediate_size", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->hidden_dim = (int)v;
        if ((s = cfg_int(p, root, "vocab_size", 1, 0, 1, HF_DIM_MAX, 0, &v, err))) goto done;
        cfg->vocab_size = (int)v;
        if ((s = cfg_int(p, root, "max_position_embeddings", 0, 1, 1, HF_DIM_MAX, 2048, &v, err))) goto done;
        cfg->seq_len = (int)v;
        if ((s = cfg_float(p, root, "rms_norm_eps", 1e-6, 0.5, &cfg->norm_eps, err))) goto done;
        if ((s = cfg_float(p, root, "rope_theta", 10000, 1e12, &cfg->rope_theta, err))) goto done;
        const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
        if (hd && !cJSON_IsNull(hd)) {
            if ((s = cfg_int(p, root, "head_dim", 1, 0, 2, 65536, 0, &v, err))) goto done;
            cfg->head_dim = (int)v;
        } else {
            if (cfg->dim % cfg->n_heads) {
                s = cce_err_set(err, CCE_EFORMAT, "%s: num_attention_heads %d does not divide hidden_size %d", p,
                                cfg->n_heads, cfg->dim);
                goto done;
            }
            cfg->head_dim = cfg->dim / cfg->n_heads;
        }
        if (cfg->head_dim % 2) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: head_dim %d is odd; RoPE needs pairs", p, cfg->head_dim);
            goto done;
        }
        if ((s = cfg_bool(p, root, "attention_bias", &c->attention_bias, err))) goto done;
        c->attention_bias = c->attention_bias == 1;
        if ((s = cfg_bool(p, root, "mlp_bias", &c->mlp_bias, err))) goto done;
        c->mlp_bias = c->mlp_bias == 1;
        if ((s = parse_rope_scaling(p, root, cfg, err))) goto done;
        if ((s = parse_sliding_window(p, root, c->fam == FAM_QWEN2, c->mistral, cfg, err))) goto done;
        if ((s = parse_rope_freq_div(c, root, cfg, err))) goto done;
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
        if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu"))) {
            s = cce_err_set(err, CCE_EUNSUPPORTED, "%s: field 'hidden_act' is %s; only \"silu\" is supported", p,
                            jdesc(act, d, sizeof d));
            goto done;
        }
        cfg->rope_interleaved = 0;
    }
    if (cfg->n_heads % cfg->n_kv_heads) {
        s = cce_err_set(err, CCE_EFORMAT, "%s: num_key_value_heads %d does not divide num_attention_heads %d", p,
                        cfg->n_kv_heads, cfg->n_heads);
        goto done;
    }
    if ((int64_t)cfg->n_heads * cfg->head_dim > HF_DIM_MAX) {
        s = cce_err_set(err, CCE_EFORMAT, "%s: heads x head_dim = %lld is too large", p,
                        (long long)cfg->n_heads * cfg->head_dim);
        goto done;
    }
    if ((s = cfg_bool(p, root, "tie_word_embeddings", &c->tie_explicit, err))) goto done;
    if ((s = cfg_token(p, root, "bos_token_id", cfg->vocab_size, &cfg->bos_id, err))) goto done;
    if ((s = cfg_token(p, root, "eos_token_id", cfg->vocab_size, &cfg->eos_id, err))) goto done;
    s = parse_layers_ext(c, root, cfg, err);
done:
    cJSON_Delete(root);
    return s;
}

/* ---- weight files ---- */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A shard name from the index must be a relative path that stays inside the directory. */
static int shard_name_ok(const char *n) {
    if (!*n || n[0] == '/' || strchr(n, '\\')) return 0;
    const char *q = n;
    while (*q) {
        const char *e = strchr(q, '/');
        size_t len = e ? (size_t)(e - q) : strlen(q);
        if (len == 0 || (len == 2 && q[0] == '.' && q[1] == '.') || (len == 1 && q[0] == '.')) return 0;
        q += len;
        if (*q == '/') q++;
    }
    return 1;
}

/* Append a shard file (callers pass each distinct name once). */
static cce_status add_shard(hf_ctx *c, const char *name, cce_err *err) {
    if (c->n_shards >= HF_MAX_SHARDS)
        return cce_err_set(err, CCE_EFORMAT, "%s: more than %d shard files", c->index_path, HF_MAX_SHARDS);
    char **nn = cce_realloc(c->shard_names, (size_t)c->n_shards + 1, sizeof *nn);
    if (!nn) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", c->dir);
    c->shard_names = nn;
    char **pp = cce_realloc(c->shard_paths, (size_t)c->n_shards + 1, sizeof *pp);
    if (!pp) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", c->dir);
    c->shard_paths = pp;
    c->shard_names[c->n_shards] = cce_strdup(name);
    size_t len = strlen(c->dir) + strlen(name) + 2;
    c->shard_paths[c->n_shards] = cce_alloc(len, 1);
    if (!c->shard_names[c->n_shards] || !c->shard_paths[c->n_shards]) {
        cce_free(c->shard_names[c->n_shards]);
        cce_free(c->shard_paths[c->n_shards]);
        return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", c->dir);
    }
    snprintf(c->shard_paths[c->n_shards], len, "%s/%s", c->dir, name);
    c->n_shards++;
    return CCE_OK;
}

/* qsort_r comparators over weight_map entry indices; ctx is the entry array. */
static int cmp_entry_file(const void *a, const void *b, void *ctx) {
    const cJSON *const *e = ctx;
    return strcmp(e[*(const int *)a]->valuestring, e[*(const int *)b]->valuestring);
}
static int cmp_entry_name(const void *a, const void *b, void *ctx) {
    const cJSON *const *e = ctx;
    return strcmp(e[*(const int *)a]->string, e[*(const int *)b]->string);
}

/* Validate weight_map and build the sorted lookup table and the shard list (each distinct file
 * once, in sorted order), in O(n log n) whatever the index holds. */
static cce_status index_table(hf_ctx *c, cce_err *err) {
    cce_status s = CCE_OK;
    int n = cJSON_GetArraySize(c->wmap), k = 0;
    const cJSON **ent = NULL;
    int *by_file = NULL, *by_name = NULL;
    if (n <= 0) return cce_err_set(err, CCE_EFORMAT, "%s: weight_map is empty", c->index_path);
    /* n <= the index file's size: these allocations are bounded by a validated file */
    ent = cce_alloc((size_t)n, sizeof *ent);
    by_file = cce_alloc((size_t)n, sizeof *by_file);
    by_name = cce_alloc((size_t)n, sizeof *by_name);
    c->wm_name = cce_alloc((size_t)n, sizeof *c->wm_name);
    c->wm_shard = cce_alloc((size_t)n, sizeof *c->wm_shard);
    if (!ent || !by_file || !by_name || !c->wm_name || !c->wm_shard) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory for %d weight_map entries", c->index_path, n);
        goto done;
    }
    for (const cJSON *e = c->wmap->child; e; e = e->next, k++) {
        if (!cJSON_IsString(e)) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: weight_map['%.80s'] is not a file name", c->index_path, e->string);
            goto done;
        }
        if (!shard_name_ok(e->valuestring) || !cce_utf8_valid(e->valuestring, strlen(e->valuestring))) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: weight_map['%.80s']: shard file '%.100s' escapes the model directory",
                            c->index_path, e->string, e->valuestring);
            goto done;
        }
        ent[k] = e;
        by_file[k] = by_name[k] = k;
    }
    qsort_r(by_file, (size_t)n, sizeof *by_file, cmp_entry_file, (void *)ent);
    for (int i = 0; i < n; i++) {
        const char *f = ent[by_file[i]]->valuestring;
        if (i == 0 || strcmp(f, ent[by_file[i - 1]]->valuestring)) {
            if (c->n_shards >= HF_MAX_SHARDS) {
                s = cce_err_set(err, CCE_EFORMAT, "%s: more than %d shard files", c->index_path, HF_MAX_SHARDS);
                goto done;
            }
            if ((s = add_shard(c, f, err))) goto done;
        }
        c->wm_shard[by_file[i]] = c->n_shards - 1; /* temporarily indexed by entry */
    }
    qsort_r(by_name, (size_t)n, sizeof *by_name, cmp_entry_name, (void *)ent);
    int *shard_of = by_file; /* reuse: shard of each entry, before reordering */
    for (int i = 0; i < n; i++) shard_of[i] = c->wm_shard[i];
    for (int i = 0; i < n; i++) {
        c->wm_name[i] = ent[by_name[i]]->string;
        c->wm_shard[i] = shard_of[by_name[i]];
        if (i > 0 && !strcmp(c->wm_name[i], c->wm_name[i - 1])) {
            s = cce_err_set(err, CCE_EFORMAT, "%s: weight_map lists tensor '%.80s' more than once", c->index_path,
                            c->wm_name[i]);
            goto done;
        }
    }
    c->n_wm = n;
done:
    cce_free(ent);
    cce_free(by_file);
    cce_free(by_name);
    return s;
}

static cce_status open_weights(hf_ctx *c, cce_err *err) {
    char single[HF_PATH_MAX];
    cce_status s;
    snprintf(single, sizeof single, "%s/model.safetensors", c->dir);
    snprintf(c->index_path, sizeof c->index_path, "%s/model.safetensors.index.json", c->dir);
    if (file_exists(single)) {
        if ((s = add_shard(c, "model.safetensors", err))) return s;
    } else if (file_exists(c->index_path)) {
        if ((s = json_load(c->index_path, &c->index, err))) return s;
        c->wmap = cJSON_GetObjectItemCaseSensitive(c->index, "weight_map");
        if (!cJSON_IsObject(c->wmap))
            return cce_err_set(err, CCE_EFORMAT, "%s: field 'weight_map' is missing or not an object", c->index_path);
        if ((s = index_table(c, err))) return s;
        if (!c->n_shards) return cce_err_set(err, CCE_EFORMAT, "%s: weight_map is empty", c->index_path);
    } else {
        return cce_err_set(err, CCE_EIO, "%s: neither model.safetensors nor model.safetensors.index.json found",
                           c->dir);
    }
    c->shards = cce_alloc_zero((size_t)c->n_shards, sizeof *c->shards);
    if (!c->shards) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", c->dir);
    for (int i = 0; i < c->n_shards; i++)
        if ((s = cce_st_open(c->shard_paths[i], &c->shards[i], err))) return s;
    return CCE_OK;
}

/* Tensor by name, or NULL when absent; *file names the file it is (or would be) in. */
static cce_status find_tensor(hf_ctx *c, const char *name, const cce_st_tensor **t, const char **file,
                              cce_err *err) {
    *t = NULL;
    *file = c->shard_paths[0];
    if (!c->wmap) {
        *t = cce_st_find(&c->shards[0], name);
        return CCE_OK;
    }
    int lo = 0, hi = c->n_wm - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, cmp = strcmp(c->wm_name[mid], name);
        if (cmp < 0) lo = mid + 1;
        else if (cmp > 0) hi = mid - 1;
        else {
            int i = c->wm_shard[mid];
            *file = c->shard_paths[i];
            *t = cce_st_find(&c->shards[i], name);
            if (!*t)
                return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' listed in the index is not in the file",
                                   c->shard_paths[i], name);
            return CCE_OK;
        }
    }
    return CCE_OK;
}

/* Fetch a tensor that must have shape (d0) or (d0, d1) (nd = 1 or 2) and a float dtype.
 * Returns CCE_OK with *t == NULL when absent and !required. */
static cce_status get_tensor(hf_ctx *c, const char *name, int required, int nd, int64_t d0, int64_t d1,
                             const cce_st_tensor **t, cce_err *err) {
    const char *file;
    cce_status s = find_tensor(c, name, t, &file, err);
    if (s) return s;
    if (!*t) {
        if (required) return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' is missing", file, name);
        return CCE_OK;
    }
    const cce_st_tensor *x = *t;
    if (x->dtype != CCE_ST_F32 && x->dtype != CCE_ST_F16 && x->dtype != CCE_ST_BF16)
        return cce_err_set(err, CCE_EUNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16)",
                           file, name, cce_st_dtype_name(x->dtype));
    if (x->n_dims != nd || x->shape[0] != d0 || (nd == 2 && x->shape[1] != d1)) {
        char got[128] = "", want[64];
        size_t k = 0;
        for (int i = 0; i < x->n_dims && k < sizeof got - 24; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)x->shape[i]);
        if (nd == 1) snprintf(want, sizeof want, "%lld", (long long)d0);
        else snprintf(want, sizeof want, "%lld, %lld", (long long)d0, (long long)d1);
        return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': shape [%s], expected [%s] from config.json", file,
                           name, got, want);
    }
    return CCE_OK;
}

static float elem(const cce_st_tensor *t, uint64_t i) {
    const uint8_t *p = t->data;
    if (t->dtype == CCE_ST_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
    return t->dtype == CCE_ST_F16 ? cce_f16_to_f32(h) : cce_bf16_to_f32(h);
}

/* Elements [off, off+n) of t as f32: in place when F32 and aligned, else converted into the arena. */
static const float *as_f32(hf_ctx *c, const cce_st_tensor *t, uint64_t off, uint64_t n, cce_err *err) {
    if (t->dtype == CCE_ST_F32 && ((uintptr_t)(t->data + 4 * off) % 4) == 0)
        return (const float *)(const void *)(t->data + 4 * off);
    float *dst = cce_model_alloc(c->m, n ? (size_t)n : 1, sizeof(float));
    if (!dst) {
        cce_err_set(err, CCE_ENOMEM, "%s: out of memory converting tensor '%s'", c->dir, t->name);
        return NULL;
    }
    /* one loop per dtype: this is the whole load time of an F16/BF16 checkpoint */
    const uint8_t *p = t->data;
    if (t->dtype == CCE_ST_F32) {
        memcpy(dst, p + 4 * off, (size_t)n * 4);
    } else if (t->dtype == CCE_ST_BF16) {
        for (uint64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * (off + i)] | (p[2 * (off + i) + 1] << 8)) << 16;
            memcpy(&dst[i], &bits, 4);
        }
    } else {
        for (uint64_t i = 0; i < n; i++) dst[i] = elem(t, off + i);
    }
    return dst;
}

/* A dense weight matrix t (n elements) as stored: F32 (4-byte aligned) and F16/BF16 (2-byte
 * aligned) point into the mapping with their type; anything else is converted to f32. */
static const void *as_stored(hf_ctx *c, const cce_st_tensor *t, uint64_t n, cce_wtype *wt, cce_err *err) {
    if ((t->dtype == CCE_ST_F16 || t->dtype == CCE_ST_BF16) && ((uintptr_t)t->data % 2) == 0) {
        *wt = t->dtype == CCE_ST_F16 ? CCE_WT_F16 : CCE_WT_BF16;
        return t->data;
    }
    *wt = CCE_WT_F32;
    return as_f32(c, t, 0, n, err);
}

/* Columns [col0, col0+ncols) of a Conv1D weight t (in, out_total), transposed: (ncols, in). */
static const float *conv1d_cols(hf_ctx *c, const cce_st_tensor *t, int in, int out_total, int col0, int ncols,
                                cce_err *err) {
    float *dst = cce_model_alloc(c->m, (size_t)ncols * (size_t)in, sizeof(float)); // (ncols, in)
    if (!dst) {
        cce_err_set(err, CCE_ENOMEM, "%s: out of memory transposing tensor '%s'", c->dir, t->name);
        return NULL;
    }
    /* 32x32 tiles keep both the row-major reads and the strided writes in cache */
    int f32 = t->dtype == CCE_ST_F32 && ((uintptr_t)t->data % 4) == 0;
    const float *src = f32 ? (const float *)(const void *)t->data : NULL; // (in, out_total)
    for (int r0 = 0; r0 < in; r0 += 32)
        for (int j0 = 0; j0 < ncols; j0 += 32) {
            int r1 = r0 + 32 < in ? r0 + 32 : in, j1 = j0 + 32 < ncols ? j0 + 32 : ncols;
            for (int r = r0; r < r1; r++) {
                uint64_t row = (uint64_t)r * out_total + (uint64_t)col0;
                for (int j = j0; j < j1; j++)
                    dst[(size_t)j * in + r] = src ? src[row + (uint64_t)j] : elem(t, row + (uint64_t)j);
            }
        }
    return dst;
}

/* An all-zero bias is no bias: drop it, so biases a config forces on every block (HF's
 * attention_bias / mlp_bias, written as zeros by cce_export_hf where a block has none) neither
 * cost work nor count as parameters. */
static void drop_zero_bias(cce_linear *lin) {
    if (!lin->b) return;
    for (int i = 0; i < lin->out; i++)
        if (lin->b[i] != 0.0f) return;
    lin->b = NULL;
}

/* Load linear `prefix` of shape (out, in): dense "<prefix>.weight" (transposed Conv1D when conv1d)
 * or low-rank "<prefix>.weight_u"/"_v"; bias "<prefix>.bias" (required when need_bias). */
static cce_status load_linear(hf_ctx *c, const char *prefix, int out, int in, int conv1d, int need_bias,
                              cce_linear *lin, cce_err *err) {
    char name[512];
    const cce_st_tensor *t = NULL, *u = NULL, *v = NULL, *b = NULL;
    cce_status s;
    const char *file;
    memset(lin, 0, sizeof *lin);
    lin->out = out;
    lin->in = in;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((s = find_tensor(c, name, &t, &file, err))) return s;
    if (t) {
        if ((s = get_tensor(c, name, 1, 2, conv1d ? in : out, conv1d ? out : in, &t, err))) return s;
        lin->wt = CCE_WT_F32;
        lin->w = conv1d ? conv1d_cols(c, t, in, out, 0, out, err) : as_stored(c, t, (uint64_t)out * in, &lin->wt, err);
        if (!lin->w) return CCE_ENOMEM;
    } else {
        char nu[520], nv[520];
        snprintf(nu, sizeof nu, "%s.weight_u", prefix);
        snprintf(nv, sizeof nv, "%s.weight_v", prefix);
        if ((s = find_tensor(c, nu, &u, &file, err))) return s;
        if (!u) return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s' is missing", file, name);
        if (u->n_dims != 2 || u->shape[0] != out || u->shape[1] < 1 || u->shape[1] > (out < in ? out : in))
            return cce_err_set(err, CCE_EFORMAT, "%s: tensor '%s': expected shape [%d, rank] with 1 <= rank <= %d",
                               file, nu, out, out < in ? out : in);
        int rank = (int)u->shape[1];
        if ((s = get_tensor(c, nu, 1, 2, out, rank, &u, err))) return s;
        if ((s = get_tensor(c, nv, 1, 2, rank, in, &v, err))) return s;
        lin->rank = rank;
        if (!(lin->u = as_f32(c, u, 0, (uint64_t)out * rank, err))) return CCE_ENOMEM;
        if (!(lin->v = as_f32(c, v, 0, (uint64_t)rank * in, err))) return CCE_ENOMEM;
    }
    snprintf(name, sizeof name, "%s.bias", prefix);
    if ((s = get_tensor(c, name, need_bias, 1, out, 0, &b, err))) return s;
    if (b && !(lin->b = as_f32(c, b, 0, (uint64_t)out, err))) return CCE_ENOMEM;
    drop_zero_bias(lin);
    return CCE_OK;
}

static cce_status load_vec(hf_ctx *c, const char *name, int n, int required, const float **out, cce_err *err) {
    const cce_st_tensor *t;
    cce_status s = get_tensor(c, name, required, 1, n, 0, &t, err);
    *out = NULL;
    if (s || !t) return s;
    if (!(*out = as_f32(c, t, 0, (uint64_t)n, err))) return CCE_ENOMEM;
    return CCE_OK;
}

static cce_status load_layer_common(hf_ctx *c, int l, cce_layer *L, cce_err *err) {
    const hf_layer_spec *sp = &c->spec[l];
    L->dropped = sp->dropped;
    L->n_heads = sp->n_heads;
    L->n_kv_heads = sp->n_kv_heads;
    L->hidden = sp->hidden;
    if (sp->head_kv) {
        int *hk = cce_model_alloc(c->m, (size_t)sp->n_heads, sizeof(int)); // (n_heads)
        if (!hk) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", c->dir);
        memcpy(hk, sp->head_kv, (size_t)sp->n_heads * sizeof(int));
        L->head_kv = hk;
    }
    return CCE_OK;
}

static cce_status load_llama(hf_ctx *c, cce_err *err) {
    cce_model *m = c->m;
    const cce_config *cfg = &m->cfg;
    int d = cfg->dim, hd = cfg->head_dim;
    cce_status s;
    char pre[256], name[320];
    const cce_st_tensor *t;
    if ((s = get_tensor(c, "model.embed_tokens.weight", 1, 2, cfg->vocab_size, d, &t, err))) return s;
    m->tok_emb = (cce_linear){.out = cfg->vocab_size, .in = d};
    if (!(m->tok_emb.w = as_stored(c, t, (uint64_t)cfg->vocab_size * d, &m->tok_emb.wt, err))) return CCE_ENOMEM;
    if ((s = load_vec(c, "model.norm.weight", d, 1, &m->final_norm, err))) return s;
    for (int l = 0; l < cfg->n_layers; l++) {
        cce_layer *L = &m->layers[l];
        if ((s = load_layer_common(c, l, L, err))) return s;
        if (L->dropped) continue;
        int hq = L->n_heads * hd, hkv = L->n_kv_heads * hd, qkvb = c->fam == FAM_QWEN2 || c->attention_bias;
        if (L->hidden > 0) {
            snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
            if ((s = load_vec(c, name, d, 1, &L->ffn_norm, err))) return s;
            int mb = c->fam == FAM_LLAMA && c->mlp_bias;
            snprintf(pre, sizeof pre, "model.layers.%d.mlp.gate_proj", l);
            if ((s = load_linear(c, pre, L->hidden, d, 0, mb, &L->w1, err))) return s;
            snprintf(pre, sizeof pre, "model.layers.%d.mlp.up_proj", l);
            if ((s = load_linear(c, pre, L->hidden, d, 0, mb, &L->w3, err))) return s;
            snprintf(pre, sizeof pre, "model.layers.%d.mlp.down_proj", l);
            if ((s = load_linear(c, pre, d, L->hidden, 0, mb, &L->w2, err))) return s;
        }
        if (L->n_heads == 0) continue;   // no attention sublayer
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        if ((s = load_vec(c, name, d, 1, &L->attn_norm, err))) return s;
        snprintf(pre, sizeof pre, "model.layers.%d.self_attn.q_proj", l);
        if ((s = load_linear(c, pre, hq, d, 0, qkvb, &L->wq, err))) return s;
        snprintf(pre, sizeof pre, "model.layers.%d.self_attn.k_proj", l);
        if ((s = load_linear(c, pre, hkv, d, 0, qkvb, &L->wk, err))) return s;
        snprintf(pre, sizeof pre, "model.layers.%d.self_attn.v_proj", l);
        if ((s = load_linear(c, pre, hkv, d, 0, qkvb, &L->wv, err))) return s;
        snprintf(pre, sizeof pre, "model.layers.%d.self_attn.o_proj", l);
        if ((s = load_linear(c, pre, d, hq, 0, c->attention_bias, &L->wo, err))) return s;
    }
    /* Output head: tied unless the config says untied; an explicit "false" needs lm_head. */
    if ((s = get_tensor(c, "lm_head.weight", c->tie_explicit == 0, 2, cfg->vocab_size, d, &t, err))) return s;
    if (t && c->tie_explicit != 1) {
        m->lm_head = (cce_linear){.out = cfg->vocab_size, .in = d};
        if (!(m->lm_head.w = as_stored(c, t, (uint64_t)cfg->vocab_size * d, &m->lm_head.wt, err))) return CCE_ENOMEM;
        m->cfg.tied = 0;
    } else {
        m->lm_head = m->tok_emb;
        m->cfg.tied = 1;
    }
    return CCE_OK;
}

static cce_status load_gpt2(hf_ctx *c, cce_err *err) {
    cce_model *m = c->m;
    const cce_config *cfg = &m->cfg;
    int d = cfg->dim, hd = cfg->head_dim;
    cce_status s;
    char name[320], pre[256];
    const cce_st_tensor *t;
    const char *file;
    if ((s = find_tensor(c, "transformer.wte.weight", &t, &file, err))) return s;
    const char *P = c->gpt2_prefix = t ? "transformer." : "";
    snprintf(name, sizeof name, "%swte.weight", P);
    if ((s = get_tensor(c, name, 1, 2, cfg->vocab_size, d, &t, err))) return s;
    m->tok_emb = (cce_linear){.out = cfg->vocab_size, .in = d};
    if (!(m->tok_emb.w = as_stored(c, t, (uint64_t)cfg->vocab_size * d, &m->tok_emb.wt, err))) return CCE_ENOMEM;
    snprintf(name, sizeof name, "%swpe.weight", P);
    if ((s = get_tensor(c, name, 1, 2, cfg->seq_len, d, &t, err))) return s;
    if (!(m->pos_emb = as_f32(c, t, 0, (uint64_t)cfg->seq_len * d, err))) return CCE_ENOMEM;
    snprintf(name, sizeof name, "%sln_f.weight", P);
    if ((s = load_vec(c, name, d, 1, &m->final_norm, err))) return s;
    snprintf(name, sizeof name, "%sln_f.bias", P);
    if ((s = load_vec(c, name, d, 1, &m->final_norm_b, err))) return s;
    for (int l = 0; l < cfg->n_layers; l++) {
        cce_layer *L = &m->layers[l];
        if ((s = load_layer_common(c, l, L, err))) return s;
        if (L->dropped) continue;
        int hq = L->n_heads * hd, hkv = L->n_kv_heads * hd, tot = hq + 2 * hkv;
        if (L->hidden > 0) {
            snprintf(name, sizeof name, "%sh.%d.ln_2.weight", P, l);
            if ((s = load_vec(c, name, d, 1, &L->ffn_norm, err))) return s;
            snprintf(name, sizeof name, "%sh.%d.ln_2.bias", P, l);
            if ((s = load_vec(c, name, d, 1, &L->ffn_norm_b, err))) return s;
            snprintf(pre, sizeof pre, "%sh.%d.mlp.c_fc", P, l);
            if ((s = load_linear(c, pre, L->hidden, d, 1, 0, &L->w1, err))) return s;
            snprintf(pre, sizeof pre, "%sh.%d.mlp.c_proj", P, l);
            if ((s = load_linear(c, pre, d, L->hidden, 1, 0, &L->w2, err))) return s;
        }
        memset(&L->w3, 0, sizeof L->w3);
        if (L->n_heads == 0) continue;   // no attention sublayer
        snprintf(name, sizeof name, "%sh.%d.ln_1.weight", P, l);
        if ((s = load_vec(c, name, d, 1, &L->attn_norm, err))) return s;
        snprintf(name, sizeof name, "%sh.%d.ln_1.bias", P, l);
        if ((s = load_vec(c, name, d, 1, &L->attn_norm_b, err))) return s;
        snprintf(name, sizeof name, "%sh.%d.attn.c_attn.weight", P, l);
        if ((s = find_tensor(c, name, &t, &file, err))) return s;
        if (t) {
            /* fused Conv1D (d, hq + 2 hkv): columns [q | k | v] */
            if ((s = get_tensor(c, name, 1, 2, d, tot, &t, err))) return s;
            cce_linear *qkv[3] = {&L->wq, &L->wk, &L->wv};
            int col0[3] = {0, hq, hq + hkv}, outs[3] = {hq, hkv, hkv};
            const cce_st_tensor *b;
            snprintf(name, sizeof name, "%sh.%d.attn.c_attn.bias", P, l);
            if ((s = get_tensor(c, name, 1, 1, tot, 0, &b, err))) return s;
            for (int k = 0; k < 3; k++) {
                memset(qkv[k], 0, sizeof *qkv[k]);
                qkv[k]->out = outs[k];
                qkv[k]->in = d;
                if (!(qkv[k]->w = conv1d_cols(c, t, d, tot, col0[k], outs[k], err))) return CCE_ENOMEM;
                if (!(qkv[k]->b = as_f32(c, b, (uint64_t)col0[k], (uint64_t)outs[k], err))) return CCE_ENOMEM;
                drop_zero_bias(qkv[k]);
            }
        } else {
            snprintf(pre, sizeof pre, "%sh.%d.attn.q_proj", P, l);
            if ((s = load_linear(c, pre, hq, d, 1, 0, &L->wq, err))) return s;
            snprintf(pre, sizeof pre, "%sh.%d.attn.k_proj", P, l);
            if ((s = load_linear(c, pre, hkv, d, 1, 0, &L->wk, err))) return s;
            snprintf(pre, sizeof pre, "%sh.%d.attn.v_proj", P, l);
            if ((s = load_linear(c, pre, hkv, d, 1, 0, &L->wv, err))) return s;
        }
        snprintf(pre, sizeof pre, "%sh.%d.attn.c_proj", P, l);
        if ((s = load_linear(c, pre, d, hq, 1, 0, &L->wo, err))) return s;
    }
    if ((s = get_tensor(c, "lm_head.weight", c->tie_explicit == 0, 2, cfg->vocab_size, d, &t, err))) return s;
    if (t && c->tie_explicit == 0) {
        m->lm_head = (cce_linear){.out = cfg->vocab_size, .in = d};
        if (!(m->lm_head.w = as_stored(c, t, (uint64_t)cfg->vocab_size * d, &m->lm_head.wt, err))) return CCE_ENOMEM;
        m->cfg.tied = 0;
    } else {
        m->lm_head = m->tok_emb;
        m->cfg.tied = 1;
    }
    return CCE_OK;
}

cce_status cce_load_hf(const char *dir, cce_model **out, cce_err *err) {
    hf_ctx c = {0};
    cce_config cfg = {0};
    cce_status s;
    *out = NULL;
    c.dir = dir;
    if (strlen(dir) > HF_PATH_MAX - 64) return cce_err_set(err, CCE_EINVAL, "%.100s...: path too long", dir);
    snprintf(c.cfg_path, sizeof c.cfg_path, "%s/config.json", dir);
    if ((s = parse_config(&c, &cfg, err))) goto done;
    if ((s = open_weights(&c, err))) goto done;
    if ((s = cce_model_new(&cfg, &c.m, err))) goto done;
    c.m->format = CCE_FMT_HF;
    if (c.rope_freq_div) {
        float *div = cce_model_alloc(c.m, (size_t)cfg.head_dim / 2, sizeof(float));   // (head_dim/2)
        if (!div) {
            s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", dir);
            goto done;
        }
        memcpy(div, c.rope_freq_div, (size_t)(cfg.head_dim / 2) * sizeof(float));
        c.m->cfg.rope_freq_div = div;
    }
    s = cfg.arch == CCE_ARCH_GPT2 ? load_gpt2(&c, err) : load_llama(&c, err);
    if (s) goto done;
    for (int i = 0; i < c.n_shards; i++)
        if ((s = cce_model_adopt_map(c.m, &c.shards[i].map, err))) goto done;
    if (!(c.m->path = cce_strdup(dir))) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if ((s = cce_model_validate(c.m, dir, err))) goto done;
    *out = c.m;
    c.m = NULL;
done:
    cce_model_free(c.m);
    for (int i = 0; i < c.n_shards; i++) {
        if (c.shards) cce_st_close(&c.shards[i]);
        cce_free(c.shard_names[i]);
        cce_free(c.shard_paths[i]);
    }
    cce_free(c.shards);
    cce_free(c.shard_names);
    cce_free(c.shard_paths);
    cJSON_Delete(c.index);
    cce_free(c.wm_name);
    cce_free(c.wm_shard);
    if (c.spec)
        for (int l = 0; l < cfg.n_layers; l++) cce_free(c.spec[l].head_kv);
    cce_free(c.spec);
    cce_free(c.rope_freq_div);
    return s;
}
