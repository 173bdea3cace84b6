/*
 * cmd_sweep.c — `cce sweep`: compress one block at a time and measure the whole model (the
 * paper's layer-wise sweep, DESIGN §3.11): where the redundancy sits.
 *
 *   cce sweep MODEL [--calib FILE|DIR] [--eval FILE] [--level 0.5] [--redistribute lsq|none]
 *             [--tokens N] [--eval-tokens N] [... the options of compare] [--csv FILE] [--json]
 *
 * Block ℓ alone is compressed by CCE's own planner to `level` of the block's parameters (only
 * its cost curves are offered to the planner); the other blocks are left as they are (the
 * encoder's refit options apply). One row per block: parameters removed, perplexity, its ratio
 * to the dense model's, accuracy. The engine driver is cce_xp_sweep (experiments.h).
 */
#include <stdio.h>
#include <string.h>
#include "cli_xp.h"

int cmd_sweep(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_XP_COMMON_OPTS,
        CLI_XP_EPS_TAU_OPTS,
        {"level", 1, "fraction of each block's parameters to remove (default 0.5)", NULL},
        {"redistribute", 1, "lsq (default) | none", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    double level = 0.5;
    if (cli_get_double(opts, n_opts, "level", 1e-6, 1.0, &level)) return 2;
    const char *rd = cli_get(opts, n_opts, "redistribute");
    if (rd && strcmp(rd, "lsq") && strcmp(rd, "none")) return cli_fail("sweep: --redistribute must be lsq or none, not '%s'", rd);
    cce_redistribute redist = rd && !strcmp(rd, "none") ? CCE_REDIST_NONE : CCE_REDIST_LSQ;
    cli_xp_ctx x;
    int rc = cli_xp_open(opts, n_opts, n_pos ? pos[0] : NULL, 0, 1, &x);
    if (rc) return rc;
    int json = cli_get(opts, n_opts, "json") != NULL;
    cce_xp_row dense;
    cce_xp_sweep_row *rows = NULL;
    cce_err err = {{0}};
    cce_status s = cce_xp_sweep(&x.su, level, redist, &dense, &rows, &err);
    cli_progress_end();
    if (s) {
        rc = cli_xp_fail(s, &err);
        cli_xp_close(&x);
        return rc;
    }
    int L = x.m->cfg.n_layers;
    double d_ppl = dense.eval[0].ppl;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cli_xp_add_ids(o, &x);
        cJSON_AddNumberToObject(o, "level", level);
        cJSON_AddStringToObject(o, "redistribute", cce_redistribute_name(redist));
        cJSON_AddItemToObject(o, "dense", cli_xp_row_json(&dense, NULL, x.n_evals));
        cJSON *a = cJSON_AddArrayToObject(o, "blocks");
        for (int l = 0; l < L; l++) {
            cJSON *b = cli_xp_row_json(&rows[l].row, &dense, x.n_evals);
            cJSON_AddNumberToObject(b, "block", l);
            cJSON_AddNumberToObject(b, "block_params", (double)rows[l].block_params);
            cJSON_AddNumberToObject(b, "removed", (double)rows[l].removed);
            cJSON_AddNumberToObject(b, "block_fraction", rows[l].block_fraction);
            cJSON_AddItemToArray(a, b);
        }
        cli_json_print(o);
    } else {
        cli_xp_print_ids(&x);
        printf("each block alone compressed by the CCE planner to %.0f%% of its parameters (redistribution %s); the rest dense\n\n",
               100 * level, cce_redistribute_name(redist));
        printf("%5s %9s %9s %8s %10s %9s %7s %8s\n", "block", "params", "removed", "of block", "of model", "ppl", "×dense", "accuracy");
        printf("%5s %9lld %9s %8s %10s %9.4f %7.3f %8.4f\n", "dense", (long long)dense.params, "-", "-", "-", d_ppl, 1.0,
               dense.eval[0].accuracy);
        int best = -1;
        for (int l = 0; l < L; l++) {
            const cce_xp_sweep_row *r = &rows[l];
            char a[16], b[16];
            printf("%5d %9lld %9lld %8s %10s %9.4f %7.3f %8.4f\n", l, (long long)r->block_params, (long long)r->removed,
                   cli_xp_pct(r->block_fraction, a, sizeof a), cli_xp_pct(r->row.removed_fraction, b, sizeof b), r->row.eval[0].ppl,
                   d_ppl > 0 ? r->row.eval[0].ppl / d_ppl : 1.0, r->row.eval[0].accuracy);
            if (r->removed > 0 && (best < 0 || r->row.eval[0].ppl < rows[best].row.eval[0].ppl)) best = l;
        }
        int any_short = 0;
        for (int l = 0; l < L; l++) any_short |= rows[l].block_fraction + 1e-9 < level;
        if (best >= 0) printf("\ncheapest block to compress: %d (ppl ×%.3f)\n", best, rows[best].row.eval[0].ppl / d_ppl);
        if (any_short)
            printf("note: where a block's removal is below the level, the planner's cost curves for it are missing or exhausted\n");
    }
    const char *csv = cli_get(opts, n_opts, "csv");
    if (csv) {
        cli_buf b = {0};
        cli_buf_printf(&b, "block,block_params,removed,block_fraction,removed_fraction,params,ppl,ppl_ratio,loss,accuracy\n");
        cli_buf_printf(&b, "dense,%lld,0,0,0,%lld,%.6f,1,%.6f,%.6f\n", (long long)dense.params, (long long)dense.params, d_ppl,
                       dense.eval[0].loss, dense.eval[0].accuracy);
        for (int l = 0; l < L; l++) {
            const cce_xp_sweep_row *r = &rows[l];
            cli_buf_printf(&b, "%d,%lld,%lld,%.6f,%.6f,%lld,%.6f,%.6f,%.6f,%.6f\n", l, (long long)r->block_params,
                           (long long)r->removed, r->block_fraction, r->row.removed_fraction, (long long)r->row.params,
                           r->row.eval[0].ppl, d_ppl > 0 ? r->row.eval[0].ppl / d_ppl : 1.0, r->row.eval[0].loss,
                           r->row.eval[0].accuracy);
        }
        rc = cli_buf_save(&b, csv);
        cli_buf_free(&b);
    }
    cce_free(rows);
    cli_xp_close(&x);
    return rc;
}
