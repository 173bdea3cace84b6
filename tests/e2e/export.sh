#!/usr/bin/env bash
# End-to-end: `cce export` (llama2.c and GGUF -> Hugging Face directory) and `cce synth`.
# The exported directory must load (`cce info`) and evaluate to the same loss as the original.
set -u
ok() { echo "PASS export_$1"; }
bad() { echo "FAIL export_$1: $2"; }
D=$CCE_DATA
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
head -c 30000 "$D/text/tinystories_valid_head.txt" > "$T/eval.txt"

# loss field of an `eval --json` line
loss_of() { sed -n 's/.*"loss":\([-0-9.eE+]*\).*/\1/p'; }
# equal within 1e-6 (absolute)?
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d < 1e-6) }'; }

# 1. llama2.c -> HF, with tokenizer.json
out=$("$CCE" export "$D/llama2c/stories260K.bin" -o "$T/hf" --json 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q '"params":260032' && [ -f "$T/hf/tokenizer.json" ]; then ok llama2c_with_tokenizer
else bad llama2c_with_tokenizer "rc=$rc $out"; fi
# the weights alone (works even if the tokenizer cannot be saved)
out=$("$CCE" export "$D/llama2c/stories260K.bin" -o "$T/hf_notok" --no-tokenizer --json 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q '"dir":"'"$T"'/hf_notok","params":260032' && [ -f "$T/hf_notok/model.safetensors" ]; then ok llama2c_weights
else bad llama2c_weights "rc=$rc $out"; fi

# 2. cce info on the export
out=$("$CCE" info "$T/hf_notok" --json 2>&1)
if echo "$out" | grep -q '"format":"hf","arch":"llama","dim":64,"n_layers":5,"n_heads":8,"n_kv_heads":4,"head_dim":8,"hidden_dim":172,"vocab_size":512' \
   && echo "$out" | grep -q '"params":260032' && echo "$out" | grep -q '"rope":"half"'; then ok info_json
else bad info_json "$out"; fi

# 3. same eval loss as the original
ref=$("$CCE" eval "$D/llama2c/stories260K.bin" --text "$T/eval.txt" --json 2>&1)
l0=$(echo "$ref" | loss_of)
got=$("$CCE" eval "$T/hf_notok" --tokenizer "$D/llama2c/tok512.bin" --text "$T/eval.txt" --json 2>&1)
l1=$(echo "$got" | loss_of)
if [ -n "$l0" ] && same "$l0" "$l1"; then ok eval_equal
else bad eval_equal "original: $ref / export: $got"; fi
# with the exported tokenizer.json instead of tok512.bin
if [ -f "$T/hf/tokenizer.json" ]; then
    got=$("$CCE" eval "$T/hf" --text "$T/eval.txt" --json 2>&1)
    l2=$(echo "$got" | loss_of)
    if [ -n "$l0" ] && same "$l0" "$l2"; then ok eval_equal_tokenizer_json
    else bad eval_equal_tokenizer_json "original: $ref / export: $got"; fi
else
    bad eval_equal_tokenizer_json "no tokenizer.json was exported"
fi

# 4. GGUF -> HF evaluates the same as the GGUF
ref=$("$CCE" eval "$D/gguf/stories260K.gguf" --text "$T/eval.txt" --json 2>&1)
g0=$(echo "$ref" | loss_of)
out=$("$CCE" export "$D/gguf/stories260K.gguf" -o "$T/hf_gguf" --no-tokenizer 2>&1); rc=$?
got=$("$CCE" eval "$T/hf_gguf" --tokenizer "$D/llama2c/tok512.bin" --text "$T/eval.txt" --json 2>&1)
g1=$(echo "$got" | loss_of)
if [ $rc -eq 0 ] && [ -n "$g0" ] && same "$g0" "$g1"; then ok gguf_eval_equal
else bad gguf_eval_equal "rc=$rc $out / gguf: $ref / export: $got"; fi

# 5. export errors: output path is a file; one line naming it
: > "$T/afile"
out=$("$CCE" export "$D/llama2c/stories260K.bin" -o "$T/afile" --no-tokenizer 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^cce: error: .*afile.*not a directory"; then ok error_not_dir
else bad error_not_dir "rc=$rc $out"; fi
out=$("$CCE" export "$D/llama2c/stories260K.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: .*-o DIR"; then ok error_no_output; else bad error_no_output "rc=$rc $out"; fi

# 6. synth: loads, deterministic per seed, unknown names refused
out=$("$CCE" synth --like tiny -o "$T/tiny" --seed 7 --json 2>/dev/null); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q '"like":"tiny","seed":7,"params":'; then ok synth_tiny; else bad synth_tiny "rc=$rc $out"; fi
out=$("$CCE" info "$T/tiny" --json 2>&1)
if echo "$out" | grep -q '"format":"hf","arch":"llama","dim":64,"n_layers":2,"n_heads":4,"n_kv_heads":2,"head_dim":16,"hidden_dim":128,"vocab_size":512'; then ok synth_info
else bad synth_info "$out"; fi
"$CCE" synth --like tiny -o "$T/tiny2" --seed 7 >/dev/null 2>&1
"$CCE" synth --like tiny -o "$T/tiny3" --seed 8 >/dev/null 2>&1
if cmp -s "$T/tiny/model.safetensors" "$T/tiny2/model.safetensors" && ! cmp -s "$T/tiny/model.safetensors" "$T/tiny3/model.safetensors"; then ok synth_deterministic
else bad synth_deterministic "same seed differs or different seeds agree"; fi
out=$("$CCE" synth --like gpt5 -o "$T/x" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: synth: unknown shape 'gpt5'"; then ok synth_unknown; else bad synth_unknown "rc=$rc $out"; fi
# a synthetic model can be exported again and still loads
out=$("$CCE" export "$T/tiny" -o "$T/tiny_re" --json 2>&1); rc=$?
if [ $rc -eq 0 ] && cmp -s "$T/tiny/model.safetensors" "$T/tiny_re/model.safetensors"; then ok reexport_identical
else bad reexport_identical "rc=$rc $out"; fi

# 7. --dtype bf16: half the bytes (the header is the same size), loss within 0.01 of the F32 original
out=$("$CCE" export "$D/llama2c/stories260K.bin" -o "$T/hf_bf16" --no-tokenizer --dtype bf16 --json 2>&1); rc=$?
got=$("$CCE" eval "$T/hf_bf16" --tokenizer "$D/llama2c/tok512.bin" --text "$T/eval.txt" --json 2>&1)
l3=$(echo "$got" | loss_of)
s32=$(stat -c %s "$T/hf_notok/model.safetensors"); s16=$(stat -c %s "$T/hf_bf16/model.safetensors" 2>/dev/null || echo 0)
if [ $rc -eq 0 ] && echo "$out" | grep -q '"dtype":"BF16"' && [ $((s16 * 2)) -lt $((s32 + 16384)) ] && [ $((s16 * 2)) -gt $((s32 - 16384)) ] \
   && awk -v a="$l0" -v b="$l3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "" && d < 0.01) }'; then ok dtype_bf16
else bad dtype_bf16 "rc=$rc $out / sizes $s16 vs $s32 / loss $l0 vs $l3: $got"; fi
out=$("$CCE" export "$D/llama2c/stories260K.bin" -o "$T/hf_q4" --dtype q4 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: export: --dtype 'q4'"; then ok dtype_unknown; else bad dtype_unknown "rc=$rc $out"; fi
