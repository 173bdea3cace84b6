/*
 * replan.c — the planner thread: cce_plan_build off the UI thread (see tui.h for why).
 *
 * One request slot and one result slot, guarded by a mutex:
 *  - replanner_request deep-copies the inputs into the request slot (replacing a request the
 *    thread has not started: only the newest inputs matter) and signals the thread;
 *  - the thread takes the request, builds it without the lock (reading the analysis through
 *    its thread-safe readers), puts the plan in the result slot (replacing an older result
 *    nobody took) and writes the wake-up pipe;
 *  - replanner_take moves the result out on the UI thread.
 * Generations number the requests, so the UI knows whether the plan it holds answers its
 * newest inputs. replanner_wait_idle drops the pending request and waits until no build runs,
 * which the UI does before it frees the analysis job a build reads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tui.h"
#include "util.h"

struct replanner {
    pthread_t th;
    const cce_model *model;
    int wake_fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;          // a request arrived / a build ended / stop
    int stop;
    int have_req, building;
    cce_plan req;               // the pending request (owned)
    const cce_analysis *req_job;
    long next_gen, req_gen;
    int have_res;
    cce_plan res;               // the newest finished plan (owned)
    replan_result res_info;
};

static void *replan_main(void *arg) {
    replanner *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->have_req && !r->stop) pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop) break;
        cce_plan p = r->req;
        const cce_analysis *job = r->req_job;
        long gen = r->req_gen;
        memset(&r->req, 0, sizeof r->req);
        r->have_req = 0;
        r->building = 1;
        pthread_mutex_unlock(&r->mu);

        replan_result info = {.gen = gen};
        cce_err err = {{0}};
        double t0 = cce_now();
        cce_status st;
        if (job) st = cce_plan_build(&p, r->model, job, &err);
        else {   // no analysis yet: every block whole
            const cce_block_result **none = calloc((size_t)r->model->cfg.n_layers + 1, sizeof *none);
            st = none ? cce_plan_build_blocks(&p, r->model, none, &err) : cce_err_set(&err, CCE_ENOMEM, "planner: out of memory");
            free(none);
        }
        info.ms = (cce_now() - t0) * 1e3;
        info.ok = st == CCE_OK;
        if (!info.ok) snprintf(info.err, sizeof info.err, "%s", err.msg);
        for (int l = 0; job && l < r->model->cfg.n_layers; l++) info.blocks += cce_analysis_block(job, l) != NULL;

        pthread_mutex_lock(&r->mu);
        if (r->have_res) cce_plan_free(&r->res);
        r->res = p;   // a failed build's plan is dropped by the taker
        r->res_info = info;
        r->have_res = 1;
        r->building = 0;
        pthread_cond_broadcast(&r->cv);
        char b = 'p';
        ssize_t w = write(r->wake_fd, &b, 1);
        (void)w;   // a full pipe wakes the UI anyway
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int replanner_start(replanner **out, const cce_model *m, int wake_fd, cce_err *err) {
    *out = NULL;
    replanner *r = calloc(1, sizeof *r);
    if (!r) return cce_err_set(err, CCE_ENOMEM, "planner: out of memory"), -1;
    r->model = m;
    r->wake_fd = wake_fd;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int rc = pthread_create(&r->th, NULL, replan_main, r);
    if (rc) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return cce_err_set(err, CCE_ENOMEM, "planner: cannot start its thread: %s", strerror(rc)), -1;
    }
    *out = r;
    return 0;
}

long replanner_request(replanner *r, const cce_plan *req, const cce_analysis *job) {
    cce_plan copy;
    cce_err err = {{0}};
    if (cce_plan_copy(&copy, req, &err)) return -1;
    pthread_mutex_lock(&r->mu);
    if (r->have_req) cce_plan_free(&r->req);
    r->req = copy;
    r->req_job = job;
    r->req_gen = ++r->next_gen;
    r->have_req = 1;
    long gen = r->req_gen;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return gen;
}

int replanner_take(replanner *r, cce_plan *out, replan_result *res) {
    pthread_mutex_lock(&r->mu);
    int have = r->have_res;
    if (have) {
        *res = r->res_info;
        if (res->ok) {
            cce_plan_free(out);
            *out = r->res;
        } else {
            cce_plan_free(&r->res);
        }
        memset(&r->res, 0, sizeof r->res);
        r->have_res = 0;
    }
    pthread_mutex_unlock(&r->mu);
    return have;
}

int replanner_busy(replanner *r) {
    if (!r) return 0;
    pthread_mutex_lock(&r->mu);
    int b = r->have_req || r->building;
    pthread_mutex_unlock(&r->mu);
    return b;
}

void replanner_wait_idle(replanner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    if (r->have_req) {
        cce_plan_free(&r->req);
        r->have_req = 0;
    }
    while (r->building) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void replanner_free(replanner *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    if (r->have_req) cce_plan_free(&r->req);
    if (r->have_res) cce_plan_free(&r->res);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
