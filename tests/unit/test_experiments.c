/*
 * test_experiments.c — the experiment drivers: the character noise (rate, nesting, case, the
 * bytes it leaves alone), the Pareto frontier, the TSV reader, classification scores against a
 * direct log-likelihood from the reference forward pass, and small compare / robustness runs on
 * stories260K whose numbers are checked against the evaluation module called directly.
 *
 * Tolerances: classification log-likelihoods, batched forward vs reference, 1e-3 absolute on
 * sums of ~10 token log-probabilities (measured ~1e-5); the noise rate within 5 binomial
 * standard deviations.
 */
#include "harness.h"
#include "experiments.h"
#include "eval.h"
#include "forward.h"
#include "model.h"
#include "plan.h"
#include "tokenizer.h"
#include "util.h"

static cce_model *M;
static cce_tokenizer *TOK;

static int setup(void) {
    if (M) return 1;
    const char *mp = harness_data("llama2c/stories260K.bin"), *tp = harness_data("llama2c/tok512.bin");
    if (!harness_have(mp) || !harness_have(tp)) return 0;
    cce_err err;
    cce_open_opts oo = {.tokenizer_path = tp};
    return cce_model_open(mp, &oo, &M, &TOK, &err) == CCE_OK;
}

static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

TEST(perturb_rate_case_and_nesting) {
    enum { N = 200000 };
    char *text = malloc(N), *a = malloc(N), *b = malloc(N);
    cce_rng r;
    cce_rng_seed(&r, 3);
    const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,\n'0123456789\xc3\xa9";
    size_t letters = 0;
    for (int i = 0; i < N; i++) {
        text[i] = alphabet[cce_rng_u64(&r) % (sizeof alphabet - 1)];
        letters += is_letter(text[i]);
    }
    CHECK_EQ_INT(cce_xp_perturb(text, N, 0.0, 9, a), 0);
    CHECK(!memcmp(a, text, N));
    size_t c1 = cce_xp_perturb(text, N, 0.1, 9, a), c3 = cce_xp_perturb(text, N, 0.3, 9, b);
    double sd = sqrt(letters * 0.1 * 0.9);
    CHECK_MSG(fabs((double)c1 - 0.1 * letters) < 5 * sd, "changed %zu of %zu letters at p = 0.1", c1, letters);
    CHECK(c3 > c1);
    size_t diff = 0;
    for (int i = 0; i < N; i++) {
        if (!is_letter(text[i])) {
            CHECK(a[i] == text[i] && b[i] == text[i]);   // every other byte untouched
            continue;
        }
        int lower = text[i] >= 'a';
        CHECK(is_letter(a[i]) && (a[i] >= 'a') == lower);   // same case
        if (a[i] != text[i]) {
            diff++;
            CHECK(b[i] == a[i]);   // nested: changed at 0.1 means changed the same way at 0.3
        }
    }
    CHECK_EQ_INT(diff, c1);   // a change is always to another letter
    CHECK_EQ_INT(cce_xp_perturb(text, N, 1.0, 9, a), letters);
    cce_xp_perturb(text, N, 0.3, 9, a);
    CHECK(!memcmp(a, b, N));   // deterministic
    cce_xp_perturb(text, N, 0.3, 10, a);
    CHECK(memcmp(a, b, N));    // the seed matters
    free(text); free(a); free(b);
}

TEST(pareto_frontier) {
    double x[6] = {0.1, 0.2, 0.2, 0.3, 0.05, 0.3};
    double y[6] = {5.0, 6.0, 7.0, 6.0, 5.5, 6.0};
    int p[6];
    cce_xp_pareto(x, y, 6, p);
    // (0.1,5) frontier; (0.2,6) dominated by (0.3,6); (0.2,7) dominated; (0.3,6) twice: both on it;
    // (0.05,5.5) dominated by (0.1,5)
    int want[6] = {1, 0, 0, 1, 0, 1};
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(p[i], want[i]);
}

TEST(tsv_reader) {
    const char *labels[2] = {"negative", "positive"};
    const char *t = "text\tlabel\nit 's good .\t1\r\nbad , bad\t0\n\nmeh\tnegative\n";
    cce_xp_example *ex = NULL;
    int n = 0;
    cce_err err = {{0}};
    CHECK_OK(cce_xp_read_tsv(t, strlen(t), "t.tsv", labels, 2, &ex, &n, &err));
    CHECK_EQ_INT(n, 3);
    CHECK_STR(ex[0].text, "it 's good .");
    CHECK_EQ_INT(ex[0].label, 1);
    CHECK_STR(ex[1].text, "bad , bad");
    CHECK_EQ_INT(ex[2].label, 0);
    cce_xp_examples_free(ex, n);
    const char *bad = "a\t0\nb\t7\n";
    CHECK_EQ_INT(cce_xp_read_tsv(bad, strlen(bad), "b.tsv", labels, 2, &ex, &n, &err), CCE_EFORMAT);
    CHECK(strstr(err.msg, "b.tsv: line 2"));
    const char *none = "text\tlabel\n";
    CHECK_EQ_INT(cce_xp_read_tsv(none, strlen(none), "c.tsv", labels, 2, &ex, &n, &err), CCE_EFORMAT);
}

/* log p(cont | ctx) directly: reference forward over BOS+ctx+cont, log-softmax at each continuation token. */
static double direct_loglik(const char *ctx, const char *full) {
    cce_err err;
    int *ic = NULL, *ifl = NULL;
    size_t nc = 0, nf = 0;
    cce_tokenizer_encode(TOK, ctx, strlen(ctx), 1, &ic, &nc, &err);
    cce_tokenizer_encode(TOK, full, strlen(full), 1, &ifl, &nf, &err);
    size_t c = 0;
    while (c < nc && c < nf && ic[c] == ifl[c]) c++;
    int V = M->cfg.vocab_size;
    float *lg = malloc(nf * V * sizeof(float));
    cce_ref_forward(M, ifl, (int)nf, lg, NULL, NULL, &err);
    double sum = 0;
    for (size_t t = c; t < nf; t++) {
        const float *z = lg + (t - 1) * V;
        double mx = z[0], se = 0;
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++) se += exp(z[v] - mx);
        sum += z[ifl[t]] - mx - log(se);
    }
    free(lg);
    cce_free(ic);
    cce_free(ifl);
    return sum;
}

TEST(classify_scores_are_likelihoods) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    const char *labels[2] = {"sad", "happy"};
    cce_xp_example ex[3] = {{"The girl lost her toy and cried.", 0}, {"The boy got a big red ball and smiled.", 1},
                            {"Lily played in the park with her friend.", 1}};
    cce_xp_classify_result res;
    cce_err err = {{0}};
    const char *templ = "{text} She was {label}.";
    CHECK_OK(cce_xp_classify(M, TOK, ex, 3, labels, 2, templ, NULL, NULL, &res, &err));
    double worst = 0;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) {
            char ctx[256], full[256];
            snprintf(ctx, sizeof ctx, "%s She was ", ex[i].text);
            snprintf(full, sizeof full, "%s She was %s.", ex[i].text, labels[k]);
            // the context is cut at {label}: "... She was " (with the space), continuation "sad."
            double want = direct_loglik(ctx, full);
            worst = fmax(worst, fabs(res.score[i * 2 + k] - want));
            CHECK(res.score[i * 2 + k] < 0);
        }
    printf("  scores vs reference forward: max difference %.3g; accuracy %.3f\n", worst, res.accuracy);
    CHECK(worst < 1e-3);
    int sum = 0;
    for (int q = 0; q < 4; q++) sum += res.confusion[q];
    CHECK_EQ_INT(sum, 3);
    CHECK_EQ_INT(res.majority, 1);
    CHECK_NEAR(res.majority_accuracy, 2.0 / 3, 1e-12);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(res.pred[i], res.score[i * 2 + 1] > res.score[i * 2] ? 1 : 0);
    cce_xp_classify_free(&res);
    /* without {label}: " " + label appended */
    CHECK_OK(cce_xp_classify(M, TOK, ex, 1, labels, 2, "{text} She was", NULL, NULL, &res, &err));
    CHECK_NEAR(res.score[1], direct_loglik("The girl lost her toy and cried. She was", "The girl lost her toy and cried. She was happy"), 1e-3);
    cce_xp_classify_free(&res);
}

static int count_rows(void *user, const char *phase, long done, long total) {
    (void)phase; (void)done; (void)total;
    (*(long *)user)++;
    return 0;
}

TEST(compare_rows_match_direct_evaluation) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    const char *cp = harness_data("text/train/tinystories_v1_train_head.txt"), *ep = harness_data("text/tinystories_valid_head.txt");
    if (!harness_have(cp) || !harness_have(ep)) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    char *ct = NULL, *et = NULL;
    size_t cl = 0, el = 0;
    CHECK_OK(cce_read_file(cp, 1 << 24, &ct, &cl, &err));
    CHECK_OK(cce_read_file(ep, 1 << 24, &et, &el, &err));
    int *cid = NULL, *eid = NULL;
    size_t cn = 0, en = 0;
    CHECK_OK(cce_text_tokens(TOK, ct, cl > 60000 ? 60000 : cl, &cid, &cn, &err));
    CHECK_OK(cce_text_tokens(TOK, et, el > 30000 ? 30000 : el, &eid, &en, &err));
    cce_xp_setup su;
    cce_xp_setup_default(&su);
    su.model = M;
    su.calib_ids = cid;
    su.n_calib = cn;
    su.calib_tokens = 512;
    su.seq_len = 64;
    su.n_evals = 1;
    su.evals[0] = (cce_xp_stream){eid, en};
    su.eval_tokens = 4096;
    su.eval_seq_len = 128;
    su.decode_tokens = 16;
    su.decode_reps = 1;
    long calls = 0;
    su.progress = count_rows;
    su.user = &calls;
    CHECK_OK(cce_model_id_of(M, &su.model_id, &err));
    const char *methods[3] = {"magnitude", "shortgpt", "cce"};
    const double targets[2] = {0.1, 0.25};
    cce_xp_row *rows = NULL;
    int n = 0;
    cce_status s = cce_xp_compare(&su, methods, 3, targets, 2, NULL, NULL, &rows, &n, &err);
    CHECK_MSG(s == CCE_OK, "%s", err.msg);
    CHECK_EQ_INT(n, 1 + 3 * 2);
    CHECK(calls > 0);
    cce_eval_result d;
    CHECK_OK(cce_eval_ids(M, eid, 4096, 128, 0, NULL, NULL, &d, &err));
    CHECK_STR(rows[0].method, "dense");
    CHECK(rows[0].eval[0].ppl == d.ppl && rows[0].eval[0].accuracy == d.accuracy);
    CHECK_EQ_INT(rows[0].params, cce_model_params(M).non_embedding);
    CHECK(rows[0].tokens_per_s > 0);
    for (int i = 1; i < n; i++) {
        printf("  %-9s %.0f%%: removed %.2f%%, ppl %.4f\n", rows[i].method, 100 * rows[i].target, 100 * rows[i].removed_fraction,
               rows[i].eval[0].ppl);
        CHECK_STR(rows[i].method, methods[(i - 1) / 2]);
        if (strcmp(rows[i].method, "cce")) CHECK(rows[i].removed_fraction >= rows[i].target);
        CHECK(rows[i].eval[0].ppl > d.ppl * 0.9 && isfinite(rows[i].eval[0].ppl));
        CHECK_EQ_INT(rows[i].eval[0].tokens, 4096);
    }
    /* the same plan, made again and encoded, gives the same perplexity (determinism) */
    cce_plan p;
    CHECK_OK(cce_xp_plan(&su, "magnitude", 0.1, NULL, NULL, &p, &err));
    CHECK_NEAR(p.removed_fraction, rows[1].removed_fraction, 1e-12);
    cce_plan_free(&p);
    /* robustness at noise 0 is the plain evaluation */
    double lv[2] = {0.0, 0.2};
    cce_xp_robust_row *rr = NULL;
    CHECK_OK(cce_xp_robustness(M, M, TOK, et, 20000, lv, 2, 1, 128, 2048, NULL, NULL, &rr, &err));
    cce_eval_result z;
    CHECK_OK(cce_eval_text(M, TOK, et, 20000, 128, 2048, 0, NULL, NULL, &z, &err));
    CHECK(rr[0].dense.ppl == z.ppl && rr[0].compressed.ppl == z.ppl);
    CHECK_EQ_INT(rr[0].changed, 0);
    CHECK(rr[1].changed > 0 && rr[1].dense.ppl > z.ppl);
    cce_free(rr);
    cce_free(rows);
    cce_free(cid);
    cce_free(eid);
    cce_free(ct);
    cce_free(et);
}

TEST(decode_speed_and_unknown_method) {
    if (!setup()) { printf("  (data missing: skipped)\n"); return; }
    cce_err err = {{0}};
    double tps = 0;
    CHECK_OK(cce_decode_speed(M, 32, 2, &tps, &err));
    CHECK(tps > 0);
    CHECK(cce_xp_method_known("flap") && cce_xp_method_known("cce") && cce_xp_method_known("cce-none"));
    CHECK(!cce_xp_method_known("slicegpt"));
}

int main(void) {
    RUN(perturb_rate_case_and_nesting);
    RUN(pareto_frontier);
    RUN(tsv_reader);
    RUN(classify_scores_are_likelihoods);
    RUN(compare_rows_match_direct_evaluation);
    RUN(decode_speed_and_unknown_method);
    cce_tokenizer_free(TOK);
    cce_model_free(M);
    return harness_done();
}
