#!/usr/bin/env bash
# tests/run.sh — run every unit test program and every end-to-end script; count PASS/FAIL/SKIP lines.
# Unit tests: $BUILD/tests/test_* (one program per module, lines "PASS x", "FAIL x: why" and
# "SKIP x: why" for a test that cannot run here). End-to-end: tests/e2e/*.sh, each run with
# $CCE (the binary) and $BUILD set; same line format. A program that reports nothing, or exits
# non-zero without a FAIL line, counts as one failure. A skip is neither a pass nor a failure.
# Last line: "N passed, N failed, N skipped".
set -u
BUILD=${BUILD:-build}
export BUILD CCE="$PWD/$BUILD/cce" CCE_BATCH="$PWD/$BUILD/cce-batch"
export CCE_DATA=${CCE_DATA:-$(cd ../shared/data 2>/dev/null && pwd)}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
log=$(mktemp); trap 'rm -f "$log"' EXIT
run_one() {  # name, command...
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E '^(PASS|FAIL|SKIP) ' | tee -a "$log"
    if ! printf '%s\n' "$out" | grep -qE '^(PASS|FAIL|SKIP) ' || { [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^FAIL '; }; then
        echo "FAIL $name: exited $rc without reporting"; echo "FAIL $name" >> "$log"
        printf '%s\n' "$out" | tail -20 | sed 's/^/    /'
    fi
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d|*.o) continue;; esac
    run_one "$(basename "$t")" "$t"
done
for s in tests/e2e/*.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s" .sh)" bash "$s"
done
p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); k=$(grep -c '^SKIP ' "$log")
echo "$p passed, $f failed, $k skipped"
[ "$f" -eq 0 ]
