/*
 * canvas.h — the plain cell buffer every screen is drawn into before it reaches a terminal.
 *
 * Views, plots and the status line draw into a canvas: a (h, w) grid of cells, each one UTF-8
 * glyph of display width 1 plus a colour role (theme.h) and attribute bits. Only blit.c turns a
 * canvas into curses calls; the headless mode and the tests read it back as text
 * (canvas_dump), so every plot is testable without a terminal (STYLE.md principle 9).
 *
 * Text written with canvas_text is sanitised: control characters, invalid UTF-8, wide and
 * combining characters become '?', and in ASCII mode (canvas.ascii) so does every non-ASCII
 * character, so a cell always holds exactly one column. Everything clips at the canvas edge and
 * at the width the caller allows; nothing writes outside the grid.
 *
 * Thread-safety: none; the UI thread owns its canvases.
 */
#ifndef CCE_TUI_CANVAS_H
#define CCE_TUI_CANVAS_H

#include <stddef.h>
#include <stdint.h>

enum { ATTR_BOLD = 1, ATTR_REVERSE = 2, ATTR_UNDERLINE = 4, ATTR_DIM = 8 };

typedef struct {
    char g[5];        // one glyph, UTF-8, NUL-terminated (at most 4 bytes)
    uint8_t role;     // colour role (theme.h)
    uint8_t attr;     // ATTR_* bits, OR-ed with the role's own style
} canvas_cell;

typedef struct { int x, y, w, h; } rect;

typedef struct {
    int w, h;
    canvas_cell *cells;   // (h, w) row-major
    int cur_x, cur_y;     // where the terminal cursor goes (-1: hidden)
    int ascii;            // 1: only ASCII glyphs are stored (others become '?')
} canvas;

/* A canvas of w x h blank cells (w, h >= 1). Returns 0, or -1 when out of memory. */
int canvas_init(canvas *c, int w, int h);
void canvas_free(canvas *c);
/* Change the size; contents become blank. Returns 0 or -1 (then the old grid is kept). */
int canvas_resize(canvas *c, int w, int h);
/* Every cell a space of role 0, no attributes; cursor hidden. */
void canvas_clear(canvas *c);

/* The cell at (x, y), or NULL outside the grid. */
canvas_cell *canvas_at(canvas *c, int x, int y);
/* Put one glyph (its first UTF-8 character, sanitised) at (x, y); ignored outside. */
void canvas_put(canvas *c, int x, int y, const char *glyph, int role, int attr);
/* Write utf8 from (x, y) rightwards, at most maxw columns (maxw < 0: to the edge).
 * Returns the columns written. Newlines and tabs are written as '?' and ' '. */
int canvas_text(canvas *c, int x, int y, int maxw, const char *utf8, int role, int attr);
/* printf into canvas_text. */
int canvas_printf(canvas *c, int x, int y, int maxw, int role, int attr, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Fill r with one glyph. */
void canvas_fill(canvas *c, rect r, const char *glyph, int role, int attr);
/* OR attribute bits into / set the role of every cell of r (e.g. reverse a selected row). */
void canvas_add_attr(canvas *c, rect r, int attr);
void canvas_set_role(canvas *c, rect r, int role);

/* Display columns of utf8 as canvas_text would write it (each character one column). */
int canvas_text_width(const char *utf8);
/* Copy at most cols columns of utf8 into out (cap bytes, NUL-terminated), cutting at a
 * character boundary; returns the columns copied. */
int canvas_text_cut(const char *utf8, int cols, char *out, size_t cap);

/* The canvas as text: one line per row, trailing spaces removed, '\n' after each row.
 * *out is malloc'ed (free it). Returns 0 or -1 when out of memory. */
int canvas_dump(const canvas *c, char **out, size_t *len);

#endif
