#!/usr/bin/env bash
# tests/valgrind.sh — `make test-valgrind`: the loaders and the batch CLI under valgrind memcheck.
#  - real models: cce info on every model in $CCE_DATA (llama2.c, GGUF, and an HF export made
#    here without valgrind), a short cce eval (--max-tokens 512) and cce generate -n 8;
#    each must exit 0 with no memcheck error and no definite/indirect leak;
#  - every defective input of tests/lib/malformed_gen.sh through cce info (eval for tokenizer
#    defects): it must be refused (exit 1, one "cce: error:" line) with no memcheck error.
# Memcheck errors exit with 97 (not the --error-exitcode=1 of a plain run: the refusals
# themselves exit 1). Prints PASS/FAIL lines and "N passed, N failed".
set -u
BUILD=${BUILD:-build-valgrind}
CCE=${CCE:-$PWD/$BUILD/cce-batch}
export CCE_DATA=${CCE_DATA:-$(cd ../shared/data 2>/dev/null && pwd)}
export OPENBLAS_NUM_THREADS=1
D=$CCE_DATA
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
VG=(valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --track-origins=yes)
res() {  # res PASS|FAIL text
    echo "$1 $2"
    if [ "$1" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
}

# ok NAME CMD... : must exit 0 under memcheck
ok() {
    local name=$1; shift
    "${VG[@]}" "$@" < /dev/null > "$T/out" 2> "$T/err"; local rc=$?
    if [ $rc -eq 0 ]; then res PASS "valgrind_$name"
    else res FAIL "valgrind_$name: exit $rc: $(grep -m3 -E '==[0-9]+==|cce: error' "$T/err" | tr '\n' ' ' | head -c 400)"; fi
}
# refused NAME CMD... : must exit 1 with one error line, no memcheck error
refused() {
    local name=$1; shift
    "${VG[@]}" "$@" < /dev/null > "$T/out" 2> "$T/err"; local rc=$?
    if [ $rc -eq 1 ] && [ "$(grep -c '^cce: error: ' "$T/err")" -eq 1 ] && ! grep -q '^==[0-9]*==' "$T/err"; then res PASS "valgrind_$name"
    else res FAIL "valgrind_$name: exit $rc: $(grep -m3 -E '==[0-9]+==|cce: error' "$T/err" | tr '\n' ' ' | head -c 400)"; fi
}

command -v valgrind >/dev/null || { res FAIL "valgrind_installed: valgrind not found"; echo "$pass passed, $fail failed"; exit 1; }
[ -x "$CCE" ] || { res FAIL "valgrind_binary: $CCE not built"; echo "$pass passed, $fail failed"; exit 1; }
head -c 20000 "$D/text/tinystories_valid_head.txt" > "$T/text.txt"
L2=$D/llama2c/stories260K.bin; GG=$D/gguf/stories260K.gguf; M25=$D/llama2c/tinystories_2m5.bin; TK=$D/llama2c/tok512.bin

ok info_llama2c "$CCE" info "$L2"
ok info_gguf "$CCE" info "$GG"
ok info_2m5 "$CCE" info "$M25"
ok eval_llama2c "$CCE" eval "$L2" --text "$T/text.txt" --max-tokens 512
ok eval_gguf "$CCE" eval "$GG" --text "$T/text.txt" --max-tokens 512
ok eval_2m5 "$CCE" eval "$M25" --tokenizer "$TK" --text "$T/text.txt" --max-tokens 512
ok generate_llama2c "$CCE" generate "$L2" -n 8
ok generate_gguf "$CCE" generate "$GG" -n 8
if "$CCE" export "$L2" -o "$T/hf" > /dev/null 2>&1; then
    ok info_hf "$CCE" info "$T/hf"
    ok eval_hf "$CCE" eval "$T/hf" --text "$T/text.txt" --max-tokens 512
    ok generate_hf "$CCE" generate "$T/hf" -n 8
else
    res FAIL "valgrind_hf_export: cce export failed, no HF directory to test"
fi

if bash tests/lib/malformed_gen.sh "$T/m" > "$T/list" 2> "$T/gen.err"; then
    while read -r name kind path; do
        case $kind in
        valid|listable) ok "${name}_info" "$CCE" info "$path" ;;
        model) refused "${name}_info" "$CCE" info "$path" ;;
        hfdir) refused "${name}_eval" "$CCE" eval "$path" --text "$T/text.txt" ;;
        tok) refused "${name}_eval" "$CCE" eval "$L2" --tokenizer "$path" --text "$T/text.txt" ;;
        esac
    done < "$T/list"
else
    res FAIL "valgrind_malformed_gen: $(tail -1 "$T/gen.err")"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
