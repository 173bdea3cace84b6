/*
 * view_heatmap.c — similarity matrices as heatmaps with a cursor: L×L layer CKA (from the
 * whole analysis, filling in as blocks finish), H×H head CKA and G×G KV-group CKA of the
 * selected block.
 *
 * Cells are as square as a terminal allows (two columns per row), at most 3 rows tall; a
 * matrix larger than the screen scrolls to keep the cursor in sight. Values map to a 10-level
 * ramp over [0, 1] (CKA's range): with colour, a background colour and — when a cell is at
 * least five columns wide — its value printed inside; without colour, a glyph ramp (shades in
 * UTF-8, " .:-=+*#%@" in ASCII). The legend shows the ramp, and the readout line under the
 * matrix names the pair under the cursor and its value, so nothing depends on seeing colour.
 * Entries of the layer matrix not computed yet are dim dots.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tui.h"

typedef struct {
    const float *m;     // (n, n)
    int n, n_done;      // entries (i, j) with i, j < n_done are final
    const char *unit;   // "block", "head", "KV group"
    const char *what;   // what the value is
} heat_src;

static int get_src(app *a, int kind, heat_src *s, char *why, size_t cap) {
    memset(s, 0, sizeof *s);
    const cce_analysis *job = worker_job(a->wk);
    if (kind == 0) {
        if (!job) {
            snprintf(why, cap, "the analysis has not started yet");
            return 0;
        }
        s->m = cce_analysis_layer_cka(job, &s->n_done);
        s->n = tui_n_layers(a);
        s->unit = "block";
        s->what = "linear CKA of the blocks' centred updates h_l - h_(l-1)";
        return 1;
    }
    const cce_block_result *b = tui_block(a, a->layer);
    if (!b) {
        tui_block_missing(a, a->layer, why, cap);
        return 0;
    }
    if (b->dropped) {
        snprintf(why, cap, "block %d is dropped: it has no heads", a->layer);
        return 0;
    }
    s->m = kind == 1 ? b->head_cka : b->group_cka;
    s->n = s->n_done = kind == 1 ? b->n_heads : b->n_kv_heads;
    s->unit = kind == 1 ? "head" : "KV group";
    s->what = kind == 1 ? "linear CKA of head contributions o_h W_o[:,h]^T" : "linear CKA of KV-group contributions";
    return s->n > 0 && s->m;
}

static void draw_tabs(app *a, canvas *c, rect r) {
    static const char *names[3] = {"layers", "heads", "KV groups"};
    int x = r.x + 1;
    for (int k = 0; k < 3; k++) {
        char t[64];
        const cce_block_result *b = tui_block(a, a->layer);
        int n = k == 0 ? tui_n_layers(a) : b ? (k == 1 ? b->n_heads : b->n_kv_heads) : 0;
        const char *o = k == a->heat_kind ? "[" : " ", *cl = k == a->heat_kind ? "]" : " ";
        if (k == 0) snprintf(t, sizeof t, "%s%s %d%s%d%s", o, names[k], n, a->th.g.times, n, cl);
        else snprintf(t, sizeof t, "%s%s of block %d (%d)%s", o, names[k], a->layer, n, cl);
        x += canvas_text(c, x, r.y, r.x + r.w - x, t, k == a->heat_kind ? ROLE_TAB_ACTIVE : ROLE_DIM,
                         k == a->heat_kind ? ATTR_REVERSE : 0);
        x++;
    }
    canvas_text(c, x + 1, r.y, r.x + r.w - x - 1, "(m: next matrix)", ROLE_DIM, 0);
}

static void draw_cell(app *a, canvas *c, int x, int y, int cw, int ch, double v, int known, int cursor) {
    int lvl = theme_ramp_level(v, 0.0, 1.0);
    int colour = a->th.depth != DEPTH_NONE;
    for (int dy = 0; dy < ch; dy++)
        for (int dx = 0; dx < cw; dx++) {
            if (!known) canvas_put(c, x + dx, y + dy, dx == cw / 2 && dy == ch / 2 ? a->th.g.dot : " ", ROLE_DIM, 0);
            else if (colour) canvas_put(c, x + dx, y + dy, " ", ROLE_RAMP0 + lvl, 0);
            else canvas_put(c, x + dx, y + dy, a->th.g.ramp[lvl], ROLE_DEFAULT, 0);
        }
    if (known && cw >= 5) {
        char t[16];
        snprintf(t, sizeof t, "%4.2f", v);
        canvas_text(c, x + (cw - 4) / 2, y + ch / 2, 4, t, colour ? ROLE_RAMP0 + lvl : ROLE_DEFAULT, 0);
    }
    if (cursor) {
        canvas_add_attr(c, (rect){x, y, cw, ch}, ATTR_REVERSE | ATTR_BOLD);
        if (cw >= 3) {   // brackets: the cursor shows without colour or reverse video too
            canvas_put(c, x, y + ch / 2, "[", ROLE_CURSOR, ATTR_BOLD);
            canvas_put(c, x + cw - 1, y + ch / 2, "]", ROLE_CURSOR, ATTR_BOLD);
        }
    }
}

static void draw_legend(app *a, canvas *c, int x, int y, int h) {
    int colour = a->th.depth != DEPTH_NONE;
    int rows = h >= 12 ? 10 : h >= 6 ? 5 : 0;
    if (!rows) return;
    canvas_text(c, x, y, 8, "CKA", ROLE_HEADER, 0);
    for (int i = 0; i < rows; i++) {
        int lvl = 9 - i * 10 / rows;
        int yy = y + 1 + i;
        for (int dx = 0; dx < 2; dx++)
            canvas_put(c, x + dx, yy, colour ? " " : a->th.g.ramp[lvl], colour ? ROLE_RAMP0 + lvl : ROLE_DEFAULT, 0);
        char t[16];
        snprintf(t, sizeof t, "%.1f-%.1f", lvl / 10.0, (lvl + 1) / 10.0);
        canvas_text(c, x + 3, yy, 8, t, ROLE_AXIS, 0);
    }
}

static void clamp_cursor(app *a, int n) {
    if (a->heat_r < 0) a->heat_r = 0;
    if (a->heat_c < 0) a->heat_c = 0;
    if (a->heat_r > n - 1) a->heat_r = n - 1;
    if (a->heat_c > n - 1) a->heat_c = n - 1;
}

/* Two rows: the pair under the cursor and its value, then what the value means. */
static void readout(app *a, canvas *c, rect r, int y, const heat_src *s) {
    char t[512];
    int i = a->heat_r, j = a->heat_c;
    const char *x = a->th.g.times;
    if (i >= s->n_done || j >= s->n_done)
        snprintf(t, sizeof t, "%s %d %s %s %d: not computed yet", s->unit, i, x, s->unit, j);
    else if (a->heat_kind == 1 && a->model->layers[a->layer].n_kv_heads > 0) {
        const cce_block_result *b = tui_block(a, a->layer);
        int g = b->n_heads / (b->n_kv_heads > 0 ? b->n_kv_heads : 1);
        snprintf(t, sizeof t, "head %d %s head %d (KV groups %d, %d): CKA %.4f", i, x, j, i / g, j / g,
                 (double)s->m[(size_t)i * s->n + j]);
    } else
        snprintf(t, sizeof t, "%s %d %s %s %d: CKA %.4f", s->unit, i, x, s->unit, j, (double)s->m[(size_t)i * s->n + j]);
    canvas_text(c, r.x + 1, y, r.w - 2, t, ROLE_ACCENT, ATTR_BOLD);
    canvas_text(c, r.x + 1, y + 1, r.w - 2, s->what, ROLE_DIM, 0);
}

static void heatmap_draw(app *a, canvas *c, rect r) {
    draw_tabs(a, c, (rect){r.x, r.y, r.w, 1});
    heat_src s;
    char why[256];
    if (!get_src(a, a->heat_kind, &s, why, sizeof why)) {
        draw_center(c, r, r.y + r.h / 2, why, ROLE_DIM, 0);
        return;
    }
    clamp_cursor(a, s.n);
    int lab_w = 4, legend_w = 13;
    int aw = r.w - lab_w - legend_w - 2, ah = r.h - 5;
    if (aw < 2 || ah < 2) return;
    int ch = ah / s.n;
    ch = ch < 1 ? 1 : ch > 3 ? 3 : ch;
    int cw = 2 * ch;
    if (cw * s.n > aw) {
        cw = aw / s.n;
        if (cw < 1) cw = 1;
        if (ch > cw) ch = cw > 1 ? cw / 2 : 1;
        if (ch < 1) ch = 1;
    }
    int vr = ah / ch < s.n ? ah / ch : s.n, vc = aw / cw < s.n ? aw / cw : s.n;
    /* scroll only as far as needed to keep the cursor in view */
    if (a->heat_r0 > a->heat_r) a->heat_r0 = a->heat_r;
    if (a->heat_r0 < a->heat_r - vr + 1) a->heat_r0 = a->heat_r - vr + 1;
    if (a->heat_r0 > s.n - vr) a->heat_r0 = s.n - vr;
    if (a->heat_c0 > a->heat_c) a->heat_c0 = a->heat_c;
    if (a->heat_c0 < a->heat_c - vc + 1) a->heat_c0 = a->heat_c - vc + 1;
    if (a->heat_c0 > s.n - vc) a->heat_c0 = s.n - vc;
    if (a->heat_r0 < 0) a->heat_r0 = 0;
    if (a->heat_c0 < 0) a->heat_c0 = 0;
    int r0 = a->heat_r0, c0 = a->heat_c0;
    a->page_rows = vr;
    int mx = r.x + 1 + lab_w, my = r.y + 2;
    /* column labels: every label that fits */
    int step = cw >= 3 ? 1 : cw == 2 ? 2 : 4;
    for (int j = c0; j < c0 + vc; j++)
        if ((j - c0) % step == 0 || j == a->heat_c)
            canvas_printf(c, mx + (j - c0) * cw, my - 1, cw * step, j == a->heat_c ? ROLE_CURSOR : ROLE_AXIS, 0, "%d", j);
    for (int i = r0; i < r0 + vr; i++) {
        int y = my + (i - r0) * ch;
        canvas_printf(c, r.x + 1, y + ch / 2, lab_w - 1, i == a->heat_r ? ROLE_CURSOR : ROLE_AXIS, 0, "%*d", lab_w - 1, i);
        for (int j = c0; j < c0 + vc; j++) {
            int known = i < s.n_done && j < s.n_done;
            draw_cell(a, c, mx + (j - c0) * cw, y, cw, ch, known ? s.m[(size_t)i * s.n + j] : 0, known,
                      i == a->heat_r && j == a->heat_c);
        }
    }
    if (r0 > 0 || c0 > 0 || r0 + vr < s.n || c0 + vc < s.n)
        canvas_printf(c, mx, my + vr * ch, aw, ROLE_DIM, 0, "rows %d-%d, columns %d-%d of %d (arrows scroll)", r0,
                      r0 + vr - 1, c0, c0 + vc - 1, s.n);
    draw_legend(a, c, mx + vc * cw + 3, my, ah);
    readout(a, c, r, r.y + r.h - 2, &s);
}

static int heatmap_move(app *a, move_kind m) {
    int page = a->page_rows > 1 ? a->page_rows : 1;
    switch (m) {
    case MOVE_UP: a->heat_r--; break;
    case MOVE_DOWN: a->heat_r++; break;
    case MOVE_LEFT: a->heat_c--; break;
    case MOVE_RIGHT: a->heat_c++; break;
    case MOVE_PGUP: a->heat_r -= page; break;
    case MOVE_PGDN: a->heat_r += page; break;
    case MOVE_HOME: a->heat_r = a->heat_c = 0; break;
    case MOVE_END: a->heat_r = a->heat_c = 1 << 20; break;
    default: return R_NONE;
    }
    heat_src s;
    char why[8];
    if (get_src(a, a->heat_kind, &s, why, sizeof why)) clamp_cursor(a, s.n);
    else a->heat_r = a->heat_c = 0;
    return R_REDRAW;
}

const view_ops view_heatmap = {"heatmaps", "heatmap", "Heatmaps", heatmap_draw, heatmap_move};
