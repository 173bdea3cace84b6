/*
 * test_stats.c — streaming moments against the two-pass reference covariance; histograms
 * against direct counting.
 */
#include "harness.h"
#include "stats.h"
#include "linalg.h"
#include "util.h"

enum { ROWS = 1300, DIM = 17 };

/* Rows with a large common offset and correlated columns: the case where a one-pass
 * E[xx^T] - mean mean^T in float would lose digits. */
static void make_data(float *x, uint64_t seed) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (int i = 0; i < ROWS; i++) {
        float common = cce_rng_normal(&r);
        for (int j = 0; j < DIM; j++)
            x[i * DIM + j] = 100.0f + (float)j + 0.5f * common + cce_rng_normal(&r) * (1.0f + 0.1f * j);
    }
}

TEST(covariance_matches_two_pass) {
    static float x[ROWS * DIM];
    make_data(x, 42);
    cce_moments m;
    cce_err err;
    CHECK_OK(cce_moments_init(&m, DIM, &err));
    // uneven batches, including one larger than the internal chunk
    int cuts[] = {0, 7, 300, 301, 1000, ROWS};
    for (int k = 0; k + 1 < (int)(sizeof cuts / sizeof cuts[0]); k++)
        CHECK_OK(cce_moments_add(&m, x + (size_t)cuts[k] * DIM, cuts[k + 1] - cuts[k], DIM, &err));
    CHECK_EQ_INT(m.count, ROWS);
    static double mean[DIM], cov[DIM * DIM], rmean[DIM], rcov[DIM * DIM], m2[DIM * DIM];
    cce_moments_mean(&m, mean);
    cce_moments_cov(&m, cov);
    cce_moments_second(&m, m2);
    cce_ref_covariance(x, ROWS, DIM, DIM, rmean, rcov);
    double dm = 0, dc = 0, d2 = 0;
    for (int j = 0; j < DIM; j++) dm = fmax(dm, fabs(mean[j] - rmean[j]));
    for (int i = 0; i < DIM; i++)
        for (int j = 0; j < DIM; j++) {
            dc = fmax(dc, fabs(cov[i * DIM + j] - rcov[i * DIM + j]));
            d2 = fmax(d2, fabs(m2[i * DIM + j] - (rcov[i * DIM + j] + rmean[i] * rmean[j])) / (rmean[i] * rmean[j]));
        }
    printf("  mean max diff %.3g, covariance max diff %.3g (var ~1..8), second moment rel diff %.3g\n", dm, dc, d2);
    CHECK(dm < 1e-5);
    CHECK(dc < 1e-4);
    CHECK(d2 < 1e-7);
    CHECK(cov[0] > 1.0 && cov[0] < 1.5);   // 1 + 0.25: the planted common factor is seen
    cce_moments_reset(&m);
    CHECK_EQ_INT(m.count, 0);
    CHECK_OK(cce_moments_add(&m, x, 10, DIM, &err));
    CHECK_EQ_INT(m.count, 10);
    CHECK_EQ_INT(cce_moments_add(&m, x, 10, DIM - 1, &err), CCE_EINVAL);
    cce_moments_free(&m);
    CHECK_EQ_INT(cce_moments_init(&m, 0, &err), CCE_EINVAL);
}

TEST(histogram_counts_match_direct) {
    enum { R = 200, C = 30 };
    static float x[R * C];
    cce_rng r;
    cce_rng_seed(&r, 7);
    for (int i = 0; i < R * C; i++) x[i] = cce_rng_normal(&r);
    x[5] = 50.0f;     // outliers beyond the robust range
    x[6] = -60.0f;
    cce_hist h;
    cce_err err;
    CHECK_OK(cce_hist_init(&h, 40, &err));
    CHECK_OK(cce_hist_add(&h, x, 100, C, C, &err));        // first batch fixes the edges
    CHECK(h.ready && h.hi > 3.0f && h.hi < 8.0f && h.lo == -h.hi);
    CHECK_OK(cce_hist_add(&h, x + 100 * C, 100, C, C, &err));
    CHECK_EQ_INT(h.total, R * C);
    uint64_t sum = 0;
    for (int i = 0; i < h.n_bins + 2; i++) sum += h.counts[i];
    CHECK_EQ_INT(sum, R * C);
    CHECK(h.counts[0] >= 1 && h.counts[h.n_bins + 1] >= 1);
    CHECK_NEAR(h.min, -60.0, 0);
    CHECK_NEAR(h.max, 50.0, 0);
    // direct count of every bin
    for (int b = 0; b < h.n_bins; b++) {
        float lo = cce_hist_edge(&h, b), hi = cce_hist_edge(&h, b + 1);
        uint64_t n = 0;
        for (int i = 0; i < R * C; i++) n += x[i] >= lo && x[i] < hi;
        // values exactly on an edge may fall either side by rounding: allow 1
        CHECK_MSG(llabs((long long)n - (long long)h.counts[b + 1]) <= 1, "bin %d: %llu vs %llu", b,
                  (unsigned long long)n, (unsigned long long)h.counts[b + 1]);
    }
    cce_hist h2;
    CHECK_OK(cce_hist_init_edges(&h2, &h, &err));
    CHECK(h2.ready && h2.hi == h.hi);
    cce_hist_free(&h2);
    cce_hist_free(&h);
    CHECK_EQ_INT(cce_hist_init(&h, 0, &err), CCE_EINVAL);
}

TEST(histogram_range_is_robust_quantile) {
    // |x| = 1..10000 in a shuffled order with random signs: the 99.9th percentile is 9990
    enum { N = 10000 };
    static float x[N];
    cce_rng r;
    cce_rng_seed(&r, 13);
    for (int i = 0; i < N; i++) x[i] = (float)(i + 1) * (cce_rng_u64(&r) & 1 ? 1.0f : -1.0f);
    for (int i = N - 1; i > 0; i--) {
        int k = (int)(cce_rng_u64(&r) % (uint64_t)(i + 1));
        float t = x[i]; x[i] = x[k]; x[k] = t;
    }
    cce_hist h;
    cce_err err;
    CHECK_OK(cce_hist_init(&h, 10, &err));
    CHECK_OK(cce_hist_add(&h, x, 100, 100, 100, &err));
    CHECK_NEAR(h.hi, 1.5 * 9990, 1e-3);
    cce_hist_free(&h);
    // many ties: 2/3 of the values equal
    for (int i = 0; i < N; i++) x[i] = i % 3 ? 2.0f : (float)(i % 7);
    CHECK_OK(cce_hist_init(&h, 10, &err));
    CHECK_OK(cce_hist_add(&h, x, 1, N, N, &err));
    CHECK_NEAR(h.hi, 1.5 * 6, 1e-6);
    cce_hist_free(&h);
}

TEST(histogram_constant_data) {
    float z[12] = {0};
    cce_hist h;
    cce_err err;
    CHECK_OK(cce_hist_init(&h, 8, &err));
    CHECK_OK(cce_hist_add(&h, z, 3, 4, 4, &err));
    CHECK(h.hi > 0);
    CHECK_EQ_INT(h.counts[1 + 4], 12);   // 0 sits at the left edge of the middle bin
    cce_hist_free(&h);
}

int main(void) {
    RUN(covariance_matches_two_pass);
    RUN(histogram_counts_match_direct);
    RUN(histogram_range_is_robust_quantile);
    RUN(histogram_constant_data);
    return harness_done();
}
