#!/usr/bin/env bash
# End-to-end: `cce analyze` on stories260K with TinyStories training text.
# The JSON must be deterministic for a fixed seed (byte-identical apart from "timings"), carry
# the model and calibration identity, agree between the llama2.c and GGUF copies of the same
# weights, and bad invocations must fail with one "cce: error:" line.
set -u
ok() { echo "PASS analyze_$1"; }
bad() { echo "FAIL analyze_$1: $2"; }
D=$CCE_DATA
M="$D/llama2c/stories260K.bin"
G="$D/gguf/stories260K.gguf"
C="$D/text/train/tinystories_v1_train_head.txt"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
if [ ! -f "$M" ] || [ ! -f "$C" ]; then echo "PASS analyze_skipped_no_data"; exit 0; fi

# drop every "timings": { ... } object (cJSON_Print puts one member per line)
strip_timings() { awk '/"timings":/ { skip = 1 } !skip { print } skip && /}/ { skip = 0 }' "$1"; }

args=(--calib "$C" --tokens 2048 --seq-len 128 --seed 3)
out=$("$CCE" analyze "$M" "${args[@]}" -o "$T/a.json" --json 2>"$T/err1"); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q '"blocks":5,"tokens":2048' && [ -s "$T/a.json" ]; then ok runs
else bad runs "rc=$rc $out $(tail -2 "$T/err1")"; fi

"$CCE" analyze "$M" "${args[@]}" -o "$T/b.json" >/dev/null 2>&1
if [ -s "$T/b.json" ] && cmp -s <(strip_timings "$T/a.json") <(strip_timings "$T/b.json"); then ok deterministic
else bad deterministic "$(diff <(strip_timings "$T/a.json") <(strip_timings "$T/b.json") | head -5)"; fi
# and timings really were the only difference that was removed
if grep -q '"timings":' "$T/a.json" && ! strip_timings "$T/a.json" | grep -q '"forward":'; then ok timings_stripped
else bad timings_stripped "timings objects not found or not removed"; fi

# identity of model and calibration
msha=$(sha256sum "$M" | cut -d' ' -f1); csha=$(sha256sum "$C" | cut -d' ' -f1)
if grep -q "\"sha256\":[[:space:]]*\"$msha\"" "$T/a.json" && grep -q "\"sha256\":[[:space:]]*\"$csha\"" "$T/a.json" \
 && grep -q '"format_version":[[:space:]]*2,' "$T/a.json" && grep -q '"seed":[[:space:]]*3' "$T/a.json" \
   && grep -q '"n_seq":[[:space:]]*16' "$T/a.json"; then ok identity
else bad identity "sha256/format_version/seed/n_seq missing"; fi

# the content a user browses is there: 5 blocks with spectra, similarity, redundancy, histograms
n_blocks=$(grep -c '"near_identity":' "$T/a.json"); n_ffn=$(grep -c '"ffn_act":' "$T/a.json")
if [ "$n_blocks" -eq 5 ] && [ "$n_ffn" -ge 10 ] && grep -q '"head_similarity":' "$T/a.json" \
   && grep -q '"aware_singular_values":' "$T/a.json" && grep -q '"neurons":' "$T/a.json" \
   && grep -q '"layer_similarity":' "$T/a.json"; then ok content
else bad content "blocks=$n_blocks ffn_act=$n_ffn"; fi

# the planner's curves: every block has the neuron, head, rank and drop curves with the model's
# step counts (stories260K: hidden 172, 8 heads; wq 64x64 gives rank0 31), a KV-group order and
# the output energy; the BLAS share is a fraction of the analysis phases' time
n_neur=$(grep -c '"neurons":[[:space:]]*{' "$T/a.json"); n_drop=$(grep -c '"drop_block":' "$T/a.json")
n172=$(grep -A1 '"neurons":[[:space:]]*{' "$T/a.json" | grep -c '"n":[[:space:]]*172,')
n31=$(grep -A2 '"rank_wq":' "$T/a.json" | grep -c '"rank0":[[:space:]]*31,')
share=$(echo "$out" | sed -n 's/.*"blas_lapack_phase_share":\([0-9.e-]*\).*/\1/p')
if [ "$n_neur" -eq 10 ] && [ "$n172" -eq 5 ] && [ "$n_drop" -eq 5 ] && [ "$n31" -eq 5 ] \
   && [ "$(grep -c '"groups":' "$T/a.json")" -eq 5 ] && [ "$(grep -c '"out_energy":[[:space:]]*[0-9]' "$T/a.json")" -eq 5 ] \
   && awk -v s="$share" 'BEGIN { exit !(s > 0 && s <= 1) }'; then ok curves
else bad curves "neurons=$n_neur n172=$n172 drop=$n_drop rank0=$n31 share=$share"; fi

# the GGUF copy has bit-identical weights and the same vocabulary: identical analysis
if [ -f "$G" ]; then
    "$CCE" analyze "$G" "${args[@]}" -o "$T/g.json" >/dev/null 2>&1
    tail_of() { strip_timings "$1" | sed -n '/"layer_similarity":[[:space:]]*{/,$p'; }
    if [ -s "$T/g.json" ] && [ "$(tail_of "$T/a.json" | wc -l)" -gt 100 ] \
       && cmp -s <(tail_of "$T/a.json") <(tail_of "$T/g.json"); then ok gguf_same
    else bad gguf_same "$(diff <(tail_of "$T/a.json") <(tail_of "$T/g.json") | head -4)"; fi
fi

# human output: one line per block
out=$("$CCE" analyze "$M" "${args[@]}" -o "$T/h.json" 2>/dev/null)
if [ "$(echo "$out" | grep -cE '^ +[0-4] ')" -eq 5 ]; then ok human
else bad human "$out"; fi

# help names the readings
out=$("$CCE" analyze --help 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "linear CKA between centred block updates" && echo "$out" | grep -q -- "--random-tokens"; then ok help
else bad help "rc=$rc $out"; fi

# errors: one line, non-zero exit, naming the problem
out=$("$CCE" analyze "$M" -o "$T/x.json" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q '^cce: error: .*--calib'; then ok needs_calib; else bad needs_calib "rc=$rc $out"; fi
out=$("$CCE" analyze "$M" --calib "$T/missing.txt" -o "$T/x.json" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: .*missing.txt"; then ok missing_calib; else bad missing_calib "rc=$rc $out"; fi
printf 'Once upon a time.\n' > "$T/short.txt"
out=$("$CCE" analyze "$M" --calib "$T/short.txt" -o "$T/x.json" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$out" | grep -c '^cce: error:')" -eq 1 ] && echo "$out" | grep -q "less than one sequence" \
   && [ ! -e "$T/x.json" ]; then ok short_calib; else bad short_calib "rc=$rc $out"; fi
out=$("$CCE" analyze "$M" --calib "$C" --seq-len 4096 -o "$T/x.json" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: .*seq-len"; then ok bad_seq_len; else bad bad_seq_len "rc=$rc $out"; fi

# a Hugging Face directory without a tokenizer (cce synth), calibrated on seeded random ids
if "$CCE" synth --like tiny -o "$T/tiny" >/dev/null 2>&1; then
    out=$("$CCE" analyze "$T/tiny" --random-tokens --tokens 512 --seq-len 64 -o "$T/t.json" --json 2>&1); rc=$?
    # a directory's identity: sha256 of "NAME SHA256" lines of config.json and the weight files
    tsha=$(printf 'config.json %s\nmodel.safetensors %s\n' "$(sha256sum "$T/tiny/config.json" | cut -d' ' -f1)" \
           "$(sha256sum "$T/tiny/model.safetensors" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)
    if [ $rc -eq 0 ] && echo "$out" | grep -q '"blocks":2,"tokens":512' && grep -q "\"sha256\":[[:space:]]*\"$tsha\"" "$T/t.json" \
       && grep -q '"path":[[:space:]]*"random-tokens"' "$T/t.json"; then ok hf_random_tokens
    else bad hf_random_tokens "rc=$rc $out"; fi
    out=$("$CCE" analyze "$T/tiny" --random-tokens --calib "$C" -o "$T/x.json" 2>&1); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q "^cce: error: .*exclude"; then ok random_and_calib; else bad random_and_calib "rc=$rc $out"; fi
fi

# settings echo the values the user gave, not their float widening (0.0010000000474974513)
if [ -f "$T/settings.json" ] || "$CCE" analyze "$CCE_DATA/llama2c/stories260K.bin" --calib "$CCE_DATA/text/tinystories_valid_head.txt" \
        --tokens 512 --eps 0.002 -o "$T/settings.json" >/dev/null 2>&1; then
    if grep -qE '"eps":[[:space:]]*0\.002,' "$T/settings.json" && grep -qE '"tau":[[:space:]]*0\.01,' "$T/settings.json"; then
        echo "PASS analyze_settings_exact"
    else echo "FAIL analyze_settings_exact: $(grep -A4 '"settings"' "$T/settings.json" | tr -d '\n')"; fi
else echo "FAIL analyze_settings_exact: analyze failed"; fi
