#!/usr/bin/env bash
# End-to-end: Ctrl-C on the long batch commands, in each of their phases, measured.
#
# Every case starts a command, sends SIGINT once it is in the phase named (a fixed delay, or a
# delay after a line it prints to stderr), and measures the time from the signal to the exit.
# The command must exit non-zero (130 where it documents it) with "interrupted" or
# "cce: error: ... interrupted" on stderr, within $limit_ms (1 s; 15 s under sanitizers). The
# goal is 0.3 s on a quiet machine; each PASS line prints the measured latency so that a run
# shows it. Models: the synthetic smollm-135m (written here by `cce synth`, with a 49152-entry
# llama2.c tokenizer made from tok512.bin plus filler entries so that text can be fed to it)
# for eval, generate, bench, export and synth; tinystories_2m5 for analyze (whose phases are
# tested by tests/e2e/analyze.sh's owner) and the file-safety checks of the writers.
set -u
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
D=$CCE_DATA
M=$D/llama2c/tinystories_2m5.bin
TK=$D/llama2c/tok512.bin
limit_ms=1000; [ -n "${CCE_TEST_SANITIZER:-}" ] && limit_ms=15000  # instrumented code: one step takes seconds
for i in 1 2 3; do cat "$D/text/tinystories_valid_head.txt"; done > "$T/long.txt"

# The synthetic smollm-135m and a tokenizer with its vocabulary size.
S=$T/smol
if ! "$CCE" synth --like smollm-135m -o "$S" >/dev/null 2>"$T/synth0.err"; then
    echo "FAIL interrupt_setup: cce synth --like smollm-135m: $(tail -1 "$T/synth0.err")"; exit 0
fi
perl -e 'open(F, "<", $ARGV[0]) or die; binmode F; local $/; my $d = <F>;
         for my $i (512 .. 49151) { my $s = "x$i"; $d .= pack("fl<", -1e6, length $s) . $s }
         open(O, ">", $ARGV[1]) or die; binmode O; print O $d' "$TK" "$T/tok49152.bin"
STK=$T/tok49152.bin
for i in $(seq 1 40); do cat "$D/text/tinystories_valid_head.txt"; done > "$T/big.txt"   # 24 MB
PROMPT=$(head -c 6000 "$D/text/tinystories_valid_head.txt" | tr -d '\n"')                 # ~1500 tokens

# interrupt NAME WHEN CMD... : start CMD with stdout/stderr in $T/NAME.{out,err}; WHEN is a
# delay in seconds, or REGEX+DELAY: DELAY seconds after stderr first matches REGEX (at most
# 60 s of waiting for it). Then SIGINT, and wait up to $limit_ms. Sets rc and took (ms); rc -1:
# it ended before the signal, -2: still running after the limit (killed), -3: never reached
# the phase.
interrupt() {
    local name=$1 when=$2; shift 2
    "$@" > "$T/$name.out" 2> "$T/$name.err" &
    local pid=$! t0 waited=0
    if [[ $when == *+* ]]; then
        local re=${when%+*} delay=${when##*+}
        while ! grep -qE "$re" "$T/$name.err" && kill -0 $pid 2>/dev/null && [ $waited -lt 1200 ]; do
            sleep 0.05; waited=$((waited + 1))
        done
        if ! grep -qE "$re" "$T/$name.err"; then
            kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null; rc=-3; took=0; return
        fi
        sleep "$delay"
    else
        sleep "$when"
    fi
    if ! kill -0 $pid 2>/dev/null; then wait $pid; rc=-1; took=0; return; fi  # finished (or died) already
    kill -INT $pid
    t0=$(date +%s%N)
    waited=0
    while kill -0 $pid 2>/dev/null && [ $waited -lt $((limit_ms / 10 + 100)) ]; do sleep 0.01; waited=$((waited + 1)); done
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    if kill -0 $pid 2>/dev/null; then kill -KILL $pid; wait $pid 2>/dev/null; rc=-2; return; fi
    wait $pid; rc=$?
}

judge() {  # judge NAME [EXPECTED_RC]
    local name=$1 want=${2:-}
    if [ $rc -eq -1 ]; then echo "FAIL interrupt_$name: finished or died before the signal: $(head -2 "$T/$name.err" | tr '\n' ' ')"; return 1; fi
    if [ $rc -eq -2 ]; then echo "FAIL interrupt_$name: still running $took ms after SIGINT (does it poll for the interrupt?)"; return 1; fi
    if [ $rc -eq -3 ]; then echo "FAIL interrupt_$name: never reached the phase: $(tail -2 "$T/$name.err" | tr '\n' ' ')"; return 1; fi
    if [ $rc -eq 0 ]; then echo "FAIL interrupt_$name: exit 0 after SIGINT"; return 1; fi
    if [ -n "$want" ] && [ $rc -ne "$want" ]; then echo "FAIL interrupt_$name: exit $rc, expected $want: $(tail -1 "$T/$name.err")"; return 1; fi
    if [ $took -gt $limit_ms ]; then echo "FAIL interrupt_$name: took ${took} ms to stop (> ${limit_ms} ms)"; return 1; fi
    if ! grep -qE 'interrupted|^cce: error: ' "$T/$name.err"; then echo "FAIL interrupt_$name: exit $rc but no 'interrupted' / 'cce: error:' message"; return 1; fi
    if grep -qE 'Sanitizer|runtime error|Segmentation' "$T/$name.err"; then echo "FAIL interrupt_$name: crash report after SIGINT"; return 1; fi
    echo "PASS interrupt_$name (exit $rc, stopped ${took} ms after SIGINT)"
}

# eval: while tokenising a 24 MB text, and inside a forward batch (2048 tokens of smollm-135m)
interrupt eval_tokenising 0.5 "$CCE" eval "$S" --tokenizer "$STK" --text "$T/big.txt"
judge eval_tokenising 130
interrupt eval_forward 1.5 "$CCE" eval "$S" --tokenizer "$STK" --text "$T/long.txt" --max-tokens 100000
judge eval_forward 130
interrupt eval_2m5 1 "$CCE" eval "$M" --tokenizer "$TK" --text "$T/long.txt"
judge eval_2m5 130

# generate: inside a ~1500-token prompt (one batched pass), and while generating
interrupt generate_prompt 1 "$CCE" generate "$S" --tokenizer "$STK" --prompt "$PROMPT" -n 10
judge generate_prompt 130
interrupt generate_tokens 1.5 "$CCE" generate "$S" --ids -n 2000
judge generate_tokens 130

# bench: in the first probes, the prefill, the prompt, the decoding and the probes after them
small="--seq-len 16 --batch 1"   # a short prefill, where the case is about another phase
interrupt bench_probe 'measuring SGEMM+0.3' "$CCE" bench "$S" $small
judge bench_probe 130
interrupt bench_prefill 'prefill+0.5' "$CCE" bench "$S"
judge bench_prefill 130
interrupt bench_prompt 'prompt of+0.3' "$CCE" bench "$S" $small --prompt-len 1024
judge bench_prompt 130
interrupt bench_decode 'decode+0.5' "$CCE" bench "$S" $small --prompt-len 16
judge bench_decode 130
interrupt bench_probe_after 'measuring again+0.2' "$CCE" bench "$S" $small --prompt-len 16 --decode-steps 4
judge bench_probe_after 130

mkdir -p "$T/out"
printf 'PREVIOUS GOOD RESULT\n' > "$T/out/analysis.json"
interrupt analyze 1 "$CCE" analyze "$M" --tokenizer "$TK" --calib "$T/long.txt" --tokens 65536 -o "$T/out/analysis.json"
if judge analyze; then
    if [ "$(cat "$T/out/analysis.json")" != "PREVIOUS GOOD RESULT" ]; then echo "FAIL interrupt_analyze_output_kept: the existing output file was changed"
    elif [ "$(ls -A "$T/out" | wc -l)" -ne 1 ]; then echo "FAIL interrupt_analyze_output_kept: left behind: $(ls -A "$T/out" | tr '\n' ' ')"
    else echo "PASS interrupt_analyze_output_kept"; fi
fi

# the writers (synth, export) stop at the next chunk, exit 130, and leave the previous file and
# no temporary file; smollm-135m writes 538 MB, so the signal lands mid-write
keeps_previous() {  # NAME DIR: the previous model.safetensors is intact and no temp file is left
    local name=$1 dir=$2 left
    left=$(ls "$dir" | grep -c '\.tmp\.' || true)
    if [ "$(cat "$dir/model.safetensors")" = "previous model" ] && [ "$left" -eq 0 ]; then echo "PASS interrupt_${name}_keeps_previous_file"
    else echo "FAIL interrupt_${name}_keeps_previous_file: temp files left: $left, $(head -c 40 "$dir/model.safetensors" | tr -cd '[:print:]')"; fi
}
mkdir -p "$T/synth" "$T/export"
echo "previous model" > "$T/synth/model.safetensors"
echo "previous model" > "$T/export/model.safetensors"
interrupt synth 0.5 "$CCE" synth --like smollm-135m -o "$T/synth"
judge synth 130 && keeps_previous synth "$T/synth"
interrupt export 0.05 "$CCE" export "$S" -o "$T/export" --no-tokenizer   # under 1 s of writing in all
judge export 130 && keeps_previous export "$T/export"
