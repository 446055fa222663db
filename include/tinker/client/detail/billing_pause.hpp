// The client's one account of 402 (billing) answers, shared by every kind of call (submissions,
// REST calls, polls, batched polls, sample back-pressure): the server says the account cannot be
// billed, and calls wait it out, uncounted, for as long as its window lasts.
#pragma once

#include <tinker/client/detail/backoff.hpp>

#include <chrono>
#include <functional>
#include <optional>

namespace tinker::detail {

class billing_pause {
public:
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

  explicit billing_pause(clock_fn now = [] { return std::chrono::steady_clock::now(); }) : now_(std::move(now)) {}

  /// How long an incident may be waited out (client/config's
  /// billing_exception_max_pause_duration_sec; 3600 s until the server says otherwise).
  void set_window(seconds_d window) noexcept { window_ = window; }
  seconds_d window() const noexcept { return window_; }

  /// A 402 just arrived: whether to wait it out. An incident starts with the first 402 after five
  /// quiet minutes (as the SDK counts them) and lasts at most window().
  bool continues() {
    const auto now = now_();
    if (!since_ || now - last_answer_ > std::chrono::minutes(5)) since_ = now;
    last_answer_ = now;
    return now - *since_ < window_;
  }

  /// Whether a warning about the pause is due: the first 402 of a pause, then once a minute.
  bool warning_due() {
    const auto now = now_();
    if (last_warning_ && now - *last_warning_ < std::chrono::minutes(1)) return false;
    last_warning_ = now;
    return true;
  }

private:
  clock_fn now_;
  seconds_d window_{3600.0};
  std::optional<std::chrono::steady_clock::time_point> since_, last_warning_;
  std::chrono::steady_clock::time_point last_answer_{};
};

}  // namespace tinker::detail
