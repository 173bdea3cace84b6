/*
 * test_hf.c — Hugging Face directories: loader (config.json and shard defects), export round
 * trips (stories260K with the RoPE row permutation, GPT-2 Conv1D layout, compressed per-layer
 * shapes / low-rank / dropped blocks) compared weight by weight and by reference-forward logits,
 * synth determinism, Llama-3 / linear rope_scaling (against a direct transcription of Hugging
 * Face's remapping), Mistral / Qwen2 sliding windows and Qwen2 tied / untied heads.
 *
 * Everything is generated in harness_tmpdir(); the real model comes from $CCE_DATA.
 * Tolerances: weights must round-trip bit-exactly (F32); logits within 1e-5 (the permuted model
 * computes the same sums in a different order).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include "harness.h"
#include "eval.h"
#include "export.h"
#include "forward.h"
#include "model.h"
#include "safetensors.h"
#include "synth.h"

static const char *tmp(const char *name) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", harness_tmpdir(), name);
    return b;
}

/* ---- helpers ---- */

static float *rnd(cce_model *m, cce_rng *r, size_t n, float scale) {
    float *p = cce_model_alloc(m, n, sizeof(float));
    for (size_t i = 0; p && i < n; i++) p[i] = scale * cce_rng_normal(r);
    return p;
}

static void rnd_linear(cce_model *m, cce_rng *r, cce_linear *l, int out, int in, int bias, int rank) {
    memset(l, 0, sizeof *l);
    l->out = out;
    l->in = in;
    if (rank > 0) {
        l->rank = rank;
        l->u = rnd(m, r, (size_t)out * rank, 0.3f);
        l->v = rnd(m, r, (size_t)rank * in, 0.3f);
    } else {
        l->w = rnd(m, r, (size_t)out * in, 0.3f);
    }
    if (bias) l->b = rnd(m, r, (size_t)out, 0.1f);
}

/* A small random model: Llama (interleaved RoPE, like llama2.c) or GPT-2. */
static cce_model *make_model(cce_arch arch, int n_layers, uint64_t seed) {
    cce_config c = {0};
    c.arch = arch;
    c.dim = 16;
    c.n_layers = n_layers;
    c.n_heads = 4;
    c.n_kv_heads = arch == CCE_ARCH_GPT2 ? 4 : 2;
    c.head_dim = 4;
    c.hidden_dim = 24;
    c.vocab_size = 32;
    c.seq_len = 16;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000;
    c.rope_interleaved = arch == CCE_ARCH_LLAMA;
    c.tied = arch == CCE_ARCH_GPT2;
    c.bos_id = 1;
    c.eos_id = 2;
    cce_model *m = NULL;
    cce_err err;
    if (cce_model_new(&c, &m, &err)) return NULL;
    cce_rng r;
    cce_rng_seed(&r, seed);
    int d = c.dim, g = arch == CCE_ARCH_GPT2;
    m->tok_emb = cce_linear_of(c.vocab_size, d, rnd(m, &r, (size_t)c.vocab_size * d, 0.5f));
    m->lm_head = c.tied ? m->tok_emb : cce_linear_of(c.vocab_size, d, rnd(m, &r, (size_t)c.vocab_size * d, 0.5f));
    m->final_norm = rnd(m, &r, (size_t)d, 0.2f);
    if (g) {
        m->pos_emb = rnd(m, &r, (size_t)c.seq_len * d, 0.1f);
        m->final_norm_b = rnd(m, &r, (size_t)d, 0.1f);
    }
    for (int l = 0; l < n_layers; l++) {
        cce_layer *L = &m->layers[l];
        L->n_heads = c.n_heads;
        L->n_kv_heads = c.n_kv_heads;
        L->hidden = c.hidden_dim;
        L->attn_norm = rnd(m, &r, (size_t)d, 0.2f);
        L->ffn_norm = rnd(m, &r, (size_t)d, 0.2f);
        if (g) {
            L->attn_norm_b = rnd(m, &r, (size_t)d, 0.1f);
            L->ffn_norm_b = rnd(m, &r, (size_t)d, 0.1f);
        }
        int hq = c.n_heads * c.head_dim, hkv = c.n_kv_heads * c.head_dim;
        rnd_linear(m, &r, &L->wq, hq, d, g, 0);
        rnd_linear(m, &r, &L->wk, hkv, d, g, 0);
        rnd_linear(m, &r, &L->wv, hkv, d, g, 0);
        rnd_linear(m, &r, &L->wo, d, hq, g, 0);
        rnd_linear(m, &r, &L->w1, c.hidden_dim, d, g, 0);
        rnd_linear(m, &r, &L->w2, d, c.hidden_dim, g, 0);
        if (!g) rnd_linear(m, &r, &L->w3, c.hidden_dim, d, 0, 0);
    }
    return m;
}

static void make_ones(cce_model *m) {
    /* norms near 1 keep the random model's activations in a sane range */
    for (int l = 0; l < m->cfg.n_layers; l++) {
        float *a = (float *)m->layers[l].attn_norm, *f = (float *)m->layers[l].ffn_norm;
        for (int i = 0; a && i < m->cfg.dim; i++) a[i] += 1, f[i] += 1;
    }
    float *fn = (float *)m->final_norm;
    for (int i = 0; i < m->cfg.dim; i++) fn[i] += 1;
}

/* Row j of the exported (half rotation) matrix is row perm_old(j) of the interleaved one. */
static int perm_old(int j, int hd) {
    int h = j / hd, jj = j % hd;
    return h * hd + (jj < hd / 2 ? 2 * jj : 2 * (jj - hd / 2) + 1);
}

/* Element i (row-major) of a dense weight in any stored type, decoded. */
static float lin_at(const cce_linear *l, size_t i) {
    float row[1024];
    cce_linear_rows(l, (int)(i / (size_t)l->in), 1, row);
    return row[i % (size_t)l->in];
}

static int vec_eq(const float *a, const float *b, size_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* 1 if b equals a with rows permuted within heads of hd (hd 0: identity). */
static int rows_eq(const float *a, const float *b, int rows, int cols, int hd) {
    if (!a || !b) return a == b;
    for (int j = 0; j < rows; j++) {
        int o = hd ? perm_old(j, hd) : j;
        if (memcmp(a + (size_t)o * cols, b + (size_t)j * cols, (size_t)cols * sizeof(float))) return 0;
    }
    return 1;
}

static int linear_eq(const cce_linear *a, const cce_linear *b, int hd) {
    if (a->out != b->out || a->in != b->in || a->rank != b->rank) return 0;
    if (a->rank) {
        if (!rows_eq(a->u, b->u, a->out, a->rank, hd) || !vec_eq(a->v, b->v, (size_t)a->rank * a->in)) return 0;
    } else if (!rows_eq(cce_linear_f32(a), cce_linear_f32(b), a->out, a->in, hd)) {
        return 0;
    }
    return rows_eq(a->b, b->b, a->out, 1, hd);
}

/* Compare every weight of a (original) and b (exported + reloaded). Returns a description of
 * the first difference or NULL. */
static const char *models_differ(const cce_model *a, const cce_model *b) {
    static char why[256];
    const cce_config *ca = &a->cfg, *cb = &b->cfg;
    /* head counts and FFN width are compared per block: a uniformly pruned model is written
     * with its blocks' own values in the standard config */
    int live = 0;
    for (int l = 0; l < ca->n_layers; l++) live += !a->layers[l].dropped;
    if (ca->arch != cb->arch || ca->dim != cb->dim || cb->n_layers != live || ca->head_dim != cb->head_dim ||
        ca->vocab_size != cb->vocab_size || ca->seq_len != cb->seq_len || ca->norm_eps != cb->norm_eps ||
        ca->tied != cb->tied || ca->bos_id != cb->bos_id || ca->eos_id != cb->eos_id)
        return "config differs";
    if (ca->arch == CCE_ARCH_LLAMA && (ca->rope_theta != cb->rope_theta || cb->rope_interleaved != 0))
        return "rope config differs";
    int hd = ca->rope_interleaved ? ca->head_dim : 0;
    size_t vd = (size_t)ca->vocab_size * ca->dim;
    if (!vec_eq(cce_linear_f32(&a->tok_emb), cce_linear_f32(&b->tok_emb), vd)) return "tok_emb";
    if (!vec_eq(cce_linear_f32(&a->lm_head), cce_linear_f32(&b->lm_head), vd)) return "lm_head";
    if (!vec_eq(a->final_norm, b->final_norm, (size_t)ca->dim)) return "final_norm";
    if (!vec_eq(a->final_norm_b, b->final_norm_b, (size_t)ca->dim)) return "final_norm_b";
    if (!vec_eq(a->pos_emb, b->pos_emb, (size_t)ca->seq_len * ca->dim)) return "pos_emb";
    /* dropped blocks are not written: block j of b is the j-th live block of a */
    for (int l = 0, j = 0; l < ca->n_layers; l++) {
        const cce_layer *x = &a->layers[l];
        if (x->dropped) continue;
        const cce_layer *y = &b->layers[j++];
        snprintf(why, sizeof why, "layer %d (written as %d): ", l, j - 1);
        size_t k = strlen(why);
        if (y->dropped) return strcat(why, "dropped"), why;
        if (x->n_heads != y->n_heads || x->n_kv_heads != y->n_kv_heads || x->hidden != y->hidden)
            return strcat(why, "shape"), why;
        for (int h = 0; h < x->n_heads; h++) {
            int gx = x->head_kv ? x->head_kv[h] : h / (x->n_heads / x->n_kv_heads);
            int gy = y->head_kv ? y->head_kv[h] : h / (y->n_heads / y->n_kv_heads);
            if (gx != gy) return strcat(why, "head_kv"), why;
        }
        if (!vec_eq(x->attn_norm, y->attn_norm, (size_t)ca->dim) || !vec_eq(x->ffn_norm, y->ffn_norm, (size_t)ca->dim) ||
            !vec_eq(x->attn_norm_b, y->attn_norm_b, (size_t)ca->dim) ||
            !vec_eq(x->ffn_norm_b, y->ffn_norm_b, (size_t)ca->dim))
            return strcat(why, "norms"), why;
        const cce_linear *lx[7] = {&x->wq, &x->wk, &x->wv, &x->wo, &x->w1, &x->w2, &x->w3};
        const cce_linear *ly[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w1, &y->w2, &y->w3};
        static const char *const nm[7] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
        for (int i = 0; i < 7; i++)
            if (!linear_eq(lx[i], ly[i], i < 2 ? hd : 0)) {
                snprintf(why + k, sizeof why - k, "%s", nm[i]);
                return why;
            }
    }
    return NULL;
}

/* Max |logit difference| of the reference forward over ids; -1 on error. */
static double logits_diff(const cce_model *a, const cce_model *b, const int *ids, int T, char *msg, size_t cap) {
    int V = a->cfg.vocab_size;
    float *la = cce_alloc((size_t)T * V, sizeof(float)), *lb = cce_alloc((size_t)T * V, sizeof(float));
    cce_err err = {{0}};
    double mx = -1;
    if (!la || !lb) goto out;
    if (cce_ref_forward(a, ids, T, la, NULL, NULL, &err) || cce_ref_forward(b, ids, T, lb, NULL, NULL, &err)) {
        snprintf(msg, cap, "%s", err.msg);
        goto out;
    }
    mx = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        double dd = fabs((double)la[i] - lb[i]);
        if (dd > mx || dd != dd) mx = dd != dd ? 1e30 : dd;
    }
out:
    cce_free(la);
    cce_free(lb);
    return mx;
}

static cce_status load_dir(const char *dir, cce_model **m, cce_err *err) { return cce_load_hf(dir, m, err); }

/* ---- round trips ---- */

/* The wider trained model: head_dim 32, 3 query heads per KV head. */
TEST(tinystories_2m5_round_trip) {
    const char *bin = harness_data("llama2c/tinystories_2m5.bin");
    if (!harness_have(bin)) FAILF("missing %s (set CCE_DATA)", bin);
    cce_model *a = NULL, *b = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(bin, &a, &err) == CCE_OK, "%s", err.msg);
    const char *dir = tmp("ts2m5_hf");
    cce_status s = cce_export_hf(a, NULL, dir, &err);
    if (!s) s = load_dir(dir, &b, &err);
    const char *why = s ? "load failed" : models_differ(a, b);
    int ids[6] = {1, 403, 407, 261, 378, 432};
    char msg[600] = "";
    double mx = s ? -1 : logits_diff(a, b, ids, 6, msg, sizeof msg);
    int hd = a->cfg.head_dim;
    cce_model_free(a);
    cce_model_free(b);
    CHECK_MSG(!s, "%s", err.msg);
    CHECK_EQ_INT(hd, 32);
    CHECK_MSG(!why, "weights differ after round trip: %s", why);
    CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
}

TEST(stories260k_round_trip) {
    const char *bin = harness_data("llama2c/stories260K.bin");
    if (!harness_have(bin)) FAILF("missing %s (set CCE_DATA)", bin);
    cce_model *a = NULL, *b = NULL;
    cce_err err = {{0}};
    CHECK_MSG(cce_load_llama2c(bin, &a, &err) == CCE_OK, "%s", err.msg);
    CHECK(a->cfg.rope_interleaved == 1);
    const char *dir = tmp("stories_hf");
    cce_status s = cce_export_hf(a, NULL, dir, &err);
    if (s) { cce_model_free(a); FAILF("export: %s", err.msg); }
    s = load_dir(dir, &b, &err);
    if (s) { cce_model_free(a); FAILF("reload: %s", err.msg); }
    const char *why = models_differ(a, b);
    int ids[8] = {1, 403, 407, 261, 378, 432, 383, 286};
    char msg[600] = "";
    double mx = logits_diff(a, b, ids, 8, msg, sizeof msg);
    int fmt = b->format, tied = b->cfg.tied;
    const void *lm = b->lm_head.w, *emb = b->tok_emb.w;
    cce_model_free(a);
    cce_model_free(b);
    CHECK_MSG(!why, "weights differ after round trip: %s", why);
    CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
    CHECK_EQ_INT(fmt, CCE_FMT_HF);
    CHECK(tied && lm == emb);
    /* the file really is in HF layout: no lm_head, standard names, F32 */
    cce_safetensors st;
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_MSG(cce_st_open(p, &st, &err) == CCE_OK, "%s", err.msg);
    int n = st.n;
    const cce_st_tensor *q = cce_st_find(&st, "model.layers.4.self_attn.q_proj.weight");
    int ok = q && q->dtype == CCE_ST_F32 && q->shape[0] == 64 && q->shape[1] == 64 && !cce_st_find(&st, "lm_head.weight") &&
             cce_st_find(&st, "model.layers.0.mlp.gate_proj.weight") && cce_st_find(&st, "model.norm.weight");
    const char *fmeta = cce_st_meta(&st, "format");
    int pt = fmeta && !strcmp(fmeta, "pt");
    cce_st_close(&st);
    CHECK_EQ_INT(n, 1 + 5 * 9 + 1);
    CHECK(ok);
    CHECK(pt);
}

TEST(llama_untied_round_trip) {
    cce_model *a = make_model(CCE_ARCH_LLAMA, 2, 7), *b = NULL;
    CHECK(a);
    make_ones(a);
    cce_err err = {{0}};
    const char *dir = tmp("llama_untied");
    cce_status s = cce_export_hf(a, NULL, dir, &err);
    if (!s) s = load_dir(dir, &b, &err);
    const char *why = s ? "load failed" : models_differ(a, b);
    int ids[6] = {1, 5, 9, 3, 7, 2};
    char msg[600] = "";
    double mx = s ? -1 : logits_diff(a, b, ids, 6, msg, sizeof msg);
    int tied = b ? b->cfg.tied : -1;
    cce_model_free(a);
    cce_model_free(b);
    CHECK_MSG(!s, "%s", err.msg);
    CHECK_MSG(!why, "%s", why);
    CHECK_EQ_INT(tied, 0);
    CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
}

TEST(gpt2_round_trip_conv1d_layout) {
    cce_model *a = make_model(CCE_ARCH_GPT2, 2, 11), *b = NULL;
    CHECK(a);
    make_ones(a);
    cce_err err = {{0}};
    const char *dir = tmp("gpt2_small");
    cce_status s = cce_export_hf(a, NULL, dir, &err);
    if (!s) s = load_dir(dir, &b, &err);
    const char *why = s ? "load failed" : models_differ(a, b);
    int ids[6] = {3, 1, 4, 1, 5, 9};
    char msg[600] = "";
    double mx = s ? -1 : logits_diff(a, b, ids, 6, msg, sizeof msg);
    /* Conv1D: file c_attn.weight is (in, 3d) with element [r][c] = W_q[c][r] for c < d */
    int layout_ok = 0;
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    cce_safetensors st;
    if (!s && cce_st_open(p, &st, &err) == CCE_OK) {
        const cce_st_tensor *t = cce_st_find(&st, "transformer.h.1.attn.c_attn.weight");
        const cce_st_tensor *f = cce_st_find(&st, "transformer.h.1.mlp.c_fc.weight");
        const cce_st_tensor *bb = cce_st_find(&st, "transformer.h.1.attn.c_attn.bias");
        const cce_layer *L = &a->layers[1];
        int d = a->cfg.dim, H = a->cfg.hidden_dim;
        layout_ok = t && f && bb && t->shape[0] == d && t->shape[1] == 3 * d && f->shape[0] == d && f->shape[1] == H;
        const float *tw = (const float *)(const void *)t->data, *fw = (const float *)(const void *)f->data;
        const float *bw = (const float *)(const void *)bb->data;
        for (int r = 0; layout_ok && r < d; r++)
            for (int c = 0; c < d; c++) {
                layout_ok &= tw[r * 3 * d + c] == cce_linear_f32(&L->wq)[c * d + r];
                layout_ok &= tw[r * 3 * d + d + c] == cce_linear_f32(&L->wk)[c * d + r];
                layout_ok &= tw[r * 3 * d + 2 * d + c] == cce_linear_f32(&L->wv)[c * d + r];
            }
        for (int r = 0; layout_ok && r < d; r++)
            for (int c = 0; c < H; c++) layout_ok &= fw[r * H + c] == cce_linear_f32(&L->w1)[c * d + r];
        for (int c = 0; layout_ok && c < d; c++) layout_ok &= bw[d + c] == L->wk.b[c];
        cce_st_close(&st);
    }
    cce_model_free(a);
    cce_model_free(b);
    CHECK_MSG(!s, "%s", err.msg);
    CHECK_MSG(!why, "%s", why);
    CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
    CHECK(layout_ok);
}

/* q/k/v biases make the export a Qwen2 model; q/k/v/o biases a Llama with attention_bias.
 * The q/k biases are permuted with their rows. */
TEST(bias_families_round_trip) {
    for (int mode = 0; mode < 3; mode++) {
        /* 0: q/k/v biases (Qwen2); 1: plus o biases; 2: q/k/v biases with every block pruned to
         * 2 query heads, so head_dim != hidden / heads: written as Llama with attention_bias */
        int with_o = mode == 1, pruned = mode == 2;
        cce_model *a = make_model(CCE_ARCH_LLAMA, 2, 23 + mode), *b = NULL;
        CHECK(a);
        make_ones(a);
        cce_rng r;
        cce_rng_seed(&r, 4);
        for (int l = 0; l < 2; l++) {
            cce_layer *L = &a->layers[l];
            if (pruned) {
                L->n_heads = 2;
                L->n_kv_heads = 1;
                rnd_linear(a, &r, &L->wq, 2 * a->cfg.head_dim, a->cfg.dim, 0, 0);
                rnd_linear(a, &r, &L->wk, a->cfg.head_dim, a->cfg.dim, 0, 0);
                rnd_linear(a, &r, &L->wv, a->cfg.head_dim, a->cfg.dim, 0, 0);
                rnd_linear(a, &r, &L->wo, a->cfg.dim, 2 * a->cfg.head_dim, 0, 0);
            }
            L->wq.b = rnd(a, &r, (size_t)L->wq.out, 0.1f);
            L->wk.b = rnd(a, &r, (size_t)L->wk.out, 0.1f);
            L->wv.b = rnd(a, &r, (size_t)L->wv.out, 0.1f);
            if (with_o) L->wo.b = rnd(a, &r, (size_t)L->wo.out, 0.1f);
        }
        cce_err err = {{0}};
        const char *dir = tmp(mode == 0 ? "qwen2" : mode == 1 ? "llama_attn_bias" : "qwen2_pruned");
        cce_status s = cce_export_hf(a, NULL, dir, &err);
        if (!s) s = load_dir(dir, &b, &err);
        const char *why = s ? "load failed" : models_differ(a, b);
        int ids[5] = {4, 8, 15, 16, 23};
        char msg[600] = "";
        double mx = s ? -1 : logits_diff(a, b, ids, 5, msg, sizeof msg);
        cce_model_free(a);
        cce_model_free(b);
        CHECK_MSG(!s, "%s", err.msg);
        CHECK_MSG(!why, "%s", why);
        CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
        char p[1100], *text = NULL;
        size_t len;
        snprintf(p, sizeof p, "%s/config.json", dir);
        CHECK_OK(cce_read_file(p, 1 << 20, &text, &len, &e_));
        int fam_ok = with_o || pruned ? strstr(text, "\"LlamaForCausalLM\"") && strstr(text, "\"attention_bias\":\ttrue")
                            : strstr(text, "\"Qwen2ForCausalLM\"") && strstr(text, "\"model_type\":\t\"qwen2\"");
        cce_free(text);
        CHECK_MSG(fam_ok, "mode %d: wrong family in %s/config.json", mode, dir);
    }
}

/* Every block pruned the same way (and one dropped): a standard config expresses it, so no
 * cce_layers key is written; the weights and logits round-trip. */
TEST(uniform_pruning_is_standard) {
    cce_model *a = make_model(CCE_ARCH_LLAMA, 3, 29), *b = NULL;
    CHECK(a);
    make_ones(a);
    cce_rng r;
    cce_rng_seed(&r, 8);
    int d = a->cfg.dim, hd = a->cfg.head_dim;
    for (int l = 0; l < 3; l++) {
        cce_layer *L = &a->layers[l];
        L->n_heads = 2;
        L->n_kv_heads = 1;
        L->hidden = 12;
        rnd_linear(a, &r, &L->wq, 2 * hd, d, 0, 0);
        rnd_linear(a, &r, &L->wk, hd, d, 0, 0);
        rnd_linear(a, &r, &L->wv, hd, d, 0, 0);
        rnd_linear(a, &r, &L->wo, d, 2 * hd, 0, 0);
        rnd_linear(a, &r, &L->w1, 12, d, 0, 0);
        rnd_linear(a, &r, &L->w3, 12, d, 0, 0);
        rnd_linear(a, &r, &L->w2, d, 12, 0, 0);
    }
    a->layers[2].dropped = 1;
    cce_err err = {{0}};
    const char *dir = tmp("uniform");
    cce_status s = cce_export_hf(a, NULL, dir, &err);
    if (!s) s = load_dir(dir, &b, &err);
    const char *why = s ? "load failed" : models_differ(a, b);
    int ids[5] = {9, 8, 7, 6, 5};
    char msg[600] = "";
    double mx = s ? -1 : logits_diff(a, b, ids, 5, msg, sizeof msg);
    int cfg_ok = b && b->cfg.n_layers == 2 && b->cfg.n_heads == 2 && b->cfg.n_kv_heads == 1 && b->cfg.hidden_dim == 12;
    cce_model_free(a);
    cce_model_free(b);
    CHECK_MSG(!s, "%s", err.msg);
    CHECK_MSG(!why, "%s", why);
    CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
    CHECK(cfg_ok);
    char p[1100], *text = NULL;
    size_t len;
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_OK(cce_read_file(p, 1 << 20, &text, &len, &e_));
    int std_ok = !strstr(text, "cce_layers") && strstr(text, "\"num_attention_heads\":\t2,") &&
                 strstr(text, "\"intermediate_size\":\t12,") && strstr(text, "\"num_hidden_layers\":\t2,") &&
                 strstr(text, "\"cce_kept_layers\":\t[0, 1]");
    cce_free(text);
    CHECK_MSG(std_ok, "config is not the standard form: %s/config.json", dir);
}

/* GPT-2 with a low-rank q: q/k/v are written separately (no fused c_attn) and reload the same;
 * and a GPT-2 file whose names lack the "transformer." prefix loads too. */
TEST(gpt2_lowrank_and_unprefixed) {
    cce_model *a = make_model(CCE_ARCH_GPT2, 2, 13), *b = NULL, *c = NULL;
    CHECK(a);
    make_ones(a);
    cce_rng r;
    cce_rng_seed(&r, 3);
    rnd_linear(a, &r, &a->layers[0].wq, 16, 16, 1, 4);
    rnd_linear(a, &r, &a->layers[1].w2, 16, 24, 1, 6);
    cce_err err = {{0}};
    const char *dir = tmp("gpt2_lowrank");
    cce_status s = cce_export_hf(a, NULL, dir, &err);
    if (!s) s = load_dir(dir, &b, &err);
    const char *why = s ? "load failed" : models_differ(a, b);
    int ids[5] = {2, 7, 1, 8, 2};
    char msg[600] = "";
    double mx = s ? -1 : logits_diff(a, b, ids, 5, msg, sizeof msg);
    /* strip the prefix: rewrite every tensor under its bare name */
    char p[1100];
    cce_safetensors st;
    cce_status s2 = CCE_EIO;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    int separate = 0;
    if (!s && cce_st_open(p, &st, &err) == CCE_OK) {
        separate = cce_st_find(&st, "transformer.h.0.attn.q_proj.weight_u") &&
                   cce_st_find(&st, "transformer.h.0.attn.k_proj.weight") &&
                   !cce_st_find(&st, "transformer.h.0.attn.c_attn.weight") &&
                   cce_st_find(&st, "transformer.h.1.attn.c_attn.weight");
        cce_st_entry *e = cce_alloc_zero((size_t)st.n, sizeof *e);
        for (int i = 0; i < st.n; i++) {
            const char *nm = st.t[i].name;
            e[i].name = strncmp(nm, "transformer.", 12) ? nm : nm + 12;
            e[i].dtype = CCE_ST_F16;
            e[i].n_dims = st.t[i].n_dims;
            memcpy(e[i].shape, st.t[i].shape, sizeof e[i].shape);
            e[i].data = (const float *)(const void *)st.t[i].data;
        }
        const char *d2 = tmp("gpt2_bare");
        mkdir(d2, 0777);
        char q[1100], src[1100];
        snprintf(q, sizeof q, "%s/model.safetensors", d2);
        s2 = cce_st_write(q, e, st.n, NULL, 0, NULL, NULL, NULL, &err);
        cce_free(e);
        cce_st_close(&st);
        snprintf(src, sizeof src, "%s/config.json", dir);
        snprintf(q, sizeof q, "%s/config.json", d2);
        if (!s2 && symlink(src, q)) s2 = CCE_EIO;
        if (!s2) s2 = load_dir(d2, &c, &err);
    }
    double mx2 = s2 ? -1 : logits_diff(a, c, ids, 5, msg, sizeof msg);
    cce_model_free(a);
    cce_model_free(b);
    cce_model_free(c);
    CHECK_MSG(!s, "%s", err.msg);
    CHECK_MSG(!why, "%s", why);
    CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
    CHECK(separate);
    CHECK_MSG(!s2, "unprefixed F16 copy: %s", err.msg);
    /* F16 rounding of weights ~1e-3 relative: logits agree loosely */
    CHECK_MSG(mx2 >= 0 && mx2 < 0.05, "unprefixed F16 copy: max logit diff %g", mx2);
}

/* Per-layer shapes, head_kv, low-rank factors, an added bias and a dropped block all survive. */
TEST(compressed_llama_round_trip) {
    cce_model *a = make_model(CCE_ARCH_LLAMA, 3, 5), *b = NULL;
    CHECK(a);
    make_ones(a);
    cce_rng r;
    cce_rng_seed(&r, 99);
    int d = a->cfg.dim, hd = a->cfg.head_dim;
    cce_layer *L0 = &a->layers[0], *L1 = &a->layers[1], *L2 = &a->layers[2];
    /* layer 0: 3 of 4 query heads, both KV heads with an explicit map, FFN 10, low-rank wo,
     * bias on w2 */
    L0->n_heads = 3;
    int *hk = cce_model_alloc(a, 3, sizeof(int));
    hk[0] = 1; hk[1] = 0; hk[2] = 1;
    L0->head_kv = hk;
    L0->hidden = 10;
    rnd_linear(a, &r, &L0->wq, 3 * hd, d, 0, 0);
    rnd_linear(a, &r, &L0->wo, d, 3 * hd, 0, 5);
    rnd_linear(a, &r, &L0->w1, 10, d, 0, 0);
    rnd_linear(a, &r, &L0->w3, 10, d, 0, 0);
    rnd_linear(a, &r, &L0->w2, d, 10, 1, 0);
    /* layer 1: dropped, no weights */
    memset(L1, 0, sizeof *L1);
    L1->dropped = 1;
    /* layer 2: low-rank q (U rows are permuted too) and k with a bias */
    rnd_linear(a, &r, &L2->wq, 4 * hd, d, 1, 3);
    rnd_linear(a, &r, &L2->wk, 2 * hd, d, 1, 0);
    cce_err err = {{0}};
    cce_status s = cce_model_validate(a, "test", &err);
    if (s) { cce_model_free(a); FAILF("test model invalid: %s", err.msg); }
    const char *dir = tmp("compressed");
    s = cce_export_hf(a, NULL, dir, &err);
    if (!s) s = load_dir(dir, &b, &err);
    const char *why = s ? "load failed" : models_differ(a, b);
    int ids[7] = {1, 2, 3, 4, 5, 6, 7};
    char msg[600] = "";
    double mx = s ? -1 : logits_diff(a, b, ids, 7, msg, sizeof msg);
    cce_param_count pa = cce_model_params(a), pb = {0};
    if (b) pb = cce_model_params(b);
    cce_model_free(a);
    cce_model_free(b);
    CHECK_MSG(!s, "%s", err.msg);
    CHECK_MSG(!why, "%s", why);
    CHECK_MSG(mx >= 0 && mx < 1e-5, "max logit diff %g (%s)", mx, msg);
    CHECK_EQ_INT(pa.total, pb.total);
    /* no tensors for the dropped block, factors under the documented names */
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    cce_safetensors st;
    CHECK_MSG(cce_st_open(p, &st, &err) == CCE_OK, "%s", err.msg);
    int names_ok = !cce_st_find(&st, "model.layers.2.input_layernorm.weight") &&
                   cce_st_find(&st, "model.layers.1.self_attn.q_proj.weight_u") &&
                   cce_st_find(&st, "model.layers.0.self_attn.o_proj.weight_u") &&
                   cce_st_find(&st, "model.layers.0.self_attn.o_proj.weight_v") &&
                   !cce_st_find(&st, "model.layers.0.self_attn.o_proj.weight") &&
                   cce_st_find(&st, "model.layers.0.mlp.down_proj.bias") &&
                   cce_st_find(&st, "model.layers.1.mlp.gate_proj.bias"); /* zeros: mlp_bias */
    cce_st_close(&st);
    CHECK(names_ok);
    char *text = NULL;
    size_t len;
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_OK(cce_read_file(p, 1 << 20, &text, &len, &e_));
    int flags_ok = strstr(text, "\"mlp_bias\":\ttrue") && strstr(text, "\"attention_bias\":\ttrue");
    cce_free(text);
    CHECK_MSG(flags_ok, "an FFN bias and a q/k bias must set mlp_bias and attention_bias");
}

/* ---- synth ---- */

TEST(synth_tiny_loads_and_is_deterministic) {
    cce_err err = {{0}};
    const char *d1 = tmp("tiny"), *d2 = tmp("tiny_again"), *d3 = tmp("tiny_seed2");
    CHECK_MSG(cce_synth("tiny", 42, d1, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_synth("tiny", 42, d2, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_synth("tiny", 43, d3, &err) == CCE_OK, "%s", err.msg);
    char h1[65], h2[65], h3[65], p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", d1);
    CHECK_OK(cce_sha256_file(p, h1, &e_));
    snprintf(p, sizeof p, "%s/model.safetensors", d2);
    CHECK_OK(cce_sha256_file(p, h2, &e_));
    snprintf(p, sizeof p, "%s/model.safetensors", d3);
    CHECK_OK(cce_sha256_file(p, h3, &e_));
    CHECK_STR(h1, h2);
    CHECK(strcmp(h1, h3) != 0);
    cce_model *m = NULL;
    CHECK_MSG(cce_load_hf(d1, &m, &err) == CCE_OK, "%s", err.msg);
    const cce_config *c = &m->cfg;
    int shape_ok = c->arch == CCE_ARCH_LLAMA && c->dim == 64 && c->n_layers == 2 && c->n_heads == 4 &&
                   c->n_kv_heads == 2 && c->hidden_dim == 128 && c->vocab_size == 512 && c->tied &&
                   c->rope_interleaved == 0 && c->head_dim == 16;
    double ss = 0;
    size_t n = (size_t)c->vocab_size * c->dim;
    const float *emb = cce_linear_f32(&m->tok_emb);
    for (size_t i = 0; emb && i < n; i++) ss += (double)emb[i] * emb[i];
    double sd = sqrt(ss / n);
    int norm_ones = m->layers[1].ffn_norm[17] == 1.0f && m->final_norm[0] == 1.0f;
    /* aligned F32 tensors are used in place: they point into the adopted mapping */
    int in_map = m->n_maps == 1 && (const uint8_t *)m->tok_emb.w > m->maps[0].data &&
                 (const uint8_t *)m->layers[1].w2.w + 64 * 128 * 4 <= m->maps[0].data + m->maps[0].len;
    int ids[4] = {1, 100, 200, 300};
    float *lg = cce_alloc(4 * 512, sizeof(float));
    cce_status fs = cce_ref_forward(m, ids, 4, lg, NULL, NULL, &err);
    int finite = 1;
    for (int i = 0; !fs && i < 4 * 512; i++) finite &= isfinite(lg[i]);
    cce_free(lg);
    cce_model_free(m);
    CHECK(shape_ok);
    CHECK_NEAR(sd, 0.02, 0.001);
    CHECK(norm_ones);
    CHECK(in_map);
    CHECK_MSG(fs == CCE_OK && finite, "forward on synth tiny: %s", err.msg);
    CHECK(cce_synth("nope", 1, tmp("nope"), &err) == CCE_EINVAL);
    CHECK(strstr(err.msg, "smollm-135m") != NULL);
}

TEST(synth_configs_have_real_shapes) {
    cce_config c;
    int qb;
    cce_err err;
    CHECK_OK(cce_synth_config("smollm-135m", &c, &qb, &e_));
    CHECK(c.dim == 576 && c.n_layers == 30 && c.n_heads == 9 && c.n_kv_heads == 3 && c.hidden_dim == 1536 &&
          c.vocab_size == 49152 && c.tied && !qb && c.head_dim == 64);
    CHECK_OK(cce_synth_config("qwen2.5-0.5b", &c, &qb, &e_));
    CHECK(c.dim == 896 && c.n_layers == 24 && c.n_heads == 14 && c.n_kv_heads == 2 && c.hidden_dim == 4864 &&
          c.vocab_size == 151936 && qb && c.rope_theta == 1e6f && c.norm_eps == 1e-6f);
    CHECK_OK(cce_synth_config("llama-3.2-1b", &c, &qb, &e_));
    CHECK(c.dim == 2048 && c.n_layers == 16 && c.n_heads == 32 && c.n_kv_heads == 8 && c.hidden_dim == 8192 &&
          c.vocab_size == 128256 && c.rope_theta == 500000.0f);
    CHECK_OK(cce_synth_config("gpt2", &c, &qb, &e_));
    CHECK(c.arch == CCE_ARCH_GPT2 && c.dim == 768 && c.n_layers == 12 && c.hidden_dim == 3072 &&
          c.vocab_size == 50257 && c.seq_len == 1024);
    CHECK(cce_synth_config("gpt3", &c, &qb, &err) == CCE_EINVAL);
}

/* ---- config.json defects ---- */

/* A copy of the tiny synth directory whose config.json has `key` replaced by the JSON text
 * `val` (NULL: key deleted); extra: a second replacement (key2/val2) or NULL. */
static const char *variant(const char *name, const char *key, const char *val, const char *key2, const char *val2) {
    const char *dir = tmp(name);
    char p[1100], src[1100];
    mkdir(dir, 0777);
    snprintf(src, sizeof src, "%s/model.safetensors", tmp("tiny"));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    if (symlink(src, p)) return dir;
    snprintf(p, sizeof p, "%s/config.json", tmp("tiny"));
    char *text = NULL;
    size_t len;
    cce_err err;
    if (cce_read_file(p, 1 << 20, &text, &len, &err)) return dir;
    cJSON *j = cJSON_Parse(text);
    cce_free(text);
    const char *keys[2] = {key, key2}, *vals[2] = {val, val2};
    for (int i = 0; i < 2; i++) {
        if (!keys[i]) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(j, keys[i]);
        if (vals[i]) cJSON_AddItemToObject(j, keys[i], cJSON_Parse(vals[i]));
    }
    char *out = cJSON_Print(j);
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "wb");
    fputs(out, f);
    fclose(f);
    cJSON_free(out);
    cJSON_Delete(j);
    return dir;
}

static int load_fails(const char *dir, const char *want, char *why, size_t cap) {
    cce_model *m = NULL;
    cce_err err = {{0}};
    cce_status s = cce_load_hf(dir, &m, &err);
    if (s == CCE_OK) {
        cce_model_free(m);
        snprintf(why, cap, "%s loaded but should have failed", dir);
        return 0;
    }
    if (m || strchr(err.msg, '\n') || !strstr(err.msg, dir) || (want && !strstr(err.msg, want))) {
        snprintf(why, cap, "%s: message \"%s\" (want \"%s\")", dir, err.msg, want ? want : "");
        return 0;
    }
    return 1;
}

#define EXPECT_LOAD_FAIL(dir, want) do { char why_[900]; if (!load_fails((dir), (want), why_, sizeof why_)) FAILF("%s", why_); } while (0)

TEST(config_defects) {
    cce_err err = {{0}};
    CHECK_MSG(cce_synth("tiny", 42, tmp("tiny"), &err) == CCE_OK, "%s", err.msg);
    cce_model *m = NULL;
    CHECK_MSG(cce_load_hf(variant("cfg_same", "hidden_size", "64", NULL, NULL), &m, &err) == CCE_OK, "%s", err.msg);
    cce_model_free(m);
    EXPECT_LOAD_FAIL(variant("cfg_missing", "hidden_size", NULL, NULL, NULL), "'hidden_size' is missing");
    EXPECT_LOAD_FAIL(variant("cfg_negative", "hidden_size", "-64", NULL, NULL), "'hidden_size' is -64");
    EXPECT_LOAD_FAIL(variant("cfg_zero", "num_hidden_layers", "0", NULL, NULL), "'num_hidden_layers' is 0");
    EXPECT_LOAD_FAIL(variant("cfg_string", "hidden_size", "\"64\"", NULL, NULL), "expected an integer");
    EXPECT_LOAD_FAIL(variant("cfg_float", "intermediate_size", "128.5", NULL, NULL), "expected an integer");
    EXPECT_LOAD_FAIL(variant("cfg_bool", "vocab_size", "true", NULL, NULL), "expected an integer");
    EXPECT_LOAD_FAIL(variant("cfg_huge", "vocab_size", "1e300", NULL, NULL), "vocab_size");
    EXPECT_LOAD_FAIL(variant("cfg_case", "hidden_size", NULL, "Hidden_Size", "64"), "'hidden_size' is missing");
    EXPECT_LOAD_FAIL(variant("cfg_heads", "num_attention_heads", "5", "head_dim", NULL), "does not divide hidden_size");
    EXPECT_LOAD_FAIL(variant("cfg_kv", "num_key_value_heads", "3", NULL, NULL), "does not divide");
    EXPECT_LOAD_FAIL(variant("cfg_eps", "rms_norm_eps", "-1", NULL, NULL), "rms_norm_eps");
    EXPECT_LOAD_FAIL(variant("cfg_arch", "architectures", "[\"BertModel\"]", NULL, NULL), "not supported");
    EXPECT_LOAD_FAIL(variant("cfg_arch_type", "architectures", "\"LlamaForCausalLM\"", NULL, NULL), "architectures");
    EXPECT_LOAD_FAIL(variant("cfg_rope", "rope_scaling", "{\"type\":\"llama3\",\"factor\":32}", NULL, NULL), "rope_scaling.low_freq_factor");
    EXPECT_LOAD_FAIL(variant("cfg_act", "hidden_act", "\"gelu\"", NULL, NULL), "hidden_act");
    EXPECT_LOAD_FAIL(variant("cfg_bos", "bos_token_id", "512", NULL, NULL), "bos_token_id");
    /* shapes inconsistent with the config */
    EXPECT_LOAD_FAIL(variant("cfg_ffn", "intermediate_size", "100", NULL, NULL), "expected [100, 64]");
    EXPECT_LOAD_FAIL(variant("cfg_vocab", "vocab_size", "500", NULL, NULL), "model.embed_tokens.weight");
    EXPECT_LOAD_FAIL(variant("cfg_layers", "num_hidden_layers", "3", NULL, NULL), "model.layers.2");
    EXPECT_LOAD_FAIL(variant("cfg_hd", "head_dim", "8", NULL, NULL), "q_proj");
    EXPECT_LOAD_FAIL(variant("cfg_untied", "tie_word_embeddings", "false", NULL, NULL), "'lm_head.weight' is missing");
    EXPECT_LOAD_FAIL(variant("cfg_qwen", "architectures", "[\"Qwen2ForCausalLM\"]", NULL, NULL), "q_proj.bias");
    EXPECT_LOAD_FAIL(variant("cfg_attn_bias", "attention_bias", "true", NULL, NULL), "q_proj.bias' is missing");
    EXPECT_LOAD_FAIL(variant("cfg_mlp_bias", "mlp_bias", "true", NULL, NULL), "gate_proj.bias' is missing");
    EXPECT_LOAD_FAIL(variant("cfg_mlp_bias_type", "mlp_bias", "1", NULL, NULL), "'mlp_bias'");
    EXPECT_LOAD_FAIL(variant("cfg_ext", "cce_layers", "[{\"n_heads\":2}]", NULL, NULL), "cce_layers");
    EXPECT_LOAD_FAIL(variant("cfg_ext2", "cce_layers", "[{\"n_heads\":2},{\"n_heads\":8}]", NULL, NULL), "n_heads");
    EXPECT_LOAD_FAIL(variant("cfg_ext3", "cce_layers", "[{\"head_kv\":[0,1,2,0]},{}]", NULL, NULL), "head_kv");
    /* trailing garbage, not an object, missing files */
    const char *dir = variant("cfg_trailing", NULL, NULL, NULL, NULL);
    char p[1100];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "ab");
    fputs("\n}garbage", f);
    fclose(f);
    EXPECT_LOAD_FAIL(dir, "trailing garbage");
    f = fopen(p, "wb");
    fputs("[1,2,3]", f);
    fclose(f);
    EXPECT_LOAD_FAIL(dir, "not an object");
    unlink(p);
    EXPECT_LOAD_FAIL(dir, "config.json");
    dir = variant("cfg_noweights", NULL, NULL, NULL, NULL);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    EXPECT_LOAD_FAIL(dir, "model.safetensors");
}

/* ---- RoPE scaling, sliding windows, Qwen2 configs ---- */

/* Hugging Face's Llama-3 frequency remapping, written out independently of model.c: the
 * frequency of pair j for head size hd, base theta, and the rope_scaling parameters. */
static double hf_llama3_freq(double theta, int hd, int j, double factor, double lo, double hi, double orig) {
    double inv = 1.0 / pow(theta, (2.0 * j) / hd);
    double wavelen = 2 * M_PI / inv, low_wavelen = orig / lo, high_wavelen = orig / hi;
    double scaled = wavelen > low_wavelen ? inv / factor : inv;           // torch.where(wavelen > low, inv/f, inv)
    double smooth = (orig / wavelen - lo) / (hi - lo);
    double smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    return medium ? smoothed : scaled;
}

/* Rewrite dir/config.json: set key to the JSON text val (NULL: delete). */
static int patch_config(const char *dir, const char *key, const char *val) {
    char p[1100], *text = NULL;
    size_t len;
    cce_err err;
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (cce_read_file(p, 1 << 20, &text, &len, &err)) return 0;
    cJSON *j = cJSON_Parse(text);
    cce_free(text);
    if (!j) return 0;
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (val) cJSON_AddItemToObject(j, key, cJSON_Parse(val));
    char *out = cJSON_Print(j);
    FILE *f = fopen(p, "wb");
    int ok = f && fputs(out, f) >= 0;
    if (f) fclose(f);
    cJSON_free(out);
    cJSON_Delete(j);
    return ok;
}

TEST(rope_scaling_llama3) {
    cce_err err = {{0}};
    CHECK_MSG(cce_synth("tiny", 42, tmp("tiny"), &err) == CCE_OK, "%s", err.msg);
    const char *l3 = "{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                     "\"original_max_position_embeddings\":1024}";
    cce_model *m = NULL, *plain = NULL, *back = NULL;
    CHECK_MSG(cce_load_hf(variant("rope_l3", "rope_scaling", l3, "rope_theta", "10000.0"), &m, &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_load_hf(tmp("tiny"), &plain, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.rope_scaling, CCE_ROPE_SCALING_LLAMA3);
    CHECK_EQ_INT(m->cfg.rope_orig_ctx, 1024);
    int hd = m->cfg.head_dim, kinds[3] = {0, 0, 0};
    for (int j = 0; j < hd / 2; j++) {
        double want = hf_llama3_freq(10000.0, hd, j, 8, 1, 4, 1024), got = cce_rope_inv_freq(&m->cfg, j);
        double base = 1.0 / pow(10000.0, (2.0 * j) / hd);
        CHECK_MSG(fabs(got - want) <= 1e-12 * want, "pair %d: %.17g, direct computation %.17g", j, got, want);
        kinds[fabs(want - base) < 1e-15 * base ? 0 : fabs(want - base / 8) < 1e-15 * base ? 1 : 2]++;
        CHECK_NEAR(cce_rope_inv_freq(&plain->cfg, j), base, 1e-15 * base);
    }
    /* head size 16 and an original context of 1024 put pairs in all three bands */
    CHECK_MSG(kinds[0] && kinds[1] && kinds[2], "bands: %d unchanged, %d divided, %d interpolated", kinds[0], kinds[1], kinds[2]);
    /* the scaling changes the model's predictions beyond the first position (measured 2.7e-4 on
     * these small random weights) ... */
    int ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 37 + 5) % 512;
    char msg[600] = "";
    double d = logits_diff(m, plain, ids, 40, msg, sizeof msg);
    printf("# llama3 vs no scaling: max |logit diff| %.3g\n", d);
    CHECK_MSG(d > 1e-4, "llama3 scaling changed nothing (max logit diff %g %s)", d, msg);
    /* ... identically in the fast and the reference pass (measured 3.6e-7, far below the effect
     * of the scaling, so a pass that ignored it would fail), and survives an export */
    float *lf = cce_alloc(40 * 512, sizeof(float)), *lr = cce_alloc(40 * 512, sizeof(float));
    float *h = cce_alloc(40 * 64, sizeof(float));
    cce_fwd *f = NULL;
    CHECK(cce_fwd_new(m, 40, 40, &f, &err) == CCE_OK && cce_fwd_embed(f, ids, 1, 40, h, &err) == CCE_OK);
    for (int l = 0; l < m->cfg.n_layers; l++) CHECK(cce_fwd_block(f, l, h, 1, 40, NULL, NULL, &err) == CCE_OK);
    CHECK(cce_fwd_logits(f, h, 40, lf, &err) == CCE_OK && cce_ref_forward(m, ids, 40, lr, NULL, NULL, &err) == CCE_OK);
    double fr = 0;
    for (int i = 0; i < 40 * 512; i++) fr = fmax(fr, fabs((double)lf[i] - lr[i]));
    cce_fwd_free(f);
    cce_free(lf); cce_free(lr); cce_free(h);
    printf("# llama3: fast vs reference max |logit diff| %.3g\n", fr);
    CHECK_MSG(fr < 2e-6, "fast vs reference with llama3 scaling: %g", fr);
    CHECK_MSG(cce_export_hf(m, NULL, tmp("rope_l3_out"), &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_load_hf(tmp("rope_l3_out"), &back, &err) == CCE_OK, "%s", err.msg);
    CHECK(back->cfg.rope_scaling == CCE_ROPE_SCALING_LLAMA3 && back->cfg.rope_factor == 8.0f &&
          back->cfg.rope_low_freq_factor == 1.0f && back->cfg.rope_high_freq_factor == 4.0f && back->cfg.rope_orig_ctx == 1024);
    d = logits_diff(m, back, ids, 40, msg, sizeof msg);
    CHECK_MSG(d >= 0 && d < 1e-5, "export round trip: %g %s", d, msg);
    cce_model_free(m);
    cce_model_free(plain);
    cce_model_free(back);
}

/* Per-pair RoPE divisors (a GGUF rope_freqs tensor) are kept by the HF writer as the extension
 * key cce_rope_freq_div and read back. */
TEST(rope_freq_div_round_trip) {
    cce_model *a = make_model(CCE_ARCH_LLAMA, 2, 99), *b = NULL;
    CHECK(a);
    make_ones(a);
    float *div = cce_model_alloc(a, 2, sizeof(float));
    div[0] = 1.0f;
    div[1] = 3.25f;
    a->cfg.rope_freq_div = div;
    cce_err err = {{0}};
    CHECK_MSG(cce_export_hf(a, NULL, tmp("freq_div"), &err) == CCE_OK, "%s", err.msg);
    CHECK_MSG(cce_load_hf(tmp("freq_div"), &b, &err) == CCE_OK, "%s", err.msg);
    CHECK(b->cfg.rope_freq_div && b->cfg.rope_freq_div[0] == 1.0f && b->cfg.rope_freq_div[1] == 3.25f);
    int ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char msg[600] = "";
    double d = logits_diff(a, b, ids, 8, msg, sizeof msg);
    cce_model_free(a);
    cce_model_free(b);
    CHECK_MSG(d >= 0 && d < 1e-5, "max logit diff %g %s", d, msg);
}

TEST(rope_scaling_configs) {
    cce_err err = {{0}};
    CHECK_MSG(cce_synth("tiny", 42, tmp("tiny"), &err) == CCE_OK, "%s", err.msg);
    cce_model *m = NULL;
    /* linear: every frequency divided by the factor; "default" and null: none */
    CHECK_MSG(cce_load_hf(variant("rope_lin", "rope_scaling", "{\"type\":\"linear\",\"factor\":2.0}", NULL, NULL), &m, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.rope_scaling, CCE_ROPE_SCALING_LINEAR);
    CHECK_NEAR(cce_rope_inv_freq(&m->cfg, 3), pow(10000.0, -6.0 / 16) / 2, 1e-15);
    cce_model_free(m);
    const char *none[2] = {"{\"rope_type\":\"default\"}", "null"};
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(cce_load_hf(variant("rope_none", "rope_scaling", none[i], NULL, NULL), &m, &err) == CCE_OK, "%s", err.msg);
        CHECK_EQ_INT(m->cfg.rope_scaling, CCE_ROPE_SCALING_NONE);
        cce_model_free(m);
    }
    EXPECT_LOAD_FAIL(variant("rope_yarn", "rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}", NULL, NULL),
                     "'rope_scaling' has type 'yarn'; only linear and llama3");
    EXPECT_LOAD_FAIL(variant("rope_nofac", "rope_scaling", "{\"rope_type\":\"linear\"}", NULL, NULL), "'rope_scaling.factor' is missing");
    EXPECT_LOAD_FAIL(variant("rope_l3_part", "rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1}", NULL, NULL),
                     "'rope_scaling.high_freq_factor' is missing");
    EXPECT_LOAD_FAIL(variant("rope_l3_order", "rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,"
                             "\"high_freq_factor\":1,\"original_max_position_embeddings\":8192}", NULL, NULL),
                     "high_freq_factor 1 must exceed low_freq_factor 4");
    EXPECT_LOAD_FAIL(variant("rope_neg", "rope_scaling", "{\"rope_type\":\"linear\",\"factor\":-2}", NULL, NULL), "'factor'");
    EXPECT_LOAD_FAIL(variant("rope_arr", "rope_scaling", "[1]", NULL, NULL), "'rope_scaling' is an array");
    EXPECT_LOAD_FAIL(variant("rope_div", "cce_rope_freq_div", "[1,2]", NULL, NULL), "'cce_rope_freq_div' must be an array of 8");
}

/* Mistral's sliding_window: sequences up to the window run (exactly: full attention equals the
 * window's there), longer ones are refused in one line; Qwen2's only with use_sliding_window. */
TEST(sliding_window_configs) {
    cce_err err = {{0}};
    CHECK_MSG(cce_synth("tiny", 42, tmp("tiny"), &err) == CCE_OK, "%s", err.msg);
    cce_model *m = NULL;
    const char *dir = variant("mistral_sw", "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "8");
    CHECK_MSG(cce_load_hf(dir, &m, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.sliding_window, 8);
    int ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (i * 13) % 512;
    cce_eval_result r;
    CHECK_MSG(cce_eval_ids(m, ids, 64, 8, 0, NULL, NULL, &r, &err) == CCE_OK, "%s", err.msg);
    cce_status s = cce_eval_ids(m, ids, 64, 16, 0, NULL, NULL, &r, &err);
    CHECK(s == CCE_EUNSUPPORTED && !strchr(err.msg, '\n'));
    CHECK_MSG(strstr(err.msg, "16 tokens exceed the model's sliding attention window of 8"), "%s", err.msg);
    /* written back as Mistral with its window */
    CHECK_MSG(cce_export_hf(m, NULL, tmp("mistral_sw_out"), &err) == CCE_OK, "%s", err.msg);
    cce_model_free(m);
    CHECK_MSG(cce_load_hf(tmp("mistral_sw_out"), &m, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.sliding_window, 8);
    cce_model_free(m);
    /* null: no window; Llama configs ignore the key (transformers does) */
    CHECK_MSG(cce_load_hf(variant("mistral_nosw", "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "null"), &m, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.sliding_window, 0);
    cce_model_free(m);
    CHECK_MSG(cce_load_hf(variant("llama_sw", "sliding_window", "8", NULL, NULL), &m, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(m->cfg.sliding_window, 0);
    cce_model_free(m);
    EXPECT_LOAD_FAIL(variant("mistral_badsw", "architectures", "[\"MistralForCausalLM\"]", "sliding_window", "-1"), "'sliding_window'");
    /* Qwen2 (q/k/v biases; tied and untied heads) */
    for (int tied = 0; tied < 2; tied++) {
        cce_model *a = make_model(CCE_ARCH_LLAMA, 2, 70 + tied), *b = NULL;
        CHECK(a);
        make_ones(a);
        cce_rng rr;
        cce_rng_seed(&rr, 9);
        if (tied) { a->lm_head = a->tok_emb; a->cfg.tied = 1; }
        for (int l = 0; l < 2; l++) {
            cce_layer *L = &a->layers[l];
            L->wq.b = rnd(a, &rr, (size_t)L->wq.out, 0.1f);
            L->wk.b = rnd(a, &rr, (size_t)L->wk.out, 0.1f);
            L->wv.b = rnd(a, &rr, (size_t)L->wv.out, 0.1f);
        }
        const char *qd = tmp(tied ? "qwen2_tied" : "qwen2_untied");
        CHECK_MSG(cce_export_hf(a, NULL, qd, &err) == CCE_OK, "%s", err.msg);
        CHECK_MSG(cce_load_hf(qd, &b, &err) == CCE_OK, "%s", err.msg);
        CHECK_EQ_INT(b->cfg.tied, tied);
        CHECK_EQ_INT(b->cfg.sliding_window, 0);
        int ids5[5] = {3, 1, 4, 1, 5};
        char msg[600] = "";
        double d = logits_diff(a, b, ids5, 5, msg, sizeof msg);
        CHECK_MSG(d >= 0 && d < 1e-5, "qwen2 %s: %g %s", tied ? "tied" : "untied", d, msg);
        cce_model_free(b);
        /* use_sliding_window true: the window applies (from max_window_layers on: here all) */
        CHECK(patch_config(qd, "use_sliding_window", "true") && patch_config(qd, "sliding_window", "4") &&
              patch_config(qd, "max_window_layers", "0"));
        CHECK_MSG(cce_load_hf(qd, &b, &err) == CCE_OK, "%s", err.msg);
        CHECK_EQ_INT(b->cfg.sliding_window, 4);
        cce_model_free(b);
        CHECK(patch_config(qd, "max_window_layers", "2"));   // no layer at or past 2: no window
        CHECK_MSG(cce_load_hf(qd, &b, &err) == CCE_OK, "%s", err.msg);
        CHECK_EQ_INT(b->cfg.sliding_window, 0);
        cce_model_free(b);
        CHECK(patch_config(qd, "use_sliding_window", "false") && patch_config(qd, "max_window_layers", "0"));
        CHECK_MSG(cce_load_hf(qd, &b, &err) == CCE_OK, "%s", err.msg);
        CHECK_EQ_INT(b->cfg.sliding_window, 0);
        cce_model_free(b);
        cce_model_free(a);
    }
}

/* ---- shards and dtypes ---- */

/* Write the tiny model's tensors into dir as two shards (+ index), or as one file of dtype. */
static cce_status rewrite_tiny(const char *dir, int sharded, int dtype, const char *bad_shard, cce_err *err) {
    char p[1100];
    cce_safetensors st;
    snprintf(p, sizeof p, "%s/model.safetensors", tmp("tiny"));
    cce_status s = cce_st_open(p, &st, err);
    if (s) return s;
    mkdir(dir, 0777);
    cce_st_entry *e = cce_alloc_zero((size_t)st.n, sizeof *e);
    for (int i = 0; i < st.n; i++) {
        e[i].name = st.t[i].name;
        e[i].dtype = dtype;
        e[i].n_dims = st.t[i].n_dims;
        memcpy(e[i].shape, st.t[i].shape, sizeof e[i].shape);
        e[i].data = (const float *)(const void *)st.t[i].data;
    }
    if (!sharded) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        s = cce_st_write(p, e, st.n, NULL, 0, NULL, NULL, NULL, err);
    } else {
        int half = st.n / 2;
        snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
        s = cce_st_write(p, e, half, NULL, 0, NULL, NULL, NULL, err);
        snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
        if (!s) s = cce_st_write(p, e + half, st.n - half, NULL, 0, NULL, NULL, NULL, err);
        cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
        cJSON_AddObjectToObject(idx, "metadata");
        int dup = bad_shard && !strcmp(bad_shard, "DUP");
        if (dup) { /* the first tensor listed twice (cJSON keeps duplicate keys) */
            cJSON_AddStringToObject(wm, st.t[0].name, "model-00002-of-00002.safetensors");
            bad_shard = NULL;
        }
        for (int i = 0; i < st.n; i++)
            cJSON_AddStringToObject(wm, st.t[i].name, i == 0 && bad_shard ? bad_shard
                                                      : i < half ? "model-00001-of-00002.safetensors"
                                                                 : "model-00002-of-00002.safetensors");
        char *txt = cJSON_Print(idx);
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        FILE *f = fopen(p, "wb");
        fputs(txt, f);
        fclose(f);
        cJSON_free(txt);
        cJSON_Delete(idx);
    }
    char src[1100];
    snprintf(src, sizeof src, "%s/config.json", tmp("tiny"));
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    if (symlink(src, p)) s = cce_err_set(err, CCE_EIO, "symlink failed");
    cce_free(e);
    cce_st_close(&st);
    return s;
}

TEST(sharded_and_bf16) {
    cce_err err = {{0}};
    CHECK_MSG(cce_synth("tiny", 42, tmp("tiny"), &err) == CCE_OK, "%s", err.msg);
    cce_model *a = NULL, *b = NULL, *c = NULL;
    CHECK_MSG(cce_load_hf(tmp("tiny"), &a, &err) == CCE_OK, "%s", err.msg);
    cce_status s = rewrite_tiny(tmp("sharded"), 1, CCE_ST_F32, NULL, &err);
    if (!s) s = cce_load_hf(tmp("sharded"), &b, &err);
    const char *why = s ? "load failed" : models_differ(a, b);
    cce_status s2 = rewrite_tiny(tmp("bf16"), 0, CCE_ST_BF16, NULL, &err);
    if (!s2) s2 = cce_load_hf(tmp("bf16"), &c, &err);
    int bf_ok = !s2;
    /* BF16 weights stay BF16 in memory (mapped); their decoded values are the rounded f32 */
    bf_ok = bf_ok && c->tok_emb.wt == CCE_WT_BF16 && c->layers[1].w2.wt == CCE_WT_BF16;
    for (int i = 0; bf_ok && i < 512 * 64; i++)
        bf_ok = lin_at(&c->tok_emb, (size_t)i) == cce_bf16_to_f32(cce_f32_to_bf16(lin_at(&a->tok_emb, (size_t)i)));
    for (int i = 0; bf_ok && i < 128 * 64; i++)
        bf_ok = lin_at(&c->layers[1].w2, (size_t)i) ==
                cce_bf16_to_f32(cce_f32_to_bf16(lin_at(&a->layers[1].w2, (size_t)i)));
    cce_model_free(a);
    cce_model_free(b);
    cce_model_free(c);
    CHECK_MSG(!s, "sharded: %s", err.msg);
    CHECK_MSG(!why, "sharded model differs: %s", why);
    CHECK_MSG(!s2, "bf16: %s", err.msg);
    CHECK(bf_ok);
    /* a known but unsupported dtype (same byte size, patched in the header) is refused by name */
    {
        char src[1100], dst[1100];
        snprintf(src, sizeof src, "%s/model.safetensors", tmp("tiny"));
        char *buf = NULL;
        size_t len = 0;
        CHECK_OK(cce_read_file(src, 1 << 26, &buf, &len, &e_));
        const char *key = "\"model.norm.weight\":{\"dtype\":\"F32\"";
        char *at = NULL;
        for (size_t i = 0; i + strlen(key) < len && !at; i++)
            if (!memcmp(buf + i, key, strlen(key))) at = buf + i;
        CHECK(at != NULL);
        memcpy(at + strlen(key) - 4, "I32", 3);
        const char *dd = variant("dtype_i32", NULL, NULL, NULL, NULL);
        snprintf(dst, sizeof dst, "%s/model.safetensors", dd);
        unlink(dst);
        cce_status ws = cce_write_file_atomic(dst, buf, len, &err);
        cce_free(buf);
        CHECK_MSG(ws == CCE_OK, "%s", err.msg);
        EXPECT_LOAD_FAIL(dd, "dtype I32 is not supported");
    }
    /* shard names that escape the directory, and index entries the shard lacks */
    CHECK_OK(rewrite_tiny(tmp("shard_up"), 1, CCE_ST_F32, "../tiny/model.safetensors", &e_));
    EXPECT_LOAD_FAIL(tmp("shard_up"), "escapes the model directory");
    CHECK_OK(rewrite_tiny(tmp("shard_abs"), 1, CCE_ST_F32, "/etc/passwd", &e_));
    EXPECT_LOAD_FAIL(tmp("shard_abs"), "escapes the model directory");
    CHECK_OK(rewrite_tiny(tmp("shard_mid"), 1, CCE_ST_F32, "sub/../../x.safetensors", &e_));
    EXPECT_LOAD_FAIL(tmp("shard_mid"), "escapes the model directory");
    CHECK_OK(rewrite_tiny(tmp("shard_wrong"), 1, CCE_ST_F32, "model-00002-of-00002.safetensors", &e_));
    EXPECT_LOAD_FAIL(tmp("shard_wrong"), "not in the file");
    CHECK_OK(rewrite_tiny(tmp("shard_dup"), 1, CCE_ST_F32, "DUP", &e_));
    EXPECT_LOAD_FAIL(tmp("shard_dup"), "more than once");
    CHECK_OK(rewrite_tiny(tmp("shard_missing"), 1, CCE_ST_F32, "model-00003-of-00002.safetensors", &e_));
    EXPECT_LOAD_FAIL(tmp("shard_missing"), "model-00003-of-00002.safetensors");
}

/* Fail the n-th allocation for n = 1, 2, ... until the operation succeeds: every failure must be
 * a clean CCE_ENOMEM with a one-line message (ASan builds also check that nothing leaks). */
typedef cce_status (*op_fn)(const char *arg, cce_err *err);

static cce_status op_st_open(const char *arg, cce_err *err) {
    cce_safetensors s;
    cce_status st = cce_st_open(arg, &s, err);
    if (!st) cce_st_close(&s);
    return st;
}
static cce_status op_load(const char *arg, cce_err *err) {
    cce_model *m = NULL;
    cce_status st = cce_load_hf(arg, &m, err);
    if (!st && !m) st = CCE_EINVAL;
    if (st && m) st = CCE_EINVAL; /* no model may be returned on failure */
    cce_model_free(m);
    return st;
}
static cce_status op_synth(const char *arg, cce_err *err) { return cce_synth("tiny", 5, arg, err); }
static const cce_model *oom_model;
static cce_status op_export(const char *arg, cce_err *err) { return cce_export_hf(oom_model, NULL, arg, err); }

static int oom_sweep(op_fn fn, const char *arg, char *why, size_t cap) {
    for (long n = 1; n < 20000; n++) {
        cce_err err = {{0}};
        cce_alloc_fail_after(n);
        cce_status st = fn(arg, &err);
        cce_alloc_fail_after(0);
        if (st == CCE_OK) return 1;
        if (st != CCE_ENOMEM || !err.msg[0] || strchr(err.msg, '\n')) {
            snprintf(why, cap, "%s: allocation %ld: status %d: %s", arg, n, (int)st, err.msg);
            return 0;
        }
    }
    snprintf(why, cap, "%s: never succeeded", arg);
    return 0;
}

#define OOM_SWEEP(fn, arg) do { char why_[900]; if (!oom_sweep((fn), (arg), why_, sizeof why_)) FAILF("%s", why_); } while (0)

TEST(allocation_failures) {
    cce_err err = {{0}};
    CHECK_MSG(cce_synth("tiny", 42, tmp("tiny"), &err) == CCE_OK, "%s", err.msg);
    char p[1100];
    snprintf(p, sizeof p, "%s/model.safetensors", tmp("tiny"));
    OOM_SWEEP(op_st_open, p);
    OOM_SWEEP(op_load, tmp("tiny"));
    OOM_SWEEP(op_synth, tmp("tiny_oom"));
    CHECK_OK(rewrite_tiny(tmp("sharded_oom"), 1, CCE_ST_BF16, NULL, &e_));
    OOM_SWEEP(op_load, tmp("sharded_oom"));
    cce_model *g = make_model(CCE_ARCH_GPT2, 2, 17), *l = make_model(CCE_ARCH_LLAMA, 2, 19);
    CHECK(g && l);
    oom_model = g;
    char w1[900] = "", w2[900] = "", w3[900] = "", w4[900] = "";
    int ok1 = oom_sweep(op_export, tmp("gpt2_oom"), w1, sizeof w1);
    int ok2 = ok1 && oom_sweep(op_load, tmp("gpt2_oom"), w2, sizeof w2);
    oom_model = l;
    int ok3 = oom_sweep(op_export, tmp("llama_oom"), w3, sizeof w3);
    int ok4 = ok3 && oom_sweep(op_load, tmp("llama_oom"), w4, sizeof w4);
    cce_model_free(g);
    cce_model_free(l);
    CHECK_MSG(ok1, "%s", w1);
    CHECK_MSG(ok2, "%s", w2);
    CHECK_MSG(ok3, "%s", w3);
    CHECK_MSG(ok4, "%s", w4);
}

int main(void) {
    RUN(stories260k_round_trip);
    RUN(tinystories_2m5_round_trip);
    RUN(llama_untied_round_trip);
    RUN(gpt2_round_trip_conv1d_layout);
    RUN(bias_families_round_trip);
    RUN(uniform_pruning_is_standard);
    RUN(gpt2_lowrank_and_unprefixed);
    RUN(compressed_llama_round_trip);
    RUN(synth_tiny_loads_and_is_deterministic);
    RUN(synth_configs_have_real_shapes);
    RUN(config_defects);
    RUN(sharded_and_bf16);
    RUN(rope_scaling_llama3);
    RUN(rope_freq_div_round_trip);
    RUN(rope_scaling_configs);
    RUN(sliding_window_configs);
    RUN(allocation_failures);
    return harness_done();
}
