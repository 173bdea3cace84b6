/*
 * cmd_compare.c — `cce compare`: every method at every budget, side by side (DESIGN §3.10).
 *
 *   cce compare MODEL [--calib FILE|DIR] [--eval FILE[,FILE2...]] [--target 0.1,0.2,0.3]
 *               [--methods LIST] [--redistribute lsq|none|none,lsq] [--tokens N] [--seq-len N]
 *               [--seed S] [--eval-tokens N] [--eval-seq-len N] [--decode-tokens N]
 *               [--alpha A --beta B --gamma G --eps E --tau T] [--search N] [--save-plans DIR]
 *               [--csv FILE] [--json]
 *
 * The engine does the work (experiments.h: cce_xp_compare); this file prints the table as rows
 * finish (the dense row first, so each row can show its ratio to the dense perplexity), writes
 * CSV and plans, and the one JSON object. Every parameter count is of non-embedding parameters.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "cli_xp.h"
#include "search.h"

#define MAX_METHODS 16
#define MAX_TARGETS 16

typedef struct {
    cli_xp_ctx *x;
    int json;
    const char *plans_dir;
    const cce_xp_row *dense;
    cce_xp_row dense_copy;
    int failed_save;
} cmp_state;

static void print_header(const cli_xp_ctx *x) {
    printf("%-10s %6s %8s %9s", "method", "target", "removed", "params");
    for (int e = 0; e < x->n_evals; e++) printf("  %9s %7s %8s", x->n_evals > 1 ? (e ? "ppl 2" : "ppl 1") : "ppl", "×dense", "accuracy");
    printf(" %9s\n", "tok/s");
}

static void print_row(const cli_xp_ctx *x, const cce_xp_row *r, const cce_xp_row *dense) {
    char t[16], rm[16];
    if (r->target > 0) snprintf(t, sizeof t, "%.0f%%", 100 * r->target);
    else snprintf(t, sizeof t, "-");
    printf("%-10s %6s %8s %9lld", r->method, t, cli_xp_pct(r->removed_fraction, rm, sizeof rm), (long long)r->params);
    for (int e = 0; e < x->n_evals; e++)
        printf("  %9.4f %7.3f %8.4f", r->eval[e].ppl, dense && dense->eval[e].ppl > 0 ? r->eval[e].ppl / dense->eval[e].ppl : 1.0,
               r->eval[e].accuracy);
    if (r->tokens_per_s > 0) printf(" %9.0f\n", r->tokens_per_s);
    else printf(" %9s\n", "-");
    fflush(stdout);
}

static void on_row(void *user, const cce_xp_row *row, const cce_plan *plan) {
    cmp_state *st = user;
    if (!plan) {   // the dense row comes first
        st->dense_copy = *row;
        st->dense = &st->dense_copy;
        if (!st->json) {
            cli_progress_end();
            print_header(st->x);
        }
    }
    if (!st->json) {
        cli_progress_end();
        print_row(st->x, row, st->dense);
    }
    if (plan && st->plans_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s-%.0f.json", st->plans_dir, row->method, 100 * row->target);
        cce_err err = {{0}};
        if (cce_plan_save(plan, path, &err)) {
            cli_fail_err(&err);
            st->failed_save = 1;
        }
    }
}

static void csv_rows(cli_buf *b, const cli_xp_ctx *x, const cce_xp_row *rows, int n) {
    cli_buf_printf(b, "method,target,removed_fraction,params");
    for (int e = 0; e < x->n_evals; e++) {
        char sfx[16] = "";
        if (e) snprintf(sfx, sizeof sfx, "_%d", e + 1);
        cli_buf_printf(b, ",ppl%s,ppl_ratio%s,loss%s,accuracy%s,eval_tokens%s", sfx, sfx, sfx, sfx, sfx);
    }
    cli_buf_printf(b, ",tokens_per_s,seconds\n");
    for (int i = 0; i < n; i++) {
        const cce_xp_row *r = &rows[i];
        cli_buf_printf(b, "%s,%.4f,%.6f,%lld", r->method, r->target, r->removed_fraction, (long long)r->params);
        for (int e = 0; e < x->n_evals; e++)
            cli_buf_printf(b, ",%.6f,%.6f,%.6f,%.6f,%ld", r->eval[e].ppl,
                           rows[0].eval[e].ppl > 0 ? r->eval[e].ppl / rows[0].eval[e].ppl : 1.0, r->eval[e].loss,
                           r->eval[e].accuracy, r->eval[e].tokens);
        cli_buf_printf(b, ",%.1f,%.3f\n", r->tokens_per_s, r->seconds);
    }
}

/* The methods to run: --methods (default all seven), with "cce" expanded by --redistribute
 * (lsq: "cce", none: "cce-none", both in the order none, lsq). Names point into *mbuf or are
 * literals. Prints the error; returns 0, 1 or 2. */
static int method_list(const char *ml, const char *rl, char **mbuf, char **rbuf, const char **methods, int *n_methods) {
    static const char *defaults[] = {"magnitude", "wanda-sp", "flap", "shortgpt", "svd", "asvd", "cce"};
    char *given[MAX_METHODS], *redist[4];
    int n_given = 0, n_redist = 0, want_lsq = 1, want_none = 0;
    *n_methods = 0;
    if (ml && cli_xp_words("methods", ml, mbuf, given, MAX_METHODS, &n_given)) return 2;
    if (rl) {
        if (cli_xp_words("redistribute", rl, rbuf, redist, 4, &n_redist)) return 2;
        want_lsq = want_none = 0;
        for (int i = 0; i < n_redist; i++) {
            if (!strcmp(redist[i], "lsq")) want_lsq = 1;
            else if (!strcmp(redist[i], "none")) want_none = 1;
            else return cli_fail("compare: --redistribute takes lsq and/or none, not '%s'", redist[i]);
        }
    }
    int n_src = ml ? n_given : (int)(sizeof defaults / sizeof defaults[0]);
    for (int i = 0; i < n_src; i++) {
        const char *name = ml ? given[i] : defaults[i];
        if (!cce_xp_method_known(name))
            return cli_fail("compare: unknown method '%s' (magnitude wanda-sp flap shortgpt svd asvd cce cce-none)", name);
        if (!strcmp(name, "cce")) {
            if (want_none) methods[(*n_methods)++] = "cce-none";
            if (want_lsq) methods[(*n_methods)++] = "cce";
        } else {
            methods[(*n_methods)++] = name;
        }
    }
    return 0;
}

static const char *reading_of(const char *method) {
    int b = cce_baseline_parse(method);
    if (b >= 0) return cce_baseline_reading((cce_baseline)b);
    return !strcmp(method, "cce") ? "the CCE planner (cost curves of the analysis of the same batch), least-squares redistribution"
                                  : "the same CCE plan encoded with redistribution none (the ablation)";
}

static void print_json(const cli_xp_ctx *x, const cce_xp_row *rows, int n_rows, const char *const *methods, int n_methods,
                       long a_tokens, int n_search) {
    cJSON *o = cJSON_CreateObject();
    cli_xp_add_ids(o, x);
    cJSON *c = cJSON_AddObjectToObject(o, "cce");
    cJSON_AddNumberToObject(c, "analysis_tokens", (double)a_tokens);
    cJSON_AddNumberToObject(c, "search", n_search);
    cJSON_AddItemToObject(o, "dense", cli_xp_row_json(&rows[0], NULL, x->n_evals));
    cJSON *a = cJSON_AddArrayToObject(o, "rows");
    for (int i = 1; i < n_rows; i++) cJSON_AddItemToArray(a, cli_xp_row_json(&rows[i], &rows[0], x->n_evals));
    cJSON *rd = cJSON_AddObjectToObject(o, "readings");
    for (int i = 0; i < n_methods; i++)
        if (!cJSON_HasObjectItem(rd, methods[i])) cJSON_AddStringToObject(rd, methods[i], reading_of(methods[i]));
    cli_json_print(o);
}

static void print_footer(const cli_xp_ctx *x, const cce_xp_row *rows, int n_rows, const char *const *methods, int n_methods) {
    printf("\nreadings:\n");
    for (int i = 0; i < n_methods; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= !strcmp(methods[j], methods[i]);
        if (!dup) printf("  %-10s %s\n", methods[i], reading_of(methods[i]));
    }
    for (int i = 1; i < n_rows; i++)
        if (rows[i].removed_fraction + 1e-9 < rows[i].target)
            printf("note: %s at %.0f%% removed only %.2f%%, less than its target (the CCE planner%s returned that plan)\n",
                   rows[i].method, 100 * rows[i].target, 100 * rows[i].removed_fraction,
                   x->su.search != 0 ? ", refined by its search," : "");
}

int cmd_compare(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_XP_COMMON_OPTS,
        CLI_XP_EPS_TAU_OPTS,
        {"target", 1, "budgets: fractions of the non-embedding parameters to remove (default 0.1,0.2,0.3)", NULL},
        {"methods", 1, "comma-separated: magnitude wanda-sp flap shortgpt svd asvd cce cce-none (default all but cce-none)", NULL},
        {"redistribute", 1, "the cce rows: lsq (default), none, or none,lsq for both (none is listed as cce-none)", NULL},
        {"search", 1, "CCE: N | auto: refine each plan's allocation with N candidate plans scored on held-out calibration windows (default 0, as cce plan)", NULL},
        {"save-plans", 1, "write each row's plan to DIR/METHOD-PERCENT.json (for cce apply, eval --plan, robustness)", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    double targets[MAX_TARGETS] = {0.1, 0.2, 0.3};
    int n_targets = 3;
    const char *tl = cli_get(opts, n_opts, "target");
    if (tl && cli_xp_doubles("target", tl, 1e-6, 0.95, targets, MAX_TARGETS, &n_targets)) return 2;
    const char *methods[MAX_METHODS + 2];
    int n_methods = 0;
    char *mbuf = NULL, *rbuf = NULL;
    int rc = method_list(cli_get(opts, n_opts, "methods"), cli_get(opts, n_opts, "redistribute"), &mbuf, &rbuf, methods,
                         &n_methods);
    if (rc) goto out;
    const char *plans_dir = cli_get(opts, n_opts, "save-plans");
    if (plans_dir) {
        struct stat sd;
        if (stat(plans_dir, &sd) != 0 && mkdir(plans_dir, 0777) != 0) {
            rc = cli_fail("%s: cannot create the directory", plans_dir);
            goto out;
        }
    }
    long search = 0;   // as cce plan: none unless asked
    const char *search_s = cli_get(opts, n_opts, "search");
    if (search_s && !strcmp(search_s, "auto")) search = -1;
    else if (search_s && cli_get_long(opts, n_opts, "search", 0, 100000, &search)) {
        rc = 2;
        goto out;
    }
    cli_xp_ctx x;
    if ((rc = cli_xp_open(opts, n_opts, n_pos ? pos[0] : NULL, 128, 1, &x))) goto out;
    x.su.search = (int)search;
    int json = cli_get(opts, n_opts, "json") != NULL;
    int n_search = x.su.search < 0 ? cce_search_auto(x.m) : x.su.search;
    long a_tokens = x.su.analysis.tokens > 0 && x.su.analysis.tokens < x.su.calib_tokens ? x.su.analysis.tokens : x.su.calib_tokens;
    if (!json) {
        cli_xp_print_ids(&x);
        printf("cce          analysis on the first %ld of those tokens; allocation search: %d candidate plans scored on held-out "
               "calibration windows (--search)\n", a_tokens, n_search);
        printf("non-embedding parameters; removed = achieved fraction (each method removes at least the target at its own granularity); "
               "×dense = ppl / dense ppl; accuracy = top-1 next token; tok/s = KV-cached greedy decoding, %d steps, best of %d\n\n",
               x.su.decode_tokens, x.su.decode_reps);
    }
    cmp_state st = {.x = &x, .json = json, .plans_dir = plans_dir};
    cce_xp_row *rows = NULL;
    int n_rows = 0;
    cce_err err = {{0}};
    cce_status s = cce_xp_compare(&x.su, methods, n_methods, targets, n_targets, on_row, &st, &rows, &n_rows, &err);
    cli_progress_end();
    if (s) {
        rc = cli_xp_fail(s, &err);
        cli_xp_close(&x);
        goto out;
    }
    const char *csv = cli_get(opts, n_opts, "csv");
    if (csv) {
        cli_buf b = {0};
        csv_rows(&b, &x, rows, n_rows);
        rc = cli_buf_save(&b, csv);
        cli_buf_free(&b);
    }
    if (json) print_json(&x, rows, n_rows, methods, n_methods, a_tokens, n_search);
    else print_footer(&x, rows, n_rows, methods, n_methods);
    if (st.failed_save && !rc) rc = 1;
    cce_free(rows);
    cli_xp_close(&x);
out:
    cce_free(mbuf);
    cce_free(rbuf);
    return rc;
}
