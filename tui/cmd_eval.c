/*
 * cmd_eval.c — `cce eval MODEL --text FILE [--seq-len N] [--max-tokens N] [--batch N]
 *               [--tokenizer FILE] [--json]`: perplexity by the protocol of eval.h.
 *
 * Human output is one line; --json prints {loss, ppl, tokens, windows, predictions, seq_len,
 * seconds, tokens_per_s}. Progress goes to stderr; Ctrl-C stops after the current batch with
 * exit code 130.
 */
#include <stdio.h>
#include "cli.h"
#include "cli_plan.h"
#include "eval.h"

static int eval_progress(void *user, long done, long total) {
    (void)user;
    cli_progress("eval windows", done, total);
    return cli_interrupted != 0;
}

int cmd_eval(int argc, char **argv) {
    cli_opt opts[] = {
        {"text", 1, "text file to evaluate", NULL},
        {"seq-len", 1, "window length (default min(256, model context))", NULL},
        {"max-tokens", 1, "use only the first N tokens of the stream", NULL},
        {"batch", 1, "windows per forward batch (default: ~2048 tokens)", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"plan", 1, "evaluate the compressed model of this plan (encoded in memory)", NULL},
        {"calib", 1, "with --plan: the calibration text, if not where the plan says", NULL},
        {"json", 0, "one JSON object on stdout", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    const char *text_path = cli_get(opts, n_opts, "text");
    if (!text_path) return cli_fail("eval: --text FILE is required");
    long seq_len = 0, max_tokens = 0, batch = 0;
    if (cli_get_long(opts, n_opts, "seq-len", 2, 1 << 20, &seq_len) ||
        cli_get_long(opts, n_opts, "max-tokens", 1, 1L << 40, &max_tokens) ||
        cli_get_long(opts, n_opts, "batch", 1, 1 << 16, &batch))
        return 2;
    int json = cli_get(opts, n_opts, "json") != NULL;

    cce_err err = {{0}};
    char *text = NULL;
    size_t len = 0;
    if (cli_read_text(text_path, &text, &len)) return 1;
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    if (cli_open_model(n_pos ? pos[0] : NULL, cli_get(opts, n_opts, "tokenizer"), 1, &m, &tok)) {
        cce_free(text);
        return 1;
    }
    if (!seq_len) seq_len = m->cfg.seq_len < 256 ? m->cfg.seq_len : 256;
    cce_model *c = NULL;
    cce_plan plan;
    const char *plan_path = cli_get(opts, n_opts, "plan");
    if (plan_path) {
        int rc = cli_open_plan(m, tok, plan_path, cli_get(opts, n_opts, "calib"), &plan, &c);
        if (rc) {
            cce_free(text);
            cce_tokenizer_free(tok);
            cce_model_free(m);
            return rc;
        }
        cce_plan_free(&plan);
    }
    cce_eval_result r;
    cce_status s = cce_eval_text(c ? c : m, tok, text, len, (int)seq_len, max_tokens, (int)batch, eval_progress,
                                 NULL, &r, &err);
    cce_param_count pc = cce_model_params(c ? c : m);
    cli_progress_end();
    cce_free(text);
    cce_tokenizer_free(tok);
    cce_model_free(c);
    cce_model_free(m);
    if (s == CCE_ECANCEL && cli_interrupted) {
        fprintf(stderr, "cce: interrupted\n");
        return 130;
    }
    if (s) return cli_fail("%s: %s", text_path, err.msg);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "loss", r.loss);
        cJSON_AddNumberToObject(o, "ppl", r.ppl);
        cJSON_AddNumberToObject(o, "accuracy", r.accuracy);
        cJSON_AddNumberToObject(o, "params_non_embedding", (double)pc.non_embedding);
        cJSON_AddNumberToObject(o, "tokens", (double)r.tokens);
        cJSON_AddNumberToObject(o, "windows", (double)r.windows);
        cJSON_AddNumberToObject(o, "predictions", (double)r.predictions);
        cJSON_AddNumberToObject(o, "seq_len", r.seq_len);
        cJSON_AddNumberToObject(o, "seconds", r.seconds);
        cJSON_AddNumberToObject(o, "tokens_per_s", r.tokens_per_s);
        cli_json_print(o);
    } else {
        printf("loss %.5f  ppl %.4f  accuracy %.4f  (%ld tokens, %ld windows of %d, %ld predictions, %.2f s, "
               "%.0f tokens/s; %lld non-embedding parameters)\n",
               r.loss, r.ppl, r.accuracy, r.tokens, r.windows, r.seq_len, r.predictions, r.seconds, r.tokens_per_s,
               (long long)pc.non_embedding);
    }
    return 0;
}
