/*
 * test_forward.c — the fast forward pass against the reference, on random in-memory models of
 * both architectures with the shapes compression produces (GQA, odd sizes, per-layer narrower
 * heads and FFN, explicit head->KV maps, low-rank linears, dropped blocks, added biases), plus
 * the decoder against the batched path, taps, errors, and the real stories260K checkpoint.
 * Weights stored as f16 / bf16 / q8_0 are read by both paths through their own kernels (the
 * reference decodes each row with the plain decoder), so the same tolerance holds for them; so
 * do blocks without an attention or without a feed-forward sublayer.
 * Tolerance: max |logit difference| < 1e-4 (the reference accumulates in double).
 */
#include <float.h>
#include <pthread.h>
#include "harness.h"
#include "forward.h"
#include "kernels.h"
#include "model.h"
#include "util.h"

typedef struct {
    cce_arch arch;
    int dim, n_layers, n_heads, n_kv_heads, head_dim, hidden, vocab, seq_len;
    int interleaved;
    int qkv_bias;        // Llama: biases on q, k, v (Qwen2 style)
    int compressed;      // per-layer shapes changed as compression would
    float w1_scale;      // 0: 1; larger drives the FFN activation into its tails
    cce_wtype wt;        // storage type of every dense weight (and the embedding / head)
    int empty;           // layer 0 without attention, the last layer without FFN
} spec;

static float *rnd(cce_model *m, cce_rng *r, size_t n, float scale, float offset) {
    float *p = cce_model_alloc(m, n, sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * cce_rng_normal(r);
    return p;
}

static void dense(cce_model *m, cce_rng *r, cce_linear *l, int out, int in, int bias) {
    l->out = out; l->in = in;
    l->w = rnd(m, r, (size_t)out * in, 1.0f / sqrtf((float)in), 0);
    l->b = bias ? rnd(m, r, (size_t)out, 0.1f, 0) : NULL;
}

static void lowrank(cce_model *m, cce_rng *r, cce_linear *l, int out, int in, int rank, int bias) {
    l->out = out; l->in = in; l->rank = rank; l->w = NULL;
    l->u = rnd(m, r, (size_t)out * rank, 1.0f / sqrtf((float)rank), 0);
    l->v = rnd(m, r, (size_t)rank * in, 1.0f / sqrtf((float)in), 0);
    l->b = bias ? rnd(m, r, (size_t)out, 0.1f, 0) : NULL;
}

static cce_model *build(const spec *s, uint64_t seed) {
    cce_config c = {0};
    c.arch = s->arch; c.dim = s->dim; c.n_layers = s->n_layers; c.n_heads = s->n_heads;
    c.n_kv_heads = s->n_kv_heads; c.head_dim = s->head_dim; c.hidden_dim = s->hidden;
    c.vocab_size = s->vocab; c.seq_len = s->seq_len; c.norm_eps = 1e-5f; c.rope_theta = 10000.0f;
    c.rope_interleaved = s->interleaved; c.tied = 0; c.bos_id = 1; c.eos_id = 2;
    cce_model *m = NULL;
    cce_err e;
    if (cce_model_new(&c, &m, &e)) return NULL;
    cce_rng r;
    cce_rng_seed(&r, seed);
    int gpt2 = s->arch == CCE_ARCH_GPT2, d = s->dim, hd = s->head_dim;
    m->tok_emb = cce_linear_of(s->vocab, d, rnd(m, &r, (size_t)s->vocab * d, 1.0f, 0));
    if (gpt2) m->pos_emb = rnd(m, &r, (size_t)s->seq_len * d, 0.3f, 0);
    m->final_norm = rnd(m, &r, (size_t)d, 0.1f, 1.0f);
    if (gpt2) m->final_norm_b = rnd(m, &r, (size_t)d, 0.1f, 0);
    m->lm_head = cce_linear_of(s->vocab, d, rnd(m, &r, (size_t)s->vocab * d, 1.0f / sqrtf((float)d), 0));
    for (int li = 0; li < s->n_layers; li++) {
        cce_layer *l = &m->layers[li];
        int nh = s->n_heads, nkv = s->n_kv_heads, hid = s->hidden;
        int *map = NULL;
        if (s->compressed && li == 0) {       /* 2 heads removed, explicit (uneven) head->KV map */
            nh = s->n_heads - 2;
            if (nkv > nh) nkv = nh;
            map = cce_model_alloc(m, (size_t)nh, sizeof(int));
            for (int h = 0; h < nh; h++) map[h] = (h * 7 + 1) % nkv;
            hid = s->hidden - 17;
        }
        if (s->compressed && li == 2) { nh = s->n_kv_heads; nkv = s->n_kv_heads; hid = s->hidden / 2 + 1; }
        l->n_heads = nh; l->n_kv_heads = nkv; l->head_kv = map; l->hidden = hid;
        l->attn_norm = rnd(m, &r, (size_t)d, 0.1f, 1.0f);
        l->ffn_norm = rnd(m, &r, (size_t)d, 0.1f, 1.0f);
        if (gpt2) {
            l->attn_norm_b = rnd(m, &r, (size_t)d, 0.1f, 0);
            l->ffn_norm_b = rnd(m, &r, (size_t)d, 0.1f, 0);
        }
        int qb = gpt2 || s->qkv_bias;
        if (s->compressed && li == 0) lowrank(m, &r, &l->wq, nh * hd, d, 5, qb);
        else dense(m, &r, &l->wq, nh * hd, d, qb);
        dense(m, &r, &l->wk, nkv * hd, d, qb);
        dense(m, &r, &l->wv, nkv * hd, d, qb);
        dense(m, &r, &l->wo, d, nh * hd, gpt2);
        dense(m, &r, &l->w1, hid, d, gpt2);
        if (s->w1_scale > 0) {
            float *w = (float *)l->w1.w;
            for (size_t i = 0; i < (size_t)hid * d; i++) w[i] *= s->w1_scale;
        }
        if (s->compressed && li == 2) lowrank(m, &r, &l->w2, d, hid, 7, 1);  /* + an added bias */
        else dense(m, &r, &l->w2, d, hid, gpt2 || s->compressed);
        if (!gpt2) dense(m, &r, &l->w3, hid, d, 0);
        if (s->compressed && li == 1) l->dropped = 1;
    }
    if (s->empty) {   // layer 0: no attention sublayer; last layer: no FFN sublayer
        cce_layer *a = &m->layers[0], *z = &m->layers[s->n_layers - 1];
        a->n_heads = a->n_kv_heads = 0;
        a->head_kv = NULL;
        a->attn_norm = a->attn_norm_b = NULL;
        memset(&a->wq, 0, sizeof a->wq); memset(&a->wk, 0, sizeof a->wk);
        memset(&a->wv, 0, sizeof a->wv); memset(&a->wo, 0, sizeof a->wo);
        z->hidden = 0;
        z->ffn_norm = z->ffn_norm_b = NULL;
        memset(&z->w1, 0, sizeof z->w1); memset(&z->w2, 0, sizeof z->w2); memset(&z->w3, 0, sizeof z->w3);
    }
    if (s->wt != CCE_WT_F32) {   // re-store every dense weight in the requested type
        cce_linear *tabs[2] = {&m->tok_emb, &m->lm_head};
        for (int li = -1; li < s->n_layers; li++)
            for (int k = 0; k < (li < 0 ? 2 : CCE_LIN_COUNT); k++) {
                cce_linear *l = li < 0 ? tabs[k] : cce_layer_lin(&m->layers[li], k);
                if (!l->w || l->wt != CCE_WT_F32) continue;
                size_t rb = cce_wtype_row_bytes(s->wt, l->in);
                uint8_t *q = cce_model_alloc(m, (size_t)l->out, rb);
                for (int rr = 0; q && rr < l->out; rr++)
                    cce_quantize(s->wt, (const float *)l->w + (size_t)rr * l->in, q + (size_t)rr * rb, l->in, &e);
                l->w = q;
                l->wt = s->wt;
            }
    }
    if (cce_model_validate(m, "test", &e)) {
        fprintf(stderr, "validate: %s\n", e.msg);
        cce_model_free(m);
        return NULL;
    }
    return m;
}

static int *random_ids(cce_rng *r, int n, int vocab) {
    int *ids = cce_alloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) ids[i] = (int)(cce_rng_u64(r) % (uint64_t)vocab);
    return ids;
}

/* max |a - b| over n floats */
static double maxdiff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        if (!(x <= d)) d = x;  // NaN propagates as a failure
    }
    return d;
}

/* Fast path (n_seq sequences at once) vs the reference on each sequence: logits and NLL. */
static double fast_vs_ref(const spec *s, uint64_t seed, int n_seq, int T, double *nll_diff) {
    cce_model *m = build(s, seed);
    if (!m) return INFINITY;
    cce_rng r;
    cce_rng_seed(&r, seed + 1);
    int rows = n_seq * T, V = s->vocab;
    int *ids = random_ids(&r, rows, V);
    float *h = cce_alloc((size_t)rows * s->dim, sizeof(float));
    float *lf = cce_alloc((size_t)rows * V, sizeof(float));
    float *lr = cce_alloc((size_t)T * V, sizeof(float));
    cce_fwd *f = NULL;
    cce_err e = {{0}};
    double worst = INFINITY, sum_fast = 0, sum_ref = 0;
    long cnt = 0;
    if (cce_fwd_new(m, rows, T, &f, &e)) { fprintf(stderr, "%s\n", e.msg); goto out; }
    if (cce_fwd_embed(f, ids, n_seq, T, h, &e)) goto out;
    for (int li = 0; li < s->n_layers; li++)
        if (cce_fwd_block(f, li, h, n_seq, T, NULL, NULL, &e)) goto out;
    if (cce_fwd_logits(f, h, rows, lf, &e)) goto out;
    if (cce_fwd_sequences_nll(f, ids, n_seq, T, &sum_fast, &cnt, &e)) goto out;
    worst = 0;
    for (int sq = 0; sq < n_seq; sq++) {
        if (cce_ref_forward(m, ids + (size_t)sq * T, T, lr, NULL, NULL, &e)) { worst = INFINITY; goto out; }
        double dd = maxdiff(lf + (size_t)sq * T * V, lr, (size_t)T * V);
        if (!(dd <= worst)) worst = dd;
        for (int t = 0; t + 1 < T; t++) {
            const float *lg = lr + (size_t)t * V;
            double mx = -INFINITY, se = 0;
            for (int j = 0; j < V; j++) mx = lg[j] > mx ? lg[j] : mx;
            for (int j = 0; j < V; j++) se += exp(lg[j] - mx);
            sum_ref += log(se) + mx - lg[ids[sq * T + t + 1]];
        }
    }
    *nll_diff = cnt == (long)n_seq * (T - 1) ? fabs(sum_fast - sum_ref) / cnt : INFINITY;
out:
    if (e.msg[0]) fprintf(stderr, "error: %s\n", e.msg);
    cce_fwd_free(f);
    cce_free(ids); cce_free(h); cce_free(lf); cce_free(lr);
    cce_model_free(m);
    return worst;
}

#define CHECK_FAST_VS_REF(sp, seed, nseq, T) do { \
        double nd_ = INFINITY, d_ = fast_vs_ref(&(sp), seed, nseq, T, &nd_); \
        CHECK_MSG(d_ < 1e-4, "fast vs reference logits: max abs diff %.3g (tol 1e-4)", d_); \
        CHECK_MSG(nd_ < 1e-5, "fast vs reference mean NLL: diff %.3g (tol 1e-5)", nd_); \
    } while (0)

TEST(llama_gqa_interleaved) {
    spec s = {CCE_ARCH_LLAMA, 48, 3, 6, 2, 8, 100, 67, 128, 1, 0, 0, 0, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(s, 11, 3, 37);
}

TEST(llama_long_sequence_multi_block) {
    /* seq_len 150 spans three causal score blocks of 64 */
    spec s = {CCE_ARCH_LLAMA, 32, 2, 4, 4, 8, 64, 50, 256, 1, 0, 0, 0, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(s, 12, 2, 150);
}

TEST(llama_hf_rope_qkv_bias_odd_sizes) {
    spec s = {CCE_ARCH_LLAMA, 30, 2, 5, 1, 6, 77, 41, 64, 0, 1, 0, 0, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(s, 13, 2, 29);
}

TEST(gpt2_layernorm_gelu_pos) {
    spec s = {CCE_ARCH_GPT2, 40, 3, 5, 5, 8, 120, 53, 80, 0, 0, 0, 0, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(s, 14, 2, 70);
}

TEST(llama_compressed_shapes) {
    /* layer 0: 4 of 6 heads with an explicit head->KV map, low-rank wq, narrower FFN;
     * layer 1 dropped; layer 2: 3 heads / 3 KV heads, half FFN, low-rank w2 with an added bias */
    spec s = {CCE_ARCH_LLAMA, 36, 4, 6, 3, 6, 90, 45, 64, 1, 0, 1, 0, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(s, 15, 2, 41);
}

TEST(gpt2_compressed_shapes) {
    spec s = {CCE_ARCH_GPT2, 36, 4, 6, 6, 6, 90, 45, 64, 0, 0, 1, 0, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(s, 16, 2, 33);
}

TEST(stored_types_f16_bf16_q8_0) {
    /* widths are multiples of 32 so that q8_0 blocks fit every row */
    cce_wtype types[3] = {CCE_WT_F16, CCE_WT_BF16, CCE_WT_Q8_0};
    for (int t = 0; t < 3; t++) {
        spec s = {CCE_ARCH_LLAMA, 64, 3, 4, 2, 16, 96, 70, 64, 1, 0, 0, 0, types[t], 0};
        double nd = INFINITY, d = fast_vs_ref(&s, 21 + t, 2, 40, &nd);
        CHECK_MSG(d < 1e-4 && nd < 1e-5, "%s: fast vs reference logits diff %.3g, NLL diff %.3g (tol 1e-4, 1e-5)",
                  cce_wtype_name(types[t]), d, nd);
    }
}

TEST(nll_head_in_vocabulary_slices_and_row_blocks) {
    /* 5000 rows x 2000 words: the NLL head runs in 2 blocks of rows x 2 slices of the vocabulary
     * (16 MB of logits scratch), with the running maximum and sum carried across slices */
    spec s = {CCE_ARCH_LLAMA, 16, 1, 2, 1, 8, 24, 2000, 128, 1, 0, 0, 0, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(s, 19, 50, 100);
}

TEST(blocks_without_attention_or_ffn) {
    spec s = {CCE_ARCH_LLAMA, 36, 3, 6, 3, 6, 90, 45, 64, 1, 0, 0, 0, CCE_WT_F32, 1};
    CHECK_FAST_VS_REF(s, 31, 2, 33);
    spec g = {CCE_ARCH_GPT2, 40, 3, 5, 5, 8, 120, 53, 80, 0, 0, 0, 0, CCE_WT_F32, 1};
    CHECK_FAST_VS_REF(g, 32, 2, 30);
}

TEST(activation_tails) {
    /* pre-activations of |z| ~ 100: SiLU, GELU and the softmaxes must not overflow or lose the
     * tails (the vectorised exp clamps its argument) */
    spec l = {CCE_ARCH_LLAMA, 32, 2, 4, 2, 8, 64, 40, 64, 1, 0, 0, 60.0f, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(l, 17, 2, 40);
    spec g = {CCE_ARCH_GPT2, 32, 2, 4, 4, 8, 64, 40, 64, 0, 0, 0, 60.0f, CCE_WT_F32, 0};
    CHECK_FAST_VS_REF(g, 18, 2, 40);
}

/* ---- taps ---- */

typedef struct {
    int n;
    int layer[64], site[64], rows[64], cols[64];
    float *x[64];
    int cancel_at;   // cancel at the n-th call (1-based), 0 never
} tap_log;

static int tap_record(void *user, const cce_tap *t) {
    tap_log *lg = user;
    if (lg->n >= 64) return 1;
    int i = lg->n++;
    lg->layer[i] = t->layer; lg->site[i] = t->site; lg->rows[i] = t->rows; lg->cols[i] = t->cols;
    lg->x[i] = cce_alloc((size_t)t->rows * t->cols, sizeof(float));
    for (int r = 0; r < t->rows; r++)
        memcpy(lg->x[i] + (size_t)r * t->cols, t->x + (size_t)r * t->ld, (size_t)t->cols * sizeof(float));
    return lg->cancel_at && lg->n == lg->cancel_at;
}

static void tap_log_free(tap_log *lg) {
    for (int i = 0; i < lg->n; i++) cce_free(lg->x[i]);
    lg->n = 0;
}

TEST(taps_identical_between_paths) {
    spec s = {CCE_ARCH_LLAMA, 36, 4, 6, 3, 6, 90, 45, 64, 1, 0, 1, 0, CCE_WT_F32, 0};
    cce_model *m = build(&s, 21);
    CHECK(m);
    int T = 23;
    cce_rng r;
    cce_rng_seed(&r, 22);
    int *ids = random_ids(&r, T, s.vocab);
    float *h = cce_alloc((size_t)T * s.dim, sizeof(float));
    float *lg = cce_alloc((size_t)T * s.vocab, sizeof(float));
    tap_log a = {0}, b = {0};
    cce_fwd *f = NULL;
    cce_err e;
    int ok = !cce_fwd_new(m, T, T, &f, &e) && !cce_fwd_embed(f, ids, 1, T, h, &e);
    for (int li = 0; ok && li < s.n_layers; li++) ok = !cce_fwd_block(f, li, h, 1, T, tap_record, &a, &e);
    ok = ok && !cce_ref_forward(m, ids, T, lg, tap_record, &b, &e);
    double worst = 0;
    int same = ok && a.n == b.n;
    for (int i = 0; same && i < a.n; i++) {
        same = a.layer[i] == b.layer[i] && a.site[i] == b.site[i] && a.rows[i] == b.rows[i] && a.cols[i] == b.cols[i];
        double dd = maxdiff(a.x[i], b.x[i], (size_t)a.rows[i] * a.cols[i]);
        if (!(dd <= worst)) worst = dd;
    }
    /* 3 live blocks x 6 sites + 1 dropped block x BLOCK_OUT */
    int n = a.n, nb = b.n;
    tap_log_free(&a); tap_log_free(&b);
    cce_fwd_free(f); cce_free(ids); cce_free(h); cce_free(lg); cce_model_free(m);
    CHECK(ok);
    CHECK_EQ_INT(n, 19);
    CHECK_EQ_INT(nb, 19);
    CHECK_MSG(same, "tap sequence differs between fast and reference paths");
    CHECK_MSG(worst < 1e-4, "tap data max abs diff %.3g (tol 1e-4)", worst);
}

TEST(tap_cancel) {
    spec s = {CCE_ARCH_LLAMA, 16, 2, 2, 1, 8, 20, 30, 32, 1, 0, 0, 0, CCE_WT_F32, 0};
    cce_model *m = build(&s, 31);
    CHECK(m);
    int ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float h[8 * 16], lg[8 * 30];
    tap_log a = {.cancel_at = 2}, b = {.cancel_at = 3};
    cce_fwd *f = NULL;
    cce_err e;
    int st1 = -1, st2 = -1;
    if (!cce_fwd_new(m, 8, 8, &f, &e) && !cce_fwd_embed(f, ids, 1, 8, h, &e))
        st1 = cce_fwd_block(f, 0, h, 1, 8, tap_record, &a, &e);
    st2 = cce_ref_forward(m, ids, 8, lg, tap_record, &b, &e);
    int na = a.n, nb = b.n;
    tap_log_free(&a); tap_log_free(&b);
    cce_fwd_free(f); cce_model_free(m);
    CHECK_EQ_INT(st1, CCE_ECANCEL);
    CHECK_EQ_INT(na, 2);
    CHECK_EQ_INT(st2, CCE_ECANCEL);
    CHECK_EQ_INT(nb, 3);
}

/* ---- cancellation (util.h's scoped cancel, polled by the passes) ---- */

typedef struct {
    cce_model *m;
    int st;
} cancel_arg;

static int block_status(cce_model *m) {   // one block over 8 tokens
    int ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float h[8 * 16];
    cce_fwd *f = NULL;
    cce_err e;
    int st = cce_fwd_new(m, 8, 8, &f, &e);
    if (!st) st = cce_fwd_embed(f, ids, 1, 8, h, &e);
    if (!st) st = cce_fwd_block(f, 0, h, 1, 8, NULL, NULL, &e);
    cce_fwd_free(f);
    return st;
}

static void *cancel_thread(void *p) {   // a job in its own scope, cancelled
    cancel_arg *a = p;
    cce_cancel c;
    cce_cancel_init(&c);
    cce_cancel *prev = cce_cancel_scope(&c);
    cce_cancel_request(&c);
    a->st = block_status(a->m);
    cce_cancel_scope(prev);
    return NULL;
}

TEST(cancel_is_scoped_and_does_not_latch) {
    spec s = {CCE_ARCH_LLAMA, 16, 2, 2, 1, 8, 20, 30, 32, 1, 0, 0, 0, CCE_WT_F32, 0};
    cce_model *m = build(&s, 33);
    CHECK(m);
    cce_err e;
    int ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    double sum = 0;
    long cnt = 0;
    float lg[30];
    cce_fwd *f = NULL;
    cce_decoder *dec = NULL;
    int st_new = cce_fwd_new(m, 8, 8, &f, &e) | cce_decoder_new(m, 8, &dec, &e);
    /* the process default: every pass stops, and runs again once it is cleared */
    cce_interrupt();
    int st_block = block_status(m), st_nll = cce_fwd_sequences_nll(f, ids, 1, 8, &sum, &cnt, &e);
    int st_dec = cce_decoder_step(dec, 1, 0, lg, &e);
    cce_interrupt_reset();
    int st_after = block_status(m) | cce_fwd_sequences_nll(f, ids, 1, 8, &sum, &cnt, &e) |
                   cce_decoder_step(dec, 1, 0, lg, &e);
    /* a scope replaces the default: requested only when its own cancel is */
    cce_cancel c;
    cce_cancel_init(&c);
    cce_interrupt();
    cce_cancel *prev = cce_cancel_scope(&c);
    int st_scope_clear = block_status(m);
    cce_cancel_request(&c);
    int st_scope_set = block_status(m);
    cce_cancel_reset(&c);
    int st_scope_reset = block_status(m);
    cce_cancel_scope(prev);
    int st_default_again = block_status(m);
    cce_interrupt_reset();
    /* another thread's cancelled scope does not reach this thread */
    cancel_arg a = {m, -1};
    pthread_t th;
    int started = pthread_create(&th, NULL, cancel_thread, &a) == 0;
    int st_here = block_status(m);
    if (started) pthread_join(th, NULL);
    cce_fwd_free(f);
    cce_decoder_free(dec);
    cce_model_free(m);
    CHECK_EQ_INT(st_new, CCE_OK);
    CHECK_EQ_INT(st_block, CCE_ECANCEL);
    CHECK_EQ_INT(st_nll, CCE_ECANCEL);
    CHECK_EQ_INT(st_dec, CCE_ECANCEL);
    CHECK_EQ_INT(st_after, CCE_OK);
    CHECK_EQ_INT(st_scope_clear, CCE_OK);
    CHECK_EQ_INT(st_scope_set, CCE_ECANCEL);
    CHECK_EQ_INT(st_scope_reset, CCE_OK);
    CHECK_EQ_INT(st_default_again, CCE_ECANCEL);
    CHECK(started);
    CHECK_EQ_INT(a.st, CCE_ECANCEL);
    CHECK_EQ_INT(st_here, CCE_OK);
}

/* ---- decoder ---- */

/* Max |logit difference| between the decoder (exact: cce_decoder_set_exact) and the batched
 * pass over T positions: stepped twice over the same cache, then prefilled (cce_decoder_prefill)
 * over the first third and stepped on; *scale (if given) = max |batched logit|. */
static double decoder_vs_batched_ex(const spec *s, uint64_t seed, int T, int exact, double *scale) {
    cce_model *m = build(s, seed);
    if (!m) return INFINITY;
    cce_rng r;
    cce_rng_seed(&r, seed + 1);
    int *ids = random_ids(&r, T, s->vocab);
    float *h = cce_alloc((size_t)T * s->dim, sizeof(float));
    float *lb = cce_alloc((size_t)T * s->vocab, sizeof(float));
    float *ld = cce_alloc((size_t)s->vocab, sizeof(float));
    cce_fwd *f = NULL;
    cce_decoder *dec = NULL;
    cce_err e;
    double worst = INFINITY;
    if (cce_fwd_new(m, T, T, &f, &e) || cce_fwd_embed(f, ids, 1, T, h, &e)) goto out;
    for (int li = 0; li < s->n_layers; li++)
        if (cce_fwd_block(f, li, h, 1, T, NULL, NULL, &e)) goto out;
    if (cce_fwd_logits(f, h, T, lb, &e) || cce_decoder_new(m, T, &dec, &e)) goto out;
    cce_decoder_set_exact(dec, exact);
    if (scale) *scale = 0;
    for (size_t i = 0; scale && i < (size_t)T * s->vocab; i++) *scale = fabs(lb[i]) > *scale ? fabs(lb[i]) : *scale;
    worst = 0;
    /* step by step, then again over the same cache (restarting at position 0), then a prefill
     * of the first P = T/3 positions (the batched pass writing the cache) continued by steps */
    for (int pass = 0; pass < 3; pass++) {
        int t0 = 0;
        if (pass == 2) {   // a fresh decoder (made before the old one is freed, so that its cache
                           // is not the old one's memory): it holds only what the prefill wrote
            cce_decoder *fresh = NULL;
            if (cce_decoder_new(m, T, &fresh, &e)) { worst = INFINITY; goto out; }
            cce_decoder_free(dec);
            dec = fresh;
            cce_decoder_set_exact(dec, exact);
            t0 = T / 3 > 0 ? T / 3 : 1;
            if (cce_decoder_prefill(dec, ids, t0, ld, &e)) { worst = INFINITY; goto out; }
            double dd = maxdiff(ld, lb + (size_t)(t0 - 1) * s->vocab, (size_t)s->vocab);
            if (!(dd <= worst)) worst = dd;
        }
        for (int t = t0; t < T; t++) {
            if (cce_decoder_step(dec, ids[t], t, ld, &e)) { worst = INFINITY; goto out; }
            double dd = maxdiff(ld, lb + (size_t)t * s->vocab, (size_t)s->vocab);
            if (!(dd <= worst)) worst = dd;
        }
    }
out:
    cce_decoder_free(dec); cce_fwd_free(f);
    cce_free(ids); cce_free(h); cce_free(lb); cce_free(ld); cce_model_free(m);
    return worst;
}

static double decoder_vs_batched(const spec *s, uint64_t seed, int T) {
    return decoder_vs_batched_ex(s, seed, T, 0, NULL);
}

TEST(decoder_matches_batched_llama) {
    spec s = {CCE_ARCH_LLAMA, 36, 4, 6, 3, 6, 90, 45, 128, 1, 0, 1, 0, CCE_WT_F32, 0};
    double d = decoder_vs_batched(&s, 41, 90);
    CHECK_MSG(d < 1e-4, "decoder vs batched logits: max abs diff %.3g (tol 1e-4)", d);
}

TEST(decoder_matches_batched_gpt2_hf_rope) {
    spec g = {CCE_ARCH_GPT2, 40, 3, 5, 5, 8, 120, 53, 80, 0, 0, 1, 0, CCE_WT_F32, 0};
    double d = decoder_vs_batched(&g, 42, 80);
    CHECK_MSG(d < 1e-4, "gpt2 decoder vs batched: max abs diff %.3g (tol 1e-4)", d);
    spec l = {CCE_ARCH_LLAMA, 30, 2, 5, 1, 6, 77, 41, 64, 0, 1, 0, 0, CCE_WT_F32, 0};
    d = decoder_vs_batched(&l, 43, 64);
    CHECK_MSG(d < 1e-4, "HF-rope decoder vs batched: max abs diff %.3g (tol 1e-4)", d);
}

TEST(decoder_stored_types_and_empty_sublayers) {
    spec q = {CCE_ARCH_LLAMA, 64, 3, 4, 2, 16, 96, 70, 64, 1, 0, 0, 0, CCE_WT_Q8_0, 1};
    double d = decoder_vs_batched_ex(&q, 44, 50, 1, NULL);
    CHECK_MSG(d < 1e-4, "q8_0 decoder (exact) vs batched: max abs diff %.3g (tol 1e-4)", d);
    double sc = 0, di = decoder_vs_batched_ex(&q, 44, 50, 0, &sc);
    /* int8 activations (the default): each product errs within kernels.h's bound; through three
     * blocks and the head that was measured at 1.7 % of the largest logit (0.055 of 3.24); a
     * wrong block scale or sign errs by the logits' own size. Tolerance: 5 %. */
    printf("# q8_0 decoder with int8 activations vs batched: max diff %.3g, max |logit| %.3g\n", di, sc);
    CHECK_MSG(di <= 0.05 * sc, "q8_0 decoder (int8) vs batched: max diff %.3g > 5%% of max |logit| %.3g", di, sc);
    if (cce_kern_wants_q8(CCE_WT_Q8_0)) CHECK_MSG(di > 1e-6, "the int8 path was not taken (diff %.3g)", di);
    spec h = {CCE_ARCH_LLAMA, 64, 3, 4, 2, 16, 96, 70, 64, 0, 0, 0, 0, CCE_WT_F16, 0};
    d = decoder_vs_batched(&h, 45, 50);
    CHECK_MSG(d < 1e-4, "f16 decoder vs batched: max abs diff %.3g (tol 1e-4)", d);
}

/* A derived model borrows every tensor of its source; replacing one layer's weights in the
 * derived model changes its logits only, and freeing it leaves the source intact. */
TEST(derived_model_borrows_and_owns) {
    spec s = {CCE_ARCH_LLAMA, 32, 2, 4, 2, 8, 48, 40, 32, 1, 0, 0, 0, CCE_WT_F32, 0};
    cce_model *m = build(&s, 51), *d = NULL;
    CHECK(m != NULL);
    cce_err e = {{0}};
    CHECK_OK(cce_model_derive(m, &d, &e));
    CHECK(d->base == m && d->layers[1].w2.w == m->layers[1].w2.w && d->tok_emb.w == m->tok_emb.w);
    int ids[8] = {1, 5, 9, 3, 7, 2, 8, 4};
    float *a = cce_alloc(8 * 40, sizeof(float)), *b = cce_alloc(8 * 40, sizeof(float));
    CHECK_OK(cce_ref_forward(m, ids, 8, a, NULL, NULL, &e));
    CHECK_OK(cce_ref_forward(d, ids, 8, b, NULL, NULL, &e));
    double same = maxdiff(a, b, 8 * 40);
    float *w2 = cce_model_alloc(d, 32 * 48, sizeof(float));   // the derived model's own w2: zero
    d->layers[1].w2.w = w2;
    CHECK_OK(cce_ref_forward(d, ids, 8, b, NULL, NULL, &e));
    double changed = maxdiff(a, b, 8 * 40);
    cce_model_free(d);
    CHECK_OK(cce_ref_forward(m, ids, 8, b, NULL, NULL, &e));
    double after = maxdiff(a, b, 8 * 40);
    cce_free(a); cce_free(b); cce_model_free(m);
    CHECK_MSG(same == 0 && changed > 1e-3 && after == 0, "same %g changed %g after free %g", same, changed, after);
}

/* cce_argmax = the scalar scan "x[j] > x[best]": first of ties, NaNs skipped, 0 when x[0] is NaN */
TEST(argmax_is_the_scalar_scan) {
    float x[70];
    int ns[5] = {1, 15, 16, 17, 70};
    cce_rng r;
    cce_rng_seed(&r, 5);
    for (int trial = 0; trial < 200; trial++) {
        int n = ns[trial % 5];
        for (int j = 0; j < n; j++) x[j] = (float)(cce_rng_u64(&r) % 7);   // many ties
        if (trial % 3 == 1) x[cce_rng_u64(&r) % n] = NAN;
        if (trial % 7 == 2) x[0] = NAN;
        int best = 0;
        for (int j = 1; j < n; j++)
            if (x[j] > x[best]) best = j;
        CHECK_MSG(cce_argmax(x, n) == best, "trial %d (n %d): %d, expected %d", trial, n, cce_argmax(x, n), best);
    }
}

/* ---- errors ---- */

TEST(errors_are_reported) {
    spec s = {CCE_ARCH_LLAMA, 16, 2, 2, 1, 8, 20, 30, 32, 1, 0, 0, 0, CCE_WT_F32, 0};
    cce_model *m = build(&s, 51);
    CHECK(m);
    cce_fwd *f = NULL;
    cce_decoder *dec = NULL;
    cce_err e = {{0}};
    int ids[8] = {1, 2, 3, 30, 5, 6, 7, 8};  // 30 is outside the vocabulary
    float h[16 * 16], lg[30];
    double sum = 0;
    long cnt = 0;
    int s_new = cce_fwd_new(m, 8, 8, &f, &e);
    int s_emb = f ? (int)cce_fwd_embed(f, ids, 1, 8, h, &e) : -1;
    int has_msg = strstr(e.msg, "30") != NULL;
    int s_big = f ? (int)cce_fwd_embed(f, ids, 2, 8, h, &e) : -1;        // 16 rows > 8
    int s_nll = f ? (int)cce_fwd_sequences_nll(f, ids, 1, 8, &sum, &cnt, &e) : -1;
    int s_layer = f ? (int)cce_fwd_block(f, 2, h, 1, 8, NULL, NULL, &e) : -1;
    int s_dnew = cce_decoder_new(m, 4, &dec, &e);
    int s_d0 = dec ? (int)cce_decoder_step(dec, 1, 0, lg, &e) : -1;
    int s_gap = dec ? (int)cce_decoder_step(dec, 1, 2, lg, &e) : -1;     // position 1 skipped
    int s_tok = dec ? (int)cce_decoder_step(dec, -1, 1, lg, &e) : -1;
    int s_full = -1;
    if (dec) {
        for (int p = 1; p < 4; p++) cce_decoder_step(dec, 1, p, lg, &e);
        s_full = cce_decoder_step(dec, 1, 4, lg, &e);             // past the cache
    }
    /* a model whose shapes do not match is refused, not run */
    cce_fwd *f2 = NULL;
    m->layers[1].wk.out = 9;
    int s_bad = cce_fwd_new(m, 8, 8, &f2, &e);
    m->layers[1].wk.out = 8;
    cce_fwd_free(f); cce_fwd_free(f2); cce_decoder_free(dec); cce_model_free(m);
    CHECK_EQ_INT(s_new, CCE_OK);
    CHECK_EQ_INT(s_emb, CCE_EINVAL);
    CHECK(has_msg);
    CHECK_EQ_INT(s_big, CCE_EINVAL);
    CHECK_EQ_INT(s_nll, CCE_EINVAL);
    CHECK_EQ_INT(s_layer, CCE_EINVAL);
    CHECK_EQ_INT(s_dnew, CCE_OK);
    CHECK_EQ_INT(s_d0, CCE_OK);
    CHECK_EQ_INT(s_gap, CCE_EINVAL);
    CHECK_EQ_INT(s_tok, CCE_EINVAL);
    CHECK_EQ_INT(s_full, CCE_EINVAL);
    CHECK_EQ_INT(s_bad, CCE_EINVAL);
}

TEST(out_of_memory_is_clean) {
    spec s = {CCE_ARCH_LLAMA, 16, 2, 2, 1, 8, 20, 30, 32, 1, 0, 0, 0, CCE_WT_F32, 0};
    cce_model *m = build(&s, 61);
    CHECK(m);
    int fails = 0, oks = 0;
    for (long n = 1; n <= 20; n++) {
        cce_fwd *f = NULL;
        cce_decoder *d = NULL;
        cce_err e;
        cce_alloc_fail_after(n);
        int a = cce_fwd_new(m, 16, 16, &f, &e);
        cce_alloc_fail_after(n);
        int b = cce_decoder_new(m, 16, &d, &e);
        cce_alloc_fail_after(0);
        fails += (a == CCE_ENOMEM) + (b == CCE_ENOMEM);
        oks += (a == CCE_OK) + (b == CCE_OK);
        if ((a == CCE_OK) != (f != NULL) || (b == CCE_OK) != (d != NULL)) fails = -1000;
        cce_fwd_free(f);
        cce_decoder_free(d);
    }
    cce_model_free(m);
    CHECK(fails > 10);
    CHECK(oks > 0);
}

/* ---- the real checkpoint ---- */

TEST(stories260k_fast_vs_ref_and_greedy) {
    const char *path = harness_data("llama2c/stories260K.bin");
    CHECK_MSG(harness_have(path), "missing %s", path);
    cce_model *m = NULL;
    cce_err e;
    CHECK_OK(cce_load_llama2c(path, &m, &e));
    static const int want[25] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                                 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292};
    int ids[25] = {1};
    int ok = !cce_greedy_ids(m, ids, 25, &e);
    /* fast vs reference on the generated sequence */
    float *lr = cce_alloc(25 * 512, sizeof(float)), *lf = cce_alloc(25 * 512, sizeof(float));
    float *h = cce_alloc(25 * 64, sizeof(float));
    cce_fwd *f = NULL;
    ok = ok && !cce_ref_forward(m, ids, 25, lr, NULL, NULL, &e) && !cce_fwd_new(m, 25, 25, &f, &e) &&
         !cce_fwd_embed(f, ids, 1, 25, h, &e);
    for (int li = 0; ok && li < 5; li++) ok = !cce_fwd_block(f, li, h, 1, 25, NULL, NULL, &e);
    ok = ok && !cce_fwd_logits(f, h, 25, lf, &e);
    double dd = ok ? maxdiff(lr, lf, 25 * 512) : INFINITY;
    cce_fwd_free(f); cce_free(lr); cce_free(lf); cce_free(h); cce_model_free(m);
    CHECK_MSG(ok, "%s", e.msg);
    for (int t = 0; t < 25; t++)
        CHECK_MSG(ids[t] == want[t], "greedy id %d = %d, expected %d", t, ids[t], want[t]);
    CHECK_MSG(dd < 1e-4, "stories260K fast vs reference: max abs diff %.3g", dd);
}

int main(void) {
    RUN(llama_gqa_interleaved);
    RUN(llama_long_sequence_multi_block);
    RUN(llama_hf_rope_qkv_bias_odd_sizes);
    RUN(gpt2_layernorm_gelu_pos);
    RUN(llama_compressed_shapes);
    RUN(gpt2_compressed_shapes);
    RUN(stored_types_f16_bf16_q8_0);
    RUN(nll_head_in_vocabulary_slices_and_row_blocks);
    RUN(blocks_without_attention_or_ffn);
    RUN(activation_tails);
    RUN(taps_identical_between_paths);
    RUN(tap_cancel);
    RUN(cancel_is_scoped_and_does_not_latch);
    RUN(decoder_matches_batched_llama);
    RUN(decoder_matches_batched_gpt2_hf_rope);
    RUN(decoder_stored_types_and_empty_sublayers);
    RUN(derived_model_borrows_and_owns);
    RUN(argmax_is_the_scalar_scan);
    RUN(errors_are_reported);
    RUN(out_of_memory_is_clean);
    RUN(stories260k_fast_vs_ref_and_greedy);
    return harness_done();
}
