/*
 * cmd_generate.c — `cce generate MODEL [--prompt TEXT] [-n N] [--ids] [--tokenizer FILE] [--json]`:
 * greedy (argmax) generation with the KV-cached decoder.
 *
 * The prompt is encoded with BOS; no prompt means BOS alone. A tokenizer without BOS (GPT-2's)
 * starts from EOS instead (<|endoftext|>), as the eval protocol does. Generation stops after N
 * new tokens or at EOS or BOS (llama2.c's convention: BOS delimits sequences). Output: the text (prompt and
 * continuation, streamed), or with --ids every id including BOS and the prompt; --json prints
 * {ids, text, tokens_per_s, prompt_tokens, prompt_tokens_per_s, generate_tokens_per_s}, where
 * tokens_per_s counts every position fed (prompt included) over the whole time. The prompt but
 * its last token goes through the decoder in one batched pass (cce_decoder_prefill); the rest is
 * one decoder step per token.
 * Ctrl-C stops within one decoder step (the decoder polls between layers); what was generated
 * is printed, "cce: interrupted" goes to stderr and the exit code is 130.
 */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "cli_plan.h"
#include "forward.h"

typedef struct {
    char *p;
    size_t n, cap;
} gen_text;

static int gen_text_add(gen_text *t, const char *s, size_t k) {
    if (t->n + k + 1 > t->cap) {
        size_t nc = (t->n + k + 1) * 2;
        char *q = cce_realloc(t->p, nc, 1);
        if (!q) return -1;
        t->p = q;
        t->cap = nc;
    }
    memcpy(t->p + t->n, s, k);
    t->n += k;
    t->p[t->n] = 0;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    cli_opt opts[] = {
        {"prompt", 1, "prompt text (default: BOS only)", NULL},
        {"n", 1, "number of new tokens (default 64)", NULL},
        {"ids", 0, "print token ids instead of text", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"plan", 1, "generate with the compressed model of this plan (encoded in memory)", NULL},
        {"calib", 1, "with --plan: the calibration text, if not where the plan says", NULL},
        {"json", 0, "one JSON object on stdout", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    long n_new = 64;
    if (cli_get_long(opts, n_opts, "n", 0, 1 << 20, &n_new)) return 2;
    const char *prompt = cli_get(opts, n_opts, "prompt");
    int json = cli_get(opts, n_opts, "json") != NULL, want_ids = cli_get(opts, n_opts, "ids") != NULL;

    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    if (cli_open_model(n_pos ? pos[0] : NULL, cli_get(opts, n_opts, "tokenizer"), 0, &m, &tok)) return 1;
    cce_model *src = NULL;   // with --plan: the original, which the compressed m borrows from
    const char *plan_path = cli_get(opts, n_opts, "plan");
    int prc = cli_swap_in_plan(&m, tok, plan_path, cli_get(opts, n_opts, "calib"), &src);
    if (prc) {
        cce_tokenizer_free(tok);
        cce_model_free(m);
        return prc;
    }
    int rc = 1;
    cce_err err = {{0}};
    int *ids = NULL;
    size_t n_ids = 0;
    float *logits = NULL;
    cce_decoder *dec = NULL;
    gen_text text = {0};
    int bos = tok ? cce_tokenizer_bos(tok) : m->cfg.bos_id;
    int eos = tok ? cce_tokenizer_eos(tok) : m->cfg.eos_id;
    if (!tok && (prompt || !want_ids)) {
        rc = cli_fail("%s: no tokenizer found beside the model; pass --tokenizer FILE (or use --ids without --prompt)",
                      m->path ? m->path : "model");
        goto cleanup;
    }
    int start = bos >= 0 ? bos : eos;  // the first token of every sequence
    if (start < 0) {
        rc = cli_fail("%s: neither BOS nor EOS is known to start generation from", m->path ? m->path : "model");
        goto cleanup;
    }
    int *enc = NULL;
    size_t n_enc = 0;
    if (prompt) cli_warn_utf8("--prompt", prompt, strlen(prompt));
    if (prompt && *prompt && cce_tokenizer_encode(tok, prompt, strlen(prompt), 0, &enc, &n_enc, &err)) {
        rc = cli_fail_err(&err);
        goto cleanup;
    }
    ids = cce_alloc(n_enc + 1, sizeof(int));
    if (!ids) { cce_free(enc); rc = cli_fail("out of memory"); goto cleanup; }
    ids[0] = start;
    if (n_enc) memcpy(ids + 1, enc, n_enc * sizeof(int));
    n_ids = n_enc + 1;
    cce_free(enc);
    size_t total = n_ids + (size_t)n_new;
    if (total > (size_t)1 << 20 || (m->cfg.arch == CCE_ARCH_GPT2 && total > (size_t)m->cfg.seq_len)) {
        rc = cli_fail("prompt (%zu tokens) + %ld new tokens exceed the context (%d)", n_ids, n_new, m->cfg.seq_len);
        goto cleanup;
    }
    int *grown = cce_realloc(ids, total, sizeof(int));
    logits = cce_alloc((size_t)m->cfg.vocab_size, sizeof(float));
    if (!grown || !logits) { rc = cli_fail("out of memory"); goto cleanup; }
    ids = grown;
    if (cce_decoder_new(m, (int)total, &dec, &err)) { rc = cli_fail_err(&err); goto cleanup; }

    char piece[256];
    if (tok)
        for (size_t i = 1; i < n_ids; i++) {
            size_t k = cce_tokenizer_decode(tok, ids[i - 1], ids[i], piece, sizeof piece);
            gen_text_add(&text, piece, k);
        }
    if (!json && !want_ids) { fputs(text.p ? text.p : "", stdout); fflush(stdout); }
    double t0 = cce_now(), t_prompt = t0;
    long steps = 0;
    size_t n = n_ids, p0 = 0;
    if (n_ids > 1) {   // the prompt in one batched pass; the step loop then starts at its last position
        cce_status st = cce_decoder_prefill(dec, ids, (int)n_ids - 1, logits, &err);
        if (st && !(st == CCE_ECANCEL && cli_interrupted)) { rc = cli_fail_err(&err); goto cleanup; }
        if (!st) {
            p0 = n_ids - 1;
            steps = (long)p0;
        }
        t_prompt = cce_now();
    }
    for (size_t p = p0; p < n && !cli_interrupted; p++) {
        cce_status st = cce_decoder_step(dec, ids[p], (int)p, logits, &err);
        if (st == CCE_ECANCEL && cli_interrupted) break;   // stopped inside the step: what is done is printed
        if (st) { rc = cli_fail_err(&err); goto cleanup; }
        steps++;
        if (p + 1 < n) continue;             // still inside the prompt
        if (n == total) break;
        int best = cce_argmax(logits, m->cfg.vocab_size);
        if (best == eos || best == bos) break;  // (with start == eos, an EOS ends it too)
        ids[n++] = best;
        if (tok) {
            size_t k = cce_tokenizer_decode(tok, ids[n - 2], best, piece, sizeof piece);
            size_t before = text.n;
            gen_text_add(&text, piece, k);
            if (!json && !want_ids) { fwrite(text.p + before, 1, text.n - before, stdout); fflush(stdout); }
        }
    }
    double t_end = cce_now(), secs = t_end - t0, tps = secs > 0 ? (double)steps / secs : 0.0;
    double prompt_tps = p0 && t_prompt > t0 ? (double)p0 / (t_prompt - t0) : 0.0;
    double gen_tps = t_end > t_prompt ? (double)(steps - (long)p0) / (t_end - t_prompt) : 0.0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
        cJSON_AddStringToObject(o, "text", text.p ? text.p : "");
        cJSON_AddNumberToObject(o, "tokens_per_s", tps);
        cJSON_AddNumberToObject(o, "prompt_tokens", (double)p0);
        cJSON_AddNumberToObject(o, "prompt_tokens_per_s", prompt_tps);
        cJSON_AddNumberToObject(o, "generate_tokens_per_s", gen_tps);
        cli_json_print(o);
    } else if (want_ids) {
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    } else {
        printf("\n");
        if (p0) fprintf(stderr, "cce: %ld tokens, %.1f tokens/s (prompt of %zu: %.1f tokens/s; then %.1f tokens/s)\n",
                        steps, tps, p0, prompt_tps, gen_tps);
        else fprintf(stderr, "cce: %ld tokens, %.1f tokens/s\n", steps, tps);
    }
    if (cli_interrupted) fprintf(stderr, "cce: interrupted\n");
    rc = cli_interrupted ? 130 : 0;
cleanup:
    cce_decoder_free(dec);
    cce_free(logits);
    cce_free(ids);
    cce_free(text.p);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    cce_model_free(src);
    return rc;
}
