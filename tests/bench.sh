#!/usr/bin/env bash
# tests/bench.sh — `make bench`: throughput figures, measured, never asserted.
#   - stories260K and tinystories_2m5 (the trained llama2.c checkpoints)
#   - a random-weight model of smollm-135m's shapes (`cce synth`, written to a temp dir), as
#     stored (f32), exported with --dtype f16 and bf16, and as a GGUF q8_0 file, so that the decoder's bytes per token
#     and its share of the read bandwidth show for the stored types it computes on
#   - `cce analyze` on stories260K, tinystories_2m5 and the synthetic smollm-135m
#   - the TUI's frame time and key-to-redraw latency while the analysis runs and while a commit
#     runs (headless), and the re-plan latency after a knob change on all three models
# Each `cce bench` prints (see tui/cmd_bench.c): SGEMM peak and read bandwidth of this machine
# (measured in the same run), load time, prefill tokens/s and GFLOP/s with its share of the
# SGEMM peak, prompt processing tokens/s, decode tokens/s with the bytes it reads per token and
# their share of the bandwidth, peak RSS without the probe buffers. Threads: OpenBLAS's
# ($OPENBLAS_NUM_THREADS; make bench sets 2) and the decoder's ($CCE_THREADS, default every CPU).
# The machine may be shared: compare figures of one run, and look at `uptime` (printed first).
set -u -o pipefail   # a failed measurement fails make bench (every command here is piped into sed or grep)
BUILD=${BUILD:-build}
CCE=${CCE:-$BUILD/cce}
export CCE_DATA=${CCE_DATA:-$(cd ../shared/data 2>/dev/null && pwd)}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
status=0
echo "== $(uptime)"

bench() {  # title, model, bench args...
    local title=$1 model=$2; shift 2
    echo; echo "== cce bench: $title (OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset})"
    "$CCE" bench "$model" "$@" 2>/dev/null || status=1
}
bench stories260K "$CCE_DATA/llama2c/stories260K.bin"
bench tinystories_2m5 "$CCE_DATA/llama2c/tinystories_2m5.bin"
if "$CCE" synth --like smollm-135m -o "$tmp/smollm-135m" >/dev/null 2>&1; then
    bench "synthetic smollm-135m, f32 (random weights)" "$tmp/smollm-135m"
    for t in f16 bf16; do
        if "$CCE" export "$tmp/smollm-135m" -o "$tmp/smollm-135m-$t" --dtype $t --no-tokenizer >/dev/null 2>&1; then
            bench "synthetic smollm-135m, $t" "$tmp/smollm-135m-$t" --peak-size 1024
            rm -rf "$tmp/smollm-135m-$t"
        else
            echo "cce export --dtype $t failed"; status=1
        fi
    done
    if "$CCE" export "$tmp/smollm-135m" -o "$tmp/smollm-135m-q8_0.gguf" --dtype q8_0 --no-tokenizer >/dev/null 2>&1; then
        bench "synthetic smollm-135m, GGUF q8_0" "$tmp/smollm-135m-q8_0.gguf" --peak-size 1024
        rm -f "$tmp/smollm-135m-q8_0.gguf"
    else
        echo "cce export --dtype q8_0 failed"; status=1
    fi
else
    echo "cce synth failed"; status=1
fi

# The compressed models (issue 7): `cce plan` at 10/20/30 % (its defaults: calibration text/train,
# least squares), then `cce bench --plan`: the compressed model's decode speed beside the
# original's measured in the same run, and the speed-up its FLOPs predict.
compressed() {  # name, model, extra args...
    local name=$1 model=$2; shift 2
    echo; echo "== cce bench --plan: $name, decode speed-up of the compressed models"
    for t in 0.1 0.2 0.3; do
        if "$CCE" plan "$model" "$@" --target $t -o "$tmp/plan.json" >/dev/null 2>&1; then
            "$CCE" bench "$model" "$@" --plan "$tmp/plan.json" 2>/dev/null | grep -E '^plan ' | sed "s|$tmp/plan.json|$t target|" || status=1
        else
            echo "cce plan $name --target $t failed"; status=1
        fi
    done
}
compressed stories260K "$CCE_DATA/llama2c/stories260K.bin"
compressed tinystories_2m5 "$CCE_DATA/llama2c/tinystories_2m5.bin" --tokenizer "$CCE_DATA/llama2c/tok512.bin"

# The analysis (issue 3): 4096 calibration tokens; seconds per block by phase, the share of
# block time spent in the BLAS/LAPACK-bound phases (forward sgemm, ssyrk stats, ssyevd, sgesdd),
# and peak RSS (one block's statistics + the calibration hidden states + the weights).
analysis() {  # name, file tag, model, analyze args... (the analysis file is kept for the re-plan figures)
    local name=$1 tag=$2 model=$3; shift 3
    echo; echo "== cce analyze: $name (4096 tokens)"
    "$CCE" analyze "$model" --tokens 4096 -o "$tmp/$tag.analysis.json" --json "$@" 2>/dev/null \
        | sed -e 's/"angular_distance":\[[^]]*\],//' || status=1
}
analysis stories260K s260k "$CCE_DATA/llama2c/stories260K.bin" --calib "$CCE_DATA/text/train"
analysis tinystories_2m5 s2m5 "$CCE_DATA/llama2c/tinystories_2m5.bin" --tokenizer "$CCE_DATA/llama2c/tok512.bin" \
    --calib "$CCE_DATA/text/train"
[ -d "$tmp/smollm-135m" ] && analysis "synthetic smollm-135m" smollm "$tmp/smollm-135m" --random-tokens

# Re-plan latency (DESIGN §6: <= 10 ms): the planner over the cached curves of a whole analysis
# (read from the files above: `cce tui --analysis`), 200 re-plans over the budget ladder 5%..50%
# (tui/script.c `replan-bench`): the build itself (cce_plan_build on the TUI's planner thread)
# and request to adoption by the UI. Keys never wait for it (tui.h).
printf 'wait analysis\nreplan-bench 200\n' > "$tmp/replan.script"
replan() {  # name, tag, model, tui args...
    local name=$1 tag=$2 model=$3; shift 3
    [ -f "$tmp/$tag.analysis.json" ] || return 0
    echo; echo "== cce tui: re-plan latency, $name"
    "$CCE" tui "$model" --analysis "$tmp/$tag.analysis.json" "$@" --script "$tmp/replan.script" | sed "s/^/$name: /" || status=1
}
replan stories260K s260k "$CCE_DATA/llama2c/stories260K.bin"
replan tinystories_2m5 s2m5 "$CCE_DATA/llama2c/tinystories_2m5.bin" --tokenizer "$CCE_DATA/llama2c/tok512.bin"
[ -d "$tmp/smollm-135m" ] && replan "synthetic smollm-135m" smollm "$tmp/smollm-135m"

# The TUI (issue 9): frame time and key-to-redraw latency while the analysis runs on the worker
# thread, headless on a 120x40 canvas (tui/script.c `bench N`: keys that visit every view, one
# every 2 ms; key-to-redraw = dispatch + wake-up handling + render + the curses blit (to /dev/null
# through a real xterm-256color SCREEN; the terminal emulator itself is not timed); frame = render
# alone; full repaint = every cell through curses. Goal: key-to-redraw <= 16 ms.
echo; echo "== cce tui: frame time and key-to-redraw latency during the analysis (headless, 120x40)"
printf 'bench 1500\n' > "$tmp/bench.script"
if [ -f "$CCE_DATA/llama2c/tinystories_2m5.bin" ]; then
    "$CCE" tui "$CCE_DATA/llama2c/tinystories_2m5.bin" --tokenizer "$CCE_DATA/llama2c/tok512.bin" --screen 120x40 --colors 256 \
        --script "$tmp/bench.script" | sed 's/^/tinystories_2m5: /' || status=1
fi
"$CCE" tui "$CCE_DATA/llama2c/stories260K.bin" --screen 120x40 --colors 256 --script "$tmp/bench.script" | sed 's/^/stories260K: /' || status=1

# ... and while a commit runs on the task thread (encode, evaluate before and after, histograms):
# the same keys, started right after `:commit`.
echo; echo "== cce tui: key-to-redraw latency while a commit runs (headless, 120x40)"
printf 'wait analysis\ncmd :commit\nbench 1500\nwait commit\n' > "$tmp/commit.script"
if [ -f "$CCE_DATA/llama2c/tinystories_2m5.bin" ]; then
    CCE_SESSIONS="$tmp/sessions" "$CCE" tui "$CCE_DATA/llama2c/tinystories_2m5.bin" --tokenizer "$CCE_DATA/llama2c/tok512.bin" \
        --screen 120x40 --colors 256 --eval-tokens 65536 --script "$tmp/commit.script" | sed 's/^/tinystories_2m5: /' || status=1
fi
exit $status
