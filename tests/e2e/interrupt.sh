#!/usr/bin/env bash
# End-to-end: Ctrl-C on long batch commands. `cce eval` on tinystories_2m5.bin over a long text
# (the evaluation text three times, minutes of work) gets SIGINT after ~1 s and must exit
# non-zero within 2 s (15 s under sanitizers) saying "interrupted" or "cce: error:". `cce analyze`
# with -o onto an existing file gets the same treatment, and the file must be unchanged, with
# no temporary file left beside it.
set -u
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
D=$CCE_DATA
M=$D/llama2c/tinystories_2m5.bin
TK=$D/llama2c/tok512.bin
limit=2; [ -n "${CCE_TEST_SANITIZER:-}" ] && limit=15  # instrumented code: one batch takes seconds
for i in 1 2 3; do cat "$D/text/tinystories_valid_head.txt"; done > "$T/long.txt"

# interrupt NAME CMD... : start CMD, SIGINT after 1 s, wait up to $limit s. Sets rc, took, out.
interrupt() {
    local name=$1; shift
    "$@" > "$T/$name.out" 2> "$T/$name.err" &
    local pid=$! t0
    sleep 1
    if ! kill -0 $pid 2>/dev/null; then rc=-1; took=0; return; fi  # finished (or died) already
    kill -INT $pid
    t0=$(date +%s%N)
    local waited=0
    while kill -0 $pid 2>/dev/null && [ $waited -lt $((limit * 20 + 20)) ]; do sleep 0.05; waited=$((waited + 1)); done
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    if kill -0 $pid 2>/dev/null; then kill -KILL $pid; wait $pid 2>/dev/null; rc=-2; return; fi
    wait $pid; rc=$?
}

judge() {  # judge NAME
    local name=$1
    if [ $rc -eq -1 ]; then echo "FAIL interrupt_$name: finished or died within 1 s, before the signal: $(head -2 "$T/$name.err" | tr '\n' ' ')"; return 1; fi
    if [ $rc -eq -2 ]; then echo "FAIL interrupt_$name: still running ${limit}+ s after SIGINT (does it poll cli_interrupted?)"; return 1; fi
    if [ $rc -eq 0 ]; then echo "FAIL interrupt_$name: exit 0 after SIGINT"; return 1; fi
    if [ $took -gt $((limit * 1000)) ]; then echo "FAIL interrupt_$name: took ${took} ms to stop (> ${limit} s)"; return 1; fi
    if ! grep -qE 'interrupted|^cce: error: ' "$T/$name.err"; then echo "FAIL interrupt_$name: exit $rc but no 'interrupted' / 'cce: error:' message"; return 1; fi
    if grep -qE 'Sanitizer|runtime error|Segmentation' "$T/$name.err"; then echo "FAIL interrupt_$name: crash report after SIGINT"; return 1; fi
    echo "PASS interrupt_$name (exit $rc, stopped ${took} ms after SIGINT)"
}

interrupt eval "$CCE" eval "$M" --tokenizer "$TK" --text "$T/long.txt"
judge eval

mkdir -p "$T/out"
printf 'PREVIOUS GOOD RESULT\n' > "$T/out/analysis.json"
interrupt analyze "$CCE" analyze "$M" --tokenizer "$TK" --calib "$T/long.txt" --tokens 65536 -o "$T/out/analysis.json"
if judge analyze; then
    if [ "$(cat "$T/out/analysis.json")" != "PREVIOUS GOOD RESULT" ]; then echo "FAIL interrupt_analyze_output_kept: the existing output file was changed"
    elif [ "$(ls -A "$T/out" | wc -l)" -ne 1 ]; then echo "FAIL interrupt_analyze_output_kept: left behind: $(ls -A "$T/out" | tr '\n' ' ')"
    else echo "PASS interrupt_analyze_output_kept"; fi
fi

# synth (and export: same writer) stop at the next chunk, exit 130, and leave the previous file and
# no temporary file. qwen2.5-0.5b writes ~2 GB, so the signal always lands mid-write.
mkdir -p "$T/synth"
echo "previous model" > "$T/synth/model.safetensors"
"$CCE" synth --like qwen2.5-0.5b -o "$T/synth" >/dev/null 2>"$T/synth.err" &
pid=$!
sleep 0.5
kill -INT $pid 2>/dev/null
t0=$(date +%s%N)
wait $pid; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
left=$(ls "$T/synth" | grep -c '\.tmp\.' || true)
if [ $rc -eq 130 ] && [ "$(cat "$T/synth/model.safetensors")" = "previous model" ] && [ "$left" -eq 0 ] &&
   grep -q "^cce: error: .*interrupted" "$T/synth.err"; then
    echo "PASS interrupt_synth_keeps_previous_file (exit 130, stopped ${ms} ms after SIGINT)"
else echo "FAIL interrupt_synth_keeps_previous_file: rc=$rc after ${ms} ms, temp files left: $left, $(tail -1 "$T/synth.err")"; fi
