/*
 * tui_main.c — `cce tui [MODEL] [options]`: open the model and the calibration text, then run
 * the interactive inspector in the terminal, or headless from a script.
 *
 * Everything that can fail because of the user's input (model, tokenizer, calibration or
 * evaluation file, options, no terminal) fails here, before the screen is taken over, with one
 * "cce: error:" line and exit status 1 (2 for bad options). Once the terminal is ours it is
 * restored on every way out: the normal quit, SIGINT / SIGTERM / SIGHUP (the handler only sets
 * tui_signal and writes the wake-up pipe; the loop ends and restores), and exit() from anywhere
 * (atexit). A quit by signal exits with 128 + the signal number, like a shell would report it.
 *
 * Defaults: the model is $CCE_DATA/llama2c/stories260K.bin; the calibration text is
 * $CCE_DATA/text/train/ (every file of the TinyStories training samples, 4.7 MB, as `cce plan`
 * takes it; never the evaluation text); the evaluation text is $CCE_DATA/text/tinystories_valid_head.txt,
 * of which a commit measures the first 32768 tokens (--eval-tokens); sessions and the command
 * history are in sessions/ ($CCE_SESSIONS overrides the directory).
 *
 * What the user made is not lost on the way out: a quit with unsaved changes asks first (the
 * loop), every commit writes sessions/autosave.json, and a quit by signal with unsaved changes
 * writes it too before the exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "calib.h"
#include "cli.h"
#include "tui.h"
#include "tui_main.h"
#include "util.h"

static int wake_fd = -1;

static void on_signal(int sig) {
    tui_signal = sig;
    if (wake_fd >= 0) {
        char b = 's';
        ssize_t r = write(wake_fd, &b, 1);
        (void)r;
    }
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static const char *basename_of(const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    const char *s = p + n;
    while (s > p && s[-1] != '/') s--;
    return s;
}

static void usage(cli_opt *opts, int n) {
    printf("usage: cce tui [MODEL] [options]\n\n"
           "The interactive CCE inspector. Opens MODEL (default: %s) and starts the\n"
           "analysis on a worker thread; ? in the TUI lists every key and command.\n\noptions:\n",
           cli_default_model());
    for (int i = 0; i < n; i++)
        printf("  --%-12s %s%s\n", opts[i].name, opts[i].has_arg ? "VALUE  " : "       ", opts[i].help);
    printf("\nDefaults: calibration $CCE_DATA/text/train/ (its files, as cce plan), evaluation\n"
           "$CCE_DATA/text/tinystories_valid_head.txt (a commit measures its first 32768 tokens),\n"
           "sessions and history in sessions/ ($CCE_SESSIONS overrides it).\n"
           "Headless scripts: see tui/script.c (key, keys, cmd, steps, wait analysis, resize, expect, dump, bench).\n"
           "NO_COLOR=1 turns colour off; a non-UTF-8 locale or TERM=vt100 gives ASCII glyphs.\n");
}

typedef struct {
    const char *model, *calib, *eval, *tok, *script, *dump, *history, *analysis, *session;
    int headless, real_times, force_depth, ascii;
    int w, h;
    long tokens, seq_len, seed, eval_tokens;
} tui_args;

/* Parse argv into t; 0, or the exit code (after printing the reason / the help). */
static int parse_args(int argc, char **argv, tui_args *t) {
    cli_opt opts[] = {
        {"calib", 1, "calibration text: a file or a directory of files (default: the TinyStories training samples, see below)", NULL},
        {"eval", 1, "held-out text for measuring a committed plan (default: TinyStories validation text)", NULL},
        {"tokenizer", 1, "tokenizer file (default: beside the model)", NULL},
        {"tokens", 1, "calibration tokens (default 4096)", NULL},
        {"seq-len", 1, "tokens per calibration sequence (default min(256, model context))", NULL},
        {"seed", 1, "seed for the calibration windows (default 1)", NULL},
        {"eval-tokens", 1, "a commit evaluates at most this many tokens of --eval (default 32768; 0: all)", NULL},
        {"analysis", 1, "read the analysis from this file (cce analyze -o, or one :save wrote) instead of computing it", NULL},
        {"session", 1, "open with :load NAME (a session in sessions/)", NULL},
        {"headless", 0, "no terminal: run --script against an in-memory screen", NULL},
        {"script", 1, "headless script of keys and commands (implies --headless)", NULL},
        {"screen", 1, "headless screen size WxH (default 120x40)", NULL},
        {"dump", 1, "directory for the script's screen dumps (default .)", NULL},
        {"real-times", 0, "headless: show timings instead of masking them in dumps", NULL},
        {"colors", 1, "at most this many colours: 0, 8 or 256 (default: what the terminal has)", NULL},
        {"ascii", 0, "ASCII glyphs only", NULL},
        {"history", 1, "command-line history file (default sessions/.history; headless: none)", NULL},
        {"help", 0, "this help", NULL},
    };
    int n = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    if (cli_parse(argc, argv, opts, n, pos, 1, &n_pos)) return 2;
    if (cli_get(opts, n, "help")) {
        usage(opts, n);
        return -1;
    }
    t->model = n_pos ? pos[0] : NULL;
    t->calib = cli_get(opts, n, "calib");
    t->eval = cli_get(opts, n, "eval");
    t->tok = cli_get(opts, n, "tokenizer");
    t->script = cli_get(opts, n, "script");
    t->dump = cli_get(opts, n, "dump");
    t->history = cli_get(opts, n, "history");
    t->analysis = cli_get(opts, n, "analysis");
    t->session = cli_get(opts, n, "session");
    t->headless = cli_get(opts, n, "headless") || t->script;
    t->real_times = cli_get(opts, n, "real-times") != NULL;
    t->ascii = cli_get(opts, n, "ascii") != NULL;
    t->tokens = 4096;
    t->seq_len = 0;
    t->seed = 1;
    t->eval_tokens = 32768;
    t->force_depth = -1;
    t->w = 120;
    t->h = 40;
    long depth = -1;
    if (cli_get_long(opts, n, "tokens", 2, 1L << 24, &t->tokens) || cli_get_long(opts, n, "seq-len", 2, 1 << 20, &t->seq_len) ||
        cli_get_long(opts, n, "seed", 0, 0x7fffffffffffffffL, &t->seed) || cli_get_long(opts, n, "colors", 0, 256, &depth) ||
        cli_get_long(opts, n, "eval-tokens", 0, 1L << 40, &t->eval_tokens))
        return 2;
    if (depth >= 0 && depth != 0 && depth != 8 && depth != 256) return cli_fail("tui: --colors %ld: expected 0, 8 or 256", depth), 2;
    t->force_depth = (int)depth;
    const char *scr = cli_get(opts, n, "screen");
    if (scr) {
        char x, extra;
        if (sscanf(scr, "%d%c%d%c", &t->w, &x, &t->h, &extra) != 3 || (x != 'x' && x != 'X') || t->w < 1 || t->h < 1 ||
            t->w > 1000 || t->h > 1000)
            return cli_fail("tui: --screen %s: expected WxH, e.g. 120x40 (1..1000)", scr), 2;
    }
    if (t->headless && !t->script) return cli_fail("tui: --headless needs --script FILE"), 2;
    if (t->analysis && access(t->analysis, R_OK))
        return cli_fail("%s: cannot read the analysis file: %s", t->analysis, strerror(errno)), 1;
    if (t->session) {
        cce_err err = {{0}};
        if (cce_session_name_check(t->session, &err)) return cli_fail("tui: --session: %s", err.msg), 2;
    }
    if (t->dump && mkdir(t->dump, 0777) && errno != EEXIST)
        return cli_fail("%s: cannot create the dump directory: %s", t->dump, strerror(errno)), 1;
    return 0;
}

/* Model, tokenizer, calibration and evaluation text into a; 0 or 1 (error printed). */
static int open_inputs(app *a, const tui_args *t) {
    char def[1024];
    /* with an analysis file the model may come without a tokenizer (then nothing is encoded) */
    if (cli_open_model(t->model, t->tok, !t->analysis, &a->model, &a->tok)) return 1;
    snprintf(a->model_path, sizeof a->model_path, "%.1000s", t->model ? t->model : cli_default_model());
    snprintf(a->model_name, sizeof a->model_name, "%s", basename_of(a->model_path));
    const char *calib = t->calib;
    if (!calib) {
        snprintf(def, sizeof def, "%.900s/text/train", cli_data_dir());
        calib = def;
        if (access(calib, R_OK))
            return cli_fail("%s: the default calibration text is missing; pass --calib FILE or set CCE_DATA", calib);
    }
    cce_err err = {{0}};
    if (cce_calib_read_text(calib, &a->calib_text, &a->calib_len, a->calib_sha256, &err)) return cli_fail_err(&err);
    if (a->calib_len == 0) return cli_fail("%s: the calibration text is empty", calib);
    snprintf(a->calib_path, sizeof a->calib_path, "%.1000s", calib);
    snprintf(a->calib_desc, sizeof a->calib_desc, "%.150s (%zu bytes), %ld tokens, seed %ld%s", calib, a->calib_len, t->tokens,
             t->seed, t->calib ? "" : " (default)");
    if (t->eval) {
        if (access(t->eval, R_OK)) return cli_fail("%s: cannot read the evaluation text: %s", t->eval, strerror(errno));
        snprintf(a->eval_path, sizeof a->eval_path, "%.1000s", t->eval);
    } else {
        snprintf(def, sizeof def, "%.900s/text/tinystories_valid_head.txt", cli_data_dir());
        if (!access(def, R_OK)) snprintf(a->eval_path, sizeof a->eval_path, "%s", def);
    }
    if (t->analysis) snprintf(a->analysis_path, sizeof a->analysis_path, "%.1000s", t->analysis);
    a->eval_tokens = t->eval_tokens;
    cce_analysis_opts_default(&a->aopts);
    a->aopts.tokens = t->tokens;
    a->aopts.seq_len = (int)t->seq_len;
    a->aopts.seed = (uint64_t)t->seed;
    if (a->aopts.seq_len > a->model->cfg.seq_len)
        return cli_fail("tui: --seq-len %d is above the model context %d", a->aopts.seq_len, a->model->cfg.seq_len);
    return 0;
}

static void history_default(char *buf, size_t cap) {
    const char *dir = getenv("CCE_SESSIONS");
    snprintf(buf, cap, "%s/.history", dir && *dir ? dir : "sessions");
}

/* Start the planner, the analysis and the first plan; then --session. 0 or 1. */
static int start_engine(app *a, const tui_args *t) {
    cce_err err = {{0}};
    if (replanner_start(&a->rp, a->model, a->wake_w, &err)) return cli_fail("tui: %s", err.msg);
    tui_start_analysis(a);
    tui_replan(a);
    return 0;
}

/* --session NAME, once the engine runs; reactions. */
static int open_session(app *a, const tui_args *t) {
    if (!t->session) return R_NONE;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "load %s", t->session);
    return tui_run_command(a, cmd);
}

static int run_headless(app *a, const tui_args *t) {
    int utf8 = !t->ascii && theme_detect_utf8(nl_langinfo(CODESET), getenv("TERM"));
    theme_depth d = t->force_depth >= 256 ? DEPTH_256 : t->force_depth >= 8 ? DEPTH_8 : DEPTH_NONE;
    if (getenv("NO_COLOR") && *getenv("NO_COLOR")) d = DEPTH_NONE;
    theme_init(&a->th, d, utf8);
    a->w = t->w;
    a->h = t->h;
    a->headless = 1;
    a->hold = 1;
    a->mask_times = !t->real_times;
    if (cmdline_init(a, t->history)) return cli_fail("tui: cannot set up the command line");
    if (start_engine(a, t)) return 1;
    a->pending = open_session(a, t);
    int rc = tui_run_script(a, t->script, t->dump);
    return rc ? rc : a->quit_signal ? 128 + a->quit_signal : 0;
}

static int run_terminal(app *a, const tui_args *t) {
    char why[256], hist[1100];
    a->ascii_forced = t->ascii;
    if (term_open(a, t->force_depth, why, sizeof why)) return cli_fail("tui: %s", why);
    if (t->history) snprintf(hist, sizeof hist, "%s", t->history);
    else history_default(hist, sizeof hist);
    if (cmdline_init(a, hist)) {
        term_close();
        return cli_fail("tui: cannot set up the command line");
    }
    if (start_engine(a, t)) {
        term_close();
        return 1;
    }
    a->pending = open_session(a, t);
    tui_loop_terminal(a);
    term_close();
    return a->quit_signal ? 128 + a->quit_signal : 0;
}

int tui_main(int argc, char **argv) {
    tui_args t = {0};
    int rc = parse_args(argc, argv, &t);
    if (rc) return rc < 0 ? 0 : rc;
    setlocale(LC_ALL, "");
    setlocale(LC_NUMERIC, "C");   // numbers are printed and parsed the same in every locale
    app *a = calloc(1, sizeof *a);
    if (!a) return cli_fail("tui: out of memory");
    a->t0 = cce_now();
    a->wake_r = a->wake_w = -1;
    cce_knobs kd;
    cce_knobs_default(&kd);
    const double defs[KNOB_COUNT] = {kd.alpha, kd.beta, kd.gamma, kd.eps, kd.tau, kd.target};
    for (int k = 0; k < KNOB_COUNT; k++) a->knob[k] = defs[k];
    a->knob_sel = KNOB_EPS;
    a->view = a->prev_view = VIEW_LAYERS;
    a->hist_log = 1;   // activation tails matter for compression and vanish on a linear scale
    rc = 1;
    if (open_inputs(a, &t)) goto done_free_inputs;
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC)) {
        cli_fail("tui: cannot create the wake-up pipe: %s", strerror(errno));
        goto done_free_inputs;
    }
    a->wake_r = p[0];
    a->wake_w = wake_fd = p[1];
    install_signals();
    cce_param_count pc = cce_model_params(a->model);
    tui_log(a, LOG_INFO, "model %s: %s %s, %d blocks, dim %d, %lld non-embedding parameters", a->model_path,
            cce_format_name(a->model->format), cce_arch_name(a->model->cfg.arch), a->model->cfg.n_layers,
            a->model->cfg.dim, (long long)pc.non_embedding);
    tui_log(a, LOG_INFO, "calibration %s", a->calib_desc);
    rc = t.headless ? run_headless(a, &t) : run_terminal(a, &t);
    /* a quit by signal does not ask: keep what was made */
    if (a->quit_signal && a->dirty && tui_autosave(a) == 0)
        fprintf(stderr, "cce: unsaved changes written to %s/autosave.json (:load autosave)\n", tui_sessions_dir());
    /* a failed analysis is bad input (the calibration text, usually): after the terminal is
     * back, say so once more on stderr and exit non-zero */
    if (rc == 0 && a->wk && worker_state(a->wk) == JOB_FAILED) rc = cli_fail("%s: %s", a->calib_path, worker_error(a->wk));
    cmdline_free(a);
    tui_plan_free(a);   // the task and the planner read the analysis: they go first
    worker_free(a->wk);
    a->wk = NULL;
    wake_fd = -1;
    close(a->wake_r);
    close(a->wake_w);
done_free_inputs:
    free(a->calib_text);
    cce_tokenizer_free(a->tok);
    cce_model_free(a->model);
    free(a);
    return rc;
}
