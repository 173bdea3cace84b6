#!/usr/bin/env bash
# End-to-end: hostile inputs at the CLI. tests/lib/malformed_gen.sh writes one file per defect
# class and format (llama2.c, tokenizer.bin, GGUF, safetensors, HF config.json, tokenizer.json);
# each goes through `cce info`, `cce eval` and `cce analyze` as its kind allows. Every run must:
# exit non-zero (not by a signal, not by the 5 s timeout), print on stderr exactly one line, which
# starts "cce: error: " and names the file, say nothing about a sanitizer or a segfault, use at
# most a second of CPU (5 s under sanitizers; CPU rather than wall time so a busy machine cannot
# fail it; the wall clock is bounded by the 5 s timeout) and peak below 200 MB RSS
# (CCE_TEST_RSS_MB overrides; 600 under sanitizers). One PASS/FAIL line per case and command.
set -u
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
D=$CCE_DATA
if ! bash tests/lib/malformed_gen.sh "$T/m" > "$T/list" 2> "$T/gen.err"; then
    echo "FAIL malformed_gen: $(tail -3 "$T/gen.err" | tr '\n' ' ')"; exit 0
fi
if [ ! -x /usr/bin/time ]; then echo "FAIL malformed_time: /usr/bin/time missing (the Makefile's deps install 'time')"; exit 0; fi
head -c 4000 "$D/text/tinystories_valid_head.txt" > "$T/text.txt"
TK=$D/llama2c/tok512.bin
MODEL=$D/llama2c/stories260K.bin
if [ -n "${CCE_TEST_SANITIZER:-}" ]; then max_s=5; max_mb=${CCE_TEST_RSS_MB:-600}; else max_s=1; max_mb=${CCE_TEST_RSS_MB:-200}; fi

runs=0 peak_kb=0 peak_s=0
# check NAME EXPECT CMD... : run CMD, judge it as a refusal that names EXPECT.
check() {
    local name=$1 expect=$2; shift 2
    /usr/bin/time -f '%U %S %M' -o "$T/time" timeout 5 "$@" < /dev/null > "$T/out" 2> "$T/err"
    local rc=$? why=""
    local t; t=$(tail -1 "$T/time" 2>/dev/null); local kb=${t##* }
    local secs; secs=$(awk '{ print $1 + $2 }' <<<"$t")
    local nerr; nerr=$(grep -c '^cce: error: ' "$T/err")
    local nlines; nlines=$(grep -c '' "$T/err")
    if [ $rc -eq 0 ]; then why="exit 0 (accepted the defect)"
    elif [ $rc -eq 124 ]; then why="timed out after 5 s"
    elif [ $rc -ge 128 ]; then why="killed by signal $((rc - 128))"
    elif grep -qE 'Sanitizer|runtime error|Segmentation|Aborted' "$T/err"; then why="sanitizer/crash report"
    elif [ "$nerr" -ne 1 ] || [ "$nlines" -ne 1 ]; then why="$nlines stderr lines, $nerr 'cce: error:' lines"
    elif ! grep -qF -- "$expect" "$T/err"; then why="message does not name $expect"
    elif ! awk -v s="$secs" -v m="$max_s" 'BEGIN { exit !(s + 0 <= m) }'; then why="used ${secs}s of CPU (> ${max_s}s)"
    elif [ "${kb:-0}" -gt $((max_mb * 1024)) ]; then why="peak RSS $((kb / 1024)) MB (> $max_mb MB)"
    fi
    runs=$((runs + 1)); [ "${kb:-0}" -gt "$peak_kb" ] && peak_kb=${kb:-0}
    peak_s=$(awk -v a="$peak_s" -v b="$secs" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
    if [ -z "$why" ]; then echo "PASS malformed_$name"
    else echo "FAIL malformed_$name: $why: $(head -c 300 "$T/err" | head -3 | tr '\n' ' ')"; fi
}

while read -r name kind path; do
    base=$(basename "$path")
    case $kind in
    valid)
        if timeout 5 "$CCE" info "$path" < /dev/null > "$T/out" 2> "$T/err"; then echo "PASS malformed_${name}_info_loads"
        else echo "FAIL malformed_${name}_info_loads: the control model does not load: $(head -1 "$T/err")"; fi ;;
    listable)
        if timeout 5 "$CCE" info "$path" < /dev/null > "$T/out" 2> "$T/err"; then echo "PASS malformed_${name}_info_lists"
        else echo "FAIL malformed_${name}_info_lists: cce info refused a well-formed file: $(head -1 "$T/err")"; fi
        check "${name}_eval" "$base" "$CCE" eval "$path" --tokenizer "$TK" --text "$T/text.txt" ;;
    model)
        check "${name}_info" "$base" "$CCE" info "$path"
        check "${name}_eval" "$base" "$CCE" eval "$path" --tokenizer "$TK" --text "$T/text.txt"
        check "${name}_analyze" "$base" "$CCE" analyze "$path" --tokenizer "$TK" --calib "$T/text.txt" -o "$T/a.json" ;;
    hfdir)
        check "${name}_eval" "$base" "$CCE" eval "$path" --text "$T/text.txt"
        check "${name}_analyze" "$base" "$CCE" analyze "$path" --calib "$T/text.txt" -o "$T/a.json" ;;
    tok)
        check "${name}_eval" "$base" "$CCE" eval "$MODEL" --tokenizer "$path" --text "$T/text.txt"
        check "${name}_analyze" "$base" "$CCE" analyze "$MODEL" --tokenizer "$path" --calib "$T/text.txt" -o "$T/a.json" ;;
    esac
done < "$T/list"
echo "# malformed: $runs refusals, peak RSS $((peak_kb / 1024)) MB, max CPU ${peak_s} s"
# no defective run may leave an output file behind
if [ -e "$T/a.json" ]; then echo "FAIL malformed_no_output: an analyze run on a defective input wrote its -o file"
else echo "PASS malformed_no_output"; fi
