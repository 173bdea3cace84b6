/*
 * test_plan.c — the planner (cce_plan_build_blocks) on hand-made cost curves whose answer is
 * known, the exact shapes and counts of cce_plan_finish against a direct count, the predicted
 * losses against the formulas of plan.h, and plan files: round trips and refusals.
 *
 * Curves are built by hand for a small random model; their params[] are computed by the
 * independent direct count of plan_testlib.h (so, with redistribution none, the planner's
 * estimate and the exact count agree), costs are chosen so that the right choice is obvious.
 * All comparisons of counts are exact; losses are compared to 1e-12 relative (sums of a few
 * doubles computed in a different order).
 */
#include <float.h>
#include <limits.h>
#include "harness.h"
#include "analysis.h"
#include "plan.h"
#include "plan_kept.h"
#include "plan_testlib.h"

#define MAXL 8

/* ---------------------------------------------------------------- fixtures */

typedef struct {
    cce_block_result r[MAXL];
    const cce_block_result *p[MAXL];
    int L;
} res_set;

static void res_init(res_set *R, int L) {
    memset(R, 0, sizeof *R);
    R->L = L;
    for (int l = 0; l < L; l++) {
        R->r[l].layer = l;
        R->r[l].out_energy = 1.0;
        R->p[l] = &R->r[l];
    }
}

static void res_free(res_set *R) {
    for (int l = 0; l < R->L; l++) {
        for (int k = 0; k < CCE_CURVE_COUNT; k++) cce_curve_free(&R->r[l].curves[k]);
        for (int s = 0; s < CCE_COV_COUNT; s++) cce_free(R->r[l].eig[s].values);
        for (int w = 0; w < 7; w++) cce_free(R->r[l].weights[w].sv_aw);
    }
    memset(R, 0, sizeof *R);
}

/* Parameters removed from block b by removing these heads / neurons / drops (direct count, no
 * encoding biases). */
static int64_t removed_by(const cce_model *m, int b, const int *heads, int nh, const int *neurons, int nn, int drop_attn,
                          int drop_ffn, int drop) {
    cce_plan t;
    cce_err e;
    if (cce_plan_init(&t, m, &e)) return -1;
    t.enc.redistribute = CCE_REDIST_NONE;
    int64_t before = tl_block_params(m, &t, b);
    tl_set_removed(&t.blocks[b], heads, nh, neurons, nn);
    t.blocks[b].drop_attn = drop_attn;
    t.blocks[b].drop_ffn = drop_ffn;
    t.blocks[b].drop = drop;
    int64_t after = tl_block_params(m, &t, b);
    cce_plan_free(&t);
    return before - after;
}

/* Neuron curve of block b in the given removal order (NULL: 0, 1, 2, ...); costs left 0. */
static cce_curve *curve_neurons(res_set *R, const cce_model *m, int b, const int *order) {
    cce_curve *c = &R->r[b].curves[CCE_CURVE_NEURONS];
    int n = m->layers[b].hidden;
    cce_err e;
    if (cce_curve_alloc(c, n, 1, &e)) return NULL;
    for (int k = 0; k < n; k++) c->order[k] = order ? order[k] : k;
    for (int k = 0; k <= n; k++) c->params[k] = removed_by(m, b, NULL, 0, c->order, k, 0, 0, 0);
    return c;
}

static cce_curve *curve_heads(res_set *R, const cce_model *m, int b, const int *order) {
    cce_curve *c = &R->r[b].curves[CCE_CURVE_HEADS];
    int n = m->layers[b].n_heads;
    cce_err e;
    if (cce_curve_alloc(c, n, 1, &e)) return NULL;
    for (int k = 0; k < n; k++) c->order[k] = order ? order[k] : k;
    for (int k = 0; k <= n; k++) c->params[k] = removed_by(m, b, c->order, k, NULL, 0, 0, 0, 0);
    return c;
}

/* Rank curve of linear lin of block b: ranks rmax, rmax-1, ..., 1 (rmax the largest that saves). */
static cce_curve *curve_rank(res_set *R, const cce_model *m, int b, int lin) {
    const cce_linear *x = cce_layer_lin_c(&m->layers[b], lin);
    int64_t o = x->out, i = x->in;
    int rmax = (int)((o * i - 1) / (o + i));
    cce_curve *c = &R->r[b].curves[cce_curve_rank_of(lin)];
    cce_err e;
    if (cce_curve_alloc(c, rmax, 1, &e)) return NULL;
    for (int k = 0; k < rmax; k++) {
        c->order[k] = rmax - k;
        c->params[k + 1] = o * i - (int64_t)c->order[k] * (o + i);
    }
    return c;
}

/* Drop curve (kind DROP_ATTN / DROP_FFN / DROP_BLOCK) of block b with cost `cost`. */
static cce_curve *curve_drop(res_set *R, const cce_model *m, int b, cce_curve_kind kind, double cost) {
    cce_curve *c = &R->r[b].curves[kind];
    cce_err e;
    if (cce_curve_alloc(c, 1, 0, &e)) return NULL;
    c->params[1] = removed_by(m, b, NULL, 0, NULL, 0, kind == CCE_CURVE_DROP_ATTN, kind == CCE_CURVE_DROP_FFN,
                              kind == CCE_CURVE_DROP_BLOCK);
    c->cost[1] = cost;
    return c;
}

/* The model of most planner tests: Llama, d 16, 3 blocks, 4 heads over 2 KV heads of size 4,
 * FFN 24. Per block 784 attention + 1168 FFN parameters; 5872 non-embedding in all. */
static cce_model *small_model(void) {
    tl_spec s = {CCE_ARCH_LLAMA, 16, 3, 4, 2, 4, 24, 32, 16, 0, 0};
    return tl_build(&s, 7);
}

static int plan_for(cce_plan *p, const cce_model *m, double target, cce_redistribute redist) {
    cce_err e;
    if (cce_plan_init(p, m, &e)) return -1;
    p->knobs.target = target;
    p->enc.redistribute = redist;
    return 0;
}

/* target fraction giving exactly `params` parameters as the goal */
static double target_for(const cce_model *m, int64_t params) {
    return ((double)params - 0.5) / (double)cce_model_params(m).non_embedding;
}

static int64_t goal_of(const cce_model *m, double target) {
    return (int64_t)ceil(target * (double)cce_model_params(m).non_embedding);
}

static int64_t removed(const cce_plan *p) { return p->params_before - p->params_after; }

/* Largest parameter step between consecutive vertices of the lower convex hull of
 * (params[k], cost[k]) — the largest single move the planner can make along c (α only, E 1). */
static int64_t max_hull_step(const cce_curve *c) {
    int64_t best = 0;
    int a = 0;
    while (a < c->n) {
        /* next vertex: the point of least slope from a (the farthest on ties) */
        int nb = -1;
        double bs = INFINITY;
        for (int k = a + 1; k <= c->n; k++) {
            double dx = (double)(c->params[k] - c->params[a]);
            if (dx <= 0) continue;
            double s = (c->cost[k] - c->cost[a]) / dx;
            if (s <= bs) bs = s, nb = k;
        }
        if (nb < 0) break;
        if (c->params[nb] - c->params[a] > best) best = c->params[nb] - c->params[a];
        a = nb;
    }
    return best;
}

/* Decisions of block b are the first steps[kind] entries of the curve's order. */
static int is_prefix(const cce_curve *c, const int *removed_list, int n) {
    if (n > c->n) return 0;
    for (int k = 0; k < n; k++)
        if (!tl_in(removed_list, n, c->order[k])) return 0;
    return 1;
}

/* ---------------------------------------------------------------- budget mode */

/* Convex-ish curves on every block (neurons, heads; W1 / W2 ranks on two blocks; costs ~ k^2):
 * every target is met exactly-counted, overshoot less than one hull move, decisions are
 * prefixes of the orders, the plan's counts equal the direct count. */
TEST(budget_reaches_target_counted_exactly) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int64_t maxstep = 0;
    for (int b = 0; b < 3; b++) {
        int ord_n[24], ord_h[4] = {3, 0, 2, 1};
        for (int k = 0; k < 24; k++) ord_n[k] = (k * 7 + b) % 24;
        cce_curve *cn = curve_neurons(&R, m, b, ord_n), *ch = curve_heads(&R, m, b, ord_h);
        CHECK(cn && ch);
        for (int k = 0; k <= cn->n; k++) cn->cost[k] = (0.3 + b) * 1e-3 * k * k;
        for (int k = 0; k <= ch->n; k++) ch->cost[k] = (1.7 - 0.5 * b) * 1e-2 * k * k;
        R.r[b].out_energy = 1.0;
        int64_t s1 = max_hull_step(cn), s2 = max_hull_step(ch);
        if (s1 > maxstep) maxstep = s1;
        if (s2 > maxstep) maxstep = s2;
        if (b < 2) {   // ranks of W1 and W2 too: at pruned shapes a rank may stop saving (exact count differs)
            for (int li = 0; li < 2; li++) {
                cce_curve *cr = curve_rank(&R, m, b, li ? CCE_LIN_W2 : CCE_LIN_W1);
                CHECK(cr);
                for (int k = 0; k <= cr->n; k++) cr->cost[k] = (0.8 + li) * 1e-3 * k * k;
                int64_t s3 = max_hull_step(cr);
                if (s3 > maxstep) maxstep = s3;
            }
        }
    }
    const double targets[] = {0.01, 0.05, 0.1, 0.2, 0.33, 0.5, 0.7, 0.9};
    for (int rd = 0; rd < 2; rd++)
        for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
            cce_plan p;
            CHECK(plan_for(&p, m, targets[t], rd ? CCE_REDIST_LSQ : CCE_REDIST_NONE) == 0);
            cce_err e = {{0}};
            cce_status s = cce_plan_build_blocks(&p, m, R.p, &e);
            CHECK_MSG(s == CCE_OK, "target %g: %s", targets[t], e.msg);
            int64_t goal = goal_of(m, targets[t]);
            int64_t got = removed(&p);
            CHECK_EQ_INT(p.params_before, cce_model_params(m).non_embedding);
            CHECK_MSG(p.params_after == tl_plan_params(m, &p), "target %g redist %d: params_after %lld, direct count %lld",
                      targets[t], rd, (long long)p.params_after, (long long)tl_plan_params(m, &p));
            CHECK_MSG(got >= goal, "target %g redist %d: removed %lld < goal %lld", targets[t], rd, (long long)got,
                      (long long)goal);
            CHECK_MSG(got - goal < maxstep, "target %g redist %d: removed %lld, goal %lld, overshoot >= one move (%lld)",
                      targets[t], rd, (long long)got, (long long)goal, (long long)maxstep);
            CHECK_NEAR(p.removed_fraction, 1.0 - (double)p.params_after / (double)p.params_before, 1e-15);
            for (int b = 0; b < 3; b++) {
                const cce_block_plan *bp = &p.blocks[b];
                if (!bp->drop_ffn && !bp->drop) {   // a drop clears the lists it makes moot (canonical plans)
                    CHECK_EQ_INT(bp->n_neurons_removed, bp->steps[CCE_CURVE_NEURONS]);
                    CHECK(is_prefix(&R.r[b].curves[CCE_CURVE_NEURONS], bp->neurons_removed, bp->n_neurons_removed));
                }
                if (!bp->drop_attn && !bp->drop) {
                    CHECK_EQ_INT(bp->n_heads_removed, bp->steps[CCE_CURVE_HEADS]);
                    CHECK(is_prefix(&R.r[b].curves[CCE_CURVE_HEADS], bp->heads_removed, bp->n_heads_removed));
                }
            }
            cce_plan_free(&p);
        }
    res_free(&R);
    cce_model_free(m);
}

/* Block 0's neurons are (nearly) free, block 1's cost 1 each, block 2's 0.5 each (plus a small
 * convex term, so each curve's hull has one vertex per step): the first neurons all come from
 * block 0, then block 2, block 1 last. */
TEST(budget_prefers_cheapest_block) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    const double per[3] = {0.0, 1.0, 0.5};
    for (int b = 0; b < 3; b++) {
        cce_curve *c = curve_neurons(&R, m, b, NULL);
        CHECK(c);
        for (int k = 0; k <= c->n; k++) c->cost[k] = per[b] * k + 1e-4 * k * k;   // strictly convex
        if (b) c->cost[24] += 100;   // the last step also frees the FFN norm: keep it off the hull's first segment
    }
    cce_plan p;
    /* 10 neurons: all from block 0 */
    CHECK(plan_for(&p, m, target_for(m, 10 * 48), CCE_REDIST_NONE) == 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 10);
    CHECK(!p.blocks[0].drop_ffn);
    CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 0);
    CHECK_EQ_INT(p.blocks[2].n_neurons_removed, 0);
    cce_plan_free(&p);
    /* all of block 0's FFN (24 neurons + its norm) and 5 more: from block 2 */
    CHECK(plan_for(&p, m, target_for(m, 1168 + 5 * 48), CCE_REDIST_NONE) == 0);
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK(p.blocks[0].drop_ffn);
    CHECK_EQ_INT(p.blocks[0].hidden, 0);
    CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 0);
    CHECK_EQ_INT(p.blocks[2].n_neurons_removed, 5);
    CHECK_NEAR(p.blocks[2].L_rec, 5 * 0.5 + 1e-4 * 25, 1e-12);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* Across kinds: block 0's heads cost 0.5 per head (128 or 256 parameters a step), block 1's
 * neurons 0.2 per neuron (48 parameters): per parameter the heads are cheaper, so 384
 * parameters come from two heads (cost 1.0), not eight neurons (1.6). */
TEST(budget_prefers_cheapest_kind) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int ord[4] = {0, 1, 2, 3};
    cce_curve *ch = curve_heads(&R, m, 0, ord), *cn = curve_neurons(&R, m, 1, NULL);
    CHECK(ch && cn);
    CHECK_EQ_INT(ch->params[1], 128);
    CHECK_EQ_INT(ch->params[2], 384);   // head 1 is the last reader of KV head 0: it goes too
    /* cost ∝ parameters with a growing factor: slopes 1.1c, 1.25c, 1.6c, ~1.59c per parameter */
    for (int k = 0; k <= ch->n; k++) ch->cost[k] = 0.003 * (double)ch->params[k] * (1 + 0.1 * k);
    for (int k = 0; k <= cn->n; k++) cn->cost[k] = 0.2 * k + 1e-4 * k * k;
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 384), CCE_REDIST_NONE) == 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_heads_removed, 2);
    CHECK_EQ_INT(p.blocks[0].n_kv_heads, 1);
    CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 0);
    CHECK_EQ_INT(removed(&p), 384);
    CHECK_NEAR(p.L_rec, 0.003 * 384 * 1.2, 1e-12);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* The lower convex hull: block 0's first neuron costs 10, the first two together 10.5; block
 * 1's neurons cost 7 each. Two neurons: block 0's pair (10.5) beats block 1's (14), although
 * block 0's first step alone is dearer than block 1's. */
TEST(budget_convex_hull) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    cce_curve *a = curve_neurons(&R, m, 0, NULL), *b = curve_neurons(&R, m, 1, NULL);
    CHECK(a && b);
    a->cost[1] = 10;
    a->cost[2] = 10.5;
    for (int k = 3; k <= a->n; k++) a->cost[k] = 10.5 + 100.0 * (k - 2);
    for (int k = 0; k <= b->n; k++) b->cost[k] = 7.0 * k + 0.01 * k * k;
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 2 * 48), CCE_REDIST_NONE) == 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 2);
    CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 0);
    CHECK_NEAR(p.L_rec, 10.5, 1e-12);
    cce_plan_free(&p);
    /* one neuron only: the hull still moves two steps at once on block 0 (one move), so the
     * plan takes 2 from block 0 (10.5) or 1 from block 1 (7): the cheaper slope wins (block 0,
     * 10.5 / 96 < 7 / 48), and the overshoot is that one move */
    CHECK(plan_for(&p, m, target_for(m, 48), CCE_REDIST_NONE) == 0);
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 2);
    CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 0);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* Drops against the curves they replace. Block 0: 12 nearly free neurons (0.001 each), then
 * steep; its FFN drop (1168 parameters) costs X. Block 1: neurons at 0.02 each. Goal 1100.
 * After block 0's 12 cheap neurons (cost 0.012, 576 parameters), the drop removes 592 more
 * parameters for X − 0.012 more cost:
 *  X = 0.3: (0.288 / 592) > 0.02 / 48 -> block 1's neurons; (a planner that counted the drop
 *           as X / 1168, twice counting the 576 parameters it replaces, would drop);
 *  X = 0.2: (0.188 / 592) < 0.02 / 48 -> the drop, and L_rec is X, not X + 0.012. */
static void drop_against_replaced(int pass) {
    cce_model *m = small_model();
    CHECK(m);
    {
        double X = pass ? 0.2 : 0.3;
        res_set R;
        res_init(&R, 3);
        cce_curve *a = curve_neurons(&R, m, 0, NULL), *b = curve_neurons(&R, m, 1, NULL);
        CHECK(a && b);
        for (int k = 0; k <= a->n; k++) a->cost[k] = k <= 12 ? 0.001 * k : 0.012 + 10.0 * (k - 12);
        for (int k = 0; k <= b->n; k++) b->cost[k] = 0.02 * k + 1e-5 * k * k;
        b->cost[24] += 100;   // the step that also frees the FFN norm: not cheap
        CHECK(curve_drop(&R, m, 0, CCE_CURVE_DROP_FFN, X));
        CHECK_EQ_INT(R.r[0].curves[CCE_CURVE_DROP_FFN].params[1], 1168);
        cce_plan p;
        CHECK(plan_for(&p, m, target_for(m, 1100), CCE_REDIST_NONE) == 0);
        cce_err e = {{0}};
        CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
        CHECK(removed(&p) >= 1100);
        if (!pass) {
            CHECK_MSG(!p.blocks[0].drop_ffn, "X 0.3: the FFN drop was taken (its replaced neurons counted twice?)");
            CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 12);
            CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 11);   // 576 + 528 >= 1100
            CHECK_NEAR(p.L_rec, 0.012 + 11 * 0.02 + 1e-5 * 121, 1e-12);
        } else {
            CHECK_MSG(p.blocks[0].drop_ffn, "X 0.2: the FFN drop was not taken");
            CHECK_EQ_INT(p.blocks[0].hidden, 0);
            CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 0);
            CHECK_EQ_INT(removed(&p), 1168);
            CHECK_NEAR(p.blocks[0].L_rec, X, 1e-15);
            CHECK_NEAR(p.L_rec, X, 1e-15);
        }
        cce_plan_free(&p);
        res_free(&R);
    }
    cce_model_free(m);
}

TEST(budget_drop_not_double_counted) { drop_against_replaced(0); }
TEST(budget_drop_taken_when_cheaper) { drop_against_replaced(1); }

/* A block drop against two sublayer drops and against the sublayers' curves: block 1's drop
 * (1952 parameters) is cheap; the goal is one block's worth; nothing is counted twice. */
TEST(budget_block_drop) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    for (int b = 0; b < 3; b++) {
        cce_curve *c = curve_neurons(&R, m, b, NULL);
        CHECK(c);
        for (int k = 0; k <= c->n; k++) c->cost[k] = 0.05 * k;   // 1168 params for ~1.2
        CHECK(curve_drop(&R, m, b, CCE_CURVE_DROP_ATTN, 5.0));
        CHECK(curve_drop(&R, m, b, CCE_CURVE_DROP_FFN, 5.0));
        CHECK(curve_drop(&R, m, b, CCE_CURVE_DROP_BLOCK, b == 1 ? 0.3 : 50.0));
    }
    CHECK_EQ_INT(R.r[1].curves[CCE_CURVE_DROP_BLOCK].params[1], 1952);
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 1952), CCE_REDIST_NONE) == 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK(p.blocks[1].drop);
    CHECK_EQ_INT(p.blocks[1].params_after, 0);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed + p.blocks[2].n_neurons_removed, 0);
    CHECK_EQ_INT(removed(&p), 1952);
    CHECK_NEAR(p.L_rec, 0.3, 1e-15);
    CHECK_EQ_INT(p.params_after, tl_plan_params(m, &p));
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* β (the retained components' similarity) and γ (retained nuclear norm) move the choice:
 * blocks 0 and 1 have the same neuron costs except that block 1's are 10% dearer; block 1's
 * similarity falls with each neuron removed (redundancy taken away), block 0's stays; block
 * 1's nuclear norm falls faster. α alone: block 0; with β or γ large enough: block 1. In each
 * case the chosen plan has the lower L_CCE (cce_plan_losses) of the two candidates. */
TEST(budget_beta_gamma) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    cce_curve *a = curve_neurons(&R, m, 0, NULL), *b = curve_neurons(&R, m, 1, NULL);
    CHECK(a && b);
    for (int k = 0; k <= 24; k++) {
        a->cost[k] = 0.01 * k + 1e-4 * k * k;
        b->cost[k] = 0.011 * k + 1e-4 * k * k;
        a->sim[k] = 0.5;
        b->sim[k] = 0.5 - 0.01 * k;
        a->nuc[k] = 10.0 - 0.1 * k;
        b->nuc[k] = 10.0 - 0.3 * k;
    }
    const double kn[3][3] = {{1, 0, 0}, {1, 1, 0}, {1, 0, 1}};   // alpha, beta, gamma
    const int want_block[3] = {0, 1, 1};
    for (int c = 0; c < 3; c++) {
        cce_plan p;
        CHECK(plan_for(&p, m, target_for(m, 4 * 48), CCE_REDIST_NONE) == 0);
        p.knobs.alpha = kn[c][0];
        p.knobs.beta = kn[c][1];
        p.knobs.gamma = kn[c][2];
        cce_err e = {{0}};
        CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
        int wb = want_block[c];
        CHECK_MSG(p.blocks[wb].n_neurons_removed == 4 && p.blocks[1 - wb].n_neurons_removed == 0,
                  "knobs %g %g %g: block 0 lost %d, block 1 %d (want 4 from block %d)", kn[c][0], kn[c][1], kn[c][2],
                  p.blocks[0].n_neurons_removed, p.blocks[1].n_neurons_removed, wb);
        double chosen = p.L_cce;
        /* the other candidate, by hand */
        cce_plan q;
        CHECK_OK(cce_plan_copy(&q, &p, NULL));
        int four[4] = {0, 1, 2, 3};
        tl_set_removed(&q.blocks[wb], NULL, 0, NULL, 0);
        tl_set_removed(&q.blocks[1 - wb], NULL, 0, four, 4);
        memset(q.blocks[wb].steps, 0, sizeof q.blocks[wb].steps);
        memset(q.blocks[1 - wb].steps, 0, sizeof q.blocks[1 - wb].steps);
        CHECK_OK(cce_plan_finish(&q, m, NULL));
        cce_plan_losses(&q, R.p);
        CHECK_MSG(chosen < q.L_cce, "knobs %g %g %g: chosen L_CCE %.9g not below the alternative's %.9g", kn[c][0],
                  kn[c][1], kn[c][2], chosen, q.L_cce);
        cce_plan_free(&q);
        cce_plan_free(&p);
    }
    res_free(&R);
    cce_model_free(m);
}

/* γ and drops (plan.h: L_reg is the *retained* nuclear norm; a dropped sublayer retains none,
 * and cce_plan_losses counts it so). α = γ = 1, goal 600 parameters. Block 0: neurons dear
 * (1 each), FFN drop 0.5 of L_rec; block 1: neurons 0.02 each; every nuclear norm constant 10
 * (so neurons change nothing in L_reg). Dropping block 0's FFN: ΔL_rec 0.5, ΔL_reg −1 for the
 * block (−1/3 in the mean); 13 neurons of block 1: ΔL_rec ≈ 0.26, ΔL_reg 0. Whether L_CCE
 * sums or averages L_reg over blocks, the drop is the better plan; the planner, scoring the
 * drop's γ term as 0, takes the neurons (slope 0.5/1168 > 0.02/48). */
TEST(budget_gamma_counts_drop_nuclear_norm) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    for (int b = 0; b < 2; b++) {
        cce_curve *c = curve_neurons(&R, m, b, NULL);
        CHECK(c);
        for (int k = 0; k <= 24; k++) {
            c->cost[k] = b == 0 ? 1.0 * k + 0.01 * k * k : 0.02 * k + 1e-5 * k * k;
            c->nuc[k] = 10.0;
        }
        c->cost[24] += 100;   // the step that frees the FFN norm too: not cheap
    }
    CHECK(curve_drop(&R, m, 0, CCE_CURVE_DROP_FFN, 0.5));
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 600), CCE_REDIST_NONE) == 0);
    p.knobs.alpha = 1;
    p.knobs.gamma = 1;
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    double chosen = p.L_cce;
    cce_plan q;
    CHECK_OK(cce_plan_copy(&q, &p, NULL));
    for (int b = 0; b < 3; b++) {
        tl_set_removed(&q.blocks[b], NULL, 0, NULL, 0);
        memset(q.blocks[b].steps, 0, sizeof q.blocks[b].steps);
        q.blocks[b].drop = q.blocks[b].drop_attn = q.blocks[b].drop_ffn = 0;
    }
    q.blocks[0].drop_ffn = 1;
    q.blocks[0].steps[CCE_CURVE_DROP_FFN] = 1;
    CHECK_OK(cce_plan_finish(&q, m, NULL));
    cce_plan_losses(&q, R.p);
    CHECK(removed(&q) >= goal_of(m, p.knobs.target));
    CHECK_MSG(chosen <= q.L_cce + 1e-12,
              "planner's plan (block 0: drop_ffn %d; block 1: %d neurons) has L_CCE %.6g, dropping block 0's FFN "
              "has %.6g: the drop's γ term ignores the nuclear norm the drop removes",
              p.blocks[0].drop_ffn, p.blocks[1].n_neurons_removed, chosen, q.L_cce);
    cce_plan_free(&q);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* Equal cost per parameter along a curve (collinear points): a step is worth taking alone,
 * so the planner may stop after any of them. Block 0's neurons cost 0.5 each, block 1's 1
 * each; the goal is 5 neurons: block 0 gives exactly 5 (not its whole FFN in one move). */
TEST(budget_collinear_steps_not_merged) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    cce_curve *a = curve_neurons(&R, m, 0, NULL), *b = curve_neurons(&R, m, 1, NULL);
    CHECK(a && b);
    for (int k = 0; k <= 24; k++) {
        a->cost[k] = 0.5 * k;
        b->cost[k] = 1.0 * k;
    }
    a->cost[24] = b->cost[24] = 1e3;   // the last step (which also frees the FFN norm) is dear
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 5 * 48), CCE_REDIST_NONE) == 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_MSG(p.blocks[0].n_neurons_removed == 5 && p.blocks[1].n_neurons_removed == 0,
              "goal 5 neurons (240 parameters): removed %d from block 0, %d from block 1 (%lld parameters)",
              p.blocks[0].n_neurons_removed, p.blocks[1].n_neurons_removed, (long long)removed(&p));
    CHECK_NEAR(p.L_rec, 2.5, 1e-12);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* ---------------------------------------------------------------- pins and forces */

static void set_pins(cce_plan *p, const cce_pin *pins, int n, const cce_pin *forces, int nf) {
    cce_free(p->pins);
    cce_free(p->forces);
    p->pins = n ? cce_alloc((size_t)n, sizeof(cce_pin)) : NULL;
    p->forces = nf ? cce_alloc((size_t)nf, sizeof(cce_pin)) : NULL;
    if (n) memcpy(p->pins, pins, (size_t)n * sizeof(cce_pin));
    if (nf) memcpy(p->forces, forces, (size_t)nf * sizeof(cce_pin));
    p->n_pins = n;
    p->n_forces = nf;
}

/* A pinned neuron at position 3 of block 0's order (all free): block 0 gives exactly its
 * first 3 neurons, the rest of the goal comes from block 1; the pinned one stays. */
TEST(pin_neuron_stops_curve) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int ord[24];
    for (int k = 0; k < 24; k++) ord[k] = 23 - k;
    cce_curve *a = curve_neurons(&R, m, 0, ord), *b = curve_neurons(&R, m, 1, NULL);
    CHECK(a && b);
    for (int k = 0; k <= 24; k++) b->cost[k] = 1.0 * k + 0.01 * k * k;
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 10 * 48), CCE_REDIST_NONE) == 0);
    cce_pin pin = {0, CCE_CURVE_NEURONS, ord[3]};
    set_pins(&p, &pin, 1, NULL, 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 3);
    CHECK(!tl_in(p.blocks[0].neurons_removed, p.blocks[0].n_neurons_removed, ord[3]));
    CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 7);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* A pinned head (GQA): curve stops before it. */
TEST(pin_head_stops_curve) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int ord[4] = {1, 3, 0, 2};
    cce_curve *a = curve_heads(&R, m, 0, ord), *b = curve_neurons(&R, m, 1, NULL);
    CHECK(a && b);
    for (int k = 0; k <= 24; k++) b->cost[k] = 1.0 * k + 0.01 * k * k;
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 600), CCE_REDIST_NONE) == 0);
    cce_pin pin = {0, CCE_CURVE_HEADS, 0};
    set_pins(&p, &pin, 1, NULL, 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_heads_removed, 2);   // heads 1 and 3: one from each KV group
    CHECK_EQ_INT(p.blocks[0].n_kv_heads, 2);
    CHECK(!tl_in(p.blocks[0].heads_removed, p.blocks[0].n_heads_removed, 0));
    CHECK(removed(&p) >= 600);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* Pins with index -1 on drop curves keep the sublayer / block, however cheap the drop. */
TEST(pin_drop_keeps_sublayer) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    for (int b = 0; b < 3; b++) {
        cce_curve *c = curve_neurons(&R, m, b, NULL);
        CHECK(c);
        for (int k = 0; k <= 24; k++) c->cost[k] = 1.0 * k + 0.01 * k * k;
        CHECK(curve_drop(&R, m, b, CCE_CURVE_DROP_FFN, b == 0 ? 0.0 : 100.0));
    }
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 1000), CCE_REDIST_NONE) == 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK(p.blocks[0].drop_ffn);   // free: taken without the pin
    cce_plan_free(&p);
    CHECK(plan_for(&p, m, target_for(m, 1000), CCE_REDIST_NONE) == 0);
    cce_pin pin = {0, CCE_CURVE_DROP_FFN, -1};
    set_pins(&p, &pin, 1, NULL, 0);
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK(!p.blocks[0].drop_ffn);
    CHECK(p.blocks[0].hidden > 0);
    CHECK(removed(&p) >= 1000);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* A pinned neuron is never removed — also not by dropping its block in threshold mode
 * (block 0's drop costs 1e-6 of its output energy, below ε). */
TEST(pin_neuron_blocks_threshold_drop) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    CHECK(curve_neurons(&R, m, 0, NULL));
    CHECK(curve_drop(&R, m, 0, CCE_CURVE_DROP_BLOCK, 1e-6));
    cce_plan p;
    CHECK(plan_for(&p, m, 0.0, CCE_REDIST_NONE) == 0);
    cce_pin pin = {0, CCE_CURVE_NEURONS, 5};
    set_pins(&p, &pin, 1, NULL, 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_MSG(!p.blocks[0].drop && p.blocks[0].hidden > 0, "block 0 neuron 5 is pinned, yet threshold mode drops block 0");
    cce_plan_free(&p);
    /* without the pin the block goes: the check above can fail */
    CHECK(plan_for(&p, m, 0.0, CCE_REDIST_NONE) == 0);
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK(p.blocks[0].drop);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* A pinned neuron is never removed — also not by dropping its FFN. Block 0's FFN drop is
 * free and neuron 5 of block 0 is pinned: the plan must keep block 0's FFN. */
TEST(pin_neuron_blocks_ffn_drop) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    for (int b = 0; b < 3; b++) {
        cce_curve *c = curve_neurons(&R, m, b, NULL);
        CHECK(c);
        for (int k = 0; k <= 24; k++) c->cost[k] = 1.0 * k + 0.01 * k * k;
    }
    CHECK(curve_drop(&R, m, 0, CCE_CURVE_DROP_FFN, 0.0));
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 1000), CCE_REDIST_NONE) == 0);
    cce_pin pin = {0, CCE_CURVE_NEURONS, 5};
    set_pins(&p, &pin, 1, NULL, 0);
    cce_err e = {{0}};
    cce_status s = cce_plan_build_blocks(&p, m, R.p, &e);
    CHECK_MSG(s == CCE_OK, "%s", e.msg);
    CHECK_MSG(!p.blocks[0].drop_ffn && p.blocks[0].hidden > 0,
              "block 0 neuron 5 is pinned, yet the plan drops block 0's FFN (drop_ffn %d, hidden %d)",
              p.blocks[0].drop_ffn, p.blocks[0].hidden);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* A pin on drop_block keeps the block: the planner may not drop both its sublayers instead
 * (cce_plan_finish turns that into a block drop). */
TEST(pin_block_blocks_both_sublayer_drops) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    for (int b = 0; b < 3; b++) {
        cce_curve *c = curve_neurons(&R, m, b, NULL);
        CHECK(c);
        for (int k = 0; k <= 24; k++) c->cost[k] = 1.0 * k + 0.01 * k * k;
    }
    CHECK(curve_drop(&R, m, 0, CCE_CURVE_DROP_ATTN, 0.0));
    CHECK(curve_drop(&R, m, 0, CCE_CURVE_DROP_FFN, 0.0));
    CHECK(curve_drop(&R, m, 0, CCE_CURVE_DROP_BLOCK, 0.0));
    cce_plan p;
    CHECK(plan_for(&p, m, target_for(m, 1952), CCE_REDIST_NONE) == 0);
    cce_pin pin = {0, CCE_CURVE_DROP_BLOCK, -1};
    set_pins(&p, &pin, 1, NULL, 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_MSG(!p.blocks[0].drop, "block 0 is pinned (drop_block -1) but dropped (drop_attn %d, drop_ffn %d)",
              p.blocks[0].drop_attn, p.blocks[0].drop_ffn);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* Forces: a forced neuron at position 5 of the order is removed with the 5 before it, in
 * budget mode with a tiny goal and in threshold mode; a forced sublayer drop is taken. */
TEST(forces_taken) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int ord[24];
    for (int k = 0; k < 24; k++) ord[k] = (k * 5) % 24;
    cce_curve *a = curve_neurons(&R, m, 0, ord);
    CHECK(a);
    for (int k = 0; k <= 24; k++) a->cost[k] = 1.0 * k + 0.01 * k * k;
    CHECK(curve_drop(&R, m, 1, CCE_CURVE_DROP_ATTN, 1e9));
    for (int mode = 0; mode < 2; mode++) {
        cce_plan p;
        CHECK(plan_for(&p, m, mode ? 0.0 : target_for(m, 1), CCE_REDIST_NONE) == 0);
        cce_pin f[2] = {{0, CCE_CURVE_NEURONS, ord[5]}, {1, CCE_CURVE_DROP_ATTN, -1}};
        set_pins(&p, NULL, 0, f, 2);
        cce_err e = {{0}};
        CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
        CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 6);
        CHECK(tl_in(p.blocks[0].neurons_removed, 6, ord[5]));
        CHECK(p.blocks[1].drop_attn);
        CHECK_EQ_INT(p.blocks[1].n_heads, 0);
        CHECK_EQ_INT(p.params_after, tl_plan_params(m, &p));
        cce_plan_free(&p);
    }
    res_free(&R);
    cce_model_free(m);
}

/* Contradictions and bad pins are refused with one line naming the block; nothing crashes. */
TEST(pin_force_refusals) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int ord[24];
    for (int k = 0; k < 24; k++) ord[k] = k;
    CHECK(curve_neurons(&R, m, 0, ord));
    CHECK(curve_rank(&R, m, 0, CCE_LIN_W1));
    struct {
        cce_pin pin, force;
        int has_pin, has_force;
        const char *want;
    } cases[] = {
        {{0, CCE_CURVE_NEURONS, 7}, {0, CCE_CURVE_NEURONS, 7}, 1, 1, "block 0"},   // same neuron
        {{0, CCE_CURVE_NEURONS, 3}, {0, CCE_CURVE_NEURONS, 9}, 1, 1, "block 0"},   // force after the pin
        {{0}, {0, CCE_CURVE_RANK_W1, 5}, 0, 1, "rank"},                            // force on a rank
        {{0, CCE_CURVE_NEURONS, 99}, {0}, 1, 0, "99"},                             // no such neuron
        {{5, CCE_CURVE_NEURONS, 1}, {0}, 1, 0, "block 5"},                         // no such block
        {{0, (cce_curve_kind)77, 1}, {0}, 1, 0, "kind"},                           // no such kind
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int mode = 0; mode < 2; mode++) {
            cce_plan p;
            CHECK(plan_for(&p, m, mode ? 0.0 : 0.1, CCE_REDIST_NONE) == 0);
            set_pins(&p, &cases[c].pin, cases[c].has_pin, &cases[c].force, cases[c].has_force);
            cce_err e = {{0}};
            cce_status s = cce_plan_build_blocks(&p, m, R.p, &e);
            CHECK_MSG(s == CCE_EINVAL, "case %zu mode %d: status %d (%s)", c, mode, s, e.msg);
            CHECK_MSG(tl_one_line(e.msg) && strstr(e.msg, cases[c].want), "case %zu: message '%s' lacks '%s'", c,
                      e.msg, cases[c].want);
            cce_plan_free(&p);
        }
    }
    res_free(&R);
    cce_model_free(m);
}

/* ---------------------------------------------------------------- threshold mode */

static float *spectrum(cce_spectrum *sp, int n, const float *v) {
    sp->n = n;
    sp->values = cce_alloc((size_t)n, sizeof(float));
    memcpy(sp->values, v, (size_t)n * sizeof(float));
    return sp->values;
}

/* ε on the FFN activation's eigenvalues (count below ε·λ_max neurons), ε on the heads
 * covariance (count / head_dim heads), τ on the activation-aware singular values (the rank
 * that keeps those at or above τ·σ_max, when it saves parameters; else dense), and a block
 * drop when its relative cost is below ε. */
TEST(threshold_mode) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    for (int b = 0; b < 3; b++) {
        CHECK(curve_neurons(&R, m, b, NULL));
        CHECK(curve_heads(&R, m, b, NULL));
        CHECK(curve_rank(&R, m, b, CCE_LIN_W1));   // (24, 16): ranks 9..1 save
        CHECK(curve_drop(&R, m, b, CCE_CURVE_DROP_BLOCK, b == 0 ? 0.2 : b == 1 ? 5e-3 : 0.5e-3));
        R.r[b].out_energy = 2.0;                    // relative costs 0.1, 2.5e-3, 2.5e-4
        float ev[24];
        int below = b == 0 ? 5 : 0;
        for (int i = 0; i < 24; i++) ev[i] = i < 24 - below ? 1.0f - 0.01f * i : 1e-5f;
        spectrum(&R.r[b].eig[CCE_COV_FFN_ACT], 24, ev);
        float eh[16];
        int hb = b == 0 ? 2 * 4 + 3 : 3;            // block 0: 11 below -> 2 heads; block 1: 3 -> 0
        for (int i = 0; i < 16; i++) eh[i] = i < 16 - hb ? 2.0f - 0.05f * i : 1e-6f;
        spectrum(&R.r[b].eig[CCE_COV_HEADS], 16, eh);
        cce_weight_spectrum *ws = &R.r[b].weights[0];
        snprintf(ws->name, sizeof ws->name, "w1");
        ws->rows = 24;
        ws->cols = 16;
        ws->n = 16;
        ws->sv_aw = cce_alloc(16, sizeof(float));
        int keep = b == 0 ? 6 : 12;                 // block 0: rank 6 saves; block 1: 12 does not
        for (int i = 0; i < 16; i++) ws->sv_aw[i] = i < keep ? 5.0f - 0.1f * i : 1e-3f;
        R.r[b].n_weights = 1;
    }
    cce_plan p;
    CHECK(plan_for(&p, m, 0.0, CCE_REDIST_NONE) == 0);
    p.knobs.eps = 1e-3;
    p.knobs.tau = 1e-2;
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 5);
    CHECK_EQ_INT(p.blocks[0].n_heads_removed, 2);
    CHECK_EQ_INT(p.blocks[0].rank[CCE_LIN_W1], 6);
    CHECK_EQ_INT(p.blocks[1].n_neurons_removed, 0);
    CHECK_EQ_INT(p.blocks[1].n_heads_removed, 0);
    CHECK_EQ_INT(p.blocks[1].rank[CCE_LIN_W1], 0);
    CHECK(!p.blocks[0].drop && !p.blocks[1].drop);
    CHECK(p.blocks[2].drop);
    CHECK_EQ_INT(p.blocks[2].params_after, 0);
    CHECK_EQ_INT(p.params_after, tl_plan_params(m, &p));
    cce_plan_free(&p);
    /* a larger ε: block 1 now drops too (2.5e-3 < 1e-2); block 0's counts are unchanged */
    CHECK(plan_for(&p, m, 0.0, CCE_REDIST_NONE) == 0);
    p.knobs.eps = 1e-2;
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    CHECK(p.blocks[1].drop && p.blocks[2].drop && !p.blocks[0].drop);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 5);   // 1e-5 < 1e-2 · 1; the others are >= 0.82
    CHECK_EQ_INT(p.blocks[0].n_heads_removed, 2);
    CHECK_EQ_INT(p.params_after, tl_plan_params(m, &p));
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* ---------------------------------------------------------------- cce_plan_finish */

/* Shapes and counts against the direct count, on Llama GQA (with q/k/v biases), GPT-2
 * (biases everywhere, LayerNorm) and under the three redistributions. */
TEST(finish_counts_direct) {
    tl_spec specs[3] = {
        {CCE_ARCH_LLAMA, 24, 3, 6, 3, 4, 40, 32, 16, 0, 0},
        {CCE_ARCH_LLAMA, 24, 3, 6, 2, 4, 40, 32, 16, 1, 0},
        {CCE_ARCH_GPT2, 24, 3, 4, 4, 6, 40, 32, 16, 0, 0},
    };
    for (int si = 0; si < 3; si++) {
        cce_model *m = tl_build(&specs[si], 100 + si);
        CHECK(m);
        for (int rd = 0; rd < 3; rd++)
            for (int ra = 0; ra < 2; ra++) {
                cce_plan p;
                cce_err e = {{0}};
                CHECK_OK(cce_plan_init(&p, m, &e));
                p.enc.redistribute = (cce_redistribute)rd;
                p.enc.refit_all = ra;
                int h0[2] = {3, 1}, n0[5] = {3, 39, 0, 17, 18};
                tl_set_removed(&p.blocks[0], h0, 2, n0, 5);
                p.blocks[0].rank[CCE_LIN_W1] = 5;    // (35, 24) saves at rank 5
                p.blocks[0].rank[CCE_LIN_WQ] = 12;   // (16, 24): 12·40 > 384: dense
                int h1[1] = {2};
                tl_set_removed(&p.blocks[1], h1, 1, NULL, 0);
                p.blocks[1].rank[CCE_LIN_W2] = 3;
                /* block 2 untouched */
                CHECK_MSG(cce_plan_finish(&p, m, &e) == CCE_OK, "%s", e.msg);
                CHECK_EQ_INT(p.params_before, cce_model_params(m).non_embedding);
                for (int b = 0; b < 3; b++) {
                    CHECK_EQ_INT(p.blocks[b].params_before, cce_layer_params(m, b));
                    CHECK_MSG(p.blocks[b].params_after == tl_block_params(m, &p, b),
                              "spec %d redist %d refit_all %d block %d: params_after %lld, direct %lld", si, rd, ra, b,
                              (long long)p.blocks[b].params_after, (long long)tl_block_params(m, &p, b));
                }
                CHECK_EQ_INT(p.params_after, tl_plan_params(m, &p));
                CHECK_EQ_INT(p.blocks[0].n_heads, m->cfg.n_heads - 2);
                CHECK_EQ_INT(p.blocks[0].hidden, 35);
                CHECK_EQ_INT(p.blocks[2].n_heads, m->cfg.n_heads);
                CHECK_EQ_INT(p.blocks[2].hidden, 40);
                cce_plan_free(&p);
            }
        cce_model_free(m);
    }
}

/* GQA: a KV head goes exactly when the last query head reading it goes; the new head→KV map
 * (NULL when it is the default grouping of the kept heads). 6 query heads over 3 KV heads. */
TEST(finish_gqa_kv_heads) {
    tl_spec s = {CCE_ARCH_LLAMA, 24, 1, 6, 3, 4, 16, 32, 16, 0, 0};
    cce_model *m = tl_build(&s, 5);
    CHECK(m);
    struct {
        int n, heads[6], want_kv, want_map[6];   // want_map[0] == -1: default grouping (NULL)
    } cases[] = {
        {1, {0}, 3, {0, 1, 1, 2, 2}},                 // group 0 keeps head 1
        {2, {0, 1}, 2, {-1}},                         // group 0 gone; 4 heads over 2: default
        {2, {1, 2}, 3, {0, 1, 2, 2}},
        {3, {1, 2, 3}, 2, {0, 1, 1}},                 // KV 1 gone; 3 over 2: explicit
        {4, {0, 1, 4, 5}, 1, {-1}},                   // only KV 1 remains
        {5, {0, 1, 2, 3, 5}, 1, {-1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cce_plan p;
        cce_err e = {{0}};
        CHECK_OK(cce_plan_init(&p, m, &e));
        p.enc.redistribute = CCE_REDIST_NONE;
        tl_set_removed(&p.blocks[0], cases[c].heads, cases[c].n, NULL, 0);
        CHECK_MSG(cce_plan_finish(&p, m, &e) == CCE_OK, "%s", e.msg);
        CHECK_EQ_INT(p.blocks[0].n_heads, 6 - cases[c].n);
        CHECK_MSG(p.blocks[0].n_kv_heads == cases[c].want_kv, "case %zu: %d KV heads, want %d", c,
                  p.blocks[0].n_kv_heads, cases[c].want_kv);
        CHECK_EQ_INT(p.blocks[0].params_after, tl_block_params(m, &p, 0));
        plan_kept k;
        CHECK_OK(plan_kept_of(m, &p.blocks[0], &p.enc, plan_block_refits(&p, m, 0), &k, &e));
        CHECK_EQ_INT(k.n_heads, 6 - cases[c].n);
        CHECK_EQ_INT(k.n_kv, cases[c].want_kv);
        if (cases[c].want_map[0] < 0) {
            CHECK_MSG(k.head_kv == NULL, "case %zu: an explicit map where the default grouping holds", c);
        } else {
            CHECK_MSG(k.head_kv != NULL, "case %zu: no explicit map", c);
            for (int i = 0; i < k.n_heads; i++) CHECK_EQ_INT(k.head_kv[i], cases[c].want_map[i]);
        }
        /* whatever the map, each kept head reads the new index of the KV head it read before */
        for (int i = 0; i < k.n_heads; i++) {
            int src_kv = cce_layer_kv_of(&m->layers[0], k.heads[i]);
            int new_kv = k.head_kv ? k.head_kv[i] : i / (k.n_heads / k.n_kv);
            CHECK_EQ_INT(k.kv[new_kv], src_kv);
        }
        plan_kept_free(&k);
        cce_plan_free(&p);
    }
    cce_model_free(m);
}

/* Removing every neuron drops the FFN; every head drops the attention; both drop the block.
 * Ranks that do not save parameters at the *pruned* shapes are dense. */
TEST(finish_everything_removed) {
    tl_spec s = {CCE_ARCH_LLAMA, 16, 2, 4, 2, 4, 24, 32, 16, 0, 0};
    cce_model *m = tl_build(&s, 9);
    CHECK(m);
    cce_plan p;
    cce_err e = {{0}};
    CHECK_OK(cce_plan_init(&p, m, &e));
    p.enc.redistribute = CCE_REDIST_NONE;
    int all_n[24], all_h[4] = {3, 2, 1, 0};
    for (int i = 0; i < 24; i++) all_n[i] = 23 - i;
    tl_set_removed(&p.blocks[0], NULL, 0, all_n, 24);
    CHECK_OK(cce_plan_finish(&p, m, &e));
    CHECK(p.blocks[0].drop_ffn);
    CHECK(!p.blocks[0].drop);
    CHECK_EQ_INT(p.blocks[0].hidden, 0);
    CHECK_EQ_INT(p.blocks[0].params_after, 784);
    tl_set_removed(&p.blocks[0], all_h, 4, all_n, 24);
    CHECK_OK(cce_plan_finish(&p, m, &e));
    CHECK(p.blocks[0].drop);
    CHECK_EQ_INT(p.blocks[0].params_after, 0);
    CHECK_EQ_INT(p.blocks[0].n_heads, 0);
    CHECK_EQ_INT(p.blocks[0].n_kv_heads, 0);
    /* block 1: 16 of 24 neurons go, leaving W1 (8, 16): rank 5 saves (5·24 = 120 < 128) but
     * rank 6 does not (144): dense */
    int n16[16];
    for (int i = 0; i < 16; i++) n16[i] = i;
    tl_set_removed(&p.blocks[1], NULL, 0, n16, 16);
    p.blocks[1].rank[CCE_LIN_W1] = 6;
    p.blocks[1].rank[CCE_LIN_W3] = 5;
    CHECK_OK(cce_plan_finish(&p, m, &e));
    int64_t want = 784 + 16 + 8 * 16 /* w1 dense */ + 5 * (8 + 16) /* w3 rank 5 */ + 16 * 8 /* w2 */;
    CHECK_EQ_INT(p.blocks[1].params_after, want);
    CHECK_EQ_INT(p.params_after, tl_plan_params(m, &p));
    plan_kept k;
    CHECK_OK(plan_kept_of(m, &p.blocks[1], &p.enc, plan_block_refits(&p, m, 1), &k, &e));
    CHECK_EQ_INT(k.rank[CCE_LIN_W1], 0);
    CHECK_EQ_INT(k.rank[CCE_LIN_W3], 5);
    plan_kept_free(&k);
    cce_plan_free(&p);
    cce_model_free(m);
}

/* Intercept biases: LSQ with an intercept adds a W_o and a W₂ bias to every block it changes
 * (every block with refit_all), none without the intercept; bias (FLAP) only where components
 * were removed; a source bias is never counted twice. */
TEST(finish_intercept_biases) {
    tl_spec s = {CCE_ARCH_LLAMA, 16, 3, 4, 2, 4, 24, 32, 16, 0, 1};   // W₂ already has a bias
    cce_model *m = tl_build(&s, 3);
    CHECK(m);
    int64_t blk = cce_layer_params(m, 0);   // 1952 + 16 (the W₂ bias)
    CHECK_EQ_INT(blk, 1968);
    struct { cce_redistribute r; int intercept, refit_all; int64_t d0, d1, d2; } cases[] = {
        /* block 0 loses neuron 0 (48), block 1 loses head 0 (128), block 2 untouched; deltas of
         * params_after vs before per block */
        {CCE_REDIST_NONE, 1, 1, -48, -128, 0},
        {CCE_REDIST_LSQ, 1, 1, -48 + 16, -128 + 16, 16},
        {CCE_REDIST_LSQ, 1, 0, -48 + 16, -128 + 16, 0},
        {CCE_REDIST_LSQ, 0, 1, -48, -128, 0},
        {CCE_REDIST_BIAS, 1, 1, -48, -128 + 16, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cce_plan p;
        cce_err e = {{0}};
        CHECK_OK(cce_plan_init(&p, m, &e));
        p.enc.redistribute = cases[c].r;
        p.enc.intercept = cases[c].intercept;
        p.enc.refit_all = cases[c].refit_all;
        int n0 = 0, h0 = 0;
        tl_set_removed(&p.blocks[0], NULL, 0, &n0, 1);
        tl_set_removed(&p.blocks[1], &h0, 1, NULL, 0);
        CHECK_OK(cce_plan_finish(&p, m, &e));
        int64_t got[3] = {p.blocks[0].params_after - blk, p.blocks[1].params_after - blk, p.blocks[2].params_after - blk};
        int64_t want[3] = {cases[c].d0, cases[c].d1, cases[c].d2};
        for (int b = 0; b < 3; b++)
            CHECK_MSG(got[b] == want[b], "case %zu block %d: params change %lld, want %lld", c, b, (long long)got[b],
                      (long long)want[b]);
        CHECK_EQ_INT(p.params_after, tl_plan_params(m, &p));
        cce_plan_free(&p);
    }
    cce_model_free(m);
}

/* Out-of-range indices are refused with one line naming the block and the field. */
TEST(finish_refuses_out_of_range) {
    cce_model *m = small_model();
    CHECK(m);
    struct { int head, neuron, lin, rank, nblocks, blockfield; const char *want; } cases[] = {
        {4, -2, 0, 0, 3, 1, "head"},
        {-1, -2, 0, 0, 3, 1, "head"},
        {-2, 24, 0, 0, 3, 1, "neuron"},
        {-2, -1, 0, 0, 3, 1, "neuron"},
        {-2, -2, CCE_LIN_W2, 17, 3, 1, "rank of w2"},
        {-2, -2, CCE_LIN_WQ, -1, 3, 1, "rank of wq"},
        {-2, -2, 0, 0, 2, 1, "blocks"},
        {-2, -2, 0, 0, 3, 0, "block"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cce_plan p;
        cce_err e = {{0}};
        CHECK_OK(cce_plan_init(&p, m, &e));
        if (cases[c].head > -2) tl_set_removed(&p.blocks[1], &cases[c].head, 1, NULL, 0);
        if (cases[c].neuron > -2) tl_set_removed(&p.blocks[1], NULL, 0, &cases[c].neuron, 1);
        p.blocks[1].rank[cases[c].lin] = cases[c].rank;
        int keep_n = p.n_blocks;
        p.n_blocks = cases[c].nblocks;
        if (!cases[c].blockfield) p.blocks[1].block = 2;
        cce_status s = cce_plan_finish(&p, m, &e);
        p.n_blocks = keep_n;
        CHECK_MSG(s == CCE_EINVAL, "case %zu: status %d", c, s);
        CHECK_MSG(tl_one_line(e.msg) && strstr(e.msg, cases[c].want), "case %zu: '%s' lacks '%s'", c, e.msg,
                  cases[c].want);
        if (cases[c].nblocks == 3 && cases[c].blockfield) CHECK_MSG(strstr(e.msg, "block 1"), "case %zu: '%s'", c, e.msg);
        cce_plan_free(&p);
    }
    cce_model_free(m);
}

/* ---------------------------------------------------------------- predicted losses */

/* cce_plan_losses against plan.h's formulas computed here from the curves: per block L_rec =
 * Σ cost/E, L_sim = mean of the component curves' sim, L_reg = Σ nuc[k] / Σ nuc[0] (dropped
 * sublayers retain nothing), L_CCE = α L_rec + β L_sim + γ L_reg; totals: sum of L_rec, means
 * of L_sim and L_reg. Steps both given and implied by hand-set decisions. */
TEST(losses_match_direct) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int ordn[24], ordh[4] = {2, 0, 3, 1};
    for (int k = 0; k < 24; k++) ordn[k] = (k * 11) % 24;
    for (int b = 0; b < 3; b++) {
        cce_curve *cn = curve_neurons(&R, m, b, ordn), *ch = curve_heads(&R, m, b, ordh), *cr = curve_rank(&R, m, b, CCE_LIN_W2);
        CHECK(cn && ch && cr);
        for (int k = 0; k <= cn->n; k++) {
            cn->cost[k] = 0.01 * k * (b + 1) + 0.001 * k * k;
            cn->sim[k] = 0.4 - 0.01 * k;
            cn->nuc[k] = 30 - 1.1 * k;
        }
        for (int k = 0; k <= ch->n; k++) {
            ch->cost[k] = 0.3 * k;
            ch->sim[k] = 0.7 - 0.1 * k;
            ch->nuc[k] = 20 - 4.0 * k;
        }
        for (int k = 0; k <= cr->n; k++) {
            cr->cost[k] = 0.05 * k * k;
            cr->nuc[k] = 15 - 1.0 * k;
        }
        CHECK(curve_drop(&R, m, b, CCE_CURVE_DROP_ATTN, 2.5));
        R.r[b].out_energy = 3.0 + b;
    }
    cce_plan p;
    cce_err e = {{0}};
    CHECK_OK(cce_plan_init(&p, m, &e));
    p.enc.redistribute = CCE_REDIST_NONE;
    p.knobs.alpha = 0.7;
    p.knobs.beta = 0.2;
    p.knobs.gamma = 0.1;
    /* block 0: steps given (5 neurons, 1 head, 3 rank steps); block 1: decisions by hand (the
     * first 7 neurons of the order, rank 4 of W2 = step rmax-4+1), steps 0; block 2: attention
     * dropped, 2 neurons */
    int nb0 = 5, nb1 = 7, nb2 = 2;
    tl_set_removed(&p.blocks[0], ordh, 1, ordn, nb0);
    p.blocks[0].steps[CCE_CURVE_NEURONS] = nb0;
    p.blocks[0].steps[CCE_CURVE_HEADS] = 1;
    const cce_curve *r0 = &R.r[0].curves[CCE_CURVE_RANK_W2];
    p.blocks[0].rank[CCE_LIN_W2] = r0->order[2];
    p.blocks[0].steps[CCE_CURVE_RANK_W2] = 3;
    tl_set_removed(&p.blocks[1], NULL, 0, ordn, nb1);
    p.blocks[1].rank[CCE_LIN_W2] = 4;
    tl_set_removed(&p.blocks[2], NULL, 0, ordn, nb2);
    p.blocks[2].drop_attn = 1;
    p.blocks[2].steps[CCE_CURVE_DROP_ATTN] = 1;
    p.blocks[2].steps[CCE_CURVE_NEURONS] = nb2;
    CHECK_OK(cce_plan_finish(&p, m, &e));
    cce_plan_losses(&p, R.p);
    int kn[3] = {nb0, nb1, nb2}, kh[3] = {1, 0, -1};
    int rmax = R.r[0].curves[CCE_CURVE_RANK_W2].order[0];
    int kr[3] = {3, rmax - 4 + 1, 0};
    double trec = 0, tsim = 0, treg = 0;
    for (int b = 0; b < 3; b++) {
        const cce_curve *cn = &R.r[b].curves[CCE_CURVE_NEURONS], *ch = &R.r[b].curves[CCE_CURVE_HEADS],
                        *cr = &R.r[b].curves[CCE_CURVE_RANK_W2], *cd = &R.r[b].curves[CCE_CURVE_DROP_ATTN];
        double E = R.r[b].out_energy, rec, sim, reg;
        double nuc0 = cn->nuc[0] + ch->nuc[0] + cr->nuc[0];
        if (kh[b] >= 0) {
            rec = (cn->cost[kn[b]] + ch->cost[kh[b]] + cr->cost[kr[b]]) / E;
            sim = (cn->sim[kn[b]] + ch->sim[kh[b]]) / 2;
            reg = (cn->nuc[kn[b]] + ch->nuc[kh[b]] + cr->nuc[kr[b]]) / nuc0;
        } else {   // attention dropped: its drop cost replaces the heads curve; heads retain nothing
            rec = (cn->cost[kn[b]] + cd->cost[1] + cr->cost[kr[b]]) / E;
            sim = cn->sim[kn[b]];
            reg = (cn->nuc[kn[b]] + cr->nuc[kr[b]]) / nuc0;
        }
        double cce = 0.7 * rec + 0.2 * sim + 0.1 * reg;
        CHECK_MSG(fabs(p.blocks[b].L_rec - rec) <= 1e-12 * fabs(rec), "block %d L_rec %.15g, direct %.15g", b,
                  p.blocks[b].L_rec, rec);
        CHECK_MSG(fabs(p.blocks[b].L_sim - sim) <= 1e-12, "block %d L_sim %.15g, direct %.15g", b, p.blocks[b].L_sim, sim);
        CHECK_MSG(fabs(p.blocks[b].L_reg - reg) <= 1e-12, "block %d L_reg %.15g, direct %.15g", b, p.blocks[b].L_reg, reg);
        CHECK_NEAR(p.blocks[b].L_cce, cce, 1e-12);
        trec += rec;
        tsim += sim;
        treg += reg;
    }
    CHECK_NEAR(p.L_rec, trec, 1e-12);
    CHECK_NEAR(p.L_sim, tsim / 3, 1e-12);
    CHECK_NEAR(p.L_reg, treg / 3, 1e-12);
    CHECK_NEAR(p.L_cce, 0.7 * trec + 0.2 * tsim / 3 + 0.1 * treg / 3, 1e-12);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* The planner's own losses are those of its steps: rebuilding the plan's losses from its
 * steps gives the same numbers, and a block drop chosen as one step costs that step only. */
TEST(losses_of_planner_steps) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    for (int b = 0; b < 3; b++) {
        cce_curve *cn = curve_neurons(&R, m, b, NULL), *ch = curve_heads(&R, m, b, NULL);
        CHECK(cn && ch);
        for (int k = 0; k <= cn->n; k++) cn->cost[k] = 0.002 * k * k * (b + 1);
        for (int k = 0; k <= ch->n; k++) ch->cost[k] = 0.2 * k * k;
        R.r[b].out_energy = 1.5;
    }
    cce_plan p;
    CHECK(plan_for(&p, m, 0.3, CCE_REDIST_NONE) == 0);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_build_blocks(&p, m, R.p, &e) == CCE_OK, "%s", e.msg);
    double rec = 0;
    for (int b = 0; b < 3; b++) {
        double br = (R.r[b].curves[CCE_CURVE_NEURONS].cost[p.blocks[b].steps[CCE_CURVE_NEURONS]] +
                     R.r[b].curves[CCE_CURVE_HEADS].cost[p.blocks[b].steps[CCE_CURVE_HEADS]]) / 1.5;
        CHECK_NEAR(p.blocks[b].L_rec, br, 1e-12);
        rec += br;
    }
    CHECK_NEAR(p.L_rec, rec, 1e-12);
    CHECK_NEAR(p.L_cce, rec, 1e-12);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* Every neuron of block 0 removed along its curve (steps 24) and no FFN-drop curve: the FFN
 * is gone (cce_plan_finish drops it), and its loss is the curve's cost[24], not 0. */
TEST(losses_full_curve_without_drop_curve) {
    cce_model *m = small_model();
    CHECK(m);
    res_set R;
    res_init(&R, 3);
    int ord[24];
    for (int k = 0; k < 24; k++) ord[k] = k;
    cce_curve *c = curve_neurons(&R, m, 0, ord);
    CHECK(c);
    for (int k = 0; k <= 24; k++) c->cost[k] = 0.1 * k;
    cce_plan p;
    cce_err e = {{0}};
    CHECK_OK(cce_plan_init(&p, m, &e));
    tl_set_removed(&p.blocks[0], NULL, 0, ord, 24);
    p.blocks[0].steps[CCE_CURVE_NEURONS] = 24;
    CHECK_OK(cce_plan_finish(&p, m, &e));
    CHECK(p.blocks[0].drop_ffn);
    cce_plan_losses(&p, R.p);
    CHECK_MSG(fabs(p.blocks[0].L_rec - 2.4) < 1e-12,
              "block 0 with all 24 neurons removed along its curve: L_rec %.6g, curve cost[24] %.6g", p.blocks[0].L_rec, 2.4);
    cce_plan_free(&p);
    res_free(&R);
    cce_model_free(m);
}

/* ---------------------------------------------------------------- JSON */

static int plans_equal(const cce_plan *a, const cce_plan *b, char *why, size_t cap) {
#define NEQ(...) do { snprintf(why, cap, __VA_ARGS__); return 0; } while (0)
    if (strcmp(a->method, b->method)) NEQ("method");
    const double ka[6] = {a->knobs.alpha, a->knobs.beta, a->knobs.gamma, a->knobs.eps, a->knobs.tau, a->knobs.target};
    const double kb[6] = {b->knobs.alpha, b->knobs.beta, b->knobs.gamma, b->knobs.eps, b->knobs.tau, b->knobs.target};
    for (int i = 0; i < 6; i++)
        if (ka[i] != kb[i]) NEQ("knob %s %.17g vs %.17g", cce_knob_names[i], ka[i], kb[i]);
    const cce_encode_opts *x = &a->enc, *y = &b->enc;
    if (x->redistribute != y->redistribute || x->ridge != y->ridge || x->intercept != y->intercept ||
        x->refit_inputs != y->refit_inputs || x->refit_all != y->refit_all || x->lowrank != y->lowrank ||
        x->tokens != y->tokens || x->seq_len != y->seq_len || x->seed != y->seed)
        NEQ("encoding options");
    if (strcmp(a->model.sha256, b->model.sha256) || strcmp(a->model.path, b->model.path) ||
        strcmp(a->model.arch, b->model.arch) || a->model.dim != b->model.dim || a->model.n_layers != b->model.n_layers ||
        a->model.hidden_dim != b->model.hidden_dim)
        NEQ("model identity");
    if (strcmp(a->calib.path, b->calib.path) || strcmp(a->calib.sha256, b->calib.sha256) ||
        a->calib.tokens != b->calib.tokens || a->calib.seq_len != b->calib.seq_len || a->calib.seed != b->calib.seed)
        NEQ("calibration identity");
    if (a->n_pins != b->n_pins || a->n_forces != b->n_forces) NEQ("pin counts");
    for (int i = 0; i < a->n_pins; i++)
        if (memcmp(&a->pins[i], &b->pins[i], sizeof(cce_pin))) NEQ("pin %d", i);
    for (int i = 0; i < a->n_forces; i++)
        if (memcmp(&a->forces[i], &b->forces[i], sizeof(cce_pin))) NEQ("force %d", i);
    if (a->n_blocks != b->n_blocks) NEQ("n_blocks");
    if (a->params_before != b->params_before || a->params_after != b->params_after) NEQ("params");
    for (int l = 0; l < a->n_blocks; l++) {
        const cce_block_plan *p = &a->blocks[l], *q = &b->blocks[l];
        if (p->drop != q->drop || p->drop_attn != q->drop_attn || p->drop_ffn != q->drop_ffn) NEQ("block %d drops", l);
        if (p->n_heads_removed != q->n_heads_removed || p->n_neurons_removed != q->n_neurons_removed)
            NEQ("block %d removed counts", l);
        for (int i = 0; i < p->n_heads_removed; i++)
            if (p->heads_removed[i] != q->heads_removed[i]) NEQ("block %d head %d", l, i);
        for (int i = 0; i < p->n_neurons_removed; i++)
            if (p->neurons_removed[i] != q->neurons_removed[i]) NEQ("block %d neuron %d", l, i);
        if (memcmp(p->rank, q->rank, sizeof p->rank)) NEQ("block %d ranks", l);
        if (memcmp(p->steps, q->steps, sizeof p->steps)) NEQ("block %d steps", l);
        if (p->n_heads != q->n_heads || p->n_kv_heads != q->n_kv_heads || p->hidden != q->hidden ||
            p->params_after != q->params_after)
            NEQ("block %d shapes", l);
    }
    return 1;
#undef NEQ
}

/* A plan with every kind of decision, knobs with awkward decimals, pins and forces, options
 * off their defaults. */
static void rich_plan(cce_plan *p, const cce_model *m) {
    cce_err e;
    cce_plan_init(p, m, &e);
    snprintf(p->method, sizeof p->method, "cce");
    p->knobs = (cce_knobs){0.1234567890123456789, 3.3e-7, 1e6, 1e-7, 0.999999, 0.95};
    p->enc.redistribute = CCE_REDIST_BIAS;
    p->enc.ridge = 0.0123456789;
    p->enc.intercept = 0;
    p->enc.refit_inputs = 0;
    p->enc.refit_all = 0;
    p->enc.lowrank = CCE_LOWRANK_PLAIN;
    p->enc.tokens = 12345;
    p->enc.seq_len = 8;
    p->enc.seed = 123456789;
    snprintf(p->model.path, sizeof p->model.path, "/some/where/model \"quoted\" é.bin");
    snprintf(p->model.sha256, sizeof p->model.sha256, "%064d", 0);
    p->model.sha256[5] = 'a';
    snprintf(p->model.arch, sizeof p->model.arch, "llama");
    p->model.dim = m->cfg.dim;
    p->model.n_layers = m->cfg.n_layers;
    p->model.n_heads = m->cfg.n_heads;
    p->model.n_kv_heads = m->cfg.n_kv_heads;
    p->model.head_dim = m->cfg.head_dim;
    p->model.hidden_dim = m->cfg.hidden_dim;
    p->model.vocab_size = m->cfg.vocab_size;
    p->model.params_non_embedding = cce_model_params(m).non_embedding;
    snprintf(p->calib.path, sizeof p->calib.path, "calib/dir with spaces");
    snprintf(p->calib.sha256, sizeof p->calib.sha256, "%064d", 7);
    p->calib.tokens = 4096;
    p->calib.seq_len = 16;
    p->calib.seed = 99;
    int h[2] = {3, 1}, n[4] = {20, 2, 7, 11};
    tl_set_removed(&p->blocks[0], h, 2, n, 4);
    p->blocks[0].rank[CCE_LIN_W1] = 5;
    p->blocks[0].steps[CCE_CURVE_NEURONS] = 4;
    p->blocks[0].steps[CCE_CURVE_RANK_W1] = 5;
    p->blocks[1].drop_ffn = 1;
    p->blocks[1].steps[CCE_CURVE_DROP_FFN] = 1;
    p->blocks[2].drop = 1;
    cce_pin pins[2] = {{0, CCE_CURVE_HEADS, 2}, {1, CCE_CURVE_DROP_ATTN, -1}}, forces[1] = {{2, CCE_CURVE_NEURONS, 4}};
    set_pins(p, pins, 2, forces, 1);
    cce_plan_finish(p, m, &e);
}

TEST(json_round_trip) {
    cce_model *m = small_model();
    CHECK(m);
    cce_plan p, q;
    rich_plan(&p, m);
    char *text = NULL;
    cce_err e = {{0}};
    CHECK_OK(cce_plan_to_json(&p, &text, &e));
    CHECK_MSG(cce_plan_from_json(text, strlen(text), "t.json", m, &q, &e) == CCE_OK, "%s", e.msg);
    char why[128] = "";
    CHECK_MSG(plans_equal(&p, &q, why, sizeof why), "round trip differs: %s", why);
    /* and through a file, twice: the second text equals the first */
    char path[600];
    snprintf(path, sizeof path, "%s/plan.json", harness_tmpdir());
    CHECK_OK(cce_plan_save(&q, path, &e));
    cce_plan r;
    CHECK_MSG(cce_plan_load(path, m, &r, &e) == CCE_OK, "%s", e.msg);
    CHECK_MSG(plans_equal(&p, &r, why, sizeof why), "file round trip differs: %s", why);
    char *text2 = NULL;
    CHECK_OK(cce_plan_to_json(&r, &text2, &e));
    /* "program" is the only field allowed to differ; here the build is the same */
    CHECK_MSG(!strcmp(text2, text), "the re-saved text differs from the first (%s)",
              r.model.params_non_embedding != p.model.params_non_embedding ? "model.params_non_embedding is not read back"
                                                                           : "see the texts");
    /* without a model (m NULL): the same decisions, no checks against shapes */
    cce_plan s;
    CHECK_MSG(cce_plan_from_json(text, strlen(text), "t.json", NULL, &s, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(s.blocks[0].n_neurons_removed, 4);
    CHECK_EQ_INT(s.blocks[0].neurons_removed[3], 20);
    cce_free(text);
    cce_free(text2);
    cce_plan_free(&p);
    cce_plan_free(&q);
    cce_plan_free(&r);
    cce_plan_free(&s);
    cce_model_free(m);
}

/* Numbers survive the file bit for bit: knobs that are not short decimals (0.1·3, as a key
 * that steps a knob produces; the double after 1e-3) and 64-bit seeds up to the 2^53 the
 * reader allows. (cJSON prints 15 significant digits and keeps them when they parse back
 * within DBL_EPSILON of the value — an ulp or two off.) */
TEST(json_round_trip_exact_numbers) {
    cce_model *m = small_model();
    CHECK(m);
    cce_plan p, q;
    rich_plan(&p, m);
    p.knobs.alpha = 0.1 * 3;                 // 0.30000000000000004
    p.knobs.eps = nextafter(1e-3, 1.0);
    p.enc.ridge = 0.1 * 3 * 1e-3;
    p.enc.seed = ((uint64_t)1 << 53) - 1;
    p.calib.seed = ((uint64_t)1 << 53) - 3;
    p.calib.tokens = (1 << 24) - 1;
    char *text = NULL;
    cce_err e = {{0}};
    CHECK_OK(cce_plan_to_json(&p, &text, &e));
    CHECK_MSG(cce_plan_from_json(text, strlen(text), "t.json", m, &q, &e) == CCE_OK, "%s", e.msg);
    char bad[400] = "";
    size_t o = 0;
    if (q.knobs.alpha != p.knobs.alpha) o += (size_t)snprintf(bad + o, sizeof bad - o, "alpha %.17g -> %.17g; ", p.knobs.alpha, q.knobs.alpha);
    if (q.knobs.eps != p.knobs.eps) o += (size_t)snprintf(bad + o, sizeof bad - o, "eps %.17g -> %.17g; ", p.knobs.eps, q.knobs.eps);
    if (q.enc.ridge != p.enc.ridge) o += (size_t)snprintf(bad + o, sizeof bad - o, "ridge %.17g -> %.17g; ", p.enc.ridge, q.enc.ridge);
    if (q.enc.seed != p.enc.seed)
        o += (size_t)snprintf(bad + o, sizeof bad - o, "encoding.seed %llu -> %llu; ", (unsigned long long)p.enc.seed,
                              (unsigned long long)q.enc.seed);
    if (q.calib.seed != p.calib.seed)
        o += (size_t)snprintf(bad + o, sizeof bad - o, "calibration.seed %llu -> %llu; ", (unsigned long long)p.calib.seed,
                              (unsigned long long)q.calib.seed);
    if (q.calib.tokens != p.calib.tokens) o += (size_t)snprintf(bad + o, sizeof bad - o, "calibration.tokens; ");
    CHECK_MSG(o == 0, "not bit-exact through the plan file: %s", bad);
    cce_free(text);
    cce_plan_free(&p);
    cce_plan_free(&q);
    cce_model_free(m);
}

/* Replace the first occurrence of `from` in text by `to` (new string). */
static char *subst(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    if (!at) return NULL;
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *o = cce_alloc(n + 1, 1);
    size_t pre = (size_t)(at - text);
    memcpy(o, text, pre);
    memcpy(o + pre, to, strlen(to));
    strcpy(o + pre + strlen(to), at + strlen(from));
    return o;
}

/* The compact one-line JSON of a plan (no whitespace), so substitutions are unambiguous. */
static char *compact_json(const cce_plan *p) {
    char *t = NULL;
    cce_err e;
    if (cce_plan_to_json(p, &t, &e)) return NULL;
    char *o = cce_alloc(strlen(t) + 1, 1);
    size_t w = 0;
    int in_str = 0;
    for (const char *q = t; *q; q++) {
        if (*q == '"' && (q == t || q[-1] != '\\')) in_str = !in_str;
        if (!in_str && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')) continue;
        o[w++] = *q;
    }
    o[w] = 0;
    cce_free(t);
    return o;
}

/* Malformed and hostile plans: refused with one line naming the field, never a crash, nothing
 * leaked into *p (cce_plan_free on it is safe). */
TEST(json_refusals) {
    cce_model *m = small_model();
    CHECK(m);
    cce_plan p;
    rich_plan(&p, m);
    char *base = compact_json(&p);
    CHECK(base);
    cce_plan_free(&p);
    /* sanity: the compact text loads */
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_from_json(base, strlen(base), "t", m, &p, &e) == CCE_OK, "%s", e.msg);
    cce_plan_free(&p);
    struct { const char *from, *to, *field; } cases[] = {
        /* wrong types */
        {"\"format_version\":\"1.0\"", "\"format_version\":1.0", "format_version"},
        {"\"model\":{", "\"model\":[{", NULL},   // invalid JSON afterwards: refused, any message
        {"\"dim\":16", "\"dim\":\"16\"", "model.dim"},
        {"\"redistribute\":\"bias\"", "\"redistribute\":true", "encoding.redistribute"},
        {"\"redistribute\":\"bias\"", "\"redistribute\":\"BIAS\"", "encoding.redistribute"},
        {"\"intercept\":false", "\"intercept\":0", "encoding.intercept"},
        {"\"heads_removed\":[1,3]", "\"heads_removed\":{\"a\":1}", "blocks[0].heads_removed"},
        {"\"heads_removed\":[1,3]", "\"heads_removed\":[1,\"3\"]", "blocks[0].heads_removed"},
        {"\"ranks\":{\"wq\":0", "\"ranks\":[{\"wq\":0", NULL},
        {"\"blocks\":[", "\"blocks\":{\"x\":[", NULL},
        {"\"pins\":[{", "\"pins\":[7,{", "pins[0]"},
        {"\"kind\":\"heads\"", "\"kind\":\"head\"", "pins[0].kind"},
        {"\"knobs\":{", "\"knobs\":{\"alpha\":\"1\",", "knobs.alpha"},
        /* missing fields */
        {"\"format_version\":\"1.0\",", "", "format_version"},
        {"\"sha256\":\"00000a", "\"sha25\":\"00000a", "model.sha256"},
        {"\"n_layers\":3,", "", "model.n_layers"},
        {"\"blocks\":[", "\"blocs\":[", "blocks"},
        {"{\"block\":0,\"drop\":", "{\"drop\":", "blocks[0].block"},
        {"{\"block\":2,\"drop\":true", "{\"drop\":true", "blocks[2].block"},
        /* non-integers where integers belong */
        {"\"heads_removed\":[1,3]", "\"heads_removed\":[1,2.5]", "blocks[0].heads_removed"},
        {"\"neurons_removed\":[2,7,11,20]", "\"neurons_removed\":[2,7,11,1e300]", "blocks[0].neurons_removed"},
        {"\"w1\":5", "\"w1\":5.5", "blocks[0].ranks.w1"},
        {"\"seq_len\":16", "\"seq_len\":16.25", "calibration.seq_len"},
        {"\"tokens\":12345", "\"tokens\":1e30", "encoding.tokens"},
        {"\"index\":2", "\"index\":0.5", "pins[0].index"},
        {"\"neurons\":4", "\"neurons\":-4", "blocks[0].steps.neurons"},
        /* out of range */
        {"\"heads_removed\":[1,3]", "\"heads_removed\":[1,4]", "blocks[0].heads_removed"},
        {"\"heads_removed\":[1,3]", "\"heads_removed\":[-1,3]", "blocks[0].heads_removed"},
        {"\"neurons_removed\":[2,7,11,20]", "\"neurons_removed\":[2,7,11,24]", "blocks[0].neurons_removed"},
        {"\"w1\":5", "\"w1\":17", "blocks[0].ranks.w1"},
        {"{\"block\":0,\"drop\":", "{\"block\":1,\"drop\":", "blocks[0].block"},
        {"\"index\":2", "\"index\":-2", "pins[0].index"},
        {"\"block\":2,\"kind\":\"neurons\"", "\"block\":3,\"kind\":\"neurons\"", "forces[0].block"},
        {"\"seed\":123456789", "\"seed\":-1", "encoding.seed"},
        {"\"seed\":123456789", "\"seed\":9007199254740994", "encoding.seed"},   // 2^53 + 2
        {"\"tokens\":12345", "\"tokens\":1", "encoding.tokens"},
        {"\"ridge\":0.0123456789", "\"ridge\":0", "encoding.ridge"},
        {"\"ridge\":0.0123456789", "\"ridge\":10000", "encoding.ridge"},
        {"\"ridge\":0.0123456789", "\"ridge\":-0.001", "encoding.ridge"},
        {"\"lowrank\":\"plain\"", "\"lowrank\":\"svd\"", "encoding.lowrank"},
        /* knobs out of range */
        {"\"target\":0.95", "\"target\":0.96", "target"},
        {"\"eps\":1e-07", "\"eps\":1", "eps"},
        {"\"tau\":0.999999", "\"tau\":-0.1", "tau"},
        {"\"gamma\":1000000", "\"gamma\":1000001", "gamma"},
        /* versions */
        {"\"format_version\":\"1.0\"", "\"format_version\":\"2.0\"", "format_version"},
        {"\"format_version\":\"1.0\"", "\"format_version\":\"0.9\"", "format_version"},
        {"\"format_version\":\"1.0\"", "\"format_version\":\"one\"", "format_version"},
        {"\"format_version\":\"1.0\"", "\"format_version\":\"-1.0\"", "format_version"},
        {"\"kind\":\"cce-plan\"", "\"kind\":\"cce-session\"", "kind"},
        /* another model's shapes */
        {"\"dim\":16", "\"dim\":32", "model.dim"},
        {"\"hidden_dim\":24", "\"hidden_dim\":25", "model.hidden_dim"},
        {"\"n_kv_heads\":2", "\"n_kv_heads\":4", "model.n_kv_heads"},
        {"\"n_layers\":3", "\"n_layers\":4", "model.n_layers"},
        {"\"vocab_size\":32", "\"vocab_size\":33", "model.vocab_size"},
        /* case-variant keys: lookups are case-sensitive */
        {"\"blocks\":[", "\"Blocks\":[", "blocks"},
        {"\"model\":{", "\"MODEL\":{", "model"},
        {"\"format_version\":", "\"Format_Version\":", "format_version"},
        {"\"sha256\":\"00000a", "\"SHA256\":\"00000a", "model.sha256"},
        {"{\"block\":1,\"drop\":", "{\"Block\":1,\"drop\":", "blocks[1].block"},
        /* too long strings */
        {"\"arch\":\"llama\"", "\"arch\":\"llamallamallamallama\"", "model.arch"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *t = subst(base, cases[c].from, cases[c].to);
        CHECK_MSG(t, "case %zu: '%s' not in the plan text", c, cases[c].from);
        cce_err er = {{0}};
        cce_status s = cce_plan_from_json(t, strlen(t), "bad.json", m, &p, &er);
        cce_free(t);
        CHECK_MSG(s != CCE_OK, "case %zu (%s -> %s): accepted", c, cases[c].from, cases[c].to);
        CHECK_MSG(tl_one_line(er.msg) && strstr(er.msg, "bad.json"), "case %zu: message '%s'", c, er.msg);
        if (cases[c].field)
            CHECK_MSG(strstr(er.msg, cases[c].field), "case %zu (%s -> %s): message '%s' does not name '%s'", c,
                      cases[c].from, cases[c].to, er.msg, cases[c].field);
        CHECK(p.blocks == NULL && p.pins == NULL && p.forces == NULL);
        cce_plan_free(&p);
    }
    cce_free(base);
    cce_model_free(m);
}

/* Case-variant keys of optional fields are not read as the real ones (a "Neurons_removed"
 * list removes nothing); duplicate-free decisions survive. */
TEST(json_case_sensitive_optional) {
    cce_model *m = small_model();
    CHECK(m);
    cce_plan p;
    rich_plan(&p, m);
    char *base = compact_json(&p);
    cce_plan_free(&p);
    char *t = subst(base, "\"neurons_removed\":[2,7,11,20]", "\"Neurons_removed\":[2,7,11,20]");
    CHECK(t);
    cce_err e = {{0}};
    CHECK_MSG(cce_plan_from_json(t, strlen(t), "t", m, &p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 0);
    cce_plan_free(&p);
    cce_free(t);
    t = subst(base, "\"intercept\":false", "\"Intercept\":false");
    CHECK_MSG(cce_plan_from_json(t, strlen(t), "t", m, &p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.enc.intercept, 1);   // the default, not the case-variant's false
    cce_plan_free(&p);
    cce_free(t);
    cce_free(base);
    cce_model_free(m);
}

/* Byte-level hostility: not JSON, not an object, trailing garbage, invalid UTF-8, NUL bytes,
 * truncation at every length, deep nesting, a huge index array. */
TEST(json_hostile_bytes) {
    cce_model *m = small_model();
    CHECK(m);
    cce_plan p;
    rich_plan(&p, m);
    char *base = compact_json(&p);
    cce_plan_free(&p);
    size_t n = strlen(base);
    cce_err e = {{0}};
    const char *simple[] = {"", " ", "null", "[]", "42", "\"plan\"", "{", "{}", "{\"format_version\":\"1.0\"}"};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
        cce_status s = cce_plan_from_json(simple[i], strlen(simple[i]), "h.json", m, &p, &e);
        CHECK_MSG(s != CCE_OK && tl_one_line(e.msg) && strstr(e.msg, "h.json"), "'%s': status %d '%s'", simple[i], s, e.msg);
        cce_plan_free(&p);
    }
    /* trailing garbage; trailing whitespace is fine */
    char *t = cce_alloc(n + 16, 1);
    memcpy(t, base, n);
    memcpy(t + n, " \n\t\r", 5);
    CHECK_MSG(cce_plan_from_json(t, n + 4, "h.json", m, &p, &e) == CCE_OK, "%s", e.msg);
    cce_plan_free(&p);
    memcpy(t + n, " x", 3);
    CHECK(cce_plan_from_json(t, n + 2, "h.json", m, &p, &e) != CCE_OK && strstr(e.msg, "garbage"));
    cce_plan_free(&p);
    memcpy(t + n, "{}", 3);
    CHECK(cce_plan_from_json(t, n + 2, "h.json", m, &p, &e) != CCE_OK && tl_one_line(e.msg));
    cce_plan_free(&p);
    t[n] = 0;   // a NUL byte inside the given length
    CHECK(cce_plan_from_json(t, n + 1, "h.json", m, &p, &e) != CCE_OK && tl_one_line(e.msg));
    cce_plan_free(&p);
    cce_free(t);
    /* invalid UTF-8 inside a string */
    t = subst(base, "\"method\":\"cce\"", "\"method\":\"c\xc3\x28\"");
    CHECK(cce_plan_from_json(t, strlen(t), "h.json", m, &p, &e) != CCE_OK && strstr(e.msg, "UTF-8"));
    cce_plan_free(&p);
    cce_free(t);
    t = subst(base, "\"method\":\"cce\"", "\"method\":\"c\xed\xa0\x80\"");   // a UTF-16 surrogate
    CHECK(cce_plan_from_json(t, strlen(t), "h.json", m, &p, &e) != CCE_OK && strstr(e.msg, "UTF-8"));
    cce_plan_free(&p);
    cce_free(t);
    /* every truncation is refused, one line */
    for (size_t k = 0; k < n; k++) {
        cce_status s = cce_plan_from_json(base, k, "h.json", m, &p, &e);
        CHECK_MSG(s != CCE_OK && tl_one_line(e.msg), "truncated at %zu: status %d", k, s);
        cce_plan_free(&p);
    }
    /* deep nesting */
    size_t depth = 100000;
    t = cce_alloc(2 * depth + 1, 1);
    for (size_t k = 0; k < depth; k++) t[k] = '[', t[2 * depth - 1 - k] = ']';
    CHECK(cce_plan_from_json(t, 2 * depth, "h.json", m, &p, &e) != CCE_OK && tl_one_line(e.msg));
    cce_plan_free(&p);
    cce_free(t);
    /* a huge index array (a million entries): refused by its length before anything else */
    size_t big = 1000000;
    char *arr = cce_alloc(big * 2 + 64, 1);
    size_t w = (size_t)sprintf(arr, "\"neurons_removed\":[");
    for (size_t k = 0; k < big; k++) arr[w++] = '0', arr[w++] = ',';
    arr[w - 1] = ']';
    arr[w] = 0;
    t = subst(base, "\"neurons_removed\":[2,7,11,20]", arr);
    CHECK_MSG(cce_plan_from_json(t, strlen(t), "h.json", m, &p, &e) != CCE_OK && strstr(e.msg, "blocks[0].neurons_removed"),
              "huge array: '%s'", e.msg);
    cce_plan_free(&p);
    cce_free(t);
    /* duplicates within the length bound are deduplicated, not refused */
    t = subst(base, "\"neurons_removed\":[2,7,11,20]", "\"neurons_removed\":[7,7,2,7]");
    CHECK_MSG(cce_plan_from_json(t, strlen(t), "h.json", m, &p, &e) == CCE_OK, "%s", e.msg);
    CHECK_EQ_INT(p.blocks[0].n_neurons_removed, 2);
    CHECK_EQ_INT(p.blocks[0].neurons_removed[0], 2);
    CHECK_EQ_INT(p.blocks[0].neurons_removed[1], 7);
    CHECK_EQ_INT(p.blocks[0].hidden, 22);
    cce_plan_free(&p);
    cce_free(t);
    cce_free(arr);
    cce_free(base);
    cce_model_free(m);
}

/* Another model: the plan of stories260K (sha256 of the file) refused for a model whose bytes
 * differ; the sha check only runs for a model with a path. */
TEST(json_other_model_sha) {
    const char *path = harness_data("llama2c/stories260K.bin");
    if (!harness_have(path)) {
        printf("SKIP json_other_model_sha: %s not found\n", path);
        return;
    }
    cce_model *m = NULL;
    cce_err e = {{0}};
    CHECK_OK(cce_load_llama2c(path, &m, &e));
    cce_plan p;
    CHECK_OK(cce_plan_init(&p, m, &e));
    CHECK_OK(cce_model_id_of(m, &p.model, &e));
    CHECK_STR(p.model.sha256, "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696");
    char *base = compact_json(&p);
    cce_plan_free(&p);
    cce_plan q;
    CHECK_MSG(cce_plan_from_json(base, strlen(base), "ok.json", m, &q, &e) == CCE_OK, "%s", e.msg);
    cce_plan_free(&q);
    char *t = subst(base, "b0a507e7ad0f", "b0a507e7ad0e");
    CHECK(cce_plan_from_json(t, strlen(t), "sha.json", m, &q, &e) != CCE_OK);
    CHECK_MSG(tl_one_line(e.msg) && strstr(e.msg, "model.sha256") && strstr(e.msg, "sha.json"), "'%s'", e.msg);
    cce_plan_free(&q);
    cce_free(t);
    cce_free(base);
    cce_model_free(m);
}

/* cce_knobs_check / cce_knobs_set: ranges and names, one line naming the knob. */
TEST(knobs_ranges) {
    cce_knobs k;
    cce_knobs_default(&k);
    k.beta = 0.5;   // so that alpha 0 alone is legal
    cce_err e = {{0}};
    CHECK_OK(cce_knobs_check(&k, "t", &e));
    struct { const char *name; double v; int ok; } cases[] = {
        {"alpha", 0, 1}, {"alpha", 1e6, 1}, {"alpha", 1e6 * (1 + 1e-15), 0}, {"alpha", -1e-300, 0}, {"alpha", NAN, 0},
        {"beta", INFINITY, 0}, {"gamma", 5, 1}, {"eps", 0, 1}, {"eps", 0.999999, 1}, {"eps", 1, 0}, {"tau", 1, 0},
        {"tau", -0.0, 1}, {"target", 0.95, 1}, {"target", 0.9500001, 0}, {"target", 0, 1}, {"zeta", 1, 0},
        {"Alpha", 1, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cce_knobs t = k;
        cce_status s = cce_knobs_set(&t, cases[c].name, cases[c].v, &e);
        CHECK_MSG((s == CCE_OK) == cases[c].ok, "%s = %g: status %d", cases[c].name, cases[c].v, s);
        if (!cases[c].ok) {
            CHECK_MSG(tl_one_line(e.msg) && strstr(e.msg, cases[c].name), "'%s'", e.msg);
            CHECK(!memcmp(&t, &k, sizeof k));   // unchanged on failure
        }
    }
    cce_knobs z = k;
    z.alpha = z.beta = z.gamma = 0;
    CHECK(cce_knobs_check(&z, "t", &e) == CCE_EINVAL && tl_one_line(e.msg));
}

int main(void) {
    RUN(budget_reaches_target_counted_exactly);
    RUN(budget_prefers_cheapest_block);
    RUN(budget_prefers_cheapest_kind);
    RUN(budget_convex_hull);
    RUN(budget_drop_not_double_counted);
    RUN(budget_drop_taken_when_cheaper);
    RUN(budget_block_drop);
    RUN(budget_beta_gamma);
    RUN(budget_gamma_counts_drop_nuclear_norm);
    RUN(budget_collinear_steps_not_merged);
    RUN(pin_neuron_stops_curve);
    RUN(pin_head_stops_curve);
    RUN(pin_drop_keeps_sublayer);
    RUN(pin_neuron_blocks_ffn_drop);
    RUN(pin_neuron_blocks_threshold_drop);
    RUN(pin_block_blocks_both_sublayer_drops);
    RUN(forces_taken);
    RUN(pin_force_refusals);
    RUN(threshold_mode);
    RUN(finish_counts_direct);
    RUN(finish_gqa_kv_heads);
    RUN(finish_everything_removed);
    RUN(finish_intercept_biases);
    RUN(finish_refuses_out_of_range);
    RUN(losses_match_direct);
    RUN(losses_of_planner_steps);
    RUN(losses_full_curve_without_drop_curve);
    RUN(json_round_trip);
    RUN(json_round_trip_exact_numbers);
    RUN(json_refusals);
    RUN(json_case_sensitive_optional);
    RUN(json_hostile_bytes);
    RUN(json_other_model_sha);
    RUN(knobs_ranges);
    return harness_done();
}
