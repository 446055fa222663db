#!/usr/bin/env bash
# Builds the suites that run the client, the engine, HTTP and downloads with sanitizers, and runs
# them. Usage: scripts/sanitize.sh thread|address [build-dir]
#   thread   ThreadSanitizer: the client suite (its engine runs on threads of its own; an
#            io_context run by four threads; use_future and blocking_client from plain threads)
#   address  AddressSanitizer + UndefinedBehaviorSanitizer: the client, engine, http and download
#            suites
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kind=${1:?usage: scripts/sanitize.sh thread|address [build-dir]}
case $kind in
  thread) sanitizers=thread labels='^(client|threads)$' targets=(client_tests) ;;
  address) sanitizers=address,undefined labels='^(client|client async|client logic|engine|http|download|threads)$'
           targets=(client_tests engine_tests http_tests download_tests) ;;
  *) echo "scripts/sanitize.sh: unknown sanitizer '$kind' (thread or address)" >&2; exit 2 ;;
esac
build="${2:-$root/build-$kind}"
"$root/scripts/install-deps.sh"
# -O1 -g1: what sanitizers are usually run at (fast enough, exact enough stacks: line tables), at
# half the compile time of -O2 -g on these Boost-heavy files; assertions stay on.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
      -DTINKER_WERROR=ON -DTINKER_SANITIZE="$sanitizers" \
      -DTINKER_BUILD_EXAMPLES=OFF -DTINKER_BUILD_BENCHMARKS=OFF -DTINKER_BUILD_TOOLS=OFF
cmake --build "$build" -j2 --target "${targets[@]}"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/scripts/tsan.supp" ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1"
ctest --test-dir "$build" --output-on-failure -j2 --timeout 900 -L "$labels"
