#!/usr/bin/env bash
# End-to-end: the up-front memory check of cce_model_open (engine/resource.c). A model whose
# f32 conversions exceed the budget (CCE_MEM_LIMIT, bytes) is refused before loading with one
# line "cce: error: PATH: needs X, Y available; HINT" and a non-zero exit, by every command;
# under the budget, or for tensors used in place from the mapping (F32, and F16/BF16 weight
# matrices, which stay stored), it loads.
set -u
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
D=$CCE_DATA
ok() { echo "PASS resource_$1"; }
bad() { echo "FAIL resource_$1: $2"; }
bash tests/lib/malformed_gen.sh "$T/m" > "$T/list" 2>"$T/gen.err" || { bad gen "$(tail -1 "$T/gen.err")"; exit 0; }
F16=$T/m/ctl_tiny_llama_f16     # 856 F16 parameters; its 3 norm vectors (24 values) become 96 bytes of f32
head -c 3000 "$D/text/tinystories_valid_head.txt" > "$T/text.txt"

out=$("$CCE" info "$F16" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q 'params *856 total'; then ok f16_loads; else bad f16_loads "rc=$rc $out"; fi

for cmd in info eval; do
    extra=(); [ $cmd = eval ] && extra=(--tokenizer "$D/llama2c/tok512.bin" --text "$T/text.txt")
    out=$(CCE_MEM_LIMIT=95 timeout 5 "$CCE" $cmd "$F16" "${extra[@]}" 2>&1); rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 124 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] &&
       echo "$out" | grep -q "^cce: error: $F16: needs 96 B, 95 B available; .*CCE_MEM_LIMIT"; then
        ok ${cmd}_refused_over_budget
    else bad ${cmd}_refused_over_budget "rc=$rc $out"; fi
done

out=$(CCE_MEM_LIMIT=96 "$CCE" info "$F16" 2>&1); rc=$?
if [ $rc -eq 0 ]; then ok exact_budget_loads; else bad exact_budget_loads "rc=$rc $out"; fi

# all-F32 GGUF: every tensor is used in place, nothing to convert, so even 1 byte of budget is enough
out=$(CCE_MEM_LIMIT=1 "$CCE" info "$D/gguf/stories260K.gguf" 2>&1); rc=$?
if [ $rc -eq 0 ]; then ok mapped_gguf_not_counted; else bad mapped_gguf_not_counted "rc=$rc $out"; fi

# a calibration request that would not fit is refused up front, naming the option that reduces it,
# and leaves an existing output file untouched
echo '{"old": true}' > "$T/analysis.json"
out=$(CCE_MEM_LIMIT=3000000 timeout 10 "$CCE" analyze "$D/llama2c/stories260K.bin" \
      --calib "$D/text/tinystories_valid_head.txt" -o "$T/analysis.json" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 124 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] &&
   echo "$out" | grep -q "^cce: error: .*analysis: needs .* MiB, 2.9 MiB available; reduce --tokens" &&
   [ "$(cat "$T/analysis.json")" = '{"old": true}' ]; then
    ok analyze_refused_over_budget
else bad analyze_refused_over_budget "rc=$rc $out"; fi
out=$(CCE_MEM_LIMIT=64000000 timeout 30 "$CCE" analyze "$D/llama2c/stories260K.bin" --tokens 512 \
      --calib "$D/text/tinystories_valid_head.txt" -o "$T/analysis.json" 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q '"format_version"' "$T/analysis.json"; then ok analyze_within_budget; else bad analyze_within_budget "rc=$rc $out"; fi
