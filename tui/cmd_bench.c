/*
 * cmd_bench.c — `cce bench MODEL [--seq-len N] [--batch N] [--tokenizer FILE] [--json]`:
 * throughput and utilisation of the forward pass, measured (never asserted) on this machine.
 * The benchmark feeds random ids; --tokenizer is accepted as by every command that reads a
 * model (the tokenizer is loaded and checked against the model, then not used).
 *
 * Figures:
 *  - gemm_peak_gflops: best of 8 timed 2048x2048x2048 cblas_sgemm (--peak-size) at the current
 *    OpenBLAS thread count, half before and half after the prefill runs (so a busy machine
 *    lowers the peak no less than it lowers the prefill): the machine's practical SGEMM peak.
 *  - load_seconds: opening the model (mapping, conversion, validation).
 *  - prefill_tokens_per_s / prefill_gflops: cce_fwd_sequences_nll (embed, every block, final
 *    norm, LM head, log-softmax) over batch sequences of seq_len random tokens; best of several
 *    runs (at least 3, at most 10, until 3 s have passed).
 *    FLOPs are counted from shapes, per batch:
 *      linears:   2 · tokens · Σ(weights of every linear of every live block)   (dense out·in,
 *                 low-rank rank·(out+in); biases, norms and activations not counted)
 *      LM head:   2 · tokens · vocab · dim
 *      attention: per sequence, per live layer, per query head: Q·Kᵀ and P·V over the causal
 *                 half, 2 · 2 · T²/2 · hd = 2·T²·hd
 *  - utilization = prefill_gflops / gemm_peak_gflops.
 *  - decode_tokens_per_s: KV-cached greedy decoding from BOS, 64 steps (fewer if the context is
 *    shorter), including the LM head.
 *  - peak_rss_mb: the process's peak resident set (VmHWM).
 */
#include <stdio.h>
#include <cblas.h>
#include "cli.h"
#include "forward.h"

static double bench_gemm_peak(int n) {
    float *a = cce_alloc((size_t)n * n, sizeof(float));
    float *b = cce_alloc((size_t)n * n, sizeof(float));
    float *c = cce_alloc((size_t)n * n, sizeof(float));
    double best = 0;
    if (a && b && c) {
        cce_rng r;
        cce_rng_seed(&r, 1);
        for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = cce_rng_uniform(&r) - 0.5f; b[i] = cce_rng_uniform(&r) - 0.5f; }
        for (int it = 0; it < 5; it++) {
            double t0 = cce_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double dt = cce_now() - t0, gf = 2.0 * n * n * (double)n / dt / 1e9;
            if (it > 0 && gf > best) best = gf;
        }
    }
    cce_free(a); cce_free(b); cce_free(c);
    return best;
}

static double bench_linear_weights(const cce_linear *l) {
    if (l->w) return (double)l->out * l->in;
    if (l->rank > 0) return (double)l->rank * (l->out + l->in);
    return 0;
}

/* FLOPs of one cce_fwd_sequences_nll over n_seq sequences of T tokens (formula above). */
static double bench_prefill_flops(const cce_model *m, int n_seq, int T) {
    double tokens = (double)n_seq * T, lin = 0, att = 0;
    for (int li = 0; li < m->cfg.n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        lin += bench_linear_weights(&l->wq) + bench_linear_weights(&l->wk) + bench_linear_weights(&l->wv) +
               bench_linear_weights(&l->wo) + bench_linear_weights(&l->w1) + bench_linear_weights(&l->w2) +
               bench_linear_weights(&l->w3);
        att += 2.0 * T * (double)T * m->cfg.head_dim * l->n_heads * n_seq;
    }
    lin += (double)m->cfg.vocab_size * m->cfg.dim;
    return 2.0 * tokens * lin + att;
}

int cmd_bench(int argc, char **argv) {
    cli_opt opts[] = {
        {"seq-len", 1, "sequence length (default min(256, model context))", NULL},
        {"batch", 1, "sequences per prefill batch (default: 1024 tokens)", NULL},
        {"peak-size", 1, "size of the square SGEMM that measures the peak (default 2048)", NULL},
        {"tokenizer", 1, "tokenizer file (loaded and checked; the benchmark itself feeds random ids)", NULL},
        {"json", 0, "one JSON object on stdout", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    long seq_len = 0, batch = 0, peak_n = 2048;
    if (cli_get_long(opts, n_opts, "seq-len", 2, 1 << 16, &seq_len) ||
        cli_get_long(opts, n_opts, "batch", 1, 1 << 12, &batch) ||
        cli_get_long(opts, n_opts, "peak-size", 16, 8192, &peak_n))
        return 2;
    int json = cli_get(opts, n_opts, "json") != NULL;

    double t0 = cce_now();
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    const char *tok_path = cli_get(opts, n_opts, "tokenizer");
    if (cli_open_model(n_pos ? pos[0] : NULL, tok_path, 0, &m, tok_path ? &tok : NULL)) return 1;
    double load_s = cce_now() - t0;
    int rc = 1, T = seq_len ? (int)seq_len : (m->cfg.seq_len < 256 ? m->cfg.seq_len : 256);
    if (m->cfg.arch == CCE_ARCH_GPT2 && T > m->cfg.seq_len) T = m->cfg.seq_len;
    int n_seq = batch ? (int)batch : (1024 / T > 0 ? 1024 / T : 1);
    cce_err err = {{0}};
    cce_fwd *f = NULL;
    cce_decoder *dec = NULL;
    int *ids = cce_alloc((size_t)n_seq * T, sizeof(int));
    float *logits = cce_alloc((size_t)m->cfg.vocab_size, sizeof(float));
    if (!ids || !logits) { rc = cli_fail("out of memory"); goto cleanup; }

    if (!json) fprintf(stderr, "cce: measuring SGEMM peak...\n");
    double peak = bench_gemm_peak((int)peak_n);

    cce_rng r;
    cce_rng_seed(&r, 1234);
    for (int i = 0; i < n_seq * T; i++) ids[i] = (int)(cce_rng_u64(&r) % (uint64_t)m->cfg.vocab_size);
    if (cce_fwd_new(m, n_seq * T, T, &f, &err)) { rc = cli_fail_err(&err); goto cleanup; }
    if (!json) fprintf(stderr, "cce: prefill %d x %d tokens...\n", n_seq, T);
    double best = 1e30, start = cce_now();
    for (int it = 0; it < 10 && !cli_interrupted; it++) {
        double sum = 0, ts = cce_now();
        long cnt = 0;
        if (cce_fwd_sequences_nll(f, ids, n_seq, T, &sum, &cnt, &err)) { rc = cli_fail_err(&err); goto cleanup; }
        double dt = cce_now() - ts;
        if (dt < best) best = dt;
        if (it >= 2 && cce_now() - start > 3.0) break;
    }
    double peak2 = bench_gemm_peak((int)peak_n);
    if (peak2 > peak) peak = peak2;
    double flops = bench_prefill_flops(m, n_seq, T);
    double prefill_tps = (double)n_seq * T / best, prefill_gf = flops / best / 1e9;

    int n_dec = m->cfg.arch == CCE_ARCH_GPT2 && m->cfg.seq_len < 64 ? m->cfg.seq_len : 64;
    if (cce_decoder_new(m, n_dec, &dec, &err)) { rc = cli_fail_err(&err); goto cleanup; }
    int tokid = m->cfg.bos_id >= 0 && m->cfg.bos_id < m->cfg.vocab_size ? m->cfg.bos_id : 0;
    double ds = cce_now();
    int steps = 0;
    for (int p = 0; p < n_dec && !cli_interrupted; p++, steps++) {
        if (cce_decoder_step(dec, tokid, p, logits, &err)) { rc = cli_fail_err(&err); goto cleanup; }
        int bestj = 0;
        for (int j = 1; j < m->cfg.vocab_size; j++) if (logits[j] > logits[bestj]) bestj = j;
        tokid = bestj;
    }
    double decode_tps = steps / (cce_now() - ds);
    if (cli_interrupted) { rc = 130; goto cleanup; }
    int threads = openblas_get_num_threads();
    cce_param_count pc = cce_model_params(m);
    double rss = cce_peak_rss_mb();
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", m->path ? m->path : "");
        cJSON_AddNumberToObject(o, "params", (double)pc.total);
        cJSON_AddNumberToObject(o, "non_embedding_params", (double)pc.non_embedding);
        cJSON_AddNumberToObject(o, "threads", threads);
        cJSON_AddNumberToObject(o, "gemm_peak_gflops", peak);
        cJSON_AddNumberToObject(o, "load_seconds", load_s);
        cJSON_AddNumberToObject(o, "prefill_seq_len", T);
        cJSON_AddNumberToObject(o, "prefill_batch", n_seq);
        cJSON_AddNumberToObject(o, "prefill_tokens_per_s", prefill_tps);
        cJSON_AddNumberToObject(o, "prefill_gflops", prefill_gf);
        cJSON_AddNumberToObject(o, "utilization", peak > 0 ? prefill_gf / peak : 0);
        cJSON_AddNumberToObject(o, "decode_tokens_per_s", decode_tps);
        cJSON_AddNumberToObject(o, "peak_rss_mb", rss);
        cli_json_print(o);
    } else {
        printf("model                %s (%lld params, %lld non-embedding)\n", m->path ? m->path : "",
               (long long)pc.total, (long long)pc.non_embedding);
        printf("openblas threads     %d\n", threads);
        printf("sgemm peak           %.1f GFLOP/s (%ld^3)\n", peak, peak_n);
        printf("load                 %.1f ms\n", load_s * 1e3);
        printf("prefill              %.0f tokens/s, %.1f GFLOP/s (%d x %d tokens)\n", prefill_tps, prefill_gf, n_seq, T);
        printf("utilization          %.2f of sgemm peak\n", peak > 0 ? prefill_gf / peak : 0);
        printf("decode               %.1f tokens/s (%d steps)\n", decode_tps, steps);
        printf("peak rss             %.1f MB\n", rss);
    }
    rc = 0;
cleanup:
    cce_decoder_free(dec);
    cce_fwd_free(f);
    cce_free(ids);
    cce_free(logits);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    return rc;
}
