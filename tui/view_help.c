/*
 * view_help.c — the help screen, generated from the action table and the knob table, followed
 * by the readings the numbers on the other screens use (DESIGN §3's concrete choices).
 *
 * Nothing in the key and command lists is written by hand: a binding added to tui_actions
 * appears here, in completion and in dispatch at once. The text is built as lines each frame
 * (a few hundred bytes of formatting) and scrolled with the usual movement keys.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "tui.h"

#define HELP_MAX 200

typedef struct {
    char text[HELP_MAX][200];
    int role[HELP_MAX];
    int n;
} help_text;

static void add(help_text *h, int role, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(help_text *h, int role, const char *fmt, ...) {
    if (h->n >= HELP_MAX) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->text[h->n], sizeof h->text[0], fmt, ap);
    va_end(ap);
    h->role[h->n++] = role;
}

static void keys_of(const action *act, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < 4 && act->keys[k] && o < cap; k++) {
        char n[16];
        tui_key_name(act->keys[k], n, sizeof n);
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", k ? " " : "", n);
    }
}

static void add_bindings(help_text *h, int ctx) {
    for (int i = 0; i < tui_n_actions; i++) {
        const action *act = &tui_actions[i];
        if (act->ctx != ctx || !act->keys[0]) continue;
        char k[64];
        keys_of(act, k, sizeof k);
        add(h, ROLE_DEFAULT, "  %-16s %-16s %s", k, act->name, act->help);
    }
}

static void build(app *a, help_text *h) {
    const theme_glyphs *g = &a->th.g;
    add(h, ROLE_HEADER, "cce tui: the Contextual Compression Encoding inspector (arXiv 2502.08323)");
    add(h, ROLE_DEFAULT, "  model       %s", a->model_path);
    add(h, ROLE_DEFAULT, "  calibration %s", a->calib_desc);
    if (a->eval_path[0]) {
        char cap[48];
        if (a->eval_tokens > 0) snprintf(cap, sizeof cap, "its first %ld tokens", a->eval_tokens);
        else snprintf(cap, sizeof cap, "all of it");
        add(h, ROLE_DEFAULT, "  evaluation  %s (a commit measures %s)", a->eval_path, cap);
    }
    add(h, ROLE_DEFAULT, "  sessions    %s/NAME.json (:save, :load; every commit also writes autosave.json)", tui_sessions_dir());
    add(h, ROLE_DEFAULT, "%s", "");
    add(h, ROLE_HEADER, "Keys in every view");
    add_bindings(h, CTX_GLOBAL);
    for (int v = 0; v < VIEW_COUNT; v++) {
        int any = 0;
        for (int i = 0; i < tui_n_actions; i++) any |= tui_actions[i].ctx == v && tui_actions[i].keys[0];
        if (!any) continue;
        add(h, ROLE_DEFAULT, "%s", "");
        add(h, ROLE_HEADER, "Keys in %s", tui_view(v)->title);
        add_bindings(h, v);
    }
    add(h, ROLE_DEFAULT, "%s", "");
    add(h, ROLE_HEADER, "Commands (type : then the command; Tab completes, Up/Down recall history, Esc closes)");
    for (int i = 0; i < tui_n_actions; i++) {
        const action *act = &tui_actions[i];
        if (!act->cmd) continue;
        char syn[64];
        snprintf(syn, sizeof syn, ":%s%s%s", act->cmd, act->args ? " " : "", act->args ? act->args : "");
        add(h, ROLE_DEFAULT, "  %-22s %s", syn, act->help);
    }
    add(h, ROLE_DEFAULT, "%s", "");
    add(h, ROLE_HEADER, "Knobs (status line; [ ] select, + - change, :set NAME VALUE)");
    for (int k = 0; k < KNOB_COUNT; k++) {
        char v[32];
        knob_format(k, tui_knobs[k].def, v, sizeof v);
        add(h, ROLE_DEFAULT, "  %-7s %-6s default %-6s %s", tui_knobs[k].name, k == KNOB_TARGET ? "" : knob_label(a, k), v,
            tui_knobs[k].help);
    }
    add(h, ROLE_DIM, "  Every change re-plans at once from the cached cost curves (on the planner thread; keys never wait)");
    add(h, ROLE_DIM, "  and recounts the analysis views. target > 0: budget mode, the cheapest steps by marginal L_CCE per");
    add(h, ROLE_DIM, "  parameter until the target is removed; target 0: threshold mode, %s and %s decide each block.", g->eps, g->tau);
    add(h, ROLE_DEFAULT, "%s", "");
    add(h, ROLE_HEADER, "The plan (Plan view, and the plan columns of Layers)");
    add(h, ROLE_DEFAULT, "  L_rec       predicted output error of the block, sum over its cost curves at the planned steps,");
    add(h, ROLE_DEFAULT, "              relative to the residual-stream energy |h_out|^2 at the block output (times a measured");
    add(h, ROLE_DEFAULT, "              sensitivity per sublayer after :search); the plan's L_rec is the sum over blocks");
    add(h, ROLE_DEFAULT, "  L_sim       mean similarity left among the kept heads and neurons (CKA, |correlation|)");
    add(h, ROLE_DEFAULT, "  L_reg       nuclear norm of the kept weights over the original's; L_CCE = alpha L_rec + beta L_sim");
    add(h, ROLE_DEFAULT, "              + gamma L_reg. Parameters are non-embedding (embedding and a tied head excluded)");
    add(h, ROLE_DEFAULT, "  components  heads (a KV head goes with its last query head), FFN neurons, low-rank matrices");
    add(h, ROLE_DEFAULT, "              (activation-aware SVD), attention / FFN sublayers, whole blocks; head dimensions are");
    add(h, ROLE_DEFAULT, "              not pruned in this version. Pin: never removed (a matrix: kept dense); force: removed");
    add(h, ROLE_DEFAULT, "  commit      sequential least-squares encoding on the calibration tokens, then loss, perplexity,");
    add(h, ROLE_DEFAULT, "              next-token accuracy (eval.h's protocol, windows of min(256, context)), KV-cached decoding");
    add(h, ROLE_DEFAULT, "              tokens/s, parameters and bytes, original and compressed; :export writes the plan that");
    add(h, ROLE_DEFAULT, "              `cce apply MODEL --plan FILE -o DIR` encodes to the same weights (same loss in `cce eval`)");
    add(h, ROLE_DEFAULT, "%s", "");
    add(h, ROLE_HEADER, "Readings");
    add(h, ROLE_DEFAULT, "  angular     mean over tokens of arccos(cos(h_in, h_out))/pi; near-id when below 1e-3");
    add(h, ROLE_DEFAULT, "  infl.       block influence 1 - mean cos(h_in, h_out) (ShortGPT); upd = rms of the update / rms of h_in");
    add(h, ROLE_DEFAULT, "  eigen       eigenvalues of the centred covariances at attn_in, heads (before W_o), ffn_in, ffn_act");
    add(h, ROLE_DEFAULT, "              counted when lambda < eps * lambda_max: directions the block barely uses");
    add(h, ROLE_DEFAULT, "  singular    sigma(W) plain and sigma(W L) activation-aware (E[x x^T] = L L^T of W's input);");
    add(h, ROLE_DEFAULT, "              counted when sigma < tau * sigma_max: rank a truncation could drop");
    add(h, ROLE_DEFAULT, "  CKA         linear CKA; layers: centred block updates on a seeded token subsample;");
    add(h, ROLE_DEFAULT, "              heads: contributions o_h W_o[:,h]^T from the per-head covariance (no activations kept)");
    add(h, ROLE_DEFAULT, "  redundancy  score = 1 - residual/variance of a component's contribution after ridge least squares");
    add(h, ROLE_DEFAULT, "              on all others (1: fully predictable); order = greedy backward elimination");
    add(h, ROLE_DEFAULT, "  histograms  fixed symmetric bins from the first calibration batch, plus outside counts; after a");
    add(h, ROLE_DEFAULT, "              commit the compressed model's, same windows and bins, as dots (TV: total variation distance)");
}

static void help_draw(app *a, canvas *c, rect r) {
    static help_text h;
    h.n = 0;
    build(a, &h);
    a->page_rows = r.h;
    int max_top = h.n > r.h ? h.n - r.h : 0;
    if (a->help_top > max_top) a->help_top = max_top;
    if (a->help_top < 0) a->help_top = 0;
    for (int i = 0; i < r.h && a->help_top + i < h.n; i++)
        canvas_text(c, r.x + 1, r.y + i, r.w - 2, h.text[a->help_top + i], h.role[a->help_top + i], 0);
    if (max_top > 0) {
        char t[48];
        snprintf(t, sizeof t, " %d-%d of %d ", a->help_top + 1, a->help_top + r.h < h.n ? a->help_top + r.h : h.n, h.n);
        canvas_text(c, r.x + r.w - (int)strlen(t) - 1, r.y, (int)strlen(t), t, ROLE_DIM, 0);
    }
}

static int help_move(app *a, move_kind m) {
    int page = a->page_rows > 2 ? a->page_rows - 1 : 1;
    switch (m) {
    case MOVE_UP: a->help_top--; break;
    case MOVE_DOWN: a->help_top++; break;
    case MOVE_PGUP: a->help_top -= page; break;
    case MOVE_PGDN: a->help_top += page; break;
    case MOVE_HOME: a->help_top = 0; break;
    case MOVE_END: a->help_top = 1 << 20; break;
    default: return R_NONE;
    }
    if (a->help_top < 0) a->help_top = 0;
    return R_REDRAW;
}

const view_ops view_help = {"help", NULL, "Help", help_draw, help_move};
