/*
 * test_analysis.c — the analysis math against direct formulas, and the analysis job on a tiny
 * in-memory model with planted redundancy (a duplicated head, duplicated / scaled FFN neurons,
 * an identity block), and end to end on stories260K (deterministic for a fixed seed).
 */
#include <pthread.h>
#include <time.h>
#include "harness.h"
#include "analysis.h"
#include "calib.h"
#include "eval.h"
#include "linalg.h"
#include "model.h"
#include "tokenizer.h"
#include "util.h"

static void fill_normal(float *x, size_t n, uint64_t seed) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = cce_rng_normal(&r);
}

TEST(count_below) {
    float e[5] = {10, 1, 0.011f, 0.009f, -1e-9f};
    CHECK_EQ_INT(cce_spectrum_count_below(e, 5, 1e-3f), 2);   // 0.011 is above 0.01
    CHECK_EQ_INT(cce_spectrum_count_below(e, 5, 0.0f), 1);   // only the negative one
    CHECK_EQ_INT(cce_spectrum_count_below(e, 5, 0.5f), 4);
    float z[3] = {0, 0, 0};
    CHECK_EQ_INT(cce_spectrum_count_below(z, 3, 1e-3f), 3);
    CHECK_EQ_INT(cce_spectrum_count_below(e, 0, 1e-3f), 0);
}

TEST(cka_matches_direct_formula) {
    enum { R = 120, DX = 9, DY = 5 };
    static float x[R * DX], y[R * DY];
    fill_normal(x, R * DX, 1);
    fill_normal(y, R * DY, 2);
    for (int r = 0; r < R; r++)   // make y partly depend on x, with offsets
        for (int j = 0; j < DY; j++) y[r * DY + j] += 0.7f * x[r * DX + j] - 0.3f * x[r * DX + j + 3] + 5.0f;
    double fast, ref = cce_ref_cka(x, R, DX, DX, y, DY, DY);
    cce_err err;
    CHECK_OK(cce_cka_linear(x, DX, y, DY, R, DX, DY, &fast, &err));
    printf("  cka fast %.9f ref %.9f diff %.3g\n", fast, ref, fabs(fast - ref));
    CHECK(fabs(fast - ref) < 1e-5);
    CHECK(ref > 0.2 && ref < 0.99);
    // strided views, self-similarity
    CHECK_OK(cce_cka_linear(x, DX, x + 1, DX, R, 4, 4, &fast, &err));
    ref = cce_ref_cka(x, R, 4, DX, x + 1, 4, DX);
    CHECK(fabs(fast - ref) < 1e-5);
    CHECK_OK(cce_cka_linear(x, DX, x, DX, R, DX, DX, &fast, &err));
    CHECK_NEAR(fast, 1.0, 1e-6);
    CHECK_EQ_INT(cce_cka_linear(x, DX, y, DY, R, DX + 1, DY, &fast, &err), CCE_EINVAL);
}

/* Head contributions from explicit data vs from the covariance. */
TEST(head_cka_from_covariance_matches_explicit) {
    enum { R = 200, H = 4, HD = 3, N = H * HD, D = 7 };
    static float x[R * N], w[D * N], contrib[H][R * D];
    fill_normal(x, R * N, 3);
    fill_normal(w, D * N, 4);
    for (int r = 0; r < R; r++)   // head 3 correlated with head 0, offsets everywhere
        for (int k = 0; k < HD; k++) {
            x[r * N + 3 * HD + k] = 0.8f * x[r * N + k] + 0.2f * x[r * N + 3 * HD + k];
            x[r * N + k] += 2.0f;
        }
    for (int h = 0; h < H; h++)
        for (int r = 0; r < R; r++)
            for (int i = 0; i < D; i++) {
                double s = 0;
                for (int k = 0; k < HD; k++) s += (double)x[r * N + h * HD + k] * w[i * N + h * HD + k];
                contrib[h][r * D + i] = (float)s;
            }
    static double mean[N], cov[N * N];
    cce_ref_covariance(x, R, N, N, mean, cov);
    int off[H + 1], idx[N];
    for (int h = 0; h <= H; h++) off[h] = h * HD;
    for (int i = 0; i < N; i++) idx[i] = i;
    cce_components comps = {H, off, idx};
    float out[H * H];
    cce_err err;
    CHECK_OK(cce_cka_from_cov(cov, N, &comps, w, D, N, out, &err));
    double md = 0;
    for (int a = 0; a < H; a++)
        for (int b = 0; b < H; b++) {
            double ref = cce_ref_cka(contrib[a], R, D, D, contrib[b], D, D);
            md = fmax(md, fabs(ref - out[a * H + b]));
        }
    printf("  head CKA from covariance vs explicit contributions: max diff %.3g, cka(0,3) %.3f cka(0,1) %.3f\n",
           md, out[3], out[1]);
    CHECK(md < 1e-5);
    CHECK(out[3] > out[1] && out[3] > 0.5);
    CHECK_NEAR(out[0], 1.0, 1e-6);
    // groups {0, 3} and {1, 2}: the group contribution is the sum of its heads'
    int goff[3] = {0, 2 * HD, 4 * HD}, gidx[N];
    int p = 0;
    int members[2][2] = {{0, 3}, {1, 2}};
    for (int g = 0; g < 2; g++)
        for (int q = 0; q < 2; q++)
            for (int k = 0; k < HD; k++) gidx[p++] = members[g][q] * HD + k;
    cce_components groups = {2, goff, gidx};
    float gout[4];
    CHECK_OK(cce_cka_from_cov(cov, N, &groups, w, D, N, gout, &err));
    static float gsum[2][R * D];
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < R * D; i++) gsum[g][i] = contrib[members[g][0]][i] + contrib[members[g][1]][i];
    double gref = cce_ref_cka(gsum[0], R, D, D, gsum[1], D, D);
    printf("  group CKA %.6f ref %.6f\n", gout[1], gref);
    CHECK(fabs(gout[1] - gref) < 1e-5);
    idx[0] = N;   // out of range
    CHECK_EQ_INT(cce_cka_from_cov(cov, N, &comps, w, D, N, out, &err), CCE_EINVAL);
}

/* Residual variance of column i regressed on the columns in keep[] (least squares with an
 * intercept), by Gaussian elimination on the normal equations of the covariance. */
static double ref_residual_cov(const double *cov, int n, int i, int j, const int *keep, int nk);
static double ref_residual(const double *cov, int n, int i, const int *keep, int nk) {
    return ref_residual_cov(cov, n, i, i, keep, nk);
}

/* Residual covariance of columns i and j after regression on keep[]: C_ij - C_iK C_KK^-1 C_Kj. */
static double ref_residual_cov(const double *cov, int n, int i, int j, const int *keep, int nk) {
    double a[16 * 17];
    for (int p = 0; p < nk; p++) {
        for (int q = 0; q < nk; q++) a[p * (nk + 1) + q] = cov[keep[p] * n + keep[q]];
        a[p * (nk + 1) + nk] = cov[keep[p] * n + j];
    }
    for (int c = 0; c < nk; c++)
        for (int r = c + 1; r < nk; r++) {
            double f = a[r * (nk + 1) + c] / a[c * (nk + 1) + c];
            for (int k = c; k <= nk; k++) a[r * (nk + 1) + k] -= f * a[c * (nk + 1) + k];
        }
    double beta[16];
    for (int c = nk - 1; c >= 0; c--) {
        double s = a[c * (nk + 1) + nk];
        for (int k = c + 1; k < nk; k++) s -= a[c * (nk + 1) + k] * beta[k];
        beta[c] = s / a[c * (nk + 1) + c];
    }
    double res = cov[i * n + j];
    for (int p = 0; p < nk; p++) res -= beta[p] * cov[keep[p] * n + i];
    return res;
}

/* The greedy order by direct evaluation: step k removes the component c minimising
 * cce_select_cost(removed ∪ {c}). */
static void greedy_by_direct_cost(const double *cov, int n, const cce_components *c, const float *w, int d, int ldw,
                                  double ridge, int *order) {
    int nc = c->n_comp, used[64] = {0};
    for (int k = 0; k < nc; k++) {
        double best = INFINITY;
        int bi = -1;
        for (int i = 0; i < nc; i++) {
            if (used[i]) continue;
            order[k] = i;
            double v;
            cce_err err;
            if (cce_select_cost(cov, n, c, w, d, ldw, ridge, order, k + 1, &v, &err)) v = INFINITY;
            if (v < best) { best = v; bi = i; }
        }
        order[k] = bi;
        used[bi] = 1;
    }
}

TEST(redundancy_matches_regression_and_greedy) {
    enum { R = 300, N = 8, D = 5 };
    static float x[R * N], w[D * N];
    fill_normal(x, R * N, 5);
    fill_normal(w, D * N, 6);
    for (int r = 0; r < R; r++) x[r * N + 6] = 0.9f * x[r * N + 2] + 0.3f * x[r * N + 6];   // 6 ~ 2
    static double mean[N], cov[N * N];
    cce_ref_covariance(x, R, N, N, mean, cov);
    int off[N + 1], idx[N];
    for (int i = 0; i <= N; i++) off[i] = i;
    for (int i = 0; i < N; i++) idx[i] = i;
    cce_components comps = {N, off, idx};
    float score[N], cost[N];
    int order[N];
    cce_err err;
    CHECK_OK(cce_redundancy(cov, N, &comps, w, D, N, 1e-9, score, cost, order, &err));
    double md = 0;
    for (int i = 0; i < N; i++) {
        int keep[N], nk = 0;
        for (int k = 0; k < N; k++)
            if (k != i) keep[nk++] = k;
        double wn = 0;
        for (int k = 0; k < D; k++) wn += (double)w[k * N + i] * w[k * N + i];
        double res = ref_residual(cov, N, i, keep, nk);
        md = fmax(md, fabs(cost[i] - res * wn) / (cov[i * N + i] * wn));
        CHECK_NEAR(score[i], 1 - res / cov[i * N + i], 1e-5);
    }
    printf("  leave-one-out residuals vs regression: max rel diff %.3g; score(2) %.3f score(6) %.3f score(0) %.3f\n",
           md, score[2], score[6], score[0]);
    CHECK(md < 1e-6);
    CHECK(score[6] > 0.8 && score[2] > 0.8 && score[0] < 0.2);
    // greedy order from scratch: at each step the component whose removal, together with those
    // already removed, costs least by the direct Schur-complement formula (the survivors absorb
    // with their updated weights; issue 7: not each one's residual with its original weights)
    int ref_order[N];
    greedy_by_direct_cost(cov, N, &comps, w, D, N, 1e-9, ref_order);
    for (int i = 0; i < N; i++) CHECK_MSG(order[i] == ref_order[i], "step %d: greedy %d, reference %d", i, order[i], ref_order[i]);
    CHECK(order[0] == 2 || order[0] == 6);
    // heads of size 2 over the same data: scores in [0,1], order a permutation
    int hoff[5] = {0, 2, 4, 6, 8};
    cce_components heads = {4, hoff, idx};
    float hs[4], hc[4];
    int ho[4], seen[4] = {0};
    CHECK_OK(cce_redundancy(cov, N, &heads, w, D, N, 1e-9, hs, hc, ho, &err));
    for (int h = 0; h < 4; h++) {
        CHECK(hs[h] >= 0 && hs[h] <= 1);
        CHECK(ho[h] >= 0 && ho[h] < 4);
        seen[ho[h]]++;
    }
    for (int h = 0; h < 4; h++) CHECK_EQ_INT(seen[h], 1);
    int least = 0;   // the first greedy removal is the least leave-one-out cost
    for (int h = 1; h < 4; h++)
        if (hc[h] < hc[least]) least = h;
    CHECK_EQ_INT(ho[0], least);
}

TEST(redundancy_greedy_blocks_match_reference) {
    // components of sizes 2, 3, 1, 3, 2 (multi-dimensional "heads"), some correlated
    enum { R = 400, N = 11, D = 6, NC = 5 };
    static float x[R * N], w[D * N];
    fill_normal(x, R * N, 21);
    fill_normal(w, D * N, 22);
    for (int r = 0; r < R; r++) {
        x[r * N + 9] = 0.8f * x[r * N + 0] + 0.2f * x[r * N + 9];
        x[r * N + 5] = 0.7f * x[r * N + 3] - 0.5f * x[r * N + 10] + 0.1f * x[r * N + 5];
    }
    static double mean[N], cov[N * N];
    cce_ref_covariance(x, R, N, N, mean, cov);
    int off[NC + 1] = {0, 2, 5, 6, 9, 11}, idx[N];
    for (int i = 0; i < N; i++) idx[i] = (i * 7) % N;   // a permuted index map
    cce_components comps = {NC, off, idx};
    float score[NC], cost[NC];
    int order[NC];
    cce_err err;
    CHECK_OK(cce_redundancy(cov, N, &comps, w, D, N, 1e-10, score, cost, order, &err));
    for (int c = 0; c < NC; c++) {   // leave-one-out costs: the residual of c given all others
        int keep[N], nk = 0;
        for (int o = 0; o < NC; o++)
            if (o != c)
                for (int t = off[o]; t < off[o + 1]; t++) keep[nk++] = idx[t];
        double v = 0;
        for (int a = off[c]; a < off[c + 1]; a++)
            for (int bb = off[c]; bb < off[c + 1]; bb++) {
                double g = 0;
                for (int k = 0; k < D; k++) g += (double)w[k * N + idx[a]] * w[k * N + idx[bb]];
                v += g * ref_residual_cov(cov, N, idx[a], idx[bb], keep, nk);
            }
        CHECK_MSG(fabs(v - cost[c]) <= 1e-5 * fabs(v) + 1e-9, "cost %d: %g vs %g", c, cost[c], v);
    }
    int ref_order[NC];
    greedy_by_direct_cost(cov, N, &comps, w, D, N, 1e-10, ref_order);
    for (int step = 0; step < NC; step++)
        CHECK_MSG(order[step] == ref_order[step], "step %d: greedy %d, reference %d", step, order[step], ref_order[step]);
    printf("  block greedy order %d %d %d %d %d matches the reference\n", order[0], order[1], order[2], order[3], order[4]);
}

/* ---------------------------------------------------------------- the tiny planted model */

enum { TD = 32, TH = 4, THD = 8, TM = 48, TL = 3, TV = 64, TSEQ = 64 };
enum { DUP_A = 0, DUP_B = 2, NEUR_J = 3, NEUR_K = 40, NEUR_J2 = 7, NEUR_K2 = 41, PLANT_LAYER = 1, ID_LAYER = 2 };

static float *rnd(cce_model *m, cce_rng *r, size_t n, float scale, float offset) {
    float *p = cce_model_alloc(m, n, sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * cce_rng_normal(r);
    return p;
}

static cce_model *planted_model(void) {
    cce_config c = {.arch = CCE_ARCH_LLAMA, .dim = TD, .n_layers = TL, .n_heads = TH, .n_kv_heads = TH,
                    .head_dim = THD, .hidden_dim = TM, .vocab_size = TV, .seq_len = TSEQ,
                    .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_interleaved = 1, .tied = 1,
                    .bos_id = 1, .eos_id = 2};
    cce_model *m = NULL;
    cce_err e;
    if (cce_model_new(&c, &m, &e)) return NULL;
    cce_rng r;
    cce_rng_seed(&r, 77);
    m->tok_emb = cce_linear_of(TV, TD, rnd(m, &r, (size_t)TV * TD, 1.0f, 0));
    m->lm_head = m->tok_emb;
    m->final_norm = rnd(m, &r, TD, 0.1f, 1.0f);
    for (int li = 0; li < TL; li++) {
        cce_layer *l = &m->layers[li];
        l->n_heads = TH; l->n_kv_heads = TH; l->hidden = TM;
        l->attn_norm = rnd(m, &r, TD, 0.1f, 1.0f);
        l->ffn_norm = rnd(m, &r, TD, 0.1f, 1.0f);
        cce_linear *ls[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w1, &l->w2, &l->w3};
        int outs[] = {TD, TD, TD, TD, TM, TD, TM}, ins[] = {TD, TD, TD, TD, TD, TM, TD};
        for (int i = 0; i < 7; i++) {
            ls[i]->out = outs[i]; ls[i]->in = ins[i];
            ls[i]->w = rnd(m, &r, (size_t)outs[i] * ins[i], 1.0f / sqrtf((float)ins[i]), 0);
        }
        if (li == PLANT_LAYER) {
            // head B computes exactly what head A computes (n_kv_heads == n_heads)
            float *q = (float *)l->wq.w, *k = (float *)l->wk.w, *v = (float *)l->wv.w;
            float *mats[3] = {q, k, v};
            for (int t = 0; t < 3; t++)
                memcpy(mats[t] + DUP_B * THD * TD, mats[t] + DUP_A * THD * TD, THD * TD * sizeof(float));
            // neuron K = neuron J; neuron K2 = 2 x neuron J2 (same gate, doubled up projection)
            float *w1 = (float *)l->w1.w, *w3 = (float *)l->w3.w;
            memcpy(w1 + NEUR_K * TD, w1 + NEUR_J * TD, TD * sizeof(float));
            memcpy(w3 + NEUR_K * TD, w3 + NEUR_J * TD, TD * sizeof(float));
            memcpy(w1 + NEUR_K2 * TD, w1 + NEUR_J2 * TD, TD * sizeof(float));
            for (int i = 0; i < TD; i++) w3[NEUR_K2 * TD + i] = 2.0f * w3[NEUR_J2 * TD + i];
        }
        if (li == ID_LAYER) {   // the block adds nothing: identity
            memset((float *)l->wo.w, 0, TD * TD * sizeof(float));
            memset((float *)l->w2.w, 0, TD * TM * sizeof(float));
        }
    }
    return m;
}

static int *random_ids(size_t n, uint64_t seed) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    int *ids = cce_alloc(n, sizeof(int));
    for (size_t i = 0; i < n; i++) ids[i] = (int)(cce_rng_u64(&r) % TV);
    return ids;
}

static int cmp_score_desc(const float *s, int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); }

/* Indices of the k highest scores. */
static void top_k(const float *s, int n, int k, int *out) {
    int used[256] = {0};
    for (int t = 0; t < k; t++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!used[i] && (best < 0 || cmp_score_desc(s, i, best))) best = i;
        used[best] = 1;
        out[t] = best;
    }
}

typedef struct {
    int layer;
    float *heads;   // (rows, TH*THD)
    float *before, *after;   // (rows, TD) per layer, via h
} tap_store;

static int store_tap(void *user, const cce_tap *t) {
    tap_store *s = user;
    if (t->layer == s->layer && t->site == CCE_TAP_HEADS)
        for (int r = 0; r < t->rows; r++) memcpy(s->heads + (size_t)r * t->cols, t->x + (size_t)r * t->ld, t->cols * sizeof(float));
    return 0;
}

TEST(planted_redundancy_is_found) {
    cce_model *m = planted_model();
    CHECK(m);
    size_t n_ids = 40 * 32;
    int *ids = random_ids(n_ids, 99);
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 512;
    o.seq_len = 32;
    o.seed = 5;
    o.subsample = 100000;   // all rows, so the layer CKA can be checked directly
    cce_calib_source src = {.ids = ids, .n_ids = n_ids};
    cce_analysis *job = NULL;
    cce_err err = {{0}};
    CHECK_OK(cce_analysis_new(m, &src, &o, &job, &err));
    int done, total;
    char phase[64];
    cce_analysis_progress(job, &done, &total, phase, sizeof phase);
    CHECK_EQ_INT(done, 0);
    CHECK_EQ_INT(total, TL + 1);
    CHECK(cce_analysis_block(job, 0) == NULL);
    CHECK_OK(cce_analysis_step(job, &err));
    CHECK(cce_analysis_block(job, 0) == NULL);
    CHECK_OK(cce_analysis_step(job, &err));
    CHECK(cce_analysis_block(job, 0) != NULL);
    CHECK(cce_analysis_block(job, 1) == NULL);
    cce_analysis_progress(job, &done, &total, phase, sizeof phase);
    CHECK_EQ_INT(done, 2);
    CHECK_STR(phase, "block 1/3 redundancy");
    cce_status st = cce_analysis_run(job, &err);
    CHECK_MSG(st == CCE_OK, "run: %s", err.msg);
    CHECK(cce_analysis_finished(job));
    cce_analysis_progress(job, &done, &total, phase, sizeof phase);
    CHECK_STR(phase, "done");
    int nseq, slen;
    size_t stream;
    cce_analysis_calib_info(job, &stream, &nseq, &slen);
    CHECK_EQ_INT(nseq, 16);
    CHECK_EQ_INT(slen, 32);

    const cce_block_result *b = cce_analysis_block(job, PLANT_LAYER);
    // heads: the duplicated pair are the two most redundant
    int top[4];
    top_k(b->head_score, TH, 2, top);
    printf("  head scores:");
    for (int h = 0; h < TH; h++) printf(" %.4f", b->head_score[h]);
    printf("  order %d %d %d %d\n", b->head_order[0], b->head_order[1], b->head_order[2], b->head_order[3]);
    CHECK((top[0] == DUP_A && top[1] == DUP_B) || (top[0] == DUP_B && top[1] == DUP_A));
    CHECK(b->head_score[DUP_A] > 0.999f && b->head_score[DUP_B] > 0.999f);
    CHECK(b->head_order[0] == DUP_A || b->head_order[0] == DUP_B);
    // neurons: the two planted pairs are the four most redundant; the greedy order removes one
    // of each pair first
    top_k(b->neuron_score, TM, 4, top);
    int planted[4] = {NEUR_J, NEUR_K, NEUR_J2, NEUR_K2};
    for (int t = 0; t < 4; t++) {
        int found = 0;
        for (int q = 0; q < 4; q++) found |= top[t] == planted[q];
        CHECK_MSG(found, "neuron %d (score %.4f) ranked among the top 4", top[t], b->neuron_score[top[t]]);
    }
    int first2[2] = {b->neuron_order[0], b->neuron_order[1]};
    int pair1 = (first2[0] == NEUR_J || first2[0] == NEUR_K) + (first2[1] == NEUR_J || first2[1] == NEUR_K);
    int pair2 = (first2[0] == NEUR_J2 || first2[0] == NEUR_K2) + (first2[1] == NEUR_J2 || first2[1] == NEUR_K2);
    printf("  neuron top-4 scores %.5f %.5f %.5f %.5f, 5th %.4f; first pruned %d %d\n", b->neuron_score[top[0]],
           b->neuron_score[top[1]], b->neuron_score[top[2]], b->neuron_score[top[3]],
           b->neuron_score[b->neuron_order[4]], first2[0], first2[1]);
    CHECK(pair1 == 1 && pair2 == 1);
    // the identity block is flagged, the others are not
    for (int l = 0; l < TL; l++) {
        const cce_block_result *r = cce_analysis_block(job, l);
        printf("  block %d: angular distance %.6f influence %.6f near_identity %d\n", l, r->angular_distance,
               r->influence, r->near_identity);
        CHECK_EQ_INT(r->near_identity, l == ID_LAYER);
        if (l == ID_LAYER) CHECK(r->angular_distance < 1e-6 && r->influence < 1e-9);
        else CHECK(r->angular_distance > 0.01);
    }
    // spectra: descending, counted; weight spectra present
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        const cce_spectrum *sp = &b->eig[s];
        CHECK(sp->n > 0);
        for (int i = 1; i < sp->n; i++) CHECK(sp->values[i - 1] >= sp->values[i]);
        CHECK_EQ_INT(sp->below_eps, cce_spectrum_count_below(sp->values, sp->n, o.eps));
    }
    CHECK(b->eig[CCE_COV_FFN_ACT].below_eps >= 2);   // two exactly dependent neurons
    CHECK(b->eig[CCE_COV_HEADS].below_eps >= THD);   // a duplicated head: hd dependent directions
    CHECK_EQ_INT(b->n_weights, 7);
    CHECK_STR(b->weights[6].name, "w2");
    for (int k = 0; k < b->n_weights; k++) {
        const cce_weight_spectrum *ws = &b->weights[k];
        CHECK(ws->sv[0] > 0 && ws->sv_aw[0] > 0 && ws->stable_rank >= 1 - 1e-6);
        CHECK_NEAR(ws->spectral_norm, ws->sv[0], 1e-6);
    }
    // duplicated head rows make the square wq/wk/wv rank-deficient by one head
    for (int k = 0; k < 3; k++) CHECK(b->weights[k].below_tau >= THD && b->weights[k].aw_below_tau >= THD);
    for (int s = 0; s < CCE_TAP_COUNT; s++) CHECK(b->hist[s].total > 0);
    CHECK_EQ_INT(b->hist[CCE_TAP_FFN_ACT].total, 512 * TM);

    // head CKA and layer CKA against explicit activations of the same calibration batch
    cce_calib *c = NULL;
    cce_calib_opts co = {o.tokens, o.seq_len, o.seed, 0};
    CHECK_OK(cce_calib_new(m, ids, n_ids, &co, &c, &err));
    tap_store ts = {.layer = PLANT_LAYER};
    ts.heads = cce_alloc((size_t)c->rows, TH * THD * sizeof(float));
    float *hs[TL + 1];
    for (int l = 0; l <= TL; l++) hs[l] = cce_alloc((size_t)c->rows, TD * sizeof(float));
    memcpy(hs[0], c->h, (size_t)c->rows * TD * sizeof(float));
    for (int l = 0; l < TL; l++) {
        CHECK_OK(cce_calib_block(c, store_tap, &ts, &err));
        memcpy(hs[l + 1], c->h, (size_t)c->rows * TD * sizeof(float));
    }
    float *contrib[TH];
    const float *wo = m->layers[PLANT_LAYER].wo.w;
    for (int h = 0; h < TH; h++) {
        contrib[h] = cce_alloc((size_t)c->rows, TD * sizeof(float));
        for (int r = 0; r < c->rows; r++)
            for (int i = 0; i < TD; i++) {
                double s = 0;
                for (int k = 0; k < THD; k++) s += (double)ts.heads[(size_t)r * TH * THD + h * THD + k] * wo[i * TD + h * THD + k];
                contrib[h][(size_t)r * TD + i] = (float)s;
            }
    }
    double md = 0;
    for (int a = 0; a < TH; a++)
        for (int bb = 0; bb < TH; bb++)
            md = fmax(md, fabs(cce_ref_cka(contrib[a], c->rows, TD, TD, contrib[bb], TD, TD) - b->head_cka[a * TH + bb]));
    printf("  head CKA (from covariance) vs explicit contributions on the model: max diff %.3g\n", md);
    CHECK(md < 1e-4);
    for (int g = 0; g < TH; g++) CHECK_NEAR(b->group_cka[g * TH + g], 1.0, 1e-6);   // groups == heads here
    const float *lc = cce_analysis_layer_cka(job, &done);
    CHECK_EQ_INT(done, TL);
    float *dl[TL];
    for (int l = 0; l < TL; l++) {
        dl[l] = cce_alloc((size_t)c->rows, TD * sizeof(float));
        for (size_t i = 0; i < (size_t)c->rows * TD; i++) dl[l][i] = hs[l + 1][i] - hs[l][i];
    }
    md = 0;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            md = fmax(md, fabs(cce_ref_cka(dl[i], c->rows, TD, TD, dl[k], TD, TD) - lc[i * TL + k]));
    printf("  layer CKA vs direct on block updates: max diff %.3g; cka(0,1) %.4f; identity row %g %g %g\n", md,
           lc[1], lc[ID_LAYER * TL], lc[ID_LAYER * TL + 1], lc[ID_LAYER * TL + 2]);
    CHECK(md < 1e-4);
    CHECK(lc[ID_LAYER * TL + 0] == 0 && lc[ID_LAYER * TL + ID_LAYER] == 0);
    // the Gram-matrix route gives the same matrix
    cce_analysis_opts og = o;
    og.cka_gram = 1;
    cce_analysis *jg = NULL;
    CHECK_OK(cce_analysis_new(m, &src, &og, &jg, &err));
    CHECK_OK(cce_analysis_run(jg, &err));
    const float *lg = cce_analysis_layer_cka(jg, NULL);
    double mg = 0;
    for (int i = 0; i < TL * TL; i++) mg = fmax(mg, fabs(lg[i] - lc[i]));
    printf("  layer CKA via Gram matrices vs via updates: max diff %.3g\n", mg);
    CHECK(mg < 1e-5);
    cce_analysis_free(jg);
    for (int l = 0; l < TL; l++) cce_free(dl[l]);
    for (int h = 0; h < TH; h++) cce_free(contrib[h]);
    for (int l = 0; l <= TL; l++) cce_free(hs[l]);
    cce_free(ts.heads);
    cce_calib_free(c);
    cce_analysis_free(job);
    cce_free(ids);
    cce_model_free(m);
}

static void stats_hook(void *user, const cce_block_stats *st) {
    int *calls = user;
    (*calls)++;
    (void)st;
}

TEST(cancel_and_errors) {
    cce_model *m = planted_model();
    int *ids = random_ids(1000, 3);
    cce_calib_source src = {.ids = ids, .n_ids = 1000};
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 256;
    o.seq_len = 32;
    cce_analysis *job = NULL;
    cce_err err = {{0}};
    CHECK_OK(cce_analysis_new(m, &src, &o, &job, &err));
    int calls = 0;
    cce_analysis_set_stats_hook(job, stats_hook, &calls);
    CHECK_OK(cce_analysis_step(job, &err));
    CHECK_OK(cce_analysis_step(job, &err));
    CHECK_EQ_INT(calls, 1);
    cce_analysis_cancel(job);
    CHECK_EQ_INT(cce_analysis_step(job, &err), CCE_ECANCEL);
    CHECK(strstr(err.msg, "cancel") != NULL);
    CHECK_EQ_INT(cce_analysis_step(job, &err), CCE_ECANCEL);   // sticky
    char phase[64];
    cce_analysis_progress(job, NULL, NULL, phase, sizeof phase);
    CHECK_STR(phase, "cancelled");
    CHECK(cce_analysis_block(job, 0) != NULL);   // finished blocks stay readable
    CHECK(cce_analysis_block(job, 1) == NULL);
    cce_analysis_free(job);
    // bad options and too little text
    o.seq_len = TSEQ + 1;
    CHECK_EQ_INT(cce_analysis_new(m, &src, &o, &job, &err), CCE_EINVAL);
    CHECK(strstr(err.msg, "seq_len") != NULL);
    o.seq_len = 32;
    src.n_ids = 20;
    CHECK_OK(cce_analysis_new(m, &src, &o, &job, &err));
    CHECK_EQ_INT(cce_analysis_step(job, &err), CCE_EINVAL);
    CHECK(strstr(err.msg, "less than one sequence") != NULL);
    cce_analysis_free(job);
    size_t starts[3];
    CHECK_EQ_INT(cce_calib_windows(100, 32, 4, 1, starts, &err), CCE_EINVAL);
    CHECK_OK(cce_calib_windows(100, 32, 3, 1, starts, &err));
    CHECK(starts[0] == 0 && starts[1] == 32 && starts[2] == 64);
    cce_free(ids);
    cce_model_free(m);
}

/* GPT-2 family (LayerNorm, biases, GELU, no w3), a dropped block and a low-rank matrix. */
TEST(gpt2_dropped_and_low_rank_blocks) {
    cce_config c = {.arch = CCE_ARCH_GPT2, .dim = 16, .n_layers = 3, .n_heads = 2, .n_kv_heads = 2,
                    .head_dim = 8, .hidden_dim = 24, .vocab_size = 40, .seq_len = 32,
                    .norm_eps = 1e-5f, .tied = 1, .bos_id = -1, .eos_id = -1};
    cce_model *m = NULL;
    cce_err err = {{0}};
    CHECK_OK(cce_model_new(&c, &m, &err));
    cce_rng r;
    cce_rng_seed(&r, 31);
    m->tok_emb = cce_linear_of(40, 16, rnd(m, &r, 40 * 16, 1.0f, 0));
    m->lm_head = m->tok_emb;
    m->pos_emb = rnd(m, &r, 32 * 16, 0.1f, 0);
    m->final_norm = rnd(m, &r, 16, 0.1f, 1.0f);
    m->final_norm_b = rnd(m, &r, 16, 0.1f, 0);
    for (int li = 0; li < 3; li++) {
        cce_layer *l = &m->layers[li];
        l->n_heads = 2; l->n_kv_heads = 2; l->hidden = 24;
        l->attn_norm = rnd(m, &r, 16, 0.1f, 1.0f);
        l->attn_norm_b = rnd(m, &r, 16, 0.1f, 0);
        l->ffn_norm = rnd(m, &r, 16, 0.1f, 1.0f);
        l->ffn_norm_b = rnd(m, &r, 16, 0.1f, 0);
        cce_linear *ls[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w1, &l->w2};
        int outs[] = {16, 16, 16, 16, 24, 16}, ins[] = {16, 16, 16, 16, 16, 24};
        for (int i = 0; i < 6; i++) {
            ls[i]->out = outs[i]; ls[i]->in = ins[i];
            ls[i]->w = rnd(m, &r, (size_t)outs[i] * ins[i], 1.0f / sqrtf((float)ins[i]), 0);
            ls[i]->b = rnd(m, &r, (size_t)outs[i], 0.1f, 0);
        }
    }
    m->layers[1].dropped = 1;
    // block 2: w2 as a rank-4 product U V
    cce_linear *w2 = &m->layers[2].w2;
    w2->w = NULL;
    w2->rank = 4;
    w2->u = rnd(m, &r, 16 * 4, 0.5f, 0);
    w2->v = rnd(m, &r, 4 * 24, 0.5f, 0);
    int *ids = cce_alloc(400, sizeof(int));
    for (int i = 0; i < 400; i++) ids[i] = (int)(cce_rng_u64(&r) % 40);
    cce_calib_source src = {.ids = ids, .n_ids = 400};
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 256;
    o.seq_len = 32;
    cce_analysis *job = NULL;
    CHECK_OK(cce_analysis_new(m, &src, &o, &job, &err));
    cce_status st = cce_analysis_run(job, &err);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    const cce_block_result *b0 = cce_analysis_block(job, 0), *b1 = cce_analysis_block(job, 1),
                           *b2 = cce_analysis_block(job, 2);
    CHECK_EQ_INT(b0->n_weights, 6);   // no w3 in GPT-2
    CHECK_STR(b0->weights[5].name, "w2");
    CHECK(b0->angular_distance > 0.01);
    CHECK(b1->dropped && b1->near_identity && b1->n_weights == 0 && b1->eig[0].n == 0);
    CHECK(b1->hist[CCE_TAP_BLOCK_OUT].total > 0 && b1->hist[CCE_TAP_ATTN_IN].total == 0);
    CHECK_EQ_INT(b2->weights[5].n, 16);
    CHECK_EQ_INT(b2->weights[5].below_tau, 12);   // rank 4 of 16: 12 zero singular values
    const float *lc = cce_analysis_layer_cka(job, NULL);
    CHECK(lc[1 * 3 + 1] == 0 && lc[0] > 0.99f);
    cce_analysis_free(job);
    cce_free(ids);
    cce_model_free(m);
}

/* Fail the n-th allocation for every n until a run needs fewer: each run must end with
 * CCE_OK or CCE_ENOMEM and a message, never crash (leaks are checked under valgrind). */
TEST(allocation_failures_are_clean) {
    cce_model *m = planted_model();
    int *ids = random_ids(600, 4);
    cce_calib_source src = {.ids = ids, .n_ids = 600};
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 128;
    o.seq_len = 32;
    int n, failures = 0;
    for (n = 1; n < 5000; n++) {
        cce_analysis *job = NULL;
        cce_err err = {{0}};
        cce_alloc_fail_after(n);
        cce_status st = cce_analysis_new(m, &src, &o, &job, &err);
        if (!st) st = cce_analysis_run(job, &err);
        cce_alloc_fail_after(0);
        cce_analysis_free(job);
        if (st == CCE_OK) break;
        CHECK_MSG(st == CCE_ENOMEM && err.msg[0], "allocation %d: status %d '%s'", n, st, err.msg);
        failures++;
    }
    printf("  %d injected allocation failures, all reported as CCE_ENOMEM\n", failures);
    CHECK(failures > 50 && n < 5000);
    cce_free(ids);
    cce_model_free(m);
}

typedef struct {
    cce_analysis *job;
    int polls, regressions, bad_reads;
} reader_state;

/* Another thread, as the TUI would: progress, finished blocks and the layer CKA while it runs. */
static void *reader_main(void *arg) {
    reader_state *r = arg;
    int last = 0;
    for (;;) {
        int done, total, n_done;
        char phase[64];
        cce_analysis_progress(r->job, &done, &total, phase, sizeof phase);
        if (done < last) r->regressions++;
        last = done;
        const float *lc = cce_analysis_layer_cka(r->job, &n_done);
        for (int l = 0; l < total - 1; l++) {
            const cce_block_result *b = cce_analysis_block(r->job, l);
            if (l < done - 1 && (!b || b->layer != l || !b->eig[0].values)) r->bad_reads++;
        }
        for (int i = 0; i < n_done; i++)
            if (!(lc[i * (total - 1) + i] >= 0.99f || lc[i * (total - 1) + i] == 0)) r->bad_reads++;
        r->polls++;
        if (cce_analysis_finished(r->job) || !strcmp(phase, "failed")) break;
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

TEST(results_readable_from_another_thread) {
    cce_model *m = planted_model();
    int *ids = random_ids(2000, 8);
    cce_calib_source src = {.ids = ids, .n_ids = 2000};
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 1024;
    o.seq_len = 32;
    cce_analysis *job = NULL;
    cce_err err = {{0}};
    CHECK_OK(cce_analysis_new(m, &src, &o, &job, &err));
    reader_state rs = {job, 0, 0, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader_main, &rs) == 0);
    cce_status st = cce_analysis_run(job, &err);
    pthread_join(th, NULL);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    printf("  reader thread: %d polls, %d regressions, %d bad reads\n", rs.polls, rs.regressions, rs.bad_reads);
    CHECK(rs.polls >= 1 && rs.regressions == 0 && rs.bad_reads == 0);
    cce_analysis_free(job);
    cce_free(ids);
    cce_model_free(m);
}

static int stop_now(void *user) { return ++*(int *)user >= 3; }

/* Tokenising in pieces cut after blank lines gives exactly the protocol's stream. */
TEST(chunked_tokenisation_matches_protocol) {
    const char *tp = harness_data("llama2c/tok512.bin"), *xp = harness_data("text/tinystories_valid_head.txt");
    if (!harness_have(tp) || !harness_have(xp)) {
        printf("  (data missing: skipped)\n");
        return;
    }
    cce_tokenizer *tok = NULL;
    cce_err err = {{0}};
    CHECK_OK(cce_tokenizer_load_llama2c(tp, 512, &tok, &err));
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(cce_read_file(xp, 1 << 24, &text, &len, &err));
    len = 120000;   // a prefix keeps it fast; add CRLF line ends and runs of blank lines in it
    char *t2 = cce_alloc(2 * len + 16, 1);
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n' && i % 5 == 0) t2[m++] = '\r';
        t2[m++] = text[i];
        if (text[i] == '\n' && i % 7 == 0) { t2[m++] = '\n'; t2[m++] = '\n'; }
    }
    int *whole = NULL, *pieces = NULL;
    size_t nw = 0, np = 0;
    CHECK_OK(cce_text_tokens(tok, t2, m, &whole, &nw, &err));
    size_t sizes[3] = {1, 1000, 50000};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(cce_calib_text_tokens(tok, t2, m, sizes[k], NULL, NULL, &pieces, &np, &err));
        CHECK_EQ_INT(np, nw);
        CHECK(!memcmp(pieces, whole, nw * sizeof(int)));
        cce_free(pieces);
    }
    printf("  %zu tokens, identical in pieces of 1, 1000 and 50000 bytes\n", nw);
    int calls = 0;
    CHECK_EQ_INT(cce_calib_text_tokens(tok, t2, m, 1000, stop_now, &calls, &pieces, &np, &err), CCE_ECANCEL);
    CHECK(pieces == NULL && calls == 3);
    cce_free(whole);
    cce_free(t2);
    cce_free(text);
    cce_tokenizer_free(tok);
}

TEST(stories260k_end_to_end_deterministic) {
    const char *mp = harness_data("llama2c/stories260K.bin"), *tp = harness_data("llama2c/tok512.bin");
    const char *xp = harness_data("text/train/tinystories_v1_train_head.txt");
    if (!harness_have(mp) || !harness_have(tp) || !harness_have(xp)) {
        printf("  (data missing: skipped)\n");
        return;
    }
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_err err = {{0}};
    cce_open_opts oo = {.tokenizer_path = tp};
    CHECK_OK(cce_model_open(mp, &oo, &m, &tok, &err));
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(cce_read_file(xp, 1 << 24, &text, &len, &err));
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 2048;
    o.seq_len = 128;
    o.seed = 11;
    cce_calib_source src = {.tok = tok, .text = text, .text_len = len};
    cce_analysis *a = NULL, *b = NULL;
    CHECK_OK(cce_analysis_new(m, &src, &o, &a, &err));
    CHECK_OK(cce_analysis_new(m, &src, &o, &b, &err));
    cce_status st = cce_analysis_run(a, &err);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    st = cce_analysis_run(b, &err);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    int L = cce_analysis_n_layers(a);
    CHECK_EQ_INT(L, 5);
    for (int l = 0; l < L; l++) {
        const cce_block_result *x = cce_analysis_block(a, l), *y = cce_analysis_block(b, l);
        CHECK(x && y);
        CHECK_EQ_INT(x->hidden, 172);
        CHECK_EQ_INT(x->n_heads, 8);
        for (int s = 0; s < CCE_COV_COUNT; s++)
            CHECK(!memcmp(x->eig[s].values, y->eig[s].values, (size_t)x->eig[s].n * sizeof(float)));
        CHECK(!memcmp(x->head_cka, y->head_cka, 64 * sizeof(float)));
        CHECK(!memcmp(x->group_cka, y->group_cka, 16 * sizeof(float)));
        CHECK(!memcmp(x->neuron_score, y->neuron_score, 172 * sizeof(float)));
        CHECK(!memcmp(x->neuron_order, y->neuron_order, 172 * sizeof(int)));
        for (int k = 0; k < x->n_weights; k++)
            CHECK(!memcmp(x->weights[k].sv_aw, y->weights[k].sv_aw, (size_t)x->weights[k].n * sizeof(float)));
        CHECK(x->angular_distance == y->angular_distance);
        CHECK(x->angular_distance > 0.01 && x->angular_distance < 0.5);
        printf("  block %d: ang %.4f infl %.4f eig<eps attn_in %d heads %d ffn_act %d/%d; head score max %.3f; "
               "neuron score max %.3f; t %.3fs\n", l, x->angular_distance, x->influence,
               x->eig[CCE_COV_ATTN_IN].below_eps, x->eig[CCE_COV_HEADS].below_eps, x->eig[CCE_COV_FFN_ACT].below_eps,
               x->hidden, x->head_score[x->head_order[0]], x->neuron_score[x->neuron_order[0]],
               x->t_forward + x->t_stats + x->t_similarity + x->t_eigen + x->t_svd + x->t_redundancy);
    }
    const float *ca = cce_analysis_layer_cka(a, NULL), *cb = cce_analysis_layer_cka(b, NULL);
    CHECK(!memcmp(ca, cb, (size_t)L * L * sizeof(float)));
    for (int l = 0; l < L; l++) CHECK_NEAR(ca[l * L + l], 1.0, 1e-5);
    int nseq;
    cce_analysis_calib_info(a, NULL, &nseq, NULL);
    CHECK_EQ_INT(nseq, 16);
    cce_analysis_free(a);
    cce_analysis_free(b);
    cce_free(text);
    cce_tokenizer_free(tok);
    cce_model_free(m);
}

int main(void) {
    RUN(count_below);
    RUN(cka_matches_direct_formula);
    RUN(head_cka_from_covariance_matches_explicit);
    RUN(redundancy_matches_regression_and_greedy);
    RUN(redundancy_greedy_blocks_match_reference);
    RUN(planted_redundancy_is_found);
    RUN(cancel_and_errors);
    RUN(gpt2_dropped_and_low_rank_blocks);
    RUN(allocation_failures_are_clean);
    RUN(results_readable_from_another_thread);
    RUN(chunked_tokenisation_matches_protocol);
    RUN(stories260k_end_to_end_deterministic);
    return harness_done();
}
