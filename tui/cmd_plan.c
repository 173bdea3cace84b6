/*
 * cmd_plan.c — `cce plan` (analysis → plan file) and `cce apply` (plan → compressed model on
 * disk).
 *
 *   cce plan MODEL [--calib FILE|DIR] [--tokens N] [--seq-len N] [--seed S]
 *            [--alpha A --beta B --gamma G --eps E --tau T --target P]
 *            [--pin B:KIND[:I],...] [--force B:KIND[:I],...]
 *            [--redistribute none|lsq|bias] [--ridge R] [--enc-tokens N] [--no-intercept]
 *            [--no-refit-inputs] [--refit changed|all] [--analysis FILE] -o plan.json [--json]
 *   cce apply MODEL --plan plan.json -o OUT [--format hf|gguf] [--calib FILE|DIR] [--dtype T] [--json]
 *
 * plan runs the analysis itself (or reuses --analysis FILE from `cce analyze` when its model and
 * calibration match), builds the plan from the curves (plan.h) and writes it atomically; human
 * output is one line per block and the totals, --json the plan itself on one line. apply
 * encodes the plan with its calibration text (checked by SHA-256) and writes the compressed
 * model: a Hugging Face directory (default) or a GGUF file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_plan.h"
#include "encode.h"
#include "search.h"
#include "export.h"
#include "safetensors.h"

/* Parse a comma-separated list of pins into *out. */
static int parse_pins(const char *list, cce_pin **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!list || !*list) return 0;
    int cap = 1;
    for (const char *q = list; *q; q++) cap += *q == ',';
    cce_pin *v = cce_alloc((size_t)cap, sizeof *v);
    char *copy = cce_strdup(list);
    if (!v || !copy) {
        cce_free(v);
        cce_free(copy);
        return cli_fail("out of memory");
    }
    int k = 0, rc = 0;
    for (char *save = NULL, *tokn = strtok_r(copy, ",", &save); tokn && !rc; tokn = strtok_r(NULL, ",", &save))
        rc = cli_parse_pin(tokn, &v[k++]);
    cce_free(copy);
    if (rc) {
        cce_free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

static int plan_search_progress(void *user, int done, int total, const char *phase) {
    (void)user;
    cli_progress(phase, done, total);
    return cli_interrupted != 0;
}

static void print_plan(const cce_plan *p, const cce_model *m) {
    printf("block  heads      kv      ffn          ranks (wq wk wv wo w1 w3 w2)  drop        L_rec     params removed\n");
    for (int l = 0; l < p->n_blocks; l++) {
        const cce_block_plan *b = &p->blocks[l];
        const cce_layer *L = &m->layers[l];
        char ranks[64] = "";
        int any = 0;
        for (int k = 0; k < CCE_LIN_COUNT; k++) any |= b->rank[k] > 0;
        if (any) {
            size_t o = 0;
            for (int k = 0; k < CCE_LIN_COUNT; k++)
                o += (size_t)snprintf(ranks + o, sizeof ranks - o, b->rank[k] ? "%d " : "- ", b->rank[k]);
        } else {
            snprintf(ranks, sizeof ranks, "dense");
        }
        const char *drop = b->drop ? "block" : b->drop_attn && b->drop_ffn ? "both" : b->drop_attn ? "attn" : b->drop_ffn ? "ffn" : "-";
        printf("%5d  %3d/%-3d  %3d/%-3d  %5d/%-5d  %-29s  %-6s  %9.3g  %9lld (%.1f%%)\n", l, b->n_heads, L->n_heads,
               b->n_kv_heads, L->n_kv_heads, b->hidden, L->hidden, ranks, drop, b->L_rec,
               (long long)(b->params_before - b->params_after),
               b->params_before ? 100.0 * (double)(b->params_before - b->params_after) / (double)b->params_before : 0.0);
    }
    printf("non-embedding parameters %lld -> %lld: %.2f%% removed (target %.2f%%); predicted L_rec %.4g, "
           "L_sim %.4g, L_reg %.4g, L_CCE %.4g\n",
           (long long)p->params_before, (long long)p->params_after, 100 * p->removed_fraction, 100 * p->knobs.target,
           p->L_rec, p->L_sim, p->L_reg, p->L_cce);
}

int cmd_plan(int argc, char **argv) {
    cli_opt opts[] = {
        {"calib", 1, "calibration text: a file or a directory of files (default $CCE_DATA/text/train)", NULL},
        {"tokens", 1, "analysis calibration tokens (default 4096)", NULL},
        {"seq-len", 1, "calibration window length", NULL},
        {"seed", 1, "which calibration windows", NULL},
        {"alpha", 1, "weight of L_rec (default 1)", NULL},
        {"beta", 1, "weight of L_sim (default 0)", NULL},
        {"gamma", 1, "weight of L_reg (default 0)", NULL},
        {"eps", 1, "eigenvalue threshold (threshold mode)", NULL},
        {"tau", 1, "singular value threshold (threshold mode)", NULL},
        {"target", 1, "fraction of non-embedding parameters to remove; 0: threshold mode (default 0.2)", NULL},
        {"pin", 1, "never remove: BLOCK:KIND[:INDEX],...", NULL},
        {"force", 1, "always remove: BLOCK:KIND[:INDEX],...", NULL},
        {"redistribute", 1, "none | lsq | bias (default lsq)", NULL},
        {"ridge", 1, "relative ridge of the least-squares refits (default 1e-3)", NULL},
        {"enc-tokens", 1, "calibration tokens of the sequential encoding (default 8192)", NULL},
        {"no-intercept", 0, "no bias absorbing means in the refits", NULL},
        {"no-refit-inputs", 0, "do not refit q/k/v and gate/up rows", NULL},
        {"refit", 1, "changed | all: which blocks the encoder refits (default all)", NULL},
        {"analysis", 1, "reuse an analysis file of `cce analyze` for this model and calibration", NULL},
        {"search", 1, "N | auto: refine the allocation by encoding and scoring N candidate plans on held-out calibration windows (auto: 2L+6 on models up to 5M parameters, else 0; default 0: on stories260K short searches helped the calibration-like dev set and hurt unseen text)", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"output", 1, "plan file to write", NULL},
        {"json", 0, "print the plan as one JSON object", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    const char *out_path = cli_get(opts, n_opts, "output");
    if (!out_path) return cli_fail("plan: -o plan.json is required");
    cce_analysis_opts ao;
    cce_analysis_opts_default(&ao);
    long tokens = ao.tokens, seq_len = 0, seed = 1, enc_tokens = 0, search = 0;
    double v;
    cce_plan p;
    memset(&p, 0, sizeof p);
    cce_knobs kn;
    cce_knobs_default(&kn);
    double *kslot[6] = {&kn.alpha, &kn.beta, &kn.gamma, &kn.eps, &kn.tau, &kn.target};
    for (int i = 0; i < 6; i++) {
        v = *kslot[i];
        if (cli_get_double(opts, n_opts, cce_knob_names[i], 0, 1e6, &v)) return 2;
        *kslot[i] = v;
    }
    cce_err err = {{0}};
    if (cce_knobs_check(&kn, "plan", &err)) return cli_fail_err(&err);
    double ridge = 1e-3;
    if (cli_get_long(opts, n_opts, "tokens", 2, 1L << 24, &tokens) || cli_get_long(opts, n_opts, "seq-len", 2, 1 << 20, &seq_len) ||
        cli_get_long(opts, n_opts, "seed", 0, (1L << 53), &seed) || cli_get_long(opts, n_opts, "enc-tokens", 2, 1L << 24, &enc_tokens) ||
        cli_get_double(opts, n_opts, "ridge", 1e-12, 1e3, &ridge))
        return 2;
    const char *search_s = cli_get(opts, n_opts, "search");
    int search_auto = search_s && !strcmp(search_s, "auto");   // default: no search (search.h)
    if (!search_auto && cli_get_long(opts, n_opts, "search", 0, 100000, &search)) return 2;
    const char *redist = cli_get(opts, n_opts, "redistribute"), *refit = cli_get(opts, n_opts, "refit");
    if (redist && strcmp(redist, "none") && strcmp(redist, "lsq") && strcmp(redist, "bias"))
        return cli_fail("plan: --redistribute must be none, lsq or bias, not '%s'", redist);
    if (refit && strcmp(refit, "changed") && strcmp(refit, "all"))
        return cli_fail("plan: --refit must be changed or all, not '%s'", refit);
    cce_pin *pins = NULL, *forces = NULL;
    int n_pins = 0, n_forces = 0;
    if (parse_pins(cli_get(opts, n_opts, "pin"), &pins, &n_pins) || parse_pins(cli_get(opts, n_opts, "force"), &forces, &n_forces)) {
        cce_free(pins);
        return 2;
    }

    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cli_calib cal = {0};
    cce_analysis *job = NULL;
    int rc = 1;
    if (cli_open_model(n_pos ? pos[0] : NULL, cli_get(opts, n_opts, "tokenizer"), 1, &m, &tok)) goto done;
    if ((rc = cli_read_calib(cli_get(opts, n_opts, "calib"), tok, &cal))) goto done;
    rc = 1;
    ao.tokens = tokens;
    ao.seq_len = (int)seq_len;
    ao.seed = (uint64_t)seed;
    ao.eps = (float)kn.eps;
    ao.tau = (float)kn.tau;
    const char *an_path = cli_get(opts, n_opts, "analysis");
    if (an_path) {   // reuse an analysis made for this model (checked by the loader) and this calibration
        if (cce_analysis_load(an_path, m, &job, &err)) { rc = cli_fail_err(&err); goto done; }
        if (strcmp(cce_analysis_calib_sha256(job), cal.sha256)) {
            rc = cli_fail("%s: the analysis was made with the calibration text '%s' (sha256 %.16s…), not %s (sha256 %.16s…); "
                          "rerun cce analyze with --calib %s or drop --analysis",
                          an_path, cce_analysis_calib_path(job), cce_analysis_calib_sha256(job), cal.path, cal.sha256, cal.path);
            goto done;
        }
        seed = (long)cce_analysis_get_opts(job)->seed;
    }
    cce_calib_source src = {.ids = cal.ids, .n_ids = cal.n_ids};
    if (!job && (cce_analysis_new(m, &src, &ao, &job, &err) || cli_run_analysis(job, &err))) {
        if (cli_interrupted) {
            fprintf(stderr, "cce: interrupted\n");
            rc = 130;
        } else rc = cli_fail_err(&err);
        goto done;
    }
    if (cce_plan_init(&p, m, &err)) { rc = cli_fail_err(&err); goto done; }
    p.knobs = kn;
    p.pins = pins, p.n_pins = n_pins, pins = NULL;
    p.forces = forces, p.n_forces = n_forces, forces = NULL;
    if (redist) p.enc.redistribute = !strcmp(redist, "none") ? CCE_REDIST_NONE : !strcmp(redist, "bias") ? CCE_REDIST_BIAS : CCE_REDIST_LSQ;
    p.enc.ridge = ridge;
    if (enc_tokens) p.enc.tokens = enc_tokens;
    if (cli_get(opts, n_opts, "no-intercept")) p.enc.intercept = 0;
    if (cli_get(opts, n_opts, "no-refit-inputs")) p.enc.refit_inputs = 0;
    if (refit) p.enc.refit_all = !strcmp(refit, "all");
    size_t stream = 0;
    int n_seq = 0, sl = 0;
    cce_analysis_calib_info(job, &stream, &n_seq, &sl);
    char absolute[4096];   // the plan names its calibration by a path that works from anywhere
    snprintf(p.calib.path, sizeof p.calib.path, "%s", realpath(cal.path, absolute) ? absolute : cal.path);
    memcpy(p.calib.sha256, cal.sha256, sizeof p.calib.sha256);
    p.calib.tokens = (long)n_seq * sl;
    p.calib.seq_len = sl;
    p.calib.seed = (uint64_t)seed;
    if (cce_model_id_of(m, &p.model, &err) || cce_plan_build(&p, m, job, &err)) {
        rc = cli_fail_err(&err);
        goto done;
    }
    if (search_auto) search = cce_search_auto(m);
    if (search > 0) {
        cce_search_opts so;
        cce_search_opts_default(&so);
        so.evaluations = (int)search;
        cce_search_result sr;
        const cce_block_result **blocks = cce_alloc((size_t)m->cfg.n_layers, sizeof *blocks);
        if (!blocks) { rc = cli_fail("out of memory"); goto done; }
        for (int l = 0; l < m->cfg.n_layers; l++) blocks[l] = cce_analysis_block(job, l);
        cce_status ss = cce_plan_search(&p, m, blocks, cal.ids, cal.n_ids, &so, plan_search_progress, NULL, &sr, &err);
        cce_free(blocks);
        cli_progress_end();
        if (ss) {
            if (ss == CCE_ECANCEL && cli_interrupted) { fprintf(stderr, "cce: interrupted\n"); rc = 130; }
            else rc = cli_fail_err(&err);
            goto done;
        }
        fprintf(stderr, "search: %d candidates on %ld held-out calibration tokens: dev NLL dense %.4f, first plan %.4f, best %.4f\n",
                sr.evaluated, sr.dev_tokens, sr.dense_nll, sr.first_nll, sr.best_nll);
    }
    if (cce_plan_save(&p, out_path, &err)) {
        rc = cli_fail_err(&err);
        goto done;
    }
    if (p.knobs.target > 0 && p.removed_fraction + 1e-12 < p.knobs.target)
        fprintf(stderr, "cce: warning: the plan removes %.2f%% of the non-embedding parameters, short of the %.2f%% "
                        "target (pins, or nothing left that the analysis can price)\n",
                100 * p.removed_fraction, 100 * p.knobs.target);
    if (cli_get(opts, n_opts, "json")) {
        char *text = NULL;
        if (cce_plan_to_json(&p, &text, &err)) { rc = cli_fail_err(&err); goto done; }
        cJSON *o = cJSON_Parse(text);
        cce_free(text);
        cli_json_print(o);
    } else {
        print_plan(&p, m);
        printf("plan written to %s\n", out_path);
    }
    rc = 0;
done:
    cce_free(pins);
    cce_free(forces);
    cce_plan_free(&p);
    cce_analysis_free(job);
    cli_calib_free(&cal);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return rc;
}

int cmd_apply(int argc, char **argv) {
    cli_opt opts[] = {
        {"plan", 1, "plan file (cce plan)", NULL},
        {"output", 1, "output directory (hf) or file (gguf)", NULL},
        {"format", 1, "hf | gguf (default hf)", NULL},
        {"dtype", 1, "weights: f32 | f16 | bf16 (hf); f32 | f16 | q8_0 (gguf)", NULL},
        {"calib", 1, "calibration text, if not where the plan says", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"json", 0, "one JSON object on stdout", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    const char *plan_path = cli_get(opts, n_opts, "plan"), *out_path = cli_get(opts, n_opts, "output");
    const char *format = cli_get(opts, n_opts, "format"), *dtype_s = cli_get(opts, n_opts, "dtype");
    if (!plan_path) return cli_fail("apply: --plan FILE is required");
    if (!out_path) return cli_fail("apply: -o OUT is required");
    if (format && strcmp(format, "hf") && strcmp(format, "gguf"))
        return cli_fail("apply: --format must be hf or gguf, not '%s'", format);
    int gguf = format ? !strcmp(format, "gguf") : cce_str_ends_with(out_path, ".gguf");
    int dtype = CCE_ST_F32;
    cce_wtype gtype = CCE_WT_F32;
    if (dtype_s && gguf) {
        if (!strcmp(dtype_s, "f16")) gtype = CCE_WT_F16;
        else if (!strcmp(dtype_s, "q8_0")) gtype = CCE_WT_Q8_0;
        else if (strcmp(dtype_s, "f32")) return cli_fail("apply: --dtype for gguf must be f32, f16 or q8_0, not '%s'", dtype_s);
    } else if (dtype_s) {
        if (!strcmp(dtype_s, "f16")) dtype = CCE_ST_F16;
        else if (!strcmp(dtype_s, "bf16")) dtype = CCE_ST_BF16;
        else if (strcmp(dtype_s, "f32")) return cli_fail("apply: --dtype for hf must be f32, f16 or bf16, not '%s'", dtype_s);
    }
    cce_model *m = NULL, *c = NULL;
    cce_tokenizer *tok = NULL;
    cce_plan p;
    memset(&p, 0, sizeof p);
    int rc = 1;
    cce_err err = {{0}};
    if (cli_open_model(n_pos ? pos[0] : NULL, cli_get(opts, n_opts, "tokenizer"), 1, &m, &tok)) goto done;
    if ((rc = cli_open_plan(m, tok, plan_path, cli_get(opts, n_opts, "calib"), &p, &c))) goto done;
    rc = 1;
    cce_gguf_export_info gi;
    memset(&gi, 0, sizeof gi);
    if (gguf ? cce_export_gguf_ex(c, tok, out_path, gtype, &gi, &err) : cce_export_hf_dtype(c, tok, out_path, dtype, &err)) {
        if (cli_interrupted) {
            fprintf(stderr, "cce: interrupted\n");
            rc = 130;
        } else rc = cli_fail_err(&err);
        goto done;
    }
    if (gguf && gi.note[0]) fprintf(stderr, "cce: note: %s: %s\n", out_path, gi.note);
    cce_param_count pc = cce_model_params(c), p0 = cce_model_params(m);
    uint64_t bytes = gguf ? gi.bytes : cce_export_dir_bytes(out_path);
    const char *fmt_name = gguf ? "gguf" : "hf";
    if (cli_get(opts, n_opts, "json")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "output", out_path);
        cJSON_AddStringToObject(o, "format", fmt_name);
        if (gguf) cJSON_AddStringToObject(o, "arch", gi.arch);
        cJSON_AddNumberToObject(o, "params_before", (double)p0.non_embedding);
        cJSON_AddNumberToObject(o, "params_after", (double)pc.non_embedding);
        cJSON_AddNumberToObject(o, "removed_fraction", 1.0 - (double)pc.non_embedding / (double)p0.non_embedding);
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        cli_json_print(o);
    } else {
        printf("wrote %s (%s%s%s): non-embedding parameters %lld -> %lld (%.2f%% removed), %llu bytes on disk\n", out_path,
               fmt_name, gguf ? ", architecture " : "", gguf ? gi.arch : "",
               (long long)p0.non_embedding, (long long)pc.non_embedding,
               100.0 * (1.0 - (double)pc.non_embedding / (double)p0.non_embedding), (unsigned long long)bytes);
    }
    rc = 0;
done:
    cce_model_free(c);
    cce_plan_free(&p);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return rc;
}
