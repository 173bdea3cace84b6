/*
 * analysis_io.c — the analysis file: writer and validating reader (contract in analysis.h).
 *
 * Format (JSON, one member per line for objects, arrays on one line):
 *   format_version 2 (the major: a reader refuses any other), program, kind "analysis",
 *   readings (what each number means), model {path, sha256, format, arch, shapes, parameters},
 *   calibration {path, sha256, stream_tokens, tokens, n_seq, seq_len, seed, subsample},
 *   settings {eps, tau, ridge, hist_bins}, layer_similarity {measure, matrix (L, L)},
 *   blocks[] {layer, dropped, shapes, angular_distance, influence, update_rms, near_identity,
 *             out_energy, eigen {site: {below_eps, values}}, weights[] {...}, head_similarity,
 *             group_similarity, redundancy {heads, neurons: {score, cost, order}, groups: {order,
 *             cost}}, curves {name: {n, order | rank0, cost, sim (omitted when all 0), nuc,
 *             params}}, histograms {site: {lo, hi, min, max, counts}}, timings {...}},
 *   timings {total_seconds}.
 * Doubles are printed so that they read back exactly (cJSON's %.15g, else %.17g); floats go
 * through double and back, also exactly. So save → load gives every result bit for bit.
 *
 * Reading trusts nothing: every size is the model's (never the file's), every array's length
 * and element type is checked against it, indices against their ranges (orders must be
 * permutations), and the model's sha256 must be the one recorded. Errors are one line:
 * "FILE: FIELD: what is wrong".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "analysis.h"
#include "analysis_internal.h"
#include "util.h"

#define ANALYSIS_FORMAT_MAJOR 2
#define ANALYSIS_MAX_FILE ((size_t)1 << 31)

/* ------------------------------------------------------------------ identity */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

cce_status cce_model_sha256(const char *path, char out[65], cce_err *err) {
    struct stat sb;
    if (!path) return cce_err_set(err, CCE_EINVAL, "model identity: the model has no path to hash");
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return cce_sha256_file(path, out, err);
    /* HF directory: config.json and the weight files, "name sha256\n" each, names sorted */
    char p[4096], *names[1024];
    int nn = 0;
    cce_status st = CCE_OK;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
    if (stat(p, &sb) == 0) {
        char *txt = NULL;
        size_t len;
        if ((st = cce_read_file(p, (size_t)64 << 20, &txt, &len, err))) return st;
        cJSON *root = cJSON_Parse(txt);
        cce_free(txt);
        const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
        if (!cJSON_IsObject(map)) {
            cJSON_Delete(root);
            return cce_err_set(err, CCE_EFORMAT, "%s: weight_map: not an object", p);
        }
        for (const cJSON *it = map->child; it && !st; it = it->next) {
            if (!cJSON_IsString(it) || strchr(it->valuestring, '/')) {
                st = cce_err_set(err, CCE_EFORMAT, "%s: weight_map: bad file name", p);
                break;
            }
            int dup = 0;
            for (int k = 0; k < nn; k++) dup |= !strcmp(names[k], it->valuestring);
            if (dup) continue;
            if (nn == 1024) { st = cce_err_set(err, CCE_EFORMAT, "%s: more than 1024 weight files", p); break; }
            if (!(names[nn] = cce_strdup(it->valuestring))) { st = cce_err_set(err, CCE_ENOMEM, "model identity: out of memory"); break; }
            nn++;
        }
        cJSON_Delete(root);
    } else if (!(names[nn++] = cce_strdup("model.safetensors"))) {
        return cce_err_set(err, CCE_ENOMEM, "model identity: out of memory");
    }
    if (!st && nn < 1024 && !(names[nn++] = cce_strdup("config.json"))) st = cce_err_set(err, CCE_ENOMEM, "model identity: out of memory");
    if (!st) qsort(names, (size_t)nn, sizeof names[0], cmp_str);
    size_t cap = (size_t)nn * (4096 + 70), used = 0;
    char *list = st ? NULL : cce_alloc(cap + 1, 1);
    if (!st && !list) st = cce_err_set(err, CCE_ENOMEM, "model identity: out of memory");
    for (int k = 0; k < nn && !st; k++) {
        char h[65];
        snprintf(p, sizeof p, "%s/%s", path, names[k]);
        if ((st = cce_sha256_file(p, h, err))) break;
        used += (size_t)snprintf(list + used, cap - used, "%s %s\n", names[k], h);
    }
    if (!st) cce_sha256_hex(list, used, out);
    cce_free(list);
    for (int k = 0; k < nn; k++) cce_free(names[k]);
    return st;
}

/* ------------------------------------------------------------------ writer */

/* A double that reads back exactly: the shortest of %.15g, %.16g, %.17g that strtod returns
 * unchanged (cJSON's own printer accepts a one-ulp difference). */
static cJSON *num_exact(double v) {
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}
static void add_d(cJSON *o, const char *key, double v) { cJSON_AddItemToObject(o, key, num_exact(v)); }

static cJSON *float_array(const float *v, int n) {
    return n > 0 && v ? cJSON_CreateFloatArray(v, n) : cJSON_CreateArray();
}
static cJSON *double_array(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n && a && v; i++) cJSON_AddItemToArray(a, num_exact(v[i]));
    return a;
}
static cJSON *int_array(const int *v, int n) { return n > 0 && v ? cJSON_CreateIntArray(v, n) : cJSON_CreateArray(); }
static cJSON *i64_array(const int64_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n && a; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}
static cJSON *square_matrix(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, float_array(v + (size_t)i * n, n));
    return a;
}

const char *cce_analysis_readings_text(int i, const char **name) {
    static const char *const r[][2] = {
        {"eigen", "eigenvalues (descending) of centred activation covariances; below_eps = count of lambda < eps * lambda_max"},
        {"layer_similarity", "linear CKA between centred block updates h_l - h_{l-1} on a seeded token subsample; 0 when an "
                             "update is zero"},
        {"angular_distance", "mean over tokens of arccos(cos(h_in, h_out)) / pi"},
        {"influence", "1 - mean over tokens of cos(h_in, h_out)"},
        {"head_similarity", "linear CKA between head contributions o_h W_o[:,h]^T, from the per-head output covariance; "
                            "group_similarity: the same over KV groups"},
        {"weights", "singular values of W and activation-aware sigma(W L) with E[x x^T] = L L^T of the matrix input "
                    "(uncentred), from the eigenvalues of the smaller Gram matrix; below_tau = count of sigma < tau * sigma_max"},
        {"redundancy", "greedy optimal-brain-surgeon order on the centred covariance with the updated weights (first = "
                       "first to remove); cost = leave-one-out cost tr(W_c ((C+lambda I)^-1)_cc^-1 W_c^T); score = 1 - "
                       "cost / tr(W_c C_cc W_c^T); groups: the same over whole KV groups with its cumulative cost"},
        {"curves", "per block and kind: cost[k] = mean squared output error per token after k steps (neurons, heads: "
                   "OBS prefixes; ranks: sum of dropped aware sigma^2; drops: centred energy of what the sublayer adds); "
                   "params[k] removed; sim[k] mean |correlation| (neurons) or head CKA (heads) among those kept; nuc[k] "
                   "nuclear norm of the affected matrix, exact at up to 17 evenly spaced k, linear between"},
        {"out_energy", "mean over tokens of |h_out|^2 at the block output"},
    };
    if (i < 0 || i >= (int)(sizeof r / sizeof r[0])) return NULL;
    if (name) *name = r[i][0];
    return r[i][1];
}

static cJSON *readings_json(void) {
    cJSON *o = cJSON_CreateObject();
    const char *name, *text;
    for (int i = 0; (text = cce_analysis_readings_text(i, &name)); i++) cJSON_AddStringToObject(o, name, text);
    return o;
}

static int curve_is_rank(int k) { return k >= CCE_CURVE_RANK_WQ && k <= CCE_CURVE_RANK_W2; }

static cJSON *curve_json(const cce_curve *c, int kind) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", c->n);
    if (curve_is_rank(kind)) cJSON_AddNumberToObject(o, "rank0", c->n > 0 ? c->order[0] : 0);
    else if (c->order) cJSON_AddItemToObject(o, "order", int_array(c->order, c->n));
    cJSON_AddItemToObject(o, "cost", double_array(c->cost, c->n + 1));
    int any = 0;
    for (int i = 0; i <= c->n; i++) any |= c->sim[i] != 0;
    if (any) cJSON_AddItemToObject(o, "sim", double_array(c->sim, c->n + 1));
    cJSON_AddItemToObject(o, "nuc", double_array(c->nuc, c->n + 1));
    cJSON_AddItemToObject(o, "params", i64_array(c->params, c->n + 1));
    return o;
}

static cJSON *block_json(const cce_block_result *r) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddNumberToObject(b, "layer", r->layer);
    cJSON_AddBoolToObject(b, "dropped", r->dropped);
    cJSON_AddNumberToObject(b, "n_heads", r->n_heads);
    cJSON_AddNumberToObject(b, "n_kv_heads", r->n_kv_heads);
    cJSON_AddNumberToObject(b, "head_dim", r->head_dim);
    cJSON_AddNumberToObject(b, "hidden", r->hidden);
    add_d(b, "angular_distance", r->angular_distance);
    add_d(b, "influence", r->influence);
    add_d(b, "update_rms", r->update_rms);
    cJSON_AddBoolToObject(b, "near_identity", r->near_identity);
    add_d(b, "out_energy", r->out_energy);
    cJSON *eig = cJSON_AddObjectToObject(b, "eigen");
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        if (r->eig[s].n <= 0) continue;
        cJSON *e = cJSON_AddObjectToObject(eig, cce_cov_site_name((cce_cov_site)s));
        cJSON_AddNumberToObject(e, "below_eps", r->eig[s].below_eps);
        cJSON_AddItemToObject(e, "values", float_array(r->eig[s].values, r->eig[s].n));
    }
    cJSON *ws = cJSON_AddArrayToObject(b, "weights");
    for (int k = 0; k < r->n_weights; k++) {
        const cce_weight_spectrum *w = &r->weights[k];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", w->name);
        cJSON_AddNumberToObject(o, "rows", w->rows);
        cJSON_AddNumberToObject(o, "cols", w->cols);
        add_d(o, "spectral_norm", w->spectral_norm);
        add_d(o, "frobenius", w->frobenius);
        add_d(o, "stable_rank", w->stable_rank);
        cJSON_AddNumberToObject(o, "below_tau", w->below_tau);
        cJSON_AddNumberToObject(o, "aware_below_tau", w->aw_below_tau);
        cJSON_AddNumberToObject(o, "jitter", w->jitter);
        cJSON_AddItemToObject(o, "singular_values", float_array(w->sv, w->n));
        cJSON_AddItemToObject(o, "aware_singular_values", float_array(w->sv_aw, w->n));
        cJSON_AddItemToArray(ws, o);
    }
    if (!r->dropped) {
        cJSON_AddItemToObject(b, "head_similarity", square_matrix(r->head_cka, r->n_heads));
        cJSON_AddItemToObject(b, "group_similarity", square_matrix(r->group_cka, r->n_kv_heads));
        cJSON *red = cJSON_AddObjectToObject(b, "redundancy");
        cJSON *h = cJSON_AddObjectToObject(red, "heads");
        cJSON_AddItemToObject(h, "score", float_array(r->head_score, r->n_heads));
        cJSON_AddItemToObject(h, "cost", float_array(r->head_cost, r->n_heads));
        cJSON_AddItemToObject(h, "order", int_array(r->head_order, r->n_heads));
        cJSON *nr = cJSON_AddObjectToObject(red, "neurons");
        cJSON_AddItemToObject(nr, "score", float_array(r->neuron_score, r->hidden));
        cJSON_AddItemToObject(nr, "cost", float_array(r->neuron_cost, r->hidden));
        cJSON_AddItemToObject(nr, "order", int_array(r->neuron_order, r->hidden));
        cJSON *gr = cJSON_AddObjectToObject(red, "groups");
        cJSON_AddItemToObject(gr, "order", int_array(r->group_order, r->n_kv_heads));
        cJSON_AddItemToObject(gr, "cost", double_array(r->group_cost, r->n_kv_heads > 0 ? r->n_kv_heads + 1 : 0));
        cJSON *cv = cJSON_AddObjectToObject(b, "curves");
        for (int k = 0; k < CCE_CURVE_COUNT; k++)
            if (r->curves[k].n > 0) cJSON_AddItemToObject(cv, cce_curve_name((cce_curve_kind)k), curve_json(&r->curves[k], k));
    }
    cJSON *hs = cJSON_AddObjectToObject(b, "histograms");
    for (int s = 0; s < CCE_TAP_COUNT; s++) {
        const cce_hist *hg = &r->hist[s];
        if (!hg->counts || !hg->total) continue;
        cJSON *o = cJSON_AddObjectToObject(hs, cce_tap_site_name((cce_tap_site)s));
        cJSON_AddNumberToObject(o, "lo", hg->lo);
        cJSON_AddNumberToObject(o, "hi", hg->hi);
        add_d(o, "min", hg->min);
        add_d(o, "max", hg->max);
        cJSON *c = cJSON_AddArrayToObject(o, "counts");
        for (int i = 0; i < hg->n_bins + 2; i++) cJSON_AddItemToArray(c, cJSON_CreateNumber((double)hg->counts[i]));
    }
    cJSON *t = cJSON_AddObjectToObject(b, "timings");
    cJSON_AddNumberToObject(t, "forward", r->t_forward);
    cJSON_AddNumberToObject(t, "stats", r->t_stats);
    cJSON_AddNumberToObject(t, "similarity", r->t_similarity);
    cJSON_AddNumberToObject(t, "eigen", r->t_eigen);
    cJSON_AddNumberToObject(t, "svd", r->t_svd);
    cJSON_AddNumberToObject(t, "redundancy", r->t_redundancy);
    cJSON_AddNumberToObject(t, "blas", r->t_blas);
    cJSON_AddNumberToObject(t, "post_forward", r->t_post);
    return b;
}

/* The shortest decimal that reads back as this float (1e-3f, not 0.0010000000474974513). */
static double float_as_decimal(float x) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)x);
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return strtod(buf, NULL);
}

cce_status cce_analysis_save(const cce_analysis *job, const cce_model *m, const cce_analysis_identity *id,
                             const char *path, cce_err *err) {
    if (!cce_analysis_finished(job)) return cce_err_set(err, CCE_EINVAL, "%s: the analysis is not finished", path);
    const cce_analysis_opts *eo = cce_analysis_get_opts(job);
    int L = cce_analysis_n_layers(job), n_seq, slen;
    size_t stream;
    cce_analysis_calib_info(job, &stream, &n_seq, &slen);
    cJSON *root = cJSON_CreateObject();
    if (!root) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory", path);
    cJSON_AddNumberToObject(root, "format_version", ANALYSIS_FORMAT_MAJOR);
    cJSON_AddStringToObject(root, "program", "cce");
    cJSON_AddStringToObject(root, "kind", "analysis");
    cJSON_AddItemToObject(root, "readings", readings_json());
    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "path", id->model_path ? id->model_path : "");
    cJSON_AddStringToObject(mo, "sha256", id->model_sha256 ? id->model_sha256 : "");
    cJSON_AddStringToObject(mo, "format", cce_format_name(m->format));
    cJSON_AddStringToObject(mo, "arch", cce_arch_name(m->cfg.arch));
    cJSON_AddNumberToObject(mo, "dim", m->cfg.dim);
    cJSON_AddNumberToObject(mo, "n_layers", m->cfg.n_layers);
    cJSON_AddNumberToObject(mo, "n_heads", m->cfg.n_heads);
    cJSON_AddNumberToObject(mo, "n_kv_heads", m->cfg.n_kv_heads);
    cJSON_AddNumberToObject(mo, "head_dim", m->cfg.head_dim);
    cJSON_AddNumberToObject(mo, "hidden_dim", m->cfg.hidden_dim);
    cJSON_AddNumberToObject(mo, "vocab_size", m->cfg.vocab_size);
    cJSON_AddNumberToObject(mo, "seq_len", m->cfg.seq_len);
    cce_param_count pc = cce_model_params(m);
    cJSON_AddNumberToObject(mo, "params_total", (double)pc.total);
    cJSON_AddNumberToObject(mo, "params_non_embedding", (double)pc.non_embedding);
    cJSON *co = cJSON_AddObjectToObject(root, "calibration");
    cJSON_AddStringToObject(co, "path", id->calib_path ? id->calib_path : "");
    cJSON_AddStringToObject(co, "sha256", id->calib_sha256 ? id->calib_sha256 : "");
    cJSON_AddNumberToObject(co, "stream_tokens", (double)stream);
    cJSON_AddNumberToObject(co, "tokens", (double)n_seq * slen);
    cJSON_AddNumberToObject(co, "n_seq", n_seq);
    cJSON_AddNumberToObject(co, "seq_len", slen);
    cJSON_AddNumberToObject(co, "seed", (double)eo->seed);
    cJSON_AddNumberToObject(co, "subsample", eo->subsample < n_seq * slen ? eo->subsample : n_seq * slen);
    cJSON *so = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddNumberToObject(so, "eps", float_as_decimal(eo->eps));
    cJSON_AddNumberToObject(so, "tau", float_as_decimal(eo->tau));
    add_d(so, "ridge", eo->ridge);
    cJSON_AddNumberToObject(so, "hist_bins", eo->hist_bins);
    cJSON *ls = cJSON_AddObjectToObject(root, "layer_similarity");
    cJSON_AddStringToObject(ls, "measure", "linear CKA of centred block updates");
    cJSON_AddItemToObject(ls, "matrix", square_matrix(cce_analysis_layer_cka(job, NULL), L));
    cJSON *bl = cJSON_AddArrayToObject(root, "blocks");
    for (int l = 0; l < L; l++) cJSON_AddItemToArray(bl, block_json(cce_analysis_block(job, l)));
    cJSON *tm = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(tm, "total_seconds", id->total_seconds);
    char *printed = cJSON_Print(root);
    cJSON_Delete(root);
    if (!printed) return cce_err_set(err, CCE_ENOMEM, "%s: out of memory formatting the analysis", path);
    size_t plen = strlen(printed);
    printed[plen] = '\n';   // replaces the NUL: the file ends with a newline
    cce_status st = cce_write_file_atomic(path, printed, plen + 1, err);
    cJSON_free(printed);
    return st;
}

/* ------------------------------------------------------------------ reader */

typedef struct {
    const char *file;
    cce_err *err;
    char field[192];
} rd;

static cce_status bad(rd *r, const char *what) {
    return cce_err_set(r->err, CCE_EFORMAT, "%s: %s: %s", r->file, r->field, what);
}

static const cJSON *member(rd *r, const cJSON *o, const char *prefix, const char *key) {
    snprintf(r->field, sizeof r->field, "%s%s%s", prefix, prefix[0] ? "." : "", key);
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* A number member, in [lo, hi]. */
static cce_status get_num(rd *r, const cJSON *o, const char *prefix, const char *key, double lo, double hi, double *v) {
    const cJSON *x = member(r, o, prefix, key);
    if (!cJSON_IsNumber(x)) return bad(r, x ? "not a number" : "missing");
    if (!(x->valuedouble >= lo && x->valuedouble <= hi)) {
        char m[96];
        snprintf(m, sizeof m, "%.17g out of range %g..%g", x->valuedouble, lo, hi);
        return bad(r, m);
    }
    *v = x->valuedouble;
    return CCE_OK;
}

static cce_status get_int(rd *r, const cJSON *o, const char *prefix, const char *key, int lo, int hi, int *v) {
    double d;
    cce_status st = get_num(r, o, prefix, key, lo, hi, &d);
    if (st) return st;
    if (d != floor(d)) return bad(r, "not an integer");
    *v = (int)d;
    return CCE_OK;
}

static cce_status get_bool(rd *r, const cJSON *o, const char *prefix, const char *key, int *v) {
    const cJSON *x = member(r, o, prefix, key);
    if (!cJSON_IsBool(x)) return bad(r, x ? "not a boolean" : "missing");
    *v = cJSON_IsTrue(x);
    return CCE_OK;
}

/* An array member of exactly n numbers, into one of the outputs (double, float, int in [0, hi),
 * int64 >= 0); all_distinct: an int array must be a permutation of 0..n-1. */
static cce_status get_array(rd *r, const cJSON *o, const char *prefix, const char *key, int n, double *dv, float *fv,
                            int *iv, int ihi, int64_t *lv, int all_distinct) {
    const cJSON *a = member(r, o, prefix, key);
    if (!cJSON_IsArray(a)) return bad(r, a ? "not an array" : "missing");
    int got = cJSON_GetArraySize(a);
    if (got != n) {
        char m[96];
        snprintf(m, sizeof m, "%d elements, expected %d", got, n);
        return bad(r, m);
    }
    unsigned char *seen = all_distinct && n > 0 ? cce_alloc_zero((size_t)n, 1) : NULL;
    if (all_distinct && n > 0 && !seen) return cce_err_set(r->err, CCE_ENOMEM, "%s: out of memory", r->file);
    int i = 0;
    cce_status st = CCE_OK;
    for (const cJSON *x = a->child; x && !st; x = x->next, i++) {
        if (!cJSON_IsNumber(x)) { st = bad(r, "element is not a number"); break; }
        double v = x->valuedouble;
        if (!isfinite(v)) { st = bad(r, "element is not finite"); break; }
        if (dv) dv[i] = v;
        if (fv) {
            if (fabs(v) > 3.5e38) { st = bad(r, "element out of float range"); break; }
            fv[i] = (float)v;
        }
        if (iv || lv) {
            if (v != floor(v) || v < 0 || (iv && v >= ihi) || v > 9.0e15) {
                char m[96];
                snprintf(m, sizeof m, "element %d is %.17g, not an integer in 0..%d", i, v, iv ? ihi - 1 : -1);
                st = bad(r, m);
                break;
            }
            if (iv) {
                iv[i] = (int)v;
                if (seen && seen[iv[i]]++) { st = bad(r, "indices repeat (not an order)"); break; }
            }
            if (lv) lv[i] = (int64_t)v;
        }
    }
    cce_free(seen);
    return st;
}

static cce_status get_square(rd *r, const cJSON *o, const char *prefix, const char *key, int n, float *out) {
    const cJSON *a = member(r, o, prefix, key);
    if (!cJSON_IsArray(a)) return bad(r, a ? "not an array" : "missing");
    if (cJSON_GetArraySize(a) != n) return bad(r, "wrong number of rows");
    char base[128];
    snprintf(base, sizeof base, "%.127s", r->field);
    int i = 0;
    for (const cJSON *row = a->child; row; row = row->next, i++) {
        snprintf(r->field, sizeof r->field, "%s[%d]", base, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != n) return bad(r, "row is not an array of the right length");
        int k = 0;
        for (const cJSON *x = row->child; x; x = x->next, k++) {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 3.5e38)
                return bad(r, "element is not a finite number");
            out[(size_t)i * n + k] = (float)x->valuedouble;
        }
    }
    return CCE_OK;
}

static cce_status get_string(rd *r, const cJSON *o, const char *prefix, const char *key, const char **v) {
    const cJSON *x = member(r, o, prefix, key);
    if (!cJSON_IsString(x)) return bad(r, x ? "not a string" : "missing");
    *v = x->valuestring;
    return CCE_OK;
}

#define ALLOC_OR_FAIL(ptr, n, size)                                                                           \
    do {                                                                                                      \
        if (!((ptr) = cce_alloc_zero((size_t)(n) > 0 ? (size_t)(n) : 1, (size))))                             \
            return cce_err_set(r->err, CCE_ENOMEM, "%s: cannot allocate %s", r->file, #ptr);                  \
    } while (0)

/* The rank curve's length for a linear, as the analysis computes it. */
static int rank_steps(const cce_linear *lin) {
    if (!cce_linear_present(lin)) return 0;
    int n = lin->out < lin->in ? lin->out : lin->in;
    int64_t wpar = lin->rank > 0 ? (int64_t)lin->rank * (lin->out + lin->in) : (int64_t)lin->out * lin->in;
    int r0 = (int)((wpar - 1) / (lin->out + lin->in));
    return r0 > n ? n : (r0 < 0 ? 0 : r0);
}

static cce_status read_curve(rd *r, const cJSON *cv, const char *bp, int kind, int n, int order_hi, cce_curve *c) {
    char p[128];
    snprintf(p, sizeof p, "%s.curves", bp);
    const cJSON *o = member(r, cv, p, cce_curve_name((cce_curve_kind)kind));
    if (n == 0) {
        if (o) return bad(r, "present for a kind this block does not have");
        return CCE_OK;
    }
    if (!cJSON_IsObject(o)) return bad(r, o ? "not an object" : "missing");
    char q[160];
    snprintf(q, sizeof q, "%s.%s", p, cce_curve_name((cce_curve_kind)kind));
    int got;
    cce_status st = get_int(r, o, q, "n", 0, 1 << 28, &got);
    if (st) return st;
    if (got != n) return bad(r, "steps do not match the model's shapes");
    int drop = kind >= CCE_CURVE_DROP_ATTN;
    if ((st = cce_curve_alloc(c, n, !drop, r->err))) return st;
    if (curve_is_rank(kind)) {
        int r0;
        if ((st = get_int(r, o, q, "rank0", n, n, &r0))) return st;
        for (int k = 0; k < n; k++) c->order[k] = r0 - k;
    } else if (!drop && (st = get_array(r, o, q, "order", n, NULL, NULL, c->order, order_hi, NULL, 1))) {
        return st;
    }
    if ((st = get_array(r, o, q, "cost", n + 1, c->cost, NULL, NULL, 0, NULL, 0))) return st;
    if (cJSON_GetObjectItemCaseSensitive(o, "sim") &&
        (st = get_array(r, o, q, "sim", n + 1, c->sim, NULL, NULL, 0, NULL, 0)))
        return st;
    if ((st = get_array(r, o, q, "nuc", n + 1, c->nuc, NULL, NULL, 0, NULL, 0))) return st;
    return get_array(r, o, q, "params", n + 1, NULL, NULL, NULL, 0, c->params, 0);
}

static cce_status read_block(rd *r, const cJSON *b, const cce_model *m, int l, int hist_bins, cce_block_result *res) {
    char bp[64];
    snprintf(bp, sizeof bp, "blocks[%d]", l);
    const cce_layer *ly = &m->layers[l];
    int hd = m->cfg.head_dim;
    cce_status st;
    int v;
    res->layer = l;
    res->dim = m->cfg.dim;
    res->head_dim = hd;
    res->dropped = ly->dropped;
    res->n_heads = ly->dropped ? 0 : ly->n_heads;
    res->n_kv_heads = ly->dropped ? 0 : ly->n_kv_heads;
    res->hidden = ly->dropped ? 0 : ly->hidden;
    if (!cJSON_IsObject(b)) { snprintf(r->field, sizeof r->field, "%s", bp); return bad(r, "not an object"); }
    if ((st = get_int(r, b, bp, "layer", l, l, &v))) return st;
    if ((st = get_bool(r, b, bp, "dropped", &v))) return st;
    if (v != res->dropped) return bad(r, "does not match the model");
    if ((st = get_int(r, b, bp, "n_heads", res->n_heads, res->n_heads, &v))) return st;
    if ((st = get_int(r, b, bp, "n_kv_heads", res->n_kv_heads, res->n_kv_heads, &v))) return st;
    if ((st = get_int(r, b, bp, "head_dim", hd, hd, &v))) return st;
    if ((st = get_int(r, b, bp, "hidden", res->hidden, res->hidden, &v))) return st;
    if ((st = get_num(r, b, bp, "angular_distance", 0, 1, &res->angular_distance))) return st;
    if ((st = get_num(r, b, bp, "influence", 0, 2, &res->influence))) return st;
    if ((st = get_num(r, b, bp, "update_rms", 0, 1e300, &res->update_rms))) return st;
    if ((st = get_bool(r, b, bp, "near_identity", &res->near_identity))) return st;
    if ((st = get_num(r, b, bp, "out_energy", 0, 1e300, &res->out_energy))) return st;
    int qd = res->n_heads * hd, dims[CCE_COV_COUNT] = {res->n_heads > 0 ? res->dim : 0, qd,
                                                        res->hidden > 0 ? res->dim : 0, res->hidden};
    char p[160];
    snprintf(p, sizeof p, "%s.eigen", bp);
    const cJSON *eig = member(r, b, bp, "eigen");
    if (!cJSON_IsObject(eig)) return bad(r, eig ? "not an object" : "missing");
    for (int s = 0; s < CCE_COV_COUNT; s++) {
        const char *name = cce_cov_site_name((cce_cov_site)s);
        const cJSON *e = member(r, eig, p, name);
        if (!dims[s]) {
            if (e) return bad(r, "present for a site this block does not have");
            continue;
        }
        if (!cJSON_IsObject(e)) return bad(r, e ? "not an object" : "missing");
        char q[192];
        snprintf(q, sizeof q, "%s.%s", p, name);
        res->eig[s].n = dims[s];
        ALLOC_OR_FAIL(res->eig[s].values, dims[s], sizeof(float));
        if ((st = get_int(r, e, q, "below_eps", 0, dims[s], &res->eig[s].below_eps))) return st;
        if ((st = get_array(r, e, q, "values", dims[s], NULL, res->eig[s].values, NULL, 0, NULL, 0))) return st;
    }
    const cJSON *ws = member(r, b, bp, "weights");
    int present = 0;
    for (int k = 0; k < CCE_LIN_COUNT; k++) present += !ly->dropped && cce_linear_present(cce_layer_lin_c(ly, k));
    if (!cJSON_IsArray(ws) || cJSON_GetArraySize(ws) != present) return bad(r, "not an array of one entry per matrix");
    const cJSON *wj = ws->child;
    for (int k = 0; k < CCE_LIN_COUNT && !ly->dropped; k++) {
        const cce_linear *lin = cce_layer_lin_c(ly, k);
        if (!cce_linear_present(lin)) continue;
        cce_weight_spectrum *w = &res->weights[res->n_weights++];
        char q[96];
        snprintf(q, sizeof q, "%s.weights[%d]", bp, res->n_weights - 1);
        const char *name;
        if ((st = get_string(r, wj, q, "name", &name))) return st;
        if (strcmp(name, cce_lin_names[k])) return bad(r, "matrices out of order");
        snprintf(w->name, sizeof w->name, "%s", cce_lin_names[k]);
        w->rows = lin->out;
        w->cols = lin->in;
        w->n = lin->out < lin->in ? lin->out : lin->in;
        if ((st = get_int(r, wj, q, "rows", lin->out, lin->out, &v))) return st;
        if ((st = get_int(r, wj, q, "cols", lin->in, lin->in, &v))) return st;
        if ((st = get_num(r, wj, q, "spectral_norm", 0, 1e300, &w->spectral_norm))) return st;
        if ((st = get_num(r, wj, q, "frobenius", 0, 1e300, &w->frobenius))) return st;
        if ((st = get_num(r, wj, q, "stable_rank", 0, 1e300, &w->stable_rank))) return st;
        if ((st = get_int(r, wj, q, "below_tau", 0, w->n, &w->below_tau))) return st;
        if ((st = get_int(r, wj, q, "aware_below_tau", 0, w->n, &w->aw_below_tau))) return st;
        double jit;
        if ((st = get_num(r, wj, q, "jitter", 0, 1e30, &jit))) return st;
        w->jitter = (float)jit;
        ALLOC_OR_FAIL(w->sv, w->n, sizeof(float));
        ALLOC_OR_FAIL(w->sv_aw, w->n, sizeof(float));
        if ((st = get_array(r, wj, q, "singular_values", w->n, NULL, w->sv, NULL, 0, NULL, 0))) return st;
        if ((st = get_array(r, wj, q, "aware_singular_values", w->n, NULL, w->sv_aw, NULL, 0, NULL, 0))) return st;
        wj = wj->next;
    }
    int nh = res->n_heads, ng = res->n_kv_heads, hid = res->hidden;
    if (!ly->dropped) {
        ALLOC_OR_FAIL(res->head_cka, (size_t)nh * nh, sizeof(float));
        ALLOC_OR_FAIL(res->group_cka, (size_t)ng * ng, sizeof(float));
        ALLOC_OR_FAIL(res->head_score, nh, sizeof(float));
        ALLOC_OR_FAIL(res->head_cost, nh, sizeof(float));
        ALLOC_OR_FAIL(res->head_order, nh, sizeof(int));
        ALLOC_OR_FAIL(res->group_order, ng, sizeof(int));
        ALLOC_OR_FAIL(res->group_cost, ng + 1, sizeof(double));
        ALLOC_OR_FAIL(res->neuron_score, hid, sizeof(float));
        ALLOC_OR_FAIL(res->neuron_cost, hid, sizeof(float));
        ALLOC_OR_FAIL(res->neuron_order, hid, sizeof(int));
        if ((st = get_square(r, b, bp, "head_similarity", nh, res->head_cka))) return st;
        if ((st = get_square(r, b, bp, "group_similarity", ng, res->group_cka))) return st;
        const cJSON *red = member(r, b, bp, "redundancy");
        if (!cJSON_IsObject(red)) return bad(r, red ? "not an object" : "missing");
        snprintf(p, sizeof p, "%s.redundancy", bp);
        const cJSON *h = member(r, red, p, "heads"), *nr = member(r, red, p, "neurons"), *gr = member(r, red, p, "groups");
        char q[192];
        snprintf(q, sizeof q, "%s.heads", p);
        if ((st = get_array(r, h, q, "score", nh, NULL, res->head_score, NULL, 0, NULL, 0))) return st;
        if ((st = get_array(r, h, q, "cost", nh, NULL, res->head_cost, NULL, 0, NULL, 0))) return st;
        if ((st = get_array(r, h, q, "order", nh, NULL, NULL, res->head_order, nh, NULL, 1))) return st;
        snprintf(q, sizeof q, "%s.neurons", p);
        if ((st = get_array(r, nr, q, "score", hid, NULL, res->neuron_score, NULL, 0, NULL, 0))) return st;
        if ((st = get_array(r, nr, q, "cost", hid, NULL, res->neuron_cost, NULL, 0, NULL, 0))) return st;
        if ((st = get_array(r, nr, q, "order", hid, NULL, NULL, res->neuron_order, hid, NULL, 1))) return st;
        snprintf(q, sizeof q, "%s.groups", p);
        if ((st = get_array(r, gr, q, "order", ng, NULL, NULL, res->group_order, ng, NULL, 1))) return st;
        if ((st = get_array(r, gr, q, "cost", ng > 0 ? ng + 1 : 0, res->group_cost, NULL, NULL, 0, NULL, 0))) return st;
        const cJSON *cv = member(r, b, bp, "curves");
        if (!cJSON_IsObject(cv)) return bad(r, cv ? "not an object" : "missing");
        int n_of[CCE_CURVE_COUNT] = {hid, nh};
        int hi_of[CCE_CURVE_COUNT] = {hid, nh};
        for (int k = 0; k < CCE_LIN_COUNT; k++) n_of[cce_curve_rank_of(k)] = rank_steps(cce_layer_lin_c(ly, k));
        n_of[CCE_CURVE_DROP_ATTN] = nh > 0;
        n_of[CCE_CURVE_DROP_FFN] = hid > 0;
        n_of[CCE_CURVE_DROP_BLOCK] = 1;
        for (int k = 0; k < CCE_CURVE_COUNT; k++)
            if ((st = read_curve(r, cv, bp, k, n_of[k], hi_of[k], &res->curves[k]))) return st;
        for (const cJSON *it = cv->child; it; it = it->next) {   // nothing unknown
            int known = 0;
            for (int k = 0; k < CCE_CURVE_COUNT; k++) known |= it->string && !strcmp(it->string, cce_curve_name((cce_curve_kind)k));
            if (!known) { snprintf(r->field, sizeof r->field, "%s.curves.%s", bp, it->string ? it->string : "?"); return bad(r, "unknown curve"); }
        }
    }
    const cJSON *hs = member(r, b, bp, "histograms");
    if (!cJSON_IsObject(hs)) return bad(r, hs ? "not an object" : "missing");
    snprintf(p, sizeof p, "%s.histograms", bp);
    for (int s = 0; s < CCE_TAP_COUNT; s++) {
        const char *name = cce_tap_site_name((cce_tap_site)s);
        const cJSON *o = member(r, hs, p, name);
        if (!o) continue;
        char q[192];
        snprintf(q, sizeof q, "%s.%s", p, name);
        cce_hist *hg = &res->hist[s];
        if ((st = cce_hist_init(hg, hist_bins, r->err))) return st;
        double lo, hi, mn, mx;
        if ((st = get_num(r, o, q, "lo", -3.5e38, 0, &lo)) || (st = get_num(r, o, q, "hi", 0, 3.5e38, &hi)) ||
            (st = get_num(r, o, q, "min", -1e308, 1e308, &mn)) || (st = get_num(r, o, q, "max", -1e308, 1e308, &mx)))
            return st;
        hg->lo = (float)lo;
        hg->hi = (float)hi;
        hg->min = mn;
        hg->max = mx;
        hg->ready = 1;
        int64_t *cnt;
        ALLOC_OR_FAIL(cnt, hist_bins + 2, sizeof(int64_t));
        st = get_array(r, o, q, "counts", hist_bins + 2, NULL, NULL, NULL, 0, cnt, 0);
        for (int i = 0; !st && i < hist_bins + 2; i++) {
            hg->counts[i] = (uint64_t)cnt[i];
            hg->total += (uint64_t)cnt[i];
        }
        cce_free(cnt);
        if (st) return st;
    }
    const cJSON *t = member(r, b, bp, "timings");
    if (cJSON_IsObject(t)) {   // informative only: absent or partial timings read as 0
        const char *keys[] = {"forward", "stats", "similarity", "eigen", "svd", "redundancy", "blas", "post_forward"};
        double *dst[] = {&res->t_forward, &res->t_stats, &res->t_similarity, &res->t_eigen, &res->t_svd,
                         &res->t_redundancy, &res->t_blas, &res->t_post};
        for (int k = 0; k < 8; k++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(t, keys[k]);
            if (cJSON_IsNumber(x) && x->valuedouble >= 0) *dst[k] = x->valuedouble;
        }
    }
    return CCE_OK;
}

cce_status cce_analysis_load(const char *path, const cce_model *m, cce_analysis **out, cce_err *err) {
    *out = NULL;
    char have[65];
    cce_status st = cce_model_sha256(m->path, have, err);
    if (st) return cce_err_prefix(err, st, path);
    char *txt = NULL;
    size_t len = 0;
    if ((st = cce_read_file(path, ANALYSIS_MAX_FILE, &txt, &len, err))) return st;
    cJSON *root = cJSON_ParseWithLength(txt, len);
    cce_free(txt);
    rd r = {path, err, "(file)"};
    cce_analysis *job = NULL;
    if (!root) {
        st = cce_err_set(err, CCE_EFORMAT, "%s: not valid JSON", path);
        goto done;
    }
    int ver;
    if ((st = get_int(&r, root, "", "format_version", 0, 1 << 30, &ver))) goto done;
    if (ver != ANALYSIS_FORMAT_MAJOR) {
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: format_version: %d is not the supported major %d", path, ver,
                         ANALYSIS_FORMAT_MAJOR);
        goto done;
    }
    const char *kind, *sha;
    if ((st = get_string(&r, root, "", "kind", &kind))) goto done;
    if (strcmp(kind, "analysis")) { st = bad(&r, "not \"analysis\""); goto done; }
    const cJSON *mo = member(&r, root, "", "model");
    if ((st = get_string(&r, mo, "model", "sha256", &sha))) goto done;
    if (strcmp(sha, have)) {
        st = cce_err_set(err, CCE_EINVAL, "%s: model.sha256: %.16s... is not this model's %.16s... (%s)", path, sha, have,
                         m->path);
        goto done;
    }
    int v;
    const cce_config *c = &m->cfg;
    if ((st = get_int(&r, mo, "model", "n_layers", c->n_layers, c->n_layers, &v)) ||
        (st = get_int(&r, mo, "model", "dim", c->dim, c->dim, &v)) ||
        (st = get_int(&r, mo, "model", "head_dim", c->head_dim, c->head_dim, &v)))
        goto done;
    const cJSON *co = member(&r, root, "", "calibration"), *so = member(&r, root, "", "settings");
    int n_seq, seq_len, subsample, bins;
    double seed, stream, eps, tau, ridge;
    if ((st = get_int(&r, co, "calibration", "n_seq", 1, 1 << 24, &n_seq)) ||
        (st = get_int(&r, co, "calibration", "seq_len", 2, c->seq_len, &seq_len)) ||
        (st = get_int(&r, co, "calibration", "subsample", 1, 1 << 30, &subsample)) ||
        (st = get_num(&r, co, "calibration", "seed", 0, 1.8e19, &seed)) ||
        (st = get_num(&r, co, "calibration", "stream_tokens", 0, 1e15, &stream)) ||
        (st = get_num(&r, so, "settings", "eps", 0, 1, &eps)) || (st = get_num(&r, so, "settings", "tau", 0, 1, &tau)) ||
        (st = get_num(&r, so, "settings", "ridge", 0, 1, &ridge)) ||
        (st = get_int(&r, so, "settings", "hist_bins", 1, 4096, &bins)))
        goto done;
    if ((int64_t)n_seq * seq_len > (1L << 24)) { st = bad(&r, "n_seq x seq_len above 16M tokens"); goto done; }
    cce_analysis_opts o;
    cce_analysis_opts_default(&o);
    o.tokens = (long)n_seq * seq_len;
    o.seq_len = seq_len;
    o.seed = (uint64_t)seed;
    o.subsample = subsample;
    o.eps = (float)eps;
    o.tau = (float)tau;
    o.ridge = ridge;
    o.hist_bins = bins;
    if ((st = cce_analysis_new_loaded(m, &o, (size_t)stream, n_seq, seq_len, &job, err))) goto done;
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(co, "path"), *cs = cJSON_GetObjectItemCaseSensitive(co, "sha256");
    cce_analysis_set_calib_identity(job, cJSON_IsString(cp) ? cp->valuestring : "", cJSON_IsString(cs) ? cs->valuestring : "");
    int L = c->n_layers;
    const cJSON *ls = member(&r, root, "", "layer_similarity");
    if ((st = get_square(&r, ls, "layer_similarity", "matrix", L, cce_analysis_layer_cka_slot(job)))) goto done;
    const cJSON *bl = member(&r, root, "", "blocks");
    if (!cJSON_IsArray(bl) || cJSON_GetArraySize(bl) != L) { st = bad(&r, "not an array of one block per layer"); goto done; }
    int l = 0;
    for (const cJSON *b = bl->child; b && !st; b = b->next, l++)
        st = read_block(&r, b, m, l, bins, cce_analysis_result_slot(job, l));
    if (st) goto done;
    cce_analysis_mark_finished(job);
done:
    cJSON_Delete(root);
    if (st) cce_analysis_free(job);
    else *out = job;
    return st;
}
