// What a sampling_client shares with its copies: the sampler, its admission limits and its
// back-pressure state. Lives on the client's executor.
#pragma once

#include <tinker/client/detail/async_semaphore.hpp>
#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/detail/completion_poller.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace tinker::detail {

struct sampling_state {
  std::shared_ptr<client_core> core;
  std::string sampler_id;
  std::string base_model;
  std::int64_t next_seq = 0;
  async_semaphore in_flight;
  async_semaphore dispatch_bytes;
  async_semaphore throttled_dispatch{10};
  /// Samples admitted and not finished (in_flight's count, readable from any thread).
  std::atomic<std::size_t> admitted{0};
  std::chrono::steady_clock::time_point backoff_until{};
  std::chrono::steady_clock::time_point last_backoff{};
  std::shared_ptr<completion_poller> poller;  ///< set when the server offers batched polling

  sampling_state(std::shared_ptr<client_core> c, std::string id, std::string base, std::size_t max_in_flight,
                 std::size_t max_bytes)
      : core(std::move(c)),
        sampler_id(std::move(id)),
        base_model(std::move(base)),
        in_flight(static_cast<std::int64_t>(max_in_flight)),
        dispatch_bytes(static_cast<std::int64_t>(max_bytes)) {}
};

}  // namespace tinker::detail
