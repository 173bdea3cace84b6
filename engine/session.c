/*
 * session.c — session files: writer and validating reader (the format and the rules are in
 * include/session.h).
 *
 * The plan inside a session is written by plan_io.c's writer and read back by its reader (one
 * plan format, one reader): the "plan" member is printed back to text and handed to
 * cce_plan_from_json without the model, so the model is hashed once here, not twice; then
 * cce_plan_finish checks every index against the model. A finished plan is canonical, so
 * finishing it again changes nothing: the plan read is the plan written.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "analysis.h"
#include "session.h"
#include "util.h"
#include "version.h"

#define MAX_INT53 ((int64_t)1 << 53)

void cce_session_init(cce_session *s) { memset(s, 0, sizeof *s); }

void cce_session_free(cce_session *s) {
    if (!s) return;
    cce_plan_free(&s->plan);
    cce_free(s->commits);
    memset(s, 0, sizeof *s);
}

cce_status cce_session_add_commit(cce_session *s, const cce_commit_record *r, cce_err *err) {
    if (s->n_commits >= CCE_SESSION_MAX_COMMITS)
        return cce_err_set(err, CCE_EINVAL, "session: more than %d commits", CCE_SESSION_MAX_COMMITS);
    cce_commit_record *v = cce_realloc(s->commits, (size_t)s->n_commits + 1, sizeof *v);
    if (!v) return cce_err_set(err, CCE_ENOMEM, "session: out of memory recording a commit");
    v[s->n_commits++] = *r;
    s->commits = v;
    return CCE_OK;
}

/* ---------------------------------------------------------------- names */

cce_status cce_session_name_check(const char *name, cce_err *err) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0) return cce_err_set(err, CCE_EINVAL, "session name is empty");
    if (n > 64) return cce_err_set(err, CCE_EINVAL, "session name '%.20s...' is longer than 64 characters", name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '_' || c == '-' || c == '.'));
        if (!ok)
            return cce_err_set(err, CCE_EINVAL,
                               "session name '%s': '%c' is not allowed (letters, digits, _ - . ; a letter or digit first)",
                               name, (c >= 32 && c < 127) ? c : '?');
    }
    if (cce_str_ends_with(name, ".analysis") || cce_str_ends_with(name, ".json"))
        return cce_err_set(err, CCE_EINVAL, "session name '%s' must not end in .analysis or .json", name);
    return CCE_OK;
}

cce_status cce_session_path(const char *dir, const char *name, int analysis, char *out, size_t cap, cce_err *err) {
    cce_status s = cce_session_name_check(name, err);
    if (s) return s;
    int n = snprintf(out, cap, "%s/%s%s", dir && *dir ? dir : ".", name, analysis ? ".analysis.json" : ".json");
    if (n < 0 || (size_t)n >= cap) return cce_err_set(err, CCE_EINVAL, "session path for '%s' is too long", name);
    return CCE_OK;
}

/* ---------------------------------------------------------------- writer */

static void add_knobs(cJSON *o, const char *key, const cce_knobs *k) {
    cJSON *kn = cJSON_AddObjectToObject(o, key);
    const double v[6] = {k->alpha, k->beta, k->gamma, k->eps, k->tau, k->target};
    for (int i = 0; kn && i < 6; i++) cJSON_AddItemToObject(kn, cce_knob_names[i], cce_json_exact_number(v[i]));
}

static void add_pins(cJSON *o, const char *key, const cce_pin *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToObject(x, "block", cce_json_exact_number(v[i].block));
        cJSON_AddStringToObject(x, "kind", cce_curve_name(v[i].kind));
        cJSON_AddItemToObject(x, "index", cce_json_exact_number(v[i].index));
        cJSON_AddItemToArray(a, x);
    }
}

static void add_measure(cJSON *o, const char *key, const cce_measure *m) {
    cJSON *x = cJSON_AddObjectToObject(o, key);
    cJSON_AddItemToObject(x, "loss", cce_json_exact_number(m->loss));
    cJSON_AddItemToObject(x, "ppl", cce_json_exact_number(m->ppl));
    cJSON_AddItemToObject(x, "accuracy", cce_json_exact_number(m->accuracy));
    cJSON_AddNumberToObject(x, "params", (double)m->params);
    cJSON_AddNumberToObject(x, "bytes", (double)m->bytes);
    cJSON_AddItemToObject(x, "tokens_per_s", cce_json_exact_number(m->tokens_per_s));
}

static void utc_text(int64_t t, char *buf, size_t cap) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm)) strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else snprintf(buf, cap, "?");
}

cce_status cce_session_to_json(const cce_session *s, char **text, cce_err *err) {
    *text = NULL;
    cJSON *plan = NULL;
    cce_status st = cce_plan_to_cjson(&s->plan, &plan, err);
    if (st) return st;
    cJSON *root = cJSON_CreateObject();
    if (!plan || !root) {
        cJSON_Delete(plan);
        cJSON_Delete(root);
        return cce_err_set(err, CCE_ENOMEM, "session: out of memory");
    }
    char ver[16], when[40];
    snprintf(ver, sizeof ver, "%d.%d", CCE_SESSION_FORMAT_MAJOR, CCE_SESSION_FORMAT_MINOR);
    cJSON_AddStringToObject(root, "format_version", ver);
    cJSON_AddStringToObject(root, "kind", "cce-session");
    cJSON_AddStringToObject(root, "program", "cce " CCE_VERSION);
    cJSON_AddNumberToObject(root, "created", (double)s->created);
    utc_text(s->created, when, sizeof when);
    cJSON_AddStringToObject(root, "created_utc", when);
    const cce_model_id *mi = &s->model;
    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "path", mi->path);
    cJSON_AddStringToObject(mo, "sha256", mi->sha256);
    cJSON_AddStringToObject(mo, "arch", mi->arch);
    const int mv[7] = {mi->dim, mi->n_layers, mi->n_heads, mi->n_kv_heads, mi->head_dim, mi->hidden_dim, mi->vocab_size};
    static const char *const mk[7] = {"dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "vocab_size"};
    for (int i = 0; i < 7; i++) cJSON_AddItemToObject(mo, mk[i], cce_json_exact_number(mv[i]));
    cJSON_AddNumberToObject(mo, "params_non_embedding", (double)mi->params_non_embedding);
    cJSON *ca = cJSON_AddObjectToObject(root, "calibration");
    cJSON_AddStringToObject(ca, "path", s->calib.path);
    cJSON_AddStringToObject(ca, "sha256", s->calib.sha256);
    cJSON_AddNumberToObject(ca, "tokens", (double)s->calib.tokens);
    cJSON_AddNumberToObject(ca, "seq_len", s->calib.seq_len);
    cJSON_AddNumberToObject(ca, "seed", (double)s->calib.seed);
    cJSON *an = cJSON_AddObjectToObject(root, "analysis");
    cJSON_AddNumberToObject(an, "tokens", (double)s->analysis.tokens);
    cJSON_AddNumberToObject(an, "seq_len", s->analysis.seq_len);
    cJSON_AddNumberToObject(an, "seed", (double)s->analysis.seed);
    cJSON_AddStringToObject(an, "file", s->analysis.file);
    cJSON_AddStringToObject(an, "sha256", s->analysis.sha256);
    add_knobs(root, "knobs", &s->plan.knobs);
    add_pins(root, "pins", s->plan.pins, s->plan.n_pins);
    add_pins(root, "forces", s->plan.forces, s->plan.n_forces);
    cJSON_AddItemToObject(root, "plan", plan);
    cJSON *cm = cJSON_AddArrayToObject(root, "commits");
    for (int i = 0; cm && i < s->n_commits; i++) {
        const cce_commit_record *r = &s->commits[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(cm, o);
        cJSON_AddNumberToObject(o, "time", (double)r->time);
        utc_text(r->time, when, sizeof when);
        cJSON_AddStringToObject(o, "time_utc", when);
        add_knobs(o, "knobs", &r->knobs);
        cJSON_AddItemToObject(o, "removed_fraction", cce_json_exact_number(r->removed_fraction));
        cJSON *pr = cJSON_AddObjectToObject(o, "predicted");
        cJSON_AddItemToObject(pr, "L_rec", cce_json_exact_number(r->L_rec));
        cJSON_AddItemToObject(pr, "L_sim", cce_json_exact_number(r->L_sim));
        cJSON_AddItemToObject(pr, "L_reg", cce_json_exact_number(r->L_reg));
        cJSON_AddItemToObject(pr, "L_CCE", cce_json_exact_number(r->L_cce));
        cJSON *ev = cJSON_AddObjectToObject(o, "evaluation");
        cJSON_AddStringToObject(ev, "path", r->eval_path);
        cJSON_AddStringToObject(ev, "sha256", r->eval_sha256);
        cJSON_AddNumberToObject(ev, "tokens", (double)r->eval_tokens);
        cJSON_AddNumberToObject(ev, "seq_len", r->eval_seq_len);
        add_measure(o, "before", &r->before);
        add_measure(o, "after", &r->after);
    }
    char *t = cJSON_Print(root);
    cJSON_Delete(root);
    if (!t) return cce_err_set(err, CCE_ENOMEM, "session: out of memory printing JSON");
    size_t n = strlen(t);
    *text = cce_alloc(n + 2, 1);
    if (!*text) {
        cJSON_free(t);
        return cce_err_set(err, CCE_ENOMEM, "session: out of memory");
    }
    memcpy(*text, t, n);
    (*text)[n] = '\n';
    (*text)[n + 1] = 0;
    cJSON_free(t);
    return CCE_OK;
}

cce_status cce_session_save(const cce_session *s, const char *path, cce_err *err) {
    char *text;
    cce_status st = cce_session_to_json(s, &text, err);
    if (st) return st;
    st = cce_write_file_atomic(path, text, strlen(text), err);
    cce_free(text);
    return st;
}

/* ---------------------------------------------------------------- reader */

typedef struct {
    const char *what;
    cce_err *err;
} rd;

static cce_status bad(rd *r, const char *field, const char *why) {
    return cce_err_set(r->err, CCE_EFORMAT, "%s: field '%s' %s", r->what, field, why);
}

static const cJSON *get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static cce_status rd_obj(rd *r, const cJSON *o, const char *key, const char *field, const cJSON **out) {
    *out = get(o, key);
    if (!*out) return bad(r, field, "is missing");
    if (!cJSON_IsObject(*out)) return bad(r, field, "is not an object");
    return CCE_OK;
}

static cce_status rd_int(rd *r, const cJSON *o, const char *key, const char *field, int64_t lo, int64_t hi,
                         int64_t *out) {
    const cJSON *it = get(o, key);
    if (!it) return bad(r, field, "is missing");
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || floor(it->valuedouble) != it->valuedouble)
        return bad(r, field, "is not an integer");
    if (it->valuedouble < (double)lo || it->valuedouble > (double)hi) {
        char why[112];
        snprintf(why, sizeof why, "= %.17g is out of range [%lld, %lld]", it->valuedouble, (long long)lo, (long long)hi);
        return bad(r, field, why);
    }
    *out = (int64_t)it->valuedouble;
    return CCE_OK;
}

static cce_status rd_num(rd *r, const cJSON *o, const char *key, const char *field, double lo, double hi,
                         double *out) {
    const cJSON *it = get(o, key);
    if (!it) return bad(r, field, "is missing");
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) return bad(r, field, "is not a finite number");
    if (it->valuedouble < lo || it->valuedouble > hi) {
        char why[112];
        snprintf(why, sizeof why, "= %.17g is out of range [%g, %g]", it->valuedouble, lo, hi);
        return bad(r, field, why);
    }
    *out = it->valuedouble;
    return CCE_OK;
}

/* A string member; absent -> "" unless required. */
static cce_status rd_str(rd *r, const cJSON *o, const char *key, const char *field, int required, char *out,
                         size_t cap) {
    const cJSON *it = get(o, key);
    out[0] = 0;
    if (!it) return required ? bad(r, field, "is missing") : CCE_OK;
    if (!cJSON_IsString(it) || !it->valuestring) return bad(r, field, "is not a string");
    if (strlen(it->valuestring) >= cap) return bad(r, field, "is too long");
    snprintf(out, cap, "%s", it->valuestring);
    return CCE_OK;
}

/* A sha256 field: "" (when allowed) or 64 lowercase hex digits. */
static cce_status rd_sha(rd *r, const cJSON *o, const char *key, const char *field, int required, char out[65]) {
    cce_status s = rd_str(r, o, key, field, required, out, 65);
    if (s) return s;
    size_t n = strlen(out);
    if (n == 0 && !required) return CCE_OK;
    if (n != 64) return bad(r, field, "is not a SHA-256 (64 hex digits)");
    for (size_t i = 0; i < n; i++)
        if (!((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f')))
            return bad(r, field, "is not a SHA-256 (64 lowercase hex digits)");
    return CCE_OK;
}

static cce_status rd_knobs(rd *r, const cJSON *o, const char *key, const char *field, cce_knobs *k) {
    const cJSON *kn;
    cce_status s = rd_obj(r, o, key, field, &kn);
    if (s) return s;
    double *slot[6] = {&k->alpha, &k->beta, &k->gamma, &k->eps, &k->tau, &k->target};
    for (int i = 0; i < 6; i++) {
        char f[80];
        snprintf(f, sizeof f, "%s.%s", field, cce_knob_names[i]);
        if ((s = rd_num(r, kn, cce_knob_names[i], f, -INFINITY, INFINITY, slot[i]))) return s;
    }
    if ((s = cce_knobs_check(k, r->what, r->err))) {
        char msg[sizeof r->err->msg];
        snprintf(msg, sizeof msg, "%s", r->err->msg);
        return cce_err_set(r->err, CCE_EINVAL, "%s (field '%s')", msg, field);
    }
    return CCE_OK;
}

/* How many components of kind k block l of m has (the largest index + 1 a pin may name); with
 * m NULL a loose bound. Drop kinds: 0 (only index -1 names them). */
static int kind_count(const cce_model *m, int l, int k) {
    if (k >= CCE_CURVE_DROP_ATTN) return 0;
    if (!m) return 1 << 26;
    const cce_layer *L = &m->layers[l];
    if (L->dropped) return 0;
    if (k == CCE_CURVE_NEURONS) return L->hidden;
    if (k == CCE_CURVE_HEADS) return L->n_heads;
    const cce_linear *x = cce_layer_lin_c(L, k - CCE_CURVE_RANK_WQ);
    return (x->out < x->in ? x->out : x->in) + 1;   // a rank pin names a rank 0..min(out, in)
}

static cce_status rd_pins(rd *r, const cJSON *root, const char *key, const cce_model *m, int n_layers,
                          cce_pin **out, int *n) {
    *out = NULL;
    *n = 0;
    const cJSON *a = get(root, key);
    if (!a) return bad(r, key, "is missing");
    if (!cJSON_IsArray(a)) return bad(r, key, "is not an array");
    int len = cJSON_GetArraySize(a);
    /* at most one pin per component, sublayer and block of the model */
    int64_t bound = m ? 0 : 1000000;
    for (int l = 0; m && l < n_layers && bound < 1000000; l++)
        for (int k = 0; k < CCE_CURVE_COUNT; k++) bound += kind_count(m, l, k) + 1;
    if (bound > 1000000) bound = 1000000;
    if (len > bound) {
        char why[96];
        snprintf(why, sizeof why, "has %d entries, more than the model's %lld components", len, (long long)bound);
        return bad(r, key, why);
    }
    if (len == 0) return CCE_OK;
    cce_pin *v = cce_alloc((size_t)len, sizeof *v);
    if (!v) return cce_err_set(r->err, CCE_ENOMEM, "%s: out of memory", r->what);
    cce_status s = CCE_OK;
    int i = 0;
    for (const cJSON *x = a->child; x && !s; x = x->next, i++) {
        char f[64], kind[32];
        int64_t b, idx;
        snprintf(f, sizeof f, "%s[%d]", key, i);
        if (!cJSON_IsObject(x)) { s = bad(r, f, "is not an object"); break; }
        snprintf(f, sizeof f, "%s[%d].block", key, i);
        if ((s = rd_int(r, x, "block", f, 0, n_layers - 1, &b))) break;
        snprintf(f, sizeof f, "%s[%d].kind", key, i);
        if ((s = rd_str(r, x, "kind", f, 1, kind, sizeof kind))) break;
        int k = -1;
        for (int q = 0; q < CCE_CURVE_COUNT; q++)
            if (!strcmp(kind, cce_curve_name((cce_curve_kind)q))) k = q;
        if (k < 0) { s = bad(r, f, "is not a curve kind (neurons, heads, rank_wq..rank_w2, drop_attn, drop_ffn, drop_block)"); break; }
        snprintf(f, sizeof f, "%s[%d].index", key, i);
        if ((s = rd_int(r, x, "index", f, -1, kind_count(m, (int)b, k) - 1, &idx))) break;
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

static cce_status rd_measure(rd *r, const cJSON *o, const char *key, const char *field, cce_measure *m) {
    const cJSON *x;
    cce_status s = rd_obj(r, o, key, field, &x);
    if (s) return s;
    char f[96];
    int64_t v;
    snprintf(f, sizeof f, "%s.loss", field);
    if ((s = rd_num(r, x, "loss", f, 0, 1e6, &m->loss))) return s;
    snprintf(f, sizeof f, "%s.ppl", field);
    if ((s = rd_num(r, x, "ppl", f, 0, 1e300, &m->ppl))) return s;
    snprintf(f, sizeof f, "%s.accuracy", field);
    if ((s = rd_num(r, x, "accuracy", f, 0, 1, &m->accuracy))) return s;
    snprintf(f, sizeof f, "%s.params", field);
    if ((s = rd_int(r, x, "params", f, 0, MAX_INT53, &v))) return s;
    m->params = v;
    snprintf(f, sizeof f, "%s.bytes", field);
    if ((s = rd_int(r, x, "bytes", f, 0, MAX_INT53, &v))) return s;
    m->bytes = (uint64_t)v;
    snprintf(f, sizeof f, "%s.tokens_per_s", field);
    return rd_num(r, x, "tokens_per_s", f, 0, 1e15, &m->tokens_per_s);
}

static cce_status rd_commit(rd *r, const cJSON *o, int i, cce_commit_record *c) {
    char f[96];
    cce_status s;
    int64_t v;
    memset(c, 0, sizeof *c);
    snprintf(f, sizeof f, "commits[%d]", i);
    if (!cJSON_IsObject(o)) return bad(r, f, "is not an object");
    snprintf(f, sizeof f, "commits[%d].time", i);
    if ((s = rd_int(r, o, "time", f, 0, MAX_INT53, &v))) return s;
    c->time = v;
    snprintf(f, sizeof f, "commits[%d].knobs", i);
    if ((s = rd_knobs(r, o, "knobs", f, &c->knobs))) return s;
    snprintf(f, sizeof f, "commits[%d].removed_fraction", i);
    if ((s = rd_num(r, o, "removed_fraction", f, -1, 1, &c->removed_fraction))) return s;
    const cJSON *pr, *ev;
    snprintf(f, sizeof f, "commits[%d].predicted", i);
    if ((s = rd_obj(r, o, "predicted", f, &pr))) return s;
    static const char *const lk[4] = {"L_rec", "L_sim", "L_reg", "L_CCE"};
    double *ls[4] = {&c->L_rec, &c->L_sim, &c->L_reg, &c->L_cce};
    for (int k = 0; k < 4; k++) {
        snprintf(f, sizeof f, "commits[%d].predicted.%s", i, lk[k]);
        if ((s = rd_num(r, pr, lk[k], f, -1e300, 1e300, ls[k]))) return s;
    }
    snprintf(f, sizeof f, "commits[%d].evaluation", i);
    if ((s = rd_obj(r, o, "evaluation", f, &ev))) return s;
    snprintf(f, sizeof f, "commits[%d].evaluation.path", i);
    if ((s = rd_str(r, ev, "path", f, 1, c->eval_path, sizeof c->eval_path))) return s;
    snprintf(f, sizeof f, "commits[%d].evaluation.sha256", i);
    if ((s = rd_sha(r, ev, "sha256", f, 0, c->eval_sha256))) return s;
    snprintf(f, sizeof f, "commits[%d].evaluation.tokens", i);
    if ((s = rd_int(r, ev, "tokens", f, 0, MAX_INT53, &v))) return s;
    c->eval_tokens = (long)v;
    snprintf(f, sizeof f, "commits[%d].evaluation.seq_len", i);
    if ((s = rd_int(r, ev, "seq_len", f, 0, 1 << 20, &v))) return s;
    c->eval_seq_len = (int)v;
    snprintf(f, sizeof f, "commits[%d].before", i);
    if ((s = rd_measure(r, o, "before", f, &c->before))) return s;
    snprintf(f, sizeof f, "commits[%d].after", i);
    return rd_measure(r, o, "after", f, &c->after);
}

static cce_status rd_model(rd *r, const cJSON *root, cce_model_id *id) {
    const cJSON *mo;
    cce_status s = rd_obj(r, root, "model", "model", &mo);
    if (s) return s;
    if ((s = rd_str(r, mo, "path", "model.path", 0, id->path, sizeof id->path)) ||
        (s = rd_sha(r, mo, "sha256", "model.sha256", 1, id->sha256)) ||
        (s = rd_str(r, mo, "arch", "model.arch", 1, id->arch, sizeof id->arch)))
        return s;
    int *f[7] = {&id->dim, &id->n_layers, &id->n_heads, &id->n_kv_heads, &id->head_dim, &id->hidden_dim, &id->vocab_size};
    static const char *const mk[7] = {"dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "vocab_size"};
    int64_t v;
    for (int i = 0; i < 7; i++) {
        char fn[48];
        snprintf(fn, sizeof fn, "model.%s", mk[i]);
        if ((s = rd_int(r, mo, mk[i], fn, 1, 1 << 26, &v))) return s;
        *f[i] = (int)v;
    }
    if ((s = rd_int(r, mo, "params_non_embedding", "model.params_non_embedding", 0, MAX_INT53, &v))) return s;
    id->params_non_embedding = v;
    return CCE_OK;
}

/* The session's model against m: shapes first (cheap), then the sha256. */
static cce_status check_model(rd *r, const cce_model_id *id, const cce_model *m, const cce_model_id *have) {
    const cce_config *c = &m->cfg;
    const int want[7] = {id->dim, id->n_layers, id->n_heads, id->n_kv_heads, id->head_dim, id->hidden_dim, id->vocab_size};
    const int got[7] = {c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->hidden_dim, c->vocab_size};
    static const char *const mk[7] = {"dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "hidden_dim", "vocab_size"};
    for (int i = 0; i < 7; i++)
        if (want[i] != got[i])
            return cce_err_set(r->err, CCE_EINVAL, "%s: made for another model (%s: model.%s is %d, %s has %d)", r->what,
                               id->path[0] ? id->path : "?", mk[i], want[i], m->path ? m->path : "this model", got[i]);
    char sha[65];
    if (have && have->sha256[0]) snprintf(sha, sizeof sha, "%s", have->sha256);
    else {
        cce_status s = cce_model_sha256(m->path, sha, r->err);
        if (s) return s;
    }
    if (strcmp(sha, id->sha256))
        return cce_err_set(r->err, CCE_EINVAL, "%s: made for another model (%s, sha256 %.12s...; %s is %.12s...)", r->what,
                           id->path[0] ? id->path : "?", id->sha256, m->path ? m->path : "this model", sha);
    return CCE_OK;
}

static int pins_equal(const cce_pin *a, int na, const cce_pin *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i].block != b[i].block || a[i].kind != b[i].kind || a[i].index != b[i].index) return 0;
    return 1;
}

static cce_status rd_plan(rd *r, const cJSON *root, const cce_model *m, cce_plan *p) {
    const cJSON *po;
    cce_status s = rd_obj(r, root, "plan", "plan", &po);
    if (s) return s;
    char what[600];
    snprintf(what, sizeof what, "%s: plan", r->what);
    /* the plan object itself (numbers exactly as written; the predicted losses as saved, kept
     * until the same analysis is there to recompute them) */
    if ((s = cce_plan_from_cjson(po, what, NULL, p, r->err))) return s;
    if (m && (s = cce_plan_finish(p, m, r->err))) return cce_err_prefix(r->err, s, what);
    return CCE_OK;
}

cce_status cce_session_from_json(const char *text, size_t len, const char *what, const cce_model *m,
                                 const cce_model_id *have, cce_session *s, cce_err *err) {
    cce_session_init(s);
    rd r = {what, err};
    if (!cce_utf8_valid(text, len)) return cce_err_set(err, CCE_EFORMAT, "%s: not valid UTF-8", what);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root)
        return cce_err_set(err, CCE_EFORMAT, "%s: not valid JSON (near byte %ld)", what, end ? (long)(end - text) : 0L);
    cce_status st = CCE_OK;
    for (const char *q = end; q && q < text + len; q++)
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t') {
            st = cce_err_set(err, CCE_EFORMAT, "%s: garbage after the JSON object at byte %ld", what, (long)(q - text));
            goto fail;
        }
    if (!cJSON_IsObject(root)) { st = cce_err_set(err, CCE_EFORMAT, "%s: not a JSON object", what); goto fail; }
    char buf[64];
    if ((st = rd_str(&r, root, "format_version", "format_version", 1, buf, sizeof buf))) goto fail;
    int major = -1, minor = -1;
    char extra;
    if (sscanf(buf, "%d.%d%c", &major, &minor, &extra) != 2 || major < 0 || minor < 0) {
        st = bad(&r, "format_version", "is not MAJOR.MINOR");
        goto fail;
    }
    if (major != CCE_SESSION_FORMAT_MAJOR) {
        st = cce_err_set(err, CCE_EUNSUPPORTED, "%s: format_version %s: major version %d is not supported (this build reads %d.x)",
                         what, buf, major, CCE_SESSION_FORMAT_MAJOR);
        goto fail;
    }
    if ((st = rd_str(&r, root, "kind", "kind", 1, buf, sizeof buf))) goto fail;
    if (strcmp(buf, "cce-session")) { st = bad(&r, "kind", "is not \"cce-session\""); goto fail; }
    if ((st = rd_str(&r, root, "program", "program", 1, s->program, sizeof s->program))) goto fail;
    int64_t v;
    if ((st = rd_int(&r, root, "created", "created", 0, MAX_INT53, &v))) goto fail;
    s->created = v;
    if ((st = rd_str(&r, root, "created_utc", "created_utc", 0, buf, sizeof buf))) goto fail;
    /* the model first: a session for another model is refused before anything else is read */
    if ((st = rd_model(&r, root, &s->model))) goto fail;
    if (m && (st = check_model(&r, &s->model, m, have))) goto fail;
    int n_layers = m ? m->cfg.n_layers : s->model.n_layers;
    const cJSON *ca, *an, *cm;
    if ((st = rd_obj(&r, root, "calibration", "calibration", &ca)) ||
        (st = rd_str(&r, ca, "path", "calibration.path", 1, s->calib.path, sizeof s->calib.path)) ||
        (st = rd_sha(&r, ca, "sha256", "calibration.sha256", 1, s->calib.sha256)) ||
        (st = rd_int(&r, ca, "tokens", "calibration.tokens", 0, 1 << 24, &v)))
        goto fail;
    s->calib.tokens = (long)v;
    if ((st = rd_int(&r, ca, "seq_len", "calibration.seq_len", 0, 1 << 20, &v))) goto fail;
    s->calib.seq_len = (int)v;
    if ((st = rd_int(&r, ca, "seed", "calibration.seed", 0, MAX_INT53, &v))) goto fail;
    s->calib.seed = (uint64_t)v;
    if ((st = rd_obj(&r, root, "analysis", "analysis", &an)) ||
        (st = rd_int(&r, an, "tokens", "analysis.tokens", 2, 1 << 24, &v)))
        goto fail;
    s->analysis.tokens = (long)v;
    if ((st = rd_int(&r, an, "seq_len", "analysis.seq_len", 0, 1 << 20, &v))) goto fail;
    s->analysis.seq_len = (int)v;
    if ((st = rd_int(&r, an, "seed", "analysis.seed", 0, MAX_INT53, &v))) goto fail;
    s->analysis.seed = (uint64_t)v;
    if ((st = rd_str(&r, an, "file", "analysis.file", 0, s->analysis.file, sizeof s->analysis.file)) ||
        (st = rd_sha(&r, an, "sha256", "analysis.sha256", 0, s->analysis.sha256)))
        goto fail;
    if (s->analysis.file[0] && (strchr(s->analysis.file, '/') || s->analysis.file[0] == '.')) {
        st = bad(&r, "analysis.file", "is not a file name in the session's directory");
        goto fail;
    }
    if (s->analysis.file[0] && !s->analysis.sha256[0]) { st = bad(&r, "analysis.sha256", "is missing for the file"); goto fail; }
    /* knobs, pins, forces, then the plan they must agree with */
    cce_knobs kn;
    cce_pin *pins = NULL, *forces = NULL;
    int n_pins = 0, n_forces = 0;
    if ((st = rd_knobs(&r, root, "knobs", "knobs", &kn))) goto fail;
    if ((st = rd_pins(&r, root, "pins", m, n_layers, &pins, &n_pins))) goto fail;
    if ((st = rd_pins(&r, root, "forces", m, n_layers, &forces, &n_forces))) {
        cce_free(pins);
        goto fail;
    }
    st = rd_plan(&r, root, m, &s->plan);
    if (!st) {
        const cce_knobs *pk = &s->plan.knobs;
        const char *diff = NULL;
        if (pk->alpha != kn.alpha) diff = "alpha";
        else if (pk->beta != kn.beta) diff = "beta";
        else if (pk->gamma != kn.gamma) diff = "gamma";
        else if (pk->eps != kn.eps) diff = "eps";
        else if (pk->tau != kn.tau) diff = "tau";
        else if (pk->target != kn.target) diff = "target";
        if (diff) st = cce_err_set(err, CCE_EFORMAT, "%s: field 'knobs.%s' differs from the plan's", what, diff);
        else if (!pins_equal(pins, n_pins, s->plan.pins, s->plan.n_pins))
            st = cce_err_set(err, CCE_EFORMAT, "%s: field 'pins' differs from the plan's", what);
        else if (!pins_equal(forces, n_forces, s->plan.forces, s->plan.n_forces))
            st = cce_err_set(err, CCE_EFORMAT, "%s: field 'forces' differs from the plan's", what);
        else if (strcmp(s->plan.model.sha256, s->model.sha256))
            st = cce_err_set(err, CCE_EFORMAT, "%s: field 'plan.model.sha256' is not the session's model", what);
        else if (s->plan.n_blocks != n_layers)
            st = cce_err_set(err, CCE_EFORMAT, "%s: field 'plan.blocks' has %d entries, the model %d blocks", what,
                             s->plan.n_blocks, n_layers);
        /* the plan reader does not keep model.params_non_embedding; the identity is the session's */
        if (!st) s->plan.model.params_non_embedding = s->model.params_non_embedding;
    }
    cce_free(pins);
    cce_free(forces);
    if (st) goto fail;
    /* the commit history */
    cm = get(root, "commits");
    if (!cm) { st = bad(&r, "commits", "is missing"); goto fail; }
    if (!cJSON_IsArray(cm)) { st = bad(&r, "commits", "is not an array"); goto fail; }
    int nc = cJSON_GetArraySize(cm);
    if (nc > CCE_SESSION_MAX_COMMITS) {
        char why[80];
        snprintf(why, sizeof why, "has %d entries, more than %d", nc, CCE_SESSION_MAX_COMMITS);
        st = bad(&r, "commits", why);
        goto fail;
    }
    if (nc > 0) {
        s->commits = cce_alloc((size_t)nc, sizeof *s->commits);
        if (!s->commits) { st = cce_err_set(err, CCE_ENOMEM, "%s: out of memory", what); goto fail; }
        int i = 0;
        for (const cJSON *o = cm->child; o; o = o->next, i++) {
            if ((st = rd_commit(&r, o, i, &s->commits[i]))) goto fail;
            s->n_commits = i + 1;
        }
    }
    cJSON_Delete(root);
    return CCE_OK;
fail:
    cJSON_Delete(root);
    cce_session_free(s);
    return st;
}

cce_status cce_session_load(const char *path, const cce_model *m, const cce_model_id *have, cce_session *s,
                            cce_err *err) {
    cce_session_init(s);
    char *text = NULL;
    size_t len = 0;
    cce_status st = cce_read_file(path, CCE_SESSION_MAX_BYTES, &text, &len, err);
    if (st) return st;
    st = cce_session_from_json(text, len, path, m, have, s, err);
    cce_free(text);
    return st;
}
