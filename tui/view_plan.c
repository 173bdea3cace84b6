/*
 * view_plan.c — the whole plan on one screen (DESIGN §4 Plan):
 *
 *   budget     a bar of the non-embedding parameters removed, with the target marked, and the
 *              counts (threshold mode says that ε and τ decide instead);
 *   predicted  the plan's L_rec, L_sim, L_reg and L_CCE with the knobs that weigh them; how many
 *              blocks the planner had; how long the last re-plan took (masked in dumps);
 *   the table  one row per block: heads kept/total, KV heads kept, FFN kept/total, ranks, drop,
 *              L_rec (with a bar), L_sim, L_reg, L_CCE, parameters removed (with a bar), and
 *              the pins (+) and forces (!) on the block;
 *   the block  the selected block's decisions in words, and a strip of its components (the
 *              block, its sublayers, its matrices, its heads, its neurons) with a cursor (← →):
 *              Space pins the one under the cursor, x forces it, u clears it; the planner
 *              re-plans at once;
 *   the commit the last commit's measured results next to the prediction: loss and perplexity,
 *              accuracy, non-embedding parameters, bytes and decoding tokens/s, before and
 *              after, and whether the plan on screen is still the committed one; during a
 *              commit, its phase and progress bar.
 * Sections lose rows in a fixed order when the screen is short (the strip's help line, then
 * the commit's detail, then block rows scroll), so 80×24 still shows every part.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tui.h"

/* ------------------------------------------------------------------ components */

int plan_n_components(const app *a, int l) {
    const cce_layer *L = &a->model->layers[l];
    if (L->dropped) return 0;
    return 3 + CCE_LIN_COUNT + L->n_heads + L->hidden;
}

int plan_component(const app *a, int l, int i, plan_comp *out) {
    if (l < 0 || l >= tui_n_layers(a)) return -1;
    const cce_layer *L = &a->model->layers[l];
    if (L->dropped || i < 0 || i >= plan_n_components(a, l)) return -1;
    static const char *drops[3] = {"block", "attn", "ffn"};
    static const int dkind[3] = {CCE_CURVE_DROP_BLOCK, CCE_CURVE_DROP_ATTN, CCE_CURVE_DROP_FFN};
    if (i < 3) {
        out->kind = dkind[i], out->index = -1;
        snprintf(out->label, sizeof out->label, "%s", drops[i]);
    } else if (i < 3 + CCE_LIN_COUNT) {
        out->kind = cce_curve_rank_of(i - 3), out->index = -1;
        snprintf(out->label, sizeof out->label, "%s", cce_lin_names[i - 3]);
    } else if (i < 3 + CCE_LIN_COUNT + L->n_heads) {
        out->kind = CCE_CURVE_HEADS, out->index = i - 3 - CCE_LIN_COUNT;
        snprintf(out->label, sizeof out->label, "h%d", out->index);
    } else {
        out->kind = CCE_CURVE_NEURONS, out->index = i - 3 - CCE_LIN_COUNT - L->n_heads;
        snprintf(out->label, sizeof out->label, "n%d", out->index);
    }
    return 0;
}

static int in_list(const int *v, int n, int x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return 1;
    return 0;
}

int plan_comp_removed(const app *a, int l, const plan_comp *c) {
    const cce_plan *p = tui_plan(a);
    if (!p || l >= p->n_blocks) return 0;
    const cce_block_plan *b = &p->blocks[l];
    switch (c->kind) {
    case CCE_CURVE_DROP_BLOCK: return b->drop;
    case CCE_CURVE_DROP_ATTN: return b->drop || b->drop_attn;
    case CCE_CURVE_DROP_FFN: return b->drop || b->drop_ffn;
    case CCE_CURVE_HEADS: return b->drop || b->drop_attn || in_list(b->heads_removed, b->n_heads_removed, c->index);
    case CCE_CURVE_NEURONS: return b->drop || b->drop_ffn || in_list(b->neurons_removed, b->n_neurons_removed, c->index);
    default: return b->rank[c->kind - CCE_CURVE_RANK_WQ] > 0;   // factorised
    }
}

/* ------------------------------------------------------------------ formatting */

static void fmt_bytes(double b, char *buf, size_t cap) {
    if (b >= 1e9) snprintf(buf, cap, "%.2f GB", b / 1e9);
    else if (b >= 1e6) snprintf(buf, cap, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, cap, "%.1f kB", b / 1e3);
    else snprintf(buf, cap, "%.0f B", b);
}

static void fmt_pct_change(double before, double after, char *buf, size_t cap) {
    if (before == 0) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%+.1f%%", 100.0 * (after - before) / before);
}

static int pins_on_block(const app *a, int l, int *forces) {
    int n = 0;
    *forces = 0;
    for (int i = 0; i < a->n_pins; i++) n += a->pins[i].block == l;
    for (int i = 0; i < a->n_forces; i++) *forces += a->forces[i].block == l;
    return n;
}

/* The first of n texts that fits in w columns (the last one, cut, when none does). */
static int text_fit(canvas *c, int x, int y, int w, const char *const *forms, int n, int role, int attr) {
    for (int i = 0; i < n; i++)
        if (canvas_text_width(forms[i]) <= w || i == n - 1) return canvas_text(c, x, y, w, forms[i], role, attr);
    return 0;
}

/* ------------------------------------------------------------------ sections */

static void draw_budget(app *a, canvas *c, rect r, int y, const cce_plan *p) {
    char line[512], kept[32], before[32];
    const theme_glyphs *g = &a->th.g;
    double target = p ? p->knobs.target : a->knob[KNOB_TARGET];
    int bar_w = r.w >= 100 ? 30 : 16;
    int x = r.x + 1;
    x += canvas_text(c, x, y, 8, "budget ", ROLE_HEADER, 0);
    double f = p ? p->removed_fraction : 0;
    draw_hbar(a, c, x, y, bar_w, f, ROLE_BAR);
    for (int i = 0; i < bar_w; i++) {   // the empty part, so the bar has an extent
        canvas_cell *cell = canvas_at(c, x + i, y);
        if (cell && !strcmp(cell->g, " ")) canvas_put(c, x + i, y, a->th.utf8 ? "·" : ".", ROLE_DIM, 0);
    }
    if (target > 0) {
        int tx = x + (int)lround(target * bar_w);
        if (tx >= x + bar_w) tx = x + bar_w - 1;
        canvas_put(c, tx, y, g->vline, ROLE_THRESH, 0);
    }
    x += bar_w + 1;
    if (!p) {
        canvas_text(c, x, y, r.x + r.w - x, "no plan yet", ROLE_DIM, 0);
        return;
    }
    fmt_count(p->params_before, before, sizeof before);
    fmt_count(p->params_after, kept, sizeof kept);
    char f2[256], f3[128];
    if (target > 0) {
        snprintf(line, sizeof line, "%.1f%% removed (target %.1f%%) of %s non-embedding parameters %s %s", 100 * f,
                 100 * target, before, g->right, kept);
        snprintf(f2, sizeof f2, "%.1f%% of %s removed (target %.1f%%) %s %s", 100 * f, before, 100 * target, g->right, kept);
        snprintf(f3, sizeof f3, "%.1f%% removed (target %.1f%%)", 100 * f, 100 * target);
    } else {
        snprintf(line, sizeof line, "threshold mode: %s and %s decide each block; %.1f%% of %s non-embedding parameters %s %s",
                 g->eps, g->tau, 100 * f, before, g->right, kept);
        snprintf(f2, sizeof f2, "thresholds %s %s decide: %.1f%% of %s removed", g->eps, g->tau, 100 * f, before);
        snprintf(f3, sizeof f3, "thresholds: %.1f%% removed", 100 * f);
    }
    int role = target > 0 && f + 1e-9 < target ? ROLE_WARN : ROLE_DEFAULT;
    const char *forms[3] = {line, f2, f3};
    text_fit(c, x, y, r.x + r.w - x - 1, forms, 3, role, 0);
}

static void draw_predicted(app *a, canvas *c, rect r, int y, const cce_plan *p) {
    char line[512], ms[32];
    const theme_glyphs *g = &a->th.g;
    const char *dot = a->th.utf8 ? " · " : " | ";
    int L = tui_n_layers(a);
    if (!p) return;
    char al[16], be[16], ga[16];
    fmt_num(p->knobs.alpha, al, sizeof al);   // the knobs this plan was made with
    fmt_num(p->knobs.beta, be, sizeof be);
    fmt_num(p->knobs.gamma, ga, sizeof ga);
    char rec[16], sim[16], reg[16], cc[16];
    fmt_num(p->L_rec, rec, sizeof rec);
    fmt_num(p->L_sim, sim, sizeof sim);
    fmt_num(p->L_reg, reg, sizeof reg);
    fmt_num(p->L_cce, cc, sizeof cc);
    int x = r.x + 1;
    x += canvas_text(c, x, y, 11, "predicted ", ROLE_HEADER, 0);
    /* "L_rec 0.132 · L_sim 0.0559 · L_reg 0.849 · L_CCE = 1·L_rec + 0·L_sim + 0·L_reg = 0.132" */
    const char *mul = a->th.utf8 ? "·" : "*";
    char f2[256];
    snprintf(line, sizeof line, "L_rec %s%sL_sim %s%sL_reg %s%sL_CCE = %s%sL_rec + %s%sL_sim + %s%sL_reg = ", rec, dot, sim, dot,
             reg, dot, al, mul, be, mul, ga, mul);
    snprintf(f2, sizeof f2, "L_rec %s%sL_sim %s%sL_reg %s%sL_CCE ", rec, dot, sim, dot, reg, dot);
    int room = r.x + r.w - x - 1 - (int)strlen(cc);
    const char *forms[2] = {line, f2};
    x += text_fit(c, x, y, room, forms, 2, ROLE_DEFAULT, 0);
    canvas_text(c, x, y, r.x + r.w - x, cc, ROLE_ACCENT, ATTR_BOLD);
    /* the next row: what the plan is made from, and how fresh it is */
    y++;
    if (a->mask_times) snprintf(ms, sizeof ms, "- ms");
    else snprintf(ms, sizeof ms, "%.2f ms", a->plan_ms);
    char state[200];
    if (a->plan_frozen) snprintf(state, sizeof state, "restored from session %s (kept until a knob, pin or force changes)", a->session_name);
    else if (a->plan_want != a->plan_have) snprintf(state, sizeof state, "re-planning%s", g->ellipsis);
    else snprintf(state, sizeof state, "re-plan %s", ms);
    snprintf(line, sizeof line, "%s%s%s mode%s%d/%d blocks%spins %d%sforces %d", state, dot,
             p->knobs.target > 0 ? "budget" : "threshold", dot, a->plan_blocks < 0 ? 0 : a->plan_blocks, L, dot,
             a->n_pins, dot, a->n_forces);
    canvas_text(c, r.x + 11, y, r.w - 12, line, ROLE_DIM, 0);
}

typedef struct {
    double max_rec, max_cce;
} table_ctx;

static const struct {
    const char *head;
    int width, prio;   // prio 0: always; higher drops first
} tcols[] = {
    {"blk", 3, 0}, {"heads", 7, 0}, {"kv", 5, 2}, {"ffn", 11, 0}, {"ranks", 16, 4}, {"drop", 5, 0},
    {"L_rec", 15, 1}, {"L_sim", 6, 5}, {"L_reg", 6, 5}, {"L_CCE", 7, 3}, {"removed", 17, 0}, {"pin", 5, 6},
};
enum { TC_BLK, TC_HEADS, TC_KV, TC_FFN, TC_RANKS, TC_DROP, TC_REC, TC_SIM, TC_REG, TC_CCE, TC_REMOVED, TC_PIN, TC_N };

static int choose(int w, int *vis) {
    int keep[TC_N] = {0}, used = 0, n = 0;
    for (int p = 0; p <= 6; p++)
        for (int i = 0; i < TC_N; i++)
            if (tcols[i].prio == p && used + tcols[i].width + 1 <= w) keep[i] = 1, used += tcols[i].width + 1;
    for (int i = 0; i < TC_N; i++)
        if (keep[i]) vis[n++] = i;
    return n;
}

static void draw_cell(app *a, canvas *c, int col, int x, int y, int w, int l, const cce_block_plan *b, const table_ctx *t,
                      int analysed) {
    const cce_layer *L = &a->model->layers[l];
    char buf[96];
    switch (col) {
    case TC_BLK: canvas_printf(c, x, y, w, ROLE_DEFAULT, 0, "%*d", w, l); break;
    case TC_HEADS: draw_count(c, x, y, w, b->n_heads, L->dropped ? 0 : L->n_heads, b->n_heads < L->n_heads ? ROLE_ACCENT : ROLE_DEFAULT); break;
    case TC_KV: draw_count(c, x, y, w, b->n_kv_heads, L->dropped ? 0 : L->n_kv_heads, b->n_kv_heads < L->n_kv_heads ? ROLE_ACCENT : ROLE_DEFAULT); break;
    case TC_FFN: draw_count(c, x, y, w, b->hidden, L->dropped ? 0 : L->hidden, b->hidden < L->hidden ? ROLE_ACCENT : ROLE_DEFAULT); break;
    case TC_RANKS:
        plan_ranks_text(a, l, b, buf, sizeof buf);
        canvas_text(c, x, y, w, buf, strcmp(buf, "dense") ? ROLE_ACCENT : ROLE_DIM, 0);
        break;
    case TC_DROP: canvas_printf(c, x, y, w, b->drop || b->drop_attn || b->drop_ffn ? ROLE_WARN : ROLE_DIM, 0, "%-*s", w, plan_drop_text(b)); break;
    case TC_REC:
        if (!analysed) { canvas_text(c, x, y, w, "not analysed", ROLE_DIM, 0); break; }
        fmt_num(b->L_rec, buf, sizeof buf);
        canvas_printf(c, x, y, 6, ROLE_DEFAULT, 0, "%6s", buf);
        draw_hbar(a, c, x + 7, y, w - 7, t->max_rec > 0 ? b->L_rec / t->max_rec : 0, ROLE_BAR);
        break;
    case TC_SIM: case TC_REG: case TC_CCE:
        if (!analysed) break;
        fmt_num(col == TC_SIM ? b->L_sim : col == TC_REG ? b->L_reg : b->L_cce, buf, sizeof buf);
        canvas_printf(c, x, y, w, col == TC_CCE ? ROLE_ACCENT : ROLE_DEFAULT, 0, "%*s", w, buf);
        break;
    case TC_REMOVED: {
        double rm = (double)(b->params_before - b->params_after), f = b->params_before ? rm / (double)b->params_before : 0;
        fmt_params_short(rm, buf, sizeof buf);   // negative: the refit's biases add a few
        canvas_printf(c, x, y, 6, ROLE_DEFAULT, 0, "%6s", buf);
        canvas_printf(c, x + 6, y, 5, ROLE_DIM, 0, "%4.0f%%", f > -0.005 && f < 0 ? 0.0 : 100 * f);
        draw_hbar(a, c, x + 12, y, w - 12, f, ROLE_BAR);
        break;
    }
    case TC_PIN: {
        int nf, np = pins_on_block(a, l, &nf);
        if (np || nf) {
            if (np && nf) snprintf(buf, sizeof buf, "+%d !%d", np, nf);
            else if (np) snprintf(buf, sizeof buf, "+%d", np);
            else snprintf(buf, sizeof buf, "!%d", nf);
            canvas_text(c, x, y, w, buf, ROLE_ACCENT, 0);
        }
        break;
    }
    }
}

static void draw_table(app *a, canvas *c, rect r, int y, int rows, const cce_plan *p) {
    int L = tui_n_layers(a), vis[TC_N];
    int nv = choose(r.w - 2, vis);
    table_ctx t = {0};
    for (int l = 0; l < L; l++) {
        if (p->blocks[l].L_rec > t.max_rec) t.max_rec = p->blocks[l].L_rec;
        if (p->blocks[l].L_cce > t.max_cce) t.max_cce = p->blocks[l].L_cce;
    }
    int x = r.x + 1;
    for (int k = 0; k < nv; k++) {
        const char *h = tcols[vis[k]].head;
        int hw = canvas_text_width(h), w = tcols[vis[k]].width;
        int right = vis[k] != TC_RANKS && vis[k] != TC_DROP && vis[k] != TC_PIN && vis[k] != TC_REC && vis[k] != TC_REMOVED;
        canvas_text(c, x + (right && hw < w ? w - hw : 0), y, w, h, ROLE_HEADER, ATTR_UNDERLINE);
        x += w + 1;
    }
    if (rows < 1) rows = 1;
    if (a->plan_top > a->layer) a->plan_top = a->layer;
    if (a->plan_top < a->layer - rows + 1) a->plan_top = a->layer - rows + 1;
    if (a->plan_top > L - rows) a->plan_top = L - rows > 0 ? L - rows : 0;
    if (a->plan_top < 0) a->plan_top = 0;
    for (int i = 0; i < rows && a->plan_top + i < L; i++) {
        int l = a->plan_top + i, yy = y + 1 + i;
        const cce_block_plan *b = &p->blocks[l];
        int analysed = tui_block(a, l) != NULL;
        x = r.x + 1;
        for (int k = 0; k < nv; k++) {
            draw_cell(a, c, vis[k], x, yy, tcols[vis[k]].width, l, b, &t, analysed);
            x += tcols[vis[k]].width + 1;
        }
        if (l == a->layer) {
            canvas_put(c, r.x, yy, a->th.g.sel, ROLE_SELECTED, 0);
            for (int q = r.x + 1; q < r.x + r.w; q++) {
                canvas_cell *cell = canvas_at(c, q, yy);
                if (cell && (cell->role == ROLE_DEFAULT || cell->role == ROLE_DIM)) cell->role = ROLE_SELECTED;
            }
        }
    }
    if (a->plan_top > 0) canvas_put(c, r.x + r.w - 1, y + 1, a->th.g.up, ROLE_DIM, 0);
    if (a->plan_top + rows < L) canvas_put(c, r.x + r.w - 1, y + rows, a->th.g.down, ROLE_DIM, 0);
}

/* The selected block's decisions in words (one or two rows). */
static int draw_block_words(app *a, canvas *c, rect r, int y, int max_rows, const cce_plan *p) {
    int l = a->layer;
    const cce_block_plan *b = &p->blocks[l];
    const cce_layer *L = &a->model->layers[l];
    const char *dot = a->th.utf8 ? " · " : " | ";
    char line[1024], rk[96], rm[32], bf[32];
    size_t o = (size_t)snprintf(line, sizeof line, "block %d: ", l);
    if (L->dropped) o += (size_t)snprintf(line + o, sizeof line - o, "already dropped in the model");
    else if (b->drop) o += (size_t)snprintf(line + o, sizeof line - o, "dropped (its update folded into the previous kept block)");
    else {
        o += (size_t)snprintf(line + o, sizeof line - o, "heads %d/%d", b->n_heads, L->n_heads);
        if (b->drop_attn) o += (size_t)snprintf(line + o, sizeof line - o, " (attention dropped)");
        else if (b->n_heads_removed) {
            o += (size_t)snprintf(line + o, sizeof line - o, " (removed");
            for (int i = 0; i < b->n_heads_removed && o < sizeof line - 8; i++)
                o += (size_t)snprintf(line + o, sizeof line - o, " h%d", b->heads_removed[i]);
            o += (size_t)snprintf(line + o, sizeof line - o, ")");
        }
        o += (size_t)snprintf(line + o, sizeof line - o, ", KV %d/%d%sFFN %d/%d", b->n_kv_heads, L->n_kv_heads, dot, b->hidden, L->hidden);
        if (b->drop_ffn) o += (size_t)snprintf(line + o, sizeof line - o, " (FFN dropped)");
        else if (b->n_neurons_removed) o += (size_t)snprintf(line + o, sizeof line - o, " (%d removed)", b->n_neurons_removed);
        plan_ranks_text(a, l, b, rk, sizeof rk);
        o += (size_t)snprintf(line + o, sizeof line - o, "%sranks %s", dot, rk);
    }
    fmt_count(b->params_before - b->params_after, rm, sizeof rm);
    fmt_count(b->params_before, bf, sizeof bf);
    if (o < sizeof line)
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%s of %s parameters removed", dot, rm, bf);
    return draw_wrapped(c, r.x + 1, y, r.w - 2, max_rows, line, ROLE_DEFAULT, 2);
}

/* The component strip: a window of the block's components around the cursor. */
static void draw_strip(app *a, canvas *c, rect r, int y) {
    int l = a->layer, n = plan_n_components(a, l);
    int x0 = r.x + 1, x1 = r.x + r.w - 1;
    int x = x0 + canvas_text(c, x0, y, 12, "components ", ROLE_HEADER, 0);
    if (n == 0) {
        canvas_text(c, x, y, x1 - x, "none (the block is dropped in the model)", ROLE_DIM, 0);
        return;
    }
    if (a->plan_comp >= n) a->plan_comp = n - 1;
    if (a->plan_comp < 0) a->plan_comp = 0;
    /* label widths: each item is its label plus a mark and a space */
    int avail = x1 - x - 2;
    int first = a->plan_comp, used = 0;
    plan_comp pc;
    /* start from the cursor and extend left while there is room for about half the width */
    while (first > 0) {
        plan_component(a, l, first - 1, &pc);
        int w = (int)strlen(pc.label) + 2;
        if (used + w > avail / 2) break;
        used += w;
        first--;
    }
    if (first > 0) x += canvas_text(c, x, y, 1, a->th.g.left, ROLE_DIM, 0);
    int i;
    for (i = first; i < n && x < x1 - 1; i++) {
        plan_component(a, l, i, &pc);
        int st = tui_pin_state(a, l, pc.kind, pc.index), removed = plan_comp_removed(a, l, &pc);
        char item[24];
        snprintf(item, sizeof item, "%s%s%s", st == 1 ? "+" : st == 2 ? "!" : "", pc.label, removed ? a->th.g.times : "");
        int w = canvas_text_width(item);
        if (x + w >= x1 - 1 && i < n - 1) break;
        int role = i == a->plan_comp ? ROLE_CURSOR : removed ? ROLE_BAR_LOW : st ? ROLE_ACCENT : ROLE_DEFAULT;
        canvas_text(c, x, y, w, item, role, i == a->plan_comp ? ATTR_BOLD : 0);
        x += w + 1;
        if ((i == 2 || i == 2 + CCE_LIN_COUNT || i == 2 + CCE_LIN_COUNT + a->model->layers[l].n_heads) && i < n - 1 && x < x1 - 2) {
            canvas_text(c, x, y, 1, a->th.g.vline, ROLE_DIM, 0);
            x += 2;
        }
    }
    if (i < n) canvas_text(c, x1 - 1, y, 1, a->th.g.right, ROLE_DIM, 0);   // more to the right
}

/* What the component under the cursor is and what the keys do with it. */
static void draw_comp_help(app *a, canvas *c, rect r, int y) {
    plan_comp pc;
    int l = a->layer;
    if (plan_component(a, l, a->plan_comp, &pc)) return;
    int st = tui_pin_state(a, l, pc.kind, pc.index), removed = plan_comp_removed(a, l, &pc);
    const cce_block_result *b = tui_block(a, l);
    char line[512], extra[128] = "";
    if (b && pc.kind == CCE_CURVE_HEADS && b->head_order) {
        int pos = 0;
        while (pos < b->n_heads && b->head_order[pos] != pc.index) pos++;
        snprintf(extra, sizeof extra, ", %d%s to go of %d by redundancy (score %.2f)", pos + 1,
                 pos == 0 ? "st" : pos == 1 ? "nd" : pos == 2 ? "rd" : "th", b->n_heads, (double)b->head_score[pc.index]);
    } else if (b && pc.kind == CCE_CURVE_NEURONS && b->neuron_score) {
        snprintf(extra, sizeof extra, ", redundancy score %.2f", (double)b->neuron_score[pc.index]);
    }
    const char *what = pc.kind >= CCE_CURVE_RANK_WQ && pc.kind <= CCE_CURVE_RANK_W2 ? (removed ? "factorised" : "dense")
                       : removed ? "removed by the plan" : "kept";
    snprintf(line, sizeof line, "%s: %s%s%s.  Space %s  x %s  u clear", pc.label, what,
             st == 1 ? ", pinned" : st == 2 ? ", forced" : "", extra, st == 1 ? "unpins" : "pins (keeps)",
             pc.kind >= CCE_CURVE_RANK_WQ && pc.kind <= CCE_CURVE_RANK_W2 ? "(ranks cannot be forced)" : st == 2 ? "unforces" : "forces (removes)");
    canvas_text(c, r.x + 1, y, r.w - 2, line, ROLE_DIM, 0);
}

/* The last commit: measured before and after, beside the prediction. rows: what there is room for. */
static void draw_commit(app *a, canvas *c, rect r, int y, int rows) {
    const theme_glyphs *g = &a->th.g;
    if (rows <= 0) return;
    if (tui_task_running(a) && task_kind_of(a->tk) == TASK_COMMIT) {
        int done, total, step, steps;
        char phase[128], line[256];
        task_progress(a->tk, &done, &total, &step, &steps, phase, sizeof phase);
        snprintf(line, sizeof line, "committing: step %d of %d, %s ", step, steps, phase);
        int x = r.x + 1 + canvas_text(c, r.x + 1, y, r.w - 2, line, ROLE_HEADER, 0);
        if (x + 22 < r.x + r.w) {
            draw_hbar(a, c, x, y, 20, total > 0 ? (double)done / total : 0, ROLE_PROGRESS);
            canvas_set_role(c, (rect){x, y, 20, 1}, ROLE_PROGRESS);
            canvas_text(c, x + 21, y, r.x + r.w - x - 22, "Esc cancels", ROLE_DIM, 0);
        }
        y++;
        rows--;
    }
    if (rows <= 0) return;
    if (!a->n_commits) {
        static const char *const forms[3] = {
            "no commit yet: C or :commit encodes this plan and measures perplexity, accuracy and tokens/s before and after",
            "no commit yet: C encodes this plan and measures ppl, accuracy, tokens/s", "no commit yet (C commits)"};
        text_fit(c, r.x + 1, y, r.w - 2, forms, 3, ROLE_DIM, 0);
        return;
    }
    const cce_commit_record *m = &a->commits[a->n_commits - 1];
    char head[256];
    const char *state = a->committed ? (a->committed_same ? "the plan shown" : "the plan shown has changed since")
                                     : "from the session; C commits the plan shown";
    snprintf(head, sizeof head, "last commit #%d (%s)", a->n_commits, state);
    int cw[5] = {23, 15, 15, 11, 0};   // label, before, after, change, predicted (the rest)
    int x = r.x + 1;
    canvas_text(c, x, y, r.w - 2, head, ROLE_HEADER, 0);
    y++;
    rows--;
    /* column header row */
    static const char *hs[4] = {"before", "after", "change", "predicted"};
    if (rows > 0) {
        x = r.x + 1 + cw[0];
        for (int i = 0; i < 4 && x < r.x + r.w - 1; i++) {
            canvas_printf(c, x, y, cw[i + 1] ? cw[i + 1] : r.x + r.w - 1 - x, ROLE_HEADER, ATTR_UNDERLINE, "%s", hs[i]);
            x += cw[i + 1];
        }
        y++;
        rows--;
    }
    char b1[48], b2[48], b3[48], b4[64];
    struct { const char *label; } lines[5] = {{"loss (nats) / ppl"}, {"next-token accuracy"}, {"non-embedding params"},
                                              {"bytes"}, {"decode tokens/s"}};
    for (int i = 0; i < 5 && rows > 0; i++, y++, rows--) {
        b4[0] = 0;
        switch (i) {
        case 0:
            snprintf(b1, sizeof b1, "%.4f / %.2f", m->before.loss, m->before.ppl);
            snprintf(b2, sizeof b2, "%.4f / %.2f", m->after.loss, m->after.ppl);
            snprintf(b3, sizeof b3, "%+.4f", m->after.loss - m->before.loss);
            snprintf(b4, sizeof b4, "L_CCE %.4g", m->L_cce);
            break;
        case 1:
            snprintf(b1, sizeof b1, "%.2f%%", 100 * m->before.accuracy);
            snprintf(b2, sizeof b2, "%.2f%%", 100 * m->after.accuracy);
            snprintf(b3, sizeof b3, "%+.2f pt", 100 * (m->after.accuracy - m->before.accuracy));
            break;
        case 2:
            fmt_count(m->before.params, b1, sizeof b1);
            fmt_count(m->after.params, b2, sizeof b2);
            fmt_pct_change((double)m->before.params, (double)m->after.params, b3, sizeof b3);
            snprintf(b4, sizeof b4, "%.1f%% removed", 100 * m->removed_fraction);
            break;
        case 3:
            fmt_bytes((double)m->before.bytes, b1, sizeof b1);
            fmt_bytes((double)m->after.bytes, b2, sizeof b2);
            fmt_pct_change((double)m->before.bytes, (double)m->after.bytes, b3, sizeof b3);
            break;
        default:
            if (a->mask_times) {
                snprintf(b1, sizeof b1, "-");
                snprintf(b2, sizeof b2, "-");
                snprintf(b3, sizeof b3, "-");
            } else {
                snprintf(b1, sizeof b1, "%.0f", m->before.tokens_per_s);
                snprintf(b2, sizeof b2, "%.0f", m->after.tokens_per_s);
                fmt_pct_change(m->before.tokens_per_s, m->after.tokens_per_s, b3, sizeof b3);
            }
            break;
        }
        x = r.x + 3;
        canvas_text(c, x, y, cw[0] - 2, lines[i].label, ROLE_DEFAULT, 0);
        x = r.x + 1 + cw[0];
        const char *v[4] = {b1, b2, b3, b4};
        for (int k = 0; k < 4 && x < r.x + r.w - 1; k++) {
            int w = cw[k + 1] ? cw[k + 1] : r.x + r.w - 1 - x;
            canvas_text(c, x, y, w - 1, v[k], k == 1 ? ROLE_ACCENT : k == 3 ? ROLE_DIM : ROLE_DEFAULT, 0);
            x += w;
        }
    }
    if (rows > 0) {
        char line[1400];
        const char *base = strrchr(m->eval_path, '/');
        char f2[1200];
        snprintf(line, sizeof line, "measured on %s: %ld tokens in windows of %d %s `cce eval DIR --text FILE --max-tokens %ld` measures the same",
                 base ? base + 1 : m->eval_path, m->eval_tokens, m->eval_seq_len, g->dash, m->eval_tokens);
        snprintf(f2, sizeof f2, "measured on %s: %ld tokens, windows of %d", base ? base + 1 : m->eval_path, m->eval_tokens,
                 m->eval_seq_len);
        const char *forms[2] = {line, f2};
        text_fit(c, r.x + 3, y, r.w - 4, forms, 2, ROLE_DIM, 0);
    }
}

/* ------------------------------------------------------------------ the view */

static void hline(app *a, canvas *c, rect r, int y) {
    for (int x = r.x; x < r.x + r.w; x++) canvas_put(c, x, y, a->th.g.hline, ROLE_DIM, 0);
}

static void plan_draw(app *a, canvas *c, rect r) {
    const cce_plan *p = tui_plan(a);
    int L = tui_n_layers(a), y = r.y;
    draw_budget(a, c, r, y++, p);
    if (!p) {
        draw_center(c, r, r.y + r.h / 2, "the planner has not answered yet", ROLE_DIM, 0);
        return;
    }
    draw_predicted(a, c, r, y, p);
    y += 2;
    if (a->plan_err[0]) {
        char line[700];
        snprintf(line, sizeof line, "re-plan failed: %s (the plan shown is the previous one)", a->plan_err);
        canvas_text(c, r.x + 1, y++, r.w - 2, line, ROLE_ERROR, 0);
    }
    /* rows: the table (header + blocks), a rule, the block (2-4), a rule, the commit (2-8) */
    int left = r.y + r.h - y;
    int commit_rows = tui_task_running(a) ? 9 : a->n_commits ? 8 : 1;
    int block_rows = 4;
    int table_rows = L;
    while (1 + table_rows + 1 + block_rows + 1 + commit_rows > left) {
        if (block_rows > 3) block_rows--;
        else if (commit_rows > 7) commit_rows--;
        else if (block_rows > 2) block_rows--;
        else if (table_rows > 3) table_rows--;
        else if (commit_rows > 2) commit_rows--;
        else if (table_rows > 1) table_rows--;
        else break;
    }
    a->page_rows = table_rows;
    draw_table(a, c, r, y, table_rows, p);
    y += 1 + table_rows;
    hline(a, c, r, y++);
    int used = draw_block_words(a, c, r, y, block_rows - 1, p);
    y += used;
    draw_strip(a, c, r, y++);
    if (block_rows - used - 1 > 0) draw_comp_help(a, c, r, y++);
    if (y < r.y + r.h) hline(a, c, r, y++);
    draw_commit(a, c, r, y, r.y + r.h - y);
}

static int plan_move(app *a, move_kind m) {
    int L = tui_n_layers(a), l = a->layer, page = a->page_rows > 1 ? a->page_rows : 1;
    int n = plan_n_components(a, a->layer);
    switch (m) {
    case MOVE_UP: l--; break;
    case MOVE_DOWN: l++; break;
    case MOVE_PGUP: l -= page; break;
    case MOVE_PGDN: l += page; break;
    case MOVE_HOME: l = 0; break;
    case MOVE_END: l = L - 1; break;
    case MOVE_LEFT:
        if (a->plan_comp > 0) a->plan_comp--;
        return R_REDRAW;
    case MOVE_RIGHT:
        if (a->plan_comp < n - 1) a->plan_comp++;
        return R_REDRAW;
    }
    if (l < 0) l = 0;
    if (l > L - 1) l = L - 1;
    a->layer = l;
    return R_REDRAW;
}

const view_ops view_plan = {"plan", NULL, "Plan", plan_draw, plan_move};
