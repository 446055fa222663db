#!/usr/bin/env bash
# The demo's last step: an example's --metrics JSON lines (one per iteration, as many as it printed)
# plotted by scripts/plot_metrics.py into a PNG and an SVG that hold the curves; a bad metrics file
# is a one-line reason, not a traceback.
#
#   plot_test.sh <self_play>
set -euo pipefail
example_bin=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$example_bin" --quick --steps 4 --games 64 --metrics "$work/m.jsonl" > "$work/out" || fail "self_play"
printed=$(grep -c '^iteration ' "$work/out")
rows=$(wc -l < "$work/m.jsonl")
[[ $printed == 4 && $rows == 4 ]] || fail "expected 4 iterations and 4 metrics rows, got $printed and $rows"
python3 - "$work/m.jsonl" "$work/out" <<'PY' || fail "the metrics rows do not match the printed lines"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
wins = [float(w) for w in re.findall(r"^iteration +\d+ +vs random: win ([0-9.]+)", open(sys.argv[2]).read(), re.M)]
assert [r["step"] for r in rows] == list(range(4)), rows
assert all(abs(r["win_rate"] - w) < 1e-3 for r, w in zip(rows, wins)), (rows, wins)
PY

python3 "$root/scripts/plot_metrics.py" "$work/m.jsonl" "$work/plot" "test" step win_rate,illegal_rate loss > "$work/paths" \
  || fail "plot_metrics"
[[ $(cat "$work/paths") == "$work/plot.png"$'\n'"$work/plot.svg" ]] || fail "printed paths: $(cat "$work/paths")"
[[ $(head -c 8 "$work/plot.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "not a PNG"
[[ $(stat -c %s "$work/plot.png") -gt 5000 ]] || fail "the PNG is nearly empty"
grep -q '<svg' "$work/plot.svg" || fail "not an SVG"
for title in 'win rate' 'illegal rate' 'loss'; do grep -q ">$title<" "$work/plot.svg" || fail "the SVG has no '$title' curve"; done

echo '{"step": 0, "win_rate": 0.5}' > "$work/bad.jsonl"
echo 'not json' >> "$work/bad.jsonl"
if python3 "$root/scripts/plot_metrics.py" "$work/bad.jsonl" "$work/bad" t step win_rate 2> "$work/err"; then fail "bad JSON plotted"; fi
grep -q 'bad.jsonl:2: not JSON' "$work/err" || fail "no clear error for bad JSON: $(cat "$work/err")"
echo '{"step": 0}' > "$work/missing.jsonl"
if python3 "$root/scripts/plot_metrics.py" "$work/missing.jsonl" "$work/bad" t step win_rate 2> "$work/err"; then fail "a missing key plotted"; fi
grep -q "no 'win_rate'" "$work/err" || fail "no clear error for a missing key: $(cat "$work/err")"
echo "plot: all checks passed"
