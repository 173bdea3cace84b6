/*
 * test_tui.c — unit tests of the TUI's terminal-free parts: the canvas (clipping, UTF-8
 * sanitising, text dumps), theme fallbacks, key names, knobs, the action table and its
 * consistency, command parsing and completion, number formatting. The screens themselves are
 * tested end to end by tests/e2e/tui.sh (headless dumps) and tests/e2e/tui_tmux.sh.
 * Linked with the TUI objects (tests/tui/ is built by the Makefile's TUI test rule).
 */
#include <stdlib.h>
#include <string.h>
#include "harness.h"
#include "../../tui/tui.h"

static char *dump_of(canvas *c) {
    char *t = NULL;
    if (canvas_dump(c, &t, NULL)) return NULL;
    return t;
}

TEST(canvas_text_clips_and_dumps) {
    canvas c;
    CHECK(canvas_init(&c, 10, 3) == 0);
    CHECK_EQ_INT(canvas_text(&c, 2, 0, -1, "hello world", 0, 0), 8);   // clipped at the edge
    CHECK_EQ_INT(canvas_text(&c, 0, 1, 3, "abcdef", 0, 0), 3);          // clipped by maxw
    CHECK_EQ_INT(canvas_text(&c, -5, 2, -1, "x", 0, 0), 1);             // off-grid: counted, not written
    canvas_text(&c, 0, 5, -1, "nowhere", 0, 0);                          // outside: ignored
    char *t = dump_of(&c);
    CHECK(t);
    CHECK_STR(t, "  hello wo\nabc\n\n");
    free(t);
    canvas_free(&c);
}

TEST(canvas_sanitises_utf8) {
    canvas c;
    CHECK(canvas_init(&c, 12, 1) == 0);
    /* ε (2 bytes) kept; 中 (wide) → ?; invalid byte → ?; combining acute → ?; tab → space */
    canvas_text(&c, 0, 0, -1, "\xce\xb5" "a\xe4\xb8\xad" "b\xff" "c" "e\xcc\x81" "\t|", 0, 0);
    char *t = dump_of(&c);
    CHECK_STR(t, "\xce\xb5" "a?b?ce? |\n");
    free(t);
    CHECK_EQ_INT(canvas_text_width("\xce\xb5\xce\xbb" "ab"), 4);
    char cut[16];
    CHECK_EQ_INT(canvas_text_cut("\xce\xb5\xce\xbb" "ab", 3, cut, sizeof cut), 3);
    CHECK_STR(cut, "\xce\xb5\xce\xbb" "a");
    /* ASCII mode: every non-ASCII character becomes '?' */
    canvas_clear(&c);
    c.ascii = 1;
    canvas_text(&c, 0, 0, -1, "\xce\xb5=1 \xe2\x96\x88", 0, 0);
    t = dump_of(&c);
    CHECK_STR(t, "?=1 ?\n");
    free(t);
    canvas_free(&c);
}

TEST(canvas_roles_attrs_resize) {
    canvas c;
    CHECK(canvas_init(&c, 4, 2) == 0);
    canvas_fill(&c, (rect){1, 0, 2, 2}, "#", ROLE_BAR, 0);
    canvas_add_attr(&c, (rect){0, 1, 4, 1}, ATTR_REVERSE);
    CHECK_EQ_INT(canvas_at(&c, 1, 0)->role, ROLE_BAR);
    CHECK_EQ_INT(canvas_at(&c, 0, 0)->role, ROLE_DEFAULT);
    CHECK_EQ_INT(canvas_at(&c, 3, 1)->attr, ATTR_REVERSE);
    CHECK_EQ_INT(canvas_at(&c, 3, 0)->attr, 0);
    CHECK(canvas_at(&c, 4, 0) == NULL && canvas_at(&c, 0, -1) == NULL);
    CHECK(canvas_resize(&c, 7, 3) == 0);
    CHECK_EQ_INT(c.w, 7);
    CHECK_EQ_INT(canvas_at(&c, 1, 0)->role, ROLE_DEFAULT);   // cleared
    CHECK(canvas_resize(&c, 100000, 3) != 0);                 // refused, old grid kept
    CHECK_EQ_INT(c.w, 7);
    canvas_free(&c);
}

TEST(theme_fallbacks) {
    CHECK_EQ_INT(theme_detect_depth(256, NULL, "xterm-256color"), DEPTH_256);
    CHECK_EQ_INT(theme_detect_depth(256, "1", "xterm-256color"), DEPTH_NONE);   // NO_COLOR
    CHECK_EQ_INT(theme_detect_depth(256, "", "xterm-256color"), DEPTH_256);     // empty NO_COLOR is unset
    CHECK_EQ_INT(theme_detect_depth(8, NULL, "screen"), DEPTH_8);
    CHECK_EQ_INT(theme_detect_depth(0, NULL, "vt100"), DEPTH_NONE);
    CHECK_EQ_INT(theme_detect_depth(2, NULL, "xterm"), DEPTH_NONE);
    CHECK(theme_detect_utf8("UTF-8", "xterm"));
    CHECK(!theme_detect_utf8("ANSI_X3.4-1968", "xterm"));   // LANG=C
    CHECK(!theme_detect_utf8("UTF-8", "vt100"));
    theme t;
    theme_init(&t, DEPTH_NONE, 0);
    for (int r = 0; r < ROLE_COUNT; r++) {
        theme_style_t s = theme_style(&t, r);
        CHECK_MSG(s.fg == -1 && s.bg == -1, "role %d has a colour without colour", r);
    }
    CHECK(theme_style(&t, ROLE_SELECTED).attr & ATTR_REVERSE);   // selection survives NO_COLOR
    for (int i = 0; i < 10; i++) CHECK_MSG((unsigned char)t.g.ramp[i][0] < 0x80, "ASCII ramp glyph %d is not ASCII", i);
    CHECK_STR(t.g.eps, "eps");
    theme_init(&t, DEPTH_8, 1);
    for (int r = 0; r < ROLE_COUNT; r++) {
        theme_style_t s = theme_style(&t, r);
        CHECK_MSG(s.fg < 8 && s.bg < 8, "8-colour role %d uses colour %d/%d", r, s.fg, s.bg);
    }
    CHECK_EQ_INT(theme_ramp_level(0.0, 0, 1), 0);
    CHECK_EQ_INT(theme_ramp_level(1.0, 0, 1), 9);
    CHECK_EQ_INT(theme_ramp_level(0.55, 0, 1), 5);
    CHECK_EQ_INT(theme_ramp_level(-3, 0, 1), 0);
    CHECK_EQ_INT(theme_ramp_level(0.0 / 0.0, 0, 1), 0);
}

TEST(key_names_round_trip) {
    const char *names[] = {"Enter", "Esc", "Tab", "S-Tab", "Space", "Backspace", "Delete", "Up", "Down", "Left",
                           "Right", "PgUp", "PgDn", "Home", "End", "F1", "F10", "C-l", "j", "?", ":", "\xce\xb5"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int k = tui_key_parse(names[i]);
        CHECK_MSG(k != 0, "'%s' not parsed", names[i]);
        char back[16];
        tui_key_name(k, back, sizeof back);
        CHECK_MSG(!strcmp(back, names[i]), "'%s' -> %d -> '%s'", names[i], k, back);
    }
    CHECK_EQ_INT(tui_key_parse("C-l"), 12);
    CHECK_EQ_INT(tui_key_parse("nonsense"), 0);
    CHECK_EQ_INT(tui_key_parse(""), 0);
    CHECK_EQ_INT(tui_key_parse("\xff"), 0);
}

TEST(knob_ladder_and_parse) {
    double v = 1e-3;
    const double up[] = {2e-3, 5e-3, 1e-2, 2e-2};
    for (int i = 0; i < 4; i++) {
        v = knob_nudge(KNOB_EPS, v, +1);
        CHECK_NEAR(v, up[i], 1e-12);
    }
    CHECK_NEAR(knob_nudge(KNOB_EPS, 0, +1), 1e-6, 1e-15);
    CHECK_NEAR(knob_nudge(KNOB_EPS, 1e-6, -1), 0, 0);
    CHECK_NEAR(knob_nudge(KNOB_EPS, 0.5, +1), 0.999, 1e-12);   // clamped to the range
    CHECK_NEAR(knob_nudge(KNOB_EPS, 0.999, -1), 0.5, 1e-12);
    CHECK_NEAR(knob_nudge(KNOB_EPS, 3e-3, -1), 2e-3, 1e-12);    // off the ladder: to the next step
    CHECK_NEAR(knob_nudge(KNOB_TARGET, 0.3, +1), 0.35, 1e-12);
    CHECK_NEAR(knob_nudge(KNOB_TARGET, 0, -1), 0, 0);
    CHECK_NEAR(knob_nudge(KNOB_ALPHA, 1, +1), 2, 1e-12);
    double x;
    char why[128];
    CHECK(knob_parse(KNOB_TARGET, "30%", &x, why, sizeof why) == 0);
    CHECK_NEAR(x, 0.3, 1e-12);
    CHECK(knob_parse(KNOB_EPS, "1e-3", &x, why, sizeof why) == 0);
    CHECK_NEAR(x, 1e-3, 1e-15);
    CHECK(knob_parse(KNOB_EPS, "2", &x, why, sizeof why) != 0);
    CHECK(strstr(why, "outside"));
    CHECK(knob_parse(KNOB_EPS, "abc", &x, why, sizeof why) != 0);
    CHECK(knob_parse(KNOB_EPS, "0.1x", &x, why, sizeof why) != 0);
    CHECK(knob_parse(KNOB_EPS, "nan", &x, why, sizeof why) != 0);
    CHECK(knob_parse(KNOB_ALPHA, "30%", &x, why, sizeof why) != 0);   // % only for target
    char b[32];
    knob_format(KNOB_EPS, 1e-3, b, sizeof b);
    CHECK_STR(b, "1e-3");
    knob_format(KNOB_TAU, 2.5e-2, b, sizeof b);
    CHECK_STR(b, "2.5e-2");
    knob_format(KNOB_EPS, 0.2, b, sizeof b);
    CHECK_STR(b, "0.2");
    knob_format(KNOB_TARGET, 0.3, b, sizeof b);
    CHECK_STR(b, "30%");
    CHECK_EQ_INT(knob_find("tau"), KNOB_TAU);
    CHECK_EQ_INT(knob_find("\xce\xb5"), KNOB_EPS);
    CHECK_EQ_INT(knob_find("rho"), -1);
}

TEST(action_table_is_consistent) {
    for (int i = 0; i < tui_n_actions; i++) {
        const action *x = &tui_actions[i];
        CHECK_MSG(x->name && x->help && x->fn, "action %d incomplete", i);
        CHECK_MSG(x->keys[0] || x->cmd, "action %s has neither a key nor a command", x->name);
        for (int j = i + 1; j < tui_n_actions; j++) {
            const action *y = &tui_actions[j];
            CHECK_MSG(strcmp(x->name, y->name), "duplicate action name %s", x->name);
            CHECK_MSG(!x->cmd || !y->cmd || strcmp(x->cmd, y->cmd), "duplicate command %s", x->cmd);
            if (x->ctx != y->ctx) continue;
            for (int a = 0; a < 4 && x->keys[a]; a++)
                for (int b = 0; b < 4 && y->keys[b]; b++)
                    CHECK_MSG(x->keys[a] != y->keys[b], "key %d bound twice in one context (%s, %s)", x->keys[a], x->name,
                              y->name);
        }
    }
    for (int v = 0; v < VIEW_COUNT; v++) CHECK_MSG(tui_view_key(v) != 0, "view %d has no key", v);
    const char *need[] = {"set", "layer", "view", "help", "quit", "log"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        int found = 0;
        for (int k = 0; k < tui_n_actions; k++) found |= tui_actions[k].cmd && !strcmp(tui_actions[k].cmd, need[i]);
        CHECK_MSG(found, "command :%s missing", need[i]);
    }
}

/* All completions of text at word_start in line, space-separated. */
static void completions(const char *line, int start, const char *text, char *out, size_t cap) {
    out[0] = 0;
    size_t o = 0;
    for (int st = 0;; st++) {
        char *m = tui_complete(line, start, text, st);
        if (!m) break;
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " " : "", m);
        free(m);
    }
}

TEST(completion) {
    char out[512];
    completions("se", 0, "se", out, sizeof out);
    CHECK_STR(out, "set search");
    completions("pin 2 h", 6, "h", out, sizeof out);   // the second argument of :pin is a kind
    CHECK_STR(out, "heads");
    completions("force 1 w", 8, "w", out, sizeof out);
    CHECK_STR(out, "wq wk wv wo w1 w3 w2");
    completions("pin ", 4, "", out, sizeof out);   // the block number is not completed
    CHECK_STR(out, "");
    completions("set e", 4, "e", out, sizeof out);
    CHECK_STR(out, "eps");
    completions("set ", 4, "", out, sizeof out);
    CHECK_STR(out, "alpha beta gamma eps tau target");
    completions("view h", 5, "h", out, sizeof out);
    CHECK_STR(out, "heatmaps histograms help");
    completions("l", 0, "l", out, sizeof out);
    CHECK_STR(out, "log layer load");
    completions("quit ", 5, "", out, sizeof out);   // quit takes no argument
    CHECK_STR(out, "");
    completions("set eps ", 8, "", out, sizeof out);   // no completion for values
    CHECK_STR(out, "");
}

TEST(commands_change_state) {
    app *a = calloc(1, sizeof *a);
    CHECK(a);
    theme_init(&a->th, DEPTH_NONE, 1);
    for (int k = 0; k < KNOB_COUNT; k++) a->knob[k] = tui_knobs[k].def;
    int fl = tui_run_command(a, ":set eps 0.05");
    CHECK(fl & R_REDRAW);
    CHECK_NEAR(a->knob[KNOB_EPS], 0.05, 1e-12);
    CHECK_EQ_INT(a->knob_sel, KNOB_EPS);
    tui_run_command(a, "set target 25%");
    CHECK_NEAR(a->knob[KNOB_TARGET], 0.25, 1e-12);
    tui_run_command(a, "set eps 7");
    CHECK_NEAR(a->knob[KNOB_EPS], 0.05, 1e-12);   // refused, unchanged
    CHECK(strstr(a->msg, "outside"));
    CHECK_EQ_INT(a->msg_level, LOG_ERROR);
    tui_run_command(a, "frobnicate");
    CHECK(strstr(a->msg, "unknown command"));
    tui_run_command(a, "l");
    CHECK(strstr(a->msg, "ambiguous"));
    tui_run_command(a, "quit now");
    CHECK(strstr(a->msg, "takes no argument"));
    /* the knobs changed: quitting asks first; Esc stays, n quits */
    CHECK(a->dirty);
    CHECK(!(tui_run_command(a, "quit") & R_QUIT));
    CHECK(a->asking_quit);
    CHECK(!(tui_dispatch_key(a, 'j') & R_QUIT));   // other keys: still asking
    CHECK(a->asking_quit);
    CHECK(!(tui_dispatch_key(a, TK_ESC) & R_QUIT));
    CHECK(!a->asking_quit);
    CHECK(!(tui_run_command(a, "q") & R_QUIT));   // a unique prefix
    CHECK(tui_dispatch_key(a, 'n') & R_QUIT);
    a->dirty = 0;   // nothing unsaved: no question
    CHECK(tui_run_command(a, "quit") & R_QUIT);
    CHECK(!a->asking_quit);
    /* knob changes ask for a re-plan; all of alpha, beta, gamma at 0 is refused */
    CHECK(tui_run_command(a, "set target 0.3") & R_REPLAN);
    tui_run_command(a, "set beta 0");
    tui_run_command(a, "set gamma 0");
    CHECK(!(tui_run_command(a, "set alpha 0") & R_REPLAN));
    CHECK_NEAR(a->knob[KNOB_ALPHA], 1, 0);
    CHECK(strstr(a->msg, "nothing to minimise"));
    tui_run_command(a, "view spectrum");
    CHECK_EQ_INT(a->view, VIEW_SPECTRUM);
    tui_run_command(a, "view nosuch");
    CHECK_EQ_INT(a->view, VIEW_SPECTRUM);
    CHECK(strstr(a->msg, "no view named"));
    /* keys go through the same table */
    a->knob_sel = KNOB_TAU;
    a->knob[KNOB_TAU] = 1e-2;
    tui_dispatch_key(a, '+');
    CHECK_NEAR(a->knob[KNOB_TAU], 2e-2, 1e-12);
    tui_dispatch_key(a, ']');
    CHECK_EQ_INT(a->knob_sel, KNOB_TARGET);
    tui_dispatch_key(a, '3');
    CHECK_EQ_INT(a->view, VIEW_HEATMAP);
    a->dirty = 0;
    CHECK(tui_dispatch_key(a, 'q') & R_QUIT);
    CHECK(tui_dispatch_key(a, TK_RESIZE) & R_RELAYOUT);
    CHECK(tui_dispatch_key(a, 'r') & R_RESTART);
    tui_dispatch_key(a, 'Z');
    CHECK(strstr(a->msg, "no action"));
    CHECK(a->log_n > 0);   // knob changes and errors were logged
    free(a);
}

TEST(number_formats) {
    char b[32];
    fmt_num(0, b, sizeof b); CHECK_STR(b, "0");
    fmt_num(0.2145, b, sizeof b); CHECK_STR(b, "0.214");
    fmt_num(9.75, b, sizeof b); CHECK_STR(b, "9.75");
    fmt_num(1234.4, b, sizeof b); CHECK_STR(b, "1234");
    fmt_num(0.00123, b, sizeof b); CHECK_STR(b, "1.2e-3");
    fmt_num(0.0099999, b, sizeof b); CHECK_STR(b, "1e-2");
    fmt_num(-2.5e7, b, sizeof b); CHECK_STR(b, "-2.5e7");
    fmt_count(227264, b, sizeof b); CHECK_STR(b, "227,264");
    fmt_count(999, b, sizeof b); CHECK_STR(b, "999");
    fmt_count(-1000, b, sizeof b); CHECK_STR(b, "-1,000");
}

int main(void) {
    RUN(canvas_text_clips_and_dumps);
    RUN(canvas_sanitises_utf8);
    RUN(canvas_roles_attrs_resize);
    RUN(theme_fallbacks);
    RUN(key_names_round_trip);
    RUN(knob_ladder_and_parse);
    RUN(action_table_is_consistent);
    RUN(completion);
    RUN(commands_change_state);
    RUN(number_formats);
    return harness_done();
}
