#!/usr/bin/env bash
# End-to-end: the TUI headless (`cce tui --script`), screens compared with checked-in dumps.
#
# Each tests/e2e/tui/NAME.script runs against stories260K on an in-memory 120x40 screen (a
# "# cce-args: ..." line adds options); every `dump X` it makes must equal
# tests/e2e/tui/NAME/X.txt. The TUI runs in a scratch directory where "data" links to
# $CCE_DATA, so the paths on screen (and the layout that depends on their length) are the
# same wherever the data lives. Timings are masked by the headless mode; the analysis is
# deterministic with OPENBLAS_NUM_THREADS=1.
# To regenerate the expected screens after a deliberate change (and read the diff!):
#     CCE_TUI_UPDATE=1 bash tests/e2e/tui.sh
# Also: bad scripts, options and models fail with one "cce: error:" line, the history file
# is written atomically, and the ASCII screens contain no byte above 0x7f.
set -u
export OPENBLAS_NUM_THREADS=1
unset CCE_SESSIONS   # sessions go to sessions/ in the scratch directory
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/tui"
T=$(mktemp -d); [ -n "${CCE_TUI_KEEP:-}" ] && echo "scratch: $T" >&2 || trap 'rm -rf "$T"' EXIT
if [ ! -f "$CCE_DATA/llama2c/stories260K.bin" ]; then echo "PASS tui_skipped_no_data"; exit 0; fi
CCE=$(cd "$(dirname "$CCE")" && pwd)/$(basename "$CCE")
mkdir -p "$T/run"; ln -s "$(cd "$CCE_DATA" && pwd)" "$T/run/data"
cd "$T/run" || exit 1
export CCE_DATA=data
M=data/llama2c/stories260K.bin

for script in "$dir"/*.script; do
    name=$(basename "$script" .script)
    out="$T/$name"; mkdir -p "$out"
    args=$(sed -n 's/^# cce-args: //p' "$script")
    # shellcheck disable=SC2086
    if ! "$CCE" tui "$M" --script "$script" --dump "$out" $args > "$T/$name.stdout" 2> "$T/$name.err"; then
        echo "FAIL tui_${name}: exit $?: $(head -3 "$T/$name.err" | tr '\n' ' ')"; continue
    fi
    if [ -n "${CCE_TUI_UPDATE:-}" ]; then
        rm -rf "${dir:?}/$name"; mkdir -p "$dir/$name"; cp "$out"/*.txt "$dir/$name/"
        echo "PASS tui_${name}_updated ($(ls "$out" | wc -l) screens)"; continue
    fi
    n=0; bad=0
    for want in "$dir/$name"/*.txt; do
        [ -f "$want" ] || { echo "FAIL tui_${name}: no expected screens in $dir/$name (run with CCE_TUI_UPDATE=1)"; bad=1; break; }
        got="$out/$(basename "$want")"; n=$((n + 1))
        if [ ! -f "$got" ]; then echo "FAIL tui_${name}_$(basename "$want" .txt): the script no longer dumps it"; bad=1
        elif ! cmp -s "$want" "$got"; then
            echo "FAIL tui_${name}_$(basename "$want" .txt): screen differs:"
            diff "$want" "$got" | head -12 | sed 's/^/    /'; bad=1
        fi
    done
    for got in "$out"/*.txt; do
        [ -f "$dir/$name/$(basename "$got")" ] || { echo "FAIL tui_${name}_$(basename "$got" .txt): new screen without an expected copy"; bad=1; }
    done
    [ $bad -eq 0 ] && echo "PASS tui_${name} ($n screens)"
done
[ -n "${CCE_TUI_UPDATE:-}" ] && exit 0

# what the screens must show, beyond being unchanged (so an update cannot bless a regression)
S="$T/main"
if grep -q 'pending' "$S/02_calibrated.txt" && grep -cq 'pending' "$S/03_two_blocks.txt" \
   && [ "$(grep -c 'pending' "$S/02_calibrated.txt")" -gt "$(grep -c 'pending' "$S/03_two_blocks.txt")" ] \
   && ! grep -q 'pending' "$S/04_layers_done.txt"; then echo "PASS tui_blocks_fill_in"
else echo "FAIL tui_blocks_fill_in: pending rows did not go away as blocks finished"; fi
c1=$(grep -o '[0-9]* of 172 below' "$S/07_spectrum_ffn_act.txt"); c2=$(grep -o '[0-9]* of 172 below' "$S/09_spectrum_eps_0.2.txt")
if [ -n "$c1" ] && [ -n "$c2" ] && [ "$c1" != "$c2" ] && grep -q '(ε 2e-2)' "$S/08_spectrum_eps_2e-2.txt" \
   && grep -q 'ε 0.2' "$S/09_spectrum_eps_0.2.txt"; then echo "PASS tui_eps_changes_count ($c1 -> $c2)"
else echo "FAIL tui_eps_changes_count: '$c1' -> '$c2'"; fi
if grep -q 'block 1 × block 2: CKA 0\.[0-9]' "$S/14_heat_cursor.txt" && grep -q '\[0\.' "$S/14_heat_cursor.txt"; then
    echo "PASS tui_heat_cursor_readout"
else echo "FAIL tui_heat_cursor_readout: $(grep 'CKA' "$S/14_heat_cursor.txt" | head -2)"; fi
if LC_ALL=C grep -q '[^ -~]' "$T/ascii"/*.txt; then echo "FAIL tui_ascii_only: $(LC_ALL=C grep -l '[^ -~]' "$T/ascii"/*.txt | head -3)"
else echo "PASS tui_ascii_only"; fi
if grep -q 'terminal too small: 59×16' "$T/sizes/too_small.txt"; then echo "PASS tui_too_small_message"
else echo "FAIL tui_too_small_message"; fi
if grep -q 'cancelled: 1 of 5 blocks' "$T/cancel/cancelled.txt" && grep -q 'analysis done' "$T/cancel/rerun_done.txt"; then
    echo "PASS tui_cancel_rerun"
else echo "FAIL tui_cancel_rerun"; fi
if grep -q '^:view$' "$T/cmdline/complete_view.txt" && grep -q 'completions: target tau' "$T/cmdline/complete_knob_ambiguous.txt" \
   && grep -q '^:xset eps 2$' "$T/cmdline/edited.txt" && grep -q 'τ 5e-2' "$T/cmdline/tau_set.txt"; then
    echo "PASS tui_readline_completion_history"
else echo "FAIL tui_readline_completion_history"; fi

# the plan (plan.script): eps decides in threshold mode, the budget is met, pins and forces
# re-plan, a commit measures perplexity, histograms are compared, the quit question
P="$T/plan"
r2=$(grep -o 'decide: [-0-9.]*%' "$P/02_threshold_eps_1e-3.txt"); r3=$(grep -o 'decide: [-0-9.]*%' "$P/03_threshold_eps_5e-2.txt")
if [ -n "$r2" ] && [ -n "$r3" ] && [ "$r2" != "$r3" ]; then echo "PASS tui_plan_eps_changes_plan ($r2 -> $r3)"
else echo "FAIL tui_plan_eps_changes_plan: '$r2' -> '$r3'"; fi
if grep -qE '20\.[0-9]% removed \(target 20\.0%\)' "$P/01_plan_budget.txt" && grep -q 'target 30%' "$P/12_changed_after_commit.txt" \
   && grep -q '+h0' "$P/05_pinned_h0.txt" && grep -q 'pins 1 · forces 1' "$P/06_forced_block3.txt" \
   && grep -q '^   3 .* block ' "$P/06_forced_block3.txt"; then echo "PASS tui_plan_budget_pins_forces"
else echo "FAIL tui_plan_budget_pins_forces"; fi
if grep -q 'last commit #1 (the plan shown)' "$P/08_committed.txt" && grep -q 'loss (nats) / ppl  *[0-9.]* / [0-9.]*  *[0-9.]* / [0-9.]*' "$P/08_committed.txt" \
   && grep -q 'ppl [0-9]' "$P/08_committed.txt" && grep -q 'has changed since' "$P/12_changed_after_commit.txt"; then
    echo "PASS tui_commit_measures"
else echo "FAIL tui_commit_measures: $(grep -A3 'last commit' "$P/08_committed.txt" | head -4 | tr '\n' '|')"; fi
if grep -q 'committed #1' "$P/09_hist_committed.txt" && [ "$(grep -o 'TV 0\.[0-9]' "$P/09_hist_committed.txt" | wc -l)" -ge 5 ]; then
    echo "PASS tui_hist_original_vs_committed"
else echo "FAIL tui_hist_original_vs_committed"; fi
if grep -q 'Unsaved changes' "$P/13_quit_asks.txt" && ! grep -q 'Unsaved changes' "$P/14_stays.txt" \
   && grep -q 'stories260K.bin  ' "$P/11_saved.txt" && grep -q 'stories260K.bin\*' "$P/12_changed_after_commit.txt"; then
    echo "PASS tui_quit_asks_when_unsaved"
else echo "FAIL tui_quit_asks_when_unsaved"; fi
[ -s sessions/autosave.json ] && grep -q '"commits"' sessions/autosave.json && echo "PASS tui_commit_autosaved" \
    || echo "FAIL tui_commit_autosaved: no sessions/autosave.json after a commit"

# :export gives the plan `cce apply` encodes to the loss :commit measured (±1e-4)
json_num() { sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" | head -1; }
want=$(awk '/"after":/{f=1} f && /"loss":/{gsub(/[^-0-9.eE+]/, "", $2); print $2; exit}' sessions/tour.json)
if "$CCE" apply "$M" --plan plan.json -o "$T/applied" > "$T/apply.out" 2>&1 \
   && got=$("$CCE" eval "$T/applied" --text data/text/tinystories_valid_head.txt --max-tokens 4096 --json 2>/dev/null | json_num loss) \
   && [ -n "$want" ] && [ -n "$got" ] && awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }'; then
    echo "PASS tui_export_apply_eval_same_loss (commit $want, cce apply + eval $got)"
else echo "FAIL tui_export_apply_eval_same_loss: commit '$want', applied '${got:-}': $(tail -2 "$T/apply.out" | tr '\n' ' ')"; fi

# :load restores the same plan: in a new process after the analysis is recomputed, and at once
# with --session (the plan as saved, before any analysis); a malformed or foreign session file
# is refused with one line and the TUI goes on
printf 'cmd :load tour\nwait analysis\ncmd :export plan2.json\nkey 5\nexpect restored from session tour\n' > "$T/reload.script"
printf 'cmd :export plan3.json\n' > "$T/reload3.script"
if "$CCE" tui "$M" --script "$T/reload.script" --dump "$T" 2> "$T/reload.err" && cmp -s plan.json plan2.json \
   && "$CCE" tui "$M" --session tour --script "$T/reload3.script" 2>> "$T/reload.err" && cmp -s plan.json plan3.json; then
    echo "PASS tui_session_reload_same_plan"
else echo "FAIL tui_session_reload_same_plan: $(head -2 "$T/reload.err") $(diff plan.json plan2.json 2>&1 | head -4 | tr '\n' ' ')"; fi
sed 's/"format_version":\t"1.0"/"format_version":\t"7.0"/' sessions/tour.json > sessions/future.json
sed '0,/"sha256":\t"[0-9a-f]*"/s//"sha256":\t"0000000000000000000000000000000000000000000000000000000000000000"/' sessions/tour.json > sessions/other.json
sed 's/"heads_removed":\t\[\([0-9]\)/"heads_removed":\t[99, \1/' sessions/tour.json > sessions/range.json
head -c 300 sessions/tour.json > sessions/cut.json
awk '/"sha256":/ && ++n == 2 { sub(/"[0-9a-f]+"/, "\"1111111111111111111111111111111111111111111111111111111111111111\"") } 1' \
    sessions/tour.json > sessions/calib.json   # the second sha256 is the calibration's
printf 'wait analysis\ncmd :load future\nexpect major version 7 is not supported\ncmd :load other\nexpect made for another model\ncmd :load range\nexpect a removed head is outside 0..7\ncmd :load cut\nexpect not valid JSON\ncmd :load calib\nexpect was made with the calibration text\ncmd :load ../etc\nexpect is not allowed\ncmd :load nosuch\nexpect saved:\nkey 5\nexpect removed (target 20.0%%)\n' > "$T/hostile.script"
if "$CCE" tui "$M" --script "$T/hostile.script" 2> "$T/hostile.err"; then echo "PASS tui_session_hostile_refused"
else echo "FAIL tui_session_hostile_refused: $(head -2 "$T/hostile.err")"; fi

# errors: one line, named, non-zero
expect_error() {  # name, expected exit code, pattern, command...
    local name=$1 code=$2 pat=$3; shift 3
    "$@" > "$T/e.out" 2> "$T/e.err"; local rc=$?
    if [ $rc -eq "$code" ] && [ "$(wc -l < "$T/e.err")" -eq 1 ] && grep -q "^cce: error: .*$pat" "$T/e.err"; then echo "PASS tui_error_$name"
    else echo "FAIL tui_error_$name: exit $rc, stderr: $(head -3 "$T/e.err" | tr '\n' ' ')"; fi
}
printf 'key j\nfrobnicate now\n' > "$T/bad.script"
expect_error script_command 1 'bad.script:2: unknown script command' "$CCE" tui "$M" --script "$T/bad.script"
printf 'key Nope\n' > "$T/badkey.script"
expect_error script_key 1 'badkey.script:1: unknown key name' "$CCE" tui "$M" --script "$T/badkey.script"
expect_error script_missing 1 'nonexistent.script: cannot open' "$CCE" tui "$M" --script "$T/nonexistent.script"
expect_error model 1 'nonexistent.bin' "$CCE" tui "$T/nonexistent.bin" --script "$T/bad.script"
printf 'not a model at all' > "$T/junk.bin"
expect_error junk_model 1 'junk.bin' "$CCE" tui "$T/junk.bin" --script "$T/bad.script"
expect_error calib 1 'nope.txt' "$CCE" tui "$M" --calib "$T/nope.txt" --script "$T/bad.script"
printf 'hello there\n' > "$T/short.txt"; printf 'wait analysis\nexpect error\n' > "$T/wait.script"
expect_error calib_too_short 1 'short.txt: calibration: the text has' "$CCE" tui "$M" --calib "$T/short.txt" --script "$T/wait.script"
expect_error screen 2 'screen' "$CCE" tui "$M" --screen 0x5 --script "$T/bad.script"
expect_error headless 2 'needs --script' "$CCE" tui "$M" --headless
expect_error no_terminal 1 'needs a terminal' "$CCE" tui "$M"

# the command history: saved atomically after each command, recalled by the next run
printf 'cmd :set tau 0.02\ncmd :view spectrum\n' > "$T/h1.script"
printf 'keys :\nkey Up\nexpect :view spectrum\nkey Up\nexpect :set tau 0.02\n' > "$T/h2.script"
if "$CCE" tui "$M" --script "$T/h1.script" --history "$T/hist/.history" 2>"$T/h.err" \
   && [ "$(cat "$T/hist/.history")" = "$(printf 'set tau 0.02\nview spectrum')" ] \
   && "$CCE" tui "$M" --script "$T/h2.script" --history "$T/hist/.history" 2>>"$T/h.err" \
   && [ "$(ls -A "$T/hist")" = ".history" ]; then echo "PASS tui_history_file"
else echo "FAIL tui_history_file: $(cat "$T/hist/.history" 2>&1 | tr '\n' '|') $(head -2 "$T/h.err")"; fi

# a model without a tokenizer, with an analysis of random tokens (`make bench`'s re-plan figure):
# the planner runs on the read curves; the calibration text is not asked to match
if "$CCE" synth --like tiny -o "$T/tiny" >/dev/null 2>&1 &&
   "$CCE" analyze "$T/tiny" --random-tokens --tokens 256 -o "$T/tiny.an.json" >/dev/null 2>&1; then
    printf 'wait analysis\nreplan-bench 4\n' > "$T/rp.script"
    out=$("$CCE" tui "$T/tiny" --analysis "$T/tiny.an.json" --script "$T/rp.script" 2>&1); rc=$?
    n=$("$CCE" info "$T/tiny" --json 2>/dev/null | sed -n 's/.*"n_layers":\([0-9]*\).*/\1/p')
    if [ $rc -eq 0 ] && echo "$out" | grep -q "re-plan: 4 re-plans over targets 5%..50%, $n of $n blocks analysed"; then echo "PASS tui_replan_no_tokenizer"
    else echo "FAIL tui_replan_no_tokenizer: exit $rc: $(echo "$out" | head -2 | tr '\n' ' ')"; fi
else
    echo "FAIL tui_replan_no_tokenizer: cce synth/analyze failed"
fi
