/*
 * loop.c — the one loop: events in, reactions out, and the only place that redraws.
 *
 * Events are keys (terminal, or script lines in headless mode), wake-ups from the worker, the
 * planner and the task thread and signals (all a byte on the wake-up pipe), and a 100 ms tick
 * while the analysis or a task runs, which refreshes the progress bar and phase (progress is
 * throttled to that interval, as ncdu does). Every handler returns reaction flags; the loop
 * restarts the analysis on R_RESTART, sends the plan's inputs to the planner on R_REPLAN (once
 * per batch of keys), repaints on R_RELAYOUT (resize, Ctrl-L), redraws on R_REDRAW and stops on
 * R_QUIT. All keys waiting are dispatched before one redraw, so a burst of input costs one frame
 * and one re-plan.
 *
 * The frame (tui_render) is: the tab bar (row 0), the current view, the status line (model, a
 * '*' when there are unsaved changes, every knob, the last measured perplexity, the progress of
 * the analysis or of a commit) and the message / command line (last row). Below 60 × 16 the
 * screen says how large it must be; keys keep working.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "tui.h"
#include "util.h"

#define MIN_W 60
#define MIN_H 16

volatile sig_atomic_t tui_signal;

/* ------------------------------------------------------------------ the frame */

/* The tab bar, in the widest of three forms that fits: " cce  1 Layers ... block 2 of 0-4",
 * without the program name, or with short titles and "blk 2/4". */
static void draw_tabs(app *a, canvas *c) {
    static const char *short_titles[VIEW_COUNT] = {"Layers", "Spectr", "Heat", "Hist", "Plan", "Help", "Log"};
    canvas_fill(c, (rect){0, 0, a->w, 1}, " ", ROLE_TITLE, 0);
    int L = tui_n_layers(a);
    for (int tier = 0; tier < 3; tier++) {
        char right[64];
        if (tier < 2) snprintf(right, sizeof right, " block %d of 0-%d ", a->layer, L - 1);
        else snprintf(right, sizeof right, " blk %d/%d ", a->layer, L - 1);
        int need = (tier == 0 ? 5 : 0) + (int)strlen(right);
        for (int v = 0; v < VIEW_COUNT; v++)
            need += (int)strlen(tier < 2 ? tui_view(v)->title : short_titles[v]) + (tier < 2 ? 4 : 3);
        if (need > a->w && tier < 2) continue;
        int x = tier == 0 ? canvas_text(c, 0, 0, a->w, " cce ", ROLE_TITLE, ATTR_BOLD) : 0;
        int rw = (int)strlen(right);
        for (int v = 0; v < VIEW_COUNT; v++) {
            char t[64], k[16];
            tui_key_name(tui_view_key(v), k, sizeof k);
            snprintf(t, sizeof t, tier < 2 ? " %s %s " : "%s %s ", k, tier < 2 ? tui_view(v)->title : short_titles[v]);
            x += canvas_text(c, x, 0, a->w - x - rw, t, v == a->view ? ROLE_TAB_ACTIVE : ROLE_TITLE, 0);
        }
        canvas_text(c, a->w - rw, 0, rw, right, ROLE_TITLE, 0);
        return;
    }
}

/* The progress segment: text and the fraction for the bar (-1: no bar). */
static void progress_text(app *a, char *buf, size_t cap, double *frac, int terse) {
    int done, total;
    char phase[128], t[32];
    if (a->tk && task_state(a->tk) <= JOB_RUNNING) {
        int step, steps;
        task_progress(a->tk, &done, &total, &step, &steps, phase, sizeof phase);
        const char *what = task_kind_of(a->tk) == TASK_COMMIT ? "commit" : "search";
        *frac = total > 0 ? (double)done / total : 0;
        if (terse) snprintf(buf, cap, "%s %d/%d", what, step, steps);
        else snprintf(buf, cap, "%s %d/%d: %s (Esc cancels)", what, step, steps, phase);
        return;
    }
    tui_progress(a, &done, &total, phase, sizeof phase);
    job_state s = worker_state(a->wk);
    int L = tui_n_layers(a);
    *frac = -1;
    switch (s) {
    case JOB_STARTING:
        snprintf(buf, cap, "analysis starting");
        break;
    case JOB_RUNNING:
        if (worker_loaded(a->wk) && !worker_job(a->wk)) {
            snprintf(buf, cap, terse ? "loading" : "reading the analysis file");
            break;
        }
        *frac = total > 0 ? (double)done / total : 0;
        if (worker_held(a->wk)) snprintf(buf, cap, terse ? "%d/%d held" : "%d/%d held by the script", done, total);
        else if (terse) snprintf(buf, cap, "%d/%d", done, total);
        else snprintf(buf, cap, "%s", phase);   // "block 3/5 eigen": the bar shows the whole
        break;
    case JOB_DONE:
        fmt_seconds(a, worker_elapsed(a->wk), t, sizeof t);
        if (worker_loaded(a->wk)) snprintf(buf, cap, terse ? "analysed" : "analysis read: %d blocks", L);
        else snprintf(buf, cap, terse ? "analysed" : "analysis done: %d blocks, %s", L, t);
        break;
    case JOB_CANCELLED:
        snprintf(buf, cap, terse ? "cancelled" : "cancelled: %d of %d blocks (r reruns)", done > 0 ? done - 1 : 0, L);
        break;
    default:
        snprintf(buf, cap, terse ? "failed" : "analysis failed (L: log)");
        break;
    }
}

static int knobs_width(app *a, int gap) {
    int w = 0;
    for (int k = 0; k < KNOB_COUNT; k++) {
        char v[32];
        knob_format(k, a->knob[k], v, sizeof v);
        w += canvas_text_width(knob_label(a, k)) + 1 + (int)strlen(v) + gap;
    }
    return w;
}

static void draw_status(app *a, canvas *c, int y) {
    canvas_fill(c, (rect){0, y, a->w, 1}, " ", ROLE_STATUS, 0);
    if (a->cmd_active && a->cmd_hint[0]) {
        canvas_text(c, 1, y, a->w - 2, a->cmd_hint, ROLE_STATUS, 0);
        return;
    }
    char prog[200], name[300], ppl[48] = "";
    double frac;
    int bar_w = 10;
    progress_text(a, prog, sizeof prog, &frac, 0);
    snprintf(name, sizeof name, "%s%s", a->model_name, a->dirty ? "*" : "");
    if (a->n_commits) snprintf(ppl, sizeof ppl, "ppl %.2f", a->commits[a->n_commits - 1].after.ppl);
    int gap = 2;
    int kw = knobs_width(a, gap) + (ppl[0] ? (int)strlen(ppl) + gap : 0), mw = canvas_text_width(name) + 3;
    int pw = canvas_text_width(prog) + (frac >= 0 ? bar_w + 1 : 0) + 1;
    if (mw + kw + pw > a->w) mw = 0;
    if (kw + pw > a->w) { gap = 1; kw = knobs_width(a, gap) + (ppl[0] ? (int)strlen(ppl) + gap : 0); }
    if (kw + pw > a->w) {
        progress_text(a, prog, sizeof prog, &frac, 1);
        pw = canvas_text_width(prog) + (frac >= 0 ? bar_w + 1 : 0) + 1;
    }
    if (kw + pw > a->w && frac >= 0) { bar_w = 4; pw -= 6; }
    int x = 1;
    if (mw) x += canvas_text(c, x, y, mw, name, ROLE_STATUS, ATTR_BOLD) + 2;
    for (int k = 0; k < KNOB_COUNT; k++) {
        char v[32], t[64];
        knob_format(k, a->knob[k], v, sizeof v);
        snprintf(t, sizeof t, "%s %s", knob_label(a, k), v);
        int role = k == a->knob_sel ? ROLE_KNOB_SEL : ROLE_KNOB;
        x += canvas_text(c, x, y, a->w - x, t, role, 0) + gap;
    }
    if (ppl[0]) x += canvas_text(c, x, y, a->w - x, ppl, ROLE_STATUS, ATTR_BOLD) + gap;
    int px = a->w - pw;
    if (px < x) px = x;
    if (frac >= 0) {
        draw_hbar(a, c, px, y, bar_w, frac, ROLE_PROGRESS);
        canvas_set_role(c, (rect){px, y, bar_w, 1}, ROLE_PROGRESS);
        px += bar_w + 1;
    }
    canvas_text(c, px, y, a->w - px, prog, ROLE_STATUS, 0);
}

static void draw_bottom(app *a, canvas *c, int y) {
    if (a->asking_quit) {
        char q[300], nm[72];
        tui_default_session_name(a, nm, sizeof nm);
        snprintf(q, sizeof q, "%s. Save session '%s' before quitting? y: save and quit  n: quit  Esc: stay",
                 tui_task_running(a) ? "A commit is running (quitting cancels it)" : "Unsaved changes", nm);
        canvas_text(c, 1, y, a->w - 2, q, ROLE_WARN, ATTR_BOLD);
        return;
    }
    if (a->cmd_active) {
        int pw = canvas_text_width(a->cmd_prompt);
        int avail = a->w - pw - 1;
        char before[1024];
        snprintf(before, sizeof before, "%.*s", a->cmd_point, a->cmd_line);
        int pcol = canvas_text_width(before);
        /* scroll so the point stays visible */
        int skip = pcol > avail - 1 ? pcol - avail + 1 : 0;
        const char *s = a->cmd_line;
        for (int i = 0; i < skip && *s; i++) {
            s++;
            while ((*s & 0xc0) == 0x80) s++;
        }
        int x = canvas_text(c, 0, y, a->w, a->cmd_prompt, ROLE_CMDLINE, ATTR_BOLD);
        canvas_text(c, x, y, a->w - x, s, ROLE_CMDLINE, 0);
        c->cur_x = x + pcol - skip;
        c->cur_y = y;
        return;
    }
    if (a->msg[0]) {
        int role = a->msg_level == LOG_ERROR ? ROLE_ERROR : a->msg_level == LOG_WARN ? ROLE_WARN : ROLE_DEFAULT;
        canvas_text(c, 1, y, a->w - 2, a->msg, role, 0);
        return;
    }
    static const char *hints[] = {"?:help  1-5:views  n/p:block  [ ]:knob  + -:change  C:commit  :command  q:quit",
                                  "?:help  1-5:views  n/p:block  [ ]:knob  + -:change  :command  q:quit",
                                  "?:help  n/p:block  [ ] + -:knobs  :command  q:quit", "?:help  :command  q:quit"};
    for (int i = 0; i < 4; i++) {
        int hw = canvas_text_width(hints[i]);
        if (hw < a->w - 2) {
            canvas_text(c, a->w - hw - 1, y, hw, hints[i], ROLE_DIM, 0);
            break;
        }
    }
}

void tui_render(app *a, canvas *c) {
    if (c->w != a->w || c->h != a->h) canvas_resize(c, a->w, a->h);
    else canvas_clear(c);
    c->ascii = !a->th.utf8;
    if (a->w < MIN_W || a->h < MIN_H) {
        char t[128];
        rect all = {0, 0, a->w, a->h};
        snprintf(t, sizeof t, "terminal too small: %d%s%d", a->w, a->th.g.times, a->h);
        draw_center(c, all, a->h / 2 - 1, t, ROLE_WARN, 0);
        snprintf(t, sizeof t, "cce needs %d%s%d", MIN_W, a->th.g.times, MIN_H);
        draw_center(c, all, a->h / 2, t, ROLE_DEFAULT, 0);
        draw_center(c, all, a->h / 2 + 1, "(q quits)", ROLE_DIM, 0);
        return;
    }
    draw_tabs(a, c);
    tui_view(a->view)->draw(a, c, (rect){0, 1, a->w, a->h - 3});
    draw_status(a, c, a->h - 2);
    draw_bottom(a, c, a->h - 1);
}

/* ------------------------------------------------------------------ events */

int tui_start_analysis(app *a) {
    replanner_wait_idle(a->rp);   // a build may be reading the job about to go
    worker_free(a->wk);
    a->wk = NULL;
    a->steps_seen = 0;
    a->last_state = JOB_STARTING;
    a->calib_n_seq = a->calib_seq_len = 0;
    const char *load = a->analysis_path[0] ? a->analysis_path : NULL;
    /* a read analysis must match the calibration text, unless there is no tokenizer: then
     * nothing is encoded against that text (no commit), and only the planner runs */
    int check_calib = !load || a->tok;
    cce_calib_source src = {.tok = a->tok, .text = check_calib ? a->calib_text : NULL, .text_len = check_calib ? a->calib_len : 0};
    cce_err err = {{0}};
    if (worker_start(&a->wk, a->model, &src, &a->aopts, load, !a->have_model_id, a->wake_w, a->hold, &err)) {
        tui_log(a, LOG_ERROR, "%s", err.msg);
        return -1;
    }
    if (load) tui_log(a, LOG_EVENT, "reading the analysis from %s", load);
    else
        tui_log(a, LOG_EVENT, "analysis started: %ld calibration tokens, seed %llu", a->aopts.tokens,
                (unsigned long long)a->aopts.seed);
    return 0;
}

static void log_step(app *a, int step) {
    const cce_analysis *job = worker_job(a->wk);
    if (step == 0) {
        size_t stream;
        int n_seq, seq_len;
        cce_analysis_calib_info(job, &stream, &n_seq, &seq_len);
        tui_log(a, LOG_EVENT, "calibration ready: %d sequences of %d tokens from a stream of %zu tokens", n_seq, seq_len,
                stream);
        return;
    }
    const cce_block_result *b = tui_block(a, step - 1);
    if (!b) return;
    char t[32];
    fmt_seconds(a, b->t_forward + b->t_stats + b->t_similarity + b->t_eigen + b->t_svd + b->t_redundancy, t, sizeof t);
    tui_log(a, LOG_EVENT, "block %d analysed in %s: angular distance %.4f%s", step - 1, t, b->angular_distance,
            b->near_identity ? " (near identity)" : "");
}

int tui_on_wake(app *a) {
    char buf[256];
    while (read(a->wake_r, buf, sizeof buf) > 0) {}
    int fl = R_NONE;
    if (tui_signal) {
        int s = tui_signal;
        tui_signal = 0;
        if (s == SIGINT && a->cmd_active) fl |= cmdline_cancel(a);
        else {
            a->quit_signal = s;
            fl |= R_QUIT;
        }
    }
    fl |= tui_plan_poll(a);
    if (!a->wk) return fl;
    int done, total;
    tui_progress(a, &done, &total, NULL, 0);
    int loaded = worker_loaded(a->wk);
    for (; a->steps_seen < done; a->steps_seen++) {
        if (!loaded) log_step(a, a->steps_seen);
        fl |= R_REDRAW | (a->plan_frozen || a->steps_seen == 0 ? 0 : R_REPLAN);   // a new block: re-plan
    }
    job_state s = worker_state(a->wk);
    if (s != a->last_state) {
        char t[32];
        fmt_seconds(a, worker_elapsed(a->wk), t, sizeof t);
        if (s == JOB_DONE && loaded) {
            tui_log(a, LOG_EVENT, "analysis read: %d blocks from %s", tui_n_layers(a), a->analysis_path);
            const cce_analysis_opts *o = cce_analysis_get_opts(worker_job(a->wk));
            a->aopts.tokens = o->tokens, a->aopts.seq_len = o->seq_len, a->aopts.seed = o->seed;
            fl |= tui_plan_poll(a) | (a->plan_frozen ? 0 : R_REPLAN);
        } else if (s == JOB_DONE) tui_log(a, LOG_EVENT, "analysis finished: %d blocks in %s", tui_n_layers(a), t);
        else if (s == JOB_CANCELLED)
            tui_log(a, LOG_WARN, "%s; %d of %d blocks kept (r reruns)", worker_error(a->wk), done > 0 ? done - 1 : 0,
                    tui_n_layers(a));
        else if (s == JOB_FAILED) tui_log(a, LOG_ERROR, "%s: %s", a->calib_path, worker_error(a->wk));
        a->last_state = s;
        fl |= R_REDRAW;
    }
    return fl;
}

/* ------------------------------------------------------------------ the terminal loop */

int tui_loop_terminal(app *a) {
    canvas c;
    if (canvas_init(&c, a->w > 0 ? a->w : 80, a->h > 0 ? a->h : 24)) return 1;
    int fl = R_RELAYOUT | R_REPLAN | a->pending;
    a->pending = 0;
    for (;;) {
        if (fl & R_RESTART) {
            tui_start_analysis(a);
            fl |= R_REDRAW | (a->plan_frozen ? 0 : R_REPLAN);
        }
        if (fl & R_QUIT) break;
        if (fl & R_REPLAN) tui_replan(a);
        if (fl & R_RELAYOUT) {
            term_size(&a->w, &a->h);
            term_force_repaint();
        }
        if (fl & (R_REDRAW | R_RELAYOUT)) {
            tui_render(a, &c);
            term_blit(a, &c);
        }
        fl = R_NONE;
        job_state s = worker_state(a->wk);
        int ticking = (a->wk && s <= JOB_RUNNING) || tui_task_running(a);
        struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = a->wake_r, .events = POLLIN}};
        int rc = poll(p, 2, ticking ? 100 : -1);
        if (rc < 0 && errno != EINTR) break;
        if (rc == 0 && ticking) fl |= R_REDRAW;
        /* keys: after input, and after EINTR (SIGWINCH queues KEY_RESIZE) */
        if (rc < 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (p[0].revents & (POLLHUP | POLLERR)) fl |= R_QUIT;   // the terminal went away
            int k;
            while ((k = term_read_key()) != 0) {
                fl |= tui_dispatch_key(a, k);
                if (fl & R_QUIT) break;
            }
        }
        fl |= tui_on_wake(a);
    }
    canvas_free(&c);
    return 0;
}
