/*
 * search.c — the plan search (see include/search.h for the candidates).
 *
 * The dev set is made of whole calibration windows that neither the analysis (p->calib: its
 * tokens, seq_len and seed) nor the encoder (p->enc) draws, chosen with the search's own seed,
 * so a candidate is scored on tokens that shaped neither its selection nor its weights.
 * Scores are mean NLL (nats per predicted token) by the evaluation protocol (eval.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "analysis.h"
#include "calib.h"
#include "eval.h"
#include "search.h"
#include "util.h"

void cce_search_opts_default(cce_search_opts *o) {
    o->evaluations = 1;
    o->dev_tokens = 32768;
    o->dev_seed = 7;
}

int cce_search_auto(const cce_model *m) {
    return cce_model_params(m).non_embedding <= 5000000 ? 2 * m->cfg.n_layers + 6 : 0;
}

typedef struct {
    const cce_model *m;
    const cce_block_result *const *blocks;
    const int *ids;
    size_t n;
    int *dev;              // (n_dev * seq_len)
    int n_dev, seq_len;
    cce_encode_progress_fn progress;
    void *user;
    int done, total;
} srch;

/* Mark the windows calib_windows(seed) draws for a request of tokens of length seq_len. */
static cce_status mark_windows(size_t n, int seq_len, long tokens, uint64_t seed, unsigned char *used, cce_err *err) {
    size_t windows = n / (size_t)seq_len;
    long want = tokens / seq_len;
    if (windows == 0 || want < 1) return CCE_OK;
    int k = (size_t)want < windows ? (int)want : (int)windows;
    size_t *starts = cce_alloc((size_t)k, sizeof(size_t));
    if (!starts) return cce_err_set(err, CCE_ENOMEM, "search: out of memory");
    cce_status s = cce_calib_windows(n, seq_len, k, seed, starts, err);
    for (int i = 0; !s && i < k; i++) used[starts[i] / (size_t)seq_len] = 1;
    cce_free(starts);
    return s;
}

static cce_status dev_set(srch *S, const cce_plan *p, const cce_search_opts *o, cce_err *err) {
    int sl = S->seq_len;
    size_t windows = S->n / (size_t)sl;
    unsigned char *used = cce_alloc_zero(windows ? windows : 1, 1);
    if (!used) return cce_err_set(err, CCE_ENOMEM, "search: out of memory");
    cce_status s = CCE_OK;
    /* the analysis's windows (its own seq_len) mark every window of ours they overlap */
    if (p->calib.seq_len >= 2 && p->calib.tokens > 0) {
        size_t aw = S->n / (size_t)p->calib.seq_len;
        unsigned char *au = cce_alloc_zero(aw ? aw : 1, 1);
        if (!au) s = cce_err_set(err, CCE_ENOMEM, "search: out of memory");
        if (!s) s = mark_windows(S->n, p->calib.seq_len, p->calib.tokens, p->calib.seed, au, err);
        for (size_t w = 0; !s && w < aw; w++)
            if (au[w]) {
                size_t a0 = w * (size_t)p->calib.seq_len, a1 = a0 + (size_t)p->calib.seq_len;
                for (size_t v = a0 / (size_t)sl; v < windows && v * (size_t)sl < a1; v++) used[v] = 1;
            }
        cce_free(au);
    }
    if (!s) s = mark_windows(S->n, sl, p->enc.tokens, p->enc.seed, used, err);
    size_t free_w = 0;
    for (size_t w = 0; w < windows; w++) free_w += !used[w];
    long want = o->dev_tokens / sl;
    if (!s && (free_w == 0 || want < 1))
        s = cce_err_set(err, CCE_EINVAL, "search: the calibration text has no window left for a dev set "
                                         "(%zu windows of %d, all used by the analysis and the encoder)", windows, sl);
    if (s) {
        cce_free(used);
        return s;
    }
    S->n_dev = (size_t)want < free_w ? (int)want : (int)free_w;
    size_t *pool = cce_alloc(free_w, sizeof(size_t));
    S->dev = cce_alloc((size_t)S->n_dev * sl, sizeof(int));
    if (!pool || !S->dev) {
        cce_free(used);
        cce_free(pool);
        return cce_err_set(err, CCE_ENOMEM, "search: out of memory");
    }
    size_t q = 0;
    for (size_t w = 0; w < windows; w++)
        if (!used[w]) pool[q++] = w;
    cce_rng r;
    cce_rng_seed(&r, o->dev_seed);
    for (int i = 0; i < S->n_dev; i++) {   // partial Fisher-Yates, then in stream order
        size_t k = (size_t)i + (size_t)(cce_rng_u64(&r) % (uint64_t)(free_w - (size_t)i));
        size_t t = pool[i]; pool[i] = pool[k]; pool[k] = t;
    }
    for (int i = 1; i < S->n_dev; i++)
        for (int k = i; k > 0 && pool[k - 1] > pool[k]; k--) { size_t t = pool[k]; pool[k] = pool[k - 1]; pool[k - 1] = t; }
    for (int i = 0; i < S->n_dev; i++) memcpy(S->dev + (size_t)i * sl, S->ids + pool[i] * (size_t)sl, (size_t)sl * sizeof(int));
    cce_free(pool);
    cce_free(used);
    return CCE_OK;
}

static cce_status score_model(srch *S, const cce_model *c, double *nll, cce_err *err) {
    cce_eval_result r;
    cce_status s = cce_eval_ids(c, S->dev, (size_t)S->n_dev * S->seq_len, S->seq_len, 0, NULL, NULL, &r, err);
    if (!s) *nll = r.loss;
    return s;
}

/* Encode q and score it. */
static cce_status score_plan(srch *S, const cce_plan *q, double *nll, cce_err *err) {
    if (S->progress && S->progress(S->user, S->done, S->total, "search"))
        return cce_err_set(err, CCE_ECANCEL, "search: cancelled after %d candidates", S->done);
    cce_model *c = NULL;
    cce_status s = cce_encode(S->m, q, S->ids, S->n, NULL, NULL, &c, err);
    if (!s) s = score_model(S, c, nll, err);
    cce_model_free(c);
    S->done++;
    return s;
}

/* A candidate may only win when it removes at least what the plan it refines removes (extreme
 * scales can leave the planner short of the target). */
static int meets_budget(const cce_plan *p, const cce_plan *q) {
    return q->params_after <= p->params_after || (p->knobs.target > 0 && q->removed_fraction >= p->knobs.target);
}

/* Rebuild q's decisions from the curves with the sublayer scales sc (2·n_blocks, may be NULL). */
static cce_status replan(srch *S, cce_plan *q, const double *sc, cce_err *err) {
    size_t ns = (size_t)q->n_blocks * 2;
    if (sc) {
        if (!q->block_scale && !(q->block_scale = cce_alloc(ns, sizeof(double))))
            return cce_err_set(err, CCE_ENOMEM, "search: out of memory");
        memcpy(q->block_scale, sc, ns * sizeof(double));
    } else {
        cce_free(q->block_scale);
        q->block_scale = NULL;
    }
    return cce_plan_build_blocks(q, S->m, S->blocks, err);
}

static int is_attn_kind(int k) {
    return k == CCE_CURVE_HEADS || (k >= CCE_CURVE_RANK_WQ && k <= CCE_CURVE_RANK_WO) || k == CCE_CURVE_DROP_ATTN;
}

/* A plan that keeps only sublayer sl (0 attention, 1 FFN) of block b's decisions in p: every
 * other block whole, the other sublayer of b whole, a block drop as a drop of that sublayer. */
static cce_status only_sublayer(const cce_plan *p, int b, int sl, cce_plan *q, const cce_model *m, cce_err *err) {
    cce_status s = cce_plan_copy(q, p, err);
    if (s) return s;
    for (int l = 0; l < q->n_blocks; l++) {
        cce_block_plan *bp = &q->blocks[l];
        if (l == b) {
            int was_drop = bp->drop;
            bp->drop = 0;
            if (sl == 0) {
                cce_free(bp->neurons_removed);
                bp->neurons_removed = NULL;
                bp->n_neurons_removed = 0;
                bp->drop_ffn = 0;
                bp->drop_attn |= was_drop;
            } else {
                cce_free(bp->heads_removed);
                bp->heads_removed = NULL;
                bp->n_heads_removed = 0;
                bp->drop_attn = 0;
                bp->drop_ffn |= was_drop;
            }
            for (int k = 0; k < CCE_LIN_COUNT; k++)
                if ((k < CCE_LIN_W1) != (sl == 0)) bp->rank[k] = 0;
            for (int k = 0; k < CCE_CURVE_COUNT; k++)
                if (k == CCE_CURVE_DROP_BLOCK || is_attn_kind(k) != (sl == 0)) bp->steps[k] = 0;
            if (sl == 0 && was_drop) bp->steps[CCE_CURVE_DROP_ATTN] = 1;
            if (sl == 1 && was_drop) bp->steps[CCE_CURVE_DROP_FFN] = 1;
            continue;
        }
        cce_free(bp->heads_removed);
        cce_free(bp->neurons_removed);
        memset(bp, 0, sizeof *bp);
        bp->block = l;
    }
    return cce_plan_finish(q, m, err);
}

/* Does sublayer sl of block bp change under the plan? */
static int sublayer_changed(const cce_block_plan *bp, int sl) {
    if (bp->drop) return 1;
    if (sl == 0) {
        int any = bp->drop_attn || bp->n_heads_removed;
        for (int k = CCE_LIN_WQ; k <= CCE_LIN_WO; k++) any |= bp->rank[k] > 0;
        return any;
    }
    int any = bp->drop_ffn || bp->n_neurons_removed;
    for (int k = CCE_LIN_W1; k <= CCE_LIN_W2; k++) any |= bp->rank[k] > 0;
    return any;
}

cce_status cce_plan_search(cce_plan *p, const cce_model *m, const struct cce_block_result *const *blocks,
                           const int *ids, size_t n, const cce_search_opts *o, cce_encode_progress_fn progress,
                           void *user, cce_search_result *res, cce_err *err) {
    memset(res, 0, sizeof *res);
    if (o->evaluations < 1) return cce_err_set(err, CCE_EINVAL, "search: %d evaluations", o->evaluations);
    srch S = {.m = m, .blocks = blocks, .ids = ids, .n = n, .progress = progress, .user = user};
    S.seq_len = p->enc.seq_len > 0 ? p->enc.seq_len : p->calib.seq_len > 0 ? p->calib.seq_len
                                                     : (m->cfg.seq_len < 256 ? m->cfg.seq_len : 256);
    int L = p->n_blocks;
    S.total = o->evaluations;
    cce_plan best = {0}, q = {0};
    double *sc = NULL;
    cce_status s = dev_set(&S, p, o, err);
    if (s) return s;
    res->dev_tokens = (long)S.n_dev * S.seq_len;
    if ((s = score_model(&S, m, &res->dense_nll, err))) goto done;
    if ((s = cce_plan_copy(&best, p, err))) goto done;
    double best_nll;
    if ((s = score_plan(&S, &best, &best_nll, err))) goto done;
    res->first_nll = best_nll;
    /* 2: per-sublayer sensitivities at the sublayers' own planned levels */
    int ns = 2 * L, changed = 0;
    for (int b = 0; b < L; b++) changed += sublayer_changed(&p->blocks[b], 0) + sublayer_changed(&p->blocks[b], 1);
    if (!(sc = cce_alloc((size_t)(ns > 0 ? ns : 1), sizeof(double)))) {
        s = cce_err_set(err, CCE_ENOMEM, "search: out of memory");
        goto done;
    }
    for (int i = 0; i < ns; i++) sc[i] = p->block_scale ? p->block_scale[i] : 1.0;
    if (changed > 0 && S.done + changed < o->evaluations) {
        double logsum = 0;
        int nlog = 0;
        unsigned char *measured = cce_alloc_zero((size_t)(ns > 0 ? ns : 1), 1);
        if (!measured) {
            s = cce_err_set(err, CCE_ENOMEM, "search: out of memory");
            goto done;
        }
        for (int i = 0; i < ns && !s; i++) {
            int b = i / 2, sl = i % 2;
            if (!sublayer_changed(&p->blocks[b], sl)) continue;
            double nll;
            if ((s = only_sublayer(p, b, sl, &q, m, err))) break;
            cce_plan_losses(&q, S.blocks);
            double pred = q.blocks[b].L_rec;
            if ((s = score_plan(&S, &q, &nll, err))) break;
            cce_plan_free(&q);
            if (pred <= 0) continue;
            double inc = nll - res->dense_nll;
            if (inc < 1e-6) inc = 1e-6;   // a sublayer that costs nothing measurable is still not free
            sc[i] *= inc / pred;
            logsum += log(sc[i]);
            nlog++;
            measured[i] = 1;
        }
        if (s) {
            cce_free(measured);
            goto done;
        }
        double gm = nlog ? exp(logsum / nlog) : 1.0;
        for (int i = 0; i < ns; i++) sc[i] = measured[i] ? sc[i] / gm : 1.0;   // unmeasured: the typical scale
        cce_free(measured);
        if ((s = cce_plan_copy(&q, p, err)) || (s = replan(&S, &q, sc, err))) goto done;
        double nll;
        if ((s = score_plan(&S, &q, &nll, err))) goto done;
        if (nll < best_nll && meets_budget(p, &q)) {
            best_nll = nll;
            cce_plan_free(&best);
            best = q;
            memset(&q, 0, sizeof q);
        } else {
            cce_plan_free(&q);
        }
    }
    /* 3: coordinate descent on the scales, in factors of 2, from the best so far */
    if (best.block_scale) memcpy(sc, best.block_scale, (size_t)ns * sizeof(double));
    else for (int i = 0; i < ns; i++) sc[i] = 1.0;
    for (int i = 0, stale = 0; S.done < o->evaluations && ns > 0 && stale < ns; i = (i + 1) % ns) {
        int improved = 0;
        for (int dir = 0; dir < 2 && S.done < o->evaluations && !improved; dir++) {
            double keep = sc[i];
            sc[i] = keep * (dir ? 0.5 : 2.0);
            double nll;
            if ((s = cce_plan_copy(&q, p, err)) || (s = replan(&S, &q, sc, err)) || (s = score_plan(&S, &q, &nll, err)))
                goto done;
            if (nll < best_nll && meets_budget(p, &q)) {
                best_nll = nll;
                cce_plan_free(&best);
                best = q;
                memset(&q, 0, sizeof q);
                improved = 1;
            } else {
                cce_plan_free(&q);
                sc[i] = keep;
            }
        }
        stale = improved ? 0 : stale + 1;   // a full cycle without improvement: done
    }
    res->best_nll = best_nll;
    res->evaluated = S.done;
    cce_plan_free(p);
    *p = best;
    memset(&best, 0, sizeof best);
done:
    cce_plan_free(&best);
    cce_plan_free(&q);
    cce_free(sc);
    cce_free(S.dev);
    return s;
}
