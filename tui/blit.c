/*
 * blit.c — the only file that talks to curses: opening and restoring the terminal, reading
 * keys as tui.h key codes, and copying a canvas to the screen.
 *
 * The terminal is opened with newterm (initscr exits on failure; newterm lets us print one
 * line and return), in cbreak mode with signals left on, so Ctrl-C is SIGINT and reaches the
 * handler in tui_main.c; ncurses keeps its own SIGWINCH (→ KEY_RESIZE) and SIGTSTP handling.
 * term_close is idempotent and registered with atexit, so every way out restores the
 * terminal. A blit writes each row as runs of cells with the same style (one attrset and one
 * addnstr per run; ncursesw decodes the UTF-8) and lets curses compute the difference to the
 * screen, so an unchanged frame costs almost nothing on the wire.
 */
#include <langinfo.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define NCURSES_WIDECHAR 1
#include <curses.h>
#include "tui.h"

static SCREEN *screen;
static int active, atexit_done, have_default_colors;

void term_close(void) {
    if (!active) return;
    active = 0;
    curs_set(1);
    endwin();
    if (screen) delscreen(screen);
    screen = NULL;
    fflush(stdout);
}

static short colour_or_default(short c, int is_bg) {
    if (c >= 0 || have_default_colors) return c;
    return is_bg ? COLOR_BLACK : COLOR_WHITE;
}

static void init_pairs(const theme *t) {
    if (t->depth == DEPTH_NONE) return;
    for (int r = 0; r < ROLE_COUNT && r + 1 < COLOR_PAIRS; r++) {
        theme_style_t s = theme_style(t, r);
        short fg = s.fg, bg = s.bg;
        if (t->depth == DEPTH_8 || COLORS < 256) {   // keep to the 8 ANSI colours
            if (fg > 7) fg = 7;
            if (bg > 7) bg = 0;
        }
        init_pair((short)(r + 1), colour_or_default(fg, 0), colour_or_default(bg, 1));
    }
}

int term_open(app *a, int force_depth, char *err, size_t cap) {
    if (!isatty(0) || !isatty(1)) {
        snprintf(err, cap, "the TUI needs a terminal on stdin and stdout (scripted runs: --headless --script FILE)");
        return -1;
    }
    const char *term = getenv("TERM");
    if (!term || !*term) {
        snprintf(err, cap, "TERM is not set; cannot drive the terminal");
        return -1;
    }
    screen = newterm(NULL, stdout, stdin);
    if (!screen) {
        snprintf(err, cap, "cannot use terminal type '%s' (no terminfo entry?)", term);
        return -1;
    }
    set_term(screen);
    active = 1;
    if (!atexit_done) atexit(term_close);
    atexit_done = 1;
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    intrflush(stdscr, FALSE);
    set_escdelay(25);
    curs_set(0);
    int ncolors = 0;
    const char *no_color = getenv("NO_COLOR");
    if (!(no_color && *no_color) && force_depth != 0 && has_colors() && start_color() == OK) {
        ncolors = COLORS;
        have_default_colors = use_default_colors() == OK;
    }
    theme_depth d = theme_detect_depth(ncolors, no_color, term);
    if (force_depth >= 0 && force_depth < (int)d) d = force_depth >= 256 ? DEPTH_256 : force_depth >= 8 ? DEPTH_8 : DEPTH_NONE;
    int utf8 = !a->ascii_forced && theme_detect_utf8(nl_langinfo(CODESET), term);
    theme_init(&a->th, d, utf8);
    init_pairs(&a->th);
    a->w = getmaxx(stdscr);
    a->h = getmaxy(stdscr);
    return 0;
}

int term_open_offscreen(app *a, int w, int h, char *err, size_t cap) {
    FILE *out = fopen("/dev/null", "w"), *in = fopen("/dev/null", "r");
    if (!out || !in) {
        if (out) fclose(out);
        if (in) fclose(in);
        snprintf(err, cap, "cannot open /dev/null");
        return -1;
    }
    screen = newterm("xterm-256color", out, in);
    if (!screen) {
        fclose(out);
        fclose(in);
        snprintf(err, cap, "no terminfo entry for xterm-256color");
        return -1;
    }
    set_term(screen);
    active = 1;
    if (!atexit_done) atexit(term_close);
    atexit_done = 1;
    resizeterm(h, w);
    if (a->th.depth != DEPTH_NONE && has_colors() && start_color() == OK) {
        have_default_colors = use_default_colors() == OK;
        init_pairs(&a->th);
    }
    return 0;   // the FILEs stay open for the life of the process (curses writes to out)
}

void term_size(int *w, int *h) {
    *w = getmaxx(stdscr);
    *h = getmaxy(stdscr);
}

void term_force_repaint(void) { clearok(curscr, TRUE); }

static int map_key(int rc, wint_t ch) {
    if (rc == KEY_CODE_YES) {
        switch (ch) {
        case KEY_UP: return TK_UP;
        case KEY_DOWN: return TK_DOWN;
        case KEY_LEFT: return TK_LEFT;
        case KEY_RIGHT: return TK_RIGHT;
        case KEY_PPAGE: return TK_PGUP;
        case KEY_NPAGE: return TK_PGDN;
        case KEY_HOME: return TK_HOME;
        case KEY_END: return TK_END;
        case KEY_ENTER: return TK_ENTER;
        case KEY_BACKSPACE: return TK_BACKSPACE;
        case KEY_DC: return TK_DELETE;
        case KEY_BTAB: return TK_BTAB;
        case KEY_RESIZE: return TK_RESIZE;
        default:
            if (ch >= KEY_F(1) && ch <= KEY_F(10)) return TK_F1 + (int)(ch - KEY_F(1));
            return 0;
        }
    }
    switch (ch) {
    case '\r': case '\n': return TK_ENTER;
    case 27: return TK_ESC;
    case '\t': return TK_TAB;
    case 127: case 8: return TK_BACKSPACE;
    default: return (int)ch;
    }
}

int term_read_key(void) {
    for (;;) {
        wint_t ch;
        int rc = wget_wch(stdscr, &ch);
        if (rc == ERR) return 0;
        int k = map_key(rc, ch);
        if (k) return k;   // unknown function keys are skipped
    }
}

static attr_t attrs_of(const theme *t, int role, int extra) {
    theme_style_t s = theme_style(t, role);
    int at = s.attr | extra;
    attr_t r = A_NORMAL;
    if (at & ATTR_BOLD) r |= A_BOLD;
    if (at & ATTR_REVERSE) r |= A_REVERSE;
    if (at & ATTR_UNDERLINE) r |= A_UNDERLINE;
    if (at & ATTR_DIM) r |= A_DIM;
    if (t->depth != DEPTH_NONE) r |= COLOR_PAIR(role + 1);
    return r;
}

void term_blit(const app *a, const canvas *c) {
    char run[4096];
    for (int y = 0; y < c->h && y < getmaxy(stdscr); y++) {
        int x = 0;
        while (x < c->w) {
            const canvas_cell *first = &c->cells[(size_t)y * c->w + x];
            int x0 = x;
            size_t o = 0;
            while (x < c->w) {
                const canvas_cell *cell = &c->cells[(size_t)y * c->w + x];
                if (cell->role != first->role || cell->attr != first->attr) break;
                size_t gl = strlen(cell->g);
                if (o + gl >= sizeof run) break;
                memcpy(run + o, cell->g, gl);
                o += gl;
                x++;
            }
            run[o] = 0;
            attrset(attrs_of(&a->th, first->role, first->attr));
            mvaddnstr(y, x0, run, (int)o);
        }
    }
    attrset(A_NORMAL);
    if (c->cur_x >= 0 && c->cur_y >= 0) {
        curs_set(1);
        move(c->cur_y, c->cur_x);
    } else curs_set(0);
    refresh();
}
