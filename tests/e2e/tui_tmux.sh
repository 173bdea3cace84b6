#!/usr/bin/env bash
# End-to-end: the real terminal path of `cce tui`, in tmux (a private server on its own socket).
# Each session runs `cce tui` on stories260K in a pane of a given size, the test sends keys
# with send-keys and reads the screen with capture-pane, and the pane's shell records the exit
# code and `stty -a` before and after, so "the terminal is restored" is checked, not assumed.
# Covers: the views appear, ε changes the spectrum count, the heatmap cursor reads out, keys
# work while the analysis runs, Esc cancels, resize to 80x24 and below the minimum, q with
# unsaved changes asks and n quits with status 0, a commit shows its phase and progress while
# keys keep working, measures perplexity, Esc cancels a commit, y saves the session and quits,
# SIGTERM and Ctrl-C restore the terminal (143, 130), NO_COLOR gives no colour escapes,
# TERM=vt100 and LANG=C give ASCII only. Without tmux it prints SKIP.
set -u
CCE=$(cd "$(dirname "$CCE")" && pwd)/$(basename "$CCE")
CCE_DATA=$(cd "$CCE_DATA" 2>/dev/null && pwd)
if ! command -v tmux >/dev/null 2>&1; then echo "SKIP tui_tmux: tmux is not installed"; exit 0; fi
M="$CCE_DATA/llama2c/stories260K.bin"
BIG="$CCE_DATA/llama2c/tinystories_2m5.bin"
TOK="$CCE_DATA/llama2c/tok512.bin"
if [ ! -f "$M" ]; then echo "PASS tui_tmux_skipped_no_data"; exit 0; fi
T=$(mktemp -d)
TM=(tmux -S "$T/sock" -f /dev/null)
trap '"${TM[@]}" kill-server >/dev/null 2>&1; rm -rf "$T"' EXIT
mkdir -p "$T/run"

# start NAME W H ENV... -- ARGS... : cce tui ARGS in a new W x H session with ENV set
start() {
    local name=$1 w=$2 h=$3; shift 3
    local envs=() args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    args=("$@")
    local cmd="cd '$T/run' && stty -a > '$T/$name.before'; env CCE_SESSIONS='$T/run' OPENBLAS_NUM_THREADS=1 ${envs[*]} '$CCE' tui ${args[*]}; echo \$? > '$T/$name.rc'; stty -a > '$T/$name.after'; sleep 600"
    "${TM[@]}" new-session -d -s "$name" -x "$w" -y "$h" "$cmd"
}
screen() { "${TM[@]}" capture-pane -p -t "$1"; }
keys() { local s=$1; shift; "${TM[@]}" send-keys -t "$s" "$@"; }
# wait_for SESSION PATTERN [SECONDS]: 0 once the screen matches (grep -E), 1 on timeout
wait_for() {
    local i n=$(( ${3:-10} * 20 ))
    for ((i = 0; i < n; i++)); do
        screen "$1" | grep -qE -- "$2" && return 0
        sleep 0.05
    done
    return 1
}
wait_rc() {  # SESSION: wait for the exit code file
    local i
    for ((i = 0; i < 200; i++)); do [ -s "$T/$1.rc" ] && [ -s "$T/$1.after" ] && return 0; sleep 0.05; done
    return 1
}
ok() { echo "PASS tui_tmux_$1"; }
bad() { echo "FAIL tui_tmux_$1: $2"; screen "$3" 2>/dev/null | head -${4:-6} | sed 's/^/    /'; }
restored() {  # NAME EXPECTED_RC LABEL
    if ! wait_rc "$1"; then bad "$3" "no exit recorded" "$1"; return; fi
    local rc; rc=$(cat "$T/$1.rc")
    if [ "$rc" != "$2" ]; then bad "$3" "exit $rc, expected $2" "$1"
    elif ! cmp -s "$T/$1.before" "$T/$1.after"; then bad "$3" "terminal modes differ: $(diff "$T/$1.before" "$T/$1.after" | head -3 | tr '\n' ' ')" "$1"
    elif screen "$1" | grep -q 'blk heads'; then bad "$3" "the TUI is still on the screen" "$1"
    else ok "$3 (exit $rc, stty unchanged)"; fi
}

# ---- the tour at 120x40, UTF-8
start tour 120 40 LANG=C.UTF-8 -- "'$M'"
if wait_for tour 'analysis done' 30 && screen tour | grep -q 'blk heads' && screen tour | grep -q '▶  0'; then ok opens
else bad opens "no finished Layers view" tour 12; fi
v=1
for step in "2:eigenvalues" "3:CKA" "m:heads of block 0 \(8\)\]" "4:activations" "?:Keys in every view" "L:analysis finished" "1:blk heads"; do
    keys tour "${step%%:*}"
    wait_for tour "${step#*:}" 5 || { bad views "key ${step%%:*} did not show '${step#*:}'" tour 8; v=0; break; }
done
[ $v -eq 1 ] && ok views
keys tour 2; wait_for tour 'eigenvalues' 5
n0=$(screen tour | grep -oE '[0-9]+ of 64 below' | head -1)
keys tour ':set eps 0.2' Enter
if wait_for tour 'below ε·λmax \(ε 0\.2\)' 5; then
    n1=$(screen tour | grep -oE '[0-9]+ of 64 below' | head -1)
    if [ -n "$n1" ] && [ "$n0" != "$n1" ] && [ "${n1%% *}" -gt 0 ]; then ok "eps_changes_count ($n0 -> $n1)"
    else bad eps_changes_count "count '$n0' -> '$n1'" tour 4; fi
else bad eps_changes_count "ε 0.2 not shown" tour 4; fi
keys tour 3; keys tour m; keys tour m   # the tour left it on the heads matrix: heads -> groups -> layers
keys tour Home; keys tour l; keys tour j; keys tour l
if wait_for tour 'block 1 × block 2: CKA 0\.[0-9]{4}' 5; then ok heat_cursor
else bad heat_cursor "no readout for block 1 x block 2" tour 40; fi
if "${TM[@]}" capture-pane -p -e -t tour | grep -qE $'\e\\[[0-9;]*(3[0-7]|4[0-7]|38;5;[0-9]+|48;5;[0-9]+)[;m]'; then ok colours_by_default
else bad colours_by_default "no colour escapes in a colour terminal" tour 2; fi

# ---- resize: 80x24, below the minimum, back
"${TM[@]}" resize-window -t tour -x 80 -y 24
keys tour 1
if wait_for tour 'blk 0/4' 5 && [ "$(screen tour | wc -l)" -le 24 ] && screen tour | head -1 | grep -q '1 Layers' \
   && screen tour | grep -q 'target 20%'; then ok resize_80x24
else bad resize_80x24 "layout at 80x24" tour 24; fi
"${TM[@]}" resize-window -t tour -x 50 -y 12
if wait_for tour 'terminal too small: 50×12' 5; then ok resize_too_small
else bad resize_too_small "no 'too small' message" tour 12; fi
"${TM[@]}" resize-window -t tour -x 120 -y 40
if wait_for tour 'Heatmaps' 5 && wait_for tour 'blk heads' 5; then ok resize_back
else bad resize_back "not redrawn at 120x40" tour 10; fi
keys tour q   # eps was changed: it asks
if wait_for tour 'Unsaved changes.*y: save and quit' 5; then ok quit_asks_when_unsaved
else bad quit_asks_when_unsaved "no question on q after :set eps" tour 3; fi
keys tour n
restored tour 0 quit_restores

# ---- commit (tinystories_2m5: a few seconds): phase and progress, keys meanwhile, measured
# perplexity, Esc cancels a second commit, y saves the session and quits
if [ -f "$BIG" ]; then
    start commit 120 40 LANG=C.UTF-8 -- "'$BIG'" --tokenizer "'$TOK'" --eval-tokens 16384
    if wait_for commit 'analysis done' 30; then
        keys commit ':commit' Enter
        if wait_for commit 'commit [1-5]/5: ' 30; then
            keys commit 5
            if wait_for commit 'committing: step [1-5] of 5' 5 && screen commit | grep -q 'commit [1-5]/5'; then ok commit_progress_keys_work
            else bad commit_progress_keys_work "Plan view did not show the running commit" commit 40; fi
        else bad commit_progress_keys_work "no commit phase in the status line" commit 40; fi
        if wait_for commit 'last commit #1 \(the plan shown\)' 90 && screen commit | grep -qE 'ppl [0-9]+\.[0-9]{2}' \
           && screen commit | grep -qE 'loss \(nats\) / ppl +[0-9.]+ / [0-9.]+ +[0-9.]+ / [0-9.]+'; then ok commit_measures_ppl
        else bad commit_measures_ppl "no measured perplexity" commit 40; fi
        keys commit ':set target 0.3' Enter
        keys commit ':commit' Enter
        if wait_for commit 'commit [1-5]/5: ' 30; then
            keys commit Escape
            if wait_for commit 'commit cancelled; nothing changed' 20 && screen commit | grep -q 'last commit #1 '; then ok esc_cancels_commit
            else bad esc_cancels_commit "no cancel message" commit 40; fi
        else bad esc_cancels_commit "the second commit did not start" commit 40; fi
        keys commit q
        if wait_for commit 'Unsaved changes' 5; then keys commit y; fi
        restored commit 0 commit_quit_saves
        if [ -s "$T/run/tinystories_2m5.json" ] && grep -q '"cce-session"' "$T/run/tinystories_2m5.json" \
           && grep -q '"commits":' "$T/run/tinystories_2m5.json" && [ -s "$T/run/autosave.json" ]; then ok session_saved_on_y
        else bad session_saved_on_y "no session file after y: $(ls "$T/run" | tr '\n' ' ')" commit 3; fi
    else bad commit_progress_keys_work "the analysis did not finish" commit 10; fi
fi

# ---- keys while the analysis runs, and Esc cancels it (a longer job: tinystories_2m5, 16k tokens)
if [ -f "$BIG" ]; then
    start busy 120 40 LANG=C.UTF-8 -- "'$BIG'" --tokenizer "'$TOK'" --tokens 16384
    if wait_for busy 'analysing' 20; then
        keys busy '?'
        if wait_for busy 'Keys in every view' 2 && ! screen busy | grep -q 'analysis done'; then ok keys_while_running
        else bad keys_while_running "help did not open while the analysis ran" busy 3; fi
        keys busy Escape
        if wait_for busy 'cancelled: [0-9] of 6 blocks' 10; then ok esc_cancels
        else bad esc_cancels "no 'cancelled' status" busy 40; fi
        keys busy r
        keys busy L
        if wait_for busy 'analysis started.*' 5 && [ "$(screen busy | grep -c 'analysis started')" -eq 2 ] \
           && wait_for busy 'analysis done: 6 blocks' 30; then ok rerun
        else bad rerun "r did not run the analysis again" busy 40; fi
    else bad keys_while_running "the analysis was never seen running" busy 10; fi
    keys busy q
    restored busy 0 quit_while_running
fi

# ---- signals: SIGTERM (143) and Ctrl-C (130) restore the terminal
start term 100 30 LANG=C.UTF-8 -- "'$M'"
wait_for term 'analysis done' 30
pid=$(pgrep -n -f "^$CCE tui ")   # the newest cce tui (not the pane's shell)
if [ -n "$pid" ]; then kill -TERM "$pid"; restored term 143 sigterm_restores
else bad sigterm_restores "cce not found" term; fi
start intr 100 30 LANG=C.UTF-8 -- "'$M'"
wait_for intr 'analysis done' 30
keys intr C-c
restored intr 130 ctrl_c_restores

# ---- fallbacks: NO_COLOR, TERM=vt100, LANG=C
start nocolor 100 30 LANG=C.UTF-8 NO_COLOR=1 -- "'$M'"
if wait_for nocolor 'analysis done' 30; then
    if "${TM[@]}" capture-pane -p -e -t nocolor | grep -qE $'\e\\[[0-9;]*(3[0-7]|4[0-7]|38;5;[0-9]+|48;5;[0-9]+)[;m]'; then
        bad no_color "colour escapes with NO_COLOR=1" nocolor 2
    elif ! "${TM[@]}" capture-pane -p -e -t nocolor | grep -qE $'\e\\[[0-9;]*7[;m]'; then
        bad no_color "no reverse video left to mark the status line and selection" nocolor 2
    else ok no_color; fi
fi
keys nocolor q
for fb in "vt100:TERM=vt100 LANG=C.UTF-8" "lang_c:LANG=C LC_ALL=C"; do
    name=${fb%%:*}
    # shellcheck disable=SC2086
    start "$name" 100 30 ${fb#*:} -- "'$M'"
    if wait_for "$name" 'analysis done' 30; then
        keys "$name" 2; wait_for "$name" 'eigenvalues' 5
        if screen "$name" | LC_ALL=C grep -q '[^ -~]'; then bad "ascii_$name" "non-ASCII bytes on screen" "$name" 4
        elif screen "$name" | grep -q 'eps 1e-3' && screen "$name" | grep -q 'lambda'; then ok "ascii_$name"
        else bad "ascii_$name" "no ASCII knob labels" "$name" 30; fi
    else bad "ascii_$name" "did not finish" "$name" 10; fi
    keys "$name" q
done
