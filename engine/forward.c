/*
 * forward.c — the fast batched forward pass, its taps, the NLL head, and KV-cached decoding.
 *
 * Layout. A batch is n_seq sequences of seq_len tokens, held as one row-major (rows, dim)
 * matrix with rows = n_seq*seq_len. Every linear is ONE cblas_sgemm over all rows
 * (y (rows,out) = x (rows,in) · Wᵀ, or two for a low-rank U·V), so the work is GEMM-bound and
 * OpenBLAS's threads carry the parallelism. Elementwise work (norms, residual adds, softmax,
 * SiLU, GELU, the LM head's log-sum-exp) runs on one thread through explicit vector kernels
 * (see "vector kernels" below); RoPE is a plain loop over contiguous rows.
 *
 * Attention runs per (sequence, query head) on the strided (seq_len, hd) slices of its KV head's
 * K and V (leading dimension n_kv_heads*hd, no copies but one transposed copy of the keys; the
 * head->KV map may be any, from compression), four query rows at a time with register-blocked
 * kernels (kernels.h): row r sees keys [0, r], and four rows cost at most three keys of wasted
 * work. These are small products (K = head_dim) that cost more as sgemm calls than they
 * compute: an sgemm per block of 64 queries ran at a third of the linears' rate (smollm-135m
 * shape, one thread). The (sequence, head) tasks run on the pass's own thread pool between the
 * GEMMs (which are OpenBLAS's to thread).
 *
 * The NLL head never holds (rows, vocab) logits: it runs over blocks of up to nll_rows rows and,
 * within a block, over slices of nll_vocab vocabulary entries (nll_rows·nll_vocab floats,
 * NLL_LOGIT_FLOATS at most), keeping per row a running maximum, the sum of exponentials
 * below it (in double, rescaled when the maximum grows) and the target's logit. Slicing the
 * vocabulary, not only the rows, is what keeps the head at GEMM speed: each slice of the
 * head's weights is packed by the GEMM once per block of rows, where row chunks alone repack
 * the whole (vocab, dim) matrix per chunk (113 MB per 256 rows at smollm-135m's shape).
 *
 * The decoder (its own section below) reads each weight once per token with kernels.h.
 *
 * RoPE: cos/sin tables (max_seq_len, hd/2) are computed in double once in cce_fwd_new /
 * cce_decoder_new; pair j of a head rotates by pos·cce_rope_inv_freq(cfg, j) (theta^(-2j/hd)
 * unless the config scales it), with the pair being
 * (2j, 2j+1) when cfg.rope_interleaved and (j, j+hd/2) otherwise (Hugging Face layout).
 */
#include <math.h>
#include <string.h>
#include <cblas.h>
#include "forward.h"
#include "kernels.h"
#include "util.h"

#define NLL_LOGIT_FLOATS (4u << 20)  /* logits scratch of the NLL head: 16 MB */
#define NLL_VOCAB_MIN 1024           /* vocabulary slices at least this wide (or the whole vocabulary) */

/* ---- vector kernels ----
 * The elementwise work that is not GEMM (norms, residual and bias adds, softmax exponentials,
 * SiLU/GELU, the LM head's log-sum-exp) is written with GCC vector extensions as wide as the
 * target's registers (16 floats with AVX-512, 8 with AVX, else 4): one portable path, no
 * intrinsics. -O2 does not vectorise these loops by itself (reductions, unknown trip counts),
 * and libm's expf was 60% of a small model's forward pass before this. */
#if defined(__AVX512F__)
#define FWD_VL 16
#elif defined(__AVX__)
#define FWD_VL 8
#else
#define FWD_VL 4
#endif
typedef float fwd_vf __attribute__((vector_size(FWD_VL * 4)));
typedef int32_t fwd_vi __attribute__((vector_size(FWD_VL * 4)));

static inline fwd_vf fwd_vload(const float *p) { fwd_vf v; memcpy(&v, p, sizeof v); return v; }
static inline void fwd_vstore(float *p, fwd_vf v) { memcpy(p, &v, sizeof v); }
static inline fwd_vf fwd_vsplat(float x) { return (fwd_vf){0} + x; }
static inline fwd_vf fwd_vselect(fwd_vi mask, fwd_vf a, fwd_vf b) {  // mask ? a : b
    return (fwd_vf)(((fwd_vi)a & mask) | ((fwd_vi)b & ~mask));
}

/* y[i] += x[i] for n floats. */
static void fwd_vadd(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + FWD_VL <= n; i += FWD_VL) fwd_vstore(y + i, fwd_vload(y + i) + fwd_vload(x + i));
    for (; i < n; i++) y[i] += x[i];
}

static void dec_store_kv(cce_decoder *d, int layer, const cce_layer *l, const float *k, const float *v, int T);

struct cce_fwd {
    const cce_model *m;
    cce_decoder *kv_sink;   // cce_decoder_prefill: every layer's keys and values also go to its cache
    int max_rows, max_seq;
    int max_q, max_kv, max_hidden, max_rank;
    float *h;        // (max_rows, dim) residual stream for cce_fwd_sequences_nll
    float *xn;       // (max_rows, dim) normalised input of the current sublayer
    float *q;        // (max_rows, max_q)  queries
    float *k, *v;    // (max_rows, max_kv)
    float *att;      // (max_rows, max_q)  concatenated head outputs
    float *out;      // (max_rows, dim)    sublayer output before the residual add
    float *a, *b;    // (max_rows, max_hidden) FFN gate/activation and up projection
    float *lr;       // (max_rows, max_rank) low-rank intermediate x·Vᵀ
    float *wtile;    // (wtile_floats) f32 rows of a weight stored in another type, or NULL
    size_t wtile_floats;
    float *kt;       // (threads, head_dim, max_seq) per thread: one KV head's keys, transposed
    float *scores;   // (threads, 4, max_seq) per thread: scores of four query rows
    cce_pool *pool;  // the attention's threads (NULL: the calling thread)
    int nll_rows, nll_vocab;  // block of rows x slice of the vocabulary per NLL-head GEMM
    float *logits;   // (nll_rows, nll_vocab)
    float *nll_max, *nll_tgt;  // (nll_rows) running maximum and target logit per row
    int *nll_arg;              // (nll_rows) index of the running maximum (first of ties)
    double *nll_sum;           // (nll_rows) Σ exp(logit − running maximum)
    float *rope_cos, *rope_sin;  // (max_seq, head_dim/2)
};

const char *cce_tap_site_name(cce_tap_site s) {
    switch (s) {
    case CCE_TAP_ATTN_IN: return "attn_in";
    case CCE_TAP_HEADS: return "heads";
    case CCE_TAP_ATTN_OUT: return "attn_out";
    case CCE_TAP_FFN_IN: return "ffn_in";
    case CCE_TAP_FFN_ACT: return "ffn_act";
    case CCE_TAP_BLOCK_OUT: return "block_out";
    default: return "?";
    }
}

/* ---------------------------------------------------------------- shapes and setup */

/* Everything the kernels index by: the model's own validation (shapes, KV maps, stored types,
 * norms of the sublayers that exist), plus what the batched path assumes of the config. */
static cce_status fwd_check_model(const cce_model *m, cce_err *err) {
    const cce_config *c = &m->cfg;
    int gpt2 = c->arch == CCE_ARCH_GPT2;
    if (c->dim <= 0 || c->head_dim <= 0 || c->vocab_size <= 0 || c->n_layers < 0 || !m->tok_emb.w ||
        !m->lm_head.w || !m->final_norm || (gpt2 && !m->pos_emb) || (!gpt2 && c->head_dim % 2))
        return cce_err_set(err, CCE_EINVAL, "forward: model config is unusable (dim %d, head_dim %d, vocab %d)",
                           c->dim, c->head_dim, c->vocab_size);
    for (int li = 0; li < c->n_layers; li++) {
        cce_status s = cce_layer_check(m, li, "forward", err);
        if (s) return CCE_EINVAL;
    }
    return CCE_OK;
}

/* Rows of a non-f32 weight decoded per GEMM in the batched pass: about WTILE_FLOATS floats,
 * at least 64 rows (or all of them) so that each GEMM stays efficient. */
#define WTILE_FLOATS (1u << 20)
static int fwd_tile_rows(const cce_linear *l) {
    int r = (int)(WTILE_FLOATS / (unsigned)l->in);
    if (r < 64) r = 64;
    return r < l->out ? r : l->out;
}

typedef struct { int q, kv, hidden, rank, heads; size_t wtile; } fwd_maxes;

static void fwd_note_linear(fwd_maxes *x, const cce_linear *l) {
    if (!cce_linear_present(l)) return;
    if (!l->w && l->rank > x->rank) x->rank = l->rank;
    if (l->w && l->wt != CCE_WT_F32) {
        size_t t = (size_t)fwd_tile_rows(l) * (size_t)l->in;
        if (t > x->wtile) x->wtile = t;
    }
}

static fwd_maxes fwd_model_maxes(const cce_model *m) {
    fwd_maxes x = {1, 1, 1, 1, 1, 0};
    int hd = m->cfg.head_dim;
    fwd_note_linear(&x, &m->lm_head);
    for (int li = 0; li < m->cfg.n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        if (l->n_heads * hd > x.q) x.q = l->n_heads * hd;
        if (l->n_kv_heads * hd > x.kv) x.kv = l->n_kv_heads * hd;
        if (l->hidden > x.hidden) x.hidden = l->hidden;
        if (l->n_heads > x.heads) x.heads = l->n_heads;
        for (int k = 0; k < CCE_LIN_COUNT; k++) fwd_note_linear(&x, cce_layer_lin_c(l, k));
    }
    return x;
}

/* cos/sin tables (n_pos, hd/2), double-precision angles from cce_rope_inv_freq. Sequences
 * longer than a sliding attention window are refused here, where their length is first known. */
static cce_status fwd_rope_tables(const cce_config *c, int n_pos, float **cs, float **sn, cce_err *err) {
    int half = c->head_dim / 2 > 0 ? c->head_dim / 2 : 1;
    *cs = *sn = NULL;
    cce_status s = cce_config_check_positions(c, n_pos, err);
    if (s) return s;
    *cs = cce_alloc((size_t)n_pos, (size_t)half * sizeof(float));
    *sn = cce_alloc((size_t)n_pos, (size_t)half * sizeof(float));
    if (!*cs || !*sn) {
        cce_free(*cs); cce_free(*sn); *cs = *sn = NULL;
        return cce_err_set(err, CCE_ENOMEM, "forward: out of memory for RoPE tables (%d positions)", n_pos);
    }
    for (int j = 0; j < c->head_dim / 2; j++) {
        double freq = cce_rope_inv_freq(c, j);
        for (int p = 0; p < n_pos; p++) {
            double ang = p * freq;
            (*cs)[(size_t)p * half + j] = (float)cos(ang);
            (*sn)[(size_t)p * half + j] = (float)sin(ang);
        }
    }
    return CCE_OK;
}

cce_status cce_fwd_new(const cce_model *m, int max_rows, int max_seq_len, cce_fwd **out, cce_err *err) {
    *out = NULL;
    if (max_rows <= 0 || max_seq_len <= 0)
        return cce_err_set(err, CCE_EINVAL, "forward: max_rows %d / max_seq_len %d must be positive",
                           max_rows, max_seq_len);
    if (max_seq_len > max_rows) max_seq_len = max_rows;
    cce_status s = fwd_check_model(m, err);
    if (s) return s;
    cce_fwd *f = cce_alloc_zero(1, sizeof *f);
    if (!f) return cce_err_set(err, CCE_ENOMEM, "forward: out of memory");
    fwd_maxes mx = fwd_model_maxes(m);
    f->m = m;
    f->max_rows = max_rows;
    f->max_seq = max_seq_len;
    f->max_q = mx.q; f->max_kv = mx.kv; f->max_hidden = mx.hidden; f->max_rank = mx.rank;
    size_t R = (size_t)max_rows, d = (size_t)m->cfg.dim;
    int V = m->cfg.vocab_size, vs = (int)(NLL_LOGIT_FLOATS / (unsigned)max_rows);
    vs = vs < NLL_VOCAB_MIN ? NLL_VOCAB_MIN : vs & ~63;
    f->nll_vocab = vs < V ? vs : V;
    f->nll_rows = (int)(NLL_LOGIT_FLOATS / (unsigned)f->nll_vocab);
    if (f->nll_rows > max_rows) f->nll_rows = max_rows;
    if (f->nll_rows < 1) f->nll_rows = 1;
    f->h = cce_alloc(R, d * sizeof(float));
    f->xn = cce_alloc(R, d * sizeof(float));
    f->out = cce_alloc(R, d * sizeof(float));
    f->q = cce_alloc(R, (size_t)mx.q * sizeof(float));
    f->att = cce_alloc(R, (size_t)mx.q * sizeof(float));
    f->k = cce_alloc(R, (size_t)mx.kv * sizeof(float));
    f->v = cce_alloc(R, (size_t)mx.kv * sizeof(float));
    f->a = cce_alloc(R, (size_t)mx.hidden * sizeof(float));
    f->b = cce_alloc(R, (size_t)mx.hidden * sizeof(float));
    f->lr = cce_alloc(R, (size_t)mx.rank * sizeof(float));
    f->wtile_floats = mx.wtile;
    if (mx.wtile) f->wtile = cce_alloc(mx.wtile, sizeof(float));
    int threads = cce_pool_default_threads();
    if (threads > 1 && max_seq_len >= 32 && (s = cce_pool_new(threads, &f->pool, err))) {
        cce_fwd_free(f);
        return s;
    }
    size_t nth = (size_t)cce_pool_threads(f->pool);
    f->kt = cce_alloc(nth * (size_t)m->cfg.head_dim, (size_t)max_seq_len * sizeof(float));
    f->scores = cce_alloc(nth * 4, (size_t)max_seq_len * sizeof(float));
    f->logits = cce_alloc((size_t)f->nll_rows, (size_t)f->nll_vocab * sizeof(float));
    f->nll_max = cce_alloc((size_t)f->nll_rows, sizeof(float));
    f->nll_tgt = cce_alloc((size_t)f->nll_rows, sizeof(float));
    f->nll_sum = cce_alloc((size_t)f->nll_rows, sizeof(double));
    f->nll_arg = cce_alloc((size_t)f->nll_rows, sizeof(int));
    if (!f->h || !f->xn || !f->out || !f->q || !f->att || !f->k || !f->v || !f->a || !f->b ||
        !f->lr || (mx.wtile && !f->wtile) || !f->kt || !f->scores || !f->logits ||
        !f->nll_max || !f->nll_tgt || !f->nll_sum || !f->nll_arg) {
        cce_fwd_free(f);
        return cce_err_set(err, CCE_ENOMEM, "forward: out of memory for %d rows of scratch", max_rows);
    }
    if ((s = fwd_rope_tables(&m->cfg, max_seq_len, &f->rope_cos, &f->rope_sin, err))) {
        cce_fwd_free(f);
        return s;
    }
    *out = f;
    return CCE_OK;
}

void cce_fwd_free(cce_fwd *f) {
    if (!f) return;
    cce_free(f->h); cce_free(f->xn); cce_free(f->out); cce_free(f->q); cce_free(f->att);
    cce_free(f->k); cce_free(f->v); cce_free(f->a); cce_free(f->b); cce_free(f->lr); cce_free(f->wtile);
    cce_pool_free(f->pool);
    cce_free(f->kt); cce_free(f->scores);
    cce_free(f->logits); cce_free(f->nll_max); cce_free(f->nll_tgt); cce_free(f->nll_sum); cce_free(f->nll_arg);
    cce_free(f->rope_cos); cce_free(f->rope_sin);
    cce_free(f);
}

/* ---------------------------------------------------------------- kernels */

static cce_status fwd_check_batch(const cce_fwd *f, int n_seq, int seq_len, cce_err *err) {
    if (n_seq <= 0 || seq_len <= 0 || seq_len > f->max_seq || (long)n_seq * seq_len > f->max_rows ||
        (f->m->cfg.arch == CCE_ARCH_GPT2 && seq_len > f->m->cfg.seq_len))
        return cce_err_set(err, CCE_EINVAL, "forward: batch of %d x %d tokens exceeds scratch (%d rows, %d per sequence)",
                           n_seq, seq_len, f->max_rows, f->max_seq);
    return CCE_OK;
}

/* y (rows, l->out) = x (rows, l->in) · Wᵀ + b. f32 weights: one sgemm (two for low-rank, through
 * f->lr); any other stored type: row tiles of W decoded into f->wtile, one sgemm per tile into
 * the tile's columns of y. */
static void fwd_linear(cce_fwd *f, const cce_linear *l, const float *x, int rows, float *y) {
    const float *w32 = cce_linear_f32(l);
    if (w32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f,
                    x, l->in, w32, l->in, 0.0f, y, l->out);
    } else if (l->w) {
        int tr = fwd_tile_rows(l);
        for (int r0 = 0; r0 < l->out; r0 += tr) {
            int nr = l->out - r0 < tr ? l->out - r0 : tr;
            cce_kern_dequant(l->wt, (const uint8_t *)l->w + (size_t)r0 * cce_wtype_row_bytes(l->wt, l->in), f->wtile,
                             (int64_t)nr * l->in);   // rows are packed: one run of nr·in elements
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nr, l->in, 1.0f,
                        x, l->in, f->wtile, l->in, 0.0f, y + r0, l->out);
        }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->rank, l->in, 1.0f,
                    x, l->in, l->v, l->in, 0.0f, f->lr, l->rank);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->rank, 1.0f,
                    f->lr, l->rank, l->u, l->rank, 0.0f, y, l->out);
    }
    if (l->b)
        for (int r = 0; r < rows; r++) {
            float *yr = y + (size_t)r * l->out;
            fwd_vadd(yr, l->b, (size_t)l->out);
        }
}

/* Rotate n_heads head vectors of one row x (n_heads*hd) at position pos. */
static void fwd_rope_row(const cce_config *c, const float *cs, const float *sn, float *x, int n_heads, int pos) {
    int hd = c->head_dim, half = hd / 2;
    const float *cr = cs + (size_t)pos * half, *sr = sn + (size_t)pos * half;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * hd;
        if (c->rope_interleaved) {
            for (int j = 0; j < half; j++) {
                float x0 = v[2 * j], x1 = v[2 * j + 1];
                v[2 * j] = x0 * cr[j] - x1 * sr[j];
                v[2 * j + 1] = x0 * sr[j] + x1 * cr[j];
            }
        } else {
            for (int j = 0; j < half; j++) {
                float x0 = v[j], x1 = v[j + half];
                v[j] = x0 * cr[j] - x1 * sr[j];
                v[j + half] = x0 * sr[j] + x1 * cr[j];
            }
        }
    }
}

/* e^x = 2^n · e^r with n = round(x·log2 e), r = x − n·ln 2 (ln 2 split in two for accuracy),
 * e^r by a degree-6 polynomial on |r| <= ln2/2: relative error ~2 ulp. x is clamped to
 * [-87.3, 88.3], so the result is finite and never denormal. */
static inline fwd_vf fwd_vexp(fwd_vf x) {
    const fwd_vf lo = fwd_vsplat(-87.3f), hi = fwd_vsplat(88.3f), magic = fwd_vsplat(12582912.0f);
    x = fwd_vselect(x < lo, lo, x);
    x = fwd_vselect(x > hi, hi, x);
    /* round to nearest by adding 1.5·2^23: t's low mantissa bits then hold n itself, so the
     * integer n is a bit difference (no float->int conversion) */
    fwd_vf t = x * fwd_vsplat(1.44269504088896341f) + magic;
    fwd_vf n = t - magic;
    fwd_vf r = x - n * fwd_vsplat(0.693359375f) + n * fwd_vsplat(2.12194440e-4f);
    fwd_vf p = fwd_vsplat(1.9875691500e-4f);
    p = p * r + fwd_vsplat(1.3981999507e-3f);
    p = p * r + fwd_vsplat(8.3334519073e-3f);
    p = p * r + fwd_vsplat(4.1665795894e-2f);
    p = p * r + fwd_vsplat(1.6666665459e-1f);
    p = p * r + fwd_vsplat(5.0000001201e-1f);
    p = p * r * r + r + fwd_vsplat(1.0f);
    fwd_vi e = ((fwd_vi)t - (fwd_vi)magic + 127) << 23;
    return p * (fwd_vf)e;
}

static inline float fwd_exp(float x) {  // scalar tail: same formula, lane 0
    fwd_vf v = fwd_vsplat(x);
    return fwd_vexp(v)[0];
}

static float fwd_vmax(const float *s, int n) {
    float mx = s[0];
    int j = 0;
    if (n >= FWD_VL) {
        fwd_vf m = fwd_vload(s);
        for (j = FWD_VL; j + FWD_VL <= n; j += FWD_VL) {
            fwd_vf x = fwd_vload(s + j);
            m = fwd_vselect(x > m, x, m);
        }
        for (int k = 0; k < FWD_VL; k++) mx = m[k] > mx ? m[k] : mx;
    }
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    return mx;
}

/* s[j] = exp(s[j] - mx) for j < n; returns the sum (float lanes, added up in double). */
static double fwd_vexp_sum(float *s, int n, float mx) {
    fwd_vf m = fwd_vsplat(mx), acc = fwd_vsplat(0.0f);
    double sum = 0.0;
    int j = 0;
    for (; j + FWD_VL <= n; j += FWD_VL) {
        fwd_vf e = fwd_vexp(fwd_vload(s + j) - m);
        fwd_vstore(s + j, e);
        acc += e;
        if ((j & 1023) == 1024 - FWD_VL) {  // flush to double every 1024 terms
            for (int k = 0; k < FWD_VL; k++) sum += acc[k];
            acc = fwd_vsplat(0.0f);
        }
    }
    if (j < n) {   // the last n - j < FWD_VL terms in one padded vector
        float t[FWD_VL];
        int k = 0;
        for (; j + k < n; k++) t[k] = s[j + k];
        for (int z = k; z < FWD_VL; z++) t[z] = mx;
        fwd_vf e = fwd_vexp(fwd_vload(t) - m);
        for (int z = 0; z < k; z++) { s[j + z] = e[z]; acc[z] += e[z]; }
    }
    for (int k = 0; k < FWD_VL; k++) sum += acc[k];
    return sum;
}

/* a[i] = silu(a[i]) * b[i] = a / (1 + e^-a) * b, for n elements. */
static void fwd_swiglu(float *a, const float *b, size_t n) {
    size_t i = 0;
    const fwd_vf one = fwd_vsplat(1.0f);
    for (; i + FWD_VL <= n; i += FWD_VL) {
        fwd_vf z = fwd_vload(a + i);
        fwd_vstore(a + i, z / (one + fwd_vexp(-z)) * fwd_vload(b + i));
    }
    for (; i < n; i++) a[i] = a[i] / (1.0f + fwd_exp(-a[i])) * b[i];
}

/* a[i] = gelu_tanh(a[i]) = 0.5 a (1 + tanh(u)), u = sqrt(2/pi) (a + 0.044715 a³), computed as
 * a · sigmoid(2u) = a / (1 + e^(-2u)), which is the same function. */
static void fwd_gelu(float *a, size_t n) {
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    const fwd_vf one = fwd_vsplat(1.0f);
    size_t i = 0;
    for (; i + FWD_VL <= n; i += FWD_VL) {
        fwd_vf z = fwd_vload(a + i);
        fwd_vf u = fwd_vsplat(k0) * (z + fwd_vsplat(k1) * z * z * z);
        fwd_vstore(a + i, z / (one + fwd_vexp(fwd_vsplat(-2.0f) * u)));
    }
    for (; i < n; i++) {
        float z = a[i];
        a[i] = z / (1.0f + fwd_exp(-2.0f * k0 * (z + k1 * z * z * z)));
    }
}

/* Σ (x[i] - c)² and Σ x[i] over n floats (vector lanes, then summed). */
static float fwd_vsumsq(const float *x, int n, float c) {
    fwd_vf acc = fwd_vsplat(0.0f), cv = fwd_vsplat(c);
    float s = 0.0f;
    int i = 0;
    for (; i + FWD_VL <= n; i += FWD_VL) {
        fwd_vf d = fwd_vload(x + i) - cv;
        acc += d * d;
    }
    for (int k = 0; k < FWD_VL; k++) s += acc[k];
    for (; i < n; i++) s += (x[i] - c) * (x[i] - c);
    return s;
}

static float fwd_vsum(const float *x, int n) {
    fwd_vf acc = fwd_vsplat(0.0f);
    float s = 0.0f;
    int i = 0;
    for (; i + FWD_VL <= n; i += FWD_VL) acc += fwd_vload(x + i);
    for (int k = 0; k < FWD_VL; k++) s += acc[k];
    for (; i < n; i++) s += x[i];
    return s;
}

/* out (rows, dim) = norm(x) row by row: RMSNorm (Llama) x·w/sqrt(mean(x²)+eps) or LayerNorm
 * (GPT-2) (x-mean)·w/sqrt(var+eps); then + b when b is given. */
static void fwd_norm(const cce_model *m, const float *x, int rows, const float *w, const float *b, float *out) {
    int d = m->cfg.dim, ln = m->cfg.arch == CCE_ARCH_GPT2;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        float mean = ln ? fwd_vsum(xr, d) / (float)d : 0.0f;
        float inv = 1.0f / sqrtf(fwd_vsumsq(xr, d, mean) / (float)d + m->cfg.norm_eps);
        fwd_vf mv = fwd_vsplat(mean), iv = fwd_vsplat(inv);
        int i = 0;
        for (; i + FWD_VL <= d; i += FWD_VL) {
            fwd_vf y = (fwd_vload(xr + i) - mv) * iv * fwd_vload(w + i);
            if (b) y += fwd_vload(b + i);
            fwd_vstore(o + i, y);
        }
        for (; i < d; i++) o[i] = (xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.0f);
    }
}

/* Unnormalised causal softmax of one score row: s[j] = exp(s[j] - max) for j < n, zero for
 * n <= j < ncols. Returns 1/sum, for the caller to scale the row's output. */
static float fwd_softmax_row(float *s, int n, int ncols) {
    double sum = fwd_vexp_sum(s, n, fwd_vmax(s, n));
    if (ncols > n) memset(s + n, 0, (size_t)(ncols - n) * sizeof(float));
    return (float)(1.0 / sum);
}

/* Causal attention of query head h of layer l in one sequence: q (T, qd) holds head h at
 * columns [h*hd, (h+1)*hd); K, V are the (T, hd) slices of its KV head, leading dimension kvd;
 * the output goes to the same columns of att (T, qd). The keys are transposed into kt (hd, T);
 * then four query rows at a time: their scores against the keys the last of them sees
 * (cce_kern_scores4), each row's causal softmax (weights past its own position zeroed) and the
 * weighted values (cce_kern_mix4); four rows waste at most three keys of work. kt and S are the
 * calling thread's scratch. */
static void fwd_attend_head(int hd, const float *q, int qd, int h, const float *K, const float *V, int kvd,
                            float *att, int T, float *kt, float *S) {
    float scale = 1.0f / sqrtf((float)hd), inv[4];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hd; i++) kt[(size_t)i * T + t] = K[(size_t)t * kvd + i];
    const float *qa = q + (size_t)h * hd;
    float *oa = att + (size_t)h * hd;
    for (int r0 = 0; r0 < T; r0 += 4) {
        int nq = T - r0 < 4 ? T - r0 : 4, tm = r0 + nq;   // keys 0..tm-1 are visible to some row
        cce_kern_scores4(qa + (size_t)r0 * qd, qd, nq, kt, T, hd, tm, scale, S, T);
        for (int j = 0; j < nq; j++) inv[j] = fwd_softmax_row(S + (size_t)j * T, r0 + j + 1, tm);
        cce_kern_mix4(S, T, nq, V, kvd, hd, tm, inv, oa + (size_t)r0 * qd, qd);
    }
}

/* The attention of one layer over a batch as tasks (sequence, query head), for the pool. */
typedef struct {
    cce_fwd *f;
    const cce_layer *l;
    int n_seq, seq_len;
} fwd_att_job;

static void fwd_att_task(void *ctx, int task, int n_tasks) {
    (void)n_tasks;
    const fwd_att_job *j = ctx;
    cce_fwd *f = j->f;
    const cce_layer *l = j->l;
    int hd = f->m->cfg.head_dim, qd = l->n_heads * hd, kvd = l->n_kv_heads * hd, T = j->seq_len;
    int sq = task / l->n_heads, h = task % l->n_heads, g = cce_layer_kv_of(l, h), th = cce_pool_thread();
    size_t r0 = (size_t)sq * T;
    fwd_attend_head(hd, f->q + r0 * qd, qd, h, f->k + r0 * kvd + (size_t)g * hd, f->v + r0 * kvd + (size_t)g * hd, kvd,
                    f->att + r0 * qd, T, f->kt + (size_t)th * hd * f->max_seq, f->scores + (size_t)th * 4 * f->max_seq);
}

static int fwd_tap(cce_tap_fn tap, void *user, int layer, cce_tap_site site, const float *x,
                   int n_seq, int seq_len, int cols) {
    if (!tap) return 0;
    cce_tap t = {.layer = layer, .site = site, .x = x, .rows = n_seq * seq_len, .cols = cols,
                 .ld = cols, .n_seq = n_seq, .seq_len = seq_len};
    return tap(user, &t);
}

/* ---------------------------------------------------------------- batched pass */

cce_status cce_fwd_embed(cce_fwd *f, const int *ids, int n_seq, int seq_len, float *h, cce_err *err) {
    cce_status s = fwd_check_batch(f, n_seq, seq_len, err);
    if (s) return s;
    const cce_model *m = f->m;
    int d = m->cfg.dim, rows = n_seq * seq_len;
    for (int r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= m->cfg.vocab_size)
            return cce_err_set(err, CCE_EINVAL, "forward: token id %d at row %d outside vocabulary (%d)",
                               ids[r], r, m->cfg.vocab_size);
    for (int r = 0; r < rows; r++) {
        float *hr = h + (size_t)r * d;
        cce_linear_rows(&m->tok_emb, ids[r], 1, hr);
        if (m->pos_emb) {
            fwd_vadd(hr, m->pos_emb + (size_t)(r % seq_len) * d, (size_t)d);
        }
    }
    return CCE_OK;
}

static cce_status fwd_check_layer(const cce_fwd *f, int layer, int n_seq, int seq_len, cce_err *err) {
    cce_status s = fwd_check_batch(f, n_seq, seq_len, err);
    if (s) return s;
    if (layer < 0 || layer >= f->m->cfg.n_layers)
        return cce_err_set(err, CCE_EINVAL, "forward: layer %d out of range (%d layers)", layer, f->m->cfg.n_layers);
    return CCE_OK;
}

/* h += attention(norm(h)) for layer l (which has heads). 1 when a tap asked to stop or the
 * thread's cancel (cce_interrupted) is requested; h is then unchanged. */
static int fwd_attn(cce_fwd *f, int layer, const cce_layer *l, float *h, int n_seq, int seq_len, cce_tap_fn tap,
                    void *user) {
    const cce_model *m = f->m;
    int d = m->cfg.dim, hd = m->cfg.head_dim, rows = n_seq * seq_len;
    int qd = l->n_heads * hd, kvd = l->n_kv_heads * hd;
    if (cce_interrupted()) return 1;
    fwd_norm(m, h, rows, l->attn_norm, l->attn_norm_b, f->xn);
    if (fwd_tap(tap, user, layer, CCE_TAP_ATTN_IN, f->xn, n_seq, seq_len, d)) return 1;
    fwd_linear(f, &l->wq, f->xn, rows, f->q);
    fwd_linear(f, &l->wk, f->xn, rows, f->k);
    fwd_linear(f, &l->wv, f->xn, rows, f->v);
    if (cce_interrupted()) return 1;
    if (m->cfg.arch != CCE_ARCH_GPT2)
        for (int r = 0; r < rows; r++) {
            fwd_rope_row(&m->cfg, f->rope_cos, f->rope_sin, f->q + (size_t)r * qd, l->n_heads, r % seq_len);
            fwd_rope_row(&m->cfg, f->rope_cos, f->rope_sin, f->k + (size_t)r * kvd, l->n_kv_heads, r % seq_len);
        }
    if (f->kv_sink) dec_store_kv(f->kv_sink, layer, l, f->k, f->v, rows);   // one sequence (prefill)
    /* (sequence, head) tasks: on the pool when there are several and they are not tiny (the
     * workers do not poll the cancel; one layer's attention is then the cancel's granularity),
     * else here, polling the cancel between tasks */
    fwd_att_job aj = {f, l, n_seq, seq_len};
    int n_tasks = n_seq * l->n_heads;
    if (f->pool && n_tasks > 1 && seq_len >= 32) {
        cce_pool_run(f->pool, fwd_att_task, &aj, n_tasks);
    } else {
        for (int t = 0; t < n_tasks; t++) {
            if (cce_interrupted()) return 1;
            fwd_att_task(&aj, t, n_tasks);
        }
    }
    if (fwd_tap(tap, user, layer, CCE_TAP_HEADS, f->att, n_seq, seq_len, qd) || cce_interrupted()) return 1;
    fwd_linear(f, &l->wo, f->att, rows, f->out);
    if (fwd_tap(tap, user, layer, CCE_TAP_ATTN_OUT, f->out, n_seq, seq_len, d)) return 1;
    fwd_vadd(h, f->out, (size_t)rows * d);
    return 0;
}

/* h += ffn(norm(h)) for layer l (which has hidden units). 1 when a tap asked to stop or the
 * thread's cancel is requested; h is then unchanged. */
static int fwd_ffn(cce_fwd *f, int layer, const cce_layer *l, float *h, int n_seq, int seq_len, cce_tap_fn tap,
                   void *user) {
    const cce_model *m = f->m;
    int d = m->cfg.dim, rows = n_seq * seq_len;
    if (cce_interrupted()) return 1;
    fwd_norm(m, h, rows, l->ffn_norm, l->ffn_norm_b, f->xn);
    if (fwd_tap(tap, user, layer, CCE_TAP_FFN_IN, f->xn, n_seq, seq_len, d)) return 1;
    size_t nh = (size_t)rows * l->hidden;
    fwd_linear(f, &l->w1, f->xn, rows, f->a);
    if (m->cfg.arch == CCE_ARCH_GPT2) {
        fwd_gelu(f->a, nh);
    } else {
        if (cce_interrupted()) return 1;
        fwd_linear(f, &l->w3, f->xn, rows, f->b);
        fwd_swiglu(f->a, f->b, nh);
    }
    if (fwd_tap(tap, user, layer, CCE_TAP_FFN_ACT, f->a, n_seq, seq_len, l->hidden) || cce_interrupted()) return 1;
    fwd_linear(f, &l->w2, f->a, rows, f->out);
    fwd_vadd(h, f->out, (size_t)rows * d);
    return 0;
}

cce_status cce_fwd_block(cce_fwd *f, int layer, float *h, int n_seq, int seq_len,
                         cce_tap_fn tap, void *user, cce_err *err) {
    cce_status s = fwd_check_layer(f, layer, n_seq, seq_len, err);
    if (s) return s;
    const cce_layer *l = &f->m->layers[layer];
    int d = f->m->cfg.dim;
    if (!l->dropped) {
        if (l->n_heads > 0 && fwd_attn(f, layer, l, h, n_seq, seq_len, tap, user)) goto cancel;
        if (l->hidden > 0 && fwd_ffn(f, layer, l, h, n_seq, seq_len, tap, user)) goto cancel;
    }
    if (fwd_tap(tap, user, layer, CCE_TAP_BLOCK_OUT, h, n_seq, seq_len, d)) goto cancel;
    return CCE_OK;
cancel:
    return cce_err_set(err, CCE_ECANCEL, "forward: layer %d cancelled", layer);
}

cce_status cce_fwd_sublayer(cce_fwd *f, int layer, int ffn, float *h, int n_seq, int seq_len,
                            cce_tap_fn tap, void *user, cce_err *err) {
    cce_status s = fwd_check_layer(f, layer, n_seq, seq_len, err);
    if (s) return s;
    const cce_layer *l = &f->m->layers[layer];
    if (l->dropped || (ffn ? l->hidden == 0 : l->n_heads == 0)) return CCE_OK;
    int stop = ffn ? fwd_ffn(f, layer, l, h, n_seq, seq_len, tap, user) : fwd_attn(f, layer, l, h, n_seq, seq_len, tap, user);
    return stop ? cce_err_set(err, CCE_ECANCEL, "forward: layer %d cancelled", layer) : CCE_OK;
}

cce_status cce_fwd_norm_input(cce_fwd *f, int layer, int ffn, const float *h, int rows, float *out, cce_err *err) {
    const cce_model *m = f->m;
    if (layer < 0 || layer >= m->cfg.n_layers || rows < 0)
        return cce_err_set(err, CCE_EINVAL, "forward: layer %d / %d rows out of range", layer, rows);
    const cce_layer *l = &m->layers[layer];
    const float *w = ffn ? l->ffn_norm : l->attn_norm, *b = ffn ? l->ffn_norm_b : l->attn_norm_b;
    if (!w) return cce_err_set(err, CCE_EINVAL, "forward: layer %d has no %s sublayer", layer, ffn ? "FFN" : "attention");
    fwd_norm(m, h, rows, w, b, out);
    return CCE_OK;
}

cce_status cce_fwd_logits(cce_fwd *f, const float *h, int rows, float *logits, cce_err *err) {
    const cce_model *m = f->m;
    if (rows <= 0 || rows > f->max_rows)
        return cce_err_set(err, CCE_EINVAL, "forward: %d rows exceed scratch (%d)", rows, f->max_rows);
    fwd_norm(m, h, rows, m->final_norm, m->final_norm_b, f->xn);
    fwd_linear(f, &m->lm_head, f->xn, rows, logits);
    return CCE_OK;
}

/* The NLL head; correct (may be NULL) counts predictions whose argmax is the target. */
static cce_status fwd_nll(cce_fwd *f, const float *h, const int *ids, int n_seq, int seq_len,
                          double *sum_nll, long *count, long *correct, cce_err *err) {
    cce_status s = fwd_check_batch(f, n_seq, seq_len, err);
    if (s) return s;
    const cce_model *m = f->m;
    int d = m->cfg.dim, V = m->cfg.vocab_size, rows = n_seq * seq_len;
    for (int r = 0; r < rows; r++)
        if (ids[r] < 0 || ids[r] >= V)
            return cce_err_set(err, CCE_EINVAL, "forward: token id %d at row %d outside vocabulary (%d)", ids[r], r, V);
    fwd_norm(m, h, rows, m->final_norm, m->final_norm_b, f->xn);
    const cce_linear *head = &m->lm_head;
    double total = 0.0;
    long cnt = 0, ok = 0;
    for (int r0 = 0; r0 < rows; r0 += f->nll_rows) {
        int nr = rows - r0 < f->nll_rows ? rows - r0 : f->nll_rows;
        for (int i = 0; i < nr; i++) {
            f->nll_max[i] = -INFINITY;
            f->nll_sum[i] = 0.0;
            f->nll_tgt[i] = 0.0f;
            f->nll_arg[i] = 0;
        }
        for (int v0 = 0; v0 < V; v0 += f->nll_vocab) {
            if (cce_interrupted()) return cce_err_set(err, CCE_ECANCEL, "forward: interrupted in the LM head");
            int nv = V - v0 < f->nll_vocab ? V - v0 : f->nll_vocab;
            cce_linear slice = *head;   // rows [v0, v0+nv) of the head
            slice.out = nv;
            if (head->w) slice.w = (const uint8_t *)head->w + (size_t)v0 * cce_wtype_row_bytes(head->wt, head->in);
            else slice.u = head->u + (size_t)v0 * head->rank;
            if (head->b) slice.b = head->b + v0;
            fwd_linear(f, &slice, f->xn + (size_t)r0 * d, nr, f->logits);   // (nr, nv)
            for (int i = 0; i < nr; i++) {
                int r = r0 + i;
                if (r % seq_len == seq_len - 1) continue;  // last position predicts nothing here
                float *lg = f->logits + (size_t)i * nv, cm = fwd_vmax(lg, nv);
                int t = ids[r + 1] - v0;
                if (t >= 0 && t < nv) f->nll_tgt[i] = lg[t];
                if (cm > f->nll_max[i]) {   // strictly: ties keep the first index, as cce_argmax does
                    f->nll_sum[i] *= exp((double)f->nll_max[i] - (double)cm);
                    f->nll_max[i] = cm;
                    if (correct) f->nll_arg[i] = v0 + cce_argmax(lg, nv);
                }
                f->nll_sum[i] += fwd_vexp_sum(lg, nv, f->nll_max[i]);   // overwrites the row with exps
            }
        }
        for (int i = 0; i < nr; i++) {
            if ((r0 + i) % seq_len == seq_len - 1) continue;
            total += log(f->nll_sum[i]) + (double)f->nll_max[i] - (double)f->nll_tgt[i];
            if (correct) ok += f->nll_arg[i] == ids[r0 + i + 1];
            cnt++;
        }
    }
    *sum_nll += total;
    *count += cnt;
    if (correct) *correct += ok;
    return CCE_OK;
}

cce_status cce_fwd_nll(cce_fwd *f, const float *h, const int *ids, int n_seq, int seq_len,
                       double *sum_nll, long *count, cce_err *err) {
    return fwd_nll(f, h, ids, n_seq, seq_len, sum_nll, count, NULL, err);
}

cce_status cce_fwd_sequences_nll_acc(cce_fwd *f, const int *ids, int n_seq, int seq_len,
                                     double *sum_nll, long *count, long *correct, cce_err *err) {
    cce_status s = cce_fwd_embed(f, ids, n_seq, seq_len, f->h, err);
    for (int li = 0; !s && li < f->m->cfg.n_layers; li++)
        s = cce_fwd_block(f, li, f->h, n_seq, seq_len, NULL, NULL, err);
    if (!s) s = fwd_nll(f, f->h, ids, n_seq, seq_len, sum_nll, count, correct, err);
    return s;
}

cce_status cce_fwd_sequences_nll(cce_fwd *f, const int *ids, int n_seq, int seq_len,
                                 double *sum_nll, long *count, cce_err *err) {
    return cce_fwd_sequences_nll_acc(f, ids, n_seq, seq_len, sum_nll, count, NULL, err);
}

/* ---------------------------------------------------------------- decoder
 *
 * One token at a time: latency-bound for small models, DRAM-bound for large ones, so a step
 * reads each weight byte once, synchronises rarely and allocates nothing:
 *  - one job per group of rows that read the same input: q, k and v together; gate and up
 *    together, with SwiGLU applied by each thread to its own rows; then wo, w2 and the LM head.
 *    A job whose weights exceed DEC_POOL_BYTES runs on the decoder's thread pool (kernels.h)
 *    in chunks of contiguous rows, smaller ones on the calling thread, where the hand-off would
 *    cost more than a second core gains. Each row is one kernel call whoever runs it, so the
 *    logits do not depend on the thread count.
 *  - the input of a job with q8_0 weights is quantised to int8 once and read by all its rows
 *    (unless cce_decoder_set_exact), so that their products are VNNI int8 dot products.
 *  - a low-rank linear U·V first forms t = V x (rank) on the calling thread; the job then
 *    multiplies U's rows by t.
 *  - the KV cache is laid out for the two attention products: keys transposed per KV head,
 *    (layer, kv_head, head_dim, max_seq), so a head's scores are head_dim axpys over
 *    contiguous positions (cce_kern_scores); values (layer, kv_head, max_seq, head_dim), so its
 *    output is one axpy of a value row per position (cce_kern_mix). Heads are split across
 *    the pool when a layer's attention reads more than DEC_POOL_ATT floats.
 */
#define DEC_POOL_BYTES (192u << 10)
#define DEC_CHUNK_BYTES (64u << 10)   /* a pooled job is cut into chunks of about this many weight bytes */
#define DEC_POOL_ATT (1 << 15)

typedef struct {
    cce_wtype wt;
    const void *w;          // (rows, x->n) in wt, row stride rb
    size_t rb;
    int rows;
    const float *b;         // (rows) or NULL
    const cce_kvec *x;
    float *y;               // (rows)
} dec_seg;

typedef struct {
    dec_seg seg[3];
    int n_seg, rows;        // rows: Σ seg rows, or the gate's rows when swiglu
    int swiglu;             // seg[0] gate -> a, seg[1] up -> b, then a = silu(a)·b
    size_t bytes;           // weight bytes the job reads
} dec_job;

typedef struct {
    cce_decoder *d;
    const cce_layer *l;
    int layer, T;
} dec_att;

struct cce_decoder {
    const cce_model *m;
    int max_seq, len;       // len: positions filled in the cache
    int max_kv;
    cce_pool *pool;         // NULL: every job on the calling thread
    int exact;              // 1: q8_0 weights multiply the f32 activation (cce_decoder_set_exact)
    int stream;             // 1: the weights are larger than the last-level cache (kernels.h's kvec)
    float *x, *xn, *out;    // (dim)
    float *q, *att;         // (max_q)
    float *knew, *vnew;     // (max_kv) this position's key and value
    float *a, *b;           // (max_hidden)
    int max_rank;
    float *lr;              // (3, max_rank) V x of up to three low-rank linears of a job
    cce_kvec lrv[3];        // their kvecs
    int8_t *xq;             // (max_in) int8 codes of a job's input
    float *xd;              // (max_in / 32) their block scales
    cce_kvec in;            // the current job's input
    float *scores;          // (max_heads, max_seq)
    float *kc, *vc;         // key cache (n_layers, max_kv/hd, hd, max_seq), values (n_layers, max_kv/hd, max_seq, hd)
    float *rope_cos, *rope_sin;  // (max_seq, head_dim/2)
    dec_job job;
};

static void dec_job_run(void *ctx, int i, int n) {
    const dec_job *j = ctx;
    int r0, r1;
    cce_split(j->rows, i, n, 16, &r0, &r1);
    int base = 0;
    for (int s = 0; s < j->n_seg; s++) {
        const dec_seg *g = &j->seg[s];
        int a = j->swiglu ? r0 : (r0 > base ? r0 - base : 0);
        int b = j->swiglu ? r1 : (r1 - base < g->rows ? r1 - base : g->rows);
        if (a < b) {
            cce_kern_gemv(g->wt, (const uint8_t *)g->w + (size_t)a * g->rb, g->rb, b - a, g->x, g->y + a);
            if (g->b) fwd_vadd(g->y + a, g->b + a, (size_t)(b - a));
        }
        if (!j->swiglu) base += g->rows;
    }
    if (j->swiglu && r0 < r1) fwd_swiglu(j->seg[0].y + r0, j->seg[1].y + r0, (size_t)(r1 - r0));
}

/* d->in = the input x (n) of the next job, quantised when want_q8. */
static const cce_kvec *dec_input(cce_decoder *d, const float *x, int n, int want_q8) {
    d->in = (cce_kvec){.n = n, .x = x, .stream = d->stream};
    if (want_q8) {
        d->in.q = d->xq;
        d->in.d = d->xd;
        cce_kvec_quantize(&d->in);
    }
    return &d->in;
}

static int dec_wants_q8(const cce_decoder *d, const cce_linear *l) {
    return !d->exact && l->w && cce_kern_wants_q8(l->wt);
}

/* Start a job over input x. */
static dec_job *dec_job_begin(cce_decoder *d, int swiglu) {
    d->job = (dec_job){.swiglu = swiglu};
    return &d->job;
}

/* Add linear l writing y to the job; x is the job's input (its f32 values are what a low-rank
 * V reads). */
static void dec_job_add(cce_decoder *d, dec_job *j, const cce_linear *l, const cce_kvec *x, float *y) {
    dec_seg *g = &j->seg[j->n_seg];
    if (l->w) {
        *g = (dec_seg){.wt = l->wt, .w = l->w, .rb = cce_wtype_row_bytes(l->wt, l->in), .rows = l->out, .b = l->b,
                       .x = x, .y = y};
    } else {
        float *t = d->lr + (size_t)j->n_seg * (size_t)d->max_rank;
        cce_kvec xf = {.n = l->in, .x = x->x, .stream = d->stream};
        cce_kern_gemv(CCE_WT_F32, l->v, (size_t)l->in * sizeof(float), l->rank, &xf, t);
        d->lrv[j->n_seg] = (cce_kvec){.n = l->rank, .x = t, .stream = d->stream};
        *g = (dec_seg){.wt = CCE_WT_F32, .w = l->u, .rb = (size_t)l->rank * sizeof(float), .rows = l->out, .b = l->b,
                       .x = &d->lrv[j->n_seg], .y = y};
    }
    j->bytes += (size_t)g->rows * g->rb;
    j->rows = j->swiglu ? g->rows : j->rows + g->rows;
    j->n_seg++;
}

static void dec_job_go(cce_decoder *d, dec_job *j) {
    if (d->pool && j->bytes >= DEC_POOL_BYTES) {
        size_t c = j->bytes / DEC_CHUNK_BYTES, lo = (size_t)cce_pool_threads(d->pool);
        cce_pool_run(d->pool, dec_job_run, j, (int)(c < lo ? lo : c > 64 ? 64 : c));
    } else {
        dec_job_run(j, 0, 1);
    }
}

/* y (out) = l x for one linear on its own (wo, w2, the LM head). */
static void dec_linear(cce_decoder *d, const cce_linear *l, const float *x, float *y) {
    const cce_kvec *in = dec_input(d, x, l->in, dec_wants_q8(d, l));
    dec_job *j = dec_job_begin(d, 0);
    dec_job_add(d, j, l, in, y);
    dec_job_go(d, j);
}

/* Attention of the heads [h0, h1) of layer a->layer over positions [0, T). */
static void dec_att_heads(const dec_att *a, int h0, int h1) {
    cce_decoder *d = a->d;
    const cce_layer *l = a->l;
    int hd = d->m->cfg.head_dim, S = d->max_seq;
    size_t lay = (size_t)a->layer * (size_t)S * (size_t)d->max_kv;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = h0; h < h1; h++) {
        int g = cce_layer_kv_of(l, h);
        const float *kt = d->kc + lay + (size_t)g * hd * S, *v = d->vc + lay + (size_t)g * S * hd;
        float *s = d->scores + (size_t)h * S;
        cce_kern_scores(d->q + (size_t)h * hd, kt, S, hd, a->T, scale, s);
        float inv = fwd_softmax_row(s, a->T, a->T);
        cce_kern_mix(s, v, hd, a->T, inv, d->att + (size_t)h * hd);
    }
}

static void dec_att_run(void *ctx, int h, int n) {
    (void)n;
    dec_att_heads(ctx, h, h + 1);
}

cce_status cce_decoder_new(const cce_model *m, int max_seq_len, cce_decoder **out, cce_err *err) {
    *out = NULL;
    if (max_seq_len <= 0)
        return cce_err_set(err, CCE_EINVAL, "decoder: max_seq_len %d must be positive", max_seq_len);
    if (m->cfg.arch == CCE_ARCH_GPT2 && max_seq_len > m->cfg.seq_len) max_seq_len = m->cfg.seq_len;
    cce_status s = fwd_check_model(m, err);
    if (s) return s;
    cce_decoder *d = cce_alloc_zero(1, sizeof *d);
    if (!d) return cce_err_set(err, CCE_ENOMEM, "decoder: out of memory");
    fwd_maxes mx = fwd_model_maxes(m);
    d->m = m;
    d->max_seq = max_seq_len;
    d->max_kv = mx.kv;
    size_t dim = (size_t)m->cfg.dim, L = m->cfg.n_layers > 0 ? (size_t)m->cfg.n_layers : 1, cache;
    size_t max_in = dim > (size_t)mx.q ? dim : (size_t)mx.q;
    if ((size_t)mx.hidden > max_in) max_in = (size_t)mx.hidden;
    d->x = cce_alloc(dim, sizeof(float));
    d->xn = cce_alloc(dim, sizeof(float));
    d->out = cce_alloc(dim, sizeof(float));
    d->q = cce_alloc((size_t)mx.q, sizeof(float));
    d->att = cce_alloc((size_t)mx.q, sizeof(float));
    d->knew = cce_alloc((size_t)mx.kv, sizeof(float));
    d->vnew = cce_alloc((size_t)mx.kv, sizeof(float));
    d->a = cce_alloc((size_t)mx.hidden, sizeof(float));
    d->b = cce_alloc((size_t)mx.hidden, sizeof(float));
    d->lr = cce_alloc(3 * (size_t)mx.rank, sizeof(float));
    d->max_rank = mx.rank;
    d->xq = cce_alloc(max_in, 1);
    d->xd = cce_alloc(max_in / 32 + 1, sizeof(float));
    d->scores = cce_alloc((size_t)mx.heads, (size_t)max_seq_len * sizeof(float));
    if (cce_size_mul(L, (size_t)max_seq_len, &cache) && cce_size_mul(cache, (size_t)mx.kv, &cache)) {
        d->kc = cce_alloc(cache, sizeof(float));
        d->vc = cce_alloc(cache, sizeof(float));
    }
    if (!d->x || !d->xn || !d->out || !d->q || !d->att || !d->knew || !d->vnew || !d->a || !d->b || !d->lr ||
        !d->xq || !d->xd || !d->scores || !d->kc || !d->vc) {
        cce_decoder_free(d);
        return cce_err_set(err, CCE_ENOMEM, "decoder: out of memory for a %d-position KV cache", max_seq_len);
    }
    if ((s = fwd_rope_tables(&m->cfg, max_seq_len, &d->rope_cos, &d->rope_sin, err))) {
        cce_decoder_free(d);
        return s;
    }
    size_t llc = cce_kern_llc_bytes();
    d->stream = llc > 0 && cce_model_bytes(m) > llc;
    /* a pool only when some job is large enough to use it */
    int threads = cce_pool_default_threads();
    if (threads > 1 && cce_model_bytes(m) / (L + 1) >= DEC_POOL_BYTES && (s = cce_pool_new(threads, &d->pool, err))) {
        cce_decoder_free(d);
        return s;
    }
    *out = d;
    return CCE_OK;
}

void cce_decoder_free(cce_decoder *d) {
    if (!d) return;
    cce_pool_free(d->pool);
    cce_free(d->x); cce_free(d->xn); cce_free(d->out); cce_free(d->q); cce_free(d->att);
    cce_free(d->knew); cce_free(d->vnew); cce_free(d->a); cce_free(d->b); cce_free(d->lr);
    cce_free(d->xq); cce_free(d->xd); cce_free(d->scores);
    cce_free(d->kc); cce_free(d->vc); cce_free(d->rope_cos); cce_free(d->rope_sin);
    cce_free(d);
}

int cce_decoder_threads(const cce_decoder *d) { return cce_pool_threads(d->pool); }

void cce_decoder_set_exact(cce_decoder *d, int exact) { d->exact = exact != 0; }

int cce_argmax(const float *x, int n) {
    /* the largest value by vector maxima, then its first index: what the scalar "x[j] > x[best]"
     * scan returns, NaNs included (skipped, and index 0 when x[0] is one) */
    if (!(x[0] == x[0])) return 0;
    float mx = x[0];
    int j = 0;
    fwd_vf m = fwd_vsplat(x[0]);
    for (; j + FWD_VL <= n; j += FWD_VL) {
        fwd_vf v = fwd_vload(x + j);
        m = fwd_vselect(v > m, v, m);
    }
    for (int k = 0; k < FWD_VL; k++) mx = m[k] > mx ? m[k] : mx;
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    for (j = 0; j < n; j++)
        if (x[j] == mx) return j;
    return 0;
}

cce_status cce_greedy_ids(const cce_model *m, int *ids, int n, cce_err *err) {
    if (n < 1) return cce_err_set(err, CCE_EINVAL, "greedy: need at least the start token (n = %d)", n);
    cce_decoder *d = NULL;
    float *logits = cce_alloc((size_t)m->cfg.vocab_size, sizeof(float));   // (vocab)
    cce_status s = logits ? cce_decoder_new(m, n, &d, err) : cce_err_set(err, CCE_ENOMEM, "greedy: out of memory");
    for (int t = 0; !s && t + 1 < n; t++)
        if (!(s = cce_decoder_step(d, ids[t], t, logits, err))) ids[t + 1] = cce_argmax(logits, m->cfg.vocab_size);
    cce_decoder_free(d);
    cce_free(logits);
    return s;
}

/* Keys and values of positions [0, T) of one sequence, k and v (T, kv_dim) as the batched pass
 * holds them (keys rotated), into the cache's layouts. */
static void dec_store_kv(cce_decoder *d, int layer, const cce_layer *l, const float *k, const float *v, int T) {
    int hd = d->m->cfg.head_dim, S = d->max_seq, kvd = l->n_kv_heads * hd;
    size_t lay = (size_t)layer * (size_t)S * (size_t)d->max_kv;
    for (int g = 0; g < l->n_kv_heads; g++) {
        float *kt = d->kc + lay + (size_t)g * hd * S, *vg = d->vc + lay + (size_t)g * S * hd;
        for (int t = 0; t < T; t++) {
            const float *kr = k + (size_t)t * kvd + (size_t)g * hd;
            for (int i = 0; i < hd; i++) kt[(size_t)i * S + t] = kr[i];
            memcpy(vg + (size_t)t * hd, v + (size_t)t * kvd + (size_t)g * hd, (size_t)hd * sizeof(float));
        }
    }
}

cce_status cce_decoder_prefill(cce_decoder *d, const int *ids, int n, float *logits, cce_err *err) {
    const cce_model *m = d->m;
    if (n < 1 || n > d->max_seq)
        return cce_err_set(err, CCE_EINVAL, "decoder: prefill of %d tokens does not fit the cache (%d positions)", n,
                           d->max_seq);
    cce_fwd *f = NULL;
    cce_status s = cce_fwd_new(m, n, n, &f, err);
    if (s) return s;
    f->kv_sink = d;
    d->len = 0;   // the cache restarts at position 0
    s = cce_fwd_embed(f, ids, 1, n, f->h, err);
    for (int li = 0; !s && li < m->cfg.n_layers; li++) s = cce_fwd_block(f, li, f->h, 1, n, NULL, NULL, err);
    if (!s) s = cce_fwd_logits(f, f->h + (size_t)(n - 1) * m->cfg.dim, 1, logits, err);
    if (!s) d->len = n;
    cce_fwd_free(f);
    return s;
}

/* x += attention(norm(x)) of layer li at position pos. */
static void dec_attn(cce_decoder *d, int li, const cce_layer *l, int pos) {
    const cce_model *m = d->m;
    const cce_config *c = &m->cfg;
    int hd = c->head_dim, S = d->max_seq;
    fwd_norm(m, d->x, 1, l->attn_norm, l->attn_norm_b, d->xn);
    const cce_kvec *in = dec_input(d, d->xn, c->dim, dec_wants_q8(d, &l->wq) || dec_wants_q8(d, &l->wk) || dec_wants_q8(d, &l->wv));
    dec_job *j = dec_job_begin(d, 0);
    dec_job_add(d, j, &l->wq, in, d->q);
    dec_job_add(d, j, &l->wk, in, d->knew);
    dec_job_add(d, j, &l->wv, in, d->vnew);
    dec_job_go(d, j);
    if (c->arch != CCE_ARCH_GPT2) {
        fwd_rope_row(c, d->rope_cos, d->rope_sin, d->q, l->n_heads, pos);
        fwd_rope_row(c, d->rope_cos, d->rope_sin, d->knew, l->n_kv_heads, pos);
    }
    size_t lay = (size_t)li * (size_t)S * (size_t)d->max_kv;
    for (int g = 0; g < l->n_kv_heads; g++) {
        float *kt = d->kc + lay + (size_t)g * hd * S, *v = d->vc + lay + ((size_t)g * S + (size_t)pos) * hd;
        for (int i = 0; i < hd; i++) kt[(size_t)i * S + pos] = d->knew[g * hd + i];
        memcpy(v, d->vnew + (size_t)g * hd, (size_t)hd * sizeof(float));
    }
    dec_att a = {.d = d, .l = l, .layer = li, .T = pos + 1};
    if (d->pool && (long)l->n_heads * a.T * hd >= DEC_POOL_ATT) cce_pool_run(d->pool, dec_att_run, &a, l->n_heads);
    else dec_att_heads(&a, 0, l->n_heads);
    dec_linear(d, &l->wo, d->att, d->out);
    fwd_vadd(d->x, d->out, (size_t)c->dim);
}

/* x += ffn(norm(x)) of layer l. */
static void dec_ffn(cce_decoder *d, const cce_layer *l) {
    const cce_model *m = d->m;
    int gpt2 = m->cfg.arch == CCE_ARCH_GPT2;
    fwd_norm(m, d->x, 1, l->ffn_norm, l->ffn_norm_b, d->xn);
    const cce_kvec *in = dec_input(d, d->xn, m->cfg.dim, dec_wants_q8(d, &l->w1) || (!gpt2 && dec_wants_q8(d, &l->w3)));
    dec_job *j = dec_job_begin(d, !gpt2);
    dec_job_add(d, j, &l->w1, in, d->a);
    if (!gpt2) dec_job_add(d, j, &l->w3, in, d->b);
    dec_job_go(d, j);
    if (gpt2) fwd_gelu(d->a, (size_t)l->hidden);
    dec_linear(d, &l->w2, d->a, d->out);
    fwd_vadd(d->x, d->out, (size_t)m->cfg.dim);
}

cce_status cce_decoder_step(cce_decoder *d, int token, int pos, float *logits, cce_err *err) {
    const cce_model *m = d->m;
    const cce_config *c = &m->cfg;
    if (token < 0 || token >= c->vocab_size)
        return cce_err_set(err, CCE_EINVAL, "decoder: token id %d outside vocabulary (%d)", token, c->vocab_size);
    if (pos < 0 || pos > d->len || pos >= d->max_seq)
        return cce_err_set(err, CCE_EINVAL, "decoder: position %d out of order or past the cache (%d filled, %d max)",
                           pos, d->len, d->max_seq);
    cce_linear_rows(&m->tok_emb, token, 1, d->x);
    if (m->pos_emb) fwd_vadd(d->x, m->pos_emb + (size_t)pos * c->dim, (size_t)c->dim);
    for (int li = 0; li < c->n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        if (cce_interrupted())  // the position stays unfilled (d->len unchanged): it may be fed again
            return cce_err_set(err, CCE_ECANCEL, "decoder: interrupted at layer %d of position %d", li, pos);
        if (l->n_heads > 0) dec_attn(d, li, l, pos);
        if (l->hidden > 0) dec_ffn(d, l);
    }
    d->len = pos + 1;
    fwd_norm(m, d->x, 1, m->final_norm, m->final_norm_b, d->xn);
    dec_linear(d, &m->lm_head, d->xn, logits);
    return CCE_OK;
}
