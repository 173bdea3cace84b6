/*
 * cmdline.c — the : command line: GNU readline in callback mode, drawn by us.
 *
 * Readline edits, completes and keeps history, but never touches the terminal: curses owns it.
 * The hooks that make that so:
 *   rl_getc_function        reads from a small queue of bytes we fill from each key;
 *   rl_input_available_hook says whether the queue has more (readline asks while matching an
 *                           escape sequence), so it never selects on a real file descriptor;
 *   rl_redisplay_function   copies the prompt, the line and the point into the app, and the
 *                           loop draws them in the bottom row (the screen keeps updating while
 *                           the user types: the analysis keeps filling in);
 *   rl_prep/deprep_term     do nothing (curses has set the modes);
 *   rl_outstream            is /dev/null (bells, completion listings, keypad strings);
 *   rl_catch_signals/sigwinch off: our own handlers and KEY_RESIZE handle those.
 * A key becomes the bytes readline would have read from a terminal (arrows as ANSI sequences,
 * Backspace as DEL), so the user's ~/.inputrc bindings apply. Esc, Ctrl-G and Ctrl-C close the
 * line without running it. Completion candidates come from the action table (tui_complete) and
 * are shown in the status row. History is kept in a file (sessions/.history by default),
 * rewritten atomically after each command.
 *
 * Readline has no user pointer, so the app being edited is a file-scope variable: there is one
 * command line per process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <readline/readline.h>
#include <readline/history.h>
#include "tui.h"
#include "util.h"

static app *cur;
static unsigned char queue[64];
static int q_head, q_len;
static int pending;            // reactions produced inside readline callbacks
static char hist_path[1024];
static FILE *null_out, *null_in;
static int word_start;
static int hist_warned;

static int getc_hook(FILE *f) {
    (void)f;
    if (q_len == 0) return EOF;   // not reached: we only call readline with bytes queued
    int c = queue[q_head];
    q_head = (q_head + 1) % (int)sizeof queue;
    q_len--;
    return c;
}

static int avail_hook(void) { return q_len > 0; }

static void push_bytes(const char *s, size_t n) {
    for (size_t i = 0; i < n && q_len < (int)sizeof queue; i++) {
        queue[(q_head + q_len) % (int)sizeof queue] = (unsigned char)s[i];
        q_len++;
    }
}

static void redisplay_hook(void) {
    if (!cur) return;
    const char *p = rl_display_prompt ? rl_display_prompt : rl_prompt ? rl_prompt : ":";
    snprintf(cur->cmd_prompt, sizeof cur->cmd_prompt, "%s", p);
    snprintf(cur->cmd_line, sizeof cur->cmd_line, "%s", rl_line_buffer ? rl_line_buffer : "");
    int len = (int)strlen(cur->cmd_line);
    cur->cmd_point = rl_point < 0 ? 0 : rl_point > len ? len : rl_point;
    pending |= R_REDRAW;
}

static void prep_noop(int meta) { (void)meta; }
static void deprep_noop(void) {}

static void save_history(void) {
    if (!hist_path[0]) return;
    HIST_ENTRY **list = history_list();
    size_t cap = 1, o = 0;
    for (int i = 0; list && list[i]; i++) cap += strlen(list[i]->line) + 1;
    char *buf = malloc(cap);
    if (!buf) return;
    for (int i = 0; list && list[i]; i++) {
        size_t l = strlen(list[i]->line);
        memcpy(buf + o, list[i]->line, l);
        o += l;
        buf[o++] = '\n';
    }
    /* the directory (sessions/) is made on first use */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", hist_path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        if (*dir) mkdir(dir, 0777);
    }
    cce_err err = {{0}};
    if (cce_write_file_atomic(hist_path, buf, o, &err) && !hist_warned) {
        tui_log(cur, LOG_WARN, "command history not saved: %s", err.msg);
        hist_warned = 1;
    }
    free(buf);
}

static void close_line(app *a) {
    rl_callback_handler_remove();
    a->cmd_active = 0;
    a->cmd_hint[0] = 0;
    a->cmd_line[0] = 0;
    a->cmd_point = 0;
    q_len = 0;
}

static void on_line(char *line) {
    app *a = cur;
    close_line(a);
    pending |= R_REDRAW;
    if (!line) return;   // Ctrl-D on an empty line
    if (*line) {
        HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
        if (!last || strcmp(last->line, line)) {
            add_history(line);
            save_history();
        }
        pending |= tui_run_command(a, line);
    }
    free(line);
}

static char *gen(const char *text, int state) { return tui_complete(rl_line_buffer, word_start, text, state); }

static char **complete(const char *text, int start, int end) {
    (void)end;
    rl_attempted_completion_over = 1;   // never fall back to file names
    word_start = start;
    if (cur) cur->cmd_hint[0] = 0;
    return rl_completion_matches(text, gen);
}

static void show_matches(char **matches, int num, int max_len) {
    (void)max_len;
    if (!cur) return;
    size_t o = (size_t)snprintf(cur->cmd_hint, sizeof cur->cmd_hint, "completions:");
    for (int i = 1; i <= num && o < sizeof cur->cmd_hint; i++)
        o += (size_t)snprintf(cur->cmd_hint + o, sizeof cur->cmd_hint - o, " %s", matches[i]);
    pending |= R_REDRAW;
}

int cmdline_init(app *a, const char *history_path) {
    cur = a;
    null_out = fopen("/dev/null", "w");
    null_in = fopen("/dev/null", "r");
    if (!null_out || !null_in) return -1;
    rl_readline_name = "cce";
    rl_instream = null_in;
    rl_outstream = null_out;
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_getc_function = getc_hook;
    rl_input_available_hook = avail_hook;
    rl_redisplay_function = redisplay_hook;
    rl_prep_term_function = prep_noop;
    rl_deprep_term_function = deprep_noop;
    rl_attempted_completion_function = complete;
    rl_completion_display_matches_hook = show_matches;
    rl_completion_query_items = 1 << 20;
    rl_initialize();
    rl_variable_bind("show-all-if-ambiguous", "on");
    rl_variable_bind("bell-style", "none");
    rl_variable_bind("enable-bracketed-paste", "off");
    rl_variable_bind("horizontal-scroll-mode", "on");
    using_history();
    stifle_history(500);
    hist_path[0] = 0;
    if (history_path && *history_path) {
        snprintf(hist_path, sizeof hist_path, "%s", history_path);
        read_history(hist_path);   // a missing file is an empty history
    }
    return 0;
}

void cmdline_free(app *a) {
    if (a->cmd_active) close_line(a);
    clear_history();
    if (null_out) fclose(null_out);
    if (null_in) fclose(null_in);
    null_out = null_in = NULL;
    cur = NULL;
}

int cmdline_open(app *a) {
    cur = a;
    q_len = 0;
    pending = 0;
    a->cmd_active = 1;
    a->cmd_hint[0] = 0;
    a->msg[0] = 0;
    snprintf(a->cmd_prompt, sizeof a->cmd_prompt, ":");
    a->cmd_line[0] = 0;
    a->cmd_point = 0;
    using_history();
    rl_callback_handler_install(":", on_line);
    return R_REDRAW | pending;
}

int cmdline_cancel(app *a) {
    if (!a->cmd_active) return R_NONE;
    rl_callback_sigcleanup();
    rl_replace_line("", 0);
    close_line(a);
    return R_REDRAW;
}

/* The bytes a terminal would send for key (0 bytes: not for readline). */
static size_t key_bytes(int key, char *b) {
    switch (key) {
    case TK_ENTER: b[0] = '\r'; return 1;
    case TK_TAB: b[0] = '\t'; return 1;
    case TK_BACKSPACE: b[0] = 0x7f; return 1;
    case TK_DELETE: memcpy(b, "\033[3~", 4); return 4;
    case TK_LEFT: memcpy(b, "\033[D", 3); return 3;
    case TK_RIGHT: memcpy(b, "\033[C", 3); return 3;
    case TK_UP: memcpy(b, "\033[A", 3); return 3;
    case TK_DOWN: memcpy(b, "\033[B", 3); return 3;
    case TK_HOME: memcpy(b, "\033[H", 3); return 3;
    case TK_END: memcpy(b, "\033[F", 3); return 3;
    default: break;
    }
    if (key >= 1 && key < 0x20) { b[0] = (char)key; return 1; }
    if (key >= 0x20 && key < 0x110000 && key != 0x7f) {
        char n[8];
        tui_key_name(key, n, sizeof n);
        if (key == ' ') strcpy(n, " ");
        size_t l = strlen(n);
        memcpy(b, n, l);
        return l;
    }
    return 0;
}

int cmdline_key(app *a, int key) {
    if (key == TK_RESIZE) return R_RELAYOUT;
    if (key == TK_ESC || key == TK_CTRL('g') || key == TK_CTRL('c') || key == TK_INTERRUPT) return cmdline_cancel(a);
    char b[8];
    size_t n = key_bytes(key, b);
    if (!n) return R_NONE;
    pending = 0;
    if (key != TK_TAB) a->cmd_hint[0] = 0;
    push_bytes(b, n);
    while (q_len > 0 && a->cmd_active) rl_callback_read_char();
    q_len = 0;
    return pending | R_REDRAW;
}
