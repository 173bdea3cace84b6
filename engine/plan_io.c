/*
 * plan_io.c — plan files: JSON writer and validating reader (DESIGN §5, §7).
 *
 *   {"format_version": "1.0", "kind": "cce-plan", "program": "cce X.Y.Z", "method": "cce",
 *    "model": {path, sha256, arch, dim, n_layers, n_heads, n_kv_heads, head_dim, hidden_dim,
 *              vocab_size, params_non_embedding},
 *    "calibration": {path, sha256, tokens, seq_len, seed},
 *    "knobs": {alpha, beta, gamma, eps, tau, target, mode},
 *    "encoding": {redistribute, ridge, intercept, refit_inputs, refit_all, lowrank, tokens, seq_len, seed},
 *    "block_scale": [attn_0, ffn_0, attn_1, ...] (optional: measured sublayer sensitivities),
 *    "pins": [{block, kind, index}], "forces": [...],
 *    "params_before", "params_after", "removed_fraction",     (non-embedding)
 *    "predicted": {L_rec, L_sim, L_reg, L_CCE},
 *    "blocks": [{block, drop, drop_attn, drop_ffn, heads_removed [], neurons_removed [],
 *                ranks {wq..w2}, steps {curve: k}, n_heads, n_kv_heads, hidden,
 *                params_before, params_after, L_rec, L_sim, L_reg, L_CCE}]}
 *
 * The reader trusts nothing: the text must be valid UTF-8 and one JSON object with nothing
 * after it; lookups are case-sensitive; every number is checked to be finite, integral where
 * an integer is meant, and in range; every array's length is bounded by the model's shapes
 * before anything is allocated from it. Derived fields (shapes, counts, losses) are recomputed
 * by cce_plan_finish rather than believed. The first problem found is reported in one line
 * naming the file and the field.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "analysis.h"
#include "plan.h"
#include "util.h"
#include "version.h"

#define PLAN_MAX_BYTES (64u << 20)

/* ---------------------------------------------------------------- writer */

/* Numbers as raw text that reads back bit for bit (cJSON's own printing keeps 15 digits when
 * they parse back within an epsilon, which moves values like 0.1 * 3): the shortest of %.15g,
 * %.16g, %.17g that strtod returns exactly; integers up to 2^63 exactly. */
cJSON *cce_json_exact_number(double v) {
    char buf[40];
    if (!isfinite(v)) return cJSON_CreateNull();
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}
static cJSON *num_item(double v) { return cce_json_exact_number(v); }
static void add_num(cJSON *o, const char *key, double v) { cJSON_AddItemToObject(o, key, num_item(v)); }
static void add_int(cJSON *o, const char *key, int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    cJSON_AddItemToObject(o, key, cJSON_CreateRaw(buf));
}

static cJSON *int_array(const int *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static void add_pins(cJSON *root, const char *key, const cce_pin *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(root, key);
    for (int i = 0; a && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "block", v[i].block);
        cJSON_AddStringToObject(o, "kind", cce_curve_name(v[i].kind));
        cJSON_AddNumberToObject(o, "index", v[i].index);
        cJSON_AddItemToArray(a, o);
    }
}

cce_status cce_plan_to_cjson(const cce_plan *p, cJSON **out, cce_err *err) {
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return cce_err_set(err, CCE_ENOMEM, "plan: out of memory");
    char ver[16];
    snprintf(ver, sizeof ver, "%d.%d", CCE_PLAN_FORMAT_MAJOR, CCE_PLAN_FORMAT_MINOR);
    cJSON_AddStringToObject(root, "format_version", ver);
    cJSON_AddStringToObject(root, "kind", "cce-plan");
    cJSON_AddStringToObject(root, "program", "cce " CCE_VERSION);
    cJSON_AddStringToObject(root, "method", p->method);
    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "path", p->model.path);
    cJSON_AddStringToObject(mo, "sha256", p->model.sha256);
    cJSON_AddStringToObject(mo, "arch", p->model.arch);
    const int mv[7] = {p->model.dim, p->model.n_layers, p->model.n_heads, p->model.n_kv_heads, p->model.head_dim,
                       p->model.hidden_dim, p->model.vocab_size};
    static const char *const mk[7] = {"dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "vocab_size"};
    for (int i = 0; i < 7; i++) add_int(mo, mk[i], mv[i]);
    add_int(mo, "params_non_embedding", p->model.params_non_embedding);
    cJSON *ca = cJSON_AddObjectToObject(root, "calibration");
    cJSON_AddStringToObject(ca, "path", p->calib.path);
    cJSON_AddStringToObject(ca, "sha256", p->calib.sha256);
    add_int(ca, "tokens", p->calib.tokens);
    add_int(ca, "seq_len", p->calib.seq_len);
    add_int(ca, "seed", (int64_t)p->calib.seed);
    cJSON *kn = cJSON_AddObjectToObject(root, "knobs");
    const double kv[6] = {p->knobs.alpha, p->knobs.beta, p->knobs.gamma, p->knobs.eps, p->knobs.tau, p->knobs.target};
    for (int i = 0; i < 6; i++) add_num(kn, cce_knob_names[i], kv[i]);
    cJSON_AddStringToObject(kn, "mode", p->knobs.target > 0 ? "budget" : "threshold");
    cJSON *en = cJSON_AddObjectToObject(root, "encoding");
    cJSON_AddStringToObject(en, "redistribute", cce_redistribute_name(p->enc.redistribute));
    add_num(en, "ridge", p->enc.ridge);
    cJSON_AddBoolToObject(en, "intercept", p->enc.intercept);
    cJSON_AddBoolToObject(en, "refit_inputs", p->enc.refit_inputs);
    cJSON_AddBoolToObject(en, "refit_all", p->enc.refit_all);
    cJSON_AddStringToObject(en, "lowrank", p->enc.lowrank == CCE_LOWRANK_PLAIN ? "plain" : "whitened");
    add_int(en, "tokens", p->enc.tokens);
    add_int(en, "seq_len", p->enc.seq_len);
    add_int(en, "seed", (int64_t)p->enc.seed);
    if (p->block_scale) {
        cJSON *bs = cJSON_AddArrayToObject(root, "block_scale");
        for (int l = 0; bs && l < 2 * p->n_blocks; l++) cJSON_AddItemToArray(bs, num_item(p->block_scale[l]));
    }
    add_pins(root, "pins", p->pins, p->n_pins);
    add_pins(root, "forces", p->forces, p->n_forces);
    add_int(root, "params_before", p->params_before);
    add_int(root, "params_after", p->params_after);
    add_num(root, "removed_fraction", p->removed_fraction);
    cJSON *pr = cJSON_AddObjectToObject(root, "predicted");
    add_num(pr, "L_rec", p->L_rec);
    add_num(pr, "L_sim", p->L_sim);
    add_num(pr, "L_reg", p->L_reg);
    add_num(pr, "L_CCE", p->L_cce);
    cJSON *bl = cJSON_AddArrayToObject(root, "blocks");
    for (int l = 0; bl && l < p->n_blocks; l++) {
        const cce_block_plan *b = &p->blocks[l];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(bl, o);
        cJSON_AddNumberToObject(o, "block", b->block);
        cJSON_AddBoolToObject(o, "drop", b->drop);
        cJSON_AddBoolToObject(o, "drop_attn", b->drop_attn);
        cJSON_AddBoolToObject(o, "drop_ffn", b->drop_ffn);
        cJSON_AddItemToObject(o, "heads_removed", int_array(b->heads_removed, b->n_heads_removed));
        cJSON_AddItemToObject(o, "neurons_removed", int_array(b->neurons_removed, b->n_neurons_removed));
        cJSON *rk = cJSON_AddObjectToObject(o, "ranks");
        for (int k = 0; k < CCE_LIN_COUNT; k++) cJSON_AddNumberToObject(rk, cce_lin_names[k], b->rank[k]);
        cJSON *st = cJSON_AddObjectToObject(o, "steps");
        for (int k = 0; k < CCE_CURVE_COUNT; k++)
            if (b->steps[k]) cJSON_AddNumberToObject(st, cce_curve_name(k), b->steps[k]);
        cJSON_AddNumberToObject(o, "n_heads", b->n_heads);
        cJSON_AddNumberToObject(o, "n_kv_heads", b->n_kv_heads);
        cJSON_AddNumberToObject(o, "hidden", b->hidden);
        add_int(o, "params_before", b->params_before);
        add_int(o, "params_after", b->params_after);
        add_num(o, "L_rec", b->L_rec);
        add_num(o, "L_sim", b->L_sim);
        add_num(o, "L_reg", b->L_reg);
        add_num(o, "L_CCE", b->L_cce);
    }
    *out = root;
    return CCE_OK;
}

cce_status cce_plan_to_json(const cce_plan *p, char **text, cce_err *err) {
    *text = NULL;
    cJSON *root;
    cce_status st = cce_plan_to_cjson(p, &root, err);
    if (st) return st;
    char *t = cJSON_Print(root);
    cJSON_Delete(root);
    if (!t) return cce_err_set(err, CCE_ENOMEM, "plan: out of memory printing JSON");
    size_t n = strlen(t);
    *text = cce_alloc(n + 2, 1);
    if (!*text) {
        cJSON_free(t);
        return cce_err_set(err, CCE_ENOMEM, "plan: out of memory");
    }
    memcpy(*text, t, n);
    (*text)[n] = '\n';
    (*text)[n + 1] = 0;
    cJSON_free(t);
    return CCE_OK;
}

cce_status cce_plan_save(const cce_plan *p, const char *path, cce_err *err) {
    char *text;
    cce_status s = cce_plan_to_json(p, &text, err);
    if (s) return s;
    s = cce_write_file_atomic(path, text, strlen(text), err);
    cce_free(text);
    return s;
}

/* ---------------------------------------------------------------- reader */

typedef struct {
    const char *what;    // the file, for messages
    cce_err *err;
} rd;

static cce_status rd_fail(rd *r, const char *field, const char *why) {
    return cce_err_set(r->err, CCE_EFORMAT, "%s: field '%s' %s", r->what, field, why);
}

static const cJSON *rd_get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

/* Integer field in [lo, hi]; absent -> def when !required. */
static cce_status rd_int(rd *r, const cJSON *o, const char *key, const char *field, int required, int64_t lo,
                         int64_t hi, int64_t def, int64_t *out) {
    const cJSON *it = rd_get(o, key);
    if (!it) {
        if (required) return rd_fail(r, field, "is missing");
        *out = def;
        return CCE_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || floor(it->valuedouble) != it->valuedouble)
        return rd_fail(r, field, "is not an integer");
    if (it->valuedouble < (double)lo || it->valuedouble > (double)hi) {
        char why[96];
        snprintf(why, sizeof why, "= %.17g is out of range [%lld, %lld]", it->valuedouble, (long long)lo, (long long)hi);
        return rd_fail(r, field, why);
    }
    *out = (int64_t)it->valuedouble;
    return CCE_OK;
}

static cce_status rd_num(rd *r, const cJSON *o, const char *key, const char *field, int required, double def,
                         double *out) {
    const cJSON *it = rd_get(o, key);
    if (!it) {
        if (required) return rd_fail(r, field, "is missing");
        *out = def;
        return CCE_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) return rd_fail(r, field, "is not a finite number");
    *out = it->valuedouble;
    return CCE_OK;
}

static cce_status rd_bool(rd *r, const cJSON *o, const char *key, const char *field, int def, int *out) {
    const cJSON *it = rd_get(o, key);
    if (!it) {
        *out = def;
        return CCE_OK;
    }
    if (!cJSON_IsBool(it)) return rd_fail(r, field, "is not true or false");
    *out = cJSON_IsTrue(it);
    return CCE_OK;
}

static cce_status rd_str(rd *r, const cJSON *o, const char *key, const char *field, int required, char *out,
                         size_t cap) {
    const cJSON *it = rd_get(o, key);
    if (!it) {
        if (required) return rd_fail(r, field, "is missing");
        out[0] = 0;
        return CCE_OK;
    }
    if (!cJSON_IsString(it) || !it->valuestring) return rd_fail(r, field, "is not a string");
    if (strlen(it->valuestring) >= cap) return rd_fail(r, field, "is too long");
    snprintf(out, cap, "%s", it->valuestring);
    return CCE_OK;
}

static cce_status rd_obj(rd *r, const cJSON *o, const char *key, int required, const cJSON **out) {
    *out = rd_get(o, key);
    if (!*out) return required ? rd_fail(r, key, "is missing") : CCE_OK;
    if (!cJSON_IsObject(*out)) return rd_fail(r, key, "is not an object");
    return CCE_OK;
}

/* An array of at most max distinct integers in [0, hi) into *out (NULL when empty). */
static cce_status rd_index_list(rd *r, const cJSON *o, const char *key, const char *field, int hi, int **out,
                                int *n) {
    *out = NULL;
    *n = 0;
    const cJSON *a = rd_get(o, key);
    if (!a) return CCE_OK;
    if (!cJSON_IsArray(a)) return rd_fail(r, field, "is not an array");
    int len = cJSON_GetArraySize(a);
    if (len > hi) {
        char why[80];
        snprintf(why, sizeof why, "has %d entries, more than the %d the model has", len, hi);
        return rd_fail(r, field, why);
    }
    if (len == 0) return CCE_OK;
    int *v = cce_alloc((size_t)len, sizeof(int));
    if (!v) return cce_err_set(r->err, CCE_ENOMEM, "%s: out of memory", r->what);
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || floor(x->valuedouble) != x->valuedouble || x->valuedouble < 0 || x->valuedouble >= hi) {
            cce_free(v);
            char why[96];
            snprintf(why, sizeof why, "entry %d is not an index in 0..%d", i, hi - 1);
            return rd_fail(r, field, why);
        }
        v[i] = (int)x->valuedouble;
    }
    *out = v;
    *n = len;
    return CCE_OK;
}

static cce_status rd_pins(rd *r, const cJSON *root, const char *key, int n_blocks, cce_pin **out, int *n) {
    *out = NULL;
    *n = 0;
    const cJSON *a = rd_get(root, key);
    if (!a) return CCE_OK;
    if (!cJSON_IsArray(a)) return rd_fail(r, key, "is not an array");
    int len = cJSON_GetArraySize(a);
    if (len > 1000000) return rd_fail(r, key, "has more than 1,000,000 entries");
    if (len == 0) return CCE_OK;
    cce_pin *v = cce_alloc((size_t)len, sizeof *v);
    if (!v) return cce_err_set(r->err, CCE_ENOMEM, "%s: out of memory", r->what);
    int i = 0;
    cce_status s = CCE_OK;
    for (const cJSON *x = a->child; x && !s; x = x->next, i++) {
        char f[64], kind[32];
        int64_t b, idx;
        snprintf(f, sizeof f, "%s[%d]", key, i);
        if (!cJSON_IsObject(x)) { s = rd_fail(r, f, "is not an object"); break; }
        snprintf(f, sizeof f, "%s[%d].block", key, i);
        if ((s = rd_int(r, x, "block", f, 1, 0, n_blocks - 1, 0, &b))) break;
        snprintf(f, sizeof f, "%s[%d].kind", key, i);
        if ((s = rd_str(r, x, "kind", f, 1, kind, sizeof kind))) break;
        int k = -1;
        for (int q = 0; q < CCE_CURVE_COUNT; q++)
            if (!strcmp(kind, cce_curve_name(q))) k = q;
        if (k < 0) { s = rd_fail(r, f, "is not a curve kind (neurons, heads, rank_wq..rank_w2, drop_attn, drop_ffn, drop_block)"); break; }
        snprintf(f, sizeof f, "%s[%d].index", key, i);
        if ((s = rd_int(r, x, "index", f, 0, -1, 1 << 26, -1, &idx))) break;
        v[i] = (cce_pin){(int)b, (cce_curve_kind)k, (int)idx};
    }
    if (s) {
        cce_free(v);
        return s;
    }
    *out = v;
    *n = len;
    return CCE_OK;
}

static cce_status rd_block(rd *r, const cJSON *o, int l, const cce_model *m, cce_block_plan *b) {
    char f[96];
    cce_status s;
    int64_t v;
    b->block = l;
    snprintf(f, sizeof f, "blocks[%d]", l);
    if (!cJSON_IsObject(o)) return rd_fail(r, f, "is not an object");
    snprintf(f, sizeof f, "blocks[%d].block", l);
    if ((s = rd_int(r, o, "block", f, 1, l, l, l, &v))) return s;
    snprintf(f, sizeof f, "blocks[%d].drop", l);
    if ((s = rd_bool(r, o, "drop", f, 0, &b->drop))) return s;
    snprintf(f, sizeof f, "blocks[%d].drop_attn", l);
    if ((s = rd_bool(r, o, "drop_attn", f, 0, &b->drop_attn))) return s;
    snprintf(f, sizeof f, "blocks[%d].drop_ffn", l);
    if ((s = rd_bool(r, o, "drop_ffn", f, 0, &b->drop_ffn))) return s;
    const cce_layer *L = m ? &m->layers[l] : NULL;
    int nh = L ? (L->dropped ? 0 : L->n_heads) : 1 << 16, hid = L ? (L->dropped ? 0 : L->hidden) : 1 << 26;
    snprintf(f, sizeof f, "blocks[%d].heads_removed", l);
    if ((s = rd_index_list(r, o, "heads_removed", f, nh, &b->heads_removed, &b->n_heads_removed))) return s;
    snprintf(f, sizeof f, "blocks[%d].neurons_removed", l);
    if ((s = rd_index_list(r, o, "neurons_removed", f, hid, &b->neurons_removed, &b->n_neurons_removed))) return s;
    const cJSON *rk;
    snprintf(f, sizeof f, "blocks[%d].ranks", l);
    if ((s = rd_obj(r, o, "ranks", 0, &rk))) return cce_err_set(r->err, s, "%s: field '%s' is not an object", r->what, f);
    for (int k = 0; rk && k < CCE_LIN_COUNT; k++) {
        const cce_linear *x = L ? cce_layer_lin_c(L, k) : NULL;
        int full = x ? (x->out < x->in ? x->out : x->in) : 1 << 26;
        snprintf(f, sizeof f, "blocks[%d].ranks.%s", l, cce_lin_names[k]);
        if ((s = rd_int(r, rk, cce_lin_names[k], f, 0, 0, full, 0, &v))) return s;
        b->rank[k] = (int)v;
    }
    const cJSON *st;
    snprintf(f, sizeof f, "blocks[%d].steps", l);
    if ((s = rd_obj(r, o, "steps", 0, &st))) return cce_err_set(r->err, s, "%s: field '%s' is not an object", r->what, f);
    for (int k = 0; st && k < CCE_CURVE_COUNT; k++) {
        snprintf(f, sizeof f, "blocks[%d].steps.%s", l, cce_curve_name(k));
        if ((s = rd_int(r, st, cce_curve_name(k), f, 0, 0, 1 << 26, 0, &v))) return s;
        b->steps[k] = (int)v;
    }
    return CCE_OK;
}

/* Predicted losses as saved (totals and per block), read leniently: a file without them, or
 * with non-numbers there, keeps zeros (they are recomputed whenever the analysis is at hand). */
static void rd_losses(const cJSON *root, cce_plan *p) {
    static const char *const lk[4] = {"L_rec", "L_sim", "L_reg", "L_CCE"};
    const cJSON *pr = rd_get(root, "predicted"), *bl = rd_get(root, "blocks");
    double *tot[4] = {&p->L_rec, &p->L_sim, &p->L_reg, &p->L_cce};
    for (int k = 0; cJSON_IsObject(pr) && k < 4; k++) {
        const cJSON *v = rd_get(pr, lk[k]);
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) *tot[k] = v->valuedouble;
    }
    int l = 0;
    for (const cJSON *b = cJSON_IsArray(bl) ? bl->child : NULL; b && l < p->n_blocks; b = b->next, l++) {
        double *v4[4] = {&p->blocks[l].L_rec, &p->blocks[l].L_sim, &p->blocks[l].L_reg, &p->blocks[l].L_cce};
        for (int k = 0; k < 4; k++) {
            const cJSON *v = rd_get(b, lk[k]);
            if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) *v4[k] = v->valuedouble;
        }
    }
}

cce_status cce_plan_from_json(const char *text, size_t len, const char *what, const cce_model *m, cce_plan *p,
                              cce_err *err) {
    memset(p, 0, sizeof *p);
    if (!cce_utf8_valid(text, len)) return cce_err_set(err, CCE_EFORMAT, "%s: not valid UTF-8", what);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) return cce_err_set(err, CCE_EFORMAT, "%s: not valid JSON (near byte %ld)", what,
                                  end ? (long)(end - text) : 0L);
    for (const char *q = end; q && q < text + len; q++)
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t') {
            cJSON_Delete(root);
            return cce_err_set(err, CCE_EFORMAT, "%s: garbage after the JSON object at byte %ld", what, (long)(q - text));
        }
    cce_status s = cce_plan_from_cjson(root, what, m, p, err);
    cJSON_Delete(root);
    return s;
}

cce_status cce_plan_from_cjson(const cJSON *root, const char *what, const cce_model *m, cce_plan *p, cce_err *err) {
    memset(p, 0, sizeof *p);
    rd r = {what, err};
    cce_status s = CCE_OK;
    if (!cJSON_IsObject(root)) {
        s = cce_err_set(err, CCE_EFORMAT, "%s: not a JSON object", what);
        goto fail;
    }
    char buf[64];
    if ((s = rd_str(&r, root, "format_version", "format_version", 1, buf, sizeof buf))) goto fail;
    int major = -1, minor = -1, used = 0;
    if (sscanf(buf, "%d.%d%n", &major, &minor, &used) != 2 || major < 0 || minor < 0 || buf[used] != 0) {
        s = rd_fail(&r, "format_version", "is not MAJOR.MINOR");
        goto fail;
    }
    if (major != CCE_PLAN_FORMAT_MAJOR) {
        s = cce_err_set(err, CCE_EUNSUPPORTED, "%s: format_version %s: major version %d is not supported (this build reads %d.x)",
                        what, buf, major, CCE_PLAN_FORMAT_MAJOR);
        goto fail;
    }
    if ((s = rd_str(&r, root, "kind", "kind", 0, buf, sizeof buf))) goto fail;
    if (buf[0] && strcmp(buf, "cce-plan")) {
        s = rd_fail(&r, "kind", "is not \"cce-plan\"");
        goto fail;
    }
    if ((s = rd_str(&r, root, "method", "method", 0, p->method, sizeof p->method))) goto fail;
    if (!p->method[0]) snprintf(p->method, sizeof p->method, "cce");
    /* model identity */
    const cJSON *mo, *ca, *kn, *en, *bl;
    if ((s = rd_obj(&r, root, "model", 1, &mo))) goto fail;
    int64_t v;
    if ((s = rd_str(&r, mo, "path", "model.path", 0, p->model.path, sizeof p->model.path)) ||
        (s = rd_str(&r, mo, "sha256", "model.sha256", 1, p->model.sha256, sizeof p->model.sha256)) ||
        (s = rd_str(&r, mo, "arch", "model.arch", 0, p->model.arch, sizeof p->model.arch)))
        goto fail;
    int *mfield[7] = {&p->model.dim, &p->model.n_layers, &p->model.n_heads, &p->model.n_kv_heads, &p->model.head_dim,
                      &p->model.hidden_dim, &p->model.vocab_size};
    static const char *const mk[7] = {"dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "vocab_size"};
    for (int i = 0; i < 7; i++) {
        char f[48];
        snprintf(f, sizeof f, "model.%s", mk[i]);
        if ((s = rd_int(&r, mo, mk[i], f, 1, 1, 1 << 26, 0, &v))) goto fail;
        *mfield[i] = (int)v;
    }
    if ((s = rd_int(&r, mo, "params_non_embedding", "model.params_non_embedding", 0, 0, (int64_t)1 << 50, 0, &v))) goto fail;
    p->model.params_non_embedding = v;
    if (m && v && v != cce_model_params(m).non_embedding) {
        s = cce_err_set(err, CCE_EINVAL, "%s: field 'model.params_non_embedding' is %lld but the model has %lld: the plan is for another model",
                        what, (long long)v, (long long)cce_model_params(m).non_embedding);
        goto fail;
    }
    if (m) {
        const cce_config *c = &m->cfg;
        const int have[7] = {c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->hidden_dim, c->vocab_size};
        for (int i = 0; i < 7; i++)
            if (*mfield[i] != have[i]) {
                s = cce_err_set(err, CCE_EINVAL, "%s: field 'model.%s' is %d but the model has %d: the plan is for another model",
                                what, mk[i], *mfield[i], have[i]);
                goto fail;
            }
        char sha[65];
        if (m->path && (s = cce_model_sha256(m->path, sha, err))) goto fail;
        if (m->path && strcmp(sha, p->model.sha256)) {
            s = cce_err_set(err, CCE_EINVAL, "%s: field 'model.sha256' is %.16s…, the model %s is %.16s…: the plan is for another model",
                            what, p->model.sha256, m->path, sha);
            goto fail;
        }
    }
    /* calibration */
    if ((s = rd_obj(&r, root, "calibration", 1, &ca))) goto fail;
    if ((s = rd_str(&r, ca, "path", "calibration.path", 0, p->calib.path, sizeof p->calib.path)) ||
        (s = rd_str(&r, ca, "sha256", "calibration.sha256", 0, p->calib.sha256, sizeof p->calib.sha256)) ||
        (s = rd_int(&r, ca, "tokens", "calibration.tokens", 0, 0, 1 << 24, 0, &v)))
        goto fail;
    p->calib.tokens = (long)v;
    if ((s = rd_int(&r, ca, "seq_len", "calibration.seq_len", 0, 0, 1 << 20, 0, &v))) goto fail;
    p->calib.seq_len = (int)v;
    if ((s = rd_int(&r, ca, "seed", "calibration.seed", 0, 0, (int64_t)1 << 53, 1, &v))) goto fail;
    p->calib.seed = (uint64_t)v;
    /* knobs */
    cce_knobs_default(&p->knobs);
    if ((s = rd_obj(&r, root, "knobs", 0, &kn))) goto fail;
    double *kslot[6] = {&p->knobs.alpha, &p->knobs.beta, &p->knobs.gamma, &p->knobs.eps, &p->knobs.tau, &p->knobs.target};
    for (int i = 0; kn && i < 6; i++) {
        char f[32];
        snprintf(f, sizeof f, "knobs.%s", cce_knob_names[i]);
        if ((s = rd_num(&r, kn, cce_knob_names[i], f, 0, *kslot[i], kslot[i]))) goto fail;
    }
    if ((s = cce_knobs_check(&p->knobs, what, err))) goto fail;
    /* encoding */
    cce_encode_opts_default(&p->enc);
    if ((s = rd_obj(&r, root, "encoding", 0, &en))) goto fail;
    if (en) {
        if ((s = rd_str(&r, en, "redistribute", "encoding.redistribute", 0, buf, sizeof buf))) goto fail;
        if (!buf[0] || !strcmp(buf, "lsq")) p->enc.redistribute = CCE_REDIST_LSQ;
        else if (!strcmp(buf, "none")) p->enc.redistribute = CCE_REDIST_NONE;
        else if (!strcmp(buf, "bias")) p->enc.redistribute = CCE_REDIST_BIAS;
        else { s = rd_fail(&r, "encoding.redistribute", "is not none, lsq or bias"); goto fail; }
        if ((s = rd_num(&r, en, "ridge", "encoding.ridge", 0, p->enc.ridge, &p->enc.ridge))) goto fail;
        if (!(p->enc.ridge > 0 && p->enc.ridge <= 1e3)) { s = rd_fail(&r, "encoding.ridge", "is out of range (0, 1000]"); goto fail; }
        if ((s = rd_bool(&r, en, "intercept", "encoding.intercept", p->enc.intercept, &p->enc.intercept)) ||
            (s = rd_bool(&r, en, "refit_inputs", "encoding.refit_inputs", p->enc.refit_inputs, &p->enc.refit_inputs)) ||
            (s = rd_bool(&r, en, "refit_all", "encoding.refit_all", p->enc.refit_all, &p->enc.refit_all)))
            goto fail;
        if ((s = rd_str(&r, en, "lowrank", "encoding.lowrank", 0, buf, sizeof buf))) goto fail;
        if (!buf[0] || !strcmp(buf, "whitened")) p->enc.lowrank = CCE_LOWRANK_WHITENED;
        else if (!strcmp(buf, "plain")) p->enc.lowrank = CCE_LOWRANK_PLAIN;
        else { s = rd_fail(&r, "encoding.lowrank", "is not whitened or plain"); goto fail; }
        if ((s = rd_int(&r, en, "tokens", "encoding.tokens", 0, 2, 1 << 24, p->enc.tokens, &v))) goto fail;
        p->enc.tokens = (long)v;
        if ((s = rd_int(&r, en, "seq_len", "encoding.seq_len", 0, 0, 1 << 20, 0, &v))) goto fail;
        p->enc.seq_len = (int)v;
        if ((s = rd_int(&r, en, "seed", "encoding.seed", 0, 0, (int64_t)1 << 53, 1, &v))) goto fail;
        p->enc.seed = (uint64_t)v;
    }
    /* blocks */
    if ((s = rd_get(root, "blocks") ? CCE_OK : rd_fail(&r, "blocks", "is missing"))) goto fail;
    bl = rd_get(root, "blocks");
    if (!cJSON_IsArray(bl)) { s = rd_fail(&r, "blocks", "is not an array"); goto fail; }
    int nb = cJSON_GetArraySize(bl);
    if (nb != p->model.n_layers) {
        char why[96];
        snprintf(why, sizeof why, "has %d entries, model.n_layers is %d", nb, p->model.n_layers);
        s = rd_fail(&r, "blocks", why);
        goto fail;
    }
    p->n_blocks = nb;
    p->blocks = cce_alloc_zero((size_t)nb, sizeof *p->blocks);
    if (!p->blocks) { s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", what); goto fail; }
    int l = 0;
    for (const cJSON *o = bl->child; o; o = o->next, l++)
        if ((s = rd_block(&r, o, l, m, &p->blocks[l]))) goto fail;
    const cJSON *bs = rd_get(root, "block_scale");
    if (bs && !cJSON_IsNull(bs)) {
        if (!cJSON_IsArray(bs) || cJSON_GetArraySize(bs) != 2 * nb) { s = rd_fail(&r, "block_scale", "is not an array of two numbers per block"); goto fail; }
        if (!(p->block_scale = cce_alloc((size_t)nb * 2, sizeof(double)))) { s = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", what); goto fail; }
        int q = 0;
        for (const cJSON *x = bs->child; x; x = x->next, q++) {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble <= 0 || x->valuedouble > 1e12) {
                s = rd_fail(&r, "block_scale", "has an entry that is not a positive number below 1e12");
                goto fail;
            }
            p->block_scale[q] = x->valuedouble;
        }
    }
    if ((s = rd_pins(&r, root, "pins", nb, &p->pins, &p->n_pins)) ||
        (s = rd_pins(&r, root, "forces", nb, &p->forces, &p->n_forces)))
        goto fail;
    if (m && (s = cce_plan_finish(p, m, err))) {
        cce_err_prefix(err, s, what);
        goto fail;
    }
    rd_losses(root, p);
    return CCE_OK;
fail:
    cce_plan_free(p);
    return s;
}

cce_status cce_plan_load(const char *path, const cce_model *m, cce_plan *p, cce_err *err) {
    char *text = NULL;
    size_t len = 0;
    memset(p, 0, sizeof *p);
    /* a legitimate plan lists at most every head and neuron of the model: bound the file by that
     * (a few bytes per index), so a hostile file of a million zeros never becomes gigabytes of
     * parsed JSON nodes */
    size_t cap = PLAN_MAX_BYTES;
    if (m) {
        uint64_t idx = 0;
        for (int l = 0; l < m->cfg.n_layers; l++) idx += (uint64_t)m->layers[l].n_heads + (uint64_t)m->layers[l].hidden;
        uint64_t want = (1u << 20) + idx * 12;
        if (want < cap) cap = (size_t)want;
    }
    cce_status s = cce_read_file(path, cap, &text, &len, err);
    if (s) return s;
    s = cce_plan_from_json(text, len, path, m, p, err);
    cce_free(text);
    return s;
}
