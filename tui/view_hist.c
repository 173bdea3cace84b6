/*
 * view_hist.c — activation distributions of the selected block, one panel per tap site
 * (attention input, per-head outputs, attention output, FFN input, FFN activation, block
 * output), or one site large (z).
 *
 * Each histogram has fixed, symmetric bins over [-hi, hi) chosen from the first calibration
 * batch (include/stats.h) plus an outside count on each side; the panel shows the bins as
 * vertical bars with eighth-cell resolution, the range, and the number of values outside it.
 * Counts are on a log scale by default (y: linear): the tails and outliers, which compression
 * disturbs first, vanish on a linear scale. With fewer columns than bins, k adjacent bins share
 * a column, drawn at their mean count, so the shape is not distorted.
 *
 * After a commit, the committed model's histogram of the same block and site (engine/histo.c:
 * the same calibration windows, the same bin edges) is drawn over the original's as a dot at
 * the top of each of its columns, its counts scaled to the original's total so the two shapes
 * compare (a pruned site has fewer values); the panel title gives their total variation
 * distance (½ Σ|p − q| over the bins, 0 = the same distribution). A site the committed model
 * does not run (a dropped sublayer or block) says so.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tui.h"

static const cce_hist *site_hist(const cce_block_result *b, int s) {
    return b && b->hist[s].n_bins > 0 && b->hist[s].counts && b->hist[s].total ? &b->hist[s] : NULL;
}

/* Bars of h in p (rows bottom-up). With fewer columns than bins, k adjacent bins (k the same
 * for every column) share a column and its height is their mean count, so no column looks
 * taller just because it holds more bins. */
/* Column col's mean count of h (k bins per column, or per columns per bin), times scale. */
static double column_value(const cce_hist *h, int col, int k, int per, double scale) {
    double v = 0;
    int nbin = 0;
    if (k == 1) v = (double)h->counts[1 + col / per], nbin = 1;
    else
        for (int b = col * k; b < (col + 1) * k && b < h->n_bins; b++) v += (double)h->counts[1 + b], nbin++;
    return nbin ? scale * v / nbin : 0;
}

/* The committed model's histogram of block l, site s, when it has the same bins as h. */
static const cce_hist *committed_hist(const app *a, int l, int s, const cce_hist *h) {
    if (!a->committed || !h) return NULL;
    const cce_hist *x = cce_histo_get(&a->committed->histo, l, s);
    return x && x->total && x->n_bins == h->n_bins && x->lo == h->lo && x->hi == h->hi ? x : NULL;
}

static void draw_bars(app *a, canvas *c, rect p, const cce_hist *h, const cce_hist *cmp, int labels) {
    int nb = h->n_bins;
    int k = (nb + p.w - 1) / p.w;                 // bins per column
    int per = p.w >= nb ? p.w / nb : 1;           // columns per bin
    if (per > 3) per = 3;
    int ncol = k > 1 ? (nb + k - 1) / k : nb * per;
    if (ncol > 4096) ncol = 4096;
    int x0 = p.x + (p.w - ncol) / 2;
    double colv[4096], cmpv[4096];
    double vmax = 0, scale = cmp ? (double)h->total / (double)cmp->total : 0;
    for (int col = 0; col < ncol; col++) {
        colv[col] = column_value(h, col, k, per, 1.0);
        cmpv[col] = cmp ? column_value(cmp, col, k, per, scale) : 0;
        if (colv[col] > vmax) vmax = colv[col];
        if (cmpv[col] > vmax) vmax = cmpv[col];
    }
    for (int col = 0; col < ncol; col++) {
        double f = vmax > 0 ? (a->hist_log ? log1p(colv[col]) / log1p(vmax) : colv[col] / vmax) : 0;
        int e8 = (int)lround(f * p.h * 8);
        if (colv[col] > 0 && e8 == 0) e8 = 1;   // a non-empty bin is never invisible
        for (int row = 0; row < p.h && e8 > row * 8; row++) {
            int e = e8 - row * 8;
            canvas_put(c, x0 + col, p.y + p.h - 1 - row, a->th.g.vbar[e > 8 ? 8 : e], ROLE_BAR, 0);
        }
        if (cmp && cmpv[col] > 0) {   // the committed model's column: a dot at its height
            double g = vmax > 0 ? (a->hist_log ? log1p(cmpv[col]) / log1p(vmax) : cmpv[col] / vmax) : 0;
            int row = (int)lround(g * p.h) - 1;
            if (row < 0) row = 0;
            if (row > p.h - 1) row = p.h - 1;
            canvas_put(c, x0 + col, p.y + p.h - 1 - row, a->th.g.dot, ROLE_ACCENT, ATTR_BOLD);
        }
    }
    if (!labels) return;
    /* x axis labels: -hi, 0, hi */
    char lo[16], hi[16];
    fmt_num(h->lo, lo, sizeof lo);
    fmt_num(h->hi, hi, sizeof hi);
    int ay = p.y + p.h;
    canvas_text(c, x0, ay, 8, lo, ROLE_AXIS, 0);
    canvas_text(c, x0 + ncol / 2, ay, 1, "0", ROLE_AXIS, 0);
    canvas_text(c, x0 + ncol - (int)strlen(hi), ay, 8, hi, ROLE_AXIS, 0);
}

/* The range and outside counts in the longest form that fits w (numbers are never cut). */
static void stats_line(app *a, canvas *c, int x, int y, int w, const cce_hist *h, int verbose) {
    char mn[16], mx[16], t[4][256];
    fmt_num(h->min, mn, sizeof mn);
    fmt_num(h->max, mx, sizeof mx);
    unsigned long long below = h->counts[0], above = h->counts[h->n_bins + 1], out = below + above;
    snprintf(t[0], sizeof t[0], "%llu values, min %s, max %s; %llu below and %llu at or above the range (%d bins)",
             (unsigned long long)h->total, mn, mx, below, above, h->n_bins);
    snprintf(t[1], sizeof t[1], "min %s max %s out %llu", mn, mx, out);
    snprintf(t[2], sizeof t[2], "%s..%s out %llu", mn, mx, out);
    snprintf(t[3], sizeof t[3], "out %llu", out);
    for (int i = verbose ? 0 : 1; i < 4; i++)
        if (canvas_text_width(t[i]) <= w) {
            canvas_text(c, x, y, w, t[i], ROLE_DIM, 0);
            return;
        }
}

static void draw_panel(app *a, canvas *c, rect r, const cce_block_result *b, int s, int selected, int verbose) {
    const cce_hist *h = site_hist(b, s);
    const cce_hist *cmp = committed_hist(a, a->layer, s, h);
    char title[96], tv[48] = "";
    if (cmp) snprintf(tv, sizeof tv, "  TV %.3f", cce_hist_tv_distance(h, cmp));
    else if (h && a->committed) snprintf(tv, sizeof tv, "  dropped");
    snprintf(title, sizeof title, "%s%s%s", cce_tap_site_name((cce_tap_site)s), selected && !verbose ? " *" : "", tv);
    draw_box(a, c, r, title, selected ? ROLE_ACCENT : ROLE_DIM);
    if (selected) canvas_set_role(c, (rect){r.x + 1, r.y, canvas_text_width(title) + 2, 1}, ROLE_TAB_ACTIVE);
    rect in = {r.x + 1, r.y + 1, r.w - 2, r.h - 2};
    if (!h) {
        draw_center(c, in, in.y + in.h / 2, "no values at this site", ROLE_DIM, 0);
        return;
    }
    /* bars first; the range labels and the stats line when there are rows for them */
    int extra = in.h >= 5 ? 2 : in.h >= 3 ? 1 : 0;
    draw_bars(a, c, (rect){in.x, in.y, in.w, in.h - extra}, h, cmp, extra >= 1);
    if (extra == 2) stats_line(a, c, in.x, in.y + in.h - 1, in.w, h, verbose);
}

static void hist_draw(app *a, canvas *c, rect r) {
    const cce_block_result *b = tui_block(a, a->layer);
    if (!b) {
        char why[256];
        tui_block_missing(a, a->layer, why, sizeof why);
        draw_center(c, r, r.y + r.h / 2, why, ROLE_DIM, 0);
        return;
    }
    if (a->hist_sel < 0 || a->hist_sel >= CCE_TAP_COUNT) a->hist_sel = 0;
    char t[300], t2[200];
    snprintf(t, sizeof t, "block %d activations, %s counts  (arrows: site, z: %s, y: %s scale)", a->layer,
             a->hist_log ? "log" : "linear", a->hist_zoom ? "all sites" : "zoom", a->hist_log ? "linear" : "log");
    if (a->committed) snprintf(t2, sizeof t2, "   %s original  %s committed #%d%s", a->th.g.full, a->th.g.dot, a->n_commits,
                               a->committed_same ? "" : " (an earlier plan)");
    else snprintf(t2, sizeof t2, "   original (C commits the plan; its histograms are drawn over these)");
    if (canvas_text_width(t) + canvas_text_width(t2) > r.w - 2 && a->committed)   // the legend matters more than the key hints
        snprintf(t, sizeof t, "block %d activations, %s counts", a->layer, a->hist_log ? "log" : "linear");
    int x = r.x + 1 + canvas_text(c, r.x + 1, r.y, r.w - 2, t, ROLE_HEADER, 0);
    if (x < r.x + r.w - 2) canvas_text(c, x, r.y, r.x + r.w - 1 - x, t2, a->committed ? ROLE_ACCENT : ROLE_DIM, 0);
    rect area = {r.x, r.y + 1, r.w, r.h - 1};
    if (a->hist_zoom) {
        draw_panel(a, c, area, b, a->hist_sel, 1, 1);
        return;
    }
    /* 2 x 3 or 3 x 2 panels, whichever gives the bars more cells (rows capped at 12) */
    int best = 2, best_score = -1;
    for (int k = 2; k <= 3; k++) {
        int pr = (CCE_TAP_COUNT + k - 1) / k, bars = area.h / pr - 6;
        int score = (bars < 0 ? 0 : bars > 12 ? 12 : bars + 1) * (area.w / k - 2);
        if (score > best_score) best = k, best_score = score;
    }
    a->hist_cols = best;
    int cols = best, rows = (CCE_TAP_COUNT + cols - 1) / cols;
    int pw = area.w / cols, ph = area.h / rows;
    for (int s = 0; s < CCE_TAP_COUNT; s++) {
        rect p = {area.x + (s % cols) * pw, area.y + (s / cols) * ph, pw, ph};
        draw_panel(a, c, p, b, s, s == a->hist_sel, 0);
    }
}

static int hist_move(app *a, move_kind m) {
    int cols = a->hist_cols ? a->hist_cols : 2;
    int s = a->hist_sel;
    switch (m) {
    case MOVE_LEFT: s--; break;
    case MOVE_RIGHT: s++; break;
    case MOVE_UP: s -= a->hist_zoom ? 1 : cols; break;
    case MOVE_DOWN: s += a->hist_zoom ? 1 : cols; break;
    case MOVE_HOME: s = 0; break;
    case MOVE_END: s = CCE_TAP_COUNT - 1; break;
    default: return R_NONE;
    }
    if (s < 0) s = a->hist_zoom ? CCE_TAP_COUNT - 1 : a->hist_sel;
    if (s >= CCE_TAP_COUNT) s = a->hist_zoom ? 0 : a->hist_sel;
    a->hist_sel = s;
    return R_REDRAW;
}

const view_ops view_hist = {"histograms", "hist", "Histograms", hist_draw, hist_move};
