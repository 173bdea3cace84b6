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
 * Attention runs per (sequence, KV head) on the strided (seq_len, hd) slices of K and V
 * (leading dimension n_kv_heads*hd, no copies), for all the query heads that share that KV
 * head at once (GQA groups; a map head_kv from compression may make groups uneven). The causal
 * score matrix is built in row blocks of ATT_BLOCK queries: block [i0, i0+nb) only needs keys
 * [0, i0+nb), so S = Q_b K_{0..i0+nb}ᵀ and O_b = P V_{0..i0+nb} are two sgemm calls for the
 * whole group, and the upper triangle costs at most one block's worth of extra work. Scratch
 * for S is (max_group*ATT_BLOCK, max_seq_len).
 *
 * The LM head is applied in chunks of NLL_CHUNK rows so that a large vocabulary never needs a
 * (rows, vocab) buffer; exponentials are summed in double and the target log-probability is
 * formed in double.
 *
 * The decoder keeps a KV cache (n_layers, max_seq_len, max_kv_dim) and does one matrix-vector
 * product per linear per token (fwd_gemv: in-thread below 2^18 elements, cblas_sgemv above); its logits match the batched path to float rounding (tested).
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
#include "util.h"

#define ATT_BLOCK 64    /* query rows per causal score block */
#define NLL_CHUNK 256   /* rows per LM-head GEMM, fewer for vocabularies over 64k ... */
#define NLL_CHUNK_FLOATS (16u << 20)  /* ... so the logits chunk stays within 64 MB */

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

struct cce_fwd {
    const cce_model *m;
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
    float *qs, *os;  // (max_group*ATT_BLOCK, head_dim) stacked queries / outputs of a KV group
    float *scores;   // (max_group*ATT_BLOCK, max_seq) causal score block
    float *inv;      // (max_group*ATT_BLOCK) 1/softmax sums
    int *hs;         // (max heads) query heads of the current KV group
    int nll_chunk;   // rows per LM-head GEMM in cce_fwd_nll
    float *logits;   // (nll_chunk, vocab)
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

typedef struct { int q, kv, hidden, rank, group, heads; size_t wtile; } fwd_maxes;

static void fwd_note_linear(fwd_maxes *x, const cce_linear *l) {
    if (!cce_linear_present(l)) return;
    if (!l->w && l->rank > x->rank) x->rank = l->rank;
    if (l->w && l->wt != CCE_WT_F32) {
        size_t t = (size_t)fwd_tile_rows(l) * (size_t)l->in;
        if (t > x->wtile) x->wtile = t;
    }
}

static fwd_maxes fwd_model_maxes(const cce_model *m) {
    fwd_maxes x = {1, 1, 1, 1, 1, 1, 0};
    int hd = m->cfg.head_dim;
    fwd_note_linear(&x, &m->lm_head);
    for (int li = 0; li < m->cfg.n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        if (l->n_heads * hd > x.q) x.q = l->n_heads * hd;
        if (l->n_kv_heads * hd > x.kv) x.kv = l->n_kv_heads * hd;
        if (l->hidden > x.hidden) x.hidden = l->hidden;
        if (l->n_heads > x.heads) x.heads = l->n_heads;
        for (int g = 0; g < l->n_kv_heads; g++) {
            int ng = 0;
            for (int h = 0; h < l->n_heads; h++) ng += cce_layer_kv_of(l, h) == g;
            if (ng > x.group) x.group = ng;
        }
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
    int chunk = (int)(NLL_CHUNK_FLOATS / (unsigned)m->cfg.vocab_size);
    chunk = chunk > NLL_CHUNK ? NLL_CHUNK : chunk < 16 ? 16 : chunk;
    if (chunk > max_rows) chunk = max_rows;
    f->nll_chunk = chunk;
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
    size_t gb = (size_t)mx.group * ATT_BLOCK, hd = (size_t)m->cfg.head_dim;
    f->qs = cce_alloc(gb, hd * sizeof(float));
    f->os = cce_alloc(gb, hd * sizeof(float));
    f->scores = cce_alloc(gb, (size_t)max_seq_len * sizeof(float));
    f->inv = cce_alloc(gb, sizeof(float));
    f->hs = cce_alloc((size_t)mx.heads, sizeof(int));
    f->logits = cce_alloc((size_t)chunk, (size_t)m->cfg.vocab_size * sizeof(float));
    if (!f->h || !f->xn || !f->out || !f->q || !f->att || !f->k || !f->v || !f->a || !f->b ||
        !f->lr || (mx.wtile && !f->wtile) || !f->qs || !f->os || !f->scores || !f->inv || !f->hs || !f->logits) {
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
    cce_free(f->qs); cce_free(f->os); cce_free(f->scores); cce_free(f->inv); cce_free(f->hs);
    cce_free(f->logits); cce_free(f->rope_cos); cce_free(f->rope_sin);
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
            cce_linear_rows(l, r0, nr, f->wtile);
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

/* Matrix-vector product for the decoder: y = alpha·A x (trans 0, y (rows)) or y = alpha·Aᵀ x
 * (trans 1, y (cols)), A (rows, cols) with leading dimension lda. Small products are computed
 * here on the calling thread: OpenBLAS wakes its thread pool for every sgemv, which costs more
 * than the product itself below a few hundred thousand elements (stories260K decoded 13x slower
 * on 2 threads than on 1). Large ones are memory-bound and go to cblas_sgemv, whose threads add
 * bandwidth. */
#define GEMV_SMALL (1 << 18)
static void fwd_gemv(int trans, int rows, int cols, float alpha, const float *A, int lda, const float *x, float *y) {
    if ((size_t)rows * (size_t)cols > GEMV_SMALL) {
        cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, alpha, A, lda, x, 1, 0.0f, y, 1);
        return;
    }
    if (!trans) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) {  /* four rows per pass share the loads of x */
            const float *a0 = A + (size_t)r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            fwd_vf c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
            int c = 0;
            for (; c + FWD_VL <= cols; c += FWD_VL) {
                fwd_vf xv = fwd_vload(x + c);
                c0 += fwd_vload(a0 + c) * xv;
                c1 += fwd_vload(a1 + c) * xv;
                c2 += fwd_vload(a2 + c) * xv;
                c3 += fwd_vload(a3 + c) * xv;
            }
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (; c < cols; c++) {
                s0 += a0[c] * x[c]; s1 += a1[c] * x[c]; s2 += a2[c] * x[c]; s3 += a3[c] * x[c];
            }
            for (int k = 0; k < FWD_VL; k++) { s0 += c0[k]; s1 += c1[k]; s2 += c2[k]; s3 += c3[k]; }
            y[r] = alpha * s0; y[r + 1] = alpha * s1; y[r + 2] = alpha * s2; y[r + 3] = alpha * s3;
        }
        for (; r < rows; r++) {
            const float *a = A + (size_t)r * lda;
            fwd_vf acc = {0};
            int c = 0;
            for (; c + FWD_VL <= cols; c += FWD_VL) acc += fwd_vload(a + c) * fwd_vload(x + c);
            float sum = 0;
            for (; c < cols; c++) sum += a[c] * x[c];
            for (int k = 0; k < FWD_VL; k++) sum += acc[k];
            y[r] = alpha * sum;
        }
    } else {
        memset(y, 0, (size_t)cols * sizeof *y);
        for (int r = 0; r < rows; r++) {
            const float *a = A + (size_t)r * lda;
            float xr = alpha * x[r];
            fwd_vf xv = fwd_vsplat(xr);
            int c = 0;
            for (; c + FWD_VL <= cols; c += FWD_VL) fwd_vstore(y + c, fwd_vload(y + c) + xv * fwd_vload(a + c));
            for (; c < cols; c++) y[c] += xr * a[c];
        }
    }
}

/* Single-vector version: y (out) = W x + b; tmp (rank). Weights stored in another type than
 * f32 are read row by row by the type's dot kernel (quant.h), never expanded. */
static void fwd_linear_vec(const cce_linear *l, const float *x, float *y, float *tmp) {
    const float *w32 = cce_linear_f32(l);
    if (w32) {
        fwd_gemv(0, l->out, l->in, 1.0f, w32, l->in, x, y);
    } else if (l->w) {
        size_t rb = cce_wtype_row_bytes(l->wt, l->in);
        for (int r = 0; r < l->out; r++) y[r] = cce_wtype_dot(l->wt, (const uint8_t *)l->w + (size_t)r * rb, x, l->in);
    } else {
        fwd_gemv(0, l->rank, l->in, 1.0f, l->v, l->in, x, tmp);
        fwd_gemv(0, l->out, l->rank, 1.0f, l->u, l->rank, tmp, y);
    }
    if (l->b)
        fwd_vadd(y, l->b, (size_t)l->out);
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
    for (int k = 0; k < FWD_VL; k++) sum += acc[k];
    for (; j < n; j++) { s[j] = fwd_exp(s[j] - mx); sum += s[j]; }
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

/* Causal attention of the query heads hs[0..ng) that share one KV head, in one sequence.
 * q (T, qd) holds head h at columns [h*hd, (h+1)*hd); K, V are (T, hd) slices with leading
 * dimension kvd; the heads' outputs go to the same columns of att (T, qd). Per block of
 * ATT_BLOCK query positions the group's queries are stacked into qs (ng*nb, hd), so Q·Kᵀ and
 * P·V are one GEMM each for the whole group and K/V are packed once per block, not per head. */
static void fwd_attend_group(cce_fwd *f, const float *q, int qd, const int *hs, int ng,
                             const float *K, const float *V, int kvd, float *att, int T) {
    int hd = f->m->cfg.head_dim;
    float scale = 1.0f / sqrtf((float)hd);
    for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
        int nb = T - i0 < ATT_BLOCK ? T - i0 : ATT_BLOCK;
        int nc = i0 + nb, m = ng * nb;  // keys 0..nc-1 are visible to some query of the block
        for (int a = 0; a < ng; a++)
            for (int r = 0; r < nb; r++)
                memcpy(f->qs + ((size_t)a * nb + r) * hd, q + (size_t)(i0 + r) * qd + (size_t)hs[a] * hd,
                       (size_t)hd * sizeof(float));
        float *S = f->scores;  // (m, nc)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nc, hd, scale, f->qs, hd, K, kvd, 0.0f, S, nc);
        for (int k = 0; k < m; k++) f->inv[k] = fwd_softmax_row(S + (size_t)k * nc, i0 + k % nb + 1, nc);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, nc, 1.0f, S, nc, V, kvd, 0.0f, f->os, hd);
        for (int a = 0; a < ng; a++)
            for (int r = 0; r < nb; r++) {
                const float *src = f->os + ((size_t)a * nb + r) * hd;
                float *dst = att + (size_t)(i0 + r) * qd + (size_t)hs[a] * hd, w = f->inv[a * nb + r];
                for (int i = 0; i < hd; i++) dst[i] = src[i] * w;
            }
    }
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

/* h += attention(norm(h)) for layer l (which has heads). 1 when a tap asked to stop. */
static int fwd_attn(cce_fwd *f, int layer, const cce_layer *l, float *h, int n_seq, int seq_len, cce_tap_fn tap,
                    void *user) {
    const cce_model *m = f->m;
    int d = m->cfg.dim, hd = m->cfg.head_dim, rows = n_seq * seq_len;
    int qd = l->n_heads * hd, kvd = l->n_kv_heads * hd;
    fwd_norm(m, h, rows, l->attn_norm, l->attn_norm_b, f->xn);
    if (fwd_tap(tap, user, layer, CCE_TAP_ATTN_IN, f->xn, n_seq, seq_len, d)) return 1;
    fwd_linear(f, &l->wq, f->xn, rows, f->q);
    fwd_linear(f, &l->wk, f->xn, rows, f->k);
    fwd_linear(f, &l->wv, f->xn, rows, f->v);
    if (m->cfg.arch != CCE_ARCH_GPT2)
        for (int r = 0; r < rows; r++) {
            fwd_rope_row(&m->cfg, f->rope_cos, f->rope_sin, f->q + (size_t)r * qd, l->n_heads, r % seq_len);
            fwd_rope_row(&m->cfg, f->rope_cos, f->rope_sin, f->k + (size_t)r * kvd, l->n_kv_heads, r % seq_len);
        }
    for (int g = 0; g < l->n_kv_heads; g++) {
        int ng = 0;  // the query heads reading KV head g
        for (int hh = 0; hh < l->n_heads; hh++)
            if (cce_layer_kv_of(l, hh) == g) f->hs[ng++] = hh;
        if (!ng) continue;
        for (int sq = 0; sq < n_seq; sq++) {
            size_t r0 = (size_t)sq * seq_len;
            fwd_attend_group(f, f->q + r0 * qd, qd, f->hs, ng, f->k + r0 * kvd + (size_t)g * hd,
                             f->v + r0 * kvd + (size_t)g * hd, kvd, f->att + r0 * qd, seq_len);
        }
    }
    if (fwd_tap(tap, user, layer, CCE_TAP_HEADS, f->att, n_seq, seq_len, qd)) return 1;
    fwd_linear(f, &l->wo, f->att, rows, f->out);
    if (fwd_tap(tap, user, layer, CCE_TAP_ATTN_OUT, f->out, n_seq, seq_len, d)) return 1;
    fwd_vadd(h, f->out, (size_t)rows * d);
    return 0;
}

/* h += ffn(norm(h)) for layer l (which has hidden units). 1 when a tap asked to stop. */
static int fwd_ffn(cce_fwd *f, int layer, const cce_layer *l, float *h, int n_seq, int seq_len, cce_tap_fn tap,
                   void *user) {
    const cce_model *m = f->m;
    int d = m->cfg.dim, rows = n_seq * seq_len;
    fwd_norm(m, h, rows, l->ffn_norm, l->ffn_norm_b, f->xn);
    if (fwd_tap(tap, user, layer, CCE_TAP_FFN_IN, f->xn, n_seq, seq_len, d)) return 1;
    size_t nh = (size_t)rows * l->hidden;
    fwd_linear(f, &l->w1, f->xn, rows, f->a);
    if (m->cfg.arch == CCE_ARCH_GPT2) {
        fwd_gelu(f->a, nh);
    } else {
        fwd_linear(f, &l->w3, f->xn, rows, f->b);
        fwd_swiglu(f->a, f->b, nh);
    }
    if (fwd_tap(tap, user, layer, CCE_TAP_FFN_ACT, f->a, n_seq, seq_len, l->hidden)) return 1;
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
    int chunk = f->nll_chunk;
    double total = 0.0;
    long cnt = 0, ok = 0;
    for (int r0 = 0; r0 < rows; r0 += chunk) {
        int nr = rows - r0 < chunk ? rows - r0 : chunk;
        fwd_linear(f, &m->lm_head, f->xn + (size_t)r0 * d, nr, f->logits);
        for (int i = 0; i < nr; i++) {
            int r = r0 + i;
            if (r % seq_len == seq_len - 1) continue;  // last position predicts nothing here
            float *lg = f->logits + (size_t)i * V;
            float mx = fwd_vmax(lg, V), target = lg[ids[r + 1]];
            if (correct) ok += cce_argmax(lg, V) == ids[r + 1];
            double se = fwd_vexp_sum(lg, V, mx);   // overwrites the row with exp(lg - mx)
            total += log(se) + (double)mx - (double)target;
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

/* ---------------------------------------------------------------- decoder */

struct cce_decoder {
    const cce_model *m;
    int max_seq, len;       // len: positions filled in the cache
    int max_kv;
    float *x, *xn, *out;    // (dim)
    float *q, *att;         // (max_q)
    float *a, *b;           // (max_hidden)
    float *lr;              // (max_rank)
    float *scores;          // (max_seq)
    float *kc, *vc;         // (n_layers, max_seq, max_kv) key / value cache
    float *rope_cos, *rope_sin;  // (max_seq, head_dim/2)
};

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
    d->x = cce_alloc(dim, sizeof(float));
    d->xn = cce_alloc(dim, sizeof(float));
    d->out = cce_alloc(dim, sizeof(float));
    d->q = cce_alloc((size_t)mx.q, sizeof(float));
    d->att = cce_alloc((size_t)mx.q, sizeof(float));
    d->a = cce_alloc((size_t)mx.hidden, sizeof(float));
    d->b = cce_alloc((size_t)mx.hidden, sizeof(float));
    d->lr = cce_alloc((size_t)mx.rank, sizeof(float));
    d->scores = cce_alloc((size_t)max_seq_len, sizeof(float));
    if (cce_size_mul(L, (size_t)max_seq_len, &cache) && cce_size_mul(cache, (size_t)mx.kv, &cache)) {
        d->kc = cce_alloc(cache, sizeof(float));
        d->vc = cce_alloc(cache, sizeof(float));
    }
    if (!d->x || !d->xn || !d->out || !d->q || !d->att || !d->a || !d->b || !d->lr || !d->scores ||
        !d->kc || !d->vc) {
        cce_decoder_free(d);
        return cce_err_set(err, CCE_ENOMEM, "decoder: out of memory for a %d-position KV cache", max_seq_len);
    }
    if ((s = fwd_rope_tables(&m->cfg, max_seq_len, &d->rope_cos, &d->rope_sin, err))) {
        cce_decoder_free(d);
        return s;
    }
    *out = d;
    return CCE_OK;
}

void cce_decoder_free(cce_decoder *d) {
    if (!d) return;
    cce_free(d->x); cce_free(d->xn); cce_free(d->out); cce_free(d->q); cce_free(d->att);
    cce_free(d->a); cce_free(d->b); cce_free(d->lr); cce_free(d->scores);
    cce_free(d->kc); cce_free(d->vc); cce_free(d->rope_cos); cce_free(d->rope_sin);
    cce_free(d);
}

int cce_argmax(const float *x, int n) {
    int best = 0;
    for (int j = 1; j < n; j++)
        if (x[j] > x[best]) best = j;
    return best;
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

cce_status cce_decoder_step(cce_decoder *d, int token, int pos, float *logits, cce_err *err) {
    const cce_model *m = d->m;
    const cce_config *c = &m->cfg;
    int dim = c->dim, hd = c->head_dim;
    if (token < 0 || token >= c->vocab_size)
        return cce_err_set(err, CCE_EINVAL, "decoder: token id %d outside vocabulary (%d)", token, c->vocab_size);
    if (pos < 0 || pos > d->len || pos >= d->max_seq)
        return cce_err_set(err, CCE_EINVAL, "decoder: position %d out of order or past the cache (%d filled, %d max)",
                           pos, d->len, d->max_seq);
    cce_linear_rows(&m->tok_emb, token, 1, d->x);
    if (m->pos_emb)
        fwd_vadd(d->x, m->pos_emb + (size_t)pos * dim, (size_t)dim);
    float scale = 1.0f / sqrtf((float)hd);
    for (int li = 0; li < c->n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        float *kc = d->kc + (size_t)li * d->max_seq * d->max_kv;  // (max_seq, max_kv)
        float *vc = d->vc + (size_t)li * d->max_seq * d->max_kv;
        if (l->n_heads > 0) {
            fwd_norm(m, d->x, 1, l->attn_norm, l->attn_norm_b, d->xn);
            fwd_linear_vec(&l->wq, d->xn, d->q, d->lr);
            fwd_linear_vec(&l->wk, d->xn, kc + (size_t)pos * d->max_kv, d->lr);
            fwd_linear_vec(&l->wv, d->xn, vc + (size_t)pos * d->max_kv, d->lr);
            if (c->arch != CCE_ARCH_GPT2) {
                fwd_rope_row(c, d->rope_cos, d->rope_sin, d->q, l->n_heads, pos);
                fwd_rope_row(c, d->rope_cos, d->rope_sin, kc + (size_t)pos * d->max_kv, l->n_kv_heads, pos);
            }
            for (int hh = 0; hh < l->n_heads; hh++) {
                int g = cce_layer_kv_of(l, hh);
                /* scores (pos+1) = K_g (pos+1, hd) · q_h, then att_h = V_gᵀ · p */
                cblas_sgemv(CblasRowMajor, CblasNoTrans, pos + 1, hd, scale, kc + (size_t)g * hd, d->max_kv,
                            d->q + (size_t)hh * hd, 1, 0.0f, d->scores, 1);
                float inv = fwd_softmax_row(d->scores, pos + 1, pos + 1);
                cblas_sgemv(CblasRowMajor, CblasTrans, pos + 1, hd, inv, vc + (size_t)g * hd, d->max_kv,
                            d->scores, 1, 0.0f, d->att + (size_t)hh * hd, 1);
            }
            fwd_linear_vec(&l->wo, d->att, d->out, d->lr);
            fwd_vadd(d->x, d->out, (size_t)dim);
        }
        if (l->hidden > 0) {
            fwd_norm(m, d->x, 1, l->ffn_norm, l->ffn_norm_b, d->xn);
            fwd_linear_vec(&l->w1, d->xn, d->a, d->lr);
            if (c->arch == CCE_ARCH_GPT2) {
                fwd_gelu(d->a, (size_t)l->hidden);
            } else {
                fwd_linear_vec(&l->w3, d->xn, d->b, d->lr);
                fwd_swiglu(d->a, d->b, (size_t)l->hidden);
            }
            fwd_linear_vec(&l->w2, d->a, d->out, d->lr);
            fwd_vadd(d->x, d->out, (size_t)dim);
        }
    }
    d->len = pos + 1;
    fwd_norm(m, d->x, 1, m->final_norm, m->final_norm_b, d->xn);
    fwd_linear_vec(&m->lm_head, d->xn, logits, d->lr);
    return CCE_OK;
}
