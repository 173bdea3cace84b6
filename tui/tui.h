/*
 * tui.h — the interactive inspector's internal interfaces (the tui/ files other than cli and cmd_).
 *
 * Shape (STYLE.md: tig, htop, ncdu):
 *
 *   terminal keys ─┐                      ┌─ view_*.c draw into a canvas ─ blit.c ─ curses
 *   script lines ──┼─ actions.c dispatch ─┤
 *   : command line ┘  (one action table)  └─ reaction flags ─ the loop (loop.c) acts on them
 *
 *   worker.c thread ── cce_analysis_step ── wake-up pipe ──> loop.c reads results through the
 *                                                            engine's thread-safe job API
 *   replan.c thread ── cce_plan_build ───── wake-up pipe ──> the loop adopts the newest plan
 *   task.c thread ──── cce_encode, cce_eval_ids, cce_histo_run, cce_plan_search ──> results
 *                      moved to the UI thread when the task ends (commit.c adopts them)
 *
 * - One action table (actions.c) is the source of the key map, the : commands, the help view
 *   and command-line completion. Handlers change the app state and return reaction flags
 *   (R_REDRAW, R_RELAYOUT, R_QUIT, R_RESTART); only the loop redraws, quits or restarts.
 * - Views are a table of operations (draw, move); they read the model, the knobs and the
 *   analysis job and draw into a canvas (canvas.h), never into curses.
 * - Only the UI thread touches the app, the canvas and curses. The worker owns the analysis
 *   job while it runs; block results, layer similarity and progress cross through
 *   include/analysis.h's thread-safe readers, and the worker writes a byte to the wake-up pipe
 *   after each step. Signal handlers only set a flag and write the same pipe.
 * - Re-planning runs on its own thread (a re-plan takes 0.1 ms on stories260K but hundreds of
 *   milliseconds on a 30-block, 1536-neuron model, and keys never wait): handlers ask for it
 *   with R_REPLAN, the loop sends the plan's inputs (knobs, pins, forces) to the planner thread
 *   once per batch of keys, a newer request replaces one not started yet, and the loop adopts
 *   the newest result when the thread writes the wake-up pipe. Views draw the adopted plan.
 * - Committing (encode, evaluate before and after, decoding speed, histograms) and :search run
 *   on the task thread, one task at a time, with progress and cancel like the analysis. While a
 *   task or a re-plan may read the analysis job, the job is not freed: rerun and :load wait for
 *   the planner and refuse while a task runs.
 * - Headless mode (script.c) runs the same dispatcher and renderer without a terminal; it waits
 *   for each re-plan to be adopted before the next script line, so its screens are exact.
 */
#ifndef CCE_TUI_H
#define CCE_TUI_H

#include <signal.h>
#include <stddef.h>
#include "analysis.h"
#include "canvas.h"
#include "histo.h"
#include "model.h"
#include "plan.h"
#include "search.h"
#include "session.h"
#include "theme.h"
#include "tokenizer.h"

typedef struct app app;

/* ------------------------------------------------------------------ keys */
/* A key is a Unicode code point (printable), a control character (1..31, 127) or one of these. */
enum {
    TK_ENTER = 0x110001, TK_ESC, TK_TAB, TK_BTAB, TK_BACKSPACE, TK_DELETE,
    TK_UP, TK_DOWN, TK_LEFT, TK_RIGHT, TK_PGUP, TK_PGDN, TK_HOME, TK_END,
    TK_F1, TK_F10 = TK_F1 + 9, TK_RESIZE, TK_INTERRUPT,
};
#define TK_CTRL(c) ((c) & 0x1f)
/* "j", "J", "Enter", "Esc", "Tab", "S-Tab", "Space", "Up", "PgDn", "C-l", "F1", "Backspace",
 * ... → key, or 0 when not a key name. */
int tui_key_parse(const char *name);
/* The name tui_key_parse reads back (buf of at least 16 bytes). */
void tui_key_name(int key, char *buf, size_t cap);

/* ------------------------------------------------------------------ reactions */
enum { R_NONE = 0, R_REDRAW = 1, R_RELAYOUT = 2, R_QUIT = 4, R_RESTART = 8, R_REPLAN = 16 };

/* ------------------------------------------------------------------ knobs */
typedef enum { KNOB_ALPHA, KNOB_BETA, KNOB_GAMMA, KNOB_EPS, KNOB_TAU, KNOB_TARGET, KNOB_COUNT } knob_id;
typedef struct {
    const char *name;     // the batch option's name: alpha beta gamma eps tau target
    double lo, hi, def;
    const char *help;
} knob_def;
extern const knob_def tui_knobs[KNOB_COUNT];
/* Index of the knob named name (exact), or -1. */
int knob_find(const char *name);
/* Parse a value for knob k ("0.01", "1e-3"; target also "30%"). Returns 0, or -1 with why. */
int knob_parse(int k, const char *s, double *out, char *why, size_t cap);
/* The next value up (dir > 0) or down: the 1-2-5 ladder for alpha..tau, steps of 0.05 for
 * target; clamped to the knob's range. */
double knob_nudge(int k, double v, int dir);
/* Short display of a value ("1e-3", "0.5", "30%"). */
void knob_format(int k, double v, char *buf, size_t cap);

/* ------------------------------------------------------------------ worker (worker.c) */
typedef struct worker worker;
typedef enum { JOB_STARTING, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } job_state;

/* Start the analysis of m on a new thread: cce_analysis_new, then one cce_analysis_step at a
 * time, one byte written to wake_fd (non-blocking) after each step and at the end. src and opts
 * are copied (the text too, by the engine); m and src->tok must outlive the worker. hold: run no
 * step until worker_allow (headless scripts make partial screens deterministic). load_path (may
 * be NULL): read the analysis from this file (cce_analysis_load) instead of computing it.
 * hash_model: first compute m's identity (worker_model_id). Returns 0, or -1 with err when the
 * thread cannot be created. */
int worker_start(worker **out, const cce_model *m, const cce_calib_source *src,
                 const cce_analysis_opts *opts, const char *load_path, int hash_model, int wake_fd,
                 int hold, cce_err *err);
/* The model identity the worker computed: 1 (copied to *out), 0 not yet, -1 it failed. */
int worker_model_id(const worker *w, cce_model_id *out);
/* Is the worker reading an analysis file rather than computing? */
int worker_loaded(const worker *w);
/* Ask the job to stop at its next tap (any thread; returns at once). */
void worker_cancel(worker *w);
/* Let the worker run until `steps` steps are done (-1: to the end). */
void worker_allow(worker *w, int steps);
/* Is the worker waiting for worker_allow (after finishing the allowed steps)? */
int worker_held(const worker *w);
job_state worker_state(const worker *w);
/* The job once created (else NULL); valid until worker_free. */
const cce_analysis *worker_job(const worker *w);
/* The failure or cancel message (valid when the state says so), and seconds since start (to
 * the end when finished). */
const char *worker_error(const worker *w);
double worker_elapsed(const worker *w);
/* Cancel, join the thread, free the job. NULL is fine. */
void worker_free(worker *w);

/* ------------------------------------------------------------------ the planner thread (replan.c) */
typedef struct replanner replanner;
/* Start the planner thread for m; it writes one byte to wake_fd when a plan is ready. 0 or -1. */
int replanner_start(replanner **out, const cce_model *m, int wake_fd, cce_err *err);
/* Ask for a plan from req's inputs (deep-copied: knobs, pins, forces, block_scale, identities,
 * encoding options) over the blocks job has finished (job may be NULL: every block whole); a
 * request not started yet is replaced. Returns the request's generation (> 0), or -1 when out
 * of memory. job must stay alive until the planner is idle (replanner_wait_idle). */
long replanner_request(replanner *r, const cce_plan *req, const cce_analysis *job);
typedef struct {
    long gen;              // the request it answers
    int ok;                // 1: *out holds the plan; 0: the build failed with err
    char err[512];
    double ms;             // wall time of cce_plan_build
    int blocks;            // analysed blocks the build used
} replan_result;
/* The newest finished build newer than the last taken: 1 and its plan moved into *out (whose
 * old contents are freed) when ok, else 0 (nothing new). */
int replanner_take(replanner *r, cce_plan *out, replan_result *res);
/* Is a request pending or being built? */
int replanner_busy(replanner *r);
/* Drop a pending request and wait for the build in progress (before the job it reads goes). */
void replanner_wait_idle(replanner *r);
void replanner_free(replanner *r);

/* ------------------------------------------------------------------ the task thread (task.c) */
/* What a commit measured and built; owned by the app once the task has ended. */
typedef struct {
    cce_model *model;          // the compressed model (borrows the app's model: free it first)
    cce_plan plan;             // the plan that was committed
    cce_histo histo;           // its activations with the analysis's bin edges
    cce_commit_record rec;     // predicted and measured, as the session records it
    double encode_s, eval_s;   // seconds (shown masked in headless dumps)
} commit_result;
void commit_result_free(commit_result *c);

/* Work a task keeps between tasks (filled by the task thread, read by the next task only). */
typedef struct {
    int *calib_ids;            // the calibration token stream (cce_text_tokens), or NULL
    size_t n_calib_ids;
    int *eval_ids;             // the evaluation stream, capped (of before_key's text), or NULL
    size_t n_eval_ids;
    char before_key[1200];     // what `before` and eval_ids were made from (eval path and cap), "" none
    cce_measure before;
    char eval_sha256[65];
    long eval_tokens;
    int eval_seq_len;
} task_cache;
void task_cache_free(task_cache *c);

typedef enum { TASK_COMMIT, TASK_SEARCH } task_kind;
typedef struct {
    task_kind kind;
    const cce_model *model;
    const cce_tokenizer *tok;
    const char *calib_text;     // the app's calibration text (not copied: immutable while the task runs)
    size_t calib_len;
    const char *eval_path;      // commit: the held-out text
    long eval_tokens;           // commit: evaluate at most this many tokens (0: all)
    const cce_plan *plan;       // copied
    const cce_block_result *const *blocks;   // (n_layers) copied array; the results must outlive the task
    cce_calib_opts hist_opts;   // commit: the analysis's windows (for the histograms)
    int search_evaluations;     // search: candidate plans
    task_cache *cache;          // the app's; only the task touches it while it runs
} task_in;
typedef struct task task;
int task_start(task **out, const task_in *in, int wake_fd, cce_err *err);
void task_cancel(task *t);
job_state task_state(const task *t);
task_kind task_kind_of(const task *t);
/* Progress of the running phase and its text ("encode block 2 ffn"); step/steps: the phase's
 * place among the task's phases. */
void task_progress(const task *t, int *done, int *total, int *step, int *steps, char *phase, size_t cap);
const char *task_error(const task *t);
double task_elapsed(const task *t);
/* After TASK_COMMIT ended with JOB_DONE: move the result out (once). 0 or -1. */
int task_take_commit(task *t, commit_result *out);
/* After TASK_SEARCH ended with JOB_DONE: the best plan (moved into *out) and the figures. */
int task_take_search(task *t, cce_plan *out, cce_search_result *res);
/* Cancel, join, free what was not taken. NULL is fine. */
void task_free(task *t);

/* ------------------------------------------------------------------ the Plan view's components (view_plan.c) */
/* The i-th component of block l a pin can name, in the Plan view's order: the block, its
 * attention and FFN sublayers (drop kinds, index -1), its seven matrices (rank kinds, -1: kept
 * dense when pinned), its query heads, its FFN neurons. 0, or -1 past the last. */
typedef struct {
    int kind, index;
    char label[16];            // "block" "attn" "wq" "h3" "n17"
} plan_comp;
int plan_component(const app *a, int l, int i, plan_comp *out);
int plan_n_components(const app *a, int l);
/* Is the component removed by the current plan? */
int plan_comp_removed(const app *a, int l, const plan_comp *c);

/* ------------------------------------------------------------------ plan, commit, sessions (plan_ui.c) */
/* Send the current inputs to the planner thread (the loop does this on R_REPLAN). */
void tui_replan(app *a);
/* Adopt finished plans and tasks; called from tui_on_wake. Returns reactions. */
int tui_plan_poll(app *a);
/* The plan's state for a view: NULL before the first plan. */
const cce_plan *tui_plan(const app *a);
/* Pin (how 1), force (2) or clear (0) the component (block, kind, index); one at most per
 * component. Returns reactions (R_REPLAN when something changed). */
int tui_pin_set(app *a, int block, int kind, int index, int how);
/* 1 pinned, 2 forced, 0 neither. */
int tui_pin_state(const app *a, int block, int kind, int index);
int tui_commit_start(app *a);
int tui_search_start(app *a, int evaluations);
/* Is a commit or search running? */
int tui_task_running(const app *a);
/* :export FILE, :save [NAME] (NAME defaults to the session's, else the model's name). 0, or
 * -1 after logging the one-line reason. */
int tui_export(app *a, const char *path);
int tui_session_save(app *a, const char *name);
/* :load NAME: -1 after logging why not, else reactions (R_RESTART when the analysis has to be
 * reloaded or recomputed: the loop restarts the worker with the session's options). */
int tui_session_load(app *a, const char *name);
/* Write sessions/autosave.json (after a commit, on a signal). 0 or -1 (logged). */
int tui_autosave(app *a);
/* The sessions directory ($CCE_SESSIONS, else sessions) and the default session name. */
const char *tui_sessions_dir(void);
void tui_default_session_name(const app *a, char *buf, size_t cap);
/* Before the analysis job is freed or replaced: wait for the planner, refuse while a task runs.
 * 0 when it may go, -1 (message shown) when not. */
int tui_may_drop_analysis(app *a, const char *what);
/* Free everything planning and committing hold (at exit). */
void tui_plan_free(app *a);

/* ------------------------------------------------------------------ views */
typedef enum { VIEW_LAYERS, VIEW_SPECTRUM, VIEW_HEATMAP, VIEW_HIST, VIEW_PLAN, VIEW_HELP, VIEW_LOG, VIEW_COUNT } view_id;
typedef enum { MOVE_UP, MOVE_DOWN, MOVE_LEFT, MOVE_RIGHT, MOVE_PGUP, MOVE_PGDN, MOVE_HOME, MOVE_END } move_kind;


typedef struct {
    const char *name;      // :view NAME
    const char *alias;     // another accepted name, or NULL
    const char *title;     // tab bar
    void (*draw)(app *a, canvas *c, rect r);
    int (*move)(app *a, move_kind m);   // returns reactions
} view_ops;
extern const view_ops view_layers, view_spectrum, view_heatmap, view_hist, view_plan, view_help, view_log;
const view_ops *tui_view(int id);
/* View id for a name or alias (or a unique prefix), else -1. */
int tui_view_find(const char *name);

/* ------------------------------------------------------------------ actions (actions.c) */
typedef enum { COMPL_NONE, COMPL_KNOB, COMPL_VIEW, COMPL_SESSION, COMPL_BLOCK_KIND } compl_kind;
#define CTX_GLOBAL (-1)

typedef struct action action;
struct action {
    const char *name;     // unique, shown in help ("move-down", "view-spectrum", "set", ...)
    int ctx;              // CTX_GLOBAL or the view it belongs to
    int keys[4];          // 0-terminated
    const char *cmd;      // : command name, or NULL (key only)
    const char *args;     // argument synopsis for help ("NAME VALUE"), or NULL
    compl_kind compl;     // what the first argument completes to
    const char *help;
    int (*fn)(app *a, const action *act, const char *args);   // args: NULL from a key
    int iarg;
};
extern const action tui_actions[];
extern const int tui_n_actions;
/* Run the action bound to key in the current view (view bindings first, then global). */
int tui_dispatch_key(app *a, int key);
/* Run a command line (":set eps 0.01", the ':' optional). Unknown commands and bad arguments
 * go to the message line and the log. */
int tui_run_command(app *a, const char *line);
/* The key that opens view v (from the table), or 0. */
int tui_view_key(int v);
/* Completion candidates for the word being typed: word 0 = command names, then by the
 * command's compl kind. Returns the state-th match (strdup'ed, for readline) or NULL. */
char *tui_complete(const char *line, int word_start, const char *text, int state);

/* ------------------------------------------------------------------ command line (cmdline.c) */
/* GNU readline in callback mode; history in history_path (NULL: none). 0 or -1. */
int cmdline_init(app *a, const char *history_path);
void cmdline_free(app *a);
/* Open the : line. */
int cmdline_open(app *a);
/* Feed a key to the open line (Enter runs it, Esc closes it). */
int cmdline_key(app *a, int key);
int cmdline_cancel(app *a);

/* ------------------------------------------------------------------ log (view_log.c) */
typedef enum { LOG_INFO, LOG_EVENT, LOG_WARN, LOG_ERROR } log_level;
typedef struct {
    double t;              // seconds since start
    int level;
    char text[256];
} log_entry;
/* Append to the log (UI thread); warnings and errors also go to the message line. */
void tui_log(app *a, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The message line alone (not logged). */
void tui_message(app *a, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ the app */
#define LOG_CAP 2000

struct app {
    /* what is open */
    cce_model *model;
    cce_tokenizer *tok;
    char model_path[1024], model_name[256], calib_path[1024], eval_path[1024];
    char *calib_text;              // owned; the job keeps its own copy
    size_t calib_len;
    cce_analysis_opts aopts;
    char calib_desc[256];          // what the help and log say about the calibration

    /* the analysis */
    worker *wk;
    int steps_seen;                // steps already reported in the log
    int hold;                      // headless: start held (see worker_start)
    job_state last_state;
    double t0;                     // cce_now() at start

    /* knobs */
    double knob[KNOB_COUNT];
    int knob_sel;

    /* identities */
    cce_model_id model_id;         // valid when have_model_id (the worker computes it)
    int have_model_id;
    char calib_sha256[65];         // of the calibration text read at start
    int calib_n_seq, calib_seq_len;   // the analysis's windows (known after its step 0)
    char analysis_path[1024];      // --analysis FILE (read instead of computed), or ""

    /* the plan (plan_ui.c, replan.c) */
    replanner *rp;
    cce_plan plan;                 // the newest adopted plan (n_blocks 0 before the first)
    long plan_want, plan_have;     // generation requested last / adopted last
    double plan_ms;                // its build time
    int plan_blocks;               // analysed blocks it used
    char plan_err[512];            // why the newest re-plan failed, "" when it did not
    int plan_frozen;               // restored from a session: kept as it is until an input changes
    cce_pin *pins, *forces;        // plan inputs (owned)
    int n_pins, n_forces;
    double *block_scale;           // (2 * n_layers) from :search, or NULL
    int plan_comp;                 // Plan view: the selected component of the selected block
    int plan_top;                  // Plan view: first block row shown

    /* commit and search (plan_ui.c, task.c) */
    task *tk;
    task_cache cache;
    commit_result *committed;      // the last commit of this run, or NULL
    int committed_same;            // the current plan is the committed one
    cce_commit_record *commits;    // the session's history (including loaded ones)
    int n_commits;
    long eval_tokens;              // --eval-tokens
    cce_plan search_from;          // the inputs a running search started from

    /* sessions */
    char session_name[72];         // "" until saved or loaded
    int dirty;                     // inputs or history changed since the last save / load
    int asking_quit;               // the quit question is on the message line
    int pending;                   // reactions made before the loop started (--session), for it to act on

    /* screen */
    theme th;
    int w, h;
    int view, prev_view;
    int layer;                     // the selected block
    int layers_top;                // Layers: first row shown (scrolls only to keep the selection in view)
    int spec_sel;                  // spectrum: 0..3 covariance sites, 4.. weight matrices
    int heat_kind, heat_r, heat_c; // heatmap: 0 layers, 1 heads, 2 KV groups; cursor
    int heat_r0, heat_c0;          // heatmap: first row and column shown
    int hist_sel, hist_zoom, hist_log;
    int hist_cols;                 // histogram panels per row in the last frame
    int help_top, log_back;        // help: first line; log: lines scrolled back from the end
    int page_rows;                 // rows of the last view area (for paging)

    /* command line and message line */
    int cmd_active;
    char cmd_prompt[8];
    char cmd_line[1024];
    int cmd_point;                 // byte offset of the cursor in cmd_line
    char cmd_hint[512];            // completion candidates shown while typing
    char msg[512];
    int msg_level;

    /* log ring */
    log_entry log[LOG_CAP];
    int log_n, log_first;

    /* modes */
    int headless;
    int mask_times;                // dumps: print timings as "-" so screens compare
    int wake_r, wake_w;            // wake-up pipe
    int ascii_forced;
    int quit_signal;               // the signal that ended the loop (exit 128 + it), else 0
};

/* ------------------------------------------------------------------ the loop (loop.c) */
/* Draw the whole screen into c (c is resized to a->w x a->h). */
void tui_render(app *a, canvas *c);
/* Drain the wake-up pipe and act on worker progress and signals; returns reactions. */
int tui_on_wake(app *a);
/* Start (or restart) the analysis worker. Returns 0 or -1 (logged). */
int tui_start_analysis(app *a);
/* Terminal front end: the event loop until quit. Returns the exit code. */
int tui_loop_terminal(app *a);
/* Signal state shared with tui_main.c's handlers. */
extern volatile sig_atomic_t tui_signal;

/* ------------------------------------------------------------------ the terminal (blit.c) */
/* Open the terminal (newterm; cbreak, keypad, non-blocking keys), pick the theme (force_depth:
 * -1 detect, else at most 0/8/256 colours; a->ascii_forced: ASCII glyphs) and set a->w, a->h.
 * Returns 0, or -1 with a one-line reason in err. */
int term_open(app *a, int force_depth, char *err, size_t cap);
/* A curses screen of w x h writing to /dev/null as an xterm-256color would be written to, for
 * timing the blit in headless benchmarks. 0 or -1 with err. */
int term_open_offscreen(app *a, int w, int h, char *err, size_t cap);
/* Restore the terminal; idempotent, also registered with atexit. */
void term_close(void);
/* The next key, or 0 when none is waiting (never blocks). */
int term_read_key(void);
void term_size(int *w, int *h);
/* Repaint everything on the next blit (Ctrl-L, resize). */
void term_force_repaint(void);
/* Copy c to the screen and place the cursor. */
void term_blit(const app *a, const canvas *c);

/* ------------------------------------------------------------------ headless (script.c) */
/* Run the script at path against a (headless, canvas of a->w x a->h); dumps go to dump_dir.
 * Returns the exit code (0, or 1 after a one-line error naming the script line). */
int tui_run_script(app *a, const char *path, const char *dump_dir);

/* ------------------------------------------------------------------ drawing helpers (draw.c) */
/* An integer with thousands separators: "227,264". */
void fmt_count(long long v, char *buf, size_t cap);
/* Seconds as "0.123 s" (or "- s" when a->mask_times). */
void fmt_seconds(const app *a, double s, char *buf, size_t cap);
/* Compact number: 3 significant digits, exponent form below 1e-2 or above 1e5 ("1.2e-3"). */
void fmt_num(double v, char *buf, size_t cap);
/* A horizontal bar of width w for fraction f in [0, 1] with eighth-cell resolution. */
void draw_hbar(app *a, canvas *c, int x, int y, int w, double f, int role);
/* A box frame around r with an optional title in the top edge. */
void draw_box(app *a, canvas *c, rect r, const char *title, int role);
/* text wrapped at spaces into width w from (x, y), continuation rows indented by indent, at
 * most max_rows rows; returns the rows used (c may be NULL to only count them). */
int draw_wrapped(canvas *c, int x, int y, int w, int max_rows, const char *text, int role, int indent);
/* Centre text in row y of r. */
void draw_center(canvas *c, rect r, int y, const char *text, int role, int attr);
/* Block l's results when finished, else NULL (also NULL before the job exists). */
const cce_block_result *tui_block(const app *a, int l);
/* Steps done / total and the phase text of the analysis. */
void tui_progress(const app *a, int *done, int *total, char *phase, size_t cap);
/* Why block l has no results yet, as a sentence (pending, running, cancelled, failed). */
void tui_block_missing(const app *a, int l, char *buf, size_t cap);
/* Number of blocks of the model. */
int tui_n_layers(const app *a);
/* Plan cells shared by Layers and Plan: "6/8" kept of total; drop as "-", "block", "attn",
 * "ffn"; ranks as "dense" or "wq64 w1 32"-style; parameters as "12.9k". */
void fmt_params_short(double p, char *buf, size_t cap);
const char *plan_drop_text(const cce_block_plan *b);
void plan_ranks_text(const app *a, int l, const cce_block_plan *b, char *buf, size_t cap);
/* Draw "k/n" centred on the slash in w columns (or k% of n when it does not fit). */
void draw_count(canvas *c, int x, int y, int w, int k, int n, int role);
/* A knob's label in the current glyph set ("ε" or "eps"). */
const char *knob_label(const app *a, int k);

#endif
