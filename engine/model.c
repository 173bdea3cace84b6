/*
 * model.c — model lifetime (arena of owned buffers + mapped files), shape validation,
 * parameter counting, and format detection for cce_model_open. See model.h.
 *
 * Loaders fill a cce_model whose tensors either point into read-only mappings adopted by the
 * model or into buffers from the model's arena; cce_model_free releases both. Every loader ends
 * with cce_model_validate, so the forward pass can trust the shapes it is given.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "model.h"
#include "linalg.h"
#include "resource.h"
#include "tokenizer.h"

struct cce_arena_block {
    cce_arena_block *next;
    void *p;
};

cce_status cce_model_new(const cce_config *cfg, cce_model **out, cce_err *err) {
    *out = NULL;
    if (cfg->n_layers <= 0 || cfg->n_layers > 100000)
        return cce_err_set(err, CCE_EINVAL, "model: n_layers %d out of range", cfg->n_layers);
    cce_model *m = cce_alloc_zero(1, sizeof *m);
    if (!m) return cce_err_set(err, CCE_ENOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->layers = cce_alloc_zero((size_t)cfg->n_layers, sizeof *m->layers);
    if (!m->layers) {
        cce_free(m);
        return cce_err_set(err, CCE_ENOMEM, "model: out of memory for %d layers", cfg->n_layers);
    }
    *out = m;
    return CCE_OK;
}

void cce_model_free(cce_model *m) {
    if (!m) return;
    for (cce_arena_block *b = m->arena, *next; b; b = next) {
        next = b->next;
        cce_free(b->p);
        cce_free(b);
    }
    for (int i = 0; i < m->n_maps; i++) cce_unmap(&m->maps[i]);
    cce_free(m->maps);
    cce_free(m->layers);
    cce_free(m->path);
    cce_free(m);
}

cce_status cce_model_derive(const cce_model *src, cce_model **out, cce_err *err) {
    cce_status s = cce_model_new(&src->cfg, out, err);
    if (s) return s;
    cce_model *m = *out;
    cce_layer *layers = m->layers;
    memcpy(layers, src->layers, (size_t)src->cfg.n_layers * sizeof *layers);
    m->format = src->format;
    m->tok_emb = src->tok_emb;
    m->pos_emb = src->pos_emb;
    m->final_norm = src->final_norm;
    m->final_norm_b = src->final_norm_b;
    m->lm_head = src->lm_head;
    m->base = src;
    if (src->path && !(m->path = cce_strdup(src->path))) {
        cce_model_free(m);
        *out = NULL;
        return cce_err_set(err, CCE_ENOMEM, "model: out of memory");
    }
    return CCE_OK;
}

void *cce_model_alloc(cce_model *m, size_t n, size_t size) {
    cce_arena_block *b = cce_alloc(1, sizeof *b);
    if (!b) return NULL;
    b->p = cce_alloc_zero(n, size);
    if (!b->p) {
        cce_free(b);
        return NULL;
    }
    b->next = m->arena;
    m->arena = b;
    return b->p;
}

cce_status cce_model_adopt_map(cce_model *m, cce_mapped *map, cce_err *err) {
    cce_mapped *maps = cce_realloc(m->maps, (size_t)m->n_maps + 1, sizeof *maps);
    if (!maps) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", map->path ? map->path : "model");
    m->maps = maps;
    m->maps[m->n_maps++] = *map;
    memset(map, 0, sizeof *map);
    return CCE_OK;
}

const char *cce_arch_name(cce_arch a) { return a == CCE_ARCH_GPT2 ? "gpt2" : "llama"; }

const char *cce_format_name(cce_format f) {
    switch (f) {
    case CCE_FMT_LLAMA2C: return "llama2c";
    case CCE_FMT_GGUF: return "gguf";
    case CCE_FMT_HF: return "hf";
    case CCE_FMT_SYNTH: return "synth";
    }
    return "unknown";
}

/* ---- RoPE ---- */

double cce_rope_inv_freq(const cce_config *c, int j) {
    double base = pow((double)c->rope_theta, -2.0 * j / c->head_dim), f = base;
    if (c->rope_scaling == CCE_ROPE_SCALING_LINEAR) {
        f = base / c->rope_factor;
    } else if (c->rope_scaling == CCE_ROPE_SCALING_LLAMA3) {
        double pi = 3.14159265358979323846, wavelen = 2 * pi / base, L = c->rope_orig_ctx;
        double lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
        if (wavelen < L / hi) f = base;
        else if (wavelen > L / lo) f = base / c->rope_factor;
        else {
            double s = (L / wavelen - lo) / (hi - lo);
            f = (1 - s) * base / c->rope_factor + s * base;
        }
    }
    if (c->rope_freq_div) f /= c->rope_freq_div[j];
    return f;
}

cce_status cce_config_check_positions(const cce_config *c, int n, cce_err *err) {
    if (c->sliding_window > 0 && n > c->sliding_window)
        return cce_err_set(err, CCE_EUNSUPPORTED,
                           "sequences of %d tokens exceed the model's sliding attention window of %d tokens "
                           "(sliding-window attention is not implemented; use a window of at most %d)",
                           n, c->sliding_window, c->sliding_window);
    return CCE_OK;
}

/* ---- validation ---- */

const char *const cce_lin_names[CCE_LIN_COUNT] = {"wq", "wk", "wv", "wo", "w1", "w3", "w2"};

static cce_status check_linear(const cce_linear *l, int out, int in, const char *what, int layer,
                               const char *name, cce_err *err) {
    if (l->out != out || l->in != in)
        return cce_err_set(err, CCE_EFORMAT, "%s: layer %d %s: shape (%d, %d), expected (%d, %d)",
                           what, layer, name, l->out, l->in, out, in);
    if (out == 0) return CCE_OK;   // absent (empty sublayer)
    if (l->rank > 0) {
        if (!l->u || !l->v || l->rank > (out < in ? out : in))
            return cce_err_set(err, CCE_EFORMAT, "%s: layer %d %s: bad low-rank factors (rank %d)",
                               what, layer, name, l->rank);
    } else if (l->rank < 0 || !l->w) {
        return cce_err_set(err, CCE_EFORMAT, "%s: layer %d %s: missing weight", what, layer, name);
    } else if (!cce_wtype_supported(l->wt) || !cce_wtype_row_bytes(l->wt, in)) {
        return cce_err_set(err, CCE_EFORMAT, "%s: layer %d %s: storage type %s cannot hold rows of %d",
                           what, layer, name, cce_wtype_name(l->wt), in);
    }
    return CCE_OK;
}

cce_status cce_layer_check(const cce_model *m, int li, const char *what, cce_err *err) {
    const cce_config *c = &m->cfg;
    const cce_layer *L = &m->layers[li];
    if (L->dropped) return CCE_OK;
    if (L->n_heads < 0 || L->n_heads > c->n_heads || L->n_kv_heads < 0 || L->n_kv_heads > L->n_heads ||
        (L->n_heads > 0) != (L->n_kv_heads > 0) || L->hidden < 0 || L->hidden > (1 << 26))
        return cce_err_set(err, CCE_EFORMAT, "%s: layer %d: n_heads %d, n_kv_heads %d, hidden %d out of range",
                           what, li, L->n_heads, L->n_kv_heads, L->hidden);
    if (L->n_heads > 0) {
        if (L->head_kv) {
            for (int h = 0; h < L->n_heads; h++)
                if (L->head_kv[h] < 0 || L->head_kv[h] >= L->n_kv_heads)
                    return cce_err_set(err, CCE_EFORMAT, "%s: layer %d: head %d maps to KV head %d of %d",
                                       what, li, h, L->head_kv[h], L->n_kv_heads);
            for (int g = 0; g < L->n_kv_heads; g++) {
                int used = 0;
                for (int h = 0; h < L->n_heads && !used; h++) used = L->head_kv[h] == g;
                if (!used)
                    return cce_err_set(err, CCE_EFORMAT, "%s: layer %d: KV head %d is read by no query head",
                                       what, li, g);
            }
        } else if (L->n_heads % L->n_kv_heads) {
            return cce_err_set(err, CCE_EFORMAT, "%s: layer %d: n_kv_heads %d does not divide n_heads %d",
                               what, li, L->n_kv_heads, L->n_heads);
        }
        if (!L->attn_norm || (c->arch == CCE_ARCH_GPT2 && !L->attn_norm_b))
            return cce_err_set(err, CCE_EFORMAT, "%s: layer %d: missing attention norm weights", what, li);
    }
    if (L->hidden > 0 && (!L->ffn_norm || (c->arch == CCE_ARCH_GPT2 && !L->ffn_norm_b)))
        return cce_err_set(err, CCE_EFORMAT, "%s: layer %d: missing FFN norm weights", what, li);
    int hq = L->n_heads * c->head_dim, hkv = L->n_kv_heads * c->head_dim;
    int dq = L->n_heads ? c->dim : 0, dh = L->hidden ? c->dim : 0;
    int want[CCE_LIN_COUNT][2] = {{hq, dq}, {hkv, dq}, {hkv, dq}, {dq, hq}, {L->hidden, dh},
                                  {c->arch == CCE_ARCH_LLAMA ? L->hidden : 0, c->arch == CCE_ARCH_LLAMA ? dh : 0},
                                  {dh, L->hidden}};
    cce_status s;
    for (int k = 0; k < CCE_LIN_COUNT; k++)
        if ((s = check_linear(cce_layer_lin_c(L, k), want[k][0], want[k][1], what, li, cce_lin_names[k], err)))
            return s;
    return CCE_OK;
}

static cce_status check_table(const cce_linear *t, const cce_config *c, const char *what, const char *name,
                              cce_err *err) {
    if (!t->w || t->rank || t->out != c->vocab_size || t->in != c->dim || !cce_wtype_supported(t->wt) ||
        !cce_wtype_row_bytes(t->wt, c->dim))
        return cce_err_set(err, CCE_EFORMAT, "%s: %s is missing or not a dense (%d, %d) table", what, name,
                           c->vocab_size, c->dim);
    return CCE_OK;
}

cce_status cce_model_validate(const cce_model *m, const char *what, cce_err *err) {
    const cce_config *c = &m->cfg;
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->hidden_dim <= 0 || c->vocab_size <= 0 || c->seq_len <= 0)
        return cce_err_set(err, CCE_EFORMAT,
                           "%s: non-positive dimension (dim %d, n_layers %d, n_heads %d, n_kv_heads %d, "
                           "head_dim %d, hidden_dim %d, vocab_size %d, seq_len %d)",
                           what, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                           c->hidden_dim, c->vocab_size, c->seq_len);
    if (c->n_heads % c->n_kv_heads)
        return cce_err_set(err, CCE_EFORMAT, "%s: n_kv_heads %d does not divide n_heads %d", what,
                           c->n_kv_heads, c->n_heads);
    if (c->arch == CCE_ARCH_LLAMA && (c->head_dim % 2))
        return cce_err_set(err, CCE_EFORMAT, "%s: head_dim %d is odd; RoPE needs pairs", what, c->head_dim);
    /* every product the forward pass forms must fit in an int */
    int64_t qdim = (int64_t)c->n_heads * c->head_dim;
    if (qdim > (1 << 24) || c->dim > (1 << 24) || c->hidden_dim > (1 << 26) || c->vocab_size > (1 << 24))
        return cce_err_set(err, CCE_EFORMAT, "%s: dimensions too large (dim %d, heads x head_dim %lld, hidden %d, vocab %d)",
                           what, c->dim, (long long)qdim, c->hidden_dim, c->vocab_size);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return cce_err_set(err, CCE_EFORMAT, "%s: norm epsilon %g out of range (0, 1)", what, (double)c->norm_eps);
    if (c->arch == CCE_ARCH_LLAMA && !(c->rope_theta > 0))
        return cce_err_set(err, CCE_EFORMAT, "%s: rope theta %g must be positive", what, (double)c->rope_theta);
    if (c->rope_scaling < CCE_ROPE_SCALING_NONE || c->rope_scaling > CCE_ROPE_SCALING_LLAMA3 ||
        (c->rope_scaling != CCE_ROPE_SCALING_NONE && !(c->rope_factor > 0 && c->rope_factor < 1e6)) ||
        (c->rope_scaling == CCE_ROPE_SCALING_LLAMA3 &&
         !(c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_orig_ctx > 0)))
        return cce_err_set(err, CCE_EFORMAT, "%s: RoPE scaling %d with factor %g, low/high frequency factors %g/%g, "
                           "original context %d is inconsistent", what, c->rope_scaling, (double)c->rope_factor,
                           (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_orig_ctx);
    if (c->rope_freq_div)
        for (int j = 0; j < c->head_dim / 2; j++)
            if (!(c->rope_freq_div[j] > 0 && c->rope_freq_div[j] < 1e30f))
                return cce_err_set(err, CCE_EFORMAT, "%s: RoPE frequency divisor %d is %g (must be positive)", what, j,
                                   (double)c->rope_freq_div[j]);
    if (c->sliding_window < 0)
        return cce_err_set(err, CCE_EFORMAT, "%s: sliding window %d is negative", what, c->sliding_window);
    if (!m->final_norm)
        return cce_err_set(err, CCE_EFORMAT, "%s: missing final norm", what);
    cce_status s;
    if ((s = check_table(&m->tok_emb, c, what, "token embedding", err)) ||
        (s = check_table(&m->lm_head, c, what, "output head", err)))
        return s;
    if (c->arch == CCE_ARCH_GPT2 && (!m->pos_emb || !m->final_norm_b))
        return cce_err_set(err, CCE_EFORMAT, "%s: GPT-2 model without position embedding or final norm bias", what);
    for (int l = 0; l < c->n_layers; l++)
        if ((s = cce_layer_check(m, l, what, err))) return s;
    return CCE_OK;
}

/* ---- reading weights ---- */

const float *cce_linear_f32(const cce_linear *l) {
    return l->w && l->wt == CCE_WT_F32 ? (const float *)l->w : NULL;
}

void cce_linear_rows(const cce_linear *l, int r0, int n, float *dst) {
    if (l->w) {
        const uint8_t *src = (const uint8_t *)l->w + (size_t)r0 * cce_wtype_row_bytes(l->wt, l->in);
        cce_dequant_rows(l->wt, src, n, l->in, dst);
        return;
    }
    for (int r = 0; r < n; r++) {   // U[r0+r] V, in double for the reference-grade copy
        const float *ur = l->u + (size_t)(r0 + r) * l->rank;
        float *d = dst + (size_t)r * l->in;
        for (int i = 0; i < l->in; i++) {
            double t = 0;
            for (int k = 0; k < l->rank; k++) t += (double)ur[k] * l->v[(size_t)k * l->in + i];
            d[i] = (float)t;
        }
    }
}

cce_status cce_linear_dense(const cce_linear *l, const float **w, float **owned, cce_err *err) {
    *owned = NULL;
    *w = cce_linear_f32(l);
    if (*w) return CCE_OK;
    if (!l->w && (l->rank <= 0 || !l->u || !l->v))
        return cce_err_set(err, CCE_EINVAL, "linear (%d, %d) has no weights", l->out, l->in);
    float *buf = cce_alloc((size_t)l->out, (size_t)l->in * sizeof(float));   // (out, in)
    if (!buf) return cce_err_set(err, CCE_ENOMEM, "cannot allocate a (%d, %d) f32 copy of a weight", l->out, l->in);
    if (l->w) {
        cce_linear_rows(l, 0, l->out, buf);
    } else {   // U V with one GEMM
        cce_mat U = {(float *)l->u, l->out, l->rank, l->rank}, V = {(float *)l->v, l->rank, l->in, l->in};
        cce_mat W = {buf, l->out, l->in, l->in};
        cce_status st = cce_linalg_gemm(0, 0, 1.0f, &U, &V, 0.0f, &W, err);
        if (st) {
            cce_free(buf);
            return st;
        }
    }
    *owned = buf;
    *w = buf;
    return CCE_OK;
}

/* ---- parameter counts ---- */

int64_t cce_linear_params(const cce_linear *l) {
    if (l->out <= 0) return 0;
    int64_t n = l->rank > 0 ? (int64_t)l->rank * (l->out + l->in) : (l->w ? (int64_t)l->out * l->in : 0);
    if (l->b) n += l->out;
    return n;
}

uint64_t cce_linear_bytes(const cce_linear *l) {
    if (l->out <= 0) return 0;
    uint64_t n = l->rank > 0 ? (uint64_t)l->rank * (uint64_t)(l->out + l->in) * 4
                             : (l->w ? (uint64_t)l->out * cce_wtype_row_bytes(l->wt, l->in) : 0);
    if (l->b) n += (uint64_t)l->out * 4;
    return n;
}

int64_t cce_layer_params(const cce_model *m, int layer) {
    const cce_layer *L = &m->layers[layer];
    if (L->dropped) return 0;
    int64_t d = m->cfg.dim, n = 0;
    if (L->n_heads > 0) n += d + (L->attn_norm_b ? d : 0);
    if (L->hidden > 0) n += d + (L->ffn_norm_b ? d : 0);
    for (int k = 0; k < CCE_LIN_COUNT; k++) n += cce_linear_params(cce_layer_lin_c(L, k));
    return n;
}

uint64_t cce_model_bytes(const cce_model *m) {
    const cce_config *c = &m->cfg;
    uint64_t n = cce_linear_bytes(&m->tok_emb) + (c->tied ? 0 : cce_linear_bytes(&m->lm_head));
    if (m->pos_emb) n += (uint64_t)c->seq_len * c->dim * 4;
    n += (uint64_t)c->dim * 4 * (m->final_norm_b ? 2 : 1);
    for (int l = 0; l < c->n_layers; l++) {
        const cce_layer *L = &m->layers[l];
        if (L->dropped) continue;
        int norms = (L->n_heads > 0) * (L->attn_norm_b ? 2 : 1) + (L->hidden > 0) * (L->ffn_norm_b ? 2 : 1);
        n += (uint64_t)norms * c->dim * 4;
        for (int k = 0; k < CCE_LIN_COUNT; k++) n += cce_linear_bytes(cce_layer_lin_c(L, k));
    }
    return n;
}

cce_param_count cce_model_params(const cce_model *m) {
    cce_param_count p = {0};
    const cce_config *c = &m->cfg;
    p.embedding = (int64_t)c->vocab_size * c->dim;
    if (!c->tied) p.embedding += (int64_t)c->vocab_size * c->dim;
    if (m->pos_emb) p.embedding += (int64_t)c->seq_len * c->dim;
    for (int l = 0; l < c->n_layers; l++) p.non_embedding += cce_layer_params(m, l);
    p.non_embedding += c->dim + (m->final_norm_b ? c->dim : 0);
    p.total = p.embedding + p.non_embedding;
    return p;
}

/* ---- opening by path ---- */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* dirname of path into buf (no trailing slash; "." when none). */
static void dir_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, cap, ".");
    else if (slash == path) snprintf(buf, cap, "/");
    else snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

static cce_status load_tokenizer_file(const char *path, int vocab, cce_tokenizer **tok, cce_err *err) {
    if (cce_str_ends_with(path, ".json")) return cce_tokenizer_load_hf(path, tok, err);
    return cce_tokenizer_load_llama2c(path, vocab, tok, err);
}

/* Up-front memory check for loaders that convert to f32 (GGUF, HF): refuse before allocating
 * when the conversion would not fit. A header the estimate cannot parse is left to the loader,
 * which reports it with its own (authoritative) message. */
static cce_status model_mem_check(const char *path, cce_err *err) {
    cce_load_estimate est;
    cce_err ignored = {{0}};
    if (cce_model_estimate(path, &est, &ignored)) return CCE_OK;
    return cce_mem_check(path, est.alloc_bytes,
                         "some tensors are converted to f32 when loaded; free memory, use a smaller model, "
                         "or set CCE_MEM_LIMIT=BYTES to change the budget",
                         err);
}

cce_status cce_model_open(const char *path, const cce_open_opts *opts, cce_model **model,
                          cce_tokenizer **tok, cce_err *err) {
    static const cce_open_opts defaults = {0};
    if (!opts) opts = &defaults;
    *model = NULL;
    if (tok) *tok = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return cce_err_set(err, CCE_EIO, "%s: no such file or directory", path);
    cce_status s;
    cce_model *m = NULL;
    cce_tokenizer *t = NULL;
    int want_tok = tok && !opts->no_tokenizer;
    if (S_ISDIR(st.st_mode)) {
        if ((s = model_mem_check(path, err))) return s;
        if ((s = cce_load_hf(path, &m, err))) return s;
        if (want_tok && !opts->tokenizer_path) {
            char tp[4096];
            snprintf(tp, sizeof tp, "%s/tokenizer.json", path);
            if (file_exists(tp) && (s = cce_tokenizer_load_hf(tp, &t, err))) goto fail;
        }
    } else {
        char magic[4] = {0};
        FILE *f = fopen(path, "rb");
        if (!f) return cce_err_set(err, CCE_EIO, "%s: cannot open", path);
        size_t got = fread(magic, 1, 4, f);
        fclose(f);
        if (got == 4 && !memcmp(magic, "GGUF", 4)) {
            if ((s = model_mem_check(path, err))) return s;
            if ((s = cce_load_gguf(path, &m, want_tok && !opts->tokenizer_path ? &t : NULL, err))) return s;
        } else {
            if ((s = cce_load_llama2c(path, &m, err))) return s;
            if (want_tok && !opts->tokenizer_path) {
                /* beside the model: tok<vocab>.bin first (llama2.c's naming for custom vocabularies),
                 * then tokenizer.bin */
                char dir[4096], tp[4200];
                dir_of(path, dir, sizeof dir);
                snprintf(tp, sizeof tp, "%s/tok%d.bin", dir, m->cfg.vocab_size);
                if (!file_exists(tp)) snprintf(tp, sizeof tp, "%s/tokenizer.bin", dir);
                if (file_exists(tp) && (s = cce_tokenizer_load_llama2c(tp, m->cfg.vocab_size, &t, err))) goto fail;
            }
        }
    }
    if (want_tok && opts->tokenizer_path &&
        (s = load_tokenizer_file(opts->tokenizer_path, m->cfg.vocab_size, &t, err)))
        goto fail;
    if (t && cce_tokenizer_vocab_size(t) > m->cfg.vocab_size) {
        s = cce_err_set(err, CCE_EFORMAT, "%s: tokenizer has %d tokens but the model's vocabulary is %d",
                        opts->tokenizer_path ? opts->tokenizer_path : path, cce_tokenizer_vocab_size(t),
                        m->cfg.vocab_size);
        goto fail;
    }
    if (!m->path) m->path = cce_strdup(path);
    *model = m;
    if (tok) *tok = t;
    return CCE_OK;
fail:
    cce_tokenizer_free(t);
    cce_model_free(m);
    return s;
}
