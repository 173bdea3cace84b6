/*
 * cmd_analyze.c — `cce analyze MODEL --calib FILE [--tokens N] [--seq-len N] [--seed S]
 *                  [--subsample N] [--eps E] [--tau T] [--tokenizer FILE] -o FILE [--json]`.
 *
 * --random-tokens replaces --calib with seeded uniform token ids (for timing models that come
 * without a tokenizer, such as `cce synth` ones; never for judging compression quality).
 *
 * Runs the analysis job (include/analysis.h) block by block on the calling thread while a small
 * watcher thread reports progress on stderr and turns Ctrl-C into cce_analysis_cancel, so an
 * interrupt stops inside the current block (and within 0.3 s in every phase). The model's
 * identity (cce_model_sha256) is hashed on another thread while the job runs. The result is
 * written by the engine (cce_analysis_save; the format is described in engine/analysis_io.c).
 * For a fixed seed the file is byte-identical from run to run apart from the "timings" objects
 * (with the same OPENBLAS_NUM_THREADS: BLAS may round differently with another thread count).
 * Human output: one line per block; --json: a short summary object on stdout.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "cli_plan.h"
#include "analysis.h"

typedef struct {
    const char *path;
    char sha[65];
    cce_status st;
    cce_err err;
} hasher;

static void *hash_main(void *arg) {
    hasher *h = arg;
    h->st = cce_model_sha256(h->path, h->sha, &h->err);
    return NULL;
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
        const char *name, *text;
        for (int i = 0; (text = cce_analysis_readings_text(i, &name)); i++) printf("  %-17s %s\n", name, text);
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

    /* Each block allocates and frees the same large buffers (covariances, inverses); keep them in
     * the heap instead of returning them to the kernel, which zeroes fresh pages on every block. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    int rc = 1;
    cce_err err = {{0}};
    char *text = NULL;
    int *rand_ids = NULL;
    size_t len = 0;
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    cce_analysis *job = NULL;
    char calib_sha[65];
    hasher hs = {0};
    pthread_t hash_th;
    int hashing = 0;
    const char *model_path = n_pos ? pos[0] : cli_default_model();
    if (random_tokens) {
        calib_path = "random-tokens";
        snprintf(calib_sha, sizeof calib_sha, "none");
    } else {
        if (cli_read_text(calib_path, &text, &len)) return 1;
        cce_sha256_hex(text, len, calib_sha);   // the bytes analysed (a directory's concatenation)
    }
    if (cli_open_model(model_path, cli_get(opts, n_opts, "tokenizer"), !random_tokens, &m,
                       random_tokens ? NULL : &tok))
        goto cleanup;
    hs.path = model_path;
    hashing = pthread_create(&hash_th, NULL, hash_main, &hs) == 0;
    if (!hashing) hash_main(&hs);
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
    cce_status st = cli_run_analysis(job, &err);
    double seconds = cce_now() - t0;
    if (st == CCE_ECANCEL && cli_interrupted) {
        if (hashing) {   // do not wait for the hash: the process ends
            pthread_detach(hash_th);
            hashing = 0;
        }
        fprintf(stderr, "cce: interrupted\n");
        rc = 130;
        goto cleanup;
    }
    if (st) { rc = cli_fail("%s: %s", calib_path, err.msg); goto cleanup; }

    if (hashing) {
        pthread_join(hash_th, NULL);
        hashing = 0;
    }
    if (hs.st) { rc = cli_fail_err(&hs.err); goto cleanup; }
    int L = cce_analysis_n_layers(job), n_seq, slen;
    size_t stream;
    cce_analysis_calib_info(job, &stream, &n_seq, &slen);
    cce_analysis_identity id = {model_path, hs.sha, calib_path, calib_sha, seconds};
    if (cce_analysis_save(job, m, &id, out_path, &err)) { rc = cli_fail_err(&err); goto cleanup; }

    if (json) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "output", out_path);
        cJSON_AddNumberToObject(s, "blocks", L);
        cJSON_AddNumberToObject(s, "tokens", (double)n_seq * slen);
        cJSON_AddNumberToObject(s, "seconds", seconds);
        cJSON *ad = cJSON_AddArrayToObject(s, "angular_distance");
        cJSON *ni = cJSON_AddArrayToObject(s, "near_identity");
        /* phase totals over blocks (eigen, svd, redundancy: thread-seconds of the two task threads);
         * t_blas: of the analysis phases (all but the forward, whose BLAS calls forward.c makes
         * itself), the time really inside BLAS/LAPACK calls, measured around each call */
        double ph[6] = {0}, blas = 0, post = 0; /* forward stats eigen svd redundancy similarity */
        for (int l = 0; l < L; l++) {
            const cce_block_result *r = cce_analysis_block(job, l);
            cJSON_AddItemToArray(ad, cJSON_CreateNumber(r->angular_distance));
            if (r->near_identity) cJSON_AddItemToArray(ni, cJSON_CreateNumber(l));
            ph[0] += r->t_forward; ph[1] += r->t_stats; ph[2] += r->t_eigen;
            ph[3] += r->t_svd; ph[4] += r->t_redundancy; ph[5] += r->t_similarity;
            blas += r->t_blas;
            post += r->t_post;
        }
        double analysis_thread = ph[1] + ph[2] + ph[3] + ph[4] + ph[5];
        double blocks_total = ph[0] + ph[1] + ph[2] + ph[3] + ph[4] + ph[5];
        cJSON *pt = cJSON_AddObjectToObject(s, "phase_seconds");
        cJSON_AddNumberToObject(pt, "forward", ph[0]);
        cJSON_AddNumberToObject(pt, "stats", ph[1]);
        cJSON_AddNumberToObject(pt, "eigen", ph[2]);
        cJSON_AddNumberToObject(pt, "svd", ph[3]);
        cJSON_AddNumberToObject(pt, "redundancy", ph[4]);
        cJSON_AddNumberToObject(pt, "similarity", ph[5]);
        cJSON_AddNumberToObject(s, "seconds_per_block", L ? blocks_total / L : 0);
        cJSON_AddNumberToObject(s, "post_forward_wall_seconds", post);
        cJSON_AddNumberToObject(s, "forward_share", seconds > 0 ? ph[0] / seconds : 0);
        cJSON_AddNumberToObject(s, "blas_lapack_phase_share", analysis_thread > 0 ? blas / analysis_thread : 0);
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
    if (hashing) pthread_join(hash_th, NULL);
    cce_analysis_free(job);
    cce_free(text);
    cce_free(rand_ids);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return rc;
}
