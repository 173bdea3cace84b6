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

/* y (out) = W x + b for one token; x (in). */
static void ref_linear(const cce_linear *l, const float *x, float *y, float *tmp_rank) {
    if (l->w) {
        for (int o = 0; o < l->out; o++) {
            double s = 0;
            for (int i = 0; i < l->in; i++) s += (double)l->w[(size_t)o * l->in + i] * x[i];
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
        double freq = pow(m->cfg.rope_theta, -2.0 * j / hd);
        double c = cos(pos * freq), s = sin(pos * freq);
        int i0 = m->cfg.rope_interleaved ? 2 * j : j;
        int i1 = m->cfg.rope_interleaved ? 2 * j + 1 : j + hd / 2;
        double x0 = v[i0], x1 = v[i1];
        v[i0] = (float)(x0 * c - x1 * s);
        v[i1] = (float)(x0 * s + x1 * c);
    }
}

static int ref_kv_head(const cce_layer *l, int h) {
    return l->head_kv ? l->head_kv[h] : h / (l->n_heads / l->n_kv_heads);
}

static int ref_max_rank(const cce_layer *l) {
    const cce_linear *ls[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w1, &l->w2, &l->w3};
    int r = 1;
    for (int i = 0; i < 7; i++) if (!ls[i]->w && ls[i]->rank > r) r = ls[i]->rank;
    return r;
}

/* Shape checks the loops below rely on (memory safety for hand-built models). */
static cce_status ref_check_layer(const cce_model *m, int li, cce_err *err) {
    const cce_layer *l = &m->layers[li];
    int hd = m->cfg.head_dim, d = m->cfg.dim;
    if (l->n_heads <= 0 || l->n_kv_heads <= 0 || l->hidden <= 0 ||
        (!l->head_kv && l->n_heads % l->n_kv_heads))
        return cce_err_set(err, CCE_EINVAL, "forward_ref: layer %d: bad heads %d/%d or hidden %d",
                           li, l->n_heads, l->n_kv_heads, l->hidden);
    if (l->head_kv)
        for (int h = 0; h < l->n_heads; h++)
            if (l->head_kv[h] < 0 || l->head_kv[h] >= l->n_kv_heads)
                return cce_err_set(err, CCE_EINVAL, "forward_ref: layer %d: head_kv[%d] = %d out of range",
                                   li, h, l->head_kv[h]);
    int gpt2 = m->cfg.arch == CCE_ARCH_GPT2;
    struct { const cce_linear *l; int out, in; const char *name; } want[] = {
        {&l->wq, l->n_heads * hd, d, "wq"}, {&l->wk, l->n_kv_heads * hd, d, "wk"},
        {&l->wv, l->n_kv_heads * hd, d, "wv"}, {&l->wo, d, l->n_heads * hd, "wo"},
        {&l->w1, l->hidden, d, "w1"}, {&l->w2, d, l->hidden, "w2"}, {&l->w3, l->hidden, d, "w3"},
    };
    for (int i = 0; i < (gpt2 ? 6 : 7); i++) {
        const cce_linear *x = want[i].l;
        if (x->out != want[i].out || x->in != want[i].in || (!x->w && (x->rank <= 0 || !x->u || !x->v)))
            return cce_err_set(err, CCE_EINVAL, "forward_ref: layer %d: %s is (%d, %d) rank %d, expected (%d, %d)",
                               li, want[i].name, x->out, x->in, x->rank, want[i].out, want[i].in);
    }
    return CCE_OK;
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
    int maxq = 1, maxh = 1, maxr = 1;
    for (int li = 0; li < c->n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) continue;
        cce_status s = ref_check_layer(m, li, err);
        if (s) return s;
        if (l->n_heads * hd > maxq) maxq = l->n_heads * hd;
        if (l->n_kv_heads * hd > maxq) maxq = l->n_kv_heads * hd;
        if (l->hidden > maxh) maxh = l->hidden;
        if (ref_max_rank(l) > maxr) maxr = ref_max_rank(l);
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
    if (!h || !xn || !ao || !q || !k || !v || !heads || !act || !up || !rk || !p) {
        st = cce_err_set(err, CCE_ENOMEM, "forward_ref: out of memory for %d tokens", T);
        goto cleanup;
    }

    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++)
            h[(size_t)t * d + i] = m->tok_emb[(size_t)ids[t] * d + i] +
                                   (m->pos_emb ? m->pos_emb[(size_t)t * d + i] : 0.0f);

    for (int li = 0; li < c->n_layers; li++) {
        const cce_layer *l = &m->layers[li];
        if (l->dropped) {
            if (ref_tap(tap, user, li, CCE_TAP_BLOCK_OUT, h, T, d)) goto cancel;
            continue;
        }
        int qd = l->n_heads * hd, kvd = l->n_kv_heads * hd;
        /* attention */
        for (int t = 0; t < T; t++) {
            float *x = xn + (size_t)t * d;
            ref_norm(m, h + (size_t)t * d, l->attn_norm, l->attn_norm_b, x);
            float *qt = q + (size_t)t * qd, *kt = k + (size_t)t * kvd, *vt = v + (size_t)t * kvd;
            ref_linear(&l->wq, x, qt, rk);
            ref_linear(&l->wk, x, kt, rk);
            ref_linear(&l->wv, x, vt, rk);
            if (!gpt2) {
                for (int hh = 0; hh < l->n_heads; hh++) ref_rope(m, qt + hh * hd, t);
                for (int hh = 0; hh < l->n_kv_heads; hh++) ref_rope(m, kt + hh * hd, t);
            }
            for (int hh = 0; hh < l->n_heads; hh++) {
                int g = ref_kv_head(l, hh);
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
            ref_linear(&l->wo, heads + (size_t)t * qd, ao + (size_t)t * d, rk);
        }
        if (ref_tap(tap, user, li, CCE_TAP_ATTN_IN, xn, T, d) ||
            ref_tap(tap, user, li, CCE_TAP_HEADS, heads, T, qd) ||
            ref_tap(tap, user, li, CCE_TAP_ATTN_OUT, ao, T, d))
            goto cancel;
        for (size_t i = 0; i < Td; i++) h[i] += ao[i];
        /* feed-forward */
        for (int t = 0; t < T; t++) {
            float *x = xn + (size_t)t * d, *a = act + (size_t)t * l->hidden;
            ref_norm(m, h + (size_t)t * d, l->ffn_norm, l->ffn_norm_b, x);
            ref_linear(&l->w1, x, a, rk);
            if (gpt2) {
                for (int i = 0; i < l->hidden; i++) {
                    double z = a[i];
                    a[i] = (float)(0.5 * z * (1.0 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z))));
                }
            } else {
                ref_linear(&l->w3, x, up, rk);
                for (int i = 0; i < l->hidden; i++) {
                    double z = a[i];
                    a[i] = (float)(z / (1.0 + exp(-z)) * up[i]);
                }
            }
            ref_linear(&l->w2, a, ao + (size_t)t * d, rk);
        }
        for (size_t i = 0; i < Td; i++) h[i] += ao[i];
        if (ref_tap(tap, user, li, CCE_TAP_FFN_IN, xn, T, d) ||
            ref_tap(tap, user, li, CCE_TAP_FFN_ACT, act, T, l->hidden) ||
            ref_tap(tap, user, li, CCE_TAP_BLOCK_OUT, h, T, d))
            goto cancel;
    }

    for (int t = 0; t < T; t++) {
        ref_norm(m, h + (size_t)t * d, m->final_norm, m->final_norm_b, xn);
        for (int o = 0; o < c->vocab_size; o++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += (double)m->lm_head[(size_t)o * d + i] * xn[i];
            logits[(size_t)t * c->vocab_size + o] = (float)s;
        }
    }
    goto cleanup;
cancel:
    st = cce_err_set(err, CCE_ECANCEL, "forward_ref: cancelled by a tap");
cleanup:
    cce_free(h); cce_free(xn); cce_free(ao); cce_free(q); cce_free(k); cce_free(v);
    cce_free(heads); cce_free(act); cce_free(up); cce_free(rk); cce_free(p);
    return st;
}
