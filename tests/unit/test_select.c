/*
 * test_select.c — the OBS selection (engine/select.c) against direct formulas: issue 7's
 * counterexample, the greedy against a from-scratch greedy and brute-force subset search on small
 * random cases (single- and multi-column components), the blocked path (flushes, compaction) on
 * larger cases against the direct Schur-complement cost, rank-deficient covariances, errors,
 * cancellation.
 */
#include "harness.h"
#include "select.h"
#include "util.h"

/* Covariance of rows (rows, n) of x: population, centred, in double. */
static void covariance(const double *x, int rows, int n, double *cov) {
    double *mean = calloc((size_t)n, sizeof(double));
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) mean[j] += x[(size_t)r * n + j] / rows;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int r = 0; r < rows; r++) s += (x[(size_t)r * n + i] - mean[i]) * (x[(size_t)r * n + j] - mean[j]);
            cov[(size_t)i * n + j] = s / rows;
        }
    free(mean);
}

/* Random correlated activations: x = z A + noise with a shared low-rank factor z. */
static void random_problem(uint64_t seed, int rows, int n, int d, int rank, double noise, double *cov, float *w) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    double *a = malloc(sizeof(double) * (size_t)rank * n), *x = malloc(sizeof(double) * (size_t)rows * n);
    for (int i = 0; i < rank * n; i++) a[i] = cce_rng_normal(&r);
    for (int t = 0; t < rows; t++) {
        double z[16];
        for (int q = 0; q < rank; q++) z[q] = cce_rng_normal(&r);
        for (int j = 0; j < n; j++) {
            double v = noise * cce_rng_normal(&r);
            for (int q = 0; q < rank; q++) v += z[q] * a[q * n + j];
            x[(size_t)t * n + j] = v;
        }
    }
    covariance(x, rows, n, cov);
    for (int i = 0; i < d * n; i++) w[i] = cce_rng_normal(&r) * (0.3f + (float)(i % 7) / 7.0f);
    free(a);
    free(x);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), 1e-300); }

/* Issue 7: a and b have identical activations and W_a = −W_b, c is independent with a small
 * weight. Removing {a, b} costs 0 (b absorbs a and then carries nothing), {a, c} does not. */
TEST(counterexample_removes_the_cancelling_pair_first) {
    enum { R = 400, N = 3, D = 4 };
    static double x[R * N], cov[N * N];
    cce_rng r;
    cce_rng_seed(&r, 7);
    for (int t = 0; t < R; t++) {
        x[t * N + 0] = x[t * N + 1] = cce_rng_normal(&r);
        x[t * N + 2] = cce_rng_normal(&r);
    }
    covariance(x, R, N, cov);
    float w[D * N];
    for (int i = 0; i < D; i++) {
        w[i * N + 0] = 1.0f + (float)i;
        w[i * N + 1] = -w[i * N + 0];
        w[i * N + 2] = 0.05f;
    }
    int off[N + 1] = {0, 1, 2, 3}, idx[N] = {0, 1, 2}, order[N];
    cce_components comps = {N, off, idx};
    double cost[N + 1], loo[N];
    cce_err err;
    CHECK_OK(cce_select_obs_loo(cov, N, &comps, w, D, N, 1e-6, 0, order, cost, loo, NULL, NULL, &err));
    double c_ab, c_ac, c_c;
    int ab[2] = {0, 1}, ac[2] = {0, 2}, only_c[1] = {2};
    CHECK_OK(cce_select_cost(cov, N, &comps, w, D, N, 1e-6, ab, 2, &c_ab, &err));
    CHECK_OK(cce_select_cost(cov, N, &comps, w, D, N, 1e-6, ac, 2, &c_ac, &err));
    CHECK_OK(cce_select_cost(cov, N, &comps, w, D, N, 1e-6, only_c, 1, &c_c, &err));
    printf("  order %d %d %d, cost %.3g %.3g %.3g; cost{a,b} %.3g cost{a,c} %.3g cost{c} %.3g\n", order[0], order[1],
           order[2], cost[1], cost[2], cost[3], c_ab, c_ac, c_c);
    CHECK((order[0] == 0 && order[1] == 1) || (order[0] == 1 && order[1] == 0));
    CHECK_EQ_INT(order[2], 2);
    double energy_a = 0;   // what a carries on its own: var(a) ‖W_a‖²
    for (int i = 0; i < D; i++) energy_a += cov[0] * w[i * N] * w[i * N];
    CHECK(cost[2] < 1e-5 * energy_a);   // ~ridge: only what λ = 1e-6 mean diag leaves (measured 1.8e-6)
    CHECK(c_ac > 0.5 * c_c);
    CHECK(rel(cost[2], c_ab) < 1e-6 || fabs(cost[2] - c_ab) < 1e-12 * c_c);
    CHECK(loo[0] < 1e-5 * energy_a && loo[1] < 1e-5 * energy_a);
}

/* All subsets of size k of nc components: the least cost (brute force). */
static double brute_best(const double *cov, int n, const cce_components *c, const float *w, int d, int k,
                         int *best_set) {
    int nc = c->n_comp;
    double best = INFINITY;
    for (unsigned mask = 0; mask < (1u << nc); mask++) {
        if (__builtin_popcount(mask) != k) continue;
        int set[16], m = 0;
        for (int i = 0; i < nc; i++)
            if (mask >> i & 1) set[m++] = i;
        double v;
        cce_err err;
        if (cce_select_cost(cov, n, c, w, d, n, 1e-6, set, k, &v, &err)) return NAN;
        if (v < best) {
            best = v;
            if (best_set) memcpy(best_set, set, (size_t)k * sizeof(int));
        }
    }
    return best;
}

/* Greedy recomputed from scratch: each step the component whose addition to the removed set
 * gives the least exact cost (cce_select_cost), i.e. the least increment. */
static void greedy_from_scratch(const double *cov, int n, const cce_components *c, const float *w, int d,
                                int *order, double *cost) {
    int nc = c->n_comp, used[64] = {0};
    cost[0] = 0;
    for (int k = 0; k < nc; k++) {
        double best = INFINITY;
        int bi = -1;
        for (int i = 0; i < nc; i++) {
            if (used[i]) continue;
            order[k] = i;
            double v;
            cce_err err;
            cce_select_cost(cov, n, c, w, d, n, 1e-6, order, k + 1, &v, &err);
            if (v < best) { best = v; bi = i; }
        }
        order[k] = bi;
        used[bi] = 1;
        cost[k + 1] = best;
    }
}

/* Random cases of up to 10 components, single- and multi-column: greedy prefix costs are the exact
 * costs of their sets; the greedy equals a from-scratch greedy; its k = 1 is optimal; greedy +
 * swap never has a larger curve area than greedy, and no prefix beats the brute-force optimum. */
TEST(greedy_and_swap_against_brute_force) {
    int cases = 0, worse = 0, prefixes = 0, greedy_opt = 0, swap_opt = 0, improved = 0;
    double worst_ratio_g = 1, worst_ratio_s = 1, max_rel = 0;
    for (int cs = 0; cs < 120; cs++) {
        int multi = cs % 2, nc = 4 + cs % 7, sizes[16], n = 0;
        for (int i = 0; i < nc; i++) {
            sizes[i] = multi ? 1 + (cs + i) % 3 : 1;
            n += sizes[i];
        }
        int d = 3 + cs % 4, off[17], idx[40];
        off[0] = 0;
        for (int i = 0; i < nc; i++) off[i + 1] = off[i] + sizes[i];
        for (int i = 0; i < n; i++) idx[i] = i;   // a permuted column map
        cce_rng pr;
        cce_rng_seed(&pr, 500 + cs);
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(cce_rng_u64(&pr) % (uint64_t)(i + 1)), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        static double cov[40 * 40];
        static float w[8 * 40];
        random_problem(1000 + cs, 60, n, d, 2 + cs % 3, 0.3 + 0.1 * (cs % 5), cov, w);
        cce_components c = {nc, off, idx};
        int order[16], order_s[16], order_r[16];
        double cost[17], cost_s[17], cost_r[17];
        cce_err err = {{0}};
        cce_status st = cce_select_obs(cov, n, &c, w, d, n, 1e-6, 0, order, cost, NULL, NULL, &err);
        CHECK_MSG(st == CCE_OK, "case %d: %s", cs, err.msg);
        st = cce_select_obs(cov, n, &c, w, d, n, 1e-6, 2, order_s, cost_s, NULL, NULL, &err);
        CHECK_MSG(st == CCE_OK, "case %d swap: %s", cs, err.msg);
        greedy_from_scratch(cov, n, &c, w, d, order_r, cost_r);
        double total = cost[nc], area_g = 0, area_s = 0;
        for (int k = 1; k <= nc; k++) {
            double direct, direct_s;
            CHECK_OK(cce_select_cost(cov, n, &c, w, d, n, 1e-6, order, k, &direct, &err));
            CHECK_OK(cce_select_cost(cov, n, &c, w, d, n, 1e-6, order_s, k, &direct_s, &err));
            double e = fabs(cost[k] - direct) / total;
            max_rel = fmax(max_rel, e);
            CHECK_MSG(e < 1e-9, "case %d k %d: greedy curve %.12g vs direct %.12g", cs, k, cost[k], direct);
            CHECK_MSG(fabs(cost_s[k] - direct_s) < 1e-9 * total, "case %d k %d: swap curve %.12g vs %.12g", cs, k,
                      cost_s[k], direct_s);
            CHECK_MSG(fabs(cost_r[k] - direct) < 1e-9 * total, "case %d k %d: from-scratch greedy %.12g vs %.12g "
                      "(order %d vs %d)", cs, k, cost_r[k], direct, order_r[k - 1], order[k - 1]);
            double opt = brute_best(cov, n, &c, w, d, k, NULL);
            CHECK(direct >= opt - 1e-9 * total && direct_s >= opt - 1e-9 * total);
            area_g += direct;
            area_s += direct_s;
            if (k == 1) CHECK_MSG(direct <= opt + 1e-9 * total, "case %d: first step %.12g not optimal %.12g", cs,
                                  direct, opt);
            if (k < nc) {
                prefixes++;
                greedy_opt += direct <= opt + 1e-9 * total;
                swap_opt += direct_s <= opt + 1e-9 * total;
                improved += direct_s < direct - 1e-9 * total;
                worse += direct_s > direct + 1e-9 * total;
                if (opt > 1e-9 * total) {
                    worst_ratio_g = fmax(worst_ratio_g, direct / opt);
                    worst_ratio_s = fmax(worst_ratio_s, direct_s / opt);
                }
            }
        }
        CHECK_MSG(area_s <= area_g + 1e-9 * total, "case %d: swap area %.12g above greedy's %.12g", cs, area_s, area_g);
        cases += area_s < area_g - 1e-9 * total;
    }
    printf("  120 cases, %d proper prefixes: greedy optimal on %d, greedy+swap on %d (swap lowered %d prefixes, "
           "raised %d; lowered the area of %d cases); worst cost/optimum greedy %.3f, greedy+swap %.3f; curve vs "
           "direct max rel %.2g\n", prefixes, greedy_opt, swap_opt, improved, worse, cases, worst_ratio_g,
           worst_ratio_s, max_rel);
    CHECK(cases > 0 && improved > 0);   // the swap pass does something on these cases
}

/* Enough components for several flushes and compactions of the blocked state: the curve is the
 * exact cost of its prefixes all along, single columns and blocks of 3. */
TEST(blocked_path_matches_direct_costs) {
    for (int multi = 0; multi < 2; multi++) {
        int n = multi ? 150 : 220, nc = multi ? 50 : 220, d = 12;
        int *off = malloc(sizeof(int) * (size_t)(nc + 1)), *idx = malloc(sizeof(int) * (size_t)n);
        for (int i = 0; i <= nc; i++) off[i] = multi ? 3 * i : i;
        for (int i = 0; i < n; i++) idx[i] = (i * 7) % n;   // 7 is coprime with 150 and 220
        double *cov = malloc(sizeof(double) * (size_t)n * n);
        float *w = malloc(sizeof(float) * (size_t)d * n);
        random_problem(77 + multi, 400, n, d, 12, 0.5, cov, w);
        int *order = malloc(sizeof(int) * (size_t)nc);
        double *cost = malloc(sizeof(double) * (size_t)(nc + 1));
        cce_components c = {nc, off, idx};
        cce_err err = {{0}};
        double t0 = cce_now();
        cce_status st = cce_select_obs(cov, n, &c, w, d, n, 1e-6, 0, order, cost, NULL, NULL, &err);
        double t1 = cce_now();
        CHECK_MSG(st == CCE_OK, "%s", err.msg);
        int ks[] = {1, 2, 21, 22, 40, 63, 64, 65, 66, 100, 129, 130, 160, 199, 219, 220};
        double md = 0;
        int seen[220] = {0};
        for (int i = 0; i < nc; i++) seen[order[i]]++;
        for (int i = 0; i < nc; i++) CHECK_EQ_INT(seen[i], 1);
        for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
            int k = ks[q];
            if (k > nc) continue;
            double direct;
            CHECK_OK(cce_select_cost(cov, n, &c, w, d, n, 1e-6, order, k, &direct, &err));
            md = fmax(md, fabs(direct - cost[k]) / cost[nc]);
            CHECK_MSG(fabs(direct - cost[k]) <= 1e-9 * cost[nc], "%s k %d: curve %.12g direct %.12g",
                      multi ? "blocks" : "columns", k, cost[k], direct);
        }
        for (int k = 1; k <= nc; k++) CHECK(cost[k] >= cost[k - 1]);
        printf("  %s: n %d, %d components in %.1f ms; curve vs direct Schur cost max rel %.2g\n",
               multi ? "blocks of 3" : "single columns", n, nc, (t1 - t0) * 1e3, md);
        free(off); free(idx); free(cov); free(w); free(order); free(cost);
    }
}

/* Exactly duplicated columns make H singular: the ridge carries it; a duplicate goes first at ~0. */
TEST(rank_deficient_covariance) {
    enum { R = 200, N = 8, D = 5 };
    static double x[R * N], cov[N * N];
    cce_rng r;
    cce_rng_seed(&r, 9);
    for (int t = 0; t < R; t++)
        for (int j = 0; j < N; j++) x[t * N + j] = cce_rng_normal(&r);
    for (int t = 0; t < R; t++) {
        x[t * N + 5] = x[t * N + 2];                       // duplicate
        x[t * N + 7] = 2 * x[t * N + 1] - x[t * N + 3];    // linear combination
    }
    covariance(x, R, N, cov);
    float w[D * N];
    for (int i = 0; i < D * N; i++) w[i] = cce_rng_normal(&r);
    int off[N + 1], idx[N], order[N];
    for (int i = 0; i <= N; i++) off[i] = i;
    for (int i = 0; i < N; i++) idx[i] = i;
    cce_components c = {N, off, idx};
    double cost[N + 1];
    cce_err err = {{0}};
    CHECK_OK(cce_select_obs(cov, N, &c, w, D, N, 1e-6, 1, order, cost, NULL, NULL, &err));
    double md = 0;
    for (int k = 1; k <= N; k++) {
        double direct;
        CHECK_OK(cce_select_cost(cov, N, &c, w, D, N, 1e-6, order, k, &direct, &err));
        CHECK(isfinite(cost[k]));
        md = fmax(md, fabs(direct - cost[k]) / cost[N]);
    }
    printf("  order %d %d %d ...; cost[1] %.3g cost[2] %.3g cost[3] %.3g of %.3g; max rel vs direct %.2g\n", order[0],
           order[1], order[2], cost[1], cost[2], cost[3], cost[N], md);
    CHECK(md < 1e-9);
    // the first two removals are free: one of {2, 5} and one of {1, 3, 7}
    int dup = 0, comb = 0;
    for (int k = 0; k < 2; k++) {
        dup += order[k] == 2 || order[k] == 5;
        comb += order[k] == 1 || order[k] == 3 || order[k] == 7;
    }
    CHECK(dup == 1 && comb == 1);
    CHECK(cost[2] < 1e-5 * cost[N]);
    // a zero covariance: every cost is 0, no failure
    static double zero[N * N];
    CHECK_OK(cce_select_obs(zero, N, &c, w, D, N, 1e-6, 0, order, cost, NULL, NULL, &err));
    CHECK(cost[N] < 1e-20);
}

static int stop_after(void *user) { return --*(int *)user < 0; }

TEST(errors_and_cancel) {
    double cov[4] = {1, 0, 0, 1}, cost[3];
    float w[2] = {1, 1};
    int order[2], idx[2] = {0, 1}, off[3] = {0, 1, 2};
    cce_components c = {2, off, idx};
    cce_err err = {{0}};
    int dupidx[2] = {1, 1};
    cce_components d = {2, off, dupidx};
    CHECK_EQ_INT(cce_select_obs(cov, 2, &d, w, 1, 2, 1e-6, 0, order, cost, NULL, NULL, &err), CCE_EINVAL);
    CHECK(strstr(err.msg, "two components") != NULL);
    int bad[2] = {0, 2};
    cce_components b = {2, off, bad};
    CHECK_EQ_INT(cce_select_obs(cov, 2, &b, w, 1, 2, 1e-6, 0, order, cost, NULL, NULL, &err), CCE_EINVAL);
    CHECK(strstr(err.msg, "out of range") != NULL);
    int empty_off[3] = {0, 1, 1};
    cce_components e = {2, empty_off, idx};
    CHECK_EQ_INT(cce_select_obs(cov, 2, &e, w, 1, 2, 1e-6, 0, order, cost, NULL, NULL, &err), CCE_EINVAL);
    CHECK_EQ_INT(cce_select_obs(cov, 2, &c, w, 1, 2, 0.0, 0, order, cost, NULL, NULL, &err), CCE_EINVAL);
    CHECK_EQ_INT(cce_select_obs(cov, 2, &c, w, 1, 1, 1e-6, 0, order, cost, NULL, NULL, &err), CCE_EINVAL);
    int rm[2] = {0, 0};
    double v;
    CHECK_EQ_INT(cce_select_cost(cov, 2, &c, w, 1, 2, 1e-6, rm, 2, &v, &err), CCE_EINVAL);
    int budget = 1;
    CHECK_EQ_INT(cce_select_obs(cov, 2, &c, w, 1, 2, 1e-6, 0, order, cost, stop_after, &budget, &err), CCE_ECANCEL);
    CHECK(strstr(err.msg, "cancel") != NULL);
    // no components: cost[0] = 0
    int off0[1] = {0};
    cce_components none = {0, off0, idx};
    CHECK_OK(cce_select_obs(cov, 2, &none, w, 1, 2, 1e-6, 0, order, cost, NULL, NULL, &err));
    CHECK(cost[0] == 0);
    cce_curve cv;
    CHECK_OK(cce_curve_alloc(&cv, 5, 1, &err));
    CHECK(cv.order && cv.cost[5] == 0 && cv.params[5] == 0);
    cce_curve_free(&cv);
    CHECK(cv.cost == NULL);
    CHECK_STR(cce_curve_name(CCE_CURVE_DROP_BLOCK), "drop_block");
    CHECK_STR(cce_curve_name(cce_curve_rank_of(6)), "rank_w2");
}

int main(void) {
    RUN(counterexample_removes_the_cancelling_pair_first);
    RUN(greedy_and_swap_against_brute_force);
    RUN(blocked_path_matches_direct_costs);
    RUN(rank_deficient_covariance);
    RUN(errors_and_cancel);
    return harness_done();
}
