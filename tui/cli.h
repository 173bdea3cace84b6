/*
 * cli.h — shared plumbing of the batch commands (tui/cmd_*.c): option parsing, opening the
 * model a command names (or the default one), errors, JSON output, progress and Ctrl-C.
 *
 * Conventions every command follows (DESIGN §1):
 *  - `int cmd_NAME(int argc, char **argv)`; argv[0] is the command name; returns the exit code.
 *  - --json prints exactly one JSON object on stdout; human text otherwise.
 *  - progress goes to stderr (cli_progress, throttled); errors are one line "cce: error: ...".
 *  - Ctrl-C sets cli_interrupted; long loops poll it and stop with exit code 130.
 * Nothing here includes curses or readline: cce-batch links these files without them.
 */
#ifndef CCE_CLI_H
#define CCE_CLI_H

#include <signal.h>
#include <cjson/cJSON.h>
#include "status.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    const char *name;   /* long option without dashes, e.g. "text" for --text */
    int has_arg;        /* 1: takes a value (--name VALUE or --name=VALUE) */
    const char *help;
    const char *value;  /* filled by cli_parse (has_arg) or "1" for flags */
} cli_opt;

/* Parse argv[1..] into opts (short forms: -o for "o"/"output", -n for "n") and positionals.
 * Prints "cce: error: ..." and returns -1 on an unknown option or missing value. --help / -h
 * (unless the command has a "help" option of its own) prints cli_usage_line and the options
 * with their help, and exits 0. */
int cli_parse(int argc, char **argv, cli_opt *opts, int n_opts,
              const char **pos, int max_pos, int *n_pos);
const char *cli_get(const cli_opt *opts, int n_opts, const char *name);
/* Integer / double option with range check; *out unchanged when absent. Returns -1 (after
 * printing an error) on a malformed or out-of-range value. */
int cli_get_long(const cli_opt *opts, int n_opts, const char *name, long lo, long hi, long *out);
int cli_get_double(const cli_opt *opts, int n_opts, const char *name, double lo, double hi, double *out);

/* Print "cce: error: <fmt>" to stderr; returns 1 (the exit code to use). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail_err(const cce_err *err);

/* The data directory ($CCE_DATA, else ../shared/data relative to the working directory). */
const char *cli_data_dir(void);
/* Path of the default model (stories260K.bin in the data directory). */
const char *cli_default_model(void);

/* Open the model at path (NULL: the default model) with --tokenizer tok_path (may be NULL).
 * need_tok: fail if no tokenizer could be loaded. Prints the error itself; returns 0 or 1. */
int cli_open_model(const char *path, const char *tok_path, int need_tok,
                   cce_model **model, cce_tokenizer **tok);

/* Read a text file (calibration or evaluation text) whole into *text (cce_free); prints the
 * error itself and returns 1 on failure. A text that is not valid UTF-8 gets a warning naming
 * the first bad byte offset (cli_warn_utf8). */
int cli_read_text(const char *path, char **text, size_t *len);
/* Warn on stderr when s[0..len) is not valid UTF-8; what names the text. */
void cli_warn_utf8(const char *what, const char *s, size_t len);

/* Print a JSON object on stdout (compact, one line) and delete it. */
void cli_json_print(cJSON *obj);

/* Progress on stderr, at most ~10 lines/s, only when the run has lasted > 1 s or ends. */
void cli_progress(const char *phase, long done, long total);
void cli_progress_end(void);

extern volatile sig_atomic_t cli_interrupted;
extern const char *cli_usage_line;   /* the running command's usage line (main.c) */
void cli_install_signals(void);

/* The commands. */
int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_robustness(int argc, char **argv);
int cmd_classify(int argc, char **argv);

#endif
