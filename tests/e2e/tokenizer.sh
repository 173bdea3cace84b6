#!/usr/bin/env bash
# tests/e2e/tokenizer.sh — `--tokenizer FILE` on every command that reads a model, and the
# warning for a text that is not valid UTF-8. Needs $CCE and $CCE_DATA; prints PASS/FAIL lines.
set -u
CCE=${CCE:-build/cce}
D=${CCE_DATA:-../shared/data}
M=$D/llama2c/stories260K.bin
TOK=$D/llama2c/tok512.bin
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# the model is copied alone, so no tokenizer is found beside it: --tokenizer must supply it
cp "$M" "$tmp/m.bin"
head -c 4000 "$D/text/tinystories_valid_head.txt" > "$tmp/t.txt"
run() {  # NAME CMD...: exit 0 expected
    local name=$1; shift
    if "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then pass "$name"; else fail "$name" "exit $?: $(tail -1 "$tmp/$name.err")"; fi
}
run tokenizer_info     "$CCE" info "$tmp/m.bin" --tokenizer "$TOK" --json
run tokenizer_eval     "$CCE" eval "$tmp/m.bin" --tokenizer "$TOK" --text "$tmp/t.txt" --seq-len 64 --json
run tokenizer_generate "$CCE" generate "$tmp/m.bin" --tokenizer "$TOK" --prompt "Once upon a time" -n 4
run tokenizer_export   "$CCE" export "$tmp/m.bin" --tokenizer "$TOK" -o "$tmp/hf" --json
run tokenizer_analyze  "$CCE" analyze "$tmp/m.bin" --tokenizer "$TOK" --calib "$tmp/t.txt" --tokens 256 --seq-len 64 -o "$tmp/a.json"
run tokenizer_bench    "$CCE" bench "$tmp/m.bin" --tokenizer "$TOK" --peak-size 64 --seq-len 16 --batch 1 --json
# the exported tokenizer.json works as --tokenizer too
run tokenizer_json_eval "$CCE" eval "$tmp/m.bin" --tokenizer "$tmp/hf/tokenizer.json" --text "$tmp/t.txt" --seq-len 64 --json
# a bad tokenizer file is refused by bench like everywhere: one line naming the file
printf 'not a tokenizer' > "$tmp/bad.json"
if "$CCE" bench "$tmp/m.bin" --tokenizer "$tmp/bad.json" --peak-size 64 --seq-len 16 --batch 1 >/dev/null 2>"$tmp/bad.err"; then
    fail tokenizer_bench_bad_file "accepted a broken tokenizer.json"
elif grep -q "bad.json" "$tmp/bad.err" && [ "$(wc -l < "$tmp/bad.err")" -eq 1 ]; then pass tokenizer_bench_bad_file
else fail tokenizer_bench_bad_file "$(cat "$tmp/bad.err")"; fi

# a text with an invalid byte at offset 10: a warning naming that offset, and the run goes on
{ printf 'Once upon '; printf '\377'; cat "$tmp/t.txt"; } > "$tmp/bad.txt"
if "$CCE" eval "$tmp/m.bin" --tokenizer "$TOK" --text "$tmp/bad.txt" --seq-len 64 --json >"$tmp/w.out" 2>"$tmp/w.err" &&
   grep -q "warning: .*bad.txt: not valid UTF-8 at byte offset 10" "$tmp/w.err"; then pass utf8_warning_eval
else fail utf8_warning_eval "$(cat "$tmp/w.err")"; fi
if "$CCE" analyze "$tmp/m.bin" --tokenizer "$TOK" --calib "$tmp/bad.txt" --tokens 256 --seq-len 64 -o "$tmp/a2.json" >/dev/null 2>"$tmp/w2.err" &&
   grep -q "bad.txt: not valid UTF-8 at byte offset 10" "$tmp/w2.err"; then pass utf8_warning_analyze
else fail utf8_warning_analyze "$(cat "$tmp/w2.err")"; fi
if "$CCE" generate "$tmp/m.bin" --tokenizer "$TOK" --prompt "$(printf 'ab\303(')" -n 2 >/dev/null 2>"$tmp/w3.err" &&
   grep -q "\-\-prompt: not valid UTF-8 at byte offset 2" "$tmp/w3.err"; then pass utf8_warning_prompt
else fail utf8_warning_prompt "$(cat "$tmp/w3.err")"; fi
# and a valid text gives no warning
if "$CCE" eval "$tmp/m.bin" --tokenizer "$TOK" --text "$tmp/t.txt" --seq-len 64 --json >/dev/null 2>"$tmp/w4.err" &&
   ! grep -q "UTF-8" "$tmp/w4.err"; then pass utf8_no_warning
else fail utf8_no_warning "$(cat "$tmp/w4.err")"; fi
