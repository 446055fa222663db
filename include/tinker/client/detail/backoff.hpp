// Retry delays: exponential backoff with jitter, and Retry-After parsing.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

namespace tinker::detail {

using seconds_d = std::chrono::duration<double>;

/// min(base * 2^attempt, cap), shrunk by up to `jitter` (e.g. 0.25 = up to 25 % shorter), as
/// the SDK's generic retry layer does.
inline seconds_d backoff_delay(int attempt, seconds_d base, seconds_d cap, double jitter, std::mt19937_64& rng) {
  const double raw = std::min(base.count() * std::pow(2.0, std::min(attempt, 30)), cap.count());
  std::uniform_real_distribution<double> u(0.0, 1.0);
  return seconds_d(raw * (1.0 - jitter * u(rng)));
}

/// The floor of "try again now" answers (408 and 5xx to polls, empty batched polls, 410s): the
/// `streak`-th consecutive one waits `floor` doubled `streak` times, at most `cap`, so a server
/// that answers at once never turns a loop into a tight one.
inline seconds_d growing_floor(int streak, seconds_d floor, seconds_d cap) {
  return std::min<seconds_d>(floor * std::pow(2.0, std::min(streak, 16)), cap);
}

/// A server's requested delay from `retry-after-ms` (milliseconds) or `retry-after` (seconds);
/// honoured when in (0, 60] s. HTTP-date forms are ignored (a plain backoff applies).
inline std::optional<seconds_d> parse_retry_after(std::string_view retry_after_ms, std::string_view retry_after) {
  auto parse = [](std::string_view s) -> std::optional<double> {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    if (s.empty()) return std::nullopt;
    double v = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc{} || r.ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
  };
  std::optional<seconds_d> d;
  if (auto ms = parse(retry_after_ms))
    d = seconds_d(*ms / 1000.0);
  else if (auto s = parse(retry_after))
    d = seconds_d(*s);
  if (d && d->count() > 0 && d->count() <= 60) return d;
  return std::nullopt;
}

}  // namespace tinker::detail
