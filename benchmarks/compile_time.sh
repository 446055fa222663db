#!/usr/bin/env bash
# What a translation unit costs to compile, as CPU seconds (user + system) and peak memory, each
# timed alone; the ratios are against the same call written with bare Beast + Boost.JSON.
#   benchmarks/compile_time.sh [c++ compiler]        (results: a table on stdout)
# Compared, all at -O2 as the project's RelWithDebInfo builds use (-g off, to time the compiler,
# not the debug info writer):
#   bare          bare_call.cpp: one call with Beast + JSON, header-only Asio/Beast
#   bare_sep      the same with Asio/Beast separately compiled (BOOST_*_SEPARATE_COMPILATION)
#   client_ho     tinker_call.cpp: the call with tinker-cpp, header-only (the default)
#   client_sep    the same with TINKER_SEPARATE_COMPILATION (linking tinker::client_compiled)
#   quickstart_ho / quickstart_sep   examples/quickstart.cpp (client + embedded engine)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cxx=${1:-g++}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-std=c++20 -O2 -I"$root/include" -c)
sep=(-DTINKER_SEPARATE_COMPILATION -DBOOST_ASIO_SEPARATE_COMPILATION -DBOOST_BEAST_SEPARATE_COMPILATION)

measure() {  # measure <name> <source> [extra flags...] -> "name cpu_seconds peak_mib"
  local name=$1 source=$2
  shift 2
  /usr/bin/time -f "%U %S %M" -o "$work/$name.time" "$cxx" "${flags[@]}" "$@" "$source" -o "$work/$name.o"
  read -r user sys kib < "$work/$name.time"
  awk -v n="$name" -v u="$user" -v s="$sys" -v k="$kib" 'BEGIN { printf "%s %.1f %.0f\n", n, u + s, k / 1024 }'
}

{
  measure bare "$root/benchmarks/compile_time/bare_call.cpp"
  measure bare_sep "$root/benchmarks/compile_time/bare_call.cpp" "${sep[@]}"
  measure client_ho "$root/benchmarks/compile_time/tinker_call.cpp"
  measure client_sep "$root/benchmarks/compile_time/tinker_call.cpp" "${sep[@]}"
  measure quickstart_ho "$root/examples/quickstart.cpp"
  measure quickstart_sep "$root/examples/quickstart.cpp" "${sep[@]}"
} > "$work/results"

bare=$(awk '$1 == "bare" { print $2 }' "$work/results")
bare_sep=$(awk '$1 == "bare_sep" { print $2 }' "$work/results")
echo "compiler: $("$cxx" --version | head -1); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '%-16s %8s %9s %12s %16s\n' "translation unit" "CPU s" "peak MiB" "x bare" "x bare_sep"
while read -r name cpu mib; do
  awk -v n="$name" -v c="$cpu" -v m="$mib" -v b="$bare" -v bs="$bare_sep" \
    'BEGIN { printf "%-16s %8.1f %9d %12.2f %16.2f\n", n, c, m, c / b, c / bs }'
done < "$work/results"
