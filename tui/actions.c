/*
 * actions.c — the one table every input goes through (tig's idea; see tui.h).
 *
 * Each row of tui_actions names an action, the view it belongs to (or all of them), its keys,
 * its : command and argument synopsis, what its argument completes to, and a help line. From
 * this one table come: key dispatch (tui_dispatch_key), the command line (tui_run_command),
 * completion (tui_complete) and the help view (view_help.c). A handler changes the app state
 * and returns reaction flags; nothing here draws or redraws.
 *
 * Knobs live here too: their names are the batch CLI's option names (`:set eps 1e-3` is
 * `--eps 1e-3`), their defaults are the engine's (cce_knobs_default, so a plan made here with
 * the defaults is `cce plan`'s), their ranges the CLI's, and nudging walks a 1-2-5 ladder so a
 * few key presses span decades (ε from 1e-6 to 0.5 in 16 steps). Every change re-plans (R_REPLAN)
 * and counts as an unsaved change of the session.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tui.h"

/* ------------------------------------------------------------------ knobs */

const knob_def tui_knobs[KNOB_COUNT] = {
    [KNOB_ALPHA] = {"alpha", 0, 100, 1.0, "weight of L_rec (block output reconstruction error) in L_CCE"},
    [KNOB_BETA] = {"beta", 0, 100, 0.0, "weight of L_sim (similarity left among kept components) in L_CCE"},
    [KNOB_GAMMA] = {"gamma", 0, 100, 0.0, "weight of L_reg (relative nuclear norm of kept weights) in L_CCE"},
    [KNOB_EPS] = {"eps", 0, 0.999, 1e-3, "eigen directions with lambda < eps*lambda_max count as redundant"},
    [KNOB_TAU] = {"tau", 0, 0.999, 1e-2, "singular directions with sigma < tau*sigma_max are rank candidates"},
    [KNOB_TARGET] = {"target", 0, 0.9, 0.2, "fraction of non-embedding parameters to remove (0: eps and tau decide)"},
};

int knob_find(const char *name) {
    for (int k = 0; k < KNOB_COUNT; k++)
        if (!strcmp(name, tui_knobs[k].name)) return k;
    /* the Greek letters the status line shows are accepted too */
    static const char *greek[KNOB_COUNT] = {"α", "β", "γ", "ε", "τ", "budget"};
    for (int k = 0; k < KNOB_COUNT; k++)
        if (!strcmp(name, greek[k])) return k;
    return -1;
}

int knob_parse(int k, const char *s, double *out, char *why, size_t cap) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && k == KNOB_TARGET && *end == '%') {
        v /= 100.0;
        end++;
    }
    while (*end == ' ') end++;
    if (errno || end == s || *end || !isfinite(v)) {
        snprintf(why, cap, "%s: '%s' is not a number", tui_knobs[k].name, s);
        return -1;
    }
    if (v < tui_knobs[k].lo || v > tui_knobs[k].hi) {
        snprintf(why, cap, "%s: %s is outside [%g, %g]", tui_knobs[k].name, s, tui_knobs[k].lo, tui_knobs[k].hi);
        return -1;
    }
    *out = v;
    return 0;
}

double knob_nudge(int k, double v, int dir) {
    const knob_def *d = &tui_knobs[k];
    double r;
    if (k == KNOB_TARGET) {
        r = (round(v / 0.05) + (dir > 0 ? 1 : -1)) * 0.05;
    } else {
        static const double mant[3] = {1, 2, 5};
        double first = k == KNOB_EPS || k == KNOB_TAU ? 1e-6 : 1e-3;
        if (dir > 0) {
            r = d->hi;
            if (v < first * (1 - 1e-9)) r = first;
            else
                for (int e = -7; e <= 3 && r == d->hi; e++)
                    for (int i = 0; i < 3; i++) {
                        double c = mant[i] * pow(10, e);
                        if (c > v * (1 + 1e-9)) { r = c; break; }
                    }
        } else {
            r = d->lo;
            for (int e = 3; e >= -7 && r == d->lo; e--)
                for (int i = 2; i >= 0; i--) {
                    double c = mant[i] * pow(10, e);
                    if (c < v * (1 - 1e-9) && c >= first * (1 - 1e-9)) { r = c; break; }
                }
        }
    }
    if (r < d->lo) r = d->lo;
    if (r > d->hi) r = d->hi;
    return r;
}

void knob_format(int k, double v, char *buf, size_t cap) {
    if (k == KNOB_TARGET) {
        double p = v * 100;
        snprintf(buf, cap, fabs(p - round(p)) < 1e-9 ? "%.0f%%" : "%.1f%%", p);
        return;
    }
    if ((k == KNOB_EPS || k == KNOB_TAU) && v > 0 && v < 0.1) {
        /* thresholds read best as powers of ten: 1e-2, 2.5e-3 */
        int e = (int)floor(log10(v) + 1e-9);
        double m = v / pow(10, e);
        char mb[16];
        snprintf(mb, sizeof mb, "%.3g", m);
        snprintf(buf, cap, "%se%d", mb, e);
        return;
    }
    fmt_num(v, buf, cap);
}

/* ------------------------------------------------------------------ key names */

static const struct { int key; const char *name; } key_names[] = {
    {TK_ENTER, "Enter"}, {TK_ESC, "Esc"}, {TK_TAB, "Tab"}, {TK_BTAB, "S-Tab"}, {' ', "Space"},
    {TK_BACKSPACE, "Backspace"}, {TK_DELETE, "Delete"}, {TK_UP, "Up"}, {TK_DOWN, "Down"},
    {TK_LEFT, "Left"}, {TK_RIGHT, "Right"}, {TK_PGUP, "PgUp"}, {TK_PGDN, "PgDn"}, {TK_HOME, "Home"},
    {TK_END, "End"}, {TK_RESIZE, "Resize"}, {TK_INTERRUPT, "Interrupt"},
};

int tui_key_parse(const char *s) {
    if (!s || !*s) return 0;
    for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
        if (!strcmp(s, key_names[i].name)) return key_names[i].key;
    if (s[0] == 'F' && s[1] >= '1' && s[1] <= '9') {
        int n = atoi(s + 1);
        if (n >= 1 && n <= 10) return TK_F1 + n - 1;
    }
    if (s[0] == 'C' && s[1] == '-' && s[2] && !s[3] && isalpha((unsigned char)s[2]))
        return TK_CTRL(tolower((unsigned char)s[2]));
    /* one character, possibly multi-byte UTF-8 */
    const unsigned char *u = (const unsigned char *)s;
    int len = u[0] < 0x80 ? 1 : (u[0] & 0xe0) == 0xc0 ? 2 : (u[0] & 0xf0) == 0xe0 ? 3 : (u[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || (int)strlen(s) != len) return 0;
    int cp = len == 1 ? u[0] : u[0] & (0x3f >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (u[i] & 0x3f);
    }
    return cp >= 0x20 && cp != 0x7f ? cp : 0;
}

void tui_key_name(int key, char *buf, size_t cap) {
    for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
        if (key == key_names[i].key) {
            snprintf(buf, cap, "%s", key_names[i].name);
            return;
        }
    if (key >= TK_F1 && key <= TK_F10) snprintf(buf, cap, "F%d", key - TK_F1 + 1);
    else if (key >= 1 && key < 0x20) snprintf(buf, cap, "C-%c", 'a' + key - 1);
    else if (key < 0x80) snprintf(buf, cap, "%c", key);
    else if (key < 0x800) snprintf(buf, cap, "%c%c", 0xc0 | (key >> 6), 0x80 | (key & 0x3f));
    else if (key < 0x10000)
        snprintf(buf, cap, "%c%c%c", 0xe0 | (key >> 12), 0x80 | ((key >> 6) & 0x3f), 0x80 | (key & 0x3f));
    else if (key < 0x110000)
        snprintf(buf, cap, "%c%c%c%c", 0xf0 | (key >> 18), 0x80 | ((key >> 12) & 0x3f), 0x80 | ((key >> 6) & 0x3f),
                 0x80 | (key & 0x3f));
    else snprintf(buf, cap, "?");
}

/* ------------------------------------------------------------------ handlers */

static int switch_view(app *a, int id) {
    if (id == a->view) return R_NONE;
    a->prev_view = a->view;
    a->view = id;
    return R_REDRAW;
}

static int act_quit(app *a, const action *act, const char *args) {
    if (!a->dirty && !tui_task_running(a)) return R_QUIT;
    a->asking_quit = 1;   // tui_dispatch_key takes the answer (a running commit would be lost too)
    return R_REDRAW;
}

/* The answer to "save before quitting?". */
static int quit_answer(app *a, int key) {
    if (key == TK_RESIZE) return R_RELAYOUT;
    if (key == 'y' || key == 'Y') {
        a->asking_quit = 0;
        return tui_session_save(a, NULL) == 0 ? R_QUIT : R_REDRAW;
    }
    if (key == 'n' || key == 'N') {
        a->asking_quit = 0;
        if (a->committed) tui_log(a, LOG_INFO, "quit without saving (the last commit is in %s/autosave.json)", tui_sessions_dir());
        return R_QUIT;
    }
    if (key == TK_ESC || key == 'c' || key == TK_CTRL('g') || key == TK_INTERRUPT) {
        a->asking_quit = 0;
        tui_message(a, LOG_INFO, "not quitting");
    }
    return R_REDRAW;
}

static int act_view(app *a, const action *act, const char *args) {
    if (!args) return switch_view(a, act->iarg);
    if (!*args) {
        tui_message(a, LOG_WARN, "view: which one? layers spectrum heatmaps histograms plan help log");
        return R_REDRAW;
    }
    int id = tui_view_find(args);
    if (id < 0) {
        tui_log(a, LOG_ERROR, "view: no view named '%s' (layers spectrum heatmaps histograms plan help log)", args);
        return R_REDRAW;
    }
    return switch_view(a, id) | R_REDRAW;
}

static int act_cycle_view(app *a, const action *act, const char *args) {
    return switch_view(a, (a->view + act->iarg + VIEW_COUNT) % VIEW_COUNT);
}

static int act_back(app *a, const action *act, const char *args) { return switch_view(a, a->prev_view); }

static int select_layer(app *a, int l) {
    int L = tui_n_layers(a);
    if (l < 0) l = 0;
    if (l > L - 1) l = L - 1;
    if (l == a->layer) return R_NONE;
    a->layer = l;
    return R_REDRAW;
}

static int act_layer(app *a, const action *act, const char *args) {
    if (!args) return select_layer(a, a->layer + act->iarg);
    char *end;
    long l = strtol(args, &end, 10);
    int L = tui_n_layers(a);
    if (!*args || *end || l < 0 || l >= L) {
        tui_log(a, LOG_ERROR, "layer: expected a block number 0..%d, got '%s'", L - 1, args);
        return R_REDRAW;
    }
    return select_layer(a, (int)l) | R_REDRAW;
}

static void show_knobs(app *a) {
    char line[512];
    size_t o = 0;
    for (int k = 0; k < KNOB_COUNT; k++) {
        char v[32];
        knob_format(k, a->knob[k], v, sizeof v);
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%s %s", k ? "  " : "", tui_knobs[k].name, v);
    }
    tui_message(a, LOG_INFO, "%s", line);
}

static int set_knob(app *a, int k, double v) {
    char was[32], now[32];
    double keep = a->knob[k];
    a->knob[k] = v;
    cce_knobs kn = {a->knob[KNOB_ALPHA], a->knob[KNOB_BETA], a->knob[KNOB_GAMMA], a->knob[KNOB_EPS], a->knob[KNOB_TAU],
                    a->knob[KNOB_TARGET]};
    cce_err err = {{0}};
    if (cce_knobs_check(&kn, "set", &err)) {   // e.g. alpha, beta and gamma all 0
        a->knob[k] = keep;
        tui_log(a, LOG_ERROR, "%s", err.msg);
        return R_REDRAW;
    }
    a->knob[k] = keep;
    knob_format(k, a->knob[k], was, sizeof was);
    a->knob[k] = v;
    a->plan_frozen = 0;
    a->dirty = 1;
    knob_format(k, v, now, sizeof now);
    a->knob_sel = k;
    tui_log(a, LOG_INFO, "set %s %s (was %s)", tui_knobs[k].name, now, was);
    tui_message(a, LOG_INFO, "%s = %s", tui_knobs[k].name, now);
    return R_REDRAW | R_REPLAN;
}

static int act_set(app *a, const action *act, const char *args) {
    if (!*args) {
        show_knobs(a);
        return R_REDRAW;
    }
    char name[64];
    const char *sp = strchr(args, ' ');
    size_t n = sp ? (size_t)(sp - args) : strlen(args);
    snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), args);
    int k = knob_find(name);
    if (k < 0) {
        tui_log(a, LOG_ERROR, "set: no knob named '%s' (alpha beta gamma eps tau target)", name);
        return R_REDRAW;
    }
    const char *val = sp ? sp + 1 : "";
    while (*val == ' ') val++;
    if (!*val) {
        char v[32];
        knob_format(k, a->knob[k], v, sizeof v);
        tui_message(a, LOG_INFO, "%s = %s  (range %g..%g: %s)", tui_knobs[k].name, v, tui_knobs[k].lo,
                    tui_knobs[k].hi, tui_knobs[k].help);
        return R_REDRAW;
    }
    double v;
    char why[256];
    if (knob_parse(k, val, &v, why, sizeof why)) {
        tui_log(a, LOG_ERROR, "set %s", why);
        return R_REDRAW;
    }
    return set_knob(a, k, v);
}

static int act_knob_select(app *a, const action *act, const char *args) {
    a->knob_sel = (a->knob_sel + act->iarg + KNOB_COUNT) % KNOB_COUNT;
    char v[32];
    knob_format(a->knob_sel, a->knob[a->knob_sel], v, sizeof v);
    tui_message(a, LOG_INFO, "%s = %s: %s  (+/- to change)", tui_knobs[a->knob_sel].name, v,
                tui_knobs[a->knob_sel].help);
    return R_REDRAW;
}

static int act_knob_nudge(app *a, const action *act, const char *args) {
    int k = a->knob_sel;
    double v = knob_nudge(k, a->knob[k], act->iarg);
    if (v == a->knob[k]) {
        tui_message(a, LOG_INFO, "%s is at its %s", tui_knobs[k].name, act->iarg > 0 ? "maximum" : "minimum");
        return R_REDRAW;
    }
    return set_knob(a, k, v);
}

static int act_cancel(app *a, const action *act, const char *args) {
    if (tui_task_running(a)) {   // the newest job first: a commit or search
        task_cancel(a->tk);
        tui_log(a, LOG_EVENT, "cancelling the %s", task_kind_of(a->tk) == TASK_COMMIT ? "commit" : "search");
        return R_REDRAW;
    }
    job_state s = worker_state(a->wk);
    if (!a->wk || s >= JOB_DONE) {
        tui_message(a, LOG_INFO, "no analysis is running (r runs it again)");
        return R_REDRAW;
    }
    worker_cancel(a->wk);
    tui_log(a, LOG_EVENT, "cancelling the analysis");
    return R_REDRAW;
}

static int act_rerun(app *a, const action *act, const char *args) {
    if (tui_may_drop_analysis(a, "rerun")) return R_REDRAW;
    a->analysis_path[0] = 0;   // computed again, not read
    return R_RESTART;
}

static int act_cmdline(app *a, const action *act, const char *args) { return cmdline_open(a); }

static int act_redraw(app *a, const action *act, const char *args) { return R_RELAYOUT; }

static int act_move(app *a, const action *act, const char *args) {
    const view_ops *v = tui_view(a->view);
    return v->move ? v->move(a, (move_kind)act->iarg) : R_NONE;
}

static int act_help_cmd(app *a, const action *act, const char *args) {
    return switch_view(a, VIEW_HELP) | R_REDRAW;
}

static int act_log_cmd(app *a, const action *act, const char *args) {
    a->log_back = 0;
    return switch_view(a, VIEW_LOG) | R_REDRAW;
}

static int act_open_spectrum(app *a, const action *act, const char *args) { return switch_view(a, VIEW_SPECTRUM); }

static int act_heat_matrix(app *a, const action *act, const char *args) {
    a->heat_kind = (a->heat_kind + 1) % 3;
    a->heat_r = a->heat_c = 0;
    if (a->heat_kind == 0) a->heat_r = a->heat_c = a->layer;
    return R_REDRAW;
}

static int act_heat_pick(app *a, const action *act, const char *args) {
    if (a->heat_kind != 0) {
        tui_message(a, LOG_INFO, "Enter picks a block on the layer matrix (m switches matrices)");
        return R_REDRAW;
    }
    return select_layer(a, a->heat_r) | R_REDRAW;
}

static int act_hist_zoom(app *a, const action *act, const char *args) {
    a->hist_zoom = !a->hist_zoom;
    return R_REDRAW;
}

static int act_hist_log(app *a, const action *act, const char *args) {
    a->hist_log = !a->hist_log;
    tui_message(a, LOG_INFO, "histogram counts on a %s scale", a->hist_log ? "log" : "linear");
    return R_REDRAW;
}

/* ------------------------------------------------------------------ plan, commit, sessions */

static int act_commit(app *a, const action *act, const char *args) { return tui_commit_start(a); }

static int act_export(app *a, const action *act, const char *args) {
    tui_export(a, args);
    return R_REDRAW;
}

static int act_save(app *a, const action *act, const char *args) {
    tui_session_save(a, args && *args ? args : NULL);
    return R_REDRAW;
}

static int act_load(app *a, const action *act, const char *args) {
    int fl = tui_session_load(a, args ? args : "");
    return fl < 0 ? R_REDRAW : fl;
}

static int act_search(app *a, const action *act, const char *args) {
    char *end;
    long n = strtol(args ? args : "", &end, 10);
    if (!args || !*args || *end || n < 1 || n > 10000) {
        tui_log(a, LOG_ERROR, "search: expected a number of candidate plans 1..10000, got '%s'", args ? args : "");
        return R_REDRAW;
    }
    return tui_search_start(a, (int)n);
}

/* "BLOCK KIND [INDEX]" (kind by its curve name, or heads/neurons/block/attn/ffn/wq..w2). */
static int parse_component(app *a, const char *cmd, const char *args, int *block, int *kind, int *index) {
    char k[32] = "", extra[8];
    long b = -1, i = -1;
    int n = sscanf(args, "%ld %31s %ld %7s", &b, k, &i, extra);
    if (n < 2 || n > 3) {
        tui_log(a, LOG_ERROR, "%s: expected BLOCK KIND [INDEX] (e.g. :%s 2 heads 3, :%s 4 drop_block), got '%s'", cmd, cmd, cmd, args);
        return -1;
    }
    static const struct { const char *alias; int kind; } aliases[] = {
        {"head", CCE_CURVE_HEADS}, {"neuron", CCE_CURVE_NEURONS}, {"block", CCE_CURVE_DROP_BLOCK},
        {"attn", CCE_CURVE_DROP_ATTN}, {"ffn", CCE_CURVE_DROP_FFN},
    };
    *kind = -1;
    for (int q = 0; q < CCE_CURVE_COUNT; q++)
        if (!strcmp(k, cce_curve_name((cce_curve_kind)q))) *kind = q;
    for (size_t q = 0; q < sizeof aliases / sizeof aliases[0] && *kind < 0; q++)
        if (!strcmp(k, aliases[q].alias)) *kind = aliases[q].kind;
    for (int q = 0; q < CCE_LIN_COUNT && *kind < 0; q++)
        if (!strcmp(k, cce_lin_names[q])) *kind = cce_curve_rank_of(q);
    if (*kind < 0) {
        tui_log(a, LOG_ERROR, "%s: '%s' is not a kind (heads neurons block attn ffn wq..w2, or drop_block, rank_wq, ...)", cmd, k);
        return -1;
    }
    int L = tui_n_layers(a);
    if (b < 0 || b >= L) {
        tui_log(a, LOG_ERROR, "%s: block %ld is not 0..%d", cmd, b, L - 1);
        return -1;
    }
    *block = (int)b;
    *index = n == 3 ? (int)i : -1;
    if (n == 3 && (i < 0 || i > 1 << 26)) {
        tui_log(a, LOG_ERROR, "%s: index %ld out of range", cmd, i);
        return -1;
    }
    return 0;
}

static int act_pin(app *a, const action *act, const char *args) {
    const char *cmd = act->iarg == 1 ? "pin" : act->iarg == 2 ? "force" : "unpin";
    if (act->iarg == 0 && args && !strcmp(args, "all")) {
        int n = a->n_pins + a->n_forces;
        a->n_pins = a->n_forces = 0;
        if (n) {
            a->plan_frozen = 0;
            a->dirty = 1;
        }
        tui_log(a, LOG_INFO, "cleared %d pin%s and forces", n, n == 1 ? "" : "s");
        return R_REDRAW | (n ? R_REPLAN : 0);
    }
    int b, k, i;
    if (!args || parse_component(a, cmd, args, &b, &k, &i)) return R_REDRAW;
    return tui_pin_set(a, b, k, i, act->iarg);
}

/* Plan view keys: pin / force / clear the selected component of the selected block. */
static int act_pin_selected(app *a, const action *act, const char *args) {
    plan_comp c;
    if (plan_component(a, a->layer, a->plan_comp, &c)) {
        tui_message(a, LOG_INFO, "block %d has no components to pin", a->layer);
        return R_REDRAW;
    }
    int now = tui_pin_state(a, a->layer, c.kind, c.index);
    int how = act->iarg == 0 ? 0 : now == act->iarg ? 0 : act->iarg;   // Space / x toggle
    return tui_pin_set(a, a->layer, c.kind, c.index, how);
}

/* ------------------------------------------------------------------ the table */

const action tui_actions[] = {
    /* views */
    {"view-layers", CTX_GLOBAL, {'1'}, NULL, NULL, COMPL_NONE, "Layers: one row per block", act_view, VIEW_LAYERS},
    {"view-spectrum", CTX_GLOBAL, {'2'}, NULL, NULL, COMPL_NONE, "Spectrum: eigen and singular values of the selected block", act_view, VIEW_SPECTRUM},
    {"view-heatmaps", CTX_GLOBAL, {'3'}, NULL, NULL, COMPL_NONE, "Heatmaps: layer, head and KV-group similarity", act_view, VIEW_HEATMAP},
    {"view-histograms", CTX_GLOBAL, {'4'}, NULL, NULL, COMPL_NONE, "Histograms: activations of the selected block, original vs committed", act_view, VIEW_HIST},
    {"view-plan", CTX_GLOBAL, {'5'}, NULL, NULL, COMPL_NONE, "Plan: the whole plan, the budget, predicted and measured results", act_view, VIEW_PLAN},
    {"help", CTX_GLOBAL, {'?', TK_F1}, "help", NULL, COMPL_NONE, "this help, generated from the action table", act_help_cmd, 0},
    {"log", CTX_GLOBAL, {'L'}, "log", NULL, COMPL_NONE, "messages, errors and analysis events", act_log_cmd, 0},
    {"view", CTX_GLOBAL, {0}, "view", "NAME", COMPL_VIEW, "switch to a view: layers spectrum heatmaps histograms plan help log", act_view, 0},
    {"next-view", CTX_GLOBAL, {TK_TAB}, NULL, NULL, COMPL_NONE, "next view", act_cycle_view, 1},
    {"prev-view", CTX_GLOBAL, {TK_BTAB}, NULL, NULL, COMPL_NONE, "previous view", act_cycle_view, -1},
    {"back", CTX_GLOBAL, {TK_BACKSPACE}, NULL, NULL, COMPL_NONE, "back to the view shown before", act_back, 0},
    /* block selection */
    {"next-block", CTX_GLOBAL, {'n', '>'}, NULL, NULL, COMPL_NONE, "select the next block (all views follow it)", act_layer, 1},
    {"prev-block", CTX_GLOBAL, {'p', '<'}, NULL, NULL, COMPL_NONE, "select the previous block", act_layer, -1},
    {"layer", CTX_GLOBAL, {0}, "layer", "N", COMPL_NONE, "select block N (0-based)", act_layer, 0},
    /* knobs */
    {"set", CTX_GLOBAL, {0}, "set", "NAME VALUE", COMPL_KNOB, "set a knob: alpha beta gamma eps tau target (target also as 30%)", act_set, 0},
    {"next-knob", CTX_GLOBAL, {']'}, NULL, NULL, COMPL_NONE, "select the next knob in the status line", act_knob_select, 1},
    {"prev-knob", CTX_GLOBAL, {'['}, NULL, NULL, COMPL_NONE, "select the previous knob", act_knob_select, -1},
    {"knob-up", CTX_GLOBAL, {'+', '='}, NULL, NULL, COMPL_NONE, "raise the selected knob (1-2-5 steps; target by 5%)", act_knob_nudge, 1},
    {"knob-down", CTX_GLOBAL, {'-', '_'}, NULL, NULL, COMPL_NONE, "lower the selected knob", act_knob_nudge, -1},
    /* the plan */
    {"pin", CTX_GLOBAL, {0}, "pin", "BLOCK KIND [INDEX]", COMPL_BLOCK_KIND, "never remove it: heads 3, neurons 17, block, attn, ffn, wq..w2 (kept dense)", act_pin, 1},
    {"force", CTX_GLOBAL, {0}, "force", "BLOCK KIND [INDEX]", COMPL_BLOCK_KIND, "always remove it (a head, a neuron, a sublayer, the block)", act_pin, 2},
    {"unpin", CTX_GLOBAL, {0}, "unpin", "BLOCK KIND [INDEX]", COMPL_BLOCK_KIND, "clear a pin or force (:unpin all clears every one)", act_pin, 0},
    {"commit", CTX_GLOBAL, {'C'}, "commit", NULL, COMPL_NONE, "encode the plan, measure ppl, accuracy and tokens/s before and after", act_commit, 0},
    {"search", CTX_GLOBAL, {0}, "search", "N", COMPL_NONE, "refine the allocation by encoding and scoring N candidate plans", act_search, 0},
    {"export", CTX_GLOBAL, {0}, "export", "FILE", COMPL_NONE, "write the plan JSON that `cce apply MODEL --plan FILE` reads", act_export, 0},
    {"save", CTX_GLOBAL, {0}, "save", "[NAME]", COMPL_SESSION, "save the session to sessions/NAME.json (default: its name, or the model's)", act_save, 0},
    {"load", CTX_GLOBAL, {0}, "load", "NAME", COMPL_SESSION, "restore sessions/NAME.json: knobs, pins, the plan, the commit history", act_load, 0},
    /* the job */
    {"cancel", CTX_GLOBAL, {TK_ESC, 'c'}, "cancel", NULL, COMPL_NONE, "cancel the running commit or search, else the analysis (finished blocks stay)", act_cancel, 0},
    {"rerun", CTX_GLOBAL, {'r'}, "rerun", NULL, COMPL_NONE, "run the analysis again from the start", act_rerun, 0},
    /* the program */
    {"command", CTX_GLOBAL, {':'}, NULL, NULL, COMPL_NONE, "open the command line (Tab completes, Up/Down history)", act_cmdline, 0},
    {"redraw", CTX_GLOBAL, {TK_CTRL('l')}, NULL, NULL, COMPL_NONE, "redraw the screen", act_redraw, 0},
    {"quit", CTX_GLOBAL, {'q'}, "quit", NULL, COMPL_NONE, "quit (asks first when there are unsaved changes)", act_quit, 0},
    /* moving, interpreted by each view */
    {"move-up", CTX_GLOBAL, {TK_UP, 'k'}, NULL, NULL, COMPL_NONE, "up: previous row / block / site", act_move, MOVE_UP},
    {"move-down", CTX_GLOBAL, {TK_DOWN, 'j'}, NULL, NULL, COMPL_NONE, "down: next row / block / site", act_move, MOVE_DOWN},
    {"move-left", CTX_GLOBAL, {TK_LEFT, 'h'}, NULL, NULL, COMPL_NONE, "left (heatmap cursor, histogram panel)", act_move, MOVE_LEFT},
    {"move-right", CTX_GLOBAL, {TK_RIGHT, 'l'}, NULL, NULL, COMPL_NONE, "right", act_move, MOVE_RIGHT},
    {"page-up", CTX_GLOBAL, {TK_PGUP, TK_CTRL('b')}, NULL, NULL, COMPL_NONE, "page up", act_move, MOVE_PGUP},
    {"page-down", CTX_GLOBAL, {TK_PGDN, TK_CTRL('f')}, NULL, NULL, COMPL_NONE, "page down", act_move, MOVE_PGDN},
    {"first", CTX_GLOBAL, {TK_HOME, 'g'}, NULL, NULL, COMPL_NONE, "first row", act_move, MOVE_HOME},
    {"last", CTX_GLOBAL, {TK_END, 'G'}, NULL, NULL, COMPL_NONE, "last row", act_move, MOVE_END},
    /* per view */
    {"open-spectrum", VIEW_LAYERS, {TK_ENTER}, NULL, NULL, COMPL_NONE, "open the selected block's spectra", act_open_spectrum, 0},
    {"next-matrix", VIEW_HEATMAP, {'m'}, NULL, NULL, COMPL_NONE, "next matrix: layers, heads, KV groups", act_heat_matrix, 0},
    {"pick-block", VIEW_HEATMAP, {TK_ENTER}, NULL, NULL, COMPL_NONE, "select the block under the cursor (layer matrix)", act_heat_pick, 0},
    {"zoom", VIEW_HIST, {'z', TK_ENTER}, NULL, NULL, COMPL_NONE, "one site large / all sites", act_hist_zoom, 0},
    {"log-scale", VIEW_HIST, {'y'}, NULL, NULL, COMPL_NONE, "counts on a log (default) / linear scale", act_hist_log, 0},
    {"pin-component", VIEW_PLAN, {' '}, NULL, NULL, COMPL_NONE, "pin (never remove) the selected component / unpin it", act_pin_selected, 1},
    {"force-component", VIEW_PLAN, {'x'}, NULL, NULL, COMPL_NONE, "force (always remove) the selected component / unforce it", act_pin_selected, 2},
    {"clear-component", VIEW_PLAN, {'u'}, NULL, NULL, COMPL_NONE, "clear the selected component's pin or force", act_pin_selected, 0},
};
const int tui_n_actions = (int)(sizeof tui_actions / sizeof tui_actions[0]);

/* ------------------------------------------------------------------ dispatch */

static const action *find_key(int ctx, int key) {
    for (int i = 0; i < tui_n_actions; i++) {
        if (tui_actions[i].ctx != ctx) continue;
        for (int k = 0; k < 4 && tui_actions[i].keys[k]; k++)
            if (tui_actions[i].keys[k] == key) return &tui_actions[i];
    }
    return NULL;
}

int tui_dispatch_key(app *a, int key) {
    if (a->cmd_active) return cmdline_key(a, key);
    if (a->asking_quit) return quit_answer(a, key);
    if (key == TK_RESIZE) return R_RELAYOUT;
    if (key == TK_INTERRUPT) return R_QUIT;
    a->msg[0] = 0;
    const action *act = find_key(a->view, key);
    if (!act) act = find_key(CTX_GLOBAL, key);
    if (!act) {
        char name[16];
        tui_key_name(key, name, sizeof name);
        tui_message(a, LOG_INFO, "%s: no action in %s (? lists the keys)", name, tui_view(a->view)->title);
        return R_REDRAW;
    }
    return act->fn(a, act, NULL) | R_REDRAW;
}

int tui_view_key(int v) {
    for (int i = 0; i < tui_n_actions; i++) {
        const action *act = &tui_actions[i];
        if (act->ctx != CTX_GLOBAL || !act->keys[0]) continue;
        if ((act->fn == act_view && act->iarg == v) || (act->fn == act_help_cmd && v == VIEW_HELP) ||
            (act->fn == act_log_cmd && v == VIEW_LOG))
            return act->keys[0];
    }
    return 0;
}

/* The command named word: exact, else a unique prefix. */
static const action *find_cmd(const char *word, size_t n, int *ambiguous) {
    const action *hit = NULL;
    int hits = 0;
    *ambiguous = 0;
    for (int i = 0; i < tui_n_actions; i++) {
        const char *c = tui_actions[i].cmd;
        if (!c) continue;
        if (strlen(c) == n && !strncmp(c, word, n)) return &tui_actions[i];
        if (!strncmp(c, word, n)) {
            hit = &tui_actions[i];
            hits++;
        }
    }
    if (hits > 1) *ambiguous = 1;
    return hits == 1 ? hit : NULL;
}

int tui_run_command(app *a, const char *line) {
    while (*line == ' ' || *line == ':') line++;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", line);
    size_t len = strlen(buf);
    while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\n')) buf[--len] = 0;
    if (!len) return R_REDRAW;
    size_t n = strcspn(buf, " ");
    char *args = buf + n;
    while (*args == ' ') args++;
    int ambiguous;
    const action *act = find_cmd(buf, n, &ambiguous);
    if (!act) {
        tui_log(a, LOG_ERROR, "%s command '%.*s' (:help lists them)", ambiguous ? "ambiguous" : "unknown", (int)n, buf);
        return R_REDRAW;
    }
    if (!act->args && *args) {
        tui_log(a, LOG_ERROR, "%s takes no argument (got '%s')", act->cmd, args);
        return R_REDRAW;
    }
    a->msg[0] = 0;
    return act->fn(a, act, args) | R_REDRAW;
}

static int cmp_name(const void *x, const void *y) { return strcmp((const char *)x, (const char *)y); }

/* Session names in the sessions directory, sorted (for completion); the count. */
static int session_names(char names[][72], int cap) {
    int n = 0;
    DIR *d = opendir(tui_sessions_dir());
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || len - 5 >= 72 || strcmp(e->d_name + len - 5, ".json") ||
            (len > 14 && !strcmp(e->d_name + len - 14, ".analysis.json")))
            continue;
        snprintf(names[n++], 72, "%.*s", (int)(len - 5), e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    return n;
}

char *tui_complete(const char *line, int word_start, const char *text, int state) {
    static int idx;
    static int kind;
    static char sessions[256][72];
    static int n_sessions;
    static const char *const kinds[] = {"heads", "neurons", "block", "attn", "ffn", "wq", "wk", "wv", "wo", "w1", "w3", "w2"};
    if (state == 0) {
        idx = 0;
        kind = -1;
        int words = 0, in_word = 0;
        const char *p = line;
        while (*p == ':' || *p == ' ') p++;
        const char *first = p;
        for (; p < line + word_start; p++) {
            if (*p != ' ' && !in_word) { in_word = 1; words++; }
            else if (*p == ' ') in_word = 0;
        }
        int amb;
        const action *act = words ? find_cmd(first, strcspn(first, " "), &amb) : NULL;
        if (words == 0) kind = 0;
        else if (words == 1 && act && act->compl != COMPL_BLOCK_KIND) kind = (int)act->compl + 100;
        else if (words == 2 && act && act->compl == COMPL_BLOCK_KIND) kind = 100 + COMPL_BLOCK_KIND;
        if (kind == 100 + COMPL_SESSION) n_sessions = session_names(sessions, 256);
    }
    size_t tl = strlen(text);
    if (kind == 0) {
        while (idx < tui_n_actions) {
            const char *c = tui_actions[idx++].cmd;
            if (c && !strncmp(c, text, tl)) return strdup(c);
        }
    } else if (kind == 100 + COMPL_KNOB) {
        while (idx < KNOB_COUNT) {
            const char *c = tui_knobs[idx++].name;
            if (!strncmp(c, text, tl)) return strdup(c);
        }
    } else if (kind == 100 + COMPL_VIEW) {
        while (idx < VIEW_COUNT) {
            const char *c = tui_view(idx++)->name;
            if (!strncmp(c, text, tl)) return strdup(c);
        }
    } else if (kind == 100 + COMPL_SESSION) {
        while (idx < n_sessions) {
            const char *c = sessions[idx++];
            if (!strncmp(c, text, tl)) return strdup(c);
        }
    } else if (kind == 100 + COMPL_BLOCK_KIND) {
        while (idx < (int)(sizeof kinds / sizeof kinds[0])) {
            const char *c = kinds[idx++];
            if (!strncmp(c, text, tl)) return strdup(c);
        }
    }
    return NULL;
}
