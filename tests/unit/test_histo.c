/*
 * test_histo.c — whole-model histograms with a reference's bin edges (include/histo.h):
 *  - the original model over the analysis's windows reproduces the analysis's counts exactly;
 *  - a compressed model (a plan with removed heads and neurons, and a dropped block) has the
 *    same edges, fewer values at the pruned sites, none at a dropped block's inner sites, and a
 *    positive distance from the original where the plan changed something;
 *  - missing references leave sites empty; bad options and cancels are refused cleanly.
 * On stories260K with seeded random token ids (no tokenizer needed).
 */
#include "harness.h"
#include "analysis.h"
#include "encode.h"
#include "histo.h"
#include "plan.h"
#include "util.h"

static int *random_ids(size_t n, int vocab, uint64_t seed) {
    int *ids = cce_alloc(n, sizeof(int));
    cce_rng r;
    cce_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) ids[i] = (int)(cce_rng_u64(&r) % (uint64_t)vocab);
    return ids;
}

static int stop_at_two(void *user, int done, int total) {
    (void)user;
    (void)total;
    return done >= 2;
}

TEST(original_reproduces_analysis_and_compressed_differs) {
    const char *mp = harness_data("llama2c/stories260K.bin");
    if (!harness_have(mp)) {
        printf("  (data missing: skipped)\n");
        return;
    }
    cce_err err = {{0}};
    cce_model *m = NULL;
    cce_open_opts oo = {.no_tokenizer = 1};
    CHECK_OK(cce_model_open(mp, &oo, &m, NULL, &err));
    size_t n = 64 * 64;
    int *ids = random_ids(n, m->cfg.vocab_size, 3);
    cce_analysis_opts ao;
    cce_analysis_opts_default(&ao);
    ao.tokens = 1024;
    ao.seq_len = 64;
    ao.seed = 9;
    cce_calib_source src = {.ids = ids, .n_ids = n};
    cce_analysis *job = NULL;
    CHECK_OK(cce_analysis_new(m, &src, &ao, &job, &err));
    CHECK_MSG(cce_analysis_run(job, &err) == CCE_OK, "%s", err.msg);
    int L = m->cfg.n_layers;
    const cce_block_result *ref[16];
    for (int l = 0; l < L; l++) ref[l] = cce_analysis_block(job, l);
    cce_calib_opts co = {ao.tokens, ao.seq_len, ao.seed, 0};

    /* the original: the analysis's counts, bin for bin, at every site */
    cce_histo h;
    CHECK_MSG(cce_histo_run(m, ids, n, &co, ref, NULL, NULL, &h, &err) == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(h.n_layers, L);
    for (int l = 0; l < L; l++)
        for (int s = 0; s < CCE_TAP_COUNT; s++) {
            const cce_hist *a = &ref[l]->hist[s], *b = cce_histo_get(&h, l, s);
            CHECK_MSG(b != NULL, "block %d site %d empty", l, s);
            CHECK(a->n_bins == b->n_bins && a->lo == b->lo && a->hi == b->hi);
            CHECK_MSG(a->total == b->total, "block %d site %d: %llu values, analysis %llu", l, s,
                      (unsigned long long)b->total, (unsigned long long)a->total);
            CHECK(!memcmp(a->counts, b->counts, (size_t)(a->n_bins + 2) * sizeof(uint64_t)));
            CHECK(cce_hist_tv_distance(a, b) == 0);
        }

    /* a compressed model: 30% removed, block 2 dropped by force */
    cce_plan p;
    CHECK_OK(cce_plan_init(&p, m, &err));
    p.knobs.target = 0.3;
    cce_pin f = {2, CCE_CURVE_DROP_BLOCK, -1};
    p.forces = &f;
    p.n_forces = 1;
    p.calib.seq_len = ao.seq_len;
    p.enc.tokens = 1024;
    CHECK_MSG(cce_plan_build(&p, m, job, &err) == CCE_OK, "%s", err.msg);
    CHECK(p.blocks[2].drop);
    cce_model *c = NULL;
    CHECK_MSG(cce_encode(m, &p, ids, n, NULL, NULL, &c, &err) == CCE_OK, "%s", err.msg);
    cce_histo hc;
    CHECK_MSG(cce_histo_run(c, ids, n, &co, ref, NULL, NULL, &hc, &err) == CCE_OK, "%s", err.msg);
    double changed = 0;
    for (int l = 0; l < L; l++) {
        const cce_block_plan *b = &p.blocks[l];
        for (int s = 0; s < CCE_TAP_COUNT; s++) {
            const cce_hist *x = cce_histo_get(&hc, l, s), *o = cce_histo_get(&h, l, s);
            if (b->drop && s != CCE_TAP_BLOCK_OUT) {
                CHECK_MSG(x == NULL || x->total == 0, "dropped block %d site %d has values", l, s);
                continue;
            }
            CHECK(x != NULL && x->lo == o->lo && x->hi == o->hi && x->n_bins == o->n_bins);
            uint64_t want = o->total;
            if (s == CCE_TAP_HEADS) want = o->total / (uint64_t)m->layers[l].n_heads * (uint64_t)b->n_heads;
            if (s == CCE_TAP_FFN_ACT) want = o->total / (uint64_t)m->layers[l].hidden * (uint64_t)b->hidden;
            CHECK_MSG(x->total == want, "block %d site %d: %llu values, expected %llu", l, s,
                      (unsigned long long)x->total, (unsigned long long)want);
            double d = cce_hist_tv_distance(x, o);
            CHECK(d >= 0 && d <= 1);
            if (s == CCE_TAP_BLOCK_OUT && l >= 2) changed += d;
        }
    }
    CHECK_MSG(changed > 0, "the compressed model's block outputs are distributed like the original's");
    cce_histo_free(&hc);
    cce_histo_free(&h);

    /* references missing: empty sites; cancel; bad seq_len */
    const cce_block_result *partial[16] = {ref[0]};
    CHECK_OK(cce_histo_run(m, ids, n, &co, partial, NULL, NULL, &h, &err));
    CHECK(cce_histo_get(&h, 0, CCE_TAP_FFN_ACT) != NULL);
    CHECK(cce_histo_get(&h, 1, CCE_TAP_FFN_ACT) == NULL);
    CHECK(cce_histo_get(&h, L, 0) == NULL && cce_histo_get(&h, 0, CCE_TAP_COUNT) == NULL);
    cce_histo_free(&h);
    CHECK_EQ_INT(cce_histo_run(m, ids, n, &co, ref, stop_at_two, NULL, &h, &err), CCE_ECANCEL);
    CHECK(h.hist == NULL && h.n_layers == 0);
    cce_calib_opts bad = co;
    bad.seq_len = 0;
    CHECK_EQ_INT(cce_histo_run(m, ids, n, &bad, ref, NULL, NULL, &h, &err), CCE_EINVAL);
    CHECK_EQ_INT(cce_histo_run(m, ids, 10, &co, ref, NULL, NULL, &h, &err), CCE_EINVAL);   // no window
    CHECK(cce_hist_tv_distance(&ref[0]->hist[0], &ref[0]->hist[1]) == -1 ||
          ref[0]->hist[0].lo == ref[0]->hist[1].lo);   // different edges are not compared

    p.forces = NULL;
    p.n_forces = 0;
    cce_plan_free(&p);
    cce_model_free(c);
    cce_analysis_free(job);
    cce_free(ids);
    cce_model_free(m);
}

int main(void) {
    RUN(original_reproduces_analysis_and_compressed_differs);
    return harness_done();
}
