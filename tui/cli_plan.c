/*
 * cli_plan.c — CLI plumbing shared by the commands that make or use a plan (plan, apply, eval,
 * generate, bench, compare, ...): the default calibration text, running an analysis job with
 * progress and Ctrl-C, and opening "the model a plan makes" in memory.
 *
 * The engine does the work (analysis.h, plan.h, encode.h); these functions only add what a
 * command line needs around it: messages, progress on stderr, interrupts.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli_plan.h"
#include "encode.h"

const char *cli_default_calib(void) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/text/train", cli_data_dir());
    return buf;
}

const char *cli_default_eval(void) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/text/tinystories_valid_head.txt", cli_data_dir());
    return buf;
}

typedef struct {
    cce_analysis *job;
    volatile int stop;
} cli_watch;

/* Ctrl-C is passed on within 10 ms (the job then stops within its longest uninterrupted piece
 * of work, ~0.15 s at smollm-135m shapes); progress is printed every 50 ms. */
static void *cli_watch_main(void *arg) {
    cli_watch *w = arg;
    struct timespec ts = {0, 10 * 1000 * 1000};
    for (int tick = 0; !w->stop; tick++) {
        if (cli_interrupted) cce_analysis_cancel(w->job);
        if (tick % 5 == 0) {
            int done, total;
            char phase[96];
            cce_analysis_progress(w->job, &done, &total, phase, sizeof phase);
            cli_progress(phase, done, total);
        }
        nanosleep(&ts, NULL);
    }
    return NULL;
}

cce_status cli_run_analysis(cce_analysis *job, cce_err *err) {
    cli_watch w = {job, 0};
    pthread_t th;
    int have = pthread_create(&th, NULL, cli_watch_main, &w) == 0;
    cce_status s = cce_analysis_run(job, err);
    w.stop = 1;
    if (have) pthread_join(th, NULL);
    cli_progress_end();
    return s;
}

int cli_read_calib(const char *path, const cce_tokenizer *tok, cli_calib *c) {
    memset(c, 0, sizeof *c);
    cce_err err = {{0}};
    snprintf(c->path, sizeof c->path, "%s", path ? path : cli_default_calib());
    if (cce_calib_read_text(c->path, &c->text, &c->len, c->sha256, &err)) return cli_fail_err(&err);
    cli_warn_utf8(c->path, c->text, c->len);
    if (tok && cce_text_tokens(tok, c->text, c->len, &c->ids, &c->n_ids, &err)) {
        cli_calib_free(c);
        cce_err_prefix(&err, CCE_EIO, path ? path : cli_default_calib());
        return cli_fail_err(&err);
    }
    return 0;
}

void cli_calib_free(cli_calib *c) {
    cce_free(c->text);
    cce_free(c->ids);
    memset(c, 0, sizeof *c);
}

static int cli_encode_progress(void *user, int done, int total, const char *phase) {
    (void)user;
    char buf[96];
    snprintf(buf, sizeof buf, "encode %s", phase);
    cli_progress(buf, done, total);
    return cli_interrupted != 0;
}

int cli_open_plan(const cce_model *m, const cce_tokenizer *tok, const char *plan_path, const char *calib_path,
                  cce_plan *plan, cce_model **out) {
    cce_err err = {{0}};
    *out = NULL;
    if (cce_plan_load(plan_path, m, plan, &err)) return cli_fail_err(&err);
    if (!tok) {
        cce_plan_free(plan);
        return cli_fail("%s: encoding a plan needs the model's tokenizer for its calibration text", plan_path);
    }
    cce_status s = cce_encode_calib(m, tok, plan, calib_path, cli_encode_progress, NULL, out, &err);
    cli_progress_end();
    if (s) {
        cce_plan_free(plan);
        if (s == CCE_ECANCEL && cli_interrupted) {
            fprintf(stderr, "cce: interrupted\n");
            return 130;
        }
        return cli_fail("%s: %s", plan_path, err.msg);
    }
    return 0;
}

int cli_swap_in_plan(cce_model **m, const cce_tokenizer *tok, const char *plan_path, const char *calib_path,
                     cce_model **src) {
    *src = NULL;
    if (!plan_path) return 0;
    cce_plan plan;
    cce_model *c = NULL;
    int rc = cli_open_plan(*m, tok, plan_path, calib_path, &plan, &c);
    if (rc) return rc;
    cce_plan_free(&plan);
    *src = *m;
    *m = c;
    return 0;
}

/* "BLOCK:KIND[:INDEX]" (e.g. 3:heads:2, 5:drop_block) into a pin. */
int cli_parse_pin(const char *text, cce_pin *pin) {
    char kind[32] = "";
    int block = -1, index = -1, n = 0;
    int got = sscanf(text, "%d:%31[a-z_0-9]%n:%d", &block, kind, &n, &index);
    if (got < 2) return cli_fail("'%s' is not BLOCK:KIND[:INDEX] (e.g. 3:heads:2, 5:drop_block)", text);
    int k = -1;
    for (int q = 0; q < CCE_CURVE_COUNT; q++)
        if (!strcmp(kind, cce_curve_name((cce_curve_kind)q))) k = q;
    if (k < 0) return cli_fail("'%s': '%s' is not a kind (neurons heads rank_wq..rank_w2 drop_attn drop_ffn drop_block)", text, kind);
    pin->block = block;
    pin->kind = (cce_curve_kind)k;
    pin->index = got == 3 ? index : -1;
    return 0;
}
