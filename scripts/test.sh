#!/usr/bin/env bash
# Installs what is missing, builds everything (library tests, tools, examples, benchmarks) and runs
# the whole test suite with ctest. Usage: scripts/test.sh [build-dir]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"

"$root/scripts/install-deps.sh"
# -g1 (line tables: readable backtraces) instead of -g: full debug info of Boost-heavy test files
# costs a third of the build's time. scripts/sanitize.sh builds with full debug info.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
      -DTINKER_WERROR=ON
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure -j2 --timeout 600
