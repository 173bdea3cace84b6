/*
 * select.c — structured optimal-brain-surgeon selection: which components go, in which order,
 * and what each prefix of that order costs (the contract is in include/select.h).
 *
 * The quadratic model. With P = H̃⁻¹ over the component columns and G = WᵀW, removing a set S
 * and letting the rest absorb what they can costs <G_SS, (P_SS)⁻¹>. The greedy never forms W:
 * removing component c (columns c, Cholesky P_cc = L Lᵀ) is the OBS update
 *     W ← W − Y Zᵀ,  Y = W_c L⁻ᵀ,  Z = P_{:,c} L⁻ᵀ     and     P ← P − Z Zᵀ,
 * so in terms of the Gram matrix
 *     G ← G − Z Vᵀ − V Zᵀ,  V = U − Z E / 2,  U = G_{:,c} L⁻ᵀ,  E = L⁻¹ G_cc L⁻ᵀ,
 * and the step's cost is tr(E) = <G_cc, P_cc⁻¹>, evaluated with the *current* (already
 * updated) G and P: exactly what the survivors absorbed from earlier removals is accounted for
 * (issue 7's counterexample: a and b with identical activations and W_a = −W_b go first, at
 * cost 0, because after a goes b's updated weights are W_b + W_a = 0).
 *
 * Blocking (BLAS-3). Each step needs only (a) every living candidate's diagonal block of the
 * current P and G, kept up to date by rank-s corrections (O(n·s) per step), and (b) the current
 * columns of P and G of the component that goes. The corrections are accumulated as the factors
 * Z, V (n, r) of the steps since the last flush, so a current column is P0[:,c] − Z Z_cᵀ and
 * G0[:,c] − Z V_cᵀ − V Z_cᵀ (thin GEMMs, GEMVs for single columns); every R = max(64, 2·s_max)
 * columns the factors are folded into P0 and G0 by one dsyrk and one dsyr2k (upper triangles,
 * then mirrored in tiles so that a column is a contiguous row), and once the living columns fall
 * below 80 % of the stored ones the matrices are compacted in place. The factors are stored one
 * per row (R, N), so every per-step pass over the N positions is contiguous.
 *
 * Cost for n columns and d outputs: the inverse (dpotrf + dpotri, ~n³ flops), G = WᵀW (d·n²), the
 * flushes (3·N²·R per flush over a shrinking N: ~n³ in all), the per-step products (O(n²·R) in
 * all, memory-bound) and the mirrors (O(n³/R) memory moves). Memory: P and G, 2·n² doubles.
 * Measured with one BLAS thread (AMD EPYC, double, a random problem; CPU seconds of the call,
 * on a shared machine where wall time ran ~2x):
 *   n = 1536, d = 576 (smollm-135m's FFN)          0.34 s
 *   n = 2048, d = 4096                               1.05 s
 *   n = 4096, d = 4096                               6.4 s
 *   n = 11008, d = 4096 (one Llama-2-7B FFN block)   95 s, P and G 1.9 GB
 * (4096 → 11008 is 15x for a 19x n³: the BLAS-3 parts run faster on larger matrices.)
 *
 * Numerics. Double throughout: with ridge 1e-6 exactly redundant components make H̃ singular up
 * to the ridge, so P's entries span ~1/ridge and downdates cancel ~6 digits. A candidate's
 * current P_cc can only drift below its exact floor 1/H̃_cc by rounding; it is clamped there
 * (single columns) or jittered until it factors (blocks); negative increments are clamped to 0.
 *
 * Swap pass (optional): for each prefix k, the pair (a removed before k, b not yet removed)
 * whose exchange gives the lowest cost(S_k − a + b) is found by direct evaluation (Cholesky of
 * P_TT per pair); exchanging their positions i < k <= j changes prefixes i+1 .. j, and it is
 * kept when the summed cost of those prefixes drops. Within one nested order no exchange can
 * lower every prefix: prefix i+1 becomes S_i + b, which greedy already found no cheaper than
 * S_i + order[i]. So the pass lowers the curve's area Σ_k cost[k] (never raises it), and may
 * raise single prefixes (k = 1 included) to lower others. It costs O(k·(n_comp − k)·m³) per
 * prefix (m = columns removed): meant for few components (KV groups, tests), not neurons.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "select.h"
#include "linalg.h"
#include "util.h"

const char *cce_curve_name(cce_curve_kind k) {
    static const char *names[CCE_CURVE_COUNT] = {"neurons", "heads", "rank_wq", "rank_wk", "rank_wv", "rank_wo",
                                                 "rank_w1", "rank_w3", "rank_w2", "drop_attn", "drop_ffn",
                                                 "drop_block"};
    return (unsigned)k < CCE_CURVE_COUNT ? names[k] : "?";
}

cce_status cce_curve_alloc(cce_curve *c, int n, int with_order, cce_err *err) {
    memset(c, 0, sizeof *c);
    if (n < 0 || n > (1 << 28)) return cce_err_set(err, CCE_EINVAL, "curve: %d steps out of range", n);
    c->n = n;
    c->cost = cce_alloc_zero((size_t)n + 1, sizeof(double));
    c->sim = cce_alloc_zero((size_t)n + 1, sizeof(double));
    c->nuc = cce_alloc_zero((size_t)n + 1, sizeof(double));
    c->params = cce_alloc_zero((size_t)n + 1, sizeof(int64_t));
    if (with_order && n > 0) c->order = cce_alloc_zero((size_t)n, sizeof(int));
    if (!c->cost || !c->sim || !c->nuc || !c->params || (with_order && n > 0 && !c->order)) {
        cce_curve_free(c);
        return cce_err_set(err, CCE_ENOMEM, "curve: cannot allocate %d steps", n);
    }
    return CCE_OK;
}

void cce_curve_free(cce_curve *c) {
    if (!c) return;
    cce_free(c->order);
    cce_free(c->cost);
    cce_free(c->sim);
    cce_free(c->nuc);
    cce_free(c->params);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ preparation */

typedef struct {
    int nc, nn, smax;
    const int *off;       // (nc + 1) component c owns positions off[c] .. off[c+1)
    double lambda;        // the ridge actually added
    double *P;            // (nn, nn) full symmetric (H̃⁻¹), positions in component order
    double *G;            // (nn, nn) full symmetric WᵀW over the same positions
    double *hdiag;        // (nn) diag H̃
} sel_prep;

static void prep_free(sel_prep *p) {
    cce_free(p->P);
    cce_free(p->G);
    cce_free(p->hdiag);
    memset(p, 0, sizeof *p);
}

static cce_status comps_validate(const double *H, int n, const cce_components *c, const float *w, int d, int ldw,
                                 double ridge, const char *what, cce_err *err) {
    if (!H || n <= 0) return cce_err_set(err, CCE_EINVAL, "%s: covariance (%d, %d) missing", what, n, n);
    if (!c || c->n_comp < 0 || !c->off || (c->n_comp > 0 && !c->idx))
        return cce_err_set(err, CCE_EINVAL, "%s: components missing", what);
    if (d < 0 || (d > 0 && !w)) return cce_err_set(err, CCE_EINVAL, "%s: weights (%d, ·) missing", what, d);
    if (!(ridge > 0 && ridge < 1)) return cce_err_set(err, CCE_EINVAL, "%s: ridge %g out of range (0, 1)", what, ridge);
    if (c->off[0] != 0) return cce_err_set(err, CCE_EINVAL, "%s: components start at %d, not 0", what, c->off[0]);
    for (int k = 0; k < c->n_comp; k++)
        if (c->off[k + 1] <= c->off[k]) return cce_err_set(err, CCE_EINVAL, "%s: component %d is empty", what, k);
    int nn = c->off[c->n_comp];
    if (nn > n) return cce_err_set(err, CCE_EINVAL, "%s: %d component columns for a covariance of %d", what, nn, n);
    unsigned char *seen = cce_alloc_zero((size_t)n, 1);
    if (!seen) return cce_err_set(err, CCE_ENOMEM, "%s: cannot allocate %d flags", what, n);
    cce_status st = CCE_OK;
    for (int i = 0; i < nn && !st; i++) {
        int x = c->idx[i];
        if (x < 0 || x >= n) st = cce_err_set(err, CCE_EINVAL, "%s: component index %d out of range 0..%d", what, x, n - 1);
        else if (x >= ldw) st = cce_err_set(err, CCE_EINVAL, "%s: component index %d beyond the weights' ld %d", what, x, ldw);
        else if (seen[x]++) st = cce_err_set(err, CCE_EINVAL, "%s: index %d belongs to two components", what, x);
    }
    cce_free(seen);
    return st;
}

/* H̃ over the component columns, its inverse P (the ridge grown x10 up to 3 times while H̃ is
 * not numerically positive definite, e.g. a covariance with rounding-negative eigenvalues), and
 * G = WᵀW over the same columns (computed 256 rows of W at a time in double). */
static cce_status prep_build(const double *H, int n, const cce_components *c, const float *w, int d, int ldw,
                             double ridge, int want_G, const char *what, int (*cancel)(void *), void *user,
                             sel_prep *p, cce_err *err) {
    memset(p, 0, sizeof *p);
    cce_status st = comps_validate(H, n, c, w, d, ldw, ridge, what, err);
    if (st) return st;
    int nn = c->off[c->n_comp];
    p->nc = c->n_comp;
    p->nn = nn;
    p->off = c->off;
    for (int k = 0; k < c->n_comp; k++)
        if (c->off[k + 1] - c->off[k] > p->smax) p->smax = c->off[k + 1] - c->off[k];
    if (nn == 0) return CCE_OK;
    p->P = cce_alloc((size_t)nn, (size_t)nn * sizeof(double));
    p->hdiag = cce_alloc((size_t)nn, sizeof(double));
    if (want_G) p->G = cce_alloc_zero((size_t)nn, (size_t)nn * sizeof(double));
    if (!p->P || !p->hdiag || (want_G && !p->G)) {
        prep_free(p);
        return cce_err_set(err, CCE_ENOMEM, "%s: cannot allocate (%d, %d) matrices", what, nn, nn);
    }
    double mean_diag = 0;
    for (int i = 0; i < nn; i++) mean_diag += H[(size_t)c->idx[i] * n + c->idx[i]];
    mean_diag /= nn;
    double lambda = mean_diag > 0 ? ridge * mean_diag : 1e-30;
    for (int attempt = 0;; attempt++) {
        for (int i = 0; i < nn; i++) {
            const double *hr = H + (size_t)c->idx[i] * n;
            double *pr = p->P + (size_t)i * nn;
            for (int j = 0; j < nn; j++) pr[j] = hr[c->idx[j]];
            pr[i] += lambda;
            p->hdiag[i] = pr[i];
        }
        st = cce_linalg_spd_inverse_d(p->P, nn, err);
        if (st != CCE_EFORMAT || attempt == 3) break;
        lambda *= 10;
    }
    if (st) {
        prep_free(p);
        return cce_err_prefix(err, st, what);
    }
    p->lambda = lambda;
    if (want_G && d > 0) {
        enum { ROWS = 256 };
        int rows = d < ROWS ? d : ROWS;
        double *wc = cce_alloc((size_t)rows, (size_t)nn * sizeof(double));   // (rows, nn) W's rows, component columns
        if (!wc) {
            prep_free(p);
            return cce_err_set(err, CCE_ENOMEM, "%s: cannot allocate (%d, %d) weight rows", what, rows, nn);
        }
        cce_matd Gm = {p->G, nn, nn, nn};
        for (int r0 = 0; r0 < d && !st; r0 += rows) {
            if (cancel && cancel(user)) {   // polled between the inverse and each piece of G
                st = cce_err_set(err, CCE_ECANCEL, "%s: cancelled", what);
                break;
            }
            int k = d - r0 < rows ? d - r0 : rows;
            for (int r = 0; r < k; r++) {
                const float *wr = w + (size_t)(r0 + r) * ldw;
                double *dr = wc + (size_t)r * nn;
                for (int j = 0; j < nn; j++) dr[j] = wr[c->idx[j]];
            }
            cce_matd Wc = {wc, k, nn, nn};
            st = cce_linalg_syrk_d(1, 1.0, &Wc, 1.0, &Gm, err);
        }
        cce_free(wc);
        if (st) {
            prep_free(p);
            return st == CCE_ECANCEL ? st : cce_err_prefix(err, st, what);
        }
        cce_linalg_symmetrize_d(p->G, nn);
    }
    return CCE_OK;
}

/* ------------------------------------------------------------------ small dense helpers */

/* In-place lower Cholesky of a (s, s) (upper part ignored), growing jitter from 1e-13·mean
 * diag when rounding left it indefinite; floor (may be NULL) is a diagonal that a 1x1 block
 * is clamped to. Returns 0, or -1 when it cannot be factored. */
static int small_chol(double *a, int s, const double *floor, double *keep) {
    if (s == 1) {
        double f = floor ? floor[0] : 0;
        if (!(a[0] > f)) a[0] = f;
        if (!(a[0] > 0)) return -1;
        a[0] = sqrt(a[0]);
        return 0;
    }
    memcpy(keep, a, (size_t)s * s * sizeof(double));
    if (s >= 16) {   // LAPACK first; the scalar loop with jitter only when it fails
        cce_matd A = {a, s, s, s};
        if (cce_linalg_cholesky_d(&A, NULL) == CCE_OK) return 0;
        memcpy(a, keep, (size_t)s * s * sizeof(double));
    }
    double tr = 0;
    for (int i = 0; i < s; i++) tr += fabs(a[i * s + i]);
    double jit = tr > 0 ? tr / s * 1e-13 : 1e-300;
    for (int attempt = 0; attempt < 12; attempt++) {
        int ok = 1;
        for (int j = 0; j < s && ok; j++) {
            double dj = a[j * s + j];
            for (int k = 0; k < j; k++) dj -= a[j * s + k] * a[j * s + k];
            if (!(dj > 0)) { ok = 0; break; }
            dj = sqrt(dj);
            a[j * s + j] = dj;
            for (int i = j + 1; i < s; i++) {
                double v = a[i * s + j];
                for (int k = 0; k < j; k++) v -= a[i * s + k] * a[j * s + k];
                a[i * s + j] = v / dj;
            }
        }
        if (ok) {
            for (int i = 0; i < s; i++)
                for (int j = i + 1; j < s; j++) a[i * s + j] = 0;
            return 0;
        }
        memcpy(a, keep, (size_t)s * s * sizeof(double));
        for (int i = 0; i < s; i++) a[i * s + i] += jit;
        jit *= 10;
    }
    return -1;
}

/* x (rows, s, ld ldx) := x L⁻ᵀ for lower L (s, s): each row solves L yᵀ = xᵀ. */
static void rows_times_linvt(double *x, int rows, int ldx, const double *l, int s) {
    for (int r = 0; r < rows; r++) {
        double *row = x + (size_t)r * ldx;
        for (int j = 0; j < s; j++) {
            double v = row[j];
            for (int k = 0; k < j; k++) v -= l[j * s + k] * row[k];
            row[j] = v / l[j * s + j];
        }
    }
}

/* e (s, s) = L⁻¹ g L⁻ᵀ for symmetric g; returns its trace <g, (L Lᵀ)⁻¹>. */
static double linv_g_linvt(const double *l, const double *g, int s, double *e) {
    memcpy(e, g, (size_t)s * s * sizeof(double));
    if (s >= 16) {   // two triangular solves through BLAS: L⁻¹ (g L⁻ᵀ)
        cce_matd Lm = {(double *)l, s, s, s}, Em = {e, s, s, s};
        if (cce_linalg_trsm_d(1, 1, 1, &Lm, &Em, NULL) == CCE_OK && cce_linalg_trsm_d(0, 1, 0, &Lm, &Em, NULL) == CCE_OK) {
            double tr = 0;
            for (int i = 0; i < s; i++) tr += e[i * s + i];
            for (int i = 0; i < s; i++)
                for (int j = i + 1; j < s; j++) e[i * s + j] = e[j * s + i] = 0.5 * (e[i * s + j] + e[j * s + i]);
            return tr;
        }
        memcpy(e, g, (size_t)s * s * sizeof(double));
    }
    rows_times_linvt(e, s, s, l, s);   // g L⁻ᵀ
    for (int i = 0; i < s; i++)        // transpose in place, then again: L⁻¹ (g L⁻ᵀ)
        for (int j = i + 1; j < s; j++) { double t = e[i * s + j]; e[i * s + j] = e[j * s + i]; e[j * s + i] = t; }
    rows_times_linvt(e, s, s, l, s);
    double tr = 0;
    for (int i = 0; i < s; i++) tr += e[i * s + i];
    for (int i = 0; i < s; i++)   // symmetrise against rounding
        for (int j = i + 1; j < s; j++) e[i * s + j] = e[j * s + i] = 0.5 * (e[i * s + j] + e[j * s + i]);
    return tr;
}

/* ------------------------------------------------------------------ greedy OBS */

typedef struct {
    int nc, N, R, r;      // components, stored positions, flush width, factor columns in use
    double *P0, *G0;      // (N, N) full symmetric (ld N), as of the last flush
    double *Z, *V;        // (R, N) the factors since the last flush, one per row (ld N): Z = Zᵀ stored
    double *pc, *gc;      // (N, smax) current columns of the component that goes
    double *dP, *dG;      // per component (s_c, s_c) current diagonal blocks, at boff[c]
    double *floor;        // per position: 1 / H̃_ii (the exact lower bound of P_ii)
    int *start, *size;    // (nc) current first position and width of each component
    size_t *boff;         // (nc) block offsets into dP / dG
    unsigned char *dead;  // (N) position removed
    int *alive;           // (nc)
    double *blk, *keep, *lf, *e;   // (smax, smax) scratch
} obs_state;

static void obs_free(obs_state *o) {
    cce_free(o->Z); cce_free(o->V); cce_free(o->pc); cce_free(o->gc);
    cce_free(o->dP); cce_free(o->dG); cce_free(o->floor); cce_free(o->start); cce_free(o->size);
    cce_free(o->boff); cce_free(o->dead); cce_free(o->alive);
    cce_free(o->blk); cce_free(o->keep); cce_free(o->lf); cce_free(o->e);
}

/* Refresh the living components' diagonal blocks from P0 / G0 (after a flush). */
static void obs_reload_blocks(obs_state *o) {
    for (int c = 0; c < o->nc; c++) {
        if (!o->alive[c]) continue;
        int a = o->start[c], s = o->size[c];
        double *bp = o->dP + o->boff[c], *bg = o->dG + o->boff[c];
        for (int t = 0; t < s; t++)
            for (int u = 0; u < s; u++) {
                bp[t * s + u] = o->P0[(size_t)(a + t) * o->N + a + u];
                bg[t * s + u] = o->G0[(size_t)(a + t) * o->N + a + u];
            }
    }
}

/* Copy the upper triangle of a (n, n) into its lower one, in 64 x 64 tiles (cache-friendly), so
 * that a column can be read as the contiguous row. */
static void mirror_upper(double *a, int n) {
    enum { T = 64 };
    for (int i0 = 0; i0 < n; i0 += T)
        for (int j0 = 0; j0 <= i0; j0 += T) {
            int i1 = i0 + T < n ? i0 + T : n, j1 = j0 + T < n ? j0 + T : n;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1 && j < i; j++) a[(size_t)i * n + j] = a[(size_t)j * n + i];
        }
}

/* Fold Z, V into P0, G0 (then full symmetric again); compact when the living positions fell
 * below 80 %. */
static cce_status obs_flush(obs_state *o, cce_err *err) {
    if (o->r == 0) return CCE_OK;
    int N = o->N;
    cce_matd Pm = {o->P0, N, N, N}, Gm = {o->G0, N, N, N};
    cce_matd Zm = {o->Z, o->r, N, N}, Vm = {o->V, o->r, N, N};
    cce_status st = cce_linalg_syrk_d(1, -1.0, &Zm, 1.0, &Pm, err);
    if (!st) st = cce_linalg_syr2k_d(1, -1.0, &Zm, &Vm, 1.0, &Gm, err);
    if (st) return st;
    o->r = 0;
    int live = 0;
    for (int p = 0; p < N; p++) live += !o->dead[p];
    if (live <= (N * 4) / 5) {   // in place: sources never lie before their destinations
        int np = 0;
        for (int i = 0; i < N; i++) {
            if (o->dead[i]) continue;
            int nj = np;
            const double *srcP = o->P0 + (size_t)i * N, *srcG = o->G0 + (size_t)i * N;
            double *dstP = o->P0 + (size_t)np * live, *dstG = o->G0 + (size_t)np * live;
            for (int j = i; j < N; j++) {
                if (o->dead[j]) continue;
                dstP[nj] = srcP[j];
                dstG[nj] = srcG[j];
                nj++;
            }
            o->floor[np] = o->floor[i];
            np++;
        }
        for (int c = 0, pos = 0; c < o->nc; c++) {   // components keep their relative order
            if (!o->alive[c]) continue;
            o->start[c] = pos;
            pos += o->size[c];
        }
        memset(o->dead, 0, (size_t)live);
        o->N = live;
    }
    mirror_upper(o->P0, o->N);
    mirror_upper(o->G0, o->N);
    obs_reload_blocks(o);
    return CCE_OK;
}

/* Increment <dG_c, dP_c⁻¹> of removing living component c now. */
static double obs_candidate(obs_state *o, int c) {
    int s = o->size[c];
    const double *bp = o->dP + o->boff[c], *bg = o->dG + o->boff[c];
    if (s == 1) {
        double p = bp[0], f = o->floor[o->start[c]];
        if (!(p > f)) p = f;
        double v = bg[0] / p;
        return v > 0 ? v : 0;
    }
    memcpy(o->lf, bp, (size_t)s * s * sizeof(double));
    if (small_chol(o->lf, s, NULL, o->keep) != 0) return 0;   // singular block: fully predictable
    double v = linv_g_linvt(o->lf, bg, s, o->e);
    return v > 0 ? v : 0;
}

/* Remove component c: record its increment, extend Z and V, correct the diagonal blocks. */
static cce_status obs_remove(obs_state *o, int c, double *inc, cce_err *err) {
    int N = o->N, a = o->start[c], s = o->size[c], r = o->r;
    cce_status st;
    // current columns pc = P0[:, a..a+s) − Z Z_cᵀ, gc = G0[:, a..a+s) − Z V_cᵀ − V Z_cᵀ, (N, s)
    for (int t = 0; t < s; t++) {   // P0, G0 are full symmetric between flushes: column = row
        const double *pr = o->P0 + (size_t)(a + t) * N, *gr = o->G0 + (size_t)(a + t) * N;
        for (int i = 0; i < N; i++) {
            o->pc[(size_t)i * s + t] = pr[i];
            o->gc[(size_t)i * s + t] = gr[i];
        }
    }
    if (r > 0 && s == 1) {   // single columns: three matrix-vector products
        cce_matd Zm = {o->Z, r, N, N}, Vm = {o->V, r, N, N};
        double *zc = o->e + 0, *vc = o->keep;   // (r) c's factor coefficients, gathered
        for (int q = 0; q < r; q++) {
            zc[q] = o->Z[(size_t)q * N + a];
            vc[q] = o->V[(size_t)q * N + a];
        }
        if ((st = cce_linalg_gemv_d(1, -1.0, &Zm, zc, 1.0, o->pc, err))) return st;
        if ((st = cce_linalg_gemv_d(1, -1.0, &Zm, vc, 1.0, o->gc, err))) return st;
        if ((st = cce_linalg_gemv_d(1, -1.0, &Vm, zc, 1.0, o->gc, err))) return st;
    } else if (r > 0) {
        cce_matd Zm = {o->Z, r, N, N}, Vm = {o->V, r, N, N};
        cce_matd Zc = {o->Z + a, r, s, N}, Vc = {o->V + a, r, s, N};
        cce_matd Pc = {o->pc, N, s, s}, Gc = {o->gc, N, s, s};
        if ((st = cce_linalg_gemm_d(1, 0, -1.0, &Zm, &Zc, 1.0, &Pc, err))) return st;
        if ((st = cce_linalg_gemm_d(1, 0, -1.0, &Zm, &Vc, 1.0, &Gc, err))) return st;
        if ((st = cce_linalg_gemm_d(1, 0, -1.0, &Vm, &Zc, 1.0, &Gc, err))) return st;
    }
    // L = chol(P_cc) (fresh), E = L⁻¹ G_cc L⁻ᵀ, increment tr(E)
    for (int t = 0; t < s; t++)
        for (int u = 0; u < s; u++) {
            o->lf[t * s + u] = 0.5 * (o->pc[(size_t)(a + t) * s + u] + o->pc[(size_t)(a + u) * s + t]);
            o->blk[t * s + u] = 0.5 * (o->gc[(size_t)(a + t) * s + u] + o->gc[(size_t)(a + u) * s + t]);
        }
    if (small_chol(o->lf, s, s == 1 ? &o->floor[a] : NULL, o->keep) != 0) {
        // numerically singular block: nothing to propagate, the component is fully predictable
        *inc = 0;
    } else {
        double tr = linv_g_linvt(o->lf, o->blk, s, o->e);
        *inc = tr > 0 ? tr : 0;
        // z = pc L⁻ᵀ, u = gc L⁻ᵀ, v = u − z E / 2, written into Z, V columns r..r+s
        if (s == 1) {
            rows_times_linvt(o->pc, N, s, o->lf, s);
            rows_times_linvt(o->gc, N, s, o->lf, s);
        } else {   // X L⁻ᵀ for the (N, s) columns: one triangular solve each
            cce_matd Lm = {o->lf, s, s, s}, Pc = {o->pc, N, s, s}, Gc = {o->gc, N, s, s};
            if ((st = cce_linalg_trsm_d(1, 1, 1, &Lm, &Pc, err))) return st;
            if ((st = cce_linalg_trsm_d(1, 1, 1, &Lm, &Gc, err))) return st;
        }
        if (s > 1) {   // v = u − z E / 2 through BLAS, in place of u
            cce_matd Zc = {o->pc, N, s, s}, Em = {o->e, s, s, s}, Uc = {o->gc, N, s, s};
            if ((st = cce_linalg_gemm_d(0, 0, -0.5, &Zc, &Em, 1.0, &Uc, err))) return st;
        } else {
            for (int i = 0; i < N; i++) o->gc[i] -= 0.5 * o->pc[i] * o->e[0];
        }
        for (int t = 0; t < s; t++) {   // factor rows r+t, contiguous over positions
            double *zd = o->Z + (size_t)(r + t) * N, *vd = o->V + (size_t)(r + t) * N;
            for (int i = 0; i < N; i++) {
                int dead = o->dead[i] || (i >= a && i < a + s);
                zd[i] = dead ? 0 : o->pc[(size_t)i * s + t];
                vd[i] = dead ? 0 : o->gc[(size_t)i * s + t];
            }
        }
        o->r = r + s;
        // diagonal blocks of the living components: dP −= z zᵀ, dG −= z vᵀ + v zᵀ
        for (int b = 0; b < o->nc; b++) {
            if (!o->alive[b] || b == c) continue;
            int pb = o->start[b], sb = o->size[b];
            double *bp = o->dP + o->boff[b], *bg = o->dG + o->boff[b];
            if (sb * s >= 64) {   // blocks: three small GEMMs
                cce_matd Zb = {o->Z + (size_t)r * N + pb, s, sb, N}, Vb = {o->V + (size_t)r * N + pb, s, sb, N};
                cce_matd Bp = {bp, sb, sb, sb}, Bg = {bg, sb, sb, sb};
                if ((st = cce_linalg_gemm_d(1, 0, -1.0, &Zb, &Zb, 1.0, &Bp, err))) return st;
                if ((st = cce_linalg_gemm_d(1, 0, -1.0, &Zb, &Vb, 1.0, &Bg, err))) return st;
                if ((st = cce_linalg_gemm_d(1, 0, -1.0, &Vb, &Zb, 1.0, &Bg, err))) return st;
                continue;
            }
            for (int x = 0; x < sb; x++) {
                for (int y = 0; y < sb; y++) {
                    double zz = 0, zv = 0;
                    for (int t = 0; t < s; t++) {
                        const double *zr = o->Z + (size_t)(r + t) * N, *vr = o->V + (size_t)(r + t) * N;
                        zz += zr[pb + x] * zr[pb + y];
                        zv += zr[pb + x] * vr[pb + y] + vr[pb + x] * zr[pb + y];
                    }
                    bp[x * sb + y] -= zz;
                    bg[x * sb + y] -= zv;
                }
            }
        }
    }
    o->alive[c] = 0;
    for (int t = 0; t < s; t++) o->dead[a + t] = 1;
    return CCE_OK;
}

/* The greedy on a prepared problem; consumes p->P and p->G (they become P0 and G0). */
static cce_status obs_greedy(sel_prep *p, int *order, double *cost, double *loo, int (*cancel)(void *),
                             void *user, cce_err *err) {
    obs_state o;
    memset(&o, 0, sizeof o);
    int nc = p->nc, nn = p->nn, smax = p->smax;
    o.nc = nc;
    o.N = nn;
    o.R = 2 * smax > 64 ? 2 * smax : 64;
    o.P0 = p->P;
    o.G0 = p->G;
    size_t bsum = 0;
    for (int c = 0; c < nc; c++) bsum += (size_t)(p->off[c + 1] - p->off[c]) * (size_t)(p->off[c + 1] - p->off[c]);
    o.Z = cce_alloc((size_t)o.R, (size_t)nn * sizeof(double));
    o.V = cce_alloc((size_t)o.R, (size_t)nn * sizeof(double));
    o.pc = cce_alloc((size_t)nn, (size_t)smax * sizeof(double));
    o.gc = cce_alloc((size_t)nn, (size_t)smax * sizeof(double));
    o.dP = cce_alloc(bsum, sizeof(double));
    o.dG = cce_alloc(bsum, sizeof(double));
    o.floor = cce_alloc((size_t)nn, sizeof(double));
    o.start = cce_alloc((size_t)nc, sizeof(int));
    o.size = cce_alloc((size_t)nc, sizeof(int));
    o.boff = cce_alloc((size_t)nc, sizeof(size_t));
    o.dead = cce_alloc_zero((size_t)nn, 1);
    o.alive = cce_alloc((size_t)nc, sizeof(int));
    size_t sq = (size_t)smax * smax > (size_t)o.R ? (size_t)smax * smax : (size_t)o.R;   // also gathers of R
    o.blk = cce_alloc(sq, sizeof(double));
    o.keep = cce_alloc(sq, sizeof(double));
    o.lf = cce_alloc(sq, sizeof(double));
    o.e = cce_alloc(sq, sizeof(double));
    cce_status st = CCE_OK;
    if (!o.Z || !o.V || !o.pc || !o.gc || !o.dP || !o.dG || !o.floor || !o.start || !o.size || !o.boff || !o.dead ||
        !o.alive || !o.blk || !o.keep || !o.lf || !o.e) {
        st = cce_err_set(err, CCE_ENOMEM, "select: cannot allocate the OBS state for %d columns", nn);
        goto done;
    }
    for (int i = 0; i < nn; i++) o.floor[i] = 1.0 / p->hdiag[i];
    bsum = 0;
    for (int c = 0; c < nc; c++) {
        o.start[c] = p->off[c];
        o.size[c] = p->off[c + 1] - p->off[c];
        o.boff[c] = bsum;
        bsum += (size_t)o.size[c] * o.size[c];
        o.alive[c] = 1;
    }
    obs_reload_blocks(&o);
    cost[0] = 0;
    for (int step = 0; step < nc; step++) {
        if (cancel && cancel(user)) {
            st = cce_err_set(err, CCE_ECANCEL, "select: cancelled at step %d of %d", step, nc);
            goto done;
        }
        int best = -1;
        double best_inc = INFINITY;
        for (int c = 0; c < nc; c++) {
            if (!o.alive[c]) continue;
            double v = obs_candidate(&o, c);
            if (step == 0 && loo) loo[c] = v;
            if (v < best_inc) { best_inc = v; best = c; }
        }
        if (o.r + o.size[best] > o.R) {
            if ((st = obs_flush(&o, err))) goto done;
        }
        double inc;
        if ((st = obs_remove(&o, best, &inc, err))) goto done;
        order[step] = best;
        cost[step + 1] = cost[step] + inc;
    }
done:
    p->P = o.P0;   // still owned by the prep (freed there)
    p->G = o.G0;
    obs_free(&o);
    return st;
}

/* ------------------------------------------------------------------ direct costs and swaps */

/* <G_TT, (P_TT)⁻¹> for the components in set[0..k) of a prepared problem (full P and G). */
static cce_status set_cost_from_inverse(const sel_prep *p, const int *set, int k, double *scratch_p,
                                        double *scratch_g, int *cols, double *out, cce_err *err) {
    int m = 0;
    for (int q = 0; q < k; q++)
        for (int t = p->off[set[q]]; t < p->off[set[q] + 1]; t++) cols[m++] = t;
    *out = 0;
    if (m == 0) return CCE_OK;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            scratch_p[(size_t)i * m + j] = p->P[(size_t)cols[i] * p->nn + cols[j]];
            scratch_g[(size_t)i * m + j] = p->G[(size_t)cols[i] * p->nn + cols[j]];
        }
    cce_matd A = {scratch_p, m, m, m}, B = {scratch_g, m, m, m};
    cce_status st = cce_linalg_posv_d(&A, &B, err);   // B := P_TT⁻¹ G_TT
    if (st) return cce_err_prefix(err, st, "select swap");
    double tr = 0;
    for (int i = 0; i < m; i++) tr += scratch_g[(size_t)i * m + i];
    *out = tr > 0 ? tr : 0;
    return CCE_OK;
}

static cce_status swap_passes_run(const sel_prep *p, int passes, int *order, double *cost, int (*cancel)(void *),
                                  void *user, cce_err *err) {
    int nc = p->nc, nn = p->nn;
    double *sp = cce_alloc((size_t)nn, (size_t)nn * sizeof(double));   // (m, m) scratch
    double *sg = cce_alloc((size_t)nn, (size_t)nn * sizeof(double));
    int *cols = cce_alloc((size_t)nn, sizeof(int));
    int *trial = cce_alloc((size_t)nc, sizeof(int));
    double *newc = cce_alloc((size_t)nc + 1, sizeof(double));
    cce_status st = CCE_OK;
    if (!sp || !sg || !cols || !trial || !newc) {
        st = cce_err_set(err, CCE_ENOMEM, "select: cannot allocate the swap pass for %d columns", nn);
        goto done;
    }
    double scale = cost[nc] > 0 ? cost[nc] : 1e-300, tol = 1e-10 * scale;
    for (int pass = 0; pass < passes; pass++) {
        int changed = 0;
        for (int k = 1; k < nc; k++) {
            if (cancel && cancel(user)) {
                st = cce_err_set(err, CCE_ECANCEL, "select: cancelled in the swap pass");
                goto done;
            }
            int bi = -1, bj = -1;
            double bc = cost[k] - tol;
            memcpy(trial, order, (size_t)k * sizeof(int));
            for (int i = 0; i < k; i++)
                for (int j = k; j < nc; j++) {
                    trial[i] = order[j];
                    double v;
                    if ((st = set_cost_from_inverse(p, trial, k, sp, sg, cols, &v, err))) goto done;
                    trial[i] = order[i];
                    if (v < bc) { bc = v; bi = i; bj = j; }
                }
            if (bi < 0) continue;
            // the exchange changes prefixes bi+1 .. bj: keep it when their summed cost drops
            memcpy(trial, order, (size_t)nc * sizeof(int));
            trial[bi] = order[bj];
            trial[bj] = order[bi];
            double before = 0, after = 0;
            for (int m = bi + 1; m <= bj; m++) {
                if (m == k) newc[m] = bc;
                else if ((st = set_cost_from_inverse(p, trial, m, sp, sg, cols, &newc[m], err))) goto done;
                before += cost[m];
                after += newc[m];
            }
            if (!(after < before - tol)) continue;
            memcpy(order, trial, (size_t)nc * sizeof(int));
            for (int m = bi + 1; m <= bj; m++) cost[m] = newc[m];
            changed = 1;
        }
        if (!changed) break;
    }
done:
    cce_free(sp);
    cce_free(sg);
    cce_free(cols);
    cce_free(trial);
    cce_free(newc);
    return st;
}

/* ------------------------------------------------------------------ public */

cce_status cce_select_obs_loo(const double *H, int n, const cce_components *comps, const float *w, int d, int ldw,
                              double ridge, int swap_passes, int *order, double *cost, double *loo,
                              int (*cancel)(void *user), void *user, cce_err *err) {
    if (!order || !cost) return cce_err_set(err, CCE_EINVAL, "select: order and cost outputs are required");
    if (swap_passes < 0) return cce_err_set(err, CCE_EINVAL, "select: swap_passes %d is negative", swap_passes);
    sel_prep p;
    cce_status st = prep_build(H, n, comps, w, d, ldw, ridge, 1, "select", cancel, user, &p, err);
    if (st) return st;
    cost[0] = 0;
    if (p.nc == 0) {
        prep_free(&p);
        return CCE_OK;
    }
    sel_prep keep = p;   // the swap pass needs the untouched P and G
    if (swap_passes > 0) {
        size_t bytes = (size_t)p.nn * p.nn * sizeof(double);
        keep.P = cce_alloc((size_t)p.nn, (size_t)p.nn * sizeof(double));
        keep.G = cce_alloc((size_t)p.nn, (size_t)p.nn * sizeof(double));
        keep.hdiag = NULL;
        if (!keep.P || !keep.G) {
            cce_free(keep.P);
            cce_free(keep.G);
            prep_free(&p);
            return cce_err_set(err, CCE_ENOMEM, "select: cannot copy (%d, %d) matrices for the swap pass", p.nn, p.nn);
        }
        memcpy(keep.P, p.P, bytes);
        memcpy(keep.G, p.G, bytes);
    }
    st = obs_greedy(&p, order, cost, loo, cancel, user, err);
    prep_free(&p);
    if (swap_passes > 0) {
        if (!st) st = swap_passes_run(&keep, swap_passes, order, cost, cancel, user, err);
        cce_free(keep.P);
        cce_free(keep.G);
    }
    return st;
}

cce_status cce_select_obs(const double *H, int n, const cce_components *comps, const float *w, int d, int ldw,
                          double ridge, int swap_passes, int *order, double *cost, int (*cancel)(void *user),
                          void *user, cce_err *err) {
    return cce_select_obs_loo(H, n, comps, w, d, ldw, ridge, swap_passes, order, cost, NULL, cancel, user, err);
}

cce_status cce_select_cost(const double *H, int n, const cce_components *comps, const float *w, int d, int ldw,
                           double ridge, const int *removed, int n_removed, double *cost, cce_err *err) {
    *cost = 0;
    sel_prep p;   // validates, and fixes λ exactly as the greedy does (its inverse is not used)
    cce_status st = prep_build(H, n, comps, w, d, ldw, ridge, 0, "select cost", NULL, NULL, &p, err);
    if (st) return st;
    int nc = p.nc, nn = p.nn;
    if (n_removed < 0 || n_removed > nc || (n_removed > 0 && !removed)) {
        prep_free(&p);
        return cce_err_set(err, CCE_EINVAL, "select cost: %d removed of %d components", n_removed, nc);
    }
    unsigned char *in_s = cce_alloc_zero((size_t)nc + 1, 1);
    int *sc = cce_alloc((size_t)nn + 1, sizeof(int)), *kc = cce_alloc((size_t)nn + 1, sizeof(int));
    double *hkk = NULL, *x = NULL, *rs = NULL;
    int m = 0, kk = 0;
    if (!in_s || !sc || !kc) goto nomem;
    for (int q = 0; q < n_removed; q++) {
        int c = removed[q];
        if (c < 0 || c >= nc || in_s[c]) {
            st = cce_err_set(err, CCE_EINVAL, "select cost: removed component %d invalid or repeated", c);
            goto done;
        }
        in_s[c] = 1;
    }
    for (int c = 0; c < nc; c++)
        for (int t = comps->off[c]; t < comps->off[c + 1]; t++) {
            if (in_s[c]) sc[m++] = comps->idx[t];
            else kc[kk++] = comps->idx[t];
        }
    if (m == 0) goto done;
    /* Schur complement R = H̃_SS − H̃_SK H̃_KK⁻¹ H̃_KS (one SPD solve), cost = <W_SᵀW_S, R>. */
    hkk = cce_alloc((size_t)kk * kk + 1, sizeof(double));                            // (kk, kk)
    x = cce_alloc((size_t)kk + 1, (size_t)m * sizeof(double));                       // (kk, m)
    rs = cce_alloc((size_t)m, (size_t)m * sizeof(double));                           // (m, m)
    if (!hkk || !x || !rs) goto nomem;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) rs[(size_t)i * m + j] = H[(size_t)sc[i] * n + sc[j]] + (i == j ? p.lambda : 0);
    if (kk > 0) {
        for (int i = 0; i < kk; i++) {
            for (int j = 0; j < kk; j++) hkk[(size_t)i * kk + j] = H[(size_t)kc[i] * n + kc[j]] + (i == j ? p.lambda : 0);
            for (int j = 0; j < m; j++) x[(size_t)i * m + j] = H[(size_t)kc[i] * n + sc[j]];
        }
        cce_matd A = {hkk, kk, kk, kk}, B = {x, kk, m, m};
        if ((st = cce_linalg_posv_d(&A, &B, err))) {
            cce_err_prefix(err, st, "select cost");
            goto done;
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                double s = 0;
                for (int q = 0; q < kk; q++) s += H[(size_t)sc[i] * n + kc[q]] * x[(size_t)q * m + j];
                rs[(size_t)i * m + j] -= s;
            }
    }
    double tot = 0;
    for (int r = 0; r < d; r++) {   // Σ_r w_r,S R w_r,Sᵀ
        const float *wr = w + (size_t)r * ldw;
        for (int i = 0; i < m; i++) {
            double t = 0;
            for (int j = 0; j < m; j++) t += rs[(size_t)i * m + j] * wr[sc[j]];
            tot += t * wr[sc[i]];
        }
    }
    *cost = tot > 0 ? tot : 0;
    goto done;
nomem:
    st = cce_err_set(err, CCE_ENOMEM, "select cost: cannot allocate for %d columns", nn);
done:
    cce_free(in_s);
    cce_free(sc);
    cce_free(kc);
    cce_free(hkk);
    cce_free(x);
    cce_free(rs);
    prep_free(&p);
    return st;
}
