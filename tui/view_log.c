/*
 * view_log.c — the log (a ring of the last LOG_CAP entries) and the message line, and the Log
 * view that shows them.
 *
 * Everything worth remembering goes through tui_log: what was opened, analysis events (each
 * block as it finishes, the end, a cancel, a failure with the engine's message), knob changes,
 * command errors. Warnings and errors are also put on the message line, so a user sees them
 * without opening the log. The view shows the newest entries at the bottom, like a terminal;
 * scrolling goes back in time. Times are seconds since start (masked in headless dumps).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "tui.h"
#include "util.h"

void tui_message(app *a, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->msg, sizeof a->msg, fmt, ap);
    va_end(ap);
    a->msg_level = level;
}

void tui_log(app *a, int level, const char *fmt, ...) {
    int slot = (a->log_first + a->log_n) % LOG_CAP;
    if (a->log_n == LOG_CAP) a->log_first = (a->log_first + 1) % LOG_CAP;
    else a->log_n++;
    log_entry *e = &a->log[slot];
    e->t = cce_now() - a->t0;
    e->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    if (level >= LOG_WARN) {
        snprintf(a->msg, sizeof a->msg, "%s%s", level == LOG_ERROR ? "error: " : "", e->text);
        a->msg_level = level;
    }
}

static const log_entry *entry(const app *a, int i) { return &a->log[(a->log_first + i) % LOG_CAP]; }

/* Entries newest at the bottom, each wrapped under its text column; log_back entries are
 * scrolled off the bottom. */
static void log_draw(app *a, canvas *c, rect r) {
    static const char *tags[] = {"info ", "event", "warn ", "error"};
    static const int roles[] = {ROLE_DEFAULT, ROLE_GOOD, ROLE_WARN, ROLE_ERROR};
    canvas_printf(c, r.x + 1, r.y, r.w - 2, ROLE_HEADER, 0, "Log: %d message%s%s", a->log_n, a->log_n == 1 ? "" : "s",
                  a->log_back ? "  (scrolled back; End returns)" : "");
    int rows = r.h - 1, tx = r.x + 16, tw = r.x + r.w - 1 - tx;
    a->page_rows = rows;
    if (a->log_back > a->log_n - 1) a->log_back = a->log_n > 0 ? a->log_n - 1 : 0;
    int last = a->log_n - a->log_back;   // one past the newest shown
    /* how many entries fit, counting their wrapped rows from the newest back */
    int first = last, used = 0;
    while (first > 0) {
        int n = draw_wrapped(NULL, tx, 0, tw, rows, entry(a, first - 1)->text, 0, 0);
        if (used + n > rows) break;
        used += n;
        first--;
    }
    int y = r.y + 1;
    for (int i = first; i < last; i++) {
        const log_entry *e = entry(a, i);
        char t[32];
        if (a->mask_times) snprintf(t, sizeof t, "%8s", "-");
        else snprintf(t, sizeof t, "%7.2fs", e->t);
        canvas_text(c, r.x + 1, y, 8, t, ROLE_DIM, 0);
        canvas_text(c, r.x + 10, y, 5, tags[e->level & 3], roles[e->level & 3], 0);
        y += draw_wrapped(c, tx, y, tw, r.y + r.h - y, e->text, e->level >= LOG_WARN ? roles[e->level & 3] : ROLE_DEFAULT, 0);
    }
}

static int log_move(app *a, move_kind m) {
    int page = a->page_rows > 1 ? a->page_rows - 1 : 1;
    switch (m) {
    case MOVE_UP: a->log_back++; break;
    case MOVE_DOWN: a->log_back--; break;
    case MOVE_PGUP: a->log_back += page; break;
    case MOVE_PGDN: a->log_back -= page; break;
    case MOVE_HOME: a->log_back = a->log_n; break;
    case MOVE_END: a->log_back = 0; break;
    default: return R_NONE;
    }
    if (a->log_back < 0) a->log_back = 0;
    if (a->log_back > a->log_n - 1) a->log_back = a->log_n > 0 ? a->log_n - 1 : 0;
    return R_REDRAW;
}

const view_ops view_log = {"log", NULL, "Log", log_draw, log_move};
