/*
 * view_spectrum.c — the selected block's spectra: a table of every covariance site and weight
 * matrix on the left, the selected one plotted on the right.
 *
 * The plot is a log-scale bar chart of values relative to the largest (λ/λmax, σ/σmax), so the
 * threshold is one horizontal line at ε (eigenvalues) or τ (singular values) whatever the
 * scale of the site, and bars below it are drawn in the "low" role and glyph: the count of
 * those is the number the knobs control (cce_spectrum_count_below on the stored values,
 * recomputed every frame). For weights the bars are the activation-aware singular values
 * σ(W L) — the ones a truncation's output error is measured by (DESIGN §3.6) — and dots mark
 * the plain σ(W) for comparison. With more values than columns, a column shows the first
 * (largest) value of its range; with fewer, bars widen up to three columns.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tui.h"

#define TABLE_W 43

static int n_rows(const cce_block_result *b) { return CCE_COV_COUNT + (b ? b->n_weights : 7); }

/* Row sel as (values, n, overlay, threshold, name). Returns 0 when the row has no data. */
typedef struct {
    const float *v, *v2;
    int n;
    double thresh;
    int is_weight;
    char name[32];
    const cce_weight_spectrum *w;
} spec_sel;

static int get_sel(app *a, const cce_block_result *b, int sel, spec_sel *s) {
    memset(s, 0, sizeof *s);
    if (!b) return 0;
    if (sel < CCE_COV_COUNT) {
        s->v = b->eig[sel].values;
        s->n = b->eig[sel].n;
        s->thresh = a->knob[KNOB_EPS];
        snprintf(s->name, sizeof s->name, "%s", cce_cov_site_name((cce_cov_site)sel));
    } else if (sel - CCE_COV_COUNT < b->n_weights) {
        s->w = &b->weights[sel - CCE_COV_COUNT];
        s->v = s->w->sv_aw;
        s->v2 = s->w->sv;
        s->n = s->w->n;
        s->thresh = a->knob[KNOB_TAU];
        s->is_weight = 1;
        snprintf(s->name, sizeof s->name, "%s", s->w->name);
    }
    return s->n > 0 && s->v;
}

/* Right-align text so it ends at column x_end (exclusive). */
static void put_r(canvas *c, int x_end, int y, const char *text, int role, int attr) {
    int w = canvas_text_width(text);
    canvas_text(c, x_end - w, y, w, text, role, attr);
}

static void put_int_r(canvas *c, int x_end, int y, int v, int role) {
    char b[16];
    snprintf(b, sizeof b, "%d", v);
    put_r(c, x_end, y, b, role, 0);
}

static void select_row(app *a, canvas *c, rect r, int y) {
    canvas_set_role(c, (rect){r.x, y, r.w, 1}, ROLE_SELECTED);
    canvas_put(c, r.x, y, a->th.g.sel, ROLE_SELECTED, 0);
}

/* The table: covariance sites (n, λmax, count below ε), then weights (shape, σmax, stable
 * rank, counts of activation-aware and plain σ below τ). Columns end at fixed offsets. */
static void draw_table(app *a, canvas *c, rect r, const cce_block_result *b, int with_plain) {
    const theme_glyphs *g = &a->th.g;
    char t[64], v[32];
    int x = r.x, y = r.y;
    canvas_text(c, x + 1, y, 9, "site", ROLE_HEADER, 0);
    put_r(c, x + 15, y, "n", ROLE_HEADER, 0);
    snprintf(t, sizeof t, "%smax", a->th.utf8 ? g->lambda : "");
    put_r(c, x + 24, y, t, ROLE_HEADER, 0);
    snprintf(t, sizeof t, "%s<%s", a->th.utf8 ? g->lambda : "", g->eps);
    put_r(c, x + 32, y, t, ROLE_HEADER, 0);
    y++;
    for (int s = 0; s < CCE_COV_COUNT && y < r.y + r.h; s++, y++) {
        const cce_spectrum *sp = &b->eig[s];
        canvas_text(c, x + 1, y, 9, cce_cov_site_name((cce_cov_site)s), ROLE_DEFAULT, 0);
        if (sp->n <= 0) {
            put_r(c, x + 15, y, "-", ROLE_DIM, 0);
        } else {
            int k = cce_spectrum_count_below(sp->values, sp->n, (float)a->knob[KNOB_EPS]);
            put_int_r(c, x + 15, y, sp->n, ROLE_DEFAULT);
            fmt_num(sp->values[0], v, sizeof v);
            put_r(c, x + 24, y, v, ROLE_DEFAULT, 0);
            put_int_r(c, x + 32, y, k, k ? ROLE_BAR_LOW : ROLE_DEFAULT);
        }
        if (a->spec_sel == s) select_row(a, c, r, y);
    }
    y++;
    if (y >= r.y + r.h) return;
    canvas_text(c, x + 1, y, 4, "W", ROLE_HEADER, 0);
    put_r(c, x + 15, y, "shape", ROLE_HEADER, 0);
    snprintf(t, sizeof t, "%smax", a->th.utf8 ? g->sigma : "");
    put_r(c, x + 24, y, t, ROLE_HEADER, 0);
    put_r(c, x + 30, y, "srank", ROLE_HEADER, 0);
    snprintf(t, sizeof t, "aw<%s", g->tau);
    put_r(c, x + 37, y, t, ROLE_HEADER, 0);
    snprintf(t, sizeof t, "<%s", g->tau);
    if (with_plain) put_r(c, x + 42, y, t, ROLE_HEADER, 0);
    y++;
    for (int i = 0; i < b->n_weights && y < r.y + r.h; i++, y++) {
        const cce_weight_spectrum *w = &b->weights[i];
        canvas_text(c, x + 1, y, 4, w->name, ROLE_DEFAULT, 0);
        snprintf(t, sizeof t, "%dx%d", w->rows, w->cols);
        put_r(c, x + 15, y, t, ROLE_DEFAULT, 0);
        fmt_num(w->sv ? w->sv[0] : 0, v, sizeof v);
        put_r(c, x + 24, y, v, ROLE_DEFAULT, 0);
        fmt_num(w->stable_rank, v, sizeof v);
        put_r(c, x + 30, y, v, ROLE_DEFAULT, 0);
        int k = cce_spectrum_count_below(w->sv_aw, w->n, (float)a->knob[KNOB_TAU]);
        int kp = cce_spectrum_count_below(w->sv, w->n, (float)a->knob[KNOB_TAU]);
        put_int_r(c, x + 37, y, k, k ? ROLE_BAR_LOW : ROLE_DEFAULT);
        if (with_plain) put_int_r(c, x + 42, y, kp, ROLE_DIM);
        if (a->spec_sel == CCE_COV_COUNT + i) select_row(a, c, r, y);
    }
    const char *notes[] = {"srank: stable rank |W|_F^2/|W|_2^2", "aw: activation-aware sigma(W L)",
                           with_plain ? "last column: plain sigma(W)" : "", "Up/Down: site  n/p: block"};
    y++;
    for (int i = 0; i < 4 && y < r.y + r.h; i++)
        if (*notes[i]) canvas_text(c, x + 1, y++, r.w - 1, notes[i], ROLE_DIM, 0);
}

/* Decade label: "1", "1e-3". */
static void decade(int e, char *buf, size_t cap) {
    if (e == 0) snprintf(buf, cap, "1");
    else snprintf(buf, cap, "1e%d", e);
}

static double rel_log(float v, float vmax, double bot) {
    if (!(v > 0) || !(vmax > 0)) return bot - 1;
    double y = log10((double)v / vmax);
    return y;
}

/* The plot of s in r: title row, bars, x axis, legend row. */
static void draw_plot(app *a, canvas *c, rect r, const spec_sel *s, int layer) {
    const theme_glyphs *g = &a->th.g;
    float vmax = s->v[0];
    int k = cce_spectrum_count_below(s->v, s->n, (float)s->thresh);
    char title[256], tv[32];
    knob_format(s->is_weight ? KNOB_TAU : KNOB_EPS, s->thresh, tv, sizeof tv);
    const char *sym = s->is_weight ? g->sigma : g->lambda, *kn = s->is_weight ? g->tau : g->eps;
    snprintf(title, sizeof title, "block %d %s: %d %s %s/%smax", layer, s->name, s->n,
             s->is_weight ? "singular values" : "eigenvalues", sym, sym);
    canvas_text(c, r.x, r.y, r.w, title, ROLE_HEADER, 0);
    snprintf(title, sizeof title, "%d of %d below %s%s%smax (%s %s)", k, s->n, kn, a->th.utf8 ? "·" : "*", sym, kn, tv);
    canvas_text(c, r.x, r.y + 1, r.w, title, k ? ROLE_BAR_LOW : ROLE_ACCENT, 0);
    int lab_w = 6;
    rect p = {r.x + lab_w, r.y + 2, r.w - lab_w, r.h - 4};
    if (p.w < 4 || p.h < 3) return;
    /* range: the decades from the smallest positive value (and the threshold) up to 1 */
    double bot = 0;
    for (int i = 0; i < s->n; i++) {
        double y = rel_log(s->v[i], vmax, -12);
        if (s->v[i] > 0 && y < bot) bot = y;
        if (s->v2 && s->v2[0] > 0 && s->v2[i] > 0) {
            double y2 = log10((double)s->v2[i] / s->v2[0]);
            if (y2 < bot) bot = y2;
        }
    }
    if (s->thresh > 0 && log10(s->thresh) < bot) bot = log10(s->thresh);
    bot -= 0.15;   // a little room under the smallest value (or the threshold line)
    if (bot < -12) bot = -12;
    if (bot > -1) bot = -1;
    double span = -bot;
    int bw = p.w / s->n;
    bw = bw < 1 ? 1 : bw > 3 ? 3 : bw;
    int ncol = s->n * bw <= p.w ? s->n * bw : p.w;
    int thr_row = s->thresh > 0 ? p.y + p.h - 1 - (int)floor((log10(s->thresh) - bot) / span * p.h) : -1;
    for (int col = 0; col < ncol; col++) {
        int i = bw > 1 || s->n <= p.w ? col / bw : (int)((long)col * s->n / ncol);
        double y = rel_log(s->v[i], vmax, bot);
        int low = (float)s->v[i] < (float)s->thresh * vmax || !(vmax > 0);
        int role = low ? ROLE_BAR_LOW : ROLE_BAR;
        int e8 = y < bot ? 0 : (int)lround((y - bot) / span * p.h * 8);
        if (e8 == 0) canvas_put(c, p.x + col, p.y + p.h - 1, g->vbar[1], ROLE_BAR_LOW, 0);
        for (int row = 0; row < p.h; row++) {
            int e = e8 - row * 8;
            if (e <= 0 || (low && e < 4)) break;
            /* below the threshold every cell is the "low" glyph (half a cell or more), so the
             * redundant part reads the same without colour */
            const char *gl = low ? g->low : e >= 8 ? g->full : g->vbar[e];
            canvas_put(c, p.x + col, p.y + p.h - 1 - row, gl, role, 0);
        }
        if (s->v2 && s->v2[0] > 0 && s->v2[i] > 0) {
            double y2 = log10((double)s->v2[i] / s->v2[0]);
            int row = (int)floor((y2 - bot) / span * p.h);
            if (row >= p.h) row = p.h - 1;
            if (row >= 0 && (col % bw == bw / 2)) canvas_put(c, p.x + col, p.y + p.h - 1 - row, g->dot, ROLE_BAR_ALT, 0);
        }
    }
    if (thr_row >= p.y && thr_row < p.y + p.h)   // the threshold crosses the bars too
        for (int x = p.x; x < p.x + p.w; x++) canvas_put(c, x, thr_row, g->thresh, ROLE_THRESH, 0);
    if (thr_row >= p.y && thr_row < p.y + p.h) canvas_text(c, r.x, thr_row, lab_w - 1, kn, ROLE_THRESH, 0);
    /* decade labels */
    int step = 1;
    while (span / step > p.h / 2.0) step++;
    for (int e = 0; e >= (int)ceil(bot); e -= step) {
        int row = p.y + p.h - 1 - (int)floor((e - bot) / span * p.h);
        if (row < p.y) row = p.y;
        if (row == thr_row) continue;
        char lab[16];
        decade(e, lab, sizeof lab);
        canvas_printf(c, r.x, row, lab_w - 1, ROLE_AXIS, 0, "%*s", lab_w - 1, lab);
    }
    /* x axis: first, middle and last index */
    int ay = p.y + p.h;
    for (int x = p.x; x < p.x + ncol; x++) canvas_put(c, x, ay, g->hline, ROLE_AXIS, 0);
    canvas_printf(c, p.x, ay + 1, 6, ROLE_AXIS, 0, "%d", 0);
    char lab[16];
    snprintf(lab, sizeof lab, "%d", s->n - 1);
    int lx = p.x + ncol - (int)strlen(lab);
    if (lx > p.x + 2) canvas_text(c, lx, ay + 1, 8, lab, ROLE_AXIS, 0);
    if (ncol > 20) {
        snprintf(lab, sizeof lab, "%d", s->n / 2);
        canvas_text(c, p.x + ((s->n / 2) * ncol / s->n) - (int)strlen(lab) / 2, ay + 1, 8, lab, ROLE_AXIS, 0);
    }
    /* legend, right-aligned on the second title row */
    char leg[160];
    if (s->is_weight)
        snprintf(leg, sizeof leg, "%s %s aware  %s %s(W) plain  %s %s", g->full, g->sigma_aw, g->dot, g->sigma, g->thresh, kn);
    else snprintf(leg, sizeof leg, "%s %s/%smax  %s below  %s %s", g->full, sym, sym, g->low, g->thresh, kn);
    int lw = canvas_text_width(leg), tw = canvas_text_width(title);
    if (tw + lw + 2 <= r.w) canvas_text(c, r.x + r.w - lw, r.y + 1, lw, leg, ROLE_DIM, 0);
}

static void spectrum_draw(app *a, canvas *c, rect r) {
    const cce_block_result *b = tui_block(a, a->layer);
    if (!b) {
        char why[256];
        tui_block_missing(a, a->layer, why, sizeof why);
        draw_center(c, r, r.y + r.h / 2, why, ROLE_DIM, 0);
        return;
    }
    if (a->spec_sel >= n_rows(b)) a->spec_sel = n_rows(b) - 1;
    int tw = r.w >= 100 ? TABLE_W : r.w >= 76 ? 38 : 0;
    if (tw) {
        draw_table(a, c, (rect){r.x, r.y, tw, r.h}, b, tw >= TABLE_W);
        for (int y = r.y; y < r.y + r.h; y++) canvas_put(c, r.x + tw, y, a->th.g.vline, ROLE_DIM, 0);
    }
    spec_sel s;
    rect pr = {r.x + tw + (tw ? 2 : 1), r.y, r.w - tw - (tw ? 3 : 2), r.h};
    if (!get_sel(a, b, a->spec_sel, &s)) {
        draw_center(c, pr, r.y + r.h / 2, "no values at this site (dropped block)", ROLE_DIM, 0);
        return;
    }
    draw_plot(a, c, pr, &s, a->layer);
}

static int spectrum_move(app *a, move_kind m) {
    const cce_block_result *b = tui_block(a, a->layer);
    int n = n_rows(b);
    switch (m) {
    case MOVE_UP: a->spec_sel--; break;
    case MOVE_DOWN: a->spec_sel++; break;
    case MOVE_HOME: case MOVE_PGUP: a->spec_sel = 0; break;
    case MOVE_END: case MOVE_PGDN: a->spec_sel = n - 1; break;
    case MOVE_LEFT: a->spec_sel = a->spec_sel >= CCE_COV_COUNT ? 0 : a->spec_sel; break;
    case MOVE_RIGHT: a->spec_sel = a->spec_sel < CCE_COV_COUNT ? CCE_COV_COUNT : a->spec_sel; break;
    default: return R_NONE;
    }
    if (a->spec_sel < 0) a->spec_sel = 0;
    if (a->spec_sel > n - 1) a->spec_sel = n - 1;
    return R_REDRAW;
}

const view_ops view_spectrum = {"spectrum", "spectra", "Spectrum", spectrum_draw, spectrum_move};
