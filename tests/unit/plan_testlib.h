/*
 * plan_testlib.h — shared by test_plan.c and test_encode.c: small random in-memory models (the
 * build() of test_forward.c, reduced to what plans and encodings need) and an independent,
 * deliberately plain count of the parameters a plan leaves, written from the shapes alone (it
 * does not call plan_kept_of or cce_plan_finish, which it checks).
 */
#ifndef CCE_PLAN_TESTLIB_H
#define CCE_PLAN_TESTLIB_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "model.h"
#include "plan.h"
#include "util.h"

typedef struct {
    cce_arch arch;
    int dim, n_layers, n_heads, n_kv_heads, head_dim, hidden, vocab, seq_len;
    int qkv_bias;      // Llama: q/k/v biases (Qwen2 style)
    int w2_bias;       // Llama: a bias on W₂ (as an earlier encoding leaves)
} tl_spec;

static float *tl_rnd(cce_model *m, cce_rng *r, size_t n, float scale, float offset) {
    float *p = cce_model_alloc(m, n, sizeof(float));
    for (size_t i = 0; p && i < n; i++) p[i] = offset + scale * cce_rng_normal(r);
    return p;
}

static void tl_dense(cce_model *m, cce_rng *r, cce_linear *l, int out, int in, int bias) {
    l->out = out;
    l->in = in;
    l->wt = CCE_WT_F32;
    l->w = tl_rnd(m, r, (size_t)out * in, 1.0f / sqrtf((float)in), 0);
    l->b = bias ? tl_rnd(m, r, (size_t)out, 0.1f, 0) : NULL;
}

/* A random model of the given shapes; interleaved RoPE, untied head. */
static cce_model *tl_build(const tl_spec *s, uint64_t seed) {
    cce_config c = {0};
    c.arch = s->arch; c.dim = s->dim; c.n_layers = s->n_layers; c.n_heads = s->n_heads;
    c.n_kv_heads = s->n_kv_heads; c.head_dim = s->head_dim; c.hidden_dim = s->hidden;
    c.vocab_size = s->vocab; c.seq_len = s->seq_len; c.norm_eps = 1e-5f; c.rope_theta = 10000.0f;
    c.rope_interleaved = 1; c.tied = 0; c.bos_id = 1; c.eos_id = 2;
    cce_model *m = NULL;
    cce_err e;
    if (cce_model_new(&c, &m, &e)) return NULL;
    cce_rng r;
    cce_rng_seed(&r, seed);
    int gpt2 = s->arch == CCE_ARCH_GPT2, d = s->dim, hd = s->head_dim;
    m->tok_emb = cce_linear_of(s->vocab, d, tl_rnd(m, &r, (size_t)s->vocab * d, 1.0f, 0));
    if (gpt2) m->pos_emb = tl_rnd(m, &r, (size_t)s->seq_len * d, 0.3f, 0);
    m->final_norm = tl_rnd(m, &r, (size_t)d, 0.1f, 1.0f);
    if (gpt2) m->final_norm_b = tl_rnd(m, &r, (size_t)d, 0.1f, 0);
    m->lm_head = cce_linear_of(s->vocab, d, tl_rnd(m, &r, (size_t)s->vocab * d, 1.0f / sqrtf((float)d), 0));
    for (int li = 0; li < s->n_layers; li++) {
        cce_layer *l = &m->layers[li];
        l->n_heads = s->n_heads;
        l->n_kv_heads = s->n_kv_heads;
        l->hidden = s->hidden;
        l->attn_norm = tl_rnd(m, &r, (size_t)d, 0.1f, 1.0f);
        l->ffn_norm = tl_rnd(m, &r, (size_t)d, 0.1f, 1.0f);
        if (gpt2) {
            l->attn_norm_b = tl_rnd(m, &r, (size_t)d, 0.1f, 0);
            l->ffn_norm_b = tl_rnd(m, &r, (size_t)d, 0.1f, 0);
        }
        int qb = gpt2 || s->qkv_bias;
        tl_dense(m, &r, &l->wq, s->n_heads * hd, d, qb);
        tl_dense(m, &r, &l->wk, s->n_kv_heads * hd, d, qb);
        tl_dense(m, &r, &l->wv, s->n_kv_heads * hd, d, qb);
        tl_dense(m, &r, &l->wo, d, s->n_heads * hd, gpt2);
        tl_dense(m, &r, &l->w1, s->hidden, d, gpt2);
        if (!gpt2) tl_dense(m, &r, &l->w3, s->hidden, d, 0);
        tl_dense(m, &r, &l->w2, d, s->hidden, gpt2 || s->w2_bias);
    }
    if (cce_model_validate(m, "test", &e)) {
        fprintf(stderr, "validate: %s\n", e.msg);
        cce_model_free(m);
        return NULL;
    }
    return m;
}

static int tl_in(const int *a, int n, int x) {
    for (int i = 0; i < n; i++)
        if (a[i] == x) return 1;
    return 0;
}

/* Parameters of an (o, i) matrix at rank r (0 dense); a rank that does not save is dense. */
static int64_t tl_mat(int64_t o, int64_t i, int r) {
    if (o <= 0 || i <= 0) return 0;
    if (r > 0 && r * (o + i) < o * i) return r * (o + i);
    return o * i;
}

/* The parameters block b of plan p leaves in m, counted directly from the decisions:
 * kept heads, the KV heads some kept head reads, kept neurons, ranks, norms, source biases of
 * the kept rows, and the output biases an encoding adds (LSQ with an intercept: W_o and W₂ of
 * every block the encoder changes; bias: where components were removed). */
static int64_t tl_block_params(const cce_model *m, const cce_plan *p, int b) {
    const cce_layer *L = &m->layers[b];
    const cce_block_plan *bp = &p->blocks[b];
    int64_t d = m->cfg.dim, hd = m->cfg.head_dim;
    if (L->dropped || bp->drop) return 0;
    int nh = 0, nkv = 0, hid = 0;
    int attn = L->n_heads > 0 && !bp->drop_attn, ffn = L->hidden > 0 && !bp->drop_ffn;
    if (attn) {
        for (int h = 0; h < L->n_heads; h++) nh += !tl_in(bp->heads_removed, bp->n_heads_removed, h);
        for (int g = 0; g < L->n_kv_heads; g++) {
            int read = 0;
            for (int h = 0; h < L->n_heads; h++)
                if (!tl_in(bp->heads_removed, bp->n_heads_removed, h) && cce_layer_kv_of(L, h) == g) read = 1;
            nkv += read;
        }
        if (nh == 0) attn = 0;
    }
    if (ffn) {
        for (int i = 0; i < L->hidden; i++) hid += !tl_in(bp->neurons_removed, bp->n_neurons_removed, i);
        if (hid == 0) ffn = 0;
    }
    if (!attn && !ffn) return 0;
    int any = bp->n_heads_removed || bp->n_neurons_removed || bp->drop_attn || bp->drop_ffn;
    for (int k = 0; k < CCE_LIN_COUNT; k++) any |= bp->rank[k] > 0;
    int lsq = p->enc.redistribute == CCE_REDIST_LSQ, flap = p->enc.redistribute == CCE_REDIST_BIAS;
    int changed = any || (lsq && p->enc.refit_all);
    int64_t n = 0;
    if (attn) {
        n += d + (L->attn_norm_b ? d : 0);
        n += tl_mat(nh * hd, d, bp->rank[CCE_LIN_WQ]) + (L->wq.b ? nh * hd : 0);
        n += tl_mat(nkv * hd, d, bp->rank[CCE_LIN_WK]) + (L->wk.b ? nkv * hd : 0);
        n += tl_mat(nkv * hd, d, bp->rank[CCE_LIN_WV]) + (L->wv.b ? nkv * hd : 0);
        n += tl_mat(d, nh * hd, bp->rank[CCE_LIN_WO]);
        int bo = L->wo.b != NULL || (changed && lsq && p->enc.intercept) || (changed && flap && bp->n_heads_removed > 0);
        n += bo ? d : 0;
    }
    if (ffn) {
        n += d + (L->ffn_norm_b ? d : 0);
        n += tl_mat(hid, d, bp->rank[CCE_LIN_W1]) + (L->w1.b ? hid : 0);
        if (cce_linear_present(&L->w3)) n += tl_mat(hid, d, bp->rank[CCE_LIN_W3]) + (L->w3.b ? hid : 0);
        n += tl_mat(d, hid, bp->rank[CCE_LIN_W2]);
        int b2 = L->w2.b != NULL || (changed && lsq && p->enc.intercept) || (changed && flap && bp->n_neurons_removed > 0);
        n += b2 ? d : 0;
    }
    return n;
}

static int64_t tl_plan_params(const cce_model *m, const cce_plan *p) {
    int64_t n = m->cfg.dim + (m->final_norm_b ? m->cfg.dim : 0);
    for (int b = 0; b < m->cfg.n_layers; b++) n += tl_block_params(m, p, b);
    return n;
}

/* Replace block b's removed lists (copies). */
static void tl_set_removed(cce_block_plan *bp, const int *heads, int nh, const int *neurons, int nn) {
    cce_free(bp->heads_removed);
    cce_free(bp->neurons_removed);
    bp->heads_removed = NULL;
    bp->neurons_removed = NULL;
    bp->n_heads_removed = nh;
    bp->n_neurons_removed = nn;
    if (nh) {
        bp->heads_removed = cce_alloc((size_t)nh, sizeof(int));
        memcpy(bp->heads_removed, heads, (size_t)nh * sizeof(int));
    }
    if (nn) {
        bp->neurons_removed = cce_alloc((size_t)nn, sizeof(int));
        memcpy(bp->neurons_removed, neurons, (size_t)nn * sizeof(int));
    }
}

/* One line: no newline inside, not empty. */
static int tl_one_line(const char *msg) { return msg && msg[0] && !strchr(msg, '\n'); }

#endif
