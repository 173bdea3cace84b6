#!/usr/bin/env bash
# tests/fuzz/run.sh — run every libFuzzer target for $FUZZ_SECONDS from the generated seeds.
# Called by `make fuzz` after it built $FUZZ_BUILD/fuzz/fuzz_* and gen_corpus. For each target:
#   seeds   : $FUZZ_BUILD/seeds/<target>   (rewritten by gen_corpus each run)
#   corpus  : $FUZZ_BUILD/corpus/<target>  (kept between runs: the fuzzer's findings)
#   crashes : $FUZZ_BUILD/crashes/<target>/ (crash-*, leak-*, timeout-*, oom-* inputs)
# Prints one PASS/FAIL line per target with executions/s and the final cov:/ft: figures, then
# "N passed, N failed". A crash is minimised (-minimize_crash) into the crash directory; add
# the minimised input under tests/regress/<target>/ so `make test` replays it.
set -u
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
CCE_DATA=${CCE_DATA:-$(cd ../shared/data 2>/dev/null && pwd)}
rm -rf "$FUZZ_BUILD/seeds"
"$FUZZ_BUILD/fuzz/gen_corpus" "$FUZZ_BUILD/seeds" "$CCE_DATA" || { echo "FAIL gen_corpus"; echo "0 passed, 1 failed"; exit 1; }
pass=0; fail=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
for bin in "$FUZZ_BUILD"/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    t=$(basename "$bin"); t=${t#fuzz_}
    corpus="$FUZZ_BUILD/corpus/$t"; crashes="$FUZZ_BUILD/crashes/$t"
    mkdir -p "$corpus" "$crashes" "$FUZZ_BUILD/seeds/$t"
    log="$FUZZ_BUILD/fuzz-$t.log"
    # -max_len: the seeds reach ~20 KB (GGUF, tokenizer.json); allow some growth beyond.
    "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "$FUZZ_BUILD/seeds/$t" >"$log" 2>&1
    rc=$?
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last"); ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log"); eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    summary="$t: ${execs:-?} runs, ${eps:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus $(ls "$corpus" | wc -l) files"
    if [ $rc -eq 0 ]; then
        echo "PASS fuzz_$summary"; pass=$((pass+1))
    else
        art=$(ls -t "$crashes" 2>/dev/null | head -1)
        echo "FAIL fuzz_$summary: exit $rc, input $crashes/$art (log $log)"; fail=$((fail+1))
        grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$log" | sed 's/^/    /'
        if [ -n "$art" ]; then
            "$bin" -minimize_crash=1 -runs=20000 -exact_artifact_path="$crashes/min-$art" "$crashes/$art" >/dev/null 2>&1
            [ -f "$crashes/min-$art" ] && echo "    minimised: $crashes/min-$art ($(wc -c <"$crashes/min-$art") bytes)"
        fi
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
