#!/usr/bin/env bash
# End-to-end: `cce info` on the real models, and the CLI's error conventions.
set -u
ok() { echo "PASS info_$1"; }
bad() { echo "FAIL info_$1: $2"; }
D=$CCE_DATA
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

out=$("$CCE" info "$D/llama2c/stories260K.bin" --json 2>&1)
if echo "$out" | grep -q '"dim":64,"n_layers":5,"n_heads":8,"n_kv_heads":4,"head_dim":8,"hidden_dim":172,"vocab_size":512,"seq_len":512,"params":260032,"params_non_embedding":227264'; then ok llama2c_json; else bad llama2c_json "$out"; fi

out=$("$CCE" info "$D/gguf/stories260K.gguf" --json 2>&1)
if echo "$out" | grep -q '"format":"gguf","arch":"llama","dim":64,"n_layers":5' && echo "$out" | grep -q '"params":260032'; then ok gguf_json; else bad gguf_json "$out"; fi

out=$("$CCE" info "$D/llama2c/tinystories_2m5.bin" --json 2>&1)
if echo "$out" | grep -q '"params":2460096,"params_non_embedding":2361792'; then ok 2m5_params; else bad 2m5_params "$out"; fi

out=$("$CCE" info "$D/llama2c/stories260K.bin" 2>&1)
if echo "$out" | grep -q '260,032 total = 227,264 non-embedding' && echo "$out" | grep -q 'tokenizer  SentencePiece-style BPE, 512 tokens'; then ok human; else bad human "$out"; fi

# the batch-only binary (no curses/readline linked) gives the same answer
if [ "$("$CCE_BATCH" info "$D/llama2c/stories260K.bin" --json 2>&1)" = "$("$CCE" info "$D/llama2c/stories260K.bin" --json 2>&1)" ]; then ok batch_binary; else bad batch_binary "differs"; fi
if ldd "$CCE_BATCH" | grep -qE 'ncurses|readline'; then bad batch_links_ui "$(ldd "$CCE_BATCH" | grep -E 'ncurses|readline')"; else ok batch_links_no_ui; fi

# errors: one line, names the file, non-zero exit
out=$("$CCE" info "$T/nope.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^cce: error: .*$T/nope.bin"; then ok missing_file; else bad missing_file "rc=$rc out=$out"; fi
: > "$T/empty.bin"
out=$("$CCE" info "$T/empty.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^cce: error: .*empty.bin"; then ok empty_file; else bad empty_file "rc=$rc out=$out"; fi
out=$("$CCE" info --bogus 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: .*unknown option '--bogus'"; then ok unknown_option; else bad unknown_option "rc=$rc out=$out"; fi
out=$("$CCE" frobnicate 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: unknown command 'frobnicate'"; then ok unknown_command; else bad unknown_command "rc=$rc out=$out"; fi
out=$(CCE_DATA="$T/nodata" "$CCE" info 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "default model .* is missing; pass a model path"; then ok missing_default; else bad missing_default "rc=$rc out=$out"; fi
# default model when none given
out=$("$CCE" info --json 2>&1)
if echo "$out" | grep -q '"params":260032'; then ok default_model; else bad default_model "$out"; fi

# listings of bare files, after full validation
out=$("$CCE" info "$D/gguf/stories260K.gguf" --tensors --json 2>&1)
if echo "$out" | grep -q '"format":"gguf","gguf_arch":"llama","n_tensors":48,"elements":292800' && echo "$out" | grep -q '{"name":"blk.0.attn_q.weight","dtype":"F32","shape":\[64,64\],"nbytes":16384}'; then ok gguf_listing; else bad gguf_listing "$out"; fi
if "$CCE" export "$D/llama2c/stories260K.bin" -o "$T/hf" >/dev/null 2>&1; then
    out=$("$CCE" info "$T/hf/model.safetensors" 2>&1)
    if echo "$out" | grep -q 'safetensors, 47 tensors' && echo "$out" | grep -qE '^  model.layers.4.mlp.down_proj.weight +F32 +\[64, 172\]$' && echo "$out" | grep -q '260,032 elements in all'; then ok safetensors_listing; else bad safetensors_listing "$out"; fi
    # a listing refuses a damaged file like the loader does
    head -c 1000 "$T/hf/model.safetensors" > "$T/cut.safetensors"
    out=$("$CCE" info "$T/cut.safetensors" 2>&1); rc=$?
    if [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^cce: error: .*cut.safetensors"; then ok safetensors_listing_truncated; else bad safetensors_listing_truncated "rc=$rc out=$out"; fi
else
    bad safetensors_listing "cce export failed"
fi
