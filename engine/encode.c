/*
 * encode.c — the sequential encoder (see include/encode.h for the method).
 *
 * Structure. encode_setup derives the compressed model from the source and gives every block
 * the plan changes its final shapes at once (new zeroed f32 tensors from the derived model's
 * arena, filled with the source's kept rows and columns), so the forward scratch of the
 * compressed model can be sized up front and the redistribution-none result is already there.
 * encode_run then walks the sublayers in order (attention 0, FFN 0, attention 1, ...) keeping
 * two residual streams over the calibration batch: D, the dense model's, and H, the compressed
 * model's. For a sublayer the compressed model keeps:
 *   pass A  (chunks)  X̃ = its normalised input on H, X = the dense one on D: Gram X̃ᵀX̃ and cross
 *                     X̃ᵀX; then D advances through this sublayer and every following sublayer
 *                     the compressed model drops (dense forward);
 *   fit     input-side rows (q/k/v or gate/up) by least squares; their low-rank factors;
 *   pass B  (chunks)  the sublayer on a copy of H with the new input side: its activations A
 *                     (per-head outputs, or the FFN activation): Gram AᵀA, cross Aᵀ(D − H), sums;
 *   fit     the output side (W_o or W₂) with its intercept; its low-rank factors;
 *   pass C  (chunks)  H advances through the finished sublayer.
 * A sublayer the compressed model drops is skipped on H; D has already advanced past it.
 * Redistribution none skips the fits (passes A and B only run when a low-rank factorisation
 * needs its input's second moment); bias (FLAP) runs the source sublayer on D to get the mean
 * activation of what was removed.
 *
 * Numerics. Gram and cross matrices are accumulated per chunk with float GEMMs into double
 * sums (as stats.c does), centred when an intercept is fitted, solved in double with a ridge of
 * ridge × mean diagonal (Cholesky; LAPACK's dposv). Low rank: W_r = U_r U_rᵀ W with U_r the
 * top-r eigenvectors of W S Wᵀ (W's output side) — computed on the smaller side when the matrix
 * is taller than wide — so the truncation minimises E‖(W − W_r) x‖² over the input's second
 * moment S (the whitened, activation-aware SVD).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "encode.h"
#include "calib.h"
#include "eval.h"
#include "tokenizer.h"
#include "forward.h"
#include "linalg.h"
#include "plan_kept.h"
#include "util.h"

#define ENC_CHUNK_ROWS 2048

/* ---------------------------------------------------------------- accumulators */

/* Σ aᵀa (k, k), Σ aᵀt (k, t), Σ a (k), Σ t (t) over row chunks, in double. */
typedef struct {
    int k, t;
    long n;
    double *g, *c, *sa, *st;
    float *pg, *pc;          // one chunk's float products
} enc_acc;

static cce_status acc_init(enc_acc *a, int k, int t, cce_err *err) {
    memset(a, 0, sizeof *a);
    a->k = k;
    a->t = t;
    a->g = cce_alloc_zero((size_t)k, (size_t)k * sizeof(double));
    a->c = t ? cce_alloc_zero((size_t)k, (size_t)t * sizeof(double)) : NULL;
    a->sa = cce_alloc_zero((size_t)k, sizeof(double));
    a->st = cce_alloc_zero((size_t)(t ? t : 1), sizeof(double));
    a->pg = cce_alloc((size_t)k, (size_t)k * sizeof(float));
    a->pc = t ? cce_alloc((size_t)k, (size_t)t * sizeof(float)) : NULL;
    if (!a->g || (t && !a->c) || !a->sa || !a->st || !a->pg || (t && !a->pc))
        return cce_err_set(err, CCE_ENOMEM, "encode: cannot allocate a (%d, %d) Gram matrix", k, k + t);
    return CCE_OK;
}

static void acc_free(enc_acc *a) {
    cce_free(a->g); cce_free(a->c); cce_free(a->sa); cce_free(a->st); cce_free(a->pg); cce_free(a->pc);
    memset(a, 0, sizeof *a);
}

/* Add rows of x (rows, k, ldx) and, when a->t, of y (rows, t, ldy). */
static cce_status acc_add(enc_acc *a, const float *x, int ldx, const float *y, int ldy, int rows, cce_err *err) {
    cce_mat X = {(float *)x, rows, a->k, ldx}, G = {a->pg, a->k, a->k, a->k};
    cce_status s = cce_linalg_gemm(1, 0, 1.0f, &X, &X, 0.0f, &G, err);
    if (s) return s;
    for (size_t i = 0; i < (size_t)a->k * a->k; i++) a->g[i] += a->pg[i];
    if (a->t) {
        cce_mat Y = {(float *)y, rows, a->t, ldy}, C = {a->pc, a->k, a->t, a->t};
        if ((s = cce_linalg_gemm(1, 0, 1.0f, &X, &Y, 0.0f, &C, err))) return s;
        for (size_t i = 0; i < (size_t)a->k * a->t; i++) a->c[i] += a->pc[i];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < a->t; j++) a->st[j] += y[(size_t)r * ldy + j];
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < a->k; j++) a->sa[j] += x[(size_t)r * ldx + j];
    a->n += rows;
    return CCE_OK;
}

/* Normalise to per-row moments; centred: subtract the outer products of the means. */
static void acc_finish(enc_acc *a, int centred) {
    double inv = a->n > 0 ? 1.0 / (double)a->n : 0;
    for (size_t i = 0; i < (size_t)a->k * a->k; i++) a->g[i] *= inv;
    for (size_t i = 0; a->t && i < (size_t)a->k * a->t; i++) a->c[i] *= inv;
    for (int j = 0; j < a->k; j++) a->sa[j] *= inv;
    for (int j = 0; j < a->t; j++) a->st[j] *= inv;
    if (!centred) return;
    for (int i = 0; i < a->k; i++) {
        for (int j = 0; j < a->k; j++) a->g[(size_t)i * a->k + j] -= a->sa[i] * a->sa[j];
        for (int j = 0; j < a->t; j++) a->c[(size_t)i * a->t + j] -= a->sa[i] * a->st[j];
    }
}

/* ---------------------------------------------------------------- solves */

/* C (m, n) = alpha·op(A) op(B) + beta·C over plain row-major arrays (through linalg's matd views). */
static cce_status gemm_d2(int ta, int tb, int m, int n, int k, double alpha, const double *a, int lda, const double *b,
                          int ldb, double beta, double *c, int ldc, cce_err *err) {
    cce_matd A = {(double *)a, ta ? k : m, ta ? m : k, lda}, B = {(double *)b, tb ? n : k, tb ? k : n, ldb};
    cce_matd C = {c, m, n, ldc};
    return cce_linalg_gemm_d(ta, tb, alpha, &A, &B, beta, &C, err);
}

static cce_status spd_solve(double *a, int n, double *b, int nrhs, cce_err *err) {
    cce_matd A = {a, n, n, n}, B = {b, n, nrhs, nrhs};
    return cce_linalg_posv_d(&A, &B, err);
}

static cce_status eigh_vectors(double *a, int n, double *w, cce_err *err) {
    cce_matd A = {a, n, n, n};
    return cce_linalg_eigh_d(&A, w, 1, err);
}

/* a (n, n) += λI with λ = ridge · mean diag (a tiny floor keeps an all-zero Gram solvable). */
static void add_ridge(double *a, int n, double ridge) {
    double md = 0;
    for (int i = 0; i < n; i++) md += a[(size_t)i * n + i];
    md = n > 0 ? md / n : 0;
    double lam = ridge * md > 1e-12 ? ridge * md : 1e-12;
    for (int i = 0; i < n; i++) a[(size_t)i * n + i] += lam;
}

/* Input side: W (r, n) = argmin E‖X̃ Wᵀ − X W0ᵀ‖² + λ‖W‖²  with G = E[X̃ᵀX̃], C = E[X̃ᵀX]:
 * (G + λI) Z = C W0ᵀ, W = Zᵀ. w0 and w (r, n) f32 (may alias). */
static cce_status fit_input(const double *G, const double *C, int n, const float *w0, int r, double ridge, float *w,
                            cce_err *err) {
    double *a = cce_alloc((size_t)n, (size_t)n * sizeof(double));     // (n, n)
    double *w0t = cce_alloc((size_t)n, (size_t)r * sizeof(double));  // (n, r) W0ᵀ
    double *z = cce_alloc((size_t)n, (size_t)r * sizeof(double));     // (n, r)
    cce_status s = CCE_ENOMEM;
    if (!a || !w0t || !z) {
        cce_err_set(err, s, "encode: cannot allocate an input-side solve (%d, %d)", n, r);
        goto done;
    }
    memcpy(a, G, (size_t)n * n * sizeof(double));
    add_ridge(a, n, ridge);
    for (int i = 0; i < r; i++)
        for (int j = 0; j < n; j++) w0t[(size_t)j * r + i] = w0[(size_t)i * n + j];
    if ((s = gemm_d2(0, 0, n, r, n, 1.0, C, n, w0t, r, 0.0, z, r, err))) goto done;
    if ((s = spd_solve(a, n, z, r, err))) goto done;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < n; j++) w[(size_t)i * n + j] = (float)z[(size_t)j * r + i];
done:
    cce_free(a); cce_free(w0t); cce_free(z);
    return s;
}

/* Output side: W (t, k) with Wᵀ = (G + λI)⁻¹ C for G (k, k), C (k, t) (centred when an intercept
 * is fitted, then b = mean T − W mean A). */
static cce_status fit_output(const enc_acc *acc, double ridge, int intercept, float *w, float *b, cce_err *err) {
    int k = acc->k, t = acc->t;
    double *a = cce_alloc((size_t)k, (size_t)k * sizeof(double));   // (k, k)
    double *z = cce_alloc((size_t)k, (size_t)t * sizeof(double));   // (k, t)
    cce_status s = CCE_ENOMEM;
    if (!a || !z) {
        cce_err_set(err, s, "encode: cannot allocate an output-side solve (%d, %d)", k, t);
        goto done;
    }
    memcpy(a, acc->g, (size_t)k * k * sizeof(double));
    memcpy(z, acc->c, (size_t)k * t * sizeof(double));
    add_ridge(a, k, ridge);
    if ((s = spd_solve(a, k, z, t, err))) goto done;
    for (int i = 0; i < t; i++)
        for (int j = 0; j < k; j++) w[(size_t)i * k + j] = (float)z[(size_t)j * t + i];
    if (b)
        for (int i = 0; i < t; i++) {
            double v = intercept ? acc->st[i] : 0;
            for (int j = 0; intercept && j < k; j++) v -= (double)w[(size_t)i * k + j] * acc->sa[j];
            b[i] = (float)v;
        }
done:
    cce_free(a); cce_free(z);
    return s;
}

/* Rank-r factors of W (o, i) minimising E‖(W − UV) x‖² for E[xxᵀ] = S (i, i; NULL: identity):
 * U (o, r) = top-r eigenvectors of W S Wᵀ, V (r, i) = Uᵀ W. Taller than wide (o > i): the same
 * subspace from the right singular vectors of B = W S^½ (eigenvectors of Bᵀ B, i × i). */
static cce_status low_rank(const float *w, int o, int in, const double *S, int r, float *u, float *v, cce_err *err) {
    int side = o <= in ? o : in;
    double *m = cce_alloc((size_t)side, (size_t)side * sizeof(double));   // (side, side)
    double *ev = cce_alloc((size_t)side, sizeof(double));
    double *wd = cce_alloc((size_t)o, (size_t)in * sizeof(double));        // (o, in) W
    double *t = cce_alloc((size_t)o, (size_t)in * sizeof(double));         // (o, in) scratch
    double *sh = NULL;                                                      // (in, in) S^½
    cce_status s = CCE_ENOMEM;
    if (!m || !ev || !wd || !t) goto nomem;
    for (size_t q = 0; q < (size_t)o * in; q++) wd[q] = w[q];
    if (S && o > in) {   // S^½ from S's eigendecomposition (S is PSD up to rounding)
        double *q = cce_alloc((size_t)in, (size_t)in * sizeof(double)), *lam = cce_alloc((size_t)in, sizeof(double));
        sh = cce_alloc_zero((size_t)in, (size_t)in * sizeof(double));
        if (!q || !lam || !sh) { cce_free(q); cce_free(lam); goto nomem; }
        memcpy(q, S, (size_t)in * in * sizeof(double));
        s = eigh_vectors(q, in, lam, err);
        for (int i = 0; !s && i < in; i++)
            for (int j = 0; j < in; j++) {
                double acc = 0;
                for (int kk = 0; kk < in; kk++) acc += q[(size_t)i * in + kk] * sqrt(lam[kk] > 0 ? lam[kk] : 0) * q[(size_t)j * in + kk];
                sh[(size_t)i * in + j] = acc;
            }
        cce_free(q);
        cce_free(lam);
        if (s) goto done;
    }
    if (o <= in) {   // M = W S Wᵀ (o, o)
        const double *ws = wd;
        if (S) {
            if ((s = gemm_d2(0, 0, o, in, in, 1.0, wd, in, S, in, 0.0, t, in, err))) goto done;
            ws = t;
        }
        if ((s = gemm_d2(0, 1, o, o, in, 1.0, ws, in, wd, in, 0.0, m, o, err))) goto done;
        if ((s = eigh_vectors(m, o, ev, err))) goto done;
        for (int i = 0; i < o; i++)
            for (int j = 0; j < r; j++) u[(size_t)i * r + j] = (float)m[(size_t)i * o + j];
    } else {          // B = W S^½ (o, in); M = Bᵀ B (in, in); U = B V_r / σ
        const double *bm = wd;
        if (sh) {
            if ((s = gemm_d2(0, 0, o, in, in, 1.0, wd, in, sh, in, 0.0, t, in, err))) goto done;
            bm = t;
        }
        if ((s = gemm_d2(1, 0, in, in, o, 1.0, bm, in, bm, in, 0.0, m, in, err))) goto done;
        if ((s = eigh_vectors(m, in, ev, err))) goto done;
        for (int j = 0; j < r; j++) {
            double sig = ev[j] > 0 ? sqrt(ev[j]) : 0;
            for (int i = 0; i < o; i++) {
                double acc = 0;
                for (int kk = 0; kk < in; kk++) acc += bm[(size_t)i * in + kk] * m[(size_t)kk * in + j];
                u[(size_t)i * r + j] = sig > 0 ? (float)(acc / sig) : 0.0f;
            }
        }
    }
    for (int j = 0; j < r; j++)   // V = Uᵀ W
        for (int c = 0; c < in; c++) {
            double acc = 0;
            for (int i = 0; i < o; i++) acc += (double)u[(size_t)i * r + j] * wd[(size_t)i * in + c];
            v[(size_t)j * in + c] = (float)acc;
        }
    s = CCE_OK;
    goto done;
nomem:
    s = cce_err_set(err, CCE_ENOMEM, "encode: cannot allocate a rank-%d factorisation of (%d, %d)", r, o, in);
done:
    cce_free(m); cce_free(ev); cce_free(wd); cce_free(t); cce_free(sh);
    return s;
}

/* ---------------------------------------------------------------- the job */

typedef struct {
    const cce_model *m;
    cce_model *out;
    const cce_plan *p;
    const cce_encode_opts *o;
    plan_kept *kept;          // (n_layers)
    int *changed;             // (n_layers) block owns new tensors
    float **w_fit;            // per block and linear: the dense f32 matrix being fitted, (out', in'), index l*7+k
    int rows, n_seq, seq_len, chunk_seqs, d;
    int *ids;                 // (rows)
    float *D, *H;             // (rows, d) dense and compressed residual streams
    float *xs, *xd, *hc;      // (chunk rows, d) scratch: compressed / dense normalised input, stream copy
    float *cap;               // (chunk rows, cap_cols) activations captured by the tap
    int cap_cols, cap_site;
    cce_fwd *fd, *fc;         // forward scratch on the source / on the compressed model
    cce_encode_progress_fn progress;
    void *user;
    int done, total;
} enc_job;

static int enc_capture(void *user, const cce_tap *t) {
    enc_job *j = user;
    if ((int)t->site == j->cap_site && t->cols <= j->cap_cols)
        for (int r = 0; r < t->rows; r++)
            memcpy(j->cap + (size_t)r * t->cols, t->x + (size_t)r * t->ld, (size_t)t->cols * sizeof(float));
    return 0;
}

static int enc_report(enc_job *j, const char *phase) {
    if (!j->progress) return 0;
    return j->progress(j->user, j->done, j->total, phase);
}

/* Copy the kept rows (rows) and columns (cols) of a source linear into dst (nr, nc) f32. */
static void copy_sub(const cce_linear *src, const int *rows, int nr, const int *cols, int nc, float *dst, float *rowbuf) {
    for (int i = 0; i < nr; i++) {
        cce_linear_rows(src, rows ? rows[i] : i, 1, rowbuf);
        for (int j = 0; j < nc; j++) dst[(size_t)i * nc + j] = rowbuf[cols ? cols[j] : j];
    }
}

static int *dup_or_null(const int *a, int n) {
    if (n <= 0) return NULL;
    int *b = cce_alloc((size_t)n, sizeof(int));
    if (b) memcpy(b, a, (size_t)n * sizeof(int));
    return b;
}

/* Row / column index lists of linear k of a layer under the kept structure (NULL = all). */
typedef struct { int *rows, *cols; int nr, nc; } enc_index;

static cce_status enc_index_of(const cce_model *m, const plan_kept *k, int lin, enc_index *ix, cce_err *err) {
    int hd = m->cfg.head_dim, d = m->cfg.dim;
    memset(ix, 0, sizeof *ix);
    int *heads_cols = NULL;
    const int *src = NULL;
    int groups = 0;
    switch (lin) {
    case CCE_LIN_WQ: src = k->heads; groups = k->n_heads; break;
    case CCE_LIN_WK: case CCE_LIN_WV: src = k->kv; groups = k->n_kv; break;
    case CCE_LIN_WO: src = k->heads; groups = k->n_heads; break;
    default: break;
    }
    if (src) {
        heads_cols = cce_alloc((size_t)(groups > 0 ? groups : 1) * hd, sizeof(int));
        if (!heads_cols) return cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
        for (int g = 0; g < groups; g++)
            for (int e = 0; e < hd; e++) heads_cols[g * hd + e] = src[g] * hd + e;
    }
    switch (lin) {
    case CCE_LIN_WQ: case CCE_LIN_WK: case CCE_LIN_WV:
        ix->rows = heads_cols; ix->nr = groups * hd; ix->nc = d; break;
    case CCE_LIN_WO:
        ix->cols = heads_cols; ix->nc = groups * hd; ix->nr = d; break;
    case CCE_LIN_W1: case CCE_LIN_W3:
        ix->rows = dup_or_null(k->neurons, k->hidden); ix->nr = k->hidden; ix->nc = d;
        if (k->hidden && !ix->rows) return cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
        break;
    case CCE_LIN_W2:
        ix->cols = dup_or_null(k->neurons, k->hidden); ix->nc = k->hidden; ix->nr = d;
        if (k->hidden && !ix->cols) return cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
        break;
    }
    return CCE_OK;
}

/* Sublayer position p = 2·layer + ffn is kept by the compressed model. */
static int enc_kept(const enc_job *j, int p) {
    const plan_kept *k = &j->kept[p / 2];
    return p % 2 ? k->ffn : k->attn;
}

/* The source model has something to run at position p. */
static int enc_exists(const enc_job *j, int p) {
    const cce_layer *L = &j->m->layers[p / 2];
    return !L->dropped && (p % 2 ? L->hidden > 0 : L->n_heads > 0);
}

static cce_status enc_setup_block(enc_job *j, int l, cce_err *err) {
    const cce_model *m = j->m;
    const cce_layer *S = &m->layers[l];
    cce_layer *O = &j->out->layers[l];
    plan_kept *k = &j->kept[l];
    const cce_block_plan *bp = &j->p->blocks[l];
    int refits = plan_block_refits(j->p, m, l);
    cce_status s = plan_kept_of(m, bp, &j->p->enc, refits, k, err);
    if (s) return s;
    j->changed[l] = refits;
    if (S->dropped || !j->changed[l]) return CCE_OK;
    if (!k->attn && !k->ffn) {
        memset(O, 0, sizeof *O);
        O->dropped = 1;
        return CCE_OK;
    }
    O->n_heads = k->n_heads;
    O->n_kv_heads = k->n_kv;
    O->hidden = k->hidden;
    O->head_kv = NULL;
    if (k->head_kv) {
        int *hk = cce_model_alloc(j->out, (size_t)k->n_heads, sizeof(int));
        if (!hk) return cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
        memcpy(hk, k->head_kv, (size_t)k->n_heads * sizeof(int));
        O->head_kv = hk;
    }
    if (!k->attn) O->attn_norm = O->attn_norm_b = NULL;
    if (!k->ffn) O->ffn_norm = O->ffn_norm_b = NULL;
    float *rowbuf = cce_alloc((size_t)(m->cfg.dim > S->hidden ? (m->cfg.dim > S->n_heads * m->cfg.head_dim ? m->cfg.dim : S->n_heads * m->cfg.head_dim) : S->hidden), sizeof(float));
    if (!rowbuf) return cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
    for (int li = 0; li < CCE_LIN_COUNT; li++) {
        cce_linear *ol = cce_layer_lin(O, li);
        const cce_linear *sl = cce_layer_lin_c(S, li);
        int exists = (li < CCE_LIN_W1 ? k->attn : k->ffn) && cce_linear_present(sl);
        memset(ol, 0, sizeof *ol);
        if (!exists) continue;
        enc_index ix;
        if ((s = enc_index_of(m, k, li, &ix, err))) break;
        int r = k->rank[li];
        float *w = r ? cce_alloc((size_t)ix.nr, (size_t)ix.nc * sizeof(float))
                     : cce_model_alloc(j->out, (size_t)ix.nr, (size_t)ix.nc * sizeof(float));   // (nr, nc)
        if (!w) {
            cce_free(ix.rows); cce_free(ix.cols);
            s = cce_err_set(err, CCE_ENOMEM, "encode: cannot allocate block %d %s (%d, %d)", l, cce_lin_names[li], ix.nr, ix.nc);
            break;
        }
        copy_sub(sl, ix.rows, ix.nr, ix.cols, ix.nc, w, rowbuf);
        j->w_fit[l * CCE_LIN_COUNT + li] = w;
        ol->out = ix.nr;
        ol->in = ix.nc;
        ol->wt = CCE_WT_F32;
        if (r) {
            float *u = cce_model_alloc(j->out, (size_t)ix.nr, (size_t)r * sizeof(float));   // (nr, r)
            float *v = cce_model_alloc(j->out, (size_t)r, (size_t)ix.nc * sizeof(float));   // (r, nc)
            if (!u || !v) s = cce_err_set(err, CCE_ENOMEM, "encode: cannot allocate rank-%d factors", r);
            ol->rank = r;
            ol->u = u;
            ol->v = v;
        } else {
            ol->w = w;
        }
        int out_side = li == CCE_LIN_WO || li == CCE_LIN_W2;
        int want_b = out_side ? k->out_bias[li == CCE_LIN_W2] : sl->b != NULL;
        if (!s && want_b) {
            float *b = cce_model_alloc(j->out, (size_t)ix.nr, sizeof(float));   // (nr)
            if (!b) s = cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
            else if (sl->b)
                for (int i = 0; i < ix.nr; i++) b[i] = sl->b[ix.rows ? ix.rows[i] : i];
            ol->b = b;
        }
        cce_free(ix.rows);
        cce_free(ix.cols);
        if (s) break;
    }
    cce_free(rowbuf);
    return s;
}

/* Run position p of model `f` (source or compressed) over every chunk of x in place. */
static cce_status enc_advance(enc_job *j, cce_fwd *f, int p, float *x, cce_err *err) {
    for (int s0 = 0; s0 < j->n_seq; s0 += j->chunk_seqs) {
        int ns = j->n_seq - s0 < j->chunk_seqs ? j->n_seq - s0 : j->chunk_seqs;
        cce_status s = cce_fwd_sublayer(f, p / 2, p % 2, x + (size_t)s0 * j->seq_len * j->d, ns, j->seq_len, NULL,
                                        NULL, err);
        if (s) return s;
    }
    return CCE_OK;
}

static float *enc_w(enc_job *j, int l, int li) { return j->w_fit[l * CCE_LIN_COUNT + li]; }

/* Low-rank factors of linear li of layer l from its fitted dense matrix and input moment S. */
static cce_status enc_factor(enc_job *j, int l, int li, const double *S, cce_err *err) {
    cce_linear *ol = cce_layer_lin(&j->out->layers[l], li);
    if (!ol->rank) return CCE_OK;
    const double *use = j->p->enc.lowrank == CCE_LOWRANK_PLAIN ? NULL : S;
    return low_rank(enc_w(j, l, li), ol->out, ol->in, use, ol->rank, (float *)ol->u, (float *)ol->v, err);
}

/* The effective dense weights of output-side linear li after factoring (for the bias). */
static void enc_effective(const cce_linear *ol, const float *w, float *eff) {
    if (!ol->rank) {
        memcpy(eff, w, (size_t)ol->out * ol->in * sizeof(float));
        return;
    }
    for (int i = 0; i < ol->out; i++)
        for (int c = 0; c < ol->in; c++) {
            double acc = 0;
            for (int q = 0; q < ol->rank; q++) acc += (double)ol->u[(size_t)i * ol->rank + q] * ol->v[(size_t)q * ol->in + c];
            eff[(size_t)i * ol->in + c] = (float)acc;
        }
}

static cce_status enc_sublayer(enc_job *j, int p, int *pos_d, cce_err *err) {
    int l = p / 2, ffn = p % 2, np = 2 * j->m->cfg.n_layers;
    const cce_encode_opts *o = &j->p->enc;
    int lsq = o->redistribute == CCE_REDIST_LSQ, bias = o->redistribute == CCE_REDIST_BIAS, dense = lsq || bias;
    cce_status s = CCE_OK;
    if (!enc_exists(j, p)) return CCE_OK;
    if (!enc_kept(j, p)) {   // dropped: only the dense stream moves (if nothing before absorbed it)
        if (dense && *pos_d <= p) {
            if ((s = enc_advance(j, j->fd, p, j->D, err))) return s;
            *pos_d = p + 1;
        }
        return CCE_OK;
    }
    const plan_kept *k = &j->kept[l];
    cce_layer *O = &j->out->layers[l];
    int changed = j->changed[l], d = j->d;
    int in_lins[3] = {ffn ? CCE_LIN_W1 : CCE_LIN_WQ, ffn ? CCE_LIN_W3 : CCE_LIN_WK, ffn ? -1 : CCE_LIN_WV};
    int out_lin = ffn ? CCE_LIN_W2 : CCE_LIN_WO;
    int in_rank = 0;
    for (int i = 0; i < 3; i++) in_rank |= in_lins[i] >= 0 && cce_layer_lin(O, in_lins[i])->rank > 0;
    int out_rank = cce_layer_lin(O, out_lin)->rank > 0;
    int fit_in = lsq && changed && o->refit_inputs, fit_out = lsq && changed;
    int k_act = ffn ? k->hidden : k->n_heads * j->m->cfg.head_dim;
    int site = ffn ? CCE_TAP_FFN_ACT : CCE_TAP_HEADS;
    /* the dense stream's removed-activation sums for bias compensation (source shapes) */
    const cce_layer *S = &j->m->layers[l];
    int k_src = ffn ? S->hidden : S->n_heads * j->m->cfg.head_dim;
    double *src_mean = NULL;
    int need_src_mean = bias && changed && (ffn ? j->p->blocks[l].n_neurons_removed : j->p->blocks[l].n_heads_removed);
    enc_acc ain = {0}, aout = {0};
    /* ---- pass A: input moments; the dense stream advances past this and every dropped sublayer */
    if (fit_in || in_rank) s = acc_init(&ain, d, fit_in ? d : 0, err);
    if (!s && need_src_mean && !(src_mean = cce_alloc_zero((size_t)k_src, sizeof(double))))
        s = cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
    int next = p + 1;
    while (next < np && !(enc_exists(j, next) && enc_kept(j, next))) next++;
    for (int s0 = 0; !s && s0 < j->n_seq; s0 += j->chunk_seqs) {
        int ns = j->n_seq - s0 < j->chunk_seqs ? j->n_seq - s0 : j->chunk_seqs, rows = ns * j->seq_len;
        size_t off = (size_t)s0 * j->seq_len * d;
        if (ain.g) {
            if ((s = cce_fwd_norm_input(j->fc, l, ffn, j->H + off, rows, j->xs, err))) break;
            if (fit_in && (s = cce_fwd_norm_input(j->fd, l, ffn, j->D + off, rows, j->xd, err))) break;
            if ((s = acc_add(&ain, j->xs, d, j->xd, d, rows, err))) break;
        }
        if (src_mean) {   // source sublayer on a copy of the dense stream: its full activations
            memcpy(j->hc, j->D + off, (size_t)rows * d * sizeof(float));
            j->cap_site = site;
            j->cap_cols = k_src;
            if ((s = cce_fwd_sublayer(j->fd, l, ffn, j->hc, ns, j->seq_len, enc_capture, j, err))) break;
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < k_src; c++) src_mean[c] += j->cap[(size_t)r * k_src + c];
        }
        if (dense)
            for (int q = p; q < next && !s; q++)
                if (enc_exists(j, q)) s = cce_fwd_sublayer(j->fd, q / 2, q % 2, j->D + off, ns, j->seq_len, NULL, NULL, err);
    }
    if (dense) *pos_d = next;
    if (!s && ain.g) acc_finish(&ain, 0);
    /* ---- input side: refit and factor */
    for (int i = 0; !s && i < 3; i++) {
        int li = in_lins[i];
        if (li < 0 || !cce_linear_present(cce_layer_lin(O, li))) continue;
        cce_linear *ol = cce_layer_lin(O, li);
        if (fit_in) s = fit_input(ain.g, ain.c, d, enc_w(j, l, li), ol->out, o->ridge, enc_w(j, l, li), err);
        if (!s) s = enc_factor(j, l, li, ain.g, err);
    }
    /* ---- pass B: the sublayer's activations on the compressed stream, against the dense target */
    if (!s && (fit_out || out_rank)) s = acc_init(&aout, k_act, fit_out ? d : 0, err);
    for (int s0 = 0; !s && aout.g && s0 < j->n_seq; s0 += j->chunk_seqs) {
        int ns = j->n_seq - s0 < j->chunk_seqs ? j->n_seq - s0 : j->chunk_seqs, rows = ns * j->seq_len;
        size_t off = (size_t)s0 * j->seq_len * d;
        memcpy(j->hc, j->H + off, (size_t)rows * d * sizeof(float));
        j->cap_site = site;
        j->cap_cols = k_act;
        if ((s = cce_fwd_sublayer(j->fc, l, ffn, j->hc, ns, j->seq_len, enc_capture, j, err))) break;
        if (fit_out) {   // target T = D − H (less a kept source bias when no intercept is fitted)
            const float *b0 = !o->intercept ? cce_layer_lin(O, out_lin)->b : NULL;
            for (size_t q = 0; q < (size_t)rows * d; q++) j->xd[q] = j->D[off + q] - j->H[off + q] - (b0 ? b0[q % d] : 0.0f);
        }
        s = acc_add(&aout, j->cap, k_act, j->xd, d, rows, err);
    }
    if (!s && aout.g) acc_finish(&aout, fit_out && o->intercept);
    /* ---- output side: refit, factor, intercept / compensation */
    cce_linear *ol = cce_layer_lin(O, out_lin);
    float *w = changed ? enc_w(j, l, out_lin) : NULL;
    if (!s && fit_out) s = fit_output(&aout, o->ridge, o->intercept, w, NULL, err);
    if (!s && changed) s = enc_factor(j, l, out_lin, aout.g, err);
    if (!s && changed && ol->b && ((fit_out && o->intercept) || src_mean)) {
        float *eff = cce_alloc((size_t)ol->out, (size_t)ol->in * sizeof(float));   // (d, k) effective W
        float *b = (float *)ol->b;
        if (!eff) s = cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
        else if (fit_out) {   // b = mean T − W_eff mean A (without an intercept the source bias stays)
            enc_effective(ol, w, eff);
            for (int i = 0; i < ol->out; i++) {
                double v = aout.st[i];
                for (int c = 0; c < ol->in; c++) v -= (double)eff[(size_t)i * ol->in + c] * aout.sa[c];
                b[i] = (float)v;
            }
        } else {              // FLAP: b += W_{:,R} x̄_R with the source's W and the dense means
            const cce_linear *sl = cce_layer_lin_c(S, out_lin);
            float *row = cce_alloc((size_t)k_src, sizeof(float));
            int hd = j->m->cfg.head_dim;
            double inv = 1.0 / ((double)j->n_seq * j->seq_len);
            const cce_block_plan *bp = &j->p->blocks[l];
            for (int i = 0; row && i < sl->out; i++) {
                cce_linear_rows(sl, i, 1, row);
                double v = 0;
                if (ffn)
                    for (int r = 0; r < bp->n_neurons_removed; r++) v += row[bp->neurons_removed[r]] * src_mean[bp->neurons_removed[r]] * inv;
                else
                    for (int r = 0; r < bp->n_heads_removed; r++)
                        for (int e = 0; e < hd; e++) {
                            int c = bp->heads_removed[r] * hd + e;
                            v += row[c] * src_mean[c] * inv;
                        }
                b[i] += (float)v;
            }
            if (!row) s = cce_err_set(err, CCE_ENOMEM, "encode: out of memory");
            cce_free(row);
        }
        cce_free(eff);
    }
    acc_free(&ain);
    acc_free(&aout);
    cce_free(src_mean);
    /* ---- pass C: the compressed stream through the finished sublayer */
    if (!s) s = enc_advance(j, j->fc, p, j->H, err);
    return s;
}

cce_status cce_encode(const cce_model *m, const cce_plan *p, const int *ids, size_t n,
                      cce_encode_progress_fn progress, void *user, cce_model **out, cce_err *err) {
    *out = NULL;
    if (p->n_blocks != m->cfg.n_layers)
        return cce_err_set(err, CCE_EINVAL, "encode: the plan has %d blocks, the model %d", p->n_blocks, m->cfg.n_layers);
    const cce_encode_opts *o = &p->enc;
    enc_job j = {0};
    cce_status s;
    int L = m->cfg.n_layers, d = m->cfg.dim;
    j.m = m;
    j.p = p;
    j.o = o;
    j.d = d;
    j.progress = progress;
    j.user = user;
    j.total = 2 * L;
    j.seq_len = o->seq_len > 0 ? o->seq_len : p->calib.seq_len > 0 ? p->calib.seq_len : (m->cfg.seq_len < 256 ? m->cfg.seq_len : 256);
    if (j.seq_len < 2 || j.seq_len > m->cfg.seq_len)
        return cce_err_set(err, CCE_EINVAL, "encode: seq_len %d out of range 2..%d", j.seq_len, m->cfg.seq_len);
    size_t windows = n / (size_t)j.seq_len;
    long want = o->tokens / j.seq_len;
    if (windows == 0 || want < 1)
        return cce_err_set(err, CCE_EINVAL, "encode: %zu calibration tokens hold no window of %d", n, j.seq_len);
    j.n_seq = (size_t)want < windows ? (int)want : (int)windows;
    j.rows = j.n_seq * j.seq_len;
    j.chunk_seqs = ENC_CHUNK_ROWS / j.seq_len > 0 ? ENC_CHUNK_ROWS / j.seq_len : 1;
    if (j.chunk_seqs > j.n_seq) j.chunk_seqs = j.n_seq;
    int crows = j.chunk_seqs * j.seq_len;
    size_t *starts = cce_alloc((size_t)j.n_seq, sizeof(size_t));
    j.ids = cce_alloc((size_t)j.rows, sizeof(int));
    j.kept = cce_alloc_zero((size_t)L, sizeof *j.kept);
    j.changed = cce_alloc_zero((size_t)L, sizeof(int));
    j.w_fit = cce_alloc_zero((size_t)L * CCE_LIN_COUNT, sizeof(float *));
    j.D = cce_alloc((size_t)j.rows, (size_t)d * sizeof(float));
    j.H = cce_alloc((size_t)j.rows, (size_t)d * sizeof(float));
    j.xs = cce_alloc((size_t)crows, (size_t)d * sizeof(float));
    j.xd = cce_alloc((size_t)crows, (size_t)d * sizeof(float));
    j.hc = cce_alloc((size_t)crows, (size_t)d * sizeof(float));
    int maxk = d;
    for (int l = 0; l < L; l++) {
        const cce_layer *S = &m->layers[l];
        if (S->hidden > maxk) maxk = S->hidden;
        if (S->n_heads * m->cfg.head_dim > maxk) maxk = S->n_heads * m->cfg.head_dim;
    }
    j.cap = cce_alloc((size_t)crows, (size_t)maxk * sizeof(float));
    if (!starts || !j.ids || !j.kept || !j.changed || !j.w_fit || !j.D || !j.H || !j.xs || !j.xd || !j.hc || !j.cap) {
        s = cce_err_set(err, CCE_ENOMEM, "encode: cannot allocate the calibration batch (%d rows of %d)", j.rows, d);
        goto done;
    }
    if ((s = cce_calib_windows(n, j.seq_len, j.n_seq, o->seed, starts, err))) goto done;
    for (int q = 0; q < j.n_seq; q++)
        memcpy(j.ids + (size_t)q * j.seq_len, ids + starts[q], (size_t)j.seq_len * sizeof(int));
    if ((s = cce_model_derive(m, &j.out, err))) goto done;
    for (int l = 0; l < L && !s; l++) s = enc_setup_block(&j, l, err);
    if (s) goto done;
    if ((s = cce_model_validate(j.out, "encode", err))) goto done;
    if ((s = cce_fwd_new(m, crows, j.seq_len, &j.fd, err)) || (s = cce_fwd_new(j.out, crows, j.seq_len, &j.fc, err)))
        goto done;
    for (int s0 = 0; s0 < j.n_seq; s0 += j.chunk_seqs) {
        int ns = j.n_seq - s0 < j.chunk_seqs ? j.n_seq - s0 : j.chunk_seqs;
        size_t r0 = (size_t)s0 * j.seq_len;
        if ((s = cce_fwd_embed(j.fd, j.ids + r0, ns, j.seq_len, j.H + r0 * d, err))) goto done;
    }
    memcpy(j.D, j.H, (size_t)j.rows * d * sizeof(float));
    int pos_d = 0;
    for (int q = 0; q < 2 * L; q++) {
        char phase[64];
        snprintf(phase, sizeof phase, "block %d/%d %s", q / 2 + 1, L, q % 2 ? "ffn" : "attention");
        if (enc_report(&j, phase)) {
            s = cce_err_set(err, CCE_ECANCEL, "encode: cancelled in block %d", q / 2);
            goto done;
        }
        if ((s = enc_sublayer(&j, q, &pos_d, err))) {
            cce_err_prefix(err, s, "encode");
            goto done;
        }
        j.done = q + 1;
    }
    enc_report(&j, "done");
    *out = j.out;
    j.out = NULL;
done:
    cce_fwd_free(j.fd);
    cce_fwd_free(j.fc);
    for (int l = 0; j.kept && l < L; l++) {
        for (int li = 0; j.w_fit && li < CCE_LIN_COUNT; li++) {
            cce_linear *ol = j.out ? cce_layer_lin(&j.out->layers[l], li) : NULL;
            float *w = j.w_fit[l * CCE_LIN_COUNT + li];
            /* ranked matrices' dense fits are temporary; dense ones live in the model's arena */
            int temp = w && j.kept[l].rank[li] && j.changed[l];
            (void)ol;
            if (temp) cce_free(w);
        }
        plan_kept_free(&j.kept[l]);
    }
    cce_model_free(j.out);
    cce_free(starts); cce_free(j.ids); cce_free(j.kept); cce_free(j.changed); cce_free(j.w_fit);
    cce_free(j.D); cce_free(j.H); cce_free(j.xs); cce_free(j.xd); cce_free(j.hc); cce_free(j.cap);
    return s;
}

cce_status cce_encode_calib(const cce_model *m, const struct cce_tokenizer *tok, const cce_plan *p,
                            const char *calib_path, cce_encode_progress_fn progress, void *user, cce_model **out,
                            cce_err *err) {
    *out = NULL;
    const char *path = calib_path ? calib_path : p->calib.path;
    if (!path || !path[0])
        return cce_err_set(err, CCE_EINVAL, "encode: the plan names no calibration text; give --calib FILE");
    char *text = NULL, sha[65];
    size_t len = 0;
    cce_status s = cce_calib_read_text(path, &text, &len, sha, err);
    if (s) return s;
    if (p->calib.sha256[0] && strcmp(sha, p->calib.sha256)) {
        cce_free(text);
        return cce_err_set(err, CCE_EINVAL,
                           "%s: sha256 %.16s… differs from the plan's calibration %.16s… (encoding needs the same text)",
                           path, sha, p->calib.sha256);
    }
    int *ids = NULL;
    size_t n = 0;
    s = cce_text_tokens(tok, text, len, &ids, &n, err);
    cce_free(text);
    if (s) return cce_err_prefix(err, s, path);
    s = cce_encode(m, p, ids, n, progress, user, out, err);
    cce_free(ids);
    return s;
}
