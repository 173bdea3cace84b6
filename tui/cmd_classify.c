/*
 * cmd_classify.c — `cce classify`: zero-shot classification by likelihood (the paper's headline
 * metric, DESIGN §3.11).
 *
 *   cce classify MODEL [--plan PLAN [--calib FILE|DIR]] --tsv FILE [--labels "negative,positive"]
 *                [--template "Review: {text}\nSentiment: {label}"] [--max-examples N]
 *                [--csv FILE] [--json]
 *
 * Each example's score for a label is the log-likelihood of the label's continuation after the
 * prompt (experiments.h: cce_xp_classify); the best label is the prediction. The output gives
 * the accuracy with its binomial standard error beside chance and the majority-class accuracy,
 * and says plainly when the model does no better than those (tiny story models will not), and
 * the confusion table. In the template, {text} is the example, {label} where the label goes
 * (appended after a space when absent); the two-character sequences \n and \t are a newline
 * and a tab.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "cli_xp.h"

#define MAX_LABELS 16

typedef char *label_list[MAX_LABELS];

static void print_json(const cce_model *m, const char *plan_path, const cce_plan *plan, const char *tsv, const cli_text *t,
                       const char *templ, label_list labels, int n_labels, const cce_xp_classify_result *res, double se,
                       double chance, int near) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", m->path);
    if (plan_path) {
        cJSON_AddStringToObject(o, "plan", plan_path);
        cJSON_AddNumberToObject(o, "removed_fraction", plan->removed_fraction);
    }
    cJSON_AddStringToObject(o, "tsv", tsv);
    cJSON_AddStringToObject(o, "sha256", t->sha256);
    cJSON_AddStringToObject(o, "template", templ);
    cJSON *lab = cJSON_AddArrayToObject(o, "labels");
    for (int k = 0; k < n_labels; k++) cJSON_AddItemToArray(lab, cJSON_CreateString(labels[k]));
    cJSON_AddNumberToObject(o, "examples", res->n);
    cJSON_AddNumberToObject(o, "accuracy", res->accuracy);
    cJSON_AddNumberToObject(o, "stderr", se);
    cJSON_AddNumberToObject(o, "chance", chance);
    cJSON_AddNumberToObject(o, "majority_accuracy", res->majority_accuracy);
    cJSON_AddBoolToObject(o, "near_chance", near);
    cJSON_AddNumberToObject(o, "truncated", (double)res->truncated);
    cJSON *cm = cJSON_AddArrayToObject(o, "confusion");
    for (int a = 0; a < n_labels; a++) {
        cJSON *r = cJSON_CreateArray();
        for (int b = 0; b < n_labels; b++) cJSON_AddItemToArray(r, cJSON_CreateNumber(res->confusion[a * n_labels + b]));
        cJSON_AddItemToArray(cm, r);
    }
    cli_json_print(o);
}

static void print_text(const cce_model *m, const char *plan_path, const char *tsv, const cli_text *t, const char *templ,
                       label_list labels, int n_labels, const cce_xp_classify_result *res, double se, double chance,
                       int near) {
    printf("model      %s%s%s\n", m->path, plan_path ? " compressed by " : "", plan_path ? plan_path : "");
    printf("examples   %s: %d (sha256 %.12s…), labels", tsv, res->n, t->sha256);
    for (int k = 0; k < n_labels; k++) printf(" %d=%s", k, labels[k]);
    printf("\ntemplate   \"");
    for (const char *q = templ; *q; q++) {
        if (*q == '\n') printf("\\n");
        else if (*q == '\t') printf("\\t");
        else putchar(*q);
    }
    printf("\"; score = log-likelihood of the label's tokens after the prompt\n\n");
    printf("accuracy   %.4f ± %.4f (%ld of %d)\n", res->accuracy, se, res->correct, res->n);
    printf("chance     %.4f; always '%s' (the majority): %.4f\n", chance, labels[res->majority], res->majority_accuracy);
    if (near)
        printf("verdict    no better than chance or the majority class (within 2 standard errors): this model does not do the task zero-shot\n");
    else
        printf("verdict    above chance and the majority class by more than 2 standard errors\n");
    if (res->truncated) printf("note       %ld prompts were cut at the front to fit the model's context\n", res->truncated);
    printf("\nconfusion (rows: true, columns: predicted)\n%12s", "");
    for (int b = 0; b < n_labels; b++) printf(" %10.10s", labels[b]);
    printf("\n");
    for (int a = 0; a < n_labels; a++) {
        printf("%12.12s", labels[a]);
        for (int b = 0; b < n_labels; b++) printf(" %10d", res->confusion[a * n_labels + b]);
        printf("\n");
    }
}

/* One line per example: true label, prediction, each label's score. Prints the error; 0 or 1. */
static int write_csv(const char *csv, const cce_xp_example *ex, label_list labels, int n_labels,
                     const cce_xp_classify_result *res) {
    cli_buf b = {0};
    cli_buf_printf(&b, "index,label,predicted");
    for (int k = 0; k < n_labels; k++) cli_buf_printf(&b, ",score_%s", labels[k]);
    cli_buf_printf(&b, "\n");
    for (int i = 0; i < res->n; i++) {
        cli_buf_printf(&b, "%d,%d,%d", i, ex[i].label, res->pred[i]);
        for (int k = 0; k < n_labels; k++) cli_buf_printf(&b, ",%.6f", res->score[(size_t)i * n_labels + k]);
        cli_buf_printf(&b, "\n");
    }
    int rc = cli_buf_save(&b, csv);
    cli_buf_free(&b);
    return rc;
}

/* The two-character sequences \n and \t of a template as a newline and a tab, in place. */
static void unescape(char *templ) {
    char *w = templ;
    for (const char *q = templ; *q; q++) {
        if (q[0] == '\\' && (q[1] == 'n' || q[1] == 't')) *w++ = q[1] == 'n' ? '\n' : '\t', q++;
        else *w++ = *q;
    }
    *w = 0;
}

int cmd_classify(int argc, char **argv) {
    cli_opt opts[] = {
        {"tsv", 1, "examples: text<TAB>label lines (label an index into --labels or a label name)", NULL},
        {"labels", 1, "the label verbalisers, comma-separated, in index order (default negative,positive)", NULL},
        {"template", 1, "prompt with {text} and {label} (default \"Review: {text}\\nSentiment: {label}\")", NULL},
        {"max-examples", 1, "use only the first N examples", NULL},
        {"plan", 1, "classify with the compressed model of this plan", NULL},
        {"calib", 1, "with --plan: its calibration text, if not where the plan says", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"json", 0, "one JSON object on stdout", NULL},
        {"csv", 1, "write each example's scores and prediction to FILE", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    const char *tsv = cli_get(opts, n_opts, "tsv");
    if (!tsv) return cli_fail("classify: --tsv FILE is required");
    long max_ex = 0;
    if (cli_get_long(opts, n_opts, "max-examples", 1, 1L << 30, &max_ex)) return 2;
    const char *ll = cli_get(opts, n_opts, "labels");
    char *lbuf = NULL, *labels[MAX_LABELS];
    int n_labels = 0;
    if (cli_xp_words("labels", ll ? ll : "negative,positive", &lbuf, labels, MAX_LABELS, &n_labels)) {
        cce_free(lbuf);
        return 2;
    }
    if (n_labels < 2) {
        cce_free(lbuf);
        return cli_fail("classify: --labels needs at least two labels");
    }
    const char *tp = cli_get(opts, n_opts, "template");
    char *templ = cce_strdup(tp ? tp : "Review: {text}\\nSentiment: {label}");
    if (!templ) {
        cce_free(lbuf);
        return cli_fail("out of memory");
    }
    unescape(templ);
    if (!strstr(templ, "{text}")) {
        cce_free(lbuf);
        cce_free(templ);
        return cli_fail("classify: --template must contain {text}");
    }
    int json = cli_get(opts, n_opts, "json") != NULL;
    cce_model *m = NULL, *c = NULL;
    cce_tokenizer *tok = NULL;
    cce_plan plan;
    memset(&plan, 0, sizeof plan);
    cli_text t = {0};
    cce_xp_example *ex = NULL;
    int n_ex = 0, rc = 1;
    cce_xp_classify_result res;
    memset(&res, 0, sizeof res);
    cce_err err = {{0}};
    const char *plan_path = cli_get(opts, n_opts, "plan");
    if (cli_open_model(n_pos ? pos[0] : NULL, cli_get(opts, n_opts, "tokenizer"), 1, &m, &tok)) goto done;
    if (cli_xp_read_text(tsv, NULL, &t)) goto done;
    if (cce_xp_read_tsv(t.text, t.len, tsv, (const char *const *)labels, n_labels, &ex, &n_ex, &err)) {
        rc = cli_fail_err(&err);
        goto done;
    }
    int n_use = max_ex > 0 && max_ex < n_ex ? (int)max_ex : n_ex;
    if (plan_path) {
        if ((rc = cli_open_plan(m, tok, plan_path, cli_get(opts, n_opts, "calib"), &plan, &c))) goto done;
        rc = 1;
    }
    cce_status s = cce_xp_classify(c ? c : m, tok, ex, n_use, (const char *const *)labels, n_labels, templ, cli_xp_progress, NULL,
                                   &res, &err);
    cli_progress_end();
    if (s) {
        rc = cli_xp_fail(s, &err);
        goto done;
    }
    double se = sqrt(res.accuracy * (1 - res.accuracy) / res.n), chance = 1.0 / n_labels;
    double best_trivial = res.majority_accuracy > chance ? res.majority_accuracy : chance;
    int near = res.accuracy < best_trivial + 2 * se;
    if (json) print_json(m, plan_path, &plan, tsv, &t, templ, labels, n_labels, &res, se, chance, near);
    else print_text(m, plan_path, tsv, &t, templ, labels, n_labels, &res, se, chance, near);
    const char *csv = cli_get(opts, n_opts, "csv");
    if (csv && write_csv(csv, ex, labels, n_labels, &res)) goto done;
    rc = 0;
done:
    cce_xp_classify_free(&res);
    cce_xp_examples_free(ex, n_ex);
    cli_xp_text_free(&t);
    cce_model_free(c);
    cce_plan_free(&plan);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    cce_free(lbuf);
    cce_free(templ);
    return rc;
}
