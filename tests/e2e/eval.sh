#!/usr/bin/env bash
# tests/e2e/eval.sh — `cce eval` and `cce generate` on the real checkpoints, driven through the
# binary, against the reference figures of shared/data/SOURCES.md; plus bad input.
# Needs $CCE (the binary) and $CCE_DATA; prints PASS/FAIL lines like the unit tests.
set -u
CCE=${CCE:-build/cce}
D=${CCE_DATA:-../shared/data}
TEXT=$D/text/tinystories_valid_head.txt
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
# json_num FILE KEY: the number after "KEY": in a one-line JSON object
json_num() { sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" "$1"; }
# near A B TOL: |A-B| <= TOL
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= t) }'; }

# eval_check NAME MODEL REF_LOSS TOL: full text, windows of 256 (the references have 5 digits: TOL 1e-4)
eval_check() {
    local name=$1 model=$2 ref=$3 tol=$4 out=$tmp/$1.json
    if ! "$CCE" eval "$model" --text "$TEXT" --seq-len 256 --json >"$out" 2>"$tmp/$1.err"; then
        fail "$name" "exit $?: $(tail -1 "$tmp/$1.err")"; return
    fi
    local loss tokens windows
    loss=$(json_num "$out" loss); tokens=$(json_num "$out" tokens); windows=$(json_num "$out" windows)
    if near "$loss" "$ref" "$tol" && [ "$tokens" = 291127 ] && [ "$windows" = 1137 ]; then
        pass "$name"
    else
        fail "$name" "loss $loss (expected $ref ± $tol), tokens $tokens (291127), windows $windows (1137)"
    fi
}

eval_check eval_stories260k "$D/llama2c/stories260K.bin" 1.69130 1e-4
eval_check eval_tinystories_2m5 "$D/llama2c/tinystories_2m5.bin" 1.83192 1e-4

# the GGUF copy of stories260K must give the llama2.c loss within 1e-4
a=$(json_num "$tmp/eval_stories260k.json" loss)
if "$CCE" eval "$D/gguf/stories260K.gguf" --text "$TEXT" --json >"$tmp/gguf.json" 2>"$tmp/gguf.err"; then
    b=$(json_num "$tmp/gguf.json" loss)
    if near "$b" "$a" 1e-4 && [ -n "$a" ]; then pass eval_gguf_same_loss; else fail eval_gguf_same_loss "gguf $b vs llama2c $a"; fi
else
    fail eval_gguf_same_loss "exit: $(tail -1 "$tmp/gguf.err")"
fi

# greedy generation from BOS
gen_check() {
    local name=$1 model=$2 want=$3 got
    got=$("$CCE" generate "$model" -n 24 --ids 2>"$tmp/$name.err")
    if [ "$got" = "$want" ]; then pass "$name"; else fail "$name" "got '$got', expected '$want' $(tail -1 "$tmp/$name.err")"; fi
}
gen_check generate_stories260k "$D/llama2c/stories260K.bin" \
    "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292"
gen_check generate_tinystories_2m5 "$D/llama2c/tinystories_2m5.bin" \
    "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 335 311 267 422"
gen_check generate_gguf "$D/gguf/stories260K.gguf" \
    "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292"

# a prompt is encoded with BOS and continued; text output starts with the prompt
out=$("$CCE" generate "$D/llama2c/stories260K.bin" --prompt "Once upon a time" -n 8 2>/dev/null)
case "$out" in "Once upon a time, there was a little girl"*) pass generate_prompt_text;;
    *) fail generate_prompt_text "got '$out'";; esac
if "$CCE" generate "$D/llama2c/stories260K.bin" --prompt "Once upon a time" -n 3 --json >"$tmp/g.json" 2>/dev/null &&
   grep -q '"ids":\[1,403,407,261,378,432,383,286\]' "$tmp/g.json" && grep -q '"tokens_per_s":' "$tmp/g.json"; then
    pass generate_json
else
    fail generate_json "$(cat "$tmp/g.json")"
fi

# --max-tokens limits the stream; JSON carries every documented key
if "$CCE" eval "$D/llama2c/stories260K.bin" --text "$TEXT" --max-tokens 5000 --seq-len 128 --json >"$tmp/m.json" 2>/dev/null &&
   [ "$(json_num "$tmp/m.json" tokens)" = 5000 ] && [ "$(json_num "$tmp/m.json" windows)" = 39 ] &&
   [ "$(json_num "$tmp/m.json" seq_len)" = 128 ] && grep -q '"ppl":' "$tmp/m.json" &&
   grep -q '"seconds":' "$tmp/m.json" && grep -q '"tokens_per_s":' "$tmp/m.json"; then
    pass eval_max_tokens_json
else
    fail eval_max_tokens_json "$(cat "$tmp/m.json")"
fi

# bad input: non-zero exit and one "cce: error:" line naming the problem
bad_check() {  # name, expected substring of the error, command...
    local name=$1 want=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] && printf '%s\n' "$err" | grep -q "^cce: error: .*$want"; then pass "$name"
    else fail "$name" "exit $rc, stderr '$err'"; fi
}
bad_check eval_missing_text "$tmp/no-such.txt" "$CCE" eval "$D/llama2c/stories260K.bin" --text "$tmp/no-such.txt"
bad_check eval_no_text_option "--text" "$CCE" eval "$D/llama2c/stories260K.bin"
bad_check eval_missing_model "$tmp/no-model.bin" "$CCE" eval "$tmp/no-model.bin" --text "$TEXT"
printf 'tiny\n' >"$tmp/short.txt"
bad_check eval_text_too_short "fewer than one window" "$CCE" eval "$D/llama2c/stories260K.bin" --text "$tmp/short.txt"
bad_check eval_bad_seq_len "seq-len" "$CCE" eval "$D/llama2c/stories260K.bin" --text "$TEXT" --seq-len 0
bad_check generate_bad_n "\-\-n" "$CCE" generate "$D/llama2c/stories260K.bin" -n -3
head -c 1000 "$D/llama2c/stories260K.bin" >"$tmp/trunc.bin"
bad_check generate_truncated_model "trunc.bin" "$CCE" generate "$tmp/trunc.bin" --tokenizer "$D/llama2c/tok512.bin"

# bench: every documented key, on a small configuration (figures are measured, not asserted)
if "$CCE" bench "$D/llama2c/stories260K.bin" --peak-size 128 --seq-len 32 --batch 2 --prompt-len 16 --decode-steps 8 \
        --json >"$tmp/b.json" 2>/dev/null; then
    missing=""
    for k in gemm_peak_gflops bandwidth_1t_gbs bandwidth_gbs prefill_tokens_per_s prefill_gflops utilization \
             prompt_tokens_per_s decode_tokens_per_s decode_weight_bytes decode_kv_bytes decode_bandwidth_share \
             open_seconds load_seconds peak_rss_mb probe_buffers_mb; do
        v=$(json_num "$tmp/b.json" $k)
        awk -v v="$v" 'BEGIN { exit !(v != "" && v + 0 > 0) }' || missing="$missing $k"
    done
    # stories260K reads its 1.04 MB of f32 weights per step (260,032 parameters + norms, one embedding row)
    wb=$(json_num "$tmp/b.json" decode_weight_bytes)
    awk -v b="$wb" 'BEGIN { exit !(b > 1.0e6 && b < 1.1e6) }' || missing="$missing decode_weight_bytes=$wb"
    grep -q '"peak_rss_excludes_probes":true' "$tmp/b.json" || missing="$missing peak_rss_excludes_probes"
    if [ -z "$missing" ]; then pass bench_json_keys; else fail bench_json_keys "missing or non-positive:$missing"; fi
else
    fail bench_json_keys "exit $?"
fi
