/*
 * script.c — headless mode: the same dispatcher and renderer driven by a script instead of a
 * terminal (tig's test mode). Tests compare the screen dumps it writes; `make bench` times it.
 *
 * Script lines (# comments and blank lines are skipped):
 *   key NAME...       press keys: j, Enter, Esc, Tab, S-Tab, Up, PgDn, C-l, F1, Space, ...
 *   keys TEXT         press each character of TEXT
 *   cmd :LINE         open the command line with ':', type LINE through readline, press Enter
 *   steps N           let the analysis run until N steps are done (step 0 is the calibration,
 *                     step l+1 block l), then hold it: screens in between are deterministic
 *   wait analysis     let the analysis run to its end (done, failed or cancelled)
 *   wait commit       wait for the running commit or search to end and be adopted
 *   resize W H        the terminal is now W x H (KEY_RESIZE is dispatched)
 *   expect TEXT       fail unless TEXT is on the current screen
 *   dump NAME         render and write DIR/NAME.txt (text only; timings masked)
 *   bench N           N keys cycling through the views while the analysis runs, timing
 *                     key-to-redraw (dispatch + render + a curses blit to /dev/null), the
 *                     render alone and a full curses repaint; prints the figures (a commit
 *                     started before it runs meanwhile: key-to-redraw while committing)
 *   replan-bench N    N re-plans over the budget ladder 5%..50% and back, timing the build
 *                     (cce_plan_build on the planner thread) and request-to-adoption; prints them
 * In headless mode the analysis starts held, so nothing runs before the script says so.
 * A script that ends without quitting quits at its end. Errors name the script and line.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tui.h"
#include "util.h"

typedef struct {
    app *a;
    canvas c;
    const char *path, *dump_dir;
    int line;
    int flags;
} script;

static int fail(script *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(script *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cce: error: %s:%d: ", s->path, s->line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int pump_until(script *s, int (*done)(app *), double timeout);
static int finished(app *a) { return !a->wk || worker_state(a->wk) >= JOB_DONE; }
static int settled(app *a) { return finished(a) || worker_held(a->wk); }

/* Wait until the plan answers the newest inputs (the planner thread has built and the app
 * adopted it), re-planning again when new blocks arrive meanwhile. */
static void settle_plan(script *s) {
    app *a = s->a;
    double t0 = cce_now();
    while (a->rp && !a->plan_frozen && a->plan_have < a->plan_want && cce_now() - t0 < 60) {
        struct pollfd p = {.fd = a->wake_r, .events = POLLIN};
        poll(&p, 1, 100);
        int fl = tui_on_wake(a);
        if ((fl & R_REPLAN) && !a->plan_frozen) tui_replan(a);
        s->flags |= fl & R_QUIT;
    }
}

/* Act on reactions the way the terminal loop does (minus the terminal). A (re)started worker
 * is waited for until it holds before its first step, and a re-plan until it is adopted, so the
 * next screen does not depend on how fast the threads got going. */
static void react(script *s, int fl) {
    if (fl & R_RESTART) {
        tui_start_analysis(s->a);
        pump_until(s, settled, 60);
        if (!s->a->plan_frozen) fl |= R_REPLAN;
    }
    if ((fl & R_REPLAN) && !s->a->plan_frozen) {
        tui_replan(s->a);
        settle_plan(s);
    }
    s->flags |= fl & R_QUIT;
}

/* A key, then a frame when it asks for one, as the terminal loop does (views keep scroll
 * state that follows the frames, so a script sees exactly what a user would). */
static void press(script *s, int key) {
    int fl = tui_dispatch_key(s->a, key);
    react(s, fl);
    if (fl & (R_REDRAW | R_RELAYOUT)) tui_render(s->a, &s->c);
}

/* Pump wake-ups until done(a) or quit; 0, or -1 after timeout seconds. */
static int pump_until(script *s, int (*done)(app *), double timeout) {
    double t0 = cce_now();
    for (;;) {
        react(s, tui_on_wake(s->a));
        if (done(s->a) || (s->flags & R_QUIT)) {
            react(s, tui_on_wake(s->a));   // what happened between the two reads is logged too
            return 0;
        }
        if (cce_now() - t0 > timeout) return -1;
        struct pollfd p = {.fd = s->a->wake_r, .events = POLLIN};
        poll(&p, 1, 200);
    }
}

static int task_gone(app *a) { return !a->tk; }

static int steps_target;
static int reached_steps(app *a) {
    int done, total;
    tui_progress(a, &done, &total, NULL, 0);
    return finished(a) || (done >= steps_target && worker_held(a->wk));
}

static int do_dump(script *s, const char *name) {
    tui_render(s->a, &s->c);
    char *text;
    size_t len;
    if (canvas_dump(&s->c, &text, &len)) return fail(s, "%s: out of memory", name);
    char path[2048];
    snprintf(path, sizeof path, "%s/%s.txt", s->dump_dir ? s->dump_dir : ".", name);
    cce_err err = {{0}};
    int rc = cce_write_file_atomic(path, text, len, &err) ? fail(s, "%s", err.msg) : 0;
    free(text);
    return rc;
}

static int do_expect(script *s, const char *want) {
    tui_render(s->a, &s->c);
    char *text;
    if (canvas_dump(&s->c, &text, NULL)) return fail(s, "%s: out of memory", want);
    int ok = strstr(text, want) != NULL;
    free(text);
    return ok ? 0 : fail(s, "expected '%s' on the screen", want);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void summary(const double *v, int n, double *med, double *p95, double *max) {
    double *t = malloc((size_t)(n > 0 ? n : 1) * sizeof *t);
    if (!t || n == 0) { *med = *p95 = *max = 0; free(t); return; }
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *med = t[n / 2];
    *p95 = t[(int)floor(0.95 * (n - 1))];
    *max = t[n - 1];
    free(t);
}

/* bench N: keys that visit every view and move around in it, timed one by one. */
static int do_bench(script *s, int n) {
    static const int cycle[] = {'j', 'k', '2', 'j', 'j', '3', 'l', 'j', 'm', '4', 'l', 'z', 'z', '1', 'n', 'p',
                                ']', '+', '-', '[', '5', 'j', 'l', TK_TAB, '?', TK_PGDN, 'L', '1'};
    const int nc = (int)(sizeof cycle / sizeof cycle[0]);
    double *lat = malloc((size_t)n * sizeof *lat), *frame = malloc((size_t)n * sizeof *frame),
           *blit = malloc((size_t)n * sizeof *blit);
    if (!lat || !frame || !blit) { free(lat); free(frame); free(blit); return fail(s, "%s", "bench: out of memory"); }
    /* the blit goes through a real curses screen writing xterm escapes to /dev/null */
    char why[128];
    int curses = term_open_offscreen(s->a, s->a->w, s->a->h, why, sizeof why) == 0;
    if (!curses) fprintf(stderr, "cce: bench: no curses screen (%s); blit not timed\n", why);
    worker_allow(s->a->wk, -1);
    int during = 0, committing = 0;
    for (int i = 0; i < n && !(s->flags & R_QUIT); i++) {
        int running = s->a->wk && worker_state(s->a->wk) <= JOB_RUNNING;
        committing += tui_task_running(s->a);
        double t0 = cce_now();
        int fl = tui_dispatch_key(s->a, cycle[i % nc]);
        fl |= tui_on_wake(s->a);
        tui_render(s->a, &s->c);
        if (curses) term_blit(s->a, &s->c);
        double t1 = cce_now();
        tui_render(s->a, &s->c);
        double t2 = cce_now();
        if (curses) {
            term_force_repaint();   // a full repaint: the worst case of a blit
            term_blit(s->a, &s->c);
        }
        double t3 = cce_now();
        react(s, fl);
        lat[i] = (t1 - t0) * 1e3;
        frame[i] = (t2 - t1) * 1e3;
        blit[i] = (t3 - t2) * 1e3;
        during += running;
        struct timespec ts = {0, 2 * 1000 * 1000};   // 2 ms between keys: spread over the analysis
        nanosleep(&ts, NULL);
    }
    double lm, lp, lx, fm, fp, fx, bm, bp, bx;
    summary(lat, n, &lm, &lp, &lx);
    summary(frame, n, &fm, &fp, &fx);
    summary(blit, n, &bm, &bp, &bx);
    if (curses) term_close();
    printf("tui bench %dx%d: %d keys, %d while the analysis ran, %d while a commit ran\n"
           "  key-to-redraw (dispatch + render%s): median %.3f ms, p95 %.3f ms, max %.3f ms\n"
           "  frame (render into the canvas):      median %.3f ms, p95 %.3f ms, max %.3f ms\n",
           s->a->w, s->a->h, n, during, committing, curses ? " + curses blit" : "", lm, lp, lx, fm, fp, fx);
    if (curses) printf("  full repaint (curses, every cell):   median %.3f ms, p95 %.3f ms, max %.3f ms\n", bm, bp, bx);
    fflush(stdout);
    free(lat);
    free(frame);
    free(blit);
    return 0;
}

/* replan-bench N: the budget ladder up and down, one re-plan per step, each waited for. */
static int do_replan_bench(script *s, int n) {
    app *a = s->a;
    int blocks = 0;
    for (int l = 0; l < tui_n_layers(a); l++) blocks += tui_block(a, l) != NULL;
    if (!blocks) return fail(s, "%s", "replan-bench: no block is analysed (the analysis failed or has not run)");
    double *build = malloc((size_t)n * sizeof *build), *lat = malloc((size_t)n * sizeof *lat);
    if (!build || !lat) { free(build); free(lat); return fail(s, "%s", "replan-bench: out of memory"); }
    double keep = a->knob[KNOB_TARGET];
    int frozen = a->plan_frozen;
    a->plan_frozen = 0;
    for (int i = 0; i < n; i++) {
        int k = i % 18;   // 5%, 10%, ..., 50%, 45%, ..., 10%
        a->knob[KNOB_TARGET] = 0.05 * (k < 10 ? k + 1 : 18 - k);
        double t0 = cce_now();
        tui_replan(a);
        settle_plan(s);
        lat[i] = (cce_now() - t0) * 1e3;
        build[i] = a->plan_ms;
    }
    a->knob[KNOB_TARGET] = keep;
    tui_replan(a);
    settle_plan(s);
    a->plan_frozen = frozen;
    double bm, bp, bx, lm, lp, lx;
    summary(build, n, &bm, &bp, &bx);
    summary(lat, n, &lm, &lp, &lx);
    int L = tui_n_layers(a), done = 0;
    for (int l = 0; l < L; l++) done += tui_block(a, l) != NULL;
    printf("re-plan: %d re-plans over targets 5%%..50%%, %d of %d blocks analysed\n"
           "  build (cce_plan_build):          median %.3f ms, p95 %.3f ms, max %.3f ms\n"
           "  request to adoption (thread):    median %.3f ms, p95 %.3f ms, max %.3f ms\n",
           n, done, L, bm, bp, bx, lm, lp, lx);
    fflush(stdout);
    free(build);
    free(lat);
    return 0;
}

static int do_keys(script *s, char *arg, int names) {
    if (!names) {
        /* each character (UTF-8) */
        char ch[8];
        for (const char *p = arg; *p && !(s->flags & R_QUIT);) {
            int len = 1;
            while (p[len] && (p[len] & 0xc0) == 0x80 && len < 4) len++;
            snprintf(ch, sizeof ch, "%.*s", len, p);
            press(s, tui_key_parse(ch));
            p += len;
        }
        return 0;
    }
    for (char *tok = strtok(arg, " "); tok && !(s->flags & R_QUIT); tok = strtok(NULL, " ")) {
        int k = tui_key_parse(tok);
        if (!k) return fail(s, "unknown key name '%s'", tok);
        press(s, k);
    }
    return 0;
}

static int run_line(script *s, char *ln) {
    char *arg = strchr(ln, ' ');
    if (arg) {
        *arg++ = 0;
        while (*arg == ' ') arg++;
    } else arg = ln + strlen(ln);
    if (!strcmp(ln, "key")) return do_keys(s, arg, 1);
    if (!strcmp(ln, "keys")) return do_keys(s, arg, 0);
    if (!strcmp(ln, "cmd")) {
        if (!s->a->cmd_active) press(s, ':');
        if (!s->a->cmd_active) return fail(s, "%s", "the command line did not open");
        do_keys(s, arg + (*arg == ':'), 0);
        if (!(s->flags & R_QUIT)) press(s, TK_ENTER);
        return 0;
    }
    if (!strcmp(ln, "steps")) {
        char *end;
        long n = strtol(arg, &end, 10);
        if (!*arg || *end || n < 0) return fail(s, "steps: expected a step count, got '%s'", arg);
        steps_target = (int)n;
        worker_allow(s->a->wk, (int)n);
        return pump_until(s, reached_steps, 300) ? fail(s, "steps %s: timed out", arg) : 0;
    }
    if (!strcmp(ln, "wait") && !strcmp(arg, "commit"))
        return pump_until(s, task_gone, 1200) ? fail(s, "%s", "wait commit: timed out after 1200 s") : 0;
    if (!strcmp(ln, "wait")) {
        if (strcmp(arg, "analysis")) return fail(s, "wait: expected 'wait analysis' or 'wait commit', got '%s'", arg);
        worker_allow(s->a->wk, -1);
        return pump_until(s, finished, 600) ? fail(s, "%s", "wait analysis: timed out after 600 s") : 0;
    }
    if (!strcmp(ln, "resize")) {
        int w, h;
        char extra;
        if (sscanf(arg, "%d %d %c", &w, &h, &extra) != 2 || w < 1 || h < 1 || w > 1000 || h > 1000)
            return fail(s, "resize: expected 'resize W H' (1..1000), got '%s'", arg);
        s->a->w = w;
        s->a->h = h;
        press(s, TK_RESIZE);
        return 0;
    }
    if (!strcmp(ln, "dump")) return *arg ? do_dump(s, arg) : fail(s, "%s", "dump: expected a name");
    if (!strcmp(ln, "expect")) return do_expect(s, arg);
    if (!strcmp(ln, "bench")) {
        long n = strtol(arg, NULL, 10);
        if (n < 1 || n > 1000000) return fail(s, "bench: expected a key count, got '%s'", arg);
        return do_bench(s, (int)n);
    }
    if (!strcmp(ln, "replan-bench")) {
        long n = strtol(arg, NULL, 10);
        if (n < 1 || n > 1000000) return fail(s, "replan-bench: expected a count, got '%s'", arg);
        return do_replan_bench(s, (int)n);
    }
    return fail(s, "unknown script command '%s' (key keys cmd steps wait resize expect dump bench replan-bench)", ln);
}

int tui_run_script(app *a, const char *path, const char *dump_dir) {
    script s = {.a = a, .path = path, .dump_dir = dump_dir};
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cce: error: %s: cannot open the script: %s\n", path, strerror(errno));
        return 1;
    }
    if (canvas_init(&s.c, a->w, a->h)) {
        fclose(f);
        fprintf(stderr, "cce: error: out of memory for a %dx%d screen\n", a->w, a->h);
        return 1;
    }
    char buf[4096];
    int rc = 0;
    react(&s, a->pending | R_REPLAN);   // --session, and the first plan
    a->pending = 0;
    pump_until(&s, settled, 60);
    while (!rc && !(s.flags & R_QUIT) && fgets(buf, sizeof buf, f)) {
        s.line++;
        size_t n = strlen(buf);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
        char *ln = buf;
        while (*ln == ' ' || *ln == '\t') ln++;
        if (!*ln || *ln == '#') continue;
        rc = run_line(&s, ln);
        react(&s, tui_on_wake(a));
    }
    fclose(f);
    canvas_free(&s.c);
    return rc;
}
