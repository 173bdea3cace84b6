/*
 * theme.h — colour roles, colour depth and glyph sets, chosen once at start-up.
 *
 * Views never name a colour: they draw with a role (ROLE_BAR, ROLE_THRESH, ...) and the theme
 * says what a role looks like at the terminal's depth (htop's scheme idea):
 *   - 256 colours: a palette tuned for dark and light backgrounds (default background kept);
 *   - 8 colours: the basic ANSI colours;
 *   - none (NO_COLOR set, or a terminal without colours such as vt100): attributes only
 *     (bold, reverse, underline), so selection and thresholds stay visible.
 * Glyphs degrade the same way: with a UTF-8 locale and a terminal that can show it, box
 * drawing, eighth blocks, shades and Greek letters; otherwise ASCII ('-', '#', " .:-=+*#%@",
 * "eps"). Plots ask the theme for glyphs, so a vt100 or LANG=C screen is readable, not garbled.
 *
 * Pure C, no curses: blit.c maps theme_style() onto curses colour pairs.
 */
#ifndef CCE_TUI_THEME_H
#define CCE_TUI_THEME_H

typedef enum {
    ROLE_DEFAULT = 0,
    ROLE_TITLE,        // the tab bar
    ROLE_TAB_ACTIVE,   // the current view's tab
    ROLE_STATUS,       // status line
    ROLE_KNOB,         // a knob in the status line
    ROLE_KNOB_SEL,     // the selected knob
    ROLE_HEADER,       // table headers, panel titles
    ROLE_DIM,          // secondary text, pending rows
    ROLE_ACCENT,       // values worth the eye
    ROLE_GOOD,
    ROLE_WARN,
    ROLE_ERROR,
    ROLE_BAR,          // bars and plotted values
    ROLE_BAR_ALT,      // a second series (plain singular values)
    ROLE_BAR_LOW,      // values below a threshold (the redundant part)
    ROLE_THRESH,       // threshold lines (ε, τ)
    ROLE_AXIS,         // axes and tick labels
    ROLE_SELECTED,     // the selected row / panel
    ROLE_CURSOR,       // heatmap cursor
    ROLE_PROGRESS,     // filled part of the progress bar
    ROLE_CMDLINE,      // the : command line
    ROLE_RAMP0,        // heatmap ramp, 10 levels, low → high
    ROLE_RAMP9 = ROLE_RAMP0 + 9,
    ROLE_COUNT
} theme_role;

typedef enum { DEPTH_NONE = 0, DEPTH_8 = 8, DEPTH_256 = 256 } theme_depth;

/* Colours: 0..255 as in xterm-256 (0..7 the ANSI ones), -1 the terminal default. */
typedef struct {
    short fg, bg;
    int attr;          // ATTR_* (canvas.h)
} theme_style_t;

typedef struct {
    const char *hline, *vline, *tl, *tr, *bl, *br, *ltee, *rtee, *ttee, *btee, *cross;
    const char *hbar[9];     // horizontal bar: 0/8 .. 8/8 of a cell (left-aligned)
    const char *vbar[9];     // vertical bar: 0/8 .. 8/8 of a cell (bottom-aligned)
    const char *ramp[10];    // heatmap ramp without colour, low → high
    const char *full, *low;  // a filled plot cell; a filled cell below a threshold
    const char *dot, *thresh, *ellipsis, *sel, *flag, *up, *down, *left, *right, *times, *dash;
    const char *alpha, *beta, *gamma, *eps, *tau, *lambda, *sigma, *sigma_aw;
} theme_glyphs;

typedef struct {
    theme_depth depth;
    int utf8;
    theme_glyphs g;
} theme;

/* The depth to use: none when no_color is set and non-empty (https://no-color.org), when the
 * terminal has fewer than 8 colours or when term names a terminal without them; 256 when it has
 * 256 or more; else 8. */
theme_depth theme_detect_depth(int ncolors, const char *no_color, const char *term);
/* UTF-8 glyphs when the locale's codeset is UTF-8 and term is not a known ASCII-only terminal
 * (vt52/vt100/vt102/vt220/dumb). */
int theme_detect_utf8(const char *codeset, const char *term);
void theme_init(theme *t, theme_depth depth, int utf8);
/* How role r looks at t's depth. */
theme_style_t theme_style(const theme *t, int r);
/* The ramp role and glyph for value v in [lo, hi] (clamped; NaN → level 0). */
int theme_ramp_level(double v, double lo, double hi);

#endif
