/*
 * synth.c — random-weight HF directories of real shapes (see synth.h).
 *
 * The tensor list is the same naming cce_export_hf writes (Llama family or GPT-2 with the
 * "transformer." prefix and Conv1D layout), produced here from the config alone, without a
 * cce_model: the writer calls fill() for each tensor in chunks and fill() draws from an RNG
 * seeded by (seed, tensor index), so memory stays at one chunk and the output depends only on
 * the seed. config.json comes from cce_export_config, so synth and export agree on keys.
 */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "export.h"
#include "safetensors.h"

typedef struct {
    const char *name;
    cce_arch arch;
    int dim, n_layers, n_heads, n_kv_heads, hidden, vocab, seq_len, tied, qkv_bias, bos, eos;
    float eps, theta;
} synth_shape;

static const synth_shape shapes[] = {
    {"tiny", CCE_ARCH_LLAMA, 64, 2, 4, 2, 128, 512, 256, 1, 0, 1, 2, 1e-5f, 10000.0f},
    {"smollm-135m", CCE_ARCH_LLAMA, 576, 30, 9, 3, 1536, 49152, 2048, 1, 0, 0, 0, 1e-5f, 10000.0f},
    {"gpt2", CCE_ARCH_GPT2, 768, 12, 12, 12, 3072, 50257, 1024, 1, 0, 50256, 50256, 1e-5f, 10000.0f},
    {"qwen2.5-0.5b", CCE_ARCH_LLAMA, 896, 24, 14, 2, 4864, 151936, 32768, 1, 1, 151643, 151643, 1e-6f, 1e6f},
    {"llama-3.2-1b", CCE_ARCH_LLAMA, 2048, 16, 32, 8, 8192, 128256, 131072, 1, 0, 128000, 128001, 1e-5f, 500000.0f},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

const char *cce_synth_names(void) { return "tiny smollm-135m gpt2 qwen2.5-0.5b llama-3.2-1b"; }

cce_status cce_synth_config(const char *like, cce_config *cfg, int *qkv_bias, cce_err *err) {
    for (int i = 0; i < N_SHAPES; i++) {
        const synth_shape *s = &shapes[i];
        if (strcmp(like, s->name)) continue;
        memset(cfg, 0, sizeof *cfg);
        cfg->arch = s->arch;
        cfg->dim = s->dim;
        cfg->n_layers = s->n_layers;
        cfg->n_heads = s->n_heads;
        cfg->n_kv_heads = s->n_kv_heads;
        cfg->head_dim = s->dim / s->n_heads;
        cfg->hidden_dim = s->hidden;
        cfg->vocab_size = s->vocab;
        cfg->seq_len = s->seq_len;
        cfg->norm_eps = s->eps;
        cfg->rope_theta = s->theta;
        cfg->rope_interleaved = 0;
        cfg->tied = s->tied;
        cfg->bos_id = s->bos;
        cfg->eos_id = s->eos;
        if (qkv_bias) *qkv_bias = s->qkv_bias;
        return CCE_OK;
    }
    return cce_err_set(err, CCE_EINVAL, "synth: unknown shape '%s' (known: %s)", like, cce_synth_names());
}

typedef enum { INIT_NORMAL, INIT_ONES, INIT_ZEROS } init_kind;

typedef struct {
    cce_st_entry *e;       // (cap)
    init_kind *init;       // (cap)
    char (*names)[128];    // (cap)
    int n, cap;
    uint64_t seed;
    int cur;               // tensor whose RNG stream is in rng
    cce_rng rng;
} synth_list;

static cce_status push(synth_list *sl, const char *name, int nd, int64_t d0, int64_t d1, init_kind k,
                       cce_err *err) {
    if (sl->n == sl->cap) {
        int cap = sl->cap ? 2 * sl->cap : 128;
        cce_st_entry *e = cce_realloc(sl->e, (size_t)cap, sizeof *e);
        if (e) sl->e = e;
        init_kind *in = cce_realloc(sl->init, (size_t)cap, sizeof *in);
        if (in) sl->init = in;
        char (*nm)[128] = cce_realloc(sl->names, (size_t)cap, sizeof *nm);
        if (nm) sl->names = nm;
        if (!e || !in || !nm) return cce_err_set(err, CCE_ENOMEM, "synth: out of memory");
        sl->cap = cap;
    }
    int i = sl->n++;
    memset(&sl->e[i], 0, sizeof sl->e[i]);
    snprintf(sl->names[i], sizeof sl->names[i], "%s", name);
    sl->e[i].dtype = CCE_ST_F32;
    sl->e[i].n_dims = nd;
    sl->e[i].shape[0] = d0;
    sl->e[i].shape[1] = d1;
    sl->init[i] = k;
    return CCE_OK;
}

static cce_status fill(void *user, int i, uint64_t first, size_t count, float *buf, cce_err *err) {
    synth_list *sl = user;
    (void)err;
    if (sl->init[i] != INIT_NORMAL) {
        float v = sl->init[i] == INIT_ONES ? 1.0f : 0.0f;
        for (size_t k = 0; k < count; k++) buf[k] = v;
        return CCE_OK;
    }
    if (sl->cur != i || first == 0) { /* a fresh stream per tensor */
        cce_rng_seed(&sl->rng, sl->seed * 0x100000001b3ull + (uint64_t)i + 1);
        sl->cur = i;
    }
    /* Box-Muller, both outputs used (half the transcendental work of cce_rng_normal) */
    for (size_t k = 0; k < count; k += 2) {
        float u1 = cce_rng_uniform(&sl->rng), u2 = cce_rng_uniform(&sl->rng);
        if (u1 < 1e-12f) u1 = 1e-12f;
        float r = 0.02f * sqrtf(-2.0f * logf(u1)), sn, cs;
        sincosf(6.2831853f * u2, &sn, &cs);
        buf[k] = r * cs;
        if (k + 1 < count) buf[k + 1] = r * sn;
    }
    return CCE_OK;
}

static cce_status list_tensors(const cce_config *c, int qkv_bias, synth_list *sl, cce_err *err) {
    char nm[128];
    cce_status s;
    int d = c->dim, hq = c->n_heads * c->head_dim, hkv = c->n_kv_heads * c->head_dim, m = c->hidden_dim;
#define PUSH(nd, a, b, k) do { if ((s = push(sl, nm, nd, a, b, k, err))) return s; } while (0)
    if (c->arch == CCE_ARCH_GPT2) {
        snprintf(nm, sizeof nm, "transformer.wte.weight"); PUSH(2, c->vocab_size, d, INIT_NORMAL);
        snprintf(nm, sizeof nm, "transformer.wpe.weight"); PUSH(2, c->seq_len, d, INIT_NORMAL);
        for (int l = 0; l < c->n_layers; l++) {
            snprintf(nm, sizeof nm, "transformer.h.%d.ln_1.weight", l); PUSH(1, d, 0, INIT_ONES);
            snprintf(nm, sizeof nm, "transformer.h.%d.ln_1.bias", l); PUSH(1, d, 0, INIT_ZEROS);
            snprintf(nm, sizeof nm, "transformer.h.%d.attn.c_attn.weight", l); PUSH(2, d, hq + 2 * hkv, INIT_NORMAL);
            snprintf(nm, sizeof nm, "transformer.h.%d.attn.c_attn.bias", l); PUSH(1, hq + 2 * hkv, 0, INIT_NORMAL);
            snprintf(nm, sizeof nm, "transformer.h.%d.attn.c_proj.weight", l); PUSH(2, hq, d, INIT_NORMAL);
            snprintf(nm, sizeof nm, "transformer.h.%d.attn.c_proj.bias", l); PUSH(1, d, 0, INIT_NORMAL);
            snprintf(nm, sizeof nm, "transformer.h.%d.ln_2.weight", l); PUSH(1, d, 0, INIT_ONES);
            snprintf(nm, sizeof nm, "transformer.h.%d.ln_2.bias", l); PUSH(1, d, 0, INIT_ZEROS);
            snprintf(nm, sizeof nm, "transformer.h.%d.mlp.c_fc.weight", l); PUSH(2, d, m, INIT_NORMAL);
            snprintf(nm, sizeof nm, "transformer.h.%d.mlp.c_fc.bias", l); PUSH(1, m, 0, INIT_NORMAL);
            snprintf(nm, sizeof nm, "transformer.h.%d.mlp.c_proj.weight", l); PUSH(2, m, d, INIT_NORMAL);
            snprintf(nm, sizeof nm, "transformer.h.%d.mlp.c_proj.bias", l); PUSH(1, d, 0, INIT_NORMAL);
        }
        snprintf(nm, sizeof nm, "transformer.ln_f.weight"); PUSH(1, d, 0, INIT_ONES);
        snprintf(nm, sizeof nm, "transformer.ln_f.bias"); PUSH(1, d, 0, INIT_ZEROS);
    } else {
        snprintf(nm, sizeof nm, "model.embed_tokens.weight"); PUSH(2, c->vocab_size, d, INIT_NORMAL);
        for (int l = 0; l < c->n_layers; l++) {
            snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l); PUSH(1, d, 0, INIT_ONES);
            snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l); PUSH(1, d, 0, INIT_ONES);
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_proj.weight", l); PUSH(2, hq, d, INIT_NORMAL);
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_proj.weight", l); PUSH(2, hkv, d, INIT_NORMAL);
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.v_proj.weight", l); PUSH(2, hkv, d, INIT_NORMAL);
            if (qkv_bias) {
                snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_proj.bias", l); PUSH(1, hq, 0, INIT_NORMAL);
                snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_proj.bias", l); PUSH(1, hkv, 0, INIT_NORMAL);
                snprintf(nm, sizeof nm, "model.layers.%d.self_attn.v_proj.bias", l); PUSH(1, hkv, 0, INIT_NORMAL);
            }
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.o_proj.weight", l); PUSH(2, d, hq, INIT_NORMAL);
            snprintf(nm, sizeof nm, "model.layers.%d.mlp.gate_proj.weight", l); PUSH(2, m, d, INIT_NORMAL);
            snprintf(nm, sizeof nm, "model.layers.%d.mlp.up_proj.weight", l); PUSH(2, m, d, INIT_NORMAL);
            snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", l); PUSH(2, d, m, INIT_NORMAL);
        }
        snprintf(nm, sizeof nm, "model.norm.weight"); PUSH(1, d, 0, INIT_ONES);
    }
    if (!c->tied) {
        snprintf(nm, sizeof nm, "lm_head.weight");
        PUSH(2, c->vocab_size, d, INIT_NORMAL);
    }
#undef PUSH
    return CCE_OK;
}

cce_status cce_synth_ex(const char *like, uint64_t seed, const char *dir, uint64_t *bytes_out, cce_err *err) {
    cce_config cfg;
    int qkv_bias = 0;
    synth_list sl = {0};
    char path[4200];
    cce_status s;
    struct stat st;
    if ((s = cce_synth_config(like, &cfg, &qkv_bias, err))) return s;
    if (strlen(dir) > 4000) return cce_err_set(err, CCE_EINVAL, "%.100s...: path too long", dir);
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return cce_err_set(err, CCE_EINVAL, "%s: exists and is not a directory", dir);
    } else if (mkdir(dir, 0777) != 0) {
        return cce_err_set(err, CCE_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    }
    sl.seed = seed;
    sl.cur = -1;
    if ((s = list_tensors(&cfg, qkv_bias, &sl, err))) goto done;
    for (int i = 0; i < sl.n; i++) sl.e[i].name = sl.names[i];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    static const char *const meta[2] = {"format", "pt"};
    if ((s = cce_st_write(path, sl.e, sl.n, meta, 1, fill, &sl, bytes_out, err))) goto done;
    snprintf(path, sizeof path, "%s/config.json", dir);
    s = cce_export_config(&cfg,
                          cfg.arch == CCE_ARCH_GPT2 ? "GPT2LMHeadModel" : qkv_bias ? "Qwen2ForCausalLM"
                                                                                   : "LlamaForCausalLM",
                          0, NULL, path, err);
done:
    cce_free(sl.e);
    cce_free(sl.init);
    cce_free(sl.names);
    return s;
}

cce_status cce_synth(const char *like, uint64_t seed, const char *dir, cce_err *err) {
    return cce_synth_ex(like, seed, dir, NULL, err);
}
