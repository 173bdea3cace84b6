#!/usr/bin/env bash
# End-to-end: the regression inputs of tests/regress/ (inputs the fuzzers once crashed on) through
# the CLI. Model files (llama2c, gguf, safetensors) go through `cce info` under their format's
# extension; tokenizer.bin inputs through `cce eval` with stories260K as --tokenizer (the first two
# bytes of a fuzz input pick the vocabulary size, so they are dropped). The run must end by exit
# (no signal, no timeout), and a refusal must be exactly one "cce: error:" line naming the file.
# tests/unit/test_regress.c replays the same inputs through the fuzz targets in-process.
set -u
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
R=tests/regress
n=0
check() {  # check LABEL FILE CMD...
    local label=$1 f=$2; shift 2
    timeout 5 "$@" < /dev/null > "$T/out" 2> "$T/err"; local rc=$?
    n=$((n + 1))
    if [ $rc -ge 124 ]; then echo "FAIL regress_$label: exit $rc (signal or timeout)"
    elif [ $rc -ne 0 ] && { [ "$(grep -c '^cce: error: ' "$T/err")" -ne 1 ] || ! grep -qF "$(basename "$f")" "$T/err"; }; then
        echo "FAIL regress_$label: exit $rc without one 'cce: error:' line naming the file: $(head -c 300 "$T/err")"
    elif grep -qE 'Sanitizer|runtime error' "$T/err"; then echo "FAIL regress_$label: sanitizer report"
    else echo "PASS regress_$label"; fi
}
for dir in llama2c gguf safetensors; do
    [ -d "$R/$dir" ] || continue
    ext=$dir; [ $dir = llama2c ] && ext=bin
    for f in "$R/$dir"/*; do
        [ -f "$f" ] || continue
        cp "$f" "$T/$(basename "$f").$ext"
        check "${dir}_$(basename "$f")" "$T/$(basename "$f").$ext" "$CCE" info "$T/$(basename "$f").$ext"
    done
done
if [ -d "$R/tokenizer_bin" ]; then
    head -c 2000 "$CCE_DATA/text/tinystories_valid_head.txt" > "$T/text.txt"
    for f in "$R/tokenizer_bin"/*; do
        [ -f "$f" ] || continue
        tail -c +3 "$f" > "$T/$(basename "$f").tok"
        check "tokenizer_bin_$(basename "$f")" "$T/$(basename "$f").tok" "$CCE" eval "$CCE_DATA/llama2c/stories260K.bin" \
            --tokenizer "$T/$(basename "$f").tok" --text "$T/text.txt"
    done
fi
[ $n -gt 0 ] || echo "PASS regress_none_yet"
