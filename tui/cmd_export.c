/*
 * cmd_export.c — `cce export MODEL -o DIR [--tokenizer FILE] [--no-tokenizer]
 * [--dtype f32|f16|bf16] [--json]`: write any loadable model as a Hugging Face directory
 * (config.json, model.safetensors — F32 by default, exact —, tokenizer.json when the model has
 * a tokenizer). llama2.c/GGUF models get their q/k rows
 * permuted to HF's RoPE convention (see include/export.h), so transformers loads them too.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "cli.h"
#include "export.h"
#include "safetensors.h"

int cmd_export(int argc, char **argv) {
    cli_opt opts[] = {
        {"output", 1, "output directory (created if missing)", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"no-tokenizer", 0, "do not write tokenizer.json", NULL},
        {"dtype", 1, "weight type in the file: f32 (default, exact), f16 or bf16", NULL},
        {"json", 0, "print one JSON object", NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    const char *out = cli_get(opts, n_opts, "output");
    if (!out) return cli_fail("export: missing -o DIR (the output directory)");
    int json = cli_get(opts, n_opts, "json") != NULL;
    const char *dt = cli_get(opts, n_opts, "dtype");
    int dtype = CCE_ST_F32;
    if (dt) {
        if (!strcasecmp(dt, "f32")) dtype = CCE_ST_F32;
        else if (!strcasecmp(dt, "f16")) dtype = CCE_ST_F16;
        else if (!strcasecmp(dt, "bf16")) dtype = CCE_ST_BF16;
        else return cli_fail("export: --dtype '%s' is not one of f32, f16, bf16", dt);
    }
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    if (cli_open_model(n_pos ? pos[0] : NULL, cli_get(opts, n_opts, "tokenizer"), 0, &m, &tok)) return 1;
    if (cli_get(opts, n_opts, "no-tokenizer")) {
        cce_tokenizer_free(tok);
        tok = NULL;
    }
    cce_err err = {{0}};
    int rc = 0;
    cce_status xs = cce_export_hf_dtype(m, tok, out, dtype, &err);
    if (xs) {
        rc = cli_fail_err(&err);
        if (xs == CCE_ECANCEL) rc = 130;
        goto done;
    }
    cce_param_count p = cce_model_params(m);
    uint64_t bytes = cce_export_dir_bytes(out);
    if (!tok) {
        /* a tokenizer.json left from an earlier export would be loaded with this model */
        char tp[4200];
        struct stat st;
        snprintf(tp, sizeof tp, "%s/tokenizer.json", out);
        if (stat(tp, &st) == 0 && S_ISREG(st.st_mode)) {
            bytes -= (uint64_t)st.st_size;
            fprintf(stderr, "cce: warning: %s is left from before (no tokenizer was exported); "
                            "remove it if it belongs to another model\n", tp);
        }
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dir", out);
        cJSON_AddNumberToObject(o, "params", (double)p.total);
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cJSON_AddBoolToObject(o, "tokenizer", tok != NULL);
        cJSON_AddStringToObject(o, "dtype", cce_st_dtype_name(dtype));
        cli_json_print(o);
    } else {
        printf("wrote %s: %lld parameters, %llu bytes%s\n", out, (long long)p.total, (unsigned long long)bytes,
               tok ? " (with tokenizer.json)" : " (no tokenizer)");
    }
done:
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return rc;
}
