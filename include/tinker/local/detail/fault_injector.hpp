// Fault injection (fault_options): which requests get delayed, refused, dropped or held, and which
// operations fail instead of running. Only decisions live here, made from a seeded generator so a
// failing soak run can be replayed; the request pipeline and the handlers carry them out.
#pragma once

#include <tinker/local/detail/model_queue.hpp>
#include <tinker/local/faults.hpp>
#include <tinker/types/future.hpp>

#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>

namespace tinker::local::detail {

/// What fault injection does to one request instead of handling it.
struct injected_fault {
  bool drop = false;  ///< close the connection without an answer (the other fields are unused)
  unsigned status = 0;
  std::string detail;
  std::optional<std::chrono::seconds> retry_after;  ///< a Retry-After header
};

/// A pause window (fault_options::pause_state): the queue state polls report, and how long the
/// window still lasts.
struct pause_window {
  queue_state state = queue_state::active;
  std::chrono::steady_clock::duration remaining{};
};

class fault_injector {
public:
  /// `since`: when the settings took effect (pause windows are counted from there).
  fault_injector(fault_options faults, std::chrono::steady_clock::time_point since)
      : faults_(std::move(faults)), rng_(faults_.seed), since_(since) {}

  /// Replaces the settings; the generator restarts from their seed and pause windows from `since`.
  void set(fault_options faults, std::chrono::steady_clock::time_point since) {
    faults_ = std::move(faults);
    rng_.seed(faults_.seed);
    since_ = since;
  }

  const fault_options& options() const noexcept { return faults_; }
  bool any() const { return faults_.any(); }

  /// The extra latency of a request on `route` (its own setting, else "*").
  std::chrono::milliseconds latency_for(const std::string& route) const {
    auto it = faults_.route_latency.find(route);
    if (it == faults_.route_latency.end()) it = faults_.route_latency.find("*");
    return it == faults_.route_latency.end() ? std::chrono::milliseconds::zero() : it->second;
  }

  /// Whether random errors and drops may hit `route`: never health checks and signed downloads;
  /// otherwise the error_routes, or every route when none are named.
  bool errors_apply_to(const std::string& route) const {
    if (route == "healthz" || route == "download" || route == "trace_download") return false;
    return faults_.error_routes.empty() || faults_.error_routes.contains(route);
  }

  /// Draws the random fate of a request on `route`: nullopt = handle it. Draws only for the
  /// fractions that are set, in a fixed order (drop, 429, 402, 500, 503), so a seed replays.
  std::optional<injected_fault> decide(const std::string& route) {
    if (!errors_apply_to(route)) return std::nullopt;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    auto hit = [&](double fraction) { return fraction > 0 && u(rng_) < fraction; };
    if (hit(faults_.fraction_drop)) return injected_fault{true, 0, {}, std::nullopt};
    if (hit(faults_.fraction_429))
      return injected_fault{false, 429, "rate limited (injected fault)", faults_.retry_after};
    if (hit(faults_.fraction_402))
      return injected_fault{false, 402, "billing: payment required (injected fault)", std::nullopt};
    if (hit(faults_.fraction_500)) return injected_fault{false, 500, "internal error (injected fault)", std::nullopt};
    if (hit(faults_.fraction_503)) return injected_fault{false, 503, "unavailable (injected fault)", std::nullopt};
    return std::nullopt;
  }

  /// The pause window `now` falls in, if any. Each period starts active for
  /// (pause_period - pause_duration), then pauses for pause_duration.
  std::optional<pause_window> pause_at(std::chrono::steady_clock::time_point now) const {
    if (!faults_.pause_state || faults_.pause_period.count() <= 0 || faults_.pause_duration.count() <= 0)
      return std::nullopt;
    const auto in_period = (now - since_) % faults_.pause_period;
    const auto active_part = faults_.pause_period - faults_.pause_duration;
    if (in_period < active_part) return std::nullopt;
    return pause_window{*faults_.pause_state, faults_.pause_period - in_period};
  }

  /// Whether the `poll`-th poll of a future (counting from 1) is answered try_again regardless.
  bool holds_poll(int poll) const noexcept { return poll <= faults_.try_again_first_polls; }

  /// The failure put in place of running a request on `route`, if any (fault_options::fail_routes).
  std::optional<injected_failure> failure_for(std::string_view route) const {
    auto it = faults_.fail_routes.find(std::string(route));
    if (it == faults_.fail_routes.end()) return std::nullopt;
    return injected_failure{"injected failure: " + std::string(route) + " is in fault_options.fail_routes (category " +
                                std::string(to_string(it->second)) + ")",
                            it->second};
  }

  std::chrono::milliseconds training_step_time() const noexcept { return faults_.training_step_time; }
  std::chrono::milliseconds sample_step_time() const noexcept { return faults_.sample_step_time; }

private:
  fault_options faults_;
  std::mt19937_64 rng_;
  std::chrono::steady_clock::time_point since_;
};

}  // namespace tinker::local::detail
