/*
 * cmd_robustness.c — `cce robustness`: character noise on the evaluation text, dense and
 * compressed model side by side (DESIGN §3.11).
 *
 *   cce robustness MODEL --plan PLAN [--calib FILE|DIR] [--eval FILE] [--noise 0.05,0.1,0.2,0.3,0.5]
 *                  [--seed S] [--eval-tokens N] [--eval-seq-len N] [--csv FILE] [--json]
 *
 * The noise (experiments.h: cce_xp_perturb): each ASCII letter is, with probability p, replaced
 * by one of the other 25 letters of its case (seeded, the same positions for both models). Both
 * models are scored on the noisy text by the evaluation protocol; the table shows each one's
 * perplexity, their ratio, and each one's degradation from its own clean perplexity.
 */
#include <stdio.h>
#include <string.h>
#include "cli_xp.h"

#define MAX_LEVELS 32

static void print_json(const char *plan_path, const cce_plan *plan, const cli_text *ev, long seed,
                       const cce_xp_robust_row *rows, int n_levels) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "plan", plan_path);
    cJSON_AddStringToObject(o, "method", plan->method);
    cJSON_AddNumberToObject(o, "removed_fraction", plan->removed_fraction);
    cJSON *e = cJSON_AddObjectToObject(o, "evaluation");
    cJSON_AddStringToObject(e, "path", ev->path);
    cJSON_AddStringToObject(e, "sha256", ev->sha256);
    cJSON_AddNumberToObject(e, "seed", (double)seed);
    cJSON *a = cJSON_AddArrayToObject(o, "rows");
    for (int i = 0; i < n_levels; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "noise", rows[i].noise);
        cJSON_AddNumberToObject(r, "letters_changed", (double)rows[i].changed);
        cJSON_AddItemToObject(r, "dense", cli_xp_eval_json(&rows[i].dense));
        cJSON_AddItemToObject(r, "compressed", cli_xp_eval_json(&rows[i].compressed));
        cJSON_AddNumberToObject(r, "ppl_ratio", rows[i].compressed.ppl / rows[i].dense.ppl);
        cJSON_AddItemToArray(a, r);
    }
    cli_json_print(o);
}

static void print_text(const cce_model *m, const char *plan_path, const cce_plan *plan, const cli_text *ev, long seed,
                       const cce_xp_robust_row *rows, int n_levels, double clean_d, double clean_c) {
    printf("model        %s\nplan         %s (%s, %.2f%% of the non-embedding parameters removed)\n", m->path, plan_path,
           plan->method, 100 * plan->removed_fraction);
    printf("evaluation   %s (sha256 %.12s…), noise seed %ld: each letter replaced by another letter of its case with probability p\n\n",
           ev->path, ev->sha256, seed);
    printf("%6s %9s %9s %9s %10s %10s %11s %10s %9s\n", "noise", "letters", "tokens", "ppl dense", "ppl comp.", "comp/dense",
           "dense/clean", "comp/clean", "acc comp.");
    for (int i = 0; i < n_levels; i++) {
        const cce_xp_robust_row *r = &rows[i];
        printf("%5.0f%% %9zu %9ld %9.4f %10.4f %10.3f", 100 * r->noise, r->changed, r->dense.tokens, r->dense.ppl,
               r->compressed.ppl, r->compressed.ppl / r->dense.ppl);
        if (clean_d > 0) printf(" %11.3f %10.3f", r->dense.ppl / clean_d, r->compressed.ppl / clean_c);
        else printf(" %11s %10s", "-", "-");
        printf(" %9.4f\n", r->compressed.accuracy);
    }
}

static int write_csv(const char *csv, const cce_xp_robust_row *rows, int n_levels) {
    cli_buf b = {0};
    cli_buf_printf(&b, "noise,letters_changed,tokens,ppl_dense,ppl_compressed,ppl_ratio,accuracy_dense,accuracy_compressed\n");
    for (int i = 0; i < n_levels; i++)
        cli_buf_printf(&b, "%g,%zu,%ld,%.6f,%.6f,%.6f,%.6f,%.6f\n", rows[i].noise, rows[i].changed, rows[i].dense.tokens,
                       rows[i].dense.ppl, rows[i].compressed.ppl, rows[i].compressed.ppl / rows[i].dense.ppl,
                       rows[i].dense.accuracy, rows[i].compressed.accuracy);
    int rc = cli_buf_save(&b, csv);
    cli_buf_free(&b);
    return rc;
}

int cmd_robustness(int argc, char **argv) {
    cli_opt opts[] = {
        {"plan", 1, "the compressed model's plan (cce plan, or compare --save-plans)", NULL},
        {"calib", 1, "the plan's calibration text, if not where the plan says", NULL},
        {"eval", 1, "evaluation text (default $CCE_DATA/text/tinystories_valid_head.txt)", NULL},
        {"noise", 1, "noise levels: probability of replacing each letter (default 0,0.05,0.1,0.2,0.3,0.5)", NULL},
        {"seed", 1, "noise seed (default 1)", NULL},
        {"eval-tokens", 1, "evaluate only the first N tokens of each noisy text", NULL},
        {"eval-seq-len", 1, "evaluation window (default min(256, context))", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"json", 0, "one JSON object on stdout", NULL},
        {"csv", 1, "also write the table as CSV to FILE", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    const char *plan_path = cli_get(opts, n_opts, "plan");
    if (!plan_path) return cli_fail("robustness: --plan PLAN is required (make one with cce plan or cce compare --save-plans)");
    double levels[MAX_LEVELS] = {0, 0.05, 0.1, 0.2, 0.3, 0.5};
    int n_levels = 6;
    const char *nl = cli_get(opts, n_opts, "noise");
    if (nl && cli_xp_doubles("noise", nl, 0, 1, levels, MAX_LEVELS, &n_levels)) return 2;
    long seed = 1, max_tokens = 0, seq = 0;
    if (cli_get_long(opts, n_opts, "seed", 0, 1L << 53, &seed) || cli_get_long(opts, n_opts, "eval-tokens", 2, 1L << 40, &max_tokens) ||
        cli_get_long(opts, n_opts, "eval-seq-len", 2, 1 << 20, &seq))
        return 2;
    int json = cli_get(opts, n_opts, "json") != NULL;
    cce_model *m = NULL, *c = NULL;
    cce_tokenizer *tok = NULL;
    cce_plan plan;
    memset(&plan, 0, sizeof plan);
    cli_text ev = {0};
    cce_xp_robust_row *rows = NULL;
    int rc = 1;
    if (cli_open_model(n_pos ? pos[0] : NULL, cli_get(opts, n_opts, "tokenizer"), 1, &m, &tok)) goto done;
    const char *evp = cli_get(opts, n_opts, "eval");
    if (cli_xp_read_text(evp ? evp : cli_default_eval(), NULL, &ev)) goto done;
    if ((rc = cli_open_plan(m, tok, plan_path, cli_get(opts, n_opts, "calib"), &plan, &c))) goto done;
    rc = 1;
    const char *cp = cli_get(opts, n_opts, "calib");
    if (cli_xp_check_disjoint(cp ? cp : plan.calib.path, cp ? NULL : plan.calib.sha256, &ev)) goto done;
    cce_err err = {{0}};
    cce_status s = cce_xp_robustness(m, c, tok, ev.text, ev.len, levels, n_levels, (uint64_t)seed, (int)seq, max_tokens,
                                     cli_xp_progress, NULL, &rows, &err);
    cli_progress_end();
    if (s) {
        rc = cli_xp_fail(s, &err);
        goto done;
    }
    /* each model's clean perplexity, for the degradation columns: the level 0 row when there is one */
    double clean_d = 0, clean_c = 0;
    for (int i = 0; i < n_levels; i++)
        if (rows[i].noise == 0) clean_d = rows[i].dense.ppl, clean_c = rows[i].compressed.ppl;
    if (json) print_json(plan_path, &plan, &ev, seed, rows, n_levels);
    else print_text(m, plan_path, &plan, &ev, seed, rows, n_levels, clean_d, clean_c);
    const char *csv = cli_get(opts, n_opts, "csv");
    if (csv && write_csv(csv, rows, n_levels)) goto done;
    rc = 0;
done:
    cce_free(rows);
    cli_xp_text_free(&ev);
    cce_model_free(c);
    cce_plan_free(&plan);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return rc;
}
