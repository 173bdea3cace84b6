/*
 * draw.c — what several views share: the view registry, readers of the analysis through the
 * worker's job, number formatting, bars and boxes.
 *
 * Numbers on screen have at most three significant digits and a compact exponent ("1.2e-3"),
 * enough to compare blocks and narrow enough for 80 columns; the batch JSON has the full
 * precision. Timings go through fmt_seconds so headless dumps can mask them (the only values
 * on screen that differ between two identical runs).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tui.h"

/* ------------------------------------------------------------------ views */

static const view_ops *const views[VIEW_COUNT] = {
    [VIEW_LAYERS] = &view_layers, [VIEW_SPECTRUM] = &view_spectrum, [VIEW_HEATMAP] = &view_heatmap,
    [VIEW_HIST] = &view_hist, [VIEW_PLAN] = &view_plan, [VIEW_HELP] = &view_help, [VIEW_LOG] = &view_log,
};

const view_ops *tui_view(int id) { return views[id >= 0 && id < VIEW_COUNT ? id : 0]; }

int tui_view_find(const char *name) {
    size_t n = strlen(name);
    int hit = -1, hits = 0;
    for (int i = 0; i < VIEW_COUNT; i++) {
        if (!strcmp(views[i]->name, name) || (views[i]->alias && !strcmp(views[i]->alias, name))) return i;
        if (n && (!strncmp(views[i]->name, name, n) || (views[i]->alias && !strncmp(views[i]->alias, name, n)))) {
            if (hit != i) hits++;
            hit = i;
        }
    }
    return hits == 1 ? hit : -1;
}

/* ------------------------------------------------------------------ the analysis, read-only */

int tui_n_layers(const app *a) { return a->model ? a->model->cfg.n_layers : 0; }

const cce_block_result *tui_block(const app *a, int l) {
    const cce_analysis *job = worker_job(a->wk);
    if (!job || l < 0 || l >= tui_n_layers(a)) return NULL;
    return cce_analysis_block(job, l);
}

void tui_progress(const app *a, int *done, int *total, char *phase, size_t cap) {
    const cce_analysis *job = worker_job(a->wk);
    *done = 0;
    *total = tui_n_layers(a) + 1;
    if (!job) {
        if (phase) snprintf(phase, cap, "%s", worker_state(a->wk) == JOB_FAILED ? "failed" : "starting");
        return;
    }
    cce_analysis_progress(job, done, total, phase, cap);
}

void tui_block_missing(const app *a, int l, char *buf, size_t cap) {
    job_state s = worker_state(a->wk);
    int done, total;
    char phase[96];
    tui_progress(a, &done, &total, phase, sizeof phase);
    int running_block = done - 1;   // step done = block done - 1 after calibration
    if (s == JOB_FAILED) snprintf(buf, cap, "block %d has no results: the analysis failed (see the log, r reruns)", l);
    else if (s == JOB_CANCELLED) snprintf(buf, cap, "block %d has no results: the analysis was cancelled (r reruns it)", l);
    else if (running_block == l && s == JOB_RUNNING && !worker_held(a->wk))
        snprintf(buf, cap, "block %d is being analysed: %s", l, phase);
    else if (a->wk && worker_held(a->wk))
        snprintf(buf, cap, "block %d is not analysed yet (the analysis is held by the script)", l);
    else snprintf(buf, cap, "block %d is not analysed yet (%s)", l, phase);
}

/* ------------------------------------------------------------------ formatting */

void fmt_num(double v, char *buf, size_t cap) {
    double av = fabs(v);
    if (v == 0) { snprintf(buf, cap, "0"); return; }
    if (!isfinite(v)) { snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"); return; }
    if (av >= 100 && av < 1e5) { snprintf(buf, cap, "%.0f", v); return; }
    if (av >= 1e-2 && av < 100) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int e = (int)floor(log10(av));
    double m = v / pow(10, e);
    char mb[16];
    snprintf(mb, sizeof mb, "%.2g", m);
    if (fabs(strtod(mb, NULL)) >= 10) {
        e++;
        snprintf(mb, sizeof mb, "%.2g", v / pow(10, e));
    }
    snprintf(buf, cap, "%se%d", mb, e);
}

void fmt_count(long long v, char *buf, size_t cap) {
    char t[32];
    snprintf(t, sizeof t, "%lld", v < 0 ? -v : v);
    size_t n = strlen(t), o = 0;
    char out[48];
    if (v < 0) out[o++] = '-';
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) out[o++] = ',';
        out[o++] = t[i];
    }
    out[o] = 0;
    snprintf(buf, cap, "%s", out);
}

void fmt_seconds(const app *a, double s, char *buf, size_t cap) {
    if (a->mask_times) snprintf(buf, cap, "- s");
    else if (s < 10) snprintf(buf, cap, "%.3f s", s);
    else snprintf(buf, cap, "%.1f s", s);
}

const char *knob_label(const app *a, int k) {
    const theme_glyphs *g = &a->th.g;
    switch (k) {
    case KNOB_ALPHA: return g->alpha;
    case KNOB_BETA: return g->beta;
    case KNOB_GAMMA: return g->gamma;
    case KNOB_EPS: return g->eps;
    case KNOB_TAU: return g->tau;
    default: return "target";
    }
}

/* ------------------------------------------------------------------ shapes */

void draw_hbar(app *a, canvas *c, int x, int y, int w, double f, int role) {
    if (w <= 0) return;
    if (!(f > 0)) f = 0;
    if (f > 1) f = 1;
    int eighths = (int)lround(f * w * 8);
    for (int i = 0; i < w; i++) {
        int e = eighths - i * 8;
        e = e < 0 ? 0 : e > 8 ? 8 : e;
        canvas_put(c, x + i, y, a->th.g.hbar[e], role, 0);
    }
}

void draw_box(app *a, canvas *c, rect r, const char *title, int role) {
    if (r.w < 2 || r.h < 2) return;
    const theme_glyphs *g = &a->th.g;
    for (int x = r.x + 1; x < r.x + r.w - 1; x++) {
        canvas_put(c, x, r.y, g->hline, role, 0);
        canvas_put(c, x, r.y + r.h - 1, g->hline, role, 0);
    }
    for (int y = r.y + 1; y < r.y + r.h - 1; y++) {
        canvas_put(c, r.x, y, g->vline, role, 0);
        canvas_put(c, r.x + r.w - 1, y, g->vline, role, 0);
    }
    canvas_put(c, r.x, r.y, g->tl, role, 0);
    canvas_put(c, r.x + r.w - 1, r.y, g->tr, role, 0);
    canvas_put(c, r.x, r.y + r.h - 1, g->bl, role, 0);
    canvas_put(c, r.x + r.w - 1, r.y + r.h - 1, g->br, role, 0);
    if (title && *title && r.w > 4) {
        char t[256];
        snprintf(t, sizeof t, " %s ", title);
        canvas_text(c, r.x + 1, r.y, r.w - 2, t, ROLE_HEADER, 0);
    }
}

void draw_center(canvas *c, rect r, int y, const char *text, int role, int attr) {
    int w = canvas_text_width(text);
    int x = r.x + (r.w - w) / 2;
    if (x < r.x) x = r.x;
    canvas_text(c, x, y, r.w - (x - r.x), text, role, attr);
}

int draw_wrapped(canvas *c, int x, int y, int w, int max_rows, const char *text, int role, int indent) {
    int rows = 0, ind = 0;
    if (w <= indent + 1) indent = 0;
    while (*text && rows < max_rows && w - ind > 0) {
        int avail = w - ind;
        int cut = canvas_text_width(text);
        if (cut > avail) {
            /* the last space within avail columns, else a hard cut */
            int col = 0, sp = 0;
            for (const char *p = text; *p && col <= avail; p++) {
                if ((*p & 0xc0) == 0x80) continue;
                if (*p == ' ') sp = col;
                col++;
            }
            cut = sp > 0 ? sp : avail;
        }
        char part[1024];
        canvas_text_cut(text, cut, part, sizeof part);
        if (c) canvas_text(c, x + ind, y + rows, avail, part, role, 0);
        rows++;
        text += strlen(part);
        while (*text == ' ') text++;
        ind = indent;
    }
    return rows;
}

/* ------------------------------------------------------------------ plan cells */

void fmt_params_short(double p, char *buf, size_t cap) {
    double a = p < 0 ? -p : p;
    if (a >= 1e9) snprintf(buf, cap, "%.2fG", p / 1e9);
    else if (a >= 1e6) snprintf(buf, cap, "%.2fM", p / 1e6);
    else if (a >= 1e4) snprintf(buf, cap, "%.1fk", p / 1e3);
    else snprintf(buf, cap, "%.0f", p);
}

const char *plan_drop_text(const cce_block_plan *b) {
    if (!b) return "-";
    return b->drop ? "block" : b->drop_attn && b->drop_ffn ? "both" : b->drop_attn ? "attn" : b->drop_ffn ? "ffn" : "-";
}

void plan_ranks_text(const app *a, int l, const cce_block_plan *b, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; b && k < CCE_LIN_COUNT && o + 1 < cap; k++)
        if (b->rank[k] > 0) o += (size_t)snprintf(buf + o, cap - o, "%s%s:%d", o ? " " : "", cce_lin_names[k], b->rank[k]);
    if (!o) snprintf(buf, cap, "dense");
}

void draw_count(canvas *c, int x, int y, int w, int k, int n, int role) {
    char b[48];
    int kw = snprintf(b, sizeof b, "%d", k), nw = snprintf(b, sizeof b, "%d", n);
    int left = (w - 1) / 2, right = w - 1 - left;
    if (kw <= left && nw <= right) canvas_printf(c, x, y, w, role, 0, "%*d/%-*d", left, k, right, n);
    else {
        snprintf(b, sizeof b, "%.0f%%", n > 0 ? 100.0 * k / n : 0.0);
        canvas_printf(c, x, y, w, role, 0, "%*s", w, b);
    }
}
