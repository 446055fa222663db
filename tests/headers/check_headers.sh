#!/usr/bin/env bash
# Every public header under include/ compiles on its own (first and only include of a translation
# unit), warning-free and without deprecated Asio names, in both build modes (header-only, and TINKER_SEPARATE_COMPILATION, where
# public headers only declare). Syntax-only, in parallel. detail/ headers are internal: each is
# compiled as part of the public headers that include it. A src.hpp (the implementation, for
# programs built with TINKER_SEPARATE_COMPILATION) is compiled in that mode, the only one it accepts.
#   check_headers.sh <c++ compiler> <include dir>
set -euo pipefail
cxx=$1 include=$2
export cxx include
check() {
  local header=${1#"$include"/}
  local modes=("" "-DTINKER_SEPARATE_COMPILATION")
  [[ $(basename "$header") == src.hpp ]] && modes=("-DTINKER_SEPARATE_COMPILATION")
  for mode in "${modes[@]}"; do
    if ! out=$(printf '#include <%s>\n' "$header" |
               "$cxx" -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers \
                      -DBOOST_ASIO_NO_DEPRECATED $mode -I"$include" -x c++ - 2>&1); then
      printf 'NOT SELF-CONTAINED (%s): %s\n%s\n' "${mode:-header-only}" "$header" "$out" | head -20
      return 1
    fi
  done
}
export -f check
count=$(find "$include" -name '*.hpp' -not -path '*/detail/*' | wc -l)
if find "$include" -name '*.hpp' -not -path '*/detail/*' -print0 | sort -z | xargs -0 -n1 -P"$(nproc)" bash -c 'check "$0"'; then
  echo "all $count public headers compile on their own, header-only and separately compiled"
else
  exit 1
fi
