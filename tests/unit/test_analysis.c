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
#include <cjson/cJSON.h>

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
    o.threads = 1;   // the injected failure counter is process-wide: one thread keeps the n-th allocation fixed
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

typedef struct {
    int layer;
    double *cov[CCE_COV_COUNT];
    int dims[CCE_COV_COUNT];
} cov_capture;

static void capture_hook(void *user, const cce_block_stats *st) {
    cov_capture *c = user;
    if (st->layer != c->layer) return;
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        c->dims[s] = st->dims[s];
        if (!st->cov[s]) continue;
        c->cov[s] = cce_alloc((size_t)st->dims[s], (size_t)st->dims[s] * sizeof(double));
        memcpy(c->cov[s], st->cov[s], (size_t)st->dims[s] * st->dims[s] * sizeof(double));
    }
}

/* The planner's curves on the planted model: NEURONS and HEADS costs are the exact costs of their
 * prefix sets, the planted duplicates go first at ~0 cost, parameters are exact, rank curves are
 * the tails of the aware spectrum, drops match what removing everything costs, sim and nuc. */
TEST(curves_on_the_planted_model) {
    cce_model *m = planted_model();
    size_t n_ids = 40 * 32;
    int *ids = random_ids(n_ids, 99);
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 1024;
    o.seq_len = 32;
    cce_calib_source src = {.ids = ids, .n_ids = n_ids};
    cce_analysis *job = NULL;
    cce_err err = {{0}};
    CHECK_OK(cce_analysis_new(m, &src, &o, &job, &err));
    cov_capture cap = {.layer = PLANT_LAYER};
    cce_analysis_set_stats_hook(job, capture_hook, &cap);
    cce_status st = cce_analysis_run(job, &err);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    const cce_block_result *b = cce_analysis_block(job, PLANT_LAYER);
    const cce_layer *ly = &m->layers[PLANT_LAYER];
    const cce_curve *nc = &b->curves[CCE_CURVE_NEURONS], *hc = &b->curves[CCE_CURVE_HEADS];
    CHECK_EQ_INT(nc->n, TM);
    CHECK_EQ_INT(hc->n, TH);
    int off[TM + 1], idx[TM];
    for (int i = 0; i <= TM; i++) off[i] = i;
    for (int i = 0; i < TM; i++) idx[i] = i;
    cce_components neurons = {TM, off, idx};
    double md = 0;
    for (int k = 1; k <= TM; k++) {
        double direct;
        CHECK_OK(cce_select_cost(cap.cov[CCE_COV_FFN_ACT], TM, &neurons, ly->w2.w, TD, TM, o.ridge, nc->order, k, &direct, &err));
        md = fmax(md, fabs(direct - nc->cost[k]) / nc->cost[TM]);
        CHECK(nc->params[k] == (int64_t)k * 3 * TD);   // gate row, up row, down column
        CHECK(nc->order[k - 1] == b->neuron_order[k - 1]);
    }
    printf("  neurons: curve vs direct Schur cost max rel %.2g; cost[1] %.3g cost[2] %.3g cost[3] %.3g of %.3g; first %d %d\n",
           md, nc->cost[1], nc->cost[2], nc->cost[3], nc->cost[TM], nc->order[0], nc->order[1]);
    CHECK(md < 1e-9);
    CHECK(nc->cost[2] < 1e-5 * nc->cost[TM]);   // the two planted duplicates, at ~ridge cost
    int planted = 0;
    for (int k = 0; k < 2; k++)
        planted += nc->order[k] == NEUR_J || nc->order[k] == NEUR_K || nc->order[k] == NEUR_J2 || nc->order[k] == NEUR_K2;
    CHECK_EQ_INT(planted, 2);
    CHECK(nc->cost[3] > 1e-3 * nc->cost[TM]);
    // heads: the duplicated head first at ~0 cost; params: wq rows + wo columns + wk/wv rows
    // (each head is its own KV group here)
    int hoff[TH + 1], hidx[TH * THD];
    for (int h = 0; h <= TH; h++) hoff[h] = h * THD;
    for (int i = 0; i < TH * THD; i++) hidx[i] = i;
    cce_components heads = {TH, hoff, hidx};
    double hd_md = 0;
    for (int k = 1; k <= TH; k++) {
        double direct;
        CHECK_OK(cce_select_cost(cap.cov[CCE_COV_HEADS], TH * THD, &heads, ly->wo.w, TD, TH * THD, o.ridge, hc->order, k,
                                 &direct, &err));
        hd_md = fmax(hd_md, fabs(direct - hc->cost[k]) / hc->cost[TH]);
        CHECK(hc->params[k] == (int64_t)k * 4 * THD * TD);
    }
    printf("  heads: order %d %d %d %d, cost %.3g %.3g of %.3g, max rel vs direct %.2g; groups order %d .. cost[1] %.3g\n",
           hc->order[0], hc->order[1], hc->order[2], hc->order[3], hc->cost[1], hc->cost[2], hc->cost[TH], hd_md,
           b->group_order[0], b->group_cost[1]);
    CHECK(hd_md < 1e-9);
    CHECK(hc->order[0] == DUP_A || hc->order[0] == DUP_B);
    CHECK(hc->cost[1] < 1e-5 * hc->cost[TH]);
    CHECK(b->group_order[0] == DUP_A || b->group_order[0] == DUP_B);   // groups == heads here
    CHECK_NEAR(b->group_cost[TH], hc->cost[TH], 1e-9 * hc->cost[TH]);
    // sim[0]: mean |correlation| over all neuron pairs; mean CKA over all head pairs
    double s0 = 0, c0 = 0;
    const double *cf = cap.cov[CCE_COV_FFN_ACT];
    for (int a = 0; a < TM; a++)
        for (int bb = a + 1; bb < TM; bb++) s0 += fabs(cf[a * TM + bb]) / sqrt(cf[a * TM + a] * cf[bb * TM + bb]);
    for (int a = 0; a < TH; a++)
        for (int bb = a + 1; bb < TH; bb++) c0 += b->head_cka[a * TH + bb];
    CHECK_NEAR(nc->sim[0], s0 / (TM * (TM - 1) / 2), 1e-12);
    CHECK_NEAR(hc->sim[0], c0 / (TH * (TH - 1) / 2), 1e-7);
    CHECK(nc->sim[TM - 1] == 0 && nc->sim[TM] == 0);
    // nuc[0] = nuclear norm of W₂ (its plain singular values), nuc[n] = 0
    double nuc2 = 0, nuco = 0;
    for (int i = 0; i < b->weights[6].n; i++) nuc2 += b->weights[6].sv[i];
    for (int i = 0; i < b->weights[3].n; i++) nuco += b->weights[3].sv[i];
    printf("  nuc[0] neurons %.6g vs sum sigma(w2) %.6g; heads %.6g vs %.6g\n", nc->nuc[0], nuc2, hc->nuc[0], nuco);
    CHECK(fabs(nc->nuc[0] - nuc2) < 1e-4 * nuc2 && fabs(hc->nuc[0] - nuco) < 1e-4 * nuco);
    CHECK(nc->nuc[TM] == 0 && hc->nuc[TH] == 0);
    // rank curves: tails of the aware spectrum, exact parameter counts
    for (int k = 0; k < CCE_LIN_COUNT; k++) {
        const cce_curve *rc = &b->curves[cce_curve_rank_of(k)];
        const cce_weight_spectrum *ws = &b->weights[k];
        int out = ws->rows, in = ws->cols, r0 = (out * in - 1) / (out + in);
        CHECK_EQ_INT(rc->n, r0);
        double worst = 0;
        for (int q = 1; q <= rc->n; q++) {
            int rank = rc->order[q - 1];
            CHECK_EQ_INT(rank, r0 - q + 1);
            CHECK(rc->params[q] == (int64_t)out * in - (int64_t)rank * (out + in));
            double tail = 0;
            for (int i = rank; i < ws->n; i++) tail += (double)ws->sv_aw[i] * ws->sv_aw[i];
            worst = fmax(worst, fabs(tail - rc->cost[q]) / rc->cost[rc->n]);
            CHECK(rc->cost[q] >= rc->cost[q - 1]);
        }
        CHECK_MSG(worst < 1e-6, "%s: rank curve vs squared aware sigma tails %.3g", ws->name, worst);
    }
    // drops: the FFN's centred output energy is what removing every neuron costs, less the ridge
    double w2f = 0, wof = 0, trc = 0, trh = 0;
    for (int i = 0; i < TD * TM; i++) w2f += (double)((const float *)ly->w2.w)[i] * ((const float *)ly->w2.w)[i];
    for (int i = 0; i < TD * TD; i++) wof += (double)((const float *)ly->wo.w)[i] * ((const float *)ly->wo.w)[i];
    for (int i = 0; i < TM; i++) trc += cf[i * TM + i];
    for (int i = 0; i < TH * THD; i++) trh += cap.cov[CCE_COV_HEADS][i * TH * THD + i];
    double ffn_all = nc->cost[TM] - o.ridge * trc / TM * w2f, attn_all = hc->cost[TH] - o.ridge * trh / (TH * THD) * wof;
    const cce_curve *df = &b->curves[CCE_CURVE_DROP_FFN], *da = &b->curves[CCE_CURVE_DROP_ATTN],
                    *dbk = &b->curves[CCE_CURVE_DROP_BLOCK];
    printf("  drop ffn %.6g vs all neurons %.6g; drop attn %.6g vs all heads %.6g; block %.6g; out energy %.4g\n",
           df->cost[1], ffn_all, da->cost[1], attn_all, dbk->cost[1], b->out_energy);
    CHECK(df->n == 1 && da->n == 1 && dbk->n == 1);
    CHECK(fabs(df->cost[1] - ffn_all) < 1e-4 * ffn_all && fabs(da->cost[1] - attn_all) < 1e-4 * attn_all);
    CHECK(dbk->params[1] == cce_layer_params(m, PLANT_LAYER));
    CHECK(da->params[1] == 4 * TD * TD + TD && df->params[1] == 3 * TD * TM + TD);
    CHECK(b->out_energy > 0);
    const cce_block_result *bid = cce_analysis_block(job, ID_LAYER);   // the identity block changes nothing
    CHECK(bid->curves[CCE_CURVE_DROP_BLOCK].cost[1] < 1e-12 && bid->curves[CCE_CURVE_DROP_FFN].cost[1] < 1e-12);
    for (int s = 0; s < CCE_COV_COUNT; s++) cce_free(cap.cov[s]);
    cce_analysis_free(job);
    cce_free(ids);
    cce_model_free(m);
}

static int blocks_equal(const cce_block_result *x, const cce_block_result *y, char *why, size_t cap);

/* Blocks without attention or without FFN analyse; their absent sites and curves are empty, and
 * the analysis file round-trips them. */
TEST(blocks_without_attention_or_ffn) {
    cce_model *m = planted_model();
    cce_layer *l0 = &m->layers[0], *l1 = &m->layers[1];
    l0->n_heads = l0->n_kv_heads = 0;
    l0->wq = l0->wk = l0->wv = l0->wo = (cce_linear){0};
    l0->attn_norm = NULL;
    l1->hidden = 0;
    l1->w1 = l1->w2 = l1->w3 = (cce_linear){0};
    l1->ffn_norm = NULL;
    int *ids = random_ids(1000, 5);
    cce_calib_source src = {.ids = ids, .n_ids = 1000};
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 256;
    o.seq_len = 32;
    cce_analysis *job = NULL;
    cce_err err = {{0}};
    CHECK_OK(cce_analysis_new(m, &src, &o, &job, &err));
    cce_status st = cce_analysis_run(job, &err);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    const cce_block_result *b0 = cce_analysis_block(job, 0), *b1 = cce_analysis_block(job, 1);
    CHECK(b0->eig[CCE_COV_ATTN_IN].n == 0 && b0->eig[CCE_COV_HEADS].n == 0 && b0->eig[CCE_COV_FFN_ACT].n == TM);
    CHECK(b0->curves[CCE_CURVE_HEADS].n == 0 && b0->curves[CCE_CURVE_DROP_ATTN].n == 0 &&
          b0->curves[CCE_CURVE_RANK_WQ].n == 0 && b0->curves[CCE_CURVE_NEURONS].n == TM);
    CHECK(b0->n_weights == 3 && !strcmp(b0->weights[0].name, "w1"));
    CHECK(b1->eig[CCE_COV_FFN_ACT].n == 0 && b1->curves[CCE_CURVE_NEURONS].n == 0 && b1->curves[CCE_CURVE_DROP_FFN].n == 0);
    CHECK(b1->curves[CCE_CURVE_HEADS].n == TH && b1->n_weights == 4);
    // FFN-only block: dropping the block is dropping its FFN
    CHECK_NEAR(b0->curves[CCE_CURVE_DROP_BLOCK].cost[1], b0->curves[CCE_CURVE_DROP_FFN].cost[1],
               1e-6 * b0->curves[CCE_CURVE_DROP_FFN].cost[1]);
    // the file round-trips with the absent sites and curves (the model identifies by a file)
    char mpath[600], apath[600], sha[65];
    snprintf(mpath, sizeof mpath, "%s/planted.bin", harness_tmpdir());
    snprintf(apath, sizeof apath, "%s/planted.json", harness_tmpdir());
    CHECK_OK(cce_write_file_atomic(mpath, "planted model", 13, &err));
    m->path = cce_strdup(mpath);
    CHECK_OK(cce_model_sha256(mpath, sha, &err));
    cce_analysis_identity id = {mpath, sha, "ids", "none", 0};
    CHECK_OK(cce_analysis_save(job, m, &id, apath, &err));
    cce_analysis *back = NULL;
    st = cce_analysis_load(apath, m, &back, &err);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    char why[200] = "";
    for (int l = 0; l < TL; l++)
        CHECK_MSG(blocks_equal(cce_analysis_block(job, l), cce_analysis_block(back, l), why, sizeof why), "%s", why);
    cce_analysis_free(back);
    cce_analysis_free(job);
    cce_free(ids);
    cce_model_free(m);
}

static int blocks_equal(const cce_block_result *x, const cce_block_result *y, char *why, size_t cap) {
#define SAME(f, n) (((n) == 0) || (x->f && y->f && !memcmp(x->f, y->f, (size_t)(n) * sizeof *x->f)))
#define REQ(c, what) do { if (!(c)) { snprintf(why, cap, "block %d: %s", x->layer, what); return 0; } } while (0)
    REQ(x->layer == y->layer && x->dropped == y->dropped && x->n_heads == y->n_heads && x->hidden == y->hidden, "shapes");
    REQ(x->angular_distance == y->angular_distance && x->influence == y->influence && x->update_rms == y->update_rms &&
        x->near_identity == y->near_identity && x->out_energy == y->out_energy, "scalars");
    for (int s = 0; s < CCE_COV_COUNT; s++)
        REQ(x->eig[s].n == y->eig[s].n && x->eig[s].below_eps == y->eig[s].below_eps && SAME(eig[s].values, x->eig[s].n), "eigen");
    REQ(x->n_weights == y->n_weights, "n_weights");
    for (int k = 0; k < x->n_weights; k++) {
        const cce_weight_spectrum *a = &x->weights[k], *b = &y->weights[k];
        REQ(!strcmp(a->name, b->name) && a->n == b->n && a->spectral_norm == b->spectral_norm && a->frobenius == b->frobenius &&
            a->stable_rank == b->stable_rank && a->below_tau == b->below_tau && a->aw_below_tau == b->aw_below_tau &&
            a->jitter == b->jitter && !memcmp(a->sv, b->sv, (size_t)a->n * 4) && !memcmp(a->sv_aw, b->sv_aw, (size_t)a->n * 4),
            "weights");
    }
    int nh = x->n_heads, ng = x->n_kv_heads, m = x->hidden;
    REQ(SAME(head_cka, nh * nh) && SAME(group_cka, ng * ng) && SAME(head_score, nh) && SAME(head_cost, nh) &&
        SAME(head_order, nh) && SAME(neuron_score, m) && SAME(neuron_cost, m) && SAME(neuron_order, m) &&
        SAME(group_order, ng) && SAME(group_cost, ng ? ng + 1 : 0), "redundancy");
    for (int k = 0; k < CCE_CURVE_COUNT; k++) {
        const cce_curve *a = &x->curves[k], *b = &y->curves[k];
        REQ(a->n == b->n, "curve length");
        if (!a->n) continue;
        REQ((!a->order || !memcmp(a->order, b->order, (size_t)a->n * sizeof(int))) &&
            !memcmp(a->cost, b->cost, (size_t)(a->n + 1) * 8) && !memcmp(a->sim, b->sim, (size_t)(a->n + 1) * 8) &&
            !memcmp(a->nuc, b->nuc, (size_t)(a->n + 1) * 8) && !memcmp(a->params, b->params, (size_t)(a->n + 1) * 8),
            cce_curve_name((cce_curve_kind)k));
    }
    for (int s = 0; s < CCE_TAP_COUNT; s++) {
        const cce_hist *a = &x->hist[s], *b = &y->hist[s];
        REQ(a->total == b->total, "histogram total");
        if (!a->total) continue;
        REQ(a->n_bins == b->n_bins && a->lo == b->lo && a->hi == b->hi && a->min == b->min && a->max == b->max &&
            !memcmp(a->counts, b->counts, (size_t)(a->n_bins + 2) * 8), "histogram");
    }
    return 1;
#undef SAME
#undef REQ
}

/* Mutate a saved file with f, save as out, load: the status and a substring of the message. */
static int hostile(const char *good, const char *out, const cce_model *m, void (*f)(cJSON *), cce_status want,
                   const char *needle, char *msg, size_t cap) {
    char *txt = NULL;
    size_t len;
    cce_err err = {{0}};
    if (cce_read_file(good, 1u << 30, &txt, &len, &err)) return 0;
    cJSON *root = cJSON_Parse(txt);
    cce_free(txt);
    f(root);
    char *p = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    cce_write_file_atomic(out, p, strlen(p), &err);
    cJSON_free(p);
    cce_analysis *job = NULL;
    cce_status st = cce_analysis_load(out, m, &job, &err);
    cce_analysis_free(job);
    snprintf(msg, cap, "%s", err.msg);
    return st == want && strstr(err.msg, needle) && strstr(err.msg, out);
}

static cJSON *blk0(cJSON *root) { return cJSON_GetArrayItem(cJSON_GetObjectItem(root, "blocks"), 0); }
static void mut_type(cJSON *root) { cJSON_ReplaceItemInObject(blk0(root), "influence", cJSON_CreateString("big")); }
static void mut_major(cJSON *root) { cJSON_ReplaceItemInObject(root, "format_version", cJSON_CreateNumber(3)); }
static void mut_range(cJSON *root) {
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(blk0(root), "redundancy"), "neurons"), "order");
    cJSON_ReplaceItemInArray(o, 0, cJSON_CreateNumber(172));
}
static void mut_repeat(cJSON *root) {
    cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(blk0(root), "redundancy"), "heads"), "order");
    cJSON_ReplaceItemInArray(o, 1, cJSON_CreateNumber(cJSON_GetArrayItem(o, 0)->valuedouble));
}
static void mut_huge(cJSON *root) {   // a curve 10^6 steps long: refused by its length, not allocated
    cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(blk0(root), "curves"), "neurons");
    cJSON_ReplaceItemInObject(c, "n", cJSON_CreateNumber(1000000));
    cJSON *big = cJSON_CreateArray();
    for (int i = 0; i < 1000000; i++) cJSON_AddItemToArray(big, cJSON_CreateNumber(i));
    cJSON_ReplaceItemInObject(c, "cost", big);
}
static void mut_long_array(cJSON *root) {
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(blk0(root), "eigen"), "ffn_act"), "values");
    for (int i = 0; i < 100000; i++) cJSON_AddItemToArray(v, cJSON_CreateNumber(1));
}
static void mut_nested(cJSON *root) { cJSON_ReplaceItemInObject(root, "blocks", cJSON_CreateObject()); }

TEST(analysis_file_round_trip_and_hostile_files) {
    const char *mp = harness_data("llama2c/stories260K.bin"), *tp = harness_data("llama2c/tok512.bin");
    const char *gp = harness_data("gguf/stories260K.gguf");
    if (!harness_have(mp) || !harness_have(tp)) {
        printf("  (data missing: skipped)\n");
        return;
    }
    cce_model *m = NULL;
    cce_err err = {{0}};
    cce_open_opts oo = {.tokenizer_path = tp, .no_tokenizer = 1};
    CHECK_OK(cce_model_open(mp, &oo, &m, NULL, &err));
    int *ids = cce_alloc(4000, sizeof(int));
    cce_rng r;
    cce_rng_seed(&r, 3);
    for (int i = 0; i < 4000; i++) ids[i] = (int)(cce_rng_u64(&r) % (uint64_t)m->cfg.vocab_size);
    cce_calib_source src = {.ids = ids, .n_ids = 4000};
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = 1024;
    o.seq_len = 64;
    cce_analysis *a = NULL, *b = NULL;
    CHECK_OK(cce_analysis_new(m, &src, &o, &a, &err));
    CHECK_OK(cce_analysis_run(a, &err));
    char sha[65], path[600], bad_path[600];
    CHECK_OK(cce_model_sha256(mp, sha, &err));
    snprintf(path, sizeof path, "%s/a.json", harness_tmpdir());
    snprintf(bad_path, sizeof bad_path, "%s/bad.json", harness_tmpdir());
    cce_analysis_identity id = {mp, sha, "random", "none", 1.5};
    CHECK_OK(cce_analysis_save(a, m, &id, path, &err));
    cce_status st = cce_analysis_load(path, m, &b, &err);
    CHECK_MSG(st == CCE_OK, "%s", err.msg);
    CHECK(cce_analysis_finished(b));
    int L = cce_analysis_n_layers(b), done, total, nd;
    CHECK_EQ_INT(L, 5);
    char why[200] = "", phase[64];
    for (int l = 0; l < L; l++)
        CHECK_MSG(blocks_equal(cce_analysis_block(a, l), cce_analysis_block(b, l), why, sizeof why), "%s", why);
    CHECK(!memcmp(cce_analysis_layer_cka(a, NULL), cce_analysis_layer_cka(b, &nd), (size_t)L * L * sizeof(float)));
    CHECK_EQ_INT(nd, L);
    cce_analysis_progress(b, &done, &total, phase, sizeof phase);
    CHECK(done == L + 1 && total == L + 1 && !strcmp(phase, "done"));
    int ns1, sl1, ns2, sl2;
    size_t s1, s2;
    cce_analysis_calib_info(a, &s1, &ns1, &sl1);
    cce_analysis_calib_info(b, &s2, &ns2, &sl2);
    CHECK(s1 == s2 && ns1 == ns2 && sl1 == sl2);
    const cce_analysis_opts *oa = cce_analysis_get_opts(a), *ob = cce_analysis_get_opts(b);
    CHECK(oa->eps == ob->eps && oa->tau == ob->tau && oa->ridge == ob->ridge && oa->seed == ob->seed && oa->hist_bins == ob->hist_bins);
    CHECK(cce_analysis_block(b, L) == NULL);
    // the same results saved again give the same file
    char path2[600];
    snprintf(path2, sizeof path2, "%s/b.json", harness_tmpdir());
    CHECK_OK(cce_analysis_save(b, m, &id, path2, &err));
    char *t1 = NULL, *t2 = NULL;
    size_t l1, l2;
    CHECK_OK(cce_read_file(path, 1u << 30, &t1, &l1, &err));
    CHECK_OK(cce_read_file(path2, 1u << 30, &t2, &l2, &err));
    CHECK(l1 == l2 && !memcmp(t1, t2, l1));
    printf("  round trip: %zu bytes, every result of 5 blocks bit-identical, re-saved file identical\n", l1);
    cce_free(t1);
    cce_free(t2);
    cce_analysis_free(b);
    // hostile files: one-line errors naming the file and the field
    char msg[600];
    struct { void (*f)(cJSON *); cce_status want; const char *needle; } cases[] = {
        {mut_type, CCE_EFORMAT, "blocks[0].influence: not a number"},
        {mut_major, CCE_EUNSUPPORTED, "format_version: 3"},
        {mut_range, CCE_EFORMAT, "blocks[0].redundancy.neurons.order: element 0 is 172"},
        {mut_repeat, CCE_EFORMAT, "redundancy.heads.order: indices repeat"},
        {mut_huge, CCE_EFORMAT, "blocks[0].curves.neurons.n: steps do not match"},
        {mut_long_array, CCE_EFORMAT, "eigen.ffn_act.values: 100172 elements, expected 172"},
        {mut_nested, CCE_EFORMAT, "blocks: not an array"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        CHECK_MSG(hostile(path, bad_path, m, cases[k].f, cases[k].want, cases[k].needle, msg, sizeof msg),
                  "case %zu: '%s'", k, msg);
    // truncated, not JSON
    char *txt = NULL;
    size_t len;
    CHECK_OK(cce_read_file(path, 1u << 30, &txt, &len, &err));
    CHECK_OK(cce_write_file_atomic(bad_path, txt, len / 2, &err));
    cce_free(txt);
    CHECK_EQ_INT(cce_analysis_load(bad_path, m, &b, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "not valid JSON") != NULL && b == NULL);
    // another model: the GGUF copy has the same weights but another file, so another identity
    if (harness_have(gp)) {
        cce_model *g = NULL;
        cce_tokenizer *gt = NULL;
        cce_open_opts go = {.no_tokenizer = 1};
        CHECK_OK(cce_model_open(gp, &go, &g, &gt, &err));
        CHECK_EQ_INT(cce_analysis_load(path, g, &b, &err), CCE_EINVAL);
        CHECK(strstr(err.msg, "model.sha256") != NULL);
        printf("  other model: %s\n", err.msg);
        cce_tokenizer_free(gt);
        cce_model_free(g);
    }
    cce_analysis_free(a);
    cce_free(ids);
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
    RUN(curves_on_the_planted_model);
    RUN(blocks_without_attention_or_ffn);
    RUN(analysis_file_round_trip_and_hostile_files);
    return harness_done();
}
