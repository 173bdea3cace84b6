/*
 * cli_xp.c — plumbing shared by the experiment commands. See cli_xp.h.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli_xp.h"
#include "util.h"

int cli_xp_doubles(const char *opt, const char *list, double lo, double hi, double *v, int cap, int *n) {
    *n = 0;
    const char *q = list;
    while (*q) {
        char *end;
        errno = 0;
        double x = strtod(q, &end);
        if (end == q || errno || !(x >= lo && x <= hi) || (*end && *end != ','))
            return cli_fail("--%s %s: expected a comma-separated list of numbers in [%g, %g]", opt, list, lo, hi);
        if (*n == cap) return cli_fail("--%s: at most %d values", opt, cap);
        v[(*n)++] = x;
        q = *end ? end + 1 : end;
    }
    if (*n == 0) return cli_fail("--%s: an empty list", opt);
    return 0;
}

int cli_xp_words(const char *opt, const char *list, char **buf, char **v, int cap, int *n) {
    *n = 0;
    *buf = cce_strdup(list);
    if (!*buf) return cli_fail("out of memory");
    for (char *save = NULL, *w = strtok_r(*buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        while (*w == ' ') w++;
        if (!*w) continue;
        if (*n == cap) return cli_fail("--%s: at most %d names", opt, cap);
        v[(*n)++] = w;
    }
    if (*n == 0) return cli_fail("--%s: an empty list", opt);
    return 0;
}

int cli_xp_read_text(const char *path, const cce_tokenizer *tok, cli_text *t) {
    memset(t, 0, sizeof *t);
    cce_err err = {{0}};
    snprintf(t->path, sizeof t->path, "%s", path);
    if (cce_read_file(path, (size_t)1 << 32, &t->text, &t->len, &err)) return cli_fail_err(&err);
    cce_sha256_hex(t->text, t->len, t->sha256);
    if (tok && cce_text_tokens(tok, t->text, t->len, &t->ids, &t->n_ids, &err)) {
        cli_xp_text_free(t);
        cce_err_prefix(&err, CCE_EIO, path);
        return cli_fail_err(&err);
    }
    return 0;
}

void cli_xp_text_free(cli_text *t) {
    cce_free(t->text);
    cce_free(t->ids);
    memset(t, 0, sizeof *t);
}

int cli_xp_check_disjoint(const char *calib_path, const char *calib_sha, const cli_text *eval) {
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(calib_path, a) && realpath(eval->path, b) && !strcmp(a, b))
        return cli_fail("%s: the evaluation text is the calibration text; evaluate on text the compression has not seen",
                        eval->path);
    if (calib_sha && !strcmp(calib_sha, eval->sha256))
        return cli_fail("%s: the evaluation text has the same SHA-256 as the calibration text %s", eval->path, calib_path);
    struct stat st;
    if (stat(calib_path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    DIR *dir = opendir(calib_path);
    if (!dir) return 0;
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        char p[4096], sha[65];
        if (snprintf(p, sizeof p, "%s/%s", calib_path, e->d_name) >= (int)sizeof p) continue;
        struct stat fs;
        if (stat(p, &fs) != 0 || !S_ISREG(fs.st_mode) || (size_t)fs.st_size != eval->len) continue;
        cce_err err = {{0}};
        if (cce_sha256_file(p, sha, &err) == CCE_OK && !strcmp(sha, eval->sha256))
            rc = cli_fail("%s: the evaluation text is the calibration file %s", eval->path, p);
    }
    closedir(dir);
    return rc;
}

int cli_xp_progress(void *user, const char *phase, long done, long total) {
    (void)user;
    cli_progress(phase, done, total);
    return cli_interrupted != 0;
}

void cli_buf_printf(cli_buf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
        va_end(ap2);
        b->oom = 1;
        return;
    }
    if (b->n + (size_t)need + 1 > b->cap) {
        size_t want = b->cap ? b->cap : 1024;
        while (want < b->n + (size_t)need + 1) want *= 2;
        char *g = cce_realloc(b->s, want, 1);
        if (!g) {
            va_end(ap2);
            b->oom = 1;
            return;
        }
        b->s = g;
        b->cap = want;
    }
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap2);
    va_end(ap2);
    b->n += (size_t)need;
}

void cli_buf_free(cli_buf *b) {
    cce_free(b->s);
    memset(b, 0, sizeof *b);
}

int cli_buf_save(const cli_buf *b, const char *path) {
    if (b->oom) return cli_fail("%s: out of memory", path);
    cce_err err = {{0}};
    if (cce_write_file_atomic(path, b->s ? b->s : "", b->n, &err)) return cli_fail_err(&err);
    return 0;
}

cJSON *cli_xp_model_json(const cce_model *m, const char *sha256) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", m->path ? m->path : "");
    cJSON_AddStringToObject(o, "sha256", sha256 ? sha256 : "");
    cJSON_AddNumberToObject(o, "params_non_embedding", (double)cce_model_params(m).non_embedding);
    return o;
}

cJSON *cli_xp_eval_json(const cce_xp_eval *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "ppl", e->ppl);
    cJSON_AddNumberToObject(o, "loss", e->loss);
    cJSON_AddNumberToObject(o, "accuracy", e->accuracy);
    cJSON_AddNumberToObject(o, "tokens", (double)e->tokens);
    return o;
}

cJSON *cli_xp_row_json(const cce_xp_row *r, const cce_xp_row *dense, int n_evals) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", r->method);
    cJSON_AddNumberToObject(o, "target", r->target);
    cJSON_AddNumberToObject(o, "removed_fraction", r->removed_fraction);
    cJSON_AddNumberToObject(o, "params", (double)r->params);
    cJSON_AddNumberToObject(o, "ppl", r->eval[0].ppl);
    cJSON_AddNumberToObject(o, "loss", r->eval[0].loss);
    cJSON_AddNumberToObject(o, "accuracy", r->eval[0].accuracy);
    if (dense && dense->eval[0].ppl > 0) cJSON_AddNumberToObject(o, "ppl_ratio", r->eval[0].ppl / dense->eval[0].ppl);
    cJSON_AddNumberToObject(o, "tokens_per_s", r->tokens_per_s);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    if (n_evals > 1) {
        cJSON *a = cJSON_AddArrayToObject(o, "evals");
        for (int e = 0; e < n_evals; e++) {
            cJSON *x = cli_xp_eval_json(&r->eval[e]);
            if (dense && dense->eval[e].ppl > 0) cJSON_AddNumberToObject(x, "ppl_ratio", r->eval[e].ppl / dense->eval[e].ppl);
            cJSON_AddItemToArray(a, x);
        }
    }
    return o;
}

const char *cli_xp_pct(double f, char *buf, size_t cap) {
    snprintf(buf, cap, "%.2f%%", 100 * f);
    return buf;
}

int cli_xp_fail(cce_status s, const cce_err *err) {
    cli_progress_end();
    if (s == CCE_ECANCEL && cli_interrupted) {
        fprintf(stderr, "cce: interrupted\n");
        return 130;
    }
    return cli_fail_err(err);
}

int cli_xp_open(const cli_opt *opts, int n_opts, const char *model_path, long decode_default, int eps_tau,
                cli_xp_ctx *x) {
    memset(x, 0, sizeof *x);
    cce_xp_setup *su = &x->su;
    cce_xp_setup_default(su);
    long tokens = -1, atokens = -1, seq = 0, seed = 1, eval_tokens = 0, eval_seq = 0, dec = decode_default, reps = 3;
    if (cli_get_long(opts, n_opts, "tokens", 2, 1L << 24, &tokens) || cli_get_long(opts, n_opts, "seq-len", 2, 1 << 20, &seq) ||
        cli_get_long(opts, n_opts, "analysis-tokens", 2, 1L << 24, &atokens) ||
        cli_get_long(opts, n_opts, "seed", 0, 1L << 53, &seed) ||
        cli_get_long(opts, n_opts, "eval-tokens", 2, 1L << 40, &eval_tokens) ||
        cli_get_long(opts, n_opts, "eval-seq-len", 2, 1 << 20, &eval_seq) ||
        cli_get_long(opts, n_opts, "decode-tokens", 0, 1 << 20, &dec) || cli_get_long(opts, n_opts, "decode-reps", 1, 1000, &reps))
        return 2;
    cce_knobs kn;
    cce_knobs_default(&kn);
    double *kslot[5] = {&kn.alpha, &kn.beta, &kn.gamma, &kn.eps, &kn.tau};
    const double khi[5] = {1e6, 1e6, 1e6, 0.999999, 0.999999};
    for (int i = 0; i < (eps_tau ? 5 : 3); i++)
        if (cli_get_double(opts, n_opts, cce_knob_names[i], 0, khi[i], kslot[i])) return 2;
    cce_err err = {{0}};
    cce_knobs kk = kn;
    kk.target = 0.1;
    if (cce_knobs_check(&kk, "knobs", &err)) return cli_fail_err(&err);
    if (cli_open_model(model_path, cli_get(opts, n_opts, "tokenizer"), 1, &x->m, &x->tok)) return 1;
    if (cce_xp_setup_model(su, x->m, &err)) {   // the defaults of `cce plan` for this model
        cli_xp_close(x);
        return cli_fail_err(&err);
    }
    kn.target = su->knobs.target;
    su->knobs = kn;
    if (tokens > 0) su->calib_tokens = tokens;
    if (atokens > 0) su->analysis.tokens = atokens;
    su->seq_len = (int)seq;
    su->seed = (uint64_t)seed;
    su->eval_tokens = eval_tokens;
    su->eval_seq_len = (int)eval_seq;
    su->decode_tokens = (int)dec;
    su->decode_reps = (int)reps;
    su->progress = cli_xp_progress;
    if (cce_model_id_of(x->m, &su->model_id, &err)) {
        cli_xp_close(x);
        return cli_fail_err(&err);
    }
    memcpy(x->model_sha, su->model_id.sha256, sizeof x->model_sha);
    int crc = cli_read_calib(cli_get(opts, n_opts, "calib"), x->tok, &x->cal);
    if (crc) {
        cli_xp_close(x);
        return crc;
    }
    const char *evl = cli_get(opts, n_opts, "eval");
    char *buf = NULL, *names[CCE_XP_MAX_EVALS];
    int n = 0;
    if (!evl) {
        names[0] = (char *)cli_default_eval();
        n = 1;
    } else if (cli_xp_words("eval", evl, &buf, names, CCE_XP_MAX_EVALS, &n)) {
        cce_free(buf);
        cli_xp_close(x);
        return 2;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = cli_xp_read_text(names[i], x->tok, &x->ev[i]);
        if (!rc) x->n_evals = i + 1;
        if (!rc) rc = cli_xp_check_disjoint(x->cal.path, x->cal.sha256, &x->ev[i]);
    }
    cce_free(buf);
    if (rc) {
        cli_xp_close(x);
        return rc;
    }
    su->model = x->m;
    su->calib_ids = x->cal.ids;
    su->n_calib = x->cal.n_ids;
    snprintf(su->calib_id.path, sizeof su->calib_id.path, "%s", x->cal.path);
    memcpy(su->calib_id.sha256, x->cal.sha256, sizeof su->calib_id.sha256);
    su->n_evals = x->n_evals;
    for (int i = 0; i < x->n_evals; i++) su->evals[i] = (cce_xp_stream){x->ev[i].ids, x->ev[i].n_ids};
    return 0;
}

void cli_xp_close(cli_xp_ctx *x) {
    for (int i = 0; i < x->n_evals; i++) cli_xp_text_free(&x->ev[i]);
    cli_calib_free(&x->cal);
    cce_tokenizer_free(x->tok);
    cce_model_free(x->m);
    memset(x, 0, sizeof *x);
}

static int xp_seq_of(const cce_model *m, int s) { return s > 0 ? s : (m->cfg.seq_len < 256 ? m->cfg.seq_len : 256); }

void cli_xp_add_ids(cJSON *o, const cli_xp_ctx *x) {
    const cce_xp_setup *su = &x->su;
    cJSON_AddItemToObject(o, "model", cli_xp_model_json(x->m, x->model_sha));
    int seq = xp_seq_of(x->m, su->seq_len);
    long windows = (long)(x->cal.n_ids / (size_t)seq), want = su->calib_tokens / seq;
    long used = want < windows ? want : windows;
    cJSON *c = cJSON_AddObjectToObject(o, "calibration");
    cJSON_AddStringToObject(c, "path", x->cal.path);
    cJSON_AddStringToObject(c, "sha256", x->cal.sha256);
    cJSON_AddNumberToObject(c, "tokens", (double)(used * seq));
    cJSON_AddNumberToObject(c, "stream_tokens", (double)x->cal.n_ids);
    cJSON_AddNumberToObject(c, "seq_len", seq);
    cJSON_AddNumberToObject(c, "seed", (double)su->seed);
    cJSON *e = cJSON_AddArrayToObject(o, "evaluation");
    for (int i = 0; i < x->n_evals; i++) {
        cJSON *t = cJSON_CreateObject();
        size_t n = x->ev[i].n_ids;
        if (su->eval_tokens > 0 && (size_t)su->eval_tokens < n) n = (size_t)su->eval_tokens;
        cJSON_AddStringToObject(t, "path", x->ev[i].path);
        cJSON_AddStringToObject(t, "sha256", x->ev[i].sha256);
        cJSON_AddNumberToObject(t, "tokens", (double)n);
        cJSON_AddNumberToObject(t, "stream_tokens", (double)x->ev[i].n_ids);
        cJSON_AddNumberToObject(t, "seq_len", xp_seq_of(x->m, su->eval_seq_len));
        cJSON_AddItemToArray(e, t);
    }
}

void cli_xp_print_ids(const cli_xp_ctx *x) {
    const cce_xp_setup *su = &x->su;
    int seq = xp_seq_of(x->m, su->seq_len);
    long windows = (long)(x->cal.n_ids / (size_t)seq), want = su->calib_tokens / seq;
    long used = want < windows ? want : windows;
    printf("model        %s (sha256 %.12s…, %lld non-embedding parameters)\n", x->m->path, x->model_sha,
           (long long)cce_model_params(x->m).non_embedding);
    printf("calibration  %s (sha256 %.12s…): %ld tokens in %ld windows of %d (seed %llu) of a %zu-token stream, the same for every method\n",
           x->cal.path, x->cal.sha256, used * seq, used, seq, (unsigned long long)su->seed, x->cal.n_ids);
    for (int i = 0; i < x->n_evals; i++) {
        size_t n = x->ev[i].n_ids;
        if (su->eval_tokens > 0 && (size_t)su->eval_tokens < n) n = (size_t)su->eval_tokens;
        char tag[16] = "  ";
        if (x->n_evals > 1) snprintf(tag, sizeof tag, " %d", i + 1);
        printf("evaluation%s %s (sha256 %.12s…): %zu tokens, windows of %d\n", tag, x->ev[i].path, x->ev[i].sha256, n,
               xp_seq_of(x->m, su->eval_seq_len));
    }
}
