/*
 * test_baselines.c — every baseline's scores on stories260K against a direct, slow computation
 * of its published formula from the reference forward pass's taps (token by token, no BLAS),
 * the sequential (pruned-stream) statistics of wanda-sp against the encoder's model of the same
 * removals, and the plans: each removes at least its target, with the least compression its
 * granularity allows, and carries its method's encoding options.
 *
 * Tolerances: the batched forward and the reference differ by ~1e-6 relative per activation
 * (measured max 2e-6 over these sums); sums and scores are compared at 1e-4 relative, the
 * influence (a mean of cosines near 1) at 1e-6 absolute.
 */
#include "harness.h"
#include "baselines.h"
#include "calib.h"
#include "encode.h"
#include "eval.h"
#include "forward.h"
#include "model.h"
#include "plan.h"
#include "tokenizer.h"
#include "util.h"

enum { SEQ = 64, NSEQ = 4 };

static cce_model *M;
static cce_tokenizer *TOK;
static int *IDS;
static size_t NIDS;
static size_t STARTS[NSEQ];
static const cce_calib_opts COPTS = {.tokens = SEQ * NSEQ, .seq_len = SEQ, .seed = 5};

static int setup(void) {
    if (M) return 1;
    const char *mp = harness_data("llama2c/stories260K.bin"), *tp = harness_data("llama2c/tok512.bin");
    const char *xp = harness_data("text/train/tinystories_v1_train_head.txt");
    if (!harness_have(mp) || !harness_have(tp) || !harness_have(xp)) return 0;
    cce_err err;
    cce_open_opts oo = {.tokenizer_path = tp};
    if (cce_model_open(mp, &oo, &M, &TOK, &err)) return 0;
    char *text = NULL;
    size_t len = 0;
    if (cce_read_file(xp, 1 << 24, &text, &len, &err)) return 0;
    if (len > 40000) len = 40000;
    int ok = cce_text_tokens(TOK, text, len, &IDS, &NIDS, &err) == CCE_OK &&
             cce_calib_windows(NIDS, SEQ, NSEQ, COPTS.seed, STARTS, &err) == CCE_OK;
    cce_free(text);
    return ok;
}

/* ---- the reference: sums and influence from cce_ref_forward's taps ---- */

typedef struct {
    int L, d, hc, hid;
    double *hs, *hq, *as, *aq;   // (L, hc) / (L, hid)
    double *cos;                 // (L) Σ cos(h_in, h_out)
    float *prev;                 // (SEQ, d) the current block's input
    long rows;
} ref_stats;

static int ref_tap(void *user, const cce_tap *t) {
    ref_stats *r = user;
    int l = t->layer;
    for (int i = 0; i < t->rows; i++) {
        const float *x = t->x + (size_t)i * t->ld;
        if (t->site == CCE_TAP_HEADS && t->cols == r->hc)
            for (int j = 0; j < t->cols; j++) r->hs[l * r->hc + j] += x[j], r->hq[l * r->hc + j] += (double)x[j] * x[j];
        if (t->site == CCE_TAP_FFN_ACT && t->cols == r->hid)
            for (int j = 0; j < t->cols; j++) r->as[l * r->hid + j] += x[j], r->aq[l * r->hid + j] += (double)x[j] * x[j];
        if (t->site == CCE_TAP_BLOCK_OUT) {
            const float *a = r->prev + (size_t)i * r->d;
            double ab = 0, aa = 0, bb = 0;
            for (int j = 0; j < r->d; j++) ab += (double)a[j] * x[j], aa += (double)a[j] * a[j], bb += (double)x[j] * x[j];
            r->cos[l] += ab / sqrt(aa * bb);
        }
    }
    if (t->site == CCE_TAP_BLOCK_OUT) memcpy(r->prev, t->x, (size_t)t->rows * r->d * sizeof(float));
    return 0;
}

/* Reference statistics of model m (same shapes per layer as the source) over the test windows. */
static void ref_collect(const cce_model *m, ref_stats *r) {
    int L = m->cfg.n_layers, d = m->cfg.dim;
    r->L = L;
    r->d = d;
    r->hc = m->cfg.n_heads * m->cfg.head_dim;
    r->hid = m->cfg.hidden_dim;
    r->hs = calloc((size_t)L * r->hc, sizeof(double));
    r->hq = calloc((size_t)L * r->hc, sizeof(double));
    r->as = calloc((size_t)L * r->hid, sizeof(double));
    r->aq = calloc((size_t)L * r->hid, sizeof(double));
    r->cos = calloc((size_t)L, sizeof(double));
    r->prev = malloc((size_t)SEQ * d * sizeof(float));
    float *logits = malloc((size_t)SEQ * m->cfg.vocab_size * sizeof(float));
    cce_err err;
    for (int s = 0; s < NSEQ; s++) {
        const int *ids = IDS + STARTS[s];
        for (int t = 0; t < SEQ; t++) cce_linear_rows(&m->tok_emb, ids[t], 1, r->prev + (size_t)t * d);
        cce_ref_forward(m, ids, SEQ, logits, ref_tap, r, &err);
    }
    r->rows = SEQ * NSEQ;
    free(logits);
}

static void ref_free(ref_stats *r) {
    free(r->hs); free(r->hq); free(r->as); free(r->aq); free(r->cos); free(r->prev);
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) + 1e-9); }

/* Direct formulas from weights read row by row. */
static double wcol(const cce_linear *w, int j, int absmean) {   // ‖W[:,j]‖² or mean |W[:,j]|
    float *row = malloc((size_t)w->in * sizeof(float));
    double acc = 0;
    for (int i = 0; i < w->out; i++) {
        cce_linear_rows(w, i, 1, row);
        acc += absmean ? fabs(row[j]) : (double)row[j] * row[j];
    }
    free(row);
    return absmean ? acc / w->out : acc;
}

TEST(names) {
    for (int b = 0; b < CCE_BL_COUNT; b++) {
        CHECK_EQ_INT(cce_baseline_parse(cce_baseline_name((cce_baseline)b)), b);
        CHECK(strlen(cce_baseline_reading((cce_baseline)b)) > 20);
    }
    CHECK_EQ_INT(cce_baseline_parse("cce"), -1);
    CHECK_EQ_INT(cce_baseline_parse("Wanda-sp"), -1);
}

TEST(dense_statistics_match_reference) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_bl_stats st;
    cce_err err = {{0}};
    CHECK_OK(cce_bl_stats_collect(M, IDS, NIDS, &COPTS, NULL, NULL, NULL, NULL, NULL, &st, &err));
    ref_stats r = {0};
    ref_collect(M, &r);
    CHECK_EQ_INT(st.tokens, SEQ * NSEQ);
    double worst = 0, worst_infl = 0;
    for (int l = 0; l < r.L; l++) {
        const cce_bl_layer_stats *ls = &st.layers[l];
        CHECK_EQ_INT(ls->heads_cols, r.hc);
        CHECK_EQ_INT(ls->hidden, r.hid);
        for (int j = 0; j < r.hc; j++) {
            worst = fmax(worst, rel(ls->heads_sq[j], r.hq[l * r.hc + j]));
            worst = fmax(worst, fabs(ls->heads_sum[j] - r.hs[l * r.hc + j]) / (sqrt(r.hq[l * r.hc + j] * r.rows) + 1e-9));
        }
        for (int j = 0; j < r.hid; j++) {
            worst = fmax(worst, rel(ls->act_sq[j], r.aq[l * r.hid + j]));
            worst = fmax(worst, fabs(ls->act_sum[j] - r.as[l * r.hid + j]) / (sqrt(r.aq[l * r.hid + j] * r.rows) + 1e-9));
        }
        double infl = 1.0 - r.cos[l] / r.rows;
        worst_infl = fmax(worst_infl, fabs(ls->influence - infl));
        CHECK(infl > 0 && infl < 1);
    }
    printf("  sums: max relative difference %.3g; influence: max difference %.3g\n", worst, worst_infl);
    CHECK(worst < 1e-4);
    CHECK(worst_infl < 1e-6);
    ref_free(&r);
    cce_bl_stats_free(&st);
}

TEST(magnitude_scores_direct) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    int hd = M->cfg.head_dim;
    for (int l = 0; l < M->cfg.n_layers; l++) {
        const cce_layer *y = &M->layers[l];
        double head[8], *neuron = malloc((size_t)y->hidden * sizeof(double));
        CHECK_OK(cce_bl_score_magnitude(M, l, head, neuron, &err));
        for (int h = 0; h < y->n_heads; h++) {
            double want = 0;
            for (int e = 0; e < hd; e++) want += sqrt(wcol(&y->wo, h * hd + e, 0));
            CHECK_NEAR(head[h], want, 1e-9 * want);
        }
        for (int j = 0; j < y->hidden; j++) CHECK_NEAR(neuron[j], sqrt(wcol(&y->w2, j, 0)), 1e-9);
        free(neuron);
    }
}

/* Wanda-sp: layer 0 on the dense stream; block 2 on the stream of the encoder's model with
 * blocks 0 and 1 pruned as the plan says (redistribution none), through the reference forward. */
TEST(wanda_scores_direct_on_the_pruned_stream) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    cce_plan p;
    CHECK_OK(cce_plan_init(&p, M, &err));
    p.enc.tokens = COPTS.tokens;
    p.enc.seq_len = SEQ;
    p.enc.seed = COPTS.seed;
    cce_bl_input in = {IDS, NIDS, COPTS, NULL, NULL, NULL};
    cce_bl_scores sc;
    CHECK_OK(cce_bl_plan(&p, M, CCE_BL_WANDA_SP, 0.2, &in, &sc, &err));
    CHECK_EQ_INT(p.enc.redistribute, CCE_REDIST_NONE);
    const int LT = 2;
    cce_plan q;   // blocks 0..LT-1 as the plan prunes them, the rest whole
    CHECK_OK(cce_plan_copy(&q, &p, &err));
    for (int l = LT; l < q.n_blocks; l++) {
        cce_free(q.blocks[l].heads_removed);
        cce_free(q.blocks[l].neurons_removed);
        q.blocks[l].heads_removed = q.blocks[l].neurons_removed = NULL;
        q.blocks[l].n_heads_removed = q.blocks[l].n_neurons_removed = 0;
        q.blocks[l].drop = q.blocks[l].drop_attn = q.blocks[l].drop_ffn = 0;
    }
    CHECK_OK(cce_plan_finish(&q, M, &err));
    cce_model *c = NULL;
    CHECK_OK(cce_encode(M, &q, IDS, NIDS, NULL, NULL, &c, &err));
    int hd = M->cfg.head_dim;
    const int layers[2] = {0, LT};
    for (int k = 0; k < 2; k++) {
        int l = layers[k];
        ref_stats r = {0};
        ref_collect(l == 0 ? M : c, &r);
        const cce_layer *y = &M->layers[l];
        double worst = 0;
        for (int h = 0; h < y->n_heads; h++) {
            double want = 0;
            for (int e = 0; e < hd; e++) want += wcol(&y->wo, h * hd + e, 1) * sqrt(r.hq[l * r.hc + h * hd + e]);
            worst = fmax(worst, rel(sc.head[l][h], want));
        }
        for (int j = 0; j < y->hidden; j++) worst = fmax(worst, rel(sc.neuron[l][j], wcol(&y->w2, j, 1) * sqrt(r.aq[l * r.hid + j])));
        printf("  block %d (%s stream): max relative difference %.3g\n", l, l ? "pruned" : "dense", worst);
        CHECK(worst < 1e-4);
        ref_free(&r);
    }
    /* uniform: every block loses round(rho*8) heads and round(rho*172) neurons, and rho is the least that reaches */
    int kh = (int)floor(sc.ratio * 8 + 0.5 + 1e-9), kn = (int)floor(sc.ratio * 172 + 0.5 + 1e-9);
    for (int l = 0; l < p.n_blocks; l++) {
        CHECK_EQ_INT(p.blocks[l].n_heads_removed, kh);
        CHECK_EQ_INT(p.blocks[l].n_neurons_removed, kn);
    }
    CHECK(p.removed_fraction >= 0.2);
    cce_model_free(c);
    cce_plan_free(&q);
    cce_plan_free(&p);
    cce_bl_scores_free(&sc);
}

TEST(flap_scores_direct) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    cce_bl_stats st;
    CHECK_OK(cce_bl_stats_collect(M, IDS, NIDS, &COPTS, NULL, NULL, NULL, NULL, NULL, &st, &err));
    ref_stats r = {0};
    ref_collect(M, &r);
    int hd = M->cfg.head_dim, N = (int)r.rows;
    double worst = 0;
    for (int l = 0; l < r.L; l++) {
        const cce_layer *y = &M->layers[l];
        double rawh[64], head[8], *rawn = malloc((size_t)r.hid * sizeof(double)), *neuron = malloc((size_t)r.hid * sizeof(double));
        CHECK_OK(cce_bl_score_flap(M, l, &st.layers[l], st.tokens, rawh, rawn, head, neuron, &err));
        for (int site = 0; site < 2; site++) {
            int n = site ? r.hid : r.hc;
            const double *s = site ? r.as + l * r.hid : r.hs + l * r.hc, *q = site ? r.aq + l * r.hid : r.hq + l * r.hc;
            double *raw = malloc((size_t)n * sizeof(double)), mu = 0, sd = 0;
            for (int j = 0; j < n; j++) {
                double var = (q[j] - s[j] * s[j] / N) / (N - 1);
                raw[j] = var * wcol(site ? &y->w2 : &y->wo, j, 0);
                if (!site) raw[j] *= raw[j];
                worst = fmax(worst, rel(site ? rawn[j] : rawh[j], raw[j]));
                mu += raw[j];
            }
            mu /= n;
            for (int j = 0; j < n; j++) sd += (raw[j] - mu) * (raw[j] - mu);
            sd = sqrt(sd / (n - 1));
            if (site)
                for (int j = 0; j < n; j++) worst = fmax(worst, fabs(neuron[j] - (raw[j] - mu) / sd) / 1.0);
            else
                for (int h = 0; h < y->n_heads; h++) {
                    double z = 0;
                    for (int e = 0; e < hd; e++) z += (raw[h * hd + e] - mu) / sd;
                    worst = fmax(worst, fabs(head[h] - z / hd));
                }
            free(raw);
        }
        free(rawn);
        free(neuron);
    }
    printf("  raw metrics and standardised scores: max difference %.3g\n", worst);
    CHECK(worst < 1e-4);
    /* the plan: one global cut (every removed score <= every kept one) at the least count */
    cce_plan p;
    CHECK_OK(cce_plan_init(&p, M, &err));
    cce_bl_input in = {IDS, NIDS, COPTS, &st, NULL, NULL};
    cce_bl_scores sc;
    CHECK_OK(cce_bl_plan(&p, M, CCE_BL_FLAP, 0.2, &in, &sc, &err));
    CHECK_EQ_INT(p.enc.redistribute, CCE_REDIST_BIAS);
    CHECK(p.removed_fraction >= 0.2);
    double max_removed = -1e300, min_kept = 1e300;
    int lw = -1, kw = -1, iw = -1;
    for (int l = 0; l < p.n_blocks; l++) {
        const cce_block_plan *b = &p.blocks[l];
        for (int h = 0; h < 8; h++) {
            int rm = 0;
            for (int i = 0; i < b->n_heads_removed; i++) rm |= b->heads_removed[i] == h;
            if (rm && sc.head[l][h] > max_removed) max_removed = sc.head[l][h], lw = l, kw = 0, iw = h;
            if (!rm) min_kept = fmin(min_kept, sc.head[l][h]);
        }
        for (int j = 0; j < 172; j++) {
            int rm = 0;
            for (int i = 0; i < b->n_neurons_removed; i++) rm |= b->neurons_removed[i] == j;
            if (rm && sc.neuron[l][j] > max_removed) max_removed = sc.neuron[l][j], lw = l, kw = 1, iw = j;
            if (!rm) min_kept = fmin(min_kept, sc.neuron[l][j]);
        }
    }
    CHECK(max_removed <= min_kept);
    /* putting back the last structure removed falls short of the target */
    cce_block_plan *b = &p.blocks[lw];
    int *arr = kw ? b->neurons_removed : b->heads_removed, *n = kw ? &b->n_neurons_removed : &b->n_heads_removed;
    for (int i = 0, w = 0; i < *n; i++)
        if (arr[i] != iw) arr[w++] = arr[i];
    (*n)--;
    b->drop = b->drop_attn = b->drop_ffn = 0;
    CHECK_OK(cce_plan_finish(&p, M, &err));
    CHECK(p.removed_fraction < 0.2);
    cce_plan_free(&p);
    cce_bl_scores_free(&sc);
    ref_free(&r);
    cce_bl_stats_free(&st);
}

TEST(shortgpt_drops_lowest_influence) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    cce_plan p;
    CHECK_OK(cce_plan_init(&p, M, &err));
    cce_bl_input in = {IDS, NIDS, COPTS, NULL, NULL, NULL};
    cce_bl_scores sc;
    CHECK_OK(cce_bl_plan(&p, M, CCE_BL_SHORTGPT, 0.3, &in, &sc, &err));
    ref_stats r = {0};
    ref_collect(M, &r);
    int n_drop = 0;
    double max_dropped = -1, min_kept = 2;
    for (int l = 0; l < p.n_blocks; l++) {
        CHECK_NEAR(sc.block[l], 1.0 - r.cos[l] / r.rows, 1e-6);
        if (p.blocks[l].drop) n_drop++, max_dropped = fmax(max_dropped, sc.block[l]);
        else min_kept = fmin(min_kept, sc.block[l]);
    }
    /* five blocks of ~20% each: 30% takes two */
    CHECK_EQ_INT(n_drop, 2);
    CHECK(max_dropped <= min_kept);
    CHECK(p.removed_fraction >= 0.3 && p.removed_fraction < 0.41);
    CHECK_EQ_INT(p.enc.redistribute, CCE_REDIST_NONE);
    ref_free(&r);
    cce_bl_scores_free(&sc);
    cce_plan_free(&p);
}

/* Ranks max(1, floor(kappa*m*n/(m+n))) for every matrix; the next larger kappa that changes a rank misses. */
TEST(svd_ranks_uniform_and_least) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    for (int which = 0; which < 2; which++) {
        cce_baseline b = which ? CCE_BL_ASVD : CCE_BL_SVD;
        cce_plan p;
        CHECK_OK(cce_plan_init(&p, M, &err));
        cce_bl_scores sc;
        CHECK_OK(cce_bl_plan(&p, M, b, 0.2, NULL, &sc, &err));
        CHECK_EQ_INT(p.enc.lowrank, which ? CCE_LOWRANK_WHITENED : CCE_LOWRANK_PLAIN);
        CHECK_EQ_INT(p.enc.redistribute, CCE_REDIST_NONE);
        CHECK(p.removed_fraction >= 0.2);
        double kappa = sc.ratio, next = 2;
        for (int l = 0; l < p.n_blocks; l++)
            for (int k = 0; k < CCE_LIN_COUNT; k++) {
                const cce_linear *x = cce_layer_lin_c(&M->layers[l], k);
                double c = (double)x->out * x->in / (x->out + x->in);
                int want = (int)floor(kappa * c);
                if (want < 1) want = 1;
                CHECK_EQ_INT(p.blocks[l].rank[k], want);
                next = fmin(next, (floor(kappa * c) + 1) / c);
            }
        for (int l = 0; l < p.n_blocks; l++)
            for (int k = 0; k < CCE_LIN_COUNT; k++) {
                const cce_linear *x = cce_layer_lin_c(&M->layers[l], k);
                double c = (double)x->out * x->in / (x->out + x->in);
                int r = (int)floor(next * c + 1e-12);
                p.blocks[l].rank[k] = r < 1 ? 1 : r;
            }
        CHECK_OK(cce_plan_finish(&p, M, &err));
        CHECK(p.removed_fraction < 0.2);
        cce_bl_scores_free(&sc);
        cce_plan_free(&p);
    }
}

TEST(every_method_reaches_every_target) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    cce_bl_stats st;
    CHECK_OK(cce_bl_stats_collect(M, IDS, NIDS, &COPTS, NULL, NULL, NULL, NULL, NULL, &st, &err));
    const double targets[3] = {0.1, 0.2, 0.3};
    for (int b = 0; b < CCE_BL_COUNT; b++)
        for (int t = 0; t < 3; t++) {
            cce_plan p;
            CHECK_OK(cce_plan_init(&p, M, &err));
            CHECK_OK(cce_model_id_of(M, &p.model, &err));
            cce_bl_input in = {IDS, NIDS, COPTS, &st, NULL, NULL};
            cce_status s = cce_bl_plan(&p, M, (cce_baseline)b, targets[t], &in, NULL, &err);
            CHECK_MSG(s == CCE_OK, "%s %.1f: %s", cce_baseline_name((cce_baseline)b), targets[t], err.msg);
            CHECK_STR(p.method, cce_baseline_name((cce_baseline)b));
            CHECK_MSG(p.removed_fraction >= targets[t], "%s at %.1f removed %.4f", cce_baseline_name((cce_baseline)b),
                      targets[t], p.removed_fraction);
            printf("  %-9s %.0f%% -> %.2f%%\n", cce_baseline_name((cce_baseline)b), 100 * targets[t], 100 * p.removed_fraction);
            /* the plan round-trips through its file format */
            char *json = NULL;
            CHECK_OK(cce_plan_to_json(&p, &json, &err));
            cce_plan q;
            s = cce_plan_from_json(json, strlen(json), "plan", M, &q, &err);
            CHECK_MSG(s == CCE_OK, "%s", err.msg);
            CHECK_EQ_INT(q.params_after, p.params_after);
            CHECK_EQ_INT(q.enc.redistribute, p.enc.redistribute);
            cce_free(json);
            cce_plan_free(&q);
            cce_plan_free(&p);
        }
    /* out of range */
    cce_plan p;
    CHECK_OK(cce_plan_init(&p, M, &err));
    CHECK_EQ_INT(cce_bl_plan(&p, M, CCE_BL_MAGNITUDE, 0.0, NULL, NULL, &err), CCE_EINVAL);
    CHECK_EQ_INT(cce_bl_plan(&p, M, CCE_BL_FLAP, 0.2, NULL, NULL, &err), CCE_EINVAL);   // no tokens, no statistics
    cce_plan_free(&p);
    cce_bl_stats_free(&st);
}

int main(void) {
    RUN(names);
    RUN(dense_statistics_match_reference);
    RUN(magnitude_scores_direct);
    RUN(wanda_scores_direct_on_the_pruned_stream);
    RUN(flap_scores_direct);
    RUN(shortgpt_drops_lowest_influence);
    RUN(svd_ranks_uniform_and_least);
    RUN(every_method_reaches_every_target);
    cce_free(IDS);
    cce_tokenizer_free(TOK);
    cce_model_free(M);
    return harness_done();
}
