/*
 * canvas.c — the cell buffer (see canvas.h).
 *
 * Each cell stores its glyph as UTF-8 bytes, so blitting needs no conversion and a text dump
 * is the concatenation of the glyphs. Sanitising happens once, on the way in: a glyph that
 * would not occupy exactly one terminal column (controls, wide East Asian characters, emoji,
 * combining marks, malformed bytes) is stored as '?', so the grid and the terminal never
 * disagree about where a column is. The width table is our own, not wcwidth(), so the result
 * does not depend on the locale the tests run under.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "canvas.h"

/* Decode one UTF-8 character of s (at most n bytes): *cp and the byte length, or 0 on
 * malformed input (overlong, surrogate, out of range, truncated). */
static int utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
    if (n == 0) return 0;
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) { *cp = c; return 1; }
    else if ((c & 0xe0) == 0xc0) { len = 2; c &= 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { len = 3; c &= 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { len = 4; c &= 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

/* Does code point cp occupy exactly one column on a terminal? */
static int one_column(unsigned cp) {
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;            // controls
    if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x1ab0 && cp <= 0x1aff) ||
        (cp >= 0x1dc0 && cp <= 0x1dff) || (cp >= 0x20d0 && cp <= 0x20ff) ||
        (cp >= 0xfe20 && cp <= 0xfe2f) || cp == 0x200b || cp == 0x200c || cp == 0x200d ||
        cp == 0xfeff)
        return 0;                                                     // combining, zero width
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
        (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
        (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || cp >= 0x20000)
        return 0;                                                     // wide
    return 1;
}

/* Next character of s as a storable glyph in g (5 bytes); returns bytes consumed (>= 1 while
 * *s != 0, so callers always advance). */
static int next_glyph(const char *s, int ascii, char g[5]) {
    size_t n = strnlen(s, 4);
    unsigned cp;
    int len = utf8_decode((const unsigned char *)s, n, &cp);
    if (len == 0) {
        strcpy(g, "?");
        return 1;
    }
    if (cp == '\t') strcpy(g, " ");
    else if (!one_column(cp) || (ascii && cp >= 0x80)) strcpy(g, "?");
    else {
        memcpy(g, s, (size_t)len);
        g[len] = 0;
    }
    return len;
}

int canvas_init(canvas *c, int w, int h) {
    memset(c, 0, sizeof *c);
    return canvas_resize(c, w, h);
}

void canvas_free(canvas *c) {
    free(c->cells);
    c->cells = NULL;
    c->w = c->h = 0;
}

int canvas_resize(canvas *c, int w, int h) {
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w > 4096 || h > 4096) return -1;
    if (w != c->w || h != c->h || !c->cells) {
        canvas_cell *n = malloc((size_t)w * (size_t)h * sizeof *n);
        if (!n) return -1;
        free(c->cells);
        c->cells = n;
        c->w = w;
        c->h = h;
    }
    canvas_clear(c);
    return 0;
}

void canvas_clear(canvas *c) {
    for (int i = 0; i < c->w * c->h; i++) {
        memset(&c->cells[i], 0, sizeof c->cells[i]);
        c->cells[i].g[0] = ' ';
    }
    c->cur_x = c->cur_y = -1;
}

canvas_cell *canvas_at(canvas *c, int x, int y) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return NULL;
    return &c->cells[(size_t)y * c->w + x];
}

void canvas_put(canvas *c, int x, int y, const char *glyph, int role, int attr) {
    canvas_cell *cell = canvas_at(c, x, y);
    if (!cell) return;
    if (!glyph || !*glyph) glyph = " ";
    next_glyph(glyph, c->ascii, cell->g);
    cell->role = (uint8_t)role;
    cell->attr = (uint8_t)attr;
}

int canvas_text(canvas *c, int x, int y, int maxw, const char *s, int role, int attr) {
    if (!s || y < 0 || y >= c->h) return 0;
    int limit = c->w - x;
    if (maxw >= 0 && maxw < limit) limit = maxw;
    int col = 0;
    while (*s && col < limit) {
        char g[5];
        s += next_glyph(s, c->ascii, g);
        canvas_cell *cell = canvas_at(c, x + col, y);
        if (cell) {
            memcpy(cell->g, g, sizeof g);
            cell->role = (uint8_t)role;
            cell->attr = (uint8_t)attr;
        }
        col++;
    }
    return col;
}

int canvas_printf(canvas *c, int x, int y, int maxw, int role, int attr, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return canvas_text(c, x, y, maxw, buf, role, attr);
}

void canvas_fill(canvas *c, rect r, const char *glyph, int role, int attr) {
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) canvas_put(c, x, y, glyph, role, attr);
}

void canvas_add_attr(canvas *c, rect r, int attr) {
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) {
            canvas_cell *cell = canvas_at(c, x, y);
            if (cell) cell->attr |= (uint8_t)attr;
        }
}

void canvas_set_role(canvas *c, rect r, int role) {
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) {
            canvas_cell *cell = canvas_at(c, x, y);
            if (cell) cell->role = (uint8_t)role;
        }
}

int canvas_text_width(const char *s) {
    int n = 0;
    char g[5];
    while (s && *s) {
        s += next_glyph(s, 0, g);
        n++;
    }
    return n;
}

int canvas_text_cut(const char *s, int cols, char *out, size_t cap) {
    size_t o = 0;
    int n = 0;
    if (cap == 0) return 0;
    while (s && *s && n < cols) {
        char g[5];
        int len = next_glyph(s, 0, g);
        if (o + (size_t)len + 1 > cap) break;
        memcpy(out + o, s, (size_t)len);
        o += (size_t)len;
        s += len;
        n++;
    }
    out[o] = 0;
    return n;
}

int canvas_dump(const canvas *c, char **out, size_t *len) {
    size_t cap = (size_t)c->w * c->h * 4 + (size_t)c->h + 1, o = 0;
    char *buf = malloc(cap);
    if (!buf) return -1;
    for (int y = 0; y < c->h; y++) {
        size_t row_start = o, last_nonspace = o;
        for (int x = 0; x < c->w; x++) {
            const char *g = c->cells[(size_t)y * c->w + x].g;
            size_t gl = strlen(g);
            memcpy(buf + o, g, gl);
            o += gl;
            if (!(gl == 1 && g[0] == ' ')) last_nonspace = o;
        }
        o = last_nonspace > row_start ? last_nonspace : row_start;
        buf[o++] = '\n';
    }
    buf[o] = 0;
    *out = buf;
    if (len) *len = o;
    return 0;
}
