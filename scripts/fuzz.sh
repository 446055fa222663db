#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each for a fixed time on a copy of its
# seed corpus (fuzz/corpus/<target>: the committed corpus never grows here).
#   fuzz.sh [seconds-per-target] [build-dir]     defaults: 60, build-fuzz
# Exits non-zero on the first target that finds a crash, a sanitizer report, a timeout or an
# out-of-memory, naming the reproducer; rerun one with <build-dir>/fuzz/<target> <reproducer>.
# Environment: FUZZ_TARGETS="fuzz_json fuzz_proto" runs only those; FUZZ_JOBS (default 2) build jobs.
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build-fuzz}
mkdir -p "$build"
build=$(cd "$build" && pwd)
targets=(${FUZZ_TARGETS:-fuzz_json fuzz_proto fuzz_tinker_path fuzz_http fuzz_archive fuzz_safetensors
         fuzz_engine_requests})
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (scripts/install-deps.sh installs it)" >&2; exit 1; }

start=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DTINKER_BUILD_FUZZERS=ON \
  -DTINKER_BUILD_TESTS=OFF -DTINKER_BUILD_EXAMPLES=OFF -DTINKER_BUILD_BENCHMARKS=OFF -DTINKER_BUILD_TOOLS=OFF \
  -DTINKER_INSTALL=OFF >/dev/null
cmake --build "$build" -j "${FUZZ_JOBS:-2}" --target "${targets[@]}"
built=$(date +%s)

work="$build/fuzz-run"
rm -rf "$work"
mkdir -p "$work"
summary=()
for t in "${targets[@]}"; do
  corpus="$work/$t/corpus"
  mkdir -p "$corpus" "$work/$t/artifacts"
  cp "$root/fuzz/corpus/$t/"* "$corpus/"
  log="$work/$t/log"
  echo "fuzz: $t for ${seconds}s" >&2
  # The working copy of the corpus as the first directory: new inputs go there, never into fuzz/.
  if ! "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/$t/artifacts/" "$corpus" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    reproducer=$(ls -t "$work/$t/artifacts/"* 2>/dev/null | head -n 1 || true)
    echo "fuzz: $t FAILED; reproducer: ${reproducer:-(none written)}; log: $log" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  summary+=("$t: ${runs:-?} executions in ${seconds}s")
done
done_at=$(date +%s)

echo "fuzz executions (${seconds}s per target; build $((built - start))s, total $((done_at - start))s):"
printf '  %s\n' "${summary[@]}"
