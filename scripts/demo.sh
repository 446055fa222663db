#!/usr/bin/env bash
# The main demo: installs what is missing, builds the self-play example, and runs it against the
# local engine embedded in the process, offline, on this machine's CPU. While it runs, a live line
# shows the iteration, the games finished, the sample calls in flight and samples/s; each iteration
# prints a line and appends its metrics to a JSONL file; at the end a plot of the win rate against a
# random player and the share of illegal moves per iteration is written as PNG and SVG.
#
#   scripts/demo.sh [build-dir] [-- example flags...]     e.g. scripts/demo.sh build -- --steps 40
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
if [[ $# -gt 0 && $1 != -- ]]; then build=$1; shift; fi
[[ ${1:-} == -- ]] && shift

"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" > /dev/null
cmake --build "$build" -j2 --target self_play

out="$build/demo"
mkdir -p "$out"
metrics="$out/self_play.jsonl"
rm -f "$metrics"
# 40 iterations of 1,024 games unless other flags are given: about a minute on 2 cores.
[[ $# -gt 0 ]] || set -- --steps 40 --games 1024
"$build/examples/self_play" --metrics "$metrics" "$@"
echo
echo "metrics: $metrics"
python3 "$root/scripts/plot_metrics.py" "$metrics" "$out/self_play" "self-play: one-pile Nim, the policy against a random player" \
  step win_rate,illegal_rate | sed 's/^/plot: /'
