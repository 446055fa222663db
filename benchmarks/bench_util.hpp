// Small helpers for the benchmarks: a best-of-N timer and JSON-lines output, so results are
// machine-readable and every goal is a ratio measured in the same run.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace tinker::bench {

/// Best (smallest) seconds per call of `f` over `rounds` rounds of `iterations` calls.
template <class F>
double best_seconds(F&& f, int iterations, int rounds = 5) {
  double best = 1e100;
  for (int r = 0; r < rounds; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) f();
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    best = std::min(best, elapsed.count() / iterations);
  }
  return best;
}

/// Keeps the optimizer from discarding a computed value.
template <class T>
void keep(const T& value) {
  asm volatile("" : : "g"(&value) : "memory");
}

inline void report(const std::string& name, double bytes, double seconds, double memcpy_seconds) {
  std::printf(
      "{\"benchmark\":\"%s\",\"bytes\":%.0f,\"us_per_op\":%.2f,\"gb_per_s\":%.2f,\"memcpy_gb_per_s\":%.2f,"
      "\"ratio_vs_memcpy\":%.3f}\n",
      name.c_str(), bytes, seconds * 1e6, bytes / seconds / 1e9, bytes / memcpy_seconds / 1e9,
      memcpy_seconds / seconds);
  std::fflush(stdout);
}

}  // namespace tinker::bench
