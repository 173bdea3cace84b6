#!/usr/bin/env bash
# tests/bench.sh — `make bench`: throughput figures, measured, never asserted.
#   - stories260K (the trained default model)
#   - a random-weight model of smollm-135m's shapes (`cce synth`, written to a temp dir)
# Prints each model's `cce bench` figures: SGEMM peak, load time, prefill tokens/s and GFLOP/s,
# utilisation (prefill / SGEMM peak), decode tokens/s, peak RSS. Thread count: $OPENBLAS_NUM_THREADS
# (make bench sets 2).
set -u
BUILD=${BUILD:-build}
CCE=${CCE:-$BUILD/cce}
export CCE_DATA=${CCE_DATA:-$(cd ../shared/data 2>/dev/null && pwd)}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
status=0

echo "== cce bench: stories260K (OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset})"
"$CCE" bench "$CCE_DATA/llama2c/stories260K.bin" || status=1
if [ -f "$CCE_DATA/llama2c/tinystories_2m5.bin" ]; then
    echo; echo "== cce bench: tinystories_2m5"
    "$CCE" bench "$CCE_DATA/llama2c/tinystories_2m5.bin" || status=1
fi
echo; echo "== cce bench: synthetic smollm-135m (random weights)"
if "$CCE" synth --like smollm-135m -o "$tmp/smollm-135m" >/dev/null; then
    "$CCE" bench "$tmp/smollm-135m" || status=1
else
    echo "cce synth failed"; status=1
fi
exit $status
