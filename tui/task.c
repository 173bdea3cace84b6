/*
 * task.c — the task thread: a commit (encode, measure before and after, histograms) or a plan
 * search, one at a time, never on the UI thread.
 *
 * Contract with the UI (the same shape as worker.c's):
 *  - task_start copies what the task needs (the plan, the array of block-result pointers) and
 *    borrows what stays put while it runs (model, tokenizer, calibration text, the results the
 *    pointers name, the app's cache); the UI does not free or change those until task_free.
 *  - Progress (phase text, done/total, the phase's place among the task's phases) is written
 *    under a mutex, and a byte goes to the wake-up pipe after each report and at the end.
 *  - Cancel is an atomic flag the engine's progress callbacks return: the step in progress
 *    stops with CCE_ECANCEL and the task ends JOB_CANCELLED; nothing is adopted.
 *  - The state is stored with release order after the results are written; the UI moves the
 *    results out (task_take_*) after loading it with acquire order.
 *
 * A commit, step by step (DESIGN §3.9):
 *   1 tokenise   the calibration text by the evaluation protocol (cached across commits: the
 *                stream the analysis and `cce apply` use);
 *   2 encode     cce_encode with the plan's encoding options;
 *   3 original   the original model on the held-out text, capped (cached: eval ids, loss, ppl,
 *                accuracy, decoding speed, parameters, bytes);
 *   4 committed  the same for the compressed model (with its KV-cached decoding speed);
 *   5 histograms the compressed model's activations binned like the analysis's.
 * Evaluation uses eval.h's protocol with `cce eval`'s default window (min(256, context)), so
 * `cce eval DIR --text FILE --max-tokens N` on the applied plan measures the same loss.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "calib.h"
#include "encode.h"
#include "eval.h"
#include "tui.h"
#include "util.h"

#define DECODE_TOKENS 128
#define DECODE_REPEATS 3

struct task {
    pthread_t th;
    task_in in;
    cce_plan plan;                       // our copy
    const cce_block_result **blocks;     // (n_layers) our copy of the pointers
    int wake_fd;
    atomic_int state;                    // job_state
    atomic_int cancel;
    pthread_mutex_t mu;                  // guards the progress fields
    int done, total, step, steps;
    char phase[128];
    char error[512];
    double t0, t1;
    commit_result commit;                // TASK_COMMIT's result
    int commit_taken;
    cce_search_result search;            // TASK_SEARCH's figures (its plan is `plan`)
    int search_taken;
};

static void wake(task *t) {
    char b = 't';
    ssize_t r = write(t->wake_fd, &b, 1);
    (void)r;
}

static void report(task *t, int step, const char *phase, int done, int total) {
    pthread_mutex_lock(&t->mu);
    t->step = step;
    snprintf(t->phase, sizeof t->phase, "%s", phase);
    t->done = done;
    t->total = total;
    pthread_mutex_unlock(&t->mu);
    wake(t);
}

static int cancelled(task *t) { return atomic_load(&t->cancel) != 0; }

/* ---- engine progress callbacks: report and answer the cancel flag */

static int stop_cb(void *user) { return cancelled(user); }

static int encode_cb(void *user, int done, int total, const char *phase) {
    task *t = user;
    char buf[128];
    snprintf(buf, sizeof buf, "encode %s", phase);
    report(t, t->step, buf, done, total);
    return cancelled(t);
}

typedef struct {
    task *t;
    const char *what;
} eval_ctx;

static int eval_cb(void *user, long done, long total) {
    eval_ctx *e = user;
    report(e->t, e->t->step, e->what, (int)done, (int)total);
    return cancelled(e->t);
}

static int histo_cb(void *user, int done, int total) {
    task *t = user;
    report(t, t->step, "histograms of the committed model", done, total);
    return cancelled(t);
}

static int search_cb(void *user, int done, int total, const char *phase) {
    task *t = user;
    char buf[128];
    snprintf(buf, sizeof buf, "search %s", phase);
    report(t, t->step, buf, done, total);
    return cancelled(t);
}

/* ---- the steps */

static cce_status ensure_calib_ids(task *t, cce_err *err) {
    task_cache *c = t->in.cache;
    if (c->calib_ids) return CCE_OK;
    report(t, 1, "tokenise the calibration text", 0, 1);
    cce_status s = cce_calib_text_tokens(t->in.tok, t->in.calib_text, t->in.calib_len, 0, stop_cb, t, &c->calib_ids,
                                         &c->n_calib_ids, err);
    if (s == CCE_ECANCEL) cce_err_set(err, CCE_ECANCEL, "commit: cancelled while tokenising");
    return s;
}

static int eval_seq_len(const cce_model *m) { return m->cfg.seq_len < 256 ? m->cfg.seq_len : 256; }

static cce_status measure(task *t, const cce_model *m, const char *what, cce_measure *out, cce_err *err) {
    task_cache *c = t->in.cache;
    eval_ctx e = {t, what};
    cce_eval_result r;
    cce_status s = cce_eval_ids(m, c->eval_ids, c->n_eval_ids, eval_seq_len(m), 0, eval_cb, &e, &r, err);
    if (s) return s;
    out->loss = r.loss;
    out->ppl = r.ppl;
    out->accuracy = r.accuracy;
    out->params = cce_model_params(m).non_embedding;
    out->bytes = cce_model_bytes(m);
    t->commit.eval_s += r.seconds;
    c->eval_tokens = r.tokens;
    c->eval_seq_len = r.seq_len;
    if (cancelled(t)) return cce_err_set(err, CCE_ECANCEL, "commit: cancelled");
    report(t, t->step, "decoding speed", 0, 1);
    int n = m->cfg.seq_len < DECODE_TOKENS ? m->cfg.seq_len : DECODE_TOKENS;
    return cce_decode_speed(m, n, DECODE_REPEATS, &out->tokens_per_s, err);
}

/* The original's figures on the evaluation text, measured once per text and cap. */
static cce_status ensure_before(task *t, cce_err *err) {
    task_cache *c = t->in.cache;
    char key[1200];
    snprintf(key, sizeof key, "%s\n%ld", t->in.eval_path, t->in.eval_tokens);
    if (c->before_key[0] && !strcmp(key, c->before_key)) return CCE_OK;
    c->before_key[0] = 0;
    cce_free(c->eval_ids);
    c->eval_ids = NULL;
    c->n_eval_ids = 0;
    report(t, 3, "read the evaluation text", 0, 1);
    char *text = NULL;
    size_t len = 0;
    cce_status s = cce_read_file(t->in.eval_path, (size_t)1 << 32, &text, &len, err);
    if (s) return s;
    cce_sha256_hex(text, len, c->eval_sha256);
    s = cce_text_tokens(t->in.tok, text, len, &c->eval_ids, &c->n_eval_ids, err);
    cce_free(text);
    if (s) return cce_err_prefix(err, s, t->in.eval_path);
    if (t->in.eval_tokens > 0 && (size_t)t->in.eval_tokens < c->n_eval_ids) c->n_eval_ids = (size_t)t->in.eval_tokens;
    t->step = 3;
    if ((s = measure(t, t->in.model, "evaluate the original model", &c->before, err))) {
        if (s != CCE_ECANCEL) cce_err_prefix(err, s, t->in.eval_path);
        return s;
    }
    snprintf(c->before_key, sizeof c->before_key, "%s", key);
    return CCE_OK;
}

static cce_status run_commit(task *t, cce_err *err) {
    commit_result *r = &t->commit;
    t->steps = 5;
    cce_status s = ensure_calib_ids(t, err);
    if (s) return s;
    report(t, 2, "encode", 0, 1);
    double t0 = cce_now();
    s = cce_encode(t->in.model, &t->plan, t->in.cache->calib_ids, t->in.cache->n_calib_ids, encode_cb, t, &r->model, err);
    if (s) return s;
    r->encode_s = cce_now() - t0;
    if ((s = ensure_before(t, err))) return s;
    report(t, 4, "evaluate the committed model", 0, 1);
    if ((s = measure(t, r->model, "evaluate the committed model", &r->rec.after, err))) return s;
    report(t, 5, "histograms of the committed model", 0, t->in.model->cfg.n_layers);
    const task_cache *c = t->in.cache;
    if ((s = cce_histo_run(r->model, c->calib_ids, c->n_calib_ids, &t->in.hist_opts, t->blocks, histo_cb, t, &r->histo,
                           err)))
        return s;
    cce_commit_record *rec = &r->rec;
    rec->time = (int64_t)time(NULL);
    rec->knobs = t->plan.knobs;
    rec->removed_fraction = t->plan.removed_fraction;
    rec->L_rec = t->plan.L_rec;
    rec->L_sim = t->plan.L_sim;
    rec->L_reg = t->plan.L_reg;
    rec->L_cce = t->plan.L_cce;
    snprintf(rec->eval_path, sizeof rec->eval_path, "%s", t->in.eval_path);
    snprintf(rec->eval_sha256, sizeof rec->eval_sha256, "%s", c->eval_sha256);
    rec->eval_tokens = c->eval_tokens;
    rec->eval_seq_len = c->eval_seq_len;
    rec->before = c->before;
    return cce_plan_copy(&r->plan, &t->plan, err);
}

static cce_status run_search(task *t, cce_err *err) {
    t->steps = 2;
    cce_status s = ensure_calib_ids(t, err);
    if (s) return s;
    report(t, 2, "search", 0, t->in.search_evaluations);
    cce_search_opts so;
    cce_search_opts_default(&so);
    so.evaluations = t->in.search_evaluations;
    return cce_plan_search(&t->plan, t->in.model, t->blocks, t->in.cache->calib_ids, t->in.cache->n_calib_ids, &so,
                           search_cb, t, &t->search, err);
}

static void *task_main(void *arg) {
    task *t = arg;
    cce_err err = {{0}};
    cce_status s = t->in.kind == TASK_COMMIT ? run_commit(t, &err) : run_search(t, &err);
    pthread_mutex_lock(&t->mu);
    if (s) snprintf(t->error, sizeof t->error, "%s", err.msg);
    t->t1 = cce_now();
    pthread_mutex_unlock(&t->mu);
    atomic_store_explicit(&t->state, s == CCE_OK ? JOB_DONE : s == CCE_ECANCEL ? JOB_CANCELLED : JOB_FAILED,
                          memory_order_release);
    wake(t);
    return NULL;
}

/* ---- the UI side */

int task_start(task **out, const task_in *in, int wake_fd, cce_err *err) {
    *out = NULL;
    task *t = calloc(1, sizeof *t);
    int L = in->model->cfg.n_layers;
    if (!t || !(t->blocks = calloc((size_t)L + 1, sizeof *t->blocks))) {
        free(t);
        return cce_err_set(err, CCE_ENOMEM, "task: out of memory"), -1;
    }
    t->in = *in;
    t->wake_fd = wake_fd;
    for (int l = 0; l < L; l++) t->blocks[l] = in->blocks[l];
    t->in.blocks = t->blocks;
    if (cce_plan_copy(&t->plan, in->plan, err)) {
        free(t->blocks);
        free(t);
        return -1;
    }
    t->in.plan = &t->plan;
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->state, JOB_RUNNING);
    t->steps = in->kind == TASK_COMMIT ? 5 : 2;
    snprintf(t->phase, sizeof t->phase, "starting");
    t->t0 = cce_now();
    int rc = pthread_create(&t->th, NULL, task_main, t);
    if (rc) {
        cce_plan_free(&t->plan);
        pthread_mutex_destroy(&t->mu);
        free(t->blocks);
        free(t);
        return cce_err_set(err, CCE_ENOMEM, "task: cannot start its thread: %s", strerror(rc)), -1;
    }
    *out = t;
    return 0;
}

void task_cancel(task *t) {
    if (t) atomic_store(&t->cancel, 1);
}

job_state task_state(const task *t) {
    return t ? (job_state)atomic_load_explicit(&((task *)t)->state, memory_order_acquire) : JOB_FAILED;
}

task_kind task_kind_of(const task *t) { return t->in.kind; }

void task_progress(const task *t, int *done, int *total, int *step, int *steps, char *phase, size_t cap) {
    task *m = (task *)t;
    pthread_mutex_lock(&m->mu);
    *done = m->done;
    *total = m->total;
    *step = m->step;
    *steps = m->steps;
    if (phase) snprintf(phase, cap, "%s", m->phase);
    pthread_mutex_unlock(&m->mu);
}

const char *task_error(const task *t) { return task_state(t) >= JOB_FAILED ? t->error : ""; }

double task_elapsed(const task *t) { return (task_state(t) >= JOB_DONE ? t->t1 : cce_now()) - t->t0; }

int task_take_commit(task *t, commit_result *out) {
    if (task_state(t) != JOB_DONE || t->in.kind != TASK_COMMIT || t->commit_taken) return -1;
    *out = t->commit;
    memset(&t->commit, 0, sizeof t->commit);
    t->commit_taken = 1;
    return 0;
}

int task_take_search(task *t, cce_plan *out, cce_search_result *res) {
    if (task_state(t) != JOB_DONE || t->in.kind != TASK_SEARCH || t->search_taken) return -1;
    *out = t->plan;
    memset(&t->plan, 0, sizeof t->plan);
    *res = t->search;
    t->search_taken = 1;
    return 0;
}

void commit_result_free(commit_result *c) {
    if (!c) return;
    cce_histo_free(&c->histo);
    cce_plan_free(&c->plan);
    cce_model_free(c->model);
    memset(c, 0, sizeof *c);
}

void task_cache_free(task_cache *c) {
    cce_free(c->calib_ids);
    cce_free(c->eval_ids);
    memset(c, 0, sizeof *c);
}

void task_free(task *t) {
    if (!t) return;
    task_cancel(t);
    pthread_join(t->th, NULL);
    commit_result_free(&t->commit);
    cce_plan_free(&t->plan);
    pthread_mutex_destroy(&t->mu);
    free(t->blocks);
    free(t);
}
