/*
 * cmd_export.c — `cce export MODEL -o OUT [--format hf|gguf] [--dtype TYPE] [--tokenizer FILE]
 * [--no-tokenizer] [--json]`: write any loadable model
 *  - as a Hugging Face directory (--format hf, the default unless OUT ends in .gguf):
 *    config.json, model.safetensors (--dtype f32 (default, exact), f16 or bf16), tokenizer.json
 *    when the model has a tokenizer; llama2.c/GGUF models get their q/k rows permuted to HF's
 *    RoPE convention (see include/export.h), so transformers loads them too;
 *  - as one GGUF file (--format gguf): architecture llama, or deci for per-layer shapes, with the
 *    tokenizer in its metadata (--dtype f32 (default), f16 or q8_0); what the file cannot carry
 *    exactly is printed as one "cce: note:" line on stderr (and as "note" in --json), what
 *    llama.cpp could not run is refused with one error line.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "cli.h"
#include "export.h"
#include "safetensors.h"

static int export_gguf(const char *out, cce_model *m, cce_tokenizer *tok, const char *dt, int json) {
    cce_wtype dtype = CCE_WT_F32;
    if (dt) {
        if (!strcasecmp(dt, "f32")) dtype = CCE_WT_F32;
        else if (!strcasecmp(dt, "f16")) dtype = CCE_WT_F16;
        else if (!strcasecmp(dt, "q8_0")) dtype = CCE_WT_Q8_0;
        else return cli_fail("export: --dtype '%s' is not one of f32, f16, q8_0 (GGUF)", dt);
    }
    cce_err err = {{0}};
    cce_gguf_export_info info;
    cce_status xs = cce_export_gguf_ex(m, tok, out, dtype, &info, &err);
    if (xs) {
        int rc = cli_fail_err(&err);
        return xs == CCE_ECANCEL ? 130 : rc;
    }
    if (info.note[0]) fprintf(stderr, "cce: note: %s: %s\n", out, info.note);
    cce_param_count p = cce_model_params(m);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", out);
        cJSON_AddStringToObject(o, "format", "gguf");
        cJSON_AddStringToObject(o, "arch", info.arch);
        cJSON_AddNumberToObject(o, "blocks", info.n_blocks);
        cJSON_AddNumberToObject(o, "tensors", info.n_tensors);
        cJSON_AddNumberToObject(o, "params", (double)p.total);
        cJSON_AddNumberToObject(o, "bytes", (double)info.bytes);
        cJSON_AddBoolToObject(o, "tokenizer", tok != NULL);
        cJSON_AddStringToObject(o, "dtype", cce_wtype_name(dtype));
        cJSON_AddStringToObject(o, "note", info.note);
        cli_json_print(o);
    } else {
        printf("wrote %s: GGUF %s, %d blocks, %s, %lld parameters, %llu bytes%s\n", out, info.arch, info.n_blocks,
               cce_wtype_name(dtype), (long long)p.total, (unsigned long long)info.bytes,
               tok ? " (with tokenizer)" : " (no tokenizer)");
    }
    return 0;
}

int cmd_export(int argc, char **argv) {
    cli_opt opts[] = {
        {"output", 1, "output directory (hf) or file (gguf)", NULL},
        {"format", 1, "hf (a directory, default) or gguf (one file; default when -o ends in .gguf)", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"no-tokenizer", 0, "do not write the tokenizer", NULL},
        {"dtype", 1, "weight type: hf f32 (default, exact), f16, bf16; gguf f32 (default), f16, q8_0", NULL},
        {"json", 0, "print one JSON object", NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    const char *out = cli_get(opts, n_opts, "output");
    if (!out) return cli_fail("export: missing -o DIR (the output directory, or FILE.gguf with --format gguf)");
    int json = cli_get(opts, n_opts, "json") != NULL;
    const char *fmt = cli_get(opts, n_opts, "format");
    int gguf = fmt ? !strcasecmp(fmt, "gguf") : cce_str_ends_with(out, ".gguf");
    if (fmt && !gguf && strcasecmp(fmt, "hf"))
        return cli_fail("export: --format '%s' is not one of hf, gguf", fmt);
    const char *dt = cli_get(opts, n_opts, "dtype");
    int dtype = CCE_ST_F32;
    if (dt && !gguf) {
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
    int rc = 0;
    if (gguf) {
        rc = export_gguf(out, m, tok, dt, json);
        goto done;
    }
    cce_err err = {{0}};
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
