#!/usr/bin/env bash
# The C++ sources follow .clang-format: prints the files that do not (and how to fix them).
#   check_format.sh <source dir> [clang-format]
set -euo pipefail
root=$1
cf=${2:-clang-format}
command -v "$cf" >/dev/null || { echo "check_format: $cf not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
cd "$root"
mapfile -t files < <(find include tests tools examples benchmarks cmake -name '*.hpp' -o -name '*.ipp' -o -name '*.cpp' | sort)
bad=()
for f in "${files[@]}"; do
  "$cf" --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'not formatted (run: %s -i <file>):\n' "$cf" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "all ${#files[@]} C++ files follow .clang-format"
