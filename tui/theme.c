/*
 * theme.c — roles to styles, glyph sets (see theme.h).
 *
 * The 256-colour palette keeps the terminal's own background and uses mid-luminance colours
 * that read on dark and light backgrounds alike; the heatmap ramp is a perceptually ordered
 * dark-blue → green → yellow sequence (close to viridis in the xterm cube), drawn as background
 * colours so a value can be printed inside a cell. The 8-colour ramp has five distinguishable
 * steps (blue, cyan, green, yellow, red), two levels each. Without colour the ramp is glyphs.
 */
#include <string.h>
#include <strings.h>
#include <math.h>
#include "canvas.h"
#include "theme.h"

theme_depth theme_detect_depth(int ncolors, const char *no_color, const char *term) {
    if (no_color && *no_color) return DEPTH_NONE;
    if (term && (!strcmp(term, "dumb") || !strncmp(term, "vt", 2))) return DEPTH_NONE;
    if (ncolors >= 256) return DEPTH_256;
    if (ncolors >= 8) return DEPTH_8;
    return DEPTH_NONE;
}

int theme_detect_utf8(const char *codeset, const char *term) {
    if (!codeset || (strcasecmp(codeset, "UTF-8") && strcasecmp(codeset, "utf8"))) return 0;
    if (term && (!strcmp(term, "dumb") || !strcmp(term, "vt52") || !strcmp(term, "vt100") ||
                 !strcmp(term, "vt102") || !strcmp(term, "vt220")))
        return 0;
    return 1;
}

static const theme_glyphs glyphs_utf8 = {
    .hline = "─", .vline = "│", .tl = "┌", .tr = "┐", .bl = "└", .br = "┘",
    .ltee = "├", .rtee = "┤", .ttee = "┬", .btee = "┴", .cross = "┼",
    .hbar = {" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"},
    .vbar = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"},
    .ramp = {" ", "·", "░", "░", "▒", "▒", "▓", "▓", "█", "█"},
    .full = "█", .low = "▒",
    .dot = "•", .thresh = "╌", .ellipsis = "…", .sel = "▶", .flag = "●",
    .up = "↑", .down = "↓", .left = "←", .right = "→", .times = "×", .dash = "–",
    .alpha = "α", .beta = "β", .gamma = "γ", .eps = "ε", .tau = "τ", .lambda = "λ",
    .sigma = "σ", .sigma_aw = "σ(WL)",
};

static const theme_glyphs glyphs_ascii = {
    .hline = "-", .vline = "|", .tl = "+", .tr = "+", .bl = "+", .br = "+",
    .ltee = "+", .rtee = "+", .ttee = "+", .btee = "+", .cross = "+",
    .hbar = {" ", " ", " ", "-", "-", "=", "=", "#", "#"},
    .vbar = {" ", " ", " ", ".", ".", ":", ":", "#", "#"},
    .ramp = {" ", ".", ":", "-", "=", "+", "*", "#", "%", "@"},
    .full = "#", .low = ":",
    .dot = "o", .thresh = "-", .ellipsis = "~", .sel = ">", .flag = "*",
    .up = "^", .down = "v", .left = "<", .right = ">", .times = "x", .dash = "-",
    .alpha = "alpha", .beta = "beta", .gamma = "gamma", .eps = "eps", .tau = "tau",
    .lambda = "lambda", .sigma = "sigma", .sigma_aw = "sigma(WL)",
};

void theme_init(theme *t, theme_depth depth, int utf8) {
    t->depth = depth;
    t->utf8 = utf8;
    t->g = utf8 ? glyphs_utf8 : glyphs_ascii;
}

/* xterm-256 ramp (background) and the text colour that reads on it. */
static const short ramp256_bg[10] = {17, 18, 24, 30, 36, 35, 71, 113, 185, 226};
static const short ramp256_fg[10] = {252, 252, 252, 255, 255, 16, 16, 16, 16, 16};
/* ANSI: black red green yellow blue magenta cyan white */
static const short ramp8_bg[10] = {4, 4, 6, 6, 2, 2, 3, 3, 1, 1};
static const short ramp8_fg[10] = {7, 7, 0, 0, 0, 0, 0, 0, 7, 7};

static theme_style_t style_none(int r) {
    theme_style_t s = {-1, -1, 0};
    switch (r) {
    case ROLE_TITLE: case ROLE_STATUS: case ROLE_KNOB: s.attr = ATTR_REVERSE; break;
    case ROLE_TAB_ACTIVE: s.attr = ATTR_BOLD; break;
    case ROLE_KNOB_SEL: s.attr = ATTR_BOLD | ATTR_UNDERLINE; break;
    case ROLE_HEADER: s.attr = ATTR_BOLD; break;
    case ROLE_ERROR: case ROLE_WARN: case ROLE_THRESH: s.attr = ATTR_BOLD; break;
    case ROLE_ACCENT: s.attr = ATTR_BOLD; break;
    case ROLE_SELECTED: s.attr = ATTR_REVERSE; break;
    case ROLE_CURSOR: s.attr = ATTR_REVERSE | ATTR_BOLD; break;
    case ROLE_PROGRESS: s.attr = ATTR_REVERSE; break;
    default: break;
    }
    return s;
}

static theme_style_t style_8(int r) {
    theme_style_t s = {-1, -1, 0};
    if (r >= ROLE_RAMP0 && r <= ROLE_RAMP9) {
        s.bg = ramp8_bg[r - ROLE_RAMP0];
        s.fg = ramp8_fg[r - ROLE_RAMP0];
        return s;
    }
    switch (r) {
    case ROLE_TITLE: s.fg = 7; s.bg = 4; break;
    case ROLE_TAB_ACTIVE: s.fg = 3; s.bg = 4; s.attr = ATTR_BOLD; break;
    case ROLE_STATUS: case ROLE_KNOB: s.fg = 7; s.bg = 4; break;
    case ROLE_KNOB_SEL: s.fg = 3; s.bg = 4; s.attr = ATTR_BOLD | ATTR_UNDERLINE; break;
    case ROLE_HEADER: s.fg = 6; s.attr = ATTR_BOLD; break;
    case ROLE_DIM: s.fg = 4; break;
    case ROLE_ACCENT: s.fg = 3; break;
    case ROLE_GOOD: s.fg = 2; break;
    case ROLE_WARN: s.fg = 3; s.attr = ATTR_BOLD; break;
    case ROLE_ERROR: s.fg = 1; s.attr = ATTR_BOLD; break;
    case ROLE_BAR: s.fg = 2; break;
    case ROLE_BAR_ALT: s.fg = 6; break;
    case ROLE_BAR_LOW: s.fg = 1; break;
    case ROLE_THRESH: s.fg = 3; s.attr = ATTR_BOLD; break;
    case ROLE_AXIS: s.fg = 6; break;
    case ROLE_SELECTED: s.attr = ATTR_REVERSE; break;
    case ROLE_CURSOR: s.fg = 7; s.bg = 5; s.attr = ATTR_BOLD; break;
    case ROLE_PROGRESS: s.fg = 0; s.bg = 2; break;
    case ROLE_CMDLINE: s.fg = 7; break;
    default: break;
    }
    return s;
}

static theme_style_t style_256(int r) {
    theme_style_t s = {-1, -1, 0};
    if (r >= ROLE_RAMP0 && r <= ROLE_RAMP9) {
        s.bg = ramp256_bg[r - ROLE_RAMP0];
        s.fg = ramp256_fg[r - ROLE_RAMP0];
        return s;
    }
    switch (r) {
    case ROLE_TITLE: s.fg = 252; s.bg = 237; break;
    case ROLE_TAB_ACTIVE: s.fg = 16; s.bg = 178; s.attr = ATTR_BOLD; break;
    case ROLE_STATUS: case ROLE_KNOB: s.fg = 252; s.bg = 24; break;
    case ROLE_KNOB_SEL: s.fg = 16; s.bg = 178; s.attr = ATTR_BOLD; break;
    case ROLE_HEADER: s.fg = 74; s.attr = ATTR_BOLD; break;
    case ROLE_DIM: s.fg = 244; break;
    case ROLE_ACCENT: s.fg = 178; break;
    case ROLE_GOOD: s.fg = 71; break;
    case ROLE_WARN: s.fg = 172; s.attr = ATTR_BOLD; break;
    case ROLE_ERROR: s.fg = 160; s.attr = ATTR_BOLD; break;
    case ROLE_BAR: s.fg = 71; break;
    case ROLE_BAR_ALT: s.fg = 74; break;
    case ROLE_BAR_LOW: s.fg = 167; break;
    case ROLE_THRESH: s.fg = 178; s.attr = ATTR_BOLD; break;
    case ROLE_AXIS: s.fg = 244; break;
    case ROLE_SELECTED: s.bg = 238; s.attr = ATTR_BOLD; break;
    case ROLE_CURSOR: s.fg = 16; s.bg = 213; s.attr = ATTR_BOLD; break;
    case ROLE_PROGRESS: s.fg = 16; s.bg = 71; break;
    case ROLE_CMDLINE: s.fg = 255; break;
    default: break;
    }
    return s;
}

theme_style_t theme_style(const theme *t, int r) {
    if (r < 0 || r >= ROLE_COUNT) r = ROLE_DEFAULT;
    switch (t->depth) {
    case DEPTH_256: return style_256(r);
    case DEPTH_8: return style_8(r);
    default: return style_none(r);
    }
}

int theme_ramp_level(double v, double lo, double hi) {
    if (!(v == v) || !(hi > lo)) return 0;
    double f = (v - lo) / (hi - lo);
    int k = (int)floor(f * 10.0);
    return k < 0 ? 0 : k > 9 ? 9 : k;
}
