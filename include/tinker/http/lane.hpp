// The lanes of the client transport: kinds of calls, each with its own connection pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tinker::http {

/// Kinds of calls, each with its own connection pool, so long polls never starve submissions and
/// a burst of samples cannot hold up session heartbeats (docs/protocol.md §2.3). Polls are split too:
/// thousands of sample polls held by the server must not make a training result wait for a
/// connection (`poll` carries the polls of training and other futures, `sample_poll` those of
/// samples).
enum class lane : std::uint8_t { session, train, sample, poll, rest, sample_poll };

inline constexpr std::size_t lane_count = 6;

constexpr std::string_view to_string(lane l) noexcept {
  switch (l) {
    case lane::session: return "session";
    case lane::train: return "train";
    case lane::sample: return "sample";
    case lane::poll: return "poll";
    case lane::rest: return "rest";
    case lane::sample_poll: return "sample_poll";
  }
  return "?";
}

}  // namespace tinker::http
