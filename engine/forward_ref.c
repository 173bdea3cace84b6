/*
 * forward_ref.c — the slow, obvious reference forward pass (tests only).
 *
 * One sequence, token by token, plain loops, no BLAS, dot products accumulated in double.
 * It is written to be read against the math, not to be fast:
 *
 *   Llama: h += Wo·attn(rope(Wq·n(h)), rope(Wk·n(h)), Wv·n(h));  h += W2·(silu(W1·n(h)) ⊙ W3·n(h))
 *          n = RMSNorm x·w/sqrt(mean(x²)+eps); RoPE on adjacent pairs (2i,2i+1) or on HF half
 *          pairs (i, i+hd/2), frequency theta^(-2i/hd) either way.
 *   GPT-2: h = emb + pos;  n = LayerNorm with bias;  FFN = W2·gelu_tanh(W1·n(h) + b1) + b2.
 *
 * Each query head h reads KV head head_kv[h] (or h / (n_heads/n_kv_heads)); attention is causal,
 * scaled by 1/sqrt(hd). Every linear may carry a bias and may be low rank (y = U (V x)).
 * Per-layer head counts and FFN widths come from the layer; a dropped block is the identity.
 *
 * The pass runs layer-major (all T tokens through layer 0, then layer 1, ...) so that it can
 * report the same taps as the fast path: each site as one (T, cols) matrix, in the same order.
 * Inside a layer every token is computed on its own; token t's attention reads the keys and
 * values of tokens 0..t of the same layer only.
 */
#include <math.h>
#include <string.h>
#include "forward.h"
#include "util.h"

/* y (out) = W x + b for one token; x (in); row (in) scratch for one decoded weight row (any
 * stored type is read through cce_linear_rows, the plain decoder). */
static void ref_linear(const cce_linear *l, const float *x, float *y, float *tmp_rank, float *row) {
    if (l->w) {
        for (int o = 0; o < l->out; o++) {
            cce_linear_rows(l, o, 1, row);
            double s = 0;
            for (int i = 0; i < l->in; i++) s += (double)row[i] * x[i];
            y[o] = (float)s;
        }
    } else {
        for (int r = 0; r < l->rank; r++) {
            double s = 0;
            for (int i = 0; i < l->in; i++) s += (double)l->v[(size_t)r * l->in + i] * x[i];
            tmp_rank[r] = (float)s;
        }
        for (int o = 0; o < l->out; o++) {
            double s = 0;
            for (int r = 0; r < l->rank; r++) s += (double)l->u[(size_t)o * l->rank + r] * tmp_rank[r];
            y[o] = (float)s;
        }
    }
    if (l->b)
        for (int o = 0; o < l->out; o++) y[o] += l->b[o];
}

/* out (dim) = norm(x) for one token: RMSNorm (Llama) or LayerNorm (GPT-2); bias if given. */
static void ref_norm(const cce_model *m, const float *x, const float *w, const float *b, float *out) {
    int d = m->cfg.dim;
    double mean = 0, ss = 0;
    if (m->cfg.arch == CCE_ARCH_GPT2) {
        for (int i = 0; i < d; i++) mean += x[i];
        mean /= d;
    }
    for (int i = 0; i < d; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    double inv = 1.0 / sqrt(ss / d + m->cfg.norm_eps);
    for (int i = 0; i < d; i++) {
        double y = ((double)x[i] - mean) * inv * w[i];
        if (b) y += b[i];
        out[i] = (float)y;
    }
}

/* Rotate one head vector v (hd) for position pos. */
static void ref_rope(const cce_model *m, float *v, int pos) {
    int hd = m->cfg.head_dim;
    for (int j = 0; j < hd / 2; j++) {
        double freq = cce_rope_inv_freq(&m->cfg, j);
        double c = cos(pos * freq), s = sin(pos * freq);
        int i0 = m->cfg.rope_interleaved ? 2 * j : j;
        int i1 = m->cfg.rope_interleaved ? 2 * j + 1 : j + hd / 2;
        double x0 = v[i0], x1 = v[i1];
        v[i0] = (float)(x0 * c - x1 * s);
        v[i1] = (float)(x0 * s + x1 * c);
    }
}

static int ref_max_rank(const cce_layer *l) {
    int r = 1;
    for (int i = 0; i < CCE_LIN_COUNT; i++) {
        const cce_linear *x = cce_layer_lin_c(l, i);
        if (!x->w && x->rank > r) r = x->rank;
    }
    return r;
}

static int ref_tap(cce_tap_fn tap, void *user, int layer, cce_tap_site site, const float *x,
                   int T, int cols) {
    if (!tap) return 0;
    cce_tap t = {.layer = layer, .site = site, .x = x, .rows = T, .cols = cols, .ld = cols,
                 .n_seq = 1, .seq_len = T};
    return tap(user, &t);
}

cce_status cce_ref_forward(const cce_model *m, const int *ids, int T, float *logits,
                           cce_tap_fn tap, void *user, cce_err *err) {
    const cce_config *c = &m->cfg;
    int d = c->dim, hd = c->head_dim, gpt2 = c->arch == CCE_ARCH_GPT2;
    if (T <= 0 || (gpt2 && T > c->seq_len))
        return cce_err_set(err, CCE_EINVAL, "forward_ref: sequence length %d out of range", T);
    if (!gpt2 && hd % 2)
        return cce_err_set(err, CCE_EUNSUPPORTED, "forward_ref: RoPE needs an even head_dim, got %d", hd);
    if (!m->tok_emb.w || !m->lm_head.w)
        return cce_err_set(err, CCE_EINVAL, "forward_ref: model has no embedding or output head");
    int maxq = 1, maxh = 1, maxr = 1, maxin = d;
    for (int li = 0; li < c->n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        cce_status s = cce_layer_check(m, li, "forward_ref", err);
        if (s) return CCE_EINVAL;
        if (l->n_heads * hd > maxq) maxq = l->n_heads * hd;
        if (l->n_kv_heads * hd > maxq) maxq = l->n_kv_heads * hd;
        if (l->hidden > maxh) maxh = l->hidden;
        if (ref_max_rank(l) > maxr) maxr = ref_max_rank(l);
        if (l->n_heads * hd > maxin) maxin = l->n_heads * hd;
        if (l->hidden > maxin) maxin = l->hidden;
    }
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return cce_err_set(err, CCE_EINVAL, "forward_ref: token %d at position %d outside vocabulary (%d)",
                               ids[t], t, c->vocab_size);

    cce_status st = CCE_OK;
    size_t Td = (size_t)T * d;
    float *h = cce_alloc(Td, sizeof(float));              // (T, dim) residual stream
    float *xn = cce_alloc(Td, sizeof(float));             // (T, dim) normalised input
    float *ao = cce_alloc(Td, sizeof(float));             // (T, dim) attention / FFN output
    float *q = cce_alloc((size_t)T * maxq, sizeof(float));   // (T, n_heads*hd)
    float *k = cce_alloc((size_t)T * maxq, sizeof(float));   // (T, n_kv_heads*hd)
    float *v = cce_alloc((size_t)T * maxq, sizeof(float));   // (T, n_kv_heads*hd)
    float *heads = cce_alloc((size_t)T * maxq, sizeof(float)); // (T, n_heads*hd)
    float *act = cce_alloc((size_t)T * maxh, sizeof(float)); // (T, hidden)
    float *up = cce_alloc((size_t)maxh, sizeof(float));      // (hidden)
    float *rk = cce_alloc((size_t)maxr, sizeof(float));      // (rank)
    double *p = cce_alloc((size_t)T, sizeof(double));        // (T) attention weights
    float *row = cce_alloc((size_t)maxin, sizeof(float));    // (max in) one decoded weight row
    if (!h || !xn || !ao || !q || !k || !v || !heads || !act || !up || !rk || !p || !row) {
        st = cce_err_set(err, CCE_ENOMEM, "forward_ref: out of memory for %d tokens", T);
        goto cleanup;
    }

    for (int t = 0; t < T; t++) {
        cce_linear_rows(&m->tok_emb, ids[t], 1, h + (size_t)t * d);
        if (m->pos_emb)
            for (int i = 0; i < d; i++) h[(size_t)t * d + i] += m->pos_emb[(size_t)t * d + i];
    }

    for (int li = 0; li < c->n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) {
            if (ref_tap(tap, user, li, CCE_TAP_BLOCK_OUT, h, T, d)) goto cancel;
            continue;
        }
        int qd = l->n_heads * hd, kvd = l->n_kv_heads * hd;
        /* attention (absent without heads) */
        for (int t = 0; t < T && l->n_heads > 0; t++) {
            float *x = xn + (size_t)t * d;
            ref_norm(m, h + (size_t)t * d, l->attn_norm, l->attn_norm_b, x);
            float *qt = q + (size_t)t * qd, *kt = k + (size_t)t * kvd, *vt = v + (size_t)t * kvd;
            ref_linear(&l->wq, x, qt, rk, row);
            ref_linear(&l->wk, x, kt, rk, row);
            ref_linear(&l->wv, x, vt, rk, row);
            if (!gpt2) {
                for (int hh = 0; hh < l->n_heads; hh++) ref_rope(m, qt + hh * hd, t);
                for (int hh = 0; hh < l->n_kv_heads; hh++) ref_rope(m, kt + hh * hd, t);
            }
            for (int hh = 0; hh < l->n_heads; hh++) {
                int g = cce_layer_kv_of(l, hh);
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    double dot = 0;
                    for (int i = 0; i < hd; i++)
                        dot += (double)qt[hh * hd + i] * k[(size_t)s * kvd + g * hd + i];
                    p[s] = dot / sqrt((double)hd);
                    if (p[s] > mx) mx = p[s];
                }
                for (int s = 0; s <= t; s++) { p[s] = exp(p[s] - mx); sum += p[s]; }
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++) o += p[s] / sum * v[(size_t)s * kvd + g * hd + i];
                    heads[(size_t)t * qd + hh * hd + i] = (float)o;
                }
            }
            ref_linear(&l->wo, heads + (size_t)t * qd, ao + (size_t)t * d, rk, row);
        }
        if (l->n_heads > 0) {
            if (ref_tap(tap, user, li, CCE_TAP_ATTN_IN, xn, T, d) ||
                ref_tap(tap, user, li, CCE_TAP_HEADS, heads, T, qd) ||
                ref_tap(tap, user, li, CCE_TAP_ATTN_OUT, ao, T, d))
                goto cancel;
            for (size_t i = 0; i < Td; i++) h[i] += ao[i];
        }
        /* feed-forward (absent without hidden units) */
        for (int t = 0; t < T && l->hidden > 0; t++) {
            float *x = xn + (size_t)t * d, *a = act + (size_t)t * l->hidden;
            ref_norm(m, h + (size_t)t * d, l->ffn_norm, l->ffn_norm_b, x);
            ref_linear(&l->w1, x, a, rk, row);
            if (gpt2) {
                for (int i = 0; i < l->hidden; i++) {
                    double z = a[i];
                    a[i] = (float)(0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z))));
                }
            } else {
                ref_linear(&l->w3, x, up, rk, row);
                for (int i = 0; i < l->hidden; i++) {
                    double z = a[i];
                    a[i] = (float)(z / (1.0 + exp(-z)) * up[i]);
                }
            }
            ref_linear(&l->w2, a, ao + (size_t)t * d, rk, row);
        }
        if (l->hidden > 0) {
            for (size_t i = 0; i < Td; i++) h[i] += ao[i];
            if (ref_tap(tap, user, li, CCE_TAP_FFN_IN, xn, T, d) ||
                ref_tap(tap, user, li, CCE_TAP_FFN_ACT, act, T, l->hidden))
                goto cancel;
        }
        if (ref_tap(tap, user, li, CCE_TAP_BLOCK_OUT, h, T, d)) goto cancel;
    }

    for (int t = 0; t < T; t++) {
        ref_norm(m, h + (size_t)t * d, m->final_norm, m->final_norm_b, xn);
        ref_linear(&m->lm_head, xn, logits + (size_t)t * c->vocab_size, rk, row);
    }
    goto cleanup;
cancel:
    st = cce_err_set(err, CCE_ECANCEL, "forward_ref: cancelled by a tap");
cleanup:
    cce_free(h); cce_free(xn); cce_free(ao); cce_free(q); cce_free(k); cce_free(v);
    cce_free(heads); cce_free(act); cce_free(up); cce_free(rk); cce_free(p); cce_free(row);
    return st;
}
