/*
 * cmd_sensitivity.c — `cce sensitivity`: the threshold grid (DESIGN §3.11). In threshold mode
 * (target 0) ε and τ decide every block (plan.h); each grid point is planned, encoded and
 * measured, and the points on the removed-fraction / perplexity Pareto frontier are marked.
 *
 *   cce sensitivity MODEL [--calib FILE|DIR] [--eval FILE] [--eps 0.001,0.01,0.03,0.1]
 *                   [--tau 0.02,0.05,0.1,0.2] [--redistribute lsq|none] [... the options of compare]
 *                   [--csv FILE] [--json]
 *
 * The default grid spans what the thresholds do on the real models: on stories260K it runs
 * from ~2 % to ~66 % removed. (τ of 0.5–0.9·σ_max keeps so few singular directions that every
 * point removes 86–97 %: measured, and still available with --tau.)
 */
#include <stdio.h>
#include <string.h>
#include "cli_xp.h"

#define MAX_GRID 32

int cmd_sensitivity(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_XP_COMMON_OPTS,
        {"eps", 1, "ε values (default 0.001,0.01,0.03,0.1)", NULL},
        {"tau", 1, "τ values, fractions of σ_max (default 0.02,0.05,0.1,0.2)", NULL},
        {"redistribute", 1, "lsq (default) | none", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    double eps[MAX_GRID] = {0.001, 0.01, 0.03, 0.1}, tau[MAX_GRID] = {0.02, 0.05, 0.1, 0.2};
    int n_eps = 4, n_tau = 4;
    const char *el = cli_get(opts, n_opts, "eps"), *tl = cli_get(opts, n_opts, "tau");
    if (el && cli_xp_doubles("eps", el, 0, 0.999999, eps, MAX_GRID, &n_eps)) return 2;
    if (tl && cli_xp_doubles("tau", tl, 0, 0.999999, tau, MAX_GRID, &n_tau)) return 2;
    const char *rd = cli_get(opts, n_opts, "redistribute");
    if (rd && strcmp(rd, "lsq") && strcmp(rd, "none"))
        return cli_fail("sensitivity: --redistribute must be lsq or none, not '%s'", rd);
    cce_redistribute redist = rd && !strcmp(rd, "none") ? CCE_REDIST_NONE : CCE_REDIST_LSQ;
    cli_xp_ctx x;
    int rc = cli_xp_open(opts, n_opts, n_pos ? pos[0] : NULL, 0, 0, &x);
    if (rc) return rc;
    int json = cli_get(opts, n_opts, "json") != NULL;
    cce_xp_row dense;
    cce_xp_sens_row *rows = NULL;
    cce_err err = {{0}};
    cce_status s = cce_xp_sensitivity(&x.su, eps, n_eps, tau, n_tau, redist, &dense, &rows, &err);
    cli_progress_end();
    if (s) {
        rc = cli_xp_fail(s, &err);
        cli_xp_close(&x);
        return rc;
    }
    int n = n_eps * n_tau;
    double d_ppl = dense.eval[0].ppl;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cli_xp_add_ids(o, &x);
        cJSON_AddStringToObject(o, "redistribute", cce_redistribute_name(redist));
        cJSON_AddItemToObject(o, "dense", cli_xp_row_json(&dense, NULL, x.n_evals));
        cJSON *a = cJSON_AddArrayToObject(o, "points");
        for (int i = 0; i < n; i++) {
            cJSON *p = cli_xp_row_json(&rows[i].row, &dense, x.n_evals);
            cJSON_AddNumberToObject(p, "eps", rows[i].eps);
            cJSON_AddNumberToObject(p, "tau", rows[i].tau);
            cJSON_AddBoolToObject(p, "pareto", rows[i].pareto);
            cJSON_AddItemToArray(a, p);
        }
        cli_json_print(o);
    } else {
        cli_xp_print_ids(&x);
        printf("threshold mode (no budget): ε decides neurons, heads and block drops, τ the ranks (plan.h); redistribution %s; * = on the "
               "removed / perplexity Pareto frontier\n\n", cce_redistribute_name(redist));
        printf("%8s %6s %9s %9s %9s %7s %8s %s\n", "eps", "tau", "removed", "params", "ppl", "×dense", "accuracy", "frontier");
        printf("%8s %6s %9s %9lld %9.4f %7.3f %8.4f\n", "dense", "-", "-", (long long)dense.params, d_ppl, 1.0, dense.eval[0].accuracy);
        for (int i = 0; i < n; i++) {
            char a[16];
            printf("%8g %6g %9s %9lld %9.4f %7.3f %8.4f %s\n", rows[i].eps, rows[i].tau,
                   cli_xp_pct(rows[i].row.removed_fraction, a, sizeof a), (long long)rows[i].row.params, rows[i].row.eval[0].ppl,
                   d_ppl > 0 ? rows[i].row.eval[0].ppl / d_ppl : 1.0, rows[i].row.eval[0].accuracy, rows[i].pareto ? "*" : "");
        }
    }
    const char *csv = cli_get(opts, n_opts, "csv");
    if (csv) {
        cli_buf b = {0};
        cli_buf_printf(&b, "eps,tau,removed_fraction,params,ppl,ppl_ratio,loss,accuracy,pareto\n");
        for (int i = 0; i < n; i++)
            cli_buf_printf(&b, "%g,%g,%.6f,%lld,%.6f,%.6f,%.6f,%.6f,%d\n", rows[i].eps, rows[i].tau, rows[i].row.removed_fraction,
                           (long long)rows[i].row.params, rows[i].row.eval[0].ppl,
                           d_ppl > 0 ? rows[i].row.eval[0].ppl / d_ppl : 1.0, rows[i].row.eval[0].loss,
                           rows[i].row.eval[0].accuracy, rows[i].pareto);
        rc = cli_buf_save(&b, csv);
        cli_buf_free(&b);
    }
    cce_free(rows);
    cli_xp_close(&x);
    return rc;
}
