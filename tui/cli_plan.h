/*
 * cli_plan.h — CLI plumbing for commands that make or use a plan (tui/cli_plan.c).
 * No curses, no readline: cce-batch links it.
 */
#ifndef CCE_CLI_PLAN_H
#define CCE_CLI_PLAN_H

#include "cli.h"
#include "analysis.h"
#include "calib.h"
#include "eval.h"
#include "plan.h"

/* $CCE_DATA/text/train (the calibration default) and the evaluation text default. */
const char *cli_default_calib(void);
const char *cli_default_eval(void);

/* Run an analysis job to the end on this thread, progress on stderr, Ctrl-C cancels it. */
cce_status cli_run_analysis(cce_analysis *job, cce_err *err);

/* A calibration text (file or directory, NULL: the default) with its SHA-256 and, when tok is
 * given, its token stream by the evaluation protocol. Prints the error; returns 0 or 1. */
typedef struct {
    char path[4096];
    char sha256[65];
    char *text;
    size_t len;
    int *ids;
    size_t n_ids;
} cli_calib;
int cli_read_calib(const char *path, const cce_tokenizer *tok, cli_calib *c);
void cli_calib_free(cli_calib *c);

/* Load plan_path for m (validated against it), encode it with its calibration text (or
 * calib_path) into *out, which borrows from m. Prints the error; returns 0, 1, or 130 when
 * interrupted. On success the caller owns *plan (cce_plan_free) and *out (cce_model_free). */
int cli_open_plan(const cce_model *m, const cce_tokenizer *tok, const char *plan_path, const char *calib_path,
                  cce_plan *plan, cce_model **out);

/* With plan_path (else nothing happens, *src = NULL): encode it for *m (cli_open_plan), and
 * swap: *src becomes the original model, *m the compressed one that borrows from it (free *m
 * before *src). On failure *m is untouched and the exit code is returned. */
int cli_swap_in_plan(cce_model **m, const cce_tokenizer *tok, const char *plan_path, const char *calib_path,
                     cce_model **src);

/* Parse "BLOCK:KIND[:INDEX]" into a pin or force; prints the error, returns 0 or 1. */
int cli_parse_pin(const char *text, cce_pin *pin);

#endif
