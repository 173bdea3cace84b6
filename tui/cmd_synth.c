/*
 * cmd_synth.c — `cce synth --like NAME -o DIR [--seed S] [--json]`: write a random-weight
 * Hugging Face directory of a real model shape (see include/synth.h), for benchmarks and
 * robustness tests. Prints the directory, parameter count and bytes written.
 */
#include <stdio.h>
#include "cli.h"
#include "synth.h"

int cmd_synth(int argc, char **argv) {
    cli_opt opts[] = {
        {"like", 1, "shape name: tiny smollm-135m gpt2 qwen2.5-0.5b llama-3.2-1b", NULL},
        {"output", 1, "output directory (created if missing)", NULL},
        {"seed", 1, "random seed (default 1)", NULL},
        {"json", 0, "print one JSON object", NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos;
    if (cli_parse(argc, argv, opts, n_opts, pos, 0, &n_pos)) return 2;
    const char *like = cli_get(opts, n_opts, "like");
    const char *out = cli_get(opts, n_opts, "output");
    if (!like) return cli_fail("synth: missing --like NAME (one of: %s)", cce_synth_names());
    if (!out) return cli_fail("synth: missing -o DIR (the output directory)");
    long seed = 1;
    if (cli_get_long(opts, n_opts, "seed", 0, 0x7fffffffffffffffL, &seed)) return 2;
    int json = cli_get(opts, n_opts, "json") != NULL;
    cce_err err = {{0}};
    cce_config cfg;
    if (cce_synth_config(like, &cfg, NULL, &err)) return cli_fail_err(&err);
    fprintf(stderr, "cce: synthesising %s into %s ...\n", like, out);
    uint64_t bytes = 0;
    double t0 = cce_now();
    cce_status st = cce_synth_ex(like, (uint64_t)seed, out, &bytes, &err);
    if (st) return st == CCE_ECANCEL ? (cli_fail_err(&err), 130) : cli_fail_err(&err);
    double dt = cce_now() - t0;
    /* load it back: proves the directory is valid and gives the parameter count */
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    if (cli_open_model(out, NULL, 0, &m, &tok)) return 1;
    cce_param_count p = cce_model_params(m);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dir", out);
        cJSON_AddStringToObject(o, "like", like);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddNumberToObject(o, "params", (double)p.total);
        cJSON_AddNumberToObject(o, "params_non_embedding", (double)p.non_embedding);
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "seconds", dt);
        cli_json_print(o);
    } else {
        printf("wrote %s (%s, seed %ld): %lld parameters (%lld non-embedding), %llu bytes in %.1f s\n", out, like,
               seed, (long long)p.total, (long long)p.non_embedding, (unsigned long long)bytes, dt);
    }
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return 0;
}
