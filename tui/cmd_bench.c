/*
 * cmd_bench.c — `cce bench MODEL [--seq-len N] [--batch N] [--decode-steps N] [--prompt-len N]
 * [--peak-size N] [--tokenizer FILE] [--json]`: throughput and utilisation of the forward pass
 * and the decoder, measured (never asserted) on this machine, beside the machine's own SGEMM
 * peak and DRAM read bandwidth. The benchmark feeds random ids; --tokenizer is accepted as by
 * every command that reads a model (the tokenizer is loaded and checked against the model, then
 * not used).
 *
 * Figures:
 *  - gemm_peak_gflops: best of 8 timed 2048x2048x2048 products (--peak-size; each as four
 *    cblas_sgemm calls of 512 rows, so that Ctrl-C is prompt) at the current OpenBLAS thread count, half before and half after the model runs (so a busy machine
 *    lowers the peak no less than it lowers the prefill): the machine's practical SGEMM peak.
 *  - bandwidth_1t_gbs / bandwidth_gbs: streaming reads of a buffer of max(256 MB, 8 x LLC) (at most 1 GB) on
 *    one thread / on the decoder's thread pool (every thread the process may use), best of 5
 *    passes per half (before and after, like the peak): what a memory-bound decoder can reach.
 *  - open_seconds: opening the model (mapping, conversion, validation); load_seconds: that plus
 *    reading one byte of every page of the model's mapped files, i.e. until the weights are in
 *    memory (page cache and page tables), which is what a first token waits for.
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
 *  - prompt_tokens_per_s: cce_decoder_prefill of prompt_tokens random tokens (default 512, or the
 *    context if shorter): the batched pass writing the decoder's KV cache, logits of the last
 *    position only, i.e. what `cce generate` does with a prompt and what llama.cpp's llama-bench
 *    calls pp512; best of at least 3 runs (at most 10, until 3 s have passed).
 *  - decode_tokens_per_s: KV-cached greedy decoding from BOS for decode_steps positions (default
 *    256, or the context if shorter), including the LM head; best of at least 3 runs (at most 10,
 *    until 5 s have passed).
 *  - decode_weight_bytes: bytes of weights one decoding step reads, in their stored types (every
 *    linear, norm and bias of the live blocks, the final norm, the LM head, one embedding row);
 *    decode_kv_bytes: the KV cache it reads, averaged over the run's positions;
 *    decode_bandwidth_share = decode_tokens_per_s · (weight + KV bytes) / bandwidth_gbs. It is the
 *    share of the DRAM bound only when the weights do not fit in the last-level cache.
 *  - peak_rss_mb: the process's peak resident set (VmHWM) over opening, loading, prefill and
 *    decoding, without the probe buffers (the high-water mark is reset after the first probes
 *    through /proc/self/clear_refs; where that is refused, every probe runs after the model's
 *    figures instead); probe_buffers_mb: what the probes allocate.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cblas.h>
#include "cli.h"
#include "cli_plan.h"
#include "forward.h"
#include "kernels.h"

/* ---- machine probes ---- */

static double bench_gemm_peak(int n, int iters) {
    float *a = cce_alloc((size_t)n * n, sizeof(float));
    float *b = cce_alloc((size_t)n * n, sizeof(float));
    float *c = cce_alloc((size_t)n * n, sizeof(float));
    double best = 0;
    if (a && b && c) {
        cce_rng r;
        cce_rng_seed(&r, 1);
        for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = cce_rng_uniform(&r) - 0.5f; b[i] = cce_rng_uniform(&r) - 0.5f; }
        /* each product in four calls of n/4 rows, so that Ctrl-C waits for a quarter of one */
        int q = n / 4 > 0 ? n / 4 : n;
        for (int it = 0; it <= iters && !cli_interrupted; it++) {   // the first product warms up
            double t0 = cce_now();
            for (int r0 = 0; r0 < n && !cli_interrupted; r0 += q) {
                int nr = n - r0 < q ? n - r0 : q;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, n, n, 1.0f, a + (size_t)r0 * n, n, b, n,
                            0.0f, c + (size_t)r0 * n, n);
            }
            double dt = cce_now() - t0, gf = 2.0 * n * n * (double)n / dt / 1e9;
            if (it > 0 && gf > best) best = gf;
        }
    }
    cce_free(a); cce_free(b); cce_free(c);
    return best;
}

typedef float bench_vf __attribute__((vector_size(64)));
typedef struct {
    const float *buf;
    size_t chunk_floats;   // per pool chunk
    float sums[64];
} bench_read;

/* One chunk of the streaming read: eight independent 16-float sums over the chunk. */
static void bench_read_chunk(void *ctx, int c, int n) {
    bench_read *r = ctx;
    const bench_vf *p = (const bench_vf *)(r->buf + (size_t)c * r->chunk_floats);
    size_t nv = r->chunk_floats / 16;
    bench_vf s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};
    for (size_t i = 0; i + 8 <= nv; i += 8) {
        s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3];
        s4 += p[i + 4]; s5 += p[i + 5]; s6 += p[i + 6]; s7 += p[i + 7];
    }
    bench_vf s = (s0 + s1) + (s2 + s3) + (s4 + s5) + (s6 + s7);
    float t = 0;
    for (int k = 0; k < 16; k++) t += s[k];
    r->sums[c % 64] += t;   // keeps the loads alive; races between chunks are harmless here
    (void)n;
}

/* Best read bandwidth (GB/s) over `passes` passes of buf (bytes, a multiple of 64 chunks of
 * 64 bytes), on the pool (NULL: this thread). */
static double bench_bandwidth(const float *buf, size_t bytes, cce_pool *pool, int passes) {
    bench_read r = {.buf = buf, .chunk_floats = bytes / sizeof(float) / 64};
    double best = 0;
    for (int it = 0; it < passes && !cli_interrupted; it++) {
        double t0 = cce_now();
        cce_pool_run(pool, bench_read_chunk, &r, 64);
        double gbs = (double)bytes / (cce_now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    return best;
}

typedef struct {
    double peak, bw1, bw;
    size_t bw_bytes;
} bench_machine;

/* One half of the machine probes, keeping the best figures in *mc. */
static void bench_probe(bench_machine *mc, int peak_n, cce_pool *pool) {
    double p = bench_gemm_peak(peak_n, 4);
    if (p > mc->peak) mc->peak = p;
    float *buf = cce_alloc(mc->bw_bytes / sizeof(float), sizeof(float));
    if (!buf) return;
    for (size_t o = 0; o < mc->bw_bytes && !cli_interrupted; o += (size_t)16 << 20)   // fault the pages in first
        memset((char *)buf + o, 0, mc->bw_bytes - o < ((size_t)16 << 20) ? mc->bw_bytes - o : (size_t)16 << 20);
    double b1 = bench_bandwidth(buf, mc->bw_bytes, NULL, 5), b2 = bench_bandwidth(buf, mc->bw_bytes, pool, 5);
    if (b1 > mc->bw1) mc->bw1 = b1;
    if (b2 > mc->bw) mc->bw = b2;
    if (b1 > mc->bw) mc->bw = b1;
    cce_free(buf);
}

/* Reset the peak-RSS high-water mark to the current RSS; 1 if the kernel allowed it. */
static int bench_reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* ---- model figures ---- */

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
        for (int k = 0; k < CCE_LIN_COUNT; k++) lin += bench_linear_weights(cce_layer_lin_c(l, k));
        att += 2.0 * T * (double)T * m->cfg.head_dim * l->n_heads * n_seq;
    }
    lin += (double)m->cfg.vocab_size * m->cfg.dim;
    return 2.0 * tokens * lin + att;
}

/* Bytes of weights one decoding step reads (see the top of the file). */
static double bench_decode_weight_bytes(const cce_model *m) {
    double b = 0, nb = (double)m->cfg.dim * sizeof(float) * (m->cfg.arch == CCE_ARCH_GPT2 ? 2 : 1);
    for (int li = 0; li < m->cfg.n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        for (int k = 0; k < CCE_LIN_COUNT; k++) b += (double)cce_linear_bytes(cce_layer_lin_c(l, k));
        b += (l->n_heads > 0) * nb + (l->hidden > 0) * nb;
    }
    b += (double)cce_linear_bytes(&m->lm_head) + nb;
    b += (double)cce_wtype_row_bytes(m->tok_emb.wt, m->cfg.dim) + (m->pos_emb ? (double)m->cfg.dim * sizeof(float) : 0);
    return b;
}

/* FLOPs of one decoding step at mean context ctx: 2 per weight of every linear (low-rank: its
 * factors) and of the LM head, plus the attention's Q·K and P·V over ctx positions per head. */
static double bench_decode_flops(const cce_model *m, double ctx) {
    double f = 2.0 * (double)m->cfg.vocab_size * m->cfg.dim;
    for (int li = 0; li < m->cfg.n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        for (int k = 0; k < CCE_LIN_COUNT; k++) f += 2.0 * (double)cce_linear_params(cce_layer_lin_c(l, k));
        f += 4.0 * ctx * (double)l->n_heads * m->cfg.head_dim;
    }
    return f;
}

/* KV-cache bytes a step reads, averaged over positions 0..steps-1: Σ_layers 2·(p+1)·kv_dim·4. */
static double bench_decode_kv_bytes(const cce_model *m, int steps) {
    double kv = 0;
    for (int li = 0; li < m->cfg.n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (!l->dropped && l->n_heads > 0) kv += (double)l->n_kv_heads * m->cfg.head_dim;
    }
    return 2.0 * kv * sizeof(float) * (steps + 1) / 2.0;
}

/* Read one byte of every page of the model's mapped files. */
static void bench_touch(const cce_model *m) {
    long pg = sysconf(_SC_PAGESIZE);
    size_t step = pg > 0 ? (size_t)pg : 4096;
    volatile unsigned sum = 0;
    for (int i = 0; i < m->n_maps; i++)
        for (size_t o = 0; o < m->maps[i].len; o += step) sum += m->maps[i].data[o];
    (void)sum;
}

/* "f32", or the stored types of the weight matrices, most common first ("q8_0+f32"). */
static void bench_types(const cce_model *m, char *out, size_t cap) {
    double by[CCE_WT_COUNT] = {0};
    for (int li = 0; li < m->cfg.n_layers; li++)
        for (int k = 0; k < CCE_LIN_COUNT; k++) {
            const cce_linear *l = cce_layer_lin_c(&m->layers[li], k);
            if (l->w) by[l->wt] += (double)cce_linear_bytes(l);
        }
    if (m->lm_head.w) by[m->lm_head.wt] += (double)cce_linear_bytes(&m->lm_head);
    out[0] = 0;
    for (;;) {
        int best = -1;
        for (int t = 0; t < CCE_WT_COUNT; t++)
            if (by[t] > 0 && (best < 0 || by[t] > by[best])) best = t;
        if (best < 0) break;
        size_t k = strlen(out);
        snprintf(out + k, cap - k, "%s%s", k ? "+" : "", cce_wtype_name((cce_wtype)best));
        by[best] = 0;
    }
}

int cmd_bench(int argc, char **argv) {
    cli_opt opts[] = {
        {"seq-len", 1, "sequence length (default min(256, model context))", NULL},
        {"batch", 1, "sequences per prefill batch (default: 1024 tokens)", NULL},
        {"decode-steps", 1, "positions per decoding run (default min(256, model context))", NULL},
        {"prompt-len", 1, "tokens of the prompt-processing runs (default min(512, model context))", NULL},
        {"peak-size", 1, "size of the square SGEMM that measures the peak (default 2048)", NULL},
        {"tokenizer", 1, "tokenizer file (loaded and checked; the benchmark itself feeds random ids)", NULL},
        {"plan", 1, "benchmark the compressed model of this plan (encoded in memory) beside the original's decode", NULL},
        {"calib", 1, "with --plan: the calibration text, if not where the plan says", NULL},
        {"json", 0, "one JSON object on stdout", NULL},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos)) return 2;
    long seq_len = 0, batch = 0, peak_n = 2048, dec_steps = 0, prompt_len = 0;
    if (cli_get_long(opts, n_opts, "seq-len", 2, 1 << 16, &seq_len) ||
        cli_get_long(opts, n_opts, "batch", 1, 1 << 12, &batch) ||
        cli_get_long(opts, n_opts, "decode-steps", 1, 1 << 16, &dec_steps) ||
        cli_get_long(opts, n_opts, "prompt-len", 1, 1 << 16, &prompt_len) ||
        cli_get_long(opts, n_opts, "peak-size", 16, 8192, &peak_n))
        return 2;
    int json = cli_get(opts, n_opts, "json") != NULL;

    double t0 = cce_now();
    cce_model *m = NULL;
    cce_tokenizer *tok = NULL;
    const char *tok_path = cli_get(opts, n_opts, "tokenizer");
    const char *plan_path = cli_get(opts, n_opts, "plan");
    if (cli_open_model(n_pos ? pos[0] : NULL, tok_path, plan_path != NULL, &m, tok_path || plan_path ? &tok : NULL))
        return 1;
    cce_model *src = NULL;   // with --plan: the original; m is then the compressed model (it borrows from src)
    int prc = cli_swap_in_plan(&m, tok, plan_path, cli_get(opts, n_opts, "calib"), &src);
    if (prc) {
        cce_tokenizer_free(tok);
        cce_model_free(m);
        return prc;
    }
    if (src) t0 = cce_now();
    double open_s = cce_now() - t0;
    bench_touch(m);
    double load_s = cce_now() - t0;
    int rc = 1, T = seq_len ? (int)seq_len : (m->cfg.seq_len < 256 ? m->cfg.seq_len : 256);
    if (m->cfg.arch == CCE_ARCH_GPT2 && T > m->cfg.seq_len) T = m->cfg.seq_len;
    int n_seq = batch ? (int)batch : (1024 / T > 0 ? 1024 / T : 1);
    int n_dec = dec_steps ? (int)dec_steps : 256;
    if (n_dec > m->cfg.seq_len) n_dec = m->cfg.seq_len;
    int n_prompt = prompt_len ? (int)prompt_len : 512;
    if (n_prompt > m->cfg.seq_len) n_prompt = m->cfg.seq_len;
    int n_cache = n_dec > n_prompt ? n_dec : n_prompt;
    cce_err err = {{0}};
    cce_fwd *f = NULL;
    cce_decoder *dec = NULL;
    cce_pool *pool = NULL;
    int *ids = cce_alloc((size_t)(n_seq * T > n_prompt ? n_seq * T : n_prompt), sizeof(int));
    float *logits = cce_alloc((size_t)m->cfg.vocab_size, sizeof(float));
    if (!ids || !logits) { rc = cli_fail("out of memory"); goto cleanup; }
    if (cce_pool_new(cce_pool_default_threads(), &pool, &err)) { rc = cli_fail_err(&err); goto cleanup; }

    /* the first half of the probes, then the high-water mark is reset so that it counts the
     * model's work only; where it cannot be reset every probe runs afterwards */
    bench_machine mc = {0};
    size_t llc = cce_kern_llc_bytes();
    mc.bw_bytes = (size_t)256 << 20;
    if (llc * 8 > mc.bw_bytes) mc.bw_bytes = ((llc * 8 > (size_t)1 << 30 ? (size_t)1 << 30 : llc * 8) + 4095) & ~(size_t)4095;
    if (!json) fprintf(stderr, "cce: measuring SGEMM peak and read bandwidth...\n");
    int probed = 0, excl = 1;   // excl: the peak RSS below leaves the probe buffers out
    if (bench_reset_hwm()) {
        bench_probe(&mc, (int)peak_n, pool);
        probed = 1;
        excl = bench_reset_hwm();
    }

    cce_rng r;
    cce_rng_seed(&r, 1234);
    for (int i = 0; i < (n_seq * T > n_prompt ? n_seq * T : n_prompt); i++)
        ids[i] = (int)(cce_rng_u64(&r) % (uint64_t)m->cfg.vocab_size);
    if (cce_fwd_new(m, n_seq * T, T, &f, &err)) { rc = cli_fail_err(&err); goto cleanup; }
    if (!json) fprintf(stderr, "cce: prefill %d x %d tokens...\n", n_seq, T);
    double best = 1e30, start = cce_now();
    for (int it = 0; it < 10 && !cli_interrupted; it++) {
        double sum = 0, ts = cce_now();
        long cnt = 0;
        cce_status st = cce_fwd_sequences_nll(f, ids, n_seq, T, &sum, &cnt, &err);
        if (st == CCE_ECANCEL && cli_interrupted) break;
        if (st) { rc = cli_fail_err(&err); goto cleanup; }
        double dt = cce_now() - ts;
        if (dt < best) best = dt;
        if (it >= 2 && cce_now() - start > 3.0) break;
    }
    cce_fwd_free(f);   // its scratch is not the decoder's: the peak RSS counts the larger of the two
    f = NULL;

    if (cce_decoder_new(m, n_cache, &dec, &err)) { rc = cli_fail_err(&err); goto cleanup; }
    if (!json && !cli_interrupted) fprintf(stderr, "cce: prompt of %d tokens...\n", n_prompt);
    double prompt_best = 1e30;
    start = cce_now();
    for (int run = 0; run < 10 && !cli_interrupted; run++) {
        double ps = cce_now();
        cce_status st = cce_decoder_prefill(dec, ids, n_prompt, logits, &err);
        if (st == CCE_ECANCEL && cli_interrupted) break;
        if (st) { rc = cli_fail_err(&err); goto cleanup; }
        double dt = cce_now() - ps;
        if (dt < prompt_best) prompt_best = dt;
        if (run >= 2 && cce_now() - start > 3.0) break;
    }
    if (!json && !cli_interrupted) fprintf(stderr, "cce: decode %d positions...\n", n_dec);
    double dec_best = 1e30;
    start = cce_now();
    for (int run = 0; run < 10 && !cli_interrupted; run++) {
        int tokid = m->cfg.bos_id >= 0 && m->cfg.bos_id < m->cfg.vocab_size ? m->cfg.bos_id : 0;
        double ds = cce_now();
        for (int p = 0; p < n_dec && !cli_interrupted; p++) {
            cce_status st = cce_decoder_step(dec, tokid, p, logits, &err);
            if (st == CCE_ECANCEL && cli_interrupted) break;
            if (st) { rc = cli_fail_err(&err); goto cleanup; }
            tokid = cce_argmax(logits, m->cfg.vocab_size);
        }
        double dt = cce_now() - ds;
        if (!cli_interrupted && dt < dec_best) dec_best = dt;
        if (run >= 2 && cce_now() - start > 5.0) break;
    }
    double rss = cce_peak_rss_mb();
    if (!json && !cli_interrupted) fprintf(stderr, "cce: measuring again after the model runs...\n");
    if (!cli_interrupted) bench_probe(&mc, (int)peak_n, pool);
    if (!probed && !cli_interrupted) bench_probe(&mc, (int)peak_n, pool);   // both halves after
    if (cli_interrupted) {
        fprintf(stderr, "cce: interrupted\n");
        rc = 130;
        goto cleanup;
    }
    /* with --plan: the original's decode in the same run, and the speed-up its FLOPs predict */
    double src_decode = 0, pred_speedup = 0, cmp_decode = 0;
    if (src) {
        /* both measured the same way (cce_decode_speed), in alternation, best of each: a busy
         * moment of a shared machine then hits both rather than one */
        cce_err se = {{0}};
        for (int round = 0; round < 4 && !cli_interrupted; round++) {
            double a1, a2;
            if (cce_decode_speed(m, n_dec, 2, &a1, &se) || cce_decode_speed(src, n_dec, 2, &a2, &se)) {
                rc = cli_fail_err(&se);
                goto cleanup;
            }
            if (a1 > cmp_decode) cmp_decode = a1;
            if (a2 > src_decode) src_decode = a2;
        }
        double c2 = (n_dec + 1) / 2.0;
        pred_speedup = bench_decode_flops(src, c2) / bench_decode_flops(m, c2);
    }
    double flops = bench_prefill_flops(m, n_seq, T);
    double prefill_tps = (double)n_seq * T / best, prefill_gf = flops / best / 1e9;
    double decode_tps = n_dec / dec_best, prompt_tps = n_prompt / prompt_best;
    double wbytes = bench_decode_weight_bytes(m), kvbytes = bench_decode_kv_bytes(m, n_dec);
    double share = mc.bw > 0 ? decode_tps * (wbytes + kvbytes) / (mc.bw * 1e9) : 0;
    double probe_mb = ((double)mc.bw_bytes + 3.0 * (double)peak_n * (double)peak_n * sizeof(float)) / (1 << 20);
    int threads = openblas_get_num_threads(), dthreads = cce_decoder_threads(dec);
    cce_param_count pc = cce_model_params(m);
    char types[64];
    bench_types(m, types, sizeof types);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", m->path ? m->path : "");
        cJSON_AddStringToObject(o, "weight_types", types);
        cJSON_AddStringToObject(o, "kernels", cce_kern_isa());
        cJSON_AddNumberToObject(o, "params", (double)pc.total);
        cJSON_AddNumberToObject(o, "non_embedding_params", (double)pc.non_embedding);
        cJSON_AddNumberToObject(o, "threads", threads);
        cJSON_AddNumberToObject(o, "decode_threads", dthreads);
        cJSON_AddNumberToObject(o, "gemm_peak_gflops", mc.peak);
        cJSON_AddNumberToObject(o, "bandwidth_1t_gbs", mc.bw1);
        cJSON_AddNumberToObject(o, "bandwidth_gbs", mc.bw);
        cJSON_AddNumberToObject(o, "open_seconds", open_s);
        cJSON_AddNumberToObject(o, "load_seconds", load_s);
        cJSON_AddNumberToObject(o, "prefill_seq_len", T);
        cJSON_AddNumberToObject(o, "prefill_batch", n_seq);
        cJSON_AddNumberToObject(o, "prefill_tokens_per_s", prefill_tps);
        cJSON_AddNumberToObject(o, "prefill_gflops", prefill_gf);
        cJSON_AddNumberToObject(o, "utilization", mc.peak > 0 ? prefill_gf / mc.peak : 0);
        cJSON_AddNumberToObject(o, "prompt_tokens", n_prompt);
        cJSON_AddNumberToObject(o, "prompt_tokens_per_s", prompt_tps);
        cJSON_AddNumberToObject(o, "decode_steps", n_dec);
        cJSON_AddNumberToObject(o, "decode_tokens_per_s", decode_tps);
        cJSON_AddNumberToObject(o, "decode_weight_bytes", wbytes);
        cJSON_AddNumberToObject(o, "decode_kv_bytes", kvbytes);
        cJSON_AddNumberToObject(o, "decode_bandwidth_share", share);
        cJSON_AddNumberToObject(o, "peak_rss_mb", rss);
        cJSON_AddBoolToObject(o, "peak_rss_excludes_probes", excl);
        cJSON_AddNumberToObject(o, "probe_buffers_mb", probe_mb);
        if (src) {
            cJSON_AddStringToObject(o, "plan", plan_path);
            cJSON_AddNumberToObject(o, "original_decode_tokens_per_s", src_decode);
            cJSON_AddNumberToObject(o, "compressed_decode_tokens_per_s", cmp_decode);
            cJSON_AddNumberToObject(o, "decode_speedup", src_decode > 0 ? cmp_decode / src_decode : 0);
            cJSON_AddNumberToObject(o, "decode_speedup_predicted", pred_speedup);
        }
        cli_json_print(o);
    } else {
        printf("model                %s (%lld params, %lld non-embedding; weights %s)\n", m->path ? m->path : "",
               (long long)pc.total, (long long)pc.non_embedding, types);
        printf("threads              openblas %d, decoder %d (kernels %s)\n", threads, dthreads, cce_kern_isa());
        printf("sgemm peak           %.1f GFLOP/s (%ld^3)\n", mc.peak, peak_n);
        printf("read bandwidth       %.1f GB/s on 1 thread, %.1f GB/s on %d (%.0f MB buffer)\n", mc.bw1, mc.bw,
               cce_pool_threads(pool), (double)mc.bw_bytes / (1 << 20));
        printf("load                 %.1f ms (open %.1f ms, then every weight page read)\n", load_s * 1e3, open_s * 1e3);
        printf("prefill              %.0f tokens/s, %.1f GFLOP/s (%d x %d tokens)\n", prefill_tps, prefill_gf, n_seq, T);
        printf("utilization          %.2f of sgemm peak\n", mc.peak > 0 ? prefill_gf / mc.peak : 0);
        printf("prompt               %.0f tokens/s (%d tokens into the decoder's cache, last logits only)\n", prompt_tps,
               n_prompt);
        printf("decode               %.1f tokens/s (%d positions from BOS)\n", decode_tps, n_dec);
        printf("decode bytes/token   %.2f MB weights + %.2f MB KV cache (mean); %.2f of the read bandwidth\n",
               wbytes / 1e6, kvbytes / 1e6, share);
        printf("peak rss             %.1f MB (%s the %.0f MB of probe buffers)\n", rss, excl ? "without" : "with", probe_mb);
        if (src)
            printf("plan                 %s: decode %.1f tokens/s vs the original's %.1f (alternated, best of 8 each): "
                   "%.2fx (FLOPs predict %.2fx)\n",
                   plan_path, cmp_decode, src_decode, src_decode > 0 ? cmp_decode / src_decode : 0, pred_speedup);
    }
    rc = 0;
cleanup:
    cce_pool_free(pool);
    cce_decoder_free(dec);
    cce_fwd_free(f);
    cce_free(ids);
    cce_free(logits);
    cce_tokenizer_free(tok);
    cce_model_free(m);
    cce_model_free(src);
    return rc;
}
