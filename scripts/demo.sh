#!/usr/bin/env bash
# Installs what is missing, builds the examples, and runs the main demo: a LoRA model trained and
# sampled against the embedded local engine, offline, on this machine's CPU.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"

"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j2 --target sft_and_sample
"$build/examples/sft_and_sample"
