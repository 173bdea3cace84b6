#!/usr/bin/env bash
# tests/e2e/compare.sh — the experiment commands end to end on stories260K with small token
# budgets: compare (all seven methods and the redistribution ablation; JSON keys, CSV, plans it
# saves, the refusal of evaluation text that is calibration text), robustness on a saved plan,
# sweep, sensitivity, classify on SST-2, Ctrl-C, bad options. Figures are measured, not
# asserted, except what must hold by construction (a baseline removes at least its target; the
# noise-free robustness row equals plain evaluation; one sweep row per block).
set -u
CCE=${CCE:-build/cce}
D=${CCE_DATA:-../shared/data}
M=$D/llama2c/stories260K.bin
EV=$D/text/tinystories_valid_head.txt
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
# jq is not assumed: python3 reads the JSON
py() { python3 -c "$@"; }
SMALL=(--tokens 512 --seq-len 64 --eval-tokens 2048 --eval-seq-len 128 --decode-tokens 16)
CSMALL=("${SMALL[@]}" --search 2)   # compare: CCE's allocation search with two candidates

# ---- compare: every method, both cce encodings, JSON + CSV + plans
if "$CCE" compare "$M" "${CSMALL[@]}" --target 0.2 --methods magnitude,wanda-sp,flap,shortgpt,svd,asvd,cce \
     --redistribute none,lsq --json --csv "$tmp/c.csv" --save-plans "$tmp/plans" >"$tmp/c.json" 2>"$tmp/c.err"; then
    msg=$(py '
import json, sys
o = json.load(open(sys.argv[1]))
rows = o["rows"]
need = ["method", "target", "removed_fraction", "params", "ppl", "accuracy", "tokens_per_s"]
names = [r["method"] for r in rows]
assert names == ["magnitude", "wanda-sp", "flap", "shortgpt", "svd", "asvd", "cce-none", "cce"], names
for r in rows:
    for k in need: assert k in r, (r["method"], k)
    assert r["ppl"] > 1 and r["accuracy"] > 0, r
    if not r["method"].startswith("cce"): assert r["removed_fraction"] >= 0.2, r
for k in ("path", "sha256", "tokens"):
    assert k in o["model"] or k == "tokens", k
    assert k in o["calibration"], k
    assert k in o["evaluation"][0], k
assert o["evaluation"][0]["tokens"] == 2048
assert o["calibration"]["tokens"] == 512
assert o["dense"]["method"] == "dense" and o["dense"]["removed_fraction"] == 0
assert o["cce"]["search"] == 2 and o["cce"]["analysis_tokens"] == 512
print("ok")
' "$tmp/c.json" 2>&1)
    [ "$msg" = ok ] && pass compare_json || fail compare_json "$msg"
    lines=$(wc -l <"$tmp/c.csv")
    if [ "$lines" -eq 10 ] && head -1 "$tmp/c.csv" | grep -q '^method,target,removed_fraction,params,ppl,ppl_ratio'; then pass compare_csv
    else fail compare_csv "$lines lines: $(head -1 "$tmp/c.csv")"; fi
    if [ -f "$tmp/plans/flap-20.json" ] && [ -f "$tmp/plans/cce-20.json" ] && [ "$(ls "$tmp/plans" | wc -l)" -eq 8 ]; then pass compare_save_plans
    else fail compare_save_plans "$(ls "$tmp/plans" | tr '\n' ' ')"; fi
else
    fail compare_json "exit $?: $(tail -2 "$tmp/c.err")"
fi

# a saved baseline plan is a plan like any other: cce eval --plan gives the same perplexity as the compare row
if [ -f "$tmp/plans/flap-20.json" ] &&
   "$CCE" eval "$M" --plan "$tmp/plans/flap-20.json" --text "$EV" --max-tokens 2048 --seq-len 128 --json >"$tmp/e.json" 2>/dev/null; then
    msg=$(py '
import json, sys
e = json.load(open(sys.argv[1])); c = json.load(open(sys.argv[2]))
r = [x for x in c["rows"] if x["method"] == "flap"][0]
assert abs(e["ppl"] - r["ppl"]) <= 1e-9 * r["ppl"], (e["ppl"], r["ppl"])
assert e["params_non_embedding"] == r["params"]
print("ok")' "$tmp/e.json" "$tmp/c.json" 2>&1)
    [ "$msg" = ok ] && pass compare_plan_reproduces || fail compare_plan_reproduces "$msg"
else
    fail compare_plan_reproduces "eval --plan failed"
fi

# human output: a table with a dense row and the readings
if "$CCE" compare "$M" "${CSMALL[@]}" --target 0.1 --methods magnitude,shortgpt >"$tmp/h.txt" 2>"$tmp/h.err" &&
   grep -q '^dense ' "$tmp/h.txt" && grep -q '^shortgpt ' "$tmp/h.txt" && grep -q '^readings:' "$tmp/h.txt" &&
   grep -q '×dense' "$tmp/h.txt"; then pass compare_table
else fail compare_table "$(head -20 "$tmp/h.txt") $(tail -2 "$tmp/h.err")"; fi

# ---- refusals
bad_check() {  # name, expected substring of the error, command...
    local name=$1 want=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] && printf '%s\n' "$err" | grep -q "^cce: error: .*$want"; then pass "$name"
    else fail "$name" "exit $rc, stderr '$(printf '%s' "$err" | tail -2)'"; fi
}
cp "$EV" "$tmp/copy.txt"
bad_check compare_refuses_same_file "is the calibration text" "$CCE" compare "$M" --calib "$EV" --eval "$EV" "${SMALL[@]}"
bad_check compare_refuses_same_sha "same SHA-256" "$CCE" compare "$M" --calib "$EV" --eval "$tmp/copy.txt" "${SMALL[@]}"
bad_check compare_refuses_calib_file "is the calibration file" "$CCE" compare "$M" --calib "$D/text/train" \
    --eval "$D/text/train/tinystories_v1_train_head.txt" "${SMALL[@]}"
bad_check compare_unknown_method "unknown method 'slicegpt'" "$CCE" compare "$M" --methods magnitude,slicegpt "${SMALL[@]}"
bad_check compare_bad_target "target" "$CCE" compare "$M" --target 0.2,1.5 "${SMALL[@]}"
bad_check robustness_needs_plan "plan" "$CCE" robustness "$M"
bad_check classify_needs_tsv "tsv" "$CCE" classify "$M"

# ---- robustness on a saved plan: the noise-free row is plain evaluation
if [ -f "$tmp/plans/magnitude-20.json" ] &&
   "$CCE" robustness "$M" --plan "$tmp/plans/magnitude-20.json" --noise 0,0.1,0.3 --eval-tokens 2048 --eval-seq-len 128 \
      --json --csv "$tmp/r.csv" >"$tmp/r.json" 2>"$tmp/r.err" &&
   "$CCE" eval "$M" --text "$EV" --max-tokens 2048 --seq-len 128 --json >"$tmp/d.json" 2>/dev/null; then
    msg=$(py '
import json, sys
r = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))
rows = r["rows"]
assert [x["noise"] for x in rows] == [0, 0.1, 0.3]
assert rows[0]["letters_changed"] == 0 and rows[1]["letters_changed"] < rows[2]["letters_changed"]
assert rows[0]["dense"]["ppl"] == d["ppl"], (rows[0]["dense"]["ppl"], d["ppl"])
assert rows[2]["dense"]["ppl"] > rows[0]["dense"]["ppl"] and rows[2]["compressed"]["ppl"] > rows[0]["compressed"]["ppl"]
assert r["method"] == "magnitude"
print("ok")' "$tmp/r.json" "$tmp/d.json" 2>&1)
    [ "$msg" = ok ] && [ "$(wc -l <"$tmp/r.csv")" -eq 4 ] && pass robustness_json || fail robustness_json "$msg"
else
    fail robustness_json "exit: $(tail -2 "$tmp/r.err" 2>/dev/null)"
fi
bad_check robustness_refuses_calib_text "calibration" "$CCE" robustness "$M" --plan "$tmp/plans/magnitude-20.json" \
    --eval "$D/text/train/tinystories_v1_train_head.txt" --eval-tokens 2048

# ---- sweep: one row per block, each compressed alone
if "$CCE" sweep "$M" "${SMALL[@]}" --level 0.3 --json --csv "$tmp/s.csv" >"$tmp/s.json" 2>"$tmp/s.err"; then
    msg=$(py '
import json, sys
o = json.load(open(sys.argv[1]))
b = o["blocks"]
assert [x["block"] for x in b] == [0, 1, 2, 3, 4]
for x in b:
    assert x["ppl"] > 1 and x["removed"] >= 0 and x["removed"] <= x["block_params"]
assert o["level"] == 0.3
print("ok")' "$tmp/s.json" 2>&1)
    [ "$msg" = ok ] && [ "$(wc -l <"$tmp/s.csv")" -eq 7 ] && pass sweep_json || fail sweep_json "$msg"
else
    fail sweep_json "exit: $(tail -2 "$tmp/s.err")"
fi

# ---- sensitivity: the grid and its frontier
if "$CCE" sensitivity "$M" "${SMALL[@]}" --eps 0.01,0.1 --tau 0.5,0.9 --json >"$tmp/t.json" 2>"$tmp/t.err"; then
    msg=$(py '
import json, sys
o = json.load(open(sys.argv[1]))
p = o["points"]
assert [(x["eps"], x["tau"]) for x in p] == [(0.01, 0.5), (0.01, 0.9), (0.1, 0.5), (0.1, 0.9)]
assert any(x["pareto"] for x in p)
for x in p:
    dom = any(y["removed_fraction"] >= x["removed_fraction"] and y["ppl"] <= x["ppl"] and
              (y["removed_fraction"] > x["removed_fraction"] or y["ppl"] < x["ppl"]) for y in p)
    assert x["pareto"] == (not dom), x
print("ok")' "$tmp/t.json" 2>&1)
    [ "$msg" = ok ] && pass sensitivity_json || fail sensitivity_json "$msg"
else
    fail sensitivity_json "exit: $(tail -2 "$tmp/t.err")"
fi

# ---- classify: SST-2 zero-shot on a story model is near chance, and the output says so
if "$CCE" classify "$M" --tsv "$D/text/sst2_dev.tsv" --max-examples 60 --json >"$tmp/k.json" 2>"$tmp/k.err" &&
   "$CCE" classify "$M" --tsv "$D/text/sst2_dev.tsv" --max-examples 60 >"$tmp/k.txt" 2>/dev/null; then
    msg=$(py '
import json, sys
o = json.load(open(sys.argv[1]))
assert o["examples"] == 60 and 0 <= o["accuracy"] <= 1
c = o["confusion"]; assert len(c) == 2 and sum(map(sum, c)) == 60
assert o["labels"] == ["negative", "positive"]
print("ok")' "$tmp/k.json" 2>&1)
    if [ "$msg" = ok ] && grep -q '^verdict' "$tmp/k.txt" && grep -q '^confusion' "$tmp/k.txt"; then pass classify_json
    else fail classify_json "$msg"; fi
else
    fail classify_json "exit: $(tail -2 "$tmp/k.err")"
fi
if [ -f "$tmp/plans/cce-20.json" ] &&
   "$CCE" classify "$M" --plan "$tmp/plans/cce-20.json" --tsv "$D/text/sst2_dev.tsv" --max-examples 20 --json >"$tmp/k2.json" 2>/dev/null &&
   grep -q '"removed_fraction"' "$tmp/k2.json"; then pass classify_plan
else fail classify_plan "$(cat "$tmp/k2.json" 2>/dev/null)"; fi

# ---- Ctrl-C: exit 130 with "interrupted"
"$CCE" compare "$D/llama2c/tinystories_2m5.bin" --tokens 8192 >"$tmp/i.out" 2>"$tmp/i.err" &
pid=$!
sleep 1
kill -INT $pid 2>/dev/null
waited=0
while kill -0 $pid 2>/dev/null && [ $waited -lt 100 ]; do sleep 0.05; waited=$((waited + 1)); done
if kill -0 $pid 2>/dev/null; then kill -KILL $pid; wait $pid 2>/dev/null; fail compare_interrupt "still running 5 s after SIGINT"
else
    wait $pid; rc=$?
    if [ $rc -eq 130 ] && grep -q interrupted "$tmp/i.err"; then pass compare_interrupt
    else fail compare_interrupt "exit $rc: $(tail -1 "$tmp/i.err")"; fi
fi
