/*
 * worker.c — the analysis runs here, never on the UI thread (see tui.h).
 *
 * Contract between the worker and the UI (ncdu's split):
 *  - The worker thread creates the job, drives it one cce_analysis_step at a time and is the
 *    only thread that steps it. After every step, and when it ends, it writes one byte to the
 *    wake-up pipe (non-blocking: a full pipe already means "wake up").
 *  - The UI reads results only through analysis.h's thread-safe functions (progress, block,
 *    layer CKA), on the job pointer published here with release order once it exists.
 *  - Cancel is a flag plus cce_analysis_cancel (both any thread); the step in progress returns
 *    CCE_ECANCEL at its next tap. Blocks finished before the cancel stay readable.
 *  - The job is freed only by worker_free, on the UI thread, after the thread is joined, so a
 *    view never reads a freed job.
 *  - Headless scripts may hold the worker: it then waits (condition variable) before each step
 *    beyond the allowed count, so a screen dump "after 2 blocks" is the same on every run.
 *  - Two more jobs ride on the same thread, so the UI never waits for them: the model's identity
 *    (cce_model_id_of hashes its file(s)) before the analysis starts, when asked; and, instead of
 *    computing the analysis, reading it from an analysis file (cce_analysis_load) in one go.
 *    The identity is written before id_ready is stored (release) and read after its load.
 * The state and the error text are written before the state store (release) and read after
 * its load (acquire).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tui.h"
#include "util.h"

struct worker {
    pthread_t th;
    const cce_model *model;
    cce_calib_source src;
    char *text;                      // our copy until the job has its own
    int *ids;
    cce_analysis_opts opts;
    char *load_path;                 // read the analysis from this file instead (owned), or NULL
    char calib_sha256[65];           // with load_path: the calibration text the file must record ("" unknown)
    int hash_model;
    cce_model_id id;                 // valid once id_ready
    atomic_int id_ready;
    int wake_fd;
    _Atomic(cce_analysis *) job;
    atomic_int state;                // job_state
    atomic_int cancel;
    atomic_int held;
    pthread_mutex_t mu;              // guards limit, with cv
    pthread_cond_t cv;
    int limit;                       // steps allowed, -1 all
    char error[512];
    double t_start, t_end;
};

static void wake(worker *w) {
    char b = 1;
    ssize_t r = write(w->wake_fd, &b, 1);
    (void)r;   // EAGAIN: the pipe is full, the UI wakes up anyway
}

/* Block until the next step is allowed; returns 0 to go on, 1 when cancelled. */
static int wait_allowed(worker *w, int done) {
    pthread_mutex_lock(&w->mu);
    while (w->limit >= 0 && done >= w->limit && !atomic_load(&w->cancel)) {
        atomic_store(&w->held, 1);
        wake(w);
        pthread_cond_wait(&w->cv, &w->mu);
    }
    atomic_store(&w->held, 0);
    pthread_mutex_unlock(&w->mu);
    return atomic_load(&w->cancel) != 0;
}

static void finish(worker *w, job_state st, const char *msg) {
    snprintf(w->error, sizeof w->error, "%s", msg ? msg : "");
    w->t_end = cce_now();
    atomic_store_explicit(&w->state, st, memory_order_release);
    wake(w);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    cce_err err = {{0}};
    cce_analysis *job = NULL;
    if (w->hash_model && !atomic_load(&w->cancel)) {
        cce_err ie = {{0}};
        if (cce_model_id_of(w->model, &w->id, &ie) == CCE_OK) atomic_store_explicit(&w->id_ready, 1, memory_order_release);
        else atomic_store_explicit(&w->id_ready, -1, memory_order_release);
        wake(w);
    }
    if (w->load_path) {
        atomic_store_explicit(&w->state, JOB_RUNNING, memory_order_release);
        wake(w);
        if (cce_analysis_load(w->load_path, w->model, &job, &err)) {
            finish(w, JOB_FAILED, err.msg);
            return NULL;
        }
        if (w->calib_sha256[0] && strcmp(cce_analysis_calib_sha256(job), w->calib_sha256)) {
            cce_err_set(&err, CCE_EINVAL, "%s: the analysis was made with another calibration text ('%s', sha256 %.16s…)",
                        w->load_path, cce_analysis_calib_path(job), cce_analysis_calib_sha256(job));
            cce_analysis_free(job);
            finish(w, JOB_FAILED, err.msg);
            return NULL;
        }
        atomic_store_explicit(&w->job, job, memory_order_release);
        finish(w, JOB_DONE, NULL);
        return NULL;
    }
    if (cce_analysis_new(w->model, &w->src, &w->opts, &job, &err)) {
        finish(w, JOB_FAILED, err.msg);
        return NULL;
    }
    free(w->text);   // the job copied it
    w->text = NULL;
    atomic_store_explicit(&w->job, job, memory_order_release);
    if (atomic_load(&w->cancel)) cce_analysis_cancel(job);   // cancelled before it existed
    atomic_store_explicit(&w->state, JOB_RUNNING, memory_order_release);
    wake(w);
    for (int done = 0; !cce_analysis_finished(job); done++) {
        if (wait_allowed(w, done)) {
            finish(w, JOB_CANCELLED, "analysis: cancelled");
            return NULL;
        }
        cce_status st = cce_analysis_step(job, &err);
        if (st == CCE_ECANCEL) {
            finish(w, JOB_CANCELLED, err.msg);
            return NULL;
        }
        if (st) {
            finish(w, JOB_FAILED, err.msg);
            return NULL;
        }
        wake(w);
    }
    finish(w, JOB_DONE, NULL);
    return NULL;
}

int worker_start(worker **out, const cce_model *m, const cce_calib_source *src, const cce_analysis_opts *opts,
                 const char *load_path, int hash_model, int wake_fd, int hold, cce_err *err) {
    *out = NULL;
    worker *w = calloc(1, sizeof *w);
    if (!w) return cce_err_set(err, CCE_ENOMEM, "analysis: out of memory starting the worker"), -1;
    w->model = m;
    w->src = *src;
    w->opts = *opts;
    w->wake_fd = wake_fd;
    w->limit = hold ? 0 : -1;
    w->hash_model = hash_model;
    if (load_path && !(w->load_path = strdup(load_path))) goto fail_free_worker;
    if (load_path) {
        if (src->text) cce_sha256_hex(src->text, src->text_len, w->calib_sha256);
        w->src.text = NULL;
        w->src.ids = NULL;
    } else if (src->text) {
        if (!(w->text = malloc(src->text_len + 1))) goto fail_free_worker;
        memcpy(w->text, src->text, src->text_len);
        w->text[src->text_len] = 0;
        w->src.text = w->text;
    } else if (src->ids) {
        if (!(w->ids = malloc(src->n_ids * sizeof(int) + 1))) goto fail_free_worker;
        memcpy(w->ids, src->ids, src->n_ids * sizeof(int));
        w->src.ids = w->ids;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_init(&w->state, JOB_STARTING);
    w->t_start = cce_now();
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    if (rc) {
        cce_err_set(err, CCE_ENOMEM, "analysis: cannot start the worker thread: %s", strerror(rc));
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        goto fail_free_worker;
    }
    *out = w;
    return 0;
fail_free_worker:
    if (!err->msg[0]) cce_err_set(err, CCE_ENOMEM, "analysis: out of memory copying the calibration");
    free(w->load_path);
    free(w->text);
    free(w->ids);
    free(w);
    return -1;
}

void worker_cancel(worker *w) {
    if (!w) return;
    atomic_store(&w->cancel, 1);
    cce_analysis *job = atomic_load_explicit(&w->job, memory_order_acquire);
    if (job) cce_analysis_cancel(job);
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void worker_allow(worker *w, int steps) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->limit = steps;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int worker_held(const worker *w) { return w && atomic_load(&((worker *)w)->held); }

job_state worker_state(const worker *w) {
    return w ? (job_state)atomic_load_explicit(&((worker *)w)->state, memory_order_acquire) : JOB_FAILED;
}

const cce_analysis *worker_job(const worker *w) {
    return w ? atomic_load_explicit(&((worker *)w)->job, memory_order_acquire) : NULL;
}

const char *worker_error(const worker *w) {
    job_state s = worker_state(w);
    return w && (s == JOB_FAILED || s == JOB_CANCELLED) ? w->error : "";
}

double worker_elapsed(const worker *w) {
    if (!w) return 0;
    job_state s = worker_state(w);
    return (s >= JOB_DONE ? w->t_end : cce_now()) - w->t_start;
}

void worker_free(worker *w) {
    if (!w) return;
    worker_cancel(w);
    pthread_join(w->th, NULL);
    cce_analysis_free(atomic_load(&w->job));
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->load_path);
    free(w->text);
    free(w->ids);
    free(w);
}

int worker_model_id(const worker *w, cce_model_id *out) {
    int r = w ? atomic_load_explicit(&((worker *)w)->id_ready, memory_order_acquire) : 0;
    if (r == 1 && out) *out = w->id;
    return r;
}

int worker_loaded(const worker *w) { return w && w->load_path; }
