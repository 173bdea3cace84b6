/*
 * plan.c — the plan as data: knobs, encoding options, lifetime, and the derivation of what each
 * block keeps (shapes and exact parameter counts). The planner that fills a plan from cost
 * curves is planner.c; the JSON reader and writer are plan_io.c.
 *
 * A plan's decisions are indices into the *source* model's layers (query heads, neurons), so a
 * plan made for a model applies to that model only; cce_plan_finish checks them against it and
 * derives everything else (kept lists, new head→KV map, shapes, counts) in plan_kept_of, which
 * the encoder uses too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analysis.h"
#include "plan.h"
#include "plan_kept.h"
#include "util.h"

/* ---------------------------------------------------------------- knobs and options */

const char *const cce_knob_names[6] = {"alpha", "beta", "gamma", "eps", "tau", "target"};

void cce_knobs_default(cce_knobs *k) {
    k->alpha = 1.0;
    k->beta = 0.0;
    k->gamma = 0.0;
    k->eps = 1e-3;
    k->tau = 1e-2;
    k->target = 0.2;
}

static double *knob_slot(cce_knobs *k, const char *name) {
    double *slots[6] = {&k->alpha, &k->beta, &k->gamma, &k->eps, &k->tau, &k->target};
    for (int i = 0; i < 6; i++)
        if (!strcmp(name, cce_knob_names[i])) return slots[i];
    return NULL;
}

cce_status cce_knobs_check(const cce_knobs *k, const char *what, cce_err *err) {
    const double v[6] = {k->alpha, k->beta, k->gamma, k->eps, k->tau, k->target};
    const double lo[6] = {0, 0, 0, 0, 0, 0}, hi[6] = {1e6, 1e6, 1e6, 0.999999, 0.999999, 0.95};
    for (int i = 0; i < 6; i++)
        if (!(v[i] >= lo[i] && v[i] <= hi[i]))
            return cce_err_set(err, CCE_EINVAL, "%s: knob %s = %g out of range [%g, %g]", what ? what : "plan",
                               cce_knob_names[i], v[i], lo[i], hi[i]);
    if (k->alpha + k->beta + k->gamma <= 0)
        return cce_err_set(err, CCE_EINVAL, "%s: alpha, beta and gamma are all 0; nothing to minimise",
                           what ? what : "plan");
    return CCE_OK;
}

cce_status cce_knobs_set(cce_knobs *k, const char *name, double value, cce_err *err) {
    double *slot = knob_slot(k, name);
    if (!slot)
        return cce_err_set(err, CCE_EINVAL, "unknown knob '%s' (alpha beta gamma eps tau target)", name);
    cce_knobs t = *k;
    *knob_slot(&t, name) = value;
    cce_status s = cce_knobs_check(&t, "set", err);
    if (s) return s;
    *slot = value;
    return CCE_OK;
}

void cce_encode_opts_default(cce_encode_opts *o) {
    memset(o, 0, sizeof *o);
    o->redistribute = CCE_REDIST_LSQ;
    o->ridge = 1e-3;
    o->intercept = 1;
    o->refit_inputs = 1;
    o->refit_all = 1;
    o->lowrank = CCE_LOWRANK_WHITENED;
    o->tokens = 8192;
    o->seq_len = 0;
    o->seed = 1;
}

const char *cce_redistribute_name(cce_redistribute r) {
    switch (r) {
    case CCE_REDIST_NONE: return "none";
    case CCE_REDIST_LSQ: return "lsq";
    case CCE_REDIST_BIAS: return "bias";
    }
    return "?";
}

/* ---------------------------------------------------------------- lifetime */

cce_status cce_plan_init(cce_plan *p, const cce_model *m, cce_err *err) {
    memset(p, 0, sizeof *p);
    snprintf(p->method, sizeof p->method, "cce");
    cce_knobs_default(&p->knobs);
    cce_encode_opts_default(&p->enc);
    /* the refit improves with calibration tokens (measured: stories260K at 20 %: 8k 7.19, 32k 6.95,
     * 64k 6.90 ppl); its cost grows with them and with the model, so small models get more */
    if (cce_model_params(m).non_embedding <= 100000000) p->enc.tokens = 32768;
    p->n_blocks = m->cfg.n_layers;
    p->blocks = cce_alloc_zero((size_t)p->n_blocks, sizeof *p->blocks);
    if (!p->blocks) return cce_err_set(err, CCE_ENOMEM, "plan: cannot allocate %d blocks", p->n_blocks);
    for (int l = 0; l < p->n_blocks; l++) p->blocks[l].block = l;
    return cce_plan_finish(p, m, err);
}

static void block_plan_clear(cce_block_plan *b) {
    cce_free(b->heads_removed);
    cce_free(b->neurons_removed);
    b->heads_removed = b->neurons_removed = NULL;
}

void cce_plan_free(cce_plan *p) {
    if (!p) return;
    for (int l = 0; p->blocks && l < p->n_blocks; l++) block_plan_clear(&p->blocks[l]);
    cce_free(p->blocks);
    cce_free(p->pins);
    cce_free(p->forces);
    cce_free(p->block_scale);
    memset(p, 0, sizeof *p);
}

static int *dup_ints(const int *a, int n) {
    if (n <= 0) return NULL;
    int *b = cce_alloc((size_t)n, sizeof(int));
    if (b) memcpy(b, a, (size_t)n * sizeof(int));
    return b;
}

cce_status cce_plan_copy(cce_plan *dst, const cce_plan *src, cce_err *err) {
    *dst = *src;
    dst->blocks = cce_alloc_zero((size_t)(src->n_blocks > 0 ? src->n_blocks : 1), sizeof *dst->blocks);
    dst->pins = src->n_pins ? cce_alloc((size_t)src->n_pins, sizeof(cce_pin)) : NULL;
    dst->forces = src->n_forces ? cce_alloc((size_t)src->n_forces, sizeof(cce_pin)) : NULL;
    dst->block_scale = src->block_scale ? cce_alloc((size_t)src->n_blocks * 2, sizeof(double)) : NULL;
    int ok = dst->blocks && (!src->n_pins || dst->pins) && (!src->n_forces || dst->forces) &&
             (!src->block_scale || dst->block_scale);
    if (ok && src->block_scale) memcpy(dst->block_scale, src->block_scale, (size_t)src->n_blocks * 2 * sizeof(double));
    for (int l = 0; ok && l < src->n_blocks; l++) {
        const cce_block_plan *s = &src->blocks[l];
        cce_block_plan *d = &dst->blocks[l];
        *d = *s;
        d->heads_removed = dup_ints(s->heads_removed, s->n_heads_removed);
        d->neurons_removed = dup_ints(s->neurons_removed, s->n_neurons_removed);
        ok = (!s->n_heads_removed || d->heads_removed) && (!s->n_neurons_removed || d->neurons_removed);
    }
    if (ok && src->n_pins) memcpy(dst->pins, src->pins, (size_t)src->n_pins * sizeof(cce_pin));
    if (ok && src->n_forces) memcpy(dst->forces, src->forces, (size_t)src->n_forces * sizeof(cce_pin));
    if (!ok) {
        if (dst->blocks)
            for (int l = 0; l < src->n_blocks; l++) block_plan_clear(&dst->blocks[l]);
        cce_free(dst->blocks);
        cce_free(dst->pins);
        cce_free(dst->forces);
        cce_free(dst->block_scale);
        memset(dst, 0, sizeof *dst);
        return cce_err_set(err, CCE_ENOMEM, "plan: out of memory copying a plan");
    }
    return CCE_OK;
}

/* ---------------------------------------------------------------- what a block keeps */

void plan_kept_free(plan_kept *k) {
    cce_free(k->heads);
    cce_free(k->kv);
    cce_free(k->head_kv);
    cce_free(k->neurons);
    memset(k, 0, sizeof *k);
}

/* Sublayer position q = 2·layer + ffn: present in the source, and kept by the plan. */
static int pos_exists(const cce_model *m, int q) {
    const cce_layer *L = &m->layers[q / 2];
    return !L->dropped && (q % 2 ? L->hidden > 0 : L->n_heads > 0);
}
static int pos_kept(const cce_plan *p, const cce_model *m, int q) {
    const cce_block_plan *b = &p->blocks[q / 2];
    return pos_exists(m, q) && !b->drop && !(q % 2 ? b->drop_ffn : b->drop_attn);
}

int plan_block_refits(const cce_plan *p, const cce_model *m, int l) {
    const cce_block_plan *bp = &p->blocks[l];
    const cce_encode_opts *enc = &p->enc;
    if (m->layers[l].dropped) return 0;
    int any = bp->drop || bp->drop_attn || bp->drop_ffn || bp->n_heads_removed || bp->n_neurons_removed;
    for (int k = 0; k < CCE_LIN_COUNT; k++) any |= bp->rank[k] > 0;
    if (any) return 1;
    if (enc->redistribute != CCE_REDIST_LSQ) return 0;
    if (enc->refit_all) return 1;
    int last = pos_kept(p, m, 2 * l + 1) ? 2 * l + 1 : pos_kept(p, m, 2 * l) ? 2 * l : -1;
    if (last < 0) return 0;
    for (int q = last + 1; q < 2 * p->n_blocks && !pos_kept(p, m, q); q++)
        if (pos_exists(m, q)) return 1;   // a dropped sublayer follows: folded into this block
    return 0;
}

static int int_cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Sort and deduplicate a[0..*n); -1 when a value is outside [0, hi). Indices are bounded by a
 * layer's width, so a mark per index sorts in O(n + hi) (the planner calls this on every
 * re-plan); qsort for very wide layers. */
static int sort_unique(int *a, int *n, int hi) {
    if (*n <= 0) return 0;
    for (int i = 0; i < *n; i++)
        if (a[i] < 0 || a[i] >= hi) return -1;
    unsigned char *mark = hi <= (1 << 22) ? cce_alloc_zero((size_t)hi, 1) : NULL;
    if (mark) {
        for (int i = 0; i < *n; i++) mark[a[i]] = 1;
        int w = 0;
        for (int v = 0; v < hi; v++)
            if (mark[v]) a[w++] = v;
        *n = w;
        cce_free(mark);
        return 0;
    }
    qsort(a, (size_t)*n, sizeof(int), int_cmp);
    int w = 0;
    for (int i = 0; i < *n; i++)
        if (w == 0 || a[w - 1] != a[i]) a[w++] = a[i];
    *n = w;
    return 0;
}

/* Does a rank r save parameters for an (out, in) matrix? */
static int rank_saves(int r, int out, int in) {
    return r > 0 && (int64_t)r * (out + in) < (int64_t)out * in;
}

cce_status plan_kept_of(const cce_model *m, const cce_block_plan *bp, const cce_encode_opts *enc, int refits,
                        plan_kept *k, cce_err *err) {
    memset(k, 0, sizeof *k);
    const cce_layer *L = &m->layers[bp->block];
    const cce_config *c = &m->cfg;
    int hd = c->head_dim, d = c->dim;
    if (L->dropped || bp->drop) return CCE_OK;
    /* attention: kept query heads, the KV heads they read, and the compacted map */
    if (L->n_heads > 0 && !bp->drop_attn) {
        k->heads = cce_alloc((size_t)L->n_heads, sizeof(int));
        k->kv = cce_alloc((size_t)L->n_kv_heads, sizeof(int));
        int *newkv = cce_alloc((size_t)L->n_kv_heads, sizeof(int));   // source KV head -> new index, or -1
        if (!k->heads || !k->kv || !newkv) {
            cce_free(newkv);
            plan_kept_free(k);
            return cce_err_set(err, CCE_ENOMEM, "plan: out of memory");
        }
        for (int h = 0, r = 0; h < L->n_heads; h++) {
            while (r < bp->n_heads_removed && bp->heads_removed[r] < h) r++;
            if (r < bp->n_heads_removed && bp->heads_removed[r] == h) continue;
            k->heads[k->n_heads++] = h;
        }
        for (int g = 0; g < L->n_kv_heads; g++) newkv[g] = -1;
        for (int i = 0; i < k->n_heads; i++) newkv[cce_layer_kv_of(L, k->heads[i])] = 0;
        for (int g = 0; g < L->n_kv_heads; g++)
            if (newkv[g] == 0) {
                newkv[g] = k->n_kv;
                k->kv[k->n_kv++] = g;
            }
        if (k->n_heads > 0) {
            k->head_kv = cce_alloc((size_t)k->n_heads, sizeof(int));
            if (!k->head_kv) {
                cce_free(newkv);
                plan_kept_free(k);
                return cce_err_set(err, CCE_ENOMEM, "plan: out of memory");
            }
            int deflt = k->n_heads % k->n_kv == 0;
            for (int i = 0; i < k->n_heads; i++) {
                k->head_kv[i] = newkv[cce_layer_kv_of(L, k->heads[i])];
                deflt &= k->head_kv[i] == i / (k->n_heads / k->n_kv);
            }
            if (deflt) {
                cce_free(k->head_kv);
                k->head_kv = NULL;
            }
        }
        cce_free(newkv);
        k->attn = k->n_heads > 0;
    }
    /* feed-forward: kept neurons */
    if (L->hidden > 0 && !bp->drop_ffn) {
        k->neurons = cce_alloc((size_t)L->hidden, sizeof(int));
        if (!k->neurons) {
            plan_kept_free(k);
            return cce_err_set(err, CCE_ENOMEM, "plan: out of memory");
        }
        for (int i = 0, r = 0; i < L->hidden; i++) {
            while (r < bp->n_neurons_removed && bp->neurons_removed[r] < i) r++;
            if (r < bp->n_neurons_removed && bp->neurons_removed[r] == i) continue;
            k->neurons[k->hidden++] = i;
        }
        k->ffn = k->hidden > 0;
    }
    /* ranks at the kept shapes; a rank that does not save parameters is dense */
    int qd = k->n_heads * hd, kvd = k->n_kv * hd;
    int shp[CCE_LIN_COUNT][2] = {{qd, d}, {kvd, d}, {kvd, d}, {d, qd}, {k->hidden, d}, {k->hidden, d}, {d, k->hidden}};
    for (int i = 0; i < CCE_LIN_COUNT; i++) {
        int exists = (i < CCE_LIN_W1 ? k->attn : k->ffn) && cce_linear_present(cce_layer_lin_c(L, i));
        k->rank[i] = exists && rank_saves(bp->rank[i], shp[i][0], shp[i][1]) ? bp->rank[i] : 0;
    }
    int adds = refits && ((enc->redistribute == CCE_REDIST_LSQ && enc->intercept) ||
                           enc->redistribute == CCE_REDIST_BIAS);
    k->out_bias[0] = k->attn && (L->wo.b || (adds && (enc->redistribute != CCE_REDIST_BIAS || bp->n_heads_removed)));
    k->out_bias[1] = k->ffn && (L->w2.b || (adds && (enc->redistribute != CCE_REDIST_BIAS || bp->n_neurons_removed)));
    return CCE_OK;
}

int64_t plan_kept_params(const cce_model *m, int layer, const plan_kept *k) {
    const cce_layer *L = &m->layers[layer];
    int64_t d = m->cfg.dim, hd = m->cfg.head_dim, n = 0;
    int64_t qd = k->n_heads * hd, kvd = k->n_kv * hd, h = k->hidden;
    int64_t shp[CCE_LIN_COUNT][2] = {{qd, d}, {kvd, d}, {kvd, d}, {d, qd}, {h, d}, {h, d}, {d, h}};
    if (k->attn) n += d + (L->attn_norm_b ? d : 0);
    if (k->ffn) n += d + (L->ffn_norm_b ? d : 0);
    for (int i = 0; i < CCE_LIN_COUNT; i++) {
        const cce_linear *src = cce_layer_lin_c(L, i);
        int exists = (i < CCE_LIN_W1 ? k->attn : k->ffn) && cce_linear_present(src);
        if (!exists) continue;
        n += k->rank[i] ? k->rank[i] * (shp[i][0] + shp[i][1]) : shp[i][0] * shp[i][1];
        int bias = i == CCE_LIN_WO ? k->out_bias[0] : i == CCE_LIN_W2 ? k->out_bias[1] : src->b != NULL;
        if (bias) n += shp[i][0];
    }
    return n;
}

cce_status cce_plan_finish(cce_plan *p, const cce_model *m, cce_err *err) {
    if (p->n_blocks != m->cfg.n_layers)
        return cce_err_set(err, CCE_EINVAL, "plan: %d blocks, the model has %d", p->n_blocks, m->cfg.n_layers);
    p->params_before = p->params_after = 0;
    for (int l = 0; l < p->n_blocks; l++) {
        cce_block_plan *b = &p->blocks[l];
        const cce_layer *L = &m->layers[l];
        if (b->block != l) return cce_err_set(err, CCE_EINVAL, "plan: blocks[%d].block is %d", l, b->block);
        if (sort_unique(b->heads_removed, &b->n_heads_removed, L->dropped ? 0 : L->n_heads))
            return cce_err_set(err, CCE_EINVAL, "plan: block %d: a removed head is outside 0..%d", l,
                               (L->dropped ? 0 : L->n_heads) - 1);
        if (sort_unique(b->neurons_removed, &b->n_neurons_removed, L->dropped ? 0 : L->hidden))
            return cce_err_set(err, CCE_EINVAL, "plan: block %d: a removed neuron is outside 0..%d", l,
                               (L->dropped ? 0 : L->hidden) - 1);
        for (int k = 0; k < CCE_LIN_COUNT; k++) {
            const cce_linear *x = cce_layer_lin_c(L, k);
            int full = x->out < x->in ? x->out : x->in;
            if (b->rank[k] < 0 || b->rank[k] > full)
                return cce_err_set(err, CCE_EINVAL, "plan: block %d: rank of %s is %d, outside 0..%d", l,
                                   cce_lin_names[k], b->rank[k], full);
        }
        /* removing everything of a sublayer is dropping it */
        if (!L->dropped && L->n_heads > 0 && b->n_heads_removed == L->n_heads) b->drop_attn = 1;
        if (!L->dropped && L->hidden > 0 && b->n_neurons_removed == L->hidden) b->drop_ffn = 1;
        if (!L->dropped && (b->drop_attn || L->n_heads == 0) && (b->drop_ffn || L->hidden == 0)) b->drop = 1;
        /* what a drop removes needs no other decision: keep the plan canonical */
        if (b->drop) b->drop_attn = b->drop_ffn = 0;
        if (b->drop || b->drop_attn) {
            for (int k = CCE_LIN_WQ; k <= CCE_LIN_WO; k++) b->rank[k] = 0;
            cce_free(b->heads_removed);
            b->heads_removed = NULL;
            b->n_heads_removed = 0;
        }
        if (b->drop || b->drop_ffn) {
            for (int k = CCE_LIN_W1; k <= CCE_LIN_W2; k++) b->rank[k] = 0;
            cce_free(b->neurons_removed);
            b->neurons_removed = NULL;
            b->n_neurons_removed = 0;
        }
    }
    for (int l = 0; l < p->n_blocks; l++) {   // shapes and counts, once every drop flag is final
        cce_block_plan *b = &p->blocks[l];
        plan_kept k;
        cce_status s = plan_kept_of(m, b, &p->enc, plan_block_refits(p, m, l), &k, err);
        if (s) return s;
        b->n_heads = k.n_heads;
        b->n_kv_heads = k.n_kv;
        b->hidden = k.hidden;
        for (int q = 0; q < CCE_LIN_COUNT; q++) b->rank[q] = k.rank[q];   // a rank that saves nothing is dense
        b->params_before = cce_layer_params(m, l);
        b->params_after = plan_kept_params(m, l, &k);
        plan_kept_free(&k);
        p->params_before += b->params_before;
        p->params_after += b->params_after;
    }
    int64_t rest = m->cfg.dim + (m->final_norm_b ? m->cfg.dim : 0);   // the final norm
    p->params_before += rest;
    p->params_after += rest;
    p->removed_fraction = p->params_before > 0 ? 1.0 - (double)p->params_after / (double)p->params_before : 0;
    return CCE_OK;
}

/* ---------------------------------------------------------------- identities */

cce_status cce_model_id_of(const cce_model *m, cce_model_id *id, cce_err *err) {
    memset(id, 0, sizeof *id);
    const cce_config *c = &m->cfg;
    snprintf(id->path, sizeof id->path, "%s", m->path ? m->path : "");
    snprintf(id->arch, sizeof id->arch, "%s", cce_arch_name(c->arch));
    id->dim = c->dim;
    id->n_layers = c->n_layers;
    id->n_heads = c->n_heads;
    id->n_kv_heads = c->n_kv_heads;
    id->head_dim = c->head_dim;
    id->hidden_dim = c->hidden_dim;
    id->vocab_size = c->vocab_size;
    id->params_non_embedding = cce_model_params(m).non_embedding;
    if (!m->path) return cce_err_set(err, CCE_EINVAL, "model has no path to identify it by");
    return cce_model_sha256(m->path, id->sha256, err);
}
