/*
 * cmd_analyze.c — `cce analyze MODEL --calib FILE [--tokens N] [--seq-len N] [--seed S]
 *                  [--subsample N] [--eps E] [--tau T] [--tokenizer FILE] -o FILE [--json]`.
 *
 * --random-tokens replaces --calib with seeded uniform token ids (for timing models that come
 * without a tokenizer, such as `cce synth` ones; never for judging compression quality).
 *
 * Runs the analysis job (include/analysis.h) block by block on the calling thread while a small
 * watcher thread reports progress on stderr and turns Ctrl-C into cce_analysis_cancel, so an
 * interrupt stops inside the current block. The result is written atomically as JSON:
 *
 *   format_version, program, kind "analysis", readings (what each number means),
 *   model {path, sha256, format, arch, shapes, parameters}, calibration {path, sha256,
 *   stream_tokens, tokens, n_seq, seq_len, seed, subsample}, settings {eps, tau, ridge, hist_bins},
 *   layer_similarity {measure, matrix (L, L)},
 *   blocks[] {layer, shapes, angular_distance, influence, update_rms, near_identity,
 *             eigen {site: {values, below_eps}}, weights[] {name, rows, cols, spectral_norm,
 *             frobenius, stable_rank, below_tau, aware_below_tau, jitter, singular_values,
 *             aware_singular_values}, head_similarity (H, H), group_similarity (G, G),
 *             redundancy {heads, neurons: {score, cost, order}}, histograms {site: {lo, hi, min,
 *             max, counts [under, bins..., over]}}, timings {...}},
 *   timings {total_seconds}.
 * For a fixed seed the file is byte-identical from run to run apart from the "timings" objects
 * (with the same OPENBLAS_NUM_THREADS: BLAS may round differently with another thread count,
 * which moves values by ~1e-10 relative).
 * Human output: one line per block; --json: a short summary object on stdout.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cli.h"
#include "analysis.h"

#define ANALYSIS_FORMAT_VERSION 1

typedef struct {
    cce_analysis *job;
    volatile int stop;
} watcher;

static void *watch_main(void *arg) {
    watcher *w = arg;
    struct timespec ts = {0, 50 * 1000 * 1000};
    while (!w->stop) {
        if (cli_interrupted) cce_analysis_cancel(w->job);
        int done, total;
        char phase[96];
        cce_analysis_progress(w->job, &done, &total, phase, sizeof phase);
        cli_progress(phase, done, total);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static cJSON *float_array(const float *v, int n) {
    return n > 0 && v ? cJSON_CreateFloatArray(v, n) : cJSON_CreateArray();
}

static cJSON *square_matrix(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, float_array(v + (size_t)i * n, n));
    return a;
}

/* sha256 of what the user named: a file itself; for a directory its model.safetensors (or
 * model.safetensors.index.json, or config.json). */
static int model_sha256(const char *path, char out[65], cce_err *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *names[] = {"model.safetensors", "model.safetensors.index.json", "config.json"};
        for (int i = 0; i < 3; i++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, names[i]);
            if (stat(p, &st) == 0) return cce_sha256_file(p, out, err) ? -1 : 0;
        }
    }
    return cce_sha256_file(path, out, err) ? -1 : 0;
}

static cJSON *block_json(const cce_block_result *r) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddNumberToObject(b, "layer", r->layer);
    cJSON_AddBoolToObject(b, "dropped", r->dropped);
    cJSON_AddNumberToObject(b, "n_heads", r->n_heads);
    cJSON_AddNumberToObject(b, "n_kv_heads", r->n_kv_heads);
    cJSON_AddNumberToObject(b, "head_dim", r->head_dim);
    cJSON_AddNumberToObject(b, "hidden", r->hidden);
    cJSON_AddNumberToObject(b, "angular_distance", r->angular_distance);
    cJSON_AddNumberToObject(b, "influence", r->influence);
    cJSON_AddNumberToObject(b, "update_rms", r->update_rms);
    cJSON_AddBoolToObject(b, "near_identity", r->near_identity);
    cJSON *eig = cJSON_AddObjectToObject(b, "eigen");
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        if (r->eig[s].n <= 0) continue;
        cJSON *e = cJSON_AddObjectToObject(eig, cce_cov_site_name((cce_cov_site)s));
        cJSON_AddNumberToObject(e, "below_eps", r->eig[s].below_eps);
        cJSON_AddItemToObject(e, "values", float_array(r->eig[s].values, r->eig[s].n));
    }
    cJSON *ws = cJSON_AddArrayToObject(b, "weights");
    for (int k = 0; k < r->n_weights; k++) {
        const cce_weight_spectrum *w = &r->weights[k];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", w->name);
        cJSON_AddNumberToObject(o, "rows", w->rows);
        cJSON_AddNumberToObject(o, "cols", w->cols);
        cJSON_AddNumberToObject(o, "spectral_norm", w->spectral_norm);
        cJSON_AddNumberToObject(o, "frobenius", w->frobenius);
        cJSON_AddNumberToObject(o, "stable_rank", w->stable_rank);
        cJSON_AddNumberToObject(o, "below_tau", w->below_tau);
        cJSON_AddNumberToObject(o, "aware_below_tau", w->aw_below_tau);
        cJSON_AddNumberToObject(o, "jitter", w->jitter);
        cJSON_AddItemToObject(o, "singular_values", float_array(w->sv, w->n));
        cJSON_AddItemToObject(o, "aware_singular_values", float_array(w->sv_aw, w->n));
        cJSON_AddItemToArray(ws, o);
    }
    if (!r->dropped) {
        cJSON_AddItemToObject(b, "head_similarity", square_matrix(r->head_cka, r->n_heads));
        cJSON_AddItemToObject(b, "group_similarity", square_matrix(r->group_cka, r->n_kv_heads));
        cJSON *red = cJSON_AddObjectToObject(b, "redundancy");
        cJSON *h = cJSON_AddObjectToObject(red, "heads");
        cJSON_AddItemToObject(h, "score", float_array(r->head_score, r->n_heads));
        cJSON_AddItemToObject(h, "cost", float_array(r->head_cost, r->n_heads));
        cJSON_AddItemToObject(h, "order", cJSON_CreateIntArray(r->head_order, r->n_heads));
        cJSON *nr = cJSON_AddObjectToObject(red, "neurons");
        cJSON_AddItemToObject(nr, "score", float_array(r->neuron_score, r->hidden));
        cJSON_AddItemToObject(nr, "cost", float_array(r->neuron_cost, r->hidden));
        cJSON_AddItemToObject(nr, "order", cJSON_CreateIntArray(r->neuron_order, r->hidden));
    }
    cJSON *hs = cJSON_AddObjectToObject(b, "histograms");
    for (int s = 0; s < CCE_TAP_COUNT; s++) {
        const cce_hist *hg = &r->hist[s];
        if (!hg->counts || !hg->total) continue;
        cJSON *o = cJSON_AddObjectToObject(hs, cce_tap_site_name((cce_tap_site)s));
        cJSON_AddNumberToObject(o, "lo", hg->lo);
        cJSON_AddNumberToObject(o, "hi", hg->hi);
        cJSON_AddNumberToObject(o, "min", hg->min);
        cJSON_AddNumberToObject(o, "max", hg->max);
        cJSON *c = cJSON_AddArrayToObject(o, "counts");
        for (int i = 0; i < hg->n_bins + 2; i++) cJSON_AddItemToArray(c, cJSON_CreateNumber((double)hg->counts[i]));
    }
    cJSON *t = cJSON_AddObjectToObject(b, "timings");
    cJSON_AddNumberToObject(t, "forward", r->t_forward);
    cJSON_AddNumberToObject(t, "stats", r->t_stats);
    cJSON_AddNumberToObject(t, "similarity", r->t_similarity);
    cJSON_AddNumberToObject(t, "eigen", r->t_eigen);
    cJSON_AddNumberToObject(t, "svd", r->t_svd);
    cJSON_AddNumberToObject(t, "redundancy", r->t_redundancy);
    return b;
}

static cJSON *readings_json(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "eigen", "eigenvalues (descending) of centred activation covariances; below_eps = count of "
                                        "lambda < eps * lambda_max");
    cJSON_AddStringToObject(o, "layer_similarity", "linear CKA between centred block updates h_l - h_{l-1} on a seeded "
                                                   "token subsample; 0 when an update is zero");
    cJSON_AddStringToObject(o, "angular_distance", "mean over tokens of arccos(cos(h_in, h_out)) / pi");
    cJSON_AddStringToObject(o, "influence", "1 - mean over tokens of cos(h_in, h_out)");
    cJSON_AddStringToObject(o, "head_similarity", "linear CKA between head contributions o_h W_o[:,h]^T, from the "
                                                  "per-head output covariance; group_similarity: the same over KV groups");
    cJSON_AddStringToObject(o, "weights", "singular values of W and activation-aware sigma(W L) with E[x x^T] = L L^T "
                                          "of the matrix input; below_tau = count of sigma < tau * sigma_max");
    cJSON_AddStringToObject(o, "redundancy", "score = 1 - residual/variance of a component's contribution after "
                                             "ridge least squares on all other components; cost = weighted residual; "
                                             "order = greedy backward elimination by least cost (first = first to remove)");
    return o;
}

/* The shortest decimal that reads back as this float (1e-3f, not 0.0010000000474974513). */
static double float_as_decimal(float x) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)x);
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return strtod(buf, NULL);
}

int cmd_analyze(int argc, char **argv) {
    cli_opt opts[] = {
        {"calib", 1, "calibration text file", NULL},
        {"tokens", 1, "calibration tokens (default 4096)", NULL},
        {"seq-len", 1, "tokens per sequence (default min(256, model context))", NULL},
        {"seed", 1, "seed for the windows and the token subsample (default 1)", NULL},
        {"subsample", 1, "tokens kept per block for the layer similarity (default 1024)", NULL},
        {"eps", 1, "eigenvalue threshold for the counts (default 1e-3)", NULL},
        {"tau", 1, "singular value threshold for the counts (default 1e-2)", NULL},
        {"bins", 1, "histogram bins (default 64)", NULL},
        {"tokenizer", 1, "tokenizer file", NULL},
        {"random-tokens", 0, "calibrate on seeded random token ids instead of --calib (timing only)", NULL},
        {"o", 1, "output JSON file", NULL},
        {"json", 0, "one JSON summary object on stdout", NULL},
        {"help", 0, "this help, with the readings the numbers use", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    if (cli_get(opts, n_opts, "help")) {
        printf("usage: cce analyze MODEL --calib FILE -o FILE [options]\n\n");
        for (int i = 0; i < n_opts; i++)
            printf("  %s%-14s %s%s\n", opts[i].name[1] ? "--" : " -", opts[i].name, opts[i].has_arg ? "VALUE  " : "       ",
                   opts[i].help);
        printf("\nreadings:\n");
        cJSON *r = readings_json();
        for (cJSON *it = r->child; it; it = it->next) printf("  %-17s %s\n", it->string, it->valuestring);
        cJSON_Delete(r);
        printf("\nThe JSON is byte-identical between runs with the same seed and OPENBLAS_NUM_THREADS,\n"
               "apart from the \"timings\" objects.\n");
        return 0;
    }
    const char *calib_path = cli_get(opts, n_opts, "calib"), *out_path = cli_get(opts, n_opts, "o");
    int random_tokens = cli_get(opts, n_opts, "random-tokens") != NULL;
    if (!calib_path && !random_tokens) return cli_fail("analyze: --calib FILE is required");
    if (calib_path && random_tokens) return cli_fail("analyze: --calib and --random-tokens exclude each other");
    if (!out_path) return cli_fail("analyze: -o FILE is required");
    cce_analysis_opts ao;
    cce_analysis_opts_default(&ao);
    long tokens = ao.tokens, seq_len = 0, seed = 1, subsample = ao.subsample, bins = ao.hist_bins;
    double eps = ao.eps, tau = ao.tau;
    if (cli_get_long(opts, n_opts, "tokens", 2, 1L << 24, &tokens) ||
        cli_get_long(opts, n_opts, "seq-len", 2, 1 << 20, &seq_len) ||
        cli_get_long(opts, n_opts, "seed", 0, 0x7fffffffffffffffL, &seed) ||
        cli_get_long(opts, n_opts, "subsample", 2, 1 << 20, &subsample) ||
        cli_get_long(opts, n_opts, "bins", 1, 4096, &bins) ||
        cli_get_double(opts, n_opts, "eps", 0, 0.999, &eps) || cli_get_double(opts, n_opts, "tau", 0, 0.999, &tau))
        return 2;
    int json = cli_get(opts, n_opts, "json") != NULL;
    ao.tokens = tokens;
    ao.seq_len = (int)seq_len;
    ao.seed = (uint64_t)seed;
    ao.subsample = (int)subsample;
    ao.hist_bins = (int)bins;
    ao.eps = (float)eps;
    ao.tau = (float)tau;

    int rc = 1;
    cce_err err = {{0}};
    char *text = NULL, *printed = NULL;
    int *rand_ids = NULL;
    size_t len = 0;
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_analysis *job = NULL;
    cJSON *root = NULL;
    char model_sha[65], calib_sha[65];
    const char *model_path = n_pos ? pos[0] : cli_default_model();
    if (random_tokens) {
        calib_path = "random-tokens";
        snprintf(calib_sha, sizeof calib_sha, "none");
    } else {
        if (cli_read_text(calib_path, &text, &len)) return 1;
        if (cce_sha256_file(calib_path, calib_sha, &err)) { rc = cli_fail_err(&err); goto cleanup; }
    }
    if (cli_open_model(model_path, cli_get(opts, n_opts, "tokenizer"), !random_tokens, &m,
                       random_tokens ? NULL : &tok))
        goto cleanup;
    if (model_sha256(model_path, model_sha, &err)) { rc = cli_fail_err(&err); goto cleanup; }
    if (ao.seq_len > m->cfg.seq_len) {
        rc = cli_fail("analyze: --seq-len %d is above the model context %d", ao.seq_len, m->cfg.seq_len);
        goto cleanup;
    }
    cce_calib_source src = {.tok = tok, .text = text, .text_len = len};
    if (random_tokens) {
        if (!(rand_ids = cce_alloc((size_t)tokens, sizeof(int)))) { rc = cli_fail("analyze: out of memory"); goto cleanup; }
        cce_rng r;
        cce_rng_seed(&r, (uint64_t)seed);
        for (long i = 0; i < tokens; i++) rand_ids[i] = (int)(cce_rng_u64(&r) % (uint64_t)m->cfg.vocab_size);
        src = (cce_calib_source){.ids = rand_ids, .n_ids = (size_t)tokens};
    }
    if (cce_analysis_new(m, &src, &ao, &job, &err)) { rc = cli_fail("analyze: %s", err.msg); goto cleanup; }
    cce_free(text);   // the job keeps its own copy
    text = NULL;

    double t0 = cce_now();
    watcher w = {job, 0};
    pthread_t th;
    int have_thread = pthread_create(&th, NULL, watch_main, &w) == 0;
    cce_status st = cce_analysis_run(job, &err);
    w.stop = 1;
    if (have_thread) pthread_join(th, NULL);
    cli_progress_end();
    double seconds = cce_now() - t0;
    if (st == CCE_ECANCEL && cli_interrupted) {
        fprintf(stderr, "cce: interrupted\n");
        rc = 130;
        goto cleanup;
    }
    if (st) { rc = cli_fail("%s: %s", calib_path, err.msg); goto cleanup; }

    const cce_analysis_opts *eo = cce_analysis_get_opts(job);
    int L = cce_analysis_n_layers(job), n_seq, slen;
    size_t stream;
    cce_analysis_calib_info(job, &stream, &n_seq, &slen);
    root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "format_version", ANALYSIS_FORMAT_VERSION);
    cJSON_AddStringToObject(root, "program", "cce");
    cJSON_AddStringToObject(root, "kind", "analysis");
    cJSON_AddItemToObject(root, "readings", readings_json());
    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "path", model_path);
    cJSON_AddStringToObject(mo, "sha256", model_sha);
    cJSON_AddStringToObject(mo, "format", cce_format_name(m->format));
    cJSON_AddStringToObject(mo, "arch", cce_arch_name(m->cfg.arch));
    cJSON_AddNumberToObject(mo, "dim", m->cfg.dim);
    cJSON_AddNumberToObject(mo, "n_layers", m->cfg.n_layers);
    cJSON_AddNumberToObject(mo, "n_heads", m->cfg.n_heads);
    cJSON_AddNumberToObject(mo, "n_kv_heads", m->cfg.n_kv_heads);
    cJSON_AddNumberToObject(mo, "head_dim", m->cfg.head_dim);
    cJSON_AddNumberToObject(mo, "hidden_dim", m->cfg.hidden_dim);
    cJSON_AddNumberToObject(mo, "vocab_size", m->cfg.vocab_size);
    cJSON_AddNumberToObject(mo, "seq_len", m->cfg.seq_len);
    cce_param_count pc = cce_model_params(m);
    cJSON_AddNumberToObject(mo, "params_total", (double)pc.total);
    cJSON_AddNumberToObject(mo, "params_non_embedding", (double)pc.non_embedding);
    cJSON *co = cJSON_AddObjectToObject(root, "calibration");
    cJSON_AddStringToObject(co, "path", calib_path);
    cJSON_AddStringToObject(co, "sha256", calib_sha);
    cJSON_AddNumberToObject(co, "stream_tokens", (double)stream);
    cJSON_AddNumberToObject(co, "tokens", (double)n_seq * slen);
    cJSON_AddNumberToObject(co, "n_seq", n_seq);
    cJSON_AddNumberToObject(co, "seq_len", slen);
    cJSON_AddNumberToObject(co, "seed", (double)eo->seed);
    cJSON_AddNumberToObject(co, "subsample", eo->subsample < n_seq * slen ? eo->subsample : n_seq * slen);
    cJSON *so = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddNumberToObject(so, "eps", float_as_decimal(eo->eps));
    cJSON_AddNumberToObject(so, "tau", float_as_decimal(eo->tau));
    cJSON_AddNumberToObject(so, "ridge", eo->ridge);
    cJSON_AddNumberToObject(so, "hist_bins", eo->hist_bins);
    cJSON *ls = cJSON_AddObjectToObject(root, "layer_similarity");
    cJSON_AddStringToObject(ls, "measure", "linear CKA of centred block updates");
    cJSON_AddItemToObject(ls, "matrix", square_matrix(cce_analysis_layer_cka(job, NULL), L));
    cJSON *bl = cJSON_AddArrayToObject(root, "blocks");
    for (int l = 0; l < L; l++) cJSON_AddItemToArray(bl, block_json(cce_analysis_block(job, l)));
    cJSON *tm = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(tm, "total_seconds", seconds);
    printed = cJSON_Print(root);
    if (!printed) { rc = cli_fail("analyze: out of memory formatting the JSON"); goto cleanup; }
    size_t plen = strlen(printed);
    printed[plen] = '\n';   // replaces the NUL: the file ends with a newline
    if (cce_write_file_atomic(out_path, printed, plen + 1, &err)) { rc = cli_fail_err(&err); goto cleanup; }

    if (json) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "output", out_path);
        cJSON_AddNumberToObject(s, "blocks", L);
        cJSON_AddNumberToObject(s, "tokens", (double)n_seq * slen);
        cJSON_AddNumberToObject(s, "seconds", seconds);
        cJSON *ad = cJSON_AddArrayToObject(s, "angular_distance");
        cJSON *ni = cJSON_AddArrayToObject(s, "near_identity");
        /* phase totals over blocks: forward is GEMM-bound (sgemm), stats is ssyrk, eigen is
         * ssyevd, svd is spotrf + sgesdd; similarity and redundancy are the engine's own loops */
        double ph[6] = {0}; /* forward stats eigen svd redundancy similarity */
        for (int l = 0; l < L; l++) {
            const cce_block_result *r = cce_analysis_block(job, l);
            cJSON_AddItemToArray(ad, cJSON_CreateNumber(r->angular_distance));
            if (r->near_identity) cJSON_AddItemToArray(ni, cJSON_CreateNumber(l));
            ph[0] += r->t_forward; ph[1] += r->t_stats; ph[2] += r->t_eigen;
            ph[3] += r->t_svd; ph[4] += r->t_redundancy; ph[5] += r->t_similarity;
        }
        double blocks_total = ph[0] + ph[1] + ph[2] + ph[3] + ph[4] + ph[5];
        cJSON *pt = cJSON_AddObjectToObject(s, "phase_seconds");
        cJSON_AddNumberToObject(pt, "forward", ph[0]);
        cJSON_AddNumberToObject(pt, "stats", ph[1]);
        cJSON_AddNumberToObject(pt, "eigen", ph[2]);
        cJSON_AddNumberToObject(pt, "svd", ph[3]);
        cJSON_AddNumberToObject(pt, "redundancy", ph[4]);
        cJSON_AddNumberToObject(pt, "similarity", ph[5]);
        cJSON_AddNumberToObject(s, "seconds_per_block", L ? blocks_total / L : 0);
        cJSON_AddNumberToObject(s, "blas_lapack_phase_share", blocks_total > 0 ? (ph[0] + ph[1] + ph[2] + ph[3]) / blocks_total : 0);
        cJSON_AddNumberToObject(s, "peak_rss_mb", cce_peak_rss_mb());
        cli_json_print(s);
    } else {
        printf("analysis of %s: %d blocks, %d tokens (%d x %d), %.2f s -> %s\n", model_path, L, n_seq * slen, n_seq,
               slen, seconds, out_path);
        printf("block  ang.dist  influence  eig<eps(attn_in heads ffn_act)  max head score  max neuron score\n");
        for (int l = 0; l < L; l++) {
            const cce_block_result *r = cce_analysis_block(job, l);
            if (r->dropped) {
                printf("%5d  dropped\n", l);
                continue;
            }
            float hmax = 0, nmax = 0;
            for (int h = 0; h < r->n_heads; h++) hmax = r->head_score[h] > hmax ? r->head_score[h] : hmax;
            for (int i = 0; i < r->hidden; i++) nmax = r->neuron_score[i] > nmax ? r->neuron_score[i] : nmax;
            printf("%5d  %8.4f  %9.4f  %5d/%-5d %5d/%-5d %5d/%-5d  %14.3f  %16.3f%s\n", l, r->angular_distance,
                   r->influence, r->eig[CCE_COV_ATTN_IN].below_eps, r->eig[CCE_COV_ATTN_IN].n,
                   r->eig[CCE_COV_HEADS].below_eps, r->eig[CCE_COV_HEADS].n, r->eig[CCE_COV_FFN_ACT].below_eps,
                   r->eig[CCE_COV_FFN_ACT].n, (double)hmax, (double)nmax, r->near_identity ? "  near identity" : "");
        }
    }
    rc = 0;
cleanup:
    if (printed) cJSON_free(printed);
    cJSON_Delete(root);
    cce_analysis_free(job);
    cce_free(text);
    cce_free(rand_ids);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return rc;
}
