/*
 * export.c — write a cce_model as a Hugging Face directory (see export.h for the naming).
 *
 * The model is never copied: each output tensor is described by a small "source" record —
 * a plain pointer, rows permuted within RoPE heads, a Conv1D transpose, or GPT-2's fused
 * q|k|v — and the safetensors writer pulls it through a fill callback in 1M-float chunks, so
 * exporting needs one chunk buffer of extra memory whatever the model size. Tensors that need
 * no rearranging are handed to the writer as plain pointers.
 *
 * config.json is built with cJSON, but floats are written as raw text in their shortest form
 * that reads back to the same f32 (cJSON would print 1e-5f as 9.99999974737875e-06).
 */
#include "export.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "safetensors.h"

typedef enum {
    SRC_PLAIN,      // a (rows, cols) as is
    SRC_PERM_ROWS,  // a (rows, cols) with rows permuted within heads of hd rows: interleaved -> half
    SRC_CONV1D,     // a (rows=out, cols=in) written transposed: (in, out)
    SRC_QKV,        // fused Conv1D (in, qo+ko+vo) from q (qo, in), k (ko, in), v (vo, in)
    SRC_QKV_BIAS,   // (qo+ko+vo) from three biases (NULL = zeros)
    SRC_ZERO,       // zeros: a bias the config declares but this block does not have
} src_kind;

typedef struct {
    src_kind kind;
    const float *a, *b, *c;
    const cce_linear *lin;   // PLAIN / PERM_ROWS: rows decoded from this weight (any stored type) instead of a
    int rows, cols, hd;
    int qo, ko, vo, in;
} src_spec;

typedef struct {
    cce_st_entry *e;    // (cap)
    src_spec *src;      // (cap)
    char (*names)[160]; // (cap)
    int n, cap;
    float *row;         // (row_cap) the last weight row decoded for a `lin` source
    int row_cap, row_entry;
    uint64_t row_idx;
} tensor_list;

static cce_status list_push(tensor_list *tl, const char *name, int rows, int cols, int nd, src_spec sp,
                            cce_err *err) {
    if (tl->n == tl->cap) {
        int cap = tl->cap ? tl->cap * 2 : 64;
        cce_st_entry *e = cce_realloc(tl->e, (size_t)cap, sizeof *e);
        if (e) tl->e = e;
        src_spec *s = cce_realloc(tl->src, (size_t)cap, sizeof *s);
        if (s) tl->src = s;
        char (*nm)[160] = cce_realloc(tl->names, (size_t)cap, sizeof *nm);
        if (nm) tl->names = nm;
        if (!e || !s || !nm) return cce_err_set(err, CCE_ENOMEM, "export: out of memory");
        tl->cap = cap;
    }
    int i = tl->n++;
    snprintf(tl->names[i], sizeof tl->names[i], "%s", name);
    memset(&tl->e[i], 0, sizeof tl->e[i]);
    tl->e[i].dtype = CCE_ST_F32;
    tl->e[i].n_dims = nd;
    tl->e[i].shape[0] = rows;
    tl->e[i].shape[1] = cols;
    tl->src[i] = sp;
    /* names are bound after the list stops growing (realloc moves them) */
    return CCE_OK;
}

/* Element (r, col) of a weight source: from its pointer, or from the row cache of tl. */
static float src_at(tensor_list *tl, int i, const src_spec *s, uint64_t r, uint64_t col) {
    if (!s->lin) return s->a[r * (uint64_t)s->cols + col];
    if (tl->row_entry != i || tl->row_idx != r) {
        cce_linear_rows(s->lin, (int)r, 1, tl->row);
        tl->row_entry = i;
        tl->row_idx = r;
    }
    return tl->row[col];
}

static cce_status fill_src(void *user, int i, uint64_t first, size_t count, float *buf, cce_err *err) {
    tensor_list *tl = user;
    const src_spec *s = &tl->src[i];
    for (size_t k = 0; k < count; k++) {
        uint64_t idx = first + k;
        float v = 0;
        switch (s->kind) {
        case SRC_PLAIN:
            v = s->lin ? src_at(tl, i, s, idx / (uint64_t)s->cols, idx % (uint64_t)s->cols) : s->a[idx];
            break;
        case SRC_PERM_ROWS: {
            uint64_t r = idx / (uint64_t)s->cols, col = idx % (uint64_t)s->cols;
            uint64_t h = r / (uint64_t)s->hd, j = r % (uint64_t)s->hd, half = (uint64_t)s->hd / 2;
            uint64_t old = j < half ? 2 * j : 2 * (j - half) + 1;
            v = src_at(tl, i, s, h * (uint64_t)s->hd + old, col);
            break;
        }
        case SRC_CONV1D: { /* written (in=cols, out=rows): element (r_in, c_out) = a[c_out][r_in] */
            uint64_t rin = idx / (uint64_t)s->rows, cout = idx % (uint64_t)s->rows;
            v = s->a[cout * (uint64_t)s->cols + rin];
            break;
        }
        case SRC_QKV: {
            uint64_t tot = (uint64_t)(s->qo + s->ko + s->vo);
            uint64_t rin = idx / tot, c = idx % tot;
            if (c < (uint64_t)s->qo) v = s->a[c * (uint64_t)s->in + rin];
            else if (c < (uint64_t)(s->qo + s->ko)) v = s->b[(c - (uint64_t)s->qo) * (uint64_t)s->in + rin];
            else v = s->c[(c - (uint64_t)(s->qo + s->ko)) * (uint64_t)s->in + rin];
            break;
        }
        case SRC_ZERO:
            v = 0;
            break;
        case SRC_QKV_BIAS:
            if (idx < (uint64_t)s->qo) v = s->a ? s->a[idx] : 0;
            else if (idx < (uint64_t)(s->qo + s->ko)) v = s->b ? s->b[idx - (uint64_t)s->qo] : 0;
            else v = s->c ? s->c[idx - (uint64_t)(s->qo + s->ko)] : 0;
            break;
        }
        buf[k] = v;
    }
    (void)err;
    return CCE_OK;
}

static src_spec plain(const float *a) { return (src_spec){.kind = SRC_PLAIN, .a = a}; }

/* A dense weight as a source: its f32 data as is, or decoded row by row from its stored type. */
static src_spec weight_src(const cce_linear *l) {
    const float *w = cce_linear_f32(l);
    return w ? (src_spec){.kind = SRC_PLAIN, .a = w, .rows = l->out, .cols = l->in}
             : (src_spec){.kind = SRC_PLAIN, .lin = l, .rows = l->out, .cols = l->in};
}

/* A linear under prefix: dense ".weight" or low-rank ".weight_u"/".weight_v", plus ".bias"
 * (zeros when the linear has none but force_bias says the config declares one).
 * perm_hd > 0: permute output rows within heads of perm_hd (RoPE convention change).
 * conv1d: dense weight written (in, out). */
static cce_status push_linear(tensor_list *tl, const char *prefix, const cce_linear *l, int perm_hd, int conv1d,
                              int force_bias, cce_err *err) {
    char name[200];
    cce_status s;
    if (l->rank > 0) {
        snprintf(name, sizeof name, "%s.weight_u", prefix);
        src_spec su = perm_hd ? (src_spec){.kind = SRC_PERM_ROWS, .a = l->u, .rows = l->out, .cols = l->rank,
                                           .hd = perm_hd}
                              : plain(l->u);
        if ((s = list_push(tl, name, l->out, l->rank, 2, su, err))) return s;
        snprintf(name, sizeof name, "%s.weight_v", prefix);
        if ((s = list_push(tl, name, l->rank, l->in, 2, plain(l->v), err))) return s;
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        if (conv1d) {   // GPT-2 weights are always f32 (the loader transposes them into f32)
            if (!cce_linear_f32(l)) return cce_err_set(err, CCE_EUNSUPPORTED, "export: %s is not f32", prefix);
            src_spec sc = {.kind = SRC_CONV1D, .a = cce_linear_f32(l), .rows = l->out, .cols = l->in};
            if ((s = list_push(tl, name, l->in, l->out, 2, sc, err))) return s;
        } else {
            src_spec sw = weight_src(l);
            if (perm_hd) sw.kind = SRC_PERM_ROWS, sw.hd = perm_hd;
            if ((s = list_push(tl, name, l->out, l->in, 2, sw, err))) return s;
        }
    }
    if (l->b) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        src_spec sb = perm_hd ? (src_spec){.kind = SRC_PERM_ROWS, .a = l->b, .rows = l->out, .cols = 1, .hd = perm_hd}
                              : plain(l->b);
        if ((s = list_push(tl, name, l->out, 0, 1, sb, err))) return s;
    } else if (force_bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        if ((s = list_push(tl, name, l->out, 0, 1, (src_spec){.kind = SRC_ZERO}, err))) return s;
    }
    return CCE_OK;
}

/* What is written: the live blocks renumbered 0..n-1 (dropped blocks are simply absent, which
 * a standard config expresses), and a config whose head counts / FFN width are the blocks' own
 * when every block agrees (a uniformly pruned model stays a standard HF model). Only shapes a
 * standard config cannot express (non-uniform blocks, explicit head->KV maps, GPT-2 head
 * pruning) make per_layer = 1, i.e. a "cce_layers" entry per written block. */
typedef struct {
    cce_config cfg;     // effective config (n_layers = written blocks)
    int *src;           // (cfg.n_layers) source block of each written block
    int per_layer;
    int n_dropped;
} export_layout;

/* 1 if L's head -> KV map is the default grouping h / (n_heads / n_kv_heads). */
static int head_kv_default(const cce_layer *L) {
    if (L->n_heads == 0) return 1;
    if (L->n_heads % L->n_kv_heads) return 0;
    if (!L->head_kv) return 1;
    for (int h = 0; h < L->n_heads; h++)
        if (L->head_kv[h] != h / (L->n_heads / L->n_kv_heads)) return 0;
    return 1;
}

static cce_status layout_build(const cce_model *m, export_layout *lo, const char *what, cce_err *err) {
    const cce_config *c = &m->cfg;
    memset(lo, 0, sizeof *lo);
    lo->cfg = *c;
    lo->src = cce_alloc((size_t)c->n_layers, sizeof *lo->src);
    if (!lo->src) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", what);
    int n = 0;
    for (int l = 0; l < c->n_layers; l++)
        if (!m->layers[l].dropped) lo->src[n++] = l;
    lo->n_dropped = c->n_layers - n;
    if (n == 0) return cce_err_set(err, CCE_EINVAL, "%s: every block of the model is dropped; nothing to export", what);
    lo->cfg.n_layers = n;
    const cce_layer *F = &m->layers[lo->src[0]];
    int uni_heads = 1, uni_hidden = 1;
    for (int i = 0; i < n; i++) {   // a block without attention or FFN needs cce_layers
        const cce_layer *L = &m->layers[lo->src[i]];
        uni_heads &= L->n_heads == F->n_heads && L->n_kv_heads == F->n_kv_heads && head_kv_default(L) && L->n_heads > 0;
        uni_hidden &= L->hidden == F->hidden && L->hidden > 0;
    }
    if (uni_hidden) lo->cfg.hidden_dim = F->hidden;
    /* GPT-2 configs derive head_dim from n_embd / n_head and have no KV heads */
    if (uni_heads && c->arch == CCE_ARCH_GPT2 && (F->n_heads != c->n_heads || F->n_kv_heads != F->n_heads))
        uni_heads = 0;
    if (uni_heads) {
        lo->cfg.n_heads = F->n_heads;
        lo->cfg.n_kv_heads = F->n_kv_heads;
    }
    lo->per_layer = !uni_heads || !uni_hidden;
    return CCE_OK;
}

static cce_status list_llama(const cce_model *m, const export_layout *lo, int bias_flags, tensor_list *tl,
                             cce_err *err) {
    const cce_config *c = &m->cfg;
    int perm = c->rope_interleaved ? c->head_dim : 0;
    char pre[160];
    cce_status s;
    if ((s = list_push(tl, "model.embed_tokens.weight", c->vocab_size, c->dim, 2, weight_src(&m->tok_emb), err)))
        return s;
    for (int l = 0; l < lo->cfg.n_layers; l++) {
        const cce_layer *L = &m->layers[lo->src[l]];
        if (L->n_heads > 0) {
            snprintf(pre, sizeof pre, "model.layers.%d.input_layernorm.weight", l);
            if ((s = list_push(tl, pre, c->dim, 0, 1, plain(L->attn_norm), err))) return s;
        }
        if (L->hidden > 0) {
            snprintf(pre, sizeof pre, "model.layers.%d.post_attention_layernorm.weight", l);
            if ((s = list_push(tl, pre, c->dim, 0, 1, plain(L->ffn_norm), err))) return s;
        }
        static const char *const nm[CCE_LIN_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                      "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        for (int k = 0; k < CCE_LIN_COUNT; k++) {
            const cce_linear *lin = cce_layer_lin_c(L, k);
            if (!cce_linear_present(lin)) continue;   // empty sublayer
            snprintf(pre, sizeof pre, "model.layers.%d.%s", l, nm[k]);
            int force = k < 3 ? (bias_flags & (CCE_EXPORT_ATTN_BIAS | CCE_EXPORT_QKV_BIAS)) != 0
                      : k == 3 ? (bias_flags & CCE_EXPORT_ATTN_BIAS) != 0 : (bias_flags & CCE_EXPORT_MLP_BIAS) != 0;
            if ((s = push_linear(tl, pre, lin, k < 2 ? perm : 0, 0, force, err))) return s;
        }
    }
    if ((s = list_push(tl, "model.norm.weight", c->dim, 0, 1, plain(m->final_norm), err))) return s;
    if (!c->tied && (s = list_push(tl, "lm_head.weight", c->vocab_size, c->dim, 2, weight_src(&m->lm_head), err)))
        return s;
    return CCE_OK;
}

static cce_status list_gpt2(const cce_model *m, const export_layout *lo, tensor_list *tl, cce_err *err) {
    const cce_config *c = &m->cfg;
    char pre[160];
    cce_status s;
    if ((s = list_push(tl, "transformer.wte.weight", c->vocab_size, c->dim, 2, weight_src(&m->tok_emb), err))) return s;
    if ((s = list_push(tl, "transformer.wpe.weight", c->seq_len, c->dim, 2, plain(m->pos_emb), err))) return s;
    for (int l = 0; l < lo->cfg.n_layers; l++) {
        const cce_layer *L = &m->layers[lo->src[l]];
        const float *vec[4] = {L->attn_norm, L->attn_norm_b, L->ffn_norm, L->ffn_norm_b};
        static const char *const vn[4] = {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"};
        for (int k = 0; k < 4; k++) {
            if ((k < 2 && L->n_heads == 0) || (k >= 2 && L->hidden == 0)) continue;
            snprintf(pre, sizeof pre, "transformer.h.%d.%s", l, vn[k]);
            if ((s = list_push(tl, pre, c->dim, 0, 1, plain(vec[k]), err))) return s;
        }
        if (L->hidden > 0) {
            snprintf(pre, sizeof pre, "transformer.h.%d.mlp.c_fc", l);
            if ((s = push_linear(tl, pre, &L->w1, 0, 1, 0, err))) return s;
            snprintf(pre, sizeof pre, "transformer.h.%d.mlp.c_proj", l);
            if ((s = push_linear(tl, pre, &L->w2, 0, 1, 0, err))) return s;
        }
        if (L->n_heads == 0) continue;
        if (L->wq.rank == 0 && L->wk.rank == 0 && L->wv.rank == 0) {
            if (!cce_linear_f32(&L->wq) || !cce_linear_f32(&L->wk) || !cce_linear_f32(&L->wv))
                return cce_err_set(err, CCE_EUNSUPPORTED, "export: GPT-2 block %d q/k/v are not f32", l);
            int tot = L->wq.out + L->wk.out + L->wv.out;
            src_spec q = {.kind = SRC_QKV, .a = cce_linear_f32(&L->wq), .b = cce_linear_f32(&L->wk),
                          .c = cce_linear_f32(&L->wv), .qo = L->wq.out,
                          .ko = L->wk.out, .vo = L->wv.out, .in = c->dim};
            snprintf(pre, sizeof pre, "transformer.h.%d.attn.c_attn.weight", l);
            if ((s = list_push(tl, pre, c->dim, tot, 2, q, err))) return s;
            q.kind = SRC_QKV_BIAS;
            q.a = L->wq.b;
            q.b = L->wk.b;
            q.c = L->wv.b;
            snprintf(pre, sizeof pre, "transformer.h.%d.attn.c_attn.bias", l);
            if ((s = list_push(tl, pre, tot, 0, 1, q, err))) return s;
        } else {
            static const char *const qn[3] = {"q_proj", "k_proj", "v_proj"};
            const cce_linear *ql[3] = {&L->wq, &L->wk, &L->wv};
            for (int k = 0; k < 3; k++) {
                snprintf(pre, sizeof pre, "transformer.h.%d.attn.%s", l, qn[k]);
                if ((s = push_linear(tl, pre, ql[k], 0, 1, 0, err))) return s;
            }
        }
        snprintf(pre, sizeof pre, "transformer.h.%d.attn.c_proj", l);
        if ((s = push_linear(tl, pre, &L->wo, 0, 1, 0, err))) return s;
    }
    if ((s = list_push(tl, "transformer.ln_f.weight", c->dim, 0, 1, plain(m->final_norm), err))) return s;
    if ((s = list_push(tl, "transformer.ln_f.bias", c->dim, 0, 1, plain(m->final_norm_b), err))) return s;
    if (!c->tied && (s = list_push(tl, "lm_head.weight", c->vocab_size, c->dim, 2, weight_src(&m->lm_head), err)))
        return s;
    return CCE_OK;
}

/* ---- config.json ---- */

/* Shortest decimal text that reads back as the same f32. */
static void add_float(cJSON *o, const char *key, float f) {
    char buf[48];
    if (f == (float)(long long)f && f > -1e15f && f < 1e15f) { /* integral: no exponent form */
        snprintf(buf, sizeof buf, "%lld", (long long)f);
        cJSON_AddRawToObject(o, key, buf);
        return;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    cJSON_AddRawToObject(o, key, buf);
}

static void add_token(cJSON *o, const char *key, int id) {
    if (id >= 0) cJSON_AddNumberToObject(o, key, id);
    else cJSON_AddNullToObject(o, key);
}

/* Write config.json for the effective config c; lo (may be NULL) adds the per-block keys. */
static cce_status write_config(const cce_config *c, const char *architecture, int bias_flags, int dtype,
                               const cce_model *m, const export_layout *lo, const char *path, cce_err *err) {
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    cce_status s = CCE_OK;
    if (!o) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
    const char *arch[1] = {architecture};
    cJSON_AddItemToObject(o, "architectures", cJSON_CreateStringArray(arch, 1));
    if (c->arch == CCE_ARCH_GPT2) {
        cJSON_AddStringToObject(o, "model_type", "gpt2");
        cJSON_AddNumberToObject(o, "n_embd", c->dim);
        cJSON_AddNumberToObject(o, "n_layer", c->n_layers);
        cJSON_AddNumberToObject(o, "n_head", c->n_heads);
        cJSON_AddNumberToObject(o, "n_inner", c->hidden_dim);
        cJSON_AddNumberToObject(o, "n_positions", c->seq_len);
        cJSON_AddNumberToObject(o, "n_ctx", c->seq_len);
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        add_float(o, "layer_norm_epsilon", c->norm_eps);
        cJSON_AddStringToObject(o, "activation_function", "gelu_new");
    } else {
        int qwen = !strcmp(architecture, "Qwen2ForCausalLM"), mistral = !strcmp(architecture, "MistralForCausalLM");
        cJSON_AddStringToObject(o, "model_type", qwen ? "qwen2" : mistral ? "mistral" : "llama");
        cJSON_AddNumberToObject(o, "hidden_size", c->dim);
        cJSON_AddNumberToObject(o, "intermediate_size", c->hidden_dim);
        cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
        cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
        cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
        cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(o, "max_position_embeddings", c->seq_len);
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        add_float(o, "rms_norm_eps", c->norm_eps);
        add_float(o, "rope_theta", c->rope_theta);
        cJSON_AddStringToObject(o, "hidden_act", "silu");
        if (c->rope_scaling != CCE_ROPE_SCALING_NONE) {
            cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
            if (rs) {
                int l3 = c->rope_scaling == CCE_ROPE_SCALING_LLAMA3;
                cJSON_AddStringToObject(rs, "rope_type", l3 ? "llama3" : "linear");
                add_float(rs, "factor", c->rope_factor);
                if (l3) {
                    add_float(rs, "low_freq_factor", c->rope_low_freq_factor);
                    add_float(rs, "high_freq_factor", c->rope_high_freq_factor);
                    cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_orig_ctx);
                }
            }
        }
        if (c->rope_freq_div) {   /* per-pair divisors (from GGUF rope_freqs): a cce extension */
            cJSON *a = cJSON_AddArrayToObject(o, "cce_rope_freq_div");
            for (int j = 0; a && j < c->head_dim / 2; j++) {
                cJSON *tmp = cJSON_CreateObject();
                add_float(tmp, "v", c->rope_freq_div[j]);
                cJSON *v = tmp ? cJSON_DetachItemFromObject(tmp, "v") : NULL;
                cJSON_Delete(tmp);
                if (v) cJSON_AddItemToArray(a, v);
            }
        }
        if (qwen) {
            cJSON_AddBoolToObject(o, "use_sliding_window", c->sliding_window > 0);
            if (c->sliding_window > 0) {
                cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
                cJSON_AddNumberToObject(o, "max_window_layers", 0);
            }
        } else {
            if (mistral) cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
            cJSON_AddBoolToObject(o, "attention_bias", (bias_flags & CCE_EXPORT_ATTN_BIAS) != 0);
            cJSON_AddBoolToObject(o, "mlp_bias", (bias_flags & CCE_EXPORT_MLP_BIAS) != 0);
        }
    }
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied);
    add_token(o, "bos_token_id", c->bos_id);
    add_token(o, "eos_token_id", c->eos_id);
    cJSON_AddStringToObject(o, "torch_dtype", dtype == CCE_ST_F16 ? "float16" : dtype == CCE_ST_BF16 ? "bfloat16" : "float32");
    if (lo && lo->n_dropped) /* provenance only: which source blocks were kept (not read back) */
        cJSON_AddItemToObject(o, "cce_kept_layers", cJSON_CreateIntArray(lo->src, lo->cfg.n_layers));
    if (lo && lo->per_layer) {
        cJSON *arr = cJSON_AddArrayToObject(o, "cce_layers");
        for (int l = 0; arr && l < c->n_layers; l++) {
            const cce_layer *L = &m->layers[lo->src[l]];
            cJSON *e = cJSON_CreateObject();
            if (!e) break;
            cJSON_AddItemToArray(arr, e);
            cJSON_AddNumberToObject(e, "n_heads", L->n_heads);
            cJSON_AddNumberToObject(e, "n_kv_heads", L->n_kv_heads);
            cJSON_AddNumberToObject(e, "hidden", L->hidden);
            if (!head_kv_default(L))
                cJSON_AddItemToObject(e, "head_kv", cJSON_CreateIntArray(L->head_kv, L->n_heads));
        }
    }
    text = cJSON_Print(o);
    if (!text) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t len = strlen(text);
    char *withnl = cce_alloc(len + 2, 1);
    if (!withnl) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    memcpy(withnl, text, len);
    withnl[len] = '\n';
    withnl[len + 1] = 0;
    s = cce_write_file_atomic(path, withnl, len + 1, err);
    cce_free(withnl);
done:
    cJSON_free(text);
    cJSON_Delete(o);
    return s;
}

cce_status cce_export_config(const cce_config *cfg, const char *architecture, int bias_flags,
                             const cce_model *m, const char *path, cce_err *err) {
    if (!m) return write_config(cfg, architecture, bias_flags, CCE_ST_F32, NULL, NULL, path, err);
    export_layout lo;
    cce_status s = layout_build(m, &lo, path, err);
    if (!s) s = write_config(&lo.cfg, architecture, bias_flags, CCE_ST_F32, m, &lo, path, err);
    cce_free(lo.src);
    return s;
}

/* ---- directory ---- */

static cce_status ensure_dir(const char *dir, cce_err *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return cce_err_set(err, CCE_EINVAL, "%s: exists and is not a directory", dir);
        return CCE_OK;
    }
    if (mkdir(dir, 0777) != 0)
        return cce_err_set(err, CCE_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    return CCE_OK;
}

uint64_t cce_export_dir_bytes(const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    uint64_t total = 0;
    char p[4200];
    for (int i = 0; i < 3; i++) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (uint64_t)st.st_size;
    }
    return total;
}

cce_status cce_export_hf(const cce_model *m, const cce_tokenizer *tok, const char *dir, cce_err *err) {
    return cce_export_hf_dtype(m, tok, dir, CCE_ST_F32, err);
}

cce_status cce_export_hf_dtype(const cce_model *m, const cce_tokenizer *tok, const char *dir, int dtype,
                               cce_err *err) {
    const cce_config *c = &m->cfg;
    tensor_list tl = {0};
    export_layout lo = {0};
    char path[4200];
    cce_status s;
    if (strlen(dir) > 4000) return cce_err_set(err, CCE_EINVAL, "%.100s...: path too long", dir);
    if (dtype != CCE_ST_F32 && dtype != CCE_ST_F16 && dtype != CCE_ST_BF16)
        return cce_err_set(err, CCE_EINVAL, "%s: export dtype %s is not supported (F32, F16, BF16)", dir,
                           cce_st_dtype_name(dtype));
    if ((s = ensure_dir(dir, err))) return s;

    /* Family and bias flags. Biases a block lacks but the config declares are written as
     * zeros, so any mix of biases stays a standard model: q/k/v biases only -> Qwen2; an o bias
     * anywhere -> Llama with attention_bias (q/k/v/o); an FFN bias anywhere (e.g. an encoding
     * bias on down_proj) -> Llama with mlp_bias (gate/up/down), plus attention_bias when any
     * attention bias exists (Qwen2 has no mlp_bias). */
    const char *arch = "GPT2LMHeadModel";
    int bias_flags = 0;
    if (c->arch == CCE_ARCH_LLAMA) {
        int any_qkv = 0, any_o = 0, any_mlp = 0;
        for (int l = 0; l < c->n_layers; l++) {
            const cce_layer *L = &m->layers[l];
            if (L->dropped) continue;
            any_qkv |= L->wq.b || L->wk.b || L->wv.b;
            any_o |= L->wo.b != NULL;
            any_mlp |= L->w1.b || L->w3.b || L->w2.b;
        }
        arch = "LlamaForCausalLM";
        if (any_mlp) bias_flags |= CCE_EXPORT_MLP_BIAS;
        if (any_o || (any_qkv && any_mlp)) bias_flags |= CCE_EXPORT_ATTN_BIAS;
        else if (any_qkv) {
            arch = "Qwen2ForCausalLM";
            bias_flags |= CCE_EXPORT_QKV_BIAS;
        }
    }

    if ((s = layout_build(m, &lo, dir, err))) goto done;
    /* Qwen2 configs (in older transformers) derive head_dim from hidden_size / heads; when
     * pruning broke that, write the equivalent Llama with attention_bias (zero o bias). */
    if (!strcmp(arch, "Qwen2ForCausalLM") && (int64_t)lo.cfg.head_dim * lo.cfg.n_heads != lo.cfg.dim) {
        arch = "LlamaForCausalLM";
        bias_flags = CCE_EXPORT_ATTN_BIAS;
    }
    /* a sliding window is Mistral's (Llama configs have none); its biases are read back by cce
     * through attention_bias / mlp_bias, which transformers' Mistral ignores */
    if (!strcmp(arch, "LlamaForCausalLM") && c->sliding_window > 0) arch = "MistralForCausalLM";
    s = c->arch == CCE_ARCH_GPT2 ? list_gpt2(m, &lo, &tl, err) : list_llama(m, &lo, bias_flags, &tl, err);
    if (s) goto done;
    tl.row_entry = -1;
    for (int i = 0; i < tl.n; i++) {
        tl.e[i].name = tl.names[i];
        tl.e[i].dtype = dtype;
        if (tl.src[i].lin && tl.src[i].cols > tl.row_cap) tl.row_cap = tl.src[i].cols;
        if (tl.src[i].kind == SRC_PLAIN && !tl.src[i].lin) tl.e[i].data = tl.src[i].a;
        if (tl.src[i].kind == SRC_PLAIN && !tl.src[i].a && !tl.src[i].lin) {
            s = cce_err_set(err, CCE_EINVAL, "%s: tensor '%s' has no data in the model", dir, tl.names[i]);
            goto done;
        }
    }
    if (tl.row_cap && !(tl.row = cce_alloc((size_t)tl.row_cap, sizeof(float)))) {
        s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    static const char *const meta[2] = {"format", "pt"};
    if ((s = cce_st_write(path, tl.e, tl.n, meta, 1, fill_src, &tl, NULL, err))) goto done;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if ((s = write_config(&lo.cfg, arch, bias_flags, dtype, m, &lo, path, err))) goto done;
    if (tok) {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if ((s = cce_tokenizer_save_hf(tok, path, err))) goto done;
    }
done:
    cce_free(tl.e);
    cce_free(tl.src);
    cce_free(tl.names);
    cce_free(tl.row);
    cce_free(lo.src);
    return s;
}
