// Fault injection for the local engine: off by default, set at start-up (flags) or at run time
// (engine::set_faults). Every random decision comes from a seeded generator, so a failing soak
// run can be replayed.
#pragma once

#include <tinker/types/future.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace tinker::local {

struct fault_options {
  /// Extra latency before a route is handled, by route name (see engine.hpp for names); "*" = all routes.
  std::map<std::string, std::chrono::milliseconds> route_latency;

  /// Fractions (0..1) of answers replaced by an error on the routes in `error_routes`.
  double fraction_429 = 0;  ///< with a Retry-After header of `retry_after`
  /// 402 Payment Required with {"detail": "billing: payment required (injected fault)"} (the SDK
  /// pauses and retries 402s during its billing window, docs/protocol.md §3.3).
  double fraction_402 = 0;
  double fraction_500 = 0;
  double fraction_503 = 0;
  std::chrono::seconds retry_after{1};
  /// Fraction of requests whose connection is dropped without an answer (after the body was read).
  double fraction_drop = 0;
  /// Routes subject to the random errors and drops above; empty = every /api/v1 route except healthz.
  std::set<std::string> error_routes;

  /// Answer try_again to the first N polls of each future, even when its result is ready.
  int try_again_first_polls = 0;

  /// Report this queue state in try_again answers (and hold results back) during pause windows:
  /// for `pause_duration` out of every `pause_period`, starting `pause_duration` after set_faults.
  std::optional<queue_state> pause_state;
  std::chrono::milliseconds pause_period{0};
  std::chrono::milliseconds pause_duration{0};

  /// Simulated step time added to every training operation (forward/backward, optim_step, saves, loads).
  std::chrono::milliseconds training_step_time{0};
  /// Simulated time of every sample batch: its results are held back this long after they are
  /// computed (keeps sample futures pending, e.g. to hold many polls).
  std::chrono::milliseconds sample_step_time{0};

  /// Futures of requests on these routes fail with {"error": "injected failure: ...", "category"}
  /// instead of running, by route name: the training routes (create_model, forward_backward,
  /// forward, optim_step, save_weights, save_weights_for_sampler, load_weights, unload_model; the
  /// seq_id is used up and the model's later operations run) and asample (sample answers the
  /// failure directly: 400 for user, 500 for server). Other routes are not affected.
  std::map<std::string, error_category> fail_routes;

  /// Seed of the random decisions.
  std::uint64_t seed = 1;

  bool any() const {
    return !route_latency.empty() || fraction_429 > 0 || fraction_402 > 0 || fraction_500 > 0 || fraction_503 > 0 ||
           fraction_drop > 0 || try_again_first_polls > 0 || pause_state || training_step_time.count() > 0 ||
           sample_step_time.count() > 0 || !fail_routes.empty();
  }
};

}  // namespace tinker::local
