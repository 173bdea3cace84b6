/*
 * experiments.c — compare, sweep, sensitivity, robustness and classify (the readings are in
 * include/experiments.h).
 *
 * Each driver is the same few steps around the engine's own modules: make the shared inputs
 * once (the CCE analysis job over the calibration batch, the baselines' dense-stream
 * statistics), then per configuration make a plan (cce_xp_plan), encode it (cce_encode, from
 * the same token stream and windows for every method), measure the compressed model
 * (cce_xp_measure), and free it. Nothing is kept between configurations but the rows, so memory
 * stays at one compressed model at a time on top of the source.
 *
 * Progress: the drivers forward every inner callback (analysis steps, baseline statistics,
 * encoding, evaluation windows) to the setup's one callback with a phase that names the method
 * and target, and stop with CCE_ECANCEL as soon as it answers non-zero.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "experiments.h"
#include "encode.h"
#include "eval.h"
#include "forward.h"
#include "search.h"
#include "util.h"

void cce_xp_setup_default(cce_xp_setup *su) {
    memset(su, 0, sizeof *su);
    su->calib_tokens = 8192;
    su->seed = 1;
    cce_analysis_opts_default(&su->analysis);
    cce_encode_opts_default(&su->enc);
    cce_knobs_default(&su->knobs);
    su->decode_tokens = 128;
    su->decode_reps = 3;
}

cce_status cce_xp_setup_model(cce_xp_setup *su, const cce_model *m, cce_err *err) {
    cce_plan p;
    cce_status s = cce_plan_init(&p, m, err);
    if (s) return s;
    su->model = m;
    su->calib_tokens = p.enc.tokens;
    su->enc = p.enc;
    su->knobs = p.knobs;
    cce_plan_free(&p);
    cce_analysis_opts_default(&su->analysis);
    su->search = 0;   // as cce plan: no search unless asked (search.h says why)
    return CCE_OK;
}

static int xp_seq(const cce_model *m, int s) { return s > 0 ? s : (m->cfg.seq_len < 256 ? m->cfg.seq_len : 256); }

/* ---------------------------------------------------------------- progress plumbing */

typedef struct {
    const cce_xp_setup *su;
    char phase[128];
} xp_prog;

static int xp_report(const cce_xp_setup *su, const char *phase, long done, long total) {
    return su->progress ? su->progress(su->user, phase, done, total) : 0;
}
static int xp_eval_cb(void *user, long done, long total) {
    xp_prog *p = user;
    return xp_report(p->su, p->phase, done, total);
}
static int xp_encode_cb(void *user, int done, int total, const char *phase) {
    xp_prog *p = user;
    char buf[192];
    snprintf(buf, sizeof buf, "%s: encode %s", p->phase, phase);
    return xp_report(p->su, buf, done, total);
}
static int xp_bl_cb(void *user, int done, int total, const char *phase) {
    xp_prog *p = user;
    char buf[192];
    snprintf(buf, sizeof buf, "%s: %s", p->phase, phase);
    return xp_report(p->su, buf, done, total);
}

/* ---------------------------------------------------------------- measuring */

static cce_status xp_measure_named(const cce_model *m, const cce_xp_setup *su, const char *what, cce_xp_row *row,
                                   cce_err *err) {
    int seq = xp_seq(m, su->eval_seq_len);
    for (int e = 0; e < su->n_evals; e++) {
        size_t n = su->evals[e].n;
        if (su->eval_tokens > 0 && (size_t)su->eval_tokens < n) n = (size_t)su->eval_tokens;
        xp_prog pr = {su, ""};
        snprintf(pr.phase, sizeof pr.phase, "%s: eval %d/%d", what, e + 1, su->n_evals);
        cce_eval_result r;
        cce_status s = cce_eval_ids(m, su->evals[e].ids, n, seq, 0, xp_eval_cb, &pr, &r, err);
        if (s) return s;
        row->eval[e] = (cce_xp_eval){r.loss, r.ppl, r.accuracy, r.tokens, r.predictions};
    }
    if (su->decode_tokens > 0) {
        if (xp_report(su, what, 0, 1)) return cce_err_set(err, CCE_ECANCEL, "%s: cancelled", what);
        return cce_decode_speed(m, su->decode_tokens, su->decode_reps > 0 ? su->decode_reps : 1, &row->tokens_per_s, err);
    }
    return CCE_OK;
}

cce_status cce_xp_measure(const cce_model *m, const cce_xp_setup *su, cce_xp_row *row, cce_err *err) {
    return xp_measure_named(m, su, row->method[0] ? row->method : "model", row, err);
}

/* ---------------------------------------------------------------- shared inputs */

int cce_xp_method_known(const char *name) {
    return cce_baseline_parse(name) >= 0 || !strcmp(name, "cce") || !strcmp(name, "cce-none");
}

/* Run the CCE analysis of the setup's batch to the end, progress between steps. */
static cce_status xp_analysis(const cce_xp_setup *su, cce_analysis **out, cce_err *err) {
    cce_analysis_opts ao = su->analysis;
    if (ao.tokens <= 0 || ao.tokens > su->calib_tokens) ao.tokens = su->calib_tokens;   // a prefix of the batch's windows
    ao.seq_len = xp_seq(su->model, su->seq_len);
    ao.seed = su->seed;
    ao.eps = (float)su->knobs.eps;
    ao.tau = (float)su->knobs.tau;
    cce_calib_source src = {.ids = su->calib_ids, .n_ids = su->n_calib};
    cce_analysis *job = NULL;
    cce_status s = cce_analysis_new(su->model, &src, &ao, &job, err);
    while (!s && !cce_analysis_finished(job)) {
        int done, total;
        char phase[96], buf[128];
        cce_analysis_progress(job, &done, &total, phase, sizeof phase);
        snprintf(buf, sizeof buf, "cce analysis: %s", phase);
        if (xp_report(su, buf, done, total)) s = cce_err_set(err, CCE_ECANCEL, "analysis: cancelled");
        else s = cce_analysis_step(job, err);
    }
    if (s) {
        cce_analysis_free(job);
        return s;
    }
    *out = job;
    return CCE_OK;
}

static cce_calib_opts xp_calib_opts(const cce_xp_setup *su) {
    cce_calib_opts o = {.tokens = su->calib_tokens, .seq_len = xp_seq(su->model, su->seq_len), .seed = su->seed};
    return o;
}

/* Plan identities and the batch every method is encoded from. */
static void xp_plan_ids(const cce_xp_setup *su, cce_plan *p) {
    int seq = xp_seq(su->model, su->seq_len);
    size_t windows = su->n_calib / (size_t)seq;
    long want = su->calib_tokens / seq;
    long n_seq = (size_t)want < windows ? want : (long)windows;
    p->model = su->model_id;
    p->calib = su->calib_id;
    p->calib.tokens = n_seq * seq;
    p->calib.seq_len = seq;
    p->calib.seed = su->seed;
    p->enc.tokens = su->calib_tokens;
    p->enc.seq_len = seq;
    p->enc.seed = su->seed;
}

static int xp_search_cb(void *user, int done, int total, const char *phase) {
    xp_prog *p = user;
    char buf[192];
    snprintf(buf, sizeof buf, "%s: search %s", p->phase, phase);
    return xp_report(p->su, buf, done, total);
}

/* CCE's allocation search (search.h) over held-out calibration windows. */
static cce_status xp_search(const cce_xp_setup *su, cce_plan *p, const cce_analysis *job, double target, cce_err *err) {
    const cce_model *m = su->model;
    int L = m->cfg.n_layers;
    const cce_block_result **blocks = cce_alloc((size_t)L, sizeof *blocks);
    if (!blocks) return cce_err_set(err, CCE_ENOMEM, "search: out of memory");
    for (int l = 0; l < L; l++) blocks[l] = cce_analysis_block(job, l);
    cce_search_opts so;
    cce_search_opts_default(&so);
    so.evaluations = su->search < 0 ? cce_search_auto(m) : su->search;
    cce_search_result sr;
    xp_prog pr = {su, ""};
    snprintf(pr.phase, sizeof pr.phase, "cce %.0f%%", 100 * target);
    cce_status s = cce_plan_search(p, m, blocks, su->calib_ids, su->n_calib, &so, xp_search_cb, &pr, &sr, err);
    cce_free(blocks);
    return s;
}

cce_status cce_xp_plan(const cce_xp_setup *su, const char *method, double target, const cce_bl_stats *dense,
                       const cce_analysis *job, cce_plan *p, cce_err *err) {
    const cce_model *m = su->model;
    cce_status s = cce_plan_init(p, m, err);
    if (s) return s;
    int b = cce_baseline_parse(method);
    if (b >= 0) {
        xp_plan_ids(su, p);
        xp_prog pr = {su, ""};
        snprintf(pr.phase, sizeof pr.phase, "%s %.0f%%", method, 100 * target);
        cce_bl_input in = {su->calib_ids, su->n_calib, xp_calib_opts(su), dense, xp_bl_cb, &pr};
        s = cce_bl_plan(p, m, (cce_baseline)b, target, &in, NULL, err);
    } else if (!strcmp(method, "cce") || !strcmp(method, "cce-none")) {
        cce_analysis *own = NULL;
        if (!job && !(s = xp_analysis(su, &own, err))) job = own;
        if (!s) {
            p->knobs = su->knobs;
            p->knobs.target = target;
            p->enc = su->enc;
            xp_plan_ids(su, p);
            snprintf(p->method, sizeof p->method, "cce");
            s = cce_plan_build(p, m, job, err);
        }
        if (!s && (su->search > 0 || (su->search < 0 && cce_search_auto(m) > 0))) s = xp_search(su, p, job, target, err);
        if (!s && strcmp(method, "cce")) {   // the ablation: the same decisions, nothing redistributed
            p->enc.redistribute = CCE_REDIST_NONE;
            snprintf(p->method, sizeof p->method, "%s", method);
            s = cce_plan_finish(p, m, err);
        }
        cce_analysis_free(own);
    } else {
        s = cce_err_set(err, CCE_EINVAL, "unknown method '%s' (magnitude wanda-sp flap shortgpt svd asvd cce cce-none)", method);
    }
    if (s) cce_plan_free(p);
    return s;
}

/* Encode p and measure the result into row (row->method set by the caller). */
static cce_status xp_encode_measure(const cce_xp_setup *su, const cce_plan *p, const char *what, double t0,
                                    cce_xp_row *row, cce_err *err) {
    const cce_model *m = su->model;
    xp_prog pr = {su, ""};
    snprintf(pr.phase, sizeof pr.phase, "%s", what);
    cce_model *c = NULL;
    cce_status s = cce_encode(m, p, su->calib_ids, su->n_calib, xp_encode_cb, &pr, &c, err);
    if (s) return cce_err_prefix(err, s, what);
    row->seconds = cce_now() - t0;
    int64_t before = cce_model_params(m).non_embedding;
    row->params = cce_model_params(c).non_embedding;
    row->removed_fraction = before > 0 ? 1.0 - (double)row->params / (double)before : 0;
    s = xp_measure_named(c, su, what, row, err);
    cce_model_free(c);
    return s;
}

static cce_status xp_dense_row(const cce_xp_setup *su, cce_xp_row *row, cce_err *err) {
    memset(row, 0, sizeof *row);
    snprintf(row->method, sizeof row->method, "dense");
    row->params = cce_model_params(su->model).non_embedding;
    return xp_measure_named(su->model, su, "dense", row, err);
}

static cce_status xp_check(const cce_xp_setup *su, cce_err *err) {
    if (!su->model || !su->calib_ids || su->n_calib == 0)
        return cce_err_set(err, CCE_EINVAL, "experiment: no model or no calibration tokens");
    if (su->n_evals < 1 || su->n_evals > CCE_XP_MAX_EVALS)
        return cce_err_set(err, CCE_EINVAL, "experiment: %d evaluation texts (1..%d)", su->n_evals, CCE_XP_MAX_EVALS);
    for (int e = 0; e < su->n_evals; e++)
        if (!su->evals[e].ids) return cce_err_set(err, CCE_EINVAL, "experiment: evaluation %d has no tokens", e + 1);
    return CCE_OK;
}

/* ---------------------------------------------------------------- compare */

cce_status cce_xp_compare(const cce_xp_setup *su, const char *const *methods, int n_methods, const double *targets,
                          int n_targets, cce_xp_row_fn row_fn, void *row_user, cce_xp_row **rows, int *n_rows,
                          cce_err *err) {
    *rows = NULL;
    *n_rows = 0;
    cce_status s = xp_check(su, err);
    if (s) return s;
    int need_dense = 0, need_cce = 0;
    for (int i = 0; i < n_methods; i++) {
        if (!cce_xp_method_known(methods[i]))
            return cce_err_set(err, CCE_EINVAL, "unknown method '%s' (magnitude wanda-sp flap shortgpt svd asvd cce cce-none)",
                               methods[i]);
        int b = cce_baseline_parse(methods[i]);
        need_dense |= b == CCE_BL_FLAP || b == CCE_BL_SHORTGPT;
        need_cce |= b < 0;
    }
    for (int t = 0; t < n_targets; t++)
        if (!(targets[t] > 0 && targets[t] <= 0.95))
            return cce_err_set(err, CCE_EINVAL, "target %g out of range (0, 0.95]", targets[t]);
    cce_xp_row *r = cce_alloc_zero((size_t)(1 + n_methods * n_targets), sizeof *r);
    if (!r) return cce_err_set(err, CCE_ENOMEM, "compare: out of memory");
    cce_bl_stats dense = {0};
    cce_analysis *job = NULL;
    cce_plan *cce_plans = cce_alloc_zero((size_t)n_targets, sizeof *cce_plans);
    int *have_cce = cce_alloc_zero((size_t)n_targets, sizeof(int));
    int n = 0;
    if (!cce_plans || !have_cce) {
        s = cce_err_set(err, CCE_ENOMEM, "compare: out of memory");
        goto fail;
    }
    if ((s = xp_dense_row(su, &r[0], err))) goto fail;
    n = 1;
    if (row_fn) row_fn(row_user, &r[0], NULL);
    if (need_dense) {
        xp_prog pr = {su, "baselines"};
        cce_calib_opts co = xp_calib_opts(su);
        if ((s = cce_bl_stats_collect(su->model, su->calib_ids, su->n_calib, &co, NULL, NULL, NULL, xp_bl_cb, &pr, &dense, err)))
            goto fail;
    }
    if (need_cce && (s = xp_analysis(su, &job, err))) goto fail;
    for (int i = 0; i < n_methods; i++)
        for (int t = 0; t < n_targets; t++) {
            cce_xp_row *row = &r[n];
            char what[96];
            snprintf(what, sizeof what, "%s %.0f%%", methods[i], 100 * targets[t]);
            snprintf(row->method, sizeof row->method, "%s", methods[i]);
            row->target = targets[t];
            double t0 = cce_now();
            cce_plan p;
            int is_cce = !strcmp(methods[i], "cce") || !strcmp(methods[i], "cce-none");
            if (is_cce && have_cce[t]) {   // cce and cce-none share one (searched) plan per target
                if ((s = cce_plan_copy(&p, &cce_plans[t], err))) goto fail;
                p.enc.redistribute = strcmp(methods[i], "cce") ? CCE_REDIST_NONE : cce_plans[t].enc.redistribute;
                snprintf(p.method, sizeof p.method, "%s", methods[i]);
                if ((s = cce_plan_finish(&p, su->model, err))) {
                    cce_plan_free(&p);
                    goto fail;
                }
            } else {
                if ((s = cce_xp_plan(su, is_cce ? "cce" : methods[i], targets[t], need_dense ? &dense : NULL, job, &p, err))) {
                    cce_err_prefix(err, s, what);
                    goto fail;
                }
                if (is_cce) {
                    if ((s = cce_plan_copy(&cce_plans[t], &p, err))) {
                        cce_plan_free(&p);
                        goto fail;
                    }
                    have_cce[t] = 1;
                    if (strcmp(methods[i], "cce")) {   // the ablation: the same decisions, nothing redistributed
                        p.enc.redistribute = CCE_REDIST_NONE;
                        snprintf(p.method, sizeof p.method, "%s", methods[i]);
                        if ((s = cce_plan_finish(&p, su->model, err))) {
                            cce_plan_free(&p);
                            goto fail;
                        }
                    }
                }
            }
            s = xp_encode_measure(su, &p, what, t0, row, err);
            if (!s && row_fn) row_fn(row_user, row, &p);
            cce_plan_free(&p);
            if (s) goto fail;
            n++;
        }
    s = CCE_OK;
    *rows = r;
    *n_rows = n;
    r = NULL;
fail:
    for (int t = 0; cce_plans && have_cce && t < n_targets; t++)
        if (have_cce[t]) cce_plan_free(&cce_plans[t]);
    cce_free(cce_plans);
    cce_free(have_cce);
    cce_bl_stats_free(&dense);
    cce_analysis_free(job);
    cce_free(r);
    return s;
}

/* ---------------------------------------------------------------- sweep */

cce_status cce_xp_sweep(const cce_xp_setup *su, double level, cce_redistribute redist, cce_xp_row *dense,
                        cce_xp_sweep_row **rows, cce_err *err) {
    *rows = NULL;
    cce_status s = xp_check(su, err);
    if (s) return s;
    if (!(level > 0 && level <= 1)) return cce_err_set(err, CCE_EINVAL, "sweep: level %g out of range (0, 1]", level);
    const cce_model *m = su->model;
    int L = m->cfg.n_layers;
    cce_xp_sweep_row *r = cce_alloc_zero((size_t)L, sizeof *r);
    const cce_block_result **only = cce_alloc_zero((size_t)L, sizeof *only);
    cce_analysis *job = NULL;
    if (!r || !only) {
        s = cce_err_set(err, CCE_ENOMEM, "sweep: out of memory");
        goto done;
    }
    if ((s = xp_dense_row(su, dense, err)) || (s = xp_analysis(su, &job, err))) goto done;
    int64_t before = cce_model_params(m).non_embedding;
    const char *name = redist == CCE_REDIST_NONE ? "cce-none" : "cce";
    for (int l = 0; l < L; l++) {
        cce_xp_sweep_row *x = &r[l];
        x->block = l;
        x->block_params = cce_layer_params(m, l);
        snprintf(x->row.method, sizeof x->row.method, "%s", name);
        if (m->layers[l].dropped || x->block_params == 0) continue;
        char what[64];
        snprintf(what, sizeof what, "sweep block %d/%d", l + 1, L);
        double t0 = cce_now();
        double target = level * (double)x->block_params / (double)before;
        x->row.target = target;
        cce_plan p;
        if ((s = cce_plan_init(&p, m, err))) goto done;
        p.knobs = su->knobs;
        p.knobs.target = target > 0.95 ? 0.95 : target;
        p.enc = su->enc;
        p.enc.redistribute = redist;
        xp_plan_ids(su, &p);
        snprintf(p.method, sizeof p.method, "%s", name);
        for (int q = 0; q < L; q++) only[q] = NULL;
        only[l] = cce_analysis_block(job, l);
        s = cce_plan_build_blocks(&p, m, only, err);
        if (!s) {
            x->removed = p.params_before - p.params_after;
            x->block_fraction = x->block_params ? (double)x->removed / (double)x->block_params : 0;
            s = xp_encode_measure(su, &p, what, t0, &x->row, err);
        }
        cce_plan_free(&p);
        if (s) goto done;
    }
done:
    cce_analysis_free(job);
    cce_free(only);
    if (s) cce_free(r);
    else *rows = r;
    return s;
}

/* ---------------------------------------------------------------- sensitivity */

void cce_xp_pareto(const double *x, const double *y, int n, int *pareto) {
    for (int i = 0; i < n; i++) {
        pareto[i] = 1;
        for (int j = 0; j < n && pareto[i]; j++)
            if (j != i && x[j] >= x[i] && y[j] <= y[i] && (x[j] > x[i] || y[j] < y[i])) pareto[i] = 0;
    }
}

cce_status cce_xp_sensitivity(const cce_xp_setup *su, const double *eps, int n_eps, const double *tau, int n_tau,
                              cce_redistribute redist, cce_xp_row *dense, cce_xp_sens_row **rows, cce_err *err) {
    *rows = NULL;
    cce_status s = xp_check(su, err);
    if (s) return s;
    int n = n_eps * n_tau;
    if (n < 1) return cce_err_set(err, CCE_EINVAL, "sensitivity: an empty grid");
    const cce_model *m = su->model;
    cce_xp_sens_row *r = cce_alloc_zero((size_t)n, sizeof *r);
    double *px = cce_alloc((size_t)n, sizeof(double)), *py = cce_alloc((size_t)n, sizeof(double));
    int *par = cce_alloc((size_t)n, sizeof(int));
    cce_analysis *job = NULL;
    if (!r || !px || !py || !par) {
        s = cce_err_set(err, CCE_ENOMEM, "sensitivity: out of memory");
        goto done;
    }
    if ((s = xp_dense_row(su, dense, err)) || (s = xp_analysis(su, &job, err))) goto done;
    const char *name = redist == CCE_REDIST_NONE ? "cce-none" : "cce";
    for (int i = 0; i < n_eps; i++)
        for (int j = 0; j < n_tau; j++) {
            cce_xp_sens_row *x = &r[i * n_tau + j];
            x->eps = eps[i];
            x->tau = tau[j];
            snprintf(x->row.method, sizeof x->row.method, "%s", name);
            char what[96];
            snprintf(what, sizeof what, "eps %g tau %g", eps[i], tau[j]);
            double t0 = cce_now();
            cce_plan p;
            if ((s = cce_plan_init(&p, m, err))) goto done;
            p.knobs = su->knobs;
            p.knobs.eps = eps[i];
            p.knobs.tau = tau[j];
            p.knobs.target = 0;
            p.enc = su->enc;
            p.enc.redistribute = redist;
            xp_plan_ids(su, &p);
            snprintf(p.method, sizeof p.method, "%s", name);
            s = cce_plan_build(&p, m, job, err);
            if (!s) s = xp_encode_measure(su, &p, what, t0, &x->row, err);
            cce_plan_free(&p);
            if (s) goto done;
            px[i * n_tau + j] = x->row.removed_fraction;
            py[i * n_tau + j] = x->row.eval[0].ppl;
        }
    cce_xp_pareto(px, py, n, par);
    for (int i = 0; i < n; i++) r[i].pareto = par[i];
done:
    cce_analysis_free(job);
    cce_free(px);
    cce_free(py);
    cce_free(par);
    if (s) cce_free(r);
    else *rows = r;
    return s;
}

/* ---------------------------------------------------------------- robustness */

size_t cce_xp_perturb(const char *text, size_t len, double p, uint64_t seed, char *out) {
    cce_rng r;
    cce_rng_seed(&r, seed);
    size_t changed = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        int lower = ch >= 'a' && ch <= 'z', upper = ch >= 'A' && ch <= 'Z';
        char o = (char)ch;
        if (lower || upper) {
            double u = cce_rng_uniform(&r);   // one draw per letter, so the noise pattern is nested in p
            uint64_t k = cce_rng_u64(&r) % 25;
            if (u < p) {
                int base = lower ? 'a' : 'A', cur = ch - base;
                int nw = (int)k >= cur ? (int)k + 1 : (int)k;   // one of the other 25
                o = (char)(base + nw);
                changed++;
            }
        }
        out[i] = o;
    }
    return changed;
}

cce_status cce_xp_robustness(const cce_model *dense, const cce_model *comp, const cce_tokenizer *tok, const char *text,
                             size_t len, const double *levels, int n_levels, uint64_t seed, int seq_len, long max_tokens,
                             cce_xp_progress_fn progress, void *user, cce_xp_robust_row **rows, cce_err *err) {
    *rows = NULL;
    if (n_levels < 1) return cce_err_set(err, CCE_EINVAL, "robustness: no noise levels");
    cce_xp_robust_row *r = cce_alloc_zero((size_t)n_levels, sizeof *r);
    char *noisy = cce_alloc(len + 1, 1);
    if (!r || !noisy) {
        cce_free(r);
        cce_free(noisy);
        return cce_err_set(err, CCE_ENOMEM, "robustness: out of memory");
    }
    cce_xp_setup su;
    cce_xp_setup_default(&su);
    su.progress = progress;
    su.user = user;
    cce_status s = CCE_OK;
    int seq = xp_seq(dense, seq_len);
    for (int i = 0; i < n_levels && !s; i++) {
        if (!(levels[i] >= 0 && levels[i] <= 1)) {
            s = cce_err_set(err, CCE_EINVAL, "robustness: noise level %g out of range [0, 1]", levels[i]);
            break;
        }
        r[i].noise = levels[i];
        r[i].changed = cce_xp_perturb(text, len, levels[i], seed, noisy);
        noisy[len] = 0;
        int *ids = NULL;
        size_t n = 0;
        if ((s = cce_text_tokens(tok, noisy, len, &ids, &n, err))) break;
        if (max_tokens > 0 && (size_t)max_tokens < n) n = (size_t)max_tokens;
        for (int w = 0; w < 2 && !s; w++) {
            const cce_model *m = w ? comp : dense;
            xp_prog pr = {&su, ""};
            snprintf(pr.phase, sizeof pr.phase, "noise %.0f%% %s", 100 * levels[i], w ? "compressed" : "dense");
            cce_eval_result e;
            if (!(s = cce_eval_ids(m, ids, n, seq, 0, xp_eval_cb, &pr, &e, err))) {
                cce_xp_eval *x = w ? &r[i].compressed : &r[i].dense;
                *x = (cce_xp_eval){e.loss, e.ppl, e.accuracy, e.tokens, e.predictions};
            }
        }
        cce_free(ids);
    }
    cce_free(noisy);
    if (s) {
        cce_free(r);
        return s;
    }
    *rows = r;
    return CCE_OK;
}

/* ---------------------------------------------------------------- classify */

void cce_xp_examples_free(cce_xp_example *ex, int n) {
    for (int i = 0; ex && i < n; i++) cce_free(ex[i].text);
    cce_free(ex);
}

static int label_of(const char *s, size_t len, const char *const *labels, int n_labels) {
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\r' || s[len - 1] == '\t')) len--;
    while (len && *s == ' ') s++, len--;
    if (len == 0) return -1;
    int all_digits = 1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') { all_digits = 0; break; }
        v = v * 10 + (s[i] - '0');
        if (v > 1000000) { all_digits = 0; break; }
    }
    if (all_digits) return v < n_labels ? (int)v : -1;
    for (int k = 0; k < n_labels; k++)
        if (strlen(labels[k]) == len && !strncmp(labels[k], s, len)) return k;
    return -1;
}

cce_status cce_xp_read_tsv(const char *text, size_t len, const char *what, const char *const *labels, int n_labels,
                           cce_xp_example **ex, int *n, cce_err *err) {
    *ex = NULL;
    *n = 0;
    if (n_labels < 2) return cce_err_set(err, CCE_EINVAL, "%s: at least two labels are needed", what);
    int cap = 1;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    cce_xp_example *v = cce_alloc_zero((size_t)cap, sizeof *v);
    if (!v) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", what);
    int k = 0, line = 0;
    size_t i = 0;
    cce_status s = CCE_OK;
    while (i < len && !s) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        line++;
        size_t ll = e;
        if (ll > i && text[ll - 1] == '\r') ll--;
        if (ll > i) {
            size_t tab = ll;
            while (tab > i && text[tab - 1] != '\t') tab--;
            int lab = tab > i ? label_of(text + tab, ll - tab, labels, n_labels) : -1;
            if (lab < 0) {
                if (line > 1 || tab == i)
                    s = cce_err_set(err, CCE_EFORMAT, "%s: line %d: expected \"text<TAB>label\" with a label in 0..%d or a label name",
                                    what, line, n_labels - 1);
            } else {
                size_t tl = tab - 1 - i;
                v[k].text = cce_alloc(tl + 1, 1);
                if (!v[k].text) s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", what);
                else {
                    memcpy(v[k].text, text + i, tl);
                    v[k].text[tl] = 0;
                    v[k].label = lab;
                    k++;
                }
            }
        }
        i = e + 1;
    }
    if (!s && k == 0) s = cce_err_set(err, CCE_EFORMAT, "%s: no examples", what);
    if (s) {
        cce_xp_examples_free(v, k);
        return s;
    }
    *ex = v;
    *n = k;
    return CCE_OK;
}

void cce_xp_classify_free(cce_xp_classify_result *res) {
    cce_free(res->confusion);
    cce_free(res->pred);
    cce_free(res->score);
    memset(res, 0, sizeof *res);
}

/* Append src (len) to a growing buffer. */
static int buf_add(char **b, size_t *n, size_t *cap, const char *src, size_t len) {
    if (*n + len + 1 > *cap) {
        size_t want = (*cap ? *cap : 256);
        while (want < *n + len + 1) want *= 2;
        char *g = cce_realloc(*b, want, 1);
        if (!g) return -1;
        *b = g;
        *cap = want;
    }
    memcpy(*b + *n, src, len);
    *n += len;
    (*b)[*n] = 0;
    return 0;
}

/* context (template up to {label} with {text} substituted) and continuation (label + rest). */
static cce_status make_prompt(const char *templ, const char *text, const char *label, char **ctx, char **cont,
                              cce_err *err) {
    char *a = NULL, *b = NULL;
    size_t na = 0, ca = 0, nb = 0, cb = 0;
    int in_cont = 0, has_label = strstr(templ, "{label}") != NULL, bad = 0;
    for (const char *q = templ; *q && !bad;) {
        if (!strncmp(q, "{text}", 6)) {
            bad = in_cont ? buf_add(&b, &nb, &cb, text, strlen(text)) : buf_add(&a, &na, &ca, text, strlen(text));
            q += 6;
        } else if (!strncmp(q, "{label}", 7) && !in_cont) {
            in_cont = 1;
            bad = buf_add(&b, &nb, &cb, label, strlen(label));
            q += 7;
        } else {
            bad = in_cont ? buf_add(&b, &nb, &cb, q, 1) : buf_add(&a, &na, &ca, q, 1);
            q++;
        }
    }
    if (!bad && !has_label) bad = buf_add(&b, &nb, &cb, " ", 1) || buf_add(&b, &nb, &cb, label, strlen(label));
    if (!bad && !a) bad = buf_add(&a, &na, &ca, "", 0);
    if (bad) {
        cce_free(a);
        cce_free(b);
        return cce_err_set(err, CCE_ENOMEM, "classify: out of memory");
    }
    *ctx = a;
    *cont = b;
    return CCE_OK;
}

/* Sum of log p(ids[t] | ids[<t]) for t in [from, T) on one sequence. */
static cce_status seq_loglik(cce_fwd *f, const cce_model *m, const int *ids, int T, int from, float *h, float *logits,
                             double *out, cce_err *err) {
    cce_status s = cce_fwd_embed(f, ids, 1, T, h, err);
    for (int l = 0; !s && l < m->cfg.n_layers; l++) s = cce_fwd_block(f, l, h, 1, T, NULL, NULL, err);
    int rows = T - from, V = m->cfg.vocab_size, d = m->cfg.dim;
    if (!s) s = cce_fwd_logits(f, h + (size_t)(from - 1) * d, rows, logits, err);
    if (s) return s;
    double sum = 0;
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * V;
        float mx = z[0];
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double se = 0;
        for (int v = 0; v < V; v++) se += exp((double)z[v] - mx);
        sum += (double)z[ids[from + r]] - mx - log(se);
    }
    *out = sum;
    return CCE_OK;
}

/* The score of one label for one example: the continuation's log-likelihood (header comment);
 * *cut set when the prompt had to be cut at the front to fit the model. seq (T_max), h and
 * logits are scratch for sequences up to the model's context. */
static cce_status xp_score_label(cce_fwd *f, const cce_model *m, const cce_tokenizer *tok, const char *templ,
                                 const char *text, const char *label, int i, int *seq, float *h, float *logits,
                                 double *score, int *cut, cce_err *err) {
    int T_max = m->cfg.seq_len, bos = cce_tokenizer_bos(tok);
    char *ctx = NULL, *cont = NULL, *full = NULL;
    int *ic = NULL, *ifull = NULL;
    size_t nc = 0, nf = 0;
    cce_status s = make_prompt(templ, text, label, &ctx, &cont, err);
    if (s) return s;
    size_t lc = strlen(ctx), lt = strlen(cont);
    if (!(full = cce_alloc(lc + lt + 1, 1))) {
        s = cce_err_set(err, CCE_ENOMEM, "classify: out of memory");
        goto done;
    }
    memcpy(full, ctx, lc);
    memcpy(full + lc, cont, lt + 1);
    if ((s = cce_tokenizer_encode(tok, ctx, lc, bos >= 0, &ic, &nc, err)) ||
        (s = cce_tokenizer_encode(tok, full, lc + lt, bos >= 0, &ifull, &nf, err)))
        goto done;
    size_t common = 0;
    while (common < nc && common < nf && ic[common] == ifull[common]) common++;
    if (common == 0) common = 1;   // the first token is context
    if (common >= nf) {
        s = cce_err_set(err, CCE_EINVAL, "classify: example %d: label '%s' adds no tokens", i + 1, label);
        goto done;
    }
    /* fit the model: keep the first token and the last T_max - 1 */
    size_t drop = nf > (size_t)T_max ? nf - (size_t)T_max : 0;
    if (drop && nf - common > (size_t)T_max - 2) {
        s = cce_err_set(err, CCE_EINVAL, "classify: example %d: the continuation alone exceeds the context", i + 1);
        goto done;
    }
    int T = (int)(nf - drop);
    seq[0] = ifull[0];
    for (int t = 1; t < T; t++) seq[t] = ifull[(size_t)t + drop];
    int from = (int)(common - drop > 1 ? common - drop : 1);
    if (drop) *cut = 1;
    s = seq_loglik(f, m, seq, T, from, h, logits, score, err);
done:
    cce_free(ctx); cce_free(cont); cce_free(full); cce_free(ic); cce_free(ifull);
    return s;
}

cce_status cce_xp_classify(const cce_model *m, const cce_tokenizer *tok, const cce_xp_example *ex, int n,
                           const char *const *labels, int n_labels, const char *templ, cce_xp_progress_fn progress,
                           void *user, cce_xp_classify_result *res, cce_err *err) {
    memset(res, 0, sizeof *res);
    if (n < 1 || n_labels < 2) return cce_err_set(err, CCE_EINVAL, "classify: %d examples, %d labels", n, n_labels);
    int T_max = m->cfg.seq_len;
    res->n = n;
    res->n_labels = n_labels;
    res->confusion = cce_alloc_zero((size_t)n_labels * n_labels, sizeof(int));
    res->pred = cce_alloc_zero((size_t)n, sizeof(int));
    res->score = cce_alloc_zero((size_t)n * n_labels, sizeof(double));
    float *h = cce_alloc((size_t)T_max, (size_t)m->cfg.dim * sizeof(float));             // (T, dim)
    float *logits = cce_alloc((size_t)T_max, (size_t)m->cfg.vocab_size * sizeof(float));  // (T, vocab)
    int *seq = cce_alloc((size_t)T_max, sizeof(int));
    cce_fwd *f = NULL;
    cce_status s = CCE_OK;
    if (!res->confusion || !res->pred || !res->score || !h || !logits || !seq) {
        s = cce_err_set(err, CCE_ENOMEM, "classify: out of memory");
        goto done;
    }
    if ((s = cce_fwd_new(m, T_max, T_max, &f, err))) goto done;
    for (int i = 0; i < n && !s; i++) {
        if (progress && (i & 15) == 0 && progress(user, "classify", i, n)) {
            s = cce_err_set(err, CCE_ECANCEL, "classify: cancelled at example %d", i);
            break;
        }
        int best = 0, cut = 0;
        for (int k = 0; k < n_labels && !s; k++)
            s = xp_score_label(f, m, tok, templ, ex[i].text, labels[k], i, seq, h, logits, &res->score[(size_t)i * n_labels + k],
                               &cut, err);
        if (s) break;
        for (int k = 1; k < n_labels; k++)
            if (res->score[(size_t)i * n_labels + k] > res->score[(size_t)i * n_labels + best]) best = k;
        res->pred[i] = best;
        res->confusion[ex[i].label * n_labels + best]++;
        res->correct += best == ex[i].label;
        res->truncated += cut;
    }
    if (!s) {
        res->accuracy = (double)res->correct / n;
        int *count = cce_alloc_zero((size_t)n_labels, sizeof(int));
        if (!count) s = cce_err_set(err, CCE_ENOMEM, "classify: out of memory");
        for (int i = 0; count && i < n; i++) count[ex[i].label]++;
        for (int k = 0; count && k < n_labels; k++)
            if (count[k] > count[res->majority]) res->majority = k;
        if (count) res->majority_accuracy = (double)count[res->majority] / n;
        cce_free(count);
        if (progress) progress(user, "classify", n, n);
    }
done:
    cce_fwd_free(f);
    cce_free(h);
    cce_free(logits);
    cce_free(seq);
    if (s) cce_xp_classify_free(res);
    return s;
}
