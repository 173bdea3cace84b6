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
# every command answers --help with its usage line and options, exit 0, nothing run
helpbad=""
for c in info eval generate export synth bench plan apply compare sweep sensitivity robustness classify analyze tui; do
    out=$("$CCE" $c --help 2>&1); rc=$?
    if [ $rc -ne 0 ] || ! echo "$out" | grep -q "^usage: cce $c" || ! echo "$out" | grep -qE '^  --[a-z]'; then helpbad="$helpbad $c(rc=$rc)"; fi
done
if [ -z "$helpbad" ]; then ok help_every_command; else bad help_every_command "$helpbad"; fi
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

# A valid GGUF file that is not a complete model of a known architecture: `cce info` lists its
# tensors and metadata after full validation and says on one line why it cannot run (exit 0).
u32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
u64() { u32 "$1"; u32 0; }
gstr() { u64 ${#1}; printf '%s' "$1"; }
# gguf_file OUT ARCH [with_tensor]: metadata general.architecture = ARCH; optionally one F32 tensor
gguf_file() {
    local nt=0; [ -n "${3:-}" ] && nt=1
    { printf 'GGUF'; u32 3; u64 $nt; u64 1; gstr general.architecture; u32 8; gstr "$2"
      if [ $nt -eq 1 ]; then gstr ln_f.weight; u32 1; u64 4; u32 0; u64 0; fi; } > "$1"
    local n=$(stat -c %s "$1"); while [ $((n % 32)) -ne 0 ]; do printf '\0' >> "$1"; n=$((n + 1)); done
    [ $nt -eq 1 ] && printf '\0\0\x80\x3f\0\0\x80\x3f\0\0\x80\x3f\0\0\x80\x3f' >> "$1"   # four 1.0f
    return 0
}
gguf_file "$T/other.gguf" gpt2 1
out=$("$CCE" info "$T/other.gguf" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "GGUF, architecture 'gpt2', 1 tensors" && echo "$out" | grep -qE '^  ln_f.weight +F32 +\[4\]$' \
   && echo "$out" | grep -qE '^  general.architecture +string +"gpt2"$' && [ "$(echo "$out" | grep -c '^cannot run: ')" -eq 1 ] \
   && echo "$out" | grep -q "^cannot run: .*other.gguf: unsupported architecture 'gpt2'"; then ok gguf_other_arch; else bad gguf_other_arch "rc=$rc $out"; fi
out=$("$CCE" info "$T/other.gguf" --json 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q '"runnable":false,"why":".*unsupported architecture' && echo "$out" | grep -q '"metadata":\[{"key":"general.architecture","type":"string","value":"\\"gpt2\\""}\]'; then ok gguf_other_arch_json; else bad gguf_other_arch_json "rc=$rc $out"; fi
gguf_file "$T/incomplete.gguf" llama
out=$("$CCE" info "$T/incomplete.gguf" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "GGUF, architecture 'llama', 0 tensors" && echo "$out" | grep -q "^cannot run: .*required metadata 'llama.embedding_length' is missing"; then ok gguf_incomplete; else bad gguf_incomplete "rc=$rc $out"; fi
# still an error when the file itself is malformed (here: cut inside the metadata)
head -c 40 "$T/other.gguf" > "$T/cut.gguf"
out=$("$CCE" info "$T/cut.gguf" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^cce: error: .*cut.gguf: tensor count 1 cannot fit"; then ok gguf_malformed_still_error; else bad gguf_malformed_still_error "rc=$rc $out"; fi
# a runnable GGUF with --tensors: listing and metadata, no "cannot run"
out=$("$CCE" info "$D/gguf/stories260K.gguf" --tensors 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -qE '^  llama.block_count +uint32 +5$' && ! echo "$out" | grep -q 'cannot run'; then ok gguf_tensors_metadata; else bad gguf_tensors_metadata "rc=$rc $out"; fi
