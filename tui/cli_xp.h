/*
 * cli_xp.h — CLI plumbing shared by the experiment commands (compare, sweep, sensitivity,
 * robustness, classify): lists on the command line, the evaluation texts and their identities,
 * the refusal of evaluation text that is also calibration text, progress, CSV files.
 * No curses, no readline: cce-batch links it.
 */
#ifndef CCE_CLI_XP_H
#define CCE_CLI_XP_H

#include "cli_plan.h"
#include "experiments.h"

/* "0.1,0.2,0.3" into v (at most cap values, each in [lo, hi]); prints the error, returns 0 or 1. */
int cli_xp_doubles(const char *opt, const char *list, double lo, double hi, double *v, int cap, int *n);
/* "a,b,c" split in place into at most cap pointers into buf (a copy the caller frees). */
int cli_xp_words(const char *opt, const char *list, char **buf, char **v, int cap, int *n);

/* An evaluation text: path, SHA-256 of its bytes, its protocol token stream. */
typedef struct {
    char path[4096];
    char sha256[65];
    char *text;
    size_t len;
    int *ids;
    size_t n_ids;
} cli_text;
/* Read and tokenise; prints the error, returns 0 or 1. */
int cli_xp_read_text(const char *path, const cce_tokenizer *tok, cli_text *t);
void cli_xp_text_free(cli_text *t);

/* Refuse evaluation text that is calibration text: the same path, the same SHA-256, or (for a
 * calibration directory) the same bytes as one of its files. calib_sha may be NULL (then only
 * the path and the directory's files are compared). Prints the error; returns 0 or 1. */
int cli_xp_check_disjoint(const char *calib_path, const char *calib_sha, const cli_text *eval);

/* Progress of the engine drivers on stderr; non-zero (cancel) once Ctrl-C was pressed. */
int cli_xp_progress(void *user, const char *phase, long done, long total);

/* A growing text buffer for CSV and tables. */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} cli_buf;
void cli_buf_printf(cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_buf_free(cli_buf *b);
/* Write b to path atomically; prints the error, returns 0 or 1. */
int cli_buf_save(const cli_buf *b, const char *path);

/* JSON of an identity / an evaluation result / a row (one object each). */
cJSON *cli_xp_model_json(const cce_model *m, const char *sha256);
cJSON *cli_xp_eval_json(const cce_xp_eval *e);
/* The row's keys: method, target, removed_fraction, params, ppl, loss, accuracy, ppl_ratio (to
 * dense, when dense is given), tokens_per_s, seconds, and "evals" with every evaluation when
 * there is more than one. */
cJSON *cli_xp_row_json(const cce_xp_row *r, const cce_xp_row *dense, int n_evals);

/* "%.2f%%" of a fraction into buf (negative when encoding added parameters). */
const char *cli_xp_pct(double f, char *buf, size_t cap);
/* Interrupted-aware failure: 130 with "cce: interrupted" after Ctrl-C, else the error line. */
int cli_xp_fail(cce_status s, const cce_err *err);

#endif

/* ---- the options and inputs compare, sweep and sensitivity share ---- */

/* compare and sweep add these; sensitivity takes --eps and --tau as grids instead */
#define CLI_XP_EPS_TAU_OPTS \
    {"eps", 1, "CCE: eigenvalue threshold", NULL}, \
    {"tau", 1, "CCE: singular value threshold", NULL}

#define CLI_XP_COMMON_OPTS \
    {"calib", 1, "calibration text: a file or a directory of files (default $CCE_DATA/text/train)", NULL}, \
    {"eval", 1, "evaluation text(s), comma-separated; the first is the main one (default $CCE_DATA/text/tinystories_valid_head.txt)", NULL}, \
    {"tokens", 1, "calibration tokens of every method's statistics and encoding (default: the CCE encoder's, 32768 up to 100M parameters)", NULL}, \
    {"analysis-tokens", 1, "CCE's analysis: the first N of those tokens' windows (default 4096, as cce plan)", NULL}, \
    {"seq-len", 1, "calibration window (default min(256, context))", NULL}, \
    {"seed", 1, "which calibration windows (default 1)", NULL}, \
    {"eval-tokens", 1, "evaluate only the first N tokens of each text", NULL}, \
    {"eval-seq-len", 1, "evaluation window (default min(256, context))", NULL}, \
    {"decode-tokens", 1, "decode speed: KV-cached greedy steps (0: not measured)", NULL}, \
    {"decode-reps", 1, "decode speed: best of N runs (default 3)", NULL}, \
    {"alpha", 1, "CCE: weight of L_rec", NULL}, \
    {"beta", 1, "CCE: weight of L_sim", NULL}, \
    {"gamma", 1, "CCE: weight of L_reg", NULL}, \
    {"tokenizer", 1, "tokenizer file", NULL}, \
    {"json", 0, "one JSON object on stdout", NULL}, \
    {"csv", 1, "also write the table as CSV to FILE", NULL}

typedef struct {
    cce_model *m;
    cce_tokenizer *tok;
    char model_sha[65];
    cli_calib cal;
    int n_evals;
    cli_text ev[CCE_XP_MAX_EVALS];
    cce_xp_setup su;
} cli_xp_ctx;

/* Open the model, read and tokenise the calibration and evaluation texts (refusing overlap),
 * and fill x->su from the common options (decode_default: decode tokens when not given; the
 * knobs --eps and --tau are read only when the command has them as single values, eps_tau).
 * Prints the error; returns 0, 1 or 2 (bad option). */
int cli_xp_open(const cli_opt *opts, int n_opts, const char *model_path, long decode_default, int eps_tau,
                cli_xp_ctx *x);
void cli_xp_close(cli_xp_ctx *x);
/* "calibration" and "evaluation" identity objects added to o. */
void cli_xp_add_ids(cJSON *o, const cli_xp_ctx *x);
/* One line per text naming it, for the human output. */
void cli_xp_print_ids(const cli_xp_ctx *x);
