/*
 * view_layers.c — one row per block, the selected block's details below.
 *
 * The table is a list of column descriptors (header, group, width, priority, cell printer).
 * Columns are kept by priority until the width is used up and then drawn in table order, so a
 * narrow terminal loses the least important columns first instead of wrapping (htop's
 * approach). The plan's columns come first (heads kept/total, KV heads kept, FFN kept/total,
 * factorised matrices, drop, L_rec with a bar, L_sim, L_reg, L_CCE, parameters removed with a
 * bar): they are what the knobs change, and they follow every re-plan; the analysis columns
 * (distances, ε and τ counts, redundancy) follow while there is room.
 *
 * Shape and plan columns are there from the first frame (a block the analysis has not reached
 * is kept whole); analysis columns fill in as blocks finish, and a block still pending says so
 * in the rest of its row. ε counts are recomputed on every draw from the stored spectra
 * (cce_spectrum_count_below), so changing ε changes them at once; so are the τ counts.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tui.h"

typedef struct {
    double max_ang;      // largest angular distance among finished blocks (bar scale)
    double max_rec;      // largest planned L_rec (bar scale)
    const cce_plan *plan;
} col_ctx;

typedef struct {
    const char *group;   // header over a run of columns with the same group, or NULL
    const char *head;
    int width;
    int prio;            // 0 always shown; larger numbers go first when space runs out
    int needs_result;
    void (*cell)(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx);
} layer_col;

static void cell_num(canvas *c, int x, int y, int w, double v, int role) {
    char b[32];
    fmt_num(v, b, sizeof b);
    canvas_printf(c, x, y, w, role, 0, "%*s", w, b);
}

/* "k/n" centred on the slash, or "p%" of n when k/n does not fit in w (wide models). */
static void cell_count(canvas *c, int x, int y, int w, int k, int n) {
    draw_count(c, x, y, w, k, n, k > 0 ? ROLE_ACCENT : ROLE_DEFAULT);
}

static void c_blk(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    canvas_printf(c, x, y, w, ROLE_DEFAULT, 0, "%*d", w, l);
}

/* ---- plan columns: kept / total from the current plan (every block whole before the first) */

static const cce_block_plan *bplan(const col_ctx *cx, int l) {
    return cx->plan && l < cx->plan->n_blocks ? &cx->plan->blocks[l] : NULL;
}

static void c_pheads(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_layer *ly = &a->model->layers[l];
    const cce_block_plan *b = bplan(cx, l);
    int n = ly->dropped ? 0 : ly->n_heads, k = b ? b->n_heads : n;
    draw_count(c, x, y, w, k, n, k < n ? ROLE_ACCENT : ROLE_DEFAULT);
}

static void c_pkv(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_layer *ly = &a->model->layers[l];
    const cce_block_plan *b = bplan(cx, l);
    int n = ly->dropped ? 0 : ly->n_kv_heads, k = b ? b->n_kv_heads : n;
    draw_count(c, x, y, w, k, n, k < n ? ROLE_ACCENT : ROLE_DEFAULT);
}

static void c_pffn(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_layer *ly = &a->model->layers[l];
    const cce_block_plan *b = bplan(cx, l);
    int n = ly->dropped ? 0 : ly->hidden, k = b ? b->hidden : n;
    draw_count(c, x, y, w, k, n, k < n ? ROLE_ACCENT : ROLE_DEFAULT);
}

static void c_pranks(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_block_plan *b = bplan(cx, l);
    int k = 0;
    for (int i = 0; b && i < CCE_LIN_COUNT; i++) k += b->rank[i] > 0;
    if (k) draw_count(c, x, y, w, k, CCE_LIN_COUNT, ROLE_ACCENT);
    else canvas_printf(c, x, y, w, ROLE_DIM, 0, "%*s", w, "dense");
}

static void c_pdrop(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_block_plan *b = bplan(cx, l);
    const char *t = plan_drop_text(b);
    canvas_printf(c, x, y, w, strcmp(t, "-") ? ROLE_WARN : ROLE_DIM, 0, "%-*s", w, t);
}

static void c_prec(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_block_plan *b = bplan(cx, l);
    if (!b) return;
    cell_num(c, x, y, 6, b->L_rec, ROLE_DEFAULT);
    draw_hbar(a, c, x + 7, y, w - 7, cx->max_rec > 0 ? b->L_rec / cx->max_rec : 0, ROLE_BAR);
}

static void c_psim(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_block_plan *b = bplan(cx, l);
    if (b) cell_num(c, x, y, w, b->L_sim, ROLE_DEFAULT);
}

static void c_preg(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_block_plan *b = bplan(cx, l);
    if (b) cell_num(c, x, y, w, b->L_reg, ROLE_DEFAULT);
}

static void c_pcce(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_block_plan *b = bplan(cx, l);
    if (b) cell_num(c, x, y, w, b->L_cce, ROLE_ACCENT);
}

static void c_premoved(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    const cce_block_plan *b = bplan(cx, l);
    if (!b) return;
    double rm = (double)(b->params_before - b->params_after), f = b->params_before ? rm / (double)b->params_before : 0;
    char t[32];
    fmt_params_short(rm, t, sizeof t);
    canvas_printf(c, x, y, 6, ROLE_DEFAULT, 0, "%6s", t);
    draw_hbar(a, c, x + 7, y, w - 7, f, ROLE_BAR);
}

static void c_params(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    double p = (double)cce_layer_params(a->model, l);
    char b[32];
    if (p >= 1e9) snprintf(b, sizeof b, "%.2fG", p / 1e9);
    else if (p >= 1e6) snprintf(b, sizeof b, "%.2fM", p / 1e6);
    else if (p >= 1e4) snprintf(b, sizeof b, "%.1fk", p / 1e3);
    else snprintf(b, sizeof b, "%.0f", p);
    canvas_printf(c, x, y, w, ROLE_DEFAULT, 0, "%*s", w, b);
}

static void c_ang(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    canvas_printf(c, x, y, 6, ROLE_DEFAULT, 0, "%6.4f", r->angular_distance);
    draw_hbar(a, c, x + 7, y, w - 7, cx->max_ang > 0 ? r->angular_distance / cx->max_ang : 0, ROLE_BAR);
}

static void c_infl(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    canvas_printf(c, x, y, w, ROLE_DEFAULT, 0, "%*.4f", w, r->influence);
}

static void c_upd(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    cell_num(c, x, y, w, r->update_rms, ROLE_DEFAULT);
}

static void c_near(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    if (r->near_identity) canvas_printf(c, x, y, w, ROLE_WARN, 0, "%*s", w, a->th.g.flag);
    else canvas_printf(c, x, y, w, ROLE_DIM, 0, "%*s", w, "no");
}

static void c_eig(app *a, canvas *c, int x, int y, int w, int site, const cce_block_result *r) {
    const cce_spectrum *s = &r->eig[site];
    if (s->n <= 0) { canvas_printf(c, x, y, w, ROLE_DIM, 0, "%*s", w, "-"); return; }
    cell_count(c, x, y, w, cce_spectrum_count_below(s->values, s->n, (float)a->knob[KNOB_EPS]), s->n);
}
static void c_eig_attn(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) { c_eig(a, c, x, y, w, CCE_COV_ATTN_IN, r); }
static void c_eig_heads(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) { c_eig(a, c, x, y, w, CCE_COV_HEADS, r); }
static void c_eig_ffnin(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) { c_eig(a, c, x, y, w, CCE_COV_FFN_IN, r); }
static void c_eig_act(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) { c_eig(a, c, x, y, w, CCE_COV_FFN_ACT, r); }

static void c_rank(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    int k = 0, n = 0;
    for (int i = 0; i < r->n_weights; i++) {
        k += cce_spectrum_count_below(r->weights[i].sv_aw, r->weights[i].n, (float)a->knob[KNOB_TAU]);
        n += r->weights[i].n;
    }
    cell_count(c, x, y, w, k, n);
}

static void c_redund(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    if (r->dropped || r->n_heads <= 0) { canvas_printf(c, x, y, w, ROLE_DIM, 0, "%*s", w, "-"); return; }
    int h = r->head_order[0];
    canvas_printf(c, x, y, w, ROLE_DEFAULT, 0, "%*s", w, "");
    canvas_printf(c, x, y, w, ROLE_DEFAULT, 0, "h%-2d %4.2f", h, (double)r->head_score[h]);
}

static void c_nredund(app *a, canvas *c, int x, int y, int w, int l, const cce_block_result *r, const col_ctx *cx) {
    if (r->dropped || r->hidden <= 0) { canvas_printf(c, x, y, w, ROLE_DIM, 0, "%*s", w, "-"); return; }
    double s = 0;
    for (int i = 0; i < r->hidden; i++) s += r->neuron_score[i];
    canvas_printf(c, x, y, w, ROLE_DEFAULT, 0, "%*.2f", w, s / r->hidden);
}

/* Group headers use plain names; the Greek ones are put in by group_label(). */
static const layer_col cols[] = {
    {NULL, "blk", 3, 0, 0, c_blk},
    {"plan", "heads", 5, 0, 0, c_pheads},
    {"plan", "kv", 5, 3, 0, c_pkv},
    {"plan", "ffn", 9, 0, 0, c_pffn},
    {"plan", "lowrk", 5, 5, 0, c_pranks},
    {"plan", "drop", 5, 1, 0, c_pdrop},
    {"plan", "L_rec", 13, 2, 0, c_prec},
    {"plan", "L_sim", 6, 5, 0, c_psim},
    {"plan", "L_reg", 6, 5, 0, c_preg},
    {"plan", "L_CCE", 6, 1, 0, c_pcce},
    {"plan", "removed", 13, 1, 0, c_premoved},
    {"shape", "params", 7, 7, 0, c_params},
    {"distance", "angular", 14, 4, 1, c_ang},
    {"distance", "infl.", 6, 8, 1, c_infl},
    {"distance", "upd", 5, 9, 1, c_upd},
    {"distance", "near-id", 7, 8, 1, c_near},
    {"EIG", "attn_in", 9, 9, 1, c_eig_attn},
    {"EIG", "heads", 9, 7, 1, c_eig_heads},
    {"EIG", "ffn_in", 9, 9, 1, c_eig_ffnin},
    {"EIG", "ffn_act", 9, 4, 1, c_eig_act},
    {"RANK", "all W", 9, 8, 1, c_rank},
    {"redundancy", "top head", 8, 9, 1, c_redund},
    {"redundancy", "ffn", 4, 9, 1, c_nredund},
};
#define N_COLS (int)(sizeof cols / sizeof cols[0])

/* The group header that fits in w columns: the long form, else shorter ones. */
static void group_label(app *a, const char *group, int w, char *buf, size_t cap) {
    const theme_glyphs *g = &a->th.g;
    char v[32], forms[3][96];
    const char *mul = a->th.utf8 ? "·" : "*";
    if (!strcmp(group, "EIG")) {
        knob_format(KNOB_EPS, a->knob[KNOB_EPS], v, sizeof v);
        snprintf(forms[0], sizeof forms[0], "eigen directions %s < %s%s%smax (%s %s)", g->lambda, g->eps, mul, g->lambda, g->eps, v);
        snprintf(forms[1], sizeof forms[1], "%s < %s%s%smax (%s)", g->lambda, g->eps, mul, g->lambda, v);
        snprintf(forms[2], sizeof forms[2], "%s<%s", g->lambda, g->eps);
    } else if (!strcmp(group, "RANK")) {
        snprintf(forms[0], sizeof forms[0], "%s(WL)<%s", g->sigma, g->tau);
        snprintf(forms[1], sizeof forms[1], "%s<%s", g->sigma, g->tau);
        snprintf(forms[2], sizeof forms[2], "%s", g->tau);
    } else {
        snprintf(forms[0], sizeof forms[0], "%s", group);
        snprintf(forms[1], sizeof forms[1], "%.4s", group);
        snprintf(forms[2], sizeof forms[2], "%s", "");
    }
    for (int i = 0; i < 3; i++)
        if (canvas_text_width(forms[i]) <= w || i == 2) {
            snprintf(buf, cap, "%s", forms[i]);
            return;
        }
}

/* Which columns fit in width w: by priority, then in table order. Returns how many, in vis. */
static int choose_columns(int w, int *vis) {
    int keep[N_COLS] = {0}, used = 0;
    for (int p = 0; p <= 9; p++)
        for (int i = 0; i < N_COLS; i++)
            if (cols[i].prio == p && used + cols[i].width + 1 <= w) {
                keep[i] = 1;
                used += cols[i].width + 1;
            }
    int n = 0;
    for (int i = 0; i < N_COLS; i++)
        if (keep[i]) vis[n++] = i;
    return n;
}

static void draw_header(app *a, canvas *c, rect r, const int *vis, int nv) {
    int x = r.x + 1;
    for (int k = 0; k < nv; k++) {
        const layer_col *col = &cols[vis[k]];
        if (col->group && (k == 0 || !cols[vis[k - 1]].group || strcmp(cols[vis[k - 1]].group, col->group))) {
            int gw = 0;
            for (int j = k; j < nv && cols[vis[j]].group && !strcmp(cols[vis[j]].group, col->group); j++)
                gw += cols[vis[j]].width + 1;
            char label[128];
            group_label(a, col->group, gw - 3, label, sizeof label);
            for (int i = 0; i < gw - 1; i++) canvas_put(c, x + i, r.y, a->th.g.hline, ROLE_DIM, 0);
            int lw = canvas_text_width(label);
            if (lw > gw - 3) lw = gw - 3;
            if (lw > 0) canvas_text(c, x + (gw - 1 - lw - 2) / 2, r.y, lw + 2, " ", ROLE_DIM, 0);
            if (lw > 0) canvas_text(c, x + (gw - 1 - lw - 2) / 2 + 1, r.y, lw, label, ROLE_HEADER, 0);
            if (lw > 0) canvas_text(c, x + (gw - 1 - lw - 2) / 2 + 1 + lw, r.y, 1, " ", ROLE_DIM, 0);
        }
        int hw = canvas_text_width(col->head);
        canvas_text(c, x + (hw < col->width ? col->width - hw : 0), r.y + 1, col->width, col->head, ROLE_HEADER, ATTR_UNDERLINE);
        x += col->width + 1;
    }
}

/* What a row without results says in place of its analysis columns. */
static void pending_text(app *a, int l, char *buf, size_t cap) {
    int done, total;
    char phase[96];
    tui_progress(a, &done, &total, phase, sizeof phase);
    job_state s = worker_state(a->wk);
    const char *sp = strrchr(phase, ' ');
    if (a->model->layers[l].dropped) snprintf(buf, cap, "dropped block (identity)");
    else if (s == JOB_FAILED) snprintf(buf, cap, "no results: the analysis failed");
    else if (s == JOB_CANCELLED) snprintf(buf, cap, "no results: cancelled");
    else if (done - 1 == l && s == JOB_RUNNING && !worker_held(a->wk))
        snprintf(buf, cap, "%s analysing: %s", a->th.g.ellipsis, sp ? sp + 1 : phase);
    else if (done - 1 == l && worker_held(a->wk)) snprintf(buf, cap, "next (held by the script)");
    else snprintf(buf, cap, "pending");
}

static void draw_row(app *a, canvas *c, int y, int l, rect r, const int *vis, int nv, const col_ctx *cx) {
    const cce_block_result *res = tui_block(a, l);
    int x = r.x + 1;
    for (int k = 0; k < nv; k++) {
        const layer_col *col = &cols[vis[k]];
        if (col->needs_result && !res) {
            char why[200];
            pending_text(a, l, why, sizeof why);
            canvas_text(c, x, y, r.x + r.w - x - 1, why, ROLE_DIM, 0);
            break;
        }
        col->cell(a, c, x, y, col->width, l, res, cx);
        x += col->width + 1;
    }
    if (l == a->layer) {
        canvas_set_role(c, (rect){r.x, y, 1, 1}, ROLE_SELECTED);
        canvas_put(c, r.x, y, a->th.g.sel, ROLE_SELECTED, 0);
        for (int i = r.x + 1; i < r.x + r.w; i++) {
            canvas_cell *cell = canvas_at(c, i, y);
            if (cell && (cell->role == ROLE_DEFAULT || cell->role == ROLE_DIM)) cell->role = ROLE_SELECTED;
        }
    }
}

/* ------------------------------------------------------------------ the detail panel */

/* One detail line, wrapped onto indented continuation rows while rows remain. */
static void detail_line(canvas *c, rect r, int *y, const char *text, int role) {
    *y += draw_wrapped(c, r.x + 1, *y, r.w - 2, r.y + r.h - *y, text, role, 2);
}

static void draw_detail_redundancy(app *a, canvas *c, rect r, int *y, const cce_block_result *b) {
    char line[512];
    size_t o = (size_t)snprintf(line, sizeof line, "heads in pruning order (redundancy score, 1 = predicted by the rest):");
    for (int i = 0; i < b->n_heads && i < 6 && o < sizeof line; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, " h%d %.2f", b->head_order[i], (double)b->head_score[b->head_order[i]]);
    detail_line(c, r, y, line, ROLE_DEFAULT);
    o = (size_t)snprintf(line, sizeof line, "FFN neurons in pruning order:");
    for (int i = 0; i < b->hidden && i < 8 && o < sizeof line; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, " n%d %.2f", b->neuron_order[i], (double)b->neuron_score[b->neuron_order[i]]);
    detail_line(c, r, y, line, ROLE_DEFAULT);
}

/* One line over all finished blocks: how many, the ε and τ counts summed, near-identity ones. */
static void draw_summary(app *a, canvas *c, rect r, int *y) {
    const theme_glyphs *g = &a->th.g;
    int L = tui_n_layers(a), done = 0, k[CCE_COV_COUNT] = {0}, n[CCE_COV_COUNT] = {0}, kr = 0, nr = 0;
    char near[128] = "";
    size_t no = 0;
    for (int l = 0; l < L; l++) {
        const cce_block_result *b = tui_block(a, l);
        if (!b) continue;
        done++;
        for (int s = 0; s < CCE_COV_COUNT; s++) {
            k[s] += cce_spectrum_count_below(b->eig[s].values, b->eig[s].n, (float)a->knob[KNOB_EPS]);
            n[s] += b->eig[s].n;
        }
        for (int i = 0; i < b->n_weights; i++) {
            kr += cce_spectrum_count_below(b->weights[i].sv_aw, b->weights[i].n, (float)a->knob[KNOB_TAU]);
            nr += b->weights[i].n;
        }
        if (b->near_identity && no < sizeof near - 8) no += (size_t)snprintf(near + no, sizeof near - no, " %d", l);
    }
    if (!done) return;
    char line[512];
    size_t o = (size_t)snprintf(line, sizeof line, "%d/%d blocks: %s<%s", done, L, g->lambda, g->eps);
    for (int s = 0; s < CCE_COV_COUNT && o < sizeof line; s++)
        o += (size_t)snprintf(line + o, sizeof line - o, " %s %d/%d", cce_cov_site_name((cce_cov_site)s), k[s], n[s]);
    if (o < sizeof line)
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%s(WL)<%s %d/%d%snear-id:%s", a->th.utf8 ? " · " : " | ",
                              g->sigma, g->tau, kr, nr, a->th.utf8 ? " · " : " | ", no ? near : " none");
    detail_line(c, r, y, line, ROLE_ACCENT);
}

static void draw_detail(app *a, canvas *c, rect r) {
    const cce_model *m = a->model;
    int l = a->layer, y = r.y;
    draw_summary(a, c, r, &y);
    const cce_layer *ly = &m->layers[l];
    const theme_glyphs *g = &a->th.g;
    const char *dot = a->th.utf8 ? " · " : " | ";
    char line[512], v[32];
    char pc[32];
    fmt_count(cce_layer_params(m, l), pc, sizeof pc);
    snprintf(line, sizeof line, "block %d%s%d heads (%d KV, d_h %d)%sFFN %d%s%s parameters", l, dot, ly->n_heads,
             ly->n_kv_heads, m->cfg.head_dim, dot, ly->hidden, dot, pc);
    detail_line(c, r, &y, line, ROLE_HEADER);
    const cce_block_result *b = tui_block(a, l);
    if (!b) {
        tui_block_missing(a, l, line, sizeof line);
        detail_line(c, r, &y, line, ROLE_DIM);
        return;
    }
    int nd;
    const float *cka = cce_analysis_layer_cka(worker_job(a->wk), &nd);
    int L = tui_n_layers(a);
    size_t o = (size_t)snprintf(line, sizeof line, "angular distance %.4f%sinfluence %.4f%supdate rms %.3f%slayer CKA:",
                                b->angular_distance, dot, b->influence, dot, b->update_rms, dot);
    if (l > 0 && l - 1 < nd) o += (size_t)snprintf(line + o, sizeof line - o, " with %d %.3f", l - 1, (double)cka[l * L + l - 1]);
    if (l + 1 < nd) o += (size_t)snprintf(line + o, sizeof line - o, " with %d %.3f", l + 1, (double)cka[l * L + l + 1]);
    if (!(l > 0 && l - 1 < nd) && !(l + 1 < nd)) snprintf(line + o, sizeof line - o, " no neighbour analysed");
    detail_line(c, r, &y, line, ROLE_DEFAULT);
    snprintf(line, sizeof line, "near identity (angular distance < 1e-3, a drop candidate): %s", b->near_identity ? "yes" : "no");
    detail_line(c, r, &y, line, b->near_identity ? ROLE_WARN : ROLE_DEFAULT);
    knob_format(KNOB_EPS, a->knob[KNOB_EPS], v, sizeof v);
    o = (size_t)snprintf(line, sizeof line, "%s < %s%s%smax (%s %s):", g->lambda, g->eps, a->th.utf8 ? "·" : "*", g->lambda, g->eps, v);
    for (int s = 0; s < CCE_COV_COUNT && o < sizeof line; s++)
        if (b->eig[s].n > 0)
            o += (size_t)snprintf(line + o, sizeof line - o, " %s %d/%d", cce_cov_site_name((cce_cov_site)s),
                                  cce_spectrum_count_below(b->eig[s].values, b->eig[s].n, (float)a->knob[KNOB_EPS]), b->eig[s].n);
    detail_line(c, r, &y, line, ROLE_DEFAULT);
    knob_format(KNOB_TAU, a->knob[KNOB_TAU], v, sizeof v);
    o = (size_t)snprintf(line, sizeof line, "%s < %s%s%smax (%s %s):", g->sigma_aw, g->tau, a->th.utf8 ? "·" : "*", g->sigma, g->tau, v);
    for (int i = 0; i < b->n_weights && o < sizeof line; i++)
        o += (size_t)snprintf(line + o, sizeof line - o, " %s %d/%d", b->weights[i].name,
                              cce_spectrum_count_below(b->weights[i].sv_aw, b->weights[i].n, (float)a->knob[KNOB_TAU]),
                              b->weights[i].n);
    detail_line(c, r, &y, line, ROLE_DEFAULT);
    if (!b->dropped) draw_detail_redundancy(a, c, r, &y, b);
    char t[6][24];
    double ts[6] = {b->t_forward, b->t_stats, b->t_similarity, b->t_eigen, b->t_svd, b->t_redundancy};
    for (int i = 0; i < 6; i++) fmt_seconds(a, ts[i], t[i], sizeof t[i]);
    snprintf(line, sizeof line, "time: forward %s%sstats %s%ssimilarity %s%seigen %s%ssvd %s%sredundancy %s", t[0], dot,
             t[1], dot, t[2], dot, t[3], dot, t[4], dot, t[5]);
    detail_line(c, r, &y, line, ROLE_DIM);
}

/* ------------------------------------------------------------------ the view */

static void layers_draw(app *a, canvas *c, rect r) {
    int L = tui_n_layers(a);
    int vis[N_COLS];
    int nv = choose_columns(r.w - 2, vis);
    col_ctx cx = {.plan = tui_plan(a)};
    for (int l = 0; l < L; l++) {
        const cce_block_result *b = tui_block(a, l);
        if (b && b->angular_distance > cx.max_ang) cx.max_ang = b->angular_distance;
        if (cx.plan && cx.plan->blocks[l].L_rec > cx.max_rec) cx.max_rec = cx.plan->blocks[l].L_rec;
    }
    draw_header(a, c, r, vis, nv);
    /* every block if they fit, the detail panel in what is left (at least 3 rows); a model
     * taller than the screen gives a third of it (up to 10 rows) to the detail panel */
    int avail = r.h - 2;
    int rows = L <= avail ? L : avail;
    int detail_h = avail - rows - 1;
    if (L > rows) {
        int dw = avail / 3 < 10 ? avail / 3 : 10;
        if (dw >= 3) {
            rows = avail - dw - 1;
            detail_h = dw;
        }
    }
    if (detail_h < 3) detail_h = 0;
    if (rows < 1) rows = 1;
    a->page_rows = rows;
    if (a->layers_top > a->layer) a->layers_top = a->layer;
    if (a->layers_top < a->layer - rows + 1) a->layers_top = a->layer - rows + 1;
    if (a->layers_top > L - rows) a->layers_top = L - rows > 0 ? L - rows : 0;
    if (a->layers_top < 0) a->layers_top = 0;
    int top = a->layers_top;
    for (int i = 0; i < rows && top + i < L; i++) draw_row(a, c, r.y + 2 + i, top + i, r, vis, nv, &cx);
    if (top > 0) canvas_put(c, r.x + r.w - 1, r.y + 2, a->th.g.up, ROLE_DIM, 0);
    if (top + rows < L) canvas_put(c, r.x + r.w - 1, r.y + 1 + rows, a->th.g.down, ROLE_DIM, 0);
    if (detail_h) {
        int y = r.y + 2 + rows;
        for (int x = r.x; x < r.x + r.w; x++) canvas_put(c, x, y, a->th.g.hline, ROLE_DIM, 0);
        draw_detail(a, c, (rect){r.x, y + 1, r.w, r.y + r.h - y - 1});
    }
}

static int layers_move(app *a, move_kind m) {
    int L = tui_n_layers(a), l = a->layer, page = a->page_rows > 1 ? a->page_rows : 1;
    switch (m) {
    case MOVE_UP: l--; break;
    case MOVE_DOWN: l++; break;
    case MOVE_PGUP: l -= page; break;
    case MOVE_PGDN: l += page; break;
    case MOVE_HOME: l = 0; break;
    case MOVE_END: l = L - 1; break;
    default: return R_NONE;
    }
    if (l < 0) l = 0;
    if (l > L - 1) l = L - 1;
    a->layer = l;
    return R_REDRAW;
}

const view_ops view_layers = {"layers", "blocks", "Layers", layers_draw, layers_move};
