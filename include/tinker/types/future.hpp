// The futures protocol: submission handles, retrieve_future and its answers, batched
// completion polling (docs/protocol.md §5, §5.7).
#pragma once

#include <tinker/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tinker {

/// What every future-returning endpoint answers: `{"request_id", "model_id"?, "sample_sequence_ids"?}`.
struct untyped_api_future {
  std::string request_id;
  std::optional<std::string> model_id;
  std::optional<std::vector<std::string>> sample_sequence_ids;  ///< asample on newer servers

  friend bool operator==(const untyped_api_future&, const untyped_api_future&) = default;
};

/// `{"request_id", "allow_metadata_only"}`.
struct future_retrieve_request {
  std::string request_id;
  bool allow_metadata_only = true;

  friend bool operator==(const future_retrieve_request&, const future_retrieve_request&) = default;
};

enum class queue_state { active, paused_capacity, paused_rate_limit, unknown };

constexpr std::string_view to_string(queue_state q) noexcept {
  switch (q) {
    case queue_state::active: return "active";
    case queue_state::paused_capacity: return "paused_capacity";
    case queue_state::paused_rate_limit: return "paused_rate_limit";
    case queue_state::unknown: return "unknown";
  }
  return "unknown";
}

/// Unknown strings map to queue_state::unknown, as the SDK does.
constexpr queue_state parse_queue_state(std::string_view s) noexcept {
  for (auto q : {queue_state::active, queue_state::paused_capacity, queue_state::paused_rate_limit})
    if (to_string(q) == s) return q;
  return queue_state::unknown;
}

/// `{"type": "try_again", "request_id", "queue_state", "queue_state_reason"?}`: not ready yet.
struct try_again_response {
  std::string request_id;
  tinker::queue_state queue_state = tinker::queue_state::active;
  std::optional<std::string> queue_state_reason;

  friend bool operator==(const try_again_response&, const try_again_response&) = default;
};

/// `{"status": "complete_metadata", "response_payload_size"}`: done; fetch again for the payload.
struct complete_metadata_response {
  std::int64_t response_payload_size = 0;

  friend bool operator==(const complete_metadata_response&, const complete_metadata_response&) = default;
};

constexpr std::string_view to_string(error_category c) noexcept {
  switch (c) {
    case error_category::server: return "server";
    case error_category::user: return "user";
    case error_category::unknown: return "unknown";
  }
  return "unknown";
}

/// Unknown strings map to error_category::unknown, as the SDK does.
constexpr error_category parse_error_category(std::string_view s) noexcept {
  if (s == "server") return error_category::server;
  if (s == "user") return error_category::user;
  return error_category::unknown;
}

/// `{"error", "category"}`: the request failed on the server.
struct request_failed_response {
  std::string error;
  error_category category = error_category::unknown;

  friend bool operator==(const request_failed_response&, const request_failed_response&) = default;
};

/// Batched completion polling (`POST /api/v1/retrieve_futures`, newer SDKs): which sampling
/// session's futures to watch.
struct retrieve_futures_target {
  std::string sampling_session_id;
  std::int64_t cloned_sampler_id = 0;

  friend bool operator==(const retrieve_futures_target&, const retrieve_futures_target&) = default;
};

struct retrieve_futures_request {
  retrieve_futures_target target;
  std::int64_t prev_cursor = 0;
  std::optional<double> timeout;

  friend bool operator==(const retrieve_futures_request&, const retrieve_futures_request&) = default;
};

enum class completion_state { finished, failed };

struct future_completion {
  completion_state state = completion_state::finished;
  std::string request_id;
  std::optional<std::int64_t> response_payload_uncompressed_size;

  friend bool operator==(const future_completion&, const future_completion&) = default;
};

struct retrieve_futures_response {
  std::vector<future_completion> completions;
  std::int64_t cursor = 0;

  friend bool operator==(const retrieve_futures_response&, const retrieve_futures_response&) = default;
};

}  // namespace tinker
