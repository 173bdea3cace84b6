/*
 * tui_main.h — the TUI's entry point, for main.c (only in build/cce, not cce-batch).
 */
#ifndef CCE_TUI_MAIN_H
#define CCE_TUI_MAIN_H

/* `cce tui [MODEL] [options]`; argv[0] is "tui". Returns the exit code: 0 after a quit,
 * 1 on an error (one "cce: error:" line printed), 2 on bad options, 128 + N after signal N. */
int tui_main(int argc, char **argv);

#endif
